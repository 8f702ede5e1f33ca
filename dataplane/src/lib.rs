//! dpvsd's forwarding engine.
