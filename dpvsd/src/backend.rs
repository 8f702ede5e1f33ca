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
    /// A PCI address or a vdev (`net_af_packet0,iface=eth0`, `net_pcap0,…`).
    pub port: String,
    /// Name of the kernel exception TAP (`None`: no exception path).
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
}

impl BackendOptions {
    /// Worker threads the dataplane needs.
    pub fn workers(&self) -> usize {
        match self {
            BackendOptions::AfPacket => 1,
            BackendOptions::Dpdk(d) => usize::from(d.workers.max(1)),
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
    #[error("--workers {0}: more than one worker needs FNAT/NAT return traffic steered to the worker that owns the connection, which dpvsd does not do yet; use --workers 1")]
    Workers(u16),
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
    /// In a mutex because a DPDK device is `Send` but not `Sync`.
    #[cfg(feature = "dpdk")]
    dpdk: Option<std::sync::Mutex<dpdk::Port>>,
}

impl Running {
    /// Port and queue counters (`dpvsctl status --json` → `ports`).
    pub fn ports(&self) -> Vec<crate::ctl::PortInfo> {
        #[cfg(feature = "dpdk")]
        if let Some(p) = &self.dpdk {
            let p = p.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            return vec![p.info()];
        }
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
            dpdk: Some(std::sync::Mutex::new(dpdk::start(d, dp)?)),
        }),
        #[cfg(not(feature = "dpdk"))]
        BackendOptions::Dpdk(_) => Err(BackendError::NoDpdk),
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Duration;

    use dataplane::io::dpdk::{
        eal_init, DpdkDevice, EalConfig, KernelAddrs, PortConfig, QueueStats,
    };
    use dataplane::Dataplane;

    use super::{BackendError, DpdkOptions};
    use crate::ctl::{PortInfo, QueueInfo};

    /// The open port; dropping it stops the address watcher.
    #[derive(Debug)]
    pub struct Port {
        device: DpdkDevice,
        queues: Vec<Arc<QueueStats>>,
        kni: Option<String>,
        watcher: Option<tokio::task::JoinHandle<()>>,
    }

    impl Drop for Port {
        fn drop(&mut self) {
            if let Some(w) = self.watcher.take() {
                w.abort();
            }
        }
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

    pub fn start(d: &DpdkOptions, dp: &mut Dataplane) -> Result<Port, BackendError> {
        if d.workers > 1 {
            return Err(BackendError::Workers(d.workers));
        }
        let eal = eal_config(d);
        tracing::info!(args = %eal.args.join(" "), "starting DPDK EAL");
        eal_init(&eal)?;
        let cfg = PortConfig {
            queues: d.workers.max(1),
            mbufs: d.mbufs,
            exception_tap: d.kni.clone(),
            ..PortConfig::default()
        };
        let mut device = DpdkDevice::open(&d.port, &cfg)?;
        let queues = device.queue_stats().to_vec();
        tracing::info!(port = %device.name(), mac = %device.mac(), workers = cfg.queues, kni = ?d.kni, "dataplane forwarding (dpdk)");
        for q in device.take_queues() {
            dp.spawn_worker(q).map_err(BackendError::Worker)?;
        }
        let watcher = d
            .kni
            .clone()
            .map(|kni| tokio::spawn(watch_kernel_addrs(kni, device.kernel_addrs())));
        Ok(Port {
            device,
            queues,
            kni: d.kni.clone(),
            watcher,
        })
    }

    /// The IPv4 addresses the kernel holds on `iface`.
    fn addresses(iface: &str) -> Vec<Ipv4Addr> {
        nix::ifaddrs::getifaddrs()
            .map(|all| {
                all.filter(|i| i.interface_name == iface)
                    .filter_map(|i| i.address?.as_sockaddr_in().map(|a| a.ip()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keeps the exception path's address set equal to the TAP's kernel
    /// addresses (the operator configures them with `ip addr`, as on
    /// DPVS's KNI interface).
    async fn watch_kernel_addrs(iface: String, set: Arc<KernelAddrs>) {
        let mut last = Vec::new();
        loop {
            let now = addresses(&iface);
            if now != last {
                tracing::info!(%iface, addrs = ?now, "kernel exception path addresses");
                set.set(&now);
                last = now;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
