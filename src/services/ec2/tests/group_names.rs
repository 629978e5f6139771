//! Security groups by name (`GroupName`, RunInstances' `SecurityGroup.N`): botocore documents
//! them as "[Default VPC]" only, and every VPC of a lab is a nondefault one, so a name never
//! resolves; the `group-name` filter still finds groups by name.

use super::*;

/// The default lab with group `web` (`sg-…`) in `vpc-111bbb22`.
fn with_web() -> (World, String) {
    let (w, xml) = change(
        &lab(),
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "web"),
            ("GroupDescription", "web"),
            ("VpcId", "vpc-111bbb22"),
        ],
    );
    (w, text(&xml, "groupId"))
}

#[test]
fn run_instances_refuses_group_names_with_a_subnet() {
    let (w, _) = with_web();
    for name in ["web", "default", "no-such-group"] {
        let e = refused(
            &w,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("SubnetId", "subnet-0a0a0a0a"),
                ("SecurityGroup.1", name),
            ],
            "InvalidParameterCombination",
        );
        assert_eq!(e.message, "The parameter groupName cannot be used with the parameter subnet");
        // As the CLI sends it with --associate-public-ip-address, too.
        refused(
            &w,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SubnetId", "subnet-0a0a0a0a"),
                ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
                ("SecurityGroup.1", name),
            ],
            "InvalidParameterCombination",
        );
    }
}

#[test]
fn group_name_needs_a_default_vpc() {
    let (w, sg) = with_web();
    let ingress = [
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.9.0.0/16"),
    ];
    // The egress actions have no `GroupName` (botocore: `GroupId` is required there).
    for action in ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"] {
        let mut p = vec![("Action", action), ("GroupName", "web")];
        p.extend(ingress);
        let e = refused(&w, &p, "VPCIdNotSpecified");
        assert_eq!(
            e.message,
            "No default VPC for this user. GroupName is only supported for EC2-Classic and \
             default VPC."
        );
    }
    refused(&w, &[("Action", "DeleteSecurityGroup"), ("GroupName", "web")], "VPCIdNotSpecified");
    let mut egress = vec![("Action", "AuthorizeSecurityGroupEgress"), ("GroupName", "web")];
    egress.extend(ingress);
    refused(&w, &egress, "UnknownParameter");
    refused(
        &w,
        &[("Action", "DescribeSecurityGroups"), ("GroupName.1", "web")],
        "VPCIdNotSpecified",
    );
    refused(
        &w,
        &[("Action", "DescribeSecurityGroups"), ("GroupName.1", "nothing")],
        "VPCIdNotSpecified",
    );
    // The id works, and so does the `group-name` filter.
    let xml = read_xml(
        &w,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("Filter.1.Name", "group-name"),
            ("Filter.1.Value.1", "web"),
        ],
    );
    assert_eq!(texts(&xml, "groupId"), [sg.as_str()]);
    change(&w, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)]);
}
