//! Per-worker connection table.
//!
//! Fixed capacity, allocated once. Connections live in a slab; an
//! open-addressing index (linear probing, power-of-two size, load ≤ 0.5)
//! holds two entries per connection, one per direction, so both the
//! client→VIP packet and the real server's reply find the connection with
//! one probe sequence. Deletion uses backward shifting (no tombstones).
//!
//! Expiry has no timer heap: a lookup that finds an expired connection
//! frees it, and [`ConnTable::sweep`] visits a bounded number of slab slots
//! per call so idle connections are reclaimed incrementally.
//!
//! A full table refuses new connections ([`ConnTable::insert`] returns
//! `None`); established flows are never evicted by new ones.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::stats::Traffic;
use crate::wire::MacAddr;

/// An IPv4 5-tuple as seen in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

impl FlowKey {
    /// A fast, well-mixed 32-bit hash (never 0, which marks an empty bucket
    /// only together with the EMPTY id; kept non-zero for clarity).
    #[inline]
    pub fn hash(&self) -> u32 {
        let a = u64::from(u32::from(self.src)) << 32 | u64::from(u32::from(self.dst));
        let b = u64::from(self.sport) << 24 | u64::from(self.dport) << 8 | u64::from(self.proto);
        let mut h = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 29;
        h = h.wrapping_mul(0x1656_67B1_9E37_79F9);
        ((h >> 32) as u32) | 1
    }
}

/// Which side of a connection a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → VIP.
    In = 0,
    /// Real server → LIP (the reply).
    Out = 1,
}

/// TCP state as LVS/DPVS track it (simplified), with DPVS's default timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    SynRecv,
    Established,
    FinWait,
    Close,
}

impl TcpState {
    pub fn timeout_ms(self) -> u64 {
        match self {
            TcpState::SynRecv => 30_000,
            TcpState::Established => 90_000,
            TcpState::FinWait => 7_000,
            TcpState::Close => 3_000,
        }
    }

    /// The next state after a packet with these flags.
    pub fn next(self, dir: Dir, syn: bool, ack: bool, fin: bool, rst: bool) -> TcpState {
        if rst {
            return TcpState::Close;
        }
        if fin {
            return TcpState::FinWait;
        }
        match self {
            TcpState::SynRecv if dir == Dir::In && ack && !syn => TcpState::Established,
            s => s,
        }
    }
}

/// UDP "connection" timeout (DPVS default).
pub const UDP_TIMEOUT_MS: u64 = 300_000;

/// One tracked connection.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Client → VIP.
    pub in_key: FlowKey,
    /// Real server → LIP.
    pub out_key: FlowKey,
    /// Where replies to the client go (learned from its first packet).
    pub client_mac: MacAddr,
    pub tcp: TcpState,
    pub expires_ms: u64,
    /// The real server's MAC, valid while `neigh_gen` equals the engine's
    /// neighbour generation (saves a neighbour lookup per packet).
    pub server_mac: MacAddr,
    pub neigh_gen: u32,
    pub service: Arc<Traffic>,
    pub server: Arc<Traffic>,
}

const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    hash: u32,
    /// `conn_index << 1 | dir`, or EMPTY.
    id: u32,
}

/// Index of a connection in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnIdx(u32);

#[derive(Debug)]
pub struct ConnTable {
    index: Vec<Bucket>,
    mask: usize,
    slab: Vec<Option<Conn>>,
    free: Vec<u32>,
    len: usize,
    sweep_pos: usize,
    /// The owning worker (its counter slot in [`Traffic`]).
    worker: usize,
}

impl ConnTable {
    /// A table for at most `capacity` connections (all memory allocated
    /// now), owned by worker number `worker`.
    pub fn new(capacity: usize, worker: usize) -> ConnTable {
        let capacity = capacity.clamp(1, (u32::MAX >> 2) as usize);
        let buckets = (capacity * 4).next_power_of_two();
        ConnTable {
            index: vec![Bucket { hash: 0, id: EMPTY }; buckets],
            mask: buckets - 1,
            slab: (0..capacity).map(|_| None).collect(),
            free: (0..capacity as u32).rev().collect(),
            len: 0,
            sweep_pos: 0,
            worker,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slab.len()
    }

    fn key_of(&self, id: u32) -> Option<&FlowKey> {
        let conn = self.slab.get((id >> 1) as usize)?.as_ref()?;
        Some(if id & 1 == 0 {
            &conn.in_key
        } else {
            &conn.out_key
        })
    }

    fn find_bucket(&self, key: &FlowKey, hash: u32) -> Option<usize> {
        let mut pos = hash as usize & self.mask;
        loop {
            let b = self.index[pos];
            if b.id == EMPTY {
                return None;
            }
            if b.hash == hash && self.key_of(b.id) == Some(key) {
                return Some(pos);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Finds the live connection for `key`; an expired one is freed and not returned.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now_ms: u64) -> Option<(ConnIdx, Dir)> {
        let pos = self.find_bucket(key, key.hash())?;
        let id = self.index[pos].id;
        let idx = ConnIdx(id >> 1);
        let expired = self
            .get(idx)
            .map(|c| c.expires_ms <= now_ms)
            .unwrap_or(true);
        if expired {
            self.remove(idx);
            return None;
        }
        let dir = if id & 1 == 0 { Dir::In } else { Dir::Out };
        Some((idx, dir))
    }

    /// Whether a live connection uses `key` (in either direction).
    pub fn contains(&self, key: &FlowKey) -> bool {
        self.find_bucket(key, key.hash()).is_some()
    }

    pub fn get(&self, idx: ConnIdx) -> Option<&Conn> {
        self.slab.get(idx.0 as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, idx: ConnIdx) -> Option<&mut Conn> {
        self.slab.get_mut(idx.0 as usize)?.as_mut()
    }

    fn place(&mut self, hash: u32, id: u32) {
        let mut pos = hash as usize & self.mask;
        while self.index[pos].id != EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = Bucket { hash, id };
    }

    /// Inserts a new connection. `None` when the table is full, or when either
    /// key is already in use (the caller must check with [`Self::contains`]).
    pub fn insert(&mut self, conn: Conn) -> Option<ConnIdx> {
        if self.contains(&conn.in_key) || self.contains(&conn.out_key) {
            return None;
        }
        let slot = self.free.pop()?;
        let (hin, hout) = (conn.in_key.hash(), conn.out_key.hash());
        conn.server.count_active(self.worker, 1);
        self.slab[slot as usize] = Some(conn);
        self.place(hin, slot << 1);
        self.place(hout, slot << 1 | 1);
        self.len += 1;
        Some(ConnIdx(slot))
    }

    fn unindex(&mut self, key: &FlowKey) {
        let Some(mut hole) = self.find_bucket(key, key.hash()) else {
            return;
        };
        self.index[hole].id = EMPTY;
        let mut pos = (hole + 1) & self.mask;
        while self.index[pos].id != EMPTY {
            let home = self.index[pos].hash as usize & self.mask;
            // Move the entry back if its home is not in (hole, pos] cyclically.
            let in_range = if hole <= pos {
                home > hole && home <= pos
            } else {
                home > hole || home <= pos
            };
            if !in_range {
                self.index[hole] = self.index[pos];
                self.index[pos].id = EMPTY;
                hole = pos;
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Frees a connection and both its index entries.
    pub fn remove(&mut self, idx: ConnIdx) -> Option<Conn> {
        let (kin, kout) = {
            let c = self.get(idx)?;
            (c.in_key, c.out_key)
        };
        self.unindex(&kin);
        self.unindex(&kout);
        let conn = self.slab.get_mut(idx.0 as usize)?.take()?;
        conn.server.count_active(self.worker, -1);
        self.free.push(idx.0);
        self.len -= 1;
        Some(conn)
    }

    /// Visits up to `budget` slab slots from where the last sweep stopped and
    /// frees expired connections. Returns how many were freed.
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        let n = self.slab.len();
        let mut freed = 0;
        for _ in 0..budget.min(n) {
            let i = self.sweep_pos;
            self.sweep_pos = (self.sweep_pos + 1) % n;
            if matches!(&self.slab[i], Some(c) if c.expires_ms <= now_ms) {
                self.remove(ConnIdx(i as u32));
                freed += 1;
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32, port: u16) -> FlowKey {
        FlowKey {
            proto: 6,
            src: Ipv4Addr::from(0x0a00_0000 + i),
            dst: Ipv4Addr::new(10, 99, 0, 100),
            sport: port,
            dport: 80,
        }
    }

    fn conn(i: u32, expires_ms: u64) -> Conn {
        let in_key = key(i, 1000 + (i % 50000) as u16);
        let out_key = FlowKey {
            proto: 6,
            src: Ipv4Addr::new(10, 99, 0, 3),
            dst: Ipv4Addr::new(10, 99, 0, 200),
            sport: 8080,
            dport: (i % 60000) as u16 + 1024,
        };
        Conn {
            in_key,
            out_key,
            client_mac: MacAddr::default(),
            tcp: TcpState::SynRecv,
            expires_ms,
            server_mac: MacAddr::default(),
            neigh_gen: 0,
            service: Arc::default(),
            server: Arc::default(),
        }
    }

    #[test]
    fn both_directions_find_the_connection() {
        let mut t = ConnTable::new(16, 0);
        let c = conn(1, 100);
        let idx = t.insert(c.clone()).expect("room");
        assert_eq!(t.lookup(&c.in_key, 0), Some((idx, Dir::In)));
        assert_eq!(t.lookup(&c.out_key, 0), Some((idx, Dir::Out)));
        assert_eq!(t.lookup(&key(2, 5), 0), None);
    }

    #[test]
    fn full_table_refuses_new_and_keeps_old() {
        let mut t = ConnTable::new(8, 0);
        for i in 0..8 {
            assert!(t.insert(conn(i, 1000)).is_some());
        }
        assert!(t.insert(conn(100, 1000)).is_none());
        for i in 0..8 {
            assert!(
                t.lookup(&conn(i, 0).in_key, 10).is_some(),
                "conn {i} evicted"
            );
        }
    }

    #[test]
    fn expired_connections_are_freed_by_lookup_and_sweep() {
        let mut t = ConnTable::new(64, 0);
        for i in 0..40 {
            t.insert(conn(i, if i % 2 == 0 { 50 } else { 500 }));
        }
        assert_eq!(t.lookup(&conn(0, 0).in_key, 60), None);
        assert_eq!(t.len(), 39);
        let freed = t.sweep(60, 64);
        assert_eq!(freed, 19);
        assert_eq!(t.len(), 20);
        for i in (1..40).step_by(2) {
            assert!(t.lookup(&conn(i, 0).out_key, 60).is_some());
        }
    }

    #[test]
    fn churn_keeps_index_consistent() {
        // Insert and remove many times in a small table so probe chains wrap
        // and backward shifting is exercised; every live key must stay findable.
        let mut t = ConnTable::new(32, 0);
        let mut live: Vec<(u32, ConnIdx)> = Vec::new();
        let mut state = 12345u32;
        for step in 0..20_000u32 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if live.len() < 32 && !(state >> 16).is_multiple_of(3) {
                if let Some(idx) = t.insert(conn(step, u64::MAX)) {
                    live.push((step, idx));
                }
            } else if !live.is_empty() {
                let (i, idx) = live.swap_remove((state >> 8) as usize % live.len());
                assert!(t.remove(idx).is_some());
                assert!(!t.contains(&conn(i, 0).in_key));
            }
            if step % 997 == 0 {
                for (i, idx) in &live {
                    assert_eq!(t.lookup(&conn(*i, 0).in_key, 0).map(|x| x.0), Some(*idx));
                    assert_eq!(t.lookup(&conn(*i, 0).out_key, 0).map(|x| x.0), Some(*idx));
                }
            }
        }
        assert_eq!(t.len(), live.len());
    }

    #[test]
    fn tcp_state_transitions() {
        let s = TcpState::SynRecv.next(Dir::In, false, true, false, false);
        assert_eq!(s, TcpState::Established);
        assert_eq!(
            s.next(Dir::Out, false, true, true, false),
            TcpState::FinWait
        );
        assert_eq!(s.next(Dir::In, false, false, false, true), TcpState::Close);
        assert_eq!(
            TcpState::SynRecv.next(Dir::Out, true, true, false, false),
            TcpState::SynRecv
        );
    }
}
