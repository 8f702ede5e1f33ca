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

use common::sniff::{assert_tunnelled, decap, Sniffer};
use common::{
    can_run, mode_config, mode_config_for, repo, service_stats, vip_on_lo, Lab, RS1, RS1_V6, RS2,
    RS2_V6, VIP, VIP6,
};

/// The port with two queue pairs (the kernel's fanout hash spreads flows).
const TWO_QUEUES: &str = "net_af_packet0,iface=eth0,qpairs=2";

fn sample() -> String {
    std::fs::read_to_string(repo().join("samples/keepalived.conf")).expect("sample config")
}

/// Both workers received and sent frames on the first port, and lost
/// nothing to a full redirect ring; returns the frames they redirected to
/// each other.
fn both_workers_busy(lab: &Lab) -> u64 {
    both_workers_busy_on(lab, 0)
}

/// [`both_workers_busy`] on port number `port`.
fn both_workers_busy_on(lab: &Lab, port: usize) -> u64 {
    let (ok, out) = lab.dpvsctl(&["status", "--json"]);
    assert!(ok, "dpvsctl status failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let queues = v["ports"][port]["queues"].as_array().expect("queues");
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

/// Frames the DPDK port received.
fn port_rx(lab: &Lab) -> u64 {
    let (_, out) = lab.dpvsctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v["ports"][0]["rx_packets"].as_u64().unwrap_or(0)
}

/// A service of the kernel's own (SSH's role) on its TAP address
/// 10.99.0.1, and ping: the client reaches both, so unicast to the kernel
/// comes in through the exception path and the kernel's answers go out.
fn kernel_answers_the_client(lab: &Lab) {
    let servers = "  server {\n    listen 10.99.0.1:2222;\n    location / { default_type text/plain; return 200 \"kernel\\n\"; }\n  }\n";
    let _kernel = common::nginx(lab, "lb", "kernel-svc", servers, 2222);
    for i in 0..5 {
        assert_eq!(
            lab.get("http://10.99.0.1:2222/").as_deref(),
            Some("kernel"),
            "connection {i} to the kernel's own service"
        );
    }
    let ping = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client")])
        .args(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.1"])
        .output()
        .expect("run ping");
    assert!(
        ping.status.success(),
        "the kernel does not answer ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// A lab whose lb host gave eth0 to DPDK, with dpvsd running on it
/// (keepalived.conf text `conf`, plus `extra` arguments) and the kernel's
/// address on the TAP. `prepare` runs on the lab before dpvsd starts.
fn dpdk_lab(tag: &str, conf: &str, port: &str, extra: &[&str], prepare: impl FnOnce(&Lab)) -> Lab {
    dpdk_lab_on(Lab::up(tag), conf, port, extra, prepare)
}

/// [`dpdk_lab`] on a lab already built (e.g. [`Lab::up_v6`]).
fn dpdk_lab_on(
    mut lab: Lab,
    conf: &str,
    port: &str,
    extra: &[&str],
    prepare: impl FnOnce(&Lab),
) -> Lab {
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
    lab.wait_checks_ok(RS1, Duration::from_secs(15));
    lab.wait_checks_ok(RS2, Duration::from_secs(15));

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
    kernel_answers_the_client(&lab);
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
    refused_with(&sample(), args)
}

/// [`refused`] with keepalived.conf text `conf`.
fn refused_with(conf: &str, args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("dpvsd-dpdk-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("dpvsd.sock");
    let conf_path = dir.join("keepalived.conf");
    std::fs::write(&conf_path, conf).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_dpvsd"))
        .args(["-n", "-f"])
        .arg(&conf_path)
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
    // Several ports: the same one twice, or a second that does not exist
    // (the first, opened already, is closed again).
    let err = refused(&["--dpdk-port", "net_null0", "--dpdk-port", "net_null0"]);
    assert!(
        err.contains("--dpdk-port: port net_null0 is given twice"),
        "the cause must name the port: {err}"
    );
    let err = refused(&["--dpdk-port", "net_null0", "--dpdk-port", "net_bogus1"]);
    assert!(
        err.contains("net_bogus1"),
        "the cause must name the second port: {err}"
    );
    // An address bound to a port that was not given.
    let conf = mode_config("DR", 80, "    vip_bind_dev dpdk1\n");
    let err = refused_with(&conf, &["--dpdk-port", "net_null0"]);
    assert!(
        err.contains("keepalived.conf:1:")
            && err.contains("10.99.0.100 is bound to dpdk1, but dpvsd drives 1 port(s)"),
        "the cause must name the binding and where it is: {err}"
    );
    // Fewer CPUs to pin to than workers.
    let err = refused(&[
        "--dpdk-port",
        "net_null0",
        "--workers",
        "2",
        "--dpdk-cores",
        "0",
    ]);
    assert!(
        err.contains("--dpdk-cores: 1 CPU(s) listed for 2 worker(s)"),
        "the cause must name the option: {err}"
    );
}

/// The CPUs each `dp-worker` thread of process `pid` may run on, by
/// worker name (`Cpus_allowed_list` from /proc).
fn worker_cpus(pid: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("dp-worker") {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_default();
        out.push((comm.trim().to_string(), cpus.trim().to_string()));
    }
    out.sort();
    out
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
    // Workers pinned one per CPU (`--dpdk-cores`) where there are two.
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let mut extra = vec!["--workers", "2"];
    if two_cpus {
        extra.extend(["--dpdk-cores", "1,0"]);
    }
    let lab = dpdk_lab("dw", &sample(), TWO_QUEUES, &extra, |_| {});
    if two_cpus {
        let pid = lab.dpvsd_pid().expect("dpvsd pid");
        assert_eq!(
            worker_cpus(pid),
            [
                ("dp-worker0".to_string(), "1".to_string()),
                ("dp-worker1".to_string(), "0".to_string())
            ],
            "each worker pinned to its CPU"
        );
    } else {
        println!("SKIP: one CPU, the workers are not pinned");
    }
    lab.wait_checks_ok(RS1, Duration::from_secs(15));
    lab.wait_checks_ok(RS2, Duration::from_secs(15));
    let (a, b, failed) = lab.traffic(60);
    assert_eq!(
        failed, 0,
        "requests failed with two workers (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");
    kernel_answers_the_client(&lab);
    let redirected = both_workers_busy(&lab);
    assert!(redirected > 0, "no FNAT reply needed steering?");
    let (_, text) = lab.dpvsctl(&["status"]);
    println!("{text}");
}

/// IPv6 FNAT on DPDK with two workers: replies from the real servers to
/// the IPv6 local address that the port's spreading put on the other
/// worker's queue reach the worker owning their local port (steering reads
/// IPv6 as the engine does), and no request fails. The kernel's IPv6
/// address (health checks) is on the TAP, IPv6 is off on eth0, and only
/// the kernel's IPv6 frames are copied to the TAP.
#[test]
fn dpdk_ipv6_fnat_with_two_workers() {
    if !can_run("dpdk_ipv6_fnat_with_two_workers") {
        return;
    }
    let conf = format!(
        "local_address_group lg6 {{\n    fd99::200 eth0\n}}\n{}",
        mode_config_for(
            VIP6,
            ["fd99::3", "fd99::4"],
            "FNAT",
            80,
            "    laddr_group_name lg6\n"
        )
    );
    let lab = dpdk_lab_on(
        Lab::up_v6("d6"),
        &conf,
        TWO_QUEUES,
        &["--workers", "2"],
        |lab| {
            let lb = lab.ns("lb");
            ip(&[
                "netns",
                "exec",
                &lb,
                "sysctl",
                "-qw",
                "net.ipv6.conf.eth0.disable_ipv6=1",
            ]);
        },
    );
    let lb = lab.ns("lb");
    ip(&[
        "-n",
        &lb,
        "addr",
        "add",
        "fd99::1/64",
        "dev",
        "dpdk0",
        "nodad",
    ]);
    lab.wait_checks_ok(RS1_V6, Duration::from_secs(15));
    lab.wait_checks_ok(RS2_V6, Duration::from_secs(15));
    let (a, b, failed) = lab.traffic_to(&format!("http://[{VIP6}]/"), 60);
    assert_eq!(
        failed, 0,
        "IPv6 requests failed with two workers (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");
    let redirected = both_workers_busy(&lab);
    let (_, out) = lab.dpvsctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let sum = |k: &str| -> u64 {
        v["ports"][0]["queues"]
            .as_array()
            .map_or(0, |q| q.iter().map(|q| q[k].as_u64().unwrap_or(0)).sum())
    };
    // The exception path copies IPv6 for the kernel's addresses (and
    // link-local, multicast) only: not the VIP's and local address's
    // traffic, which is most of what the port received.
    let (rx, to_kernel) = (sum("rx_packets"), sum("to_kernel"));
    println!(
        "IPv6 FNAT: {redirected} frames redirected between workers; rx {rx} to_kernel {to_kernel}"
    );
    assert!(
        to_kernel * 4 < rx,
        "the kernel got copies of the dataplane's IPv6 traffic: {to_kernel} of {rx}"
    );
    assert!(redirected > 0, "no IPv6 FNAT reply needed steering?");
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
        |lab| lab.exec_servers(&["ip", "route", "add", "10.99.0.2/32", "via", "10.99.0.1"]),
    );
    lab.wait_checks_ok(RS1, Duration::from_secs(15));
    lab.wait_checks_ok(RS2, Duration::from_secs(15));
    let (conns, inp, outp) = lab.balanced("NAT", &format!("http://{VIP}/"), 40);
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
    lab.wait_checks_ok(RS1, Duration::from_secs(15));
    lab.wait_checks_ok(RS2, Duration::from_secs(15));
    let (conns, inp, outp) = lab.balanced("DR", &format!("http://{VIP}:8080/"), 30);
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
    lab.wait_checks_ok(RS1, Duration::from_secs(15));
    lab.wait_checks_ok(RS2, Duration::from_secs(15));

    let url = format!("http://{VIP}:8080/");
    assert_tunnelled(&lab, (rs1, rs2), &url, 20);
    both_workers_busy(&lab);

    // Without the decapsulating helpers nothing answers: the traffic really
    // went through the tunnel.
    let (a, b, failed) = lab.traffic_to(&url, 2);
    assert_eq!((a, b, failed), (0, 0, 2));
}

/// VRRP on DPDK: dpvsd's vrrp_instance runs on the exception TAP (`interface
/// dpdk0`, the kernel's view of the DPDK port, as on DPVS's KNI), against a
/// real keepalived in rs2. Its adverts leave through the TAP and the DPDK
/// port (keepalived stays BACKUP only while it hears them), keepalived's
/// reach it the same way back (dpvsd yields to a higher priority), and the
/// dataplane-owned VIP follows: as MASTER the VIP is served through the
/// DPDK dataplane; when dpvsd stops, keepalived takes over.
#[test]
fn dpdk_vrrp_against_keepalived_moves_the_vip() {
    if !can_run("dpdk_vrrp_against_keepalived_moves_the_vip") {
        return;
    }
    if !testlab::have("keepalived") {
        println!("SKIP: dpdk_vrrp_against_keepalived_moves_the_vip: no keepalived");
        return;
    }
    let conf = format!(
        "{}\nvrrp_instance VI_51 {{\n    state BACKUP\n    interface dpdk0\n    virtual_router_id 51\n\
         \x20   priority 150\n    advert_int 1\n    garp_master_delay 0\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n",
        sample()
    );
    let ka_conf = |prio: u8| {
        format!(
            "global_defs {{\n    router_id ka_rs2\n}}\nvrrp_instance VI_51 {{\n    state BACKUP\n    interface eth0\n\
             \x20   virtual_router_id 51\n    priority {prio}\n    advert_int 1\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
        )
    };
    let lab = dpdk_lab("dv", &conf, "net_af_packet0,iface=eth0", &[], |_| {});
    let rs2 = lab.ns("rs2");
    let ka_dir = lab.dir.join("ka");
    let ka_log = || std::fs::read_to_string(ka_dir.join("keepalived.log")).unwrap_or_default();
    let ka_state = || {
        let log = ka_log();
        ["MASTER", "BACKUP", "FAULT"]
            .into_iter()
            .filter_map(|w| log.rfind(&format!("Entering {w} STATE")).map(|p| (p, w)))
            .max_by_key(|(p, _)| *p)
            .map(|(_, w)| w)
    };
    let vrrp = |lab: &Lab| {
        let (_, text) = lab.dpvsctl(&["vrrp", "--json"]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["instances"][0].clone()
    };
    let has_vip = |ns: &str| {
        testlab::output(&["ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"])
            .contains(&format!(" {VIP}/"))
    };

    let mut ka = testlab::spawn_keepalived(&rs2, &ka_dir, &ka_conf(100));
    let master = testlab::wait_for(Duration::from_secs(15), || {
        (vrrp(&lab)["state"] == "MASTER").then_some(())
    });
    assert!(master.is_some(), "dpvsd not MASTER: {}", vrrp(&lab));
    let v = vrrp(&lab);
    assert_eq!(v["owners"][0][1], "dataplane", "{v}");
    // keepalived hears dpvsd's adverts (through TAP and DPDK port): past
    // three advert intervals it is still BACKUP and has no VIP.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ka_state(), Some("BACKUP"), "{}", ka_log());
    assert!(!has_vip(&rs2), "keepalived took the VIP: {}", ka_log());
    let sent = v["counters"]["adverts_sent"].as_u64().unwrap_or(0);
    assert!(sent > 0, "{v}");
    let rx_before = port_rx(&lab);
    let (a, b, failed) = lab.traffic(12);
    assert_eq!(
        failed, 0,
        "traffic through the VRRP-held VIP (rs1={a} rs2={b})"
    );
    assert!(a > 0 && b > 0, "rs1={a} rs2={b}");
    assert!(
        port_rx(&lab) >= rx_before + 12 * 3,
        "served by the DPDK port"
    );
    let (conns, _, _) = service_stats(&lab);
    assert!(conns >= 12, "connections {conns}");

    // keepalived comes back at 200 and preempts: its adverts reach dpvsd's
    // VRRP through the DPDK port and the TAP, and dpvsd goes BACKUP.
    testlab::finish(&mut ka, nix::sys::signal::Signal::SIGTERM);
    let mut ka = testlab::spawn_keepalived(&rs2, &ka_dir, &ka_conf(200));
    let backup = testlab::wait_for(Duration::from_secs(10), || {
        (vrrp(&lab)["state"] == "BACKUP").then_some(())
    });
    assert!(backup.is_some(), "dpvsd not BACKUP: {}", vrrp(&lab));
    let ka_master = testlab::wait_for(Duration::from_secs(10), || {
        (ka_state() == Some("MASTER") && has_vip(&rs2)).then_some(())
    });
    assert!(ka_master.is_some(), "{}", ka_log());
    testlab::finish(&mut ka, nix::sys::signal::Signal::SIGTERM);

    // keepalived leaves: dpvsd is MASTER and serving again (its GARPs
    // through the DPDK port fix the client's ARP cache).
    let master = testlab::wait_for(Duration::from_secs(10), || {
        (vrrp(&lab)["state"] == "MASTER").then_some(())
    });
    assert!(master.is_some(), "dpvsd not MASTER again: {}", vrrp(&lab));
    let (a, b, failed) = lab.traffic(12);
    assert_eq!(
        failed, 0,
        "traffic after taking the VIP back (rs1={a} rs2={b})"
    );

    // dpvsd stops: keepalived (priority 100) takes the VIP over.
    let mut ka = testlab::spawn_keepalived(&rs2, &ka_dir, &ka_conf(100));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ka_state(), Some("BACKUP"), "{}", ka_log());
    if let Some(pid) = lab.dpvsd_pid() {
        testlab::signal(pid as u32, nix::sys::signal::Signal::SIGTERM);
    }
    let ka_master = testlab::wait_for(Duration::from_secs(10), || {
        (ka_state() == Some("MASTER") && has_vip(&rs2)).then_some(())
    });
    testlab::finish(&mut ka, nix::sys::signal::Signal::SIGTERM);
    assert!(
        ka_master.is_some(),
        "keepalived did not take over: {}",
        ka_log()
    );
}

/// OSPF on DPDK: dpvsd's announcer runs on the exception TAP (`interface
/// dpdk0`) against a real BIRD 2 in rs2. Hellos and the database exchange
/// (multicast and unicast to the TAP's address) cross the DPDK port and
/// the TAP both ways: the adjacency is Full and BIRD learns the VIP /32
/// behind the kernel's address, while the VIP's traffic is the dataplane's.
#[test]
fn dpdk_ospf_through_the_exception_path() {
    if !can_run("dpdk_ospf_through_the_exception_path") {
        return;
    }
    if !testlab::have("bird") || !testlab::have("birdc") {
        assert!(std::env::var_os("CI").is_none(), "CI must install bird2");
        println!("SKIP: dpdk_ospf_through_the_exception_path: no BIRD");
        return;
    }
    let conf = format!(
        "{}\nospf_announcer {{\n    router_id 10.99.0.1\n    area 0.0.0.0\n    interface dpdk0 {{\n\
         \x20       hello_interval 1\n        dead_interval 4\n        priority 1\n        cost 10\n\
         \x20       authentication none\n    }}\n    announce_as stub\n    metric 10\n}}\n",
        sample()
    );
    let lab = dpdk_lab("do", &conf, "net_af_packet0,iface=eth0", &[], |_| {});
    let bird_dir = lab.dir.join("bird");
    std::fs::create_dir_all(&bird_dir).expect("bird dir");
    let bird_conf = bird_dir.join("bird.conf");
    std::fs::write(
        &bird_conf,
        "log stderr all;\nrouter id 10.99.0.4;\nprotocol device {\n    scan time 1;\n}\n\
         protocol ospf v2 ospf1 {\n    ipv4 {\n        import all;\n        export none;\n    };\n\
         \x20   area 0 {\n        interface \"eth0\" {\n            type broadcast;\n            hello 1;\n\
         \x20           dead 4;\n            wait 4;\n            retransmit 2;\n            priority 1;\n\
         \x20           cost 10;\n            authentication none;\n        };\n    };\n}\n",
    )
    .expect("bird.conf");
    let ctl = bird_dir.join("bird.ctl").display().to_string();
    let log = std::fs::File::create(bird_dir.join("bird.log")).expect("bird.log");
    let bird = common::Killed(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("rs2"), "bird", "-f", "-c"])
            .arg(&bird_conf)
            .args(["-s", &ctl, "-P"])
            .arg(bird_dir.join("bird.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bird"),
    );
    let birdc = |args: &[&str]| {
        let mut all = vec!["birdc", "-s", ctl.as_str()];
        all.extend_from_slice(args);
        testlab::output(&all)
    };
    lab.wait_checks_ok(RS1, Duration::from_secs(15));
    let prefix = format!("{VIP}/32");
    let learned = testlab::wait_for(Duration::from_secs(40), || {
        birdc(&["show", "route", &prefix, "all"])
            .contains("[ospf1 ")
            .then_some(())
    });
    assert!(
        learned.is_some(),
        "BIRD did not learn {prefix} over the exception path: neighbours {}\nroutes {}\ndpvsd {}",
        birdc(&["show", "ospf", "neighbors"]),
        birdc(&["show", "route"]),
        lab.dpvsctl(&["ospf", "--json"]).1
    );
    let neighbours = birdc(&["show", "ospf", "neighbors"]);
    assert!(
        neighbours
            .lines()
            .any(|l| l.starts_with("10.99.0.1") && l.contains("Full")),
        "{neighbours}"
    );
    let route = birdc(&["show", "route", &prefix]);
    assert!(route.contains("via 10.99.0.1"), "{route}");
    let (ok, text) = lab.dpvsctl(&["ospf"]);
    assert!(ok && text.contains("Full") && text.contains(VIP), "{text}");
    // The VIP itself stays the dataplane's.
    let (a, b, failed) = lab.traffic(6);
    assert_eq!(failed, 0, "traffic to the announced VIP (rs1={a} rs2={b})");
    drop(bird);
}

/// The real servers' network of the two-arm tests: bridge br1 in the
/// lab's switch, rs1 and rs2 moved onto it as 10.99.1.3 and 10.99.1.4
/// (`v6`: fd99:1::3 and fd99:1::4 too), and the lb host's eth1 on it,
/// given up to DPDK like eth0 (no address, no ARP answers, no IPv6).
fn server_network(lab: &Lab, v6: bool) {
    let (sw, lb) = (lab.ns("sw"), lab.ns("lb"));
    ip(&[
        "-n",
        &sw,
        "link",
        "add",
        "br1",
        "type",
        "bridge",
        "stp_state",
        "0",
    ]);
    ip(&[
        "-n",
        &sw,
        "link",
        "set",
        "br1",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    ip(&["-n", &sw, "link", "set", "br1", "up"]);
    for (i, rs) in [(3, "rs1"), (4, "rs2")] {
        let port = format!("v{}{i}", lab.prefix);
        ip(&["-n", &sw, "link", "set", &port, "nomaster"]);
        ip(&["-n", &sw, "link", "set", &port, "master", "br1", "up"]);
        let ns = lab.ns(rs);
        ip(&["-n", &ns, "addr", "flush", "dev", "eth0"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.99.1.{i}/24"),
            "dev",
            "eth0",
        ]);
        if v6 {
            let a = format!("fd99:1::{i}/64");
            ip(&["-n", &ns, "addr", "add", &a, "dev", "eth0", "nodad"]);
        }
    }
    let port = format!("v{}s1", lab.prefix);
    ip(&[
        "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth1", "netns", &lb,
    ]);
    ip(&[
        "-n",
        &lb,
        "link",
        "set",
        "eth1",
        "address",
        "02:99:00:00:01:01",
    ]);
    ip(&["-n", &lb, "link", "set", "eth1", "up"]);
    ip(&["-n", &sw, "link", "set", &port, "master", "br1", "up"]);
    for (ns, dev) in [(&lb, "eth1"), (&sw, port.as_str())] {
        let _ = Command::new("ip")
            .args(["netns", "exec", ns, "ethtool", "-K", dev])
            .args([
                "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
            ])
            .output();
    }
    let mut sysctls = vec![
        "net.ipv4.conf.eth1.arp_ignore=1",
        "net.ipv4.conf.eth1.rp_filter=1",
    ];
    if v6 {
        sysctls.extend([
            "net.ipv6.conf.eth0.disable_ipv6=1",
            "net.ipv6.conf.eth1.disable_ipv6=1",
        ]);
    }
    for kv in sysctls {
        ip(&["netns", "exec", &lb, "sysctl", "-qw", kv]);
    }
}

/// dpvsd with `workers` workers on two `net_af_packet` ports (a queue
/// pair per worker each), eth0 (`dpdk0`, clients) and eth1 (`dpdk1`,
/// [`server_network`]), each with its TAP, the kernel's addresses on
/// them; `conf` binds its local address to `dpdk1`.
fn two_arm_lab(lab: Lab, conf: &str, v6: bool, workers: u16) -> Lab {
    let port1 = format!("net_af_packet1,iface=eth1,qpairs={workers}");
    let n = workers.to_string();
    let lab = dpdk_lab_on(
        lab,
        conf,
        &format!("net_af_packet0,iface=eth0,qpairs={workers}"),
        &["--dpdk-port", &port1, "--workers", &n],
        |lab| server_network(lab, v6),
    );
    let lb = lab.ns("lb");
    ip(&["-n", &lb, "addr", "add", "10.99.1.1/24", "dev", "dpdk1"]);
    if v6 {
        ip(&[
            "-n",
            &lb,
            "addr",
            "add",
            "fd99::1/64",
            "dev",
            "dpdk0",
            "nodad",
        ]);
        ip(&[
            "-n",
            &lb,
            "addr",
            "add",
            "fd99:1::1/64",
            "dev",
            "dpdk1",
            "nodad",
        ]);
    }
    ip(&["-n", &lb, "link", "set", "dpdk1", "up"]);
    let _ = Command::new("ip")
        .args(["netns", "exec", &lb, "ethtool", "-K", "dpdk1", "tx", "off"])
        .output();
    lab
}

/// `dpvsctl status` shows both ports, each of which forwarded (requests
/// out of dpdk1, replies out of dpdk0) and carried the kernel's frames
/// (ping on dpdk0, health checks on dpdk1).
fn both_ports_busy(lab: &Lab) {
    let (ok, out) = lab.dpvsctl(&["status", "--json"]);
    assert!(ok, "dpvsctl status failed");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let ports = v["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 2, "{v}");
    for (i, port) in ports.iter().enumerate() {
        assert_eq!(port["name"], format!("net_af_packet{i}"), "{v}");
        assert_eq!(port["kni"], format!("dpdk{i}"), "{v}");
        let q = &port["queues"][0];
        for key in ["rx_packets", "tx_packets", "to_kernel", "from_kernel"] {
            assert!(q[key].as_u64().unwrap_or(0) > 0, "port {i}: {key} = 0: {v}");
        }
    }
    let (ok, text) = lab.dpvsctl(&["status"]);
    assert!(
        ok && text.contains(" on net_af_packet0, net_af_packet1 with "),
        "dpvsctl status names both ports in its backend line:\n{text}"
    );
    println!("{text}");
}

/// Pings the lb host's kernel address `addr` (on the TAP dpdk0) from the
/// client.
fn kernel_pings(lab: &Lab, addr: &str) {
    let ping = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client")])
        .args(["ping", "-c", "3", "-i", "0.2", "-W", "2", addr])
        .output()
        .expect("run ping");
    assert!(ping.status.success(), "the kernel does not answer on dpdk0");
}

/// The two-arm FNAT lab (`v6`: over IPv6) with `workers` workers: VIP
/// on `dpdk0`, the real servers behind `dpdk1` with the local address
/// bound there; waits for both servers' health checks, then checks that
/// 30 requests through the VIP succeed on both servers, which reached the
/// local address at dpdk1's MAC.
fn two_arm_fnat(lab: Lab, v6: bool, workers: u16) -> Lab {
    let (vip, servers, lip) = if v6 {
        (VIP6, ["fd99:1::3", "fd99:1::4"], "fd99:1::200")
    } else {
        (VIP, ["10.99.1.3", "10.99.1.4"], "10.99.1.200")
    };
    let conf = format!(
        "local_address_group lg {{\n    {lip} dpdk1\n}}\n{}",
        mode_config_for(vip, servers, "FNAT", 80, "    laddr_group_name lg\n")
    );
    let lab = two_arm_lab(lab, &conf, v6, workers);
    for s in servers {
        let rs = if v6 {
            format!("[{s}]:8080")
        } else {
            format!("{s}:8080")
        };
        lab.wait_checks_ok(&rs, Duration::from_secs(15));
    }
    let url = if v6 {
        format!("http://[{vip}]/")
    } else {
        format!("http://{vip}/")
    };
    let (a, b, failed) = lab.traffic_to(&url, 30);
    assert_eq!(failed, 0, "two-arm requests failed (rs1={a} rs2={b})");
    assert!(a > 0 && b > 0, "both servers must answer (rs1={a} rs2={b})");
    let n = lab.neigh("rs1", lip);
    assert!(n.contains("02:99:00:00:01:01"), "rs1: {n}");
    lab
}

/// Two-arm FNAT, DPVS's usual deployment: clients on `dpdk0` (the VIP
/// there), the real servers on another network behind `dpdk1` (the local
/// address bound there: `10.99.1.200 dpdk1`), each port a `net_af_packet`
/// vdev with its own exception TAP (`dpdk0`, `dpdk1`). The two networks
/// are separate bridges, so a request through the VIP only succeeds if
/// the dataplane forwards from one port to the other and back; the health
/// checks (kernel sockets on the TAP `dpdk1`, eth1 has no address) only if
/// the server side's exception path does. A server that stops is seen
/// down through it.
#[test]
fn dpdk_two_arm_fnat() {
    if !can_run("dpdk_two_arm_fnat") {
        return;
    }
    let lab = two_arm_fnat(Lab::up("d2"), false, 1);
    let rs1 = "10.99.1.3:8080";
    lab.webstop("rs1");
    lab.wait_health(rs1, "down", Duration::from_secs(10));
    let (a, b, failed) = lab.traffic(10);
    assert_eq!((a, b, failed), (0, 10, 0), "after rs1 went down");
    lab.web("rs1");
    lab.wait_health(rs1, "up", Duration::from_secs(10));
    kernel_pings(&lab, "10.99.0.1");
    both_ports_busy(&lab);
}

/// [`dpdk_two_arm_fnat`] over IPv6: VIP fd99::100 on `dpdk0`, the real
/// servers fd99:1::3 and fd99:1::4 behind `dpdk1` with the local address
/// fd99:1::200 bound there; neighbor discovery for each address only on
/// its port; health checks from the TAP `dpdk1`'s fd99:1::1.
#[test]
fn dpdk_two_arm_fnat6() {
    if !can_run("dpdk_two_arm_fnat6") {
        return;
    }
    let lab = two_arm_fnat(Lab::up_v6("d26"), true, 1);
    kernel_pings(&lab, "fd99::1");
    both_ports_busy(&lab);
}

/// [`dpdk_two_arm_fnat`] with two workers, each polling its queue pair of
/// both ports: the servers' replies arrive on dpdk1's queues wherever the
/// kernel's fanout hash puts them and reach the worker owning the
/// connection (dpdk1's own redirect rings); both workers forward on both
/// ports and lose nothing to a full ring.
#[test]
fn dpdk_two_arm_fnat_two_workers() {
    if !can_run("dpdk_two_arm_fnat_two_workers") {
        return;
    }
    let lab = two_arm_fnat(Lab::up("d22"), false, 2);
    let (a, b, failed) = lab.traffic(30);
    assert_eq!(failed, 0, "rs1={a} rs2={b}");
    let redirected = both_workers_busy_on(&lab, 0) + both_workers_busy_on(&lab, 1);
    println!("two-arm with two workers: {redirected} frames redirected between workers");
}

/// Two-arm NAT, LVS's classic layout: the real servers on a network of
/// their own behind `dpdk1`, routing back through the director's address
/// there (the TAP `dpdk1`'s 10.99.1.1, the port's MAC). NAT has no local
/// addresses, so the servers are asked for (ARP) from the kernel's address
/// of the port whose network holds them, on that port; requests leave on
/// `dpdk1`, the SNATed replies on `dpdk0`. No health checks: nothing but
/// the dataplane's own ARP requests tells it where the servers are.
#[test]
fn dpdk_two_arm_nat() {
    if !can_run("dpdk_two_arm_nat") {
        return;
    }
    two_arm_nat(Lab::up("d2n"), false);
}

/// [`dpdk_two_arm_nat`] over IPv6: the servers fd99:1::3 and fd99:1::4
/// are solicited from the TAP `dpdk1`'s fd99:1::1 on `dpdk1`, and route
/// back through it.
#[test]
fn dpdk_two_arm_nat6() {
    if !can_run("dpdk_two_arm_nat6") {
        return;
    }
    two_arm_nat(Lab::up_v6("d2n6"), true);
}

/// The two-arm NAT lab (`v6`: over IPv6) and its checks.
fn two_arm_nat(lab: Lab, v6: bool) {
    let (vip, servers, gw) = if v6 {
        (VIP6, ["fd99:1::3", "fd99:1::4"], "fd99:1::1")
    } else {
        (VIP, ["10.99.1.3", "10.99.1.4"], "10.99.1.1")
    };
    let rs = |ip: &str| format!("    real_server {ip} 8080 {{\n        weight 1\n    }}\n");
    let conf = format!(
        "virtual_server {vip} 80 {{\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n{}{}}}\n",
        rs(servers[0]),
        rs(servers[1])
    );
    let lab = two_arm_lab(lab, &conf, v6, 1);
    let family = if v6 { "-6" } else { "-4" };
    lab.exec_servers(&["ip", family, "route", "replace", "default", "via", gw]);
    // dpvsd learns dpdk1's address within a second of it being set.
    let url = if v6 {
        format!("http://[{vip}]/")
    } else {
        format!("http://{vip}/")
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while lab.get(&url).is_none() {
        assert!(
            Instant::now() < deadline,
            "no answer through the VIP: the servers behind dpdk1 were not resolved"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (conns, inp, outp) = lab.balanced("two-arm NAT", &url, 30);
    assert!(
        inp > 0 && outp >= conns,
        "replies must come back through the director: in={inp} out={outp} conns={conns}"
    );
    // The servers reached their gateway at dpdk1's MAC.
    for rs in ["rs1", "rs2"] {
        let n = lab.neigh(rs, gw);
        assert!(n.contains("02:99:00:00:01:01"), "{rs}: {n}");
    }
    // The kernel answers on both sides (through each port's TAP).
    kernel_pings(&lab, if v6 { "fd99::1" } else { "10.99.0.1" });
    lab.exec("rs1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", gw]);
    both_ports_busy(&lab);
}

/// Two-arm SNAT, DPVS's tutorial layout (`iif dpdk1`, `oif dpdk0`): the
/// inside host rs2 (10.99.1.4) behind `dpdk1` routes through the TAP
/// `dpdk1`'s address; the outside host (the client namespace, holding
/// 203.0.113.3, an nginx there answering with the address it saw) is the
/// WAN gateway on `dpdk0`, where the SNAT address 10.99.0.50 lives. The
/// match service comes with a reload once the kernel's route to the
/// outside exists (the gateway is read from it). The outside host must
/// see the SNAT address, and the replies reach rs2 on `dpdk1`: rs2 is
/// nobody's real server, so only its network (the TAP `dpdk1`'s) says
/// where it is.
#[test]
fn dpdk_two_arm_snat() {
    if !can_run("dpdk_two_arm_snat") {
        return;
    }
    let base = format!(
        "virtual_server {VIP} 80 {{\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    real_server 10.99.1.3 8080 {{\n        weight 1\n    }}\n}}\n"
    );
    let lab = two_arm_lab(Lab::up("d2s"), &base, false, 1);
    lab.exec(
        "client",
        &["ip", "addr", "add", "203.0.113.3/32", "dev", "lo"],
    );
    let servers = "  server {\n    listen 203.0.113.3:8081;\n    location / { default_type text/plain; return 200 \"$remote_addr:$remote_port\\n\"; }\n  }\n";
    let _web = common::nginx(&lab, "client", "whoami", servers, 8081);
    lab.exec(
        "rs2",
        &["ip", "route", "replace", "default", "via", "10.99.1.1"],
    );
    lab.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    let route = [
        "ip",
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "10.99.0.2",
        "dev",
        "dpdk0",
    ];
    lab.exec("lb", &route);
    let snat = "virtual_server match web {\n    protocol TCP\n    lb_algo rr\n    lb_kind SNAT\n    src-range 10.99.1.4-10.99.1.4\n    dst-range 203.0.113.0-203.0.113.254:8081\n    iif dpdk1\n    oif dpdk0\n    real_server 10.99.0.50 0 {\n        weight 1\n    }\n}\n";
    std::fs::write(lab.dir.join("keepalived.conf"), format!("{base}{snat}")).expect("config");
    let (ok, out) = lab.dpvsctl(&["reload"]);
    assert!(ok, "reload with the two-arm match service: {out}");
    let ask = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.ns("rs2")])
            .args(["curl", "-s", "-m", "2", "http://203.0.113.3:8081/"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen = loop {
        if let Some(seen) = ask() {
            break seen;
        }
        assert!(Instant::now() < deadline, "no answer through two-arm SNAT");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        seen.starts_with("10.99.0.50:"),
        "the outside host saw {seen}"
    );
    for _ in 0..5 {
        let seen = ask().expect("HTTP through two-arm SNAT");
        assert!(
            seen.starts_with("10.99.0.50:"),
            "the outside host saw {seen}"
        );
    }
    kernel_pings(&lab, "10.99.0.1");
    lab.exec(
        "rs2",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.99.1.1"],
    );
    both_ports_busy(&lab);
}
