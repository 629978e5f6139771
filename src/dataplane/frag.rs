//! The decisions taken for first fragments, so that the later fragments of the same datagram
//! follow them.
//!
//! Only a datagram's first fragment carries the transport header, so only it can be matched to
//! an instance's flow, filtered by port, or translated by port. When the pipeline forwards a
//! first fragment it remembers, under the datagram's reassembly key (source, destination,
//! protocol and identification, RFC 791), where it went and the addresses it left with; a
//! later fragment with the same key is sent the same way with the same addresses, and one
//! without is dropped (`fragment`). Nothing is reassembled.
//!
//! Invariants: sharded like the flow table, one shard lock held for one lookup or update; a
//! decision lives [`FRAG_IDLE`] after the last fragment that used it, and a shard holds at most
//! [`SHARD_CAP`] decisions (past that, new datagrams are not remembered and their later
//! fragments are dropped), so a flood of first fragments cannot grow it without bound.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::flow::Stamp;
use crate::fib::PortId;

const SHARDS: usize = 16;
/// At most 4,096 datagrams in flight per shard (65,536 in all).
const SHARD_CAP: usize = 4096;
/// How long a decision waits for the next fragment: Linux's reassembly timeout
/// (`ipfrag_time`, 30 s).
pub const FRAG_IDLE: Duration = Duration::from_secs(30);

/// A datagram's reassembly key, as its fragments arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub id: u16,
}

impl FragKey {
    /// The reassembly key of a parsed fragment.
    pub fn of(info: &crate::packet::Ipv4Info) -> FragKey {
        FragKey {
            src: info.src_u32(),
            dst: info.dst_u32(),
            proto: info.protocol(),
            id: info.identification(),
        }
    }
}

/// Where the first fragment went, and with which addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragWay {
    pub port: PortId,
    pub src: u32,
    pub dst: u32,
    /// The first fragment crossed a NAT (a hop: its TTL was decremented).
    pub hop: bool,
    /// The first fragment crossed the internet gateway: the later ones meet its size limit.
    pub igw: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The port the first fragment was read from: the others must come from there too.
    from: PortId,
    way: FragWay,
    last_seen: Stamp,
}

pub struct FragTable {
    shards: Box<[Mutex<HashMap<FragKey, Entry>>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for FragTable {
    fn default() -> Self {
        FragTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }
}

impl FragTable {
    fn shard(&self, key: &FragKey) -> MutexGuard<'_, HashMap<FragKey, Entry>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A poisoned shard is still a valid map (see the flow table).
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a forwarded first fragment's way (unless its shard is full).
    pub fn remember(&self, key: FragKey, from: PortId, way: FragWay, now: Stamp) {
        let mut shard = self.shard(&key);
        if shard.len() < SHARD_CAP || shard.contains_key(&key) {
            shard.insert(key, Entry { from, way, last_seen: now });
        }
    }

    /// The way of a later fragment's datagram read from `from`, refreshing it.
    pub fn follow(&self, key: &FragKey, from: PortId, now: Stamp) -> Option<FragWay> {
        let mut shard = self.shard(key);
        let e = shard.get_mut(key).filter(|e| e.from == from)?;
        e.last_seen = now;
        Some(e.way)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every decision.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Forgets decisions idle for [`FRAG_IDLE`]; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let now = Stamp::at(now);
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = map.len();
            map.retain(|_, e| e.last_seen.idle(now) < FRAG_IDLE);
            removed += before - map.len();
        }
        removed
    }
}
