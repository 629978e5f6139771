//! Elastic IPs, NAT gateways, routes to NAT gateways and NAT instances, and the
//! source/destination check, driven through the EC2 Query API.
//!
//! The default lab: NAT gateway `nat-0b0b0b0b` in subnet b (10.0.2.40, Elastic IP
//! `eipalloc-0b0b0b0b` = 203.0.113.40), subnet d's table `rtb-0d0d0d0d` routes 0.0.0.0/0 to it;
//! instances a, b, c have public IPs .10, .20, .30, d (`i-0d0d0d0d`) none.

use super::*;

/// AllocateAddress; returns the new world, the allocation id and the address.
fn allocate(w: &World) -> (World, String, String) {
    let (w1, xml) = change(w, &[("Action", "AllocateAddress"), ("Domain", "vpc")]);
    let (alloc, ip) = (text(&xml, "allocationId"), text(&xml, "publicIp"));
    (w1, alloc, ip)
}

/// CreateNatGateway in `subnet` with a new Elastic IP; returns the world, the gateway id and
/// the allocation id.
fn nat_in(w: &World, subnet: &str) -> (World, String, String) {
    let (w1, alloc, _) = allocate(w);
    let (w2, xml) = change(
        &w1,
        &[("Action", "CreateNatGateway"), ("SubnetId", subnet), ("AllocationId", &alloc)],
    );
    (w2, text(&xml, "natGatewayId"), alloc)
}

/// The routes of one table as (destination, target element, target, state).
fn routes_of(w: &World, table: &str) -> Vec<(String, String, String, String)> {
    let xml = read_xml(w, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", table)]);
    let mut out = Vec::new();
    let set = xml.split("<routeSet>").nth(1).and_then(|s| s.split("</routeSet>").next());
    // Route items hold no nested items.
    for item in set.unwrap_or("").split("<item>").skip(1) {
        let item = item.split("</item>").next().unwrap_or("");
        let dest = texts(item, "destinationCidrBlock")
            .into_iter()
            .chain(texts(item, "destinationPrefixListId"))
            .next()
            .unwrap_or_default();
        let target = ["gatewayId", "natGatewayId", "instanceId"]
            .into_iter()
            .find_map(|e| texts(item, e).into_iter().next().map(|t| (e.to_string(), t)))
            .unwrap_or_default();
        out.push((dest, target.0, target.1, text(item, "state")));
    }
    out
}

fn route_to(w: &World, table: &str, dest: &str) -> (String, String, String) {
    let r = routes_of(w, table).into_iter().find(|r| r.0 == dest);
    let r = r.unwrap_or_else(|| panic!("no route {dest} in {table}"));
    (r.1, r.2, r.3)
}

#[test]
fn allocate_and_describe_addresses() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "AllocateAddress"),
            ("Domain", "vpc"),
            ("TagSpecification.1.ResourceType", "elastic-ip"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web"),
        ],
    );
    dump("AllocateAddress", &xml);
    let alloc = text(&xml, "allocationId");
    assert_eq!(alloc.len(), "eipalloc-".len() + 17, "{alloc}");
    // The first address of 203.0.113.0/24 that no instance, address or gateway uses.
    assert_eq!(text(&xml, "publicIp"), "203.0.113.1");
    assert_eq!(text(&xml, "domain"), "vpc");
    // A specific address, and the ones AWS (here: the lab's range) refuses.
    let (w2, xml) = change(&w1, &[("Action", "AllocateAddress"), ("Address", "203.0.113.77")]);
    assert_eq!(text(&xml, "publicIp"), "203.0.113.77");
    let r = |params: &[(&str, &str)], code| {
        refused(&w2, params, code);
    };
    r(&[("Action", "AllocateAddress"), ("Address", "203.0.113.20")], "InvalidIPAddress.InUse");
    r(&[("Action", "AllocateAddress"), ("Address", "203.0.113.77")], "InvalidIPAddress.InUse");
    r(&[("Action", "AllocateAddress"), ("Address", "198.51.100.1")], "InvalidParameterValue");
    r(&[("Action", "AllocateAddress"), ("Address", "nope")], "InvalidParameterValue");
    r(&[("Action", "AllocateAddress"), ("Domain", "standard")], "InvalidParameterValue");
    r(
        &[("Action", "AllocateAddress"), ("PublicIpv4Pool", "ipv4pool-ec2-1")],
        "InvalidParameterValue",
    );
    r(
        &[
            ("Action", "AllocateAddress"),
            ("TagSpecification.1.ResourceType", "vpc"),
            ("TagSpecification.1.Tag.1.Key", "k"),
        ],
        "InvalidParameterValue",
    );
    r(&[("Action", "AllocateAddress"), ("DryRun", "true")], "DryRunOperation");

    // DescribeAddresses: the lab's NAT gateway address, then the two new ones.
    let xml = read_xml(&w2, &[("Action", "DescribeAddresses")]);
    dump("DescribeAddresses", &xml);
    assert_eq!(texts(&xml, "publicIp"), ["203.0.113.40", "203.0.113.1", "203.0.113.77"]);
    assert_eq!(texts(&xml, "domain"), ["vpc", "vpc", "vpc"]);
    // A NAT gateway's address: its interface and private address, no instance.
    assert!(texts(&xml, "instanceId").is_empty(), "{xml}");
    assert_eq!(texts(&xml, "privateIpAddress"), ["10.0.2.40"]);
    assert_eq!(texts(&xml, "networkInterfaceId"), ["eni-0b0b0b0b"]);
    assert_eq!(texts(&xml, "associationId").len(), 1);
    assert_eq!(text(&xml, "value"), "web");
    let f = |name: &str, value: &str| {
        let xml = read_xml(
            &w2,
            &[
                ("Action", "DescribeAddresses"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        texts(&xml, "publicIp")
    };
    assert_eq!(f("tag:Name", "web"), ["203.0.113.1"]);
    assert_eq!(f("allocation-id", &alloc), ["203.0.113.1"]);
    assert_eq!(f("public-ip", "203.0.113.7?"), ["203.0.113.77"]);
    assert_eq!(f("private-ip-address", "10.0.2.40"), ["203.0.113.40"]);
    assert_eq!(f("network-interface-id", "eni-0b0b0b0b"), ["203.0.113.40"]);
    assert_eq!(f("domain", "vpc").len(), 3);
    assert_eq!(f("domain", "standard").len(), 0);
    assert_eq!(f("association-id", "eipassoc-*"), ["203.0.113.40"]);
    refused(
        &w2,
        &[("Action", "DescribeAddresses"), ("Filter.1.Name", "color"), ("Filter.1.Value.1", "x")],
        "InvalidParameterValue",
    );
    let xml = read_xml(
        &w2,
        &[
            ("Action", "DescribeAddresses"),
            ("AllocationId.1", &alloc),
            ("PublicIp.1", "203.0.113.1"),
        ],
    );
    assert_eq!(texts(&xml, "allocationId"), [alloc.as_str()]);
    refused(
        &w2,
        &[("Action", "DescribeAddresses"), ("AllocationId.1", "eipalloc-0999")],
        "InvalidAllocationID.NotFound",
    );
    refused(
        &w2,
        &[("Action", "DescribeAddresses"), ("AllocationId.1", "eipalloc-zz")],
        "InvalidAllocationID.Malformed",
    );
    refused(
        &w2,
        &[("Action", "DescribeAddresses"), ("PublicIp.1", "203.0.113.99")],
        "InvalidAddress.NotFound",
    );
    // Elastic IPs are taggable like any resource; DescribeTags names their type.
    let (w3, _) = change(
        &w2,
        &[("Action", "CreateTags"), ("ResourceId.1", "eipalloc-0b0b0b0b"), ("Tag.1.Key", "k")],
    );
    let xml = read_xml(
        &w3,
        &[
            ("Action", "DescribeTags"),
            ("Filter.1.Name", "resource-id"),
            ("Filter.1.Value.1", "eipalloc-0b0b0b0b"),
        ],
    );
    assert_eq!(texts(&xml, "resourceType"), ["elastic-ip"]);
}

#[test]
fn associate_disassociate_release() {
    let (w, alloc, ip) = allocate(&lab());
    // The private instance in d gets the address as its public IP.
    let (w1, xml) = change(
        &w,
        &[("Action", "AssociateAddress"), ("AllocationId", &alloc), ("InstanceId", "i-0d0d0d0d")],
    );
    dump("AssociateAddress", &xml);
    let assoc = text(&xml, "associationId");
    assert!(assoc.starts_with("eipassoc-"), "{assoc}");
    let ip_of = |w: &World, i: &str| {
        texts(&read_xml(w, &[("Action", "DescribeInstances"), ("InstanceId.1", i)]), "ipAddress")
    };
    assert_eq!(ip_of(&w1, "i-0d0d0d0d"), [ip.as_str()]);
    assert_eq!(w1.instance("i-0d0d0d0d").unwrap().public_ip.unwrap().to_string(), ip);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeAddresses"),
            ("Filter.1.Name", "instance-id"),
            ("Filter.1.Value.1", "i-0d0d0d0d"),
        ],
    );
    assert_eq!(text(&xml, "associationId"), assoc);
    assert_eq!(text(&xml, "privateIpAddress"), "10.0.4.10");
    assert_eq!(text(&xml, "instanceId"), "i-0d0d0d0d");
    // On the instance's primary interface, as DescribeInstances lists it; the filter finds it.
    assert_eq!(text(&xml, "networkInterfaceId"), "eni-0d0d0d0d");
    let by_eni = read_xml(
        &w1,
        &[
            ("Action", "DescribeAddresses"),
            ("Filter.1.Name", "network-interface-id"),
            ("Filter.1.Value.1", "eni-0d0d0d0d"),
        ],
    );
    assert_eq!(texts(&by_eni, "allocationId"), [alloc.as_str()]);
    // Associating again with the same instance changes nothing.
    let (w1b, xml) = change(
        &w1,
        &[("Action", "AssociateAddress"), ("AllocationId", &alloc), ("InstanceId", "i-0d0d0d0d")],
    );
    assert_eq!(text(&xml, "associationId"), assoc);
    assert_eq!(w1b, w1);

    let assoc_to_c = [
        ("Action", "AssociateAddress"),
        ("AllocationId", alloc.as_str()),
        ("InstanceId", "i-0c0c0c0c"),
    ];
    refused(&w1, &assoc_to_c, "Resource.AlreadyAssociated");
    refused(
        &w1,
        &[("Action", "AssociateAddress"), ("PublicIp", &ip), ("InstanceId", "i-0c0c0c0c")],
        "InvalidParameterCombination",
    );
    refused(
        &w1,
        &[("Action", "AssociateAddress"), ("InstanceId", "i-0c0c0c0c")],
        "MissingParameter",
    );
    refused(&w1, &[("Action", "AssociateAddress"), ("AllocationId", &alloc)], "MissingParameter");
    refused(
        &w1,
        &[
            ("Action", "AssociateAddress"),
            ("AllocationId", "eipalloc-0999"),
            ("InstanceId", "i-0c0c0c0c"),
        ],
        "InvalidAllocationID.NotFound",
    );
    refused(
        &w1,
        &[("Action", "AssociateAddress"), ("AllocationId", &alloc), ("InstanceId", "i-0999")],
        "InvalidInstanceID.NotFound",
    );
    refused(
        &w1,
        &[
            ("Action", "AssociateAddress"),
            ("AllocationId", &alloc),
            ("InstanceId", "i-0c0c0c0c"),
            ("PrivateIpAddress", "10.0.3.99"),
        ],
        "InvalidParameterValue",
    );
    // A NAT gateway's address does not move.
    refused(
        &w1,
        &[
            ("Action", "AssociateAddress"),
            ("AllocationId", "eipalloc-0b0b0b0b"),
            ("InstanceId", "i-0c0c0c0c"),
            ("AllowReassociation", "true"),
        ],
        "InvalidIPAddress.InUse",
    );
    // AllowReassociation moves it: d loses it, c's own public IP is given up for it.
    let (w2, xml) =
        change(&w1, &[assoc_to_c.as_slice(), &[("AllowReassociation", "true")]].concat());
    let assoc2 = text(&xml, "associationId");
    assert_ne!(assoc2, assoc);
    assert!(ip_of(&w2, "i-0d0d0d0d").is_empty());
    assert_eq!(ip_of(&w2, "i-0c0c0c0c"), [ip.as_str()]);

    // ReleaseAddress of an associated address, and of the NAT gateway's.
    let release = [("Action", "ReleaseAddress"), ("AllocationId", alloc.as_str())];
    refused(&w2, &release, "InvalidIPAddress.InUse");
    refused(
        &w2,
        &[("Action", "ReleaseAddress"), ("AllocationId", "eipalloc-0b0b0b0b")],
        "InvalidIPAddress.InUse",
    );
    refused(&w2, &[("Action", "ReleaseAddress"), ("PublicIp", &ip)], "MissingParameter");

    // DisassociateAddress: the old association is gone, the NAT gateway's stays.
    refused(
        &w2,
        &[("Action", "DisassociateAddress"), ("AssociationId", &assoc)],
        "InvalidAssociationID.NotFound",
    );
    refused(
        &w2,
        &[("Action", "DisassociateAddress"), ("AssociationId", "eipassoc-zz")],
        "InvalidAssociationID.Malformed",
    );
    let nat_assoc = w2.elastic_ip("eipalloc-0b0b0b0b").unwrap().association_id.clone().unwrap();
    refused(
        &w2,
        &[("Action", "DisassociateAddress"), ("AssociationId", &nat_assoc)],
        "InvalidIPAddress.InUse",
    );
    refused(&w2, &[("Action", "DisassociateAddress"), ("PublicIp", &ip)], "MissingParameter");
    let (w3, xml) = change(&w2, &[("Action", "DisassociateAddress"), ("AssociationId", &assoc2)]);
    dump("DisassociateAddress", &xml);
    assert_eq!(text(&xml, "return"), "true");
    // c was given a public IP at launch: it gets a new one (see
    // `disassociating_gives_an_automatic_public_ip_back`).
    let new = ip_of(&w3, "i-0c0c0c0c");
    assert!(new.len() == 1 && new[0] != ip, "{new:?}");
    let xml = read_xml(&w3, &[("Action", "DescribeAddresses"), ("AllocationId.1", &alloc)]);
    assert!(texts(&xml, "associationId").is_empty(), "{xml}");
    assert!(texts(&xml, "instanceId").is_empty(), "{xml}");

    // Tags go with a released address.
    let (w4, _) =
        change(&w3, &[("Action", "CreateTags"), ("ResourceId.1", &alloc), ("Tag.1.Key", "k")]);
    let (w5, xml) = change(&w4, &release);
    dump("ReleaseAddress", &xml);
    assert_eq!(text(&xml, "return"), "true");
    assert!(w5.elastic_ip(&alloc).is_none());
    assert!(w5.tags_of(&alloc).is_none());
    refused(&w5, &release, "InvalidAllocationID.NotFound");
    refused(
        &w5,
        &[("Action", "DescribeAddresses"), ("AllocationId.1", &alloc)],
        "InvalidAllocationID.NotFound",
    );
    // The address is free again.
    let (_, xml) = change(&w5, &[("Action", "AllocateAddress"), ("Address", &ip)]);
    assert_eq!(text(&xml, "publicIp"), ip);
}

#[test]
fn terminating_an_instance_keeps_its_elastic_ip() {
    let (w, alloc, _) = allocate(&lab());
    let (w1, _) = change(
        &w,
        &[("Action", "AssociateAddress"), ("AllocationId", &alloc), ("InstanceId", "i-0d0d0d0d")],
    );
    let (w2, _) = change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", "i-0d0d0d0d")]);
    let xml = read_xml(&w2, &[("Action", "DescribeAddresses"), ("AllocationId.1", &alloc)]);
    assert!(texts(&xml, "instanceId").is_empty(), "{xml}");
    change(&w2, &[("Action", "ReleaseAddress"), ("AllocationId", &alloc)]);
}

#[test]
fn nat_gateway_lifecycle() {
    let (w, alloc, ip) = allocate(&lab());
    let create = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let base = [
            ("Action", "CreateNatGateway"),
            ("SubnetId", "subnet-0a0a0a0a"),
            ("AllocationId", alloc.as_str()),
        ];
        base.iter().chain(extra).copied().collect()
    };
    let (w1, xml) = change(
        &w,
        &create(&[
            ("ClientToken", "tok-1"),
            ("TagSpecification.1.ResourceType", "natgateway"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "nat-a"),
        ]),
    );
    dump("CreateNatGateway", &xml);
    let nat = text(&xml, "natGatewayId");
    assert_eq!(nat.len(), "nat-".len() + 17, "{nat}");
    // AWS answers `pending`; the gateway forwards at once.
    assert_eq!(text(&xml, "state"), "pending");
    assert_eq!(text(&xml, "clientToken"), "tok-1");
    assert_eq!(text(&xml, "subnetId"), "subnet-0a0a0a0a");
    assert_eq!(text(&xml, "vpcId"), "vpc-111bbb22");
    assert_eq!(text(&xml, "connectivityType"), "public");
    assert_eq!(text(&xml, "allocationId"), alloc);
    assert_eq!(text(&xml, "publicIp"), ip);
    assert_eq!(text(&xml, "privateIp"), "10.0.1.4");
    assert_eq!(text(&xml, "isPrimary"), "true");
    assert_eq!(text(&xml, "value"), "nat-a");
    assert!(w1.target_alive(&Target::Nat(nat.clone()), "vpc-111bbb22"));

    let xml = read_xml(&w1, &[("Action", "DescribeNatGateways"), ("NatGatewayId.1", &nat)]);
    dump("DescribeNatGateways", &xml);
    assert_eq!(texts(&xml, "natGatewayId"), [nat.as_str()]);
    assert_eq!(text(&xml, "state"), "available");
    assert_eq!(text(&xml, "status"), "succeeded");
    let f = |w: &World, name: &str, value: &str| {
        let xml = read_xml(
            w,
            &[
                ("Action", "DescribeNatGateways"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        texts(&xml, "natGatewayId")
    };
    assert_eq!(f(&w1, "state", "available"), ["nat-0b0b0b0b", nat.as_str()]);
    assert_eq!(f(&w1, "subnet-id", "subnet-0b0b0b0b"), ["nat-0b0b0b0b"]);
    assert_eq!(f(&w1, "vpc-id", "vpc-111bbb22").len(), 2);
    assert_eq!(f(&w1, "tag:Name", "nat-a"), [nat.as_str()]);
    assert_eq!(f(&w1, "nat-gateway-id", "nat-0b*"), ["nat-0b0b0b0b"]);
    // The address: the gateway's private IP, no instance.
    let xml = read_xml(&w1, &[("Action", "DescribeAddresses"), ("AllocationId.1", &alloc)]);
    assert_eq!(text(&xml, "privateIpAddress"), "10.0.1.4");
    assert!(texts(&xml, "instanceId").is_empty(), "{xml}");
    let xml = read_xml(
        &w1,
        &[("Action", "DescribeTags"), ("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &nat)],
    );
    assert_eq!(texts(&xml, "resourceType"), ["natgateway"]);

    // What CreateNatGateway refuses.
    refused(&w1, &create(&[]), "Resource.AlreadyAssociated");
    let (w2, alloc2, _) = allocate(&w1);
    let create2 = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let base = [("Action", "CreateNatGateway"), ("AllocationId", alloc2.as_str())];
        base.iter().chain(extra).copied().collect()
    };
    refused(&w2, &create2(&[("SubnetId", "subnet-0999")]), "InvalidSubnetID.NotFound");
    refused(&w2, &create2(&[("SubnetId", "subnet-zz")]), "InvalidSubnetID.Malformed");
    refused(&w2, &create2(&[]), "MissingParameter");
    refused(
        &w2,
        &[("Action", "CreateNatGateway"), ("SubnetId", "subnet-0c0c0c0c")],
        "MissingParameter",
    );
    refused(
        &w2,
        &[
            ("Action", "CreateNatGateway"),
            ("SubnetId", "subnet-0c0c0c0c"),
            ("AllocationId", "eipalloc-0999"),
        ],
        "InvalidAllocationID.NotFound",
    );
    let e = refused(
        &w2,
        &create2(&[("SubnetId", "subnet-0c0c0c0c"), ("ConnectivityType", "private")]),
        "InvalidParameterValue",
    );
    assert!(e.message.contains("not simulated"), "{e:?}");
    refused(
        &w2,
        &create2(&[("SubnetId", "subnet-0c0c0c0c"), ("PrivateIpAddress", "10.0.3.10")]),
        "InvalidIPAddress.InUse",
    );
    refused(
        &w2,
        &create2(&[("SubnetId", "subnet-0c0c0c0c"), ("PrivateIpAddress", "10.0.2.50")]),
        "InvalidParameterValue",
    );
    refused(
        &w2,
        &create2(&[("SubnetId", "subnet-0c0c0c0c"), ("PrivateIpAddress", "10.0.3.1")]),
        "InvalidParameterValue",
    );
    refused(
        &w2,
        &create2(&[("SubnetId", "subnet-0c0c0c0c"), ("SecondaryAllocationId.1", "eipalloc-1")]),
        "InvalidParameterValue",
    );
    let (w3, xml) = change(
        &w2,
        &create2(&[("SubnetId", "subnet-0c0c0c0c"), ("PrivateIpAddress", "10.0.3.99")]),
    );
    assert_eq!(text(&xml, "privateIp"), "10.0.3.99");
    let nat2 = text(&xml, "natGatewayId");

    // DeleteNatGateway: listed as deleted, the address is free, a second delete is refused.
    let delete = [("Action", "DeleteNatGateway"), ("NatGatewayId", nat.as_str())];
    let (w4, xml) = change(&w3, &delete);
    dump("DeleteNatGateway", &xml);
    assert_eq!(text(&xml, "natGatewayId"), nat);
    let xml = read_xml(&w4, &[("Action", "DescribeNatGateways"), ("NatGatewayId.1", &nat)]);
    assert_eq!(text(&xml, "state"), "deleted");
    assert_eq!(texts(&xml, "deleteTime").len(), 1);
    assert!(texts(&xml, "associationId").is_empty(), "{xml}");
    assert_eq!(f(&w4, "state", "deleted"), [nat.as_str()]);
    assert_eq!(f(&w4, "state", "available"), ["nat-0b0b0b0b", nat2.as_str()]);
    assert!(!w4.target_alive(&Target::Nat(nat.clone()), "vpc-111bbb22"));
    refused(&w4, &delete, "NatGatewayNotFound");
    refused(
        &w4,
        &[("Action", "DeleteNatGateway"), ("NatGatewayId", "nat-0999")],
        "NatGatewayNotFound",
    );
    refused(
        &w4,
        &[("Action", "DeleteNatGateway"), ("NatGatewayId", "nat-zz")],
        "InvalidNatGatewayID.Malformed",
    );
    refused(&w4, &[("Action", "DeleteNatGateway")], "MissingParameter");
    refused(
        &w4,
        &[("Action", "DescribeNatGateways"), ("NatGatewayId.1", "nat-0999")],
        "NatGatewayNotFound",
    );
    let xml = read_xml(&w4, &[("Action", "DescribeAddresses"), ("AllocationId.1", &alloc)]);
    assert!(texts(&xml, "privateIpAddress").is_empty(), "{xml}");
    let (w5, _) = change(&w4, &[("Action", "ReleaseAddress"), ("AllocationId", &alloc)]);
    // The deleted gateway's private address is free for an instance again.
    change(
        &w5,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0a0a0a0a"),
            ("PrivateIpAddress", "10.0.1.4"),
        ],
    );
}

#[test]
fn a_subnet_with_a_nat_gateway_cannot_be_deleted() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[("Action", "CreateSubnet"), ("VpcId", "vpc-111bbb22"), ("CidrBlock", "10.0.5.0/24")],
    );
    let subnet = text(&xml, "subnetId");
    let (w2, nat, _) = nat_in(&w1, &subnet);
    let delete_subnet = [("Action", "DeleteSubnet"), ("SubnetId", subnet.as_str())];
    let e = refused(&w2, &delete_subnet, "DependencyViolation");
    assert!(e.message.contains(&nat), "{e:?}");
    let (w3, _) = change(&w2, &[("Action", "DeleteNatGateway"), ("NatGatewayId", &nat)]);
    let (w4, _) = change(&w3, &delete_subnet);
    assert!(w4.subnet(&subnet).is_none());
    // The deleted gateway is still listed.
    let xml = read_xml(&w4, &[("Action", "DescribeNatGateways"), ("NatGatewayId.1", &nat)]);
    assert_eq!(text(&xml, "state"), "deleted");
}

#[test]
fn routes_to_nat_gateways() {
    let w = lab();
    // The default lab's private subnet d.
    assert_eq!(
        route_to(&w, "rtb-0d0d0d0d", "0.0.0.0/0"),
        ("natGatewayId".into(), "nat-0b0b0b0b".into(), "active".into())
    );
    let create = |table: &'static str, dest: &'static str, target: (&'static str, &'static str)| {
        vec![
            ("Action", "CreateRoute"),
            ("RouteTableId", table),
            ("DestinationCidrBlock", dest),
            target,
        ]
    };
    let (w1, xml) =
        change(&w, &create("rtb-0c0c0c0c", "0.0.0.0/0", ("NatGatewayId", "nat-0b0b0b0b")));
    assert_eq!(text(&xml, "return"), "true");
    let xml =
        read_xml(&w1, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-0c0c0c0c")]);
    dump("DescribeRouteTables-nat", &xml);
    assert_eq!(texts(&xml, "natGatewayId"), ["nat-0b0b0b0b"]);
    // Only the local, igw and endpoint routes have a gatewayId.
    assert_eq!(texts(&xml, "gatewayId"), ["local", "igw-1a2b3c4d", "vpce-11bb22cc"]);
    assert_eq!(
        route_to(&w1, "rtb-0c0c0c0c", "0.0.0.0/0"),
        ("natGatewayId".into(), "nat-0b0b0b0b".into(), "active".into())
    );
    assert!(
        w1.route_table("rtb-0c0c0c0c")
            .unwrap()
            .routes
            .iter()
            .any(|r| r.target == Target::Nat("nat-0b0b0b0b".into())
                && r.destination.to_string() == "0.0.0.0/0")
    );
    let f = |w: &World, name: &str, value: &str| {
        let xml = read_xml(
            w,
            &[
                ("Action", "DescribeRouteTables"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        // Associations repeat their table's id.
        let mut ids = texts(&xml, "routeTableId");
        ids.dedup();
        ids
    };
    assert_eq!(f(&w1, "route.nat-gateway-id", "nat-0b0b0b0b"), ["rtb-0c0c0c0c", "rtb-0d0d0d0d"]);
    assert!(f(&w1, "route.gateway-id", "nat-*").is_empty());
    // AWS takes a NAT gateway given as GatewayId and shows it as natGatewayId.
    let (w2, _) = change(&w, &create("rtb-0c0c0c0c", "0.0.0.0/0", ("GatewayId", "nat-0b0b0b0b")));
    assert_eq!(route_to(&w2, "rtb-0c0c0c0c", "0.0.0.0/0").0, "natGatewayId");

    // What CreateRoute refuses.
    refused(
        &w1,
        &create("rtb-0c0c0c0c", "0.0.0.0/0", ("NatGatewayId", "nat-0b0b0b0b")),
        "RouteAlreadyExists",
    );
    refused(
        &w,
        &create("rtb-0c0c0c0c", "0.0.0.0/0", ("NatGatewayId", "nat-0999")),
        "NatGatewayNotFound",
    );
    refused(
        &w,
        &create("rtb-0c0c0c0c", "0.0.0.0/0", ("NatGatewayId", "nat-zz")),
        "InvalidNatGatewayID.Malformed",
    );
    refused(
        &w,
        &[
            create("rtb-0c0c0c0c", "0.0.0.0/0", ("NatGatewayId", "nat-0b0b0b0b")),
            vec![("GatewayId", "igw-1a2b3c4d")],
        ]
        .concat(),
        "InvalidParameterCombination",
    );
    refused(
        &w,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-0c0c0c0c"),
            ("DestinationCidrBlock", "0.0.0.0/0"),
        ],
        "MissingParameter",
    );
    refused(
        &w,
        &create("rtb-0c0c0c0c", "0.0.0.0/0", ("NetworkInterfaceId", "eni-1")),
        "InvalidParameterValue",
    );
    // A NAT gateway of another VPC.
    let (v1, xml) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]);
    let vpc = text(&xml, "vpcId");
    let (v2, xml) =
        change(&v1, &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", "10.1.1.0/24")]);
    let (v3, other, _) = nat_in(&v2, &text(&xml, "subnetId"));
    let e = refused(
        &v3,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-0c0c0c0c"),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("NatGatewayId", &other),
        ],
        "InvalidParameterValue",
    );
    assert!(e.message.contains("vpc-111bbb22"), "{e:?}");

    // ReplaceRoute onto a NAT gateway, then deleting the gateway: the routes are blackholes.
    let (w3, _) = change(
        &w1,
        &[
            ("Action", "ReplaceRoute"),
            ("RouteTableId", "rtb-0c0c0c0c"),
            ("DestinationCidrBlock", "54.123.165.0/24"),
            ("NatGatewayId", "nat-0b0b0b0b"),
        ],
    );
    assert_eq!(route_to(&w3, "rtb-0c0c0c0c", "54.123.165.0/24").1, "nat-0b0b0b0b");
    let (w4, _) = change(&w3, &[("Action", "DeleteNatGateway"), ("NatGatewayId", "nat-0b0b0b0b")]);
    for (table, dest) in [
        ("rtb-0c0c0c0c", "0.0.0.0/0"),
        ("rtb-0c0c0c0c", "54.123.165.0/24"),
        ("rtb-0d0d0d0d", "0.0.0.0/0"),
    ] {
        assert_eq!(
            route_to(&w4, table, dest),
            ("natGatewayId".into(), "nat-0b0b0b0b".into(), "blackhole".into()),
            "{table} {dest}"
        );
    }
    assert_eq!(f(&w4, "route.state", "blackhole"), ["rtb-0c0c0c0c", "rtb-0d0d0d0d"]);
    // A deleted gateway is no new target.
    refused(
        &w4,
        &create("rtb-0a0a0a0a", "1.2.3.0/24", ("NatGatewayId", "nat-0b0b0b0b")),
        "NatGatewayNotFound",
    );
    // The blackhole route can be pointed elsewhere or deleted.
    let (w5, _) = change(
        &w4,
        &[
            ("Action", "ReplaceRoute"),
            ("RouteTableId", "rtb-0d0d0d0d"),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("GatewayId", "igw-1a2b3c4d"),
        ],
    );
    assert_eq!(
        route_to(&w5, "rtb-0d0d0d0d", "0.0.0.0/0"),
        ("gatewayId".into(), "igw-1a2b3c4d".into(), "active".into())
    );
}

#[test]
fn routes_to_nat_instances() {
    let w = lab();
    let replace = [
        ("Action", "ReplaceRoute"),
        ("RouteTableId", "rtb-0d0d0d0d"),
        ("DestinationCidrBlock", "0.0.0.0/0"),
        ("InstanceId", "i-0b0b0b0b"),
    ];
    let (w1, _) = change(&w, &replace);
    let xml =
        read_xml(&w1, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-0d0d0d0d")]);
    dump("DescribeRouteTables-instance", &xml);
    assert_eq!(texts(&xml, "instanceId"), ["i-0b0b0b0b"]);
    assert_eq!(texts(&xml, "instanceOwnerId"), [OWNER_ID]);
    // The instance's primary interface, as EC2 shows it beside the instance (botocore, Route
    // `NetworkInterfaceId`: "The ID of the network interface").
    assert_eq!(texts(&xml, "networkInterfaceId"), ["eni-0b0b0b0b"]);
    assert_eq!(
        route_to(&w1, "rtb-0d0d0d0d", "0.0.0.0/0"),
        ("instanceId".into(), "i-0b0b0b0b".into(), "active".into())
    );
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "route.instance-id"),
            ("Filter.1.Value.1", "i-0b0b0b0b"),
        ],
    );
    let mut ids = texts(&xml, "routeTableId");
    ids.dedup();
    assert_eq!(ids, ["rtb-0d0d0d0d"]);
    refused(
        &w,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-0c0c0c0c"),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("InstanceId", "i-0999"),
        ],
        "InvalidInstanceID.NotFound",
    );
    // An instance of another VPC.
    let (v1, xml) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]);
    let vpc = text(&xml, "vpcId");
    let (v2, xml) =
        change(&v1, &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", "10.1.1.0/24")]);
    let (v3, xml) = change(
        &v2,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", &text(&xml, "subnetId")),
        ],
    );
    let other = text(&xml, "instanceId");
    refused(
        &v3,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-0c0c0c0c"),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("InstanceId", &other),
        ],
        "InvalidParameterValue",
    );
    // A terminated NAT instance leaves a blackhole.
    let (w2, _) = change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", "i-0b0b0b0b")]);
    assert_eq!(
        route_to(&w2, "rtb-0d0d0d0d", "0.0.0.0/0"),
        ("instanceId".into(), "i-0b0b0b0b".into(), "blackhole".into())
    );
}

#[test]
fn source_dest_check() {
    let w = lab();
    let check_of = |w: &World, i: &str| {
        text(
            &read_xml(w, &[("Action", "DescribeInstances"), ("InstanceId.1", i)]),
            "sourceDestCheck",
        )
    };
    assert_eq!(check_of(&w, "i-0b0b0b0b"), "true");
    // The CLI's --no-source-dest-check.
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "ModifyInstanceAttribute"),
            ("InstanceId", "i-0b0b0b0b"),
            ("SourceDestCheck.Value", "false"),
        ],
    );
    dump("ModifyInstanceAttribute-sourceDestCheck", &xml);
    assert_eq!(text(&xml, "return"), "true");
    assert!(!w1.instance("i-0b0b0b0b").unwrap().source_dest_check);
    assert_eq!(check_of(&w1, "i-0b0b0b0b"), "false");
    assert_eq!(check_of(&w1, "i-0a0a0a0a"), "true");
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "source-dest-check"),
            ("Filter.1.Value.1", "false"),
        ],
    );
    assert_eq!(texts(&xml, "instanceId"), ["i-0b0b0b0b"]);
    let attribute = |w: &World, name: &'static str| {
        read_xml(
            w,
            &[
                ("Action", "DescribeInstanceAttribute"),
                ("InstanceId", "i-0b0b0b0b"),
                ("Attribute", name),
            ],
        )
    };
    let xml = attribute(&w1, "sourceDestCheck");
    dump("DescribeInstanceAttribute", &xml);
    assert_eq!(text(&xml, "instanceId"), "i-0b0b0b0b");
    assert_eq!(text(&xml, "value"), "false");
    assert_eq!(texts(&attribute(&w1, "groupSet"), "groupId"), ["sg-111bbb22"]);
    assert_eq!(text(&attribute(&w1, "instanceType"), "value"), "t3.micro");
    // The `Attribute` / `Value` form.
    let (w2, _) = change(
        &w1,
        &[
            ("Action", "ModifyInstanceAttribute"),
            ("InstanceId", "i-0b0b0b0b"),
            ("Attribute", "sourceDestCheck"),
            ("Value", "true"),
        ],
    );
    assert_eq!(check_of(&w2, "i-0b0b0b0b"), "true");
    assert_eq!(w2, w, "back to where it was");

    let modify = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        [("Action", "ModifyInstanceAttribute"), ("InstanceId", "i-0b0b0b0b")]
            .iter()
            .chain(extra)
            .copied()
            .collect()
    };
    refused(&w, &modify(&[("SourceDestCheck.Value", "maybe")]), "InvalidParameterValue");
    refused(
        &w,
        &modify(&[("SourceDestCheck.Value", "false"), ("GroupId.1", "sg-111bbb22")]),
        "InvalidParameterCombination",
    );
    refused(&w, &modify(&[]), "InvalidParameterCombination");
    refused(&w, &modify(&[("Attribute", "sourceDestCheck")]), "MissingParameter");
    refused(&w, &modify(&[("Attribute", "kernel"), ("Value", "k")]), "InvalidParameterValue");
    refused(
        &w,
        &[
            ("Action", "ModifyInstanceAttribute"),
            ("InstanceId", "i-0999"),
            ("SourceDestCheck.Value", "false"),
        ],
        "InvalidInstanceID.NotFound",
    );
    refused(
        &w,
        &[
            ("Action", "DescribeInstanceAttribute"),
            ("InstanceId", "i-0b0b0b0b"),
            ("Attribute", "kernel"),
        ],
        "InvalidParameterValue",
    );
    refused(
        &w,
        &[
            ("Action", "DescribeInstanceAttribute"),
            ("InstanceId", "i-0b0b0b0b"),
            ("Attribute", "x"),
        ],
        "InvalidParameterValue",
    );
    refused(
        &w,
        &[
            ("Action", "DescribeInstanceAttribute"),
            ("InstanceId", "i-0999"),
            ("Attribute", "groupSet"),
        ],
        "InvalidInstanceID.NotFound",
    );
}

#[test]
fn nat_world_round_trips_json() {
    let (w, nat, alloc) = nat_in(&lab(), "subnet-0a0a0a0a");
    let (w1, _) = change(&w, &[("Action", "DeleteNatGateway"), ("NatGatewayId", &nat)]);
    let json = serde_json::to_string(&w1).unwrap();
    let back: World = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w1);
    assert_eq!(back.nat_gateway(&nat).unwrap().state, crate::model::NatState::Deleted);
    assert!(back.elastic_ip(&alloc).is_some());
}

/// EC2 User Guide, Elastic IP addresses: when an Elastic IP is associated with "an instance in
/// which you assigned a public IP to the eth0 network interface during launch, its current
/// public IP address is released … If you disassociate an EIP from the instance, the instance
/// is automatically assigned a new public IP address within a few minutes. However, if you
/// have attached a second network interface to the instance, the instance is not automatically
/// assigned a new public IP address" (the lab has no second interfaces, and assigns it at once).
/// An instance launched without one gets none.
#[test]
fn disassociating_gives_an_automatic_public_ip_back() {
    let describe = |w: &World, i: &str| {
        let xml = read_xml(w, &[("Action", "DescribeInstances"), ("InstanceId.1", i)]);
        // The owner is shown for the interface and for its private address.
        let mut owners = texts(&xml, "ipOwnerId");
        owners.dedup();
        (texts(&xml, "ipAddress"), owners)
    };
    let associate = |w: &World, alloc: &str, i: &str, again: bool| {
        let mut p =
            vec![("Action", "AssociateAddress"), ("AllocationId", alloc), ("InstanceId", i)];
        if again {
            p.push(("AllowReassociation", "true"));
        }
        let (w1, xml) = change(w, &p);
        (w1, text(&xml, "associationId"))
    };
    let disassociate = |w: &World, assoc: &str| {
        change(w, &[("Action", "DisassociateAddress"), ("AssociationId", assoc)]).0
    };
    let (w, alloc, eip) = allocate(&lab());
    // c was given 203.0.113.30 at launch (a lab file's `public_ip`: owner `amazon`).
    assert_eq!(describe(&w, "i-0c0c0c0c"), (vec!["203.0.113.30".into()], vec!["amazon".into()]));
    let (w1, assoc) = associate(&w, &alloc, "i-0c0c0c0c", false);
    assert_eq!(describe(&w1, "i-0c0c0c0c"), (vec![eip.clone()], vec!["123456789012".into()]));
    let w2 = disassociate(&w1, &assoc);
    let (ips, owners) = describe(&w2, "i-0c0c0c0c");
    assert_eq!(owners, ["amazon"], "{ips:?}");
    let new: std::net::Ipv4Addr = ips[0].parse().unwrap();
    assert_ne!(ips[0], eip);
    assert!(crate::model::PUBLIC_IP_RANGE.contains(&new), "{new}");
    assert_eq!(w2.instances.iter().filter(|i| i.public_ip == Some(new)).count(), 1);
    assert!(w2.elastic_ips.iter().chain(&w.elastic_ips).all(|e| e.public_ip != new));
    // The address is the Elastic IP's no more, and stays allocated.
    let xml = read_xml(&w2, &[("Action", "DescribeAddresses"), ("AllocationId.1", &alloc)]);
    assert!(texts(&xml, "associationId").is_empty(), "{xml}");
    assert!(texts(&xml, "instanceId").is_empty(), "{xml}");
    assert_eq!(texts(&xml, "publicIp"), [eip.as_str()]);
    // Again: another new address each time (the one given up goes back to the pool).
    let (w3, assoc) = associate(&w2, &alloc, "i-0c0c0c0c", false);
    let w4 = disassociate(&w3, &assoc);
    assert_eq!(describe(&w4, "i-0c0c0c0c").1, ["amazon"]);

    // d was launched without one: disassociating leaves it without.
    let (w5, assoc) = associate(&w4, &alloc, "i-0d0d0d0d", false);
    assert_eq!(describe(&w5, "i-0d0d0d0d").0, [eip.as_str()]);
    let w6 = disassociate(&w5, &assoc);
    assert_eq!(describe(&w6, "i-0d0d0d0d"), (vec![], vec![]));

    // Moved away by AllowReassociation: a (given .10 at launch) gets a new one, which is not
    // the address c gives up for the Elastic IP.
    let (w7, _) = associate(&w6, &alloc, "i-0a0a0a0a", false);
    let (w8, _) = associate(&w7, &alloc, "i-0c0c0c0c", true);
    let (a_ips, a_owner) = describe(&w8, "i-0a0a0a0a");
    assert_eq!(a_owner, ["amazon"], "{a_ips:?}");
    let c_before = describe(&w7, "i-0c0c0c0c").0;
    assert!(a_ips[0] != eip && a_ips != c_before, "{a_ips:?} {c_before:?}");
    assert_eq!(describe(&w8, "i-0c0c0c0c").0, [eip.as_str()]);

    // Launched by RunInstances with and without AssociatePublicIpAddress.
    let run = |w: &World, public: &str| {
        let (w1, xml) = change(
            w,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-0abcdef1234567890"),
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SubnetId", "subnet-0b0b0b0b"),
                ("NetworkInterface.1.AssociatePublicIpAddress", public),
            ],
        );
        (w1, text(&xml, "instanceId"))
    };
    for (public, after) in [("true", 1), ("false", 0)] {
        let (w9, id) = run(&w6, public);
        let (w10, assoc) = associate(&w9, &alloc, &id, false);
        let w11 = disassociate(&w10, &assoc);
        let (ips, _) = describe(&w11, &id);
        assert_eq!(ips.len(), after, "AssociatePublicIpAddress {public}: {ips:?}");
        assert!(ips.iter().all(|ip| *ip != eip));
    }
}
