//! The LVS/DPVS TCP state machine, `establish_timeout` and
//! `expire_quiescent_conn` through the engine: packets in, states, expiry
//! and drops out.

use super::*;
use crate::conn::{ConnView, UDP_TIMEOUT_MS};
use crate::engine::ConnPolicy;

/// A TCP frame with flags `f` (`S` SYN, `A` ACK, `F` FIN, `R` RST).
pub(super) fn seg(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    f: &str,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
        .ipv4(src.1.octets(), dst.1.octets(), 64)
        .tcp(src.2, dst.2, 1000, 65535);
    if f.contains('S') {
        b = b.syn();
    }
    if f.contains('A') {
        b = b.ack(7);
    }
    if f.contains('F') {
        b = b.fin();
    }
    if f.contains('R') {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, b"").expect("build tcp");
    out
}

/// The engine's only connection as listed (`dpvsctl conns`) at `now`.
fn only_conn(e: &Engine, now: u64) -> ConnView {
    let mut out = Vec::new();
    let mut from = Some(0);
    while let Some(f) = from {
        from = e.scan_conns(f, 4096, now, &mut out);
    }
    assert_eq!(out.len(), 1, "{out:?}");
    out[0]
}

fn handle(e: &mut Engine, mut frame: Vec<u8>, now: u64, ctl: &mut Burst) -> (Verdict, Vec<u8>) {
    let v = e.handle(&mut frame, now, ctl);
    (v, frame)
}

/// Sends client segment `f` at `now`; it must be forwarded.
fn client(e: &mut Engine, f: &str, now: u64, ctl: &mut Burst) -> Vec<u8> {
    let (v, frame) = handle(
        e,
        seg((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 80), f),
        now,
        ctl,
    );
    assert_eq!(v, Verdict::Forward, "client {f} at {now}");
    frame
}

/// `mode_snapshot` with connection policy `policy` on every service.
fn with_policy(mut snap: Arc<Snapshot>, policy: ConnPolicy) -> Arc<Snapshot> {
    let s = Arc::get_mut(&mut snap).expect("fresh snapshot");
    s.v4.conn_policy = vec![policy; s.v4.services.len()];
    snap
}

#[test]
fn fnat_connection_walks_dpvs_states_and_expires_in_time_wait() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Fnat, &[LIP], None);
    let syn = client(&mut e, "S", 0, &mut ctl);
    let lport = inspect(&syn).4;
    let state = |e: &Engine, now| {
        let c = only_conn(e, now);
        (c.tcp.name(), c.expires_in_ms)
    };
    assert_eq!(state(&e, 0), ("SYN_RECV", 30_000));
    let server = |e: &mut Engine, f: &str, now, ctl: &mut Burst| {
        // FNAT's real server listens on the VIP's port here.
        let frame = seg((RS_MAC, RS, 80), (LB_MAC, LIP, lport), f);
        assert_eq!(handle(e, frame, now, ctl).0, Verdict::Forward, "server {f}");
    };
    server(&mut e, "SA", 10, &mut ctl);
    assert_eq!(state(&e, 10), ("SYN_RECV", 30_000));
    client(&mut e, "A", 20, &mut ctl);
    assert_eq!(state(&e, 20), ("ESTABLISHED", 90_000));
    client(&mut e, "FA", 30, &mut ctl);
    assert_eq!(state(&e, 30), ("CLOSE_WAIT", 7_000));
    server(&mut e, "A", 40, &mut ctl);
    server(&mut e, "FA", 50, &mut ctl);
    assert_eq!(state(&e, 50), ("TIME_WAIT", 7_000));
    client(&mut e, "A", 60, &mut ctl);
    assert_eq!(state(&e, 60), ("TIME_WAIT", 7_000));
    // Freed by the sweep 7 s after the last packet, not before.
    e.housekeeping(60 + 6_999, 1 << 12, &mut ctl);
    assert_eq!(e.conn_count(), 1);
    e.housekeeping(60 + 7_000 + SWEEP_PERIOD_MS, 1 << 12, &mut ctl);
    assert_eq!(e.conn_count(), 0);
}

#[test]
fn a_reset_closes_in_three_seconds_and_the_port_can_be_reused() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Nat, &[], Some(IFACE));
    client(&mut e, "S", 0, &mut ctl);
    client(&mut e, "A", 1, &mut ctl);
    client(&mut e, "R", 2, &mut ctl);
    let c = only_conn(&e, 2);
    assert_eq!((c.tcp, c.expires_in_ms), (TcpState::Close, 3_000));
    // A new SYN on the port opens a new connection (SYN_RECV again).
    client(&mut e, "S", 3, &mut ctl);
    assert_eq!(only_conn(&e, 3).tcp, TcpState::SynRecv);
    // As DPVS and Linux: a client RST does not close a SYN_RECV connection.
    client(&mut e, "R", 4, &mut ctl);
    assert_eq!(only_conn(&e, 4).tcp, TcpState::SynRecv);
    // Established, then reset: freed 3 s after the RST, by the lookup of
    // a late packet.
    client(&mut e, "A", 5, &mut ctl);
    client(&mut e, "R", 6, &mut ctl);
    let late = seg((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 80), "A");
    let (v, _) = handle(&mut e, late, 6 + 2_999, &mut ctl);
    assert_eq!(v, Verdict::Forward);
    client(&mut e, "R", 6 + 2_999, &mut ctl);
    let late = seg((CLIENT_MAC, CLIENT, 5000), (LB_MAC, VIP, 80), "A");
    let (v, _) = handle(&mut e, late, 6 + 2_999 + 3_000, &mut ctl);
    assert_eq!(v, Verdict::Drop(Drop::NoConnection));
    assert_eq!(e.conn_count(), 0);
}

#[test]
fn dr_connections_see_only_the_client_and_use_the_input_only_row() {
    let (mut e, mut ctl) = mode_engine(Forwarding::Dr, &[], Some(IFACE));
    client(&mut e, "S", 0, &mut ctl);
    client(&mut e, "A", 1, &mut ctl);
    assert_eq!(only_conn(&e, 1).tcp, TcpState::Established);
    // FNAT's row would say CLOSE_WAIT (the server's FIN still to come);
    // here the server's FIN is never seen: FIN_WAIT, then the last ACK.
    client(&mut e, "FA", 2, &mut ctl);
    assert_eq!(only_conn(&e, 2).tcp, TcpState::FinWait);
    client(&mut e, "A", 3, &mut ctl);
    let c = only_conn(&e, 3);
    assert_eq!((c.tcp.name(), c.expires_in_ms), ("FIN_WAIT", 7_000));
}

#[test]
fn establish_timeout_replaces_the_established_and_udp_timeouts() {
    for (establish_s, tcp_ms, udp_ms) in [(None, 90_000, UDP_TIMEOUT_MS), (Some(5), 5_000, 5_000)] {
        let policy = ConnPolicy {
            establish_timeout_s: establish_s,
            ..ConnPolicy::default()
        };
        let snap = with_policy(mode_snapshot(Forwarding::Fnat, &[LIP], None), policy);
        let (mut e, mut ctl) = mode_engine(Forwarding::Fnat, &[LIP], None);
        e.set_snapshot(snap, 0, &mut ctl);
        client(&mut e, "S", 0, &mut ctl);
        // The handshake keeps SYN_RECV's own timeout.
        assert_eq!(only_conn(&e, 0).expires_in_ms, 30_000, "{establish_s:?}");
        client(&mut e, "A", 100, &mut ctl);
        let c = only_conn(&e, 100);
        assert_eq!((c.tcp, c.expires_in_ms), (TcpState::Established, tcp_ms));
        // Alive until the timeout after its last packet, then gone.
        client(&mut e, "A", 100 + u64::from(tcp_ms) - 1, &mut ctl);
        let last = 100 + 2 * u64::from(tcp_ms) - 1;
        e.housekeeping(last - 1, 1 << 12, &mut ctl);
        assert_eq!(e.conn_count(), 1, "{establish_s:?}");
        e.housekeeping(last + SWEEP_PERIOD_MS, 1 << 12, &mut ctl);
        assert_eq!(e.conn_count(), 0, "{establish_s:?}");
        // UDP (VIP:53).
        let mut dgram = udp((CLIENT_MAC, CLIENT, 6000), (LB_MAC, VIP, 53), b"q");
        let t = last + SWEEP_PERIOD_MS;
        assert_eq!(e.handle(&mut dgram, t, &mut ctl), Verdict::Forward);
        let c = only_conn(&e, t);
        assert_eq!((c.proto, c.expires_in_ms), (17, udp_ms), "{establish_s:?}");
        e.housekeeping(t + u64::from(udp_ms) - 1, 1 << 12, &mut ctl);
        assert_eq!(e.conn_count(), 1);
        e.housekeeping(t + u64::from(udp_ms) + SWEEP_PERIOD_MS, 1 << 12, &mut ctl);
        assert_eq!(e.conn_count(), 0);
    }
}

/// `rr_snapshot` with `expire_quiescent_conn` set (or not) and the
/// servers of weight 0 marked quiescent, as the control plane does.
fn quiescent_snapshot(stats: &Stats, weights: &[u32; 2], expire: bool) -> Arc<Snapshot> {
    let policy = ConnPolicy {
        establish_timeout_s: None,
        expire_quiescent: expire,
        quiescent: weights.iter().map(|&w| w == 0).collect(),
    };
    let mut snap = rr_snapshot(stats, weights, None);
    Arc::get_mut(&mut snap).expect("fresh").v4.conn_policy = vec![policy];
    snap
}

#[test]
fn expire_quiescent_conn_drops_and_forgets_connections_of_a_weight_0_server() {
    for expire in [false, true] {
        let stats = Stats::new();
        let (mut e, mut ctl) = rr_engine(&stats, None);
        e.set_snapshot(quiescent_snapshot(&stats, &[1, 1], expire), 0, &mut ctl);
        let c = |port| (CLIENT_MAC, CLIENT, port);
        let v = (LB_MAC, VIP, 80);
        // Two connections to the first server (rr: ports 1 and 3), one to
        // the other.
        let first = sent_to(&mut e, seg(c(1), v, "S"), 1, &mut ctl);
        let other = sent_to(&mut e, seg(c(2), v, "S"), 1, &mut ctl);
        let mut reply_syn = seg(c(3), v, "S");
        assert_eq!(e.handle(&mut reply_syn, 1, &mut ctl), Verdict::Forward);
        let (_, _, _, rs, lport, _, _) = inspect(&reply_syn);
        assert_eq!(rs, first);
        let weights = if first == RS { [0, 1] } else { [1, 0] };
        e.set_snapshot(quiescent_snapshot(&stats, &weights, expire), 2, &mut ctl);
        let (v1, _) = handle(&mut e, seg(c(1), v, "A"), 3, &mut ctl);
        // The server's packet of the other connection to it.
        let rs_mac = if first == RS { RS_MAC } else { RS2_MAC };
        let from_rs = seg((rs_mac, first, 8080), (LB_MAC, LIP, lport), "SA");
        let (v3, _) = handle(&mut e, from_rs, 3, &mut ctl);
        if expire {
            assert_eq!(v1, Verdict::Drop(Drop::QuiescentExpired));
            assert_eq!(v3, Verdict::Drop(Drop::QuiescentExpired));
            assert_eq!(e.drops.get(Drop::QuiescentExpired), 2);
            assert_eq!(e.conn_count(), 1, "both expired at once");
            // Forgotten: the next packet finds no connection.
            let (again, _) = handle(&mut e, seg(c(1), v, "A"), 4, &mut ctl);
            assert_eq!(again, Verdict::Drop(Drop::NoConnection));
        } else {
            assert_eq!((v1, v3), (Verdict::Forward, Verdict::Forward));
            assert_eq!(e.drops.get(Drop::QuiescentExpired), 0);
            assert_eq!(e.conn_count(), 3);
        }
        // The other server's connection is untouched either way.
        assert_eq!(sent_to(&mut e, seg(c(2), v, "A"), 5, &mut ctl), other);
    }
}

#[test]
fn expire_quiescent_conn_expires_connections_of_a_removed_server() {
    let stats = Stats::new();
    let (mut e, mut ctl) = rr_engine(&stats, None);
    e.set_snapshot(quiescent_snapshot(&stats, &[1, 1], true), 0, &mut ctl);
    let c = (CLIENT_MAC, CLIENT, 1);
    let v = (LB_MAC, VIP, 80);
    let first = sent_to(&mut e, seg(c, v, "S"), 1, &mut ctl);
    // The server leaves the service (a failed check without
    // inhibit_on_failure): its connections are expired on their next packet.
    let mut snap = quiescent_snapshot(&stats, &[1, 1], true);
    let keep = usize::from(first == RS);
    if let Some(s) = Arc::get_mut(&mut snap) {
        let svc = &mut s.v4.services[0];
        svc.servers = vec![svc.servers.remove(keep)];
        svc.table = SchedTable::build(Scheduler::Rr, &[1]);
        s.v4.conn_policy[0].quiescent = vec![false].into();
    }
    e.set_snapshot(snap, 2, &mut ctl);
    let (verdict, _) = handle(&mut e, seg(c, v, "A"), 3, &mut ctl);
    assert_eq!(verdict, Verdict::Drop(Drop::QuiescentExpired));
    assert_eq!(e.conn_count(), 0);
}
