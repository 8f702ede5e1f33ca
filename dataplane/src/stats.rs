//! Counters, declared once.
//!
//! Per real server and per service: connections, packets and bytes in each
//! direction. Per worker: one counter per [`Drop`] reason. The names and
//! descriptions in [`Drop::ALL`] feed logs, the control socket and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::rate::{RateEstimator, Rates};

/// One worker's counters, alone on its cache line(s).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    /// Connections in the table (a gauge; may go "negative" per slot only
    /// transiently, so it is kept as a wrapping u64 and summed wrapping).
    active: AtomicU64,
    conns: AtomicU64,
    in_pkts: AtomicU64,
    out_pkts: AtomicU64,
    in_bytes: AtomicU64,
    out_bytes: AtomicU64,
}

/// Single-writer increment: only the owning worker writes its slot, so a
/// relaxed load + store is enough and avoids a locked read-modify-write on
/// the hot path. Readers may see a value one increment old.
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// Traffic counters of a service or a real server (IPVS's `--stats`
/// columns), with one slot per worker: each worker writes only its own slot
/// (no locked instructions, no shared cache lines), readers sum the slots.
#[derive(Debug)]
pub struct Traffic {
    slots: Box<[Slot]>,
    /// Rates, updated by the control side's estimator ([`crate::rate`]).
    est: Mutex<RateEstimator>,
}

impl Default for Traffic {
    /// Counters for one worker.
    fn default() -> Self {
        Traffic::new(1)
    }
}

/// Packets and bytes one worker counted for a [`Traffic`] and has not
/// added to it yet: plain (non-atomic) counters the worker bumps per
/// packet on lines it already touches, added to the shared counters by
/// [`Traffic::add`] in housekeeping ([`crate::engine::Engine::flush_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Pending {
    /// Counts a client → server packet of `bytes`.
    #[inline(always)]
    pub fn count_in(&mut self, bytes: usize) {
        self.in_pkts += 1;
        self.in_bytes += bytes as u64;
    }

    /// Counts a server → client packet of `bytes`.
    #[inline(always)]
    pub fn count_out(&mut self, bytes: usize) {
        self.out_pkts += 1;
        self.out_bytes += bytes as u64;
    }

    pub fn is_empty(&self) -> bool {
        self.in_pkts == 0 && self.out_pkts == 0
    }
}

/// A plain copy of [`Traffic`], summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficSnapshot {
    /// Connections currently in the tables (IPVS's ActiveConn+InActConn).
    pub active: u64,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Per-second rates from the last estimation ([`crate::rate`]).
    pub rates: Rates,
}

impl Traffic {
    /// Counters for `workers` workers (at least one).
    pub fn new(workers: usize) -> Traffic {
        Traffic {
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
            est: Mutex::default(),
        }
    }

    /// Counts a client → server packet of `bytes` seen by `worker`.
    #[inline]
    pub(crate) fn count_in(&self, worker: usize, bytes: usize) {
        if let Some(s) = self.slots.get(worker) {
            bump(&s.in_pkts, 1);
            bump(&s.in_bytes, bytes as u64);
        }
    }

    /// Adds what `worker` counted in `p` (see [`Pending`]).
    pub(crate) fn add(&self, worker: usize, p: &Pending) {
        if let Some(s) = self.slots.get(worker) {
            bump(&s.in_pkts, p.in_pkts);
            bump(&s.in_bytes, p.in_bytes);
            bump(&s.out_pkts, p.out_pkts);
            bump(&s.out_bytes, p.out_bytes);
        }
    }

    /// Counts a new connection created by `worker`.
    #[inline]
    pub(crate) fn count_conn(&self, worker: usize) {
        if let Some(s) = self.slots.get(worker) {
            bump(&s.conns, 1);
        }
    }

    /// `worker` added (`+1`) or removed (`-1`) a connection from its table.
    #[inline]
    pub(crate) fn count_active(&self, worker: usize, delta: i64) {
        if let Some(s) = self.slots.get(worker) {
            bump(&s.active, delta as u64);
        }
    }

    /// Connections in the tables, summed over workers (the threshold check).
    #[inline]
    pub fn active(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, s| {
            a.wrapping_add(s.active.load(Ordering::Relaxed))
        })
    }

    /// One estimation step at `now_ms` (the control side calls this every
    /// [`crate::rate::PERIOD_MS`]).
    pub fn estimate(&self, now_ms: u64) {
        let snap = self.snapshot();
        let mut e = self.est.lock().unwrap_or_else(|e| e.into_inner());
        e.sample(&snap, now_ms);
    }

    /// The counters summed over all workers.
    pub fn snapshot(&self) -> TrafficSnapshot {
        let sum = |f: fn(&Slot) -> &AtomicU64| {
            self.slots
                .iter()
                .fold(0u64, |a, s| a.wrapping_add(f(s).load(Ordering::Relaxed)))
        };
        TrafficSnapshot {
            active: sum(|s| &s.active),
            conns: sum(|s| &s.conns),
            in_pkts: sum(|s| &s.in_pkts),
            out_pkts: sum(|s| &s.out_pkts),
            in_bytes: sum(|s| &s.in_bytes),
            out_bytes: sum(|s| &s.out_bytes),
            rates: self.est.lock().map(|e| e.rates()).unwrap_or_default(),
        }
    }
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $desc:literal;)*) => {
        /// Why a packet addressed to the load balancer was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Drop { $($variant,)* }

        impl Drop {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [Drop] = &[$(Drop::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// Short machine name (metrics label, JSON key).
            pub fn name(self) -> &'static str {
                match self { $(Drop::$variant => $name,)* }
            }

            /// One-line human description.
            pub fn description(self) -> &'static str {
                match self { $(Drop::$variant => $desc,)* }
            }
        }
    };
}

drop_reasons! {
    Truncated => "truncated", "a header is shorter than its minimum or its length field";
    Malformed => "malformed", "a header field is invalid (version, header length, ARP types)";
    BadChecksum => "bad_checksum", "IPv4 header or ICMP checksum mismatch";
    Fragment => "fragment", "IP fragments are not supported (as in DPVS)";
    TtlExceeded => "ttl_exceeded", "TTL would reach zero when forwarded";
    NoService => "no_service", "to an owned VIP but no service on that port/protocol";
    NoRealServer => "no_real_server", "new connection but no real server with weight > 0";
    NoConnection => "no_connection", "not a connection-opening packet and no connection found";
    ConnTableFull => "conn_table_full", "the connection table is full; new flows are dropped";
    NoLocalPort => "no_local_port", "no free FNAT local address/port";
    ConnConflict => "conn_conflict", "NAT/DR/TUN: another connection already uses the real-server-side tuple (rs, client, ports)";
    NoTunnelSource => "no_tunnel_source", "TUN service without a local address while no interface address is set";
    TunnelTooBig => "tunnel_too_big", "the IPIP-encapsulated packet would exceed the 1500-byte MTU";
    NoRoom => "no_room", "the frame buffer has no room for the tunnel header";
    NeighbourUnresolved => "neighbour_unresolved", "the next hop's MAC address is not known yet (ARP sent)";
    TxFull => "tx_full", "the backend could not send the packet";
    IcmpUnhandled => "icmp_unhandled", "ICMP that is not an error quoting a TCP/UDP packet (echo to a VIP, …)";
    AclDenied => "acl_denied", "new connection from a client in the service's deny_address_group";
    AclNotAllowed => "acl_not_allowed", "new connection from a client outside the service's allow_address_group";
    ServerOverloaded => "server_overloaded", "new connection but every real server the scheduler may pick is over its uthreshold";
    SynProxyBadCookie => "synproxy_bad_cookie", "syn_proxy: an ACK opening no connection carries no valid SYN cookie";
    SynProxyPending => "synproxy_pending", "syn_proxy: client data before the real server answered the proxied SYN (the client retransmits)";
    ProxyProtocolFull => "proxy_protocol_full", "proxy_protocol: the worker's table of connections awaiting or carrying a PROXY header is full";
    UnknownVlan => "unknown_vlan", "802.1Q-tagged frame on a VLAN no VIP or local address is bound to (or VLAN id 0)";
    VlanStacked => "vlan_stacked", "stacked VLAN tags (QinQ, 802.1ad) are not supported";
    VlanMismatch => "vlan_mismatch", "untagged frame to a VIP bound to a VLAN (vip_bind_dev dpdk0.100): the VIP lives only on its VLAN";
    QuiescentExpired => "quiescent_expired", "expire_quiescent_conn: a packet of a connection whose real server is quiescent (weight 0) or removed; the connection was expired";
}

/// Per-worker drop counters, indexed by [`Drop`].
#[derive(Debug)]
pub struct DropCounters([AtomicU64; Drop::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl DropCounters {
    #[inline]
    pub(crate) fn count(&self, reason: Drop) {
        // One worker owns these counters: a single-writer bump is enough.
        bump(&self.0[reason as usize], 1);
    }

    pub fn get(&self, reason: Drop) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }

    /// `(name, count)` for every reason.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Drop::ALL.iter().map(|&d| (d.name(), self.get(d))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_names_are_unique_and_indexed_in_order() {
        for (i, d) in Drop::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
        let mut names: Vec<_> = Drop::ALL.iter().map(|d| d.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Drop::COUNT);
    }

    #[test]
    fn counters_count() {
        let c = DropCounters::default();
        c.count(Drop::Fragment);
        c.count(Drop::Fragment);
        assert_eq!(c.get(Drop::Fragment), 2);
        assert_eq!(c.get(Drop::Truncated), 0);
        let t = Traffic::new(2);
        t.count_in(0, 60);
        t.count_conn(0);
        t.count_active(1, 1);
        t.count_active(0, 1);
        t.count_active(1, -1);
        t.count_in(7, 1000); // no such worker: ignored
        let mut p = Pending::default();
        p.count_in(100);
        p.count_out(50);
        p.count_out(10);
        t.add(1, &p);
        t.add(7, &p); // no such worker: ignored
        assert_eq!(
            t.snapshot(),
            TrafficSnapshot {
                active: 1,
                conns: 1,
                in_pkts: 2,
                out_pkts: 2,
                in_bytes: 160,
                out_bytes: 60,
                rates: Rates::default(),
            }
        );
    }
}
