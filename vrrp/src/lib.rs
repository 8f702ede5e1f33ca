//! VRRPv2/v3 for dpvsd.
//!
//! **Placeholder.** The walking skeleton has no VRRP. This crate exists so the
//! workspace has its final shape: the vrrp issue adds the wire codec
//! (RFC 3768 / RFC 5798), the sans-IO instance state machine with injected
//! time, sync groups, trackers and a tokio driver here. It will depend on
//! nothing else in the workspace; `dpvsd::assemble` maps `vrrp_instance`
//! blocks onto its `InstanceSpec`.
