//! VRRPv2/v3 for dpvsd, wire-compatible with keepalived 2.2.7.
//!
//! Layers, bottom up:
//! - [`wire`]: packet views and representations (VRRP, the IP header around
//!   it, gratuitous ARP and unsolicited NA), tested byte-exact against
//!   keepalived captures.
//! - [`instance`]: the sans-IO state machine of one virtual router
//!   (INIT/BACKUP/MASTER/FAULT) with injected time, its trackers and
//!   counters; [`group`] moves sync-group members together.
//! - [`driver`]: the tokio driver (raw sockets, timers, trackers) with VIP
//!   ownership behind [`driver::VipOwner`]; [`kernel`] is the kernel's.
//!
//! This crate depends on nothing else in the workspace: `dpvsd::assemble`
//! maps `vrrp_instance` blocks onto [`instance::InstanceSpec`].

pub mod driver;
pub mod group;
pub mod instance;
pub mod kernel;
pub mod track;
mod trackers;
pub mod wire;
