//! A worker thread: receive a burst, let the [`Engine`] rewrite it, send.
//!
//! New snapshots are picked up between bursts (RCU style): the worker reads a
//! generation counter each round and takes the snapshot lock only when it
//! changed. The control plane never blocks a worker for longer than one
//! `Arc` clone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conn::ConnView;
use crate::engine::{Engine, Snapshot, Verdict};
use crate::io::{Burst, BurstHandler, FrameBuf, PacketIo};
use crate::stats::{Drop, DropCounters};

/// Frames per receive burst.
pub const BURST: usize = 32;
/// Longest a worker sleeps when idle (bounds the latency of control changes).
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// Connection-table slots visited per round by the expiry sweep.
const SWEEP_BUDGET: usize = 1024;

/// Where the control plane publishes snapshots.
#[derive(Debug, Default)]
pub struct Published {
    generation: AtomicU64,
    snap: Mutex<Arc<Snapshot>>,
}

impl Published {
    /// Publishes a new snapshot; workers switch at their next round.
    pub fn publish(&self, snap: Snapshot) {
        let mut slot = self.snap.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(snap);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn load(&self) -> (u64, Arc<Snapshot>) {
        let slot = self.snap.lock().unwrap_or_else(|e| e.into_inner());
        (self.generation.load(Ordering::Acquire), Arc::clone(&slot))
    }
}

/// Counters a worker exports.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub rx_frames: AtomicU64,
    pub tx_frames: AtomicU64,
    pub conns: AtomicU64,
    pub drops: Arc<DropCounters>,
    /// Connection listing requested by the control plane.
    pub conn_dump: ConnDump,
}

/// Connection-table slots a worker lists per round while a dump is asked for.
const DUMP_BUDGET: usize = 4096;
/// Most connections one worker lists.
pub const DUMP_LIMIT: usize = 100_000;

/// A request for a worker's connections and its answer. The worker lists
/// them [`DUMP_BUDGET`] slots per round, between bursts, so forwarding is
/// never held up for a whole-table walk.
#[derive(Debug, Default)]
pub struct ConnDump {
    requested: AtomicBool,
    result: Mutex<Option<Vec<ConnView>>>,
}

impl ConnDump {
    /// Asks for a fresh listing (a previous answer is dropped).
    pub fn request(&self) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.requested.store(true, Ordering::Release);
    }

    /// The listing, once the worker finished it.
    pub fn take(&self) -> Option<Vec<ConnView>> {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Runs a worker until `stop` is set.
pub fn run<I: PacketIo>(
    mut io: I,
    mut engine: Engine,
    published: Arc<Published>,
    stats: Arc<WorkerStats>,
    stop: Arc<AtomicBool>,
) {
    let start = Instant::now();
    let mut rx = Burst::new(BURST);
    let mut ctl = Burst::new(BURST);
    let mut generation = u64::MAX;
    let mut logged_error = false;
    // An unfinished connection listing: next slot and what was found.
    let mut dump: Option<(usize, Vec<ConnView>)> = None;
    while !stop.load(Ordering::Relaxed) {
        let now_ms = start.elapsed().as_millis() as u64;
        if dump.is_none() && stats.conn_dump.requested.load(Ordering::Acquire) {
            dump = Some((0, Vec::new()));
        }
        if let Some((from, found)) = &mut dump {
            match engine.scan_conns(*from, DUMP_BUDGET, now_ms, found) {
                Some(next) if found.len() < DUMP_LIMIT => *from = next,
                _ => {
                    found.truncate(DUMP_LIMIT);
                    let list = std::mem::take(found);
                    *stats
                        .conn_dump
                        .result
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(list);
                    stats.conn_dump.requested.store(false, Ordering::Release);
                    dump = None;
                }
            }
        }
        if published.generation.load(Ordering::Acquire) != generation {
            let (g, snap) = published.load();
            generation = g;
            io.snapshot_changed(&snap);
            engine.set_snapshot(snap, now_ms, &mut ctl);
        }
        engine.housekeeping(now_ms, SWEEP_BUDGET, &mut ctl);
        flush(&mut io, &mut ctl, &stats);
        if let Err(e) = io.wait(IDLE_WAIT) {
            if !logged_error {
                tracing::error!(error = %e, "dataplane wait failed");
                logged_error = true;
            }
            std::thread::sleep(IDLE_WAIT);
        }
        let mut handler = Handler {
            engine: &mut engine,
            ctl: &mut ctl,
            now_ms,
        };
        match io.process(&mut rx, &mut handler) {
            Ok(c) => {
                stats.rx_frames.fetch_add(c.rx as u64, Ordering::Relaxed);
                stats.tx_frames.fetch_add(c.tx as u64, Ordering::Relaxed);
                for _ in 0..c.tx_full {
                    stats.drops.count(Drop::TxFull);
                }
            }
            Err(e) => {
                if !logged_error {
                    tracing::error!(error = %e, "dataplane receive failed");
                    logged_error = true;
                }
                continue;
            }
        }
        flush(&mut io, &mut ctl, &stats);
        stats
            .conns
            .store(engine.conn_count() as u64, Ordering::Relaxed);
    }
}

/// The engine as a [`BurstHandler`]: one burst at time `now_ms`.
#[derive(Debug)]
pub struct Handler<'a> {
    pub engine: &'a mut Engine,
    pub ctl: &'a mut Burst,
    pub now_ms: u64,
}

impl BurstHandler for Handler<'_> {
    fn handle<F: FrameBuf>(
        &mut self,
        port: u16,
        frames: &mut [F],
        verdict: &mut dyn FnMut(&F, Option<u16>),
    ) {
        self.engine
            .handle_burst_on(port, frames, self.now_ms, self.ctl, |f, v, to| {
                verdict(f, (v == Verdict::Forward).then_some(to))
            });
    }
}

fn send<I: PacketIo>(io: &mut I, port: u16, data: &[u8], stats: &WorkerStats) {
    match io.send_on(port, data) {
        Ok(true) => {
            stats.tx_frames.fetch_add(1, Ordering::Relaxed);
        }
        Ok(false) | Err(_) => stats.drops.count(Drop::TxFull),
    }
}

fn flush<I: PacketIo>(io: &mut I, ctl: &mut Burst, stats: &WorkerStats) {
    for frame in ctl.frames() {
        send(io, frame.port(), frame.data(), stats);
    }
    ctl.clear();
}
