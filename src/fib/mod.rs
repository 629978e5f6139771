//! Compiled forwarding state: longest-prefix-match tables ([`table`]) and the immutable data-plane
//! [`Snapshot`] compiled from a [`World`].
//!
//! Invariants: a snapshot is never mutated after [`Snapshot::compile`]; the control plane
//! publishes a new one as a whole (arc-swap in [`crate::dataplane::Pipeline`]), so a reader sees
//! either the old world or the new one, never a mix. Everything a packet needs is here, indexed
//! by integers: no string comparison on the per-packet path.

pub mod extra;
pub mod table;
// The filter module lives with the pipeline (`src/dataplane/filter.rs`); it is declared here
// until the pipeline declares it (`pub mod filter;` in `src/dataplane/mod.rs`, then this becomes
// `pub use crate::dataplane::filter;`).
pub use crate::dataplane::filter;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;

use crate::model::{Target, World};
use table::Fib;

/// A TUN device of the lab. Port numbers are stable for the life of a lab.
pub type PortId = u16;
/// The namespace that holds every region's AWS service ranges (the S3 stub).
pub const PORT_AWS: PortId = 0;
/// The namespace that plays the internet.
pub const PORT_INTERNET: PortId = 1;
/// The first port of a subnet.
pub const FIRST_SUBNET_PORT: PortId = 2;

/// What a route table says for one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    Local,
    Igw,
    /// Index into [`Snapshot::endpoints`].
    Vpce(u16),
    /// Index into [`Snapshot::nats`]: a NAT gateway or NAT instance.
    Nat(u16),
    Blackhole,
}

impl Hop {
    /// The hop of a route to `target` that is not a NAT: `None` for a NAT gateway or NAT
    /// instance (whose index [`Snapshot::compile`] assigns) and for an endpoint that `endpoint`
    /// does not index.
    pub fn of_direct(target: &Target, endpoint: impl Fn(&str) -> Option<u16>) -> Option<Hop> {
        match target {
            Target::Local => Some(Hop::Local),
            Target::Igw(_) => Some(Hop::Igw),
            Target::Blackhole => Some(Hop::Blackhole),
            Target::Vpce(id) => endpoint(id).map(Hop::Vpce),
            Target::Nat(_) | Target::Instance(_) => None,
        }
    }
}

/// A NAT gateway or NAT instance as the data plane sees it: traffic routed to it leaves with
/// its address and a translated port, then follows the route table of its subnet (`port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatBox {
    /// `nat-…` or `i-…`.
    pub id: Arc<str>,
    pub vpc: u16,
    /// The port of the subnet the NAT is in.
    pub port: PortId,
    pub private_ip: u32,
    /// The Elastic IP (gateway) or public IP (instance); `None`: traffic it would send through
    /// the internet gateway is dropped.
    pub public_ip: Option<u32>,
    /// A NAT instance whose source/destination check is on: AWS drops what is routed to it.
    pub source_dest_check: bool,
}

/// A gateway endpoint as the S3 stub reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub vpce_id: String,
    pub vpc_id: String,
}

/// An instance address: where it lives and its public IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    pub port: PortId,
    pub public_ip: Option<u32>,
}

/// A subnet's forwarding view.
#[derive(Clone, Debug)]
pub struct SubnetPlane {
    pub subnet_id: Arc<str>,
    pub vpc: u16,
    /// The subnet's route table (`rtb-…`); subnets of one table share its FIB.
    pub table: Arc<str>,
    pub fib: Fib<Hop>,
    /// The table's own routes as compiled into `fib` (normalised prefix → hop; extra routes
    /// not included): what the next compile takes the difference against.
    pub own: Arc<HashMap<Ipv4Net, Hop>>,
    /// The hop of the table's extra routes in `fib` (`None`: it has none).
    pub extra_hop: Option<Hop>,
}

/// The changes that turn a table whose own routes were `before` into one whose own routes
/// are `after`: a removed route uncovers the extra route of the same prefix, if any.
pub(crate) fn route_changes(
    before: &HashMap<Ipv4Net, Hop>,
    after: &HashMap<Ipv4Net, Hop>,
    extra: Option<&extra::Extra>,
) -> Vec<(Ipv4Net, Option<Hop>)> {
    let removed = before
        .keys()
        .filter(|n| !after.contains_key(n))
        .map(|&n| (n, extra.and_then(|e| e.get(n))));
    let set = after.iter().filter(|&(n, h)| before.get(n) != Some(h)).map(|(&n, &h)| (n, Some(h)));
    removed.chain(set).collect()
}

/// A VPC's forwarding view.
#[derive(Clone, Debug)]
pub struct VpcPlane {
    /// Behind a thin pointer: a resolver flow's path holds it ([`crate::dataplane::flow::FlowPath`]).
    pub id: Arc<String>,
    pub cidr: Ipv4Net,
    /// Instance private address → host.
    pub hosts: HashMap<u32, Host>,
    /// `enableDnsSupport`: whether the VPC resolver answers its queries.
    pub dns_support: bool,
}

/// A public IP's 1:1 NAT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicIp {
    pub vpc: u16,
    pub private_ip: u32,
    pub port: PortId,
}

/// The immutable forwarding state of the whole lab.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Indexed by port; `None` for the aws and internet ports and for unused ports.
    pub subnets: Vec<Option<SubnetPlane>>,
    pub vpcs: Vec<VpcPlane>,
    pub public_ips: HashMap<u32, PublicIp>,
    /// Every AWS service range of every region: IGW traffic to these goes to the aws port.
    pub aws_ranges: Fib<()>,
    /// The CIDRs `aws_ranges` was compiled from (the next compile reuses it when they stay).
    pub aws_cidrs: Arc<Vec<Ipv4Net>>,
    pub endpoints: Vec<Arc<EndpointInfo>>,
    /// NAT gateways and NAT instances that some route names.
    pub nats: Vec<NatBox>,
    /// Every address a NAT translates to (public and private): return traffic to these is
    /// matched against the flow table first.
    pub nat_addrs: std::collections::HashSet<u32>,
    /// Security groups per instance address and network ACLs per subnet port, compiled (see
    /// [`filter`]: `sg_egress`, `sg_ingress`, `nacl_out`, `nacl_in`).
    pub filters: filter::FilterSet,
}

impl Snapshot {
    /// Compiles a world. `port_of` gives the port of a subnet id (the lab shell owns the
    /// devices, so it owns the numbering); subnets without a port are not forwarded.
    pub fn compile(
        world: &World,
        generation: u64,
        port_of: &dyn Fn(&str) -> Option<PortId>,
    ) -> Snapshot {
        Self::compile_after(world, generation, port_of, None)
    }

    /// [`Snapshot::compile`], taking each route table's FIB from `prev` (the snapshot
    /// compiled before, still current) updated by the difference in the table's routes, when
    /// `prev` has it: an update of a few /16s instead of a full build (which matters with
    /// 900k extra routes). The answer is the same as `compile`'s.
    pub fn compile_after(
        world: &World,
        generation: u64,
        port_of: &dyn Fn(&str) -> Option<PortId>,
        prev: Option<&Snapshot>,
    ) -> Snapshot {
        let vpc_index: HashMap<&str, u16> =
            world.vpcs.iter().enumerate().map(|(i, v)| (v.id.as_str(), i as u16)).collect();
        let endpoints: Vec<Arc<EndpointInfo>> = world
            .endpoints
            .iter()
            .map(|e| Arc::new(EndpointInfo { vpce_id: e.id.clone(), vpc_id: e.vpc.clone() }))
            .collect();
        let endpoint_index: HashMap<&str, u16> =
            world.endpoints.iter().enumerate().map(|(i, e)| (e.id.as_str(), i as u16)).collect();

        let mut vpcs: Vec<VpcPlane> = world
            .vpcs
            .iter()
            .map(|v| VpcPlane {
                id: Arc::new(v.id.clone()),
                cidr: v.cidr,
                hosts: HashMap::new(),
                dns_support: v.enable_dns_support,
            })
            .collect();
        let mut public_ips = HashMap::new();
        for inst in &world.instances {
            let Some(subnet) = world.subnet(&inst.subnet) else {
                continue;
            };
            let (Some(&vpc), Some(port)) =
                (vpc_index.get(subnet.vpc.as_str()), port_of(&subnet.id))
            else {
                continue;
            };
            let public_ip = inst.public_ip.map(u32::from);
            let private_ip = u32::from(inst.private_ip);
            vpcs[vpc as usize].hosts.insert(private_ip, Host { port, public_ip });
            if let Some(p) = public_ip {
                public_ips.insert(p, PublicIp { vpc, private_ip, port });
            }
        }

        let mut nats: Vec<NatBox> = Vec::new();
        let mut nat_addrs = std::collections::HashSet::new();
        let mut nat_index = |target: &Target| -> Option<u16> {
            let (id, vpc, subnet, private_ip, public_ip, sdc) = match target {
                Target::Nat(id) => {
                    let n = world.live_nat_gateways().find(|n| &n.id == id)?;
                    (id, &n.vpc, &n.subnet, n.private_ip, Some(n.public_ip), false)
                }
                Target::Instance(id) => {
                    let i = world.instance(id)?;
                    let vpc = &world.subnet(&i.subnet)?.vpc;
                    (id, vpc, &i.subnet, i.private_ip, i.public_ip, i.source_dest_check)
                }
                _ => return None,
            };
            if let Some(i) = nats.iter().position(|n| &*n.id == id.as_str()) {
                return Some(i as u16);
            }
            let nat = NatBox {
                id: id.as_str().into(),
                vpc: *vpc_index.get(vpc.as_str())?,
                port: port_of(subnet)?,
                private_ip: u32::from(private_ip),
                public_ip: public_ip.map(u32::from),
                source_dest_check: sdc,
            };
            nat_addrs.insert(nat.private_ip);
            nat_addrs.extend(nat.public_ip);
            nats.push(nat);
            Some((nats.len() - 1) as u16)
        };
        let mut subnets: Vec<Option<SubnetPlane>> = Vec::new();
        // Per route table: its FIB, own routes and extra routes' hop, shared by its subnets.
        type Compiled = (Fib<Hop>, Arc<HashMap<Ipv4Net, Hop>>, Option<Hop>);
        let mut tables: HashMap<&str, Compiled> = HashMap::new();
        for subnet in &world.subnets {
            let (Some(port), Some(&vpc)) =
                (port_of(&subnet.id), vpc_index.get(subnet.vpc.as_str()))
            else {
                continue;
            };
            let rt = subnet.route_table.as_str();
            let (fib, own, extra_hop) = match tables.get(rt) {
                Some(c) => c.clone(),
                None => {
                    // `compiled_routes` orders routes so that "later wins" implements the
                    // guide's tie rule (an identical CIDR route beats the prefix-list route).
                    let mut own: HashMap<Ipv4Net, Hop> = HashMap::new();
                    for (net, t) in world.compiled_routes(rt) {
                        let hop = match &t {
                            // A NAT without a port (its subnet is not forwarded) drops.
                            Target::Nat(_) | Target::Instance(_) => {
                                nat_index(&t).map_or(Hop::Blackhole, Hop::Nat)
                            }
                            _ => match Hop::of_direct(&t, |id| endpoint_index.get(id).copied()) {
                                Some(hop) => hop,
                                None => continue,
                            },
                        };
                        own.insert(net.trunc(), hop);
                    }
                    // With extra routes (benchmarks), the table's own routes go on top of them
                    // (an identical prefix: the table's own route wins).
                    let extra = extra::base(world, rt);
                    let extra_hop = extra.map(|e| e.hop);
                    let before = prev.and_then(|p| {
                        p.subnets
                            .iter()
                            .flatten()
                            .find(|pl| *pl.table == *rt && pl.extra_hop == extra_hop)
                    });
                    let fib = before
                        .and_then(|pl| pl.fib.update(route_changes(&pl.own, &own, extra.as_ref())))
                        .unwrap_or_else(|| {
                            let extra =
                                extra.iter().flat_map(|e| e.prefixes.iter().map(|&n| (n, e.hop)));
                            Fib::from_routes(extra.chain(own.iter().map(|(&n, &h)| (n, h))))
                        });
                    let c = (fib, Arc::new(own), extra_hop);
                    tables.insert(rt, c.clone());
                    c
                }
            };
            let plane = SubnetPlane {
                subnet_id: subnet.id.as_str().into(),
                vpc,
                table: rt.into(),
                fib,
                own,
                extra_hop,
            };
            let idx = port as usize;
            if subnets.len() <= idx {
                subnets.resize(idx + 1, None);
            }
            subnets[idx] = Some(plane);
        }
        let aws_cidrs: Vec<Ipv4Net> =
            world.prefix_lists.iter().flat_map(|p| p.cidrs.iter().copied()).collect();
        let (aws_ranges, aws_cidrs) = match prev {
            Some(p) if *p.aws_cidrs == aws_cidrs => (p.aws_ranges.clone(), p.aws_cidrs.clone()),
            _ => (Fib::from_routes(aws_cidrs.iter().map(|&c| (c, ()))), Arc::new(aws_cidrs)),
        };
        let filters = filter::FilterSet::compile(world, &vpc_index, port_of);
        Snapshot {
            generation,
            subnets,
            vpcs,
            public_ips,
            aws_ranges,
            aws_cidrs,
            endpoints,
            nats,
            nat_addrs,
            filters,
        }
    }

    pub fn subnet(&self, port: PortId) -> Option<&SubnetPlane> {
        self.subnets.get(port as usize).and_then(|s| s.as_ref())
    }

    /// Where a subnet's route table sends `dst` (for `vpcsim status` and tests).
    pub fn route(&self, port: PortId, dst: Ipv4Addr) -> Option<Hop> {
        self.subnet(port)?.fib.lookup(u32::from(dst))
    }
}

/// Port numbering by subnet position: `FIRST_SUBNET_PORT + index` in `world.subnets`.
pub fn ports_by_index(world: &World) -> HashMap<String, PortId> {
    world
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), FIRST_SUBNET_PORT + i as PortId))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PolicyChange, Route};
    use proptest::prelude::*;

    const TABLES: [&str; 4] = ["rtb-0a0a0a0a", "rtb-0b0b0b0b", "rtb-0c0c0c0c", "rtb-0d0d0d0d"];

    /// One change of the default lab: a route added, replaced or deleted in one of its tables,
    /// or the endpoint's tables changed (which only the full compile handles).
    #[derive(Clone, Debug)]
    enum Op {
        Add(usize, u32, u8, bool),
        Replace(usize, u32, u8, bool),
        Delete(usize, usize),
        Endpoint(usize, bool),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        // Addresses in 100.64.0.0/10 and over the prefix list's 54.123.160.0/19, nesting.
        let addr = (any::<bool>(), any::<u32>()).prop_map(|(pl, a)| {
            if pl { 0x367b_a000 | (a & 0x1fff) } else { 0x6440_0000 | (a & 0x3f_ffff) }
        });
        prop_oneof![
            (0..4usize, addr.clone(), 10u8..=32, any::<bool>())
                .prop_map(|(t, a, l, n)| Op::Add(t, a, l, n)),
            (0..4usize, addr, 10u8..=32, any::<bool>())
                .prop_map(|(t, a, l, n)| Op::Replace(t, a, l, n)),
            (0..4usize, 0..8usize).prop_map(|(t, i)| Op::Delete(t, i)),
            (0..4usize, any::<bool>()).prop_map(|(t, add)| Op::Endpoint(t, add)),
        ]
    }

    fn apply(w: &mut World, op: &Op) {
        let target = |nat: bool| {
            if nat {
                Target::Nat("nat-0b0b0b0b".into())
            } else {
                Target::Igw("igw-1a2b3c4d".into())
            }
        };
        let net = |a: u32, l: u8| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc();
        // A refused change (a duplicate, the NAT subnet's own default, ...) changes nothing.
        let _ = match *op {
            Op::Add(t, a, l, n) => {
                w.add_route(TABLES[t], Route { destination: net(a, l), target: target(n) })
            }
            Op::Replace(t, a, l, n) => {
                w.replace_route(TABLES[t], Route { destination: net(a, l), target: target(n) })
            }
            Op::Delete(t, i) => {
                let Some(d) = w.route_table(TABLES[t]).and_then(|rt| rt.routes.get(i)) else {
                    return;
                };
                let d = d.destination;
                w.delete_route(TABLES[t], d)
            }
            Op::Endpoint(t, add) => {
                let table = [TABLES[t].to_string()];
                let (a, r) = if add { (&table[..], &[][..]) } else { (&[][..], &table[..]) };
                w.modify_endpoint("vpce-11bb22cc", a, r, PolicyChange::Keep)
            }
        };
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// A chain of snapshots, each compiled after the one before (every table's FIB updated
        /// by its difference), answers every probe as a fresh compile of the same world, also
        /// while older snapshots of the chain are still held.
        #[test]
        fn compile_after_matches_compile(
            ops in prop::collection::vec(arb_op(), 1..30),
            hold in any::<bool>(),
        ) {
            let mut world = crate::lab::file::parse("demo", crate::lab::file::DEFAULT_LAB).unwrap();
            let ports = ports_by_index(&world);
            let port_of = |id: &str| ports.get(id).copied();
            let mut prev = Snapshot::compile(&world, 1, &port_of);
            let mut held = Vec::new();
            for (g, op) in ops.iter().enumerate() {
                apply(&mut world, op);
                let next = Snapshot::compile_after(&world, g as u64 + 2, &port_of, Some(&prev));
                let fresh = Snapshot::compile(&world, 0, &port_of);
                let mut probes = vec![0u32, 0x0808_0808, 0x367b_aa05, 0x0a00_0105];
                for rt in &world.route_tables {
                    for r in &rt.routes {
                        let (a, b) = (u32::from(r.destination.network()), u32::from(r.destination.broadcast()));
                        probes.extend([a, b, a.wrapping_sub(1), b.wrapping_add(1)]);
                    }
                }
                for &port in ports.values() {
                    for &p in &probes {
                        prop_assert_eq!(
                            next.route(port, Ipv4Addr::from(p)),
                            fresh.route(port, Ipv4Addr::from(p)),
                            "port {} {} after {:?}", port, Ipv4Addr::from(p), op
                        );
                    }
                }
                if hold {
                    held.push(prev);
                }
                prev = next;
            }
        }
    }
}
