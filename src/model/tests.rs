use super::*;
use crate::model::{
    AclEntry, Direction, Peer, Ports, Protocol, RuleAction, SgRule, parse_acl_cidr,
};

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// The guide's first example: one VPC, one table with local and a default route to the IGW.
fn guide_world() -> World {
    let mut w = World::new("t", "us-east-1").unwrap();
    w.add_vpc(Vpc {
        id: "vpc-111bbb22".into(),
        cidr: net("10.0.0.0/16"),
        enable_dns_support: true,
        main_route_table: None,
        main_association_id: None,
    })
    .unwrap();
    w.add_internet_gateway(InternetGateway {
        id: "igw-1a2b3c4d".into(),
        vpc: Some("vpc-111bbb22".into()),
    })
    .unwrap();
    w.add_route_table("rtb-1", "vpc-111bbb22").unwrap();
    w.add_route(
        "rtb-1",
        Route { destination: net("0.0.0.0/0"), target: Target::Igw("igw-1a2b3c4d".into()) },
    )
    .unwrap();
    w
}

fn s3_endpoint(id: &str, tables: &[&str]) -> Endpoint {
    Endpoint {
        id: id.into(),
        vpc: "vpc-111bbb22".into(),
        service: "com.amazonaws.us-east-1.s3".into(),
        route_tables: tables.iter().map(|t| t.to_string()).collect(),
        policy: None,
    }
}

#[test]
fn endpoint_route_appears_with_association() {
    let mut w = guide_world();
    w.add_endpoint(s3_endpoint("vpce-11bb22cc", &["rtb-1"])).unwrap();
    let routes = w.effective_routes("rtb-1");
    assert_eq!(routes.len(), 3);
    assert_eq!(
        routes[2],
        EffectiveRoute {
            destination: Destination::PrefixList("pl-1a2b3c4d".into()),
            target: Target::Vpce("vpce-11bb22cc".into()),
        }
    );
}

#[test]
fn route_to_endpoint_is_refused() {
    // From the guide: "You can only add an endpoint route by associating a route table with an
    // endpoint."
    let mut w = guide_world();
    let err = w
        .add_route(
            "rtb-1",
            Route { destination: net("54.123.160.0/19"), target: Target::Vpce("vpce-1".into()) },
        )
        .unwrap_err();
    assert_eq!(err, ModelError::ExplicitEndpointRoute);
    assert!(err.to_string().contains("You can only add an endpoint route by associating"));
}

#[test]
fn two_endpoints_same_service_same_table_refused() {
    let mut w = guide_world();
    w.add_endpoint(s3_endpoint("vpce-11bb22cc", &["rtb-1"])).unwrap();
    let before = w.clone();
    let err = w.add_endpoint(s3_endpoint("vpce-22cc33dd", &["rtb-1"])).unwrap_err();
    assert!(matches!(err, ModelError::EndpointServiceAlreadyInTable { .. }));
    assert_eq!(w, before, "a refused change changes nothing");
    // "you can have multiple endpoint routes to the same service in different route tables"
    w.add_route_table("rtb-2", "vpc-111bbb22").unwrap();
    w.add_endpoint(s3_endpoint("vpce-22cc33dd", &["rtb-2"])).unwrap();
}

#[test]
fn cross_region_endpoint_refused() {
    let mut w = guide_world();
    let mut ep = s3_endpoint("vpce-11bb22cc", &["rtb-1"]);
    ep.service = "com.amazonaws.us-west-2.s3".into();
    assert!(matches!(w.add_endpoint(ep), Err(ModelError::CrossRegionEndpoint { .. })));
    let mut ep = s3_endpoint("vpce-11bb22cc", &["rtb-1"]);
    ep.service = "com.amazonaws.us-east-1.dynamodb".into();
    assert!(matches!(w.add_endpoint(ep), Err(ModelError::InvalidServiceName(_))));
}

#[test]
fn identical_cidr_route_is_compiled_after_the_prefix_list() {
    let mut w = guide_world();
    w.add_route(
        "rtb-1",
        Route { destination: net("54.123.160.0/19"), target: Target::Igw("igw-1a2b3c4d".into()) },
    )
    .unwrap();
    w.add_endpoint(s3_endpoint("vpce-11bb22cc", &["rtb-1"])).unwrap();
    let compiled = w.compiled_routes("rtb-1");
    let pos_pl = compiled.iter().position(|(_, t)| matches!(t, Target::Vpce(_))).unwrap();
    let pos_cidr = compiled
        .iter()
        .position(|(c, t)| *c == net("54.123.160.0/19") && matches!(t, Target::Igw(_)))
        .unwrap();
    assert!(pos_pl < pos_cidr, "the user's identical route must win: {compiled:?}");
}

#[test]
fn instance_address_rules() {
    let mut w = guide_world();
    w.add_subnet(Subnet {
        id: "subnet-0a".into(),
        name: "a".into(),
        vpc: "vpc-111bbb22".into(),
        cidr: net("10.0.1.0/24"),
        route_table: "rtb-1".into(),
        association_id: None,
    })
    .unwrap();
    let inst = |ip: [u8; 4]| Instance {
        source_dest_check: true,
        id: format!("i-{:02x}", ip[3]),
        subnet: "a".into(),
        private_ip: Ipv4Addr::from(ip),
        public_ip: None,
        auto_public_ip: false,
        image_id: None,
        instance_type: None,
        security_groups: vec![],
        reservation: None,
        launched_at: None,
        client_token: None,
    };
    assert!(w.add_instance(inst([10, 0, 1, 3])).is_err(), "reserved");
    assert!(w.add_instance(inst([10, 0, 1, 255])).is_err(), "broadcast");
    assert!(w.add_instance(inst([10, 0, 2, 10])).is_err(), "other subnet");
    w.add_instance(inst([10, 0, 1, 10])).unwrap();
    assert_eq!(w.instances[0].subnet, "subnet-0a", "names resolve to ids");
}

#[test]
fn malformed_ids_refused() {
    let mut w = World::new("t", "us-east-1").unwrap();
    let err = w
        .add_vpc(Vpc {
            id: "vpc_1".into(),
            cidr: net("10.0.0.0/16"),
            enable_dns_support: true,
            main_route_table: None,
            main_association_id: None,
        })
        .unwrap_err();
    assert!(matches!(err, ModelError::MalformedId { .. }));
    assert!(World::new("Bad Name", "us-east-1").is_err());
    assert!(World::new("t", "mars-1").is_err());
}

fn demo() -> World {
    crate::lab::file::parse("demo.toml", crate::lab::file::DEFAULT_LAB).unwrap()
}

#[test]
fn lab_file_main_table_and_explicit_associations() {
    let w = demo();
    let vpc = w.vpc("vpc-111bbb22").unwrap();
    assert_eq!(vpc.main_route_table.as_deref(), Some("rtb-0a0a0a0a"), "first table of the VPC");
    assert!(vpc.main_association_id.as_deref().unwrap().starts_with("rtbassoc-0"));
    assert!(w.subnets.iter().all(|s| s.association_id.is_some()), "lab subnets are explicit");
}

type Attempt = Box<dyn Fn(&mut World) -> Result<(), ModelError>>;

/// Every refused mutation leaves the world exactly as it was.
#[test]
fn refused_mutations_change_nothing() {
    let w = demo();
    let s3 = "com.amazonaws.us-east-1.s3";
    let attempts: Vec<(&str, Attempt)> = vec![
        ("delete vpc with dependencies", Box::new(|w| w.delete_vpc("vpc-111bbb22"))),
        ("delete subnet with instance", Box::new(|w| w.delete_subnet("subnet-0a0a0a0a"))),
        ("delete main table", Box::new(|w| w.delete_route_table("rtb-0a0a0a0a"))),
        ("delete associated table", Box::new(|w| w.delete_route_table("rtb-0b0b0b0b"))),
        (
            "associate an associated subnet",
            Box::new(|w| w.associate_route_table("rtb-0c0c0c0c", "subnet-0b0b0b0b").map(|_| ())),
        ),
        (
            "disassociate the main association",
            Box::new(|w| {
                let main = w.vpcs[0].main_association_id.clone().unwrap();
                w.disassociate_route_table(&main)
            }),
        ),
        (
            "replace a missing route",
            Box::new(|w| {
                w.replace_route(
                    "rtb-0b0b0b0b",
                    Route {
                        destination: net("9.9.9.0/24"),
                        target: Target::Igw("igw-1a2b3c4d".into()),
                    },
                )
            }),
        ),
        (
            "replace with an endpoint target",
            Box::new(|w| {
                w.replace_route(
                    "rtb-0b0b0b0b",
                    Route {
                        destination: net("0.0.0.0/0"),
                        target: Target::Vpce("vpce-11bb22cc".into()),
                    },
                )
            }),
        ),
        (
            "delete the local route",
            Box::new(|w| w.delete_route("rtb-0b0b0b0b", net("10.0.0.0/16"))),
        ),
        (
            "attach an attached igw",
            Box::new(|w| w.attach_internet_gateway("igw-1a2b3c4d", "vpc-111bbb22")),
        ),
        (
            "detach with public IPs",
            Box::new(|w| w.detach_internet_gateway("igw-1a2b3c4d", "vpc-111bbb22")),
        ),
        ("delete an attached igw", Box::new(|w| w.delete_internet_gateway("igw-1a2b3c4d"))),
        (
            "second s3 endpoint in a table",
            Box::new(|w| {
                w.add_endpoint(Endpoint {
                    id: "vpce-22cc33dd".into(),
                    vpc: "vpc-111bbb22".into(),
                    service: s3.into(),
                    route_tables: vec!["rtb-0b0b0b0b".into(), "rtb-0c0c0c0c".into()],
                    policy: None,
                })
            }),
        ),
        (
            "modify: remove an unused table",
            Box::new(|w| {
                w.modify_endpoint(
                    "vpce-11bb22cc",
                    &["rtb-0b0b0b0b".into()],
                    &["rtb-0b0b0b0b".into()],
                    PolicyChange::Keep,
                )
            }),
        ),
        (
            "modify: policy without principal",
            Box::new(|w| {
                w.modify_endpoint(
                    "vpce-11bb22cc",
                    &["rtb-0b0b0b0b".into()],
                    &[],
                    PolicyChange::Set(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#.into()),
                )
            }),
        ),
        ("delete a missing endpoint", Box::new(|w| w.delete_endpoint("vpce-0999"))),
        ("remove a missing instance", Box::new(|w| w.remove_instance("i-0999").map(|_| ()))),
        (
            "tag an endpoint",
            Box::new(|w| {
                w.create_tags(
                    &["vpc-111bbb22".into(), "vpce-11bb22cc".into()],
                    &[("k".into(), "v".into())],
                )
            }),
        ),
    ];
    for (what, f) in attempts {
        let mut after = w.clone();
        assert!(f(&mut after).is_err(), "{what}: accepted");
        assert_eq!(after, w, "{what}: a refused change changed the world");
    }
}

#[test]
fn generated_ids_have_the_aws_long_form() {
    let mut w = World::new("t", "us-east-1").unwrap();
    let a = w.generate_id("vpc");
    let b = w.generate_id("vpc");
    assert_ne!(a, b);
    assert_eq!(a.len(), 4 + 17);
    assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
}

fn tcp(port: &str, peer: Peer) -> SgRule {
    SgRule::new(Protocol::Tcp, Ports::parse_lab(Protocol::Tcp, Some(port)).unwrap(), peer)
}

fn acl_entry(n: u16, egress: bool) -> AclEntry {
    AclEntry {
        rule_number: n,
        egress,
        protocol: Protocol::All,
        ports: Ports::All,
        cidr: net("0.0.0.0/0"),
        action: RuleAction::Allow,
    }
}

/// A demo world with group sg-0a0a0001 ("web", referencing the default group) and ACL
/// acl-0a0a0001 (associated with subnet a, one entry).
fn filters_world() -> World {
    let mut w = demo();
    w.create_security_group("sg-0a0a0001", "web", "web servers", "vpc-111bbb22").unwrap();
    w.authorize_security_group(
        "sg-0a0a0001",
        Direction::Ingress,
        &[tcp("80", Peer::Group("sg-111bbb22".into()))],
    )
    .unwrap();
    w.set_instance_groups("i-0a0a0a0a", &["sg-0a0a0001".into()]).unwrap();
    w.create_network_acl("acl-0a0a0001", "vpc-111bbb22").unwrap();
    w.add_network_acl_entry("acl-0a0a0001", acl_entry(100, true)).unwrap();
    w.associate_network_acl("acl-0a0a0001", "a").unwrap();
    w
}

#[test]
fn security_group_and_network_acl_rules() {
    let w = filters_world();
    let sg = w.security_group("sg-0a0a0001").unwrap();
    assert_eq!(sg.egress.len(), 1, "a new group allows all egress");
    assert!(sg.egress[0].same_as(&SgRule::allow_all()));
    assert!(sg.egress[0].id.starts_with("sgr-0"), "{:?}", sg.egress[0]);
    let d = w.security_group("sg-111bbb22").unwrap();
    assert_eq!(d.ingress.len(), 1);
    assert!(d.ingress[0].same_as(&SgRule::new(
        Protocol::All,
        Ports::All,
        Peer::Group(d.id.clone())
    )));
    assert_eq!(w.instance_groups(w.instance("i-0b0b0b0b").unwrap()), ["sg-111bbb22"]);
    // Ports: AWS's forms.
    assert_eq!(
        Ports::from_aws(Protocol::Tcp, Some(-1), Some(-1)),
        Ok(Ports::Range { from: 0, to: 65535 })
    );
    assert!(Ports::from_aws(Protocol::Tcp, Some(443), None).is_err());
    assert!(Ports::from_aws(Protocol::Udp, Some(70000), Some(70000)).is_err());
    assert!(Ports::from_aws(Protocol::Icmp, Some(-1), Some(3)).is_err(), "a code needs a type");
    assert_eq!(Ports::from_aws(Protocol::All, Some(1), Some(2)), Ok(Ports::All));
    assert_eq!(
        Ports::parse_lab(Protocol::Icmp, Some("3:4")),
        Ok(Ports::Icmp { icmp_type: Some(3), code: Some(4) })
    );
    assert!(Ports::parse_lab(Protocol::Tcp, None).is_err());
    // The guide's sentence for a prefix list in an ACL entry.
    let e = parse_acl_cidr("pl-1a2b3c4d").unwrap_err();
    assert!(
        e.to_string()
            .contains("You cannot use prefix list IDs to create an outbound rule in a network ACL"),
        "{e}"
    );
    assert_eq!(parse_acl_cidr("10.0.1.7/24"), Ok(net("10.0.1.0/24")));
    // Moving subnet a back to the default ACL through its explicit association.
    let mut w2 = w.clone();
    let (_, assoc) = w2.subnet_acl("a").unwrap();
    let new = w2.replace_network_acl_association(&assoc, "acl-111bbb22").unwrap();
    assert_eq!(w2.subnet_acl("a").unwrap(), (w2.network_acl("acl-111bbb22").unwrap(), new));
    w2.delete_network_acl("acl-0a0a0001").unwrap();
    // Deleting subnet b forgets nothing it should not; a removed group's tags go with it.
    let mut w3 = w.clone();
    w3.create_tags(&["sg-0a0a0001".into()], &[("Name".into(), "web".into())]).unwrap();
    w3.set_instance_groups("i-0a0a0a0a", &["sg-111bbb22".into()]).unwrap();
    w3.delete_security_group("sg-0a0a0001").unwrap();
    assert!(w3.tags_of("sg-0a0a0001").is_none());
}

/// Every refused security-group or network-ACL mutation leaves the world exactly as it was.
#[test]
fn refused_filter_mutations_change_nothing() {
    let w = filters_world();
    let cases: Vec<(&str, Attempt, &str)> = vec![
        (
            "duplicate name",
            Box::new(|w| w.create_security_group("sg-0a0a0002", "web", "x", "vpc-111bbb22")),
            "InvalidGroup.Duplicate",
        ),
        (
            "reserved name",
            Box::new(|w| w.create_security_group("sg-0a0a0002", "default", "x", "vpc-111bbb22")),
            "InvalidParameterValue",
        ),
        (
            "id taken by a default group",
            Box::new(|w| w.create_security_group("sg-111bbb22", "other", "x", "vpc-111bbb22")),
            "InvalidParameterValue",
        ),
        (
            "unknown vpc",
            Box::new(|w| w.create_security_group("sg-0a0a0002", "n", "x", "vpc-0999")),
            "InvalidVpcID.NotFound",
        ),
        (
            "duplicate rule",
            Box::new(|w| {
                w.authorize_security_group("sg-0a0a0001", Direction::Egress, &[SgRule::allow_all()])
                    .map(drop)
            }),
            "InvalidPermission.Duplicate",
        ),
        (
            "same rule twice in one request (after a good one)",
            Box::new(|w| {
                let r = tcp("22", Peer::Cidr(net("10.0.0.0/8")));
                w.authorize_security_group("sg-0a0a0001", Direction::Ingress, &[r.clone(), r])
                    .map(drop)
            }),
            "InvalidPermission.Duplicate",
        ),
        (
            "unknown prefix list",
            Box::new(|w| {
                let r = tcp("443", Peer::PrefixList("pl-99999999".into()));
                w.authorize_security_group("sg-0a0a0001", Direction::Egress, &[r]).map(drop)
            }),
            "InvalidPrefixListID.NotFound",
        ),
        (
            "unknown group reference",
            Box::new(|w| {
                let r = tcp("443", Peer::Group("sg-0999".into()));
                w.authorize_security_group("sg-0a0a0001", Direction::Egress, &[r]).map(drop)
            }),
            "InvalidGroup.NotFound",
        ),
        (
            "revoke a missing rule",
            Box::new(|w| {
                let r = tcp("22", Peer::Cidr(net("10.0.0.0/8")));
                w.revoke_security_group("sg-0a0a0001", Direction::Ingress, &[r])
            }),
            "InvalidPermission.NotFound",
        ),
        (
            "delete the default group",
            Box::new(|w| w.delete_security_group("sg-111bbb22")),
            "CannotDelete",
        ),
        (
            "delete a group in use",
            Box::new(|w| w.delete_security_group("sg-0a0a0001")),
            "DependencyViolation",
        ),
        (
            "no groups for an instance",
            Box::new(|w| w.set_instance_groups("i-0a0a0a0a", &[])),
            "InvalidParameterValue",
        ),
        (
            "unknown group for an instance",
            Box::new(|w| w.set_instance_groups("i-0a0a0a0a", &["sg-0999".into()])),
            "InvalidGroup.NotFound",
        ),
        (
            "instance in a group of another VPC",
            Box::new(|w| {
                w.add_vpc(Vpc {
                    id: "vpc-0e0e0e0e".into(),
                    cidr: net("10.9.0.0/16"),
                    enable_dns_support: true,
                    main_route_table: None,
                    main_association_id: None,
                })?;
                w.set_instance_groups("i-0a0a0a0a", &["sg-0e0e0e0e".into()])
            }),
            "InvalidParameter",
        ),
        (
            "duplicate ACL entry",
            Box::new(|w| w.add_network_acl_entry("acl-0a0a0001", acl_entry(100, true))),
            "NetworkAclEntryAlreadyExists",
        ),
        (
            "rule number 0",
            Box::new(|w| w.add_network_acl_entry("acl-0a0a0001", acl_entry(0, true))),
            "InvalidParameterValue",
        ),
        (
            "replace a missing entry",
            Box::new(|w| w.replace_network_acl_entry("acl-0a0a0001", acl_entry(100, false))),
            "InvalidNetworkAclEntry.NotFound",
        ),
        (
            "delete a missing entry",
            Box::new(|w| w.delete_network_acl_entry("acl-0a0a0001", false, 100)),
            "InvalidNetworkAclEntry.NotFound",
        ),
        (
            "delete the default ACL",
            Box::new(|w| w.delete_network_acl("acl-111bbb22")),
            "InvalidParameterValue",
        ),
        (
            "delete an associated ACL",
            Box::new(|w| w.delete_network_acl("acl-0a0a0001")),
            "DependencyViolation",
        ),
        (
            "associate a subnet twice",
            Box::new(|w| {
                w.create_network_acl("acl-0a0a0002", "vpc-111bbb22")?;
                w.associate_network_acl("acl-0a0a0002", "a").map(|_| ())
            }),
            "InvalidParameterValue",
        ),
        (
            "replace an unknown association",
            Box::new(|w| {
                w.replace_network_acl_association("aclassoc-0999", "acl-111bbb22").map(|_| ())
            }),
            "InvalidAssociationID.NotFound",
        ),
        (
            "delete a VPC with a group and an ACL",
            Box::new(|w| {
                w.add_vpc(Vpc {
                    id: "vpc-0e0e0e0e".into(),
                    cidr: net("10.9.0.0/16"),
                    enable_dns_support: true,
                    main_route_table: None,
                    main_association_id: None,
                })?;
                w.create_network_acl("acl-0e0e0e01", "vpc-0e0e0e0e")?;
                w.delete_vpc("vpc-0e0e0e0e")
            }),
            "DependencyViolation",
        ),
    ];
    for (name, attempt, code) in cases {
        let mut scratch = w.clone();
        let err = attempt(&mut scratch).expect_err(name);
        assert_eq!(crate::services::ec2::model_error_code(&err), code, "{name}: {err}");
        // Single-step attempts leave the world untouched; multi-step ones at least do not
        // apply their refused last step (checked by re-running on a fresh clone below).
        let mut again = w.clone();
        if attempt(&mut again).is_err() && !name.contains("VPC") && !name.contains("twice") {
            assert_eq!(again, w, "{name}");
        }
    }
}

#[test]
fn a_prefix_list_holds_public_ranges_only() {
    // A service's prefix list lists the service's public ranges ("the IP address ranges for the
    // service"); one holding the VPC's own or internal blocks would capture local traffic.
    let mut w = demo();
    let pl = |cidrs: &[&str]| PrefixList {
        id: "pl-1a2b3c4d".into(),
        name: "com.amazonaws.us-east-1.s3".into(),
        region: "us-east-1".into(),
        cidrs: cidrs.iter().map(|c| net(c)).collect(),
    };
    for bad in [
        "10.0.1.0/24",
        "0.0.0.0/0",
        "127.0.0.0/8",
        "172.16.5.0/24",
        "224.0.0.0/4",
        "192.0.2.0/24",
        "198.18.0.0/16",
        "198.51.100.0/24",
        "203.0.113.0/25",
        "54.231.170.0/24",
    ] {
        let before = w.clone();
        let err = w.set_prefix_list(pl(&["54.123.160.0/19", bad])).unwrap_err();
        assert!(matches!(err, ModelError::InvalidPrefixListCidr { .. }), "{bad}: {err}");
        assert_eq!(w, before, "{bad}: nothing changes");
    }
    w.set_prefix_list(pl(&["54.123.176.0/20", "3.5.0.0/16"])).unwrap();
    assert_eq!(w.prefix_list("pl-1a2b3c4d").unwrap().cidrs.len(), 2);
}

#[test]
fn a_vpc_cannot_lie_in_the_labs_fixed_ranges() {
    // The lab's S3 ranges (every region's: the aws namespace holds them all), its internet and
    // public-IP ranges, and what the data plane drops as martian: a VPC there comes up broken.
    let mut w = demo();
    let vpc = |cidr: &str| Vpc {
        id: "vpc-0f0f0f0f".into(),
        cidr: net(cidr),
        enable_dns_support: true,
        main_route_table: None,
        main_association_id: None,
    };
    for bad in [
        "54.123.160.0/20",
        "54.123.176.0/24",
        "54.231.160.0/19",
        "52.218.0.0/17",
        "198.51.100.0/24",
        "198.51.100.64/26",
        "203.0.113.0/24",
        "127.0.0.0/16",
        "224.0.0.0/16",
        "239.255.0.0/16",
        "240.0.0.0/16",
        "255.255.255.240/28",
        "169.254.0.0/16",
        "0.0.0.0/16",
    ] {
        let before = w.clone();
        let err = w.add_vpc(vpc(bad)).unwrap_err();
        assert!(matches!(err, ModelError::VpcCidrReserved { .. }), "{bad}: {err}");
        assert!(err.to_string().contains(&format!("the CIDR '{bad}' is invalid")), "{err}");
        assert_eq!(w, before, "{bad}: nothing changes");
    }
    // Public ranges the lab does not use, and every private one, are fine (AWS allows a
    // publicly routable VPC CIDR).
    for good in ["54.123.192.0/20", "100.64.0.0/16", "198.51.101.0/24", "192.168.0.0/16"] {
        let mut w = w.clone();
        w.add_vpc(vpc(good)).unwrap();
    }
}

#[test]
fn a_saved_vpc_in_a_range_refused_since_still_loads() {
    // Worlds saved before the rule keep loading (the rule is add_vpc's, not check's): the VPC
    // can be deleted through the API instead of the state dir being lost.
    let mut w = demo();
    let mut v = w.vpcs[0].clone();
    v.id = "vpc-0f0f0f0f".into();
    v.cidr = net("54.123.160.0/20");
    v.main_route_table = None;
    v.main_association_id = None;
    w.vpcs.push(v);
    w.check().unwrap();
}

#[test]
fn an_internet_hosts_name_is_a_hostname_that_shadows_no_lab_name() {
    // The resolver answers a host's name (and `<name>.internet`) before S3's and the
    // instances' names: a host may not take one of those.
    let mut w = demo();
    let host = |name: &str| InternetHost { name: name.into(), ip: Ipv4Addr::new(198, 51, 100, 77) };
    for bad in [
        "open-bucket.s3.amazonaws.com",
        "amazonaws.com",
        "S3.AmazonAWS.com",
        "ip-10-0-1-10.ec2.internal",
        "ip-10-0-1-10.us-west-2.compute.internal",
        "10.1.0.10.in-addr.arpa",
        "internet",
        "check-ip.internet",
        "",
        "-echo",
        "echo-",
        "my host",
        "my_host",
        "a..b",
        "echo.",
        &"a".repeat(64),
        &format!("{}.com", ["a"; 127].join(".")),
        // check-ip, whatever its case.
        "CHECK-IP",
    ] {
        let before = w.clone();
        let err = w.add_internet_host(host(bad)).unwrap_err();
        assert!(
            matches!(err, ModelError::InvalidInternetHostName { .. } | ModelError::DuplicateId(_)),
            "{bad}: {err}"
        );
        assert_eq!(w, before, "{bad}: nothing changes");
    }
    for good in ["echo", "www.example.com", "Example.ORG", "s3-mirror", &"a".repeat(63)] {
        let mut w = w.clone();
        w.add_internet_host(host(good)).unwrap();
    }
}

#[test]
fn a_saved_host_name_that_is_no_hostname_still_loads_one_that_shadows_does_not() {
    let mut w = demo();
    let mut odd = w.internet_hosts[0].clone();
    odd.name = "my_host".into();
    odd.ip = Ipv4Addr::new(198, 51, 100, 77);
    w.internet_hosts.push(odd.clone());
    w.check().unwrap();
    let mut w2 = demo();
    w2.internet_hosts.push(InternetHost { name: "open-bucket.s3.amazonaws.com".into(), ..odd });
    let err = w2.check().unwrap_err();
    assert_eq!(err.field, "internet_hosts[1].name", "{err}");
}

#[test]
fn a_prefix_list_names_each_range_once() {
    // AWS-managed lists never repeat an entry: `vpcsim prefix-list pl-… A A` and a lab file's
    // `cidrs = [A, A]` are refused (host bits dropped first), nothing changed.
    let mut w = demo();
    let before = w.clone();
    let pl = PrefixList {
        id: "pl-1a2b3c4d".into(),
        name: "com.amazonaws.us-east-1.s3".into(),
        region: "us-east-1".into(),
        cidrs: vec![net("54.123.160.0/19"), net("3.5.0.0/16"), net("54.123.170.5/19")],
    };
    let err = w.set_prefix_list(pl).unwrap_err();
    assert!(matches!(err, ModelError::DuplicatePrefixListCidr { .. }), "{err}");
    assert!(err.to_string().contains("54.123.160.0/19"), "{err}");
    assert_eq!(w, before);
}

#[test]
fn a_rule_may_name_only_the_labs_regions_prefix_lists_but_old_worlds_load() {
    let mut w = demo();
    let before = w.clone();
    let rule = SgRule::new(
        Protocol::Tcp,
        Ports::Range { from: 443, to: 443 },
        Peer::PrefixList("pl-68a54001".into()),
    );
    let err = w
        .authorize_security_group("sg-111bbb22", Direction::Egress, std::slice::from_ref(&rule))
        .unwrap_err();
    assert!(matches!(err, ModelError::PrefixListOtherRegion { .. }), "{err}");
    assert_eq!(w, before);
    // A world saved with one (accepted before) still loads.
    let g = w.security_groups.iter_mut().find(|g| g.id == "sg-111bbb22").unwrap();
    g.egress.push(SgRule { id: "sgr-00000000000000fff".into(), ..rule });
    w.check().unwrap();
}
