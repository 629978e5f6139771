//! Security groups and network ACLs through the EC2 Query API: AWS's quotas, rule ids and
//! descriptions, DescribeSecurityGroupRules and the `ip-permission.*` filters.
//!
//! The default lab: VPC `vpc-111bbb22` (default group `sg-111bbb22`, default ACL
//! `acl-111bbb22`), instances `i-0a0a0a0a` … in subnets a–d.

use super::*;

/// CreateSecurityGroup `name` in the demo VPC; returns the world and the group id.
fn new_group(w: &World, name: &str) -> (World, String) {
    let (w1, xml) = change(
        w,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", name),
            ("GroupDescription", name),
            ("VpcId", "vpc-111bbb22"),
        ],
    );
    let id = text(&xml, "groupId");
    (w1, id)
}

/// An AuthorizeSecurityGroup{Ingress,Egress} of TCP `port` from `n` CIDRs (10.1.i.0/24).
fn authorize_cidrs(action: &str, group: &str, port: u16, n: usize) -> Vec<(String, String)> {
    let mut p = vec![
        ("Action".to_string(), action.to_string()),
        ("GroupId".into(), group.into()),
        ("IpPermissions.1.IpProtocol".into(), "tcp".into()),
        ("IpPermissions.1.FromPort".into(), port.to_string()),
        ("IpPermissions.1.ToPort".into(), port.to_string()),
    ];
    for i in 1..=n {
        p.push((format!("IpPermissions.1.IpRanges.{i}.CidrIp"), format!("10.1.{i}.0/24")));
    }
    p
}

fn borrowed(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[test]
fn sixty_rules_per_direction_each_range_counts() {
    let (w, sg) = new_group(&lab(), "many");
    // 60 ingress rules in one call (one permission, 60 ranges): accepted.
    let (w1, _) =
        change(&w, &borrowed(&authorize_cidrs("AuthorizeSecurityGroupIngress", &sg, 22, 60)));
    assert_eq!(w1.security_group(&sg).unwrap().ingress.len(), 60);
    // The 61st, alone or as part of a bigger call: refused, nothing changed.
    let one_more = authorize_cidrs("AuthorizeSecurityGroupIngress", &sg, 80, 1);
    let err = refused(&w1, &borrowed(&one_more), "RulesPerSecurityGroupLimitExceeded");
    assert_eq!(err.message, "The maximum number of rules per security group has been reached.");
    refused(
        &w,
        &borrowed(&authorize_cidrs("AuthorizeSecurityGroupIngress", &sg, 22, 61)),
        "RulesPerSecurityGroupLimitExceeded",
    );
    // Egress counts separately: the group has 1 (allow all); 59 more fit, 60 do not.
    let (w2, _) =
        change(&w1, &borrowed(&authorize_cidrs("AuthorizeSecurityGroupEgress", &sg, 443, 59)));
    assert_eq!(w2.security_group(&sg).unwrap().egress.len(), 60);
    let mut pl = authorize_cidrs("AuthorizeSecurityGroupEgress", &sg, 80, 0);
    pl.push(("IpPermissions.1.PrefixListIds.1.PrefixListId".into(), "pl-1a2b3c4d".into()));
    refused(&w2, &borrowed(&pl), "RulesPerSecurityGroupLimitExceeded");
    // A group pair counts too; revoking one makes room again.
    let revoke = [
        ("Action", "RevokeSecurityGroupIngress"),
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.1.1.0/24"),
    ];
    let pair = [
        ("Action", "AuthorizeSecurityGroupIngress"),
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "-1"),
        ("IpPermissions.1.Groups.1.GroupId", "sg-111bbb22"),
    ];
    refused(&w2, &pair, "RulesPerSecurityGroupLimitExceeded");
    let (w3, xml) = change(&w2, &revoke);
    // The answer names the rule removed (botocore, `RevokedSecurityGroupRules`: "Details about
    // the revoked security group rules").
    let removed = texts(&xml, "securityGroupRuleId");
    assert_eq!(removed.len(), 1);
    assert!(w2.security_group(&sg).unwrap().ingress.iter().any(|r| r.id == removed[0]));
    assert_eq!(texts(&xml, "cidrIpv4"), ["10.1.1.0/24"]);
    assert_eq!((text(&xml, "fromPort"), text(&xml, "toPort")), ("22".into(), "22".into()));
    let (w4, _) = change(&w3, &pair);
    assert_eq!(w4.security_group(&sg).unwrap().ingress.len(), 60);
}

#[test]
fn five_security_groups_per_interface() {
    let mut w = lab();
    let mut groups = vec!["sg-111bbb22".to_string()];
    for name in ["g1", "g2", "g3", "g4", "g5"] {
        let (w1, id) = new_group(&w, name);
        w = w1;
        groups.push(id);
    }
    let mut run = vec![
        ("Action".to_string(), "RunInstances".to_string()),
        ("ImageId".into(), "ami-12345678".into()),
        ("MinCount".into(), "1".into()),
        ("MaxCount".into(), "1".into()),
        ("SubnetId".into(), "subnet-0a0a0a0a".into()),
    ];
    let mut modify = vec![
        ("Action".to_string(), "ModifyInstanceAttribute".to_string()),
        ("InstanceId".into(), "i-0a0a0a0a".into()),
    ];
    for (i, g) in groups.iter().enumerate() {
        run.push((format!("SecurityGroupId.{}", i + 1), g.clone()));
        modify.push((format!("GroupId.{}", i + 1), g.clone()));
    }
    // Six groups: refused by both calls.
    let err = refused(&w, &borrowed(&run), "SecurityGroupsPerInterfaceLimitExceeded");
    assert_eq!(
        err.message,
        "The maximum number of security groups per interface has been reached."
    );
    refused(&w, &borrowed(&modify), "SecurityGroupsPerInterfaceLimitExceeded");
    // Five: accepted.
    run.pop();
    modify.pop();
    let (w1, xml) = change(&w, &borrowed(&run));
    assert_eq!(texts(&without(&xml, "networkInterfaceSet"), "groupId").len(), 5);
    let (w2, _) = change(&w1, &borrowed(&modify));
    assert_eq!(w2.instance("i-0a0a0a0a").unwrap().security_groups.len(), 5);
}

#[test]
fn twenty_entries_per_network_acl_direction() {
    let entry = |n: u16, egress: bool| -> Vec<(String, String)> {
        [
            ("Action", "CreateNetworkAclEntry".to_string()),
            ("NetworkAclId", "acl-111bbb22".into()),
            ("RuleNumber", n.to_string()),
            ("Protocol", "-1".into()),
            ("RuleAction", "deny".into()),
            ("Egress", egress.to_string()),
            ("CidrBlock", format!("10.9.{n}.0/24")),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect()
    };
    // The default ACL has one entry (100) each way; 19 more fit, not counting `*`.
    let mut w = lab();
    for n in 1..=19 {
        w = change(&w, &borrowed(&entry(n, false))).0;
    }
    let in_count = w.network_acl("acl-111bbb22").unwrap().entries.iter().filter(|e| !e.egress);
    assert_eq!(in_count.count(), 20);
    let err = refused(&w, &borrowed(&entry(20, false)), "NetworkAclEntryLimitExceeded");
    assert_eq!(err.message, "The maximum number of network acl entries has been reached.");
    // The other direction has its own quota; replacing an entry adds none.
    let (w1, _) = change(&w, &borrowed(&entry(20, true)));
    let mut replace = entry(5, false);
    replace[0].1 = "ReplaceNetworkAclEntry".into();
    replace[4].1 = "allow".into();
    change(&w1, &borrowed(&replace));
}

/// The default lab with `extra` appended; `extra`'s first line is line `base + 1`.
fn lab_with(extra: &str) -> (Result<World, crate::lab::file::LabFileError>, usize) {
    let base = DEFAULT_LAB.lines().count() + 2;
    (parse("t.toml", &format!("{DEFAULT_LAB}\n{extra}")), base)
}

#[test]
fn lab_files_refuse_the_same_quotas_naming_line_and_field() {
    // 61 ingress rules: the 61st is named.
    let rules: Vec<String> = (1..=61)
        .map(|i| format!("  {{ protocol = \"tcp\", ports = \"22\", source = \"10.1.{i}.0/24\" }},"))
        .collect();
    let sg = format!(
        "[[security_group]]\nid = \"sg-0a0a0a0a\"\nname = \"many\"\nvpc = \"vpc-111bbb22\"\n\
         ingress = [\n{}\n]\n",
        rules.join("\n")
    );
    let (res, base) = lab_with(&sg);
    let err = res.unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (base + 65, "security_group[0].ingress[60].source"));
    assert!(err.message.contains("maximum number of rules per security group"), "{err}");
    let sixty = sg.replacen(&format!("{}\n", rules[60]), "", 1);
    assert_eq!(
        lab_with(&sixty).0.unwrap().security_group("sg-0a0a0a0a").unwrap().ingress.len(),
        60
    );

    // An instance in six groups: the sixth is named.
    let mut groups = String::new();
    let mut ids = Vec::new();
    for i in 1..=6 {
        let id = format!("sg-0a0a0a0{i}");
        groups += &format!(
            "[[security_group]]\nid = \"{id}\"\nname = \"g{i}\"\nvpc = \"vpc-111bbb22\"\n"
        );
        ids.push(format!("\"{id}\""));
    }
    let inst = format!(
        "{groups}[[instance]]\nid = \"i-0e0e0e0e\"\nsubnet = \"a\"\nprivate_ip = \"10.0.1.20\"\n\
         security_groups = [{}]\n",
        ids.join(", ")
    );
    let (res, base) = lab_with(&inst);
    let err = res.unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (base + 28, "instance[4].security_groups[5]"));
    assert!(err.message.contains("maximum number of security groups per interface"), "{err}");

    // 21 inbound entries in a network ACL: the 21st is named.
    let entries: Vec<String> = (1..=21)
        .map(|i| format!("  {{ rule = {i}, protocol = \"all\", action = \"deny\", cidr = \"10.1.{i}.0/24\" }},"))
        .collect();
    let acl = format!(
        "[[network_acl]]\nid = \"acl-0a0a0a0a\"\nvpc = \"vpc-111bbb22\"\ningress = [\n{}\n]\n",
        entries.join("\n")
    );
    let (res, base) = lab_with(&acl);
    let err = res.unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (base + 24, "network_acl[0].ingress[20].rule"));
    assert!(err.message.contains("maximum number of network acl entries"), "{err}");
}

/// An ingress permission for TCP 22 with a described range, prefix list and group pair.
fn described_ingress(sg: &str) -> Vec<(&str, &str)> {
    vec![
        ("Action", "AuthorizeSecurityGroupIngress"),
        ("GroupId", sg),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
        ("IpPermissions.1.IpRanges.1.Description", "SSH from the VPC"),
        ("IpPermissions.1.PrefixListIds.1.PrefixListId", "pl-1a2b3c4d"),
        ("IpPermissions.1.PrefixListIds.1.Description", "S3 (why not)"),
        ("IpPermissions.1.Groups.1.GroupId", "sg-111bbb22"),
        ("IpPermissions.1.Groups.1.Description", "the default group"),
        ("IpPermissions.2.IpProtocol", "icmp"),
        ("IpPermissions.2.FromPort", "8"),
        ("IpPermissions.2.ToPort", "-1"),
        ("IpPermissions.2.IpRanges.1.CidrIp", "198.51.100.0/24"),
    ]
}

#[test]
fn rule_descriptions_are_stored_and_returned() {
    let (w, sg) = new_group(&lab(), "described");
    let (w1, _) = change(&w, &described_ingress(&sg));
    let xml = read_xml(&w1, &[("Action", "DescribeSecurityGroups"), ("GroupId.1", &sg)]);
    dump("DescribeSecurityGroups-descriptions", &xml);
    // Ingress first, in the order given; the ICMP range has none.
    assert_eq!(
        texts(&xml, "description"),
        ["the default group", "SSH from the VPC", "S3 (why not)"]
    );
    // A rule that differs only in its description is a duplicate; revoking ignores it.
    let mut again = described_ingress(&sg);
    again.truncate(7);
    again[6].1 = "another text";
    refused(&w1, &again, "InvalidPermission.Duplicate");
    again[0].1 = "RevokeSecurityGroupIngress";
    let (w2, _) = change(&w1, &again);
    assert_eq!(w2.security_group(&sg).unwrap().ingress.len(), 3);
    // AWS's character set and length.
    let mut bad = described_ingress(&sg);
    bad[6].1 = "tab\there";
    refused(&w, &bad, "InvalidParameterValue");
    let long = "x".repeat(256);
    bad[6].1 = &long;
    refused(&w, &bad, "InvalidParameterValue");
}

#[test]
fn authorize_answers_the_new_rules_with_stable_ids() {
    let (w, sg) = new_group(&lab(), "ids");
    let (w1, xml) = change(&w, &described_ingress(&sg));
    dump("AuthorizeSecurityGroupIngress-rules", &xml);
    assert_eq!(text(&xml, "return"), "true");
    let ids = texts(&xml, "securityGroupRuleId");
    assert_eq!(ids.len(), 4, "{xml}");
    for id in &ids {
        assert!(id.starts_with("sgr-0") && id.len() == 21, "{id}");
    }
    assert_eq!(texts(&xml, "isEgress"), ["false"; 4]);
    assert_eq!(texts(&xml, "cidrIpv4"), ["10.0.0.0/16", "198.51.100.0/24"]);
    assert_eq!(texts(&xml, "prefixListId"), ["pl-1a2b3c4d"]);
    assert_eq!(texts(&xml, "fromPort"), ["22", "22", "22", "8"]);
    assert_eq!(texts(&xml, "toPort"), ["22", "22", "22", "-1"]);
    // Every rule has one, the same after a round trip through world.json.
    let json = serde_json::to_string(&w1).unwrap();
    let back: World = serde_json::from_str(&json).unwrap();
    let list = |w: &World| {
        let xml = read_xml(w, &[("Action", "DescribeSecurityGroupRules")]);
        texts(&xml, "securityGroupRuleId")
    };
    assert_eq!(list(&w1), list(&back));
    for id in &ids {
        assert!(list(&w1).contains(id));
    }
}

#[test]
fn worlds_saved_without_rule_ids_load_and_get_the_same_ids_every_time() {
    let w = lab();
    let mut json: serde_json::Value = serde_json::to_value(&w).unwrap();
    // A world.json from before rule ids: no `id` in any rule, no `next_rule_id`.
    json.as_object_mut().unwrap().remove("next_rule_id");
    for g in json["security_groups"].as_array_mut().unwrap() {
        for dir in ["ingress", "egress"] {
            for r in g[dir].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("id");
            }
        }
    }
    let old: World = serde_json::from_value(json).unwrap();
    assert!(old.security_groups.iter().all(|g| g.ingress.iter().all(|r| r.id.is_empty())));
    let ids = |w: &World| {
        let xml = read_xml(w, &[("Action", "DescribeSecurityGroupRules")]);
        texts(&xml, "securityGroupRuleId")
    };
    let first = ids(&old);
    assert_eq!(first.len(), 2, "the default group's two rules");
    assert!(first.iter().all(|id| id.starts_with("sgr-")), "{first:?}");
    // Read again (a restart reads the same file): the same ids; the first change keeps them.
    assert_eq!(ids(&old), first);
    let (changed, _) = new_group(&old, "after");
    let kept = ids(&changed);
    assert!(first.iter().all(|id| kept.contains(id)), "{first:?} {kept:?}");
}

#[test]
fn describe_security_group_rules() {
    let (w, sg) = new_group(&lab(), "rules");
    let (w1, _) = change(&w, &described_ingress(&sg));
    let xml = read_xml(
        &w1,
        &[
            ("Action", "DescribeSecurityGroupRules"),
            ("Filter.1.Name", "group-id"),
            ("Filter.1.Value.1", &sg),
        ],
    );
    dump("DescribeSecurityGroupRules", &xml);
    // Four ingress rules and the new group's egress allow-all.
    assert_eq!(texts(&xml, "groupId").iter().filter(|g| **g == sg).count(), 5, "{xml}");
    assert_eq!(texts(&xml, "isEgress"), ["false", "false", "false", "false", "true"]);
    assert_eq!(texts(&xml, "groupOwnerId"), [OWNER_ID; 5]);
    assert_eq!(texts(&xml, "ipProtocol"), ["tcp", "tcp", "tcp", "icmp", "-1"]);
    assert_eq!(texts(&xml, "cidrIpv4"), ["10.0.0.0/16", "198.51.100.0/24", "0.0.0.0/0"]);
    assert_eq!(
        texts(&xml, "description"),
        ["SSH from the VPC", "S3 (why not)", "the default group"]
    );
    // The group pair: referencedGroupInfo.
    let referenced = xml.split("<referencedGroupInfo>").nth(1).unwrap();
    assert!(referenced.starts_with("<groupId>sg-111bbb22</groupId>"), "{referenced}");
    // By id.
    let ids = texts(&xml, "securityGroupRuleId");
    let xml = read_xml(
        &w1,
        &[("Action", "DescribeSecurityGroupRules"), ("SecurityGroupRuleId.1", &ids[1])],
    );
    assert_eq!(texts(&xml, "securityGroupRuleId"), [ids[1].clone()]);
    assert_eq!(texts(&xml, "prefixListId"), ["pl-1a2b3c4d"]);
    refused(
        &w1,
        &[
            ("Action", "DescribeSecurityGroupRules"),
            ("SecurityGroupRuleId.1", "sgr-0123456789abcdef0"),
        ],
        "InvalidSecurityGroupRuleId.NotFound",
    );
    refused(
        &w1,
        &[("Action", "DescribeSecurityGroupRules"), ("SecurityGroupRuleId.1", "rule-1")],
        "InvalidSecurityGroupRuleId.Malformed",
    );
    refused(
        &w1,
        &[
            ("Action", "DescribeSecurityGroupRules"),
            ("Filter.1.Name", "colour"),
            ("Filter.1.Value.1", "x"),
        ],
        "InvalidParameterValue",
    );
    // Revoke by rule id, as Terraform's aws_vpc_security_group_ingress_rule does; the answer
    // names what it removed (`revokedSecurityGroupRuleSet`).
    let (w2, xml) = change(
        &w1,
        &[
            ("Action", "RevokeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("SecurityGroupRuleId.1", &ids[0]),
        ],
    );
    assert_eq!(w2.security_group(&sg).unwrap().ingress.len(), 3);
    assert_eq!(texts(&xml, "securityGroupRuleId"), [ids[0].as_str()]);
    assert_eq!(texts(&xml, "isEgress"), ["false"]);
    assert_eq!(texts(&xml, "groupId"), [sg.as_str()]);
    refused(
        &w2,
        &[
            ("Action", "RevokeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("SecurityGroupRuleId.1", &ids[0]),
        ],
        "InvalidSecurityGroupRuleId.NotFound",
    );
}

#[test]
fn describe_security_groups_ip_permission_filters() {
    let (w, sg) = new_group(&lab(), "filtered");
    let (w1, _) = change(&w, &described_ingress(&sg));
    let find = |name: &str, value: &str| {
        let xml = read_xml(
            &w1,
            &[
                ("Action", "DescribeSecurityGroups"),
                ("Filter.1.Name", name),
                ("Filter.1.Value.1", value),
            ],
        );
        // The groups' own ids (group pairs repeat other ids inside the permissions).
        let arns = texts(&xml, "securityGroupArn");
        arns.iter()
            .map(|a| a.rsplit('/').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let only = std::slice::from_ref(&sg);
    assert_eq!(find("ip-permission.from-port", "22"), only);
    assert_eq!(find("ip-permission.to-port", "22"), only);
    assert_eq!(find("ip-permission.from-port", "8"), only);
    assert!(find("ip-permission.from-port", "23").is_empty());
    assert_eq!(find("ip-permission.protocol", "tcp"), only);
    assert_eq!(find("ip-permission.protocol", "6"), only);
    assert_eq!(find("ip-permission.cidr", "10.0.0.0/16"), only);
    assert_eq!(find("ip-permission.prefix-list-id", "pl-1a2b3c4d"), only);
    // The default group's own ingress names itself; the new group names it too.
    assert_eq!(
        find("ip-permission.group-id", "sg-111bbb22"),
        ["sg-111bbb22".to_string(), sg.clone()]
    );
    assert_eq!(
        find("ip-permission.group-name", "default"),
        ["sg-111bbb22".to_string(), sg.clone()]
    );
    assert_eq!(find("ip-permission.user-id", OWNER_ID).len(), 2);
    // Egress: every group allows all (-1) to 0.0.0.0/0, no ports.
    assert_eq!(find("egress.ip-permission.protocol", "-1").len(), 2);
    assert_eq!(find("egress.ip-permission.cidr", "0.0.0.0/0").len(), 2);
    assert!(find("egress.ip-permission.from-port", "22").is_empty());
    assert!(find("egress.ip-permission.to-port", "22").is_empty());
    assert!(find("egress.ip-permission.prefix-list-id", "pl-1a2b3c4d").is_empty());
    assert!(find("egress.ip-permission.group-id", "sg-111bbb22").is_empty());
}

/// One ingress rule: SSH from the VPC.
fn ssh_ingress(sg: &str) -> Vec<(&str, &str)> {
    vec![
        ("Action", "AuthorizeSecurityGroupIngress"),
        ("GroupId", sg),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/16"),
    ]
}

/// The rule id of the only ingress rule of `sg`.
fn ingress_rule_id(w: &World, sg: &str) -> String {
    let g = w.security_group(sg).unwrap();
    assert_eq!(g.ingress.len(), 1, "{:?}", g.ingress);
    g.ingress[0].id.clone()
}

#[test]
fn security_group_rules_are_taggable() {
    // Security group rules are taggable resources: botocore's `ResourceType` has
    // `security-group-rule`, DescribeSecurityGroupRules documents "tag:<key> - The key/value
    // combination of a tag assigned to the resource", and AuthorizeSecurityGroupIngress's
    // TagSpecification.N is "The tags applied to the security group rule."
    let (w, sg) = new_group(&lab(), "tagged");
    let (w1, _) = change(&w, &ssh_ingress(&sg));
    let rule = ingress_rule_id(&w1, &sg);
    let (w2, _) = change(
        &w1,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", &rule),
            ("Tag.1.Key", "Name"),
            ("Tag.1.Value", "ssh"),
        ],
    );
    let xml = read_xml(
        &w2,
        &[("Action", "DescribeSecurityGroupRules"), ("SecurityGroupRuleId.1", &rule)],
    );
    assert_eq!(texts(&xml, "key"), ["Name"]);
    assert_eq!(texts(&xml, "value"), ["ssh"]);
    // tag:<key> filters find it.
    let xml = read_xml(
        &w2,
        &[
            ("Action", "DescribeSecurityGroupRules"),
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", "ssh"),
        ],
    );
    assert_eq!(texts(&xml, "securityGroupRuleId"), [rule.as_str()]);
    // DescribeTags lists it as a `security-group-rule`.
    let xml = read_xml(
        &w2,
        &[
            ("Action", "DescribeTags"),
            ("Filter.1.Name", "resource-type"),
            ("Filter.1.Value.1", "security-group-rule"),
        ],
    );
    assert_eq!(texts(&xml, "resourceId"), [rule.as_str()]);
    // Kept in world.json (an old world.json simply has no tags for rules).
    let back: World = serde_json::from_str(&serde_json::to_string(&w2).unwrap()).unwrap();
    assert_eq!(back.tags_of(&rule), w2.tags_of(&rule));
    // DeleteTags removes it.
    let (w3, _) =
        change(&w2, &[("Action", "DeleteTags"), ("ResourceId.1", &rule), ("Tag.1.Key", "Name")]);
    assert!(w3.tags_of(&rule).is_none());
    // An unknown rule id is its NotFound error, a malformed one its Malformed error (not a
    // generic InvalidID); nothing changes.
    let tag = [("Tag.1.Key", "Name"), ("Tag.1.Value", "x")];
    let e = refused(
        &w2,
        &[[("Action", "CreateTags"), ("ResourceId.1", "sgr-0123456789abcdef0")].as_slice(), &tag]
            .concat(),
        "InvalidSecurityGroupRuleId.NotFound",
    );
    assert_eq!(e.message, "The security group rule ID 'sgr-0123456789abcdef0' does not exist");
    refused(
        &w2,
        &[[("Action", "CreateTags"), ("ResourceId.1", "sgr-xyz")].as_slice(), &tag].concat(),
        "InvalidSecurityGroupRuleId.Malformed",
    );
    // A revoked rule's tags go with it; so do a deleted group's rules'.
    let (w4, _) = change(
        &w2,
        &[
            ("Action", "RevokeSecurityGroupIngress"),
            ("GroupId", &sg),
            ("SecurityGroupRuleId.1", &rule),
        ],
    );
    assert!(w4.tags_of(&rule).is_none());
    let (w5, _) = change(&w2, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)]);
    assert!(w5.tags_of(&rule).is_none());
}

#[test]
fn authorize_tag_specifications_tag_the_new_rules() {
    let (w, sg) = new_group(&lab(), "spec");
    let mut p = described_ingress(&sg);
    p.extend([
        ("TagSpecification.1.ResourceType", "security-group-rule"),
        ("TagSpecification.1.Tag.1.Key", "team"),
        ("TagSpecification.1.Tag.1.Value", "blue"),
    ]);
    let (w1, xml) = change(&w, &p);
    // Every rule of the call is tagged, and the answer's securityGroupRuleSet shows it.
    let ingress = &w1.security_group(&sg).unwrap().ingress;
    assert_eq!(ingress.len(), 4);
    for r in ingress {
        assert_eq!(w1.tags_of(&r.id).unwrap().get("team").map(String::as_str), Some("blue"));
    }
    assert_eq!(texts(&xml, "key"), ["team"; 4]);
    // Egress alike.
    let (w2, _) = change(
        &w1,
        &[
            ("Action", "AuthorizeSecurityGroupEgress"),
            ("GroupId", &sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.9.0.0/16"),
            ("TagSpecification.1.ResourceType", "security-group-rule"),
            ("TagSpecification.1.Tag.1.Key", "team"),
            ("TagSpecification.1.Tag.1.Value", "red"),
        ],
    );
    let egress = &w2.security_group(&sg).unwrap().egress;
    let new = egress.iter().find(|r| r.to_string().contains("10.9.0.0/16")).unwrap();
    assert_eq!(w2.tags_of(&new.id).unwrap().get("team").map(String::as_str), Some("red"));
    // Another resource type is refused, and nothing is added.
    let mut bad = described_ingress(&sg);
    bad.extend([
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "team"),
        ("TagSpecification.1.Tag.1.Value", "blue"),
    ]);
    refused(&w, &bad, "InvalidParameterValue");
}
