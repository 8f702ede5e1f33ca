//! End to end: quorum_down / sorry_server (KEEPALIVED.md §9).
//!
//! One virtual server with one real server (rs1) and rs2 as its sorry
//! server, in the lab of tests/lab.sh. When rs1 fails, quorum is lost: the
//! sorry server takes the traffic and `quorum_down` runs. When rs1 is back,
//! quorum is regained: rs1 takes the traffic again, the sorry server is
//! removed and `quorum_up` runs. With `omega`, stopping dpvsd while quorum
//! is up runs `quorum_down` once more. rs1's `notify_down` / `notify_up`
//! run when it fails and recovers, and `notify_down` again on shutdown
//! (`omega`, rs1 up).
//!
//! The virtual server listens on port 8080 like the real servers: the
//! parser resets a sorry server's port to the virtual server's for every
//! method but NAT (keepalived's rule), FNAT included.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{can_run, Lab, RS1, VIP};

fn config(dir: &Path, marks: &Path) -> String {
    let down = marks.join("quorum_down");
    let up = dir.join("quorum_up");
    let rs_down = marks.join("rs1_down");
    let rs_up = dir.join("rs1_up");
    format!(
        r#"
global_defs {{
    router_id dpvsd_quorum
}}
local_address_group laddr_g1 {{
    10.99.0.200 eth0
}}
virtual_server 10.99.0.100 8080 {{
    delay_loop 1
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_g1
    quorum 1
    omega
    quorum_down "/usr/bin/touch {down}"
    quorum_up "/usr/bin/touch {up}"
    sorry_server 10.99.0.4 8080

    real_server 10.99.0.3 8080 {{
        weight 1
        notify_down "/usr/bin/touch {rs_down}"
        notify_up "/usr/bin/touch {rs_up}"
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}
}}
"#,
        down = down.display(),
        up = up.display(),
        rs_down = rs_down.display(),
        rs_up = rs_up.display(),
    )
}

/// One HTTP request to the VIP's port 8080 from the client namespace.
fn get(lab: &Lab) -> Option<String> {
    lab.get(&format!("http://{VIP}:8080/"))
}

/// Answers to `n` requests: (from rs1, from rs2, failed).
fn traffic(lab: &Lab, n: usize) -> (usize, usize, usize) {
    let answers: Vec<Option<String>> = (0..n).map(|_| get(lab)).collect();
    let count = |name: &str| {
        answers
            .iter()
            .filter(|a| a.as_deref() == Some(name))
            .count()
    };
    let (a, b) = (count("rs1"), count("rs2"));
    (a, b, n - a - b)
}

/// Waits (bounded) until every one of 5 requests is answered by `want`.
fn wait_served_by(lab: &Lab, want: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if (0..5).all(|_| get(lab).as_deref() == Some(want)) {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("requests not all served by {want} after {limit:?}");
}

fn wait_file(path: &Path, limit: Duration) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < limit,
            "{} was not created within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `dpvsctl list` (table and `--json`) shows the sorry server and whether
/// it serves.
fn assert_sorry_listed(lab: &Lab, in_service: bool) {
    let v = lab.list_json();
    let sorry = &v["services"][0]["sorry_server"];
    assert_eq!(sorry["addr"], "10.99.0.4:8080", "{v}");
    assert_eq!(sorry["in_service"], in_service, "{v}");
    assert_eq!(v["services"][0]["quorum_up"], !in_service, "{v}");
    let want_weight = if in_service {
        serde_json::json!(1)
    } else {
        serde_json::Value::Null
    };
    assert_eq!(sorry["current_weight"], want_weight, "{v}");
    let (ok, text) = lab.dpvsctl(&["list"]);
    assert!(ok, "dpvsctl list failed");
    let line = text
        .lines()
        .find(|l| l.contains("10.99.0.4:8080"))
        .unwrap_or_else(|| panic!("no sorry server line in:\n{text}"));
    let state = if in_service {
        "sorry server, in service"
    } else {
        "sorry server, standby"
    };
    assert!(line.contains(state), "{line}");
}

#[test]
fn quorum_down_puts_the_sorry_server_in_and_recovery_takes_it_out() {
    if !can_run("quorum_down_puts_the_sorry_server_in_and_recovery_takes_it_out") {
        return;
    }
    let mut lab = Lab::up("qs");
    // quorum_down marks outside the lab's directory, which goes with it.
    let marks = std::env::temp_dir().join(format!("dpvsd-e2e-quorum-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&marks);
    std::fs::create_dir_all(&marks).expect("marks dir");
    let down_mark = marks.join("quorum_down");
    let rs_down_mark = marks.join("rs1_down");
    let conf = lab.dir.join("keepalived.conf");
    std::fs::write(&conf, config(&lab.dir, &marks)).expect("write config");
    lab.start_dpvsd(&conf);

    // Quorum up: rs1 serves, the sorry server (rs2) does not.
    wait_served_by(&lab, "rs1", Duration::from_secs(10));
    let (a, b, failed) = traffic(&lab, 10);
    assert_eq!((a, b, failed), (10, 0, 0));
    assert_sorry_listed(&lab, false);
    assert!(!down_mark.exists());
    assert!(!rs_down_mark.exists() && !lab.dir.join("rs1_up").exists());

    // rs1 fails: quorum lost, the sorry server serves, quorum_down ran.
    lab.webstop("rs1");
    lab.wait_health(RS1, "down", Duration::from_secs(10));
    let took = wait_served_by(&lab, "rs2", Duration::from_secs(10));
    println!("sorry server serving {took:?} after rs1 was seen down");
    wait_file(&down_mark, Duration::from_secs(10));
    wait_file(&rs_down_mark, Duration::from_secs(10));
    let (a, b, failed) = traffic(&lab, 10);
    assert_eq!((a, b, failed), (0, 10, 0), "the sorry server takes all");
    assert_sorry_listed(&lab, true);

    // rs1 is back: quorum regained, rs1 serves alone, quorum_up ran.
    lab.web("rs1");
    lab.wait_health(RS1, "up", Duration::from_secs(10));
    wait_served_by(&lab, "rs1", Duration::from_secs(10));
    wait_file(&lab.dir.join("quorum_up"), Duration::from_secs(10));
    wait_file(&lab.dir.join("rs1_up"), Duration::from_secs(10));
    let (a, b, failed) = traffic(&lab, 10);
    assert_eq!((a, b, failed), (10, 0, 0), "the sorry server is out again");
    assert_sorry_listed(&lab, false);
    println!("{}", lab.dpvsctl(&["list"]).1);

    // omega: stopping dpvsd (SIGTERM when the lab drops) with quorum up
    // runs quorum_down.
    std::fs::remove_file(&down_mark).expect("remove the mark");
    std::fs::remove_file(&rs_down_mark).expect("remove the mark");
    drop(lab);
    let (ran, rs_ran) = (down_mark.exists(), rs_down_mark.exists());
    let _ = std::fs::remove_dir_all(&marks);
    assert!(ran, "omega: quorum_down did not run on shutdown");
    assert!(rs_ran, "omega: rs1's notify_down did not run on shutdown");
}
