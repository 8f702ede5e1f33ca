//! SYN proxy golden tests: the whole exchange through the engine, every
//! emitted frame checked field by field (checksums by etherparse).

mod protect_common;

use std::net::Ipv4Addr;

use dataplane::engine::Verdict;
use dataplane::stats::Drop;

use protect_common::*;

const CLIENT: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 1);
const CPORT: u16 = 40_000;
const ISN: u32 = 1000;
const RS_ISN: u32 = 5_000_000;

fn proxied_lab() -> Lab {
    Lab::new(1, |snap| {
        snap.v4.synproxy = vec![true];
        snap.syn_cookie_key = [7, 11];
    })
}

fn from_client(port: u16, seq: u32, f: Flags, mss: Option<u16>, payload: &[u8]) -> Vec<u8> {
    tcp_frame(CLIENT_MAC, (CLIENT, port), (VIP, 80), seq, f, mss, payload)
}

fn from_rs(lport: u16, seq: u32, f: Flags, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        rs_mac(0),
        (rs(0), 8080),
        (LIP, lport),
        seq,
        f,
        None,
        payload,
    )
}

const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];
const MSS_1452: [u8; 4] = [2, 4, 0x05, 0xac];

/// DPVS's TOA carrying the client at `port`: what our SYN and ACK to the
/// real server, and the client segments acknowledging its SYN-ACK, carry
/// first (the lab's service is FNAT without PROXY protocol).
fn toa(port: u16) -> Vec<u8> {
    let mut t = vec![254, 8];
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&CLIENT.octets());
    t
}

/// Steps 1–3: the client's handshake with the cookie; returns the cookie
/// and the SYN sent to the real server.
fn handshake(lab: &mut Lab, port: u16) -> (u32, Tcp) {
    handshake_with(lab, port, b"")
}

/// [`handshake`] whose cookie ACK carries `data`.
fn handshake_with(lab: &mut Lab, port: u16, data: &[u8]) -> (u32, Tcp) {
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let (v, out) = lab.send(from_client(port, ISN, syn, Some(1460), b""));
    assert_eq!(v, Verdict::Forward);
    let synack = tcp_of(&out);
    assert_eq!(
        (synack.src_mac, synack.dst_mac, synack.src, synack.dst),
        (LB_MAC, CLIENT_MAC, VIP, CLIENT),
        "SYN-ACK from the VIP to the client"
    );
    assert_eq!((synack.sport, synack.dport), (80, port));
    assert!(synack.syn && !synack.rst && !synack.fin);
    assert_eq!(synack.ack, Some(ISN + 1));
    assert_eq!(
        synack.options, MSS_1452,
        "only the MSS is offered, the client's less the TOA's 8 bytes"
    );
    assert!(synack.payload.is_empty());
    assert_eq!(lab.engine.conn_count(), 0, "a SYN creates no state");
    let cookie = synack.seq;

    let ack = Flags {
        ack: Some(cookie.wrapping_add(1)),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_client(port, ISN + 1, ack, None, data));
    assert_eq!(v, Verdict::Forward);
    let to_rs = tcp_of(&out);
    assert_eq!(
        (
            to_rs.src_mac,
            to_rs.dst_mac,
            to_rs.src,
            to_rs.dst,
            to_rs.dport
        ),
        (LB_MAC, rs_mac(0), LIP, rs(0), 8080),
        "SYN from the LIP to the real server"
    );
    assert!(to_rs.syn && to_rs.ack.is_none() && !to_rs.rst);
    assert_eq!(to_rs.seq, ISN, "the client's ISN");
    assert_eq!(
        to_rs.options,
        [&toa(port)[..], &MSS_1460].concat(),
        "the client's TOA (DPVS gives every SYN one), the MSS the cookie carried"
    );
    assert_eq!(to_rs.window, 29200, "the client's window");
    assert_eq!(lab.engine.conn_count(), 1);
    (cookie, to_rs)
}

#[test]
fn whole_exchange_golden() {
    let mut lab = proxied_lab();
    let (cookie, to_rs) = handshake(&mut lab, CPORT);
    let lport = to_rs.sport;

    // Data before the real server answered: held, and our SYN goes out
    // again in case it was lost.
    let data_ack = Flags {
        ack: Some(cookie.wrapping_add(1)),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_client(CPORT, ISN + 1, data_ack, None, b"GET"));
    assert_eq!(v, Verdict::Forward);
    assert_eq!(tcp_of(&out), to_rs, "the same SYN again");
    assert_eq!(lab.drops.get(Drop::SynProxyPending), 0, "held, not dropped");
    lab.ctl.clear();

    // Step 4: the real server's SYN-ACK is answered by us, not the client.
    let synack = Flags {
        syn: true,
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_rs(lport, RS_ISN, synack, b""));
    assert_eq!(v, Verdict::Forward);
    let ack = tcp_of(&out);
    assert_eq!(
        (
            ack.src_mac,
            ack.dst_mac,
            ack.src,
            ack.dst,
            ack.sport,
            ack.dport
        ),
        (LB_MAC, rs_mac(0), LIP, rs(0), lport, 8080),
        "the ACK goes back to the real server"
    );
    assert!(!ack.syn && !ack.rst);
    assert_eq!((ack.seq, ack.ack), (ISN + 1, Some(RS_ISN + 1)));
    // It stands for the client's ACK, which DPVS replays with a TOA.
    assert_eq!(ack.options, toa(CPORT));
    assert!(ack.payload.is_empty());
    assert_eq!(ack.window, 29200);
    // The held data follows it, in the server's sequence space.
    let held: Vec<Tcp> = lab.ctl.frames().iter().map(|f| tcp_of(f.data())).collect();
    assert_eq!(held.len(), 1, "{held:?}");
    let d = &held[0];
    assert_eq!(
        (d.dst_mac, d.src, d.dst, d.sport, d.dport),
        (rs_mac(0), LIP, rs(0), lport, 8080)
    );
    assert_eq!(
        (d.seq, d.ack, d.payload.as_slice()),
        (ISN + 1, Some(RS_ISN + 1), &b"GET"[..])
    );
    assert_eq!(d.options, toa(CPORT), "it acknowledges the SYN-ACK exactly");
    lab.ctl.clear();

    // Our ACK was lost: the server resends its SYN-ACK, we ACK it again
    // and the client hears nothing of it.
    let (v, out) = lab.send(from_rs(lport, RS_ISN, synack, b""));
    assert_eq!(v, Verdict::Forward);
    assert_eq!(tcp_of(&out), ack);

    // Client data: its ACK moves into the real server's space.
    let (v, out) = lab.send(from_client(CPORT, ISN + 1, data_ack, None, b"GET"));
    assert_eq!(v, Verdict::Forward);
    let d = tcp_of(&out);
    assert_eq!((d.src, d.dst, d.sport, d.dport), (LIP, rs(0), lport, 8080));
    assert_eq!((d.seq, d.ack), (ISN + 1, Some(RS_ISN + 1)));
    assert_eq!(d.options, toa(CPORT));
    assert_eq!(d.payload, b"GET");

    // Server data: its sequence numbers move into the cookie's space.
    let rs_ack = Flags {
        ack: Some(ISN + 4),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_rs(lport, RS_ISN + 1, rs_ack, b"200 OK"));
    assert_eq!(v, Verdict::Forward);
    let r = tcp_of(&out);
    assert_eq!(
        (r.dst_mac, r.src, r.dst, r.sport, r.dport),
        (CLIENT_MAC, VIP, CLIENT, 80, CPORT)
    );
    assert_eq!((r.seq, r.ack), (cookie.wrapping_add(1), Some(ISN + 4)));
    assert_eq!(r.payload, b"200 OK");

    // And the client acknowledges it in the cookie's space.
    let ack2 = Flags {
        ack: Some(cookie.wrapping_add(7)),
        fin: true,
        ..Flags::default()
    };
    let (_, out) = lab.send(from_client(CPORT, ISN + 4, ack2, None, b""));
    let f = tcp_of(&out);
    assert!(f.fin);
    assert_eq!(f.ack, Some(RS_ISN + 7));
    assert!(
        f.options.is_empty(),
        "it acknowledges the server's data: no TOA"
    );
}

#[test]
fn bad_or_stale_cookies_are_dropped_and_counted() {
    let mut lab = proxied_lab();
    let forged = Flags {
        ack: Some(0x1234_5678),
        ..Flags::default()
    };
    let (v, _) = lab.send(from_client(CPORT, ISN + 1, forged, None, b""));
    assert_eq!(v, Verdict::Drop(Drop::SynProxyBadCookie));
    assert_eq!(lab.engine.conn_count(), 0);

    // A real cookie, but for another client port.
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let (_, out) = lab.send(from_client(CPORT, ISN, syn, Some(1460), b""));
    let cookie = tcp_of(&out).seq;
    let ack = Flags {
        ack: Some(cookie.wrapping_add(1)),
        ..Flags::default()
    };
    let (v, _) = lab.send(from_client(CPORT + 1, ISN + 1, ack, None, b""));
    assert_eq!(v, Verdict::Drop(Drop::SynProxyBadCookie));

    // The right one, but too late (cookies live two 64 s ticks).
    lab.now += 4 * 64_000;
    let (v, _) = lab.send(from_client(CPORT, ISN + 1, ack, None, b""));
    assert_eq!(v, Verdict::Drop(Drop::SynProxyBadCookie));
    assert_eq!(lab.drops.get(Drop::SynProxyBadCookie), 3);
    assert_eq!(lab.engine.conn_count(), 0);
}

#[test]
fn clients_without_mss_get_the_minimum_and_denied_clients_nothing() {
    let mut lab = Lab::new(1, |snap| {
        snap.v4.synproxy = vec![true];
        snap.v4.acl = vec![dataplane::acl::AccessList::new(&dataplane::Protection {
            deny: vec![dataplane::AddrRange::one(Ipv4Addr::new(11, 0, 0, 9).into())],
            ..Default::default()
        })];
    });
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let (_, out) = lab.send(from_client(CPORT, ISN, syn, None, b""));
    assert_eq!(tcp_of(&out).options, [2, 4, 0x02, 0x10], "MSS 536 − 8");
    let denied = tcp_frame(
        CLIENT_MAC,
        (Ipv4Addr::new(11, 0, 0, 9), 1),
        (VIP, 80),
        1,
        syn,
        None,
        b"",
    );
    assert_eq!(lab.send(denied).0, Verdict::Drop(Drop::AclDenied));
}

#[test]
fn a_refusing_real_server_resets_the_client_in_its_own_space() {
    let mut lab = proxied_lab();
    let (cookie, to_rs) = handshake(&mut lab, CPORT);
    let rst = Flags {
        rst: true,
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_rs(to_rs.sport, 0, rst, b""));
    assert_eq!(v, Verdict::Forward);
    let r = tcp_of(&out);
    assert!(r.rst);
    assert_eq!(
        (r.dst, r.dport, r.seq),
        (CLIENT, CPORT, cookie.wrapping_add(1))
    );
}

#[test]
fn services_without_syn_proxy_are_untouched() {
    let mut lab = Lab::new(1, |_| {});
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let (v, out) = lab.send(from_client(CPORT, ISN, syn, Some(1460), b""));
    assert_eq!(v, Verdict::Forward);
    let t = tcp_of(&out);
    assert_eq!(
        (t.dst, t.seq),
        (rs(0), ISN),
        "the SYN goes straight to the server"
    );
}

/// Options a client's SYN offered, as bytes: MSS 1460, SACK permitted,
/// timestamps (value `ts`) and window scale 8.
fn rich_syn_options(ts: u32) -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    o.extend_from_slice(&ts.to_be_bytes());
    o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 8]);
    o
}

/// A timestamps option, NOP-padded.
fn ts_option(val: u32, ecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}

/// A client segment to VIP:80 from CPORT with options `opts`.
fn rich_client(seq: u32, window: u16, f: Flags, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    tcp_frame_with(
        CLIENT_MAC,
        (CLIENT, CPORT),
        (VIP, 80),
        (seq, window),
        f,
        opts,
        payload,
    )
}

/// The client's SYN with [`rich_syn_options`] (timestamp 100), then its
/// cookie ACK (window `window`, timestamp 101 echoing ours); returns our
/// SYN-ACK and the SYN that went to the server.
fn rich_handshake(lab: &mut Lab, window: u16) -> (Tcp, Tcp) {
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let (v, out) = lab.send(rich_client(ISN, 29200, syn, &rich_syn_options(100), b""));
    assert_eq!(v, Verdict::Forward);
    let synack = tcp_of(&out);
    let ack = Flags {
        ack: Some(synack.seq.wrapping_add(1)),
        ..Flags::default()
    };
    let echo = ts_option(101, lab.now as u32);
    let (v, out) = lab.send(rich_client(ISN + 1, window, ack, &echo, b""));
    assert_eq!(v, Verdict::Forward);
    (synack, tcp_of(&out))
}

/// Window scale, SACK permitted and timestamps travel in the cookie (as
/// DPVS's) to the real server's SYN; afterwards windows are rescaled,
/// timestamps shifted between the two handshakes' clocks and SACK blocks
/// moved into the server's sequence space.
#[test]
fn client_options_reach_the_server_and_are_reconciled_golden() {
    let mut lab = proxied_lab();
    // The cookie ACK (window 1000 << 8) opens the server side with the
    // client's options: its timestamp value, scale 8, SACK permitted.
    let (synack, to_rs) = rich_handshake(&mut lab, 1000);
    let ours = lab.now as u32;
    let mut want = vec![2, 4, 0x05, 0xac, 4, 2, 8, 10];
    want.extend_from_slice(&ours.to_be_bytes());
    want.extend_from_slice(&100u32.to_be_bytes());
    want.extend_from_slice(&[1, 3, 3, 7]);
    assert_eq!(
        synack.options, want,
        "MSS 1460 − 8, SACK, our timestamp echoing 100, scale 7"
    );
    let cookie = synack.seq;
    let ack = Flags {
        ack: Some(cookie.wrapping_add(1)),
        ..Flags::default()
    };
    assert!(to_rs.syn && to_rs.ack.is_none());
    assert_eq!(to_rs.options, [toa(CPORT), rich_syn_options(101)].concat());
    assert_eq!(
        to_rs.window, 65535,
        "a SYN's window is unscaled: 256000 saturates"
    );

    // The server answers with its own clock (5000) and scale 2.
    let mut rs_opts = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    rs_opts.extend_from_slice(&5000u32.to_be_bytes());
    rs_opts.extend_from_slice(&101u32.to_be_bytes());
    rs_opts.extend_from_slice(&[1, 3, 3, 2]);
    let from_server = |seq, window, f, opts: &[u8], payload: &[u8]| {
        tcp_frame_with(
            rs_mac(0),
            (rs(0), 8080),
            (LIP, to_rs.sport),
            (seq, window),
            f,
            opts,
            payload,
        )
    };
    let synack = Flags {
        syn: true,
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_server(RS_ISN, 29200, synack, &rs_opts, b""));
    assert_eq!(v, Verdict::Forward);
    let our_ack = tcp_of(&out);
    assert_eq!((our_ack.seq, our_ack.ack), (ISN + 1, Some(RS_ISN + 1)));
    assert_eq!(
        our_ack.options,
        [toa(CPORT), ts_option(101, 5000)].concat(),
        "the TOA, the server's clock echoed"
    );
    assert_eq!(our_ack.window, 1000, "both scale by 8 on the server's side");

    // Client data with a SACK block (in the cookie's space).
    let mut opts = ts_option(102, ours + 7);
    opts.extend_from_slice(&[1, 1, 5, 10]);
    opts.extend_from_slice(&cookie.wrapping_add(100).to_be_bytes());
    opts.extend_from_slice(&cookie.wrapping_add(200).to_be_bytes());
    let (v, out) = lab.send(rich_client(ISN + 1, 1000, ack, &opts, b"GET"));
    assert_eq!(v, Verdict::Forward);
    let d = tcp_of(&out);
    let mut want = ts_option(102, 5007);
    want.extend_from_slice(&[1, 1, 5, 10]);
    want.extend_from_slice(&(RS_ISN + 100).to_be_bytes());
    want.extend_from_slice(&(RS_ISN + 200).to_be_bytes());
    // The first client segment the server sees carries the TOA first, as
    // DPVS's tcp_in_add_toa puts it.
    assert_eq!(d.options[..2], [254, 8], "TOA first");
    assert_eq!(
        d.options[8..32],
        want[..],
        "echo and SACK in the server's spaces"
    );
    assert_eq!((d.ack, d.window), (Some(RS_ISN + 1), 1000));
    assert_eq!(d.payload, b"GET");

    // Server data: its clock and window move into what the client knows
    // (100 << 2 = 400 bytes is 3 in scale 7).
    let rs_ack = Flags {
        ack: Some(ISN + 4),
        ..Flags::default()
    };
    let (v, out) = lab.send(from_server(
        RS_ISN + 1,
        100,
        rs_ack,
        &ts_option(5001, 102),
        b"OK",
    ));
    assert_eq!(v, Verdict::Forward);
    let r = tcp_of(&out);
    assert_eq!((r.dst, r.seq), (CLIENT, cookie.wrapping_add(1)));
    assert_eq!(r.options, ts_option(ours + 1, 102));
    assert_eq!(r.window, 3);
    assert_eq!(r.payload, b"OK");
}

/// A server that does not scale: the client's scaled windows are unscaled
/// for it, its windows scaled down for the client; without its
/// timestamps none are translated.
#[test]
fn a_server_without_window_scale_or_timestamps_gets_unscaled_windows() {
    let mut lab = proxied_lab();
    let lport = rich_handshake(&mut lab, 10).1.sport;
    let synack = Flags {
        syn: true,
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let mss = [2, 4, 0x05, 0xb4];
    let server = |seq, window, f, opts: &[u8]| {
        tcp_frame_with(
            rs_mac(0),
            (rs(0), 8080),
            (LIP, lport),
            (seq, window),
            f,
            opts,
            b"",
        )
    };
    let (_, out) = lab.send(server(RS_ISN, 29200, synack, &mss));
    let our_ack = tcp_of(&out);
    assert_eq!(
        our_ack.options,
        toa(CPORT),
        "the TOA; no timestamps without the server's"
    );
    assert_eq!(our_ack.window, 2560, "10 << 8");
    let rs_ack = Flags {
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let (_, out) = lab.send(server(RS_ISN + 1, 1000, rs_ack, &ts_option(9, 9)));
    let r = tcp_of(&out);
    assert_eq!(r.window, 7, "1000 in scale 7");
    assert_eq!(r.options, ts_option(9, 9), "not translated");
}

proptest::proptest! {
    /// Mutated handshake frames (any byte, any length) never panic the
    /// SYN-proxy paths, and whatever is forwarded still parses.
    #[test]
    fn mutated_frames_never_panic(
        edits in proptest::collection::vec((0usize..80, proptest::num::u8::ANY), 0..6),
        cut in 0usize..80,
        which in 0usize..4,
    ) {
        let mut lab = proxied_lab();
        let (cookie, to_rs) = handshake(&mut lab, CPORT);
        let frames = [
            from_client(CPORT + 1, ISN, Flags { syn: true, ..Flags::default() }, Some(1460), b""),
            from_client(CPORT, ISN + 1, Flags { ack: Some(cookie.wrapping_add(1)), ..Flags::default() }, None, b"x"),
            from_rs(to_rs.sport, RS_ISN, Flags { syn: true, ack: Some(ISN + 1), ..Flags::default() }, b""),
            from_client(CPORT + 2, ISN + 1, Flags { ack: Some(cookie), ..Flags::default() }, None, b""),
        ];
        let mut f = frames[which].clone();
        for (at, b) in edits {
            if let Some(x) = f.get_mut(at) {
                *x = b;
            }
        }
        if cut < f.len() && cut > 14 {
            f.truncate(cut);
        }
        let (v, out) = lab.send(f);
        if v == Verdict::Forward {
            proptest::prop_assert!(etherparse::SlicedPacket::from_ethernet(&out).is_ok());
        }
    }
}

#[test]
fn held_data_is_bounded_per_connection_and_in_order() {
    let mut lab = proxied_lab();
    let (cookie, to_rs) = handshake(&mut lab, CPORT);
    let lport = to_rs.sport;
    let data_ack = Flags {
        ack: Some(cookie.wrapping_add(1)),
        ..Flags::default()
    };
    // Six segments while pending: four held, two dropped and counted.
    for i in 0..6u32 {
        let (v, _) = lab.send(from_client(
            CPORT,
            ISN + 1 + i,
            data_ack,
            None,
            &[b'a' + i as u8],
        ));
        assert_eq!(v, Verdict::Forward, "our SYN again");
    }
    assert_eq!(lab.drops.get(Drop::SynProxyPending), 2);
    lab.ctl.clear();
    let synack = Flags {
        syn: true,
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let (v, _) = lab.send(from_rs(lport, RS_ISN, synack, b""));
    assert_eq!(v, Verdict::Forward);
    let held: Vec<Vec<u8>> = lab
        .ctl
        .frames()
        .iter()
        .map(|f| tcp_of(f.data()).payload)
        .collect();
    assert_eq!(
        held,
        [b"a", b"b", b"c", b"d"],
        "the first four, in arrival order"
    );
    // Released frames are gone: a second SYN-ACK releases nothing.
    lab.ctl.clear();
    let _ = lab.send(from_rs(lport, RS_ISN, synack, b""));
    assert!(lab.ctl.frames().is_empty());
}

#[test]
fn data_on_the_cookie_ack_reaches_the_server_after_its_handshake() {
    let mut lab = proxied_lab();
    let (_, to_rs) = handshake_with(&mut lab, CPORT, b"hello");
    assert!(
        to_rs.syn && to_rs.payload.is_empty(),
        "our SYN to the server"
    );
    lab.ctl.clear();
    let synack = Flags {
        syn: true,
        ack: Some(ISN + 1),
        ..Flags::default()
    };
    let _ = lab.send(from_rs(to_rs.sport, RS_ISN, synack, b""));
    let held: Vec<Tcp> = lab.ctl.frames().iter().map(|f| tcp_of(f.data())).collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!((held[0].seq, held[0].ack), (ISN + 1, Some(RS_ISN + 1)));
    assert_eq!(held[0].options, toa(CPORT));
    assert_eq!(held[0].payload, b"hello");
    assert_eq!(lab.drops.get(Drop::SynProxyPending), 0);
}
