//! Every filter name botocore documents for an action is answered from what the lab shows, or
//! is about what the lab does not model and matches nothing; none is refused as invalid.

use super::*;
use crate::services::ec2::{endpoints, instance_filters, nat, network, security};

/// `(action, names answered, documented names not modelled)` of every Describe action.
const ACTIONS: &[(&str, &[&str], &[&str])] = &[
    ("DescribeRegions", network::REGION_FILTERS, &[]),
    ("DescribeAvailabilityZones", network::ZONE_FILTERS, network::ZONE_FILTERS_NOT_MODELLED),
    ("DescribeVpcs", network::VPC_FILTERS, network::VPC_FILTERS_NOT_MODELLED),
    ("DescribeSubnets", network::SUBNET_FILTERS, network::SUBNET_FILTERS_NOT_MODELLED),
    ("DescribeRouteTables", network::ROUTE_TABLE_FILTERS, &[]),
    ("DescribeInternetGateways", network::INTERNET_GATEWAY_FILTERS, &[]),
    ("DescribeVpcEndpoints", endpoints::VPC_ENDPOINT_FILTERS, &[]),
    ("DescribePrefixLists", endpoints::PREFIX_LIST_FILTERS, &[]),
    ("DescribeManagedPrefixLists", endpoints::MANAGED_PREFIX_LIST_FILTERS, &[]),
    (
        "DescribeVpcEndpointServices",
        endpoints::VPC_ENDPOINT_SERVICE_FILTERS,
        endpoints::VPC_ENDPOINT_SERVICE_FILTERS_NOT_MODELLED,
    ),
    (
        "DescribeInstances",
        instance_filters::INSTANCE_FILTERS,
        instance_filters::INSTANCE_FILTERS_NOT_MODELLED,
    ),
    ("DescribeTags", crate::services::ec2::instances::TAG_FILTERS, &[]),
    ("DescribeAddresses", nat::ADDRESS_FILTERS, &[]),
    ("DescribeNatGateways", nat::NAT_GATEWAY_FILTERS, &[]),
    (
        "DescribeSecurityGroups",
        security::SECURITY_GROUP_FILTERS,
        security::SECURITY_GROUP_FILTERS_NOT_MODELLED,
    ),
    ("DescribeSecurityGroupRules", security::SECURITY_GROUP_RULE_FILTERS, &[]),
    ("DescribeNetworkAcls", security::NETWORK_ACL_FILTERS, &[]),
];

#[test]
fn every_documented_filter_is_answered_or_not_modelled() {
    let documented = crate::services::ec2::known_params::DOCUMENTED_FILTERS;
    for (action, names) in documented {
        let Some((_, answered, not_modelled)) = ACTIONS.iter().find(|(a, _, _)| a == action) else {
            panic!("{action}: documented filters, but not in this test's ACTIONS");
        };
        let missing: Vec<&&str> =
            names.iter().filter(|n| !answered.contains(n) && !not_modelled.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "{action}: documented filters neither answered nor listed as not modelled: {missing:?}"
        );
        for n in *not_modelled {
            assert!(names.contains(n), "{action}: {n} is not documented");
            assert!(!answered.contains(n), "{action}: {n} is answered and not modelled");
        }
    }
    // Every documented name is accepted; one not modelled matches nothing.
    let (w, _) = change(
        &lab(),
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", "vpc-111bbb22"),
            ("ServiceName", "com.amazonaws.us-east-1.s3"),
        ],
    );
    for (action, names) in documented {
        let (_, _, not_modelled) = ACTIONS.iter().find(|(a, _, _)| a == action).unwrap();
        for name in *names {
            let xml = read_xml(
                &w,
                &[("Action", action), ("Filter.1.Name", name), ("Filter.1.Value.1", "*")],
            );
            if not_modelled.contains(name) {
                for id in ["instanceId", "vpcId", "subnetId", "groupId", "zoneName", "serviceName"]
                {
                    assert!(texts(&xml, id).is_empty(), "{action} {name}: {xml}");
                }
            }
        }
    }
}

/// DescribeInstances' filters over what its answer shows: its interface, DNS name, launch.
#[test]
fn instance_filters_see_what_the_answer_shows() {
    let w = lab();
    let (w1, xml) = change(
        &w,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("SubnetId", "subnet-0b0b0b0b"),
            ("InstanceType", "t2.micro"),
        ],
    );
    let id = text(&xml, "instanceId");
    let eni = texts(&xml, "networkInterfaceId")[0].clone();
    let launch = text(&xml, "launchTime");
    let found = |name: &str, value: &str| {
        let xml = read_xml(
            &w1,
            &[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        texts(&without(&xml, "networkInterfaceSet"), "instanceId")
    };
    assert_eq!(found("network-interface.network-interface-id", &eni), [id.as_str()]);
    assert_eq!(found("network-interface.subnet-id", "subnet-0b0b0b0b").len(), 2);
    assert_eq!(found("private-dns-name", "ip-10-0-1-10.ec2.internal"), ["i-0a0a0a0a"]);
    assert_eq!(found("launch-time", &launch), [id.as_str()]);
    assert_eq!(found("launch-time", &format!("{}*", &launch[..10])), [id.as_str()]);
    assert_eq!(found("instance-type", "t2.micro"), [id.as_str()]);
    assert_eq!(found("image-id", "ami-12345678"), [id.as_str()]);
    assert_eq!(found("architecture", "x86_64").len(), w1.instances.len());
    assert!(found("architecture", "arm64").is_empty());
    assert!(found("block-device-mapping.volume-id", "*").is_empty());
    assert!(found("key-name", "*").is_empty());
    // A terminated instance keeps its launch, loses its interface.
    let (w2, _) = change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", &id)]);
    let found2 = |name: &str, value: &str| {
        let xml = read_xml(
            &w2,
            &[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        texts(&without(&xml, "networkInterfaceSet"), "instanceId")
    };
    assert_eq!(found2("launch-time", &launch), [id.as_str()]);
    assert!(found2("network-interface.network-interface-id", &eni).is_empty());
}

#[test]
fn subnet_vpc_and_service_filters() {
    let w = lab();
    let ids = |action: &str, name: &str, value: &str, id: &str| {
        let xml = read_xml(
            &w,
            &[("Action", action), ("Filter.1.Name", name), ("Filter.1.Value.1", value)],
        );
        texts(&xml, id)
    };
    let subnets = w.subnets.len();
    assert_eq!(
        ids("DescribeSubnets", "map-public-ip-on-launch", "false", "subnetId").len(),
        subnets
    );
    assert!(ids("DescribeSubnets", "map-public-ip-on-launch", "true", "subnetId").is_empty());
    let xml = read_xml(&w, &[("Action", "DescribeSubnets"), ("SubnetId.1", "subnet-0a0a0a0a")]);
    let free = text(&xml, "availableIpAddressCount");
    assert!(
        ids("DescribeSubnets", "available-ip-address-count", &free, "subnetId")
            .contains(&"subnet-0a0a0a0a".to_string())
    );
    assert_eq!(
        ids(
            "DescribeSubnets",
            "subnet-arn",
            "arn:aws:ec2:us-east-1:*:subnet/subnet-0a0a0a0a",
            "subnetId"
        ),
        ["subnet-0a0a0a0a"]
    );
    assert_eq!(
        ids(
            "DescribeVpcs",
            "cidr-block-association.association-id",
            "vpc-cidr-assoc-111bbb22",
            "vpcId"
        ),
        ["vpc-111bbb22"]
    );
    assert_eq!(
        ids("DescribeVpcs", "cidr-block-association.state", "associated", "vpcId").len(),
        w.vpcs.len()
    );
    assert_eq!(
        ids("DescribeVpcEndpointServices", "service-region", "us-east-1", "serviceName"),
        ["com.amazonaws.us-east-1.s3"]
    );
    assert!(
        ids("DescribeVpcEndpointServices", "service-region", "eu-west-1", "serviceName").is_empty()
    );
}
