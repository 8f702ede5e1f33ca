//! Configured data: what to check, where, and how often.
//!
//! Specs are plain values built by `dpvsd::assemble` from the keepalived
//! model; every default has already been resolved (checker ← real server ←
//! virtual server ← checker-type default, KEEPALIVED.md §8). Nothing in this
//! module changes at run time; runtime state lives in [`crate::state`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Opaque identity of a subject, chosen by the caller.
///
/// A subject is one real server of one virtual server. The id must stay the
/// same across reloads for the subject's health state to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct SubjectId(pub u64);

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The kind of probe a checker runs.
///
/// Each keepalived checker block maps to one variant; variants with their own
/// parameters carry them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// `TCP_CHECK`: a TCP connect that must complete within
    /// `connect_timeout`; the connection is then closed.
    Tcp,
    /// `HTTP_GET`: every URL must answer with an accepted status (and digest).
    Http(HttpSpec),
    /// `SSL_GET`: as `HTTP_GET`, over TLS without certificate verification.
    Ssl(HttpSpec),
    /// `MISC_CHECK`: a script whose exit status decides.
    Misc(MiscSpec),
    /// `UDP_CHECK`: a datagram, optionally with a required reply.
    Udp(UdpSpec),
    /// `DNS_CHECK`: one query over UDP; any response with RCODE NOERROR
    /// passes.
    Dns(DnsSpec),
    /// `SMTP_CHECK`: banner 220, `HELO` answered with 250, then `QUIT`.
    Smtp(SmtpSpec),
    /// `PING_CHECK`: one ICMP (or ICMPv6) echo that must be answered within
    /// `connect_timeout`. The target's port is not used.
    Ping,
    /// `FILE_CHECK`: a `track_file` whose number sets a weight delta or
    /// fails the checker.
    File(FileSpec),
}

impl CheckKind {
    /// The keepalived keyword for this checker, e.g. `"TCP_CHECK"`.
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Ssl(_) => "SSL_GET",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::File(_) => "FILE_CHECK",
        }
    }
}

/// `http_protocol`: the request line's version and whether a
/// `Connection: close` header is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpProtocol {
    /// `1.0` (the default): `HTTP/1.0`, no `Connection` header.
    #[default]
    Http10,
    /// `1.0C`: `HTTP/1.0` with `Connection: close`.
    Http10Close,
    /// `1.1`: `HTTP/1.1` with `Connection: close`.
    Http11,
}

impl HttpProtocol {
    /// Parses the keepalived keyword value (`1.0`, `1.0C`, `1.1`).
    ///
    /// ```
    /// use healthcheck::HttpProtocol;
    /// assert_eq!(HttpProtocol::parse("1.0C"), Some(HttpProtocol::Http10Close));
    /// assert_eq!(HttpProtocol::parse("2"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "1.0" => Some(HttpProtocol::Http10),
            "1.0C" | "1.0c" => Some(HttpProtocol::Http10Close),
            "1.1" => Some(HttpProtocol::Http11),
            _ => None,
        }
    }
}

/// Parameters of `HTTP_GET` and `SSL_GET`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HttpSpec {
    /// The `url` blocks; every one must pass. With none, the check fails
    /// (keepalived drops such a checker at config time).
    pub urls: Vec<UrlSpec>,
    /// `http_protocol`.
    pub http_protocol: HttpProtocol,
    /// `virtualhost`: the `Host` header (and SNI name) unless a URL has its
    /// own. Without it the header is the target address and port.
    pub virtualhost: Option<String>,
    /// `enable_sni` (`SSL_GET` only): send the virtual host as TLS SNI.
    pub enable_sni: bool,
    /// `sni_name` (`SSL_GET` only): the SNI name to send instead of the
    /// virtual host; implies SNI.
    pub sni_name: Option<String>,
}

/// One `url` block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlSpec {
    /// `path`: the request target, e.g. `/health`.
    pub path: String,
    /// `digest`: the MD5 of the response body that is required.
    pub digest: Option<[u8; 16]>,
    /// `status_code`: accepted inclusive ranges; empty means `200-299`.
    pub status: Vec<(u16, u16)>,
    /// `virtualhost`: overrides the checker's for this URL.
    pub virtualhost: Option<String>,
}

impl UrlSpec {
    /// A URL accepting the default statuses `200-299`, without digest.
    pub fn new(path: impl Into<String>) -> Self {
        UrlSpec {
            path: path.into(),
            digest: None,
            status: vec![(200, 299)],
            virtualhost: None,
        }
    }

    /// Whether `status` is accepted (`200-299` when no range is configured).
    ///
    /// ```
    /// let mut url = healthcheck::UrlSpec::new("/");
    /// assert!(url.accepts(204) && !url.accepts(301));
    /// url.status = vec![(301, 302), (404, 404)];
    /// assert!(url.accepts(302) && url.accepts(404) && !url.accepts(200));
    /// url.status.clear();
    /// assert!(url.accepts(200));
    /// ```
    pub fn accepts(&self, status: u16) -> bool {
        if self.status.is_empty() {
            return (200..=299).contains(&status);
        }
        self.status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

/// Parameters of `MISC_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MiscSpec {
    /// `misc_path`, split into program and arguments; run directly (no shell).
    pub argv: Vec<String>,
    /// `misc_timeout`; `None` means the checker's `delay_loop`. On expiry the
    /// script's process group gets SIGTERM, then SIGKILL 2 s later.
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit statuses 2..=255 mean success with a weight.
    pub dynamic: bool,
    /// With `dynamic`, DPVS's keepalived fork (`--dialect dpvs`): exit
    /// status `s` in 2..=255 sets the real server's weight to `s - 2`
    /// absolutely, whatever its configured weight and the other checkers'
    /// deltas; exit 0 restores the configured weight. Without it,
    /// keepalived 2.2.7's relative rule applies (see `weight`).
    pub absolute_weight: bool,
    /// The real server's configured weight (`iweight`), which keepalived's
    /// `misc_dynamic` rule needs: exit status `s` in 2..=255 sets this
    /// checker's weight delta to `s - 2 - weight`. Unused without `dynamic`.
    pub weight: i64,
    /// `user USER`: run as this user (by name).
    pub user: Option<String>,
    /// `user USER GROUP`: run with this group (by name).
    pub group: Option<String>,
    /// `enable_script_security`: when the script would run as root, refuse
    /// it (the check fails with the reason) if it or a directory on its
    /// path is writable by anyone but root (see [`crate::script_insecurity`]).
    pub secure: bool,
}

/// Parameters of `UDP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UdpSpec {
    /// `payload`: the datagram sent (may be empty).
    pub payload: Vec<u8>,
    /// `require_reply`: without it, the check passes unless an ICMP error
    /// (a refused port) arrives within `connect_timeout`. With it, a reply
    /// must arrive, be `min_reply_length..=max_reply_length` long, and start
    /// with the pattern.
    pub require_reply: Option<ReplyPattern>,
    /// `min_reply_length` (default 0).
    pub min_reply_length: usize,
    /// `max_reply_length` (default 255).
    pub max_reply_length: usize,
}

impl Default for UdpSpec {
    fn default() -> Self {
        UdpSpec {
            payload: Vec::new(),
            require_reply: None,
            min_reply_length: 0,
            max_reply_length: 255,
        }
    }
}

/// A `require_reply` pattern: hex digits where `X`/`x` nibbles match
/// anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplyPattern {
    /// The required bits.
    pub bytes: Vec<u8>,
    /// Which bits are compared (0xF0/0x0F per fixed nibble).
    pub mask: Vec<u8>,
}

impl ReplyPattern {
    /// Parses keepalived's hex form; `None` for an odd length or a non-hex
    /// character.
    ///
    /// ```
    /// let p = healthcheck::ReplyPattern::parse_hex("0aX1").expect("valid");
    /// assert_eq!(p.bytes, vec![0x0a, 0x01]);
    /// assert_eq!(p.mask, vec![0xff, 0x0f]);
    /// assert!(p.matches(&[0x0a, 0x71, 0x99]));
    /// assert!(!p.matches(&[0x0b, 0x71]));
    /// assert!(!p.matches(&[0x0a]));
    /// assert!(healthcheck::ReplyPattern::parse_hex("abc").is_none());
    /// ```
    pub fn parse_hex(text: &str) -> Option<Self> {
        let pairs = text.as_bytes().chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return None;
        }
        let nibble = |c: u8| -> Option<(u8, u8)> {
            match c {
                b'x' | b'X' => Some((0, 0)),
                _ => Some((char::from(c).to_digit(16)? as u8, 0xf)),
            }
        };
        let mut bytes = Vec::with_capacity(pairs.len());
        let mut mask = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let (hi, hi_mask) = nibble(pair[0])?;
            let (lo, lo_mask) = nibble(pair[1])?;
            bytes.push(hi << 4 | lo);
            mask.push(hi_mask << 4 | lo_mask);
        }
        Some(ReplyPattern { bytes, mask })
    }

    /// Whether `reply` starts with the pattern.
    pub fn matches(&self, reply: &[u8]) -> bool {
        reply.len() >= self.bytes.len()
            && self
                .bytes
                .iter()
                .zip(&self.mask)
                .zip(reply)
                .all(|((want, mask), got)| got & mask == want & mask)
    }
}

/// `DNS_CHECK` `type`: the query types keepalived accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DnsType {
    /// `A`
    A,
    /// `NS`
    Ns,
    /// `CNAME`
    Cname,
    /// `SOA` (keepalived's default)
    #[default]
    Soa,
    /// `MX`
    Mx,
    /// `TXT`
    Txt,
    /// `AAAA`
    Aaaa,
}

impl DnsType {
    /// Parses the keyword value, case-insensitively as keepalived does.
    ///
    /// ```
    /// use healthcheck::DnsType;
    /// assert_eq!(DnsType::parse("aaaa"), Some(DnsType::Aaaa));
    /// assert_eq!(DnsType::parse("SRV"), None);
    /// assert_eq!(DnsType::Mx.code(), 15);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        const ALL: [DnsType; 7] = [
            DnsType::A,
            DnsType::Ns,
            DnsType::Cname,
            DnsType::Soa,
            DnsType::Mx,
            DnsType::Txt,
            DnsType::Aaaa,
        ];
        ALL.into_iter()
            .find(|t| t.keyword().eq_ignore_ascii_case(text))
    }

    /// The keyword, e.g. `"SOA"`.
    pub fn keyword(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Ns => "NS",
            DnsType::Cname => "CNAME",
            DnsType::Soa => "SOA",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
            DnsType::Aaaa => "AAAA",
        }
    }

    /// The RR type number sent in the question.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

/// Parameters of `DNS_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsSpec {
    /// `type` (default `SOA`).
    pub qtype: DnsType,
    /// `name` (default `.`, the root).
    pub name: String,
}

impl Default for DnsSpec {
    fn default() -> Self {
        DnsSpec {
            qtype: DnsType::Soa,
            name: ".".into(),
        }
    }
}

/// keepalived's `helo_name` default.
pub const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";

/// Parameters of `SMTP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpSpec {
    /// `helo_name` (default [`SMTP_DEFAULT_HELO`]).
    pub helo_name: String,
}

impl Default for SmtpSpec {
    fn default() -> Self {
        SmtpSpec {
            helo_name: SMTP_DEFAULT_HELO.into(),
        }
    }
}

/// Parameters of `FILE_CHECK` (resolved from its `track_file` block).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileSpec {
    /// The `track_file`'s `file`.
    pub path: PathBuf,
    /// `weight` (the checker's, else the `track_file`'s).
    pub weight: i64,
    /// `reverse`.
    pub reverse: bool,
}

/// One checker of a subject (one keepalived checker block), with every
/// default resolved.
///
/// Checkers that are equal (same kind, parameters, target, source and
/// timing) run once and feed every subject that has them (see
/// [`crate::HealthChecker`]); hence `Eq` and `Hash`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    /// What to probe.
    pub kind: CheckKind,
    /// `connect_ip`:`connect_port` (the real server's address unless overridden).
    pub target: SocketAddr,
    /// `bindto`: the local source address, if any.
    pub bind: Option<IpAddr>,
    /// `bind_port`: the local source port (TCP and UDP based checkers),
    /// else an ephemeral one.
    pub bind_port: Option<u16>,
    /// `bind_if`: the interface the checker's sockets are bound to
    /// (`SO_BINDTODEVICE`), e.g. to reach an IPv6 link-local `connect_ip`.
    /// An interface that does not exist fails the check with the reason.
    pub bind_if: Option<String>,
    /// `fwmark`: the mark (`SO_MARK`) put on the checker's packets (TCP and
    /// UDP based checkers); needs `CAP_NET_ADMIN`.
    pub fwmark: Option<u32>,
    /// `log_all_failures`: log every failed probe at warning level, not
    /// only the ones that take the checker down.
    pub log_all_failures: bool,
    /// `connect_timeout`: how long the connect may take.
    pub connect_timeout: Duration,
    /// `retry`: how many extra attempts a failure gets while the checker is up.
    pub retry: u32,
    /// `delay_before_retry`: the spacing of those attempts.
    pub delay_before_retry: Duration,
    /// `delay_loop`: the interval between regular checks.
    pub delay_loop: Duration,
    /// `warmup`: the first check runs after a random delay in `[0, warmup]`;
    /// zero runs it at once.
    pub warmup: Duration,
    /// `alpha`: the checker starts down and needs one success to come up.
    pub alpha: bool,
}

impl CheckSpec {
    /// A `TCP_CHECK` of `target` with keepalived's defaults when nothing is
    /// configured at any level (KEEPALIVED.md §7.3 and §8): `delay_loop` 60 s,
    /// `connect_timeout` 5 s, `retry` 1, `delay_before_retry` 1 s, `warmup`
    /// equal to `delay_loop`, no `bindto`, no `alpha`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let spec = healthcheck::CheckSpec::tcp("10.0.0.2:8080".parse().expect("address"));
    /// assert_eq!(spec.retry, 1);
    /// assert_eq!(spec.warmup, Duration::from_secs(60));
    /// assert_eq!(spec.label(), "TCP_CHECK 10.0.0.2:8080");
    /// ```
    pub fn tcp(target: SocketAddr) -> Self {
        let delay_loop = Duration::from_secs(60);
        CheckSpec {
            kind: CheckKind::Tcp,
            target,
            bind: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            log_all_failures: false,
            connect_timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            delay_loop,
            warmup: delay_loop,
            alpha: false,
        }
    }

    /// Short human name for logs and event reasons, e.g.
    /// `"TCP_CHECK 10.0.0.2:8080"`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.keyword(), self.target_text())
    }

    /// What is probed, for status and logs: the target address, or for
    /// `MISC_CHECK` the command line.
    pub fn target_text(&self) -> String {
        match &self.kind {
            CheckKind::Misc(misc) => misc.argv.join(" "),
            CheckKind::File(file) => file.path.display().to_string(),
            CheckKind::Ping => self.target.ip().to_string(),
            _ => self.target.to_string(),
        }
    }
}

/// A subject and its checkers.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectSpec {
    /// Stable identity chosen by the caller.
    pub id: SubjectId,
    /// Human name for logs, e.g. `"[10.0.0.2]:8080 of [10.0.0.100]:80/TCP"`.
    pub name: String,
    /// The checkers; the subject is up only when all of them are up. With no
    /// checkers the subject is always up (as in keepalived).
    pub checks: Vec<CheckSpec>,
}

impl SubjectSpec {
    /// Whether the subject counts as up before any check has run.
    ///
    /// keepalived puts a real server into IPVS at start-up unless one of its
    /// checkers has `alpha`: alpha marks that checker failed until its first
    /// success (KEEPALIVED.md §9 "alpha").
    ///
    /// ```
    /// use healthcheck::{CheckSpec, SubjectId, SubjectSpec};
    /// let check = CheckSpec::tcp("10.0.0.2:80".parse().expect("address"));
    /// let mut subject = SubjectSpec { id: SubjectId(1), name: "rs".into(), checks: vec![check] };
    /// assert!(subject.initially_up());
    /// subject.checks[0].alpha = true;
    /// assert!(!subject.initially_up());
    /// ```
    pub fn initially_up(&self) -> bool {
        self.checks.iter().all(|c| !c.alpha)
    }
}
