//! SNAT match services at run time (assemble/snat.rs lowers them): their
//! `iif` / `oif` must name the interface the dataplane forwards on (it
//! forwards on one), and their outbound packets need a next hop.
//!
//! The next hop is the gateway of the kernel's route towards the service's
//! destinations (the first address of `dst-range`, else the default
//! route) on the kernel side of the forwarding interface, read from
//! `/proc/net/route` (the main table) when the daemon starts or reloads:
//! as DPVS needs `dpip route add default via GATEWAY dev dpdk1`, dpvsd
//! needs `ip route add default via GATEWAY dev IFACE`. The dataplane
//! resolves the gateway's MAC like a real server's. A route change is
//! picked up by `dpvsctl reload`. Destinations on the interface's own
//! subnet (no gateway) are not supported: there is one next hop per service.

use std::net::{IpAddr, Ipv4Addr};

use crate::assemble::Plan;

/// `dpdk0`, DPVS's name of its first port, also names the interface the
/// dataplane forwards on.
const DPVS_PORT: &str = "dpdk0";

/// One IPv4 route of `/proc/net/route`: interface, destination, mask,
/// gateway (`None`: on-link).
type Route = (String, Ipv4Addr, Ipv4Addr, Option<Ipv4Addr>);

/// Parses `/proc/net/route` text (addresses in the kernel's byte order).
fn parse_routes(text: &str) -> Vec<Route> {
    let addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dst, gw, flags, mask) = (
                addr(f.get(1)?)?,
                addr(f.get(2)?)?,
                f.get(3)?,
                addr(f.get(7)?)?,
            );
            let flags = u16::from_str_radix(flags, 16).ok()?;
            const RTF_UP: u16 = 1;
            const RTF_GATEWAY: u16 = 2;
            if flags & RTF_UP == 0 {
                return None;
            }
            let gw = (flags & RTF_GATEWAY != 0).then_some(gw);
            Some(((*f.first()?).to_string(), dst, mask, gw))
        })
        .collect()
}

/// The longest-prefix route to `to` on `iface`.
fn route_to<'a>(routes: &'a [Route], iface: &str, to: Ipv4Addr) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|(i, dst, mask, _)| {
            i == iface && u32::from(to) & u32::from(*mask) == u32::from(*dst)
        })
        .max_by_key(|(_, _, mask, _)| u32::from(*mask).count_ones())
}

/// Checks the match services of `plan` against the forwarding interface
/// `forward_if` and fills their gateways from the routes of
/// `kernel_if` (the same interface for AF_PACKET, the exception TAP for
/// DPDK). Nothing to do without an interface (nothing is forwarded).
///
/// # Errors
/// One line per problem, naming the `virtual_server`'s location.
pub fn resolve(
    plan: &mut Plan,
    forward_if: Option<&str>,
    kernel_if: Option<&str>,
) -> Result<(), Vec<String>> {
    let Some(forward_if) = forward_if else {
        return Ok(());
    };
    let mut routes: Option<Vec<Route>> = None;
    let mut errors = Vec::new();
    for svc in &mut plan.services {
        let Some(m) = svc.spec.snat.as_deref_mut() else {
            continue;
        };
        let loc = &svc.location;
        for (what, name) in [("iif", &m.iif), ("oif", &m.oif)] {
            if let Some(name) = name
                .as_deref()
                .filter(|n| *n != forward_if && *n != DPVS_PORT)
            {
                errors.push(format!(
                    "{loc}: error: {what} {name}: dpvsd forwards on {forward_if} only (name it, or {DPVS_PORT})"
                ));
            }
        }
        let to = match m.dst.addrs.map(|r| r.first) {
            Some(IpAddr::V4(a)) => a,
            Some(IpAddr::V6(_)) => {
                errors.push(format!(
                    "{loc}: error: IPv6 SNAT gateways are not looked up by dpvsd yet"
                ));
                continue;
            }
            None => Ipv4Addr::UNSPECIFIED,
        };
        let kernel_if = kernel_if.unwrap_or(forward_if);
        let routes = routes.get_or_insert_with(|| {
            parse_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
        });
        match route_to(routes, kernel_if, to) {
            Some((_, _, _, Some(gw))) => m.gateway = Some(IpAddr::V4(*gw)),
            _ => errors.push(format!(
                "{loc}: error: SNAT needs a route with a gateway towards {to} on {kernel_if} (outbound packets go to it), e.g. `ip route add default via GATEWAY dev {kernel_if}`"
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0102017B\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0002017B\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t0000A8C0\t0164A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t00000000\t010A0A0A\t0003\t0\t0\t0\t00000000\t0\t0\t0
";

    #[test]
    fn the_gateway_is_the_longest_prefix_routes() {
        if cfg!(target_endian = "big") {
            return;
        }
        let r = parse_routes(ROUTES);
        assert_eq!(r.len(), 4);
        let gw = |to: [u8; 4]| route_to(&r, "eth0", to.into()).and_then(|x| x.3);
        assert_eq!(gw([8, 8, 8, 8]), Some(Ipv4Addr::new(123, 1, 2, 1)));
        assert_eq!(gw([192, 168, 7, 1]), Some(Ipv4Addr::new(192, 168, 100, 1)));
        // On-link: no gateway.
        assert_eq!(gw([123, 1, 2, 9]), None);
        assert!(route_to(&r, "eth2", Ipv4Addr::UNSPECIFIED).is_none());
    }
}
