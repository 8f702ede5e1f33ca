//! keepalived-compatible health checking for dpvsd.
//!
//! A *subject* (one real server of one virtual server) has one or more
//! checkers and is up only when every checker is up (keepalived's rule).
//! Rise/fall logic is sans-IO with time passed in; the tokio driver does the
//! probing and reports [`HealthEvent`]s. Nothing here knows about the
//! dataplane or the config parser: `dpvsd::assemble` builds the specs and maps
//! events to dataplane commands.
