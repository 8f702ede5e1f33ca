//! Interface and neighbour state, and the DR/BDR election (RFC 2328 §9, §10).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use super::lsdb::LsaKey;
use super::spec::InterfaceSpec;
use crate::wire::LsaHeaderRepr;

/// Interface state (§9.1; Loopback is not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IfaceState {
    /// Not running.
    Down,
    /// Broadcast: waiting to learn the DR/BDR before electing.
    Waiting,
    /// Point-to-point: up.
    PointToPoint,
    /// Broadcast: neither DR nor BDR.
    DrOther,
    /// Broadcast: backup designated router.
    Backup,
    /// Broadcast: designated router.
    Dr,
}

/// Neighbour state (§10.1; Attempt is NBMA-only and not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NeighborState {
    /// Nothing heard lately.
    Down,
    /// A Hello was heard, without our router ID in it.
    Init,
    /// Bidirectional communication, no adjacency.
    TwoWay,
    /// Negotiating master/slave and the DD sequence number.
    ExStart,
    /// Exchanging Database Description packets.
    Exchange,
    /// Requesting the LSAs we lack.
    Loading,
    /// Fully adjacent.
    Full,
}

#[derive(Debug)]
pub(crate) struct Neighbor {
    pub router_id: Ipv4Addr,
    pub addr: Ipv4Addr,
    pub priority: u8,
    pub dr: Ipv4Addr,
    pub bdr: Ipv4Addr,
    pub options: u8,
    pub state: NeighborState,
    pub inactivity_at: Duration,
    pub master: bool,
    pub dd_seq: u32,
    pub last_rx_dbd: Option<(u8, u8, u32)>,
    pub last_tx_dbd: Option<Vec<u8>>,
    pub last_tx_more: bool,
    pub dbd_rxmt_at: Option<Duration>,
    pub summary: VecDeque<LsaHeaderRepr>,
    pub requests: BTreeMap<LsaKey, LsaHeaderRepr>,
    pub lsr_rxmt_at: Option<Duration>,
    pub rxmt: BTreeMap<LsaKey, LsaHeaderRepr>,
    pub lsu_rxmt_at: Option<Duration>,
    pub crypto_seq: Option<u32>,
}

impl Neighbor {
    pub fn new(router_id: Ipv4Addr, addr: Ipv4Addr, now: Duration) -> Self {
        Neighbor {
            router_id,
            addr,
            priority: 0,
            dr: Ipv4Addr::UNSPECIFIED,
            bdr: Ipv4Addr::UNSPECIFIED,
            options: 0,
            state: NeighborState::Down,
            inactivity_at: now,
            master: true,
            dd_seq: (now.as_millis() as u32) | 1,
            last_rx_dbd: None,
            last_tx_dbd: None,
            last_tx_more: true,
            dbd_rxmt_at: None,
            summary: VecDeque::new(),
            requests: BTreeMap::new(),
            lsr_rxmt_at: None,
            rxmt: BTreeMap::new(),
            lsu_rxmt_at: None,
            crypto_seq: None,
        }
    }

    /// Drop the adjacency's lists and timers (entering Init, TwoWay or ExStart).
    pub fn reset_adjacency(&mut self, state: NeighborState) {
        self.state = state;
        self.last_rx_dbd = None;
        self.last_tx_dbd = None;
        self.last_tx_more = true;
        self.dbd_rxmt_at = None;
        self.summary.clear();
        self.requests.clear();
        self.lsr_rxmt_at = None;
        self.rxmt.clear();
        self.lsu_rxmt_at = None;
    }
}

#[derive(Debug)]
pub(crate) struct Interface {
    pub spec: InterfaceSpec,
    pub state: IfaceState,
    pub dr: Ipv4Addr,
    pub bdr: Ipv4Addr,
    pub hello_at: Duration,
    pub wait_at: Option<Duration>,
    pub neighbors: BTreeMap<Ipv4Addr, Neighbor>,
}

/// One router as seen by the election.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub router_id: Ipv4Addr,
    pub addr: Ipv4Addr,
    pub priority: u8,
    pub dr: Ipv4Addr,
    pub bdr: Ipv4Addr,
}

fn elect_once(me: &Candidate, others: &[Candidate]) -> (Ipv4Addr, Ipv4Addr) {
    let all: Vec<&Candidate> = std::iter::once(me)
        .chain(others)
        .filter(|c| c.priority > 0)
        .collect();
    let rank = |c: &&&Candidate| (c.priority, c.router_id);
    let not_dr: Vec<&&Candidate> = all.iter().filter(|c| c.dr != c.addr).collect();
    let bdr = not_dr
        .iter()
        .copied()
        .filter(|c| c.bdr == c.addr)
        .max_by_key(rank)
        .or_else(|| not_dr.iter().copied().max_by_key(rank))
        .map_or(Ipv4Addr::UNSPECIFIED, |c| c.addr);
    let dr = all
        .iter()
        .filter(|c| c.dr == c.addr)
        .max_by_key(rank)
        .map_or(bdr, |c| c.addr);
    (dr, bdr)
}

/// DR/BDR election (§9.4): returns (DR, BDR) interface addresses.
pub(crate) fn elect(me: Candidate, others: &[Candidate]) -> (Ipv4Addr, Ipv4Addr) {
    let (dr, bdr) = elect_once(&me, others);
    let changed = (me.dr == me.addr) != (dr == me.addr) || (me.bdr == me.addr) != (bdr == me.addr);
    if changed {
        elect_once(&Candidate { dr, bdr, ..me }, others)
    } else {
        (dr, bdr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: u8, prio: u8, dr: u8, bdr: u8) -> Candidate {
        let a = |x: u8| {
            if x == 0 {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::new(10, 0, 0, x)
            }
        };
        Candidate {
            router_id: Ipv4Addr::new(1, 1, 1, i),
            addr: a(i),
            priority: prio,
            dr: a(dr),
            bdr: a(bdr),
        }
    }

    #[test]
    fn fresh_segment_highest_becomes_dr_other_bdr() {
        // Router 2 (highest id) runs the election first: it becomes DR and 1 BDR.
        let (dr, bdr) = elect(c(2, 1, 0, 0), &[c(1, 1, 0, 0)]);
        assert_eq!((dr, bdr), (c(2, 0, 0, 0).addr, c(1, 0, 0, 0).addr));
    }

    #[test]
    fn existing_dr_is_kept() {
        // Router 3 joins a segment whose DR is 1 (no BDR): 1 stays DR, 3 becomes BDR.
        let (dr, bdr) = elect(c(3, 1, 0, 0), &[c(1, 1, 1, 0)]);
        assert_eq!((dr, bdr), (c(1, 0, 0, 0).addr, c(3, 0, 0, 0).addr));
    }

    #[test]
    fn priority_zero_never_elected() {
        let (dr, bdr) = elect(c(9, 0, 0, 0), &[c(1, 1, 0, 0)]);
        assert_eq!(dr, c(1, 0, 0, 0).addr);
        assert_ne!(bdr, c(9, 0, 0, 0).addr);
    }
}
