//! Prometheus metrics: `--metrics-listen ADDR:PORT` serves `GET /metrics` in
//! the text exposition format 0.0.4.
//!
//! The encoder is hand-written (a few dozen lines: `# HELP`, `# TYPE`,
//! samples with escaped label values) rather than a crate: the metrics are
//! computed from the same snapshots the control socket answers with
//! ([`Snapshot`]), so no registry or global state is needed, and nothing is
//! added to the dependency tree. The HTTP side is a minimal HTTP/1.x
//! responder: one bounded request head, one response, connection closed.
//!
//! Metric families (every name starts with `dpvsd_`):
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `virtual_server_connections_total`, `…_active_connections` | counter, gauge | protocol, vip, port |
//! | `virtual_server_packets_total`, `…_bytes_total` | counter | protocol, vip, port, direction |
//! | `real_server_connections_total`, `…_active_connections` | counter, gauge | protocol, vip, port, server |
//! | `real_server_packets_total`, `…_bytes_total` | counter | …, server, direction |
//! | `real_server_up`, `real_server_weight`, `real_server_configured_weight` | gauge | …, server |
//! | `healthcheck_up`, `healthcheck_duration_seconds` | gauge, histogram | …, server, check, target |
//! | `vrrp_state` | gauge (1 for the current state) | instance, interface, state |
//! | `vrrp_priority`, `vrrp_base_priority` | gauge | instance, interface |
//! | `dataplane_drops_total` | counter | reason |
//! | `dataplane_connections`, `dataplane_rx_frames_total`, `dataplane_tx_frames_total` | gauge, counter | — |
//! | `build_info`, `uptime_seconds`, `reloads_total` | gauge, gauge, counter | version |

use std::fmt::{Display, Write as _};
use std::sync::Arc;
use std::time::Duration;

use healthcheck::LATENCY_BOUNDS_US;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::ctl::{Counters, ListInfo, StatusInfo, VrrpInfo};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Scrapes served at once; further clients wait.
const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One dataplane drop counter.
#[derive(Debug, Clone)]
pub struct DropSample {
    pub reason: String,
    pub count: u64,
}

/// Everything one scrape reports.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: StatusInfo,
    pub list: ListInfo,
    pub vrrp: VrrpInfo,
    /// Every drop reason, zero included.
    pub drops: Vec<DropSample>,
}

/// Escapes a label value (`\`, `"`, newline).
fn label_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes HELP text (`\`, newline).
fn help_text(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The text-format writer.
struct Encoder {
    out: String,
}

impl Encoder {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP dpvsd_{name} {}", help_text(help));
        let _ = writeln!(self.out, "# TYPE dpvsd_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.out, "dpvsd_{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Seconds from microseconds, printed exactly enough for the text format.
fn secs(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// Emits the traffic families of one kind (`virtual_server` / `real_server`)
/// for every (labels, counters) row.
fn traffic(enc: &mut Encoder, kind: &str, what: &str, rows: &[(Vec<(&str, &str)>, Counters)]) {
    let name = format!("{kind}_connections_total");
    enc.family(
        &name,
        "counter",
        &format!("Connections scheduled to the {what}."),
    );
    for (l, c) in rows {
        enc.sample(&name, l, c.conns);
    }
    let name = format!("{kind}_active_connections");
    enc.family(
        &name,
        "gauge",
        &format!("Connections of the {what} in the table now."),
    );
    for (l, c) in rows {
        enc.sample(&name, l, c.active_conns);
    }
    for (unit, help) in [("packets", "Packets"), ("bytes", "Bytes")] {
        let name = format!("{kind}_{unit}_total");
        enc.family(
            &name,
            "counter",
            &format!("{help} forwarded for the {what}, by direction (in: client to server)."),
        );
        for (l, c) in rows {
            let (i, o) = match unit {
                "packets" => (c.in_pkts, c.out_pkts),
                _ => (c.in_bytes, c.out_bytes),
            };
            for (dir, v) in [("in", i), ("out", o)] {
                let mut l = l.clone();
                l.push(("direction", dir));
                enc.sample(&name, &l, v);
            }
        }
    }
}

/// Renders a snapshot in the text exposition format.
pub fn encode(s: &Snapshot) -> String {
    let mut enc = Encoder { out: String::new() };
    enc.family("build_info", "gauge", "dpvsd's version (always 1).");
    enc.sample("build_info", &[("version", &s.status.version)], 1);
    enc.family("uptime_seconds", "gauge", "Seconds since dpvsd started.");
    enc.sample("uptime_seconds", &[], s.status.uptime_secs);
    enc.family("reloads_total", "counter", "Configuration reloads applied.");
    enc.sample("reloads_total", &[], s.status.reloads);

    let ports: Vec<String> = s.list.services.iter().map(|v| v.port.to_string()).collect();
    let vs_labels = |i: usize| {
        let v = &s.list.services[i];
        vec![
            ("protocol", v.protocol.as_str()),
            ("vip", v.vip.as_str()),
            ("port", ports[i].as_str()),
        ]
    };
    let vs_rows: Vec<_> = (0..s.list.services.len())
        .map(|i| (vs_labels(i), s.list.services[i].stats))
        .collect();
    traffic(&mut enc, "virtual_server", "virtual server", &vs_rows);

    let mut rs_rows = Vec::new();
    for (i, v) in s.list.services.iter().enumerate() {
        for r in &v.real_servers {
            let mut l = vs_labels(i);
            l.push(("server", r.addr.as_str()));
            rs_rows.push((l, r));
        }
    }
    let counters: Vec<_> = rs_rows.iter().map(|(l, r)| (l.clone(), r.stats)).collect();
    traffic(&mut enc, "real_server", "real server", &counters);
    enc.family(
        "real_server_up",
        "gauge",
        "1 when every health checker of the real server is up.",
    );
    for (l, r) in &rs_rows {
        enc.sample("real_server_up", l, u8::from(r.health == "up"));
    }
    enc.family(
        "real_server_weight",
        "gauge",
        "Weight in the dataplane now (absent when the server is out of the table).",
    );
    for (l, r) in &rs_rows {
        if let Some(w) = r.current_weight {
            enc.sample("real_server_weight", l, w);
        }
    }
    enc.family(
        "real_server_configured_weight",
        "gauge",
        "Weight in the configuration.",
    );
    for (l, r) in &rs_rows {
        enc.sample("real_server_configured_weight", l, r.weight);
    }

    enc.family("healthcheck_up", "gauge", "1 when the checker is up.");
    for (l, r) in &rs_rows {
        for c in &r.checks {
            let mut l = l.clone();
            l.extend([("check", c.kind.as_str()), ("target", c.target.as_str())]);
            enc.sample("healthcheck_up", &l, u8::from(c.up));
        }
    }
    enc.family(
        "healthcheck_duration_seconds",
        "histogram",
        "How long the checker's probes took.",
    );
    for (l, r) in &rs_rows {
        for c in &r.checks {
            let mut l = l.clone();
            l.extend([("check", c.kind.as_str()), ("target", c.target.as_str())]);
            let mut cumulative = 0u64;
            for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
                cumulative += c.latency.buckets.get(i).copied().unwrap_or(0);
                let le = secs(*bound);
                let mut lb = l.clone();
                lb.push(("le", le.as_str()));
                enc.sample("healthcheck_duration_seconds_bucket", &lb, cumulative);
            }
            let mut lb = l.clone();
            lb.push(("le", "+Inf"));
            enc.sample("healthcheck_duration_seconds_bucket", &lb, c.latency.count);
            enc.sample(
                "healthcheck_duration_seconds_sum",
                &l,
                secs(c.latency.sum_us),
            );
            enc.sample("healthcheck_duration_seconds_count", &l, c.latency.count);
        }
    }

    const STATES: [&str; 5] = ["INIT", "BACKUP", "MASTER", "FAULT", "STOP"];
    enc.family(
        "vrrp_state",
        "gauge",
        "1 for the VRRP instance's current state, 0 for the others.",
    );
    for i in &s.vrrp.instances {
        for st in STATES {
            let l = [
                ("instance", i.name.as_str()),
                ("interface", i.interface.as_str()),
                ("state", st),
            ];
            enc.sample("vrrp_state", &l, u8::from(i.state == st));
        }
    }
    for (name, help, pick) in [
        (
            "vrrp_priority",
            "Effective VRRP priority (base plus tracker deltas).",
            true,
        ),
        ("vrrp_base_priority", "Configured VRRP priority.", false),
    ] {
        enc.family(name, "gauge", help);
        for i in &s.vrrp.instances {
            let l = [
                ("instance", i.name.as_str()),
                ("interface", i.interface.as_str()),
            ];
            let p = if pick {
                i.effective_priority
            } else {
                i.base_priority
            };
            enc.sample(name, &l, p);
        }
    }

    enc.family(
        "dataplane_drops_total",
        "counter",
        "Frames the dataplane dropped, by reason.",
    );
    for d in &s.drops {
        enc.sample(
            "dataplane_drops_total",
            &[("reason", d.reason.as_str())],
            d.count,
        );
    }
    enc.family(
        "dataplane_connections",
        "gauge",
        "Connections in the dataplane's tables now.",
    );
    enc.sample("dataplane_connections", &[], s.status.conns);
    enc.family(
        "dataplane_rx_frames_total",
        "counter",
        "Frames received by the dataplane.",
    );
    enc.sample("dataplane_rx_frames_total", &[], s.status.rx_frames);
    enc.family(
        "dataplane_tx_frames_total",
        "counter",
        "Frames sent by the dataplane.",
    );
    enc.sample("dataplane_tx_frames_total", &[], s.status.tx_frames);
    enc.out
}

/// The response to one request head.
fn respond(head: &str, body: impl FnOnce() -> String) -> String {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", CONTENT_TYPE, body()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "dpvsd: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "dpvsd: only GET is served\n".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// Serves scrapes on `listener` forever; `render` produces the body.
pub async fn serve<F>(listener: TcpListener, render: F)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let _permit = permit;
            let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
                Ok(Some(h)) => h,
                _ => {
                    tracing::debug!(%peer, "metrics: no valid request head");
                    return;
                }
            };
            let resp = respond(&head, || render());
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::{CheckInfo, RealServerInfo, ServiceInfo, VrrpInstanceInfo};

    fn snapshot() -> Snapshot {
        let check = CheckInfo {
            kind: "MISC_CHECK".into(),
            target: "/bin/check \"a\\b\"".into(),
            up: true,
            last_ok: Some(true),
            last_error: None,
            consecutive_failures: 0,
            checks_run: 2,
            last_transition_unix_ms: None,
            latency: {
                let mut l = healthcheck::Latency::default();
                l.record(Duration::from_millis(3));
                l.record(Duration::from_secs(20));
                l
            },
        };
        let stats = Counters {
            active_conns: 1,
            conns: 5,
            in_pkts: 10,
            out_pkts: 9,
            in_bytes: 1000,
            out_bytes: 900,
            ..Counters::default()
        };
        Snapshot {
            status: StatusInfo {
                version: "0.1.0".into(),
                pid: 1,
                uptime_secs: 3,
                config_file: "k.conf".into(),
                config_loaded_unix: 0,
                reloads: 0,
                backend: "afpacket".into(),
                interface: None,
                workers: 1,
                virtual_servers: 1,
                real_servers: 1,
                real_servers_up: 1,
                conns: 1,
                rx_frames: 7,
                tx_frames: 6,
                drops: vec![],
                vrrp_instances: 1,
                vrrp_master: 1,
                ospf_announced: None,
                weight_overrides: vec![],
                ports: Vec::new(),
            },
            list: ListInfo {
                services: vec![ServiceInfo {
                    protocol: "TCP".into(),
                    vip: "10.0.0.1".into(),
                    port: 80,
                    scheduler: "wrr".into(),
                    flags: Vec::new(),
                    forwarding: "FNAT".into(),
                    local_addrs: vec![],
                    vip_owned: true,
                    stats,
                    real_servers: vec![RealServerInfo {
                        addr: "10.0.0.2:8080".into(),
                        weight: 2,
                        current_weight: Some(2),
                        health: "up".into(),
                        inhibit_on_failure: false,
                        weight_override: None,
                        checks: vec![check],
                        stats,
                    }],
                    quorum_up: Some(true),
                    sorry_server: None,
                    snat_match: None,
                }],
            },
            vrrp: VrrpInfo {
                running: true,
                error: None,
                instances: vec![VrrpInstanceInfo {
                    name: "VI_1".into(),
                    interface: "eth0".into(),
                    vrid: 51,
                    state: "MASTER".into(),
                    base_priority: 100,
                    effective_priority: 90,
                    reasons: vec![],
                    master_addr: None,
                    vips: vec![],
                    vips_held: vec![],
                    owners: vec![],
                    counters: Default::default(),
                    last_transition_unix_ms: None,
                }],
            },
            drops: vec![DropSample {
                reason: "no_service".into(),
                count: 4,
            }],
        }
    }

    #[test]
    fn encodes_families_labels_and_histograms() {
        let text = encode(&snapshot());
        for line in [
            "# TYPE dpvsd_virtual_server_connections_total counter",
            "dpvsd_virtual_server_connections_total{protocol=\"TCP\",vip=\"10.0.0.1\",port=\"80\"} 5",
            "dpvsd_real_server_bytes_total{protocol=\"TCP\",vip=\"10.0.0.1\",port=\"80\",server=\"10.0.0.2:8080\",direction=\"out\"} 900",
            "dpvsd_real_server_weight{protocol=\"TCP\",vip=\"10.0.0.1\",port=\"80\",server=\"10.0.0.2:8080\"} 2",
            "dpvsd_vrrp_state{instance=\"VI_1\",interface=\"eth0\",state=\"MASTER\"} 1",
            "dpvsd_vrrp_state{instance=\"VI_1\",interface=\"eth0\",state=\"BACKUP\"} 0",
            "dpvsd_vrrp_priority{instance=\"VI_1\",interface=\"eth0\"} 90",
            "dpvsd_dataplane_drops_total{reason=\"no_service\"} 4",
            "# TYPE dpvsd_healthcheck_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Label values are escaped; buckets are cumulative and end at +Inf = count.
        let target = "target=\"/bin/check \\\"a\\\\b\\\"\"";
        let bucket = |le: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("dpvsd_healthcheck_duration_seconds_bucket")
                        && l.contains(target)
                        && l.contains(&format!("le=\"{le}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(bucket("0.001").as_deref(), Some("0"));
        assert_eq!(bucket("0.005").as_deref(), Some("1"));
        assert_eq!(bucket("10").as_deref(), Some("1"));
        assert_eq!(bucket("+Inf").as_deref(), Some("2"));
        assert!(text.contains("dpvsd_healthcheck_duration_seconds_sum{"));
        assert!(text.contains("} 20.003\n"), "sum in seconds:\n{text}");
    }

    #[test]
    fn http_routing() {
        let ok = respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", || {
            "a 1\n".into()
        });
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE) && ok.ends_with("\r\n\r\na 1\n"));
        assert!(ok.contains("Content-Length: 4\r\n"));
        let nf = respond("GET /x HTTP/1.1\r\n\r\n", || unreachable!());
        assert!(nf.starts_with("HTTP/1.1 404"));
        let na = respond("POST /metrics HTTP/1.1\r\n\r\n", || unreachable!());
        assert!(na.starts_with("HTTP/1.1 405"));
        let garbage = respond("\u{0}\u{1}", || unreachable!());
        assert!(garbage.starts_with("HTTP/1.1 405"));
    }
}
