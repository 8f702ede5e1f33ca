//! End to end: protections of a virtual server in the lab of tests/lab.sh,
//! real nginx servers behind an FNAT VIP, configured by keepalived.conf.
//!
//! - `deny_address_group` (`daddr_group_name`): a denied client's requests
//!   fail, another client's succeed, and the refusals are counted as
//!   `acl_denied`.
//! - `allow_address_group` (`waddr_group_name`): only listed clients get
//!   through; the others are counted as `acl_not_allowed`.
//!
//! The client namespace has two addresses: 10.99.0.2 (its own) and
//! 10.99.0.22, added here; curl picks one with `--interface`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{can_run, Lab, VIP};

const OTHER: &str = "10.99.0.22";

fn rs(ip: &str) -> String {
    format!(
        "    real_server {ip} 8080 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n"
    )
}

/// Two FNAT services: VIP:80 denies 10.99.0.22, VIP:81 allows only 10.99.0.2.
fn config() -> String {
    let vs = |port: u16, extra: &str| {
        format!(
            "virtual_server {VIP} {port} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name laddr\n{extra}{}{}}}\n",
            rs("10.99.0.3"),
            rs("10.99.0.4")
        )
    };
    format!(
        "local_address_group laddr {{\n    10.99.0.200 eth0\n}}\n\
         deny_address_group bad {{\n    {OTHER}\n}}\n\
         allow_address_group good {{\n    10.99.0.2\n}}\n{}{}",
        vs(80, "    daddr_group_name bad\n"),
        vs(81, "    waddr_group_name good\n"),
    )
}

/// One GET of `url` from the client namespace with source address `src`.
fn get_from(lab: &Lab, src: &str, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client"), "curl", "-s", "-m", "2"])
        .args(["--interface", src, url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// (answered, failed) of `n` GETs.
fn tally(lab: &Lab, src: &str, url: &str, n: usize) -> (usize, usize) {
    let ok = (0..n)
        .filter(|_| get_from(lab, src, url).is_some_and(|b| b == "rs1" || b == "rs2"))
        .count();
    (ok, n - ok)
}

fn drop_count(lab: &Lab, reason: &str) -> u64 {
    let (ok, out) = lab.dpvsctl(&["status", "--json"]);
    assert!(ok, "dpvsctl status --json failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    v["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d[0] == reason)
        .and_then(|d| d[1].as_u64())
        .unwrap_or(0)
}

#[test]
fn denied_clients_fail_allowed_clients_succeed() {
    if !can_run("denied_clients_fail_allowed_clients_succeed") {
        return;
    }
    let mut lab = Lab::up("acl");
    lab.exec(
        "client",
        &["ip", "addr", "add", &format!("{OTHER}/24"), "dev", "eth0"],
    );
    let conf = lab.dir.join("keepalived.conf");
    std::fs::write(&conf, config()).expect("write config");
    lab.start_dpvsd(&conf);
    lab.wait_health(common::RS1, "up", Duration::from_secs(10));
    lab.wait_health(common::RS2, "up", Duration::from_secs(10));

    let deny_url = format!("http://{VIP}/");
    let allow_url = format!("http://{VIP}:81/");
    assert_eq!(
        tally(&lab, "10.99.0.2", &deny_url, 10),
        (10, 0),
        "not denied"
    );
    assert_eq!(tally(&lab, OTHER, &deny_url, 3), (0, 3), "denied");
    assert!(drop_count(&lab, "acl_denied") >= 3, "each SYN is counted");
    assert_eq!(tally(&lab, "10.99.0.2", &allow_url, 10), (10, 0), "allowed");
    assert_eq!(tally(&lab, OTHER, &allow_url, 3), (0, 3), "not allowed");
    assert!(drop_count(&lab, "acl_not_allowed") >= 3);
    // The refusals did not disturb anyone else.
    assert_eq!(tally(&lab, "10.99.0.2", &deny_url, 5), (5, 0));
}

/// `syn_proxy`: the lab client's kernel completes its handshake with
/// dpvsd's SYN cookie, nginx sees a connection only after that, and every
/// byte both ways crosses the sequence translation.
#[test]
fn syn_proxy_serves_real_clients() {
    if !can_run("syn_proxy_serves_real_clients") {
        return;
    }
    let mut lab = Lab::up("synp");
    let conf = lab.dir.join("keepalived.conf");
    let text = format!(
        "local_address_group laddr {{\n    10.99.0.200 eth0\n}}\n\
         virtual_server {VIP} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name laddr\n    syn_proxy\n{}{}}}\n",
        rs("10.99.0.3"),
        rs("10.99.0.4")
    );
    std::fs::write(&conf, text).expect("write config");
    lab.start_dpvsd(&conf);
    lab.wait_health(common::RS1, "up", Duration::from_secs(10));
    lab.wait_health(common::RS2, "up", Duration::from_secs(10));

    let (a, b, failed) = lab.traffic(10);
    assert_eq!(
        failed, 0,
        "requests through the SYN proxy failed (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
    // A 300 kB upload: many segments each way (data in, ACKs out), all
    // crossing the sequence translation.
    let body = lab.dir.join("body");
    std::fs::write(&body, "x".repeat(300_000)).expect("write body");
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client"), "curl", "-s", "-m", "10"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("http://{VIP}/"))
        .output()
        .expect("curl");
    let reply = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && (reply == "rs1" || reply == "rs2"),
        "upload through the SYN proxy: {reply:?} {:?}",
        out.status
    );
    assert_eq!(drop_count(&lab, "synproxy_bad_cookie"), 0);
    eprintln!("synproxy_pending={}", drop_count(&lab, "synproxy_pending"));
    // The dataplane's rate estimator saw the traffic (2 s samples).
    let mut in_pps = 0;
    for _ in 0..40 {
        let (ok, out) = lab.dpvsctl(&["list", "--rate", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        in_pps = v["services"][0]["rates"]["in_pps"].as_u64().unwrap_or(0);
        if ok && in_pps > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(in_pps > 0, "list --rate shows no inbound packets");
}
