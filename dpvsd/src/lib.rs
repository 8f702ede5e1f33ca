//! dpvsd: a DPVS/keepalived-compatible L4 load balancer.
//!
//! ```text
//! keepalived.conf ─► keepalived_parser::load_file ─► Model ─► assemble ─► Plan ─► daemon::run
//!                                                                                  ├─ dataplane (workers)
//!                                                                                  ├─ healthcheck (tokio)
//!                                                                                  ├─ VRRP driver (vrrp_rt)
//!                                                                                  ├─ OSPF speaker (ospf_rt, announce)
//!                                                                                  ├─ control socket (ctl)
//!                                                                                  └─ Prometheus metrics (metrics)
//! ```
//! `dpvsctl` speaks [`ctl`] to the daemon and renders with [`render`].

pub mod announce;
pub mod assemble;
pub mod backend;
pub mod bench;
pub mod ctl;
pub mod daemon;
pub mod dump;
pub mod gen;
pub mod info;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ospf_rt;
pub mod reload;
pub mod render;
pub mod snat_rt;
pub mod vrrp_rt;
