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
    /// To the VPC's resolver (base + 2), which lives in the aws namespace.
    Resolver(Arc<str>),
    /// Inside the VPC (a `local` route), remembered only so that security groups are stateful:
    /// keyed by private addresses, oriented from the instance that opened it.
    Local,
}

/// TCP sequence state per direction, enough to build a RST that the receiver accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpState {
    /// Next sequence number the instance will send (seq + len of its last segment).
    pub out_next: u32,
    /// Next sequence number the remote side will send.
    pub in_next: u32,
    pub seen_out: bool,
    pub seen_in: bool,
    pub closing: bool,
}

/// Port translation by a NAT gateway or NAT instance: the key's source is the NAT's address
/// and a port (ICMP: identifier) it chose; the instance used `inside_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Napt {
    /// `nat-…` or `i-…`.
    pub nat: Arc<str>,
    pub inside_port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub path: FlowPath,
    /// `Some` for a flow through a NAT: `path` is the NAT's way out. Boxed: most flows have
    /// none, and the flow stays small.
    pub napt: Option<Box<Napt>>,
    /// The subnet port and private address of the instance.
    pub port: PortId,
    pub private_ip: u32,
    pub last_seen: Instant,
    pub tcp: TcpState,
}

/// Idle timeouts. TCP's matches the 350 s AWS documents for NAT gateways.
pub const TCP_IDLE: Duration = Duration::from_secs(350);
pub const TCP_CLOSING_IDLE: Duration = Duration::from_secs(10);
pub const UDP_IDLE: Duration = Duration::from_secs(60);
pub const ICMP_IDLE: Duration = Duration::from_secs(30);

/// Instance-side tuple → the NAT's address and port.
type NaptShard = HashMap<FlowKey, (u32, u16)>;

/// The flows, plus the index a NAT needs for outbound packets: the instance's own tuple (its
/// private address and port) → the NAT's address and port chosen for it. An index entry exists
/// exactly as long as its flow (both go in [`FlowTable::remove_where`] and
/// [`FlowTable::expire`]).
pub struct FlowTable {
    shards: Box<[Mutex<HashMap<FlowKey, Flow>>]>,
    napt: Box<[Mutex<NaptShard>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            napt: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }
}

/// The instance-side key of a NAT flow (private address and inside port).
pub fn inside_key(key: &FlowKey, flow: &Flow) -> Option<FlowKey> {
    let n = flow.napt.as_ref()?;
    Some(FlowKey { src: flow.private_ip, sport: n.inside_port, ..*key })
}

impl FlowTable {
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

    /// Inserts a NAT flow if its outside key is free; false if taken. The index entry is
    /// written after the flow, so a reader that finds it finds the flow.
    /// `make` is called only when the key is free, so a taken candidate costs no allocation.
    pub fn insert_napt(&self, key: FlowKey, make: impl FnOnce() -> Flow) -> bool {
        let inside = {
            let mut shard = self.shard(&key);
            let std::collections::hash_map::Entry::Vacant(slot) = shard.entry(key) else {
                return false;
            };
            let flow = make();
            let Some(inside) = inside_key(&key, &flow) else { return false };
            slot.insert(flow);
            inside
        };
        // A mapping this replaces (the NAT's address changed) leaves its old flow to expire.
        self.napt_shard(&inside).insert(inside, (key.src, key.sport));
        true
    }

    fn forget_napt(&self, removed: &[(FlowKey, FlowKey)]) {
        for (key, inside) in removed {
            let mut idx = self.napt_shard(inside);
            // Only if the index still points at this flow.
            if idx.get(inside) == Some(&(key.src, key.sport)) {
                idx.remove(inside);
            }
        }
    }

    /// Runs `f` on the flow, creating it with `new` if absent. Returns what `f` returns.
    pub fn upsert<R>(
        &self,
        key: FlowKey,
        new: impl FnOnce() -> Flow,
        f: impl FnOnce(&mut Flow) -> R,
    ) -> R {
        let mut shard = self.shard(&key);
        f(shard.entry(key).or_insert_with(new))
    }

    /// Runs `f` on an existing flow.
    pub fn with<R>(&self, key: &FlowKey, f: impl FnOnce(&mut Flow) -> R) -> Option<R> {
        self.shard(key).get_mut(key).map(f)
    }

    pub fn get(&self, key: &FlowKey) -> Option<Flow> {
        self.shard(key).get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
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
        }
        let napt: Vec<(FlowKey, FlowKey)> =
            out.iter().filter_map(|(k, f)| Some((*k, inside_key(k, f)?))).collect();
        self.forget_napt(&napt);
        out
    }

    /// Removes flows idle past their timeout; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let mut removed = 0;
        let mut napt = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = map.len();
            map.retain(|k, f| {
                let keep = now.saturating_duration_since(f.last_seen) < idle_timeout(k, f);
                if !keep && let Some(inside) = inside_key(k, f) {
                    napt.push((*k, inside));
                }
                keep
            });
            removed += before - map.len();
        }
        self.forget_napt(&napt);
        removed
    }
}

fn idle_timeout(key: &FlowKey, flow: &Flow) -> Duration {
    match key.proto {
        6 if flow.tcp.closing => TCP_CLOSING_IDLE,
        6 => TCP_IDLE,
        17 => UDP_IDLE,
        _ => ICMP_IDLE,
    }
}
