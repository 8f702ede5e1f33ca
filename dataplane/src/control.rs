//! The control side of the dataplane: desired state, snapshot building,
//! worker lifecycle. All changes arrive as [`Command`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::acl::AccessList;
use crate::command::{
    AddrRange, Command, CommandError, Device, Forwarding, Protocol, RealServerSpec, Scheduler,
    ServiceKey, ServiceSpec, SnatMatch,
};
use crate::engine::{
    longest_match, ConnPolicy, Engine, Family, FamilySnap, ServerSnap, ServiceSnap, Snapshot,
    Snapshot4, Snapshot6, SnatRule,
};
use crate::io::PacketIo;
use crate::sched::{SchedServer, SchedTable};
use crate::stats::{Drop, Traffic, TrafficSnapshot};
use crate::threshold::Threshold;
use crate::worker::{self, Published, WorkerStats};

/// Sizing of the dataplane.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Connections per worker and address family (memory is allocated
    /// up front; see [`Engine::new`]).
    pub conn_capacity: usize,
    /// How many workers will be spawned: the FNAT local port space is split
    /// into this many disjoint ranges, one per worker.
    pub workers: usize,
    /// The CPU each worker is pinned to, in worker order (empty: workers
    /// are not pinned).
    pub cores: Vec<usize>,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            conn_capacity: 1 << 18,
            workers: 1,
            cores: Vec::new(),
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
    /// Compiled `spec.protection.allow`/`deny` (`None`: no lists).
    acl: Option<AccessList>,
    /// `spec.protection.thresholds` with their overload flags, which
    /// outlive snapshots.
    limits: HashMap<SocketAddr, Arc<Threshold>>,
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
    /// SNAT (`virtual_server match`): the match.
    pub snat: Option<SnatMatch>,
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

/// A pending connection listing (see [`Dataplane::query_conns`]).
#[derive(Debug)]
pub struct ConnQuery {
    workers: Vec<Arc<WorkerStats>>,
}

impl ConnQuery {
    /// Waits (polling, at most `timeout`) for every worker's listing.
    /// Returns `None` if some worker did not answer in time.
    pub fn wait(self, timeout: std::time::Duration) -> Option<Vec<crate::conn::ConnView>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut all = Vec::new();
        let mut pending = self.workers;
        loop {
            pending.retain(|w| match w.conn_dump.take() {
                Some(list) => {
                    all.extend(list);
                    false
                }
                None => true,
            });
            if pending.is_empty() {
                return Some(all);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// The dataplane: apply [`Command`]s, spawn workers, read status.
#[derive(Debug)]
pub struct Dataplane {
    cfg: DataplaneConfig,
    services: BTreeMap<ServiceKey, ServiceState>,
    vip_owned: BTreeMap<IpAddr, bool>,
    /// See [`Command::SetInterfaceAddr`]: (address, prefix length, device).
    interfaces: Vec<(IpAddr, u8, Device)>,
    /// See [`Command::SetDevice`] (no default devices).
    devices: BTreeMap<IpAddr, Device>,
    published: Arc<Published>,
    workers: Vec<WorkerHandle>,
    stop: Arc<AtomicBool>,
    /// The SYN-cookie secret, random per process.
    cookie_key: [u64; 2],
    /// The rate estimator thread ([`crate::rate`]), started with the first worker.
    estimator: Option<JoinHandle<()>>,
}

/// Samples every published service's and server's counters each
/// [`crate::rate::PERIOD_MS`] until `stop` (checked every 100 ms).
fn run_estimator(published: Arc<Published>, stop: Arc<AtomicBool>) {
    let t0 = std::time::Instant::now();
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now_ms = t0.elapsed().as_millis() as u64;
        if now_ms >= next {
            next = now_ms + crate::rate::PERIOD_MS;
            let (_, snap) = published.load();
            for svc in &snap.v4.services {
                svc.stats.estimate(now_ms);
                for rs in &svc.servers {
                    rs.stats.estimate(now_ms);
                }
            }
            for svc in &snap.v6.services {
                svc.stats.estimate(now_ms);
                for rs in &svc.servers {
                    rs.stats.estimate(now_ms);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether service `spec` talks to its real servers over IPv4: its VIP's
/// family, except NAT64 (FNAT with an IPv6 VIP and IPv4 local addresses).
fn servers_v4(spec: &ServiceSpec) -> bool {
    match spec.local_addrs.first() {
        Some(lip) if spec.forwarding == Forwarding::Fnat => lip.is_ipv4(),
        _ => spec.key.addr.is_ipv4(),
    }
}

/// Refuses `ip` as a `what` (local address, real server) of service
/// `spec` when it is not of the family the service uses towards its
/// servers.
fn same_family(spec: &ServiceSpec, ip: IpAddr, what: &str) -> Result<(), CommandError> {
    if servers_v4(spec) == ip.is_ipv4() {
        return Ok(());
    }
    Err(CommandError::Unsupported {
        what: format!(
            "{what} {ip} of another address family than virtual server {} (NAT64: FNAT with IPv4 local addresses only)",
            spec.key.addr
        ),
    })
}

/// Refuses a device whose VLAN id is not 0 (untagged) or in 1..=4094;
/// `what` names what was bound to it.
fn check_vlan(device: Device, what: impl Fn() -> String) -> Result<(), CommandError> {
    if device.vlan <= 4094 {
        return Ok(());
    }
    Err(CommandError::Invalid {
        reason: format!("VLAN id {} of {} is not in 1..=4094", device.vlan, what()),
    })
}

impl Dataplane {
    pub fn new(cfg: DataplaneConfig) -> Dataplane {
        Dataplane {
            cfg,
            services: BTreeMap::new(),
            vip_owned: BTreeMap::new(),
            interfaces: Vec::new(),
            devices: BTreeMap::new(),
            published: Arc::default(),
            workers: Vec::new(),
            stop: Arc::default(),
            estimator: None,
            cookie_key: {
                use std::hash::BuildHasher;
                let s = std::collections::hash_map::RandomState::new();
                [s.hash_one(1u8), s.hash_one(2u8)]
            },
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
                if spec.forwarding.needs_local_addrs() && spec.local_addrs.is_empty() {
                    return Err(CommandError::Invalid {
                        reason: format!(
                            "{} service {} has no local addresses",
                            spec.forwarding, spec.key
                        ),
                    });
                }
                if spec.key.addr.is_ipv4() && !servers_v4(&spec) {
                    return Err(CommandError::Unsupported {
                        what: format!("IPv6 local addresses for IPv4 virtual server {}", spec.key),
                    });
                }
                for &a in &spec.local_addrs {
                    same_family(&spec, a, "local address")?;
                }
                check_snat(&spec)?;
                let p = &spec.protection;
                let proxiable = spec.key.protocol == crate::command::Protocol::Tcp
                    && spec.forwarding.has_reply_path()
                    && spec.forwarding != Forwarding::Snat;
                if p.syn_proxy && !proxiable {
                    return Err(CommandError::Invalid {
                        reason: format!(
                            "syn_proxy needs a TCP service with FNAT or NAT ({} is {})",
                            spec.key, spec.forwarding
                        ),
                    });
                }
                if let Some(t) = spec
                    .establish_timeout_s
                    .filter(|t| !crate::command::ESTABLISH_TIMEOUT_S.contains(t))
                {
                    return Err(CommandError::Invalid {
                        reason: format!(
                            "establish_timeout {t} of {} is outside 1..=3600 seconds",
                            spec.key
                        ),
                    });
                }
                if p.syn_proxy && spec.key.addr.is_ipv6() && servers_v4(&spec) {
                    return Err(CommandError::Unsupported {
                        what: format!("syn_proxy on NAT64 virtual server {}", spec.key),
                    });
                }
                if let Some(r) = p
                    .allow
                    .iter()
                    .chain(&p.deny)
                    .find(|r| r.first.is_ipv4() != r.last.is_ipv4())
                {
                    return Err(CommandError::Invalid {
                        reason: format!("address range {}-{} mixes families", r.first, r.last),
                    });
                }
                let acl = AccessList::new(p);
                let limits = p
                    .thresholds
                    .iter()
                    .filter_map(|&(a, t)| Some((a, Arc::new(Threshold::new(t)?))))
                    .collect();
                self.services.insert(
                    spec.key,
                    ServiceState {
                        spec,
                        stats: Arc::new(Traffic::new(self.cfg.workers)),
                        servers: Vec::new(),
                        trash: HashMap::new(),
                        acl,
                        limits,
                    },
                );
            }
            Command::DelService(key) => {
                self.services
                    .remove(&key)
                    .ok_or(CommandError::NoSuchService(key))?;
            }
            Command::AddRealServer { service, server } => {
                let workers = self.cfg.workers;
                let svc = self.service_mut(&service)?;
                same_family(&svc.spec, server.addr.ip(), "real server")?;
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
            Command::SetInterfaceAddr { device, v4, v6 } => {
                if v4.is_some_and(|(_, len)| len > 32) || v6.is_some_and(|(_, len)| len > 128) {
                    return Err(CommandError::Invalid {
                        reason: format!("prefix length of {v4:?} / {v6:?} is too long"),
                    });
                }
                check_vlan(device, || format!("{v4:?} / {v6:?}"))?;
                self.interfaces.retain(|&(_, _, d)| d != device);
                let nets = v4.map(|(a, l)| (IpAddr::from(a), l));
                let nets = nets.into_iter().chain(v6.map(|(a, l)| (a.into(), l)));
                self.interfaces.extend(nets.map(|(a, l)| (a, l, device)));
                self.interfaces.sort_unstable_by_key(|&(a, l, d)| (d, a, l));
            }
            Command::SetDevice { addr, device } if device == Device::default() => {
                self.devices.remove(&addr);
            }
            Command::SetDevice { addr, device } => {
                check_vlan(device, || addr.to_string())?;
                self.devices.insert(addr, device);
            }
        }
        Ok(())
    }

    /// The addresses whose device has a non-zero `part` (sorted): the
    /// bound VIPs and local addresses, and the interface addresses (the
    /// neighbours asked from them are asked there).
    fn bound(&self, part: impl Fn(&Device) -> u16) -> Vec<(IpAddr, u16)> {
        let interfaces = self.interfaces.iter().map(|&(a, _, d)| (a, part(&d)));
        let mut all: BTreeMap<IpAddr, u16> = interfaces.filter(|&(_, v)| v != 0).collect();
        all.extend(self.devices.iter().map(|(&a, d)| (a, part(d))));
        all.into_iter().filter(|&(_, v)| v != 0).collect()
    }

    fn owned(&self, vip: IpAddr) -> bool {
        self.vip_owned.get(&vip).copied().unwrap_or(true)
    }

    fn build_snapshot(&self) -> Snapshot {
        let mut v4: Snapshot4 = self.build_family();
        let v6: Snapshot6 = self.build_family();
        // NAT64 local addresses are IPv4's to answer ARP for and receive on.
        let nat64_lips: BTreeSet<Ipv4Addr> = v6
            .services
            .iter()
            .flat_map(|s| s.local_addrs.iter().filter_map(|a| a.to_ipv4_mapped()))
            .collect();
        let mut lips: BTreeSet<Ipv4Addr> = v4.local_addrs.drain(..).collect();
        lips.extend(&nat64_lips);
        v4.local_addrs = lips.into_iter().collect();
        Snapshot {
            vlan_ids: self.vlan_ids(&v4, &v6),
            v4,
            v6,
            nat64_lips: nat64_lips.into_iter().collect(),
            syn_cookie_key: self.cookie_key,
            addr_vlans: self.bound(|d| d.vlan),
            addr_ports: self.bound(|d| d.port),
            port_nets: self
                .interfaces
                .iter()
                .filter(|&&(_, _, device)| device != Device::default())
                .copied()
                .collect(),
        }
    }

    /// The VLANs the engine handles (tagged frames on others are dropped as
    /// `unknown_vlan`; any VLAN takes the fast path off): those of the
    /// bound VIPs and local addresses, and those of the VLAN devices the
    /// forwarding uses: one whose address real servers are asked from, or,
    /// with SNAT services, any (their inside hosts may be on it). A VLAN
    /// device only the kernel uses (management, a routing uplink) costs
    /// the dataplane nothing.
    fn vlan_ids(&self, v4: &Snapshot4, v6: &Snapshot6) -> Vec<u16> {
        let snat = !v4.snat.is_empty() || !v6.snat.is_empty();
        let sources: BTreeSet<IpAddr> = v4
            .neighbours
            .iter()
            .map(|&(_, s)| IpAddr::from(s))
            .chain(v6.neighbours.iter().map(|&(_, s)| IpAddr::from(s)))
            .collect();
        let used = self
            .interfaces
            .iter()
            .filter(|(a, _, _)| snat || sources.contains(a));
        let all = self.devices.values().chain(used.map(|(_, _, d)| d));
        let vlans: BTreeSet<u16> = all.map(|d| d.vlan).filter(|&v| v != 0).collect();
        vlans.into_iter().collect()
    }

    /// The interface address a neighbour `server` is asked from (see
    /// [`Command::SetInterfaceAddr`]): the one whose network holds it
    /// (longest prefix, then the lowest port and VLAN), else the untagged
    /// port 0's of its family.
    fn interface_for<A: Family>(&self, server: A) -> Option<A> {
        longest_match(&self.interfaces, server.into())
            .and_then(|&(a, _, _)| A::from_ip(a))
            .or_else(|| self.first_interface())
    }

    /// The untagged port 0's interface address of family `A`.
    fn first_interface<A: Family>(&self) -> Option<A> {
        let mut of_port0 = self
            .interfaces
            .iter()
            .filter(|(_, _, d)| *d == Device::default());
        of_port0.find_map(|&(a, _, _)| A::from_ip(a))
    }

    /// The services of address family `A`.
    fn build_family<A: Family>(&self) -> FamilySnap<A> {
        let mut built = FamilySnap {
            interface: self.first_interface(),
            ..FamilySnap::default()
        };
        let mut vips = BTreeSet::new();
        let mut lips = BTreeSet::new();
        let mut neighbours: BTreeMap<A, A> = BTreeMap::new();
        let mut nat_servers = BTreeSet::new();
        for (key, svc) in &self.services {
            let (Some(vip), true) = (A::from_ip(key.addr), self.owned(key.addr)) else {
                continue;
            };
            let nat64 = key.addr.is_ipv6() && servers_v4(&svc.spec);
            let local_addrs: Vec<A> = svc
                .spec
                .local_addrs
                .iter()
                .filter_map(|&a| A::from_ip_for(a, nat64))
                .collect();
            let servers: Vec<ServerSnap<A>> = svc
                .servers
                .iter()
                .filter_map(|s| {
                    Some(ServerSnap {
                        addr: A::from_ip_for(s.spec.addr.ip(), nat64)?,
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
            // Ask from the service's first LIP, else the interface address
            // of the server's port, else (IPv4) as a probe from 0.0.0.0
            // (RFC 5227; Linux answers those) or (IPv6) from our link-local
            // address.
            let lip = local_addrs.first().copied();
            let source = |server: A| {
                lip.or_else(|| self.interface_for(server))
                    .unwrap_or(A::UNSPECIFIED)
            };
            if let Some(m) = &svc.spec.snat {
                // engine/snat.rs: the SNAT addresses are ours (answered
                // for, replies come to them); the gateway is the neighbour.
                let next_hop = m.gateway.and_then(A::from_ip);
                if let (Some(gw), Some(first)) = (next_hop, servers.first()) {
                    neighbours.entry(gw).or_insert(first.addr);
                }
                lips.extend(servers.iter().map(|s| s.addr));
                built.snat.push(snat_rule(built.services.len(), key, m));
                built.next_hop.resize(built.services.len(), None);
                built.next_hop.push(next_hop);
                push_service(&mut built, svc, *key, servers, sched, local_addrs, nat64);
                continue;
            }
            for s in &servers {
                let n = neighbours.entry(s.addr).or_insert(source(s.addr));
                if *n == A::UNSPECIFIED {
                    *n = source(s.addr);
                }
                if svc.spec.forwarding == Forwarding::Nat {
                    nat_servers.insert(s.addr);
                }
            }
            vips.insert(vip);
            lips.extend(local_addrs.iter().copied().filter(|a| !a.is_mapped()));
            built
                .lookup
                .insert((vip, key.port, key.protocol.number()), built.services.len());
            push_service(&mut built, svc, *key, servers, sched, local_addrs, nat64);
        }
        built.owned_vips = vips.into_iter().collect();
        built.local_addrs = lips.into_iter().collect();
        built.neighbours = neighbours.into_iter().collect();
        built.nat_servers = nat_servers.into_iter().collect();
        built
    }

    fn publish(&self) {
        self.published.publish(self.build_snapshot());
    }
}

/// Appends service `svc` (key `key`, its servers and local addresses in
/// family `A`) and its per-service entries to `built`.
fn push_service<A: Family>(
    built: &mut FamilySnap<A>,
    svc: &ServiceState,
    key: ServiceKey,
    servers: Vec<ServerSnap<A>>,
    sched: Vec<SchedServer>,
    local_addrs: Vec<A>,
    nat64: bool,
) {
    built.services.push(ServiceSnap {
        key,
        stats: Arc::clone(&svc.stats),
        table: SchedTable::build_servers(svc.spec.scheduler, &sched),
        servers,
        local_addrs,
    });
    built.forwarding.push(svc.spec.forwarding);
    built.persistence.push(svc.spec.persistence);
    built.acl.push(svc.acl.clone());
    built.synproxy.push(svc.spec.protection.syn_proxy);
    built.quic.push(svc.spec.quic);
    built.proxy_protocol.push(svc.spec.proxy_protocol);
    built.conn_policy.push(ConnPolicy {
        establish_timeout_s: svc.spec.establish_timeout_s,
        expire_quiescent: svc.spec.expire_quiescent,
        // Aligned with `servers` (same filter).
        quiescent: svc
            .servers
            .iter()
            .filter(|s| A::from_ip_for(s.spec.addr.ip(), nat64).is_some())
            .map(|s| s.spec.weight == 0)
            .collect(),
    });
    let limits: Box<[_]> = svc
        .servers
        .iter()
        .map(|s| svc.limits.get(&s.spec.addr).cloned())
        .collect();
    built
        .limits
        .push(limits.iter().any(Option::is_some).then_some(limits));
}

/// The inclusive range `r` in family `A`, or the whole family.
fn family_range<A: Family>(r: Option<AddrRange>) -> (A, A) {
    let whole = (
        A::UNSPECIFIED,
        A::from_ip(all_ones::<A>()).unwrap_or(A::UNSPECIFIED),
    );
    match r {
        Some(r) => match (A::from_ip(r.first), A::from_ip(r.last)) {
            (Some(a), Some(b)) => (a, b),
            _ => whole,
        },
        None => whole,
    }
}

/// The highest address of family `A`.
fn all_ones<A: Family>() -> IpAddr {
    match A::UNSPECIFIED.into() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    }
}

/// The workers' form of SNAT service number `svc`'s match `m`.
fn snat_rule<A: Family>(svc: usize, key: &ServiceKey, m: &SnatMatch) -> SnatRule<A> {
    SnatRule {
        svc,
        proto: key.protocol.number(),
        src: family_range(m.src.addrs),
        sports: m.src.ports,
        dst: family_range(m.dst.addrs),
        dports: m.dst.ports,
    }
}

/// Refuses an inconsistent SNAT service: `snat` set exactly for SNAT, on
/// the unspecified address, ICMP only for IPv4 SNAT and ICMPv6 only for
/// IPv6 SNAT, ranges of the service's family and in order.
fn check_snat(spec: &ServiceSpec) -> Result<(), CommandError> {
    let invalid = |reason: String| Err(CommandError::Invalid { reason });
    let key = spec.key;
    let Some(m) = &spec.snat else {
        if spec.forwarding == Forwarding::Snat {
            return invalid(format!("SNAT service {key} has no match"));
        }
        if matches!(key.protocol, Protocol::Icmp | Protocol::Icmpv6) {
            return invalid(format!("{key}: ICMP is for SNAT (match) services only"));
        }
        return Ok(());
    };
    if spec.forwarding != Forwarding::Snat {
        return invalid(format!("{key}: a match needs SNAT forwarding"));
    }
    if !key.addr.is_unspecified() {
        return invalid(format!(
            "SNAT service {key} must be keyed by the unspecified address"
        ));
    }
    let icmp_family = match key.protocol {
        Protocol::Icmp => Some(false),
        Protocol::Icmpv6 => Some(true),
        Protocol::Tcp | Protocol::Udp => None,
    };
    if icmp_family.is_some_and(|v6| v6 != key.addr.is_ipv6()) {
        return invalid(format!(
            "{key}: ICMP is IPv4's and ICMPv6 IPv6's (the match's family)"
        ));
    }
    for r in [m.src, m.dst] {
        if r.ports.0 > r.ports.1 {
            return invalid(format!(
                "{key}: port range {}-{} is empty",
                r.ports.0, r.ports.1
            ));
        }
        let Some(a) = r.addrs else { continue };
        if a.first.is_ipv4() != key.addr.is_ipv4() || a.last.is_ipv4() != key.addr.is_ipv4() {
            return invalid(format!("{key}: range {r} is of another address family"));
        }
        if a.first > a.last {
            return invalid(format!("{key}: address range {r} is empty"));
        }
    }
    if let Some(gw) = m.gateway {
        if gw.is_ipv4() != key.addr.is_ipv4() {
            return invalid(format!("{key}: gateway {gw} is of another address family"));
        }
    }
    Ok(())
}

impl Dataplane {
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
        let stats = Arc::new(WorkerStats::default());
        let mut engine = Engine::new(
            i,
            io.mac(),
            self.cfg.conn_capacity,
            crate::steer::local_port_range(i, n),
            Arc::clone(&stats.drops),
        );
        engine.set_port_macs(&io.macs());
        let (published, stop, wstats) = (
            Arc::clone(&self.published),
            Arc::clone(&self.stop),
            Arc::clone(&stats),
        );
        let cpu = self.cfg.cores.get(i).copied();
        let (pinned_tx, pinned) = std::sync::mpsc::channel();
        let join = std::thread::Builder::new()
            .name(format!("dp-worker{i}"))
            .spawn(move || {
                // Pinned before the first packet; a refusal stops the worker.
                let pin = cpu.map_or(Ok(()), crate::io::affinity::pin_current_thread);
                let ok = pin.is_ok();
                let _ = pinned_tx.send(pin);
                if ok {
                    worker::run(io, engine, published, wstats, stop);
                }
            })?;
        if let (Some(c), Ok(Err(e))) = (cpu, pinned.recv()) {
            let _ = join.join();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot pin worker {i} to CPU {c}: {e}"),
            ));
        }
        self.workers.push(WorkerHandle {
            join: Some(join),
            stats,
        });
        if self.estimator.is_none() {
            let (published, stop) = (Arc::clone(&self.published), Arc::clone(&self.stop));
            self.estimator = Some(
                std::thread::Builder::new()
                    .name("dp-rates".into())
                    .spawn(move || run_estimator(published, stop))?,
            );
        }
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
                snat: s.spec.snat.as_deref().cloned(),
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

    /// Asks every worker for its connections; collect them with
    /// [`ConnQuery::wait`] without holding the dataplane.
    pub fn query_conns(&self) -> ConnQuery {
        let workers: Vec<Arc<WorkerStats>> =
            self.workers.iter().map(|w| Arc::clone(&w.stats)).collect();
        for w in &workers {
            w.conn_dump.request();
        }
        ConnQuery { workers }
    }

    /// Stops and joins every worker.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.estimator.take() {
            if j.join().is_err() {
                tracing::error!("the dataplane rate estimator panicked");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Protocol;
    use std::net::Ipv6Addr;

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
    const RS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);

    fn spec(port: u16, forwarding: Forwarding, local_addrs: Vec<IpAddr>) -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                addr: VIP.into(),
                port,
                protocol: Protocol::Tcp,
            },
            scheduler: Scheduler::Rr,
            persistence: None,
            forwarding,
            local_addrs,
            protection: Default::default(),
            quic: Default::default(),
            proxy_protocol: None,
            establish_timeout_s: None,
            expire_quiescent: false,
            snat: None,
        }
    }

    fn add_rs(dp: &mut Dataplane, s: &ServiceSpec) {
        add_server(dp, s.key, SocketAddr::new(RS.into(), s.key.port));
    }

    /// Real server `addr` (weight 1) of `service`.
    fn add_server(dp: &mut Dataplane, service: ServiceKey, addr: SocketAddr) {
        let server = RealServerSpec { addr, weight: 1 };
        dp.apply(Command::AddRealServer { service, server })
            .expect("add rs");
    }

    #[test]
    fn workers_are_pinned_to_their_cores_and_a_refused_core_is_an_error() {
        let last = crate::io::affinity::online_cpus() - 1;
        let mut dp = Dataplane::new(DataplaneConfig {
            workers: 2,
            cores: vec![last, libc::CPU_SETSIZE as usize],
            ..DataplaneConfig::default()
        });
        let mac = crate::wire::MacAddr([2, 0, 0, 0, 0, 1]);
        let (port, _wire) = crate::io::mem::MemPort::pair(mac);
        dp.spawn_worker(port).expect("worker 0 on the last CPU");
        let (port, _wire2) = crate::io::mem::MemPort::pair(mac);
        let err = dp.spawn_worker(port).expect_err("no such CPU");
        assert!(
            err.to_string().contains("cannot pin worker 1 to CPU"),
            "{err}"
        );
        dp.shutdown();
    }

    #[test]
    fn ipv6_services_go_to_the_ipv6_snapshot_and_families_do_not_mix() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let mut s = spec(80, Forwarding::Fnat, vec![ip("fd00::200")]);
        s.key.addr = ip("fd00::100");
        let mut mixed = s.clone();
        mixed.key.port = 81;
        mixed.local_addrs = vec![ip("fd00::201"), ip("10.0.0.200")];
        assert!(dp.apply(Command::AddService(mixed)).is_err());
        dp.apply(Command::AddService(s.clone()))
            .expect("IPv6 service");
        let v4_rs = RealServerSpec {
            addr: SocketAddr::new(RS.into(), 8080),
            weight: 1,
        };
        assert!(dp
            .apply(Command::AddRealServer {
                service: s.key,
                server: v4_rs,
            })
            .is_err());
        let rs = RealServerSpec {
            addr: "[fd00::3]:8080".parse().expect("sa"),
            weight: 1,
        };
        dp.apply(Command::AddRealServer {
            service: s.key,
            server: rs,
        })
        .expect("IPv6 real server");
        let snap = dp.build_snapshot();
        assert!(snap.v4.services.is_empty());
        let v6 = &snap.v6;
        let (vip, lip, rs6) = ("fd00::100", "fd00::200", "fd00::3");
        let v6ip = |s: &str| s.parse::<Ipv6Addr>().expect("ip");
        assert_eq!(v6.owned_vips, [v6ip(vip)]);
        assert_eq!(v6.local_addrs, [v6ip(lip)]);
        assert_eq!(v6.neighbours, [(v6ip(rs6), v6ip(lip))]);
        assert_eq!(v6.lookup.get(&(v6ip(vip), 80, 6)), Some(&0));
        assert_eq!(v6.services[0].servers[0].addr, v6ip(rs6));
    }

    #[test]
    fn nat64_services_map_ipv4_servers_and_local_addresses() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let lip = Ipv4Addr::new(10, 0, 0, 200);
        let mut s = spec(80, Forwarding::Fnat, vec![lip.into()]);
        s.key.addr = ip("fd00::100");
        let mut dr = s.clone();
        dr.key.port = 81;
        dr.forwarding = Forwarding::Dr;
        dr.local_addrs.clear();
        dp.apply(Command::AddService(s.clone()))
            .expect("NAT64 service");
        dp.apply(Command::AddService(dr.clone()))
            .expect("IPv6 DR service");
        let rs4 = RealServerSpec {
            addr: SocketAddr::new(RS.into(), 8080),
            weight: 1,
        };
        dp.apply(Command::AddRealServer {
            service: s.key,
            server: rs4,
        })
        .expect("IPv4 server of a NAT64 service");
        assert!(
            dp.apply(Command::AddRealServer {
                service: dr.key,
                server: rs4,
            })
            .is_err(),
            "NAT64 is FNAT only"
        );
        let snap = dp.build_snapshot();
        assert_eq!(
            snap.v4.local_addrs,
            [lip],
            "ARP is answered for the NAT64 LIP"
        );
        assert_eq!(snap.nat64_lips, [lip]);
        assert!(
            snap.v6.local_addrs.is_empty(),
            "no NS answers for mapped addresses"
        );
        let svc = &snap.v6.services[0];
        assert_eq!(svc.servers[0].addr, RS.to_ipv6_mapped());
        assert_eq!(svc.local_addrs, [lip.to_ipv6_mapped()]);
        assert_eq!(
            snap.v6.neighbours,
            [(RS.to_ipv6_mapped(), lip.to_ipv6_mapped())]
        );
    }

    #[test]
    fn connection_options_and_quiescent_servers_reach_the_snapshot() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let lip: IpAddr = Ipv4Addr::new(10, 99, 0, 200).into();
        let mut s = spec(80, Forwarding::Fnat, vec![lip]);
        s.establish_timeout_s = Some(0);
        assert!(matches!(
            dp.apply(Command::AddService(s.clone())),
            Err(CommandError::Invalid { .. })
        ));
        s.establish_timeout_s = Some(3601);
        assert!(dp.apply(Command::AddService(s.clone())).is_err());
        s.establish_timeout_s = Some(20);
        s.expire_quiescent = true;
        dp.apply(Command::AddService(s.clone())).expect("add");
        add_rs(&mut dp, &s);
        let rs2 = SocketAddr::new(Ipv4Addr::new(10, 99, 0, 4).into(), 80);
        let server = RealServerSpec {
            addr: rs2,
            weight: 3,
        };
        dp.apply(Command::AddRealServer {
            service: s.key,
            server,
        })
        .expect("rs2");
        let policy = |dp: &Dataplane| dp.build_snapshot().v4.conn_policy;
        let want = |quiescent: [bool; 2]| ConnPolicy {
            establish_timeout_s: Some(20),
            expire_quiescent: true,
            quiescent: quiescent.into(),
        };
        assert_eq!(policy(&dp), [want([false, false])]);
        dp.apply(Command::SetWeight {
            service: s.key,
            server: rs2,
            weight: 0,
        })
        .expect("weight");
        assert_eq!(policy(&dp), [want([false, true])]);
    }

    #[test]
    fn protections_reach_the_snapshot_aligned_with_servers() {
        use crate::command::{AddrRange, Protection, Thresholds};
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let lip: IpAddr = Ipv4Addr::new(10, 99, 0, 200).into();
        let mut s = spec(80, Forwarding::Fnat, vec![lip]);
        let rs2 = SocketAddr::new(Ipv4Addr::new(10, 99, 0, 4).into(), 80);
        s.protection = Protection {
            deny: vec![AddrRange::one(Ipv4Addr::new(10, 1, 1, 1).into())],
            thresholds: vec![(rs2, Thresholds { upper: 5, lower: 2 })],
            syn_proxy: true,
            ..Protection::default()
        };
        dp.apply(Command::AddService(s.clone())).expect("add");
        add_rs(&mut dp, &s);
        dp.apply(Command::AddRealServer {
            service: s.key,
            server: RealServerSpec {
                addr: rs2,
                weight: 1,
            },
        })
        .expect("rs2");
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.synproxy, [true]);
        assert_eq!(snap.syn_cookie_key, dp.cookie_key);
        let acl = snap.acl_of(0).expect("acl");
        assert!(acl.admit_v4(Ipv4Addr::new(10, 1, 1, 1)).is_err());
        let limits = snap.limits_of(0).expect("limits");
        assert!(limits[0].is_none(), "10.99.0.3 has no threshold");
        let t = limits[1].as_ref().expect("10.99.0.4's threshold");
        assert_eq!(t.limits(), Thresholds { upper: 5, lower: 2 });
        // The overload flag outlives snapshots.
        assert!(!t.admits(5));
        let again = dp.build_snapshot();
        let t2 = again
            .limits_of(0)
            .and_then(|l| l[1].as_ref())
            .expect("kept");
        assert!(t2.is_overloaded());
    }

    #[test]
    fn ipv6_protections_reach_the_ipv6_snapshot_and_syn_proxy_is_refused_for_nat64() {
        use crate::command::{AddrRange, Protection, Thresholds};
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let mut s = spec(80, Forwarding::Fnat, vec![ip("fd00::200")]);
        s.key.addr = ip("fd00::100");
        let rs: SocketAddr = "[fd00::3]:8080".parse().expect("sa");
        s.protection = Protection {
            deny: vec![AddrRange::one(ip("2001:db8::66"))],
            thresholds: vec![(rs, Thresholds { upper: 5, lower: 2 })],
            syn_proxy: true,
            ..Protection::default()
        };
        let mut nat64 = spec(81, Forwarding::Fnat, vec![ip("10.0.0.200")]);
        nat64.key.addr = s.key.addr;
        nat64.protection.syn_proxy = true;
        let err = dp.apply(Command::AddService(nat64));
        assert!(
            matches!(&err, Err(CommandError::Unsupported { what }) if what.contains("syn_proxy")),
            "{err:?}"
        );
        dp.apply(Command::AddService(s.clone())).expect("add");
        dp.apply(Command::AddRealServer {
            service: s.key,
            server: RealServerSpec {
                addr: rs,
                weight: 1,
            },
        })
        .expect("rs");
        let snap = dp.build_snapshot();
        assert!(snap.v4.acl.is_empty() && snap.v4.limits.is_empty());
        assert_eq!(snap.v6.synproxy, [true]);
        let acl = Ipv6Addr::acl_of(&snap, 0).expect("acl");
        assert!(acl.admit_v6("2001:db8::66".parse().expect("v6")).is_err());
        let limits = Ipv6Addr::limits_of(&snap, 0).expect("limits");
        let t = limits[0].as_ref().expect("threshold");
        assert_eq!(t.limits(), Thresholds { upper: 5, lower: 2 });
    }

    #[test]
    fn syn_proxy_needs_tcp_with_a_reply_path() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let mut s = spec(80, Forwarding::Dr, vec![]);
        s.protection.syn_proxy = true;
        let err = dp.apply(Command::AddService(s));
        assert!(matches!(err, Err(CommandError::Invalid { .. })), "{err:?}");
    }

    #[test]
    fn only_fnat_needs_local_addresses() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let err = dp.apply(Command::AddService(spec(80, Forwarding::Fnat, vec![])));
        assert!(matches!(err, Err(CommandError::Invalid { .. })));
        for (port, mode) in [
            (81, Forwarding::Nat),
            (82, Forwarding::Dr),
            (83, Forwarding::Tun),
        ] {
            dp.apply(Command::AddService(spec(port, mode, vec![])))
                .expect("no LIPs needed");
        }
        let modes: Vec<Forwarding> = dp.status().services.iter().map(|s| s.forwarding).collect();
        assert_eq!(modes, [Forwarding::Nat, Forwarding::Dr, Forwarding::Tun]);
    }

    #[test]
    fn snapshot_carries_modes_nat_servers_and_arp_sources() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let dr = spec(80, Forwarding::Dr, vec![]);
        dp.apply(Command::AddService(dr.clone())).expect("dr");
        add_rs(&mut dp, &dr);
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.forwarding, [Forwarding::Dr]);
        assert!(snap.v4.nat_servers.is_empty());
        // No LIP, no interface address: an ARP probe.
        assert_eq!(snap.v4.neighbours, [(RS, Ipv4Addr::UNSPECIFIED)]);

        let iface = Ipv4Addr::new(10, 99, 0, 1);
        dp.apply(Command::SetInterfaceAddr {
            device: Device::default(),
            v4: Some((iface, 24)),
            v6: None,
        })
        .expect("iface");
        let nat = spec(81, Forwarding::Nat, vec![]);
        dp.apply(Command::AddService(nat.clone())).expect("nat");
        add_rs(&mut dp, &nat);
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.forwarding, [Forwarding::Dr, Forwarding::Nat]);
        assert_eq!(snap.forwarding_of(1), Forwarding::Nat);
        assert_eq!(snap.v4.nat_servers, [RS]);
        assert_eq!(snap.v4.neighbours, [(RS, iface)]);
        assert_eq!(snap.v4.interface, Some(iface));

        // A LIP of any service is preferred over a probe or the interface.
        let lip = Ipv4Addr::new(10, 99, 0, 200);
        let fnat = spec(82, Forwarding::Fnat, vec![lip.into()]);
        dp.apply(Command::AddService(fnat.clone())).expect("fnat");
        add_rs(&mut dp, &fnat);
        dp.apply(Command::SetInterfaceAddr {
            device: Device::default(),
            v4: None,
            v6: None,
        })
        .expect("clear");
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.neighbours, [(RS, lip)]);
        assert_eq!(snap.v4.interface, None);
    }

    /// Two-arm without local addresses: each real server is asked from the
    /// interface address of the port whose network holds it, on that port;
    /// one on no port's network from port 0's. IPv6 alike.
    #[test]
    fn servers_are_asked_from_the_port_whose_network_holds_them() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let iface = |port, v4: Option<(Ipv4Addr, u8)>, v6: Option<(Ipv6Addr, u8)>| {
            let device = Device { port, vlan: 0 };
            Command::SetInterfaceAddr { device, v4, v6 }
        };
        let (a0, a1) = (Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 1, 1));
        let b1: Ipv6Addr = "fd99:1::1".parse().expect("v6");
        dp.apply(iface(0, Some((a0, 24)), None)).expect("port 0");
        dp.apply(iface(1, Some((a1, 24)), Some((b1, 64))))
            .expect("port 1");
        let nat = spec(80, Forwarding::Nat, vec![]);
        dp.apply(Command::AddService(nat.clone())).expect("nat");
        let far = Ipv4Addr::new(10, 99, 1, 3);
        for addr in [RS, far] {
            let server = RealServerSpec {
                addr: SocketAddr::new(addr.into(), 80),
                weight: 1,
            };
            dp.apply(Command::AddRealServer {
                service: nat.key,
                server,
            })
            .expect("rs");
        }
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.neighbours, [(RS, a0), (far, a1)]);
        // Port 1's addresses are sent from there; port 0's need no entry.
        assert_eq!(snap.addr_ports, [(a1.into(), 1), (b1.into(), 1)]);
        assert_eq!((snap.port_of(a1), snap.port_of(a0)), (1, 0));
        // Port 1's networks: packets to other hosts on them leave there.
        let port1 = Device { port: 1, vlan: 0 };
        assert_eq!(
            snap.port_nets,
            [(a1.into(), 24, port1), (b1.into(), 64, port1)]
        );
        assert_eq!(snap.port_net_of(far.into()), Some(port1));
        assert_eq!(snap.port_net_of(RS.into()), None);
        assert_eq!(snap.v4.interface, Some(a0));

        // The longest prefix wins, whatever the port.
        dp.apply(iface(0, Some((a0, 16)), None)).expect("wider");
        assert_eq!(dp.build_snapshot().v4.neighbours, [(RS, a0), (far, a1)]);
        dp.apply(iface(1, Some((a1, 8)), None)).expect("widest");
        assert_eq!(dp.build_snapshot().v4.neighbours, [(RS, a0), (far, a0)]);

        // IPv6: on port 1's network from its address; elsewhere (no IPv6
        // address on port 0) from our link-local address.
        dp.apply(iface(1, None, Some((b1, 64)))).expect("v6 only");
        let vip6: IpAddr = "fd99::100".parse().expect("vip6");
        let key = ServiceKey {
            addr: vip6,
            ..nat.key
        };
        dp.apply(Command::AddService(ServiceSpec { key, ..nat.clone() }))
            .expect("nat6");
        let (near6, far6): (Ipv6Addr, Ipv6Addr) = (
            "fd99:1::3".parse().expect("v6"),
            "fd99:2::3".parse().expect("v6"),
        );
        for addr in [near6, far6] {
            let server = RealServerSpec {
                addr: SocketAddr::new(addr.into(), 80),
                weight: 1,
            };
            dp.apply(Command::AddRealServer {
                service: key,
                server,
            })
            .expect("rs6");
        }
        let snap = dp.build_snapshot();
        assert_eq!(
            snap.v6.neighbours,
            [(near6, b1), (far6, Ipv6Addr::UNSPECIFIED)]
        );
        assert_eq!(snap.v4.neighbours, [(RS, a0), (far, a0)]);
        assert_eq!(snap.v6.interface, None);

        // A prefix longer than the family's is refused.
        assert!(dp.apply(iface(2, Some((a1, 33)), None)).is_err());
    }

    /// The kernel's addresses on VLAN devices (`dpdk1.100`): servers on
    /// their networks are asked from them, on their port and VLAN; hosts on
    /// their networks are reached there; their VLANs are accepted.
    #[test]
    fn interface_addresses_on_vlan_devices() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let (a0, a100) = (Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 100, 1));
        let (dpdk0, dpdk1_100) = (Device::default(), Device { port: 1, vlan: 100 });
        let set = |device, v4| Command::SetInterfaceAddr {
            device,
            v4,
            v6: None,
        };
        dp.apply(set(dpdk0, Some((a0, 24)))).expect("dpdk0");
        dp.apply(set(dpdk1_100, Some((a100, 24))))
            .expect("dpdk1.100");
        let nat = spec(80, Forwarding::Nat, vec![]);
        dp.apply(Command::AddService(nat.clone())).expect("nat");
        let behind = Ipv4Addr::new(10, 99, 100, 3);
        add_server(&mut dp, nat.key, SocketAddr::new(behind.into(), 80));
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.neighbours, [(behind, a100)]);
        assert_eq!((snap.port_of(a100), snap.vlan_of(a100)), (1, 100));
        assert_eq!((snap.port_of(a0), snap.vlan_of(a0)), (0, 0));
        assert_eq!(snap.vlan_ids, [100]);
        assert_eq!(snap.port_nets, [(a100.into(), 24, dpdk1_100)]);
        assert_eq!(snap.port_net_of(behind.into()), Some(dpdk1_100));
        // The untagged port 0's address stays the fallback source.
        assert_eq!(snap.v4.interface, Some(a0));

        // A VLAN device nothing is forwarded through (management) is left
        // to the kernel: its VLAN is not the engine's.
        let mgmt = Device { port: 0, vlan: 200 };
        let a200 = Ipv4Addr::new(10, 99, 200, 1);
        dp.apply(set(mgmt, Some((a200, 24)))).expect("dpdk0.200");
        assert_eq!(dp.build_snapshot().vlan_ids, [100]);
        // With SNAT services, inside hosts may be on any of them.
        let m = SnatMatch {
            src: crate::MatchRange::default(),
            dst: crate::MatchRange::default(),
            iif: None,
            oif: None,
            gateway: Some(a0.into()),
        };
        let snat = snat_spec(1, Protocol::Tcp, m);
        dp.apply(Command::AddService(snat.clone())).expect("snat");
        let wan = SocketAddr::new(Ipv4Addr::new(10, 99, 0, 50).into(), 0);
        add_server(&mut dp, snat.key, wan);
        assert_eq!(dp.build_snapshot().vlan_ids, [100, 200]);
        dp.apply(Command::DelService(snat.key)).expect("del snat");
        dp.apply(set(mgmt, None)).expect("clear dpdk0.200");

        // Clearing the VLAN device's address forgets its network and VLAN.
        dp.apply(set(dpdk1_100, None)).expect("clear");
        let snap = dp.build_snapshot();
        assert_eq!(snap.v4.neighbours, [(behind, a0)]);
        assert!(snap.vlan_ids.is_empty() && snap.port_nets.is_empty());
        assert!(snap.addr_vlans.is_empty() && snap.addr_ports.is_empty());
        // VLAN ids are 1..=4094.
        let bad = Device {
            port: 1,
            vlan: 4095,
        };
        assert!(dp.apply(set(bad, Some((a100, 24)))).is_err());
    }

    /// A match service keyed `0.0.0.0:ordinal` with SNAT address `wan`.
    fn snat_spec(port: u16, protocol: Protocol, m: SnatMatch) -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                addr: Ipv4Addr::UNSPECIFIED.into(),
                port,
                protocol,
            },
            forwarding: Forwarding::Snat,
            snat: Some(Box::new(m)),
            ..spec(0, Forwarding::Snat, vec![])
        }
    }

    #[test]
    fn snat_services_own_their_addresses_resolve_the_gateway_and_match_in_order() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let (wan, gw) = (Ipv4Addr::new(123, 1, 2, 3), Ipv4Addr::new(123, 1, 2, 1));
        let inside = AddrRange {
            first: Ipv4Addr::new(192, 168, 100, 0).into(),
            last: Ipv4Addr::new(192, 168, 100, 254).into(),
        };
        let m = SnatMatch {
            src: crate::MatchRange {
                addrs: Some(inside),
                ports: (0, u16::MAX),
            },
            dst: crate::MatchRange {
                addrs: None,
                ports: (53, 53),
            },
            iif: None,
            oif: Some("eth0".into()),
            gateway: Some(gw.into()),
        };
        let udp = snat_spec(1, Protocol::Udp, m.clone());
        dp.apply(Command::AddService(udp.clone())).expect("snat");
        dp.apply(Command::AddRealServer {
            service: udp.key,
            server: RealServerSpec {
                addr: SocketAddr::new(wan.into(), 0),
                weight: 4,
            },
        })
        .expect("wan");
        let snap = dp.build_snapshot();
        // Not a VIP, not looked up by address; the SNAT address is ours.
        assert!(snap.v4.owned_vips.is_empty());
        assert!(snap.v4.lookup.is_empty());
        assert_eq!(snap.v4.local_addrs, [wan]);
        assert_eq!(snap.v4.neighbours, [(gw, wan)]);
        assert_eq!(snap.v4.next_hop, [Some(gw)]);
        assert_eq!(
            snap.v4.snat,
            [SnatRule {
                svc: 0,
                proto: 17,
                src: (
                    Ipv4Addr::new(192, 168, 100, 0),
                    Ipv4Addr::new(192, 168, 100, 254)
                ),
                sports: (0, u16::MAX),
                dst: (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST),
                dports: (53, 53),
            }]
        );
        assert_eq!(dp.status().services[0].snat, Some(m.clone()));
        // Inconsistent specs are refused.
        let mut bad = snat_spec(2, Protocol::Udp, m.clone());
        bad.snat = None;
        assert!(dp.apply(Command::AddService(bad)).is_err());
        let mut v6 = m.clone();
        v6.src.addrs = Some(AddrRange::one("fd00::1".parse().expect("v6")));
        assert!(dp
            .apply(Command::AddService(snat_spec(3, Protocol::Udp, v6)))
            .is_err());
        let icmp_vip = ServiceSpec {
            key: ServiceKey {
                protocol: Protocol::Icmp,
                ..spec(80, Forwarding::Fnat, vec![]).key
            },
            ..spec(80, Forwarding::Dr, vec![])
        };
        assert!(dp.apply(Command::AddService(icmp_vip)).is_err());
        let mut proxied = snat_spec(4, Protocol::Tcp, m);
        proxied.protection.syn_proxy = true;
        assert!(dp.apply(Command::AddService(proxied)).is_err());
    }

    #[test]
    fn ipv6_snat_services_build_the_ipv6_half_and_icmp_matches_its_family() {
        let mut dp = Dataplane::new(DataplaneConfig::default());
        let ip = |s: &str| s.parse::<Ipv6Addr>().expect("ip");
        let (wan, gw) = (ip("2001:db8:1::3"), ip("2001:db8:1::1"));
        let m = SnatMatch {
            src: crate::MatchRange {
                addrs: Some(AddrRange {
                    first: ip("fd00:100::").into(),
                    last: ip("fd00:100::ffff").into(),
                }),
                ports: (0, u16::MAX),
            },
            dst: crate::MatchRange::default(),
            iif: None,
            oif: None,
            gateway: Some(gw.into()),
        };
        let v6_spec = |port, protocol| ServiceSpec {
            key: ServiceKey {
                addr: Ipv6Addr::UNSPECIFIED.into(),
                port,
                protocol,
            },
            ..snat_spec(port, protocol, m.clone())
        };
        let ping = v6_spec(1, Protocol::Icmpv6);
        dp.apply(Command::AddService(ping.clone())).expect("icmpv6");
        dp.apply(Command::AddRealServer {
            service: ping.key,
            server: RealServerSpec {
                addr: SocketAddr::new(wan.into(), 0),
                weight: 1,
            },
        })
        .expect("wan");
        let snap = dp.build_snapshot();
        assert!(snap.v4.snat.is_empty() && snap.v4.local_addrs.is_empty());
        assert_eq!(snap.v6.local_addrs, [wan]);
        assert_eq!(snap.v6.neighbours, [(gw, wan)]);
        assert_eq!(snap.v6.next_hop, [Some(gw)]);
        assert_eq!(snap.v6.snat.len(), 1);
        assert_eq!(snap.v6.snat[0].proto, 58);
        assert_eq!(
            snap.v6.snat[0].src,
            (ip("fd00:100::"), ip("fd00:100::ffff"))
        );
        assert_eq!(
            snap.v6.snat[0].dst,
            (Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX))
        );
        // ICMP is IPv4's, ICMPv6 IPv6's.
        assert!(dp
            .apply(Command::AddService(v6_spec(2, Protocol::Icmp)))
            .is_err());
        let mut m4 = m.clone();
        m4.src.addrs = None;
        m4.gateway = None;
        let icmpv6_on_v4 = snat_spec(2, Protocol::Icmpv6, m4);
        assert!(dp.apply(Command::AddService(icmpv6_on_v4)).is_err());
    }
}
