//! TUN ports and the per-queue worker threads.
//!
//! Each port is one persistent multi-queue TUN device opened with `IFF_VNET_HDR` and
//! TSO/checksum offload, so the kernel hands over whole GSO superpackets (up to 64 KB) with a
//! virtio header; they are routed and rewritten once and written whole to the next TUN, whose
//! kernel side segments or delivers them as it must. Each port has [`queues`] queues (one per
//! core, at most 4), one file descriptor each, and one blocking thread reads each queue. The
//! kernel spreads flows over a device's queues by their symmetric flow hash and keeps a flow on
//! the queue it was last written from (`tun_automq_select_queue`, `tun_flow_update`), so one
//! flow's packets stay on one queue in each direction: worker `k` writes to queue `k` of the
//! destination port, which keeps the packets of one direction of a flow in order and brings the
//! replies back to worker `k` of the other port. Several TCP streams are forwarded on as many
//! cores as there are queues; one stream still takes one core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use tun_rs::{DeviceBuilder, SyncDevice};

use super::netns;
use crate::dataplane::{Action, Injection, Meta, Pipeline};
use crate::fib::PortId;
use crate::packet::VnetHdr;

/// One queue of a port's TUN device and the state of the worker that reads it.
pub struct Queue {
    pub dev: SyncDevice,
    /// The worker is between reading a packet and having written it.
    busy: AtomicBool,
    /// Packets the worker finished.
    done: AtomicU64,
}

/// One TUN device of the lab: its queues, never empty.
pub struct Port {
    pub queues: Vec<Queue>,
}

impl Port {
    pub fn new(devs: Vec<SyncDevice>) -> Arc<Port> {
        assert!(!devs.is_empty(), "a port has at least one queue");
        let queues = devs
            .into_iter()
            .map(|dev| Queue { dev, busy: AtomicBool::new(false), done: AtomicU64::new(0) })
            .collect();
        Arc::new(Port { queues })
    }

    /// The queue worker `k` of another port writes to.
    fn queue_for(&self, k: usize) -> &Queue {
        &self.queues[k % self.queues.len()]
    }
}

/// Queues per port: one per core the process may use, at most 4 (a worker per queue; more
/// workers than cores only adds context switches).
pub fn queues() -> usize {
    // For measurements: `VPCSIM_TUN_QUEUES=1` gives the single-queue forwarder.
    if let Some(n) = std::env::var("VPCSIM_TUN_QUEUES").ok().and_then(|v| v.parse::<usize>().ok()) {
        return n.clamp(1, 16);
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// The lab's ports, indexed by port number.
pub type PortTable = ArcSwap<Vec<Option<Arc<Port>>>>;

/// Waits until no worker is still forwarding a packet it read before this call (so with a
/// snapshot older than one published before it). Bounded: a worker stuck in a write is not
/// waited for longer than 100 ms.
pub fn quiesce(ports: &PortTable) {
    let table = ports.load();
    let deadline = Instant::now() + Duration::from_millis(100);
    for q in table.iter().flatten().flat_map(|p| &p.queues) {
        let done = q.done.load(Ordering::Acquire);
        while q.busy.load(Ordering::Acquire) && q.done.load(Ordering::Acquire) == done {
            if Instant::now() > deadline {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// Writes control-plane packets (RSTs) to their ports, each with an empty virtio header (full
/// checksums, no GSO). Returns how many were written.
pub fn inject(ports: &PortTable, packets: &[Injection], io: &IoCounters) -> usize {
    let table = ports.load();
    let mut buf = Vec::with_capacity(VnetHdr::LEN + 64);
    let mut written = 0;
    for inj in packets {
        let Some(Some(port)) = table.get(usize::from(inj.port)) else { continue };
        buf.clear();
        buf.extend_from_slice(&VnetHdr::default().to_bytes());
        buf.extend_from_slice(&inj.packet);
        match port.queues[0].dev.send(&buf) {
            Ok(_) => written += 1,
            Err(_) => {
                io.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    written
}

/// The name of the TUN device in every lab namespace.
pub const DEVICE: &str = "vpcsim0";

/// I/O errors of the workers (counted, never fatal for a single packet).
#[derive(Default)]
pub struct IoCounters {
    pub rx_errors: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// Opens the lab's persistent TUN device of namespace `ns` with [`queues`] queues, from a
/// thread inside it (a queue is attached by the device's name in the namespace it is opened in).
pub fn attach(ns: &str) -> anyhow::Result<Arc<Port>> {
    let n = queues();
    let devs = netns::run_in(ns, move || {
        let first =
            DeviceBuilder::new().name(DEVICE).offload(true).multi_queue(true).build_sync()?;
        let mut devs = Vec::with_capacity(n);
        for _ in 1..n {
            devs.push(first.try_clone()?);
        }
        devs.insert(0, first);
        Ok(devs)
    })
    .with_context(|| format!("attaching to {DEVICE} in {ns}"))?;
    Ok(Port::new(devs))
}

/// Starts the workers of one port, one per queue: read, process, write, until the device goes
/// away.
pub fn spawn(
    ns: &str,
    port: PortId,
    me: Arc<Port>,
    pipeline: Arc<Pipeline>,
    ports: Arc<PortTable>,
    io: Arc<IoCounters>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..me.queues.len())
        .map(|k| {
            let (me, pipeline, ports, io) =
                (me.clone(), pipeline.clone(), ports.clone(), io.clone());
            netns::spawn_in(ns, format!("port-{port}q{k}"), move || {
                run(port, k, &me, &pipeline, &ports, &io)
            })
        })
        .collect()
}

fn run(port: PortId, k: usize, me: &Port, pipeline: &Pipeline, ports: &PortTable, io: &IoCounters) {
    let me = &me.queues[k];
    // A virtio header plus the largest GSO superpacket Linux builds (64 KB), with room to spare.
    let mut buf = vec![0u8; VnetHdr::LEN + 65_536 + 4096];
    loop {
        let n = match me.dev.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The device was deleted (lab teardown): this worker's job is over.
                tracing::debug!(port, queue = k, error = %e, "port closed");
                return;
            }
        };
        let Some(hdr) = (n >= VnetHdr::LEN).then(|| VnetHdr::parse(&buf[..n])).flatten() else {
            io.rx_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let meta = Meta { csum: hdr.csum_mode(), gso: hdr.is_gso() };
        me.busy.store(true, Ordering::Release);
        let action = pipeline.process(Instant::now(), port, &mut buf[VnetHdr::LEN..n], meta);
        if let Action::Forward { port: out, len } = action {
            let table = ports.load();
            let sent = match table.get(usize::from(out)) {
                Some(Some(out_port)) => {
                    out_port.queue_for(k).dev.send(&buf[..VnetHdr::LEN + len]).is_ok()
                }
                _ => false,
            };
            if !sent {
                io.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        me.done.fetch_add(1, Ordering::Release);
        me.busy.store(false, Ordering::Release);
    }
}
