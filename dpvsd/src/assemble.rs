//! `Model → Plan`: maps keepalived concepts onto the subsystems' specs.
//!
//! Pure: no I/O, no clock. Everything dpvsd cannot run yet is an
//! [`AssembleError`] naming the config location, never silently dropped.

use std::net::{IpAddr, SocketAddr};

use dataplane::{
    Device, Forwarding, Persistence, Protocol, RealServerSpec, Scheduler, ServiceKey, ServiceSpec,
};
use healthcheck::{
    CheckKind, CheckSpec, DnsSpec, DnsType, FileSpec, HttpProtocol, HttpSpec, MiscSpec,
    ReplyPattern, SmtpSpec, SubjectId, SubjectSpec, UdpSpec, UrlSpec,
};
use keepalived_parser::model::{self, CheckerKind, LbAlgo, LbKind, Model};
use keepalived_parser::Location;

mod dpvs;
pub mod ospf;
mod protect;
pub mod snat;
pub mod vrrp;

pub use self::ospf::{OspfInterfacePlan, OspfPlan};
pub use self::vrrp::VrrpPlan;

/// What the daemon runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    /// `vrrp_instance`s and what they track; `None` without any.
    pub vrrp: Option<VrrpPlan>,
    /// `ospf_announcer`; `None` without one.
    pub ospf: Option<OspfPlan>,
    /// Keywords accepted but ignored by dpvsd (e.g. `smtp_alert`): reported,
    /// never silently dropped, and not a reason to refuse the file.
    pub warnings: Vec<AssembleWarning>,
}

/// Something in the model dpvsd accepts but ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembleWarning {
    pub location: Location,
    pub message: String,
}

impl std::fmt::Display for AssembleWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: warning: {}", self.location, self.message)
    }
}

/// The warning for a keyword dpvsd accepts but does not act on.
pub(crate) fn ignored(location: &Location, what: &str) -> AssembleWarning {
    AssembleWarning {
        location: location.clone(),
        message: format!("{what} is not supported by dpvsd, ignored"),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub spec: ServiceSpec,
    pub servers: Vec<ServerPlan>,
    /// `quorum`, `hysteresis`, `quorum_up`/`quorum_down`, `sorry_server`.
    pub quorum: QuorumPlan,
    /// The VIP (`vip_bind_dev dpdk1.100`) and local addresses (on
    /// `dpdk1` in their `local_address_group`) bound to a port other than
    /// the first or to an 802.1Q VLAN, with that device
    /// ([`dataplane::Command::SetDevice`]).
    pub devices: Vec<(IpAddr, Device)>,
    /// Where the `virtual_server` stands (errors found at run time, e.g.
    /// an SNAT service's interface or gateway, name it).
    pub location: Location,
}

/// The device a DPVS device name binds to: port `N` of `dpdkN` (0 for
/// other names), VLAN `V` of `….V` (`dpdk1.100`, `eth0.100`). `None` for
/// the first port untagged (`dpdk0`), a KNI device (`dpdk1.kni`) or a VLAN
/// id out of 1..=4094.
pub fn device_of(dev: &str) -> Option<Device> {
    let (base, vlan) = match dev.rsplit_once('.') {
        Some((base, id)) => (base, id.parse().ok().filter(|id| (1..=4094).contains(id))?),
        None => (dev, 0),
    };
    let port = base
        .strip_prefix("dpdk")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let d = Device { port, vlan };
    (d != Device::default()).then_some(d)
}

/// The device of `addr` when a `vrrp_instance` whose DPVS
/// `dpdk_interface` is another port or a VLAN device (`dpdk1`,
/// `dpdk0.100`) holds it as a virtual (or excluded) address: DPVS's
/// keepalived adds the instance's addresses on that device, as
/// `vip_bind_dev` binds a virtual server's (which wins).
fn vrrp_device_of(model: &Model, addr: IpAddr) -> Option<Device> {
    model.vrrp_instances.iter().find_map(|i| {
        let vlan = device_of(i.dpdk_interface.as_deref()?)?;
        let mut addrs = i
            .virtual_ipaddresses
            .iter()
            .chain(&i.virtual_ipaddresses_excluded);
        addrs.any(|a| a.addr == addr).then_some(vlan)
    })
}

/// A virtual server's quorum settings (KEEPALIVED.md §9 "Quorum and
/// hysteresis").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuorumPlan {
    /// `quorum`, already lowered to the total real-server weight by the parser.
    pub quorum: u64,
    /// `hysteresis`, already below `quorum`.
    pub hysteresis: u64,
    /// `quorum_up`: run when quorum is gained.
    pub up_script: Option<MiscSpec>,
    /// `quorum_down`: run when quorum is lost (also at start-up when it is
    /// down then).
    pub down_script: Option<MiscSpec>,
    /// `sorry_server`: serves while quorum is down.
    pub sorry: Option<SorryPlan>,
    /// `omega`: on shutdown, `quorum_down` runs if quorum is up.
    pub omega: bool,
}

/// `sorry_server IP PORT` and `sorry_server_inhibit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SorryPlan {
    pub addr: SocketAddr,
    /// `sorry_server_inhibit`: present from start-up with weight 0, weight 1
    /// while quorum is down (otherwise added and removed).
    pub inhibit: bool,
}

/// A notify script (`quorum_up`, `quorum_down`) as a runnable spec: the
/// script's own user, else global_defs' `script_user`.
fn script(model: &Model, s: &model::Script) -> MiscSpec {
    let gd = &model.global_defs;
    let (user, group) = match &s.user {
        Some(user) => (Some(user.clone()), s.group.clone()),
        None => (gd.script_user.clone(), gd.script_group.clone()),
    };
    MiscSpec {
        argv: s.argv.clone(),
        user,
        group,
        secure: gd.enable_script_security,
        ..MiscSpec::default()
    }
}

/// One real server of one service, with its health subject.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerPlan {
    /// Configured weight (`iweight`).
    pub spec: RealServerSpec,
    /// `inhibit_on_failure`: a failed server stays with weight 0.
    pub inhibit_on_failure: bool,
    /// Its checkers; a server without checkers is always up.
    pub subject: SubjectSpec,
    /// `notify_up`: run when the server goes up.
    pub notify_up: Option<MiscSpec>,
    /// `notify_down`: run when it goes down (and on shutdown with `omega`).
    pub notify_down: Option<MiscSpec>,
}

/// Something in the model dpvsd cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: error: {message}")]
pub struct AssembleError {
    pub location: Location,
    pub message: String,
}

fn err(location: &Location, message: String) -> AssembleError {
    AssembleError {
        location: location.clone(),
        message,
    }
}

/// Builds the plan, reporting every problem at once.
///
/// # Errors
/// Everything (virtual servers, VRRP, OSPF) that uses something dpvsd
/// does not support yet.
pub fn assemble(model: &Model) -> Result<Plan, Vec<AssembleError>> {
    let mut errors = Vec::new();
    let mut services = Vec::new();
    let mut next_subject = 0u64;
    let mut warnings = Vec::new();
    for vs in &model.virtual_servers {
        match service(model, vs, &mut next_subject, &mut warnings) {
            Ok(s) => services.push(s),
            Err(e) => errors.extend(e),
        }
    }
    let vrrp = vrrp::plan(model, &mut errors, &mut warnings);
    let ospf = ospf::plan(model, &mut errors);
    if errors.is_empty() {
        Ok(Plan {
            services,
            vrrp,
            ospf,
            warnings,
        })
    } else {
        Err(errors)
    }
}

fn service(
    model: &Model,
    vs: &model::VirtualServer,
    next_subject: &mut u64,
    warnings: &mut Vec<AssembleWarning>,
) -> Result<ServicePlan, Vec<AssembleError>> {
    let loc = &vs.location;
    let mut errors = Vec::new();
    let quic = dpvs::quic(vs, &mut errors, warnings);
    let proxy_protocol = dpvs::proxy_protocol(vs, &mut errors, warnings);
    dpvs::ignored_limits(vs, warnings);
    let unsupported = [
        (vs.fwmark.is_some(), "virtual_server fwmark"),
        (vs.group.is_some(), "virtual_server group"),
    ];
    for (_, what) in unsupported.iter().filter(|(used, _)| *used) {
        errors.push(err(loc, format!("{what} is not supported by dpvsd yet")));
    }
    let protocol = match vs.protocol {
        model::Protocol::Tcp => Some(Protocol::Tcp),
        model::Protocol::Udp => Some(Protocol::Udp),
        // snat.rs: echo through a match service.
        model::Protocol::Icmp if vs.match_name.is_some() => Some(Protocol::Icmp),
        model::Protocol::Icmpv6 if vs.match_name.is_some() => Some(Protocol::Icmpv6),
        other => {
            errors.push(err(
                loc,
                format!("protocol {other:?} is not supported by dpvsd yet"),
            ));
            None
        }
    };
    let scheduler = match vs.lb_algo {
        LbAlgo::Rr => Some(Scheduler::Rr),
        LbAlgo::Wrr => Some(Scheduler::Wrr),
        LbAlgo::Mh => Some(Scheduler::Mh),
        LbAlgo::Sh => Some(Scheduler::Sh),
        LbAlgo::Dh => Some(Scheduler::Dh),
        LbAlgo::Conhash => Some(Scheduler::Conhash),
        LbAlgo::Fo => Some(Scheduler::Fo),
        LbAlgo::Lc => Some(Scheduler::Lc),
        LbAlgo::Wlc => Some(Scheduler::Wlc),
        other => {
            let name = format!("{other:?}").to_lowercase();
            errors.push(err(
                loc,
                format!("lb_algo {name} is not supported by dpvsd yet (rr, wrr, lc, wlc, mh, sh, dh, conhash and fo are)"),
            ));
            None
        }
    };
    let forwarding = match vs.lb_kind {
        LbKind::Fnat => Some(Forwarding::Fnat),
        LbKind::Nat => Some(Forwarding::Nat),
        LbKind::Dr => Some(Forwarding::Dr),
        LbKind::Tun => Some(Forwarding::Tun),
        LbKind::Snat if vs.match_name.is_some() => Some(Forwarding::Snat),
        LbKind::Snat => {
            errors.push(err(
                loc,
                "lb_kind SNAT needs a `virtual_server match` service".into(),
            ));
            None
        }
    };
    let snat = match (&vs.match_name, forwarding) {
        (Some(_), Some(Forwarding::Snat)) => snat::lower(model, vs, &mut errors),
        (Some(_), Some(other)) => {
            errors.push(err(
                loc,
                format!("virtual_server match needs lb_kind SNAT (not {other})"),
            ));
            None
        }
        _ => None,
    };
    let fnat = forwarding == Some(Forwarding::Fnat);
    let local_addrs: Vec<IpAddr> = match &vs.laddr_group_name {
        None if fnat => {
            errors.push(err(
                loc,
                "FNAT needs local addresses: set laddr_group_name".into(),
            ));
            Vec::new()
        }
        None => Vec::new(),
        Some(name) => match model.local_address_groups.iter().find(|g| &g.name == name) {
            // A group may mix families; the service uses its VIP's, or
            // (NAT64: an IPv6 VIP, IPv4 servers) IPv4 when it has no other.
            Some(g) => {
                let all: Vec<IpAddr> = g.addresses.iter().map(|a| a.addr).collect();
                let same = |a: &&IpAddr| a.is_ipv4() == vs.addr.is_ipv4();
                match all.iter().any(|a| same(&a)) {
                    true => all.iter().filter(same).copied().collect(),
                    false => all,
                }
            }
            None => {
                errors.push(err(
                    loc,
                    format!("local_address_group '{name}' is not defined"),
                ));
                Vec::new()
            }
        },
    };
    let protection = protect::protection(model, vs, &mut errors);
    let (Some(protocol), Some(scheduler), Some(forwarding), true) =
        (protocol, scheduler, forwarding, errors.is_empty())
    else {
        return Err(errors);
    };
    let (addr, port) = match &snat {
        Some((addr, port, _)) => (*addr, *port),
        None => (vs.addr, vs.port),
    };
    let key = ServiceKey {
        addr,
        port,
        protocol,
    };
    let mut servers = Vec::new();
    for rs in &vs.real_servers {
        let addr = SocketAddr::new(rs.addr, rs.port);
        let id = SubjectId(*next_subject);
        *next_subject += 1;
        let mut checks = Vec::new();
        for c in &rs.checkers {
            match check(model, c, rs.weight) {
                Ok(spec) => checks.push(spec),
                Err(e) => errors.push(e),
            }
        }
        for b in &rs.bfd_checks {
            // No BFD here: the server would never be taken out by it.
            errors.push(err(
                &b.location,
                "BFD_CHECK is not supported by dpvsd yet (dpvsd has no BFD sessions)".into(),
            ));
        }
        servers.push(ServerPlan {
            spec: RealServerSpec {
                addr,
                weight: rs.weight,
            },
            inhibit_on_failure: rs.inhibit_on_failure,
            subject: SubjectSpec {
                id,
                name: format!("[{}]:{} of {key}", rs.addr, rs.port),
                checks,
            },
            notify_up: rs.notify_up.as_ref().map(|s| script(model, s)),
            notify_down: rs.notify_down.as_ref().map(|s| script(model, s)),
        });
    }
    let sorry = vs.sorry_server.as_ref().map(|s| SorryPlan {
        addr: SocketAddr::new(s.addr, s.port),
        inhibit: s.inhibit,
    });
    if let Some(sorry) = &sorry {
        if servers.iter().any(|s| s.spec.addr == sorry.addr) {
            errors.push(err(
                loc,
                format!(
                    "sorry_server {} is also a real_server: not supported by dpvsd yet",
                    sorry.addr
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let quorum = QuorumPlan {
        quorum: u64::from(vs.quorum),
        hysteresis: u64::from(vs.hysteresis),
        up_script: vs.quorum_up.as_ref().map(|s| script(model, s)),
        down_script: vs.quorum_down.as_ref().map(|s| script(model, s)),
        sorry,
        omega: vs.omega,
    };
    let mut devices: Vec<(IpAddr, Device)> = vs
        .dpvs
        .vip_bind_dev
        .as_deref()
        .and_then(device_of)
        .or_else(|| vrrp_device_of(model, vs.addr))
        .map(|id| (vs.addr, id))
        .into_iter()
        .collect();
    if let Some(g) = vs
        .laddr_group_name
        .as_ref()
        .and_then(|name| model.local_address_groups.iter().find(|g| &g.name == name))
    {
        devices.extend(g.addresses.iter().filter_map(|a| {
            let id = device_of(&a.ifname)?;
            local_addrs.contains(&a.addr).then_some((a.addr, id))
        }));
    }
    // An SNAT service's addresses (its real servers) live on its `oif`:
    // answered for there, its gateway asked and reached from there.
    if let Some(id) = snat
        .as_ref()
        .and_then(|(_, _, m)| device_of(m.oif.as_deref()?))
    {
        devices.extend(vs.real_servers.iter().map(|rs| (rs.addr, id)));
    }
    Ok(ServicePlan {
        quorum,
        devices,
        spec: ServiceSpec {
            key,
            scheduler,
            forwarding,
            local_addrs,
            // As LVS: the whole client address unless a granularity is set.
            persistence: vs.persistence_timeout.map(|timeout_s| Persistence {
                timeout_s,
                granularity: vs.persistence_granularity.unwrap_or(32),
            }),
            protection,
            quic,
            proxy_protocol,
            // DPVS's keywords; the parser clamped the timeout to 1..=3600 s.
            establish_timeout_s: vs.dpvs.establish_timeout,
            expire_quiescent: vs.dpvs.expire_quiescent_conn,
            snat: snat.map(|(_, _, m)| Box::new(m)),
        },
        servers,
        location: vs.location.clone(),
    })
}

/// Maps one checker; options dpvsd cannot run yet are errors.
fn check(model: &Model, c: &model::Checker, weight: u32) -> Result<CheckSpec, AssembleError> {
    let kind = match &c.kind {
        CheckerKind::Tcp => CheckKind::Tcp,
        CheckerKind::Http(h) => CheckKind::Http(http(h, c)?),
        CheckerKind::Ssl(h) => CheckKind::Ssl(http(h, c)?),
        CheckerKind::Misc(m) => {
            // The checker's `user`, else global_defs' `script_user`.
            let base = script(
                model,
                &model::Script {
                    argv: m.argv.clone(),
                    user: m.user.clone(),
                    group: m.group.clone(),
                },
            );
            CheckKind::Misc(MiscSpec {
                timeout: (!m.timeout.is_zero()).then_some(m.timeout),
                dynamic: m.dynamic,
                absolute_weight: m.absolute_weight,
                weight: i64::from(weight),
                ..base
            })
        }
        CheckerKind::Udp(u) => CheckKind::Udp(UdpSpec {
            payload: u.payload.clone(),
            require_reply: u.require_reply.as_ref().map(|r| {
                let mask: Vec<u8> = r.wildcard.iter().map(|w| !w).collect();
                let bytes = r.data.iter().zip(&mask).map(|(d, m)| d & m).collect();
                ReplyPattern { bytes, mask }
            }),
            min_reply_length: usize::from(u.min_reply_length),
            max_reply_length: usize::from(u.max_reply_length),
        }),
        CheckerKind::Smtp(m) => CheckKind::Smtp(SmtpSpec {
            helo_name: m.helo_name.clone(),
        }),
        CheckerKind::Dns(d) => CheckKind::Dns(DnsSpec {
            qtype: match d.qtype {
                model::DnsType::A => DnsType::A,
                model::DnsType::Ns => DnsType::Ns,
                model::DnsType::Cname => DnsType::Cname,
                model::DnsType::Soa => DnsType::Soa,
                model::DnsType::Mx => DnsType::Mx,
                model::DnsType::Txt => DnsType::Txt,
                model::DnsType::Aaaa => DnsType::Aaaa,
            },
            name: d.name.clone(),
        }),
        CheckerKind::Ping => CheckKind::Ping,
        CheckerKind::File(f) => {
            let Some(tf) = model.track_files.iter().find(|t| t.name == f.track_file) else {
                return Err(err(
                    &c.location,
                    format!("track_file '{}' is not defined", f.track_file),
                ));
            };
            // The checker's `weight W [reverse]` overrides the track_file's.
            let (weight, reverse) = match f.weight {
                Some(w) => (w, f.reverse),
                None => (tf.weight, tf.reverse),
            };
            CheckKind::File(FileSpec {
                path: tf.path.clone().into(),
                weight: i64::from(weight),
                reverse,
            })
        }
    };
    Ok(CheckSpec {
        kind,
        target: SocketAddr::new(c.connect_ip, c.connect_port),
        bind: c.bindto,
        bind_port: c.bind_port,
        bind_if: c.bind_if.clone(),
        fwmark: c.fwmark,
        log_all_failures: c.log_all_failures,
        connect_timeout: c.connect_timeout,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
        delay_loop: c.delay_loop,
        warmup: c.warmup,
        alpha: c.alpha,
    })
}

fn http(h: &model::HttpCheck, c: &model::Checker) -> Result<HttpSpec, AssembleError> {
    let urls = h
        .urls
        .iter()
        .map(|u| {
            if u.regex.is_some() {
                return Err(err(
                    &c.location,
                    "url regex is not supported by dpvsd yet".into(),
                ));
            }
            if u.digests.len() > 1 {
                return Err(err(
                    &c.location,
                    "more than one digest per url is not supported by dpvsd yet".into(),
                ));
            }
            Ok(UrlSpec {
                path: u.path.clone(),
                digest: u.digests.first().copied(),
                status: u.status_codes.clone(),
                virtualhost: u.virtualhost.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpSpec {
        urls,
        http_protocol: match h.http_protocol {
            model::HttpProtocol::Http10 => HttpProtocol::Http10,
            model::HttpProtocol::Http10C => HttpProtocol::Http10Close,
            model::HttpProtocol::Http11 => HttpProtocol::Http11,
        },
        virtualhost: h.virtualhost.clone(),
        enable_sni: h.enable_sni,
        sni_name: None,
    })
}

#[cfg(test)]
mod warning_tests {
    use super::*;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    #[test]
    fn smtp_alert_is_ignored_with_a_located_warning_not_refused() {
        let text = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    smtp_alert\n    virtual_ipaddress {\n        10.0.0.100/24\n    }\n}\n";
        let loaded = load_str(
            text,
            Path::new("w.conf"),
            &LoadOptions {
                config_id: Some("x".into()),
            },
        );
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("smtp_alert must not refuse the file");
        assert_eq!(plan.warnings.len(), 1);
        let w = plan.warnings[0].to_string();
        assert!(w.starts_with("w.conf:1:1: warning: smtp_alert"), "{w}");
        assert!(w.ends_with("is not supported by dpvsd, ignored"), "{w}");
    }
}

#[cfg(test)]
mod lb_kind_tests {
    use super::*;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    fn plan(kind: &str, laddr: bool, rs_port: u16) -> Result<Plan, Vec<AssembleError>> {
        let text = format!(
            "local_address_group l {{\n  10.0.0.9 eth0\n}}\nvirtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind {kind}\n  protocol TCP\n{}  real_server 10.0.0.2 {rs_port} {{\n  }}\n}}\n",
            if laddr { "  laddr_group_name l\n" } else { "" }
        );
        let loaded = load_str(&text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        assemble(&loaded.model)
    }

    #[test]
    fn every_lvs_kind_maps_to_its_forwarding_method() {
        for (kind, want) in [
            ("FNAT", Forwarding::Fnat),
            ("NAT", Forwarding::Nat),
            ("DR", Forwarding::Dr),
            ("TUN", Forwarding::Tun),
        ] {
            let p = plan(kind, true, 80).expect(kind);
            assert_eq!(p.services[0].spec.forwarding, want, "{kind}");
            let lip: IpAddr = "10.0.0.9".parse().expect("ip");
            assert_eq!(p.services[0].spec.local_addrs, [lip], "{kind}");
            assert!(p.warnings.is_empty(), "{kind}: {:?}", p.warnings);
        }
    }

    #[test]
    fn ipv6_services_take_the_ipv6_addresses_of_a_mixed_local_address_group() {
        let text = "local_address_group l {\n  10.0.0.9 eth0\n  fd00::9 eth0\n}\nvirtual_server fd00::1 80 {\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n  real_server fd00::2 8080 {\n  }\n}\n";
        let loaded = load_str(text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let p = assemble(&loaded.model).expect("IPv6 FNAT plan");
        let spec = &p.services[0].spec;
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            (spec.key.addr, spec.local_addrs.as_slice()),
            (ip("fd00::1"), &[ip("fd00::9")][..])
        );
        assert_eq!(
            p.services[0].servers[0].spec.addr,
            "[fd00::2]:8080".parse().expect("sa")
        );
    }

    #[test]
    fn nat64_services_take_ipv4_local_addresses_when_the_group_has_no_ipv6() {
        let text = "local_address_group l {\n  10.0.0.9 eth0\n}\nvirtual_server fd00::1 80 {\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n  real_server 10.0.0.2 8080 {\n  }\n}\n";
        let loaded = load_str(text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let p = assemble(&loaded.model).expect("NAT64 plan");
        let lip: IpAddr = "10.0.0.9".parse().expect("ip");
        assert_eq!(p.services[0].spec.local_addrs, [lip]);
    }

    #[test]
    fn vlan_devices_bind_the_vip_and_local_addresses_to_their_vlan() {
        let dev = |port, vlan| Some(Device { port, vlan });
        assert_eq!(device_of("dpdk0.100"), dev(0, 100));
        assert_eq!(device_of("eth0.4094"), dev(0, 4094));
        assert_eq!(device_of("dpdk1"), dev(1, 0));
        assert_eq!(device_of("dpdk2.7"), dev(2, 7));
        for dev in [
            "dpdk0",
            "dpdk0.kni",
            "dpdk1.kni",
            "dpdk0.0",
            "dpdk0.4095",
            "x.-1",
            "eth1",
        ] {
            assert_eq!(device_of(dev), None, "{dev}");
        }
        let text = "local_address_group l {\n  10.0.0.9 dpdk0.200\n  10.0.0.10 dpdk0\n}\nvirtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind FNAT\n  protocol TCP\n  laddr_group_name l\n  vip_bind_dev dpdk0.100\n  real_server 10.0.0.2 80 {\n  }\n}\n";
        let loaded = load_str(text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("plan");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let vlan = |vlan| Device { port: 0, vlan };
        assert_eq!(
            plan.services[0].devices,
            vec![(ip("10.0.0.1"), vlan(100)), (ip("10.0.0.9"), vlan(200))]
        );
    }

    #[test]
    fn a_vrrp_dpdk_interface_binds_the_instances_vips_to_its_device() {
        let vs = |vip: &str, bind: &str| {
            format!("virtual_server {vip} 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{bind}  real_server 10.0.0.2 80 {{\n  }}\n}}\n")
        };
        let text = format!(
            "vrrp_instance v {{\n  interface dpdk0.kni\n  dpdk_interface dpdk0.100\n  virtual_router_id 1\n  priority 100\n  virtual_ipaddress {{\n    10.0.0.1\n    10.0.0.3\n  }}\n  virtual_ipaddress_excluded {{\n    10.0.0.4\n  }}\n}}\n\
             vrrp_instance w {{\n  interface dpdk0.kni\n  dpdk_interface dpdk0\n  virtual_router_id 2\n  priority 100\n  virtual_ipaddress {{\n    10.0.0.5\n  }}\n}}\n\
             vrrp_instance x {{\n  interface dpdk1.kni\n  dpdk_interface dpdk1\n  virtual_router_id 3\n  priority 100\n  virtual_ipaddress {{\n    10.0.0.6\n  }}\n}}\n{}{}{}{}{}{}",
            vs("10.0.0.1", ""),
            vs("10.0.0.3", "  vip_bind_dev dpdk0.300\n"),
            vs("10.0.0.4", ""),
            vs("10.0.0.5", ""),
            vs("10.0.0.6", ""),
            vs("10.0.0.7", "  vip_bind_dev dpdk1.7\n")
        );
        let loaded = load_str(&text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("plan");
        let devices: Vec<Vec<(IpAddr, Device)>> =
            plan.services.iter().map(|s| s.devices.clone()).collect();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let vlan = |vlan| Device { port: 0, vlan };
        assert_eq!(
            devices,
            [
                vec![(ip("10.0.0.1"), vlan(100))],
                // vip_bind_dev wins.
                vec![(ip("10.0.0.3"), vlan(300))],
                vec![(ip("10.0.0.4"), vlan(100))],
                // The first port, untagged.
                vec![],
                // The second port (two-arm), and a VLAN on it.
                vec![(ip("10.0.0.6"), Device { port: 1, vlan: 0 })],
                vec![(ip("10.0.0.7"), Device { port: 1, vlan: 7 })],
            ]
        );
    }

    #[test]
    fn only_fnat_needs_local_addresses() {
        for kind in ["NAT", "DR", "TUN"] {
            let p = plan(kind, false, 80).expect(kind);
            assert!(p.services[0].spec.local_addrs.is_empty(), "{kind}");
        }
        let e = plan("FNAT", false, 80).expect_err("FNAT without laddr");
        assert!(e[0].message.contains("laddr_group_name"), "{e:?}");
    }

    #[test]
    fn snat_outside_a_match_service_is_refused_with_its_location() {
        let e = plan("SNAT", true, 80).expect_err("SNAT");
        assert_eq!(
            e[0].to_string(),
            "k.conf:4:1: error: lb_kind SNAT needs a `virtual_server match` service"
        );
    }

    /// The plan of config `text` and its services' keys.
    fn plan_keys(text: &str) -> (Plan, Vec<String>) {
        let loaded = load_str(text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("plan");
        let keys = plan
            .services
            .iter()
            .map(|s| s.spec.key.to_string())
            .collect();
        (plan, keys)
    }

    #[test]
    fn match_services_lower_to_snat_specs_keyed_by_ordinal() {
        let text = "virtual_server match A {\n  protocol UDP\n  lb_algo rr\n  src-range 192.168.100.0-192.168.100.254\n  dst-range 0.0.0.0:53\n  oif dpdk0\n  real_server 123.1.2.3 0 {\n    weight 4\n  }\n}\n\
             virtual_server match B {\n  protocol ICMP\n  lb_algo wrr\n  lb_kind SNAT\n  src-range 192.168.100.1-192.168.100.254\n  dst-range 123.1.2.0-123.1.2.254\n  real_server 123.1.2.3 0 {\n  }\n}\n\
             virtual_server match C {\n  protocol UDP\n  lb_algo rr\n  src-range 192.168.101.0-192.168.101.254\n  real_server 123.1.2.4 0 {\n  }\n}\n";
        let (plan, keys) = plan_keys(text);
        assert_eq!(keys, ["UDP 0.0.0.0:1", "ICMP 0.0.0.0:1", "UDP 0.0.0.0:2"]);
        let a = &plan.services[0].spec;
        assert_eq!(a.forwarding, Forwarding::Snat);
        let m = a.snat.as_deref().expect("match");
        assert_eq!(
            m.to_string(),
            "src-range=192.168.100.0-192.168.100.254,dst-range=0.0.0.0:53-53,oif=dpdk0"
        );
        assert_eq!(
            m.gateway, None,
            "the daemon fills it from the kernel's routes"
        );
        assert_eq!(
            plan.services[0].servers[0].spec.addr.to_string(),
            "123.1.2.3:0"
        );

        // What one interface cannot honour, and bad ranges, are errors.
        let bad = "virtual_server match X {\n  protocol UDP\n  lb_algo rr\n  src-range 10.0.0.9-10.0.0.1\n  real_server 1.2.3.4 0 {\n  }\n}\n\
             virtual_server match Y {\n  protocol TCP\n  lb_algo rr\n  iif eth0\n  oif eth1\n  real_server 1.2.3.4 80 {\n  }\n}\n\
             virtual_server match Z {\n  protocol ICMPV6\n  lb_algo rr\n  real_server 1.2.3.4 0 {\n  }\n}\n";
        let loaded = load_str(bad, Path::new("k.conf"), &LoadOptions::default());
        let e = assemble(&loaded.model).expect_err("bad");
        let e: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            e[0].starts_with("k.conf:1:1: error: src-range 10.0.0.9-10.0.0.1: empty range"),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l
                    .starts_with("k.conf:8:1: error: iif eth0 and oif eth1 name two interfaces")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|l| l.starts_with(
                "k.conf:16:1: error: real_server 1.2.3.4 and protocol ICMPV6 are of two address families"
            )),
            "{e:?}"
        );
    }

    #[test]
    fn ipv6_match_services_lower_and_mixed_families_are_refused() {
        let text = "virtual_server match A6 {\n  protocol TCP\n  lb_algo rr\n  src-range [fd00:100::-fd00:100::ffff]\n  dst-range [2001:db8::1-2001:db8::ff]:80\n  real_server 2001:db8:1::3 0 {\n  }\n}\n\
             virtual_server match P6 {\n  protocol ICMPV6\n  lb_algo rr\n  lb_kind SNAT\n  src-range [fd00:100::-fd00:100::ffff]\n  real_server 2001:db8:1::3 0 {\n  }\n}\n\
             virtual_server match A4 {\n  protocol TCP\n  lb_algo rr\n  real_server 123.1.2.3 0 {\n  }\n}\n";
        let (plan, keys) = plan_keys(text);
        assert_eq!(keys, ["TCP [::]:1", "ICMPV6 [::]:1", "TCP 0.0.0.0:2"]);
        let m = plan.services[0].spec.snat.as_deref().expect("match");
        assert_eq!(
            m.to_string(),
            "src-range=fd00:100::-fd00:100::ffff,dst-range=2001:db8::1-2001:db8::ff:80-80"
        );
        let bad = "virtual_server match X {\n  protocol UDP\n  lb_algo rr\n  src-range [fd00::1-fd00::9]\n  real_server 1.2.3.4 0 {\n  }\n}\n\
             virtual_server match Y {\n  protocol ICMP\n  lb_algo rr\n  real_server 2001:db8::3 0 {\n  }\n}\n";
        let loaded = load_str(bad, Path::new("k.conf"), &LoadOptions::default());
        let e = assemble(&loaded.model).expect_err("bad");
        let e: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            e,
            [
                "k.conf:1:1: error: src-range fd00::1 and real_server 1.2.3.4 are of two address families: a match service is IPv4 or IPv6",
                "k.conf:8:1: error: real_server 2001:db8::3 and protocol ICMP are of two address families: a match service is IPv4 or IPv6",
            ]
        );
    }

    #[test]
    fn the_dpvs_tutorial_snat_configs_assemble_two_arm_too() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/dpvs");
        let one = dir.join("tutorial__SNAT-Mode-two-arm__match.conf");
        let Ok(text) = std::fs::read_to_string(&one) else {
            println!("SKIP: {} is absent", one.display());
            return;
        };
        let loaded = load_str(&text, &one, &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        // Inside hosts on dpdk0, the WAN (oif) on dpdk1: both services'
        // SNAT address is bound to port 1.
        let plan = assemble(&loaded.model).expect("two-arm SNAT");
        let port1 = Device { port: 1, vlan: 0 };
        for s in &plan.services {
            assert_eq!(s.devices, [("123.1.2.1".parse().expect("ip"), port1)]);
        }
        let aw = dir.join("tutorial__SNAT-Mode-two-arm__match-alpha-omega.conf");
        let text = std::fs::read_to_string(&aw).unwrap_or_default();
        let loaded = load_str(&text, &aw, &LoadOptions::default());
        let plan = assemble(&loaded.model).expect("alpha/omega SNAT");
        let s = &plan.services[0];
        assert_eq!(s.spec.forwarding, Forwarding::Snat);
        assert!(s.quorum.up_script.is_some() && s.quorum.omega);
        assert_eq!(s.servers[0].subject.checks.len(), 1, "MISC_CHECK kept");
    }

    #[test]
    fn persistence_maps_timeout_and_granularity() {
        let conf = |extra: &str| {
            format!("virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{extra}  real_server 10.0.0.2 80 {{\n  }}\n}}\n")
        };
        let persistence = |text: &str| {
            let loaded = load_str(text, Path::new("k.conf"), &LoadOptions::default());
            assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
            assemble(&loaded.model).expect("plan").services[0]
                .spec
                .persistence
        };
        assert_eq!(persistence(&conf("")), None);
        assert_eq!(
            persistence(&conf("  persistence_timeout 50\n")),
            Some(Persistence {
                timeout_s: 50,
                granularity: 32
            })
        );
        assert_eq!(
            persistence(&conf(
                "  persistence_timeout 50\n  persistence_granularity 255.255.255.0\n"
            )),
            Some(Persistence {
                timeout_s: 50,
                granularity: 24
            })
        );
    }
}

#[cfg(test)]
mod checker_tests {
    use super::*;
    use keepalived_parser::{load_str_with, Dialect, LoadOptions, ParseMode};
    use std::path::Path;

    fn checks(rs_body: &str, dialect: Dialect) -> Vec<CheckSpec> {
        let text = format!("virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  real_server 10.0.0.2 80 {{\n    weight 3\n{rs_body}  }}\n}}\n");
        let mode = ParseMode {
            dialect,
            ..ParseMode::default()
        };
        let loaded = load_str_with(&text, Path::new("c.conf"), &LoadOptions::default(), mode);
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("plan");
        plan.services[0].servers[0].subject.checks.clone()
    }

    #[test]
    fn misc_dynamic_is_absolute_only_in_the_dpvs_dialect() {
        let body = "    MISC_CHECK {\n      misc_path /bin/true\n      misc_dynamic\n    }\n";
        for (dialect, absolute) in [(Dialect::default(), false), (Dialect::Dpvs, true)] {
            let c = checks(body, dialect);
            let CheckKind::Misc(m) = &c[0].kind else {
                panic!("MISC_CHECK expected: {c:?}");
            };
            assert!(m.dynamic, "{dialect:?}");
            assert_eq!(m.absolute_weight, absolute, "{dialect:?}");
            assert_eq!(m.weight, 3);
        }
    }

    #[test]
    fn source_keywords_reach_the_checker() {
        let body = "    TCP_CHECK {\n      bindto 10.0.0.9\n      bind_port 4000\n      bind_if eth1\n      fwmark 7\n      log_all_failures\n    }\n";
        let c = &checks(body, Dialect::default())[0];
        assert_eq!(c.bind, Some("10.0.0.9".parse().expect("ip")));
        assert_eq!(c.bind_port, Some(4000));
        assert_eq!(c.bind_if.as_deref(), Some("eth1"));
        assert_eq!(c.fwmark, Some(7));
        assert!(c.log_all_failures);
    }
}

#[cfg(test)]
mod conn_option_tests {
    use super::*;
    use keepalived_parser::{load_str, LoadOptions};
    use std::path::Path;

    /// The spec of a DR virtual server with the DPVS keywords `extra`.
    fn spec(extra: &str) -> ServiceSpec {
        let text = format!(
            "virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{extra}  real_server 10.0.0.2 80 {{\n  }}\n}}\n"
        );
        let loaded = load_str(&text, Path::new("k.conf"), &LoadOptions::default());
        assert!(loaded.is_runnable(), "{:?}", loaded.diagnostics);
        let plan = assemble(&loaded.model).expect("assembles");
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        plan.services[0].spec.clone()
    }

    #[test]
    fn establish_timeout_and_expire_quiescent_conn_reach_the_service() {
        let s = spec("");
        assert_eq!((s.establish_timeout_s, s.expire_quiescent), (None, false));
        let s = spec("  establish_timeout 120\n  expire_quiescent_conn\n");
        assert_eq!(
            (s.establish_timeout_s, s.expire_quiescent),
            (Some(120), true)
        );
        // DPVS's clamp (by the parser) is what reaches the dataplane.
        assert_eq!(spec("  establish_timeout 0\n").establish_timeout_s, Some(1));
        assert_eq!(
            spec("  establish_timeout 99999\n").establish_timeout_s,
            Some(3600)
        );
    }
}
