//! AF_PACKET backend: forwards on any Linux interface, no special hardware.
//!
//! The kernel keeps the interface and its own addresses; the dataplane sees a
//! copy of every frame and acts only on frames for addresses it owns (VIPs,
//! LIPs). VIPs and LIPs must therefore not be kernel addresses. Frames the
//! socket itself sent are not received back (`PACKET_IGNORE_OUTGOING`).
//!
//! Checksum offloads must be off on the interface (`ethtool -K IF tx off rx
//! off gro off`): frames captured before the NIC/veth fills checksums would
//! otherwise carry partial checksums, and GRO would hand in super-frames.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{Burst, IoError, PacketIo, FRAME_CAP};
use crate::wire::MacAddr;

const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_IGNORE_OUTGOING` (Linux ≥ 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_OUTGOING: u8 = 4;

/// An AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct AfPacket {
    ifname: String,
    fd: OwnedFd,
    mac: MacAddr,
    /// Frames larger than [`FRAME_CAP`] that were skipped.
    pub oversize: u64,
}

impl AfPacket {
    /// Opens the interface. Needs CAP_NET_RAW.
    ///
    /// # Errors
    /// The interface does not exist, or a socket call failed (with its OS error).
    pub fn open(ifname: &str) -> Result<AfPacket, IoError> {
        let os = |op: &'static str, source: io::Error| IoError::Os {
            ifname: ifname.to_string(),
            op,
            source,
        };
        let cname = CString::new(ifname).map_err(|_| {
            os(
                "if_nametoindex",
                io::Error::from(io::ErrorKind::InvalidInput),
            )
        })?;
        // SAFETY: cname is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(os("if_nametoindex", io::Error::last_os_error()));
        }
        // Protocol 0: receive nothing until bound to the interface below.
        // SAFETY: plain syscall with constant arguments; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(os("socket(AF_PACKET)", io::Error::last_os_error()));
        }
        // SAFETY: raw is a freshly created, owned, valid descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_int_opt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            .map_err(|e| os("setsockopt(PACKET_IGNORE_OUTGOING)", e))?;
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20)
            .map_err(|e| os("setsockopt(SO_RCVBUF)", e))?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll and the length passed matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(sll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os("bind", io::Error::last_os_error()));
        }
        let mac = hw_addr(&fd, ifname).map_err(|e| os("ioctl(SIOCGIFHWADDR)", e))?;
        Ok(AfPacket {
            ifname: ifname.to_string(),
            fd,
            mac,
            oversize: 0,
        })
    }

    fn err(&self, op: &'static str, source: io::Error) -> IoError {
        IoError::Os {
            ifname: self.ifname.clone(),
            op,
            source,
        }
    }
}

fn set_int_opt(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: val lives across the call and the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::addr_of!(val).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn hw_addr(fd: &OwnedFd, ifname: &str) -> io::Result<MacAddr> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    // SAFETY: ifr is a valid, NUL-terminated ifreq; SIOCGIFHWADDR writes only into it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds ifru_hwaddr.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, &src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = src as u8;
    }
    Ok(MacAddr(mac))
}

impl PacketIo for AfPacket {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn recv(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        let mut n = 0;
        while let Some(frame) = burst.next_free() {
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sll_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let buf = frame.buffer_mut();
            // SAFETY: buf is valid for FRAME_CAP bytes; sll/sll_len describe a valid address buffer.
            let rc = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    FRAME_CAP,
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                    std::ptr::addr_of_mut!(sll).cast::<libc::sockaddr>(),
                    &mut sll_len,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(n),
                    _ => Err(self.err("recvfrom", e)),
                };
            }
            let len = rc as usize;
            if sll.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            if len > FRAME_CAP {
                self.oversize += 1;
                continue;
            }
            frame.set_len(len);
            burst.commit();
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        // SAFETY: frame is a valid slice for its length; the socket is bound, so no address is needed.
        let rc = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Ok(false),
                _ => Err(self.err("send", e)),
            };
        }
        Ok(true)
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), IoError> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: pfd is one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(self.err("poll", e));
            }
        }
        Ok(())
    }
}
