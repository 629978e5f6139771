//! IPv4 longest-prefix-match table: a compiled DIR-16-8-8 multibit trie with leaf pushing.
//!
//! # Layout
//!
//! * `root` has 65,536 entries, one per /16 block (indexed by the top 16 address bits); it is
//!   allocated on the first insert, so an empty table (e.g. a `Default` snapshot) costs nothing,
//!   and an unallocated root reads as all `EMPTY`.
//! * `l2` is a pool of 256-entry chunks; a chunk splits one /16 block into its /24 blocks.
//! * `l3` is a pool of 256-entry chunks; a chunk splits one /24 block into its addresses.
//! * Route values live in a slab (`values`, with the matching prefixes in `Trie::nets`);
//!   the trie stores only small integer ids into that slab.
//!
//! Every `u32` entry is one of:
//! * `EMPTY` (0): no route covers the entry's block;
//! * a leaf id `slot + 1` (bit 31 clear): route `slot` is the longest prefix covering the
//!   entry's *whole* block, and no longer prefix lies inside the block;
//! * `CHUNK_FLAG | c` (only in `root` and `l2`): the block contains at least one prefix longer
//!   than the block (/16 for root, /24 for l2), and chunk `c` of the next level resolves it.
//!
//! # Invariants
//!
//! 1. A chunk exists if and only if its block contains a prefix longer than the block; so the
//!    shape of the trie is a function of the route set alone (removal collapses chunks whose
//!    entries have become a single uniform leaf).
//! 2. Leaf entries are leaf-pushed: an entry holds the longest route of length <= its level's
//!    depth (16, 24 or 32) that covers it. Hence the lookup is at most three array reads.
//! 3. `routes` (the side map) holds exactly the live prefixes, normalised (host bits clear),
//!    keyed by (network address, length), and maps each to its slab slot; every leaf id in the
//!    trie names a live slot, and every freed slot is on `free_slots`.
//!
//! Insert and remove are incremental: they repaint only the entries inside the prefix's own
//! range (descending into the chunks found there), never the whole table.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

const ROOT_LEN: usize = 1 << 16;
const CHUNK_LEN: usize = 256;
const EMPTY: u32 = 0;
const CHUNK_FLAG: u32 = 1 << 31;
/// Leaf ids are `slot + 1` and must stay below `CHUNK_FLAG`.
const MAX_ROUTES: usize = (CHUNK_FLAG - 1) as usize;

/// Compiled IPv4 longest-prefix-match table mapping prefixes to values of type T.
#[derive(Clone)]
pub struct Lpm<T> {
    trie: Trie,
    /// Slab of values, indexed by slot; `None` for freed slots (listed in `free_slots`).
    values: Vec<Option<T>>,
    free_slots: Vec<u32>,
    /// Exact prefixes: (network address, prefix length) -> slot. Drives insert/remove/iter.
    routes: BTreeMap<(u32, u8), u32>,
}

/// The value-independent part of the table: the three levels plus the prefix of every slot.
#[derive(Clone)]
struct Trie {
    /// Empty until the first insert, then exactly `ROOT_LEN` entries.
    root: Vec<u32>,
    l2: Vec<u32>,
    l3: Vec<u32>,
    l2_free: Vec<u32>,
    l3_free: Vec<u32>,
    /// Prefix of each slab slot (stale for freed slots, which no entry references).
    nets: Vec<Ipv4Net>,
}

/// How a range of leaf entries is rewritten.
#[derive(Clone, Copy)]
enum Paint {
    /// Insert: leaf `id` of length `len` replaces every leaf that is empty or shorter.
    Cover { id: u32, len: u8 },
    /// Remove: every leaf equal to `from` becomes `to` (the next-shorter covering route).
    Replace { from: u32, to: u32 },
}

fn leaf_id(slot: u32) -> u32 {
    slot + 1
}

fn chunk_of(entry: u32) -> Option<usize> {
    (entry & CHUNK_FLAG != 0).then_some((entry & !CHUNK_FLAG) as usize)
}

fn mask(len: u8) -> u32 {
    // `u32::MAX << 32` would overflow, so /0 is special-cased.
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

fn key_of(net: Ipv4Net) -> (u32, u8) {
    (u32::from(net.network()), net.prefix_len())
}

/// The single leaf value of a chunk whose entries are all the same leaf, if any.
fn uniform(chunk: &[u32]) -> Option<u32> {
    let first = *chunk.first()?;
    (first & CHUNK_FLAG == 0 && chunk.iter().all(|&e| e == first)).then_some(first)
}

/// Takes a chunk from `free` (refilling it) or grows `pool` by one chunk; returns its number.
fn alloc_chunk(pool: &mut Vec<u32>, free: &mut Vec<u32>, fill: u32) -> u32 {
    if let Some(c) = free.pop() {
        let start = c as usize * CHUNK_LEN;
        pool[start..start + CHUNK_LEN].fill(fill);
        c
    } else {
        let c = pool.len() / CHUNK_LEN;
        // At most 2^16 l2 chunks exist (one per /16) and 2^24 l3 chunks (one per /24),
        // both far below the 2^31 chunk numbers an entry can encode.
        debug_assert!(c < CHUNK_FLAG as usize);
        pool.resize(pool.len() + CHUNK_LEN, fill);
        c as u32
    }
}

impl Trie {
    fn new() -> Self {
        Trie {
            root: Vec::new(),
            l2: Vec::new(),
            l3: Vec::new(),
            l2_free: Vec::new(),
            l3_free: Vec::new(),
            nets: Vec::new(),
        }
    }

    /// The leaf entry (`EMPTY` or a leaf id) for `addr`. Never panics, never allocates.
    #[inline]
    fn find(&self, addr: u32) -> u32 {
        // `get` rather than indexing here and below: a missing root (empty table) or a
        // dangling chunk number (a bug) must degrade to "no route", never panic.
        let Some(&(mut e)) = self.root.get((addr >> 16) as usize) else {
            return EMPTY;
        };
        if e & CHUNK_FLAG != 0 {
            let i = (((e & !CHUNK_FLAG) as usize) << 8) | ((addr >> 8) & 0xff) as usize;
            e = self.l2.get(i).copied().unwrap_or(EMPTY);
            if e & CHUNK_FLAG != 0 {
                let i = (((e & !CHUNK_FLAG) as usize) << 8) | (addr & 0xff) as usize;
                e = self.l3.get(i).copied().unwrap_or(EMPTY);
            }
        }
        e
    }

    fn len_of(&self, leaf: u32) -> u8 {
        self.nets.get((leaf - 1) as usize).map_or(0, |n| n.prefix_len())
    }

    /// Whether leaf entry `e` is rewritten by `op`, and to what.
    fn repaint(&self, e: u32, op: Paint) -> Option<u32> {
        match op {
            // Equal length inside the range would mean the same prefix, which insert handles
            // without painting, so "shorter" is the whole condition.
            Paint::Cover { id, len } => (e == EMPTY || self.len_of(e) < len).then_some(id),
            Paint::Replace { from, to } => (e == from).then_some(to),
        }
    }

    fn paint_root(&mut self, start: usize, count: usize, op: Paint) {
        for i in start..start + count {
            let e = self.root[i];
            if let Some(c) = chunk_of(e) {
                self.paint_l2(c, 0, CHUNK_LEN, op);
            } else if let Some(new) = self.repaint(e, op) {
                self.root[i] = new;
            }
        }
    }

    fn paint_l2(&mut self, chunk: usize, start: usize, count: usize, op: Paint) {
        let base = chunk * CHUNK_LEN;
        for i in base + start..base + start + count {
            let e = self.l2[i];
            if let Some(c) = chunk_of(e) {
                self.paint_l3(c, 0, CHUNK_LEN, op);
            } else if let Some(new) = self.repaint(e, op) {
                self.l2[i] = new;
            }
        }
    }

    fn paint_l3(&mut self, chunk: usize, start: usize, count: usize, op: Paint) {
        let base = chunk * CHUNK_LEN;
        for i in base + start..base + start + count {
            if let Some(new) = self.repaint(self.l3[i], op) {
                self.l3[i] = new;
            }
        }
    }

    /// The l2 chunk under root entry `i`, creating it (filled with the old leaf) if needed.
    fn ensure_l2(&mut self, i: usize) -> usize {
        let e = self.root[i];
        if let Some(c) = chunk_of(e) {
            return c;
        }
        let c = alloc_chunk(&mut self.l2, &mut self.l2_free, e);
        self.root[i] = CHUNK_FLAG | c;
        c as usize
    }

    /// The l3 chunk under entry `j` of l2 chunk `c2`, creating it if needed.
    fn ensure_l3(&mut self, c2: usize, j: usize) -> usize {
        let slot = c2 * CHUNK_LEN + j;
        let e = self.l2[slot];
        if let Some(c) = chunk_of(e) {
            return c;
        }
        let c = alloc_chunk(&mut self.l3, &mut self.l3_free, e);
        self.l2[slot] = CHUNK_FLAG | c;
        c as usize
    }

    /// Paints leaf `id` for the (normalised) prefix `addr/len` over shorter routes.
    fn cover(&mut self, addr: u32, len: u8, id: u32) {
        if self.root.is_empty() {
            self.root = vec![EMPTY; ROOT_LEN];
        }
        let op = Paint::Cover { id, len };
        let i = (addr >> 16) as usize;
        if len <= 16 {
            self.paint_root(i, 1 << (16 - len), op);
            return;
        }
        let c2 = self.ensure_l2(i);
        let j = ((addr >> 8) & 0xff) as usize;
        if len <= 24 {
            self.paint_l2(c2, j, 1 << (24 - len), op);
            return;
        }
        let c3 = self.ensure_l3(c2, j);
        self.paint_l3(c3, (addr & 0xff) as usize, 1 << (32 - len), op);
    }

    /// Replaces leaf `from` (prefix `addr/len`) by `to` and collapses chunks left uniform.
    fn uncover(&mut self, addr: u32, len: u8, from: u32, to: u32) {
        let op = Paint::Replace { from, to };
        let i = (addr >> 16) as usize;
        if self.root.is_empty() {
            return; // nothing was ever inserted, so nothing to repaint
        }
        if len <= 16 {
            // Removing a short prefix cannot change whether any block holds longer prefixes,
            // so no chunk can become collapsible (invariant 1).
            self.paint_root(i, 1 << (16 - len), op);
            return;
        }
        // By invariant 1 the chunks exist while a prefix longer than /16 (/24) is present;
        // the early returns only guard against a broken invariant.
        let Some(c2) = chunk_of(self.root[i]) else {
            return;
        };
        let j = ((addr >> 8) & 0xff) as usize;
        if len <= 24 {
            self.paint_l2(c2, j, 1 << (24 - len), op);
        } else {
            let Some(c3) = chunk_of(self.l2[c2 * CHUNK_LEN + j]) else {
                return;
            };
            self.paint_l3(c3, (addr & 0xff) as usize, 1 << (32 - len), op);
            let base = c3 * CHUNK_LEN;
            if let Some(v) = uniform(&self.l3[base..base + CHUNK_LEN]) {
                // Uniform means no prefix longer than /24 is left in this /24 (any such prefix
                // would own entries that its complement in the block does not).
                self.l2[c2 * CHUNK_LEN + j] = v;
                self.l3_free.push(c3 as u32);
            }
        }
        let base = c2 * CHUNK_LEN;
        if let Some(v) = uniform(&self.l2[base..base + CHUNK_LEN]) {
            self.root[i] = v;
            self.l2_free.push(c2 as u32);
        }
    }

    fn memory_bytes(&self) -> usize {
        (self.root.capacity() + self.l2.capacity() + self.l3.capacity()) * size_of::<u32>()
            + (self.l2_free.capacity() + self.l3_free.capacity()) * size_of::<u32>()
            + self.nets.capacity() * size_of::<Ipv4Net>()
    }
}

impl<T: Clone> Lpm<T> {
    pub fn new() -> Self {
        Lpm {
            trie: Trie::new(),
            values: Vec::new(),
            free_slots: Vec::new(),
            routes: BTreeMap::new(),
        }
    }

    /// Builds from routes; when the same prefix appears twice, the later one wins.
    pub fn from_routes<I: IntoIterator<Item = (Ipv4Net, T)>>(routes: I) -> Self {
        let mut all: Vec<(Ipv4Net, T)> =
            routes.into_iter().map(|(net, v)| (net.trunc(), v)).collect();
        // Shortest prefixes first: each insert then paints only leaves, never walking chunks
        // created by longer prefixes, which makes the build roughly linear. The sort is
        // stable, so duplicates keep their input order and the last one can win below.
        all.sort_by_key(|(net, _)| (net.prefix_len(), u32::from(net.network())));
        let mut lpm = Self::new();
        lpm.values.reserve(all.len());
        lpm.trie.nets.reserve(all.len());
        let mut it = all.into_iter().peekable();
        while let Some((net, v)) = it.next() {
            if it.peek().is_some_and(|(next, _)| *next == net) {
                continue; // a later duplicate overrides this one
            }
            lpm.insert(net, v);
        }
        lpm
    }

    /// Inserts or replaces; returns the previous value for exactly that prefix.
    ///
    /// Panics only if the table would exceed 2^31 - 1 routes (far beyond available memory).
    pub fn insert(&mut self, prefix: Ipv4Net, value: T) -> Option<T> {
        let net = prefix.trunc();
        let key = key_of(net);
        if let Some(&slot) = self.routes.get(&key) {
            // Same prefix: the trie already points at this slot, only the value changes.
            return self.values.get_mut(slot as usize).and_then(|v| v.replace(value));
        }
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.values[s as usize] = Some(value);
                self.trie.nets[s as usize] = net;
                s
            }
            None => {
                assert!(self.values.len() < MAX_ROUTES, "Lpm supports at most 2^31 - 1 routes");
                self.values.push(Some(value));
                self.trie.nets.push(net);
                (self.values.len() - 1) as u32
            }
        };
        self.routes.insert(key, slot);
        self.trie.cover(key.0, key.1, leaf_id(slot));
        None
    }

    /// Removes exactly that prefix; returns its value.
    pub fn remove(&mut self, prefix: Ipv4Net) -> Option<T> {
        let (addr, len) = key_of(prefix.trunc());
        let slot = self.routes.remove(&(addr, len))?;
        let to = self.covering(addr, len);
        self.trie.uncover(addr, len, leaf_id(slot), to);
        self.free_slots.push(slot);
        self.values.get_mut(slot as usize).and_then(Option::take)
    }

    /// Leaf id of the longest live prefix strictly shorter than `addr/len` covering it.
    fn covering(&self, addr: u32, len: u8) -> u32 {
        (0..len)
            .rev()
            .find_map(|l| self.routes.get(&(addr & mask(l), l)))
            .map_or(EMPTY, |&slot| leaf_id(slot))
    }

    /// Longest-prefix match for an address given as a host-order u32. Never allocates.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<&T> {
        let slot = self.trie.find(addr).checked_sub(1)?;
        self.values.get(slot as usize)?.as_ref()
    }

    /// Like lookup, also returning the matched prefix.
    #[inline]
    pub fn lookup_prefix(&self, addr: u32) -> Option<(Ipv4Net, &T)> {
        let slot = self.trie.find(addr).checked_sub(1)? as usize;
        let value = self.values.get(slot)?.as_ref()?;
        Some((*self.trie.nets.get(slot)?, value))
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Approximate heap bytes used by the lookup structure: the three trie levels plus the
    /// value slab (with its prefixes). Excludes the exact-prefix side map, see
    /// [`Lpm::control_bytes`].
    pub fn memory_bytes(&self) -> usize {
        self.trie.memory_bytes()
            + self.values.capacity() * size_of::<Option<T>>()
            + self.free_slots.capacity() * size_of::<u32>()
    }

    /// Rough estimate of the heap bytes of the side map used only by insert/remove/iter
    /// (B-tree nodes hold up to 11 entries; assume them about 2/3 full).
    pub fn control_bytes(&self) -> usize {
        self.routes.len() * (size_of::<(u32, u8)>() + size_of::<u32>()) * 3 / 2
    }

    /// All prefixes and values, in ascending (address, prefix length) order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Net, &T)> {
        self.routes.iter().filter_map(|(&(addr, len), &slot)| {
            let value = self.values.get(slot as usize)?.as_ref()?;
            // `len` came from a valid Ipv4Net, so `new` cannot fail; the default is unused.
            Some((Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or_default(), value))
        })
    }
}

impl<T: Clone> Default for Lpm<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Lpm<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lpm").field("prefixes", &self.routes.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    impl<T: Clone> Lpm<T> {
        /// Checks invariants 1-3 of the module doc exhaustively (slow; tests only).
        fn check_invariants(&self) {
            let t = &self.trie;
            let live: BTreeSet<u32> = self.routes.values().copied().collect();
            assert_eq!(live.len(), self.routes.len());
            for (&(addr, len), &slot) in &self.routes {
                assert_eq!(addr & mask(len), addr, "normalised");
                assert_eq!(key_of(t.nets[slot as usize]), (addr, len));
                assert!(self.values[slot as usize].is_some());
            }
            let free: BTreeSet<u32> = self.free_slots.iter().copied().collect();
            assert_eq!(free.len(), self.free_slots.len());
            assert_eq!(free.len() + live.len(), self.values.len());
            for &s in &free {
                assert!(self.values[s as usize].is_none());
            }
            let leaf_ok = |e: u32| e == EMPTY || live.contains(&(e - 1));
            let mut l2_used = BTreeSet::new();
            let mut l3_used = BTreeSet::new();
            for &e in t.root.iter() {
                let Some(c2) = chunk_of(e) else {
                    assert!(leaf_ok(e));
                    continue;
                };
                assert!(l2_used.insert(c2), "l2 chunk shared");
                let chunk = &t.l2[c2 * CHUNK_LEN..][..CHUNK_LEN];
                assert!(uniform(chunk).is_none(), "collapsible l2 chunk kept");
                for &e in chunk {
                    let Some(c3) = chunk_of(e) else {
                        assert!(leaf_ok(e));
                        continue;
                    };
                    assert!(l3_used.insert(c3), "l3 chunk shared");
                    let chunk = &t.l3[c3 * CHUNK_LEN..][..CHUNK_LEN];
                    assert!(uniform(chunk).is_none(), "collapsible l3 chunk kept");
                    assert!(chunk.iter().all(|&e| chunk_of(e).is_none() && leaf_ok(e)));
                }
            }
            assert_eq!(l2_used.len() + t.l2_free.len(), t.l2.len() / CHUNK_LEN);
            assert_eq!(l3_used.len() + t.l3_free.len(), t.l3.len() / CHUNK_LEN);
            assert!(t.l2_free.iter().all(|c| !l2_used.contains(&(*c as usize))));
            assert!(t.l3_free.iter().all(|c| !l3_used.contains(&(*c as usize))));
        }
    }

    /// Reference: longest matching prefix by linear scan.
    fn brute(model: &BTreeMap<(u32, u8), u32>, addr: u32) -> Option<(Ipv4Net, &u32)> {
        model
            .iter()
            .filter(|&(&(a, l), _)| addr & mask(l) == a)
            .max_by_key(|&(&(_, l), _)| l)
            .map(|(&(a, l), v)| (Ipv4Net::new(Ipv4Addr::from(a), l).unwrap(), v))
    }

    #[test]
    fn empty_table() {
        let t: Lpm<u32> = Lpm::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        for a in [0, 1, 0x0a00_0001, u32::MAX] {
            assert_eq!(t.lookup(a), None);
            assert_eq!(t.lookup_prefix(a), None);
        }
        assert_eq!(t.iter().count(), 0);
        assert_eq!(t.memory_bytes(), 0, "an empty table allocates nothing");
        assert_eq!(format!("{t:?}"), "Lpm { prefixes: 0, .. }");
        let mut t = Lpm::<u32>::default();
        assert_eq!(t.remove(net("10.0.0.0/8")), None);
        t.check_invariants();
    }

    #[test]
    fn default_route() {
        let mut t = Lpm::new();
        assert_eq!(t.insert(net("0.0.0.0/0"), 7), None);
        for a in [0, 0x7fff_ffff, 0x8000_0000, u32::MAX] {
            assert_eq!(t.lookup_prefix(a), Some((net("0.0.0.0/0"), &7)));
        }
        // Non-normalised input is truncated.
        assert_eq!(t.insert(net("1.2.3.4/0"), 8), Some(7));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(net("9.9.9.9/0")), Some(8));
        assert_eq!(t.lookup(5), None);
        t.check_invariants();
    }

    #[test]
    fn host_routes() {
        let mut t = Lpm::new();
        t.insert(net("255.255.255.255/32"), 1);
        t.insert(net("0.0.0.0/32"), 2);
        t.insert(net("10.1.2.3/32"), 3);
        assert_eq!(t.lookup(u32::MAX), Some(&1));
        assert_eq!(t.lookup(u32::MAX - 1), None);
        assert_eq!(t.lookup(0), Some(&2));
        assert_eq!(t.lookup(1), None);
        assert_eq!(t.lookup_prefix(ip("10.1.2.3")), Some((net("10.1.2.3/32"), &3)));
        assert_eq!(t.lookup(ip("10.1.2.4")), None);
        assert_eq!(t.lookup(ip("10.1.2.2")), None);
        t.check_invariants();
        for n in ["255.255.255.255/32", "0.0.0.0/32", "10.1.2.3/32"] {
            assert!(t.remove(net(n)).is_some());
        }
        t.check_invariants();
        assert!(t.trie.l2_free.len() == 3 && t.trie.l3_free.len() == 3, "chunks collapsed");
    }

    #[test]
    fn nested_prefixes() {
        let mut t = Lpm::new();
        // Inserted longest-first so painting must skip longer leaves and descend into chunks.
        t.insert(net("10.0.1.128/25"), 25);
        t.insert(net("10.0.1.0/24"), 24);
        t.insert(net("10.0.0.0/16"), 16);
        t.insert(net("10.0.0.0/8"), 8);
        t.check_invariants();
        assert_eq!(t.lookup(ip("10.0.1.200")), Some(&25));
        assert_eq!(t.lookup(ip("10.0.1.127")), Some(&24));
        assert_eq!(t.lookup(ip("10.0.1.0")), Some(&24));
        assert_eq!(t.lookup(ip("10.0.2.0")), Some(&16));
        assert_eq!(t.lookup(ip("10.0.0.255")), Some(&16));
        assert_eq!(t.lookup(ip("10.1.0.0")), Some(&8));
        assert_eq!(t.lookup(ip("10.255.255.255")), Some(&8));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(t.lookup(ip("9.255.255.255")), None);
        let order: Vec<_> = t.iter().map(|(n, &v)| (n.to_string(), v)).collect();
        assert_eq!(
            order,
            [
                ("10.0.0.0/8".to_string(), 8),
                ("10.0.0.0/16".into(), 16),
                ("10.0.1.0/24".into(), 24),
                ("10.0.1.128/25".into(), 25)
            ]
        );
    }

    #[test]
    fn replace_same_prefix() {
        let mut t = Lpm::new();
        t.insert(net("10.0.0.0/16"), 1);
        t.insert(net("10.0.1.0/24"), 2);
        assert_eq!(t.insert(net("10.0.0.0/16"), 3), Some(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(&3));
        assert_eq!(t.lookup(ip("10.0.1.1")), Some(&2));
        let t2 = Lpm::from_routes([
            (net("10.0.0.0/16"), 1),
            (net("10.0.1.0/24"), 2),
            (net("10.0.0.0/16"), 3),
        ]);
        assert_eq!(t2.lookup(ip("10.0.0.1")), Some(&3));
        assert_eq!(t2.len(), 2);
        t.check_invariants();
        t2.check_invariants();
    }

    #[test]
    fn remove_restores_shorter_match() {
        let mut t = Lpm::new();
        t.insert(net("10.0.0.0/8"), 8);
        t.insert(net("10.0.0.0/16"), 16);
        t.insert(net("10.0.1.0/24"), 24);
        t.insert(net("10.0.1.1/32"), 32);
        assert_eq!(t.lookup(ip("10.0.1.1")), Some(&32));
        assert_eq!(t.remove(net("10.0.1.1/32")), Some(32));
        assert_eq!(t.lookup(ip("10.0.1.1")), Some(&24));
        assert_eq!(t.remove(net("10.0.1.0/24")), Some(24));
        assert_eq!(t.lookup_prefix(ip("10.0.1.1")), Some((net("10.0.0.0/16"), &16)));
        // Removing the middle level exposes the /8 underneath.
        assert_eq!(t.remove(net("10.0.0.0/16")), Some(16));
        assert_eq!(t.lookup(ip("10.0.1.1")), Some(&8));
        assert_eq!(t.remove(net("10.0.0.0/16")), None);
        t.check_invariants();
        // Only the /8 is left, so no chunk remains in use.
        assert_eq!(t.trie.l2_free.len() * CHUNK_LEN, t.trie.l2.len());
        assert_eq!(t.trie.l3_free.len() * CHUNK_LEN, t.trie.l3.len());
        // Removing a shorter prefix under a longer one keeps the longer one.
        t.insert(net("10.0.1.0/24"), 24);
        assert_eq!(t.remove(net("10.0.0.0/8")), Some(8));
        assert_eq!(t.lookup(ip("10.0.1.9")), Some(&24));
        assert_eq!(t.lookup(ip("10.0.2.9")), None);
        t.check_invariants();
    }

    #[test]
    fn aws_guide_example() {
        let t = Lpm::from_routes([
            (net("10.0.0.0/16"), "local"),
            (net("0.0.0.0/0"), "igw"),
            (net("54.123.160.0/19"), "pcx-19"),
            (net("54.123.165.0/24"), "pcx-24"),
        ]);
        assert_eq!(t.lookup_prefix(ip("54.123.165.7")), Some((net("54.123.165.0/24"), &"pcx-24")));
        assert_eq!(t.lookup_prefix(ip("54.123.170.5")), Some((net("54.123.160.0/19"), &"pcx-19")));
        assert_eq!(t.lookup_prefix(ip("8.8.8.8")), Some((net("0.0.0.0/0"), &"igw")));
        assert_eq!(t.lookup_prefix(ip("10.0.3.4")), Some((net("10.0.0.0/16"), &"local")));
        t.check_invariants();
    }

    #[test]
    fn clone_is_independent() {
        let mut a = Lpm::from_routes([(net("10.0.0.0/8"), 1u32)]);
        let b = a.clone();
        a.insert(net("10.0.0.0/24"), 2);
        assert_eq!(b.lookup(ip("10.0.0.1")), Some(&1));
        assert_eq!(a.lookup(ip("10.0.0.1")), Some(&2));
        assert!(a.memory_bytes() > b.memory_bytes());
    }

    /// Prefixes clustered around a few bases (so they nest), lengths biased to 8..=24.
    fn arb_prefix() -> impl Strategy<Value = Ipv4Net> {
        const BASES: [u32; 5] = [0x0a00_0000, 0x367b_a000, 0xc0a8_0000, 0xffff_ff00, 0];
        let addr = prop_oneof![
            3 => (0..BASES.len(), any::<u32>()).prop_map(|(b, r)| BASES[b] ^ (r & 0x0003_ffff)),
            2 => (0..BASES.len(), any::<u32>()).prop_map(|(b, r)| BASES[b] ^ (r & 0x0000_03ff)),
            1 => any::<u32>(),
        ];
        let len = prop_oneof![1 => 0u8..=32, 5 => 8u8..=24, 2 => 25u8..=32, 1 => 0u8..=7];
        (addr, len).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
    }

    /// Addresses at and around the edges and middle of `n`.
    fn edges(n: Ipv4Net) -> [u32; 5] {
        let lo = u32::from(n.network());
        let hi = u32::from(n.broadcast());
        [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1), lo + (hi - lo) / 2]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_brute_force(
            pool in prop::collection::vec(arb_prefix(), 1..40),
            ops in prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<u32>()),
                                         0..120),
            probes in prop::collection::vec(any::<u32>(), 64),
        ) {
            let mut t = Lpm::new();
            let mut model = BTreeMap::new();
            for &(kind, idx, v) in &ops {
                let n = pool[idx.index(pool.len())];
                if kind < 2 {
                    prop_assert_eq!(t.insert(n, v), model.insert(key_of(n), v));
                } else {
                    prop_assert_eq!(t.remove(n), model.remove(&key_of(n)));
                }
            }
            t.check_invariants();
            prop_assert_eq!(t.len(), model.len());
            let got: Vec<_> = t.iter().map(|(n, &v)| (key_of(n), v)).collect();
            let want: Vec<_> = model.iter().map(|(&k, &v)| (k, v)).collect();
            prop_assert_eq!(got, want);
            let built = Lpm::from_routes(model.iter().map(|(&(a, l), &v)| {
                (Ipv4Net::new(Ipv4Addr::from(a), l).unwrap(), v)
            }));
            built.check_invariants();
            let addrs = probes.iter().copied().chain(pool.iter().flat_map(|&n| edges(n)));
            for a in addrs {
                let want = brute(&model, a);
                prop_assert_eq!(t.lookup_prefix(a), want, "addr {}", Ipv4Addr::from(a));
                prop_assert_eq!(t.lookup(a), want.map(|(_, v)| v));
                prop_assert_eq!(built.lookup_prefix(a), want);
            }
        }

        /// Every address of one /16 against brute force, with deep nesting inside it.
        #[test]
        fn exhaustive_one_block(
            routes in prop::collection::vec(
                (any::<u16>(), prop_oneof![4 => 16u8..=32, 1 => 0u8..=15], any::<u32>()), 0..40),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut t = Lpm::new();
            let mut model = BTreeMap::new();
            for &(low, len, v) in &routes {
                let n = Ipv4Net::new(Ipv4Addr::from(0x0a01_0000 | u32::from(low)), len)
                    .unwrap().trunc();
                prop_assert_eq!(t.insert(n, v), model.insert(key_of(n), v));
            }
            for idx in removals {
                if let Some(&(low, len, _)) = routes.get(idx.index(routes.len().max(1))) {
                    let n = Ipv4Net::new(Ipv4Addr::from(0x0a01_0000 | u32::from(low)), len)
                        .unwrap().trunc();
                    prop_assert_eq!(t.remove(n), model.remove(&key_of(n)));
                }
            }
            t.check_invariants();
            // Reference by painting the block shortest-prefix-first (a linear scan per address
            // would be too slow in debug builds); ties cannot occur since keys are unique.
            let mut want: Vec<Option<(Ipv4Net, u32)>> = vec![None; 1 << 16];
            let mut sorted: Vec<_> = model.iter().collect();
            sorted.sort_by_key(|&(&(_, l), _)| l);
            for (&(a, l), &v) in sorted {
                let n = Ipv4Net::new(Ipv4Addr::from(a), l).unwrap();
                let lo = u32::from(n.network()).max(0x0a01_0000);
                let hi = u32::from(n.broadcast()).min(0x0a01_ffff);
                for x in lo..=hi {
                    want[(x & 0xffff) as usize] = Some((n, v));
                }
            }
            for low in 0..=u16::MAX {
                let a = 0x0a01_0000 | u32::from(low);
                let w = want[usize::from(low)];
                prop_assert_eq!(t.lookup_prefix(a), w.as_ref().map(|(n, v)| (*n, v)));
            }
            // Spot-check the painted reference itself against the linear scan.
            for low in [0u16, 1, 0x7fff, 0x8000, 0xfffe, 0xffff] {
                let a = 0x0a01_0000 | u32::from(low);
                prop_assert_eq!(t.lookup_prefix(a), brute(&model, a));
            }
        }
    }
}
