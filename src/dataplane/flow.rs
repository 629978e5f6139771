//! The flow table: every TCP, UDP and ICMP flow that left a subnet through an internet gateway
//! or a gateway endpoint, keyed by its tuple as seen *outside* the VPC (after NAT).
//!
//! Why outside: return traffic from the aws namespace to a private address can only be placed
//! back into the right subnet by its flow, and the S3 stub asks "which endpoint did this
//! connection come through" with the tuple its socket sees. Both are outside views.
//!
//! Invariants: the table is sharded by key hash; one shard lock is held for one lookup or
//! update, never across shards and never while doing I/O. Both directions of a flow arrive on
//! different threads, so this is the only state they share.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::fib::{EndpointInfo, PortId};

const SHARDS: usize = 64;

/// A flow's tuple, oriented from the instance (client) to the remote side, addresses as seen
/// outside the VPC. For ICMP, `sport` is the echo identifier and `dport` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub proto: u8,
    pub src: u32,
    pub sport: u16,
    pub dst: u32,
    pub dport: u16,
}

/// Two 64-bit words instead of five field writes: the key is hashed twice per packet (shard,
/// then map), and SipHash's cost is per write. Equal keys write equal words (`Eq` is by field).
impl Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.src) << 32 | u64::from(self.dst));
        state.write_u64(
            u64::from(self.sport) << 32 | u64::from(self.dport) << 16 | u64::from(self.proto),
        );
    }
}

/// How a flow leaves the VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowPath {
    /// Through an internet gateway: the source was NATed to the instance's public IP; `aws`:
    /// the destination was an AWS range (so the flow went to the aws namespace).
    Igw { aws: bool },
    /// Through a gateway endpoint: source unchanged.
    Vpce(Arc<EndpointInfo>),
    /// To the VPC's resolver (base + 2), which lives in the aws namespace: the VPC's id (a
    /// thin pointer, so that the path stays 16 bytes).
    Resolver(Arc<String>),
    /// Inside the VPC (a `local` route), remembered only for the security groups: keyed by
    /// private addresses, oriented from the instance that opened it; each instance's side is
    /// tracked or not by its own groups ([`TcpState::UNTRACKED`], [`TcpState::PEER_UNTRACKED`]).
    Local,
    /// Through a NAT gateway or NAT instance, then the NAT's own way out (never `Nat` itself).
    Nat(Box<Napt>),
}

impl FlowPath {
    /// How the flow leaves the VPC: for a flow through a NAT, the NAT's way out (which is
    /// never `Nat`: it is built only from `Igw` or `Vpce`).
    pub fn way(&self) -> &FlowPath {
        match self {
            FlowPath::Nat(n) => &n.way,
            p => p,
        }
    }

    /// The port translation of a flow through a NAT.
    pub fn napt(&self) -> Option<&Napt> {
        match self {
            FlowPath::Nat(n) => Some(n),
            _ => None,
        }
    }
}

/// TCP sequence state per direction, enough to build a RST that the receiver accepts. A UDP
/// flow uses only `close`, for its request-response transactions ([`TcpState::udp_seen`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpState {
    /// Next sequence number the instance will send (seq + len of its last segment).
    pub out_next: u32,
    /// Next sequence number the remote side will send.
    pub in_next: u32,
    pub seen_out: bool,
    pub seen_in: bool,
    /// [`TcpState::FIN_OUT`], [`TcpState::FIN_IN`] and [`TcpState::RST`] seen so far, and
    /// which sides are untracked (one byte, so that the flow stays 40 bytes).
    pub close: u8,
}

impl TcpState {
    /// The instance sent a FIN.
    pub const FIN_OUT: u8 = 1;
    /// The remote side sent a FIN.
    pub const FIN_IN: u8 = 2;
    /// Either side sent an RST.
    pub const RST: u8 = 4;
    /// Untracked by the instance's security groups (TCP and UDP; see `filter::sg_untracked`):
    /// every packet of the flow is judged by its rules. For a [`FlowPath::Local`] flow, the
    /// side of the instance that opened it. Kept across the other bits' changes.
    pub const UNTRACKED: u8 = 8;
    /// A [`FlowPath::Local`] flow only: untracked by the security groups of the instance it
    /// was opened to. Kept across the other bits' changes.
    pub const PEER_UNTRACKED: u8 = 16;
    /// The bits every change of the others keeps.
    pub const SIDES: u8 = Self::UNTRACKED | Self::PEER_UNTRACKED;

    pub fn untracked(&self) -> bool {
        self.close & Self::UNTRACKED != 0
    }

    pub fn peer_untracked(&self) -> bool {
        self.close & Self::PEER_UNTRACKED != 0
    }

    /// A new flow's state.
    pub fn with_untracked(untracked: bool) -> TcpState {
        TcpState::with_sides(untracked, false)
    }

    /// A new local flow's state: whether the opener's side and the other instance's side are
    /// untracked.
    pub fn with_sides(untracked: bool, peer_untracked: bool) -> TcpState {
        let close = if untracked { Self::UNTRACKED } else { 0 }
            | if peer_untracked { Self::PEER_UNTRACKED } else { 0 };
        TcpState { close, ..TcpState::default() }
    }

    /// Closed: a FIN in both directions, or an RST. A half-closed connection (one FIN) is not:
    /// the other direction may still carry data for as long as it likes.
    pub fn closed(&self) -> bool {
        self.close & Self::RST != 0 || self.close & (Self::FIN_OUT | Self::FIN_IN) == 3
    }

    /// UDP: the direction of the last packet (bit 0, set = outbound) and the number of turns
    /// of direction so far (bits 1-2, saturating at 3).
    const UDP_OUT: u8 = 1;
    const UDP_TURNS: u8 = 0b110;

    /// A UDP packet of this flow, outbound or not. A request and its response are one turn of
    /// direction; the third turn completes a second request-response transaction, whichever
    /// side asked first.
    pub fn udp_seen(&mut self, outbound: bool) {
        let last_out = self.close & Self::UDP_OUT != 0;
        let turns = (self.close & Self::UDP_TURNS) >> 1;
        // The first packet sets the direction; it is no turn.
        let first = !self.seen_out && !self.seen_in;
        let turns = if !first && last_out != outbound { (turns + 1).min(3) } else { turns };
        self.close = self.close & Self::SIDES | turns << 1 | u8::from(outbound);
        if outbound {
            self.seen_out = true;
        } else {
            self.seen_in = true;
        }
    }

    /// A UDP stream in AWS's sense: "flows classified as streams which have seen more than one
    /// request-response transaction" (EC2 API, `ConnectionTrackingSpecification`).
    pub fn udp_stream(&self) -> bool {
        (self.close & Self::UDP_TURNS) >> 1 >= 3
    }
}

/// Port translation by a NAT gateway or NAT instance: the key's source is the NAT's address
/// and a port (ICMP: identifier) it chose; the instance used `inside_port`. Boxed in
/// [`FlowPath::Nat`]: most flows have none, and the flow stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Napt {
    /// The NAT's way out: `Igw` or `Vpce`.
    pub way: FlowPath,
    /// `nat-…` or `i-…`.
    pub nat: Arc<str>,
    /// The port of the NAT's subnet (its network ACL judges the flow's packets too).
    pub nat_port: PortId,
    pub inside_port: u16,
}

/// A flow's last-seen time: milliseconds of the process's monotonic clock, wrapping (a `u32`
/// instead of a 16-byte `Instant`: the flow table holds a million of them). Differences are
/// exact while they are under 24 days; idle times are at most the 350 s TCP timeout plus one
/// expiry interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp(u32);

static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

impl Stamp {
    pub fn at(t: Instant) -> Stamp {
        // Truncation to 32 bits is the wrapping; an instant before the epoch wraps below 0.
        // Milliseconds without `as_millis`' 128-bit division: this runs for every packet.
        let ms =
            |d: Duration| (d.as_secs().wrapping_mul(1000) as u32).wrapping_add(d.subsec_millis());
        match t.checked_duration_since(*EPOCH) {
            Some(d) => Stamp(ms(d)),
            None => Stamp(ms(EPOCH.duration_since(t)).wrapping_neg()),
        }
    }

    /// How long after `self` is `now` (zero if `now` is not later).
    pub fn idle(self, now: Stamp) -> Duration {
        let d = now.0.wrapping_sub(self.0) as i32;
        Duration::from_millis(d.max(0) as u64)
    }
}

/// One tracked flow: 40 bytes (a million of them are benchmark 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub path: FlowPath,
    /// The subnet port and private address of the instance.
    pub port: PortId,
    pub private_ip: u32,
    pub last_seen: Stamp,
    pub tcp: TcpState,
}

/// Idle timeouts. Through a NAT, TCP's is the 350 s AWS documents for NAT gateways ("If a
/// connection that's using a NAT gateway is idle for 350 seconds or more, the connection times
/// out"); elsewhere a TCP flow is the security groups' connection tracking, whose established
/// TCP timeout is 432,000 s (5 days) by default (EC2's ConnectionTrackingSpecification). A TCP
/// flow gets the short one only once [`TcpState::closed`] (a FIN each way, or an RST), not after
/// one FIN.
pub const TCP_IDLE: Duration = Duration::from_secs(350);
pub const TCP_ESTABLISHED_IDLE: Duration = Duration::from_secs(432_000);
pub const TCP_CLOSING_IDLE: Duration = Duration::from_secs(10);
/// A TCP flow whose other side has not answered (a SYN nobody acknowledged: one direction's
/// sequence is still unknown). AWS documents only the established timeout
/// (`tcpEstablishedTimeout`, "for idle TCP connections in an established state"), so the
/// others are shorter; this is Linux conntrack's `nf_conntrack_tcp_timeout_syn_sent`, 120 s,
/// which a NAT instance applies too. Without it a SYN flood to unanswering addresses would be
/// held for the 5-day established timeout, or a NAT gateway's port for 350 s.
pub const TCP_UNANSWERED_IDLE: Duration = Duration::from_secs(120);
/// UDP: the security groups' connection tracking defaults, "udpTimeout ... for idle UDP flows
/// that have seen traffic only in a single direction or a single request-response
/// transaction ... Default: 30 seconds" and "udpStreamTimeout ... for idle UDP flows classified
/// as streams which have seen more than one request-response transaction ... Default: 180
/// seconds" (EC2 API, `ConnectionTrackingSpecification`).
pub const UDP_IDLE: Duration = Duration::from_secs(30);
pub const UDP_STREAM_IDLE: Duration = Duration::from_secs(180);
pub const ICMP_IDLE: Duration = Duration::from_secs(30);
/// Any other protocol: "For protocols other than TCP, UDP, or ICMP, only the IP address and
/// protocol number is tracked. If your instance sends traffic to another host (host B), and
/// host B initiates the same type of traffic to your instance in a separate request within 600
/// seconds of the original request or response, your instance accepts it regardless of inbound
/// security group rules." (EC2 guide, security group connection tracking)
pub const OTHER_IDLE: Duration = Duration::from_secs(600);

/// Instance-side tuple → the NAT's address and port.
type NaptShard = HashMap<FlowKey, (u32, u16)>;

/// A NAT's "unique destination" (its address, then the destination's address, port and
/// protocol) → how many of its flows go there.
type DestKey = (u32, u32, u16, u8);

/// "A NAT gateway can support up to 55,000 simultaneous connections to each unique
/// destination" (Amazon VPC User Guide, NAT gateway basics); a unique destination is an
/// address, a port and a protocol. Per address of the NAT gateway: the lab's have one. A NAT
/// instance (Linux) has no such limit beyond its 64,512 ports.
pub const NAT_GATEWAY_PER_DESTINATION: u32 = 55_000;

/// What became of [`FlowTable::insert_napt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaptInsert {
    Inserted,
    /// The outside tuple (this port) is another flow's.
    Taken,
    /// The NAT has its limit of flows to this destination.
    DestinationFull,
    /// The table is at its limit ([`MAX_FLOWS`]).
    TableFull,
}

/// How many flows the table holds at most, all VPCs together: 2^20 (1,048,576; about 145 MB
/// with the maps' overhead). AWS limits the tracked connections per instance by its type (the
/// ENA statistic `conntrack_allowance_exceeded`: "the number of packets dropped because
/// connection tracking exceeded the maximum for the instance and new connections could not be
/// established") without publishing the figures; the lab has one limit for the whole table,
/// so that a flood of new flows cannot take the machine's memory. A new flow beyond it is
/// dropped ([`Full`]); the flows already tracked keep working.
pub const MAX_FLOWS: usize = 1 << 20;

/// The table is at its limit ([`MAX_FLOWS`]): no new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// The flows, plus the index a NAT needs for outbound packets: the instance's own tuple (its
/// private address and port) → the NAT's address and port chosen for it. An index entry exists
/// exactly as long as its flow (both go in [`FlowTable::remove_where`] and
/// [`FlowTable::expire`]).
pub struct FlowTable {
    shards: Box<[Mutex<HashMap<FlowKey, Flow>>]>,
    napt: Box<[Mutex<NaptShard>]>,
    /// NAT flows per destination ([`NAT_GATEWAY_PER_DESTINATION`]), kept with the index.
    dests: Box<[Mutex<HashMap<DestKey, u32>>]>,
    hasher: std::collections::hash_map::RandomState,
    /// Flows in the table: counted on insert and removal (not per packet), so that the limit
    /// costs one atomic add per new flow.
    count: AtomicUsize,
    limit: usize,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable::with_limit(MAX_FLOWS)
    }
}

/// The instance-side key of a NAT flow (private address and inside port).
pub fn inside_key(key: &FlowKey, flow: &Flow) -> Option<FlowKey> {
    let n = flow.path.napt()?;
    Some(FlowKey { src: flow.private_ip, sport: n.inside_port, ..*key })
}

impl FlowTable {
    /// A table that holds at most `limit` flows.
    pub fn with_limit(limit: usize) -> FlowTable {
        FlowTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            napt: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            dests: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            count: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes one place for a new flow; `Err(Full)` at the limit. Two threads racing for the
    /// last place cannot both get it: the add is atomic and undone by the loser.
    fn reserve(&self) -> Result<(), Full> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(Full);
        }
        Ok(())
    }

    fn release(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::Relaxed);
    }

    fn shard(&self, key: &FlowKey) -> MutexGuard<'_, HashMap<FlowKey, Flow>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A poisoned shard only means another thread panicked while holding it; the map itself
        // is still a valid map, so keep forwarding.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn napt_shard(&self, key: &FlowKey) -> MutexGuard<'_, NaptShard> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.napt[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The NAT address and port of an instance-side tuple.
    pub fn napt_get(&self, inside: &FlowKey) -> Option<(u32, u16)> {
        self.napt_shard(inside).get(inside).copied()
    }

    fn dest_shard(&self, key: &DestKey) -> MutexGuard<'_, HashMap<DestKey, u32>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.dests[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many NAT flows `nat` (an address) has to the destination of `key`.
    pub fn napt_to(&self, nat: u32, key: &FlowKey) -> u32 {
        let d = (nat, key.dst, key.dport, key.proto);
        self.dest_shard(&d).get(&d).copied().unwrap_or(0)
    }

    /// Inserts a NAT flow (`key`: its outside tuple) if that tuple is free and, with
    /// `per_destination`, the NAT has fewer flows to the destination. The index entry is
    /// written after the flow, so a reader that finds it finds the flow. `make` is called only
    /// when the flow goes in, so a taken candidate costs no allocation. The destination's
    /// count is held from the check to the insertion: two workers cannot both take the last.
    pub fn insert_napt(
        &self,
        key: FlowKey,
        per_destination: Option<u32>,
        make: impl FnOnce() -> Flow,
    ) -> NaptInsert {
        let d = (key.src, key.dst, key.dport, key.proto);
        let mut dests = self.dest_shard(&d);
        let n = dests.get(&d).copied().unwrap_or(0);
        if per_destination.is_some_and(|limit| n >= limit) {
            return NaptInsert::DestinationFull;
        }
        let inside = {
            let mut shard = self.shard(&key);
            let std::collections::hash_map::Entry::Vacant(slot) = shard.entry(key) else {
                return NaptInsert::Taken;
            };
            let flow = make();
            let Some(inside) = inside_key(&key, &flow) else { return NaptInsert::Taken };
            if self.reserve().is_err() {
                return NaptInsert::TableFull;
            }
            slot.insert(flow);
            inside
        };
        dests.insert(d, n + 1);
        drop(dests);
        // A mapping this replaces (the NAT's address changed) leaves its old flow to expire.
        self.napt_shard(&inside).insert(inside, (key.src, key.sport));
        NaptInsert::Inserted
    }

    /// The NAT flows `removed` (outside and inside tuples) leave the index and their
    /// destinations' counts.
    fn forget_napt(&self, removed: &[(FlowKey, FlowKey)]) {
        for (key, inside) in removed {
            {
                let mut idx = self.napt_shard(inside);
                // Only if the index still points at this flow.
                if idx.get(inside) == Some(&(key.src, key.sport)) {
                    idx.remove(inside);
                }
            }
            let d = (key.src, key.dst, key.dport, key.proto);
            let mut dests = self.dest_shard(&d);
            if let Some(n) = dests.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    dests.remove(&d);
                }
            }
        }
        if !removed.is_empty() {
            for shard in self.napt.iter() {
                shrink(&mut shard.lock().unwrap_or_else(|p| p.into_inner()));
            }
            for shard in self.dests.iter() {
                shrink(&mut shard.lock().unwrap_or_else(|p| p.into_inner()));
            }
        }
    }

    /// Runs `f` on the flow, creating it with `new` if absent. Returns what `f` returns, or
    /// `Err(Full)` if the flow is new and the table at its limit (nothing is changed).
    pub fn upsert<R>(
        &self,
        key: FlowKey,
        new: impl FnOnce() -> Flow,
        f: impl FnOnce(&mut Flow) -> R,
    ) -> Result<R, Full> {
        use std::collections::hash_map::Entry;
        let mut shard = self.shard(&key);
        let flow = match shard.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(slot) => {
                self.reserve()?;
                slot.insert(new())
            }
        };
        Ok(f(flow))
    }

    /// Runs `f` on an existing flow.
    pub fn with<R>(&self, key: &FlowKey, f: impl FnOnce(&mut Flow) -> R) -> Option<R> {
        self.shard(key).get_mut(key).map(f)
    }

    pub fn get(&self, key: &FlowKey) -> Option<Flow> {
        self.shard(key).get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns every flow for which `pred` holds, one shard at a time.
    pub fn remove_where(
        &self,
        mut pred: impl FnMut(&FlowKey, &Flow) -> bool,
    ) -> Vec<(FlowKey, Flow)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<FlowKey> =
                map.iter().filter(|(k, f)| pred(k, f)).map(|(k, _)| *k).collect();
            for k in keys {
                if let Some(f) = map.remove(&k) {
                    out.push((k, f));
                }
            }
            shrink(&mut map);
        }
        self.release(out.len());
        let napt: Vec<(FlowKey, FlowKey)> =
            out.iter().filter_map(|(k, f)| Some((*k, inside_key(k, f)?))).collect();
        self.forget_napt(&napt);
        out
    }

    /// Removes flows idle past their timeout; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let now = Stamp::at(now);
        let mut removed = 0;
        let mut napt = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = map.len();
            map.retain(|k, f| {
                let keep = f.last_seen.idle(now) < idle_timeout(k, f);
                if !keep && let Some(inside) = inside_key(k, f) {
                    napt.push((*k, inside));
                }
                keep
            });
            removed += before - map.len();
            shrink(&mut map);
        }
        self.release(removed);
        self.forget_napt(&napt);
        removed
    }
}

/// Gives memory back once a map is a quarter full: a flood of flows that expired does not
/// keep its peak's memory (a `HashMap` never shrinks by itself). Half-full after, so a table
/// that hovers near one size does not grow and shrink on every pass.
fn shrink<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

fn idle_timeout(key: &FlowKey, flow: &Flow) -> Duration {
    match key.proto {
        6 if flow.tcp.closed() => TCP_CLOSING_IDLE,
        6 if !(flow.tcp.seen_out && flow.tcp.seen_in) => TCP_UNANSWERED_IDLE,
        6 if matches!(flow.path, FlowPath::Nat(_)) => TCP_IDLE,
        6 => TCP_ESTABLISHED_IDLE,
        17 if flow.tcp.udp_stream() => UDP_STREAM_IDLE,
        17 => UDP_IDLE,
        1 => ICMP_IDLE,
        _ => OTHER_IDLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_measure_idle_time_around_the_epoch() {
        let t0 = *EPOCH;
        let s = |ms: u64| Stamp::at(t0 + Duration::from_millis(ms));
        assert_eq!(s(1_000).idle(s(351_000)), Duration::from_secs(350));
        // Before the epoch (an `Instant` taken earlier) wraps below 0 and still subtracts.
        if let Some(before) = t0.checked_sub(Duration::from_millis(2_500)) {
            assert_eq!(Stamp::at(before).idle(s(500)), Duration::from_secs(3));
        }
        // A stamp later than "now" (a packet seen while the expiry ran) is not idle.
        assert_eq!(s(10_000).idle(s(9_000)), Duration::ZERO);
        // Across the 32-bit wrap (49.7 days).
        let wrap = 1u64 << 32;
        assert_eq!(s(wrap - 1_000).idle(s(wrap + 4_000)), Duration::from_secs(5));
    }

    #[test]
    fn udp_streams_are_told_from_single_transactions() {
        let flow = |t: TcpState| Flow {
            path: FlowPath::Igw { aws: false },
            port: 0,
            private_ip: 0,
            last_seen: Stamp(0),
            tcp: t,
        };
        let key = FlowKey { src: 1, dst: 2, sport: 3, dport: 4, proto: 17 };
        let mut t = TcpState::default();
        // One direction only, however many packets: 30 s.
        for _ in 0..5 {
            t.udp_seen(true);
        }
        assert_eq!(idle_timeout(&key, &flow(t)), UDP_IDLE);
        // One request-response (a DNS query and its answer): still 30 s.
        t.udp_seen(false);
        assert_eq!(idle_timeout(&key, &flow(t)), UDP_IDLE);
        // A second request: not yet; its response completes the second transaction: 180 s.
        t.udp_seen(true);
        assert!(!t.udp_stream());
        t.udp_seen(false);
        assert_eq!(idle_timeout(&key, &flow(t)), UDP_STREAM_IDLE);
        t.udp_seen(true);
        assert!(t.udp_stream(), "it stays a stream");
        // The same from the other side (a server behind a public IP answering twice).
        let mut t = TcpState::default();
        for out in [false, true, false, false, true] {
            t.udp_seen(out);
        }
        assert!(t.udp_stream());
        assert_eq!(UDP_IDLE.as_secs(), 30);
        // ICMP 30 s; GRE (any other protocol, tracked by addresses and protocol) 600 s.
        let icmp = FlowKey { proto: 1, ..key };
        assert_eq!(idle_timeout(&icmp, &flow(TcpState::default())), ICMP_IDLE);
        let gre = FlowKey { proto: 47, sport: 0, dport: 0, ..key };
        assert_eq!(idle_timeout(&gre, &flow(TcpState::default())), Duration::from_secs(600));
    }

    #[test]
    fn expiry_gives_the_memory_of_a_flood_back_and_the_count_follows() {
        let table = FlowTable::default();
        let t0 = Instant::now();
        let flow = || Flow {
            path: FlowPath::Igw { aws: false },
            port: 0,
            private_ip: 0,
            last_seen: Stamp::at(t0),
            tcp: TcpState::default(),
        };
        for i in 0..100_000u32 {
            let key = FlowKey { proto: 17, src: 1, sport: (i >> 16) as u16, dst: i, dport: 53 };
            table.upsert(key, flow, |_| ()).unwrap();
        }
        let capacity =
            || -> usize { table.shards.iter().map(|s| s.lock().unwrap().capacity()).sum() };
        assert_eq!(table.len(), 100_000);
        assert!(capacity() >= 100_000);
        assert_eq!(table.expire(t0 + UDP_IDLE + Duration::from_secs(1)), 100_000);
        assert_eq!(table.len(), 0);
        assert!(capacity() <= 64 * SHARDS, "shrunk: {}", capacity());
    }

    #[test]
    fn a_flow_is_40_bytes() {
        assert_eq!(size_of::<Flow>(), 40);
        assert_eq!(size_of::<FlowPath>(), 16);
    }
}
