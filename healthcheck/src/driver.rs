//! The tokio driver: one task per subject runs its checkers.
//!
//! Each subject task updates its [`SubjectState`], which lives behind a
//! per-subject lock that only the task and [`HealthChecker::status`] take. It
//! sleeps until the earliest `next_due` of its idle checkers, starts the due
//! probes (several may be in flight at once, one per checker), and feeds each
//! outcome to the state as soon as it completes. [`SubjectStatus`] snapshots
//! are built on demand from that state, so a routine result costs no
//! allocation and no global lock; only a flip or a weight change takes the
//! registry lock to send a [`HealthEvent`].
//!
//! # Invariants
//!
//! * Neither the registry lock nor a subject's lock is held across an
//!   `.await`; the registry lock may be taken before a subject's lock, never
//!   the other way round.
//! * Each registry entry carries a generation. A task sends an event (under
//!   the registry lock) only while its generation is current, so once
//!   [`HealthChecker::remove_subject`] or a replacing
//!   [`HealthChecker::add_subject`] returns, the old task can no longer emit
//!   events or touch status, even if its abort has not landed yet.
//! * A checker has at most one probe in flight; its next probe is scheduled
//!   from the moment the previous one finished.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::error::ProbeError;
use crate::spec::{CheckKind, CheckSpec, SubjectId, SubjectSpec};
use crate::state::SubjectState;
use crate::status::{HealthEvent, SubjectStatus};
use crate::{dns, file, http, misc, ping, smtp, tcp, udp};

/// Running checkers on a tokio runtime.
///
/// Dropping it without [`HealthChecker::shutdown`] aborts every task too.
#[derive(Debug)]
pub struct HealthChecker {
    shared: Arc<Shared>,
    runtime: Handle,
}

#[derive(Debug)]
struct Shared {
    registry: Mutex<Registry>,
    events: UnboundedSender<HealthEvent>,
}

#[derive(Debug, Default)]
struct Registry {
    next_generation: u64,
    subjects: BTreeMap<SubjectId, Entry>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    live: Arc<Live>,
    task: JoinHandle<()>,
}

/// One subject's spec and runtime state, shared by its task and the registry.
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
        // A panic elsewhere cannot leave the map half-updated (every update
        // is a single insert/replace), so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `event` if `generation` is still current for its subject.
    /// Returns false when the task has been removed or replaced.
    fn publish(&self, generation: u64, event: HealthEvent) -> bool {
        let registry = self.lock();
        match registry.subjects.get(&event.subject) {
            Some(entry) if entry.generation == generation => {
                if self.events.send(event).is_err() {
                    tracing::debug!("health event receiver is gone");
                }
                true
            }
            _ => false,
        }
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
    /// touched. A subject with the same id is replaced: its task stops and the
    /// new one starts from [`SubjectSpec::initially_up`], without an event.
    ///
    /// Callable from any thread.
    pub fn add_subject(&self, spec: SubjectSpec) {
        let state = SubjectState::new(&spec, Instant::now());
        let id = spec.id;
        let name = spec.name.clone();
        let live = Arc::new(Live {
            state: Mutex::new(LiveState {
                state,
                transitions: vec![None; spec.checks.len()],
            }),
            spec,
        });
        let old = {
            let mut registry = self.shared.lock();
            registry.next_generation += 1;
            let generation = registry.next_generation;
            // Spawned under the lock so the entry exists before the task can
            // publish.
            let task = self.runtime.spawn(run_subject(
                Arc::clone(&self.shared),
                Arc::clone(&live),
                generation,
            ));
            registry.subjects.insert(
                id,
                Entry {
                    generation,
                    live,
                    task,
                },
            )
        };
        match old {
            Some(old) => {
                old.task.abort();
                tracing::info!(subject = %name, %id, "health checks replaced");
            }
            None => tracing::info!(subject = %name, %id, "health checks started"),
        }
    }

    /// Stops checking a subject (for reload). Unknown ids are ignored. No
    /// event for `id` is sent after this returns.
    ///
    /// Callable from any thread.
    pub fn remove_subject(&self, id: SubjectId) {
        let removed = self.shared.lock().subjects.remove(&id);
        if let Some(entry) = removed {
            entry.task.abort();
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

    /// Stops every checker and waits for the tasks to finish.
    pub async fn shutdown(self) {
        let entries = std::mem::take(&mut self.shared.lock().subjects);
        for entry in entries.values() {
            entry.task.abort();
        }
        for (_, entry) in entries {
            // An aborted task reports a cancellation error: expected.
            let _cancelled = entry.task.await;
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        for entry in self.shared.lock().subjects.values() {
            entry.task.abort();
        }
    }
}

/// A running probe, borrowing its spec; `Ok(Some(delta))` carries a weight
/// delta (`misc_dynamic`, `FILE_CHECK`).
type Probe<'a> = Pin<Box<dyn Future<Output = Result<Option<i64>, ProbeError>> + Send + 'a>>;

/// Each kind is boxed on its own, so that a TCP probe allocates (and moves)
/// only its own small future, not one sized for the largest kind (TLS).
fn start_probe(spec: &CheckSpec) -> Probe<'_> {
    let (target, bind, timeout) = (spec.target, spec.bind, spec.connect_timeout);
    match &spec.kind {
        CheckKind::Tcp => {
            Box::pin(async move { tcp::probe(target, bind, timeout).await.map(|()| None) })
        }
        CheckKind::Http(h) => Box::pin(async move {
            http::probe(target, bind, timeout, h, false)
                .await
                .map(|()| None)
        }),
        CheckKind::Ssl(h) => Box::pin(async move {
            http::probe(target, bind, timeout, h, true)
                .await
                .map(|()| None)
        }),
        CheckKind::Misc(m) => Box::pin(misc::probe(m, spec.delay_loop)),
        CheckKind::Udp(u) => {
            Box::pin(async move { udp::probe(target, bind, timeout, u).await.map(|()| None) })
        }
        CheckKind::Dns(d) => {
            Box::pin(async move { dns::probe(target, bind, timeout, d).await.map(|()| None) })
        }
        CheckKind::Smtp(s) => {
            Box::pin(async move { smtp::probe(target, bind, timeout, s).await.map(|()| None) })
        }
        CheckKind::Ping => {
            Box::pin(async move { ping::probe(target.ip(), bind, timeout).await.map(|()| None) })
        }
        CheckKind::File(f) => Box::pin(file::probe(f, timeout)),
    }
}

fn unix_ms_now() -> Option<u64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

async fn run_subject(shared: Arc<Shared>, live: Arc<Live>, generation: u64) {
    let spec = &live.spec;
    let n = spec.checks.len();
    if n == 0 {
        // Always up; nothing to run.
        return;
    }
    let mut in_flight: Vec<Option<Probe<'_>>> = (0..n).map(|_| None).collect();
    // Reused between rounds: when each idle checker is next due.
    let mut due: Vec<Option<Instant>> = vec![None; n];
    // When each checker's probe in flight started (latency histograms).
    let mut started: Vec<Instant> = vec![Instant::now(); n];
    loop {
        let now = Instant::now();
        {
            let live = live.lock();
            for ((slot, next), check) in in_flight.iter().zip(&mut due).zip(live.state.checks()) {
                *next = slot.is_none().then(|| check.next_due());
            }
        }
        for (((slot, next), check), t) in in_flight
            .iter_mut()
            .zip(&mut due)
            .zip(&spec.checks)
            .zip(&mut started)
        {
            if next.is_some_and(|d| d <= now) {
                *slot = Some(start_probe(check));
                *next = None;
                *t = now;
            }
        }
        let next_due = due.iter().flatten().min().copied();
        let any_in_flight = in_flight.iter().any(Option::is_some);

        let finished = poll_fn(|cx| {
            for (i, slot) in in_flight.iter_mut().enumerate() {
                if let Some(probe) = slot {
                    if let Poll::Ready(result) = probe.as_mut().poll(cx) {
                        *slot = None;
                        return Poll::Ready((i, result));
                    }
                }
            }
            Poll::Pending
        });
        let sleep = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due.into()).await,
                None => std::future::pending().await,
            }
        };
        let (index, result) = tokio::select! {
            done = finished, if any_in_flight => done,
            () = sleep => continue,
        };

        let Some(check) = spec.checks.get(index) else {
            continue;
        };
        if let Err(err) = &result {
            tracing::debug!(subject = %spec.name, check = %check.label(), error = %err, "check failed");
        }
        // A removed or replaced task is aborted at its next `.await`; until
        // then it may still update its own (now unreachable) state, but the
        // generation check keeps it from sending events.
        let event = {
            let mut live = live.lock();
            if let Some(t) = started.get(index) {
                live.state.record_latency(index, t.elapsed());
            }
            record(spec, &mut live, index, result)
        };
        if let Some(event) = event {
            tracing::info!(
                subject = %spec.name, id = %spec.id, up = event.up,
                weight_delta = ?event.weight_delta, reason = %event.reason,
                "subject state changed"
            );
            if !shared.publish(generation, event) {
                return;
            }
        }
    }
}

/// Feeds the outcome of checker `index` to the state; returns the event to
/// send, if the subject flipped or its weight delta changed.
fn record(
    spec: &SubjectSpec,
    live: &mut LiveState,
    index: usize,
    result: Result<Option<i64>, ProbeError>,
) -> Option<HealthEvent> {
    let check = spec.checks.get(index)?;
    let update = live.state.on_weighted_result(index, result, Instant::now());
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
