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
//!
//! The IPv6 twin runs in the IPv6 lab (`Lab::up_v6`, fd99::N/64): the
//! inside host fd00:100::2 has its default route via dpvsd's lab address
//! fd99::1, the outside host rs1 holds 2001:db8:2::3, the director's
//! kernel routes 2001:db8:2::/64 via rs1, the SNAT address is fd99::50
//! and pings go through a `protocol ICMPV6` match service.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{can_run, Killed, Lab};

/// One family's lab addresses.
struct Net {
    /// The inside host's address and the one outside `src-range`.
    inside: &'static str,
    stranger: &'static str,
    /// The outside host's address, its network, and its lab address
    /// (the director's gateway).
    outside: &'static str,
    outside_net: &'static str,
    gateway: &'static str,
    /// The director's lab address (the inside host's router).
    director: &'static str,
    snat_addr: &'static str,
    /// `src-range` and the outside addresses for `dst-range`.
    src_range: &'static str,
    dst_range: (&'static str, &'static str),
    /// The family's ICMP (`protocol ICMP` / `ICMPV6`).
    icmp: &'static str,
    v6: bool,
}

const NET4: Net = Net {
    inside: "192.168.100.2",
    stranger: "10.99.0.2",
    outside: "203.0.113.3",
    outside_net: "203.0.113.0/24",
    gateway: "10.99.0.3",
    director: "10.99.0.1",
    snat_addr: "10.99.0.50",
    src_range: "192.168.100.0-192.168.100.254",
    dst_range: ("203.0.113.0", "203.0.113.254"),
    icmp: "ICMP",
    v6: false,
};

const NET6: Net = Net {
    inside: "fd00:100::2",
    stranger: "fd99::2",
    outside: "2001:db8:2::3",
    outside_net: "2001:db8:2::/64",
    gateway: "fd99::3",
    director: "fd99::1",
    snat_addr: "fd99::50",
    src_range: "[fd00:100::-fd00:100::ffff]",
    dst_range: ("2001:db8:2::", "2001:db8:2::ff"),
    icmp: "ICMPV6",
    v6: true,
};

impl Net {
    /// `addr` as a URL host (IPv6 in brackets).
    fn host(&self, addr: &str) -> String {
        if self.v6 {
            format!("[{addr}]")
        } else {
            addr.to_string()
        }
    }

    /// `ip` or `ip -6`, then `args`.
    fn ip<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip"];
        if self.v6 {
            v.push("-6");
        }
        v.extend_from_slice(args);
        v
    }

    fn config(&self) -> String {
        let (lo, hi) = self.dst_range;
        let range = |port: &str| match self.v6 {
            true => format!("[{lo}-{hi}]{port}"),
            false => format!("{lo}-{hi}{port}"),
        };
        let svc = |name: &str, proto: &str, dst: String| {
            format!(
                "virtual_server match {name} {{\n    protocol {proto}\n    lb_algo rr\n    lb_kind SNAT\n    src-range {}\n    dst-range {dst}\n    oif eth0\n    real_server {} 0 {{\n        weight 1\n    }}\n}}\n",
                self.src_range, self.snat_addr
            )
        };
        [
            svc("web", "TCP", range(":8081")),
            svc("echo", "UDP", range("")),
            svc("ping", self.icmp, range("")),
        ]
        .concat()
    }
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

/// An nginx in `host` on the outside address, port 8081, answering
/// "$remote_addr:$remote_port".
fn who_am_i_web(lab: &Lab, host: &str, net: &Net) -> Killed {
    let servers = format!(
        "  server {{\n    listen {}:8081;\n    location / {{ default_type text/plain; return 200 \"$remote_addr:$remote_port\\n\"; }}\n  }}\n",
        net.host(net.outside)
    );
    common::nginx(lab, host, "whoami", &servers, 8081)
}

/// The Python socket family of `net`.
fn family(net: &Net) -> &'static str {
    if net.v6 {
        "socket.AF_INET6"
    } else {
        "socket.AF_INET"
    }
}

/// A UDP echo on the outside address, port 9000, in `host` answering
/// "addr:port" of the sender.
fn who_am_i_udp(lab: &Lab, host: &str, net: &Net) -> Killed {
    let code = format!(
        "import socket\ns=socket.socket({},socket.SOCK_DGRAM)\ns.bind(('{}',9000))\nfor _ in range(1000):\n  d,a=s.recvfrom(2048)\n  s.sendto(('%s:%d'%(a[0],a[1])).encode(),a)\n",
        family(net),
        net.outside
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

/// Sends one datagram from `src` to the outside address, port 9000, in
/// the client namespace; the answer, if any within a second.
fn udp_ask(lab: &Lab, net: &Net, src: &str) -> Option<String> {
    let code = format!(
        "import socket\ns=socket.socket({},socket.SOCK_DGRAM)\ns.bind(('{src}',0))\ns.settimeout(1)\ns.sendto(b'hi',('{}',9000))\nprint(s.recvfrom(2048)[0].decode())\n",
        family(net),
        net.outside
    );
    output(lab, "client", &["python3", "-c", &code]).map(|s| s.trim().to_string())
}

/// GET http://OUTSIDE:8081/ from `src` in the client namespace.
fn http_ask(lab: &Lab, net: &Net, src: &str) -> Option<String> {
    let url = format!("http://{}:8081/", net.host(net.outside));
    output(
        lab,
        "client",
        &["curl", "-g", "-s", "-m", "2", "--interface", src, &url],
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

/// Builds `net`'s SNAT lab (see the module docs) and runs dpvsd in it.
fn snat_lab(tag: &str, net: &Net) -> (Lab, [Killed; 2]) {
    let mut lab = if net.v6 {
        Lab::up_v6(tag)
    } else {
        Lab::up(tag)
    };
    let plen = if net.v6 { "128" } else { "24" };
    let inside = format!("{}/{plen}", net.inside);
    let mut add = net.ip(&["addr", "add", &inside, "dev", "eth0"]);
    if net.v6 {
        add.push("nodad");
    }
    lab.exec("client", &add);
    let route = if net.v6 {
        net.ip(&["route", "add", "default", "via", net.director])
    } else {
        let r = ["route", "add", net.outside_net, "via", net.director];
        net.ip(&[&r[..], &["src", net.inside]].concat())
    };
    lab.exec("client", &route);
    let outside = format!("{}/{}", net.outside, if net.v6 { "128" } else { "32" });
    lab.exec("rs1", &net.ip(&["addr", "add", &outside, "dev", "lo"]));
    let gw = ["route", "add", net.outside_net, "via", net.gateway];
    lab.exec("lb", &net.ip(&gw));
    lab.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    if net.v6 {
        lab.exec("lb", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
    }
    let helpers = [
        who_am_i_web(&lab, "rs1", net),
        who_am_i_udp(&lab, "rs1", net),
    ];
    let path = lab.dir.join("keepalived.conf");
    std::fs::write(&path, net.config()).expect("write config");
    lab.start_dpvsd(&path);
    (lab, helpers)
}

/// HTTP, UDP and ping from the inside host through dpvsd: the outside
/// host saw the SNAT address; a source outside `src-range` gets nothing.
fn carries(lab: &Lab, net: &Net) {
    let snat_seen = format!("{}:", net.snat_addr);
    let seen = retry(|| http_ask(lab, net, net.inside)).expect("HTTP through SNAT");
    assert!(seen.starts_with(&snat_seen), "outside saw {seen}");
    let seen = retry(|| udp_ask(lab, net, net.inside)).expect("UDP through SNAT");
    assert!(seen.starts_with(&snat_seen), "outside saw {seen}");
    // Ping (the echo identifier mapped).
    let family = if net.v6 { "-6" } else { "-4" };
    let ping = output(
        lab,
        "client",
        &[
            "ping",
            family,
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            net.inside,
            net.outside,
        ],
    );
    assert!(ping.is_some(), "ping through SNAT failed");

    // dpvsd lists the match services with their connections.
    let text = lab.list_json().to_string();
    let (lo, _) = net.dst_range;
    assert!(text.contains(&format!("dst-range={lo}")), "{text}");
    let (ok, conns) = lab.dpvsctl(&["conns"]);
    println!("conns:\n{conns}");
    assert!(ok);
    assert!(conns.contains(net.snat_addr), "{conns}");
    let icmp = if net.v6 { "ICMPv6" } else { "ICMP" };
    assert!(
        conns.lines().any(|l| l.starts_with(&format!("{icmp} "))
            && l.contains("ICMP_NORMAL")
            && l.contains(net.inside)),
        "{conns}"
    );

    // A source outside src-range is not SNATed, and the director's kernel
    // does not forward it: nothing comes back.
    assert_eq!(http_ask(lab, net, net.stranger), None);
    assert_eq!(udp_ask(lab, net, net.stranger), None);
}

#[test]
fn snat_carries_inside_hosts_to_the_outside_and_back() {
    if !can_run("snat_carries_inside_hosts_to_the_outside_and_back") {
        return;
    }
    let (lab, _helpers) = snat_lab("snat", &NET4);
    carries(&lab, &NET4);
}

#[test]
fn snat6_carries_inside_hosts_to_the_outside_and_back() {
    if !can_run("snat6_carries_inside_hosts_to_the_outside_and_back") {
        return;
    }
    let (lab, _helpers) = snat_lab("snat6", &NET6);
    carries(&lab, &NET6);
}
