//! Sans-IO rise/fall logic: keepalived 2.2.7's checker epilog, with time
//! passed in.
//!
//! A [`CheckState`] is one checker's runtime state. The driver asks it when
//! the next probe is due ([`CheckState::next_due`]), runs the probe, and feeds
//! the outcome back with [`CheckState::on_result`], which moves `next_due` and
//! reports whether the checker flipped. [`SubjectState`] aggregates the
//! checkers of one subject.
//!
//! # The rule (KEEPALIVED.md §9 "Failure handling", `tcp_epilog` in 2.2.7)
//!
//! With `retry_it` the count of retries already spent:
//!
//! * A success resets `retry_it`, brings a down checker up, and schedules the
//!   next check `delay_loop` later.
//! * A failure while the checker is up (or has not run yet) with
//!   `retry_it >= retry` takes it down, resets `retry_it`, and schedules the
//!   next check `delay_loop` later.
//! * A failure while up with `retry_it < retry` increments `retry_it` and
//!   schedules a retry `delay_before_retry` later. The checker stays up.
//! * A failure while down schedules the next check `delay_loop` later.
//!
//! At start-up `retry_it` is preset to `retry` ("for non alpha mode, one
//! failure is enough initially"), so a checker that has never succeeded goes
//! down on its first failure. Later, once it has been up, it gets `retry`
//! retries. With `alpha` the checker starts down; its failures are spaced
//! `delay_loop` apart and its first success brings it up.
//!
//! # Invariants
//!
//! * `next_due` only moves forward from the `now` of the last result, by at
//!   least [`MIN_INTERVAL`], so a zero `delay_loop` cannot spin.
//! * `retry_it <= retry` at all times, and `retry_it > 0` only while up.
//! * A subject is up exactly when every one of its checkers is up; with no
//!   checkers it is always up.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::ProbeError;
use crate::file::FILE_POLL_INTERVAL;
use crate::spec::{CheckKind, CheckSpec, SubjectSpec};

/// The shortest interval between two probes of one checker, whatever the
/// configured delays say.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// A random delay in `[0, warmup]` for the first check, so that checkers
/// configured together do not all fire at once.
pub fn warmup_delay(warmup: Duration, rng: &mut impl Rng) -> Duration {
    if warmup.is_zero() {
        Duration::ZERO
    } else {
        rng.gen_range(Duration::ZERO..=warmup)
    }
}

/// Runtime state of one checker.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckState {
    retry: u32,
    delay_before_retry: Duration,
    delay_loop: Duration,
    up: bool,
    has_run: bool,
    retry_it: u32,
    next_due: Instant,
    consecutive_failures: u32,
    checks_run: u64,
    last_ok: Option<bool>,
    last_error: Option<ProbeError>,
    weight_delta: i64,
    /// `misc_dynamic` in DPVS's dialect: this checker's delta replaces the
    /// others' (see [`SubjectState::weight_delta`]).
    absolute: bool,
    /// When `absolute`: the subject-wide order of this checker's latest
    /// delta (0: none since it last went down).
    delta_seq: u64,
    latency: crate::Latency,
}

impl CheckState {
    /// A checker configured at `now`: its first check is due after a random
    /// warmup delay in `[0, spec.warmup]`.
    pub fn new(spec: &CheckSpec, now: Instant) -> Self {
        let delay = warmup_delay(spec.warmup, &mut rand::thread_rng());
        Self::starting_at(spec, now + delay)
    }

    /// A checker whose first check is due at `first_due` (deterministic
    /// version of [`CheckState::new`]).
    ///
    /// `FILE_CHECK` is event-driven in keepalived: a fault takes it down at
    /// once, so it gets no retries, and the file is read at least every
    /// [`FILE_POLL_INTERVAL`].
    pub fn starting_at(spec: &CheckSpec, first_due: Instant) -> Self {
        let (retry, delay_loop) = match spec.kind {
            CheckKind::File(_) => (0, spec.delay_loop.min(FILE_POLL_INTERVAL)),
            _ => (spec.retry, spec.delay_loop),
        };
        CheckState {
            retry,
            delay_before_retry: spec.delay_before_retry,
            delay_loop,
            up: !spec.alpha,
            has_run: false,
            // keepalived presets this at start-up for non-alpha checkers:
            // one failure is enough initially.
            retry_it: if spec.alpha { 0 } else { retry },
            next_due: first_due,
            consecutive_failures: 0,
            checks_run: 0,
            last_ok: None,
            last_error: None,
            weight_delta: 0,
            absolute: matches!(&spec.kind, CheckKind::Misc(m) if m.dynamic && m.absolute_weight),
            delta_seq: 0,
            latency: crate::Latency::default(),
        }
    }

    /// How long the probes took.
    pub fn latency(&self) -> &crate::Latency {
        &self.latency
    }

    /// Records how long a probe took (the driver measures it).
    pub fn record_latency(&mut self, d: Duration) {
        self.latency.record(d);
    }

    /// When the next probe should start.
    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// Whether the checker is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Failed probes since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Probes completed so far.
    pub fn checks_run(&self) -> u64 {
        self.checks_run
    }

    /// Outcome of the latest probe; `None` before the first.
    pub fn last_ok(&self) -> Option<bool> {
        self.last_ok
    }

    /// The most recent failure; kept after a later success.
    pub fn last_error(&self) -> Option<&ProbeError> {
        self.last_error.as_ref()
    }

    /// This checker's weight delta (`misc_dynamic`, `FILE_CHECK`; 0 for other checkers).
    pub fn weight_delta(&self) -> i64 {
        self.weight_delta
    }

    /// As [`CheckState::on_result`], for a probe that may report a weight
    /// delta: `Ok(Some(delta))` sets it, `Ok(None)` keeps it. A failure that
    /// takes the checker down resets it to 0 (keepalived removes the delta
    /// before marking the real server down).
    pub fn on_weighted_result(
        &mut self,
        result: Result<Option<i64>, ProbeError>,
        now: Instant,
    ) -> Option<bool> {
        let delta = result.as_ref().ok().copied().flatten();
        let flipped = self.on_result(result.map(|_| ()), now);
        if let Some(delta) = delta {
            self.weight_delta = delta;
        }
        if flipped == Some(false) {
            self.weight_delta = 0;
        }
        flipped
    }

    /// Records the outcome of a probe that finished at `now` and schedules the
    /// next one. Returns the checker's new up state if it flipped.
    pub fn on_result(&mut self, result: Result<(), ProbeError>, now: Instant) -> Option<bool> {
        self.checks_run += 1;
        let ok = result.is_ok();
        self.last_ok = Some(ok);
        match result {
            Ok(()) => self.consecutive_failures = 0,
            Err(err) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_error = Some(err);
            }
        }

        let mut flipped = None;
        let delay = if ok || ((self.up || !self.has_run) && self.retry_it >= self.retry) {
            self.retry_it = 0;
            if ok != self.up {
                self.up = ok;
                flipped = Some(ok);
            }
            self.delay_loop
        } else if self.up {
            self.retry_it += 1;
            self.delay_before_retry
        } else {
            self.delay_loop
        };
        self.has_run = true;
        self.next_due = now + delay.max(MIN_INTERVAL);
        flipped
    }
}

/// What one result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubjectUpdate {
    /// The checker's new up state, if it flipped.
    pub check: Option<bool>,
    /// The subject's new up state, if it flipped.
    pub subject: Option<bool>,
    /// The subject's new total weight delta, if it changed.
    pub weight_delta: Option<i64>,
}

/// Runtime state of one subject: its checkers and the all-up aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectState {
    checks: Vec<CheckState>,
    up: bool,
    /// Orders the deltas of `absolute` checkers.
    seq: u64,
}

impl SubjectState {
    /// A subject configured at `now`, each checker with its own random warmup.
    pub fn new(spec: &SubjectSpec, now: Instant) -> Self {
        Self::from_checks(
            spec.checks
                .iter()
                .map(|c| CheckState::new(c, now))
                .collect(),
        )
    }

    /// A subject made of already-built checker states.
    pub fn from_checks(checks: Vec<CheckState>) -> Self {
        let up = checks.iter().all(CheckState::is_up);
        SubjectState { checks, up, seq: 0 }
    }

    /// Whether every checker is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The checkers, in spec order.
    pub fn checks(&self) -> &[CheckState] {
        &self.checks
    }

    /// Records how long checker `index`'s probe took.
    pub fn record_latency(&mut self, index: usize, d: Duration) {
        if let Some(c) = self.checks.get_mut(index) {
            c.record_latency(d);
        }
    }

    /// The sum of the checkers' weight deltas: keepalived's effective weight
    /// is the configured weight plus this (KEEPALIVED.md §9).
    ///
    /// DPVS's fork (`misc_dynamic` with [`crate::MiscSpec::absolute_weight`])
    /// sets the weight absolutely instead: once such a checker has reported
    /// (and until it goes down), the delta of the one that reported last is
    /// the subject's whole delta, so the weight is its `status - 2` (exit 0:
    /// the configured weight), whatever the other checkers say.
    pub fn weight_delta(&self) -> i64 {
        let latest_absolute = self
            .checks
            .iter()
            .filter(|c| c.absolute && c.delta_seq > 0)
            .max_by_key(|c| c.delta_seq);
        match latest_absolute {
            Some(c) => c.weight_delta(),
            None => self
                .checks
                .iter()
                .fold(0i64, |sum, c| sum.saturating_add(c.weight_delta())),
        }
    }

    /// Feeds the result of checker `index` (spec order). An index with no
    /// checker changes nothing.
    pub fn on_result(
        &mut self,
        index: usize,
        result: Result<(), ProbeError>,
        now: Instant,
    ) -> SubjectUpdate {
        self.on_weighted_result(index, result.map(|()| None), now)
    }

    /// As [`SubjectState::on_result`], for a probe that may report a weight
    /// delta (see [`CheckState::on_weighted_result`]).
    pub fn on_weighted_result(
        &mut self,
        index: usize,
        result: Result<Option<i64>, ProbeError>,
        now: Instant,
    ) -> SubjectUpdate {
        let before = self.weight_delta();
        let Some(check) = self.checks.get_mut(index) else {
            return SubjectUpdate::default();
        };
        let reported = matches!(result, Ok(Some(_)));
        let flipped = check.on_weighted_result(result, now);
        if check.absolute {
            if flipped == Some(false) {
                check.delta_seq = 0;
            } else if reported {
                self.seq += 1;
                check.delta_seq = self.seq;
            }
        }
        let check = flipped;
        let up = self.checks.iter().all(CheckState::is_up);
        let subject = (up != self.up).then_some(up);
        self.up = up;
        let after = self.weight_delta();
        SubjectUpdate {
            check,
            subject,
            weight_delta: (after != before).then_some(after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const S: Duration = Duration::from_secs(1);

    fn spec(retry: u32, alpha: bool) -> CheckSpec {
        let mut spec = CheckSpec::tcp(([10, 0, 0, 2], 80).into());
        spec.retry = retry;
        spec.delay_loop = 10 * S;
        spec.delay_before_retry = 2 * S;
        spec.warmup = Duration::ZERO;
        spec.alpha = alpha;
        spec
    }

    fn fail() -> Result<(), ProbeError> {
        Err(ProbeError::Refused)
    }

    /// Feeds `outcomes`, each at the moment the previous one scheduled, and
    /// returns (time offset of each probe, flip) pairs.
    fn run(
        state: &mut CheckState,
        base: Instant,
        outcomes: &[bool],
    ) -> Vec<(Duration, Option<bool>)> {
        outcomes
            .iter()
            .map(|&ok| {
                let at = state.next_due();
                let result = if ok { Ok(()) } else { fail() };
                (at - base, state.on_result(result, at))
            })
            .collect()
    }

    #[test]
    fn starts_up_and_first_check_at_first_due() {
        let base = Instant::now();
        let state = CheckState::starting_at(&spec(3, false), base + 5 * S);
        assert!(state.is_up());
        assert_eq!(state.next_due(), base + 5 * S);
        assert_eq!(state.checks_run(), 0);
        assert_eq!(state.last_ok(), None);
    }

    #[test]
    fn startup_single_failure_takes_it_down() {
        // retry_it is preset to retry: no retries before the first success.
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(3, false), base);
        let steps = run(&mut state, base, &[false, false]);
        assert_eq!(
            steps,
            vec![(Duration::ZERO, Some(false)), (10 * S, None)],
            "down on the first failure, then delay_loop spacing while down"
        );
        assert!(!state.is_up());
        assert_eq!(state.consecutive_failures(), 2);
        assert_eq!(state.last_error(), Some(&ProbeError::Refused));
    }

    #[test]
    fn startup_success_keeps_it_up_without_flip() {
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(1, false), base);
        assert_eq!(run(&mut state, base, &[true]), vec![(Duration::ZERO, None)]);
        assert_eq!(state.next_due(), base + 10 * S);
        assert_eq!(state.last_ok(), Some(true));
    }

    #[test]
    fn retries_after_having_run() {
        // After the first success, a failure gets `retry` retries spaced by
        // delay_before_retry, then the checker goes down.
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(2, false), base);
        let steps = run(&mut state, base, &[true, false, false, false, false]);
        assert_eq!(
            steps,
            vec![
                (Duration::ZERO, None),
                (10 * S, None),
                (12 * S, None),
                (14 * S, Some(false)),
                (24 * S, None),
            ]
        );
        assert_eq!(state.consecutive_failures(), 4);
    }

    #[test]
    fn success_during_retries_resets_the_counter() {
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(1, false), base);
        let steps = run(&mut state, base, &[true, false, true, false, false]);
        assert_eq!(
            steps,
            vec![
                (Duration::ZERO, None),
                (10 * S, None),
                (12 * S, None),
                (22 * S, None),
                (24 * S, Some(false)),
            ],
            "the success at 12 s reset retry_it, so the failure at 22 s retried again"
        );
    }

    #[test]
    fn retry_zero_goes_down_on_first_failure() {
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(0, false), base);
        let steps = run(&mut state, base, &[true, false]);
        assert_eq!(steps, vec![(Duration::ZERO, None), (10 * S, Some(false))]);
    }

    #[test]
    fn recovery_on_next_success_then_retries_again() {
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(1, false), base);
        let steps = run(&mut state, base, &[false, false, true, false, false]);
        assert_eq!(
            steps,
            vec![
                (Duration::ZERO, Some(false)),
                (10 * S, None),
                (20 * S, Some(true)),
                (30 * S, None),
                (32 * S, Some(false)),
            ],
            "one success brings it up; once up it gets its retry again"
        );
        assert_eq!(state.checks_run(), 5);
    }

    #[test]
    fn alpha_starts_down_and_comes_up_on_first_success() {
        let base = Instant::now();
        let mut state = CheckState::starting_at(&spec(3, true), base);
        assert!(!state.is_up());
        let steps = run(&mut state, base, &[false, false, true, false]);
        assert_eq!(
            steps,
            vec![
                (Duration::ZERO, None),
                (10 * S, None),
                (20 * S, Some(true)),
                (30 * S, None),
            ],
            "failures while down are delay_loop apart; after coming up it retries"
        );
        assert!(state.is_up());
    }

    #[test]
    fn zero_delays_are_clamped() {
        let base = Instant::now();
        let mut s = spec(1, false);
        s.delay_loop = Duration::ZERO;
        s.delay_before_retry = Duration::ZERO;
        let mut state = CheckState::starting_at(&s, base);
        state.on_result(Ok(()), base);
        assert_eq!(state.next_due(), base + MIN_INTERVAL);
        state.on_result(fail(), base);
        assert_eq!(state.next_due(), base + MIN_INTERVAL);
    }

    #[test]
    fn warmup_delay_is_bounded() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(warmup_delay(Duration::ZERO, &mut rng), Duration::ZERO);
        for _ in 0..200 {
            assert!(warmup_delay(3 * S, &mut rng) <= 3 * S);
        }
        let base = Instant::now();
        let mut s = spec(1, false);
        s.warmup = 5 * S;
        let due = CheckState::new(&s, base).next_due();
        assert!(due >= base && due <= base + 5 * S);
    }

    fn subject(a: &CheckSpec, b: &CheckSpec, base: Instant) -> SubjectState {
        SubjectState::from_checks(vec![
            CheckState::starting_at(a, base),
            CheckState::starting_at(b, base),
        ])
    }

    #[test]
    fn subject_down_when_one_checker_down() {
        let base = Instant::now();
        let s = spec(0, false);
        let mut subject = subject(&s, &s, base);
        assert!(subject.is_up());
        assert_eq!(subject.on_result(0, Ok(()), base), SubjectUpdate::default());
        assert_eq!(
            subject.on_result(1, fail(), base),
            SubjectUpdate {
                check: Some(false),
                subject: Some(false),
                weight_delta: None,
            }
        );
        // The other checker going down too does not flip the subject again.
        assert_eq!(
            subject.on_result(0, fail(), base + 10 * S),
            SubjectUpdate {
                check: Some(false),
                subject: None,
                weight_delta: None,
            }
        );
        // One recovery is not enough: both must be up.
        assert_eq!(
            subject.on_result(1, Ok(()), base + 10 * S),
            SubjectUpdate {
                check: Some(true),
                subject: None,
                weight_delta: None,
            }
        );
        assert!(!subject.is_up());
        assert_eq!(
            subject.on_result(0, Ok(()), base + 20 * S),
            SubjectUpdate {
                check: Some(true),
                subject: Some(true),
                weight_delta: None,
            }
        );
        assert!(subject.checks().iter().all(CheckState::is_up));
    }

    #[test]
    fn subject_with_alpha_checker_starts_down() {
        let base = Instant::now();
        let mut subject = subject(&spec(1, false), &spec(1, true), base);
        assert!(!subject.is_up());
        assert_eq!(
            subject.on_result(1, Ok(()), base),
            SubjectUpdate {
                check: Some(true),
                subject: Some(true),
                weight_delta: None,
            }
        );
    }

    #[test]
    fn subject_new_matches_initially_up_and_ignores_bad_index() {
        let base = Instant::now();
        let mut spec = SubjectSpec {
            id: crate::SubjectId(1),
            name: "rs".into(),
            checks: vec![spec(1, false), spec(1, true)],
        };
        assert_eq!(SubjectState::new(&spec, base).is_up(), spec.initially_up());
        spec.checks.pop();
        let mut state = SubjectState::new(&spec, base);
        assert_eq!(state.is_up(), spec.initially_up());
        assert_eq!(state.on_result(5, fail(), base), SubjectUpdate::default());
        assert!(SubjectState::from_checks(Vec::new()).is_up());
    }

    #[test]
    fn weight_delta_follows_dynamic_results() {
        let base = Instant::now();
        let s = spec(1, false);
        let mut subject = subject(&s, &s, base);
        assert_eq!(subject.weight_delta(), 0);
        let update = subject.on_weighted_result(0, Ok(Some(-5)), base);
        assert_eq!(
            update,
            SubjectUpdate {
                check: None,
                subject: None,
                weight_delta: Some(-5),
            }
        );
        assert_eq!(
            subject
                .on_weighted_result(1, Ok(Some(3)), base)
                .weight_delta,
            Some(-2)
        );
        // Ok(None) keeps the delta; the same value again is no change.
        assert_eq!(
            subject
                .on_weighted_result(0, Ok(None), base + 10 * S)
                .weight_delta,
            None
        );
        assert_eq!(
            subject
                .on_weighted_result(1, Ok(Some(3)), base + 10 * S)
                .weight_delta,
            None
        );
        assert_eq!(subject.checks()[0].weight_delta(), -5);
        // A failure being retried keeps the delta ...
        assert_eq!(
            subject.on_weighted_result(0, Err(ProbeError::Refused), base + 20 * S),
            SubjectUpdate::default()
        );
        assert_eq!(subject.weight_delta(), -2);
        // ... and the failure that takes the checker down removes it.
        assert_eq!(
            subject.on_weighted_result(0, Err(ProbeError::Refused), base + 22 * S),
            SubjectUpdate {
                check: Some(false),
                subject: Some(false),
                weight_delta: Some(3),
            }
        );
        assert_eq!(subject.checks()[0].weight_delta(), 0);
    }
}
