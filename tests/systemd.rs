//! samples/dpvsd.service as systemd would run it: the unit's ExecStart and
//! ExecReload command lines are executed with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test reads. Asserts READY=1 once the config is
//! applied, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload
//! that changes something, and STOPPING=1 on SIGTERM. No root needed: the
//! config has no dataplane interface and its real server is a loopback
//! listener.

use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn unit_line<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("samples/dpvsd.service has no {key}"))
}

/// The unit's command line with systemd's variables filled in.
fn argv(line: &str, vars: &[(&str, Vec<String>)]) -> Vec<String> {
    line.split_whitespace()
        .flat_map(|w| match vars.iter().find(|(k, _)| *k == w) {
            Some((_, v)) => v.clone(),
            None => vec![w.to_string()],
        })
        .collect()
}

fn config(port: u16, weight: u32) -> String {
    format!(
        "local_address_group l {{\n  127.0.0.20 lo\n}}\nvirtual_server 127.0.0.10 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n  real_server 127.0.0.1 {port} {{\n    weight {weight}\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n"
    )
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn unit_commands_send_systemd_notifications() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/dpvsd.service"),
    )
    .expect("read unit");
    assert!(unit.contains("Type=notify"));
    let dir = std::env::temp_dir().join(format!("dpvsd-systemd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rs = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = rs.local_addr().expect("addr").port();
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, config(port, 1)).expect("write config");
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");

    let opts = vec![
        "-f".to_string(),
        conf.display().to_string(),
        "--socket".to_string(),
        dir.join("dpvsd.sock").display().to_string(),
    ];
    let start = argv(unit_line(&unit, "ExecStart="), &[("$DPVSD_OPTS", opts)]);
    assert_eq!(start[0], "/usr/sbin/dpvsd");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpvsd"))
        .args(&start[1..])
        .env("NOTIFY_SOCKET", &notify_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("start dpvsd as the unit does");
    let ready = recv(&notify);

    // ExecReload after a change.
    std::fs::write(&conf, config(port, 5)).expect("write config");
    let pid = child.id().to_string();
    let reload = argv(unit_line(&unit, "ExecReload="), &[("$MAINPID", vec![pid])]);
    let st = Command::new(&reload[0])
        .args(&reload[1..])
        .status()
        .expect("run ExecReload");
    let reloading = recv(&notify);
    let ready_again = recv(&notify);

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let stopping = recv(&notify);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(ready, "READY=1");
    assert!(st.success(), "ExecReload failed");
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(ready_again, "READY=1");
    assert_eq!(stopping, "STOPPING=1");
}
