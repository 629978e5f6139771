//! Security-group connection tracking between two instances of the VPC. The EC2 user guide
//! ("Security group connection tracking"): "If a security group rule permits TCP or UDP flows
//! for all traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in the other direction
//! that permits all response traffic (0.0.0.0/0 or ::/0) for any port (0-65535), then that flow
//! of traffic is not tracked, unless it is part of an automatically tracked connection"; "The
//! response traffic for an untracked flow is allowed based on the inbound or outbound rule that
//! permits the response traffic, not based on tracking information. An untracked flow of
//! traffic is immediately interrupted if the rule that enables the flow is removed or
//! modified." Tracking is the interface's: the opener's side (its egress, its ingress for the
//! replies) and the receiver's side (its ingress, its egress for the replies) are each tracked
//! or not by their own groups. Traffic from another instance of the VPC is none of the
//! automatically tracked connections the guide lists (NAT gateway, load balancers, PrivateLink,
//! Transit Gateway …).
//!
//! The default lab: a 10.0.1.10, b 10.0.2.10, c 10.0.3.10, all in the VPC's default group
//! (ingress from the group itself, egress all: tracked).

use super::*;
use crate::model::{Direction, Peer, Ports, Protocol, SgRule};

const EVERYONE: &str = "0.0.0.0/0";

fn all_from(cidr: &str) -> SgRule {
    SgRule::new(Protocol::All, Ports::All, Peer::Cidr(cidr.parse().unwrap()))
}

fn tcp_from(cidr: &str, port: u16) -> SgRule {
    SgRule::new(
        Protocol::Tcp,
        Ports::Range { from: port, to: port },
        Peer::Cidr(cidr.parse().unwrap()),
    )
}

/// Puts `instance` alone in a new group `sg-0e0e000N` with these rules; returns its id.
fn grouped(w: &mut World, n: u8, instance: &str, egress: &[SgRule], ingress: &[SgRule]) -> String {
    let id = format!("sg-0e0e000{n}");
    w.create_security_group(&id, &format!("g{n}"), "g", "vpc-111bbb22").unwrap();
    w.set_security_group_rules(&id, Direction::Egress, egress).unwrap();
    w.set_security_group_rules(&id, Direction::Ingress, ingress).unwrap();
    w.set_instance_groups(instance, std::slice::from_ref(&id)).unwrap();
    id
}

fn publish(p: &Pipeline, w: &World, generation: u64) {
    let ports = ports_by_index(w);
    p.publish(Snapshot::compile(w, generation, &|id| ports.get(id).copied()));
}

fn forwarded_to(a: Action, port: PortId) -> bool {
    matches!(a, Action::Forward { port: p, .. } if p == port)
}

/// c opens TCP to b:8080 and they exchange a segment each way.
fn open_c_to_b(p: &Pipeline) {
    let mut syn = tcp_syn("10.0.3.10", 40000, "10.0.2.10", 8080);
    assert!(forwarded_to(run(p, C, &mut syn), B));
    let mut answer = tcp("10.0.2.10", 8080, "10.0.3.10", 40000, b"data");
    assert!(forwarded_to(run(p, B, &mut answer), C));
    let mut ack = tcp("10.0.3.10", 40000, "10.0.2.10", 8080, b"");
    assert!(forwarded_to(run(p, C, &mut ack), B));
}

fn from_c(p: &Pipeline) -> Action {
    run(p, C, &mut tcp("10.0.3.10", 40000, "10.0.2.10", 8080, b""))
}

fn from_b(p: &Pipeline) -> Action {
    run(p, B, &mut tcp("10.0.2.10", 8080, "10.0.3.10", 40000, b"more"))
}

/// b allows all traffic in from 0.0.0.0/0 and out to it: its side of c's connection is not
/// tracked, and revoking its inbound rule cuts the connection at the next packet, as it would
/// from the internet. b's answers still leave by its egress rule; c's side is tracked, so they
/// need no ingress rule of c's. The reviewer's case (review rc, finding 2).
#[test]
fn revoking_the_receivers_all_traffic_rule_cuts_an_untracked_local_flow() {
    let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
    let open = grouped(&mut w, 1, "i-0b0b0b0b", &[all_from(EVERYONE)], &[all_from(EVERYONE)]);
    let p = pipeline_for(&w);
    open_c_to_b(&p);
    // One flow: the answers found it, none of their own was made.
    assert_eq!(p.flows.len(), 1);
    w.set_security_group_rules(&open, Direction::Ingress, &[]).unwrap();
    publish(&p, &w, 2);
    assert_eq!(from_c(&p), Action::Drop(DropReason::SgIngress));
    assert!(forwarded_to(from_b(&p), C), "b's egress still allows its answers");
    // The rule back (a new snapshot): the connection goes on (TCP retransmits).
    w.set_security_group_rules(&open, Direction::Ingress, &[all_from(EVERYONE)]).unwrap();
    publish(&p, &w, 3);
    assert!(forwarded_to(from_c(&p), B));
    // Revoking b's egress cuts its answers.
    w.set_security_group_rules(&open, Direction::Egress, &[]).unwrap();
    publish(&p, &w, 4);
    assert_eq!(from_b(&p), Action::Drop(DropReason::SgEgress));
    assert!(forwarded_to(from_c(&p), B));
    assert_eq!(p.flows.len(), 1);
}

/// The same connection with b's inbound rule naming c's address (not everyone): tracked, so
/// removing the rule lets it go on, while a new connection is refused.
#[test]
fn a_tracked_local_flow_survives_the_revoke() {
    let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
    let g = grouped(&mut w, 1, "i-0b0b0b0b", &[all_from(EVERYONE)], &[all_from("10.0.3.10/32")]);
    let p = pipeline_for(&w);
    open_c_to_b(&p);
    w.set_security_group_rules(&g, Direction::Ingress, &[]).unwrap();
    w.set_security_group_rules(&g, Direction::Egress, &[]).unwrap();
    publish(&p, &w, 2);
    assert!(forwarded_to(from_c(&p), B));
    assert!(forwarded_to(from_b(&p), C));
    let mut new = tcp_syn("10.0.3.10", 40001, "10.0.2.10", 8080);
    assert_eq!(run(&p, C, &mut new), Action::Drop(DropReason::SgIngress));
    // Both in the default group, which names itself: tracked, the revoke cuts nothing.
    let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
    let p = pipeline_for(&w);
    open_c_to_b(&p);
    w.set_security_group_rules("sg-111bbb22", Direction::Ingress, &[]).unwrap();
    w.set_security_group_rules("sg-111bbb22", Direction::Egress, &[]).unwrap();
    publish(&p, &w, 2);
    assert!(forwarded_to(from_c(&p), B));
    assert!(forwarded_to(from_b(&p), C));
}

/// Each side by its own groups. c (the opener) allows all traffic out to and in from
/// 0.0.0.0/0: its side is untracked, so its egress judges what it sends and its ingress what
/// it gets back. b admits c's port 8080 only from c's address: its side is tracked, and its
/// rules no longer matter to the connection once it is open.
#[test]
fn the_openers_side_and_the_receivers_side_are_tracked_each_by_its_own_groups() {
    let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
    let c = grouped(&mut w, 1, "i-0c0c0c0c", &[all_from(EVERYONE)], &[all_from(EVERYONE)]);
    let b = grouped(
        &mut w,
        2,
        "i-0b0b0b0b",
        &[tcp_from(EVERYONE, 1)],
        &[tcp_from("10.0.3.10/32", 8080)],
    );
    let p = pipeline_for(&w);
    open_c_to_b(&p);
    // b's rules go: its side is tracked, nothing changes.
    w.set_security_group_rules(&b, Direction::Ingress, &[]).unwrap();
    w.set_security_group_rules(&b, Direction::Egress, &[]).unwrap();
    publish(&p, &w, 2);
    assert!(forwarded_to(from_c(&p), B));
    assert!(forwarded_to(from_b(&p), C));
    // c's ingress goes: b's answers are cut at c; what c sends still leaves.
    w.set_security_group_rules(&c, Direction::Ingress, &[]).unwrap();
    publish(&p, &w, 3);
    assert_eq!(from_b(&p), Action::Drop(DropReason::SgIngress));
    assert!(forwarded_to(from_c(&p), B));
    // c's egress goes too: what c sends is cut.
    w.set_security_group_rules(&c, Direction::Egress, &[]).unwrap();
    publish(&p, &w, 4);
    assert_eq!(from_c(&p), Action::Drop(DropReason::SgEgress));
    assert_eq!(p.flows.len(), 1);
}

/// UDP flows are untracked the same way; ICMP stays tracked (the guide's condition names TCP
/// and UDP flows only, see `filter::sg_untracked`): the echo reply passes after the revoke.
#[test]
fn udp_is_cut_like_tcp_and_icmp_stays_tracked() {
    let mut w = parse("demo.toml", DEFAULT_LAB).unwrap();
    let open = grouped(&mut w, 1, "i-0b0b0b0b", &[all_from(EVERYONE)], &[all_from(EVERYONE)]);
    let p = pipeline_for(&w);
    let mut query = udp("10.0.3.10", 5000, "10.0.2.10", 5353);
    assert!(forwarded_to(run(&p, C, &mut query), B));
    let mut answer = udp("10.0.2.10", 5353, "10.0.3.10", 5000);
    assert!(forwarded_to(run(&p, B, &mut answer), C));
    let mut ping = icmp_echo("10.0.3.10", "10.0.2.10", 7, false);
    assert!(forwarded_to(run(&p, C, &mut ping), B));
    w.set_security_group_rules(&open, Direction::Ingress, &[]).unwrap();
    w.set_security_group_rules(&open, Direction::Egress, &[]).unwrap();
    publish(&p, &w, 2);
    let mut again = udp("10.0.3.10", 5000, "10.0.2.10", 5353);
    assert_eq!(run(&p, C, &mut again), Action::Drop(DropReason::SgIngress));
    let mut answer = udp("10.0.2.10", 5353, "10.0.3.10", 5000);
    assert_eq!(run(&p, B, &mut answer), Action::Drop(DropReason::SgEgress));
    // The echo reply passes as part of the tracked ping; a new request does not.
    let mut pong = icmp_echo("10.0.2.10", "10.0.3.10", 7, true);
    assert!(forwarded_to(run(&p, B, &mut pong), C));
    let mut ping = icmp_echo("10.0.3.10", "10.0.2.10", 7, false);
    assert_eq!(run(&p, C, &mut ping), Action::Drop(DropReason::SgIngress));
}
