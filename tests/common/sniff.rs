//! Capture helpers for the end-to-end tests: a [`Sniffer`] thread in a lab
//! host's namespace sees every frame (AF_PACKET) and runs a handler on it;
//! for TUN ([`decap`]) it stands in for the missing ipip module by checking
//! every IPIP packet (outer header and inner packet, checksums by
//! etherparse) and handing the inner packet to the host's stack.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
    SockType, SockaddrIn,
};
use nix::sys::time::TimeVal;

use super::{Lab, VIP};

/// The load balancer's address in the lab.
pub const LB: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The client's address in the lab.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// What a sniffer's handler made of one captured frame.
pub enum Seen<'a> {
    /// Not what the test looks at.
    Other,
    /// As expected; hand this IPv4 packet to the host's stack.
    Deliver(&'a [u8]),
    /// As expected; counted.
    Good,
    /// As expected; counted, and under this kind too ([`Report::kinds`]).
    GoodAs(&'static str),
    /// Wrong, and why.
    Bad(String),
}

/// What a sniffer saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Frames the handler found as expected (delivered ones included).
    pub good: usize,
    /// Everything wrong with any frame.
    pub problems: Vec<String>,
    /// Good frames by the kind their handler gave ([`Seen::GoodAs`]).
    pub kinds: std::collections::BTreeMap<&'static str, usize>,
}

impl Report {
    /// Good frames of kind `kind`.
    pub fn kind(&self, kind: &str) -> usize {
        self.kinds.get(kind).copied().unwrap_or(0)
    }
}

/// A thread in a lab host's namespace that captures every frame
/// (AF_PACKET) and runs `handler` on it; for TUN it stands in for the
/// missing ipip module by delivering the inner packets.
pub struct Sniffer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Report>>,
}

impl Sniffer {
    pub fn start(
        lab: &Lab,
        host: &str,
        mut handler: impl FnMut(&[u8]) -> Seen<'_> + Send + 'static,
    ) -> Sniffer {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = format!("/run/netns/{}", lab.ns(host));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut report = Report::default();
            let sockets = open_in(&ns);
            let _ = ready_tx.send(sockets.as_ref().err().cloned());
            let Ok((rx, tx)) = sockets else {
                return report;
            };
            let mut buf = [0u8; 2048];
            let end = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                let Ok(n) = recv(rx.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
                    continue;
                };
                match handler(&buf[..n]) {
                    Seen::Other => {}
                    Seen::Good => report.good += 1,
                    Seen::GoodAs(kind) => {
                        report.good += 1;
                        *report.kinds.entry(kind).or_default() += 1;
                    }
                    Seen::Deliver(inner) => {
                        let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
                        let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
                        match sendto(tx.as_raw_fd(), inner, &to, MsgFlags::empty()) {
                            Ok(_) => report.good += 1,
                            Err(e) => report.problems.push(format!("inject: {e}")),
                        }
                    }
                    Seen::Bad(p) => report.problems.push(p),
                }
            }
            report
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(None) => {}
            other => panic!("sniffer in {host} did not start: {other:?}"),
        }
        Sniffer {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Enters the namespace at `ns` (this thread only) and opens a capture
/// socket (every frame, 100 ms receive timeout) and an IP_HDRINCL raw
/// socket to hand packets to the local stack.
pub fn open_in(ns: &str) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), String> {
    let f = std::fs::File::open(ns).map_err(|e| format!("{ns}: {e}"))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns {ns}: {e}"))?;
    let rx = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(|e| format!("AF_PACKET socket: {e}"))?;
    setsockopt(&rx, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let tx = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Raw,
    )
    .map_err(|e| format!("raw socket: {e}"))?;
    Ok((rx, tx))
}

/// The TUN sniffer: IPIP packets to `rs` are checked and delivered.
pub fn decap(frame: &[u8], rs: Ipv4Addr) -> Seen<'_> {
    match check_ipip(frame, rs) {
        Ok(None) => Seen::Other,
        Ok(Some(inner)) => Seen::Deliver(inner),
        Err(p) => Seen::Bad(p),
    }
}

/// `Ok(None)`: not an IPIP packet to `rs`. `Ok(Some(inner))`: an IPIP
/// packet as dpvsd must build it (outer LB → RS, protocol 4, valid
/// checksum, TTL/DF copied from the inner packet, no other payload; inner
/// client → VIP:8080 TCP with valid checksums). `Err`: what is wrong.
pub fn check_ipip(frame: &[u8], rs: Ipv4Addr) -> Result<Option<&[u8]>, String> {
    use etherparse::{EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, TcpHeaderSlice};
    let Ok(eth) = Ethernet2HeaderSlice::from_slice(frame) else {
        return Ok(None);
    };
    if eth.ether_type() != EtherType::IPV4 {
        return Ok(None);
    }
    let l3 = &frame[eth.slice().len()..];
    let Ok(outer) = Ipv4HeaderSlice::from_slice(l3) else {
        return Ok(None);
    };
    if outer.protocol() != IpNumber::IPV4 || outer.destination_addr() != rs {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let oh = outer.to_header();
    expect(
        oh.calc_header_checksum() == outer.header_checksum(),
        "outer IPv4 checksum".into(),
    );
    expect(
        outer.source_addr() == LB,
        format!("outer source {} (want {LB})", outer.source_addr()),
    );
    expect(
        eth.source() == [2, 0x99, 0, 0, 0, 1],
        format!("source MAC {:x?}", eth.source()),
    );
    let ohl = outer.slice().len();
    let end = usize::from(outer.total_len()).min(l3.len());
    let inner_bytes = l3.get(ohl..end).unwrap_or_default();
    let inner =
        Ipv4HeaderSlice::from_slice(inner_bytes).map_err(|e| format!("inner IPv4 header: {e}"))?;
    let ih = inner.to_header();
    expect(
        ih.calc_header_checksum() == inner.header_checksum(),
        "inner IPv4 checksum".into(),
    );
    expect(
        usize::from(outer.total_len()) == usize::from(inner.total_len()) + ohl,
        format!(
            "outer length {} for inner {}",
            outer.total_len(),
            inner.total_len()
        ),
    );
    expect(
        outer.ttl() == inner.ttl() && outer.dont_fragment() == inner.dont_fragment(),
        "outer TTL/DF not copied from the inner packet".into(),
    );
    expect(
        inner.source_addr() == CLIENT && inner.destination_addr().to_string() == VIP,
        format!(
            "inner {} → {} (want {CLIENT} → {VIP})",
            inner.source_addr(),
            inner.destination_addr()
        ),
    );
    expect(
        inner.protocol() == IpNumber::TCP,
        format!("inner protocol {:?}", inner.protocol()),
    );
    let ihl = inner.slice().len();
    let l4 = inner_bytes
        .get(ihl..usize::from(inner.total_len()))
        .unwrap_or_default();
    match TcpHeaderSlice::from_slice(l4) {
        Ok(t) => {
            let payload = &l4[t.slice().len()..];
            let sum = t.to_header().calc_checksum_ipv4(&ih, payload).ok();
            expect(sum == Some(t.checksum()), "inner TCP checksum".into());
            expect(
                t.destination_port() == 8080,
                format!("inner port {}", t.destination_port()),
            );
        }
        Err(e) => expect(false, format!("inner TCP header: {e}")),
    }
    if problems.is_empty() {
        Ok(Some(inner_bytes))
    } else {
        Err(problems.join(", "))
    }
}

/// A TOA sniffer for FNAT segments `lip` → :8080, where DPVS puts the TOA
/// (kind 254, length `len`: 8 for an IPv4 client, 20 for an IPv6 one):
/// every SYN must carry one; a segment with one must otherwise be an ACK
/// without FIN or RST; the TOA must hold a port and `client`'s address
/// bytes, and the segment a valid TCP checksum. Good TOA segments are
/// counted by kind: `"syn"`, `"ack"` (no payload) and `"data"`.
pub fn toa<'a>(frame: &'a [u8], lip: Ipv4Addr, len: u8, client: &[u8]) -> Seen<'a> {
    let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame) else {
        return Seen::Other;
    };
    let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
        (p.net, p.transport)
    else {
        return Seen::Other;
    };
    let h = ip.header();
    if h.source_addr() != lip || t.destination_port() != 8080 {
        return Seen::Other;
    }
    let opts = t.options();
    let Some(at) = opts.windows(2).position(|w| w == [254, len]) else {
        return match t.syn() {
            true => Seen::Bad(format!("a SYN without TOA: {opts:?}")),
            false => Seen::Other,
        };
    };
    let kind = match (t.syn(), t.ack(), t.payload().is_empty()) {
        _ if t.fin() || t.rst() => return Seen::Bad(format!("TOA on a FIN or RST: {opts:?}")),
        (true, false, _) => "syn",
        (false, true, true) => "ack",
        (false, true, false) => "data",
        _ => return Seen::Bad(format!("TOA on a SYN-ACK or non-ACK: {opts:?}")),
    };
    let sum = t
        .to_header()
        .calc_checksum_ipv4(&h.to_header(), t.payload())
        .ok();
    if sum != Some(t.checksum()) {
        return Seen::Bad("TCP checksum of a TOA segment".into());
    }
    match opts.get(at + 2..at + usize::from(len)) {
        Some(v) if v[2..] == *client && v[..2] != [0, 0] => Seen::GoodAs(kind),
        v => Seen::Bad(format!("TOA value {v:?}")),
    }
}

/// Checks what the TOA sniffers of the two real servers (`rs`, [`toa`])
/// and the client's SYN-ACK sniffer (`client`, [`synack_mss`]) saw of
/// `conns` curl connections: nothing wrong; per connection (handshake
/// ACK, then the request, then ACKs of the reply) the SYN, the handshake
/// ACK and the request carry the TOA, nothing after the client has
/// acknowledged the server's data; every SYN-ACK offered the lowered MSS.
pub fn assert_toa_per_connection(rs: [&Report; 2], client: &Report, conns: u64) {
    assert!(
        rs.iter().all(|r| r.problems.is_empty()) && client.problems.is_empty(),
        "{rs:?} {client:?}"
    );
    let kind = |k| rs.iter().map(|r| r.kind(k) as u64).sum::<u64>();
    assert_eq!(
        (kind("syn"), kind("ack"), kind("data")),
        (conns, conns, conns),
        "TOA segments (SYN, ACK, data) vs connections"
    );
    assert_eq!(client.good as u64, conns, "SYN-ACKs with the lowered MSS");
}

/// A SYN-ACK sniffer for the client: every SYN-ACK from `vip`:`vport`
/// (IPv4 or IPv6) must offer MSS `mss` (the real server's, lowered by the
/// TOA's length) and have a valid TCP checksum.
pub fn synack_mss(frame: &[u8], vip: std::net::IpAddr, vport: u16, mss: u16) -> Seen<'_> {
    use etherparse::{NetSlice, TcpOptionElement, TransportSlice};
    let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame) else {
        return Seen::Other;
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        return Seen::Other;
    };
    let (src, sum) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            let sum = t.to_header().calc_checksum_ipv4(&h, t.payload()).ok();
            (std::net::IpAddr::from(ip.header().source_addr()), sum)
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            let sum = t.to_header().calc_checksum_ipv6(&h, t.payload()).ok();
            (std::net::IpAddr::from(ip.header().source_addr()), sum)
        }
        _ => return Seen::Other,
    };
    if src != vip || t.source_port() != vport || !(t.syn() && t.ack()) {
        return Seen::Other;
    }
    if sum != Some(t.checksum()) {
        return Seen::Bad("TCP checksum of a SYN-ACK".into());
    }
    let offered = t.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    match offered {
        Some(m) if m == mss => Seen::Good,
        other => Seen::Bad(format!("SYN-ACK MSS {other:?}, want {mss}")),
    }
}

/// Sends `n` requests to `url` through TUN real servers whose sniffers
/// `rs1`, `rs2` ([`decap`]) deliver the tunnelled packets, and checks
/// that every IPIP packet was sound, no request failed, both servers
/// answered, each request crossed the tunnel (SYN, ACK, request, FIN at
/// least), every packet dpvsd tunnelled arrived and no reply came back
/// through dpvsd.
pub fn assert_tunnelled(lab: &Lab, (rs1, rs2): (Sniffer, Sniffer), url: &str, n: usize) {
    let (a, b, failed) = lab.traffic_to(url, n);
    // Let the last ACKs of the closing connections through the tunnel.
    std::thread::sleep(Duration::from_millis(500));
    let (r1, r2) = (rs1.finish(), rs2.finish());
    println!("rs1 {r1:?}\nrs2 {r2:?}");
    assert!(
        r1.problems.is_empty() && r2.problems.is_empty(),
        "bad IPIP packets: rs1 {:?} rs2 {:?}",
        r1.problems,
        r2.problems
    );
    assert_eq!(failed, 0, "TUN requests failed (rs1={a} rs2={b})");
    assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
    let (conns, inp, outp) = super::service_stats(lab);
    assert!(conns >= n as u64, "connections {conns} < {n}");
    let good = r1.good + r2.good;
    assert!(good >= 3 * n, "decapsulated {} + {}", r1.good, r2.good);
    assert_eq!(
        inp as usize, good,
        "every packet dpvsd tunnelled arrived, and nothing else"
    );
    assert_eq!(outp, 0, "TUN replies must bypass the director");
}
