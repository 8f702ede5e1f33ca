//! keepalived-compatible health checking for dpvsd.
//!
//! A *subject* (one real server of one virtual server) has one or more
//! checkers and is up only when every checker is up (keepalived's rule).
//! Rise/fall logic is sans-IO with time passed in; the tokio driver does the
//! probing and reports [`HealthEvent`]s. Nothing here knows about the
//! dataplane or the config parser: `dpvsd::assemble` builds the specs and maps
//! events to dataplane commands.
//!
//! # Layers
//!
//! ```text
//!  SubjectSpec / CheckSpec        configured data (spec)        plain values
//!          │
//!  SubjectState / CheckState      rise/fall rules (state)       sans-IO, time passed in
//!          │  next_due(), on_result(result, now)
//!  HealthChecker                  driver (driver)               one runner per distinct checker:
//!          │                      TCP_CHECK on one thread (fleet), the others as tokio tasks
//!          │  probes: tcp (TCP_CHECK), http (HTTP_GET, SSL_GET),
//!          │          misc (MISC_CHECK), udp (UDP_CHECK), dns (DNS_CHECK),
//!          │          smtp (SMTP_CHECK), ping (PING_CHECK), file (FILE_CHECK)
//!          ▼
//!  HealthEvent (flips only)  +  status() snapshots (SubjectStatus / CheckStatus)
//!
//!  Quorum                         quorum/hysteresis (quorum)    sans-IO, per virtual server
//! ```
//!
//! # Model and invariants
//!
//! * A checker is up or down. Non-alpha checkers start up; `alpha` checkers
//!   start down until their first success. [`SubjectSpec::initially_up`]
//!   gives the resulting initial subject state, for which no event is sent.
//! * keepalived 2.2.7 failure handling (KEEPALIVED.md §9): while a checker is
//!   up, a failure is retried `retry` times, `delay_before_retry` apart, before
//!   the checker goes down; a success in between resets the count. At start-up
//!   the retry count is preset so that a checker that has never run goes down
//!   on its first failure. While down, the next success brings it up. See
//!   [`state`] for the exact rule.
//! * A subject is up exactly when all its checkers are up. A
//!   [`HealthEvent`] is sent when that aggregate flips or when the subject's
//!   total weight delta (`misc_dynamic`, `FILE_CHECK`) changes; the flips among them
//!   alternate between down and up.
//! * Probes run every `delay_loop`; the first one after a random delay in
//!   `[0, warmup]`.
//! * Equal checkers ([`CheckSpec`] equality: kind, parameters, target,
//!   source, timing) run once, whichever subjects have them, and feed each
//!   of them; keepalived runs each one separately.
//! * Adding, replacing or removing a subject never restarts or flaps another.
//!
//! # Example
//!
//! ```no_run
//! use healthcheck::{CheckSpec, HealthChecker, SubjectId, SubjectSpec};
//!
//! # async fn run() {
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let subject = SubjectSpec {
//!     id: SubjectId(1),
//!     name: "[10.0.0.2]:8080 of [10.0.0.100]:80/TCP".into(),
//!     checks: vec![CheckSpec::tcp("10.0.0.2:8080".parse().expect("address"))],
//! };
//! let checker = HealthChecker::start(vec![subject], tx);
//! while let Some(event) = rx.recv().await {
//!     println!("{} is {}: {}", event.subject.0, if event.up { "up" } else { "down" }, event.reason);
//! }
//! checker.shutdown().await;
//! # }
//! ```

mod dns;
mod driver;
mod error;
mod file;
mod fleet;
mod http;
mod latency;
mod misc;
mod ping;
pub mod quorum;
mod script;
mod smtp;
mod spec;
pub mod state;
mod status;
mod tcp;
mod udp;

pub use driver::HealthChecker;
pub use error::{IoStage, ProbeError};
pub use file::FILE_POLL_INTERVAL;
pub use http::{HTTP_MAX_BODY, HTTP_MAX_HEADER};
pub use latency::{Latency, LATENCY_BOUNDS_US};
pub use misc::{run_script, KILL_GRACE, NOTIFY_TIMEOUT};
pub use quorum::{Quorum, QuorumTransition, QuorumWarning};
pub use script::script_insecurity;
pub use smtp::{SMTP_MAX_LINE, SMTP_MAX_REPLY_LINES};
pub use spec::{
    CheckKind, CheckSpec, DnsSpec, DnsType, FileSpec, HttpProtocol, HttpSpec, MiscSpec,
    ReplyPattern, SmtpSpec, SubjectId, SubjectSpec, UdpSpec, UrlSpec, SMTP_DEFAULT_HELO,
};
pub use state::{CheckState, SubjectState, SubjectUpdate};
pub use status::{CheckStatus, HealthEvent, SubjectStatus};
