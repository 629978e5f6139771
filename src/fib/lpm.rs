//! IPv4 longest-prefix-match table: a persistent (copy-on-write) radix tree of small
//! pointer nodes over Poptrie-style compressed /16 subtrees.
//!
//! # Layout
//!
//! ```text
//! Lpm ─Arc─> Top   { quads: [Option<Arc<Quad>>; 16] (one per /4), tiny: routes < /8 }
//! Quad  (a /4)     { chunks: [Option<Arc<Chunk>>; 16] (one per /8) }
//! Chunk (a /8)     { default: [u16; 256] (per /16: leaf-pushed best route <= /16),
//!                    blocks: [Option<Arc<Block>>; 16] (one per /12),
//!                    short: routes /8../16 of this /8, sorted }
//! Block (a /12)    { slots: [Slot; 16] (one per /16, one cache line each) }
//! Slot  (a /16)    { bits, cum, base: a compressed node over the 256 /24s of the /16,
//!                    sub: Arc<[(u32, T)]> = routes > /16 of the /16, then runs, then kids }
//! ```
//!
//! A compressed node stands for 256 leaf-pushed entries. Consecutive equal entries form a
//! run; `bits` has one bit set per run start and the sub array holds one `(tag, value)` per
//! run, so entry `i` is run `popcount(bits up to i) - 1` (with per-word prefix counts in
//! `cum`: one popcount per lookup). A run's tag is `0` (no route > /16 covers it: use the
//! chunk's `default`), `idx + 1` (route `idx`, whose value the run carries, so a lookup
//! reads no further), or `CHILD | position` of a kid node (same scheme over the last 8 bits,
//! for the rare /24s holding routes > /24). A `default` entry is `0` (no route), `idx + 1`
//! (`short[idx]`) or `TINY | slot` (`top.tiny[slot]`).
//!
//! Lookup: four hops through small, hot pointer nodes (16 + 16 + 16 pointers), one slot
//! line, one run entry. No allocation, no lock, no `unsafe`, only checked or provably
//! in-range indexing.
//!
//! # Persistence
//!
//! Every node is behind an `Arc`: `clone` is O(1) (one reference-count increment) and the
//! clone shares all storage. A mutation copies only the path it touches (`Arc::make_mut`):
//! `Top`, `Quad` (16 pointers each), the `Chunk` (16 pointers, 256 defaults, its /8../16
//! routes), the `Block` (16 slots, 1 KiB), and rebuilds the one /16's sub array from its
//! routes (O(routes in that /16 + 256)). A route shorter than /8 also repaints the defaults
//! of the chunks it covers. So `insert`/`remove` after `clone` costs a few KiB of copying and
//! ~64 reference-count increments plus one /16 rebuild, independent of the table size;
//! holders of the old table are unaffected.
//!
//! # Invariants
//!
//! 1. Canonical shape: a slot has a sub iff its /16 holds a route longer than /16; a block,
//!    chunk, quad exists iff it holds a sub, a route, or (chunk) is covered by a route
//!    shorter than /8; `top` is `None` iff the table is empty. Slots and defaults are exactly
//!    what [`Slot::build`] and [`Chunk::repaint`] compute from the routes.
//! 2. Routes are normalised (host bits clear), unique and sorted by (address, length) in
//!    each sub and in `short`; `tiny` is empty or has `TINY_SLOTS` slots, not all empty.
//! 3. `len` is the number of routes.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;

const FAN: usize = 256;
/// Default entry flag: the entry is a slot of `Top::tiny`.
const TINY: u16 = 1 << 15;
/// Slots for routes /0../7: slot `2^len - 1 + (addr >> (32 - len))`.
const TINY_SLOTS: usize = 255;
/// Flag in `Slot::cum[0]` (whose count is always 0): the /16 has kids.
const KIDS: u16 = 1 << 15;

/// Bit `i` set iff entry `i` starts a run; returns the bits and the entry of each run.
fn runs(entries: &[u32; FAN]) -> ([u64; 4], Vec<u32>) {
    let mut bits = [0u64; 4];
    let mut tags = Vec::new();
    let mut prev = None;
    for (i, &e) in entries.iter().enumerate() {
        if prev != Some(e) {
            bits[i >> 6] |= 1 << (i & 63);
            tags.push(e);
            prev = Some(e);
        }
    }
    (bits, tags)
}

/// `cum[w]`: runs started in words `0..w`.
fn cumulate(bits: &[u64; 4]) -> [u16; 4] {
    let mut cum = [0u16; 4];
    let mut acc = 0u16;
    for (c, b) in cum.iter_mut().zip(bits) {
        *c = acc;
        acc += b.count_ones() as u16;
    }
    cum
}

/// Run index of entry `i & 255` of a compressed node.
#[inline(always)]
fn rank(bits: &[u64; 4], cum: &[u16; 4], i: u32) -> usize {
    let w = ((i >> 6) & 3) as usize;
    let below = bits[w] & (u64::MAX >> (63 - (i & 63)));
    // Bit 0 of word 0 is set, so the sum is >= 1 for a well-formed node; a malformed one
    // wraps to an index that `get` rejects.
    (usize::from(cum[w] & !KIDS) + below.count_ones() as usize).wrapping_sub(1)
}

fn sub_key(addr: u32, len: u8) -> u32 {
    ((addr & 0xffff) << 8) | u32::from(len)
}

/// A /24 of a /16 holding routes longer than /24: a compressed node over its 256 addresses.
#[derive(Clone, Debug, PartialEq)]
struct Kid<T> {
    /// Which /24 of the /16.
    at: u8,
    bits: [u64; 4],
    cum: [u16; 4],
    vals: Box<[Option<T>]>,
}

/// What lookups never read: the exact routes of a /16 (and its rare kids).
#[derive(Clone, Debug, PartialEq)]
struct Ctl<T> {
    /// `((addr & 0xffff) << 8 | len, value)`, sorted, unique; the key order is (addr, len).
    routes: Box<[(u32, T)]>,
    /// Sorted by `at`.
    kids: Box<[Kid<T>]>,
}

/// One /16 holding routes longer than /16, compiled. Exactly one cache line.
#[repr(align(64))]
#[derive(Clone)]
struct Slot<T> {
    /// Run starts of the 256 leaf-pushed /24 entries.
    bits: [u64; 4],
    /// Runs started before each word; `cum[0]` also carries the `KIDS` flag.
    cum: [u16; 4],
    /// One answer per run, with the /16's default leaf-pushed into the gaps.
    vals: Option<Arc<[Option<T>]>>,
    ctl: Option<Arc<Ctl<T>>>,
}

impl<T> Slot<T> {
    fn empty() -> Self {
        Slot { bits: [0; 4], cum: [0; 4], vals: None, ctl: None }
    }

    /// The routes longer than /16 of this /16.
    fn routes(&self) -> &[(u32, T)] {
        self.ctl.as_deref().map_or(&[], |c| &c.routes[..])
    }

    /// The answer for `addr` if this /16 has routes > /16 (the default already pushed in).
    #[inline(always)]
    fn find(&self, addr: u32) -> Option<Option<&T>> {
        let vals = self.vals.as_deref()?;
        if self.cum[0] & KIDS != 0
            && let Some(found) = self.find_kid(addr)
        {
            return Some(found);
        }
        Some(vals.get(rank(&self.bits, &self.cum, addr >> 8))?.as_ref())
    }

    #[cold]
    fn find_kid(&self, addr: u32) -> Option<Option<&T>> {
        let kids = &self.ctl.as_deref()?.kids;
        let at = (addr >> 8) as u8;
        let kid = kids.get(kids.binary_search_by_key(&at, |k| k.at).ok()?)?;
        Some(kid.vals.get(rank(&kid.bits, &kid.cum, addr))?.as_ref())
    }

    /// The longest route > /16 of this /16 covering `addr`, by search (for `lookup_prefix`).
    fn matching_route(&self, addr: u32) -> Option<&(u32, T)> {
        let routes = self.routes();
        (17..=32u8).rev().find_map(|len| {
            let key = sub_key(addr & mask(len), len);
            routes.get(routes.binary_search_by_key(&key, |&(k, _)| k).ok()?)
        })
    }
}

impl<T: Clone> Slot<T> {
    /// Compiles sorted, unique routes (> /16 of this /16) with `default` (the best route
    /// <= /16) pushed into the gaps. No routes: an empty slot.
    fn build(routes: Vec<(u32, T)>, default: Option<&T>) -> Slot<T> {
        if routes.is_empty() {
            return Slot::empty();
        }
        let mut top = [0u32; FAN];
        let mut kids: Vec<(u8, [u32; FAN])> = Vec::new();
        // In (addr, len) order every route comes after all routes containing it, so painting
        // in that order leaves each entry with its longest match (leaf pushing).
        for (idx, &(key, _)) in routes.iter().enumerate() {
            let id = idx as u32 + 1;
            let low = key >> 8;
            let len = key & 0xff;
            let j = (low >> 8) as usize & 0xff;
            if len <= 24 {
                let n = 1usize << (24 - len.clamp(16, 24));
                if let Some(r) = top.get_mut(j..j + n) {
                    r.fill(id);
                }
            } else {
                // Routes <= /24 containing this /24 were painted already (they sort earlier),
                // and routes of one /24 are contiguous, so a new kid inherits the right value.
                if kids.last().is_none_or(|&(at, _)| usize::from(at) != j) {
                    kids.push((j as u8, [top[j]; FAN]));
                }
                let s = (low & 0xff) as usize;
                let n = 1usize << (32 - len.clamp(25, 32));
                if let Some(r) = kids.last_mut().and_then(|(_, kid)| kid.get_mut(s..s + n)) {
                    r.fill(id);
                }
            }
        }
        let answer = |tag: u32| match tag.checked_sub(1) {
            Some(i) => routes.get(i as usize).map(|r| r.1.clone()),
            None => default.cloned(),
        };
        let (bits, tags) = runs(&top);
        let vals: Arc<[Option<T>]> = tags.iter().map(|&t| answer(t)).collect();
        let kids: Box<[Kid<T>]> = kids
            .iter()
            .map(|(at, entries)| {
                let (bits, tags) = runs(entries);
                let vals = tags.iter().map(|&t| answer(t)).collect();
                Kid { at: *at, bits, cum: cumulate(&bits), vals }
            })
            .collect();
        let mut cum = cumulate(&bits);
        if !kids.is_empty() {
            cum[0] |= KIDS;
        }
        let ctl = Ctl { routes: routes.into_boxed_slice(), kids };
        Slot { bits, cum, vals: Some(vals), ctl: Some(Arc::new(ctl)) }
    }
}

/// One /12: the slots of its 16 /16s.
#[derive(Clone)]
struct Block<T> {
    slots: [Slot<T>; 16],
}

/// One /8.
#[derive(Clone)]
struct Chunk<T> {
    /// Per /16: the longest route of length <= 16 covering it (see the module doc).
    default: [u16; FAN],
    blocks: [Option<Arc<Block<T>>>; 16],
    /// Routes /8../16 of this /8: (addr, len, value), sorted, unique.
    short: Vec<(u32, u8, T)>,
    /// `0` or `TINY | slot`: the longest route shorter than /8 covering this /8.
    tiny: u16,
}

/// The route named by default entry `d`, as (addr, len, value).
fn resolve<'a, T>(
    tiny: &'a [Option<T>],
    short: &'a [(u32, u8, T)],
    d: u16,
) -> Option<(u32, u8, &'a T)> {
    if d & TINY != 0 {
        let slot = usize::from(d & !TINY);
        let v = tiny.get(slot)?.as_ref()?;
        // Invert the slot numbering: len is the position of the highest set bit of slot+1.
        let len = (usize::BITS - 1 - (slot + 1).leading_zeros()) as u8;
        let idx = (slot + 1 - (1 << len)) as u32;
        Some((idx.checked_shl(32 - u32::from(len)).unwrap_or(0), len, v))
    } else {
        let (a, l, v) = short.get(usize::from(d).wrapping_sub(1))?;
        Some((*a, *l, v))
    }
}

impl<T> Chunk<T> {
    fn new(tiny: u16) -> Self {
        Chunk {
            default: [tiny; FAN],
            blocks: std::array::from_fn(|_| None),
            short: Vec::new(),
            tiny,
        }
    }

    #[inline(always)]
    fn slot(&self, j: usize) -> Option<&Slot<T>> {
        self.blocks[(j >> 4) & 15].as_deref().map(|b| &b.slots[j & 15])
    }

    fn is_empty(&self) -> bool {
        self.tiny == 0 && self.short.is_empty() && self.blocks.iter().all(Option::is_none)
    }

    fn slots(&self) -> impl Iterator<Item = &Slot<T>> {
        self.blocks.iter().flatten().flat_map(|b| b.slots.iter())
    }

    /// The (addr, len) named by each /16's default entry, read from `short` and the entry
    /// alone, so that it is right even after the named route left `Top::tiny`.
    fn default_keys(&self) -> [Option<(u32, u8)>; FAN] {
        std::array::from_fn(|j| {
            let d = self.default[j];
            if d & TINY != 0 {
                Some((u32::from(d), 0xff)) // one key per tiny slot, distinct from short keys
            } else {
                self.short.get(usize::from(d).wrapping_sub(1)).map(|&(a, l, _)| (a, l))
            }
        })
    }

    fn memory_bytes(&self) -> usize {
        let kids = |c: &Ctl<T>| {
            c.kids
                .iter()
                .map(|k| size_of::<Kid<T>>() + k.vals.len() * size_of::<Option<T>>())
                .sum::<usize>()
        };
        ARC_HEADER
            + size_of::<Self>()
            + self.short.capacity() * size_of::<(u32, u8, T)>()
            + self.blocks.iter().flatten().count() * (ARC_HEADER + size_of::<Block<T>>())
            + self
                .slots()
                .filter_map(|s| s.vals.as_ref())
                .map(|v| ARC_HEADER + v.len() * size_of::<Option<T>>())
                .sum::<usize>()
            + self
                .slots()
                .filter_map(|s| s.ctl.as_deref())
                .map(|c| {
                    ARC_HEADER
                        + size_of::<Ctl<T>>()
                        + c.routes.len() * size_of::<(u32, T)>()
                        + kids(c)
                })
                .sum::<usize>()
    }

    fn control_bytes(&self) -> usize {
        self.short.capacity() * size_of::<(u32, u8, T)>()
            + self
                .slots()
                .filter_map(|s| s.ctl.as_deref())
                .map(|c| ARC_HEADER + size_of::<Ctl<T>>() + c.routes.len() * size_of::<(u32, T)>())
                .sum::<usize>()
    }
}

impl<T: Clone> Chunk<T> {
    /// Rebuilds the slot of /16 `j` from `routes`, dropping a block left without subs.
    fn set_routes(&mut self, j: usize, routes: Vec<(u32, T)>, tiny: &[Option<T>]) {
        let default = resolve(tiny, &self.short, self.default[j]).map(|(_, _, v)| v);
        let slot = Slot::build(routes, default);
        let b = &mut self.blocks[(j >> 4) & 15];
        if slot.vals.is_none() && b.is_none() {
            return;
        }
        let block = Arc::make_mut(b.get_or_insert_with(|| {
            Arc::new(Block { slots: std::array::from_fn(|_| Slot::empty()) })
        }));
        block.slots[j & 15] = slot;
        if block.slots.iter().all(|s| s.vals.is_none()) {
            *b = None;
        }
    }

    /// Recomputes `default` from `tiny` and `short` after they changed, and rebuilds the
    /// slots whose default route changed (`before`: keys before the change) or lies in
    /// `force` (a replaced value).
    fn repaint(
        &mut self,
        tiny: &[Option<T>],
        before: &[Option<(u32, u8)>; FAN],
        force: (usize, usize),
    ) {
        self.default.fill(self.tiny);
        // Same argument as in `Slot::build`: (addr, len) order paints containers first.
        for (idx, &(addr, len, _)) in self.short.iter().enumerate() {
            let j = (addr >> 16) as usize & 0xff;
            let n = 1usize << (16 - len.clamp(8, 16));
            if let Some(r) = self.default.get_mut(j..j + n) {
                r.fill(idx as u16 + 1);
            }
        }
        let after = self.default_keys();
        for j in 0..FAN {
            if (after[j] != before[j] || (force.0..force.1).contains(&j))
                && let Some(slot) = self.slot(j)
                && slot.ctl.is_some()
            {
                let routes = slot.routes().to_vec();
                self.set_routes(j, routes, tiny);
            }
        }
    }
}

/// One /4.
#[derive(Clone)]
struct Quad<T> {
    chunks: [Option<Arc<Chunk<T>>>; 16],
}

#[derive(Clone)]
struct Top<T> {
    quads: [Option<Arc<Quad<T>>>; 16],
    /// Empty, or `TINY_SLOTS` slots for the routes shorter than /8.
    tiny: Vec<Option<T>>,
}

/// Reference counts in front of every `Arc` allocation.
const ARC_HEADER: usize = 2 * size_of::<usize>();

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn tiny_slot(addr: u32, len: u8) -> usize {
    (1usize << len) - 1 + addr.checked_shr(32 - u32::from(len)).unwrap_or(0) as usize
}

fn net_of(addr: u32, len: u8) -> Ipv4Net {
    // Only called with len <= 32, so `new` cannot fail; the default is unused.
    Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or_default()
}

/// `0` or `TINY | slot` of the longest route shorter than /8 covering /8 number `c`.
fn tiny_for<T>(tiny: &[Option<T>], c: usize) -> u16 {
    if tiny.is_empty() {
        return 0;
    }
    let addr = (c as u32) << 24;
    (0..8u8)
        .rev()
        .map(|len| tiny_slot(addr & mask(len), len))
        .find(|&s| tiny.get(s).is_some_and(Option::is_some))
        .map_or(0, |s| TINY | s as u16)
}

/// Applies `f` to the (possibly absent) chunk `c`, copying the path to it if shared, then
/// drops a chunk or quad left empty.
fn with_chunk<T: Clone, R>(
    quads: &mut [Option<Arc<Quad<T>>>; 16],
    c: usize,
    f: impl FnOnce(&mut Option<Arc<Chunk<T>>>) -> R,
) -> R {
    let q = &mut quads[(c >> 4) & 15];
    let quad = Arc::make_mut(
        q.get_or_insert_with(|| Arc::new(Quad { chunks: std::array::from_fn(|_| None) })),
    );
    let slot = &mut quad.chunks[c & 15];
    let r = f(slot);
    if slot.as_deref().is_some_and(Chunk::is_empty) {
        *slot = None;
    }
    if quad.chunks.iter().all(Option::is_none) {
        *q = None;
    }
    r
}

impl<T> Top<T> {
    fn new() -> Self {
        Top { quads: std::array::from_fn(|_| None), tiny: Vec::new() }
    }

    #[inline(always)]
    fn chunk(&self, c: usize) -> Option<&Chunk<T>> {
        self.quads[(c >> 4) & 15].as_deref()?.chunks[c & 15].as_deref()
    }
}

impl<T: Clone> Top<T> {
    /// After the route `addr/len` (< /8) appeared, vanished or changed value: refreshes the
    /// chunks it covers.
    fn retiny(&mut self, addr: u32, len: u8, replaced: bool) {
        let first = (addr >> 24) as usize;
        let slot = TINY | tiny_slot(addr, len) as u16;
        let Top { quads, tiny } = self;
        for c in first..(first + (1usize << (8 - len.min(8)))).min(FAN) {
            let t = tiny_for(tiny, c);
            let old = self_chunk(quads, c).map_or(0, |ch| ch.tiny);
            if old == t && !(replaced && t == slot) {
                continue;
            }
            with_chunk(quads, c, |cs| {
                let chunk = Arc::make_mut(cs.get_or_insert_with(|| Arc::new(Chunk::new(old))));
                let before = chunk.default_keys();
                chunk.tiny = t;
                // A replaced value changes the answer wherever this route is the default.
                let force = if replaced { (0, FAN) } else { (0, 0) };
                chunk.repaint(tiny, &before, force);
            });
        }
        if tiny.iter().all(Option::is_none) {
            *tiny = Vec::new();
        }
    }
}

fn self_chunk<T>(quads: &[Option<Arc<Quad<T>>>; 16], c: usize) -> Option<&Chunk<T>> {
    quads[(c >> 4) & 15].as_deref()?.chunks[c & 15].as_deref()
}

/// Compiled IPv4 longest-prefix-match table mapping prefixes to values of type T.
///
/// `Clone` is O(1) and shares all storage; see the module doc for what a later `insert` or
/// `remove` copies.
#[derive(Clone)]
pub struct Lpm<T> {
    top: Option<Arc<Top<T>>>,
    len: usize,
}

impl<T: Clone> Lpm<T> {
    pub fn new() -> Self {
        Lpm { top: None, len: 0 }
    }

    /// Builds from routes; when the same prefix appears twice, the later one wins.
    pub fn from_routes<I: IntoIterator<Item = (Ipv4Net, T)>>(routes: I) -> Self {
        let mut all: Vec<(u32, u8, T)> = routes
            .into_iter()
            .map(|(n, v)| (u32::from(n.network()) & mask(n.prefix_len()), n.prefix_len(), v))
            .collect();
        // Stable, so duplicates keep their input order and the last one wins below.
        all.sort_by_key(|&(a, l, _)| (a, l));
        let mut top = Top::new();
        let mut len = 0;
        // The chunk being filled, and the routes of the /16 being filled.
        let mut cur: Option<(usize, Chunk<T>)> = None;
        let mut sub: Option<(usize, Vec<(u32, T)>)> = None;
        let mut it = all.into_iter().peekable();
        while let Some((addr, plen, v)) = it.next() {
            if it.peek().is_some_and(|&(a, l, _)| (a, l) == (addr, plen)) {
                continue; // a later duplicate overrides this one
            }
            len += 1;
            if plen < 8 {
                if top.tiny.is_empty() {
                    top.tiny = (0..TINY_SLOTS).map(|_| None).collect();
                }
                top.tiny[tiny_slot(addr, plen)] = Some(v);
                continue;
            }
            let c = (addr >> 24) as usize;
            let j = (addr >> 16) as usize & 0xff;
            if sub.as_ref().is_some_and(|&(sj, _)| sj != j)
                || cur.as_ref().is_some_and(|&(cc, _)| cc != c)
            {
                flush_sub(&mut cur, &mut sub, &top.tiny);
            }
            if cur.as_ref().is_some_and(|&(cc, _)| cc != c) {
                flush_chunk(&mut top, &mut cur);
            }
            // Routes shorter than /8 covering this /8 sort before all of its routes.
            let (_, chunk) = cur.get_or_insert_with(|| (c, Chunk::new(tiny_for(&top.tiny, c))));
            if plen <= 16 {
                // Painting in sorted order as in `Chunk::repaint`; every default route of a
                // /16 is known by the time its longer routes are compiled.
                let n = 1usize << (16 - plen);
                if let Some(r) = chunk.default.get_mut(j..j + n) {
                    r.fill(chunk.short.len() as u16 + 1);
                }
                chunk.short.push((addr, plen, v));
            } else {
                sub.get_or_insert_with(|| (j, Vec::new())).1.push((sub_key(addr, plen), v));
            }
        }
        flush_sub(&mut cur, &mut sub, &top.tiny);
        flush_chunk(&mut top, &mut cur);
        // Chunks covered only by routes shorter than /8.
        for c in 0..FAN {
            let t = tiny_for(&top.tiny, c);
            if t != 0 && top.chunk(c).is_none() {
                with_chunk(&mut top.quads, c, |slot| *slot = Some(Arc::new(Chunk::new(t))));
            }
        }
        pack_vals(&mut top);
        Lpm { top: (len > 0).then(|| Arc::new(top)), len }
    }

    /// Inserts or replaces; returns the previous value for exactly that prefix.
    ///
    /// After a `clone` this copies the path to the prefix's /16 and rebuilds that /16 (see
    /// the module doc); storage off that path stays shared.
    pub fn insert(&mut self, prefix: Ipv4Net, value: T) -> Option<T> {
        let len = prefix.prefix_len();
        let addr = u32::from(prefix.network()) & mask(len);
        let top = Arc::make_mut(self.top.get_or_insert_with(|| Arc::new(Top::new())));
        let old = if len < 8 {
            if top.tiny.is_empty() {
                top.tiny = (0..TINY_SLOTS).map(|_| None).collect();
            }
            let old = top.tiny.get_mut(tiny_slot(addr, len)).and_then(|s| s.replace(value));
            top.retiny(addr, len, old.is_some());
            old
        } else {
            let c = (addr >> 24) as usize;
            let Top { quads, tiny } = top;
            let t = tiny_for(tiny, c);
            with_chunk(quads, c, |slot| {
                let chunk = Arc::make_mut(slot.get_or_insert_with(|| Arc::new(Chunk::new(t))));
                let j = (addr >> 16) as usize & 0xff;
                if len <= 16 {
                    let before = chunk.default_keys();
                    let (old, force) =
                        match chunk.short.binary_search_by_key(&(addr, len), |&(a, l, _)| (a, l)) {
                            Ok(i) => {
                                let old = std::mem::replace(&mut chunk.short[i].2, value);
                                (Some(old), (j, j + (1 << (16 - len))))
                            }
                            Err(i) => {
                                chunk.short.insert(i, (addr, len, value));
                                (None, (0, 0))
                            }
                        };
                    chunk.repaint(tiny, &before, force);
                    old
                } else {
                    let key = sub_key(addr, len);
                    let mut routes = chunk.slot(j).map_or_else(Vec::new, |s| s.routes().to_vec());
                    let old = match routes.binary_search_by_key(&key, |&(k, _)| k) {
                        Ok(i) => Some(std::mem::replace(&mut routes[i].1, value)),
                        Err(i) => {
                            routes.insert(i, (key, value));
                            None
                        }
                    };
                    chunk.set_routes(j, routes, tiny);
                    old
                }
            })
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes exactly that prefix; returns its value.
    pub fn remove(&mut self, prefix: Ipv4Net) -> Option<T> {
        let len = prefix.prefix_len();
        let addr = u32::from(prefix.network()) & mask(len);
        // Look before copying anything: removing an absent prefix must not unshare storage.
        if !self.contains(addr, len) {
            return None;
        }
        let top = Arc::make_mut(self.top.as_mut()?);
        let old = if len < 8 {
            let old = top.tiny.get_mut(tiny_slot(addr, len))?.take();
            top.retiny(addr, len, false);
            old
        } else {
            let Top { quads, tiny } = top;
            with_chunk(quads, (addr >> 24) as usize, |slot| {
                let chunk = Arc::make_mut(slot.as_mut()?);
                let j = (addr >> 16) as usize & 0xff;
                if len <= 16 {
                    let before = chunk.default_keys();
                    let i =
                        chunk.short.binary_search_by_key(&(addr, len), |&(a, l, _)| (a, l)).ok()?;
                    let (_, _, v) = chunk.short.remove(i);
                    chunk.repaint(tiny, &before, (0, 0));
                    Some(v)
                } else {
                    let mut routes = chunk.slot(j)?.routes().to_vec();
                    let i = routes.binary_search_by_key(&sub_key(addr, len), |&(k, _)| k).ok()?;
                    let (_, v) = routes.remove(i);
                    chunk.set_routes(j, routes, tiny);
                    Some(v)
                }
            })
        };
        if old.is_some() {
            self.len -= 1;
            if self.len == 0 {
                self.top = None;
            }
        }
        old
    }

    /// Whether exactly the (normalised) prefix `addr/len` is present.
    fn contains(&self, addr: u32, len: u8) -> bool {
        self.exact(addr, len).is_some()
    }
}

impl<T> Lpm<T> {
    /// The value of exactly this prefix (host bits ignored), not of a longest match.
    pub fn get(&self, prefix: Ipv4Net) -> Option<&T> {
        let len = prefix.prefix_len();
        self.exact(u32::from(prefix.network()) & mask(len), len)
    }

    /// The value of exactly the (normalised) prefix `addr/len`.
    fn exact(&self, addr: u32, len: u8) -> Option<&T> {
        let top = self.top.as_deref()?;
        if len < 8 {
            return top.tiny.get(tiny_slot(addr, len))?.as_ref();
        }
        let chunk = top.chunk((addr >> 24) as usize)?;
        if len <= 16 {
            let i = chunk.short.binary_search_by_key(&(addr, len), |&(a, l, _)| (a, l)).ok()?;
            return chunk.short.get(i).map(|(_, _, v)| v);
        }
        let routes = chunk.slot((addr >> 16) as usize & 0xff)?.routes();
        let i = routes.binary_search_by_key(&sub_key(addr, len), |&(k, _)| k).ok()?;
        routes.get(i).map(|(_, v)| v)
    }
}

impl<T> Lpm<T> {
    /// Longest-prefix match for an address given as a host-order u32. Never allocates.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<&T> {
        let top = self.top.as_deref()?;
        let chunk = top.chunk((addr >> 24) as usize)?;
        let j = (addr >> 16) as usize & 0xff;
        match chunk.slot(j).and_then(|s| s.find(addr)) {
            Some(found) => found,
            None => resolve(&top.tiny, &chunk.short, chunk.default[j]).map(|(_, _, v)| v),
        }
    }

    /// Like lookup, also returning the matched prefix.
    pub fn lookup_prefix(&self, addr: u32) -> Option<(Ipv4Net, &T)> {
        let top = self.top.as_deref()?;
        let chunk = top.chunk((addr >> 24) as usize)?;
        let j = (addr >> 16) as usize & 0xff;
        if let Some((key, v)) = chunk.slot(j).and_then(|s| s.matching_route(addr)) {
            let len = (key & 0xff) as u8;
            return Some((net_of((addr & 0xffff_0000) | (key >> 8), len), v));
        }
        resolve(&top.tiny, &chunk.short, chunk.default[j]).map(|(a, l, v)| (net_of(a, l), v))
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn chunks(&self) -> impl Iterator<Item = &Chunk<T>> {
        self.top.as_deref().into_iter().flat_map(|top| {
            top.quads.iter().flatten().flat_map(|q| q.chunks.iter().flatten().map(|c| &**c))
        })
    }

    /// Approximate heap bytes of the whole table: lookup structure, exact prefixes and
    /// values (allocator overhead excluded). Storage shared with clones is counted in full
    /// by each of them.
    pub fn memory_bytes(&self) -> usize {
        self.top.as_deref().map_or(0, |top| {
            let quads = top.quads.iter().flatten().count();
            ARC_HEADER
                + size_of::<Top<T>>()
                + top.tiny.capacity() * size_of::<Option<T>>()
                + quads * (ARC_HEADER + size_of::<Quad<T>>())
                + self.chunks().map(Chunk::memory_bytes).sum::<usize>()
        })
    }

    /// The part of [`Lpm::memory_bytes`] that lookups never read: the exact prefixes (with
    /// their values) kept for insert/remove/iter/lookup_prefix.
    pub fn control_bytes(&self) -> usize {
        self.chunks().map(Chunk::control_bytes).sum()
    }

    /// All prefixes and values, in ascending (network address, prefix length) order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Net, &T)> {
        let top = self.top.as_deref();
        top.into_iter().flat_map(|top| {
            (0..FAN).flat_map(move |c| {
                let base = (c as u32) << 24;
                // Routes shorter than /8 starting exactly at this /8 come first (shortest first).
                let tiny = (0..8u8).filter_map(move |len| {
                    (base & mask(len) == base)
                        .then(|| top.tiny.get(tiny_slot(base, len))?.as_ref())
                        .flatten()
                        .map(|v| (net_of(base, len), v))
                });
                let rest = top.chunk(c).into_iter().flat_map(move |chunk| {
                    (0..FAN).flat_map(move |j| {
                        // Routes /8../16 all start at a /16 boundary, so those of /16 `j` start
                        // exactly at it and precede every longer route inside it.
                        let start = base | (j as u32) << 16;
                        let lo = chunk.short.partition_point(|&(a, _, _)| a < start);
                        let hi = chunk.short.partition_point(|&(a, _, _)| a <= start);
                        let short = chunk.short.get(lo..hi).unwrap_or(&[]);
                        let long = chunk.slot(j).map_or(&[][..], Slot::routes);
                        short.iter().map(|(a, l, v)| (net_of(*a, *l), v)).chain(
                            long.iter()
                                .map(move |(k, v)| (net_of(start | (k >> 8), (k & 0xff) as u8), v)),
                        )
                    })
                });
                tiny.chain(rest)
            })
        })
    }
}

/// Moves every answer array of a freshly built (unshared) table into consecutive fresh
/// allocations, so that the arrays lookups read are packed together instead of interleaved
/// with the routes: far fewer pages (TLB entries) to cover them.
fn pack_vals<T: Clone>(top: &mut Top<T>) {
    let mut fresh: Vec<Arc<[Option<T>]>> = Vec::new();
    let all_slots = |top: &mut Top<T>, f: &mut dyn FnMut(&mut Slot<T>)| {
        for q in top.quads.iter_mut().flatten() {
            for c in Arc::make_mut(q).chunks.iter_mut().flatten() {
                for b in Arc::make_mut(c).blocks.iter_mut().flatten() {
                    for s in Arc::make_mut(b).slots.iter_mut() {
                        f(s);
                    }
                }
            }
        }
    };
    // All new arrays are allocated while the old ones are alive, so none reuses their space.
    all_slots(top, &mut |s| fresh.extend(s.vals.as_deref().map(Arc::from)));
    let mut it = fresh.into_iter();
    all_slots(top, &mut |s| {
        if s.vals.is_some() {
            s.vals = it.next();
        }
    });
}

fn flush_sub<T: Clone>(
    cur: &mut Option<(usize, Chunk<T>)>,
    sub: &mut Option<(usize, Vec<(u32, T)>)>,
    tiny: &[Option<T>],
) {
    if let (Some((_, chunk)), Some((j, routes))) = (cur.as_mut(), sub.take()) {
        chunk.set_routes(j, routes, tiny);
    }
}

fn flush_chunk<T: Clone>(top: &mut Top<T>, cur: &mut Option<(usize, Chunk<T>)>) {
    if let Some((c, mut chunk)) = cur.take() {
        chunk.short.shrink_to_fit();
        with_chunk(&mut top.quads, c, |slot| *slot = Some(Arc::new(chunk)));
    }
}

impl<T: Clone> Default for Lpm<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Lpm<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lpm").field("prefixes", &self.len).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key_of(net: Ipv4Net) -> (u32, u8) {
        (u32::from(net.network()), net.prefix_len())
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    impl<T: Clone + PartialEq + fmt::Debug> Lpm<T> {
        /// Checks invariants 1-3 of the module doc exhaustively (slow; tests only).
        fn check_invariants(&self) {
            let Some(top) = self.top.as_deref() else {
                assert_eq!(self.len, 0, "no top iff empty");
                return;
            };
            assert!(self.len > 0, "no top iff empty");
            assert!(top.tiny.is_empty() || top.tiny.len() == TINY_SLOTS);
            assert!(top.tiny.is_empty() || top.tiny.iter().any(Option::is_some));
            for q in top.quads.iter().flatten() {
                assert!(q.chunks.iter().any(Option::is_some), "empty quad kept");
            }
            let mut count = top.tiny.iter().flatten().count();
            for c in 0..FAN {
                let t = tiny_for(&top.tiny, c);
                let Some(chunk) = top.chunk(c) else {
                    assert_eq!(t, 0, "chunk {c} covered by a tiny route but missing");
                    continue;
                };
                assert!(!chunk.is_empty(), "empty chunk {c} kept");
                assert_eq!(chunk.tiny, t);
                let keys: Vec<_> = chunk.short.iter().map(|&(a, l, _)| (a, l)).collect();
                assert!(keys.windows(2).all(|w| w[0] < w[1]), "short sorted and unique");
                for &(a, l) in &keys {
                    assert!((8..=16).contains(&l) && a & mask(l) == a && (a >> 24) as usize == c);
                }
                let mut fresh = Chunk::new(t);
                fresh.short = chunk.short.clone();
                let before = fresh.default_keys();
                fresh.repaint(&top.tiny, &before, (0, 0));
                assert_eq!(fresh.default, chunk.default, "default of chunk {c}");
                count += keys.len();
                for b in chunk.blocks.iter().flatten() {
                    assert!(b.slots.iter().any(|s| s.vals.is_some()), "empty block kept");
                }
                for j in 0..FAN {
                    let Some(slot) = chunk.slot(j) else { continue };
                    let Some(vals) = slot.vals.as_deref() else {
                        assert_eq!((slot.bits, slot.cum), ([0; 4], [0; 4]));
                        assert!(slot.ctl.is_none());
                        continue;
                    };
                    let keys: Vec<_> = slot.routes().iter().map(|&(k, _)| k).collect();
                    assert!(!keys.is_empty(), "empty slot kept");
                    assert!(keys.windows(2).all(|w| w[0] < w[1]), "routes sorted and unique");
                    for &k in &keys {
                        let (a, l) = (k >> 8, (k & 0xff) as u8);
                        assert!((17..=32).contains(&l) && a & (mask(l) & 0xffff) == a, "{k:x}");
                    }
                    let default =
                        resolve(&top.tiny, &chunk.short, chunk.default[j]).map(|(_, _, v)| v);
                    let fresh = Slot::build(slot.routes().to_vec(), default);
                    assert_eq!((fresh.bits, fresh.cum), (slot.bits, slot.cum), "slot {c}.{j}");
                    assert_eq!(fresh.vals.as_deref(), Some(vals), "vals of {c}.{j}");
                    assert_eq!(fresh.ctl, slot.ctl, "ctl of {c}.{j}");
                    let runs = slot.bits.iter().map(|b| b.count_ones()).sum::<u32>() as usize;
                    assert_eq!(runs, vals.len());
                    count += keys.len();
                }
            }
            assert_eq!(count, self.len, "len");
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
        assert!(t.top.is_none() && t.memory_bytes() == 0, "storage released");
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
        // Only the /8 is left, so no sub remains.
        let chunk = t.top.as_deref().unwrap().chunk(10).unwrap();
        assert!(chunk.blocks.iter().all(Option::is_none));
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

    #[test]
    fn tiny_routes_span_chunks() {
        let mut t = Lpm::new();
        t.insert(net("8.0.0.0/5"), 5);
        t.insert(net("0.0.0.0/0"), 0);
        t.insert(net("10.0.0.0/8"), 8);
        t.insert(net("10.1.0.0/17"), 17);
        t.check_invariants();
        assert_eq!(t.lookup_prefix(ip("9.1.2.3")), Some((net("8.0.0.0/5"), &5)));
        assert_eq!(t.lookup_prefix(ip("15.255.255.255")), Some((net("8.0.0.0/5"), &5)));
        assert_eq!(t.lookup_prefix(ip("16.0.0.0")), Some((net("0.0.0.0/0"), &0)));
        assert_eq!(t.lookup_prefix(ip("10.1.128.0")), Some((net("10.0.0.0/8"), &8)));
        assert_eq!(t.lookup_prefix(ip("10.1.127.1")), Some((net("10.1.0.0/17"), &17)));
        let order: Vec<_> = t.iter().map(|(n, &v)| (n.to_string(), v)).collect();
        assert_eq!(order[0], ("0.0.0.0/0".to_string(), 0));
        assert_eq!(order[1], ("8.0.0.0/5".to_string(), 5));
        assert_eq!(t.remove(net("8.0.0.0/5")), Some(5));
        assert_eq!(t.lookup_prefix(ip("9.1.2.3")), Some((net("0.0.0.0/0"), &0)));
        t.check_invariants();
        assert_eq!(t.remove(net("0.0.0.0/0")), Some(0));
        assert_eq!(t.lookup(ip("9.1.2.3")), None);
        t.check_invariants();
        let top = t.top.as_deref().unwrap();
        assert_eq!((0..FAN).filter(|&c| top.chunk(c).is_some()).count(), 1, "only 10/8 left");
        assert!(top.tiny.is_empty());
    }

    #[test]
    fn clone_shares_storage() {
        let a = Lpm::from_routes([(net("10.0.0.0/8"), 1u32), (net("10.1.2.0/24"), 2)]);
        let mut b = a.clone();
        assert!(Arc::ptr_eq(a.top.as_ref().unwrap(), b.top.as_ref().unwrap()));
        b.insert(net("11.1.2.0/24"), 3);
        let (ta, tb) = (a.top.as_deref().unwrap(), b.top.as_deref().unwrap());
        // Only the touched /8 was copied; the other one is still shared.
        let (qa, qb) = (ta.quads[0].as_ref().unwrap(), tb.quads[0].as_ref().unwrap());
        assert!(!Arc::ptr_eq(qa, qb), "the path to 11/8 was copied");
        let (ca, cb) = (qa.chunks[10].as_ref().unwrap(), qb.chunks[10].as_ref().unwrap());
        assert!(Arc::ptr_eq(ca, cb), "10/8 is still shared");
        assert!(ta.chunk(11).is_none());
        assert_eq!(a.lookup(ip("11.1.2.3")), None);
        assert_eq!(b.lookup(ip("11.1.2.3")), Some(&3));
        // Removing an absent prefix copies nothing.
        let mut c = a.clone();
        assert_eq!(c.remove(net("10.9.0.0/16")), None);
        assert!(Arc::ptr_eq(a.top.as_ref().unwrap(), c.top.as_ref().unwrap()));
    }

    #[test]
    fn dense_block_and_host_routes() {
        // A /16 split into all its /24s plus every /32 of one /24: large subs and kids.
        let mut routes: Vec<(Ipv4Net, u32)> = (0..256u32)
            .map(|i| (Ipv4Net::new(Ipv4Addr::from(0x0a01_0000 | i << 8), 24).unwrap(), i))
            .collect();
        routes.extend(
            (0..256u32)
                .map(|i| (Ipv4Net::new(Ipv4Addr::from(0x0a01_0500 | i), 32).unwrap(), 1000 + i)),
        );
        let t = Lpm::from_routes(routes.iter().copied());
        t.check_invariants();
        for a in 0x0a01_0000..=0x0a01_ffffu32 {
            let want = if a >> 8 == 0x000a_0105 { 1000 + (a & 0xff) } else { (a >> 8) & 0xff };
            assert_eq!(t.lookup(a), Some(&want));
        }
        let mut u = Lpm::new();
        for &(n, v) in routes.iter().rev() {
            u.insert(n, v);
        }
        u.check_invariants();
        assert!(t.iter().eq(u.iter()));
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
            for &n in &pool {
                prop_assert_eq!(t.get(n), model.get(&key_of(n)));
                prop_assert_eq!(built.get(n), model.get(&key_of(n)));
            }
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

        /// Clones taken along an insert/remove sequence keep answering as their own
        /// snapshot of the model, while the table they were cloned from moves on.
        #[test]
        fn clones_are_snapshots(
            pool in prop::collection::vec(arb_prefix(), 1..30),
            ops in prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<u32>()),
                                         1..80),
            probes in prop::collection::vec(any::<u32>(), 32),
        ) {
            let initial: Vec<_> = pool.iter().map(|&n| (n, 7u32)).collect();
            let mut t = Lpm::from_routes(initial.iter().copied());
            let mut model: BTreeMap<_, _> = initial.iter().map(|&(n, v)| (key_of(n), v)).collect();
            let mut snaps = vec![(t.clone(), model.clone())];
            for (step, &(kind, idx, v)) in ops.iter().enumerate() {
                let n = pool[idx.index(pool.len())];
                if kind < 2 {
                    prop_assert_eq!(t.insert(n, v), model.insert(key_of(n), v));
                } else {
                    prop_assert_eq!(t.remove(n), model.remove(&key_of(n)));
                }
                if step % 8 == 0 {
                    snaps.push((t.clone(), model.clone()));
                }
            }
            snaps.push((t, model));
            let addrs: Vec<u32> =
                probes.iter().copied().chain(pool.iter().flat_map(|&n| edges(n))).collect();
            for (s, m) in &snaps {
                s.check_invariants();
                prop_assert_eq!(s.len(), m.len());
                let got: Vec<_> = s.iter().map(|(n, &v)| (key_of(n), v)).collect();
                let want: Vec<_> = m.iter().map(|(&k, &v)| (k, v)).collect();
                prop_assert_eq!(got, want);
                for &a in &addrs {
                    prop_assert_eq!(s.lookup_prefix(a), brute(m, a), "addr {}", Ipv4Addr::from(a));
                }
            }
        }
    }
}
