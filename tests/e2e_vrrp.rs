//! End to end: dpvsd runs a VRRP-only keepalived.conf (no virtual servers,
//! no `--interface`: VIPs in the kernel, as `keepalived --vrrp`) against a
//! real keepalived in another namespace. Root only (prints SKIP otherwise;
//! under CI a missing keepalived fails).

#[path = "lab_ha/common.rs"]
mod common;
#[path = "lab_ha/keepalived.rs"]
mod keepalived;

use std::time::{Duration, Instant};

use common::{output, unavailable, wait_for, Dpvsd, Lab};
use keepalived::Keepalived;

const VIP: &str = "10.99.0.100";

fn instance(prio: u8) -> String {
    format!(
        "vrrp_instance VI_51 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
         \x20   priority {prio}\n    advert_int 1\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
    )
}

/// Whether `ns` has the VIP on eth0.
fn has_vip(ns: &str) -> bool {
    output(&["ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"]).contains(&format!(" {VIP}/"))
}

/// The first instance of `dpvsctl vrrp --json`.
fn vrrp_state(d: &Dpvsd) -> serde_json::Value {
    d.json("vrrp")["instances"][0].clone()
}

#[test]
fn dpvsd_vrrp_against_keepalived() {
    if let Some(why) = unavailable(&["keepalived"]) {
        println!("SKIP: dpvsd_vrrp_against_keepalived: {why}");
        return;
    }
    let lab = Lab::up("v");
    let ka = Keepalived::start(
        &lab,
        &lab.b,
        &format!("global_defs {{\n    router_id ka_b\n}}\n{}", instance(100)),
    );
    let conf = lab.write(
        "dpvsd.conf",
        &format!(
            "global_defs {{\n    router_id dpvsd_a\n}}\n{}",
            instance(150)
        ),
    );
    let d = Dpvsd::start(&lab, &lab.a, &conf, &[]);

    // dpvsd has the higher priority: it becomes MASTER, keepalived BACKUP.
    let master = wait_for(Duration::from_secs(10), || {
        let v = vrrp_state(&d);
        (v["state"] == "MASTER").then_some(v)
    });
    let v = master.unwrap_or_else(|| panic!("dpvsd not MASTER: {}", d.json("vrrp")));
    assert!(
        ka.wait_state("BACKUP", Duration::from_secs(5)),
        "keepalived not BACKUP: {}",
        ka.log()
    );
    // Settle for a few adverts: still one master, the VIP on dpvsd's side only.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ka.state(), Some("BACKUP"), "{}", ka.log());
    assert!(has_vip(&lab.a), "the VIP must be in dpvsd's kernel");
    assert!(!has_vip(&lab.b), "keepalived must not hold the VIP");
    assert_eq!(v["effective_priority"], 150);
    assert_eq!(v["vips_held"][0], VIP);
    assert_eq!(v["owners"][0][1], "kernel");
    assert!(v["last_transition_unix_ms"].as_u64().is_some(), "{v}");
    let v = vrrp_state(&d);
    assert_eq!(v["state"], "MASTER", "{v}");
    assert!(v["counters"]["adverts_sent"].as_u64() >= Some(3), "{v}");
    let text = d.ctl(&["vrrp"]).expect("dpvsctl vrrp (text) works");
    assert!(
        text.contains("VI_51") && text.contains("MASTER"),
        "dpvsctl vrrp:\n{text}"
    );
    let status = d.ctl(&["status"]).expect("dpvsctl status");
    assert!(
        status.contains("1 instance(s), 1 MASTER"),
        "dpvsctl status:\n{status}"
    );

    // SIGTERM: a priority-0 advert makes keepalived MASTER within 2 s.
    let t0 = Instant::now();
    let exit = d.stop();
    assert!(
        ka.wait_state(
            "MASTER",
            Duration::from_secs(2).saturating_sub(t0.elapsed())
        ),
        "keepalived did not take over within 2 s of SIGTERM: {}",
        ka.log()
    );
    let took = t0.elapsed();
    println!("graceful failover dpvsd -> keepalived: {took:?}");
    assert!(exit.is_some_and(|s| s.success()), "dpvsd exit: {exit:?}");
    assert!(!has_vip(&lab.a), "dpvsd released the VIP on stop");
    assert!(
        wait_for(Duration::from_secs(2), || has_vip(&lab.b).then_some(())).is_some(),
        "keepalived holds the VIP"
    );
}

fn instance_n(name: &str, vrid: u8, prio: u8, vip: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {vrid}\n\
         \x20   priority {prio}\n    advert_int 1\n    virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n"
    )
}

/// `dpvsctl vrrp --json` entry of instance `name`.
fn vrrp_of(d: &Dpvsd, name: &str) -> serde_json::Value {
    d.json("vrrp")["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// A reload that changes one vrrp_instance leaves the other alone: no
/// re-election, its timers and counters go on, keepalived sees nothing.
#[test]
fn dpvsd_reload_keeps_unchanged_vrrp_instances() {
    if let Some(why) = unavailable(&["keepalived"]) {
        println!("SKIP: dpvsd_reload_keeps_unchanged_vrrp_instances: {why}");
        return;
    }
    let lab = Lab::up("vr");
    let ka = Keepalived::start(
        &lab,
        &lab.b,
        &format!(
            "global_defs {{\n    router_id ka_b\n}}\n{}{}",
            instance_n("VI_51", 51, 100, "10.99.0.100"),
            instance_n("VI_52", 52, 100, "10.99.0.101")
        ),
    );
    let conf_text = |prio52: u8| {
        format!(
            "global_defs {{\n    router_id dpvsd_a\n}}\n{}{}",
            instance_n("VI_51", 51, 150, "10.99.0.100"),
            instance_n("VI_52", 52, prio52, "10.99.0.101")
        )
    };
    let conf = lab.write("dpvsd.conf", &conf_text(150));
    let d = Dpvsd::start(&lab, &lab.a, &conf, &[]);
    for name in ["VI_51", "VI_52"] {
        let ok = wait_for(Duration::from_secs(10), || {
            (vrrp_of(&d, name)["state"] == "MASTER").then_some(())
        });
        assert!(ok.is_some(), "{name} not MASTER: {}", d.json("vrrp"));
    }
    let backups = |log: &str| {
        ["VI_51", "VI_52"]
            .iter()
            .all(|n| log.contains(&format!("({n}) Entering BACKUP STATE")))
    };
    assert!(
        wait_for(Duration::from_secs(5), || backups(&ka.log()).then_some(())).is_some(),
        "keepalived not BACKUP for both: {}",
        ka.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = vrrp_of(&d, "VI_51");
    let ka_51 = |log: &str| log.matches("(VI_51)").count();
    let ka_before = ka_51(&ka.log());

    // Only VI_52 changes: its priority drops below keepalived's.
    lab.write("dpvsd.conf", &conf_text(50));
    let out = d.ctl(&["reload"]).expect("dpvsctl reload");
    println!("reload: {out}");
    assert!(
        wait_for(Duration::from_secs(6), || ka
            .log()
            .contains("(VI_52) Entering MASTER STATE")
            .then_some(()))
        .is_some(),
        "keepalived did not take VI_52: {}",
        ka.log()
    );
    assert!(
        wait_for(Duration::from_secs(3), || (vrrp_of(&d, "VI_52")["state"]
            == "BACKUP")
            .then_some(()))
        .is_some(),
        "{}",
        d.json("vrrp")
    );
    std::thread::sleep(Duration::from_secs(3));
    let after = vrrp_of(&d, "VI_51");
    assert_eq!(after["state"], "MASTER", "{after}");
    assert_eq!(
        after["last_transition_unix_ms"], before["last_transition_unix_ms"],
        "VI_51 was not re-elected: {before} -> {after}"
    );
    assert_eq!(
        after["counters"]["became_master"],
        before["counters"]["became_master"]
    );
    let sent = |v: &serde_json::Value| v["counters"]["adverts_sent"].as_u64().unwrap_or(0);
    // Its counters went on (a fresh instance would have started from 0).
    assert!(sent(&after) >= sent(&before) + 2, "{before} -> {after}");
    assert_eq!(
        ka_51(&ka.log()),
        ka_before,
        "keepalived logged nothing new for VI_51:\n{}",
        ka.log()
    );
    assert!(has_vip(&lab.a), "VI_51's VIP stays on dpvsd");
    let _ = d.stop();
}
