//! `PING_CHECK`: one ICMP echo (ICMPv6 for an IPv6 target) via surge-ping.
//!
//! The check passes when the echo reply arrives within `connect_timeout`.
//! surge-ping opens an unprivileged ICMP datagram socket when
//! `net.ipv4.ping_group_range` allows it and falls back to a raw socket
//! (root or `CAP_NET_RAW`); when neither is possible the check fails with the
//! socket error. Each probe has its own socket, closed when it ends.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};

use crate::error::{IoStage, ProbeError};
use crate::tcp::Source;

/// The echo payload (keepalived sends a small fixed payload too).
const PAYLOAD: &[u8] = b"dpvsd PING_CHECK";

fn ping_error(message: impl Into<String>) -> ProbeError {
    ProbeError::Ping {
        message: message.into(),
    }
}

pub(crate) async fn probe(
    target: IpAddr,
    source: Source,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let kind = if target.is_ipv4() { ICMP::V4 } else { ICMP::V6 };
    let mut config = Config::builder().kind(kind);
    if let Some(ip) = source.ip {
        if ip.is_ipv4() != target.is_ipv4() {
            return Err(ProbeError::FamilyMismatch {
                bind: ip,
                target: SocketAddr::new(target, 0),
            });
        }
        config = config.bind(SocketAddr::new(ip, 0));
    }
    let mut dev = None;
    if let Some(name) = &source.dev {
        let name = name.check()?;
        dev = Some(name);
        config = config.interface(name);
    }
    // surge-ping binds the device last, so ENODEV can only come from it.
    let client = Client::new(&config.build()).map_err(|e| match dev {
        Some(name) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {
            ProbeError::BindDevice {
                interface: name.into(),
                message: e.to_string(),
            }
        }
        _ => ProbeError::io(IoStage::Socket, &e),
    })?;
    let mut pinger = client.pinger(target, PingIdentifier(rand::random())).await;
    pinger.timeout(timeout);
    match pinger.ping(PingSequence(0), PAYLOAD).await {
        Ok(_reply) => Ok(()),
        Err(SurgeError::Timeout { .. }) => Err(ProbeError::NoReply { after: timeout }),
        Err(SurgeError::IOError(e)) => Err(ProbeError::io(IoStage::Send, &e)),
        Err(e) => Err(ping_error(e.to_string())),
    }
}
