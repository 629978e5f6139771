//! Gateway endpoints, prefix lists and endpoint services.

use super::filter::{matches, one};
use super::xml::Xml;
use super::{Ctx, Ec2Error, Ec2Outcome, OWNER_ID, changed, check_ids, check_kind, read};
use crate::model::{
    DEFAULT_ENDPOINT_POLICY, Endpoint, ModelError, PolicyChange, PrefixList, REGIONS, ResourceKind,
};

/// Endpoints have no creation time in the model (the API is clock-free): every endpoint shows
/// the day gateway endpoints to S3 launched.
const CREATION_TIMESTAMP: &str = "2015-05-11T00:00:00.000Z";

/// The only service a gateway endpoint can reach from a request in `region`. The guide:
/// "Currently, we support endpoints for connections with Amazon S3 only." and "Endpoints are
/// supported within the same region only."
fn s3_service(region: &str) -> String {
    format!("com.amazonaws.{region}.s3")
}

fn endpoint_xml(x: &mut Xml, e: &Endpoint) {
    x.leaf("vpcEndpointId", &e.id);
    x.leaf("vpcEndpointType", "Gateway");
    x.leaf("vpcId", &e.vpc);
    x.leaf("serviceName", &e.service);
    x.leaf("state", "available");
    x.leaf("policyDocument", e.policy.as_deref().unwrap_or(DEFAULT_ENDPOINT_POLICY));
    x.strings("routeTableIdSet", &e.route_tables);
    x.strings("subnetIdSet", [""; 0]);
    // "(Interface endpoint) The network interfaces for the endpoint" (EC2 API Reference): none
    // for a gateway endpoint.
    x.strings("networkInterfaceIdSet", [""; 0]);
    x.list("groupSet", [(); 0], |_, ()| {});
    x.bool("privateDnsEnabled", false);
    x.bool("requesterManaged", false);
    x.list("dnsEntrySet", [(); 0], |_, ()| {});
    x.leaf("creationTimestamp", CREATION_TIMESTAMP);
    x.leaf("ownerId", OWNER_ID);
}

pub fn create_vpc_endpoint(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let vpc = ctx.p.required("VpcId")?;
    let service = ctx.p.required("ServiceName")?;
    match ctx.p.get("VpcEndpointType").unwrap_or("Gateway") {
        "Gateway" => {}
        "Interface" | "GatewayLoadBalancer" | "Resource" | "ServiceNetwork" => {
            return Err(Ec2Error::invalid(
                "only gateway endpoints are simulated (VpcEndpointType Gateway)",
            ));
        }
        t => return Err(Ec2Error::invalid(format!("invalid VpcEndpointType '{t}'"))),
    }
    if !ctx.p.indexed("SubnetId").is_empty() || !ctx.p.indexed("SecurityGroupId").is_empty() {
        return Err(Ec2Error::invalid(
            "subnets and security groups apply to interface endpoints; a gateway endpoint takes route tables",
        ));
    }
    // From the guide, "Endpoint Limitations": "You cannot tag an endpoint."
    if !ctx.p.tag_specs()?.is_empty() {
        return Err(ModelError::CannotTagEndpoint("the new endpoint".into()).into());
    }
    check_kind(ctx.world, vpc, ResourceKind::Vpc)?;
    // The guide: "You cannot create an endpoint between a VPC and an AWS service in a different
    // region." The service must be the request region's S3, and (for now) that region must be
    // the lab's (checked by the model).
    if service != s3_service(ctx.region) {
        return Err(if ctx.world.prefix_list_by_name(service).is_some() {
            ModelError::CrossRegionEndpoint { service: service.into(), region: ctx.region.into() }
        } else {
            ModelError::InvalidServiceName(service.into())
        }
        .into());
    }
    // A table named twice is one table (the lab file's "already used" does not apply here).
    let tables = dedup(ctx.p.indexed_owned("RouteTableId"));
    for t in &tables {
        check_kind(ctx.world, t, ResourceKind::RouteTable)?;
    }
    let policy = ctx.p.get("PolicyDocument").map(str::to_string);
    let mut w = ctx.world.clone();
    let id = w.generate_id("vpce");
    w.add_endpoint(Endpoint {
        id: id.clone(),
        vpc: vpc.into(),
        service: service.into(),
        route_tables: tables,
        policy,
    })?;
    let mut x = ctx.xml();
    x.open("vpcEndpoint");
    if let Some(e) = w.endpoint(&id) {
        endpoint_xml(&mut x, e);
    }
    x.close();
    // botocore, CreateVpcEndpointResult `ClientToken`: "Unique, case-sensitive identifier that
    // you provide to ensure the idempotency of the request."
    x.leaf_opt("clientToken", ctx.p.get("ClientToken"));
    changed(w, x)
}

pub fn modify_vpc_endpoint(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("VpcEndpointId")?;
    check_kind(ctx.world, id, ResourceKind::VpcEndpoint)?;
    let add = dedup(ctx.p.indexed_owned("AddRouteTableId"));
    let remove = dedup(ctx.p.indexed_owned("RemoveRouteTableId"));
    for t in add.iter().chain(&remove) {
        check_kind(ctx.world, t, ResourceKind::RouteTable)?;
    }
    for p in ["AddSubnetId", "RemoveSubnetId", "AddSecurityGroupId", "RemoveSecurityGroupId"] {
        if !ctx.p.indexed(p).is_empty() {
            return Err(Ec2Error::invalid(format!("{p} applies to interface endpoints only")));
        }
    }
    let reset = ctx.p.bool("ResetPolicy")?.unwrap_or(false);
    let policy = match (reset, ctx.p.get("PolicyDocument")) {
        (true, Some(_)) => {
            return Err(Ec2Error::invalid(
                "specify either ResetPolicy or PolicyDocument, not both",
            ));
        }
        (true, None) => PolicyChange::Reset,
        (false, Some(p)) => PolicyChange::Set(p.to_string()),
        (false, None) => PolicyChange::Keep,
    };
    let mut w = ctx.world.clone();
    w.modify_endpoint(id, &add, &remove, policy)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// `ids` without repeats, in their first order.
fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The region of a service name `com.amazonaws.<region>.<service>`.
fn service_region(service: &str) -> &str {
    service.strip_prefix("com.amazonaws.").and_then(|r| r.split('.').next()).unwrap_or("")
}

/// DescribeVpcEndpoints' filters (besides tags).
pub(super) const VPC_ENDPOINT_FILTERS: &[&str] = &[
    "vpc-endpoint-id",
    "vpc-id",
    "service-name",
    "vpc-endpoint-state",
    "vpc-endpoint-type",
    "ip-address-type",
    "service-region",
];

pub fn describe_vpc_endpoints(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("VpcEndpointId");
    check_ids(w, &ids, ResourceKind::VpcEndpoint)?;
    let filters = ctx.p.filters(VPC_ENDPOINT_FILTERS)?;
    let mut chosen = Vec::new();
    for e in &w.endpoints {
        if !ids.is_empty() && !ids.contains(&e.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, None, |f| match f {
            "vpc-endpoint-id" => one(&e.id),
            "vpc-id" => one(&e.vpc),
            "service-name" => one(&e.service),
            "vpc-endpoint-state" => one("available"),
            "vpc-endpoint-type" => one("Gateway"),
            // The lab's gateway endpoints carry IPv4 only; their service is in the lab's
            // region (a cross-region endpoint is refused).
            "ip-address-type" => one("ipv4"),
            "service-region" => one(service_region(&e.service)),
            _ => None,
        })?;
        if ok {
            chosen.push(e);
        }
    }
    let page = ctx.paging.page(chosen, |e| e.id.clone());
    let mut x = ctx.xml();
    x.list("vpcEndpointSet", page.items, endpoint_xml);
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// Deletes what it can; every id it cannot delete is reported in `unsuccessful`.
pub fn delete_vpc_endpoints(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let ids = ctx.p.indexed("VpcEndpointId");
    if ids.is_empty() {
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain the parameter VpcEndpointId",
        ));
    }
    let mut w = ctx.world.clone();
    let mut failed = Vec::new();
    for id in &ids {
        if let Err(e) = w.delete_endpoint(id) {
            let mut e = Ec2Error::from(e);
            // EC2's error codes: "InvalidVpcEndpoint.NotFound: The specified VPC endpoint does
            // not exist. If you are performing a bulk request that is partially successful or
            // unsuccessful, the response includes a list of the unsuccessful items." (A
            // Describe of an unknown id is InvalidVpcEndpointId.NotFound.)
            if e.code == "InvalidVpcEndpointId.NotFound" {
                e.code = "InvalidVpcEndpoint.NotFound".into();
            }
            failed.push((*id, e));
        }
    }
    let mut x = ctx.xml();
    x.list("unsuccessful", &failed, |x, (id, e)| {
        x.open("error");
        x.leaf("code", &e.code);
        x.leaf("message", &e.message);
        x.close();
        x.leaf("resourceId", id);
    });
    if failed.len() == ids.len() { read(x) } else { changed(w, x) }
}

/// DescribePrefixLists' filters.
pub(super) const PREFIX_LIST_FILTERS: &[&str] = &["prefix-list-id", "prefix-list-name"];

/// DescribeManagedPrefixLists' filters (besides tags).
pub(super) const MANAGED_PREFIX_LIST_FILTERS: &[&str] =
    &["prefix-list-id", "prefix-list-name", "owner-id"];

pub fn describe_prefix_lists(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let lists = selected_prefix_lists(
        ctx,
        Reach::OtherRegionsTooWhenAsked,
        PREFIX_LIST_FILTERS,
        |_, _| None,
    )?;
    let page = ctx.paging.page(lists, |pl| pl.id.clone());
    let mut x = ctx.xml();
    x.list("prefixListSet", page.items, |x, pl| {
        x.leaf("prefixListId", &pl.id);
        x.leaf("prefixListName", &pl.name);
        x.strings("cidrSet", pl.cidrs.iter().map(|c| c.to_string()));
    });
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// Where a prefix-list request looks.
#[derive(Clone, Copy, PartialEq)]
enum Reach {
    /// The region's own lists, as EC2; another region's id is not found.
    OwnRegion,
    /// DescribePrefixLists: ids or filters also reach the other regions' lists the lab
    /// simulates (README).
    OtherRegionsTooWhenAsked,
}

/// The prefix lists a `PrefixListId.N` and `Filter.N` request selects: like AWS, a region
/// shows its own lists; with [`Reach::OtherRegionsTooWhenAsked`], ids or filters can reach the
/// others the lab simulates. Filters `prefix-list-id` and `prefix-list-name`, and those `more`
/// knows.
fn selected_prefix_lists<'w>(
    ctx: &Ctx<'w>,
    reach: Reach,
    known: &[&str],
    more: impl Fn(&str, &PrefixList) -> Option<Vec<String>>,
) -> Result<Vec<&'w PrefixList>, Ec2Error> {
    let ids = ctx.p.indexed("PrefixListId");
    check_ids(ctx.world, &ids, ResourceKind::PrefixList)?;
    let own = |pl: &PrefixList| pl.region == ctx.region;
    if reach == Reach::OwnRegion
        && let Some(id) = ids.iter().find(|id| ctx.world.prefix_list(id).is_some_and(|pl| !own(pl)))
    {
        return Err(ModelError::PrefixListNotFound(id.to_string()).into());
    }
    let filters = ctx.p.filters(known)?;
    let mut out = Vec::new();
    for pl in &ctx.world.prefix_lists {
        let selected = if reach == Reach::OwnRegion && !own(pl) {
            false
        } else if !ids.is_empty() {
            ids.contains(&pl.id.as_str())
        } else {
            pl.region == ctx.region || !filters.is_empty()
        };
        let field = |f: &str| match f {
            "prefix-list-id" => one(&pl.id),
            "prefix-list-name" => one(&pl.name),
            other => more(other, pl),
        };
        if selected && matches(&filters, None, field)? {
            out.push(pl);
        }
    }
    Ok(out)
}

/// DescribeManagedPrefixLists, the newer call for the same lists (the AWS-managed ones: owner
/// `AWS`, state `create-complete`), the calling region's only, whatever the ids or filters. vpcsim keeps no list versions (the element is absent) and
/// no customer-managed lists.
pub fn describe_managed_prefix_lists(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let lists =
        selected_prefix_lists(ctx, Reach::OwnRegion, MANAGED_PREFIX_LIST_FILTERS, |f, _| {
            if f == "owner-id" { one("AWS") } else { None }
        })?;
    let page = ctx.paging.page(lists, |pl| pl.id.clone());
    let mut x = ctx.xml();
    x.list("prefixListSet", page.items, |x, pl| {
        x.leaf("prefixListId", &pl.id);
        x.leaf("addressFamily", "IPv4");
        x.leaf("state", "create-complete");
        x.leaf("prefixListArn", &format!("arn:aws:ec2:{}:aws:prefix-list/{}", pl.region, pl.id));
        x.leaf("prefixListName", &pl.name);
        x.list("tagSet", [(); 0], |_, ()| {});
        x.leaf("ownerId", "AWS");
    });
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// GetManagedPrefixListEntries: the list's CIDRs, in order. `TargetVersion` is refused: vpcsim
/// keeps only the current entries.
pub fn get_managed_prefix_list_entries(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("PrefixListId")?;
    check_kind(ctx.world, id, ResourceKind::PrefixList)?;
    if let Some(v) = ctx.p.get("TargetVersion") {
        return Err(Ec2Error::invalid(format!(
            "The version '{v}' of prefix list '{id}' is not available: vpcsim keeps only the current entries."
        )));
    }
    let Some(pl) = ctx.world.prefix_list(id) else {
        return Err(ModelError::PrefixListNotFound(id.to_string()).into());
    };
    // Paged in address order (then prefix length): the key sorts as the numbers do.
    let page = ctx.paging.page(pl.cidrs.iter().collect(), |c| {
        format!("{:08x}/{:02}", u32::from(c.network()), c.prefix_len())
    });
    let mut x = ctx.xml();
    x.list("entrySet", page.items, |x, c| x.leaf("cidr", &c.to_string()));
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// DescribeVpcEndpointServices' filters (besides tags).
pub(super) const VPC_ENDPOINT_SERVICE_FILTERS: &[&str] =
    &["service-name", "service-type", "owner", "service-region"];

/// Documented DescribeVpcEndpointServices filters about what the lab does not model (the
/// answer shows no `supportedIpAddressTypeSet`): each matches nothing (README, Decisions).
pub(super) const VPC_ENDPOINT_SERVICE_FILTERS_NOT_MODELLED: &[&str] =
    &["supported-ip-address-types"];

pub fn describe_vpc_endpoint_services(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let region = ctx.region;
    let names = ctx.p.indexed("ServiceName");
    let filters = ctx
        .p
        .filters_with(VPC_ENDPOINT_SERVICE_FILTERS, VPC_ENDPOINT_SERVICE_FILTERS_NOT_MODELLED)?;
    let mut services = Vec::new();
    if REGIONS.iter().any(|r| r.name == region) {
        let name = s3_service(region);
        let ok = matches(&filters, None, |f| match f {
            "service-name" => one(name.clone()),
            "service-type" => one("Gateway"),
            "owner" => one("amazon"),
            "service-region" => one(region),
            _ => None,
        })?;
        if ok && (names.is_empty() || names.contains(&name.as_str())) {
            services.push(name);
        }
    }
    // A name that is no service here is refused whatever the filters (one a filter left out
    // exists and is simply not listed).
    let known = REGIONS.iter().any(|r| r.name == region).then(|| s3_service(region));
    for n in &names {
        if known.as_deref() != Some(*n) {
            return Err(Ec2Error::new(
                "InvalidServiceName",
                format!("The Vpc Endpoint Service '{n}' does not exist"),
            ));
        }
    }
    let page = ctx.paging.page(services, String::clone);
    let services = page.items;
    let mut x = ctx.xml();
    x.strings("serviceNameSet", &services);
    x.list("serviceDetailSet", &services, |x, name| {
        x.leaf("serviceName", name);
        x.leaf("serviceId", &format!("vpce-svc-s3-{region}"));
        x.list("serviceType", [()], |x, ()| x.leaf("serviceType", "Gateway"));
        x.strings("availabilityZoneSet", [format!("{region}a")]);
        x.leaf("owner", "amazon");
        x.strings("baseEndpointDnsNameSet", [format!("s3.{region}.amazonaws.com")]);
        x.bool("vpcEndpointPolicySupported", true);
        x.bool("acceptanceRequired", false);
        x.bool("managesVpcEndpoints", false);
        x.leaf("serviceRegion", region);
    });
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}
