//! `UDP_CHECK`: send one datagram and look at what comes back.
//!
//! Without `require_reply` the check passes unless the port is refused (an
//! ICMP port unreachable, reported on the connected socket) within
//! `connect_timeout`; silence is success, as in keepalived. With it, a reply
//! must arrive in time, have an allowed length and start with the pattern.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::error::{IoStage, ProbeError};
use crate::spec::UdpSpec;

/// The largest reply buffer (a UDP payload cannot be larger).
const MAX_DATAGRAM: usize = 65_536;

/// A UDP socket bound to `bind` (else the unspecified address of the
/// target's family) and connected to `target`, after sending `payload` on it.
pub(crate) async fn send_connected(
    target: SocketAddr,
    source: crate::tcp::Source,
    payload: &[u8],
) -> Result<UdpSocket, ProbeError> {
    let socket = crate::tcp::socket(target, source, socket2::Type::DGRAM, socket2::Protocol::UDP)?;
    let socket =
        UdpSocket::from_std(socket.into()).map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    socket
        .connect(target)
        .await
        .map_err(|e| ProbeError::io(IoStage::Connect, &e))?;
    socket
        .send(payload)
        .await
        .map_err(|e| ProbeError::io(IoStage::Send, &e))?;
    Ok(socket)
}

pub(crate) async fn probe(
    target: SocketAddr,
    source: crate::tcp::Source,
    timeout: Duration,
    udp: &UdpSpec,
) -> Result<(), ProbeError> {
    let socket = send_connected(target, source, &udp.payload).await?;

    // One byte more than allowed, to tell an over-long reply from a full one.
    let mut buf = vec![0u8; udp.max_reply_length.saturating_add(1).min(MAX_DATAGRAM)];
    let len = match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Err(_elapsed) if udp.require_reply.is_none() => return Ok(()),
        Err(_elapsed) => return Err(ProbeError::NoReply { after: timeout }),
        Ok(Err(e)) => return Err(ProbeError::io(IoStage::Receive, &e)),
        Ok(Ok(len)) => len,
    };
    let Some(pattern) = &udp.require_reply else {
        return Ok(());
    };
    let reply = buf.get(..len).unwrap_or(&buf);
    if len < udp.min_reply_length || len > udp.max_reply_length {
        return Err(ProbeError::BadReply {
            message: format!(
                "length {} outside {}..={}",
                if len >= buf.len() {
                    format!("over {}", udp.max_reply_length)
                } else {
                    len.to_string()
                },
                udp.min_reply_length,
                udp.max_reply_length
            ),
        });
    }
    if !pattern.matches(reply) {
        return Err(ProbeError::BadReply {
            message: format!("{} does not match require_reply", crate::http::hex(reply)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ReplyPattern;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A responder that answers each datagram with `reply`, `count` times.
    async fn responder(
        reply: Vec<u8>,
        count: usize,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut last = Vec::new();
            let mut buf = [0u8; 2048];
            for _ in 0..count {
                let (n, peer) = socket.recv_from(&mut buf).await.expect("recv");
                last = buf[..n].to_vec();
                socket.send_to(&reply, peer).await.expect("send");
            }
            last
        });
        (addr, task)
    }

    fn require(hex: &str) -> UdpSpec {
        UdpSpec {
            payload: b"ping".to_vec(),
            require_reply: Some(ReplyPattern::parse_hex(hex).expect("pattern")),
            ..UdpSpec::default()
        }
    }

    #[tokio::test]
    async fn matching_reply_passes_and_payload_is_sent() {
        let (addr, task) = responder(b"\x01\x02pong".to_vec(), 1).await;
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &require("01x2")).await,
            Ok(())
        );
        assert_eq!(task.await.expect("responder"), b"ping");
    }

    #[tokio::test]
    async fn mismatching_reply_fails() {
        let (addr, _task) = responder(b"\x02\x02".to_vec(), 1).await;
        let err = probe(addr, Default::default(), TIMEOUT, &require("01x2"))
            .await
            .expect_err("mismatch");
        assert_eq!(
            err,
            ProbeError::BadReply {
                message: "0202 does not match require_reply".into()
            }
        );
    }

    #[tokio::test]
    async fn reply_length_limits() {
        let (addr, _task) = responder(vec![0xaa; 10], 2).await;
        let mut spec = require("aa");
        spec.max_reply_length = 4;
        let err = probe(addr, Default::default(), TIMEOUT, &spec)
            .await
            .expect_err("too long");
        assert_eq!(
            err.to_string(),
            "unexpected reply: length over 4 outside 0..=4"
        );
        spec.max_reply_length = 255;
        spec.min_reply_length = 11;
        let err = probe(addr, Default::default(), TIMEOUT, &spec)
            .await
            .expect_err("too short");
        assert_eq!(
            err.to_string(),
            "unexpected reply: length 10 outside 11..=255"
        );
    }

    #[tokio::test]
    async fn silence_passes_without_require_reply_and_fails_with_it() {
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = silent.local_addr().expect("addr");
        let short = Duration::from_millis(200);
        assert_eq!(
            probe(addr, Default::default(), short, &UdpSpec::default()).await,
            Ok(())
        );
        assert_eq!(
            probe(addr, Default::default(), short, &require("")).await,
            Err(ProbeError::NoReply { after: short })
        );
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        drop(socket);
        assert_eq!(
            probe(addr, Default::default(), TIMEOUT, &UdpSpec::default()).await,
            Err(ProbeError::Refused)
        );
    }
}
