//! Lowering of the blocks dpvsd keeps in the model but does not run:
//! `vrrp_track_process`, `bfd_instance`, `garp_group`, the top-level `SSL`
//! and the real server's `BFD_CHECK` (KEEPALIVED.md §4, §7.5, §8;
//! keepalived 2.2.7 vrrp_parser.c, bfd_parser.c, check_parser.c, check_bfd.c).
//!
//! Invariant: defaults, ranges and the fix-ups with their wording are
//! keepalived's; each block kind gets one "not supported by dpvsd,
//! ignored" warning.

use std::net::IpAddr;
use std::time::Duration;

use super::{Lowerer, Node};
use crate::diag::Severity;
use crate::model::{BfdCheck, BfdInstance, GarpGroup, ParamMatch, SslContext, VrrpTrackProcess};
use crate::values;

/// The keywords of `vrrp_track_process`.
pub(super) const TRACK_PROCESS: &[&str] = &[
    "process",
    "param_match",
    "weight",
    "quorum",
    "quorum_max",
    "delay",
    "terminate_delay",
    "fork_delay",
    "full_command",
];

/// The keywords of `bfd_instance` (2.2.7 has no `multihop`).
pub(super) const BFD_INSTANCE: &[&str] = &[
    "source_ip",
    "neighbor_ip",
    "neighbour_ip",
    "min_rx",
    "min_tx",
    "idle_tx",
    "multiplier",
    "passive",
    "ttl",
    "hoplimit",
    "max_hops",
    "weight",
    "vrrp",
    "checker",
];

/// keepalived's `BFD_INAME_MAX` (the name buffer, with its NUL).
const BFD_INAME_MAX: usize = 32;
/// keepalived's `*_MAX` of the BFD intervals, in milliseconds (`UINT32_MAX / 1000`).
const BFD_INTERVAL_MAX_MS: u64 = u32::MAX as u64 / 1000;
/// Above this many milliseconds an interval is "not sensible" (a warning).
const BFD_INTERVAL_SENSIBLE_MS: u64 = 10_000;
/// `vrrp_track_process` delays are at most an hour.
const PROCESS_DELAY_MAX: Duration = Duration::from_secs(3600);

impl Lowerer<'_> {
    // ------------------------------------------------------------ vrrp_track_process

    pub(super) fn track_process(&mut self, n: &Node<'_>) -> Option<VrrpTrackProcess> {
        self.not_supported(n.stmt.keyword());
        let name = self.arg(n.stmt, 0)?.text().to_string();
        let mut tp = VrrpTrackProcess {
            name,
            process: String::new(),
            params: Vec::new(),
            param_match: None,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
            full_command: false,
            location: self.loc(n.stmt.location()),
        };
        let mut weight_set = false;
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "process" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    if !tp.process.is_empty() {
                        self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Process already set for track process {} - ignoring {}",
                                tp.name,
                                t.text()
                            ),
                        );
                        continue;
                    }
                    tp.process = t.text().to_string();
                    tp.params = s.args()[1..].iter().map(|t| t.text().to_string()).collect();
                    if !tp.params.is_empty() {
                        tp.param_match.get_or_insert(ParamMatch::Exact);
                        tp.full_command = true;
                    }
                }
                "param_match" => {
                    let m = match s.args().first().map(|t| t.text()) {
                        None => Some(ParamMatch::Exact),
                        Some("initial") => Some(ParamMatch::Initial),
                        Some("partial") => Some(ParamMatch::Partial),
                        Some(other) => {
                            let loc = s
                                .args()
                                .first()
                                .map_or(s.keyword().location, |t| t.location);
                            self.diag(
                                Severity::Error,
                                loc,
                                format!("Invalid param_match type {other} - ignoring"),
                            );
                            None
                        }
                    };
                    if m.is_some() {
                        tp.param_match = m;
                        tp.full_command = true;
                    }
                }
                "weight" => {
                    let Some(t) = s.args().first() else {
                        self.diag(
                            Severity::Error,
                            s.keyword().location,
                            format!(
                                "No weight specified for track process {} - ignoring",
                                tp.name
                            ),
                        );
                        continue;
                    };
                    if weight_set && tp.weight != 0 {
                        self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Weight already set for track process {} - ignoring {}",
                                tp.name,
                                t.text()
                            ),
                        );
                        continue;
                    }
                    match t.text().parse::<i32>() {
                        Ok(w) if (-254..=254).contains(&w) => {
                            tp.weight = w;
                            weight_set = true;
                            tp.reverse = self.reverse_word(s.args().get(1));
                        }
                        _ => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Weight ({}) for vrrp_track_process {} must be between [-254..254] inclusive. Ignoring...",
                                t.text(), tp.name
                            ),
                        ),
                    }
                }
                "quorum" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match values::uint(t.text(), 1, 65535) {
                        Err(_) => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Quorum ({}) for vrrp_track_process {} must be between [1..65535] inclusive. Ignoring...",
                                t.text(), tp.name
                            ),
                        ),
                        Ok(q) if q > u64::from(tp.quorum_max) => self.diag(
                            Severity::Error,
                            t.location,
                            "Quorum is greater than quorum_max - ignoring",
                        ),
                        Ok(q) => tp.quorum = u32::try_from(q).unwrap_or(1),
                    }
                }
                "quorum_max" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match values::uint(t.text(), 0, 65535) {
                        Err(_) => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "quorum_max ({}) for vrrp_track_process {} must be between [0..65535] inclusive. Ignoring...",
                                t.text(), tp.name
                            ),
                        ),
                        Ok(m) if (m != 0 || tp.quorum > 1) && m < u64::from(tp.quorum) => self
                            .diag(
                                Severity::Error,
                                t.location,
                                "quorum_max is less than quorum - ignoring",
                            ),
                        Ok(m) => {
                            tp.quorum_max = u32::try_from(m).unwrap_or(u32::MAX);
                            if m == 0 {
                                tp.quorum = 0;
                            } else if tp.quorum == 0 {
                                tp.quorum = 1;
                            }
                        }
                    }
                }
                kw @ ("delay" | "terminate_delay" | "fork_delay") => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    let d = values::timer(t.text(), 1)
                        .ok()
                        .map(|t| t.value)
                        .filter(|d| *d <= PROCESS_DELAY_MAX);
                    let Some(d) = d else {
                        let prefix = kw.strip_suffix("delay").unwrap_or("");
                        self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "{prefix}delay ({}) for vrrp_track_process {} must be between [0.000001..3600] inclusive. Ignoring...",
                                t.text(), tp.name
                            ),
                        );
                        continue;
                    };
                    if kw != "fork_delay" {
                        tp.terminate_delay = d;
                    }
                    if kw != "terminate_delay" {
                        tp.fork_delay = d;
                    }
                }
                "full_command" => tp.full_command = true,
                _ => {}
            }
        }
        if tp.process.is_empty() {
            self.diag(
                Severity::Error,
                &tp.location,
                format!("track process '{}' process name not specified", tp.name),
            );
            return None;
        }
        Some(tp)
    }

    // ------------------------------------------------------------ bfd_instance

    /// A BFD interval in milliseconds (`min_rx`, `min_tx`, `idle_tx`).
    fn bfd_interval(&mut self, n: &Node<'_>, name: &str, min_ms: u64) -> Option<Duration> {
        let s = n.stmt;
        let kw = s.keyword().text();
        let t = self.arg(s, 0)?;
        match values::millis(t.text(), min_ms, BFD_INTERVAL_MAX_MS) {
            Err(_) => {
                self.diag(
                    Severity::Error,
                    t.location,
                    format!(
                        "Configuration error: BFD instance {name} {kw} value {} is not valid (must be in range [{min_ms}-{BFD_INTERVAL_MAX_MS}]), ignoring",
                        t.text()
                    ),
                );
                None
            }
            Ok(d) => {
                if d > Duration::from_millis(BFD_INTERVAL_SENSIBLE_MS) {
                    self.diag(
                        Severity::Warning,
                        t.location,
                        format!(
                            "Configuration warning: BFD instance {name} {kw} value {} is larger than max sensible ({BFD_INTERVAL_SENSIBLE_MS})",
                            t.text()
                        ),
                    );
                }
                Some(d)
            }
        }
    }

    pub(super) fn bfd_instance(&mut self, n: &Node<'_>) -> Option<BfdInstance> {
        self.not_supported(n.stmt.keyword());
        let name_tok = self.arg(n.stmt, 0)?;
        let name = name_tok.text().to_string();
        if name.len() >= BFD_INAME_MAX {
            self.diag(
                Severity::Error,
                name_tok.location,
                format!(
                    "Configuration error: BFD instance {name} name too long (maximum length is {} characters) - ignoring",
                    BFD_INAME_MAX - 1
                ),
            );
            return None;
        }
        if self.model.bfd_instances.iter().any(|b| b.name == name) {
            self.diag(
                Severity::Error,
                name_tok.location,
                format!("Configuration error: BFD instance {name} already configured - ignoring"),
            );
            return None;
        }
        let mut neighbor: Option<IpAddr> = None;
        let mut neighbor_word = "neighbor";
        let mut source = None;
        let mut min_rx = Duration::from_millis(10);
        let mut min_tx = Duration::from_millis(10);
        let mut idle_tx = Duration::from_millis(1000);
        let mut multiplier = 5u8;
        let mut passive = false;
        let mut ttl: Option<u8> = None;
        let mut max_hops = 0i16;
        let mut weight = 0;
        let mut reverse = false;
        let (mut vrrp, mut checker) = (false, false);
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                kw @ ("neighbor_ip" | "neighbour_ip") => {
                    if kw == "neighbour_ip" {
                        neighbor_word = "neighbour";
                    }
                    let t = self.arg(s, 0)?;
                    match values::ip(t.text()) {
                        Ok(a) => neighbor = Some(a),
                        Err(_) => {
                            self.diag(
                                Severity::Error,
                                t.location,
                                format!(
                                    "Configuration error: BFD instance {name} has malformed {neighbor_word} address {}, ignoring instance",
                                    t.text()
                                ),
                            );
                            return None;
                        }
                    }
                }
                "source_ip" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match values::ip(t.text()) {
                        Ok(a) => source = Some(a),
                        Err(_) => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Configuration error: BFD instance {name} has malformed source address {}, ignoring",
                                t.text()
                            ),
                        ),
                    }
                }
                "min_rx" => min_rx = self.bfd_interval(c, &name, 1).unwrap_or(min_rx),
                "min_tx" => min_tx = self.bfd_interval(c, &name, 1).unwrap_or(min_tx),
                "idle_tx" => idle_tx = self.bfd_interval(c, &name, 1000).unwrap_or(idle_tx),
                "multiplier" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match values::uint(t.text(), 1, 255) {
                        Ok(v) => {
                            if v > 10 {
                                self.diag(
                                    Severity::Warning,
                                    t.location,
                                    format!(
                                        "Configuration warning: BFD instance {name} multiplier value {} is larger than max sensible (10)",
                                        t.text()
                                    ),
                                );
                            }
                            multiplier = u8::try_from(v).unwrap_or(multiplier);
                        }
                        Err(_) => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Configuration error: BFD instance {name} multiplier value {} not valid (must be in range [1-255]), ignoring",
                                t.text()
                            ),
                        ),
                    }
                }
                "passive" => passive = true,
                "ttl" | "hoplimit" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match values::uint(t.text(), 1, 255) {
                        Ok(v) => ttl = u8::try_from(v).ok(),
                        Err(_) => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Configuration error: BFD instance {name} ttl/hoplimit value {} not valid (must be in range [1-255]), ignoring",
                                t.text()
                            ),
                        ),
                    }
                }
                "max_hops" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match t.text().parse::<i16>() {
                        Ok(v) if (-1..=255).contains(&v) => max_hops = v,
                        _ => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Configuration error: BFD instance {name} max_hops value {} not valid (must be in range [-1-255]), ignoring",
                                t.text()
                            ),
                        ),
                    }
                }
                "weight" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    match t.text().parse::<i32>() {
                        Ok(w) if (-253..=253).contains(&w) => weight = w,
                        _ => self.diag(
                            Severity::Error,
                            t.location,
                            format!(
                                "Configuration error: BFD instance {name} weight value {} not valid (must be in range [-253-253]), ignoring",
                                t.text()
                            ),
                        ),
                    }
                    if let Some(r) = s.args().get(1) {
                        if r.text() == "reverse" {
                            reverse = true;
                        } else {
                            self.diag(
                                Severity::Error,
                                r.location,
                                format!(
                                    "Configuration error: BFD instance {name} unknown weight option {}",
                                    r.text()
                                ),
                            );
                        }
                    }
                }
                "vrrp" => vrrp = true,
                "checker" => checker = true,
                _ => {}
            }
        }
        let loc = self.loc(n.stmt.location());
        let Some(neighbor) = neighbor else {
            self.diag(
                Severity::Error,
                &loc,
                format!("Configuration error: BFD instance {name} has no {neighbor_word} address set, disabling instance"),
            );
            return None;
        };
        if source.is_some_and(|s: IpAddr| s.is_ipv4() != neighbor.is_ipv4()) {
            self.diag(
                Severity::Error,
                &loc,
                format!("Configuration error: BFD instance {name} source address and {neighbor_word} address {neighbor} are not of the same family, disabling instance"),
            );
            return None;
        }
        // keepalived's find_bfd_by_addr: an instance without a source
        // clashes with any other on the neighbour, else the pair must differ.
        let clash = self.model.bfd_instances.iter().any(|b| {
            b.neighbor == neighbor && (b.source.is_none() || source.is_none() || b.source == source)
        });
        if clash {
            self.diag(
                Severity::Error,
                &loc,
                format!("Configuration error: BFD instance {name} has duplicate {neighbor_word} address {neighbor}, ignoring instance"),
            );
            return None;
        }
        let ttl = ttl.unwrap_or(if neighbor.is_ipv4() { 255 } else { 64 });
        if max_hops > i16::from(ttl) {
            self.diag(
                Severity::Error,
                &loc,
                format!(
                    "BFD instance {name}: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit"
                ),
            );
            max_hops = i16::from(ttl);
        }
        if !vrrp && !checker {
            (vrrp, checker) = (true, true);
        }
        Some(BfdInstance {
            name,
            neighbor,
            source,
            min_rx,
            min_tx,
            idle_tx,
            multiplier,
            passive,
            ttl,
            max_hops,
            weight,
            reverse,
            vrrp,
            checker,
            location: loc,
        })
    }

    // ------------------------------------------------------------ garp_group

    pub(super) fn garp_group(&mut self, n: &Node<'_>) -> Option<GarpGroup> {
        self.not_supported(n.stmt.keyword());
        let mut g = GarpGroup {
            garp_interval: None,
            gna_interval: None,
            interfaces: Vec::new(),
            aggregate: false,
            location: self.loc(n.stmt.location()),
        };
        for c in &n.children {
            let s = c.stmt;
            let kw = s.keyword().text();
            match kw {
                "garp_interval" | "gna_interval" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    let v = values::timer(t.text(), 0)
                        .ok()
                        .map(|t| t.value)
                        .filter(|d| d.as_micros() <= i32::MAX as u128);
                    let Some(v) = v else {
                        self.diag(
                            Severity::Error,
                            t.location,
                            format!("garp_group {kw} '{}' invalid", t.text()),
                        );
                        continue;
                    };
                    if kw == "garp_interval" {
                        g.garp_interval = Some(v);
                    } else {
                        g.gna_interval = Some(v);
                    }
                }
                "interface" => {
                    let Some(t) = self.arg(s, 0) else { continue };
                    self.garp_interface(&mut g, t);
                }
                "interfaces" => {
                    if c.children.is_empty() {
                        self.diag(
                            Severity::Error,
                            s.keyword().location,
                            "Warning - empty garp_group interfaces block",
                        );
                        continue;
                    }
                    g.aggregate = true;
                    for line in &c.children {
                        let words = std::iter::once(line.stmt.keyword()).chain(line.stmt.args());
                        for t in words {
                            self.garp_interface(&mut g, t);
                        }
                    }
                }
                _ => {}
            }
        }
        if g.garp_interval.is_none() && g.gna_interval.is_none() {
            self.diag(
                Severity::Error,
                &g.location,
                format!(
                    "garp group {} does not have any delay set - removing",
                    self.model.garp_groups.len() + 1
                ),
            );
            return None;
        }
        Some(g)
    }

    /// An interface of a `garp_group`: each interface belongs to one group.
    fn garp_interface(&mut self, g: &mut GarpGroup, t: &crate::preprocess::Tok<'_>) {
        let taken = g.interfaces.iter().any(|i| i == t.text())
            || self
                .model
                .garp_groups
                .iter()
                .any(|o| o.interfaces.iter().any(|i| i == t.text()));
        if taken {
            self.diag(
                Severity::Error,
                t.location,
                format!("garp_group already specified for {} - ignoring", t.text()),
            );
        } else {
            g.interfaces.push(t.text().to_string());
        }
    }

    // ------------------------------------------------------------ SSL

    pub(super) fn ssl(&mut self, n: &Node<'_>) {
        self.not_supported(n.stmt.keyword());
        if self.model.ssl.is_some() {
            self.diag(
                Severity::Error,
                n.stmt.keyword().location,
                "SSL context already specified - replacing",
            );
        }
        let mut ssl = SslContext {
            location: self.loc(n.stmt.location()),
            ..SslContext::default()
        };
        for c in &n.children {
            let s = c.stmt;
            let (field, what) = match s.keyword().text() {
                "password" => (&mut ssl.password, "password"),
                "ca" => (&mut ssl.ca, "cafile"),
                "certificate" => (&mut ssl.certificate, "certfile"),
                "key" => (&mut ssl.key, "keyfile"),
                _ => continue,
            };
            let Some(t) = s.args().first() else {
                self.diag(
                    Severity::Error,
                    s.keyword().location,
                    format!("SSL {what} missing"),
                );
                continue;
            };
            if field.is_some() {
                self.diag(
                    Severity::Error,
                    s.keyword().location,
                    format!("SSL {what} already specified - replacing"),
                );
            }
            *field = Some(t.text().to_string());
        }
        self.model.ssl = Some(ssl);
    }

    // ------------------------------------------------------------ BFD_CHECK

    /// `BFD_CHECK { name NAME; alpha [BOOL] }`: NAME must be a `bfd_instance`
    /// defined earlier that reports to the checker process.
    pub(super) fn bfd_check(&mut self, n: &Node<'_>, monitored: &[BfdCheck]) -> Option<BfdCheck> {
        self.not_supported(n.stmt.keyword());
        let mut name: Option<String> = None;
        let mut alpha = false;
        let location = self.loc(n.stmt.location());
        for c in &n.children {
            let s = c.stmt;
            match s.keyword().text() {
                "name" => {
                    let problem = match s.args() {
                        [t] if !self.checker_bfds.iter().any(|b| b == t.text()) => {
                            Some(format!("BFD_CHECK - BFD {} not configured", t.text()))
                        }
                        [t] if name.is_some() => Some(format!(
                            "BFD_CHECK - BFD {} already specified as {}",
                            t.text(),
                            name.as_deref().unwrap_or_default()
                        )),
                        [t] if t.text().len() >= BFD_INAME_MAX => {
                            Some(format!("BFD_CHECK - BFD name {} too long", t.text()))
                        }
                        [t] if monitored.iter().any(|m| m.name == t.text()) => {
                            Some(format!("BFD_CHECK - RS already monitoring {}", t.text()))
                        }
                        [_] => None,
                        _ => Some(
                            "BFD_CHECK - No or too many names specified - skipping checker"
                                .to_string(),
                        ),
                    };
                    if let Some(msg) = problem {
                        self.diag(Severity::Error, s.keyword().location, msg);
                        return None;
                    }
                    name = s.args().first().map(|t| t.text().to_string());
                }
                "alpha" => match s.args().first() {
                    None => alpha = true,
                    Some(t) => match values::boolean(t.text()) {
                        Ok(v) => alpha = v,
                        Err(_) => self.diag(
                            Severity::Error,
                            t.location,
                            format!("Invalid alpha parameter {}", t.text()),
                        ),
                    },
                },
                _ => {}
            }
        }
        let Some(name) = name else {
            self.diag(
                Severity::Error,
                &location,
                "No name has been specified for BFD_CHECKER - skipping",
            );
            return None;
        };
        Some(BfdCheck {
            name,
            alpha,
            location,
        })
    }
}
