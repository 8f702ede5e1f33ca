//! dpvsd: a DPVS/keepalived-compatible L4 load balancer.
//!
//! ```text
//! keepalived.conf ─► keepalived_parser::load_file ─► Model ─► assemble ─► Plan ─► daemon::run
//!                                                                                  ├─ dataplane (workers)
//!                                                                                  ├─ healthcheck (tokio)
//!                                                                                  └─ control socket (ctl)
//! ```
//! `dpvsctl` speaks [`ctl`] to the daemon and renders with [`render`].

pub mod assemble;
pub mod ctl;
pub mod daemon;
pub mod notify;
pub mod reload;
pub mod render;
