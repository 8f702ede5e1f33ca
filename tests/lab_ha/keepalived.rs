//! A real keepalived peer for the VRRP end-to-end test.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::common::{finish, wait_for, Lab};

/// A keepalived (`--vrrp --dont-fork`) in a namespace, logging to the lab
/// directory.
pub struct Keepalived {
    child: Option<Child>,
    log: PathBuf,
}

impl Keepalived {
    pub fn start(lab: &Lab, ns: &str, conf: &str) -> Keepalived {
        Keepalived::start_in(&lab.dir, ns, conf)
    }

    /// As [`Keepalived::start`], with its files in `dir` (any lab).
    pub fn start_in(dir: &Path, ns: &str, conf: &str) -> Keepalived {
        Keepalived {
            child: Some(testlab::spawn_keepalived(ns, dir, conf)),
            log: dir.join("keepalived.log"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last state keepalived logged (`MASTER`, `BACKUP`, `FAULT`).
    pub fn state(&self) -> Option<&'static str> {
        let log = self.log();
        ["MASTER", "BACKUP", "FAULT"]
            .into_iter()
            .filter_map(|w| log.rfind(&format!("Entering {w} STATE")).map(|p| (p, w)))
            .max_by_key(|(p, _)| *p)
            .map(|(_, w)| w)
    }

    pub fn wait_state(&self, state: &str, timeout: Duration) -> bool {
        wait_for(timeout, || (self.state() == Some(state)).then_some(())).is_some()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            finish(c, nix::sys::signal::Signal::SIGTERM);
        }
    }
}
