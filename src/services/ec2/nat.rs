//! Elastic IP addresses and NAT gateways: AllocateAddress, AssociateAddress,
//! DisassociateAddress, ReleaseAddress, DescribeAddresses, CreateNatGateway,
//! DescribeNatGateways, DeleteNatGateway. Routes to NAT gateways and NAT instances are in
//! [`super::network`], the source/destination check in [`super::instances`].
//!
//! Every address is a VPC address (`domain` `vpc`): EC2-Classic's `PublicIp`-only forms are
//! refused as AWS refuses them for a VPC. Only public NAT gateways are simulated; a new gateway is
//! `pending` in the CreateNatGateway answer, as on AWS, but forwards at once and is `available`
//! from the next call on.

use std::net::Ipv4Addr;

use super::filter::{Values, matches, one};
use super::xml::Xml;
use super::{
    Ctx, Ec2Error, Ec2Outcome, OWNER_ID, apply_tag_specs, changed, check_ids, check_kind, read,
};
use crate::model::{ElasticIp, NatGateway, NatState, ResourceKind, World};

/// NAT gateways have no creation time in the model (the API is clock-free): every gateway shows
/// the day NAT gateways launched, and a deleted one the same day.
const CREATE_TIME: &str = "2015-12-17T00:00:00.000Z";

/// The Elastic IP pool every address comes from (AWS's own).
const POOL: &str = "amazon";

/// The network interface a NAT gateway's addresses sit on. The lab has no ENIs; AWS shows one
/// for every NAT gateway, so its id is derived from the gateway's (`nat-0b0b…` → `eni-0b0b…`).
fn nat_eni(nat: &str) -> String {
    format!("eni-{}", nat.trim_start_matches("nat-"))
}

/// The private address an Elastic IP maps to: its instance's or its NAT gateway's.
fn eip_private_ip(w: &World, e: &ElasticIp) -> Option<Ipv4Addr> {
    if let Some(i) = e.instance.as_deref().and_then(|i| w.instance(i)) {
        return Some(i.private_ip);
    }
    e.nat_gateway.as_deref().and_then(|n| w.nat_gateway(n)).map(|n| n.private_ip)
}

/// The network interface an Elastic IP is associated with, if any.
fn address_eni(e: &ElasticIp) -> Option<String> {
    match (&e.nat_gateway, &e.instance) {
        (Some(nat), _) => Some(nat_eni(nat)),
        (None, Some(i)) => Some(super::instances::instance_eni(i)),
        (None, None) => None,
    }
}

fn address_xml(x: &mut Xml, w: &World, e: &ElasticIp) {
    x.leaf("publicIp", &e.public_ip.to_string());
    x.leaf("allocationId", &e.allocation_id);
    x.leaf("domain", "vpc");
    x.leaf_opt("associationId", e.association_id.as_deref());
    // AWS shows no instanceId for an address a NAT gateway uses, only its interface.
    x.leaf_opt("instanceId", e.instance.as_deref());
    // The interface the address is on: the NAT gateway's, or the instance's primary one
    // (DescribeInstances' networkInterfaceSet).
    if let Some(eni) = address_eni(e) {
        x.leaf("networkInterfaceId", &eni);
        x.leaf("networkInterfaceOwnerId", OWNER_ID);
    }
    x.leaf_opt("privateIpAddress", eip_private_ip(w, e).map(|ip| ip.to_string()).as_deref());
    x.leaf("publicIpv4Pool", POOL);
    x.leaf("networkBorderGroup", &w.region);
    x.tag_set(w.tags_of(&e.allocation_id));
}

/// AllocateAddress: `Domain` `vpc` (or none), optionally a specific `Address` of the lab's public
/// range.
pub fn allocate_address(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    match ctx.p.get("Domain") {
        None | Some("vpc") => {}
        Some("standard") => {
            return Err(Ec2Error::invalid(
                "EC2-Classic addresses (Domain standard) are not simulated: use Domain vpc",
            ));
        }
        Some(d) => {
            return Err(Ec2Error::invalid(format!(
                "Value ({d}) for parameter domain is invalid. Use vpc"
            )));
        }
    }
    for unsupported in ["PublicIpv4Pool", "CustomerOwnedIpv4Pool", "IpamPoolId"] {
        if ctx.p.get(unsupported).is_some() {
            return Err(Ec2Error::invalid(format!(
                "{unsupported}: only Amazon's pool is simulated (addresses of 203.0.113.0/24)"
            )));
        }
    }
    if let Some(g) = ctx.p.get("NetworkBorderGroup")
        && g != ctx.world.region
    {
        return Err(Ec2Error::invalid(format!(
            "Value ({g}) for parameter NetworkBorderGroup is invalid. The lab's only network \
             border group is {}",
            ctx.world.region
        )));
    }
    let address = match ctx.p.get("Address") {
        Some(a) => Some(a.parse::<Ipv4Addr>().map_err(|_| {
            Ec2Error::invalid(format!("Value ({a}) for parameter Address is invalid"))
        })?),
        None => None,
    };
    let mut w = ctx.world.clone();
    let id = w.generate_id("eipalloc");
    let eip = w.allocate_address(&id, address)?;
    apply_tag_specs(ctx, &mut w, &id, "elastic-ip", &[])?;
    let mut x = ctx.xml();
    x.leaf("publicIp", &eip.public_ip.to_string());
    x.leaf("domain", "vpc");
    x.leaf("allocationId", &eip.allocation_id);
    x.leaf("publicIpv4Pool", POOL);
    x.leaf("networkBorderGroup", &w.region);
    changed(w, x)
}

/// AssociateAddress with an instance (`AllocationId`, `InstanceId`, `AllowReassociation`).
pub fn associate_address(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let Some(allocation) = ctx.p.get("AllocationId").filter(|a| !a.is_empty()) else {
        if ctx.p.get("PublicIp").is_some() {
            // AWS's answer to the EC2-Classic form for a VPC address.
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "You must specify an allocation id when mapping an address to a VPC instance",
            ));
        }
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain the parameter AllocationId",
        ));
    };
    if ctx.p.get("NetworkInterfaceId").is_some() {
        return Err(Ec2Error::invalid(
            "NetworkInterfaceId: the lab has no network interfaces; associate with an InstanceId",
        ));
    }
    let instance = ctx.p.required("InstanceId")?;
    let reassociate = ctx.p.bool("AllowReassociation")?.unwrap_or(false);
    check_kind(ctx.world, allocation, ResourceKind::ElasticIp)?;
    check_kind(ctx.world, instance, ResourceKind::Instance)?;
    if let Some(ip) = ctx.p.get("PrivateIpAddress")
        && ctx.world.instance(instance).is_none_or(|i| i.private_ip.to_string() != ip)
    {
        return Err(Ec2Error::invalid(format!(
            "Value ({ip}) for parameter PrivateIpAddress is invalid: it is not the address of \
             {instance} (instances have one address in this lab)"
        )));
    }
    let mut w = ctx.world.clone();
    let association = w.associate_address(allocation, instance, reassociate)?;
    let mut x = ctx.xml();
    x.ret_true();
    x.leaf("associationId", &association);
    changed(w, x)
}

/// DisassociateAddress (`AssociationId`): the instance loses the address, and gets a new public
/// IP if EC2 gave it one at launch ([`World::disassociate_address`]). A NAT gateway's address
/// stays with the gateway until it is deleted.
pub fn disassociate_address(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    // The EC2-Classic form (`PublicIp` only) lacks the association id a VPC address needs.
    let association = ctx.p.required("AssociationId")?;
    let mut w = ctx.world.clone();
    w.disassociate_address(association)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// ReleaseAddress (`AllocationId`): only an address nothing uses; its tags go with it.
pub fn release_address(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    // The EC2-Classic form (`PublicIp` only) lacks the allocation id a VPC address needs.
    let allocation = ctx.p.required("AllocationId")?;
    check_kind(ctx.world, allocation, ResourceKind::ElasticIp)?;
    let mut w = ctx.world.clone();
    w.release_address(allocation)?;
    w.tags.remove(allocation);
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// DescribeAddresses' filters (besides tags).
pub(super) const ADDRESS_FILTERS: &[&str] = &[
    "allocation-id",
    "association-id",
    "instance-id",
    "public-ip",
    "domain",
    "private-ip-address",
    "network-interface-id",
    "network-interface-owner-id",
    "network-border-group",
    "public-ipv4-pool",
];

pub fn describe_addresses(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("AllocationId");
    check_ids(w, &ids, ResourceKind::ElasticIp)?;
    let ips = ctx.p.indexed("PublicIp");
    for ip in &ips {
        if !w.elastic_ips.iter().any(|e| e.public_ip.to_string() == *ip) {
            return Err(Ec2Error::new(
                "InvalidAddress.NotFound",
                format!("Address '{ip}' not found."),
            ));
        }
    }
    let filters = ctx.p.filters(ADDRESS_FILTERS)?;
    let mut x = ctx.xml();
    x.open("addressesSet");
    for e in &w.elastic_ips {
        let public_ip = e.public_ip.to_string();
        if !ids.is_empty() && !ids.contains(&e.allocation_id.as_str()) {
            continue;
        }
        if !ips.is_empty() && !ips.contains(&public_ip.as_str()) {
            continue;
        }
        let private_ip = eip_private_ip(w, e);
        let ok = matches(&filters, w.tags_of(&e.allocation_id), |f| -> Values {
            Some(match f {
                "allocation-id" => vec![e.allocation_id.clone()],
                "association-id" => e.association_id.iter().cloned().collect(),
                "instance-id" => e.instance.iter().cloned().collect(),
                "public-ip" => vec![public_ip.clone()],
                "domain" => vec!["vpc".into()],
                "private-ip-address" => private_ip.iter().map(|ip| ip.to_string()).collect(),
                "network-interface-id" => address_eni(e).into_iter().collect(),
                "network-interface-owner-id" => {
                    e.nat_gateway.iter().map(|_| OWNER_ID.to_string()).collect()
                }
                "network-border-group" => vec![w.region.clone()],
                "public-ipv4-pool" => vec![POOL.into()],
                _ => return None,
            })
        })?;
        if ok {
            x.open("item");
            address_xml(&mut x, w, e);
            x.close();
        }
    }
    x.close();
    read(x)
}

/// `state` as shown: `pending` only in the CreateNatGateway answer.
fn nat_xml(x: &mut Xml, w: &World, n: &NatGateway, pending: bool) {
    let live = n.state != NatState::Deleted;
    x.leaf("createTime", CREATE_TIME);
    if !live {
        x.leaf("deleteTime", CREATE_TIME);
    }
    let association = w
        .elastic_ips
        .iter()
        .find(|e| e.nat_gateway.as_deref() == Some(n.id.as_str()))
        .and_then(|e| e.association_id.as_deref());
    x.list("natGatewayAddressSet", [n], |x, n| {
        x.leaf("allocationId", &n.allocation_id);
        x.leaf("networkInterfaceId", &nat_eni(&n.id));
        x.leaf("privateIp", &n.private_ip.to_string());
        x.leaf("publicIp", &n.public_ip.to_string());
        if live {
            x.leaf_opt("associationId", association);
        }
        x.bool("isPrimary", true);
        if live {
            x.leaf("status", if pending { "associating" } else { "succeeded" });
        }
    });
    x.leaf("natGatewayId", &n.id);
    x.leaf("state", if pending && live { "pending" } else { n.state.aws_name() });
    x.leaf("subnetId", &n.subnet);
    x.leaf("vpcId", &n.vpc);
    x.tag_set(w.tags_of(&n.id));
    x.leaf("connectivityType", "public");
    x.leaf("availabilityMode", "zonal");
}

/// CreateNatGateway: a public NAT gateway in `SubnetId` with the Elastic IP `AllocationId`, at
/// `PrivateIpAddress` or the subnet's first free address. `ClientToken` is echoed (its
/// idempotency is [`super::handle`]'s).
pub fn create_nat_gateway(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    match ctx.p.get("ConnectivityType").unwrap_or("public") {
        "public" => {}
        "private" => {
            return Err(Ec2Error::invalid(
                "private NAT gateways (ConnectivityType private) are not simulated: only public",
            ));
        }
        t => {
            return Err(Ec2Error::invalid(format!(
                "Value ({t}) for parameter ConnectivityType is invalid. Use public"
            )));
        }
    }
    match ctx.p.get("AvailabilityMode").unwrap_or("zonal") {
        "zonal" => {}
        m => {
            return Err(Ec2Error::invalid(format!(
                "AvailabilityMode {m}: only zonal NAT gateways are simulated"
            )));
        }
    }
    for unsupported in ["SecondaryPrivateIpAddressCount", "VpcId"] {
        if ctx.p.get(unsupported).is_some() {
            return Err(Ec2Error::invalid(format!("{unsupported}: not simulated")));
        }
    }
    for unsupported in
        ["SecondaryAllocationId", "SecondaryPrivateIpAddress", "AvailabilityZoneAddress"]
    {
        if ctx.p.indexed_prefix_exists(&format!("{unsupported}.1")) {
            return Err(Ec2Error::invalid(format!(
                "{unsupported}: a lab NAT gateway has one address"
            )));
        }
    }
    let subnet = ctx.p.required("SubnetId")?;
    check_kind(ctx.world, subnet, ResourceKind::Subnet)?;
    let allocation = ctx.p.required("AllocationId")?;
    check_kind(ctx.world, allocation, ResourceKind::ElasticIp)?;
    let private_ip = match ctx.p.get("PrivateIpAddress") {
        Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
            Ec2Error::invalid(format!("Value ({s}) for parameter PrivateIpAddress is invalid"))
        })?),
        None => None,
    };
    let mut w = ctx.world.clone();
    let id = w.generate_id("nat");
    let nat = w.create_nat_gateway(&id, subnet, allocation, private_ip)?;
    apply_tag_specs(ctx, &mut w, &id, "natgateway", &[])?;
    let mut x = ctx.xml();
    x.leaf_opt("clientToken", ctx.p.get("ClientToken"));
    x.open("natGateway");
    nat_xml(&mut x, &w, &nat, true);
    x.close();
    changed(w, x)
}

/// DescribeNatGateways' filters (besides tags).
pub(super) const NAT_GATEWAY_FILTERS: &[&str] = &["nat-gateway-id", "state", "subnet-id", "vpc-id"];

pub fn describe_nat_gateways(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("NatGatewayId");
    check_ids(w, &ids, ResourceKind::NatGateway)?;
    let filters = ctx.p.filters(NAT_GATEWAY_FILTERS)?;
    let mut chosen = Vec::new();
    for n in &w.nat_gateways {
        if !ids.is_empty() && !ids.contains(&n.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&n.id), |f| match f {
            "nat-gateway-id" => one(&n.id),
            "state" => one(n.state.aws_name()),
            "subnet-id" => one(&n.subnet),
            "vpc-id" => one(&n.vpc),
            _ => None,
        })?;
        if ok {
            chosen.push(n);
        }
    }
    let page = ctx.paging.page(chosen, |n| n.id.clone());
    let mut x = ctx.xml();
    x.list("natGatewaySet", page.items, |x, n| nat_xml(x, w, n, false));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// DeleteNatGateway: the gateway goes to `deleted` (still listed), gives back its Elastic IP,
/// and routes to it become blackholes.
pub fn delete_nat_gateway(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("NatGatewayId")?;
    check_kind(ctx.world, id, ResourceKind::NatGateway)?;
    let mut w = ctx.world.clone();
    w.delete_nat_gateway(id)?;
    let mut x = ctx.xml();
    x.leaf("natGatewayId", id);
    changed(w, x)
}
