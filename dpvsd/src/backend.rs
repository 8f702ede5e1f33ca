//! The packet I/O backend the dataplane forwards on: AF_PACKET on a kernel
//! interface, or (cargo feature `dpdk`) a DPDK port with one worker per
//! rx/tx queue pair and a TAP interface as the kernel exception path.
//!
//! Everything here happens before the control plane starts: a missing or
//! busy port, too few hugepages or a vdev that fails stops dpvsd with a
//! message naming the cause, and what was set up is undone.

use dataplane::Dataplane;

/// Which backend, from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackendOptions {
    /// AF_PACKET on `--interface`.
    #[default]
    AfPacket,
    /// A DPDK port.
    Dpdk(DpdkOptions),
}

/// `--backend dpdk` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkOptions {
    /// The ports, `dpdk0` first: PCI addresses or vdevs
    /// (`net_af_packet0,iface=eth0`, `net_pcap0,…`).
    pub ports: Vec<String>,
    /// Name of the first port's kernel exception TAP (`None`: no exception
    /// path); the others' follow from it ([`tap_name`]).
    pub kni: Option<String>,
    /// Workers = rx/tx queue pairs (RSS spreads flows over them).
    pub workers: u16,
    /// Hugepages (`--in-memory`) or not (`--no-huge -m MEM`).
    pub hugepages: bool,
    /// Memory for EAL without hugepages, in MB.
    pub mem_mb: u32,
    /// Mbufs in the port's pool.
    pub mbufs: u32,
    /// More EAL arguments, verbatim.
    pub eal_args: Vec<String>,
    /// The CPU each worker is pinned to (empty: not pinned).
    pub cores: Vec<usize>,
}

/// The name of port `index`'s exception TAP when the first port's is
/// `first`: `first` itself for port 0; else its last number replaced by
/// the index (`dpdk0` → `dpdk1`, DPVS's `dpdk0.kni` → `dpdk1.kni`), or the
/// index appended when it has none (`kni` → `kni1`).
pub fn tap_name(first: &str, index: usize) -> String {
    if index == 0 {
        return first.to_string();
    }
    let Some(end) = first.rfind(|c: char| c.is_ascii_digit()) else {
        return format!("{first}{index}");
    };
    let head = &first[..=end];
    let start = head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    format!("{}{index}{}", &first[..start], &first[end + 1..])
}

/// Parses a CPU list as `taskset -c` writes it: `1`, `1,3`, `2-5,7`.
///
/// # Errors
/// A piece that is not a number or an ascending range.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for piece in list.split(',').map(str::trim) {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{t}` in `{list}` is not a CPU number"))
        };
        match piece.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("`{piece}` in `{list}` is not an ascending range"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(piece)?),
        }
    }
    Ok(cpus)
}

/// A [`parse_cpu_list`] list, as a command-line value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl std::str::FromStr for CpuList {
    type Err = String;
    fn from_str(s: &str) -> Result<CpuList, String> {
        parse_cpu_list(s).map(CpuList)
    }
}

impl DpdkOptions {
    /// Checks the ports: at least one, none given twice.
    ///
    /// # Errors
    /// No port, or a port named twice (naming it).
    pub fn check_ports(&self) -> Result<(), BackendError> {
        let name = |spec: &str| spec.split_once(',').map_or(spec, |(n, _)| n).to_string();
        let mut seen = std::collections::BTreeSet::new();
        for spec in &self.ports {
            if !seen.insert(name(spec)) {
                return Err(BackendError::Ports(format!(
                    "port {} is given twice",
                    name(spec)
                )));
            }
        }
        if self.ports.is_empty() {
            return Err(BackendError::Ports("no port given".into()));
        }
        Ok(())
    }

    /// Checks `cores` against the workers and the online CPUs, before
    /// anything is started.
    ///
    /// # Errors
    /// Fewer CPUs than workers, a CPU named twice, or one that is not online.
    pub fn check_cores(&self, online: usize) -> Result<(), BackendError> {
        if self.cores.is_empty() {
            return Ok(());
        }
        let workers = usize::from(self.workers.max(1));
        if self.cores.len() != workers {
            return Err(BackendError::Cores(format!(
                "{} CPU(s) listed for {workers} worker(s); list one per worker",
                self.cores.len()
            )));
        }
        let mut seen = self.cores.clone();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(BackendError::Cores(format!("CPU {} is listed twice", w[0])));
        }
        match self.cores.iter().find(|&&c| c >= online) {
            Some(c) => Err(BackendError::Cores(format!(
                "CPU {c} is not online (CPUs 0-{})",
                online - 1
            ))),
            None => Ok(()),
        }
    }
}

impl BackendOptions {
    /// Worker threads the dataplane needs.
    pub fn workers(&self) -> usize {
        match self {
            BackendOptions::AfPacket => 1,
            BackendOptions::Dpdk(d) => usize::from(d.workers.max(1)),
        }
    }

    /// The CPU each worker is pinned to (empty: not pinned).
    pub fn cores(&self) -> Vec<usize> {
        match self {
            BackendOptions::AfPacket => Vec::new(),
            BackendOptions::Dpdk(d) => d.cores.clone(),
        }
    }

    /// The name `dpvsctl status` shows.
    pub fn name(&self) -> &'static str {
        match self {
            BackendOptions::AfPacket => "afpacket",
            BackendOptions::Dpdk(_) => "dpdk",
        }
    }
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Io(#[from] dataplane::io::IoError),
    #[error("cannot start worker: {0}")]
    Worker(std::io::Error),
    #[error("--dpdk-cores: {0}")]
    Cores(String),
    #[error("--dpdk-port: {0}")]
    Ports(String),
    #[error("this dpvsd was built without DPDK support (rebuild with `--features dpdk`; needs apt-get install dpdk-dev libdpdk-dev libclang-dev pkg-config)")]
    NoDpdk,
    #[cfg(feature = "dpdk")]
    #[error("DPDK: {0}")]
    Dpdk(#[from] dataplane::io::dpdk::DpdkError),
}

/// A started backend: what must live as long as the dataplane, and its
/// counters.
#[derive(Debug, Default)]
pub struct Running {
    /// In a mutex because a DPDK device is `Send` but not `Sync`; one per
    /// port.
    #[cfg(feature = "dpdk")]
    dpdk: Vec<std::sync::Mutex<dpdk::Port>>,
}

impl Running {
    /// The kernel exception interfaces (DPDK's TAPs), index = port: their
    /// addresses are the kernel's, see [`Running::set_kernel_addrs`].
    pub fn knis(&self) -> Vec<String> {
        #[cfg(feature = "dpdk")]
        return self
            .dpdk
            .iter()
            .filter_map(|p| {
                p.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .kni
                    .clone()
            })
            .collect();
        #[cfg(not(feature = "dpdk"))]
        Vec::new()
    }

    /// Tells port `port`'s exception path which addresses are the
    /// kernel's on its TAP (frames for them are copied to it).
    pub fn set_kernel_addrs(
        &self,
        port: usize,
        addrs: &[std::net::Ipv4Addr],
        addrs6: &[std::net::Ipv6Addr],
    ) {
        #[cfg(feature = "dpdk")]
        if let Some(p) = self.dpdk.get(port) {
            use dataplane::io::dpdk::KernelAddrs;
            if addrs.len() > KernelAddrs::MAX || addrs6.len() > KernelAddrs::MAX {
                tracing::warn!(
                    max = KernelAddrs::MAX,
                    ignored = ?addrs.iter().skip(KernelAddrs::MAX).collect::<Vec<_>>(),
                    ignored6 = ?addrs6.iter().skip(KernelAddrs::MAX).collect::<Vec<_>>(),
                    "the TAP has more addresses of a family than the exception path follows; frames for the ignored ones are not copied to the kernel"
                );
            }
            let p = p.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            p.device.kernel_addrs().set(addrs, addrs6);
        }
        #[cfg(not(feature = "dpdk"))]
        let _ = (port, addrs, addrs6);
    }

    /// Port and queue counters, per port (`dpvsctl status --json` →
    /// `ports`).
    pub fn ports(&self) -> Vec<crate::ctl::PortInfo> {
        #[cfg(feature = "dpdk")]
        return self
            .dpdk
            .iter()
            .map(|p| {
                p.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .info()
            })
            .collect();
        #[cfg(not(feature = "dpdk"))]
        Vec::new()
    }
}

/// Opens the backend for `interface` (the AF_PACKET interface, or the DPDK
/// port) and starts the dataplane's workers on it.
///
/// # Errors
/// The interface or port cannot be opened, EAL refused its arguments, or a
/// worker thread could not start.
pub fn start(
    opts: &BackendOptions,
    interface: &str,
    dp: &mut Dataplane,
) -> Result<Running, BackendError> {
    match opts {
        BackendOptions::AfPacket => {
            let io = dataplane::io::afpacket::AfPacket::open(interface)?;
            tracing::info!(interface, mac = %dataplane::io::PacketIo::mac(&io), "dataplane forwarding (afpacket)");
            dp.spawn_worker(io).map_err(BackendError::Worker)?;
            Ok(Running::default())
        }
        #[cfg(feature = "dpdk")]
        BackendOptions::Dpdk(d) => Ok(Running {
            dpdk: dpdk::start(d, dp)?
                .into_iter()
                .map(std::sync::Mutex::new)
                .collect(),
        }),
        #[cfg(not(feature = "dpdk"))]
        BackendOptions::Dpdk(_) => Err(BackendError::NoDpdk),
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::sync::Arc;

    use dataplane::io::dpdk::{eal_init, DpdkDevice, DpdkPorts, EalConfig, PortConfig, QueueStats};
    use dataplane::Dataplane;

    use super::{tap_name, BackendError, DpdkOptions};
    use crate::ctl::{PortInfo, QueueInfo};

    /// The open port.
    #[derive(Debug)]
    pub struct Port {
        pub(super) device: DpdkDevice,
        queues: Vec<Arc<QueueStats>>,
        pub(super) kni: Option<String>,
    }

    impl Port {
        pub fn info(&self) -> PortInfo {
            let s = self.device.stats();
            PortInfo {
                name: self.device.name().to_string(),
                kni: self.kni.clone(),
                rx_packets: s.ipackets,
                tx_packets: s.opackets,
                rx_bytes: s.ibytes,
                tx_bytes: s.obytes,
                rx_missed: s.imissed,
                rx_errors: s.ierrors,
                tx_errors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
                mbufs_in_use: s.mbufs_in_use,
                mbufs_total: s.mbufs_total,
                queues: self
                    .queues
                    .iter()
                    .enumerate()
                    .map(|(worker, q)| {
                        let q = q.snapshot();
                        QueueInfo {
                            worker,
                            rx_packets: q.rx_packets,
                            tx_packets: q.tx_packets,
                            tx_dropped: q.tx_dropped,
                            empty_polls: q.empty_polls,
                            to_kernel: q.to_kernel,
                            from_kernel: q.from_kernel,
                            redirected_out: q.redirected_out,
                            redirected_in: q.redirected_in,
                            redirect_dropped: q.redirect_dropped,
                        }
                    })
                    .collect(),
            }
        }
    }

    fn eal_config(d: &DpdkOptions) -> EalConfig {
        let base = if d.hugepages {
            EalConfig::hugepages()
        } else {
            EalConfig::no_huge(d.mem_mb)
        };
        // One lcore, not pinned to a single CPU: EAL would otherwise pin the
        // calling thread (and so every thread it starts later) to CPU 0.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut cfg = base
            .arg(&format!("--lcores=0@(0-{})", cpus.saturating_sub(1)))
            .arg(&format!("--file-prefix=dpvsd{}", std::process::id()));
        for a in &d.eal_args {
            cfg = cfg.arg(a);
        }
        cfg
    }

    /// Opens every port (each with its queue pairs, TAP and steering)
    /// and starts the workers, each polling its queue pair of every port.
    /// A port that fails closes the ones opened before it.
    pub fn start(d: &DpdkOptions, dp: &mut Dataplane) -> Result<Vec<Port>, BackendError> {
        d.check_ports()?;
        d.check_cores(dataplane::io::affinity::online_cpus())?;
        let eal = eal_config(d);
        tracing::info!(args = %eal.args.join(" "), "starting DPDK EAL");
        eal_init(&eal)?;
        let mut ports = Vec::new();
        let mut queues: Vec<Vec<_>> = Vec::new();
        for (i, spec) in d.ports.iter().enumerate() {
            let kni = d.kni.as_deref().map(|k| tap_name(k, i));
            let cfg = PortConfig {
                queues: d.workers.max(1),
                mbufs: d.mbufs,
                exception_tap: kni.clone(),
                ..PortConfig::default()
            };
            let mut device = DpdkDevice::open(spec, &cfg)?;
            tracing::info!(port = %device.name(), dev = %format!("dpdk{i}"), mac = %device.mac(), workers = cfg.queues, kni = ?kni, "dataplane forwarding (dpdk)");
            queues.push(device.take_queues());
            ports.push(Port {
                queues: device.queue_stats().to_vec(),
                device,
                kni,
            });
        }
        for _ in 0..d.workers.max(1) {
            let mine: Vec<_> = queues
                .iter_mut()
                .filter_map(|q| (!q.is_empty()).then(|| q.remove(0)))
                .collect();
            let io = DpdkPorts::new(mine).ok_or(BackendError::Ports("no port given".into()))?;
            dp.spawn_worker(io).map_err(BackendError::Worker)?;
        }
        Ok(ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(workers: u16, cores: Vec<usize>) -> DpdkOptions {
        DpdkOptions {
            ports: vec!["net_null0".into()],
            kni: None,
            workers,
            hugepages: false,
            mem_mb: 128,
            mbufs: 1023,
            eal_args: Vec::new(),
            cores,
        }
    }

    #[test]
    fn each_port_has_its_tap_named_with_its_index() {
        let names = |first: &str| (0..3).map(|i| tap_name(first, i)).collect::<Vec<_>>();
        assert_eq!(names("dpdk0"), ["dpdk0", "dpdk1", "dpdk2"]);
        assert_eq!(names("dpdk0.kni"), ["dpdk0.kni", "dpdk1.kni", "dpdk2.kni"]);
        assert_eq!(names("kni"), ["kni", "kni1", "kni2"]);
        assert_eq!(names("tap10x"), ["tap10x", "tap1x", "tap2x"]);
    }

    #[test]
    fn ports_are_given_once_each() {
        let with = |ports: &[&str]| DpdkOptions {
            ports: ports.iter().map(|p| p.to_string()).collect(),
            ..opts(1, Vec::new())
        };
        assert!(with(&["net_null0", "net_null1,size=64"])
            .check_ports()
            .is_ok());
        let msg = |o: DpdkOptions| o.check_ports().map_err(|e| e.to_string());
        assert_eq!(
            msg(with(&["net_null0", "net_null0,size=64"])),
            Err("--dpdk-port: port net_null0 is given twice".into())
        );
        assert_eq!(msg(with(&[])), Err("--dpdk-port: no port given".into()));
    }

    #[test]
    fn cpu_lists_parse_as_taskset_writes_them() {
        assert_eq!(parse_cpu_list("1"), Ok(vec![1]));
        assert_eq!(parse_cpu_list("0,2-4, 7"), Ok(vec![0, 2, 3, 4, 7]));
        for bad in ["", "a", "3-1", "1-", "1,,2", "-1"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!("2-3".parse::<CpuList>(), Ok(CpuList(vec![2, 3])));
    }

    #[test]
    fn cores_must_match_the_workers_and_be_online() {
        assert!(opts(2, Vec::new()).check_cores(2).is_ok());
        assert!(opts(2, vec![0, 1]).check_cores(2).is_ok());
        let msg = |o: DpdkOptions| o.check_cores(2).map_err(|e| e.to_string());
        assert_eq!(
            msg(opts(2, vec![1])),
            Err("--dpdk-cores: 1 CPU(s) listed for 2 worker(s); list one per worker".into())
        );
        assert_eq!(
            msg(opts(2, vec![1, 1])),
            Err("--dpdk-cores: CPU 1 is listed twice".into())
        );
        assert_eq!(
            msg(opts(1, vec![2])),
            Err("--dpdk-cores: CPU 2 is not online (CPUs 0-1)".into())
        );
    }
}
