//! DPDK backend (cargo feature `dpdk`): ports are DPDK ethdevs (real NICs
//! or vdevs such as `net_pcap`, `net_tap`, `net_af_packet`, `net_ring`).
//!
//! ```text
//!   eal_init(&EalConfig)            once per process (OnceLock); later calls
//!                                   must pass the same arguments
//!   DpdkDevice::open(spec, &cfg)    probes the vdev (rte_vdev_init) or finds
//!                                   the port by name, makes its mempool,
//!                                   configures `cfg.queues` rx/tx queue
//!                                   pairs (RSS when > 1 and supported),
//!                                   promiscuous, starts it
//!   device.queues()                 one DpdkPort per queue pair: give one
//!                                   to each worker (it implements PacketIo)
//! ```
//!
//! The worker's path is zero-copy: [`PacketIo::process`] hands the received
//! mbufs to the engine as [`MbufFrame`]s (data plus tailroom, so TUN
//! encapsulation can grow a frame), which it rewrites in place, and queues
//! the forwarded ones for transmit as they are; the rest are freed.
//! `recv`/`send` (control frames: ARP, ICMP; tests) copy between mbufs and
//! [`Burst`] buffers. Transmits are batched: the batch goes out with one
//! `rte_eth_tx_burst` when it is full or at the worker's next
//! `wait`/`recv`/`process`. A batch the NIC does not take entirely is freed
//! and counted in `tx_dropped`.
//!
//! `wait` polls (DPDK has no interrupt here): it receives into a staging
//! array, which the next `recv` hands out first. With `idle_sleep: None` it
//! busy-polls until the timeout, as DPVS does; otherwise it sleeps that long
//! after each empty poll (for shared CPUs and tests).
//!
//! # Kernel exception path
//! With [`PortConfig::exception_tap`] set, each device gets a `net_tap`
//! vdev (a kernel TAP interface with that name, one queue per worker; DPVS's
//! KNI / virtio-user role). Each worker's queue:
//! * copies to the TAP every received frame the kernel may want: broadcast
//!   and multicast (ARP, VRRP, OSPF, ND), other EtherTypes (LLDP), IPv4,
//!   ARP or IPv6 for the addresses in [`KernelAddrs`] (the TAP's own
//!   addresses, which the control plane sets: SSH, health-check replies)
//!   and IPv6 to link-local addresses. The dataplane still sees the frame
//!   too (it ignores what is not for the LB);
//! * sends everything the kernel transmits on the TAP out of the port.
//!
//! So the control plane uses ordinary sockets on the TAP interface; VIPs
//! and LIPs stay owned by the dataplane and must not be TAP addresses. The
//! TAP's MAC is set to the port's, so the kernel's replies carry it.
//!
//! # Several workers on one port
//! With `queues > 1` RSS (or the PMD's own spreading, e.g. net_af_packet's
//! fanout hash) places client flows on queues. Replies must reach the
//! worker owning the connection ([`crate::steer`]: FNAT by local port
//! range, NAT by a hash of the client side, ARP replies to all). None of
//! the PMDs here (net_af_packet, net_pcap, net_ring, net_tap) supports
//! rte_flow queue rules on port ranges, so steering is done in software:
//! each queue classifies what its NIC queue gives and moves other workers'
//! mbufs (no copy) onto their `rte_ring` (many producers, one consumer),
//! which the owner drains before its NIC queue, as DPVS's conn redirect.
//! Counted per queue (`redirected_out/in`, `redirect_dropped`).
//!
//! # EAL without hugepages
//! `EalConfig::no_huge(mb)` gives `--no-huge --no-shconf -m MB --no-pci`:
//! works anywhere (CI), about half the speed of hugepages
//! (`EalConfig::hugepages()`: `--in-memory --no-pci`, needs
//! `/proc/sys/vm/nr_hugepages` reserved).
#![allow(unsafe_code)]

use std::ffi::{c_char, CString};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dpdk_sys as sys;

use super::{Burst, BurstCounts, BurstHandler, FrameBuf, IoError, PacketIo, FRAME_CAP};
use crate::engine::Snapshot;
use crate::steer::{Owner, Steering};
use crate::wire::MacAddr;

/// Mbufs per rx/tx call.
const BATCH: usize = 32;
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;

/// The RSS hash types asked of a device that offers `offloads`: IPv4 and
/// IPv6, TCP and UDP by ports, fragments and other IP by addresses (so
/// IPv6 clients spread over the workers as IPv4 ones do; [`crate::steer`]
/// moves the replies).
fn rss_types(offloads: u64) -> u64 {
    let v4 = RSS_IPV4 | RSS_FRAG_IPV4 | RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP;
    let v6 = RSS_IPV6 | RSS_FRAG_IPV6 | RSS_NONFRAG_IPV6_TCP | RSS_NONFRAG_IPV6_UDP;
    (v4 | v6) & offloads
}

/// A DPDK setup error: what failed, and DPDK's reason.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("DPDK EAL init failed ({args}): {reason}")]
    Eal { args: String, reason: String },
    #[error(
        "DPDK EAL already initialised with different arguments ({running}); wanted ({wanted})"
    )]
    EalMismatch { running: String, wanted: String },
    #[error("DPDK port {port}: {op}: {reason}")]
    Port {
        port: String,
        op: &'static str,
        reason: String,
    },
}

impl DpdkError {
    fn port(port: &str, op: &'static str, reason: impl Into<String>) -> DpdkError {
        DpdkError::Port {
            port: port.to_string(),
            op,
            reason: reason.into(),
        }
    }

    fn port_rc(port: &str, op: &'static str, rc: i32) -> DpdkError {
        let e = rc.unsigned_abs() as i32;
        DpdkError::port(
            port,
            op,
            format!("{} (rc {rc})", io::Error::from_raw_os_error(e)),
        )
    }

    fn port_errno(port: &str, op: &'static str) -> DpdkError {
        let (e, msg) = sys::last_error();
        DpdkError::port(port, op, format!("{msg} (rte_errno {e})"))
    }
}

/// EAL arguments (without the program name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    pub args: Vec<String>,
}

impl EalConfig {
    /// Without hugepages: `--no-huge --no-shconf -m MB --no-pci` (CI, tests).
    pub fn no_huge(mem_mb: u32) -> EalConfig {
        EalConfig {
            args: [
                "--no-huge",
                "--no-shconf",
                "-m",
                &mem_mb.to_string(),
                "--no-pci",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// With reserved hugepages: `--in-memory --no-pci`.
    pub fn hugepages() -> EalConfig {
        EalConfig {
            args: vec!["--in-memory".into(), "--no-pci".into()],
        }
    }

    /// Adds `-l CORES` (e.g. `"0-1"`); EAL's main lcore is the first.
    pub fn lcores(mut self, cores: &str) -> EalConfig {
        self.args.push("-l".into());
        self.args.push(cores.into());
        self
    }

    /// Adds an argument (`--vdev=…`, `--file-prefix=…`, `--log-level=…`).
    pub fn arg(mut self, a: &str) -> EalConfig {
        self.args.push(a.into());
        self
    }
}

static EAL: OnceLock<Result<EalConfig, String>> = OnceLock::new();

/// Initialises DPDK's EAL once per process (`rte_eal_init` cannot run
/// twice). Later calls succeed if they pass the same arguments.
///
/// # Errors
/// EAL refused the arguments (too few hugepages, a vdev failed, …), or it
/// is already running with other arguments.
pub fn eal_init(cfg: &EalConfig) -> Result<(), DpdkError> {
    let res = EAL.get_or_init(|| {
        let mut argv_s: Vec<CString> = Vec::with_capacity(cfg.args.len() + 1);
        for a in std::iter::once("dpvsd").chain(cfg.args.iter().map(String::as_str)) {
            argv_s.push(CString::new(a).map_err(|_| format!("NUL byte in argument {a:?}"))?);
        }
        let mut argv: Vec<*mut c_char> = argv_s.iter().map(|a| a.as_ptr().cast_mut()).collect();
        // SAFETY: argv holds argc valid NUL-terminated strings. EAL may keep
        // pointers into them (and permute argv), so both are leaked below.
        let rc = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        std::mem::forget(argv_s);
        std::mem::forget(argv);
        if rc < 0 {
            let (e, msg) = sys::last_error();
            return Err(format!("{msg} (rte_errno {e})"));
        }
        Ok(cfg.clone())
    });
    match res {
        Ok(running) if running == cfg => Ok(()),
        Ok(running) => Err(DpdkError::EalMismatch {
            running: running.args.join(" "),
            wanted: cfg.args.join(" "),
        }),
        Err(reason) => Err(DpdkError::Eal {
            args: cfg.args.join(" "),
            reason: reason.clone(),
        }),
    }
}

/// Whether [`eal_init`] has succeeded in this process.
pub fn eal_running() -> bool {
    matches!(EAL.get(), Some(Ok(_)))
}

/// How to set a device up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// rx/tx queue pairs: one per worker.
    pub queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Mbufs in the device's pool (all queues, rx rings, in flight).
    pub mbufs: u32,
    /// Per-lcore mempool cache.
    pub mbuf_cache: u32,
    pub promiscuous: bool,
    /// `None`: busy-poll in `wait` (DPVS style). `Some(d)`: sleep `d`
    /// after each empty poll.
    pub idle_sleep: Option<Duration>,
    /// Kernel exception path: the name of a TAP interface to create for
    /// this port (see the module docs).
    pub exception_tap: Option<String>,
}

impl Default for PortConfig {
    fn default() -> PortConfig {
        PortConfig {
            queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 8191,
            mbuf_cache: 256,
            promiscuous: true,
            idle_sleep: None,
            exception_tap: None,
        }
    }
}

/// Counters of one queue pair (one worker on one port).
#[derive(Debug, Default)]
pub struct QueueStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Frames the NIC did not take, or no mbuf was free for.
    pub tx_dropped: AtomicU64,
    /// Received frames larger than [`FRAME_CAP`] or chained (skipped).
    pub rx_oversize: AtomicU64,
    /// Polls that found nothing.
    pub empty_polls: AtomicU64,
    /// Frames copied to / received from the kernel exception TAP.
    pub to_kernel: AtomicU64,
    pub from_kernel: AtomicU64,
    /// Frames this worker received and passed to the worker owning them
    /// (software redirect ring, [`crate::steer`]), frames it got that way,
    /// and frames lost because the owner's ring was full.
    pub redirected_out: AtomicU64,
    pub redirected_in: AtomicU64,
    pub redirect_dropped: AtomicU64,
}

/// A plain copy of [`QueueStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStatsSnapshot {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub rx_oversize: u64,
    pub empty_polls: u64,
    pub to_kernel: u64,
    pub from_kernel: u64,
    pub redirected_out: u64,
    pub redirected_in: u64,
    pub redirect_dropped: u64,
}

/// Adds `n` to a counter of one queue: each [`QueueStats`] has a single
/// writer (its [`DpdkPort`], on one thread), so a plain load and store
/// (no locked read-modify-write) keeps it exact; readers see whole values.
#[inline(always)]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl QueueStats {
    pub fn snapshot(&self) -> QueueStatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QueueStatsSnapshot {
            rx_packets: g(&self.rx_packets),
            rx_bytes: g(&self.rx_bytes),
            tx_packets: g(&self.tx_packets),
            tx_bytes: g(&self.tx_bytes),
            tx_dropped: g(&self.tx_dropped),
            rx_oversize: g(&self.rx_oversize),
            empty_polls: g(&self.empty_polls),
            to_kernel: g(&self.to_kernel),
            from_kernel: g(&self.from_kernel),
            redirected_out: g(&self.redirected_out),
            redirected_in: g(&self.redirected_in),
            redirect_dropped: g(&self.redirect_dropped),
        }
    }
}

/// Device-level counters (from the PMD) and mbuf pool usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the NIC: rx ring full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Receives that found no free mbuf.
    pub rx_nombuf: u64,
    pub mbufs_in_use: u32,
    pub mbufs_total: u32,
}

/// The kernel's own addresses on an exception TAP: IPv4, ARP and IPv6
/// frames for them are copied to the kernel. Lock-free: workers read it
/// per frame, the control plane rewrites it (a frame classified during a
/// rewrite may see the old set, or none).
#[derive(Debug)]
pub struct KernelAddrs {
    slots: [AtomicU32; KernelAddrs::MAX],
    len: AtomicUsize,
    /// IPv6 addresses, each as two halves.
    slots6: [[AtomicU64; 2]; KernelAddrs::MAX],
    len6: AtomicUsize,
}

impl Default for KernelAddrs {
    fn default() -> KernelAddrs {
        KernelAddrs {
            slots: std::array::from_fn(|_| AtomicU32::new(0)),
            len: AtomicUsize::new(0),
            slots6: std::array::from_fn(|_| [AtomicU64::new(0), AtomicU64::new(0)]),
            len6: AtomicUsize::new(0),
        }
    }
}

/// An IPv6 address's two halves, as [`KernelAddrs`] keeps them.
fn halves(a: [u8; 16]) -> [u64; 2] {
    let u = u128::from_be_bytes(a);
    [(u >> 64) as u64, u as u64]
}

impl KernelAddrs {
    /// Addresses kept per family (the TAP's and its VLAN devices'). A
    /// frame is compared with those set, not with all the slots.
    pub const MAX: usize = 64;

    /// Replaces the set (at most [`KernelAddrs::MAX`] addresses of each
    /// family are kept).
    pub fn set(&self, addrs: &[Ipv4Addr], addrs6: &[Ipv6Addr]) {
        let n = addrs.len().min(Self::MAX);
        self.len.store(0, Ordering::Release);
        for (slot, a) in self.slots.iter().zip(addrs) {
            slot.store(u32::from(*a), Ordering::Relaxed);
        }
        self.len.store(n, Ordering::Release);
        let n = addrs6.len().min(Self::MAX);
        self.len6.store(0, Ordering::Release);
        for (slot, a) in self.slots6.iter().zip(addrs6) {
            let [hi, lo] = halves(a.octets());
            slot[0].store(hi, Ordering::Relaxed);
            slot[1].store(lo, Ordering::Relaxed);
        }
        self.len6.store(n, Ordering::Release);
    }

    #[inline]
    pub fn contains(&self, ip: u32) -> bool {
        let n = self.len.load(Ordering::Acquire);
        self.slots[..n]
            .iter()
            .any(|s| s.load(Ordering::Relaxed) == ip)
    }

    /// Whether IPv6 address `ip` is one of the kernel's.
    #[inline]
    pub fn contains6(&self, ip: [u8; 16]) -> bool {
        let [hi, lo] = halves(ip);
        let n = self.len6.load(Ordering::Acquire);
        self.slots6[..n]
            .iter()
            .any(|s| s[0].load(Ordering::Relaxed) == hi && s[1].load(Ordering::Relaxed) == lo)
    }
}

/// Whether the kernel may want a copy of this received frame.
#[inline]
fn for_kernel(frame: &[u8], addrs: &KernelAddrs) -> bool {
    if frame.len() < 14 {
        return false;
    }
    if frame[0] & 1 != 0 {
        return true; // broadcast / multicast: ARP requests, VRRP, OSPF, ND
    }
    // Behind one 802.1Q tag the same rules hold, 4 bytes on: the kernel's
    // VLAN devices on the TAP (`dpdk0.100`) have their addresses followed
    // with the TAP's. A stacked tag goes up as another EtherType.
    let (ethertype, l3) = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x8100 => match frame.get(16..) {
            Some([a, b, l3 @ ..]) => (u16::from_be_bytes([*a, *b]), l3),
            _ => return false,
        },
        other => (other, &frame[14..]),
    };
    let v4 = |at: usize| {
        l3.get(at..at + 4)
            .and_then(|d| <[u8; 4]>::try_from(d).ok())
            .is_some_and(|d| addrs.contains(u32::from_be_bytes(d)))
    };
    match ethertype {
        0x0800 => v4(16),
        0x0806 => v4(24),
        // IPv6 unicast: to the kernel's addresses, or link-local (the
        // kernel's own; the dataplane owns no link-local address).
        0x86dd => match l3.get(24..40).and_then(|d| <[u8; 16]>::try_from(d).ok()) {
            Some(dst) => (dst[0] == 0xfe && dst[1] & 0xc0 == 0x80) || addrs.contains6(dst),
            None => false,
        },
        _ => true,
    }
}

/// The mempool, freed when the last user (device or queue) is gone.
#[derive(Debug)]
struct Pool(*mut sys::rte_mempool);

// SAFETY: a DPDK mempool is multi-producer/multi-consumer safe; the pointer
// is only freed in Drop, after every holder of the Arc is gone.
unsafe impl Send for Pool {}
// SAFETY: see above; all mempool operations used are thread-safe.
unsafe impl Sync for Pool {}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool was created by rte_pktmbuf_pool_create and no
        // port or queue uses it any more (they hold this Arc).
        unsafe { sys::rte_mempool_free(self.0) };
    }
}

/// The software redirect rings of a port with several workers: ring `w`
/// carries mbufs other workers received for worker `w` (many producers,
/// one consumer: DPVS's "conn redirect"). Freed, with what they still
/// hold, when the last queue is gone.
#[derive(Debug)]
struct Rings {
    rings: Vec<*mut sys::rte_ring>,
    _pool: Arc<Pool>,
}

// SAFETY: rte_ring enqueue (multi-producer) and dequeue (single consumer:
// only the owning worker's queue dequeues its ring) are thread-safe; the
// rings are freed only in Drop, after every holder of the Arc is gone.
unsafe impl Send for Rings {}
// SAFETY: see above.
unsafe impl Sync for Rings {}

/// Slots per redirect ring (a power of two; one is kept empty).
const REDIRECT_RING: u32 = 2048;

impl Rings {
    fn new(name: &str, n: usize, pool: &Arc<Pool>) -> Result<Rings, DpdkError> {
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut rings = Rings {
            rings: Vec::with_capacity(n),
            _pool: pool.clone(),
        };
        for w in 0..n {
            let rname = cstring(name, &format!("dpvs_rr{seq}_{w}"))?;
            // SAFETY: valid name; the ring is owned by `rings` (freed in Drop).
            let r = unsafe {
                sys::rte_ring_create(
                    rname.as_ptr(),
                    REDIRECT_RING,
                    sys::rte_socket_id() as i32,
                    sys::RING_F_SC_DEQ,
                )
            };
            if r.is_null() {
                return Err(DpdkError::port_errno(name, "rte_ring_create (redirect)"));
            }
            rings.rings.push(r);
        }
        Ok(rings)
    }
}

impl Drop for Rings {
    fn drop(&mut self) {
        let mut m = [ptr::null_mut::<sys::rte_mbuf>(); BATCH];
        for &r in &self.rings {
            // SAFETY: no queue uses the rings any more; what they hold are
            // owned mbufs of the pool (kept alive by `_pool`).
            unsafe {
                loop {
                    let n = sys::dpvs_ring_dequeue_burst(r, m.as_mut_ptr(), BATCH as u32);
                    if n == 0 {
                        break;
                    }
                    sys::dpvs_pktmbuf_free_bulk(m.as_mut_ptr(), n);
                }
                sys::rte_ring_free(r);
            }
        }
    }
}

/// A worker's side of the redirect rings.
#[derive(Debug)]
struct Steer {
    rings: Arc<Rings>,
    rules: Steering,
    /// Per worker: mbufs waiting to be enqueued on its ring.
    out: Vec<[*mut sys::rte_mbuf; BATCH]>,
    out_len: Vec<usize>,
}

/// A started ethdev; stopped and closed when the device and all its queues
/// are dropped.
#[derive(Debug)]
struct Dev {
    name: String,
    port: u16,
    /// A vdev this code created (uninitialised on drop).
    vdev: Option<CString>,
    pool: Arc<Pool>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: the port was started by DpdkDevice::open; no queue of it
        // is used any more (each holds this Arc).
        unsafe {
            sys::rte_eth_dev_stop(self.port);
            sys::rte_eth_dev_close(self.port);
            if let Some(v) = &self.vdev {
                sys::rte_vdev_uninit(v.as_ptr());
            }
        }
    }
}

/// One DPDK port, set up and started.
#[derive(Debug)]
pub struct DpdkDevice {
    dev: Arc<Dev>,
    mac: MacAddr,
    queues: Vec<DpdkPort>,
    stats: Vec<Arc<QueueStats>>,
    kernel_addrs: Arc<KernelAddrs>,
    tap: Option<Arc<Dev>>,
    mbufs: u32,
}

static POOL_SEQ: AtomicU64 = AtomicU64::new(0);

fn cstring(port: &str, s: &str) -> Result<CString, DpdkError> {
    CString::new(s).map_err(|_| DpdkError::port(port, "name", "contains a NUL byte"))
}

/// Probes `spec` (`name[,args]`): an existing port of that name, or a vdev
/// created now.
fn probe(spec: &str) -> Result<(String, u16, Option<CString>), DpdkError> {
    let (name, args) = spec.split_once(',').unwrap_or((spec, ""));
    let cname = cstring(name, name)?;
    let mut port = 0u16;
    // SAFETY: cname is valid; port is a valid out pointer.
    if unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port) } == 0 {
        return Ok((name.to_string(), port, None));
    }
    if !name.starts_with("net_") {
        return Err(DpdkError::port(
            name,
            "find",
            "no such port (and not a net_* vdev)",
        ));
    }
    let cargs = cstring(name, args)?;
    // SAFETY: both strings are valid for the call.
    let rc = unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
    if rc != 0 {
        return Err(DpdkError::port_rc(name, "rte_vdev_init", rc));
    }
    // SAFETY: as above.
    if unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut port) } != 0 {
        // SAFETY: undo the vdev just created.
        unsafe { sys::rte_vdev_uninit(cname.as_ptr()) };
        return Err(DpdkError::port(name, "find", "vdev created no ethdev"));
    }
    Ok((name.to_string(), port, Some(cname)))
}

fn make_pool(name: &str, cfg: &PortConfig, socket: i32) -> Result<Arc<Pool>, DpdkError> {
    let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
    // Mempool names are short (RTE_MEMPOOL_NAMESIZE): a sequence number.
    let pname = cstring(name, &format!("dpvs_mp{seq}"))?;
    // SAFETY: pname is valid; the returned pool is owned by `Pool`.
    let mp = unsafe {
        sys::rte_pktmbuf_pool_create(
            pname.as_ptr(),
            cfg.mbufs,
            cfg.mbuf_cache.min(512),
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            socket,
        )
    };
    if mp.is_null() {
        return Err(DpdkError::port_errno(name, "rte_pktmbuf_pool_create"));
    }
    Ok(Arc::new(Pool(mp)))
}

/// Configures and starts `port` with `queues` pairs; RSS over IPv4 TCP/UDP
/// when `queues > 1` and the device supports it.
fn start_port(
    name: &str,
    port: u16,
    queues: u16,
    cfg: &PortConfig,
    pool: &Pool,
) -> Result<(), DpdkError> {
    // SAFETY: plain ethdev calls on a probed port; every struct passed is a
    // valid, zero-initialised (DPDK's default) value living across the call.
    unsafe {
        let mut info: sys::rte_eth_dev_info = std::mem::zeroed();
        let rc = sys::rte_eth_dev_info_get(port, &mut info);
        if rc != 0 {
            return Err(DpdkError::port_rc(name, "rte_eth_dev_info_get", rc));
        }
        if queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(DpdkError::port(
                name,
                "configure",
                format!(
                    "{queues} queues wanted, the device has {} rx / {} tx",
                    info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf: sys::rte_eth_conf = std::mem::zeroed();
        let rss = rss_types(info.flow_type_rss_offloads);
        if queues > 1 && rss != 0 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        }
        let rc = sys::rte_eth_dev_configure(port, queues, queues, &conf);
        if rc != 0 {
            return Err(DpdkError::port_rc(name, "rte_eth_dev_configure", rc));
        }
        let (mut rxd, mut txd) = (cfg.rx_desc, cfg.tx_desc);
        sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rxd, &mut txd);
        let socket = sys::rte_eth_dev_socket_id(port);
        let socket = if socket < 0 {
            sys::rte_socket_id()
        } else {
            socket as u32
        };
        for q in 0..queues {
            let rc = sys::rte_eth_rx_queue_setup(port, q, rxd, socket, ptr::null(), pool.0);
            if rc != 0 {
                return Err(DpdkError::port_rc(name, "rte_eth_rx_queue_setup", rc));
            }
            let rc = sys::rte_eth_tx_queue_setup(port, q, txd, socket, ptr::null());
            if rc != 0 {
                return Err(DpdkError::port_rc(name, "rte_eth_tx_queue_setup", rc));
            }
        }
        let rc = sys::rte_eth_dev_start(port);
        if rc != 0 {
            return Err(DpdkError::port_rc(name, "rte_eth_dev_start", rc));
        }
        if cfg.promiscuous {
            // Not every PMD supports it (net_ring, net_pcap): not fatal.
            sys::rte_eth_promiscuous_enable(port);
        }
    }
    Ok(())
}

fn port_mac(port: u16) -> MacAddr {
    // SAFETY: rte_ether_addr is plain data; the port is valid.
    unsafe {
        let mut a: sys::rte_ether_addr = std::mem::zeroed();
        sys::rte_eth_macaddr_get(port, &mut a);
        MacAddr(a.addr_bytes)
    }
}

impl DpdkDevice {
    /// Opens the port `spec`: the name of a port EAL already probed
    /// (`--vdev=…` or a PCI address), or `net_xxx0,args` to create that
    /// vdev now. Makes the mempool, configures `cfg.queues` queue pairs and
    /// starts it. EAL must be running ([`eal_init`]).
    ///
    /// # Errors
    /// A missing or busy port, a vdev that fails, too few queues or mbufs:
    /// nothing is left half-configured (what was made is undone).
    pub fn open(spec: &str, cfg: &PortConfig) -> Result<DpdkDevice, DpdkError> {
        if !eal_running() {
            return Err(DpdkError::port(spec, "open", "DPDK EAL is not initialised"));
        }
        let (name, port, vdev) = probe(spec)?;
        DpdkDevice::open_probed(name, port, vdev, cfg)
    }

    fn open_probed(
        name: String,
        port: u16,
        vdev: Option<CString>,
        cfg: &PortConfig,
    ) -> Result<DpdkDevice, DpdkError> {
        let queues = cfg.queues.max(1);
        // SAFETY: the port is valid.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port) };
        let pool = match make_pool(&name, cfg, socket) {
            Ok(p) => p,
            Err(e) => {
                if let Some(v) = &vdev {
                    // SAFETY: undo the vdev created by probe.
                    unsafe { sys::rte_vdev_uninit(v.as_ptr()) };
                }
                return Err(e);
            }
        };
        let dev = Arc::new(Dev {
            name: name.clone(),
            port,
            vdev,
            pool: pool.clone(),
        });
        start_port(&name, port, queues, cfg, &pool)?;
        let mac = port_mac(port);
        let kernel_addrs = Arc::new(KernelAddrs::default());
        let tap = match &cfg.exception_tap {
            None => None,
            Some(iface) => {
                let spec = format!(
                    "net_tap_{name},iface={iface},mac={}",
                    mac.0.map(|b| format!("{b:02x}")).join(":")
                );
                let (tname, tport, tvdev) = probe(&spec)?;
                let tdev = Arc::new(Dev {
                    name: tname.clone(),
                    port: tport,
                    vdev: tvdev,
                    pool: pool.clone(),
                });
                let tcfg = PortConfig {
                    promiscuous: false,
                    ..cfg.clone()
                };
                start_port(&tname, tport, queues, &tcfg, &pool)?;
                Some(tdev)
            }
        };
        let stats: Vec<Arc<QueueStats>> = (0..queues).map(|_| Arc::default()).collect();
        let rings = if queues > 1 {
            Some(Arc::new(Rings::new(&name, usize::from(queues), &pool)?))
        } else {
            None
        };
        let nq = usize::from(queues);
        let queues = (0..queues)
            .map(|q| DpdkPort {
                dev: dev.clone(),
                queue: q,
                mac,
                pool: pool.0,
                rx: [ptr::null_mut(); BATCH],
                rx_pos: 0,
                rx_len: 0,
                tx: [ptr::null_mut(); BATCH],
                tx_len: 0,
                tx_bytes: 0,
                spare: [ptr::null_mut(); BATCH],
                spare_len: 0,
                idle_sleep: cfg.idle_sleep,
                stats: stats[usize::from(q)].clone(),
                tap: tap.as_ref().map(|t| Exception {
                    dev: t.clone(),
                    addrs: kernel_addrs.clone(),
                    tx: [ptr::null_mut(); BATCH],
                    tx_len: 0,
                }),
                registered: false,
                steer: rings.as_ref().map(|r| Steer {
                    rings: r.clone(),
                    rules: Steering::default(),
                    out: vec![[ptr::null_mut(); BATCH]; nq],
                    out_len: vec![0; nq],
                }),
            })
            .collect();
        Ok(DpdkDevice {
            dev,
            mac,
            queues,
            stats,
            kernel_addrs,
            tap,
            mbufs: cfg.mbufs,
        })
    }

    /// A pair of connected ports over two `rte_ring`s (what one sends, the
    /// other receives), for tests: `name_a` and `name_b`, `queues` pairs each.
    /// Only `name_a` gets `cfg.exception_tap`.
    ///
    /// # Errors
    /// EAL is not running, or ring, pool or port setup failed.
    pub fn ring_pair(name: &str, cfg: &PortConfig) -> Result<(DpdkDevice, DpdkDevice), DpdkError> {
        if !eal_running() {
            return Err(DpdkError::port(name, "open", "DPDK EAL is not initialised"));
        }
        let q = usize::from(cfg.queues.max(1));
        let mut rings = Vec::with_capacity(2 * q);
        for i in 0..2 * q {
            let rname = cstring(name, &format!("{name}_r{i}"))?;
            // SAFETY: valid name; the ring lives as long as the process
            // (ring PMD ports reference it).
            let r = unsafe {
                sys::rte_ring_create(
                    rname.as_ptr(),
                    4096,
                    sys::rte_socket_id() as i32,
                    sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
                )
            };
            if r.is_null() {
                return Err(DpdkError::port_errno(name, "rte_ring_create"));
            }
            rings.push(r);
        }
        let (mut ab, mut ba) = (rings[..q].to_vec(), rings[q..].to_vec());
        let make =
            |side: &str, rx: &mut Vec<*mut sys::rte_ring>, tx: &mut Vec<*mut sys::rte_ring>| {
                let pname = cstring(name, &format!("{name}_{side}"))?;
                // SAFETY: valid name; rx/tx hold q valid rings each.
                let id = unsafe {
                    sys::rte_eth_from_rings(
                        pname.as_ptr(),
                        rx.as_mut_ptr(),
                        q as u32,
                        tx.as_mut_ptr(),
                        q as u32,
                        sys::rte_socket_id(),
                    )
                };
                if id < 0 {
                    return Err(DpdkError::port_errno(name, "rte_eth_from_rings"));
                }
                // Only side a gets the exception TAP.
                let cfg = PortConfig {
                    exception_tap: cfg.exception_tap.clone().filter(|_| side == "a"),
                    ..cfg.clone()
                };
                DpdkDevice::open_probed(format!("{name}_{side}"), id as u16, None, &cfg)
            };
        let a = make("a", &mut ba, &mut ab)?;
        let b = make("b", &mut ab, &mut ba)?;
        Ok((a, b))
    }

    pub fn name(&self) -> &str {
        &self.dev.name
    }

    pub fn port_id(&self) -> u16 {
        self.dev.port
    }

    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Takes the queue pairs, one [`DpdkPort`] per worker (empty afterwards).
    pub fn take_queues(&mut self) -> Vec<DpdkPort> {
        std::mem::take(&mut self.queues)
    }

    /// Per-queue counters (index = queue = worker).
    pub fn queue_stats(&self) -> &[Arc<QueueStats>] {
        &self.stats
    }

    /// The kernel exception TAP's addresses (see the module docs).
    pub fn kernel_addrs(&self) -> Arc<KernelAddrs> {
        self.kernel_addrs.clone()
    }

    /// The exception TAP's ethdev name, if any.
    pub fn tap_name(&self) -> Option<&str> {
        self.tap.as_ref().map(|t| t.name.as_str())
    }

    /// The PMD's counters and mbuf pool usage.
    pub fn stats(&self) -> DeviceStats {
        // SAFETY: rte_eth_stats is plain data; port and pool are valid.
        unsafe {
            let mut s: sys::rte_eth_stats = std::mem::zeroed();
            sys::rte_eth_stats_get(self.dev.port, &mut s);
            DeviceStats {
                ipackets: s.ipackets,
                opackets: s.opackets,
                ibytes: s.ibytes,
                obytes: s.obytes,
                imissed: s.imissed,
                ierrors: s.ierrors,
                oerrors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
                mbufs_in_use: sys::dpvs_mempool_in_use(self.dev.pool.0),
                mbufs_total: self.mbufs,
            }
        }
    }
}

/// A worker's side of the exception TAP.
#[derive(Debug)]
struct Exception {
    dev: Arc<Dev>,
    addrs: Arc<KernelAddrs>,
    tx: [*mut sys::rte_mbuf; BATCH],
    tx_len: usize,
}

/// A received mbuf as the engine's frame (zero-copy bursts): the frame is
/// the first segment's data, the room is that plus the tailroom. Only
/// built by [`DpdkPort::process`] from single-segment mbufs it owns.
#[derive(Debug)]
pub struct MbufFrame {
    m: *mut sys::rte_mbuf,
    /// The port the handler asked to send it on.
    to: std::cell::Cell<Option<u16>>,
}

impl FrameBuf for MbufFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: m is an owned single-segment mbuf (see the type docs);
        // data_len bytes at mtod are its data, alive while `self` is.
        unsafe {
            std::slice::from_raw_parts(
                sys::mbuf_data(self.m),
                usize::from(sys::mbuf_data_len(self.m)),
            )
        }
    }

    #[inline]
    fn room_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; buf_len - data_off bytes from mtod are the
        // mbuf's buffer (data and tailroom), owned and not aliased while
        // `self` is borrowed mutably.
        unsafe {
            let room = usize::from((*self.m).buf_len.saturating_sub((*self.m).data_off));
            std::slice::from_raw_parts_mut(sys::mbuf_data(self.m), room)
        }
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        // SAFETY: as above; the length is clamped to the buffer.
        unsafe {
            let room = (*self.m).buf_len.saturating_sub((*self.m).data_off);
            let len = (len.min(usize::from(room))) as u16;
            (*self.m).data_len = len;
            (*self.m).pkt_len = u32::from(len);
        }
    }

    #[inline]
    fn len(&self) -> usize {
        // SAFETY: as above.
        usize::from(unsafe { sys::mbuf_data_len(self.m) })
    }
}

/// One rx/tx queue pair of a DPDK port: what one worker uses.
#[derive(Debug)]
pub struct DpdkPort {
    dev: Arc<Dev>,
    queue: u16,
    mac: MacAddr,
    pool: *mut sys::rte_mempool,
    /// Received (by `wait`) and not yet handed out.
    rx: [*mut sys::rte_mbuf; BATCH],
    rx_pos: usize,
    rx_len: usize,
    /// Queued for transmit.
    tx: [*mut sys::rte_mbuf; BATCH],
    tx_len: usize,
    /// Bytes queued for transmit since the last count.
    tx_bytes: u64,
    /// Allocated in bulk, not used yet.
    spare: [*mut sys::rte_mbuf; BATCH],
    spare_len: usize,
    idle_sleep: Option<Duration>,
    stats: Arc<QueueStats>,
    tap: Option<Exception>,
    /// This thread has an EAL lcore id (mempool cache).
    registered: bool,
    /// Redirect rings to the other workers (when the port has several).
    steer: Option<Steer>,
}

// SAFETY: the mbuf pointers held are owned exclusively by this queue; the
// queue pair is used by one thread at a time (`&mut self`); the mempool is
// thread-safe. Moving it to the worker thread is fine.
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    pub fn port_id(&self) -> u16 {
        self.dev.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    pub fn stats(&self) -> Arc<QueueStats> {
        self.stats.clone()
    }

    /// Gives the calling thread an EAL lcore id once, so the mempool's
    /// per-lcore cache is used (non-EAL threads go to the shared ring).
    #[inline]
    fn register(&mut self) {
        if self.registered {
            return;
        }
        self.registered = true;
        // SAFETY: plain EAL calls; registering an already registered thread
        // is not attempted (lcore id checked first).
        unsafe {
            if sys::dpvs_lcore_id() == sys::LCORE_ID_ANY {
                sys::rte_thread_register();
            }
        }
    }

    /// A fresh mbuf from the spare stash (refilled in bulk).
    #[inline]
    fn alloc(&mut self) -> Option<*mut sys::rte_mbuf> {
        if self.spare_len == 0 {
            // SAFETY: spare has room for BATCH pointers; the pool is valid.
            let rc = unsafe {
                sys::dpvs_pktmbuf_alloc_bulk(self.pool, self.spare.as_mut_ptr(), BATCH as u32)
            };
            if rc != 0 {
                return None;
            }
            self.spare_len = BATCH;
        }
        self.spare_len -= 1;
        Some(self.spare[self.spare_len])
    }

    /// Copies `frame` into a new mbuf.
    #[inline]
    fn mbuf_from(&mut self, frame: &[u8]) -> Option<*mut sys::rte_mbuf> {
        let m = self.alloc()?;
        // SAFETY: m is a fresh, owned, empty mbuf; the copy stays within
        // the length mbuf_set_len checked against the tailroom.
        unsafe {
            match sys::mbuf_set_len(m, frame.len() as u16) {
                Some(p) => {
                    ptr::copy_nonoverlapping(frame.as_ptr(), p, frame.len());
                    Some(m)
                }
                None => {
                    sys::dpvs_pktmbuf_free(m);
                    None
                }
            }
        }
    }

    /// Transmits the queued batch; what the NIC refuses is freed and counted.
    #[inline]
    fn flush_tx(&mut self) {
        if self.tx_len > 0 {
            // SAFETY: tx[..tx_len] are owned mbufs; tx_burst takes ownership
            // of the first `sent`, the rest are still ours and freed here.
            let sent = unsafe {
                let sent = usize::from(sys::dpvs_tx_burst(
                    self.dev.port,
                    self.queue,
                    self.tx.as_mut_ptr(),
                    self.tx_len as u16,
                ));
                if sent < self.tx_len {
                    sys::dpvs_pktmbuf_free_bulk(
                        self.tx.as_mut_ptr().add(sent),
                        (self.tx_len - sent) as u32,
                    );
                }
                sent
            };
            bump(&self.stats.tx_dropped, (self.tx_len - sent) as u64);
            bump(&self.stats.tx_packets, sent as u64);
            bump(&self.stats.tx_bytes, self.tx_bytes);
            self.tx_len = 0;
            self.tx_bytes = 0;
        }
        if let Some(t) = &mut self.tap {
            if t.tx_len > 0 {
                // SAFETY: as above, for the TAP's queue.
                unsafe {
                    let sent = usize::from(sys::dpvs_tx_burst(
                        t.dev.port,
                        self.queue,
                        t.tx.as_mut_ptr(),
                        t.tx_len as u16,
                    ));
                    if sent < t.tx_len {
                        sys::dpvs_pktmbuf_free_bulk(
                            t.tx.as_mut_ptr().add(sent),
                            (t.tx_len - sent) as u32,
                        );
                    }
                    bump(&self.stats.to_kernel, sent as u64);
                }
                t.tx_len = 0;
            }
        }
    }

    /// Receives into the staging array if it is empty; returns how many
    /// frames are staged. Also forwards the kernel's frames to the wire.
    /// Frames other workers redirected here come first; of those the NIC
    /// gives, copies go to the kernel TAP and other workers' frames to
    /// their rings (see [`DpdkPort::classify`]).
    #[inline]
    fn poll(&mut self) -> usize {
        if self.rx_pos < self.rx_len {
            return self.rx_len - self.rx_pos;
        }
        self.kernel_to_wire();
        let mut n = 0;
        if let Some(st) = &self.steer {
            // SAFETY: rx has room for BATCH pointers; only this queue
            // dequeues its own ring; dequeued mbufs become ours.
            n = unsafe {
                sys::dpvs_ring_dequeue_burst(
                    st.rings.rings[usize::from(self.queue)],
                    self.rx.as_mut_ptr(),
                    BATCH as u32,
                ) as usize
            };
            if n > 0 {
                bump(&self.stats.redirected_in, n as u64);
            }
        }
        if n < BATCH {
            // SAFETY: rx[n..] has room for BATCH - n pointers; received
            // mbufs become ours.
            let got = unsafe {
                usize::from(sys::dpvs_rx_burst(
                    self.dev.port,
                    self.queue,
                    self.rx.as_mut_ptr().add(n),
                    (BATCH - n) as u16,
                ))
            };
            // Only a TAP or other workers make a frame go elsewhere:
            // with neither (one worker, no exception path) all stay here.
            n += got;
            if got > 0 && (self.tap.is_some() || self.steer.is_some()) {
                n = self.classify(n - got, got);
            }
        }
        self.rx_pos = 0;
        self.rx_len = n;
        if n == 0 {
            bump(&self.stats.empty_polls, 1);
        }
        n
    }

    /// `rx[from..from + got]` just came from the NIC: copies what the
    /// kernel may want to the TAP, moves frames other workers own to their
    /// rings, and compacts what stays here. Returns the new staged count.
    fn classify(&mut self, from: usize, got: usize) -> usize {
        let me = usize::from(self.queue);
        let mut keep = from;
        for i in from..from + got {
            let m = self.rx[i];
            // SAFETY: m is a received, owned mbuf; its first segment holds
            // data_len bytes at mtod. The slice is not used after m is
            // handed on.
            let data = unsafe {
                std::slice::from_raw_parts(sys::mbuf_data(m), usize::from(sys::mbuf_data_len(m)))
            };
            if self
                .tap
                .as_ref()
                .is_some_and(|t| t.tx_len < BATCH && for_kernel(data, &t.addrs))
            {
                if let Some(c) = self.mbuf_from(data) {
                    if let Some(t) = &mut self.tap {
                        t.tx[t.tx_len] = c;
                        t.tx_len += 1;
                    }
                }
            }
            let owner = self
                .steer
                .as_ref()
                .map_or(Owner::Here, |st| st.rules.owner(data, me));
            match owner {
                Owner::Here => {
                    self.rx[keep] = m;
                    keep += 1;
                }
                Owner::Worker(w) => self.redirect(w, m),
                Owner::All => {
                    let n = self.steer.as_ref().map_or(0, |st| st.out.len());
                    for w in (0..n).filter(|&w| w != me) {
                        match self.mbuf_from(data) {
                            Some(c) => self.redirect(w, c),
                            None => {
                                bump(&self.stats.redirect_dropped, 1);
                            }
                        }
                    }
                    self.rx[keep] = m;
                    keep += 1;
                }
            }
        }
        self.flush_redirect();
        if self.tap.as_ref().is_some_and(|t| t.tx_len > 0) {
            self.flush_tx();
        }
        keep
    }

    /// Queues `m` for worker `w`'s ring.
    #[inline]
    fn redirect(&mut self, w: usize, m: *mut sys::rte_mbuf) {
        let full = match &mut self.steer {
            Some(st) if w < st.out.len() => {
                st.out[w][st.out_len[w]] = m;
                st.out_len[w] += 1;
                st.out_len[w] == BATCH
            }
            _ => {
                // SAFETY: m is owned and goes nowhere.
                unsafe { sys::dpvs_pktmbuf_free(m) };
                bump(&self.stats.redirect_dropped, 1);
                false
            }
        };
        if full {
            self.flush_redirect();
        }
    }

    /// Enqueues the waiting mbufs on their owners' rings; what does not
    /// fit is freed and counted.
    fn flush_redirect(&mut self) {
        let Some(st) = &mut self.steer else {
            return;
        };
        let (mut sent_total, mut lost) = (0u64, 0u64);
        for w in 0..st.out.len() {
            let len = st.out_len[w];
            if len == 0 {
                continue;
            }
            // SAFETY: out[w][..len] are owned mbufs; the ring takes the
            // first `sent`, the rest are still ours and freed here.
            let sent = unsafe {
                let sent = sys::dpvs_ring_enqueue_burst(
                    st.rings.rings[w],
                    st.out[w].as_mut_ptr(),
                    len as u32,
                ) as usize;
                if sent < len {
                    sys::dpvs_pktmbuf_free_bulk(
                        st.out[w].as_mut_ptr().add(sent),
                        (len - sent) as u32,
                    );
                }
                sent
            };
            sent_total += sent as u64;
            lost += (len - sent) as u64;
            st.out_len[w] = 0;
        }
        if sent_total > 0 {
            bump(&self.stats.redirected_out, sent_total);
        }
        if lost > 0 {
            bump(&self.stats.redirect_dropped, lost);
        }
    }

    /// Frames the kernel sent on the TAP go out of the port unchanged.
    #[inline]
    fn kernel_to_wire(&mut self) {
        let Some(t) = &mut self.tap else {
            return;
        };
        let mut m = [ptr::null_mut::<sys::rte_mbuf>(); BATCH];
        // SAFETY: m has room for BATCH pointers; received mbufs are ours and
        // handed to tx_burst, which owns the `sent` first ones; the rest
        // are freed.
        unsafe {
            let n = sys::dpvs_rx_burst(t.dev.port, self.queue, m.as_mut_ptr(), BATCH as u16);
            if n == 0 {
                return;
            }
            let sent = sys::dpvs_tx_burst(self.dev.port, self.queue, m.as_mut_ptr(), n);
            if sent < n {
                sys::dpvs_pktmbuf_free_bulk(
                    m.as_mut_ptr().add(usize::from(sent)),
                    u32::from(n - sent),
                );
            }
            bump(&self.stats.from_kernel, u64::from(sent));
        }
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        self.flush_tx();
        // SAFETY: the staged rx and spare mbufs are owned by this queue.
        unsafe {
            if self.rx_pos < self.rx_len {
                sys::dpvs_pktmbuf_free_bulk(
                    self.rx.as_mut_ptr().add(self.rx_pos),
                    (self.rx_len - self.rx_pos) as u32,
                );
            }
            if self.spare_len > 0 {
                sys::dpvs_pktmbuf_free_bulk(self.spare.as_mut_ptr(), self.spare_len as u32);
            }
        }
    }
}

impl PacketIo for DpdkPort {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn recv(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        self.register();
        self.flush_tx();
        let mut n = 0;
        let (mut bytes, mut oversize) = (0u64, 0u64);
        while !burst.is_full() {
            if self.poll() == 0 {
                break;
            }
            while self.rx_pos < self.rx_len {
                let Some(frame) = burst.next_free() else {
                    break;
                };
                let m = self.rx[self.rx_pos];
                self.rx_pos += 1;
                // SAFETY: m is a received, owned mbuf; data_len bytes at
                // mtod are its first segment's data.
                let (data, chained) = unsafe {
                    let len = usize::from(sys::mbuf_data_len(m));
                    (
                        std::slice::from_raw_parts(sys::mbuf_data(m), len),
                        sys::mbuf_pkt_len(m) as usize != len,
                    )
                };
                if chained || data.len() > FRAME_CAP {
                    oversize += 1;
                } else {
                    frame.buffer_mut()[..data.len()].copy_from_slice(data);
                    frame.set_len(data.len());
                    bytes += data.len() as u64;
                    burst.commit();
                    n += 1;
                }
                // SAFETY: m is owned and no longer referenced.
                unsafe { sys::dpvs_pktmbuf_free(m) };
            }
        }
        bump(&self.stats.rx_packets, n as u64);
        bump(&self.stats.rx_bytes, bytes);
        if oversize > 0 {
            bump(&self.stats.rx_oversize, oversize);
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        self.register();
        if self.tx_len == BATCH {
            self.flush_tx();
        }
        let Some(m) = self.mbuf_from(frame) else {
            bump(&self.stats.tx_dropped, 1);
            return Ok(false);
        };
        self.tx[self.tx_len] = m;
        self.tx_len += 1;
        self.tx_bytes += frame.len() as u64;
        Ok(true)
    }

    /// Zero-copy: the staged mbufs go to `handler` as [`MbufFrame`]s,
    /// rewritten in place; those it sends are queued for transmit as they
    /// are, the others freed. `burst` is not used.
    fn process<H: BurstHandler>(
        &mut self,
        _burst: &mut Burst,
        handler: &mut H,
    ) -> Result<BurstCounts, IoError> {
        Ok(process_on(std::slice::from_mut(self), 0, handler))
    }

    fn snapshot_changed(&mut self, snap: &Snapshot) {
        if let Some(st) = &mut self.steer {
            st.rules = Steering::from_snapshot(snap, st.out.len());
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), IoError> {
        wait_any(std::slice::from_mut(self), timeout);
        Ok(())
    }
}

/// [`PacketIo::process`] of `ports[i]`'s staged mbufs (received by
/// [`DpdkPort::poll`]): handed to `handler` as [`MbufFrame`]s of port
/// `i`, rewritten in place; each it sends is queued for transmit on the
/// port it names (as it is: an mbuf may leave by another port than it
/// came), the others freed.
fn process_on<H: BurstHandler>(ports: &mut [DpdkPort], i: usize, handler: &mut H) -> BurstCounts {
    let mut c = BurstCounts::default();
    let Some(p) = ports.get_mut(i) else {
        return c;
    };
    p.register();
    p.flush_tx();
    if p.poll() == 0 {
        return c;
    }
    let mut frames: [MbufFrame; BATCH] = std::array::from_fn(|_| MbufFrame {
        m: ptr::null_mut(),
        to: std::cell::Cell::new(None),
    });
    // Mbufs to free (oversize, or not sent): one bulk free per burst.
    let mut free = [ptr::null_mut::<sys::rte_mbuf>(); BATCH];
    let (mut k, mut nfree, mut bytes) = (0, 0, 0u64);
    for &m in &p.rx[p.rx_pos..p.rx_len] {
        // SAFETY: m is a received, owned mbuf; its data (first segment)
        // starts at mtod.
        let (len, chained) = unsafe {
            let len = sys::mbuf_data_len(m);
            crate::prefetch::prefetch(&*sys::mbuf_data(m));
            (len, sys::mbuf_pkt_len(m) != u32::from(len))
        };
        if chained || usize::from(len) > FRAME_CAP {
            free[nfree] = m;
            nfree += 1;
            continue;
        }
        bytes += u64::from(len);
        frames[k].m = m;
        k += 1;
    }
    p.rx_pos = p.rx_len;
    bump(&p.stats.rx_packets, k as u64);
    bump(&p.stats.rx_bytes, bytes);
    if nfree > 0 {
        bump(&p.stats.rx_oversize, nfree as u64);
    }
    c.rx = k;
    handler.handle(i as u16, &mut frames[..k], &mut |f, to| f.to.set(to));
    for f in &frames[..k] {
        let to = f.to.get();
        match to.and_then(|to| ports.get_mut(usize::from(to))) {
            Some(out) => {
                if out.tx_len == BATCH {
                    out.flush_tx();
                }
                out.tx_bytes += f.len() as u64;
                out.tx[out.tx_len] = f.m;
                out.tx_len += 1;
                c.tx += 1;
            }
            None => {
                c.tx_full += usize::from(to.is_some());
                free[nfree] = f.m;
                nfree += 1;
            }
        }
    }
    if nfree > 0 {
        // SAFETY: free[..nfree] are owned mbufs, not queued, no longer
        // referenced.
        unsafe { sys::dpvs_pktmbuf_free_bulk(free.as_mut_ptr(), nfree as u32) };
    }
    // One transmit per received burst, while the frames are hot.
    for p in ports.iter_mut() {
        p.flush_tx();
    }
    c
}

/// [`PacketIo::wait`] over `ports`: until one has frames staged or
/// `timeout` passed, busy-polling or sleeping as the first's
/// `idle_sleep` says.
fn wait_any(ports: &mut [DpdkPort], timeout: Duration) {
    let mut staged = false;
    for p in ports.iter_mut() {
        p.register();
        p.flush_tx();
        staged |= p.poll() > 0;
    }
    if staged {
        return;
    }
    let idle_sleep = ports.first().and_then(|p| p.idle_sleep);
    let deadline = Instant::now() + timeout;
    loop {
        match idle_sleep {
            Some(d) => std::thread::sleep(d.min(timeout)),
            None => {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        }
        // Every port is polled (each also moves its TAP's frames out).
        let mut staged = false;
        for p in ports.iter_mut() {
            staged |= p.poll() > 0;
        }
        if staged || Instant::now() >= deadline {
            return;
        }
    }
}

/// One worker's queue pairs on several ports (DPVS's two-arm: `dpdk0`,
/// `dpdk1`, … in this order): it polls them all and forwards between
/// them ([`crate::engine::Engine::handle_burst_on`]).
#[derive(Debug)]
pub struct DpdkPorts {
    ports: Vec<DpdkPort>,
}

impl DpdkPorts {
    /// The worker's queue pair of each port, port 0 first; `None` when
    /// `ports` is empty.
    pub fn new(ports: Vec<DpdkPort>) -> Option<DpdkPorts> {
        (!ports.is_empty()).then_some(DpdkPorts { ports })
    }
}

impl PacketIo for DpdkPorts {
    fn mac(&self) -> MacAddr {
        self.ports.first().map_or(MacAddr::default(), |p| p.mac)
    }

    fn macs(&self) -> Vec<MacAddr> {
        self.ports.iter().map(|p| p.mac).collect()
    }

    /// Copies what every port received into `burst`, port 0 first (which
    /// port a frame came on is lost: workers use [`PacketIo::process`]).
    fn recv(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        let mut n = 0;
        for p in &mut self.ports {
            n += p.recv(burst)?;
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        self.send_on(0, frame)
    }

    fn send_on(&mut self, port: u16, frame: &[u8]) -> Result<bool, IoError> {
        match self.ports.get_mut(usize::from(port)) {
            Some(p) => p.send(frame),
            None => Ok(false),
        }
    }

    /// [`DpdkPort`]'s zero-copy `process` on each port in turn.
    fn process<H: BurstHandler>(
        &mut self,
        _burst: &mut Burst,
        handler: &mut H,
    ) -> Result<BurstCounts, IoError> {
        let mut c = BurstCounts::default();
        for i in 0..self.ports.len() {
            let d = process_on(&mut self.ports, i, handler);
            c.rx += d.rx;
            c.tx += d.tx;
            c.tx_full += d.tx_full;
        }
        Ok(c)
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), IoError> {
        wait_any(&mut self.ports, timeout);
        Ok(())
    }

    fn snapshot_changed(&mut self, snap: &Snapshot) {
        for p in &mut self.ports {
            p.snapshot_changed(snap);
        }
    }
}

/// The `dpdk` benchmark: FNAT through the engine on `net_pcap` replay, and
/// `dpdk-testpmd --forward-mode=macswap` on the same vdevs for comparison.
///
/// One core forwards: two `net_pcap` ports (`infinite_rx=1`) replay a pcap
/// of 64-byte TCP ACKs of `flows` established FNAT connections; the loop is
/// the worker's (`wait`, `recv` into a [`Burst`], [`Engine::handle_burst`],
/// `send`, housekeeping) over both ports, pinned to one CPU. Transmits go
/// nowhere (pcap ports without `tx_pcap` drop them), as in testpmd's run.
///
/// [`Engine::handle_burst`]: crate::engine::Engine::handle_burst
pub mod bench {
    use std::io::Write;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::{eal_init, DpdkDevice, DpdkError, EalConfig, PortConfig};
    use crate::bench::{client_frame, Case, Kind};
    use crate::engine::{Engine, Verdict};
    use crate::io::{Burst, PacketIo};
    use crate::worker::Handler;
    use crate::Forwarding;

    /// Writes a pcap of `flows` ACK frames (one per flow).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_pcap(path: &str, flows: u32) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?;
        out.write_all(&65535u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        for i in 0..flows {
            out.write_all(&0u32.to_le_bytes())?;
            out.write_all(&i.to_le_bytes())?;
            out.write_all(&64u32.to_le_bytes())?;
            out.write_all(&64u32.to_le_bytes())?;
            out.write_all(&client_frame(i, false))?;
        }
        out.flush()
    }

    /// An FNAT engine with one service (17 servers, resolved) and `flows`
    /// connections established.
    pub fn fnat_engine(flows: u32) -> Engine {
        let capacity = (flows as usize).next_power_of_two().max(1024);
        Case::new(
            "fnat",
            Kind::Established,
            Forwarding::Fnat,
            true,
            flows,
            capacity,
        )
        .engine
    }

    /// What [`run_fnat`] measured.
    #[derive(Debug, Clone, Copy)]
    pub struct FnatResult {
        pub mpps: f64,
        /// Frames forwarded per frame received.
        pub forwarded: f64,
        pub conns: usize,
    }

    /// The pcap vdev arguments both runs use (worker `w`'s two ports).
    pub fn vdevs(pcap: &str, w: usize) -> [String; 2] {
        [0, 1].map(|i| format!("net_pcap{},rx_pcap={pcap},infinite_rx=1", 2 * w + i))
    }

    /// Forwards `pcap`'s `flows` through the engine with `workers` worker
    /// threads, each on its own two `net_pcap` ports with its own engine
    /// (`flows` connections), worker `w` pinned to CPU `(cpu + w) % ncpu`,
    /// for `secs` after one second of warm-up; Mpps and forwarded are the
    /// workers' sums and mean. EAL must be running.
    ///
    /// # Errors
    /// A port could not be opened.
    pub fn run_fnat(
        pcap: &str,
        flows: u32,
        cpu: usize,
        secs: f64,
        zero_copy: bool,
        workers: usize,
    ) -> Result<FnatResult, DpdkError> {
        let cfg = PortConfig {
            mbufs: flows + 16383,
            ..PortConfig::default()
        };
        // Online CPUs, not this thread's affinity: EAL pinned the calling
        // thread to its one lcore, and workers spread over all CPUs.
        let ncpu = crate::io::affinity::online_cpus();
        let mut devs = Vec::new();
        for w in 0..workers.max(1) {
            for v in vdevs(pcap, w) {
                devs.push(DpdkDevice::open(&v, &cfg)?);
            }
        }
        let mut ports: Vec<_> = devs
            .iter_mut()
            .filter_map(|d| d.take_queues().pop())
            .collect();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = ports
                .chunks_mut(2)
                .enumerate()
                .map(|(w, pair)| {
                    s.spawn(move || worker(pair, flows, (cpu + w) % ncpu, secs, zero_copy))
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        drop(ports);
        drop(devs);
        let mut total = FnatResult {
            mpps: 0.0,
            forwarded: 0.0,
            conns: 0,
        };
        for r in &results {
            let r = r
                .as_ref()
                .map_err(|_| DpdkError::port("bench", "worker", "panicked"))?;
            total.mpps += r.mpps;
            total.forwarded += r.forwarded / results.len() as f64;
            total.conns += r.conns;
        }
        Ok(total)
    }

    /// One worker's loop over its ports (the worker's round, as in
    /// `worker::run`), pinned to `cpu`.
    fn worker(
        ports: &mut [super::DpdkPort],
        flows: u32,
        cpu: usize,
        secs: f64,
        zero_copy: bool,
    ) -> FnatResult {
        // A refused pin leaves the worker floating (the bench still runs).
        let _ = crate::io::affinity::pin_current_thread(cpu);
        let stats: Vec<_> = ports.iter().map(|p| p.stats()).collect();
        let mut engine = fnat_engine(flows);
        let conns = engine.conn_count();
        let mut rx = Burst::new(crate::worker::BURST);
        let mut ctl = Burst::new(crate::worker::BURST);
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(1);
        let end = measure_from + Duration::from_secs_f64(secs);
        let mut base: Option<(u64, u64, Instant)> = None;
        let count = || {
            stats.iter().fold((0, 0), |(r, t), s| {
                let s = s.snapshot();
                (r + s.rx_packets, t + s.tx_packets)
            })
        };
        let mut round = 0u64;
        loop {
            let now_ms = start.elapsed().as_millis() as u64 + 2;
            for p in ports.iter_mut() {
                // The worker's round (worker::run), per port.
                engine.housekeeping(now_ms, 1024, &mut ctl);
                for f in ctl.frames() {
                    let _ = p.send(f.data());
                }
                ctl.clear();
                let _ = p.wait(Duration::ZERO);
                if zero_copy {
                    let mut h = Handler {
                        engine: &mut engine,
                        ctl: &mut ctl,
                        now_ms,
                    };
                    let _ = p.process(&mut rx, &mut h);
                    continue;
                }
                // Copying through `Burst` buffers (the trait's
                // default `process`), for comparison.
                rx.clear();
                let _ = p.recv(&mut rx);
                engine.handle_burst(rx.frames_mut(), now_ms, &mut ctl, |f, v| {
                    if v == Verdict::Forward {
                        let _ = p.send(f.data());
                    }
                });
            }
            round += 1;
            if round & 1023 != 0 {
                continue;
            }
            let now = Instant::now();
            if base.is_none() && now >= measure_from {
                let (r, t) = count();
                base = Some((r, t, now));
            }
            if now >= end {
                let (r, t) = count();
                let (r0, t0, t_start) = base.unwrap_or((0, 0, start));
                let dt = now.duration_since(t_start).as_secs_f64();
                let rx_n = (r - r0) as f64;
                return FnatResult {
                    mpps: rx_n / dt / 1e6,
                    forwarded: (t - t0) as f64 / rx_n.max(1.0),
                    conns,
                };
            }
        }
    }

    /// Runs `dpdk-testpmd --forward-mode=macswap` on the same vdevs with one
    /// forwarding lcore (`cpu`), as `tools/dpdk-bench/bench.sh` does: the
    /// mean over the last three 2-second stats periods of the summed
    /// Rx-pps. `None` when testpmd is not installed or printed no stats.
    pub fn run_testpmd(
        pcap: &str,
        flows: u32,
        cpu: usize,
        hugepages: bool,
        secs: u32,
    ) -> Option<f64> {
        let mut args: Vec<String> = vec![
            "-s".into(),
            "INT".into(),
            secs.to_string(),
            "dpdk-testpmd".into(),
            "-l".into(),
            format!("{},{cpu}", if cpu == 0 { 1 } else { 0 }),
            "--no-pci".into(),
            "--file-prefix=dpvs_testpmd".into(),
            "--log-level=lib.eal:error".into(),
        ];
        if hugepages {
            args.push("--in-memory".into());
        } else {
            args.extend(["--no-huge", "--no-shconf", "-m", "1024"].map(String::from));
        }
        args.extend(vdevs(pcap, 0).map(|v| format!("--vdev={v}")));
        args.extend([
            "--".to_string(),
            format!("--total-num-mbufs={}", 2 * flows + 16384),
            "--forward-mode=macswap".into(),
            "--auto-start".into(),
            "--stats-period".into(),
            "2".into(),
        ]);
        let out = Command::new("timeout").args(&args).output().ok()?;
        let log = String::from_utf8_lossy(&out.stdout);
        let mut periods: Vec<f64> = log
            .split("Port statistics ====")
            .skip(1)
            .map(|b| {
                b.split("Rx-pps:")
                    .skip(1)
                    .filter_map(|x| x.split_whitespace().next()?.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .collect();
        if periods.len() > 1 {
            periods.remove(0);
        }
        let last: Vec<f64> = periods.iter().rev().take(3).copied().collect();
        if last.is_empty() {
            return None;
        }
        Some(last.iter().sum::<f64>() / last.len() as f64 / 1e6)
    }

    /// EAL arguments for the in-process run (main lcore on the other CPU).
    pub fn eal_config(cpu: usize, hugepages: bool) -> EalConfig {
        let base = if hugepages {
            EalConfig::hugepages()
        } else {
            EalConfig::no_huge(2048)
        };
        base.lcores(&format!("{}", if cpu == 0 { 1 } else { 0 }))
            .arg("--file-prefix=dpvs_bench")
            .arg("--log-level=lib.eal:error")
    }

    /// The whole benchmark: prints `case=fnat/16k mpps=…` (and, with one
    /// worker, testpmd's macswap Mpps and the ratio when testpmd is
    /// installed).
    ///
    /// # Errors
    /// EAL or a port failed.
    pub fn run(
        flows: u32,
        name: &str,
        hugepages: bool,
        secs: u32,
        zero_copy: bool,
        workers: usize,
    ) -> Result<String, DpdkError> {
        let cpu = 1;
        let pcap = format!("{}/dpvs-bench-{flows}.pcap", std::env::temp_dir().display());
        write_pcap(&pcap, flows)
            .map_err(|e| DpdkError::port(&pcap, "write pcap", e.to_string()))?;
        let testpmd = if workers > 1 {
            None
        } else {
            run_testpmd(&pcap, flows, cpu, hugepages, secs)
        };
        eal_init(&eal_config(cpu, hugepages))?;
        let r = run_fnat(
            &pcap,
            flows,
            cpu,
            f64::from(secs.saturating_sub(2).max(2)),
            zero_copy,
            workers,
        )?;
        let huge = if hugepages {
            "hugepages"
        } else {
            "no-hugepages"
        };
        let mut line = format!(
            "case={name} mpps={:.2} forwarded={:.3} conns={} workers={workers} {huge} {}",
            r.mpps,
            r.forwarded,
            r.conns,
            if zero_copy { "zero-copy" } else { "copy" }
        );
        // testpmd may print only zero-rate periods (ports still loading
        // the pcap when the run ended): no ratio then.
        if let Some(t) = testpmd.filter(|t| *t > 0.01) {
            line += &format!(" testpmd_macswap_mpps={t:.2} ratio={:.2}", r.mpps / t);
        }
        Ok(line)
    }
}

/// Serialises tests and benches that share this process's EAL.
pub fn eal_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eal() {
        eal_init(
            &EalConfig::no_huge(256)
                .arg("--log-level=lib.eal:error")
                .arg("--file-prefix=dpvs_test"),
        )
        .expect("EAL");
    }

    fn cfg() -> PortConfig {
        PortConfig {
            mbufs: 2047,
            rx_desc: 256,
            tx_desc: 256,
            idle_sleep: Some(Duration::from_micros(100)),
            ..PortConfig::default()
        }
    }

    #[test]
    fn ring_pair_carries_frames_both_ways() {
        let _l = eal_lock();
        eal();
        let (mut a, mut b) = DpdkDevice::ring_pair("tpair", &cfg()).expect("pair");
        let mut pa = a.take_queues().pop().expect("queue a");
        let mut pb = b.take_queues().pop().expect("queue b");
        assert_eq!(pa.mac(), a.mac());
        let mut burst = Burst::new(32);
        for i in 0..40u8 {
            let mut f = vec![i; 60 + usize::from(i)];
            f[..6].copy_from_slice(&b.mac().0);
            assert!(pa.send(&f).expect("send"));
        }
        pa.wait(Duration::ZERO).expect("flush");
        pb.wait(Duration::from_millis(100)).expect("wait");
        let mut got = Vec::new();
        while got.len() < 40 {
            burst.clear();
            let n = pb.recv(&mut burst).expect("recv");
            if n == 0 {
                pb.wait(Duration::from_millis(100)).expect("wait");
                continue;
            }
            got.extend(burst.frames().iter().map(|f| f.data().to_vec()));
        }
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.len(), 60 + i, "frame {i}");
            assert_eq!(f[10], i as u8);
        }
        // And back.
        assert!(pb.send(&got[3]).expect("send"));
        pb.wait(Duration::ZERO).expect("flush");
        burst.clear();
        pa.wait(Duration::from_millis(100)).expect("wait");
        assert_eq!(pa.recv(&mut burst).expect("recv"), 1);
        assert_eq!(burst.frames()[0].data(), &got[3][..]);
        let sa = a.queue_stats()[0].snapshot();
        let sb = b.queue_stats()[0].snapshot();
        assert_eq!((sa.tx_packets, sa.rx_packets), (40, 1));
        assert_eq!((sb.tx_packets, sb.rx_packets), (1, 40));
        assert!(a.stats().mbufs_in_use < 2047);
        assert_eq!(b.stats().ipackets, 40);
    }

    #[test]
    fn missing_port_and_bad_vdev_are_clear_errors() {
        let _l = eal_lock();
        eal();
        let e = DpdkDevice::open("0000:99:00.0", &cfg()).expect_err("missing");
        assert!(e.to_string().contains("no such port"), "{e}");
        let e = DpdkDevice::open("net_pcap_bad,rx_pcap=/nonexistent.pcap", &cfg())
            .expect_err("bad vdev");
        assert!(e.to_string().contains("rte_vdev_init"), "{e}");
        let e = eal_init(&EalConfig::no_huge(64)).expect_err("second init");
        assert!(matches!(e, DpdkError::EalMismatch { .. }), "{e}");
    }

    /// `DPVS_BENCH_FLOWS=16384 DPVS_BENCH_HUGEPAGES=0 cargo test --release
    /// -p dataplane --features dpdk --lib bench_dpdk -- --ignored --nocapture`
    /// (alone: it initialises EAL with its own arguments).
    #[test]
    #[ignore = "benchmark: minutes of CPU, run by hand"]
    fn bench_dpdk() {
        let _l = eal_lock();
        let flows: u32 = std::env::var("DPVS_BENCH_FLOWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(16384);
        let huge = std::env::var("DPVS_BENCH_HUGEPAGES").is_ok_and(|v| v == "1");
        let secs = std::env::var("DPVS_BENCH_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let name = match flows {
            16384 => "fnat/16k".to_string(),
            1_048_576 => "fnat/1m".to_string(),
            n => format!("fnat/{n}"),
        };
        let copy = std::env::var("DPVS_BENCH_COPY").is_ok_and(|v| v == "1");
        let line = bench::run(flows, &name, huge, secs, !copy, 1).expect("bench");
        println!("{line}");
    }

    /// The exception TAP: the kernel's own frames (IPv6 ND/MLD once the TAP
    /// is up) leave through the port; a broadcast arriving on the port
    /// reaches the kernel. Needs root and /dev/net/tun; skipped otherwise.
    #[test]
    fn exception_tap_carries_kernel_traffic() {
        if !std::path::Path::new("/dev/net/tun").exists() || unsafe_geteuid() != 0 {
            eprintln!("skipped: needs root and /dev/net/tun");
            return;
        }
        let _l = eal_lock();
        eal();
        let cfg = PortConfig {
            exception_tap: Some("dpvsx0".into()),
            ..cfg()
        };
        let (mut a, mut b) = DpdkDevice::ring_pair("ttap", &cfg).expect("pair");
        assert!(a.tap_name().is_some());
        assert!(std::path::Path::new("/sys/class/net/dpvsx0").exists());
        let mut pa = a.take_queues().pop().expect("queue a");
        let mut pb = b.take_queues().pop().expect("queue b");
        let up = std::process::Command::new("ip")
            .args(["link", "set", "dpvsx0", "up"])
            .status()
            .expect("ip");
        assert!(up.success());
        // A broadcast ARP on the wire goes to the kernel (and the dataplane).
        let mut arp = [0u8; 60];
        arp[..6].copy_from_slice(&[0xff; 6]);
        arp[6..12].copy_from_slice(&b.mac().0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(pb.send(&arp).expect("send"));
        pb.wait(Duration::ZERO).expect("flush");
        let mut burst = Burst::new(32);
        let mut from_kernel = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && (from_kernel == 0 || burst.is_empty()) {
            pa.wait(Duration::from_millis(10)).expect("wait");
            pa.recv(&mut burst).expect("recv a");
            let mut kb = Burst::new(32);
            pb.wait(Duration::from_millis(10)).expect("wait");
            from_kernel += pb.recv(&mut kb).expect("recv b");
        }
        let st = a.queue_stats()[0].snapshot();
        assert!(!burst.is_empty(), "dataplane saw the ARP");
        assert!(st.to_kernel >= 1, "{st:?}");
        assert!(from_kernel >= 1 && st.from_kernel >= 1, "{st:?}");
    }

    /// Zero-copy `process`: the handler rewrites and grows the received
    /// mbufs in place; those it sends leave as they are, the rest are
    /// freed (no mbuf leaks).
    #[test]
    fn process_rewrites_mbufs_in_place_and_sends_them() {
        struct Grow;
        impl BurstHandler for Grow {
            fn handle<F: FrameBuf>(
                &mut self,
                _port: u16,
                frames: &mut [F],
                verdict: &mut dyn FnMut(&F, Option<u16>),
            ) {
                for (i, f) in frames.iter_mut().enumerate() {
                    let len = f.len();
                    let room = f.room_mut();
                    assert!(room.len() >= len + 100, "tailroom");
                    room[0] = 0xee;
                    room[len..len + 20].fill(0xab);
                    f.set_len(len + 20);
                    verdict(f, (i % 2 == 0).then_some(0));
                }
            }
        }
        let _l = eal_lock();
        eal();
        let (mut a, mut b) = DpdkDevice::ring_pair("tzc", &cfg()).expect("pair");
        let mut pa = a.take_queues().pop().expect("queue a");
        let mut pb = b.take_queues().pop().expect("queue b");
        let idle = a.stats().mbufs_in_use;
        for i in 0..5u8 {
            assert!(pb.send(&[i; 60]).expect("send"));
        }
        pb.wait(Duration::ZERO).expect("flush");
        pa.wait(Duration::from_millis(100)).expect("wait");
        let mut burst = Burst::new(32);
        let c = pa.process(&mut burst, &mut Grow).expect("process");
        assert_eq!((c.rx, c.tx, c.tx_full), (5, 3, 0));
        pa.wait(Duration::ZERO).expect("flush");
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 3 && Instant::now() < deadline {
            burst.clear();
            pb.wait(Duration::from_millis(10)).expect("wait");
            pb.recv(&mut burst).expect("recv");
            got.extend(burst.frames().iter().map(|f| f.data().to_vec()));
        }
        assert_eq!(got.len(), 3);
        for (f, i) in got.iter().zip([0u8, 2, 4]) {
            assert_eq!(f.len(), 80);
            assert_eq!(f[0], 0xee);
            assert!(f[1..60].iter().all(|&x| x == i), "frame {i}");
            assert!(f[60..].iter().all(|&x| x == 0xab));
        }
        let st = a.queue_stats()[0].snapshot();
        assert_eq!((st.rx_packets, st.tx_packets, st.tx_bytes), (5, 3, 240));
        drop(pb);
        assert_eq!(a.stats().mbufs_in_use, idle, "mbufs leaked");
    }

    /// With two queues, FNAT replies (to the LIP) arriving on queue 0 for
    /// a local port of worker 1 go through the redirect ring to queue 1;
    /// worker 0's own stay; an ARP reply reaches both.
    #[test]
    fn redirect_ring_steers_fnat_replies_to_the_port_owner() {
        use crate::steer::local_port_range;
        let _l = eal_lock();
        eal();
        let cfg = PortConfig { queues: 2, ..cfg() };
        let (mut a, mut b) = DpdkDevice::ring_pair("tsteer", &cfg).expect("pair");
        let mut qa = a.take_queues();
        let mut qb = b.take_queues();
        let lip = Ipv4Addr::new(10, 0, 0, 200);
        let snap = Snapshot {
            v4: crate::engine::Snapshot4 {
                local_addrs: vec![lip],
                ..crate::engine::Snapshot4::default()
            },
            ..Snapshot::default()
        };
        for q in &mut qa {
            q.snapshot_changed(&snap);
        }
        let frame = |dport: u16| {
            let mut f = vec![0u8; 64];
            f[..6].copy_from_slice(&a.mac().0);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&50u16.to_be_bytes());
            f[23] = 6;
            f[26..30].copy_from_slice(&[10, 1, 0, 1]);
            f[30..34].copy_from_slice(&lip.octets());
            f[34..36].copy_from_slice(&80u16.to_be_bytes());
            f[36..38].copy_from_slice(&dport.to_be_bytes());
            f
        };
        let (lo0, _) = local_port_range(0, 2);
        let (lo1, _) = local_port_range(1, 2);
        for i in 0..10 {
            assert!(qb[0].send(&frame(lo0 + i)).expect("send"));
            assert!(qb[0].send(&frame(lo1 + i)).expect("send"));
        }
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp[20..22].copy_from_slice(&2u16.to_be_bytes());
        assert!(qb[0].send(&arp).expect("send"));
        qb[0].wait(Duration::ZERO).expect("flush");
        let mut got: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let deadline = Instant::now() + Duration::from_secs(5);
        while got[0].len() + got[1].len() < 22 && Instant::now() < deadline {
            for (w, q) in qa.iter_mut().enumerate() {
                let mut burst = Burst::new(32);
                q.wait(Duration::from_millis(1)).expect("wait");
                q.recv(&mut burst).expect("recv");
                got[w].extend(burst.frames().iter().map(|f| f.data().to_vec()));
            }
        }
        let port = |f: &Vec<u8>| u16::from_be_bytes([f[36], f[37]]);
        for (w, lo) in [(0, lo0), (1, lo1)] {
            assert_eq!(got[w].len(), 11, "worker {w}: {} frames", got[w].len());
            let ip: Vec<_> = got[w]
                .iter()
                .filter(|f| f[12..14] == [0x08, 0x00])
                .collect();
            assert_eq!(ip.len(), 10);
            assert!(
                ip.iter().all(|f| (lo..lo + 10).contains(&port(f))),
                "worker {w}"
            );
            assert_eq!(
                got[w].iter().filter(|f| **f == arp).count(),
                1,
                "worker {w}: ARP"
            );
        }
        let s0 = a.queue_stats()[0].snapshot();
        let s1 = a.queue_stats()[1].snapshot();
        assert_eq!((s0.redirected_out, s0.redirected_in), (11, 0), "{s0:?}");
        assert_eq!((s1.redirected_out, s1.redirected_in), (0, 11), "{s1:?}");
        assert_eq!(s0.redirect_dropped + s1.redirect_dropped, 0);
    }

    fn unsafe_geteuid() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn rss_hashes_ipv6_too() {
        // The values of rte_ethdev.h's RTE_ETH_RSS_* bits.
        let (ipv4_tcp, ipv6, ipv6_tcp, ipv6_udp) = (1 << 4, 1 << 8, 1 << 10, 1 << 11);
        assert_eq!(rss_types(ipv6_tcp | ipv6_udp), ipv6_tcp | ipv6_udp);
        assert_eq!(rss_types(u64::MAX) & (ipv4_tcp | ipv6), ipv4_tcp | ipv6);
        // Only what the device offers.
        assert_eq!(rss_types(ipv4_tcp), ipv4_tcp);
        assert_eq!(rss_types(1 << 15), 0);
    }

    #[test]
    fn kernel_filter() {
        let addrs = KernelAddrs::default();
        let kernel6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        addrs.set(&[Ipv4Addr::new(10, 0, 0, 1)], &[kernel6]);
        let mut f = [0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        assert!(for_kernel(&f, &addrs));
        f[33] = 2;
        assert!(!for_kernel(&f, &addrs));
        f[0] = 0xff;
        assert!(for_kernel(&f, &addrs));
        f[0] = 0;
        // IPv6: the kernel's address and link-local ones go up, other
        // unicast (a VIP's, a local address's) does not; multicast (ND,
        // OSPFv3, VRRPv3) does; truncated frames do not.
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[38..54].copy_from_slice(&kernel6.octets());
        assert!(for_kernel(&f, &addrs));
        f[53] = 0x64;
        assert!(!for_kernel(&f, &addrs));
        f[38..54].copy_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 7).octets());
        assert!(for_kernel(&f, &addrs));
        f[38..54].copy_from_slice(&Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 7).octets());
        assert!(!for_kernel(&f, &addrs));
        f[0] = 0x33;
        assert!(for_kernel(&f, &addrs));
        f[0] = 0;
        assert!(!for_kernel(&f[..50], &addrs));
        // Other EtherTypes (LLDP, …) go up.
        f[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert!(for_kernel(&f, &addrs));
        // Behind one 802.1Q tag: the same rules, 4 bytes on.
        let tagged = |inner: &[u8]| {
            let mut t = [0u8; 64];
            t[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x64]);
            t[16..].copy_from_slice(&inner[12..60]);
            t
        };
        let mut g = [0u8; 60];
        g[12..14].copy_from_slice(&[0x08, 0x00]);
        g[30..34].copy_from_slice(&[10, 0, 0, 1]);
        assert!(for_kernel(&tagged(&g), &addrs));
        g[33] = 2; // a VIP's or local address's traffic on the VLAN
        assert!(!for_kernel(&tagged(&g), &addrs));
        g[12..14].copy_from_slice(&[0x08, 0x06]);
        g[38..42].copy_from_slice(&[10, 0, 0, 1]);
        assert!(for_kernel(&tagged(&g), &addrs));
        g[41] = 2;
        assert!(!for_kernel(&tagged(&g), &addrs));
        g[12..14].copy_from_slice(&[0x86, 0xdd]);
        g[38..54].copy_from_slice(&kernel6.octets());
        assert!(for_kernel(&tagged(&g), &addrs));
        g[53] = 0x64;
        assert!(!for_kernel(&tagged(&g), &addrs));
        // A second tag, and a tag with nothing after it.
        g[12..14].copy_from_slice(&[0x81, 0x00]);
        assert!(for_kernel(&tagged(&g), &addrs));
        assert!(!for_kernel(&tagged(&g)[..16], &addrs));
    }
}
