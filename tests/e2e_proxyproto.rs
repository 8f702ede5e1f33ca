//! End to end: `proxy_protocol v1` and `v2` on FNAT services in the lab of
//! tests/lab.sh, IPv4 and IPv6 (v2 over the IPv6 VIP), and behind the SYN
//! proxy. Each real server runs a second nginx that requires the
//! PROXY protocol (`listen 8081 proxy_protocol`) and answers with the
//! client address the header gave it; an upload and a download of a few
//! megabytes prove the sequence numbers are moved right both ways (nginx
//! reads the whole upload before answering; curl checks the download's
//! length).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{can_run, Killed, Lab, VIP, VIP6};

const CLIENT: &str = "10.99.0.2";
const LIP: &str = "10.99.0.200";
const CLIENT6: &str = "fd99::2";
const LIP6: &str = "fd99::200";
const BIG: usize = 3_000_000;

/// An nginx requiring the PROXY protocol on :8081 in `host`, with a
/// `BIG`-byte file at /big and /up answering the length of an upload
/// (proxied to :8082, which nginx does only after reading it all).
fn pp_nginx(lab: &Lab, host: &str) -> Killed {
    let name = format!("pp-{host}");
    let dir = lab.dir.join(&name);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("big"), vec![b'z'; BIG]).expect("big file");
    let d = dir.display();
    let servers = format!(
        "  server {{\n    listen 8081 proxy_protocol;\n    listen [::]:8081 proxy_protocol;\n    client_max_body_size 16m;\n    location = / {{ default_type text/plain; return 200 \"$proxy_protocol_addr $proxy_protocol_port $remote_addr\\n\"; }}\n    location = /big {{ alias {d}/big; }}\n    location = /up {{ proxy_pass http://127.0.0.1:8082; }}\n  }}\n\
         server {{\n    listen 127.0.0.1:8082;\n    client_max_body_size 16m;\n    location / {{ default_type text/plain; return 200 \"$content_length\\n\"; }}\n  }}\n"
    );
    common::nginx(lab, host, &name, &servers, 8081)
}

fn config() -> String {
    let vs = |vip: &str, port: u16, pp: &str, servers: [&str; 2]| {
        let (pp, synproxy) = match pp.strip_suffix("+synproxy") {
            Some(pp) => (pp, "    syn_proxy\n"),
            None => (pp, ""),
        };
        let rs = |ip: &str| {
            format!("    real_server {ip} 8081 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n")
        };
        format!(
            "virtual_server {vip} {port} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    laddr_group_name l\n    proxy_protocol {pp}\n{synproxy}{}{}}}\n",
            rs(servers[0]),
            rs(servers[1])
        )
    };
    let v4 = ["10.99.0.3", "10.99.0.4"];
    format!(
        "local_address_group l {{\n    {LIP} eth0\n    {LIP6} eth0\n}}\n{}{}{}{}",
        vs(VIP, 80, "v1", v4),
        vs(VIP, 81, "v2", v4),
        vs(VIP, 82, "v1+synproxy", v4),
        vs(VIP6, 81, "v2", ["fd99::3", "fd99::4"])
    )
}

/// curl in the client namespace; stdout when it succeeded.
fn curl(lab: &Lab, args: &[&str]) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client"), "curl", "-s", "-m", "20"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn real_servers_learn_the_client_from_proxy_protocol_headers_v1_and_v2() {
    if !can_run("real_servers_learn_the_client_from_proxy_protocol_headers_v1_and_v2") {
        return;
    }
    let mut lab = Lab::up_v6("ppro");
    let _servers = [pp_nginx(&lab, "rs1"), pp_nginx(&lab, "rs2")];
    let path = lab.dir.join("keepalived.conf");
    std::fs::write(&path, config()).expect("config");
    lab.start_dpvsd(&path);
    for rs in [
        "10.99.0.3:8081",
        "10.99.0.4:8081",
        "[fd99::3]:8081",
        "[fd99::4]:8081",
    ] {
        lab.wait_health(rs, "up", Duration::from_secs(10));
    }
    let upload = lab.dir.join("upload");
    std::fs::write(&upload, vec![b'u'; BIG]).expect("upload file");
    let up = format!("@{}", upload.display());
    let v6 = format!("[{VIP6}]");
    for (vip, port, client, lip) in [
        (VIP, 80, CLIENT, LIP),
        (VIP, 81, CLIENT, LIP),
        // Behind the SYN proxy: the request held while the server's
        // handshake runs gets the header when it is released.
        (VIP, 82, CLIENT, LIP),
        (v6.as_str(), 81, CLIENT6, LIP6),
    ] {
        let base = format!("http://{vip}:{port}");
        for _ in 0..4 {
            // Both servers (round robin) see the client, not the LIP.
            let got = curl(&lab, &["-g", &format!("{base}/")]);
            let got = got.unwrap_or_else(|| panic!("{base}: request failed"));
            let words: Vec<&str> = got.split(' ').collect();
            assert_eq!(words.len(), 3, "{base}: {got}");
            assert_eq!((words[0], words[2]), (client, lip), "{base}: {got}");
            assert!(
                words[1].parse::<u16>().is_ok_and(|p| p > 0),
                "{base}: {got}"
            );
        }
        // Megabytes each way: every client segment after the header moves,
        // every acknowledgement moves back.
        let size = curl(
            &lab,
            &[
                "-g",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                &format!("{base}/big"),
            ],
        );
        assert_eq!(
            size.as_deref(),
            Some(BIG.to_string().as_str()),
            "{base} download"
        );
        let len = curl(&lab, &["-g", "--data-binary", &up, &format!("{base}/up")]);
        assert_eq!(
            len.as_deref(),
            Some(BIG.to_string().as_str()),
            "{base} upload"
        );
    }
}
