use super::*;
use crate::model::{AclAssociation, Peer, Ports, Protocol, SgRule};

fn demo() -> World {
    crate::lab::file::parse("demo.toml", crate::lab::file::DEFAULT_LAB).unwrap()
}

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}

type Corruption = (&'static str, fn(&mut World), &'static str, &'static str);

/// One corruption per kind of reference and rule: each is refused, naming the field, the
/// object's id and the rule.
#[test]
fn every_broken_rule_is_named_with_its_field() {
    assert_eq!(demo().check(), Ok(()));
    let cases: &[Corruption] = &[
        (
            "subnets[0].route_table (subnet-0a0a0a0a)",
            |w| w.subnets[0].route_table = "rtb-deadbeef".into(),
            "the routeTable ID 'rtb-deadbeef' does not exist",
            "subnet → route table",
        ),
        (
            "subnets[0].cidr (subnet-0a0a0a0a)",
            |w| w.subnets[0].cidr = net("192.168.1.0/24"),
            "invalid for a subnet of a VPC with CIDR 10.0.0.0/16",
            "subnet outside its VPC",
        ),
        (
            "subnets[0].cidr (subnet-0a0a0a0a)",
            |w| w.subnets[1].cidr = net("10.0.1.0/25"),
            "conflicts with subnet subnet-0b0b0b0b",
            "overlapping subnets",
        ),
        (
            "subnets[0].vpc (subnet-0a0a0a0a)",
            |w| w.subnets[0].vpc = "vpc-deadbeef".into(),
            "the vpc ID 'vpc-deadbeef' does not exist",
            "subnet → VPC",
        ),
        (
            "subnets[0].id (subnet-0a0a0a0g)",
            |w| w.subnets[0].id = "subnet-0a0a0a0g".into(),
            "invalid id",
            "malformed id",
        ),
        (
            "subnets[0].id (subnet-0a0a0a0a)",
            |w| w.subnets[1].id = "subnet-0a0a0a0a".into(),
            "'subnet-0a0a0a0a' is already used",
            "duplicate id",
        ),
        (
            "subnets[1].route_table (subnet-0b0b0b0b)",
            |w| w.subnets[1].association_id = None,
            "has no explicit association but uses rtb-0b0b0b0b",
            "implicit association",
        ),
        (
            "route_tables[2].routes[0].target (rtb-0c0c0c0c)",
            |w| w.route_tables[2].routes[0].target = Target::Igw("igw-deadbeef".into()),
            "the gateway ID 'igw-deadbeef' does not exist",
            "route → igw",
        ),
        (
            "route_tables[3].routes[0].target (rtb-0d0d0d0d)",
            |w| w.route_tables[3].routes[0].target = Target::Nat("nat-deadbeef".into()),
            "the NAT gateway 'nat-deadbeef' was not found",
            "route → nat",
        ),
        (
            "route_tables[3].routes[0].target (rtb-0d0d0d0d)",
            |w| w.route_tables[3].routes[0].target = Target::Instance("i-deadbeef".into()),
            "the instance ID 'i-deadbeef' does not exist",
            "route → instance",
        ),
        (
            "route_tables[3].routes[0].target (rtb-0d0d0d0d)",
            |w| w.route_tables[3].routes[0].target = Target::Vpce("vpce-11bb22cc".into()),
            "You cannot explicitly add",
            "route → vpce",
        ),
        (
            "route_tables[0].routes[0].destination (rtb-0a0a0a0a)",
            |w| w.route_tables[0].routes[0].destination = net("10.0.9.0/24"),
            "only the local route covers it",
            "route inside the VPC",
        ),
        (
            "route_tables[0].routes[1].destination (rtb-0a0a0a0a)",
            |w| {
                let r = w.route_tables[0].routes[0].clone();
                w.route_tables[0].routes.push(r);
            },
            "already exists in rtb-0a0a0a0a",
            "duplicate route",
        ),
        (
            "route_tables[1].vpc (rtb-0b0b0b0b)",
            |w| w.route_tables[1].vpc = "vpc-deadbeef".into(),
            "the vpc ID 'vpc-deadbeef' does not exist",
            "route table → VPC",
        ),
        (
            "vpcs[0].main_route_table (vpc-111bbb22)",
            |w| w.vpcs[0].main_route_table = Some("rtb-deadbeef".into()),
            "the routeTable ID 'rtb-deadbeef' does not exist",
            "VPC → main table",
        ),
        (
            "internet_gateways[0].vpc (igw-1a2b3c4d)",
            |w| w.internet_gateways[0].vpc = Some("vpc-deadbeef".into()),
            "the vpc ID 'vpc-deadbeef' does not exist",
            "igw → VPC",
        ),
        (
            "endpoints[0].route_tables[1] (vpce-11bb22cc)",
            |w| w.endpoints[0].route_tables[1] = "rtb-deadbeef".into(),
            "the routeTable ID 'rtb-deadbeef' does not exist",
            "endpoint → route table",
        ),
        (
            "endpoints[0].service (vpce-11bb22cc)",
            |w| w.endpoints[0].service = "com.amazonaws.us-west-2.s3".into(),
            "in a different region",
            "endpoint → service",
        ),
        (
            "instances[0].subnet (i-0a0a0a0a)",
            |w| w.instances[0].subnet = "subnet-deadbeef".into(),
            "the subnet ID 'subnet-deadbeef' does not exist",
            "instance → subnet",
        ),
        (
            "instances[0].security_groups[0] (i-0a0a0a0a)",
            |w| w.instances[0].security_groups = vec!["sg-deadbeef".into()],
            "the security group 'sg-deadbeef' does not exist",
            "instance → group",
        ),
        (
            "instances[0].private_ip (i-0a0a0a0a)",
            |w| w.instances[0].private_ip = "10.0.2.10".parse().unwrap(),
            "is not available in subnet 10.0.1.0/24",
            "address outside its subnet",
        ),
        (
            "instances[1].private_ip (i-0b0b0b0b)",
            |w| w.instances[1].private_ip = "10.0.2.40".parse().unwrap(),
            "address 10.0.2.40 is in use",
            "address of the NAT gateway",
        ),
        (
            "instances[0].public_ip (i-0a0a0a0a)",
            |w| w.instances[1].public_ip = Some("203.0.113.10".parse().unwrap()),
            "address 203.0.113.10 is in use",
            "public address twice",
        ),
        (
            "network_acls[0].associations[0].subnet (acl-111bbb22)",
            |w| {
                w.network_acls[0].associations.push(AclAssociation {
                    id: "aclassoc-0123".into(),
                    subnet: "subnet-deadbeef".into(),
                })
            },
            "the subnet ID 'subnet-deadbeef' does not exist",
            "ACL association → subnet",
        ),
        (
            "security_groups[0].egress[1] (sg-111bbb22)",
            |w| {
                let r = SgRule::new(Protocol::Tcp, Ports::All, Peer::Group("sg-deadbeef".into()));
                w.security_groups[0].egress.push(r)
            },
            "the security group 'sg-deadbeef' does not exist",
            "group → peer group",
        ),
        (
            "security_groups[0].egress[1] (sg-111bbb22)",
            |w| {
                let r =
                    SgRule::new(Protocol::Tcp, Ports::All, Peer::PrefixList("pl-deadbeef".into()));
                w.security_groups[0].egress.push(r)
            },
            "the prefix list ID 'pl-deadbeef' does not exist",
            "group → prefix list",
        ),
        (
            "nat_gateways[0].subnet (nat-0b0b0b0b)",
            |w| w.nat_gateways[0].subnet = "subnet-deadbeef".into(),
            "the subnet ID 'subnet-deadbeef' does not exist",
            "NAT gateway → subnet",
        ),
        (
            "nat_gateways[0].allocation_id (nat-0b0b0b0b)",
            |w| w.nat_gateways[0].allocation_id = "eipalloc-deadbeef".into(),
            "the allocation ID 'eipalloc-deadbeef' does not exist",
            "NAT gateway → Elastic IP",
        ),
        (
            "elastic_ips[0].nat_gateway",
            |w| w.elastic_ips[0].nat_gateway = Some("nat-deadbeef".into()),
            "the NAT gateway 'nat-deadbeef' was not found",
            "Elastic IP → NAT gateway",
        ),
        (
            "buckets[0].name (Bad)",
            |w| w.buckets[0].name = "Bad".into(),
            "bucket name is not valid",
            "bucket name",
        ),
    ];
    let mut wrong = Vec::new();
    for (field, corrupt, message, what) in cases {
        let mut w = demo();
        corrupt(&mut w);
        match w.check() {
            Err(e) if e.to_string().starts_with(field) && e.to_string().contains(message) => {}
            r => wrong.push(format!("{what}: {r:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// What API changes leave behind loads: routes to a deleted NAT gateway, a terminated
/// instance (listed, then expired), a detached and then deleted internet gateway.
#[test]
fn blackholes_left_by_api_changes_pass() {
    let mut w = demo();
    w.delete_nat_gateway("nat-0b0b0b0b").unwrap();
    let r =
        Route { destination: net("100.64.0.0/16"), target: Target::Instance("i-0c0c0c0c".into()) };
    w.instances.iter_mut().for_each(|i| i.source_dest_check = false);
    w.add_route("rtb-0b0b0b0b", r).unwrap();
    w.terminate_instance("i-0c0c0c0c", 1000).unwrap();
    assert_eq!(w.check(), Ok(()));
    // An hour later another termination drops it from the list; the route keeps its id.
    w.terminate_instance("i-0d0d0d0d", 1000 + crate::model::TERMINATED_VISIBLE_SECS).unwrap();
    assert!(w.terminated_instance("i-0c0c0c0c", 5000).is_none());
    assert!(w.gone_targets.contains("i-0c0c0c0c"));
    assert_eq!(w.check(), Ok(()));
    for i in w.instances.iter_mut() {
        i.public_ip = None;
    }
    w.elastic_ips.iter_mut().for_each(|e| {
        e.instance = None;
        e.association_id = None;
    });
    w.detach_internet_gateway("igw-1a2b3c4d", "vpc-111bbb22").unwrap();
    assert_eq!(w.check(), Ok(()));
    w.delete_internet_gateway("igw-1a2b3c4d").unwrap();
    assert!(w.gone_targets.contains("igw-1a2b3c4d"));
    let back: World = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(back.check(), Ok(()));
    // Without the record of what went, those routes name nothing.
    let mut forgot = back.clone();
    forgot.gone_targets.clear();
    let e = forgot.check().unwrap_err();
    assert_eq!(*e.error, ModelError::GatewayNotFound("igw-1a2b3c4d".into()), "{e}");
}

/// A journal record's new routes are held to CreateRoute's rules; the routes the table
/// already had are not checked again (a blackhole to what is gone stays).
#[test]
fn new_routes_are_checked_as_create_route_checks_them() {
    let mut w = demo();
    w.delete_nat_gateway("nat-0b0b0b0b").unwrap();
    let mut routes = w.route_table("rtb-0d0d0d0d").unwrap().routes.clone();
    routes.push(Route {
        destination: net("100.64.0.0/16"),
        target: Target::Igw("igw-1a2b3c4d".into()),
    });
    assert_eq!(w.check_new_routes("rtb-0d0d0d0d", &routes), Ok(()));
    routes.push(Route {
        destination: net("100.65.0.0/16"),
        target: Target::Nat("nat-0b0b0b0b".into()),
    });
    let e = w.check_new_routes("rtb-0d0d0d0d", &routes).unwrap_err();
    assert_eq!(e.field, "routes[2].target");
    assert_eq!(*e.error, ModelError::NatGatewayNotFound("nat-0b0b0b0b".into()));
}
