//! TUN ports and the per-queue worker threads.
//!
//! Each port is one persistent multi-queue TUN device opened with `IFF_VNET_HDR` and
//! TSO/checksum offload, so the kernel hands over whole GSO superpackets (up to 64 KB) with a
//! virtio header; they are routed and rewritten once and written whole to the next TUN, whose
//! kernel side segments or delivers them as it must. Each port has [`queues`] queues (one per
//! core, at most 4), one file descriptor each, and one blocking thread reads each queue. The
//! kernel sends a flow's packets to the queue its replies were last written to
//! (`tun_automq_select_queue`, `tun_flow_update`), or by its hash before any were. Every
//! packet is written to the destination's queue picked by a fixed hash of its own addresses
//! and ports ([`flow_queue`]), so after the first packets each flow stays on one queue, and one
//! worker, in each direction, and is never reordered. Several flows are forwarded on as many
//! cores as there are queues; one TCP stream still takes one core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use tun_rs::{DeviceBuilder, SyncDevice};

use super::netns;
use crate::dataplane::{Action, Injection, Meta, Pipeline};
use crate::fib::PortId;
use crate::packet::{self, VnetHdr};

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

    /// The queue a packet of flow hash `h` is written to.
    fn queue_for(&self, h: usize) -> &Queue {
        &self.queues[h % self.queues.len()]
    }
}

/// A fixed hash of an IPv4 packet's addresses, protocol and (TCP, UDP) ports; 0 for anything
/// else. Every packet of a flow is written to a destination port on the queue this picks, so
/// the kernel's flow table on that TUN (`tun_flow_update`, updated by every write) keeps
/// sending the flow's replies to one queue, and so to one worker: a flow never has packets on
/// two workers of a port at once, and so is never reordered. Choosing the queue by the writing
/// worker instead let flows flip between queues (each side following the other's last write)
/// and reorder: spurious fast retransmits in about one 3-second iperf3 run in eight.
fn flow_queue(pkt: &[u8]) -> usize {
    let Some(&[vihl, _, _, _, _, _, _, _, _, proto, _, _, s0, s1, s2, s3, d0, d1, d2, d3]) =
        pkt.get(..20)
    else {
        return 0;
    };
    if vihl >> 4 != 4 {
        return 0;
    }
    let mut h = u64::from(u32::from_be_bytes([s0, s1, s2, s3])) << 32
        | u64::from(u32::from_be_bytes([d0, d1, d2, d3]));
    let ihl = usize::from(vihl & 0x0f) * 4;
    if matches!(proto, 6 | 17)
        && let Some(ports) = pkt.get(ihl..ihl + 4)
    {
        h ^= u64::from(u32::from_be_bytes([ports[0], ports[1], ports[2], ports[3]])) << 7
            | u64::from(proto);
    }
    // A multiply-shift mix: the high bits depend on every input bit.
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize
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
/// checksums, no GSO), on the queue the flow's own packets are written to. Returns how many
/// were written.
pub fn inject(ports: &PortTable, packets: &[Injection], io: &IoCounters) -> usize {
    let table = ports.load();
    let mut buf = Vec::with_capacity(VnetHdr::LEN + 64);
    let mut written = 0;
    for inj in packets {
        let Some(Some(port)) = table.get(usize::from(inj.port)) else { continue };
        buf.clear();
        buf.extend_from_slice(&VnetHdr::default().to_bytes());
        buf.extend_from_slice(&inj.packet);
        match port.queue_for(flow_queue(&inj.packet)).dev.send(&buf) {
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
    // Where the fragments of a packet too big for the internet gateway are cut, one at a time.
    let mut frag = vec![0u8; VnetHdr::LEN + 65_536];
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
        let meta = Meta { csum: hdr.csum_mode(), gso: hdr.is_gso(), gso_size: hdr.gso_size };
        me.busy.store(true, Ordering::Release);
        let action = pipeline.process(Instant::now(), port, &mut buf[VnetHdr::LEN..n], meta);
        let reply = matches!(action, Action::Reply { .. });
        if let Action::Forward { port: out, len } | Action::Reply { port: out, len } = action {
            if reply {
                // The pipeline's own packet: complete checksums, no offload.
                buf[..VnetHdr::LEN].copy_from_slice(&VnetHdr::default().to_bytes());
            }
            let table = ports.load();
            let sent = match table.get(usize::from(out)) {
                Some(Some(out_port)) => {
                    let pkt = &buf[..VnetHdr::LEN + len];
                    out_port.queue_for(flow_queue(&pkt[VnetHdr::LEN..])).dev.send(pkt).is_ok()
                }
                _ => false,
            };
            if !sent {
                io.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Action::Fragment { port: out, len, mtu } = action {
            let pkt = &buf[VnetHdr::LEN..VnetHdr::LEN + len];
            if !send_fragments(ports, out, pkt, usize::from(mtu), &mut frag) {
                io.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        me.done.fetch_add(1, Ordering::Release);
        me.busy.store(false, Ordering::Release);
    }
}

/// Writes `pkt` to port `out` cut into fragments of at most `mtu` bytes, one by one from
/// `scratch`, each with an empty virtio header (full checksums, no offload), all on the queue
/// the whole packet would take. False if the port is gone, the packet cannot be cut, or a write
/// failed.
fn send_fragments(
    ports: &PortTable,
    out: PortId,
    pkt: &[u8],
    mtu: usize,
    scratch: &mut [u8],
) -> bool {
    let table = ports.load();
    let Some(Some(out_port)) = table.get(usize::from(out)) else {
        return false;
    };
    let queue = out_port.queue_for(flow_queue(pkt));
    let Some(hdr) = scratch.get_mut(..VnetHdr::LEN) else {
        return false;
    };
    hdr.copy_from_slice(&VnetHdr::default().to_bytes());
    let mut i = 0;
    while let Some(n) = packet::fragment(pkt, mtu, i, &mut scratch[VnetHdr::LEN..]) {
        if queue.dev.send(&scratch[..VnetHdr::LEN + n]).is_err() {
            return false;
        }
        i += 1;
    }
    i > 0
}

#[cfg(test)]
mod tests {
    use super::flow_queue;

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], ports: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p.extend(src);
        p.extend(dst);
        p.extend(ports);
        p.resize(40, 0);
        p
    }

    #[test]
    fn a_flow_keeps_its_queue_and_flows_spread() {
        let a = ipv4(6, [10, 0, 1, 10], [54, 123, 170, 5], [0x9c, 0x40, 0x14, 0x51]);
        // The payload and the TTL do not move a flow.
        let mut b = a.clone();
        b[8] = 63;
        b[39] = 0xff;
        assert_eq!(flow_queue(&a), flow_queue(&b));
        // Different source ports land on both queues of a 2-queue port.
        let queues: std::collections::HashSet<usize> = (0..64u16)
            .map(|p| {
                let [h, l] = (40000 + p).to_be_bytes();
                flow_queue(&ipv4(6, [10, 0, 1, 10], [54, 123, 170, 5], [h, l, 0x14, 0x51])) % 2
            })
            .collect();
        assert_eq!(queues.len(), 2);
        // UDP ports count too; no IPv4 or too short: queue 0.
        let u1 = ipv4(17, [10, 0, 1, 10], [1, 1, 1, 1], [0, 1, 0, 53]);
        let u2 = ipv4(17, [10, 0, 1, 10], [1, 1, 1, 1], [0, 2, 0, 53]);
        assert_ne!(flow_queue(&u1), flow_queue(&u2));
        assert_eq!(flow_queue(&[0x60; 40]), 0);
        assert_eq!(flow_queue(&a[..12]), 0);
    }
}
