//! A real BIRD 2 router and an nginx real server for the OSPF end-to-end test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{finish, output, wait_for, Lab};

/// BIRD 2 in a namespace with its own control socket.
pub struct Bird {
    child: Option<Child>,
    ctl: PathBuf,
}

impl Bird {
    pub fn start(lab: &Lab, ns: &str, conf: &str) -> Bird {
        let cfg = lab.write("bird.conf", conf);
        let ctl = lab.dir.join("bird.ctl");
        let log = std::fs::File::create(lab.dir.join("bird.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "bird", "-f", "-c"])
            .arg(&cfg)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(lab.dir.join("bird.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bird");
        let b = Bird {
            child: Some(child),
            ctl,
        };
        let up = wait_for(Duration::from_secs(10), || {
            b.cli(&["show", "status"]).contains("BIRD").then_some(())
        });
        assert!(up.is_some(), "BIRD did not open its control socket");
        b
    }

    /// `birdc -s CTL ARGS` output.
    pub fn cli(&self, args: &[&str]) -> String {
        let ctl = self.ctl.to_string_lossy().into_owned();
        let mut all = vec!["birdc", "-s", ctl.as_str()];
        all.extend_from_slice(args);
        output(&all)
    }

    /// Whether a neighbour with `router_id` is Full.
    pub fn full_with(&self, router_id: &str) -> bool {
        self.cli(&["show", "ospf", "neighbors"]).lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&router_id) && w.get(2).is_some_and(|s| s.starts_with("Full"))
        })
    }

    /// Whether BIRD has `prefix` from OSPF.
    pub fn has_route(&self, prefix: &str) -> bool {
        self.cli(&["show", "route", prefix]).contains("[ospf1 ")
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            finish(c, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// nginx listening on `addr:port` in a namespace (a real server).
pub struct Nginx {
    child: Option<Child>,
}

impl Nginx {
    pub fn start(lab: &Lab, ns: &str, listen: &str) -> Nginx {
        let port = listen.rsplit(':').next().and_then(|p| p.parse().ok());
        let servers = format!(
            "  server {{\n    listen {listen};\n    location / {{ return 200 \"rs\\n\"; }}\n  }}\n"
        );
        let child = testlab::spawn_nginx(ns, &lab.dir.join("nginx"), &servers, port.unwrap_or(80));
        Nginx { child: Some(child) }
    }

    /// Kills it (the real server fails).
    pub fn kill(mut self) {
        if let Some(c) = self.child.as_mut() {
            finish(c, nix::sys::signal::Signal::SIGKILL);
        }
        self.child = None;
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            finish(c, nix::sys::signal::Signal::SIGKILL);
        }
    }
}
