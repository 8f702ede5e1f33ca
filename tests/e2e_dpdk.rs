//! End to end on the DPDK backend (`--features dpdk`): dpvsd forwards for
//! the sample config's VIP on a DPDK port (`net_af_packet` over the lab's
//! veth, without hugepages), and the kernel reaches the network only through
//! the exception TAP, as on a DPVS box whose NIC belongs to DPDK: the load
//! balancer's own address 10.99.0.1 moves from eth0 to the TAP, eth0 keeps
//! no address, and the kernel neither answers ARP nor accepts IP there. So
//! the health checks (kernel sockets) only work if the exception path does.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sniff::{decap, Sniffer};
use common::{can_run, mode_config, repo, service_stats, vip_on_lo, Lab, RS1, RS2, VIP};

/// The port with two queue pairs (the kernel's fanout hash spreads flows).
const TWO_QUEUES: &str = "net_af_packet0,iface=eth0,qpairs=2";

fn sample() -> String {
    std::fs::read_to_string(repo().join("samples/keepalived.conf")).expect("sample config")
}

/// Both workers received and sent frames, and lost nothing to a full
/// redirect ring; returns the frames they redirected to each other.
fn both_workers_busy(lab: &Lab) -> u64 {
    let (ok, out) = lab.dpvsctl(&["status", "--json"]);
    assert!(ok, "dpvsctl status failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let queues = v["ports"][0]["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 2, "{v}");
    let n = |q: &serde_json::Value, k: &str| q[k].as_u64().unwrap_or(0);
    for q in queues {
        assert!(
            n(q, "rx_packets") > 0 && n(q, "tx_packets") > 0,
            "a worker idle: {v}"
        );
        assert_eq!(n(q, "redirect_dropped"), 0, "{v}");
    }
    let out: u64 = queues.iter().map(|q| n(q, "redirected_out")).sum();
    let inn: u64 = queues.iter().map(|q| n(q, "redirected_in")).sum();
    assert!(inn <= out, "redirects out {out} / in {inn}: {v}");
    inn
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// A lab whose lb host gave eth0 to DPDK, with dpvsd running on it
/// (keepalived.conf text `conf`, plus `extra` arguments) and the kernel's
/// address on the TAP. `prepare` runs on the lab before dpvsd starts.
fn dpdk_lab(tag: &str, conf: &str, port: &str, extra: &[&str], prepare: impl FnOnce(&Lab)) -> Lab {
    let mut lab = Lab::up(tag);
    prepare(&lab);
    let conf_path = lab.dir.join("keepalived.conf");
    std::fs::write(&conf_path, conf).expect("write config");
    let lb = lab.ns("lb");
    // The kernel gives eth0 up to DPDK: no address, no ARP answers, and
    // strict reverse-path filtering drops IP that arrives on it.
    ip(&["-n", &lb, "addr", "flush", "dev", "eth0"]);
    for kv in [
        "net.ipv4.conf.eth0.arp_ignore=1",
        "net.ipv4.conf.eth0.rp_filter=1",
    ] {
        ip(&["netns", "exec", &lb, "sysctl", "-qw", kv]);
    }
    let mut args = vec![
        "--backend",
        "dpdk",
        "--dpdk-port",
        port,
        "--dpdk-kni",
        "dpdk0",
        "--dpdk-no-huge",
        "--dpdk-mem",
        "256",
    ];
    args.extend_from_slice(extra);
    lab.start_dpvsd_with(&conf_path, &args);
    // The operator gives the TAP the kernel's address, as on DPVS's KNI.
    ip(&["-n", &lb, "addr", "add", "10.99.0.1/24", "dev", "dpdk0"]);
    ip(&["-n", &lb, "link", "set", "dpdk0", "up"]);
    let _ = Command::new("ip")
        .args(["netns", "exec", &lb, "ethtool", "-K", "dpdk0", "tx", "off"])
        .output();
    lab
}

#[test]
fn dpdk_backend_forwards_and_the_kernel_uses_the_exception_path() {
    if !can_run("dpdk_backend_forwards_and_the_kernel_uses_the_exception_path") {
        return;
    }
    let lab = dpdk_lab("dk", &sample(), "net_af_packet0,iface=eth0", &[], |_| {});

    let (a, b, failed) = lab.traffic(30);
    assert_eq!(
        failed, 0,
        "requests through the VIP failed (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");

    // A real server dies: its check fails and traffic goes to the other.
    lab.webstop("rs1");
    lab.wait_health(RS1, "down", Duration::from_secs(10));
    let (a, b, failed) = lab.traffic(10);
    assert_eq!((a, b, failed), (0, 10, 0), "after rs1 went down");

    // It comes back: health checks run from kernel sockets, and eth0 has
    // no address, so they can only succeed through the exception path.
    lab.web("rs1");
    let took = lab.wait_health(RS1, "up", Duration::from_secs(10));
    println!("rs1 up again (checked through the exception path) after {took:?}");
    let (a, b, failed) = lab.traffic(30);
    assert_eq!(failed, 0, "after recovery (rs1={a} rs2={b})");
    assert!(
        a > 0 && b > 0,
        "after recovery both must answer (rs1={a} rs2={b})"
    );

    let (ok, out) = lab.dpvsctl(&["status", "--json"]);
    assert!(ok, "dpvsctl status failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["backend"], "dpdk", "{v}");
    let port = &v["ports"][0];
    assert_eq!(port["kni"], "dpdk0", "{v}");
    assert!(port["rx_packets"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(port["mbufs_total"].as_u64().unwrap_or(0) > 0, "{v}");
    let q = &port["queues"][0];
    for key in ["rx_packets", "tx_packets", "to_kernel", "from_kernel"] {
        assert!(q[key].as_u64().unwrap_or(0) > 0, "{key} = 0: {v}");
    }
    let (ok, text) = lab.dpvsctl(&["status"]);
    assert!(
        ok && text.contains("port:     net_af_packet0") && text.contains("worker 0:"),
        "dpvsctl status:\n{text}"
    );
    println!("{text}");
    let t0 = Instant::now();
    drop(lab);
    println!("lab down in {:?}", t0.elapsed());
}

/// Runs dpvsd on the DPDK backend with `args` (it must refuse to start);
/// returns its stderr, after checking that no control socket is left.
fn refused(args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("dpvsd-dpdk-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("dpvsd.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_dpvsd"))
        .args(["-n", "-f"])
        .arg(repo().join("samples/keepalived.conf"))
        .arg("--socket")
        .arg(&sock)
        .args(["--backend", "dpdk", "--dpdk-no-huge", "--dpdk-mem", "128"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run dpvsd");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "dpvsd must refuse {args:?}: {err}");
    assert!(!sock.exists(), "control socket left behind");
    let _ = std::fs::remove_dir_all(&dir);
    err
}

/// A port that does not exist, or more workers than dpvsd can steer return
/// traffic for, stop dpvsd before the control plane runs, with a message
/// naming the cause; nothing is left behind.
#[test]
fn dpdk_backend_refuses_bad_ports_and_settings() {
    if !can_run("dpdk_backend_refuses_bad_ports_and_settings") {
        return;
    }
    let err = refused(&["--dpdk-port", "net_bogus0"]);
    assert!(
        err.contains("net_bogus0"),
        "the cause must name the port: {err}"
    );
    // More workers than the port has queues: the port names the cause.
    let err = refused(&["--dpdk-port", "net_null0", "--workers", "2000"]);
    assert!(
        err.contains("net_null0") && err.contains("2000 queues"),
        "the cause must name the port and the queues: {err}"
    );
}

/// Two workers on one port (`net_af_packet` with two queue pairs, spread
/// by the kernel's fanout hash): both carry traffic, FNAT replies that land
/// on the wrong queue reach the worker owning their local port through the
/// redirect ring, and no request fails.
#[test]
fn dpdk_two_workers_share_the_traffic_and_steer_replies() {
    if !can_run("dpdk_two_workers_share_the_traffic_and_steer_replies") {
        return;
    }
    let lab = dpdk_lab("dw", &sample(), TWO_QUEUES, &["--workers", "2"], |_| {});
    let (a, b, failed) = lab.traffic(60);
    assert_eq!(
        failed, 0,
        "requests failed with two workers (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");
    let redirected = both_workers_busy(&lab);
    assert!(redirected > 0, "no FNAT reply needed steering?");
    let (_, text) = lab.dpvsctl(&["status"]);
    println!("{text}");
}

/// NAT on DPDK with two workers: the real servers route the client back
/// through the director; both directions of each connection are placed on
/// one worker by the client-side hash, so every reply is SNATed.
#[test]
fn dpdk_nat_with_two_workers() {
    if !can_run("dpdk_nat_with_two_workers") {
        return;
    }
    let lab = dpdk_lab(
        "dn",
        &mode_config("NAT", 80, ""),
        TWO_QUEUES,
        &["--workers", "2"],
        |lab| {
            for rs in ["rs1", "rs2"] {
                lab.exec(
                    rs,
                    &["ip", "route", "add", "10.99.0.2/32", "via", "10.99.0.1"],
                );
            }
        },
    );
    lab.wait_health(RS1, "up", Duration::from_secs(10));
    lab.wait_health(RS2, "up", Duration::from_secs(10));
    let (a, b, failed) = lab.traffic(40);
    assert_eq!(failed, 0, "NAT requests failed (rs1={a} rs2={b})");
    assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
    let (conns, inp, outp) = service_stats(&lab);
    assert!(conns >= 40, "connections {conns} < 40");
    assert!(
        inp > 0 && outp >= conns,
        "in={inp} out={outp} conns={conns}"
    );
    let redirected = both_workers_busy(&lab);
    println!("NAT: {conns} conns, {redirected} frames redirected between workers");
}

/// DR on DPDK with two workers: MACs rewritten, replies bypass dpvsd.
#[test]
fn dpdk_dr_with_two_workers() {
    if !can_run("dpdk_dr_with_two_workers") {
        return;
    }
    let lab = dpdk_lab(
        "dd",
        &mode_config("DR", 8080, ""),
        TWO_QUEUES,
        &["--workers", "2"],
        vip_on_lo,
    );
    lab.wait_health(RS1, "up", Duration::from_secs(10));
    lab.wait_health(RS2, "up", Duration::from_secs(10));
    let (a, b, failed) = lab.traffic_to(&format!("http://{VIP}:8080/"), 30);
    assert_eq!(failed, 0, "DR requests failed (rs1={a} rs2={b})");
    assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
    let (conns, inp, outp) = service_stats(&lab);
    assert!(conns >= 30, "connections {conns} < 30");
    assert!(inp >= 3 * conns, "in={inp} conns={conns}");
    assert_eq!(outp, 0, "DR replies must bypass the director");
    both_workers_busy(&lab);
}

/// TUN on DPDK with two workers, proven on the wire as in e2e_modes: this
/// kernel has no ipip module, so a sniffer in each real server checks every
/// IPIP packet dpvsd sent through the DPDK port and delivers its inner
/// packet; every tunnelled packet arrives intact, and without the sniffers
/// nothing answers.
#[test]
fn dpdk_tun_encapsulates_ipip_proven_on_the_wire() {
    if !can_run("dpdk_tun_encapsulates_ipip_proven_on_the_wire") {
        return;
    }
    let lab = dpdk_lab(
        "dt",
        &mode_config("TUN", 8080, ""),
        TWO_QUEUES,
        &["--workers", "2"],
        vip_on_lo,
    );
    let (ip1, ip2) = (Ipv4Addr::new(10, 99, 0, 3), Ipv4Addr::new(10, 99, 0, 4));
    let rs1 = Sniffer::start(&lab, "rs1", move |f: &[u8]| decap(f, ip1));
    let rs2 = Sniffer::start(&lab, "rs2", move |f: &[u8]| decap(f, ip2));
    lab.wait_health(RS1, "up", Duration::from_secs(10));
    lab.wait_health(RS2, "up", Duration::from_secs(10));

    let url = format!("http://{VIP}:8080/");
    let (a, b, failed) = lab.traffic_to(&url, 20);
    // Let the last ACKs of the closing connections through the tunnel.
    std::thread::sleep(Duration::from_millis(500));
    let (r1, r2) = (rs1.finish(), rs2.finish());
    println!("rs1 {r1:?}\nrs2 {r2:?}");
    assert!(
        r1.problems.is_empty() && r2.problems.is_empty(),
        "bad IPIP packets: rs1 {:?} rs2 {:?}",
        r1.problems,
        r2.problems
    );
    assert_eq!(failed, 0, "TUN requests failed (rs1={a} rs2={b})");
    assert!(a > 0 && b > 0, "rr must use both (rs1={a} rs2={b})");
    let (conns, inp, outp) = service_stats(&lab);
    assert!(conns >= 20, "connections {conns} < 20");
    // Each request took at least SYN, ACK, request, FIN through the tunnel.
    let good = r1.good + r2.good;
    assert!(good >= 3 * 20, "decapsulated {} + {}", r1.good, r2.good);
    assert_eq!(
        inp as usize, good,
        "every packet dpvsd tunnelled arrived, and nothing else"
    );
    assert_eq!(outp, 0, "TUN replies must bypass the director");
    both_workers_busy(&lab);

    // Without the decapsulating helpers nothing answers: the traffic really
    // went through the tunnel.
    let (a, b, failed) = lab.traffic_to(&url, 2);
    assert_eq!((a, b, failed), (0, 0, 2));
}
