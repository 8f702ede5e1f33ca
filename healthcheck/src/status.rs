//! Snapshots for the control socket and the outgoing events.

use crate::spec::{CheckSpec, SubjectId, SubjectSpec};
use crate::state::{CheckState, SubjectState};

/// A subject's up/down state flipped, or its dynamic weight changed.
///
/// Never sent for the initial state: the caller starts from
/// [`SubjectSpec::initially_up`] and a weight delta of 0. An event with
/// `weight_delta: None` is always a flip; one with `Some` may leave `up` as it
/// was.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthEvent {
    /// Which subject.
    pub subject: SubjectId,
    /// Its new state.
    pub up: bool,
    /// Human text, e.g. `"TCP_CHECK 10.0.0.2:8080: connection refused"`.
    pub reason: String,
    /// The subject's new total weight delta when it changed (`misc_dynamic`, `FILE_CHECK`):
    /// the effective weight is the configured weight plus this, clamped to
    /// `0..=i32::MAX` (KEEPALIVED.md §9).
    pub weight_delta: Option<i64>,
}

/// Snapshot of one subject.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubjectStatus {
    /// Which subject.
    pub id: SubjectId,
    /// Its human name.
    pub name: String,
    /// Whether every checker is up.
    pub up: bool,
    /// The sum of its checkers' weight deltas (`misc_dynamic`, `FILE_CHECK`).
    pub weight_delta: i64,
    /// Its checkers, in spec order.
    pub checks: Vec<CheckStatus>,
}

/// Snapshot of one checker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckStatus {
    /// The keepalived keyword, e.g. `"TCP_CHECK"`.
    pub kind: String,
    /// What is probed, e.g. `"10.0.0.2:8080"` (for `MISC_CHECK` the command
    /// line).
    pub target: String,
    /// Whether the checker is up.
    pub up: bool,
    /// Outcome of the latest probe; `None` before the first.
    pub last_ok: Option<bool>,
    /// Text of the most recent failure (kept after recovery).
    pub last_error: Option<String>,
    /// Failed probes since the last success.
    pub consecutive_failures: u32,
    /// Probes completed.
    pub checks_run: u64,
    /// Wall-clock time of the checker's latest up/down flip.
    pub last_transition_unix_ms: Option<u64>,
    /// This checker's weight delta (`misc_dynamic`, `FILE_CHECK`; otherwise 0).
    pub weight_delta: i64,
    /// How long the probes took.
    pub latency: crate::Latency,
}

impl CheckStatus {
    pub(crate) fn new(spec: &CheckSpec, state: &CheckState, transition: Option<u64>) -> Self {
        CheckStatus {
            kind: spec.kind.keyword().to_owned(),
            target: spec.target_text(),
            up: state.is_up(),
            last_ok: state.last_ok(),
            last_error: state.last_error().map(ToString::to_string),
            consecutive_failures: state.consecutive_failures(),
            checks_run: state.checks_run(),
            last_transition_unix_ms: transition,
            weight_delta: state.weight_delta(),
            latency: state.latency().clone(),
        }
    }
}

impl SubjectStatus {
    /// `transitions[i]` is the last flip time of checker `i`.
    pub(crate) fn new(
        spec: &SubjectSpec,
        state: &SubjectState,
        transitions: &[Option<u64>],
    ) -> Self {
        let checks = spec
            .checks
            .iter()
            .zip(state.checks())
            .enumerate()
            .map(|(i, (spec, state))| {
                CheckStatus::new(spec, state, transitions.get(i).copied().flatten())
            })
            .collect();
        SubjectStatus {
            id: spec.id,
            name: spec.name.clone(),
            up: state.is_up(),
            weight_delta: state.weight_delta(),
            checks,
        }
    }
}
