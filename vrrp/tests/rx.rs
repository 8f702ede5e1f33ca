//! Receive checks (as keepalived applies them) and sync groups.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use vrrp::group::{InstanceIdx, Router, SyncGroupSpec};
use vrrp::instance::{Action, Auth, DropCause, Event, Instance, InstanceSpec, State, VipSpec};
use vrrp::track::{TrackKind, TrackSpec, TrackStatus};
use vrrp::wire::{AuthType, MessageType, Version, VrrpRepr, MCAST_V4};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 3));

fn spec(name: &str, vrid: u8) -> InstanceSpec {
    let mut s = InstanceSpec::new(name, "eth0", vrid);
    s.priority = 150;
    s.src_addr = Some(Ipv4Addr::new(10, 99, 0, 1).into());
    s.vips = vec![VipSpec::new(Ipv4Addr::new(10, 99, 0, 100).into())];
    s
}

fn advert(prio: u8) -> VrrpRepr {
    VrrpRepr {
        version: Version::V2,
        msg_type: MessageType::Advertisement,
        vrid: 51,
        priority: prio,
        adver_int: 1,
        auth_type: AuthType::None,
        auth_data: [0; 8],
        addrs: vec![Ipv4Addr::new(10, 99, 0, 100).into()],
    }
}

/// A started master.
fn master(s: InstanceSpec, t0: Instant) -> Instance {
    let mut s = s;
    s.start_master = true;
    let mut i = Instance::new(s, t0);
    i.handle(Event::Timer, t0);
    assert_eq!(i.state(), State::Master);
    i
}

fn deliver(i: &mut Instance, bytes: &[u8], ttl: u8, now: Instant) -> Vec<Action> {
    i.handle(
        Event::Advert {
            src: PEER,
            dst: MCAST_V4.into(),
            ttl,
            payload: bytes,
        },
        now,
    )
}

#[test]
fn malformed_adverts_are_dropped_and_counted_by_cause() {
    let t0 = Instant::now();
    let mut i = master(spec("vi", 51), t0);
    let g: IpAddr = MCAST_V4.into();
    let good = advert(200).to_bytes(PEER, g);
    let mut bad_sum = good.clone();
    bad_sum[7] ^= 1;
    let mut v3 = advert(200);
    v3.version = Version::V3;
    v3.adver_int = 100;
    let mut pass = advert(200);
    pass.auth_type = AuthType::Pass;
    pass.auth_data = *b"secret\0\0";
    let mut other_vip = advert(200);
    other_vip.addrs = vec![Ipv4Addr::new(10, 99, 0, 101).into()];
    let mut other_vrid = advert(200);
    other_vrid.vrid = 52;
    let mut interval = advert(200);
    interval.adver_int = 2;
    let cases: Vec<(Vec<u8>, u8, DropCause)> = vec![
        (good.clone(), 254, DropCause::BadTtl),
        (bad_sum, 255, DropCause::BadChecksum),
        (v3.to_bytes(PEER, g), 255, DropCause::BadVersion),
        (pass.to_bytes(PEER, g), 255, DropCause::AuthType),
        (other_vip.to_bytes(PEER, g), 255, DropCause::AddrMismatch),
        (other_vrid.to_bytes(PEER, g), 255, DropCause::OtherVrid),
        (interval.to_bytes(PEER, g), 255, DropCause::IntervalMismatch),
        (good[..10].to_vec(), 255, DropCause::Truncated),
    ];
    for (bytes, ttl, cause) in &cases {
        assert_eq!(deliver(&mut i, bytes, *ttl, t0), vec![], "{cause:?}");
        assert_eq!(i.counters().dropped(*cause), 1, "{cause:?}");
        assert_eq!(i.state(), State::Master, "{cause:?}");
    }
    assert_eq!(i.counters().adverts_received, 0);
    // The valid one makes it back off.
    let actions = deliver(&mut i, &good, 255, t0);
    assert_eq!(i.state(), State::Backup);
    assert!(actions.contains(&Action::BecomeBackup));
    assert_eq!(i.status().master_addr, Some(PEER));
}

#[test]
fn destination_must_match_the_mode() {
    let t0 = Instant::now();
    let ours: IpAddr = Ipv4Addr::new(10, 99, 0, 1).into();
    let g: IpAddr = MCAST_V4.into();
    // Multicast mode: a unicast advert to our address is not for us.
    let mut i = master(spec("vi", 51), t0);
    let to_us = advert(200).to_bytes(PEER, ours);
    fn ev(payload: &[u8], dst: IpAddr) -> Event<'_> {
        Event::Advert {
            src: PEER,
            dst,
            ttl: 255,
            payload,
        }
    }
    assert_eq!(i.handle(ev(&to_us, ours), t0), vec![]);
    assert_eq!(i.counters().dropped(DropCause::BadDestination), 1);
    assert_eq!(i.state(), State::Master);
    // Unicast mode: the group is not for us, our unicast_src_ip is.
    let mut s = spec("vi", 51);
    s.unicast_peers = vec![PEER];
    let mut i = master(s, t0);
    let to_group = advert(200).to_bytes(PEER, g);
    assert_eq!(i.handle(ev(&to_group, g), t0), vec![]);
    assert_eq!(i.counters().dropped(DropCause::BadDestination), 1);
    assert_eq!(i.state(), State::Master);
    i.handle(ev(&to_us, ours), t0);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn pass_auth_must_match() {
    let t0 = Instant::now();
    let mut s = spec("vi", 51);
    s.auth = Auth::pass("secret-and-more");
    let mut i = master(s, t0);
    let g: IpAddr = MCAST_V4.into();
    let mut wrong = advert(200);
    wrong.auth_type = AuthType::Pass;
    wrong.auth_data = *b"secreX\0\0";
    deliver(&mut i, &wrong.to_bytes(PEER, g), 255, t0);
    assert_eq!(i.counters().dropped(DropCause::AuthFailure), 1);
    let mut right = wrong.clone();
    right.auth_data = *b"secret-a";
    deliver(&mut i, &right.to_bytes(PEER, g), 255, t0);
    assert_eq!(i.state(), State::Backup);
    // Our own adverts carry the password.
    assert_eq!(i.advert(150).auth_data, *b"secret-a");
}

#[test]
fn master_answers_lower_priority_unless_lower_prio_no_advert() {
    let t0 = Instant::now();
    let g: IpAddr = MCAST_V4.into();
    let low = advert(50).to_bytes(PEER, g);
    let mut i = master(spec("vi", 51), t0);
    assert_eq!(
        deliver(&mut i, &low, 255, t0),
        vec![Action::SendAdvert { priority: 150 }]
    );
    let mut s = spec("vi", 51);
    s.lower_prio_no_advert = true;
    let mut i = master(s, t0);
    assert_eq!(deliver(&mut i, &low, 255, t0), vec![]);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn higher_prio_send_advert_answers_before_backing_off() {
    let t0 = Instant::now();
    let mut s = spec("vi", 51);
    s.higher_prio_send_advert = true;
    let mut i = master(s, t0);
    let actions = deliver(
        &mut i,
        &advert(200).to_bytes(PEER, MCAST_V4.into()),
        255,
        t0,
    );
    assert_eq!(actions[0], Action::SendAdvert { priority: 150 });
    assert_eq!(actions[1], Action::BecomeBackup);
}

#[test]
fn master_sends_garps_on_takeover_and_after_the_delay() {
    let t0 = Instant::now();
    let mut s = spec("vi", 51);
    s.start_master = true;
    s.garp.master_delay = Duration::from_secs(5);
    s.garp.master_repeat = 3;
    let mut i = Instance::new(s, t0);
    let a = i.handle(Event::Timer, t0);
    assert_eq!(
        a,
        vec![
            Action::SendAdvert { priority: 150 },
            Action::BecomeMaster,
            Action::Notify {
                state: State::Master,
                priority: 150
            },
            Action::SendGarp { count: 3 },
        ]
    );
    let t5 = t0 + Duration::from_secs(5);
    let a = i.handle(Event::Timer, t5);
    assert!(a.contains(&Action::SendGarp { count: 3 }), "{a:?}");
}

#[test]
fn sync_group_moves_together_and_fault_of_one_faults_all() {
    let t0 = Instant::now();
    let mut a = spec("a", 51);
    a.tracks = vec![TrackSpec {
        kind: TrackKind::Interface,
        name: "eth1".into(),
        weight: 0,
        reverse: false,
    }];
    let mut b = spec("b", 52);
    b.vips = vec![VipSpec::new(Ipv4Addr::new(10, 99, 0, 101).into())];
    b.priority = 100;
    let g = SyncGroupSpec {
        name: "g".into(),
        members: vec!["a".into(), "b".into()],
        tracks: vec![],
        tracking_weight: false,
    };
    let mut r = Router::new(vec![a, b], vec![g], t0).expect("valid");
    r.on_timer(t0);
    assert_eq!(r.instances()[0].state(), State::Backup);
    // a's down interval (3.414 s) ends first; b follows it into MASTER.
    let t = r.poll_at().expect("timer");
    let out = r.on_timer(t);
    assert!(
        out.contains(&(InstanceIdx(1), Action::BecomeMaster)),
        "{out:?}"
    );
    assert!(r.instances().iter().all(|i| i.state() == State::Master));
    let out = r.broadcast(
        Event::Track {
            kind: TrackKind::Interface,
            name: "eth1",
            status: TrackStatus::Down,
        },
        t,
    );
    assert!(
        out.contains(&(InstanceIdx(1), Action::BecomeFault)),
        "{out:?}"
    );
    assert!(r.instances().iter().all(|i| i.state() == State::Fault));
    r.broadcast(
        Event::Track {
            kind: TrackKind::Interface,
            name: "eth1",
            status: TrackStatus::Up,
        },
        t,
    );
    assert!(r.instances().iter().all(|i| i.state() == State::Backup));
}

#[test]
fn router_rejects_bad_groups() {
    let t0 = Instant::now();
    let g = SyncGroupSpec {
        name: "g".into(),
        members: vec!["nope".into()],
        tracks: vec![],
        tracking_weight: false,
    };
    assert!(Router::new(vec![spec("a", 1)], vec![g], t0).is_err());
    assert!(Router::new(vec![spec("a", 1), spec("a", 2)], vec![], t0).is_err());
}

#[test]
fn notify_commands_follow_keepalived_arguments() {
    let mut s = spec("vi", 51);
    s.notify.master = Some(vec!["/m.sh".into()]);
    s.notify.generic = Some(vec!["/n.sh".into()]);
    let c = s.notify.commands("INSTANCE", "vi", State::Master, 150);
    assert_eq!(
        c,
        vec![
            vec!["/m.sh".to_owned()],
            ["/n.sh", "INSTANCE", "vi", "MASTER", "150"]
                .map(String::from)
                .to_vec()
        ]
    );
}

#[test]
fn reload_hands_over_only_unchanged_instances() {
    let t0 = Instant::now();
    let (a, b) = (spec("a", 51), spec("b", 52));
    let mut r = Router::new(vec![a.clone(), b.clone()], vec![], t0).expect("router");
    r.on_timer(t0);
    let t1 = t0 + Duration::from_secs(4);
    r.on_timer(t1);
    let states = |r: &Router| {
        r.instances()
            .iter()
            .map(Instance::state)
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&r), vec![State::Master, State::Master]);
    let sent = r.instances()[0].counters().adverts_sent;

    // b changes, c is new, a is unchanged.
    let mut b2 = b.clone();
    b2.priority = 50;
    let mut next = Router::new(vec![b2, a.clone(), spec("c", 53)], vec![], t1).expect("router");
    let kept = r.hand_over(&[], &mut next, &[]);
    assert_eq!(kept, vec![InstanceIdx(0)]);
    assert_eq!(states(&next), vec![State::Init, State::Master, State::Init]);
    assert_eq!(next.instances()[1].counters().adverts_sent, sent);
    // What stays behind in the old router at a's place is the fresh one.
    assert_eq!(states(&r), vec![State::Init, State::Master]);

    // Putting a into a sync group is a change: not handed over.
    let group = SyncGroupSpec {
        name: "G".into(),
        members: vec!["a".into()],
        tracks: vec![],
        tracking_weight: false,
    };
    let mut third = Router::new(vec![a], vec![group.clone()], t1).expect("router");
    assert!(next.hand_over(&[], &mut third, &[group]).is_empty());
}
