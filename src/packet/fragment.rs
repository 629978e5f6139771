//! IPv4 fragmentation (RFC 791), for a packet too big for the internet gateway's 1500 bytes
//! that may be fragmented (no DF).
//!
//! RFC 791, "Fragmentation and Reassembly": every fragment but the last carries a multiple of
//! 8 data bytes and the more-fragments flag; the last keeps the original's flag (the original
//! may itself be a fragment); each fragment's offset is the original's plus the position of its
//! data; total length and header checksum are each fragment's own. Identification, TOS, TTL
//! and protocol are copied. Simplification: the IP options stay in the first fragment only
//! (RFC 791 copies those whose "copied" flag is set into every fragment; instances send none).
//!
//! Invariants: pure, no allocation; [`fragment`] writes fragment `index` into a caller's buffer
//! and never panics; every fragment it writes is at most `mtu` bytes, and the fragments
//! reassemble to the original datagram.

use super::{IPV4_CSUM_OFF, IPV4_MIN_LEN, checksum};

/// Offset of the flags and fragment offset word.
const FLAGS_OFF: usize = 6;
const MF: u16 = 0x2000;
const DF: u16 = 0x4000;
const OFFSET_MASK: u16 = 0x1FFF;

/// How a packet is cut: its header length, its data length, and the data bytes of the first
/// fragment (after the full header) and of each later one (after a 20-byte header).
struct Plan {
    ihl: usize,
    data: usize,
    first: usize,
    rest: usize,
}

/// `None` if `pkt` is no IPv4 packet ending at its total length, has DF set while larger than
/// `mtu`, or `mtu` leaves no room for 8 data bytes after its header.
fn plan(pkt: &[u8], mtu: usize) -> Option<Plan> {
    let h = pkt.first_chunk::<IPV4_MIN_LEN>()?;
    let ihl = usize::from(h[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if h[0] >> 4 != 4 || ihl < IPV4_MIN_LEN || total != pkt.len() || total < ihl {
        return None;
    }
    if pkt.len() > mtu && u16::from_be_bytes([h[6], h[7]]) & DF != 0 {
        return None;
    }
    let first = mtu.checked_sub(ihl)? & !7;
    let rest = mtu.checked_sub(IPV4_MIN_LEN)? & !7;
    if first == 0 {
        return None;
    }
    Some(Plan { ihl, data: total - ihl, first, rest })
}

/// How many fragments [`fragment`] cuts `pkt` into for `mtu` (1 if it fits; 0 if it cannot be
/// fragmented: see [`fragment`]).
pub fn fragment_count(pkt: &[u8], mtu: usize) -> usize {
    match plan(pkt, mtu) {
        Some(_) if pkt.len() <= mtu => 1,
        Some(p) => 1 + (p.data.saturating_sub(p.first)).div_ceil(p.rest),
        None => 0,
    }
}

/// Writes fragment `index` of `pkt` (an IPv4 packet ending at its total length) for a link of
/// `mtu` bytes into the start of `out`; returns its length. A packet that fits is its own
/// fragment 0. `None` past the last fragment, or if `pkt` cannot be fragmented (not IPv4, total
/// length not `pkt.len()`, DF set, `mtu` below its header and 8 bytes, or an offset past RFC
/// 791's 13 bits), or `out` is too short.
pub fn fragment(pkt: &[u8], mtu: usize, index: usize, out: &mut [u8]) -> Option<usize> {
    let p = plan(pkt, mtu)?;
    if pkt.len() <= mtu {
        let o = out.get_mut(..pkt.len()).filter(|_| index == 0)?;
        o.copy_from_slice(pkt);
        return Some(pkt.len());
    }
    // The data this fragment carries, as offsets into the original's data.
    let (start, hlen) = match index {
        0 => (0, p.ihl),
        i => (p.first.checked_add((i - 1).checked_mul(p.rest)?)?, IPV4_MIN_LEN),
    };
    if start >= p.data {
        return None;
    }
    let end = p.data.min(start + if index == 0 { p.first } else { p.rest });
    let last = end == p.data;
    let len = hlen + (end - start);
    let o = out.get_mut(..len)?;
    o[..hlen].copy_from_slice(&pkt[..hlen]);
    o[hlen..].copy_from_slice(&pkt[p.ihl + start..p.ihl + end]);
    // IHL (5 after the first), total length, flags and offset, then the checksum afresh.
    o[0] = 0x40 | (hlen / 4) as u8;
    o[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    let word = u16::from_be_bytes([pkt[FLAGS_OFF], pkt[FLAGS_OFF + 1]]);
    let offset = usize::from(word & OFFSET_MASK) + start / 8;
    if offset > usize::from(OFFSET_MASK) {
        return None;
    }
    let mf = if last { word & MF } else { MF };
    let word = (word & !(OFFSET_MASK | MF)) | mf | offset as u16;
    o[FLAGS_OFF..FLAGS_OFF + 2].copy_from_slice(&word.to_be_bytes());
    o[IPV4_CSUM_OFF..IPV4_CSUM_OFF + 2].fill(0);
    let c = !checksum::fold(checksum::ones_sum(&o[..hlen]));
    o[IPV4_CSUM_OFF..IPV4_CSUM_OFF + 2].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpFragOffset, Ipv4Header, Ipv4Options, PacketBuilder};
    use proptest::prelude::*;

    /// A UDP datagram of `len` data bytes without DF (etherparse's builder sets it), with
    /// `options` (a multiple of 4 bytes).
    fn udp(len: usize, options: &[u8]) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let b = PacketBuilder::ipv4([10, 0, 2, 10], [198, 51, 100, 10], 64).udp(5000, 5001);
        let mut v = Vec::new();
        b.write(&mut v, &payload).unwrap();
        let (mut h, rest) = Ipv4Header::from_slice(&v).unwrap();
        h.dont_fragment = false;
        h.identification = 0x4242;
        h.options = Ipv4Options::try_from(options).unwrap();
        h.set_payload_len(rest.len()).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut w = Vec::new();
        h.write(&mut w).unwrap();
        w.extend_from_slice(rest);
        w
    }

    fn all(pkt: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut out = vec![0u8; 65_536];
        let frags: Vec<Vec<u8>> = (0..)
            .map_while(|i| fragment(pkt, mtu, i, &mut out).map(|n| out[..n].to_vec()))
            .collect();
        assert_eq!(frags.len(), fragment_count(pkt, mtu));
        frags
    }

    /// Reassembles fragments as a receiver would (RFC 791), checking each header with
    /// etherparse: returns the original's first offset, last MF flag and data.
    fn reassemble(frags: &[Vec<u8>], mtu: usize) -> (u16, bool, Vec<u8>) {
        let mut data = Vec::new();
        let mut first_off = None;
        let mut mf = true;
        for f in frags {
            assert!(f.len() <= mtu, "{} > {mtu}", f.len());
            let (h, rest) = Ipv4Header::from_slice(f).unwrap();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "header checksum");
            assert_eq!(usize::from(h.total_len), f.len());
            assert!(!h.dont_fragment);
            let off = h.fragment_offset.value();
            let base = *first_off.get_or_insert(off);
            assert_eq!(usize::from(off - base) * 8, data.len(), "contiguous");
            assert!(mf, "a fragment after the last");
            mf = h.more_fragments;
            if mf {
                assert_eq!(rest.len() % 8, 0, "a multiple of 8 bytes but in the last");
            }
            data.extend_from_slice(rest);
        }
        (first_off.unwrap(), mf, data)
    }

    #[test]
    fn an_8000_byte_datagram_in_1500_byte_fragments_reassembles() {
        let pkt = udp(8000 - 28, &[]);
        let frags = all(&pkt, 1500);
        assert_eq!(frags.len(), 6);
        assert_eq!(frags[0].len(), 1500);
        assert_eq!(frags[0][20..1500], pkt[20..1500], "the first carries the UDP header");
        let (off, mf, data) = reassemble(&frags, 1500);
        assert_eq!((off, mf), (0, false));
        assert_eq!(data, pkt[20..]);
        for f in &frags {
            assert_eq!((&f[4..6], f[8], f[9]), (&pkt[4..6], pkt[8], pkt[9]), "id, ttl, protocol");
            assert_eq!(&f[12..20], &pkt[12..20]);
        }
    }

    #[test]
    fn options_stay_in_the_first_fragment() {
        // A no-op, a record route of 7 bytes and an end of list: 12 bytes, IHL 8.
        let pkt = udp(4000, &[1, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(pkt[0], 0x48);
        let frags = all(&pkt, 1500);
        assert_eq!(frags[0][0], 0x48);
        assert_eq!(frags[0].len(), 32 + 1464, "1468 rounded down to 8");
        assert!(frags[1..].iter().all(|f| f[0] == 0x45));
        assert_eq!(reassemble(&frags, 1500).2, pkt[32..]);
    }

    #[test]
    fn a_fragment_is_cut_again_with_its_offset_and_last_flag() {
        // A middle fragment (offset 1000 units, MF) of 3000 data bytes.
        let whole = udp(3000 - 8, &[]);
        let (mut h, rest) = Ipv4Header::from_slice(&whole).unwrap();
        h.fragment_offset = IpFragOffset::try_new(1000).unwrap();
        h.more_fragments = true;
        h.dont_fragment = false;
        h.header_checksum = h.calc_header_checksum();
        let mut pkt = Vec::new();
        h.write(&mut pkt).unwrap();
        pkt.extend_from_slice(rest);
        let frags = all(&pkt, 1500);
        assert_eq!(frags.len(), 3);
        let (off, mf, data) = reassemble(&frags, 1500);
        assert_eq!((off, mf, data.as_slice()), (1000, true, rest));
    }

    #[test]
    fn what_cannot_be_fragmented_is_refused() {
        let mut out = vec![0u8; 9000];
        let df = {
            let pkt = udp(3000, &[]);
            let (mut h, rest) = Ipv4Header::from_slice(&pkt).unwrap();
            h.dont_fragment = true;
            h.header_checksum = h.calc_header_checksum();
            let mut v = Vec::new();
            h.write(&mut v).unwrap();
            v.extend_from_slice(rest);
            v
        };
        assert_eq!(fragment(&df, 1500, 0, &mut out), None, "DF");
        assert_eq!(fragment_count(&df, 1500), 0);
        let pkt = udp(3000, &[]);
        assert_eq!(fragment(&pkt[..2000], 1500, 0, &mut out), None, "cut short");
        assert_eq!(fragment(&pkt, 27, 0, &mut out), None, "no room for 8 bytes");
        assert_eq!(fragment(&pkt, 1500, 0, &mut out[..100]), None, "output too short");
        assert_eq!(fragment(&[0x45], 1500, 0, &mut out), None);
        // A packet that fits is its own only fragment, DF or not.
        let small = udp(100, &[]);
        assert_eq!(all(&small, 1500), vec![small.clone()]);
        assert_eq!(fragment(&small, 1500, 1, &mut out), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any datagram, any link of at least 68 bytes (RFC 791's minimum): every fragment fits
        /// and has a valid header, and they reassemble to the original.
        #[test]
        fn fragments_fit_and_reassemble(len in 0usize..20_000, mtu in 68usize..9001, opt in 0usize..4) {
            let options = [1u8; 12];
            let pkt = udp(len, &options[..opt * 4]);
            let frags = all(&pkt, mtu);
            prop_assert!(!frags.is_empty());
            let (off, mf, data) = reassemble(&frags, mtu);
            prop_assert_eq!((off, mf), (0, false));
            prop_assert_eq!(&data[..], &pkt[20 + opt * 4..]);
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), mtu in 0usize..300, i in 0usize..8) {
            let mut out = [0u8; 300];
            let _ = fragment(&bytes, mtu, i, &mut out);
            let _ = fragment_count(&bytes, mtu);
        }
    }
}
