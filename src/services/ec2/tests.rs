use super::*;
use crate::lab::file::{DEFAULT_LAB, parse};
use crate::model::Target;

mod client_tokens;
mod filters;
mod group_names;
mod nat;
mod paging;
mod security;

fn lab() -> World {
    parse("demo.toml", DEFAULT_LAB).unwrap()
}

fn call(w: &World, params: &[(&str, &str)]) -> Result<Ec2Outcome, Ec2Error> {
    let list: Vec<(String, String)> = std::iter::once(("Version", "2016-11-15"))
        .chain(params.iter().copied())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    handle(w, &Ec2Request { params: &list, region: "us-east-1", request_id: "req-1" })
}

fn read_xml(w: &World, params: &[(&str, &str)]) -> String {
    match call(w, params) {
        Ok(Ec2Outcome::Read { xml }) => xml,
        Ok(Ec2Outcome::Changed { .. }) => panic!("{params:?}: a read changed the world"),
        Err(e) => panic!("{params:?}: {e}"),
    }
}

fn change(w: &World, params: &[(&str, &str)]) -> (World, String) {
    match call(w, params) {
        Ok(Ec2Outcome::Changed { world, xml }) => (world, xml),
        Ok(Ec2Outcome::Read { .. }) => panic!("{params:?}: nothing changed"),
        Err(e) => panic!("{params:?}: {e}"),
    }
}

/// The call is refused with `code`, and (since `handle` returned no world) nothing changed.
fn refused(w: &World, params: &[(&str, &str)], code: &str) -> Ec2Error {
    let before = w.clone();
    let err = match call(w, params) {
        Err(e) => e,
        Ok(_) => panic!("{params:?}: accepted, expected {code}"),
    };
    assert_eq!(err.code, code, "{params:?}: {err}");
    assert_eq!(&before, w);
    err
}

/// The text of every element named `name`, in document order (parsed back with quick-xml).
fn texts(xml: &str, name: &str) -> Vec<String> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let mut r = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut inside = false;
    let mut cur = String::new();
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) if e.local_name().as_ref() == name => {
                inside = true;
                cur.clear();
            }
            Event::Text(t) if inside => cur.push_str(&t.into_inner()),
            Event::GeneralRef(g) if inside => {
                let s = match &*g.into_inner() {
                    "quot" => "\"",
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "apos" => "'",
                    _ => "?",
                };
                cur.push_str(s);
            }
            Event::End(e) if e.local_name().as_ref() == name => {
                inside = false;
                out.push(cur.clone());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// `xml` without any `<name>` element (e.g. an instance's `networkInterfaceSet`, which
/// repeats its addresses and groups).
fn without(xml: &str, name: &str) -> String {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        out.push_str(&rest[..i]);
        match rest[i..].find(&close) {
            Some(j) => rest = &rest[i + j + close.len()..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

fn text(xml: &str, name: &str) -> String {
    texts(xml, name).into_iter().next().unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}

fn dump(name: &str, xml: &str) {
    let dir = std::env::temp_dir().join("ec2-xml");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.xml")), xml);
}

#[test]
fn unknown_action_and_missing_parameter() {
    let w = lab();
    let e = refused(&w, &[("Action", "LaunchRockets")], "InvalidAction");
    assert_eq!(e.message, "The action LaunchRockets is not valid for this web service.");
    let e = refused(&w, &[("Action", "CreateVpc")], "MissingParameter");
    assert_eq!(e.message, "The request must contain the parameter CidrBlock");
    refused(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/33")], "InvalidParameterValue");
    let xml = error_xml(&e, "rid<&>");
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains("<Response><Errors><Error><Code>MissingParameter</Code>"), "{xml}");
    assert!(xml.contains("<RequestID>rid&lt;&amp;&gt;</RequestID>"), "{xml}");
}

#[test]
fn describe_regions_and_zones() {
    let w = lab();
    let xml = read_xml(&w, &[("Action", "DescribeRegions")]);
    dump("DescribeRegions", &xml);
    assert!(xml.contains("<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId>"), "{xml}");
    assert_eq!(texts(&xml, "regionName"), ["us-east-1", "us-west-2", "eu-west-1"]);
    assert_eq!(text(&xml, "regionEndpoint"), "ec2.us-east-1.amazonaws.com");
    let xml = read_xml(
        &w,
        &[
            ("Action", "DescribeRegions"),
            ("Filter.1.Name", "region-name"),
            ("Filter.1.Value.1", "eu-*"),
        ],
    );
    assert_eq!(texts(&xml, "regionName"), ["eu-west-1"]);
    let xml = read_xml(&w, &[("Action", "DescribeAvailabilityZones")]);
    dump("DescribeAvailabilityZones", &xml);
    assert_eq!(text(&xml, "zoneName"), "us-east-1a");
    assert_eq!(text(&xml, "zoneId"), "use1-az1");
}

#[test]
fn vpc_lifecycle() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "CreateVpc"),
            ("CidrBlock", "10.1.0.0/16"),
            ("TagSpecification.1.ResourceType", "vpc"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "lab <two>"),
        ],
    );
    dump("CreateVpc", &xml);
    let id = text(&xml, "vpcId");
    assert_eq!(id.len(), "vpc-".len() + 17, "{id}");
    assert!(xml.contains("<value>lab &lt;two&gt;</value>"), "{xml}");
    // The main route table, with only the local route.
    let rt = w1.vpc(&id).unwrap().main_route_table.clone().unwrap();
    let xml = read_xml(&w1, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", &rt)]);
    assert_eq!(texts(&xml, "gatewayId"), ["local"]);
    assert_eq!(text(&xml, "main"), "true");
    assert_eq!(text(&xml, "origin"), "CreateRouteTable");
    // Describe with a tag filter.
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeVpcs"),
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", "lab <two>"),
        ],
    );
    dump("DescribeVpcs", &xml);
    assert_eq!(texts(&xml, "vpcId"), [id.as_str()]);
    let assoc = format!("vpc-cidr-assoc-{}", id.trim_start_matches("vpc-"));
    assert_eq!(texts(&xml, "associationId"), [assoc]);
    let xml = read_xml(&w1, &[("Action", "DescribeVpcs")]);
    assert_eq!(texts(&xml, "vpcId").len(), 2);
    // Deleting: the lab's VPC has dependencies, the new one goes with its main table.
    refused(&w1, &[("Action", "DeleteVpc"), ("VpcId", "vpc-111bbb22")], "DependencyViolation");
    refused(&w1, &[("Action", "DeleteVpc"), ("VpcId", "vpc-999")], "InvalidVpcID.NotFound");
    refused(&w1, &[("Action", "DeleteVpc"), ("VpcId", "vpcx")], "InvalidVpcID.Malformed");
    refused(&w1, &[("Action", "DescribeVpcs"), ("VpcId.1", "vpc-999")], "InvalidVpcID.NotFound");
    let (w2, _) = change(&w1, &[("Action", "DeleteVpc"), ("VpcId", &id)]);
    assert!(w2.vpc(&id).is_none());
    assert!(w2.route_table(&rt).is_none());
    assert!(w2.tags.is_empty());
}

#[test]
fn subnet_lifecycle_and_main_table() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[("Action", "CreateSubnet"), ("VpcId", "vpc-111bbb22"), ("CidrBlock", "10.0.5.0/24")],
    );
    dump("CreateSubnet", &xml);
    let id = text(&xml, "subnetId");
    assert_eq!(text(&xml, "availableIpAddressCount"), "251");
    // The lab file's first table of the VPC is the main table; the new subnet uses it.
    assert_eq!(w1.subnet(&id).unwrap().route_table, "rtb-0a0a0a0a");
    assert_eq!(w1.subnet(&id).unwrap().association_id, None);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeSubnets"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-111bbb22"),
        ],
    );
    dump("DescribeSubnets", &xml);
    assert_eq!(texts(&xml, "subnetId").len(), 5);
    refused(
        &w1,
        &[("Action", "CreateSubnet"), ("VpcId", "vpc-111bbb22"), ("CidrBlock", "10.0.5.0/25")],
        "InvalidSubnet.Conflict",
    );
    refused(
        &w1,
        &[("Action", "CreateSubnet"), ("VpcId", "vpc-111bbb22"), ("CidrBlock", "10.9.0.0/24")],
        "InvalidSubnet.Range",
    );
    refused(
        &w1,
        &[("Action", "DeleteSubnet"), ("SubnetId", "subnet-0a0a0a0a")],
        "DependencyViolation",
    );
    refused(
        &w1,
        &[("Action", "DeleteSubnet"), ("SubnetId", "subnet-09")],
        "InvalidSubnetID.NotFound",
    );
    refused(&w1, &[("Action", "DeleteSubnet"), ("SubnetId", "sub-1")], "InvalidSubnetID.Malformed");
    let (w2, _) = change(&w1, &[("Action", "DeleteSubnet"), ("SubnetId", &id)]);
    assert!(w2.subnet(&id).is_none());
}

#[test]
fn describe_route_tables_shows_the_endpoint_route() {
    let w = lab();
    let xml =
        read_xml(&w, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-0a0a0a0a")]);
    dump("DescribeRouteTables", &xml);
    assert_eq!(texts(&xml, "destinationCidrBlock"), ["10.0.0.0/16", "0.0.0.0/0"]);
    assert_eq!(texts(&xml, "destinationPrefixListId"), ["pl-1a2b3c4d"]);
    assert_eq!(texts(&xml, "gatewayId"), ["local", "igw-1a2b3c4d", "vpce-11bb22cc"]);
    assert_eq!(texts(&xml, "origin"), ["CreateRouteTable", "CreateRoute", "CreateRoute"]);
    assert_eq!(texts(&xml, "state")[..3], ["active", "active", "active"]);
    let pl_route = xml.split("<item>").find(|s| s.contains("pl-1a2b3c4d")).unwrap();
    assert!(pl_route.contains("<gatewayId>vpce-11bb22cc</gatewayId>"), "{pl_route}");
    assert!(pl_route.contains("<state>active</state>"), "{pl_route}");
    assert!(pl_route.contains("<origin>CreateRoute</origin>"), "{pl_route}");
    // The main association and subnet a's explicit one.
    assert_eq!(texts(&xml, "main"), ["true", "false"]);
    assert_eq!(texts(&xml, "subnetId"), ["subnet-0a0a0a0a"]);
    assert!(text(&xml, "routeTableAssociationId").starts_with("rtbassoc-"));
    // Filters.
    let f = |name: &str, value: &str| {
        let xml = read_xml(
            &w,
            &[
                ("Action", "DescribeRouteTables"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        let mut ids = texts(&xml, "routeTableId");
        ids.dedup();
        ids
    };
    assert_eq!(
        f("route.destination-prefix-list-id", "pl-1a2b3c4d"),
        ["rtb-0a0a0a0a", "rtb-0c0c0c0c"]
    );
    assert_eq!(f("association.subnet-id", "subnet-0b0b0b0b"), ["rtb-0b0b0b0b"]);
    assert_eq!(f("association.main", "true"), ["rtb-0a0a0a0a"]);
    // A table without associations matches neither value (EC2: "Route tables that do not have
    // an association ID are not returned in the response").
    let (w2, xml) = change(&w, &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22")]);
    let bare = text(&xml, "routeTableId");
    for value in ["true", "false"] {
        let xml = read_xml(
            &w2,
            &[
                ("Action", "DescribeRouteTables"),
                ("Filter.1.Name", "association.main"),
                ("Filter.1.Value.1", value),
            ],
        );
        assert!(!texts(&xml, "routeTableId").contains(&bare), "{value}: {xml}");
        assert!(!texts(&xml, "routeTableId").is_empty(), "{value}: {xml}");
    }
    assert_eq!(f("route.gateway-id", "vpce-11bb22cc"), ["rtb-0a0a0a0a", "rtb-0c0c0c0c"]);
    assert_eq!(f("route.destination-cidr-block", "54.123.165.0/24"), ["rtb-0c0c0c0c"]);
    refused(
        &w,
        &[
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "colour"),
            ("Filter.1.Value.1", "x"),
        ],
        "InvalidParameterValue",
    );
    // A filter EC2 documents for something the lab does not have is valid and matches nothing.
    assert!(f("route.transit-gateway-id", "tgw-0123456789abcdef0").is_empty());
    assert!(f("route.destination-ipv6-cidr-block", "::/0").is_empty());
    refused(
        &w,
        &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-99")],
        "InvalidRouteTableID.NotFound",
    );
    refused(
        &w,
        &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-xyz")],
        "InvalidRouteTableId.Malformed",
    );
}

#[test]
fn route_table_associations() {
    let w = lab();
    let (w1, xml) = change(&w, &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22")]);
    dump("CreateRouteTable", &xml);
    let rt = text(&xml, "routeTableId");
    refused(
        &w1,
        &[
            ("Action", "AssociateRouteTable"),
            ("RouteTableId", &rt),
            ("SubnetId", "subnet-0b0b0b0b"),
        ],
        "Resource.AlreadyAssociated",
    );
    let a_b = w1.subnet("b").unwrap().association_id.clone().unwrap();
    let (w2, _) = change(&w1, &[("Action", "DisassociateRouteTable"), ("AssociationId", &a_b)]);
    assert_eq!(w2.subnet("b").unwrap().route_table, "rtb-0a0a0a0a", "falls back to main");
    let (w3, xml) = change(
        &w2,
        &[
            ("Action", "AssociateRouteTable"),
            ("RouteTableId", &rt),
            ("SubnetId", "subnet-0b0b0b0b"),
        ],
    );
    dump("AssociateRouteTable", &xml);
    let assoc = text(&xml, "associationId");
    assert_eq!(text(&xml, "state"), "associated");
    assert_eq!(w3.subnet("b").unwrap().route_table, rt);
    refused(&w3, &[("Action", "DeleteRouteTable"), ("RouteTableId", &rt)], "DependencyViolation");
    refused(
        &w3,
        &[("Action", "DeleteRouteTable"), ("RouteTableId", "rtb-0a0a0a0a")],
        "DependencyViolation",
    );
    let (w4, xml) = change(
        &w3,
        &[
            ("Action", "ReplaceRouteTableAssociation"),
            ("AssociationId", &assoc),
            ("RouteTableId", "rtb-0c0c0c0c"),
        ],
    );
    dump("ReplaceRouteTableAssociation", &xml);
    assert!(text(&xml, "newAssociationId").starts_with("rtbassoc-"));
    assert_eq!(w4.subnet("b").unwrap().route_table, "rtb-0c0c0c0c");
    // Replacing the main association: implicitly associated subnets follow.
    let main = w2.vpc("vpc-111bbb22").unwrap().main_association_id.clone().unwrap();
    refused(
        &w2,
        &[("Action", "DisassociateRouteTable"), ("AssociationId", &main)],
        "InvalidParameterValue",
    );
    refused(
        &w2,
        &[("Action", "DisassociateRouteTable"), ("AssociationId", "rtbassoc-0123")],
        "InvalidAssociationID.NotFound",
    );
    let (w5, _) = change(
        &w2,
        &[
            ("Action", "ReplaceRouteTableAssociation"),
            ("AssociationId", &main),
            ("RouteTableId", "rtb-0c0c0c0c"),
        ],
    );
    assert_eq!(w5.main_route_table("vpc-111bbb22"), Some("rtb-0c0c0c0c"));
    assert_eq!(w5.subnet("b").unwrap().route_table, "rtb-0c0c0c0c");
    assert_eq!(w5.subnet("a").unwrap().route_table, "rtb-0a0a0a0a", "explicit stays");
    let (w6, _) = change(&w1, &[("Action", "DeleteRouteTable"), ("RouteTableId", &rt)]);
    assert!(w6.route_table(&rt).is_none());
}

#[test]
fn routes() {
    let w = lab();
    let base = [("Action", "CreateRoute"), ("RouteTableId", "rtb-0b0b0b0b")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    // The guide: "You cannot explicitly add, modify, or delete an endpoint route in your route
    // table by using the route table APIs".
    let e = refused(
        &w,
        &with(&[("DestinationPrefixListId", "pl-1a2b3c4d"), ("GatewayId", "vpce-11bb22cc")]),
        "InvalidParameterValue",
    );
    assert!(
        e.message.contains("You cannot explicitly add, modify, or delete an endpoint route"),
        "{e:?}"
    );
    refused(
        &w,
        &with(&[("DestinationCidrBlock", "54.123.160.0/19"), ("GatewayId", "vpce-11bb22cc")]),
        "InvalidParameterValue",
    );
    refused(
        &w,
        &with(&[("DestinationCidrBlock", "54.123.160.0/19"), ("VpcEndpointId", "vpce-11bb22cc")]),
        "InvalidParameterValue",
    );
    refused(
        &w,
        &with(&[("DestinationCidrBlock", "10.0.0.0/16"), ("GatewayId", "igw-1a2b3c4d")]),
        "InvalidParameterValue",
    );
    refused(
        &w,
        &with(&[("DestinationCidrBlock", "10.0.5.0/24"), ("GatewayId", "igw-1a2b3c4d")]),
        "InvalidParameterValue",
    );
    refused(
        &w,
        &with(&[("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", "igw-1a2b3c4d")]),
        "RouteAlreadyExists",
    );
    // EC2's codes for a route to a gateway that does not exist, and to one attached elsewhere
    // (CreateRoute answers "InvalidGatewayID.NotFound: The gateway ID '…' does not exist" and
    // "InvalidParameterValue: route table … and network gateway … belong to different
    // networks").
    refused(
        &w,
        &with(&[("DestinationCidrBlock", "1.2.3.0/24"), ("GatewayId", "igw-0999")]),
        "InvalidGatewayID.NotFound",
    );
    let detached = change(&w, &[("Action", "CreateInternetGateway")]).0;
    let spare = detached
        .internet_gateways
        .iter()
        .find(|g| g.vpc.is_none())
        .expect("a new gateway")
        .id
        .clone();
    let e = refused(
        &detached,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", "rtb-0b0b0b0b"),
            ("DestinationCidrBlock", "1.2.3.0/24"),
            ("GatewayId", spare.as_str()),
        ],
        "InvalidParameterValue",
    );
    assert!(e.message.contains("belong to different networks"), "{}", e.message);
    let (w1, xml) = change(
        &w,
        &with(&[("DestinationCidrBlock", "54.123.170.0/24"), ("GatewayId", "igw-1a2b3c4d")]),
    );
    dump("CreateRoute", &xml);
    assert_eq!(text(&xml, "return"), "true");
    assert!(
        w1.compiled_routes("rtb-0b0b0b0b").iter().any(|(c, _)| c.to_string() == "54.123.170.0/24")
    );
    // ReplaceRoute / DeleteRoute.
    refused(
        &w1,
        &[
            ("Action", "ReplaceRoute"),
            ("RouteTableId", "rtb-0b0b0b0b"),
            ("DestinationCidrBlock", "9.9.9.0/24"),
            ("GatewayId", "igw-1a2b3c4d"),
        ],
        // EC2: "InvalidParameterValue: There is no route defined for '9.9.9.0/24' in the route
        // table. Use CreateRoute instead." (DeleteRoute's is InvalidRoute.NotFound.)
        "InvalidParameterValue",
    );
    refused(
        &w1,
        &[
            ("Action", "ReplaceRoute"),
            ("RouteTableId", "rtb-0a0a0a0a"),
            ("DestinationPrefixListId", "pl-1a2b3c4d"),
            ("GatewayId", "igw-1a2b3c4d"),
        ],
        "InvalidParameterValue",
    );
    refused(
        &w1,
        &[
            ("Action", "DeleteRoute"),
            ("RouteTableId", "rtb-0a0a0a0a"),
            ("DestinationPrefixListId", "pl-1a2b3c4d"),
        ],
        "InvalidParameterValue",
    );
    refused(
        &w1,
        &[
            ("Action", "DeleteRoute"),
            ("RouteTableId", "rtb-0a0a0a0a"),
            ("DestinationCidrBlock", "10.0.0.0/16"),
        ],
        "InvalidParameterValue",
    );
    refused(
        &w1,
        &[
            ("Action", "DeleteRoute"),
            ("RouteTableId", "rtb-0a0a0a0a"),
            ("DestinationCidrBlock", "9.9.9.0/24"),
        ],
        "InvalidRoute.NotFound",
    );
    let (w2, _) = change(
        &w1,
        &[
            ("Action", "ReplaceRoute"),
            ("RouteTableId", "rtb-0b0b0b0b"),
            ("DestinationCidrBlock", "54.123.170.0/24"),
            ("GatewayId", "igw-1a2b3c4d"),
        ],
    );
    assert_eq!(w1, w2.clone(), "replacing with the same target changes nothing");
    // The guide's second example: delete the more specific igw route of subnet c.
    let (w3, _) = change(
        &w,
        &[
            ("Action", "DeleteRoute"),
            ("RouteTableId", "rtb-0c0c0c0c"),
            ("DestinationCidrBlock", "54.123.165.0/24"),
        ],
    );
    let xml =
        read_xml(&w3, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-0c0c0c0c")]);
    assert_eq!(texts(&xml, "gatewayId"), ["local", "vpce-11bb22cc"]);
}

#[test]
fn internet_gateways() {
    let w = lab();
    let (w1, xml) = change(&w, &[("Action", "CreateInternetGateway")]);
    dump("CreateInternetGateway", &xml);
    let igw = text(&xml, "internetGatewayId");
    refused(
        &w1,
        &[
            ("Action", "AttachInternetGateway"),
            ("InternetGatewayId", &igw),
            ("VpcId", "vpc-111bbb22"),
        ],
        "Resource.AlreadyAssociated",
    );
    refused(
        &w1,
        &[
            ("Action", "AttachInternetGateway"),
            ("InternetGatewayId", "igw-1a2b3c4d"),
            ("VpcId", "vpc-111bbb22"),
        ],
        "Resource.AlreadyAssociated",
    );
    refused(
        &w1,
        &[
            ("Action", "DetachInternetGateway"),
            ("InternetGatewayId", &igw),
            ("VpcId", "vpc-111bbb22"),
        ],
        "Gateway.NotAttached",
    );
    refused(
        &w1,
        &[("Action", "DeleteInternetGateway"), ("InternetGatewayId", "igw-1a2b3c4d")],
        "DependencyViolation",
    );
    refused(
        &w1,
        &[("Action", "DeleteInternetGateway"), ("InternetGatewayId", "igw-0999")],
        "InvalidInternetGatewayID.NotFound",
    );
    // Public IPs are mapped, like AWS the detach is refused.
    refused(
        &w1,
        &[
            ("Action", "DetachInternetGateway"),
            ("InternetGatewayId", "igw-1a2b3c4d"),
            ("VpcId", "vpc-111bbb22"),
        ],
        "DependencyViolation",
    );
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeInternetGateways"),
            ("Filter.1.Name", "attachment.vpc-id"),
            ("Filter.1.Value.1", "vpc-111bbb22"),
        ],
    );
    dump("DescribeInternetGateways", &xml);
    assert_eq!(texts(&xml, "internetGatewayId"), ["igw-1a2b3c4d"]);
    assert_eq!(text(&xml, "state"), "available");
    let (w2, _) = change(&w1, &[("Action", "DeleteInternetGateway"), ("InternetGatewayId", &igw)]);
    assert!(w2.igw(&igw).is_none());
    // Detach after terminating the instances; the igw routes become blackholes.
    let mut w3 = w.clone();
    for i in ["i-0a0a0a0a", "i-0b0b0b0b", "i-0c0c0c0c"] {
        w3 = change(&w3, &[("Action", "TerminateInstances"), ("InstanceId.1", i)]).0;
    }
    let (w4, _) = change(
        &w3,
        &[
            ("Action", "DetachInternetGateway"),
            ("InternetGatewayId", "igw-1a2b3c4d"),
            ("VpcId", "vpc-111bbb22"),
        ],
    );
    let xml =
        read_xml(&w4, &[("Action", "DescribeRouteTables"), ("RouteTableId.1", "rtb-0b0b0b0b")]);
    assert_eq!(texts(&xml, "state"), ["active", "blackhole", "associated"]);
    assert!(w4.compiled_routes("rtb-0b0b0b0b").iter().any(|(_, t)| *t == Target::Blackhole));
    let (w5, _) = change(
        &w4,
        &[
            ("Action", "AttachInternetGateway"),
            ("InternetGatewayId", "igw-1a2b3c4d"),
            ("VpcId", "vpc-111bbb22"),
        ],
    );
    assert_eq!(w5.igw("igw-1a2b3c4d").unwrap().vpc.as_deref(), Some("vpc-111bbb22"));
}

const S3: &str = "com.amazonaws.us-east-1.s3";

#[test]
fn create_vpc_endpoint_and_the_guides_rules() {
    let w = lab();
    let ep = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        [("Action", "CreateVpcEndpoint"), ("VpcId", "vpc-111bbb22")]
            .iter()
            .chain(extra)
            .copied()
            .collect()
    };
    // "you cannot have multiple endpoints to the same service in a single route table"
    refused(
        &w,
        &ep(&[("ServiceName", S3), ("RouteTableId.1", "rtb-0a0a0a0a")]),
        "RouteAlreadyExists",
    );
    // "You cannot create an endpoint between a VPC and an AWS service in a different region."
    refused(&w, &ep(&[("ServiceName", "com.amazonaws.us-west-2.s3")]), "InvalidServiceName");
    refused(&w, &ep(&[("ServiceName", "com.amazonaws.us-east-1.dynamodb")]), "InvalidServiceName");
    // "Your policy must contain a Principal element."
    refused(
        &w,
        &ep(&[
            ("ServiceName", S3),
            ("PolicyDocument", r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#),
        ]),
        "InvalidPolicyDocument",
    );
    let e = refused(
        &w,
        &ep(&[("ServiceName", S3), ("PolicyDocument", "{not json")]),
        "InvalidPolicyDocument",
    );
    assert_eq!(e.message, "The Policy Document is not valid. Syntax error at position (1,2)");
    // "You cannot tag an endpoint."
    let e = refused(
        &w,
        &ep(&[
            ("ServiceName", S3),
            ("TagSpecification.1.ResourceType", "vpc-endpoint"),
            ("TagSpecification.1.Tag.1.Key", "k"),
            ("TagSpecification.1.Tag.1.Value", "v"),
        ]),
        "InvalidParameterValue",
    );
    assert!(e.message.contains("You cannot tag an endpoint"), "{e:?}");
    refused(
        &w,
        &ep(&[("ServiceName", S3), ("VpcEndpointType", "Interface")]),
        "InvalidParameterValue",
    );
    refused(
        &w,
        &ep(&[("ServiceName", S3), ("RouteTableId.1", "rtb-0999")]),
        "InvalidRouteTableID.NotFound",
    );
    refused(
        &w,
        &[("Action", "CreateVpcEndpoint"), ("VpcId", "vpc-0999"), ("ServiceName", S3)],
        "InvalidVpcID.NotFound",
    );
    // A route table of another VPC.
    let (w1, xml) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]);
    let vpc2 = text(&xml, "vpcId");
    let rt2 = w1.main_route_table(&vpc2).unwrap().to_string();
    let params = ep(&[("ServiceName", S3)]);
    let mut params: Vec<(&str, &str)> = params;
    params.push(("RouteTableId.1", &rt2));
    refused(&w1, &params, "InvalidParameterValue");
    // Accepted: a second endpoint in the free table b, with the guide's bucket policy.
    let policy = r#"{"Statement":[{"Sid":"Access-to-specific-bucket-only","Principal":"*","Action":["s3:GetObject","s3:PutObject"],"Effect":"Allow","Resource":["arn:aws:s3:::my_secure_bucket","arn:aws:s3:::my_secure_bucket/*"]}]}"#;
    let (w2, xml) = change(
        &w,
        &ep(&[("ServiceName", S3), ("RouteTableId.1", "rtb-0b0b0b0b"), ("PolicyDocument", policy)]),
    );
    dump("CreateVpcEndpoint", &xml);
    let id = text(&xml, "vpcEndpointId");
    assert!(id.starts_with("vpce-0") && id.len() == 22, "{id}");
    assert_eq!(text(&xml, "policyDocument"), policy);
    assert_eq!(texts(&xml, "routeTableIdSet"), ["rtb-0b0b0b0b"]);
    assert!(
        w2.compiled_routes("rtb-0b0b0b0b")
            .iter()
            .any(|(c, t)| c.to_string() == "54.123.160.0/19" && *t == Target::Vpce(id.clone()))
    );
}

#[test]
fn modify_vpc_endpoint() {
    let w = lab();
    let base = [("Action", "ModifyVpcEndpoint"), ("VpcEndpointId", "vpce-11bb22cc")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    assert!(!w.compiled_routes("rtb-0b0b0b0b").iter().any(|(_, t)| matches!(t, Target::Vpce(_))));
    let (w1, xml) = change(&w, &with(&[("AddRouteTableId.1", "rtb-0b0b0b0b")]));
    dump("ModifyVpcEndpoint", &xml);
    assert_eq!(text(&xml, "return"), "true");
    assert!(
        w1.compiled_routes("rtb-0b0b0b0b")
            .contains(&("54.123.160.0/19".parse().unwrap(), Target::Vpce("vpce-11bb22cc".into()))),
        "{:?}",
        w1.compiled_routes("rtb-0b0b0b0b")
    );
    let (w2, _) = change(&w1, &with(&[("RemoveRouteTableId.1", "rtb-0a0a0a0a")]));
    assert!(!w2.compiled_routes("rtb-0a0a0a0a").iter().any(|(_, t)| matches!(t, Target::Vpce(_))));
    refused(&w, &with(&[("RemoveRouteTableId.1", "rtb-0b0b0b0b")]), "InvalidParameterValue");
    refused(&w, &with(&[("AddRouteTableId.1", "rtb-0999")]), "InvalidRouteTableID.NotFound");
    // "The size of an endpoint policy cannot exceed 20,480 characters, including white space."
    let big = format!("{}{}", crate::model::DEFAULT_ENDPOINT_POLICY, " ".repeat(20_480));
    let big: &'static str = Box::leak(big.into_boxed_str());
    refused(&w, &with(&[("PolicyDocument", big)]), "InvalidPolicyDocument");
    let e = refused(
        &w,
        &with(&[("PolicyDocument", r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#)]),
        "InvalidPolicyDocument",
    );
    // EC2's wording for other refusals is not documented: the lab's explanation.
    assert!(e.message.starts_with("Invalid policy document: statement 0: "), "{e:?}");
    // A JSON syntax error in EC2's words (terraform-provider-aws issue #42291: "InvalidPolicyDocument:
    // The Policy Document is not valid. Syntax error at position (1,75)"): (line,column), here
    // the `]` after a trailing comma, and a missing value on the second line.
    for (doc, position) in [
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},]}"#,
            "(1,78)",
        ),
        ("{\n  \"Statement\": }", "(2,16)"),
        // Counted from 1 (README, Decisions): an empty document fails at its first column.
        ("", "(1,1)"),
        ("\n", "(2,1)"),
    ] {
        let e = refused(&w, &with(&[("PolicyDocument", doc)]), "InvalidPolicyDocument");
        let want = format!("The Policy Document is not valid. Syntax error at position {position}");
        assert_eq!(e.message, want, "{doc}");
    }
    refused(
        &w,
        &[("Action", "ModifyVpcEndpoint"), ("VpcEndpointId", "vpce-0999")],
        "InvalidVpcEndpointId.NotFound",
    );
    refused(
        &w,
        &[("Action", "ModifyVpcEndpoint"), ("VpcEndpointId", "vpc-11bb22cc")],
        "InvalidVpcEndpointId.Malformed",
    );
    // A second S3 endpoint holding table b: adding b to the first is refused.
    let (w3, xml) = change(
        &w,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", "vpc-111bbb22"),
            ("ServiceName", S3),
            ("RouteTableId.1", "rtb-0b0b0b0b"),
        ],
    );
    let _ = text(&xml, "vpcEndpointId");
    refused(&w3, &with(&[("AddRouteTableId.1", "rtb-0b0b0b0b")]), "RouteAlreadyExists");
    // Policy set, then reset to the default.
    let p = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
    let (w4, _) = change(&w, &with(&[("PolicyDocument", p)]));
    assert_eq!(w4.endpoint("vpce-11bb22cc").unwrap().policy.as_deref(), Some(p));
    let (w5, _) = change(&w4, &with(&[("ResetPolicy", "true")]));
    assert_eq!(w5.endpoint("vpce-11bb22cc").unwrap().policy, None);
}

/// EC2 refuses a parameter the action does not define, before doing anything; an ignored one
/// would answer success having done something else than asked. From the guide: "You cannot
/// transfer an endpoint from one VPC to another, or from one service to another."
#[test]
fn unknown_parameters_are_refused() {
    let w = lab();
    let (w, xml) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.7.0.0/16")]);
    let other: &'static str = Box::leak(text(&xml, "vpcId").into_boxed_str());
    let modify = |extra: (&'static str, &'static str)| {
        vec![("Action", "ModifyVpcEndpoint"), ("VpcEndpointId", "vpce-11bb22cc"), extra]
    };
    for (key, value) in
        [("VpcId", "vpc-other"), ("VpcId", other), ("ServiceName", "com.amazonaws.us-west-2.s3")]
    {
        let e = refused(&w, &modify((key, value)), "UnknownParameter");
        assert_eq!(e.message, format!("The parameter {key} is not recognized"));
    }
    let ep = w.endpoint("vpce-11bb22cc").unwrap();
    assert_eq!((ep.vpc.as_str(), ep.service.as_str()), ("vpc-111bbb22", S3));
    // `AddRouteTableId` without its index: refused, where `.1` names a table that already has a
    // route to S3 (another endpoint's).
    let (w2, _) = change(
        &w,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", "vpc-111bbb22"),
            ("ServiceName", S3),
            ("RouteTableId.1", "rtb-0b0b0b0b"),
        ],
    );
    let e = refused(&w2, &modify(("AddRouteTableId", "rtb-0b0b0b0b")), "UnknownParameter");
    assert_eq!(e.message, "The parameter AddRouteTableId is not recognized");
    refused(&w2, &modify(("AddRouteTableId.1", "rtb-0b0b0b0b")), "RouteAlreadyExists");
    let e = refused(&w, &[("Action", "DescribeVpcEndpoints"), ("Bogus", "1")], "UnknownParameter");
    assert_eq!(e.message, "The parameter Bogus is not recognized");
    // The first unknown one, as sent; before DryRun; names compared case-sensitively, as
    // `Params` reads them; a list index must be all digits.
    let e = refused(
        &w,
        &[
            ("Action", "DescribeVpcs"),
            ("DryRun", "true"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Values.1", other),
            ("Bogus", "1"),
        ],
        "UnknownParameter",
    );
    assert_eq!(e.message, "The parameter Filter.1.Values.1 is not recognized");
    refused(&w, &[("Action", "DescribeVpcs"), ("vpcId.1", other)], "UnknownParameter");
    refused(&w, &[("Action", "DescribeVpcs"), ("VpcId.a", other)], "UnknownParameter");
    refused(&w, &[("Action", "DescribeVpcs"), ("VpcId.", other)], "UnknownParameter");
    refused(&w, &[("Action", "DescribeVpcs"), ("VpcId.1.2", other)], "UnknownParameter");
    // A parameter of another action.
    refused(&w, &[("Action", "DescribeVpcs"), ("SubnetId.1", "subnet-x")], "UnknownParameter");
    // The API refuses them before authorizing anything, as it does an unknown action.
    let form: Vec<(String, String)> = [("Action", "DescribeVpcEndpoints"), ("Bogus", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(check_action(&form).unwrap_err().code, "UnknownParameter");
    // Every request may carry the version and SigV4's presigned query parameters; list
    // indexes of any width.
    let xml = read_xml(
        &w,
        &[
            ("Action", "DescribeVpcs"),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("X-Amz-Expires", "60"),
            ("X-Amz-SignedHeaders", "host"),
            ("X-Amz-Signature", "00"),
            ("X-Amz-Security-Token", "t"),
            ("Filter.10.Name", "vpc-id"),
            ("Filter.10.Value.01", other),
        ],
    );
    assert_eq!(texts(&xml, "vpcId"), [other]);
}

/// Every action has its row of botocore's keys, sorted for the binary search.
#[test]
fn every_action_has_its_known_params() {
    let rows: Vec<&str> = known_params::KNOWN_PARAMS.iter().map(|(a, _)| *a).collect();
    assert_eq!(rows, actions().collect::<Vec<_>>());
    for (action, keys) in known_params::KNOWN_PARAMS {
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{action}: not sorted");
        assert!(keys.iter().all(|k| !COMMON_PARAMS.contains(k)), "{action}");
    }
}

#[test]
fn every_max_results_range_is_of_an_action() {
    let mut acts = actions();
    for (action, min, max) in known_params::MAX_RESULTS {
        // In the order of ACTIONS, so `acts` is consumed up to it.
        assert!(acts.any(|a| a == *action), "{action}: not in ACTIONS (or out of order)");
        assert!(*min >= 1 && max.is_none_or(|m| m >= *min), "{action}");
    }
}

#[test]
fn max_results_out_of_range_is_refused() {
    let w = lab();
    // EC2, as the SDKs report it: "Value ( 3 ) for parameter maxResults is invalid. Expecting
    // a value greater than 5." (InvalidParameterValue).
    let e = refused(
        &w,
        &[("Action", "DescribeInstances"), ("MaxResults", "3")],
        "InvalidParameterValue",
    );
    assert_eq!(
        e.message,
        "Value ( 3 ) for parameter maxResults is invalid. Expecting a value greater than 5."
    );
    // botocore's model: DescribeRouteTablesMaxResults is 5 to 100.
    let e = refused(
        &w,
        &[("Action", "DescribeRouteTables"), ("MaxResults", "101")],
        "InvalidParameterValue",
    );
    assert_eq!(
        e.message,
        "Value ( 101 ) for parameter maxResults is invalid. Expecting a value less than 100."
    );
    // PrefixListMaxResults is 1 to 100.
    refused(
        &w,
        &[
            ("Action", "GetManagedPrefixListEntries"),
            ("PrefixListId", "pl-1a2b3c4d"),
            ("MaxResults", "0"),
        ],
        "InvalidParameterValue",
    );
    refused(&w, &[("Action", "DescribeVpcs"), ("MaxResults", "five")], "InvalidParameterValue");
    // The bounds themselves are accepted; DescribeVpcEndpoints: "If the value is greater than
    // 1,000, we return only 1,000 items" (no refusal).
    for (action, n) in [
        ("DescribeInstances", "5"),
        ("DescribeInstances", "1000"),
        ("DescribeRouteTables", "100"),
        ("DescribeTags", "5"),
        ("DescribeVpcEndpoints", "5000"),
    ] {
        read_xml(&w, &[("Action", action), ("MaxResults", n)]);
    }
}

#[test]
fn describe_instances_max_results_excludes_instance_ids() {
    let w = lab();
    // API Reference, DescribeInstances, MaxResults: "You cannot specify this parameter and the
    // instance IDs parameter in the same request."
    let e = refused(
        &w,
        &[("Action", "DescribeInstances"), ("MaxResults", "5"), ("InstanceId.1", "i-0a0a0a0a")],
        "InvalidParameterCombination",
    );
    assert_eq!(
        e.message,
        "The parameter instancesSet cannot be used with the parameter maxResults"
    );
}

#[test]
fn describe_and_delete_vpc_endpoints() {
    let w = lab();
    let xml = read_xml(&w, &[("Action", "DescribeVpcEndpoints")]);
    dump("DescribeVpcEndpoints", &xml);
    assert_eq!(text(&xml, "vpcEndpointId"), "vpce-11bb22cc");
    assert_eq!(text(&xml, "vpcEndpointType"), "Gateway");
    assert_eq!(text(&xml, "state"), "available");
    assert_eq!(
        text(&xml, "policyDocument"),
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#
    );
    assert!(
        xml.contains(
            "<routeTableIdSet><item>rtb-0a0a0a0a</item><item>rtb-0c0c0c0c</item></routeTableIdSet>"
        ),
        "{xml}"
    );
    let xml = read_xml(
        &w,
        &[
            ("Action", "DescribeVpcEndpoints"),
            ("Filter.1.Name", "service-name"),
            ("Filter.1.Value.1", "com.amazonaws.us-west-2.s3"),
        ],
    );
    assert!(texts(&xml, "vpcEndpointId").is_empty());
    // Two more of DescribeVpcEndpoints' documented filters.
    for (name, value, found) in [
        ("ip-address-type", "ipv4", true),
        ("ip-address-type", "ipv6", false),
        ("service-region", "us-east-1", true),
        ("service-region", "us-west-2", false),
    ] {
        let xml = read_xml(
            &w,
            &[
                ("Action", "DescribeVpcEndpoints"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        assert_eq!(!texts(&xml, "vpcEndpointId").is_empty(), found, "{name}={value}");
    }
    refused(
        &w,
        &[("Action", "DescribeVpcEndpoints"), ("VpcEndpointId.1", "vpce-0999")],
        "InvalidVpcEndpointId.NotFound",
    );
    // Partial failure: the unknown id is reported, the known one deleted with its routes.
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "DeleteVpcEndpoints"),
            ("VpcEndpointId.1", "vpce-11bb22cc"),
            ("VpcEndpointId.2", "vpce-0999"),
        ],
    );
    dump("DeleteVpcEndpoints", &xml);
    assert_eq!(text(&xml, "code"), "InvalidVpcEndpoint.NotFound");
    assert_eq!(text(&xml, "resourceId"), "vpce-0999");
    assert!(w1.endpoints.is_empty());
    for t in ["rtb-0a0a0a0a", "rtb-0c0c0c0c"] {
        assert!(!w1.compiled_routes(t).iter().any(|(_, t)| matches!(t, Target::Vpce(_))));
    }
    // Nothing deletable: a read answer with the failure.
    let xml =
        read_xml(&w1, &[("Action", "DeleteVpcEndpoints"), ("VpcEndpointId.1", "vpce-11bb22cc")]);
    assert_eq!(text(&xml, "code"), "InvalidVpcEndpoint.NotFound");
}

#[test]
fn prefix_lists_and_services() {
    let w = lab();
    let xml = read_xml(&w, &[("Action", "DescribePrefixLists")]);
    dump("DescribePrefixLists", &xml);
    assert_eq!(texts(&xml, "prefixListId"), ["pl-1a2b3c4d"]);
    assert_eq!(text(&xml, "prefixListName"), S3);
    assert_eq!(texts(&xml, "cidrSet"), ["54.123.160.0/19"]);
    let xml = read_xml(&w, &[("Action", "DescribePrefixLists"), ("PrefixListId.1", "pl-68a54001")]);
    assert_eq!(texts(&xml, "prefixListName"), ["com.amazonaws.us-west-2.s3"]);
    refused(
        &w,
        &[("Action", "DescribePrefixLists"), ("PrefixListId.1", "pl-00000000")],
        "InvalidPrefixListID.NotFound",
    );
    // The newer calls Terraform's aws_ec2_managed_prefix_list and current docs use.
    let xml = read_xml(&w, &[("Action", "DescribeManagedPrefixLists")]);
    assert_eq!(texts(&xml, "prefixListId"), ["pl-1a2b3c4d"]);
    assert_eq!(text(&xml, "ownerId"), "AWS");
    assert_eq!(text(&xml, "prefixListArn"), "arn:aws:ec2:us-east-1:aws:prefix-list/pl-1a2b3c4d");
    let xml = read_xml(
        &w,
        &[
            ("Action", "DescribeManagedPrefixLists"),
            ("Filter.1.Name", "prefix-list-name"),
            ("Filter.1.Value.1", "com.amazonaws.us-west-2.s3"),
        ],
    );
    // The calling region's lists only (DescribePrefixLists reaches the others).
    assert!(texts(&xml, "prefixListId").is_empty(), "{xml}");
    let xml =
        read_xml(&w, &[("Action", "GetManagedPrefixListEntries"), ("PrefixListId", "pl-1a2b3c4d")]);
    assert_eq!(texts(&xml, "cidr"), ["54.123.160.0/19"]);
    refused(
        &w,
        &[("Action", "GetManagedPrefixListEntries"), ("PrefixListId", "pl-00000000")],
        "InvalidPrefixListID.NotFound",
    );
    refused(&w, &[("Action", "GetManagedPrefixListEntries")], "MissingParameter");
    let xml = read_xml(&w, &[("Action", "DescribeVpcEndpointServices")]);
    dump("DescribeVpcEndpointServices", &xml);
    assert_eq!(texts(&xml, "serviceName"), [S3]);
    assert_eq!(text(&xml, "serviceType"), "Gateway");
    assert_eq!(text(&xml, "owner"), "amazon");
    assert!(
        xml.contains("<baseEndpointDnsNameSet><item>s3.us-east-1.amazonaws.com</item>"),
        "{xml}"
    );
    // A filter may leave a known service out; it cannot make an unknown name valid.
    let filtered = |name: &'static str, kind: &'static str| {
        [
            ("Action", "DescribeVpcEndpointServices"),
            ("ServiceName.1", name),
            ("Filter.1.Name", "service-type"),
            ("Filter.1.Value.1", kind),
        ]
    };
    let xml = read_xml(&w, &filtered(S3, "Interface"));
    assert!(texts(&xml, "serviceName").is_empty(), "{xml}");
    refused(&w, &filtered("com.amazonaws.us-east-1.nothing", "Gateway"), "InvalidServiceName");
}

#[test]
fn instances() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-0abcdef1234567890"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.SubnetId", "subnet-0b0b0b0b"),
            ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web"),
        ],
    );
    dump("RunInstances", &xml);
    let id = text(&xml, "instanceId");
    assert_eq!(text(&xml, "privateIpAddress"), "10.0.2.4");
    assert_eq!(text(&xml, "ipAddress"), "203.0.113.1");
    assert_eq!(text(&xml, "imageId"), "ami-0abcdef1234567890");
    // Answered `pending`, as EC2 does; running from then on.
    assert_eq!((text(&xml, "code"), text(&xml, "name")), ("0".into(), "pending".into()));
    assert_eq!(text(&xml, "vpcId"), "vpc-111bbb22");
    refused(
        &w1,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0b0b0b0b"),
            ("PrivateIpAddress", "10.0.2.10"),
        ],
        "InvalidIPAddress.InUse",
    );
    refused(
        &w1,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0b0b0b0b"),
            ("PrivateIpAddress", "10.0.2.11"),
            ("MaxCount", "2"),
        ],
        "InvalidParameterCombination",
    );
    let (w2, xml) = change(
        &w1,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0b0b0b0b"),
            ("MinCount", "2"),
            ("MaxCount", "2"),
        ],
    );
    let outer = without(&xml, "networkInterfaceSet");
    assert_eq!(texts(&outer, "privateIpAddress"), ["10.0.2.5", "10.0.2.6"]);
    assert_eq!(w2.instances.len(), 7);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", "web"),
        ],
    );
    dump("DescribeInstances", &xml);
    assert_eq!(texts(&xml, "instanceId"), [id.as_str()]);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "private-ip-address"),
            ("Filter.1.Value.1", "10.0.1.10"),
        ],
    );
    assert_eq!(texts(&xml, "instanceId"), ["i-0a0a0a0a"]);
    refused(
        &w1,
        &[("Action", "DescribeInstances"), ("InstanceId.1", "i-0999")],
        "InvalidInstanceID.NotFound",
    );
    // Several unknown ids are named together, as EC2 names them.
    let e = refused(
        &w1,
        &[
            ("Action", "DescribeInstances"),
            ("InstanceId.1", "i-0998"),
            ("InstanceId.2", "i-0a0a0a0a"),
            ("InstanceId.3", "i-0999"),
        ],
        "InvalidInstanceID.NotFound",
    );
    assert_eq!(e.message, "The instance IDs 'i-0998, i-0999' do not exist");
    refused(
        &w1,
        &[("Action", "TerminateInstances"), ("InstanceId.1", "i-zz")],
        "InvalidInstanceID.Malformed",
    );
    let (w3, xml) = change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", &id)]);
    dump("TerminateInstances", &xml);
    // The API Reference's example: currentState `shutting-down` (32), previousState `running`.
    assert_eq!(texts(&xml, "name"), ["shutting-down", "running"]);
    assert_eq!(texts(&xml, "code"), ["32", "16"]);
    assert!(w3.instance(&id).is_none());
    assert!(w3.tags_of(&id).is_none());
    // EC2: "Terminated instances remain visible after termination (for approximately one
    // hour)", and "if you terminate an instance more than once, each call succeeds".
    let described = |w: &World, filter: (&str, &str)| {
        let xml = read_xml(
            w,
            &[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", filter.0),
                ("Filter.1.Value.1", filter.1),
            ],
        );
        texts(&xml, "instanceId")
    };
    assert_eq!(described(&w3, ("instance-state-name", "terminated")), [id.as_str()]);
    assert!(described(&w3, ("subnet-id", "subnet-0b0b0b0b")).iter().all(|i| *i != id));
    let xml = read_xml(&w3, &[("Action", "DescribeInstances"), ("InstanceId.1", &id)]);
    assert_eq!((text(&xml, "code"), text(&xml, "name")), ("48".into(), "terminated".into()));
    let xml = read_xml(&w3, &[("Action", "TerminateInstances"), ("InstanceId.1", &id)]);
    assert_eq!(texts(&xml, "name"), ["terminated", "terminated"]);
    // An hour later it is gone.
    let mut w4 = w3.clone();
    w4.terminated_instances[0].terminated_at -= crate::model::TERMINATED_VISIBLE_SECS;
    refused(
        &w4,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
        "InvalidInstanceID.NotFound",
    );
    assert!(described(&w4, ("instance-state-name", "terminated")).is_empty());
}

/// botocore, RunInstances `ImageId`: "An AMI ID is required to launch an instance and must be
/// specified here or in a launch template." EC2: MissingParameter.
#[test]
fn run_instances_needs_an_image() {
    let e = refused(
        &lab(),
        &[("Action", "RunInstances"), ("SubnetId", "subnet-0b0b0b0b")],
        "MissingParameter",
    );
    assert_eq!(e.message, "The request must contain the parameter ImageId");
}

#[test]
fn tags() {
    let w = lab();
    let (w1, _) = change(
        &w,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", "vpc-111bbb22"),
            ("ResourceId.2", "rtb-0a0a0a0a"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "lab"),
        ],
    );
    let xml = read_xml(&w1, &[("Action", "DescribeTags")]);
    dump("DescribeTags", &xml);
    assert_eq!(texts(&xml, "resourceId"), ["rtb-0a0a0a0a", "vpc-111bbb22"]);
    assert_eq!(texts(&xml, "resourceType"), ["route-table", "vpc"]);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeTags"),
            ("Filter.1.Name", "resource-type"),
            ("Filter.1.Value.1", "vpc"),
        ],
    );
    assert_eq!(texts(&xml, "resourceId"), ["vpc-111bbb22"]);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeRouteTables"),
            ("Filter.1.Name", "tag:env"),
            ("Filter.1.Value.1", "lab"),
        ],
    );
    assert_eq!(text(&xml, "key"), "env");
    // "You cannot tag an endpoint."
    let e = refused(
        &w1,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", "vpce-11bb22cc"),
            ("Tag.1.Key", "k"),
            ("Tag.1.Value", "v"),
        ],
        "InvalidParameterValue",
    );
    assert!(e.message.contains("You cannot tag an endpoint"), "{e:?}");
    refused(
        &w1,
        &[("Action", "CreateTags"), ("ResourceId.1", "subnet-0999"), ("Tag.1.Key", "k")],
        "InvalidSubnetID.NotFound",
    );
    refused(
        &w1,
        &[("Action", "CreateTags"), ("ResourceId.1", "vpc-111bbb22"), ("Tag.1.Key", "aws:x")],
        "InvalidParameterValue",
    );
    let (w2, _) = change(
        &w1,
        &[("Action", "DeleteTags"), ("ResourceId.1", "vpc-111bbb22"), ("Tag.1.Key", "env")],
    );
    let (w3, _) = change(
        &w2,
        &[
            ("Action", "DeleteTags"),
            ("ResourceId.1", "rtb-0a0a0a0a"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "other"),
        ],
    );
    assert_eq!(w3.tags.len(), 1, "a value mismatch keeps the tag");
}

#[test]
fn dry_run_and_version() {
    let w = lab();
    refused(
        &w,
        &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16"), ("DryRun", "true")],
        "DryRunOperation",
    );
    refused(
        &w,
        &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/8"), ("DryRun", "true")],
        "InvalidVpc.Range",
    );
    let list = vec![
        ("Action".to_string(), "DescribeVpcs".to_string()),
        ("Version".to_string(), "2015-10-01".to_string()),
    ];
    assert!(
        handle(&w, &Ec2Request { params: &list, region: "us-east-1", request_id: "r" }).is_ok()
    );
}

#[test]
fn ids_are_deterministic_and_world_round_trips_json() {
    let w = lab();
    let (a, _) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]);
    let (b, _) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]);
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    let back: World = serde_json::from_str(&json).unwrap();
    assert_eq!(a, back);
    // JSON without the new fields still loads.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_object_mut().unwrap().remove("next_id");
    v.as_object_mut().unwrap().remove("tags");
    let _: World = serde_json::from_value(v).unwrap();
}

#[test]
fn security_group_lifecycle() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "https-to-s3"),
            ("GroupDescription", "HTTPS to S3 only"),
            ("VpcId", "vpc-111bbb22"),
        ],
    );
    dump("CreateSecurityGroup", &xml);
    let sg = text(&xml, "groupId");
    assert!(sg.starts_with("sg-0") && sg.len() == 20, "{sg}");
    // A new group: one egress rule allowing everything, no ingress.
    let xml = read_xml(&w1, &[("Action", "DescribeSecurityGroups"), ("GroupId.1", &sg)]);
    assert_eq!(texts(&xml, "groupName"), ["https-to-s3"]);
    assert_eq!(texts(&xml, "ipProtocol"), ["-1"]);
    assert_eq!(texts(&xml, "cidrIp"), ["0.0.0.0/0"]);
    refused(
        &w1,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "https-to-s3"),
            ("GroupDescription", "again"),
            ("VpcId", "vpc-111bbb22"),
        ],
        "InvalidGroup.Duplicate",
    );
    refused(
        &w1,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "default"),
            ("GroupDescription", "x"),
            ("VpcId", "vpc-111bbb22"),
        ],
        "InvalidParameterValue",
    );
    // Egress: TCP 443 to the S3 prefix list, then revoke the allow-all rule.
    let allow_pl = [
        ("Action", "AuthorizeSecurityGroupEgress"),
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "443"),
        ("IpPermissions.1.ToPort", "443"),
        ("IpPermissions.1.PrefixListIds.1.PrefixListId", "pl-1a2b3c4d"),
    ];
    let (w2, xml) = change(&w1, &allow_pl);
    dump("AuthorizeSecurityGroupEgress", &xml);
    assert_eq!(text(&xml, "return"), "true");
    refused(&w2, &allow_pl, "InvalidPermission.Duplicate");
    let mut bad_pl = allow_pl;
    bad_pl[5].1 = "pl-99999999";
    refused(&w1, &bad_pl, "InvalidPrefixListID.NotFound");
    let revoke_all = [
        ("Action", "RevokeSecurityGroupEgress"),
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "-1"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
    ];
    let (w3, xml) = change(&w2, &revoke_all);
    dump("RevokeSecurityGroupEgress", &xml);
    refused(&w3, &revoke_all, "InvalidPermission.NotFound");
    // Ingress: SSH from the VPC and anything from the default group (botocore's `Groups`).
    let (w4, xml) = change(
        &w3,
        &[
            ("Action", "AuthorizeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
            ("IpPermissions.1.IpRanges.2.CidrIp", "198.51.100.0/24"),
            ("IpPermissions.2.IpProtocol", "icmp"),
            ("IpPermissions.2.FromPort", "8"),
            ("IpPermissions.2.ToPort", "-1"),
            ("IpPermissions.2.Groups.1.GroupId", "sg-111bbb22"),
        ],
    );
    dump("AuthorizeSecurityGroupIngress", &xml);
    let g = w4.security_group(&sg).unwrap();
    assert_eq!(g.ingress.len(), 3);
    assert_eq!(g.egress.len(), 1);
    refused(
        &w4,
        &[
            ("Action", "AuthorizeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.ToPort", "70"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
        ],
        "InvalidParameterValue",
    );
    refused(
        &w4,
        &[
            ("Action", "AuthorizeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.ToPort", "80"),
            ("IpPermissions.1.Groups.1.GroupId", "sg-0123456789"),
        ],
        "InvalidGroup.NotFound",
    );
    let xml = read_xml(
        &w4,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("Filter.1.Name", "group-name"),
            ("Filter.1.Value.1", "https-*"),
            ("Filter.2.Name", "vpc-id"),
            ("Filter.2.Value.1", "vpc-111bbb22"),
        ],
    );
    dump("DescribeSecurityGroups", &xml);
    // One group (the second groupName is the referenced default group's).
    assert_eq!(texts(&xml, "groupDescription"), ["HTTPS to S3 only"]);
    assert_eq!(texts(&xml, "groupName"), ["https-to-s3", "default"]);
    assert_eq!(texts(&xml, "ipProtocol"), ["tcp", "icmp", "tcp"]);
    assert_eq!(texts(&xml, "cidrIp"), ["10.0.0.0/16", "198.51.100.0/24"]);
    assert_eq!(texts(&xml, "prefixListId"), ["pl-1a2b3c4d"]);
    assert_eq!(texts(&xml, "fromPort"), ["22", "8", "443"]);
    assert_eq!(texts(&xml, "toPort"), ["22", "-1", "443"]);
    assert!(xml.contains("<groups><item><userId>123456789012</userId><groupId>sg-111bbb22</groupId><groupName>default</groupName>"), "{xml}");
    // Every VPC has its default group.
    let xml = read_xml(
        &w4,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("Filter.1.Name", "group-id"),
            ("Filter.1.Value.1", "sg-111bbb22"),
        ],
    );
    assert_eq!(texts(&xml, "groupDescription"), ["default VPC security group"]);
    refused(
        &w4,
        &[("Action", "DescribeSecurityGroups"), ("GroupId.1", "sg-0999")],
        "InvalidGroup.NotFound",
    );
    refused(
        &w4,
        &[("Action", "DescribeSecurityGroups"), ("GroupId.1", "sgx")],
        "InvalidGroupId.Malformed",
    );

    // Instances: RunInstances with the group; DescribeInstances shows groupSet.
    let (w5, xml) = change(
        &w4,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.SubnetId", "subnet-0a0a0a0a"),
            ("NetworkInterface.1.SecurityGroupId.1", &sg),
        ],
    );
    let inst = text(&xml, "instanceId");
    assert_eq!(texts(&without(&xml, "networkInterfaceSet"), "groupId"), [sg.as_str()]);
    assert_eq!(w5.instance(&inst).unwrap().security_groups, std::slice::from_ref(&sg));
    let xml = read_xml(&w5, &[("Action", "DescribeInstances"), ("InstanceId.1", "i-0a0a0a0a")]);
    let xml = without(&xml, "networkInterfaceSet");
    assert_eq!(texts(&xml, "groupId"), ["sg-111bbb22"]);
    assert_eq!(texts(&xml, "groupName"), ["default"]);
    let xml = read_xml(
        &w5,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "instance.group-id"),
            ("Filter.1.Value.1", &sg),
        ],
    );
    assert_eq!(texts(&xml, "instanceId"), [inst.as_str()]);
    refused(&w5, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)], "DependencyViolation");
    refused(&w5, &[("Action", "DeleteSecurityGroup"), ("GroupId", "sg-111bbb22")], "CannotDelete");
    // The default group is referenced by the new group's rule: it cannot go either way; and a
    // referenced group cannot be deleted.
    // ModifyInstanceAttribute replaces the groups.
    let (w6, xml) = change(
        &w5,
        &[
            ("Action", "ModifyInstanceAttribute"),
            ("InstanceId", &inst),
            ("GroupId.1", "sg-111bbb22"),
            ("GroupId.2", &sg),
        ],
    );
    dump("ModifyInstanceAttribute", &xml);
    assert_eq!(
        w6.instance(&inst).unwrap().security_groups,
        ["sg-111bbb22".to_string(), sg.clone()]
    );
    let (w7, _) = change(
        &w6,
        &[
            ("Action", "ModifyInstanceAttribute"),
            ("InstanceId", &inst),
            ("GroupId.1", "sg-111bbb22"),
        ],
    );
    refused(
        &w7,
        &[("Action", "ModifyInstanceAttribute"), ("InstanceId", &inst), ("GroupId.1", "sg-0999")],
        "InvalidGroup.NotFound",
    );
    let (w8, xml) = change(&w7, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)]);
    dump("DeleteSecurityGroup", &xml);
    assert!(w8.security_group(&sg).is_none());
    refused(&w8, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)], "InvalidGroup.NotFound");
}

#[test]
fn network_acl_lifecycle() {
    let w = lab();
    let xml = read_xml(&w, &[("Action", "DescribeNetworkAcls")]);
    dump("DescribeNetworkAcls", &xml);
    assert_eq!(texts(&xml, "networkAclId")[0], "acl-111bbb22");
    assert_eq!(text(&xml, "default"), "true");
    // The default ACL: rule 100 allow and the implicit deny, each direction; every subnet.
    assert_eq!(texts(&xml, "ruleNumber"), ["100", "32767", "100", "32767"]);
    assert_eq!(texts(&xml, "ruleAction"), ["allow", "deny", "allow", "deny"]);
    assert_eq!(
        texts(&xml, "subnetId"),
        ["subnet-0a0a0a0a", "subnet-0b0b0b0b", "subnet-0c0c0c0c", "subnet-0d0d0d0d"]
    );
    let assoc_a = texts(&xml, "networkAclAssociationId")[0].clone();

    let (w1, xml) = change(&w, &[("Action", "CreateNetworkAcl"), ("VpcId", "vpc-111bbb22")]);
    dump("CreateNetworkAcl", &xml);
    let acl = text(&xml, "networkAclId");
    assert_eq!(text(&xml, "default"), "false");
    assert_eq!(texts(&xml, "ruleNumber"), ["32767", "32767"]);
    let entry = |action: &'static str, n: &'static str| {
        vec![
            ("Action", action),
            ("NetworkAclId", acl.as_str()),
            ("RuleNumber", n),
            ("Protocol", "6"),
            ("RuleAction", "deny"),
            ("Egress", "false"),
            ("CidrBlock", "198.51.100.0/24"),
            ("PortRange.From", "80"),
            ("PortRange.To", "80"),
        ]
    };
    let (w2, xml) = change(&w1, &entry("CreateNetworkAclEntry", "100"));
    dump("CreateNetworkAclEntry", &xml);
    assert_eq!(text(&xml, "return"), "true");
    refused(&w2, &entry("CreateNetworkAclEntry", "100"), "NetworkAclEntryAlreadyExists");
    refused(&w2, &entry("CreateNetworkAclEntry", "0"), "InvalidParameterValue");
    refused(&w2, &entry("CreateNetworkAclEntry", "32767"), "InvalidParameterValue");
    refused(&w2, &entry("ReplaceNetworkAclEntry", "101"), "InvalidNetworkAclEntry.NotFound");
    // The guide: no prefix list in a network ACL entry.
    let mut pl = entry("CreateNetworkAclEntry", "110");
    pl[6].1 = "pl-1a2b3c4d";
    let e = refused(&w2, &pl, "InvalidParameterValue");
    assert!(
        e.message.contains(
            "You cannot use prefix list IDs to create an outbound rule in a network ACL that \
             allows or denies outbound traffic to the service specified in an endpoint. Instead, \
             you can use a prefix list ID in an outbound security group rule."
        ),
        "{e}"
    );
    let (w3, _) = change(
        &w2,
        &[
            ("Action", "CreateNetworkAclEntry"),
            ("NetworkAclId", &acl),
            ("RuleNumber", "200"),
            ("Protocol", "1"),
            ("RuleAction", "allow"),
            ("Egress", "false"),
            ("CidrBlock", "10.0.0.0/16"),
            ("Icmp.Type", "8"),
            ("Icmp.Code", "-1"),
        ],
    );
    let mut rep = entry("ReplaceNetworkAclEntry", "100");
    rep[4].1 = "allow";
    let (w4, xml) = change(&w3, &rep);
    dump("ReplaceNetworkAclEntry", &xml);
    let xml = read_xml(&w4, &[("Action", "DescribeNetworkAcls"), ("NetworkAclId.1", &acl)]);
    dump("DescribeNetworkAcls2", &xml);
    assert_eq!(texts(&xml, "ruleNumber"), ["32767", "100", "200", "32767"]);
    assert_eq!(texts(&xml, "ruleAction"), ["deny", "allow", "allow", "deny"]);
    assert_eq!(texts(&xml, "protocol"), ["-1", "6", "1", "-1"]);
    assert!(xml.contains("<portRange><from>80</from><to>80</to></portRange>"), "{xml}");
    assert!(xml.contains("<icmpTypeCode><code>-1</code><type>8</type></icmpTypeCode>"), "{xml}");
    let (w5, xml) = change(
        &w4,
        &[
            ("Action", "DeleteNetworkAclEntry"),
            ("NetworkAclId", &acl),
            ("RuleNumber", "200"),
            ("Egress", "false"),
        ],
    );
    dump("DeleteNetworkAclEntry", &xml);
    refused(
        &w5,
        &[
            ("Action", "DeleteNetworkAclEntry"),
            ("NetworkAclId", &acl),
            ("RuleNumber", "200"),
            ("Egress", "false"),
        ],
        "InvalidNetworkAclEntry.NotFound",
    );
    // Move subnet a to the new ACL, then back.
    let (w6, xml) = change(
        &w5,
        &[
            ("Action", "ReplaceNetworkAclAssociation"),
            ("AssociationId", &assoc_a),
            ("NetworkAclId", &acl),
        ],
    );
    dump("ReplaceNetworkAclAssociation", &xml);
    let new_assoc = text(&xml, "newAssociationId");
    assert!(new_assoc.starts_with("aclassoc-0"), "{new_assoc}");
    assert_eq!(w6.subnet_acl("a").unwrap().0.id, acl);
    let xml = read_xml(
        &w6,
        &[
            ("Action", "DescribeNetworkAcls"),
            ("Filter.1.Name", "association.subnet-id"),
            ("Filter.1.Value.1", "subnet-0a0a0a0a"),
        ],
    );
    assert_eq!(texts(&xml, "networkAclId")[0], acl);
    refused(
        &w6,
        &[
            ("Action", "ReplaceNetworkAclAssociation"),
            ("AssociationId", &assoc_a),
            ("NetworkAclId", &acl),
        ],
        "InvalidAssociationID.NotFound",
    );
    refused(&w6, &[("Action", "DeleteNetworkAcl"), ("NetworkAclId", &acl)], "DependencyViolation");
    refused(
        &w6,
        &[("Action", "DeleteNetworkAcl"), ("NetworkAclId", "acl-111bbb22")],
        "InvalidParameterValue",
    );
    let (w7, _) = change(
        &w6,
        &[
            ("Action", "ReplaceNetworkAclAssociation"),
            ("AssociationId", &new_assoc),
            ("NetworkAclId", "acl-111bbb22"),
        ],
    );
    assert_eq!(w7.subnet_acl("a").unwrap().0.id, "acl-111bbb22");
    let (w8, xml) = change(&w7, &[("Action", "DeleteNetworkAcl"), ("NetworkAclId", &acl)]);
    dump("DeleteNetworkAcl", &xml);
    assert!(w8.network_acl(&acl).is_none());
    refused(
        &w8,
        &[("Action", "DeleteNetworkAcl"), ("NetworkAclId", &acl)],
        "InvalidNetworkAclID.NotFound",
    );
}

#[test]
fn vpc_comes_with_default_group_and_acl_and_old_worlds_get_them() {
    let w = lab();
    let (w1, xml) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]);
    let vpc = text(&xml, "vpcId");
    let sg = crate::model::default_group_id(&vpc);
    assert_eq!(w1.security_group(&sg).unwrap().name, "default");
    assert!(w1.network_acl(&crate::model::default_acl_id(&vpc)).unwrap().is_default);
    // A non-default group keeps the VPC alive; the defaults go with it.
    let (w2, xml) = change(
        &w1,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "x"),
            ("GroupDescription", "x"),
            ("VpcId", &vpc),
        ],
    );
    let g = text(&xml, "groupId");
    refused(&w2, &[("Action", "DeleteVpc"), ("VpcId", &vpc)], "DependencyViolation");
    let (w3, _) = change(&w2, &[("Action", "DeleteSecurityGroup"), ("GroupId", &g)]);
    let (w4, _) = change(&w3, &[("Action", "DeleteVpc"), ("VpcId", &vpc)]);
    assert!(w4.security_group(&sg).is_none());
    // A world saved before groups existed (no such fields in its JSON) loads and answers.
    let mut json: serde_json::Value = serde_json::to_value(lab()).unwrap();
    json.as_object_mut().unwrap().remove("security_groups");
    json.as_object_mut().unwrap().remove("network_acls");
    for i in json["instances"].as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("security_groups");
    }
    let old: World = serde_json::from_value(json).unwrap();
    assert!(old.security_groups.is_empty());
    let xml = read_xml(&old, &[("Action", "DescribeSecurityGroups")]);
    assert_eq!(texts(&xml, "groupDescription"), ["default VPC security group"]);
    // The group, then its ingress rule naming itself.
    assert_eq!(texts(&xml, "groupId"), ["sg-111bbb22", "sg-111bbb22"]);
    let (upgraded, _) = change(&old, &[("Action", "CreateNetworkAcl"), ("VpcId", "vpc-111bbb22")]);
    assert_eq!(upgraded.security_groups.len(), 1);
    assert_eq!(upgraded.network_acls.len(), 2);
}

#[test]
fn client_tokens_make_creates_idempotent() {
    // CreateRouteTable's ClientToken: "Unique, case-sensitive identifier that you provide to
    // ensure the idempotency of the request." A retry with the same token and parameters gets
    // the first answer and makes nothing; other parameters with it are refused.
    let w = lab();
    let create =
        [("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22"), ("ClientToken", "tok-1")];
    let (w1, xml) = change(&w, &create);
    let id = text(&xml, "routeTableId");
    let again = read_xml(&w1, &create);
    assert_eq!(text(&again, "routeTableId"), id);
    assert_eq!(w1.route_tables.len(), w.route_tables.len() + 1);
    // The parameters in another order are the same request.
    let reordered = [create[2], create[1], create[0]];
    assert_eq!(text(&read_xml(&w1, &reordered), "routeTableId"), id);
    refused(
        &w1,
        &[("Action", "CreateRouteTable"), ("VpcId", "vpc-0999"), ("ClientToken", "tok-1")],
        "IdempotentParameterMismatch",
    );
    refused(
        &w1,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0b0b0b0b"),
            ("ClientToken", "tok-1"),
        ],
        "IdempotentParameterMismatch",
    );
    // Without a token, or with another, a second table.
    let (w2, xml2) = change(&w1, &create[..2]);
    assert_ne!(text(&xml2, "routeTableId"), id);
    let (w3, _) = change(&w2, &[create[0], create[1], ("ClientToken", "tok-2")]);
    assert_eq!(w3.route_tables.len(), w.route_tables.len() + 3);
    // The oldest tokens are forgotten beyond the limit.
    let mut w4 = w3.clone();
    for n in 0..crate::model::CLIENT_TOKENS_KEPT {
        let rec = w4.client_tokens["tok-2"].clone();
        w4.remember_client_token(&format!("t{n}"), rec);
    }
    assert_eq!(w4.client_tokens.len(), crate::model::CLIENT_TOKENS_KEPT);
    assert!(!w4.client_tokens.contains_key("tok-1"));
}

#[test]
fn repeated_route_tables_and_tagless_create_tags() {
    let w = lab();
    // vpce-11bb22cc already serves rtb-0a0a0a0a and rtb-0c0c0c0c; naming rtb-0b0b0b0b twice
    // adds it once.
    let (w1, _) = change(
        &w,
        &[
            ("Action", "ModifyVpcEndpoint"),
            ("VpcEndpointId", "vpce-11bb22cc"),
            ("AddRouteTableId.1", "rtb-0b0b0b0b"),
            ("AddRouteTableId.2", "rtb-0b0b0b0b"),
        ],
    );
    let e = w1.endpoint("vpce-11bb22cc").unwrap();
    assert_eq!(e.route_tables.iter().filter(|t| *t == "rtb-0b0b0b0b").count(), 1);
    refused(&w, &[("Action", "CreateTags"), ("ResourceId.1", "vpc-111bbb22")], "MissingParameter");
}

/// Rules for other protocols by number: "specifying -1 or a protocol number other than tcp,
/// udp, icmp, or icmpv6 allows traffic on all ports, regardless of any port range you specify"
/// (AuthorizeSecurityGroupEgress, `IpProtocol`); network ACL entries take any protocol number.
#[test]
fn rules_for_other_protocols_by_number() {
    let w = lab();
    let gre = [
        ("Action", "AuthorizeSecurityGroupEgress"),
        ("GroupId", "sg-111bbb22"),
        ("IpPermissions.1.IpProtocol", "47"),
        ("IpPermissions.1.FromPort", "5"),
        ("IpPermissions.1.ToPort", "3"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "198.51.100.0/24"),
        ("IpPermissions.2.IpProtocol", "icmpv6"),
        ("IpPermissions.2.IpRanges.1.CidrIp", "198.51.100.0/24"),
    ];
    let (w1, _) = change(&w, &gre);
    refused(&w1, &gre, "InvalidPermission.Duplicate");
    let xml = read_xml(&w1, &[("Action", "DescribeSecurityGroups"), ("GroupId.1", "sg-111bbb22")]);
    assert_eq!(texts(&xml, "ipProtocol"), ["-1", "-1", "47", "icmpv6"], "{xml}");
    // No ports shown for them (the given ones are ignored).
    assert_eq!(texts(&xml, "fromPort"), Vec::<String>::new(), "{xml}");
    for bad in ["gre", "256", "-2", "4 7", ""] {
        let mut p = gre;
        p[2].1 = bad;
        refused(&w, &p, "InvalidParameterValue");
    }
    // "06" is TCP, which needs its ports.
    let mut tcp = gre;
    tcp[2].1 = "06";
    tcp[3].1 = "443";
    tcp[4].1 = "443";
    let (w2, _) = change(&w, &tcp[..6]);
    let xml = read_xml(&w2, &[("Action", "DescribeSecurityGroups"), ("GroupId.1", "sg-111bbb22")]);
    assert!(texts(&xml, "ipProtocol").contains(&"tcp".to_string()), "{xml}");
    let (w3, _) = change(
        &w,
        &[
            ("Action", "CreateNetworkAclEntry"),
            ("NetworkAclId", "acl-111bbb22"),
            ("RuleNumber", "90"),
            ("Protocol", "50"),
            ("RuleAction", "deny"),
            ("Egress", "true"),
            ("CidrBlock", "0.0.0.0/0"),
        ],
    );
    let xml =
        read_xml(&w3, &[("Action", "DescribeNetworkAcls"), ("NetworkAclId.1", "acl-111bbb22")]);
    assert_eq!(texts(&xml, "protocol"), ["50", "-1", "-1", "-1", "-1"], "{xml}");
    assert!(!xml.contains("portRange"), "{xml}");
}

/// An instance's private DNS name is the one the VPC resolver answers: `ip-….ec2.internal` in
/// us-east-1, `ip-….<region>.compute.internal` elsewhere ("Amazon EC2 instance hostname types").
#[test]
fn private_dns_names_follow_the_region() {
    let mut w = lab();
    let xml = read_xml(&w, &[("Action", "DescribeInstances")]);
    assert!(texts(&xml, "privateDnsName").contains(&"ip-10-0-1-10.ec2.internal".to_string()));
    w.region = "us-west-2".into();
    let xml = read_xml(&w, &[("Action", "DescribeInstances")]);
    let names = texts(&xml, "privateDnsName");
    assert!(names.contains(&"ip-10-0-1-10.us-west-2.compute.internal".to_string()), "{names:?}");
}

/// RunInstances takes tags for "instance | volume | spot-instances-request |
/// network-interface"; the CLI reference's example tags the instance and its volumes in one
/// call. The lab has no volumes: their tags are accepted, not kept; another type is refused.
#[test]
fn run_instances_takes_volume_tags() {
    let w = lab();
    let mut params = vec![
        ("Action", "RunInstances"),
        ("ImageId", "ami-0abcdef1234567890"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("SubnetId", "subnet-0b0b0b0b"),
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "Name"),
        ("TagSpecification.1.Tag.1.Value", "web"),
        ("TagSpecification.2.ResourceType", "volume"),
        ("TagSpecification.2.Tag.1.Key", "Name"),
        ("TagSpecification.2.Tag.1.Value", "web-disk"),
    ];
    let (w1, xml) = change(&w, &params);
    let id = text(&xml, "instanceId");
    let xml = read_xml(&w1, &[("Action", "DescribeTags")]);
    assert!(xml.contains(&id) && xml.contains("<value>web</value>"), "{xml}");
    assert!(!xml.contains("web-disk"), "{xml}");
    // The type asked for is the type described (the lab's default t3.micro otherwise).
    let mut typed = params.clone();
    typed.push(("InstanceType", "t2.micro"));
    let (w2, xml) = change(&w, &typed);
    assert_eq!(text(&xml, "instanceType"), "t2.micro");
    let xml = read_xml(
        &w2,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "instance-type"),
            ("Filter.1.Value.1", "t2.micro"),
        ],
    );
    assert_eq!(texts(&xml, "instanceType"), ["t2.micro"], "{xml}");
    let mut bad = params.clone();
    bad.push(("InstanceType", "T2 Micro"));
    refused(&w, &bad, "InvalidParameterValue");
    params[8].1 = "vpc";
    refused(&w, &params, "InvalidParameterValue");
    // Not kept, but checked: no `aws:` key on a volume either.
    params[8].1 = "volume";
    params[9].1 = "aws:x";
    refused(&w, &params, "InvalidParameterValue");
}

/// EC2 API Reference, RunInstances: one call launches its instances in one reservation,
/// "Reservation" being "Information about the reservation"; DescribeInstances lists that
/// reservation with all of them, and the `reservation-id` filter finds them by it.
#[test]
fn one_reservation_per_run_instances() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0b0b0b0b"),
            ("MinCount", "3"),
            ("MaxCount", "3"),
        ],
    );
    let r = text(&xml, "reservationId");
    let ids = texts(&xml, "instanceId");
    assert_eq!(ids.len(), 3);
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "reservation-id"),
            ("Filter.1.Value.1", &r),
        ],
    );
    assert_eq!(texts(&xml, "reservationId"), [r.as_str()]);
    assert_eq!(texts(&xml, "instanceId"), ids);
    // Terminated, they stay in it.
    let (w2, _) =
        change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", ids[0].as_str())]);
    let xml = read_xml(
        &w2,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "reservation-id"),
            ("Filter.1.Value.1", &r),
        ],
    );
    assert_eq!(texts(&xml, "reservationId"), [r]);
    assert_eq!(texts(&xml, "instanceId").len(), 3);
    // A world saved before reservations were kept: derived from the instance id.
    let mut old = w1.clone();
    old.instances.iter_mut().for_each(|i| i.reservation = None);
    let json = serde_json::to_string(&old).unwrap();
    assert!(!json.contains("\"reservation\""));
    let back: World = serde_json::from_str(&json).unwrap();
    let i = back.instance(&ids[1]).unwrap();
    assert_eq!(i.reservation(), format!("r-{}", ids[1].trim_start_matches("i-")));
}

/// DescribeNetworkAcls' `entry.*` filters see the entries the answer lists, the implicit
/// `*` denies (rule 32767) included; "entry.protocol - The protocol specified in the entry
/// (tcp | udp | icmp or a protocol number)" (EC2 API Reference).
#[test]
fn network_acl_entry_filters_see_what_the_answer_shows() {
    let w = lab();
    let (w1, xml) = change(&w, &[("Action", "CreateNetworkAcl"), ("VpcId", "vpc-111bbb22")]);
    let acl = text(&xml, "networkAclId");
    let ids = |w: &World, name: &str, value: &str| {
        let xml = read_xml(
            w,
            &[
                ("Action", "DescribeNetworkAcls"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        // Each ACL's id, then its associations' (which name it again).
        let mut ids = texts(&xml, "networkAclId");
        ids.dedup();
        ids
    };
    let both = vec!["acl-111bbb22".to_string(), acl.clone()];
    // The new ACL has only its implicit denies.
    assert_eq!(ids(&w1, "entry.rule-number", "32767"), both);
    assert_eq!(ids(&w1, "entry.rule-action", "deny"), both);
    assert_eq!(ids(&w1, "entry.cidr", "0.0.0.0/0"), both);
    assert_eq!(ids(&w1, "entry.protocol", "-1"), both);
    assert_eq!(ids(&w1, "entry.egress", "true"), both);
    assert!(ids(&w1, "entry.protocol", "tcp").is_empty());
    let (w2, _) = change(
        &w1,
        &[
            ("Action", "CreateNetworkAclEntry"),
            ("NetworkAclId", &acl),
            ("RuleNumber", "100"),
            ("Protocol", "6"),
            ("RuleAction", "allow"),
            ("Egress", "false"),
            ("CidrBlock", "198.51.100.0/24"),
            ("PortRange.From", "80"),
            ("PortRange.To", "443"),
        ],
    );
    assert_eq!(ids(&w2, "entry.protocol", "tcp"), [acl.as_str()]);
    assert_eq!(ids(&w2, "entry.protocol", "6"), [acl.as_str()]);
    assert!(ids(&w2, "entry.protocol", "udp").is_empty());
    assert_eq!(ids(&w2, "entry.port-range.from", "80"), [acl.as_str()]);
    assert_eq!(ids(&w2, "entry.port-range.to", "443"), [acl.as_str()]);
    assert!(ids(&w2, "entry.icmp.type", "*").is_empty());
}

/// `association.network-acl-id`: "The ID of the network ACL involved in the association" (EC2
/// API Reference); an ACL with no association does not match it.
#[test]
fn association_network_acl_id_needs_an_association() {
    let w = lab();
    let (w1, xml) = change(&w, &[("Action", "CreateNetworkAcl"), ("VpcId", "vpc-111bbb22")]);
    let acl = text(&xml, "networkAclId");
    let filter = |w: &World, value: &str| {
        let xml = read_xml(
            w,
            &[
                ("Action", "DescribeNetworkAcls"),
                ("Filter.1.Name", "association.network-acl-id"),
                ("Filter.1.Value.1", value),
            ],
        );
        let mut ids = texts(&xml, "networkAclId");
        ids.dedup();
        ids
    };
    assert!(filter(&w1, &acl).is_empty());
    assert_eq!(filter(&w1, "acl-111bbb22"), ["acl-111bbb22"]);
    let xml =
        read_xml(&w1, &[("Action", "DescribeNetworkAcls"), ("NetworkAclId.1", "acl-111bbb22")]);
    let assoc = texts(&xml, "networkAclAssociationId")[0].clone();
    let (w2, _) = change(
        &w1,
        &[
            ("Action", "ReplaceNetworkAclAssociation"),
            ("AssociationId", &assoc),
            ("NetworkAclId", &acl),
        ],
    );
    assert_eq!(filter(&w2, &acl), [acl.as_str()]);
}

/// `AvailableIpAddressCount`: "The number of unused private IPv4 addresses in the subnet"
/// (EC2 API Reference, Subnet): a NAT gateway's interface uses one, as an instance does.
#[test]
fn available_ip_count_counts_nat_gateways() {
    let free = |w: &World, subnet: &str| {
        let xml = read_xml(w, &[("Action", "DescribeSubnets"), ("SubnetId.1", subnet)]);
        text(&xml, "availableIpAddressCount").parse::<u64>().unwrap()
    };
    let w = lab();
    // Subnet b (/24): AWS's 5, its instance and the NAT gateway at 10.0.2.40.
    let used = w.instances.iter().filter(|i| i.subnet == "subnet-0b0b0b0b").count() as u64;
    assert_eq!(free(&w, "subnet-0b0b0b0b"), 256 - 5 - used - 1);
    let before = free(&w, "subnet-0a0a0a0a");
    let (w1, xml) = change(&w, &[("Action", "AllocateAddress"), ("Domain", "vpc")]);
    let alloc = text(&xml, "allocationId");
    let (w2, xml) = change(
        &w1,
        &[
            ("Action", "CreateNatGateway"),
            ("SubnetId", "subnet-0a0a0a0a"),
            ("AllocationId", &alloc),
        ],
    );
    assert_eq!(free(&w2, "subnet-0a0a0a0a"), before - 1);
    let nat = text(&xml, "natGatewayId");
    let (w3, _) = change(&w2, &[("Action", "DeleteNatGateway"), ("NatGatewayId", &nat)]);
    assert_eq!(free(&w3, "subnet-0a0a0a0a"), before);
}

/// An unknown filter name is `InvalidParameterValue` "The filter 'bogus' is invalid" whatever
/// the data: with nothing to match, and after another filter has excluded everything.
#[test]
fn unknown_filter_names_are_refused_whatever_the_data() {
    let w = lab();
    let bogus = |w: &World, params: &[(&str, &str)]| {
        let e = refused(w, params, "InvalidParameterValue");
        assert_eq!(e.message, "The filter 'bogus' is invalid", "{params:?}");
    };
    // No NAT gateway, Elastic IP or instance left.
    let mut empty = w.clone();
    empty.instances.clear();
    empty.nat_gateways.clear();
    empty.elastic_ips.clear();
    for action in ["DescribeInstances", "DescribeNatGateways", "DescribeAddresses"] {
        bogus(&empty, &[("Action", action), ("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "x")]);
    }
    // A first filter that matches nothing.
    bogus(
        &w,
        &[
            ("Action", "DescribeVpcs"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-00000000"),
            ("Filter.2.Name", "bogus"),
            ("Filter.2.Value.1", "x"),
        ],
    );
    // Every name an action declares is one its resources answer (the lists and the matching
    // agree), and every Describe refuses `bogus`.
    let actions: &[(&str, &[&str])] = &[
        ("DescribeRegions", crate::services::ec2::network::REGION_FILTERS),
        ("DescribeAvailabilityZones", crate::services::ec2::network::ZONE_FILTERS),
        ("DescribeVpcs", crate::services::ec2::network::VPC_FILTERS),
        ("DescribeSubnets", crate::services::ec2::network::SUBNET_FILTERS),
        ("DescribeRouteTables", crate::services::ec2::network::ROUTE_TABLE_FILTERS),
        ("DescribeInternetGateways", crate::services::ec2::network::INTERNET_GATEWAY_FILTERS),
        ("DescribeVpcEndpoints", crate::services::ec2::endpoints::VPC_ENDPOINT_FILTERS),
        ("DescribePrefixLists", crate::services::ec2::endpoints::PREFIX_LIST_FILTERS),
        (
            "DescribeManagedPrefixLists",
            crate::services::ec2::endpoints::MANAGED_PREFIX_LIST_FILTERS,
        ),
        (
            "DescribeVpcEndpointServices",
            crate::services::ec2::endpoints::VPC_ENDPOINT_SERVICE_FILTERS,
        ),
        ("DescribeInstances", crate::services::ec2::instance_filters::INSTANCE_FILTERS),
        ("DescribeTags", crate::services::ec2::instances::TAG_FILTERS),
        ("DescribeAddresses", crate::services::ec2::nat::ADDRESS_FILTERS),
        ("DescribeNatGateways", crate::services::ec2::nat::NAT_GATEWAY_FILTERS),
        ("DescribeSecurityGroups", crate::services::ec2::security::SECURITY_GROUP_FILTERS),
        ("DescribeSecurityGroupRules", crate::services::ec2::security::SECURITY_GROUP_RULE_FILTERS),
        ("DescribeNetworkAcls", crate::services::ec2::security::NETWORK_ACL_FILTERS),
    ];
    // A VPC endpoint and a tag, so that every action has something to match.
    let (w, _) = change(
        &w,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", "vpc-111bbb22"),
            ("ServiceName", "com.amazonaws.us-east-1.s3"),
        ],
    );
    for (action, names) in actions {
        for name in *names {
            read_xml(&w, &[("Action", action), ("Filter.1.Name", name), ("Filter.1.Value.1", "*")]);
        }
        bogus(&w, &[("Action", action), ("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "*")]);
    }
}

/// DescribeManagedPrefixLists answers the region called, whatever the filters or ids (EC2
/// answers `InvalidPrefixListID.NotFound` for another region's list); DescribePrefixLists
/// keeps its documented reach into the other regions the lab simulates (README).
#[test]
fn managed_prefix_lists_stay_in_the_region() {
    let w = lab();
    let owner = [
        ("Action", "DescribeManagedPrefixLists"),
        ("Filter.1.Name", "owner-id"),
        ("Filter.1.Value.1", "AWS"),
    ];
    assert_eq!(texts(&read_xml(&w, &owner), "prefixListId"), ["pl-1a2b3c4d"]);
    let any = [
        ("Action", "DescribeManagedPrefixLists"),
        ("Filter.1.Name", "prefix-list-id"),
        ("Filter.1.Value.1", "*"),
    ];
    assert_eq!(texts(&read_xml(&w, &any), "prefixListId"), ["pl-1a2b3c4d"]);
    refused(
        &w,
        &[("Action", "DescribeManagedPrefixLists"), ("PrefixListId.1", "pl-68a54001")],
        "InvalidPrefixListID.NotFound",
    );
    let xml = read_xml(
        &w,
        &[
            ("Action", "DescribePrefixLists"),
            ("Filter.1.Name", "prefix-list-id"),
            ("Filter.1.Value.1", "*"),
        ],
    );
    assert!(texts(&xml, "prefixListId").len() > 1, "{xml}");
}

/// Members EC2 always returns for an instance (EC2 API Reference, Instance): `launchTime`
/// ("The time that the instance was last launched"), `monitoring`, `rootDeviceName`,
/// `hypervisor`, `blockDeviceMapping`, and `networkInterfaceSet` with the primary interface;
/// a gateway endpoint's `networkInterfaceIdSet` is empty ("(Interface endpoint) The network
/// interfaces for the endpoint").
#[test]
fn instance_shape_has_what_ec2_always_returns() {
    let w = lab();
    // A lab-file instance: the fixed date.
    let xml = read_xml(&w, &[("Action", "DescribeInstances"), ("InstanceId.1", "i-0a0a0a0a")]);
    assert_eq!(text(&xml, "launchTime"), "2015-12-17T00:00:00.000Z");
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.SubnetId", "subnet-0b0b0b0b"),
            ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
        ],
    );
    let id = text(&xml, "instanceId");
    let launched = text(&xml, "launchTime");
    assert!(launched.starts_with("20") && launched.ends_with(".000Z"), "{launched}");
    assert_ne!(launched, "2015-12-17T00:00:00.000Z");
    let xml = read_xml(&w1, &[("Action", "DescribeInstances"), ("InstanceId.1", &id)]);
    assert_eq!(text(&xml, "launchTime"), launched);
    let monitoring = xml.split("<monitoring>").nth(1).unwrap();
    assert!(monitoring.starts_with("<state>disabled</state>"), "{xml}");
    assert_eq!(text(&xml, "rootDeviceName"), "/dev/xvda");
    assert_eq!(text(&xml, "hypervisor"), "xen");
    assert!(xml.contains("<blockDeviceMapping"), "{xml}");
    let set = xml.split("<networkInterfaceSet>").nth(1).unwrap();
    let set = set.split("</networkInterfaceSet>").next().unwrap();
    assert_eq!(text(set, "networkInterfaceId"), format!("eni-{}", id.trim_start_matches("i-")));
    assert_eq!(text(set, "subnetId"), "subnet-0b0b0b0b");
    assert_eq!(text(set, "vpcId"), "vpc-111bbb22");
    assert_eq!(
        text(set, "privateIpAddress"),
        text(&without(&xml, "networkInterfaceSet"), "privateIpAddress")
    );
    assert_eq!(text(set, "deviceIndex"), "0");
    assert_eq!(text(set, "status"), "in-use");
    assert_eq!(text(set, "publicIp"), text(&xml, "ipAddress"));
    assert_eq!(text(set, "groupId"), "sg-111bbb22");
    // Terminated, it keeps its launch time.
    let (w2, _) = change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", &id)]);
    let xml = read_xml(&w2, &[("Action", "DescribeInstances"), ("InstanceId.1", &id)]);
    assert_eq!(text(&xml, "launchTime"), launched);
    // A gateway endpoint has no interfaces.
    let (w3, _) = change(
        &w,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", "vpc-111bbb22"),
            ("ServiceName", "com.amazonaws.us-east-1.s3"),
        ],
    );
    let xml = read_xml(&w3, &[("Action", "DescribeVpcEndpoints")]);
    assert!(xml.contains("<networkInterfaceIdSet"), "{xml}");
    assert!(texts(&xml, "networkInterfaceIdSet").iter().all(|s| s.is_empty()), "{xml}");
}

/// An instance's interface carries `macAddress` (botocore's InstanceNetworkInterface: "The MAC
/// address."; the Instance shape has none of its own). AWS's are locally administered unicast
/// addresses (`02:`, `06:`, `0a:` …); the lab's are `02:` and five bytes derived from the
/// interface id: the same at every call and in every run, one per interface.
#[test]
fn interfaces_have_a_stable_locally_administered_mac() {
    let w = lab();
    let mac_of = |w: &World, i: &str| {
        let xml = read_xml(w, &[("Action", "DescribeInstances"), ("InstanceId.1", i)]);
        assert!(texts(&without(&xml, "networkInterfaceSet"), "macAddress").is_empty(), "{xml}");
        let set = xml.split("<networkInterfaceSet>").nth(1).unwrap();
        text(set.split("</networkInterfaceSet>").next().unwrap(), "macAddress")
    };
    let a = mac_of(&w, "i-0a0a0a0a");
    let octets: Vec<&str> = a.split(':').collect();
    assert_eq!(octets.len(), 6, "{a}");
    assert!(octets.iter().all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit())));
    assert_eq!(a, a.to_lowercase());
    // Locally administered (bit 1 of the first octet), unicast (bit 0 clear).
    assert_eq!(octets[0], "02");
    assert_ne!(mac_of(&w, "i-0b0b0b0b"), a);
    // Stable: the same in another world that has it, after other changes.
    let (w1, _) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", "10.9.0.0/16")]);
    assert_eq!(mac_of(&w1, "i-0a0a0a0a"), a);
    assert_eq!(mac_of(&lab(), "i-0a0a0a0a"), a);
}

/// The interface's `association.ipOwnerId`: "The ID of the owner of the Elastic IP address."
/// (botocore, InstanceNetworkInterfaceAssociation): the account for an Elastic IP, `amazon`
/// for a public IP EC2 assigned.
#[test]
fn interface_association_owner_is_the_account_for_an_elastic_ip() {
    let w = lab();
    let owner = |w: &World, i: &str| {
        let xml = read_xml(w, &[("Action", "DescribeInstances"), ("InstanceId.1", i)]);
        texts(&xml, "ipOwnerId")
    };
    // i-0a0a0a0a's public IP is the lab file's, assigned: "amazon" (interface and address).
    assert_eq!(owner(&w, "i-0a0a0a0a"), ["amazon", "amazon"]);
    let (w1, xml) = change(&w, &[("Action", "AllocateAddress"), ("Domain", "vpc")]);
    let alloc = text(&xml, "allocationId");
    let (w2, _) = change(
        &w1,
        &[("Action", "AssociateAddress"), ("AllocationId", &alloc), ("InstanceId", "i-0d0d0d0d")],
    );
    assert_eq!(owner(&w2, "i-0d0d0d0d"), [OWNER_ID, OWNER_ID]);
}

/// A world taken through many EC2 changes keeps every invariant `World::check` checks (the
/// check a saved world gets when a lab resumes), before and after a JSON round trip: nothing
/// the API makes is refused when it loads, blackholes to what was deleted included.
#[test]
fn a_world_after_many_changes_still_checks_after_a_save_and_load() {
    let mut w = lab();
    fn step(w: &mut World, params: &[(&str, &str)]) -> String {
        let (next, xml) = change(w, params);
        if let Err(e) = next.check() {
            panic!("{params:?} left a world that does not check: {e}");
        }
        *w = next;
        xml
    }
    let vpc =
        text(&step(&mut w, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")]), "vpcId");
    let subnet = text(
        &step(&mut w, &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", "10.1.1.0/24")]),
        "subnetId",
    );
    let subnet2 = text(
        &step(&mut w, &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", "10.1.2.0/24")]),
        "subnetId",
    );
    let rt =
        text(&step(&mut w, &[("Action", "CreateRouteTable"), ("VpcId", &vpc)]), "routeTableId");
    let assoc = text(
        &step(
            &mut w,
            &[("Action", "AssociateRouteTable"), ("RouteTableId", &rt), ("SubnetId", &subnet)],
        ),
        "associationId",
    );
    let igw = text(&step(&mut w, &[("Action", "CreateInternetGateway")]), "internetGatewayId");
    step(
        &mut w,
        &[("Action", "AttachInternetGateway"), ("InternetGatewayId", &igw), ("VpcId", &vpc)],
    );
    step(
        &mut w,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", &rt),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("GatewayId", &igw),
        ],
    );
    let inst = text(
        &step(
            &mut w,
            &[("Action", "RunInstances"), ("SubnetId", &subnet), ("ImageId", "ami-12345678")],
        ),
        "instanceId",
    );
    step(
        &mut w,
        &[
            ("Action", "ModifyInstanceAttribute"),
            ("InstanceId", &inst),
            ("SourceDestCheck.Value", "false"),
        ],
    );
    step(
        &mut w,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", &rt),
            ("DestinationCidrBlock", "100.64.0.0/16"),
            ("InstanceId", &inst),
        ],
    );
    let alloc =
        text(&step(&mut w, &[("Action", "AllocateAddress"), ("Domain", "vpc")]), "allocationId");
    let nat = text(
        &step(
            &mut w,
            &[("Action", "CreateNatGateway"), ("SubnetId", &subnet), ("AllocationId", &alloc)],
        ),
        "natGatewayId",
    );
    step(
        &mut w,
        &[
            ("Action", "CreateRoute"),
            ("RouteTableId", &rt),
            ("DestinationCidrBlock", "100.65.0.0/16"),
            ("NatGatewayId", &nat),
        ],
    );
    let alloc2 =
        text(&step(&mut w, &[("Action", "AllocateAddress"), ("Domain", "vpc")]), "allocationId");
    step(
        &mut w,
        &[("Action", "AssociateAddress"), ("AllocationId", &alloc2), ("InstanceId", &inst)],
    );
    let sg = text(
        &step(
            &mut w,
            &[
                ("Action", "CreateSecurityGroup"),
                ("GroupName", "web"),
                ("GroupDescription", "web"),
                ("VpcId", &vpc),
            ],
        ),
        "groupId",
    );
    step(
        &mut w,
        &[
            ("Action", "AuthorizeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.PrefixListIds.1.PrefixListId", "pl-1a2b3c4d"),
        ],
    );
    let acl =
        text(&step(&mut w, &[("Action", "CreateNetworkAcl"), ("VpcId", &vpc)]), "networkAclId");
    step(
        &mut w,
        &[
            ("Action", "CreateNetworkAclEntry"),
            ("NetworkAclId", &acl),
            ("RuleNumber", "200"),
            ("Protocol", "-1"),
            ("RuleAction", "allow"),
            ("Egress", "true"),
            ("CidrBlock", "0.0.0.0/0"),
        ],
    );
    let implicit = crate::model::implicit_acl_association_id(&subnet2);
    step(
        &mut w,
        &[
            ("Action", "ReplaceNetworkAclAssociation"),
            ("AssociationId", &implicit),
            ("NetworkAclId", &acl),
        ],
    );
    step(
        &mut w,
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", &vpc),
            ("ServiceName", "com.amazonaws.us-east-1.s3"),
            ("RouteTableId.1", &rt),
        ],
    );
    // The main association moves: the implicitly associated subnet follows.
    let main_assoc = w.vpc(&vpc).unwrap().main_association_id.clone().unwrap();
    step(
        &mut w,
        &[
            ("Action", "ReplaceRouteTableAssociation"),
            ("AssociationId", &main_assoc),
            ("RouteTableId", &rt),
        ],
    );
    step(&mut w, &[("Action", "DisassociateRouteTable"), ("AssociationId", &assoc)]);
    // What leaves blackholes: the NAT gateway deleted, the instance terminated, the gateway
    // detached and deleted.
    step(&mut w, &[("Action", "DeleteNatGateway"), ("NatGatewayId", &nat)]);
    step(&mut w, &[("Action", "TerminateInstances"), ("InstanceId.1", &inst)]);
    step(
        &mut w,
        &[("Action", "DetachInternetGateway"), ("InternetGatewayId", &igw), ("VpcId", &vpc)],
    );
    step(&mut w, &[("Action", "DeleteInternetGateway"), ("InternetGatewayId", &igw)]);
    step(&mut w, &[("Action", "ReleaseAddress"), ("AllocationId", &alloc2)]);
    // And the default lab's own: its NAT gateway deleted too.
    step(&mut w, &[("Action", "DeleteNatGateway"), ("NatGatewayId", "nat-0b0b0b0b")]);
    let routes = w.compiled_routes(&rt);
    assert!(routes.iter().filter(|(_, t)| *t == Target::Blackhole).count() >= 3, "{routes:?}");
    let back: World = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(back, w);
    assert_eq!(back.check(), Ok(()));
}

#[test]
fn create_vpc_in_a_range_the_lab_holds_is_invalid_vpc_range() {
    let w = lab();
    for cidr in ["54.123.160.0/20", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/16"] {
        let err = refused(&w, &[("Action", "CreateVpc"), ("CidrBlock", cidr)], "InvalidVpc.Range");
        assert!(err.message.starts_with(&format!("The CIDR '{cidr}' is invalid")), "{err}");
    }
}

#[test]
fn a_rule_naming_another_regions_prefix_list_is_not_found() {
    // DescribeManagedPrefixLists keeps to the lab's region: pl-68a54001 (us-west-2) is
    // InvalidPrefixListID.NotFound there, and so for a rule.
    let w = lab();
    let err = refused(
        &w,
        &[
            ("Action", "AuthorizeSecurityGroupEgress"),
            ("GroupId", "sg-111bbb22"),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.PrefixListIds.1.PrefixListId", "pl-68a54001"),
        ],
        "InvalidPrefixListID.NotFound",
    );
    assert!(err.message.contains("pl-68a54001"), "{err}");
}
