//! The internet gateway's packet size limit.
//!
//! The EC2 user guide ("Network maximum transmission unit (MTU) for your EC2 instance"): jumbo
//! frames work inside a VPC, but "traffic is limited to a maximum MTU of 1500 in the following
//! cases: Traffic over an internet gateway ...", and "If packets are over 1500 bytes, they are
//! fragmented, or they are dropped if the Don't Fragment flag is set in the IP header". The VPC
//! user guide ("Path MTU Discovery"): the device that drops such a packet "returns the
//! following ICMP message: Destination Unreachable: Fragmentation Needed and Don't Fragment was
//! Set (Type 3, Code 4)".
//!
//! So, in both directions through the internet gateway (not through an endpoint, not between
//! subnets), a packet whose size on the wire is over [`IGW_MTU`] is:
//! - with DF: dropped (`mtu`) and answered with an ICMP Fragmentation Needed, next-hop MTU 1500
//!   (RFC 1191), to the port it came from;
//! - a GSO superpacket whose segments are too big: dropped (`mtu`), answered as above when it
//!   has DF (TCP's segments do), silently otherwise (a superpacket without DF cannot be cut
//!   into IP fragments here, nothing is allocated for it);
//! - otherwise: forwarded as IPv4 fragments of at most 1500 bytes ([`Action::Fragment`]).
//!
//! An ICMP error (not a fragment) is neither refused nor fragmented: one over 1500 bytes is cut
//! to 576 ([`igw_error_len`]), in both directions, translated or not. It can only have come
//! from a sender that ignored RFC 1812's bound (4.3.2.3: "without the length of the ICMP
//! datagram exceeding 576 bytes"); there is no error about an error to send back (RFC 1122,
//! 3.2.2), a fragmented error is one this pipeline itself drops when it comes in (`fragment`),
//! and all an error needs to reach its socket is the quoted header and 8 bytes (RFC 792), which
//! the cut keeps. The errors the pipeline writes itself (Fragmentation Needed, a NAT's Time
//! Exceeded) quote the header and 8 bytes: at most 96 bytes, within both limits.
//!
//! Invariants: the check is one comparison on the forwarding path ([`igw_fit`]); the answer
//! is written over the packet it answers, an error is cut in place: nothing is allocated.

use super::{Action, DropReason, Meta, Pipeline};
use crate::fib::PortId;
use crate::packet::{self, CsumMode, Ipv4Info};

/// The largest IP packet the internet gateway carries, either way.
pub const IGW_MTU: u16 = 1500;

/// What the internet gateway's limit does to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fit {
    /// At most [`IGW_MTU`] bytes on the wire: it passes as it is.
    Fits,
    /// Too big, no DF: cut into fragments.
    Split,
    /// Too big with DF, or a GSO superpacket whose segments are too big: dropped.
    Refuse,
}

/// The size that counts is the size on the wire: a plain packet's total length (`len`, the
/// buffer trimmed to it); each segment's for a GSO superpacket, its IP header, L4 header and
/// `gso_size` bytes of payload.
pub(super) fn igw_fit(len: usize, info: &Ipv4Info, meta: Meta) -> Fit {
    let wire = match meta.gso {
        true => info.ihl_bytes() + info.l4_header_len() + usize::from(meta.gso_size),
        false => len,
    };
    if wire <= usize::from(IGW_MTU) {
        Fit::Fits
    } else if meta.gso || info.dont_fragment() {
        Fit::Refuse
    } else {
        Fit::Split
    }
}

/// The length an ICMP error (not a fragment; `pkt` trimmed to its total length) leaves the
/// internet gateway with: its own when it fits, else 576 ([`packet::ICMP_ERROR_MAX`]), cut in
/// place by [`packet::cut_icmp_error`] (total length, checksums and RFC 4884 length fixed). An
/// error the gateway would refuse, a fragment too big with DF, is not answered either: `None`
/// only if it cannot be cut and still does not fit.
pub(super) fn igw_error_len(pkt: &mut [u8], info: &Ipv4Info) -> Option<usize> {
    let len = match pkt.len() <= usize::from(IGW_MTU) {
        true => pkt.len(),
        false => packet::cut_icmp_error(pkt, info, packet::ICMP_ERROR_MAX),
    };
    (len <= usize::from(IGW_MTU)).then_some(len)
}

/// The action for a packet (rewritten) that passes the gateway: forwarded whole, or cut into
/// fragments. Fragments leave without offload, so a partial L4 checksum (TUN offload) is
/// completed first: each fragment carries only part of what it covers.
pub(super) fn leave(pkt: &mut [u8], info: &Ipv4Info, meta: Meta, port: PortId, fit: Fit) -> Action {
    let len = pkt.len();
    if fit != Fit::Split {
        return Action::Forward { port, len };
    }
    if meta.csum == CsumMode::Partial {
        packet::complete_l4_checksum(pkt, info);
    }
    Action::Fragment { port, len, mtu: IGW_MTU }
}

impl Pipeline {
    /// Forwards a translated ICMP error to `port`; one that crosses the internet gateway
    /// (`igw`) is cut to fit its limit first ([`igw_error_len`]), or dropped as `mtu`.
    pub(super) fn forward_error(
        &self,
        pkt: &mut [u8],
        info: &Ipv4Info,
        port: PortId,
        igw: bool,
    ) -> Action {
        match if igw { igw_error_len(pkt, info) } else { Some(pkt.len()) } {
            Some(len) => Action::Forward { port, len },
            None => self.counters.drop(DropReason::Mtu),
        }
    }

    /// Drops a packet too big for the internet gateway (counted as `mtu`) and, if it has DF,
    /// answers it with an ICMP Fragmentation Needed back to `port`.
    pub(super) fn refuse_mtu(&self, pkt: &mut [u8], info: &Ipv4Info, port: PortId) -> Action {
        let dropped = self.counters.drop(DropReason::Mtu);
        if !info.dont_fragment() {
            return dropped;
        }
        frag_needed_reply(pkt, info, port).unwrap_or(dropped)
    }
}

/// RFC 792's Destination Unreachable, code 4, "fragmentation needed and DF set", with RFC
/// 1191's next-hop MTU (1500), quoting the datagram's IP header and first 64 bits of data as it
/// was received; written over the packet, to go back to `port`. Its source is the datagram's
/// destination: the gateway has no address of its own, and Linux's path MTU code matches the
/// quoted header, not the sender. Never about an ICMP error or a fragment other than the
/// first (RFC 1122, 3.2.2): `None`, the packet is just dropped.
fn frag_needed_reply(pkt: &mut [u8], info: &Ipv4Info, port: PortId) -> Option<Action> {
    use etherparse::{Icmpv4Type, PacketBuilder, icmpv4::DestUnreachableHeader};
    if packet::is_icmp_error(info) || info.is_non_first_fragment() {
        return None;
    }
    let quote_len = (info.ihl_bytes() + 8).min(pkt.len());
    let unreachable = DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: IGW_MTU };
    let builder = PacketBuilder::ipv4(info.dst().octets(), info.src().octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(unreachable));
    let len = builder.size(quote_len);
    if len > pkt.len() {
        return None;
    }
    // The quote is read from the buffer the answer is written over: copied aside first (at
    // most a 60-byte header and 8 bytes), so nothing is allocated.
    let mut quote = [0u8; 68];
    quote[..quote_len].copy_from_slice(&pkt[..quote_len]);
    builder.write(&mut &mut pkt[..len], &quote[..quote_len]).ok()?;
    Some(Action::Reply { port, len })
}
