//! Resetting flows whose path a control-plane change moved.
//!
//! From the guide: "An endpoint switches network routes, and disconnects open TCP connections.
//! Your tasks will be interrupted during the changeover, and any previous connections using
//! public IP addresses will not be resumed." After a new snapshot is published, every tracked
//! flow is routed again as its instance's next packet would be; a flow whose path (internet
//! gateway with a given public IP, or a given endpoint) differs is removed, and for TCP two RSTs
//! are built with the exact sequence numbers each side expects: one to the instance from the
//! remote address, one to the remote side from the address it knew. Flows whose path did not
//! change are untouched.

use std::net::Ipv4Addr;

use super::Pipeline;
use super::flow::{Flow, FlowKey, FlowPath};
use crate::fib::{Hop, PORT_AWS, PORT_INTERNET, PortId, Snapshot};
use crate::packet;

/// A packet the control plane writes into the data plane: an IPv4 packet for `port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub port: PortId,
    pub packet: Vec<u8>,
}

/// Where a flow goes under a snapshot, comparable across snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Way {
    /// Out through the internet gateway with this public IP, to the aws namespace or not.
    Igw {
        public_ip: u32,
        aws: bool,
    },
    Vpce {
        id: String,
    },
    /// The VPC resolver does not depend on routes.
    Resolver,
    /// Intra-VPC flows: the local route never changes. (A security-group change moves no
    /// flow either: an untracked side judges each packet by the current rules instead.)
    Local,
    /// Through a NAT (gateway or instance), then the NAT's own way out.
    Nat {
        nat: std::sync::Arc<str>,
        then: Box<Way>,
    },
    Gone,
}

fn way_under(snap: &Snapshot, key: &FlowKey, flow: &Flow) -> Way {
    if let FlowPath::Resolver(_) = flow.path.way() {
        return Way::Resolver;
    }
    if let FlowPath::Local = flow.path.way() {
        return Way::Local;
    }
    let Some(subnet) = snap.subnet(flow.port) else { return Way::Gone };
    let Some(host) = snap.vpcs.get(subnet.vpc as usize).and_then(|v| v.hosts.get(&flow.private_ip))
    else {
        return Way::Gone;
    };
    if host.port != flow.port {
        return Way::Gone;
    }
    let hop = subnet.fib.lookup(key.dst);
    if flow.path.napt().is_none() {
        return way_out(snap, hop, key.dst, host.public_ip);
    }
    let Some(Hop::Nat(n)) = hop else { return Way::Gone };
    let Some(nat) = snap.nats.get(n as usize).filter(|n| !n.source_dest_check) else {
        return Way::Gone;
    };
    let then = snap.subnet(nat.port).and_then(|s| s.fib.lookup(key.dst));
    Way::Nat { nat: nat.id.clone(), then: Box::new(way_out(snap, then, key.dst, nat.public_ip)) }
}

/// Where a hop leads a packet to `dst` sent by an address whose public IP is `public_ip`.
fn way_out(snap: &Snapshot, hop: Option<Hop>, dst: u32, public_ip: Option<u32>) -> Way {
    match hop {
        Some(Hop::Igw) => public_ip.map_or(Way::Gone, |public_ip| Way::Igw {
            public_ip,
            aws: snap.aws_ranges.lookup(dst).is_some(),
        }),
        Some(Hop::Vpce(i)) => snap
            .endpoints
            .get(i as usize)
            .map_or(Way::Gone, |e| Way::Vpce { id: e.vpce_id.clone() }),
        _ => Way::Gone,
    }
}

fn recorded_way(key: &FlowKey, flow: &Flow) -> Way {
    let way = match flow.path.way() {
        FlowPath::Igw { aws } => Way::Igw { public_ip: key.src, aws: *aws },
        FlowPath::Vpce(e) => Way::Vpce { id: e.vpce_id.clone() },
        FlowPath::Resolver(_) => Way::Resolver,
        FlowPath::Local => Way::Local,
        // `way()` is never `Nat`.
        FlowPath::Nat(_) => Way::Gone,
    };
    match flow.path.napt() {
        Some(n) => Way::Nat { nat: n.nat.clone(), then: Box::new(way) },
        None => way,
    }
}

impl Pipeline {
    /// Removes every flow the current snapshot routes differently from how it started, and
    /// returns the RSTs for the TCP ones. Call after [`Pipeline::publish`], once no worker is
    /// still forwarding with the old snapshot.
    pub fn reset_moved_flows(&self) -> Vec<Injection> {
        let snap = self.snapshot();
        self.counters.reset_scans.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let moved = self.flows.remove_where(|k, f| way_under(&snap, k, f) != recorded_way(k, f));
        let mut out = Vec::new();
        for (key, flow) in moved {
            // A half-closed connection still carries data one way: it is reset too.
            if key.proto != packet::PROTO_TCP || flow.tcp.closed() {
                continue;
            }
            let t = flow.tcp;
            let remote = Ipv4Addr::from(key.dst);
            // Behind a NAT, the instance knows its own port, not the NAT's.
            let inside_port = flow.path.napt().map_or(key.sport, |n| n.inside_port);
            // To the instance, as if from the remote side: its receive window starts at in_next.
            // Not to an instance whose connection never got an answer (its SYN is unanswered):
            // Linux takes such a RST as a refusal (ECONNREFUSED), where on AWS the SYN's
            // retransmission simply takes the new path.
            if t.seen_in {
                out.push(Injection {
                    port: flow.port,
                    packet: packet::build_tcp_rst(
                        remote,
                        key.dport,
                        Ipv4Addr::from(flow.private_ip),
                        inside_port,
                        t.in_next,
                        t.seen_out.then_some(t.out_next),
                    ),
                });
            }
            // To the remote side, from the address it knew (public or private): it expects
            // out_next.
            if t.seen_out {
                let port = match flow.path.way() {
                    FlowPath::Vpce(_) | FlowPath::Resolver(_) | FlowPath::Igw { aws: true } => {
                        PORT_AWS
                    }
                    FlowPath::Igw { aws: false } => PORT_INTERNET,
                    // Never moved (see `way_under`); `way()` is never `Nat`.
                    FlowPath::Local | FlowPath::Nat(_) => continue,
                };
                out.push(Injection {
                    port,
                    packet: packet::build_tcp_rst(
                        Ipv4Addr::from(key.src),
                        key.sport,
                        remote,
                        key.dport,
                        t.out_next,
                        t.seen_in.then_some(t.in_next),
                    ),
                });
            }
        }
        out
    }
}
