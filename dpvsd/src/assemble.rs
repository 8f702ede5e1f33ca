//! `Model → Plan`: maps keepalived concepts onto the subsystems' specs.
//!
//! Pure: no I/O, no clock. Everything dpvsd cannot run yet is an
//! [`AssembleError`] naming the config location, never silently dropped.

use std::net::{IpAddr, SocketAddr};

use dataplane::{Forwarding, Protocol, RealServerSpec, Scheduler, ServiceKey, ServiceSpec};
use healthcheck::{CheckKind, CheckSpec, SubjectId, SubjectSpec};
use keepalived_parser::model::{self, CheckerKind, LbAlgo, LbKind, Model};
use keepalived_parser::Location;

/// What the daemon runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub spec: ServiceSpec,
    pub servers: Vec<ServerPlan>,
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
/// Every virtual server that uses something dpvsd does not support yet.
pub fn assemble(model: &Model) -> Result<Plan, Vec<AssembleError>> {
    let mut errors = Vec::new();
    let mut services = Vec::new();
    let mut next_subject = 0u64;
    for vs in &model.virtual_servers {
        match service(model, vs, &mut next_subject) {
            Ok(s) => services.push(s),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(Plan { services })
    } else {
        Err(errors)
    }
}

fn service(
    model: &Model,
    vs: &model::VirtualServer,
    next_subject: &mut u64,
) -> Result<ServicePlan, Vec<AssembleError>> {
    let loc = &vs.location;
    let mut errors = Vec::new();
    let protocol = match vs.protocol {
        model::Protocol::Tcp => Some(Protocol::Tcp),
        model::Protocol::Udp => Some(Protocol::Udp),
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
        other => {
            errors.push(err(
                loc,
                format!("lb_algo {other:?} is not supported by dpvsd yet (rr and wrr are)"),
            ));
            None
        }
    };
    if vs.lb_kind != LbKind::Fnat {
        errors.push(err(
            loc,
            format!(
                "lb_kind {:?} is not supported by dpvsd yet (FNAT is)",
                vs.lb_kind
            ),
        ));
    }
    let local_addrs: Vec<IpAddr> = match &vs.laddr_group_name {
        None => {
            errors.push(err(
                loc,
                "FNAT needs local addresses: set laddr_group_name".into(),
            ));
            Vec::new()
        }
        Some(name) => match model.local_address_groups.iter().find(|g| &g.name == name) {
            Some(g) => g.addresses.iter().map(|a| a.addr).collect(),
            None => {
                errors.push(err(
                    loc,
                    format!("local_address_group '{name}' is not defined"),
                ));
                Vec::new()
            }
        },
    };
    let (Some(protocol), Some(scheduler), true) = (protocol, scheduler, errors.is_empty()) else {
        return Err(errors);
    };
    let key = ServiceKey {
        addr: vs.addr,
        port: vs.port,
        protocol,
    };
    let servers = vs
        .real_servers
        .iter()
        .map(|rs| {
            let addr = SocketAddr::new(rs.addr, rs.port);
            let id = SubjectId(*next_subject);
            *next_subject += 1;
            ServerPlan {
                spec: RealServerSpec {
                    addr,
                    weight: rs.weight,
                },
                inhibit_on_failure: rs.inhibit_on_failure,
                subject: SubjectSpec {
                    id,
                    name: format!("[{}]:{} of {key}", rs.addr, rs.port),
                    checks: rs.checkers.iter().map(check).collect(),
                },
            }
        })
        .collect();
    Ok(ServicePlan {
        spec: ServiceSpec {
            key,
            scheduler,
            forwarding: Forwarding::Fnat,
            local_addrs,
        },
        servers,
    })
}

fn check(c: &model::Checker) -> CheckSpec {
    CheckSpec {
        kind: match c.kind {
            CheckerKind::Tcp => CheckKind::Tcp,
        },
        target: SocketAddr::new(c.connect_ip, c.connect_port),
        bind: c.bindto,
        connect_timeout: c.connect_timeout,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
        delay_loop: c.delay_loop,
        warmup: c.warmup,
        alpha: c.alpha,
    }
}
