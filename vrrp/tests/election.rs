//! Two and three instances exchanging adverts on a fake clock (zero latency).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use vrrp::instance::{Action, Event, Instance, InstanceSpec, State, VipSpec};
use vrrp::track::{TrackKind, TrackSpec, TrackStatus};
use vrrp::wire::{Version, MCAST_V4};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

fn spec(host: u8, prio: u8) -> InstanceSpec {
    let mut s = InstanceSpec::new(format!("vi{host}"), "eth0", 51);
    s.priority = prio;
    s.src_addr = Some(Ipv4Addr::new(10, 99, 0, host).into());
    s.vips = vec![VipSpec::new(Ipv4Addr::new(10, 99, 0, 100).into())];
    s.garp.master_delay = Duration::ZERO;
    s
}

struct Node {
    inst: Option<Instance>,
    spec: InstanceSpec,
    start: Duration,
    log: Vec<(Duration, State)>,
}

struct Net {
    t0: Instant,
    now: Duration,
    nodes: Vec<Node>,
}

impl Net {
    fn new(specs: Vec<InstanceSpec>) -> Net {
        Net::staggered(specs.into_iter().map(|s| (s, Duration::ZERO)).collect())
    }

    fn staggered(specs: Vec<(InstanceSpec, Duration)>) -> Net {
        let t0 = Instant::now();
        let nodes = specs
            .into_iter()
            .map(|(spec, start)| Node {
                inst: None,
                spec,
                start,
                log: Vec::new(),
            })
            .collect();
        Net {
            t0,
            now: Duration::ZERO,
            nodes,
        }
    }

    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    fn addr(&self, i: usize) -> IpAddr {
        self.nodes[i].spec.src_addr.expect("src set")
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i]
            .inst
            .as_ref()
            .map_or(State::Init, Instance::state)
    }

    /// Time of the `n`th entry into `state` by node `i`.
    fn entered(&self, i: usize, state: State) -> Vec<Duration> {
        self.nodes[i]
            .log
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(t, _)| *t)
            .collect()
    }

    fn process(&mut self, from: usize, actions: Vec<Action>) {
        let mut queue: VecDeque<(usize, Action)> = actions.into_iter().map(|a| (from, a)).collect();
        while let Some((i, a)) = queue.pop_front() {
            let now = self.now;
            match a {
                Action::SendAdvert { priority } => {
                    let src = self.addr(i);
                    let Some(inst) = self.nodes[i].inst.as_ref() else {
                        continue;
                    };
                    let bytes = inst.advert(priority).to_bytes(src, MCAST_V4.into());
                    for j in 0..self.nodes.len() {
                        if j == i {
                            continue;
                        }
                        let at = self.at(now);
                        if let Some(peer) = self.nodes[j].inst.as_mut() {
                            let ev = Event::Advert {
                                src,
                                dst: MCAST_V4.into(),
                                ttl: 255,
                                payload: &bytes,
                            };
                            queue.extend(peer.handle(ev, at).into_iter().map(|a| (j, a)));
                        }
                    }
                }
                Action::BecomeMaster => self.nodes[i].log.push((now, State::Master)),
                Action::BecomeBackup => self.nodes[i].log.push((now, State::Backup)),
                Action::BecomeFault => self.nodes[i].log.push((now, State::Fault)),
                Action::Stopped => self.nodes[i].log.push((now, State::Stop)),
                Action::SendGarp { .. } | Action::Notify { .. } => {}
            }
        }
    }

    fn event(&mut self, i: usize, ev: Event<'_>) {
        let at = self.at(self.now);
        let actions = self.nodes[i]
            .inst
            .as_mut()
            .map(|n| n.handle(ev, at))
            .unwrap_or_default();
        self.process(i, actions);
    }

    /// A crash: the node vanishes without a word.
    fn crash(&mut self, i: usize) {
        self.nodes[i].inst = None;
        self.nodes[i].start = Duration::MAX;
    }

    fn run_until(&mut self, end: Duration) {
        loop {
            let mut next: Option<Duration> = None;
            for n in &self.nodes {
                let t = match &n.inst {
                    None if n.start != Duration::MAX => Some(n.start),
                    None => None,
                    Some(inst) => inst.poll_at().map(|t| t - self.t0),
                };
                next = match (next, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let Some(t) = next.filter(|t| *t <= end) else {
                break;
            };
            self.now = t;
            for i in 0..self.nodes.len() {
                if self.nodes[i].inst.is_none() && self.nodes[i].start == t {
                    self.nodes[i].inst =
                        Some(Instance::new(self.nodes[i].spec.clone(), self.at(t)));
                }
                let due = self.nodes[i]
                    .inst
                    .as_ref()
                    .and_then(Instance::poll_at)
                    .is_some_and(|p| p <= self.at(t));
                if due {
                    self.event(i, Event::Timer);
                }
            }
        }
        self.now = end;
    }
}

/// v2: Master_Down_Interval = 3 s + (256 - prio)/256 s.
const MDI_150: u64 = 3_414_062_500;
const MDI_100: u64 = 3_609_375_000;
const SKEW_100: u64 = 609_375_000;

#[test]
fn higher_priority_wins_election_at_its_down_interval() {
    let mut net = Net::new(vec![spec(1, 150), spec(2, 100)]);
    net.run_until(Duration::from_secs(30));
    assert_eq!(net.entered(0, State::Master), vec![ns(MDI_150)]);
    assert_eq!(net.entered(1, State::Master), Vec::<Duration>::new());
    assert_eq!(net.state(1), State::Backup);
    let c = net.nodes[1].inst.as_ref().expect("up").counters().clone();
    assert!(c.adverts_received >= 26, "{c:?}");
    assert_eq!(c.drops.iter().sum::<u64>(), 0);
}

#[test]
fn equal_priority_higher_address_wins() {
    let mut a = spec(1, 100);
    let mut b = spec(2, 100);
    a.start_master = true;
    b.start_master = true;
    let mut net = Net::new(vec![a, b]);
    net.run_until(Duration::from_secs(10));
    assert_eq!(net.state(0), State::Backup);
    assert_eq!(net.state(1), State::Master);
    assert_eq!(net.entered(0, State::Backup), vec![Duration::ZERO]);
}

#[test]
fn owner_starts_master_immediately() {
    let mut net = Net::new(vec![spec(1, 255), spec(2, 254)]);
    net.run_until(Duration::from_secs(5));
    assert_eq!(net.entered(0, State::Master), vec![Duration::ZERO]);
    assert_eq!(net.state(1), State::Backup);
}

#[test]
fn master_crash_backup_takes_over_after_master_down_interval() {
    let mut net = Net::new(vec![spec(1, 150), spec(2, 100)]);
    net.run_until(Duration::from_secs(10));
    net.crash(0);
    net.run_until(Duration::from_secs(30));
    // Last advert from 1 at MDI_150 + 6 s; 2 takes over MDI_100 later.
    assert_eq!(
        net.entered(1, State::Master),
        vec![ns(MDI_150 + 6_000_000_000 + MDI_100)]
    );
}

#[test]
fn graceful_stop_sends_priority_zero_and_backup_waits_skew_time() {
    let mut net = Net::new(vec![spec(1, 150), spec(2, 100)]);
    net.run_until(Duration::from_secs(10));
    net.event(0, Event::Shutdown);
    assert_eq!(net.state(0), State::Stop);
    assert_eq!(
        net.nodes[0]
            .inst
            .as_ref()
            .expect("up")
            .counters()
            .prio0_sent,
        1
    );
    net.run_until(Duration::from_secs(30));
    assert_eq!(
        net.entered(1, State::Master),
        vec![ns(10_000_000_000 + SKEW_100)]
    );
    assert_eq!(
        net.nodes[1]
            .inst
            .as_ref()
            .expect("up")
            .counters()
            .prio0_received,
        1
    );
}

#[test]
fn higher_priority_preempts_a_running_master() {
    let mut net = Net::staggered(vec![
        (spec(1, 150), Duration::from_secs(10)),
        (spec(2, 100), Duration::ZERO),
    ]);
    net.run_until(Duration::from_secs(40));
    assert_eq!(net.entered(1, State::Master), vec![ns(MDI_100)]);
    // 1 ignores 2's lower-priority adverts and its own down timer expires.
    assert_eq!(
        net.entered(0, State::Master),
        vec![ns(10_000_000_000 + MDI_150)]
    );
    assert_eq!(
        net.entered(1, State::Backup),
        vec![Duration::ZERO, ns(10_000_000_000 + MDI_150)]
    );
}

#[test]
fn nopreempt_keeps_the_running_master() {
    let mut a = spec(1, 150);
    a.preempt = false;
    let mut net = Net::staggered(vec![
        (a, Duration::from_secs(10)),
        (spec(2, 100), Duration::ZERO),
    ]);
    net.run_until(Duration::from_secs(60));
    assert_eq!(net.state(1), State::Master);
    assert_eq!(net.state(0), State::Backup);
}

#[test]
fn nopreempt_with_state_master_is_cleared_as_keepalived_does() {
    // keepalived: "nopreempt will not work with initial state MASTER - clearing".
    let mut a = spec(1, 150);
    a.preempt = false;
    a.start_master = true;
    let mut net = Net::staggered(vec![
        (a.clone(), Duration::from_secs(10)),
        (spec(2, 100), Duration::ZERO),
    ]);
    net.run_until(Duration::from_secs(30));
    assert_eq!((net.state(0), net.state(1)), (State::Master, State::Backup));
    assert_eq!(
        a.normalize_preempt(),
        vec!["nopreempt will not work with initial state MASTER"]
    );
    assert!(a.preempt);
    // The address owner always preempts; preempt_delay is dropped with nopreempt.
    let mut o = spec(1, 255);
    o.preempt = false;
    assert_eq!(o.normalize_preempt().len(), 1);
    assert!(o.preempt);
    let mut d = spec(1, 150);
    d.preempt = false;
    d.preempt_delay = Duration::from_secs(3);
    assert_eq!(
        d.normalize_preempt(),
        vec!["preempt_delay is incompatible with nopreempt"]
    );
    assert!(!d.preempt && d.preempt_delay.is_zero());
}

#[test]
fn preempt_delay_postpones_preemption() {
    let mut a = spec(1, 150);
    a.preempt_delay = Duration::from_secs(5);
    let mut net = Net::staggered(vec![
        (a, Duration::from_secs(10)),
        (spec(2, 100), Duration::ZERO),
    ]);
    net.run_until(Duration::from_secs(40));
    // 2 advertises at MDI_100 + k s. The first one 1 hears (10.609375 s)
    // arms the delay until 15.609375 s; adverts before that still reset the
    // down timer, the one at 15.609375 s does not.
    let last_accepted = 14_609_375_000;
    assert_eq!(
        net.entered(0, State::Master),
        vec![ns(last_accepted + MDI_150)]
    );
}

#[test]
fn v3_skew_scales_with_the_interval_and_backup_learns_masters_interval() {
    let mut a = spec(1, 150);
    let mut b = spec(2, 100);
    for s in [&mut a, &mut b] {
        s.version = Version::V3;
    }
    a.advert_int = ms(100);
    b.advert_int = Duration::from_secs(1);
    let mut net = Net::new(vec![a, b]);
    // 1: 3 × 100 ms + 106 × 100 ms / 256 = 341.40625 ms.
    net.run_until(Duration::from_secs(2));
    assert_eq!(net.entered(0, State::Master), vec![ns(341_406_250)]);
    let b = net.nodes[1].inst.as_ref().expect("up");
    assert_eq!(b.master_adver_interval(), ms(100));
    // 2 uses the learned 100 ms: 300 ms + 156 × 100 ms / 256 = 360.9375 ms.
    assert_eq!(b.master_down_interval(), ns(360_937_500));
    net.crash(0);
    net.run_until(Duration::from_secs(5));
    // 1's last advert: 341.40625 ms + 16 × 100 ms.
    assert_eq!(
        net.entered(1, State::Master),
        vec![ns(341_406_250 + 1_600_000_000 + 360_937_500)]
    );
}

#[test]
fn tracking_lowers_priority_below_peer_and_causes_failover() {
    let mut a = spec(1, 150);
    a.tracks = vec![TrackSpec {
        kind: TrackKind::Script,
        name: "chk".into(),
        weight: -60,
        reverse: false,
    }];
    let mut net = Net::new(vec![a, spec(2, 100)]);
    net.run_until(Duration::from_secs(10));
    net.event(
        0,
        Event::Track {
            kind: TrackKind::Script,
            name: "chk",
            status: TrackStatus::Down,
        },
    );
    let st = net.nodes[0].inst.as_ref().expect("up").status();
    assert_eq!(st.effective_priority, 90);
    assert_eq!(st.reasons.len(), 1);
    net.run_until(Duration::from_secs(30));
    // 2 last accepted 1's priority-150 advert at MDI_150 + 6 s.
    let t = ns(MDI_150 + 6_000_000_000 + MDI_100);
    assert_eq!(net.entered(1, State::Master), vec![t]);
    assert_eq!(net.entered(0, State::Backup), vec![Duration::ZERO, t]);
}

#[test]
fn weight_zero_tracker_failure_faults_and_peer_takes_over_after_skew() {
    let mut a = spec(1, 150);
    a.tracks = vec![TrackSpec {
        kind: TrackKind::Interface,
        name: "eth1".into(),
        weight: 0,
        reverse: false,
    }];
    let mut net = Net::new(vec![a, spec(2, 100)]);
    net.run_until(Duration::from_secs(10));
    net.event(
        0,
        Event::Track {
            kind: TrackKind::Interface,
            name: "eth1",
            status: TrackStatus::Down,
        },
    );
    assert_eq!(net.state(0), State::Fault);
    net.run_until(Duration::from_secs(20));
    assert_eq!(
        net.entered(1, State::Master),
        vec![ns(10_000_000_000 + SKEW_100)]
    );
    net.event(
        0,
        Event::Track {
            kind: TrackKind::Interface,
            name: "eth1",
            status: TrackStatus::Up,
        },
    );
    net.run_until(Duration::from_secs(40));
    // Back from FAULT as backup, then preempts at its down interval.
    assert_eq!(
        net.entered(0, State::Master),
        vec![ns(MDI_150), ns(20_000_000_000 + MDI_150)]
    );
}

#[test]
fn three_routers_next_highest_takes_over() {
    let mut net = Net::new(vec![spec(1, 150), spec(2, 120), spec(3, 100)]);
    net.run_until(Duration::from_secs(10));
    net.crash(0);
    net.run_until(Duration::from_secs(30));
    // 2: 3 s + 136/256 s after 1's last advert.
    assert_eq!(
        net.entered(1, State::Master),
        vec![ns(MDI_150 + 6_000_000_000 + 3_531_250_000)]
    );
    assert_eq!(net.entered(2, State::Master), Vec::<Duration>::new());
    assert_eq!(net.state(2), State::Backup);
}
