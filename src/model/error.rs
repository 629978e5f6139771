//! Every rule of the guide (and of EC2 that a lab relies on) as a typed error. The API layer maps
//! each variant to an AWS error code in one function; the lab loader prints the message with
//! the line and field.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An id that does not have the AWS form for its kind.
    #[error("invalid id: \"{id}\" (a {kind} id is its prefix and hexadecimal digits)")]
    MalformedId { kind: &'static str, id: String },
    /// An id or name used twice.
    #[error("'{0}' is already used in this lab")]
    DuplicateId(String),
    /// A subnet name unfit for a namespace name.
    #[error(
        "invalid name '{0}': use 1 to 16 lowercase letters, digits or '-' (not 'aws' or 'internet')"
    )]
    InvalidName(String),
    /// A lab name unfit for the namespaces' prefix.
    #[error(
        "invalid lab name '{0}': use 1 to 24 lowercase letters, digits or '-', starting with a letter"
    )]
    InvalidLabName(String),
    /// A user name IAM would refuse.
    #[error("invalid user name '{0}': use 1 to 64 letters, digits or +=,.@_-")]
    InvalidUserName(String),
    /// An access key id unlike AWS's.
    #[error("invalid access key '{0}': use 16 or more letters and digits")]
    InvalidAccessKey(String),
    /// A region the lab does not simulate.
    #[error("unknown region '{0}' (known: us-east-1, us-west-2, eu-west-1)")]
    UnknownRegion(String),
    /// A prefix list with no CIDR.
    #[error("prefix list '{0}' has no CIDR")]
    EmptyPrefixList(String),
    /// A CIDR no AWS service's prefix list can hold here: not public, or the lab's own.
    #[error("prefix list '{id}' cannot hold {cidr}: {why}")]
    InvalidPrefixListCidr { id: String, cidr: Ipv4Net, why: String },
    /// A range listed twice in one prefix list (AWS-managed lists never repeat an entry).
    #[error("prefix list '{id}' lists {cidr} twice")]
    DuplicatePrefixListCidr { id: String, cidr: Ipv4Net },
    #[error("the vpc ID '{0}' does not exist")]
    VpcNotFound(String),
    #[error("the subnet ID '{0}' does not exist")]
    SubnetNotFound(String),
    #[error("the routeTable ID '{0}' does not exist")]
    RouteTableNotFound(String),
    #[error("the internetGateway ID '{0}' does not exist")]
    IgwNotFound(String),
    /// AWS: VPC blocks are /16 to /28.
    #[error("the CIDR '{0}' is invalid: the allowed block size is between a /16 and a /28 netmask")]
    InvalidVpcCidr(Ipv4Net),
    /// A VPC block over a range the lab holds fixed (its S3 ranges, its internet and public-IP
    /// ranges) or one the data plane never routes (loopback, multicast, …): the VPC would come
    /// up broken.
    #[error("the CIDR '{cidr}' is invalid: it overlaps {range}, {why}")]
    VpcCidrReserved { cidr: Ipv4Net, range: Ipv4Net, why: String },
    /// A subnet outside its VPC or of a size AWS does not allow.
    #[error("the CIDR '{cidr}' is invalid for a subnet of a VPC with CIDR {vpc_cidr}")]
    InvalidSubnetCidr { cidr: Ipv4Net, vpc_cidr: Ipv4Net },
    #[error("the CIDR '{cidr}' conflicts with subnet {other}")]
    SubnetConflict { cidr: Ipv4Net, other: String },
    /// A route table used by a subnet or endpoint of another VPC.
    #[error("route table {table} does not belong to VPC {vpc}")]
    RouteTableOtherVpc { table: String, vpc: String },
    #[error("VPC {vpc} already has internet gateway {igw} attached")]
    VpcAlreadyHasIgw { vpc: String, igw: String },
    #[error("internet gateway {igw} is not attached to VPC {vpc}")]
    IgwNotAttached { igw: String, vpc: String },
    #[error("the route identified by {destination} already exists in {table}")]
    RouteAlreadyExists { table: String, destination: Ipv4Net },
    /// A route whose destination is the VPC CIDR, or inside it, with a target other than local.
    #[error(
        "the destination {0} is equal to or more specific than the VPC CIDR: only the local route covers it"
    )]
    RouteOverLocal(Ipv4Net),
    #[error("the target 'local' is only valid for the VPC CIDR, not {0}")]
    LocalRouteMismatch(Ipv4Net),
    /// From the guide, "Routing for Endpoints".
    #[error(
        "You cannot explicitly add, modify, or delete an endpoint route in your route table by \
         using the route table APIs. You can only add an endpoint route by associating a route \
         table with an endpoint"
    )]
    ExplicitEndpointRoute,
    /// From the guide: "you cannot have multiple endpoints to the same service in a single
    /// route table".
    #[error(
        "route table {table} already has a route to {service} through {endpoint}: you cannot have \
         multiple endpoints to the same service in a single route table"
    )]
    EndpointServiceAlreadyInTable { table: String, service: String, endpoint: String },
    #[error("the Vpc Endpoint Service '{0}' does not exist")]
    InvalidServiceName(String),
    /// From the guide, "Endpoint Limitations".
    #[error(
        "the service {service} is not in region {region}: you cannot create an endpoint between \
         a VPC and an AWS service in a different region"
    )]
    CrossRegionEndpoint { service: String, region: String },
    #[error("invalid policy document: {0}")]
    InvalidPolicy(String),
    /// A policy document that is not JSON: where the parser stopped (from 1) and why.
    #[error("invalid policy document: not JSON: {detail}")]
    PolicySyntax { line: usize, column: usize, detail: String },
    /// Not in the subnet, or one of the five addresses AWS reserves.
    #[error(
        "address {ip} is not available in subnet {cidr} (AWS reserves the first four and the last)"
    )]
    InvalidPrivateIp { ip: Ipv4Addr, cidr: Ipv4Net },
    #[error("public IP {0} must lie in 203.0.113.0/24")]
    InvalidPublicIp(Ipv4Addr),
    #[error("address {0} is in use")]
    AddressInUse(Ipv4Addr),
    #[error("the specified bucket name is not valid: '{0}'")]
    InvalidBucketName(String),
    /// A name S3 reserves for its own (an access point alias, a directory bucket …); `rule` is
    /// the guide's, e.g. "start with the prefix xn--".
    #[error("the specified bucket name is not valid: '{name}': bucket names must not {rule}")]
    ReservedBucketName { name: String, rule: String },
    /// One of the buckets AWS keeps for itself in another account (an Amazon Linux AMI
    /// repository, see [`super::aws_repository_buckets`]).
    #[error(
        "bucket '{0}' is an Amazon Linux AMI repository, which AWS owns (another account than the lab's)"
    )]
    AwsOwnedBucket(String),
    /// An object key S3 would refuse: empty, or longer than 1,024 bytes.
    #[error("an object key must be 1 to 1024 bytes long (this one has {})", .0.len())]
    InvalidObjectKey(String),
    #[error("internet host {0} must lie in 198.51.100.0/24")]
    InvalidInternetHost(Ipv4Addr),
    /// An internet host's name that is not a hostname, or is one the VPC resolver answers for
    /// S3, the instances or reverse lookups (it answers hosts first, so the host would take
    /// the name over).
    #[error("invalid internet host name '{name}': {why}")]
    InvalidInternetHostName { name: String, why: String },
    /// A gateway endpoint id that does not exist.
    #[error("the vpcEndpoint ID '{0}' does not exist")]
    EndpointNotFound(String),
    /// An instance id that does not exist.
    #[error("the instance ID '{0}' does not exist")]
    InstanceNotFound(String),
    /// A prefix list id that does not exist.
    #[error("the prefix list ID '{0}' does not exist")]
    PrefixListNotFound(String),
    /// A rule naming a prefix list of another region than the lab's: EC2 knows only its own
    /// region's (DescribeManagedPrefixLists answers `InvalidPrefixListID.NotFound` for it).
    #[error("the prefix list ID '{id}' does not exist in {lab_region} (it is {region}'s)")]
    PrefixListOtherRegion { id: String, region: String, lab_region: String },
    /// A route table association id (rtbassoc-…) that does not exist.
    #[error("the association ID '{0}' does not exist")]
    AssociationNotFound(String),
    /// A resource that other resources still use.
    #[error("the {kind} '{id}' has dependencies and cannot be deleted: {reason}")]
    DependencyViolation { kind: &'static str, id: String, reason: String },
    /// DetachInternetGateway while instances of the VPC have public addresses (EC2's words).
    #[error(
        "network {vpc} has some mapped public address(es) (instance {instance}); please unmap \
         those public address(es) before detaching the gateway"
    )]
    MappedPublicAddresses { vpc: String, instance: String },
    /// A subnet that already has an explicit route table association.
    #[error("the subnet {subnet} is already associated with route table {table} ({association})")]
    SubnetAlreadyAssociated { subnet: String, table: String, association: String },
    /// The main route table association of a VPC can be replaced, never removed.
    #[error(
        "the association {0} is the main route table association: replace it with another table \
         instead"
    )]
    CannotDisassociateMain(String),
    /// An internet gateway that is already attached to a VPC.
    #[error("internet gateway {igw} is already attached to {vpc}")]
    IgwAlreadyAttached { igw: String, vpc: String },
    /// DeleteRoute of a destination the table has no route for.
    #[error("no route with destination-cidr-block {destination} in route table {table}")]
    RouteNotFound { table: String, destination: Ipv4Net },
    /// ReplaceRoute of a destination the table has no route for (EC2 answers it as a bad
    /// parameter, not as InvalidRoute.NotFound).
    #[error("there is no route defined for '{0}' in the route table; use CreateRoute instead")]
    NoRouteToReplace(Ipv4Net),
    /// A route to a gateway that does not exist.
    #[error("the gateway ID '{0}' does not exist")]
    GatewayNotFound(String),
    /// A route to an internet gateway that is not attached to the route table's VPC.
    #[error("route table {table} and network gateway {igw} belong to different networks")]
    GatewayOtherNetwork { table: String, igw: String },
    /// The local route exists as long as the VPC does.
    #[error("cannot delete or replace the local route {0}")]
    LocalRouteImmutable(Ipv4Net),
    /// From the guide, "Endpoint Limitations": "You cannot tag an endpoint."
    #[error("cannot tag {0}: You cannot tag an endpoint")]
    CannotTagEndpoint(String),
    /// A RemoveRouteTableId that the endpoint does not use.
    #[error("route table {table} is not associated with endpoint {endpoint}")]
    EndpointTableNotAssociated { endpoint: String, table: String },
    /// The same route table both added to and removed from an endpoint in one request.
    #[error("route table {0} cannot be both added and removed")]
    TableAddedAndRemoved(String),
    /// No address left for a new instance.
    #[error("there are not enough free addresses in subnet {0}")]
    SubnetFull(String),
    /// No public IP left in 203.0.113.0/24.
    #[error("there are no free public IPs left in 203.0.113.0/24")]
    NoFreePublicIp,
    /// A VPC without a main route table (a lab-file VPC that names no route table) cannot take
    /// implicitly associated subnets.
    #[error("VPC {0} has no main route table")]
    NoMainRouteTable(String),
    /// A tag key AWS refuses (empty, over 127 characters, or starting with `aws:`), or a value
    /// over 256 characters.
    #[error(
        "invalid tag '{0}': keys are 1 to 127 characters and may not begin with 'aws:', values at most 256"
    )]
    InvalidTag(String),
    /// A protocol a rule cannot name: not -1/all, tcp, udp, icmp, icmpv6 or a number 0..=255.
    #[error(
        "invalid value '{0}' for IP protocol: unknown protocol (use -1, tcp, udp, icmp, icmpv6 or a protocol number 0-255)"
    )]
    InvalidProtocol(String),
    /// A port range (tcp/udp: 0..=65535, from <= to) or ICMP type/code (-1..=255) AWS refuses.
    #[error(
        "invalid port range {0}: tcp and udp need from <= to within 0-65535; icmp takes a type and code within -1..255"
    )]
    InvalidPortRange(String),
    #[error("the value '{0}' is not a valid CIDR block")]
    InvalidCidr(String),
    #[error("the security group '{0}' does not exist")]
    SecurityGroupNotFound(String),
    /// A security group rule id (`sgr-…`) that no group has.
    #[error("the security group rule ID '{0}' does not exist")]
    SecurityGroupRuleNotFound(String),
    #[error("the security group '{name}' already exists for VPC '{vpc}'")]
    SecurityGroupDuplicate { name: String, vpc: String },
    /// Empty, too long, non-ASCII, `default`, or starting with `sg-`.
    #[error(
        "invalid security group name '{0}': 1 to 255 ASCII characters, not 'default' and not starting with 'sg-'"
    )]
    InvalidGroupName(String),
    #[error("invalid security group description '{0}': 1 to 255 ASCII characters")]
    InvalidGroupDescription(String),
    /// A group of another VPC named by an instance or by a rule.
    #[error("security group {group} and VPC {vpc} belong to different networks")]
    SecurityGroupOtherVpc { group: String, vpc: String },
    /// The default group exists as long as its VPC.
    #[error("the default security group '{0}' cannot be deleted")]
    CannotDeleteDefaultGroup(String),
    /// An instance must be in at least one group.
    #[error("instance {0} must be in at least one security group")]
    NoSecurityGroups(String),
    #[error("the specified rule \"{rule}\" already exists in the {direction} rules of {group}")]
    DuplicatePermission { group: String, direction: &'static str, rule: String },
    #[error("the specified rule \"{rule}\" does not exist in the {direction} rules of {group}")]
    PermissionNotFound { group: String, direction: &'static str, rule: String },
    #[error("the networkAcl ID '{0}' does not exist")]
    NetworkAclNotFound(String),
    #[error("the network ACL entry {rule} ({direction}) already exists in {acl}")]
    NetworkAclEntryExists { acl: String, rule: u16, direction: &'static str },
    #[error("no {direction} entry with rule number {rule} in network ACL {acl}")]
    NetworkAclEntryNotFound { acl: String, rule: u16, direction: &'static str },
    #[error("invalid rule number {0}: network ACL rule numbers go from 1 to 32766")]
    InvalidRuleNumber(i64),
    #[error("invalid rule action '{0}': use allow or deny")]
    InvalidRuleAction(String),
    /// From the guide, "Endpoint Limitations".
    #[error(
        "'{0}': You cannot use prefix list IDs to create an outbound rule in a network ACL that \
         allows or denies outbound traffic to the service specified in an endpoint. Instead, you \
         can use a prefix list ID in an outbound security group rule."
    )]
    PrefixListInNetworkAcl(String),
    #[error("the default network ACL '{0}' cannot be deleted")]
    CannotDeleteDefaultAcl(String),
    #[error("network ACL {acl} does not belong to VPC {vpc}")]
    NetworkAclOtherVpc { acl: String, vpc: String },
    /// A subnet given to two network ACLs (a lab file).
    #[error("subnet {subnet} is already associated with network ACL {acl}")]
    SubnetAclConflict { subnet: String, acl: String },
    #[error("the allocation ID '{0}' does not exist")]
    AllocationNotFound(String),
    #[error("the NAT gateway '{0}' was not found")]
    NatGatewayNotFound(String),
    /// An Elastic IP already associated (with another instance without AllowReassociation, or
    /// given to a NAT gateway).
    #[error("the Elastic IP {0} is already associated")]
    EipAlreadyAssociated(String),
    /// An Elastic IP a NAT gateway uses cannot move or be disassociated.
    #[error("the Elastic IP {allocation_id} is in use by NAT gateway {nat}")]
    EipUsedByNat { allocation_id: String, nat: String },
    /// ReleaseAddress of an associated address.
    #[error("the address with allocation id {0} is in use: disassociate it first")]
    EipInUse(String),
    /// A route to a NAT gateway or instance of another VPC.
    #[error("route target {target} is not in VPC {vpc}")]
    TargetOtherVpc { target: String, vpc: String },
    /// A rule description outside EC2's length or character set.
    #[error(
        "invalid rule description '{0}': valid descriptions are strings less than 256 characters \
         from the following set: a-zA-Z0-9. _-:/()#,@[]+=&;{{}}!$*"
    )]
    InvalidRuleDescription(String),
    /// AWS's quota: 60 inbound and 60 outbound rules per security group, each CIDR, prefix
    /// list or group pair of a permission one rule.
    #[error(
        "the maximum number of rules per security group has been reached: {group} would have \
         {count} {direction} rules (the quota is {max})"
    )]
    RulesPerSecurityGroupLimitExceeded {
        group: String,
        direction: &'static str,
        count: usize,
        max: usize,
    },
    /// AWS's quota: 5 security groups per network interface (`group` is the first one over).
    #[error(
        "the maximum number of security groups per interface has been reached: {group} would be \
         group {count} of {instance} (the quota is {max})"
    )]
    SecurityGroupsPerInterfaceLimitExceeded {
        instance: String,
        group: String,
        count: usize,
        max: usize,
    },
    /// AWS's quota: 20 rules per network ACL and direction, the `*` entry not counted.
    #[error(
        "the maximum number of network acl entries has been reached: {acl} has {max} {direction} \
         entries (the quota, not counting the default entry)"
    )]
    NetworkAclEntryLimitExceeded { acl: String, direction: &'static str, max: usize },
    /// Two copies of one fact that disagree (a subnet's implicit association and its VPC's main
    /// table, an Elastic IP and its instance's public IP, …): only a world read from disk, not
    /// built by these methods, can hold it (see [`crate::model::World::check`]).
    #[error("{0}")]
    Inconsistent(String),
}
