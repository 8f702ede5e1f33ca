//! The control side of the dataplane: desired state, snapshot building,
//! worker lifecycle. All changes arrive as [`Command`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::command::{
    Command, CommandError, Forwarding, RealServerSpec, Scheduler, ServiceKey, ServiceSpec,
};
use crate::engine::{Engine, ServerSnap, ServiceSnap, Snapshot, LOCAL_PORT_MIN};
use crate::io::PacketIo;
use crate::sched::{SchedServer, SchedTable};
use crate::stats::{Drop, Traffic, TrafficSnapshot};
use crate::worker::{self, Published, WorkerStats};

/// Sizing of the dataplane.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Connections per worker (memory is allocated up front).
    pub conn_capacity: usize,
    /// How many workers will be spawned: the FNAT local port space is split
    /// into this many disjoint ranges, one per worker.
    pub workers: usize,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            conn_capacity: 1 << 18,
            workers: 1,
        }
    }
}

#[derive(Debug)]
struct ServerState {
    spec: RealServerSpec,
    stats: Arc<Traffic>,
}

#[derive(Debug)]
struct ServiceState {
    spec: ServiceSpec,
    stats: Arc<Traffic>,
    servers: Vec<ServerState>,
    /// Counters of deleted servers, restored if they come back (IPVS's trash).
    trash: HashMap<SocketAddr, Arc<Traffic>>,
}

/// Status of one real server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerStatus {
    pub addr: SocketAddr,
    pub weight: u32,
    /// False for a server that was removed (its counters are kept, as IPVS's trash does).
    pub in_service: bool,
    pub stats: TrafficSnapshot,
}

/// Status of one service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceStatus {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub forwarding: Forwarding,
    pub local_addrs: Vec<IpAddr>,
    pub vip_owned: bool,
    pub stats: TrafficSnapshot,
    pub servers: Vec<ServerStatus>,
}

/// One drop counter, summed over workers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DropStat {
    pub name: &'static str,
    pub description: &'static str,
    pub count: u64,
}

/// Everything `dpvsctl` shows about the dataplane.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DataplaneStatus {
    pub workers: usize,
    pub conns: u64,
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub services: Vec<ServiceStatus>,
    pub drops: Vec<DropStat>,
}

#[derive(Debug)]
struct WorkerHandle {
    join: Option<JoinHandle<()>>,
    stats: Arc<WorkerStats>,
}

/// The dataplane: apply [`Command`]s, spawn workers, read status.
#[derive(Debug)]
pub struct Dataplane {
    cfg: DataplaneConfig,
    services: BTreeMap<ServiceKey, ServiceState>,
    vip_owned: BTreeMap<IpAddr, bool>,
    published: Arc<Published>,
    workers: Vec<WorkerHandle>,
    stop: Arc<AtomicBool>,
}

fn v4(ip: IpAddr, what: &str) -> Result<Ipv4Addr, CommandError> {
    match ip {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(CommandError::Unsupported {
            what: format!("IPv6 {what} {ip}"),
        }),
    }
}

impl Dataplane {
    pub fn new(cfg: DataplaneConfig) -> Dataplane {
        Dataplane {
            cfg,
            services: BTreeMap::new(),
            vip_owned: BTreeMap::new(),
            published: Arc::default(),
            workers: Vec::new(),
            stop: Arc::default(),
        }
    }

    /// Applies one command and publishes the result to the workers.
    ///
    /// # Errors
    /// The command is invalid in the current state; nothing was changed.
    pub fn apply(&mut self, cmd: Command) -> Result<(), CommandError> {
        self.apply_one(cmd)?;
        self.publish();
        Ok(())
    }

    /// Applies commands in order and publishes once. Stops at the first
    /// error; the commands before it stay applied (and are published).
    ///
    /// # Errors
    /// The first command that was refused, with its reason.
    pub fn apply_all(
        &mut self,
        cmds: impl IntoIterator<Item = Command>,
    ) -> Result<(), CommandError> {
        let result = cmds.into_iter().try_for_each(|c| self.apply_one(c));
        self.publish();
        result
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Result<&mut ServiceState, CommandError> {
        self.services
            .get_mut(key)
            .ok_or(CommandError::NoSuchService(*key))
    }

    fn apply_one(&mut self, cmd: Command) -> Result<(), CommandError> {
        match cmd {
            Command::AddService(spec) => {
                if self.services.contains_key(&spec.key) {
                    return Err(CommandError::ServiceExists(spec.key));
                }
                v4(spec.key.addr, "virtual server")?;
                if spec.local_addrs.is_empty() {
                    return Err(CommandError::Invalid {
                        reason: format!("FNAT service {} has no local addresses", spec.key),
                    });
                }
                for &a in &spec.local_addrs {
                    v4(a, "local address")?;
                }
                self.services.insert(
                    spec.key,
                    ServiceState {
                        spec,
                        stats: Arc::new(Traffic::new(self.cfg.workers)),
                        servers: Vec::new(),
                        trash: HashMap::new(),
                    },
                );
            }
            Command::DelService(key) => {
                self.services
                    .remove(&key)
                    .ok_or(CommandError::NoSuchService(key))?;
            }
            Command::AddRealServer { service, server } => {
                v4(server.addr.ip(), "real server")?;
                let workers = self.cfg.workers;
                let svc = self.service_mut(&service)?;
                if svc.servers.iter().any(|s| s.spec.addr == server.addr) {
                    return Err(CommandError::ServerExists {
                        service,
                        server: server.addr,
                    });
                }
                let stats = svc
                    .trash
                    .remove(&server.addr)
                    .unwrap_or_else(|| Arc::new(Traffic::new(workers)));
                svc.servers.push(ServerState {
                    spec: server,
                    stats,
                });
            }
            Command::DelRealServer { service, server } => {
                let svc = self.service_mut(&service)?;
                let i = svc
                    .servers
                    .iter()
                    .position(|s| s.spec.addr == server)
                    .ok_or(CommandError::NoSuchServer { service, server })?;
                let gone = svc.servers.remove(i);
                svc.trash.insert(server, gone.stats);
            }
            Command::SetWeight {
                service,
                server,
                weight,
            } => {
                let svc = self.service_mut(&service)?;
                let s = svc
                    .servers
                    .iter_mut()
                    .find(|s| s.spec.addr == server)
                    .ok_or(CommandError::NoSuchServer { service, server })?;
                s.spec.weight = weight;
            }
            Command::SetVipOwned { vip, owned } => {
                self.vip_owned.insert(vip, owned);
            }
        }
        Ok(())
    }

    fn owned(&self, vip: IpAddr) -> bool {
        self.vip_owned.get(&vip).copied().unwrap_or(true)
    }

    fn build_snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut vips = BTreeSet::new();
        let mut lips = BTreeSet::new();
        let mut neighbours = BTreeMap::new();
        for (key, svc) in &self.services {
            let (Ok(vip), true) = (v4(key.addr, "vip"), self.owned(key.addr)) else {
                continue;
            };
            let local_addrs: Vec<Ipv4Addr> = svc
                .spec
                .local_addrs
                .iter()
                .filter_map(|&a| v4(a, "lip").ok())
                .collect();
            let servers: Vec<ServerSnap> = svc
                .servers
                .iter()
                .filter_map(|s| {
                    let addr = v4(s.spec.addr.ip(), "rs").ok()?;
                    Some(ServerSnap {
                        addr,
                        port: s.spec.addr.port(),
                        stats: Arc::clone(&s.stats),
                    })
                })
                .collect();
            let sched: Vec<SchedServer> = svc
                .servers
                .iter()
                .map(|s| SchedServer {
                    id: s.spec.addr,
                    weight: s.spec.weight,
                })
                .collect();
            if let Some(&source) = local_addrs.first() {
                for s in &servers {
                    neighbours.entry(s.addr).or_insert(source);
                }
            }
            vips.insert(vip);
            lips.extend(local_addrs.iter().copied());
            snap.lookup
                .insert((vip, key.port, key.protocol.number()), snap.services.len());
            snap.services.push(ServiceSnap {
                key: *key,
                stats: Arc::clone(&svc.stats),
                table: SchedTable::build_servers(svc.spec.scheduler, &sched),
                servers,
                local_addrs,
            });
        }
        snap.owned_vips = vips.into_iter().collect();
        snap.local_addrs = lips.into_iter().collect();
        snap.neighbours = neighbours.into_iter().collect();
        snap
    }

    fn publish(&self) {
        self.published.publish(self.build_snapshot());
    }

    /// Starts a worker thread forwarding on `io`.
    ///
    /// # Errors
    /// More workers than [`DataplaneConfig::workers`], or the thread could
    /// not be spawned.
    pub fn spawn_worker<I: PacketIo + 'static>(&mut self, io: I) -> std::io::Result<()> {
        let i = self.workers.len();
        let n = self.cfg.workers.max(1);
        if i >= n {
            return Err(std::io::Error::other(format!(
                "dataplane configured for {n} worker(s); cannot start another"
            )));
        }
        let span = (usize::from(u16::MAX) - usize::from(LOCAL_PORT_MIN) + 1) / n;
        let lo = usize::from(LOCAL_PORT_MIN) + i * span;
        let hi = (lo + span - 1).min(usize::from(u16::MAX));
        let stats = Arc::new(WorkerStats::default());
        let engine = Engine::new(
            i,
            io.mac(),
            self.cfg.conn_capacity,
            (lo as u16, hi as u16),
            Arc::clone(&stats.drops),
        );
        let (published, stop, wstats) = (
            Arc::clone(&self.published),
            Arc::clone(&self.stop),
            Arc::clone(&stats),
        );
        let join = std::thread::Builder::new()
            .name(format!("dp-worker{i}"))
            .spawn(move || worker::run(io, engine, published, wstats, stop))?;
        self.workers.push(WorkerHandle {
            join: Some(join),
            stats,
        });
        Ok(())
    }

    /// A consistent-enough view for `dpvsctl` (counters are read without stopping workers).
    pub fn status(&self) -> DataplaneStatus {
        let services = self
            .services
            .iter()
            .map(|(key, s)| ServiceStatus {
                key: *key,
                scheduler: s.spec.scheduler,
                forwarding: s.spec.forwarding,
                local_addrs: s.spec.local_addrs.clone(),
                vip_owned: self.owned(key.addr),
                stats: s.stats.snapshot(),
                servers: s
                    .servers
                    .iter()
                    .map(|r| ServerStatus {
                        addr: r.spec.addr,
                        weight: r.spec.weight,
                        in_service: true,
                        stats: r.stats.snapshot(),
                    })
                    .chain(s.trash.iter().map(|(addr, stats)| ServerStatus {
                        addr: *addr,
                        weight: 0,
                        in_service: false,
                        stats: stats.snapshot(),
                    }))
                    .collect(),
            })
            .collect();
        let sum =
            |f: &dyn Fn(&WorkerStats) -> u64| self.workers.iter().map(|w| f(&w.stats)).sum::<u64>();
        let drops = Drop::ALL
            .iter()
            .map(|&d| DropStat {
                name: d.name(),
                description: d.description(),
                count: sum(&|w| w.drops.get(d)),
            })
            .collect();
        DataplaneStatus {
            workers: self.workers.len(),
            conns: sum(&|w| w.conns.load(Ordering::Relaxed)),
            rx_frames: sum(&|w| w.rx_frames.load(Ordering::Relaxed)),
            tx_frames: sum(&|w| w.tx_frames.load(Ordering::Relaxed)),
            services,
            drops,
        }
    }

    /// Stops and joins every worker.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            if let Some(j) = w.join.take() {
                if j.join().is_err() {
                    tracing::error!("a dataplane worker panicked");
                }
            }
        }
    }
}

impl std::ops::Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
