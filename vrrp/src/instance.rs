//! One virtual router: the sans-IO state machine of RFC 3768 / RFC 5798 with
//! keepalived 2.2.7's extensions and receive checks.
//!
//! Time is passed in. The driver calls [`Instance::handle`] with an
//! [`Event`] and performs the returned [`Action`]s, and calls it again with
//! [`Event::Timer`] at [`Instance::poll_at`]. A new instance is in
//! [`State::Init`] and starts at its first timer.
//!
//! Timers follow the RFCs exactly (the effective priority is the one used):
//! - VRRPv2: `Skew_Time = (256 - Priority) / 256` s, not scaled by the interval;
//!   `Master_Down_Interval = down_timer_adverts × Advertisement_Interval + Skew_Time`.
//! - VRRPv3: `Skew_Time = ((256 - Priority) × Master_Adver_Interval) / 256`;
//!   `Master_Down_Interval = down_timer_adverts × Master_Adver_Interval + Skew_Time`,
//!   where a backup adopts the master's advertised interval.

use crate::track::{Effect, TrackKind, TrackSpec, TrackStatus};
use crate::wire::{
    AuthType, Family, MessageType, Version, VrrpPacket, VrrpRepr, WireError, AUTH_DATA_LEN,
    MCAST_V4, MCAST_V6, VRRP_TTL,
};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Priority of the address owner.
pub const PRIO_OWNER: u8 = 255;
/// Priority a master advertises when it stops.
pub const PRIO_STOP: u8 = 0;

/// VRRPv2 authentication as keepalived configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No authentication (the default, and always for v3).
    None,
    /// `auth_type PASS`: the first 8 bytes of `auth_pass`, zero padded.
    Pass([u8; AUTH_DATA_LEN]),
}

impl Auth {
    /// PASS auth from a password (only the first 8 bytes count).
    pub fn pass(password: &str) -> Auth {
        let mut data = [0u8; AUTH_DATA_LEN];
        for (d, s) in data.iter_mut().zip(password.bytes()) {
            *d = s;
        }
        Auth::Pass(data)
    }
}

/// A `virtual_ipaddress` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSpec {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (default /32 or /128).
    pub prefix_len: u8,
    /// `dev` (default: the instance's interface).
    pub dev: Option<String>,
    /// `label`.
    pub label: Option<String>,
    /// `scope` as a number (`global` 0, `site` 200, `link` 253, `host` 254).
    pub scope: Option<u8>,
    /// `brd` (IPv4).
    pub broadcast: Option<IpAddr>,
}

impl VipSpec {
    /// A host VIP with every option at its default.
    pub fn new(addr: IpAddr) -> VipSpec {
        let prefix_len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        VipSpec {
            addr,
            prefix_len,
            dev: None,
            label: None,
            scope: None,
            broadcast: None,
        }
    }
}

/// The type of a `virtual_routes` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A normal route (via a gateway and/or out of a device).
    Unicast,
    /// `blackhole`.
    Blackhole,
    /// `unreachable`.
    Unreachable,
    /// `prohibit`.
    Prohibit,
}

/// A `virtual_routes` line: installed while master, removed otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Route type.
    pub kind: RouteKind,
    /// Destination.
    pub dest: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// `via` / `gw`.
    pub via: Option<IpAddr>,
    /// `dev` (default: none; with neither `dev` nor `via` the instance's interface).
    pub dev: Option<String>,
    /// `src` (preferred source, often a VIP).
    pub src: Option<IpAddr>,
    /// `table` (default main).
    pub table: Option<u32>,
    /// `metric` / `priority`.
    pub metric: Option<u32>,
    /// `scope` as a number.
    pub scope: Option<u8>,
}

/// A `virtual_rules` line (`ip rule`): installed while master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// `from` prefix.
    pub from: Option<(IpAddr, u8)>,
    /// `to` prefix.
    pub to: Option<(IpAddr, u8)>,
    /// `table`.
    pub table: u32,
    /// `preference` (keepalived assigns one when missing).
    pub preference: u32,
    /// IPv6 rule (else IPv4).
    pub v6: bool,
}

/// Gratuitous ARP / NA timing (`garp_master_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpSpec {
    /// `garp_master_delay` (5 s): a second burst this long after becoming master (0: none).
    pub master_delay: Duration,
    /// `garp_master_repeat` (5): frames per burst.
    pub master_repeat: u32,
    /// `garp_master_refresh` (0: off): period of refresh bursts while master.
    pub master_refresh: Duration,
    /// `garp_master_refresh_repeat` (1): frames per refresh burst.
    pub master_refresh_repeat: u32,
}

impl Default for GarpSpec {
    fn default() -> Self {
        GarpSpec {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
        }
    }
}

/// Notify scripts (`notify_master`, … and the generic `notify`), each a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifySpec {
    /// `notify_master`.
    pub master: Option<Vec<String>>,
    /// `notify_backup`.
    pub backup: Option<Vec<String>>,
    /// `notify_fault`.
    pub fault: Option<Vec<String>>,
    /// `notify_stop`.
    pub stop: Option<Vec<String>>,
    /// `notify`: gets `INSTANCE|GROUP name STATE priority` appended.
    pub generic: Option<Vec<String>>,
}

impl NotifySpec {
    /// The command lines to run for `state`, with keepalived's arguments:
    /// the specific script as configured, then the generic one with
    /// `kind name STATE priority` (`kind` is `INSTANCE` or `GROUP`).
    pub fn commands(&self, kind: &str, name: &str, state: State, priority: u8) -> Vec<Vec<String>> {
        let specific = match state {
            State::Master => &self.master,
            State::Backup => &self.backup,
            State::Fault => &self.fault,
            State::Stop => &self.stop,
            State::Init => &None,
        };
        let mut out: Vec<Vec<String>> = specific.iter().cloned().collect();
        if let (Some(g), Some(word)) = (&self.generic, state.keyword()) {
            let mut cmd = g.clone();
            cmd.extend([
                kind.to_owned(),
                name.to_owned(),
                word.to_owned(),
                priority.to_string(),
            ]);
            out.push(cmd);
        }
        out
    }
}

/// A `vrrp_instance`, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Instance name.
    pub name: String,
    /// `interface`.
    pub interface: String,
    /// `virtual_router_id` (1..255).
    pub vrid: u8,
    /// `version` (2 by default).
    pub version: Version,
    /// `priority` (1..255; 255 is the address owner).
    pub priority: u8,
    /// `advert_int`: whole seconds for v2, 10 ms steps for v3.
    pub advert_int: Duration,
    /// `state MASTER` (start as master without waiting).
    pub start_master: bool,
    /// `preempt` (default) / `nopreempt`.
    pub preempt: bool,
    /// `preempt_delay`.
    pub preempt_delay: Duration,
    /// `accept` mode (informational: the VIP owner decides what to accept).
    pub accept: bool,
    /// `authentication` (v2 only).
    pub auth: Auth,
    /// `virtual_ipaddress`: advertised and owned.
    pub vips: Vec<VipSpec>,
    /// `virtual_ipaddress_excluded`: owned, not advertised.
    pub excluded_vips: Vec<VipSpec>,
    /// `virtual_routes`: installed in the kernel while master.
    pub routes: Vec<RouteSpec>,
    /// `virtual_rules`: installed in the kernel while master.
    pub rules: Vec<RuleSpec>,
    /// `unicast_src_ip` / `mcast_src_ip`, else the interface's address
    /// (the driver fills it in); it breaks priority ties.
    pub src_addr: Option<IpAddr>,
    /// `unicast_peer`: non-empty means unicast mode (no TTL check).
    pub unicast_peers: Vec<IpAddr>,
    /// `higher_prio_send_advert`.
    pub higher_prio_send_advert: bool,
    /// `lower_prio_no_advert`.
    pub lower_prio_no_advert: bool,
    /// `down_timer_adverts` (3).
    pub down_timer_adverts: u32,
    /// GARP / NA timing.
    pub garp: GarpSpec,
    /// `track_interface`, `track_script`, `track_file`.
    pub tracks: Vec<TrackSpec>,
    /// Notify scripts.
    pub notify: NotifySpec,
}

impl InstanceSpec {
    /// An instance with keepalived's defaults: v2, priority 100, 1 s, preempt,
    /// accept, no auth, multicast.
    pub fn new(name: impl Into<String>, interface: impl Into<String>, vrid: u8) -> InstanceSpec {
        InstanceSpec {
            name: name.into(),
            interface: interface.into(),
            vrid,
            version: Version::V2,
            priority: 100,
            advert_int: Duration::from_secs(1),
            start_master: false,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept: true,
            auth: Auth::None,
            vips: Vec::new(),
            excluded_vips: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            src_addr: None,
            unicast_peers: Vec::new(),
            higher_prio_send_advert: false,
            lower_prio_no_advert: false,
            down_timer_adverts: 3,
            garp: GarpSpec::default(),
            tracks: Vec::new(),
            notify: NotifySpec::default(),
        }
    }

    /// The interval field: seconds (1..255) for v2, centiseconds (1..4095) for v3.
    pub fn adver_int_field(&self) -> u16 {
        match self.version {
            Version::V2 => ((self.advert_int.as_millis() + 500) / 1000).clamp(1, 255) as u16,
            Version::V3 => ((self.advert_int.as_millis() + 5) / 10).clamp(1, 4095) as u16,
        }
    }

    /// The advertisement interval as sent.
    pub fn advert_interval(&self) -> Duration {
        match self.version {
            Version::V2 => Duration::from_secs(u64::from(self.adver_int_field())),
            Version::V3 => Duration::from_millis(u64::from(self.adver_int_field()) * 10),
        }
    }

    /// Applies keepalived 2.2.7's preemption rules (`vrrp_complete_instance`)
    /// and says which settings it cleared: `nopreempt` is ignored for the
    /// address owner (priority 255) and with `state MASTER`; `preempt_delay`
    /// is ignored with `state MASTER` and with `nopreempt`. So `nopreempt`
    /// needs `state BACKUP`, as keepalived documents.
    pub fn normalize_preempt(&mut self) -> Vec<&'static str> {
        let mut cleared = Vec::new();
        if !self.preempt && (self.priority == PRIO_OWNER || self.start_master) {
            self.preempt = true;
            cleared.push(if self.priority == PRIO_OWNER {
                "nopreempt is incompatible with priority 255"
            } else {
                "nopreempt will not work with initial state MASTER"
            });
        }
        if !self.preempt_delay.is_zero() && (self.start_master || !self.preempt) {
            self.preempt_delay = Duration::ZERO;
            cleared.push(if self.start_master {
                "preempt_delay will not work with initial state MASTER"
            } else {
                "preempt_delay is incompatible with nopreempt"
            });
        }
        cleared
    }

    /// The address family, from the first VIP (IPv4 without VIPs).
    pub fn family(&self) -> Family {
        self.vips
            .first()
            .map_or(Family::V4, |v| Family::of(&v.addr))
    }
}

/// The state of an instance (keepalived's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started yet.
    Init,
    /// Listening for the master.
    Backup,
    /// Owning the VIPs and advertising.
    Master,
    /// A tracker or the link says this router must not serve.
    Fault,
    /// Shut down.
    Stop,
}

impl State {
    /// The word keepalived passes to `notify` scripts (none for INIT).
    pub fn keyword(self) -> Option<&'static str> {
        match self {
            State::Init => None,
            State::Backup => Some("BACKUP"),
            State::Master => Some("MASTER"),
            State::Fault => Some("FAULT"),
            State::Stop => Some("STOP"),
        }
    }
}

macro_rules! drop_causes {
    ($($variant:ident => $name:literal, $desc:literal;)+) => {
        /// Why a received advert was dropped; also the index of its counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropCause { $(#[doc = $desc] $variant,)+ }

        impl DropCause {
            /// Every cause, in counter order.
            pub const ALL: &'static [DropCause] = &[$(DropCause::$variant,)+];
            /// Short name for logs and metrics.
            pub const fn name(self) -> &'static str {
                match self { $(DropCause::$variant => $name,)+ }
            }
            /// One-line description.
            pub const fn description(self) -> &'static str {
                match self { $(DropCause::$variant => $desc,)+ }
            }
        }
    };
}

drop_causes! {
    Truncated => "truncated", "shorter than its header and addresses";
    BadDestination => "bad_destination", "not sent to the group (multicast mode) or to unicast_src_ip (unicast mode)";
    BadTtl => "bad_ttl", "TTL / hop limit is not 255";
    BadVersion => "bad_version", "version is not the instance's";
    BadType => "bad_type", "not an advertisement";
    OtherVrid => "other_vrid", "for another virtual router id";
    BadChecksum => "bad_checksum", "checksum does not verify";
    AuthType => "auth_type", "authentication type differs from ours";
    AuthFailure => "auth_failure", "password does not match";
    IntervalMismatch => "interval_mismatch", "VRRPv2 advert interval differs from ours";
    ZeroInterval => "zero_interval", "advert interval is zero";
    AddrFamily => "addr_family", "IP family differs from the instance's";
    AddrMismatch => "addr_mismatch", "address list differs from our virtual_ipaddress";
    NotRunning => "not_running", "received while in INIT, FAULT or STOP";
}

impl From<WireError> for DropCause {
    fn from(e: WireError) -> DropCause {
        match e {
            WireError::Truncated | WireError::Unsupported => DropCause::Truncated,
            WireError::BadVersion => DropCause::BadVersion,
            WireError::BadChecksum => DropCause::BadChecksum,
        }
    }
}

/// Counters of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Adverts sent (priority 0 included).
    pub adverts_sent: u64,
    /// Valid adverts received.
    pub adverts_received: u64,
    /// Priority-0 adverts sent.
    pub prio0_sent: u64,
    /// Valid priority-0 adverts received.
    pub prio0_received: u64,
    /// Transitions to MASTER.
    pub became_master: u64,
    /// Transitions out of MASTER.
    pub released_master: u64,
    /// Drops, indexed by [`DropCause`] in [`DropCause::ALL`] order.
    pub drops: [u64; DropCause::ALL.len()],
}

impl Counters {
    /// The drop counter of `cause`.
    pub fn dropped(&self, cause: DropCause) -> u64 {
        self.drops[cause as usize]
    }
}

/// Input to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A timer may have expired (call at [`Instance::poll_at`]).
    Timer,
    /// A VRRP packet: the IP header's fields and the IP payload.
    Advert {
        /// IP source.
        src: IpAddr,
        /// IP destination.
        dst: IpAddr,
        /// TTL / hop limit.
        ttl: u8,
        /// The VRRP packet.
        payload: &'a [u8],
    },
    /// A tracker changed (matched by kind and name against the instance's trackers).
    Track {
        /// Kind.
        kind: TrackKind,
        /// Name.
        name: &'a str,
        /// New status.
        status: TrackStatus,
    },
    /// The instance's own interface went up or down.
    Link {
        /// Whether it is up.
        up: bool,
    },
    /// Stop: a master sends a priority-0 advert and releases the VIPs.
    Shutdown,
}

/// Output of an instance, to be performed in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority ([`Instance::advert`] builds it).
    SendAdvert {
        /// Advertised priority.
        priority: u8,
    },
    /// Take the VIPs (add them, answer ARP/ND).
    BecomeMaster,
    /// Release the VIPs (no-op if not held).
    BecomeBackup,
    /// Release the VIPs; the instance is in FAULT.
    BecomeFault,
    /// Release the VIPs; the instance stopped.
    Stopped,
    /// Send `count` gratuitous ARPs / unsolicited NAs per VIP.
    SendGarp {
        /// Frames per VIP.
        count: u32,
    },
    /// Run the notify scripts for `state` ([`NotifySpec::commands`]).
    Notify {
        /// The state entered.
        state: State,
        /// The effective priority at that moment.
        priority: u8,
    },
}

/// Why the effective priority is what it is: one entry per tracker that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityReason {
    /// Tracker kind.
    pub kind: TrackKind,
    /// Tracker name.
    pub name: String,
    /// Its effect now.
    pub effect: Effect,
}

/// A snapshot for `dpvsctl vrrp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Instance name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Current state.
    pub state: State,
    /// Configured priority.
    pub base_priority: u8,
    /// Effective priority.
    pub effective_priority: u8,
    /// Trackers that change the priority or fault the instance.
    pub reasons: Vec<PriorityReason>,
    /// Source of the last accepted advert (ours when master).
    pub master_addr: Option<IpAddr>,
    /// VIPs (advertised and excluded); held when `state` is MASTER.
    pub vips: Vec<IpAddr>,
    /// Counters.
    pub counters: Counters,
    /// Time of the last state change.
    pub last_transition: Option<Instant>,
}

/// Runtime state of one virtual router.
#[derive(Debug)]
pub struct Instance {
    spec: InstanceSpec,
    vip_set: BTreeSet<IpAddr>,
    state: State,
    start_at: Instant,
    master_adver_interval: Duration,
    adver_timer: Option<Instant>,
    down_timer: Option<Instant>,
    preempt_time: Option<Instant>,
    garp_delay_at: Option<Instant>,
    garp_refresh_at: Option<Instant>,
    track_status: Vec<Option<TrackStatus>>,
    link_up: bool,
    group_fault: bool,
    ignore_weights: bool,
    master_addr: Option<IpAddr>,
    counters: Counters,
    last_transition: Option<Instant>,
}

impl Instance {
    /// A new instance in INIT; it starts at its first timer (`now`). The
    /// spec's preemption settings are normalized as keepalived does
    /// ([`InstanceSpec::normalize_preempt`]).
    pub fn new(mut spec: InstanceSpec, now: Instant) -> Instance {
        spec.normalize_preempt();
        let vip_set = spec.vips.iter().map(|v| v.addr).collect();
        let master_adver_interval = spec.advert_interval();
        let track_status = vec![None; spec.tracks.len()];
        Instance {
            spec,
            vip_set,
            state: State::Init,
            start_at: now,
            master_adver_interval,
            adver_timer: None,
            down_timer: None,
            preempt_time: None,
            garp_delay_at: None,
            garp_refresh_at: None,
            track_status,
            link_up: true,
            group_fault: false,
            ignore_weights: false,
            master_addr: None,
            counters: Counters::default(),
            last_transition: None,
        }
    }

    /// The configuration.
    pub fn spec(&self) -> &InstanceSpec {
        &self.spec
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The interval a backup uses for its down timer (v3: learned from the master).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Ignore weighted trackers (sync-group members without
    /// `sync_group_tracking_weight`).
    pub fn set_ignore_weights(&mut self, ignore: bool) {
        self.ignore_weights = ignore;
    }

    fn effects(&self) -> impl Iterator<Item = (&TrackSpec, Effect)> + '_ {
        self.spec
            .tracks
            .iter()
            .zip(&self.track_status)
            .filter_map(|(t, s)| s.map(|s| (t, t.effect(s))))
    }

    /// Whether a tracker or the link holds this instance in FAULT (own
    /// conditions only, not the sync group's).
    pub fn own_fault(&self) -> bool {
        !self.link_up || self.effects().any(|(_, e)| e == Effect::Fault)
    }

    fn faulted(&self) -> bool {
        self.own_fault() || self.group_fault
    }

    /// The priority after tracking: the base for owners (and with weights
    /// ignored), else base + deltas clamped to 1..254.
    pub fn effective_priority(&self) -> u8 {
        let base = self.spec.priority;
        if base == PRIO_OWNER || self.ignore_weights {
            return base;
        }
        let sum: i64 = self
            .effects()
            .map(|(_, e)| match e {
                Effect::Delta(d) => d,
                Effect::Fault => 0,
            })
            .fold(0i64, i64::saturating_add);
        i64::from(base).saturating_add(sum).clamp(1, 254) as u8
    }

    /// `Skew_Time` for the current effective priority.
    pub fn skew_time(&self) -> Duration {
        let p = u64::from(256 - u16::from(self.effective_priority()));
        match self.spec.version {
            Version::V2 => Duration::from_nanos(p * 1_000_000_000 / 256),
            Version::V3 => {
                let nanos = self.master_adver_interval.as_nanos() as u64;
                Duration::from_nanos(p * nanos / 256)
            }
        }
    }

    /// `Master_Down_Interval` for the current effective priority.
    pub fn master_down_interval(&self) -> Duration {
        let int = match self.spec.version {
            Version::V2 => self.spec.advert_interval(),
            Version::V3 => self.master_adver_interval,
        };
        int * self.spec.down_timer_adverts + self.skew_time()
    }

    /// The advert this instance sends with `priority`.
    pub fn advert(&self, priority: u8) -> VrrpRepr {
        let (auth_type, auth_data) = match (self.spec.version, self.spec.auth) {
            (Version::V2, Auth::Pass(d)) => (AuthType::Pass, d),
            _ => (AuthType::None, [0; AUTH_DATA_LEN]),
        };
        VrrpRepr {
            version: self.spec.version,
            msg_type: MessageType::Advertisement,
            vrid: self.spec.vrid,
            priority,
            adver_int: self.spec.adver_int_field(),
            auth_type,
            auth_data,
            addrs: self.spec.vips.iter().map(|v| v.addr).collect(),
        }
    }

    /// When [`Event::Timer`] should next be delivered.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.state == State::Init {
            return Some(self.start_at);
        }
        [
            self.adver_timer,
            self.down_timer,
            self.garp_delay_at,
            self.garp_refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A status snapshot.
    pub fn status(&self) -> InstanceStatus {
        let reasons = self
            .effects()
            .filter(|(_, e)| *e != Effect::Delta(0))
            .map(|(t, e)| PriorityReason {
                kind: t.kind,
                name: t.name.clone(),
                effect: e,
            })
            .collect();
        InstanceStatus {
            name: self.spec.name.clone(),
            vrid: self.spec.vrid,
            state: self.state,
            base_priority: self.spec.priority,
            effective_priority: self.effective_priority(),
            reasons,
            master_addr: self.master_addr,
            vips: self
                .spec
                .vips
                .iter()
                .chain(&self.spec.excluded_vips)
                .map(|v| v.addr)
                .collect(),
            counters: self.counters.clone(),
            last_transition: self.last_transition,
        }
    }

    /// Handles one event at `now` and returns what to do.
    pub fn handle(&mut self, event: Event<'_>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Timer => self.on_timer(now, &mut out),
            Event::Advert {
                src,
                dst,
                ttl,
                payload,
            } => match self.check(src, dst, ttl, payload) {
                Ok(repr) => self.on_advert(src, &repr, now, &mut out),
                Err(cause) => self.counters.drops[cause as usize] += 1,
            },
            Event::Track { kind, name, status } => {
                for (t, s) in self.spec.tracks.iter().zip(self.track_status.iter_mut()) {
                    if t.kind == kind && t.name == name {
                        *s = Some(status);
                    }
                }
                self.reevaluate(now, &mut out);
            }
            Event::Link { up } => {
                self.link_up = up;
                self.reevaluate(now, &mut out);
            }
            Event::Shutdown => self.shutdown(now, &mut out),
        }
        out
    }

    /// Sets the sync group's fault condition (see [`crate::group`]).
    pub fn set_group_fault(&mut self, fault: bool, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.group_fault = fault;
        self.reevaluate(now, &mut out);
        out
    }

    /// Moves to `state` because a sync-group peer did (MASTER, BACKUP or FAULT).
    pub fn force(&mut self, state: State, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == state || matches!(self.state, State::Stop) {
            return out;
        }
        match state {
            State::Master => self.become_master(now, &mut out),
            State::Backup => self.become_backup(now, &mut out),
            State::Fault => self.become_fault(now, &mut out),
            State::Init | State::Stop => {}
        }
        out
    }

    /// The receive checks keepalived applies, in its order.
    fn check(
        &self,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        payload: &[u8],
    ) -> Result<VrrpRepr, DropCause> {
        let family = self.spec.family();
        if Family::of(&src) != family {
            return Err(DropCause::AddrFamily);
        }
        // keepalived binds its socket to the group or to unicast_src_ip, so
        // it never sees anything else.
        let want_dst = if self.spec.unicast_peers.is_empty() {
            Some(match family {
                Family::V4 => IpAddr::V4(MCAST_V4),
                Family::V6 => IpAddr::V6(MCAST_V6),
            })
        } else {
            self.spec.src_addr
        };
        if want_dst.is_some_and(|w| w != dst) {
            return Err(DropCause::BadDestination);
        }
        if self.spec.unicast_peers.is_empty() && ttl != VRRP_TTL {
            return Err(DropCause::BadTtl);
        }
        let packet = VrrpPacket::new_checked(payload, family)?;
        if packet.version() != Some(self.spec.version) {
            return Err(DropCause::BadVersion);
        }
        if packet.msg_type() != MessageType::Advertisement {
            return Err(DropCause::BadType);
        }
        if packet.vrid() != self.spec.vrid {
            return Err(DropCause::OtherVrid);
        }
        if !packet.verify_checksum(src, dst) {
            return Err(DropCause::BadChecksum);
        }
        let repr = VrrpRepr::parse(&packet)?;
        if self.spec.version == Version::V2 {
            let (want, data) = match self.spec.auth {
                Auth::None => (AuthType::None, None),
                Auth::Pass(d) => (AuthType::Pass, Some(d)),
            };
            if repr.auth_type != want {
                return Err(DropCause::AuthType);
            }
            if data.is_some_and(|d| d != repr.auth_data) {
                return Err(DropCause::AuthFailure);
            }
        }
        if repr.adver_int == 0 {
            return Err(DropCause::ZeroInterval);
        }
        if self.spec.version == Version::V2 && repr.adver_int != self.spec.adver_int_field() {
            return Err(DropCause::IntervalMismatch);
        }
        if repr.addrs.len() != self.vip_set.len()
            || !repr.addrs.iter().all(|a| self.vip_set.contains(a))
        {
            return Err(DropCause::AddrMismatch);
        }
        Ok(repr)
    }

    fn local_addr(&self) -> Option<IpAddr> {
        self.spec.src_addr
    }

    fn on_advert(&mut self, src: IpAddr, repr: &VrrpRepr, now: Instant, out: &mut Vec<Action>) {
        let prio = repr.priority;
        let ours = self.effective_priority();
        match self.state {
            State::Backup => {
                self.counters.adverts_received += 1;
                if prio == PRIO_STOP {
                    self.counters.prio0_received += 1;
                    self.master_addr = None;
                    self.down_timer = Some(now + self.skew_time());
                    return;
                }
                let delay_pending = self.spec.preempt
                    && !self.spec.preempt_delay.is_zero()
                    && prio < ours
                    && self.preempt_time.is_none_or(|t| t > now);
                if !self.spec.preempt || prio >= ours || delay_pending {
                    if prio >= ours {
                        self.preempt_time = None;
                    } else if delay_pending && self.preempt_time.is_none() {
                        self.preempt_time = Some(now + self.spec.preempt_delay);
                    }
                    if self.spec.version == Version::V3 {
                        self.master_adver_interval = repr.interval();
                    }
                    self.master_addr = Some(src);
                    self.down_timer = Some(now + self.master_down_interval());
                }
                // Otherwise preempt: let the down timer expire.
            }
            State::Master => {
                self.counters.adverts_received += 1;
                if prio == PRIO_STOP {
                    self.counters.prio0_received += 1;
                    self.send(ours, out);
                    self.adver_timer = Some(now + self.spec.advert_interval());
                    return;
                }
                let local = self.local_addr();
                if prio > ours || (prio == ours && local.is_none_or(|l| src > l)) {
                    if prio > ours && self.spec.higher_prio_send_advert {
                        self.send(ours, out);
                    }
                    if self.spec.version == Version::V3 {
                        self.master_adver_interval = repr.interval();
                    }
                    self.become_backup(now, out);
                    self.master_addr = Some(src);
                } else if !self.spec.lower_prio_no_advert {
                    // keepalived: "lower priority ..., forcing new election".
                    self.send(ours, out);
                }
            }
            State::Init | State::Fault | State::Stop => {
                self.counters.drops[DropCause::NotRunning as usize] += 1;
            }
        }
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::Init {
            if now >= self.start_at {
                self.startup(now, out);
            }
            return;
        }
        if self.down_timer.is_some_and(|t| t <= now) && self.state == State::Backup {
            self.become_master(now, out);
        }
        if self.adver_timer.is_some_and(|t| t <= now) && self.state == State::Master {
            self.send(self.effective_priority(), out);
            self.adver_timer = Some(now + self.spec.advert_interval());
        }
        if self.garp_delay_at.is_some_and(|t| t <= now) {
            self.garp_delay_at = None;
            out.push(Action::SendGarp {
                count: self.spec.garp.master_repeat,
            });
        }
        if self.garp_refresh_at.is_some_and(|t| t <= now) {
            self.garp_refresh_at = Some(now + self.spec.garp.master_refresh);
            out.push(Action::SendGarp {
                count: self.spec.garp.master_refresh_repeat,
            });
        }
    }

    fn startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.faulted() {
            self.become_fault(now, out);
        } else if self.spec.priority == PRIO_OWNER || self.spec.start_master {
            self.become_master(now, out);
        } else {
            self.become_backup(now, out);
        }
    }

    /// After a tracker, link or group change.
    fn reevaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        match (self.state, self.faulted()) {
            (State::Backup | State::Master, true) => self.become_fault(now, out),
            (State::Fault, false) => self.startup(now, out),
            _ => {}
        }
    }

    fn send(&mut self, priority: u8, out: &mut Vec<Action>) {
        self.counters.adverts_sent += 1;
        if priority == PRIO_STOP {
            self.counters.prio0_sent += 1;
        }
        out.push(Action::SendAdvert { priority });
    }

    fn enter(&mut self, state: State, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::Master && state != State::Master {
            self.counters.released_master += 1;
        }
        self.state = state;
        self.last_transition = Some(now);
        self.adver_timer = None;
        self.down_timer = None;
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
        self.preempt_time = None;
        out.push(match state {
            State::Master => Action::BecomeMaster,
            State::Backup => Action::BecomeBackup,
            State::Fault => Action::BecomeFault,
            State::Init | State::Stop => Action::Stopped,
        });
        out.push(Action::Notify {
            state,
            priority: self.effective_priority(),
        });
    }

    fn become_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.counters.became_master += 1;
        self.send(self.effective_priority(), out);
        self.enter(State::Master, now, out);
        self.master_addr = self.local_addr();
        self.adver_timer = Some(now + self.spec.advert_interval());
        self.master_adver_interval = self.spec.advert_interval();
        out.push(Action::SendGarp {
            count: self.spec.garp.master_repeat,
        });
        if !self.spec.garp.master_delay.is_zero() {
            self.garp_delay_at = Some(now + self.spec.garp.master_delay);
        }
        if !self.spec.garp.master_refresh.is_zero() {
            self.garp_refresh_at = Some(now + self.spec.garp.master_refresh);
        }
    }

    fn become_backup(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.enter(State::Backup, now, out);
        self.down_timer = Some(now + self.master_down_interval());
    }

    fn become_fault(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::Master {
            self.send(PRIO_STOP, out);
        }
        self.master_addr = None;
        self.enter(State::Fault, now, out);
    }

    fn shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::Stop {
            return;
        }
        if self.state == State::Master {
            self.send(PRIO_STOP, out);
        }
        self.master_addr = None;
        self.enter(State::Stop, now, out);
    }
}
