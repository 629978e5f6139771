//! Security groups and network ACLs compiled for the data plane ([`FilterSet`], part of the
//! [`Snapshot`]), and their evaluation: [`sg_egress`], [`sg_ingress`], [`nacl_out`],
//! [`nacl_in`].
//!
//! Sans-IO and allocation-free per packet: everything is resolved at compile time (group
//! references to the private IPs of the group's instances, prefix lists to their CIDRs, rules
//! to inclusive `u32` address ranges and a protocol + port range), so evaluation is a hash
//! lookup and a linear scan over a few small structs. Per-rule drop counters are relaxed atomics
//! shared by every clone of the snapshot.
//!
//! Drop counts outlive compilations ([`FilterSet::inherit_counts`], at every publish): a new
//! compilation keeps the earlier ones' counters themselves, not a copy, and reads them live
//! while a snapshot that holds them may still be counting on them (a worker that loaded it
//! before the publish), then folds them into totals once nothing holds them. So no drop is
//! lost between a copy and the publish, and the per-rule list always adds up to the drop
//! reasons' totals. A rule is identified across compilations by its [`RuleInfo::key`]: an
//! instance's "no rule allows it" by instance and direction (its group list, part of the
//! label, may change), an ACL entry by ACL, direction, number and action. A rule that no
//! longer exists (an entry deleted or made an allow, an ACL no subnet uses, a terminated
//! instance) keeps its count under its last label, marked `(removed)`.
//!
//! Semantics (AWS's):
//! - security groups are stateful and allow-only: a packet passes if any rule of any group of
//!   the instance matches (egress: destination address, ingress: source address; ports are
//!   the destination port, for ICMP the type and code). That the packet belongs to a tracked
//!   flow — return traffic is always allowed — is the caller's business: these functions
//!   judge a packet as if it opened a new flow;
//! - network ACLs are stateless: entries in ascending rule number, first match wins (allow or
//!   deny), then the implicit deny (`*`). Egress entries match the destination address,
//!   ingress entries the source address; ports are always the destination port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::fib::{PortId, Snapshot};
use crate::model::{AclEntry, Peer, Ports, RuleAction, SgRule, World};
use crate::packet::{Ipv4Info, L4};

/// What the filters look at in a packet. For ICMP, `sport` is 0 and `dport` is
/// `type << 8 | code` (so one range check covers "type t, any code").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTuple {
    pub proto: u8,
    pub src: u32,
    pub sport: u16,
    pub dst: u32,
    pub dport: u16,
}

impl FlowTuple {
    /// From a parsed packet (before or after NAT: the filters read the addresses the caller
    /// passes to them, see each function).
    pub fn of(info: &Ipv4Info) -> FlowTuple {
        let (sport, dport) = match info.l4() {
            L4::Tcp { src_port, dst_port, .. } | L4::Udp { src_port, dst_port } => {
                (src_port, dst_port)
            }
            L4::Icmp { kind, code, .. } => (0, u16::from(kind) << 8 | u16::from(code)),
            L4::Other => (0, 0),
        };
        FlowTuple { proto: info.protocol(), src: info.src_u32(), sport, dst: info.dst_u32(), dport }
    }

    pub fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> FlowTuple {
        FlowTuple {
            proto: 6,
            src: u32::from_be_bytes(src),
            sport,
            dst: u32::from_be_bytes(dst),
            dport,
        }
    }
    pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> FlowTuple {
        FlowTuple { proto: 17, ..FlowTuple::tcp(src, sport, dst, dport) }
    }
    pub fn icmp(src: [u8; 4], dst: [u8; 4], kind: u8, code: u8) -> FlowTuple {
        FlowTuple {
            proto: 1,
            dport: u16::from(kind) << 8 | u16::from(code),
            sport: 0,
            ..FlowTuple::tcp(src, 0, dst, 0)
        }
    }
    /// The reply direction (addresses and ports swapped; ICMP echo → echo reply).
    pub fn reverse(&self) -> FlowTuple {
        let dport = if self.proto == 1 {
            match self.dport >> 8 {
                8 => 0, // echo request → echo reply
                _ => self.dport,
            }
        } else {
            self.sport
        };
        let sport = if self.proto == 1 { 0 } else { self.dport };
        FlowTuple { proto: self.proto, src: self.dst, sport, dst: self.src, dport }
    }
}

/// Which filter refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The sender's security groups (no egress rule allows it).
    SgEgress,
    /// The receiver's security groups (no ingress rule allows it).
    SgIngress,
    /// The network ACL of the subnet the packet leaves.
    NaclOut,
    /// The network ACL of the subnet the packet enters.
    NaclIn,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::SgEgress => "sg_egress",
            Stage::SgIngress => "sg_ingress",
            Stage::NaclOut => "nacl_out",
            Stage::NaclIn => "nacl_in",
        }
    }
}

/// The rule that refused a packet: a slot of [`FilterSet::rules`] (and of its counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleRef(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterDrop {
    pub stage: Stage,
    pub rule: RuleRef,
}

#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterVerdict {
    Allow,
    Deny(FilterDrop),
}

impl FilterVerdict {
    pub fn is_allow(self) -> bool {
        self == FilterVerdict::Allow
    }
}

/// What a [`RuleRef`] stands for (for `vpcsim status` and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub stage: Stage,
    /// `sg-…` ids (comma-separated) of the instance, or the `acl-…` id.
    pub resource: String,
    /// The ACL entry's rule number (32767 for the implicit deny); `None` for security groups
    /// ("no rule allows it").
    pub rule_number: Option<u16>,
    /// One line: e.g. `acl-0a0a0a0a ingress #100 deny` or
    /// `sg egress of i-0a0a0a0a 10.0.1.10 [sg-111bbb22]: no rule allows it`.
    pub label: String,
    /// What identifies the rule from one compilation to the next (counts follow it): the
    /// label for an ACL entry, stage and instance for a security group's miss.
    pub key: String,
}

/// One compiled match: addresses `lo..=hi`, protocol ([`ANY_PROTO`]: any; protocol 0 is
/// HOPOPT), destination port range (ICMP: `type << 8 | code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Match {
    lo: u32,
    hi: u32,
    proto: u16,
    plo: u16,
    phi: u16,
}

/// [`Match::proto`] of a rule for every protocol.
const ANY_PROTO: u16 = 0x100;

impl Match {
    #[inline]
    fn hits(&self, addr: u32, t: &FlowTuple) -> bool {
        self.lo <= addr
            && addr <= self.hi
            && self.takes(t.proto)
            && self.plo <= t.dport
            && t.dport <= self.phi
    }

    /// Whether the rule is for protocol `proto` (or for every protocol).
    #[inline]
    fn takes(&self, proto: u8) -> bool {
        self.proto == ANY_PROTO || self.proto == u16::from(proto)
    }
}

fn proto_ports(protocol: crate::model::Protocol, ports: Ports) -> (u16, u16, u16) {
    let proto = protocol.ip_number().map_or(ANY_PROTO, u16::from);
    let (plo, phi) = match ports {
        Ports::All => (0, u16::MAX),
        Ports::Range { from, to } => (from, to),
        Ports::Icmp { icmp_type: None, .. } => (0, u16::MAX),
        Ports::Icmp { icmp_type: Some(t), code: None } => {
            (u16::from(t) << 8, u16::from(t) << 8 | 0xff)
        }
        Ports::Icmp { icmp_type: Some(t), code: Some(c) } => {
            let v = u16::from(t) << 8 | u16::from(c);
            (v, v)
        }
    };
    (proto, plo, phi)
}

fn range_of(net: ipnet::Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

#[derive(Clone, Debug)]
struct SgTable {
    egress: Box<[Match]>,
    ingress: Box<[Match]>,
    egress_miss: RuleRef,
    ingress_miss: RuleRef,
}

#[derive(Clone, Copy, Debug)]
struct AclRule {
    m: Match,
    allow: bool,
    rule: RuleRef,
}

#[derive(Clone, Debug)]
struct AclTable {
    out: Box<[AclRule]>,
    inn: Box<[AclRule]>,
    out_default: RuleRef,
    in_default: RuleRef,
}

/// The counters of one compilation (shared by its clones).
#[derive(Clone, Debug)]
struct Counted {
    rules: Arc<[RuleInfo]>,
    counts: Arc<[AtomicU64]>,
    /// Its place in the order of compilations (a later one's labels win).
    seq: u64,
}

/// What the compilations before this one counted (control plane only).
#[derive(Debug, Default)]
struct History {
    /// Compilations a snapshot still in use may add to (read live), oldest first.
    live: Vec<Counted>,
    /// The final counts of those nothing holds any more, by key: the last label (with the
    /// sequence number it came from) and the total.
    folded: HashMap<String, (RuleInfo, u64, u64)>,
    /// The sequence number of this compilation.
    seq: u64,
}

impl History {
    /// Folds the compilations whose counters only this history holds: nothing can add to them.
    fn fold(&mut self) {
        let (done, live): (Vec<Counted>, Vec<Counted>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|c| Arc::strong_count(&c.counts) == 1);
        self.live = live;
        for c in done {
            for (r, n) in c.rules.iter().zip(c.counts.iter()) {
                let n = n.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let e = self.folded.entry(r.key.clone()).or_insert_with(|| (r.clone(), c.seq, 0));
                if c.seq >= e.1 {
                    (e.0, e.1) = (r.clone(), c.seq);
                }
                e.2 += n;
            }
        }
    }
}

/// The compiled security groups and network ACLs of a world.
#[derive(Clone, Debug)]
pub struct FilterSet {
    /// `vpc << 32 | private address` → index in `sg_tables`.
    sg: HashMap<u64, u32>,
    sg_tables: Vec<SgTable>,
    /// Port → index in `acls`; `None` (the aws and internet ports): no ACL.
    acl_by_port: Vec<Option<u32>>,
    acls: Vec<AclTable>,
    rules: Arc<[RuleInfo]>,
    counts: Arc<[AtomicU64]>,
    /// The counts of earlier compilations, for `vpcsim status` (never touched per packet).
    history: Arc<Mutex<History>>,
}

impl Default for FilterSet {
    fn default() -> Self {
        FilterSet {
            sg: HashMap::new(),
            sg_tables: Vec::new(),
            acl_by_port: Vec::new(),
            acls: Vec::new(),
            rules: Arc::from(Vec::new()),
            counts: Arc::from(Vec::new()),
            history: Arc::default(),
        }
    }
}

#[inline]
fn sg_key(vpc: u16, addr: u32) -> u64 {
    u64::from(vpc) << 32 | u64::from(addr)
}

impl FilterSet {
    /// Compiles the security groups of every instance that has a port and the network ACL of
    /// every subnet that has a port. `vpc_index` numbers VPCs as [`Snapshot::vpcs`] does.
    pub fn compile(
        world: &World,
        vpc_index: &HashMap<&str, u16>,
        port_of: &dyn Fn(&str) -> Option<PortId>,
    ) -> FilterSet {
        // A world saved before groups and ACLs existed behaves as if it had the defaults.
        let world = &*world.with_defaults();
        let mut rules: Vec<RuleInfo> = Vec::new();
        let mut new_rule = |info: RuleInfo| {
            rules.push(info);
            RuleRef(rules.len() as u32 - 1)
        };

        // Group id → private addresses of its instances.
        let mut members: HashMap<&str, Vec<u32>> = HashMap::new();
        let groups_of: Vec<Vec<String>> =
            world.instances.iter().map(|i| world.instance_groups(i)).collect();
        for (inst, groups) in world.instances.iter().zip(&groups_of) {
            for g in groups {
                members.entry(g.as_str()).or_default().push(u32::from(inst.private_ip));
            }
        }
        let compile_rule = |r: &SgRule, out: &mut Vec<Match>| {
            let (proto, plo, phi) = proto_ports(r.protocol, r.ports);
            let mut push = |lo, hi| out.push(Match { lo, hi, proto, plo, phi });
            match &r.peer {
                Peer::Cidr(net) => {
                    let (lo, hi) = range_of(*net);
                    push(lo, hi);
                }
                Peer::PrefixList(pl) => {
                    for net in world.prefix_list(pl).map(|p| p.cidrs.as_slice()).unwrap_or(&[]) {
                        let (lo, hi) = range_of(*net);
                        push(lo, hi);
                    }
                }
                Peer::Group(g) => {
                    for a in members.get(g.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                        push(*a, *a);
                    }
                }
            }
        };

        let mut sg = HashMap::new();
        let mut sg_tables = Vec::new();
        for (inst, groups) in world.instances.iter().zip(&groups_of) {
            let Some(subnet) = world.subnet(&inst.subnet) else { continue };
            let (Some(&vpc), Some(_)) = (vpc_index.get(subnet.vpc.as_str()), port_of(&subnet.id))
            else {
                continue;
            };
            let (mut egress, mut ingress) = (Vec::new(), Vec::new());
            for g in groups.iter().filter_map(|g| world.security_group(g)) {
                for r in &g.egress {
                    compile_rule(r, &mut egress);
                }
                for r in &g.ingress {
                    compile_rule(r, &mut ingress);
                }
            }
            let ids = groups.join(",");
            let miss = |stage: Stage, dir: &str| RuleInfo {
                stage,
                resource: ids.clone(),
                rule_number: None,
                label: format!(
                    "sg {dir} of {} {} [{ids}]: no rule allows it",
                    inst.id, inst.private_ip
                ),
                key: format!("{} {}", stage.label(), inst.id),
            };
            let egress_miss = new_rule(miss(Stage::SgEgress, "egress"));
            let ingress_miss = new_rule(miss(Stage::SgIngress, "ingress"));
            sg.insert(sg_key(vpc, u32::from(inst.private_ip)), sg_tables.len() as u32);
            sg_tables.push(SgTable {
                egress: egress.into(),
                ingress: ingress.into(),
                egress_miss,
                ingress_miss,
            });
        }

        let mut acl_index: HashMap<&str, u32> = HashMap::new();
        let mut acls = Vec::new();
        let mut acl_by_port: Vec<Option<u32>> = Vec::new();
        for subnet in &world.subnets {
            let Some(port) = port_of(&subnet.id) else { continue };
            let Some((acl, _)) = world.subnet_acl(&subnet.id) else { continue };
            let idx = match acl_index.get(acl.id.as_str()) {
                Some(i) => *i,
                None => {
                    let mut side = |egress: bool| {
                        let dir = if egress { "egress" } else { "ingress" };
                        let stage = if egress { Stage::NaclOut } else { Stage::NaclIn };
                        let entries: Vec<AclRule> = acl
                            .sorted(egress)
                            .into_iter()
                            .map(|e: &AclEntry| {
                                let (proto, plo, phi) = proto_ports(e.protocol, e.ports);
                                let (lo, hi) = range_of(e.cidr);
                                let allow = e.action == RuleAction::Allow;
                                let label = format!(
                                    "{} {dir} #{} {}",
                                    acl.id,
                                    e.rule_number,
                                    e.action.name()
                                );
                                let rule = new_rule(RuleInfo {
                                    stage,
                                    resource: acl.id.clone(),
                                    rule_number: Some(e.rule_number),
                                    key: label.clone(),
                                    label,
                                });
                                AclRule { m: Match { lo, hi, proto, plo, phi }, allow, rule }
                            })
                            .collect();
                        let label = format!("{} {dir} * deny", acl.id);
                        let default = new_rule(RuleInfo {
                            stage,
                            resource: acl.id.clone(),
                            rule_number: Some(crate::model::ACL_DEFAULT_RULE),
                            key: label.clone(),
                            label,
                        });
                        (entries.into_boxed_slice(), default)
                    };
                    let (out, out_default) = side(true);
                    let (inn, in_default) = side(false);
                    acls.push(AclTable { out, inn, out_default, in_default });
                    let i = acls.len() as u32 - 1;
                    acl_index.insert(acl.id.as_str(), i);
                    i
                }
            };
            let p = port as usize;
            if acl_by_port.len() <= p {
                acl_by_port.resize(p + 1, None);
            }
            acl_by_port[p] = Some(idx);
        }
        let counts: Vec<AtomicU64> = rules.iter().map(|_| AtomicU64::new(0)).collect();
        FilterSet {
            sg,
            sg_tables,
            acl_by_port,
            acls,
            rules: rules.into(),
            counts: counts.into(),
            history: Arc::default(),
        }
    }

    /// Counts a drop against its rule (relaxed; one atomic add, no lock, no allocation).
    #[inline]
    pub fn record(&self, d: &FilterDrop) {
        if let Some(c) = self.counts.get(d.rule.0 as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rule(&self, r: RuleRef) -> Option<&RuleInfo> {
        self.rules.get(r.0 as usize)
    }

    /// How many packets a rule dropped.
    pub fn drops(&self, r: RuleRef) -> u64 {
        self.counts.get(r.0 as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every rule that dropped something, with its count (for `vpcsim status`): this
    /// compilation's rules in order, with what earlier ones counted under the same key, then
    /// the rules that no longer exist, by label, marked `(removed)`. Per stage, the counts add
    /// up to every drop recorded since the lab started.
    pub fn drop_counts(&self) -> Vec<(RuleInfo, u64)> {
        fn add<'a>(
            by_key: &mut HashMap<&'a str, (u64, &'a RuleInfo, u64)>,
            r: &'a RuleInfo,
            seq: u64,
            n: u64,
        ) {
            if n == 0 {
                return;
            }
            let e = by_key.entry(&r.key).or_insert((seq, r, 0));
            if seq >= e.0 {
                (e.0, e.1) = (seq, r);
            }
            e.2 += n;
        }
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.fold();
        // What earlier compilations counted: key → (its label's sequence number, rule, count).
        let mut by_key = HashMap::new();
        for (r, seq, n) in h.folded.values() {
            add(&mut by_key, r, *seq, *n);
        }
        for c in &h.live {
            for (r, n) in c.rules.iter().zip(c.counts.iter()) {
                add(&mut by_key, r, c.seq, n.load(Ordering::Relaxed));
            }
        }
        let mut out = Vec::new();
        for (r, n) in self.rules.iter().zip(self.counts.iter()) {
            let earlier = by_key.remove(r.key.as_str()).map_or(0, |e| e.2);
            let total = n.load(Ordering::Relaxed) + earlier;
            if total > 0 {
                out.push((r.clone(), total));
            }
        }
        let mut removed: Vec<(RuleInfo, u64)> = by_key
            .into_values()
            .map(|(_, r, n)| (RuleInfo { label: format!("{} (removed)", r.label), ..r.clone() }, n))
            .collect();
        removed.sort_by(|a, b| a.0.label.cmp(&b.0.label));
        out.extend(removed);
        out
    }

    /// Carries the counts of the compilation before this one (and what it carried) over to
    /// this one, so that publishing a new snapshot loses none: its counters are kept, not
    /// copied (a worker still on the old snapshot may add to them). Control plane only.
    pub fn inherit_counts(&self, old: &FilterSet) {
        // A snapshot rebuilt from the current one (a route-only change) shares its counters.
        if Arc::ptr_eq(&self.counts, &old.counts) || Arc::ptr_eq(&self.history, &old.history) {
            return;
        }
        let mut theirs = old.history.lock().unwrap_or_else(|e| e.into_inner());
        theirs.fold();
        let mut mine = self.history.lock().unwrap_or_else(|e| e.into_inner());
        mine.live = theirs.live.clone();
        mine.live.push(Counted {
            rules: old.rules.clone(),
            counts: old.counts.clone(),
            seq: theirs.seq,
        });
        mine.folded = theirs.folded.clone();
        mine.seq = theirs.seq + 1;
    }

    fn sg_table(&self, vpc: u16, addr: u32) -> Option<&SgTable> {
        self.sg.get(&sg_key(vpc, addr)).and_then(|i| self.sg_tables.get(*i as usize))
    }

    fn acl(&self, port: PortId) -> Option<&AclTable> {
        let i = (*self.acl_by_port.get(port as usize)?)?;
        self.acls.get(i as usize)
    }
}

/// Security-group egress of the instance `src` (its private address in VPC `vpc`, the index
/// of [`Snapshot::vpcs`]) for a packet it sends to `pkt.dst`. An address with no compiled
/// groups (not an instance) is not filtered here.
#[inline]
pub fn sg_egress(snap: &Snapshot, vpc: u16, src: u32, pkt: &FlowTuple) -> FilterVerdict {
    let Some(t) = snap.filters.sg_table(vpc, src) else { return FilterVerdict::Allow };
    if t.egress.iter().any(|m| m.hits(pkt.dst, pkt)) {
        FilterVerdict::Allow
    } else {
        FilterVerdict::Deny(FilterDrop { stage: Stage::SgEgress, rule: t.egress_miss })
    }
}

/// Security-group ingress of the instance `dst` (its private address, also after 1:1 NAT)
/// for a packet from `pkt.src`.
#[inline]
pub fn sg_ingress(snap: &Snapshot, vpc: u16, dst: u32, pkt: &FlowTuple) -> FilterVerdict {
    let Some(t) = snap.filters.sg_table(vpc, dst) else { return FilterVerdict::Allow };
    if t.ingress.iter().any(|m| m.hits(pkt.src, pkt)) {
        FilterVerdict::Allow
    } else {
        FilterVerdict::Deny(FilterDrop { stage: Stage::SgIngress, rule: t.ingress_miss })
    }
}

/// Whether a new TCP or UDP flow of the instance `addr` is untracked by its security groups,
/// `outbound` if the instance opens it. "If a security group rule permits TCP or UDP flows for
/// all traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in the other direction
/// that permits all response traffic (0.0.0.0/0 or ::/0) for all ports (0-65535), then that
/// flow of traffic is not tracked [...] The response traffic for an untracked flow is allowed
/// based on the inbound or outbound rule that permits the response traffic, not based on
/// tracking information. An untracked flow of traffic is immediately interrupted if the rule
/// that enables the flow is removed or modified." (EC2 guide, security group connection
/// tracking; its example: inbound HTTP from 0.0.0.0/0 with all outbound traffic allowed is
/// not tracked, SSH from one address is.) ICMP is always tracked.
pub fn sg_untracked(snap: &Snapshot, vpc: u16, addr: u32, pkt: &FlowTuple, outbound: bool) -> bool {
    if pkt.proto != 6 && pkt.proto != 17 {
        return false;
    }
    let Some(t) = snap.filters.sg_table(vpc, addr) else { return false };
    let (first, other, peer) =
        if outbound { (&t.egress, &t.ingress, pkt.dst) } else { (&t.ingress, &t.egress, pkt.src) };
    let everyone = |m: &Match| m.lo == 0 && m.hi == u32::MAX;
    first.iter().any(|m| everyone(m) && m.hits(peer, pkt))
        && other
            .iter()
            .any(|m| everyone(m) && m.takes(pkt.proto) && m.plo == 0 && m.phi == u16::MAX)
}

fn acl_eval(
    rules: &[AclRule],
    default: RuleRef,
    stage: Stage,
    addr: u32,
    pkt: &FlowTuple,
) -> FilterVerdict {
    for r in rules {
        if r.m.hits(addr, pkt) {
            return if r.allow {
                FilterVerdict::Allow
            } else {
                FilterVerdict::Deny(FilterDrop { stage, rule: r.rule })
            };
        }
    }
    FilterVerdict::Deny(FilterDrop { stage, rule: default })
}

/// The outbound network ACL of the subnet on `port`, for a packet leaving it (toward another
/// subnet, the internet gateway or an endpoint). Ports without a subnet are not filtered.
#[inline]
pub fn nacl_out(snap: &Snapshot, port: PortId, pkt: &FlowTuple) -> FilterVerdict {
    match snap.filters.acl(port) {
        Some(a) => acl_eval(&a.out, a.out_default, Stage::NaclOut, pkt.dst, pkt),
        None => FilterVerdict::Allow,
    }
}

/// The inbound network ACL of the subnet on `port`, for a packet entering it (from another
/// subnet, the internet gateway or an endpoint; replies included).
#[inline]
pub fn nacl_in(snap: &Snapshot, port: PortId, pkt: &FlowTuple) -> FilterVerdict {
    match snap.filters.acl(port) {
        Some(a) => acl_eval(&a.inn, a.in_default, Stage::NaclIn, pkt.src, pkt),
        None => FilterVerdict::Allow,
    }
}

#[cfg(test)]
mod tests {
    //! Tables of packets against rules, on the default lab (ports a = 2, b = 3, c = 4; VPC 0).

    use etherparse::PacketBuilder;

    use super::*;
    use crate::fib::{FIRST_SUBNET_PORT, ports_by_index};
    use crate::lab::file::{DEFAULT_LAB, parse};
    use crate::model::{AclEntry, Direction, Protocol, RuleAction, SgRule};

    const PA: PortId = FIRST_SUBNET_PORT;
    const PB: PortId = FIRST_SUBNET_PORT + 1;
    const A: [u8; 4] = [10, 0, 1, 10];
    const B: [u8; 4] = [10, 0, 2, 10];
    const C: [u8; 4] = [10, 0, 3, 10];
    /// In pl-1a2b3c4d (54.123.160.0/19, the us-east-1 S3 range).
    const S3: [u8; 4] = [54, 123, 170, 5];
    /// In the us-west-2 S3 range: an AWS address outside pl-1a2b3c4d.
    const NET: [u8; 4] = [198, 51, 100, 10];
    const OTHER_NET: [u8; 4] = [192, 0, 2, 7];

    fn a32(x: [u8; 4]) -> u32 {
        u32::from_be_bytes(x)
    }

    #[test]
    fn inheriting_from_a_clone_does_not_double_counts() {
        let world = parse("demo", DEFAULT_LAB).unwrap();
        let ports = ports_by_index(&world);
        let old = crate::fib::Snapshot::compile(&world, 1, &|id| ports.get(id).copied()).filters;
        assert!(!old.counts.is_empty());
        old.counts[0].store(5, Ordering::Relaxed);
        // A route-only change republishes the same filters (shared counters).
        let same = old.clone();
        same.inherit_counts(&old);
        assert_eq!(same.counts[0].load(Ordering::Relaxed), 5);
        // A recompilation carries the counts over.
        let new = crate::fib::Snapshot::compile(&world, 2, &|id| ports.get(id).copied()).filters;
        new.inherit_counts(&old);
        assert_eq!(new.drop_counts().iter().map(|(_, n)| n).sum::<u64>(), 5);
    }

    fn demo() -> World {
        parse("demo.toml", DEFAULT_LAB).unwrap()
    }

    fn snap(w: &World) -> Snapshot {
        let ports = ports_by_index(w);
        Snapshot::compile(w, 1, &|id| ports.get(id).copied())
    }

    fn rule(p: &str, ports: Option<&str>, peer: Peer) -> SgRule {
        let protocol = Protocol::parse(p).unwrap();
        SgRule::new(protocol, Ports::parse_lab(protocol, ports).unwrap(), peer)
    }

    fn cidr(s: &str) -> Peer {
        Peer::Cidr(s.parse().unwrap())
    }

    /// A new group in the demo VPC with the given egress and ingress rules.
    fn group(w: &mut World, id: &str, egress: &[SgRule], ingress: &[SgRule]) {
        let name = format!("group-{id}");
        w.create_security_group(id, &name, "test", "vpc-111bbb22").unwrap();
        w.set_security_group_rules(id, Direction::Egress, egress).unwrap();
        w.set_security_group_rules(id, Direction::Ingress, ingress).unwrap();
    }

    fn stage(v: FilterVerdict) -> Option<Stage> {
        match v {
            FilterVerdict::Allow => None,
            FilterVerdict::Deny(d) => Some(d.stage),
        }
    }

    #[test]
    fn flow_tuple_from_etherparse_packets() {
        let mut buf = Vec::new();
        PacketBuilder::ipv4(A, S3, 64).tcp(40000, 443, 1, 100).syn().write(&mut buf, &[]).unwrap();
        let t = FlowTuple::of(&crate::packet::parse(&buf).unwrap());
        assert_eq!(t, FlowTuple::tcp(A, 40000, S3, 443));
        let mut buf = Vec::new();
        PacketBuilder::ipv4(A, NET, 64).udp(5353, 53).write(&mut buf, b"q").unwrap();
        assert_eq!(
            FlowTuple::of(&crate::packet::parse(&buf).unwrap()),
            FlowTuple::udp(A, 5353, NET, 53)
        );
        let mut buf = Vec::new();
        PacketBuilder::ipv4(A, B, 64).icmpv4_echo_request(7, 1).write(&mut buf, b"ping").unwrap();
        let t = FlowTuple::of(&crate::packet::parse(&buf).unwrap());
        assert_eq!(t, FlowTuple::icmp(A, B, 8, 0));
        assert_eq!(t.reverse(), FlowTuple::icmp(B, A, 0, 0));
    }

    #[test]
    fn default_groups_and_acls_keep_the_demo_lab_open() {
        let s = snap(&demo());
        let egress = [
            FlowTuple::tcp(A, 40000, S3, 80),
            FlowTuple::tcp(A, 40000, NET, 80),
            FlowTuple::udp(A, 40000, B, 53),
            FlowTuple::icmp(A, C, 8, 0),
        ];
        for t in egress {
            assert_eq!(sg_egress(&s, 0, a32(A), &t), FilterVerdict::Allow, "{t:?}");
            assert_eq!(nacl_out(&s, PA, &t), FilterVerdict::Allow, "{t:?}");
            assert_eq!(nacl_in(&s, PA, &t.reverse()), FilterVerdict::Allow, "{t:?}");
        }
        // The default group allows all ingress from itself: every demo instance is in it.
        assert!(sg_ingress(&s, 0, a32(B), &FlowTuple::tcp(A, 40000, B, 22)).is_allow());
        assert!(sg_ingress(&s, 0, a32(C), &FlowTuple::icmp(A, C, 8, 0)).is_allow());
        // ... but not from the internet: a new connection to a public IP is refused.
        let v = sg_ingress(&s, 0, a32(A), &FlowTuple::tcp(NET, 5555, [203, 0, 113, 10], 22));
        assert_eq!(stage(v), Some(Stage::SgIngress));
        // Ports without an ACL (aws, internet) and addresses without groups are not filtered.
        assert!(nacl_in(&s, crate::fib::PORT_AWS, &egress[0]).is_allow());
        assert!(sg_egress(&s, 0, a32([10, 0, 1, 99]), &egress[0]).is_allow());
    }

    #[test]
    fn https_to_s3_only() {
        let mut w = demo();
        let pl = Peer::PrefixList("pl-1a2b3c4d".into());
        group(&mut w, "sg-0a0a0a0a", &[rule("tcp", Some("443"), pl)], &[]);
        w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0a0a".into()]).unwrap();
        let s = snap(&w);
        let table: &[(FlowTuple, bool)] = &[
            (FlowTuple::tcp(A, 40000, S3, 443), true),
            (FlowTuple::tcp(A, 40000, [54, 123, 160, 0], 443), true),
            (FlowTuple::tcp(A, 40000, [54, 123, 191, 255], 443), true),
            // HTTP to S3: refused.
            (FlowTuple::tcp(A, 40000, S3, 80), false),
            // HTTPS elsewhere: refused (just outside the prefix list, another region, internet).
            (FlowTuple::tcp(A, 40000, [54, 123, 192, 0], 443), false),
            (FlowTuple::tcp(A, 40000, NET, 443), false),
            (FlowTuple::tcp(A, 40000, B, 443), false),
            // Not TCP: refused.
            (FlowTuple::udp(A, 40000, S3, 443), false),
            (FlowTuple::icmp(A, S3, 8, 0), false),
        ];
        for (t, ok) in table {
            let v = sg_egress(&s, 0, a32(A), t);
            assert_eq!(v.is_allow(), *ok, "{t:?}: {v:?}");
            if let FilterVerdict::Deny(d) = v {
                assert_eq!(d.stage, Stage::SgEgress);
                let info = s.filters.rule(d.rule).unwrap();
                assert_eq!(info.resource, "sg-0a0a0a0a");
                assert!(info.label.contains("i-0a0a0a0a"), "{}", info.label);
            }
        }
        // A has no ingress rule now: even B (default group) cannot reach it, and A no longer
        // counts as a member of the default group for B's ingress.
        assert!(!sg_ingress(&s, 0, a32(A), &FlowTuple::tcp(B, 40000, A, 22)).is_allow());
        assert!(!sg_ingress(&s, 0, a32(B), &FlowTuple::tcp(A, 40000, B, 22)).is_allow());
        assert!(sg_ingress(&s, 0, a32(B), &FlowTuple::tcp(C, 40000, B, 22)).is_allow());
        // Other instances keep the default group.
        assert!(sg_egress(&s, 0, a32(B), &FlowTuple::tcp(B, 40000, S3, 80)).is_allow());
    }

    #[test]
    fn group_references_resolve_to_member_addresses() {
        let mut w = demo();
        group(&mut w, "sg-0a0a0001", &[SgRule::allow_all()], &[]);
        group(
            &mut w,
            "sg-0a0a0002",
            &[SgRule::allow_all()],
            &[rule("tcp", Some("80"), Peer::Group("sg-0a0a0001".into()))],
        );
        w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0002".into()]).unwrap();
        w.set_instance_groups("i-0b0b0b0b", &["sg-0a0a0001".into()]).unwrap();
        let s = snap(&w);
        let table: &[(FlowTuple, bool)] = &[
            (FlowTuple::tcp(B, 40000, A, 80), true),
            (FlowTuple::tcp(B, 40000, A, 81), false),
            (FlowTuple::tcp(C, 40000, A, 80), false),
            (FlowTuple::tcp(NET, 40000, A, 80), false),
        ];
        for (t, ok) in table {
            assert_eq!(sg_ingress(&s, 0, a32(A), t).is_allow(), *ok, "{t:?}");
        }
        // C joins the referenced group (in addition to the default one): now allowed.
        w.set_instance_groups("i-0c0c0c0c", &["sg-0a0a0001".into(), "sg-111bbb22".into()]).unwrap();
        let s = snap(&w);
        assert!(sg_ingress(&s, 0, a32(A), &FlowTuple::tcp(C, 40000, A, 80)).is_allow());
        // B left the default group: C's default-group rule ("from itself") no longer matches B.
        assert!(!sg_ingress(&s, 0, a32(C), &FlowTuple::tcp(B, 1, C, 9)).is_allow());
        w.set_instance_groups("i-0b0b0b0b", &["sg-0a0a0001".into(), "sg-111bbb22".into()]).unwrap();
        let s = snap(&w);
        assert!(sg_ingress(&s, 0, a32(C), &FlowTuple::tcp(B, 1, C, 9)).is_allow());
    }

    #[test]
    fn internet_ingress_needs_a_rule() {
        let mut w = demo();
        group(
            &mut w,
            "sg-0a0a0003",
            &[SgRule::allow_all()],
            &[
                rule("tcp", Some("22"), cidr("0.0.0.0/0")),
                rule("icmp", Some("8"), cidr("198.51.100.0/24")),
                rule("udp", Some("1000-2000"), cidr("198.51.100.10/32")),
            ],
        );
        w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0003".into()]).unwrap();
        let s = snap(&w);
        let public = [203, 0, 113, 10];
        let table: &[(FlowTuple, bool)] = &[
            (FlowTuple::tcp(NET, 5555, public, 22), true),
            (FlowTuple::tcp(OTHER_NET, 5555, public, 22), true),
            (FlowTuple::tcp(NET, 5555, public, 80), false),
            (FlowTuple::icmp(NET, public, 8, 0), true),
            (FlowTuple::icmp(OTHER_NET, public, 8, 0), false),
            (FlowTuple::icmp(NET, public, 13, 0), false),
            (FlowTuple::udp(NET, 5555, public, 1000), true),
            (FlowTuple::udp(NET, 5555, public, 2000), true),
            (FlowTuple::udp(NET, 5555, public, 2001), false),
            (FlowTuple::udp([198, 51, 100, 11], 5555, public, 1500), false),
        ];
        for (t, ok) in table {
            assert_eq!(sg_ingress(&s, 0, a32(A), t).is_allow(), *ok, "{t:?}");
        }
    }

    fn entry(n: u16, egress: bool, p: &str, ports: Option<&str>, c: &str, allow: bool) -> AclEntry {
        let protocol = Protocol::parse(p).unwrap();
        AclEntry {
            rule_number: n,
            egress,
            protocol,
            ports: Ports::parse_lab(protocol, ports).unwrap(),
            cidr: c.parse().unwrap(),
            action: if allow { RuleAction::Allow } else { RuleAction::Deny },
        }
    }

    fn acl(w: &mut World, id: &str, entries: &[AclEntry]) {
        w.create_network_acl(id, "vpc-111bbb22").unwrap();
        for e in entries {
            w.add_network_acl_entry(id, e.clone()).unwrap();
        }
        w.associate_network_acl(id, "a").unwrap();
    }

    #[test]
    fn nacl_first_match_wins_deny_and_implicit_deny() {
        let mut w = demo();
        acl(
            &mut w,
            "acl-0a0a0a0a",
            &[
                entry(100, true, "all", None, "0.0.0.0/0", true),
                // Inserted out of order on purpose: evaluation is by rule number.
                entry(200, false, "all", None, "0.0.0.0/0", true),
                entry(100, false, "tcp", Some("80"), "198.51.100.0/24", false),
                entry(50, false, "tcp", Some("80"), "198.51.100.10/32", true),
                entry(300, false, "icmp", None, "10.0.0.0/16", false),
            ],
        );
        let s = snap(&w);
        let table: &[(FlowTuple, Option<u16>)] = &[
            // Rule 50 allows the one host before rule 100 denies its /24.
            (FlowTuple::tcp(NET, 5555, A, 80), None),
            (FlowTuple::tcp([198, 51, 100, 11], 5555, A, 80), Some(100)),
            (FlowTuple::tcp([198, 51, 100, 11], 5555, A, 81), None),
            (FlowTuple::icmp(B, A, 8, 0), None), // rule 200 comes first
        ];
        for (t, denied_by) in table {
            match (nacl_in(&s, PA, t), denied_by) {
                (FilterVerdict::Allow, None) => {}
                (FilterVerdict::Deny(d), Some(n)) => {
                    assert_eq!(d.stage, Stage::NaclIn);
                    let info = s.filters.rule(d.rule).unwrap();
                    assert_eq!(
                        (info.resource.as_str(), info.rule_number),
                        ("acl-0a0a0a0a", Some(*n))
                    );
                }
                (v, _) => panic!("{t:?}: {v:?}, expected {denied_by:?}"),
            }
        }
        // Other subnets keep the default ACL.
        assert!(nacl_in(&s, PB, &FlowTuple::tcp([198, 51, 100, 11], 1, B, 80)).is_allow());

        // A new ACL with nothing but one egress entry: everything else hits `*`.
        let mut w = demo();
        acl(
            &mut w,
            "acl-0b0b0b0b",
            &[entry(100, true, "tcp", Some("443"), "54.123.160.0/19", true)],
        );
        let s = snap(&w);
        assert!(nacl_out(&s, PA, &FlowTuple::tcp(A, 40000, S3, 443)).is_allow());
        for (v, st) in [
            (nacl_out(&s, PA, &FlowTuple::tcp(A, 40000, S3, 80)), Stage::NaclOut),
            (nacl_out(&s, PA, &FlowTuple::tcp(A, 40000, NET, 443)), Stage::NaclOut),
            (nacl_in(&s, PA, &FlowTuple::tcp(S3, 443, A, 40000)), Stage::NaclIn),
        ] {
            let FilterVerdict::Deny(d) = v else { panic!("{v:?}") };
            assert_eq!(d.stage, st);
            assert_eq!(s.filters.rule(d.rule).unwrap().rule_number, Some(32767));
            s.filters.record(&d);
        }
        let counts = s.filters.drop_counts();
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(counts.iter().any(|(r, n)| r.label == "acl-0b0b0b0b egress * deny" && *n == 2));
        // Counts survive a recompilation.
        let s2 = snap(&w);
        s2.filters.inherit_counts(&s.filters);
        assert_eq!(s2.filters.drop_counts().len(), 2);
    }

    #[test]
    fn nacl_is_stateless_replies_need_an_inbound_allow() {
        let mut w = demo();
        acl(
            &mut w,
            "acl-0c0c0c0c",
            &[
                entry(100, true, "tcp", Some("80"), "0.0.0.0/0", true),
                entry(100, false, "tcp", Some("80"), "0.0.0.0/0", true),
            ],
        );
        let s = snap(&w);
        let out = FlowTuple::tcp(A, 40000, S3, 80);
        assert!(nacl_out(&s, PA, &out).is_allow());
        // The reply comes from port 80 to the ephemeral port: no inbound rule allows it.
        assert_eq!(stage(nacl_in(&s, PA, &out.reverse())), Some(Stage::NaclIn));
        // Allow the ephemeral ports inbound: now the reply passes.
        w.add_network_acl_entry(
            "acl-0c0c0c0c",
            entry(110, false, "tcp", Some("1024-65535"), "0.0.0.0/0", true),
        )
        .unwrap();
        let s = snap(&w);
        assert!(nacl_in(&s, PA, &out.reverse()).is_allow());
        // Intra-VPC traffic to another subnet crosses both ACLs: b's default allows all.
        let t = FlowTuple::tcp(A, 40000, B, 80);
        assert!(nacl_out(&s, PA, &t).is_allow() && nacl_in(&s, PB, &t).is_allow());
        assert!(!nacl_out(&s, PA, &FlowTuple::tcp(A, 40000, B, 22)).is_allow());
    }

    /// Per rule: the drops of `stage` in `s`'s list, and their sum.
    fn listed(s: &Snapshot, stage: Stage) -> (Vec<(String, u64)>, u64) {
        let rows: Vec<(String, u64)> = s
            .filters
            .drop_counts()
            .into_iter()
            .filter(|(r, _)| r.stage == stage)
            .map(|(r, n)| (r.label, n))
            .collect();
        let sum = rows.iter().map(|(_, n)| n).sum();
        (rows, sum)
    }

    #[test]
    fn drop_history_survives_every_change_and_late_drops_on_old_snapshots() {
        let mut w = demo();
        acl(
            &mut w,
            "acl-0b0b0b0b",
            &[
                entry(100, true, "tcp", Some("80"), "0.0.0.0/0", false),
                entry(200, true, "all", None, "0.0.0.0/0", true),
            ],
        );
        let pl = Peer::PrefixList("pl-1a2b3c4d".into());
        group(&mut w, "sg-0a0a0a0a", &[rule("tcp", Some("443"), pl)], &[]);
        w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0a0a".into()]).unwrap();
        let drop = |s: &Snapshot, v: FilterVerdict, n: usize| {
            let FilterVerdict::Deny(d) = v else { panic!("{v:?}") };
            for _ in 0..n {
                s.filters.record(&d);
            }
        };
        let http = FlowTuple::tcp(A, 40000, S3, 80);
        let s1 = snap(&w);
        drop(&s1, nacl_out(&s1, PA, &http), 3); // #100 deny
        drop(&s1, sg_egress(&s1, 0, a32(A), &http), 2); // no rule allows it

        // 1. The deny entry becomes an allow: its 3 drops stay, marked removed.
        let allow = entry(100, true, "tcp", Some("80"), "0.0.0.0/0", true);
        w.replace_network_acl_entry("acl-0b0b0b0b", allow).unwrap();
        let s2 = snap(&w);
        s2.filters.inherit_counts(&s1.filters);
        // A drop counted on the old snapshot after the copy (a worker still on it) is not lost.
        drop(&s1, nacl_out(&s1, PA, &http), 1);
        let (rows, sum) = listed(&s2, Stage::NaclOut);
        assert_eq!(rows, [("acl-0b0b0b0b egress #100 deny (removed)".to_string(), 4)]);
        assert_eq!(sum, 4);

        // 2. The instance's group list changes (part of the label): the count follows it.
        w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0a0a".into(), "sg-111bbb22".into()]).unwrap();
        w.set_security_group_rules("sg-111bbb22", Direction::Egress, &[]).unwrap();
        let s3 = snap(&w);
        s3.filters.inherit_counts(&s2.filters);
        drop(&s3, sg_egress(&s3, 0, a32(A), &http), 1);
        let (rows, sum) = listed(&s3, Stage::SgEgress);
        assert_eq!(
            rows,
            [(
                "sg egress of i-0a0a0a0a 10.0.1.10 [sg-0a0a0a0a,sg-111bbb22]: no rule allows it"
                    .to_string(),
                3
            )]
        );
        assert_eq!(sum, 3);

        // 3. The allow-all entry is deleted (UDP now meets `*`), then the subnet goes back to
        // the default ACL: nothing is lost.
        w.delete_network_acl_entry("acl-0b0b0b0b", true, 200).unwrap();
        let s4 = snap(&w);
        s4.filters.inherit_counts(&s3.filters);
        drop(&s4, nacl_out(&s4, PA, &FlowTuple::udp(A, 1, S3, 53)), 2);
        let assoc = w.network_acl("acl-0b0b0b0b").unwrap().associations[0].id.clone();
        w.replace_network_acl_association(&assoc, "acl-111bbb22").unwrap();
        let s5 = snap(&w);
        s5.filters.inherit_counts(&s4.filters);
        // The old snapshots go (no worker holds them): their counts are folded, still listed.
        std::mem::drop((s1, s2, s3, s4));
        let (rows, sum) = listed(&s5, Stage::NaclOut);
        assert_eq!(sum, 6, "{rows:?}");
        assert!(rows.contains(&("acl-0b0b0b0b egress #100 deny (removed)".to_string(), 4)));
        assert!(rows.contains(&("acl-0b0b0b0b egress * deny (removed)".to_string(), 2)));
        assert_eq!(listed(&s5, Stage::SgEgress).1, 3);
        // A deny entry of that number and action again: its history is its own again.
        w.add_network_acl_entry(
            "acl-111bbb22",
            entry(90, true, "tcp", Some("80"), "0.0.0.0/0", false),
        )
        .unwrap();
        let s6 = snap(&w);
        s6.filters.inherit_counts(&s5.filters);
        drop(&s6, nacl_out(&s6, PA, &http), 1);
        let (rows, sum) = listed(&s6, Stage::NaclOut);
        assert_eq!(sum, 7, "{rows:?}");
        assert!(rows.contains(&("acl-111bbb22 egress #90 deny".to_string(), 1)));
    }

    #[test]
    fn saved_world_without_defaults_compiles_as_open() {
        let mut w = demo();
        w.security_groups.clear();
        w.network_acls.clear();
        let s = snap(&w);
        assert!(sg_egress(&s, 0, a32(A), &FlowTuple::tcp(A, 1, S3, 80)).is_allow());
        assert!(sg_ingress(&s, 0, a32(B), &FlowTuple::tcp(A, 1, B, 80)).is_allow());
        assert!(nacl_out(&s, PA, &FlowTuple::tcp(A, 1, S3, 80)).is_allow());
    }
}
