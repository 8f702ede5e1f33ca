//! The running daemon: builds the runtime from a [`Plan`], maps health
//! events to dataplane [`Command`]s, serves the control socket, and stops
//! cleanly on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dataplane::{Command, Dataplane, DataplaneConfig, RealServerSpec, ServiceKey};
use healthcheck::{HealthChecker, HealthEvent, SubjectId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::assemble::{Plan, ServicePlan};
use crate::ctl::{
    CheckInfo, CtlCommand, ListInfo, RealServerInfo, Request, Response, ServiceInfo, StatusInfo,
    MAX_REQUEST, VERSION,
};

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    pub socket: PathBuf,
    /// The afpacket interface; `None` runs without forwarding.
    pub interface: Option<String>,
    pub conn_capacity: usize,
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
    Dataplane(#[from] dataplane::io::IoError),
    #[error("dataplane: cannot start worker: {0}")]
    Worker(std::io::Error),
    #[error("dataplane refused the configuration: {0}")]
    Command(#[from] dataplane::CommandError),
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
}

impl ServerRuntime {
    /// keepalived's effective weight: iweight + deltas, clamped to 0..=i32::MAX.
    fn effective_weight(&self) -> u32 {
        (i64::from(self.spec.weight) + self.delta).clamp(0, i64::from(i32::MAX)) as u32
    }
}

#[derive(Debug)]
struct Shared {
    opts: Options,
    plan: Plan,
    dp: Mutex<Dataplane>,
    servers: Mutex<BTreeMap<SubjectId, ServerRuntime>>,
    health: HealthChecker,
    started: Instant,
    loaded_unix: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The command that puts a server in the state `up` requires (keepalived's
/// rules: removal, or weight 0 with `inhibit_on_failure`).
fn server_command(s: &ServerRuntime, up: bool) -> Command {
    let (service, server) = (s.service, s.spec.addr);
    let weight = s.effective_weight();
    match (up, s.inhibit) {
        (true, true) => Command::SetWeight {
            service,
            server,
            weight,
        },
        (true, false) => Command::AddRealServer {
            service,
            server: RealServerSpec {
                addr: server,
                weight,
            },
        },
        (false, true) => Command::SetWeight {
            service,
            server,
            weight: 0,
        },
        (false, false) => Command::DelRealServer { service, server },
    }
}

/// The commands that install a service with its servers in their initial state.
fn initial_commands(svc: &ServicePlan) -> Vec<Command> {
    let mut cmds = vec![Command::AddService(svc.spec.clone())];
    for s in &svc.servers {
        let key = svc.spec.key;
        match (s.subject.initially_up(), s.inhibit_on_failure) {
            (true, _) => cmds.push(Command::AddRealServer {
                service: key,
                server: s.spec,
            }),
            (false, true) => cmds.push(Command::AddRealServer {
                service: key,
                server: RealServerSpec {
                    weight: 0,
                    ..s.spec
                },
            }),
            (false, false) => {}
        }
    }
    cmds
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
pub async fn run(opts: Options, plan: Plan) -> Result<(), StartError> {
    let listener = bind_socket(&opts.socket)?;
    let started = (|| -> Result<_, StartError> {
        let mut dp = Dataplane::new(DataplaneConfig {
            conn_capacity: opts.conn_capacity,
            workers: 1,
        });
        dp.apply_all(plan.services.iter().flat_map(initial_commands))?;
        match &opts.interface {
            Some(ifname) => {
                let io = dataplane::io::afpacket::AfPacket::open(ifname)?;
                tracing::info!(interface = %ifname, mac = %dataplane::io::PacketIo::mac(&io), "dataplane forwarding (afpacket)");
                dp.spawn_worker(io).map_err(StartError::Worker)?;
            }
            None => tracing::warn!("no --interface given: health checks run, nothing is forwarded"),
        }
        Ok(dp)
    })();
    let dp = match started {
        Ok(dp) => dp,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.socket);
            return Err(e);
        }
    };

    let mut servers = BTreeMap::new();
    let mut subjects = Vec::new();
    for svc in &plan.services {
        for s in &svc.servers {
            servers.insert(
                s.subject.id,
                ServerRuntime {
                    service: svc.spec.key,
                    spec: s.spec,
                    delta: 0,
                    inhibit: s.inhibit_on_failure,
                    up: s.subject.initially_up(),
                },
            );
            if !s.subject.checks.is_empty() {
                subjects.push(s.subject.clone());
            }
        }
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    let health = HealthChecker::start(subjects, tx);
    let shared = Arc::new(Shared {
        opts,
        plan,
        dp: Mutex::new(dp),
        servers: Mutex::new(servers),
        health,
        started: Instant::now(),
        loaded_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    });
    tracing::info!(
        services = shared.plan.services.len(),
        socket = %shared.opts.socket.display(),
        "dpvsd running"
    );

    let mut term = signal(SignalKind::terminate()).map_err(|source| StartError::Socket {
        path: "signal".into(),
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| StartError::Socket {
        path: "signal".into(),
        source,
    })?;
    let mut hup = signal(SignalKind::hangup()).map_err(|source| StartError::Socket {
        path: "signal".into(),
        source,
    })?;
    loop {
        tokio::select! {
            Some(ev) = events.recv() => on_health(&shared, ev),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let sh = Arc::clone(&shared);
                    tokio::spawn(async move { serve(sh, stream).await });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            },
            _ = hup.recv() => tracing::warn!("SIGHUP: configuration reload is not implemented yet; the running configuration is unchanged"),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    let _ = std::fs::remove_file(&shared.opts.socket);
    lock(&shared.dp).shutdown();
    Ok(())
}

fn on_health(shared: &Shared, ev: HealthEvent) {
    let mut servers = lock(&shared.servers);
    let Some(s) = servers.get_mut(&ev.subject) else {
        return;
    };
    let weight_changed = ev.weight_delta.is_some_and(|d| d != s.delta);
    if let Some(d) = ev.weight_delta {
        s.delta = d;
    }
    let cmd = if s.up != ev.up {
        s.up = ev.up;
        server_command(s, ev.up)
    } else if weight_changed && s.up {
        tracing::info!(server = %s.spec.addr, service = %s.service, weight = s.effective_weight(), reason = %ev.reason, "real server weight changed");
        Command::SetWeight {
            service: s.service,
            server: s.spec.addr,
            weight: s.effective_weight(),
        }
    } else {
        return;
    };
    tracing::info!(
        server = %s.spec.addr, service = %s.service, up = ev.up, reason = %ev.reason,
        "real server {}", if ev.up { "up" } else { "down" }
    );
    if let Err(e) = lock(&shared.dp).apply(cmd) {
        tracing::error!(error = %e, "dataplane refused a health change");
    }
}

async fn serve(shared: Arc<Shared>, stream: UnixStream) {
    let allowed = stream
        .peer_cred()
        .map(|c| c.uid() == 0 || c.uid() == nix::unistd::geteuid().as_raw())
        .unwrap_or(false);
    let (rd, mut wr) = stream.into_split();
    if !allowed {
        let _ = write_response(&mut wr, &Response::error("permission denied")).await;
        return;
    }
    let mut reader = BufReader::new(rd);
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
    };
    match data {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(format!("internal: {e}")),
    }
}

fn status(shared: &Shared) -> StatusInfo {
    let dp = lock(&shared.dp).status();
    let servers = lock(&shared.servers);
    StatusInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: shared.started.elapsed().as_secs(),
        config_file: shared.opts.config_file.display().to_string(),
        config_loaded_unix: shared.loaded_unix,
        backend: if shared.opts.interface.is_some() {
            "afpacket"
        } else {
            "none"
        }
        .into(),
        interface: shared.opts.interface.clone(),
        workers: dp.workers,
        virtual_servers: shared.plan.services.len(),
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
    }
}

fn list(shared: &Shared) -> ListInfo {
    let dp = lock(&shared.dp).status();
    let servers = lock(&shared.servers);
    let health: BTreeMap<SubjectId, healthcheck::SubjectStatus> = shared
        .health
        .status()
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let services = shared
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
                forwarding: format!("{:?}", svc.spec.forwarding).to_uppercase(),
                local_addrs: svc.spec.local_addrs.iter().map(|a| a.to_string()).collect(),
                vip_owned: dsvc.map(|d| d.vip_owned).unwrap_or(false),
                stats: dsvc.map(|d| d.stats.into()).unwrap_or_default(),
                real_servers,
            }
        })
        .collect();
    ListInfo { services }
}

fn sockaddr(a: SocketAddr) -> String {
    a.to_string()
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::Protocol;

    fn rt(inhibit: bool) -> ServerRuntime {
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
            up: true,
        }
    }

    #[test]
    fn health_maps_to_keepalived_semantics() {
        let s = rt(false);
        assert!(matches!(
            server_command(&s, false),
            Command::DelRealServer { .. }
        ));
        assert!(
            matches!(server_command(&s, true), Command::AddRealServer { server, .. } if server.weight == 3)
        );
        let s = rt(true);
        assert!(matches!(
            server_command(&s, false),
            Command::SetWeight { weight: 0, .. }
        ));
        assert!(matches!(
            server_command(&s, true),
            Command::SetWeight { weight: 3, .. }
        ));
    }
}
