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
        let dir = lab.dir.join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n\
             \x20 proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n\
             \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
             \x20 server {{\n    listen {listen};\n    location / {{ return 200 \"rs\\n\"; }}\n  }}\n}}\n"
        );
        let cfg = dir.join("nginx.conf");
        std::fs::write(&cfg, conf).expect("nginx.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "nginx", "-c"])
            .arg(&cfg)
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let port = listen.rsplit(':').next().unwrap_or(listen).to_string();
        let up = wait_for(Duration::from_secs(5), || {
            output(&[
                "ip",
                "netns",
                "exec",
                ns,
                "ss",
                "-Htln",
                &format!("sport = :{port}"),
            ])
            .contains(&port)
            .then_some(())
        });
        assert!(up.is_some(), "nginx is not listening on {listen}");
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
