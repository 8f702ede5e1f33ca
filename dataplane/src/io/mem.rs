//! In-process packet queues: the `mem` backend, for unit tests and benchmarks.
//!
//! [`MemPort::pair`] gives the worker's side and a [`MemWire`] handle for the
//! test, which injects frames and collects what the worker sent.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{Burst, IoError, PacketIo};
use crate::wire::MacAddr;

#[derive(Debug, Default)]
struct Queues {
    to_worker: VecDeque<Vec<u8>>,
    from_worker: VecDeque<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Shared {
    q: Mutex<Queues>,
    ready: Condvar,
}

/// The worker's side of an in-memory port.
#[derive(Debug)]
pub struct MemPort {
    mac: MacAddr,
    shared: Arc<Shared>,
}

/// The test's side of an in-memory port.
#[derive(Debug, Clone)]
pub struct MemWire {
    shared: Arc<Shared>,
}

impl MemPort {
    /// A port with `mac` and the handle that feeds it.
    pub fn pair(mac: MacAddr) -> (MemPort, MemWire) {
        let shared = Arc::new(Shared::default());
        (
            MemPort {
                mac,
                shared: shared.clone(),
            },
            MemWire { shared },
        )
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Queues> {
    // A poisoned queue only means a test thread panicked; the data is still usable.
    shared.q.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemWire {
    /// Queues a frame for the worker to receive.
    pub fn inject(&self, frame: &[u8]) {
        lock(&self.shared).to_worker.push_back(frame.to_vec());
        self.shared.ready.notify_all();
    }

    /// Takes every frame the worker sent so far.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        lock(&self.shared).from_worker.drain(..).collect()
    }
}

impl PacketIo for MemPort {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn recv(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        let mut q = lock(&self.shared);
        let mut n = 0;
        while !burst.is_full() {
            let Some(f) = q.to_worker.pop_front() else {
                break;
            };
            burst.push(&f);
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        lock(&self.shared).from_worker.push_back(frame.to_vec());
        Ok(true)
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), IoError> {
        let q = lock(&self.shared);
        if q.to_worker.is_empty() {
            let _unused = self
                .shared
                .ready
                .wait_timeout(q, timeout)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }
}
