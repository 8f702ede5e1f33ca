//! Counters, declared once.
//!
//! Per real server and per service: connections, packets and bytes in each
//! direction. Per worker: one counter per [`Drop`] reason. The names and
//! descriptions in [`Drop::ALL`] feed logs, the control socket and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Traffic counters of a service or a real server (IPVS's `--stats` columns).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Connections currently in the tables (a gauge; IPVS's ActiveConn+InActConn).
    pub active: AtomicU64,
    pub conns: AtomicU64,
    pub in_pkts: AtomicU64,
    pub out_pkts: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
}

/// A plain copy of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficSnapshot {
    pub active: u64,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Traffic {
    #[inline]
    pub(crate) fn count_in(&self, bytes: usize) {
        self.in_pkts.fetch_add(1, Ordering::Relaxed);
        self.in_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn count_out(&self, bytes: usize) {
        self.out_pkts.fetch_add(1, Ordering::Relaxed);
        self.out_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn count_conn(&self) {
        self.conns.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            active: self.active.load(Ordering::Relaxed),
            conns: self.conns.load(Ordering::Relaxed),
            in_pkts: self.in_pkts.load(Ordering::Relaxed),
            out_pkts: self.out_pkts.load(Ordering::Relaxed),
            in_bytes: self.in_bytes.load(Ordering::Relaxed),
            out_bytes: self.out_bytes.load(Ordering::Relaxed),
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
    BadChecksum => "bad_checksum", "IPv4 header checksum mismatch";
    Fragment => "fragment", "IP fragments are not supported (as in DPVS)";
    TtlExceeded => "ttl_exceeded", "TTL would reach zero when forwarded";
    NoService => "no_service", "to an owned VIP but no service on that port/protocol";
    NoRealServer => "no_real_server", "new connection but no real server with weight > 0";
    NoConnection => "no_connection", "not a connection-opening packet and no connection found";
    ConnTableFull => "conn_table_full", "the connection table is full; new flows are dropped";
    NoLocalPort => "no_local_port", "no free FNAT local address/port";
    NeighbourUnresolved => "neighbour_unresolved", "the next hop's MAC address is not known yet (ARP sent)";
    TxFull => "tx_full", "the backend could not send the packet";
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
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
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
        let t = Traffic::default();
        t.count_in(60);
        t.count_out(40);
        t.count_conn();
        assert_eq!(
            t.snapshot(),
            TrafficSnapshot {
                active: 0,
                conns: 1,
                in_pkts: 1,
                out_pkts: 1,
                in_bytes: 60,
                out_bytes: 40
            }
        );
    }
}
