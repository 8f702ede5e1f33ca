//! End to end, in the lab of tests/lab.sh, the operator's interfaces:
//!
//! * `--metrics-listen`: the exposition is parsed by the reference parser
//!   (`prometheus_client.parser.text_string_to_metric_families` from Debian's
//!   python3-prometheus-client) and its values are checked against real
//!   traffic and a real server going down;
//! * `dpvsctl conns` and its filters, right after real traffic;
//! * keepalived's signal interface: SIGUSR1 / SIGUSR2 dumps.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{can_run, repo, Lab, RS1, RS2, VIP};
use serde_json::Value;

const METRICS: &str = "127.0.0.1:9469";

/// Parses stdin with the reference parser (Debian's, hence /usr/bin/python3); prints one JSON object per sample.
/// Fails (non-zero exit) on anything the parser rejects.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
for fam in text_string_to_metric_families(text):
    if fam.type == "unknown":
        sys.exit("family without a TYPE line: " + fam.name)
    for s in fam.samples:
        print(json.dumps({"family": fam.name, "type": fam.type, "name": s.name,
                          "labels": s.labels, "value": s.value}))
"#;

fn have_parser() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client.parser"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install python3-prometheus-client (tests/install-deps.sh)"
        );
        println!("SKIP: metrics: python3-prometheus-client missing");
    }
    ok
}

/// One HTTP GET from inside the load balancer's namespace: (status, body).
fn get(lab: &Lab, path: &str) -> (u32, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("lb"), "curl", "-s", "-m", "5"])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://{METRICS}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

struct Sample {
    name: String,
    labels: Value,
    value: f64,
}

/// Scrapes and parses with the reference parser.
fn scrape(lab: &Lab) -> Vec<Sample> {
    let (code, body) = get(lab, "/metrics");
    assert_eq!(code, 200, "GET /metrics:\n{body}");
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(body.as_bytes()).expect("write to parser");
    }
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "the reference parser rejected the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("parser JSON");
            Sample {
                name: v["name"].as_str().unwrap_or_default().to_string(),
                labels: v["labels"].clone(),
                value: v["value"].as_f64().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

/// The value of the one sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels[*k] == *v))
        .map(|s| s.value)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

#[test]
fn metrics_scrape_parses_and_follows_traffic_and_health() {
    if !can_run("metrics_scrape_parses_and_follows_traffic_and_health") || !have_parser() {
        return;
    }
    let mut lab = Lab::up("mx");
    lab.start_dpvsd_with(
        &repo().join("samples/keepalived.conf"),
        &["--metrics-listen", METRICS],
    );
    lab.wait_health(RS1, "up", Duration::from_secs(10));
    let vs = [("protocol", "TCP"), ("vip", VIP), ("port", "80")];
    let rs1 = [("vip", VIP), ("server", RS1)];
    let rs2 = [("vip", VIP), ("server", RS2)];

    let before = scrape(&lab);
    let conns0 = value(&before, "dpvsd_virtual_server_connections_total", &vs);
    assert_eq!(value(&before, "dpvsd_build_info", &[]), 1.0);
    assert_eq!(value(&before, "dpvsd_real_server_up", &rs1), 1.0);
    assert_eq!(value(&before, "dpvsd_real_server_weight", &rs1), 2.0);
    assert_eq!(value(&before, "dpvsd_real_server_weight", &rs2), 1.0);
    assert!(
        before
            .iter()
            .any(|s| s.name == "dpvsd_dataplane_drops_total" && s.labels["reason"].is_string()),
        "drop counters by reason"
    );

    let (a, b, failed) = lab.traffic(30);
    assert_eq!(
        failed, 0,
        "requests through the VIP failed (rs1={a} rs2={b})"
    );
    check_conns(&lab);
    // Let the health checkers run at least once more (delay_loop 1 s).
    std::thread::sleep(Duration::from_millis(1500));
    let after = scrape(&lab);
    let conns1 = value(&after, "dpvsd_virtual_server_connections_total", &vs);
    assert!(
        conns1 - conns0 >= 30.0,
        "virtual server connections moved {conns0} -> {conns1} after 30 requests"
    );
    let rs_conns = value(&after, "dpvsd_real_server_connections_total", &rs1)
        + value(&after, "dpvsd_real_server_connections_total", &rs2);
    assert!(rs_conns >= 30.0, "real server connections {rs_conns}");
    let mut dir = vs.to_vec();
    dir.push(("direction", "in"));
    assert!(value(&after, "dpvsd_virtual_server_packets_total", &dir) >= 90.0);
    assert!(value(&after, "dpvsd_virtual_server_bytes_total", &dir) > 0.0);
    dir.pop();
    dir.push(("direction", "out"));
    assert!(value(&after, "dpvsd_virtual_server_bytes_total", &dir) > 0.0);

    // Checker latency: a real histogram with cumulative buckets.
    let mut check = rs1.to_vec();
    check.push(("check", "TCP_CHECK"));
    let count = value(&after, "dpvsd_healthcheck_duration_seconds_count", &check);
    assert!(count >= 1.0, "TCP_CHECK durations recorded: {count}");
    let mut inf = check.clone();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(&after, "dpvsd_healthcheck_duration_seconds_bucket", &inf),
        count
    );
    let buckets: Vec<f64> = after
        .iter()
        .filter(|s| {
            s.name == "dpvsd_healthcheck_duration_seconds_bucket"
                && check.iter().all(|(k, v)| s.labels[*k] == *v)
        })
        .map(|s| s.value)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let sum = value(&after, "dpvsd_healthcheck_duration_seconds_sum", &check);
    assert!(
        sum > 0.0 && sum < count,
        "a local TCP connect takes well under 1 s: sum {sum} over {count} probes"
    );

    // rs1 goes down: its gauges follow.
    lab.webstop("rs1");
    lab.wait_health(RS1, "down", Duration::from_secs(10));
    let t0 = Instant::now();
    let down = loop {
        let s = scrape(&lab);
        if value(&s, "dpvsd_real_server_up", &rs1) == 0.0 || t0.elapsed() > Duration::from_secs(5) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(value(&down, "dpvsd_real_server_up", &rs1), 0.0);
    assert!(
        !down
            .iter()
            .any(|s| s.name == "dpvsd_real_server_weight" && s.labels["server"] == RS1),
        "a removed server has no current weight"
    );
    let mut up = check.clone();
    up.truncate(2);
    up.push(("check", "TCP_CHECK"));
    assert_eq!(value(&down, "dpvsd_healthcheck_up", &up), 0.0);

    // Other paths and methods are refused; the daemon keeps serving.
    assert_eq!(get(&lab, "/").0, 404);
    let (ok, _) = lab.dpvsctl(&["status"]);
    assert!(ok);
    assert_eq!(get(&lab, "/metrics").0, 200);
}

/// The sample config plus a VRRP instance whose VIP the kernel holds.
fn conf_with_vrrp(lab: &Lab) -> std::path::PathBuf {
    let sample =
        std::fs::read_to_string(repo().join("samples/keepalived.conf")).expect("sample config");
    let conf = format!(
        "{sample}\nvrrp_instance VI_7 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 7\n    priority 120\n    advert_int 1\n    virtual_ipaddress {{\n        10.99.0.150/24\n    }}\n}}\n"
    );
    let path = lab.dir.join("vrrp.conf");
    std::fs::write(&path, conf).expect("write config");
    path
}

/// Sends `sig` to dpvsd and waits for `file` to appear; returns its text.
fn dump(lab: &Lab, sig: nix::sys::signal::Signal, file: &std::path::Path) -> String {
    let _ = std::fs::remove_file(file);
    let pid = lab.dpvsd_pid().expect("dpvsd runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("signal dpvsd");
    let t0 = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{sig:?} wrote no {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigusr1_and_sigusr2_write_keepalived_style_dumps() {
    if !can_run("sigusr1_and_sigusr2_write_keepalived_style_dumps") {
        return;
    }
    let mut lab = Lab::up("sd");
    let data = lab.dir.join("keepalived.data");
    let stats = lab.dir.join("keepalived.stats");
    let conf = conf_with_vrrp(&lab);
    // The data dump's path comes from global_defs (keepalived's
    // `state_dump_file`), the stats dump's from the command line.
    let text = std::fs::read_to_string(&conf).expect("read config");
    let with_path = text.replacen(
        "    router_id dpvsd_sample\n",
        &format!(
            "    router_id dpvsd_sample\n    state_dump_file {}\n",
            data.display()
        ),
        1,
    );
    assert_ne!(text, with_path, "the sample's global_defs changed");
    std::fs::write(&conf, with_path).expect("write config");
    let s = stats.display().to_string();
    lab.start_dpvsd_with(&conf, &["--stats-dump-file", &s]);
    lab.wait_health(RS1, "up", Duration::from_secs(10));
    let t0 = Instant::now();
    while !lab.dpvsctl(&["vrrp"]).1.contains("MASTER") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "VI_7 never became MASTER"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, _, failed) = lab.traffic(10);
    assert_eq!(failed, 0);

    let text = dump(&lab, nix::sys::signal::Signal::SIGUSR1, &data);
    for want in [
        "------< Global definitions >------",
        "------< VRRP Topology >------",
        " VRRP Instance = VI_7",
        "   State = MASTER",
        "   Effective priority = 120",
        "     10.99.0.150 (kernel, held)",
        "------< LVS Topology >------",
        " VIP = 10.99.0.100, VPORT = 80, protocol = TCP",
        "   lb_algo = wrr, lb_kind = FNAT",
        &format!("   RIP = {RS1}, WEIGHT = 2, current weight = 2, alive"),
        "------< Health checkers >------",
        &format!(" {RS1} (VS 10.99.0.100:80) TCP_CHECK"),
        "   Last result = success",
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "no {want:?} in the data dump:\n{text}"
        );
    }
    let mode = std::fs::metadata(&data)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600));

    let text = dump(&lab, nix::sys::signal::Signal::SIGUSR2, &stats);
    for want in [
        "VRRP Instance: VI_7",
        "  Advertisements:",
        "  Became master: 1",
        "  Priority Zero:",
        "Virtual Server: TCP 10.99.0.100:80",
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "no {want:?} in the stats dump:\n{text}"
        );
    }
    let sent: u64 = text
        .lines()
        .skip_while(|l| *l != "  Advertisements:")
        .nth(2)
        .and_then(|l| l.trim().strip_prefix("Sent: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(sent >= 1, "a MASTER sends adverts:\n{text}");
    let conns: u64 = text
        .lines()
        .skip_while(|l| !l.starts_with("Virtual Server:"))
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("Connections: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(conns >= 10, "10 requests went through the VIP:\n{text}");

    // The daemon keeps running and answering after the signals.
    assert!(lab.dpvsctl(&["status"]).0);
}

/// Just after requests through the VIP: their connections are listed (they
/// linger in TIME_WAIT/CLOSE for seconds), and the filters select.
fn check_conns(lab: &Lab) {
    let json = |args: &[&str]| -> Value {
        let mut a = vec!["conns", "--json"];
        a.extend_from_slice(args);
        let (ok, out) = lab.dpvsctl(&a);
        assert!(ok, "dpvsctl {a:?} failed");
        serde_json::from_str(&out).expect("conns --json")
    };
    let all = json(&[]);
    let conns = all["conns"].as_array().cloned().unwrap_or_default();
    assert!(
        !conns.is_empty(),
        "no connections listed after traffic: {all}"
    );
    assert_eq!(all["total"].as_u64(), Some(conns.len() as u64));
    for c in &conns {
        assert_eq!(c["protocol"], "TCP");
        assert_eq!(c["virtual_server"], format!("{VIP}:80"));
        assert!(
            c["client"]
                .as_str()
                .is_some_and(|a| a.starts_with("10.99.0.2:")),
            "{c}"
        );
        assert!(
            c["local"]
                .as_str()
                .is_some_and(|a| a.starts_with("10.99.0.200:")),
            "FNAT local address: {c}"
        );
        assert!(c["real_server"] == RS1 || c["real_server"] == RS2, "{c}");
    }
    let only_rs1 = json(&["--rs", RS1]);
    let rs1 = only_rs1["conns"].as_array().cloned().unwrap_or_default();
    assert!(
        !rs1.is_empty() && rs1.len() < conns.len(),
        "--rs filters: {} of {}",
        rs1.len(),
        conns.len()
    );
    assert!(rs1.iter().all(|c| c["real_server"] == RS1));
    assert_eq!(
        json(&["--client", "10.99.0.2", "--vs", &format!("{VIP}:80")])["conns"]
            .as_array()
            .map(Vec::len),
        Some(conns.len())
    );
    assert_eq!(
        json(&["--client", "10.99.0.9"])["conns"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let (ok, text) = lab.dpvsctl(&["conns", "-n"]);
    assert!(
        ok && text
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("pro expire state")),
        "{text}"
    );
    assert!(!lab.dpvsctl(&["conns", "--rs", "not-an-address"]).0);
}
