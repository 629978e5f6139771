//! The VPC DNS resolver ("AmazonProvidedDNS" at the VPC's base + 2 address).
//!
//! The guide says "You must enable DNS resolution in your VPC": instances reach S3 by name, and
//! the name has to resolve into S3's public ranges so that the route table's prefix-list route
//! (`pl-` → `vpce-`) or the internet gateway route carries the traffic. This resolver answers:
//!
//! * S3 names of every region `r` in [`DnsView::s3_regions`] (A records, TTL 60):
//!   `s3.<r>.amazonaws.com`, `s3-<r>.amazonaws.com`, `s3.dualstack.<r>.amazonaws.com`, where AWS
//!   has FIPS endpoints ([`crate::model::S3_FIPS_REGIONS`]) also `s3-fips.<r>.amazonaws.com` and
//!   `s3-fips.dualstack.<r>.amazonaws.com`, and for us-east-1 ("Treat Amazon S3's US Standard region as mapped to the us-east-1 region") also
//!   `s3.amazonaws.com` and `s3-external-1.amazonaws.com`; each of them also with any number of
//!   bucket labels in front (`my-bucket.s3.<r>.amazonaws.com`, `a.b.s3.<r>.amazonaws.com`).
//!   Except `<bucket>.s3.amazonaws.com` of an existing bucket ([`DnsView::bucket_regions`]):
//!   that goes to the bucket's own region, as S3's DNS routing sends it.
//! * The Amazon Linux repository buckets the guide names: `packages.<r>.amazonaws.com` and
//!   `repo.<r>.amazonaws.com`, into region `r`'s S3 range.
//! * Internet hosts of [`DnsView::hosts`] as `<name>` and `<name>.internet`.
//! * The private DNS hostname of every instance of the VPC the query comes from
//!   ([`DnsView::instances`]), and its reverse: `ip-10-0-1-10.ec2.internal` in us-east-1,
//!   `ip-10-0-1-10.<region>.compute.internal` elsewhere ([`instance_domain`]), A, and PTR for
//!   `10.1.0.10.in-addr.arpa`. Another VPC's instances, and addresses of no instance, are
//!   NXDOMAIN.
//!
//! The address of an S3 name is a stable address inside the region's range derived from the
//! (lower-cased) name, never the range's network or broadcast address, so different buckets get
//! different addresses in the same range (like real S3) and one name always gets the same one.
//! AAAA (and any other type) for a known name → NOERROR without answers (NODATA); so is every
//! name that has names below it (an "empty non-terminal": `amazonaws.com`,
//! `us-east-1.amazonaws.com`, `dualstack.us-east-1.amazonaws.com`, `com`, `internet`, the root),
//! because RFC 8020 reads NXDOMAIN as "nothing exists at or below this name". Other names →
//! NXDOMAIN (the lab has no real internet). Matching is case-insensitive, the answer echoes the
//! question's spelling, and a trailing dot makes no difference.
//!
//! `amazonaws.com`, the instance domain and `in-addr.arpa` are the zones this resolver speaks
//! for: each has an SOA (answered to SOA and ANY queries at its apex), and every NXDOMAIN or
//! NODATA answer for a name in one carries its SOA in the authority section (RFC 2308 §3), so
//! that clients may cache it for [`NEGATIVE_TTL`]. Negative answers for names outside them
//! carry none (see [`zone_of`]).
//!
//! Flags: RA is set (this is the VPC's recursive resolver, as far as clients can tell; `dig`
//! would otherwise warn), RD and CD are copied, AA is set on NOERROR/NXDOMAIN answers because this
//! resolver is the only source of truth of the lab's world. Responses are never sent to
//! responses (QR=1) or to messages shorter than a DNS header; other malformed queries get
//! FORMERR, opcodes other than QUERY get NOTIMP, classes other than IN/ANY get REFUSED.
//!
//! ## Reply source addresses (UDP)
//!
//! Replies must come *from* the address the query was sent *to* (the VPC's resolver address,
//! e.g. 10.0.0.2), or the client's stub resolver drops them. Rather than `IP_PKTINFO` on one
//! wildcard socket, [`serve_udp`] requires a socket **bound to one specific resolver address**
//! (`10.0.0.2:53`): the kernel then sources every reply from that address, and that address is
//! also the "local" address passed to [`DnsState::vpc_of`]. The caller runs one `serve_udp`
//! task per VPC resolver address (aborting it when the VPC goes away). A socket bound to
//! `0.0.0.0` is refused with an error. For TCP the local address of each accepted connection is
//! already the address the client connected to, so one wildcard listener (or one per address)
//! works.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::Ipv4Net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// TTL of every answer, in seconds.
pub const TTL: u32 = 60;
/// UDP payload size advertised in our EDNS OPT record.
const EDNS_PAYLOAD: u16 = 1232;
/// A TCP connection idle for this long (or stalled mid-message) is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What the resolver knows; the caller rebuilds it when the lab changes.
#[derive(Debug, Clone, Default)]
pub struct DnsView {
    /// Every region's S3 ranges: (region, first CIDR), e.g. ("us-east-1", 54.123.160.0/19).
    /// When a region appears more than once, its first entry is used.
    pub s3_regions: Vec<(String, Ipv4Net)>,
    /// Internet hosts: (name, ip) — answered as `<name>` and `<name>.internet` (A records),
    /// e.g. "check-ip".
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// The domain of instance hostnames ([`instance_domain`] of the lab's region, lower case);
    /// empty: no instance names, and no such zone.
    pub instance_domain: String,
    /// Every instance as (its VPC's id, its private IPv4 address).
    pub instances: Vec<(String, Ipv4Addr)>,
    /// Every existing bucket's region, by bucket name: `<bucket>.s3.amazonaws.com` resolves
    /// into that region's range (see [`s3_range_for`]).
    pub bucket_regions: std::collections::HashMap<String, String>,
}

/// The domain of the IP-based private DNS hostnames of instances in `region`. From "Amazon EC2
/// instance hostname types": the IP name is `ip-private-ipv4-address.ec2.internal` "for the
/// us-east-1 Region", and `ip-private-ipv4-address.region.compute.internal` for the others.
pub fn instance_domain(region: &str) -> String {
    let region = region.trim_end_matches('.').to_ascii_lowercase();
    if region == "us-east-1" { "ec2.internal".into() } else { format!("{region}.compute.internal") }
}

/// The private DNS hostname of the instance at `ip` (`ip-10-0-1-10.<domain>`).
pub fn instance_hostname(domain: &str, ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.{domain}")
}

/// The reverse name of `ip`, `d.c.b.a.in-addr.arpa` (RFC 1035 §3.5), without the final dot.
fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// Shared state of the UDP and TCP servers.
pub struct DnsState {
    pub view: Arc<arc_swap::ArcSwap<DnsView>>,
    /// Given the client and the local (resolver) address of a query as seen by the socket, the
    /// VPC the query comes from, if its enableDnsSupport is on; None → no response (as AWS's
    /// resolver when DNS support is off). Instance names are answered for that VPC only.
    pub vpc_of: Arc<dyn Fn(SocketAddr, SocketAddr) -> Option<String> + Send + Sync>,
}

/// Serves DNS over UDP until the socket fails for good (never returns `Ok`).
///
/// `socket` must be bound to one specific resolver address (e.g. `10.0.0.2:53`), so that
/// replies leave from the address the query was sent to; see the module docs. A socket bound
/// to an unspecified address is refused.
pub async fn serve_udp(socket: UdpSocket, state: Arc<DnsState>) -> anyhow::Result<()> {
    let local = socket.local_addr()?;
    if local.ip().is_unspecified() {
        anyhow::bail!(
            "dns: UDP socket bound to {local}: bind one socket per resolver address \
             (e.g. 10.0.0.2:53) so replies come from the address queried"
        );
    }
    tracing::debug!(%local, "dns: serving UDP");
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // Unconnected UDP sockets rarely fail; don't die (the VPC would lose DNS), but
                // don't spin either.
                tracing::debug!(%local, error = %e, "dns: UDP recv failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(vpc) = (state.vpc_of)(peer, local) else {
            tracing::trace!(%peer, %local, "dns: DNS support disabled, query dropped");
            continue;
        };
        let view = state.view.load();
        let Some(reply) = respond(&view, Some(&vpc), &buf[..n]) else {
            continue;
        };
        let bytes = match reply.encode_udp() {
            Some(b) => b,
            None => continue,
        };
        if let Err(e) = socket.send_to(&bytes, peer).await {
            tracing::debug!(%peer, %local, error = %e, "dns: UDP send failed");
        }
    }
}

/// Serves DNS over TCP (RFC 7766: length-prefixed messages, several per connection) until the
/// listener fails for good (never returns `Ok`). Each connection's local address is the
/// resolver address passed to [`DnsState::vpc_of`]; when that names no VPC, the connection is
/// closed without a response.
pub async fn serve_tcp(listener: TcpListener, state: Arc<DnsState>) -> anyhow::Result<()> {
    tracing::debug!(local = ?listener.local_addr().ok(), "dns: serving TCP");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::debug!(error = %e, "dns: TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_tcp_conn(stream, peer, state).await {
                tracing::debug!(%peer, error = %e, "dns: TCP connection ended");
            }
        });
    }
}

async fn serve_tcp_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: Arc<DnsState>,
) -> std::io::Result<()> {
    let local = stream.local_addr()?;
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()), // idle
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(_)) => {}
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await {
            Err(_) => return Ok(()),
            Ok(r) => {
                r?;
            }
        }
        let Some(vpc) = (state.vpc_of)(peer, local) else {
            tracing::trace!(%peer, %local, "dns: DNS support disabled, TCP connection closed");
            return Ok(());
        };
        let view = state.view.load();
        let Some(reply) = answer(&view, Some(&vpc), &msg) else {
            // Nothing sensible to say (a response, or less than a header): hang up.
            return Ok(());
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(2 + reply.len());
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
    }
}

/// The answer to one query message from VPC `vpc` (None: from no VPC, no instance names)
/// (pure; used by both servers and by tests). None = send nothing.
pub fn answer(view: &DnsView, vpc: Option<&str>, query: &[u8]) -> Option<Vec<u8>> {
    respond(view, vpc, query)?.encode()
}

/// A response message, plus how large a UDP reply may be for it.
struct Reply {
    msg: Message,
    udp_limit: usize,
}

impl Reply {
    fn encode(&self) -> Option<Vec<u8>> {
        match self.msg.to_vec() {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::debug!(error = %e, "dns: could not encode a response");
                None
            }
        }
    }

    /// Encoded for UDP: over the client's limit → TC set and the answers left out, so the
    /// client retries over TCP. (Our answers are small; this is a guard.)
    fn encode_udp(&self) -> Option<Vec<u8>> {
        let bytes = self.encode()?;
        if bytes.len() <= self.udp_limit {
            return Some(bytes);
        }
        let mut short = self.msg.clone();
        short.metadata.truncation = true;
        short.answers.clear();
        short.authorities.clear();
        short.additionals.clear();
        short.to_vec().ok()
    }
}

fn respond(view: &DnsView, vpc: Option<&str>, query: &[u8]) -> Option<Reply> {
    // Header first: it tells us whether to answer at all, and the id to answer with.
    let header = Header::read(&mut BinDecoder::new(query)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None; // never answer a response (no loops, no reflection games)
    }
    let bare = |rcode: ResponseCode| {
        let mut msg = Message::response(header.metadata.id, header.metadata.op_code);
        msg.metadata.recursion_desired = header.metadata.recursion_desired;
        msg.metadata.checking_disabled = header.metadata.checking_disabled;
        msg.metadata.recursion_available = true;
        msg.metadata.response_code = rcode;
        Some(Reply { msg, udp_limit: 512 })
    };
    if header.metadata.op_code != OpCode::Query {
        return bare(ResponseCode::NotImp);
    }
    let request = match Message::from_vec(query) {
        Ok(m) => m,
        Err(e) => {
            tracing::trace!(error = %e, "dns: malformed query");
            return bare(ResponseCode::FormErr);
        }
    };
    if request.queries.len() != 1 {
        return bare(ResponseCode::FormErr);
    }
    let question = request.queries[0].clone();

    let mut msg = Message::response(request.metadata.id, OpCode::Query);
    msg.metadata.recursion_desired = request.metadata.recursion_desired;
    msg.metadata.checking_disabled = request.metadata.checking_disabled;
    msg.metadata.recursion_available = true;
    msg.add_query(question.clone());
    let mut udp_limit = 512;
    if let Some(edns) = &request.edns {
        udp_limit = usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD));
        let mut ours = Edns::new();
        ours.set_max_payload(EDNS_PAYLOAD);
        ours.set_version(0);
        msg.edns = Some(ours);
        if edns.version() > 0 {
            // RFC 6891 §6.1.3: BADVERS (16 = high 8 bits 1, low 4 bits 0).
            msg.metadata.response_code = ResponseCode::BADVERS;
            return Some(Reply { msg, udp_limit });
        }
    }

    match question.query_class {
        DNSClass::IN | DNSClass::ANY => {}
        _ => {
            msg.metadata.response_code = ResponseCode::Refused;
            return Some(Reply { msg, udp_limit });
        }
    }

    msg.metadata.authoritative = true;
    let labels = lower_labels(&question.name);
    let qtype = question.query_type;
    match resolve(view, vpc, &labels) {
        Node::Record(rdata) if qtype == RecordType::ANY || rdata.record_type() == qtype => {
            let ttl = if matches!(rdata, RData::SOA(_)) { NEGATIVE_TTL } else { TTL };
            let mut rec = Record::from_rdata(question.name.clone(), ttl, rdata);
            rec.dns_class = DNSClass::IN;
            msg.add_answer(rec);
        }
        // The name exists (with a record of another type, or names below it): NODATA.
        Node::Record(_) | Node::Empty => add_soa(&mut msg, view, &labels),
        Node::Missing => {
            msg.metadata.response_code = ResponseCode::NXDomain;
            add_soa(&mut msg, view, &labels);
        }
    }
    Some(Reply { msg, udp_limit })
}

/// What the lab has at a name.
#[derive(Debug, PartialEq)]
enum Node {
    /// The name owns this one record.
    Record(RData),
    /// The name owns no record but names exist below it (an empty non-terminal, like
    /// `us-east-1.amazonaws.com`, or `com`).
    Empty,
    /// Nothing exists at or below the name.
    Missing,
}

/// The labels of `name`, lower-cased (the root: none).
fn lower_labels(name: &Name) -> Vec<String> {
    name.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect()
}

/// What `view` has at the name of `labels` (lower-cased, as [`lower_labels`] makes them) for
/// a query from `vpc`.
fn resolve(view: &DnsView, vpc: Option<&str>, labels: &[String]) -> Node {
    let full = labels.join(".");
    if let Some(ip) = host_address(view, &full) {
        return Node::Record(RData::A(A(ip)));
    }
    if let Some(range) = s3_range_for(view, labels) {
        return Node::Record(RData::A(A(address_in(range, &full))));
    }
    if zones(view).any(|z| z == full) {
        return Node::Record(RData::SOA(soa()));
    }
    for ip in vpc_instances(view, vpc) {
        let host = instance_hostname(&view.instance_domain, ip);
        if full == host {
            return Node::Record(RData::A(A(ip)));
        }
        if full == reverse_name(ip)
            && let Ok(target) = Name::from_ascii(format!("{host}."))
        {
            return Node::Record(RData::PTR(PTR(target)));
        }
    }
    // RFC 8020 §2: "when an iterative caching DNS resolver receives a response NXDOMAIN, it
    // SHOULD store it in its cache and then all names and resource record sets (RRsets) at or
    // below that node SHOULD be considered unreachable". So a name with anything below it is
    // NOERROR without answers (NODATA), never NXDOMAIN. Every name with bucket labels in front
    // lies below one of the finitely many names of `known_names`, so their ancestors are all
    // the ancestors there are. (The root: `full` is empty, and everything is below it.)
    let below = format!(".{full}");
    if full.is_empty() || known_names(view, vpc).iter().any(|n| n.ends_with(&below)) {
        return Node::Empty;
    }
    Node::Missing
}

/// The address of an internet host named `full` (`<name>` or `<name>.internet`).
fn host_address(view: &DnsView, full: &str) -> Option<Ipv4Addr> {
    view.hosts.iter().find_map(|(host, ip)| {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let hit =
            !host.is_empty() && (full == host || full.strip_suffix(".internet") == Some(&host));
        hit.then_some(*ip)
    })
}

/// The private addresses of the instances of `vpc` (none without a VPC or instance domain).
fn vpc_instances<'a>(
    view: &'a DnsView,
    vpc: Option<&'a str>,
) -> impl Iterator<Item = Ipv4Addr> + 'a {
    let named = !view.instance_domain.is_empty();
    view.instances.iter().filter(move |(v, _)| named && Some(v.as_str()) == vpc).map(|(_, ip)| *ip)
}

/// Every name of `view` that exists for `vpc` without bucket labels in front (lower case, no
/// trailing dot): the zone apexes, the internet hosts, each region's S3 and repository names,
/// and the VPC's instance names, forward and reverse.
fn known_names(view: &DnsView, vpc: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = zones(view).map(str::to_string).collect();
    for ip in vpc_instances(view, vpc) {
        out.push(instance_hostname(&view.instance_domain, ip));
        out.push(reverse_name(ip));
    }
    for (host, _) in &view.hosts {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !host.is_empty() {
            out.push(format!("{host}.internet"));
            out.push(host);
        }
    }
    if view.s3_regions.iter().any(|(r, _)| r.eq_ignore_ascii_case("us-east-1")) {
        out.extend(["s3.amazonaws.com".into(), "s3-external-1.amazonaws.com".into()]);
    }
    for (r, _) in &view.s3_regions {
        let r = r.to_ascii_lowercase();
        for name in ["s3.", "s3-", "s3.dualstack.", "packages.", "repo."] {
            out.push(format!("{name}{r}.amazonaws.com"));
        }
        if crate::model::has_s3_fips(&r) {
            out.push(format!("s3-fips.{r}.amazonaws.com"));
            out.push(format!("s3-fips.dualstack.{r}.amazonaws.com"));
        }
    }
    out
}

/// The zones that have an SOA, carried by their negative answers (lower case, no trailing dot):
/// `amazonaws.com`, the instance domain (if any) and `in-addr.arpa`. Names outside them (the
/// internet hosts, `com`, `internal`, anything unknown) are answered without one: the lab does
/// not pretend to be the root's or a TLD's authority, and RFC 2308 §5 lets a client simply not
/// cache such an answer ("Negative responses without SOA records SHOULD NOT be cached").
fn zones(view: &DnsView) -> impl Iterator<Item = &str> {
    let instances = Some(view.instance_domain.as_str()).filter(|d| !d.is_empty());
    ["amazonaws.com", "in-addr.arpa"].into_iter().chain(instances)
}

/// The zone (of [`zones`]) the name `full` is in, if any.
fn zone_of<'a>(view: &'a DnsView, full: &str) -> Option<&'a str> {
    zones(view).find(|z| full == *z || full.strip_suffix(z).is_some_and(|p| p.ends_with('.')))
}

/// TTL of the SOA record, and its MINIMUM: how long a negative answer may be cached
/// (RFC 2308 §5: "the minimum of the MINIMUM field of the SOA record and the TTL of the SOA
/// itself"). As short as [`TTL`], not Route 53's default day, because a lab changes: a bucket
/// or instance named before it exists must resolve soon after.
pub const NEGATIVE_TTL: u32 = TTL;

/// The SOA of every zone of [`zones`]. Serial and timers are those of the Route 53 Developer
/// Guide's example ("NS and SOA records that Amazon Route 53 creates": `ns-2048.awsdns-64.net.
/// hostmaster.example.com. 1 7200 900 1209600 86400`), the minimum lowered to
/// [`NEGATIVE_TTL`]; primary and mailbox are the ones Route 53 private hosted zones are seen
/// with (from memory, not from the guide; the mailbox is, as the guide says of the default,
/// "an amazon.com email address"). Fixed: nothing transfers these zones.
fn soa() -> SOA {
    SOA::new(
        Name::from_ascii("ns-1536.awsdns-00.co.uk.").expect("a valid constant name"),
        Name::from_ascii("awsdns-hostmaster.amazon.com.").expect("a valid constant name"),
        1,
        7200,
        900,
        1_209_600,
        NEGATIVE_TTL,
    )
}

/// RFC 2308 §3: "Name servers authoritative for a zone MUST include the SOA record of the zone
/// in the authority section of the response when reporting an NXDOMAIN or indicating that no
/// data of the requested type exists". Adds it when the name of `labels` is in one of
/// [`zones`].
fn add_soa(msg: &mut Message, view: &DnsView, labels: &[String]) {
    let Some(zone) = zone_of(view, &labels.join(".")) else {
        return;
    };
    let Ok(apex) = Name::from_ascii(format!("{zone}.")) else { return };
    let mut rec = Record::from_rdata(apex, NEGATIVE_TTL, RData::SOA(soa()));
    rec.dns_class = DNSClass::IN;
    msg.add_authority(rec);
}

/// The S3 range of the region an S3 (or Amazon Linux repository) name belongs to.
fn s3_range_for(view: &DnsView, labels: &[String]) -> Option<Ipv4Net> {
    let region = |r: &str| {
        view.s3_regions.iter().find(|(name, _)| name.eq_ignore_ascii_case(r)).map(|(_, net)| *net)
    };
    let n = labels.len();
    if n < 3 || labels[n - 1] != "com" || labels[n - 2] != "amazonaws" {
        return None;
    }
    let rest = &labels[..n - 2]; // everything before "amazonaws.com"
    let k = rest.len();
    let last = rest[k - 1].as_str();

    // <bucket>.s3.amazonaws.com: the legacy global name goes to the bucket's own region. The
    // S3 API Reference ("Request routing"): "Amazon S3 uses the Domain Name System (DNS) to
    // route requests to facilities that can process them. This system works effectively, but
    // temporary routing errors can occur" (most likely "immediately after buckets are created
    // or deleted"; here for at most a TTL, the view follows the buckets within a second).
    // A name of no bucket (or of one in a region without a range here) stays US Standard.
    if last == "s3" && k >= 2 {
        let bucket = rest[..k - 1].join(".");
        if let Some(net) = view.bucket_regions.get(&bucket).and_then(|r| region(r)) {
            return Some(net);
        }
    }
    // s3.amazonaws.com / s3-external-1.amazonaws.com (US Standard = us-east-1), with buckets.
    // `s3-external-1` is us-east-1's own endpoint name: it does not follow buckets elsewhere.
    if last == "s3" || last == "s3-external-1" {
        return region("us-east-1");
    }
    // s3-<r>.amazonaws.com, with buckets.
    if let Some(r) = last.strip_prefix("s3-") {
        return region(r);
    }
    // ... .<r>.amazonaws.com
    let net = region(last)?;
    // The AWS General Reference lists FIPS endpoints only for some regions.
    let fips = || crate::model::has_s3_fips(last);
    match &rest[..k - 1] {
        // s3.<r>, s3.dualstack.<r>, with buckets.
        [.., s3] if s3 == "s3" => Some(net),
        [.., s3, ds] if s3 == "s3" && ds == "dualstack" => Some(net),
        // s3-fips.<r>, s3-fips.dualstack.<r>, with buckets.
        [.., s3] if s3 == "s3-fips" && fips() => Some(net),
        [.., s3, ds] if s3 == "s3-fips" && ds == "dualstack" && fips() => Some(net),
        // Amazon Linux repositories (S3 buckets of the region).
        [only] if only == "packages" || only == "repo" => Some(net),
        _ => None,
    }
}

/// A stable address inside `range` for `name`: never the network or broadcast address
/// (for ranges of at least 4 addresses), and away from the range's first and last few
/// addresses when the range is large enough.
fn address_in(range: Ipv4Net, name: &str) -> Ipv4Addr {
    let net = u32::from(range.network());
    let size: u64 = 1u64 << (32 - u32::from(range.prefix_len()));
    let h = fnv1a(name.as_bytes());
    let offset = if size > 10 {
        5 + h % (size - 10)
    } else if size >= 4 {
        1 + h % (size - 2)
    } else {
        h % size // /31, /32: nothing to avoid
    };
    Ipv4Addr::from(net.wrapping_add(offset as u32))
}

/// FNV-1a, 64 bit: stable across builds and Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A query message for `name`/`rtype` (RD set), as a client would send it. For tests and
/// callers that probe the resolver.
pub fn build_query(id: u16, name: &str, rtype: RecordType) -> anyhow::Result<Vec<u8>> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name)?, rtype));
    Ok(msg.to_vec()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::sync::Mutex;

    fn net(s: &str) -> Ipv4Net {
        Ipv4Net::from_str(s).unwrap()
    }

    fn view() -> DnsView {
        DnsView {
            s3_regions: vec![
                ("us-east-1".into(), net("54.123.160.0/19")),
                ("us-west-2".into(), net("52.218.128.0/17")),
                ("eu-west-1".into(), net("52.92.0.0/20")),
                ("ap-south-1".into(), net("3.5.208.0/22")),
                ("us-east-1".into(), net("1.2.3.0/24")), // second range: ignored
            ],
            hosts: vec![
                ("check-ip".into(), Ipv4Addr::new(198, 51, 100, 10)),
                ("Mirror.Example".into(), Ipv4Addr::new(198, 51, 100, 11)),
            ],
            instance_domain: instance_domain("us-east-1"),
            instances: vec![
                (VPC.into(), Ipv4Addr::new(10, 0, 1, 10)),
                (VPC.into(), Ipv4Addr::new(10, 0, 2, 200)),
                // Another VPC: the same address (VPCs may overlap), and one of its own.
                ("vpc-other".into(), Ipv4Addr::new(10, 0, 1, 10)),
                ("vpc-other".into(), Ipv4Addr::new(172, 31, 0, 5)),
            ],
            bucket_regions: [
                ("oregon-bucket", "us-west-2"),
                ("a.b", "eu-west-1"),
                ("far", "mars-1"),
            ]
            .into_iter()
            .map(|(b, r)| (b.into(), r.into()))
            .collect(),
        }
    }

    /// The VPC every test query comes from.
    const VPC: &str = "vpc-a";

    fn ask(view: &DnsView, name: &str, rtype: RecordType) -> Message {
        ask_from(view, Some(VPC), name, rtype)
    }

    fn ask_from(view: &DnsView, vpc: Option<&str>, name: &str, rtype: RecordType) -> Message {
        let q = build_query(0x1234, name, rtype).unwrap();
        let r = answer(view, vpc, &q).expect("a response");
        Message::from_vec(&r).unwrap()
    }

    /// Some(ip) for a NOERROR A answer, None for NXDOMAIN; panics otherwise.
    fn a(view: &DnsView, name: &str) -> Option<Ipv4Addr> {
        let m = ask(view, name, RecordType::A);
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_available && m.metadata.recursion_desired);
        assert!(m.metadata.authoritative);
        assert_eq!(m.queries.len(), 1);
        let bare = |n: &Name| n.to_ascii().trim_end_matches('.').to_string();
        assert_eq!(bare(&m.queries[0].name), bare(&Name::from_ascii(name).unwrap()));
        match m.metadata.response_code {
            ResponseCode::NXDomain => {
                assert!(m.answers.is_empty());
                None
            }
            ResponseCode::NoError => {
                assert_eq!(m.answers.len(), 1, "{name}");
                let rec = &m.answers[0];
                assert_eq!(rec.ttl, TTL);
                assert_eq!(rec.dns_class, DNSClass::IN);
                assert_eq!(rec.name.to_ascii(), m.queries[0].name.to_ascii());
                match &rec.data {
                    RData::A(A(ip)) => Some(*ip),
                    other => panic!("{name}: {other:?}"),
                }
            }
            rc => panic!("{name}: {rc:?}"),
        }
    }

    fn assert_in(range: &str, name: &str) {
        let r = net(range);
        let ip = a(&view(), name).unwrap_or_else(|| panic!("{name}: NXDOMAIN"));
        assert!(r.contains(&ip), "{name} → {ip} not in {r}");
        assert_ne!(ip, r.network(), "{name}");
        assert_ne!(ip, r.broadcast(), "{name}");
    }

    #[test]
    fn table_of_names() {
        let regions = [
            ("us-east-1", "54.123.160.0/19"),
            ("us-west-2", "52.218.128.0/17"),
            ("eu-west-1", "52.92.0.0/20"),
            ("ap-south-1", "3.5.208.0/22"),
        ];
        for (r, range) in regions {
            for base in [
                format!("s3.{r}.amazonaws.com"),
                format!("s3-{r}.amazonaws.com"),
                format!("s3.dualstack.{r}.amazonaws.com"),
            ] {
                for name in [
                    base.clone(),
                    format!("{base}."),
                    base.to_ascii_uppercase(),
                    format!("{}.", base.to_ascii_uppercase()),
                    format!("my-bucket.{base}"),
                    format!("a.b.{base}"),
                    format!("My-Bucket.{}.", base.to_ascii_uppercase()),
                    format!("packages.{r}.amazonaws.com.{base}"),
                ] {
                    assert_in(range, &name);
                }
            }
            // FIPS: only where AWS has it (us-east-1 and us-west-2 here).
            let fips = r.starts_with("us-");
            for base in [
                format!("s3-fips.{r}.amazonaws.com"),
                format!("s3-fips.dualstack.{r}.amazonaws.com"),
            ] {
                for name in [base.clone(), format!("my-bucket.{base}"), format!("A.B.{base}.")] {
                    if fips {
                        assert_in(range, &name);
                    } else {
                        assert_eq!(a(&view(), &name), None, "{name}");
                    }
                }
            }
            assert_in(range, &format!("packages.{r}.amazonaws.com"));
            assert_in(range, &format!("repo.{r}.amazonaws.com."));
            assert_in(range, &format!("REPO.{}.AMAZONAWS.COM", r.to_ascii_uppercase()));
            // Not S3 names of the region.
            for name in [
                format!("ec2.{r}.amazonaws.com"),
                format!("x.packages.{r}.amazonaws.com"),
                format!("s3.{r}.amazonaws.com.evil"),
                format!("s3.dualstack.x.{r}.amazonaws.com"),
                format!("s3-fips.x.{r}.amazonaws.com"),
                format!("fips.{r}.amazonaws.com"),
                format!("s3.{r}.amazonaws.org"),
            ] {
                assert_eq!(a(&view(), &name), None, "{name}");
            }
        }
        // US Standard → us-east-1 (its first range, not 1.2.3.0/24).
        for name in [
            "s3.amazonaws.com",
            "s3.amazonaws.com.",
            "S3.AmazonAWS.com",
            "bucket.s3.amazonaws.com",
            "a.b.c.s3.amazonaws.com.",
            "s3-external-1.amazonaws.com",
            "my-bucket.s3-external-1.amazonaws.com",
            "MY-BUCKET.S3-EXTERNAL-1.AMAZONAWS.COM.",
        ] {
            assert_in("54.123.160.0/19", name);
        }
        // Unknown regions and everything else: NXDOMAIN.
        for name in [
            "s3.eu-central-1.amazonaws.com",
            "s3-eu-central-1.amazonaws.com",
            "s3.dualstack.eu-central-1.amazonaws.com",
            "packages.eu-central-1.amazonaws.com",
            "bucket.s3-external-2.amazonaws.com",
            "eu-central-1.amazonaws.com",
            "example.com",
            "www.google.com.",
            "check-ip.example",
            "x.check-ip",
            "check-ip.internet.internet",
            "sts.amazonaws.com",
            "s3-.amazonaws.com",
        ] {
            assert_eq!(a(&view(), name), None, "{name}");
        }
    }

    /// The legacy global name of a bucket resolves into its own region's range (DNS routing,
    /// as S3 does it), so a presigned `https://oregon-bucket.s3.amazonaws.com/...` reaches
    /// us-west-2's S3; every other S3 name of it keeps its own region.
    #[test]
    fn global_bucket_name_follows_the_bucket() {
        for name in ["oregon-bucket.s3.amazonaws.com", "Oregon-Bucket.S3.AmazonAWS.com."] {
            assert_in("52.218.128.0/17", name);
        }
        assert_in("52.92.0.0/20", "a.b.s3.amazonaws.com");
        for name in [
            // No such bucket, a region without a range, the bare name: US Standard.
            "no-such-bucket.s3.amazonaws.com",
            "far.s3.amazonaws.com",
            "s3.amazonaws.com",
            "b.s3.amazonaws.com",
            // us-east-1's own names do not follow the bucket.
            "oregon-bucket.s3-external-1.amazonaws.com",
            "oregon-bucket.s3.us-east-1.amazonaws.com",
            "oregon-bucket.s3-us-east-1.amazonaws.com",
        ] {
            assert_in("54.123.160.0/19", name);
        }
        // Another region's names of the bucket stay that region's.
        assert_in("52.92.0.0/20", "oregon-bucket.s3.eu-west-1.amazonaws.com");
    }

    /// The SOA of amazonaws.com if `m` carries it in the authority section (and nothing else).
    fn negative_soa(m: &Message) -> Option<SOA> {
        assert!(m.answers.is_empty());
        match m.authorities.as_slice() {
            [] => None,
            [rec] => {
                assert_eq!(rec.name, Name::from_ascii("amazonaws.com.").unwrap());
                assert_eq!((rec.ttl, rec.dns_class), (NEGATIVE_TTL, DNSClass::IN));
                match &rec.data {
                    RData::SOA(soa) => Some(soa.clone()),
                    other => panic!("{other:?}"),
                }
            }
            more => panic!("{more:?}"),
        }
    }

    #[test]
    fn empty_non_terminals_are_nodata() {
        // RFC 8020: names below exist, so these are NOERROR without answers, never NXDOMAIN.
        let v = view();
        for (name, in_zone) in [
            ("us-east-1.amazonaws.com", true),
            ("US-EAST-1.AmazonAWS.com.", true),
            ("dualstack.us-east-1.amazonaws.com", true),
            ("dualstack.us-west-2.amazonaws.com", true), // s3-fips.dualstack. and s3.dualstack.
            ("ap-south-1.amazonaws.com", true),
            ("amazonaws.com", true), // the apex: its SOA, but no A
            ("com", false),
            ("internet", false), // check-ip.internet
            ("example", false),  // mirror.example
            (".", false),        // the root
        ] {
            for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                let m = ask(&v, name, t);
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name} {t}");
                assert!(m.metadata.authoritative, "{name}");
                assert_eq!(negative_soa(&m).is_some(), in_zone, "{name} {t}");
            }
        }
        // Not ancestors of anything: NXDOMAIN (fips. is no parent: s3-fips. is one label).
        for name in ["fips.us-east-1.amazonaws.com", "dualstack.eu-west-2.amazonaws.com", "co"] {
            assert_eq!(ask(&v, name, RecordType::A).metadata.response_code, ResponseCode::NXDomain);
        }
        // An empty view has the zone apex only.
        let m = ask(&DnsView::default(), "us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(negative_soa(&m).is_some());
    }

    #[test]
    fn negative_answers_carry_the_soa() {
        let v = view();
        // NXDOMAIN in the zone: SOA (RFC 2308 §3), its minimum the negative TTL.
        for name in ["sts.amazonaws.com", "s3.eu-central-1.amazonaws.com", "X.Y.AMAZONAWS.COM."] {
            let m = ask(&v, name, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
            let soa = negative_soa(&m).unwrap_or_else(|| panic!("{name}: no SOA"));
            assert_eq!(soa.mname, Name::from_ascii("ns-1536.awsdns-00.co.uk.").unwrap());
            assert_eq!(soa.rname, Name::from_ascii("awsdns-hostmaster.amazon.com.").unwrap());
            assert_eq!((soa.serial, soa.minimum), (1, NEGATIVE_TTL));
        }
        // NODATA for a name with another type: SOA too.
        for t in [RecordType::AAAA, RecordType::MX] {
            let m = ask(&v, "bucket.s3.us-east-1.amazonaws.com", t);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(negative_soa(&m).is_some(), "{t}");
        }
        // Outside the zone: no SOA (the lab is nobody's authority for the internet).
        for (name, rcode) in [
            ("www.example.com", ResponseCode::NXDomain),
            ("check-ip.example", ResponseCode::NXDomain),
            ("check-ip", ResponseCode::NoError),
        ] {
            let m = ask(&v, name, RecordType::AAAA);
            assert_eq!(m.metadata.response_code, rcode, "{name}");
            assert_eq!(negative_soa(&m), None, "{name}");
        }
        // Positive answers carry no authority section.
        assert!(ask(&v, "s3.amazonaws.com", RecordType::A).authorities.is_empty());
    }

    #[test]
    fn zone_apex_has_an_soa() {
        let v = view();
        for t in [RecordType::SOA, RecordType::ANY] {
            let m = ask(&v, "AmazonAWS.com.", t);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.authorities.is_empty());
            let [rec] = m.answers.as_slice() else { panic!("{t}: {:?}", m.answers) };
            assert_eq!(rec.name.to_ascii(), "AmazonAWS.com.");
            assert_eq!(rec.ttl, NEGATIVE_TTL);
            assert!(matches!(&rec.data, RData::SOA(s) if s.minimum == NEGATIVE_TTL));
        }
        // Nowhere else: a SOA query for a name inside the zone is NODATA with the SOA.
        let m = ask(&v, "s3.amazonaws.com", RecordType::SOA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(negative_soa(&m).is_some());
    }

    #[test]
    fn instance_hostnames() {
        let v = view();
        let ip = |a, b, c, d| Some(Ipv4Addr::new(a, b, c, d));
        // us-east-1: ec2.internal; the querying VPC's instances only.
        assert_eq!(a(&v, "ip-10-0-1-10.ec2.internal"), ip(10, 0, 1, 10));
        assert_eq!(a(&v, "IP-10-0-2-200.EC2.Internal."), ip(10, 0, 2, 200));
        for name in [
            "ip-172-31-0-5.ec2.internal", // vpc-other's
            "ip-10-0-1-11.ec2.internal",  // no instance
            "ip-10-0-1-010.ec2.internal", // not the name AWS gives
            "ip-10-0-1-10.us-east-1.compute.internal",
            "x.ip-10-0-1-10.ec2.internal",
            "ip-10-0-1-10.ec2.internal.evil",
        ] {
            assert_eq!(a(&v, name), None, "{name}");
        }
        // vpc-other sees its own, and the shared address as its own instance.
        let m = ask_from(&v, Some("vpc-other"), "ip-172-31-0-5.ec2.internal", RecordType::A);
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(172, 31, 0, 5))));
        let m = ask_from(&v, Some("vpc-other"), "ip-10-0-2-200.ec2.internal", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // From no VPC: no instance names.
        let m = ask_from(&v, None, "ip-10-0-1-10.ec2.internal", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // Other regions: <region>.compute.internal.
        assert_eq!(instance_domain("us-west-2"), "us-west-2.compute.internal");
        assert_eq!(instance_domain("eu-west-1"), "eu-west-1.compute.internal");
        let west = DnsView { instance_domain: instance_domain("us-west-2"), ..view() };
        assert_eq!(a(&west, "ip-10-0-1-10.us-west-2.compute.internal"), ip(10, 0, 1, 10));
        assert_eq!(a(&west, "ip-10-0-1-10.ec2.internal"), None);
        // The instance domain is a zone: its SOA, and in NXDOMAIN / NODATA answers.
        let m = ask(&v, "ip-10-0-1-11.ec2.internal", RecordType::A);
        assert_eq!(zone_soa(&m).as_deref(), Some("ec2.internal."));
        let m = ask(&v, "ip-10-0-1-10.ec2.internal", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(zone_soa(&m).as_deref(), Some("ec2.internal."));
        let m = ask(&v, "ec2.internal", RecordType::SOA);
        assert!(matches!(m.answers[0].data, RData::SOA(_)));
        // Its parent has names below: NODATA, outside every zone.
        let m = ask(&v, "internal", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(zone_soa(&m), None);
    }

    #[test]
    fn reverse_lookups() {
        let v = view();
        let ptr = |vpc: Option<&str>, name: &str| {
            let m = ask_from(&v, vpc, name, RecordType::PTR);
            match (m.metadata.response_code, m.answers.as_slice()) {
                (ResponseCode::NXDomain, []) => None,
                (ResponseCode::NoError, [rec]) => {
                    let bare = rec.name.to_ascii().trim_end_matches('.').to_string();
                    assert_eq!((rec.ttl, bare.as_str()), (TTL, name.trim_end_matches('.')));
                    match &rec.data {
                        RData::PTR(PTR(target)) => Some(target.to_ascii()),
                        other => panic!("{other:?}"),
                    }
                }
                other => panic!("{name}: {other:?}"),
            }
        };
        let host = Some("ip-10-0-1-10.ec2.internal.".to_string());
        assert_eq!(ptr(Some(VPC), "10.1.0.10.in-addr.arpa"), host);
        assert_eq!(ptr(Some(VPC), "10.1.0.10.IN-ADDR.ARPA."), host);
        assert_eq!(ptr(Some("vpc-other"), "10.1.0.10.in-addr.arpa."), host);
        assert_eq!(
            ptr(Some(VPC), "200.2.0.10.in-addr.arpa"),
            Some("ip-10-0-2-200.ec2.internal.".into())
        );
        // No instance at the address (here), another VPC's, leading zeros, no VPC: NXDOMAIN.
        for (vpc, name) in [
            (Some(VPC), "11.1.0.10.in-addr.arpa"),
            (Some(VPC), "5.0.31.172.in-addr.arpa"),
            (Some(VPC), "010.1.0.10.in-addr.arpa"),
            (Some(VPC), "10.1.0.10.in-addr.arpa.x"),
            (Some(VPC), "23.172.123.54.in-addr.arpa"),
            (None, "10.1.0.10.in-addr.arpa"),
        ] {
            assert_eq!(ptr(vpc, name), None, "{name}");
        }
        // A PTR name has no A; its parents are empty non-terminals; the zone's SOA throughout.
        let m = ask(&v, "10.1.0.10.in-addr.arpa", RecordType::A);
        assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));
        assert_eq!(zone_soa(&m).as_deref(), Some("in-addr.arpa."));
        for name in ["1.0.10.in-addr.arpa", "0.10.in-addr.arpa", "10.in-addr.arpa"] {
            let m = ask(&v, name, RecordType::PTR);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(zone_soa(&m).as_deref(), Some("in-addr.arpa."), "{name}");
        }
        let m = ask(&v, "11.1.0.10.in-addr.arpa", RecordType::PTR);
        assert_eq!(zone_soa(&m).as_deref(), Some("in-addr.arpa."));
        assert_eq!(ask(&v, "arpa", RecordType::A).metadata.response_code, ResponseCode::NoError);
    }

    /// The owner of the SOA in the authority section of `m`, if one is there.
    fn zone_soa(m: &Message) -> Option<String> {
        m.authorities.iter().find(|r| matches!(r.data, RData::SOA(_))).map(|r| r.name.to_ascii())
    }

    #[test]
    fn known_names_exist() {
        // The names the empty-non-terminal rule relies on all resolve (to an A, or the SOA).
        let v = view();
        for name in known_names(&v, Some(VPC)) {
            let labels: Vec<String> = name.split('.').map(str::to_string).collect();
            assert!(matches!(resolve(&v, Some(VPC), &labels), Node::Record(_)), "{name}");
        }
    }

    #[test]
    fn internet_hosts() {
        let v = view();
        let ip = Some(Ipv4Addr::new(198, 51, 100, 10));
        for name in ["check-ip", "check-ip.", "CHECK-IP", "check-ip.internet", "Check-IP.Internet."]
        {
            assert_eq!(a(&v, name), ip, "{name}");
        }
        let ip = Some(Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(a(&v, "mirror.example"), ip);
        assert_eq!(a(&v, "MIRROR.EXAMPLE.internet."), ip);
    }

    #[test]
    fn stable_and_spread() {
        let v = view();
        let one = a(&v, "my-bucket.s3.us-east-1.amazonaws.com").unwrap();
        for _ in 0..3 {
            assert_eq!(a(&v, "my-bucket.s3.us-east-1.amazonaws.com"), Some(one));
        }
        assert_eq!(a(&v, "MY-BUCKET.s3.US-EAST-1.amazonaws.com."), Some(one));
        // A rebuilt view answers the same.
        assert_eq!(a(&view(), "my-bucket.s3.us-east-1.amazonaws.com"), Some(one));
        // Pinned value: the derivation must not change silently between builds.
        assert_eq!(one, Ipv4Addr::new(54, 123, 172, 23));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..20 {
            seen.insert(a(&v, &format!("bucket-{i}.s3.us-east-1.amazonaws.com")).unwrap());
        }
        assert!(seen.len() >= 18, "buckets should spread over the range: {seen:?}");
    }

    #[test]
    fn small_ranges() {
        for (range, lo, hi) in [
            ("10.0.0.0/24", 5, 250),
            ("10.0.0.0/28", 5, 10),
            ("10.0.0.0/29", 1, 6),
            ("10.0.0.0/30", 1, 2),
            ("10.0.0.0/31", 0, 1),
            ("10.0.0.7/32", 7, 7),
        ] {
            for i in 0..200 {
                let ip = address_in(net(range), &format!("b{i}.s3.amazonaws.com"));
                let last = u32::from(ip) & 0xff;
                assert!((lo..=hi).contains(&last), "{range}: {ip}");
            }
        }
    }

    #[test]
    fn other_types() {
        let v = view();
        for name in ["s3.us-east-1.amazonaws.com", "check-ip", "b.s3.amazonaws.com."] {
            for t in [RecordType::AAAA, RecordType::MX, RecordType::TXT, RecordType::NS] {
                let m = ask(&v, name, t);
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name} {t}");
                assert!(m.answers.is_empty(), "{name} {t}");
                assert_eq!(m.queries[0].query_type, t);
            }
            let m = ask(&v, name, RecordType::ANY);
            assert_eq!(m.answers.len(), 1);
        }
        for t in [RecordType::AAAA, RecordType::MX] {
            let m = ask(&v, "nowhere.example", t);
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        }
    }

    #[test]
    fn header_handling() {
        let v = view();
        let q = build_query(7, "s3.amazonaws.com", RecordType::A).unwrap();

        // Too short for a header: nothing. A response: nothing.
        assert_eq!(answer(&v, Some(VPC), &[]), None);
        assert_eq!(answer(&v, Some(VPC), &q[..11]), None);
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert_eq!(answer(&v, Some(VPC), &resp), None);

        // Non-query opcodes: NOTIMP with the id copied.
        for opcode in [1u8, 2, 4, 5, 15] {
            let mut m = q.clone();
            m[2] = (m[2] & 0x87) | (opcode << 3);
            let r = Message::from_vec(&answer(&v, Some(VPC), &m).unwrap()).unwrap();
            assert_eq!(r.metadata.response_code, ResponseCode::NotImp, "opcode {opcode}");
            assert_eq!(r.metadata.id, 7);
            assert_eq!(r.metadata.message_type, MessageType::Response);
        }

        // Truncated question, zero or two questions: FORMERR.
        let r = Message::from_vec(&answer(&v, Some(VPC), &q[..q.len() - 2]).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(r.metadata.id, 7);
        let mut none = q[..12].to_vec();
        none[5] = 0;
        let r = Message::from_vec(&answer(&v, Some(VPC), &none).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        let mut two = Message::new(9, MessageType::Query, OpCode::Query);
        two.add_query(Query::query(Name::from_ascii("check-ip").unwrap(), RecordType::A));
        two.add_query(Query::query(Name::from_ascii("check-ip").unwrap(), RecordType::A));
        let r = Message::from_vec(&answer(&v, Some(VPC), &two.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

        // Class CH: REFUSED.
        let mut ch = Message::new(10, MessageType::Query, OpCode::Query);
        let mut query = Query::query(Name::from_ascii("version.bind").unwrap(), RecordType::TXT);
        query.set_query_class(DNSClass::CH);
        ch.add_query(query);
        let r = Message::from_vec(&answer(&v, Some(VPC), &ch.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);

        // RD not set → not set in the reply either; still RA.
        let mut nord = q.clone();
        nord[2] &= !0x01;
        let r = Message::from_vec(&answer(&v, Some(VPC), &nord).unwrap()).unwrap();
        assert!(!r.metadata.recursion_desired && r.metadata.recursion_available);

        // EDNS: answered with an OPT record of our own.
        let mut e = Message::new(11, MessageType::Query, OpCode::Query);
        e.add_query(Query::query(Name::from_ascii("check-ip").unwrap(), RecordType::A));
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        e.edns = Some(edns);
        let r = Message::from_vec(&answer(&v, Some(VPC), &e.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.edns.as_ref().map(|e| e.max_payload()), Some(EDNS_PAYLOAD));
    }

    #[test]
    fn longest_name_fits_in_512() {
        // 255-octet wire name: 3 × 63-byte labels + a 49-byte one + s3.amazonaws.com.
        let l = "b".repeat(63);
        let name = format!("{l}.{l}.{l}.{}.s3.amazonaws.com.", "c".repeat(44));
        let q = build_query(1, &name, RecordType::A).unwrap();
        let r = answer(&view(), Some(VPC), &q).unwrap();
        assert!(r.len() <= 512, "{}", r.len());
        assert_eq!(Message::from_vec(&r).unwrap().answers.len(), 1);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = answer(&view(), Some(VPC), &bytes);
            }

            #[test]
            fn mutated_queries_never_panic(
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                cut in any::<usize>(),
            ) {
                let mut q = build_query(3, "a.b.s3.dualstack.us-west-2.amazonaws.com", RecordType::A).unwrap();
                for (i, b) in edits {
                    let n = q.len();
                    q[i % n] = b;
                }
                let n = q.len();
                q.truncate(cut % (n + 1));
                if let Some(r) = answer(&view(), Some(VPC), &q) {
                    prop_assert!(r.len() >= 12);
                    prop_assert_eq!(&r[..2], &q[..2]);
                }
            }

            #[test]
            fn buckets_land_inside_the_range(bucket in "[a-z0-9][a-z0-9-]{2,40}") {
                let r = net("54.123.160.0/19");
                let ip = a(&view(), &format!("{bucket}.s3.us-east-1.amazonaws.com")).unwrap();
                prop_assert!(r.contains(&ip));
                prop_assert!(ip != r.network() && ip != r.broadcast());
            }
        }
    }

    // ---- servers ----

    type Seen = Arc<Mutex<Vec<(SocketAddr, SocketAddr)>>>;

    fn state(allow: bool) -> (Arc<DnsState>, Seen) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let state = DnsState {
            view: Arc::new(arc_swap::ArcSwap::from_pointee(view())),
            vpc_of: Arc::new(move |peer, local| {
                s.lock().unwrap().push((peer, local));
                allow.then(|| VPC.to_string())
            }),
        };
        (Arc::new(state), seen)
    }

    async fn udp_ask(server: SocketAddr, q: &[u8]) -> Option<Message> {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(q, server).await.unwrap();
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(300), c.recv_from(&mut buf)).await {
            Err(_) => None,
            Ok(r) => {
                let (n, from) = r.unwrap();
                assert_eq!(from, server, "reply must come from the address queried");
                Some(Message::from_vec(&buf[..n]).unwrap())
            }
        }
    }

    #[tokio::test]
    async fn udp_server() {
        let (st, seen) = state(true);
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let task = tokio::spawn(serve_udp(sock, st.clone()));

        let q = build_query(42, "My-Bucket.s3.us-east-1.amazonaws.com.", RecordType::A).unwrap();
        let m = udp_ask(addr, &q).await.expect("reply");
        assert_eq!(m.metadata.id, 42);
        let RData::A(A(ip)) = m.answers[0].data else { panic!() };
        assert!(net("54.123.160.0/19").contains(&ip));
        assert_eq!(seen.lock().unwrap().last().unwrap().1, addr);
        // The VPC that vpc_of names is the one whose instances answer.
        let q2 = build_query(44, "ip-10-0-2-200.ec2.internal", RecordType::A).unwrap();
        let m = udp_ask(addr, &q2).await.expect("reply");
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(10, 0, 2, 200))));

        // Garbage gets FORMERR, and the server keeps going.
        let mut junk = vec![0u8, 43, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[200, 1, 2, 3]);
        let m = udp_ask(addr, &junk).await.expect("formerr");
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert!(udp_ask(addr, &[1, 2, 3]).await.is_none());

        // The view can be swapped live.
        st.view.store(Arc::new(DnsView::default()));
        let m = udp_ask(addr, &q).await.expect("reply");
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        task.abort();
    }

    #[tokio::test]
    async fn udp_disabled_is_silent() {
        let (st, seen) = state(false);
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let task = tokio::spawn(serve_udp(sock, st));
        let q = build_query(1, "check-ip", RecordType::A).unwrap();
        assert!(udp_ask(addr, &q).await.is_none());
        assert_eq!(seen.lock().unwrap().len(), 1);
        task.abort();
    }

    #[tokio::test]
    async fn udp_wildcard_is_refused() {
        let (st, _) = state(true);
        let sock = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        assert!(serve_udp(sock, st).await.is_err());
    }

    async fn tcp_exchange(s: &mut TcpStream, q: &[u8]) -> Option<Message> {
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(q);
        s.write_all(&out).await.unwrap();
        let mut len = [0u8; 2];
        match tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut len)).await {
            Err(_) | Ok(Err(_)) => return None, // timeout or closed
            Ok(Ok(_)) => {}
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.unwrap();
        Some(Message::from_vec(&buf).unwrap())
    }

    #[tokio::test]
    async fn tcp_server() {
        let (st, seen) = state(true);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(serve_tcp(l, st));
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Several queries on one connection.
        let q = build_query(5, "repo.eu-west-1.amazonaws.com", RecordType::A).unwrap();
        let m = tcp_exchange(&mut s, &q).await.expect("reply");
        assert_eq!(m.metadata.id, 5);
        let RData::A(A(ip)) = m.answers[0].data else { panic!() };
        assert!(net("52.92.0.0/20").contains(&ip));
        let q = build_query(6, "check-ip.internet", RecordType::AAAA).unwrap();
        let m = tcp_exchange(&mut s, &q).await.expect("reply");
        assert_eq!((m.metadata.id, m.answers.len()), (6, 0));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let (peer, local) = *seen.lock().unwrap().last().unwrap();
        assert_eq!(local, addr);
        assert_eq!(peer, s.local_addr().unwrap());
        task.abort();
    }

    #[tokio::test]
    async fn tcp_disabled_is_silent() {
        let (st, _) = state(false);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(serve_tcp(l, st));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let q = build_query(1, "check-ip", RecordType::A).unwrap();
        assert!(tcp_exchange(&mut s, &q).await.is_none());
        task.abort();
    }
}
