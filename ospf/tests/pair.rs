//! Two (or more) speakers on a simulated segment with a fake clock.

use std::collections::{BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use ospf::speaker::{IfaceState, NeighborState};
use ospf::wire::{LsType, LsaBody, LsaRepr, Packet, PacketRepr, RouterLinkType};
use ospf::{
    Action, AnnounceAs, AuthSpec, DropCause, IfaceIdx, InterfaceSpec, NetworkType, Speaker,
    SpeakerSpec,
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 100, 1);

fn addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, i)
}

fn spec(i: u8) -> SpeakerSpec {
    let mut ifs = InterfaceSpec::broadcast("eth0", addr(i), 24);
    ifs.hello_interval = 1;
    ifs.dead_interval = 4;
    ifs.retransmit_interval = 2;
    SpeakerSpec {
        router_id: addr(i),
        area: Ipv4Addr::UNSPECIFIED,
        interfaces: vec![ifs],
        announce_as: AnnounceAs::Stub,
        metric: 10,
        crypto_seq_base: 1000,
    }
}

/// A shared segment: every multicast reaches every other speaker, a unicast
/// only its address.
struct Lab {
    speakers: Vec<Speaker>,
    addrs: Vec<Ipv4Addr>,
    now: Duration,
    queue: VecDeque<(usize, Action)>,
    /// Crashed speakers: no timers, no packets in or out.
    dead: BTreeSet<usize>,
}

impl Lab {
    fn new(specs: Vec<SpeakerSpec>) -> Self {
        let now = Duration::from_secs(100);
        let addrs = specs.iter().map(|s| s.interfaces[0].address).collect();
        let speakers = specs.into_iter().map(|s| Speaker::new(s, now)).collect();
        Lab {
            speakers,
            addrs,
            now,
            queue: VecDeque::new(),
            dead: BTreeSet::new(),
        }
    }

    fn push(&mut self, from: usize, actions: Vec<Action>) {
        self.queue.extend(actions.into_iter().map(|a| (from, a)));
    }

    fn drain(&mut self) {
        let mut budget = 100_000;
        while let Some((from, Action::Send { dst, bytes, .. })) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "packet storm");
            // Everything a speaker sends is well-formed (checksums included).
            let p = Packet::new_checked(&bytes[..]).expect("sent packet length");
            PacketRepr::parse(&p).expect("sent packet parses");
            for to in 0..self.speakers.len() {
                if to == from
                    || self.dead.contains(&to)
                    || self.dead.contains(&from)
                    || (!dst.is_multicast() && dst != self.addrs[to])
                {
                    continue;
                }
                let src = self.addrs[from];
                let out = self.speakers[to].handle_packet(IfaceIdx(0), src, &bytes, self.now);
                self.push(to, out);
            }
        }
    }

    /// Advance the fake clock timer by timer until `until` (simulated).
    fn run_for(&mut self, secs: u64) {
        let end = self.now + Duration::from_secs(secs);
        self.drain();
        loop {
            let next = self
                .speakers
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.dead.contains(i))
                .filter_map(|(_, s)| s.poll_at())
                .min()
                .unwrap_or(end)
                .max(self.now);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            for i in 0..self.speakers.len() {
                if !self.dead.contains(&i)
                    && self.speakers[i].poll_at().is_some_and(|t| t <= self.now)
                {
                    let out = self.speakers[i].on_timer(self.now);
                    self.push(i, out);
                }
            }
            self.drain();
        }
    }

    fn state(&self, a: usize, b: usize) -> Option<NeighborState> {
        self.speakers[a].neighbor_state(IfaceIdx(0), self.addrs[b])
    }

    fn set_vips(&mut self, i: usize, vips: &[Ipv4Addr]) {
        let now = self.now;
        let out =
            self.speakers[i].set_announced(vips.iter().copied().collect::<BTreeSet<_>>(), now);
        self.push(i, out);
        self.drain();
    }

    fn lsa(&self, at: usize, ty: LsType, id: Ipv4Addr, adv: usize) -> Option<LsaRepr> {
        self.speakers[at]
            .lsdb(self.now)
            .into_iter()
            .find(|l| l.header.key() == (ty, id, self.addrs[adv]))
    }

    fn stub_vips(&self, at: usize, adv: usize) -> Vec<Ipv4Addr> {
        match self
            .lsa(at, LsType::Router, self.addrs[adv], adv)
            .map(|l| l.body)
        {
            Some(LsaBody::Router(r)) => r
                .links
                .iter()
                .filter(|l| {
                    l.link_type == RouterLinkType::Stub && l.link_data == Ipv4Addr::BROADCAST
                })
                .map(|l| l.link_id)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn lsdb_keys(&self, at: usize) -> Vec<(LsType, Ipv4Addr, Ipv4Addr, i32)> {
        self.speakers[at]
            .lsdb(self.now)
            .iter()
            .map(|l| {
                (
                    l.header.ls_type,
                    l.header.ls_id,
                    l.header.adv_router,
                    l.header.seq,
                )
            })
            .collect()
    }
}

fn full_pair(a: SpeakerSpec, b: SpeakerSpec) -> Lab {
    let mut lab = Lab::new(vec![a, b]);
    lab.run_for(30);
    assert_eq!(lab.state(0, 1), Some(NeighborState::Full));
    assert_eq!(lab.state(1, 0), Some(NeighborState::Full));
    lab
}

#[test]
fn pair_reaches_full_and_synchronises_databases() {
    let mut lab = Lab::new(vec![spec(1), spec(2)]);
    // Announced before the adjacency exists: travels in the DBD exchange.
    lab.set_vips(0, &[VIP]);
    lab.run_for(30);
    assert_eq!(lab.state(0, 1), Some(NeighborState::Full));
    assert_eq!(lab.state(1, 0), Some(NeighborState::Full));
    let st = lab.speakers[1].status(lab.now);
    assert_eq!(st.interfaces[0].dr, addr(2), "higher router id is DR");
    assert_eq!(st.interfaces[0].bdr, addr(1));
    assert_eq!(st.interfaces[0].state, IfaceState::Dr);
    assert_eq!(lab.stub_vips(1, 0), vec![VIP]);
    // The DR's Network-LSA lists both routers; both databases are the same.
    match lab.lsa(0, LsType::Network, addr(2), 1).map(|l| l.body) {
        Some(LsaBody::Network(n)) => assert_eq!(n.routers, vec![addr(1), addr(2)]),
        other => panic!("no Network-LSA: {other:?}"),
    }
    assert_eq!(lab.lsdb_keys(0), lab.lsdb_keys(1));
    // Router-LSAs use a transit link to the DR.
    match lab.lsa(1, LsType::Router, addr(1), 0).map(|l| l.body) {
        Some(LsaBody::Router(r)) => assert!(r
            .links
            .iter()
            .any(|l| l.link_type == RouterLinkType::Transit && l.link_id == addr(2))),
        other => panic!("no Router-LSA: {other:?}"),
    }
    // Announced after Full: flooded.
    lab.set_vips(1, &[Ipv4Addr::new(10, 99, 100, 2)]);
    lab.run_for(10);
    assert_eq!(lab.stub_vips(0, 1), vec![Ipv4Addr::new(10, 99, 100, 2)]);
    assert_eq!(lab.lsdb_keys(0), lab.lsdb_keys(1));
}

#[test]
fn stub_withdrawal_and_shutdown_flush() {
    let mut lab = full_pair(spec(1), spec(2));
    lab.set_vips(0, &[VIP]);
    lab.run_for(10);
    assert_eq!(lab.stub_vips(1, 0), vec![VIP]);
    let seq = lab.lsa(1, LsType::Router, addr(1), 0).map(|l| l.header.seq);
    lab.set_vips(0, &[]);
    lab.run_for(10);
    assert!(lab.stub_vips(1, 0).is_empty());
    let seq2 = lab.lsa(1, LsType::Router, addr(1), 0).map(|l| l.header.seq);
    assert!(
        seq2 > seq,
        "withdrawal re-originates with a higher sequence number"
    );

    let now = lab.now;
    let out = lab.speakers[0].shutdown(now);
    assert!(!out.is_empty());
    lab.push(0, out);
    lab.drain();
    let flushed = lab.lsa(1, LsType::Router, addr(1), 0);
    assert!(
        flushed.is_none_or(|l| l.header.age == ospf::speaker::MAX_AGE),
        "peer holds our Router-LSA at MaxAge or not at all"
    );
    assert_ne!(
        lab.state(1, 0),
        Some(NeighborState::Full),
        "goodbye Hello drops the adjacency"
    );
    assert!(lab.speakers[0].status(lab.now).shut_down);
}

#[test]
fn external_announce_withdraw() {
    let mut a = spec(1);
    a.announce_as = AnnounceAs::External;
    a.metric = 20;
    let mut lab = full_pair(a, spec(2));
    lab.set_vips(0, &[VIP]);
    lab.run_for(10);
    let lsa = lab
        .lsa(1, LsType::AsExternal, VIP, 0)
        .expect("type-5 at the peer");
    match lsa.body {
        LsaBody::External(e) => {
            assert_eq!(e.mask, Ipv4Addr::BROADCAST);
            assert!(e.metrics[0].e_bit);
            assert_eq!(e.metrics[0].metric, 20);
        }
        other => panic!("{other:?}"),
    }
    assert!(lab.stub_vips(1, 0).is_empty());
    match lab.lsa(1, LsType::Router, addr(1), 0).map(|l| l.body) {
        Some(LsaBody::Router(r)) => assert_eq!(r.flags & 0x02, 0x02, "ASBR flag"),
        other => panic!("{other:?}"),
    }
    lab.set_vips(0, &[]);
    // Withdrawal may wait for MinLSInterval; at MaxAge the peer drops it.
    lab.run_for(10);
    assert!(lab
        .lsa(1, LsType::AsExternal, VIP, 0)
        .is_none_or(|l| l.header.age == ospf::speaker::MAX_AGE));
    let st = lab.speakers[0].status(lab.now);
    assert!(st.announced.is_empty());
}

#[test]
fn md5_both_sides_reach_full() {
    let auth = AuthSpec::Md5 {
        key_id: 1,
        key: b"secret".to_vec(),
    };
    let mut a = spec(1);
    let mut b = spec(2);
    a.interfaces[0].auth = auth.clone();
    b.interfaces[0].auth = auth;
    let mut lab = full_pair(a, b);
    lab.set_vips(0, &[VIP]);
    lab.run_for(10);
    assert_eq!(lab.stub_vips(1, 0), vec![VIP]);
    assert_eq!(lab.speakers[1].drops(DropCause::AuthMismatch), 0);
}

#[test]
fn auth_mismatch_never_reaches_full_and_is_counted() {
    let mut a = spec(1);
    let mut b = spec(2);
    a.interfaces[0].auth = AuthSpec::Md5 {
        key_id: 1,
        key: b"secret".to_vec(),
    };
    b.interfaces[0].auth = AuthSpec::Md5 {
        key_id: 1,
        key: b"wrong".to_vec(),
    };
    let mut lab = Lab::new(vec![a, b]);
    lab.run_for(30);
    assert_eq!(lab.state(0, 1), None);
    assert_eq!(lab.state(1, 0), None);
    assert!(lab.speakers[0].drops(DropCause::AuthMismatch) > 0);
    assert!(lab.speakers[1].drops(DropCause::AuthMismatch) > 0);

    // Simple password against none: also refused.
    let mut a = spec(1);
    a.interfaces[0].auth = AuthSpec::Simple(b"pw".to_vec());
    let mut lab = Lab::new(vec![a, spec(2)]);
    lab.run_for(30);
    assert_eq!(lab.state(1, 0), None);
    assert!(lab.speakers[1].drops(DropCause::AuthMismatch) > 0);
}

#[test]
fn mtu_mismatch_stays_in_exstart_and_is_counted() {
    let mut b = spec(2);
    b.interfaces[0].mtu = 1400;
    let mut lab = Lab::new(vec![spec(1), b]);
    lab.run_for(30);
    assert!(lab.speakers[1].drops(DropCause::MtuMismatch) > 0);
    assert_ne!(lab.state(1, 0), Some(NeighborState::Full));
    assert_ne!(lab.state(0, 1), Some(NeighborState::Full));
}

#[test]
fn wrong_area_and_garbage_are_counted() {
    let mut b = spec(2);
    b.area = Ipv4Addr::new(0, 0, 0, 1);
    let mut lab = Lab::new(vec![spec(1), b]);
    lab.run_for(10);
    assert!(lab.speakers[0].drops(DropCause::WrongArea) > 0);
    assert_eq!(lab.state(0, 1), None);
    let now = lab.now;
    let s = &mut lab.speakers[0];
    assert!(s
        .handle_packet(IfaceIdx(0), addr(9), &[2, 1, 0], now)
        .is_empty());
    assert_eq!(s.drops(DropCause::Malformed), 1);
    // A Hello with one flipped bit fails its checksum.
    let mut a = spec(3);
    a.interfaces[0].address = addr(3);
    let mut other = Speaker::new(a, now);
    let hello = other
        .on_timer(now)
        .into_iter()
        .map(|Action::Send { bytes, .. }| bytes)
        .next()
        .expect("hello");
    let mut bad = hello.clone();
    bad[30] ^= 0x40;
    s.handle_packet(IfaceIdx(0), addr(3), &bad, now);
    assert_eq!(s.drops(DropCause::BadChecksum), 1);
    s.handle_packet(IfaceIdx(0), addr(3), &hello, now);
    assert_eq!(
        s.neighbor_state(IfaceIdx(0), addr(3)),
        Some(NeighborState::Init)
    );
}

#[test]
fn point_to_point_pair_reaches_full() {
    let mut a = spec(1);
    let mut b = spec(2);
    a.interfaces[0].network = NetworkType::PointToPoint;
    b.interfaces[0].network = NetworkType::PointToPoint;
    let mut lab = full_pair(a, b);
    lab.set_vips(1, &[VIP]);
    lab.run_for(10);
    assert_eq!(lab.stub_vips(0, 1), vec![VIP]);
    match lab.lsa(0, LsType::Router, addr(2), 1).map(|l| l.body) {
        Some(LsaBody::Router(r)) => assert!(r
            .links
            .iter()
            .any(|l| l.link_type == RouterLinkType::PointToPoint && l.link_id == addr(1))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dead_neighbour_is_dropped_and_link_reverts_to_stub() {
    let mut lab = full_pair(spec(1), spec(2));
    lab.set_vips(0, &[VIP]);
    lab.run_for(5);
    // Speaker 1 falls silent (crash): remove it from the segment.
    lab.dead.insert(1);
    lab.run_for(20);
    assert_eq!(lab.state(0, 1), None);
    match lab.lsa(0, LsType::Router, addr(1), 0).map(|l| l.body) {
        Some(LsaBody::Router(r)) => {
            assert!(r.links.iter().all(|l| l.link_type == RouterLinkType::Stub))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restart_with_stale_self_lsa_reoriginates_above_it() {
    let mut lab = full_pair(spec(1), spec(2));
    lab.set_vips(0, &[VIP]);
    lab.run_for(10);
    let old = lab
        .lsa(1, LsType::Router, addr(1), 0)
        .expect("router lsa")
        .header
        .seq;
    // Speaker 0 restarts without a shutdown: its old Router-LSA is still at the peer.
    let now = lab.now;
    lab.speakers[0] = Speaker::new(spec(1), now);
    lab.set_vips(0, &[VIP]);
    lab.run_for(40);
    assert_eq!(lab.state(0, 1), Some(NeighborState::Full));
    let new = lab.lsa(1, LsType::Router, addr(1), 0).expect("router lsa");
    assert!(new.header.seq > old);
    assert_eq!(lab.stub_vips(1, 0), vec![VIP]);
    assert_eq!(lab.lsdb_keys(0), lab.lsdb_keys(1));
}
