//! Configured data: what to check, where, and how often.
//!
//! Specs are plain values built by `dpvsd::assemble` from the keepalived
//! model; every default has already been resolved (checker ← real server ←
//! virtual server ← checker-type default, KEEPALIVED.md §8). Nothing in this
//! module changes at run time; runtime state lives in [`crate::state`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Opaque identity of a subject, chosen by the caller.
///
/// A subject is one real server of one virtual server. The id must stay the
/// same across reloads for the subject's health state to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SubjectId(pub u64);

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The kind of probe a checker runs.
///
/// Each keepalived checker block maps to one variant. Variants that need
/// their own parameters (URLs, scripts, payloads) will carry them.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `TCP_CHECK`: a TCP connect that must complete within
    /// `connect_timeout`; the connection is then closed.
    Tcp,
}

impl CheckKind {
    /// The keepalived keyword for this checker, e.g. `"TCP_CHECK"`.
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
        }
    }
}

/// One checker of a subject (one keepalived checker block), with every
/// default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// What to probe.
    pub kind: CheckKind,
    /// `connect_ip`:`connect_port` (the real server's address unless overridden).
    pub target: SocketAddr,
    /// `bindto`: the local source address, if any.
    pub bind: Option<IpAddr>,
    /// `connect_timeout`: how long the connect may take.
    pub connect_timeout: Duration,
    /// `retry`: how many extra attempts a failure gets while the checker is up.
    pub retry: u32,
    /// `delay_before_retry`: the spacing of those attempts.
    pub delay_before_retry: Duration,
    /// `delay_loop`: the interval between regular checks.
    pub delay_loop: Duration,
    /// `warmup`: the first check runs after a random delay in `[0, warmup]`;
    /// zero runs it at once.
    pub warmup: Duration,
    /// `alpha`: the checker starts down and needs one success to come up.
    pub alpha: bool,
}

impl CheckSpec {
    /// A `TCP_CHECK` of `target` with keepalived's defaults when nothing is
    /// configured at any level (KEEPALIVED.md §7.3 and §8): `delay_loop` 60 s,
    /// `connect_timeout` 5 s, `retry` 1, `delay_before_retry` 1 s, `warmup`
    /// equal to `delay_loop`, no `bindto`, no `alpha`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let spec = healthcheck::CheckSpec::tcp("10.0.0.2:8080".parse().expect("address"));
    /// assert_eq!(spec.retry, 1);
    /// assert_eq!(spec.warmup, Duration::from_secs(60));
    /// assert_eq!(spec.label(), "TCP_CHECK 10.0.0.2:8080");
    /// ```
    pub fn tcp(target: SocketAddr) -> Self {
        let delay_loop = Duration::from_secs(60);
        CheckSpec {
            kind: CheckKind::Tcp,
            target,
            bind: None,
            connect_timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            delay_loop,
            warmup: delay_loop,
            alpha: false,
        }
    }

    /// Short human name for logs and event reasons, e.g.
    /// `"TCP_CHECK 10.0.0.2:8080"`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.keyword(), self.target)
    }
}

/// A subject and its checkers.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectSpec {
    /// Stable identity chosen by the caller.
    pub id: SubjectId,
    /// Human name for logs, e.g. `"[10.0.0.2]:8080 of [10.0.0.100]:80/TCP"`.
    pub name: String,
    /// The checkers; the subject is up only when all of them are up. With no
    /// checkers the subject is always up (as in keepalived).
    pub checks: Vec<CheckSpec>,
}

impl SubjectSpec {
    /// Whether the subject counts as up before any check has run.
    ///
    /// keepalived puts a real server into IPVS at start-up unless one of its
    /// checkers has `alpha`: alpha marks that checker failed until its first
    /// success (KEEPALIVED.md §9 "alpha").
    ///
    /// ```
    /// use healthcheck::{CheckSpec, SubjectId, SubjectSpec};
    /// let check = CheckSpec::tcp("10.0.0.2:80".parse().expect("address"));
    /// let mut subject = SubjectSpec { id: SubjectId(1), name: "rs".into(), checks: vec![check] };
    /// assert!(subject.initially_up());
    /// subject.checks[0].alpha = true;
    /// assert!(!subject.initially_up());
    /// ```
    pub fn initially_up(&self) -> bool {
        self.checks.iter().all(|c| !c.alpha)
    }
}
