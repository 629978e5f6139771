//! Security groups and network ACLs.

use super::filter::{Values, matches, one};
use super::xml::Xml;
use super::{
    Ctx, Ec2Error, Ec2Outcome, OWNER_ID, apply_tag_specs, changed, check_ids, check_kind, read,
};
use crate::model::{
    ACL_DEFAULT_RULE, AclEntry, Direction, NetworkAcl, Peer, Ports, Protocol, ResourceKind,
    RuleAction, SecurityGroup, SgRule, World, parse_acl_cidr,
};

fn int_param(ctx: &Ctx, name: &str) -> Result<Option<i64>, Ec2Error> {
    ctx.p.int(name)
}

/// The rules of `IpPermissions.N` (flattened: one rule per range, prefix list or group).
/// Group pairs are `.Groups.M.GroupId` (the member `UserIdGroupPairs` has the location name
/// `groups`; EC2 does not know `.UserIdGroupPairs.M`).
fn permissions(ctx: &Ctx) -> Result<Vec<SgRule>, Ec2Error> {
    let mut out = Vec::new();
    for n in 1.. {
        let pre = format!("IpPermissions.{n}");
        let proto = ctx.p.get(&format!("{pre}.IpProtocol"));
        let Some(proto) = proto else {
            // Permissions are numbered from 1 without gaps; stop at the first missing one
            // unless a later one exists (then the protocol is missing).
            if ctx.p.indexed_prefix_exists(&pre) {
                return Err(Ec2Error::new(
                    "MissingParameter",
                    format!("The request must contain the parameter {pre}.IpProtocol"),
                ));
            }
            break;
        };
        let protocol = Protocol::parse(proto)?;
        let ports = Ports::from_aws(
            protocol,
            int_param(ctx, &format!("{pre}.FromPort"))?,
            int_param(ctx, &format!("{pre}.ToPort"))?,
        )?;
        // Each peer with its `Description`.
        let mut peers = Vec::new();
        let list = |name: &str, field: &str| {
            ctx.p.indexed_field_with(&format!("{pre}.{name}"), field, "Description")
        };
        for (c, d) in list("IpRanges", "CidrIp") {
            let cidr = c.parse().map_err(|_| crate::model::ModelError::InvalidCidr(c.into()))?;
            peers.push((Peer::Cidr(cidr), d));
        }
        for (pl, d) in list("PrefixListIds", "PrefixListId") {
            check_kind(ctx.world, pl, ResourceKind::PrefixList)?;
            peers.push((Peer::PrefixList(pl.into()), d));
        }
        for (g, d) in list("Groups", "GroupId") {
            check_kind(ctx.world, g, ResourceKind::SecurityGroup)?;
            peers.push((Peer::Group(g.into()), d));
        }
        if peers.is_empty() {
            return Err(Ec2Error::new(
                "MissingParameter",
                format!("{pre} must name at least one of IpRanges, PrefixListIds or Groups"),
            ));
        }
        out.extend(peers.into_iter().map(|(peer, d)| SgRule {
            description: d.map(str::to_string),
            ..SgRule::new(protocol, ports, peer)
        }));
    }
    // The old single-rule form: IpProtocol, FromPort, ToPort, CidrIp.
    if out.is_empty()
        && let Some(proto) = ctx.p.get("IpProtocol")
    {
        let protocol = Protocol::parse(proto)?;
        let ports = Ports::from_aws(protocol, ctx.p.int("FromPort")?, ctx.p.int("ToPort")?)?;
        let c = ctx.p.required("CidrIp")?;
        let cidr = c.parse().map_err(|_| crate::model::ModelError::InvalidCidr(c.into()))?;
        out.push(SgRule::new(protocol, ports, Peer::Cidr(cidr)));
    }
    if out.is_empty() {
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain the parameter IpPermissions",
        ));
    }
    Ok(out)
}

/// The account's default VPC, in which EC2 resolves security group names. A lab has none:
/// a lab file and CreateVpc make nondefault VPCs, as CreateVpc does on AWS, and DescribeVpcs
/// answers `isDefault` false for each.
pub(super) fn default_vpc(_w: &World) -> Option<&crate::model::Vpc> {
    None
}

/// The group named `name` in the default VPC. botocore, `GroupName`: "[Default VPC] The name of
/// the security group. ... For security groups in a nondefault VPC, you must specify the
/// security group ID." Without a default VPC EC2 answers `VPCIdNotSpecified`; a name not in it
/// is `InvalidGroup.NotFound` (both as the SDKs report them).
pub(super) fn group_by_name<'a>(w: &'a World, name: &str) -> Result<&'a SecurityGroup, Ec2Error> {
    let Some(vpc) = default_vpc(w) else {
        return Err(Ec2Error::new(
            "VPCIdNotSpecified",
            "No default VPC for this user. GroupName is only supported for EC2-Classic and \
             default VPC.",
        ));
    };
    w.security_groups.iter().find(|g| g.vpc == vpc.id && g.name == name).ok_or_else(|| {
        Ec2Error::new(
            "InvalidGroup.NotFound",
            format!("The security group '{name}' does not exist in default VPC '{}'", vpc.id),
        )
    })
}

/// The group of `GroupId`, or of `GroupName` in the default VPC ([`group_by_name`]).
fn group_param<'a>(ctx: &Ctx<'a>) -> Result<&'a SecurityGroup, Ec2Error> {
    if let Some(id) = ctx.p.get("GroupId") {
        check_kind(ctx.world, id, ResourceKind::SecurityGroup)?;
        return ctx
            .world
            .security_group(id)
            .ok_or_else(|| crate::model::ModelError::SecurityGroupNotFound(id.into()).into());
    }
    let name = ctx.p.required("GroupName").map_err(|_| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter GroupId")
    })?;
    group_by_name(ctx.world, name)
}

/// Answers AuthorizeSecurityGroup{Ingress,Egress} with the rules it added
/// (`securityGroupRuleSet`, as EC2 has since 2021), whose ids DescribeSecurityGroupRules and
/// RevokeSecurityGroup{Ingress,Egress} `SecurityGroupRuleId.N` take.
fn authorize(ctx: &Ctx, dir: Direction) -> Result<Ec2Outcome, Ec2Error> {
    let g = group_param(ctx)?;
    let rules = permissions(ctx)?;
    let mut w = ctx.world.clone();
    let added = w.authorize_security_group(&g.id, dir, &rules)?;
    // `TagSpecification.N` of type `security-group-rule`: "The tags applied to the security
    // group rule" (every rule the call adds).
    for r in &added {
        apply_tag_specs(ctx, &mut w, &r.id, "security-group-rule", &[])?;
    }
    let mut x = ctx.xml();
    x.ret_true();
    x.list("securityGroupRuleSet", &added, |x, r| rule_xml(x, &w, g, dir, r));
    changed(w, x)
}

/// Whether `id` has the form of a security group rule id.
fn check_rule_id(id: &str) -> Result<(), Ec2Error> {
    let hex = id.strip_prefix("sgr-").unwrap_or_default();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Ec2Error::new(
            "InvalidSecurityGroupRuleId.Malformed",
            format!("The security group rule ID '{id}' is malformed"),
        ));
    }
    Ok(())
}

fn rule_not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidSecurityGroupRuleId.NotFound",
        format!("The security group rule ID '{id}' does not exist"),
    )
}

fn revoke(ctx: &Ctx, dir: Direction) -> Result<Ec2Outcome, Ec2Error> {
    let g = group_param(ctx)?;
    let ids = ctx.p.indexed("SecurityGroupRuleId");
    let rules = if ids.is_empty() {
        permissions(ctx)?
    } else {
        let mut rules = Vec::new();
        for id in ids {
            check_rule_id(id)?;
            let r = g.rules(dir).iter().find(|r| r.id == id).ok_or_else(|| rule_not_found(id))?;
            rules.push(r.clone());
        }
        rules
    };
    let mut w = ctx.world.clone();
    w.revoke_security_group(&g.id, dir, &rules)?;
    // The rules the call removed: those of the group before that it no longer has.
    let after = w.security_group(&g.id).map(|a| a.rules(dir)).unwrap_or_default();
    let removed: Vec<&SgRule> =
        g.rules(dir).iter().filter(|r| !after.iter().any(|a| a.id == r.id)).collect();
    let mut x = ctx.xml();
    x.ret_true();
    // botocore, RevokeSecurityGroup{Ingress,Egress}Result `RevokedSecurityGroupRules`
    // (`revokedSecurityGroupRuleSet`): "Details about the revoked security group rules".
    x.list("revokedSecurityGroupRuleSet", removed, |x, r| revoked_rule_xml(x, g, dir, r));
    changed(w, x)
}

/// One `RevokedSecurityGroupRule`: the rule's id, group, direction, protocol, ports, peer and
/// description.
fn revoked_rule_xml(x: &mut Xml, g: &SecurityGroup, dir: Direction, r: &SgRule) {
    rule_head_xml(x, g, dir, r);
    match &r.peer {
        Peer::Cidr(c) => x.leaf("cidrIpv4", &c.to_string()),
        Peer::PrefixList(pl) => x.leaf("prefixListId", pl),
        Peer::Group(other) => x.leaf("referencedGroupId", other),
    }
    x.leaf_opt("description", r.description.as_deref());
}

pub fn authorize_security_group_ingress(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    authorize(ctx, Direction::Ingress)
}
pub fn authorize_security_group_egress(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    authorize(ctx, Direction::Egress)
}
pub fn revoke_security_group_ingress(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    revoke(ctx, Direction::Ingress)
}
pub fn revoke_security_group_egress(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    revoke(ctx, Direction::Egress)
}

pub fn create_security_group(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let name = ctx.p.required("GroupName")?;
    let description = ctx.p.required("GroupDescription")?;
    let vpc = ctx.p.required("VpcId")?;
    check_kind(ctx.world, vpc, ResourceKind::Vpc)?;
    let mut w = ctx.world.clone();
    let id = w.generate_id("sg");
    w.create_security_group(&id, name, description, vpc)?;
    apply_tag_specs(ctx, &mut w, &id, "security-group", &[])?;
    let mut x = ctx.xml();
    x.ret_true();
    x.leaf("groupId", &id);
    x.tag_set(w.tags_of(&id));
    changed(w, x)
}

pub fn delete_security_group(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let g = group_param(ctx)?;
    let mut w = ctx.world.clone();
    w.delete_security_group(&g.id)?;
    let mut x = ctx.xml();
    x.ret_true();
    x.leaf("groupId", &g.id);
    changed(w, x)
}

/// `ipPermissions` items: rules grouped by (protocol, ports), in first-seen order; each range,
/// prefix list and group pair with its description.
fn permissions_xml(x: &mut Xml, w: &World, name: &str, rules: &[SgRule]) {
    let mut groups: Vec<((Protocol, Ports), Vec<&SgRule>)> = Vec::new();
    for r in rules {
        let key = (r.protocol, r.ports);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, peers)) => peers.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    x.list(name, groups, |x, ((protocol, ports), rules)| {
        x.leaf("ipProtocol", &protocol.sg_name());
        if let Some((from, to)) = ports.to_aws() {
            x.leaf("fromPort", &from.to_string());
            x.leaf("toPort", &to.to_string());
        }
        let groups = rules.iter().filter_map(|r| match &r.peer {
            Peer::Group(g) => Some((g, r)),
            _ => None,
        });
        x.list("groups", groups, |x, (g, r)| {
            x.leaf_opt("description", r.description.as_deref());
            x.leaf("userId", OWNER_ID);
            x.leaf("groupId", g);
            x.leaf_opt("groupName", w.security_group(g).map(|s| s.name.as_str()));
            x.leaf_opt("vpcId", w.security_group(g).map(|s| s.vpc.as_str()));
        });
        let ranges = rules.iter().filter_map(|r| match &r.peer {
            Peer::Cidr(c) => Some((c, r)),
            _ => None,
        });
        x.list("ipRanges", ranges, |x, (c, r)| {
            x.leaf("cidrIp", &c.to_string());
            x.leaf_opt("description", r.description.as_deref());
        });
        x.open("ipv6Ranges");
        x.close();
        let pls = rules.iter().filter_map(|r| match &r.peer {
            Peer::PrefixList(pl) => Some((pl, r)),
            _ => None,
        });
        x.list("prefixListIds", pls, |x, (pl, r)| {
            x.leaf("prefixListId", pl);
            x.leaf_opt("description", r.description.as_deref());
        });
    });
}

/// What a `SecurityGroupRule` and a `RevokedSecurityGroupRule` both start with: the rule's id,
/// group, direction, protocol and ports.
fn rule_head_xml(x: &mut Xml, g: &SecurityGroup, dir: Direction, r: &SgRule) {
    x.leaf("securityGroupRuleId", &r.id);
    x.leaf("groupId", &g.id);
    x.bool("isEgress", dir == Direction::Egress);
    x.leaf("ipProtocol", &r.protocol.sg_name());
    // Protocol -1 has no ports: EC2 shows -1 for both.
    let (from, to) = r.ports.to_aws().unwrap_or((-1, -1));
    x.leaf("fromPort", &from.to_string());
    x.leaf("toPort", &to.to_string());
}

/// One `SecurityGroupRule` (the Authorize answers' `securityGroupRuleSet` and
/// DescribeSecurityGroupRules).
fn rule_xml(x: &mut Xml, w: &World, g: &SecurityGroup, dir: Direction, r: &SgRule) {
    rule_head_xml(x, g, dir, r);
    x.leaf("groupOwnerId", OWNER_ID);
    match &r.peer {
        Peer::Cidr(c) => x.leaf("cidrIpv4", &c.to_string()),
        Peer::PrefixList(pl) => x.leaf("prefixListId", pl),
        Peer::Group(other) => {
            x.open("referencedGroupInfo");
            x.leaf("groupId", other);
            x.leaf("userId", OWNER_ID);
            x.leaf_opt("vpcId", w.security_group(other).map(|s| s.vpc.as_str()));
            x.close();
        }
    }
    x.leaf_opt("description", r.description.as_deref());
    // Always present, empty without tags (as EC2 answers it).
    x.open("tagSet");
    for (k, v) in w.tags_of(&r.id).into_iter().flatten() {
        x.open("item");
        x.leaf("key", k);
        x.leaf("value", v);
        x.close();
    }
    x.close();
    x.leaf(
        "securityGroupRuleArn",
        &format!("arn:aws:ec2:{}:{OWNER_ID}:security-group-rule/{}", w.region, r.id),
    );
}

/// DescribeSecurityGroupRules' filters.
pub(super) const SECURITY_GROUP_RULE_FILTERS: &[&str] = &["group-id", "security-group-rule-id"];

/// DescribeSecurityGroupRules: every rule of every group, or those of `SecurityGroupRuleId.N`;
/// filters `group-id` and `security-group-rule-id`; paged by rule id.
pub fn describe_security_group_rules(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("SecurityGroupRuleId");
    let all = || {
        w.security_groups.iter().flat_map(|g| {
            [Direction::Ingress, Direction::Egress]
                .into_iter()
                .flat_map(move |d| g.rules(d).iter().map(move |r| (g, d, r)))
        })
    };
    for id in &ids {
        check_rule_id(id)?;
        if !all().any(|(_, _, r)| r.id == *id) {
            return Err(rule_not_found(id));
        }
    }
    let filters = ctx.p.filters(SECURITY_GROUP_RULE_FILTERS)?;
    let mut chosen = Vec::new();
    for (g, d, r) in all() {
        if !ids.is_empty() && !ids.contains(&r.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&r.id), |f| match f {
            "group-id" => one(&g.id),
            "security-group-rule-id" => one(&r.id),
            _ => None,
        })?;
        if ok {
            chosen.push((g, d, r));
        }
    }
    let page = ctx.paging.page(chosen, |(_, _, r)| r.id.clone());
    let mut x = ctx.xml();
    x.list("securityGroupRuleSet", page.items, |x, (g, d, r)| rule_xml(x, w, g, d, r));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

fn group_xml(x: &mut Xml, w: &World, g: &SecurityGroup) {
    x.leaf("ownerId", OWNER_ID);
    x.leaf("groupId", &g.id);
    x.leaf("groupName", &g.name);
    x.leaf("groupDescription", &g.description);
    x.leaf("vpcId", &g.vpc);
    x.leaf(
        "securityGroupArn",
        &format!("arn:aws:ec2:{}:{OWNER_ID}:security-group/{}", w.region, g.id),
    );
    permissions_xml(x, w, "ipPermissions", &g.ingress);
    permissions_xml(x, w, "ipPermissionsEgress", &g.egress);
    x.tag_set(w.tags_of(&g.id));
}

fn peer_values(
    g: &SecurityGroup,
    dir: Direction,
    f: impl Fn(&SgRule) -> Option<String>,
) -> Vec<String> {
    g.rules(dir).iter().filter_map(f).collect()
}

/// The values of DescribeSecurityGroups' `ip-permission.<name>` filter (`egress.ip-permission.*`
/// for `dir` egress) for one group; `None` for a name that is no such filter.
fn permission_values(w: &World, g: &SecurityGroup, dir: Direction, name: &str) -> Values {
    let group = |r: &SgRule| match &r.peer {
        Peer::Group(p) => Some(p.clone()),
        _ => None,
    };
    Some(match name {
        "cidr" => peer_values(g, dir, |r| match &r.peer {
            Peer::Cidr(c) => Some(c.to_string()),
            _ => None,
        }),
        "prefix-list-id" => peer_values(g, dir, |r| match &r.peer {
            Peer::PrefixList(p) => Some(p.clone()),
            _ => None,
        }),
        "group-id" => peer_values(g, dir, group),
        "group-name" => peer_values(g, dir, |r| {
            group(r).and_then(|p| w.security_group(&p)).map(|s| s.name.clone())
        }),
        "user-id" => peer_values(g, dir, |r| group(r).map(|_| OWNER_ID.to_string())),
        // "tcp | udp | icmp, a protocol number, or -1 for all protocols".
        "protocol" => g
            .rules(dir)
            .iter()
            .flat_map(|r| [r.protocol.sg_name().to_string(), r.protocol.acl_number().to_string()])
            .collect(),
        "from-port" => peer_values(g, dir, |r| r.ports.to_aws().map(|(f, _)| f.to_string())),
        "to-port" => peer_values(g, dir, |r| r.ports.to_aws().map(|(_, t)| t.to_string())),
        _ => return None,
    })
}

/// DescribeSecurityGroups' filters (besides tags).
pub(super) const SECURITY_GROUP_FILTERS: &[&str] = &[
    "group-id",
    "group-name",
    "vpc-id",
    "description",
    "owner-id",
    "ip-permission.cidr",
    "ip-permission.prefix-list-id",
    "ip-permission.group-id",
    "ip-permission.group-name",
    "ip-permission.user-id",
    "ip-permission.protocol",
    "ip-permission.from-port",
    "ip-permission.to-port",
    "egress.ip-permission.cidr",
    "egress.ip-permission.prefix-list-id",
    "egress.ip-permission.group-id",
    "egress.ip-permission.group-name",
    "egress.ip-permission.user-id",
    "egress.ip-permission.protocol",
    "egress.ip-permission.from-port",
    "egress.ip-permission.to-port",
];

/// Documented DescribeSecurityGroups filters about what the lab does not model (IPv6 rules):
/// each matches nothing (README, Decisions).
pub(super) const SECURITY_GROUP_FILTERS_NOT_MODELLED: &[&str] =
    &["ip-permission.ipv6-cidr", "egress.ip-permission.ipv6-cidr"];

pub fn describe_security_groups(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("GroupId");
    check_ids(w, &ids, ResourceKind::SecurityGroup)?;
    // `GroupName.N`: "[Default VPC] The names of the security groups. You can specify either
    // the security group name or the security group ID." (botocore); the `group-name` filter
    // finds groups of any VPC by name.
    let mut named = Vec::new();
    for n in ctx.p.indexed("GroupName") {
        named.push(group_by_name(w, n)?.id.as_str());
    }
    let filters =
        ctx.p.filters_with(SECURITY_GROUP_FILTERS, SECURITY_GROUP_FILTERS_NOT_MODELLED)?;
    let mut chosen = Vec::new();
    for g in &w.security_groups {
        if (!ids.is_empty() && !ids.contains(&g.id.as_str()))
            || (!named.is_empty() && !named.contains(&g.id.as_str()))
        {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&g.id), |f| match f {
            "group-id" => one(&g.id),
            "group-name" => one(&g.name),
            "vpc-id" => one(&g.vpc),
            "description" => one(&g.description),
            "owner-id" => one(OWNER_ID),
            _ => {
                match (f.strip_prefix("ip-permission."), f.strip_prefix("egress.ip-permission.")) {
                    (Some(name), _) => permission_values(w, g, Direction::Ingress, name),
                    (_, Some(name)) => permission_values(w, g, Direction::Egress, name),
                    _ => None,
                }
            }
        })?;
        if ok {
            chosen.push(g);
        }
    }
    let page = ctx.paging.page(chosen, |g| g.id.clone());
    let mut x = ctx.xml();
    x.list("securityGroupInfo", page.items, |x, g| group_xml(x, w, g));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

pub fn create_network_acl(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let vpc = ctx.p.required("VpcId")?;
    check_kind(ctx.world, vpc, ResourceKind::Vpc)?;
    let mut w = ctx.world.clone();
    let id = w.generate_id("acl");
    w.create_network_acl(&id, vpc)?;
    apply_tag_specs(ctx, &mut w, &id, "network-acl", &[])?;
    let mut x = ctx.xml();
    x.open("networkAcl");
    if let Some(a) = w.network_acl(&id) {
        acl_xml(&mut x, &w, a);
    }
    x.close();
    // botocore, CreateNetworkAclResult: "Unique, case-sensitive identifier to ensure the
    // idempotency of the request. Only returned if a client token was provided in the request."
    x.leaf_opt("clientToken", ctx.p.get("ClientToken"));
    changed(w, x)
}

fn acl_param<'a>(ctx: &Ctx<'a>) -> Result<&'a str, Ec2Error> {
    let id = ctx.p.required("NetworkAclId")?;
    check_kind(ctx.world, id, ResourceKind::NetworkAcl)?;
    Ok(id)
}

pub fn delete_network_acl(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = acl_param(ctx)?;
    let mut w = ctx.world.clone();
    w.delete_network_acl(id)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// The entry of CreateNetworkAclEntry / ReplaceNetworkAclEntry. A `CidrBlock` naming a prefix
/// list is refused with the guide's sentence.
fn entry_param(ctx: &Ctx) -> Result<AclEntry, Ec2Error> {
    let rule = ctx.p.int("RuleNumber")?.ok_or_else(|| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter RuleNumber")
    })?;
    let rule_number = u16::try_from(rule)
        .ok()
        .filter(|n| (1..=crate::model::MAX_ACL_RULE).contains(n))
        .ok_or(crate::model::ModelError::InvalidRuleNumber(rule))?;
    let protocol = Protocol::parse(ctx.p.required("Protocol")?)?;
    let action = RuleAction::parse(ctx.p.required("RuleAction")?)?;
    let egress = ctx.p.bool("Egress")?.ok_or_else(|| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter Egress")
    })?;
    let cidr = match ctx.p.get("CidrBlock") {
        Some(c) => parse_acl_cidr(c)?,
        None => {
            return Err(Ec2Error::new(
                "MissingParameter",
                "The request must contain the parameter CidrBlock",
            ));
        }
    };
    let ports = match protocol {
        Protocol::Icmp => {
            Ports::from_aws(protocol, ctx.p.int("Icmp.Type")?, ctx.p.int("Icmp.Code")?)?
        }
        Protocol::Tcp | Protocol::Udp => {
            let (from, to) = (ctx.p.int("PortRange.From")?, ctx.p.int("PortRange.To")?);
            if from.is_none() || to.is_none() {
                return Err(Ec2Error::new(
                    "InvalidParameterValue",
                    "TCP and UDP entries need PortRange.From and PortRange.To",
                ));
            }
            Ports::from_aws(protocol, from, to)?
        }
        Protocol::All | Protocol::Other(_) => Ports::All,
    };
    Ok(AclEntry { rule_number, egress, protocol, ports, cidr, action })
}

pub fn create_network_acl_entry(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = acl_param(ctx)?;
    let entry = entry_param(ctx)?;
    let mut w = ctx.world.clone();
    w.add_network_acl_entry(id, entry)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn replace_network_acl_entry(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = acl_param(ctx)?;
    let entry = entry_param(ctx)?;
    let mut w = ctx.world.clone();
    w.replace_network_acl_entry(id, entry)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn delete_network_acl_entry(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = acl_param(ctx)?;
    let rule = ctx.p.int("RuleNumber")?.ok_or_else(|| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter RuleNumber")
    })?;
    let rule =
        u16::try_from(rule).map_err(|_| crate::model::ModelError::InvalidRuleNumber(rule))?;
    let egress = ctx.p.bool("Egress")?.ok_or_else(|| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter Egress")
    })?;
    let mut w = ctx.world.clone();
    w.delete_network_acl_entry(id, egress, rule)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn replace_network_acl_association(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let assoc = ctx.p.required("AssociationId")?;
    let id = acl_param(ctx)?;
    let mut w = ctx.world.clone();
    let new = w.replace_network_acl_association(assoc, id)?;
    let mut x = ctx.xml();
    x.leaf("newAssociationId", &new);
    changed(w, x)
}

fn entry_xml(x: &mut Xml, e: &AclEntry) {
    x.leaf("ruleNumber", &e.rule_number.to_string());
    x.leaf("protocol", &e.protocol.acl_number());
    x.leaf("ruleAction", e.action.name());
    x.bool("egress", e.egress);
    x.leaf("cidrBlock", &e.cidr.to_string());
    match e.ports {
        Ports::Range { from, to } => {
            x.open("portRange");
            x.leaf("from", &from.to_string());
            x.leaf("to", &to.to_string());
            x.close();
        }
        Ports::Icmp { .. } => {
            if let Some((t, c)) = e.ports.to_aws() {
                x.open("icmpTypeCode");
                x.leaf("code", &c.to_string());
                x.leaf("type", &t.to_string());
                x.close();
            }
        }
        Ports::All => {}
    }
}

/// An ACL's entries as DescribeNetworkAcls shows them (and its `entry.*` filters see them):
/// in rule order, each direction ending with the implicit deny (rule number 32767, AWS's `*`).
fn shown_entries(a: &NetworkAcl) -> Vec<AclEntry> {
    let deny = |egress| AclEntry {
        rule_number: ACL_DEFAULT_RULE,
        egress,
        protocol: Protocol::All,
        ports: Ports::All,
        cidr: Default::default(),
        action: RuleAction::Deny,
    };
    let mut out: Vec<AclEntry> = a.sorted(true).into_iter().cloned().collect();
    out.push(deny(true));
    out.extend(a.sorted(false).into_iter().cloned());
    out.push(deny(false));
    out
}

/// The values an entry has for `entry.protocol`: "The protocol specified in the entry (tcp |
/// udp | icmp or a protocol number)" (EC2 API Reference, DescribeNetworkAcls): the number the
/// entry shows and, for those three, the name.
fn protocol_values(p: Protocol) -> Vec<String> {
    let name = match p {
        Protocol::Tcp => Some("tcp"),
        Protocol::Udp => Some("udp"),
        Protocol::Icmp => Some("icmp"),
        Protocol::All | Protocol::Other(_) => None,
    };
    std::iter::once(p.acl_number().into_owned()).chain(name.map(str::to_string)).collect()
}

/// An ACL as DescribeNetworkAcls shows it.
fn acl_xml(x: &mut Xml, w: &World, a: &NetworkAcl) {
    x.leaf("networkAclId", &a.id);
    x.leaf("vpcId", &a.vpc);
    x.bool("default", a.is_default);
    x.list("entrySet", &shown_entries(a), entry_xml);
    x.list("associationSet", w.acl_associations(a), |x, (assoc, subnet)| {
        x.leaf("networkAclAssociationId", &assoc);
        x.leaf("networkAclId", &a.id);
        x.leaf("subnetId", &subnet);
    });
    x.tag_set(w.tags_of(&a.id));
    x.leaf("ownerId", OWNER_ID);
}

/// DescribeNetworkAcls' filters (besides tags).
pub(super) const NETWORK_ACL_FILTERS: &[&str] = &[
    "network-acl-id",
    "vpc-id",
    "default",
    "owner-id",
    "association.subnet-id",
    "association.association-id",
    "association.network-acl-id",
    "entry.cidr",
    "entry.rule-number",
    "entry.rule-action",
    "entry.protocol",
    "entry.egress",
    "entry.port-range.from",
    "entry.port-range.to",
    "entry.icmp.type",
    "entry.icmp.code",
    "entry.ipv6-cidr",
];

pub fn describe_network_acls(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("NetworkAclId");
    check_ids(w, &ids, ResourceKind::NetworkAcl)?;
    let filters = ctx.p.filters(NETWORK_ACL_FILTERS)?;
    let mut chosen = Vec::new();
    for a in &w.network_acls {
        if !ids.is_empty() && !ids.contains(&a.id.as_str()) {
            continue;
        }
        let assocs = w.acl_associations(a);
        let shown = shown_entries(a);
        let entries =
            |f: &dyn Fn(&AclEntry) -> String| -> Vec<String> { shown.iter().map(f).collect() };
        let ok = matches(&filters, w.tags_of(&a.id), |f| match f {
            "network-acl-id" => one(&a.id),
            "vpc-id" => one(&a.vpc),
            "default" => one(if a.is_default { "true" } else { "false" }),
            "owner-id" => one(OWNER_ID),
            "association.subnet-id" => Some(assocs.iter().map(|(_, s)| s.clone()).collect()),
            "association.association-id" => Some(assocs.iter().map(|(i, _)| i.clone()).collect()),
            // "The ID of the network ACL involved in the association" (EC2 API Reference): an
            // ACL without associations has none.
            "association.network-acl-id" => Some(assocs.iter().map(|_| a.id.clone()).collect()),
            "entry.cidr" => Some(entries(&|e| e.cidr.to_string())),
            "entry.rule-number" => Some(entries(&|e| e.rule_number.to_string())),
            "entry.rule-action" => Some(entries(&|e| e.action.name().to_string())),
            "entry.protocol" => {
                Some(shown.iter().flat_map(|e| protocol_values(e.protocol)).collect())
            }
            "entry.egress" => Some(entries(&|e| e.egress.to_string())),
            "entry.port-range.from" | "entry.port-range.to" => Some(
                shown
                    .iter()
                    .filter_map(|e| match e.ports {
                        Ports::Range { from, to } => {
                            Some(if f.ends_with("from") { from } else { to }.to_string())
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            "entry.icmp.type" | "entry.icmp.code" => Some(
                shown
                    .iter()
                    .filter(|e| matches!(e.ports, Ports::Icmp { .. }))
                    .filter_map(|e| e.ports.to_aws())
                    .map(|(t, c)| if f.ends_with("type") { t } else { c }.to_string())
                    .collect(),
            ),
            // The lab has no IPv6.
            "entry.ipv6-cidr" => Some(Vec::new()),
            _ => None,
        })?;
        if ok {
            chosen.push(a);
        }
    }
    let page = ctx.paging.page(chosen, |a| a.id.clone());
    let mut x = ctx.xml();
    x.list("networkAclSet", page.items, |x, a| acl_xml(x, w, a));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}
