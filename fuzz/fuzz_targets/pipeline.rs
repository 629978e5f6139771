//! `Pipeline::process` on the default lab never panics, and forwards at most the bytes it was
//! given to a port of the lab.
//!
//! Two input shapes:
//! - raw: byte 0 picks the port (0..=5: aws, internet, subnets a b c d; 6: a port with no
//!   subnet), byte 1 the [`Meta`], the rest is the packet;
//! - script (byte 0 == [`MAGIC`]): a sequence of well-formed TCP/UDP/ICMP packets between the
//!   lab's addresses, with fuzz-chosen ports, flags, TTL and payload, plus replies to the last
//!   forwarded packet and flow expiry, so that the IGW 1:1 NAT, the endpoint, the resolver and
//!   the NAT gateway are reached in both directions. These packets carry correct checksums
//!   (a full one, or the pseudo-header sum for `NEEDS_CSUM`) and every forwarded packet must
//!   still carry correct checksums.
//!
//! Either shape: only a NAT is a hop. A forwarded packet keeps its TTL unless it went through
//! the NAT gateway (leaving with its address, or sent to it and translated back), which takes
//! exactly one off.
//!
//! The flow table is emptied before each input, so every input replays the same way.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use libfuzzer_sys::fuzz_target;
use vpcsim::dataplane::{Action, Meta, Pipeline};
use vpcsim::fib::{PortId, Snapshot, ports_by_index};
use vpcsim::lab::file::{DEFAULT_LAB, parse};
use vpcsim::packet::{self, CsumMode};

const MAGIC: u8 = 0xA5;
const AWS: PortId = 0;
const INTERNET: PortId = 1;
const SUBNET_A: PortId = 2;
const LAST_PORT: PortId = 5;
/// A port that the default lab does not have.
const NO_SUCH_PORT: PortId = 6;

static LAB: LazyLock<(Pipeline, Instant)> = LazyLock::new(|| {
    let world = parse("demo.toml", DEFAULT_LAB).expect("the default lab parses");
    let ports = ports_by_index(&world);
    assert_eq!(ports.len(), 4, "the default lab has subnets a b c d");
    let p = Pipeline::new(Snapshot::compile(&world, 1, &|id| ports.get(id).copied()));
    (p, Instant::now())
});

const METAS: [Meta; 4] = [
    Meta::PLAIN,
    Meta { csum: CsumMode::Partial, gso: false, gso_size: 0 },
    Meta { csum: CsumMode::Partial, gso: true, gso_size: 1448 },
    Meta { csum: CsumMode::Full, gso: true, gso_size: 8961 },
];

/// Sources: the four instances (a b c d), the internet host, S3, the NAT gateway's private
/// address, a public IP (spoofed), and a fuzz-chosen address.
const SOURCES: [[u8; 4]; 8] = [
    [10, 0, 1, 10],
    [10, 0, 2, 10],
    [10, 0, 3, 10],
    [10, 0, 4, 10],
    [198, 51, 100, 10],
    [54, 123, 170, 5],
    [10, 0, 2, 40],
    [203, 0, 113, 10],
];

/// Destinations: S3 (us-east-1, via endpoint or IGW), the internet host, the NAT gateway's
/// public IP, the instances, their public IPs, the VPC resolver, S3 us-west-2, the range that
/// subnet c routes to the IGW, the NAT's private address; the last slot is fuzz-chosen.
const DESTS: [[u8; 4]; 15] = [
    [54, 123, 170, 5],
    [198, 51, 100, 10],
    [203, 0, 113, 40],
    [10, 0, 1, 10],
    [10, 0, 2, 10],
    [10, 0, 3, 10],
    [10, 0, 4, 10],
    [203, 0, 113, 10],
    [203, 0, 113, 20],
    [203, 0, 113, 30],
    [10, 0, 0, 2],
    [54, 231, 170, 5],
    [54, 123, 165, 1],
    [10, 0, 2, 40],
    [0, 0, 0, 0],
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn addr(&mut self) -> Option<[u8; 4]> {
        Some([self.u8()?, self.u8()?, self.u8()?, self.u8()?])
    }
}

fn port_of_source(src: [u8; 4]) -> PortId {
    match src {
        [10, 0, n @ 1..=4, _] => SUBNET_A + PortId::from(n - 1),
        [54, ..] => AWS,
        _ => INTERNET,
    }
}

#[derive(Clone, Copy)]
enum Proto {
    Tcp { flags: u8, seq: u32, ack: u32 },
    Udp,
    Icmp { reply: bool },
}

/// An IPv4 packet with correct checksums; for `Partial` the TCP/UDP checksum field holds the
/// uncomplemented pseudo-header sum, as Linux leaves it for `NEEDS_CSUM`.
fn build(
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    proto: Proto,
    sport: u16,
    dport: u16,
    payload: &[u8],
    csum: CsumMode,
) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, ttl);
    let mut out = Vec::new();
    let r = match proto {
        Proto::Tcp { flags, seq, ack } => {
            let mut t = b.tcp(sport, dport, seq, 65535);
            if flags & 0x01 != 0 {
                t = t.fin();
            }
            if flags & 0x02 != 0 {
                t = t.syn();
            }
            if flags & 0x04 != 0 {
                t = t.rst();
            }
            if flags & 0x08 != 0 {
                t = t.psh();
            }
            if flags & 0x10 != 0 {
                t = t.ack(ack);
            }
            t.write(&mut out, payload)
        }
        Proto::Udp => b.udp(sport, dport).write(&mut out, payload),
        Proto::Icmp { reply: false } => b.icmpv4_echo_request(sport, dport).write(&mut out, payload),
        Proto::Icmp { reply: true } => b.icmpv4_echo_reply(sport, dport).write(&mut out, payload),
    };
    r.expect("etherparse builds a small packet");
    if csum == CsumMode::Partial {
        let off = match proto {
            Proto::Tcp { .. } => Some(20 + 16),
            Proto::Udp => Some(20 + 6),
            Proto::Icmp { .. } => None,
        };
        if let Some(off) = off {
            let v = pseudo_sum(&out);
            out[off..off + 2].copy_from_slice(&v.to_be_bytes());
        }
    }
    out
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

fn ones_sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = it.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folded, uncomplemented pseudo-header sum of an IPv4 packet with a 20-byte header.
fn pseudo_sum(pkt: &[u8]) -> u16 {
    let l4_len = (pkt.len() - 20) as u64;
    fold(ones_sum(&pkt[12..20]) + u64::from(pkt[9]) + l4_len)
}

/// Ones'-complement equality (0x0000 and 0xFFFF are both zero).
fn eq1c(a: u16, b: u16) -> bool {
    a == b || (a | b == 0xFFFF && (a == 0 || b == 0))
}

/// Checks the checksums of a forwarded packet built by [`build`] (20-byte header, no
/// fragments); `Err` describes the first wrong one.
fn checksums(pkt: &[u8], csum: CsumMode) -> Result<(), String> {
    if fold(ones_sum(&pkt[..20])) != 0xFFFF {
        return Err("ipv4 header checksum".into());
    }
    let l4 = &pkt[20..];
    let full = fold(ones_sum(l4) + u64::from(pseudo_sum(pkt)));
    match (pkt[9], csum) {
        (packet::PROTO_ICMP, _) => {
            if fold(ones_sum(l4)) != 0xFFFF {
                return Err("icmp checksum".into());
            }
        }
        (packet::PROTO_UDP, CsumMode::Full) if l4[6..8] == [0, 0] => {}
        (packet::PROTO_TCP | packet::PROTO_UDP, CsumMode::Full) => {
            if full != 0xFFFF {
                return Err(format!("l4 checksum (protocol {})", pkt[9]));
            }
        }
        (proto, CsumMode::Partial) => {
            let off = if proto == packet::PROTO_TCP { 16 } else { 6 };
            let field = u16::from_be_bytes([l4[off], l4[off + 1]]);
            if !eq1c(field, pseudo_sum(pkt)) {
                return Err(format!(
                    "partial l4 checksum {field:#06x}, pseudo-header sum {:#06x}",
                    pseudo_sum(pkt)
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Runs one packet; checks the action. Returns the forwarded bytes and port.
fn run(
    p: &Pipeline,
    now: Instant,
    port: PortId,
    pkt: &mut [u8],
    meta: Meta,
    checked: bool,
) -> Option<(PortId, Vec<u8>)> {
    let input = pkt.to_vec();
    match p.process(now, port, pkt, meta) {
        Action::Drop(_) => None,
        // An answer written in place (a NAT gateway's RST): back to the sender, well formed.
        Action::Reply { port: out, len } => {
            assert_eq!(out, port, "a reply goes back to the port the packet came from");
            assert!(len <= pkt.len(), "reply of {len} bytes from a {}-byte buffer", pkt.len());
            assert!(packet::parse(&pkt[..len]).is_ok(), "the reply does not parse");
            None
        }
        // Too big for the internet gateway, without DF: cut into fragments that each fit and
        // parse (never a superpacket).
        Action::Fragment { port: out, len, mtu } => {
            assert!(len <= pkt.len(), "fragments of {len} bytes from a {}-byte buffer", pkt.len());
            assert!(out <= LAST_PORT, "fragments to port {out}, not a port of the lab");
            assert!(!meta.gso, "a superpacket cut into fragments");
            let mut buf = vec![0u8; 65_536];
            let mut n = 0;
            while let Some(l) = packet::fragment(&pkt[..len], usize::from(mtu), n, &mut buf) {
                assert!(l <= usize::from(mtu), "a fragment of {l} bytes");
                assert!(packet::parse(&buf[..l]).is_ok(), "a fragment does not parse");
                n += 1;
            }
            assert!(n > 1, "{n} fragments");
            None
        }
        Action::Forward { port: out, len } => {
            assert!(len <= pkt.len(), "forward of {len} bytes from a {}-byte buffer", pkt.len());
            assert!(out <= LAST_PORT, "forward to port {out}, not a port of the lab");
            let fwd = &pkt[..len];
            let again = if meta.gso { packet::parse_gso(fwd) } else { packet::parse(fwd) };
            assert!(again.is_ok(), "forwarded packet no longer parses: {again:?}");
            if checked && let Err(what) = checksums(fwd, meta.csum) {
                panic!(
                    "wrong {what} after forwarding from port {port} to port {out} ({meta:?})\n\
                     in:  {}\nout: {}",
                    hex(&input),
                    hex(fwd)
                );
            }
            if let Err(what) = ttl_rule(&input, fwd) {
                panic!(
                    "{what}, forwarded from port {port} to port {out}\nin:  {}\nout: {}",
                    hex(&input),
                    hex(fwd)
                );
            }
            Some((out, fwd.to_vec()))
        }
    }
}

/// The NAT gateway's addresses in the default lab: its Elastic IP and its private IP.
fn is_nat(addr: &[u8]) -> bool {
    addr == [203, 0, 113, 40] || addr == [10, 0, 2, 40]
}

/// The TTL of a forwarded packet (`input` as given, `fwd` as forwarded): unchanged through the
/// VPC router, the internet gateway and the endpoint; one less through the NAT.
fn ttl_rule(input: &[u8], fwd: &[u8]) -> Result<(), String> {
    let (before, after) = (input[8], fwd[8]);
    // Translated by the NAT: out with its address from another one, or in to its address and
    // on to another one.
    let through_nat = (is_nat(&fwd[12..16]) && !is_nat(&input[12..16]))
        || (is_nat(&input[16..20]) && !is_nat(&fwd[16..20]));
    // Maybe through the NAT (a later fragment, an error quoting a NAT flow, the NAT's own
    // addresses on either side): either way.
    let maybe = is_nat(&input[16..20]) || is_nat(&fwd[12..16]);
    let hop = before > 1 && after == before - 1;
    match (through_nat, maybe) {
        (true, _) if !hop => Err(format!("through the NAT, TTL {before} became {after}")),
        (false, true) if !hop && after != before => Err(format!("TTL {before} became {after}")),
        (false, false) if after != before => {
            Err(format!("not through the NAT, TTL {before} became {after}"))
        }
        _ => Ok(()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn script(p: &Pipeline, base: Instant, mut b: Bytes<'_>) -> Option<()> {
    let mut clock = Duration::ZERO;
    let mut last: Option<(PortId, Vec<u8>, Meta)> = None;
    for _ in 0..16 {
        let op = b.u8()?;
        let meta = METAS[usize::from(op >> 6)];
        let now = base + clock;
        match op & 0x3 {
            // A new packet.
            0 | 1 => {
                let s = b.u8()?;
                let src = match SOURCES.get(usize::from(s & 0x7)) {
                    Some(a) if s & 0x7 != 7 || s & 0x80 == 0 => *a,
                    _ => b.addr()?,
                };
                let d = b.u8()?;
                let dst = match DESTS.get(usize::from(d % 16)) {
                    Some(a) if d % 16 != 14 => *a,
                    _ => b.addr()?,
                };
                let proto = match (op >> 2) & 0x3 {
                    0 | 1 => Proto::Tcp {
                        flags: b.u8()?,
                        seq: u32::from(b.u16()?) << 16,
                        ack: u32::from(b.u16()?) << 8,
                    },
                    2 => Proto::Udp,
                    _ => Proto::Icmp { reply: op & 0x10 != 0 },
                };
                let (sport, dport) = (b.u16()?, b.u16()?);
                let t = b.u8()?;
                let ttl = if t < 8 { t % 3 } else { 64 };
                let payload_len = usize::from(t >> 4) * 7;
                let payload = vec![t; payload_len];
                // Usually the port the source lives behind; sometimes any port.
                let port = if s & 0x40 != 0 { PortId::from(s >> 3 & 0x7) } else { port_of_source(src) };
                let mut pkt = build(src, dst, ttl, proto, sport, dport, &payload, meta.csum);
                let fwd = run(p, now, port, &mut pkt, meta, true);
                last = fwd.map(|(out, bytes)| (out, bytes, meta)).or(last);
            }
            // A reply to the last forwarded packet, from where it went.
            2 => {
                let Some((out, fwd, m)) = &last else { continue };
                let flags = b.u8()?;
                let ttl = if flags == 0 { 1 } else { 64 };
                let info = packet::parse_gso(fwd).ok()?;
                let (src, dst) = (info.dst().octets(), info.src().octets());
                let (proto, sport, dport) = match info.l4() {
                    packet::L4::Tcp { src_port, dst_port, seq, .. } => (
                        Proto::Tcp { flags, seq: u32::from(flags) << 20, ack: seq.wrapping_add(1) },
                        dst_port,
                        src_port,
                    ),
                    packet::L4::Udp { src_port, dst_port } => (Proto::Udp, dst_port, src_port),
                    packet::L4::Icmp { ident, .. } => (Proto::Icmp { reply: true }, ident, 1),
                    packet::L4::Other => continue,
                };
                let mut pkt = build(src, dst, ttl, proto, sport, dport, b"reply", m.csum);
                let fwd = run(p, now, *out, &mut pkt, *m, true);
                last = fwd.map(|(out, bytes)| (out, bytes, *m)).or(last);
            }
            // Time passes; idle flows expire.
            _ => {
                clock += Duration::from_secs(u64::from(b.u8()?) * 4);
                let _ = p.handle_timeout(base + clock);
            }
        }
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let (p, base) = &*LAB;
    // Every input starts from an empty flow table (and no fragment decisions), so it replays
    // the same way.
    let _ = p.flows.remove_where(|_, _| true);
    p.frags.clear();
    match data {
        [MAGIC, rest @ ..] => {
            let _ = script(p, *base, Bytes(rest));
        }
        [port, meta, pkt @ ..] => {
            let port = match port % 7 {
                6 => NO_SUCH_PORT,
                n => PortId::from(n),
            };
            let meta = METAS[usize::from(meta % 4)];
            let mut pkt = pkt.to_vec();
            let _ = run(p, *base, port, &mut pkt, meta, false);
        }
        _ => {}
    }
});
