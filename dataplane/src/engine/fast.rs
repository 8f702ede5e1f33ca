//! The established-flow fast path of [`Engine::handle_burst`].
//!
//! Nearly every packet a load balancer forwards belongs to a connection
//! that is already open and stays as it is: an ACK or data segment of an
//! ESTABLISHED TCP connection, or a UDP datagram of a known flow. For those
//! the work is fixed: find the connection (its index entry was prefetched
//! with the burst), restart its idle timer, count the packet, rewrite the
//! addresses and ports (FNAT, NAT), only the MACs (DR) or encapsulate it
//! (TUN), and send it on.
//! [`Side::fast`] does exactly that, in one straight run with no state
//! machine, no timeout table and no per-mode dispatch layers, and declines
//! (returns `None`, touching nothing) whenever anything else may have to
//! happen: a SYN, FIN or RST, a state change, a TOA to insert (a client
//! segment still acknowledging the server's SYN-ACK), an expired
//! or quiescent connection, persistence templates to refresh, a MAC not
//! cached, a TTL about to run out, SNAT, an index
//! collision. The frame then takes the full path, which handles it as if
//! the fast path did not exist, so the two cannot disagree on anything but
//! speed (`fast_path_forwards_as_the_full_path` checks byte for byte).
//!
//! IPv4 and IPv6 alike; NAT64 connections (whose packets change family)
//! take the full path. Engines with SYN-proxy or PROXY-protocol services,
//! or with VLANs, never take it: those rewrite sequence numbers or tags
//! per packet.

use super::{action_in, Action, Engine, Family, Parsed, Side, Verdict, ETH_LEN};
use crate::command::Forwarding;
use crate::conn::Dir;

impl Engine {
    /// Whether this burst's IPv4 and IPv6 frames may try [`Side::fast`].
    #[inline(always)]
    pub(super) fn fast_path_on(&self) -> bool {
        !self.hooks_on() && self.snap.vlan_ids.is_empty()
    }
}

impl<A: Family> Side<A> {
    /// Forwards the frame `buf[..len]` of packet `p` when it is a steady
    /// packet of an established connection (see the module doc): the
    /// verdict and the frame's new length, as the full path gives them;
    /// `None`, with nothing changed, when the full path must handle it.
    #[inline(always)]
    pub(super) fn fast(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &Parsed<A>,
        now_ms: u64,
    ) -> Option<(Verdict, usize)> {
        let gen = self.neigh_gen;
        let (conn, d, dir) = self.conns.hinted_mut(&p.key, p.hint, now_ms)?;
        // The key found must be of the side the packet came from (as the
        // full path insists), and nothing but the timer may change.
        if dir != p.dir
            || !conn.steady(p.flags)
            || d.expire_quiescent
            || d.persistence.is_some()
            || p.ttl <= 1
        {
            return None;
        }
        // A client segment still acknowledging the server's SYN-ACK gets a
        // TOA: the full path inserts it.
        if dir == Dir::In && d.toa && conn.wants_toa(p.ack, p.flags) {
            return None;
        }
        let step = match (dir, d.forwarding) {
            (Dir::In, Forwarding::Fnat | Forwarding::Nat | Forwarding::Dr | Forwarding::Tun)
                if d.neigh_gen == gen =>
            {
                (
                    action_in(d.forwarding, &conn.out_key, d.tunnel_src).ok()?,
                    d.mac,
                )
            }
            (Dir::Out, Forwarding::Fnat | Forwarding::Nat) => {
                (Action::Nat(conn.in_key.reversed()), conn.client_mac)
            }
            _ => return None,
        };
        // NAT64 (an IPv4-mapped address on either side) changes the
        // frame's family: the full path's.
        if p.key.src.is_mapped() || matches!(step.0, Action::Nat(k) if k.src.is_mapped()) {
            return None;
        }
        // As the full path: the timer and counters, then the rewrite (a
        // tunnel without room is dropped, counted by the caller). NAT's
        // checksum differences are the connection's, not recomputed.
        conn.restart_steady(now_ms);
        let deltas = conn.deltas(dir);
        match dir {
            Dir::In => d.pending.count_in(len),
            Dir::Out => d.pending.count_out(len),
        }
        Some(match step {
            (Action::Nat(new), mac) => {
                A::rewrite_by(&mut buf[ETH_LEN..], p.hl, p.tl, &new, deltas);
                self.send(buf, len, mac)
            }
            step => self.apply(buf, len, p, Ok(step)),
        })
    }
}
