//! The VPC world: VPCs, subnets, route tables, gateway endpoints, prefix lists, internet
//! gateways, instances, buckets and internet hosts, and every rule of the guide that constrains
//! them, as typed errors.
//!
//! Invariants kept by every mutating method (they validate first and change nothing on error):
//! - every id referenced from another object exists (a subnet's VPC and route table, an
//!   endpoint's route tables, an instance's subnet);
//! - subnets lie inside their VPC's CIDR and do not overlap;
//! - a route table holds no route whose destination is a prefix list: endpoint routes are
//!   derived from endpoint associations (see [`World::effective_routes`]);
//! - no route table is associated with two endpoints to the same service;
//! - an endpoint's service belongs to the world's region;
//! - every VPC that has a route table has exactly one main table (the first table added to it);
//!   a subnet's `route_table` is always the table it uses: its explicit association
//!   (`association_id` is `Some`) or else the main table, kept in step when the main
//!   association is replaced;
//! - every VPC has a default security group and a default network ACL (ids derived from the VPC
//!   id); every group an instance or a rule names exists in the same VPC; network ACL entries
//!   never name a prefix list (see [`filters`] for the rest);
//! - new ids come from [`World::generate_id`] (a counter in the world, so deterministic) and
//!   never collide with existing ids, association ids included;
//! - a route's target exists, or is accounted for once gone: a detached gateway, a deleted NAT
//!   gateway (still listed), a terminated instance (listed for an hour), or an id in
//!   [`World::gone_targets`]; such a route is a blackhole.
//!
//! A world no method built (one read from disk) is checked against these with [`World::check`]
//! (`check.rs`), which applies the same methods' rules to each object.
//!
//! The module does no I/O: the lab loader and (later) the EC2 API drive it, the data plane
//! compiles a snapshot from it.

mod check;
mod error;
mod filters;
mod nat;
mod ops;
mod policy_doc;
mod regions;
mod shared;
mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use shared::Shared;

pub use check::Invalid;
pub use error::ModelError;
pub use filters::{
    ACL_DEFAULT_RULE, AclAssociation, AclEntry, DEFAULT_GROUP_DESCRIPTION, Direction,
    MAX_ACL_ENTRIES, MAX_ACL_RULE, MAX_GROUPS_PER_INTERFACE, MAX_SG_RULES, NetworkAcl, Peer, Ports,
    Protocol, RuleAction, SecurityGroup, SgRule, check_rule_description, default_acl_id,
    default_group_id, implicit_acl_association_id, parse_acl_cidr,
};
pub use nat::{ElasticIp, NatGateway, NatState};
pub use ops::{PolicyChange, ResourceKind, check_tag};
pub use policy_doc::{DEFAULT_ENDPOINT_POLICY, validate_endpoint_policy};
pub use regions::{AwsRegion, REGIONS, S3_FIPS_REGIONS, default_prefix_lists, has_s3_fips};
pub use users::{ACCOUNT_ID, AWS_ACCOUNT_ID, User, default_users};

/// An AWS-managed prefix list: the address ranges of one service in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixList {
    pub id: String,
    /// The service name, `com.amazonaws.<region>.s3`.
    pub name: String,
    pub region: String,
    pub cidrs: Vec<Ipv4Net>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: Ipv4Net,
    pub enable_dns_support: bool,
    /// The main route table: the table of every subnet without an explicit association. Set by
    /// [`World::add_route_table`] for the first table of the VPC (in a lab file: the first
    /// `[[route_table]]` of the VPC; through the API: the table CreateVpc creates). `add_vpc`
    /// ignores the value given.
    #[serde(default)]
    pub main_route_table: Option<String>,
    /// The id (`rtbassoc-…`) of the main route table association.
    #[serde(default)]
    pub main_association_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetGateway {
    pub id: String,
    /// The VPC it is attached to, if any.
    pub vpc: Option<String>,
}

/// Where a route sends matching traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Inside the VPC: to the subnet holding the destination.
    Local,
    /// Out through an internet gateway (`igw-…`), with 1:1 NAT to the instance's public IP.
    Igw(String),
    /// Into a gateway endpoint (`vpce-…`); only ever derived from an endpoint association.
    Vpce(String),
    /// To a NAT gateway (`nat-…`): source address and port translated to the gateway's, then
    /// routed by the gateway subnet's table.
    Nat(String),
    /// To an instance (`i-…`), a NAT instance: translated like a NAT gateway, to the instance's
    /// address; its source/destination check must be off or the traffic is dropped, as on AWS.
    Instance(String),
    /// Dropped silently.
    Blackhole,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local => f.write_str("local"),
            Target::Igw(id) | Target::Vpce(id) | Target::Nat(id) | Target::Instance(id) => {
                f.write_str(id)
            }
            Target::Blackhole => f.write_str("blackhole"),
        }
    }
}

/// A route as written by a user: a CIDR destination and a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: Ipv4Net,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    pub id: String,
    pub vpc: String,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    /// Short name; the subnet's namespace is `<lab>-<name>`.
    pub name: String,
    pub vpc: String,
    pub cidr: Ipv4Net,
    /// The route table the subnet uses (always filled in; this is what the data plane reads):
    /// the explicitly associated table, else the VPC's main table.
    pub route_table: String,
    /// `Some(rtbassoc-…)`: an explicit association with `route_table`; `None`: implicitly
    /// associated with the main table (`route_table` follows the main table). `add_subnet`
    /// generates it; the value given is ignored.
    #[serde(default)]
    pub association_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub vpc: String,
    /// The prefix-list name of the service, `com.amazonaws.<region>.s3`.
    pub service: String,
    pub route_tables: Vec<String>,
    /// The endpoint policy as JSON text; `None` is the default full-access policy.
    pub policy: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub subnet: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    /// EC2 assigned it a public IPv4 address at launch (RunInstances
    /// `AssociatePublicIpAddress`, a lab file's `public_ip`). While an Elastic IP is associated
    /// that address is given up; when the Elastic IP goes, the instance gets a new one (see
    /// [`World::disassociate_address`]). Always written; a world saved before it was kept
    /// takes it from the public IPs (see [`World::adopt_auto_public_ips`]).
    #[serde(default)]
    pub auto_public_ip: bool,
    /// The AMI id given to RunInstances, echoed back by DescribeInstances.
    #[serde(default)]
    pub image_id: Option<String>,
    /// The instance type given to RunInstances (`t2.micro` …), echoed back; `None`: the
    /// lab's default (see `services::ec2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// The security groups (`sg-…`, same VPC) the instance is in; empty: its VPC's default
    /// group (see [`World::instance_groups`]).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// EC2's source/destination check (default on). A NAT instance needs it off: with it on,
    /// traffic routed to the instance is dropped.
    #[serde(default = "yes")]
    pub source_dest_check: bool,
    /// The reservation of the RunInstances call that launched it (one per call, shared by
    /// all its instances); `None` (lab-file instances, worlds saved before it was kept): see
    /// [`Instance::reservation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<String>,
    /// When RunInstances launched it, in Unix seconds; `None` for lab-file instances and
    /// worlds saved before it was kept (shown as a fixed date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<u64>,
    /// The `ClientToken` of the RunInstances call that launched it ("The client token is
    /// included in the response when you describe the instance", EC2 User Guide); `None` for
    /// lab-file instances, calls without one and worlds saved before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `r-` and the instance id's digits: the reservation of an instance that kept none.
fn derived_reservation(id: &str) -> String {
    format!("r-{}", id.trim_start_matches("i-"))
}

impl Instance {
    /// Its reservation id: the one kept, else derived from its id.
    pub fn reservation(&self) -> String {
        self.reservation.clone().unwrap_or_else(|| derived_reservation(&self.id))
    }
}

fn yes() -> bool {
    true
}

/// What is left of a terminated instance: EC2's TerminateInstances reference, "Terminated
/// instances remain visible after termination (for approximately one hour)", and "This
/// operation is idempotent; if you terminate an instance more than once, each call succeeds."
/// No subnet, address or group: those went with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminatedInstance {
    pub id: String,
    #[serde(default)]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// When it was terminated, in Unix seconds.
    pub terminated_at: u64,
    /// Its reservation, as [`Instance::reservation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<String>,
    /// As [`Instance::launched_at`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<u64>,
    /// As [`Instance::client_token`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

impl TerminatedInstance {
    /// Its reservation id: the one kept, else derived from its id.
    pub fn reservation(&self) -> String {
        self.reservation.clone().unwrap_or_else(|| derived_reservation(&self.id))
    }
}

/// A create call made idempotent by its `ClientToken`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientToken {
    /// SHA-256 of the action and its parameters.
    pub fingerprint: String,
    /// The answer, given again to a retry (with the retry's request id).
    pub xml: String,
    pub request_id: String,
    /// Order of use, to forget the oldest.
    pub seq: u64,
}

/// How many client tokens a world remembers.
pub const CLIENT_TOKENS_KEPT: usize = 256;

impl World {
    /// Records a client token's call, forgetting the oldest beyond [`CLIENT_TOKENS_KEPT`].
    pub fn remember_client_token(&mut self, token: &str, mut rec: ClientToken) {
        rec.seq = self.client_tokens.values().map(|r| r.seq + 1).max().unwrap_or(0);
        self.client_tokens.insert(token.to_string(), rec);
        if self.client_tokens.len() > CLIENT_TOKENS_KEPT
            && let Some(oldest) =
                self.client_tokens.iter().min_by_key(|(_, r)| r.seq).map(|(t, _)| t.clone())
        {
            self.client_tokens.remove(&oldest);
        }
    }
}

/// How long a terminated instance stays listed.
pub const TERMINATED_VISIBLE_SECS: u64 = 3600;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    pub policy: Option<String>,
    /// Objects created when the bucket is first created (key, body).
    pub objects: Vec<(String, String)>,
}

/// A host in the lab's internet namespace, answering HTTP on port 80 with the source address
/// it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetHost {
    pub name: String,
    pub ip: Ipv4Addr,
}

/// The destination of an effective route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Cidr(Ipv4Net),
    PrefixList(String),
}

/// One route of a route table as DescribeRouteTables shows it: user routes, the VPC's local
/// route, and the endpoint routes derived from associations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveRoute {
    pub destination: Destination,
    pub target: Target,
}

/// The whole lab world.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    pub lab: String,
    pub region: String,
    pub prefix_lists: Shared<PrefixList>,
    pub vpcs: Shared<Vpc>,
    pub internet_gateways: Shared<InternetGateway>,
    pub route_tables: Shared<RouteTable>,
    pub subnets: Shared<Subnet>,
    pub endpoints: Shared<Endpoint>,
    pub instances: Shared<Instance>,
    pub buckets: Shared<Bucket>,
    pub internet_hosts: Shared<InternetHost>,
    /// IAM users; empty means `../shared/DESIGN.md`'s default users (see [`users`]).
    #[serde(default)]
    pub users: Shared<User>,
    /// How long a modified endpoint policy takes to reach the data plane, in seconds (the lab
    /// option `policy_propagation_delay`; the guide: changes "can take a few minutes").
    #[serde(default)]
    pub policy_propagation_delay_secs: u64,
    /// The counter behind [`World::generate_id`] (deterministic ids for new resources).
    #[serde(default)]
    pub next_id: u64,
    /// The counter behind security-group rule ids (`sgr-…`).
    #[serde(default)]
    pub next_rule_id: u64,
    /// Tags by resource id (vpc, subnet, route table, internet gateway, instance), key → value.
    #[serde(default)]
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Security groups, the default group of every VPC included.
    #[serde(default)]
    pub security_groups: Shared<SecurityGroup>,
    /// Network ACLs, the default ACL of every VPC included.
    #[serde(default)]
    pub network_acls: Shared<NetworkAcl>,
    /// Elastic IP addresses.
    #[serde(default)]
    pub elastic_ips: Shared<ElasticIp>,
    /// NAT gateways, deleted ones included.
    #[serde(default)]
    pub nat_gateways: Shared<NatGateway>,
    /// Instances terminated in the last hour, as DescribeInstances still lists them.
    #[serde(default)]
    pub terminated_instances: Shared<TerminatedInstance>,
    /// The client tokens of idempotent create calls (RunInstances, CreateRouteTable, …), with
    /// what each call answered; the last [`CLIENT_TOKENS_KEPT`] are kept.
    #[serde(default)]
    pub client_tokens: BTreeMap<String, ClientToken>,
    /// Ids of internet gateways and instances that went (deleted; terminated and no longer
    /// listed) while routes named them: those routes stay, as blackholes (AWS shows them so),
    /// and [`World::check`] finds their targets here.
    /// Always written, even empty: a world.json without it was saved before it was kept (see
    /// [`World::adopt_gone_targets`]).
    #[serde(default)]
    pub gone_targets: BTreeSet<String>,
}

/// Public IPs come from here (`../shared/DESIGN.md`: TEST-NET-3 stands in for the public internet).
/// Blocks that are not public unicast (RFC 6890): private, shared (CGN), loopback,
/// "this network", link-local, IETF protocol assignments, documentation (TEST-NET-1; the
/// other two are the lab's own ranges, refused apart), benchmarking, multicast and reserved.
const NOT_PUBLIC: [Ipv4Net; 12] = [
    ipv4net(Ipv4Addr::new(0, 0, 0, 0), 8),
    ipv4net(Ipv4Addr::new(10, 0, 0, 0), 8),
    ipv4net(Ipv4Addr::new(100, 64, 0, 0), 10),
    ipv4net(Ipv4Addr::new(127, 0, 0, 0), 8),
    ipv4net(Ipv4Addr::new(169, 254, 0, 0), 16),
    ipv4net(Ipv4Addr::new(172, 16, 0, 0), 12),
    ipv4net(Ipv4Addr::new(192, 0, 0, 0), 24),
    ipv4net(Ipv4Addr::new(192, 0, 2, 0), 24),
    ipv4net(Ipv4Addr::new(192, 168, 0, 0), 16),
    ipv4net(Ipv4Addr::new(198, 18, 0, 0), 15),
    ipv4net(Ipv4Addr::new(224, 0, 0, 0), 4),
    ipv4net(Ipv4Addr::new(240, 0, 0, 0), 4),
];

pub const PUBLIC_IP_RANGE: Ipv4Net = ipv4net(Ipv4Addr::new(203, 0, 113, 0), 24);
/// Internet hosts live here (TEST-NET-2).
pub const INTERNET_HOST_RANGE: Ipv4Net = ipv4net(Ipv4Addr::new(198, 51, 100, 0), 24);

const fn ipv4net(addr: Ipv4Addr, len: u8) -> Ipv4Net {
    match Ipv4Net::new(addr, len) {
        Ok(n) => n,
        Err(_) => panic!("constant prefix length out of range"),
    }
}

/// AWS: "The allowed block size is between a /16 netmask and /28 netmask."
fn check_vpc_cidr(cidr: Ipv4Net) -> Result<(), ModelError> {
    if (16..=28).contains(&cidr.prefix_len()) {
        Ok(())
    } else {
        Err(ModelError::InvalidVpcCidr(cidr))
    }
}

/// Blocks no VPC may overlap: what the data plane drops as martian before routing (README,
/// "The path of a packet"), with why.
const NOT_FOR_A_VPC: [(Ipv4Net, &str); 5] = [
    (ipv4net(Ipv4Addr::new(0, 0, 0, 0), 8), "\"this network\", which is never routed"),
    (ipv4net(Ipv4Addr::new(127, 0, 0, 0), 8), "the loopback range"),
    (ipv4net(Ipv4Addr::new(169, 254, 0, 0), 16), "the link-local range"),
    (ipv4net(Ipv4Addr::new(224, 0, 0, 0), 4), "the multicast range"),
    (ipv4net(Ipv4Addr::new(240, 0, 0, 0), 4), "the reserved range (broadcast included)"),
];

fn check_id(kind: &'static str, prefix: &str, id: &str) -> Result<(), ModelError> {
    let ok = id
        .strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()));
    if ok { Ok(()) } else { Err(ModelError::MalformedId { kind, id: id.to_string() }) }
}

impl World {
    /// An empty world in a region, with the AWS-managed S3 prefix list of every known region.
    pub fn new(lab: &str, region: &str) -> Result<World, ModelError> {
        if regions::region(region).is_none() {
            return Err(ModelError::UnknownRegion(region.to_string()));
        }
        check_lab_name(lab)?;
        Ok(World {
            lab: lab.to_string(),
            region: region.to_string(),
            prefix_lists: default_prefix_lists().into(),
            ..World::default()
        })
    }

    pub fn vpc(&self, id: &str) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| v.id == id)
    }
    pub fn subnet(&self, id_or_name: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id_or_name || s.name == id_or_name)
    }
    pub fn route_table(&self, id: &str) -> Option<&RouteTable> {
        self.route_tables.iter().find(|r| r.id == id)
    }
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }
    pub fn prefix_list_by_name(&self, name: &str) -> Option<&PrefixList> {
        self.prefix_lists.iter().find(|p| p.name == name)
    }
    pub fn prefix_list(&self, id: &str) -> Option<&PrefixList> {
        self.prefix_lists.iter().find(|p| p.id == id)
    }
    pub fn igw(&self, id: &str) -> Option<&InternetGateway> {
        self.internet_gateways.iter().find(|g| g.id == id)
    }

    /// Replaces the built-in prefix list of a service (a lab may move a region's S3 range).
    pub fn set_prefix_list(&mut self, pl: PrefixList) -> Result<(), ModelError> {
        check_id("prefix list", "pl-", &pl.id)?;
        if regions::region(&pl.region).is_none() {
            return Err(ModelError::UnknownRegion(pl.region));
        }
        if pl.cidrs.is_empty() {
            return Err(ModelError::EmptyPrefixList(pl.id));
        }
        if let Some(other) = self.prefix_lists.iter().find(|p| p.id == pl.id && p.name != pl.name) {
            return Err(ModelError::DuplicateId(other.id.clone()));
        }
        let cidrs: Vec<Ipv4Net> = pl.cidrs.iter().map(|c| c.trunc()).collect();
        // AWS-managed lists never repeat an entry; a repeated one is a mistake to name.
        if let Some(&cidr) =
            cidrs.iter().enumerate().find(|(k, c)| cidrs[..*k].contains(c)).map(|x| x.1)
        {
            return Err(ModelError::DuplicatePrefixListCidr { id: pl.id.clone(), cidr });
        }
        for &cidr in &cidrs {
            let refuse =
                |why: String| ModelError::InvalidPrefixListCidr { id: pl.id.clone(), cidr, why };
            // A service's prefix list holds the service's public ranges only: never a
            // private, shared, loopback, link-local, multicast or reserved block (else the
            // list's route would capture the VPC's own or other internal traffic).
            if let Some(special) =
                NOT_PUBLIC.iter().find(|n| n.contains(&cidr) || cidr.contains(*n))
            {
                return Err(refuse(format!("it overlaps {special}, which is not a public range")));
            }
            for (range, what) in
                [(INTERNET_HOST_RANGE, "the internet hosts"), (PUBLIC_IP_RANGE, "the public IPs")]
            {
                if range.contains(&cidr) || cidr.contains(&range) {
                    return Err(refuse(format!("it overlaps {range}, the lab's range of {what}")));
                }
            }
            if let Some(v) =
                self.vpcs.iter().find(|v| v.cidr.contains(&cidr) || cidr.contains(&v.cidr))
            {
                return Err(refuse(format!("it overlaps {} of {}", v.cidr, v.id)));
            }
            if let Some(other) = self
                .prefix_lists
                .iter()
                .filter(|p| p.name != pl.name)
                .find(|p| p.cidrs.iter().any(|c| c.contains(&cidr) || cidr.contains(c)))
            {
                return Err(refuse(format!("it overlaps {} ({})", other.id, other.name)));
            }
        }
        self.prefix_lists.retain(|p| p.name != pl.name);
        self.prefix_lists.push(PrefixList { cidrs, ..pl });
        Ok(())
    }

    pub fn add_vpc(&mut self, vpc: Vpc) -> Result<(), ModelError> {
        check_id("vpc", "vpc-", &vpc.id)?;
        self.check_unique(&vpc.id)?;
        check_vpc_cidr(vpc.cidr)?;
        self.check_vpc_range(vpc.cidr.trunc())?;
        self.check_default_ids_free(&vpc.id)?;
        self.push_defaults(&vpc.id);
        self.vpcs.push(Vpc {
            cidr: vpc.cidr.trunc(),
            main_route_table: None,
            main_association_id: None,
            ..vpc
        });
        Ok(())
    }

    /// A new VPC's block must not overlap a range the lab holds fixed or never routes (AWS
    /// refuses the latter as `InvalidVpc.Range`; it allows a VPC over another public range,
    /// which the lab cannot simulate where it keeps S3, the internet hosts and the public IPs).
    /// `set_prefix_list` refuses the same overlaps the other way. Not part of [`World::check`]:
    /// a world saved before keeps loading (README, Decisions).
    fn check_vpc_range(&self, cidr: Ipv4Net) -> Result<(), ModelError> {
        let overlaps = |n: &Ipv4Net| n.contains(&cidr) || cidr.contains(n);
        let refuse =
            |range: Ipv4Net, why: String| Err(ModelError::VpcCidrReserved { cidr, range, why });
        if let Some((range, why)) = NOT_FOR_A_VPC.iter().find(|(n, _)| overlaps(n)) {
            return refuse(*range, why.to_string());
        }
        for (range, what) in
            [(INTERNET_HOST_RANGE, "the internet hosts"), (PUBLIC_IP_RANGE, "the public IPs")]
        {
            if overlaps(&range) {
                return refuse(range, format!("the lab's range of {what}"));
            }
        }
        for p in self.prefix_lists.iter() {
            if let Some(range) = p.cidrs.iter().find(|c| overlaps(c)) {
                return refuse(*range, format!("a range of {} ({}), the lab's S3", p.id, p.name));
            }
        }
        Ok(())
    }

    pub fn add_internet_gateway(&mut self, igw: InternetGateway) -> Result<(), ModelError> {
        check_id("internet gateway", "igw-", &igw.id)?;
        self.check_unique(&igw.id)?;
        if let Some(vpc) = &igw.vpc {
            self.vpc(vpc).ok_or_else(|| ModelError::VpcNotFound(vpc.clone()))?;
            if let Some(other) = self.internet_gateways.iter().find(|g| g.vpc.as_ref() == Some(vpc))
            {
                return Err(ModelError::VpcAlreadyHasIgw {
                    vpc: vpc.clone(),
                    igw: other.id.clone(),
                });
            }
        }
        self.internet_gateways.push(igw);
        Ok(())
    }

    /// Adds an empty route table (the local route is implicit). The first table of a VPC
    /// becomes its main route table, with a generated main association id.
    pub fn add_route_table(&mut self, id: &str, vpc: &str) -> Result<(), ModelError> {
        check_id("route table", "rtb-", id)?;
        self.check_unique(id)?;
        let has_main = self
            .vpc(vpc)
            .ok_or_else(|| ModelError::VpcNotFound(vpc.to_string()))?
            .main_route_table
            .is_some();
        if !has_main {
            let assoc = self.generate_id("rtbassoc");
            if let Some(v) = self.vpcs.iter_mut().find(|v| v.id == vpc) {
                v.main_route_table = Some(id.to_string());
                v.main_association_id = Some(assoc);
            }
        }
        self.route_tables.push(RouteTable { id: id.into(), vpc: vpc.into(), routes: vec![] });
        Ok(())
    }

    /// Adds a user route. The VPC's local route is implicit (AWS adds it to every table); a
    /// `local` route is accepted only for exactly the VPC's CIDR.
    pub fn add_route(&mut self, table: &str, route: Route) -> Result<(), ModelError> {
        let rt = self
            .route_table(table)
            .ok_or_else(|| ModelError::RouteTableNotFound(table.to_string()))?;
        let vpc = self.vpc(&rt.vpc).ok_or_else(|| ModelError::VpcNotFound(rt.vpc.clone()))?;
        let destination = route.destination.trunc();
        if destination == vpc.cidr {
            // AWS refuses any route over the local one; restating it is harmless.
            return match route.target {
                Target::Local => Ok(()),
                _ => Err(ModelError::RouteOverLocal(destination)),
            };
        }
        // AWS: a route to a destination inside the VPC CIDR (more specific than the local
        // route) cannot point at a gateway.
        if vpc.cidr.contains(&destination) && route.target != Target::Local {
            return Err(ModelError::RouteOverLocal(destination));
        }
        match &route.target {
            Target::Local => return Err(ModelError::LocalRouteMismatch(destination)),
            Target::Igw(id) => {
                check_id("internet gateway", "igw-", id)?;
                // EC2's answers for a route target: InvalidGatewayID.NotFound, and for a
                // gateway not attached to this VPC "... belong to different networks".
                let igw = self.igw(id).ok_or_else(|| ModelError::GatewayNotFound(id.clone()))?;
                if igw.vpc.as_deref() != Some(rt.vpc.as_str()) {
                    return Err(ModelError::GatewayOtherNetwork {
                        table: rt.id.clone(),
                        igw: id.clone(),
                    });
                }
            }
            // From the guide: "You cannot explicitly add, modify, or delete an endpoint route in
            // your route table by using the route table APIs [...]".
            Target::Vpce(_) => return Err(ModelError::ExplicitEndpointRoute),
            Target::Nat(_) | Target::Instance(_) => {
                self.check_nat_target(&route.target, &rt.vpc)?
            }
            Target::Blackhole => {}
        }
        if rt.routes.iter().any(|r| r.destination == destination) {
            return Err(ModelError::RouteAlreadyExists { table: table.into(), destination });
        }
        let rt = self.route_tables.iter_mut().find(|r| r.id == table);
        // The table was found above and nothing removed it since.
        if let Some(rt) = rt {
            rt.routes.push(Route { destination, target: route.target });
        }
        Ok(())
    }

    /// Adds a subnet. A non-empty `route_table` is an explicit association (lab files always
    /// name one); an empty one associates the subnet implicitly with the VPC's main table, as
    /// CreateSubnet does.
    pub fn add_subnet(&mut self, mut subnet: Subnet) -> Result<(), ModelError> {
        check_id("subnet", "subnet-", &subnet.id)?;
        self.check_unique(&subnet.id)?;
        check_subnet_name(&subnet.name)?;
        if self.subnets.iter().any(|s| s.name == subnet.name) {
            return Err(ModelError::DuplicateId(subnet.name.clone()));
        }
        let vpc =
            self.vpc(&subnet.vpc).ok_or_else(|| ModelError::VpcNotFound(subnet.vpc.clone()))?;
        let cidr = subnet.cidr.trunc();
        if !vpc.cidr.contains(&cidr) || !(16..=28).contains(&cidr.prefix_len()) {
            return Err(ModelError::InvalidSubnetCidr { cidr, vpc_cidr: vpc.cidr });
        }
        if let Some(other) = self
            .subnets
            .iter()
            .find(|s| s.vpc == subnet.vpc && (s.cidr.contains(&cidr) || cidr.contains(&s.cidr)))
        {
            return Err(ModelError::SubnetConflict { cidr, other: other.id.clone() });
        }
        let explicit = !subnet.route_table.is_empty();
        if !explicit {
            let vpc =
                self.vpc(&subnet.vpc).ok_or_else(|| ModelError::VpcNotFound(subnet.vpc.clone()))?;
            subnet.route_table = vpc
                .main_route_table
                .clone()
                .ok_or_else(|| ModelError::NoMainRouteTable(vpc.id.clone()))?;
        }
        let rt = self
            .route_table(&subnet.route_table)
            .ok_or_else(|| ModelError::RouteTableNotFound(subnet.route_table.clone()))?;
        if rt.vpc != subnet.vpc {
            return Err(ModelError::RouteTableOtherVpc {
                table: rt.id.clone(),
                vpc: subnet.vpc.clone(),
            });
        }
        let association_id = explicit.then(|| self.generate_id("rtbassoc"));
        self.subnets.push(Subnet { cidr, association_id, ..subnet });
        Ok(())
    }

    /// Creates a gateway endpoint and its routes in the given route tables.
    pub fn add_endpoint(&mut self, ep: Endpoint) -> Result<(), ModelError> {
        check_id("vpc endpoint", "vpce-", &ep.id)?;
        self.check_unique(&ep.id)?;
        self.vpc(&ep.vpc).ok_or_else(|| ModelError::VpcNotFound(ep.vpc.clone()))?;
        let pl = self
            .prefix_list_by_name(&ep.service)
            .ok_or_else(|| ModelError::InvalidServiceName(ep.service.clone()))?;
        // From the guide: "You cannot create an endpoint between a VPC and an AWS service in a
        // different region."
        if pl.region != self.region {
            return Err(ModelError::CrossRegionEndpoint {
                service: ep.service.clone(),
                region: self.region.clone(),
            });
        }
        if let Some(policy) = &ep.policy {
            validate_endpoint_policy(policy)?;
        }
        for (i, rt) in ep.route_tables.iter().enumerate() {
            if ep.route_tables[..i].contains(rt) {
                return Err(ModelError::DuplicateId(rt.clone()));
            }
            self.check_endpoint_association(&ep.vpc, &ep.service, &ep.id, rt)?;
        }
        self.endpoints.push(ep);
        Ok(())
    }

    /// The guide's association rules for one route table.
    fn check_endpoint_association(
        &self,
        vpc: &str,
        service: &str,
        endpoint: &str,
        table: &str,
    ) -> Result<(), ModelError> {
        let rt = self
            .route_table(table)
            .ok_or_else(|| ModelError::RouteTableNotFound(table.to_string()))?;
        if rt.vpc != vpc {
            return Err(ModelError::RouteTableOtherVpc { table: table.into(), vpc: vpc.into() });
        }
        // From the guide: "you cannot have multiple endpoints to the same service in a single
        // route table".
        if let Some(other) = self.endpoints.iter().find(|e| {
            e.id != endpoint && e.service == service && e.route_tables.iter().any(|t| t == table)
        }) {
            return Err(ModelError::EndpointServiceAlreadyInTable {
                table: table.into(),
                service: service.into(),
                endpoint: other.id.clone(),
            });
        }
        Ok(())
    }

    pub fn add_instance(&mut self, inst: Instance) -> Result<(), ModelError> {
        check_id("instance", "i-", &inst.id)?;
        self.check_unique(&inst.id)?;
        let subnet = self
            .subnet(&inst.subnet)
            .ok_or_else(|| ModelError::SubnetNotFound(inst.subnet.clone()))?;
        // AWS reserves the first four and the last address of every subnet.
        let net = subnet.cidr;
        let ip = u32::from(inst.private_ip);
        let first = u32::from(net.network());
        let last = u32::from(net.broadcast());
        if !net.contains(&inst.private_ip) || ip < first + 4 || ip == last {
            return Err(ModelError::InvalidPrivateIp { ip: inst.private_ip, cidr: net });
        }
        let vpc = subnet.vpc.clone();
        let subnet_id = subnet.id.clone();
        self.check_instance_groups(&inst.id, &vpc, &inst.security_groups)?;
        if self.private_ip_in_use(&vpc, inst.private_ip) {
            return Err(ModelError::AddressInUse(inst.private_ip));
        }
        if let Some(public) = inst.public_ip {
            if !PUBLIC_IP_RANGE.contains(&public) {
                return Err(ModelError::InvalidPublicIp(public));
            }
            if self.public_ip_in_use(public) {
                return Err(ModelError::AddressInUse(public));
            }
        }
        self.instances.push(Instance { subnet: subnet_id, ..inst });
        Ok(())
    }

    pub fn add_bucket(&mut self, bucket: Bucket) -> Result<(), ModelError> {
        if regions::region(&bucket.region).is_none() {
            return Err(ModelError::UnknownRegion(bucket.region));
        }
        if !valid_bucket_name(&bucket.name) {
            return Err(ModelError::InvalidBucketName(bucket.name));
        }
        if let Some((key, _)) =
            bucket.objects.iter().find(|(k, _)| k.is_empty() || k.len() > MAX_KEY_LEN)
        {
            return Err(ModelError::InvalidObjectKey(key.clone()));
        }
        if self.buckets.iter().any(|b| b.name == bucket.name) {
            return Err(ModelError::DuplicateId(bucket.name));
        }
        if let Some(policy) = &bucket.policy {
            // The same checks as S3's PutBucketPolicy: a policy S3 would refuse is refused here
            // too, instead of being ignored when requests are authorized.
            let users: Vec<String> = self.users().iter().map(User::arn).collect();
            let known = crate::policy::KnownPrincipals { account: ACCOUNT_ID, users: &users };
            crate::policy::parse_bucket_policy(&bucket.name, policy, known)
                .map_err(|e| ModelError::InvalidPolicy(format!("{}: {}", e.message, e.detail)))?;
        }
        self.buckets.push(bucket);
        Ok(())
    }

    pub fn add_internet_host(&mut self, host: InternetHost) -> Result<(), ModelError> {
        check_host_name(&host.name)?;
        self.add_internet_host_named(host)
    }

    /// [`World::add_internet_host`] after its name's check.
    fn add_internet_host_named(&mut self, host: InternetHost) -> Result<(), ModelError> {
        if !INTERNET_HOST_RANGE.contains(&host.ip) {
            return Err(ModelError::InvalidInternetHost(host.ip));
        }
        // DNS names are case-insensitive: `Echo` is `echo`.
        if self.internet_hosts.iter().any(|h| h.name.eq_ignore_ascii_case(&host.name)) {
            return Err(ModelError::DuplicateId(host.name));
        }
        if self.internet_hosts.iter().any(|h| h.ip == host.ip) {
            return Err(ModelError::AddressInUse(host.ip));
        }
        self.internet_hosts.push(host);
        Ok(())
    }

    pub fn instances_in_vpc<'a>(&'a self, vpc: &'a str) -> impl Iterator<Item = &'a Instance> {
        self.instances.iter().filter(move |i| self.subnet(&i.subnet).is_some_and(|s| s.vpc == vpc))
    }

    /// The routes of a table as AWS shows them: the local route, the user's routes, then one
    /// endpoint route per associated endpoint (destination: the service's prefix list).
    pub fn effective_routes(&self, table: &str) -> Vec<EffectiveRoute> {
        let Some(rt) = self.route_table(table) else {
            return vec![];
        };
        let mut out = Vec::with_capacity(rt.routes.len() + 2);
        if let Some(vpc) = self.vpc(&rt.vpc) {
            out.push(EffectiveRoute {
                destination: Destination::Cidr(vpc.cidr),
                target: Target::Local,
            });
        }
        out.extend(rt.routes.iter().map(|r| EffectiveRoute {
            destination: Destination::Cidr(r.destination),
            target: r.target.clone(),
        }));
        for ep in self.endpoints.iter().filter(|e| e.route_tables.iter().any(|t| t == table)) {
            if let Some(pl) = self.prefix_list_by_name(&ep.service) {
                out.push(EffectiveRoute {
                    destination: Destination::PrefixList(pl.id.clone()),
                    target: Target::Vpce(ep.id.clone()),
                });
            }
        }
        out
    }

    /// The routes of a table flattened to CIDRs in the order a longest-prefix-match table must
    /// insert them so that "later wins" on identical prefixes implements the guide's tie rule:
    /// "If you have existing routes destined for an IP address range that is identical to the IP
    /// address range used by the service, then your routes take precedence." Endpoint routes
    /// (expanded to the prefix list's CIDRs) come first, CIDR routes after them.
    pub fn compiled_routes(&self, table: &str) -> Vec<(Ipv4Net, Target)> {
        let vpc = self.route_table(table).map(|t| t.vpc.as_str());
        // A route to an internet gateway that is not attached to the table's VPC, to a deleted
        // NAT gateway or to a terminated instance is a blackhole (DescribeRouteTables shows it
        // with state `blackhole`).
        let routes: Vec<EffectiveRoute> = self
            .effective_routes(table)
            .into_iter()
            .map(|mut r| {
                if matches!(r.target, Target::Igw(_) | Target::Nat(_) | Target::Instance(_))
                    && !vpc.is_some_and(|v| self.target_alive(&r.target, v))
                {
                    r.target = Target::Blackhole;
                }
                r
            })
            .collect();
        let mut out = Vec::with_capacity(routes.len() + 4);
        for r in &routes {
            if let Destination::PrefixList(pl) = &r.destination {
                for cidr in self.prefix_list(pl).map(|p| p.cidrs.as_slice()).unwrap_or(&[]) {
                    out.push((*cidr, r.target.clone()));
                }
            }
        }
        for r in routes {
            if let Destination::Cidr(cidr) = r.destination {
                out.push((cidr, r.target));
            }
        }
        out
    }

    fn check_unique(&self, id: &str) -> Result<(), ModelError> {
        let taken =
            self.vpcs.iter().any(|v| v.id == id || v.main_association_id.as_deref() == Some(id))
                || self.subnets.iter().any(|s| s.association_id.as_deref() == Some(id))
                || self.internet_gateways.iter().any(|g| g.id == id)
                || self.route_tables.iter().any(|r| r.id == id)
                || self.subnets.iter().any(|s| s.id == id)
                || self.endpoints.iter().any(|e| e.id == id)
                || self.instances.iter().any(|i| i.id == id)
                || self.nat_gateways.iter().any(|n| n.id == id)
                || self
                    .elastic_ips
                    .iter()
                    .any(|e| e.allocation_id == id || e.association_id.as_deref() == Some(id))
                || self.filter_id_taken(id);
        if taken { Err(ModelError::DuplicateId(id.to_string())) } else { Ok(()) }
    }
}

/// Lab names become namespace prefixes (`<lab>-<subnet>`); Linux allows 15-byte interface names
/// but namespace names are file names, so keep them short and plain.
pub fn check_lab_name(lab: &str) -> Result<(), ModelError> {
    let ok = !lab.is_empty()
        && lab.len() <= 24
        && lab.starts_with(|c: char| c.is_ascii_lowercase())
        && lab.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok { Ok(()) } else { Err(ModelError::InvalidLabName(lab.to_string())) }
}

/// Whether a name can be a subnet's (its namespace is `<lab>-<name>`).
pub fn valid_subnet_name(name: &str) -> bool {
    check_subnet_name(name).is_ok()
}

fn check_subnet_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 16
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name != "aws"
        && name != "internet";
    if ok { Ok(()) } else { Err(ModelError::InvalidName(name.to_string())) }
}

/// Names the VPC resolver answers itself (README, Decisions): S3's and AWS's, the instance
/// domains (`ec2.internal` in us-east-1, `<region>.compute.internal` elsewhere), reverse
/// lookups, and `internet`, under which it answers every host (`<name>.internet`).
const NOT_A_HOST_NAME: [&str; 5] =
    ["amazonaws.com", "ec2.internal", "compute.internal", "in-addr.arpa", "internet"];

/// An internet host's name: a hostname (RFC 1123: dot-separated labels of 1 to 63 letters,
/// digits and hyphens, no hyphen first or last; 253 characters at most; no trailing dot), not
/// one of [`NOT_A_HOST_NAME`] nor below one, whatever its case. The resolver looks hosts up
/// before S3's names: a host named `open-bucket.s3.amazonaws.com` took the bucket's name over.
fn check_host_name(name: &str) -> Result<(), ModelError> {
    let refuse =
        |why: String| Err(ModelError::InvalidInternetHostName { name: name.to_string(), why });
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return refuse(
            "a hostname is labels of 1 to 63 letters, digits and '-' (not first or last), \
             joined by '.', 253 characters at most"
                .into(),
        );
    }
    if let Some(zone) = shadowed_zone(name) {
        return refuse(format!(
            "the VPC resolver answers the names of {zone} itself (an internet host would \
             take them over)"
        ));
    }
    Ok(())
}

/// The zone of [`NOT_A_HOST_NAME`] that `name` is or lies below, whatever its case.
fn shadowed_zone(name: &str) -> Option<&'static str> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    NOT_A_HOST_NAME.into_iter().find(|z| lower == *z || lower.ends_with(&format!(".{z}")))
}

/// S3's bucket naming rules: 3 to 63 characters of lowercase letters, digits, dots and hyphens,
/// starting and ending with a letter or digit, no `..`, `.-` or `-.`, not an IPv4 address. The
/// one rule for lab files, the EC2 side and the object store alike (a lab file's bucket the
/// store refused would fail the build after `check` said ok).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| alnum(c) || c == b'.' || c == b'-')
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// The prefixes and suffixes of names S3 keeps for itself (S3 User Guide, "General purpose bucket
/// naming rules": "Bucket names must not start with the prefix xn--", "… sthree-" (which covers
/// "sthree-configurator"), "… amzn-s3-demo-"; "must not end with the suffix -s3alias" (access
/// point aliases), "--ol-s3" (Object Lambda access point aliases), ".mrap" (Multi-Region Access
/// Points), "--x-s3" (directory buckets), "--table-s3" (table buckets)).
const RESERVED_BUCKET_PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
const RESERVED_BUCKET_SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// The naming rule a new bucket's name breaks by using a reserved prefix or suffix, in the
/// guide's words ("start with the prefix xn--"). Checked where a bucket is made (CreateBucket, a
/// lab file), not by [`valid_bucket_name`]: a bucket an earlier vpcsim made under such a name
/// must still load from its state dir and be served.
pub fn reserved_bucket_rule(name: &str) -> Option<String> {
    if let Some(p) = RESERVED_BUCKET_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Some(format!("start with the prefix {p}"));
    }
    RESERVED_BUCKET_SUFFIXES
        .iter()
        .find(|s| name.ends_with(*s))
        .map(|s| format!("end with the suffix {s}"))
}

/// The buckets AWS keeps in `region` that the guide names: "The Amazon Linux AMI repositories
/// are Amazon S3 buckets in each region" (`packages.<region>.amazonaws.com`,
/// `repo.<region>.amazonaws.com`). They belong to [`AWS_ACCOUNT_ID`], not to the lab.
pub fn aws_repository_buckets(region: &str) -> [String; 2] {
    ["packages", "repo"].map(|kind| format!("{kind}.{region}.amazonaws.com"))
}

/// Whether `name` is one of [`aws_repository_buckets`] of some region AWS has: a name no lab
/// may take (in AWS it is another account's bucket).
pub fn is_aws_repository_bucket(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(".amazonaws.com") else { return false };
    let region = rest.strip_prefix("packages.").or_else(|| rest.strip_prefix("repo."));
    region.is_some_and(|r| regions::region(r).is_some())
}

/// S3's longest object key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

#[cfg(test)]
mod tests;
