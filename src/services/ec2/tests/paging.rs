//! Pagination of the Describe actions (`MaxResults`, `NextToken`), driven as boto3's
//! paginators drive it: call, read `nextToken`, call again with it until there is none.

use super::*;

/// The default lab with more of everything a Describe lists than one page of the smallest
/// `MaxResults` holds: 5 more VPCs (each with its main table, default group and ACL), 8 more
/// route tables in vpc-111bbb22 (tagged `pg=1`), 6 more subnets, 5 more internet gateways, an
/// endpoint per new VPC, instances in reservations of one and of three, 5 more NAT gateways, 3
/// more security groups, 2 more network ACLs and tags.
fn big_lab() -> World {
    let mut w = lab();
    // The lab file gives pl-1a2b3c4d one range; S3's list has several.
    let pl = w.prefix_lists.iter_mut().find(|p| p.id == "pl-1a2b3c4d").unwrap();
    pl.cidrs.extend(
        ["52.216.0.0/15", "3.5.0.0/19", "16.182.0.0/16"]
            .map(|c| c.parse::<ipnet::Ipv4Net>().unwrap()),
    );
    let mut vpcs = Vec::new();
    for i in 0..5 {
        let cidr = format!("10.{}.0.0/16", 10 + i);
        let (w1, xml) = change(&w, &[("Action", "CreateVpc"), ("CidrBlock", &cidr)]);
        vpcs.push(text(&xml, "vpcId"));
        w = w1;
    }
    for _ in 0..8 {
        let (w1, xml) = change(&w, &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22")]);
        w = tag_pg(&w1, &text(&xml, "routeTableId"));
    }
    for i in 0..3 {
        let name = format!("pg{i}");
        w = change(
            &w,
            &[
                ("Action", "CreateSecurityGroup"),
                ("GroupName", &name),
                ("GroupDescription", "paging"),
                ("VpcId", "vpc-111bbb22"),
            ],
        )
        .0;
    }
    for _ in 0..2 {
        w = change(&w, &[("Action", "CreateNetworkAcl"), ("VpcId", "vpc-111bbb22")]).0;
    }
    let mut subnets = Vec::new();
    for i in 0..6 {
        let cidr = format!("10.0.{}.0/24", 20 + i);
        let (w1, xml) = change(
            &w,
            &[("Action", "CreateSubnet"), ("VpcId", "vpc-111bbb22"), ("CidrBlock", &cidr)],
        );
        subnets.push(text(&xml, "subnetId"));
        w = w1;
    }
    for _ in 0..5 {
        w = change(&w, &[("Action", "CreateInternetGateway")]).0;
    }
    for vpc in &vpcs {
        let table = w.vpc(vpc).and_then(|v| v.main_route_table.clone()).unwrap();
        w = change(
            &w,
            &[
                ("Action", "CreateVpcEndpoint"),
                ("VpcId", vpc),
                ("ServiceName", "com.amazonaws.us-east-1.s3"),
                ("RouteTableId.1", &table),
            ],
        )
        .0;
    }
    for (i, subnet) in subnets.iter().enumerate() {
        let count = if i == 0 { "3" } else { "1" };
        w = change(
            &w,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("MinCount", count),
                ("MaxCount", count),
                ("SubnetId", subnet),
            ],
        )
        .0;
    }
    for subnet in &subnets[..5] {
        let (w1, xml) = change(&w, &[("Action", "AllocateAddress"), ("Domain", "vpc")]);
        let alloc = text(&xml, "allocationId");
        w = change(
            &w1,
            &[("Action", "CreateNatGateway"), ("SubnetId", subnet), ("AllocationId", &alloc)],
        )
        .0;
    }
    for (i, subnet) in subnets.iter().enumerate() {
        let v = format!("s{i}");
        w = change(
            &w,
            &[
                ("Action", "CreateTags"),
                ("ResourceId.1", subnet),
                ("Tag.1.Key", "Name"),
                ("Tag.1.Value", &v),
                ("Tag.2.Key", "team"),
                ("Tag.2.Value", "net"),
            ],
        )
        .0;
    }
    w
}

/// Tags `id` with `pg=1`.
fn tag_pg(w: &World, id: &str) -> World {
    change(
        w,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", id),
            ("Tag.1.Key", "pg"),
            ("Tag.1.Value", "1"),
        ],
    )
    .0
}

/// One listed item of each paged action, as the answer names it: the element holding its id
/// (or what stands for it) and the elements to cut away first because they repeat that element
/// inside an item (a route table's associations name the table, a group's permissions name
/// groups).
struct Listing {
    action: &'static str,
    params: &'static [(&'static str, &'static str)],
    id: &'static str,
    strip: &'static [&'static str],
}

const LISTINGS: &[Listing] = &[
    Listing { action: "DescribeVpcs", params: &[], id: "vpcId", strip: &[] },
    Listing { action: "DescribeSubnets", params: &[], id: "subnetId", strip: &[] },
    Listing {
        action: "DescribeRouteTables",
        params: &[],
        id: "routeTableId",
        strip: &["associationSet", "routeSet"],
    },
    Listing {
        action: "DescribeInternetGateways",
        params: &[],
        id: "internetGatewayId",
        strip: &[],
    },
    Listing {
        action: "DescribeVpcEndpoints",
        params: &[],
        id: "vpcEndpointId",
        strip: &["routeTableIdSet"],
    },
    // With a filter, DescribePrefixLists reaches every region's S3 list the lab has.
    Listing {
        action: "DescribePrefixLists",
        params: &[("Filter.1.Name", "prefix-list-name"), ("Filter.1.Value.1", "*")],
        id: "prefixListId",
        strip: &[],
    },
    Listing { action: "DescribeManagedPrefixLists", params: &[], id: "prefixListId", strip: &[] },
    Listing {
        action: "GetManagedPrefixListEntries",
        params: &[("PrefixListId", "pl-1a2b3c4d")],
        id: "cidr",
        strip: &[],
    },
    Listing {
        action: "DescribeVpcEndpointServices",
        params: &[],
        id: "serviceName",
        strip: &["serviceNameSet"],
    },
    Listing {
        action: "DescribeInstances",
        params: &[],
        id: "instanceId",
        strip: &["networkInterfaceSet"],
    },
    Listing { action: "DescribeNatGateways", params: &[], id: "natGatewayId", strip: &[] },
    Listing {
        action: "DescribeSecurityGroups",
        params: &[],
        id: "groupId",
        strip: &["ipPermissions", "ipPermissionsEgress"],
    },
    Listing {
        action: "DescribeSecurityGroupRules",
        params: &[],
        id: "securityGroupRuleId",
        strip: &[],
    },
    Listing {
        action: "DescribeNetworkAcls",
        params: &[],
        id: "networkAclId",
        strip: &["associationSet"],
    },
    Listing { action: "DescribeTags", params: &[], id: "resourceId", strip: &[] },
];

/// The ids of one answer.
fn ids(l: &Listing, xml: &str) -> Vec<String> {
    let mut xml = xml.to_string();
    for s in l.strip {
        xml = without(&xml, s);
    }
    if l.action == "DescribeTags" {
        // A tag is its resource and key.
        let keys = texts(&xml, "key");
        return texts(&xml, "resourceId")
            .into_iter()
            .zip(keys)
            .map(|(r, k)| r + "/" + &k)
            .collect();
    }
    texts(&xml, l.id)
}

fn params<'a>(l: &'a Listing, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![("Action", l.action)];
    p.extend_from_slice(l.params);
    p.extend_from_slice(extra);
    p
}

/// Follows `nextToken` from a first call with `MaxResults` = `max` (and `more` params) until
/// an answer has none; the ids of each page. Every page holds at most `max` items (for
/// DescribeInstances: reservations).
fn walk(w: &World, l: &Listing, max: usize, more: &[(&str, &str)]) -> Vec<Vec<String>> {
    let max_s = max.to_string();
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut p = params(l, more);
        p.push(("MaxResults", &max_s));
        if let Some(t) = &token {
            p.push(("NextToken", t));
        }
        let xml = read_xml(w, &p);
        let counted = if l.action == "DescribeInstances" {
            texts(&xml, "reservationId").len()
        } else {
            ids(l, &xml).len()
        };
        assert!(counted <= max, "{}: {counted} items in a page of {max}: {xml}", l.action);
        pages.push(ids(l, &xml));
        token = texts(&xml, "nextToken").into_iter().next();
        match &token {
            Some(t) => assert!(!t.is_empty(), "{}: an empty nextToken", l.action),
            None => return pages,
        }
    }
    panic!("{}: no last page after 100 pages", l.action);
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every action that takes `MaxResults` pages: at its smallest `MaxResults`, every item of the
/// unpaged answer comes exactly once, in id order, the pages full but the last, and only the
/// last without a `nextToken`.
#[test]
fn every_paged_action_lists_every_item_once() {
    let w = big_lab();
    assert_eq!(LISTINGS.len(), known_params::MAX_RESULTS.len());
    for (action, min, _) in known_params::MAX_RESULTS {
        let l = LISTINGS.iter().find(|l| l.action == *action).unwrap();
        let all = ids(l, &read_xml(&w, &params(l, &[])));
        assert!(!all.is_empty(), "{action}: nothing to page");
        let max = *min as usize;
        let pages = walk(&w, l, max, &[]);
        let flat: Vec<String> = pages.concat();
        assert_eq!(sorted(flat.clone()), sorted(all.clone()), "{action}: not every item once");
        if *action == "DescribeInstances" {
            // Pages hold whole reservations (describe_instances_pages_whole_reservations).
            continue;
        }
        assert_eq!(pages.len(), all.len().div_ceil(max).max(1), "{action}: {pages:?}");
        if *action != "GetManagedPrefixListEntries" && *action != "DescribeTags" {
            // Ids are the order (CIDRs go by address, tags by resource and key).
            assert_eq!(flat, sorted(flat.clone()), "{action}: not in id order");
        }
    }
}

/// The actions whose smallest page is 5 have more than 5 items in `big_lab`, so they page
/// for real (the test above would pass for them on one page otherwise).
#[test]
fn big_lab_needs_several_pages() {
    let w = big_lab();
    for (action, min, _) in known_params::MAX_RESULTS {
        let l = LISTINGS.iter().find(|l| l.action == *action).unwrap();
        let n = ids(l, &read_xml(&w, &params(l, &[]))).len();
        // The lab has one S3 service and one S3 list per region.
        let pageable =
            !matches!(*action, "DescribeVpcEndpointServices" | "DescribeManagedPrefixLists");
        if pageable {
            assert!(n > *min as usize, "{action}: {n} items, smallest page {min}");
        }
    }
}

/// DescribeInstances pages by reservation: `MaxResults` counts reservations, and a
/// reservation of three instances is never cut across pages (each reservation comes once, and
/// with it every instance).
#[test]
fn describe_instances_pages_whole_reservations() {
    let w = big_lab();
    let l = LISTINGS.iter().find(|l| l.action == "DescribeInstances").unwrap();
    let all = read_xml(&w, &[("Action", "DescribeInstances")]);
    let reservations = texts(&all, "reservationId");
    assert!(reservations.len() > 5, "{reservations:?}");
    let (mut seen, mut instances, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut token: Option<String> = None;
    loop {
        let mut p = vec![("Action", "DescribeInstances"), ("MaxResults", "5")];
        if let Some(t) = &token {
            p.push(("NextToken", t));
        }
        let xml = read_xml(&w, &p);
        pages += 1;
        let rs = texts(&xml, "reservationId");
        assert!(rs.len() <= 5, "{xml}");
        seen.extend(rs);
        instances.extend(ids(l, &xml));
        token = texts(&xml, "nextToken").into_iter().next();
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, reservations.len().div_ceil(5));
    assert_eq!(sorted(seen), sorted(reservations), "each reservation once");
    assert_eq!(sorted(instances), sorted(ids(l, &all)), "each instance once");
}

/// Filters choose the items, then the pages are cut: every page holds only items the filter
/// takes, and the token carries the walk on under the same filter.
#[test]
fn filters_apply_before_paging() {
    let w = big_lab();
    let l = LISTINGS.iter().find(|l| l.action == "DescribeRouteTables").unwrap();
    let filter = [("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", "vpc-111bbb22")];
    let chosen = ids(l, &read_xml(&w, &params(l, &filter)));
    assert_eq!(chosen.len(), 12, "{chosen:?}");
    let pages = walk(&w, l, 5, &filter);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 2]);
    assert_eq!(pages.concat(), sorted(chosen));
    // Tags: the filter `key` keeps the Name tags only.
    let t = LISTINGS.iter().find(|l| l.action == "DescribeTags").unwrap();
    let names = [("Filter.1.Name", "key"), ("Filter.1.Value.1", "Name")];
    let flat = walk(&w, t, 5, &names).concat();
    assert!(flat.len() >= 6 && flat.iter().all(|id| id.ends_with("/Name")), "{flat:?}");
    assert_eq!(sorted(flat), sorted(ids(t, &read_xml(&w, &params(t, &names)))));
}

/// A token is a position, not a snapshot: items deleted after it was given are simply not
/// listed (the last one returned included), items created meanwhile are listed if they come
/// after it, and nothing already listed comes again.
#[test]
fn a_token_survives_changes_between_pages() {
    let w = big_lab();
    let l = LISTINGS.iter().find(|l| l.action == "DescribeRouteTables").unwrap();
    // The 8 tables big_lab made: no subnet uses them, so any can be deleted.
    let pg = [("Filter.1.Name", "tag:pg"), ("Filter.1.Value.1", "1")];
    let all = sorted(ids(l, &read_xml(&w, &params(l, &pg))));
    assert_eq!(all.len(), 8);
    let first = read_xml(&w, &params(l, &[pg[0], pg[1], ("MaxResults", "5")]));
    let page1 = ids(l, &first);
    assert_eq!(page1, all[..5]);
    let token = text(&first, "nextToken");
    // Delete the last table returned (the token's own position) and one not yet returned,
    // and create one.
    let (anchor, later) = (all[4].clone(), all[6].clone());
    let mut w1 = change(&w, &[("Action", "DeleteRouteTable"), ("RouteTableId", &anchor)]).0;
    w1 = change(&w1, &[("Action", "DeleteRouteTable"), ("RouteTableId", &later)]).0;
    let (w1, xml) = change(&w1, &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22")]);
    let created = text(&xml, "routeTableId");
    let w1 = tag_pg(&w1, &created);
    let mut rest = Vec::new();
    let mut token = Some(token);
    while let Some(t) = token {
        let xml =
            read_xml(&w1, &params(l, &[pg[0], pg[1], ("MaxResults", "5"), ("NextToken", &t)]));
        rest.extend(ids(l, &xml));
        token = texts(&xml, "nextToken").into_iter().next();
    }
    let expected: Vec<String> = all[5..]
        .iter()
        .filter(|id| **id != later)
        .cloned()
        .chain((created > anchor).then(|| created.clone()))
        .collect();
    assert_eq!(rest, sorted(expected));
    assert!(rest.iter().all(|id| !page1.contains(id)), "listed twice: {rest:?}");
}

/// `NextToken` without `MaxResults` answers everything after the token (EC2's default page
/// is every item).
#[test]
fn next_token_without_max_results_returns_the_rest() {
    let w = big_lab();
    let l = LISTINGS.iter().find(|l| l.action == "DescribeSubnets").unwrap();
    let first = read_xml(&w, &[("Action", "DescribeSubnets"), ("MaxResults", "5")]);
    let token = text(&first, "nextToken");
    let rest = read_xml(&w, &[("Action", "DescribeSubnets"), ("NextToken", &token)]);
    assert!(texts(&rest, "nextToken").is_empty(), "{rest}");
    let mut both = ids(l, &first);
    both.extend(ids(l, &rest));
    assert_eq!(both, sorted(ids(l, &read_xml(&w, &[("Action", "DescribeSubnets")]))));
}

/// Without `MaxResults` and `NextToken` everything is answered in one page, in the world's
/// order as before, with no `nextToken`; a `MaxResults` above the number of items gives no
/// token either.
#[test]
fn unpaged_calls_are_unchanged() {
    let w = big_lab();
    let xml = read_xml(&w, &[("Action", "DescribeRouteTables")]);
    assert!(texts(&xml, "nextToken").is_empty());
    let l = LISTINGS.iter().find(|l| l.action == "DescribeRouteTables").unwrap();
    let in_world: Vec<String> = w.route_tables.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids(l, &xml), in_world);
    let xml = read_xml(&w, &[("Action", "DescribeRouteTables"), ("MaxResults", "100")]);
    assert!(texts(&xml, "nextToken").is_empty());
    assert_eq!(ids(l, &xml), sorted(in_world));
}

/// A token that is not one the lab gave, or one of another action, is refused with EC2's
/// answer (InvalidParameterValue "Value ( … ) for parameter NextToken is invalid. The token
/// is invalid."), and nothing changes.
#[test]
fn bad_tokens_are_refused() {
    let w = big_lab();
    let first = read_xml(&w, &[("Action", "DescribeSubnets"), ("MaxResults", "5")]);
    let subnets_token = text(&first, "nextToken");
    let mut tampered = subnets_token.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = subnets_token[..subnets_token.len() - 4].to_string();
    for (action, token) in [
        ("DescribeSubnets", "not-a-token"),
        ("DescribeSubnets", tampered.as_str()),
        ("DescribeSubnets", truncated.as_str()),
        // Another action's token.
        ("DescribeRouteTables", subnets_token.as_str()),
        ("DescribeTags", subnets_token.as_str()),
        // Empty: EC2's DescribeVpcs answers this (boto3 issue #2673).
        ("DescribeVpcs", ""),
        ("DescribeSubnets", ""),
    ] {
        for max in [None, Some("5")] {
            let mut p = vec![("Action", action), ("NextToken", token)];
            p.extend(max.map(|m| ("MaxResults", m)));
            let e = refused(&w, &p, "InvalidParameterValue");
            assert_eq!(
                e.message,
                format!(
                    "Value ( {token} ) for parameter NextToken is invalid. The token is invalid."
                )
            );
        }
    }
    // A change action takes no NextToken at all.
    refused(
        &w,
        &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22"), ("NextToken", &subnets_token)],
        "UnknownParameter",
    );
    // The valid token still works after all that.
    let rest = read_xml(&w, &[("Action", "DescribeSubnets"), ("NextToken", &subnets_token)]);
    assert!(!texts(&rest, "subnetId").is_empty());
}

/// DescribeInstances and DescribeSecurityGroups take an empty `NextToken` as "from the start"
/// (boto3 issues #2134 and #2673 report EC2 doing so), so a loop that starts from "" works.
#[test]
fn an_empty_token_starts_over_where_ec2_allows_it() {
    let w = big_lab();
    for action in ["DescribeInstances", "DescribeSecurityGroups"] {
        let l = LISTINGS.iter().find(|l| l.action == action).unwrap();
        let first = read_xml(&w, &[("Action", action), ("MaxResults", "5")]);
        let empty = read_xml(&w, &[("Action", action), ("MaxResults", "5"), ("NextToken", "")]);
        assert_eq!(ids(l, &first), ids(l, &empty), "{action}");
        assert_eq!(texts(&first, "nextToken"), texts(&empty, "nextToken"), "{action}");
        assert!(!texts(&first, "nextToken").is_empty(), "{action}");
    }
}
