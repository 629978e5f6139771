//! A route table's forwarding table as the data plane reads it: a flat Poptrie-style array
//! (one direct-indexed entry per /16, one compressed 256-way node per /16 holding longer
//! routes) with left-right updates, so that a lookup costs a few cache-resident loads in a
//! quarter of DIR-24-8's memory, and an update is visible in a few microseconds.
//!
//! # Layout of one side
//!
//! ```text
//! top[65536]  u32 per /16: node index (17 bits; 0 = the empty node) << 15 | default (15 bits:
//!             the value id of the longest route /0../16 covering the /16, 0 = none)
//! nodes[4n..] node n: four 16-byte quads, one per 64 /24 entries: bit i of the quad's word
//!             set iff entry 64q + i starts a run of equal leaves; the leaf index of the quad's
//!             first run (the node's leaf base plus the runs started before it); where the
//!             node's kids start
//! leaves      u16 per run: 0 = "no route longer than /16": the /16's default; id = vals[id];
//!             CHILD | k: kid (kid base + k) resolves the last 8 bits of that /24, the same way
//! vals        vals[0] = None, vals[id] = Some(value), as the writer numbered them
//! ```
//!
//! A lookup reads `top`, one quad of the node (one cache line), one leaf and the value:
//! one popcount, no branch but the rare kid's (the default is chosen without one), no pointer
//! chasing through intermediate levels, no allocation, no lock, no `unsafe`, only checked
//! indexing. A /16 without a node points at node 0, the empty node (one run, leaf 0: "use the
//! default"), so both kinds of /16 take the same path.
//!
//! # Updates: left-right
//!
//! Every [`Fib`] of one lineage shares a writer (behind a mutex; the control plane's, never
//! taken by lookups) that keeps the exact routes, the value ids and two sides. A `Fib` is one
//! version: its side is never mutated while that `Fib` (or a clone of it: a snapshot) exists.
//! [`Fib::update`] applies the change to the exact routes, then brings the *other* side up to
//! date in place (the /16 nodes and default spans the previous and this change touched) and
//! returns the new version on it. It may mutate the other side only when no `Fib` of the
//! version before holds it (`Arc::get_mut`); readers hold a snapshot for one packet, so the
//! writer waits briefly (readers never wait), and past [`READER_WAIT`] it copies the side
//! instead. An update thus costs a node rebuild or two, independent of the table's size;
//! memory is two sides (about 3.8 MiB each for a full BGP table) plus the exact routes (about
//! 6.5 MiB). Value ids are the writer's, append-only (a side copies the new ones when it is
//! refreshed) and renumbered only when 32,767 are used (`Writer::compact`), after which the
//! other side is built afresh.
//!
//! Invariants:
//! 1. A side's content is a function of the exact routes: the default of `top[h]` is the value
//!    of the longest route /0../16 covering /16 `h`; `top[h]` has a node iff a route longer than
//!    /16 is in `h`, compiled from `h`'s routes (`node_entries`).
//! 2. The writer's current side (`cur`) is that function of its routes; the other side is too,
//!    except for the /16s and spans in `pending`.
//! 3. A `Fib` whose version is the writer's has the current side.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

/// `top` fields: the node index from this bit up, the default in the 15 bits below.
const NODE_SHIFT: u32 = 15;
const DEFAULT_MASK: u32 = 0x7fff;
/// Leaf flag: the entry is a kid.
const CHILD: u16 = 1 << 15;
/// Largest value id.
const MAX_ID: usize = (CHILD - 1) as usize;
/// How long an update waits for readers to leave the side it wants to write before copying it.
pub const READER_WAIT: Duration = Duration::from_millis(2);

/// Run starts of 256 entries, one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(32))]
struct Bits([u64; 4]);

impl Bits {
    /// Runs started in the words before each word, one byte per word (at most 192).
    fn cum(&self) -> u32 {
        let c = |k: usize| self.0[..k].iter().map(|w| w.count_ones()).sum::<u32>();
        c(1) << 8 | c(2) << 16 | c(3) << 24
    }

    /// Run index of entry `i` (0..256): runs started at or before it, minus one, with the
    /// counts of [`Bits::cum`]: one popcount.
    #[inline(always)]
    fn rank(&self, cum: u32, i: u32) -> usize {
        let w = (i >> 6) & 3;
        let below = self.0[w as usize] & (u64::MAX >> (63 - (i & 63)));
        (((cum >> (8 * w)) & 0xff) + below.count_ones()) as usize - 1
    }

    fn runs(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The run starts of `entries` and the entry of each run.
    fn of(entries: &[u16; 256], leaves: &mut Vec<u16>) -> Bits {
        let mut bits = [0u64; 4];
        leaves.clear();
        for (i, &e) in entries.iter().enumerate() {
            if i == 0 || entries[i - 1] != e {
                bits[i >> 6] |= 1 << (i & 63);
                leaves.push(e);
            }
        }
        Bits(bits)
    }
}

/// A quarter of a node: 64 of its run starts, with what a lookup needs beside them, so that
/// a lookup reads one 16-byte block (one cache line) of the node.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(16))]
struct Quad {
    /// Bit `i` set iff entry `64q + i` starts a run.
    word: u64,
    /// The leaf index of the first run started in this quarter (the node's leaf base plus the
    /// runs started in the quarters before).
    base: u32,
    /// Where the node's kids start (the same in all four).
    kid_base: u32,
}

impl Quad {
    fn of(bits: &Bits, base: u32, kid_base: u32) -> [Quad; 4] {
        let cum = bits.cum();
        std::array::from_fn(|q| Quad {
            word: bits.0[q],
            base: base + ((cum >> (8 * q)) & 0xff),
            kid_base,
        })
    }

    /// The node's run starts and leaf base, back from its four quads.
    fn bits(quads: &[Quad]) -> (Bits, u32) {
        (Bits(std::array::from_fn(|q| quads[q].word)), quads[0].base)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Kid {
    bits: Bits,
    base: u32,
    /// [`Bits::cum`].
    cum: u32,
}

/// Makes room for `more` elements, growing by a sixteenth (not doubling: a side's arrays are
/// megabytes, and a doubled capacity would be memory the table does not use).
fn grow<E>(arena: &mut Vec<E>, more: usize) {
    if arena.len() + more > arena.capacity() {
        arena.reserve_exact(more.max(arena.len() / 16));
    }
}

/// Free blocks of an arena, by length (1..=256).
#[derive(Clone, Debug)]
struct Free(Vec<Vec<u32>>);

impl Free {
    fn new() -> Free {
        Free(vec![Vec::new(); 257])
    }

    fn alloc<E: Copy + Default>(&mut self, arena: &mut Vec<E>, len: usize) -> u32 {
        if let Some(at) = self.0[len].pop() {
            return at;
        }
        let at = arena.len();
        grow(arena, len);
        arena.resize(at + len, E::default());
        at as u32
    }

    fn free(&mut self, at: u32, len: usize) {
        self.0[len].push(at);
    }
}

/// One side: what lookups read.
#[derive(Clone)]
struct Side<T> {
    top: Box<[u32; 1 << 16]>,
    /// Node `n` is `nodes[4n..4n + 4]`, one [`Quad`] per 64 of its entries.
    nodes: Vec<Quad>,
    kids: Vec<Kid>,
    leaves: Vec<u16>,
    /// The writer's value list as of this side's last refresh (ids never change meaning
    /// while a side holds them): `vals_len` of them, the rest `None`. Every id has a slot, so
    /// a lookup reads it without a bounds check (128 KiB for a 4-byte value; only the used
    /// ids' lines are ever read).
    vals: Box<[Option<T>; 1 << 15]>,
    vals_len: usize,
    free_nodes: Vec<u32>,
    free_leaves: Free,
    free_kids: Free,
}

/// A route longer than /16 as the writer keeps it in its /16's list: 6 bytes (a `(u32, u16)`
/// pair would take 8, and a full BGP table has 880,000 of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Exact {
    /// The address's low 16 bits.
    low: u16,
    len: u8,
    id: u16,
}

const _: () = assert!(std::mem::size_of::<Exact>() == 6);

impl Exact {
    fn new(key: u32, id: u16) -> Exact {
        Exact { low: (key >> 8) as u16, len: key as u8, id }
    }

    /// `low << 8 | len`: the order of the list.
    fn key(self) -> u32 {
        u32::from(self.low) << 8 | u32::from(self.len)
    }
}

/// Routes longer than /16 of one /16, sorted by [`Exact::key`].
type Long = Box<[Exact]>;

/// What the other side lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dirty {
    /// The node of this /16.
    Node(u16),
    /// The defaults of the /16s of this prefix (/0../16).
    Span(u32, u8),
}

struct Writer<T> {
    version: u64,
    long: Box<[Long]>,
    /// Routes /0../16: `(address, length) → value id`.
    short: BTreeMap<(u32, u8), u16>,
    /// `vals[id]`: the value of an id (`vals[0] = None`); append-only until [`Writer::compact`].
    vals: Vec<Option<T>>,
    ids: HashMap<T, u16>,
    /// Ids were renumbered: the sides' ids mean other values now.
    compacted: bool,
    len: usize,
    sides: [Option<Arc<Side<T>>>; 2],
    cur: usize,
    pending: Vec<Dirty>,
}

/// One version of a route table's forwarding table. Cloning is O(1); clones share everything.
#[derive(Clone)]
pub struct Fib<T> {
    side: Arc<Side<T>>,
    writer: Arc<Mutex<Writer<T>>>,
    version: u64,
    len: usize,
}

pub(super) fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

impl<T: Copy + Eq + Hash> Side<T> {
    fn new() -> Side<T> {
        Side {
            top: vec![0; 1 << 16].into_boxed_slice().try_into().expect("2^16 entries"),
            // Node 0 and leaf 0: what a /16 without a node points at (one run, "use the
            // default"), so that a lookup takes the same path, without a branch, either way.
            nodes: Quad::of(&Bits([1, 0, 0, 0]), 0, 0).to_vec(),
            kids: Vec::new(),
            leaves: vec![0],
            vals: vec![None; 1 << 15]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!()),
            vals_len: 1,
            free_nodes: Vec::new(),
            free_leaves: Free::new(),
            free_kids: Free::new(),
        }
    }

    fn build(w: &Writer<T>) -> Side<T> {
        let mut side = Side::new();
        side.vals[..w.vals.len()].copy_from_slice(&w.vals);
        side.vals_len = w.vals.len();
        side.repaint(w, 0, 0);
        let mut scratch = Vec::new();
        for h in 0..1u32 << 16 {
            if !w.long[h as usize].is_empty() {
                side.rebuild_node(w, h as u16, &mut scratch);
            }
        }
        // Exactly what it holds (updates grow it as they need).
        side.nodes.shrink_to_fit();
        side.leaves.shrink_to_fit();
        side
    }

    fn set_default(&mut self, lo: usize, hi: usize, id: u16) {
        for t in &mut self.top[lo..hi] {
            *t = (*t & !DEFAULT_MASK) | u32::from(id);
        }
    }

    /// Recomputes the defaults of the /16s of `addr/len` (len <= 16).
    fn repaint(&mut self, w: &Writer<T>, addr: u32, len: u8) {
        let lo = (addr >> 16) as usize;
        let hi = lo + (1usize << (16 - len));
        // The longest route containing the whole span, then every route inside it, shortest
        // first (so longer ones paint over).
        let cover = (0..=len).rev().find_map(|l| w.short.get(&(addr & mask(l), l)).copied());
        self.set_default(lo, hi, cover.unwrap_or(0));
        if len < 16 {
            let end = addr | !mask(len);
            let mut inner: Vec<(u8, u32, u16)> = w
                .short
                .range((addr, len + 1)..=(end, 16))
                .filter(|((a, l), _)| *l > len && *a & mask(len) == addr)
                .map(|(&(a, l), &v)| (l, a, v))
                .collect();
            inner.sort_by_key(|&(l, _, _)| l);
            for (l, a, id) in inner {
                let s = (a >> 16) as usize;
                self.set_default(s, s + (1usize << (16 - l)), id);
            }
        }
    }

    fn free_node(&mut self, n: u32) {
        let quads = &self.nodes[4 * n as usize..][..4];
        let kbase = quads[0].kid_base;
        let (bits, base) = Quad::bits(quads);
        let runs = bits.runs();
        let mut kids = 0;
        for i in 0..runs {
            if self.leaves[base as usize + i] & CHILD != 0 {
                let k = self.kids[(kbase + kids) as usize];
                self.free_leaves.free(k.base, k.bits.runs());
                kids += 1;
            }
        }
        if kids > 0 {
            self.free_kids.free(kbase, kids as usize);
        }
        self.free_leaves.free(base, runs);
        self.free_nodes.push(n);
    }

    /// Recompiles the node of /16 `h` from its routes (and its `top` entry).
    fn rebuild_node(&mut self, w: &Writer<T>, h: u16, scratch: &mut Vec<u16>) {
        let hi = usize::from(h);
        let t = self.top[hi];
        if t >> NODE_SHIFT != 0 {
            let n = t >> NODE_SHIFT;
            self.free_node(n);
        }
        let default = t & DEFAULT_MASK;
        let routes = &w.long[hi];
        if routes.is_empty() {
            self.top[hi] = default;
            return;
        }
        let (entries, kids) = node_entries(routes);
        // Kids first (their leaf blocks), then the node's leaves with the kid references.
        let kbase =
            if kids.is_empty() { 0 } else { self.free_kids.alloc(&mut self.kids, kids.len()) };
        for (k, kid_entries) in kids.iter().enumerate() {
            let bits = Bits::of(kid_entries, scratch);
            let base = self.free_leaves.alloc(&mut self.leaves, scratch.len());
            self.leaves[base as usize..base as usize + scratch.len()].copy_from_slice(scratch);
            self.kids[kbase as usize + k] = Kid { bits, base, cum: bits.cum() };
        }
        let bits = Bits::of(&entries, scratch);
        let base = self.free_leaves.alloc(&mut self.leaves, scratch.len());
        self.leaves[base as usize..base as usize + scratch.len()].copy_from_slice(scratch);
        let n = match self.free_nodes.pop() {
            Some(n) => n,
            None => {
                grow(&mut self.nodes, 4);
                self.nodes.extend([Quad::default(); 4]);
                (self.nodes.len() / 4 - 1) as u32
            }
        };
        self.nodes[4 * n as usize..][..4].copy_from_slice(&Quad::of(&bits, base, kbase));
        self.top[hi] = n << NODE_SHIFT | default;
    }

    #[inline(always)]
    fn lookup(&self, addr: u32) -> Option<T>
    where
        T: Copy,
    {
        let t = self.top[(addr >> 16) as usize & 0xffff];
        let default = (t & DEFAULT_MASK) as u16;
        let n = (t >> NODE_SHIFT) as usize;
        // The quarter of the node holding this /24's entry, and the runs started in it up to
        // the entry: one popcount.
        let i = (addr >> 8) & 0xff;
        let q = self.nodes.get(n << 2 | (i >> 6) as usize)?;
        let upto = (q.word << (!i & 63)).count_ones();
        let mut leaf = *self.leaves.get((q.base + upto) as usize - 1)?;
        if leaf & CHILD != 0 {
            let k = self.kids.get((q.kid_base + u32::from(leaf & !CHILD)) as usize)?;
            leaf = *self.leaves.get(k.base as usize + k.bits.rank(k.cum, addr & 0xff))?;
        }
        // The default's id where the leaf is 0, without a branch (one mispredicted on most
        // uniform addresses), then one read of the value. Written as a mask: as a `select`
        // (even `select_unpredictable`) LLVM compiled it into a branch here.
        let zero = (u32::from(leaf).wrapping_sub(1) >> 31).wrapping_neg();
        self.vals[(u32::from(leaf) | (u32::from(default) & zero)) as usize & MAX_ID]
    }

    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.top.len() * 4
            + self.nodes.capacity() * size_of::<Quad>()
            + self.kids.capacity() * size_of::<Kid>()
            + self.leaves.capacity() * 2
            + self.vals.len() * size_of::<Option<T>>()
            + self.free_nodes.capacity() * 4
            + [&self.free_leaves, &self.free_kids]
                .iter()
                .flat_map(|f| f.0.iter())
                .map(|v| v.capacity() * 4 + size_of::<Vec<u32>>())
                .sum::<usize>()
    }
}

/// The 256 leaf entries of a /16 (one per /24) and its kids' entries (one per address of a
/// /24 holding routes longer than /24), in /24 order; an entry of a /24 with a kid is
/// `CHILD | k`.
fn node_entries(routes: &[Exact]) -> ([u16; 256], Vec<[u16; 256]>) {
    let mut entries = [0u16; 256];
    let mut by_len: Vec<(u32, u16)> = routes.iter().map(|r| (r.key(), r.id)).collect();
    by_len.sort_by_key(|&(k, _)| k & 0xff);
    let mut longer = false;
    for &(k, v) in &by_len {
        let len = k & 0xff;
        if len > 24 {
            longer = true;
            continue;
        }
        let s = ((k >> 16) & 0xff) as usize;
        entries[s..s + (1usize << (24 - len))].fill(v);
    }
    let mut kids: Vec<[u16; 256]> = Vec::new();
    if longer {
        // Sorted by length, so each kid's routes come shortest first.
        let mut at: Vec<u8> = by_len
            .iter()
            .filter(|(k, _)| k & 0xff > 24)
            .map(|(k, _)| ((k >> 16) & 0xff) as u8)
            .collect();
        at.sort_unstable();
        at.dedup();
        for &s in &at {
            let mut kid = [entries[usize::from(s)]; 256];
            for &(k, v) in by_len.iter().filter(|(k, _)| k & 0xff > 24) {
                if ((k >> 16) & 0xff) as u8 != s {
                    continue;
                }
                let (o, len) = (((k >> 8) & 0xff) as usize, k & 0xff);
                kid[o..o + (1usize << (32 - len))].fill(v);
            }
            entries[usize::from(s)] = CHILD | kids.len() as u16;
            kids.push(kid);
        }
    }
    (entries, kids)
}

impl<T: Copy + Eq + Hash> Writer<T> {
    fn new() -> Writer<T> {
        Writer {
            version: 0,
            long: vec![Box::default(); 1 << 16].into_boxed_slice(),
            short: BTreeMap::new(),
            vals: vec![None],
            ids: HashMap::new(),
            compacted: false,
            len: 0,
            sides: [None, None],
            cur: 0,
            pending: Vec::new(),
        }
    }

    /// The id of a value, adding it; when the list is full, first renumbers the ids in use
    /// ([`Writer::compact`]). Panics past 32,767 distinct values in use at once (a route table
    /// has a handful of targets).
    fn id(&mut self, v: T) -> u16 {
        if let Some(&id) = self.ids.get(&v) {
            return id;
        }
        if self.vals.len() > MAX_ID {
            self.compact();
            assert!(self.vals.len() <= MAX_ID, "more than {MAX_ID} distinct values in one table");
        }
        let id = self.vals.len() as u16;
        self.vals.push(Some(v));
        self.ids.insert(v, id);
        id
    }

    /// Renumbers the ids to those the routes use.
    fn compact(&mut self) {
        let mut map = vec![0u16; self.vals.len()];
        let mut vals = vec![None];
        let used = self.long.iter().flat_map(|r| r.iter().map(|r| r.id));
        for id in used.chain(self.short.values().copied()) {
            if map[usize::from(id)] == 0 {
                map[usize::from(id)] = vals.len() as u16;
                vals.push(self.vals[usize::from(id)]);
            }
        }
        for routes in self.long.iter_mut() {
            for r in routes.iter_mut() {
                r.id = map[usize::from(r.id)];
            }
        }
        for id in self.short.values_mut() {
            *id = map[usize::from(*id)];
        }
        self.ids = vals.iter().enumerate().filter_map(|(i, v)| Some(((*v)?, i as u16))).collect();
        self.vals = vals;
        self.compacted = true;
    }

    /// Sets (`Some`) or removes (`None`) one route; returns what the other side will lack.
    fn set(&mut self, net: Ipv4Net, value: Option<T>) -> Option<Dirty> {
        let value = value.map(|v| self.id(v));
        let (addr, len) = (u32::from(net.network()) & mask(net.prefix_len()), net.prefix_len());
        if len <= 16 {
            let old = match value {
                Some(v) => self.short.insert((addr, len), v),
                None => self.short.remove(&(addr, len)),
            };
            self.count(old.is_some(), value.is_some());
            return (old != value).then_some(Dirty::Span(addr, len));
        }
        let h = (addr >> 16) as usize;
        let key = ((addr & 0xffff) << 8) | u32::from(len);
        let routes = &mut self.long[h];
        let old = match (routes.binary_search_by_key(&key, |r| r.key()), value) {
            (Ok(i), Some(v)) => Some(std::mem::replace(&mut routes[i].id, v)),
            (Ok(i), None) => {
                let mut r = routes.to_vec();
                let old = r.remove(i).id;
                *routes = r.into_boxed_slice();
                Some(old)
            }
            (Err(i), Some(v)) => {
                let mut r = Vec::with_capacity(routes.len() + 1);
                r.extend_from_slice(&routes[..i]);
                r.push(Exact::new(key, v));
                r.extend_from_slice(&routes[i..]);
                *routes = r.into_boxed_slice();
                None
            }
            (Err(_), None) => None,
        };
        self.count(old.is_some(), value.is_some());
        (old != value).then_some(Dirty::Node(h as u16))
    }

    fn count(&mut self, had: bool, has: bool) {
        match (had, has) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
    }

    /// Brings `side` up to date for `dirty`.
    fn refresh(&self, side: &mut Side<T>, dirty: &[Dirty]) {
        // Ids are append-only between compactions: the side learns the new ones.
        if side.vals_len < self.vals.len() {
            side.vals[side.vals_len..self.vals.len()].copy_from_slice(&self.vals[side.vals_len..]);
            side.vals_len = self.vals.len();
        }
        let mut scratch = Vec::new();
        for d in dirty {
            if let Dirty::Span(a, l) = *d {
                side.repaint(self, a, l);
            }
        }
        for d in dirty {
            if let Dirty::Node(h) = *d {
                side.rebuild_node(self, h, &mut scratch);
            }
        }
    }
}

impl<T: Copy + Eq + Hash> Fib<T> {
    /// An empty table.
    pub fn new() -> Fib<T> {
        Self::from_routes(std::iter::empty())
    }

    /// Builds a table; for a repeated prefix the later value wins.
    pub fn from_routes<I: IntoIterator<Item = (Ipv4Net, T)>>(routes: I) -> Fib<T> {
        let mut w = Writer::new();
        let mut long: Vec<(u32, u8, u16)> = Vec::new();
        for (net, v) in routes {
            let (a, l) = (u32::from(net.network()) & mask(net.prefix_len()), net.prefix_len());
            let v = w.id(v);
            if l <= 16 {
                w.short.insert((a, l), v);
            } else {
                long.push((a, l, v));
            }
        }
        // Stable: among equal prefixes the last one given ends up last, and wins below.
        long.sort_by_key(|&(a, l, _)| (a, l));
        let mut i = 0;
        while i < long.len() {
            let h = (long[i].0 >> 16) as usize;
            let j = i + long[i..].iter().take_while(|r| (r.0 >> 16) as usize == h).count();
            let mut routes: Vec<Exact> = Vec::with_capacity(j - i);
            for &(a, l, v) in &long[i..j] {
                let key = ((a & 0xffff) << 8) | u32::from(l);
                match routes.last_mut() {
                    Some(last) if last.key() == key => last.id = v,
                    _ => routes.push(Exact::new(key, v)),
                }
            }
            w.len += routes.len();
            w.long[h] = routes.into_boxed_slice();
            i = j;
        }
        w.len += w.short.len();
        let side = Arc::new(Side::build(&w));
        w.sides[0] = Some(side.clone());
        let len = w.len;
        Fib { side, writer: Arc::new(Mutex::new(w)), version: 0, len }
    }

    /// The next version: this one with `changes` applied in order (`Some`: insert or replace,
    /// `None`: remove). This version is unchanged for whoever holds it; when no change changes
    /// anything, the next version is this one. `None` when this is not the latest version of
    /// its table (an update was made from it already): the caller builds the table afresh.
    pub fn update<I>(&self, changes: I) -> Option<Fib<T>>
    where
        I: IntoIterator<Item = (Ipv4Net, Option<T>)>,
    {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.version != self.version {
            return None;
        }
        let mut dirty: Vec<Dirty> = changes.into_iter().filter_map(|(n, v)| w.set(n, v)).collect();
        dirty.sort_unstable_by_key(|d| match *d {
            Dirty::Span(a, l) => (0, a, l),
            Dirty::Node(h) => (1, u32::from(h), 0),
        });
        dirty.dedup();
        // Nothing changed (every change was already so): this version is the next one.
        if dirty.is_empty() && !w.compacted {
            return Some(self.clone());
        }
        let other = 1 - w.cur;
        let mut side = match w.sides[other].take() {
            // The first update: the other side starts as a copy of this one.
            None => Arc::new((*self.side).clone()),
            Some(mut side) => {
                // Readers of the version before this one still on it: wait for them, briefly.
                let start = Instant::now();
                while Arc::get_mut(&mut side).is_none() && start.elapsed() < READER_WAIT {
                    std::thread::yield_now();
                }
                side
            }
        };
        let pending = std::mem::take(&mut w.pending);
        // Renumbered ids: the other side is built afresh, and the current one (whose ids mean
        // other values now) is not written again: the next update copies this one's.
        let compacted = std::mem::take(&mut w.compacted);
        match (compacted, Arc::get_mut(&mut side)) {
            (true, _) => {
                side = Arc::new(Side::build(&w));
                let cur = w.cur;
                w.sides[cur] = None;
            }
            (false, Some(s)) => {
                w.refresh(s, &pending);
                w.refresh(s, &dirty);
            }
            (false, None) => {
                // Still read: leave it to its readers and write a copy of the current side.
                let mut copy = Side::clone(&self.side);
                w.refresh(&mut copy, &dirty);
                side = Arc::new(copy);
            }
        }
        w.sides[other] = Some(side.clone());
        w.pending = dirty;
        w.cur = other;
        w.version += 1;
        Some(Fib { side, writer: self.writer.clone(), version: w.version, len: w.len })
    }
}

impl<T: Copy + Eq + Hash> Default for Fib<T> {
    fn default() -> Self {
        Fib::new()
    }
}

impl<T> Fib<T> {
    /// The value of the longest prefix containing `addr`.
    #[inline(always)]
    pub fn lookup(&self, addr: u32) -> Option<T>
    where
        T: Copy + Eq + Hash,
    {
        self.side.lookup(addr)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Copy + Eq + Hash> Fib<T> {
    /// Heap bytes of the whole lineage: both sides and the exact routes.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let sides: usize = w.sides.iter().flatten().map(|s| s.heap_bytes()).sum();
        // The side of this version, if the writer no longer keeps it.
        let own = if w.sides.iter().flatten().any(|s| Arc::ptr_eq(s, &self.side)) {
            0
        } else {
            self.side.heap_bytes()
        };
        let long = w.long.len() * size_of::<Long>()
            + w.long.iter().map(|r| r.len() * size_of::<Exact>()).sum::<usize>();
        let vals = w.vals.capacity() * size_of::<Option<T>>()
            + w.ids.capacity() * (size_of::<(T, u16)>() + 1);
        // A B-tree entry: key, value and about a third of a node's overhead.
        let short = w.short.len() * (size_of::<((u32, u8), u16)>() + 16);
        sides + own + long + short + vals + w.pending.capacity() * size_of::<Dirty>()
    }
}

impl<T> fmt::Debug for Fib<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib").field("version", &self.version).field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// Reference: longest matching prefix by linear scan.
    fn brute(model: &BTreeMap<(u32, u8), u32>, addr: u32) -> Option<u32> {
        model
            .iter()
            .filter(|&(&(a, l), _)| addr & mask(l) == a)
            .max_by_key(|&(&(_, l), _)| l)
            .map(|(_, &v)| v)
    }

    fn net(a: u32, l: u8) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()
    }

    /// Addresses that probe every edge of every route.
    fn probes(model: &BTreeMap<(u32, u8), u32>, extra: &[u32]) -> Vec<u32> {
        let mut p: Vec<u32> = extra.to_vec();
        for &(a, l) in model.keys() {
            let end = a | !mask(l);
            p.extend([a, end, a.wrapping_sub(1), end.wrapping_add(1), a | (!mask(l) >> 1)]);
        }
        p
    }

    fn check(fib: &Fib<u32>, model: &BTreeMap<(u32, u8), u32>, extra: &[u32]) {
        assert_eq!(fib.len(), model.len());
        for a in probes(model, extra) {
            assert_eq!(fib.lookup(a), brute(model, a), "{}", Ipv4Addr::from(a));
        }
    }

    #[test]
    fn empty_and_basic() {
        let t: Fib<u32> = Fib::new();
        assert!(t.is_empty());
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(u32::MAX), None);
        let routes = [
            (net(0, 0), 1),
            (net(0x0a00_0000, 8), 2),
            (net(0x0a01_0000, 16), 3),
            (net(0x0a01_0200, 24), 4),
            (net(0x0a01_0280, 25), 5),
            (net(0x0a01_0281, 32), 6),
            (net(0x0a01_0000, 17), 7),
        ];
        let t = Fib::from_routes(routes);
        let m: BTreeMap<_, _> =
            routes.iter().map(|&(n, v)| ((u32::from(n.network()), n.prefix_len()), v)).collect();
        check(&t, &m, &[0x0a01_0281, 0x0a01_0282, 0x0a01_02ff, 0x0a01_0300, 0x0b00_0000]);
    }

    #[test]
    fn later_wins_and_old_versions_stay() {
        let t = Fib::from_routes([(net(0x0a00_0000, 24), 1), (net(0x0a00_0000, 24), 2)]);
        assert_eq!(t.lookup(0x0a00_0001), Some(2));
        assert_eq!(t.len(), 1);
        let t1 = t.update([(net(0x0a00_0000, 25), Some(3))]).unwrap();
        let t2 = t1.update([(net(0x0a00_0000, 24), None)]).unwrap();
        // A change that changes nothing: the same version, which can still be updated.
        let same = t2.update([(net(0x0b00_0000, 24), None), (net(0x0a00_0000, 25), Some(3))]);
        assert_eq!(same.unwrap().version, t2.version);
        // An old version cannot be updated again, and answers as it did.
        assert!(t.update([(net(0, 0), Some(9))]).is_none());
        assert!(t1.update([(net(0, 0), Some(9))]).is_none());
        assert_eq!(t.lookup(0x0a00_0001), Some(2));
        assert_eq!(t.lookup(0x0a00_0081), Some(2));
        assert_eq!(t1.lookup(0x0a00_0001), Some(3));
        assert_eq!(t1.lookup(0x0a00_0081), Some(2));
        assert_eq!(t2.lookup(0x0a00_0001), Some(3));
        assert_eq!(t2.lookup(0x0a00_0081), None);
        // t (version 0) still holds the side t2 wants next: the update copies instead.
        let t3 = t2.update([(net(0x0a00_0000, 8), Some(4))]).unwrap();
        assert_eq!(t.lookup(0x0a00_0081), Some(2));
        assert_eq!(t2.lookup(0x0a00_0081), None);
        assert_eq!(t3.lookup(0x0a00_0081), Some(4));
        assert_eq!((t2.len(), t3.len()), (1, 2));
        drop((t, t1, t2));
        let t4 = t3.update([(net(0x0a00_0000, 8), None)]).unwrap();
        let t5 = t4.update([(net(0x0a00_0000, 25), None)]).unwrap();
        assert_eq!(t4.lookup(0x0a00_0081), None);
        assert_eq!(t5.lookup(0x0a00_0001), None);
        assert!(t5.is_empty());
    }

    #[test]
    fn many_kids_in_one_block() {
        // Every /24 of a /16 with routes longer than /24, in several shapes, and a default.
        let mut routes = vec![(net(0, 0), 1u32), (net(0x0a00_0000, 16), 2)];
        for s in 0..256u32 {
            let a = 0x0a00_0000 | s << 8;
            routes.push((net(a | (s & 0x7f), 32), 10 + s % 7));
            if s % 3 == 0 {
                routes.push((net(a | 0x80, 25), 3 + s % 5));
            }
            if s % 5 == 0 {
                routes.push((net(a, 24), 4));
            }
        }
        let t = Fib::from_routes(routes.iter().copied());
        let m: BTreeMap<_, _> =
            routes.iter().map(|&(n, v)| ((u32::from(n.network()), n.prefix_len()), v)).collect();
        check(&t, &m, &[]);
        // And after removing a third of them, one at a time.
        let (mut t, mut m) = (t, m);
        for &(n, _) in routes.iter().step_by(3) {
            t = t.update([(n, None)]).unwrap();
            m.remove(&(u32::from(n.network()), n.prefix_len()));
        }
        check(&t, &m, &[]);
    }

    #[test]
    fn many_values_rebuild_the_side() {
        // More distinct values over time than a side's value list holds: sides are rebuilt.
        let mut t = Fib::from_routes([(net(0x0a00_0000, 24), 0u32), (net(0, 1), 7)]);
        let mut held = None;
        for i in 1..40_000u32 {
            t = t.update([(net(0x0a00_0000, 24), Some(i))]).unwrap();
            assert_eq!(t.lookup(0x0a00_0005), Some(i));
            // A version held across the renumbering still answers with its values.
            match i {
                32_760 => held = Some(t.clone()),
                32_800 => {
                    let h = held.take().unwrap();
                    assert_eq!(h.lookup(0x0a00_0005), Some(32_760));
                    assert_eq!(h.lookup(0x0b00_0005), Some(7));
                }
                _ => {}
            }
        }
        assert_eq!(t.lookup(0x0b00_0005), Some(7));
    }

    fn arb_route() -> impl Strategy<Value = (u32, u8, u32)> {
        // Addresses from a few /12s so that routes nest and share /16s and /24s.
        (0u32..4, any::<u32>(), 0u8..=32, 0u32..6).prop_map(|(hi, a, l, v)| {
            let a = (hi << 28) | (a & 0x00ff_ffff) | ((a >> 4) & 0x0f00_0000);
            (a & mask(l), l, v)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every version answers as a linear scan over its routes, before and after later
        /// updates, whether or not older versions are still held.
        #[test]
        fn updates_match_brute_force(
            initial in prop::collection::vec(arb_route(), 0..60),
            steps in prop::collection::vec(
                prop::collection::vec((arb_route(), any::<bool>()), 1..6), 1..25),
            hold in any::<bool>(),
        ) {
            let mut model: BTreeMap<(u32, u8), u32> = BTreeMap::new();
            for &(a, l, v) in &initial {
                model.insert((a, l), v);
            }
            let mut t = Fib::from_routes(initial.iter().map(|&(a, l, v)| (net(a, l), v)));
            check(&t, &model, &[0, u32::MAX]);
            let mut held = Vec::new();
            for step in steps {
                let mut next = model.clone();
                let mut ops = Vec::new();
                for ((a, l, v), remove) in step {
                    // Remove an existing route half the time when asked to remove.
                    let key = if remove { next.keys().nth(v as usize).copied().unwrap_or((a, l)) } else { (a, l) };
                    if remove {
                        next.remove(&key);
                        ops.push((net(key.0, key.1), None));
                    } else {
                        next.insert(key, v);
                        ops.push((net(key.0, key.1), Some(v)));
                    }
                }
                let u = t.update(ops).unwrap();
                check(&u, &next, &[0, u32::MAX]);
                // The version before is intact.
                check(&t, &model, &[0, u32::MAX]);
                if hold {
                    held.push((t.clone(), model.clone()));
                }
                t = u;
                model = next;
            }
            for (t, m) in &held {
                check(t, m, &[]);
            }
        }
    }
}
