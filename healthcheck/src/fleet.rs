//! The `TCP_CHECK` thread: every TCP probe on one timer heap, run in batches.
//!
//! One OS thread owns a [`Prober`] (pooled, reused sockets; see `tcp`) and
//! a min-heap of `(when, probe)` entries. Each round it
//!
//! 1. takes added and removed probes from its inbox,
//! 2. finishes the handshakes that epoll reported,
//! 3. pops every entry that is due: starts the probe (most handshakes
//!    complete inside the `connect` call) or, for one still in progress
//!    at its `connect_timeout`, fails it,
//! 4. sleeps in one `epoll_wait` until the next entry is due, but at least
//!    [`TICK`] after the previous wake-up, so that probes due close together
//!    run in one batch (a probe may start up to [`TICK`] late) and at most
//!    [`MAX_SLEEP`], so that the inbox and a stop request are seen.
//!
//! Results go through [`crate::driver::deliver`], as a task's do. Nothing
//! here allocates per probe once the heap, the slot table and the pools have
//! grown to the number of probes.
//!
//! # Invariants
//!
//! * Each slot has exactly one live heap entry: its next start, or while a
//!   handshake is in progress, its timeout. Entries carry the slot's epoch
//!   at the time they were pushed; an entry whose epoch is not the slot's
//!   current one is stale and skipped (a removed slot, a handshake that
//!   finished before its timeout).
//! * A pending handshake's socket maps back to its slot in `by_sock` until
//!   it is finished or aborted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::driver::{deliver, Probe, Shared};
use crate::error::ProbeError;
use crate::state::CheckState;
use crate::status::HealthEvent;
use crate::tcp::{Prober, SockIdx, Source, Started};

/// Probes due within this long after a wake-up wait for the next batch.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The longest the thread sleeps without looking at its inbox.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// How long the thread pauses after a panic before it goes on.
const RECOVERY_PAUSE: Duration = Duration::from_secs(1);

/// Handle to the thread; stops it when dropped.
#[derive(Debug)]
pub(crate) struct Fleet {
    ctl: Arc<Ctl>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Ctl {
    inbox: Mutex<Vec<Msg>>,
    stop: AtomicBool,
}

#[derive(Debug)]
enum Msg {
    Add(u64, Arc<Probe>),
    Remove(u64),
    /// Makes the thread panic (tests of the recovery).
    #[cfg(test)]
    Panic,
}

impl Fleet {
    /// Starts the thread.
    ///
    /// # Errors
    /// When its epoll instance or the thread cannot be created.
    pub(crate) fn start(shared: Arc<Shared>) -> io::Result<Self> {
        let prober = Prober::new()?;
        let ctl = Arc::new(Ctl::default());
        let thread_ctl = Arc::clone(&ctl);
        let thread = std::thread::Builder::new()
            .name("hc-tcp".into())
            .spawn(move || Runner::new(shared, prober).supervise(&thread_ctl))?;
        Ok(Fleet {
            ctl,
            thread: Some(thread),
        })
    }

    /// Runs `probe` under `id` from the next round on.
    pub(crate) fn add(&self, id: u64, probe: Arc<Probe>) {
        self.send(Msg::Add(id, probe));
    }

    /// Stops probe `id` (its pending handshake, if any, is abandoned).
    pub(crate) fn remove(&self, id: u64) {
        self.send(Msg::Remove(id));
    }

    /// Makes the thread panic in its next round (tests of the recovery).
    #[cfg(test)]
    pub(crate) fn inject_panic(&self) {
        self.send(Msg::Panic);
    }

    fn send(&self, msg: Msg) {
        self.ctl
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(msg);
    }

    /// Asks the thread to stop (within [`MAX_SLEEP`]).
    pub(crate) fn stop(&self) {
        self.ctl.stop.store(true, Ordering::Release);
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop_and_join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the TCP_CHECK thread panicked");
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One probe on the thread.
struct Slot {
    probe: Arc<Probe>,
    schedule: CheckState,
    target: SocketAddr,
    source: Source,
    timeout: Duration,
    /// The epoch of the slot's live heap entry.
    epoch: u64,
    /// The handshake in progress: its socket and start.
    pending: Option<(SockIdx, Instant)>,
}

struct Runner {
    shared: Arc<Shared>,
    prober: Prober,
    slots: Vec<Option<Slot>>,
    vacant: Vec<usize>,
    by_id: HashMap<u64, usize>,
    /// Pending socket index → slot.
    by_sock: HashMap<SockIdx, usize>,
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_epoch: u64,
    inbox: Vec<Msg>,
    ready: Vec<SockIdx>,
    outbox: Vec<(u64, HealthEvent)>,
}

impl Runner {
    fn new(shared: Arc<Shared>, prober: Prober) -> Self {
        Runner {
            shared,
            prober,
            slots: Vec::new(),
            vacant: Vec::new(),
            by_id: HashMap::new(),
            by_sock: HashMap::new(),
            heap: BinaryHeap::new(),
            next_epoch: 0,
            inbox: Vec::new(),
            ready: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// Runs until stopped. A panic in a round (a bug) must not silently
    /// stop every TCP check (PAINPOINTS #5): it is logged, every probe is
    /// rescheduled at once, and the thread goes on after a pause.
    fn supervise(mut self, ctl: &Ctl) {
        loop {
            let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(ctl)));
            if round.is_ok() || ctl.stop.load(Ordering::Acquire) {
                return;
            }
            tracing::error!("the TCP_CHECK thread panicked; restarting its probes");
            std::thread::sleep(RECOVERY_PAUSE);
            self.recover();
        }
    }

    /// After a panic: pending handshakes are abandoned and every probe is
    /// due now.
    fn recover(&mut self) {
        self.heap.clear();
        self.by_sock.clear();
        self.ready.clear();
        let now = Instant::now();
        for idx in 0..self.slots.len() {
            let pending = match self.slots.get_mut(idx) {
                Some(Some(slot)) => slot.pending.take(),
                _ => continue,
            };
            if let Some((sock, _)) = pending {
                self.prober.abort(sock);
            }
            self.push(idx, now);
        }
    }

    fn run(&mut self, ctl: &Ctl) {
        let mut last_wake = Instant::now();
        while !ctl.stop.load(Ordering::Acquire) {
            mem::swap(
                &mut self.inbox,
                &mut ctl.inbox.lock().unwrap_or_else(PoisonError::into_inner),
            );
            let mut inbox = mem::take(&mut self.inbox);
            for msg in inbox.drain(..) {
                match msg {
                    Msg::Add(id, probe) => self.add(id, probe),
                    Msg::Remove(id) => self.remove(id),
                    #[cfg(test)]
                    Msg::Panic => panic!("injected"),
                }
            }
            self.inbox = inbox;

            let mut ready = mem::take(&mut self.ready);
            for sock in ready.drain(..) {
                self.on_ready(sock);
            }
            self.ready = ready;

            let now = Instant::now();
            while let Some(&Reverse((due, epoch, slot))) = self.heap.peek() {
                if due > now {
                    break;
                }
                self.heap.pop();
                self.on_due(slot, epoch);
            }

            let now = Instant::now();
            let wake = match self.heap.peek() {
                Some(&Reverse((due, _, _))) => due.max(last_wake + TICK).min(now + MAX_SLEEP),
                None => now + MAX_SLEEP,
            };
            let mut ready = mem::take(&mut self.ready);
            self.prober
                .wait(wake.saturating_duration_since(now), &mut ready);
            self.ready = ready;
            last_wake = Instant::now();
        }
    }

    fn add(&mut self, id: u64, probe: Arc<Probe>) {
        let spec = &probe.spec;
        let schedule = CheckState::new(spec, Instant::now());
        let slot = Slot {
            target: spec.target,
            source: Source::of(spec),
            timeout: spec.connect_timeout,
            schedule,
            epoch: 0,
            pending: None,
            probe,
        };
        let idx = match self.vacant.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let due = slot.schedule.next_due();
        if let Some(entry) = self.slots.get_mut(idx) {
            *entry = Some(slot);
        }
        self.by_id.insert(id, idx);
        self.push(idx, due);
    }

    fn remove(&mut self, id: u64) {
        let Some(idx) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(idx).and_then(Option::take) {
            if let Some((sock, _)) = slot.pending {
                self.by_sock.remove(&sock);
                self.prober.abort(sock);
            }
            self.vacant.push(idx);
        }
    }

    /// Schedules slot `idx` at `when` under a fresh epoch.
    fn push(&mut self, idx: usize, when: Instant) {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        if let Some(Some(slot)) = self.slots.get_mut(idx) {
            slot.epoch = epoch;
            self.heap.push(Reverse((when, epoch, idx)));
        }
    }

    fn on_ready(&mut self, sock: SockIdx) {
        let Some(&idx) = self.by_sock.get(&sock) else {
            return;
        };
        let Some(Some(slot)) = self.slots.get(idx) else {
            return;
        };
        let started = slot.pending.map_or_else(Instant::now, |(_, t)| t);
        if let Some(result) = self.prober.poll(sock, slot.target) {
            self.by_sock.remove(&sock);
            self.complete(idx, result, started);
        }
    }

    fn on_due(&mut self, idx: usize, epoch: u64) {
        let Some(Some(slot)) = self.slots.get_mut(idx) else {
            return;
        };
        if slot.epoch != epoch {
            return;
        }
        let (target, source, timeout) = (slot.target, slot.source, slot.timeout);
        match slot.pending {
            // Its connect_timeout: one last look, then give up.
            Some((sock, _)) => {
                self.by_sock.remove(&sock);
                let started = slot.pending.map_or_else(Instant::now, |(_, t)| t);
                let result = match self.prober.poll(sock, target) {
                    Some(result) => result,
                    None => {
                        self.prober.abort(sock);
                        Err(ProbeError::Timeout { after: timeout })
                    }
                };
                self.complete(idx, result, started);
            }
            None => {
                let started = Instant::now();
                match self.prober.start(target, source) {
                    Started::Done(result) => self.complete(idx, result, started),
                    Started::Pending(sock) => {
                        if let Some(Some(slot)) = self.slots.get_mut(idx) {
                            slot.pending = Some((sock, started));
                        }
                        self.by_sock.insert(sock, idx);
                        self.push(idx, started + timeout);
                    }
                }
            }
        }
    }

    /// Feeds a finished probe's result and schedules its next start.
    fn complete(&mut self, idx: usize, result: Result<(), ProbeError>, started: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(idx) else {
            return;
        };
        slot.pending = None;
        deliver(
            &self.shared,
            &slot.probe,
            &mut slot.schedule,
            started,
            result.map(|()| None),
            &mut self.outbox,
        );
        let due = slot.schedule.next_due();
        self.push(idx, due);
    }
}
