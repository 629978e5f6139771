//! Security groups (stateful, per instance) and network ACLs (stateless, per subnet), as AWS
//! defines them, and the guide's rule about them: prefix lists may be the destination of a
//! security-group rule, never of a network ACL entry ("You cannot use prefix list IDs to create
//! an outbound rule in a network ACL [...]. Instead, you can use a prefix list ID in an outbound
//! security group rule.").
//!
//! Invariants kept by every method here (validate first, change nothing on error):
//! - every VPC has exactly one default security group (name `default`, id `sg-` + the VPC id's
//!   hex part) and one default network ACL (`acl-` + the VPC id's hex part); they are created
//!   with the VPC (or by [`World::ensure_defaults`] for worlds saved before they existed) and
//!   cannot be deleted;
//! - group names are unique per VPC; every group a rule or an instance names exists, in the
//!   same VPC; every prefix list a rule names exists;
//! - a group's rules hold no duplicate (rules are stored flat: one peer per rule);
//! - network ACL entries are unique per (direction, rule number), numbered 1..=32766;
//! - a subnet has at most one explicit ACL association; a subnet without one uses its VPC's
//!   default ACL through an implicit association whose id is derived from the subnet id.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{ModelError, World, check_id};

/// The protocols rules can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// `-1`: every protocol (and every port).
    All,
    Tcp,
    Udp,
    Icmp,
    /// Any other IP protocol, by number (GRE 47, ESP 50, `icmpv6` 58 …): every packet of it,
    /// whatever the ports. EC2: "specifying -1 or a protocol number other than tcp, udp,
    /// icmp, or icmpv6 allows traffic on all ports, regardless of any port range you specify"
    /// (AuthorizeSecurityGroupIngress, `IpProtocol`). The lab forwards IPv4 only, so an
    /// `icmpv6` rule matches nothing, as it matches no IPv4 packet in AWS.
    Other(u8),
}

impl Protocol {
    /// `-1` / `all`, `tcp` / `6`, `udp` / `17`, `icmp` / `1`, `icmpv6` / `58` (names
    /// case-insensitive), or any other protocol number 0..=255 in decimal.
    pub fn parse(s: &str) -> Result<Protocol, ModelError> {
        match s.to_ascii_lowercase().as_str() {
            "-1" | "all" => Ok(Protocol::All),
            "tcp" | "6" => Ok(Protocol::Tcp),
            "udp" | "17" => Ok(Protocol::Udp),
            "icmp" | "1" => Ok(Protocol::Icmp),
            "icmpv6" => Ok(Protocol::Other(58)),
            n if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
                match n.parse::<u8>() {
                    Ok(1) => Ok(Protocol::Icmp),
                    Ok(6) => Ok(Protocol::Tcp),
                    Ok(17) => Ok(Protocol::Udp),
                    Ok(n) => Ok(Protocol::Other(n)),
                    Err(_) => Err(ModelError::InvalidProtocol(s.to_string())),
                }
            }
            _ => Err(ModelError::InvalidProtocol(s.to_string())),
        }
    }

    /// The name security-group answers use (`ipProtocol`): `-1`, `tcp`, `udp`, `icmp`, or
    /// the number of any other (EC2 answers `icmpv6` for 58).
    pub fn sg_name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Protocol::All => "-1".into(),
            Protocol::Tcp => "tcp".into(),
            Protocol::Udp => "udp".into(),
            Protocol::Icmp => "icmp".into(),
            Protocol::Other(58) => "icmpv6".into(),
            Protocol::Other(n) => n.to_string().into(),
        }
    }

    /// The number network-ACL answers use (`protocol`): `-1`, `6`, `17`, `1`, or the number.
    pub fn acl_number(self) -> std::borrow::Cow<'static, str> {
        match self {
            Protocol::All => "-1".into(),
            Protocol::Tcp => "6".into(),
            Protocol::Udp => "17".into(),
            Protocol::Icmp => "1".into(),
            Protocol::Other(n) => n.to_string().into(),
        }
    }

    /// The IP protocol number; `None` for all.
    pub fn ip_number(self) -> Option<u8> {
        match self {
            Protocol::All => None,
            Protocol::Tcp => Some(6),
            Protocol::Udp => Some(17),
            Protocol::Icmp => Some(1),
            Protocol::Other(n) => Some(n),
        }
    }
}

/// What a rule matches beyond the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ports {
    /// Protocol `-1`: everything.
    All,
    /// TCP or UDP destination ports `from..=to`.
    Range { from: u16, to: u16 },
    /// ICMP type and code; `None` is AWS's `-1` (any).
    Icmp { icmp_type: Option<u8>, code: Option<u8> },
}

impl Ports {
    /// From AWS's `FromPort` / `ToPort` (for ICMP: type / code, `-1` any). TCP and UDP need
    /// both, `from <= to`, within 0..=65535 (`-1`/`-1` means every port, as the console sends);
    /// for ICMP a missing value is `-1`; for `-1` the ports are ignored.
    pub fn from_aws(
        protocol: Protocol,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Ports, ModelError> {
        let bad = || {
            ModelError::InvalidPortRange(format!(
                "{} {}..{}",
                protocol.sg_name(),
                from.map_or("(none)".into(), |v| v.to_string()),
                to.map_or("(none)".into(), |v| v.to_string())
            ))
        };
        match protocol {
            Protocol::All | Protocol::Other(_) => Ok(Ports::All),
            Protocol::Tcp | Protocol::Udp => match (from, to) {
                (Some(-1), Some(-1)) => Ok(Ports::Range { from: 0, to: 65535 }),
                (Some(f), Some(t)) if (0..=65535).contains(&f) && (f..=65535).contains(&t) => {
                    Ok(Ports::Range { from: f as u16, to: t as u16 })
                }
                _ => Err(bad()),
            },
            Protocol::Icmp => {
                let one = |v: Option<i64>| match v {
                    None | Some(-1) => Ok(None),
                    Some(n) if (0..=255).contains(&n) => Ok(Some(n as u8)),
                    Some(_) => Err(bad()),
                };
                let (t, c) = (one(from)?, one(to)?);
                if t.is_none() && c.is_some() {
                    return Err(bad());
                }
                Ok(Ports::Icmp { icmp_type: t, code: c })
            }
        }
    }

    /// `FromPort` / `ToPort` as AWS shows them; `None` for protocol `-1`.
    pub fn to_aws(self) -> Option<(i64, i64)> {
        let n = |v: Option<u8>| v.map_or(-1, i64::from);
        match self {
            Ports::All => None,
            Ports::Range { from, to } => Some((from.into(), to.into())),
            Ports::Icmp { icmp_type, code } => Some((n(icmp_type), n(code))),
        }
    }

    /// A lab file's `ports`: `"443"`, `"1024-65535"`, `"all"` (tcp/udp); `"8"`, `"8:0"`,
    /// `"all"` (icmp type or type:code). Ignored (may be absent) for protocol `all`.
    pub fn parse_lab(protocol: Protocol, s: Option<&str>) -> Result<Ports, ModelError> {
        let bad = || ModelError::InvalidPortRange(s.unwrap_or("(none)").to_string());
        let num = |v: &str| v.trim().parse::<i64>().map_err(|_| bad());
        match (protocol, s) {
            (Protocol::All | Protocol::Other(_), _) => Ok(Ports::All),
            (Protocol::Tcp | Protocol::Udp, None) => Err(bad()),
            (Protocol::Tcp | Protocol::Udp, Some("all")) => Ok(Ports::Range { from: 0, to: 65535 }),
            (Protocol::Tcp | Protocol::Udp, Some(v)) => {
                let (f, t) = match v.split_once('-') {
                    Some((f, t)) => (num(f)?, num(t)?),
                    None => (num(v)?, num(v)?),
                };
                if f < 0 || t < 0 {
                    return Err(bad());
                }
                Ports::from_aws(protocol, Some(f), Some(t)).map_err(|_| bad())
            }
            (Protocol::Icmp, None | Some("all")) => Ok(Ports::Icmp { icmp_type: None, code: None }),
            (Protocol::Icmp, Some(v)) => {
                let (t, c) = match v.split_once(':') {
                    Some((t, c)) => (num(t)?, num(c)?),
                    None => (num(v)?, -1),
                };
                Ports::from_aws(protocol, Some(t), Some(c)).map_err(|_| bad())
            }
        }
    }
}

/// The other side of a security-group rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Peer {
    Cidr(Ipv4Net),
    /// A prefix list (`pl-…`): its CIDRs.
    PrefixList(String),
    /// A security group of the same VPC (`sg-…`): the private IPs of its instances.
    Group(String),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Cidr(c) => write!(f, "{c}"),
            Peer::PrefixList(id) | Peer::Group(id) => f.write_str(id),
        }
    }
}

/// One security-group rule (one peer: AWS's permissions with several ranges are stored as
/// several rules).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SgRule {
    pub protocol: Protocol,
    pub ports: Ports,
    pub peer: Peer,
    /// The rule's `sgr-…` id, given when the rule joins a group (empty before; a world saved
    /// before rules had ids gets them from [`World::ensure_defaults`], the same every load until
    /// a change saves them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The description of the range, prefix list or group pair (`IpRanges.N.Description`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl SgRule {
    /// A rule without id or description.
    pub fn new(protocol: Protocol, ports: Ports, peer: Peer) -> SgRule {
        SgRule { protocol, ports, peer, id: String::new(), description: None }
    }

    /// The rule that allows everything to (or from) anywhere.
    pub fn allow_all() -> SgRule {
        SgRule::new(Protocol::All, Ports::All, Peer::Cidr(Ipv4Net::default()))
    }

    /// Whether two rules admit the same traffic. AWS compares rules so, whatever their ids and
    /// descriptions: a second such rule is a duplicate, and a revoke names a rule by these.
    pub fn same_as(&self, other: &SgRule) -> bool {
        self.protocol == other.protocol && self.ports == other.ports && self.peer == other.peer
    }
}

/// EC2's rule description: "Constraints: Up to 255 characters in length. Allowed characters
/// are a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*" (the AuthorizeSecurityGroupIngress
/// reference, `IpRange.Description`).
pub fn check_rule_description(d: &str) -> Result<(), ModelError> {
    let ok = d.len() <= 255
        && d.chars().all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c));
    if ok { Ok(()) } else { Err(ModelError::InvalidRuleDescription(d.into())) }
}

impl std::fmt::Display for SgRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.protocol.sg_name())?;
        if let Some((a, b)) = self.ports.to_aws() {
            write!(f, "{a}-{b} ")?;
        }
        write!(f, "{}", self.peer)
    }
}

/// Ingress or egress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc: String,
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
}

impl SecurityGroup {
    pub fn rules(&self, dir: Direction) -> &[SgRule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
    pub(super) fn rules_mut(&mut self, dir: Direction) -> &mut Vec<SgRule> {
        match dir {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuleAction {
    Allow,
    Deny,
}

impl RuleAction {
    pub fn parse(s: &str) -> Result<RuleAction, ModelError> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Ok(RuleAction::Allow),
            "deny" => Ok(RuleAction::Deny),
            _ => Err(ModelError::InvalidRuleAction(s.to_string())),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
        }
    }
}

/// AWS's quotas (the Amazon VPC User Guide, "Amazon VPC quotas"): "You can have 60 inbound and
/// 60 outbound rules per security group" (each CIDR, prefix list or group of a permission is
/// one rule here: AWS counts a customer-managed prefix list as its maximum size, but the lab
/// has only AWS-managed ones, counted as one);
pub const MAX_SG_RULES: usize = 60;

/// The description EC2 gives every VPC's default security group (it cannot be changed).
pub const DEFAULT_GROUP_DESCRIPTION: &str = "default VPC security group";
/// "Security groups per network interface": 5;
pub const MAX_GROUPS_PER_INTERFACE: usize = 5;
/// "Rules per network ACL": 20, "the one-way quota for a single network ACL" (inbound and
/// outbound counted apart, the default `*` entry not counted).
pub const MAX_ACL_ENTRIES: usize = 20;

/// The last rule number a user entry may have; 32767 is the implicit deny (`*`).
pub const MAX_ACL_RULE: u16 = 32766;
/// The number AWS shows for the implicit deny entry.
pub const ACL_DEFAULT_RULE: u16 = 32767;

/// One network ACL entry. Egress entries match the packet's destination address, ingress
/// entries its source; ports are always the destination port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub rule_number: u16,
    pub egress: bool,
    pub protocol: Protocol,
    pub ports: Ports,
    pub cidr: Ipv4Net,
    pub action: RuleAction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclAssociation {
    /// `aclassoc-…`.
    pub id: String,
    pub subnet: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAcl {
    pub id: String,
    pub vpc: String,
    pub is_default: bool,
    /// In no particular order; [`NetworkAcl::sorted`] gives evaluation order.
    pub entries: Vec<AclEntry>,
    /// Explicit associations. Subnets with none use the default ACL implicitly.
    pub associations: Vec<AclAssociation>,
}

impl NetworkAcl {
    /// The entries of one direction in evaluation order (ascending rule number).
    pub fn sorted(&self, egress: bool) -> Vec<&AclEntry> {
        let mut v: Vec<&AclEntry> = self.entries.iter().filter(|e| e.egress == egress).collect();
        v.sort_by_key(|e| e.rule_number);
        v
    }
}

/// A network ACL entry's CIDR as a user wrote it. From the guide, "Endpoint Limitations": "You
/// cannot use prefix list IDs to create an outbound rule in a network ACL".
pub fn parse_acl_cidr(s: &str) -> Result<Ipv4Net, ModelError> {
    if s.trim().starts_with("pl-") {
        return Err(ModelError::PrefixListInNetworkAcl(s.to_string()));
    }
    s.trim().parse::<Ipv4Net>().map(|n| n.trunc()).map_err(|_| ModelError::InvalidCidr(s.into()))
}

fn vpc_hex(vpc: &str) -> &str {
    vpc.strip_prefix("vpc-").unwrap_or(vpc)
}

/// The id of a VPC's default security group: `sg-` and the VPC id's hex part.
pub fn default_group_id(vpc: &str) -> String {
    format!("sg-{}", vpc_hex(vpc))
}

/// The id of a VPC's default network ACL: `acl-` and the VPC id's hex part.
pub fn default_acl_id(vpc: &str) -> String {
    format!("acl-{}", vpc_hex(vpc))
}

/// The id of a subnet's implicit association with its VPC's default ACL.
pub fn implicit_acl_association_id(subnet: &str) -> String {
    format!("aclassoc-{}", subnet.strip_prefix("subnet-").unwrap_or(subnet))
}

fn default_group(vpc: &str) -> SecurityGroup {
    let id = default_group_id(vpc);
    SecurityGroup {
        id: id.clone(),
        name: "default".into(),
        description: DEFAULT_GROUP_DESCRIPTION.into(),
        vpc: vpc.into(),
        // AWS: the default group allows all inbound traffic from itself and all outbound.
        ingress: vec![SgRule::new(Protocol::All, Ports::All, Peer::Group(id))],
        egress: vec![SgRule::allow_all()],
    }
}

fn default_acl(vpc: &str) -> NetworkAcl {
    let all = |egress| AclEntry {
        rule_number: 100,
        egress,
        protocol: Protocol::All,
        ports: Ports::All,
        cidr: Ipv4Net::default(),
        action: RuleAction::Allow,
    };
    NetworkAcl {
        id: default_acl_id(vpc),
        vpc: vpc.into(),
        is_default: true,
        entries: vec![all(true), all(false)],
        associations: vec![],
    }
}

impl World {
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.id == id)
    }

    /// The rule whose id is `id` (`sgr-…`), with its group and direction.
    pub fn security_group_rule(&self, id: &str) -> Option<(&SecurityGroup, Direction, &SgRule)> {
        self.security_groups.iter().find_map(|g| {
            [Direction::Ingress, Direction::Egress]
                .into_iter()
                .find_map(|d| g.rules(d).iter().find(|r| r.id == id).map(|r| (g, d, r)))
        })
    }

    /// Drops the tags of security group rules that no longer exist: a rule's tags go with it
    /// (revoked, its group deleted or its direction replaced), as every resource's do.
    fn forget_removed_rule_tags(&mut self) {
        let gone: Vec<String> = self
            .tags
            .keys()
            .filter(|id| id.starts_with("sgr-") && self.security_group_rule(id).is_none())
            .cloned()
            .collect();
        for id in gone {
            self.tags.remove(&id);
        }
    }

    pub fn network_acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.network_acls.iter().find(|a| a.id == id)
    }

    /// Whether some VPC lacks its default group or ACL (a world saved before they existed).
    pub fn missing_defaults(&self) -> bool {
        self.vpcs.iter().any(|v| {
            self.security_group(&default_group_id(&v.id)).is_none()
                || self.network_acl(&default_acl_id(&v.id)).is_none()
        }) || self
            .security_groups
            .iter()
            .any(|g| g.ingress.iter().chain(&g.egress).any(|r| r.id.is_empty()))
    }

    /// This world as if it had every VPC's default group and ACL: itself, or (a world saved
    /// before they existed) an upgraded copy.
    pub fn with_defaults(&self) -> std::borrow::Cow<'_, World> {
        if self.missing_defaults() {
            let mut w = self.clone();
            w.ensure_defaults();
            std::borrow::Cow::Owned(w)
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// Adds the default group and ACL of every VPC that lacks them.
    pub fn ensure_defaults(&mut self) {
        let vpcs: Vec<String> = self.vpcs.iter().map(|v| v.id.clone()).collect();
        for v in vpcs {
            if self.security_group(&default_group_id(&v)).is_none() {
                self.security_groups.push(default_group(&v));
            }
            if self.network_acl(&default_acl_id(&v)).is_none() {
                self.network_acls.push(default_acl(&v));
            }
        }
        self.assign_rule_ids();
    }

    /// Gives every security-group rule without an id one (`sgr-…`, from the world's own rule
    /// counter: deterministic, so a world saved without ids gets the same ones at every load).
    fn assign_rule_ids(&mut self) {
        let missing =
            |g: &SecurityGroup| g.ingress.iter().chain(&g.egress).any(|r| r.id.is_empty());
        if !self.security_groups.iter().any(missing) {
            return;
        }
        let mut next = self.next_rule_id;
        for g in self.security_groups.iter_mut().filter(|g| missing(g)) {
            for r in g.ingress.iter_mut().chain(g.egress.iter_mut()).filter(|r| r.id.is_empty()) {
                r.id = super::ops::rule_id(next);
                next += 1;
            }
        }
        self.next_rule_id = next;
    }

    /// The ids the defaults of a new VPC will take (checked by `add_vpc` before it adds them).
    pub(super) fn check_default_ids_free(&self, vpc: &str) -> Result<(), ModelError> {
        self.check_unique(&default_group_id(vpc))?;
        self.check_unique(&default_acl_id(vpc))
    }

    pub(super) fn push_defaults(&mut self, vpc: &str) {
        self.security_groups.push(default_group(vpc));
        self.network_acls.push(default_acl(vpc));
        self.assign_rule_ids();
    }

    /// Removes the default group and ACL of a VPC being deleted; refuses while other groups or
    /// ACLs remain in it.
    pub(super) fn check_vpc_filters_deletable(&self, vpc: &str) -> Result<(), ModelError> {
        let dep = |reason: String| ModelError::DependencyViolation {
            kind: "vpc",
            id: vpc.to_string(),
            reason,
        };
        if let Some(g) = self.security_groups.iter().find(|g| g.vpc == vpc && g.name != "default") {
            return Err(dep(format!("security group {} is in it", g.id)));
        }
        if let Some(a) = self.network_acls.iter().find(|a| a.vpc == vpc && !a.is_default) {
            return Err(dep(format!("network ACL {} is in it", a.id)));
        }
        Ok(())
    }

    pub(super) fn remove_vpc_filters(&mut self, vpc: &str) {
        let ids: Vec<String> = self
            .security_groups
            .iter()
            .filter(|g| g.vpc == vpc)
            .map(|g| g.id.clone())
            .chain(self.network_acls.iter().filter(|a| a.vpc == vpc).map(|a| a.id.clone()))
            .collect();
        self.security_groups.retain(|g| g.vpc != vpc);
        self.network_acls.retain(|a| a.vpc != vpc);
        for id in ids {
            self.tags.remove(&id);
        }
        self.forget_removed_rule_tags();
    }

    /// The groups an instance is in: its own list, or its VPC's default group.
    pub fn instance_groups(&self, inst: &super::Instance) -> Vec<String> {
        if !inst.security_groups.is_empty() {
            return inst.security_groups.clone();
        }
        self.subnet(&inst.subnet).map(|s| vec![default_group_id(&s.vpc)]).unwrap_or_default()
    }

    /// Checks a list of groups for an instance of `vpc`: each exists and is in that VPC.
    pub(super) fn check_instance_groups(
        &self,
        instance: &str,
        vpc: &str,
        groups: &[String],
    ) -> Result<(), ModelError> {
        for (i, g) in groups.iter().enumerate() {
            check_id("security group", "sg-", g)?;
            let sg = self
                .security_group(g)
                .ok_or_else(|| ModelError::SecurityGroupNotFound(g.clone()))?;
            if sg.vpc != vpc {
                return Err(ModelError::SecurityGroupOtherVpc {
                    group: g.clone(),
                    vpc: vpc.into(),
                });
            }
            if groups[..i].contains(g) {
                return Err(ModelError::DuplicateId(g.clone()));
            }
        }
        if groups.len() > MAX_GROUPS_PER_INTERFACE {
            return Err(ModelError::SecurityGroupsPerInterfaceLimitExceeded {
                instance: instance.into(),
                group: groups[MAX_GROUPS_PER_INTERFACE].clone(),
                count: groups.len(),
                max: MAX_GROUPS_PER_INTERFACE,
            });
        }
        Ok(())
    }

    /// ModifyInstanceAttribute `GroupId.N`: replaces the instance's groups.
    pub fn set_instance_groups(&mut self, id: &str, groups: &[String]) -> Result<(), ModelError> {
        check_id("instance", "i-", id)?;
        let inst = self.instance(id).ok_or_else(|| ModelError::InstanceNotFound(id.into()))?;
        if groups.is_empty() {
            return Err(ModelError::NoSecurityGroups(id.into()));
        }
        let vpc = self.subnet(&inst.subnet).map(|s| s.vpc.clone()).unwrap_or_default();
        self.check_instance_groups(id, &vpc, groups)?;
        if let Some(i) = self.instances.iter_mut().find(|i| i.id == id) {
            i.security_groups = groups.to_vec();
        }
        Ok(())
    }

    /// CreateSecurityGroup: a group with one egress rule allowing everything and no ingress.
    pub fn create_security_group(
        &mut self,
        id: &str,
        name: &str,
        description: &str,
        vpc: &str,
    ) -> Result<(), ModelError> {
        check_id("security group", "sg-", id)?;
        self.check_unique(id)?;
        self.vpc(vpc).ok_or_else(|| ModelError::VpcNotFound(vpc.into()))?;
        let valid_text = |s: &str| {
            !s.is_empty() && s.len() <= 255 && s.chars().all(|c| (' '..='~').contains(&c))
        };
        if !valid_text(name) || name.eq_ignore_ascii_case("default") || name.starts_with("sg-") {
            return Err(ModelError::InvalidGroupName(name.into()));
        }
        if !valid_text(description) {
            return Err(ModelError::InvalidGroupDescription(description.into()));
        }
        if self.security_groups.iter().any(|g| g.vpc == vpc && g.name == name) {
            return Err(ModelError::SecurityGroupDuplicate { name: name.into(), vpc: vpc.into() });
        }
        self.security_groups.push(SecurityGroup {
            id: id.into(),
            name: name.into(),
            description: description.into(),
            vpc: vpc.into(),
            ingress: vec![],
            egress: vec![SgRule::allow_all()],
        });
        self.assign_rule_ids();
        Ok(())
    }

    /// Checks that a rule may be added to `group`: its prefix list (of the lab's region,
    /// unless `loaded`) or group exists (the group in the same VPC).
    fn check_rule(
        &self,
        group: &SecurityGroup,
        rule: &SgRule,
        loaded: bool,
    ) -> Result<(), ModelError> {
        match &rule.peer {
            Peer::Cidr(_) => Ok(()),
            Peer::PrefixList(pl) => {
                check_id("prefix list", "pl-", pl)?;
                let list = self
                    .prefix_list(pl)
                    .ok_or_else(|| ModelError::PrefixListNotFound(pl.clone()))?;
                // EC2 knows its own region's lists only. A world saved before this was checked
                // keeps such a rule (`loaded`): it worked, matching that region's ranges.
                if list.region != self.region && !loaded {
                    return Err(ModelError::PrefixListOtherRegion {
                        id: pl.clone(),
                        region: list.region.clone(),
                        lab_region: self.region.clone(),
                    });
                }
                Ok(())
            }
            Peer::Group(g) => {
                check_id("security group", "sg-", g)?;
                let other = self
                    .security_group(g)
                    .ok_or_else(|| ModelError::SecurityGroupNotFound(g.clone()))?;
                if other.vpc != group.vpc {
                    return Err(ModelError::SecurityGroupOtherVpc {
                        group: g.clone(),
                        vpc: group.vpc.clone(),
                    });
                }
                Ok(())
            }
        }
    }

    /// AuthorizeSecurityGroupIngress / Egress: adds rules, each with a new id; a rule the
    /// group already has (or one given twice) is `InvalidPermission.Duplicate`, whatever its
    /// description. Returns the rules as added.
    pub fn authorize_security_group(
        &mut self,
        id: &str,
        dir: Direction,
        rules: &[SgRule],
    ) -> Result<Vec<SgRule>, ModelError> {
        self.authorize_rules(id, dir, rules, false)
    }

    /// [`World::authorize_security_group`] for a rule of a saved world (`loaded`: see
    /// [`World::check_rule`]).
    pub(super) fn authorize_rules(
        &mut self,
        id: &str,
        dir: Direction,
        rules: &[SgRule],
        loaded: bool,
    ) -> Result<Vec<SgRule>, ModelError> {
        check_id("security group", "sg-", id)?;
        let sg =
            self.security_group(id).ok_or_else(|| ModelError::SecurityGroupNotFound(id.into()))?;
        let mut rules: Vec<SgRule> = rules.iter().map(normalize_rule).collect();
        for (i, r) in rules.iter().enumerate() {
            self.check_rule(sg, r, loaded)?;
            if let Some(d) = &r.description {
                check_rule_description(d)?;
            }
            let same = |x: &SgRule| x.same_as(r);
            if sg.rules(dir).iter().any(same) || rules[..i].iter().any(same) {
                return Err(ModelError::DuplicatePermission {
                    group: id.into(),
                    direction: dir.name(),
                    rule: r.to_string(),
                });
            }
        }
        let count = sg.rules(dir).len() + rules.len();
        if count > MAX_SG_RULES {
            return Err(ModelError::RulesPerSecurityGroupLimitExceeded {
                group: id.into(),
                direction: dir.name(),
                count,
                max: MAX_SG_RULES,
            });
        }
        for r in &mut rules {
            r.id = super::ops::rule_id(self.next_rule_id);
            self.next_rule_id += 1;
        }
        if let Some(sg) = self.security_groups.iter_mut().find(|g| g.id == id) {
            sg.rules_mut(dir).extend(rules.iter().cloned());
        }
        Ok(rules)
    }

    /// RevokeSecurityGroupIngress / Egress: removes rules; each must exist.
    pub fn revoke_security_group(
        &mut self,
        id: &str,
        dir: Direction,
        rules: &[SgRule],
    ) -> Result<(), ModelError> {
        check_id("security group", "sg-", id)?;
        let sg =
            self.security_group(id).ok_or_else(|| ModelError::SecurityGroupNotFound(id.into()))?;
        let rules: Vec<SgRule> = rules.iter().map(normalize_rule).collect();
        for r in &rules {
            if !sg.rules(dir).iter().any(|x| x.same_as(r)) {
                return Err(ModelError::PermissionNotFound {
                    group: id.into(),
                    direction: dir.name(),
                    rule: r.to_string(),
                });
            }
        }
        if let Some(sg) = self.security_groups.iter_mut().find(|g| g.id == id) {
            sg.rules_mut(dir).retain(|r| !rules.iter().any(|x| x.same_as(r)));
        }
        self.forget_removed_rule_tags();
        Ok(())
    }

    /// Replaces every rule of one direction (the lab loader's `egress = [...]`).
    pub fn set_security_group_rules(
        &mut self,
        id: &str,
        dir: Direction,
        rules: &[SgRule],
    ) -> Result<(), ModelError> {
        let mut scratch = self.clone();
        if let Some(sg) = scratch.security_groups.iter_mut().find(|g| g.id == id) {
            sg.rules_mut(dir).clear();
        }
        scratch.authorize_security_group(id, dir, rules)?;
        scratch.forget_removed_rule_tags();
        *self = scratch;
        Ok(())
    }

    /// DeleteSecurityGroup: never the default group; not while instances use it or other
    /// groups' rules name it.
    pub fn delete_security_group(&mut self, id: &str) -> Result<(), ModelError> {
        check_id("security group", "sg-", id)?;
        let sg =
            self.security_group(id).ok_or_else(|| ModelError::SecurityGroupNotFound(id.into()))?;
        if sg.name == "default" && sg.id == default_group_id(&sg.vpc) {
            return Err(ModelError::CannotDeleteDefaultGroup(id.into()));
        }
        let dep = |reason: String| ModelError::DependencyViolation {
            kind: "security group",
            id: id.into(),
            reason,
        };
        if let Some(i) = self.instances.iter().find(|i| i.security_groups.iter().any(|g| g == id)) {
            return Err(dep(format!("instance {} is in it", i.id)));
        }
        if let Some(g) = self.security_groups.iter().find(|g| {
            g.id != id
                && g.ingress.iter().chain(&g.egress).any(|r| r.peer == Peer::Group(id.into()))
        }) {
            return Err(dep(format!("a rule of security group {} references it", g.id)));
        }
        self.security_groups.retain(|g| g.id != id);
        self.tags.remove(id);
        self.forget_removed_rule_tags();
        Ok(())
    }

    /// CreateNetworkAcl: an ACL without entries (so it denies everything), associated with
    /// no subnet.
    pub fn create_network_acl(&mut self, id: &str, vpc: &str) -> Result<(), ModelError> {
        check_id("network acl", "acl-", id)?;
        self.check_unique(id)?;
        self.vpc(vpc).ok_or_else(|| ModelError::VpcNotFound(vpc.into()))?;
        self.network_acls.push(NetworkAcl {
            id: id.into(),
            vpc: vpc.into(),
            is_default: false,
            entries: vec![],
            associations: vec![],
        });
        Ok(())
    }

    fn acl_checked(&self, id: &str) -> Result<&NetworkAcl, ModelError> {
        check_id("network acl", "acl-", id)?;
        self.network_acl(id).ok_or_else(|| ModelError::NetworkAclNotFound(id.into()))
    }

    /// CreateNetworkAclEntry: rule numbers 1..=32766, unique per direction.
    pub fn add_network_acl_entry(&mut self, acl: &str, entry: AclEntry) -> Result<(), ModelError> {
        let a = self.acl_checked(acl)?;
        check_rule_number(entry.rule_number)?;
        if a.entries.iter().any(|e| e.egress == entry.egress && e.rule_number == entry.rule_number)
        {
            return Err(ModelError::NetworkAclEntryExists {
                acl: acl.into(),
                rule: entry.rule_number,
                direction: dir_of(entry.egress),
            });
        }
        if a.entries.iter().filter(|e| e.egress == entry.egress).count() >= MAX_ACL_ENTRIES {
            return Err(ModelError::NetworkAclEntryLimitExceeded {
                acl: acl.into(),
                direction: dir_of(entry.egress),
                max: MAX_ACL_ENTRIES,
            });
        }
        let entry = AclEntry { cidr: entry.cidr.trunc(), ..entry };
        if let Some(a) = self.network_acls.iter_mut().find(|a| a.id == acl) {
            a.entries.push(entry);
        }
        Ok(())
    }

    /// ReplaceNetworkAclEntry: the entry with that number and direction must exist.
    pub fn replace_network_acl_entry(
        &mut self,
        acl: &str,
        entry: AclEntry,
    ) -> Result<(), ModelError> {
        let a = self.acl_checked(acl)?;
        check_rule_number(entry.rule_number)?;
        let pos = a
            .entries
            .iter()
            .position(|e| e.egress == entry.egress && e.rule_number == entry.rule_number)
            .ok_or(ModelError::NetworkAclEntryNotFound {
                acl: acl.into(),
                rule: entry.rule_number,
                direction: dir_of(entry.egress),
            })?;
        let entry = AclEntry { cidr: entry.cidr.trunc(), ..entry };
        if let Some(a) = self.network_acls.iter_mut().find(|a| a.id == acl) {
            a.entries[pos] = entry;
        }
        Ok(())
    }

    /// DeleteNetworkAclEntry.
    pub fn delete_network_acl_entry(
        &mut self,
        acl: &str,
        egress: bool,
        rule: u16,
    ) -> Result<(), ModelError> {
        let a = self.acl_checked(acl)?;
        if !a.entries.iter().any(|e| e.egress == egress && e.rule_number == rule) {
            return Err(ModelError::NetworkAclEntryNotFound {
                acl: acl.into(),
                rule,
                direction: dir_of(egress),
            });
        }
        if let Some(a) = self.network_acls.iter_mut().find(|a| a.id == acl) {
            a.entries.retain(|e| !(e.egress == egress && e.rule_number == rule));
        }
        Ok(())
    }

    /// DeleteNetworkAcl: never the default ACL, not while subnets are associated with it.
    pub fn delete_network_acl(&mut self, id: &str) -> Result<(), ModelError> {
        let a = self.acl_checked(id)?;
        if a.is_default {
            return Err(ModelError::CannotDeleteDefaultAcl(id.into()));
        }
        if let Some(s) = a.associations.first() {
            return Err(ModelError::DependencyViolation {
                kind: "network acl",
                id: id.into(),
                reason: format!("subnet {} is associated with it", s.subnet),
            });
        }
        self.network_acls.retain(|a| a.id != id);
        self.tags.remove(id);
        Ok(())
    }

    /// The ACL a subnet uses and the association id: its explicit association, else its VPC's
    /// default ACL through the implicit association.
    pub fn subnet_acl(&self, subnet: &str) -> Option<(&NetworkAcl, String)> {
        let s = self.subnet(subnet)?;
        for a in &self.network_acls {
            if let Some(assoc) = a.associations.iter().find(|x| x.subnet == s.id) {
                return Some((a, assoc.id.clone()));
            }
        }
        let a = self.network_acl(&default_acl_id(&s.vpc))?;
        Some((a, implicit_acl_association_id(&s.id)))
    }

    /// Every (association id, subnet id) of an ACL, implicit ones of the default ACL included.
    pub fn acl_associations(&self, acl: &NetworkAcl) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            acl.associations.iter().map(|a| (a.id.clone(), a.subnet.clone())).collect();
        if acl.is_default {
            for s in self.subnets.iter().filter(|s| s.vpc == acl.vpc) {
                if !self
                    .network_acls
                    .iter()
                    .any(|a| a.associations.iter().any(|x| x.subnet == s.id))
                {
                    out.push((implicit_acl_association_id(&s.id), s.id.clone()));
                }
            }
        }
        out
    }

    /// Associates a subnet (id or name) with an ACL of its VPC, for a subnet that has no
    /// explicit association yet (the lab loader). Returns the association id.
    pub fn associate_network_acl(&mut self, acl: &str, subnet: &str) -> Result<String, ModelError> {
        let a = self.acl_checked(acl)?;
        let s = self.subnet(subnet).ok_or_else(|| ModelError::SubnetNotFound(subnet.into()))?;
        if s.vpc != a.vpc {
            return Err(ModelError::NetworkAclOtherVpc { acl: acl.into(), vpc: s.vpc.clone() });
        }
        let sid = s.id.clone();
        if let Some(other) =
            self.network_acls.iter().find(|x| x.associations.iter().any(|y| y.subnet == sid))
        {
            return Err(ModelError::SubnetAclConflict { subnet: sid, acl: other.id.clone() });
        }
        let id = self.generate_id("aclassoc");
        if let Some(a) = self.network_acls.iter_mut().find(|a| a.id == acl) {
            a.associations.push(AclAssociation { id: id.clone(), subnet: sid });
        }
        Ok(id)
    }

    /// ReplaceNetworkAclAssociation: moves the subnet of `association` to `acl` (same VPC).
    /// Returns the new association id.
    pub fn replace_network_acl_association(
        &mut self,
        association: &str,
        acl: &str,
    ) -> Result<String, ModelError> {
        check_id("network acl association", "aclassoc-", association)?;
        let a = self.acl_checked(acl)?;
        let subnet = self
            .network_acls
            .iter()
            .flat_map(|x| x.associations.iter())
            .find(|x| x.id == association)
            .map(|x| x.subnet.clone())
            .or_else(|| {
                self.subnets
                    .iter()
                    .find(|s| implicit_acl_association_id(&s.id) == association)
                    .filter(|s| {
                        !self
                            .network_acls
                            .iter()
                            .any(|x| x.associations.iter().any(|y| y.subnet == s.id))
                    })
                    .map(|s| s.id.clone())
            })
            .ok_or_else(|| ModelError::AssociationNotFound(association.into()))?;
        let vpc = self.subnet(&subnet).map(|s| s.vpc.clone()).unwrap_or_default();
        if a.vpc != vpc {
            return Err(ModelError::NetworkAclOtherVpc { acl: acl.into(), vpc });
        }
        let new = self.generate_id("aclassoc");
        for x in &mut self.network_acls {
            x.associations.retain(|y| y.subnet != subnet);
        }
        if let Some(a) = self.network_acls.iter_mut().find(|a| a.id == acl) {
            a.associations.push(AclAssociation { id: new.clone(), subnet });
        }
        Ok(new)
    }

    /// Drops a deleted subnet's explicit ACL association.
    pub(super) fn forget_subnet_acl(&mut self, subnet: &str) {
        for a in &mut self.network_acls {
            a.associations.retain(|x| x.subnet != subnet);
        }
    }

    /// Whether `id` is a security group, ACL or ACL association id (for `check_unique`).
    pub(super) fn filter_id_taken(&self, id: &str) -> bool {
        self.security_groups.iter().any(|g| g.id == id)
            || self
                .network_acls
                .iter()
                .any(|a| a.id == id || a.associations.iter().any(|x| x.id == id))
            || self
                .vpcs
                .iter()
                .any(|v| default_group_id(&v.id) == id || default_acl_id(&v.id) == id)
    }
}

fn normalize_rule(r: &SgRule) -> SgRule {
    let peer = match &r.peer {
        Peer::Cidr(c) => Peer::Cidr(c.trunc()),
        p => p.clone(),
    };
    let ports = match r.protocol {
        Protocol::All | Protocol::Other(_) => Ports::All,
        _ => r.ports,
    };
    SgRule { ports, peer, ..r.clone() }
}

fn check_rule_number(n: u16) -> Result<(), ModelError> {
    if (1..=MAX_ACL_RULE).contains(&n) {
        Ok(())
    } else {
        Err(ModelError::InvalidRuleNumber(n.into()))
    }
}

fn dir_of(egress: bool) -> &'static str {
    if egress { "egress" } else { "ingress" }
}
