//! The OSPF speaker inside the daemon: a task that starts the driver for
//! the plan's `ospf_announcer` (looking up each interface's address), keeps
//! it announcing exactly the VIPs the daemon wants, restarts it on reload
//! and flushes its LSAs on shutdown.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use nix::ifaddrs::InterfaceAddress;
use ospf::driver::{self, Command, Handle};
use ospf::{InterfaceSpec, SpeakerSpec, Status};
use tokio::sync::{mpsc, oneshot, watch};

use crate::assemble::OspfPlan;

/// What `dpvsctl ospf` sees.
#[derive(Debug, Clone, Default)]
pub struct OspfSnapshot {
    pub running: bool,
    pub error: Option<String>,
    /// Our address on each interface.
    pub addresses: Vec<(String, Ipv4Addr)>,
    pub status: Option<Status>,
}

/// Requests to the OSPF task.
#[derive(Debug)]
pub enum OspfMsg {
    /// Flush and stop the running speaker, then start this plan.
    Restart(Option<OspfPlan>),
    /// Flush our LSAs (MaxAge) and stop, then answer.
    Stop(oneshot::Sender<()>),
}

/// The kernel's interface addresses, read once (one netlink dump) for the
/// lookups below; empty when they cannot be read.
pub(crate) fn kernel_addrs() -> Vec<InterfaceAddress> {
    nix::ifaddrs::getifaddrs()
        .map(|all| all.collect())
        .unwrap_or_default()
}

/// The IPv4 addresses of `name` in `all` with their prefix lengths, in the
/// kernel's order.
pub(crate) fn addrs_of(all: &[InterfaceAddress], name: &str) -> Vec<(Ipv4Addr, u8)> {
    all.iter()
        .filter(|ifa| ifa.interface_name == name)
        .filter_map(|ifa| {
            let addr = ifa.address?.as_sockaddr_in()?.ip();
            let len = ifa
                .netmask
                .and_then(|m| m.as_sockaddr_in().map(|m| u32::from(m.ip()).count_ones()))
                .unwrap_or(32);
            Some((addr, u8::try_from(len).unwrap_or(32)))
        })
        .collect()
}

/// The first IPv6 address of `name` in `all` that is not link-local, and
/// its prefix length.
pub(crate) fn addr6_of(all: &[InterfaceAddress], name: &str) -> Option<(Ipv6Addr, u8)> {
    all.iter()
        .filter(|ifa| ifa.interface_name == name)
        .find_map(|ifa| {
            let addr = ifa.address?.as_sockaddr_in6()?.ip();
            if addr.is_unicast_link_local() {
                return None;
            }
            let len = ifa
                .netmask
                .and_then(|m| m.as_sockaddr_in6().map(|m| u128::from(m.ip()).count_ones()))
                .unwrap_or(128);
            Some((addr, u8::try_from(len).unwrap_or(128)))
        })
}

/// The first IPv4 address of `name` and its prefix length.
fn interface_addr(name: &str) -> Option<(Ipv4Addr, u8)> {
    addrs_of(&kernel_addrs(), name).into_iter().next()
}

fn interface_mtu(name: &str) -> u16 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

/// The speaker's spec, with the addresses found now.
fn speaker_spec(plan: &OspfPlan) -> Result<SpeakerSpec, String> {
    let mut interfaces = Vec::new();
    for i in &plan.interfaces {
        let (addr, len) = interface_addr(&i.name)
            .ok_or_else(|| format!("interface {} has no IPv4 address", i.name))?;
        let mut s = InterfaceSpec::broadcast(&i.name, addr, len);
        s.hello_interval = i.hello_interval;
        s.dead_interval = i.dead_interval;
        s.priority = i.priority;
        s.cost = i.cost;
        s.auth = i.auth.clone();
        s.mtu = interface_mtu(&i.name);
        interfaces.push(s);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(SpeakerSpec {
        router_id: plan.router_id,
        area: plan.area,
        interfaces,
        announce_as: plan.announce_as,
        metric: plan.metric,
        crypto_seq_base: u32::try_from(now).unwrap_or(u32::MAX),
    })
}

/// Starts the OSPF task; it announces what `want` holds.
pub fn spawn(
    plan: Option<OspfPlan>,
    want: watch::Receiver<BTreeSet<Ipv4Addr>>,
) -> (
    mpsc::UnboundedSender<OspfMsg>,
    watch::Receiver<OspfSnapshot>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (out, status) = watch::channel(OspfSnapshot::default());
    tokio::spawn(manage(plan, want, rx, out));
    (tx, status)
}

/// How long to wait before trying again to start a speaker that could not
/// start (an interface without an address yet, a socket error) or that died.
const RETRY: Duration = Duration::from_secs(2);

/// Starts the speaker for `plan`; `Err` says why it could not start.
async fn start(
    plan: &OspfPlan,
    want: &watch::Receiver<BTreeSet<Ipv4Addr>>,
    out: &watch::Sender<OspfSnapshot>,
) -> Result<Handle, String> {
    let spec = speaker_spec(plan)?;
    let addresses = spec
        .interfaces
        .iter()
        .map(|i| (i.name.clone(), i.address))
        .collect();
    let handle = driver::spawn(spec).map_err(|e| e.to_string())?;
    let vips = want.borrow().clone();
    let _ = handle.commands.send(Command::SetAnnounced(vips)).await;
    tracing::info!(router_id = %plan.router_id, "OSPF announcer started");
    out.send_replace(OspfSnapshot {
        running: true,
        error: None,
        addresses,
        status: Some(handle.status.borrow().clone()),
    });
    Ok(handle)
}

/// One start attempt for the current plan. A failure is logged once per
/// distinct cause (not on every retry) and shown by `dpvsctl ospf`; the
/// caller tries again after [`RETRY`].
async fn attempt(
    plan: Option<&OspfPlan>,
    want: &watch::Receiver<BTreeSet<Ipv4Addr>>,
    out: &watch::Sender<OspfSnapshot>,
    last_error: &mut Option<String>,
) -> Option<Handle> {
    match start(plan?, want, out).await {
        Ok(h) => {
            *last_error = None;
            Some(h)
        }
        Err(error) => {
            if last_error.as_deref() != Some(error.as_str()) {
                tracing::error!(%error, "OSPF announcer not started; retrying every {}s", RETRY.as_secs());
            }
            out.send_modify(|s| {
                s.running = false;
                s.error = Some(format!("{error} (retrying every {}s)", RETRY.as_secs()));
            });
            *last_error = Some(error);
            None
        }
    }
}

/// Flushes our LSAs and waits (bounded) for the speaker to finish.
async fn stop(h: Handle, out: &watch::Sender<OspfSnapshot>) {
    let _ = h.commands.send(Command::Shutdown).await;
    if tokio::time::timeout(Duration::from_secs(3), h.task)
        .await
        .is_err()
    {
        tracing::warn!("OSPF speaker did not stop within 3 s");
    }
    let last = h.status.borrow().clone();
    out.send_modify(|s| {
        s.running = false;
        s.status = Some(last);
    });
}

async fn manage(
    mut plan: Option<OspfPlan>,
    mut want: watch::Receiver<BTreeSet<Ipv4Addr>>,
    mut rx: mpsc::UnboundedReceiver<OspfMsg>,
    out: watch::Sender<OspfSnapshot>,
) {
    let mut last_error = None;
    let mut running = attempt(plan.as_ref(), &want, &out, &mut last_error).await;
    let mut want_open = true;
    loop {
        let retry = running.is_none() && plan.is_some();
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(OspfMsg::Restart(next)) => {
                    if let Some(h) = running.take() {
                        stop(h, &out).await;
                    }
                    out.send_replace(OspfSnapshot::default());
                    plan = next;
                    last_error = None;
                    running = attempt(plan.as_ref(), &want, &out, &mut last_error).await;
                }
                Some(OspfMsg::Stop(done)) => {
                    if let Some(h) = running.take() {
                        stop(h, &out).await;
                    }
                    let _ = done.send(());
                    return;
                }
                None => {
                    if let Some(h) = running.take() {
                        stop(h, &out).await;
                    }
                    return;
                }
            },
            res = want.changed(), if want_open => {
                want_open = res.is_ok();
                if let (Some(h), true) = (&running, want_open) {
                    let vips = want.borrow_and_update().clone();
                    if h.commands.send(Command::SetAnnounced(vips)).await.is_err() {
                        tracing::error!("OSPF speaker stopped");
                    }
                }
            }
            () = tokio::time::sleep(RETRY), if retry => {
                running = attempt(plan.as_ref(), &want, &out, &mut last_error).await;
            }
            alive = async {
                match running.as_mut() {
                    Some(h) => h.status.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => {
                if let Some(h) = &running {
                    let st = h.status.borrow().clone();
                    out.send_modify(|s| {
                        s.running = alive;
                        s.status = Some(st);
                    });
                }
                if !alive {
                    tracing::error!("OSPF speaker stopped unexpectedly; restarting in {}s", RETRY.as_secs());
                    running = None;
                }
            }
        }
    }
}
