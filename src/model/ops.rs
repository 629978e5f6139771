//! The mutations the EC2 API needs beyond building a world: deletions, route table associations,
//! route replacement, gateway attachment, endpoint modification, instances and tags. Every
//! method validates first and changes nothing on error.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{
    ModelError, PUBLIC_IP_RANGE, Route, Target, World, check_id, validate_endpoint_policy,
};

/// What ModifyVpcEndpoint does to the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    Keep,
    /// `ResetPolicy=true`: back to the default full-access policy.
    Reset,
    Set(String),
}

/// The kinds of resource an id can name, by prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Vpc,
    Subnet,
    RouteTable,
    InternetGateway,
    Instance,
    VpcEndpoint,
    PrefixList,
    SecurityGroup,
    /// `sgr-`: a rule of a security group (taggable, as in EC2).
    SecurityGroupRule,
    NetworkAcl,
    NatGateway,
    ElasticIp,
}

impl ResourceKind {
    /// The kind an id names by its prefix (`vpc-`, `subnet-`, …), if any.
    pub fn of(id: &str) -> Option<ResourceKind> {
        let prefix = id.split_once('-')?.0;
        Some(match prefix {
            "vpc" => ResourceKind::Vpc,
            "subnet" => ResourceKind::Subnet,
            "rtb" => ResourceKind::RouteTable,
            "igw" => ResourceKind::InternetGateway,
            "i" => ResourceKind::Instance,
            "vpce" => ResourceKind::VpcEndpoint,
            "pl" => ResourceKind::PrefixList,
            "sg" => ResourceKind::SecurityGroup,
            "sgr" => ResourceKind::SecurityGroupRule,
            "acl" => ResourceKind::NetworkAcl,
            "nat" => ResourceKind::NatGateway,
            "eipalloc" => ResourceKind::ElasticIp,
            _ => return None,
        })
    }

    /// The `resourceType` DescribeTags shows.
    pub fn aws_name(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::RouteTable => "route-table",
            ResourceKind::InternetGateway => "internet-gateway",
            ResourceKind::Instance => "instance",
            ResourceKind::VpcEndpoint => "vpc-endpoint",
            ResourceKind::PrefixList => "prefix-list",
            ResourceKind::SecurityGroup => "security-group",
            ResourceKind::SecurityGroupRule => "security-group-rule",
            ResourceKind::NetworkAcl => "network-acl",
            ResourceKind::NatGateway => "natgateway",
            ResourceKind::ElasticIp => "elastic-ip",
        }
    }
}

/// A bijective 64-bit mix (splitmix64's finalizer): consecutive counters give random-looking,
/// never-colliding ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `n`th security-group rule id, `sgr-0` and 16 hex digits (its own counter, so that rules
/// do not shift the ids of other resources; `mix` is a bijection, so ids never repeat).
pub(super) fn rule_id(n: u64) -> String {
    format!("sgr-0{:016x}", mix(n ^ 0x5347_5255_4c45_5331))
}

impl World {
    /// A new id in AWS's long form, `<prefix>-0` and 16 hex digits (17 in all, like
    /// `vpc-0a1b2c3d4e5f67890`), from the world's counter: deterministic, never reused.
    pub fn generate_id(&mut self, prefix: &str) -> String {
        loop {
            let n = self.next_id;
            self.next_id += 1;
            let id = format!("{prefix}-0{:016x}", mix(n));
            if self.check_unique(&id).is_ok() {
                return id;
            }
        }
    }

    pub fn instance(&self, id: &str) -> Option<&crate::model::Instance> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// The VPC's main route table.
    pub fn main_route_table(&self, vpc: &str) -> Option<&str> {
        self.vpc(vpc)?.main_route_table.as_deref()
    }

    /// Whether an id exists (by its prefix's kind); the kind's NotFound or MalformedId error
    /// otherwise. Ids of no known kind are malformed resource ids.
    pub fn check_exists(&self, id: &str) -> Result<ResourceKind, ModelError> {
        let malformed = || ModelError::MalformedId { kind: "resource", id: id.to_string() };
        let kind = ResourceKind::of(id).ok_or_else(malformed)?;
        let (name, prefix, found, not_found): (_, _, bool, fn(String) -> ModelError) = match kind {
            ResourceKind::Vpc => ("vpc", "vpc-", self.vpc(id).is_some(), ModelError::VpcNotFound),
            ResourceKind::Subnet => {
                ("subnet", "subnet-", self.subnet(id).is_some(), ModelError::SubnetNotFound)
            }
            ResourceKind::RouteTable => (
                "route table",
                "rtb-",
                self.route_table(id).is_some(),
                ModelError::RouteTableNotFound,
            ),
            ResourceKind::InternetGateway => {
                ("internet gateway", "igw-", self.igw(id).is_some(), ModelError::IgwNotFound)
            }
            ResourceKind::Instance => {
                ("instance", "i-", self.instance(id).is_some(), ModelError::InstanceNotFound)
            }
            ResourceKind::VpcEndpoint => {
                ("vpc endpoint", "vpce-", self.endpoint(id).is_some(), ModelError::EndpointNotFound)
            }
            ResourceKind::PrefixList => (
                "prefix list",
                "pl-",
                self.prefix_list(id).is_some(),
                ModelError::PrefixListNotFound,
            ),
            ResourceKind::SecurityGroup => (
                "security group",
                "sg-",
                self.security_group(id).is_some(),
                ModelError::SecurityGroupNotFound,
            ),
            ResourceKind::SecurityGroupRule => (
                "security group rule",
                "sgr-",
                self.security_group_rule(id).is_some(),
                ModelError::SecurityGroupRuleNotFound,
            ),
            ResourceKind::NetworkAcl => (
                "network acl",
                "acl-",
                self.network_acl(id).is_some(),
                ModelError::NetworkAclNotFound,
            ),
            ResourceKind::NatGateway => (
                "nat gateway",
                "nat-",
                self.nat_gateway(id).is_some(),
                ModelError::NatGatewayNotFound,
            ),
            ResourceKind::ElasticIp => (
                "elastic ip allocation",
                "eipalloc-",
                self.elastic_ip(id).is_some(),
                ModelError::AllocationNotFound,
            ),
        };
        check_id(name, prefix, id)?;
        if found { Ok(kind) } else { Err(not_found(id.to_string())) }
    }

    /// Deletes a VPC and its main route table. AWS refuses while subnets, an attached internet
    /// gateway, endpoints or other route tables remain.
    pub fn delete_vpc(&mut self, id: &str) -> Result<(), ModelError> {
        check_id("vpc", "vpc-", id)?;
        let vpc = self.vpc(id).ok_or_else(|| ModelError::VpcNotFound(id.to_string()))?;
        let main = vpc.main_route_table.clone();
        let dep = |reason: String| ModelError::DependencyViolation {
            kind: "vpc",
            id: id.to_string(),
            reason,
        };
        if let Some(s) = self.subnets.iter().find(|s| s.vpc == id) {
            return Err(dep(format!("subnet {} is in it", s.id)));
        }
        if let Some(g) = self.internet_gateways.iter().find(|g| g.vpc.as_deref() == Some(id)) {
            return Err(dep(format!("internet gateway {} is attached to it", g.id)));
        }
        if let Some(e) = self.endpoints.iter().find(|e| e.vpc == id) {
            return Err(dep(format!("endpoint {} is in it", e.id)));
        }
        if let Some(t) =
            self.route_tables.iter().find(|t| t.vpc == id && Some(&t.id) != main.as_ref())
        {
            return Err(dep(format!("route table {} is in it", t.id)));
        }
        self.check_vpc_filters_deletable(id)?;
        self.remove_vpc_filters(id);
        self.route_tables.retain(|t| t.vpc != id);
        self.vpcs.retain(|v| v.id != id);
        self.tags.remove(id);
        if let Some(m) = main {
            self.tags.remove(&m);
        }
        Ok(())
    }

    /// Deletes a subnet without instances.
    pub fn delete_subnet(&mut self, id: &str) -> Result<(), ModelError> {
        check_id("subnet", "subnet-", id)?;
        let subnet = self
            .subnets
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| ModelError::SubnetNotFound(id.to_string()))?;
        if let Some(i) = self.instances.iter().find(|i| i.subnet == subnet.id) {
            return Err(ModelError::DependencyViolation {
                kind: "subnet",
                id: id.to_string(),
                reason: format!("instance {} is in it", i.id),
            });
        }
        if let Some(n) = self.live_nat_gateways().find(|n| n.subnet == subnet.id) {
            return Err(ModelError::DependencyViolation {
                kind: "subnet",
                id: id.to_string(),
                reason: format!("NAT gateway {} is in it", n.id),
            });
        }
        self.subnets.retain(|s| s.id != id);
        self.forget_subnet_acl(id);
        self.tags.remove(id);
        Ok(())
    }

    /// Creates a route table in a VPC (with only the local route). Returns nothing: the caller
    /// chose the id (see [`World::generate_id`]).
    pub fn create_route_table(&mut self, id: &str, vpc: &str) -> Result<(), ModelError> {
        check_id("vpc", "vpc-", vpc)?;
        self.add_route_table(id, vpc)
    }

    /// Deletes a route table that is neither main nor explicitly associated with a subnet. The
    /// table leaves the endpoints that used it (their endpoint route goes with it).
    pub fn delete_route_table(&mut self, id: &str) -> Result<(), ModelError> {
        check_id("route table", "rtb-", id)?;
        let rt = self.route_table(id).ok_or_else(|| ModelError::RouteTableNotFound(id.into()))?;
        let dep = |reason: String| ModelError::DependencyViolation {
            kind: "route table",
            id: id.to_string(),
            reason,
        };
        if self.main_route_table(&rt.vpc) == Some(id) {
            return Err(dep(format!("it is the main route table of {}", rt.vpc)));
        }
        if let Some(s) = self.subnets.iter().find(|s| s.route_table == id) {
            return Err(dep(format!("it is associated with subnet {}", s.id)));
        }
        self.route_tables.retain(|t| t.id != id);
        for e in &mut self.endpoints {
            e.route_tables.retain(|t| t != id);
        }
        self.tags.remove(id);
        Ok(())
    }

    /// Explicitly associates a subnet (that has no explicit association yet) with a table of
    /// its VPC. Returns the new association id.
    pub fn associate_route_table(
        &mut self,
        table: &str,
        subnet: &str,
    ) -> Result<String, ModelError> {
        check_id("route table", "rtb-", table)?;
        check_id("subnet", "subnet-", subnet)?;
        let rt =
            self.route_table(table).ok_or_else(|| ModelError::RouteTableNotFound(table.into()))?;
        let s = self
            .subnets
            .iter()
            .find(|s| s.id == subnet)
            .ok_or_else(|| ModelError::SubnetNotFound(subnet.into()))?;
        if rt.vpc != s.vpc {
            return Err(ModelError::RouteTableOtherVpc { table: table.into(), vpc: s.vpc.clone() });
        }
        if let Some(a) = &s.association_id {
            return Err(ModelError::SubnetAlreadyAssociated {
                subnet: subnet.into(),
                table: s.route_table.clone(),
                association: a.clone(),
            });
        }
        let assoc = self.generate_id("rtbassoc");
        if let Some(s) = self.subnets.iter_mut().find(|s| s.id == subnet) {
            s.route_table = table.to_string();
            s.association_id = Some(assoc.clone());
        }
        Ok(assoc)
    }

    /// Removes a subnet's explicit association: the subnet falls back to the main table. The
    /// main association itself cannot be removed.
    pub fn disassociate_route_table(&mut self, association: &str) -> Result<(), ModelError> {
        check_id("association", "rtbassoc-", association)?;
        if self.vpcs.iter().any(|v| v.main_association_id.as_deref() == Some(association)) {
            return Err(ModelError::CannotDisassociateMain(association.into()));
        }
        let s = self
            .subnets
            .iter()
            .find(|s| s.association_id.as_deref() == Some(association))
            .ok_or_else(|| ModelError::AssociationNotFound(association.into()))?;
        let main = self
            .main_route_table(&s.vpc)
            .ok_or_else(|| ModelError::NoMainRouteTable(s.vpc.clone()))?
            .to_string();
        if let Some(s) =
            self.subnets.iter_mut().find(|s| s.association_id.as_deref() == Some(association))
        {
            s.route_table = main;
            s.association_id = None;
        }
        Ok(())
    }

    /// Points an association (a subnet's, or the VPC's main one) at another table of the same
    /// VPC. Replacing the main association makes `table` the main table: every implicitly
    /// associated subnet follows it. Returns the new association id.
    pub fn replace_route_table_association(
        &mut self,
        association: &str,
        table: &str,
    ) -> Result<String, ModelError> {
        check_id("association", "rtbassoc-", association)?;
        check_id("route table", "rtb-", table)?;
        let rt =
            self.route_table(table).ok_or_else(|| ModelError::RouteTableNotFound(table.into()))?;
        let rt_vpc = rt.vpc.clone();
        if let Some(vpc) =
            self.vpcs.iter().find(|v| v.main_association_id.as_deref() == Some(association))
        {
            let vpc_id = vpc.id.clone();
            if rt_vpc != vpc_id {
                return Err(ModelError::RouteTableOtherVpc { table: table.into(), vpc: vpc_id });
            }
            let new = self.generate_id("rtbassoc");
            if let Some(v) = self.vpcs.iter_mut().find(|v| v.id == vpc_id) {
                v.main_route_table = Some(table.into());
                v.main_association_id = Some(new.clone());
            }
            for s in
                self.subnets.iter_mut().filter(|s| s.vpc == vpc_id && s.association_id.is_none())
            {
                s.route_table = table.into();
            }
            return Ok(new);
        }
        let s = self
            .subnets
            .iter()
            .find(|s| s.association_id.as_deref() == Some(association))
            .ok_or_else(|| ModelError::AssociationNotFound(association.into()))?;
        if s.vpc != rt_vpc {
            return Err(ModelError::RouteTableOtherVpc { table: table.into(), vpc: s.vpc.clone() });
        }
        let new = self.generate_id("rtbassoc");
        if let Some(s) =
            self.subnets.iter_mut().find(|s| s.association_id.as_deref() == Some(association))
        {
            s.route_table = table.into();
            s.association_id = Some(new.clone());
        }
        Ok(new)
    }

    /// Replaces the target of an existing user route (same checks as [`World::add_route`]).
    pub fn replace_route(&mut self, table: &str, route: Route) -> Result<(), ModelError> {
        let destination = route.destination.trunc();
        let rt =
            self.route_table(table).ok_or_else(|| ModelError::RouteTableNotFound(table.into()))?;
        if matches!(route.target, Target::Vpce(_)) {
            // From the guide: "You cannot explicitly add, modify, or delete an endpoint route in
            // your route table by using the route table APIs".
            return Err(ModelError::ExplicitEndpointRoute);
        }
        if self.vpc(&rt.vpc).is_some_and(|v| v.cidr == destination) {
            return Err(ModelError::LocalRouteImmutable(destination));
        }
        if !rt.routes.iter().any(|r| r.destination == destination) {
            return Err(ModelError::NoRouteToReplace(destination));
        }
        // Validate the new target through add_route on a scratch table state.
        let mut scratch = self.clone();
        if let Some(t) = scratch.route_tables.iter_mut().find(|t| t.id == table) {
            t.routes.retain(|r| r.destination != destination);
        }
        scratch.add_route(table, Route { destination, target: route.target.clone() })?;
        if let Some(t) = self.route_tables.iter_mut().find(|t| t.id == table)
            && let Some(r) = t.routes.iter_mut().find(|r| r.destination == destination)
        {
            r.target = route.target;
        }
        Ok(())
    }

    /// Deletes a user route. The local route cannot be deleted; endpoint routes are not user
    /// routes (see [`ModelError::ExplicitEndpointRoute`]).
    pub fn delete_route(&mut self, table: &str, destination: Ipv4Net) -> Result<(), ModelError> {
        let destination = destination.trunc();
        let rt =
            self.route_table(table).ok_or_else(|| ModelError::RouteTableNotFound(table.into()))?;
        if self.vpc(&rt.vpc).is_some_and(|v| v.cidr == destination) {
            return Err(ModelError::LocalRouteImmutable(destination));
        }
        if !rt.routes.iter().any(|r| r.destination == destination) {
            return Err(ModelError::RouteNotFound { table: table.into(), destination });
        }
        if let Some(t) = self.route_tables.iter_mut().find(|t| t.id == table) {
            t.routes.retain(|r| r.destination != destination);
        }
        Ok(())
    }

    /// Attaches a detached internet gateway to a VPC that has none.
    pub fn attach_internet_gateway(&mut self, igw: &str, vpc: &str) -> Result<(), ModelError> {
        check_id("internet gateway", "igw-", igw)?;
        check_id("vpc", "vpc-", vpc)?;
        let g = self.igw(igw).ok_or_else(|| ModelError::IgwNotFound(igw.into()))?;
        self.vpc(vpc).ok_or_else(|| ModelError::VpcNotFound(vpc.into()))?;
        if let Some(v) = &g.vpc {
            return Err(ModelError::IgwAlreadyAttached { igw: igw.into(), vpc: v.clone() });
        }
        if let Some(other) = self.internet_gateways.iter().find(|g| g.vpc.as_deref() == Some(vpc)) {
            return Err(ModelError::VpcAlreadyHasIgw { vpc: vpc.into(), igw: other.id.clone() });
        }
        if let Some(g) = self.internet_gateways.iter_mut().find(|g| g.id == igw) {
            g.vpc = Some(vpc.into());
        }
        Ok(())
    }

    /// Detaches an internet gateway. Like AWS, refused while instances of the VPC have public
    /// IPs ("Network vpc-… has some mapped public address(es)"). Routes to it become blackholes.
    pub fn detach_internet_gateway(&mut self, igw: &str, vpc: &str) -> Result<(), ModelError> {
        check_id("internet gateway", "igw-", igw)?;
        check_id("vpc", "vpc-", vpc)?;
        let g = self.igw(igw).ok_or_else(|| ModelError::IgwNotFound(igw.into()))?;
        self.vpc(vpc).ok_or_else(|| ModelError::VpcNotFound(vpc.into()))?;
        if g.vpc.as_deref() != Some(vpc) {
            return Err(ModelError::IgwNotAttached { igw: igw.into(), vpc: vpc.into() });
        }
        if let Some(i) = self.instances_in_vpc(vpc).find(|i| i.public_ip.is_some()) {
            return Err(ModelError::MappedPublicAddresses {
                vpc: vpc.into(),
                instance: i.id.clone(),
            });
        }
        if let Some(g) = self.internet_gateways.iter_mut().find(|g| g.id == igw) {
            g.vpc = None;
        }
        Ok(())
    }

    /// Deletes a detached internet gateway.
    pub fn delete_internet_gateway(&mut self, igw: &str) -> Result<(), ModelError> {
        check_id("internet gateway", "igw-", igw)?;
        let g = self.igw(igw).ok_or_else(|| ModelError::IgwNotFound(igw.into()))?;
        if let Some(v) = &g.vpc {
            return Err(ModelError::DependencyViolation {
                kind: "internet gateway",
                id: igw.into(),
                reason: format!("it is attached to {v}"),
            });
        }
        self.internet_gateways.retain(|g| g.id != igw);
        self.tags.remove(igw);
        self.remember_if_routed(&Target::Igw(igw.into()));
        Ok(())
    }

    /// ModifyVpcEndpoint: adds and removes route tables (the guide: "After you've created an
    /// endpoint, you can modify the policy that's attached to your endpoint, and add or remove
    /// the route tables that are used by the endpoint") and changes the policy. Adding a table
    /// the endpoint already uses is a no-op.
    pub fn modify_endpoint(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
        policy: PolicyChange,
    ) -> Result<(), ModelError> {
        check_id("vpc endpoint", "vpce-", id)?;
        let ep = self.endpoint(id).ok_or_else(|| ModelError::EndpointNotFound(id.into()))?;
        for t in add.iter().chain(remove) {
            check_id("route table", "rtb-", t)?;
        }
        if let Some(t) = add.iter().find(|t| remove.contains(t)) {
            return Err(ModelError::TableAddedAndRemoved(t.clone()));
        }
        for t in remove {
            self.route_table(t).ok_or_else(|| ModelError::RouteTableNotFound(t.clone()))?;
            if !ep.route_tables.contains(t) {
                return Err(ModelError::EndpointTableNotAssociated {
                    endpoint: id.into(),
                    table: t.clone(),
                });
            }
        }
        for (i, t) in add.iter().enumerate() {
            if add[..i].contains(t) {
                return Err(ModelError::DuplicateId(t.clone()));
            }
            self.check_endpoint_association(&ep.vpc, &ep.service, &ep.id, t)?;
        }
        if let PolicyChange::Set(p) = &policy {
            validate_endpoint_policy(p)?;
        }
        if let Some(ep) = self.endpoints.iter_mut().find(|e| e.id == id) {
            ep.route_tables.retain(|t| !remove.contains(t));
            for t in add {
                if !ep.route_tables.contains(t) {
                    ep.route_tables.push(t.clone());
                }
            }
            match policy {
                PolicyChange::Keep => {}
                PolicyChange::Reset => ep.policy = None,
                PolicyChange::Set(p) => ep.policy = Some(p),
            }
        }
        Ok(())
    }

    /// Deletes an endpoint. The guide: "Deleting an endpoint also deletes the endpoint routes in
    /// the route tables that were used by the endpoint" (they are derived, so they go with it).
    pub fn delete_endpoint(&mut self, id: &str) -> Result<(), ModelError> {
        check_id("vpc endpoint", "vpce-", id)?;
        self.endpoint(id).ok_or_else(|| ModelError::EndpointNotFound(id.into()))?;
        self.endpoints.retain(|e| e.id != id);
        Ok(())
    }

    /// Terminates an instance at `now` (Unix seconds): it is removed, and listed as terminated
    /// for [`crate::model::TERMINATED_VISIBLE_SECS`]; records older than that are dropped.
    pub fn terminate_instance(&mut self, id: &str, now: u64) -> Result<(), ModelError> {
        let i = self.remove_instance(id)?;
        let visible = crate::model::TERMINATED_VISIBLE_SECS;
        let expired: Vec<String> = self
            .terminated_instances
            .iter()
            .filter(|t| now.saturating_sub(t.terminated_at) >= visible)
            .map(|t| t.id.clone())
            .collect();
        if !expired.is_empty() {
            self.terminated_instances.retain(|t| now.saturating_sub(t.terminated_at) < visible);
            for id in expired {
                self.remember_if_routed(&Target::Instance(id));
            }
        }
        self.terminated_instances.push(crate::model::TerminatedInstance {
            id: i.id,
            image_id: i.image_id,
            instance_type: i.instance_type,
            terminated_at: now,
            reservation: i.reservation,
            launched_at: i.launched_at,
            client_token: i.client_token,
        });
        Ok(())
    }

    /// Keeps the id of a target that is gone if a route still names it (see
    /// [`World::gone_targets`]).
    fn remember_if_routed(&mut self, target: &Target) {
        if self.route_tables.iter().any(|t| t.routes.iter().any(|r| &r.target == target)) {
            self.gone_targets.insert(target.to_string());
        }
    }

    /// For a world saved before [`World::gone_targets`] was kept (its world.json has no such
    /// field): every internet gateway or instance a route names that the world no longer has
    /// went while the route named it (the EC2 handlers never let a route name one that does
    /// not exist), so it is taken for gone, and the route stays a blackhole as it was. A world
    /// saved since keeps these ids itself, and [`World::check`] refuses an unaccounted one.
    pub fn adopt_gone_targets(&mut self) {
        let gone: Vec<String> = self
            .route_tables
            .iter()
            .flat_map(|t| t.routes.iter())
            .filter_map(|r| match &r.target {
                Target::Igw(id) if self.igw(id).is_none() => Some(id.clone()),
                Target::Instance(id)
                    if self.instance(id).is_none()
                        && !self.terminated_instances.iter().any(|t| &t.id == id) =>
                {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect();
        self.gone_targets.extend(gone);
    }

    /// A terminated instance still listed at `now`.
    pub fn terminated_instance(
        &self,
        id: &str,
        now: u64,
    ) -> Option<&crate::model::TerminatedInstance> {
        self.terminated_instances.iter().find(|t| {
            t.id == id
                && now.saturating_sub(t.terminated_at) < crate::model::TERMINATED_VISIBLE_SECS
        })
    }

    /// Removes an instance and returns it.
    pub fn remove_instance(&mut self, id: &str) -> Result<crate::model::Instance, ModelError> {
        check_id("instance", "i-", id)?;
        let pos = self
            .instances
            .iter()
            .position(|i| i.id == id)
            .ok_or_else(|| ModelError::InstanceNotFound(id.into()))?;
        self.tags.remove(id);
        // Its Elastic IP stays allocated, disassociated (as when AWS terminates an instance).
        for e in self.elastic_ips.iter_mut().filter(|e| e.instance.as_deref() == Some(id)) {
            e.instance = None;
            e.association_id = None;
        }
        Ok(self.instances.remove(pos))
    }

    /// The first address of a subnet that AWS would hand out (after the four reserved ones) and
    /// that no instance of the VPC uses.
    pub fn next_free_private_ip(&self, subnet: &str) -> Result<Ipv4Addr, ModelError> {
        let s = self.subnet(subnet).ok_or_else(|| ModelError::SubnetNotFound(subnet.into()))?;
        let first = u32::from(s.cidr.network()) + 4;
        let last = u32::from(s.cidr.broadcast());
        (first..last)
            .map(Ipv4Addr::from)
            .find(|ip| !self.private_ip_in_use(&s.vpc, *ip))
            .ok_or_else(|| ModelError::SubnetFull(s.id.clone()))
    }

    /// The first unused public IP of 203.0.113.0/24 (network and broadcast excluded).
    pub fn next_free_public_ip(&self) -> Result<Ipv4Addr, ModelError> {
        let first = u32::from(PUBLIC_IP_RANGE.network()) + 1;
        let last = u32::from(PUBLIC_IP_RANGE.broadcast());
        (first..last)
            .map(Ipv4Addr::from)
            .find(|ip| !self.public_ip_in_use(*ip))
            .ok_or(ModelError::NoFreePublicIp)
    }

    /// The tags of a resource, key → value.
    pub fn tags_of(&self, id: &str) -> Option<&BTreeMap<String, String>> {
        self.tags.get(id)
    }

    /// Adds or overwrites tags on existing resources. From the guide, "Endpoint Limitations":
    /// "You cannot tag an endpoint."
    pub fn create_tags(
        &mut self,
        resources: &[String],
        tags: &[(String, String)],
    ) -> Result<(), ModelError> {
        for r in resources {
            self.check_taggable(r)?;
        }
        for (k, v) in tags {
            check_tag(k, Some(v))?;
        }
        for r in resources {
            let entry = self.tags.entry(r.clone()).or_default();
            for (k, v) in tags {
                entry.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    /// Deletes tags: a key with `None` deletes the key whatever its value, with `Some(v)` only if
    /// the value is `v`. No keys at all deletes every tag of the resources.
    pub fn delete_tags(
        &mut self,
        resources: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<(), ModelError> {
        for r in resources {
            self.check_taggable(r)?;
        }
        for r in resources {
            let Some(entry) = self.tags.get_mut(r) else { continue };
            if tags.is_empty() {
                entry.clear();
            }
            for (k, v) in tags {
                if v.is_none() || entry.get(k) == v.as_ref() {
                    entry.remove(k);
                }
            }
            if entry.is_empty() {
                self.tags.remove(r);
            }
        }
        Ok(())
    }

    fn check_taggable(&self, id: &str) -> Result<(), ModelError> {
        match self.check_exists(id) {
            Ok(ResourceKind::VpcEndpoint) | Err(ModelError::EndpointNotFound(_)) => {
                Err(ModelError::CannotTagEndpoint(id.into()))
            }
            Ok(ResourceKind::PrefixList) => {
                Err(ModelError::MalformedId { kind: "resource", id: id.to_string() })
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// EC2's rules for a tag: a key of 1 to 127 characters not beginning with `aws:`, a value of at
/// most 256.
pub fn check_tag(key: &str, value: Option<&str>) -> Result<(), ModelError> {
    let key_ok = !key.is_empty() && key.chars().count() <= 127 && !key.starts_with("aws:");
    let value_ok = value.is_none_or(|v| v.chars().count() <= 256);
    if key_ok && value_ok { Ok(()) } else { Err(ModelError::InvalidTag(key.to_string())) }
}
