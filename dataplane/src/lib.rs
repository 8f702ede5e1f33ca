//! dpvsd's forwarding engine.
//!
//! ```text
//!   control plane (any thread)                 workers (one thread each)
//!   ───────────────────────────                ─────────────────────────────
//!   Dataplane::apply(Command)                   loop {
//!     → desired state (services, servers,         new generation? → take snapshot
//!       weights, VIP ownership)                   recv burst → Engine::handle_burst → send
//!     → build Snapshot (sched tables)  ──RCU──►   housekeeping (expiry, ARP refresh)
//!     → publish                                 }
//! ```
//!
//! * [`wire`]: packet views (smoltcp style); nothing panics on bad bytes.
//! * [`conn`]: the per-worker connection table; [`sched`]: scheduler tables.
//! * [`engine`]: sans-IO forwarding (FNAT, NAT, DR, TUN, NAT64; IPv4 and IPv6;
//!   ARP and neighbor discovery responder, neighbours).
//! * [`io`]: the [`io::PacketIo`] trait and its backends (`mem`, `afpacket`).
//! * [`command`]: the one mutation API.

pub mod acl;
pub mod bench;
pub mod command;
pub mod conn;
pub mod engine;
pub mod fasthash;
pub mod io;
pub mod quic;
pub mod rate;
pub mod sched;
pub mod stats;
pub mod steer;
pub mod threshold;
pub mod wire;
pub mod worker;

mod control;
mod hugemem;
mod prefetch;

pub use command::{
    AddrRange, Command, CommandError, Device, Forwarding, MatchRange, Persistence, Protection,
    Protocol, ProxyProtocol, ProxyVersion, Quic, RealServerSpec, Scheduler, ServiceKey,
    ServiceSpec, SnatMatch, Thresholds,
};
pub use control::{
    ConnQuery, Dataplane, DataplaneConfig, DataplaneStatus, DropStat, ServerStatus, ServiceStatus,
};
