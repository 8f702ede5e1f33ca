//! `TCP_CHECK`: a full TCP handshake, then a reset; and the TCP connect
//! that `HTTP_GET`, `SSL_GET` and `SMTP_CHECK` start with.
//!
//! # How a `TCP_CHECK` probe runs ([`Prober`])
//!
//! The probes of every `TCP_CHECK` run on one thread (see `fleet`), through
//! a [`Prober`] that keeps a pool of non-blocking sockets and reuses them:
//!
//! 1. `connect(target)` on a pooled socket. To a server on this host (or
//!    behind a veth) the kernel has usually completed the handshake by the
//!    time the call returns: the SYN-ACK was queued while `connect` held the
//!    socket and is processed when it releases it.
//! 2. A second `connect(target)` tells the outcome in one system call:
//!    0 or `EISCONN` (connected), `EALREADY` (still in progress), or the
//!    error (e.g. `ECONNREFUSED`). Only a handshake still in progress is
//!    armed in the prober's epoll (one-shot) and waited for.
//! 3. `connect(AF_UNSPEC)` disconnects: the kernel sends a RST for the
//!    established connection (as keepalived's close with `SO_LINGER` 0 does,
//!    so no TIME_WAIT is left behind) and the socket returns to the `CLOSE`
//!    state, ready for the next probe. Its ephemeral port is released;
//!    `bindto`, `bind_port`, `bind_if` and `fwmark` stay set.
//!
//! So a healthy probe costs two or three system calls and no allocation,
//! where socket + `SO_LINGER` + connect + close costs four, two of which
//! allocate and free a socket. The result is the same handshake on the wire
//! as keepalived's `tcp_connect` + close.
//!
//! Without `SO_LINGER` 0 (or the disconnect) every probe would leave a socket
//! in TIME_WAIT: at 10,000 checks per second, 60 s of TIME_WAIT would pin
//! 600,000 (source, destination) pairs, more than the ~28,000 ephemeral
//! ports per destination address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::event::epoll;
use rustix::io::Errno;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use crate::error::{IoStage, ProbeError};
use crate::spec::CheckSpec;

/// The kernel's limit on an interface name, its NUL included (`IFNAMSIZ`).
const IFNAMSIZ: usize = 16;

/// A `bind_if` interface name, stored inline so that [`Source`] stays
/// `Copy` (it is the pool key of every `TCP_CHECK` socket).
///
/// A name the kernel cannot take (longer than 15 bytes; the kernel would
/// silently truncate it) is kept as its first 15 bytes plus its real length,
/// and refused when a socket is bound to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IfName {
    bytes: [u8; IFNAMSIZ - 1],
    /// The configured name's length (saturated at 255).
    len: u8,
}

impl IfName {
    pub(crate) fn new(name: &str) -> Self {
        let mut bytes = [0u8; IFNAMSIZ - 1];
        for (b, &c) in bytes.iter_mut().zip(name.as_bytes()) {
            *b = c;
        }
        IfName {
            bytes,
            len: u8::try_from(name.len()).unwrap_or(u8::MAX),
        }
    }

    /// The name, or `None` when it is too long for the kernel.
    fn get(&self) -> Option<&[u8]> {
        self.bytes.get(..usize::from(self.len))
    }

    /// The name for error texts (its first 15 bytes and `...` when too long).
    fn text(&self) -> String {
        match self.get() {
            Some(name) => String::from_utf8_lossy(name).into_owned(),
            None => format!("{}...", String::from_utf8_lossy(&self.bytes)),
        }
    }

    /// Binds `socket` to this interface (`SO_BINDTODEVICE`).
    pub(crate) fn bind(&self, socket: &Socket) -> Result<(), ProbeError> {
        let err = |message: String| ProbeError::BindDevice {
            interface: self.text(),
            message,
        };
        let name = self.get().ok_or_else(|| {
            err(format!(
                "interface names are at most {} bytes",
                IFNAMSIZ - 1
            ))
        })?;
        socket
            .bind_device(Some(name))
            .map_err(|e| err(e.to_string()))
    }

    /// Whether the interface name is usable (see [`IfName::bind`]), for
    /// checkers whose socket is opened by a library.
    pub(crate) fn check(&self) -> Result<&str, ProbeError> {
        match self.get().map(std::str::from_utf8) {
            Some(Ok(name)) => Ok(name),
            _ => Err(ProbeError::BindDevice {
                interface: self.text(),
                message: format!(
                    "not a valid interface name (at most {} bytes)",
                    IFNAMSIZ - 1
                ),
            }),
        }
    }
}

impl std::fmt::Debug for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// Where a checker's packets come from: `bindto`, `bind_port`, `bind_if`,
/// `fwmark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Source {
    /// `bindto`.
    pub ip: Option<IpAddr>,
    /// `bind_port`.
    pub port: Option<u16>,
    /// `bind_if` (`SO_BINDTODEVICE`).
    pub dev: Option<IfName>,
    /// `fwmark` (`SO_MARK`).
    pub mark: Option<u32>,
}

impl Source {
    pub(crate) fn of(spec: &CheckSpec) -> Self {
        Source {
            ip: spec.bind,
            port: spec.bind_port,
            dev: spec.bind_if.as_deref().map(IfName::new),
            mark: spec.fwmark,
        }
    }
}

/// Opens a TCP connection to `target` from `source`. Unbounded in time:
/// callers wrap it in their timeout.
pub(crate) async fn connect(target: SocketAddr, source: Source) -> Result<TcpStream, ProbeError> {
    TcpSocket::from_std_stream(socket(target, source, Type::STREAM, Protocol::TCP)?.into())
        .connect(target)
        .await
        .map_err(|e| ProbeError::io(IoStage::Connect, &e))
}

/// A non-blocking socket of `target`'s family and type `ty`, with `source`
/// applied: the mark, the interface (before the bind, so that a link-local
/// `bindto` needs no scope), then the bind (address and/or port; `SO_REUSEADDR`
/// with a fixed port, so that checkers from that port to different targets
/// can coexist, as keepalived's do).
pub(crate) fn socket(
    target: SocketAddr,
    source: Source,
    ty: Type,
    protocol: Protocol,
) -> Result<Socket, ProbeError> {
    let socket = Socket::new(
        Domain::for_address(target),
        ty.nonblocking().cloexec(),
        Some(protocol),
    )
    .map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    if let Some(mark) = source.mark {
        socket
            .set_mark(mark)
            .map_err(|e| ProbeError::io(IoStage::Socket, &e))?;
    }
    if let Some(dev) = &source.dev {
        dev.bind(&socket)?;
    }
    if source.ip.is_some() || source.port.is_some() {
        let ip = match source.ip {
            Some(ip) if ip.is_ipv4() != target.is_ipv4() => {
                return Err(ProbeError::FamilyMismatch { bind: ip, target })
            }
            Some(ip) => ip,
            None if target.is_ipv4() => IpAddr::from([0, 0, 0, 0]),
            None => IpAddr::from([0u16; 8]),
        };
        if source.port.is_some() {
            socket
                .set_reuse_address(true)
                .map_err(|e| ProbeError::io(IoStage::Bind, &e))?;
        }
        socket
            .bind(&SocketAddr::new(ip, source.port.unwrap_or(0)).into())
            .map_err(|e| ProbeError::io(IoStage::Bind, &e))?;
    }
    Ok(socket)
}

/// A pooled socket of a [`Prober`], by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SockIdx(usize);

/// What [`Prober::start`] found.
#[derive(Debug)]
pub(crate) enum Started {
    /// The probe is over (the socket is back in the pool).
    Done(Result<(), ProbeError>),
    /// The handshake is in progress on this socket; it is armed in the
    /// prober's epoll. Finish it with [`Prober::poll`] or [`Prober::abort`].
    Pending(SockIdx),
}

/// Sockets that can be reused for the next probe are pooled by family and
/// source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PoolKey {
    v6: bool,
    source: Source,
}

#[derive(Debug)]
struct Pooled {
    socket: Socket,
    key: PoolKey,
    /// Added to the epoll set (one-shot) at least once: re-arm with MOD.
    registered: bool,
}

/// Idle sockets kept per pool key; more are closed when they come back.
const MAX_IDLE: usize = 64;

/// Events fetched per `epoll_wait`.
const EVENTS: usize = 256;

/// Runs `TCP_CHECK` handshakes on pooled, reused sockets (module docs).
/// Not thread-safe by design: one thread owns it.
#[derive(Debug)]
pub(crate) struct Prober {
    epoll: std::os::fd::OwnedFd,
    socks: Vec<Option<Pooled>>,
    /// Indices of `None` entries in `socks`.
    vacant: Vec<usize>,
    /// Idle sockets per pool key (a handful of keys: a linear search
    /// beats hashing).
    idle: Vec<(PoolKey, Vec<usize>)>,
}

impl Prober {
    /// # Errors
    /// When the epoll instance cannot be created.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Prober {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            socks: Vec::new(),
            vacant: Vec::new(),
            idle: Vec::new(),
        })
    }

    /// Sockets open now (idle and in use).
    #[cfg(test)]
    pub(crate) fn open_sockets(&self) -> usize {
        self.socks.iter().flatten().count()
    }

    /// Starts a handshake with `target` from `source`.
    pub(crate) fn start(&mut self, target: SocketAddr, source: Source) -> Started {
        let key = PoolKey {
            v6: target.is_ipv6(),
            source,
        };
        // A pooled socket in an unexpected state (the disconnect of its last
        // probe did not take) is closed and the probe tried once more on a
        // fresh one.
        for _attempt in 0..2 {
            let idx = match self.take(key, target) {
                Ok(idx) => idx,
                Err(e) => return Started::Done(Err(e)),
            };
            let Some(sock) = self.sock(idx) else {
                return Started::Done(Err(ProbeError::io(
                    IoStage::Socket,
                    &io::Error::other("pooled socket vanished"),
                )));
            };
            match rustix::net::connect(sock, &target) {
                Ok(()) => return Started::Done(self.finish(idx, Ok(()))),
                Err(Errno::INPROGRESS) => {}
                Err(Errno::ISCONN | Errno::ALREADY) => {
                    self.close(idx);
                    continue;
                }
                Err(e) => return Started::Done(self.finish(idx, Err(connect_err(e)))),
            }
            return match self.outcome(idx, target) {
                Some(result) => Started::Done(self.finish(idx, result)),
                None => match self.arm(idx) {
                    Ok(()) => Started::Pending(idx),
                    Err(e) => {
                        self.abort(idx);
                        Started::Done(Err(connect_err(e)))
                    }
                },
            };
        }
        Started::Done(Err(ProbeError::io(
            IoStage::Connect,
            &io::Error::other("pooled sockets in an unexpected state"),
        )))
    }

    /// The outcome of a pending handshake, or `None` while it is still in
    /// progress; once it returns `Some`, `idx` is back in the pool. When
    /// still in progress the socket is re-armed.
    pub(crate) fn poll(
        &mut self,
        idx: SockIdx,
        target: SocketAddr,
    ) -> Option<Result<(), ProbeError>> {
        match self.outcome(idx, target) {
            Some(result) => Some(self.finish(idx, result)),
            None => {
                if let Err(e) = self.arm(idx) {
                    return Some(self.finish(idx, Err(connect_err(e))));
                }
                None
            }
        }
    }

    /// Gives up a pending handshake (timeout, or the checker was removed):
    /// the SYN_SENT socket is disconnected and returns to the pool.
    pub(crate) fn abort(&mut self, idx: SockIdx) {
        let _ignored = self.finish(idx, Ok(()));
    }

    /// Waits up to `timeout` for pending handshakes to make progress;
    /// appends the sockets that did to `ready` (possibly spuriously: check
    /// them with [`Prober::poll`]).
    pub(crate) fn wait(&mut self, timeout: Duration, ready: &mut Vec<SockIdx>) {
        let timeout =
            rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
        let empty = epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        };
        let mut events = [empty; EVENTS];
        match epoll::wait(&self.epoll, &mut events, Some(&timeout)) {
            Ok(n) => {
                let n = n.min(EVENTS);
                ready.extend(events.iter().take(n).map(|e| {
                    let data = e.data;
                    SockIdx(usize::try_from(data.u64()).unwrap_or(usize::MAX))
                }));
            }
            Err(Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "epoll_wait of the TCP prober failed");
                std::thread::sleep(timeout_duration(&timeout));
            }
        }
    }

    fn sock(&self, idx: SockIdx) -> Option<&Socket> {
        self.socks.get(idx.0)?.as_ref().map(|p| &p.socket)
    }

    /// A second connect tells the handshake's outcome: `None` while in
    /// progress.
    fn outcome(&self, idx: SockIdx, target: SocketAddr) -> Option<Result<(), ProbeError>> {
        let sock = self.sock(idx)?;
        match rustix::net::connect(sock, &target) {
            Ok(()) | Err(Errno::ISCONN) => Some(Ok(())),
            Err(Errno::ALREADY | Errno::INPROGRESS | Errno::INTR) => None,
            Err(e) => Some(Err(connect_err(e))),
        }
    }

    /// Arms `idx` in the epoll set for one writability (or error) event.
    fn arm(&mut self, idx: SockIdx) -> Result<(), Errno> {
        let Some(Some(pooled)) = self.socks.get_mut(idx.0) else {
            return Err(Errno::BADF);
        };
        let flags = epoll::EventFlags::OUT | epoll::EventFlags::ONESHOT;
        let data = epoll::EventData::new_u64(idx.0 as u64);
        if pooled.registered {
            epoll::modify(&self.epoll, pooled.socket.as_fd(), data, flags)
        } else {
            epoll::add(&self.epoll, pooled.socket.as_fd(), data, flags)?;
            pooled.registered = true;
            Ok(())
        }
    }

    /// Disconnects `idx` (RST when established) and returns it to the pool;
    /// passes `result` through with errors mapped.
    fn finish(&mut self, idx: SockIdx, result: Result<(), ProbeError>) -> Result<(), ProbeError> {
        let disconnected = self
            .sock(idx)
            .is_some_and(|s| rustix::net::connect_unspec(s).is_ok());
        match self.socks.get(idx.0).and_then(Option::as_ref) {
            Some(p) if disconnected => {
                let key = p.key;
                let i = match self.idle.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        self.idle.push((key, Vec::new()));
                        self.idle.len() - 1
                    }
                };
                let kept = match self.idle.get_mut(i) {
                    Some((_, idle)) if idle.len() < MAX_IDLE => {
                        idle.push(idx.0);
                        true
                    }
                    _ => false,
                };
                if !kept {
                    self.close(idx);
                }
            }
            _ => self.close(idx),
        }
        result
    }

    /// Closes `idx` for good.
    fn close(&mut self, idx: SockIdx) {
        if let Some(slot) = self.socks.get_mut(idx.0) {
            if slot.take().is_some() {
                self.vacant.push(idx.0);
            }
        }
    }

    /// An idle socket for `key`, else a new one.
    fn take(&mut self, key: PoolKey, target: SocketAddr) -> Result<SockIdx, ProbeError> {
        let pooled = self
            .idle
            .iter_mut()
            .find(|(k, _)| *k == key)
            .and_then(|(_, idle)| idle.pop());
        if let Some(idx) = pooled {
            return Ok(SockIdx(idx));
        }
        let socket = socket(target, key.source, Type::STREAM, Protocol::TCP)?;
        let pooled = Pooled {
            socket,
            key,
            registered: false,
        };
        Ok(SockIdx(match self.vacant.pop() {
            Some(idx) => {
                if let Some(slot) = self.socks.get_mut(idx) {
                    *slot = Some(pooled);
                }
                idx
            }
            None => {
                self.socks.push(Some(pooled));
                self.socks.len() - 1
            }
        }))
    }
}

/// A connect error as a [`ProbeError`].
fn connect_err(e: Errno) -> ProbeError {
    ProbeError::io(IoStage::Connect, &e.into())
}

fn timeout_duration(t: &rustix::event::Timespec) -> Duration {
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(1),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Runs one probe to completion (bounded by [`TIMEOUT`]).
    fn probe(prober: &mut Prober, target: SocketAddr, source: Source) -> Result<(), ProbeError> {
        let idx = match prober.start(target, source) {
            Started::Done(result) => return result,
            Started::Pending(idx) => idx,
        };
        let deadline = Instant::now() + TIMEOUT;
        let mut ready = Vec::new();
        while Instant::now() < deadline {
            prober.wait(Duration::from_millis(100), &mut ready);
            if let Some(result) = prober.poll(idx, target) {
                return result;
            }
            ready.clear();
        }
        prober.abort(idx);
        Err(ProbeError::Timeout { after: TIMEOUT })
    }

    fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        (listener, addr)
    }

    fn accept(listener: &TcpListener) -> (std::net::TcpStream, SocketAddr) {
        listener.set_nonblocking(false).expect("blocking");
        listener.accept().expect("accept")
    }

    #[test]
    fn connects_to_a_listener_and_reuses_the_socket() {
        let (listener, addr) = listener();
        let mut prober = Prober::new().expect("prober");
        for _ in 0..3 {
            assert_eq!(probe(&mut prober, addr, Source::default()), Ok(()));
            let (_conn, peer) = accept(&listener);
            assert!(peer.ip().is_loopback());
        }
        assert_eq!(prober.open_sockets(), 1, "one socket serves every probe");
    }

    #[test]
    fn binds_to_the_source_address_and_port() {
        let (listener, addr) = listener();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let source = Source {
            ip: Some([127, 0, 0, 1].into()),
            port: Some(port),
            ..Source::default()
        };
        let mut prober = Prober::new().expect("prober");
        for _ in 0..2 {
            assert_eq!(probe(&mut prober, addr, source), Ok(()));
            let (_conn, peer) = accept(&listener);
            assert_eq!(peer, SocketAddr::new([127, 0, 0, 1].into(), port));
        }
    }

    #[test]
    fn marks_the_packets_when_permitted() {
        let (listener, addr) = listener();
        let source = Source {
            mark: Some(0x42),
            ..Source::default()
        };
        let mut prober = Prober::new().expect("prober");
        match probe(&mut prober, addr, source) {
            Ok(()) => {
                let _ = accept(&listener);
            }
            Err(ProbeError::Io {
                stage: IoStage::Socket,
                ..
            }) if !nix::unistd::geteuid().is_root() => {
                println!("SKIP: SO_MARK needs CAP_NET_ADMIN");
            }
            Err(e) => panic!("fwmark probe failed: {e}"),
        }
    }

    #[test]
    fn closes_with_a_reset() {
        use std::io::Read;
        let (listener, addr) = listener();
        let mut prober = Prober::new().expect("prober");
        assert_eq!(probe(&mut prober, addr, Source::default()), Ok(()));
        let (mut conn, _peer) = accept(&listener);
        conn.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        // An orderly close would read as EOF (Ok(0)); a RST is an error.
        let mut buf = [0u8; 1];
        let err = conn
            .read(&mut buf)
            .expect_err("the probe must close with a reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    /// A listener whose accept queue is full drops SYNs, so a probe's
    /// connect cannot complete at once. Fills the queue until a blocking
    /// connect times out; returns the listener and the filling connections
    /// (keep both alive), or `None` when the queue could not be filled.
    fn full_listener() -> Option<(tokio::net::TcpListener, Vec<std::net::TcpStream>)> {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(([127, 0, 0, 1], 0).into()).ok()?;
        let listener = socket.listen(0).ok()?;
        let addr = listener.local_addr().ok()?;
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Some((listener, fillers)),
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
        let mut prober = Prober::new().expect("prober");
        // First a refusal on the same pooled socket, so that the pending
        // probe below runs on a reused one.
        let (closed, closed_addr) = super::tests::listener();
        drop(closed);
        assert_eq!(
            probe(&mut prober, closed_addr, Source::default()),
            Err(ProbeError::Refused)
        );
        let Started::Pending(idx) = prober.start(addr, Source::default()) else {
            panic!("the SYN should have been dropped");
        };
        assert_eq!(prober.poll(idx, addr), None, "still in progress");
        // Free the queue while the probe waits: its SYN is retransmitted
        // and the handshake completes.
        let acceptor = tokio::spawn(async move {
            let mut accepted = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                accepted.push(conn);
            }
        });
        let result = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + TIMEOUT;
            let mut ready = Vec::new();
            while Instant::now() < deadline {
                prober.wait(Duration::from_millis(100), &mut ready);
                if let Some(result) = prober.poll(idx, addr) {
                    return (result, !ready.is_empty());
                }
            }
            (Err(ProbeError::Timeout { after: TIMEOUT }), false)
        })
        .await
        .expect("prober thread");
        acceptor.abort();
        assert_eq!(result.0, Ok(()));
        assert!(result.1, "epoll reported the completed handshake");
    }

    #[test]
    fn refused_when_nothing_listens_and_the_socket_stays_usable() {
        let (listener, addr) = listener();
        drop(listener);
        let mut prober = Prober::new().expect("prober");
        assert_eq!(
            probe(&mut prober, addr, Source::default()),
            Err(ProbeError::Refused)
        );
        let (listener, addr) = super::tests::listener();
        assert_eq!(probe(&mut prober, addr, Source::default()), Ok(()));
        let _ = accept(&listener);
        assert_eq!(prober.open_sockets(), 1);
    }

    #[test]
    fn ipv6_targets_use_their_own_pooled_socket() {
        let Ok(listener6) = TcpListener::bind("[::1]:0") else {
            println!("SKIP: no IPv6 loopback");
            return;
        };
        let addr6 = listener6.local_addr().expect("addr");
        let (listener4, addr4) = listener();
        let mut prober = Prober::new().expect("prober");
        for _ in 0..2 {
            assert_eq!(probe(&mut prober, addr6, Source::default()), Ok(()));
            assert_eq!(probe(&mut prober, addr4, Source::default()), Ok(()));
            assert!(accept(&listener6).1.is_ipv6());
            assert!(accept(&listener4).1.is_ipv4());
        }
        assert_eq!(prober.open_sockets(), 2, "one per family");
    }

    #[test]
    fn family_mismatch_is_reported() {
        let target: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let bind: IpAddr = "::1".parse().expect("addr");
        let source = Source {
            ip: Some(bind),
            ..Source::default()
        };
        let mut prober = Prober::new().expect("prober");
        assert_eq!(
            probe(&mut prober, target, source),
            Err(ProbeError::FamilyMismatch { bind, target })
        );
    }

    #[test]
    fn bind_to_a_foreign_address_fails_at_bind() {
        // 192.0.2.1 (TEST-NET-1) is not a local address; nothing is sent.
        let (_listener, addr) = listener();
        let source = Source {
            ip: Some([192, 0, 2, 1].into()),
            ..Source::default()
        };
        let mut prober = Prober::new().expect("prober");
        let err = probe(&mut prober, addr, source).expect_err("bind must fail");
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

    #[test]
    fn bind_if_sets_so_bindtodevice_on_every_socket_type() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: SO_BINDTODEVICE needs CAP_NET_RAW");
            return;
        }
        let (_listener, addr) = listener();
        let source = Source {
            dev: Some(IfName::new("lo")),
            ..Source::default()
        };
        // The socket TCP_CHECK, HTTP_GET, SSL_GET and SMTP_CHECK use, and
        // the one UDP_CHECK and DNS_CHECK use.
        for (ty, protocol) in [(Type::STREAM, Protocol::TCP), (Type::DGRAM, Protocol::UDP)] {
            let socket = socket(addr, source, ty, protocol).expect("socket");
            assert_eq!(
                socket.device().expect("SO_BINDTODEVICE"),
                Some(b"lo".to_vec())
            );
        }
        let mut prober = Prober::new().expect("prober");
        assert_eq!(probe(&mut prober, addr, source), Ok(()));
    }

    #[test]
    fn an_interface_name_the_kernel_would_truncate_is_refused() {
        let (_listener, addr) = listener();
        // 16 bytes: the kernel would silently bind to its first 15.
        let source = Source {
            dev: Some(IfName::new("lo0123456789abcd")),
            ..Source::default()
        };
        let err = socket(addr, source, Type::STREAM, Protocol::TCP).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "cannot bind to interface lo0123456789abc...: interface names are at most 15 bytes"
        );
        let ok = IfName::new("lo0123456789abc");
        assert_eq!(ok.check(), Ok("lo0123456789abc"));
    }
}
