//! Flow-table scale (issue 6, benchmark 5): 1,000,000 tracked flows; heap bytes per flow
//! (a counting allocator) and the latency of an insert and of a lookup (p50/p99 over every
//! operation, each timed on its own). Goal: at most 128 bytes per flow, insert + lookup p99
//! at most 1 µs. No baseline: the figures stand alone.
//!
//! Run: `cargo bench --bench flows`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vpcsim::dataplane::flow::{Flow, FlowKey, FlowPath, FlowTable, Stamp, TcpState};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FLOWS: u32 = 1_000_000;

fn key(i: u32) -> FlowKey {
    // Instances 203.0.113.x with 65k ports each, to S3 addresses: like a busy NAT.
    FlowKey {
        proto: 6,
        src: u32::from_be_bytes([203, 0, 113, (i % 250) as u8]),
        sport: 1024 + (i / 250) as u16,
        dst: u32::from_be_bytes([54, 123, 170, (i % 7) as u8]),
        dport: 443,
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let now = Stamp::at(Instant::now());
    let before = LIVE.load(Ordering::Relaxed);
    let table = FlowTable::default();
    let mut inserts = Vec::with_capacity(FLOWS as usize);
    for i in 0..FLOWS {
        let k = key(i);
        let t = Instant::now();
        table
            .upsert(
                k,
                || Flow {
                    path: FlowPath::Igw { aws: true },
                    port: 2,
                    private_ip: i,
                    last_seen: now,
                    tcp: TcpState::default(),
                },
                |f| f.last_seen = now,
            )
            .expect("a million flows are under the table's limit");
        inserts.push(t.elapsed());
    }
    let heap = LIVE.load(Ordering::Relaxed) - before - inserts.capacity() * size_of::<Duration>();
    let mut lookups = Vec::with_capacity(FLOWS as usize);
    for i in (0..FLOWS).rev() {
        let k = key(i);
        let t = Instant::now();
        black_box(table.with(&k, |f| f.last_seen = now));
        lookups.push(t.elapsed());
    }
    assert_eq!(table.len(), FLOWS as usize);
    let per_flow = heap as f64 / f64::from(FLOWS);
    let (ip50, ip99) = (percentile(&mut inserts, 0.5), percentile(&mut inserts, 0.99));
    let (lp50, lp99) = (percentile(&mut lookups, 0.5), percentile(&mut lookups, 0.99));
    println!(
        "flows: {FLOWS} tracked flows, {per_flow:.1} bytes per flow (goal <= 128: {})",
        if per_flow <= 128.0 { "met" } else { "not met" }
    );
    println!(
        "flows: insert p50 {ip50:?} p99 {ip99:?}; lookup p50 {lp50:?} p99 {lp99:?} (goal p99 <= 1 µs: {})",
        if ip99 <= Duration::from_micros(1) && lp99 <= Duration::from_micros(1) {
            "met"
        } else {
            "not met"
        }
    );
}
