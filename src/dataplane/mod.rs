//! The packet pipeline: `process(now, port, packet) -> Action`.
//!
//! A packet read from a subnet's TUN is matched to its instance (source address), passes the
//! egress filters (security groups and network ACLs: a stage that allows everything until
//! they exist), is routed by its subnet's route table (longest prefix match), and is then
//! delivered in the VPC (`local`), NATed 1:1 to the instance's public IP (`igw-`), or passed
//! unchanged to the aws namespace with its flow remembered (`vpce-`). A packet read from the aws
//! or internet namespace is translated back: to a public IP through the 1:1 NAT, to a private
//! IP only through a flow that left through an endpoint.
//!
//! TTL: the VPC router, the internet gateway and an endpoint are not hops (traceroute through
//! them shows only the destination), so the VPC's own forwarding leaves the TTL and the header
//! checksum alone. A NAT gateway or NAT instance is a hop: its flows, both ways (later
//! fragments and ICMP errors included), decrement the TTL once and drop it at 1
//! (`ttl_exceeded`).
//!
//! IP fragments: a first fragment is decided like any packet and, if forwarded, its way is
//! remembered ([`frag`]); later fragments follow it or are dropped (`fragment`).
//!
//! Invariants: `process` never panics on any bytes, never blocks except on one flow-table shard
//! lock (for a fragment, one fragment-table shard lock too), never allocates on the forwarding
//! path (beyond the tables' amortised growth when a flow or a fragmented datagram is new; a
//! NAT's RST or Time Exceeded, or the internet gateway's Fragmentation Needed, is written over
//! the packet it answers; an ICMP error too big for the gateway is cut in place), and every
//! packet ends in exactly one [`Action`]; every drop is counted by reason. Time is an argument: there is no clock here.

pub mod filter;
pub mod flow;
pub mod frag;
mod mtu;
mod reset;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::fib::{EndpointInfo, Hop, PORT_AWS, PORT_INTERNET, PortId, Snapshot};
use crate::packet::{self, CsumMode, Ipv4Info, L4, Malformed, tcp_flags};
use filter::{
    FilterDrop, FilterVerdict, FlowTuple, Stage, nacl_in, nacl_out, sg_egress, sg_ingress,
    sg_untracked,
};
use flow::{Flow, FlowKey, FlowPath, FlowTable, Napt, NaptInsert, Stamp, TcpState};
use frag::{FragKey, FragTable, FragWay};
use mtu::Fit;
pub use mtu::IGW_MTU;
pub use reset::Injection;

/// What to do with a packet. The packet buffer has been rewritten in place.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the first `len` bytes of the (rewritten) packet to `port`.
    Forward { port: PortId, len: usize },
    /// Drop it; the reason has been counted.
    Drop(DropReason),
    /// Drop it (the reason has been counted) and write back, to `port`, the first `len` bytes
    /// of the buffer: an answer the pipeline wrote in its place (full checksums, no offload),
    /// such as a NAT gateway's RST for a connection it no longer knows.
    Reply { port: PortId, len: usize },
    /// Write the first `len` bytes of the (rewritten) packet to `port` cut into IPv4 fragments
    /// of at most `mtu` bytes ([`packet::fragment`]), each with an empty virtio header (full
    /// checksums, no offload): a packet without DF too big for the internet gateway.
    Fragment { port: PortId, len: usize, mtu: u16 },
}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $label:literal,)*) => {
        /// Why a packet was dropped. Each is counted and shown by `vpcsim status`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DropReason { $($(#[$doc])* $name,)* }
        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            pub fn label(self) -> &'static str {
                match self { $(DropReason::$name => $label,)* }
            }
        }
    };
}

drop_reasons! {
    /// Not a well-formed IPv4 packet.
    Malformed => "malformed",
    /// The IPv4 header checksum does not verify (RFC 1812 5.2.2: "The IP checksum must be
    /// correct"); the header, options included, is checked on every port.
    BadChecksum => "bad_checksum",
    /// IPv6 is a non-goal: counted and dropped.
    Ipv6 => "ipv6",
    /// Read from a port that has no subnet (e.g. removed while in flight).
    UnknownPort => "unknown_port",
    /// The source address is no instance of this subnet (EC2's source/destination check).
    UnknownSource => "unknown_source",
    /// A destination no VPC carries: broadcast, multicast, 0/8, loopback, 240/4, link-local.
    Martian => "martian",
    /// No route matches: AWS drops silently.
    NoRoute => "no_route",
    /// A `blackhole` route matched.
    Blackhole => "blackhole",
    /// A `local` route matched but no instance has the destination address.
    NoInstance => "no_instance",
    /// An internet-gateway route matched but the instance has no public IP.
    NoPublicIp => "no_public_ip",
    /// The TTL ran out at a NAT (the only hop the VPC has).
    TtlExceeded => "ttl_exceeded",
    /// A TCP segment (not a SYN) to a NAT gateway for a connection it does not know (timed out
    /// after 350 s idle, or never seen): answered with an RST, as AWS's NAT gateway does.
    NatReset => "nat_reset",
    /// Traffic from outside to a private address that belongs to no flow through an endpoint.
    NoFlow => "no_flow",
    /// No egress rule of the sender's security groups allows a new flow.
    SgEgress => "sg_egress",
    /// No ingress rule of the receiver's security groups allows a new flow.
    SgIngress => "sg_ingress",
    /// The network ACL of the subnet the packet leaves denies it.
    NaclOut => "nacl_out",
    /// The network ACL of the subnet the packet enters denies it.
    NaclIn => "nacl_in",
    /// Routed to a NAT instance whose source/destination check is on (AWS drops it).
    SourceDestCheck => "source_dest_check",
    /// A NAT found no free port for this destination within its bounded search (see
    /// `napt_candidates`), or a NAT gateway has its 55,000 flows to this destination
    /// ([`flow::NAT_GATEWAY_PER_DESTINATION`]): AWS's NAT gateway metric
    /// `ErrorPortAllocation`, "the number of times the NAT gateway could not allocate a source
    /// port".
    NatPortsExhausted => "nat_ports_exhausted",
    /// Through a NAT, a protocol it does not translate: anything but TCP, UDP and ICMP ("NAT
    /// gateways support the following protocols: TCP, UDP, and ICMP"), and ICMP other than an
    /// echo request (errors about a flow are carried back on their own path).
    NatProtocol => "nat_protocol",
    /// An IP fragment that cannot be forwarded: a later fragment whose first was not seen (or
    /// was dropped, or its decision expired), or a TCP or ICMP fragment through a NAT gateway.
    Fragment => "fragment",
    /// A new flow from one VPC with the very tuple (private address, port, destination) of
    /// another VPC's open flow through an endpoint or to the resolver: VPCs with identical
    /// CIDRs share the one aws namespace, which cannot tell the two apart (AWS can, by
    /// endpoint).
    FlowCollision => "flow_collision",
    /// Larger than the internet gateway's 1500 bytes with DF set (answered with an ICMP
    /// Fragmentation Needed), or a GSO superpacket whose segments are: the EC2 guide, "If
    /// packets are over 1500 bytes, they are fragmented, or they are dropped if the Don't
    /// Fragment flag is set in the IP header".
    Mtu => "mtu",
    /// A DNS query (UDP or TCP, port 53) to the VPC resolver (base + 2, or 169.254.169.253)
    /// of a VPC whose `enableDnsSupport` is off. ModifyVpcAttribute: "If disabled, the Amazon
    /// provided DNS service in the VPC that resolves public DNS hostnames to IP addresses is
    /// not enabled."
    DnsDisabled => "dns_disabled",
    /// A new flow while the flow table holds [`flow::MAX_FLOWS`]: the ENA statistic AWS
    /// names `conntrack_allowance_exceeded`. The flows already tracked keep working.
    ConntrackAllowanceExceeded => "conntrack_allowance_exceeded",
}

/// Drop and forward counters. Relaxed atomics: they are statistics, not synchronisation.
pub struct Counters {
    drops: Vec<AtomicU64>,
    forwarded: AtomicU64,
    bytes: AtomicU64,
    /// Scans of the whole flow table for flows a change moved ([`Pipeline::reset_moved_flows`]):
    /// the only time the control plane takes the flow table's shard locks.
    reset_scans: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            drops: DropReason::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            forwarded: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            reset_scans: AtomicU64::new(0),
        }
    }
}

impl Counters {
    fn drop(&self, r: DropReason) -> Action {
        self.drops[r as usize].fetch_add(1, Ordering::Relaxed);
        tracing::trace!(reason = r.label(), "drop");
        Action::Drop(r)
    }
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Ordering::Relaxed)
    }
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn reset_scans(&self) -> u64 {
        self.reset_scans.load(Ordering::Relaxed)
    }
}

/// Per-packet metadata from the TUN's virtio header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The L4 checksum holds a partial (pseudo-header) sum the kernel will complete.
    pub csum: CsumMode,
    /// A GSO superpacket: routed, translated and forwarded whole.
    pub gso: bool,
    /// A GSO superpacket's payload bytes per segment (the MSS for TCP), from the virtio
    /// header: a segment on the wire is the IP and L4 headers and this. 0 when not GSO.
    pub gso_size: u16,
}

impl Meta {
    pub const PLAIN: Meta = Meta { csum: CsumMode::Full, gso: false, gso_size: 0 };
}

pub struct Pipeline {
    snapshot: ArcSwap<Snapshot>,
    pub flows: FlowTable,
    /// The ways of first fragments, for the later fragments of their datagrams.
    pub frags: FragTable,
    pub counters: Counters,
}

/// Frees a snapshot that is no longer published on the calling thread, once the readers still
/// on it have left it (a worker holds a snapshot for one batch of packets), waiting at most
/// `wait`. Whoever drops the last reference runs the destructor: the cloned hash maps and
/// filters. Left to chance, that was the reader in 32–111 of 10,000 changes in `churn
/// visibility` (0–5 with this), so a data-plane thread freed memory the control plane had
/// allocated (past its thread cache glibc takes the allocating arena's lock, which the control
/// plane may hold) and saw the next change later. Past `wait` the last reader frees it, as
/// before.
pub fn retire<T>(old: Arc<T>, wait: std::time::Duration) {
    let start = Instant::now();
    // `swap` paid every reader's debt before it returned (arc-swap): each reader still on the
    // old snapshot is counted here, and none can reach it anew.
    while Arc::strong_count(&old) > 1 && start.elapsed() < wait {
        std::thread::yield_now();
    }
    drop(old);
}

impl Pipeline {
    pub fn new(snapshot: Snapshot) -> Pipeline {
        Pipeline {
            snapshot: ArcSwap::from_pointee(snapshot),
            flows: FlowTable::default(),
            frags: FragTable::default(),
            counters: Counters::default(),
        }
    }

    /// Publishes a new snapshot; packets already being processed finish on the old one, which
    /// the caller (the control plane) then frees itself ([`retire`]).
    pub fn publish(&self, snapshot: Snapshot) {
        // Per-rule filter drop counts survive recompilation.
        snapshot.filters.inherit_counts(&self.snapshot.load().filters);
        retire(self.snapshot.swap(Arc::new(snapshot)), crate::fib::table::READER_WAIT);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The endpoint a TCP connection came through, given its tuple as the server in the aws
    /// namespace sees it (client address/port, server address/port).
    pub fn origin(&self, client: (u32, u16), server: (u32, u16)) -> Option<Arc<EndpointInfo>> {
        let key = FlowKey {
            proto: packet::PROTO_TCP,
            src: client.0,
            sport: client.1,
            dst: server.0,
            dport: server.1,
        };
        match self.flows.get(&key)?.path.way() {
            FlowPath::Vpce(ep) => Some(ep.clone()),
            _ => None,
        }
    }

    /// Expires idle flows (and the ways of fragmented datagrams); returns how many flows.
    pub fn handle_timeout(&self, now: Instant) -> usize {
        self.frags.expire(now);
        self.flows.expire(now)
    }

    /// Processes one packet (or GSO superpacket) read from `port`.
    pub fn process(&self, now: Instant, port: PortId, pkt: &mut [u8], meta: Meta) -> Action {
        let parsed = if meta.gso { packet::parse_gso(pkt) } else { packet::parse(pkt) };
        let info = match parsed {
            Ok(info) => info,
            Err(Malformed::NotIpv4 { version: 6 }) => return self.counters.drop(DropReason::Ipv6),
            Err(_) => return self.counters.drop(DropReason::Malformed),
        };
        // RFC 1812, 5.2.2: "(2) The IP checksum must be correct." A router checks it before it
        // acts on the header; TUN offload leaves only L4 checksums partial, never this one.
        if !packet::ipv4_header_checksum_ok(pkt, &info) {
            return self.counters.drop(DropReason::BadChecksum);
        }
        // Linux may hand over trailing bytes past the IP total length; they are not sent on.
        let len = if meta.gso { pkt.len() } else { usize::from(info.total_len()) };
        let snap = self.snapshot.load();
        // The flows' clock, once per packet and outside any flow-table lock.
        let now = Stamp::at(now);
        let pkt = &mut pkt[..len];
        let action = if info.is_non_first_fragment() {
            // No ports: it follows its datagram's first fragment, or nothing.
            self.follow_fragment(now, port, pkt, &info, &FragKey::of(&info))
        } else {
            let action = match port {
                PORT_AWS | PORT_INTERNET => self.inbound(&snap, now, port, pkt, &info, meta),
                _ => self.outbound(&snap, now, port, pkt, &info, meta),
            };
            if let Action::Forward { port: out, .. } | Action::Fragment { port: out, .. } = action
                && info.more_fragments()
            {
                let addr = |o: usize| {
                    pkt.get(o..o + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                };
                // The TTL (byte 8): only a NAT decrements it, and the later fragments cross
                // the NAT too when the first one did.
                let hop = pkt.get(8).is_some_and(|&t| t != info.ttl());
                if let (Some(src), Some(dst)) = (addr(12), addr(16)) {
                    // Whether it crossed the internet gateway: the later fragments meet its
                    // limit too.
                    let igw = matches!(action, Action::Fragment { .. })
                        || crossed_igw(&snap, port, out, src, &info);
                    let way = FragWay { port: out, src, dst, hop, igw };
                    self.frags.remember(FragKey::of(&info), port, way, now);
                }
            }
            action
        };
        if let Action::Forward { len, .. } | Action::Fragment { len, .. } = action {
            self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        action
    }

    /// A later fragment (no transport header): sent where its datagram's first fragment went,
    /// with the addresses that one left with (NAT included: the port translation is in the
    /// first fragment's transport header), its TTL decremented if that one's was (a NAT), cut
    /// into fragments again if that one crossed the internet gateway and this one is larger
    /// than it carries; else dropped.
    fn follow_fragment(
        &self,
        now: Stamp,
        port: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
        key: &FragKey,
    ) -> Action {
        let Some(way) = self.frags.follow(key, port, now) else {
            return self.counters.drop(DropReason::Fragment);
        };
        if way.hop && !packet::decrement_ttl(pkt) {
            return self.counters.drop(DropReason::TtlExceeded);
        }
        // No ICMP about a later fragment (RFC 1122, 3.2.2): too big with DF is just dropped.
        let fit = if way.igw { mtu::igw_fit(pkt.len(), info, Meta::PLAIN) } else { Fit::Fits };
        if fit == Fit::Refuse {
            return self.counters.drop(DropReason::Mtu);
        }
        // No L4 header: only the IP header checksum changes.
        packet::set_src(pkt, info, way.src.into(), CsumMode::Full);
        packet::set_dst(pkt, info, way.dst.into(), CsumMode::Full);
        mtu::leave(pkt, info, Meta::PLAIN, way.port, fit)
    }

    /// From an instance in a subnet.
    fn outbound(
        &self,
        snap: &Snapshot,
        now: Stamp,
        port: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
        meta: Meta,
    ) -> Action {
        let c = &self.counters;
        let Some(subnet) = snap.subnet(port) else {
            return c.drop(DropReason::UnknownPort);
        };
        let vpc = &snap.vpcs[subnet.vpc as usize];
        let src = info.src_u32();
        // The ENI: only an instance of this subnet may send from this address.
        let Some(host) = vpc.hosts.get(&src).filter(|h| h.port == port) else {
            return c.drop(DropReason::UnknownSource);
        };
        // The VPC resolver ("AmazonProvidedDNS"), at the VPC's base address + 2 and at
        // 169.254.169.253, answers from the aws namespace whatever the route table says
        // (ModifyVpcAttribute: "If enabled, queries to the Amazon provided DNS server at the
        // 169.254.169.253 IP address, or the reserved IP address at the base of the VPC network
        // range "plus two" succeed"); with DNS support off nothing answers, and the query is
        // counted. Before the martian check: the link-local address is one.
        if is_dns(info) && (info.dst_u32() == resolver_of(vpc.cidr) || info.dst_u32() == AMAZON_DNS)
        {
            if !vpc.dns_support {
                return c.drop(DropReason::DnsDisabled);
            }
            // The id is cloned only when the flow is new.
            if let Err(r) = self.track_out(snap, now, info, src, port, src, || {
                (FlowPath::Resolver(vpc.id.clone()), TcpState::default())
            }) {
                return c.drop(r);
            }
            return Action::Forward { port: PORT_AWS, len: pkt.len() };
        }
        // Before routing: a destination no VPC carries. The guide: "We do not support broadcast
        // in a VPC"; nor multicast (only a transit gateway has it), and a default route must
        // not carry loopback, "this network", class E or link-local out of the VPC.
        if is_martian(info.dst_u32()) {
            return c.drop(DropReason::Martian);
        }
        // An error about a packet that came in translated goes back out translated.
        if packet::is_icmp_error(info)
            && let Some(action) = self.icmp_error_out(snap, port, pkt, info, host.public_ip)
        {
            return action;
        }
        let hop = subnet.fib.lookup(info.dst_u32());
        let dst_host = match hop {
            Some(Hop::Local) => vpc.hosts.get(&info.dst_u32()).copied(),
            _ => None,
        };
        // Security-group egress (stateful: a packet of a tracked flow, either direction,
        // passes), then the subnet's network ACL outbound (stateless) when the packet leaves
        // the subnet.
        let t = FlowTuple::of(info);
        // Through a NAT: the NAT address and port this flow already has (one index lookup,
        // used for the security-group state and for the translation).
        let napt = match hop {
            Some(Hop::Nat(_)) => self.flows.napt_get(&flow_key(info, src, false)),
            _ => None,
        };
        // Between two instances of the VPC: the flow either opened, if any, and the checks its
        // packet skips (see `local_flow`).
        let mut local = None;
        let tracked = !is_icmp_request(info)
            && match hop {
                Some(Hop::Local) => {
                    local = self.local_flow(now, info, src);
                    local.is_some_and(|(sender, _)| sender)
                }
                Some(Hop::Igw) => {
                    host.public_ip.is_some_and(|p| self.touch(now, flow_key(info, p, false)))
                }
                Some(Hop::Vpce(_)) => self.touch(now, flow_key(info, src, false)),
                Some(Hop::Nat(_)) => napt.is_some(),
                _ => false,
            };
        if !tracked && let FilterVerdict::Deny(d) = sg_egress(snap, subnet.vpc, src, &t) {
            return self.filter_drop(snap, d);
        }
        if dst_host.is_none_or(|h| h.port != port)
            && let FilterVerdict::Deny(d) = nacl_out(snap, port, &t)
        {
            return self.filter_drop(snap, d);
        }
        let Some(hop) = hop else {
            return c.drop(DropReason::NoRoute);
        };
        let len = pkt.len();
        match hop {
            Hop::Blackhole => c.drop(DropReason::Blackhole),
            Hop::Nat(n) => self.napt_out(snap, now, port, pkt, info, meta, n, napt),
            Hop::Local => {
                let Some(dst) = dst_host else {
                    return c.drop(DropReason::NoInstance);
                };
                // Entering the destination's subnet: its ACL inbound, then the destination's
                // security-group ingress, unless its side tracks the flow.
                if dst.port != port
                    && let FilterVerdict::Deny(d) = nacl_in(snap, dst.port, &t)
                {
                    return self.filter_drop(snap, d);
                }
                if !local.is_some_and(|(_, receiver)| receiver)
                    && let FilterVerdict::Deny(d) = sg_ingress(snap, subnet.vpc, t.dst, &t)
                {
                    return self.filter_drop(snap, d);
                }
                // A new flow: each instance's side is tracked or not by its own groups (the
                // guide's condition on the rules in both directions, `sg_untracked`). The
                // tuple of another VPC's local flow (identical CIDRs) changes nothing here:
                // the packet goes on, judged by the rules.
                if local.is_none()
                    && let Err(DropReason::ConntrackAllowanceExceeded) =
                        self.track_out(snap, now, info, src, port, src, || {
                            let opener = sg_untracked(snap, subnet.vpc, src, &t, true);
                            let other = sg_untracked(snap, subnet.vpc, t.dst, &t, false);
                            (FlowPath::Local, TcpState::with_sides(opener, other))
                        })
                {
                    return c.drop(DropReason::ConntrackAllowanceExceeded);
                }
                Action::Forward { port: dst.port, len }
            }
            Hop::Vpce(ep) => {
                // From the guide: through an endpoint, S3 sees "the private IP addresses from
                // your VPC": the source is left as it is.
                if let Some(endpoint) = snap.endpoints.get(ep as usize) {
                    let path = || {
                        let untracked = sg_untracked(snap, subnet.vpc, src, &t, true);
                        (FlowPath::Vpce(endpoint.clone()), TcpState::with_untracked(untracked))
                    };
                    if let Err(r) = self.track_out(snap, now, info, src, port, src, path) {
                        return c.drop(r);
                    }
                }
                Action::Forward { port: PORT_AWS, len }
            }
            Hop::Igw => {
                let Some(public) = host.public_ip else {
                    return c.drop(DropReason::NoPublicIp);
                };
                // Checked on the packet as the instance sent it: a Fragmentation Needed quotes
                // that, so the instance's stack finds its socket. An ICMP error that matched
                // no translated flow is cut to fit instead (see `mtu`).
                let (pkt, fit) = if packet::is_icmp_error(info) && !info.is_fragment() {
                    let Some(n) = mtu::igw_error_len(pkt, info) else {
                        return c.drop(DropReason::Mtu);
                    };
                    (&mut pkt[..n], Fit::Fits)
                } else {
                    let fit = mtu::igw_fit(len, info, meta);
                    if fit == Fit::Refuse {
                        return self.refuse_mtu(pkt, info, port);
                    }
                    (pkt, fit)
                };
                packet::set_src(pkt, info, public.into(), meta.csum);
                let aws = snap.aws_ranges.lookup(info.dst_u32()).is_some();
                // Keyed by the public address, the tuple is this instance's alone: only the
                // table's limit can refuse it.
                if let Err(DropReason::ConntrackAllowanceExceeded) =
                    self.track_out(snap, now, info, public, port, src, || {
                        let untracked = sg_untracked(snap, subnet.vpc, src, &t, true);
                        (FlowPath::Igw { aws }, TcpState::with_untracked(untracked))
                    })
                {
                    return c.drop(DropReason::ConntrackAllowanceExceeded);
                }
                let out = if aws { PORT_AWS } else { PORT_INTERNET };
                mtu::leave(pkt, info, meta, out, fit)
            }
        }
    }

    /// From the aws or the internet namespace.
    fn inbound(
        &self,
        snap: &Snapshot,
        now: Stamp,
        port: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
        meta: Meta,
    ) -> Action {
        let c = &self.counters;
        let len = pkt.len();
        let dst = info.dst_u32();
        // An error about a flow goes back along that flow, whatever its destination.
        if packet::is_icmp_error(info) {
            return self.icmp_error_in(snap, port, pkt, info);
        }
        // Replies to a NAT gateway or NAT instance (its public address, or its private address
        // when it reached S3 through an endpoint) go back through its flows.
        if !snap.nat_addrs.is_empty() && snap.nat_addrs.contains(&dst) {
            if let Some(action) = self.napt_in(snap, now, port, pkt, info, meta) {
                return action;
            }
            // Nothing comes in through a NAT gateway unasked; a NAT instance's own public IP
            // still maps 1:1 below.
            if !snap.public_ips.contains_key(&dst) {
                return c.drop(DropReason::NoFlow);
            }
        }
        if let Some(nat) = snap.public_ips.get(&dst).copied() {
            // The internet gateway comes first: a packet too big for it never reaches the
            // subnet's network ACL nor moves a flow. Its Fragmentation Needed goes back to the
            // sender outside, from the public address it was sent to.
            let fit = mtu::igw_fit(len, info, meta);
            if fit == Fit::Refuse {
                return self.refuse_mtu(pkt, info, port);
            }
            let t = FlowTuple::of(info);
            if let FilterVerdict::Deny(d) = nacl_in(snap, nat.port, &t) {
                return self.filter_drop(snap, d);
            }
            // A reply to a flow the instance opened passes; a new flow from outside needs the
            // instance's security-group ingress, and is then tracked so its replies pass the
            // instance's egress. An untracked flow's packets are judged by the rules, as a new
            // flow's are. A packet updates its flow's sequence numbers only once it passes: a
            // reset built from them must carry the number the instance expects.
            let key = flow_key(info, dst, true);
            let known = if is_icmp_request(info) {
                None
            } else {
                self.flows.with(&key, |f| {
                    f.last_seen = now;
                    let v = match f.tcp.untracked() {
                        true => sg_ingress(snap, nat.vpc, nat.private_ip, &t),
                        false => FilterVerdict::Allow,
                    };
                    if v.is_allow() {
                        track_state(&mut f.tcp, info, false);
                    }
                    v
                })
            };
            match known {
                Some(FilterVerdict::Deny(d)) => return self.filter_drop(snap, d),
                Some(FilterVerdict::Allow) => {}
                None => {
                    if let FilterVerdict::Deny(d) = sg_ingress(snap, nat.vpc, nat.private_ip, &t) {
                        return self.filter_drop(snap, d);
                    }
                    let aws = port == PORT_AWS;
                    let untracked = sg_untracked(snap, nat.vpc, nat.private_ip, &t, false);
                    let new = self.flows.upsert(
                        key,
                        || Flow {
                            path: FlowPath::Igw { aws },
                            port: nat.port,
                            private_ip: nat.private_ip,
                            last_seen: now,
                            tcp: TcpState::with_untracked(untracked),
                        },
                        |f| track_state(&mut f.tcp, info, false),
                    );
                    if new.is_err() {
                        return c.drop(DropReason::ConntrackAllowanceExceeded);
                    }
                }
            }
            packet::set_dst(pkt, info, nat.private_ip.into(), meta.csum);
            return mtu::leave(pkt, info, meta, nat.port, fit);
        }
        if port == PORT_AWS {
            // AWS's public ranges answer the internet's hosts (plain internet routing, no VPC
            // on the way: nothing tracked, nothing translated).
            if crate::model::INTERNET_HOST_RANGE.contains(&std::net::Ipv4Addr::from(dst)) {
                return Action::Forward { port: PORT_INTERNET, len };
            }
            // A private destination: only a flow that left through an endpoint leads back (and
            // only as a reply: never an ICMP request).
            if is_icmp_request(info) {
                return c.drop(DropReason::NoFlow);
            }
            let key = flow_key(info, dst, true);
            let t = FlowTuple::of(info);
            let back = self.flows.with(&key, |f| {
                f.last_seen = now;
                let out = f.port;
                let (through_endpoint, untracked) = match f.path.way() {
                    FlowPath::Vpce(_) => (true, f.tcp.untracked()),
                    FlowPath::Resolver(_) => (false, false),
                    _ => return None,
                };
                // An untracked flow's replies are judged by the instance's ingress rules.
                // Endpoint replies enter the subnet: its ACL inbound (stateless). The
                // resolver's answers are not filtered (AWS: ACLs and groups do not filter the
                // VPC resolver).
                let sg = match snap.subnet(out).map(|s| s.vpc) {
                    Some(vpc) if untracked => sg_ingress(snap, vpc, dst, &t),
                    _ => FilterVerdict::Allow,
                };
                let v = match sg {
                    FilterVerdict::Allow if through_endpoint => nacl_in(snap, out, &t),
                    v => v,
                };
                // Only a packet that passes moves the flow's sequence numbers (see above).
                if v.is_allow() {
                    track_state(&mut f.tcp, info, false);
                }
                Some((out, v))
            });
            return match back {
                Some(Some((out, FilterVerdict::Allow))) => Action::Forward { port: out, len },
                Some(Some((_, FilterVerdict::Deny(d)))) => self.filter_drop(snap, d),
                _ => c.drop(DropReason::NoFlow),
            };
        }
        // The internet may reach AWS's public ranges.
        if snap.aws_ranges.lookup(dst).is_some() {
            return Action::Forward { port: PORT_AWS, len };
        }
        c.drop(DropReason::NoRoute)
    }

    /// Tracks an outbound packet's flow, creating it if new (`path`: its path and its
    /// security-group tracking state). Nothing is changed if the tuple is another VPC's open
    /// flow ([`DropReason::FlowCollision`]) or the flow is new and the table full
    /// ([`DropReason::ConntrackAllowanceExceeded`]). A flow of the same VPC from another port
    /// (the address moved to another subnet) is taken over.
    #[allow(clippy::too_many_arguments)]
    fn track_out(
        &self,
        snap: &Snapshot,
        now: Stamp,
        info: &Ipv4Info,
        outside_src: u32,
        port: PortId,
        private_ip: u32,
        path: impl FnOnce() -> (FlowPath, TcpState),
    ) -> Result<(), DropReason> {
        let key = flow_key(info, outside_src, false);
        let vpc_of = |p: PortId| snap.subnet(p).map(|s| s.vpc);
        // A flow keeps the path it started on: when a route change moves it, the control plane
        // finds it by comparing this path with the new snapshot's, and resets it.
        self.flows
            .upsert(
                key,
                move || {
                    let (path, tcp) = path();
                    Flow { path, port, private_ip, last_seen: now, tcp }
                },
                |f| {
                    if f.port != port {
                        if let (Some(theirs), Some(ours)) = (vpc_of(f.port), vpc_of(port))
                            && theirs != ours
                        {
                            return Err(DropReason::FlowCollision);
                        }
                        f.port = port;
                    }
                    f.last_seen = now;
                    track_state(&mut f.tcp, info, true);
                    Ok(())
                },
            )
            .unwrap_or(Err(DropReason::ConntrackAllowanceExceeded))
    }

    /// Through a NAT gateway or NAT instance: the NAT's own subnet's route table decides the
    /// way out (internet gateway: the NAT's public IP; an endpoint: its private IP, so S3 sees
    /// the NAT's address either way), and the source port (ICMP: echo identifier) is
    /// translated. A new flow keeps its port if it is free for that destination, else gets the
    /// first free one of a sequence derived from its tuple: deterministic.
    #[allow(clippy::too_many_arguments)]
    fn napt_out(
        &self,
        snap: &Snapshot,
        now: Stamp,
        port: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
        meta: Meta,
        n: u16,
        existing: Option<(u32, u16)>,
    ) -> Action {
        let c = &self.counters;
        let Some(nat) = snap.nats.get(n as usize) else {
            return c.drop(DropReason::Blackhole);
        };
        if nat.source_dest_check {
            return c.drop(DropReason::SourceDestCheck);
        }
        if info.is_fragment() && !nat_forwards_fragment(&nat.id, info) {
            return c.drop(DropReason::Fragment);
        }
        // A NAT translates TCP, UDP and ICMP echo queries, nothing else ("NAT gateways support
        // the following protocols: TCP, UDP, and ICMP", VPC user guide).
        let translatable = match info.l4() {
            L4::Tcp { .. } | L4::Udp { .. } => true,
            L4::Icmp { .. } => packet::icmp_echo_ident(info).is_some(),
            L4::Other => false,
        };
        if !translatable {
            return c.drop(DropReason::NatProtocol);
        }
        let inside = flow_key(info, info.src_u32(), false);
        let Some(nat_subnet) = snap.subnet(nat.port) else {
            return c.drop(DropReason::NoRoute);
        };
        let dst = info.dst_u32();
        let (outside_ip, out_port, path) = match nat_subnet.fib.lookup(dst) {
            Some(Hop::Igw) => {
                let Some(public) = nat.public_ip else {
                    return c.drop(DropReason::NoPublicIp);
                };
                let aws = snap.aws_ranges.lookup(dst).is_some();
                (public, if aws { PORT_AWS } else { PORT_INTERNET }, FlowPath::Igw { aws })
            }
            Some(Hop::Vpce(ep)) => match snap.endpoints.get(ep as usize) {
                Some(e) => (nat.private_ip, PORT_AWS, FlowPath::Vpce(e.clone())),
                None => return c.drop(DropReason::NoRoute),
            },
            Some(Hop::Blackhole) => return c.drop(DropReason::Blackhole),
            // A NAT behind a NAT, or back into the VPC: not simulated.
            _ => return c.drop(DropReason::NoRoute),
        };
        // Into the NAT's subnet (from another one): its network ACL inbound; a NAT instance's
        // own security groups judge a new flow as any instance's do, ingress from the sender
        // and egress to the destination (a NAT gateway has none: no table, allowed). "Network
        // ACLs [...] control traffic to and from the subnet for your NAT gateway" (VPC guide,
        // NAT gateway basics); the NAT instance's group must "allow inbound traffic from the
        // private subnet" and outbound to the internet (VPC guide, NAT instances).
        let t = FlowTuple::of(info);
        let crosses = nat.port != port;
        if crosses && let FilterVerdict::Deny(d) = nacl_in(snap, nat.port, &t) {
            return self.filter_drop(snap, d);
        }
        if existing.is_none() {
            if let FilterVerdict::Deny(d) = sg_ingress(snap, nat.vpc, nat.private_ip, &t) {
                return self.filter_drop(snap, d);
            }
            if let FilterVerdict::Deny(d) = sg_egress(snap, nat.vpc, nat.private_ip, &t) {
                return self.filter_drop(snap, d);
            }
        }
        if existing.is_none() && is_nat_gateway(&nat.id) && is_tcp_continuation(info) {
            let _ = c.drop(DropReason::NatReset);
            return nat_reset_reply(pkt, info, port);
        }
        // The NAT is a hop before the internet gateway: a TTL that runs out at the NAT is
        // answered there. The gateway's limit is checked on the datagram as the instance sent
        // it, before the NAT's rewrites, so its Fragmentation Needed quotes what the instance's
        // stack matches to its socket; nothing is mapped for a datagram that never leaves.
        let via_igw = matches!(path, FlowPath::Igw { .. });
        let fit = match via_igw && info.ttl() > 1 {
            true => mtu::igw_fit(pkt.len(), info, meta),
            false => Fit::Fits,
        };
        if fit == Fit::Refuse {
            return self.refuse_mtu(pkt, info, port);
        }
        if !packet::decrement_ttl(pkt) {
            let _ = c.drop(DropReason::TtlExceeded);
            return time_exceeded_reply(pkt, info, nat.private_ip, port);
        }
        let outside_port = match existing {
            Some((ip, p)) if ip == outside_ip => p,
            _ => {
                let flow = || Flow {
                    path: FlowPath::Nat(Box::new(Napt {
                        way: path.clone(),
                        nat: nat.id.clone(),
                        nat_port: nat.port,
                        inside_port: inside.sport,
                    })),
                    port,
                    private_ip: inside.src,
                    last_seen: now,
                    tcp: TcpState::default(),
                };
                // A NAT gateway: at most 55,000 flows to one destination.
                let limit = is_nat_gateway(&nat.id).then_some(flow::NAT_GATEWAY_PER_DESTINATION);
                let mut free = None;
                for p in napt_candidates(&inside) {
                    let key = FlowKey { src: outside_ip, sport: p, ..inside };
                    match self.flows.insert_napt(key, limit, flow) {
                        NaptInsert::Inserted => {
                            free = Some(p);
                            break;
                        }
                        NaptInsert::Taken => {}
                        NaptInsert::DestinationFull => break,
                        NaptInsert::TableFull => {
                            return c.drop(DropReason::ConntrackAllowanceExceeded);
                        }
                    }
                }
                let Some(p) = free else {
                    return c.drop(DropReason::NatPortsExhausted);
                };
                p
            }
        };
        // Out of the NAT's subnet, translated: its network ACL outbound. (A new flow refused
        // here keeps its mapping until it times out; every packet of it is refused.)
        let icmp = info.protocol() == packet::PROTO_ICMP;
        let out_t = FlowTuple { src: outside_ip, sport: if icmp { 0 } else { outside_port }, ..t };
        if let FilterVerdict::Deny(d) = nacl_out(snap, nat.port, &out_t) {
            return self.filter_drop(snap, d);
        }
        let key = FlowKey { src: outside_ip, sport: outside_port, ..inside };
        self.flows.with(&key, |f| {
            f.last_seen = now;
            track_state(&mut f.tcp, info, true);
        });
        packet::set_src(pkt, info, outside_ip.into(), meta.csum);
        if info.protocol() == packet::PROTO_ICMP {
            packet::set_icmp_ident(pkt, info, outside_port);
        } else {
            packet::set_src_port(pkt, info, outside_port, meta.csum);
        }
        mtu::leave(pkt, info, meta, out_port, fit)
    }

    /// A reply to a NAT's address: back to the instance's address and port through the flow.
    /// `None` if no NAT flow matches. One that came through the internet gateway (to the NAT's
    /// public address) met its limit first: too big, it is refused back to `from`.
    #[allow(clippy::too_many_arguments)]
    fn napt_in(
        &self,
        snap: &Snapshot,
        now: Stamp,
        from: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
        meta: Meta,
    ) -> Option<Action> {
        // A NAT translates replies back; an ICMP request is none.
        if is_icmp_request(info) {
            return None;
        }
        let key = flow_key(info, info.dst_u32(), true);
        let t = FlowTuple::of(info);
        let icmp = info.protocol() == packet::PROTO_ICMP;
        let ttl_left = info.ttl() > 1;
        let fit = mtu::igw_fit(pkt.len(), info, meta);
        let found = self.flows.with(&key, |f| {
            let napt = f.path.napt()?;
            // Through the internet gateway (not an endpoint): its limit, before the NAT.
            let fit = if matches!(napt.way, FlowPath::Igw { .. }) { fit } else { Fit::Fits };
            if fit == Fit::Refuse {
                return Some(Err(Refused::Mtu));
            }
            if info.is_fragment() && !nat_forwards_fragment(&napt.nat, info) {
                return Some(Err(Refused::Fragment));
            }
            let (port, private_ip, inside_port, nat_port) =
                (f.port, f.private_ip, napt.inside_port, napt.nat_port);
            f.last_seen = now;
            // Stateless all the way: into the NAT's subnet, out of it translated back (when
            // the instance is in another subnet), into the instance's subnet.
            let back =
                FlowTuple { dst: private_ip, dport: if icmp { t.dport } else { inside_port }, ..t };
            let denied = |v| match v {
                FilterVerdict::Deny(d) => Some(Err(Refused::Filter(d))),
                FilterVerdict::Allow => None,
            };
            if nat_port != port {
                if let Some(e) = denied(nacl_in(snap, nat_port, &t)) {
                    return Some(e);
                }
                if let Some(e) = denied(nacl_out(snap, nat_port, &back)) {
                    return Some(e);
                }
            }
            if let Some(e) = denied(nacl_in(snap, port, &back)) {
                return Some(e);
            }
            // Only a packet that goes on moves the flow's sequence numbers: a reset built
            // from them must carry the number the instance expects.
            if ttl_left {
                track_state(&mut f.tcp, info, false);
            }
            Some(Ok((port, private_ip, inside_port, fit)))
        })??;
        let (port, private_ip, inside_port, fit) = match found {
            Ok(found) => found,
            Err(Refused::Filter(d)) => return Some(self.filter_drop(snap, d)),
            Err(Refused::Fragment) => return Some(self.counters.drop(DropReason::Fragment)),
            Err(Refused::Mtu) => return Some(self.refuse_mtu(pkt, info, from)),
        };
        if !packet::decrement_ttl(pkt) {
            return Some(self.counters.drop(DropReason::TtlExceeded));
        }
        packet::set_dst(pkt, info, private_ip.into(), meta.csum);
        if info.protocol() == packet::PROTO_ICMP {
            packet::set_icmp_ident(pkt, info, inside_port);
        } else {
            packet::set_dst_port(pkt, info, inside_port, meta.csum);
        }
        Some(mtu::leave(pkt, info, meta, port, fit))
    }

    /// An ICMP error from outside (destination unreachable, time exceeded, parameter problem):
    /// path MTU discovery and a UDP sender's "connection refused" depend on it. RFC 5508
    /// REQ-4: it is matched to its flow by the datagram it quotes, which is the instance's own
    /// packet as it left the VPC, so its tuple is the flow's key; then, if the flow was
    /// translated (internet gateway: the address; NAT: address and port), "a) Revert the IP
    /// and transport headers of the embedded IP packet to their original form [...] c) Modify
    /// the destination IP address of the outer IP header to be same as the source IP address
    /// of the embedded packet after translation". Through an endpoint nothing is translated,
    /// but only the flow leads back to a private address.
    ///
    /// The flow is not refreshed (REQ-6: the NAT "MUST NOT refresh or delete the NAT Session").
    /// Security groups let it in as part of a tracked flow (the EC2 guide on path MTU
    /// discovery: "If connections are automatically tracked or if your security group rules
    /// allow inbound ICMP traffic, you can receive PMTUD responses"); the subnet's network ACL
    /// still judges it as the ICMP message it is.
    fn icmp_error_in(
        &self,
        snap: &Snapshot,
        port: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
    ) -> Action {
        let c = &self.counters;
        // An error is at most 576 bytes (RFC 1812): a fragmented one is not worth reassembling.
        if info.is_fragment() {
            return c.drop(DropReason::Fragment);
        }
        let q = match packet::icmp_error_quote(pkt, info) {
            Ok(q) => q,
            Err(packet::QuoteError::BadChecksum) => return c.drop(DropReason::BadChecksum),
            Err(packet::QuoteError::Malformed) => return c.drop(DropReason::Malformed),
            // Nothing to find a flow by.
            Err(packet::QuoteError::NoPorts) => return c.drop(DropReason::NoFlow),
        };
        // The error goes to whoever sent the quoted datagram.
        if q.src != info.dst_u32() {
            return c.drop(DropReason::NoFlow);
        }
        let key =
            FlowKey { proto: q.protocol, src: q.src, sport: q.sport, dst: q.dst, dport: q.dport };
        let found = self.flows.with(&key, |f| {
            let inside_port = f.path.napt().map_or(key.sport, |n| n.inside_port);
            let from = match f.path.way() {
                FlowPath::Vpce(_) | FlowPath::Resolver(_) | FlowPath::Igw { aws: true } => {
                    Some(PORT_AWS)
                }
                FlowPath::Igw { aws: false } => Some(PORT_INTERNET),
                FlowPath::Local | FlowPath::Nat(_) => None,
            };
            let igw = matches!(f.path.way(), FlowPath::Igw { .. });
            (f.port, f.private_ip, inside_port, from, f.path.napt().is_some(), igw)
        });
        // REQ-4: "does not have an active mapping for the embedded payload, the NAT SHOULD
        // silently drop the ICMP Error packet"; nor does an error come from where the flow
        // did not go.
        let Some((out, private_ip, inside_port, Some(from), through_nat, igw)) = found else {
            return c.drop(DropReason::NoFlow);
        };
        if from != port {
            return c.drop(DropReason::NoFlow);
        }
        if let FilterVerdict::Deny(d) = nacl_in(snap, out, &FlowTuple::of(info)) {
            return self.filter_drop(snap, d);
        }
        // Back through a NAT, the error crosses a hop; through the internet gateway or an
        // endpoint it does not.
        if through_nat && !packet::decrement_ttl(pkt) {
            return c.drop(DropReason::TtlExceeded);
        }
        if private_ip != q.src || inside_port != q.sport {
            packet::set_quoted_src(pkt, info, &q, private_ip.into(), inside_port);
            // ICMP has no pseudo-header: only the IP header checksum changes.
            packet::set_dst(pkt, info, private_ip.into(), CsumMode::Full);
        }
        // In through the internet gateway: its limit, an error cut to fit (see `mtu`).
        self.forward_error(pkt, info, out, igw)
    }

    /// An ICMP error an instance sends about a datagram that reached it through the internet
    /// gateway's or a NAT's translation (a port unreachable for UDP that came to its public
    /// IP, a Time Exceeded, a Fragmentation Needed for a reply through the NAT): RFC 5508 REQ-3,
    /// "the NAT device MUST translate the ICMP Error packet" in both directions. The outer
    /// source becomes the public IP or the NAT's address and the quoted destination (address
    /// and port) what the sender outside used, so its stack matches the error to its socket.
    /// The flow is not refreshed (REQ-6); the subnet's network ACL judges the message;
    /// security groups let it out as part of the tracked flow; through a NAT it crosses a
    /// hop. `None` for an error that matches no translated flow: it goes the ordinary way
    /// (a local or endpoint flow needs no translation).
    fn icmp_error_out(
        &self,
        snap: &Snapshot,
        port: PortId,
        pkt: &mut [u8],
        info: &Ipv4Info,
        public_ip: Option<u32>,
    ) -> Option<Action> {
        if info.is_fragment() {
            return None;
        }
        let q = packet::icmp_error_quote(pkt, info).ok()?;
        // About a datagram the instance received.
        if q.dst != info.src_u32() {
            return None;
        }
        // The instance's side of the flow: for TCP and UDP the quoted destination port, for a
        // quoted echo its identifier (`sport`, the same both ways).
        let (local_port, remote_port) =
            if q.protocol == packet::PROTO_ICMP { (q.sport, 0) } else { (q.dport, q.sport) };
        let inside = FlowKey {
            proto: q.protocol,
            src: q.dst,
            sport: local_port,
            dst: q.src,
            dport: remote_port,
        };
        let (outside_ip, outside_port) = match self.flows.napt_get(&inside) {
            Some(n) => n,
            None => (public_ip?, local_port),
        };
        let key = FlowKey { src: outside_ip, sport: outside_port, ..inside };
        let (flow_port, private_ip, through_nat, out, igw) = self.flows.with(&key, |f| {
            let out = match f.path.way() {
                FlowPath::Igw { aws: false } => Some(PORT_INTERNET),
                FlowPath::Igw { aws: true } | FlowPath::Vpce(_) => Some(PORT_AWS),
                _ => None,
            };
            let igw = matches!(f.path.way(), FlowPath::Igw { .. });
            (f.port, f.private_ip, f.path.napt().is_some(), out, igw)
        })?;
        let out = out?;
        if flow_port != port || private_ip != info.src_u32() {
            return None;
        }
        if let FilterVerdict::Deny(d) = nacl_out(snap, port, &FlowTuple::of(info)) {
            return Some(self.filter_drop(snap, d));
        }
        if through_nat && !packet::decrement_ttl(pkt) {
            return Some(self.counters.drop(DropReason::TtlExceeded));
        }
        packet::set_quoted_dst(pkt, info, &q, outside_ip.into(), outside_port);
        // ICMP has no pseudo-header: only the IP header checksum changes.
        packet::set_src(pkt, info, outside_ip.into(), CsumMode::Full);
        // Out through the internet gateway: its limit, an error cut to fit (see `mtu`).
        Some(self.forward_error(pkt, info, out, igw))
    }

    /// A packet between two instances of the VPC, of a flow one of them opened: its sender
    /// (the packet's own tuple is the flow's key) or, for a reply, its receiver (the reversed
    /// tuple: a second lookup). Refreshes the flow and returns the security-group checks the
    /// packet skips: (its sender's egress, its receiver's ingress), each skipped when that
    /// instance's side tracks the flow; an untracked side judges every packet by its rules,
    /// so that removing the rule cuts the flow at once. `None`: no such flow.
    ///
    /// The packet moves the flow's state (answered, closing: its idle timeout) here, before
    /// the network ACLs judge it: a local flow is never reset (the local route never changes),
    /// so its sequence numbers serve nothing, and a FIN or RST an ACL then drops closes the
    /// flow a little early at worst.
    fn local_flow(&self, now: Stamp, info: &Ipv4Info, src: u32) -> Option<(bool, bool)> {
        let skips = |f: &mut Flow, reply: bool| {
            f.last_seen = now;
            track_state(&mut f.tcp, info, !reply);
            let (opener, other) = (!f.tcp.untracked(), !f.tcp.peer_untracked());
            if reply { (other, opener) } else { (opener, other) }
        };
        self.flows
            .with(&flow_key(info, src, false), |f| skips(f, false))
            .or_else(|| self.flows.with(&flow_key(info, info.dst_u32(), true), |f| skips(f, true)))
    }

    /// Whether the flow exists and is tracked, so that the security groups let its packets
    /// pass (refreshing it either way).
    fn touch(&self, now: Stamp, key: FlowKey) -> bool {
        self.flows
            .with(&key, |f| {
                f.last_seen = now;
                !f.tcp.untracked()
            })
            .unwrap_or(false)
    }

    /// Counts a filter drop: its reason and its rule.
    fn filter_drop(&self, snap: &Snapshot, d: FilterDrop) -> Action {
        snap.filters.record(&d);
        self.counters.drop(match d.stage {
            Stage::SgEgress => DropReason::SgEgress,
            Stage::SgIngress => DropReason::SgIngress,
            Stage::NaclOut => DropReason::NaclOut,
            Stage::NaclIn => DropReason::NaclIn,
        })
    }
}

/// The Amazon DNS server's link-local address, 169.254.169.253: the VPC resolver answers there
/// too (DNS over UDP and TCP only; the rest of 169.254.0.0/16 is `martian`).
pub const AMAZON_DNS: u32 = u32::from_be_bytes([169, 254, 169, 253]);

/// The address of a VPC's resolver: its base address + 2 (10.0.0.2 in a 10.0.0.0/16 VPC).
pub fn resolver_of(cidr: ipnet::Ipv4Net) -> u32 {
    u32::from(cidr.network()).wrapping_add(2)
}

/// 0.0.0.0/8 ("this network"), 127.0.0.0/8 (loopback), 169.254.0.0/16 (link-local: AWS's
/// instance metadata and time addresses, not simulated; DNS queries to [`AMAZON_DNS`] are taken
/// before this check), 224.0.0.0/4 (multicast) and
/// 240.0.0.0/4 (reserved, with 255.255.255.255, the limited broadcast).
fn is_martian(dst: u32) -> bool {
    let first = dst >> 24;
    first == 0 || first == 127 || first >= 224 || dst >> 16 == 0xA9FE
}

/// Why a reply to a NAT's address goes no further ([`Pipeline::napt_in`]).
enum Refused {
    /// Too big for the internet gateway it came through.
    Mtu,
    /// A fragment the NAT does not forward.
    Fragment,
    /// A network ACL on the way back.
    Filter(FilterDrop),
}

/// Whether a forwarded first fragment crossed the internet gateway, so that its datagram's later
/// fragments meet the gateway's limit too: from a subnet, it left with a public address (an
/// instance's, or a NAT's); from outside, it was sent to one. Only for fragments: it looks at
/// every NAT.
fn crossed_igw(snap: &Snapshot, from: PortId, to: PortId, src: u32, info: &Ipv4Info) -> bool {
    let public = |a: u32| {
        snap.public_ips.contains_key(&a) || snap.nats.iter().any(|n| n.public_ip == Some(a))
    };
    match from {
        PORT_AWS | PORT_INTERNET => public(info.dst_u32()),
        _ => matches!(to, PORT_AWS | PORT_INTERNET) && public(src),
    }
}

/// Whether a NAT passes a fragment: a NAT gateway only UDP's (the guide: it "Supports
/// forwarding of IP fragmented packets for the UDP protocol. Does not support fragmentation for
/// the TCP and ICMP protocols"); a NAT instance reassembles all three, so passes them.
fn nat_forwards_fragment(nat_id: &str, info: &Ipv4Info) -> bool {
    info.protocol() == packet::PROTO_UDP || !is_nat_gateway(nat_id)
}

/// A TCP segment that continues a connection (no SYN, no RST): what a NAT gateway must know
/// the connection for.
fn is_tcp_continuation(info: &Ipv4Info) -> bool {
    matches!(info.l4(), L4::Tcp { flags, .. } if flags & (tcp_flags::SYN | tcp_flags::RST) == 0)
}

/// A NAT gateway's answer to a segment of a connection it does not know (timed out, or never
/// seen): AWS, "When a connection times out, a NAT gateway returns an RST packet to any
/// resources behind the NAT gateway that attempt to continue the connection (it does not send
/// a FIN packet)"; a NAT instance (Linux conntrack) would pick the connection up again. The
/// RST is written over the segment, to the port it came from. RFC 793, "Reset Generation":
/// with an ACK, the reset takes its sequence number from the ACK field; without, it is
/// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
fn nat_reset_reply(pkt: &mut [u8], info: &Ipv4Info, port: PortId) -> Action {
    let L4::Tcp { src_port, dst_port, seq, ack, flags, payload_len, .. } = info.l4() else {
        return Action::Drop(DropReason::NatReset);
    };
    let (rst_seq, rst_ack) = if flags & tcp_flags::ACK != 0 {
        (ack, None)
    } else {
        let fin = u32::from(flags & tcp_flags::FIN != 0);
        (0, Some(seq.wrapping_add(payload_len as u32).wrapping_add(fin)))
    };
    let (remote, instance) = (info.dst_u32().into(), info.src_u32().into());
    match packet::write_tcp_rst(pkt, remote, dst_port, instance, src_port, rst_seq, rst_ack) {
        Some(len) => Action::Reply { port, len },
        None => Action::Drop(DropReason::NatReset),
    }
}

/// What a NAT does with a packet whose TTL runs out there: RFC 792 and RFC 1812 (5.3.1), a
/// router that discards a datagram for its TTL sends the source an ICMP Time Exceeded (type 11,
/// code 0) from its own address, quoting the datagram's IP header and first 64 bits of data, so
/// a traceroute from a private subnet shows the NAT's private IP as its first hop. Never about
/// an ICMP error or a fragment other than the first (RFC 1122, 3.2.2), and only when the answer
/// fits in the datagram's own buffer; else the packet is just dropped (already counted).
fn time_exceeded_reply(pkt: &mut [u8], info: &Ipv4Info, nat_ip: u32, port: PortId) -> Action {
    use etherparse::{Icmpv4Type, PacketBuilder, icmpv4::TimeExceededCode};
    if packet::is_icmp_error(info) || info.is_non_first_fragment() {
        return Action::Drop(DropReason::TtlExceeded);
    }
    let quote_len = (info.ihl_bytes() + 8).min(pkt.len());
    let builder = PacketBuilder::ipv4(nat_ip.to_be_bytes(), info.src_u32().to_be_bytes(), 64)
        .icmpv4(Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit));
    let len = builder.size(quote_len);
    if len > pkt.len() {
        return Action::Drop(DropReason::TtlExceeded);
    }
    // The quote is read from the buffer the answer is written over: copied aside first (at
    // most a 60-byte header and 8 bytes), so nothing is allocated.
    let mut quote = [0u8; 68];
    quote[..quote_len].copy_from_slice(&pkt[..quote_len]);
    if builder.write(&mut &mut pkt[..len], &quote[..quote_len]).is_err() {
        return Action::Drop(DropReason::TtlExceeded);
    }
    Action::Reply { port, len }
}

/// A NAT gateway (`nat-…`), not a NAT instance (`i-…`).
fn is_nat_gateway(nat_id: &str) -> bool {
    nat_id.starts_with("nat-")
}

/// An ICMP query request (echo, timestamp, information, address mask). Connection tracking
/// admits the *responses* of a tracked flow ("Security groups are stateful — responses to
/// allowed inbound traffic are allowed to flow out, and vice versa", security-group connection
/// tracking): a flow keyed by its identifier must not let in an unsolicited request that
/// happens to carry the same one. Requests are always judged by the rules.
fn is_icmp_request(info: &Ipv4Info) -> bool {
    matches!(info.l4(), L4::Icmp { kind: 8 | 13 | 15 | 17, .. })
}

/// UDP or TCP to port 53.
fn is_dns(info: &Ipv4Info) -> bool {
    matches!(info.l4(), L4::Udp { dst_port: 53, .. } | L4::Tcp { dst_port: 53, .. })
}

/// The VPC a DNS query came from, given its tuple as the resolver's socket sees it.
impl Pipeline {
    pub fn resolver_origin(
        &self,
        proto: u8,
        client: (u32, u16),
        server: (u32, u16),
    ) -> Option<Arc<String>> {
        let key = FlowKey { proto, src: client.0, sport: client.1, dst: server.0, dport: server.1 };
        match self.flows.get(&key)?.path {
            FlowPath::Resolver(vpc) => Some(vpc),
            _ => None,
        }
    }
}

/// The flow key of a packet. `outside_instance_addr` is the instance's address as seen outside;
/// `reply` says the packet travels remote → instance.
fn flow_key(info: &Ipv4Info, outside_instance_addr: u32, reply: bool) -> FlowKey {
    let proto = info.protocol();
    let (sport, dport) = match info.l4() {
        L4::Tcp { src_port, dst_port, .. } => (src_port, dst_port),
        L4::Udp { src_port, dst_port } => (src_port, dst_port),
        L4::Icmp { ident, .. } => (ident, 0),
        // Any other protocol is tracked by its addresses and protocol number alone, as EC2's
        // security groups track it (a rule for GRE or ESP lets the replies back).
        L4::Other => (0, 0),
    };
    if reply {
        let dport_rev = if proto == packet::PROTO_ICMP { 0 } else { sport };
        let sport_rev = if proto == packet::PROTO_ICMP { sport } else { dport };
        FlowKey {
            proto,
            src: outside_instance_addr,
            sport: sport_rev,
            dst: info.src_u32(),
            dport: dport_rev,
        }
    } else {
        FlowKey { proto, src: outside_instance_addr, sport, dst: info.dst_u32(), dport }
    }
}

/// The NAT ports to try for a new flow, in order: its own port if it is not a privileged one
/// (ICMP: any identifier), then runs of consecutive ports of 1024..=65535, 128 long, then 64,
/// 32, 16 and 8, each from its own starting point (248 ports at most). This is Linux's
/// `nf_nat_l4proto_unique_tuple`, which a NAT instance runs: a search that walked the whole
/// range would cost up to 64,512 probes for each new flow once the ports fill up in long runs
/// (two instances whose stacks choose the same ephemeral ports), and each of them one more
/// when none is left. A flow that finds none is dropped ([`DropReason::NatPortsExhausted`])
/// while ports may still be free elsewhere, as on Linux. The starting points are derived from
/// the tuple instead of random: two runs choose the same ports.
fn napt_candidates(inside: &FlowKey) -> impl Iterator<Item = u16> {
    const FIRST: u32 = 1024;
    const COUNT: u32 = 65536 - FIRST;
    const RUNS: [u32; 5] = [128, 64, 32, 16, 8];
    let icmp = inside.proto == packet::PROTO_ICMP;
    let own = (icmp || u32::from(inside.sport) >= FIRST).then_some(inside.sport);
    let mut h = u64::from(inside.src) << 32 | u64::from(inside.dst);
    h ^= u64::from(inside.sport) << 16 | u64::from(inside.dport) | u64::from(inside.proto) << 48;
    let start = move |run: u64| {
        let x = (h ^ run.wrapping_mul(0xd6e8_feb8_6659_fd93)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((x >> 32) as u32) % COUNT
    };
    let runs = RUNS.iter().enumerate().flat_map(move |(r, &len)| {
        let s = start(r as u64);
        (0..len).map(move |i| (FIRST + (s + i) % COUNT) as u16)
    });
    own.into_iter().chain(runs)
}

/// A packet of a tracked flow, `outbound` from the instance. TCP: remembers the next sequence
/// number of each direction, so that a reset can be built later; sequence numbers only move
/// forward (in modulo-2^32 order): a retransmission does not move them back. UDP: counts
/// request-response transactions ([`TcpState::udp_seen`]).
fn track_state(t: &mut TcpState, info: &Ipv4Info, outbound: bool) {
    let L4::Tcp { seq, ack, flags, payload_len, .. } = info.l4() else {
        if let L4::Udp { .. } = info.l4() {
            t.udp_seen(outbound);
        }
        return;
    };
    // A bare SYN starts a new connection on the tuple, with its own sequence numbers, open
    // again: after a connection that was closing (the port reused within the short timeout),
    // or after one that never got going (a SYN nobody answered: Linux picks a tuple's ISN from
    // a clock, so the new one may come "before" the stale one in sequence order, and tracking
    // only forward would keep the stale numbers for the resets). Only a retransmission of the
    // same SYN (its sequence number + 1 is this direction's next) keeps the state. The sides'
    // tracking bits stay.
    if flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN {
        let (next, seen) = if outbound { (t.out_next, t.seen_out) } else { (t.in_next, t.seen_in) };
        let retransmission = seen && seq.wrapping_add(1) == next;
        if t.close & !TcpState::SIDES != 0 || (seen && !retransmission) {
            *t = TcpState { close: t.close & TcpState::SIDES, ..TcpState::default() };
        }
    }
    let syn_fin = u32::from(flags & (tcp_flags::SYN | tcp_flags::FIN) != 0);
    let next = seq.wrapping_add(payload_len as u32).wrapping_add(syn_fin);
    let (mine, seen) =
        if outbound { (&mut t.out_next, t.seen_out) } else { (&mut t.in_next, t.seen_in) };
    if !seen || seq_after(next, *mine) {
        *mine = next;
    }
    // The peer's ACK tells where this side's sequence is even before it sent anything.
    if flags & tcp_flags::ACK != 0 {
        let (theirs, seen_theirs) = if outbound {
            (&mut t.in_next, &mut t.seen_in)
        } else {
            (&mut t.out_next, &mut t.seen_out)
        };
        if !*seen_theirs || seq_after(ack, *theirs) {
            *theirs = ack;
            *seen_theirs = true;
        }
    }
    if outbound {
        t.seen_out = true
    } else {
        t.seen_in = true
    }
    // RFC 7857 (after RFC 6146's state machine): a TCP session enters its transitory
    // (closing) state once a FIN has been seen in both directions, or on an RST; one FIN
    // only half-closes it.
    if flags & tcp_flags::FIN != 0 {
        t.close |= if outbound { TcpState::FIN_OUT } else { TcpState::FIN_IN };
    }
    if flags & tcp_flags::RST != 0 {
        t.close |= TcpState::RST;
    }
}

/// `a` comes after `b` in sequence-number order (RFC 1982 serial arithmetic).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests;
