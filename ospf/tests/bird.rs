//! Interop with a real BIRD 2 in lab namespaces (root only; prints SKIP otherwise).
//!
//! The driver runs in `<P>-h1` as router 10.99.0.1 and announces
//! 10.99.100.1/32 as a stub link; BIRD runs in `<P>-h2` as 10.99.0.2.
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ospf::driver::{self, Command as DriverCommand};
use ospf::{AnnounceAs, InterfaceSpec, SpeakerSpec};

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/tools");
const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 100, 1);

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(script: &str, args: &[&str], prefix: &str) -> bool {
    Command::new("bash")
        .arg(Path::new(TOOLS).join(script))
        .args(args)
        .env("NETLAB_PREFIX", prefix)
        .env("NETLAB_HOSTS", "h1 h2")
        .env("NETLAB_QUIET", "1")
        .status()
        .is_ok_and(|s| s.success())
}

/// Tears the lab (and BIRD) down even when the test panics.
struct Lab {
    prefix: String,
    work: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let w = self.work.join("bird");
        sh(
            "bird-peer.sh",
            &["stop", &w.to_string_lossy()],
            &self.prefix,
        );
        sh("netlab.sh", &["down"], &self.prefix);
    }
}

#[test]
fn bird_reaches_full_and_learns_the_vip() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("bird") || !have("birdc") {
        println!("SKIP: needs root and BIRD 2 (apt-get install bird2)");
        return;
    }
    if !Path::new(TOOLS).join("netlab.sh").exists() {
        println!("SKIP: {TOOLS} is absent");
        return;
    }
    let prefix = format!("to{}", std::process::id() % 100_000);
    let work = std::env::temp_dir().join(format!("ospf-bird-{prefix}"));
    std::fs::create_dir_all(&work).expect("work dir");
    let lab = Lab {
        prefix: prefix.clone(),
        work: work.clone(),
    };
    assert!(sh("netlab.sh", &["up"], &prefix), "netlab up");
    let bird = work.join("bird");
    let bird_s = bird.to_string_lossy().into_owned();
    let h2 = format!("{prefix}-h2");
    assert!(
        sh(
            "bird-peer.sh",
            &["start", &h2, &bird_s, "--router-id", "10.99.0.2"],
            &prefix
        ),
        "bird start"
    );

    // The driver, in the h1 namespace on its own thread and runtime.
    let ns = format!("/run/netns/{prefix}-h1");
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<DriverCommand>();
    let speaker = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).expect("netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: `f` is an open namespace file; setns only affects this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut ifs = InterfaceSpec::broadcast("eth0", Ipv4Addr::new(10, 99, 0, 1), 24);
            ifs.hello_interval = 1;
            ifs.dead_interval = 4;
            ifs.retransmit_interval = 2;
            let spec = SpeakerSpec {
                router_id: Ipv4Addr::new(10, 99, 0, 1),
                area: Ipv4Addr::UNSPECIFIED,
                interfaces: vec![ifs],
                announce_as: AnnounceAs::Stub,
                metric: 10,
                crypto_seq_base: 0,
            };
            let handle = driver::spawn(spec).expect("driver");
            let mut vips = BTreeSet::new();
            vips.insert(VIP);
            handle
                .commands
                .send(DriverCommand::SetAnnounced(vips))
                .await
                .expect("announce");
            while let Some(cmd) = cmd_rx.recv().await {
                let stop = cmd == DriverCommand::Shutdown;
                if handle.commands.send(cmd).await.is_err() || stop {
                    break;
                }
            }
            let _ = handle.task.await;
        });
    });

    let full = sh(
        "bird-peer.sh",
        &["wait-full", &bird_s, "10.99.0.1", "40"],
        &prefix,
    );
    let route = full
        && sh(
            "bird-peer.sh",
            &["wait-route", &bird_s, "10.99.100.1/32", "30"],
            &prefix,
        );
    let kernel = Command::new("ip")
        .args(["-n", &h2, "route", "show", "10.99.100.1"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let _ = cmd_tx.send(DriverCommand::SetAnnounced(BTreeSet::new()));
    let withdrawn = sh(
        "bird-peer.sh",
        &["wait-noroute", &bird_s, "10.99.100.1/32", "30"],
        &prefix,
    );
    let _ = cmd_tx.send(DriverCommand::Shutdown);
    let _ = speaker.join();
    drop(lab);
    assert!(full, "BIRD reached Full with us");
    assert!(route, "BIRD learned 10.99.100.1/32");
    assert!(kernel.contains("via 10.99.0.1"), "kernel route: {kernel}");
    assert!(withdrawn, "BIRD dropped the route after the withdrawal");
}
