//! DescribeInstances' filters: the values each instance has for each documented filter name,
//! as its DescribeInstances item shows them.
//!
//! Invariant: every name botocore documents for DescribeInstances is in [`INSTANCE_FILTERS`] or
//! in [`INSTANCE_FILTERS_NOT_MODELLED`] (the test
//! `every_documented_filter_is_answered_or_not_modelled`), so no documented filter is refused
//! as invalid.

use super::OWNER_ID;
use super::filter::{Values, one};
use super::instances::{
    INSTANCE_TYPE, RUNNING, TERMINATED, instance_eni, interface_mac, launch_time,
};
use super::network::{zone_id, zone_name};
use crate::model::{Instance, TerminatedInstance, World};

/// DescribeInstances' filters (besides tags) that the lab answers. `group-id` and `group-name`
/// are the older, undocumented spellings of `instance.group-id` and `instance.group-name`.
pub(super) const INSTANCE_FILTERS: &[&str] = &[
    "architecture",
    "availability-zone",
    "availability-zone-id",
    "client-token",
    "dns-name",
    "group-id",
    "group-name",
    "hypervisor",
    "image-id",
    "instance-id",
    "instance-state-code",
    "instance-state-name",
    "instance-type",
    "instance.group-id",
    "instance.group-name",
    "ip-address",
    "launch-index",
    "launch-time",
    "monitoring-state",
    "network-interface.addresses.association.ip-owner-id",
    "network-interface.addresses.association.public-dns-name",
    "network-interface.addresses.association.public-ip",
    "network-interface.addresses.primary",
    "network-interface.addresses.private-dns-name",
    "network-interface.addresses.private-ip-address",
    "network-interface.association.ip-owner-id",
    "network-interface.association.public-dns-name",
    "network-interface.association.public-ip",
    "network-interface.attachment.attach-time",
    "network-interface.attachment.attachment-id",
    "network-interface.attachment.delete-on-termination",
    "network-interface.attachment.device-index",
    "network-interface.attachment.instance-id",
    "network-interface.attachment.instance-owner-id",
    "network-interface.attachment.network-card-index",
    "network-interface.attachment.status",
    "network-interface.availability-zone",
    "network-interface.description",
    "network-interface.group-id",
    "network-interface.group-name",
    "network-interface.mac-address",
    "network-interface.network-interface-id",
    "network-interface.owner-id",
    "network-interface.private-dns-name",
    "network-interface.private-ip-address",
    "network-interface.public-dns-name",
    "network-interface.requester-managed",
    "network-interface.source-dest-check",
    "network-interface.status",
    "network-interface.subnet-id",
    "network-interface.vpc-id",
    "owner-id",
    "private-dns-name",
    "private-ip-address",
    "reservation-id",
    "root-device-name",
    "root-device-type",
    "source-dest-check",
    "subnet-id",
    "tenancy",
    "virtualization-type",
    "vpc-id",
];

/// Documented DescribeInstances filters about what the lab does not model, so that no
/// instance has a value for them and each matches nothing (README, Decisions): volumes and
/// block devices, IPv6, Elastic IP allocation and association ids on the interface (the
/// instance item shows none), key pairs, IAM instance profiles, capacity reservations,
/// dedicated hosts and placement groups, Outposts and Wavelength, spot and scheduled
/// instances, kernels and ramdisks, product codes, boot modes and NitroTPM, instance metadata
/// options, hibernation, enclaves, auto-recovery, managed (operator) instances, interface
/// tags, the state reason, and `platform` (Windows only; the lab's instances are not).
pub(super) const INSTANCE_FILTERS_NOT_MODELLED: &[&str] = &[
    "affinity",
    "block-device-mapping.attach-time",
    "block-device-mapping.delete-on-termination",
    "block-device-mapping.device-name",
    "block-device-mapping.status",
    "block-device-mapping.volume-id",
    "boot-mode",
    "capacity-reservation-id",
    "capacity-reservation-specification.capacity-reservation-preference",
    "capacity-reservation-specification.capacity-reservation-target.capacity-reservation-id",
    "capacity-reservation-specification.capacity-reservation-target.capacity-reservation-resource-group-arn",
    "current-instance-boot-mode",
    "ebs-optimized",
    "ena-support",
    "enclave-options.enabled",
    "hibernation-options.configured",
    "host-id",
    "iam-instance-profile.arn",
    "iam-instance-profile.id",
    "instance-lifecycle",
    "ipv6-address",
    "kernel-id",
    "key-name",
    "maintenance-options.auto-recovery",
    "metadata-options.http-endpoint",
    "metadata-options.http-protocol-ipv4",
    "metadata-options.http-protocol-ipv6",
    "metadata-options.http-put-response-hop-limit",
    "metadata-options.http-tokens",
    "metadata-options.instance-metadata-tags",
    "metadata-options.state",
    "network-interface.addresses.association.allocation-id",
    "network-interface.addresses.association.association-id",
    "network-interface.addresses.association.carrier-ip",
    "network-interface.addresses.association.customer-owned-ip",
    "network-interface.association.allocation-id",
    "network-interface.association.association-id",
    "network-interface.association.carrier-ip",
    "network-interface.association.customer-owned-ip",
    "network-interface.deny-all-igw-traffic",
    "network-interface.ipv4-prefixes.ipv4-prefix",
    "network-interface.ipv6-address",
    "network-interface.ipv6-addresses.ipv6-address",
    "network-interface.ipv6-addresses.is-primary-ipv6",
    "network-interface.ipv6-native",
    "network-interface.ipv6-prefixes.ipv6-prefix",
    "network-interface.operator.managed",
    "network-interface.operator.principal",
    "network-interface.outpost-arn",
    "network-interface.requester-id",
    "network-interface.tag-key",
    "network-interface.tag-value",
    "network-performance-options.bandwidth-weighting",
    "operator.managed",
    "operator.principal",
    "outpost-arn",
    "placement-group-name",
    "placement-partition-number",
    "platform",
    "platform-details",
    "private-dns-name-options.enable-resource-name-dns-a-record",
    "private-dns-name-options.enable-resource-name-dns-aaaa-record",
    "private-dns-name-options.hostname-type",
    "product-code",
    "product-code.type",
    "ramdisk-id",
    "reason",
    "requester-id",
    "spot-instance-request-id",
    "state-reason-code",
    "state-reason-message",
    "tpm-support",
    "usage-operation",
    "usage-operation-update-time",
];

/// What every instance, running or terminated, shows the same way (its launch, placement and
/// devices); `None` for a name that is not one of these.
fn launch_values(
    w: &World,
    instance_type: Option<&str>,
    launched_at: Option<u64>,
    name: &str,
) -> Values {
    match name {
        "architecture" => one("x86_64"),
        "availability-zone" => one(zone_name(&w.region)),
        "availability-zone-id" => one(zone_id(&w.region)),
        "dns-name" => one(""),
        "hypervisor" => one("xen"),
        "instance-type" => one(instance_type.unwrap_or(INSTANCE_TYPE)),
        "launch-index" => one("0"),
        // "in the ISO 8601 format in the UTC time zone (YYYY-MM-DDThh:mm:ss.sssZ) ... You can
        // use a wildcard (*)" (botocore), as `launchTime` shows it.
        "launch-time" => one(launch_time(launched_at)),
        "monitoring-state" => one("disabled"),
        "owner-id" => one(OWNER_ID),
        "root-device-name" => one("/dev/xvda"),
        "root-device-type" => one("ebs"),
        "tenancy" => one("default"),
        "virtualization-type" => one("hvm"),
        _ => None,
    }
}

/// The values of a running instance for the filter `name`; `None` for a name that is not one
/// of [`INSTANCE_FILTERS`].
pub(super) fn running_values(w: &World, i: &Instance, name: &str) -> Values {
    if let Some(v) = launch_values(w, i.instance_type.as_deref(), i.launched_at, name) {
        return Some(v);
    }
    let vpc = || w.subnet(&i.subnet).map(|s| s.vpc.clone()).unwrap_or_default();
    let dns = || {
        let domain = crate::services::dns::instance_domain(&w.region);
        crate::services::dns::instance_hostname(&domain, i.private_ip)
    };
    let group_names = || {
        w.instance_groups(i)
            .iter()
            .filter_map(|g| w.security_group(g).map(|s| s.name.clone()))
            .collect()
    };
    let public_ip = || i.public_ip.iter().map(|p| p.to_string()).collect();
    // The association's owner: the account for an Elastic IP, `amazon` for one EC2 assigned.
    let ip_owner = || {
        let elastic = w.elastic_ips.iter().any(|e| e.instance.as_deref() == Some(i.id.as_str()));
        i.public_ip.iter().map(|_| if elastic { OWNER_ID } else { "amazon" }.to_string()).collect()
    };
    let public_dns = || i.public_ip.iter().map(|_| String::new()).collect();
    let bool_value = |b: bool| one(if b { "true" } else { "false" });
    match name {
        "instance-id" | "network-interface.attachment.instance-id" => one(&i.id),
        "subnet-id" | "network-interface.subnet-id" => one(&i.subnet),
        "vpc-id" | "network-interface.vpc-id" => one(vpc()),
        "private-ip-address"
        | "network-interface.private-ip-address"
        | "network-interface.addresses.private-ip-address" => one(i.private_ip.to_string()),
        "private-dns-name"
        | "network-interface.private-dns-name"
        | "network-interface.addresses.private-dns-name" => one(dns()),
        "ip-address"
        | "network-interface.association.public-ip"
        | "network-interface.addresses.association.public-ip" => Some(public_ip()),
        "network-interface.association.ip-owner-id"
        | "network-interface.addresses.association.ip-owner-id" => Some(ip_owner()),
        "network-interface.public-dns-name"
        | "network-interface.association.public-dns-name"
        | "network-interface.addresses.association.public-dns-name" => Some(public_dns()),
        "instance-state-name" => one(RUNNING.1),
        "instance-state-code" => one(RUNNING.0),
        "image-id" => Some(i.image_id.iter().cloned().collect()),
        "reservation-id" => one(i.reservation()),
        "client-token" => Some(i.client_token.iter().cloned().collect()),
        "source-dest-check" | "network-interface.source-dest-check" => {
            bool_value(i.source_dest_check)
        }
        "instance.group-id" | "group-id" | "network-interface.group-id" => {
            Some(w.instance_groups(i))
        }
        "instance.group-name" | "group-name" | "network-interface.group-name" => {
            Some(group_names())
        }
        "network-interface.network-interface-id" => one(instance_eni(&i.id)),
        "network-interface.mac-address" => one(interface_mac(&instance_eni(&i.id))),
        "network-interface.addresses.primary" => one("true"),
        "network-interface.attachment.attach-time" => one(launch_time(i.launched_at)),
        "network-interface.attachment.attachment-id" => {
            one(format!("eni-attach-{}", i.id.trim_start_matches("i-")))
        }
        "network-interface.attachment.delete-on-termination" => one("true"),
        "network-interface.attachment.device-index"
        | "network-interface.attachment.network-card-index" => one("0"),
        "network-interface.attachment.instance-owner-id" | "network-interface.owner-id" => {
            one(OWNER_ID)
        }
        "network-interface.attachment.status" => one("attached"),
        "network-interface.availability-zone" => one(zone_name(&w.region)),
        "network-interface.description" => one(""),
        "network-interface.requester-managed" => one("false"),
        "network-interface.status" => one("in-use"),
        _ => None,
    }
}

/// The values of an instance terminated within the hour: what it still shows (its launch,
/// placement and state); it no longer has a subnet, VPC, address, interface or groups, so
/// those filters match nothing.
pub(super) fn terminated_values(w: &World, t: &TerminatedInstance, name: &str) -> Values {
    if let Some(v) = launch_values(w, t.instance_type.as_deref(), t.launched_at, name) {
        return Some(v);
    }
    Some(match name {
        "instance-id" => vec![t.id.clone()],
        "instance-state-name" => vec![TERMINATED.1.to_string()],
        "instance-state-code" => vec![TERMINATED.0.to_string()],
        "image-id" => t.image_id.iter().cloned().collect(),
        "reservation-id" => vec![t.reservation()],
        "client-token" => t.client_token.iter().cloned().collect(),
        "private-dns-name" => vec![String::new()],
        _ if INSTANCE_FILTERS.contains(&name) => Vec::new(),
        _ => return None,
    })
}
