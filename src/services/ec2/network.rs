//! Regions, zones, VPCs, subnets, route tables, routes and internet gateways.

use ipnet::Ipv4Net;

use super::filter::{Values, matches, one};
use super::xml::Xml;
use super::{
    Ctx, Ec2Error, Ec2Outcome, OWNER_ID, apply_tag_specs, changed, check_ids, check_kind, read,
};
use crate::model::{
    Destination, REGIONS, ResourceKind, Route, RouteTable, Subnet, Target, Vpc, World,
    valid_subnet_name,
};

/// The lab's one zone in a region: `<region>a`.
pub fn zone_name(region: &str) -> String {
    format!("{region}a")
}

/// AWS's zone id style: `us-east-1` → `use1-az1`.
pub fn zone_id(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    match parts.as_slice() {
        [a, b, n] => format!("{a}{}{n}-az1", b.chars().next().unwrap_or('x')),
        _ => format!("{region}-az1"),
    }
}

fn cidr_param(ctx: &Ctx, name: &str) -> Result<Ipv4Net, Ec2Error> {
    let v = ctx.p.required(name)?;
    v.parse::<Ipv4Net>().map_err(|_| {
        Ec2Error::invalid(format!(
            "Value ({v}) for parameter {name} is invalid. This is not a valid CIDR block."
        ))
    })
}

fn bool_str(b: bool) -> String {
    if b { "true".into() } else { "false".into() }
}

/// DescribeRegions' filters.
pub(super) const REGION_FILTERS: &[&str] = &["region-name", "endpoint", "opt-in-status"];

pub fn describe_regions(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let names = ctx.p.indexed("RegionName");
    for n in &names {
        if !REGIONS.iter().any(|r| r.name == *n) {
            return Err(Ec2Error::invalid(format!("Invalid region: {n}")));
        }
    }
    let filters = ctx.p.filters(REGION_FILTERS)?;
    let mut x = ctx.xml();
    x.open("regionInfo");
    for r in REGIONS {
        if !names.is_empty() && !names.contains(&r.name) {
            continue;
        }
        let endpoint = format!("ec2.{}.amazonaws.com", r.name);
        let ok = matches(&filters, None, |f| match f {
            "region-name" => one(r.name),
            "endpoint" => one(endpoint.clone()),
            "opt-in-status" => one("opt-in-not-required"),
            _ => None,
        })?;
        if ok {
            x.open("item");
            x.leaf("regionName", r.name);
            x.leaf("regionEndpoint", &endpoint);
            x.leaf("optInStatus", "opt-in-not-required");
            x.close();
        }
    }
    x.close();
    read(x)
}

/// DescribeAvailabilityZones' filters.
pub(super) const ZONE_FILTERS: &[&str] = &[
    "zone-name",
    "zone-id",
    "region-name",
    "state",
    "zone-type",
    "group-name",
    "network-border-group",
    "opt-in-status",
    "message",
];

/// Documented DescribeAvailabilityZones filters about what the lab does not model (Local and
/// Wavelength Zones' parents, long group names): each matches nothing (README, Decisions).
pub(super) const ZONE_FILTERS_NOT_MODELLED: &[&str] =
    &["group-long-name", "parent-zone-id", "parent-zone-name"];

pub fn describe_availability_zones(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let region = ctx.region;
    let (zone, id) = (zone_name(region), zone_id(region));
    let names = ctx.p.indexed("ZoneName");
    let ids = ctx.p.indexed("ZoneId");
    for n in &names {
        if *n != zone {
            return Err(Ec2Error::invalid(format!("Invalid availability zone: [{n}]")));
        }
    }
    for n in &ids {
        if *n != id {
            return Err(Ec2Error::invalid(format!("Invalid availability zone id: [{n}]")));
        }
    }
    let filters = ctx.p.filters_with(ZONE_FILTERS, ZONE_FILTERS_NOT_MODELLED)?;
    let ok = matches(&filters, None, |f| match f {
        "zone-name" => one(zone.clone()),
        "zone-id" => one(id.clone()),
        "region-name" => one(region),
        "state" => one("available"),
        "zone-type" => one("availability-zone"),
        "group-name" | "network-border-group" => one(region),
        "opt-in-status" => one("opt-in-not-required"),
        // The zone has no messages (`messageSet` is empty).
        "message" => Some(Vec::new()),
        _ => None,
    })?;
    let mut x = ctx.xml();
    x.open("availabilityZoneInfo");
    if ok {
        x.open("item");
        x.leaf("zoneName", &zone);
        x.leaf("zoneState", "available");
        x.leaf("regionName", region);
        x.leaf("zoneId", &id);
        x.leaf("zoneType", "availability-zone");
        x.leaf("optInStatus", "opt-in-not-required");
        x.leaf("groupName", region);
        x.leaf("networkBorderGroup", region);
        x.open("messageSet");
        x.close();
        x.close();
    }
    x.close();
    read(x)
}

fn vpc_xml(x: &mut Xml, w: &World, v: &Vpc) {
    x.leaf("vpcId", &v.id);
    x.leaf("ownerId", OWNER_ID);
    x.leaf("state", "available");
    x.leaf("cidrBlock", &v.cidr.to_string());
    x.list("cidrBlockAssociationSet", [v], |x, v| {
        // The VPC's one CIDR association, named after the VPC.
        x.leaf("associationId", &vpc_cidr_association(v));
        x.leaf("cidrBlock", &v.cidr.to_string());
        x.open("cidrBlockState");
        x.leaf("state", "associated");
        x.close();
    });
    x.leaf("dhcpOptionsId", "default");
    x.leaf("instanceTenancy", "default");
    x.bool("isDefault", false);
    x.tag_set(w.tags_of(&v.id));
}

pub fn create_vpc(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let cidr = cidr_param(ctx, "CidrBlock")?;
    let mut w = ctx.world.clone();
    let id = w.generate_id("vpc");
    w.add_vpc(Vpc {
        id: id.clone(),
        cidr,
        enable_dns_support: true,
        main_route_table: None,
        main_association_id: None,
    })?;
    // Like AWS, a new VPC comes with its main route table holding only the local route.
    let rtb = w.generate_id("rtb");
    w.add_route_table(&rtb, &id)?;
    apply_tag_specs(ctx, &mut w, &id, "vpc", &[])?;
    let mut x = ctx.xml();
    x.open("vpc");
    if let Some(v) = w.vpc(&id) {
        vpc_xml(&mut x, &w, v);
    }
    x.close();
    changed(w, x)
}

/// DescribeVpcs' filters (besides tags).
pub(super) const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidrBlock",
    "cidr-block-association.cidr-block",
    "state",
    "is-default",
    "owner-id",
    "dhcp-options-id",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
];

/// Documented DescribeVpcs filters about what the lab does not model (IPv6): each matches
/// nothing (README, Decisions).
pub(super) const VPC_FILTERS_NOT_MODELLED: &[&str] = &[
    "ipv6-cidr-block-association.association-id",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "ipv6-cidr-block-association.ipv6-pool",
    "ipv6-cidr-block-association.state",
];

/// The id of a VPC's one CIDR block association, named after the VPC.
fn vpc_cidr_association(v: &Vpc) -> String {
    format!("vpc-cidr-assoc-{}", v.id.trim_start_matches("vpc-"))
}

pub fn describe_vpcs(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("VpcId");
    check_ids(w, &ids, ResourceKind::Vpc)?;
    let filters = ctx.p.filters_with(VPC_FILTERS, VPC_FILTERS_NOT_MODELLED)?;
    let mut chosen = Vec::new();
    for v in &w.vpcs {
        if !ids.is_empty() && !ids.contains(&v.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&v.id), |f| match f {
            "vpc-id" => one(&v.id),
            "cidr" | "cidr-block" | "cidrBlock" | "cidr-block-association.cidr-block" => {
                one(v.cidr.to_string())
            }
            "state" => one("available"),
            "is-default" => one("false"),
            "owner-id" => one(OWNER_ID),
            "dhcp-options-id" => one("default"),
            "cidr-block-association.association-id" => one(vpc_cidr_association(v)),
            "cidr-block-association.state" => one("associated"),
            _ => None,
        })?;
        if ok {
            chosen.push(v);
        }
    }
    let page = ctx.paging.page(chosen, |v| v.id.clone());
    let mut x = ctx.xml();
    x.list("vpcSet", page.items, |x, v| vpc_xml(x, w, v));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// ModifyVpcAttribute: `EnableDnsSupport.Value` (from the guide: "You must enable DNS
/// resolution in your VPC"). One attribute per call, as AWS requires.
pub fn modify_vpc_attribute(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("VpcId")?;
    check_kind(ctx.world, id, ResourceKind::Vpc)?;
    let value = match (ctx.p.get("EnableDnsSupport.Value"), ctx.p.get("EnableDnsHostnames.Value")) {
        (Some(v), None) => v,
        (None, Some(_)) => {
            return Err(Ec2Error::invalid(
                "vpcsim simulates enableDnsSupport only, not enableDnsHostnames",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "Fields for multiple attribute types specified: enableDnsSupport, enableDnsHostnames",
            ));
        }
        (None, None) => {
            return Err(Ec2Error::new(
                "MissingParameter",
                "The request must contain the parameter EnableDnsSupport",
            ));
        }
    };
    let on = match value.to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(Ec2Error::invalid(format!(
                "Invalid value '{value}' for EnableDnsSupport.Value"
            )));
        }
    };
    let mut w = ctx.world.clone();
    if let Some(v) = w.vpcs.iter_mut().find(|v| v.id == id) {
        v.enable_dns_support = on;
    }
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// DescribeVpcAttribute: `Attribute=enableDnsSupport`.
pub fn describe_vpc_attribute(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("VpcId")?;
    check_kind(ctx.world, id, ResourceKind::Vpc)?;
    let attribute = ctx.p.required("Attribute")?;
    let Some(vpc) = ctx.world.vpc(id) else {
        return Err(Ec2Error::new(
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{id}' does not exist"),
        ));
    };
    let mut x = ctx.xml();
    x.leaf("vpcId", id);
    match attribute {
        "enableDnsSupport" => {
            x.open("enableDnsSupport");
            x.bool("value", vpc.enable_dns_support);
            x.close();
        }
        "enableDnsHostnames" => {
            x.open("enableDnsHostnames");
            x.bool("value", false);
            x.close();
        }
        other => {
            return Err(Ec2Error::invalid(format!(
                "Value ({other}) for parameter attribute is invalid"
            )));
        }
    }
    read(x)
}

pub fn delete_vpc(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("VpcId")?;
    check_kind(ctx.world, id, ResourceKind::Vpc)?;
    let mut w = ctx.world.clone();
    w.delete_vpc(id)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

fn subnet_xml(x: &mut Xml, w: &World, s: &Subnet) {
    x.leaf("subnetId", &s.id);
    x.leaf("subnetArn", &subnet_arn(w, s));
    x.leaf("state", "available");
    x.leaf("ownerId", OWNER_ID);
    x.leaf("vpcId", &s.vpc);
    x.leaf("cidrBlock", &s.cidr.to_string());
    x.leaf("availableIpAddressCount", &available_ips(w, s).to_string());
    x.leaf("availabilityZone", &zone_name(&w.region));
    x.leaf("availabilityZoneId", &zone_id(&w.region));
    x.bool("defaultForAz", false);
    x.bool("mapPublicIpOnLaunch", false);
    x.bool("assignIpv6AddressOnCreation", false);
    x.bool("mapCustomerOwnedIpOnLaunch", false);
    x.bool("enableDns64", false);
    x.bool("ipv6Native", false);
    // The lab's hostnames are IP names (`ip-10-0-1-10.ec2.internal`), without DNS records for
    // instance ids.
    x.open("privateDnsNameOptionsOnLaunch");
    x.leaf("hostnameType", "ip-name");
    x.bool("enableResourceNameDnsARecord", false);
    x.bool("enableResourceNameDnsAAAARecord", false);
    x.close();
    x.tag_set(w.tags_of(&s.id));
}

/// A namespace-friendly name for a new subnet: its `Name` tag when that is a valid, unused
/// subnet name, else the first free `sN`.
fn new_subnet_name(ctx: &Ctx, w: &World) -> Result<String, Ec2Error> {
    let free = |n: &str| valid_subnet_name(n) && !w.subnets.iter().any(|s| s.name == n);
    for spec in ctx.p.tag_specs()? {
        if let Some((_, v)) = spec.tags.iter().find(|(k, _)| k == "Name")
            && free(v)
        {
            return Ok(v.clone());
        }
    }
    Ok((1..).map(|i| format!("s{i}")).find(|n| free(n)).unwrap_or_default())
}

pub fn create_subnet(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let vpc = ctx.p.required("VpcId")?;
    let cidr = cidr_param(ctx, "CidrBlock")?;
    check_kind(ctx.world, vpc, ResourceKind::Vpc)?;
    let zone = zone_name(&ctx.world.region);
    if let Some(az) = ctx.p.get("AvailabilityZone")
        && az != zone
    {
        return Err(Ec2Error::invalid(format!(
            "Value ({az}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {zone}."
        )));
    }
    let mut w = ctx.world.clone();
    // A lab-file VPC whose file named no route table gets its main table now.
    if w.main_route_table(vpc).is_none() {
        let rtb = w.generate_id("rtb");
        w.add_route_table(&rtb, vpc)?;
    }
    let id = w.generate_id("subnet");
    let name = new_subnet_name(ctx, &w)?;
    w.add_subnet(Subnet {
        id: id.clone(),
        name,
        vpc: vpc.to_string(),
        cidr,
        route_table: String::new(),
        association_id: None,
    })?;
    apply_tag_specs(ctx, &mut w, &id, "subnet", &[])?;
    let mut x = ctx.xml();
    x.open("subnet");
    if let Some(s) = w.subnet(&id) {
        subnet_xml(&mut x, &w, s);
    }
    x.close();
    changed(w, x)
}

/// DescribeSubnets' filters (besides tags).
pub(super) const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidrBlock",
    "state",
    "availability-zone",
    "availabilityZone",
    "availability-zone-id",
    "default-for-az",
    "defaultForAz",
    "owner-id",
    "available-ip-address-count",
    "map-public-ip-on-launch",
    "subnet-arn",
    "enable-dns64",
    "ipv6-native",
    "map-customer-owned-ip-on-launch",
    "private-dns-name-options-on-launch.hostname-type",
    "private-dns-name-options-on-launch.enable-resource-name-dns-a-record",
    "private-dns-name-options-on-launch.enable-resource-name-dns-aaaa-record",
];

/// Documented DescribeSubnets filters about what the lab does not model (IPv6, Outposts,
/// customer-owned addresses, network cards): each matches nothing (README, Decisions).
pub(super) const SUBNET_FILTERS_NOT_MODELLED: &[&str] = &[
    "customer-owned-ipv4-pool",
    "enable-lni-at-device-index",
    "ipv6-cidr-block-association.association-id",
    "ipv6-cidr-block-association.ipv6-cidr-block",
    "ipv6-cidr-block-association.state",
    "outpost-arn",
];

/// "The number of unused private IPv4 addresses in the subnet" (EC2 API Reference, Subnet):
/// less AWS's five reserved ones and every interface's (instances, NAT gateways).
fn available_ips(w: &World, s: &Subnet) -> u64 {
    let size = 1u64 << (32 - s.cidr.prefix_len());
    size.saturating_sub(5 + w.private_ips_used_in(s))
}

fn subnet_arn(w: &World, s: &Subnet) -> String {
    format!("arn:aws:ec2:{}:{OWNER_ID}:subnet/{}", w.region, s.id)
}

pub fn describe_subnets(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("SubnetId");
    check_ids(w, &ids, ResourceKind::Subnet)?;
    let filters = ctx.p.filters_with(SUBNET_FILTERS, SUBNET_FILTERS_NOT_MODELLED)?;
    let zone = zone_name(&w.region);
    let mut chosen = Vec::new();
    for s in &w.subnets {
        if !ids.is_empty() && !ids.contains(&s.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&s.id), |f| match f {
            "subnet-id" => one(&s.id),
            "vpc-id" => one(&s.vpc),
            "cidr" | "cidr-block" | "cidrBlock" => one(s.cidr.to_string()),
            "state" => one("available"),
            "availability-zone" | "availabilityZone" => one(zone.clone()),
            "availability-zone-id" => one(zone_id(&w.region)),
            "default-for-az" | "defaultForAz" => one("false"),
            "owner-id" => one(OWNER_ID),
            "available-ip-address-count" => one(available_ips(w, s).to_string()),
            "subnet-arn" => one(subnet_arn(w, s)),
            "map-public-ip-on-launch"
            | "enable-dns64"
            | "ipv6-native"
            | "map-customer-owned-ip-on-launch"
            | "private-dns-name-options-on-launch.enable-resource-name-dns-a-record"
            | "private-dns-name-options-on-launch.enable-resource-name-dns-aaaa-record" => {
                one("false")
            }
            "private-dns-name-options-on-launch.hostname-type" => one("ip-name"),
            _ => None,
        })?;
        if ok {
            chosen.push(s);
        }
    }
    let page = ctx.paging.page(chosen, |s| s.id.clone());
    let mut x = ctx.xml();
    x.list("subnetSet", page.items, |x, s| subnet_xml(x, w, s));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

pub fn delete_subnet(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("SubnetId")?;
    check_kind(ctx.world, id, ResourceKind::Subnet)?;
    let mut w = ctx.world.clone();
    w.delete_subnet(id)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// Whether a route is usable (AWS's `active`) or not (`blackhole`): a blackhole route, or one
/// to an internet gateway not attached to the table's VPC, a deleted endpoint, a deleted NAT
/// gateway or a terminated instance.
fn route_state(w: &World, vpc: &str, target: &Target) -> &'static str {
    if w.target_alive(target, vpc) { "active" } else { "blackhole" }
}

/// The `gatewayId` of a route (local, igw-, vpce-); NAT gateways and instances have their own
/// elements.
fn gateway_id(target: &Target) -> Option<String> {
    match target {
        Target::Local | Target::Igw(_) | Target::Vpce(_) => Some(target.to_string()),
        Target::Nat(_) | Target::Instance(_) | Target::Blackhole => None,
    }
}

/// One association as DescribeRouteTables shows it: (id, main, subnet).
fn associations<'a>(w: &'a World, t: &'a RouteTable) -> Vec<(&'a str, bool, Option<&'a str>)> {
    let mut out = Vec::new();
    if let Some(v) = w.vpc(&t.vpc)
        && v.main_route_table.as_deref() == Some(t.id.as_str())
        && let Some(a) = &v.main_association_id
    {
        out.push((a.as_str(), true, None));
    }
    for s in w.subnets.iter().filter(|s| s.route_table == t.id) {
        if let Some(a) = &s.association_id {
            out.push((a.as_str(), false, Some(s.id.as_str())));
        }
    }
    out
}

fn route_table_xml(x: &mut Xml, w: &World, t: &RouteTable) {
    x.leaf("routeTableId", &t.id);
    x.leaf("vpcId", &t.vpc);
    x.leaf("ownerId", OWNER_ID);
    x.list("routeSet", w.effective_routes(&t.id), |x, r| {
        match &r.destination {
            Destination::Cidr(c) => x.leaf("destinationCidrBlock", &c.to_string()),
            Destination::PrefixList(pl) => x.leaf("destinationPrefixListId", pl),
        }
        match &r.target {
            Target::Local | Target::Igw(_) | Target::Vpce(_) => {
                x.leaf("gatewayId", &r.target.to_string())
            }
            Target::Nat(id) => x.leaf("natGatewayId", id),
            Target::Instance(id) => {
                x.leaf("instanceId", id);
                x.leaf("instanceOwnerId", OWNER_ID);
                // The instance's primary interface, which EC2 routes to (botocore, Route
                // `NetworkInterfaceId`: "The ID of the network interface").
                x.leaf("networkInterfaceId", &super::instances::instance_eni(id));
            }
            Target::Blackhole => {}
        }
        x.leaf("state", route_state(w, &t.vpc, &r.target));
        // AWS: the local route's origin is CreateRouteTable; user routes and the endpoint
        // routes of gateway endpoints show CreateRoute.
        let origin = if r.target == Target::Local { "CreateRouteTable" } else { "CreateRoute" };
        x.leaf("origin", origin);
    });
    x.list("associationSet", associations(w, t), |x, (id, main, subnet)| {
        x.leaf("routeTableAssociationId", id);
        x.leaf("routeTableId", &t.id);
        x.leaf_opt("subnetId", subnet);
        x.bool("main", main);
        x.open("associationState");
        x.leaf("state", "associated");
        x.close();
    });
    x.open("propagatingVgwSet");
    x.close();
    x.tag_set(w.tags_of(&t.id));
}

pub fn create_route_table(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let vpc = ctx.p.required("VpcId")?;
    check_kind(ctx.world, vpc, ResourceKind::Vpc)?;
    let mut w = ctx.world.clone();
    let id = w.generate_id("rtb");
    w.create_route_table(&id, vpc)?;
    apply_tag_specs(ctx, &mut w, &id, "route-table", &[])?;
    let mut x = ctx.xml();
    x.open("routeTable");
    if let Some(t) = w.route_table(&id) {
        route_table_xml(&mut x, &w, t);
    }
    x.close();
    // botocore, CreateRouteTableResult: "Unique, case-sensitive identifier to ensure the
    // idempotency of the request. Only returned if a client token was provided in the request."
    x.leaf_opt("clientToken", ctx.p.get("ClientToken"));
    changed(w, x)
}

/// DescribeRouteTables' filters (besides tags).
pub(super) const ROUTE_TABLE_FILTERS: &[&str] = &[
    "route-table-id",
    "vpc-id",
    "owner-id",
    "association.route-table-association-id",
    "association.route-table-id",
    "association.subnet-id",
    "association.main",
    "association.gateway-id",
    "route.gateway-id",
    "route.nat-gateway-id",
    "route.instance-id",
    "route.destination-cidr-block",
    "route.destination-prefix-list-id",
    "route.origin",
    "route.state",
    "route.destination-ipv6-cidr-block",
    "route.egress-only-internet-gateway-id",
    "route.transit-gateway-id",
    "route.vpc-peering-connection-id",
];

pub fn describe_route_tables(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("RouteTableId");
    check_ids(w, &ids, ResourceKind::RouteTable)?;
    let filters = ctx.p.filters(ROUTE_TABLE_FILTERS)?;
    let mut chosen = Vec::new();
    for t in &w.route_tables {
        if !ids.is_empty() && !ids.contains(&t.id.as_str()) {
            continue;
        }
        let assocs = associations(w, t);
        let routes = w.effective_routes(&t.id);
        let ok = matches(&filters, w.tags_of(&t.id), |f| -> Values {
            Some(match f {
                "route-table-id" => vec![t.id.clone()],
                "vpc-id" => vec![t.vpc.clone()],
                "owner-id" => vec![OWNER_ID.into()],
                "association.route-table-association-id" => {
                    assocs.iter().map(|a| a.0.to_string()).collect()
                }
                "association.route-table-id" => {
                    if assocs.is_empty() {
                        vec![]
                    } else {
                        vec![t.id.clone()]
                    }
                }
                "association.subnet-id" => {
                    assocs.iter().filter_map(|a| a.2.map(str::to_string)).collect()
                }
                // One value per association: EC2 "Route tables that do not have an
                // association ID are not returned in the response" for this filter.
                "association.main" => assocs.iter().map(|a| bool_str(a.1).to_string()).collect(),
                "route.gateway-id" => routes.iter().filter_map(|r| gateway_id(&r.target)).collect(),
                "route.nat-gateway-id" => routes
                    .iter()
                    .filter_map(|r| match &r.target {
                        Target::Nat(id) => Some(id.clone()),
                        _ => None,
                    })
                    .collect(),
                "route.instance-id" => routes
                    .iter()
                    .filter_map(|r| match &r.target {
                        Target::Instance(id) => Some(id.clone()),
                        _ => None,
                    })
                    .collect(),
                "route.destination-cidr-block" => routes
                    .iter()
                    .filter_map(|r| match &r.destination {
                        Destination::Cidr(c) => Some(c.to_string()),
                        _ => None,
                    })
                    .collect(),
                "route.destination-prefix-list-id" => routes
                    .iter()
                    .filter_map(|r| match &r.destination {
                        Destination::PrefixList(p) => Some(p.clone()),
                        _ => None,
                    })
                    .collect(),
                "route.origin" => routes
                    .iter()
                    .map(|r| {
                        if r.target == Target::Local { "CreateRouteTable" } else { "CreateRoute" }
                            .to_string()
                    })
                    .collect(),
                "route.state" => {
                    routes.iter().map(|r| route_state(w, &t.vpc, &r.target).to_string()).collect()
                }
                // Filters EC2 documents for things the lab does not have (IPv6, peering,
                // transit and egress-only gateways, gateway associations): valid, no value.
                "association.gateway-id"
                | "route.destination-ipv6-cidr-block"
                | "route.egress-only-internet-gateway-id"
                | "route.transit-gateway-id"
                | "route.vpc-peering-connection-id" => vec![],
                _ => return None,
            })
        })?;
        if ok {
            chosen.push(t);
        }
    }
    let page = ctx.paging.page(chosen, |t| t.id.clone());
    let mut x = ctx.xml();
    x.list("routeTableSet", page.items, |x, t| route_table_xml(x, w, t));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

pub fn delete_route_table(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("RouteTableId")?;
    check_kind(ctx.world, id, ResourceKind::RouteTable)?;
    let mut w = ctx.world.clone();
    w.delete_route_table(id)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn associate_route_table(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let table = ctx.p.required("RouteTableId")?;
    if ctx.p.get("GatewayId").is_some() {
        return Err(Ec2Error::invalid("edge associations with gateways are not simulated"));
    }
    let subnet = ctx.p.required("SubnetId")?;
    check_kind(ctx.world, table, ResourceKind::RouteTable)?;
    check_kind(ctx.world, subnet, ResourceKind::Subnet)?;
    let mut w = ctx.world.clone();
    let assoc = w.associate_route_table(table, subnet)?;
    let mut x = ctx.xml();
    x.leaf("associationId", &assoc);
    x.open("associationState");
    x.leaf("state", "associated");
    x.close();
    changed(w, x)
}

pub fn disassociate_route_table(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let assoc = ctx.p.required("AssociationId")?;
    let mut w = ctx.world.clone();
    w.disassociate_route_table(assoc)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn replace_route_table_association(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let assoc = ctx.p.required("AssociationId")?;
    let table = ctx.p.required("RouteTableId")?;
    check_kind(ctx.world, table, ResourceKind::RouteTable)?;
    let mut w = ctx.world.clone();
    let new = w.replace_route_table_association(assoc, table)?;
    let mut x = ctx.xml();
    x.leaf("newAssociationId", &new);
    x.open("associationState");
    x.leaf("state", "associated");
    x.close();
    changed(w, x)
}

/// The destination and target of CreateRoute / ReplaceRoute: exactly one of `GatewayId`
/// (`igw-…`, or `local`), `NatGatewayId` and `InstanceId` (a NAT instance). Endpoint routes are
/// refused with the guide's sentence: "You cannot explicitly add, modify, or delete an endpoint
/// route in your route table by using the route table APIs".
fn route_params(ctx: &Ctx) -> Result<Route, Ec2Error> {
    let destination = destination_param(ctx)?;
    if ctx.p.get("VpcEndpointId").is_some() {
        return Err(crate::model::ModelError::ExplicitEndpointRoute.into());
    }
    for unsupported in [
        "NetworkInterfaceId",
        "VpcPeeringConnectionId",
        "TransitGatewayId",
        "EgressOnlyInternetGatewayId",
        "LocalGatewayId",
        "CarrierGatewayId",
        "CoreNetworkArn",
        "OdbNetworkArn",
    ] {
        if ctx.p.get(unsupported).is_some() {
            return Err(Ec2Error::invalid(format!(
                "{unsupported}: only internet gateway, NAT gateway and instance targets are \
                 simulated"
            )));
        }
    }
    let given: Vec<(&str, &str)> = ["GatewayId", "NatGatewayId", "InstanceId"]
        .into_iter()
        .filter_map(|name| ctx.p.get(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
        .collect();
    let target = match given.as_slice() {
        [] => {
            return Err(Ec2Error::new(
                "MissingParameter",
                "The request must contain the parameter GatewayId, NatGatewayId or InstanceId",
            ));
        }
        [("NatGatewayId", id)] => Target::Nat(id.to_string()),
        [("InstanceId", id)] => Target::Instance(id.to_string()),
        [(_, gw)] => match *gw {
            "local" => Target::Local,
            g if g.starts_with("vpce-") => {
                return Err(crate::model::ModelError::ExplicitEndpointRoute.into());
            }
            g if g.starts_with("igw-") => Target::Igw(g.to_string()),
            // AWS takes a NAT gateway given as GatewayId and stores it as NatGatewayId.
            g if g.starts_with("nat-") => Target::Nat(g.to_string()),
            g => {
                return Err(Ec2Error::new(
                    "InvalidGatewayID.NotFound",
                    format!("The gateway ID '{g}' does not exist"),
                ));
            }
        },
        _ => {
            let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                format!("a route has one target; got {}", names.join(" and ")),
            ));
        }
    };
    Ok(Route { destination, target })
}

fn destination_param(ctx: &Ctx) -> Result<Ipv4Net, Ec2Error> {
    if ctx.p.get("DestinationPrefixListId").is_some() {
        // The lab's prefix lists are AWS-managed service lists: a route to one is an endpoint
        // route, which only an endpoint association creates.
        return Err(crate::model::ModelError::ExplicitEndpointRoute.into());
    }
    if ctx.p.get("DestinationIpv6CidrBlock").is_some() {
        return Err(Ec2Error::invalid("IPv6 routes are not simulated"));
    }
    cidr_param(ctx, "DestinationCidrBlock")
}

pub fn create_route(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let table = ctx.p.required("RouteTableId")?;
    check_kind(ctx.world, table, ResourceKind::RouteTable)?;
    let route = route_params(ctx)?;
    let mut w = ctx.world.clone();
    w.add_route(table, route)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn replace_route(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let table = ctx.p.required("RouteTableId")?;
    check_kind(ctx.world, table, ResourceKind::RouteTable)?;
    let route = route_params(ctx)?;
    let mut w = ctx.world.clone();
    w.replace_route(table, route)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn delete_route(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let table = ctx.p.required("RouteTableId")?;
    check_kind(ctx.world, table, ResourceKind::RouteTable)?;
    let destination = destination_param(ctx)?;
    let mut w = ctx.world.clone();
    w.delete_route(table, destination)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

fn igw_xml(x: &mut Xml, w: &World, g: &crate::model::InternetGateway) {
    x.leaf("internetGatewayId", &g.id);
    x.leaf("ownerId", OWNER_ID);
    x.list("attachmentSet", g.vpc.iter(), |x, v| {
        x.leaf("vpcId", v);
        x.leaf("state", "available");
    });
    x.tag_set(w.tags_of(&g.id));
}

pub fn create_internet_gateway(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let mut w = ctx.world.clone();
    let id = w.generate_id("igw");
    w.add_internet_gateway(crate::model::InternetGateway { id: id.clone(), vpc: None })?;
    apply_tag_specs(ctx, &mut w, &id, "internet-gateway", &[])?;
    let mut x = ctx.xml();
    x.open("internetGateway");
    if let Some(g) = w.igw(&id) {
        igw_xml(&mut x, &w, g);
    }
    x.close();
    changed(w, x)
}

fn igw_vpc_params<'a>(ctx: &Ctx<'a>) -> Result<(&'a str, &'a str), Ec2Error> {
    let igw = ctx.p.required("InternetGatewayId")?;
    let vpc = ctx.p.required("VpcId")?;
    check_kind(ctx.world, igw, ResourceKind::InternetGateway)?;
    check_kind(ctx.world, vpc, ResourceKind::Vpc)?;
    Ok((igw, vpc))
}

pub fn attach_internet_gateway(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let (igw, vpc) = igw_vpc_params(ctx)?;
    let mut w = ctx.world.clone();
    w.attach_internet_gateway(igw, vpc)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn detach_internet_gateway(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let (igw, vpc) = igw_vpc_params(ctx)?;
    let mut w = ctx.world.clone();
    w.detach_internet_gateway(igw, vpc)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn delete_internet_gateway(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let igw = ctx.p.required("InternetGatewayId")?;
    check_kind(ctx.world, igw, ResourceKind::InternetGateway)?;
    let mut w = ctx.world.clone();
    w.delete_internet_gateway(igw)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// DescribeInternetGateways' filters (besides tags).
pub(super) const INTERNET_GATEWAY_FILTERS: &[&str] =
    &["internet-gateway-id", "attachment.vpc-id", "attachment.state", "owner-id"];

pub fn describe_internet_gateways(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("InternetGatewayId");
    check_ids(w, &ids, ResourceKind::InternetGateway)?;
    let filters = ctx.p.filters(INTERNET_GATEWAY_FILTERS)?;
    let mut chosen = Vec::new();
    for g in &w.internet_gateways {
        if !ids.is_empty() && !ids.contains(&g.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&g.id), |f| match f {
            "internet-gateway-id" => one(&g.id),
            "attachment.vpc-id" => Some(g.vpc.iter().cloned().collect()),
            "attachment.state" => Some(g.vpc.iter().map(|_| "available".to_string()).collect()),
            "owner-id" => one(OWNER_ID),
            _ => None,
        })?;
        if ok {
            chosen.push(g);
        }
    }
    let page = ctx.paging.page(chosen, |g| g.id.clone());
    let mut x = ctx.xml();
    x.list("internetGatewaySet", page.items, |x, g| igw_xml(x, w, g));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}
