//! End to end: SNAT (`virtual_server match`, `lb_kind SNAT`) in the lab of
//! tests/lab.sh, one-arm (dpvsd forwards on one interface):
//!
//! - the inside host is the client namespace, 192.168.100.2 on its eth0,
//!   routing 203.0.113.0/24 via the director (10.99.0.1, whose MAC is the
//!   dataplane's);
//! - the outside host is rs1, holding 203.0.113.3, with an nginx that
//!   answers each request with the address and port it saw, a UDP echo
//!   that does the same, and the kernel answering ping;
//! - the director's kernel routes 203.0.113.0/24 via rs1 (the "WAN
//!   gateway" dpvsd sends outbound packets to) and does not forward;
//! - dpvsd's SNAT address is 10.99.0.50 (the dataplane owns it).
//!
//! The inside host fetches, echoes and pings through dpvsd; the outside
//! host must have seen 10.99.0.50 as the source, and the replies must
//! have come back. A source outside `src-range` gets nothing (the kernel
//! does not forward): the SNAT really is what carries the traffic.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{can_run, Killed, Lab};

const INSIDE: &str = "192.168.100.2";
const OUTSIDE: &str = "203.0.113.3";
const SNAT_ADDR: &str = "10.99.0.50";

fn config() -> String {
    let svc = |name: &str, proto: &str, dst: &str| {
        format!(
            "virtual_server match {name} {{\n    protocol {proto}\n    lb_algo rr\n    lb_kind SNAT\n    src-range 192.168.100.0-192.168.100.254\n    dst-range {dst}\n    oif eth0\n    real_server {SNAT_ADDR} 0 {{\n        weight 1\n    }}\n}}\n"
        )
    };
    [
        svc("web", "TCP", "203.0.113.0-203.0.113.254:8081"),
        svc("echo", "UDP", "203.0.113.0-203.0.113.254"),
        svc("ping", "ICMP", "203.0.113.0-203.0.113.254"),
    ]
    .concat()
}

/// Output of `args` in `host`'s namespace (None when it failed).
fn output(lab: &Lab, host: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(host)])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An nginx in `host` on OUTSIDE:8081 answering "$remote_addr:$remote_port".
fn who_am_i_web(lab: &Lab, host: &str) -> Killed {
    let servers = format!(
        "  server {{\n    listen {OUTSIDE}:8081;\n    location / {{ default_type text/plain; return 200 \"$remote_addr:$remote_port\\n\"; }}\n  }}\n"
    );
    common::nginx(lab, host, "whoami", &servers, 8081)
}

/// A UDP echo on OUTSIDE:9000 in `host` answering "addr:port" of the sender.
fn who_am_i_udp(lab: &Lab, host: &str) -> Killed {
    let code = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('{OUTSIDE}',9000))\nfor _ in range(1000):\n  d,a=s.recvfrom(2048)\n  s.sendto(('%s:%d'%a).encode(),a)\n"
    );
    Command::new("ip")
        .args(["netns", "exec", &lab.ns(host), "python3", "-c", &code])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .expect("udp echo")
}

/// Sends one datagram from `src` to OUTSIDE:9000 in the client namespace;
/// the answer, if any within a second.
fn udp_ask(lab: &Lab, src: &str) -> Option<String> {
    let code = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('{src}',0))\ns.settimeout(1)\ns.sendto(b'hi',('{OUTSIDE}',9000))\nprint(s.recvfrom(2048)[0].decode())\n"
    );
    output(lab, "client", &["python3", "-c", &code]).map(|s| s.trim().to_string())
}

/// GET http://OUTSIDE:8081/ from `src` in the client namespace.
fn http_ask(lab: &Lab, src: &str) -> Option<String> {
    let url = format!("http://{OUTSIDE}:8081/");
    output(
        lab,
        "client",
        &["curl", "-s", "-m", "2", "--interface", src, &url],
    )
    .map(|s| s.trim().to_string())
}

/// Waits (bounded) until `f` answers.
fn retry(mut f: impl FnMut() -> Option<String>) -> Option<String> {
    for _ in 0..20 {
        if let Some(s) = f() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

#[test]
fn snat_carries_inside_hosts_to_the_outside_and_back() {
    if !can_run("snat_carries_inside_hosts_to_the_outside_and_back") {
        return;
    }
    let mut lab = Lab::up("snat");
    lab.exec(
        "client",
        &["ip", "addr", "add", &format!("{INSIDE}/24"), "dev", "eth0"],
    );
    lab.exec(
        "client",
        &[
            "ip",
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "10.99.0.1",
            "src",
            INSIDE,
        ],
    );
    lab.exec(
        "rs1",
        &["ip", "addr", "add", &format!("{OUTSIDE}/32"), "dev", "lo"],
    );
    lab.exec(
        "lb",
        &["ip", "route", "add", "203.0.113.0/24", "via", "10.99.0.3"],
    );
    lab.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    let _helpers = [who_am_i_web(&lab, "rs1"), who_am_i_udp(&lab, "rs1")];
    let path = lab.dir.join("keepalived.conf");
    std::fs::write(&path, config()).expect("write config");
    lab.start_dpvsd(&path);

    // HTTP: the outside server saw the SNAT address, the reply came back.
    let seen = retry(|| http_ask(&lab, INSIDE)).expect("HTTP through SNAT");
    assert!(
        seen.starts_with(&format!("{SNAT_ADDR}:")),
        "outside saw {seen}"
    );
    // UDP echo likewise.
    let seen = retry(|| udp_ask(&lab, INSIDE)).expect("UDP through SNAT");
    assert!(
        seen.starts_with(&format!("{SNAT_ADDR}:")),
        "outside saw {seen}"
    );
    // Ping (ICMP echo with the identifier mapped).
    let ping = output(
        &lab,
        "client",
        &[
            "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", INSIDE, OUTSIDE,
        ],
    );
    assert!(ping.is_some(), "ping through SNAT failed");

    // dpvsd lists the match services with their connections.
    let list = lab.list_json();
    let text = list.to_string();
    assert!(
        text.contains("src-range=192.168.100.0-192.168.100.254"),
        "{text}"
    );
    let (ok, conns) = lab.dpvsctl(&["conns"]);
    println!("conns:\n{conns}");
    assert!(ok);

    // A source outside src-range is not SNATed, and the director's kernel
    // does not forward it: nothing comes back.
    assert_eq!(http_ask(&lab, "10.99.0.2"), None);
    assert_eq!(udp_ask(&lab, "10.99.0.2"), None);
}
