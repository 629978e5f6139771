//! Pipeline scripts: build a packet with etherparse (an encoder independent of ours), call
//! `process`, assert the exact action and what the packet became.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;

use super::*;
use crate::fib::{FIRST_SUBNET_PORT, ports_by_index};
use crate::lab::file::{DEFAULT_LAB, parse};
use crate::model::World;

const A: PortId = FIRST_SUBNET_PORT;
const B: PortId = FIRST_SUBNET_PORT + 1;
const C: PortId = FIRST_SUBNET_PORT + 2;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn pipeline_for(world: &World) -> Pipeline {
    let ports = ports_by_index(world);
    Pipeline::new(Snapshot::compile(world, 1, &|id| ports.get(id).copied()))
}

fn demo() -> Pipeline {
    pipeline_for(&parse("demo.toml", DEFAULT_LAB).unwrap())
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64)
        .tcp(sport, dport, 1000, 65535)
        .ack(77);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn tcp_syn(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64)
        .tcp(sport, dport, 1000, 65535)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, b"hello").unwrap();
    out
}

fn udp_payload(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn run(p: &Pipeline, port: PortId, pkt: &mut [u8]) -> Action {
    p.process(Instant::now(), port, pkt, Meta::PLAIN)
}

fn src_of(pkt: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15])
}

/// Both checksums recomputed from scratch by etherparse.
fn assert_checksums_valid(pkt: &[u8]) {
    let s = SlicedPacket::from_ip(pkt).unwrap();
    let Some(etherparse::NetSlice::Ipv4(v4)) = &s.net else { panic!("not ipv4") };
    let h = v4.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "ip checksum");
    match s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), want, "tcp checksum");
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), want, "udp checksum");
        }
        _ => {}
    }
}

#[test]
fn guide_example_1_endpoint_route_takes_s3_traffic() {
    // From the guide: "any traffic from the subnet that's destined for Amazon S3 in the same
    // region goes to the endpoint, and does not go to the Internet gateway."
    let p = demo();
    let mut pkt = tcp_syn("10.0.1.10", 40000, "54.123.170.5", 80);
    let sent = pkt.clone();
    let len = pkt.len();
    assert_eq!(run(&p, A, &mut pkt), Action::Forward { port: PORT_AWS, len });
    assert_eq!(src_of(&pkt), ip("10.0.1.10"), "source unchanged through the endpoint");
    assert_eq!(pkt, sent, "the endpoint is not a hop: TTL and checksums untouched");
    let ep =
        p.origin((u32::from(ip("10.0.1.10")), 40000), (u32::from(ip("54.123.170.5")), 80)).unwrap();
    assert_eq!((ep.vpce_id.as_str(), ep.vpc_id.as_str()), ("vpce-11bb22cc", "vpc-111bbb22"));
}

#[test]
fn guide_example_1_other_traffic_goes_to_the_igw() {
    // "All other Internet traffic goes to your Internet gateway, including traffic that's
    // destined for other services, and destined for Amazon S3 in other regions."
    let p = demo();
    let mut pkt = tcp_syn("10.0.1.10", 40000, "198.51.100.10", 80);
    assert!(matches!(run(&p, A, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    assert_eq!(src_of(&pkt), ip("203.0.113.10"));
    assert_checksums_valid(&pkt);
    let mut pkt = tcp_syn("10.0.1.10", 40001, "54.231.170.5", 80); // us-west-2 S3
    assert!(matches!(run(&p, A, &mut pkt), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&pkt), ip("203.0.113.10"), "other-region S3 goes through the IGW");
}

#[test]
fn without_endpoint_s3_goes_through_igw_with_public_ip() {
    let p = demo();
    let mut pkt = tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80);
    assert!(matches!(run(&p, B, &mut pkt), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&pkt), ip("203.0.113.20"));
    assert!(
        p.origin((u32::from(ip("203.0.113.20")), 40000), (u32::from(ip("54.123.170.5")), 80))
            .is_none()
    );
}

#[test]
fn longest_prefix_wins_guide_example_2() {
    // "any traffic destined for the 54.123.165.0/24 IP address range continues to use the
    // Internet gateway, and does not use the endpoint"
    let p = demo();
    let mut pkt = tcp_syn("10.0.3.10", 40000, "54.123.165.7", 80);
    assert!(matches!(run(&p, C, &mut pkt), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&pkt), ip("203.0.113.30"));
    let mut pkt = tcp_syn("10.0.3.10", 40001, "54.123.170.5", 80);
    assert!(matches!(run(&p, C, &mut pkt), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&pkt), ip("10.0.3.10"));
    let mut pkt = tcp_syn("10.0.3.10", 40002, "198.51.100.10", 80);
    assert_eq!(run(&p, C, &mut pkt), Action::Drop(DropReason::NoRoute));
    assert_eq!(p.counters.drops(DropReason::NoRoute), 1);
}

#[test]
fn guide_example_2_after_deleting_the_igw_route_the_subnet_is_private() {
    let text = DEFAULT_LAB.replace(
        "routes = [{ destination = \"54.123.165.0/24\", target = \"igw-1a2b3c4d\" }]",
        "routes = []",
    );
    let p = pipeline_for(&parse("t.toml", &text).unwrap());
    let mut pkt = tcp_syn("10.0.3.10", 40000, "54.123.165.7", 80);
    assert!(matches!(run(&p, C, &mut pkt), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&pkt), ip("10.0.3.10"), "now through the endpoint");
}

#[test]
fn identical_cidr_beats_prefix_list() {
    // "If you have existing routes destined for an IP address range that is identical to the IP
    // address range used by the service, then your routes take precedence."
    let text = DEFAULT_LAB.replace(
        "routes = [{ destination = \"54.123.165.0/24\", target = \"igw-1a2b3c4d\" }]",
        "routes = [{ destination = \"54.123.160.0/19\", target = \"igw-1a2b3c4d\" }]",
    );
    let p = pipeline_for(&parse("t.toml", &text).unwrap());
    let mut pkt = tcp_syn("10.0.3.10", 40000, "54.123.170.5", 80);
    assert!(matches!(run(&p, C, &mut pkt), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&pkt), ip("203.0.113.30"), "the identical CIDR route to the IGW wins");
}

#[test]
fn blackhole_and_no_public_ip_are_counted_drops() {
    let text = DEFAULT_LAB
        .replace(
            "routes = [{ destination = \"54.123.165.0/24\", target = \"igw-1a2b3c4d\" }]",
            "routes = [{ destination = \"54.123.165.0/24\", target = \"blackhole\" }, \
             { destination = \"0.0.0.0/0\", target = \"igw-1a2b3c4d\" }]",
        )
        .replace("public_ip = \"203.0.113.30\"\n", "");
    let p = pipeline_for(&parse("t.toml", &text).unwrap());
    let mut pkt = tcp_syn("10.0.3.10", 40000, "54.123.165.7", 80);
    assert_eq!(run(&p, C, &mut pkt), Action::Drop(DropReason::Blackhole));
    let mut pkt = tcp_syn("10.0.3.10", 40000, "198.51.100.10", 80);
    assert_eq!(run(&p, C, &mut pkt), Action::Drop(DropReason::NoPublicIp));
    assert_eq!(p.counters.drops(DropReason::Blackhole), 1);
    assert_eq!(p.counters.drops(DropReason::NoPublicIp), 1);
}

#[test]
fn local_route_between_subnets() {
    let p = demo();
    let mut pkt = tcp_syn("10.0.1.10", 40000, "10.0.2.10", 22);
    let len = pkt.len();
    assert_eq!(run(&p, A, &mut pkt), Action::Forward { port: B, len });
    assert_eq!(src_of(&pkt), ip("10.0.1.10"));
    let mut pkt = tcp_syn("10.0.1.10", 40000, "10.0.2.99", 22);
    assert_eq!(run(&p, A, &mut pkt), Action::Drop(DropReason::NoInstance));
}

#[test]
fn spoofed_source_is_dropped() {
    let p = demo();
    let mut pkt = tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80);
    assert_eq!(run(&p, A, &mut pkt), Action::Drop(DropReason::UnknownSource), "b's address from a");
}

#[test]
fn replies_are_translated_back() {
    let p = demo();
    // Through the IGW: the reply to the public IP is NATed back to the private one.
    let mut out = tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80);
    let _ = run(&p, B, &mut out);
    let mut reply = tcp("54.123.170.5", 80, "203.0.113.20", 40000, b"HTTP/1.1 200 OK\r\n");
    let len = reply.len();
    assert_eq!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: B, len });
    assert_eq!(&reply[16..20], &[10, 0, 2, 10]);
    assert_checksums_valid(&reply);
    // Through the endpoint: the reply to the private IP follows the flow.
    let mut out = tcp_syn("10.0.1.10", 40000, "54.123.170.5", 80);
    let _ = run(&p, A, &mut out);
    let mut reply = tcp("54.123.170.5", 80, "10.0.1.10", 40000, b"x");
    assert!(matches!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: A, .. }));
    // No flow: nothing from outside reaches a private address.
    let mut stray = tcp("54.123.170.5", 80, "10.0.1.10", 40999, b"x");
    assert_eq!(run(&p, PORT_AWS, &mut stray), Action::Drop(DropReason::NoFlow));
    let mut stray = tcp("198.51.100.10", 80, "10.0.1.10", 40000, b"x");
    assert_eq!(run(&p, PORT_INTERNET, &mut stray), Action::Drop(DropReason::NoRoute));
    // The internet and AWS's public ranges reach each other both ways (the README: "The
    // internet namespace may reach AWS's public ranges, as the real internet can").
    let mut syn = tcp_syn("198.51.100.10", 41000, "54.123.170.5", 80);
    assert!(matches!(run(&p, PORT_INTERNET, &mut syn), Action::Forward { port: PORT_AWS, .. }));
    let mut reply = tcp("54.123.170.5", 80, "198.51.100.10", 41000, b"x");
    assert!(matches!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: PORT_INTERNET, .. }));
    // Never a private address that way.
    let mut stray = tcp("54.123.170.5", 80, "10.0.1.10", 41000, b"x");
    assert_eq!(run(&p, PORT_AWS, &mut stray), Action::Drop(DropReason::NoFlow));
}

#[test]
fn udp_checksums_stay_valid_through_nat() {
    let p = demo();
    let mut pkt = udp("10.0.2.10", 5353, "198.51.100.10", 53);
    assert!(matches!(run(&p, B, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    assert_checksums_valid(&pkt);
}

#[test]
fn ipv6_and_ttl_are_counted() {
    let p = demo();
    let mut v6 = vec![0x60u8; 48];
    assert_eq!(run(&p, A, &mut v6), Action::Drop(DropReason::Ipv6));
    // TTL 1 to the endpoint: forwarded as it is (the endpoint is not a hop).
    let mut pkt = with_ttl(udp("10.0.1.10", 1, "54.123.170.5", 2), 1);
    let len = pkt.len();
    assert_eq!(run(&p, A, &mut pkt), Action::Forward { port: PORT_AWS, len });
    assert_eq!(pkt[8], 1);
    // TTL 1 through the NAT gateway (a hop): dropped, counted, and answered with an ICMP Time
    // Exceeded from the gateway's private IP quoting the datagram's header and 8 bytes (RFC
    // 792; a traceroute from a private subnet shows the NAT gateway as its first hop).
    let sent = with_ttl(udp_payload("10.0.4.10", 33434, "198.51.100.10", 33435, &[0; 32]), 1);
    let mut pkt = sent.clone();
    let Action::Reply { port, len } = run(&p, D, &mut pkt) else { panic!("no time exceeded") };
    assert_eq!((port, len), (D, 20 + 8 + 28));
    assert_eq!(p.counters.drops(DropReason::TtlExceeded), 1);
    let icmp = &pkt[..len];
    assert_checksums_valid(icmp);
    assert_eq!((src_of(icmp), &icmp[16..20]), (ip("10.0.2.40"), &ip("10.0.4.10").octets()[..]));
    assert_eq!((icmp[20], icmp[21]), (11, 0), "time exceeded in transit");
    assert_eq!(&icmp[28..], &sent[..28], "the datagram's header and 8 bytes, as received");
    // Too short to hold the answer in its own buffer: only dropped.
    let mut tiny = with_ttl(udp_payload("10.0.4.10", 1, "198.51.100.10", 2, &[]), 1);
    assert_eq!(run(&p, D, &mut tiny), Action::Drop(DropReason::TtlExceeded));
}

/// `pkt` with TTL `ttl` and its IP header checksum recomputed.
fn with_ttl(mut pkt: Vec<u8>, ttl: u8) -> Vec<u8> {
    use crate::packet::checksum::{fold, ones_sum};
    pkt[8] = ttl;
    pkt[10..12].fill(0);
    let c = !fold(ones_sum(&pkt[..20]));
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    pkt
}

#[test]
fn only_a_nat_is_a_hop() {
    // The VPC router, the internet gateway and a gateway endpoint do not decrement the TTL:
    // traceroute between instances, or through an endpoint to S3 (`traceroute -T -p 443`),
    // shows only the destination; "those intermediate VPC gateways are not decrementing the TTL
    // values and just for forwarding the packets to next hop" (cloudaffaire.com, "Why
    // traceroute ignores route table in AWS EC2 with VPC"). A NAT gateway or NAT instance is a
    // device on the path: one decrement each way, and TTL 1 dies there (`ttl_exceeded`).
    let p = demo();
    // (from, packet, to, whether the addresses are rewritten): every one sent with TTL 1.
    let vpc = [
        (A, tcp_syn("10.0.1.10", 40000, "10.0.2.10", 22), B, false), // local route
        (A, tcp_syn("10.0.1.10", 40001, "54.123.170.5", 443), PORT_AWS, false), // endpoint
        (B, tcp_syn("10.0.2.10", 40002, "198.51.100.10", 443), PORT_INTERNET, true), // igw
        (A, udp("10.0.1.10", 40003, "10.0.0.2", 53), PORT_AWS, false), // the resolver
        (PORT_INTERNET, tcp_syn("198.51.100.10", 40004, "54.123.170.5", 443), PORT_AWS, false),
        // Replies: to the public IP, along the endpoint's flow, from the resolver.
        (PORT_INTERNET, tcp("198.51.100.10", 443, "203.0.113.20", 40002, b"x"), B, true),
        (PORT_AWS, tcp("54.123.170.5", 443, "10.0.1.10", 40001, b"x"), A, false),
        (PORT_AWS, udp("10.0.0.2", 53, "10.0.1.10", 40003), A, false),
    ];
    for (from, pkt, to, rewritten) in vpc {
        let sent = with_ttl(pkt, 1);
        let mut pkt = sent.clone();
        let len = pkt.len();
        assert_eq!(run(&p, from, &mut pkt), Action::Forward { port: to, len }, "{from} -> {to}");
        assert_eq!(pkt[8], 1, "{from} -> {to}: TTL untouched");
        if rewritten {
            assert_checksums_valid(&pkt);
        } else {
            assert_eq!(pkt, sent, "{from} -> {to}: not a byte changed");
        }
    }
    // Through the NAT gateway: TTL 2 leaves with 1, each way; TTL 1 is dropped, each way.
    let mut out = with_ttl(tcp_syn("10.0.4.10", 40005, "198.51.100.10", 443), 2);
    assert!(matches!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
    assert_eq!(out[8], 1);
    assert_checksums_valid(&out);
    let mut reply = with_ttl(tcp("198.51.100.10", 443, "203.0.113.40", 40005, b"x"), 2);
    assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
    assert_eq!(reply[8], 1);
    assert_checksums_valid(&reply);
    let mut out = with_ttl(tcp("10.0.4.10", 40005, "198.51.100.10", 443, b"y"), 1);
    assert_eq!(run(&p, D, &mut out), Action::Drop(DropReason::TtlExceeded));
    let mut reply = with_ttl(tcp("198.51.100.10", 443, "203.0.113.40", 40005, b"x"), 1);
    assert_eq!(run(&p, PORT_INTERNET, &mut reply), Action::Drop(DropReason::TtlExceeded));
    assert_eq!(p.counters.drops(DropReason::TtlExceeded), 2);
}

#[test]
fn a_query_to_the_resolver_without_dns_support_is_a_counted_drop() {
    // ModifyVpcAttribute's EnableDnsSupport: "If disabled, the Amazon provided DNS service in
    // the VPC that resolves public DNS hostnames to IP addresses is not enabled." The query
    // goes nowhere (base + 2, or 169.254.169.253), and is counted as every drop is.
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    world.vpcs[0].enable_dns_support = false;
    let p = pipeline_for(&world);
    let queries = [
        udp("10.0.1.10", 40000, "10.0.0.2", 53),
        tcp_syn("10.0.1.10", 40001, "10.0.0.2", 53),
        udp("10.0.2.10", 40002, "10.0.0.2", 53),
        udp("10.0.1.10", 40003, "169.254.169.253", 53),
    ];
    let from = [A, A, B, A];
    for (port, mut pkt) in from.into_iter().zip(queries) {
        assert_eq!(run(&p, port, &mut pkt), Action::Drop(DropReason::DnsDisabled));
    }
    assert_eq!(p.counters.drops(DropReason::DnsDisabled), 4);
    assert_eq!(p.counters.forwarded(), 0);
    // Only DNS: other traffic to the resolver's address goes the ordinary way.
    let mut pkt = udp("10.0.1.10", 40004, "10.0.0.2", 123);
    assert_ne!(run(&p, A, &mut pkt), Action::Drop(DropReason::DnsDisabled));
    // Nothing is remembered: the resolver's socket would find no VPC for it.
    let (client, server) = ((u32::from(ip("10.0.1.10")), 40000), (u32::from(ip("10.0.0.2")), 53));
    assert_eq!(p.resolver_origin(packet::PROTO_UDP, client, server), None);
    // The drop reason is listed by `vpcsim status` under its label.
    assert!(DropReason::ALL.contains(&DropReason::DnsDisabled));
    assert_eq!(DropReason::DnsDisabled.label(), "dns_disabled");
    // Turned back on (ModifyVpcAttribute publishes a new snapshot), the query reaches it.
    world.vpcs[0].enable_dns_support = true;
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let mut pkt = udp("10.0.1.10", 40000, "10.0.0.2", 53);
    let len = pkt.len();
    assert_eq!(run(&p, A, &mut pkt), Action::Forward { port: PORT_AWS, len });
    assert_eq!(
        p.resolver_origin(packet::PROTO_UDP, client, server).as_deref(),
        Some(&"vpc-111bbb22".to_string())
    );
    assert_eq!(p.counters.drops(DropReason::DnsDisabled), 4);
}

#[test]
fn the_amazon_dns_server_answers_at_its_link_local_address_too() {
    // ModifyVpcAttribute's EnableDnsSupport: "If enabled, queries to the Amazon provided DNS
    // server at the 169.254.169.253 IP address, or the reserved IP address at the base of the
    // VPC network range "plus two" succeed." The query reaches the resolver in the aws
    // namespace, which learns the asking VPC from the flow, and its answer comes back from
    // the address asked.
    let p = demo();
    for (port, src, sport) in [(A, "10.0.1.10", 40000), (C, "10.0.3.10", 40001)] {
        let mut q = udp(src, sport, "169.254.169.253", 53);
        let len = q.len();
        assert_eq!(run(&p, port, &mut q), Action::Forward { port: PORT_AWS, len });
        let (client, server) =
            ((u32::from(ip(src)), sport), (u32::from(ip("169.254.169.253")), 53));
        assert_eq!(
            p.resolver_origin(packet::PROTO_UDP, client, server).as_deref(),
            Some(&"vpc-111bbb22".to_string())
        );
        let mut answer = udp("169.254.169.253", 53, src, sport);
        let len = answer.len();
        assert_eq!(run(&p, PORT_AWS, &mut answer), Action::Forward { port, len });
    }
    // Over TCP too, whatever the route table says (c has no default route).
    let mut syn = tcp_syn("10.0.3.10", 40002, "169.254.169.253", 53);
    assert!(matches!(run(&p, C, &mut syn), Action::Forward { port: PORT_AWS, .. }));
    // Only DNS: the rest of the link-local range (the instance metadata service, the time
    // server, other ports of this address) is not simulated and stays a martian.
    for (dst, dport) in
        [("169.254.169.253", 123), ("169.254.169.254", 80), ("169.254.169.123", 123)]
    {
        let mut pkt = udp("10.0.1.10", 40003, dst, dport);
        assert_eq!(run(&p, A, &mut pkt), Action::Drop(DropReason::Martian));
    }
    // Nothing unasked comes back from it.
    let mut stray = udp("169.254.169.253", 53, "10.0.1.10", 40999);
    assert_eq!(run(&p, PORT_AWS, &mut stray), Action::Drop(DropReason::NoFlow));
}

#[test]
fn superpacket_partial_checksum_is_updated_not_recomputed() {
    // A TSO superpacket as Linux hands it over with IFF_VNET_HDR: 60 KB of payload in one IPv4
    // packet, the TCP checksum field holding the uncomplemented pseudo-header sum.
    let p = demo();
    let payload = vec![0xabu8; 60_000];
    let mut pkt = tcp("10.0.2.10", 40000, "54.123.170.5", 80, &payload);
    let tcp_off = 20;
    let pseudo = |pkt: &[u8]| {
        let mut sum: u32 = 0;
        for w in pkt[12..20].chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        sum += 6 + (pkt.len() - tcp_off) as u32;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    };
    let partial = pseudo(&pkt);
    pkt[tcp_off + 16..tcp_off + 18].copy_from_slice(&partial.to_be_bytes());
    let meta = Meta { csum: CsumMode::Partial, gso: true, gso_size: 1448 };
    let len = pkt.len();
    assert_eq!(
        p.process(Instant::now(), B, &mut pkt, meta),
        Action::Forward { port: PORT_AWS, len }
    );
    assert_eq!(src_of(&pkt), ip("203.0.113.20"));
    let field = u16::from_be_bytes([pkt[tcp_off + 16], pkt[tcp_off + 17]]);
    assert_eq!(field, pseudo(&pkt), "partial sum follows the new source address");
    // Completing it as the kernel would gives a valid checksum.
    let mut sum: u32 = 0;
    for w in pkt[tcp_off..].chunks(2) {
        let hi = w[0];
        let lo = if w.len() > 1 { w[1] } else { 0 };
        sum += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let full = !(sum as u16);
    pkt[tcp_off + 16..tcp_off + 18].copy_from_slice(&full.to_be_bytes());
    assert_checksums_valid(&pkt);
}

#[test]
fn flows_expire_when_idle() {
    let p = demo();
    let t0 = Instant::now();
    let mut pkt = udp("10.0.1.10", 5000, "54.123.170.5", 53);
    let _ = p.process(t0, A, &mut pkt, Meta::PLAIN);
    assert_eq!(p.flows.len(), 1);
    // One direction only: AWS's UDP timeout, 30 s.
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(29)), 0);
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(31)), 1);
    // Two request-response transactions through the endpoint make a stream: 180 s.
    for i in 0..4 {
        let mut pkt = if i % 2 == 0 {
            udp("10.0.1.10", 5000, "54.123.170.5", 53)
        } else {
            udp("54.123.170.5", 53, "10.0.1.10", 5000)
        };
        let from = if i % 2 == 0 { A } else { PORT_AWS };
        assert!(matches!(p.process(t0, from, &mut pkt, Meta::PLAIN), Action::Forward { .. }));
    }
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(179)), 0);
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(181)), 1);
}

proptest! {
    #[test]
    fn garbage_and_truncations_are_counted_drops(bytes in proptest::collection::vec(any::<u8>(), 0..200), port in 0u16..6) {
        let p = demo();
        let mut b = bytes.clone();
        let action = p.process(Instant::now(), port, &mut b, Meta::PLAIN);
        if let Action::Drop(r) = action {
            prop_assert!(p.counters.drops(r) == 1);
        }
        let mut valid = tcp("10.0.1.10", 40000, "54.123.170.5", 80, &bytes);
        let full = valid.len();
        for cut in 0..full {
            let mut t = valid[..cut].to_vec();
            let a = p.process(Instant::now(), A, &mut t, Meta::PLAIN);
            prop_assert!(matches!(a, Action::Drop(_)), "a truncated packet is dropped: {a:?} at {cut}");
        }
        let a = p.process(Instant::now(), A, &mut valid, Meta::PLAIN);
        prop_assert!(matches!(a, Action::Forward { .. }), "valid packet forwarded");
    }

    // Up to 1500 bytes in all: larger ones do not cross the internet gateway (`mod mtu`).
    #[test]
    fn every_rewrite_keeps_checksums_valid(payload in proptest::collection::vec(any::<u8>(), 0..=1460), sport in 1u16.., dport in 1u16.., to in 0usize..3) {
        let p = demo();
        let dst = ["54.123.170.5", "198.51.100.10", "10.0.2.10"][to];
        let mut pkt = tcp("10.0.1.10", sport, dst, dport, &payload);
        let a = p.process(Instant::now(), A, &mut pkt, Meta::PLAIN);
        prop_assert!(matches!(a, Action::Forward { .. }), "forwarded");
        assert_checksums_valid(&pkt);
        // A reply from the internet (unsolicited traffic to the public IP is refused by the
        // default security group, so send the first packet there).
        let mut first = tcp("10.0.1.10", sport, "198.51.100.10", dport, &payload);
        let _ = p.process(Instant::now(), A, &mut first, Meta::PLAIN);
        let mut reply = tcp("198.51.100.10", dport, "203.0.113.10", sport, &payload);
        let a = p.process(Instant::now(), PORT_INTERNET, &mut reply, Meta::PLAIN);
        prop_assert!(matches!(a, Action::Forward { port: A, .. }), "reply forwarded");
        assert_checksums_valid(&reply);
    }
}

fn established(p: &Pipeline, port: PortId, src: &str, sport: u16, dst: &str) {
    // SYN from the instance (a NAT gateway translates a connection from its SYN), then 100
    // bytes of data from the instance.
    let mut syn = tcp_syn(src, sport, dst, 80);
    assert!(matches!(run(p, port, &mut syn), Action::Forward { .. }));
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64)
        .tcp(sport, 80, 5000, 65535)
        .ack(9000);
    let mut pkt = Vec::new();
    b.write(&mut pkt, &[7u8; 100]).unwrap();
    assert!(matches!(run(p, port, &mut pkt), Action::Forward { .. }));
}

fn rst_fields(pkt: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, u32, bool) {
    let s = SlicedPacket::from_ip(pkt).unwrap();
    let Some(etherparse::NetSlice::Ipv4(v4)) = &s.net else { panic!() };
    let Some(TransportSlice::Tcp(t)) = s.transport else { panic!() };
    assert!(t.rst());
    (
        v4.header().source_addr(),
        t.source_port(),
        v4.header().destination_addr(),
        t.destination_port(),
        t.sequence_number(),
        t.ack(),
    )
}

#[test]
fn reset_when_endpoint_route_changes() {
    // Subnet b reaches S3 through the IGW; then its table is associated with the endpoint.
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&world);
    established(&p, B, "10.0.2.10", 40000, "54.123.170.5");
    // An unrelated connection to the internet from the same subnet.
    established(&p, B, "10.0.2.10", 40001, "198.51.100.10");
    assert_eq!(p.flows.len(), 2);
    world.endpoints[0].route_tables.push("rtb-0b0b0b0b".into());
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let resets = p.reset_moved_flows();
    assert_eq!(resets.len(), 2, "one RST to each side");
    assert_eq!(resets[0].port, B);
    assert_eq!(
        rst_fields(&resets[0].packet),
        (ip("54.123.170.5"), 80, ip("10.0.2.10"), 40000, 9000, true),
        "to the instance, from S3, at the sequence number S3 would send next"
    );
    assert_eq!(resets[1].port, PORT_AWS);
    assert_eq!(
        rst_fields(&resets[1].packet),
        (ip("203.0.113.20"), 40000, ip("54.123.170.5"), 80, 5100, true),
        "to S3, from the public IP it knew, at the instance's next sequence number"
    );
    for r in &resets {
        assert_checksums_valid(&r.packet);
    }
    assert_eq!(p.flows.len(), 1, "the internet flow's path did not change: untouched");
    assert!(p.reset_moved_flows().is_empty(), "nothing moves twice");
}

/// A reply the subnet's network ACL drops never reaches the instance, so it must not move the
/// sequence number a reset to the instance carries: Linux accepts a RST only at exactly the
/// next sequence number it expects (RFC 5961), and answers any other with a challenge ACK, so
/// a reset past a dropped segment would leave the client hanging where the guide's endpoint
/// change "disconnects open TCP connections". Through the endpoint (subnet a) and through the
/// NAT gateway (subnet d).
#[test]
fn a_dropped_reply_does_not_move_the_resets_sequence_number() {
    use crate::model::{AclEntry, Ports, Protocol, RuleAction};
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    // An ACL on a and d: everything out, nothing in.
    world.create_network_acl("acl-0e0e0001", "vpc-111bbb22").unwrap();
    let out_all = AclEntry {
        rule_number: 100,
        egress: true,
        protocol: Protocol::All,
        ports: Ports::All,
        cidr: "0.0.0.0/0".parse().unwrap(),
        action: RuleAction::Allow,
    };
    world.add_network_acl_entry("acl-0e0e0001", out_all).unwrap();
    world.associate_network_acl("acl-0e0e0001", "a").unwrap();
    world.associate_network_acl("acl-0e0e0001", "d").unwrap();
    let p = pipeline_for(&world);
    // Through the endpoint: the instance acknowledged up to 9000; S3's next 50 bytes are
    // dropped at a's ACL.
    established(&p, A, "10.0.1.10", 40000, "54.123.170.5");
    let reply = |dst: &str, dport: u16| {
        let b = PacketBuilder::ipv4(ip("54.123.170.5").octets(), ip(dst).octets(), 64)
            .tcp(80, dport, 9000, 65535)
            .ack(5100);
        let mut pkt = Vec::new();
        b.write(&mut pkt, &[9u8; 50]).unwrap();
        pkt
    };
    assert_eq!(run(&p, PORT_AWS, &mut reply("10.0.1.10", 40000)), Action::Drop(DropReason::NaclIn));
    // Through the NAT gateway (d's default route), to the same S3 address.
    let mut syn = tcp_syn("10.0.4.10", 40000, "54.123.170.5", 80);
    assert!(matches!(run(&p, D, &mut syn), Action::Forward { port: PORT_AWS, .. }));
    let nat_port = ports_of(&syn).0;
    let b = PacketBuilder::ipv4(ip("10.0.4.10").octets(), ip("54.123.170.5").octets(), 64)
        .tcp(40000, 80, 5000, 65535)
        .ack(9000);
    let mut data = Vec::new();
    b.write(&mut data, &[7u8; 100]).unwrap();
    assert!(matches!(run(&p, D, &mut data), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(
        run(&p, PORT_AWS, &mut reply("203.0.113.40", nat_port)),
        Action::Drop(DropReason::NaclIn)
    );
    // Both subnets' tables move onto the endpoint: each instance is reset at 9000, the
    // number it expects, not past the dropped 50 bytes.
    world.endpoints[0].route_tables = vec!["rtb-0d0d0d0d".into()];
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let resets = p.reset_moved_flows();
    let to_instance: Vec<_> = resets
        .iter()
        .filter(|r| r.port == A || r.port == D)
        .map(|r| {
            let f = rst_fields(&r.packet);
            (f.2, f.4)
        })
        .collect();
    assert_eq!(to_instance.len(), 2, "{resets:?}");
    for (to, seq) in to_instance {
        assert_eq!(seq, 9000, "the reset to {to} carries the sequence number it expects");
    }
}

#[test]
fn a_new_connection_on_the_tuple_of_an_unanswered_one_starts_its_own_sequence_numbers() {
    // A SYN that got no answer leaves its flow behind; a connection on the same tuple later
    // (Linux's ISN for a tuple moves with a clock, so it may look "older" than the stale one)
    // must be tracked from its own SYN, or a reset after an endpoint change carries the stale
    // numbers and neither end accepts it (the README: one RST to each side "at the sequence
    // number it expects").
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&world);
    let syn = |seq: u32| {
        let b = PacketBuilder::ipv4(ip("10.0.2.10").octets(), ip("54.123.170.5").octets(), 64)
            .tcp(40000, 80, seq, 65535)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    };
    // The first SYN (ISN 1,000,000) is never answered; it is sent again (a retransmission
    // moves nothing).
    for _ in 0..2 {
        assert!(matches!(run(&p, B, &mut syn(1_000_000)), Action::Forward { .. }));
    }
    // The new connection: ISN 1,000 (before 1,000,000 in sequence order), S3's SYN-ACK (ISN 70,000),
    // and the instance's ACK.
    assert!(matches!(run(&p, B, &mut syn(1_000)), Action::Forward { .. }));
    let b = PacketBuilder::ipv4(ip("54.123.170.5").octets(), ip("203.0.113.20").octets(), 64)
        .tcp(80, 40000, 70_000, 65535)
        .syn()
        .ack(1_001);
    let mut syn_ack = Vec::new();
    b.write(&mut syn_ack, &[]).unwrap();
    assert!(matches!(run(&p, PORT_AWS, &mut syn_ack), Action::Forward { port: B, .. }));
    // b moves onto the endpoint: the instance is reset at 70,001 (S3's next), S3 at 1,001.
    world.endpoints[0].route_tables.push("rtb-0b0b0b0b".into());
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let resets = p.reset_moved_flows();
    let seqs: Vec<_> = resets.iter().map(|r| (r.port, rst_fields(&r.packet).4)).collect();
    assert!(seqs.contains(&(B, 70_001)), "{seqs:?}");
    assert!(seqs.contains(&(PORT_AWS, 1_001)), "{seqs:?}");
}

#[test]
fn a_connection_still_in_its_handshake_is_not_refused_by_a_route_change() {
    // An instance whose SYN has had no answer yet is in SYN-SENT: a RST from the remote address
    // would be a refusal (ECONNREFUSED), which AWS's route change never causes (the guide:
    // an endpoint "disconnects open TCP connections"); its next SYN takes the new path. The
    // remote side, which may hold the SYN, still hears its RST.
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&world);
    assert!(matches!(
        run(&p, B, &mut tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80)),
        Action::Forward { .. }
    ));
    world.endpoints[0].route_tables.push("rtb-0b0b0b0b".into());
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let resets = p.reset_moved_flows();
    let to: Vec<_> = resets.iter().map(|r| r.port).collect();
    assert_eq!(to, [PORT_AWS], "{resets:?}");
    assert_eq!(p.flows.len(), 0, "the moved flow is gone; the next SYN starts a new one");
    let mut again = tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80);
    assert!(matches!(run(&p, B, &mut again), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&again), ip("10.0.2.10"), "through the endpoint now: the private address");
}

#[test]
fn endpoint_deletion_resets_endpoint_flows_only() {
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&world);
    established(&p, A, "10.0.1.10", 40000, "54.123.170.5"); // through the endpoint
    established(&p, C, "10.0.3.10", 40000, "54.123.165.7"); // c's more specific IGW route
    world.endpoints.clear();
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let resets = p.reset_moved_flows();
    assert_eq!(resets.len(), 2);
    assert_eq!(rst_fields(&resets[1].packet).0, ip("10.0.1.10"), "S3 hears it from the private IP");
    assert_eq!(p.flows.len(), 1);
}

#[test]
fn sequence_tracking_ignores_retransmissions() {
    let p = demo();
    established(&p, B, "10.0.2.10", 40000, "54.123.170.5");
    // A retransmission of older data must not move the sequence number back.
    let b = PacketBuilder::ipv4(ip("10.0.2.10").octets(), ip("54.123.170.5").octets(), 64)
        .tcp(40000, 80, 4000, 65535)
        .ack(9000);
    let mut pkt = Vec::new();
    b.write(&mut pkt, &[1u8; 10]).unwrap();
    let _ = run(&p, B, &mut pkt);
    let key = flow::FlowKey {
        proto: 6,
        src: u32::from(ip("203.0.113.20")),
        sport: 40000,
        dst: u32::from(ip("54.123.170.5")),
        dport: 80,
    };
    assert_eq!(p.flows.get(&key).unwrap().tcp.out_next, 5100);
}

mod filters {
    //! Security groups and network ACLs in the pipeline.

    use super::*;
    use crate::model::{AclEntry, Direction, Peer, Ports, Protocol, RuleAction, SgRule};

    fn rule(p: Protocol, ports: &str, peer: Peer) -> SgRule {
        SgRule::new(p, Ports::parse_lab(p, Some(ports)).unwrap(), peer)
    }

    fn forwarded(a: Action) -> bool {
        matches!(a, Action::Forward { .. })
    }

    fn with_group(egress: &[SgRule], ingress: &[SgRule]) -> World {
        let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
        w.create_security_group("sg-0a0a0001", "g", "g", "vpc-111bbb22").unwrap();
        w.set_security_group_rules("sg-0a0a0001", Direction::Egress, egress).unwrap();
        w.set_security_group_rules("sg-0a0a0001", Direction::Ingress, ingress).unwrap();
        w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0001".into()]).unwrap();
        w
    }

    #[test]
    fn https_to_s3_only_and_replies_pass() {
        let pl = Peer::PrefixList("pl-1a2b3c4d".into());
        let w = with_group(&[rule(Protocol::Tcp, "443", pl)], &[]);
        let p = pipeline_for(&w);
        let mut syn = tcp_syn("10.0.1.10", 40000, "54.123.170.5", 443);
        assert!(matches!(run(&p, A, &mut syn), Action::Forward { port: PORT_AWS, .. }));
        // S3's answer: A has no ingress rule, but it is a reply.
        let mut reply = tcp("54.123.170.5", 443, "10.0.1.10", 40000, b"hi");
        assert_eq!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: A, len: reply.len() });
        // HTTP to S3 and HTTPS to the internet: refused, counted with their rule.
        let mut http = tcp_syn("10.0.1.10", 40001, "54.123.170.5", 80);
        assert_eq!(run(&p, A, &mut http), Action::Drop(DropReason::SgEgress));
        let mut net = tcp_syn("10.0.1.10", 40002, "198.51.100.10", 443);
        assert_eq!(run(&p, A, &mut net), Action::Drop(DropReason::SgEgress));
        assert_eq!(p.counters.drops(DropReason::SgEgress), 2);
        let snap = p.snapshot();
        let counts = snap.filters.drop_counts();
        assert_eq!(counts.len(), 1);
        assert!(counts[0].0.label.contains("sg egress of i-0a0a0a0a"), "{:?}", counts[0].0);
        assert_eq!(counts[0].1, 2);
        // Removing the rule does not cut the tracked flow; new flows are refused.
        let mut w2 = w.clone();
        w2.set_security_group_rules("sg-0a0a0001", Direction::Egress, &[]).unwrap();
        let ports = ports_by_index(&w2);
        p.publish(Snapshot::compile(&w2, 2, &|id| ports.get(id).copied()));
        let mut more = tcp("10.0.1.10", 40000, "54.123.170.5", 443, b"GET");
        assert!(forwarded(run(&p, A, &mut more)));
        let mut new = tcp_syn("10.0.1.10", 40003, "54.123.170.5", 443);
        assert_eq!(run(&p, A, &mut new), Action::Drop(DropReason::SgEgress));
        // The counts survived the new snapshot.
        assert_eq!(p.snapshot().filters.drop_counts()[0].1, 3);
    }

    /// An IPv4 packet of protocol `proto` (GRE 47, ESP 50 …) with a few bytes of payload.
    fn other(proto: u8, src: &str, dst: &str) -> Vec<u8> {
        let h = etherparse::Ipv4Header::new(
            4,
            64,
            etherparse::IpNumber(proto),
            ip(src).octets(),
            ip(dst).octets(),
        )
        .unwrap();
        let mut out = Vec::new();
        h.write(&mut out).unwrap();
        out.extend_from_slice(&[0, 0, 0x08, 0]);
        out
    }

    /// A rule for another protocol by number matches that protocol only, on every port ("a
    /// protocol number other than tcp, udp, icmp, or icmpv6 allows traffic on all ports"), and
    /// its flows are tracked by addresses and protocol: the replies come back without an
    /// ingress rule. A NAT gateway translates TCP, UDP and ICMP only.
    #[test]
    fn other_protocols_are_matched_by_number_and_tracked() {
        let peer = Peer::Cidr("198.51.100.10/32".parse().unwrap());
        let w = with_group(&[rule(Protocol::Other(47), "all", peer)], &[]);
        let p = pipeline_for(&w);
        let mut gre = other(47, "10.0.1.10", "198.51.100.10");
        assert!(matches!(run(&p, A, &mut gre), Action::Forward { port: PORT_INTERNET, .. }));
        assert_eq!(src_of(&gre), ip("203.0.113.10"));
        let mut back = other(47, "198.51.100.10", "203.0.113.10");
        assert_eq!(run(&p, PORT_INTERNET, &mut back), Action::Forward { port: A, len: back.len() });
        // ESP is another protocol: no rule, no flow.
        let mut esp = other(50, "10.0.1.10", "198.51.100.10");
        assert_eq!(run(&p, A, &mut esp), Action::Drop(DropReason::SgEgress));
        let mut esp_in = other(50, "198.51.100.10", "203.0.113.10");
        assert_eq!(run(&p, PORT_INTERNET, &mut esp_in), Action::Drop(DropReason::SgIngress));
        // Nor does the GRE rule let TCP out.
        let mut syn = tcp_syn("10.0.1.10", 40000, "198.51.100.10", 80);
        assert_eq!(run(&p, A, &mut syn), Action::Drop(DropReason::SgEgress));
        // Another peer's GRE is a new flow from outside: refused.
        let w2 = with_group(
            &[rule(Protocol::Other(47), "all", Peer::Cidr("0.0.0.0/0".parse().unwrap()))],
            &[],
        );
        let p2 = pipeline_for(&w2);
        let mut stranger = other(47, "198.51.100.10", "203.0.113.10");
        assert_eq!(run(&p2, PORT_INTERNET, &mut stranger), Action::Drop(DropReason::SgIngress));
        // D's default route goes to the NAT gateway, which does not translate GRE.
        let p3 = demo();
        let mut nat = other(47, "10.0.4.10", "198.51.100.10");
        assert_eq!(run(&p3, D, &mut nat), Action::Drop(DropReason::NatProtocol));
    }

    #[test]
    fn internet_reaches_a_public_ip_only_through_ingress_rules() {
        let p = demo();
        let mut syn = tcp_syn("198.51.100.10", 5555, "203.0.113.10", 22);
        assert_eq!(run(&p, PORT_INTERNET, &mut syn), Action::Drop(DropReason::SgIngress));
        let any = Peer::Cidr("0.0.0.0/0".parse().unwrap());
        // A's egress allows nothing: its replies pass only because the flow is tracked.
        let w = with_group(&[], &[rule(Protocol::Tcp, "22", any)]);
        let p = pipeline_for(&w);
        let mut syn = tcp_syn("198.51.100.10", 5555, "203.0.113.10", 22);
        assert!(matches!(run(&p, PORT_INTERNET, &mut syn), Action::Forward { port: A, .. }));
        let mut reply = tcp("10.0.1.10", 22, "198.51.100.10", 5555, b"SSH-2.0");
        assert!(matches!(run(&p, A, &mut reply), Action::Forward { port: PORT_INTERNET, .. }));
        assert_eq!(src_of(&reply), ip("203.0.113.10"));
        let mut other = tcp_syn("198.51.100.10", 5555, "203.0.113.10", 80);
        assert_eq!(run(&p, PORT_INTERNET, &mut other), Action::Drop(DropReason::SgIngress));
        let mut out = tcp_syn("10.0.1.10", 40000, "198.51.100.10", 80);
        assert_eq!(run(&p, A, &mut out), Action::Drop(DropReason::SgEgress));
    }

    #[test]
    fn local_traffic_checks_both_sides_and_tracks_replies() {
        // A: egress all, no ingress. B (default group) accepts A's group on TCP 80.
        let mut w = with_group(&[SgRule::allow_all()], &[]);
        w.authorize_security_group(
            "sg-111bbb22",
            Direction::Ingress,
            &[rule(Protocol::Tcp, "80", Peer::Group("sg-0a0a0001".into()))],
        )
        .unwrap();
        let p = pipeline_for(&w);
        let mut syn = tcp_syn("10.0.1.10", 40000, "10.0.2.10", 80);
        assert_eq!(run(&p, A, &mut syn), Action::Forward { port: B, len: syn.len() });
        let mut reply = tcp("10.0.2.10", 80, "10.0.1.10", 40000, b"ok");
        assert_eq!(run(&p, B, &mut reply), Action::Forward { port: A, len: reply.len() });
        let mut ssh = tcp_syn("10.0.1.10", 40001, "10.0.2.10", 22);
        assert_eq!(run(&p, A, &mut ssh), Action::Drop(DropReason::SgIngress));
        let mut back = tcp_syn("10.0.2.10", 40002, "10.0.1.10", 80);
        assert_eq!(run(&p, B, &mut back), Action::Drop(DropReason::SgIngress));
        // B and C (default group) talk as before.
        let mut bc = udp("10.0.2.10", 5000, "10.0.3.10", 53);
        assert!(forwarded(run(&p, B, &mut bc)));
    }

    #[test]
    fn nacl_is_stateless() {
        let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
        let e = |n, egress, p: Protocol, ports: Option<&str>| AclEntry {
            rule_number: n,
            egress,
            protocol: p,
            ports: Ports::parse_lab(p, ports).unwrap(),
            cidr: "0.0.0.0/0".parse().unwrap(),
            action: RuleAction::Allow,
        };
        w.create_network_acl("acl-0a0a0001", "vpc-111bbb22").unwrap();
        w.add_network_acl_entry("acl-0a0a0001", e(100, true, Protocol::All, None)).unwrap();
        w.add_network_acl_entry("acl-0a0a0001", e(100, false, Protocol::Tcp, Some("80"))).unwrap();
        w.associate_network_acl("acl-0a0a0001", "a").unwrap();
        let p = pipeline_for(&w);
        let mut syn = tcp_syn("10.0.1.10", 40000, "54.123.170.5", 80);
        assert!(forwarded(run(&p, A, &mut syn)));
        let mut reply = tcp("54.123.170.5", 80, "10.0.1.10", 40000, b"hi");
        assert_eq!(run(&p, PORT_AWS, &mut reply), Action::Drop(DropReason::NaclIn));
        // Local replies from b cross a's ACL inbound too.
        let mut ab = tcp_syn("10.0.1.10", 40001, "10.0.2.10", 22);
        assert!(forwarded(run(&p, A, &mut ab)));
        let mut ba = tcp("10.0.2.10", 22, "10.0.1.10", 40001, b"x");
        assert_eq!(run(&p, B, &mut ba), Action::Drop(DropReason::NaclIn));
        w.add_network_acl_entry("acl-0a0a0001", e(110, false, Protocol::Tcp, Some("1024-65535")))
            .unwrap();
        let ports = ports_by_index(&w);
        p.publish(Snapshot::compile(&w, 2, &|id| ports.get(id).copied()));
        let mut reply = tcp("54.123.170.5", 80, "10.0.1.10", 40000, b"hi");
        assert!(forwarded(run(&p, PORT_AWS, &mut reply)));
        let mut ba = tcp("10.0.2.10", 22, "10.0.1.10", 40001, b"x");
        assert!(forwarded(run(&p, B, &mut ba)));
        assert_eq!(p.counters.drops(DropReason::NaclIn), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// NAT gateways and NAT instances (default lab: subnet d, 0.0.0.0/0 -> nat-0b0b0b0b in b)
// ---------------------------------------------------------------------------------------------

const D: PortId = FIRST_SUBNET_PORT + 3;

fn ports_of(pkt: &[u8]) -> (u16, u16) {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    (u16::from_be_bytes([pkt[ihl], pkt[ihl + 1]]), u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]))
}

fn icmp_echo(src: &str, dst: &str, ident: u16, reply: bool) -> Vec<u8> {
    let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64);
    let b = if reply { b.icmpv4_echo_reply(ident, 1) } else { b.icmpv4_echo_request(ident, 1) };
    let mut out = Vec::new();
    b.write(&mut out, b"ping").unwrap();
    out
}

fn icmp_checksum_valid(pkt: &[u8]) -> bool {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    crate::packet::checksum::fold(crate::packet::checksum::ones_sum(&pkt[ihl..total])) == 0xffff
        || crate::packet::checksum::fold(crate::packet::checksum::ones_sum(&pkt[ihl..total])) == 0
}

#[test]
fn private_subnet_reaches_the_internet_and_s3_with_the_nat_gateways_public_ip() {
    let p = demo();
    // To the internet: source 203.0.113.40 (the NAT gateway's Elastic IP), port kept.
    let mut out = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    let len = out.len();
    assert_eq!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, len });
    assert_eq!(src_of(&out), ip("203.0.113.40"));
    assert_eq!(ports_of(&out), (40000, 80), "a free port is kept");
    assert_eq!(out[8], 63, "the NAT gateway is a hop");
    assert_checksums_valid(&out);
    // The reply goes back to 10.0.4.10:40000.
    let mut reply = tcp("198.51.100.10", 80, "203.0.113.40", 40000, b"203.0.113.40");
    let len = reply.len();
    assert_eq!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, len });
    assert_eq!(&reply[16..20], &[10, 0, 4, 10]);
    assert_eq!(ports_of(&reply), (80, 40000));
    assert_eq!(reply[8], 63, "a hop on the way back too");
    assert_checksums_valid(&reply);
    // S3 of this region: subnet b's table has no endpoint route, so through the internet
    // gateway with the NAT's public IP (the guide's point: without an endpoint S3 sees a public
    // address), and not as the endpoint.
    let mut s3 = tcp_syn("10.0.4.10", 40001, "54.123.170.5", 80);
    assert!(matches!(run(&p, D, &mut s3), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&s3), ip("203.0.113.40"));
    assert!(
        p.origin((u32::from(ip("203.0.113.40")), 40001), (u32::from(ip("54.123.170.5")), 80))
            .is_none()
    );
    // Nothing comes in through the NAT unasked.
    let mut stray = tcp_syn("198.51.100.10", 80, "203.0.113.40", 41000);
    assert_eq!(run(&p, PORT_INTERNET, &mut stray), Action::Drop(DropReason::NoFlow));
}

#[test]
fn nat_ports_are_translated_when_taken_and_deterministic() {
    let chosen = || {
        let p = two_behind_the_nat();
        let mut first = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
        let _ = run(&p, D, &mut first);
        // The same source port from another instance, to the same destination: a new port.
        let mut second = tcp_syn("10.0.4.11", 40000, "198.51.100.10", 80);
        assert!(matches!(run(&p, D, &mut second), Action::Forward { .. }));
        assert_checksums_valid(&second);
        let port = ports_of(&second).0;
        assert_ne!(port, 40000);
        assert!(port >= 1024);
        // Its reply reaches 10.0.4.11:40000, the first one's 10.0.4.10:40000.
        let mut reply = tcp("198.51.100.10", 80, "203.0.113.40", port, b"x");
        assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
        assert_eq!((&reply[16..20], ports_of(&reply).1), (&[10, 0, 4, 11][..], 40000));
        let mut reply = tcp("198.51.100.10", 80, "203.0.113.40", 40000, b"x");
        assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
        assert_eq!(&reply[16..20], &[10, 0, 4, 10]);
        // Later packets of the flow keep the port.
        let mut again = tcp("10.0.4.11", 40000, "198.51.100.10", 80, b"more");
        let _ = run(&p, D, &mut again);
        assert_eq!(ports_of(&again).0, port);
        // A privileged source port is always translated.
        let mut ntp = udp("10.0.4.10", 123, "198.51.100.10", 123);
        let _ = run(&p, D, &mut ntp);
        assert!(ports_of(&ntp).0 >= 1024);
        assert_checksums_valid(&ntp);
        (port, ports_of(&ntp).0)
    };
    assert_eq!(chosen(), chosen(), "the same traffic gets the same ports");
}

#[test]
fn icmp_echo_through_a_nat_gateway() {
    let p = demo();
    let mut ping = icmp_echo("10.0.4.10", "198.51.100.10", 7, false);
    assert!(matches!(run(&p, D, &mut ping), Action::Forward { port: PORT_INTERNET, .. }));
    assert_eq!(src_of(&ping), ip("203.0.113.40"));
    assert!(icmp_checksum_valid(&ping));
    let mut pong = icmp_echo("198.51.100.10", "203.0.113.40", 7, true);
    assert!(matches!(run(&p, PORT_INTERNET, &mut pong), Action::Forward { port: D, .. }));
    assert_eq!(&pong[16..20], &[10, 0, 4, 10]);
    assert!(icmp_checksum_valid(&pong));
}

#[test]
fn a_ping_flow_lets_in_replies_not_requests_with_its_identifier() {
    // Connection tracking admits the responses of a tracked flow. An echo request from the
    // internet that carries the identifier of a's own ping is no response: a's default group
    // (ingress only from itself) refuses it; the echo reply passes.
    let p = demo();
    let mut ping = icmp_echo("10.0.1.10", "198.51.100.10", 4242, false);
    assert!(matches!(run(&p, A, &mut ping), Action::Forward { port: PORT_INTERNET, .. }));
    let mut request = icmp_echo("198.51.100.10", "203.0.113.10", 4242, false);
    assert_eq!(run(&p, PORT_INTERNET, &mut request), Action::Drop(DropReason::SgIngress));
    let mut reply = icmp_echo("198.51.100.10", "203.0.113.10", 4242, true);
    assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: A, .. }));
    // Through the NAT gateway: nothing comes in unasked, however it is numbered.
    let mut ping = icmp_echo("10.0.4.10", "198.51.100.10", 7, false);
    assert!(matches!(run(&p, D, &mut ping), Action::Forward { port: PORT_INTERNET, .. }));
    let ident = u16::from_be_bytes([ping[24], ping[25]]);
    let mut request = icmp_echo("198.51.100.10", "203.0.113.40", ident, false);
    assert_eq!(run(&p, PORT_INTERNET, &mut request), Action::Drop(DropReason::NoFlow));
    // Nor from S3's side through the endpoint.
    let mut ping = icmp_echo("10.0.1.10", "54.123.170.5", 99, false);
    assert!(matches!(run(&p, A, &mut ping), Action::Forward { port: PORT_AWS, .. }));
    let mut request = icmp_echo("54.123.170.5", "10.0.1.10", 99, false);
    assert_eq!(run(&p, PORT_AWS, &mut request), Action::Drop(DropReason::NoFlow));
    let mut reply = icmp_echo("54.123.170.5", "10.0.1.10", 99, true);
    assert!(matches!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: A, .. }));
}

#[test]
fn nat_gateway_in_a_subnet_with_the_endpoint_reaches_s3_privately() {
    // The NAT's own subnet decides the way out: with b's table associated with the endpoint,
    // S3 sees the NAT gateway's private address, through the endpoint.
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    world.endpoints[0].route_tables.push("rtb-0b0b0b0b".into());
    let p = pipeline_for(&world);
    let mut s3 = tcp_syn("10.0.4.10", 40000, "54.123.170.5", 80);
    assert!(matches!(run(&p, D, &mut s3), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(src_of(&s3), ip("10.0.2.40"));
    let ep = p.origin((u32::from(ip("10.0.2.40")), 40000), (u32::from(ip("54.123.170.5")), 80));
    assert_eq!(ep.unwrap().vpce_id, "vpce-11bb22cc");
    let mut reply = tcp("54.123.170.5", 80, "10.0.2.40", 40000, b"x");
    assert!(matches!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: D, .. }));
    assert_eq!(&reply[16..20], &[10, 0, 4, 10]);
}

#[test]
fn endpoint_route_beats_nat_default_route_and_a_more_specific_nat_route_beats_the_prefix_list() {
    // The guide's longest-prefix rule holds for a NAT target as for an internet gateway.
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    world.endpoints[0].route_tables.push("rtb-0d0d0d0d".into());
    world
        .add_route(
            "rtb-0d0d0d0d",
            crate::model::Route {
                destination: "54.123.165.0/24".parse().unwrap(),
                target: crate::model::Target::Nat("nat-0b0b0b0b".into()),
            },
        )
        .unwrap();
    let p = pipeline_for(&world);
    let mut s3 = tcp_syn("10.0.4.10", 40000, "54.123.170.5", 80);
    let _ = run(&p, D, &mut s3);
    assert_eq!(src_of(&s3), ip("10.0.4.10"), "the prefix-list route beats 0.0.0.0/0 -> nat");
    let mut s3 = tcp_syn("10.0.4.10", 40001, "54.123.165.7", 80);
    let _ = run(&p, D, &mut s3);
    assert_eq!(src_of(&s3), ip("203.0.113.40"), "the more specific NAT route wins");
}

#[test]
fn deleted_nat_gateway_is_a_blackhole_and_its_flows_are_reset() {
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&world);
    established(&p, D, "10.0.4.10", 40000, "198.51.100.10");
    world.delete_nat_gateway("nat-0b0b0b0b").unwrap();
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    let resets = p.reset_moved_flows();
    assert_eq!(resets.len(), 2);
    assert_eq!(resets[0].port, D);
    let (src, sport, dst, dport, _, _) = rst_fields(&resets[0].packet);
    assert_eq!((src, sport, dst, dport), (ip("198.51.100.10"), 80, ip("10.0.4.10"), 40000));
    let (src, sport, ..) = rst_fields(&resets[1].packet);
    assert_eq!((src, sport), (ip("203.0.113.40"), 40000), "the internet hears it from the NAT");
    assert!(
        p.flows
            .napt_get(&FlowKey {
                proto: 6,
                src: u32::from(ip("10.0.4.10")),
                sport: 40000,
                dst: u32::from(ip("198.51.100.10")),
                dport: 80
            })
            .is_none()
    );
    let mut pkt = tcp_syn("10.0.4.10", 40001, "198.51.100.10", 80);
    assert_eq!(run(&p, D, &mut pkt), Action::Drop(DropReason::Blackhole));
}

#[test]
fn nat_instance_needs_its_source_dest_check_off() {
    // Subnet d routes to the instance in b (a NAT instance) instead of the gateway.
    let text = DEFAULT_LAB.replace("target = \"nat-0b0b0b0b\"", "target = \"i-0b0b0b0b\"").replace(
        "public_ip = \"203.0.113.20\"\n",
        "public_ip = \"203.0.113.20\"\nsource_dest_check = false\n",
    );
    let p = pipeline_for(&parse("t.toml", &text).unwrap());
    let mut out = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    assert!(matches!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
    assert_eq!(src_of(&out), ip("203.0.113.20"), "the NAT instance's public IP");
    let mut reply = tcp("198.51.100.10", 80, "203.0.113.20", ports_of(&out).0, b"x");
    assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
    // The instance's own traffic still maps 1:1.
    let mut own = tcp_syn("198.51.100.10", 5000, "203.0.113.20", 22);
    assert!(matches!(run(&p, PORT_INTERNET, &mut own), Action::Drop(DropReason::SgIngress)));
    // With the check on, AWS drops what is routed to the instance.
    let text = DEFAULT_LAB.replace("target = \"nat-0b0b0b0b\"", "target = \"i-0b0b0b0b\"");
    let p = pipeline_for(&parse("t.toml", &text).unwrap());
    let mut out = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    assert_eq!(run(&p, D, &mut out), Action::Drop(DropReason::SourceDestCheck));
}

#[test]
// The update keeps the test building whatever fields a rule gains.
#[allow(clippy::needless_update)]
fn untracked_flows_are_cut_when_their_rule_goes() {
    // EC2 guide, security group connection tracking: a flow permitted by a rule for all
    // traffic (0.0.0.0/0) with a rule in the other direction permitting all response traffic
    // is not tracked and "is immediately interrupted if the rule that enables the flow is
    // removed or modified"; a tracked one (from one address) continues.
    use crate::model::{Direction, Peer, Ports, Protocol, SgRule};
    let run_case = |from: &str| {
        let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
        let rule = SgRule {
            protocol: Protocol::Tcp,
            ports: Ports::Range { from: 0, to: 65535 },
            peer: Peer::Cidr(from.parse().unwrap()),
            ..SgRule::allow_all()
        };
        w.create_security_group("sg-0b0b0001", "open", "open", "vpc-111bbb22").unwrap();
        w.set_security_group_rules("sg-0b0b0001", Direction::Ingress, &[rule]).unwrap();
        w.set_instance_groups("i-0b0b0b0b", &["sg-0b0b0001".to_string()]).unwrap();
        let p = pipeline_for(&w);
        let mut syn = tcp_syn("198.51.100.10", 40000, "203.0.113.20", 9000);
        assert!(matches!(run(&p, PORT_INTERNET, &mut syn), Action::Forward { port: B, .. }));
        let mut answer = tcp("10.0.2.10", 9000, "198.51.100.10", 40000, b"hi");
        assert!(matches!(run(&p, B, &mut answer), Action::Forward { port: PORT_INTERNET, .. }));
        // The rule is revoked.
        w.set_security_group_rules("sg-0b0b0001", Direction::Ingress, &[]).unwrap();
        let ports = ports_by_index(&w);
        p.publish(Snapshot::compile(&w, 2, &|id| ports.get(id).copied()));
        let mut more = tcp("198.51.100.10", 40000, "203.0.113.20", 9000, b"more");
        run(&p, PORT_INTERNET, &mut more)
    };
    assert_eq!(run_case("0.0.0.0/0"), Action::Drop(DropReason::SgIngress), "untracked: cut");
    assert!(
        matches!(run_case("198.51.100.10/32"), Action::Forward { port: B, .. }),
        "tracked: continues"
    );
}

#[test]
fn the_nat_subnets_network_acl_judges_what_crosses_the_nat() {
    // "Network ACLs [...] control traffic to and from the subnet for your NAT gateway": b's ACL
    // sees d's traffic come in, leave translated, and its replies come in and leave again.
    use crate::model::{AclEntry, Ports, Protocol, RuleAction};
    let entry = |n: u16, egress: bool, cidr: &str| AclEntry {
        rule_number: n,
        egress,
        protocol: Protocol::All,
        ports: Ports::All,
        cidr: cidr.parse().unwrap(),
        action: RuleAction::Allow,
    };
    let with_acl = |entries: &[AclEntry]| {
        let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
        w.create_network_acl("acl-0b0b0001", "vpc-111bbb22").unwrap();
        for e in entries {
            w.add_network_acl_entry("acl-0b0b0001", e.clone()).unwrap();
        }
        w.associate_network_acl("acl-0b0b0001", "b").unwrap();
        pipeline_for(&w)
    };
    let out = || tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    // A new ACL denies everything: d's packet does not get into b.
    let p = with_acl(&[]);
    assert_eq!(run(&p, D, &mut out()), Action::Drop(DropReason::NaclIn));
    // In, but not out again.
    let p = with_acl(&[entry(100, false, "0.0.0.0/0")]);
    assert_eq!(run(&p, D, &mut out()), Action::Drop(DropReason::NaclOut));
    // Out and in only from the VPC: the packet leaves, the internet's reply is refused at b.
    let p = with_acl(&[entry(100, false, "10.0.0.0/16"), entry(100, true, "0.0.0.0/0")]);
    let mut pkt = out();
    assert!(matches!(run(&p, D, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    let mut reply = tcp("198.51.100.10", 80, "203.0.113.40", ports_of(&pkt).0, b"x");
    assert_eq!(run(&p, PORT_INTERNET, &mut reply), Action::Drop(DropReason::NaclIn));
    // In from anywhere, out only to the internet (not back to d): the reply stops leaving b.
    let p = with_acl(&[entry(100, false, "0.0.0.0/0"), entry(100, true, "198.51.100.0/24")]);
    let mut pkt = out();
    assert!(matches!(run(&p, D, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    let mut reply = tcp("198.51.100.10", 80, "203.0.113.40", ports_of(&pkt).0, b"x");
    assert_eq!(run(&p, PORT_INTERNET, &mut reply), Action::Drop(DropReason::NaclOut));
    // Both ways open: through.
    let p = with_acl(&[entry(100, false, "0.0.0.0/0"), entry(100, true, "0.0.0.0/0")]);
    let mut pkt = out();
    assert!(matches!(run(&p, D, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    let mut reply = tcp("198.51.100.10", 80, "203.0.113.40", ports_of(&pkt).0, b"x");
    assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
}

#[test]
fn a_nat_instances_own_security_groups_judge_what_it_forwards() {
    // The NAT instance guide: its group must allow inbound traffic from the private subnet and
    // outbound traffic to the internet.
    use crate::model::{Direction, Peer, SgRule};
    let text = DEFAULT_LAB.replace("target = \"nat-0b0b0b0b\"", "target = \"i-0b0b0b0b\"").replace(
        "public_ip = \"203.0.113.20\"\n",
        "public_ip = \"203.0.113.20\"\nsource_dest_check = false\n",
    );
    let lab = |ingress: &[SgRule], egress: &[SgRule]| {
        let mut w = parse("t.toml", &text).unwrap();
        w.create_security_group("sg-0b0b0001", "natsg", "nat", "vpc-111bbb22").unwrap();
        w.set_security_group_rules("sg-0b0b0001", Direction::Ingress, ingress).unwrap();
        w.set_security_group_rules("sg-0b0b0001", Direction::Egress, egress).unwrap();
        w.set_instance_groups("i-0b0b0b0b", &["sg-0b0b0001".to_string()]).unwrap();
        pipeline_for(&w)
    };
    let from_d = SgRule { peer: Peer::Cidr("10.0.4.0/24".parse().unwrap()), ..SgRule::allow_all() };
    let out = || tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    let p = lab(&[], &[]);
    assert_eq!(run(&p, D, &mut out()), Action::Drop(DropReason::SgIngress));
    let p = lab(std::slice::from_ref(&from_d), &[]);
    assert_eq!(run(&p, D, &mut out()), Action::Drop(DropReason::SgEgress));
    let p = lab(&[from_d], &[SgRule::allow_all()]);
    let mut pkt = out();
    assert!(matches!(run(&p, D, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    // Its reply is part of the tracked flow.
    let mut reply = tcp("198.51.100.10", 80, "203.0.113.20", ports_of(&pkt).0, b"x");
    assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
}

proptest! {
    /// Through the NAT gateway and back, any TCP or UDP flow from subnet d: the reply reaches
    /// the instance's own address and port with valid checksums, and the same outside port is
    /// used for every packet of the flow.
    #[test]
    fn nat_round_trip_restores_the_inside_tuple(
        flows in proptest::collection::vec((1u16.., 1u16.., any::<bool>(), 0usize..2), 1..20),
        payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let p = demo();
        for (sport, dport, is_udp, to) in flows {
            let dst = ["54.123.170.5", "198.51.100.10"][to];
            let back_port = if to == 0 { PORT_AWS } else { PORT_INTERNET };
            let make = |src: &str, s: u16, d: &str, dp: u16| {
                if is_udp {
                    let b = PacketBuilder::ipv4(ip(src).octets(), ip(d).octets(), 64).udp(s, dp);
                    let mut out = Vec::new();
                    b.write(&mut out, &payload).unwrap();
                    out
                } else {
                    tcp(src, s, d, dp, &payload)
                }
            };
            if !is_udp {
                // A NAT gateway translates a TCP connection from its SYN (a later segment it
                // does not know is answered with an RST).
                let mut syn = tcp_syn("10.0.4.10", sport, dst, dport);
                let _ = run(&p, D, &mut syn);
            }
            let mut out = make("10.0.4.10", sport, dst, dport);
            let a = run(&p, D, &mut out);
            prop_assert!(matches!(a, Action::Forward { port, .. } if port == back_port), "{a:?}");
            prop_assert_eq!(src_of(&out), ip("203.0.113.40"));
            assert_checksums_valid(&out);
            let outside = ports_of(&out).0;
            prop_assert!(outside == sport || outside >= 1024);
            let mut again = make("10.0.4.10", sport, dst, dport);
            let _ = run(&p, D, &mut again);
            prop_assert_eq!(ports_of(&again).0, outside, "one outside port per flow");
            let mut reply = make(dst, dport, "203.0.113.40", outside);
            let a = run(&p, back_port, &mut reply);
            prop_assert!(matches!(a, Action::Forward { port: D, .. }), "{a:?}");
            prop_assert_eq!(&reply[16..20], &[10u8, 0, 4, 10][..]);
            prop_assert_eq!(ports_of(&reply), (dport, sport));
            assert_checksums_valid(&reply);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Header validation
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_ipv4_header_checksum_is_a_counted_drop() {
    // RFC 1812, 5.2.2 (IP Header Validation), a router's checks before it acts on a header:
    // "(2) The IP checksum must be correct." TUN offload never leaves the IP header checksum
    // to the device (only L4 checksums can be partial), so it is verified on every port.
    let p = demo();
    for (port, mut pkt) in [
        (A, udp("10.0.1.10", 5000, "54.123.170.5", 80)),
        (PORT_INTERNET, tcp("198.51.100.10", 80, "203.0.113.10", 40000, b"x")),
    ] {
        pkt[10] ^= 0x5a;
        assert_eq!(run(&p, port, &mut pkt), Action::Drop(DropReason::BadChecksum));
    }
    // With IP options (a 24-byte header): the whole header is covered.
    let mut h = etherparse::Ipv4Header::new(
        0,
        64,
        etherparse::IpNumber::UDP,
        ip("10.0.1.10").octets(),
        ip("54.123.170.5").octets(),
    )
    .unwrap();
    h.options = [1u8, 1, 1, 0].into();
    let b = PacketBuilder::ip(etherparse::IpHeaders::Ipv4(h, Default::default())).udp(5000, 80);
    let mut pkt = Vec::new();
    b.write(&mut pkt, b"hello").unwrap();
    let mut good = pkt.clone();
    assert!(matches!(run(&p, A, &mut good), Action::Forward { port: PORT_AWS, .. }));
    pkt[22] ^= 0x01; // an option byte, past the first 20
    assert_eq!(run(&p, A, &mut pkt), Action::Drop(DropReason::BadChecksum));
    assert_eq!(p.counters.drops(DropReason::BadChecksum), 3);
    assert_eq!(p.counters.drops(DropReason::Malformed), 0);
}

#[test]
fn martian_destinations_are_dropped_before_routing() {
    // From the VPC guide's subnet sizing: "Network broadcast address. We do not support
    // broadcast in a VPC, therefore we reserve this address." Nor does a VPC carry multicast;
    // loopback, "this network", the reserved class E and link-local (AWS's instance metadata
    // service, which the lab does not simulate) are no destinations either. Subnet a's default
    // route goes to the internet gateway and d's to the NAT gateway: neither may take them.
    let p = demo();
    let martians = [
        "255.255.255.255",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "169.254.169.254",
    ];
    for dst in martians {
        for (port, src) in [(A, "10.0.1.10"), (D, "10.0.4.10")] {
            let mut pkt = udp(src, 5000, dst, 5001);
            assert_eq!(run(&p, port, &mut pkt), Action::Drop(DropReason::Martian), "{dst}");
        }
    }
    assert_eq!(p.counters.drops(DropReason::Martian), 2 * martians.len() as u64);
    assert!(p.flows.is_empty(), "no NAT mapping was made for them");
    // Their neighbours are ordinary addresses.
    for dst in ["223.255.255.254", "126.255.255.254", "169.253.0.1", "1.0.0.1"] {
        let mut pkt = udp("10.0.1.10", 5000, dst, 5001);
        assert!(matches!(run(&p, A, &mut pkt), Action::Forward { port: PORT_INTERNET, .. }));
    }
}

// ---------------------------------------------------------------------------------------------
// TCP flow lifetime
// ---------------------------------------------------------------------------------------------

fn tcp_flags_pkt(src: &str, sport: u16, dst: &str, dport: u16, fin: bool, rst: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64)
        .tcp(sport, dport, 7000, 65535)
        .ack(8000);
    if fin {
        b = b.fin();
    }
    if rst {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

#[test]
fn a_half_closed_connection_keeps_the_established_timeout() {
    // RFC 5382 (NAT behavioral requirements for TCP), REQ-5: the "established connection
    // idle-timeout" applies until the connection is in its closing phase, which RFC 7857's
    // state machine (from RFC 6146) enters only once a FIN has been seen in each direction
    // (or an RST). After one FIN the other side may keep sending for as long as it likes.
    let p = demo();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let send = |t, port, mut pkt: Vec<u8>| p.process(t, port, &mut pkt, Meta::PLAIN);
    // b → S3 through the internet gateway: the instance closes its side first.
    assert!(matches!(
        send(at(0), B, tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80)),
        Action::Forward { .. }
    ));
    let fin_out = tcp_flags_pkt("10.0.2.10", 40000, "54.123.170.5", 80, true, false);
    assert!(matches!(send(at(1), B, fin_out), Action::Forward { port: PORT_AWS, .. }));
    assert_eq!(p.handle_timeout(at(60)), 0, "half-closed, not closed: 350 s idle");
    // S3 still sends its answer a minute later, and then closes too.
    let data = tcp("54.123.170.5", 80, "203.0.113.20", 40000, b"HTTP/1.1 200 OK\r\n");
    assert!(matches!(send(at(61), PORT_AWS, data), Action::Forward { port: B, .. }));
    assert_eq!(p.handle_timeout(at(61 + 349)), 0);
    let fin_in = tcp_flags_pkt("54.123.170.5", 80, "203.0.113.20", 40000, true, false);
    assert!(matches!(send(at(400), PORT_AWS, fin_in), Action::Forward { port: B, .. }));
    assert_eq!(p.handle_timeout(at(409)), 0, "closed in both directions: 10 s");
    assert_eq!(p.handle_timeout(at(411)), 1);
    // An RST closes at once, from either side.
    for (i, (port, rst)) in [
        (B, tcp_flags_pkt("10.0.2.10", 40001, "54.123.170.5", 80, false, true)),
        (PORT_AWS, tcp_flags_pkt("54.123.170.5", 80, "203.0.113.20", 40001, false, true)),
    ]
    .into_iter()
    .enumerate()
    {
        let t = 1000 + 100 * i as u64;
        let _ = send(at(t), B, tcp_syn("10.0.2.10", 40001, "54.123.170.5", 80));
        assert!(matches!(send(at(t), port, rst), Action::Forward { .. }));
        assert_eq!(p.handle_timeout(at(t + 11)), 1, "rst from port {port}");
    }
    // A port reused within the short timeout opens a new connection: established again.
    let fin_out = tcp_flags_pkt("10.0.2.10", 40002, "54.123.170.5", 80, true, false);
    let fin_in = tcp_flags_pkt("54.123.170.5", 80, "203.0.113.20", 40002, true, false);
    let _ = send(at(2000), B, tcp_syn("10.0.2.10", 40002, "54.123.170.5", 80));
    let _ = send(at(2000), B, fin_out);
    let _ = send(at(2000), PORT_AWS, fin_in);
    let _ = send(at(2005), B, tcp_syn("10.0.2.10", 40002, "54.123.170.5", 80));
    assert_eq!(p.handle_timeout(at(2016)), 0);
    let syn_ack = tcp("54.123.170.5", 80, "203.0.113.20", 40002, b"");
    assert!(matches!(send(at(2016), PORT_AWS, syn_ack), Action::Forward { .. }));
    // Re-established through the internet gateway: the security groups' 5-day timeout.
    assert_eq!(p.handle_timeout(at(2016 + 351)), 0);
    assert_eq!(p.handle_timeout(at(2016 + 432_001)), 1);
}

#[test]
fn an_idle_tcp_connection_is_kept_5_days_except_through_a_nat() {
    // Security groups' connection tracking: established TCP 432,000 s by default (EC2's
    // ConnectionTrackingSpecification); a NAT gateway: "If a connection that's using a NAT
    // gateway is idle for 350 seconds or more, the connection times out."
    let p = demo();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let send = |t, port, mut pkt: Vec<u8>| p.process(t, port, &mut pkt, Meta::PLAIN);
    // a → S3 through the endpoint, b → S3 through the internet gateway, d → the internet
    // through the NAT gateway.
    let _ = send(at(0), A, tcp_syn("10.0.1.10", 40000, "54.123.170.5", 80));
    let _ = send(at(0), B, tcp_syn("10.0.2.10", 40000, "54.123.170.5", 80));
    let d = FIRST_SUBNET_PORT + 3;
    assert!(matches!(
        send(at(0), d, tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80)),
        Action::Forward { port: PORT_INTERNET, .. }
    ));
    // Each answered (a connection nobody answers is forgotten after 120 s).
    for (port, ack) in [
        (PORT_AWS, tcp("54.123.170.5", 80, "10.0.1.10", 40000, b"")),
        (PORT_AWS, tcp("54.123.170.5", 80, "203.0.113.20", 40000, b"")),
        (PORT_INTERNET, tcp("198.51.100.10", 80, "203.0.113.40", 40000, b"")),
    ] {
        assert!(matches!(send(at(0), port, ack), Action::Forward { .. }));
    }
    assert_eq!(p.handle_timeout(at(349)), 0);
    assert_eq!(p.handle_timeout(at(351)), 1, "the NAT gateway's flow");
    // An hour later S3's answers still reach a and b.
    let to_a = tcp("54.123.170.5", 80, "10.0.1.10", 40000, b"late");
    assert!(matches!(send(at(3600), PORT_AWS, to_a), Action::Forward { port: A, .. }));
    let to_b = tcp("54.123.170.5", 80, "203.0.113.20", 40000, b"late");
    assert!(matches!(send(at(3600), PORT_AWS, to_b), Action::Forward { port: B, .. }));
    assert_eq!(p.handle_timeout(at(3600 + 432_001)), 2);
}

#[test]
fn a_half_closed_connection_is_reset_when_its_path_moves() {
    // The open direction still carries data: a route change must cut it like any other.
    let mut world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&world);
    established(&p, B, "10.0.2.10", 40000, "54.123.170.5");
    let mut fin = tcp_flags_pkt("10.0.2.10", 40000, "54.123.170.5", 80, true, false);
    let _ = run(&p, B, &mut fin);
    world.endpoints[0].route_tables.push("rtb-0b0b0b0b".into());
    let ports = ports_by_index(&world);
    p.publish(Snapshot::compile(&world, 2, &|id| ports.get(id).copied()));
    assert_eq!(p.reset_moved_flows().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// ICMP errors about a flow (RFC 5508)
// ---------------------------------------------------------------------------------------------

mod icmp_errors {
    //! RFC 5508, REQ-4: "If a NAT device receives an ICMP Error packet from an external realm,
    //! and the NAT device does not have an active mapping for the embedded payload, the NAT
    //! SHOULD silently drop the ICMP Error packet. If the NAT has active mapping for the
    //! embedded payload, then the NAT MUST do the following prior to forwarding the packet
    //! [...]: a) Revert the IP and transport headers of the embedded IP packet to their
    //! original form, using the matching mapping; and b) Leave the ICMP Error type and code
    //! unchanged; and c) Modify the destination IP address of the outer IP header to be same as
    //! the source IP address of the embedded packet after translation."

    use super::*;
    use crate::packet::checksum::{fold, ones_sum};
    use etherparse::Icmpv4Type;
    use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};

    const PORT_UNREACHABLE: Icmpv4Type =
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    const FRAG_NEEDED: Icmpv4Type =
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1280,
        });
    const TTL_EXCEEDED: Icmpv4Type =
        Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit);

    /// An ICMP error quoting the first `quote` bytes of `offending` (a router quotes its header
    /// and 8 bytes, Linux as much as fits in 576 bytes).
    fn icmp_error(src: &str, dst: &str, t: Icmpv4Type, offending: &[u8], quote: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).icmpv4(t);
        let mut out = Vec::new();
        b.write(&mut out, &offending[..quote.min(offending.len())]).unwrap();
        out
    }

    /// The quoted datagram of an ICMP error with a 20-byte outer header.
    fn quote(pkt: &[u8]) -> &[u8] {
        &pkt[28..]
    }

    fn icmp_ok(pkt: &[u8]) -> bool {
        fold(ones_sum(&pkt[20..])) == 0xffff
    }

    fn header_ok(h: &[u8]) -> bool {
        fold(ones_sum(&h[..usize::from(h[0] & 0x0f) * 4])) == 0xffff
    }

    /// Everything an error must be after translation back to `to`.
    fn check(err: &[u8], to: [u8; 4], sent: &[u8]) {
        assert_eq!(&err[16..20], &to, "outer destination");
        assert!(header_ok(err), "outer ip checksum");
        assert!(icmp_ok(err), "icmp checksum");
        let q = quote(err);
        assert!(header_ok(q), "quoted ip checksum");
        assert_eq!(&q[12..16], &to, "quoted source");
        assert_eq!(&q[16..20], &sent[16..20], "quoted destination");
        // The quoted transport header (and data) is the instance's own, checksum included;
        // only its IP header's TTL and checksum differ (the hops it crossed).
        assert_eq!(&q[20..], &sent[20..20 + q.len() - 20]);
    }

    #[test]
    fn port_unreachable_through_the_internet_gateway() {
        let p = demo();
        let sent = udp("10.0.2.10", 5353, "198.51.100.10", 9999);
        let mut out = sent.clone();
        assert!(matches!(run(&p, B, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
        let mut err = icmp_error("198.51.100.10", "203.0.113.20", PORT_UNREACHABLE, &out, 576);
        let len = err.len();
        // No ingress rule of b's default group allows ICMP: the error is about a tracked flow.
        assert_eq!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: B, len });
        check(&err, [10, 0, 2, 10], &sent);
        assert_eq!(err[8], 64, "the internet gateway is not a hop");
        assert_eq!(err[20], 3, "type unchanged");
        assert_eq!(err[21], 3, "code unchanged");
    }

    #[test]
    fn fragmentation_needed_through_the_internet_gateway_quoting_8_bytes() {
        // Path MTU discovery. From the EC2 guide: "If connections are automatically tracked
        // or if your security group rules allow inbound ICMP traffic, you can receive PMTUD
        // responses."
        let p = demo();
        let sent = tcp("10.0.1.10", 40000, "198.51.100.10", 80, &[7u8; 1400]);
        let mut out = sent.clone();
        assert!(matches!(run(&p, A, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
        let mut err = icmp_error("198.51.100.1", "203.0.113.10", FRAG_NEEDED, &out, 28);
        assert!(matches!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: A, .. }));
        check(&err, [10, 0, 1, 10], &sent);
        // The same through an endpoint-routed S3 address from subnet b's IGW, quoting the
        // whole TCP header (its checksum too).
        let sent = tcp("10.0.2.10", 40001, "54.123.170.5", 80, &[7u8; 1400]);
        let mut out = sent.clone();
        assert!(matches!(run(&p, B, &mut out), Action::Forward { port: PORT_AWS, .. }));
        let mut err = icmp_error("54.123.170.5", "203.0.113.20", FRAG_NEEDED, &out, 60);
        assert!(matches!(run(&p, PORT_AWS, &mut err), Action::Forward { port: B, .. }));
        check(&err, [10, 0, 2, 10], &sent);
    }

    #[test]
    fn errors_through_the_nat_gateway_restore_the_address_and_port() {
        let p = demo();
        // A privileged source port: the NAT gateway translates it.
        let sent = udp("10.0.4.10", 123, "198.51.100.10", 123);
        let mut out = sent.clone();
        assert!(matches!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
        assert_ne!(ports_of(&out).0, 123);
        let mut err = icmp_error("198.51.100.10", "203.0.113.40", PORT_UNREACHABLE, &out, 576);
        assert!(matches!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: D, .. }));
        check(&err, [10, 0, 4, 10], &sent);
        assert_eq!(err[8], 63, "the NAT gateway is a hop");
        assert_eq!(ports_of(quote(&err)), (123, 123));
        // Time exceeded about a ping (traceroute), from a router on the way.
        let sent = icmp_echo("10.0.4.10", "198.51.100.10", 7, false);
        let mut out = sent.clone();
        assert!(matches!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
        let mut err = icmp_error("198.51.100.1", "203.0.113.40", TTL_EXCEEDED, &out, 28);
        assert!(matches!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: D, .. }));
        check(&err, [10, 0, 4, 10], &sent);
    }

    /// Everything an error an instance sends must be after translation out from `from`: it
    /// quotes `received` as the outside host sent it.
    fn check_out(err: &[u8], from: [u8; 4], received: &[u8]) {
        assert_eq!(&err[12..16], &from, "outer source");
        assert!(header_ok(err), "outer ip checksum");
        assert!(icmp_ok(err), "icmp checksum");
        let q = quote(err);
        assert!(header_ok(q), "quoted ip checksum");
        assert_eq!(&q[12..20], &received[12..20], "quoted addresses");
        assert_eq!(&q[20..], &received[20..20 + q.len() - 20], "quoted transport header");
    }

    #[test]
    fn an_instances_port_unreachable_goes_out_translated() {
        // RFC 5508 REQ-3: the NAT "MUST translate the ICMP Error packet" for errors from the
        // inside too. a's answer arrives for a socket it has closed.
        let p = demo();
        let mut out = udp("10.0.1.10", 5353, "198.51.100.10", 9999);
        assert!(matches!(run(&p, A, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
        let received = udp("198.51.100.10", 9999, "203.0.113.10", 5353);
        let mut reply = received.clone();
        assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: A, .. }));
        let mut err = icmp_error("10.0.1.10", "198.51.100.10", PORT_UNREACHABLE, &reply, 576);
        assert!(matches!(run(&p, A, &mut err), Action::Forward { port: PORT_INTERNET, .. }));
        check_out(&err, [203, 0, 113, 10], &received);
        assert_eq!(err[8], 64, "the internet gateway is not a hop");
        // Through the NAT gateway: its address and the port it chose, one hop.
        let mut out = udp("10.0.4.10", 123, "198.51.100.10", 123);
        assert!(matches!(run(&p, D, &mut out), Action::Forward { port: PORT_INTERNET, .. }));
        let nat_port = ports_of(&out).0;
        let received = udp("198.51.100.10", 123, "203.0.113.40", nat_port);
        let mut reply = received.clone();
        assert!(matches!(run(&p, PORT_INTERNET, &mut reply), Action::Forward { port: D, .. }));
        assert_eq!(ports_of(&reply).1, 123);
        let mut err = icmp_error("10.0.4.10", "198.51.100.10", PORT_UNREACHABLE, &reply, 28);
        assert!(matches!(run(&p, D, &mut err), Action::Forward { port: PORT_INTERNET, .. }));
        check_out(&err, [203, 0, 113, 40], &received);
        assert_eq!(err[8], 63, "the NAT gateway is a hop");
        // An error about a datagram that came by no translated flow goes the ordinary way,
        // untranslated (here: out of the internet gateway with a's public IP as source).
        let stray = udp("198.51.100.10", 1, "10.0.1.10", 2);
        let mut err = icmp_error("10.0.1.10", "198.51.100.10", PORT_UNREACHABLE, &stray, 28);
        assert!(matches!(run(&p, A, &mut err), Action::Forward { port: PORT_INTERNET, .. }));
        assert_eq!(&quote(&err)[16..20], &[10, 0, 1, 10]);
    }

    #[test]
    fn an_echo_identifier_the_nat_translated_is_restored() {
        let text = DEFAULT_LAB.replace(
            "id = \"i-0d0d0d0d\"\nsubnet = \"d\"\nprivate_ip = \"10.0.4.10\"\n",
            "id = \"i-0d0d0d0d\"\nsubnet = \"d\"\nprivate_ip = \"10.0.4.10\"\n\n[[instance]]\n\
             id = \"i-0d0d0d0e\"\nsubnet = \"d\"\nprivate_ip = \"10.0.4.11\"\n",
        );
        let p = pipeline_for(&parse("t.toml", &text).unwrap());
        let mut first = icmp_echo("10.0.4.10", "198.51.100.10", 7, false);
        let _ = run(&p, D, &mut first);
        let sent = icmp_echo("10.0.4.11", "198.51.100.10", 7, false);
        let mut out = sent.clone();
        assert!(matches!(run(&p, D, &mut out), Action::Forward { .. }));
        assert_ne!(&out[24..26], &[0, 7], "the second ping's identifier is translated");
        let mut err = icmp_error("198.51.100.1", "203.0.113.40", TTL_EXCEEDED, &out, 576);
        assert!(matches!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: D, .. }));
        check(&err, [10, 0, 4, 11], &sent);
    }

    #[test]
    fn fragmentation_needed_through_the_endpoint_finds_its_flow() {
        let p = demo();
        let sent = tcp("10.0.1.10", 40000, "54.123.170.5", 80, &[7u8; 1400]);
        let mut out = sent.clone();
        assert!(matches!(run(&p, A, &mut out), Action::Forward { port: PORT_AWS, .. }));
        let mut err = icmp_error("54.123.170.5", "10.0.1.10", FRAG_NEEDED, &out, 576);
        let before = err.clone();
        let len = err.len();
        assert_eq!(run(&p, PORT_AWS, &mut err), Action::Forward { port: A, len });
        check(&err, [10, 0, 1, 10], &sent);
        assert_eq!(err, before, "nothing to translate, and the endpoint is not a hop");
        // Only from where the flow went: the aws namespace.
        let mut err = icmp_error("54.123.170.5", "10.0.1.10", FRAG_NEEDED, &out, 576);
        assert_eq!(run(&p, PORT_INTERNET, &mut err), Action::Drop(DropReason::NoFlow));
        // REQ-4: no mapping, silently dropped.
        let other = tcp("10.0.1.10", 40999, "54.123.170.5", 80, b"x");
        let mut err = icmp_error("54.123.170.5", "10.0.1.10", FRAG_NEEDED, &other, 576);
        assert_eq!(run(&p, PORT_AWS, &mut err), Action::Drop(DropReason::NoFlow));
    }

    #[test]
    fn an_error_does_not_refresh_its_flow() {
        // RFC 5508, REQ-6: "While processing an ICMP Error packet pertaining to an ICMP Query
        // or Query response message, a NAT device MUST NOT refresh or delete the NAT Session
        // that pertains to the embedded payload within the ICMP Error packet."
        let p = demo();
        let t0 = Instant::now();
        let mut out = udp("10.0.2.10", 5353, "198.51.100.10", 9999);
        let _ = p.process(t0, B, &mut out, Meta::PLAIN);
        let mut err = icmp_error("198.51.100.10", "203.0.113.20", PORT_UNREACHABLE, &out, 576);
        let a = p.process(t0 + Duration::from_secs(50), PORT_INTERNET, &mut err, Meta::PLAIN);
        assert!(matches!(a, Action::Forward { port: B, .. }));
        assert_eq!(p.flows.len(), 1, "nor deleted (RFC 5382 REQ-10)");
        assert_eq!(p.handle_timeout(t0 + Duration::from_secs(61)), 1, "60 s from the datagram");
    }

    #[test]
    fn bad_checksums_and_network_acls_drop_errors() {
        // RFC 5508, REQ-3: "When an ICMP Error packet is received, if the ICMP checksum fails
        // to validate, the NAT SHOULD silently drop the ICMP Error packet. [...] a) If the IP
        // checksum of the embedded packet fails to validate, the NAT SHOULD silently drop the
        // Error packet".
        let p = demo();
        let mut out = udp("10.0.2.10", 5353, "198.51.100.10", 9999);
        let _ = run(&p, B, &mut out);
        let good = icmp_error("198.51.100.10", "203.0.113.20", PORT_UNREACHABLE, &out, 576);
        let mut bad = good.clone();
        bad[22] ^= 1; // the ICMP checksum
        assert_eq!(run(&p, PORT_INTERNET, &mut bad), Action::Drop(DropReason::BadChecksum));
        let mut quoted = out.clone();
        quoted[10] ^= 1; // the quoted IP header's checksum
        let mut bad = icmp_error("198.51.100.10", "203.0.113.20", PORT_UNREACHABLE, &quoted, 576);
        assert_eq!(run(&p, PORT_INTERNET, &mut bad), Action::Drop(DropReason::BadChecksum));
        let mut err = good.clone();
        assert!(matches!(run(&p, PORT_INTERNET, &mut err), Action::Forward { port: B, .. }));
        // The EC2 guide: "ICMP traffic can be blocked even if the traffic is allowed at the
        // security group level, such as if you have a network access control list entry that
        // denies ICMP traffic to the subnet."
        use crate::model::{AclEntry, Ports, Protocol, RuleAction};
        let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
        w.create_network_acl("acl-0b0b0001", "vpc-111bbb22").unwrap();
        for egress in [true, false] {
            let e = AclEntry {
                rule_number: 100,
                egress,
                protocol: Protocol::Udp,
                ports: Ports::parse_lab(Protocol::Udp, Some("all")).unwrap(),
                cidr: "0.0.0.0/0".parse().unwrap(),
                action: RuleAction::Allow,
            };
            w.add_network_acl_entry("acl-0b0b0001", e).unwrap();
        }
        w.associate_network_acl("acl-0b0b0001", "b").unwrap();
        let p = pipeline_for(&w);
        let mut out = udp("10.0.2.10", 5353, "198.51.100.10", 9999);
        assert!(matches!(run(&p, B, &mut out), Action::Forward { .. }));
        let mut err = icmp_error("198.51.100.10", "203.0.113.20", PORT_UNREACHABLE, &out, 576);
        assert_eq!(run(&p, PORT_INTERNET, &mut err), Action::Drop(DropReason::NaclIn));
    }
}

// ---------------------------------------------------------------------------------------------
// IP fragments
// ---------------------------------------------------------------------------------------------

mod fragments {
    //! A datagram larger than the path MTU leaves its sender in fragments; only the first
    //! carries the ports. The first fragment is decided like any packet; the later ones (same
    //! source, destination, protocol and IP identification, RFC 791's reassembly key) follow
    //! its decision. From the VPC guide's comparison of NAT gateways and NAT instances: a NAT
    //! gateway "Supports forwarding of IP fragmented packets for the UDP protocol. Does not
    //! support fragmentation for the TCP and ICMP protocols. Fragmented packets for these
    //! protocols will get dropped."

    use super::*;
    use etherparse::{IpFragOffset, Ipv4Header};

    /// Splits an IPv4 packet (20-byte header) into fragments of `size` payload bytes (a
    /// multiple of 8) with identification `id`, each with its own valid header checksum.
    fn split(pkt: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
        let (h, _) = Ipv4Header::from_slice(pkt).unwrap();
        let payload = &pkt[20..];
        let n = payload.len().div_ceil(size);
        (0..n)
            .map(|i| {
                let chunk = &payload[i * size..payload.len().min((i + 1) * size)];
                let mut f = h.clone();
                f.identification = id;
                f.dont_fragment = false;
                f.more_fragments = i + 1 < n;
                f.fragment_offset = IpFragOffset::try_new((i * size / 8) as u16).unwrap();
                f.set_payload_len(chunk.len()).unwrap();
                let mut out = Vec::new();
                f.write(&mut out).unwrap();
                out.extend_from_slice(chunk);
                out
            })
            .collect()
    }

    fn udp_big(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, &[0x5a; 3000]).unwrap();
        out
    }

    fn ping_big(src: &str, dst: &str) -> Vec<u8> {
        let b =
            PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).icmpv4_echo_request(9, 1);
        let mut out = Vec::new();
        b.write(&mut out, &[0x5a; 3000]).unwrap();
        out
    }

    fn header_ok(h: &[u8]) -> bool {
        use crate::packet::checksum::{fold, ones_sum};
        fold(ones_sum(&h[..20])) == 0xffff
    }

    /// Sends every fragment from `port`; returns the actions and the rewritten fragments.
    fn send_all(p: &Pipeline, port: PortId, frags: Vec<Vec<u8>>) -> Vec<(Action, Vec<u8>)> {
        frags
            .into_iter()
            .map(|mut f| {
                let a = run(p, port, &mut f);
                (a, f)
            })
            .collect()
    }

    #[test]
    fn later_fragments_follow_the_first_through_the_endpoint_and_the_gateway() {
        let p = demo();
        // Through the endpoint: unchanged, TTL included (not a hop).
        let frags = split(&udp_big("10.0.1.10", 5000, "54.123.170.5", 5001), 1480, 0x1234);
        assert_eq!(frags.len(), 3);
        for ((a, f), sent) in send_all(&p, A, frags.clone()).into_iter().zip(frags) {
            assert_eq!(a, Action::Forward { port: PORT_AWS, len: f.len() });
            assert_eq!(f, sent);
        }
        // Through the internet gateway: every fragment gets the public IP, and keeps its TTL.
        let frags = split(&udp_big("10.0.2.10", 5000, "198.51.100.10", 5001), 1480, 0x1234);
        for (a, f) in send_all(&p, B, frags) {
            assert!(matches!(a, Action::Forward { port: PORT_INTERNET, .. }), "{a:?}");
            assert_eq!((src_of(&f), f[8]), (ip("203.0.113.20"), 64));
            assert!(header_ok(&f));
        }
        // The answer, fragmented too, comes back to the private address.
        let frags = split(&udp_big("198.51.100.10", 5001, "203.0.113.20", 5000), 1480, 0x99);
        for (a, f) in send_all(&p, PORT_INTERNET, frags) {
            assert!(matches!(a, Action::Forward { port: B, .. }), "{a:?}");
            assert_eq!(&f[16..20], &[10, 0, 2, 10]);
            assert!(header_ok(&f));
        }
        // A 3000-byte ping from a through the gateway, and its reply.
        let frags = split(&ping_big("10.0.1.10", "198.51.100.10"), 1480, 7);
        for (a, _) in send_all(&p, A, frags) {
            assert!(matches!(a, Action::Forward { port: PORT_INTERNET, .. }), "{a:?}");
        }
        assert_eq!(p.counters.drops(DropReason::Fragment), 0);
    }

    #[test]
    fn the_nat_gateway_forwards_udp_fragments_only() {
        let p = demo();
        let frags = split(&udp_big("10.0.4.10", 123, "198.51.100.10", 123), 1480, 0x4242);
        let out = send_all(&p, D, frags);
        let nat_port = ports_of(&out[0].1).0;
        assert_ne!(nat_port, 123, "the first fragment's port is translated");
        for (a, f) in &out {
            assert!(matches!(a, Action::Forward { port: PORT_INTERNET, .. }), "{a:?}");
            // The NAT gateway is a hop: every fragment's TTL is decremented, once.
            assert_eq!((src_of(f), f[8]), (ip("203.0.113.40"), 63));
            assert!(header_ok(f));
        }
        assert_eq!(&out[1].1[20..], &udp_big("10.0.4.10", 123, "198.51.100.10", 123)[1500..2980]);
        // The answer's fragments come back through it, one hop down too.
        let frags = split(&udp_big("198.51.100.10", 123, "203.0.113.40", nat_port), 1480, 0x4243);
        for (a, f) in send_all(&p, PORT_INTERNET, frags) {
            assert!(matches!(a, Action::Forward { port: D, .. }), "{a:?}");
            assert_eq!((&f[16..20], f[8]), (&[10, 0, 4, 10][..], 63));
            assert!(header_ok(&f));
        }
        // TCP and ICMP fragments are dropped by a NAT gateway.
        let frags = split(&ping_big("10.0.4.10", "198.51.100.10"), 1480, 8);
        for (a, _) in send_all(&p, D, frags) {
            assert_eq!(a, Action::Drop(DropReason::Fragment));
        }
        let big = tcp("10.0.4.10", 40000, "198.51.100.10", 80, &[1u8; 3000]);
        let (a, _) = send_all(&p, D, split(&big, 1480, 9)).remove(0);
        assert_eq!(a, Action::Drop(DropReason::Fragment));
    }

    #[test]
    fn a_fragment_without_its_first_is_a_counted_drop_and_decisions_expire() {
        let p = demo();
        let t0 = Instant::now();
        let mut frags = split(&udp_big("10.0.1.10", 5000, "54.123.170.5", 5001), 1480, 0x77);
        // The last one first: nothing to follow yet.
        let mut last = frags.pop().unwrap();
        assert_eq!(p.process(t0, A, &mut last, Meta::PLAIN), Action::Drop(DropReason::Fragment));
        let mut first = frags.remove(0);
        assert!(matches!(p.process(t0, A, &mut first, Meta::PLAIN), Action::Forward { .. }));
        // A minute later the decision is gone.
        let _ = p.handle_timeout(t0 + Duration::from_secs(60));
        let mut middle = frags.remove(0);
        let a = p.process(t0 + Duration::from_secs(60), A, &mut middle, Meta::PLAIN);
        assert_eq!(a, Action::Drop(DropReason::Fragment));
        // A refused first fragment leaves nothing for the others to follow.
        let mut frags = split(&udp_big("10.0.3.10", 5000, "198.51.100.10", 5001), 1480, 0x78);
        assert_eq!(run(&p, C, &mut frags[0]), Action::Drop(DropReason::NoRoute));
        assert_eq!(run(&p, C, &mut frags[1]), Action::Drop(DropReason::Fragment));
        assert_eq!(p.counters.drops(DropReason::Fragment), 3);
    }
}

#[test]
fn a_nat_gateway_resets_a_connection_it_no_longer_knows() {
    // AWS: "When a connection times out, a NAT gateway returns an RST packet to any resources
    // behind the NAT gateway that attempt to continue the connection (it does not send a FIN
    // packet)." RFC 793: the reset takes its sequence number from the segment's ACK field.
    let p = demo();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let d = FIRST_SUBNET_PORT + 3;
    let mut syn = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    assert!(matches!(
        p.process(at(0), d, &mut syn, Meta::PLAIN),
        Action::Forward { port: PORT_INTERNET, .. }
    ));
    // While the connection is known, its segments pass.
    let mut data = tcp("10.0.4.10", 40000, "198.51.100.10", 80, b"GET / HTTP/1.1\r\n");
    assert!(matches!(
        p.process(at(10), d, &mut data, Meta::PLAIN),
        Action::Forward { port: PORT_INTERNET, .. }
    ));
    assert_eq!(p.handle_timeout(at(10 + 351)), 1);
    let before = p.counters.drops(DropReason::NatReset);
    let mut late = tcp("10.0.4.10", 40000, "198.51.100.10", 80, b"more");
    let Action::Reply { port, len } = p.process(at(400), d, &mut late, Meta::PLAIN) else {
        panic!("no RST for a timed-out connection");
    };
    assert_eq!((port, len), (d, 40));
    let rst = &late[..len];
    assert_checksums_valid(rst);
    let s = SlicedPacket::from_ip(rst).unwrap();
    let Some(TransportSlice::Tcp(t)) = s.transport else { panic!("not TCP") };
    assert_eq!(
        (src_of(rst), t.source_port(), t.destination_port()),
        (ip("198.51.100.10"), 80, 40000)
    );
    assert_eq!(&rst[16..20], &ip("10.0.4.10").octets());
    assert!(t.rst() && !t.syn() && !t.fin());
    assert_eq!(t.sequence_number(), 77, "the segment's ACK");
    assert_eq!(p.counters.drops(DropReason::NatReset), before + 1);
    assert_eq!(p.handle_timeout(at(401)), 0, "nothing new tracked");
    // A new connection (SYN) is translated as ever; an RST from the instance is just dropped.
    let mut syn = tcp_syn("10.0.4.10", 40001, "198.51.100.10", 80);
    assert!(matches!(p.process(at(402), d, &mut syn, Meta::PLAIN), Action::Forward { .. }));
    let mut rst_in = tcp_flags_pkt("10.0.4.10", 40002, "198.51.100.10", 80, false, true);
    assert!(!matches!(p.process(at(402), d, &mut rst_in, Meta::PLAIN), Action::Reply { .. }));
}

#[test]
fn identical_tuples_from_two_vpcs_are_a_counted_collision() {
    // The guide: VPC CIDR blocks of different VPCs "can be overlapping or identical". A second
    // VPC with the same CIDR, an endpoint and an instance at a's address: while a's flow to S3
    // is open, the same tuple from the other VPC cannot share the one aws namespace.
    let text = format!(
        "{DEFAULT_LAB}\n[[vpc]]\nid = \"vpc-222ccc33\"\ncidr = \"10.0.0.0/16\"\nenable_dns_support = true\n\
         [[route_table]]\nid = \"rtb-0e0e0e0e\"\nvpc = \"vpc-222ccc33\"\n\
         [[subnet]]\nname = \"e\"\nid = \"subnet-0e0e0e0e\"\nvpc = \"vpc-222ccc33\"\ncidr = \"10.0.1.0/24\"\nroute_table = \"rtb-0e0e0e0e\"\n\
         [[endpoint]]\nid = \"vpce-22cc33dd\"\nvpc = \"vpc-222ccc33\"\nservice = \"com.amazonaws.us-east-1.s3\"\nroute_tables = [\"rtb-0e0e0e0e\"]\n\
         [[instance]]\nid = \"i-0e0e0e0e\"\nsubnet = \"e\"\nprivate_ip = \"10.0.1.10\"\n"
    );
    let world = parse("t.toml", &text).unwrap();
    let p = pipeline_for(&world);
    let e = ports_by_index(&world)["subnet-0e0e0e0e"];
    let mut first = tcp("10.0.1.10", 41000, "54.123.170.5", 80, b"");
    assert!(matches!(run(&p, A, &mut first), Action::Forward { port: PORT_AWS, .. }));
    let mut same = tcp("10.0.1.10", 41000, "54.123.170.5", 80, b"");
    assert_eq!(run(&p, e, &mut same), Action::Drop(DropReason::FlowCollision));
    assert_eq!(p.counters.drops(DropReason::FlowCollision), 1);
    // The reply still reaches a, whose flow is untouched.
    let mut reply = tcp("54.123.170.5", 80, "10.0.1.10", 41000, b"");
    assert!(matches!(run(&p, PORT_AWS, &mut reply), Action::Forward { port: A, .. }));
    // Another port is no collision.
    let mut other = tcp("10.0.1.10", 41001, "54.123.170.5", 80, b"");
    assert!(matches!(run(&p, e, &mut other), Action::Forward { port: PORT_AWS, .. }));
}

mod mtu;
mod tracking;

/// A reader still on the old snapshot when it is replaced: the publisher waits for it to leave
/// and frees the snapshot itself, so the destructor does not run on a data-plane thread.
#[test]
fn the_publisher_frees_a_retired_snapshot_once_its_readers_leave() {
    let old = Arc::new(vec![1u64; 1000]);
    let weak = Arc::downgrade(&old);
    let held = old.clone();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        // Not the last reference: the publisher still holds one.
        let last = Arc::strong_count(&held) == 1;
        drop(held);
        last
    });
    retire(old, Duration::from_secs(60));
    // Freed before `retire` returned, by this thread.
    assert!(weak.upgrade().is_none());
    assert!(!reader.join().unwrap(), "the reader dropped the last reference");
}

/// A reader that stays past the wait keeps the snapshot, and frees it when it leaves: the
/// publisher does not wait for it longer.
#[test]
fn a_reader_past_the_wait_frees_the_snapshot_itself() {
    let old = Arc::new(vec![1u64; 1000]);
    let weak = Arc::downgrade(&old);
    let held = old.clone();
    retire(old, Duration::from_millis(1));
    assert!(weak.upgrade().is_some(), "freed under its reader");
    drop(held);
    assert!(weak.upgrade().is_none());
}

/// `publish` retires the snapshot it replaces: with no reader on it, it is gone when `publish`
/// returns.
#[test]
fn publish_frees_the_replaced_snapshot() {
    let world = parse("demo.toml", DEFAULT_LAB).unwrap();
    let ports = ports_by_index(&world);
    let snapshot = |generation| Snapshot::compile(&world, generation, &|id| ports.get(id).copied());
    let p = Pipeline::new(snapshot(1));
    let weak = Arc::downgrade(&p.snapshot());
    p.publish(snapshot(2));
    assert!(weak.upgrade().is_none());
    assert_eq!(p.snapshot().generation, 2);
}

// ---------------------------------------------------------------------------------------------
// Bounds: the NAT's port search, unanswered connections, the flow table's size
// ---------------------------------------------------------------------------------------------

#[test]
fn a_nat_searches_a_bounded_number_of_ports_as_linux_does() {
    let inside = FlowKey {
        proto: 6,
        src: u32::from(ip("10.0.4.11")),
        sport: 40000,
        dst: u32::from(ip("198.51.100.10")),
        dport: 80,
    };
    let ports: Vec<u16> = napt_candidates(&inside).collect();
    // Its own port, then runs of 128, 64, 32, 16 and 8 consecutive ports (Linux's
    // nf_nat_l4proto_unique_tuple), not the whole range.
    assert_eq!(ports.len(), 1 + 128 + 64 + 32 + 16 + 8);
    assert_eq!(ports[0], 40000);
    assert!(ports.iter().all(|&p| p >= 1024));
    let run_starts: Vec<u16> = [1, 129, 193, 225, 241].iter().map(|&i| ports[i]).collect();
    let distinct: std::collections::HashSet<_> = run_starts.iter().collect();
    assert_eq!(distinct.len(), 5, "each run starts somewhere else: {run_starts:?}");
    assert_eq!(ports, napt_candidates(&inside).collect::<Vec<_>>(), "deterministic");
    // A privileged port is never kept; an ICMP identifier is.
    let ntp = FlowKey { proto: 17, sport: 123, dport: 123, ..inside };
    assert_eq!(napt_candidates(&ntp).count(), 248);
    let ping = FlowKey { proto: 1, sport: 7, dport: 0, ..inside };
    assert_eq!(napt_candidates(&ping).next(), Some(7));
}

/// The default lab with a second instance in subnet d (behind nat-0b0b0b0b).
fn two_behind_the_nat() -> Pipeline {
    let text = DEFAULT_LAB.replace(
        "id = \"i-0d0d0d0d\"\nsubnet = \"d\"\nprivate_ip = \"10.0.4.10\"\n",
        "id = \"i-0d0d0d0d\"\nsubnet = \"d\"\nprivate_ip = \"10.0.4.10\"\n\n[[instance]]\n\
         id = \"i-0d0d0d0e\"\nsubnet = \"d\"\nprivate_ip = \"10.0.4.11\"\n",
    );
    pipeline_for(&parse("t.toml", &text).unwrap())
}

#[test]
fn instances_whose_ports_collide_all_get_nat_ports_and_a_full_range_is_a_counted_drop() {
    let p = two_behind_the_nat();
    // Both instances' stacks use the same ephemeral ports to one destination: the first
    // keeps them, the second's are translated (each found within the bounded search).
    let ports = 32768u16..36768;
    let mut outside = std::collections::HashSet::new();
    for (n, src) in ["10.0.4.10", "10.0.4.11"].iter().enumerate() {
        for sport in ports.clone() {
            let mut syn = tcp_syn(src, sport, "198.51.100.10", 443);
            assert!(matches!(run(&p, D, &mut syn), Action::Forward { .. }), "{src}:{sport}");
            assert!(outside.insert(ports_of(&syn).0), "one outside port per flow");
            if n == 0 {
                assert_eq!(ports_of(&syn).0, sport);
            }
        }
    }
    assert_eq!(p.counters.drops(DropReason::NatPortsExhausted), 0);
    // Every port the search of a new flow would try, taken (by flows of a third instance):
    // the flow is refused, counted, though most ports are free, as on Linux; another
    // destination still works.
    let nat = u32::from(ip("203.0.113.40"));
    let dst = u32::from(ip("198.51.100.10"));
    let inside =
        FlowKey { proto: 6, src: u32::from(ip("10.0.4.10")), sport: 50000, dst, dport: 443 };
    let tried: Vec<u16> = napt_candidates(&inside).collect();
    for &port in &tried {
        let key = FlowKey { src: nat, sport: port, ..inside };
        let _ = p.flows.insert_napt(key, None, || Flow {
            path: FlowPath::Nat(Box::new(Napt {
                way: FlowPath::Igw { aws: false },
                nat: "nat-0b0b0b0b".into(),
                nat_port: B,
                inside_port: port,
            })),
            port: D,
            private_ip: u32::from(ip("10.0.4.99")),
            last_seen: Stamp::at(Instant::now()),
            tcp: TcpState::default(),
        });
    }
    assert!(p.flows.napt_to(nat, &inside) < 9000);
    let mut syn = tcp_syn("10.0.4.10", 50000, "198.51.100.10", 443);
    assert_eq!(run(&p, D, &mut syn), Action::Drop(DropReason::NatPortsExhausted));
    assert_eq!(p.counters.drops(DropReason::NatPortsExhausted), 1);
    let mut other = tcp_syn("10.0.4.10", 50000, "198.51.100.11", 443);
    assert!(matches!(run(&p, D, &mut other), Action::Forward { .. }));
}

#[test]
fn a_nat_gateway_takes_55000_connections_to_one_destination() {
    // "A NAT gateway can support up to 55,000 simultaneous connections to each unique
    // destination" (address, port and protocol).
    let p = two_behind_the_nat();
    let t0 = Instant::now();
    for sport in 1024..1024 + 55_000u16 {
        let mut syn = tcp_syn("10.0.4.10", sport, "198.51.100.10", 443);
        assert!(matches!(p.process(t0, D, &mut syn, Meta::PLAIN), Action::Forward { .. }));
    }
    let nat = u32::from(ip("203.0.113.40"));
    let to = |proto, dst: &str, dport| FlowKey {
        proto,
        src: 0,
        sport: 0,
        dst: u32::from(ip(dst)),
        dport,
    };
    assert_eq!(p.flows.napt_to(nat, &to(6, "198.51.100.10", 443)), 55_000);
    let mut one_more = tcp_syn("10.0.4.11", 40000, "198.51.100.10", 443);
    assert_eq!(
        p.process(t0, D, &mut one_more, Meta::PLAIN),
        Action::Drop(DropReason::NatPortsExhausted)
    );
    // Another port, another protocol: other destinations.
    let mut https = tcp_syn("10.0.4.11", 40000, "198.51.100.10", 8443);
    assert!(matches!(p.process(t0, D, &mut https, Meta::PLAIN), Action::Forward { .. }));
    let mut quic = udp("10.0.4.11", 40000, "198.51.100.10", 443);
    assert!(matches!(p.process(t0, D, &mut quic, Meta::PLAIN), Action::Forward { .. }));
    // One connection closes (an RST from the instance, then its 10 s): room for one more.
    let b = PacketBuilder::ipv4(ip("10.0.4.10").octets(), ip("198.51.100.10").octets(), 64)
        .tcp(1024, 443, 1001, 0)
        .rst();
    let mut rst = Vec::new();
    b.write(&mut rst, &[]).unwrap();
    assert!(matches!(p.process(t0, D, &mut rst, Meta::PLAIN), Action::Forward { .. }));
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(11)), 1);
    assert_eq!(p.flows.napt_to(nat, &to(6, "198.51.100.10", 443)), 54_999);
    let mut one_more = tcp_syn("10.0.4.11", 40000, "198.51.100.10", 443);
    assert!(matches!(p.process(t0, D, &mut one_more, Meta::PLAIN), Action::Forward { .. }));
    // Everything expires: the counts go with the flows.
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(200)), 55_002);
    assert_eq!(p.flows.napt_to(nat, &to(6, "198.51.100.10", 443)), 0);
}

#[test]
fn an_unanswered_syn_is_forgotten_after_120_s_an_answered_connection_is_not() {
    let p = two_behind_the_nat();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // Through the internet gateway (the security groups' tracking) and through the NAT
    // gateway: SYNs nobody answers.
    let mut igw = tcp_syn("10.0.1.10", 40000, "198.51.100.10", 80);
    assert!(matches!(p.process(t0, A, &mut igw, Meta::PLAIN), Action::Forward { .. }));
    let mut nat = tcp_syn("10.0.4.10", 40000, "198.51.100.10", 80);
    assert!(matches!(p.process(t0, D, &mut nat, Meta::PLAIN), Action::Forward { .. }));
    // Two that are answered (SYN-ACK back).
    let mut syn = tcp_syn("10.0.1.10", 40001, "198.51.100.10", 80);
    let _ = p.process(t0, A, &mut syn, Meta::PLAIN);
    let mut syn_ack = tcp("198.51.100.10", 80, "203.0.113.10", 40001, b"");
    assert!(matches!(
        p.process(t0, PORT_INTERNET, &mut syn_ack, Meta::PLAIN),
        Action::Forward { .. }
    ));
    let mut syn = tcp_syn("10.0.4.11", 40001, "198.51.100.10", 80);
    let _ = p.process(t0, D, &mut syn, Meta::PLAIN);
    let mut syn_ack = tcp("198.51.100.10", 80, "203.0.113.40", ports_of(&syn).0, b"");
    assert!(matches!(
        p.process(t0, PORT_INTERNET, &mut syn_ack, Meta::PLAIN),
        Action::Forward { .. }
    ));
    assert_eq!(p.flows.len(), 4);
    assert_eq!(p.handle_timeout(at(119)), 0);
    assert_eq!(p.handle_timeout(at(121)), 2, "Linux conntrack's SYN_SENT timeout");
    assert!(
        p.flows
            .napt_get(&FlowKey {
                proto: 6,
                src: u32::from(ip("10.0.4.10")),
                sport: 40000,
                dst: u32::from(ip("198.51.100.10")),
                dport: 80
            })
            .is_none(),
        "the NAT's port is free again"
    );
    // The answered ones: the NAT gateway's 350 s, the groups' 5 days.
    assert_eq!(p.handle_timeout(at(349)), 0);
    assert_eq!(p.handle_timeout(at(351)), 1);
    assert_eq!(p.handle_timeout(at(431_999)), 0);
    assert_eq!(p.handle_timeout(at(432_001)), 1);
}

#[test]
fn a_full_flow_table_refuses_new_flows_and_keeps_the_tracked_ones() {
    let mut p = two_behind_the_nat();
    p.flows = FlowTable::with_limit(2);
    let t0 = Instant::now();
    let go = |port: PortId, pkt: &mut [u8]| p.process(t0, port, pkt, Meta::PLAIN);
    let forwarded = |a: Action| matches!(a, Action::Forward { .. });
    assert!(forwarded(go(A, &mut udp("10.0.1.10", 5000, "198.51.100.10", 53))));
    assert!(forwarded(go(A, &mut udp("10.0.1.10", 5000, "54.123.170.5", 53))));
    // Every way a new flow starts: the internet gateway, the endpoint, the NAT, the
    // resolver, another instance (a local flow).
    let refused = [
        (A, udp("10.0.1.10", 5001, "198.51.100.10", 53)),
        (A, udp("10.0.1.10", 5001, "54.123.170.5", 53)),
        (D, udp("10.0.4.10", 5001, "198.51.100.10", 53)),
        (A, udp("10.0.1.10", 5001, "10.0.0.2", 53)),
        (A, udp("10.0.1.10", 5001, "10.0.2.10", 53)),
    ];
    for (port, mut pkt) in refused {
        assert_eq!(go(port, &mut pkt), Action::Drop(DropReason::ConntrackAllowanceExceeded));
    }
    assert_eq!(p.counters.drops(DropReason::ConntrackAllowanceExceeded), 5);
    assert_eq!(p.flows.len(), 2);
    // The tracked flows go on, both ways.
    assert!(forwarded(go(A, &mut udp("10.0.1.10", 5000, "198.51.100.10", 53))));
    assert!(forwarded(go(PORT_INTERNET, &mut udp("198.51.100.10", 53, "203.0.113.10", 5000))));
    assert!(forwarded(go(PORT_AWS, &mut udp("54.123.170.5", 53, "10.0.1.10", 5000))));
    // Once they expire, there is room again.
    assert_eq!(p.handle_timeout(t0 + Duration::from_secs(200)), 2);
    assert!(forwarded(go(D, &mut udp("10.0.4.10", 5001, "198.51.100.10", 53))));
    assert_eq!(p.flows.len(), 1);
}

#[test]
fn a_connection_between_instances_keeps_its_timeouts() {
    // A flow between two instances is the security groups' connection tracking too: an
    // answered connection stays 5 days idle, an unanswered SYN 120 s, a closed one 10 s.
    let p = demo();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let send = |t, port, mut pkt: Vec<u8>| p.process(t, port, &mut pkt, Meta::PLAIN);
    assert!(matches!(
        send(at(0), A, tcp_syn("10.0.1.10", 40000, "10.0.2.10", 22)),
        Action::Forward { port: B, .. }
    ));
    assert!(matches!(
        send(at(0), B, tcp("10.0.2.10", 22, "10.0.1.10", 40000, b"")),
        Action::Forward { port: A, .. }
    ));
    assert!(matches!(
        send(at(0), A, tcp_syn("10.0.1.10", 40001, "10.0.2.10", 22)),
        Action::Forward { port: B, .. }
    ));
    assert_eq!(p.handle_timeout(at(121)), 1, "the unanswered one");
    assert_eq!(p.handle_timeout(at(3600)), 0, "an idle answered connection stays");
    // An hour later the server's data still passes as the tracked flow's.
    assert!(matches!(
        send(at(3600), B, tcp("10.0.2.10", 22, "10.0.1.10", 40000, b"late")),
        Action::Forward { port: A, .. }
    ));
    // A FIN each way: closed, 10 s.
    let fin_a = tcp_flags_pkt("10.0.1.10", 40000, "10.0.2.10", 22, true, false);
    let fin_b = tcp_flags_pkt("10.0.2.10", 22, "10.0.1.10", 40000, true, false);
    assert!(matches!(send(at(3600), A, fin_a), Action::Forward { .. }));
    assert!(matches!(send(at(3600), B, fin_b), Action::Forward { .. }));
    assert_eq!(p.handle_timeout(at(3611)), 1);
}
