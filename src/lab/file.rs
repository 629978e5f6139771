//! Lab files: TOML that describes a world (see the README's "Lab file reference").
//!
//! A file is parsed and fully validated into a [`World`] before anything is created; every error
//! names the line and the field. Validation goes through the same [`World`] methods the API
//! uses, so a lab file can express exactly what the API allows.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use crate::model::{
    AclEntry, Bucket, DEFAULT_GROUP_DESCRIPTION, Direction, Endpoint, Instance, InternetGateway,
    InternetHost, ModelError, Peer, Ports, PrefixList, Protocol, Route, RuleAction, SgRule, Subnet,
    Target, Vpc, World, default_acl_id, default_group_id, parse_acl_cidr,
};

/// The embedded default lab (`../shared/DESIGN.md`'s table).
pub const DEFAULT_LAB: &str = include_str!("../../netns/demo.toml");

/// A refused lab file: where, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct LabFileError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    name: S,
    region: S,
    /// How long a modified endpoint policy takes to reach the data plane, e.g. "90s" or "2m".
    policy_propagation_delay: Option<S>,
    #[serde(default)]
    prefix_list: Vec<PrefixListItem>,
    #[serde(default)]
    vpc: Vec<VpcItem>,
    #[serde(default)]
    internet_gateway: Vec<IgwItem>,
    #[serde(default)]
    route_table: Vec<RouteTableItem>,
    #[serde(default)]
    subnet: Vec<SubnetItem>,
    #[serde(default)]
    endpoint: Vec<EndpointItem>,
    #[serde(default)]
    security_group: Vec<SecurityGroupItem>,
    #[serde(default)]
    network_acl: Vec<NetworkAclItem>,
    #[serde(default)]
    instance: Vec<InstanceItem>,
    #[serde(default)]
    nat_gateway: Vec<NatGatewayItem>,
    #[serde(default)]
    bucket: Vec<BucketItem>,
    #[serde(default)]
    internet_host: Vec<HostItem>,
    #[serde(default)]
    user: Vec<UserItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserItem {
    name: S,
    access_key: S,
    secret_key: S,
    #[serde(default)]
    policies: Vec<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixListItem {
    id: S,
    name: S,
    cidrs: Spanned<Vec<S>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VpcItem {
    id: S,
    cidr: S,
    #[serde(default = "yes")]
    enable_dns_support: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgwItem {
    id: S,
    vpc: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTableItem {
    id: S,
    vpc: S,
    #[serde(default)]
    routes: Vec<RouteItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteItem {
    destination: S,
    target: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetItem {
    name: S,
    id: S,
    vpc: S,
    cidr: S,
    route_table: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointItem {
    id: S,
    vpc: S,
    service: S,
    #[serde(default)]
    route_tables: Vec<S>,
    policy: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceItem {
    id: S,
    subnet: S,
    private_ip: S,
    public_ip: Option<S>,
    /// `sg-…` ids of the same VPC; omitted: the VPC's default group.
    #[serde(default)]
    security_groups: Vec<S>,
    /// EC2's source/destination check; a NAT instance needs `false`.
    #[serde(default = "yes")]
    source_dest_check: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NatGatewayItem {
    id: S,
    /// The subnet's name or id (a public subnet: its table routes to the internet gateway).
    subnet: S,
    /// The Elastic IP of the gateway, in 203.0.113.0/24.
    public_ip: S,
    /// `eipalloc-…`; omitted: generated.
    allocation_id: Option<S>,
    /// Omitted: the subnet's first free address.
    private_ip: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityGroupItem {
    id: S,
    name: S,
    vpc: S,
    description: Option<S>,
    /// Omitted: one rule allowing everything (as CreateSecurityGroup makes it).
    egress: Option<Vec<SgRuleItem>>,
    /// Omitted: none (the default group: its rule allowing traffic from itself).
    ingress: Option<Vec<SgRuleItem>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SgRuleItem {
    protocol: S,
    ports: Option<S>,
    /// Egress rules: a CIDR, `pl-…` or `sg-…`.
    destination: Option<S>,
    /// Ingress rules: a CIDR, `pl-…` or `sg-…`.
    source: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkAclItem {
    id: S,
    vpc: S,
    #[serde(default)]
    subnets: Vec<S>,
    /// Omitted: none (the default ACL: its entry 100 allowing everything).
    egress: Option<Vec<AclEntryItem>>,
    ingress: Option<Vec<AclEntryItem>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AclEntryItem {
    rule: Spanned<i64>,
    protocol: S,
    ports: Option<S>,
    action: S,
    cidr: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketItem {
    name: S,
    region: Option<S>,
    policy: Option<S>,
    /// Object key → content (the key's span names its line in an error).
    #[serde(default)]
    objects: BTreeMap<S, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostItem {
    name: S,
    ip: S,
}

/// Parses and validates a lab file read as bytes: one that is not UTF-8 is refused with the
/// line of its first bad byte.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<World, LabFileError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(file, text),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            Err(LabFileError {
                file: file.into(),
                line: good.iter().filter(|b| **b == b'\n').count() + 1,
                field: "(encoding)".into(),
                message: format!(
                    "byte {:#04x} at offset {} is not UTF-8 (a lab file is UTF-8 TOML)",
                    bytes[e.valid_up_to()],
                    e.valid_up_to()
                ),
            })
        }
    }
}

/// Parses and validates a lab file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<World, LabFileError> {
    let ctx = Ctx { file, text };
    let lab: LabFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| ctx.line_of(&s)).unwrap_or(1);
        let message = e.message().trim().to_string();
        LabFileError {
            file: file.into(),
            line,
            field: e
                .span()
                .and_then(|at| field_at(text, &at, &message))
                .unwrap_or_else(|| "(syntax)".into()),
            message,
        }
    })?;
    let mut w = World::new(lab.name.get_ref(), lab.region.get_ref()).map_err(|e| {
        let (field, span) = match e {
            ModelError::UnknownRegion(_) => ("region", lab.region.span()),
            _ => ("name", lab.name.span()),
        };
        ctx.err(field.into(), &span, e)
    })?;

    if let Some(d) = &lab.policy_propagation_delay {
        w.policy_propagation_delay_secs = parse_duration(d.get_ref()).ok_or_else(|| {
            ctx.msg(
                "policy_propagation_delay".into(),
                &d.span(),
                format!("'{}' is not a duration like \"0s\", \"90s\" or \"2m\"", d.get_ref()),
            )
        })?;
    }
    for (i, p) in lab.prefix_list.iter().enumerate() {
        let f = |k: &str| format!("prefix_list[{i}].{k}");
        let mut cidrs = Vec::new();
        for (j, c) in p.cidrs.get_ref().iter().enumerate() {
            cidrs.push(ctx.cidr(c, &format!("prefix_list[{i}].cidrs[{j}]"))?);
        }
        let region = p
            .name
            .get_ref()
            .strip_prefix("com.amazonaws.")
            .and_then(|r| r.strip_suffix(".s3"))
            .unwrap_or_default()
            .to_string();
        // One list per region: a second section would silently replace the first.
        if let Some(first) = lab.prefix_list[..i].iter().position(|q| q.name == p.name) {
            return Err(ctx.msg(
                f("name"),
                &p.name.span(),
                format!(
                    "prefix_list[{first}] is already {}'s list; a region has one S3 prefix list",
                    p.name.get_ref()
                ),
            ));
        }
        if w.prefix_list_by_name(p.name.get_ref()).is_none() {
            return Err(ctx.msg(
                f("name"),
                &p.name.span(),
                format!("'{}' is not an S3 service of a known region", p.name.get_ref()),
            ));
        }
        let pl = PrefixList {
            id: p.id.get_ref().clone(),
            name: p.name.get_ref().clone(),
            region,
            cidrs,
        };
        w.set_prefix_list(pl).map_err(|e| match &e {
            // The CIDR the model refused, by its own line and field (a repeated one: its
            // second mention).
            ModelError::InvalidPrefixListCidr { cidr, .. }
            | ModelError::DuplicatePrefixListCidr { cidr, .. } => {
                let nth = usize::from(matches!(e, ModelError::DuplicatePrefixListCidr { .. }));
                let refused = p
                    .cidrs
                    .get_ref()
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        c.get_ref().parse::<Ipv4Net>().is_ok_and(|n| n.trunc() == *cidr)
                    })
                    .nth(nth);
                match refused {
                    Some((j, c)) => ctx.err(f(&format!("cidrs[{j}]")), &c.span(), e),
                    None => ctx.err(f("cidrs"), &p.cidrs.span(), e),
                }
            }
            ModelError::EmptyPrefixList(_) => ctx.err(f("cidrs"), &p.cidrs.span(), e),
            _ => ctx.err(f("id"), &p.id.span(), e),
        })?;
    }
    for (i, v) in lab.vpc.iter().enumerate() {
        let cidr = ctx.cidr(&v.cidr, &format!("vpc[{i}].cidr"))?;
        let vpc = Vpc {
            id: v.id.get_ref().clone(),
            cidr,
            enable_dns_support: v.enable_dns_support,
            main_route_table: None,
            main_association_id: None,
        };
        w.add_vpc(vpc).map_err(|e| {
            let (k, s) = match e {
                ModelError::InvalidVpcCidr(_) | ModelError::VpcCidrReserved { .. } => {
                    ("cidr", v.cidr.span())
                }
                _ => ("id", v.id.span()),
            };
            ctx.err(format!("vpc[{i}].{k}"), &s, e)
        })?;
    }
    for (i, g) in lab.internet_gateway.iter().enumerate() {
        let igw = InternetGateway {
            id: g.id.get_ref().clone(),
            vpc: g.vpc.as_ref().map(|v| v.get_ref().clone()),
        };
        w.add_internet_gateway(igw).map_err(|e| {
            let (k, s) = match (&e, &g.vpc) {
                (ModelError::VpcNotFound(_) | ModelError::VpcAlreadyHasIgw { .. }, Some(v)) => {
                    ("vpc", v.span())
                }
                _ => ("id", g.id.span()),
            };
            ctx.err(format!("internet_gateway[{i}].{k}"), &s, e)
        })?;
    }
    // The first route table of a VPC in the file becomes its main table (see
    // `World::add_route_table`); subnets name their table, which is an explicit association.
    for (i, t) in lab.route_table.iter().enumerate() {
        w.add_route_table(t.id.get_ref(), t.vpc.get_ref()).map_err(|e| {
            let (k, s) = match e {
                ModelError::VpcNotFound(_) => ("vpc", t.vpc.span()),
                _ => ("id", t.id.span()),
            };
            ctx.err(format!("route_table[{i}].{k}"), &s, e)
        })?;
    }
    for (i, s) in lab.subnet.iter().enumerate() {
        let cidr = ctx.cidr(&s.cidr, &format!("subnet[{i}].cidr"))?;
        let subnet = Subnet {
            id: s.id.get_ref().clone(),
            name: s.name.get_ref().clone(),
            vpc: s.vpc.get_ref().clone(),
            cidr,
            route_table: s.route_table.get_ref().clone(),
            association_id: None,
        };
        w.add_subnet(subnet).map_err(|e| {
            let (k, sp) = match &e {
                ModelError::InvalidName(_) => ("name", s.name.span()),
                ModelError::DuplicateId(d) if d == s.name.get_ref() => ("name", s.name.span()),
                ModelError::VpcNotFound(_) => ("vpc", s.vpc.span()),
                ModelError::InvalidSubnetCidr { .. } | ModelError::SubnetConflict { .. } => {
                    ("cidr", s.cidr.span())
                }
                ModelError::RouteTableNotFound(_) | ModelError::RouteTableOtherVpc { .. } => {
                    ("route_table", s.route_table.span())
                }
                _ => ("id", s.id.span()),
            };
            ctx.err(format!("subnet[{i}].{k}"), &sp, e)
        })?;
    }
    for (i, e) in lab.endpoint.iter().enumerate() {
        let ep = Endpoint {
            id: e.id.get_ref().clone(),
            vpc: e.vpc.get_ref().clone(),
            service: e.service.get_ref().clone(),
            route_tables: e.route_tables.iter().map(|t| t.get_ref().clone()).collect(),
            policy: e.policy.as_ref().map(|p| p.get_ref().clone()),
        };
        w.add_endpoint(ep).map_err(|err| {
            // The `nth` mention of table `name` (0: the first).
            let table_span = |name: &str, nth: usize| {
                let (j, t) = e
                    .route_tables
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.get_ref() == name)
                    .nth(nth)?;
                Some((format!("endpoint[{i}].route_tables[{j}]"), t.span()))
            };
            let (k, sp) = match &err {
                ModelError::VpcNotFound(_) => (format!("endpoint[{i}].vpc"), e.vpc.span()),
                ModelError::InvalidServiceName(_) | ModelError::CrossRegionEndpoint { .. } => {
                    (format!("endpoint[{i}].service"), e.service.span())
                }
                ModelError::InvalidPolicy(_) | ModelError::PolicySyntax { .. } => match &e.policy {
                    Some(p) => (format!("endpoint[{i}].policy"), p.span()),
                    None => (format!("endpoint[{i}].id"), e.id.span()),
                },
                // The second mention of a table is the duplicate.
                ModelError::DuplicateId(t) if table_span(t, 1).is_some() => {
                    table_span(t, 1).unwrap_or_default()
                }
                ModelError::RouteTableNotFound(t)
                | ModelError::RouteTableOtherVpc { table: t, .. }
                | ModelError::EndpointServiceAlreadyInTable { table: t, .. }
                    if table_span(t, 0).is_some() =>
                {
                    table_span(t, 0).unwrap_or_default()
                }
                _ => (format!("endpoint[{i}].id"), e.id.span()),
            };
            ctx.err(k, &sp, err)
        })?;
    }
    security_groups(&ctx, &mut w, &lab.security_group)?;
    network_acls(&ctx, &mut w, &lab.network_acl)?;
    for (i, n) in lab.instance.iter().enumerate() {
        let private_ip = ctx.ip(&n.private_ip, &format!("instance[{i}].private_ip"))?;
        let public_ip = match &n.public_ip {
            Some(p) => Some(ctx.ip(p, &format!("instance[{i}].public_ip"))?),
            None => None,
        };
        let inst = Instance {
            id: n.id.get_ref().clone(),
            subnet: n.subnet.get_ref().clone(),
            private_ip,
            public_ip,
            // What a lab file gives an instance is the address EC2 assigned at launch.
            auto_public_ip: public_ip.is_some(),
            image_id: None,
            instance_type: None,
            security_groups: n.security_groups.iter().map(|g| g.get_ref().clone()).collect(),
            source_dest_check: n.source_dest_check,
            reservation: None,
            launched_at: None,
            client_token: None,
        };
        w.add_instance(inst).map_err(|e| {
            // The `nth` mention of group `g` (0: the first).
            let group = |g: &str, nth: usize| {
                let (j, x) = n
                    .security_groups
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.get_ref() == g)
                    .nth(nth)?;
                Some((format!("security_groups[{j}]"), x.span()))
            };
            // The second mention of a group is the duplicate.
            if let ModelError::DuplicateId(g) = &e
                && let Some((k, s)) = group(g, 1)
            {
                return ctx.err(format!("instance[{i}].{k}"), &s, e);
            }
            if let ModelError::SecurityGroupNotFound(g)
            | ModelError::SecurityGroupOtherVpc { group: g, .. }
            | ModelError::MalformedId { id: g, .. }
            | ModelError::DuplicateId(g)
            | ModelError::SecurityGroupsPerInterfaceLimitExceeded { group: g, .. } = &e
                && let Some((k, s)) = group(g, 0)
            {
                return ctx.err(format!("instance[{i}].{k}"), &s, e);
            }
            let (k, s) = match (&e, &n.public_ip) {
                (ModelError::SubnetNotFound(_), _) => ("subnet", n.subnet.span()),
                (ModelError::InvalidPrivateIp { .. }, _) => ("private_ip", n.private_ip.span()),
                (ModelError::InvalidPublicIp(_), Some(p)) => ("public_ip", p.span()),
                (ModelError::AddressInUse(a), Some(p)) if Some(*a) == public_ip => {
                    ("public_ip", p.span())
                }
                (ModelError::AddressInUse(_), _) => ("private_ip", n.private_ip.span()),
                _ => ("id", n.id.span()),
            };
            ctx.err(format!("instance[{i}].{k}"), &s, e)
        })?;
    }
    for (i, n) in lab.nat_gateway.iter().enumerate() {
        let f = |k: &str| format!("nat_gateway[{i}].{k}");
        let public_ip = ctx.ip(&n.public_ip, &f("public_ip"))?;
        let private_ip = match &n.private_ip {
            Some(p) => Some(ctx.ip(p, &f("private_ip"))?),
            None => None,
        };
        let alloc = match &n.allocation_id {
            Some(a) => a.get_ref().clone(),
            None => w.generate_id("eipalloc"),
        };
        w.allocate_address(&alloc, Some(public_ip)).map_err(|e| {
            let (k, sp) = match (&e, &n.allocation_id) {
                (ModelError::MalformedId { .. } | ModelError::DuplicateId(_), Some(a)) => {
                    ("allocation_id", a.span())
                }
                _ => ("public_ip", n.public_ip.span()),
            };
            ctx.err(f(k), &sp, e)
        })?;
        w.create_nat_gateway(n.id.get_ref(), n.subnet.get_ref(), &alloc, private_ip).map_err(
            |e| {
                let (k, sp) = match (&e, &n.private_ip) {
                    (ModelError::SubnetNotFound(_), _) => ("subnet", n.subnet.span()),
                    (
                        ModelError::InvalidPrivateIp { .. }
                        | ModelError::AddressInUse(_)
                        | ModelError::SubnetFull(_),
                        Some(p),
                    ) => ("private_ip", p.span()),
                    _ => ("id", n.id.span()),
                };
                ctx.err(f(k), &sp, e)
            },
        )?;
    }
    // Routes after every table, gateway, subnet, instance and NAT gateway exists (a route may
    // name a NAT gateway or instance), in file order.
    for (i, t) in lab.route_table.iter().enumerate() {
        for (j, r) in t.routes.iter().enumerate() {
            let f = |k: &str| format!("route_table[{i}].routes[{j}].{k}");
            let dest = r.destination.get_ref();
            if dest.starts_with("pl-") {
                // From the guide: "You can only add an endpoint route by associating a route
                // table with an endpoint."
                return Err(ctx.err(
                    f("destination"),
                    &r.destination.span(),
                    ModelError::ExplicitEndpointRoute,
                ));
            }
            let destination = ctx.cidr(&r.destination, &f("destination"))?;
            let target = ctx.target(&r.target, &f("target"))?;
            w.add_route(t.id.get_ref(), Route { destination, target }).map_err(|e| {
                let (k, s) = match e {
                    ModelError::RouteAlreadyExists { .. }
                    | ModelError::RouteOverLocal(_)
                    | ModelError::LocalRouteMismatch(_) => ("destination", r.destination.span()),
                    _ => ("target", r.target.span()),
                };
                ctx.err(f(k), &s, e)
            })?;
        }
    }
    // Users first: a bucket policy may name them (S3 refuses a principal that does not exist).
    for (i, u) in lab.user.iter().enumerate() {
        let user = crate::model::User {
            name: u.name.get_ref().clone(),
            access_key: u.access_key.get_ref().clone(),
            secret_key: u.secret_key.get_ref().clone(),
            policies: u.policies.iter().map(|p| p.get_ref().clone()).collect(),
        };
        w.add_user(user).map_err(|e| {
            let (k, s) = match &e {
                ModelError::InvalidAccessKey(_) => ("access_key".to_string(), u.access_key.span()),
                ModelError::DuplicateId(k) if k != u.name.get_ref() => {
                    ("access_key".to_string(), u.access_key.span())
                }
                ModelError::InvalidPolicy(_) => {
                    // The first policy that does not parse.
                    let j = u
                        .policies
                        .iter()
                        .position(|p| {
                            crate::policy::Policy::parse(
                                p.get_ref(),
                                crate::policy::PolicyKind::Identity,
                            )
                            .is_err()
                        })
                        .unwrap_or(0);
                    let span = u.policies.get(j).map(|p| p.span()).unwrap_or(u.name.span());
                    (format!("policies[{j}]"), span)
                }
                _ => ("name".to_string(), u.name.span()),
            };
            ctx.err(format!("user[{i}].{k}"), &s, e)
        })?;
    }
    for (i, b) in lab.bucket.iter().enumerate() {
        // A new lab's bucket, unlike one of a saved world (see `reserved_bucket_rule`).
        if let Some(rule) = crate::model::reserved_bucket_rule(b.name.get_ref()) {
            let e = ModelError::ReservedBucketName { name: b.name.get_ref().clone(), rule };
            return Err(ctx.err(format!("bucket[{i}].name"), &b.name.span(), e));
        }
        // AWS's own buckets are another account's: the lab makes them itself, in that account.
        if crate::model::is_aws_repository_bucket(b.name.get_ref()) {
            let e = ModelError::AwsOwnedBucket(b.name.get_ref().clone());
            return Err(ctx.err(format!("bucket[{i}].name"), &b.name.span(), e));
        }
        let region =
            b.region.as_ref().map(|r| r.get_ref().clone()).unwrap_or_else(|| w.region.clone());
        let bucket = Bucket {
            name: b.name.get_ref().clone(),
            region,
            policy: b.policy.as_ref().map(|p| p.get_ref().clone()),
            objects: b.objects.iter().map(|(k, v)| (k.get_ref().clone(), v.clone())).collect(),
        };
        w.add_bucket(bucket).map_err(|e| {
            let (k, s) = match (&e, &b.region, &b.policy) {
                (ModelError::UnknownRegion(_), Some(r), _) => ("region".into(), r.span()),
                (ModelError::InvalidPolicy(_), _, Some(p)) => ("policy".into(), p.span()),
                (ModelError::InvalidObjectKey(bad), _, _)
                    if let Some(key) = b.objects.keys().find(|k| k.get_ref() == bad) =>
                {
                    (format!("objects.{bad:?}"), key.span())
                }
                _ => ("name".into(), b.name.span()),
            };
            ctx.err(format!("bucket[{i}].{k}"), &s, e)
        })?;
    }
    for (i, h) in lab.internet_host.iter().enumerate() {
        let ip = ctx.ip(&h.ip, &format!("internet_host[{i}].ip"))?;
        w.add_internet_host(InternetHost { name: h.name.get_ref().clone(), ip }).map_err(|e| {
            let (k, s) = match e {
                ModelError::DuplicateId(_) | ModelError::InvalidInternetHostName { .. } => {
                    ("name", h.name.span())
                }
                _ => ("ip", h.ip.span()),
            };
            ctx.err(format!("internet_host[{i}].{k}"), &s, e)
        })?;
    }
    // Every rule above was checked where its line and field are known; the whole world once
    // more, by the check a saved world gets when it loads (it would name a rule missed above).
    w.check().map_err(|e| {
        ctx.msg(format!("(world) {}", e.field), &(0..0), format!("{}: {}", e.id, e.error))
    })?;
    Ok(w)
}

/// `[[security_group]]`: all groups first (rules may name any of them), then their rules. A
/// section whose id is a VPC's default group (`sg-` and the VPC id's hex part) sets that
/// group's rules instead of creating one.
fn security_groups(
    ctx: &Ctx,
    w: &mut World,
    items: &[SecurityGroupItem],
) -> Result<(), LabFileError> {
    for (i, g) in items.iter().enumerate() {
        let f = |k: &str| format!("security_group[{i}].{k}");
        let id = g.id.get_ref();
        let vpc = g.vpc.get_ref();
        if w.vpc(vpc).is_none() {
            return Err(ctx.err(f("vpc"), &g.vpc.span(), ModelError::VpcNotFound(vpc.clone())));
        }
        if *id == default_group_id(vpc) {
            if g.name.get_ref() != "default" {
                return Err(ctx.msg(
                    f("name"),
                    &g.name.span(),
                    format!("{id} is the default group of {vpc}: its name is 'default'"),
                ));
            }
            // EC2 gives the default group a fixed description: another one would be ignored.
            if let Some(d) = &g.description
                && d.get_ref() != DEFAULT_GROUP_DESCRIPTION
            {
                return Err(ctx.msg(
                    f("description"),
                    &d.span(),
                    format!(
                        "{id} is the default group of {vpc}: its description is \
                         '{DEFAULT_GROUP_DESCRIPTION}'"
                    ),
                ));
            }
            continue;
        }
        let description = g.description.as_ref().map(|d| d.get_ref().as_str());
        w.create_security_group(id, g.name.get_ref(), description.unwrap_or(g.name.get_ref()), vpc)
            .map_err(|e| {
                let (k, s) = match (&e, &g.description) {
                    (
                        ModelError::InvalidGroupName(_) | ModelError::SecurityGroupDuplicate { .. },
                        _,
                    ) => ("name", g.name.span()),
                    (ModelError::InvalidGroupDescription(_), Some(d)) => ("description", d.span()),
                    _ => ("id", g.id.span()),
                };
                ctx.err(f(k), &s, e)
            })?;
    }
    for (i, g) in items.iter().enumerate() {
        let lists = [
            (Direction::Egress, g.egress.as_deref(), "egress", "destination"),
            (Direction::Ingress, g.ingress.as_deref(), "ingress", "source"),
        ];
        for (dir, list, name, peer_key) in lists {
            let Some(list) = list else { continue };
            let mut rules = Vec::new();
            for (j, r) in list.iter().enumerate() {
                let f = |k: &str| format!("security_group[{i}].{name}[{j}].{k}");
                let (peer, wrong) = match dir {
                    Direction::Egress => (&r.destination, &r.source),
                    Direction::Ingress => (&r.source, &r.destination),
                };
                if let Some(wr) = wrong {
                    let other = if peer_key == "source" { "destination" } else { "source" };
                    return Err(ctx.msg(
                        f(other),
                        &wr.span(),
                        format!("{name} rules name a {peer_key}, not a {other}"),
                    ));
                }
                let Some(peer) = peer else {
                    // The missing field, on the rule's line (its protocol's: it has no span).
                    return Err(ctx.msg(
                        f(peer_key),
                        &r.protocol.span(),
                        format!("missing field `{peer_key}` (a CIDR, pl- or sg- id)"),
                    ));
                };
                let protocol = Protocol::parse(r.protocol.get_ref())
                    .map_err(|e| ctx.err(f("protocol"), &r.protocol.span(), e))?;
                let ports =
                    Ports::parse_lab(protocol, r.ports.as_ref().map(|p| p.get_ref().as_str()))
                        .map_err(|e| {
                            let span =
                                r.ports.as_ref().map(|p| p.span()).unwrap_or(r.protocol.span());
                            ctx.err(f("ports"), &span, e)
                        })?;
                let p = peer.get_ref();
                let parsed = if p.starts_with("pl-") {
                    Peer::PrefixList(p.clone())
                } else if p.starts_with("sg-") {
                    Peer::Group(p.clone())
                } else {
                    Peer::Cidr(ctx.cidr(peer, &f(peer_key))?)
                };
                let rule = SgRule::new(protocol, ports, parsed);
                // With the rules before it, so that a quota names the rule that crosses it.
                let mut probe = w.clone();
                let so_far: Vec<SgRule> = rules.iter().chain([&rule]).cloned().collect();
                probe
                    .set_security_group_rules(g.id.get_ref(), dir, &so_far)
                    .map_err(|e| ctx.err(f(peer_key), &peer.span(), e))?;
                if rules.contains(&rule) {
                    return Err(ctx.err(
                        f(peer_key),
                        &peer.span(),
                        ModelError::DuplicatePermission {
                            group: g.id.get_ref().clone(),
                            direction: dir.name(),
                            rule: rule.to_string(),
                        },
                    ));
                }
                rules.push(rule);
            }
            w.set_security_group_rules(g.id.get_ref(), dir, &rules)
                .map_err(|e| ctx.err(format!("security_group[{i}].{name}"), &g.id.span(), e))?;
        }
    }
    Ok(())
}

/// `[[network_acl]]`: creates the ACL (or, for a VPC's default ACL id, replaces its entries),
/// adds its entries and associates its subnets. A `pl-` cidr is refused with the guide's
/// sentence.
fn network_acls(ctx: &Ctx, w: &mut World, items: &[NetworkAclItem]) -> Result<(), LabFileError> {
    for (i, a) in items.iter().enumerate() {
        let f = |k: &str| format!("network_acl[{i}].{k}");
        let id = a.id.get_ref();
        let vpc = a.vpc.get_ref();
        if w.vpc(vpc).is_none() {
            return Err(ctx.err(f("vpc"), &a.vpc.span(), ModelError::VpcNotFound(vpc.clone())));
        }
        if *id == default_acl_id(vpc) {
            let given =
                |egress: bool| if egress { a.egress.is_some() } else { a.ingress.is_some() };
            let old: Vec<(bool, u16)> = w
                .network_acl(id)
                .map(|x| {
                    x.entries
                        .iter()
                        .filter(|e| given(e.egress))
                        .map(|e| (e.egress, e.rule_number))
                        .collect()
                })
                .unwrap_or_default();
            for (egress, n) in old {
                w.delete_network_acl_entry(id, egress, n)
                    .map_err(|e| ctx.err(f("id"), &a.id.span(), e))?;
            }
        } else {
            w.create_network_acl(id, vpc).map_err(|e| ctx.err(f("id"), &a.id.span(), e))?;
        }
        for (egress, name, list) in [(true, "egress", &a.egress), (false, "ingress", &a.ingress)] {
            for (j, r) in list.iter().flatten().enumerate() {
                let f = |k: &str| format!("network_acl[{i}].{name}[{j}].{k}");
                let protocol = Protocol::parse(r.protocol.get_ref())
                    .map_err(|e| ctx.err(f("protocol"), &r.protocol.span(), e))?;
                let ports =
                    Ports::parse_lab(protocol, r.ports.as_ref().map(|p| p.get_ref().as_str()))
                        .map_err(|e| {
                            let span =
                                r.ports.as_ref().map(|p| p.span()).unwrap_or(r.protocol.span());
                            ctx.err(f("ports"), &span, e)
                        })?;
                let action = RuleAction::parse(r.action.get_ref())
                    .map_err(|e| ctx.err(f("action"), &r.action.span(), e))?;
                // From the guide: "You cannot use prefix list IDs to create an outbound rule in
                // a network ACL".
                let cidr = parse_acl_cidr(r.cidr.get_ref())
                    .map_err(|e| ctx.err(f("cidr"), &r.cidr.span(), e))?;
                let n = *r.rule.get_ref();
                let rule_number = u16::try_from(n).map_err(|_| {
                    ctx.err(f("rule"), &r.rule.span(), ModelError::InvalidRuleNumber(n))
                })?;
                let entry = AclEntry { rule_number, egress, protocol, ports, cidr, action };
                w.add_network_acl_entry(id, entry)
                    .map_err(|e| ctx.err(f("rule"), &r.rule.span(), e))?;
            }
        }
        for (j, s) in a.subnets.iter().enumerate() {
            let sub = s.get_ref();
            if *id == default_acl_id(vpc) {
                // Subnets use their VPC's default ACL unless another ACL names them.
                let ok = w.subnet(sub).is_some_and(|x| x.vpc == *vpc);
                if !ok {
                    return Err(ctx.err(
                        f(&format!("subnets[{j}]")),
                        &s.span(),
                        ModelError::SubnetNotFound(sub.clone()),
                    ));
                }
                continue;
            }
            w.associate_network_acl(id, sub)
                .map_err(|e| ctx.err(f(&format!("subnets[{j}]")), &s.span(), e))?;
        }
    }
    // A subnet the default ACL's section names must not be another ACL's (in any section,
    // before or after it): it would silently use the other one.
    for (i, a) in items.iter().enumerate() {
        if *a.id.get_ref() != default_acl_id(a.vpc.get_ref()) {
            continue;
        }
        for (j, s) in a.subnets.iter().enumerate() {
            let (Some(subnet), Some((acl, _))) = (w.subnet(s.get_ref()), w.subnet_acl(s.get_ref()))
            else {
                continue;
            };
            if acl.id != *a.id.get_ref() {
                let e = ModelError::SubnetAclConflict {
                    subnet: subnet.id.clone(),
                    acl: acl.id.clone(),
                };
                return Err(ctx.err(format!("network_acl[{i}].subnets[{j}]"), &s.span(), e));
            }
        }
    }
    Ok(())
}

/// The field a TOML error that is not about syntax (a wrong type, an unknown key, a missing
/// field) is about, e.g. `vpc[1].cidr`, from where it points: a value, a key, or the table
/// that lacks a field (whose name the message gives). `None` for a syntax error.
fn field_at(text: &str, span: &Range<usize>, message: &str) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    type Item<'a> = toml::Spanned<DeValue<'a>>;
    /// Whether `v` holds offset `at`: its own span (a value, an inline table, or the header
    /// of a `[[table]]`) or, for a table, any of its keys and values.
    fn covers(v: &Item, at: usize) -> bool {
        v.span().contains(&at)
            || match v.get_ref() {
                DeValue::Table(t) => t.iter().any(|(k, v)| k.span().contains(&at) || covers(v, at)),
                DeValue::Array(a) => a.iter().any(|x| covers(x, at)),
                _ => false,
            }
    }
    fn key(path: &mut String, k: &str) {
        if !path.is_empty() {
            path.push('.');
        }
        if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            path.push_str(k);
        } else {
            path.push_str(&format!("{k:?}"));
        }
    }
    /// Appends the path from `table` to `at`; `true` if `at` is a table itself (the one a
    /// missing field is missing from).
    fn walk(table: &DeTable, at: usize, path: &mut String) -> bool {
        for (k, v) in table {
            if covers(v, at) {
                key(path, k.get_ref());
                let mut v = v;
                if let DeValue::Array(a) = v.get_ref() {
                    let Some((i, x)) = a.iter().enumerate().find(|(_, x)| covers(x, at)) else {
                        return false;
                    };
                    path.push_str(&format!("[{i}]"));
                    v = x;
                }
                return match v.get_ref() {
                    // Inside one of its entries, or the table itself (its header, or an inline
                    // table as a whole).
                    DeValue::Table(t) => walk(t, at, path),
                    _ => false,
                };
            }
            if k.span().contains(&at) {
                key(path, k.get_ref());
                return false;
            }
        }
        // In none of its entries: the table itself (the one a missing field is missing from).
        true
    }
    let doc = DeTable::parse(text).ok()?;
    let mut path = String::new();
    // An empty span is the whole document (a missing top-level field).
    let at_table = span.is_empty() || walk(doc.get_ref(), span.start, &mut path);
    if at_table
        && let Some(missing) =
            message.strip_prefix("missing field `").and_then(|m| m.split('`').next())
    {
        key(&mut path, missing);
    }
    (!path.is_empty()).then_some(path)
}

/// "90s", "2m", "1h" or a plain number of seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    }

    fn msg(&self, field: String, span: &Range<usize>, message: String) -> LabFileError {
        LabFileError { file: self.file.into(), line: self.line_of(span), field, message }
    }

    fn err(&self, field: String, span: &Range<usize>, e: ModelError) -> LabFileError {
        self.msg(field, span, e.to_string())
    }

    fn cidr(&self, s: &S, field: &str) -> Result<Ipv4Net, LabFileError> {
        s.get_ref().parse::<Ipv4Net>().map_err(|_| {
            self.msg(
                field.into(),
                &s.span(),
                format!("'{}' is not an IPv4 CIDR block like 10.0.0.0/16", s.get_ref()),
            )
        })
    }

    fn ip(&self, s: &S, field: &str) -> Result<Ipv4Addr, LabFileError> {
        s.get_ref().parse::<Ipv4Addr>().map_err(|_| {
            self.msg(field.into(), &s.span(), format!("'{}' is not an IPv4 address", s.get_ref()))
        })
    }

    fn target(&self, s: &S, field: &str) -> Result<Target, LabFileError> {
        let t = s.get_ref();
        match t.as_str() {
            "local" => Ok(Target::Local),
            "blackhole" => Ok(Target::Blackhole),
            _ if t.starts_with("igw-") => Ok(Target::Igw(t.clone())),
            _ if t.starts_with("nat-") => Ok(Target::Nat(t.clone())),
            _ if t.starts_with("i-") => Ok(Target::Instance(t.clone())),
            _ if t.starts_with("vpce-") => {
                Err(self.err(field.into(), &s.span(), ModelError::ExplicitEndpointRoute))
            }
            _ => Err(self.msg(
                field.into(),
                &s.span(),
                format!("unknown target '{t}': use local, blackhole, or an igw-, nat- or i- id"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> String {
        std::fs::read_to_string(format!("{}/netns/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn shipped_labs_parse() {
        let w = parse("demo.toml", DEFAULT_LAB).unwrap();
        assert_eq!(w.lab, "demo");
        assert_eq!(w.subnets.len(), 4);
        assert_eq!(w.endpoints[0].route_tables.len(), 2);
        let nat = w.nat_gateway("nat-0b0b0b0b").unwrap();
        assert_eq!(
            (nat.subnet.as_str(), nat.public_ip.to_string()),
            ("subnet-0b0b0b0b", "203.0.113.40".into())
        );
        assert_eq!(
            w.elastic_ip("eipalloc-0b0b0b0b").unwrap().nat_gateway.as_deref(),
            Some("nat-0b0b0b0b")
        );
        for f in ["guide-example-1.toml", "guide-example-2.toml"] {
            parse(f, &shipped(f)).unwrap();
        }
    }

    fn with(extra: &str) -> Result<World, LabFileError> {
        parse("t.toml", &format!("{DEFAULT_LAB}\n{extra}"))
    }

    fn line_count() -> usize {
        DEFAULT_LAB.lines().count()
    }

    #[test]
    fn prefix_list_route_refused_with_the_guides_sentence() {
        let err = with(
            "[[route_table]]\nid = \"rtb-0e0e0e0e\"\nvpc = \"vpc-111bbb22\"\n\
             routes = [{ destination = \"pl-1a2b3c4d\", target = \"vpce-11bb22cc\" }]\n",
        )
        .unwrap_err();
        assert_eq!(err.line, line_count() + 5);
        assert_eq!(err.field, "route_table[4].routes[0].destination");
        assert!(
            err.message.contains(
                "You can only add an endpoint route by associating a route table with an endpoint"
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_cidr_names_line_and_field() {
        let err = with("[[vpc]]\nid = \"vpc-22\"\ncidr = \"10.1.0.0/33\"\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (line_count() + 4, "vpc[1].cidr"), "{err}");
    }

    #[test]
    fn bucket_names_and_object_keys_s3_refuses_name_line_and_field() {
        // The object store's rules: `check` must not pass a lab that `up` cannot build.
        for bad in ["ab-.cd", "ab.-cd", "192.168.1.1"] {
            let err = with(&format!("[[bucket]]\nname = \"{bad}\"\n")).unwrap_err();
            assert_eq!(
                (err.line, err.field.as_str()),
                (line_count() + 3, "bucket[3].name"),
                "{err}"
            );
        }
        let err = with(
            "[[bucket]]\nname = \"keys\"\n\n[bucket.objects]\n\"ok.txt\" = \"a\"\n\"\" = \"b\"\n",
        )
        .unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (line_count() + 7, "bucket[3].objects.\"\""),
            "{err}"
        );
        let long = "k".repeat(1025);
        let err =
            with(&format!("[[bucket]]\nname = \"keys\"\nobjects = {{ \"{long}\" = \"b\" }}\n"))
                .unwrap_err();
        assert_eq!(err.line, line_count() + 4, "{err}");
        assert!(err.field.starts_with("bucket[3].objects."), "{err}");
        assert!(err.message.contains("1025"), "{err}");
        assert!(with("[[bucket]]\nname = \"keys\"\nobjects = { \"a/b.txt\" = \"b\" }\n").is_ok());
    }

    #[test]
    fn a_bucket_of_aws_is_no_lab_bucket() {
        // The guide: "The Amazon Linux AMI repositories are Amazon S3 buckets in each region";
        // they are AWS's, in another account, and the lab makes them there itself.
        for name in ["packages.us-east-1.amazonaws.com", "repo.eu-west-1.amazonaws.com"] {
            let err = with(&format!("[[bucket]]\nname = \"{name}\"\n")).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (line_count() + 3, "bucket[3].name"));
            assert!(err.message.contains("AWS owns"), "{err}");
        }
        // Not a region: an ordinary name.
        assert!(with("[[bucket]]\nname = \"repo.example.amazonaws.com\"\n").is_ok());
    }

    #[test]
    fn bucket_policy_checked_as_s3_checks_it() {
        // A policy S3's PutBucketPolicy refuses (MalformedPolicy) is refused in a lab file too,
        // naming the field: no Principal, another bucket's resource, another service's action.
        for (policy, says) in [
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt-one/*"}]}"#,
                "Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:DescribeVpcs","Resource":"arn:aws:s3:::bkt-one/*"}]}"#,
                "invalid action",
            ),
        ] {
            let err = with(&format!("[[bucket]]\nname = \"bkt-one\"\npolicy = '{policy}'\n"))
                .unwrap_err();
            assert_eq!(err.field, "bucket[3].policy", "{err}");
            assert!(err.message.contains(says), "{err}");
        }
        let ok = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:Get*"],"Resource":["arn:aws:s3:::bkt-one","arn:aws:s3:::bkt-one*"]}]}"#;
        with(&format!("[[bucket]]\nname = \"bkt-one\"\npolicy = '{ok}'\n")).unwrap();
        // A lab's own user may be named, by ARN, before or after the bucket in the file; a user
        // that does not exist may not (S3: "Invalid principal in policy").
        let named = |user: &str| {
            format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::123456789012:user/{user}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt-one/*"}}]}}"#
            )
        };
        let lab_user = "[[user]]\nname = \"limited\"\naccess_key = \"AKIALIMITED000000001\"\nsecret_key = \"x\"\n";
        with(&format!(
            "[[bucket]]\nname = \"bkt-one\"\npolicy = '{}'\n{lab_user}",
            named("limited")
        ))
        .unwrap();
        let err =
            with(&format!("[[bucket]]\nname = \"bkt-one\"\npolicy = '{}'\n", named("nobody")))
                .unwrap_err();
        assert!(err.message.contains("Invalid principal in policy"), "{err}");
        let star = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
        let err =
            with(&format!("[[bucket]]\nname = \"bkt-one\"\npolicy = '{star}'\n")).unwrap_err();
        assert!(err.message.contains("Policy has invalid resource"), "{err}");
    }

    #[test]
    fn a_bad_lab_name_is_told_the_lab_names_rule() {
        let text = DEFAULT_LAB.replacen("name = \"demo\"", "name = \"1abc\"", 1);
        assert_ne!(text, DEFAULT_LAB);
        let err = parse("t.toml", &text).unwrap_err();
        assert!(err.message.contains("lab name") && err.message.contains("24"), "{err}");
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_line() {
        let err =
            with("[[vpc]]\nid = \"vpc-22\"\ncidr = \"10.1.0.0/16\"\ncolour = 1\n").unwrap_err();
        assert_eq!(err.line, line_count() + 5, "{err}");
        assert_eq!(err.field, "vpc[1].colour", "{err}");
        assert!(err.message.contains("colour"), "{err}");
    }

    /// TOML errors that are not about syntax name the field: a wrong type, an unknown key, a
    /// missing field, in a `[[table]]`, an inline table or at the top; a syntax error stays
    /// `(syntax)`.
    #[test]
    fn type_key_and_missing_field_errors_name_the_field() {
        let n = line_count();
        let cases: &[(&str, usize, &str, &str)] = &[
            ("[[vpc]]\nid = \"vpc-22\"\ncidr = 16\n", n + 4, "vpc[1].cidr", "invalid type"),
            (
                "[[vpc]]\nid = \"vpc-22\"\ncidr = \"10.1.0.0/16\"\ncolour = 1\n",
                n + 5,
                "vpc[1].colour",
                "colour",
            ),
            ("[[vpc]]\nid = \"vpc-22\"\n", n + 2, "vpc[1].cidr", "missing field `cidr`"),
            (
                "[[route_table]]\nid = \"rtb-0e0e0e0e\"\nvpc = \"vpc-111bbb22\"\n\
                 routes = [{ destination = \"10.9.0.0/16\", target = \"blackhole\" }, \
                 { destination = \"10.8.0.0/16\", target = 7 }]\n",
                n + 5,
                "route_table[4].routes[1].target",
                "invalid type",
            ),
            (
                "[[route_table]]\nid = \"rtb-0e0e0e0e\"\nvpc = \"vpc-111bbb22\"\n\
                 routes = [{ destination = \"10.9.0.0/16\" }]\n",
                n + 5,
                "route_table[4].routes[0].target",
                "missing field `target`",
            ),
            (
                "[[bucket]]\nname = \"keys\"\n[bucket.objects]\n\"a b\" = 5\n",
                n + 5,
                "bucket[3].objects.\"a b\"",
                "invalid type",
            ),
        ];
        for (extra, line, field, says) in cases {
            let err = with(extra).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (*line, *field), "{extra}: {err}");
            assert!(err.message.contains(says), "{err}");
        }
        let err = parse("t.toml", "name = \"lab\"\n").unwrap_err();
        assert_eq!(err.field, "region", "{err}");
        let err = parse(
            "t.toml",
            "name = \"lab\"\nregion = \"us-east-1\"\npolicy_propagation_delay = 5\n",
        )
        .unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "policy_propagation_delay"), "{err}");
        let err = with("[[vpc]\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 2, "(syntax)"), "{err}");
    }

    /// A file that is not UTF-8 is refused with the line of its first bad byte.
    #[test]
    fn a_file_not_utf8_names_the_line() {
        let mut bytes = DEFAULT_LAB.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n# caf\xe9\n");
        let err = parse_bytes("t.toml", &bytes).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (line_count() + 2, "(encoding)"), "{err}");
        assert!(err.message.contains("0xe9") && err.message.contains("UTF-8"), "{err}");
        assert!(parse_bytes("t.toml", DEFAULT_LAB.as_bytes()).is_ok());
    }

    /// Users, internet hosts and endpoints' tables: the field that is wrong, and the duplicate
    /// (not the first) where something is given twice.
    #[test]
    fn duplicates_and_keys_name_their_own_field() {
        let user = |name: &str, key: &str| {
            format!("[[user]]\nname = \"{name}\"\naccess_key = \"{key}\"\nsecret_key = \"s\"\n")
        };
        let n = line_count();
        // The default lab's users: admin (AKIAIOSFODNN7EXAMPLE) and developer.
        let err = with(&user("other", "AKIAIOSFODNN7EXAMPLE")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 4, "user[2].access_key"), "{err}");
        assert!(err.message.contains("AKIAIOSFODNN7EXAMPLE"), "{err}");
        let err = with(&user("admin", "AKIAOTHEREXAMPLE0001")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 3, "user[2].name"), "{err}");
        let err = with(&user("other", "short")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 4, "user[2].access_key"), "{err}");
        assert!(!err.message.contains("policy"), "{err}");
        assert!(err.message.contains("invalid access key 'short'"), "{err}");

        // The default lab's host: check-ip, 198.51.100.10.
        let host =
            |name: &str, ip: &str| format!("[[internet_host]]\nname = \"{name}\"\nip = \"{ip}\"\n");
        let err = with(&host("other", "198.51.100.10")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 4, "internet_host[1].ip"), "{err}");
        assert!(err.message.contains("198.51.100.10"), "{err}");
        let err = with(&host("check-ip", "198.51.100.11")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 3, "internet_host[1].name"), "{err}");
        // A name that would shadow S3's (the resolver answers hosts first).
        let err = with(&host("open-bucket.s3.amazonaws.com", "198.51.100.11")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 3, "internet_host[1].name"), "{err}");
        assert!(err.message.contains("amazonaws.com"), "{err}");
        let err = with(&host("my host", "198.51.100.11")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 3, "internet_host[1].name"), "{err}");

        let err = with(
            "[[endpoint]]\nid = \"vpce-22cc33dd\"\nvpc = \"vpc-111bbb22\"\n\
             service = \"com.amazonaws.us-east-1.s3\"\n\
             route_tables = [\"rtb-0b0b0b0b\", \"rtb-0d0d0d0d\", \"rtb-0b0b0b0b\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "endpoint[1].route_tables[2]", "{err}");
    }

    #[test]
    fn refused_prefix_list_cidr_is_named_by_its_own_field() {
        let pl = |cidrs: &str| {
            format!(
                "[[prefix_list]]\nid = \"pl-1a2b3c4d\"\nname = \"com.amazonaws.us-east-1.s3\"\n\
                 cidrs = [\n  \"54.231.0.0/17\",\n  {cidrs}\n]\n"
            )
        };
        let err = with(&pl("\"10.0.0.0/8\"")).unwrap_err();
        assert_eq!(err.field, "prefix_list[0].cidrs[1]", "{err}");
        assert!(err.message.contains("10.0.0.0/8"), "{err}");
        let text = format!("{DEFAULT_LAB}\n{}", pl("\"10.0.0.0/8\""));
        let line = text.lines().position(|l| l.contains("\"10.0.0.0/8\"")).unwrap() + 1;
        assert_eq!(err.line, line, "{err}");
    }

    #[test]
    fn a_vpc_over_the_labs_fixed_ranges_is_named_by_its_cidr() {
        for cidr in ["54.123.160.0/20", "198.51.100.0/24", "127.0.0.0/16", "169.254.0.0/16"] {
            let err =
                with(&format!("[[vpc]]\nid = \"vpc-0f0f0f0f\"\ncidr = \"{cidr}\"\n")).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (line_count() + 4, "vpc[1].cidr"), "{err}");
            assert!(err.message.contains(&format!("the CIDR '{cidr}' is invalid")), "{err}");
        }
    }

    #[test]
    fn an_endpoint_policy_that_is_not_json_names_the_policy() {
        let ep = "[[endpoint]]\nid = \"vpce-22cc33dd\"\nvpc = \"vpc-111bbb22\"\n\
                  service = \"com.amazonaws.us-east-1.s3\"\npolicy = \"{not json\"\n";
        let err = with(ep).unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (line_count() + 6, "endpoint[1].policy"),
            "{err}"
        );
        // Not JSON, and JSON the policy checks refuse: the same field.
        let err = with(&ep.replace("{not json", "{}")).unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (line_count() + 6, "endpoint[1].policy"),
            "{err}"
        );
    }

    #[test]
    fn contradictory_sections_are_refused_with_line_and_field() {
        let n = line_count();
        // One region's list twice: the second would have replaced the first.
        let pl = |cidr: &str| {
            format!(
                "[[prefix_list]]\nid = \"pl-1a2b3c4d\"\nname = \"com.amazonaws.us-east-1.s3\"\n\
                 cidrs = [\"{cidr}\"]\n"
            )
        };
        let err = with(&format!("{}{}", pl("54.123.160.0/19"), pl("54.123.176.0/20"))).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 8, "prefix_list[1].name"), "{err}");
        // A range twice in one list (the same after its host bits are dropped).
        let err = with(
            "[[prefix_list]]\nid = \"pl-1a2b3c4d\"\nname = \"com.amazonaws.us-east-1.s3\"\n\
             cidrs = [\n  \"54.123.160.0/19\",\n  \"54.123.170.5/19\",\n]\n",
        )
        .unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 7, "prefix_list[0].cidrs[1]"), "{err}");
        // The default ACL's section names a subnet another ACL takes.
        let acls = "[[network_acl]]\nid = \"acl-111bbb22\"\nvpc = \"vpc-111bbb22\"\n\
                    subnets = [\"b\", \"a\"]\n\
                    [[network_acl]]\nid = \"acl-0a0a0a0a\"\nvpc = \"vpc-111bbb22\"\n\
                    subnets = [\"a\"]\n";
        let err = with(acls).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (n + 5, "network_acl[0].subnets[1]"), "{err}");
        assert!(err.message.contains("acl-0a0a0a0a"), "{err}");
        // The default group's description is EC2's, fixed.
        let sg = |d: &str| {
            format!(
                "[[security_group]]\nid = \"sg-111bbb22\"\nname = \"default\"\n\
                 vpc = \"vpc-111bbb22\"\ndescription = \"{d}\"\n"
            )
        };
        with(&sg("default VPC security group")).unwrap();
        let err = with(&sg("mine")).unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (n + 6, "security_group[0].description"),
            "{err}"
        );
        assert!(err.message.contains("default VPC security group"), "{err}");
        // A rule naming another region's prefix list (us-west-2's in a us-east-1 lab).
        let err = with(
            "[[security_group]]\nid = \"sg-0a0a0a0a\"\nname = \"x\"\nvpc = \"vpc-111bbb22\"\n\
             egress = [{ protocol = \"tcp\", ports = \"443\", destination = \"pl-68a54001\" }]\n",
        )
        .unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (n + 6, "security_group[0].egress[0].destination"),
            "{err}"
        );
        assert!(err.message.contains("us-west-2"), "{err}");
    }

    #[test]
    fn second_s3_endpoint_in_a_table_refused() {
        let err = with(
            "[[endpoint]]\nid = \"vpce-22cc33dd\"\nvpc = \"vpc-111bbb22\"\n\
             service = \"com.amazonaws.us-east-1.s3\"\nroute_tables = [\"rtb-0c0c0c0c\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "endpoint[1].route_tables[0]", "{err}");
        assert!(err.message.contains("multiple endpoints to the same service"), "{err}");
    }

    #[test]
    fn cross_region_endpoint_refused() {
        let err = with(
            "[[endpoint]]\nid = \"vpce-22cc33dd\"\nvpc = \"vpc-111bbb22\"\n\
             service = \"com.amazonaws.us-west-2.s3\"\nroute_tables = [\"rtb-0b0b0b0b\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "endpoint[1].service", "{err}");
    }

    #[test]
    fn instance_outside_subnet_refused() {
        let err =
            with("[[instance]]\nid = \"i-0a0a\"\nsubnet = \"a\"\nprivate_ip = \"10.0.2.50\"\n")
                .unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (line_count() + 5, "instance[4].private_ip"));
    }

    const SG_LAB: &str = r#"[[security_group]]
id = "sg-0a0a0a0a"
name = "https-to-s3"
vpc = "vpc-111bbb22"
egress = [{ protocol = "tcp", ports = "443", destination = "pl-1a2b3c4d" }]
ingress = [{ protocol = "tcp", ports = "22", source = "10.0.0.0/16" }, { protocol = "icmp", ports = "8", source = "sg-0a0a0a0a" }]
[[network_acl]]
id = "acl-0a0a0a0a"
vpc = "vpc-111bbb22"
subnets = ["a"]
egress = [{ rule = 100, protocol = "all", action = "allow", cidr = "0.0.0.0/0" }]
ingress = [{ rule = 100, protocol = "tcp", ports = "80", action = "deny", cidr = "198.51.100.0/24" }, { rule = 200, protocol = "all", action = "allow", cidr = "0.0.0.0/0" }]
[[instance]]
id = "i-0e0e0e0e"
subnet = "a"
private_ip = "10.0.1.20"
security_groups = ["sg-0a0a0a0a"]
"#;

    #[test]
    fn security_groups_and_network_acls() {
        let w = with(SG_LAB).unwrap();
        let g = w.security_group("sg-0a0a0a0a").unwrap();
        assert_eq!(g.name, "https-to-s3");
        assert_eq!(g.egress.len(), 1);
        assert_eq!(g.egress[0].peer, Peer::PrefixList("pl-1a2b3c4d".into()));
        assert_eq!(g.egress[0].ports, Ports::Range { from: 443, to: 443 });
        assert_eq!(g.ingress.len(), 2);
        assert_eq!(g.ingress[1].ports, Ports::Icmp { icmp_type: Some(8), code: None });
        assert_eq!(w.instance("i-0e0e0e0e").unwrap().security_groups, ["sg-0a0a0a0a"]);
        // Instances that name no group are in the default group.
        let a = w.instance("i-0a0a0a0a").unwrap();
        assert_eq!(w.instance_groups(a), ["sg-111bbb22"]);
        let (acl, _) = w.subnet_acl("a").unwrap();
        assert_eq!(acl.id, "acl-0a0a0a0a");
        assert_eq!(acl.sorted(false).iter().map(|e| e.rule_number).collect::<Vec<_>>(), [100, 200]);
        assert_eq!(w.subnet_acl("b").unwrap().0.id, "acl-111bbb22");
        // The default lab: one default group and one default ACL.
        let d = parse("demo.toml", DEFAULT_LAB).unwrap();
        assert_eq!(d.security_groups.len(), 1);
        assert_eq!(d.security_groups[0].name, "default");
        assert_eq!(d.network_acls.len(), 1);
        assert!(d.network_acls[0].is_default);
    }

    #[test]
    fn default_group_and_acl_sections_edit_the_defaults() {
        let w = with(
            "[[security_group]]\nid = \"sg-111bbb22\"\nname = \"default\"\nvpc = \"vpc-111bbb22\"\n\
             egress = [{ protocol = \"tcp\", ports = \"443\", destination = \"0.0.0.0/0\" }]\n\
             [[network_acl]]\nid = \"acl-111bbb22\"\nvpc = \"vpc-111bbb22\"\n\
             ingress = [{ rule = 10, protocol = \"udp\", ports = \"53\", action = \"allow\", cidr = \"10.0.0.0/8\" }]\n",
        )
        .unwrap();
        let g = w.security_group("sg-111bbb22").unwrap();
        assert_eq!(g.egress.len(), 1);
        assert_eq!(g.ingress.len(), 1, "the self rule stays");
        let acl = w.network_acl("acl-111bbb22").unwrap();
        assert_eq!(acl.sorted(true).len(), 1, "egress kept");
        assert_eq!(acl.sorted(false)[0].rule_number, 10);
    }

    #[test]
    fn prefix_list_in_a_network_acl_refused_with_the_guides_sentence() {
        let err = with(
            "[[network_acl]]\nid = \"acl-0a0a0a0a\"\nvpc = \"vpc-111bbb22\"\n\
             egress = [{ rule = 100, protocol = \"tcp\", ports = \"443\", action = \"allow\", cidr = \"pl-1a2b3c4d\" }]\n",
        )
        .unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (line_count() + 5, "network_acl[0].egress[0].cidr"),
            "{err}"
        );
        assert!(
            err.message.contains(
                "You cannot use prefix list IDs to create an outbound rule in a network ACL that \
                 allows or denies outbound traffic to the service specified in an endpoint. \
                 Instead, you can use a prefix list ID in an outbound security group rule."
            ),
            "{err}"
        );
    }

    #[test]
    fn security_group_errors_name_line_and_field() {
        let lines = SG_LAB.lines().count();
        let cases: &[(&str, &str, usize, &str)] = &[
            (
                "\"pl-1a2b3c4d\" }]",
                "\"pl-99999999\" }]",
                5,
                "security_group[0].egress[0].destination",
            ),
            ("ports = \"443\"", "ports = \"443-80\"", 5, "security_group[0].egress[0].ports"),
            (
                "protocol = \"tcp\", ports = \"443\"",
                "protocol = \"gre\", ports = \"443\"",
                5,
                "security_group[0].egress[0].protocol",
            ),
            (
                "source = \"sg-0a0a0a0a\"",
                "source = \"sg-0b0b0b0b\"",
                6,
                "security_group[0].ingress[1].source",
            ),
            (
                "destination = \"pl-1a2b3c4d\"",
                "source = \"pl-1a2b3c4d\"",
                5,
                "security_group[0].egress[0].source",
            ),
            ("name = \"https-to-s3\"", "name = \"default\"", 3, "security_group[0].name"),
            ("rule = 200", "rule = 32767", 12, "network_acl[0].ingress[1].rule"),
            ("rule = 200", "rule = 100", 12, "network_acl[0].ingress[1].rule"),
            ("action = \"deny\"", "action = \"drop\"", 12, "network_acl[0].ingress[0].action"),
            ("subnets = [\"a\"]", "subnets = [\"zz\"]", 10, "network_acl[0].subnets[0]"),
            (
                "security_groups = [\"sg-0a0a0a0a\"]",
                "security_groups = [\"sg-0e0e0e0e\"]",
                17,
                "instance[4].security_groups[0]",
            ),
            // The second mention of a group is the duplicate.
            (
                "security_groups = [\"sg-0a0a0a0a\"]",
                "security_groups = [\"sg-0a0a0a0a\", \"sg-0a0a0a0a\"]",
                17,
                "instance[4].security_groups[1]",
            ),
            // A rule without its peer names the missing field (on the rule's line).
            (
                "ports = \"22\", source = \"10.0.0.0/16\"",
                "ports = \"22\"",
                6,
                "security_group[0].ingress[0].source",
            ),
            (
                "ports = \"443\", destination = \"pl-1a2b3c4d\"",
                "ports = \"443\"",
                5,
                "security_group[0].egress[0].destination",
            ),
        ];
        for (from, to, line, field) in cases {
            assert!(SG_LAB.contains(from), "{from}");
            let text = SG_LAB.replacen(from, to, 1);
            assert_eq!(text.lines().count(), lines);
            let err = with(&text).unwrap_err();
            assert_eq!(
                (err.line, err.field.as_str()),
                (line_count() + 1 + line, *field),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn nat_gateway_errors_name_line_and_field() {
        let nat = "[[nat_gateway]]\nid = \"nat-0e0e0e0e\"\nsubnet = \"a\"\npublic_ip = \"203.0.113.50\"\n";
        let w = with(nat).unwrap();
        assert_eq!(w.nat_gateway("nat-0e0e0e0e").unwrap().private_ip.to_string(), "10.0.1.4");
        let cases: &[(&str, &str, usize, &str)] = &[
            ("subnet = \"a\"", "subnet = \"zz\"", 3, "nat_gateway[1].subnet"),
            ("\"203.0.113.50\"", "\"203.0.113.40\"", 4, "nat_gateway[1].public_ip"),
            ("\"203.0.113.50\"", "\"10.9.9.9\"", 4, "nat_gateway[1].public_ip"),
            ("\"203.0.113.50\"", "\"lots\"", 4, "nat_gateway[1].public_ip"),
            ("nat-0e0e0e0e", "nat-zz", 2, "nat_gateway[1].id"),
        ];
        for (from, to, line, field) in cases {
            let err = with(&nat.replacen(from, to, 1)).unwrap_err();
            assert_eq!(
                (err.line, err.field.as_str()),
                (line_count() + 1 + line, *field),
                "{to}: {err}"
            );
        }
        // A route to a NAT gateway that does not exist names the route's target.
        let err = with(
            "[[route_table]]\nid = \"rtb-0e0e0e0e\"\nvpc = \"vpc-111bbb22\"\n\
             routes = [{ destination = \"0.0.0.0/0\", target = \"nat-0f0f0f0f\" }]\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "route_table[4].routes[0].target", "{err}");
        assert!(err.message.contains("nat-0f0f0f0f"), "{err}");
        // An instance at the NAT gateway's address: instances come first, so the gateway's
        // address is the one refused.
        let err =
            with("[[instance]]\nid = \"i-0e0e0e0e\"\nsubnet = \"b\"\nprivate_ip = \"10.0.2.40\"\n")
                .unwrap_err();
        assert_eq!(err.field, "nat_gateway[0].private_ip", "{err}");
    }

    #[test]
    fn reserved_bucket_names_are_refused_naming_line_and_field() {
        // "Bucket names must not start with the prefix xn--" and the other reserved names.
        for (bad, part) in
            [("xn--abc", "xn--"), ("amzn-s3-demo-bucket", "amzn-s3-demo-"), ("b--x-s3", "--x-s3")]
        {
            let err = with(&format!("[[bucket]]\nname = \"{bad}\"\n")).unwrap_err();
            assert_eq!(
                (err.line, err.field.as_str()),
                (line_count() + 3, "bucket[3].name"),
                "{err}"
            );
            assert!(err.message.contains(part), "{err}");
        }
    }
}
