//! PROXY protocol golden tests ([`super::proxyproto`]): the first data
//! segment gets the header, sequence numbers move both ways, a client's
//! own header is replaced (or kept by `-insecure` services), and a full
//! segment is shortened to the MTU. Checksums are checked by etherparse.

use super::*;
use crate::command::{ProxyProtocol, ProxyVersion};
use etherparse::TcpOptionElement;

const RS_PORT: u16 = 8080;
const CPORT: u16 = 40123;

fn pp_engine(version: ProxyVersion, insecure: bool) -> (Engine, Burst) {
    let svc = service(
        VIP,
        (80, Protocol::Tcp),
        vec![server(RS, RS_PORT)],
        vec![LIP],
    );
    let mut snap = Snapshot {
        v4: Snapshot4 {
            services: vec![svc],
            owned_vips: vec![VIP],
            local_addrs: vec![LIP],
            neighbours: vec![(RS, LIP)],
            proxy_protocol: vec![Some(ProxyProtocol { version, insecure })],
            ..Snapshot4::default()
        },
        ..Snapshot::default()
    };
    snap.v4.lookup.insert((VIP, 80, 6), 0);
    let mut e = Engine::new(0, LB_MAC, 1024, (40000, 40100), Arc::default());
    let mut ctl = Burst::new(16);
    e.set_snapshot(Arc::new(snap), 0, &mut ctl);
    resolve_rs(&mut e, &mut ctl);
    (e, ctl)
}

/// A TCP segment with explicit numbers and options.
#[allow(clippy::too_many_arguments)]
fn seg(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    sack: Option<(u32, u32)>,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src.0 .0, dst.0 .0)
        .ipv4(src.1.octets(), dst.1.octets(), 64)
        .tcp(src.2, dst.2, seq, 65535);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if let Some(block) = sack {
        b = b
            .options(&[
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::SelectiveAcknowledgement(block, [None, None, None]),
            ])
            .expect("options");
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build");
    out
}

/// (seq, ack, SACK block, payload) of a frame, its checksums checked.
fn tcp_of(frame: &[u8]) -> (u32, u32, Option<(u32, u32)>, Vec<u8>) {
    let _ = inspect(frame);
    let (p, _, _) = checked::checked_ipv4(frame);
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP");
    };
    let sack = t.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::SelectiveAcknowledgement(b, _)) => Some(b),
        _ => None,
    });
    (
        t.sequence_number(),
        t.acknowledgment_number(),
        sack,
        t.payload().to_vec(),
    )
}

struct Flow {
    e: Engine,
    ctl: Burst,
    lport: u16,
}

impl Flow {
    /// A handshake through the engine: client SYN seq 1000, server
    /// SYN-ACK seq 5000, client ACK.
    fn open(version: ProxyVersion, insecure: bool) -> Flow {
        let (mut e, mut ctl) = pp_engine(version, insecure);
        let client = (CLIENT_MAC, CLIENT, CPORT);
        let vip = (LB_MAC, VIP, 80);
        let syn = seg(client, vip, 1000, None, true, None, b"");
        let (v, out) = handle_grow(&mut e, &syn, 0, &mut ctl);
        assert_eq!(v, Verdict::Forward);
        let (_, _, src, dst, lport, dport, _) = inspect(&out);
        assert_eq!((src, dst, dport), (LIP, RS, RS_PORT));
        assert_eq!(out[ETH_LEN + 20 + 12] >> 4, 5, "the SYN has no TOA");
        let mut f = Flow { e, ctl, lport };
        let (seq, ack, _, data) = f.server_sends(5000, 1001, None, b"");
        assert_eq!((seq, ack, data.len()), (5000, 1001, 0));
        let ack = seg(client, vip, 1001, Some(5001), false, None, b"");
        let (v, out) = handle_grow(&mut f.e, &ack, 1, &mut f.ctl);
        assert_eq!(v, Verdict::Forward);
        let (seq, _, _, data) = tcp_of(&out);
        assert_eq!((seq, data.len()), (1001, 0), "a pure ACK gets no header");
        // Nor a TOA option, as in DPVS: the header tells the server.
        assert_eq!(out[ETH_LEN + 20 + 12] >> 4, 5, "the first ACK has no TOA");
        f
    }

    fn client_sends(
        &mut self,
        seq: u32,
        payload: &[u8],
    ) -> (u32, u32, Option<(u32, u32)>, Vec<u8>) {
        let f = seg(
            (CLIENT_MAC, CLIENT, CPORT),
            (LB_MAC, VIP, 80),
            seq,
            Some(5001),
            false,
            None,
            payload,
        );
        let (v, out) = handle_grow(&mut self.e, &f, 1, &mut self.ctl);
        assert_eq!(v, Verdict::Forward);
        tcp_of(&out)
    }

    fn server_sends(
        &mut self,
        seq: u32,
        ack: u32,
        sack: Option<(u32, u32)>,
        payload: &[u8],
    ) -> (u32, u32, Option<(u32, u32)>, Vec<u8>) {
        let syn = payload.is_empty() && seq == 5000;
        let f = seg(
            (RS_MAC, RS, RS_PORT),
            (LB_MAC, LIP, self.lport),
            seq,
            Some(ack),
            syn,
            sack,
            payload,
        );
        let (v, out) = handle_grow(&mut self.e, &f, 1, &mut self.ctl);
        assert_eq!(v, Verdict::Forward);
        tcp_of(&out)
    }
}

fn v1_header() -> Vec<u8> {
    format!("PROXY TCP4 {CLIENT} {VIP} {CPORT} 80\r\n").into_bytes()
}

#[test]
fn the_first_data_segment_carries_the_header_and_sequence_numbers_follow() {
    let mut f = Flow::open(ProxyVersion::V1, false);
    let hdr = v1_header();
    let n = hdr.len() as u32;
    let req = b"GET / HTTP/1.0\r\n\r\n";
    let (seq, _, _, data) = f.client_sends(1001, req);
    assert_eq!(seq, 1001);
    assert_eq!(data, [&hdr[..], &req[..]].concat());
    // The next segment runs n bytes ahead in the server's space.
    let (seq, _, _, data) = f.client_sends(1001 + req.len() as u32, b"more");
    assert_eq!(
        (seq, data.as_slice()),
        (1001 + n + req.len() as u32, &b"more"[..])
    );
    // The server's acknowledgement and SACK block move back by n.
    let end = 1001 + n + req.len() as u32 + 4;
    let (seq, ack, sack, _) = f.server_sends(
        5001,
        end,
        Some((end + 100, end + 200)),
        b"HTTP/1.0 200 OK\r\n",
    );
    assert_eq!((seq, ack), (5001, end - n));
    assert_eq!(sack, Some((end - n + 100, end - n + 200)));
    // A retransmission of the first segment carries the header again.
    let (seq, _, _, data) = f.client_sends(1001, req);
    assert_eq!((seq, data), (1001, [&hdr[..], &req[..]].concat()));
}

#[test]
fn version_2_is_binary_and_carries_the_addresses() {
    let mut f = Flow::open(ProxyVersion::V2, false);
    let (_, _, _, data) = f.client_sends(1001, b"x");
    assert_eq!(data.len(), 28 + 1);
    assert_eq!(&data[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&data[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(&data[16..20], &CLIENT.octets());
    assert_eq!(&data[20..24], &VIP.octets());
    assert_eq!(&data[24..28], &[(CPORT >> 8) as u8, CPORT as u8, 0, 80]);
    assert_eq!(data[28], b'x');
}

#[test]
fn a_clients_own_header_is_replaced_unless_the_service_trusts_it() {
    let forged = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    let req = [&forged[..], b"GET /"].concat();
    // Secure: ours replaces the client's; the delta is the difference.
    let mut f = Flow::open(ProxyVersion::V1, false);
    let hdr = v1_header();
    let (_, _, _, data) = f.client_sends(1001, &req);
    assert_eq!(data, [&hdr[..], b"GET /"].concat());
    let next = 1001 + req.len() as u32;
    let (seq, _, _, _) = f.client_sends(next, b"x");
    assert_eq!(seq, next + hdr.len() as u32 - forged.len() as u32);
    // Insecure, same version: passed on as it is, no shift.
    let mut f = Flow::open(ProxyVersion::V1, true);
    let (_, _, _, data) = f.client_sends(1001, &req);
    assert_eq!(data, req);
    let (seq, _, _, _) = f.client_sends(next, b"x");
    assert_eq!(seq, next);
    // Insecure, other version: replaced.
    let mut f = Flow::open(ProxyVersion::V2, true);
    let (_, _, _, data) = f.client_sends(1001, &req);
    assert_eq!((data.len(), &data[28..]), (28 + 5, &b"GET /"[..]));
}

#[test]
fn a_full_first_segment_is_shortened_to_the_mtu() {
    let mut f = Flow::open(ProxyVersion::V1, false);
    let hdr = v1_header();
    let big: Vec<u8> = (0..1460u32).map(|i| i as u8).collect();
    let (seq, _, _, data) = f.client_sends(1001, &big);
    assert_eq!(seq, 1001);
    // 20 bytes of IP and 20 of TCP: 1460 bytes of payload in all.
    assert_eq!(data.len(), 1460);
    assert_eq!(&data[..hdr.len()], &hdr[..]);
    let kept = 1460 - hdr.len();
    assert_eq!(&data[hdr.len()..], &big[..kept]);
    // The server acknowledges what it got; the client sees the part of
    // its segment that arrived, and resends the rest, shifted.
    let got = 1001 + 1460;
    let (_, ack, _, _) = f.server_sends(5001, got, None, b"");
    assert_eq!(ack, 1001 + kept as u32);
    let (seq, _, _, data) = f.client_sends(1001 + kept as u32, &big[kept..]);
    assert_eq!((seq, data.as_slice()), (got, &big[kept..]));
}
