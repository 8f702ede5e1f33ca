//! The tokio driver: raw IP protocol-112 sockets per interface and family,
//! timers from [`Router::poll_at`], trackers (`vrrp_script`, `track_file`,
//! link state; see `trackers.rs`) and VIP ownership through [`VipOwner`].
//! [`Driver::spawn`] runs it and hands back status snapshots.
//!
//! IPv4 sockets leave `IP_HDRINCL` off and set TTL / multicast TTL 255 and
//! TOS 0xc0; they receive the IP header, so TTL is checked in the instance.
//! IPv6 sockets send from the interface's link-local address with hop limit
//! 255 and traffic class 0xc0; they receive the hop limit and destination
//! as ancillary data (`IPV6_RECVHOPLIMIT`, `IPV6_RECVPKTINFO`), so the
//! instance checks both as for IPv4. Checksums are computed here for both.
#![allow(unsafe_code)]

use crate::group::{InstanceIdx, Router, SpecError, SyncGroupSpec};
use crate::instance::{
    Action, DropCause, Event, InstanceSpec, InstanceStatus, RouteSpec, RuleSpec, VipSpec,
};
use crate::track::{FileSpec, ScriptSpec, TrackKind, TrackStatus};
use crate::wire::{parse_ip, Family, IP_PROTO_VRRP, MCAST_V4, MCAST_V6, VRRP_TOS, VRRP_TTL};
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// Who holds the VIPs: the kernel ([`crate::kernel::KernelVipOwner`], VRRP
/// on its own) or the dataplane (dpvsd implements this over its `Command` API).
///
/// The driver awaits each call before performing the next action, so a
/// master's VIPs are in place before its gratuitous ARPs go out. Errors are
/// logged; the state machine does not wait for the owner.
pub trait VipOwner: Send {
    /// The instance became master: own `vips` on `interface` (each VIP's
    /// `dev` overrides the interface).
    fn take(
        &mut self,
        interface: &str,
        vips: &[VipSpec],
    ) -> impl Future<Output = std::io::Result<()>> + Send;
    /// The instance left master: stop owning them (idempotent: also called
    /// when entering BACKUP at startup, so leftovers are removed).
    fn release(
        &mut self,
        interface: &str,
        vips: &[VipSpec],
    ) -> impl Future<Output = std::io::Result<()>> + Send;
    /// The instance became master: install its `virtual_routes` and
    /// `virtual_rules` (after its VIPs, so a route's `src` exists).
    /// Owners that cannot do this refuse anything non-empty.
    fn take_routes(
        &mut self,
        interface: &str,
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        let _ = interface;
        let empty = routes.is_empty() && rules.is_empty();
        async move {
            if empty {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "this VIP owner cannot install virtual_routes / virtual_rules",
                ))
            }
        }
    }
    /// The instance left master: remove them (idempotent, like `release`).
    fn release_routes(
        &mut self,
        interface: &str,
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        self.take_routes(interface, routes, rules)
    }
    /// Send `count` gratuitous ARPs / unsolicited NAs for each VIP.
    fn announce(
        &mut self,
        interface: &str,
        vips: &[VipSpec],
        count: u32,
    ) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// Everything the driver runs: instances, sync groups and the tracker
/// definitions (`vrrp_script`, `vrrp_track_file`) their `track_*` lines name.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `vrrp_instance` blocks.
    pub instances: Vec<InstanceSpec>,
    /// `vrrp_sync_group` blocks.
    pub groups: Vec<SyncGroupSpec>,
    /// `vrrp_script` blocks (only those tracked are run).
    pub scripts: Vec<ScriptSpec>,
    /// `vrrp_track_file` blocks (only those tracked are read).
    pub files: Vec<FileSpec>,
}

/// Input from trackers outside the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerEvent {
    /// A tracker's status changed.
    Track {
        /// Kind.
        kind: TrackKind,
        /// Name.
        name: String,
        /// Status.
        status: TrackStatus,
    },
    /// An instance interface's link changed.
    Link {
        /// Interface name.
        interface: String,
        /// Whether it is up.
        up: bool,
    },
}

/// Errors that stop the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The specs are inconsistent.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The interface has no usable address of the family.
    #[error("interface {interface}: no {family:?} source address")]
    NoAddress {
        /// Interface.
        interface: String,
        /// Family.
        family: Family,
    },
    /// The driver task panicked or was cancelled.
    #[error("driver task: {0}")]
    Task(String),
    /// A socket could not be set up.
    #[error("interface {interface}: {op}: {source}")]
    Socket {
        /// Interface.
        interface: String,
        /// What failed.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

struct Link {
    interface: String,
    unicast: bool,
    family: Family,
    src: IpAddr,
    sock: Arc<UdpSocket>,
}

fn sock_err<'a>(
    interface: &'a str,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> DriverError + 'a {
    move |source| DriverError::Socket {
        interface: interface.to_owned(),
        op,
        source,
    }
}

/// The first IPv4 address, or the IPv6 link-local address, of `interface`.
fn interface_addr(interface: &str, family: Family) -> Option<IpAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if ifa.interface_name != interface {
            return None;
        }
        let a = ifa.address?;
        match family {
            Family::V4 => a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())),
            Family::V6 => a
                .as_sockaddr_in6()
                .map(|s| s.ip())
                .filter(|ip| ip.segments()[0] & 0xffc0 == 0xfe80)
                .map(IpAddr::V6),
        }
    })
}

fn open(
    interface: &str,
    family: Family,
    src: IpAddr,
    unicast: bool,
) -> Result<UdpSocket, DriverError> {
    let e = |op| sock_err(interface, op);
    let ifindex = nix::net::if_::if_nametoindex(interface).map_err(|err| DriverError::Socket {
        interface: interface.to_owned(),
        op: "if_nametoindex",
        source: err.into(),
    })?;
    let proto = Some(Protocol::from(i32::from(IP_PROTO_VRRP)));
    let sock = match family {
        Family::V4 => {
            let s = Socket::new(Domain::IPV4, Type::RAW, proto).map_err(e("socket"))?;
            s.set_ttl_v4(u32::from(VRRP_TTL)).map_err(e("IP_TTL"))?;
            s.set_multicast_ttl_v4(u32::from(VRRP_TTL))
                .map_err(e("IP_MULTICAST_TTL"))?;
            s.set_tos_v4(u32::from(VRRP_TOS)).map_err(e("IP_TOS"))?;
            s.set_multicast_loop_v4(false)
                .map_err(e("IP_MULTICAST_LOOP"))?;
            if let IpAddr::V4(a) = src {
                s.set_multicast_if_v4(&a).map_err(e("IP_MULTICAST_IF"))?;
                if !unicast {
                    s.join_multicast_v4(&MCAST_V4, &a)
                        .map_err(e("IP_ADD_MEMBERSHIP"))?;
                }
            }
            s
        }
        Family::V6 => {
            let s = Socket::new(Domain::IPV6, Type::RAW, proto).map_err(e("socket"))?;
            s.set_unicast_hops_v6(u32::from(VRRP_TTL))
                .map_err(e("IPV6_UNICAST_HOPS"))?;
            s.set_multicast_hops_v6(u32::from(VRRP_TTL))
                .map_err(e("IPV6_MULTICAST_HOPS"))?;
            s.set_tclass_v6(u32::from(VRRP_TOS))
                .map_err(e("IPV6_TCLASS"))?;
            s.set_multicast_loop_v6(false)
                .map_err(e("IPV6_MULTICAST_LOOP"))?;
            s.set_multicast_if_v6(ifindex)
                .map_err(e("IPV6_MULTICAST_IF"))?;
            if !unicast {
                s.join_multicast_v6(&MCAST_V6, ifindex)
                    .map_err(e("IPV6_JOIN_GROUP"))?;
            }
            {
                use nix_cmsg::sys::socket::{setsockopt, sockopt};
                setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)
                    .map_err(|err| e("IPV6_RECVHOPLIMIT")(err.into()))?;
                setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)
                    .map_err(|err| e("IPV6_RECVPKTINFO")(err.into()))?;
            }
            if let IpAddr::V6(a) = src {
                s.bind(&SocketAddr::V6(SocketAddrV6::new(a, 0, 0, ifindex)).into())
                    .map_err(e("bind"))?;
            }
            s
        }
    };
    sock.bind_device(Some(interface.as_bytes()))
        .map_err(e("SO_BINDTODEVICE"))?;
    sock.set_nonblocking(true).map_err(e("O_NONBLOCK"))?;
    UdpSocket::from_std(std::net::UdpSocket::from(sock)).map_err(e("register"))
}

/// A received packet: which link, IP fields, VRRP payload.
struct Rx {
    link: usize,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    payload: Vec<u8>,
}

/// One IPv6 datagram with its hop limit and destination (ancillary data).
/// `None` fields mean the kernel did not report them.
fn recv_v6(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, IpAddr, Option<u8>, Option<IpAddr>)> {
    use nix_cmsg::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
    let mut cmsg = nix_cmsg::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let from = msg
        .address
        .map(|a| IpAddr::V6(a.ip()))
        .ok_or_else(|| std::io::Error::other("no source address"))?;
    let (mut hops, mut dst) = (None, None);
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(IpAddr::V6(std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    Ok((msg.bytes, from, hops, dst))
}

/// Reads one link's socket and forwards each VRRP packet with its IP
/// fields. `v6_dst` is the destination assumed for IPv6 if the kernel does
/// not report it: ff02::12, or our own address in unicast mode.
async fn reader(
    link: usize,
    family: Family,
    v6_dst: IpAddr,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<Rx>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let rx = match family {
            Family::V4 => {
                let Ok((n, _)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let Some(bytes) = buf.get(..n) else { continue };
                match parse_ip(bytes) {
                    Ok((meta, payload)) => Rx {
                        link,
                        src: meta.src,
                        dst: meta.dst,
                        ttl: meta.ttl,
                        payload: payload.to_vec(),
                    },
                    Err(_) => continue,
                }
            }
            Family::V6 => {
                let got = sock
                    .async_io(tokio::io::Interest::READABLE, || recv_v6(&sock, &mut buf))
                    .await;
                let Ok((n, src, hops, dst)) = got else {
                    continue;
                };
                let Some(bytes) = buf.get(..n) else { continue };
                Rx {
                    link,
                    src,
                    dst: dst.unwrap_or(v6_dst),
                    // Without the control message the packet cannot be
                    // checked: treat it as bad (hop limit 0).
                    ttl: hops.unwrap_or(0),
                    payload: bytes.to_vec(),
                }
            }
        };
        if tx.send(rx).await.is_err() {
            return;
        }
    }
}

/// Runs every instance until `shutdown` becomes true; then each master sends
/// its priority-0 advert and releases its VIPs. Trackers the instances name
/// are run by the driver; `events` adds outside ones. Status snapshots are
/// published on `status` after every event. [`Driver::spawn`] wraps this.
///
/// # Errors
/// [`DriverError`] if the specs are inconsistent or a socket cannot be set up.
pub async fn run<O: VipOwner>(
    config: Config,
    owner: O,
    events: mpsc::Receiver<TrackerEvent>,
    status: watch::Sender<Vec<InstanceStatus>>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DriverError> {
    let (_keep, reload) = mpsc::channel(1);
    run_reloadable(config, owner, events, reload, status, shutdown).await
}

/// Fills in each spec's source address and finds (or opens) its link;
/// returns the specs and, for each, the index of its link in `links`.
fn bind_links(
    mut specs: Vec<InstanceSpec>,
    links: &mut Vec<Link>,
) -> Result<(Vec<InstanceSpec>, Vec<usize>), DriverError> {
    let mut link_of = Vec::new();
    for s in &mut specs {
        let family = s.family();
        if s.src_addr.is_none() {
            s.src_addr = interface_addr(&s.interface, family);
        }
        let src = s.src_addr.ok_or_else(|| DriverError::NoAddress {
            interface: s.interface.clone(),
            family,
        })?;
        // One socket per interface, family and mode: a unicast socket does
        // not join the group, and IPv6 checksums need the destination.
        let unicast = !s.unicast_peers.is_empty();
        let pos = links.iter().position(|l| {
            l.interface == s.interface
                && l.family == family
                && l.unicast == unicast
                && (!unicast || l.src == src)
        });
        let idx = match pos {
            Some(i) => i,
            None => {
                let sock = open(&s.interface, family, src, unicast)?;
                links.push(Link {
                    interface: s.interface.clone(),
                    unicast,
                    family,
                    src,
                    sock: Arc::new(sock),
                });
                links.len() - 1
            }
        };
        link_of.push(idx);
    }
    Ok((specs, link_of))
}

/// [`run`], plus reconfiguration: each [`Config`] received on `reload`
/// replaces the running one. An instance whose spec and sync group are
/// unchanged keeps running untouched (state, timers, counters: no
/// re-election); removed or changed instances are stopped (a master sends
/// priority 0 and releases its VIPs) and the new or changed ones start in
/// INIT. Trackers are restarted. A config that cannot be applied (bad
/// specs, no address) is logged and ignored; the old one keeps running.
///
/// # Errors
/// [`DriverError`] if the first config is inconsistent or a socket cannot be set up.
pub async fn run_reloadable<O: VipOwner>(
    config: Config,
    mut owner: O,
    mut events: mpsc::Receiver<TrackerEvent>,
    mut reload: mpsc::Receiver<Config>,
    status: watch::Sender<Vec<InstanceStatus>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DriverError> {
    let mut links: Vec<Link> = Vec::new();
    let (specs, mut link_of) = bind_links(config.instances.clone(), &mut links)?;
    let mut groups = config.groups.clone();
    let (tx, mut rx) = mpsc::channel(256);
    let mut readers = tokio::task::JoinSet::new();
    for (i, l) in links.iter().enumerate() {
        let v6_dst = if l.unicast { l.src } else { MCAST_V6.into() };
        readers.spawn(reader(i, l.family, v6_dst, l.sock.clone(), tx.clone()));
    }
    let mut router = Router::new(
        specs,
        groups.clone(),
        tokio::time::Instant::now().into_std(),
    )?;
    let mut trackers = tokio::task::JoinSet::new();
    let mut track_rx = start_trackers(
        &config,
        &mut router,
        &links,
        &link_of,
        &mut owner,
        &mut trackers,
    )
    .await;
    status.send_replace(router.status());
    loop {
        let deadline = router.poll_at().map(tokio::time::Instant::from_std);
        let out = tokio::select! {
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => router.on_timer(std::time::Instant::now()),
            Some(p) = rx.recv() => {
                let now = std::time::Instant::now();
                let vrid = p.payload.get(1).copied();
                let targets: Vec<usize> = (0..router.instances().len())
                    .filter(|&i| link_of[i] == p.link && Some(router.instances()[i].spec().vrid) == vrid)
                    .collect();
                let mut out = Vec::new();
                for i in targets {
                    let before = router.instances()[i].counters().drops;
                    let ev = Event::Advert { src: p.src, dst: p.dst, ttl: p.ttl, payload: &p.payload };
                    out.extend(router.handle(InstanceIdx(i), ev, now));
                    log_first_drops(&router, i, &before);
                }
                out
            }
            Some(ev) = events.recv() => on_tracker(&mut router, &ev, std::time::Instant::now()),
            Some(next) = reload.recv() => {
                let now = std::time::Instant::now();
                let n_links = links.len();
                let built = bind_links(next.instances.clone(), &mut links).and_then(|(specs, lo)| {
                    Ok((Router::new(specs, next.groups.clone(), now)?, lo))
                });
                let (mut new_router, new_link_of) = match built {
                    Ok(b) => b,
                    Err(err) => {
                        tracing::error!("VRRP reload refused, the running config stays: {err}");
                        continue;
                    }
                };
                for (i, l) in links.iter().enumerate().skip(n_links) {
                    let v6_dst = if l.unicast { l.src } else { MCAST_V6.into() };
                    readers.spawn(reader(i, l.family, v6_dst, l.sock.clone(), tx.clone()));
                }
                let kept = router.hand_over(&groups, &mut new_router, &next.groups);
                // Stop what was removed or changed, on the old layout.
                let mut out = Vec::new();
                for i in (0..router.instances().len()).map(InstanceIdx) {
                    if !kept.contains(&i) {
                        out.extend(router.handle(i, Event::Shutdown, now));
                    }
                }
                perform(&router, &links, &link_of, &mut owner, out).await;
                tracing::info!(kept = kept.len(), instances = new_router.instances().len(), "VRRP reconfigured");
                router = new_router;
                link_of = new_link_of;
                groups = next.groups.clone();
                trackers.abort_all();
                track_rx = start_trackers(&next, &mut router, &links, &link_of, &mut owner, &mut trackers).await;
                Vec::new()
            }
            Some(ev) = track_rx.recv() => on_tracker(&mut router, &ev, std::time::Instant::now()),
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    let out = router.broadcast(Event::Shutdown, std::time::Instant::now());
                    perform(&router, &links, &link_of, &mut owner, out).await;
                    status.send_replace(router.status());
                    readers.abort_all();
                    trackers.abort_all();
                    return Ok(());
                }
                Vec::new()
            }
        };
        perform(&router, &links, &link_of, &mut owner, out).await;
        status.send_replace(router.status());
    }
}

/// A running driver: the handle dpvsd keeps to read status snapshots, feed
/// outside tracker events and stop it.
#[derive(Debug)]
pub struct Driver {
    status: watch::Receiver<Vec<InstanceStatus>>,
    events: mpsc::Sender<TrackerEvent>,
    reload: mpsc::Sender<Config>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
}

impl Driver {
    /// Spawns [`run`] on the current tokio runtime with `owner` holding the
    /// VIPs (a [`crate::kernel::KernelVipOwner`] or the dataplane's).
    pub fn spawn<O: VipOwner + 'static>(config: Config, owner: O) -> Driver {
        let (events, erx) = mpsc::channel(64);
        let (reload, rrx) = mpsc::channel(4);
        let (stx, status) = watch::channel(Vec::new());
        let (shutdown, drx) = watch::channel(false);
        let task = tokio::spawn(run_reloadable(config, owner, erx, rrx, stx, drx));
        Driver {
            status,
            events,
            reload,
            shutdown,
            task,
        }
    }

    /// The latest snapshot of every instance (empty until the driver started).
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.status.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Vec<InstanceStatus>> {
        self.status.clone()
    }

    /// Where outside trackers send their events.
    pub fn events(&self) -> mpsc::Sender<TrackerEvent> {
        self.events.clone()
    }

    /// Replaces the configuration without a restart: unchanged instances
    /// keep their state (see [`run_reloadable`]).
    ///
    /// # Errors
    /// The config back if the driver has stopped.
    pub async fn reconfigure(&self, config: Config) -> Result<(), Box<Config>> {
        self.reload.send(config).await.map_err(|e| Box::new(e.0))
    }

    /// Whether the driver stopped (on an error, or after [`stop`](Self::stop)).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops gracefully (masters send priority 0 and release their VIPs) and
    /// returns how the driver ended.
    ///
    /// # Errors
    /// The error that stopped the driver earlier, if any.
    pub async fn stop(self) -> Result<(), DriverError> {
        self.shutdown.send_replace(true);
        match self.task.await {
            Ok(res) => res,
            Err(e) => Err(DriverError::Task(e.to_string())),
        }
    }
}

/// Starts the trackers `config` names and applies their first statuses
/// (instances in INIT only record them); returns their event channel.
async fn start_trackers<O: VipOwner>(
    config: &Config,
    router: &mut Router,
    links: &[Link],
    link_of: &[usize],
    owner: &mut O,
    set: &mut tokio::task::JoinSet<()>,
) -> mpsc::Receiver<TrackerEvent> {
    let (track_tx, track_rx) = mpsc::channel(64);
    let now = std::time::Instant::now();
    for ev in crate::trackers::start(config, &track_tx, set) {
        let out = on_tracker(router, &ev, now);
        perform(router, links, link_of, owner, out).await;
    }
    track_rx
}

fn on_tracker(
    router: &mut Router,
    ev: &TrackerEvent,
    now: std::time::Instant,
) -> Vec<(InstanceIdx, Action)> {
    match ev {
        TrackerEvent::Track { kind, name, status } => router.broadcast(
            Event::Track {
                kind: *kind,
                name,
                status: *status,
            },
            now,
        ),
        TrackerEvent::Link { interface, up } => {
            let mine: Vec<usize> = (0..router.instances().len())
                .filter(|&i| &router.instances()[i].spec().interface == interface)
                .collect();
            mine.into_iter()
                .flat_map(|i| router.handle(InstanceIdx(i), Event::Link { up: *up }, now))
                .collect()
        }
    }
}

fn log_first_drops(router: &Router, i: usize, before: &[u64]) {
    let inst = &router.instances()[i];
    for (cause, (b, a)) in DropCause::ALL
        .iter()
        .zip(before.iter().zip(&inst.counters().drops))
    {
        if *b == 0 && *a > 0 {
            tracing::warn!(instance = %inst.spec().name, cause = cause.name(), "dropped advert: {}", cause.description());
        }
    }
}

async fn perform<O: VipOwner>(
    router: &Router,
    links: &[Link],
    link_of: &[usize],
    owner: &mut O,
    out: Vec<(InstanceIdx, Action)>,
) {
    for (idx, action) in out {
        let (Some(inst), Some(link)) = (
            router.get(idx),
            link_of.get(idx.0).and_then(|&l| links.get(l)),
        ) else {
            continue;
        };
        let spec = inst.spec();
        let vips: Vec<VipSpec> = spec
            .vips
            .iter()
            .chain(&spec.excluded_vips)
            .cloned()
            .collect();
        match action {
            Action::SendAdvert { priority } => {
                let dsts: Vec<IpAddr> = if spec.unicast_peers.is_empty() {
                    vec![match link.family {
                        Family::V4 => MCAST_V4.into(),
                        Family::V6 => MCAST_V6.into(),
                    }]
                } else {
                    spec.unicast_peers.clone()
                };
                for dst in dsts {
                    let bytes = inst.advert(priority).to_bytes(link.src, dst);
                    if let Err(err) = link.sock.send_to(&bytes, SocketAddr::new(dst, 0)).await {
                        tracing::warn!(instance = %spec.name, %dst, "send advert: {err}");
                    }
                }
            }
            Action::BecomeMaster => {
                if let Err(err) = owner.take(&link.interface, &vips).await {
                    tracing::warn!(instance = %spec.name, "taking VIPs: {err}");
                }
                if let Err(err) = owner
                    .take_routes(&link.interface, &spec.routes, &spec.rules)
                    .await
                {
                    tracing::warn!(instance = %spec.name, "installing virtual routes/rules: {err}");
                }
            }
            Action::BecomeBackup | Action::BecomeFault | Action::Stopped => {
                if let Err(err) = owner
                    .release_routes(&link.interface, &spec.routes, &spec.rules)
                    .await
                {
                    tracing::warn!(instance = %spec.name, "removing virtual routes/rules: {err}");
                }
                if let Err(err) = owner.release(&link.interface, &vips).await {
                    tracing::warn!(instance = %spec.name, "releasing VIPs: {err}");
                }
            }
            Action::SendGarp { count } => {
                if let Err(err) = owner.announce(&link.interface, &vips, count).await {
                    tracing::warn!(instance = %spec.name, "announcing VIPs: {err}");
                }
            }
            Action::Notify { state, priority } => {
                tracing::info!(instance = %spec.name, ?state, priority, "state change");
                for cmd in spec
                    .notify
                    .commands("INSTANCE", &spec.name, state, priority)
                {
                    if let Some((prog, args)) = cmd.split_first() {
                        if let Err(err) = tokio::process::Command::new(prog).args(args).spawn() {
                            tracing::warn!(instance = %spec.name, "notify {prog}: {err}");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Recorder(Vec<&'static str>);

    impl VipOwner for Recorder {
        async fn take(&mut self, _: &str, _: &[VipSpec]) -> std::io::Result<()> {
            self.0.push("take");
            Ok(())
        }
        async fn release(&mut self, _: &str, _: &[VipSpec]) -> std::io::Result<()> {
            self.0.push("release");
            Ok(())
        }
        async fn announce(&mut self, _: &str, _: &[VipSpec], _: u32) -> std::io::Result<()> {
            self.0.push("announce");
            Ok(())
        }
    }

    #[tokio::test]
    async fn missing_interface_is_reported_before_anything_runs() {
        let mut s = InstanceSpec::new("vi", "nosuchif0", 51);
        s.vips = vec![VipSpec::new(std::net::Ipv4Addr::new(10, 99, 0, 100).into())];
        let config = Config {
            instances: vec![s],
            ..Config::default()
        };
        let err = Driver::spawn(config, Recorder::default()).stop().await;
        assert!(
            matches!(&err, Err(DriverError::NoAddress { interface, family: Family::V4 }) if interface == "nosuchif0"),
            "{err:?}"
        );
    }
}
