//! The driver: runs each distinct checker once and feeds every subject that
//! has it.
//!
//! # Probes and subjects
//!
//! A *probe* is one distinct [`CheckSpec`] (kind, parameters, target,
//! source, timing). Subjects whose checkers are equal share one probe: it
//! runs on its own schedule and each result is fed to every subscribed
//! subject's [`SubjectState`] (a real server used by several virtual
//! servers is probed once per `delay_loop`, not once per virtual server;
//! keepalived runs every checker separately, see PAINPOINTS #7). The probe's
//! schedule is driven by its own [`CheckState`], which sees the same results
//! as the subjects' copies and so keeps their retry rhythm.
//!
//! * `TCP_CHECK` probes all run on one thread (`fleet`): one timer heap,
//!   batched non-blocking handshakes on reused sockets, one `epoll_wait`
//!   per tick; no task, timer or allocation per check.
//! * Every other kind runs as one tokio task per probe.
//!
//! Each subject's state lives behind a per-subject lock that only the probe
//! runners and [`HealthChecker::status`] take. [`SubjectStatus`] snapshots are
//! built on demand from that state, so a routine result costs no allocation
//! and no global lock; only a flip or a weight change takes the registry lock
//! to send a [`HealthEvent`].
//!
//! # Invariants
//!
//! * Lock order: the registry lock before a probe's subscriber list; a
//!   subscriber list before a subject's lock. Runners publish events only
//!   after releasing both, and no lock is held across an `.await`.
//! * Each subject carries a generation. An event is sent (under the registry
//!   lock) only while its generation is current, so once
//!   [`HealthChecker::remove_subject`] or a replacing
//!   [`HealthChecker::add_subject`] returns, the old subject can no longer
//!   emit events, even if a runner still holds it for a moment.
//! * A probe has at most one attempt in flight; its next attempt is
//!   scheduled from the moment the previous one finished.
//! * A probe without subscribers is stopped and forgotten.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::error::ProbeError;
use crate::fleet::Fleet;
use crate::spec::{CheckKind, CheckSpec, SubjectId, SubjectSpec};
use crate::state::{CheckState, SubjectState};
use crate::status::{HealthEvent, SubjectStatus};
use crate::tcp::Source;
use crate::{dns, file, http, misc, ping, smtp, tcp, udp};

/// Running checkers on a tokio runtime (and, for `TCP_CHECK`, on one
/// thread of their own).
///
/// Dropping it without [`HealthChecker::shutdown`] stops every probe too.
#[derive(Debug)]
pub struct HealthChecker {
    shared: Arc<Shared>,
    runtime: Handle,
}

#[derive(Debug)]
pub(crate) struct Shared {
    registry: Mutex<Registry>,
    events: UnboundedSender<HealthEvent>,
}

#[derive(Debug, Default)]
struct Registry {
    next_generation: u64,
    subjects: BTreeMap<SubjectId, Entry>,
    probes: HashMap<CheckSpec, ProbeEntry>,
    /// The `TCP_CHECK` thread, started with the first one.
    fleet: Option<Fleet>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    live: Arc<Live>,
}

/// A running probe and how to stop it.
#[derive(Debug)]
struct ProbeEntry {
    probe: Arc<Probe>,
    runner: Runner,
}

#[derive(Debug)]
enum Runner {
    Task(JoinHandle<()>),
    /// Runs on the fleet thread under this id.
    Fleet(u64),
}

/// One distinct checker and the subjects it feeds.
#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) spec: CheckSpec,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// Checker `index` of a subject (of one generation).
#[derive(Debug, Clone)]
struct Subscriber {
    generation: u64,
    live: Arc<Live>,
    index: usize,
}

/// One subject's spec and runtime state, shared by the probes and the
/// registry.
#[derive(Debug)]
struct Live {
    spec: SubjectSpec,
    state: Mutex<LiveState>,
}

#[derive(Debug)]
struct LiveState {
    state: SubjectState,
    /// Wall-clock time of each checker's latest flip.
    transitions: Vec<Option<u64>>,
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // Every update leaves the state consistent before any call that could
        // panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self) -> SubjectStatus {
        let live = self.lock();
        SubjectStatus::new(&self.spec, &live.state, &live.transitions)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere cannot leave the maps half-updated (every update
        // is a single insert/replace/remove), so a poisoned lock is still
        // usable.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `event` if `generation` is still current for its subject.
    fn publish(&self, generation: u64, event: HealthEvent) {
        let registry = self.lock();
        let current = registry
            .subjects
            .get(&event.subject)
            .is_some_and(|entry| entry.generation == generation);
        if current && self.events.send(event).is_err() {
            tracing::debug!("health event receiver is gone");
        }
    }
}

impl Probe {
    fn subscribers(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        // Pushes and retains only: a poisoned list is still consistent.
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Feeds one result of `probe` (started at `started`) to its schedule and to
/// every subscribed subject, then sends the resulting events. `outbox` is
/// scratch space, kept by the caller so that routine results allocate
/// nothing.
pub(crate) fn deliver(
    shared: &Shared,
    probe: &Probe,
    schedule: &mut CheckState,
    started: Instant,
    result: Result<Option<i64>, ProbeError>,
    outbox: &mut Vec<(u64, HealthEvent)>,
) {
    let now = Instant::now();
    let spec = &probe.spec;
    if let Err(err) = &result {
        if spec.log_all_failures {
            tracing::warn!(check = %spec.label(), error = %err, "check failed");
        } else {
            tracing::debug!(check = %spec.label(), error = %err, "check failed");
        }
    }
    schedule.on_weighted_result(result.clone(), now);
    let took = now.saturating_duration_since(started);
    for sub in probe.subscribers().iter() {
        let mut live = sub.live.lock();
        live.state.record_latency(sub.index, took);
        if let Some(event) = record(&sub.live.spec, &mut live, sub.index, result.clone(), now) {
            outbox.push((sub.generation, event));
        }
    }
    for (generation, event) in outbox.drain(..) {
        tracing::info!(
            subject = %event.subject, up = event.up,
            weight_delta = ?event.weight_delta, reason = %event.reason,
            "subject state changed"
        );
        shared.publish(generation, event);
    }
}

impl HealthChecker {
    /// Starts checking `subjects` on the current tokio runtime; flips are sent
    /// to `events`.
    ///
    /// Each subject starts in [`SubjectSpec::initially_up`] state and no event
    /// is sent for that initial state.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start(subjects: Vec<SubjectSpec>, events: UnboundedSender<HealthEvent>) -> Self {
        let checker = HealthChecker {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
                events,
            }),
            runtime: Handle::current(),
        };
        for subject in subjects {
            checker.add_subject(subject);
        }
        checker
    }

    /// Starts checking one more subject (for reload). Other subjects are not
    /// touched. A subject with the same id is replaced: it starts again from
    /// [`SubjectSpec::initially_up`], without an event. Its checkers join the
    /// running probes equal to them (which keep their schedule), or start
    /// new ones.
    ///
    /// Callable from any thread.
    pub fn add_subject(&self, spec: SubjectSpec) {
        let now = Instant::now();
        let id = spec.id;
        let name = spec.name.clone();
        let live = Arc::new(Live {
            state: Mutex::new(LiveState {
                state: SubjectState::new(&spec, now),
                transitions: vec![None; spec.checks.len()],
            }),
            spec,
        });
        let replaced = {
            let mut registry = self.shared.lock();
            registry.next_generation += 1;
            let generation = registry.next_generation;
            for (index, check) in live.spec.checks.iter().enumerate() {
                let sub = Subscriber {
                    generation,
                    live: Arc::clone(&live),
                    index,
                };
                self.subscribe(&mut registry, check, sub);
            }
            let old = registry.subjects.insert(id, Entry { generation, live });
            // After subscribing the new one, so that probes both share keep
            // running.
            if let Some(old) = &old {
                unsubscribe(&mut registry, old);
            }
            old.is_some()
        };
        if replaced {
            tracing::info!(subject = %name, %id, "health checks replaced");
        } else {
            tracing::info!(subject = %name, %id, "health checks started");
        }
    }

    /// Stops checking a subject (for reload). Unknown ids are ignored. No
    /// event for `id` is sent after this returns.
    ///
    /// Callable from any thread.
    pub fn remove_subject(&self, id: SubjectId) {
        let mut registry = self.shared.lock();
        if let Some(entry) = registry.subjects.remove(&id) {
            unsubscribe(&mut registry, &entry);
            tracing::info!(subject = %entry.live.spec.name, %id, "health checks stopped");
        }
    }

    /// A snapshot of every subject, ordered by id. Cheap; callable from any
    /// thread.
    pub fn status(&self) -> Vec<SubjectStatus> {
        let lives: Vec<Arc<Live>> = self
            .shared
            .lock()
            .subjects
            .values()
            .map(|e| Arc::clone(&e.live))
            .collect();
        lives.iter().map(|live| live.status()).collect()
    }

    /// How many distinct probes run: checkers equal across subjects count
    /// once.
    pub fn running_probes(&self) -> usize {
        self.shared.lock().probes.len()
    }

    /// Stops every checker and waits for them to finish.
    pub async fn shutdown(self) {
        let (probes, fleet) = {
            let mut registry = self.shared.lock();
            registry.subjects.clear();
            (std::mem::take(&mut registry.probes), registry.fleet.take())
        };
        let mut tasks = Vec::new();
        for (_, entry) in probes {
            if let Runner::Task(task) = entry.runner {
                task.abort();
                tasks.push(task);
            }
        }
        for task in tasks {
            // An aborted task reports a cancellation error: expected.
            let _cancelled = task.await;
        }
        if let Some(fleet) = fleet {
            let _joined = tokio::task::spawn_blocking(move || fleet.stop_and_join()).await;
        }
    }

    /// Adds `sub` to the probe equal to `check`, starting one if none runs.
    fn subscribe(&self, registry: &mut Registry, check: &CheckSpec, sub: Subscriber) {
        if let Some(entry) = registry.probes.get(check) {
            entry.probe.subscribers().push(sub);
            return;
        }
        let probe = Arc::new(Probe {
            spec: check.clone(),
            subscribers: Mutex::new(vec![sub]),
        });
        let runner = match self.fleet_runner(registry, &probe) {
            Some(runner) => runner,
            None => Runner::Task(
                self.runtime
                    .spawn(run_probe(Arc::clone(&self.shared), Arc::clone(&probe))),
            ),
        };
        registry
            .probes
            .insert(check.clone(), ProbeEntry { probe, runner });
    }

    /// Hands a `TCP_CHECK` probe to the fleet thread (started on first use);
    /// `None` for other kinds, or when the thread cannot start (the probe
    /// then runs as a task).
    fn fleet_runner(&self, registry: &mut Registry, probe: &Arc<Probe>) -> Option<Runner> {
        if probe.spec.kind != CheckKind::Tcp {
            return None;
        }
        if registry.fleet.is_none() {
            match Fleet::start(Arc::clone(&self.shared)) {
                Ok(fleet) => registry.fleet = Some(fleet),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the TCP_CHECK thread; TCP checks run as tasks");
                    return None;
                }
            }
        }
        registry.next_generation += 1;
        let id = registry.next_generation;
        registry.fleet.as_ref()?.add(id, Arc::clone(probe));
        Some(Runner::Fleet(id))
    }
}

/// Takes `entry`'s checkers off their probes; stops probes left without
/// subscribers.
fn unsubscribe(registry: &mut Registry, entry: &Entry) {
    for check in &entry.live.spec.checks {
        let empty = match registry.probes.get(check) {
            Some(p) => {
                let mut subs = p.probe.subscribers();
                subs.retain(|s| s.generation != entry.generation);
                subs.is_empty()
            }
            None => false,
        };
        if !empty {
            continue;
        }
        if let Some(p) = registry.probes.remove(check) {
            match p.runner {
                Runner::Task(task) => task.abort(),
                Runner::Fleet(id) => {
                    if let Some(fleet) = &registry.fleet {
                        fleet.remove(id);
                    }
                }
            }
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        let mut registry = self.shared.lock();
        for entry in registry.probes.values() {
            if let Runner::Task(task) = &entry.runner {
                task.abort();
            }
        }
        if let Some(fleet) = registry.fleet.take() {
            fleet.stop();
        }
    }
}

/// A running probe attempt; `Ok(Some(delta))` carries a weight delta
/// (`misc_dynamic`, `FILE_CHECK`).
type Attempt<'a> = Pin<Box<dyn Future<Output = Result<Option<i64>, ProbeError>> + Send + 'a>>;

/// Each kind is boxed on its own, so that a probe allocates (and moves)
/// only its own future, not one sized for the largest kind (TLS).
fn start_attempt(spec: &CheckSpec) -> Attempt<'_> {
    let (target, source, timeout) = (spec.target, Source::of(spec), spec.connect_timeout);
    match &spec.kind {
        // Only when the fleet thread could not start.
        CheckKind::Tcp => Box::pin(async move {
            match tokio::time::timeout(timeout, tcp::connect(target, source)).await {
                Err(_elapsed) => Err(ProbeError::Timeout { after: timeout }),
                Ok(Err(e)) => Err(e),
                Ok(Ok(stream)) => {
                    // Close with a RST, as the fleet's disconnect does.
                    let _ =
                        socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
                    Ok(None)
                }
            }
        }),
        CheckKind::Http(h) => Box::pin(async move {
            http::probe(target, source, timeout, h, false)
                .await
                .map(|()| None)
        }),
        CheckKind::Ssl(h) => Box::pin(async move {
            http::probe(target, source, timeout, h, true)
                .await
                .map(|()| None)
        }),
        CheckKind::Misc(m) => Box::pin(misc::probe(m, spec.delay_loop)),
        CheckKind::Udp(u) => {
            Box::pin(async move { udp::probe(target, source, timeout, u).await.map(|()| None) })
        }
        CheckKind::Dns(d) => {
            Box::pin(async move { dns::probe(target, source, timeout, d).await.map(|()| None) })
        }
        CheckKind::Smtp(s) => {
            Box::pin(async move { smtp::probe(target, source, timeout, s).await.map(|()| None) })
        }
        CheckKind::Ping => Box::pin(async move {
            ping::probe(target.ip(), source, timeout)
                .await
                .map(|()| None)
        }),
        CheckKind::File(f) => Box::pin(file::probe(f, timeout)),
    }
}

fn unix_ms_now() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// Runs one (non-TCP) probe on its own schedule until aborted.
async fn run_probe(shared: Arc<Shared>, probe: Arc<Probe>) {
    let mut schedule = CheckState::new(&probe.spec, Instant::now());
    let mut outbox = Vec::new();
    loop {
        tokio::time::sleep_until(schedule.next_due().into()).await;
        let started = Instant::now();
        let result = start_attempt(&probe.spec).await;
        deliver(&shared, &probe, &mut schedule, started, result, &mut outbox);
    }
}

/// Feeds the outcome of checker `index` to the state; returns the event to
/// send, if the subject flipped or its weight delta changed.
fn record(
    spec: &SubjectSpec,
    live: &mut LiveState,
    index: usize,
    result: Result<Option<i64>, ProbeError>,
    now: Instant,
) -> Option<HealthEvent> {
    let check = spec.checks.get(index)?;
    let update = live.state.on_weighted_result(index, result, now);
    let mut text = None;
    if let (Some(up), Some(check_state)) = (update.check, live.state.checks().get(index)) {
        if let Some(slot) = live.transitions.get_mut(index) {
            *slot = unix_ms_now();
        }
        let flip = reason(
            check,
            check_state.last_error(),
            check_state.consecutive_failures(),
            up,
        );
        if up {
            tracing::info!(subject = %spec.name, reason = %flip, "checker up");
        } else {
            tracing::warn!(subject = %spec.name, reason = %flip, "checker down");
        }
        text = Some(flip);
    }
    // The subject can only flip when one of its checkers did.
    match (update.subject, text, update.weight_delta) {
        (Some(up), Some(text), weight_delta) => {
            let reason = if up {
                format!("{text}; all checkers up")
            } else {
                text
            };
            Some(HealthEvent {
                subject: spec.id,
                up,
                reason,
                weight_delta,
            })
        }
        (_, _, Some(delta)) => Some(HealthEvent {
            subject: spec.id,
            up: live.state.is_up(),
            reason: format!("{}: weight delta now {delta}", check.label()),
            weight_delta: Some(delta),
        }),
        _ => None,
    }
}

/// Text for a checker flip: `"TCP_CHECK 10.0.0.2:8080: connection refused"`.
fn reason(check: &CheckSpec, error: Option<&ProbeError>, failures: u32, up: bool) -> String {
    match (up, error) {
        (false, Some(err)) if failures > 1 => format!(
            "{}: {err} (failed after {} retries)",
            check.label(),
            failures - 1
        ),
        (false, Some(err)) => format!("{}: {err}", check.label()),
        (false, None) => format!("{}: failed", check.label()),
        (true, _) => format!("{}: success", check.label()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic on the TCP_CHECK thread is survived: checks go on.
    #[tokio::test]
    async fn tcp_checks_go_on_after_a_panic_on_their_thread() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let check = CheckSpec {
            delay_loop: std::time::Duration::from_millis(50),
            warmup: std::time::Duration::ZERO,
            ..CheckSpec::tcp(addr)
        };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let subject = SubjectSpec {
            id: SubjectId(1),
            name: "rs".into(),
            checks: vec![check],
        };
        let checker = HealthChecker::start(vec![subject], tx);
        let runs = || checker.status()[0].checks[0].checks_run;
        let wait_for = |n: u64| async move {
            for _ in 0..200 {
                if runs() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("checks stopped at {}", runs());
        };
        wait_for(2).await;
        if let Some(fleet) = &checker.shared.lock().fleet {
            fleet.inject_panic();
        }
        let before = runs();
        wait_for(before + 3).await;
        assert!(checker.status()[0].up);
        checker.shutdown().await;
    }

    #[test]
    fn reason_texts() {
        let check = CheckSpec::tcp("10.0.0.2:8080".parse().expect("addr"));
        assert_eq!(
            reason(&check, Some(&ProbeError::Refused), 1, false),
            "TCP_CHECK 10.0.0.2:8080: connection refused"
        );
        assert_eq!(
            reason(&check, Some(&ProbeError::Refused), 3, false),
            "TCP_CHECK 10.0.0.2:8080: connection refused (failed after 2 retries)"
        );
        assert_eq!(
            reason(&check, None, 0, true),
            "TCP_CHECK 10.0.0.2:8080: success"
        );
    }
}
