//! LPM lookup benchmark: `vpcsim::fib::lpm::Lpm` against `ip_network_table` (a tree-bitmap) as
//! a baseline, on the real BGP table in `../shared/data/bgp-prefixes.txt.gz` when present,
//! else on a synthetic table with the same prefix-length mix.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ip_network::Ipv4Network;
use ip_network_table::IpNetworkTable;
use ipnet::Ipv4Net;
use vpcsim::fib::lpm::Lpm;

const LOOKUPS: usize = 1_000_000;

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
    (0..900_000)
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

    let t = Instant::now();
    let lpm = Lpm::from_routes(routes.iter().copied());
    let lpm_build = t.elapsed();
    let t = Instant::now();
    let mut base = IpNetworkTable::new();
    for &(n, v) in &routes {
        let net = Ipv4Network::new(n.network(), n.prefix_len()).expect("normalised prefix");
        base.insert(net, v);
    }
    let base_build = t.elapsed();

    let uniform: Vec<u32> = (0..LOOKUPS).map(|_| rng.next_u32()).collect();
    let inside: Vec<u32> = (0..LOOKUPS)
        .map(|_| {
            let n = prefixes[rng.below(prefixes.len())];
            u32::from(n.network()) | (rng.next_u32() & !u32::from(n.netmask()))
        })
        .collect();

    // Both tables must agree before their speed means anything.
    for &a in uniform.iter().chain(&inside).step_by(7) {
        let ours = lpm.lookup_prefix(a).map(|(n, &v)| (n.network(), n.prefix_len(), v));
        let theirs = base
            .longest_match_ipv4(Ipv4Addr::from(a))
            .map(|(n, &v)| (n.network_address(), n.netmask(), v));
        assert_eq!(ours, theirs, "mismatch for {}", Ipv4Addr::from(a));
    }

    // One quick direct timing, so the ratio is printed in a single place.
    let time = |f: &dyn Fn(&[u32]) -> u64, addrs: &[u32]| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                black_box(f(black_box(addrs)));
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1e9
            / addrs.len() as f64
    };
    let lpm_sum =
        |addrs: &[u32]| addrs.iter().filter_map(|&a| lpm.lookup(a)).map(|&v| v as u64).sum();
    let base_sum = |addrs: &[u32]| {
        addrs
            .iter()
            .filter_map(|&a| base.longest_match_ipv4(Ipv4Addr::from(a)))
            .map(|(_, &v)| v as u64)
            .sum()
    };
    eprintln!(
        "fib: prefixes {}, build lpm {:.1?} vs ip_network_table {:.1?} (ratio {:.2})",
        lpm.len(),
        lpm_build,
        base_build,
        lpm_build.as_secs_f64() / base_build.as_secs_f64()
    );
    eprintln!(
        "fib: lpm memory_bytes {:.1} MiB (+ side map ~{:.1} MiB)",
        lpm.memory_bytes() as f64 / (1 << 20) as f64,
        lpm.control_bytes() as f64 / (1 << 20) as f64
    );
    for (name, addrs) in [("uniform", &uniform), ("in-prefix", &inside)] {
        let (a, b) = (time(&lpm_sum, addrs), time(&base_sum, addrs));
        eprintln!(
            "fib: {name}: lpm {a:.1} ns/lookup, ip_network_table {b:.1} ns/lookup, \
                   ratio lpm/ip_network_table {:.3}",
            a / b
        );
    }

    let mut g = c.benchmark_group("fib");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(LOOKUPS as u64));
    for (name, addrs) in [("uniform", &uniform), ("in-prefix", &inside)] {
        g.bench_function(format!("lpm/{name}"), |b| b.iter(|| lpm_sum(black_box(addrs))));
        g.bench_function(format!("ip_network_table/{name}"), |b| {
            b.iter(|| base_sum(black_box(addrs)))
        });
    }
    g.finish();
}

criterion_group!(benches, fib);
criterion_main!(benches);
