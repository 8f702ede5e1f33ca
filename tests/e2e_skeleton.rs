//! End to end: a keepalived.conf drives real traffic through a VIP.
//!
//! The sample config (samples/keepalived.conf) in the lab of tests/lab.sh:
//! weighted traffic through the VIP, a real server killed and taken out by
//! its TCP_CHECK within the keepalived bound, and brought back.

mod common;

use std::time::Duration;

use common::{can_run, repo, Lab, RS1};

#[test]
fn fnat_vip_traffic_and_health_checks() {
    if !can_run("fnat_vip_traffic_and_health_checks") {
        return;
    }
    let mut lab = Lab::up("dp");
    lab.start_dpvsd(&repo().join("samples/keepalived.conf"));
    let mode = std::fs::metadata(lab.socket())
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(
        mode.map(|m| m & 0o777).ok(),
        Some(0o600),
        "control socket must be 0600"
    );

    // Weighted traffic: rs1 weight 2, rs2 weight 1.
    let (a, b, failed) = lab.traffic(60);
    assert_eq!(
        failed, 0,
        "requests through the VIP failed (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");
    let ratio = a as f64 / b as f64;
    assert!(
        (1.5..=2.5).contains(&ratio),
        "wrr 2:1 expected, got rs1={a} rs2={b}"
    );
    let (ok, text) = lab.dpvsctl(&["list"]);
    assert!(
        ok && text.contains("10.99.0.100:80") && text.contains(RS1),
        "dpvsctl list:\n{text}"
    );
    let v = lab.list_json();
    let conns: u64 = v["services"][0]["stats"]["conns"].as_u64().unwrap_or(0);
    assert!(conns >= 60, "service connection counter {conns} < 60");

    // Kill rs1: the TCP_CHECK takes it out within
    // delay_loop + connect_timeout × (retry + 1) + 2 s = 1 + 1×2 + 2 = 5 s.
    lab.webstop("rs1");
    let took = lab.wait_health(RS1, "down", Duration::from_secs(10));
    println!("rs1 detected down after {took:?}");
    assert!(
        took <= Duration::from_secs(5),
        "down detection took {took:?} > 5 s"
    );
    let (a, b, failed) = lab.traffic(20);
    assert_eq!(
        (a, failed),
        (0, 0),
        "after rs1 went down all requests must go to rs2 (rs2={b})"
    );
    assert_eq!(b, 20);
    // Its counters are kept while it is out of service.
    assert!(lab.server(RS1)["stats"]["conns"].as_u64().unwrap_or(0) > 0);

    // Bring it back: it is used again.
    lab.web("rs1");
    let took = lab.wait_health(RS1, "up", Duration::from_secs(10));
    println!("rs1 detected up after {took:?}");
    let (a, b, failed) = lab.traffic(30);
    assert_eq!(failed, 0);
    assert!(
        a > 0 && b > 0,
        "after recovery both must answer (rs1={a} rs2={b})"
    );

    let (ok, status) = lab.dpvsctl(&["status"]);
    assert!(
        ok && status.contains("afpacket"),
        "dpvsctl status:\n{status}"
    );
    println!("{}", lab.dpvsctl(&["list"]).1);
}
