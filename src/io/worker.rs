//! TUN ports and the per-port worker threads.
//!
//! Each port is one persistent TUN device opened with `IFF_VNET_HDR` and TSO/checksum offload,
//! so the kernel hands over whole GSO superpackets (up to 64 KB) with a virtio header; they are
//! routed and rewritten once and written whole to the next TUN, whose kernel side segments or
//! delivers them as it must. One blocking thread reads each port; it writes straight to the
//! destination port, so packets of one direction keep their order.

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

/// One TUN device of the lab and the state of the worker that reads it.
pub struct Port {
    pub dev: SyncDevice,
    /// The worker is between reading a packet and having written it.
    busy: AtomicBool,
    /// Packets the worker finished.
    done: AtomicU64,
}

impl Port {
    pub fn new(dev: SyncDevice) -> Arc<Port> {
        Arc::new(Port { dev, busy: AtomicBool::new(false), done: AtomicU64::new(0) })
    }
}

/// The lab's ports, indexed by port number.
pub type PortTable = ArcSwap<Vec<Option<Arc<Port>>>>;

/// Waits until no worker is still forwarding a packet it read before this call (so with a
/// snapshot older than one published before it). Bounded: a worker stuck in a write is not
/// waited for longer than 100 ms.
pub fn quiesce(ports: &PortTable) {
    let table = ports.load();
    let deadline = Instant::now() + Duration::from_millis(100);
    for port in table.iter().flatten() {
        let done = port.done.load(Ordering::Acquire);
        while port.busy.load(Ordering::Acquire) && port.done.load(Ordering::Acquire) == done {
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
        match port.dev.send(&buf) {
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

/// Opens the lab's persistent TUN device of namespace `ns`, from a thread inside it.
pub fn attach(ns: &str) -> anyhow::Result<Arc<Port>> {
    let dev = netns::run_in(ns, || {
        DeviceBuilder::new().name(DEVICE).offload(true).multi_queue(true).build_sync()
    })
    .with_context(|| format!("attaching to {DEVICE} in {ns}"))?;
    Ok(Port::new(dev))
}

/// Starts the worker of one port: read, process, write, until the device goes away.
pub fn spawn(
    ns: &str,
    port: PortId,
    me: Arc<Port>,
    pipeline: Arc<Pipeline>,
    ports: Arc<PortTable>,
    io: Arc<IoCounters>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    netns::spawn_in(ns, format!("port-{port}"), move || run(port, &me, &pipeline, &ports, &io))
}

fn run(port: PortId, me: &Port, pipeline: &Pipeline, ports: &PortTable, io: &IoCounters) {
    // A virtio header plus the largest GSO superpacket Linux builds (64 KB), with room to spare.
    let mut buf = vec![0u8; VnetHdr::LEN + 65_536 + 4096];
    loop {
        let n = match me.dev.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The device was deleted (lab teardown): this worker's job is over.
                tracing::debug!(port, error = %e, "port closed");
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
                Some(Some(out_port)) => out_port.dev.send(&buf[..VnetHdr::LEN + len]).is_ok(),
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
