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

/// The load-balancer lab of tests/lab.sh (lb, client, rs1, rs2).
#[path = "common/mod.rs"]
mod dplab;

/// The MACs that answer an ARP request for `ip` sent from `ns` (scapy).
fn arp_answers(ns: &str, ip: &str) -> Vec<String> {
    let script = format!(
        "from scapy.all import *\nconf.verb=0\n\
         ans,_=srp(Ether(dst='ff:ff:ff:ff:ff:ff')/ARP(pdst='{ip}'),iface='eth0',timeout=1,multi=True)\n\
         print(' '.join(sorted({{r[ARP].hwsrc for _,r in ans}})))\n"
    );
    let out = output(&["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", &script]);
    out.split_whitespace().map(str::to_owned).collect()
}

const LB_MAC: &str = "02:99:00:00:00:01";
const RS2_MAC: &str = "02:99:00:00:00:04";

/// dpvsd forwards for the VIP (`--interface`, FNAT) and a vrrp_instance
/// holds it: as MASTER the dataplane answers ARP for it, sends the
/// gratuitous ARPs, and client traffic reaches the real servers; when a
/// higher-priority keepalived (in rs2) takes over, dpvsd goes BACKUP and the
/// dataplane stops answering ARP; when keepalived leaves, dpvsd is back.
#[test]
fn dataplane_owned_vip_follows_vrrp() {
    if !dplab::can_run("dataplane_owned_vip_follows_vrrp") {
        return;
    }
    if let Some(why) = unavailable(&["keepalived", "tcpdump"]) {
        println!("SKIP: dataplane_owned_vip_follows_vrrp: {why}");
        return;
    }
    let mut lab = dplab::Lab::up("vd");
    let (client, rs2) = (lab.ns("client"), lab.ns("rs2"));
    let cap_file = lab.dir.join("client-arp.pcap");
    let cap = testlab::Capture::start(&client, &cap_file, "arp");
    let sample = std::fs::read_to_string(dplab::repo().join("samples/keepalived.conf"))
        .expect("sample config");
    let conf = lab.dir.join("dpvsd.conf");
    std::fs::write(
        &conf,
        format!(
            "{sample}\nvrrp_instance VI_51 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
             \x20   priority 150\n    advert_int 1\n    garp_master_delay 0\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
        ),
    )
    .expect("write config");
    let ka_conf = |prio: u8| {
        format!(
            "global_defs {{\n    router_id ka_rs2\n}}\n{}",
            instance(prio)
        )
    };
    let ka = Keepalived::start_in(&lab.dir, &rs2, &ka_conf(100));
    lab.start_dpvsd(&conf);
    let (ok, _) = lab.dpvsctl(&["vrrp"]);
    assert!(ok, "dpvsctl vrrp");
    let vrrp = |lab: &dplab::Lab| {
        let (_, text) = lab.dpvsctl(&["vrrp", "--json"]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["instances"][0].clone()
    };
    let master = wait_for(Duration::from_secs(10), || {
        (vrrp(&lab)["state"] == "MASTER").then_some(())
    });
    assert!(master.is_some(), "dpvsd not MASTER: {}", vrrp(&lab));
    assert!(
        ka.wait_state("BACKUP", Duration::from_secs(5)),
        "{}",
        ka.log()
    );
    let v = vrrp(&lab);
    assert_eq!(v["owners"][0][1], "dataplane", "{v}");
    assert_eq!(arp_answers(&client, VIP), vec![LB_MAC.to_string()]);
    let (a, b, failed) = lab.traffic(12);
    assert_eq!(
        failed, 0,
        "traffic through the VRRP-held VIP (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "rs1={a} rs2={b}");

    // keepalived comes back at 200 and preempts: dpvsd BACKUP, and only
    // keepalived's host answers ARP for the VIP.
    drop(ka);
    let ka = Keepalived::start_in(&lab.dir, &rs2, &ka_conf(200));
    assert!(
        ka.wait_state("MASTER", Duration::from_secs(10)),
        "{}",
        ka.log()
    );
    let backup = wait_for(Duration::from_secs(3), || {
        (vrrp(&lab)["state"] == "BACKUP").then_some(())
    });
    assert!(backup.is_some(), "dpvsd not BACKUP: {}", vrrp(&lab));
    let answers = wait_for(Duration::from_secs(5), || {
        let a = arp_answers(&client, VIP);
        (a == vec![RS2_MAC.to_string()]).then_some(a)
    });
    assert!(
        answers.is_some(),
        "only keepalived's host may answer ARP: {:?}",
        arp_answers(&client, VIP)
    );

    // keepalived leaves (priority 0): dpvsd is MASTER and forwarding again.
    drop(ka);
    let master = wait_for(Duration::from_secs(5), || {
        (vrrp(&lab)["state"] == "MASTER").then_some(())
    });
    assert!(master.is_some(), "dpvsd not MASTER again: {}", vrrp(&lab));
    assert_eq!(arp_answers(&client, VIP), vec![LB_MAC.to_string()]);
    // The client still has rs2's MAC cached: the GARPs must fix that.
    let (a, b, failed) = lab.traffic(12);
    assert_eq!(
        failed, 0,
        "traffic after taking the VIP back (rs1={a} rs2={b})"
    );

    let cap_file = cap.finish();
    let dump = output(&["tcpdump", "-r", &cap_file.display().to_string(), "-e", "-n"]);
    let garps = dump
        .lines()
        .filter(|l| {
            l.contains(&format!("{LB_MAC} > ff:ff:ff:ff:ff:ff"))
                && l.contains(&format!("who-has {VIP} tell {VIP}"))
        })
        .count();
    assert!(
        garps >= 2,
        "the dataplane's gratuitous ARPs (two masterships):\n{dump}"
    );
    if let Some(tool) = [
        "../shared/tools/pcapcheck.py",
        "../../shared/tools/pcapcheck.py",
    ]
    .iter()
    .map(|p| dplab::repo().join(p))
    .find(|p| p.exists())
    {
        let out = output(&[
            "/usr/bin/python3",
            &tool.display().to_string(),
            "--quiet",
            "--require",
            "garp",
            &cap_file.display().to_string(),
        ]);
        println!("pcapcheck: {}", out.trim());
        assert!(out.trim().ends_with(", 0 failed"), "pcapcheck:\n{out}");
    }
}
