//! The running daemon: builds the runtime from a [`Plan`], keeps the
//! dataplane reconciled with the desired state of every real server (health
//! changes, dynamic weights and reloads all go through [`desired`] and
//! [`transition`]), serves the control socket, reloads on SIGHUP, and stops
//! cleanly on SIGTERM/SIGINT.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::{Command, Dataplane, DataplaneConfig, Device, RealServerSpec, ServiceKey};
use healthcheck::{HealthChecker, HealthEvent, MiscSpec, Quorum, QuorumTransition, SubjectId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

use crate::assemble::{self, Plan, QuorumPlan, ServerPlan, ServicePlan, SorryPlan, VrrpPlan};
use crate::backend::{self, BackendOptions};
use crate::ctl::{
    CheckInfo, CtlCommand, ListInfo, OspfInfo, RealServerInfo, ReloadInfo, Request, Response,
    ServiceInfo, StatusInfo, VrrpInfo, MAX_REQUEST, VERSION,
};
use crate::ospf_rt::{self, OspfMsg, OspfSnapshot};
use crate::vrrp_rt::{self, VrrpMsg, VrrpSnapshot};
use crate::{announce, info, notify, reload};

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    pub socket: PathBuf,
    /// What the dataplane forwards on: the AF_PACKET interface or the DPDK
    /// port; `None` runs without forwarding.
    pub interface: Option<String>,
    /// Which packet I/O backend.
    pub backend: BackendOptions,
    pub conn_capacity: usize,
    /// How the config file is read again on reload.
    pub load: keepalived_parser::LoadOptions,
    /// `--strict` / `--dialect`, kept for reloads.
    pub mode: keepalived_parser::ParseMode,
    /// Where Prometheus metrics are served (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Where SIGUSR1 writes the data dump and SIGUSR2 the stats dump.
    pub data_dump_file: PathBuf,
    pub stats_dump_file: PathBuf,
    /// Changes the log filter (`dpvsctl log-level`); `None`: not possible.
    pub log: Option<crate::logging::LogControl>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("control socket {path}: another dpvsd is already listening there")]
    SocketBusy { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataplane: {0}")]
    Backend(#[from] crate::backend::BackendError),
    #[error("dataplane refused the configuration: {0}")]
    Command(#[from] dataplane::CommandError),
    /// Configuration the interface cannot serve (snat_rt.rs), one line per
    /// problem.
    #[error("{0}")]
    Config(String),
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct ServerRuntime {
    service: ServiceKey,
    /// Address and configured weight (`iweight`).
    spec: RealServerSpec,
    /// Sum of the dynamic checker deltas (misc_dynamic).
    delta: i64,
    inhibit: bool,
    up: bool,
    /// `dpvsctl weight` / `drain`: replaces the weight while up.
    weight_override: Option<u32>,
    /// Quorum is down and the service's sorry server serves: keepalived
    /// takes the alive servers out (state and weight are still tracked).
    withheld: bool,
}

impl ServerRuntime {
    fn new(service: ServiceKey, s: &ServerPlan) -> ServerRuntime {
        ServerRuntime {
            service,
            spec: s.spec,
            delta: 0,
            inhibit: s.inhibit_on_failure,
            up: s.subject.initially_up(),
            weight_override: None,
            withheld: false,
        }
    }

    /// keepalived's effective weight: iweight + deltas, clamped to 0..=i32::MAX.
    fn effective_weight(&self) -> u32 {
        if let Some(w) = self.weight_override {
            return w;
        }
        (i64::from(self.spec.weight) + self.delta).clamp(0, i64::from(i32::MAX)) as u32
    }
}

/// Where a server should be in the dataplane: `Some(weight)` present with
/// that weight, `None` absent (keepalived: a failed server is removed, or
/// kept with weight 0 under `inhibit_on_failure`).
fn desired(s: &ServerRuntime) -> Option<u32> {
    match (s.up && !s.withheld, s.inhibit) {
        (true, _) => Some(s.effective_weight()),
        (false, true) => Some(0),
        (false, false) => None,
    }
}

/// The one command (if any) that moves a server from `from` to `to`.
fn transition(
    service: ServiceKey,
    addr: SocketAddr,
    from: Option<u32>,
    to: Option<u32>,
) -> Option<Command> {
    match (from, to) {
        (None, Some(weight)) => Some(Command::AddRealServer {
            service,
            server: RealServerSpec { addr, weight },
        }),
        (Some(_), None) => Some(Command::DelRealServer {
            service,
            server: addr,
        }),
        (Some(a), Some(b)) if a != b => Some(Command::SetWeight {
            service,
            server: addr,
            weight: b,
        }),
        _ => None,
    }
}

/// What the daemon runs now; replaced piece by piece on reload.
#[derive(Debug)]
struct RunState {
    plan: Plan,
    servers: BTreeMap<SubjectId, ServerRuntime>,
    /// Stable health-subject ids by (service, real server), kept across reloads.
    ids: BTreeMap<(ServiceKey, SocketAddr), SubjectId>,
    next_id: u64,
    loaded_unix: u64,
    reloads: u64,
    /// Quorum state of each service.
    quorums: BTreeMap<ServiceKey, QuorumRuntime>,
}

/// One service's quorum and sorry-server state.
#[derive(Debug)]
struct QuorumRuntime {
    plan: QuorumPlan,
    quorum: Quorum,
    /// The sorry server serves (quorum down and a sorry server configured).
    sorry_active: bool,
}

/// Where the sorry server should be: weight 1 while active; with
/// `sorry_server_inhibit`, weight 0 otherwise, else absent.
fn sorry_desired(sorry: &SorryPlan, active: bool) -> Option<u32> {
    match (active, sorry.inhibit) {
        (true, _) => Some(1),
        (false, true) => Some(0),
        (false, false) => None,
    }
}

impl RunState {
    /// Gives the plan's subjects their stable ids: a server that already runs
    /// keeps its id (and so its health state); a new one gets a fresh id.
    fn assign_ids(&mut self, plan: &mut Plan) {
        for svc in &mut plan.services {
            for s in &mut svc.servers {
                let key = (svc.spec.key, s.spec.addr);
                let id = *self.ids.entry(key).or_insert_with(|| {
                    self.next_id += 1;
                    SubjectId(self.next_id)
                });
                s.subject.id = id;
            }
        }
    }

    /// The commands that install a service with its servers (whose runtime
    /// entries must exist) and its sorry server in their current state.
    fn service_commands(&self, svc: &ServicePlan) -> Vec<Command> {
        let key = svc.spec.key;
        // Devices first: the service's first snapshot announces its
        // addresses.
        let mut cmds: Vec<Command> = svc
            .devices
            .iter()
            .map(|&(addr, device)| Command::SetDevice { addr, device })
            .collect();
        cmds.push(Command::AddService(svc.spec.clone()));
        for s in &svc.servers {
            let to = self.servers.get(&s.subject.id).and_then(desired);
            cmds.extend(transition(key, s.spec.addr, None, to));
        }
        if let Some(q) = self.quorums.get(&key) {
            if let Some(sorry) = &q.plan.sorry {
                cmds.extend(transition(
                    key,
                    sorry.addr,
                    None,
                    sorry_desired(sorry, q.sorry_active),
                ));
            }
        }
        cmds
    }

    /// keepalived's quorum sum: the clamped effective weights of the alive
    /// servers of `key`.
    fn quorum_sum(&self, key: ServiceKey) -> u64 {
        self.servers
            .values()
            .filter(|s| s.service == key && s.up)
            .map(|s| u64::from(s.effective_weight()))
            .sum()
    }

    /// Re-evaluates the quorum of `key` after a change; returns the dataplane
    /// commands and the script to run. On loss with a sorry server the alive
    /// servers are taken out and the sorry server put in; on gain the
    /// reverse (KEEPALIVED.md §9). The first evaluation sets the initial
    /// state, which only acts (and runs `quorum_down`) when quorum is down.
    fn evaluate_quorum(&mut self, key: ServiceKey) -> (Vec<Command>, Option<MiscSpec>) {
        let sum = self.quorum_sum(key);
        let Some(q) = self.quorums.get_mut(&key) else {
            return (Vec::new(), None);
        };
        let (active, script) = match q.quorum.evaluate(sum) {
            Some(QuorumTransition::Initial { up: true }) | None => return (Vec::new(), None),
            Some(QuorumTransition::Initial { up: false } | QuorumTransition::Lost) => {
                tracing::warn!(service = %key, sum, quorum = q.quorum.quorum(), "quorum lost");
                (true, q.plan.down_script.clone())
            }
            Some(QuorumTransition::Gained) => {
                tracing::info!(service = %key, sum, quorum = q.quorum.quorum(), "quorum gained");
                (false, q.plan.up_script.clone())
            }
        };
        let Some(sorry) = q.plan.sorry else {
            return (Vec::new(), script);
        };
        let was = q.sorry_active;
        q.sorry_active = active;
        let mut cmds = Vec::new();
        // Sorry server in before the real servers go out; out after they
        // are back.
        let sorry_cmd = transition(
            key,
            sorry.addr,
            sorry_desired(&sorry, was),
            sorry_desired(&sorry, active),
        );
        if active {
            cmds.extend(sorry_cmd.clone());
        }
        for s in self.servers.values_mut().filter(|s| s.service == key) {
            let from = desired(s);
            s.withheld = active;
            cmds.extend(transition(key, s.spec.addr, from, desired(s)));
        }
        if !active {
            cmds.extend(sorry_cmd);
        }
        (cmds, script)
    }

    /// Sets the quorum state of every service of `plan` (start-up and reload).
    /// A service whose quorum settings are unchanged keeps its state; others
    /// start afresh: a sorry server of the old settings is taken out (the
    /// real servers put back), then the new settings are evaluated. Returns
    /// the dataplane commands and the scripts to run.
    fn sync_quorums(&mut self, plan: &Plan) -> (Vec<Command>, Vec<MiscSpec>) {
        let (mut cmds, mut scripts) = (Vec::new(), Vec::new());
        let keys: BTreeSet<ServiceKey> = plan.services.iter().map(|s| s.spec.key).collect();
        self.quorums.retain(|key, _| keys.contains(key));
        for svc in &plan.services {
            let key = svc.spec.key;
            if self.quorums.get(&key).is_some_and(|q| q.plan == svc.quorum) {
                continue;
            }
            if let Some(old) = self.quorums.remove(&key) {
                if let Some(sorry) = &old.plan.sorry {
                    cmds.extend(transition(
                        key,
                        sorry.addr,
                        sorry_desired(sorry, old.sorry_active),
                        None,
                    ));
                }
                for s in self.servers.values_mut().filter(|s| s.service == key) {
                    let from = desired(s);
                    s.withheld = false;
                    cmds.extend(transition(key, s.spec.addr, from, desired(s)));
                }
            }
            let q = &svc.quorum;
            self.quorums.insert(
                key,
                QuorumRuntime {
                    plan: q.clone(),
                    quorum: Quorum::new(q.quorum, q.hysteresis),
                    sorry_active: false,
                },
            );
            if let Some(sorry) = &q.sorry {
                cmds.extend(transition(
                    key,
                    sorry.addr,
                    None,
                    sorry_desired(sorry, false),
                ));
            }
            let (c, script) = self.evaluate_quorum(key);
            cmds.extend(c);
            scripts.extend(script);
        }
        (cmds, scripts)
    }
}

#[derive(Debug)]
struct Shared {
    opts: Options,
    /// Lock order: `state`, then `dp`.
    state: Mutex<RunState>,
    /// Shared with the VRRP VIP owner.
    dp: Arc<Mutex<Dataplane>>,
    /// The packet I/O backend (its ports' counters).
    backend: backend::Running,
    health: HealthChecker,
    started: Instant,
    vrrp: mpsc::UnboundedSender<VrrpMsg>,
    vrrp_status: watch::Receiver<VrrpSnapshot>,
    ospf: mpsc::UnboundedSender<OspfMsg>,
    ospf_status: watch::Receiver<OspfSnapshot>,
    /// The VIPs OSPF announces (the announce rule's result).
    announce: watch::Sender<BTreeSet<Ipv4Addr>>,
}

/// Addresses bound to a port dpvsd does not drive (`vip_bind_dev dpdk2`
/// with two `--dpdk-port`s), one line each naming where it is: refused at
/// start and on reload.
fn device_errors(opts: &Options, plan: &Plan) -> Vec<String> {
    let ports = port_count(opts);
    plan.services
        .iter()
        .flat_map(|s| {
            s.devices
                .iter()
                .filter(|(_, d)| usize::from(d.port) >= ports)
                .map(move |(a, d)| {
                    format!(
                        "{}: {a} is bound to {d}, but dpvsd drives {ports} port(s) (dpdk0 … as --dpdk-port is given)",
                        s.location
                    )
                })
        })
        .collect()
}

/// The ports dpvsd forwards on: the DPDK ports, or the one interface.
fn port_count(opts: &Options) -> usize {
    match &opts.backend {
        BackendOptions::Dpdk(d) => d.ports.len().max(1),
        BackendOptions::AfPacket => 1,
    }
}

/// The kernel side of port `port`: the forwarding interface itself (port
/// 0), or with DPDK the port's exception TAP (if any).
fn port_kernel_if(opts: &Options, port: u16) -> Option<String> {
    match &opts.backend {
        BackendOptions::Dpdk(d) => d
            .kni
            .as_deref()
            .map(|k| crate::backend::tap_name(k, usize::from(port))),
        BackendOptions::AfPacket => opts.interface.clone().filter(|_| port == 0),
    }
}

/// Fills the gateways of `plan`'s SNAT services ([`crate::snat_rt::resolve`]).
fn resolve_snat(opts: &Options, plan: &mut Plan) -> Result<(), Vec<String>> {
    crate::snat_rt::resolve(plan, opts.interface.as_deref(), port_count(opts), |p| {
        port_kernel_if(opts, p)
    })
}

/// The kernel side of the forwarding interface: the interface itself, or
/// with DPDK the exception TAP (if any).
fn kernel_if(opts: &Options) -> Option<&str> {
    match &opts.backend {
        BackendOptions::Dpdk(d) => d.kni.as_deref(),
        BackendOptions::AfPacket => opts.interface.as_deref(),
    }
}

/// The VIPs the dataplane forwards for (and so owns): the virtual servers'
/// addresses when an interface is given.
fn forwarded(opts: &Options, plan: &Plan) -> BTreeSet<IpAddr> {
    if opts.interface.is_none() {
        return BTreeSet::new();
    }
    // Match (SNAT) services have no VIP: their addresses are the servers.
    plan.services
        .iter()
        .filter(|s| s.spec.snat.is_none())
        .map(|s| s.spec.key.addr)
        .collect()
}

/// Ownership of every forwarded VIP given the VRRP instances' states now:
/// a VRRP-managed VIP is owned while its instance is MASTER.
fn ownership_now(
    forwarded: &BTreeSet<IpAddr>,
    vrrp: Option<&VrrpPlan>,
    snapshot: &VrrpSnapshot,
) -> Vec<Command> {
    let managed: BTreeMap<IpAddr, &str> = vrrp.map(|p| p.vips().collect()).unwrap_or_default();
    forwarded
        .iter()
        .map(|&vip| {
            let owned = match managed.get(&vip) {
                None => true,
                Some(name) => snapshot
                    .instances
                    .iter()
                    .any(|i| i.name == *name && i.state == vrrp::instance::State::Master),
            };
            Command::SetVipOwned { vip, owned }
        })
        .collect()
}

/// Re-evaluates the announce rule and hands the result to OSPF.
fn reannounce(shared: &Shared, state: &RunState) {
    let want = announce::announced(&verdicts(shared, state));
    shared.announce.send_if_modified(|w| {
        if *w == want {
            return false;
        }
        tracing::info!(vips = ?want, "OSPF announcement changed");
        *w = want;
        true
    });
}

fn verdicts(shared: &Shared, state: &RunState) -> Vec<announce::Verdict> {
    let snapshot = shared.vrrp_status.borrow().clone();
    announce::verdicts(
        &state.plan.services,
        |id| {
            state
                .servers
                .get(&id)
                .is_some_and(|s| s.up && s.effective_weight() > 0)
        },
        |key| state.quorums.get(&key).and_then(|q| q.quorum.is_up()),
        state.plan.vrrp.as_ref(),
        &snapshot.instances,
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Binds the control socket: refuses if another daemon answers on it,
/// removes a stale file, and leaves the socket with mode 0600.
fn bind_socket(path: &Path) -> Result<UnixListener, StartError> {
    let sock_err = |source| StartError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sock_err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(StartError::SocketBusy {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(sock_err)?;
    }
    let listener = UnixListener::bind(path).map_err(sock_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    Ok(listener)
}

/// Runs until SIGTERM or SIGINT.
///
/// # Errors
/// Anything that prevents starting; nothing is left half-configured.
pub async fn run(opts: Options, mut plan: Plan) -> Result<(), StartError> {
    let signal_err = |source| StartError::Socket {
        path: "signal handler".into(),
        source,
    };
    let mut term = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let mut hup = signal(SignalKind::hangup()).map_err(signal_err)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(signal_err)?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(signal_err)?;
    let metrics_listener = match opts.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let listener = bind_socket(&opts.socket)?;
    resolve_snat(&opts, &mut plan).map_err(|e| StartError::Config(e.join("\n")))?;

    let mut state = RunState {
        plan: Plan::default(),
        servers: BTreeMap::new(),
        ids: BTreeMap::new(),
        next_id: 0,
        loaded_unix: unix_now(),
        reloads: 0,
        quorums: BTreeMap::new(),
    };
    state.assign_ids(&mut plan);
    for svc in &plan.services {
        for s in &svc.servers {
            state
                .servers
                .insert(s.subject.id, ServerRuntime::new(svc.spec.key, s));
        }
    }
    // The initial quorum state decides whether the sorry servers serve from
    // the start; service_commands below installs that state.
    let (_installed_below, quorum_scripts) = state.sync_quorums(&plan);
    let started = (|| -> Result<_, StartError> {
        let bad = device_errors(&opts, &plan);
        if !bad.is_empty() {
            return Err(StartError::Config(bad.join("\n")));
        }
        let mut dp = Dataplane::new(DataplaneConfig {
            conn_capacity: opts.conn_capacity,
            workers: opts.backend.workers(),
            cores: opts.backend.cores(),
        });
        dp.apply_all(
            plan.services
                .iter()
                .flat_map(|svc| state.service_commands(svc)),
        )?;
        // VRRP-managed VIPs are not owned until their instance is MASTER.
        dp.apply_all(vrrp_rt::baseline_ownership(
            &forwarded(&opts, &plan),
            plan.vrrp.as_ref(),
        ))?;
        let backend = match &opts.interface {
            Some(ifname) => {
                // Source of ARP requests and TUN outer headers of services
                // without local addresses (NAT, DR, TUN): the interface's
                // addresses, or with DPDK the exception TAPs' (followed).
                if let Some(name) = kernel_if(&opts) {
                    let all = ospf_rt::kernel_addrs();
                    dp.apply(set_interface(device_addrs(Device::default(), name, &all)))?;
                }
                backend::start(&opts.backend, ifname, &mut dp)?
            }
            None => {
                tracing::warn!("no --interface given: health checks run, nothing is forwarded");
                backend::Running::default()
            }
        };
        Ok((dp, backend))
    })();
    let (dp, backend) = match started {
        Ok(started) => started,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.socket);
            return Err(e);
        }
    };
    let subjects = plan
        .services
        .iter()
        .flat_map(|svc| svc.servers.iter())
        .filter(|s| !s.subject.checks.is_empty())
        .map(|s| s.subject.clone())
        .collect();
    let (tx, mut events) = mpsc::unbounded_channel();
    let health = HealthChecker::start(subjects, tx);
    let dp = Arc::new(Mutex::new(dp));
    let (vrrp_tx, vrrp_status) =
        vrrp_rt::spawn(Arc::clone(&dp), plan.vrrp.clone(), forwarded(&opts, &plan));
    let (announce_tx, announce_rx) = watch::channel(BTreeSet::new());
    let (ospf_tx, ospf_status) = ospf_rt::spawn(plan.ospf.clone(), announce_rx);
    state.plan = plan;
    let shared = Arc::new(Shared {
        opts,
        state: Mutex::new(state),
        dp,
        backend,
        health,
        started: Instant::now(),
        vrrp: vrrp_tx,
        vrrp_status,
        ospf: ospf_tx,
        ospf_status,
        announce: announce_tx,
    });
    reannounce(&shared, &lock(&shared.state));
    for (port, kni) in (0..).zip(shared.backend.knis()) {
        tokio::spawn(follow_kernel_interface(Arc::clone(&shared), port, kni));
    }
    if let Some(l) = metrics_listener {
        let sh = Arc::clone(&shared);
        tokio::spawn(crate::metrics::serve(l, move || metrics_text(&sh)));
    }
    let mut vrrp_changes = shared.vrrp_status.clone();
    tracing::info!(
        services = lock(&shared.state).plan.services.len(),
        socket = %shared.opts.socket.display(),
        "dpvsd running"
    );
    notify::notify("READY=1");
    quorum_scripts.into_iter().for_each(spawn_script);

    loop {
        tokio::select! {
            Some(ev) = events.recv() => on_health(&shared, ev),
            Ok(()) = vrrp_changes.changed() => reannounce(&shared, &lock(&shared.state)),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let sh = Arc::clone(&shared);
                    tokio::spawn(async move { serve(sh, stream).await });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            },
            _ = hup.recv() => {
                let r = reload_config(&shared, false);
                if !r.applied {
                    tracing::error!(error = r.error.as_deref().unwrap_or("unknown"), "SIGHUP: reload rejected; the running configuration is unchanged");
                }
            }
            _ = usr1.recv() => write_dump(&shared, false),
            _ = usr2.recv() => write_dump(&shared, true),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    notify::notify("STOPPING=1");
    tracing::info!("stopping");
    run_omega_scripts(&shared).await;
    stop_protocols(&shared).await;
    let _ = std::fs::remove_file(&shared.opts.socket);
    lock(&shared.dp).shutdown();
    Ok(())
}

/// VRRP masters send priority 0 and release their VIPs; OSPF flushes its
/// LSAs (MaxAge). Both at once, bounded.
async fn stop_protocols(shared: &Shared) {
    let (vrrp_done, vrrp_wait) = oneshot::channel();
    let (ospf_done, ospf_wait) = oneshot::channel();
    let _ = shared.vrrp.send(VrrpMsg::Stop(vrrp_done));
    let _ = shared.ospf.send(OspfMsg::Stop(ospf_done));
    let both = async {
        let _ = vrrp_wait.await;
        let _ = ospf_wait.await;
    };
    if tokio::time::timeout(Duration::from_secs(5), both)
        .await
        .is_err()
    {
        tracing::warn!("VRRP/OSPF did not stop within 5 s");
    }
}

fn on_health(shared: &Shared, ev: HealthEvent) {
    let mut state = lock(&shared.state);
    let Some(s) = state.servers.get_mut(&ev.subject) else {
        return;
    };
    let from = desired(s);
    if let Some(d) = ev.weight_delta {
        s.delta = d;
    }
    let flipped = s.up != ev.up;
    if flipped {
        s.up = ev.up;
        tracing::info!(
            server = %s.spec.addr, service = %s.service, reason = %ev.reason,
            "real server {}", if ev.up { "up" } else { "down" }
        );
    }
    let to = desired(s);
    let service = s.service;
    let mut cmds: Vec<Command> = transition(service, s.spec.addr, from, to)
        .into_iter()
        .collect();
    if from.is_some() && to.is_some() && from != to {
        tracing::info!(server = %s.spec.addr, service = %s.service, weight = ?to, reason = %ev.reason, "real server weight changed");
    }
    let (quorum_cmds, script) = state.evaluate_quorum(service);
    cmds.extend(quorum_cmds);
    if !cmds.is_empty() {
        if let Err(e) = lock(&shared.dp).apply_all(cmds) {
            tracing::error!(error = %e, "dataplane refused a health change");
        }
    }
    if flipped {
        // keepalived's notify_up / notify_down, after the dataplane change.
        let notify = server_plan(&state.plan, ev.subject).and_then(|p| {
            if ev.up {
                p.notify_up.clone()
            } else {
                p.notify_down.clone()
            }
        });
        notify.into_iter().for_each(spawn_script);
    }
    script.into_iter().for_each(spawn_script);
    reannounce(shared, &state);
}

/// With DPDK, the kernel's addresses live on the exception TAPs (one per
/// port), which the operator configures after start (`ip addr`, as on
/// DPVS's KNI), and on VLAN devices stacked on them (`ip link add link
/// dpdk0 name dpdk0.100 type vlan id 100`; their tagged frames pass the
/// TAP). Every second this follows port `port`'s (IPv4 and IPv6; the
/// TAP's own first): its exception path copies frames for them to the
/// kernel. The first IPv4 and IPv6 addresses of the TAP and of each VLAN
/// device on it are the interface addresses of that port and VLAN
/// ([`Command::SetInterfaceAddr`]: real servers on their networks are
/// asked from them, there; other hosts on them are reached there).
async fn follow_kernel_interface(shared: Arc<Shared>, port: u16, iface: String) {
    let mut last: Option<(Vec<Ipv4Addr>, Vec<Ipv6Addr>, Vec<DeviceAddrs>)> = None;
    loop {
        let mut names = vec![iface.clone()];
        names.extend(upper_devices(Path::new("/sys/class/net"), &iface));
        // One read of the kernel's addresses for everything below.
        let all = ospf_rt::kernel_addrs();
        let now: Vec<Ipv4Addr> = names
            .iter()
            .flat_map(|n| ospf_rt::addrs_of(&all, n))
            .map(|(a, _)| a)
            .collect();
        let mut now6: Vec<_> = all
            .iter()
            .filter_map(|ifa| {
                let rank = names.iter().position(|n| *n == ifa.interface_name)?;
                Some((rank, ifa.address?.as_sockaddr_in6()?.ip()))
            })
            .collect();
        now6.sort_by_key(|&(rank, _)| rank);
        let now6: Vec<Ipv6Addr> = now6.into_iter().map(|(_, a)| a).collect();
        let vlan_config = std::fs::read_to_string("/proc/net/vlan/config").unwrap_or_default();
        let mut devices = vec![device_addrs(Device { port, vlan: 0 }, &iface, &all)];
        devices.extend(
            vlan_devices(&vlan_config, &iface)
                .into_iter()
                .map(|(name, vlan)| device_addrs(Device { port, vlan }, &name, &all)),
        );
        let now = (now, now6, devices);
        if last.as_ref() != Some(&now) {
            tracing::info!(%iface, addrs = ?now.0, addrs6 = ?now.1, "kernel exception path addresses");
            shared
                .backend
                .set_kernel_addrs(usize::from(port), &now.0, &now.1);
            // A VLAN device that is gone loses its addresses.
            let gone = last
                .iter()
                .flat_map(|(_, _, was)| was)
                .filter_map(|&(d, _, _)| {
                    (!now.2.iter().any(|&(n, _, _)| n == d)).then_some((d, None, None))
                });
            for addrs in gone.chain(now.2.iter().copied()).collect::<Vec<_>>() {
                if let Err(e) = lock(&shared.dp).apply(set_interface(addrs)) {
                    tracing::error!(error = %e, "dataplane refused the interface address");
                }
            }
            last = Some(now);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The interface addresses of a device: the first IPv4 and the first
/// non-link-local IPv6 address, with their prefix lengths.
type DeviceAddrs = (Device, Option<(Ipv4Addr, u8)>, Option<(Ipv6Addr, u8)>);

/// [`DeviceAddrs`] of `device`, kernel interface `name`, from the kernel's
/// addresses `all` ([`ospf_rt::kernel_addrs`]).
fn device_addrs(device: Device, name: &str, all: &[nix::ifaddrs::InterfaceAddress]) -> DeviceAddrs {
    let v4 = ospf_rt::addrs_of(all, name).into_iter().next();
    (device, v4, ospf_rt::addr6_of(all, name))
}

/// [`Command::SetInterfaceAddr`] of a device's addresses.
fn set_interface((device, v4, v6): DeviceAddrs) -> Command {
    Command::SetInterfaceAddr { device, v4, v6 }
}

/// The VLAN devices on `parent` and their ids, from the kernel's
/// `/proc/net/vlan/config` (`NAME | VID | PARENT` lines after two header
/// lines; absent without the 8021q module, i.e. without VLAN devices).
fn vlan_devices(config: &str, parent: &str) -> Vec<(String, u16)> {
    let mut v: Vec<(String, u16)> = config
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('|').map(str::trim);
            let (name, vid, of) = (cols.next()?, cols.next()?, cols.next()?);
            let vid: u16 = vid.parse().ok()?;
            (of == parent && (1..=4094).contains(&vid)).then(|| (name.to_string(), vid))
        })
        .collect();
    v.sort();
    v
}

/// The devices stacked on network interface `iface` (its VLAN devices, a
/// bridge it is in): the kernel lists each as an `upper_NAME` link in
/// `iface`'s directory under `sys_net` (`/sys/class/net`).
fn upper_devices(sys_net: &Path, iface: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(sys_net.join(iface)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            Some(name.to_str()?.strip_prefix("upper_")?.to_string())
        })
        .collect();
    v.sort();
    v
}

/// The plan of the real server with health subject `id`.
fn server_plan(plan: &Plan, id: SubjectId) -> Option<&ServerPlan> {
    plan.services
        .iter()
        .flat_map(|s| &s.servers)
        .find(|s| s.subject.id == id)
}

/// How long shutdown waits for `omega` scripts; still running then, they are
/// killed.
const OMEGA_WAIT: Duration = Duration::from_secs(5);

/// `omega` (KEEPALIVED.md §9): on shutdown, for every service that has
/// `omega`, the `notify_down` script of each real server that is up and,
/// if its quorum is up, its `quorum_down` script run, as keepalived does
/// while removing its services. Bounded by [`OMEGA_WAIT`].
async fn run_omega_scripts(shared: &Shared) {
    let scripts: Vec<MiscSpec> = {
        let state = lock(&shared.state);
        let omega = |key: &ServiceKey| state.quorums.get(key).is_some_and(|q| q.plan.omega);
        let notify_down = state
            .plan
            .services
            .iter()
            .filter(|svc| omega(&svc.spec.key))
            .flat_map(|svc| &svc.servers)
            .filter(|s| state.servers.get(&s.subject.id).is_some_and(|rt| rt.up))
            .filter_map(|s| s.notify_down.clone());
        let quorum_down = state
            .quorums
            .values()
            .filter(|q| q.plan.omega && q.quorum.is_up() == Some(true))
            .filter_map(|q| q.plan.down_script.clone());
        notify_down.chain(quorum_down).collect()
    };
    if scripts.is_empty() {
        return;
    }
    let mut running = tokio::task::JoinSet::new();
    for script in scripts {
        running.spawn(async move {
            let line = script.argv.join(" ");
            match healthcheck::run_script(&script).await {
                Ok(()) => tracing::info!(script = %line, "omega: script ran"),
                Err(e) => tracing::warn!(script = %line, error = %e, "omega: script failed"),
            }
        });
    }
    let all = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(OMEGA_WAIT, all).await.is_err() {
        // Dropping the set aborts the scripts, which kills their groups.
        tracing::warn!("omega scripts still running after {OMEGA_WAIT:?}: killed");
    }
}

/// Runs a `quorum_up`/`quorum_down` script in the background; the outcome
/// is logged.
fn spawn_script(script: MiscSpec) {
    tokio::spawn(async move {
        let line = script.argv.join(" ");
        match healthcheck::run_script(&script).await {
            Ok(()) => tracing::info!(script = %line, "script ran"),
            Err(e) => tracing::warn!(script = %line, error = %e, "script failed"),
        }
    });
}

/// Re-reads the config file; if it is valid, applies only the changes.
/// A file with errors changes nothing.
fn reload_config(shared: &Shared, dry_run: bool) -> ReloadInfo {
    let rejected = |error: String, diagnostics: Vec<String>| ReloadInfo {
        applied: false,
        changes: Vec::new(),
        diagnostics,
        error: Some(error),
    };
    let path = &shared.opts.config_file;
    let loaded = match keepalived_parser::load_file_with(path, &shared.opts.load, shared.opts.mode)
    {
        Ok(l) => l,
        Err(e) => return rejected(e.to_string(), Vec::new()),
    };
    let diagnostics: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    if !loaded.is_runnable() {
        return rejected(
            format!("{}: configuration has errors", path.display()),
            diagnostics,
        );
    }
    let mut diagnostics = diagnostics;
    let mut plan = match assemble::assemble(&loaded.model) {
        Ok(p) => {
            diagnostics.extend(p.warnings.iter().map(|w| w.to_string()));
            p
        }
        Err(errors) => {
            let mut all = diagnostics;
            all.extend(errors.iter().map(|e| e.to_string()));
            return rejected(
                format!(
                    "{}: configuration uses unsupported features",
                    path.display()
                ),
                all,
            );
        }
    };
    if let Err(errors) = resolve_snat(&shared.opts, &mut plan) {
        diagnostics.extend(errors);
        return rejected(
            format!("{}: SNAT services cannot be served", path.display()),
            diagnostics,
        );
    }
    let bad = device_errors(&shared.opts, &plan);
    if !bad.is_empty() {
        diagnostics.extend(bad);
        return rejected(
            format!(
                "{}: addresses bound to ports dpvsd does not drive",
                path.display()
            ),
            diagnostics,
        );
    }
    let mut state = lock(&shared.state);
    let ids_before = (state.ids.clone(), state.next_id);
    state.assign_ids(&mut plan);
    let d = reload::diff(&state.plan, &plan);
    let changes = d.lines();
    if dry_run {
        (state.ids, state.next_id) = ids_before;
        return ReloadInfo {
            applied: false,
            changes,
            diagnostics,
            error: None,
        };
    }
    if !d.is_empty() {
        notify::reloading();
    }
    let mut cmds = apply_diff(shared, &mut state, &d, &plan);
    let (quorum_cmds, quorum_scripts) = state.sync_quorums(&plan);
    cmds.extend(quorum_cmds);
    quorum_scripts.into_iter().for_each(spawn_script);
    let fwd = forwarded(&shared.opts, &plan);
    if d.vrrp.is_some() {
        // Ownership as it is now: the VRRP task reconfigures in place
        // (unchanged masters keep their VIPs) or restarts the driver and
        // then resets ownership itself (vrrp_rt::baseline_ownership).
        let snapshot = shared.vrrp_status.borrow().clone();
        cmds.extend(ownership_now(&fwd, plan.vrrp.as_ref(), &snapshot));
        let _ = shared.vrrp.send(VrrpMsg::Restart {
            plan: plan.vrrp.clone(),
            forwarded: fwd,
        });
    } else {
        let snapshot = shared.vrrp_status.borrow().clone();
        cmds.extend(ownership_now(&fwd, plan.vrrp.as_ref(), &snapshot));
    }
    if d.ospf.is_some() {
        let _ = shared.ospf.send(OspfMsg::Restart(plan.ospf.clone()));
    }
    state.plan = plan;
    state.loaded_unix = unix_now();
    state.reloads += 1;
    let result = lock(&shared.dp).apply_all(cmds);
    reannounce(shared, &state);
    if !d.is_empty() {
        notify::notify("READY=1");
    }
    for c in &changes {
        tracing::info!(change = %c, "reload");
    }
    match result {
        Ok(()) => ReloadInfo {
            applied: true,
            changes,
            diagnostics,
            error: None,
        },
        Err(e) => ReloadInfo {
            applied: true,
            changes,
            diagnostics,
            error: Some(format!("dataplane: {e}")),
        },
    }
}

/// Updates runtime and health state for a diff and returns the dataplane
/// commands, touching nothing that did not change.
fn apply_diff(
    shared: &Shared,
    state: &mut RunState,
    d: &reload::PlanDiff,
    new: &Plan,
) -> Vec<Command> {
    let mut cmds = Vec::new();
    let old_services: BTreeMap<ServiceKey, ServicePlan> = state
        .plan
        .services
        .iter()
        .map(|s| (s.spec.key, s.clone()))
        .collect();
    let new_services: BTreeMap<ServiceKey, &ServicePlan> =
        new.services.iter().map(|s| (s.spec.key, s)).collect();
    let forget = |state: &mut RunState, key: ServiceKey, addr: SocketAddr| {
        if let Some(id) = state.ids.remove(&(key, addr)) {
            shared.health.remove_subject(id);
            state.servers.remove(&id);
        }
    };
    let start = |state: &mut RunState, key: ServiceKey, s: &ServerPlan| {
        state
            .servers
            .insert(s.subject.id, ServerRuntime::new(key, s));
        if !s.subject.checks.is_empty() {
            shared.health.add_subject(s.subject.clone());
        }
    };
    // Device bindings that changed or went away (a removed service's too):
    // the dataplane keeps a binding until it is set to the default.
    cmds.extend(
        d.devices
            .iter()
            .map(|&(addr, device)| Command::SetDevice { addr, device }),
    );
    for key in &d.removed {
        cmds.push(Command::DelService(*key));
        if let Some(old) = old_services.get(key) {
            for s in &old.servers {
                forget(state, *key, s.spec.addr);
            }
        }
    }
    for svc in &d.added {
        for s in &svc.servers {
            start(state, svc.spec.key, s);
        }
        cmds.extend(state.service_commands(svc));
    }
    for (key, c) in &d.changed {
        let Some(svc) = new_services.get(key) else {
            continue;
        };
        for addr in &c.removed {
            let from = state
                .ids
                .get(&(*key, *addr))
                .and_then(|id| state.servers.get(id))
                .and_then(desired);
            if !c.spec_changed {
                cmds.extend(transition(*key, *addr, from, None));
            }
            forget(state, *key, *addr);
        }
        for s in &c.added {
            start(state, *key, s);
        }
        for ch in &c.changed {
            let Some(s) = svc.servers.iter().find(|s| s.spec.addr == ch.addr) else {
                continue;
            };
            let Some(rt) = state.servers.get_mut(&s.subject.id) else {
                continue;
            };
            let from = desired(rt);
            if ch.weight.is_some() {
                // The operator edited the weight: the file wins.
                rt.weight_override = None;
            }
            rt.spec.weight = s.spec.weight;
            rt.inhibit = s.inhibit_on_failure;
            if ch.checks {
                // New checkers: their state starts afresh, as keepalived does.
                rt.up = s.subject.initially_up();
                rt.delta = 0;
                if s.subject.checks.is_empty() {
                    shared.health.remove_subject(s.subject.id);
                } else {
                    shared.health.add_subject(s.subject.clone());
                }
            }
            if !c.spec_changed {
                cmds.extend(transition(*key, ch.addr, from, desired(rt)));
            }
        }
        if c.spec_changed {
            // The service itself changed (scheduler, method, local
            // addresses): it is re-created with its servers' current state.
            cmds.push(Command::DelService(*key));
            cmds.extend(state.service_commands(svc));
        } else {
            for s in &c.added {
                let to = state.servers.get(&s.subject.id).and_then(desired);
                cmds.extend(transition(*key, s.spec.addr, None, to));
            }
        }
    }
    cmds
}

async fn serve(shared: Arc<Shared>, stream: UnixStream) {
    let allowed = stream
        .peer_cred()
        .map(|c| c.uid() == 0 || c.uid() == nix::unistd::geteuid().as_raw())
        .unwrap_or(false);
    let (rd, mut wr) = stream.into_split();
    let mut reader = BufReader::new(rd);
    if !allowed {
        // Take the request first (bounded in size and time), so the client's
        // write does not meet a closed socket and it reads the refusal.
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            (&mut reader)
                .take(MAX_REQUEST as u64 + 1)
                .read_until(b'\n', &mut buf),
        )
        .await;
        let _ = write_response(&mut wr, &Response::error("permission denied")).await;
        return;
    }
    loop {
        // Bounded read: a client cannot make the daemon buffer more than one
        // maximal request.
        let mut buf = Vec::new();
        let n = match (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if buf.last() != Some(&b'\n') && buf.len() > MAX_REQUEST {
            let msg = format!("request longer than {MAX_REQUEST} bytes");
            let _ = write_response(&mut wr, &Response::error(msg)).await;
            return;
        }
        let resp = handle(&shared, String::from_utf8_lossy(&buf).trim());
        if write_response(&mut wr, &resp).await.is_err() {
            return;
        }
    }
}

async fn write_response(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    resp: &Response,
) -> std::io::Result<()> {
    let mut s = serde_json::to_string(resp)
        .unwrap_or_else(|_| r#"{"version":1,"ok":false,"error":"internal"}"#.into());
    s.push('\n');
    wr.write_all(s.as_bytes()).await
}

fn handle(shared: &Shared, line: &str) -> Response {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return Response::error(format!("bad request: {e}")),
    };
    if req.version != VERSION {
        return Response::error(format!(
            "unsupported protocol version {} (this dpvsd speaks {VERSION})",
            req.version
        ));
    }
    let data = match req.command {
        CtlCommand::Status => serde_json::to_value(status(shared)),
        CtlCommand::List => serde_json::to_value(list(shared)),
        CtlCommand::Reload { dry_run } => serde_json::to_value(reload_config(shared, dry_run)),
        CtlCommand::Vrrp => serde_json::to_value(vrrp_info(shared)),
        CtlCommand::Ospf => serde_json::to_value(ospf_info(shared)),
        CtlCommand::Weight { target, weight } => {
            match ops::set_override(shared, &target, Some(weight)) {
                Ok(w) => serde_json::to_value(w),
                Err(e) => return Response::error(e),
            }
        }
        CtlCommand::Enable { target } => match ops::set_override(shared, &target, None) {
            Ok(w) => serde_json::to_value(w),
            Err(e) => return Response::error(e),
        },
        CtlCommand::Conns { vs, rs, client } => match ops::conns(shared, [vs, rs, client]) {
            Ok(c) => serde_json::to_value(c),
            Err(e) => return Response::error(e),
        },
        CtlCommand::LogLevel { level } => match &shared.opts.log {
            Some(log) => match log.set(&level) {
                Ok(()) => {
                    tracing::info!(%level, "log level changed");
                    serde_json::to_value(crate::ctl::LogLevelInfo { level })
                }
                Err(e) => return Response::error(e),
            },
            None => return Response::error("this dpvsd cannot change its log level"),
        },
    };
    match data {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(format!("internal: {e}")),
    }
}

fn status(shared: &Shared) -> StatusInfo {
    let state = lock(&shared.state);
    let dp = lock(&shared.dp).status();
    let servers = &state.servers;
    StatusInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: shared.started.elapsed().as_secs(),
        config_file: shared.opts.config_file.display().to_string(),
        config_loaded_unix: state.loaded_unix,
        reloads: state.reloads,
        backend: if shared.opts.interface.is_some() {
            shared.opts.backend.name()
        } else {
            "none"
        }
        .into(),
        ports: shared.backend.ports(),
        interface: shared.opts.interface.clone(),
        workers: dp.workers,
        virtual_servers: state.plan.services.len(),
        real_servers: servers.len(),
        real_servers_up: servers.values().filter(|s| s.up).count(),
        conns: dp.conns,
        rx_frames: dp.rx_frames,
        tx_frames: dp.tx_frames,
        drops: dp
            .drops
            .iter()
            .filter(|d| d.count > 0)
            .map(|d| (d.name.to_string(), d.count))
            .collect(),
        vrrp_instances: state.plan.vrrp.as_ref().map_or(0, |v| v.instances.len()),
        vrrp_master: shared
            .vrrp_status
            .borrow()
            .instances
            .iter()
            .filter(|i| i.state == vrrp::instance::State::Master)
            .count(),
        ospf_announced: state
            .plan
            .ospf
            .as_ref()
            .map(|_| shared.announce.borrow().len()),
        weight_overrides: state
            .servers
            .values()
            .filter_map(|s| {
                s.weight_override.map(|weight| crate::ctl::OverrideInfo {
                    service: s.service.to_string(),
                    server: sockaddr(s.spec.addr),
                    weight,
                })
            })
            .collect(),
    }
}

/// Runtime operations of `dpvsctl` on real servers.
mod ops {
    use super::*;
    use crate::ctl::{ServerRef, WeightInfo};

    /// The (service, server) a [`ServerRef`] names in the running plan.
    fn resolve(plan: &Plan, t: &ServerRef) -> Result<(ServiceKey, SocketAddr), String> {
        let vs: SocketAddr =
            t.vs.parse()
                .map_err(|_| format!("bad virtual server {:?} (want VIP:PORT)", t.vs))?;
        let rs: SocketAddr =
            t.rs.parse()
                .map_err(|_| format!("bad real server {:?} (want RIP:PORT)", t.rs))?;
        let matches: Vec<&ServicePlan> = plan
            .services
            .iter()
            .filter(|s| s.spec.key.addr == vs.ip() && s.spec.key.port == vs.port())
            .filter(|s| {
                t.protocol
                    .as_ref()
                    .is_none_or(|p| s.spec.key.protocol.to_string().eq_ignore_ascii_case(p))
            })
            .collect();
        let svc = match matches.as_slice() {
            [one] => one,
            [] => return Err(format!("no virtual server {}", t.vs)),
            _ => return Err(format!("{} has several protocols: add --protocol", t.vs)),
        };
        if !svc.servers.iter().any(|s| s.spec.addr == rs) {
            return Err(format!("no real server {rs} in {}", svc.spec.key));
        }
        Ok((svc.spec.key, rs))
    }

    /// The workers' connections, filtered by (vs, rs, client). The workers
    /// list them between bursts; the dataplane lock is not held meanwhile.
    pub(super) fn conns(
        shared: &Shared,
        [vs, rs, client]: [Option<String>; 3],
    ) -> Result<crate::ctl::ConnsInfo, String> {
        use crate::ctl::{addr_matches, ConnInfo, ConnsInfo};
        for f in [&vs, &rs, &client].into_iter().flatten() {
            if f.parse::<SocketAddr>().is_err() && f.parse::<IpAddr>().is_err() {
                return Err(format!("bad filter {f:?} (want ADDR or ADDR:PORT)"));
            }
        }
        let query = lock(&shared.dp).query_conns();
        let list = tokio::task::block_in_place(|| query.wait(Duration::from_secs(5)))
            .ok_or("the dataplane did not list its connections within 5 s")?;
        let truncated = list.len() >= dataplane::worker::DUMP_LIMIT;
        let sa = |(ip, port): (IpAddr, u16)| SocketAddr::from((ip, port));
        let keep =
            |f: &Option<String>, a: SocketAddr| f.as_ref().is_none_or(|f| addr_matches(f, a));
        let conns = list
            .iter()
            .filter(|c| {
                keep(&vs, sa(c.vip)) && keep(&rs, sa(c.server)) && keep(&client, sa(c.client))
            })
            .map(|c| ConnInfo {
                protocol: match c.proto {
                    6 => "TCP".into(),
                    17 => "UDP".into(),
                    // SNAT echo mappings (engine/snat.rs).
                    1 => "ICMP".into(),
                    58 => "ICMPv6".into(),
                    p => format!("proto-{p}"),
                },
                // DPVS's state names (ICMP: `dp_vs_conn_state_name`).
                state: match c.proto {
                    6 => c.tcp.name(),
                    1 | 58 => "ICMP_NORMAL",
                    _ => "UDP",
                }
                .into(),
                expires_in_ms: c.expires_in_ms,
                client: sa(c.client).to_string(),
                virtual_server: sa(c.vip).to_string(),
                local: sa(c.local).to_string(),
                real_server: sa(c.server).to_string(),
            })
            .collect();
        Ok(ConnsInfo {
            total: list.len(),
            conns,
            truncated,
        })
    }

    /// Sets (`Some`) or drops (`None`) a runtime weight override and moves
    /// the dataplane accordingly.
    pub(super) fn set_override(
        shared: &Shared,
        t: &ServerRef,
        weight: Option<u32>,
    ) -> Result<WeightInfo, String> {
        if weight.is_some_and(|w| w > i32::MAX as u32) {
            return Err(format!("weight must be at most {}", i32::MAX));
        }
        let mut state = lock(&shared.state);
        let (key, addr) = resolve(&state.plan, t)?;
        let id = *state
            .ids
            .get(&(key, addr))
            .ok_or_else(|| format!("no real server {addr} in {key}"))?;
        let s = state
            .servers
            .get_mut(&id)
            .ok_or_else(|| format!("no real server {addr} in {key}"))?;
        let from = desired(s);
        s.weight_override = weight;
        let to = desired(s);
        if let Some(cmd) = transition(key, addr, from, to) {
            lock(&shared.dp)
                .apply(cmd)
                .map_err(|e| format!("dataplane: {e}"))?;
        }
        tracing::info!(service = %key, server = %addr, weight_override = ?weight, current = ?to, "runtime weight override");
        reannounce(shared, &state);
        Ok(WeightInfo {
            service: key.to_string(),
            server: sockaddr(addr),
            weight_override: weight,
            current_weight: to,
        })
    }
}

/// keepalived's SIGUSR1 (data) / SIGUSR2 (stats) dumps.
fn write_dump(shared: &Shared, stats: bool) {
    let input = crate::dump::DumpInput {
        status: status(shared),
        list: list(shared),
        vrrp: vrrp_info(shared),
        ospf: ospf_info(shared),
    };
    let (path, text) = if stats {
        (&shared.opts.stats_dump_file, crate::dump::stats(&input))
    } else {
        (&shared.opts.data_dump_file, crate::dump::data(&input))
    };
    match crate::dump::write_file(path, &text) {
        Ok(()) => tracing::info!(file = %path.display(), "dump written"),
        Err(e) => tracing::error!(file = %path.display(), error = %e, "cannot write dump"),
    }
}

fn metrics_text(shared: &Shared) -> String {
    let drops = lock(&shared.dp)
        .status()
        .drops
        .into_iter()
        .map(|d| crate::metrics::DropSample {
            reason: d.name.into(),
            count: d.count,
        })
        .collect();
    crate::metrics::encode(&crate::metrics::Snapshot {
        status: status(shared),
        list: list(shared),
        vrrp: vrrp_info(shared),
        drops,
    })
}

fn vrrp_info(shared: &Shared) -> VrrpInfo {
    let state = lock(&shared.state);
    let fwd = forwarded(&shared.opts, &state.plan);
    let snapshot = shared.vrrp_status.borrow().clone();
    info::vrrp(state.plan.vrrp.as_ref(), &snapshot, &fwd)
}

fn ospf_info(shared: &Shared) -> OspfInfo {
    let state = lock(&shared.state);
    let verdicts = verdicts(shared, &state);
    let snapshot = shared.ospf_status.borrow().clone();
    info::ospf(state.plan.ospf.as_ref(), &snapshot, &verdicts)
}

fn list(shared: &Shared) -> ListInfo {
    let state = lock(&shared.state);
    let dp = lock(&shared.dp).status();
    let servers = &state.servers;
    let health: BTreeMap<SubjectId, healthcheck::SubjectStatus> = shared
        .health
        .status()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let services = state
        .plan
        .services
        .iter()
        .map(|svc| {
            let key = svc.spec.key;
            let dsvc = dp.services.iter().find(|s| s.key == key);
            let real_servers = svc
                .servers
                .iter()
                .map(|s| {
                    let dsrv = dsvc.and_then(|d| d.servers.iter().find(|r| r.addr == s.spec.addr));
                    let up = servers.get(&s.subject.id).map(|r| r.up).unwrap_or(false);
                    let checks = health
                        .get(&s.subject.id)
                        .map(|h| h.checks.iter().map(check_info).collect())
                        .unwrap_or_default();
                    RealServerInfo {
                        addr: sockaddr(s.spec.addr),
                        weight: s.spec.weight,
                        current_weight: dsrv.filter(|r| r.in_service).map(|r| r.weight),
                        health: if up { "up" } else { "down" }.into(),
                        inhibit_on_failure: s.inhibit_on_failure,
                        weight_override: servers.get(&s.subject.id).and_then(|r| r.weight_override),
                        checks,
                        stats: dsrv.map(|r| r.stats.into()).unwrap_or_default(),
                    }
                })
                .collect();
            ServiceInfo {
                protocol: key.protocol.to_string(),
                vip: key.addr.to_string(),
                port: key.port,
                scheduler: format!("{:?}", svc.spec.scheduler).to_lowercase(),
                flags: svc.spec.flags(),
                forwarding: format!("{:?}", svc.spec.forwarding).to_uppercase(),
                local_addrs: svc.spec.local_addrs.iter().map(|a| a.to_string()).collect(),
                vip_owned: dsvc.map(|d| d.vip_owned).unwrap_or(false),
                stats: dsvc.map(|d| d.stats.into()).unwrap_or_default(),
                real_servers,
                quorum_up: state.quorums.get(&key).and_then(|q| q.quorum.is_up()),
                sorry_server: sorry_info(&state, key, dsvc),
                snat_match: svc.spec.snat.as_deref().map(ToString::to_string),
            }
        })
        .collect();
    ListInfo { services }
}

fn sockaddr(a: SocketAddr) -> String {
    a.to_string()
}

/// The sorry server of service `key` for `list`: configured, serving or
/// not, and what the dataplane has.
fn sorry_info(
    state: &RunState,
    key: ServiceKey,
    dsvc: Option<&dataplane::ServiceStatus>,
) -> Option<crate::ctl::SorryInfo> {
    let q = state.quorums.get(&key)?;
    let sorry = q.plan.sorry?;
    let dsrv = dsvc.and_then(|d| d.servers.iter().find(|r| r.addr == sorry.addr));
    Some(crate::ctl::SorryInfo {
        addr: sockaddr(sorry.addr),
        inhibit: sorry.inhibit,
        in_service: q.sorry_active,
        current_weight: dsrv.filter(|r| r.in_service).map(|r| r.weight),
        stats: dsrv.map(|r| r.stats.into()).unwrap_or_default(),
    })
}

fn check_info(c: &healthcheck::CheckStatus) -> CheckInfo {
    CheckInfo {
        kind: c.kind.clone(),
        target: c.target.clone(),
        up: c.up,
        last_ok: c.last_ok,
        last_error: c.last_error.clone(),
        consecutive_failures: c.consecutive_failures,
        checks_run: c.checks_run,
        last_transition_unix_ms: c.last_transition_unix_ms,
        latency: c.latency.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::Protocol;

    #[test]
    fn vlan_devices_are_read_from_the_kernels_vlan_config() {
        let config = "VLAN Dev name\t | VLAN ID\n\
                      Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n\
                      dpdk1.200      | 200  | dpdk1\n\
                      dpdk1.100      | 100  | dpdk1\n\
                      dpdk0.100      | 100  | dpdk0\n\
                      inside         | 7  | dpdk1\n\
                      broken         | x  | dpdk1\n";
        let want = [("dpdk1.100", 100), ("dpdk1.200", 200), ("inside", 7)];
        let want: Vec<(String, u16)> = want.iter().map(|&(n, v)| (n.into(), v)).collect();
        assert_eq!(vlan_devices(config, "dpdk1"), want);
        assert_eq!(vlan_devices(config, "dpdk0"), [("dpdk0.100".into(), 100)]);
        assert!(vlan_devices("", "dpdk0").is_empty());
    }

    #[test]
    fn the_devices_stacked_on_a_tap_are_its_upper_links() {
        let root = std::env::temp_dir().join(format!("dpvsd-sysnet-{}", std::process::id()));
        let tap = root.join("dpdk0");
        std::fs::create_dir_all(&tap).expect("dir");
        for f in [
            "upper_dpdk0.200",
            "upper_dpdk0.100",
            "lower_bond0",
            "mtu",
            "address",
        ] {
            std::fs::write(tap.join(f), "").expect("file");
        }
        assert_eq!(upper_devices(&root, "dpdk0"), ["dpdk0.100", "dpdk0.200"]);
        assert!(upper_devices(&root, "missing0").is_empty());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    fn rt(inhibit: bool, up: bool) -> ServerRuntime {
        ServerRuntime {
            service: ServiceKey {
                addr: [10, 0, 0, 1].into(),
                port: 80,
                protocol: Protocol::Tcp,
            },
            spec: RealServerSpec {
                addr: ([10, 0, 0, 2], 8080).into(),
                weight: 3,
            },
            delta: 0,
            inhibit,
            up,
            weight_override: None,
            withheld: false,
        }
    }

    fn run_state(servers: Vec<ServerRuntime>) -> RunState {
        RunState {
            plan: Plan::default(),
            servers: servers
                .into_iter()
                .enumerate()
                .map(|(i, s)| (SubjectId(i as u64), s))
                .collect(),
            ids: BTreeMap::new(),
            next_id: 0,
            loaded_unix: 0,
            reloads: 0,
            quorums: BTreeMap::new(),
        }
    }

    fn quorum_plan(key: ServiceKey, quorum: QuorumPlan) -> Plan {
        Plan {
            services: vec![ServicePlan {
                spec: dataplane::ServiceSpec {
                    key,
                    scheduler: dataplane::Scheduler::Rr,
                    forwarding: dataplane::Forwarding::Fnat,
                    local_addrs: Vec::new(),
                    persistence: None,
                    protection: Default::default(),
                    quic: Default::default(),
                    proxy_protocol: None,
                    establish_timeout_s: None,
                    expire_quiescent: false,
                    snat: None,
                },
                servers: Vec::new(),
                quorum,
                devices: Vec::new(),
                location: Default::default(),
            }],
            ..Plan::default()
        }
    }

    #[test]
    fn quorum_loss_swaps_in_the_sorry_server_and_gain_swaps_it_out() {
        let server = rt(false, true);
        let (key, addr) = (server.service, server.spec.addr);
        let sorry = SorryPlan {
            addr: ([10, 0, 0, 9], 80).into(),
            inhibit: false,
        };
        let down = MiscSpec {
            argv: vec!["/bin/true".into()],
            ..MiscSpec::default()
        };
        let plan = quorum_plan(
            key,
            QuorumPlan {
                quorum: 3,
                sorry: Some(sorry),
                down_script: Some(down.clone()),
                ..QuorumPlan::default()
            },
        );
        let mut state = run_state(vec![server]);
        // Initially up (sum 3 >= 3): nothing to do.
        assert_eq!(state.sync_quorums(&plan), (Vec::new(), Vec::new()));

        // The server fails (on_health removes it), quorum is lost: the
        // sorry server goes in and quorum_down runs.
        state.servers.values_mut().for_each(|s| s.up = false);
        let (cmds, script) = state.evaluate_quorum(key);
        assert_eq!(
            cmds,
            vec![Command::AddRealServer {
                service: key,
                server: RealServerSpec {
                    addr: sorry.addr,
                    weight: 1
                }
            }]
        );
        assert_eq!(script, Some(down));
        // While withheld, a recovered server is tracked but not put back...
        let s = state.servers.values_mut().next().expect("server");
        let from = desired(s);
        s.up = true;
        assert_eq!(transition(key, addr, from, desired(s)), None);
        // ...until the quorum evaluation: real server in, sorry server out.
        let (cmds, script) = state.evaluate_quorum(key);
        assert_eq!(
            cmds,
            vec![
                Command::AddRealServer {
                    service: key,
                    server: RealServerSpec { addr, weight: 3 }
                },
                Command::DelRealServer {
                    service: key,
                    server: sorry.addr
                },
            ]
        );
        assert_eq!(script, None, "no quorum_up configured");
    }

    #[test]
    fn inhibited_sorry_server_is_present_at_weight_zero_and_quorum_down_at_start() {
        let server = rt(true, false);
        let key = server.service;
        let sorry = SorryPlan {
            addr: ([10, 0, 0, 9], 80).into(),
            inhibit: true,
        };
        let plan = quorum_plan(
            key,
            QuorumPlan {
                quorum: 1,
                sorry: Some(sorry),
                ..QuorumPlan::default()
            },
        );
        let mut state = run_state(vec![server]);
        // Down from the start: the sorry server is added at weight 0, then
        // enabled (weight 1); the inhibited real server stays at weight 0.
        let (cmds, _) = state.sync_quorums(&plan);
        assert_eq!(
            cmds,
            vec![
                Command::AddRealServer {
                    service: key,
                    server: RealServerSpec {
                        addr: sorry.addr,
                        weight: 0
                    }
                },
                Command::SetWeight {
                    service: key,
                    server: sorry.addr,
                    weight: 1
                },
            ]
        );
        let q = state.quorums.get(&key).expect("quorum state");
        assert!(q.sorry_active);
    }

    #[test]
    fn desired_state_follows_keepalived() {
        assert_eq!(desired(&rt(false, true)), Some(3));
        assert_eq!(
            desired(&rt(false, false)),
            None,
            "a failed server is removed"
        );
        assert_eq!(
            desired(&rt(true, false)),
            Some(0),
            "inhibit_on_failure keeps it at weight 0"
        );
        assert_eq!(desired(&rt(true, true)), Some(3));
    }

    #[test]
    fn transitions_emit_one_minimal_command() {
        let s = rt(false, true);
        let (k, a) = (s.service, s.spec.addr);
        assert!(
            matches!(transition(k, a, None, Some(3)), Some(Command::AddRealServer { server, .. }) if server.weight == 3)
        );
        assert!(matches!(
            transition(k, a, Some(3), None),
            Some(Command::DelRealServer { .. })
        ));
        assert!(matches!(
            transition(k, a, Some(3), Some(0)),
            Some(Command::SetWeight { weight: 0, .. })
        ));
        assert_eq!(transition(k, a, Some(3), Some(3)), None);
        assert_eq!(transition(k, a, None, None), None);
    }

    #[test]
    fn dynamic_weight_is_iweight_plus_delta_clamped() {
        let mut s = rt(false, true);
        s.delta = 7;
        assert_eq!(desired(&s), Some(10));
        s.delta = -50;
        assert_eq!(s.effective_weight(), 0);
        s.delta = i64::MAX / 2;
        assert_eq!(s.effective_weight(), i32::MAX as u32);
    }
}
