//! 802.1Q VLANs, as DPVS's VLAN devices (`dpip vlan add dpdk0.100 link
//! dpdk0 id 100`) with VIPs and local addresses bound to them.
//!
//! The snapshot says which VLAN each VIP and local address is on
//! ([`Snapshot::addr_vlans`]). A tagged frame on a known VLAN is untagged in
//! place (the MAC addresses move 4 bytes on), handled as an untagged one,
//! and leaves on the VLAN of where it goes:
//!
//! - to a real server (its MAC is a neighbour's): the VLAN its last ARP
//!   reply / neighbor advertisement came on (first asked on the VLAN of the
//!   address we ask from: the LIP, or the interface address);
//! - otherwise (to a client): the VLAN of the frame's IP source, i.e. the
//!   VIP the reply comes from; untagged when that is on no VLAN;
//! - ARP and ND answers: the VLAN they were asked on. Requests are only
//!   answered for addresses on the VLAN they came on (untagged ones for
//!   untagged addresses).
//!
//! A frame that grows by the tag (untagged in, tagged out) needs room as
//! TUN does ([`Engine::handle_frame`], [`Engine::handle_burst`]).
//! Gratuitous ARP, unsolicited NA and solicitations for addresses on a VLAN
//! carry its tag. Tagged frames on other VLANs (and priority-only tags, id
//! 0) are dropped as `unknown_vlan`, stacked tags as `vlan_stacked`.
//! Without VLANs configured the untagged path does one extra compare per
//! forwarded frame.

use super::{Dir, Engine, MacAddr, Side, Snapshot, Stage, Verdict, ETH_LEN, MAX_NEIGHBOURS};
use crate::fasthash::FastMap;
use crate::io::Burst;
use crate::stats::Drop;
use crate::wire::{EtherType, EthernetFrame, VlanTag};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Family;

const TPID: [u8; 2] = [0x81, 0x00];
/// 802.1ad service tag (QinQ outer tag).
const TPID_QINQ: u16 = 0x88a8;
/// Bytes of an 802.1Q tag.
const TAG_LEN: usize = 4;
/// Where the tag goes: after the two MAC addresses.
const MACS_LEN: usize = 12;

/// The engine's MAC → VLAN map of neighbours, reserved up front.
pub(super) fn neighbour_map() -> FastMap<MacAddr, u16> {
    let mut m = FastMap::default();
    m.reserve(MAX_NEIGHBOURS);
    m
}

/// Moves the untagged frame `buf[at..at + len]` (`at` is 0 or
/// [`TAG_LEN`]) to the start of `buf`, tagged with `vlan` (priority
/// `pcp`) unless `vlan` is 0. Returns its new length, or `None` when there
/// is no room for the tag.
fn place(buf: &mut [u8], at: usize, len: usize, vlan: u16, pcp: u8) -> Option<usize> {
    if len < ETH_LEN || buf.len() < at + len {
        return None;
    }
    if vlan == 0 {
        buf.copy_within(at..at + len, 0);
        return Some(len);
    }
    if at == 0 {
        if buf.len() < len + TAG_LEN {
            return None;
        }
        // The EtherType and what follows move behind the tag.
        buf.copy_within(MACS_LEN..len, MACS_LEN + TAG_LEN);
    } else {
        buf.copy_within(at..at + MACS_LEN, 0);
    }
    buf[MACS_LEN..MACS_LEN + 2].copy_from_slice(&TPID);
    // The tag's EtherType (the inner one) is in place already; only the
    // TCI is written.
    let mut tag = VlanTag::new_unchecked(&mut buf[ETH_LEN..ETH_LEN + TAG_LEN]);
    tag.set_vlan_id(vlan);
    tag.set_pcp(pcp);
    tag.set_dei(false);
    Some(len + TAG_LEN)
}

/// Tags the last frame of `ctl` (just pushed) with `vlan` (0: none).
pub(super) fn tag_last(ctl: &mut Burst, vlan: u16) {
    if vlan == 0 {
        return;
    }
    if let Some(f) = ctl.frames_mut().last_mut() {
        let len = f.len();
        if let Some(n) = place(&mut f.buffer_mut()[..], 0, len, vlan, 0) {
            f.set_len(n);
        }
    }
}

/// [`Family::solicit`] on `vlan`; false when `ctl` is full.
pub(super) fn solicit<A: Family>(
    ctl: &mut Burst,
    mac: MacAddr,
    source: A,
    target: A,
    vlan: u16,
) -> bool {
    let sent = A::solicit(ctl, mac, source, target);
    if sent {
        tag_last(ctl, vlan);
    }
    sent
}

/// The IP source of an untagged frame, when it is IPv4 or IPv6.
fn ip_source(frame: &[u8]) -> Option<IpAddr> {
    ip_address(frame, 12, 8)
}

/// The IP destination of an untagged frame, when it is IPv4 or IPv6.
fn ip_destination(frame: &[u8]) -> Option<IpAddr> {
    ip_address(frame, 16, 24)
}

/// The IPv4 address at `at4` or the IPv6 address at `at6` of an untagged
/// frame's IP header.
fn ip_address(frame: &[u8], at4: usize, at6: usize) -> Option<IpAddr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    l3_address(eth.ethertype(), eth.payload(), at4, at6)
}

/// The IPv4 address at `at4` or the IPv6 address at `at6` of the IP
/// header `l3` of EtherType `ethertype`.
pub(super) fn l3_address(
    ethertype: EtherType,
    l3: &[u8],
    at4: usize,
    at6: usize,
) -> Option<IpAddr> {
    match ethertype {
        EtherType::Ipv4 => {
            let b: [u8; 4] = l3.get(at4..at4 + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(b).into())
        }
        EtherType::Ipv6 => {
            let b: [u8; 16] = l3.get(at6..at6 + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(b).into())
        }
        _ => None,
    }
}

impl<A: Family> Side<A> {
    /// After the VLAN bindings changed from `old`'s to `snap`'s: a
    /// neighbour asked from an address whose binding changed, or last seen
    /// on a VLAN no longer configured, is asked on its source's VLAN again.
    fn revlan(&mut self, old: &Snapshot, snap: &Snapshot) {
        for n in self.neighbours.values_mut() {
            let vlan = snap.vlan_of(n.source);
            let gone = n.vlan != 0 && snap.vlan_ids.binary_search(&n.vlan).is_err();
            if gone || old.vlan_of(n.source) != vlan {
                n.vlan = vlan;
            }
        }
    }
}

impl Engine {
    /// The VLAN bindings changed from `old`'s: neighbours' VLANs are
    /// reset where their binding changed ([`Side::revlan`]) and the
    /// MAC → VLAN map is rebuilt from them, so nothing is sent on a stale
    /// VLAN (e.g. after a reload removed a `vip_bind_dev`).
    pub(super) fn revlan(&mut self, old: &Snapshot) {
        self.v4.revlan(old, &self.snap);
        self.v6.revlan(old, &self.snap);
        self.neigh_vlans.clear();
        if self.snap.vlan_ids.is_empty() {
            return;
        }
        let learnt = self.v4.neighbours.values().map(|n| (n.mac, n.vlan));
        let learnt = learnt.chain(self.v6.neighbours.values().map(|n| (n.mac, n.vlan)));
        for (mac, vlan) in learnt {
            let Some(mac) = mac else { continue };
            if self.neigh_vlans.len() < MAX_NEIGHBOURS || self.neigh_vlans.contains_key(&mac) {
                self.neigh_vlans.insert(mac, vlan);
            }
        }
    }

    /// Remembers the VLAN a neighbour's (`known`) `mac` answered on, while
    /// VLANs are configured.
    pub(super) fn learn_vlan(&mut self, known: bool, mac: MacAddr) {
        if !known || self.snap.vlan_ids.is_empty() {
            return;
        }
        if self.neigh_vlans.len() < MAX_NEIGHBOURS || self.neigh_vlans.contains_key(&mac) {
            self.neigh_vlans.insert(mac, self.rx_vlan);
        }
    }

    /// The VLAN a forwarded untagged frame leaves on (0: untagged).
    fn egress_vlan(&self, stage: &Stage, frame: &[u8]) -> u16 {
        if matches!(stage, Stage::Arp | Stage::Nd) {
            return self.rx_vlan;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return 0;
        };
        if let Some(&v) = self.neigh_vlans.get(&eth.dst_addr()) {
            return v;
        }
        match ip_source(frame).map_or(0, |ip| self.snap.vlan_of(ip)) {
            // From none of ours on a VLAN: to a host on a VLAN device's
            // network (an inside host SNAT replies to), on that VLAN.
            0 => ip_destination(frame)
                .and_then(|ip| self.snap.port_net_of(ip))
                .map_or(0, |device| device.vlan),
            v => v,
        }
    }

    /// An untagged frame forwarded as `buf[..len]`: tagged when it leaves
    /// on a VLAN.
    #[cold]
    #[inline(never)]
    pub(super) fn tag_egress(
        &mut self,
        stage: &Stage,
        buf: &mut [u8],
        len: usize,
    ) -> (Verdict, usize) {
        let vlan = self.egress_vlan(stage, &buf[..len]);
        if vlan == 0 {
            return (Verdict::Forward, len);
        }
        match place(buf, 0, len, vlan, 0) {
            Some(n) => (Verdict::Forward, n),
            None => {
                self.drops.count(Drop::NoRoom);
                (Verdict::Drop(Drop::NoRoom), len)
            }
        }
    }

    /// An untagged frame (`buf[..len]`) while VLANs are configured: to a
    /// VIP bound to a VLAN it is dropped as `vlan_mismatch` (the VIP lives
    /// only on its VLAN, as on DPVS's `dpdk0.100` device; its ARP and ND
    /// are only answered there); otherwise handled, and tagged when it
    /// leaves on a VLAN.
    #[cold]
    #[inline(never)]
    pub(super) fn finish_untagged_on_vlans(
        &mut self,
        stage: &Stage,
        buf: &mut [u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        if self.to_vlan_vip(stage, buf.get(..len).unwrap_or_default()) {
            return self.vlan_drop(Drop::VlanMismatch, len);
        }
        let (verdict, len) = self.finish_untagged(stage, buf, len, now_ms, ctl);
        if verdict == Verdict::Forward {
            return self.tag_egress(stage, buf, len);
        }
        (verdict, len)
    }

    /// Whether a classified frame is addressed to one of our VIPs that is
    /// bound to a VLAN.
    fn to_vlan_vip(&self, stage: &Stage, frame: &[u8]) -> bool {
        let vip: IpAddr = match stage {
            Stage::Ipv4(p) if p.dir == Dir::In && !p.transit => p.key.dst.into(),
            Stage::Ipv6(p) if p.dir == Dir::In && !p.transit => p.key.dst.into(),
            Stage::Icmp {
                dir: Dir::In,
                transit: false,
            }
            | Stage::Icmp6 {
                dir: Dir::In,
                transit: false,
            } => match ip_destination(frame) {
                Some(ip) => ip,
                None => return false,
            },
            _ => return false,
        };
        self.snap.vlan_of(vip) != 0
    }

    fn vlan_drop(&self, reason: Drop, len: usize) -> (Verdict, usize) {
        self.drops.count(reason);
        (Verdict::Drop(reason), len)
    }

    /// A tagged frame `buf[..len]`: untagged in place, handled, and tagged
    /// again for where it goes. Frames left to the kernel are given back
    /// as they came.
    #[cold]
    #[inline(never)]
    pub(super) fn finish_vlan(
        &mut self,
        buf: &mut [u8],
        len: usize,
        now_ms: u64,
        ctl: &mut Burst,
    ) -> (Verdict, usize) {
        let len = len.min(buf.len());
        let (vid, pcp, inner) = match buf.get(ETH_LEN..len).map(VlanTag::new_checked) {
            Some(Ok(t)) => (t.vlan_id(), t.pcp(), t.ethertype()),
            _ => return self.vlan_drop(Drop::Truncated, len),
        };
        if inner == EtherType::Vlan || u16::from(inner) == TPID_QINQ {
            return self.vlan_drop(Drop::VlanStacked, len);
        }
        if vid == 0 || self.snap.vlan_ids.binary_search(&vid).is_err() {
            return self.vlan_drop(Drop::UnknownVlan, len);
        }
        let mut saved = [0u8; TAG_LEN];
        saved.copy_from_slice(&buf[MACS_LEN..MACS_LEN + TAG_LEN]);
        buf.copy_within(0..MACS_LEN, TAG_LEN);
        let stage = self.classify(&buf[TAG_LEN..len]);
        self.rx_vlan = vid;
        let (verdict, n) =
            self.finish_untagged(&stage, &mut buf[TAG_LEN..], len - TAG_LEN, now_ms, ctl);
        let out = match verdict {
            Verdict::Forward => self.egress_vlan(&stage, &buf[TAG_LEN..TAG_LEN + n]),
            _ => 0,
        };
        self.rx_vlan = 0;
        if verdict != Verdict::Forward {
            buf.copy_within(TAG_LEN..TAG_LEN + MACS_LEN, 0);
            buf[MACS_LEN..MACS_LEN + TAG_LEN].copy_from_slice(&saved);
            return (verdict, len);
        }
        match place(buf, TAG_LEN, n, out, pcp) {
            Some(n) => (Verdict::Forward, n),
            None => self.vlan_drop(Drop::NoRoom, len),
        }
    }
}
