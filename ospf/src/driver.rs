//! The tokio driver: one raw IP protocol-89 socket per interface, timers
//! from [`Speaker::poll_at`], commands in, status snapshots out.
//!
//! Each socket is bound to its device (`SO_BINDTODEVICE`), joins
//! AllSPFRouters and AllDRouters on it (the speaker ignores nothing it
//! needs; a DROther simply sees a little more traffic), sends with TTL 1,
//! does not loop multicast back, and leaves the IP header to the kernel
//! (`IP_HDRINCL` off).
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::speaker::{
    Action, DropCause, IfaceIdx, Speaker, SpeakerSpec, Status, ALL_D_ROUTERS, ALL_SPF_ROUTERS,
};

const IPPROTO_OSPF: libc::c_int = 89;

/// Errors of the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Opening or configuring the socket of an interface failed.
    #[error("ospf socket on {iface}: {source}")]
    Socket {
        /// Interface name.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
}

/// A request to the running driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Announce exactly these VIPs.
    SetAnnounced(BTreeSet<Ipv4Addr>),
    /// Flush our LSAs, say goodbye and stop.
    Shutdown,
}

/// The running driver.
#[derive(Debug)]
pub struct Handle {
    /// Commands.
    pub commands: mpsc::Sender<Command>,
    /// The latest status snapshot.
    pub status: watch::Receiver<Status>,
    /// The driver task; it ends after [`Command::Shutdown`] or when
    /// `commands` is dropped.
    pub task: JoinHandle<()>,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the size we pass; `fd` is an open socket.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Open the raw OSPF socket of one interface.
fn open_socket(name: &str, address: Ipv4Addr) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            IPPROTO_OSPF,
        )
    };
    check(raw)?;
    // SAFETY: `raw` is a freshly opened descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let dev = cname.as_bytes_with_nul();
    // SAFETY: `dev` is a live buffer of the length passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            dev.as_ptr().cast(),
            dev.len() as libc::socklen_t,
        )
    })?;
    let one: libc::c_int = 1;
    let zero: libc::c_int = 0;
    setsockopt(&fd, libc::IPPROTO_IP, libc::IP_HDRINCL, &zero)?;
    setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TTL, &one)?;
    setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &one)?;
    setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &zero)?;
    let tos: libc::c_int = 0xc0; // Internetwork control.
    setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TOS, &tos)?;
    let mreq = |group: Ipv4Addr| libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr {
            s_addr: u32::from(address).to_be(),
        },
        imr_ifindex: ifindex as libc::c_int,
    };
    setsockopt(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &mreq(Ipv4Addr::UNSPECIFIED),
    )?;
    setsockopt(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_ADD_MEMBERSHIP,
        &mreq(ALL_SPF_ROUTERS),
    )?;
    setsockopt(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_ADD_MEMBERSHIP,
        &mreq(ALL_D_ROUTERS),
    )?;
    Ok(fd)
}

fn send_to(fd: &OwnedFd, dst: Ipv4Addr, bytes: &[u8]) -> io::Result<()> {
    let sa = sockaddr(dst);
    // SAFETY: `bytes` and `sa` are live for the call and their lengths are passed.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live writable buffer of the length passed.
    let rc = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Split a received IPv4 datagram into (source, OSPF payload).
fn strip_ip(datagram: &[u8]) -> Option<(Ipv4Addr, &[u8])> {
    let ihl = usize::from(*datagram.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*datagram.get(2)?, *datagram.get(3)?]));
    let src = Ipv4Addr::new(
        *datagram.get(12)?,
        *datagram.get(13)?,
        *datagram.get(14)?,
        *datagram.get(15)?,
    );
    let end = total.min(datagram.len());
    datagram.get(ihl..end).map(|p| (src, p))
}

async fn reader(
    idx: IfaceIdx,
    fd: Arc<AsyncFd<OwnedFd>>,
    tx: mpsc::Sender<(IfaceIdx, Ipv4Addr, Vec<u8>)>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        match guard.try_io(|inner| recv(inner.get_ref(), &mut buf)) {
            Ok(Ok(n)) => {
                if let Some((src, payload)) = strip_ip(&buf[..n]) {
                    if tx.send((idx, src, payload.to_vec())).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "ospf: recv"),
            Err(_would_block) => {}
        }
    }
}

/// Open the sockets and start the driver on the current tokio runtime.
///
/// # Errors
/// [`DriverError::Socket`] if an interface socket cannot be opened or
/// configured (no such interface, not root, …).
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn(spec: SpeakerSpec) -> Result<Handle, DriverError> {
    let mut sockets = Vec::new();
    for ifs in &spec.interfaces {
        let fd = open_socket(&ifs.name, ifs.address)
            .and_then(|fd| {
                // SAFETY: the OwnedFd is moved into the AsyncFd, so the descriptor
                // stays open and unchanged for the AsyncFd's whole lifetime.
                unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
            })
            .map_err(|source| DriverError::Socket {
                iface: ifs.name.clone(),
                source,
            })?;
        sockets.push(Arc::new(fd));
    }
    let start = Instant::now();
    let speaker = Speaker::new(spec, start.elapsed());
    let (status_tx, status_rx) = watch::channel(speaker.status(start.elapsed()));
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let task = tokio::spawn(run(speaker, sockets, start, cmd_rx, status_tx));
    Ok(Handle {
        commands: cmd_tx,
        status: status_rx,
        task,
    })
}

fn perform(sockets: &[Arc<AsyncFd<OwnedFd>>], actions: Vec<Action>) {
    for Action::Send { iface, dst, bytes } in actions {
        if let Some(fd) = sockets.get(iface.0) {
            if let Err(e) = send_to(fd.get_ref(), dst, &bytes) {
                tracing::debug!(error = %e, %dst, "ospf: send");
            }
        }
    }
}

/// Logs the first drop of each cause (with the sender that caused it);
/// later drops of that cause are only counted, so a hostile or
/// misconfigured neighbour cannot flood the log.
/// Returns the causes logged now.
fn log_first_drops(
    status: &Status,
    from: Option<Ipv4Addr>,
    logged: &mut BTreeSet<DropCause>,
) -> Vec<DropCause> {
    let mut now = Vec::new();
    for (cause, n) in &status.drops {
        if *n > 0 && logged.insert(*cause) {
            now.push(*cause);
            let from = from.map_or_else(|| "-".to_string(), |a| a.to_string());
            tracing::warn!(
                cause = cause.name(),
                %from,
                "ospf: dropped a packet; further drops of this cause are only counted (dpvsctl ospf)"
            );
        }
    }
    now
}

async fn run(
    mut speaker: Speaker,
    sockets: Vec<Arc<AsyncFd<OwnedFd>>>,
    start: Instant,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
) {
    let (rx_tx, mut rx) = mpsc::channel(256);
    let readers: Vec<JoinHandle<()>> = sockets
        .iter()
        .enumerate()
        .map(|(i, fd)| tokio::spawn(reader(IfaceIdx(i), fd.clone(), rx_tx.clone())))
        .collect();
    drop(rx_tx);
    let mut logged = BTreeSet::new();
    loop {
        let mut from = None;
        let deadline = speaker.poll_at().map_or_else(
            || start + std::time::Duration::from_secs(3600),
            |t| start + t,
        );
        let actions = tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::SetAnnounced(vips)) => speaker.set_announced(vips, start.elapsed()),
                Some(Command::Shutdown) | None => {
                    let out = speaker.shutdown(start.elapsed());
                    perform(&sockets, out);
                    status.send_replace(speaker.status(start.elapsed()));
                    break;
                }
            },
            pkt = rx.recv() => match pkt {
                Some((iface, src, bytes)) => {
                    from = Some(src);
                    speaker.handle_packet(iface, src, &bytes, start.elapsed())
                }
                None => Vec::new(),
            },
            () = tokio::time::sleep_until(deadline) => speaker.on_timer(start.elapsed()),
        };
        perform(&sockets, actions);
        let now = speaker.status(start.elapsed());
        let _ = log_first_drops(&now, from, &mut logged);
        status.send_replace(now);
    }
    for r in readers {
        r.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_drop_cause_is_logged_once() {
        let spec = SpeakerSpec {
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            area: Ipv4Addr::UNSPECIFIED,
            interfaces: vec![crate::InterfaceSpec::broadcast(
                "eth0",
                Ipv4Addr::new(10, 0, 0, 1),
                24,
            )],
            announce_as: crate::AnnounceAs::Stub,
            metric: 10,
            crypto_seq_base: 0,
        };
        let mut st =
            Speaker::new(spec, std::time::Duration::ZERO).status(std::time::Duration::ZERO);
        let mut logged = BTreeSet::new();
        assert!(log_first_drops(&st, None, &mut logged).is_empty());
        st.drops = vec![(DropCause::AuthMismatch, 1), (DropCause::WrongArea, 0)];
        let from = Some(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(
            log_first_drops(&st, from, &mut logged),
            [DropCause::AuthMismatch]
        );
        st.drops = vec![(DropCause::AuthMismatch, 50), (DropCause::WrongArea, 2)];
        assert_eq!(
            log_first_drops(&st, from, &mut logged),
            [DropCause::WrongArea]
        );
        assert!(log_first_drops(&st, from, &mut logged).is_empty());
    }

    #[test]
    fn strip_ip_header() {
        let mut d = vec![
            0x45, 0, 0, 24, 0, 0, 0, 0, 1, 89, 0, 0, 10, 99, 0, 2, 224, 0, 0, 5,
        ];
        d.extend_from_slice(&[2, 1, 0, 0, 9, 9]);
        let (src, p) = strip_ip(&d).expect("ipv4");
        assert_eq!(src, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(p, &[2, 1, 0, 0]);
        assert!(strip_ip(&d[..3]).is_none());
        assert!(strip_ip(&[0x4f, 0, 0, 8]).is_none());
    }
}
