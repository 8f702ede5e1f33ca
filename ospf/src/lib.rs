//! A minimal OSPFv2 speaker for dpvsd's ECMP cluster mode.
//!
//! ```text
//!  driver (tokio, raw IP proto 89)   ── bytes, timers ──►  speaker (sans-IO, time passed in)
//!                                                           │  interface FSM, neighbour FSM,
//!                                                           │  LSDB, flooding, origination
//!                                                           ▼
//!                                                         wire (views + Repr, no panics)
//! ```
//!
//! The speaker announces VIP /32s either as stub links of its Router-LSA or
//! as AS-external (type 5, E2) LSAs, withdraws them, and flushes its LSAs on
//! shutdown. It does not compute routes.

pub mod driver;
pub mod speaker;
pub mod wire;

pub use speaker::{
    Action, AnnounceAs, AuthSpec, DropCause, IfaceIdx, InterfaceSpec, NetworkType, Speaker,
    SpeakerSpec, Status,
};
