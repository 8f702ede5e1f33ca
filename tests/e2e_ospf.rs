//! End to end: dpvsd's OSPF announcer against a real BIRD 2. dpvsd (in
//! `<P>-a`, 10.99.0.1) has one virtual server 10.99.100.1:80 whose real
//! server is nginx on 10.99.0.2:8080 in `<P>-b`, where BIRD runs. The VIP
//! /32 is announced while the real server is healthy. Root only (prints SKIP
//! otherwise; under CI missing tools fail).

#[path = "lab_ha/bird.rs"]
mod bird;
#[path = "lab_ha/common.rs"]
mod common;

use std::time::{Duration, Instant};

use bird::{Bird, Nginx};
use common::{output, sh, unavailable, wait_for, Dpvsd, Lab};
use testlab::{check_capture, Capture};

const VIP: &str = "10.99.100.1";
const PREFIX: &str = "10.99.100.1/32";
const RS: &str = "10.99.0.2:8080";
const DEAD: u64 = 4;

/// dpvsd's config as director `host` (10.99.0.`host`, local address
/// 10.99.0.(199+`host`)), with `auth` inside the OSPF interface block.
fn dpvsd_conf(host: u8, auth: &str) -> String {
    format!(
        "global_defs {{\n    router_id dpvsd_{host}\n}}\n\
local_address_group laddr {{\n    10.99.0.{lip} eth0\n}}\n\
virtual_server 10.99.100.1 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name laddr\n\
    real_server 10.99.0.2 8080 {{\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n\
ospf_announcer {{\n    router_id 10.99.0.{host}\n    area 0.0.0.0\n    interface eth0 {{\n        hello_interval 1\n        dead_interval 4\n        priority 1\n        cost 10\n        {auth}\n    }}\n    announce_as stub\n    metric 10\n}}\n",
        lip = 199 + u16::from(host),
    )
}

/// BIRD as 10.99.0.2 with `auth` (BIRD syntax) on eth0.
fn bird_conf(auth: &str) -> String {
    format!(
        "log stderr all;\nrouter id 10.99.0.2;\n\
protocol device {{\n    scan time 1;\n}}\n\
protocol kernel {{\n    ipv4 {{\n        import none;\n        export where proto = \"ospf1\" && net != 10.99.0.0/24;\n    }};\n}}\n\
protocol ospf v2 ospf1 {{\n    ipv4 {{\n        import all;\n        export none;\n    }};\n    area 0 {{\n        interface \"eth0\" {{\n            type broadcast;\n            hello 1;\n            dead 4;\n            wait 4;\n            retransmit 2;\n            priority 1;\n            cost 10;\n            {auth}\n        }};\n    }};\n}}\n"
    )
}

/// The health of the real server as dpvsctl reports it.
fn health(d: &Dpvsd) -> String {
    let v = d.json("list");
    v["services"][0]["real_servers"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["addr"] == RS))
        .and_then(|r| r["health"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// Waits for the real server to be `want`; returns when it was seen so.
fn wait_health(d: &Dpvsd, want: &str) -> Instant {
    wait_for(Duration::from_secs(15), || {
        (health(d) == want).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("{RS} not {want} within 15 s"))
}

fn kernel_route(ns: &str) -> String {
    output(&["ip", "-n", ns, "route", "show", VIP])
}

#[test]
fn ospf_announces_the_vip_while_its_real_server_is_healthy() {
    if let Some(why) = unavailable(&["bird", "birdc", "nginx", "ss"]) {
        println!("SKIP: ospf_announces_the_vip_while_its_real_server_is_healthy: {why}");
        return;
    }
    let lab = Lab::up("o");
    let rs = Nginx::start(&lab, &lab.b, RS);
    let bird = Bird::start(&lab, &lab.b, &bird_conf("authentication none;"));
    let conf = lab.write("dpvsd.conf", &dpvsd_conf(1, "authentication none"));
    let d = Dpvsd::start(&lab, &lab.a, &conf, &[]);

    // Adjacency Full, and BIRD learns the VIP into its kernel table.
    let full = wait_for(Duration::from_secs(40), || {
        bird.full_with("10.99.0.1").then_some(())
    });
    assert!(
        full.is_some(),
        "BIRD has no Full adjacency with dpvsd: {}",
        bird.cli(&["show", "ospf", "neighbors"])
    );
    assert!(
        wait_for(Duration::from_secs(30), || bird
            .has_route(PREFIX)
            .then_some(()))
        .is_some(),
        "BIRD did not learn {PREFIX}: {}",
        bird.cli(&["show", "route"])
    );
    assert!(
        wait_for(Duration::from_secs(5), || kernel_route(&lab.b)
            .contains("via 10.99.0.1")
            .then_some(()))
        .is_some(),
        "kernel route in BIRD's namespace: {}",
        kernel_route(&lab.b)
    );
    let o = d.json("ospf");
    let nbr = &o["interfaces"][0]["neighbors"][0];
    assert_eq!(nbr["router_id"], "10.99.0.2", "{o}");
    assert_eq!(nbr["state"], "Full", "{o}");
    assert_eq!(o["announced"][0], VIP, "{o}");
    assert_eq!(o["vips"][0]["announced"], true, "{o}");
    assert!(
        o["originated"].as_array().is_some_and(|a| !a.is_empty()),
        "{o}"
    );
    let text = d.ctl(&["ospf"]).expect("dpvsctl ospf (text)");
    assert!(text.contains("Full") && text.contains(VIP), "{text}");

    // The only real server fails its health check: the route goes within
    // dead_interval + 2 s of the health transition.
    rs.kill();
    let down = wait_health(&d, "down");
    let gone = wait_for(Duration::from_secs(DEAD + 2), || {
        (!bird.has_route(PREFIX)).then(|| down.elapsed())
    });
    let took = gone.unwrap_or_else(|| {
        panic!(
            "{PREFIX} still in BIRD {DEAD}+2 s after the real server went down: {}",
            d.json("ospf")
        )
    });
    println!("route withdrawn {took:?} after the health transition");
    let o = d.json("ospf");
    assert_eq!(o["vips"][0]["announced"], false, "{o}");
    assert!(
        o["vips"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("0/1")),
        "{o}"
    );

    // It recovers: the route returns.
    let rs = Nginx::start(&lab, &lab.b, RS);
    let up = wait_health(&d, "up");
    let back = wait_for(Duration::from_secs(DEAD + 2), || {
        bird.has_route(PREFIX).then(|| up.elapsed())
    });
    let took = back.unwrap_or_else(|| panic!("{PREFIX} did not come back: {}", d.json("ospf")));
    println!("route back {took:?} after the health transition");

    // SIGTERM flushes our LSAs: BIRD drops the route at once, well before
    // the dead interval.
    let t0 = Instant::now();
    let exit = d.stop();
    assert!(exit.is_some_and(|s| s.success()), "dpvsd exit: {exit:?}");
    let flushed = wait_for(Duration::from_secs(3), || {
        (!bird.has_route(PREFIX)).then(|| t0.elapsed())
    });
    let took = flushed.unwrap_or_else(|| panic!("{PREFIX} still in BIRD 3 s after SIGTERM"));
    println!("route flushed {took:?} after SIGTERM");
    drop(rs);
}

/// Two directors announce the same VIP with keyed-MD5 authentication; BIRD
/// installs one ECMP route with both next hops, and keeps the other when
/// one director stops. The second director starts before its interface
/// has an address and must retry until it has one. Every OSPF packet the
/// directors sent passes pcapcheck.py.
#[test]
fn two_directors_give_bird_an_ecmp_route_with_md5() {
    if let Some(why) = unavailable(&["bird", "birdc", "nginx", "ss", "tcpdump"]) {
        println!("SKIP: two_directors_give_bird_an_ecmp_route_with_md5: {why}");
        return;
    }
    let lab = Lab::bridged("e", 3);
    let c = lab.more[0].clone();
    let capture = Capture::start(
        &lab.b,
        &lab.dir.join("directors.pcap"),
        "ip proto 89 and (src host 10.99.0.1 or src host 10.99.0.3)",
    );
    let _rs = Nginx::start(&lab, &lab.b, RS);
    let bird = Bird::start(
        &lab,
        &lab.b,
        &bird_conf(
            "authentication cryptographic; password \"s3cret\" { id 7; algorithm keyed md5; };",
        ),
    );
    let md5 = "authentication md5 7 s3cret";
    let d1 = Dpvsd::start_named(
        &lab,
        "dpvsd1",
        &lab.a,
        &lab.write("d1.conf", &dpvsd_conf(1, md5)),
        &[],
    );
    // The second director's interface has no address yet.
    sh(&["ip", "-n", &c, "addr", "flush", "dev", "eth0"]);
    let d3 = Dpvsd::start_named(
        &lab,
        "dpvsd3",
        &c,
        &lab.write("d3.conf", &dpvsd_conf(3, md5)),
        &[],
    );
    let o = d3.json("ospf");
    assert_eq!(o["running"], false, "{o}");
    assert!(
        o["error"]
            .as_str()
            .is_some_and(|e| e.contains("no IPv4 address") && e.contains("retrying")),
        "{o}"
    );
    sh(&["ip", "-n", &c, "addr", "add", "10.99.0.3/24", "dev", "eth0"]);

    for rid in ["10.99.0.1", "10.99.0.3"] {
        assert!(
            wait_for(Duration::from_secs(40), || bird
                .full_with(rid)
                .then_some(()))
            .is_some(),
            "BIRD has no Full adjacency with {rid}: {}",
            bird.cli(&["show", "ospf", "neighbors"])
        );
    }
    let both = |r: &str| r.contains("nexthop via 10.99.0.1") && r.contains("nexthop via 10.99.0.3");
    let ecmp = wait_for(Duration::from_secs(30), || {
        let r = kernel_route(&lab.b);
        both(&r).then_some(r)
    });
    let ecmp = ecmp.unwrap_or_else(|| {
        panic!(
            "no ECMP route in BIRD's kernel table: {}\n{}",
            kernel_route(&lab.b),
            bird.cli(&["show", "route", "all", PREFIX])
        )
    });
    println!("ECMP route: {}", ecmp.trim());
    for d in [&d1, &d3] {
        let o = d.json("ospf");
        assert_eq!(o["running"], true, "{o}");
        assert_eq!(o["announced"][0], VIP, "{o}");
        assert!(o["drops"].as_object().is_none_or(|m| m.is_empty()), "{o}");
    }

    // One director stops: its LSAs are flushed and the route keeps the other.
    let exit = d1.stop();
    assert!(exit.is_some_and(|s| s.success()), "dpvsd exit: {exit:?}");
    let single = wait_for(Duration::from_secs(DEAD + 2), || {
        let r = kernel_route(&lab.b);
        (r.contains("via 10.99.0.3") && !r.contains("10.99.0.1")).then_some(r)
    });
    assert!(
        single.is_some(),
        "route after director 1 stopped: {}",
        kernel_route(&lab.b)
    );
    drop(d3);
    let file = capture.finish();
    check_capture(&file, &["ospf-hello", "ospf-dbd", "ospf-lsu", "ospf-lsack"]);
}
