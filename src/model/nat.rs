//! Elastic IP addresses and NAT gateways (and NAT instances: an instance named as a route
//! target).
//!
//! Invariants (kept by every method here, which validates first and changes nothing on error):
//! - an Elastic IP lies in [`PUBLIC_IP_RANGE`] and no other Elastic IP, instance public IP or
//!   NAT gateway uses its address;
//! - an Elastic IP associated with an instance is that instance's `public_ip`
//!   (`ElasticIp::instance` is `Some(i)` ⇔ `i.public_ip == Some(eip.public_ip)` with the
//!   association id set); one associated with a NAT gateway is that gateway's public IP and
//!   cannot be disassociated or released while the gateway is not deleted;
//! - an instance without an Elastic IP has a public IP exactly when EC2 assigned it one at
//!   launch (`Instance::auto_public_ip`): an Elastic IP that leaves such an instance
//!   (DisassociateAddress, AssociateAddress moving it elsewhere) is replaced by a new address
//!   of the pool at once, where EC2 takes "a few minutes";
//! - a NAT gateway's private IP is an address of its subnet that no instance uses; a deleted
//!   gateway keeps its record (state `deleted`, as DescribeNatGateways shows it for a while)
//!   but no longer holds its addresses, and routes to it become blackholes.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{ModelError, PUBLIC_IP_RANGE, Target, World, check_id};

/// An Elastic IP address (AllocateAddress, domain `vpc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticIp {
    /// `eipalloc-…`
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    /// `eipassoc-…` while associated.
    #[serde(default)]
    pub association_id: Option<String>,
    /// The instance it is associated with.
    #[serde(default)]
    pub instance: Option<String>,
    /// The NAT gateway that uses it.
    #[serde(default)]
    pub nat_gateway: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NatState {
    Available,
    Deleted,
}

impl NatState {
    pub fn aws_name(self) -> &'static str {
        match self {
            NatState::Available => "available",
            NatState::Deleted => "deleted",
        }
    }
}

/// A NAT gateway: in a (public) subnet, with a private address there and an Elastic IP. Traffic
/// routed to it leaves with the gateway's address and a translated port, then follows the route
/// table of the gateway's subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatGateway {
    /// `nat-…`
    pub id: String,
    /// The subnet id.
    pub subnet: String,
    pub vpc: String,
    pub allocation_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Ipv4Addr,
    pub state: NatState,
}

impl World {
    pub fn elastic_ip(&self, allocation_id: &str) -> Option<&ElasticIp> {
        self.elastic_ips.iter().find(|e| e.allocation_id == allocation_id)
    }

    pub fn nat_gateway(&self, id: &str) -> Option<&NatGateway> {
        self.nat_gateways.iter().find(|n| n.id == id)
    }

    /// Whether a public address is taken by an instance, an Elastic IP or a NAT gateway.
    pub fn public_ip_in_use(&self, ip: Ipv4Addr) -> bool {
        self.instances.iter().any(|i| i.public_ip == Some(ip))
            || self.elastic_ips.iter().any(|e| e.public_ip == ip)
            || self.live_nat_gateways().any(|n| n.public_ip == ip)
    }

    /// Whether a private address of a VPC is taken by an instance or a NAT gateway.
    pub fn private_ip_in_use(&self, vpc: &str, ip: Ipv4Addr) -> bool {
        self.instances_in_vpc(vpc).any(|i| i.private_ip == ip)
            || self.live_nat_gateways().any(|n| n.vpc == vpc && n.private_ip == ip)
    }

    /// How many private addresses of `subnet` are in use: every one [`World::private_ip_in_use`]
    /// counts (instances' and live NAT gateways' interfaces).
    pub fn private_ips_used_in(&self, subnet: &crate::model::Subnet) -> u64 {
        let inside = |ip: &Ipv4Addr| subnet.cidr.contains(ip);
        let instances =
            self.instances_in_vpc(&subnet.vpc).filter(|i| inside(&i.private_ip)).count();
        let nats = self
            .live_nat_gateways()
            .filter(|n| n.vpc == subnet.vpc && inside(&n.private_ip))
            .count();
        (instances + nats) as u64
    }

    /// NAT gateways that are not deleted.
    pub fn live_nat_gateways(&self) -> impl Iterator<Item = &NatGateway> {
        self.nat_gateways.iter().filter(|n| n.state != NatState::Deleted)
    }

    /// AllocateAddress: a new Elastic IP, `public_ip` or the first free address.
    pub fn allocate_address(
        &mut self,
        allocation_id: &str,
        public_ip: Option<Ipv4Addr>,
    ) -> Result<ElasticIp, ModelError> {
        check_id("elastic ip allocation", "eipalloc-", allocation_id)?;
        self.check_unique(allocation_id)?;
        let ip = match public_ip {
            Some(ip) => {
                if !PUBLIC_IP_RANGE.contains(&ip) {
                    return Err(ModelError::InvalidPublicIp(ip));
                }
                if self.public_ip_in_use(ip) {
                    return Err(ModelError::AddressInUse(ip));
                }
                ip
            }
            None => self.next_free_public_ip()?,
        };
        let eip = ElasticIp {
            allocation_id: allocation_id.to_string(),
            public_ip: ip,
            association_id: None,
            instance: None,
            nat_gateway: None,
        };
        self.elastic_ips.push(eip.clone());
        Ok(eip)
    }

    fn eip_checked(&self, allocation_id: &str) -> Result<&ElasticIp, ModelError> {
        check_id("elastic ip allocation", "eipalloc-", allocation_id)?;
        self.elastic_ip(allocation_id)
            .ok_or_else(|| ModelError::AllocationNotFound(allocation_id.to_string()))
    }

    /// AssociateAddress with an instance: the Elastic IP becomes the instance's public IP (its
    /// previous public IP, automatic or another Elastic IP's, is given up). An address already
    /// associated elsewhere moves only with `allow_reassociation`, and the instance it leaves is
    /// left as [`World::disassociate_address`] leaves it. Returns the association id.
    pub fn associate_address(
        &mut self,
        allocation_id: &str,
        instance: &str,
        allow_reassociation: bool,
    ) -> Result<String, ModelError> {
        let eip = self.eip_checked(allocation_id)?.clone();
        check_id("instance", "i-", instance)?;
        self.instance(instance).ok_or_else(|| ModelError::InstanceNotFound(instance.into()))?;
        if let Some(nat) = &eip.nat_gateway {
            return Err(ModelError::EipUsedByNat {
                allocation_id: eip.allocation_id,
                nat: nat.clone(),
            });
        }
        if eip.instance.as_deref() == Some(instance) {
            return Ok(eip.association_id.unwrap_or_default());
        }
        if eip.instance.is_some() && !allow_reassociation {
            return Err(ModelError::EipAlreadyAssociated(eip.allocation_id));
        }
        // The instance the address leaves: chosen while `instance` still holds its own public
        // IP, so that it does not get the address `instance` gives up.
        let left = match &eip.instance {
            Some(old) => Some((old.clone(), self.public_ip_after_eip(old)?)),
            None => None,
        };
        let association = self.generate_id("eipassoc");
        // Whatever the instance had before (automatic public IP or another Elastic IP) goes.
        for e in self.elastic_ips.iter_mut() {
            if e.instance.as_deref() == Some(instance) || e.allocation_id == allocation_id {
                e.instance = None;
                e.association_id = None;
            }
        }
        for i in self.instances.iter_mut() {
            if i.id == instance {
                i.public_ip = Some(eip.public_ip);
            } else if let Some((old, ip)) = &left
                && i.id == *old
            {
                i.public_ip = *ip;
            }
        }
        if let Some(e) = self.elastic_ips.iter_mut().find(|e| e.allocation_id == allocation_id) {
            e.instance = Some(instance.to_string());
            e.association_id = Some(association.clone());
        }
        Ok(association)
    }

    /// The public IP an instance has once its Elastic IP leaves it: a new address of the pool
    /// if EC2 assigned it one at launch, else none. EC2 User Guide, Elastic IP addresses: when
    /// an Elastic IP is associated with "an instance in which you assigned a public IP to the
    /// eth0 network interface during launch, its current public IP address is released … If
    /// you disassociate an EIP from the instance, the instance is automatically assigned a new
    /// public IP address within a few minutes. However, if you have attached a second network
    /// interface to the instance, the instance is not automatically assigned a new public IP
    /// address" (the lab's instances have one interface). The lab assigns it at once; with the
    /// pool exhausted the change is refused ([`ModelError::NoFreePublicIp`]).
    fn public_ip_after_eip(&self, instance: &str) -> Result<Option<Ipv4Addr>, ModelError> {
        match self.instance(instance) {
            Some(i) if i.auto_public_ip => self.next_free_public_ip().map(Some),
            _ => Ok(None),
        }
    }

    /// DisassociateAddress: the instance loses the Elastic IP, and gets a new public IP if EC2
    /// gave it one at launch (see [`World::public_ip_after_eip`]).
    pub fn disassociate_address(&mut self, association_id: &str) -> Result<(), ModelError> {
        check_id("elastic ip association", "eipassoc-", association_id)?;
        let eip = self
            .elastic_ips
            .iter()
            .find(|e| e.association_id.as_deref() == Some(association_id))
            .ok_or_else(|| ModelError::AssociationNotFound(association_id.to_string()))?;
        if let Some(nat) = &eip.nat_gateway {
            return Err(ModelError::EipUsedByNat {
                allocation_id: eip.allocation_id.clone(),
                nat: nat.clone(),
            });
        }
        let (alloc, instance) = (eip.allocation_id.clone(), eip.instance.clone());
        let public_ip = match &instance {
            Some(i) => self.public_ip_after_eip(i)?,
            None => None,
        };
        if let Some(i) = self.instances.iter_mut().find(|i| Some(&i.id) == instance.as_ref()) {
            i.public_ip = public_ip;
        }
        if let Some(e) = self.elastic_ips.iter_mut().find(|e| e.allocation_id == alloc) {
            e.instance = None;
            e.association_id = None;
        }
        Ok(())
    }

    /// For a world saved before [`crate::model::Instance::auto_public_ip`] was kept (its
    /// instances have no such field): a public IP that is no Elastic IP's is one EC2 assigned.
    /// Whether an instance with an Elastic IP had one before is not known; it is taken to have
    /// had none, as those worlds behaved (README, Decisions).
    pub fn adopt_auto_public_ips(&mut self) {
        let elastic: Vec<&str> =
            self.elastic_ips.iter().filter_map(|e| e.instance.as_deref()).collect();
        let auto: Vec<bool> = self
            .instances
            .iter()
            .map(|i| i.public_ip.is_some() && !elastic.contains(&i.id.as_str()))
            .collect();
        for (i, auto) in self.instances.iter_mut().zip(auto) {
            i.auto_public_ip = auto;
        }
    }

    /// ReleaseAddress: only an address that nothing uses.
    pub fn release_address(&mut self, allocation_id: &str) -> Result<(), ModelError> {
        let eip = self.eip_checked(allocation_id)?;
        if eip.instance.is_some() || eip.nat_gateway.is_some() {
            return Err(ModelError::EipInUse(allocation_id.to_string()));
        }
        self.elastic_ips.retain(|e| e.allocation_id != allocation_id);
        Ok(())
    }

    /// CreateNatGateway (public connectivity): in `subnet`, with the Elastic IP
    /// `allocation_id`, at `private_ip` or the subnet's first free address.
    pub fn create_nat_gateway(
        &mut self,
        id: &str,
        subnet: &str,
        allocation_id: &str,
        private_ip: Option<Ipv4Addr>,
    ) -> Result<NatGateway, ModelError> {
        check_id("nat gateway", "nat-", id)?;
        self.check_unique(id)?;
        let s = self.subnet(subnet).ok_or_else(|| ModelError::SubnetNotFound(subnet.into()))?;
        let (subnet_id, vpc, cidr) = (s.id.clone(), s.vpc.clone(), s.cidr);
        let eip = self.eip_checked(allocation_id)?;
        if eip.instance.is_some() || eip.nat_gateway.is_some() {
            return Err(ModelError::EipAlreadyAssociated(allocation_id.to_string()));
        }
        let public_ip = eip.public_ip;
        let private_ip = match private_ip {
            Some(ip) => {
                let (n, first, last) =
                    (u32::from(ip), u32::from(cidr.network()), u32::from(cidr.broadcast()));
                if !cidr.contains(&ip) || n < first + 4 || n == last {
                    return Err(ModelError::InvalidPrivateIp { ip, cidr });
                }
                if self.private_ip_in_use(&vpc, ip) {
                    return Err(ModelError::AddressInUse(ip));
                }
                ip
            }
            None => self.next_free_private_ip(&subnet_id)?,
        };
        let association = self.generate_id("eipassoc");
        if let Some(e) = self.elastic_ips.iter_mut().find(|e| e.allocation_id == allocation_id) {
            e.nat_gateway = Some(id.to_string());
            e.association_id = Some(association);
        }
        let nat = NatGateway {
            id: id.to_string(),
            subnet: subnet_id,
            vpc,
            allocation_id: allocation_id.to_string(),
            private_ip,
            public_ip,
            state: NatState::Available,
        };
        self.nat_gateways.push(nat.clone());
        Ok(nat)
    }

    /// DeleteNatGateway: the gateway goes to `deleted` and gives back its Elastic IP; routes to
    /// it stay, as blackholes (AWS shows them with state `blackhole`).
    pub fn delete_nat_gateway(&mut self, id: &str) -> Result<(), ModelError> {
        check_id("nat gateway", "nat-", id)?;
        let nat = self
            .live_nat_gateways()
            .find(|n| n.id == id)
            .ok_or_else(|| ModelError::NatGatewayNotFound(id.to_string()))?;
        let alloc = nat.allocation_id.clone();
        if let Some(e) = self.elastic_ips.iter_mut().find(|e| e.allocation_id == alloc) {
            e.nat_gateway = None;
            e.association_id = None;
        }
        if let Some(n) = self.nat_gateways.iter_mut().find(|n| n.id == id) {
            n.state = NatState::Deleted;
        }
        Ok(())
    }

    /// Checks a route target that is a NAT gateway or an instance (AWS: both in the table's
    /// VPC).
    pub(super) fn check_nat_target(&self, target: &Target, vpc: &str) -> Result<(), ModelError> {
        match target {
            Target::Nat(id) => {
                check_id("nat gateway", "nat-", id)?;
                let nat = self
                    .live_nat_gateways()
                    .find(|n| &n.id == id)
                    .ok_or_else(|| ModelError::NatGatewayNotFound(id.clone()))?;
                if nat.vpc != vpc {
                    return Err(ModelError::TargetOtherVpc { target: id.clone(), vpc: vpc.into() });
                }
            }
            Target::Instance(id) => {
                check_id("instance", "i-", id)?;
                let inst =
                    self.instance(id).ok_or_else(|| ModelError::InstanceNotFound(id.clone()))?;
                if self.subnet(&inst.subnet).is_none_or(|s| s.vpc != vpc) {
                    return Err(ModelError::TargetOtherVpc { target: id.clone(), vpc: vpc.into() });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether a route target currently forwards (false: AWS shows the route as `blackhole`).
    pub fn target_alive(&self, target: &Target, vpc: &str) -> bool {
        match target {
            Target::Local => true,
            Target::Blackhole => false,
            Target::Igw(id) => self.igw(id).and_then(|g| g.vpc.as_deref()) == Some(vpc),
            Target::Vpce(id) => self.endpoint(id).is_some(),
            Target::Nat(id) => self.live_nat_gateways().any(|n| &n.id == id && n.vpc == vpc),
            Target::Instance(id) => {
                self.instance(id).and_then(|i| self.subnet(&i.subnet)).is_some_and(|s| s.vpc == vpc)
            }
        }
    }
}
