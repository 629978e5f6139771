//! `udpgen`: the small rate-controlled UDP sender and counting receiver of `scripts/bench-udp`
//! (issue 6, benchmark 2: small UDP packets at stepped offered rates).
//!
//! - `udpgen send --to ADDR:PORT --flows N --rate PPS --secs S`: N connected sockets (N
//!   distinct source ports, so N flows for the forwarder), `--payload` bytes each (18 by
//!   default), sent round-robin in batches with `sendmmsg(2)`. The batch size follows the rate
//!   so that a batch is due every ~200 µs; between batches the sender sleeps (it never spins, so
//!   its CPU time stays small next to the forwarding path's at every rate). The schedule is
//!   computed from the totals, so a late wake-up is caught up on. `--rate 0` sends as fast as
//!   the sockets accept: the sender's limit. Prints `sent N secs S pps R errors E cpu_s C`.
//! - `udpgen recv --bind ADDR:PORT`: prints `ready` once bound, counts datagrams with
//!   `recvmmsg(2)` until no datagram came for `--idle-ms` after the first (or `--max-secs`
//!   passed without any), then prints `received N cpu_s C`.
//!
//! `cpu_s` is the process's own CPU time (`getrusage`): the benchmark adds it to the lab's.
//!
//! Sockets are blocking: a sender that outruns its socket buffer waits instead of dropping, so
//! every packet counted as sent was accepted by the sending namespace's kernel, and loss is
//! `1 - received / sent` along the path. Both ends run in lab namespaces via `ip netns exec`.
//! The few `unsafe` blocks are the raw `sendmmsg`/`recvmmsg`/`setsockopt` calls std lacks; this
//! tool is not part of the simulator, so they stay here rather than in `src/io/`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[path = "shared/rusage.rs"]
mod rusage;

#[derive(Parser)]
#[command(name = "udpgen", about = "Rate-controlled small-UDP sender and counting receiver")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send small datagrams at a target rate from several source ports.
    Send {
        /// Destination address and port.
        #[arg(long)]
        to: SocketAddr,
        /// Flows: sockets with distinct (ephemeral) source ports, used round-robin per batch.
        #[arg(long, default_value_t = 8)]
        flows: usize,
        /// Target rate in packets per second over all flows; 0 = as fast as possible.
        #[arg(long, default_value_t = 100_000)]
        rate: u64,
        /// How long to send.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// UDP payload bytes.
        #[arg(long, default_value_t = 18)]
        payload: usize,
    },
    /// Count datagrams arriving on one address until the sender has stopped.
    Recv {
        /// Address and port to bind.
        #[arg(long)]
        bind: SocketAddr,
        /// Stop after this long without a datagram, once one has arrived.
        #[arg(long, default_value_t = 300)]
        idle_ms: u64,
        /// Stop after this long if nothing arrives at all.
        #[arg(long, default_value_t = 30.0)]
        max_secs: f64,
    },
}

/// Largest batch per `sendmmsg`/`recvmmsg` call.
const MAX_BATCH: usize = 64;
/// Target interval between two batches of the sender.
const BATCH_INTERVAL: Duration = Duration::from_micros(200);

fn main() -> ExitCode {
    let run = match Cli::parse().cmd {
        Cmd::Send { to, flows, rate, secs, payload } => send(to, flows, rate, secs, payload),
        Cmd::Recv { bind, idle_ms, max_secs } => {
            recv(bind, Duration::from_millis(idle_ms), Duration::from_secs_f64(max_secs))
        }
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udpgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Batch size for a rate: one batch per `BATCH_INTERVAL`, between 1 and `MAX_BATCH`.
fn batch_for(rate: u64) -> usize {
    if rate == 0 {
        return MAX_BATCH;
    }
    let per_interval = rate as f64 * BATCH_INTERVAL.as_secs_f64();
    (per_interval.round() as usize).clamp(1, MAX_BATCH)
}

fn send(to: SocketAddr, flows: usize, rate: u64, secs: f64, payload: usize) -> anyhow::Result<()> {
    if flows == 0 {
        bail!("--flows must be at least 1");
    }
    let unspecified: SocketAddr =
        if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socks = (0..flows)
        .map(|i| {
            let s = UdpSocket::bind(unspecified).with_context(|| format!("binding flow {i}"))?;
            s.connect(to).with_context(|| format!("connecting flow {i} to {to}"))?;
            Ok(s)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batch = batch_for(rate);
    let mut buf = vec![0u8; payload];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = b"vpcsim-udpgen....."[i % 18];
    }
    let mut iov =
        vec![libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() }; batch];
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no address, no control data).
    let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }

    let duration = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let (mut sent, mut errors, mut next) = (0u64, 0u64, 0usize);
    loop {
        let now = start.elapsed();
        if now >= duration {
            break;
        }
        if rate > 0 {
            // The batch is due when the totals say so: `sent / rate` seconds after the start.
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if due > now {
                std::thread::sleep(due - now);
                continue;
            }
        }
        let fd = socks[next].as_raw_fd();
        next = (next + 1) % socks.len();
        // SAFETY: `msgs` holds `batch` initialised headers whose iovecs point into `buf`, both
        // alive and unmoved for the duration of the call; the socket is connected (no address).
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), batch as libc::c_uint, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Transient: a full device queue, or an ICMP error from an earlier datagram.
                Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED | libc::EINTR) => {
                    errors += 1;
                    std::thread::yield_now();
                }
                _ => return Err(e).context("sendmmsg"),
            }
        } else {
            sent += n as u64;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} secs {elapsed:.4} pps {:.0} errors {errors} cpu_s {:.4}",
        sent as f64 / elapsed,
        rusage::cpu_secs()
    );
    Ok(())
}

fn recv(bind: SocketAddr, idle: Duration, max: Duration) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(bind).with_context(|| format!("binding {bind}"))?;
    // A large receive buffer, so the receiver's own scheduling delays are not counted as loss of
    // the path (SO_RCVBUFFORCE: root may exceed rmem_max; otherwise the capped SO_RCVBUF).
    let size: libc::c_int = 32 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket, a pointer to an int that lives for the call, and its size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
    }
    sock.set_read_timeout(Some(Duration::from_millis(20))).context("SO_RCVTIMEO")?;
    println!("ready");

    let mut bufs = vec![[0u8; 2048]; MAX_BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no address, no control data).
    let mut msgs: Vec<libc::mmsghdr> =
        (0..MAX_BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut last: Option<Instant> = None;
    let mut received = 0u64;
    loop {
        // SAFETY: `msgs` holds MAX_BATCH headers whose iovecs point into `bufs`, both alive
        // and unmoved for the call; no timeout pointer (SO_RCVTIMEO bounds the wait).
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                MAX_BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            received += n as u64;
            last = Some(Instant::now());
            continue;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => {}
                _ => return Err(e).context("recvmmsg"),
            }
        }
        let done = match last {
            Some(t) => t.elapsed() >= idle,
            None => start.elapsed() >= max,
        };
        if done {
            break;
        }
    }
    println!("received {received} cpu_s {:.4}", rusage::cpu_secs());
    Ok(())
}
