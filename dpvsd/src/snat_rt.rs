//! SNAT match services at run time (assemble/snat.rs lowers them): their
//! `iif` / `oif` must name the interface the dataplane forwards on, or
//! with DPDK ports it drives (`dpdk1`: two-arm), and their outbound
//! packets need a next hop.
//!
//! The next hop is the gateway of the kernel's route towards the service's
//! destinations (the first address of `dst-range`, else the default
//! route) on the kernel side of the `oif` (the forwarding interface, or
//! the TAP of the `oif` port), read from
//! `/proc/net/route` (IPv4, the main table) or `/proc/net/ipv6_route`
//! (IPv6) when the daemon starts or reloads: as DPVS needs `dpip route add
//! default via GATEWAY dev dpdk1`, dpvsd needs `ip [-6] route add default
//! via GATEWAY dev IFACE`. The dataplane
//! resolves the gateway's MAC like a real server's. A route change is
//! picked up by `dpvsctl reload`. Destinations on the interface's own
//! subnet (no gateway) are not supported: there is one next hop per service.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::assemble::{device_of, Plan};

/// `dpdk0`, DPVS's name of its first port, also names the interface the
/// dataplane forwards on.
const DPVS_PORT: &str = "dpdk0";

/// Route flags (`linux/route.h`, `linux/ipv6_route.h`).
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
const RTF_REJECT: u32 = 0x200;

/// One route of the kernel's main table: interface, destination prefix
/// and its length, gateway (`None`: on-link).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route<A> {
    iface: String,
    dst: A,
    prefix: u32,
    gw: Option<A>,
}

/// An address as a number of [`Prefixed::BITS`] bits, for prefix matches.
trait Prefixed: Copy {
    const BITS: u32;
    fn bits(self) -> u128;
}

impl Prefixed for Ipv4Addr {
    const BITS: u32 = 32;
    fn bits(self) -> u128 {
        u128::from(u32::from(self))
    }
}

impl Prefixed for Ipv6Addr {
    const BITS: u32 = 128;
    fn bits(self) -> u128 {
        u128::from(self)
    }
}

/// A route from its fields, when it is up and not a reject route.
fn route<A: Prefixed>(iface: &str, dst: A, prefix: u32, gw: A, flags: u32) -> Option<Route<A>> {
    if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 || prefix > A::BITS {
        return None;
    }
    Some(Route {
        iface: iface.to_string(),
        dst,
        prefix,
        gw: (flags & RTF_GATEWAY != 0).then_some(gw),
    })
}

/// Parses `/proc/net/route` text (addresses in the kernel's byte order):
/// interface, destination, gateway, flags, …, mask.
fn parse_routes(text: &str) -> Vec<Route<Ipv4Addr>> {
    let addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dst, gw, mask) = (addr(f.get(1)?)?, addr(f.get(2)?)?, addr(f.get(7)?)?);
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            route(f.first()?, dst, u32::from(mask).count_ones(), gw, flags)
        })
        .collect()
}

/// Parses `/proc/net/ipv6_route` text (no header; all hex, addresses in
/// network order): destination, its prefix length, source, its prefix
/// length, next hop, metric, reference count, use, flags, interface.
fn parse_routes6(text: &str) -> Vec<Route<Ipv6Addr>> {
    let addr = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dst, prefix) = (addr(f.first()?)?, hex(f.get(1)?)?);
            let (gw, flags) = (addr(f.get(4)?)?, hex(f.get(8)?)?);
            route(f.get(9)?, dst, prefix, gw, flags)
        })
        .collect()
}

/// The longest-prefix route to `to` on `iface` (either family).
fn route_to<'a, A: Prefixed>(routes: &'a [Route<A>], iface: &str, to: A) -> Option<&'a Route<A>> {
    let top = |a: A, prefix: u32| a.bits().checked_shr(A::BITS - prefix).unwrap_or(0);
    routes
        .iter()
        .filter(|r| r.iface == iface && top(to, r.prefix) == top(r.dst, r.prefix))
        .max_by_key(|r| r.prefix)
}

/// The kernel's routes of both families, read when first needed.
#[derive(Default)]
struct Routes {
    v4: Option<Vec<Route<Ipv4Addr>>>,
    v6: Option<Vec<Route<Ipv6Addr>>>,
}

impl Routes {
    /// The gateway of the longest-prefix route to `to` on `iface`
    /// (`None`: no route, or an on-link one).
    fn gateway(&mut self, iface: &str, to: IpAddr) -> Option<IpAddr> {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        match to {
            IpAddr::V4(to) => {
                let routes = self
                    .v4
                    .get_or_insert_with(|| parse_routes(&read("/proc/net/route")));
                route_to(routes, iface, to)?.gw.map(IpAddr::V4)
            }
            IpAddr::V6(to) => {
                let routes = self
                    .v6
                    .get_or_insert_with(|| parse_routes6(&read("/proc/net/ipv6_route")));
                route_to(routes, iface, to)?.gw.map(IpAddr::V6)
            }
        }
    }
}

/// Checks the match services of `plan` against the forwarding interface
/// `forward_if` and the ports dpvsd drives (`ports`: the DPDK ports, or
/// the one interface), and fills their gateways from the routes of the
/// kernel side of their `oif` (`kernel_if(port)`: the interface itself
/// for AF_PACKET, the port's exception TAP for DPDK; a VLAN device on it
/// for `dpdk1.100`). Nothing to do without an interface (nothing is
/// forwarded).
///
/// # Errors
/// One line per problem, naming the `virtual_server`'s location.
pub fn resolve(
    plan: &mut Plan,
    forward_if: Option<&str>,
    ports: usize,
    kernel_if: impl Fn(u16) -> Option<String>,
) -> Result<(), Vec<String>> {
    let Some(forward_if) = forward_if else {
        return Ok(());
    };
    let mut routes = Routes::default();
    let mut errors = Vec::new();
    for svc in &mut plan.services {
        let Some(m) = svc.spec.snat.as_deref_mut() else {
            continue;
        };
        let loc = &svc.location;
        for (what, name) in [("iif", &m.iif), ("oif", &m.oif)] {
            let Some(name) = name
                .as_deref()
                .filter(|n| *n != forward_if && *n != DPVS_PORT)
            else {
                continue;
            };
            match device_of(name) {
                Some(d) if usize::from(d.port) < ports => {}
                Some(_) => errors.push(format!(
                    "{loc}: error: {what} {name}: dpvsd drives {ports} port(s) (dpdk0 … as --dpdk-port is given)"
                )),
                None => errors.push(format!(
                    "{loc}: error: {what} {name}: dpvsd forwards on {forward_if} only (name it, or {DPVS_PORT})"
                )),
            }
        }
        // The first destination, else the default route of the family.
        let to = match m.dst.addrs {
            Some(r) => r.first,
            None if svc.spec.key.addr.is_ipv6() => Ipv6Addr::UNSPECIFIED.into(),
            None => Ipv4Addr::UNSPECIFIED.into(),
        };
        let oif = m.oif.as_deref().and_then(device_of).unwrap_or_default();
        let kernel_if = match kernel_if(oif.port) {
            Some(k) if oif.vlan != 0 => format!("{k}.{}", oif.vlan),
            Some(k) => k,
            None => forward_if.to_string(),
        };
        match routes.gateway(&kernel_if, to) {
            Some(gw) => m.gateway = Some(gw),
            None => {
                let ip = if to.is_ipv6() { "ip -6" } else { "ip" };
                errors.push(format!(
                    "{loc}: error: SNAT needs a route with a gateway towards {to} on {kernel_if} (outbound packets go to it), e.g. `{ip} route add default via GATEWAY dev {kernel_if}`"
                ));
            }
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
        let gw = |to: [u8; 4]| route_to(&r, "eth0", to.into()).and_then(|x| x.gw);
        assert_eq!(gw([8, 8, 8, 8]), Some(Ipv4Addr::new(123, 1, 2, 1)));
        assert_eq!(gw([192, 168, 7, 1]), Some(Ipv4Addr::new(192, 168, 100, 1)));
        // On-link: no gateway.
        assert_eq!(gw([123, 1, 2, 9]), None);
        assert!(route_to(&r, "eth2", Ipv4Addr::UNSPECIFIED).is_none());
    }

    /// This machine's `/proc/net/ipv6_route`, with a route to
    /// 2001:db8:2::/64 via fd00::3 and another interface's default added.
    const ROUTES6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
20010db8000200000000000000000000 40 00000000000000000000000000000000 00 fd000000000000000000000000000003 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd010000000000000000000000000001 00000400 00000003 00000000 00000003     eth1
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn the_ipv6_gateway_is_the_longest_prefix_routes() {
        let r = parse_routes6(ROUTES6);
        // The unreachable default on lo (RTF_REJECT) is not a route.
        assert_eq!(r.len(), 8);
        let ip = |s: &str| s.parse::<Ipv6Addr>().expect("ip");
        let gw = |to: &str| route_to(&r, "eth0", ip(to)).and_then(|x| x.gw);
        assert_eq!(gw("2001:db8:9::1"), Some(ip("fd00::1")), "default");
        assert_eq!(gw("2001:db8:2::3"), Some(ip("fd00::3")), "the /64");
        assert_eq!(gw("::"), Some(ip("fd00::1")));
        // On-link and multicast: no gateway.
        assert_eq!(gw("fd00::9"), None);
        assert_eq!(gw("ff02::1"), None);
        assert_eq!(
            route_to(&r, "eth1", ip("2001:db8:2::3")).and_then(|x| x.gw),
            Some(ip("fd01::1"))
        );
        assert!(route_to(&r, "eth2", ip("::")).is_none());
        // Both families choose with the one function: a /0 matches all,
        // a /32 (/128) one address.
        let host = Route {
            iface: "eth0".into(),
            dst: Ipv4Addr::new(10, 0, 0, 1),
            prefix: 32,
            gw: Some(Ipv4Addr::new(10, 0, 0, 254)),
        };
        let hosts = [host];
        assert!(route_to(&hosts, "eth0", Ipv4Addr::new(10, 0, 0, 1)).is_some());
        assert!(route_to(&hosts, "eth0", Ipv4Addr::new(10, 0, 0, 2)).is_none());
    }
}
