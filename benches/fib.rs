//! LPM benchmark: vpcsim's data-plane table (`vpcsim::fib::table::Fib`, labelled `vpcsim`)
//! against two baselines built here, a plain DIR-24-8
//! (2^24 `u32` entries plus 256-entry chunks for /25../32, values stored in the entries) and
//! `ip_network_table` (a tree-bitmap), on the real BGP table in
//! `../shared/data/bgp-prefixes.txt.gz` when present, else on a synthetic table with the same
//! prefix-length mix. Values are next-hop ids: `u32` in the baselines, `NonZeroU32` (id + 1) in
//! vpcsim's table (as the data plane's `Hop`, values the table stores once and refers to by a
//! 2-byte id).
//!
//! Prints once (stderr): the table used, the build time (full load) and heap bytes of each
//! structure (measured by a counting global allocator), interleaved ns/lookup (medians of 7
//! rounds; each loop timed twice in a row, the first pass after the other tables ran (cold) and
//! the second on its own warm table, which the goals are judged on) with the ratios
//! vpcsim/DIR-24-8 and vpcsim/ip_network_table (loops that add up the answers, which the goals
//! are judged on, and loops that branch on each answer), and an update benchmark: up to 10,000 random
//! single-prefix inserts/removes (capped at 15 s of wall time), each making the next version
//! from the previous one (`update`, left-right: see `fib::table`) (p50/p99/max). vpcsim's
//! memory is both sides and the exact routes it keeps for updates. Then one criterion group times all three lookups, interleaved, on both
//! address sets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ip_network::Ipv4Network;
use ip_network_table::IpNetworkTable;
use ipnet::Ipv4Net;
use vpcsim::fib::table::Fib;

const LOOKUPS: usize = 1_000_000;
/// Rounds of the interleaved direct timings (medians).
const ROUNDS: usize = 7;

/// A timed loop: looks up every address, returns the sum of the answers.
type Lookups<'a> = dyn Fn(&[u32]) -> u64 + 'a;
const UPDATES: usize = 10_000;
/// Wall-time cap of the update benchmark (an implementation whose clone copies the whole
/// table would otherwise take minutes); the number of operations done is printed.
const UPDATE_BUDGET: Duration = Duration::from_secs(15);

/// Counts live heap bytes, so every structure's memory is measured the same way.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Builds a value, returning it with the build time and the heap bytes it keeps.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Duration, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    let r = f();
    let d = t.elapsed();
    (r, d, LIVE.load(Ordering::Relaxed).saturating_sub(before))
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Plain DIR-24-8: one read for up to /24, two for longer prefixes. An entry is `0` (no
/// route), `value + 1`, or `CHUNK | c` (chunk `c` of `tbl8` resolves the last 8 bits).
struct Dir248 {
    tbl24: Box<[u32; 1 << 24]>,
    tbl8: Vec<u32>,
}

impl Dir248 {
    const CHUNK: u32 = 1 << 31;

    fn build(routes: &[(Ipv4Net, u32)]) -> Self {
        let mut sorted: Vec<(u32, u8, u32)> =
            routes.iter().map(|&(n, v)| (u32::from(n.network()), n.prefix_len(), v)).collect();
        // Shortest first, so longer prefixes overwrite; stable, so a later duplicate wins.
        sorted.sort_by_key(|&(_, l, _)| l);
        let tbl24: Box<[u32; 1 << 24]> =
            vec![0u32; 1 << 24].into_boxed_slice().try_into().expect("2^24 entries");
        let mut d = Dir248 { tbl24, tbl8: Vec::new() };
        for (a, l, v) in sorted {
            assert!(v < Self::CHUNK - 1, "value fits an entry");
            if l <= 24 {
                let s = (a >> 8) as usize;
                d.tbl24[s..s + (1 << (24 - l))].fill(v + 1);
            } else {
                let e = d.tbl24[(a >> 8) as usize];
                let c = if e & Self::CHUNK != 0 {
                    (e & !Self::CHUNK) as usize
                } else {
                    let c = d.tbl8.len() / 256;
                    d.tbl8.extend([e; 256]);
                    d.tbl24[(a >> 8) as usize] = Self::CHUNK | c as u32;
                    c
                };
                let s = c * 256 + (a & 0xff) as usize;
                d.tbl8[s..s + (1 << (32 - l))].fill(v + 1);
            }
        }
        d
    }

    #[inline]
    fn lookup(&self, a: u32) -> Option<u32> {
        let mut e = self.tbl24[(a >> 8) as usize];
        if e & Self::CHUNK != 0 {
            e = self.tbl8.get(((e & !Self::CHUNK) as usize) << 8 | (a & 0xff) as usize).copied()?;
        }
        e.checked_sub(1)
    }
}

/// Percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

/// xorshift64*: tiny, seeded, good enough for benchmark inputs.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// IPv4 prefixes of the shared BGP dump, or None if the file is absent.
fn load_bgp(path: &Path) -> Option<Vec<Ipv4Net>> {
    let file = std::fs::File::open(path).ok()?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.expect("read bgp-prefixes.txt.gz");
        let line = line.trim();
        if line.is_empty() || line.contains(':') {
            continue; // IPv6 (or blank)
        }
        match line.parse::<Ipv4Net>() {
            Ok(n) => out.push(n.trunc()),
            Err(e) => panic!("bad prefix {line:?}: {e}"),
        }
    }
    Some(out)
}

/// ~900k prefixes with the length mix of a full IPv4 BGP table.
fn synthesise(rng: &mut XorShift) -> Vec<Ipv4Net> {
    synthesise_n(rng, 900_000)
}

/// `count` prefixes with the length mix of a full IPv4 BGP table.
fn synthesise_n(rng: &mut XorShift, count: usize) -> Vec<Ipv4Net> {
    // (length, per-mille share)
    const MIX: [(u8, u32); 12] = [
        (24, 596),
        (22, 120),
        (23, 107),
        (21, 56),
        (20, 47),
        (19, 28),
        (18, 15),
        (16, 15),
        (17, 9),
        (15, 2),
        (14, 1),
        (32, 1),
    ];
    let total: u32 = MIX.iter().map(|&(_, s)| s).sum();
    (0..count)
        .map(|_| {
            let mut pick = rng.next_u32() % total;
            let len = MIX
                .iter()
                .find(|&&(_, share)| {
                    let hit = pick < share;
                    pick = pick.saturating_sub(share);
                    hit
                })
                .map_or(24, |&(l, _)| l);
            // Avoid 0/8, multicast and reserved space like a real table does.
            let addr = 0x0100_0000 + rng.next_u32() % (0xe000_0000 - 0x0100_0000);
            Ipv4Net::new(Ipv4Addr::from(addr), len).expect("len <= 32").trunc()
        })
        .collect()
}

fn fib(c: &mut Criterion) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/bgp-prefixes.txt.gz");
    let prefixes = match load_bgp(&path) {
        Some(p) => {
            eprintln!("fib: using real BGP table {} ({} IPv4 prefixes)", path.display(), p.len());
            p
        }
        None => {
            let p = synthesise(&mut rng);
            eprintln!(
                "fib: {} not found; using synthetic table ({} prefixes)",
                path.display(),
                p.len()
            );
            p
        }
    };
    let routes: Vec<(Ipv4Net, u32)> =
        prefixes.iter().enumerate().map(|(i, &n)| (n, (i % 4096) as u32)).collect();
    // vpcsim's table holds next-hop ids `v + 1` (`NonZeroU32`): the same 4-byte entry the
    // DIR-24-8 stores (`0` = no route), and the size of the `Option<Hop>` the data plane keeps.
    let hop = |v: u32| NonZeroU32::new(v + 1).expect("ids below 2^32 - 1");

    // Full loads: best of three for the two fast builders, one for ip_network_table.
    let mut ours_build = Duration::MAX;
    let mut dir_build = Duration::MAX;
    let (mut ours, mut ours_mem, mut dir, mut dir_mem) = (None, 0, None, 0);
    for _ in 0..3 {
        drop(ours.take());
        let (l, d, m) = measure(|| Fib::from_routes(routes.iter().map(|&(n, v)| (n, hop(v)))));
        // Memory with both sides: the first update makes the second (a copy of the first);
        // the route is put back by the second.
        let (first, v) = (routes[0].0, hop(routes[0].1));
        let (l, _, m2) = measure(|| {
            let next = l.update([(first, None)]).expect("latest version");
            // As a snapshot is dropped once its readers leave: its side is written next.
            drop(l);
            next.update([(first, Some(v))]).expect("latest version")
        });
        (ours, ours_mem, ours_build) = (Some(l), m + m2, ours_build.min(d));
        drop(dir.take());
        let (l, d, m) = measure(|| Dir248::build(&routes));
        (dir, dir_mem, dir_build) = (Some(l), m, dir_build.min(d));
    }
    let (ours, dir) = (ours.expect("built"), dir.expect("built"));
    let (base, base_build, base_mem) = measure(|| {
        let mut base = IpNetworkTable::new();
        for &(n, v) in &routes {
            let net = Ipv4Network::new(n.network(), n.prefix_len()).expect("normalised prefix");
            base.insert(net, v);
        }
        base
    });

    let uniform: Vec<u32> = (0..LOOKUPS).map(|_| rng.next_u32()).collect();
    let inside: Vec<u32> = (0..LOOKUPS)
        .map(|_| {
            let n = prefixes[rng.below(prefixes.len())];
            u32::from(n.network()) | (rng.next_u32() & !u32::from(n.netmask()))
        })
        .collect();

    // All three tables must agree before their speed means anything.
    for &a in uniform.iter().chain(&inside).step_by(7) {
        let ours = ours.lookup(a).map(|v| v.get() - 1);
        let theirs = base.longest_match_ipv4(Ipv4Addr::from(a)).map(|(_, &v)| v);
        assert_eq!(ours, theirs, "mismatch for {}", Ipv4Addr::from(a));
        assert_eq!(ours, dir.lookup(a), "DIR-24-8 mismatch for {a:#x}");
    }

    // The timed loops add up the answers (0 for "no route"), so they time the lookups. A
    // loop that branches on each answer (`filter_map`) also times a mispredicted branch per
    // unrouted address, which costs a table more the later its answer arrives; those figures
    // are printed too, for all three, but the goal is judged on the lookups.
    let ours_sum = |addrs: &[u32]| {
        addrs.iter().map(|&a| ours.lookup(a).map_or(0, |v| u64::from(v.get()))).sum::<u64>()
    };
    let dir_sum =
        |addrs: &[u32]| addrs.iter().map(|&a| dir.lookup(a).map_or(0, u64::from)).sum::<u64>();
    let base_sum = |addrs: &[u32]| {
        addrs
            .iter()
            .map(|&a| base.longest_match_ipv4(Ipv4Addr::from(a)).map_or(0, |(_, &v)| u64::from(v)))
            .sum::<u64>()
    };
    let ours_branch = |addrs: &[u32]| {
        addrs.iter().filter_map(|&a| ours.lookup(a)).map(|v| u64::from(v.get())).sum::<u64>()
    };
    let dir_branch =
        |addrs: &[u32]| addrs.iter().filter_map(|&a| dir.lookup(a)).map(u64::from).sum::<u64>();
    let base_branch = |addrs: &[u32]| {
        addrs
            .iter()
            .filter_map(|&a| base.longest_match_ipv4(Ipv4Addr::from(a)))
            .map(|(_, &v)| u64::from(v))
            .sum::<u64>()
    };
    eprintln!(
        "fib: {} prefixes; build (full load): vpcsim {:.1?}, DIR-24-8 {:.1?}, \
         ip_network_table {:.1?}",
        ours.len(),
        ours_build,
        dir_build,
        base_build
    );
    eprintln!(
        "fib: heap: vpcsim {:.1} MiB (both sides and the exact routes; memory_bytes {:.1} MiB), \
         DIR-24-8 {:.1} MiB, ip_network_table {:.1} MiB",
        mib(ours_mem),
        mib(ours.memory_bytes()),
        mib(dir_mem),
        mib(base_mem)
    );

    // Direct timings, interleaved round by round, medians of ROUNDS, for the ratios. Each
    // loop runs twice in a row: the first pass finds the caches as the other tables left them
    // (DIR-24-8's 64 MiB pass evicts a 4 MiB table from this machine's 32 MiB L3), the second
    // finds its own table warm, as a forwarder that looks up every packet does. Both are
    // printed; the goals are judged on the warm pass.
    let ns = |f: &dyn Fn(&[u32]) -> u64, addrs: &[u32]| {
        let t = Instant::now();
        black_box(f(black_box(addrs)));
        t.elapsed().as_secs_f64() * 1e9 / addrs.len() as f64
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ratios = Vec::new();
    for (name, addrs) in [("uniform", &uniform), ("in-prefix", &inside)] {
        let loops: [&Lookups<'_>; 6] =
            [&ours_sum, &dir_sum, &base_sum, &ours_branch, &dir_branch, &base_branch];
        let (mut cold, mut warm) = (vec![Vec::new(); 6], vec![Vec::new(); 6]);
        for _ in 0..ROUNDS {
            for (k, f) in loops.iter().enumerate() {
                cold[k].push(ns(*f, addrs));
                warm[k].push(ns(*f, addrs));
            }
        }
        let cold: Vec<f64> = cold.into_iter().map(median).collect();
        let warm: Vec<f64> = warm.into_iter().map(median).collect();
        let (a, d, b) = (warm[0], warm[1], warm[2]);
        eprintln!(
            "fib: {name}: ns/lookup (median of {ROUNDS}, warm) vpcsim {a:.2}, DIR-24-8 {d:.2}, \
             ip_network_table {b:.2}; ratio vpcsim/DIR-24-8 {:.3}, vpcsim/ip_network_table {:.3}",
            a / d,
            a / b
        );
        eprintln!(
            "fib: {name}, first pass after the other tables (cold): ns/lookup vpcsim {:.2}, \
             DIR-24-8 {:.2}, ip_network_table {:.2}; ratio vpcsim/DIR-24-8 {:.3}",
            cold[0],
            cold[1],
            cold[2],
            cold[0] / cold[1]
        );
        eprintln!(
            "fib: {name}, branching on each answer (warm): ns/lookup vpcsim {:.2}, DIR-24-8 \
             {:.2}, ip_network_table {:.2}; ratio vpcsim/DIR-24-8 {:.3}, vpcsim/ip_network_table \
             {:.3}",
            warm[3],
            warm[4],
            warm[5],
            warm[3] / warm[4],
            warm[3] / warm[5]
        );
        ratios.push((name, a / d, b / a));
    }
    let met = |ok: bool| if ok { "met" } else { "not met" };
    for (name, dir_ratio, speedup) in &ratios {
        eprintln!(
            "fib: goal {name}: ns/lookup <= DIR-24-8's: ratio {dir_ratio:.2} ({}); \
             >= 10x ip_network_table: {speedup:.1}x ({})",
            met(*dir_ratio <= 1.0),
            met(*speedup >= 10.0)
        );
    }
    eprintln!(
        "fib: goal memory <= 16 MiB: {:.1} MiB ({}); full load <= 100 ms: {:.1?} ({})",
        mib(ours_mem),
        met(ours_mem <= 16 << 20),
        ours_build,
        met(ours_build <= Duration::from_millis(100))
    );

    let hops: Vec<(Ipv4Net, NonZeroU32)> = routes.iter().map(|&(n, v)| (n, hop(v))).collect();
    update_bench(&hops, &prefixes, &mut rng);

    let mut g = c.benchmark_group("fib");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(LOOKUPS as u64));
    for (name, addrs) in [("uniform", &uniform), ("in-prefix", &inside)] {
        g.bench_function(format!("vpcsim/{name}"), |b| b.iter(|| ours_sum(black_box(addrs))));
        g.bench_function(format!("dir24-8/{name}"), |b| b.iter(|| dir_sum(black_box(addrs))));
        g.bench_function(format!("ip_network_table/{name}"), |b| {
            b.iter(|| base_sum(black_box(addrs)))
        });
    }
    g.finish();
}

/// Up to 10,000 updates (within `UPDATE_BUDGET`) on the full table, alternating a removal of a
/// random present prefix and an insertion of a random new one (address and length drawn like
/// the synthetic table); each makes the next version from the previous one, as the control
/// plane does before publishing a snapshot: the time is from the call to a version readers can
/// use. The previous version is dropped outside the timed region, as a snapshot is once its
/// last reader leaves (timed separately). On its own lineage, built here from `routes`: a
/// version held for the whole run (the lookup benchmark's) would make every other update copy
/// the side it waits for.
fn update_bench(routes: &[(Ipv4Net, NonZeroU32)], prefixes: &[Ipv4Net], rng: &mut XorShift) {
    let fresh = synthesise_n(rng, UPDATES / 2 + 1);
    let mut present: Vec<Ipv4Net> = prefixes.to_vec();
    let mut cur = Fib::from_routes(routes.iter().copied());
    let mut times = Vec::with_capacity(UPDATES);
    let mut drops = Vec::with_capacity(UPDATES);
    let start = Instant::now();
    for i in 0..UPDATES {
        if start.elapsed() > UPDATE_BUDGET {
            break;
        }
        let t = Instant::now();
        let next = if i % 2 == 0 {
            let n = present.swap_remove(rng.below(present.len()));
            cur.update([(n, None)])
        } else {
            cur.update([(fresh[i / 2], Some(NonZeroU32::MIN.saturating_add(i as u32)))])
        };
        let next = next.expect("the latest version");
        times.push(t.elapsed());
        let old = std::mem::replace(&mut cur, next);
        let t = Instant::now();
        drop(old);
        drops.push(t.elapsed());
    }
    times.sort();
    drops.sort();
    eprintln!(
        "fib: update (insert/remove, the next version on the other side, {} ops on the full \
         table): p50 {:.2?}, p99 {:.2?}, max {:.2?}; dropping the previous version: p50 {:.2?}, \
         p99 {:.2?}",
        times.len(),
        pct(&times, 0.5),
        pct(&times, 0.99),
        pct(&times, 1.0),
        pct(&drops, 0.5),
        pct(&drops, 0.99)
    );
}

criterion_group!(benches, fib);
criterion_main!(benches);
