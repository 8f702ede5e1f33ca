//! `virtual_server match NAME` (DPVS SNAT) → the dataplane's match service
//! (`dataplane::SnatMatch`, engine/snat.rs).
//!
//! DPVS keys match services by their match; dpvsd's services are keyed by
//! (address, port, protocol), so a match service is keyed by the
//! unspecified address with the service's ordinal among the match services
//! of its protocol (1, 2, …) as the port: `UDP 0.0.0.0:1`. Listings show
//! the match next to it. Differences from DPVS, all reported with the
//! config location:
//! * `src-range` / `dst-range` that do not parse are errors (DPVS's
//!   keepalived silently clears the whole match);
//! * `iif` and `oif` naming two interfaces cannot be honoured unless
//!   they are DPDK ports (`dpdk0`, `dpdk1`, …: two-arm SNAT, the SNAT
//!   addresses and the gateway on `oif`, the inside hosts on the network
//!   of their port's TAP): with AF_PACKET dpvsd forwards on one interface
//!   (inside and outside hosts share its link); the daemon checks that the
//!   names it is given are that interface or ports it drives;
//! * a match whose ranges, real servers and protocol (ICMP is IPv4's,
//!   ICMPV6 IPv6's) are not all of one family is an error (a DPVS
//!   service has one address family too);
//! * the real servers (SNAT addresses) take port 0, as DPVS requires.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::{AddrRange, MatchRange, SnatMatch};
use keepalived_parser::model::{self, Model};

use super::{err, AssembleError};

/// The match of SNAT service `vs`, its family's unspecified address and
/// its ordinal among `model`'s match services of its protocol; errors
/// are pushed to `errors`.
pub(super) fn lower(
    model: &Model,
    vs: &model::VirtualServer,
    errors: &mut Vec<AssembleError>,
) -> Option<(IpAddr, u16, SnatMatch)> {
    let loc = &vs.location;
    let d = &vs.dpvs;
    let mut range = |what: &str, text: Option<&str>| match text.map(parse_range) {
        None => Some(MatchRange::default()),
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            errors.push(err(loc, format!("{what} {}: {e}", text.unwrap_or(""))));
            None
        }
    };
    let src = range("src-range", d.src_range.as_deref());
    let dst = range("dst-range", d.dst_range.as_deref());
    let (src, dst) = (src?, dst?);
    let before = errors.len();
    let v6 = family(vs, [src, dst], errors);
    if let (Some(i), Some(o)) = (&d.iif, &d.oif) {
        let ports = super::device_of(i).is_some() || super::device_of(o).is_some();
        if i != o && !ports {
            errors.push(err(
                loc,
                format!("iif {i} and oif {o} name two interfaces: dpvsd forwards on one (SNAT is one-arm here; with DPDK, name its ports dpdk0, dpdk1, …), so this match cannot be honoured"),
            ));
        }
    }
    for rs in vs.real_servers.iter().filter(|rs| rs.port != 0) {
        errors.push(err(
            &rs.location,
            format!(
                "real_server {} {}: the real servers of a match service are SNAT addresses and take port 0",
                rs.addr, rs.port
            ),
        ));
    }
    if errors.len() > before {
        return None;
    }
    // The ordinal: match services of this protocol up to this one.
    let ordinal = model
        .virtual_servers
        .iter()
        .take_while(|v| !std::ptr::eq(*v, vs))
        .filter(|v| v.match_name.is_some() && v.protocol == vs.protocol)
        .count()
        + 1;
    let port = u16::try_from(ordinal).unwrap_or(u16::MAX);
    let m = SnatMatch {
        src,
        dst,
        iif: d.iif.clone(),
        oif: d.oif.clone(),
        gateway: None,
    };
    let any = match v6 {
        true => IpAddr::from(Ipv6Addr::UNSPECIFIED),
        false => IpAddr::from(Ipv4Addr::UNSPECIFIED),
    };
    Some((any, port, m))
}

/// Whether match service `vs` (ranges `ranges`) is IPv6: its ranges, its
/// real servers (the SNAT addresses) and its protocol (ICMP is IPv4's,
/// ICMPV6 IPv6's) must agree; an error is pushed when they do not.
fn family(
    vs: &model::VirtualServer,
    ranges: [MatchRange; 2],
    errors: &mut Vec<AssembleError>,
) -> bool {
    let mut seen: Vec<(bool, String)> = ranges
        .iter()
        .zip(["src-range", "dst-range"])
        .filter_map(|(r, what)| {
            Some((
                r.addrs?.first.is_ipv6(),
                format!("{what} {}", r.addrs?.first),
            ))
        })
        .collect();
    seen.extend(
        vs.real_servers
            .iter()
            .map(|rs| (rs.addr.is_ipv6(), format!("real_server {}", rs.addr))),
    );
    match vs.protocol {
        model::Protocol::Icmp => seen.push((false, "protocol ICMP".into())),
        model::Protocol::Icmpv6 => seen.push((true, "protocol ICMPV6".into())),
        _ => {}
    }
    let v6 = seen.first().is_some_and(|(v6, _)| *v6);
    if let (Some((_, a)), Some((_, b))) = (seen.first(), seen.iter().find(|(f, _)| *f != v6)) {
        errors.push(err(
            &vs.location,
            format!("{a} and {b} are of two address families: a match service is IPv4 or IPv6"),
        ));
    }
    v6
}

/// DPVS's `ip1[-ip2][:port1[-port2]]` (IPv6 as `[ip1-ip2]:ports`), as
/// `inet_addr_range_parse`: one address is a range of one, a missing
/// second port is the first, port 0 (or none) means any.
pub fn parse_range(text: &str) -> Result<MatchRange, String> {
    let text = text.trim();
    let (ips, ports) = if let Some(rest) = text.strip_prefix('[') {
        let (ips, after) = rest.split_once(']').ok_or("no closing ]")?;
        let ports = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected :PORT after ]")?),
        };
        (ips, ports)
    } else if text.matches(':').count() == 1 {
        let (ips, ports) = text.split_once(':').ok_or("bad range")?;
        (ips, Some(ports))
    } else {
        (text, None)
    };
    let addrs = match ips {
        "" => None,
        ips => {
            let (a, b) = ips.rsplit_once('-').unwrap_or((ips, ips));
            let addr = |s: &str| s.parse::<IpAddr>().map_err(|_| format!("bad address {s}"));
            let (first, last) = (addr(a)?, addr(b)?);
            if first.is_ipv4() != last.is_ipv4() {
                return Err("the range mixes address families".into());
            }
            if first > last {
                return Err(format!("empty range {first}-{last}"));
            }
            Some(AddrRange { first, last })
        }
    };
    let port = |s: &str| s.parse::<u16>().map_err(|_| format!("bad port {s}"));
    let ports = match ports {
        None | Some("") => (0, u16::MAX),
        Some(p) => {
            let (a, b) = p.rsplit_once('-').unwrap_or((p, p));
            match (port(a)?, port(b)?) {
                (0, 0) => (0, u16::MAX),
                (a, b) if a <= b => (a, b),
                (a, b) => return Err(format!("empty port range {a}-{b}")),
            }
        }
    };
    Ok(MatchRange { addrs, ports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpvs_range_syntax() {
        let r = parse_range("192.168.100.0-192.168.100.254").expect("range");
        assert_eq!(
            r.addrs.map(|a| a.first.to_string()).as_deref(),
            Some("192.168.100.0")
        );
        assert_eq!(
            r.addrs.map(|a| a.last.to_string()).as_deref(),
            Some("192.168.100.254")
        );
        assert_eq!(r.ports, (0, u16::MAX));
        let r = parse_range("0.0.0.0:1-1024").expect("ports");
        assert_eq!(r.ports, (1, 1024));
        assert_eq!(parse_range("10.0.0.1:53").expect("one").ports, (53, 53));
        let r = parse_range("[fd00::1-fd00::9]:80").expect("v6");
        assert!(r.addrs.is_some_and(|a| a.first.is_ipv6()));
        assert_eq!(r.ports, (80, 80));
        for bad in [
            "10.0.0.9-10.0.0.1",
            "10.0.0.1:90-80",
            "nonsense",
            "10.0.0.1:x",
            "[fd00::1",
        ] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
