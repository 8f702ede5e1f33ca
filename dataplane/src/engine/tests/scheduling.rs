//! Scheduling through the engine: QUIC services ([`crate::quic`]:
//! connection migration with `quic`, the gQUIC connection-ID hash with
//! `hash_target qid`) and the least-connection schedulers
//! ([`crate::sched::least`]).

use super::*;
use crate::command::Quic;

const QUIC_PORT: u16 = 443;
const SERVERS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 99, 0, 3),
    Ipv4Addr::new(10, 99, 0, 4),
    Ipv4Addr::new(10, 99, 0, 5),
];

/// An FNAT UDP service VIP:443 over [`SERVERS`] with `scheduler` and
/// QUIC options `quic`; the servers' MACs resolved.
fn quic_engine(scheduler: Scheduler, quic: Quic) -> (Engine, Burst) {
    udp_engine(scheduler, &[1; SERVERS.len()], quic)
}

/// [`quic_engine`] with the servers' `weights`.
fn udp_engine(scheduler: Scheduler, weights: &[u32], quic: Quic) -> (Engine, Burst) {
    let mut svc = service(
        VIP,
        (QUIC_PORT, Protocol::Udp),
        SERVERS.iter().map(|&a| server(a, QUIC_PORT)).collect(),
        vec![LIP],
    );
    svc.table = SchedTable::build(scheduler, weights);
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![svc],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: SERVERS.iter().map(|&a| (a, LIP)).collect(),
            quic: vec![quic],
            ..Snapshot4::default()
        },
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, QUIC_PORT, 17), 0);
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(Arc::new(snap), 0, &mut ctl);
    for (i, &rs) in SERVERS.iter().enumerate() {
        let mac = MacAddr([2, 0x99, 0, 0, 1, i as u8]);
        let mut reply = arp(ArpOperation::Reply, mac, rs, LIP);
        assert_eq!(e.handle(&mut reply, 1, &mut ctl), Verdict::Ignore);
    }
    (e, ctl)
}

/// The server the engine sends a datagram `payload` from `client:sport`
/// to (FNAT: the forwarded frame's destination address).
fn server_for(
    e: &mut Engine,
    ctl: &mut Burst,
    client: Ipv4Addr,
    sport: u16,
    payload: &[u8],
) -> Ipv4Addr {
    let mut f = udp(
        (CLIENT_MAC, client, sport),
        (LB_MAC, VIP, QUIC_PORT),
        payload,
    );
    assert_eq!(e.handle(&mut f, 2, ctl), Verdict::Forward);
    let (_, _, src, dst, _, dport, _) = inspect(&f);
    assert_eq!((src, dport), (LIP, QUIC_PORT));
    dst
}

/// A connection ID in DPVS's format naming `rs` (4 address bytes, no
/// port), 12 bytes long.
fn cid_naming(rs: Ipv4Addr) -> Vec<u8> {
    let a = rs.octets();
    let mut c = vec![0x5au8; 12];
    c[1] = (3 << 5) | (a[0] >> 4);
    for i in 0..4 {
        let next = a.get(i + 1).map_or(0x0a, |b| b >> 4);
        c[2 + i] = (a[i] << 4) | next;
    }
    c
}

/// A QUIC 1-RTT (short header) packet to connection ID `cid`.
fn short_packet(cid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x40 | 0x01];
    p.extend_from_slice(cid);
    p.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55]);
    p
}

#[test]
fn a_migrating_quic_client_goes_back_to_the_server_its_connection_id_names() {
    let migrate = Quic {
        migrate: true,
        cid_hash: false,
    };
    let (mut e, mut ctl) = quic_engine(Scheduler::Rr, migrate);
    // Round robin would send the next new flow to SERVERS[0]; the
    // connection ID names SERVERS[2], so it goes there (the client's new
    // address and port: a migrated connection).
    let to_third = short_packet(&cid_naming(SERVERS[2]));
    assert_eq!(
        server_for(
            &mut e,
            &mut ctl,
            Ipv4Addr::new(10, 99, 7, 1),
            6001,
            &to_third
        ),
        SERVERS[2]
    );
    assert_eq!(
        server_for(
            &mut e,
            &mut ctl,
            Ipv4Addr::new(10, 99, 7, 2),
            6002,
            &to_third
        ),
        SERVERS[2]
    );
    // Its later packets follow the connection, as any UDP flow.
    assert_eq!(
        server_for(&mut e, &mut ctl, Ipv4Addr::new(10, 99, 7, 2), 6002, b"x"),
        SERVERS[2]
    );
    // An ID naming no server of the service (or no ID: a client's
    // Initial with its own short random ID) is scheduled as usual.
    let nobody = short_packet(&cid_naming(Ipv4Addr::new(10, 99, 0, 9)));
    let picks: Vec<Ipv4Addr> = (0..3)
        .map(|i| server_for(&mut e, &mut ctl, CLIENT, 7000 + i, &nobody))
        .collect();
    assert_eq!(picks, SERVERS, "round robin");
    let initial = [0xc3, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0];
    assert_eq!(
        server_for(&mut e, &mut ctl, CLIENT, 7100, &initial),
        SERVERS[0]
    );

    // Without `quic` the ID is not looked at.
    let (mut plain, mut ctl) = quic_engine(Scheduler::Rr, Quic::default());
    assert_eq!(
        server_for(&mut plain, &mut ctl, CLIENT, 6001, &to_third),
        SERVERS[0]
    );
}

#[test]
fn conhash_with_hash_target_qid_keys_the_ring_by_the_gquic_connection_id() {
    let gquic = |cid: u64| {
        let mut p = vec![0x08];
        p.extend_from_slice(&cid.to_ne_bytes());
        p.extend_from_slice(b"payload");
        p
    };
    let qid = Quic {
        migrate: false,
        cid_hash: true,
    };
    let (mut e, mut ctl) = quic_engine(Scheduler::Conhash, qid);
    // One connection ID from many client addresses: one server.
    let first = server_for(&mut e, &mut ctl, CLIENT, 5000, &gquic(0xfeed));
    for i in 1..20u8 {
        let client = Ipv4Addr::new(10, 98, i, 1);
        assert_eq!(
            server_for(
                &mut e,
                &mut ctl,
                client,
                5000 + u16::from(i),
                &gquic(0xfeed)
            ),
            first
        );
    }
    // Many IDs from one client address reach every server.
    let mut seen: Vec<Ipv4Addr> = (0..64u64)
        .map(|i| server_for(&mut e, &mut ctl, CLIENT, 6000 + i as u16, &gquic(i * 7919)))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, SERVERS, "IDs spread over the ring");
    // Without an ID (public flags bit 0x08 clear) the client address is
    // the key, as `hash_target sip`: one server for one client.
    let no_id = [0x00, 1, 2, 3];
    let by_addr: Vec<Ipv4Addr> = (0..16)
        .map(|i| {
            server_for(
                &mut e,
                &mut ctl,
                Ipv4Addr::new(10, 97, 0, 1),
                7000 + i,
                &no_id,
            )
        })
        .collect();
    assert!(by_addr.iter().all(|&s| s == by_addr[0]), "{by_addr:?}");

    // `hash_target sip`: one client address, one server, whatever the ID.
    let (mut sip, mut ctl) = quic_engine(Scheduler::Conhash, Quic::default());
    let picks: Vec<Ipv4Addr> = (0..16u64)
        .map(|i| {
            server_for(
                &mut sip,
                &mut ctl,
                CLIENT,
                6000 + i as u16,
                &gquic(i * 7919),
            )
        })
        .collect();
    assert!(picks.iter().all(|&s| s == picks[0]), "{picks:?}");
}

#[test]
fn wlc_and_lc_send_new_flows_to_the_least_loaded_server() {
    // wlc with weights 1, 3, 0: the quiescent third never gets one, and
    // the others' connections stay at 1 : 3 whatever the order.
    let (mut e, mut ctl) = udp_engine(Scheduler::Wlc, &[1, 3, 0], Quic::default());
    let mut counts = [0usize; 3];
    for i in 0..40u16 {
        let rs = server_for(&mut e, &mut ctl, CLIENT, 9000 + i, b"q");
        let k = SERVERS.iter().position(|&s| s == rs).expect("a server");
        counts[k] += 1;
        assert!(
            (3 * counts[0]).saturating_sub(3) <= counts[1] && counts[1] <= 3 * counts[0],
            "{counts:?}"
        );
    }
    assert_eq!(counts, [10, 30, 0]);
    // lc ignores weights: equal counts.
    let (mut e, mut ctl) = udp_engine(Scheduler::Lc, &[1, 3, 5], Quic::default());
    let picks: Vec<Ipv4Addr> = (0..6u16)
        .map(|i| server_for(&mut e, &mut ctl, CLIENT, 9000 + i, b"q"))
        .collect();
    assert_eq!(
        picks,
        [SERVERS, SERVERS].concat(),
        "fewest first, first of equals"
    );
}
