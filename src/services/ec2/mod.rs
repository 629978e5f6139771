//! The EC2 Query API of the lab: a pure function from a world and a decoded form to an XML
//! answer and, for changes, the new world. No sockets, no clocks: the HTTP shell, SigV4,
//! persistence and publishing the world to the data plane belong to the caller
//! ([`super::api`]).
//!
//! Answers follow botocore's EC2 service model (`2016-11-15`): root `<{Action}Response>` in
//! the EC2 namespace, `<requestId>`, lists as `<xxxSet><item>…</item></xxxSet>`. Every refusal
//! comes from a [`ModelError`] mapped by [`model_error_code`] or from request parsing
//! (`MissingParameter`, `InvalidParameterValue`, `InvalidAction`, `UnknownParameter`); a refused
//! call returns no world, so nothing changes.

mod endpoints;
mod filter;
mod instance_filters;
mod instances;
mod known_params;
mod nat;
mod network;
mod paging;
mod params;
mod security;
mod xml;

use crate::model::{ModelError, ResourceKind, World};
use params::Params;
use xml::Xml;

/// The owner of every resource (AWS's documented example account).
pub const OWNER_ID: &str = "123456789012";

pub struct Ec2Request<'a> {
    /// The decoded form fields, in order (`Action`, `Version`, `RouteTableId.1`, …).
    pub params: &'a [(String, String)],
    /// From the SigV4 credential scope.
    pub region: &'a str,
    /// A UUID chosen by the caller.
    pub request_id: &'a str,
}

// The world is moved to the caller once per change; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Ec2Outcome {
    /// A read-only answer.
    Read { xml: String },
    /// A change: the caller persists `world`, publishes it, then sends `xml`.
    Changed { world: World, xml: String },
}

/// A refused request (HTTP 400 unless the caller decides otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    pub code: String,
    pub message: String,
}

impl Ec2Error {
    pub fn new(code: &str, message: impl Into<String>) -> Ec2Error {
        Ec2Error { code: code.to_string(), message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new("InvalidParameterValue", message)
    }
}

impl std::fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Ec2Error {}

impl From<ModelError> for Ec2Error {
    /// The model's messages are lower-case clauses (a lab file's error puts its line and field
    /// before them); EC2's messages are sentences.
    fn from(e: ModelError) -> Ec2Error {
        if let Some(m) = aws_message(&e) {
            return Ec2Error::new(model_error_code(&e), m);
        }
        // EC2's words for a policy that is not JSON, as terraform-provider-aws issue #42291
        // quotes them: "The Policy Document is not valid. Syntax error at position (1,75)".
        if let ModelError::PolicySyntax { line, column, .. } = &e {
            let m = format!(
                "The Policy Document is not valid. Syntax error at position ({line},{column})"
            );
            return Ec2Error::new(model_error_code(&e), m);
        }
        let message = e.to_string();
        let mut chars = message.chars();
        let message = match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => message,
        };
        Ec2Error { code: model_error_code(&e).to_string(), message }
    }
}

/// `<?xml…?><Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
pub fn error_xml(err: &Ec2Error, request_id: &str) -> String {
    let mut x = Xml::bare("Response");
    x.open("Errors");
    x.open("Error");
    x.leaf("Code", &err.code);
    x.leaf("Message", &err.message);
    x.close();
    x.close();
    x.leaf("RequestID", request_id);
    x.finish()
}

/// THE one function mapping every [`ModelError`] variant to its AWS error code.
pub fn model_error_code(e: &ModelError) -> &'static str {
    use ModelError as E;
    match e {
        E::MalformedId { kind, .. } => match *kind {
            "vpc" => "InvalidVpcID.Malformed",
            "subnet" => "InvalidSubnetID.Malformed",
            "route table" => "InvalidRouteTableId.Malformed",
            "internet gateway" => "InvalidInternetGatewayId.Malformed",
            "instance" => "InvalidInstanceID.Malformed",
            "vpc endpoint" => "InvalidVpcEndpointId.Malformed",
            "prefix list" => "InvalidPrefixListId.Malformed",
            "association" | "network acl association" => "InvalidAssociationID.Malformed",
            "security group" => "InvalidGroupId.Malformed",
            "security group rule" => "InvalidSecurityGroupRuleId.Malformed",
            "network acl" => "InvalidNetworkAclID.Malformed",
            "nat gateway" => "InvalidNatGatewayID.Malformed",
            "elastic ip allocation" => "InvalidAllocationID.Malformed",
            "elastic ip association" => "InvalidAssociationID.Malformed",
            _ => "InvalidID",
        },
        E::DuplicateId(_) => "InvalidParameterValue",
        E::InvalidName(_) | E::InvalidLabName(_) | E::InvalidUserName(_) => "InvalidParameterValue",
        E::InvalidAccessKey(_) => "InvalidParameterValue",
        E::UnknownRegion(_) => "InvalidParameterValue",
        E::EmptyPrefixList(_)
        | E::InvalidPrefixListCidr { .. }
        | E::DuplicatePrefixListCidr { .. } => "InvalidParameterValue",
        E::VpcNotFound(_) => "InvalidVpcID.NotFound",
        E::SubnetNotFound(_) => "InvalidSubnetID.NotFound",
        E::RouteTableNotFound(_) => "InvalidRouteTableID.NotFound",
        E::IgwNotFound(_) => "InvalidInternetGatewayID.NotFound",
        E::InvalidVpcCidr(_) | E::VpcCidrReserved { .. } => "InvalidVpc.Range",
        E::InvalidSubnetCidr { .. } => "InvalidSubnet.Range",
        E::SubnetConflict { .. } => "InvalidSubnet.Conflict",
        // A route table of another VPC given to a subnet or an endpoint.
        E::RouteTableOtherVpc { .. } => "InvalidParameterValue",
        E::VpcAlreadyHasIgw { .. } => "Resource.AlreadyAssociated",
        E::IgwNotAttached { .. } => "Gateway.NotAttached",
        E::RouteAlreadyExists { .. } => "RouteAlreadyExists",
        E::RouteOverLocal(_) => "InvalidParameterValue",
        E::LocalRouteMismatch(_) => "InvalidParameterValue",
        // The guide: "You cannot explicitly add, modify, or delete an endpoint route in your
        // route table by using the route table APIs".
        E::ExplicitEndpointRoute => "InvalidParameterValue",
        // The guide: "you cannot have multiple endpoints to the same service in a single route
        // table".
        E::EndpointServiceAlreadyInTable { .. } => "RouteAlreadyExists",
        E::InvalidServiceName(_) => "InvalidServiceName",
        // The guide: "You cannot create an endpoint between a VPC and an AWS service in a
        // different region."
        E::CrossRegionEndpoint { .. } => "InvalidServiceName",
        // The guide: "Your policy must contain a Principal element."
        E::InvalidPolicy(_) | E::PolicySyntax { .. } => "InvalidPolicyDocument",
        E::InvalidPrivateIp { .. } => "InvalidParameterValue",
        E::InvalidPublicIp(_) => "InvalidParameterValue",
        E::AddressInUse(_) => "InvalidIPAddress.InUse",
        E::InvalidBucketName(_) | E::ReservedBucketName { .. } | E::AwsOwnedBucket(_) => {
            "InvalidParameterValue"
        }
        E::InvalidObjectKey(_) => "InvalidParameterValue",
        E::InvalidInternetHost(_) | E::InvalidInternetHostName { .. } => "InvalidParameterValue",
        E::EndpointNotFound(_) => "InvalidVpcEndpointId.NotFound",
        E::InstanceNotFound(_) => "InvalidInstanceID.NotFound",
        E::PrefixListNotFound(_) | E::PrefixListOtherRegion { .. } => {
            "InvalidPrefixListID.NotFound"
        }
        E::AssociationNotFound(_) => "InvalidAssociationID.NotFound",
        E::DependencyViolation { .. } | E::MappedPublicAddresses { .. } => "DependencyViolation",
        E::SubnetAlreadyAssociated { .. } => "Resource.AlreadyAssociated",
        E::CannotDisassociateMain(_) => "InvalidParameterValue",
        E::IgwAlreadyAttached { .. } => "Resource.AlreadyAssociated",
        E::RouteNotFound { .. } => "InvalidRoute.NotFound",
        E::NoRouteToReplace(_) => "InvalidParameterValue",
        E::GatewayNotFound(_) => "InvalidGatewayID.NotFound",
        E::GatewayOtherNetwork { .. } => "InvalidParameterValue",
        E::LocalRouteImmutable(_) => "InvalidParameterValue",
        // The guide: "You cannot tag an endpoint."
        E::CannotTagEndpoint(_) => "InvalidParameterValue",
        E::EndpointTableNotAssociated { .. } => "InvalidParameterValue",
        E::TableAddedAndRemoved(_) => "InvalidParameterValue",
        E::SubnetFull(_) => "InsufficientFreeAddressesInSubnet",
        E::NoFreePublicIp => "AddressLimitExceeded",
        E::NoMainRouteTable(_) => "InvalidParameterValue",
        E::Inconsistent(_) => "InternalError",
        E::InvalidTag(_) => "InvalidParameterValue",
        E::InvalidProtocol(_) => "InvalidParameterValue",
        E::InvalidPortRange(_) => "InvalidParameterValue",
        E::InvalidCidr(_) => "InvalidParameterValue",
        E::SecurityGroupNotFound(_) => "InvalidGroup.NotFound",
        E::SecurityGroupRuleNotFound(_) => "InvalidSecurityGroupRuleId.NotFound",
        E::SecurityGroupDuplicate { .. } => "InvalidGroup.Duplicate",
        E::InvalidGroupName(_) => "InvalidParameterValue",
        E::InvalidGroupDescription(_) => "InvalidParameterValue",
        E::SecurityGroupOtherVpc { .. } => "InvalidParameter",
        E::CannotDeleteDefaultGroup(_) => "CannotDelete",
        E::NoSecurityGroups(_) => "InvalidParameterValue",
        E::DuplicatePermission { .. } => "InvalidPermission.Duplicate",
        E::PermissionNotFound { .. } => "InvalidPermission.NotFound",
        E::NetworkAclNotFound(_) => "InvalidNetworkAclID.NotFound",
        E::NetworkAclEntryExists { .. } => "NetworkAclEntryAlreadyExists",
        E::NetworkAclEntryNotFound { .. } => "InvalidNetworkAclEntry.NotFound",
        E::InvalidRuleNumber(_) => "InvalidParameterValue",
        E::InvalidRuleAction(_) => "InvalidParameterValue",
        E::AllocationNotFound(_) => "InvalidAllocationID.NotFound",
        E::NatGatewayNotFound(_) => "NatGatewayNotFound",
        E::EipAlreadyAssociated(_) => "Resource.AlreadyAssociated",
        E::EipUsedByNat { .. } => "InvalidIPAddress.InUse",
        E::EipInUse(_) => "InvalidIPAddress.InUse",
        E::TargetOtherVpc { .. } => "InvalidParameterValue",
        // The guide: "You cannot use prefix list IDs to create an outbound rule in a network
        // ACL [...]".
        E::PrefixListInNetworkAcl(_) => "InvalidParameterValue",
        E::CannotDeleteDefaultAcl(_) => "InvalidParameterValue",
        E::NetworkAclOtherVpc { .. } => "InvalidParameterValue",
        E::SubnetAclConflict { .. } => "InvalidParameterValue",
        E::InvalidRuleDescription(_) => "InvalidParameterValue",
        E::RulesPerSecurityGroupLimitExceeded { .. } => "RulesPerSecurityGroupLimitExceeded",
        E::SecurityGroupsPerInterfaceLimitExceeded { .. } => {
            "SecurityGroupsPerInterfaceLimitExceeded"
        }
        E::NetworkAclEntryLimitExceeded { .. } => "NetworkAclEntryLimitExceeded",
    }
}

/// EC2's own words for errors whose message a client may match on, where the model's message
/// adds the lab's details (the quotas: EC2 names neither the resource nor the number).
fn aws_message(e: &ModelError) -> Option<&'static str> {
    use ModelError as E;
    match e {
        E::RulesPerSecurityGroupLimitExceeded { .. } => {
            Some("The maximum number of rules per security group has been reached.")
        }
        E::SecurityGroupsPerInterfaceLimitExceeded { .. } => {
            Some("The maximum number of security groups per interface has been reached.")
        }
        E::NetworkAclEntryLimitExceeded { .. } => {
            Some("The maximum number of network acl entries has been reached.")
        }
        _ => None,
    }
}

/// The context a handler works in.
pub(crate) struct Ctx<'a> {
    pub world: &'a World,
    pub p: Params<'a>,
    pub region: &'a str,
    pub action: &'a str,
    pub request_id: &'a str,
    /// `MaxResults` and `NextToken`, for the actions that page.
    pub paging: paging::Paging,
}

impl Ctx<'_> {
    fn xml(&self) -> Xml {
        Xml::response(self.action, self.request_id)
    }
}

type Handler = fn(&Ctx) -> Result<Ec2Outcome, Ec2Error>;

const ACTIONS: &[(&str, Handler)] = &[
    ("DescribeRegions", network::describe_regions),
    ("DescribeAvailabilityZones", network::describe_availability_zones),
    ("CreateVpc", network::create_vpc),
    ("DescribeVpcs", network::describe_vpcs),
    ("ModifyVpcAttribute", network::modify_vpc_attribute),
    ("DescribeVpcAttribute", network::describe_vpc_attribute),
    ("DeleteVpc", network::delete_vpc),
    ("CreateSubnet", network::create_subnet),
    ("DescribeSubnets", network::describe_subnets),
    ("DeleteSubnet", network::delete_subnet),
    ("CreateRouteTable", network::create_route_table),
    ("DescribeRouteTables", network::describe_route_tables),
    ("DeleteRouteTable", network::delete_route_table),
    ("AssociateRouteTable", network::associate_route_table),
    ("DisassociateRouteTable", network::disassociate_route_table),
    ("ReplaceRouteTableAssociation", network::replace_route_table_association),
    ("CreateRoute", network::create_route),
    ("ReplaceRoute", network::replace_route),
    ("DeleteRoute", network::delete_route),
    ("CreateInternetGateway", network::create_internet_gateway),
    ("AttachInternetGateway", network::attach_internet_gateway),
    ("DetachInternetGateway", network::detach_internet_gateway),
    ("DescribeInternetGateways", network::describe_internet_gateways),
    ("DeleteInternetGateway", network::delete_internet_gateway),
    ("CreateVpcEndpoint", endpoints::create_vpc_endpoint),
    ("ModifyVpcEndpoint", endpoints::modify_vpc_endpoint),
    ("DescribeVpcEndpoints", endpoints::describe_vpc_endpoints),
    ("DeleteVpcEndpoints", endpoints::delete_vpc_endpoints),
    ("DescribePrefixLists", endpoints::describe_prefix_lists),
    ("DescribeManagedPrefixLists", endpoints::describe_managed_prefix_lists),
    ("GetManagedPrefixListEntries", endpoints::get_managed_prefix_list_entries),
    ("DescribeVpcEndpointServices", endpoints::describe_vpc_endpoint_services),
    ("RunInstances", instances::run_instances),
    ("DescribeInstances", instances::describe_instances),
    ("TerminateInstances", instances::terminate_instances),
    ("ModifyInstanceAttribute", instances::modify_instance_attribute),
    ("DescribeInstanceAttribute", instances::describe_instance_attribute),
    ("AllocateAddress", nat::allocate_address),
    ("AssociateAddress", nat::associate_address),
    ("DisassociateAddress", nat::disassociate_address),
    ("ReleaseAddress", nat::release_address),
    ("DescribeAddresses", nat::describe_addresses),
    ("CreateNatGateway", nat::create_nat_gateway),
    ("DescribeNatGateways", nat::describe_nat_gateways),
    ("DeleteNatGateway", nat::delete_nat_gateway),
    ("CreateSecurityGroup", security::create_security_group),
    ("DeleteSecurityGroup", security::delete_security_group),
    ("DescribeSecurityGroups", security::describe_security_groups),
    ("DescribeSecurityGroupRules", security::describe_security_group_rules),
    ("AuthorizeSecurityGroupIngress", security::authorize_security_group_ingress),
    ("AuthorizeSecurityGroupEgress", security::authorize_security_group_egress),
    ("RevokeSecurityGroupIngress", security::revoke_security_group_ingress),
    ("RevokeSecurityGroupEgress", security::revoke_security_group_egress),
    ("CreateNetworkAcl", security::create_network_acl),
    ("DeleteNetworkAcl", security::delete_network_acl),
    ("DescribeNetworkAcls", security::describe_network_acls),
    ("CreateNetworkAclEntry", security::create_network_acl_entry),
    ("ReplaceNetworkAclEntry", security::replace_network_acl_entry),
    ("DeleteNetworkAclEntry", security::delete_network_acl_entry),
    ("ReplaceNetworkAclAssociation", security::replace_network_acl_association),
    ("CreateTags", instances::create_tags),
    ("DescribeTags", instances::describe_tags),
    ("DeleteTags", instances::delete_tags),
];

/// The actions [`handle`] answers.
pub fn actions() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|(a, _)| *a)
}

/// Answers one EC2 Query request against `world`. `Version` is not checked (the CLI always
/// sends 2016-11-15). `DryRun=true` answers `DryRunOperation` when the call would succeed.
/// The request's action and its handler: `MissingParameter` without one, `InvalidAction` for a
/// name EC2 does not know.
fn action_of<'p>(p: &Params<'p>) -> Result<(&'static str, Handler), Ec2Error> {
    let action = p.required("Action")?;
    ACTIONS.iter().find(|(a, _)| *a == action).copied().ok_or_else(|| {
        Ec2Error::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )
    })
}

/// Whether the request names an action EC2 knows and sends only parameters it defines (the API
/// answers `MissingParameter`, `InvalidAction` or `UnknownParameter` before it authorizes
/// anything, whoever the caller is).
pub fn check_action(params: &[(String, String)]) -> Result<(), Ec2Error> {
    let (action, _) = action_of(&Params::new(params))?;
    check_known(action, params)
}

/// Parameters any request may carry: the action, the API version and SigV4's presigned query
/// parameters.
const COMMON_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
];

/// EC2 refuses a parameter the action does not define, before doing anything: `UnknownParameter`
/// naming the first one as sent. Without this a misspelt or unsupported parameter would be
/// ignored and the call answer success having done something else than asked (`VpcId` on
/// ModifyVpcEndpoint, when the guide says "You cannot transfer an endpoint from one VPC to
/// another"; `AddRouteTableId` without its `.1`). The keys are botocore's, list indexes as `N`
/// ([`known_params`]); names are compared case-sensitively, as [`Params`] reads them.
fn check_known(action: &str, params: &[(String, String)]) -> Result<(), Ec2Error> {
    // Every action of `ACTIONS` has its row (the test `every_action_has_its_known_params`).
    let Some((_, known)) = known_params::KNOWN_PARAMS.iter().find(|(a, _)| *a == action) else {
        return Ok(());
    };
    let mut shape = String::new();
    for (key, _) in params {
        if COMMON_PARAMS.contains(&key.as_str()) {
            continue;
        }
        shape.clear();
        for (i, part) in key.split('.').enumerate() {
            if i > 0 {
                shape.push('.');
            }
            let index = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            shape.push_str(if index { "N" } else { part });
        }
        if known.binary_search(&shape.as_str()).is_err() {
            return Err(Ec2Error::new(
                "UnknownParameter",
                format!("The parameter {key} is not recognized"),
            ));
        }
    }
    Ok(())
}

/// The longest `ClientToken`: "A client token is a unique, case-sensitive string of up to 64
/// ASCII characters" (EC2 User Guide, Ensuring idempotency of Amazon EC2 API requests).
const CLIENT_TOKEN_MAX: usize = 64;

/// A `ClientToken` longer than 64 characters or not ASCII is refused, before anything is
/// authorized, made or remembered. EC2's wording is not documented: the lab words it as its other
/// refusals of a value, with the guide's rule.
fn check_client_token(p: &Params) -> Result<(), Ec2Error> {
    match p.get("ClientToken") {
        Some(t) if t.len() > CLIENT_TOKEN_MAX || !t.is_ascii() => Err(Ec2Error::invalid(format!(
            "Value ({t}) for parameter clientToken is invalid. A client token is a unique, \
             case-sensitive string of up to {CLIENT_TOKEN_MAX} ASCII characters"
        ))),
        _ => Ok(()),
    }
}

/// EC2 refuses a `MaxResults` outside the action's range with `InvalidParameterValue` ("Value
/// ( 3 ) for parameter maxResults is invalid. Expecting a value greater than 5.", as the SDKs
/// report DescribeInstances' answer). The ranges are botocore's, or the documented ones
/// ([`known_params::MAX_RESULTS`]). Above the range EC2's wording is not documented: the same
/// sentence, "less than".
fn check_max_results(action: &str, p: &Params) -> Result<(), Ec2Error> {
    let Some((_, min, max)) = known_params::MAX_RESULTS.iter().find(|(a, _, _)| *a == action)
    else {
        return Ok(());
    };
    let Some(n) = p.int("MaxResults")? else { return Ok(()) };
    let invalid = |expect: String| {
        Ec2Error::invalid(format!(
            "Value ( {n} ) for parameter maxResults is invalid. Expecting a value {expect}."
        ))
    };
    if n < *min {
        return Err(invalid(format!("greater than {min}")));
    }
    if let Some(max) = max
        && n > *max
    {
        return Err(invalid(format!("less than {max}")));
    }
    Ok(())
}

pub fn handle(world: &World, req: &Ec2Request) -> Result<Ec2Outcome, Ec2Error> {
    // A world saved before security groups and network ACLs existed gets its VPCs' default
    // group and ACL (the first change persists them).
    let world = &*world.with_defaults();
    let p = Params::new(req.params);
    let (action, handler) = action_of(&p)?;
    check_known(action, req.params)?;
    check_client_token(&p)?;
    check_max_results(action, &p)?;
    let paging = paging::Paging::of(action, &p)?;
    let dry_run = p.bool("DryRun")?.unwrap_or(false);
    // Idempotency: "a unique, case-sensitive identifier that you provide to ensure the
    // idempotency of the request" (botocore fills it in for RunInstances, CreateRouteTable,
    // CreateNatGateway and CreateNetworkAcl, so an SDK's retry after a lost answer must not make
    // a second resource). The same token with the same parameters answers what the first call
    // answered; with other parameters it is IdempotentParameterMismatch.
    let token = p.get("ClientToken").filter(|_| IDEMPOTENT.contains(&action) && !dry_run);
    let fingerprint = token.map(|_| request_fingerprint(action, req.params));
    if let (Some(t), Some(fp)) = (token, &fingerprint)
        && let Some(rec) = world.client_tokens.get(t)
    {
        if rec.fingerprint != *fp {
            return Err(Ec2Error::new(
                "IdempotentParameterMismatch",
                format!("The client token '{t}' has already been used with other parameters"),
            ));
        }
        let xml = rec.xml.replacen(
            &format!("<requestId>{}</requestId>", rec.request_id),
            &format!("<requestId>{}</requestId>", req.request_id),
            1,
        );
        return Ok(Ec2Outcome::Read { xml });
    }
    let ctx = Ctx { world, p, region: req.region, action, request_id: req.request_id, paging };
    let out = handler(&ctx)?;
    if dry_run {
        return Err(Ec2Error::new(
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    match (out, token, fingerprint) {
        (Ec2Outcome::Changed { mut world, xml }, Some(t), Some(fingerprint)) => {
            world.remember_client_token(
                t,
                crate::model::ClientToken {
                    fingerprint,
                    xml: xml.clone(),
                    request_id: req.request_id.to_string(),
                    seq: 0,
                },
            );
            Ok(Ec2Outcome::Changed { world, xml })
        }
        (out, _, _) => Ok(out),
    }
}

/// The actions whose `ClientToken` makes them idempotent.
const IDEMPOTENT: &[&str] = &[
    "RunInstances",
    "CreateRouteTable",
    "CreateNatGateway",
    "CreateNetworkAcl",
    "CreateVpcEndpoint",
];

/// The action and its parameters (but the token itself and `Version`), order aside: SHA-256,
/// hex.
fn request_fingerprint(action: &str, params: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut kv: Vec<&(String, String)> =
        params.iter().filter(|(k, _)| k != "ClientToken" && k != "Version").collect();
    kv.sort();
    let mut h = Sha256::new();
    h.update(action.as_bytes());
    for (k, v) in kv {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Checks that `id` is a well-formed, existing id of `kind`: the kind's Malformed error when
/// the prefix is wrong or the rest is not hex, its NotFound error when it does not exist.
pub(crate) fn check_kind(world: &World, id: &str, kind: ResourceKind) -> Result<(), Ec2Error> {
    if ResourceKind::of(id) != Some(kind) {
        let name = match kind {
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::RouteTable => "route table",
            ResourceKind::InternetGateway => "internet gateway",
            ResourceKind::Instance => "instance",
            ResourceKind::VpcEndpoint => "vpc endpoint",
            ResourceKind::PrefixList => "prefix list",
            ResourceKind::SecurityGroup => "security group",
            ResourceKind::SecurityGroupRule => "security group rule",
            ResourceKind::NetworkAcl => "network acl",
            ResourceKind::NatGateway => "nat gateway",
            ResourceKind::ElasticIp => "elastic ip allocation",
        };
        return Err(ModelError::MalformedId { kind: name, id: id.to_string() }.into());
    }
    world.check_exists(id)?;
    Ok(())
}

/// Every id of an `…Id.N` list parameter must exist.
pub(crate) fn check_ids(world: &World, ids: &[&str], kind: ResourceKind) -> Result<(), Ec2Error> {
    for id in ids {
        check_kind(world, id, kind)?;
    }
    Ok(())
}

/// Applies `TagSpecification.N` entries whose resource type is `resource_type` to `id`; a
/// specification for another type is refused, except one in `unsimulated`: types the action
/// takes for resources the lab does not model (RunInstances' `volume`), accepted and not kept,
/// since nothing in the lab could show them.
pub(crate) fn apply_tag_specs(
    ctx: &Ctx,
    world: &mut World,
    id: &str,
    resource_type: &str,
    unsimulated: &[&str],
) -> Result<(), Ec2Error> {
    for spec in ctx.p.tag_specs()? {
        if unsimulated.contains(&spec.resource_type.as_str()) {
            // Not kept, but held to the same rules (EC2 refuses an `aws:` key on any resource).
            for (k, v) in &spec.tags {
                crate::model::check_tag(k, Some(v))?;
            }
            continue;
        }
        if spec.resource_type != resource_type {
            return Err(Ec2Error::invalid(format!(
                "'{}' is not a valid taggable resource type for this operation",
                spec.resource_type
            )));
        }
        world.create_tags(&[id.to_string()], &spec.tags)?;
    }
    Ok(())
}

fn read(x: Xml) -> Result<Ec2Outcome, Ec2Error> {
    Ok(Ec2Outcome::Read { xml: x.finish() })
}

fn changed(world: World, x: Xml) -> Result<Ec2Outcome, Ec2Error> {
    Ok(Ec2Outcome::Changed { world, xml: x.finish() })
}

#[cfg(test)]
mod tests;
