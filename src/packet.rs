//! Sans-IO IPv4 packet parsing and in-place rewriting for the data plane.
//!
//! Packets arrive from Linux TUN devices opened with `IFF_VNET_HDR` and TSO offload, so every
//! frame is a [`VnetHdr`] followed by a raw IPv4 packet that may be a GSO superpacket (up to
//! 64 KiB) whose L4 checksum is only partially computed (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
//!
//! Invariants:
//! - Nothing here performs I/O, reads clocks, allocates (except [`build_tcp_rst`]) or uses
//!   `unsafe`.
//! - If [`parse`] or [`parse_gso`] returned `Ok(info)` for a buffer, then no accessor of `info`
//!   and no setter called with that buffer and `info` can panic. Setters go further: they
//!   bounds-check every access and, if the buffer does not fit `info` (a caller bug), they
//!   leave the buffer untouched instead of panicking.
//! - Setters read the *old* field values from the buffer, not from `info`, so several setters
//!   may be chained with the same (now stale) `info`. Only the addresses, ports and TTL go
//!   stale; the layout facts `info` carries (header lengths, protocol, L4 kind) do not change.
//! - Every setter keeps the IPv4 header checksum a full, valid checksum and keeps the L4
//!   checksum consistent with the [`CsumMode`] it was given (a full checksum, or the
//!   uncomplemented pseudo-header sum that the kernel completes for `NEEDS_CSUM` packets).
//! - Parsing does not verify checksums; [`ipv4_header_checksum_ok`] verifies the IPv4 header's,
//!   which the pipeline checks for every packet (a router must: RFC 1812, 5.2.2). L4
//!   checksums are not verified: with TUN offload they may hold a partial sum, and the
//!   incremental updates below preserve whatever validity they had.

use std::net::Ipv4Addr;

use etherparse::Ipv4HeaderSlice;
use etherparse::err::ipv4::{HeaderError, HeaderSliceError};

mod fragment;
pub use fragment::{fragment, fragment_count};

/// Minimum IPv4 header length (IHL = 5).
const IPV4_MIN_LEN: usize = 20;
/// Offset of the IPv4 total length.
const IPV4_TOTLEN_OFF: usize = 2;
/// Offset of the IPv4 header checksum.
const IPV4_CSUM_OFF: usize = 10;
/// Offset of the IPv4 source address.
const IPV4_SRC_OFF: usize = 12;
/// Offset of the IPv4 destination address.
const IPV4_DST_OFF: usize = 16;
/// Offset of the TTL byte; the 16-bit word at this offset is `ttl << 8 | protocol`.
const IPV4_TTL_OFF: usize = 8;

/// IP protocol numbers this module understands.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

const TCP_MIN_LEN: usize = 20;
const TCP_CSUM_OFF: usize = 16;
const UDP_LEN: usize = 8;
const UDP_CSUM_OFF: usize = 6;
const ICMP_MIN_LEN: usize = 8;

/// TCP flag bits as found in byte 13 of the TCP header ([`L4::Tcp::flags`]).
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

// ---------------------------------------------------------------------------------------------
// Virtio net header
// ---------------------------------------------------------------------------------------------

/// `struct virtio_net_hdr` as prepended by a TUN device opened with `IFF_VNET_HDR`.
///
/// Fields are little-endian: TUN uses native endianness unless `TUNSETVNETBE` is set, and the
/// hosts we run on (x86_64, arm64) are little-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` value, possibly or-ed with [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (L3 + L4) that are replicated into every GSO segment.
    pub hdr_len: u16,
    /// Maximum L4 payload per GSO segment (the MSS for TCP).
    pub gso_size: u16,
    /// Offset from the start of the IP packet where checksumming starts (the L4 header).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP, 6 for UDP).
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire.
    pub const LEN: usize = 10;
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial (see [`CsumMode::Partial`]).
    pub const F_NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum has already been validated.
    pub const F_DATA_VALID: u8 = 2;
    /// Not a GSO packet.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 segmentation offload.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation offload (UFO).
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6 segmentation offload.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation offload (USO).
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag bit: the TCP stream uses ECN (CWR must only be set on the first segment).
    pub const GSO_ECN: u8 = 0x80;

    /// Decodes the first [`VnetHdr::LEN`] bytes of `buf`; `None` if `buf` is shorter.
    pub fn parse(buf: &[u8]) -> Option<VnetHdr> {
        let b = buf.first_chunk::<{ VnetHdr::LEN }>()?;
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        })
    }

    /// Encodes the header into a fixed-size array.
    pub fn to_bytes(&self) -> [u8; VnetHdr::LEN] {
        let [h0, h1] = self.hdr_len.to_le_bytes();
        let [g0, g1] = self.gso_size.to_le_bytes();
        let [s0, s1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        [self.flags, self.gso_type, h0, h1, g0, g1, s0, s1, o0, o1]
    }

    /// Writes the header into the first [`VnetHdr::LEN`] bytes of `out`.
    ///
    /// # Panics
    ///
    /// If `out.len() < VnetHdr::LEN`, like `copy_from_slice`; callers size their frame
    /// buffers so that this cannot happen. Use [`VnetHdr::to_bytes`] for a panic-free form.
    pub fn write(&self, out: &mut [u8]) {
        out[..VnetHdr::LEN].copy_from_slice(&self.to_bytes());
    }

    /// True if the L4 checksum field holds a partial (pseudo-header) sum.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// True if this is a GSO superpacket (ignoring the ECN bit).
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }

    /// The checksum mode that rewrites of the following packet must use.
    pub fn csum_mode(&self) -> CsumMode {
        if self.needs_csum() { CsumMode::Partial } else { CsumMode::Full }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Why a buffer is not an IPv4 packet this module can handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The buffer ends before the IPv4 header (including options) does.
    #[error("packet too short: need {required} bytes, have {len}")]
    TooShort {
        /// Bytes needed for the IPv4 header.
        required: usize,
        /// Bytes available.
        len: usize,
    },
    /// The IP version field is not 4.
    #[error("not an ipv4 packet: version {version}")]
    NotIpv4 {
        /// The version nibble found.
        version: u8,
    },
    /// The IHL field is below the minimum of 5 words.
    #[error("bad ipv4 header length: ihl {ihl} < 5")]
    BadIhl {
        /// The IHL nibble found (in 32-bit words).
        ihl: u8,
    },
    /// The IPv4 total length claims more bytes than the buffer holds.
    #[error("ipv4 total length {total_len} exceeds buffer length {len}")]
    TotalLenExceedsBuffer {
        /// The total length field.
        total_len: u16,
        /// Bytes available.
        len: usize,
    },
    /// The IPv4 total length is smaller than the IPv4 header itself.
    #[error("ipv4 total length {total_len} is smaller than header length {header_len}")]
    TotalLenTooSmall {
        /// The total length field.
        total_len: u16,
        /// The IPv4 header length in bytes.
        header_len: usize,
    },
    /// The L4 header (TCP, UDP, ICMP) is cut short by the packet end.
    #[error("truncated l4 header for protocol {protocol}: need {required} bytes, have {len}")]
    TruncatedL4 {
        /// The IP protocol number.
        protocol: u8,
        /// Bytes needed for the L4 header.
        required: usize,
        /// L4 bytes available.
        len: usize,
    },
    /// The TCP data offset is below the minimum of 5 words.
    #[error("bad tcp data offset {data_offset} < 5")]
    BadTcpDataOffset {
        /// The data offset nibble found (in 32-bit words).
        data_offset: u8,
    },
}

/// The transport layer of a parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4 {
    /// A TCP segment with a complete header.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number (meaningful only with [`tcp_flags::ACK`]).
        ack: u32,
        /// Byte 13 of the header; see [`tcp_flags`].
        flags: u8,
        /// TCP header length in bytes, options included (20..=60).
        header_len: usize,
        /// Payload bytes after the TCP header, up to the end of the packet.
        payload_len: usize,
    },
    /// A UDP datagram (at least the 8-byte header is present).
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// An ICMP message (at least the 8-byte header is present).
    Icmp {
        /// ICMP type.
        kind: u8,
        /// ICMP code.
        code: u8,
        /// Identifier for query messages (echo, timestamp, information, address mask), else 0.
        ident: u16,
    },
    /// Any other protocol, or a non-first fragment (which carries no L4 header).
    Other,
}

/// A validated view of an IPv4 packet; produced only by [`parse`] / [`parse_gso`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Info {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ihl_bytes: u8,
    total_len: u16,
    ttl: u8,
    identification: u16,
    non_first_fragment: bool,
    more_fragments: bool,
    dont_fragment: bool,
    l4: L4,
}

impl Ipv4Info {
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        self.src
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        self.dst
    }
    /// Source address as a host-order integer.
    pub fn src_u32(&self) -> u32 {
        u32::from(self.src)
    }
    /// Destination address as a host-order integer.
    pub fn dst_u32(&self) -> u32 {
        u32::from(self.dst)
    }
    /// IP protocol number.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    /// IPv4 header length in bytes, options included (20..=60); also the L4 offset.
    pub fn ihl_bytes(&self) -> usize {
        usize::from(self.ihl_bytes)
    }
    /// The total length field of the header (not validated by [`parse_gso`]).
    pub fn total_len(&self) -> u16 {
        self.total_len
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.ttl
    }
    /// The identification field: with the addresses and protocol, what the fragments of one
    /// datagram share (RFC 791).
    pub fn identification(&self) -> u16 {
        self.identification
    }
    /// True if the fragment offset is non-zero, i.e. the packet has no L4 header.
    pub fn is_non_first_fragment(&self) -> bool {
        self.non_first_fragment
    }
    /// True if the more-fragments flag is set.
    pub fn more_fragments(&self) -> bool {
        self.more_fragments
    }
    /// True if the packet is any fragment (first, middle or last).
    pub fn is_fragment(&self) -> bool {
        self.non_first_fragment || self.more_fragments
    }
    /// True if the don't-fragment flag is set: a router must drop the packet rather than
    /// fragment it, and say so (RFC 791, RFC 1191).
    pub fn dont_fragment(&self) -> bool {
        self.dont_fragment
    }
    /// Length of the L4 header: TCP's with its options, 8 for UDP and ICMP, 0 for anything
    /// else (and for non-first fragments). A GSO segment is the IPv4 header, this, and at most
    /// `gso_size` bytes of payload.
    pub fn l4_header_len(&self) -> usize {
        match self.l4 {
            L4::Tcp { header_len, .. } => header_len,
            L4::Udp { .. } => UDP_LEN,
            L4::Icmp { .. } => ICMP_MIN_LEN,
            L4::Other => 0,
        }
    }
    /// The transport layer view.
    pub fn l4(&self) -> L4 {
        self.l4
    }
    /// Offset of the L4 checksum field, for TCP and UDP (not for non-first fragments).
    pub fn l4_csum_offset(&self) -> Option<usize> {
        match self.l4 {
            L4::Tcp { .. } => Some(self.ihl_bytes() + TCP_CSUM_OFF),
            L4::Udp { .. } => Some(self.ihl_bytes() + UDP_CSUM_OFF),
            L4::Icmp { .. } | L4::Other => None,
        }
    }
}

/// Parses a plain (non-GSO) IPv4 packet.
///
/// `total_len` must not exceed `buf.len()`; trailing bytes after `total_len` are allowed (and
/// ignored: L4 parsing stops at `total_len`), callers trim them.
///
/// # Errors
///
/// [`Malformed`] if the IPv4 header is invalid or cut short, `total_len` is inconsistent with
/// the buffer or the header, or a first fragment's TCP/UDP/ICMP header is incomplete.
pub fn parse(buf: &[u8]) -> Result<Ipv4Info, Malformed> {
    parse_impl(buf, false)
}

/// Parses an IPv4 packet that may be a GSO superpacket from TUN.
///
/// Lenient about `total_len`: Linux sets it to the superpacket length (up to 65535), and with
/// BIG TCP to 0, so it is not checked at all. Only the IPv4 and L4 headers must be present;
/// the packet is taken to end at `buf.len()`.
///
/// # Errors
///
/// As [`parse`], minus the `total_len` checks.
pub fn parse_gso(buf: &[u8]) -> Result<Ipv4Info, Malformed> {
    parse_impl(buf, true)
}

fn map_header_err(err: HeaderSliceError) -> Malformed {
    // Exhaustive on purpose: a new etherparse error kind should be a compile error here rather
    // than being squashed into an unrelated variant.
    match err {
        HeaderSliceError::Len(e) => Malformed::TooShort { required: e.required_len, len: e.len },
        HeaderSliceError::Content(HeaderError::UnexpectedVersion { version_number }) => {
            Malformed::NotIpv4 { version: version_number }
        }
        HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { ihl }) => {
            Malformed::BadIhl { ihl }
        }
    }
}

fn parse_impl(buf: &[u8], gso: bool) -> Result<Ipv4Info, Malformed> {
    // etherparse validates version, IHL >= 5 and that the options fit in the buffer.
    let ip = Ipv4HeaderSlice::from_slice(buf).map_err(map_header_err)?;
    let header_len = ip.slice().len();
    let total_len = ip.total_len();

    let end = if gso {
        buf.len()
    } else {
        let t = usize::from(total_len);
        if t > buf.len() {
            return Err(Malformed::TotalLenExceedsBuffer { total_len, len: buf.len() });
        }
        if t < header_len {
            return Err(Malformed::TotalLenTooSmall { total_len, header_len });
        }
        t
    };
    // header_len <= end holds by the checks above; `get` keeps this panic-free regardless.
    let l4 =
        buf.get(header_len..end).ok_or(Malformed::TooShort { required: header_len, len: end })?;

    let protocol = ip.protocol().0;
    let non_first_fragment = ip.fragments_offset().value() != 0;
    let l4 = if non_first_fragment {
        // A non-first fragment carries payload bytes from the middle of the datagram, which
        // must never be mistaken for ports.
        L4::Other
    } else {
        match protocol {
            PROTO_TCP => parse_tcp(l4)?,
            PROTO_UDP => parse_udp(l4)?,
            PROTO_ICMP => parse_icmp(l4)?,
            _ => L4::Other,
        }
    };

    Ok(Ipv4Info {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        protocol,
        // IHL is a 4-bit field so the byte length is at most 60 and always fits.
        ihl_bytes: ip.ihl() * 4,
        total_len,
        ttl: ip.ttl(),
        identification: ip.identification(),
        non_first_fragment,
        more_fragments: ip.more_fragments(),
        dont_fragment: ip.dont_fragment(),
        l4,
    })
}

fn truncated(protocol: u8, required: usize, len: usize) -> Malformed {
    Malformed::TruncatedL4 { protocol, required, len }
}

fn parse_tcp(l4: &[u8]) -> Result<L4, Malformed> {
    let h = l4.first_chunk::<TCP_MIN_LEN>().ok_or(truncated(PROTO_TCP, TCP_MIN_LEN, l4.len()))?;
    let data_offset = h[12] >> 4;
    if data_offset < 5 {
        return Err(Malformed::BadTcpDataOffset { data_offset });
    }
    let header_len = usize::from(data_offset) * 4;
    if l4.len() < header_len {
        return Err(truncated(PROTO_TCP, header_len, l4.len()));
    }
    Ok(L4::Tcp {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: h[13],
        header_len,
        payload_len: l4.len() - header_len,
    })
}

fn parse_udp(l4: &[u8]) -> Result<L4, Malformed> {
    let h = l4.first_chunk::<UDP_LEN>().ok_or(truncated(PROTO_UDP, UDP_LEN, l4.len()))?;
    Ok(L4::Udp {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
    })
}

fn parse_icmp(l4: &[u8]) -> Result<L4, Malformed> {
    let h =
        l4.first_chunk::<ICMP_MIN_LEN>().ok_or(truncated(PROTO_ICMP, ICMP_MIN_LEN, l4.len()))?;
    let kind = h[0];
    // Only query messages carry an identifier in bytes 4..6; for errors those bytes are
    // "unused" or an MTU and must not be used as a flow key.
    let ident = match kind {
        0 | 8 | 13 | 14 | 15 | 16 | 17 | 18 => u16::from_be_bytes([h[4], h[5]]),
        _ => 0,
    };
    Ok(L4::Icmp { kind, code: h[1], ident })
}

// ---------------------------------------------------------------------------------------------
// Checksums
// ---------------------------------------------------------------------------------------------

/// Internet checksum arithmetic (RFC 1071, RFC 1624).
///
/// Values are 16-bit ones'-complement numbers handled in host order (`u16::from_be_bytes` of
/// the wire bytes). "Sum" means the uncomplemented folded sum; "checksum" means its
/// complement as stored in a header.
pub mod checksum {
    use std::net::Ipv4Addr;

    /// Ones'-complement-compatible sum of `data` as big-endian 16-bit words (an odd trailing
    /// byte is padded with zero). The result is not folded to 16 bits; feed it to [`fold`].
    pub fn ones_sum(data: &[u8]) -> u32 {
        let (words, rest) = data.as_chunks::<2>();
        // u64 cannot overflow for any slice that fits in memory.
        let mut acc: u64 = words.iter().map(|w| u64::from(u16::from_be_bytes(*w))).sum();
        if let [last] = rest {
            acc += u64::from(*last) << 8;
        }
        // 2^32 ≡ 1 (mod 0xFFFF), so adding the high half to the low half keeps the
        // ones'-complement value while shrinking the accumulator to 32 bits.
        while acc > u64::from(u32::MAX) {
            acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
        }
        // The loop above guarantees acc <= u32::MAX, so the conversion is lossless.
        u32::try_from(acc).unwrap_or(u32::MAX)
    }

    /// Adds two unfolded sums with end-around carry (ones'-complement addition).
    pub fn add(a: u32, b: u32) -> u32 {
        let (s, carry) = a.overflowing_add(b);
        s + u32::from(carry)
    }

    /// Folds a 32-bit sum to 16 bits with end-around carry. Uncomplemented.
    ///
    /// A non-zero input never folds to 0 (it folds to 0xFFFF instead, "negative zero").
    pub fn fold(sum: u32) -> u16 {
        let s = (sum & 0xFFFF) + (sum >> 16);
        let s = (s & 0xFFFF) + (s >> 16);
        // After two folds s <= 0xFFFF.
        (s & 0xFFFF) as u16
    }

    /// Updates an uncomplemented folded *sum* `S` for a 16-bit field changing from `old` to
    /// `new`: `S' = S + ~old + new`.
    pub fn sum_update16(sum: u16, old: u16, new: u16) -> u16 {
        fold(u32::from(sum) + u32::from(!old) + u32::from(new))
    }

    /// [`sum_update16`] for a 32-bit field (two 16-bit words).
    pub fn sum_update32(sum: u16, old: u32, new: u32) -> u16 {
        let old = !old;
        fold(u32::from(sum) + (old >> 16) + (old & 0xFFFF) + (new >> 16) + (new & 0xFFFF))
    }

    /// RFC 1624 eqn. 3 for a stored (complemented) *checksum*: `HC' = ~(~HC + ~m + m')`.
    ///
    /// Unlike eqn. 2 this never turns a valid checksum into 0xFFFF, so the result is
    /// bit-identical to a from-scratch computation.
    pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
        !sum_update16(!csum, old, new)
    }

    /// [`update16`] for a 32-bit field (e.g. an IPv4 address).
    pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
        !sum_update32(!csum, old, new)
    }

    /// Unfolded sum of the IPv4 pseudo-header (src, dst, zero, protocol, L4 length).
    pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u32 {
        let s = u32::from(src);
        let d = u32::from(dst);
        (s >> 16)
            + (s & 0xFFFF)
            + (d >> 16)
            + (d & 0xFFFF)
            + u32::from(protocol)
            + u32::from(l4_len)
    }
}

// ---------------------------------------------------------------------------------------------
// In-place rewrites
// ---------------------------------------------------------------------------------------------

/// What the L4 checksum field of a packet currently holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsumMode {
    /// A complete checksum (normal packets, `CHECKSUM_UNNECESSARY`/`DATA_VALID`).
    Full,
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM` (`CHECKSUM_PARTIAL`): the field holds the uncomplemented
    /// folded pseudo-header sum, and whoever transmits the packet will add the L4 header and
    /// payload, fold, complement and store.
    Partial,
}

fn read16(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..)?.first_chunk::<2>()?;
    Some(u16::from_be_bytes(*b))
}

fn write16(buf: &mut [u8], off: usize, v: u16) -> Option<()> {
    buf.get_mut(off..)?.first_chunk_mut::<2>()?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

fn read32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..)?.first_chunk::<4>()?;
    Some(u32::from_be_bytes(*b))
}

fn write32(buf: &mut [u8], off: usize, v: u32) -> Option<()> {
    buf.get_mut(off..)?.first_chunk_mut::<4>()?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// Applies a change of a field covered by the L4 checksum to the L4 checksum at `off`.
///
/// `pseudo` says whether the field is part of the pseudo-header (addresses) rather than the L4
/// header itself (ports). Returns `None` only if `off` is out of bounds.
fn update_l4_csum(
    buf: &mut [u8],
    off: usize,
    is_udp: bool,
    mode: CsumMode,
    pseudo: bool,
    old: u32,
    new: u32,
) -> Option<()> {
    let c = read16(buf, off)?;
    let c = match mode {
        CsumMode::Full => {
            if is_udp && c == 0 {
                // A zero UDP checksum means "no checksum" and must stay that way.
                return Some(());
            }
            let c = checksum::update32(c, old, new);
            // UDP transmits a computed 0 as 0xFFFF since 0 would mean "none" (RFC 768).
            if is_udp && c == 0 { 0xFFFF } else { c }
        }
        CsumMode::Partial if !pseudo => {
            // The kernel sums the whole L4 header (ports included) when it completes the
            // checksum, so the partial sum only covers the pseudo-header and must not change.
            return Some(());
        }
        CsumMode::Partial => {
            // Linux stores `th->check = ~tcp_v4_check(len, saddr, daddr, 0)`, i.e. the folded
            // pseudo-header sum S *without* the final complement. The RFC 1624 form
            // `~(~HC + ~m + m')` assumes a complemented value; substituting HC = ~S gives
            // `~S' = ~(S + ~m + m')`, i.e. `S' = S + ~m + m'`, applied directly to the field.
            // Zero-UDP and 0 -> 0xFFFF rules do not apply: a folded non-zero sum is never 0,
            // and the kernel applies the UDP mangling itself after completing the sum.
            checksum::sum_update32(c, old, new)
        }
    };
    write16(buf, off, c)
}

/// Checks that every range a setter may touch is inside `buf`, so setters write all or nothing.
fn fits(buf: &[u8], info: &Ipv4Info) -> bool {
    let ihl = info.ihl_bytes().max(IPV4_MIN_LEN);
    let l4_end = match info.l4 {
        L4::Tcp { .. } => info.ihl_bytes() + TCP_MIN_LEN,
        L4::Udp { .. } => info.ihl_bytes() + UDP_LEN,
        L4::Icmp { .. } | L4::Other => 0,
    };
    buf.len() >= ihl && buf.len() >= l4_end
}

fn set_addr(buf: &mut [u8], info: &Ipv4Info, off: usize, new: Ipv4Addr, mode: CsumMode) {
    if !fits(buf, info) {
        return;
    }
    let Some(old) = read32(buf, off) else { return };
    let new = u32::from(new);
    if old == new {
        return;
    }
    let _ = set_addr_inner(buf, info, off, old, new, mode);
}

fn set_addr_inner(
    buf: &mut [u8],
    info: &Ipv4Info,
    off: usize,
    old: u32,
    new: u32,
    mode: CsumMode,
) -> Option<()> {
    write32(buf, off, new)?;
    // The IPv4 header checksum is never offloaded, so it is always a full checksum.
    let hc = read16(buf, IPV4_CSUM_OFF)?;
    write16(buf, IPV4_CSUM_OFF, checksum::update32(hc, old, new))?;
    // ICMP has no pseudo-header and non-first fragments have no L4 header (`l4` is Other):
    // `l4_csum_offset` is None for both.
    if let Some(csum_off) = info.l4_csum_offset() {
        let is_udp = matches!(info.l4, L4::Udp { .. });
        update_l4_csum(buf, csum_off, is_udp, mode, true, old, new)?;
    }
    Some(())
}

/// Rewrites the source address, fixing the IPv4 header checksum and the TCP/UDP checksum.
///
/// `l4_csum` says what the L4 checksum field holds (see [`CsumMode`]). No-op if `buf` does not
/// fit `info`.
pub fn set_src(buf: &mut [u8], info: &Ipv4Info, new: Ipv4Addr, l4_csum: CsumMode) {
    set_addr(buf, info, IPV4_SRC_OFF, new, l4_csum);
}

/// Rewrites the destination address; see [`set_src`].
pub fn set_dst(buf: &mut [u8], info: &Ipv4Info, new: Ipv4Addr, l4_csum: CsumMode) {
    set_addr(buf, info, IPV4_DST_OFF, new, l4_csum);
}

fn set_port(buf: &mut [u8], info: &Ipv4Info, port_off: usize, new: u16, mode: CsumMode) {
    let (Some(csum_off), true) = (info.l4_csum_offset(), fits(buf, info)) else {
        // Not TCP/UDP (or a non-first fragment): there is no port to rewrite.
        return;
    };
    let off = info.ihl_bytes() + port_off;
    let Some(old) = read16(buf, off) else { return };
    if old == new {
        return;
    }
    let is_udp = matches!(info.l4, L4::Udp { .. });
    let _ = write16(buf, off, new).and_then(|()| {
        update_l4_csum(buf, csum_off, is_udp, mode, false, u32::from(old), u32::from(new))
    });
}

/// Rewrites the TCP/UDP source port, fixing the L4 checksum in [`CsumMode::Full`] (in
/// [`CsumMode::Partial`] the checksum field is left alone: ports are not in the
/// pseudo-header). No-op for other protocols and non-first fragments.
pub fn set_src_port(buf: &mut [u8], info: &Ipv4Info, port: u16, mode: CsumMode) {
    set_port(buf, info, 0, port, mode);
}

/// Rewrites the TCP/UDP destination port; see [`set_src_port`].
pub fn set_dst_port(buf: &mut [u8], info: &Ipv4Info, port: u16, mode: CsumMode) {
    set_port(buf, info, 2, port, mode);
}

/// Rewrites the identifier of an ICMP echo request or reply (what NAT translates instead of a
/// port), fixing the ICMP checksum (never offloaded, no pseudo-header). No-op for other
/// messages.
pub fn set_icmp_ident(buf: &mut [u8], info: &Ipv4Info, ident: u16) {
    let L4::Icmp { kind: 0 | 8, ident: old, .. } = info.l4 else { return };
    let off = info.ihl_bytes();
    if old == ident || buf.len() < off + ICMP_MIN_LEN {
        return;
    }
    let Some(c) = read16(buf, off + 2) else { return };
    let _ = write16(buf, off + 4, ident);
    let _ = write16(buf, off + 2, checksum::update16(c, old, ident));
}

/// The identifier of an ICMP echo request or reply; `None` for other packets.
pub fn icmp_echo_ident(info: &Ipv4Info) -> Option<u16> {
    match info.l4 {
        L4::Icmp { kind: 0 | 8, ident, .. } => Some(ident),
        _ => None,
    }
}

/// Whether the IPv4 header checksum of a parsed packet verifies: the ones'-complement sum of
/// the whole header (options included, 20 to 60 bytes) is 0xFFFF. Never offloaded: the kernel
/// completes it before a packet reaches a TUN, whatever [`CsumMode`] the L4 checksum is in.
pub fn ipv4_header_checksum_ok(buf: &[u8], info: &Ipv4Info) -> bool {
    buf.get(..info.ihl_bytes()).is_some_and(|h| checksum::fold(checksum::ones_sum(h)) == 0xFFFF)
}

/// Decrements the TTL and incrementally fixes the IPv4 header checksum.
///
/// Returns false, leaving the packet unchanged, if the TTL is 0 or 1 (the packet must be
/// dropped and an ICMP time-exceeded may be sent) or if `buf` is shorter than an IPv4 header.
#[must_use = "a packet whose TTL cannot be decremented must be dropped"]
pub fn decrement_ttl(buf: &mut [u8]) -> bool {
    let Some(h) = buf.first_chunk_mut::<IPV4_MIN_LEN>() else {
        return false;
    };
    let ttl = h[IPV4_TTL_OFF];
    if ttl <= 1 {
        return false;
    }
    let proto = h[IPV4_TTL_OFF + 1];
    // The checksum covers TTL as the high byte of the (TTL, protocol) word.
    let old = u16::from_be_bytes([ttl, proto]);
    let new = u16::from_be_bytes([ttl - 1, proto]);
    let hc = u16::from_be_bytes([h[IPV4_CSUM_OFF], h[IPV4_CSUM_OFF + 1]]);
    let [c0, c1] = checksum::update16(hc, old, new).to_be_bytes();
    h[IPV4_TTL_OFF] = ttl - 1;
    h[IPV4_CSUM_OFF] = c0;
    h[IPV4_CSUM_OFF + 1] = c1;
    true
}

/// Completes a partial L4 checksum ([`CsumMode::Partial`]) as the kernel would before it
/// transmits: the field's pseudo-header sum plus the L4 header and payload, folded and
/// complemented (a computed 0 is sent as 0xFFFF in UDP, RFC 768). For a packet that must leave
/// without offload, such as one cut into fragments, each of which carries only part of what the
/// checksum covers. `buf` ends at the packet's total length. Nothing for ICMP and other
/// protocols (never partial) or a buffer that does not fit `info`.
pub fn complete_l4_checksum(buf: &mut [u8], info: &Ipv4Info) {
    let Some(off) = info.l4_csum_offset() else { return };
    if !fits(buf, info) {
        return;
    }
    let Some(segment) = buf.get(info.ihl_bytes()..) else { return };
    let c = !checksum::fold(checksum::ones_sum(segment));
    let c = if matches!(info.l4, L4::Udp { .. }) && c == 0 { 0xFFFF } else { c };
    let _ = write16(buf, off, c);
}

// ---------------------------------------------------------------------------------------------
// ICMP errors
// ---------------------------------------------------------------------------------------------

/// An ICMP error that quotes the datagram it is about (RFC 792): destination unreachable (3),
/// time exceeded (11) or parameter problem (12).
pub fn is_icmp_error(info: &Ipv4Info) -> bool {
    matches!(info.l4, L4::Icmp { kind: 3 | 11 | 12, .. })
}

/// The datagram an ICMP error quotes: its IPv4 header (options included) and at least the
/// first 8 bytes after it, enough for the ports (RFC 792). Produced by [`icmp_error_quote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of the quoted IPv4 header in the packet (even: the outer header is whole words,
    /// then the 8-byte ICMP header).
    off: usize,
    /// The quoted header's length in bytes (20..=60).
    ihl: usize,
    /// The quoted datagram's protocol.
    pub protocol: u8,
    /// Its source and destination addresses.
    pub src: u32,
    pub dst: u32,
    /// TCP/UDP source port, or the identifier of a quoted ICMP echo request or reply.
    pub sport: u16,
    /// TCP/UDP destination port; 0 for ICMP.
    pub dport: u16,
}

/// Why an ICMP error's quote cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteError {
    /// The ICMP checksum or the quoted IPv4 header checksum does not verify.
    BadChecksum,
    /// The quote is not an IPv4 header followed by 8 bytes.
    Malformed,
    /// The quoted datagram has no ports to find a flow by: a non-first fragment, or a protocol
    /// other than TCP, UDP and ICMP echo.
    NoPorts,
}

/// Reads the datagram an ICMP error (see [`is_icmp_error`]) quotes. `buf` is the packet,
/// trimmed to its total length. Verifies the ICMP checksum (over the whole message: ICMP
/// checksums are never offloaded) and the quoted IPv4 header's, as RFC 5508 REQ-3 asks; not
/// the quoted transport checksum (REQ-3 c: it "SHOULD NOT").
///
/// # Errors
///
/// [`QuoteError`] if a checksum is bad, the quote is cut short or has no ports.
pub fn icmp_error_quote(buf: &[u8], info: &Ipv4Info) -> Result<Quoted, QuoteError> {
    let icmp = buf.get(info.ihl_bytes()..).ok_or(QuoteError::Malformed)?;
    if !is_icmp_error(info) || icmp.len() < ICMP_MIN_LEN {
        return Err(QuoteError::Malformed);
    }
    if checksum::fold(checksum::ones_sum(icmp)) != 0xFFFF {
        return Err(QuoteError::BadChecksum);
    }
    let inner = &icmp[ICMP_MIN_LEN..];
    let first = *inner.first().ok_or(QuoteError::Malformed)?;
    let ihl = usize::from(first & 0x0F) * 4;
    if first >> 4 != 4 || ihl < IPV4_MIN_LEN || inner.len() < ihl + 8 {
        return Err(QuoteError::Malformed);
    }
    if checksum::fold(checksum::ones_sum(&inner[..ihl])) != 0xFFFF {
        return Err(QuoteError::BadChecksum);
    }
    let word = |o: usize| u16::from_be_bytes([inner[o], inner[o + 1]]);
    if word(6) & 0x1FFF != 0 {
        return Err(QuoteError::NoPorts);
    }
    let protocol = inner[9];
    let l4 = ihl;
    let (sport, dport) = match protocol {
        PROTO_TCP | PROTO_UDP => (word(l4), word(l4 + 2)),
        PROTO_ICMP if matches!(inner[l4], 0 | 8) => (word(l4 + 4), 0),
        _ => return Err(QuoteError::NoPorts),
    };
    let addr = |o: usize| u32::from(word(o)) << 16 | u32::from(word(o + 2));
    Ok(Quoted {
        off: info.ihl_bytes() + ICMP_MIN_LEN,
        ihl,
        protocol,
        src: addr(12),
        dst: addr(16),
        sport,
        dport,
    })
}

/// The largest ICMP error, quote included: RFC 1812 4.3.2.3, "the ICMP datagram SHOULD contain
/// as much of the original datagram as possible without the length of the ICMP datagram
/// exceeding 576 bytes" (576: the datagram every IPv4 host must accept, RFC 791).
pub const ICMP_ERROR_MAX: usize = 576;

/// The offset, in an ICMP error, of RFC 4884's length attribute: "the sixth octet" of
/// Destination Unreachable, Time Exceeded and Parameter Problem, the length of the original
/// datagram field in 32-bit words when an extension structure follows it, else 0.
const ICMP_RFC4884_LEN_OFF: usize = 5;

/// Cuts an ICMP error ([`is_icmp_error`]; `buf` trimmed to its total length) to its first `max`
/// bytes: its quote keeps the datagram's IP header and 8 bytes and as much after them as fits
/// (RFC 792 asks for the header and "the first 64 bits"). The total length and the IPv4 header
/// checksum (incrementally, RFC 1624) follow; RFC 4884's length attribute is cleared, since the
/// extension it points to is cut away (what is left reads as original datagram); the ICMP
/// checksum is computed again over what is left. Returns the new length: `buf.len()`, nothing
/// changed, when the error is not longer than `max`, or when `max` could cut into the quoted
/// header and its 8 bytes (less than an outer and a quoted header of 60 bytes, an ICMP header
/// and 8 bytes) or is over 65,535. Allocates nothing.
pub fn cut_icmp_error(buf: &mut [u8], info: &Ipv4Info, max: usize) -> usize {
    let ihl = info.ihl_bytes();
    let room = 60 + ICMP_MIN_LEN + 60 + 8;
    let Ok(new_len) = u16::try_from(max) else { return buf.len() };
    if buf.len() <= max || max < room || !is_icmp_error(info) {
        return buf.len();
    }
    let (Some(old_len), Some(hc)) = (read16(buf, IPV4_TOTLEN_OFF), read16(buf, IPV4_CSUM_OFF))
    else {
        return buf.len();
    };
    let _ = write16(buf, IPV4_TOTLEN_OFF, new_len);
    let _ = write16(buf, IPV4_CSUM_OFF, checksum::update16(hc, old_len, new_len));
    let icmp = &mut buf[ihl..max];
    icmp[ICMP_RFC4884_LEN_OFF] = 0;
    icmp[2..4].copy_from_slice(&[0, 0]);
    let c = !checksum::fold(checksum::ones_sum(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    max
}

/// Writes a 16-bit word inside an ICMP message and updates its checksum (at `csum_off`) for
/// it, incrementally (RFC 1624). `off - csum_off` must be even, as every field of a quote is.
fn icmp_write16(buf: &mut [u8], csum_off: usize, off: usize, new: u16) -> Option<()> {
    let old = read16(buf, off)?;
    let c = read16(buf, csum_off)?;
    write16(buf, off, new)?;
    write16(buf, csum_off, checksum::update16(c, old, new))
}

/// RFC 5508 REQ-4 a): reverts the quoted datagram of an ICMP error to the source address and
/// port (ICMP echo: identifier) the instance sent it with. The quoted IPv4 header checksum,
/// the quoted transport checksum where the quote holds it (UDP's always, TCP's if 18 bytes
/// are quoted, an echo's always; a zero UDP checksum stays zero) and the ICMP checksum are
/// updated incrementally. No-op if `buf` is shorter than the quote `q` was read from.
pub fn set_quoted_src(buf: &mut [u8], info: &Ipv4Info, q: &Quoted, src: Ipv4Addr, sport: u16) {
    if buf.len() < q.off + q.ihl + 8 {
        return;
    }
    let _ = set_quoted_inner(buf, info.ihl_bytes() + 2, q, Quote::Src, u32::from(src), sport);
}

/// RFC 5508 REQ-3 b) for an error an instance sends: the quoted datagram came in translated
/// (by the internet gateway or a NAT), and is put back to the destination address and port
/// (ICMP echo: identifier) it was sent to outside. Checksums as [`set_quoted_src`].
pub fn set_quoted_dst(buf: &mut [u8], info: &Ipv4Info, q: &Quoted, dst: Ipv4Addr, dport: u16) {
    if buf.len() < q.off + q.ihl + 8 {
        return;
    }
    let _ = set_quoted_inner(buf, info.ihl_bytes() + 2, q, Quote::Dst, u32::from(dst), dport);
}

/// Which side of a quoted datagram is translated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Src,
    Dst,
}

fn set_quoted_inner(
    buf: &mut [u8],
    icmp_csum: usize,
    q: &Quoted,
    side: Quote,
    new: u32,
    new_port: u16,
) -> Option<()> {
    let o = q.off;
    let addr_off = o + if side == Quote::Src { IPV4_SRC_OFF } else { IPV4_DST_OFF };
    let old = read32(buf, addr_off)?;
    let hc = read16(buf, o + IPV4_CSUM_OFF)?;
    icmp_write16(buf, icmp_csum, o + IPV4_CSUM_OFF, checksum::update32(hc, old, new))?;
    icmp_write16(buf, icmp_csum, addr_off, (new >> 16) as u16)?;
    icmp_write16(buf, icmp_csum, addr_off + 2, new as u16)?;
    let l4 = o + q.ihl;
    let port = if side == Quote::Src { 0 } else { 2 };
    let (port_off, csum_off, pseudo) = match q.protocol {
        PROTO_TCP => (l4 + port, l4 + TCP_CSUM_OFF, true),
        PROTO_UDP => (l4 + port, l4 + UDP_CSUM_OFF, true),
        // An echo's identifier (either side); its checksum has no pseudo-header.
        _ => (l4 + 4, l4 + 2, false),
    };
    let old_port = read16(buf, port_off)?;
    // Absent from a short quote (TCP's checksum lies past the first 8 bytes).
    if let Some(c) = read16(buf, csum_off)
        && !(q.protocol == PROTO_UDP && c == 0)
    {
        let c = if pseudo { checksum::update32(c, old, new) } else { c };
        let c = checksum::update16(c, old_port, new_port);
        let c = if q.protocol == PROTO_UDP && c == 0 { 0xFFFF } else { c };
        icmp_write16(buf, icmp_csum, csum_off, c)?;
    }
    icmp_write16(buf, icmp_csum, port_off, new_port)
}

// ---------------------------------------------------------------------------------------------
// Packet construction
// ---------------------------------------------------------------------------------------------

/// The length of a TCP RST as [`write_tcp_rst`] writes it.
pub const TCP_RST_LEN: usize = IPV4_MIN_LEN + TCP_MIN_LEN;

/// Builds an IPv4 TCP RST (with ACK and `ack` when given) with full checksums, TTL 64,
/// window 0 and no payload.
pub fn build_tcp_rst(
    src: Ipv4Addr,
    src_port: u16,
    dst: Ipv4Addr,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    let mut out = vec![0; TCP_RST_LEN];
    write_tcp_rst(&mut out, src, src_port, dst, dst_port, seq, ack);
    out
}

/// [`build_tcp_rst`] into the first [`TCP_RST_LEN`] bytes of `buf`, without allocating (the
/// pipeline answers with it in the buffer of the packet it answers); `None`, `buf` unchanged,
/// if it is shorter.
pub fn write_tcp_rst(
    buf: &mut [u8],
    src: Ipv4Addr,
    src_port: u16,
    dst: Ipv4Addr,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
) -> Option<usize> {
    let out = buf.get_mut(..TCP_RST_LEN)?;
    let builder = etherparse::PacketBuilder::ipv4(src.octets(), dst.octets(), 64)
        .tcp(src_port, dst_port, seq, 0)
        .rst();
    let builder = match ack {
        Some(ack) => builder.ack(ack),
        None => builder,
    };
    // A payload-less segment is exactly TCP_RST_LEN bytes, far below every limit etherparse
    // checks, so writing it into a slice of that length cannot fail.
    builder.write(&mut &mut *out, &[]).ok()?;
    Some(TCP_RST_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        IpFragOffset, IpHeaders, IpNumber, Ipv4Header, PacketBuilder, TcpHeader, UdpHeader,
    };
    use proptest::prelude::*;

    // --- fixtures (etherparse is the independent encoder) ------------------------------------

    fn ip(a: [u8; 4]) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_pkt(
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        sp: u16,
        dp: u16,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src, dst, ttl).tcp(sp, dp, seq, 1000).ack(ack).psh();
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).unwrap();
        v
    }

    fn udp_pkt(
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        sp: u16,
        dp: u16,
        payload: &[u8],
        zero_csum: bool,
    ) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src, dst, ttl).udp(sp, dp);
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).unwrap();
        if zero_csum {
            v[20 + 6] = 0;
            v[20 + 7] = 0;
        }
        v
    }

    fn icmp_echo_pkt() -> Vec<u8> {
        let b =
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).icmpv4_echo_request(0x1234, 7);
        let mut v = Vec::new();
        b.write(&mut v, b"ping").unwrap();
        v
    }

    /// A non-first fragment of a UDP datagram: offset 185 (1480 bytes), raw payload.
    fn fragment_pkt() -> Vec<u8> {
        let payload = [0xABu8; 64];
        let mut h = Ipv4Header::new(64, 64, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        h.fragment_offset = IpFragOffset::try_new(185).unwrap();
        let mut v = Vec::new();
        h.write(&mut v).unwrap(); // `write` fills in the header checksum
        v.extend_from_slice(&payload);
        v
    }

    /// UDP with 8 bytes of IPv4 options (IHL 7).
    fn options_pkt() -> Vec<u8> {
        let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        // NOP padding + end-of-list: contents do not matter to the parser.
        h.options = [1u8, 1, 1, 1, 1, 1, 1, 0].into();
        let b = PacketBuilder::ip(IpHeaders::Ipv4(h, Default::default())).udp(5000, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"hello options").unwrap();
        v
    }

    fn tcp_with_options_pkt() -> Vec<u8> {
        let mut th = TcpHeader::new(40000, 443, 1, 65535);
        th.syn = true;
        th.set_options_raw(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2]).unwrap();
        let b = PacketBuilder::ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64).tcp_header(th);
        let mut v = Vec::new();
        b.write(&mut v, b"syn data").unwrap();
        v
    }

    // --- independent checksum reference --------------------------------------------------------

    /// Straightforward RFC 1071 sum, deliberately not sharing code with `checksum`.
    fn ref_sum(parts: &[&[u8]]) -> u16 {
        let mut s: u64 = 0;
        for p in parts {
            assert!(p.len() % 2 == 0 || std::ptr::eq(*p, *parts.last().unwrap()));
            for (i, b) in p.iter().enumerate() {
                s += if i % 2 == 0 { u64::from(*b) << 8 } else { u64::from(*b) };
            }
        }
        while s >> 16 != 0 {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    fn ref_pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u16 {
        let l = len.to_be_bytes();
        ref_sum(&[&src, &dst, &[0, proto, l[0], l[1]]])
    }

    /// Asserts the IPv4 header checksum and (unless zero UDP) L4 checksum are valid.
    fn assert_valid(buf: &[u8]) {
        let (h, _) = Ipv4Header::from_slice(buf).unwrap();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "ipv4 header checksum");
        let rest = &buf[h.header_len()..usize::from(h.total_len)];
        // Independent double check: a valid header sums to 0xFFFF.
        assert_eq!(ref_sum(&[&buf[..h.header_len()]]), 0xFFFF);
        if h.fragment_offset.value() != 0 {
            return; // no L4 header to check
        }
        match h.protocol {
            IpNumber::TCP => {
                let (th, payload) = TcpHeader::from_slice(rest).unwrap();
                assert_eq!(th.checksum, th.calc_checksum_ipv4(&h, payload).unwrap(), "tcp");
            }
            IpNumber::UDP => {
                let (uh, payload) = UdpHeader::from_slice(rest).unwrap();
                if uh.checksum != 0 {
                    assert_eq!(uh.checksum, uh.calc_checksum_ipv4(&h, payload).unwrap(), "udp");
                }
            }
            _ => {}
        }
    }

    fn info(buf: &[u8]) -> Ipv4Info {
        parse(buf).unwrap()
    }

    // --- vnet header ---------------------------------------------------------------------------

    #[test]
    fn vnet_roundtrip_and_le() {
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4 | VnetHdr::GSO_ECN,
            hdr_len: 0x0102,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut buf = [0u8; 12];
        h.write(&mut buf);
        assert_eq!(&buf[..10], &[1, 0x81, 0x02, 0x01, 0xa8, 0x05, 20, 0, 16, 0]);
        assert_eq!(VnetHdr::parse(&buf), Some(h));
        assert_eq!(h.to_bytes(), buf[..10]);
        assert!(h.needs_csum() && h.is_gso());
        assert_eq!(h.csum_mode(), CsumMode::Partial);
        assert_eq!(VnetHdr::parse(&buf[..9]), None);
        let plain = VnetHdr { gso_type: VnetHdr::GSO_ECN, ..VnetHdr::default() };
        assert!(!plain.is_gso() && !plain.needs_csum());
        assert_eq!(plain.csum_mode(), CsumMode::Full);
    }

    // --- parse ---------------------------------------------------------------------------------

    #[test]
    fn parse_tcp() {
        let p = tcp_pkt([10, 0, 0, 1], [10, 0, 0, 2], 64, 1234, 80, 7, 9, b"abc");
        let i = info(&p);
        assert_eq!(i.src(), ip([10, 0, 0, 1]));
        assert_eq!(i.dst_u32(), 0x0a00_0002);
        assert_eq!(i.src_u32(), u32::from(i.src()));
        assert_eq!((i.protocol(), i.ihl_bytes(), i.ttl()), (6, 20, 64));
        assert_eq!(usize::from(i.total_len()), p.len());
        assert!(!i.is_fragment() && !i.is_non_first_fragment());
        let L4::Tcp { src_port, dst_port, seq, ack, flags, header_len, payload_len } = i.l4()
        else {
            panic!("not tcp: {i:?}")
        };
        assert_eq!((src_port, dst_port, seq, ack), (1234, 80, 7, 9));
        assert_eq!(flags, tcp_flags::ACK | tcp_flags::PSH);
        assert_eq!((header_len, payload_len), (20, 3));
        assert_eq!(i.l4_csum_offset(), Some(36));
    }

    #[test]
    fn parse_tcp_options_and_trailing_bytes() {
        let mut p = tcp_with_options_pkt();
        p.extend_from_slice(&[0xEE; 6]); // e.g. Ethernet padding: ignored
        let i = info(&p);
        let L4::Tcp { header_len, payload_len, flags, .. } = i.l4() else { panic!() };
        assert_eq!((header_len, payload_len, flags), (28, 8, tcp_flags::SYN));
        assert_eq!(usize::from(i.total_len()), p.len() - 6);
    }

    #[test]
    fn parse_udp_icmp_fragment_options() {
        let u = udp_pkt([1, 1, 1, 1], [2, 2, 2, 2], 3, 53, 5353, b"q", false);
        assert_eq!(info(&u).l4(), L4::Udp { src_port: 53, dst_port: 5353 });
        assert_eq!(info(&u).l4_csum_offset(), Some(26));

        let i = info(&icmp_echo_pkt());
        assert_eq!(i.l4(), L4::Icmp { kind: 8, code: 0, ident: 0x1234 });
        assert_eq!(i.l4_csum_offset(), None);

        let f = info(&fragment_pkt());
        assert!(f.is_non_first_fragment() && f.is_fragment() && !f.more_fragments());
        assert_eq!((f.protocol(), f.l4()), (17, L4::Other));

        let o = info(&options_pkt());
        assert_eq!(o.ihl_bytes(), 28);
        assert_eq!(o.l4(), L4::Udp { src_port: 5000, dst_port: 53 });
        assert_eq!(o.l4_csum_offset(), Some(34));
    }

    #[test]
    fn parse_icmp_error_has_no_ident() {
        let mut p = icmp_echo_pkt();
        p[20] = 3; // destination unreachable; bytes 4..6 are unused / next-hop MTU
        assert_eq!(info(&p).l4(), L4::Icmp { kind: 3, code: 0, ident: 0 });
    }

    #[test]
    fn parse_other_protocol() {
        let mut h = Ipv4Header::new(4, 64, IpNumber(47), [1, 1, 1, 1], [2, 2, 2, 2]).unwrap();
        h.more_fragments = true;
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(&[0; 4]);
        let i = info(&v);
        assert_eq!((i.protocol(), i.l4()), (47, L4::Other));
        assert!(i.is_fragment() && !i.is_non_first_fragment() && i.more_fragments());
    }

    #[test]
    fn parse_errors() {
        use Malformed::*;
        let good = tcp_pkt([10, 0, 0, 1], [10, 0, 0, 2], 64, 1, 2, 3, 4, b"xyz");

        assert_eq!(parse(&good[..10]), Err(TooShort { required: 20, len: 10 }));
        assert_eq!(parse(&[]), Err(TooShort { required: 20, len: 0 }));
        let mut p = good.clone();
        p[0] = 0x4F; // IHL 15 = 60 bytes, buffer is 43
        assert_eq!(parse(&p), Err(TooShort { required: 60, len: 43 }));

        let mut p = good.clone();
        p[0] = 0x60;
        assert_eq!(parse(&p), Err(NotIpv4 { version: 6 }));

        let mut p = good.clone();
        p[0] = 0x44;
        assert_eq!(parse(&p), Err(BadIhl { ihl: 4 }));

        assert_eq!(
            parse(&good[..good.len() - 1]),
            Err(TotalLenExceedsBuffer { total_len: 43, len: 42 })
        );

        let mut p = good.clone();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(parse(&p), Err(TotalLenTooSmall { total_len: 19, header_len: 20 }));

        let mut p = good.clone();
        p[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert_eq!(parse(&p), Err(TruncatedL4 { protocol: 6, required: 20, len: 10 }));

        let mut p = good.clone();
        p[20 + 12] = 4 << 4;
        assert_eq!(parse(&p), Err(BadTcpDataOffset { data_offset: 4 }));

        let mut p = good.clone();
        p[20 + 12] = 15 << 4; // 60-byte TCP header in a 23-byte L4
        assert_eq!(parse(&p), Err(TruncatedL4 { protocol: 6, required: 60, len: 23 }));

        let u = udp_pkt([1, 1, 1, 1], [2, 2, 2, 2], 3, 53, 53, b"", false);
        assert_eq!(parse_gso(&u[..27]), Err(TruncatedL4 { protocol: 17, required: 8, len: 7 }));
        let i = icmp_echo_pkt();
        assert_eq!(parse_gso(&i[..24]), Err(TruncatedL4 { protocol: 1, required: 8, len: 4 }));
    }

    #[test]
    fn error_messages_are_lowercase_without_period() {
        use Malformed::*;
        let all = [
            TooShort { required: 20, len: 1 },
            NotIpv4 { version: 6 },
            BadIhl { ihl: 1 },
            TotalLenExceedsBuffer { total_len: 9, len: 1 },
            TotalLenTooSmall { total_len: 1, header_len: 20 },
            TruncatedL4 { protocol: 6, required: 20, len: 1 },
            BadTcpDataOffset { data_offset: 1 },
        ];
        for e in all {
            let m = e.to_string();
            assert!(m.chars().next().unwrap().is_lowercase(), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }

    #[test]
    fn parse_gso_is_lenient_about_total_len() {
        let p = tcp_pkt([10, 0, 0, 1], [10, 0, 0, 2], 64, 1, 2, 3, 4, &[7; 3000]);
        for bogus in [0u16, 20, 100, 3040, 65535] {
            let mut q = p.clone();
            q[2..4].copy_from_slice(&bogus.to_be_bytes());
            let i = parse_gso(&q).unwrap();
            assert_eq!(i.total_len(), bogus);
            let L4::Tcp { payload_len, .. } = i.l4() else { panic!() };
            assert_eq!(payload_len, 3000);
            // Plain parse: only a total_len that leaves a full TCP header inside the buffer
            // is acceptable, and then the payload stops at total_len.
            match bogus {
                100 | 3040 => assert!(parse(&q).is_ok_and(|i| matches!(
                    i.l4(),
                    L4::Tcp { payload_len, .. } if payload_len == usize::from(bogus) - 40
                ))),
                _ => assert!(parse(&q).is_err()),
            }
        }
    }

    // --- setters: examples ---------------------------------------------------------------------

    #[test]
    fn set_src_icmp_and_fragment_leave_l4_alone() {
        for p in [icmp_echo_pkt(), fragment_pkt()] {
            let i = info(&p);
            let mut q = p.clone();
            set_src(&mut q, &i, ip([192, 168, 7, 7]), CsumMode::Full);
            set_dst(&mut q, &i, ip([192, 168, 8, 8]), CsumMode::Full);
            set_src_port(&mut q, &i, 9, CsumMode::Full);
            set_dst_port(&mut q, &i, 9, CsumMode::Full);
            assert_eq!(q[20..], p[20..], "l4 bytes must be untouched");
            assert_eq!(&q[12..20], &[192, 168, 7, 7, 192, 168, 8, 8]);
            assert_valid(&q);
        }
        // The ICMP checksum itself must still verify (it has no pseudo-header).
        let p = icmp_echo_pkt();
        let mut q = p.clone();
        set_src(&mut q, &info(&p), ip([1, 2, 3, 4]), CsumMode::Full);
        assert_eq!(ref_sum(&[&q[20..]]), 0xFFFF);
    }

    #[test]
    fn set_with_ip_options() {
        let p = options_pkt();
        let i = info(&p);
        let mut q = p.clone();
        set_dst(&mut q, &i, ip([8, 8, 8, 8]), CsumMode::Full);
        set_src_port(&mut q, &i, 4242, CsumMode::Full);
        assert!(decrement_ttl(&mut q));
        assert_valid(&q);
        assert_eq!(info(&q).l4(), L4::Udp { src_port: 4242, dst_port: 53 });
    }

    /// An address change whose new UDP checksum computes to 0 must store 0xFFFF (RFC 768),
    /// exactly as a from-scratch encoder does.
    #[test]
    fn udp_checksum_zero_result_becomes_ffff() {
        let p = udp_pkt([10, 0, 0, 1], [10, 0, 0, 2], 64, 1000, 2000, b"data!", false);
        let mut z = p.clone();
        z[26..28].fill(0);
        let len = (p.len() - 20) as u16;
        // Sum of everything the checksum covers, excluding the checksum itself.
        let d = ref_sum(&[&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17], &len.to_be_bytes(), &z[20..]]);
        // Choose the new low src word so that the new sum is 0xFFFF ("negative zero"),
        // whose complement is 0.
        let m_new = ref_sum(&[&[0x00, 0x01], &(!d).to_be_bytes()]);
        let [a, b] = m_new.to_be_bytes();
        let nsrc = [10, 0, a, b];
        let fresh = udp_pkt(nsrc, [10, 0, 0, 2], 64, 1000, 2000, b"data!", false);
        assert_eq!(&fresh[26..28], &[0xFF, 0xFF], "fixture must hit the zero case");
        let mut q = p.clone();
        set_src(&mut q, &info(&p), ip(nsrc), CsumMode::Full);
        assert_eq!(q, fresh);
    }

    #[test]
    fn header_checksum_is_verified_over_the_whole_header() {
        for p in [options_pkt(), udp_pkt([1, 1, 1, 1], [2, 2, 2, 2], 9, 1, 2, b"x", false)] {
            assert!(ipv4_header_checksum_ok(&p, &info(&p)));
            for i in 0..info(&p).ihl_bytes() {
                let mut q = p.clone();
                q[i] ^= 0x10;
                // Flipping a bit of the version or IHL may make it unparsable instead.
                if let Ok(j) = parse(&q) {
                    assert!(!ipv4_header_checksum_ok(&q, &j), "byte {i}");
                }
            }
        }
    }

    #[test]
    fn decrement_ttl_edges() {
        for ttl in [0u8, 1] {
            let p = udp_pkt([1, 1, 1, 1], [2, 2, 2, 2], ttl, 1, 2, b"x", false);
            let mut q = p.clone();
            assert!(!decrement_ttl(&mut q));
            assert_eq!(p, q);
        }
        let mut p = udp_pkt([1, 1, 1, 1], [2, 2, 2, 2], 2, 1, 2, b"x", false);
        assert!(decrement_ttl(&mut p));
        assert_eq!(info(&p).ttl(), 1);
        assert_valid(&p);
        assert!(!decrement_ttl(&mut [0x45; 19]));
    }

    #[test]
    fn setters_on_mismatched_buffer_are_noops() {
        let p = tcp_with_options_pkt();
        let i = info(&p);
        let mut short = p[..30].to_vec();
        let before = short.clone();
        set_src(&mut short, &i, ip([9, 9, 9, 9]), CsumMode::Full);
        set_dst_port(&mut short, &i, 1, CsumMode::Partial);
        assert_eq!(short, before);
    }

    #[test]
    fn checksum_helpers() {
        use checksum::*;
        assert_eq!(ones_sum(&[]), 0);
        assert_eq!(ones_sum(&[0x12]), 0x1200);
        assert_eq!(ones_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(fold(0x0001_FFFF), 0x0001);
        assert_eq!(fold(0xFFFF_FFFF), 0xFFFF);
        assert_eq!(fold(0), 0);
        assert_eq!(add(0xFFFF_FFFF, 1), 1);
        // 100 KiB of 0xFF: large enough to overflow a naive u32 word sum.
        let big = vec![0xFFu8; 1 << 20];
        assert_eq!(fold(ones_sum(&big)), ref_sum(&[&big]));
        // RFC 1624 section 4 example: HC 0xDD2F, m 0x5555 -> 0x3285 gives 0x0000.
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0x0000);
        let (s, d) = ([10, 1, 2, 3], [172, 16, 0, 9]);
        assert_eq!(fold(pseudo_header_sum(ip(s), ip(d), 6, 1234)), ref_pseudo(s, d, 6, 1234));
    }

    // --- build_tcp_rst -------------------------------------------------------------------------

    #[test]
    fn rst_builder() {
        for ack in [None, Some(0xDEAD_BEEF)] {
            let p = build_tcp_rst(ip([10, 0, 0, 1]), 443, ip([10, 0, 0, 2]), 5555, 42, ack);
            assert_eq!(p.len(), 40);
            assert_valid(&p);
            let (h, rest) = Ipv4Header::from_slice(&p).unwrap();
            assert_eq!(
                (h.time_to_live, h.source, h.destination),
                (64, [10, 0, 0, 1], [10, 0, 0, 2])
            );
            let (th, payload) = TcpHeader::from_slice(rest).unwrap();
            assert!(payload.is_empty());
            assert!(th.rst && !th.syn && !th.fin && !th.psh);
            assert_eq!((th.source_port, th.destination_port), (443, 5555));
            assert_eq!((th.sequence_number, th.window_size), (42, 0));
            assert_eq!(th.ack, ack.is_some());
            assert_eq!(th.acknowledgment_number, ack.unwrap_or(0));
            // And our own parser agrees.
            let L4::Tcp { flags, seq, .. } = info(&p).l4() else { panic!() };
            let want = tcp_flags::RST | if ack.is_some() { tcp_flags::ACK } else { 0 };
            assert_eq!((flags, seq), (want, 42));
        }
    }

    // --- robustness ----------------------------------------------------------------------------

    /// Runs every setter in both modes on a copy of `buf`; must never panic.
    fn exercise(buf: &[u8]) {
        for parsed in [parse(buf), parse_gso(buf)] {
            let Ok(i) = parsed else { continue };
            let _ = (i.src(), i.dst_u32(), i.l4(), i.l4_csum_offset(), i.is_fragment());
            for mode in [CsumMode::Full, CsumMode::Partial] {
                let mut q = buf.to_vec();
                set_src(&mut q, &i, ip([1, 2, 3, 4]), mode);
                set_dst(&mut q, &i, ip([255, 255, 255, 255]), mode);
                set_src_port(&mut q, &i, 0, mode);
                set_dst_port(&mut q, &i, 65535, mode);
                let _ = decrement_ttl(&mut q);
            }
            let end = usize::from(i.total_len()).min(buf.len());
            if let Ok(quote) = icmp_error_quote(&buf[..end], &i) {
                let mut q = buf[..end].to_vec();
                set_quoted_src(&mut q, &i, &quote, ip([9, 9, 9, 9]), 7);
                set_quoted_src(&mut q[..end / 2], &i, &quote, ip([9, 9, 9, 9]), 7);
            }
        }
        let mut q = buf.to_vec();
        let _ = decrement_ttl(&mut q);
    }

    #[test]
    fn every_truncation_is_handled() {
        let fixtures = [
            tcp_pkt([10, 0, 0, 1], [10, 0, 0, 2], 64, 1, 2, 3, 4, b"payload"),
            tcp_with_options_pkt(),
            udp_pkt([1, 1, 1, 1], [2, 2, 2, 2], 3, 53, 5353, b"q", false),
            icmp_echo_pkt(),
            fragment_pkt(),
            options_pkt(),
            build_tcp_rst(ip([1, 1, 1, 1]), 1, ip([2, 2, 2, 2]), 2, 3, Some(4)),
        ];
        for p in fixtures {
            assert!(parse(&p).is_ok());
            for n in 0..=p.len() {
                let t = &p[..n];
                if n < p.len() {
                    assert!(parse(t).is_err(), "truncated to {n} must fail total_len check");
                }
                exercise(t);
            }
        }
    }

    // --- property tests ------------------------------------------------------------------------

    #[derive(Debug, Clone)]
    struct Case {
        tcp: bool,
        udp_zero: bool,
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        sp: u16,
        dp: u16,
        seq: u32,
        ack: u32,
        payload: Vec<u8>,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<(u16, u16, u32, u32)>(),
            prop::collection::vec(any::<u8>(), 0..1500),
        )
            .prop_map(|(tcp, udp_zero, src, dst, ttl, (sp, dp, seq, ack), payload)| Case {
                tcp,
                udp_zero,
                src,
                dst,
                ttl,
                sp,
                dp,
                seq,
                ack,
                payload,
            })
    }

    fn build(c: &Case) -> Vec<u8> {
        if c.tcp {
            tcp_pkt(c.src, c.dst, c.ttl, c.sp, c.dp, c.seq, c.ack, &c.payload)
        } else {
            udp_pkt(c.src, c.dst, c.ttl, c.sp, c.dp, &c.payload, c.udp_zero)
        }
    }

    /// Deterministic filler so 64 KiB payloads do not go through proptest shrinking.
    fn filler(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Full mode: each rewrite keeps all checksums valid, and the final packet is
        /// byte-identical to one built from scratch with the new fields.
        #[test]
        fn full_mode_rewrites(
            c in case(),
            nsrc in any::<[u8; 4]>(),
            ndst in any::<[u8; 4]>(),
            nsp in any::<u16>(),
            ndp in any::<u16>(),
        ) {
            let mut p = build(&c);
            assert_valid(&p);
            let i = parse(&p).unwrap();
            set_src(&mut p, &i, ip(nsrc), CsumMode::Full);
            assert_valid(&p);
            set_dst(&mut p, &i, ip(ndst), CsumMode::Full);
            assert_valid(&p);
            set_src_port(&mut p, &i, nsp, CsumMode::Full);
            assert_valid(&p);
            set_dst_port(&mut p, &i, ndp, CsumMode::Full);
            assert_valid(&p);
            let before = p.clone();
            let dec = decrement_ttl(&mut p);
            prop_assert_eq!(dec, c.ttl > 1);
            if !dec {
                prop_assert_eq!(&p, &before);
            }
            assert_valid(&p);

            let n = Case {
                src: nsrc, dst: ndst, sp: nsp, dp: ndp,
                ttl: if dec { c.ttl - 1 } else { c.ttl },
                ..c.clone()
            };
            prop_assert_eq!(p, build(&n));
        }

        /// Partial mode on (super)packets of up to 64 KiB: after the rewrites the checksum
        /// field equals the fresh pseudo-header sum, and completing it as the kernel does
        /// yields exactly the from-scratch checksum.
        #[test]
        fn partial_mode_superpackets(
            c in case(),
            len in 0usize..=(65535 - 40),
            seed in any::<u64>(),
            nsrc in any::<[u8; 4]>(),
            ndst in any::<[u8; 4]>(),
            nsp in any::<u16>(),
            ndp in any::<u16>(),
        ) {
            let c = Case { tcp: true, payload: filler(seed, len), ..c };
            let mut p = build(&c);
            let tcp_len = u16::try_from(p.len() - 20).unwrap();
            // What Linux leaves in th->check for CHECKSUM_PARTIAL: ~tcp_v4_check(..., 0).
            let partial = ref_pseudo(c.src, c.dst, 6, tcp_len);
            p[36..38].copy_from_slice(&partial.to_be_bytes());

            let i = parse_gso(&p).unwrap();
            prop_assert_eq!(i, parse(&p).unwrap());
            set_src(&mut p, &i, ip(nsrc), CsumMode::Partial);
            set_dst(&mut p, &i, ip(ndst), CsumMode::Partial);
            let after_addrs = u16::from_be_bytes([p[36], p[37]]);
            set_src_port(&mut p, &i, nsp, CsumMode::Partial);
            set_dst_port(&mut p, &i, ndp, CsumMode::Partial);
            prop_assert!(decrement_ttl(&mut p) || c.ttl <= 1);

            let field = u16::from_be_bytes([p[36], p[37]]);
            prop_assert_eq!(field, after_addrs, "port changes must not touch a partial sum");
            prop_assert_eq!(field, ref_pseudo(nsrc, ndst, 6, tcp_len));
            // The IPv4 header checksum is always full.
            let (h, _) = Ipv4Header::from_slice(&p).unwrap();
            prop_assert_eq!(h.header_checksum, h.calc_header_checksum());

            // Complete like skb_checksum_help: sum from csum_start (incl. the field), fold,
            // complement, store.
            let done = !ref_sum(&[&p[20..]]);
            p[36..38].copy_from_slice(&done.to_be_bytes());
            assert_valid(&p);
            let n = Case {
                src: nsrc, dst: ndst, sp: nsp, dp: ndp,
                ttl: if c.ttl > 1 { c.ttl - 1 } else { c.ttl },
                ..c
            };
            prop_assert_eq!(p, build(&n));
        }

        /// Partial mode for UDP (USO / NEEDS_CSUM on UDP) works the same way.
        #[test]
        fn partial_mode_udp(c in case(), nsrc in any::<[u8; 4]>(), ndst in any::<[u8; 4]>()) {
            let c = Case { tcp: false, udp_zero: false, ..c };
            let mut p = build(&c);
            let udp_len = u16::try_from(p.len() - 20).unwrap();
            p[26..28].copy_from_slice(&ref_pseudo(c.src, c.dst, 17, udp_len).to_be_bytes());
            let i = parse(&p).unwrap();
            set_src(&mut p, &i, ip(nsrc), CsumMode::Partial);
            set_dst(&mut p, &i, ip(ndst), CsumMode::Partial);
            prop_assert_eq!(
                u16::from_be_bytes([p[26], p[27]]),
                ref_pseudo(nsrc, ndst, 17, udp_len)
            );
        }

        #[test]
        fn garbage_never_panics(buf in prop::collection::vec(any::<u8>(), 0..128)) {
            exercise(&buf);
        }

        /// Garbage quoted by a well-formed ICMP error, to reach the quote's parser and setter.
        #[test]
        fn garbage_quotes_never_panic(
            mut quote in prop::collection::vec(any::<u8>(), 0..96),
            ihl in 0u8..=15,
            proto in prop::sample::select(vec![1u8, 6, 17, 47]),
            kind in prop::sample::select(vec![3u8, 11, 12]),
        ) {
            if let Some(b) = quote.first_mut() {
                *b = 0x40 | ihl;
            }
            if let Some(b) = quote.get_mut(9) {
                *b = proto;
            }
            // Mostly a first fragment with a valid header checksum, to get past both checks.
            let hl = usize::from(ihl) * 4;
            if hl >= 20 && quote.len() >= hl {
                quote[6] &= 0xE0;
                quote[7] = 0;
                quote[10..12].fill(0);
                let c = !checksum::fold(checksum::ones_sum(&quote[..hl]));
                quote[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let b = PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
                .icmpv4_raw(kind, 0, [0; 4]);
            let mut v = Vec::new();
            b.write(&mut v, &quote).unwrap();
            exercise(&v);
        }

        /// Garbage behind a plausible header prefix, to reach the L4 parsers and setters.
        #[test]
        fn plausible_garbage_never_panics(
            mut buf in prop::collection::vec(any::<u8>(), 20..160),
            ihl in 5u8..=15,
            proto in prop::sample::select(vec![1u8, 6, 17, 47]),
            frag in any::<bool>(),
            exact_len in any::<bool>(),
        ) {
            buf[0] = 0x40 | ihl;
            buf[9] = proto;
            if !frag {
                buf[6] &= 0xE0;
                buf[7] = 0;
            }
            if exact_len {
                let l = u16::try_from(buf.len()).unwrap();
                buf[2..4].copy_from_slice(&l.to_be_bytes());
            }
            exercise(&buf);
        }
    }

    #[test]
    fn truncations_of_random_valid_packets() {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
        runner
            .run(&case(), |c| {
                let p =
                    build(&Case { payload: c.payload[..c.payload.len().min(64)].to_vec(), ..c });
                for n in 0..=p.len() {
                    exercise(&p[..n]);
                }
                Ok(())
            })
            .unwrap();
    }

    proptest! {
        /// Cutting an ICMP error keeps it a valid error quoting the same datagram: lengths and
        /// checksums agree, the quote still gives the same tuple; nothing happens when it is
        /// short enough, or when `max` could cut into the quoted header and its 8 bytes.
        #[test]
        fn a_cut_icmp_error_stays_valid(
            data in 0usize..3000,
            max in 0usize..2000,
            rfc4884 in any::<u8>(),
        ) {
            use etherparse::{Icmpv4Type, icmpv4::DestUnreachableHeader};
            let quoted =
                udp_pkt([10, 0, 1, 10], [198, 51, 100, 10], 64, 5000, 53, &vec![7; data], false);
            let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
            let b = PacketBuilder::ipv4([198, 51, 100, 10], [203, 0, 113, 10], 64).icmpv4(t);
            let mut err = Vec::new();
            b.write(&mut err, &quoted).unwrap();
            err[25] = rfc4884;
            err[22..24].copy_from_slice(&[0, 0]);
            let c = !checksum::fold(checksum::ones_sum(&err[20..]));
            err[22..24].copy_from_slice(&c.to_be_bytes());
            let before = err.clone();
            let info = parse(&err).unwrap();
            let q = icmp_error_quote(&err, &info).unwrap();
            let n = cut_icmp_error(&mut err, &info, max);
            if before.len() <= max || max < 136 {
                prop_assert_eq!(n, before.len());
                prop_assert_eq!(&err, &before);
                return Ok(());
            }
            prop_assert_eq!(n, max);
            let cut = &err[..n];
            let again = parse(cut).unwrap();
            prop_assert_eq!(usize::from(again.total_len()), n);
            prop_assert!(ipv4_header_checksum_ok(cut, &again));
            prop_assert_eq!(icmp_error_quote(cut, &again), Ok(q));
            prop_assert_eq!(cut[25], 0);
            prop_assert_eq!(&cut[..2], &before[..2]);
            prop_assert_eq!(&cut[4..10], &before[4..10]);
            prop_assert_eq!(&cut[12..22], &before[12..22]);
            prop_assert_eq!(&cut[26..], &before[26..n]);
        }
    }
}
