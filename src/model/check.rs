//! Whether a whole world keeps the invariants of [`super`]: for a world that no mutating method
//! built, one read from disk (a lab's `world.json` and its journal of route changes).
//!
//! The rules exist once. Each object is checked by the method that admits it (`add_subnet`,
//! `add_route`, `add_instance`, `authorize_security_group`, …) against a copy of the world that
//! lacks it (copies are cheap: collections are [`super::Shared`]); only what a stored world
//! adds to what those methods keep is checked here: copies of one fact that must agree (a
//! subnet's implicit association and its VPC's main table, an Elastic IP and its instance's
//! public IP, a NAT gateway's VPC and its subnet's) and ids that were generated, not given.
//!
//! What a world holds after API changes, and a method would no longer admit, passes: a route to
//! a detached or deleted internet gateway, a deleted NAT gateway or a terminated instance is a
//! blackhole, and is checked as one (its destination by `add_route`'s rules) once its target is
//! found among what is gone (a deleted NAT gateway stays listed, a terminated instance is listed
//! for an hour, then, like a deleted gateway, its id stays in [`World::gone_targets`] while a
//! route names it).

use super::{
    ModelError, Route, Shared, Target, World, check_id, default_acl_id, filters::Direction,
};

/// A world that breaks one of the model's invariants: where (a path into the world as serialised,
/// `subnets[2].route_table`), the object's id, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} ({id}): {error}")]
pub struct Invalid {
    pub field: String,
    pub id: String,
    /// Boxed: an `Err` this size would make every `Result` of the check large.
    pub error: Box<ModelError>,
}

/// The field of a route that an error of `add_route` is about.
fn route_field(e: &ModelError) -> &'static str {
    match e {
        ModelError::RouteAlreadyExists { .. }
        | ModelError::InvalidCidr(_)
        | ModelError::RouteOverLocal(_)
        | ModelError::LocalRouteMismatch(_) => "destination",
        _ => "target",
    }
}

/// A copy of `v` without its `i`th element.
fn without<T: Clone>(v: &Shared<T>, i: usize) -> Shared<T> {
    v.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, x)| x.clone()).collect()
}

fn inconsistent(what: String) -> ModelError {
    ModelError::Inconsistent(what)
}

impl World {
    /// Checks every object of the world (see the module doc). A world saved before VPCs had
    /// default security groups and ACLs is checked as it loads, with them.
    pub fn check(&self) -> Result<(), Invalid> {
        let w = &*self.with_defaults();
        w.check_top()?;
        w.check_vpcs()?;
        for i in 0..w.internet_gateways.len() {
            w.check_internet_gateway(i)?;
        }
        for i in 0..w.route_tables.len() {
            w.check_route_table(i)?;
        }
        for i in 0..w.subnets.len() {
            w.check_subnet(i)?;
        }
        for i in 0..w.endpoints.len() {
            w.check_endpoint(i)?;
        }
        w.check_security_groups()?;
        w.check_network_acls()?;
        for i in 0..w.instances.len() {
            w.check_instance(i)?;
        }
        w.check_nat()?;
        w.check_rest()
    }

    fn check_top(&self) -> Result<(), Invalid> {
        let at = |field: &str, id: &str, error| Invalid {
            field: field.into(),
            id: id.into(),
            error: Box::new(error),
        };
        if let Err(e) = World::new(&self.lab, &self.region) {
            let field = if matches!(e, ModelError::UnknownRegion(_)) { "region" } else { "lab" };
            return Err(at(field, &self.lab, e));
        }
        for (i, p) in self.prefix_lists.iter().enumerate() {
            let at = |k: &str, e| at(&format!("prefix_lists[{i}].{k}"), &p.id, e);
            check_id("prefix list", "pl-", &p.id).map_err(|e| at("id", e))?;
            if self.prefix_lists[..i].iter().any(|q| q.id == p.id || q.name == p.name) {
                return Err(at("id", ModelError::DuplicateId(p.id.clone())));
            }
            if p.name != format!("com.amazonaws.{}.s3", p.region) {
                return Err(at("name", ModelError::InvalidServiceName(p.name.clone())));
            }
            if p.cidrs.is_empty() {
                return Err(at("cidrs", ModelError::EmptyPrefixList(p.id.clone())));
            }
        }
        for (i, id) in self.gone_targets.iter().enumerate() {
            let kind = ModelError::MalformedId { kind: "route target", id: id.clone() };
            let ok = check_id("", "igw-", id).is_ok() || check_id("", "i-", id).is_ok();
            if !ok {
                return Err(at(&format!("gone_targets[{i}]"), id, kind));
            }
        }
        Ok(())
    }

    fn check_vpcs(&self) -> Result<(), Invalid> {
        for (i, v) in self.vpcs.iter().enumerate() {
            let at = |k: &str, error| Invalid {
                field: format!("vpcs[{i}].{k}"),
                id: v.id.clone(),
                error: Box::new(error),
            };
            let scratch = World { vpcs: without(&self.vpcs, i), ..self.clone() };
            check_id("vpc", "vpc-", &v.id).map_err(|e| at("id", e))?;
            scratch.check_unique(&v.id).map_err(|e| at("id", e))?;
            super::check_vpc_cidr(v.cidr).map_err(|e| at("cidr", e))?;
            if v.cidr != v.cidr.trunc() {
                return Err(at("cidr", ModelError::InvalidCidr(v.cidr.to_string())));
            }
            match (&v.main_route_table, &v.main_association_id) {
                (Some(t), Some(a)) => {
                    let rt = self.route_table(t).ok_or_else(|| {
                        at("main_route_table", ModelError::RouteTableNotFound(t.clone()))
                    })?;
                    if rt.vpc != v.id {
                        let e =
                            ModelError::RouteTableOtherVpc { table: t.clone(), vpc: v.id.clone() };
                        return Err(at("main_route_table", e));
                    }
                    check_id("association", "rtbassoc-", a)
                        .map_err(|e| at("main_association_id", e))?;
                    scratch.check_unique(a).map_err(|e| at("main_association_id", e))?;
                }
                (None, None) if !self.route_tables.iter().any(|t| t.vpc == v.id) => {}
                (None, _) => {
                    return Err(at("main_route_table", ModelError::NoMainRouteTable(v.id.clone())));
                }
                (Some(_), None) => {
                    let e =
                        inconsistent(format!("VPC {} has a main table but no association", v.id));
                    return Err(at("main_association_id", e));
                }
            }
        }
        Ok(())
    }

    fn check_internet_gateway(&self, i: usize) -> Result<(), Invalid> {
        let g = &self.internet_gateways[i];
        let mut scratch =
            World { internet_gateways: without(&self.internet_gateways, i), ..self.clone() };
        scratch.add_internet_gateway(g.clone()).map_err(|e| {
            let k = match e {
                ModelError::VpcNotFound(_) | ModelError::VpcAlreadyHasIgw { .. } => "vpc",
                _ => "id",
            };
            Invalid {
                field: format!("internet_gateways[{i}].{k}"),
                id: g.id.clone(),
                error: Box::new(e),
            }
        })
    }

    /// Checks the `i`th route table and its routes.
    fn check_route_table(&self, i: usize) -> Result<(), Invalid> {
        let t = &self.route_tables[i];
        let at = |k: String, error| Invalid {
            field: format!("route_tables[{i}].{k}"),
            id: t.id.clone(),
            error: Box::new(error),
        };
        let mut scratch = World { route_tables: without(&self.route_tables, i), ..self.clone() };
        check_id("route table", "rtb-", &t.id).map_err(|e| at("id".into(), e))?;
        scratch.check_unique(&t.id).map_err(|e| at("id".into(), e))?;
        self.vpc(&t.vpc).ok_or_else(|| at("vpc".into(), ModelError::VpcNotFound(t.vpc.clone())))?;
        // The table's routes, each added by `add_route` after the ones before it.
        scratch.route_tables.push(super::RouteTable { routes: vec![], ..t.clone() });
        for (j, r) in t.routes.iter().enumerate() {
            let at = |e: ModelError| at(format!("routes[{j}].{}", route_field(&e)), e);
            if r.destination != r.destination.trunc() {
                return Err(at(ModelError::InvalidCidr(r.destination.to_string())));
            }
            let route = match self.gone_target(&r.target, &t.vpc).map_err(at)? {
                true => Route { destination: r.destination, target: Target::Blackhole },
                false => r.clone(),
            };
            scratch.add_route(&t.id, route).map_err(at)?;
        }
        Ok(())
    }

    /// Whether a route's target is one that no longer forwards but that the world still
    /// accounts for (see the module doc); an error if it is not accounted for.
    fn gone_target(&self, target: &Target, vpc: &str) -> Result<bool, ModelError> {
        if self.target_alive(target, vpc) {
            return Ok(false);
        }
        match target {
            Target::Igw(id) => {
                check_id("internet gateway", "igw-", id)?;
                if self.igw(id).is_none() && !self.gone_targets.contains(id) {
                    return Err(ModelError::GatewayNotFound(id.clone()));
                }
            }
            Target::Nat(id) => {
                check_id("nat gateway", "nat-", id)?;
                let nat = self
                    .nat_gateway(id)
                    .ok_or_else(|| ModelError::NatGatewayNotFound(id.clone()))?;
                if nat.vpc != vpc {
                    return Err(ModelError::TargetOtherVpc { target: id.clone(), vpc: vpc.into() });
                }
            }
            Target::Instance(id) => {
                check_id("instance", "i-", id)?;
                if self.instance(id).is_some() {
                    // Live, so alive unless in another VPC.
                    return Err(ModelError::TargetOtherVpc { target: id.clone(), vpc: vpc.into() });
                }
                let listed = self.terminated_instances.iter().any(|t| &t.id == id);
                if !listed && !self.gone_targets.contains(id) {
                    return Err(ModelError::InstanceNotFound(id.clone()));
                }
            }
            // A blackhole route is checked as it is; a vpce target is refused by add_route.
            Target::Blackhole | Target::Local | Target::Vpce(_) => return Ok(false),
        }
        Ok(true)
    }

    fn check_subnet(&self, i: usize) -> Result<(), Invalid> {
        let s = &self.subnets[i];
        let at = |k: &str, error| Invalid {
            field: format!("subnets[{i}].{k}"),
            id: s.id.clone(),
            error: Box::new(error),
        };
        let mut scratch = World { subnets: without(&self.subnets, i), ..self.clone() };
        if s.route_table.is_empty() {
            return Err(at("route_table", ModelError::RouteTableNotFound(String::new())));
        }
        if s.cidr != s.cidr.trunc() {
            return Err(at("cidr", ModelError::InvalidCidr(s.cidr.to_string())));
        }
        if let Some(a) = &s.association_id {
            check_id("association", "rtbassoc-", a).map_err(|e| at("association_id", e))?;
            scratch.check_unique(a).map_err(|e| at("association_id", e))?;
        }
        scratch.add_subnet(s.clone()).map_err(|e| {
            let k = match &e {
                ModelError::InvalidName(_) => "name",
                ModelError::DuplicateId(d) if *d == s.name => "name",
                ModelError::VpcNotFound(_) => "vpc",
                ModelError::InvalidSubnetCidr { .. } | ModelError::SubnetConflict { .. } => "cidr",
                ModelError::RouteTableNotFound(_) | ModelError::RouteTableOtherVpc { .. } => {
                    "route_table"
                }
                _ => "id",
            };
            at(k, e)
        })?;
        let main = self.main_route_table(&s.vpc);
        if s.association_id.is_none() && main != Some(s.route_table.as_str()) {
            let e = inconsistent(format!(
                "subnet {} has no explicit association but uses {}, not its VPC's main table {}",
                s.id,
                s.route_table,
                main.unwrap_or("(none)")
            ));
            return Err(at("route_table", e));
        }
        Ok(())
    }

    fn check_endpoint(&self, i: usize) -> Result<(), Invalid> {
        let ep = &self.endpoints[i];
        let mut scratch = World { endpoints: without(&self.endpoints, i), ..self.clone() };
        scratch.add_endpoint(ep.clone()).map_err(|e| {
            let table = |t: &str| ep.route_tables.iter().position(|x| x == t);
            let k = match &e {
                ModelError::VpcNotFound(_) => "vpc".into(),
                ModelError::InvalidServiceName(_) | ModelError::CrossRegionEndpoint { .. } => {
                    "service".into()
                }
                ModelError::InvalidPolicy(_) => "policy".into(),
                ModelError::DuplicateId(t)
                | ModelError::RouteTableNotFound(t)
                | ModelError::RouteTableOtherVpc { table: t, .. }
                | ModelError::EndpointServiceAlreadyInTable { table: t, .. }
                    if let Some(j) = table(t) =>
                {
                    // A duplicate is named by its second mention.
                    let j = match &e {
                        ModelError::DuplicateId(_) => {
                            ep.route_tables.iter().rposition(|x| x == t).unwrap_or(j)
                        }
                        _ => j,
                    };
                    format!("route_tables[{j}]")
                }
                _ => "id".into(),
            };
            Invalid { field: format!("endpoints[{i}].{k}"), id: ep.id.clone(), error: Box::new(e) }
        })
    }

    fn check_security_groups(&self) -> Result<(), Invalid> {
        for (i, g) in self.security_groups.iter().enumerate() {
            let at = |k: String, error| Invalid {
                field: format!("security_groups[{i}].{k}"),
                id: g.id.clone(),
                error: Box::new(error),
            };
            check_id("security group", "sg-", &g.id).map_err(|e| at("id".into(), e))?;
            if self.security_groups[..i].iter().any(|o| o.id == g.id) {
                return Err(at("id".into(), ModelError::DuplicateId(g.id.clone())));
            }
            self.vpc(&g.vpc)
                .ok_or_else(|| at("vpc".into(), ModelError::VpcNotFound(g.vpc.clone())))?;
            if self.security_groups[..i].iter().any(|o| o.vpc == g.vpc && o.name == g.name) {
                let e =
                    ModelError::SecurityGroupDuplicate { name: g.name.clone(), vpc: g.vpc.clone() };
                return Err(at("name".into(), e));
            }
            // Each rule as AuthorizeSecurityGroup* admits it, after the ones before it.
            let mut scratch = self.clone();
            for dir in [Direction::Ingress, Direction::Egress] {
                if let Some(s) = scratch.security_groups.iter_mut().find(|x| x.id == g.id) {
                    s.rules_mut(dir).clear();
                }
                for (j, r) in g.rules(dir).iter().enumerate() {
                    scratch
                        .authorize_rules(&g.id, dir, std::slice::from_ref(r), true)
                        .map_err(|e| at(format!("{}[{j}]", dir.name()), e))?;
                }
            }
        }
        Ok(())
    }

    fn check_network_acls(&self) -> Result<(), Invalid> {
        for (i, a) in self.network_acls.iter().enumerate() {
            let at = |k: String, error| Invalid {
                field: format!("network_acls[{i}].{k}"),
                id: a.id.clone(),
                error: Box::new(error),
            };
            check_id("network acl", "acl-", &a.id).map_err(|e| at("id".into(), e))?;
            if self.network_acls[..i].iter().any(|o| o.id == a.id) {
                return Err(at("id".into(), ModelError::DuplicateId(a.id.clone())));
            }
            self.vpc(&a.vpc)
                .ok_or_else(|| at("vpc".into(), ModelError::VpcNotFound(a.vpc.clone())))?;
            if a.is_default != (a.id == default_acl_id(&a.vpc)) {
                let e = inconsistent(format!(
                    "network ACL {} is_default is {}, but the default ACL of {} is {}",
                    a.id,
                    a.is_default,
                    a.vpc,
                    default_acl_id(&a.vpc)
                ));
                return Err(at("is_default".into(), e));
            }
            // Entries and associations as the API admits them, one after another.
            let mut scratch = self.clone();
            if let Some(s) = scratch.network_acls.iter_mut().find(|x| x.id == a.id) {
                s.entries.clear();
                s.associations.clear();
            }
            for (j, entry) in a.entries.iter().enumerate() {
                scratch
                    .add_network_acl_entry(&a.id, entry.clone())
                    .map_err(|e| at(format!("entries[{j}]"), e))?;
            }
            for (j, assoc) in a.associations.iter().enumerate() {
                let at = |k: &str, e| at(format!("associations[{j}].{k}"), e);
                check_id("network acl association", "aclassoc-", &assoc.id)
                    .map_err(|e| at("id", e))?;
                scratch.check_unique(&assoc.id).map_err(|e| at("id", e))?;
                if self.subnets.iter().all(|s| s.id != assoc.subnet) {
                    return Err(at("subnet", ModelError::SubnetNotFound(assoc.subnet.clone())));
                }
                let new = scratch
                    .associate_network_acl(&a.id, &assoc.subnet)
                    .map_err(|e| at("subnet", e))?;
                // The association keeps its own id.
                for x in scratch.network_acls.iter_mut().flat_map(|x| x.associations.iter_mut()) {
                    if x.id == new {
                        x.id = assoc.id.clone();
                    }
                }
            }
        }
        Ok(())
    }

    fn check_instance(&self, i: usize) -> Result<(), Invalid> {
        let inst = &self.instances[i];
        let at = |k: String, error| Invalid {
            field: format!("instances[{i}].{k}"),
            id: inst.id.clone(),
            error: Box::new(error),
        };
        // Without it, and without the Elastic IP that gave it its public IP (checked below).
        let eip = self.elastic_ips.iter().find(|e| e.instance.as_deref() == Some(inst.id.as_str()));
        let mut scratch = World {
            instances: without(&self.instances, i),
            elastic_ips: self
                .elastic_ips
                .iter()
                .filter(|e| e.instance.as_deref() != Some(inst.id.as_str()))
                .cloned()
                .collect(),
            ..self.clone()
        };
        if let Some(e) = eip
            && inst.public_ip != Some(e.public_ip)
        {
            let what = format!(
                "instance {} has public IP {:?}, but its Elastic IP {} is {}",
                inst.id, inst.public_ip, e.allocation_id, e.public_ip
            );
            return Err(at("public_ip".into(), inconsistent(what)));
        }
        if let (None, Some(ip), false) = (eip, inst.public_ip, inst.auto_public_ip) {
            let what = format!(
                "instance {} has public IP {ip}, which is no Elastic IP's, but EC2 assigned it \
                 none",
                inst.id
            );
            return Err(at("auto_public_ip".into(), inconsistent(what)));
        }
        scratch.add_instance(inst.clone()).map_err(|e| {
            let group = |g: &str| inst.security_groups.iter().position(|x| x == g);
            let k = match &e {
                ModelError::SecurityGroupNotFound(g)
                | ModelError::SecurityGroupOtherVpc { group: g, .. }
                | ModelError::MalformedId { id: g, .. }
                | ModelError::DuplicateId(g)
                | ModelError::SecurityGroupsPerInterfaceLimitExceeded { group: g, .. }
                    if let Some(j) = group(g) =>
                {
                    format!("security_groups[{j}]")
                }
                ModelError::SubnetNotFound(_) => "subnet".into(),
                ModelError::InvalidPublicIp(_) => "public_ip".into(),
                ModelError::AddressInUse(a) if Some(*a) == inst.public_ip => "public_ip".into(),
                ModelError::InvalidPrivateIp { .. } | ModelError::AddressInUse(_) => {
                    "private_ip".into()
                }
                _ => "id".into(),
            };
            at(k, e)
        })
    }

    /// Elastic IPs and NAT gateways.
    fn check_nat(&self) -> Result<(), Invalid> {
        for (i, n) in self.nat_gateways.iter().enumerate() {
            let at = |k: &str, error| Invalid {
                field: format!("nat_gateways[{i}].{k}"),
                id: n.id.clone(),
                error: Box::new(error),
            };
            let scratch = World { nat_gateways: without(&self.nat_gateways, i), ..self.clone() };
            check_id("nat gateway", "nat-", &n.id).map_err(|e| at("id", e))?;
            scratch.check_unique(&n.id).map_err(|e| at("id", e))?;
            if n.state == super::NatState::Deleted {
                // Its subnet, VPC and address may be gone since.
                continue;
            }
            // As CreateNatGateway admits it, its Elastic IP free again.
            let mut scratch = scratch;
            for e in scratch.elastic_ips.iter_mut().filter(|e| e.allocation_id == n.allocation_id) {
                e.nat_gateway = None;
                e.association_id = None;
            }
            let made = scratch
                .create_nat_gateway(&n.id, &n.subnet, &n.allocation_id, Some(n.private_ip))
                .map_err(|e| {
                    let k = match e {
                        ModelError::SubnetNotFound(_) => "subnet",
                        ModelError::InvalidPrivateIp { .. } | ModelError::AddressInUse(_) => {
                            "private_ip"
                        }
                        ModelError::AllocationNotFound(_)
                        | ModelError::EipAlreadyAssociated(_)
                        | ModelError::MalformedId { kind: "elastic ip allocation", .. } => {
                            "allocation_id"
                        }
                        _ => "id",
                    };
                    at(k, e)
                })?;
            if made.vpc != n.vpc {
                let what =
                    format!("NAT gateway {} is in {}, but its subnet in {}", n.id, n.vpc, made.vpc);
                return Err(at("vpc", inconsistent(what)));
            }
            if made.public_ip != n.public_ip {
                let what = format!(
                    "NAT gateway {} has public IP {}, but its Elastic IP is {}",
                    n.id, n.public_ip, made.public_ip
                );
                return Err(at("public_ip", inconsistent(what)));
            }
        }
        for (i, e) in self.elastic_ips.iter().enumerate() {
            let at = |k: &str, error| Invalid {
                field: format!("elastic_ips[{i}].{k}"),
                id: e.allocation_id.clone(),
                error: Box::new(error),
            };
            // Without it and what holds it (the instance's public IP, the NAT gateway).
            let mut scratch = World {
                elastic_ips: without(&self.elastic_ips, i),
                nat_gateways: self
                    .nat_gateways
                    .iter()
                    .filter(|n| Some(&n.id) != e.nat_gateway.as_ref())
                    .cloned()
                    .collect(),
                ..self.clone()
            };
            for inst in scratch.instances.iter_mut() {
                if Some(&inst.id) == e.instance.as_ref() {
                    inst.public_ip = None;
                }
            }
            if let Some(inst) = &e.instance {
                self.instance(inst)
                    .ok_or_else(|| at("instance", ModelError::InstanceNotFound(inst.clone())))?;
            }
            if let Some(nat) = &e.nat_gateway {
                let n = self.live_nat_gateways().find(|n| &n.id == nat).ok_or_else(|| {
                    at("nat_gateway", ModelError::NatGatewayNotFound(nat.clone()))
                })?;
                if n.allocation_id != e.allocation_id {
                    let what = format!(
                        "NAT gateway {nat} uses {}, not {}",
                        n.allocation_id, e.allocation_id
                    );
                    return Err(at("nat_gateway", inconsistent(what)));
                }
            }
            if e.instance.is_some() && e.nat_gateway.is_some() {
                return Err(at(
                    "instance",
                    ModelError::EipAlreadyAssociated(e.allocation_id.clone()),
                ));
            }
            match &e.association_id {
                Some(a) => check_id("elastic ip association", "eipassoc-", a)
                    .map_err(|err| at("association_id", err))?,
                None if e.instance.is_some() || e.nat_gateway.is_some() => {
                    let what =
                        format!("{} is associated but has no association id", e.allocation_id);
                    return Err(at("association_id", inconsistent(what)));
                }
                None => {}
            }
            scratch.allocate_address(&e.allocation_id, Some(e.public_ip)).map_err(|err| {
                let k = match err {
                    ModelError::InvalidPublicIp(_) | ModelError::AddressInUse(_) => "public_ip",
                    _ => "allocation_id",
                };
                at(k, err)
            })?;
        }
        Ok(())
    }

    /// Terminated instances, users, buckets and internet hosts.
    fn check_rest(&self) -> Result<(), Invalid> {
        for (i, t) in self.terminated_instances.iter().enumerate() {
            check_id("instance", "i-", &t.id).map_err(|error| Invalid {
                field: format!("terminated_instances[{i}].id"),
                id: t.id.clone(),
                error: Box::new(error),
            })?;
        }
        for (i, u) in self.users.iter().enumerate() {
            let mut scratch = World { users: without(&self.users, i), ..self.clone() };
            scratch.add_user(u.clone()).map_err(|e| {
                let k = match &e {
                    ModelError::InvalidAccessKey(_) => "access_key",
                    ModelError::DuplicateId(k) if *k != u.name => "access_key",
                    ModelError::InvalidPolicy(_) => "policies",
                    _ => "name",
                };
                Invalid { field: format!("users[{i}].{k}"), id: u.name.clone(), error: Box::new(e) }
            })?;
        }
        for (i, b) in self.buckets.iter().enumerate() {
            let mut scratch = World { buckets: without(&self.buckets, i), ..self.clone() };
            scratch.add_bucket(b.clone()).map_err(|e| {
                let k = match e {
                    ModelError::UnknownRegion(_) => "region",
                    ModelError::InvalidPolicy(_) => "policy",
                    ModelError::InvalidObjectKey(_) => "objects",
                    _ => "name",
                };
                Invalid {
                    field: format!("buckets[{i}].{k}"),
                    id: b.name.clone(),
                    error: Box::new(e),
                }
            })?;
        }
        for (i, h) in self.internet_hosts.iter().enumerate() {
            let mut scratch =
                World { internet_hosts: without(&self.internet_hosts, i), ..self.clone() };
            // A name saved before hosts' names were checked that is no hostname (`my_host`)
            // was reachable by address all the same: it loads. One that shadows the lab's own
            // names (`…amazonaws.com`) never worked and is refused.
            let res = match super::check_host_name(&h.name) {
                Err(_) if super::shadowed_zone(&h.name).is_none() => {
                    scratch.add_internet_host_named(h.clone())
                }
                _ => scratch.add_internet_host(h.clone()),
            };
            res.map_err(|e| {
                let k = match e {
                    ModelError::DuplicateId(_) | ModelError::InvalidInternetHostName { .. } => {
                        "name"
                    }
                    _ => "ip",
                };
                Invalid {
                    field: format!("internet_hosts[{i}].{k}"),
                    id: h.name.clone(),
                    error: Box::new(e),
                }
            })?;
        }
        Ok(())
    }

    /// Checks the routes a journal record gives table `table` (its whole list, replacing the
    /// table's): a route the table already had, to the same target, was checked with the
    /// world; any other came from CreateRoute or ReplaceRoute against this very world (a
    /// journal holds route changes only), so `add_route` must admit it; and no destination
    /// twice. That keeps the table as valid as it was, in time linear in its routes (a journal
    /// of 1,000 records of a table of 1,000 routes is replayed in milliseconds). The error's
    /// field is `routes[j].…`.
    pub fn check_new_routes(&self, table: &str, routes: &[Route]) -> Result<(), Invalid> {
        let at = |field: String, error| Invalid { field, id: table.into(), error: Box::new(error) };
        let rt = self
            .route_table(table)
            .ok_or_else(|| at("id".into(), ModelError::RouteTableNotFound(table.into())))?;
        let before: std::collections::HashMap<_, _> =
            rt.routes.iter().map(|r| (r.destination, &r.target)).collect();
        let mut seen = std::collections::HashSet::with_capacity(routes.len());
        let mut scratch = self.clone();
        if let Some(t) = scratch.route_tables.iter_mut().find(|t| t.id == table) {
            t.routes.clear();
        }
        for (j, r) in routes.iter().enumerate() {
            let at = |e: ModelError| at(format!("routes[{j}].{}", route_field(&e)), e);
            if !seen.insert(r.destination.trunc()) {
                let e = ModelError::RouteAlreadyExists {
                    table: table.into(),
                    destination: r.destination,
                };
                return Err(at(e));
            }
            if before.get(&r.destination) == Some(&&r.target) {
                continue;
            }
            scratch.add_route(table, r.clone()).map_err(at)?;
            if let Some(t) = scratch.route_tables.iter_mut().find(|t| t.id == table) {
                t.routes.clear();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
