//! The regions a lab knows, with the S3 address range and AWS-managed prefix list of each.
//!
//! All ranges exist only inside a lab's namespaces. us-east-1 uses the guide's own example:
//! "The range is 54.123.160.0/19" for prefix list `pl-1a2b3c4d`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::PrefixList;

/// One region: its name, and its S3 prefix list id and range.
#[derive(Clone, Copy, Debug)]
pub struct AwsRegion {
    pub name: &'static str,
    pub s3_prefix_list: &'static str,
    pub s3_range: (Ipv4Addr, u8),
}

pub const REGIONS: &[AwsRegion] = &[
    AwsRegion {
        name: "us-east-1",
        s3_prefix_list: "pl-1a2b3c4d",
        s3_range: (Ipv4Addr::new(54, 123, 160, 0), 19),
    },
    AwsRegion {
        name: "us-west-2",
        s3_prefix_list: "pl-68a54001",
        s3_range: (Ipv4Addr::new(54, 231, 160, 0), 19),
    },
    AwsRegion {
        name: "eu-west-1",
        s3_prefix_list: "pl-6da54004",
        s3_range: (Ipv4Addr::new(52, 218, 0, 0), 17),
    },
];

/// The regions with S3 FIPS endpoints. The AWS General Reference ("Amazon Simple Storage Service
/// endpoints and quotas") lists `s3-fips.<region>.amazonaws.com` and
/// `s3-fips.dualstack.<region>.amazonaws.com` for US East (N. Virginia, Ohio), US West
/// (N. California, Oregon), Canada (Central, Calgary) and the two AWS GovCloud (US) regions, and
/// for no other region. An AWS fact, independent of the regions a lab simulates.
pub const S3_FIPS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "ca-west-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// Whether S3 has FIPS endpoints in `region` (exact, lower-case name).
pub fn has_s3_fips(region: &str) -> bool {
    S3_FIPS_REGIONS.contains(&region)
}

pub fn region(name: &str) -> Option<&'static AwsRegion> {
    REGIONS.iter().find(|r| r.name == name)
}

/// The S3 prefix list of every region, as AWS manages them.
pub fn default_prefix_lists() -> Vec<PrefixList> {
    REGIONS
        .iter()
        .map(|r| PrefixList {
            id: r.s3_prefix_list.to_string(),
            name: format!("com.amazonaws.{}.s3", r.name),
            region: r.name.to_string(),
            // The constants above have valid prefix lengths; `trunc` keeps them canonical.
            cidrs: Ipv4Net::new(r.s3_range.0, r.s3_range.1)
                .map(|n| vec![n.trunc()])
                .unwrap_or_default(),
        })
        .collect()
}
