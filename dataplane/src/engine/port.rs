//! Several ports per worker, as DPVS's "two-arm" deployment: clients on
//! `dpdk0` (the VIPs there), real servers on `dpdk1` (the local addresses
//! there), each port with its own MAC.
//!
//! The snapshot says which port each VIP and local address is on
//! ([`Snapshot::addr_ports`](super::Snapshot::addr_ports); unlisted: port 0), as it says their VLAN
//! (`vlan.rs`). The worker hands the engine each port's bursts
//! ([`Engine::handle_burst_on`]); frames are for us when addressed to the
//! MAC of the port they came on, and leave (with that port's MAC as
//! source) on:
//!
//! - to a real server (its MAC is a neighbour's): the port its last ARP
//!   reply / neighbor advertisement came on;
//! - otherwise by their source address: the port of the VIP a reply to a
//!   client comes from, of the address an ARP or ND answer is for (only
//!   answered on that address's port), of the address a solicitation is
//!   sent from (neighbours are asked on their source's port), of the
//!   address a gratuitous ARP announces, when it is another than port 0;
//! - otherwise, for an IP packet, the port whose network (its interface
//!   address's, [`Snapshot::port_nets`](super::Snapshot::port_nets)) holds the destination: an inside
//!   host behind `dpdk1` that two-arm SNAT replies to;
//! - otherwise port 0.
//!
//! With one port nothing here runs: [`Engine::handle_burst_on`] compares
//! once per burst and runs its pipeline built without the routing.

use std::net::{IpAddr, Ipv4Addr};

use super::{Engine, Family, Side, ETH_LEN, MAX_NEIGHBOURS};
use crate::io::Burst;
use crate::wire::{EtherType, EthernetFrame, MacAddr};

/// Bytes of an 802.1Q tag.
const TAG_LEN: usize = 4;

impl Engine {
    /// The MACs of the ports this engine's worker polls (index = port
    /// number; the first is the one given to [`Engine::new`]). Without
    /// this call the engine has one port.
    pub fn set_port_macs(&mut self, macs: &[MacAddr]) {
        let Some(&first) = macs.first() else {
            return;
        };
        self.macs = macs.to_vec();
        self.v4.macs = macs.to_vec();
        self.v6.macs = macs.to_vec();
        self.mac = first;
        self.v4.mac = first;
        self.v6.mac = first;
        self.neigh_ports = super::vlan::neighbour_map();
    }

    /// The number of ports ([`Engine::set_port_macs`]).
    pub fn port_count(&self) -> usize {
        self.macs.len()
    }

    /// The frames that follow come from port `port`: they are ours when
    /// addressed to its MAC.
    pub(super) fn receive_on(&mut self, port: u16) {
        if let Some(&mac) = self.macs.get(usize::from(port)) {
            self.rx_port = port;
            self.mac = mac;
        }
    }

    /// Whether our address `ip` lives where the frame being handled came
    /// from (its port and VLAN): only there are its ARP and ND answered.
    pub(super) fn on_rx_link(&self, ip: impl Into<IpAddr>) -> bool {
        let ip = ip.into();
        self.snap.vlan_of(ip) == self.rx_vlan && self.snap.port_of(ip) == self.rx_port
    }

    /// Remembers the port a neighbour's (`known`) `mac` answered on, while
    /// there are several.
    pub(super) fn learn_port(&mut self, known: bool, mac: MacAddr) {
        if !known || self.macs.len() < 2 {
            return;
        }
        if self.neigh_ports.len() < MAX_NEIGHBOURS || self.neigh_ports.contains_key(&mac) {
            self.neigh_ports.insert(mac, self.rx_port);
        }
    }

    /// The port a frame we send leaves on (see the module doc).
    fn egress_port(&self, frame: &[u8]) -> u16 {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return 0;
        };
        if let Some(&p) = self.neigh_ports.get(&eth.dst_addr()) {
            return p;
        }
        let Some((ethertype, l3)) = network_layer(frame) else {
            return 0;
        };
        match source_of(ethertype, l3).map(|ip| self.snap.port_of(ip)) {
            Some(port) if port != 0 => port,
            // An IP packet to the network of another port (an inside host
            // SNAT replies to) leaves there.
            _ => super::vlan::l3_address(ethertype, l3, 16, 24)
                .and_then(|ip| self.snap.port_net_of(ip))
                .map_or(0, |device| device.port),
        }
    }

    /// A frame we send (`None`: too short to be one): the port it leaves
    /// on, its source MAC set to that port's.
    #[cold]
    #[inline(never)]
    pub(super) fn route(&self, frame: Option<&mut [u8]>) -> u16 {
        let Some(frame) = frame else {
            return 0;
        };
        let port = self.egress_port(frame);
        if let (Some(mac), Ok(mut eth)) = (
            self.macs.get(usize::from(port)),
            EthernetFrame::new_checked(frame),
        ) {
            eth.set_src_addr(*mac);
        }
        port
    }

    /// Marks the control frames appended to `ctl` since it held `from`
    /// with the port they leave on ([`Engine::route`]), with several ports.
    pub(super) fn route_ctl(&self, ctl: &mut Burst, from: usize) {
        if self.macs.len() < 2 {
            return;
        }
        for f in ctl.frames_mut().iter_mut().skip(from) {
            let len = f.len();
            let port = self.route(f.buffer_mut().get_mut(..len));
            f.set_port(port);
        }
    }
}

impl<A: Family> Side<A> {
    /// Port `port`'s MAC.
    pub(super) fn port_mac(&self, port: u16) -> MacAddr {
        self.macs
            .get(usize::from(port))
            .copied()
            .unwrap_or(self.mac)
    }
}

/// A frame's EtherType and network layer, past one 802.1Q tag.
fn network_layer(frame: &[u8]) -> Option<(EtherType, &[u8])> {
    let ethertype = EthernetFrame::new_checked(frame).ok()?.ethertype();
    let l3 = frame.get(ETH_LEN..)?;
    match ethertype {
        EtherType::Vlan => {
            let t = u16::from_be_bytes([*l3.get(2)?, *l3.get(3)?]);
            Some((EtherType::from(t), l3.get(TAG_LEN..)?))
        }
        t => Some((t, l3)),
    }
}

/// The source address of a network layer `l3` of EtherType `ethertype`:
/// an ARP packet's sender, an IPv4 or IPv6 packet's source.
fn source_of(ethertype: EtherType, l3: &[u8]) -> Option<IpAddr> {
    match ethertype {
        // The sender protocol address.
        EtherType::Arp => {
            let b: [u8; 4] = l3.get(14..18)?.try_into().ok()?;
            Some(Ipv4Addr::from(b).into())
        }
        t => super::vlan::l3_address(t, l3, 12, 8),
    }
}
