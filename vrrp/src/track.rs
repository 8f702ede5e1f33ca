//! Trackers and keepalived's weight rules (KEEPALIVED.md §4, §5, §9).
//!
//! A tracker's status turns into an [`Effect`] on the instance: FAULT, or a
//! priority delta. The driver feeds statuses ([`TrackStatus`]); scripts go
//! through [`ScriptState`] first, which applies `rise`/`fall`.

use std::time::Duration;

/// What is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// `track_interface`: the link of an interface.
    Interface,
    /// `track_script`: a `vrrp_script`.
    Script,
    /// `track_file`: an integer in a file.
    File,
}

/// One `track_*` line of an instance or sync group, with the weight already
/// resolved (the line's weight, else the script's / file's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// Kind of tracker.
    pub kind: TrackKind,
    /// Interface, script or file name.
    pub name: String,
    /// keepalived's weight: 0 means FAULT on failure.
    pub weight: i32,
    /// `reverse`: flips up and down (negates a file's value).
    pub reverse: bool,
}

/// The latest status of a tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackStatus {
    /// Interface up / script succeeding.
    Up,
    /// Interface down / script failing.
    Down,
    /// The integer read from a tracked file.
    Value(i64),
}

/// What a tracker does to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The instance must be in FAULT.
    Fault,
    /// Added to the base priority (before clamping to 1..254).
    Delta(i64),
}

impl TrackSpec {
    /// keepalived's rule for this tracker in `status`.
    ///
    /// Interfaces and scripts: weight 0 faults when down; a positive weight
    /// is added while up; a negative one while down. Files: weight 0 faults
    /// on a non-zero value; otherwise value × weight is added, and a result
    /// below -253 faults. `reverse` flips up/down, or negates the product
    /// (with weight 0: a zero value faults).
    pub fn effect(&self, status: TrackStatus) -> Effect {
        let w = i64::from(self.weight);
        match status {
            TrackStatus::Up | TrackStatus::Down => {
                let up = (status == TrackStatus::Up) != self.reverse;
                match (w, up) {
                    (0, false) => Effect::Fault,
                    (0, true) => Effect::Delta(0),
                    (w, true) if w > 0 => Effect::Delta(w),
                    (w, false) if w < 0 => Effect::Delta(w),
                    _ => Effect::Delta(0),
                }
            }
            TrackStatus::Value(v) => {
                if w == 0 {
                    return if (v != 0) != self.reverse {
                        Effect::Fault
                    } else {
                        Effect::Delta(0)
                    };
                }
                let d = v.saturating_mul(w);
                let d = if self.reverse { d.saturating_neg() } else { d };
                if d < -253 {
                    Effect::Fault
                } else {
                    Effect::Delta(d)
                }
            }
        }
    }
}

/// A `vrrp_script` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// The script's name (what `track_script` refers to).
    pub name: String,
    /// The command line, program first.
    pub command: Vec<String>,
    /// How often it runs (default 1 s).
    pub interval: Duration,
    /// How long a run may take; `None` means the interval.
    pub timeout: Option<Duration>,
    /// Default weight for trackers that give none.
    pub weight: i32,
    /// Default `reverse`.
    pub reverse: bool,
    /// Consecutive successes to become up (default 1).
    pub rise: u32,
    /// Consecutive failures to become down (default 1).
    pub fall: u32,
    /// `user USER [GROUP]`.
    pub user: Option<(String, Option<String>)>,
    /// `init_fail`: start down instead of up.
    pub init_fail: bool,
}

impl ScriptSpec {
    /// A script with keepalived's defaults.
    pub fn new(name: impl Into<String>, command: Vec<String>) -> ScriptSpec {
        ScriptSpec {
            name: name.into(),
            command,
            interval: Duration::from_secs(1),
            timeout: None,
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            user: None,
            init_fail: false,
        }
    }

    /// The effective timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(self.interval)
    }
}

/// A `vrrp_track_file` block: `track_file NAME` lines refer to it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The block's name.
    pub name: String,
    /// `file PATH`.
    pub path: std::path::PathBuf,
}

/// Rise/fall hysteresis of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptState {
    up: bool,
    run: u32,
    rise: u32,
    fall: u32,
}

impl ScriptState {
    /// Starts up, or down with `init_fail`.
    pub fn new(spec: &ScriptSpec) -> ScriptState {
        ScriptState {
            up: !spec.init_fail,
            run: 0,
            rise: spec.rise.max(1),
            fall: spec.fall.max(1),
        }
    }

    /// The current status.
    pub fn status(&self) -> TrackStatus {
        if self.up {
            TrackStatus::Up
        } else {
            TrackStatus::Down
        }
    }

    /// Records one run (a timeout is a failure); returns the new status when it changes.
    pub fn record(&mut self, success: bool) -> Option<TrackStatus> {
        if success == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if success { self.rise } else { self.fall };
        if self.run >= needed {
            self.up = success;
            self.run = 0;
            Some(self.status())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: TrackKind, weight: i32, reverse: bool) -> TrackSpec {
        TrackSpec {
            kind,
            name: "x".into(),
            weight,
            reverse,
        }
    }

    #[test]
    fn weight_rules() {
        let i = TrackKind::Interface;
        assert_eq!(t(i, 0, false).effect(TrackStatus::Down), Effect::Fault);
        assert_eq!(t(i, 0, false).effect(TrackStatus::Up), Effect::Delta(0));
        assert_eq!(t(i, 0, true).effect(TrackStatus::Up), Effect::Fault);
        assert_eq!(t(i, 10, false).effect(TrackStatus::Up), Effect::Delta(10));
        assert_eq!(t(i, 10, false).effect(TrackStatus::Down), Effect::Delta(0));
        assert_eq!(
            t(i, -10, false).effect(TrackStatus::Down),
            Effect::Delta(-10)
        );
        assert_eq!(t(i, -10, false).effect(TrackStatus::Up), Effect::Delta(0));
        assert_eq!(t(i, -10, true).effect(TrackStatus::Up), Effect::Delta(-10));
        let f = TrackKind::File;
        assert_eq!(t(f, 0, false).effect(TrackStatus::Value(3)), Effect::Fault);
        assert_eq!(
            t(f, 0, false).effect(TrackStatus::Value(0)),
            Effect::Delta(0)
        );
        assert_eq!(t(f, 0, true).effect(TrackStatus::Value(0)), Effect::Fault);
        assert_eq!(
            t(f, 5, false).effect(TrackStatus::Value(-3)),
            Effect::Delta(-15)
        );
        assert_eq!(
            t(f, 5, true).effect(TrackStatus::Value(3)),
            Effect::Delta(-15)
        );
        assert_eq!(
            t(f, 1, false).effect(TrackStatus::Value(-254)),
            Effect::Fault
        );
        assert_eq!(
            t(f, 1, false).effect(TrackStatus::Value(-253)),
            Effect::Delta(-253)
        );
    }

    #[test]
    fn rise_and_fall() {
        let mut spec = ScriptSpec::new("chk", vec!["/bin/true".into()]);
        spec.rise = 2;
        spec.fall = 3;
        let mut s = ScriptState::new(&spec);
        assert_eq!(s.status(), TrackStatus::Up);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None); // a success resets the failure run
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(TrackStatus::Down));
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(TrackStatus::Up));
        spec.init_fail = true;
        assert_eq!(ScriptState::new(&spec).status(), TrackStatus::Down);
    }
}
