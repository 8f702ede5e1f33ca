//! Protection through the engine: allow/deny address groups and real-server
//! thresholds (golden verdicts over real frames; checksums of forwarded
//! frames verified with etherparse).

mod protect_common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::acl::AccessList;
use dataplane::engine::Verdict;
use dataplane::stats::Drop;
use dataplane::threshold::Threshold;
use dataplane::{AddrRange, Protection, Thresholds};

use protect_common::*;

fn deny(addrs: &[Ipv4Addr]) -> Protection {
    Protection {
        deny: addrs.iter().map(|&a| AddrRange::one(a.into())).collect(),
        ..Protection::default()
    }
}

#[test]
fn denied_client_cannot_open_others_can() {
    let bad = Ipv4Addr::new(11, 0, 0, 5);
    let good = Ipv4Addr::new(11, 0, 0, 6);
    let mut lab = Lab::new(1, |snap| {
        snap.v4.acl = vec![AccessList::new(&deny(&[bad]))];
    });
    let (v, _) = lab.send(syn(bad, 1000));
    assert_eq!(v, Verdict::Drop(Drop::AclDenied));
    assert_eq!(lab.drops.get(Drop::AclDenied), 1);
    let (v, out) = lab.send(syn(good, 1000));
    assert_eq!(v, Verdict::Forward);
    let t = tcp_of(&out);
    assert_eq!((t.src, t.dst), (LIP, rs(0)));
    assert_eq!(lab.engine.conn_count(), 1);
}

#[test]
fn allow_list_admits_only_its_clients() {
    let p = Protection {
        allow: vec![AddrRange {
            first: Ipv4Addr::new(11, 0, 0, 0).into(),
            last: Ipv4Addr::new(11, 0, 0, 127).into(),
        }],
        ..Protection::default()
    };
    let mut lab = Lab::new(1, |snap| snap.v4.acl = vec![AccessList::new(&p)]);
    assert_eq!(
        lab.send(syn(Ipv4Addr::new(11, 0, 0, 128), 1)).0,
        Verdict::Drop(Drop::AclNotAllowed)
    );
    assert_eq!(
        lab.send(syn(Ipv4Addr::new(11, 0, 0, 127), 1)).0,
        Verdict::Forward
    );
    // UDP: the first datagram opens the connection; it is filtered too.
    assert_eq!(
        lab.send(udp(Ipv4Addr::new(12, 0, 0, 1), 5000)).0,
        Verdict::Drop(Drop::AclNotAllowed)
    );
    assert_eq!(lab.drops.get(Drop::AclNotAllowed), 2);
}

#[test]
fn existing_connections_survive_a_new_deny_list() {
    let client = Ipv4Addr::new(11, 0, 0, 9);
    let mut lab = Lab::new(1, |_| {});
    assert_eq!(lab.send(syn(client, 2000)).0, Verdict::Forward);
    // The client is denied from now on (a reload, say).
    lab.republish(|snap| snap.v4.acl = vec![AccessList::new(&deny(&[client]))]);
    let (v, out) = lab.send(ack(client, 2000));
    assert_eq!(v, Verdict::Forward, "its open connection continues");
    assert_eq!(tcp_of(&out).dst, rs(0));
    assert_eq!(
        lab.send(syn(client, 2001)).0,
        Verdict::Drop(Drop::AclDenied),
        "but it opens no new one"
    );
}

fn limits(upper: u32, lower: u32, servers: usize) -> Option<Box<[Option<Arc<Threshold>>]>> {
    Some(
        (0..servers)
            .map(|_| Threshold::new(Thresholds { upper, lower }).map(Arc::new))
            .collect(),
    )
}

#[test]
fn overloaded_server_is_skipped_then_taken_back_below_lthreshold() {
    // Two servers, rr; each may hold 2 connections, and takes new ones
    // again below 1.
    let mut lab = Lab::new(2, |snap| snap.v4.limits = vec![limits(2, 1, 2)]);
    let client = Ipv4Addr::new(11, 0, 0, 1);
    let mut to = Vec::new();
    for port in 0..5 {
        let (v, out) = lab.send(syn(client, 3000 + port));
        to.push(match v {
            Verdict::Forward => Some(tcp_of(&out).dst),
            Verdict::Drop(d) => {
                assert_eq!(d, Drop::ServerOverloaded);
                None
            }
            Verdict::Ignore => panic!("ignored"),
        });
    }
    let (a, b) = (Some(rs(0)), Some(rs(1)));
    assert_eq!(to, [a, b, a, b, None]);
    assert_eq!(lab.drops.get(Drop::ServerOverloaded), 1);
    // One connection of server 0 closes: 1 left, not below lthreshold 1.
    // (Established first: a RST in SYN_RECV leaves it there, as LVS/DPVS.)
    for port in [3000, 3002] {
        assert_eq!(lab.send(ack(client, port)).0, Verdict::Forward);
    }
    assert_eq!(lab.send(rst(client, 3000)).0, Verdict::Forward);
    lab.expire(3000 + 3_001);
    assert_eq!(
        lab.send(syn(client, 4000)).0,
        Verdict::Drop(Drop::ServerOverloaded)
    );
    // The other one closes too: server 0 is back.
    assert_eq!(lab.send(rst(client, 3002)).0, Verdict::Forward);
    lab.expire(10_000);
    let (v, out) = lab.send(syn(client, 4001));
    assert_eq!(v, Verdict::Forward);
    assert_eq!(tcp_of(&out).dst, rs(0));
}

#[test]
fn without_limits_nothing_is_refused() {
    let mut lab = Lab::new(2, |_| {});
    for port in 0..50 {
        assert_eq!(
            lab.send(syn(Ipv4Addr::new(11, 0, 0, 1), 5000 + port)).0,
            Verdict::Forward
        );
    }
}

#[test]
fn thresholds_count_connections_of_every_worker() {
    // Two workers share a server's gauge: the limit is on their sum.
    let stats = Arc::new(dataplane::stats::Traffic::new(2));
    let t = Threshold::new(Thresholds { upper: 4, lower: 0 }).expect("limit");
    let mut w0 = Lab::with_stats(0, Arc::clone(&stats), |s| {
        s.v4.limits = vec![limits(4, 0, 1)]
    });
    let mut w1 = Lab::with_stats(1, Arc::clone(&stats), |s| {
        s.v4.limits = vec![limits(4, 0, 1)]
    });
    for port in 0..2 {
        assert_eq!(
            w0.send(syn(Ipv4Addr::new(11, 0, 0, 1), port)).0,
            Verdict::Forward
        );
        assert_eq!(
            w1.send(syn(Ipv4Addr::new(11, 0, 0, 2), port)).0,
            Verdict::Forward
        );
    }
    assert_eq!(stats.active(), 4);
    assert!(!t.admits_server(&stats));
    assert_eq!(
        w0.send(syn(Ipv4Addr::new(11, 0, 0, 1), 99)).0,
        Verdict::Drop(Drop::ServerOverloaded)
    );
}
