//! End to end: reloads change nothing that did not change.
//!
//! A client in the lab keeps 100 TCP connections open through the VIP and
//! sends HTTP requests on them in a loop while dpvsd is reloaded 20 times
//! (alternating real-server weights, through `dpvsctl reload` and SIGHUP),
//! once with a broken file. Asserts: zero failed requests on the same
//! connections (none is re-opened), every valid reload applied with its
//! changes, the broken one rejected with its diagnostic and the running
//! configuration kept, and no health flap of the unchanged real servers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{can_run, Lab, RS1, RS2, VIP};

const CONNS: usize = 100;
const RELOADS: usize = 20;

fn config(w1: u32, w2: u32) -> String {
    format!(
        "local_address_group laddr_g1 {{\n    10.99.0.200 eth0\n}}\n\
         virtual_server {VIP} 80 {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name laddr_g1\n\
         \x20   real_server 10.99.0.3 8080 {{\n        weight {w1}\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n\
         \x20   real_server 10.99.0.4 8080 {{\n        weight {w2}\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n}}\n"
    )
}

/// One HTTP/1.1 request on a kept-alive connection; the body on success.
fn request(stream: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    stream
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")?;
    let mut len = None;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let len = len.ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0u8; len.min(4096)];
    stream.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).trim().to_string())
}

struct ClientResult {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Runs the client inside the lab's client namespace until `stop`.
fn client(netns: String, stop: Arc<AtomicBool>) -> ClientResult {
    let mut r = ClientResult {
        ok: 0,
        failed: 0,
        first_error: None,
    };
    let ns = match std::fs::File::open(format!("/run/netns/{netns}")) {
        Ok(f) => f,
        Err(e) => {
            r.first_error = Some(format!("open netns: {e}"));
            r.failed = 1;
            return r;
        }
    };
    if let Err(e) = nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET) {
        r.first_error = Some(format!("setns: {e}"));
        r.failed = 1;
        return r;
    }
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("vip");
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        match TcpStream::connect_timeout(&vip, Duration::from_secs(3)) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
                conns.push(BufReader::new(s));
            }
            Err(e) => {
                r.failed += 1;
                r.first_error.get_or_insert(format!("connect: {e}"));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for c in &mut conns {
            match request(c) {
                Ok(body) if body == "rs1" || body == "rs2" => r.ok += 1,
                Ok(body) => {
                    r.failed += 1;
                    r.first_error
                        .get_or_insert(format!("unexpected body {body:?}"));
                }
                Err(e) => {
                    r.failed += 1;
                    r.first_error.get_or_insert(format!("request: {e}"));
                }
            }
        }
    }
    r
}

#[test]
fn reloads_keep_connections_and_health() {
    if !can_run("reloads_keep_connections_and_health") {
        return;
    }
    let mut lab = Lab::up("rl");
    let conf = lab.dir.join("keepalived.conf");
    std::fs::write(&conf, config(2, 1)).expect("write config");
    lab.start_dpvsd(&conf);
    lab.wait_health(RS1, "up", Duration::from_secs(5));
    let transition =
        |lab: &Lab, rs: &str| lab.server(rs)["checks"][0]["last_transition_unix_ms"].clone();
    let before = (transition(&lab, RS1), transition(&lab, RS2));

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (ns, stop) = (lab.ns("client"), Arc::clone(&stop));
        std::thread::spawn(move || client(ns, stop))
    };
    // Let the client open its connections and get going.
    std::thread::sleep(Duration::from_millis(500));

    // A dry run reports the change without applying it.
    std::fs::write(&conf, config(1, 1)).expect("write config");
    let (ok, out) = lab.dpvsctl(&["reload", "--dry-run"]);
    assert!(
        ok && out.contains("dry run: 1 change(s)") && out.contains("weight 2 -> 1"),
        "{out}"
    );
    assert_eq!(
        lab.server(RS1)["current_weight"],
        2,
        "a dry run must not apply"
    );

    for i in 0..RELOADS {
        let (w1, w2) = if i % 2 == 0 { (1, 1) } else { (2, 1) };
        std::fs::write(&conf, config(w1, w2)).expect("write config");
        if i == RELOADS / 2 {
            // SIGHUP works like `dpvsctl reload`.
            let pid = lab.dpvsd_pid().expect("daemon pid");
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            )
            .expect("SIGHUP");
            let t0 = Instant::now();
            while lab.server(RS1)["current_weight"] != w1 {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "SIGHUP reload not applied"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            let (ok, out) = lab.dpvsctl(&["reload"]);
            assert!(
                ok && out.contains("reload applied: 1 change(s)"),
                "reload {i}: {out}"
            );
            assert_eq!(lab.server(RS1)["current_weight"], w1);
        }
        std::thread::sleep(Duration::from_millis(150));
    }

    // A broken file is rejected with its location; the running config stays.
    std::fs::write(
        &conf,
        config(7, 7).replace("lb_kind FNAT\n", "lb_kind FNAT\n    weight\n"),
    )
    .expect("write config");
    let (ok, out) = lab.dpvsctl(&["reload"]);
    assert!(!ok && out.contains("reload rejected"), "{out}");
    assert!(
        out.contains(&format!("{}:8:", conf.display())),
        "diagnostic with file:line expected:\n{out}"
    );
    assert_ne!(lab.server(RS1)["current_weight"], 7);

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let r = client.join().expect("client thread");
    println!(
        "client: {} requests ok, {} failed over {} reloads",
        r.ok, r.failed, RELOADS
    );
    assert_eq!(
        r.failed, 0,
        "failed requests during reloads: first error {:?}",
        r.first_error
    );
    assert!(
        r.ok >= (CONNS * 5) as u64,
        "too few requests to mean anything: {}",
        r.ok
    );

    let status: serde_json::Value =
        serde_json::from_str(&lab.dpvsctl(&["status", "--json"]).1).expect("status json");
    assert_eq!(
        status["reloads"], RELOADS as u64,
        "every valid reload counted"
    );
    // Unchanged real servers kept their health state: no flap, no restart.
    assert_eq!(
        (transition(&lab, RS1), transition(&lab, RS2)),
        before,
        "health state must survive reloads"
    );
    assert_eq!(lab.health(RS1), "up");
    assert_eq!(lab.health(RS2), "up");
}
