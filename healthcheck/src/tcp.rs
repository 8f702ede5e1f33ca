//! `TCP_CHECK`: connect, then close.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
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
///
/// The connect is non-blocking. When the handshake has already completed
/// by the time `connect` returns (the server is on this host, so the kernel
/// runs the whole handshake there), the probe is done without registering
/// the socket with the reactor or arming a timer, as keepalived's
/// `tcp_connect` does for an immediate success. Otherwise it waits for
/// writability within `timeout` and reads `SO_ERROR`.
pub(crate) async fn probe(
    target: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let socket = socket(target, bind)?;
    socket
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    match socket.connect(&target.into()) {
        // Dropping the socket closes the connection (RST).
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(e) => return Err(ProbeError::io(IoStage::Connect, &e)),
    }
    // To a server on this host the kernel has usually finished the handshake
    // (or been refused) by the time `connect` returns: it processes the
    // SYN-ACK queued while `connect` held the socket before returning. One
    // getpeername tells, and spares the reactor registration, its wakeup and
    // its removal.
    if socket.peer_addr().is_ok() {
        return Ok(());
    }
    if let Ok(Some(e)) = socket.take_error() {
        return Err(ProbeError::io(IoStage::Connect, &e));
    }
    let stream =
        TcpStream::from_std(socket.into()).map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    match tokio::time::timeout(timeout, stream.writable()).await {
        Err(_elapsed) => Err(ProbeError::Timeout { after: timeout }),
        Ok(Err(e)) => Err(ProbeError::io(IoStage::Connect, &e)),
        Ok(Ok(())) => match stream.take_error() {
            Ok(None) => Ok(()),
            Ok(Some(e)) | Err(e) => Err(ProbeError::io(IoStage::Connect, &e)),
        },
    }
}

/// Opens a TCP connection to `target` from `bind`, when given. Unbounded in
/// time: callers wrap it in their timeout.
pub(crate) async fn connect(
    target: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<TcpStream, ProbeError> {
    TcpSocket::from_std_stream(socket(target, bind)?.into())
        .connect(target)
        .await
        .map_err(|e| ProbeError::io(IoStage::Connect, &e))
}

/// A non-blocking TCP socket of `target`'s family, bound to `bind` when
/// given.
fn socket(target: SocketAddr, bind: Option<IpAddr>) -> Result<Socket, ProbeError> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    if let Some(ip) = bind {
        if ip.is_ipv4() != target.is_ipv4() {
            return Err(ProbeError::FamilyMismatch { bind: ip, target });
        }
        socket
            .bind(&SocketAddr::new(ip, 0).into())
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

    /// A listener whose accept queue is full drops SYNs, so a probe's
    /// connect cannot complete at once. Fills the queue until a blocking
    /// connect times out; returns the listener and the filling connections
    /// (keep both alive), or `None` when the queue could not be filled.
    fn full_listener() -> Option<(TcpListener, Vec<std::net::TcpStream>)> {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(([127, 0, 0, 1], 0).into()).ok()?;
        let listener = socket.listen(0).ok()?;
        let addr = listener.local_addr().ok()?;
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Some((listener, fillers))
                }
                Err(_) => return None,
            }
        }
        None
    }

    #[tokio::test]
    async fn waits_for_a_handshake_that_does_not_complete_at_once() {
        let Some((listener, _fillers)) = full_listener() else {
            println!("SKIP: could not fill the accept queue");
            return;
        };
        let addr = listener.local_addr().expect("addr");
        let probe = tokio::spawn(probe(addr, None, TIMEOUT));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!probe.is_finished(), "the SYN should have been dropped");
        // Free the queue while the probe waits: its SYN is retransmitted
        // and the handshake completes.
        let acceptor = tokio::spawn(async move {
            let mut accepted = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                accepted.push(conn);
            }
        });
        let result = probe.await.expect("probe task");
        acceptor.abort();
        assert_eq!(result, Ok(()));
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
