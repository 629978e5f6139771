//! The internet gateway's 1500-byte limit. The EC2 user guide ("Network maximum transmission
//! unit (MTU) for your EC2 instance"): "traffic is limited to a maximum MTU of 1500 in the
//! following cases: Traffic over an internet gateway ..."; "If packets are over 1500 bytes,
//! they are fragmented, or they are dropped if the Don't Fragment flag is set in the IP
//! header." The VPC user guide ("Path MTU Discovery"): the device "drops the packet, and then
//! returns the following ICMP message: Destination Unreachable: Fragmentation Needed and Don't
//! Fragment was Set (Type 3, Code 4)". Jumbo frames (9001) work inside the VPC.

use super::*;
use crate::packet::checksum::{fold, ones_sum};
use etherparse::Ipv4Header;

/// A ping of `size` bytes in all (etherparse sets DF, as `ping -M do` does).
fn ping(src: &str, dst: &str, size: usize) -> Vec<u8> {
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).icmpv4_echo_request(9, 1);
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x5a; size - 28]).unwrap();
    out
}

/// A UDP datagram of `size` bytes in all, with DF.
fn udp_sized(src: &str, sport: u16, dst: &str, dport: u16, size: usize) -> Vec<u8> {
    udp_payload(src, sport, dst, dport, &vec![0x33; size - 28])
}

/// `pkt` without DF (`ping -M dont`), its header checksum recomputed.
fn no_df(pkt: Vec<u8>) -> Vec<u8> {
    let (mut h, rest) = Ipv4Header::from_slice(&pkt).unwrap();
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    let mut out = Vec::new();
    h.write(&mut out).unwrap();
    out.extend_from_slice(rest);
    out
}

/// Checks an ICMP Fragmentation Needed from `from` to `to`, next-hop MTU 1500, quoting the IP
/// header and first 8 bytes of `sent` as it was received.
fn check_frag_needed(reply: &[u8], from: &str, to: &str, sent: &[u8]) {
    assert_eq!(reply.len(), 20 + 8 + 28);
    assert_eq!(&reply[12..16], &ip(from).octets(), "source: the datagram's destination");
    assert_eq!(&reply[16..20], &ip(to).octets(), "destination: the sender");
    assert_eq!((reply[9], reply[20], reply[21]), (1, 3, 4), "ICMP type 3 code 4");
    assert_eq!(u16::from_be_bytes([reply[26], reply[27]]), 1500, "next-hop MTU (RFC 1191)");
    assert_eq!(&reply[28..], &sent[..28], "the quote: header and 8 bytes, untouched");
    assert_eq!(fold(ones_sum(&reply[..20])), 0xffff, "ip checksum");
    assert_eq!(fold(ones_sum(&reply[20..])), 0xffff, "icmp checksum");
}

/// Runs `pkt` and returns the reply written over it, which must go back to `port`.
fn expect_reply(p: &Pipeline, from: PortId, pkt: &mut [u8], meta: Meta) -> Vec<u8> {
    match p.process(Instant::now(), from, pkt, meta) {
        Action::Reply { port, len } if port == from => pkt[..len].to_vec(),
        a => panic!("expected a reply to port {from}, got {a:?}"),
    }
}

#[test]
fn a_df_ping_too_big_for_the_internet_gateway_is_answered_with_fragmentation_needed() {
    let p = demo();
    let sent = ping("10.0.2.10", "198.51.100.10", 8000);
    let mut pkt = sent.clone();
    let reply = expect_reply(&p, B, &mut pkt, Meta::PLAIN);
    check_frag_needed(&reply, "198.51.100.10", "10.0.2.10", &sent);
    assert_eq!(p.counters.drops(DropReason::Mtu), 1);
    assert_eq!(p.counters.forwarded(), 0);
    // 1500 exactly passes, 1501 does not.
    let mut pkt = ping("10.0.2.10", "198.51.100.10", 1500);
    assert_eq!(run(&p, B, &mut pkt), Action::Forward { port: PORT_INTERNET, len: 1500 });
    let mut pkt = ping("10.0.2.10", "198.51.100.10", 1501);
    assert!(matches!(run(&p, B, &mut pkt), Action::Reply { port: B, .. }));
    // The same through the internet gateway to another region's S3 (the aws namespace).
    let mut pkt = udp_sized("10.0.2.10", 5000, "54.231.170.5", 5001, 3000);
    assert!(matches!(run(&p, B, &mut pkt), Action::Reply { port: B, .. }));
    assert_eq!(p.counters.drops(DropReason::Mtu), 3);
}

#[test]
fn without_df_it_is_fragmented() {
    let p = demo();
    let mut pkt = no_df(ping("10.0.2.10", "198.51.100.10", 8000));
    let action = run(&p, B, &mut pkt);
    assert_eq!(action, Action::Fragment { port: PORT_INTERNET, len: 8000, mtu: 1500 });
    // Rewritten as usual before it is cut: the public IP.
    assert_eq!(src_of(&pkt), ip("203.0.113.20"));
    assert_eq!(fold(ones_sum(&pkt[..20])), 0xffff);
    let frags: Vec<Vec<u8>> = (0..)
        .map_while(|i| {
            let mut out = vec![0u8; 1500];
            crate::packet::fragment(&pkt, 1500, i, &mut out).map(|n| out[..n].to_vec())
        })
        .collect();
    assert_eq!(frags.len(), 6);
    assert_eq!(p.counters.drops(DropReason::Mtu), 0);
}

#[test]
fn jumbo_frames_pass_between_subnets_and_through_the_endpoint() {
    let p = demo();
    // The local route: a -> b, 9001 bytes with DF.
    let mut pkt = ping("10.0.1.10", "10.0.2.10", 9001);
    assert_eq!(run(&p, A, &mut pkt), Action::Forward { port: B, len: 9001 });
    // The gateway endpoint is not in the guide's list: 9001 to S3 from a.
    let mut pkt = udp_sized("10.0.1.10", 5000, "54.123.170.5", 5001, 9001);
    assert_eq!(run(&p, A, &mut pkt), Action::Forward { port: PORT_AWS, len: 9001 });
    // And S3's answer back along the endpoint's flow.
    let mut pkt = udp_sized("54.123.170.5", 5001, "10.0.1.10", 5000, 9001);
    assert_eq!(run(&p, PORT_AWS, &mut pkt), Action::Forward { port: A, len: 9001 });
    assert_eq!(p.counters.drops(DropReason::Mtu), 0);
}

#[test]
fn a_superpacket_is_judged_by_its_segments() {
    let p = demo();
    // A TSO superpacket of 60 KB: with an MSS of 8961 (MTU 9001) each segment is 9001 bytes.
    let sent = tcp("10.0.2.10", 40000, "198.51.100.10", 80, &[0xab; 60_000]);
    let jumbo = Meta { csum: CsumMode::Full, gso: true, gso_size: 8961 };
    let mut pkt = sent.clone();
    let reply = expect_reply(&p, B, &mut pkt, jumbo);
    check_frag_needed(&reply, "198.51.100.10", "10.0.2.10", &sent);
    // With an MSS of 1448 (1500 with timestamps) they fit.
    let mut pkt = sent.clone();
    let len = pkt.len();
    let meta = Meta { gso_size: 1448, ..jumbo };
    assert_eq!(
        p.process(Instant::now(), B, &mut pkt, meta),
        Action::Forward { port: PORT_INTERNET, len }
    );
    // A superpacket without DF (UDP segmentation offload) is dropped, unanswered.
    let mut pkt = no_df(udp_sized("10.0.2.10", 5000, "198.51.100.10", 5001, 20_000));
    let uso = Meta { csum: CsumMode::Full, gso: true, gso_size: 8000 };
    assert_eq!(p.process(Instant::now(), B, &mut pkt, uso), Action::Drop(DropReason::Mtu));
    assert_eq!(p.counters.drops(DropReason::Mtu), 2);
}

#[test]
fn through_a_nat_gateway() {
    let p = demo();
    // d's default route is the NAT gateway in b, whose table goes to the internet gateway. The
    // answer quotes the datagram as d sent it (private address and port, TTL 64): nothing is
    // mapped for it, and the NAT's TTL is not spent.
    let sent = udp_sized("10.0.4.10", 5000, "198.51.100.10", 5001, 8000);
    let mut pkt = sent.clone();
    let reply = expect_reply(&p, D, &mut pkt, Meta::PLAIN);
    check_frag_needed(&reply, "198.51.100.10", "10.0.4.10", &sent);
    // Without DF: translated (one hop), then cut.
    let mut pkt = no_df(sent.clone());
    assert_eq!(
        run(&p, D, &mut pkt),
        Action::Fragment { port: PORT_INTERNET, len: 8000, mtu: 1500 }
    );
    assert_eq!((src_of(&pkt), pkt[8]), (ip("203.0.113.40"), 63));
    let nat_port = ports_of(&pkt).0;
    // The answer to the NAT's public address: too big with DF, refused back to the internet
    // from the NAT's address; without DF, translated back and cut.
    let back = udp_sized("198.51.100.10", 5001, "203.0.113.40", nat_port, 8000);
    let mut pkt = back.clone();
    let reply = expect_reply(&p, PORT_INTERNET, &mut pkt, Meta::PLAIN);
    check_frag_needed(&reply, "203.0.113.40", "198.51.100.10", &back);
    let mut pkt = no_df(back);
    assert_eq!(
        run(&p, PORT_INTERNET, &mut pkt),
        Action::Fragment { port: D, len: 8000, mtu: 1500 }
    );
    assert_eq!((&pkt[16..20], ports_of(&pkt).1), (&[10, 0, 4, 10][..], 5000));
    // A TCP superpacket of 8961-byte segments back through the NAT: refused.
    let mut syn = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    assert!(matches!(run(&p, D, &mut syn), Action::Forward { .. }));
    let nat_port = ports_of(&syn).0;
    let sent = tcp("198.51.100.10", 80, "203.0.113.40", nat_port, &[1; 30_000]);
    let mut pkt = sent.clone();
    let jumbo = Meta { csum: CsumMode::Full, gso: true, gso_size: 8961 };
    let reply = expect_reply(&p, PORT_INTERNET, &mut pkt, jumbo);
    check_frag_needed(&reply, "203.0.113.40", "198.51.100.10", &sent);
    assert_eq!(p.counters.drops(DropReason::Mtu), 3);
}

#[test]
fn inbound_to_a_public_ip() {
    let p = demo();
    // b's default group admits nothing from outside: a reply to b's own flow.
    let mut out = udp("10.0.2.10", 5000, "198.51.100.10", 5001);
    assert!(matches!(run(&p, B, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
    // To the internet sender, from the instance's public address.
    let sent = udp_sized("198.51.100.10", 5001, "203.0.113.20", 5000, 8000);
    let mut pkt = sent.clone();
    let reply = expect_reply(&p, PORT_INTERNET, &mut pkt, Meta::PLAIN);
    check_frag_needed(&reply, "203.0.113.20", "198.51.100.10", &sent);
    let mut pkt = no_df(sent);
    assert_eq!(
        run(&p, PORT_INTERNET, &mut pkt),
        Action::Fragment { port: B, len: 8000, mtu: 1500 }
    );
    assert_eq!(&pkt[16..20], &[10, 0, 2, 10]);
    // An ICMP error is never answered (RFC 1122, 3.2.2); it goes its own way (by its flow).
    assert_eq!(p.counters.drops(DropReason::Mtu), 1);
}

#[test]
fn a_partial_checksum_is_completed_before_fragmenting() {
    // UDP from a socket of MTU 9001, handed over with VIRTIO_NET_HDR_F_NEEDS_CSUM: the field
    // holds the pseudo-header sum; the fragments leave without offload.
    let p = demo();
    let mut pkt = no_df(udp_sized("10.0.2.10", 5000, "198.51.100.10", 5001, 4000));
    let pseudo = crate::packet::checksum::pseudo_header_sum(
        ip("10.0.2.10"),
        ip("198.51.100.10"),
        17,
        4000 - 20,
    );
    pkt[26..28].copy_from_slice(&fold(pseudo).to_be_bytes());
    let meta = Meta { csum: CsumMode::Partial, gso: false, gso_size: 0 };
    let a = p.process(Instant::now(), B, &mut pkt, meta);
    assert_eq!(a, Action::Fragment { port: PORT_INTERNET, len: 4000, mtu: 1500 });
    assert_checksums_valid(&pkt);
}

#[test]
fn later_fragments_through_the_gateway_are_cut_too() {
    // A 20000-byte datagram an instance of MTU 9001 fragments itself: 8976-byte fragments
    // without DF. Each is cut to 1500 through the internet gateway, the later ones too.
    let p = demo();
    let whole = no_df(udp_sized("10.0.2.10", 5000, "198.51.100.10", 5001, 20_000));
    let mut frags = Vec::new();
    let mut out = vec![0u8; 9001];
    while let Some(n) = crate::packet::fragment(&whole, 9000, frags.len(), &mut out) {
        frags.push(out[..n].to_vec());
    }
    assert_eq!(frags.len(), 3);
    for (i, mut f) in frags.into_iter().enumerate() {
        let len = f.len();
        let a = run(&p, B, &mut f);
        assert_eq!(a, Action::Fragment { port: PORT_INTERNET, len, mtu: 1500 }, "fragment {i}");
        assert_eq!(src_of(&f), ip("203.0.113.20"));
    }
    // Through the endpoint they pass whole.
    let whole = no_df(udp_sized("10.0.1.10", 5000, "54.123.170.5", 5001, 20_000));
    let mut i = 0;
    while let Some(n) = crate::packet::fragment(&whole, 9000, i, &mut out) {
        let mut f = out[..n].to_vec();
        assert_eq!(run(&p, A, &mut f), Action::Forward { port: PORT_AWS, len: n });
        i += 1;
    }
    assert_eq!(p.counters.drops(DropReason::Mtu), 0);
}

// ICMP errors across the internet gateway. The gateway's limit holds for them too; an error is
// not fragmented (RFC 1812 4.3.2.3 bounds it at 576 bytes: "the ICMP datagram SHOULD contain as
// much of the original datagram as possible without the length of the ICMP datagram exceeding
// 576 bytes"), nor answered (RFC 1122: no ICMP error about an ICMP error): one over 1500 bytes
// is cut to 576, its quote to what fits.

/// A Port Unreachable from `src` to `dst` quoting the whole of `offending`, as a stack that
/// ignores RFC 1812's bound would send it (etherparse sets DF).
fn error_quoting_all(src: &str, dst: &str, offending: &[u8]) -> Vec<u8> {
    use etherparse::{Icmpv4Type, icmpv4::DestUnreachableHeader};
    let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).icmpv4(t);
    let mut out = Vec::new();
    b.write(&mut out, offending).unwrap();
    out
}

/// Sets an ICMP message's RFC 4884 length attribute (its sixth octet) and fixes its checksum.
fn with_rfc4884_length(mut err: Vec<u8>, words: u8) -> Vec<u8> {
    err[25] = words;
    err[22..24].copy_from_slice(&[0, 0]);
    let c = !fold(ones_sum(&err[20..]));
    err[22..24].copy_from_slice(&c.to_be_bytes());
    err
}

/// An error cut to 576 bytes: its total length and both checksums agree, the quote is what is
/// left of it, its IP header intact (checksum included), and no RFC 4884 extension is claimed.
fn check_cut(err: &[u8]) {
    assert_eq!(err.len(), 576);
    assert_eq!(u16::from_be_bytes([err[2], err[3]]), 576, "total length");
    assert_eq!(fold(ones_sum(&err[..20])), 0xffff, "ip checksum");
    assert_eq!(fold(ones_sum(&err[20..])), 0xffff, "icmp checksum");
    assert_eq!((err[20], err[21]), (3, 3), "type and code unchanged");
    assert_eq!(err[25], 0, "no RFC 4884 length: the extension, if any, is cut away");
    assert_eq!(fold(ones_sum(&err[28..48])), 0xffff, "quoted ip checksum");
}

#[test]
fn an_error_from_outside_too_big_for_the_internet_gateway_is_cut_to_576_bytes() {
    let p = demo();
    let sent = udp_sized("10.0.2.10", 5000, "198.51.100.10", 5001, 1500);
    let mut out = sent.clone();
    assert_eq!(run(&p, B, &mut out), Action::Forward { port: PORT_INTERNET, len: 1500 });
    // 1528 bytes: the datagram as it left, whole, with an RFC 4884 length attribute.
    let mut err = with_rfc4884_length(error_quoting_all("198.51.100.10", "203.0.113.20", &out), 32);
    assert_eq!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: B, len: 576 });
    let err = &err[..576];
    check_cut(err);
    assert_eq!(&err[16..20], &[10, 0, 2, 10], "to the instance");
    assert_eq!(&err[28 + 12..28 + 16], &[10, 0, 2, 10], "the quote as the instance sent it");
    assert_eq!(&err[48..], &sent[20..548], "the quoted UDP header and data, cut");
    assert_eq!(p.counters.drops(DropReason::Mtu), 0);
    // One that fits passes whole.
    let mut err = error_quoting_all("198.51.100.10", "203.0.113.20", &out[..1400]);
    assert_eq!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: B, len: 1428 });
    // Back through the NAT gateway to d: cut too (and one hop).
    let mut out = udp_sized("10.0.4.10", 5000, "198.51.100.10", 5001, 1500);
    assert_eq!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, len: 1500 });
    let mut err = error_quoting_all("198.51.100.10", "203.0.113.40", &out);
    assert_eq!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: D, len: 576 });
    check_cut(&err[..576]);
    assert_eq!((err[8], &err[16..20]), (63, &[10, 0, 4, 10][..]));
}

#[test]
fn an_instances_error_too_big_for_the_internet_gateway_is_cut_to_576_bytes() {
    let p = demo();
    let mut out = udp("10.0.2.10", 5353, "198.51.100.10", 9999);
    assert!(matches!(run(&p, B, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
    let received = udp_sized("198.51.100.10", 9999, "203.0.113.20", 5353, 1500);
    let mut reply = received.clone();
    assert_eq!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: B, len: 1500 });
    // b (MTU 9001 inside the VPC) quotes it whole: 1528 bytes, translated on the way out.
    let mut err = error_quoting_all("10.0.2.10", "198.51.100.10", &reply);
    assert_eq!(run(&p, B, &mut err), Action::Forward { port: PORT_INTERNET, len: 576 });
    let err = &err[..576];
    check_cut(err);
    assert_eq!(&err[12..16], &[203, 0, 113, 20], "from the public IP");
    assert_eq!(&err[28 + 12..28 + 20], &received[12..20], "the quote as the host sent it");
    assert_eq!(&err[48..], &received[20..548]);
    // An error that matches no translated flow goes the ordinary way, and is cut there too
    // (it was dropped as `mtu`, DF set, unanswered).
    let stray = udp_sized("198.51.100.10", 1, "10.0.2.10", 2, 3000);
    let mut err = error_quoting_all("10.0.2.10", "198.51.100.10", &stray);
    assert_eq!(run(&p, B, &mut err), Action::Forward { port: PORT_INTERNET, len: 576 });
    check_cut(&err[..576]);
    assert_eq!(&err[12..16], &[203, 0, 113, 20]);
    assert_eq!(p.counters.drops(DropReason::Mtu), 0);
    // Between subnets and through an endpoint, no limit: the error passes whole.
    let mut err = error_quoting_all("10.0.2.10", "10.0.1.10", &stray);
    assert_eq!(run(&p, B, &mut err), Action::Forward { port: A, len: 3028 });
}
