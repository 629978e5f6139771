//! TUN ports and the per-port worker threads.
//!
//! Each port is one persistent TUN device opened with `IFF_VNET_HDR` and TSO/checksum offload,
//! so the kernel hands over whole GSO superpackets (up to 64 KB) with a virtio header; they are
//! routed and rewritten once and written whole to the next TUN, whose kernel side segments or
//! delivers them as it must. One blocking thread reads each port; it writes straight to the
//! destination port, so packets of one direction keep their order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use tun_rs::{DeviceBuilder, SyncDevice};

use super::netns;
use crate::dataplane::{Action, Meta, Pipeline};
use crate::fib::PortId;
use crate::packet::VnetHdr;

/// The lab's devices, indexed by port.
pub type PortTable = ArcSwap<Vec<Option<Arc<SyncDevice>>>>;

/// The name of the TUN device in every lab namespace.
pub const DEVICE: &str = "vpcsim0";

/// I/O errors of the workers (counted, never fatal for a single packet).
#[derive(Default)]
pub struct IoCounters {
    pub rx_errors: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// Opens the lab's persistent TUN device of namespace `ns`, from a thread inside it.
pub fn attach(ns: &str) -> anyhow::Result<Arc<SyncDevice>> {
    let dev = netns::run_in(ns, || {
        DeviceBuilder::new()
            .name(DEVICE)
            .offload(true)
            .multi_queue(true)
            .build_sync()
    })
    .with_context(|| format!("attaching to {DEVICE} in {ns}"))?;
    Ok(Arc::new(dev))
}

/// Starts the worker of one port: read, process, write, until the device goes away.
pub fn spawn(
    ns: &str,
    port: PortId,
    dev: Arc<SyncDevice>,
    pipeline: Arc<Pipeline>,
    ports: Arc<PortTable>,
    io: Arc<IoCounters>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    netns::spawn_in(ns, format!("port-{port}"), move || {
        run(port, &dev, &pipeline, &ports, &io)
    })
}

fn run(port: PortId, dev: &SyncDevice, pipeline: &Pipeline, ports: &PortTable, io: &IoCounters) {
    // A virtio header plus the largest GSO superpacket Linux builds (64 KB), with room to spare.
    let mut buf = vec![0u8; VnetHdr::LEN + 65_536 + 4096];
    loop {
        let n = match dev.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // The device was deleted (lab teardown): this worker's job is over.
                tracing::debug!(port, error = %e, "port closed");
                return;
            }
        };
        let Some(hdr) = (n >= VnetHdr::LEN)
            .then(|| VnetHdr::parse(&buf[..n]))
            .flatten()
        else {
            io.rx_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let meta = Meta {
            csum: hdr.csum_mode(),
            gso: hdr.is_gso(),
        };
        let action = pipeline.process(Instant::now(), port, &mut buf[VnetHdr::LEN..n], meta);
        if let Action::Forward { port: out, len } = action {
            let table = ports.load();
            let Some(Some(out_dev)) = table.get(out as usize) else {
                io.tx_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if out_dev.send(&buf[..VnetHdr::LEN + len]).is_err() {
                io.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
