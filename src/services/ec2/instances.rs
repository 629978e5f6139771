//! Instances (with their security groups and source/destination check) and tags.

use std::net::Ipv4Addr;

use super::filter::{matches, one};
use super::instance_filters::{
    INSTANCE_FILTERS, INSTANCE_FILTERS_NOT_MODELLED, running_values, terminated_values,
};
use super::network::zone_name;
use super::xml::Xml;
use super::{Ctx, Ec2Error, Ec2Outcome, OWNER_ID, apply_tag_specs, changed, check_kind, read};
use crate::model::{Instance, ModelError, ResourceKind, TerminatedInstance, World};

/// The lab's instances run from the moment RunInstances creates them (answered `pending`, as
/// EC2 does; `running`, code 16, from then on) until terminated (code 48).
const PENDING: (&str, &str) = ("0", "pending");
/// What TerminateInstances answers for an instance it stops: "currentState" `shutting-down`,
/// as in the API Reference's example (the lab removes it at once: DescribeInstances shows it
/// `terminated` from then on).
const SHUTTING_DOWN: (&str, &str) = ("32", "shutting-down");
pub(super) const RUNNING: (&str, &str) = ("16", "running");
pub(super) const TERMINATED: (&str, &str) = ("48", "terminated");
pub(super) const INSTANCE_TYPE: &str = "t3.micro";
/// The `launchTime` of an instance with no launch time kept (a lab file's, or one from a world
/// saved before it was): the lab's fixed date, as NAT gateways' `createTime`.
const FIXED_LAUNCH_TIME: &str = "2015-12-17T00:00:00.000Z";

pub(super) fn launch_time(at: Option<u64>) -> String {
    at.map_or_else(|| FIXED_LAUNCH_TIME.to_string(), crate::services::s3::iso8601)
}

fn state(x: &mut Xml, name: &str, s: (&str, &str)) {
    x.open(name);
    x.leaf("code", s.0);
    x.leaf("name", s.1);
    x.close();
}

/// The other resource types RunInstances' `TagSpecification.N` takes ("instance | volume |
/// spot-instances-request | network-interface", EC2 API Reference): the lab has no volumes,
/// spot requests or separate interfaces, so their tags are accepted and not kept (the CLI
/// reference's own example tags the instance and its volumes in one call).
const RUN_INSTANCES_UNSIMULATED: &[&str] =
    &["volume", "spot-instances-request", "network-interface"];

/// An instance type's shape: family and size joined by one dot, lower-case letters, digits and
/// dashes (`t2.micro`, `c6gn.16xlarge`, `u-6tb1.metal`). The lab runs every type alike.
fn valid_instance_type(t: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    t.split_once('.').is_some_and(|(family, size)| ok(family) && ok(size))
}

fn instance_xml(x: &mut Xml, w: &World, i: &Instance, st: (&str, &str)) {
    let vpc = w.subnet(&i.subnet).map(|s| s.vpc.clone()).unwrap_or_default();
    x.leaf("instanceId", &i.id);
    x.leaf_opt("imageId", i.image_id.as_deref());
    state(x, "instanceState", st);
    // The name the VPC resolver answers for it (`.ec2.internal` in us-east-1 only).
    let domain = crate::services::dns::instance_domain(&w.region);
    x.leaf("privateDnsName", &crate::services::dns::instance_hostname(&domain, i.private_ip));
    x.leaf("dnsName", "");
    launch_fields(x, w, i.instance_type.as_deref(), i.launched_at);
    x.leaf("subnetId", &i.subnet);
    x.leaf("vpcId", &vpc);
    // "The idempotency token you provided when you launched the instance, if applicable."
    x.leaf_opt("clientToken", i.client_token.as_deref());
    x.leaf("privateIpAddress", &i.private_ip.to_string());
    x.leaf_opt("ipAddress", i.public_ip.map(|p| p.to_string()).as_deref());
    x.bool("sourceDestCheck", i.source_dest_check);
    group_set(x, w, i);
    device_fields(x);
    primary_interface_xml(x, w, i, &vpc);
    x.tag_set(w.tags_of(&i.id));
}

/// Root device, block devices (the lab models no volumes), hypervisor ("The value `xen` is
/// used for both Xen and Nitro hypervisors", EC2 API Reference, Instance).
fn device_fields(x: &mut Xml) {
    x.leaf("architecture", "x86_64");
    x.leaf("rootDeviceType", "ebs");
    x.leaf("rootDeviceName", "/dev/xvda");
    x.list("blockDeviceMapping", [(); 0], |_, ()| {});
    x.leaf("virtualizationType", "hvm");
    x.leaf("hypervisor", "xen");
}

/// The id of an instance's primary network interface, derived from the instance's (as NAT
/// gateways' are from theirs).
pub(super) fn instance_eni(instance: &str) -> String {
    format!("eni-{}", instance.trim_start_matches("i-"))
}

/// The MAC address of an interface: `02:` and the first five bytes of the SHA-256 of its id.
/// AWS's are locally administered unicast addresses (`02:`, `06:`, `0a:`, `0e:` …: bit 1 of
/// the first octet set, bit 0 clear); `02:` is one of them. Derived from the id, it is the same
/// at every call and after every restart, and differs between interfaces (but for a 2^-40
/// chance per pair).
pub(super) fn interface_mac(eni: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(eni.as_bytes());
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2], h[3], h[4])
}

/// `<networkInterfaceSet>`: an instance's primary interface (device index 0), which carries its
/// private address, its public address, its groups and its MAC address.
fn primary_interface_xml(x: &mut Xml, w: &World, i: &Instance, vpc: &str) {
    let domain = crate::services::dns::instance_domain(&w.region);
    let dns = crate::services::dns::instance_hostname(&domain, i.private_ip);
    // "The ID of the owner of the Elastic IP address" (InstanceNetworkInterfaceAssociation):
    // the account for an Elastic IP, `amazon` for a public IP EC2 assigned.
    let elastic = w.elastic_ips.iter().any(|e| e.instance.as_deref() == Some(i.id.as_str()));
    let association = |x: &mut Xml| {
        if let Some(p) = i.public_ip {
            x.open("association");
            x.leaf("publicIp", &p.to_string());
            x.leaf("publicDnsName", "");
            x.leaf("ipOwnerId", if elastic { OWNER_ID } else { "amazon" });
            x.close();
        }
    };
    x.list("networkInterfaceSet", [i], |x, i| {
        let eni = instance_eni(&i.id);
        x.leaf("networkInterfaceId", &eni);
        x.leaf("macAddress", &interface_mac(&eni));
        x.leaf("subnetId", &i.subnet);
        x.leaf("vpcId", vpc);
        x.leaf("description", "");
        x.leaf("ownerId", OWNER_ID);
        x.leaf("status", "in-use");
        x.leaf("privateIpAddress", &i.private_ip.to_string());
        x.leaf("privateDnsName", &dns);
        x.bool("sourceDestCheck", i.source_dest_check);
        group_set(x, w, i);
        x.open("attachment");
        x.leaf("attachmentId", &format!("eni-attach-{}", i.id.trim_start_matches("i-")));
        x.leaf("deviceIndex", "0");
        x.leaf("status", "attached");
        x.leaf("attachTime", &launch_time(i.launched_at));
        x.bool("deleteOnTermination", true);
        x.leaf("networkCardIndex", "0");
        x.close();
        association(x);
        x.list("privateIpAddressesSet", [i], |x, i| {
            x.leaf("privateIpAddress", &i.private_ip.to_string());
            x.leaf("privateDnsName", &dns);
            x.bool("primary", true);
            association(x);
        });
        x.leaf("interfaceType", "interface");
    });
}

/// `<groupSet>` of an instance: `groupId` and `groupName` of each of its groups.
fn group_set(x: &mut Xml, w: &World, i: &Instance) {
    x.list("groupSet", w.instance_groups(i), |x, g| {
        x.leaf("groupId", &g);
        x.leaf_opt("groupName", w.security_group(&g).map(|s| s.name.as_str()));
    });
}

/// A reservation of `instances`, each shown in state `st`.
fn reservation_xml(
    x: &mut Xml,
    w: &World,
    reservation: &str,
    instances: &[&Instance],
    st: (&str, &str),
) {
    reservation_head(x, reservation);
    x.list("instancesSet", instances, |x, i| instance_xml(x, w, i, st));
}

/// What every reservation starts with.
fn reservation_head(x: &mut Xml, reservation: &str) {
    x.leaf("reservationId", reservation);
    x.leaf("ownerId", OWNER_ID);
    x.list("groupSet", [(); 0], |_, ()| {});
}

/// What every instance, running or terminated, was launched with: index, type, time,
/// placement, monitoring (basic: detailed monitoring is not simulated).
fn launch_fields(x: &mut Xml, w: &World, instance_type: Option<&str>, launched_at: Option<u64>) {
    x.leaf("amiLaunchIndex", "0");
    x.leaf("instanceType", instance_type.unwrap_or(INSTANCE_TYPE));
    x.leaf("launchTime", &launch_time(launched_at));
    x.open("placement");
    x.leaf("availabilityZone", &zone_name(&w.region));
    x.leaf("tenancy", "default");
    x.close();
    x.open("monitoring");
    x.leaf("state", "disabled");
    x.close();
}

/// A terminated instance: what EC2 still lists of it (no subnet, VPC, address or groups).
fn terminated_instance_xml(x: &mut Xml, w: &World, t: &TerminatedInstance) {
    x.leaf("instanceId", &t.id);
    x.leaf_opt("imageId", t.image_id.as_deref());
    state(x, "instanceState", TERMINATED);
    x.leaf("privateDnsName", "");
    x.leaf("dnsName", "");
    launch_fields(x, w, t.instance_type.as_deref(), t.launched_at);
    x.leaf_opt("clientToken", t.client_token.as_deref());
    x.list("groupSet", [(); 0], |_, ()| {});
    device_fields(x);
    x.list("networkInterfaceSet", [(); 0], |_, ()| {});
}

/// An instance DescribeInstances lists: running, or terminated within the hour.
enum Listed<'a> {
    Running(&'a Instance),
    Terminated(&'a TerminatedInstance),
}

/// Unix seconds now.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every id must be a running instance or one terminated in the last hour.
/// A malformed id is refused first; unknown ones are named all together, as EC2 does ("The
/// instance IDs 'i-1, i-2' do not exist").
fn check_instance_ids(w: &World, ids: &[&str], now: u64) -> Result<(), Ec2Error> {
    let mut missing = Vec::new();
    for id in ids {
        if w.terminated_instance(id, now).is_none() {
            match check_kind(w, id, ResourceKind::Instance) {
                Err(e) if e.code == "InvalidInstanceID.NotFound" => {
                    if !missing.contains(id) {
                        missing.push(*id);
                    }
                }
                other => other?,
            }
        }
    }
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(ModelError::InstanceNotFound(one.to_string()).into()),
        many => Err(Ec2Error::new(
            "InvalidInstanceID.NotFound",
            format!("The instance IDs '{}' do not exist", many.join(", ")),
        )),
    }
}

/// A parameter given directly or, as the CLI sends it with `--associate-public-ip-address`,
/// inside `NetworkInterface.1`.
fn param_or_eni<'a>(ctx: &Ctx<'a>, name: &str) -> Option<&'a str> {
    ctx.p.get(name).or_else(|| ctx.p.get(&format!("NetworkInterface.1.{name}")))
}

pub fn run_instances(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let subnet = param_or_eni(ctx, "SubnetId").ok_or_else(|| {
        Ec2Error::new("MissingParameter", "The request must contain the parameter SubnetId")
    })?;
    check_kind(ctx.world, subnet, ResourceKind::Subnet)?;
    let min = ctx.p.int("MinCount")?.unwrap_or(1);
    let max = ctx.p.int("MaxCount")?.unwrap_or(min);
    if min < 1 || max < min {
        return Err(Ec2Error::invalid(format!(
            "MinCount ({min}) and MaxCount ({max}) must satisfy 1 <= MinCount <= MaxCount"
        )));
    }
    if max > 20 {
        return Err(Ec2Error::new(
            "InstanceLimitExceeded",
            "a lab runs at most 20 instances per request",
        ));
    }
    let private_ip = match param_or_eni(ctx, "PrivateIpAddress") {
        Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
            Ec2Error::invalid(format!("Value ({s}) for parameter PrivateIpAddress is invalid"))
        })?),
        None => None,
    };
    if private_ip.is_some() && max > 1 {
        return Err(Ec2Error::new(
            "InvalidParameterCombination",
            "a PrivateIpAddress can only be given when launching one instance",
        ));
    }
    let public = ctx.p.bool("NetworkInterface.1.AssociatePublicIpAddress")?.unwrap_or(false);
    // botocore, `ImageId`: "An AMI ID is required to launch an instance and must be specified
    // here or in a launch template." The lab has no launch templates.
    let image = Some(ctx.p.required("ImageId")?.to_string());
    let instance_type = match ctx.p.get("InstanceType") {
        Some(t) if !valid_instance_type(t) => {
            return Err(Ec2Error::invalid(format!("Invalid value '{t}' for InstanceType.")));
        }
        t => t.map(str::to_string),
    };
    // `SecurityGroupId.N`, or inside `NetworkInterface.1` as the CLI sends it with
    // `--associate-public-ip-address`; none: the VPC's default group.
    let mut groups = ctx.p.indexed_owned("SecurityGroupId");
    if groups.is_empty() {
        groups = ctx.p.indexed_owned("NetworkInterface.1.SecurityGroupId");
    }
    for g in &groups {
        check_kind(ctx.world, g, ResourceKind::SecurityGroup)?;
    }
    // `SecurityGroup.N`: "[Default VPC] The names of the security groups. If you specify a
    // network interface, you must specify any security groups as part of the network interface
    // instead of using this parameter." (botocore). A name resolves only in the default VPC;
    // with a subnet of a nondefault VPC EC2 answers InvalidParameterCombination, "The parameter
    // groupName cannot be used with the parameter subnet". The instance never gets other groups
    // than those asked for.
    let names = ctx.p.indexed("SecurityGroup");
    if !names.is_empty() {
        let subnet_vpc = ctx.world.subnet(subnet).map(|s| s.vpc.as_str());
        if super::security::default_vpc(ctx.world).map(|v| v.id.as_str()) != subnet_vpc {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "The parameter groupName cannot be used with the parameter subnet",
            ));
        }
        for n in names {
            let id = &super::security::group_by_name(ctx.world, n)?.id;
            if !groups.contains(id) {
                groups.push(id.clone());
            }
        }
    }
    let mut w = ctx.world.clone();
    // EC2 API Reference, RunInstances: "Launches the specified number of instances" and answers
    // one `Reservation`; every instance of the call is in it, under that one id.
    let reservation = w.generate_id("r");
    let launched_at = now_secs();
    let mut ids = Vec::new();
    for _ in 0..max {
        let id = w.generate_id("i");
        let ip = match private_ip {
            Some(ip) => ip,
            None => w.next_free_private_ip(subnet)?,
        };
        let public_ip = if public { Some(w.next_free_public_ip()?) } else { None };
        w.add_instance(Instance {
            id: id.clone(),
            subnet: subnet.to_string(),
            private_ip: ip,
            public_ip,
            auto_public_ip: public,
            image_id: image.clone(),
            instance_type: instance_type.clone(),
            security_groups: groups.clone(),
            source_dest_check: true,
            reservation: Some(reservation.clone()),
            launched_at: Some(launched_at),
            client_token: ctx.p.get("ClientToken").map(str::to_string),
        })?;
        apply_tag_specs(ctx, &mut w, &id, "instance", RUN_INSTANCES_UNSIMULATED)?;
        ids.push(id);
    }
    let mut x = ctx.xml();
    let insts: Vec<&Instance> = ids.iter().filter_map(|id| w.instance(id)).collect();
    // EC2 answers RunInstances with the instances `pending`; here they run at once, so the
    // next DescribeInstances (and the `instance_running` waiter) sees them `running`.
    reservation_xml(&mut x, &w, &reservation, &insts, PENDING);
    let xml = x.finish();
    Ok(Ec2Outcome::Changed { world: w, xml })
}

pub fn describe_instances(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let ids = ctx.p.indexed("InstanceId");
    // API Reference, DescribeInstances, MaxResults: "You cannot specify this parameter and the
    // instance IDs parameter in the same request." (EC2 words it as for DescribeVolumes' "The
    // parameter volumeSet cannot be used with the parameter maxResults".)
    if !ids.is_empty() && ctx.p.get("MaxResults").is_some() {
        return Err(Ec2Error::new(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let now = now_secs();
    check_instance_ids(w, &ids, now)?;
    let filters = ctx.p.filters_with(INSTANCE_FILTERS, INSTANCE_FILTERS_NOT_MODELLED)?;
    let mut listed: Vec<Listed> = Vec::new();
    for i in &w.instances {
        if !ids.is_empty() && !ids.contains(&i.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&i.id), |f| running_values(w, i, f))?;
        if ok {
            listed.push(Listed::Running(i));
        }
    }
    for t in w.terminated_instances.iter().filter(|t| w.terminated_instance(&t.id, now).is_some()) {
        if !ids.is_empty() && !ids.contains(&t.id.as_str()) {
            continue;
        }
        let ok = matches(&filters, w.tags_of(&t.id), |f| terminated_values(w, t, f))?;
        if ok {
            listed.push(Listed::Terminated(t));
        }
    }
    // One item per reservation, with every listed instance of it, in launch order.
    let reservation = |l: &Listed| match l {
        Listed::Running(i) => i.reservation(),
        Listed::Terminated(t) => t.reservation(),
    };
    let mut reservations: Vec<(String, Vec<&Listed>)> = Vec::new();
    for l in &listed {
        let r = reservation(l);
        match reservations.iter_mut().find(|(id, _)| *id == r) {
            Some((_, members)) => members.push(l),
            None => reservations.push((r, vec![l])),
        }
    }
    // Paged by reservation: `MaxResults` counts reservations, and one is never cut across
    // pages (botocore's paginator merges pages by `Reservations`).
    let page = ctx.paging.page(reservations, |(r, _)| r.clone());
    let mut x = ctx.xml();
    x.list("reservationSet", &page.items, |x, (r, members)| {
        reservation_head(x, r);
        x.list("instancesSet", members, |x, l| match l {
            Listed::Running(i) => instance_xml(x, w, i, RUNNING),
            Listed::Terminated(t) => terminated_instance_xml(x, w, t),
        });
    });
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}

/// What one ModifyInstanceAttribute call changes (AWS: one attribute per call).
enum InstanceChange {
    Groups(Vec<String>),
    SourceDestCheck(bool),
}

/// `true` / `false` for the attribute `name`.
fn bool_value(name: &str, v: &str) -> Result<bool, Ec2Error> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Ec2Error::invalid(format!(
            "Value ({v}) for parameter {name} is invalid. Expected a boolean"
        ))),
    }
}

/// ModifyInstanceAttribute: `GroupId.N` (replaces the instance's security groups) and the
/// source/destination check (`SourceDestCheck.Value`, or `Attribute=sourceDestCheck` with
/// `Value`; a NAT instance needs it off) are simulated.
pub fn modify_instance_attribute(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("InstanceId")?;
    check_kind(ctx.world, id, ResourceKind::Instance)?;
    let mut changes = Vec::new();
    let groups = ctx.p.indexed_owned("GroupId");
    if !groups.is_empty() {
        changes.push(InstanceChange::Groups(groups));
    }
    if let Some(v) = ctx.p.get("SourceDestCheck.Value") {
        changes.push(InstanceChange::SourceDestCheck(bool_value("SourceDestCheck", v)?));
    }
    match ctx.p.get("Attribute") {
        None => {}
        Some("sourceDestCheck") => {
            let v = ctx.p.required("Value")?;
            changes.push(InstanceChange::SourceDestCheck(bool_value("Value", v)?));
        }
        Some(a) => {
            return Err(Ec2Error::invalid(format!(
                "Attribute {a}: only sourceDestCheck and the security groups (GroupId.N) can be \
                 modified in this lab"
            )));
        }
    }
    let change = match changes.len() {
        0 => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "only GroupId.N (the instance's security groups) and SourceDestCheck can be \
                 modified in this lab",
            ));
        }
        1 => changes.remove(0),
        _ => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "Fields for multiple attribute types specified: modify one attribute per call",
            ));
        }
    };
    let mut w = ctx.world.clone();
    match change {
        InstanceChange::Groups(groups) => {
            for g in &groups {
                check_kind(ctx.world, g, ResourceKind::SecurityGroup)?;
            }
            w.set_instance_groups(id, &groups)?;
        }
        InstanceChange::SourceDestCheck(on) => {
            if let Some(i) = w.instances.iter_mut().find(|i| i.id == id) {
                i.source_dest_check = on;
            }
        }
    }
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// DescribeInstanceAttribute: `sourceDestCheck`, `groupSet` and `instanceType`.
pub fn describe_instance_attribute(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let id = ctx.p.required("InstanceId")?;
    let attribute = ctx.p.required("Attribute")?;
    check_kind(ctx.world, id, ResourceKind::Instance)?;
    let Some(i) = ctx.world.instance(id) else {
        return Err(ModelError::InstanceNotFound(id.to_string()).into());
    };
    let mut x = ctx.xml();
    x.leaf("instanceId", id);
    match attribute {
        "sourceDestCheck" => {
            x.open("sourceDestCheck");
            x.bool("value", i.source_dest_check);
            x.close();
        }
        "groupSet" => group_set(&mut x, ctx.world, i),
        "instanceType" => {
            x.open("instanceType");
            x.leaf("value", i.instance_type.as_deref().unwrap_or(INSTANCE_TYPE));
            x.close();
        }
        "kernel"
        | "ramdisk"
        | "userData"
        | "disableApiTermination"
        | "instanceInitiatedShutdownBehavior"
        | "rootDeviceName"
        | "blockDeviceMapping"
        | "productCodes"
        | "ebsOptimized"
        | "sriovNetSupport"
        | "enaSupport"
        | "enclaveOptions"
        | "disableApiStop" => {
            return Err(Ec2Error::invalid(format!(
                "Attribute {attribute} is not simulated: sourceDestCheck, groupSet and \
                 instanceType are"
            )));
        }
        other => {
            return Err(Ec2Error::invalid(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )));
        }
    }
    read(x)
}

pub fn terminate_instances(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let ids = ctx.p.indexed("InstanceId");
    if ids.is_empty() {
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain the parameter InstanceId",
        ));
    }
    let now = now_secs();
    check_instance_ids(ctx.world, &ids, now)?;
    let mut w = ctx.world.clone();
    // (id, previous state): terminating a terminated instance again succeeds ("This operation
    // is idempotent; if you terminate an instance more than once, each call succeeds").
    let mut done: Vec<(&str, (&str, &str))> = Vec::new();
    for id in &ids {
        if done.iter().any(|(d, _)| d == id) {
            continue;
        }
        if w.instance(id).is_some() {
            w.terminate_instance(id, now)?;
            done.push((id, RUNNING));
        } else {
            done.push((id, TERMINATED));
        }
    }
    let mut x = ctx.xml();
    x.list("instancesSet", &done, |x, (id, previous)| {
        x.leaf("instanceId", id);
        let current = if *previous == RUNNING { SHUTTING_DOWN } else { TERMINATED };
        state(x, "currentState", current);
        state(x, "previousState", *previous);
    });
    if done.iter().all(|(_, p)| *p == TERMINATED) { read(x) } else { changed(w, x) }
}

fn resources(ctx: &Ctx) -> Result<Vec<String>, Ec2Error> {
    let r = ctx.p.indexed_owned("ResourceId");
    if r.is_empty() {
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain the parameter ResourceId",
        ));
    }
    Ok(r)
}

pub fn create_tags(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let res = resources(ctx)?;
    let tags: Vec<(String, String)> =
        ctx.p.tags("Tag")?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    if tags.is_empty() {
        return Err(Ec2Error::new(
            "MissingParameter",
            "The request must contain the parameter Tag",
        ));
    }
    let mut w = ctx.world.clone();
    w.create_tags(&res, &tags)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

pub fn delete_tags(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let res = resources(ctx)?;
    let tags = ctx.p.tags("Tag")?;
    let mut w = ctx.world.clone();
    w.delete_tags(&res, &tags)?;
    let mut x = ctx.xml();
    x.ret_true();
    changed(w, x)
}

/// DescribeTags' filters.
pub(super) const TAG_FILTERS: &[&str] = &["resource-id", "resource-type", "key", "value"];

pub fn describe_tags(ctx: &Ctx) -> Result<Ec2Outcome, Ec2Error> {
    let w = ctx.world;
    let filters = ctx.p.filters(TAG_FILTERS)?;
    let mut chosen = Vec::new();
    for (id, tags) in &w.tags {
        let kind = ResourceKind::of(id).map(|k| k.aws_name()).unwrap_or("");
        for (k, v) in tags {
            let ok = matches(&filters, None, |f| match f {
                "resource-id" => one(id),
                "resource-type" => one(kind),
                "key" => one(k),
                "value" => one(v),
                _ => None,
            })?;
            if ok {
                chosen.push((id, kind, k, v));
            }
        }
    }
    // Paged by resource and key ("\0" sorts before any character of an id).
    let page = ctx.paging.page(chosen, |(id, _, k, _)| format!("{id}\0{k}"));
    let mut x = ctx.xml();
    x.list("tagSet", page.items, |x, (id, kind, k, v)| {
        x.leaf("resourceId", id);
        x.leaf("resourceType", kind);
        x.leaf("key", k);
        x.leaf("value", v);
    });
    x.leaf_opt("nextToken", page.next.as_deref());
    read(x)
}
