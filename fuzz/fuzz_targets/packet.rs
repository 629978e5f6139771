//! Arbitrary bytes → `packet::parse` / `parse_gso` never panic; for a parsed packet, every
//! setter on a copy never panics, keeps the packet parseable with the same layout, keeps a
//! valid IPv4 header checksum valid, and leaves a buffer too short for `info` untouched.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use vpcsim::packet::{self, CsumMode, Ipv4Info, L4};

fn ones_sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = it.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u32
}

fn ip_csum_ok(buf: &[u8], ihl: usize) -> bool {
    buf.get(..ihl).is_some_and(|h| ones_sum(h) == 0xFFFF)
}

fn layout(info: &Ipv4Info) -> (u8, usize, std::mem::Discriminant<L4>) {
    (info.protocol(), info.ihl_bytes(), std::mem::discriminant(&info.l4()))
}

/// Bytes an address or port setter needs (mirrors the documented "does not fit" rule).
fn required(info: &Ipv4Info) -> usize {
    info.ihl_bytes()
        + match info.l4() {
            L4::Tcp { .. } => 20,
            L4::Udp { .. } => 8,
            L4::Icmp { .. } | L4::Other => 0,
        }
}

fn apply_setters(buf: &mut [u8], info: &Ipv4Info, k: &[u8; 12], mode: CsumMode) {
    packet::set_src(buf, info, Ipv4Addr::new(k[0], k[1], k[2], k[3]), mode);
    packet::set_dst(buf, info, Ipv4Addr::new(k[4], k[5], k[6], k[7]), mode);
    packet::set_src_port(buf, info, u16::from_be_bytes([k[8], k[9]]), mode);
    packet::set_dst_port(buf, info, u16::from_be_bytes([k[10], k[11]]), mode);
    packet::set_icmp_ident(buf, info, u16::from_be_bytes([k[9], k[8]]));
}

fn check(pkt: &[u8], info: Ipv4Info, gso: bool, k: &[u8; 12], mode: CsumMode, cut: usize) {
    // Accessors never panic.
    let _ = (info.src(), info.dst(), info.ttl(), info.total_len(), info.is_fragment());
    let _ = (info.l4_csum_offset(), packet::icmp_echo_ident(&info));
    let _ = vpcsim::dataplane::filter::FlowTuple::of(&info);

    // The packet as the pipeline sees it: trimmed to total_len unless GSO.
    let len = if gso { pkt.len() } else { usize::from(info.total_len()) };
    let mut buf = pkt[..len].to_vec();
    let ihl = info.ihl_bytes();
    let csum_was_ok = ip_csum_ok(&buf, ihl);
    apply_setters(&mut buf, &info, k, mode);
    let ttl_ok = packet::decrement_ttl(&mut buf);
    assert_eq!(ttl_ok, info.ttl() > 1, "decrement_ttl on a parsed packet");
    if csum_was_ok {
        assert!(ip_csum_ok(&buf, ihl), "setters broke a valid IPv4 header checksum");
    }
    let again = if gso { packet::parse_gso(&buf) } else { packet::parse(&buf) };
    let again = again.expect("a rewritten packet no longer parses");
    assert_eq!(layout(&again), layout(&info), "setters changed the packet layout");

    // Chaining setters with the now stale info is allowed.
    apply_setters(&mut buf, &info, &[k[11], k[10], k[9], k[8], k[7], k[6], k[5], k[4], k[3], k[2], k[1], k[0]], mode);

    // A buffer that does not fit `info` (a caller bug) is left untouched.
    let cut = cut.min(len);
    let mut short = pkt[..cut].to_vec();
    apply_setters(&mut short, &info, k, mode);
    if cut < required(&info) {
        assert_eq!(short, &pkt[..cut], "a setter wrote to a buffer that does not fit info");
    }
    let _ = packet::decrement_ttl(&mut short);
}

fuzz_target!(|data: &[u8]| {
    // 12 bytes of new addresses/ports, 1 byte for the cut length and checksum mode, then the
    // packet. Short inputs still go through the parsers whole.
    let plain = packet::parse(data);
    let gso = packet::parse_gso(data);
    if plain.is_ok() {
        assert!(gso.is_ok(), "parse accepts but parse_gso rejects: {gso:?}");
    }
    let _ = packet::VnetHdr::parse(data).map(|h| (h.csum_mode(), h.is_gso(), h.to_bytes()));

    let Some((k, rest)) = data.split_first_chunk::<12>() else { return };
    let Some((&ctl, pkt)) = rest.split_first() else { return };
    let mode = if ctl & 1 == 0 { CsumMode::Full } else { CsumMode::Partial };
    let cut = usize::from(ctl >> 1);
    if let Ok(info) = packet::parse(pkt) {
        check(pkt, info, false, k, mode, cut);
    }
    if let Ok(info) = packet::parse_gso(pkt) {
        check(pkt, info, true, k, mode, cut);
    }
});
