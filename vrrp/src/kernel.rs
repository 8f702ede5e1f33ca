//! The kernel as VIP owner, for VRRP used on its own (keepalived `--vrrp`):
//! `virtual_ipaddress` entries are added and removed with rtnetlink, with
//! their `dev`, `label`, `scope` and `brd`, and so are `virtual_routes` and
//! `virtual_rules`; gratuitous ARPs and unsolicited NAs go out through an
//! `AF_PACKET` socket.
//!
//! Everything is bound to the network namespace of the thread that calls
//! [`KernelVipOwner::new`] (the netlink and packet sockets are opened there).
#![allow(unsafe_code)]

use crate::driver::VipOwner;
use crate::instance::{RouteKind, RouteSpec, RuleSpec, VipSpec};
use crate::wire::{gratuitous_arp, unsolicited_na};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope, RouteType};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Owns VIPs in the kernel of the current network namespace.
#[derive(Debug)]
pub struct KernelVipOwner {
    handle: rtnetlink::Handle,
    packet: OwnedFd,
}

fn other(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(err.to_string())
}

/// The errno of a netlink error, if it is one.
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn ifindex(dev: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(dev).map_err(|e| io::Error::other(format!("{dev}: {e}")))
}

/// The MAC address of `dev`.
pub fn interface_mac(dev: &str) -> Option<[u8; 6]> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if ifa.interface_name != dev {
            return None;
        }
        ifa.address?.as_link_addr()?.addr()
    })
}

/// The netlink message that adds or deletes `vip` on `index`.
fn address_message(index: u32, vip: &VipSpec) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = vip.prefix_len;
    msg.header.scope = AddressScope::from(vip.scope.unwrap_or(0));
    match vip.addr {
        IpAddr::V4(a) => {
            msg.header.family = rtnetlink::packet_route::AddressFamily::Inet;
            msg.attributes.push(AddressAttribute::Local(a.into()));
            msg.attributes.push(AddressAttribute::Address(a.into()));
            if let Some(IpAddr::V4(b)) = vip.broadcast {
                msg.attributes.push(AddressAttribute::Broadcast(b));
            }
        }
        IpAddr::V6(a) => {
            msg.header.family = rtnetlink::packet_route::AddressFamily::Inet6;
            // keepalived adds IPv6 VIPs without duplicate address detection.
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Local(a.into()));
            msg.attributes.push(AddressAttribute::Address(a.into()));
        }
    }
    if let Some(l) = &vip.label {
        msg.attributes.push(AddressAttribute::Label(l.clone()));
    }
    msg
}

/// The netlink message that adds or deletes a `virtual_routes` entry;
/// `interface` is the device when the route names neither `dev` nor `via`.
fn route_message(interface: &str, r: &RouteSpec) -> io::Result<RouteMessage> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dest, r.prefix_len)
        .map_err(other)?;
    if let Some(via) = r.via {
        b = b.gateway(via).map_err(other)?;
    }
    if let Some(src) = r.src {
        b = b.pref_source(src).map_err(other)?;
    }
    let dev = match (&r.dev, r.via, r.kind) {
        (Some(d), _, _) => Some(d.as_str()),
        (None, None, RouteKind::Unicast) => Some(interface),
        _ => None,
    };
    if let Some(d) = dev {
        b = b.output_interface(ifindex(d)?);
    }
    if let Some(t) = r.table {
        b = b.table_id(t);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    let kind = match r.kind {
        RouteKind::Unicast => RouteType::Unicast,
        RouteKind::Blackhole => RouteType::BlackHole,
        RouteKind::Unreachable => RouteType::Unreachable,
        RouteKind::Prohibit => RouteType::Prohibit,
    };
    // As `ip route`: a unicast route without a gateway is on-link.
    let scope = match r.scope {
        Some(s) => RouteScope::from(s),
        None if r.kind == RouteKind::Unicast && r.via.is_none() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    Ok(b.kind(kind).scope(scope).build())
}

/// The netlink message that adds or deletes a `virtual_rules` entry.
fn rule_message(r: &RuleSpec) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = if r.v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    msg.header.action = RuleAction::ToTable;
    if let Some((a, len)) = r.from {
        msg.header.src_len = len;
        msg.attributes.push(RuleAttribute::Source(a));
    }
    if let Some((a, len)) = r.to {
        msg.header.dst_len = len;
        msg.attributes.push(RuleAttribute::Destination(a));
    }
    msg.header.table = u8::try_from(r.table).unwrap_or(0);
    msg.attributes.push(RuleAttribute::Table(r.table));
    msg.attributes.push(RuleAttribute::Priority(r.preference));
    msg
}

impl KernelVipOwner {
    /// Opens the netlink and packet sockets in the current thread's network
    /// namespace. Must be called inside a tokio runtime (the netlink
    /// connection is spawned on it).
    ///
    /// # Errors
    /// When a socket cannot be opened (not root, no `CAP_NET_ADMIN`/`CAP_NET_RAW`).
    pub fn new() -> io::Result<KernelVipOwner> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        // SAFETY: plain socket(2) call; the returned fd is checked and then
        // owned by exactly one OwnedFd.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly opened descriptor nobody else owns.
        let packet = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(KernelVipOwner { handle, packet })
    }

    /// Sends one Ethernet frame (header included) out of `index`.
    fn send_frame(&self, index: u32, frame: &[u8]) -> io::Result<()> {
        let dst = frame.get(..6).ok_or_else(|| other("short frame"))?;
        let proto = frame.get(12..14).ok_or_else(|| other("short frame"))?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = u16::from_ne_bytes([proto[0], proto[1]]);
        sll.sll_ifindex = i32::try_from(index).map_err(other)?;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(dst);
        // SAFETY: the fd is a valid packet socket owned by self; the buffer
        // and the address point at live memory of the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.packet.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The addresses configured on `dev` (for tests and status).
    ///
    /// # Errors
    /// When the interface does not exist or netlink fails.
    pub async fn addresses(&self, dev: &str) -> io::Result<Vec<(IpAddr, u8)>> {
        let index = ifindex(dev)?;
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(other)? {
            for attr in &msg.attributes {
                if let AddressAttribute::Address(a) = attr {
                    out.push((*a, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }
}

impl VipOwner for KernelVipOwner {
    async fn take(&mut self, interface: &str, vips: &[VipSpec]) -> io::Result<()> {
        let mut first_err = None;
        for vip in vips {
            let dev = vip.dev.as_deref().unwrap_or(interface);
            let res = match ifindex(dev) {
                Ok(index) => {
                    let mut req = self.handle.address().add(index, vip.addr, vip.prefix_len);
                    *req.message_mut() = address_message(index, vip);
                    match req.replace().execute().await {
                        Ok(()) => Ok(()),
                        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
                        Err(e) => Err(io::Error::other(format!("add {} dev {dev}: {e}", vip.addr))),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn release(&mut self, interface: &str, vips: &[VipSpec]) -> io::Result<()> {
        let mut first_err = None;
        for vip in vips {
            let dev = vip.dev.as_deref().unwrap_or(interface);
            let Ok(index) = ifindex(dev) else {
                continue; // the device is gone, and the address with it
            };
            let res = self
                .handle
                .address()
                .del(address_message(index, vip))
                .execute()
                .await;
            match res {
                Ok(()) => {}
                Err(e) if matches!(errno(&e), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {}
                Err(e) => {
                    first_err.get_or_insert(io::Error::other(format!(
                        "delete {} dev {dev}: {e}",
                        vip.addr
                    )));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn take_routes(
        &mut self,
        interface: &str,
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> io::Result<()> {
        let mut first_err = None;
        for r in routes {
            let res = match route_message(interface, r) {
                Ok(msg) => match self.handle.route().add(msg).replace().execute().await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(other(format!("add route {}/{}: {e}", r.dest, r.prefix_len))),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        for r in rules {
            let mut req = self.handle.rule().add();
            *req.message_mut() = rule_message(r);
            match req.execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => {
                    first_err.get_or_insert(other(format!("add rule pref {}: {e}", r.preference)));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn release_routes(
        &mut self,
        interface: &str,
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> io::Result<()> {
        let mut first_err = None;
        let gone = |e: &rtnetlink::Error| {
            matches!(errno(e), Some(libc::ESRCH | libc::ENOENT | libc::ENODEV))
        };
        for r in rules {
            match self.handle.rule().del(rule_message(r)).execute().await {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => {
                    first_err
                        .get_or_insert(other(format!("delete rule pref {}: {e}", r.preference)));
                }
            }
        }
        for r in routes {
            // A missing device means the route is gone with it.
            let Ok(msg) = route_message(interface, r) else {
                continue;
            };
            match self.handle.route().del(msg).execute().await {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => {
                    first_err.get_or_insert(other(format!(
                        "delete route {}/{}: {e}",
                        r.dest, r.prefix_len
                    )));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn announce(&mut self, interface: &str, vips: &[VipSpec], count: u32) -> io::Result<()> {
        let mut first_err = None;
        for _ in 0..count {
            for vip in vips {
                let dev = vip.dev.as_deref().unwrap_or(interface);
                let res = ifindex(dev).and_then(|index| {
                    let mac = interface_mac(dev)
                        .ok_or_else(|| other(format!("{dev}: no MAC address")))?;
                    match vip.addr {
                        IpAddr::V4(a) => self.send_frame(index, &gratuitous_arp(mac, a)),
                        IpAddr::V6(a) => self.send_frame(index, &unsolicited_na(mac, a)),
                    }
                });
                if let Err(e) = res {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn address_message_carries_the_vip_options() {
        let mut v = VipSpec::new(Ipv4Addr::new(10, 99, 0, 100).into());
        v.prefix_len = 24;
        v.label = Some("eth0:vip".into());
        v.scope = Some(253);
        v.broadcast = Some(Ipv4Addr::new(10, 99, 0, 255).into());
        let m = address_message(7, &v);
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.header.scope, AddressScope::Link);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Label("eth0:vip".into())));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(10, 99, 0, 255))));
        let m6 = address_message(7, &VipSpec::new(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(m6.header.prefix_len, 128);
        assert_eq!(m6.header.flags, AddressHeaderFlags::Nodad);
        assert!(!m6
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
    }
}
