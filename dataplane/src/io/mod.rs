//! Packet I/O backends behind one trait.
//!
//! A backend moves whole Ethernet frames. The worker receives a burst into
//! preallocated [`Burst`] buffers, rewrites frames in place and hands each one
//! to [`PacketIo::send`]. Backends: [`mem`] (in-process queues, for tests and
//! benchmarks) and [`afpacket`] (AF_PACKET on any Linux interface).

pub mod affinity;
pub mod afpacket;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod mem;

use std::time::Duration;

use crate::engine::Snapshot;
use crate::wire::MacAddr;

/// Largest frame a backend passes in (MTU 1500 + Ethernet + VLAN, rounded up).
/// Bigger frames are dropped by the backend and counted as truncated.
pub const FRAME_CAP: usize = 2048;

/// A backend error. The worker logs it and carries on (rx) or counts a drop (tx).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("interface {ifname}: {op}: {source}")]
    Os {
        ifname: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A frame buffer's bytes, cache-line aligned (as a DPDK mbuf's data) so a
/// small frame's headers sit on one line, not two.
#[derive(Debug)]
#[repr(C, align(64))]
struct FrameBytes([u8; FRAME_CAP]);

/// One frame buffer.
#[derive(Debug)]
pub struct Frame {
    buf: Box<FrameBytes>,
    len: usize,
    port: u16,
}

impl Frame {
    fn new() -> Frame {
        Frame {
            buf: Box::new(FrameBytes([0; FRAME_CAP])),
            len: 0,
            port: 0,
        }
    }

    /// The port a control frame the engine built leaves on (0 unless the
    /// worker has several, [`crate::engine::Engine::set_port_macs`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf.0[..self.len]
    }

    /// The frame's bytes, for rewriting in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.0[..self.len]
    }

    /// The whole buffer, for building a frame; then [`Frame::set_len`].
    pub fn buffer_mut(&mut self) -> &mut [u8; FRAME_CAP] {
        &mut self.buf.0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the frame length (clamped to [`FRAME_CAP`]).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(FRAME_CAP);
    }
}

/// A received frame the engine rewrites in place: a [`Frame`] buffer, or a
/// backend's own buffer (DPDK's mbuf) for zero-copy bursts.
pub trait FrameBuf {
    /// The frame's bytes.
    fn data(&self) -> &[u8];
    /// The frame and the room after it (a frame may grow: TUN
    /// encapsulation); then [`FrameBuf::set_len`].
    fn room_mut(&mut self) -> &mut [u8];
    /// Sets the frame length (clamped to the room).
    fn set_len(&mut self, len: usize);
    fn len(&self) -> usize {
        self.data().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FrameBuf for Frame {
    fn data(&self) -> &[u8] {
        Frame::data(self)
    }
    fn room_mut(&mut self) -> &mut [u8] {
        &mut self.buf.0[..]
    }
    fn set_len(&mut self, len: usize) {
        Frame::set_len(self, len);
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// What a worker does with a received burst (see [`PacketIo::process`]).
pub trait BurstHandler {
    /// Rewrites `frames`, received on port number `port`, in place and
    /// calls `verdict(frame, to)` once for each frame, in order: `to` is
    /// the port to send it on, `None` to not send it.
    fn handle<F: FrameBuf>(
        &mut self,
        port: u16,
        frames: &mut [F],
        verdict: &mut dyn FnMut(&F, Option<u16>),
    );
}

/// What one [`PacketIo::process`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BurstCounts {
    pub rx: usize,
    pub tx: usize,
    /// Frames to send that the backend had no room for.
    pub tx_full: usize,
}

/// A fixed set of frame buffers, allocated once and reused for every burst.
#[derive(Debug)]
pub struct Burst {
    frames: Vec<Frame>,
    len: usize,
}

impl Burst {
    /// A burst of up to `size` frames.
    pub fn new(size: usize) -> Burst {
        Burst {
            frames: (0..size.max(1)).map(|_| Frame::new()).collect(),
            len: 0,
        }
    }

    /// Frames currently held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.frames.len()
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The next free buffer, or `None` when the burst is full. The frame only
    /// counts once [`Burst::commit`] is called.
    pub fn next_free(&mut self) -> Option<&mut Frame> {
        self.frames.get_mut(self.len)
    }

    /// Marks the buffer returned by [`Burst::next_free`] as holding a frame.
    pub fn commit(&mut self) {
        if self.len < self.frames.len() {
            self.len += 1;
        }
    }

    /// Appends a copy of `data` (truncated to [`FRAME_CAP`]); false when full.
    pub fn push(&mut self, data: &[u8]) -> bool {
        let Some(f) = self.next_free() else {
            return false;
        };
        let n = data.len().min(FRAME_CAP);
        f.buf.0[..n].copy_from_slice(&data[..n]);
        f.len = n;
        f.port = 0;
        self.commit();
        true
    }

    /// The held frames.
    pub fn frames_mut(&mut self) -> &mut [Frame] {
        &mut self.frames[..self.len]
    }

    pub fn frames(&self) -> &[Frame] {
        &self.frames[..self.len]
    }
}

/// The port (or ports: DPDK's two-arm, numbered from 0) a worker
/// forwards on.
pub trait PacketIo: Send {
    /// The (first) port's MAC address (source of what the dataplane sends).
    fn mac(&self) -> MacAddr;

    /// Every port's MAC, index = port number. One port by default.
    fn macs(&self) -> Vec<MacAddr> {
        vec![self.mac()]
    }

    /// Receives frames into `burst` until it is full or nothing is pending.
    /// Returns how many were added. Never blocks.
    fn recv(&mut self, burst: &mut Burst) -> Result<usize, IoError>;

    /// Sends one frame. `Ok(false)` when the backend has no room (the caller
    /// counts a drop). Never blocks.
    fn send(&mut self, frame: &[u8]) -> Result<bool, IoError>;

    /// Sends one frame on port number `port`: [`PacketIo::send`] for port
    /// 0; a backend with one port has no room on others.
    fn send_on(&mut self, port: u16, frame: &[u8]) -> Result<bool, IoError> {
        if port == 0 {
            self.send(frame)
        } else {
            Ok(false)
        }
    }

    /// Receives a burst, lets `handler` rewrite it in place and sends the
    /// frames it forwards. The default (one port) copies:
    /// [`PacketIo::recv`] into `burst`, [`PacketIo::send_on`] each
    /// forwarded frame; DPDK overrides it to hand its mbufs (of each of
    /// its ports) to the handler and on to the NIC without copying.
    ///
    /// # Errors
    /// Receiving failed (sending errors count as `tx_full`).
    fn process<H: BurstHandler>(
        &mut self,
        burst: &mut Burst,
        handler: &mut H,
    ) -> Result<BurstCounts, IoError>
    where
        Self: Sized,
    {
        burst.clear();
        let mut c = BurstCounts {
            rx: self.recv(burst)?,
            ..BurstCounts::default()
        };
        handler.handle(0, burst.frames_mut(), &mut |f, to| {
            if let Some(port) = to {
                match self.send_on(port, f.data()) {
                    Ok(true) => c.tx += 1,
                    Ok(false) | Err(_) => c.tx_full += 1,
                }
            }
        });
        Ok(c)
    }

    /// Blocks until a frame may be pending or `timeout` passed.
    fn wait(&mut self, timeout: Duration) -> Result<(), IoError>;

    /// A new snapshot is in force: a backend that steers frames between
    /// workers sharing a port ([`crate::steer`]) takes its rules from it.
    fn snapshot_changed(&mut self, _snap: &Snapshot) {}
}
