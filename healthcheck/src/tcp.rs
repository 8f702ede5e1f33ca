//! `TCP_CHECK`: connect, then close.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::error::{IoStage, ProbeError};

/// Connects to `target` (from `bind`, when given) and closes the connection.
///
/// Succeeds when the three-way handshake completes within `timeout`.
///
/// The connection is closed with `SO_LINGER` 0, i.e. with a RST instead of
/// the FIN exchange: the server sees a reset instead of an orderly close, but
/// the checker's side leaves no socket in TIME_WAIT. At 10,000 checks per
/// second, 60 s of TIME_WAIT would pin 600,000 (source, destination) pairs,
/// more than the ~28,000 ephemeral ports per destination address, and the
/// kernel's port search slows down long before that.
pub(crate) async fn probe(
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let socket = socket(target, bind)?;
    socket
        .set_zero_linger()
        .map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    match tokio::time::timeout(timeout, socket.connect(target)).await {
        Err(_elapsed) => Err(ProbeError::Timeout { after: timeout }),
        Ok(Err(e)) => Err(ProbeError::io(IoStage::Connect, &e)),
        // Dropping the stream closes the connection (RST).
        Ok(Ok(_stream)) => Ok(()),
    }
}

/// Opens a TCP connection to `target` from `bind`, when given. Unbounded in
/// time: callers wrap it in their timeout.
pub(crate) async fn connect(
    target: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<TcpStream, ProbeError> {
    socket(target, bind)?
        .connect(target)
        .await
        .map_err(|e| ProbeError::io(IoStage::Connect, &e))
}

/// A TCP socket of `target`'s family, bound to `bind` when given.
fn socket(target: SocketAddr, bind: Option<IpAddr>) -> Result<TcpSocket, ProbeError> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ProbeError::io(IoStage::Socket, &e))?;

    if let Some(ip) = bind {
        if ip.is_ipv4() != target.is_ipv4() {
            return Err(ProbeError::FamilyMismatch { bind: ip, target });
        }
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| ProbeError::io(IoStage::Bind, &e))?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn connects_to_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_eq!(probe(addr, None, TIMEOUT).await, Ok(()));
        // The listener sees the connection (and it was closed again).
        let (_conn, peer) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("accept in time")
            .expect("accept");
        assert!(peer.ip().is_loopback());
    }

    #[tokio::test]
    async fn binds_to_the_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let source: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(probe(addr, Some(source), TIMEOUT).await, Ok(()));
        let (_conn, peer) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("accept in time")
            .expect("accept");
        assert_eq!(peer.ip(), source);
    }

    #[tokio::test]
    async fn closes_with_a_reset() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_eq!(probe(addr, None, TIMEOUT).await, Ok(()));
        let (mut conn, _peer) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("accept in time")
            .expect("accept");
        // An orderly close would read as EOF (Ok(0)); a RST is an error.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(TIMEOUT, conn.read(&mut buf))
            .await
            .expect("read in time");
        let err = read.expect_err("the probe must close with a reset");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn refused_when_nothing_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        assert_eq!(probe(addr, None, TIMEOUT).await, Err(ProbeError::Refused));
    }

    #[tokio::test]
    async fn family_mismatch_is_reported() {
        let target: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let bind: IpAddr = "::1".parse().expect("addr");
        assert_eq!(
            probe(target, Some(bind), TIMEOUT).await,
            Err(ProbeError::FamilyMismatch { bind, target })
        );
    }

    #[tokio::test]
    async fn bind_to_a_foreign_address_fails_at_bind() {
        // 192.0.2.1 (TEST-NET-1) is not a local address; nothing is sent.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let err = probe(addr, Some([192, 0, 2, 1].into()), TIMEOUT)
            .await
            .expect_err("bind must fail");
        assert!(
            matches!(
                err,
                ProbeError::Io {
                    stage: IoStage::Bind,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
