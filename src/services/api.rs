//! The control API on the loopback listener (default `127.0.0.1:4599`):
//! - the EC2 Query API (form posts signed for service `ec2`), answered by [`super::ec2`] and
//!   applied through the lab's one change path ([`crate::lab::control::Control::change`]);
//! - the S3 REST API (requests signed for `s3`, or unsigned and not an EC2 form post), served by
//!   the same handler as the S3 stub, as a client from no VPC;
//! - `GET /_vpcsim/health` and `GET /_vpcsim/status`.
//!
//! The service is chosen from the SigV4 credential scope, as LocalStack's single edge port does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use super::ec2::{self, Ec2Error, Ec2Outcome, Ec2Request};
use super::http::{self, BodyError, IdleBody, Timeouts};
use super::s3::{self, RespBody};
use super::sigv4;
use crate::dataplane::DropReason;
use crate::lab::daemon::Lab;

/// The largest EC2 form post accepted (policies are at most 20 KB; this leaves room).
const MAX_FORM: usize = 1 << 20;

/// What `vpcsim status` prints.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Status {
    pub lab: String,
    pub region: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub snapshot_generation: u64,
    pub namespaces: Vec<String>,
    pub flows: usize,
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Drop counters by reason, every reason listed.
    pub drops: Vec<(String, u64)>,
    /// Packets dropped by each security group or network ACL rule (only rules that dropped).
    #[serde(default)]
    pub filter_drops: Vec<(String, u64)>,
    /// Scans of the flow table for flows a change moved (a change that cannot move a flow
    /// skips it): the control plane's only use of the flow table's locks.
    #[serde(default)]
    pub reset_scans: u64,
}

pub fn status(lab: &Lab) -> Status {
    let c = &lab.control;
    let p = &c.pipeline;
    let record = c.record();
    let world = c.world();
    Status {
        lab: world.lab.clone(),
        region: world.region.clone(),
        pid: record.pid,
        uptime_secs: lab.started.elapsed().as_secs(),
        snapshot_generation: p.snapshot().generation,
        namespaces: record.namespaces.iter().map(|(n, _)| n.clone()).collect(),
        flows: p.flows.len(),
        forwarded_packets: p.counters.forwarded(),
        forwarded_bytes: p.counters.bytes(),
        reset_scans: p.counters.reset_scans(),
        rx_errors: c.io.rx_errors.load(Ordering::Relaxed),
        tx_errors: c.io.tx_errors.load(Ordering::Relaxed),
        drops: DropReason::ALL
            .iter()
            .map(|r| (r.label().to_string(), p.counters.drops(*r)))
            .collect(),
        filter_drops: p
            .snapshot()
            .filters
            .drop_counts()
            .into_iter()
            .map(|(rule, n)| (rule.label, n))
            .collect(),
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    lab: Arc<Lab>,
    timeouts: Timeouts,
) -> anyhow::Result<()> {
    let s3_state = Arc::new(s3::S3State {
        store: lab.store.clone(),
        region: lab.control.world().region,
        origin: Arc::new(|_, _| None),
        access: Some(lab.control.access.clone()),
        // Requests on the control port address no region's S3: `region` applies.
        region_of: Arc::new(|_| None),
        timeouts,
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = stream.local_addr().unwrap_or(peer);
        http::accepted(&stream, &timeouts);
        let lab = lab.clone();
        let s3_state = s3_state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let lab = lab.clone();
                let s3_state = s3_state.clone();
                async move { handle(req, peer, local, lab, s3_state).await }
            });
            if let Err(e) = http::http1(&timeouts).serve_connection(TokioIo::new(stream), svc).await
            {
                tracing::debug!(error = %e, "api connection");
            }
        });
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<RespBody> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// A request id in the UUID form EC2 uses.
fn request_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let a = splitmix(t ^ n.rotate_left(32));
    let b = splitmix(a ^ n);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Answers one request; `Err` when the client stopped sending a body the API reads itself
/// (an EC2 form, a prefix list), which closes the connection unanswered: EC2 documents no
/// error for it. An S3 request's stalled body is answered by the S3 handler.
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    lab: Arc<Lab>,
    s3_state: Arc<s3::S3State>,
) -> Result<Response<RespBody>, BodyError> {
    let idle = s3_state.timeouts.body_idle;
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/_vpcsim/health") => {
            return Ok(full(StatusCode::OK, "ok\n", "text/plain"));
        }
        (&Method::GET, "/_vpcsim/status") => {
            return Ok(match serde_json::to_string_pretty(&status(&lab)) {
                Ok(json) => full(StatusCode::OK, json + "\n", "application/json"),
                Err(e) => full(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), "text/plain"),
            });
        }
        (&Method::PUT, path) if path.starts_with("/_vpcsim/prefix-lists/") => {
            let id = path.trim_start_matches("/_vpcsim/prefix-lists/").to_string();
            let body = read_body(req.into_body(), 64 * 1024, idle).await?;
            return Ok(set_prefix_list(body, &lab, id).await);
        }
        _ => {}
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let header_refs: Vec<(&str, &str)> =
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().as_str().to_string();
    let sreq = sigv4::Request {
        method: &method,
        path: &path,
        query: &query,
        headers: &header_refs,
        payload_sha256: None,
    };
    let service = match sigv4::scope_of(&sreq) {
        Ok(Some((_, scope))) => Some(scope.service),
        Ok(None) => None,
        Err(e) => return Ok(s3_auth_error(&e)),
    };
    let is_form = req.method() == Method::POST
        && header_refs.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type")
                && v.starts_with("application/x-www-form-urlencoded")
        });
    if service.as_deref() == Some("ec2") || (service.is_none() && is_form) {
        let body = read_body(req.into_body(), MAX_FORM, idle).await?;
        return Ok(ec2_request(body, &lab, &method, &path, &query, &header_refs).await);
    }
    Ok(match service.as_deref() {
        // The S3 handler verifies the signature and authorizes the request itself.
        Some("s3") | None => {
            s3::handle(&s3_state, &s3::ConnInfo { peer, local, origin: None }, req).await
        }
        Some(other) => ec2_error(
            StatusCode::BAD_REQUEST,
            &Ec2Error {
                code: "InvalidAction".into(),
                message: format!("vpcsim does not simulate the service '{other}'"),
            },
            &request_id(),
        ),
    })
}

/// A body the API reads whole: `Ok(None)` when it is over `limit` bytes or the connection
/// broke, `Err` when the client stopped sending it for `idle`.
async fn read_body(
    body: Incoming,
    limit: usize,
    idle: std::time::Duration,
) -> Result<Option<Bytes>, BodyError> {
    let (body, stalled) = IdleBody::new(body, idle);
    match Limited::new(body, limit).collect().await {
        Ok(b) => Ok(Some(b.to_bytes())),
        Err(_) if stalled.happened() => Err(BodyError::Idle(idle)),
        Err(_) => Ok(None),
    }
}

/// The admin action that changes an AWS-managed prefix list's CIDRs (the guide: the range of a
/// service "may change from time to time"). Body: CIDRs separated by whitespace or commas.
/// Flows whose path changes are reset like for any other change.
async fn set_prefix_list(body: Option<Bytes>, lab: &Arc<Lab>, id: String) -> Response<RespBody> {
    let Some(body) = body else {
        return full(StatusCode::BAD_REQUEST, "body too large\n", "text/plain");
    };
    let text = String::from_utf8_lossy(&body).to_string();
    let mut cidrs = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()) {
        match word.parse::<ipnet::Ipv4Net>() {
            Ok(n) => cidrs.push(n),
            Err(_) => {
                return full(
                    StatusCode::BAD_REQUEST,
                    format!("'{word}' is not an IPv4 CIDR\n"),
                    "text/plain",
                );
            }
        }
    }
    let control = lab.control.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        control.change(|world| {
            let Some(pl) = world.prefix_list(&id).cloned() else {
                return Err(format!("the prefix list ID '{id}' does not exist"));
            };
            let mut next = world.clone();
            next.set_prefix_list(crate::model::PrefixList { cidrs, ..pl })
                .map_err(|e| e.to_string())?;
            Ok((Some(next), ()))
        })
    })
    .await;
    match outcome {
        Ok(Ok(Ok(()))) => full(StatusCode::OK, "ok\n", "text/plain"),
        Ok(Ok(Err(e))) => full(StatusCode::BAD_REQUEST, e + "\n", "text/plain"),
        Ok(Err(e)) => full(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"), "text/plain"),
        Err(e) => full(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"), "text/plain"),
    }
}

/// The resource an EC2 action is authorized against. From the guide: "We currently do not
/// support resource-level permissions for any of the ec2:*VpcEndpoint* API actions, or for the
/// ec2:DescribePrefixLists action", so those (and Describe*, Create* of new resources) use "*";
/// other actions name the ARN of the resource they act on.
fn ec2_resource(action: &str, params: &[(String, String)], region: &str) -> String {
    if action.contains("VpcEndpoint")
        || action == "DescribePrefixLists"
        || action.starts_with("Describe")
    {
        return "*".into();
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let account = crate::model::ACCOUNT_ID;
    let typed = [
        ("RouteTableId", "route-table"),
        ("SubnetId", "subnet"),
        ("InternetGatewayId", "internet-gateway"),
        ("InstanceId.1", "instance"),
        ("VpcId", "vpc"),
    ];
    for (param, kind) in typed {
        if let Some(id) = get(param) {
            return format!("arn:aws:ec2:{region}:{account}:{kind}/{id}");
        }
    }
    "*".into()
}

fn s3_auth_error(e: &sigv4::AuthError) -> Response<RespBody> {
    let mut w = quick_xml::Writer::new(Vec::new());
    let id = request_id();
    let _ = w.create_element("Error").write_inner_content(|w| {
        w.create_element("Code")
            .write_text_content(quick_xml::events::BytesText::new(e.s3_code()))?;
        w.create_element("Message")
            .write_text_content(quick_xml::events::BytesText::new(&e.s3_message()))?;
        w.create_element("RequestId").write_text_content(quick_xml::events::BytesText::new(&id))?;
        Ok(())
    });
    let mut body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".to_vec();
    body.extend(w.into_inner());
    let status = StatusCode::from_u16(e.s3_status()).unwrap_or(StatusCode::FORBIDDEN);
    full(status, body, "application/xml")
}

fn ec2_error(status: StatusCode, e: &Ec2Error, request_id: &str) -> Response<RespBody> {
    full(status, ec2::error_xml(e, request_id), "text/xml;charset=UTF-8")
}

/// Runs a change (or a read under the change lock) for a request. Under the daemon's
/// multi-thread runtime it runs on this worker thread, whose other tasks move to another thread
/// meanwhile (`block_in_place`), instead of a hand-off to the blocking pool and back (futex and
/// eventfd wake-ups, epoll) per call: at 1,000 CreateRoute calls/s that cut the daemon's CPU per
/// call from about 330 to 290 µs. Elsewhere (a current-thread runtime) on the blocking pool.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        Ok(tokio::task::block_in_place(f))
    } else {
        tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string())
    }
}

async fn ec2_request(
    body: Option<Bytes>,
    lab: &Arc<Lab>,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Response<RespBody> {
    let id = request_id();
    let body = match body {
        Some(b) => b,
        None => {
            let e = Ec2Error {
                code: "InvalidParameterValue".into(),
                message: "the request body is too large or broken".into(),
            };
            return ec2_error(StatusCode::BAD_REQUEST, &e, &id);
        }
    };
    let hash = sigv4::sha256_hex(&body);
    let sreq = sigv4::Request { method, path, query, headers, payload_sha256: Some(&hash) };
    let access = lab.control.access.load_full();
    let identity = match sigv4::verify(&sreq, &|k| access.secret_for(k), unix_now()) {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            let e = Ec2Error {
                code: "AuthFailure".into(),
                message: "AWS was not able to validate the provided access credentials".into(),
            };
            return ec2_error(StatusCode::UNAUTHORIZED, &e, &id);
        }
        Err(err) => {
            // EC2's code and sentence for the caller; why, for the daemon's log.
            tracing::info!(request_id = %id, reason = %err, "ec2 request not authenticated");
            let e = Ec2Error { code: err.ec2_code().into(), message: err.ec2_message().into() };
            let status = StatusCode::from_u16(err.ec2_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return ec2_error(status, &e, &id);
        }
    };
    // Query parameters and the form body both carry parameters (the CLI uses the body).
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    params.extend(form_urlencoded::parse(&body).into_owned());
    let action =
        params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
    // A missing or unknown action is the request's error whoever sends it: EC2 answers
    // `MissingParameter` or `InvalidAction`, not `UnauthorizedOperation`.
    if let Err(e) = ec2::check_action(&params) {
        return ec2_error(StatusCode::BAD_REQUEST, &e, &id);
    }
    let resource = ec2_resource(&action, &params, &identity.scope.region);
    let allowed = access
        .user(&identity.access_key)
        .is_some_and(|user| access.ec2_allowed(user, &format!("ec2:{action}"), &resource));
    if !allowed {
        let e = Ec2Error {
            code: "UnauthorizedOperation".into(),
            message: format!(
                "You are not authorized to perform this operation (ec2:{action} on {resource})."
            ),
        };
        return ec2_error(StatusCode::FORBIDDEN, &e, &id);
    }
    let control = lab.control.clone();
    let region = identity.scope.region.clone();
    let rid = id.clone();
    // A route change runs inline on this worker: its change path (a FIB update, a snapshot,
    // one journal record) takes microseconds on tmpfs and about 200 µs with an fdatasync on
    // this VM's disk, and the hand-off `blocking` makes cost more. Measured at 1,000
    // CreateRoute calls/s from 4 connections: the daemon's CPU per call went from 156–184 µs
    // to 102–106 µs (state on tmpfs) and from 254–282 to 212–226 µs (on disk), the clients'
    // p99 from 230–280 to 184–194 µs (tmpfs) and 597–845 to 617–658 µs (disk). Other changes
    // (a full compile can take milliseconds) and reads still go through `blocking`.
    let inline = matches!(action.as_str(), "CreateRoute" | "DeleteRoute" | "ReplaceRoute");
    let run = move || {
        control.change(|world| {
            let req = Ec2Request { params: &params, region: &region, request_id: &rid };
            match ec2::handle(world, &req)? {
                Ec2Outcome::Read { xml } => Ok((None, xml)),
                Ec2Outcome::Changed { world, xml } => Ok((Some(world), xml)),
            }
        })
    };
    let outcome = if inline { Ok(run()) } else { blocking(run).await };
    match outcome {
        Ok(Ok(Ok(xml))) => full(StatusCode::OK, xml, "text/xml;charset=UTF-8"),
        // EC2 answers a dry run that would have succeeded with 412 Precondition Failed.
        Ok(Ok(Err(e))) if is_dry_run(&e) => ec2_error(StatusCode::PRECONDITION_FAILED, &e, &id),
        Ok(Ok(Err(e))) => ec2_error(StatusCode::BAD_REQUEST, &e, &id),
        // The request's fault, not the server's (a 500 would make SDKs retry it).
        Ok(Err(e)) if e.downcast_ref::<crate::lab::control::NamespaceTaken>().is_some() => {
            let e = Ec2Error { code: "InvalidParameterValue".into(), message: e.to_string() };
            ec2_error(StatusCode::BAD_REQUEST, &e, &id)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "applying a change failed");
            let e = Ec2Error { code: "InternalError".into(), message: format!("{e:#}") };
            ec2_error(StatusCode::INTERNAL_SERVER_ERROR, &e, &id)
        }
        Err(e) => {
            let e = Ec2Error { code: "InternalError".into(), message: e.to_string() };
            ec2_error(StatusCode::INTERNAL_SERVER_ERROR, &e, &id)
        }
    }
}

/// `DryRunOperation`: a dry run that would have succeeded.
fn is_dry_run(e: &Ec2Error) -> bool {
    e.code == "DryRunOperation"
}

#[cfg(test)]
mod tests {
    use super::ec2_resource;
    use crate::policy::{Policy, PolicyKind};
    use crate::services::access::{Access, AccessUser};

    fn params(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn user(policy: &str) -> AccessUser {
        AccessUser {
            name: "u".into(),
            arn: "arn:aws:iam::123456789012:user/u".into(),
            secret: String::new(),
            policy: Policy::parse(policy, PolicyKind::Identity).expect("valid policy"),
            user_id: crate::services::access::user_id("arn:aws:iam::123456789012:user/u"),
        }
    }

    #[test]
    fn endpoint_actions_and_describe_prefix_lists_have_no_resource_level_permissions() {
        // The guide: "We currently do not support resource-level permissions for any of the
        // ec2:*VpcEndpoint* API actions, or for the ec2:DescribePrefixLists action".
        let named = params(&[
            ("VpcId", "vpc-111bbb22"),
            ("RouteTableId.1", "rtb-0a0a0a0a"),
            ("VpcEndpointId", "vpce-11bb22cc"),
        ]);
        for action in [
            "CreateVpcEndpoint",
            "ModifyVpcEndpoint",
            "DeleteVpcEndpoints",
            "DescribeVpcEndpoints",
            "DescribeVpcEndpointServices",
            "DescribePrefixLists",
        ] {
            assert_eq!(ec2_resource(action, &named, "us-east-1"), "*", "{action}");
        }
        // A route action names its table.
        let route = params(&[("RouteTableId", "rtb-0a0a0a0a")]);
        assert_eq!(
            ec2_resource("CreateRoute", &route, "us-east-1"),
            format!("arn:aws:ec2:us-east-1:{}:route-table/rtb-0a0a0a0a", crate::model::ACCOUNT_ID)
        );
        // So a policy must grant the endpoint actions on "*": one scoped to the VPC's ARN
        // grants nothing, as in EC2.
        let access = Access::default();
        let scoped = user(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:ModifyVpcEndpoint","Resource":"arn:aws:ec2:us-east-1:123456789012:vpc/vpc-111bbb22"}]}"#,
        );
        let any = user(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:ModifyVpcEndpoint","Resource":"*"}]}"#,
        );
        let resource = ec2_resource("ModifyVpcEndpoint", &named, "us-east-1");
        assert!(!access.ec2_allowed(&scoped, "ec2:ModifyVpcEndpoint", &resource));
        assert!(access.ec2_allowed(&any, "ec2:ModifyVpcEndpoint", &resource));
    }

    // --- The server: timeouts and half-close --------------------------------------------------

    use super::{Lab, serve};
    use crate::lab::control::Control;
    use crate::services::http::Timeouts;
    use crate::services::store::{Store, test_util::TempDir};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// The control API of the default lab, in process, with short timeouts so that a test of
    /// them need not wait 20 s.
    async fn start_api() -> (std::net::SocketAddr, TempDir) {
        let dir = TempDir::new("api");
        let world = crate::lab::file::parse("demo", crate::lab::file::DEFAULT_LAB).unwrap();
        let control = Control::in_process(world, dir.0.join("state")).unwrap();
        let store = Arc::new(Store::open(&dir.0.join("store")).unwrap());
        let lab = Arc::new(Lab { control, store, started: std::time::Instant::now() });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeouts = Timeouts {
            header: Duration::from_millis(300),
            body_idle: Duration::from_millis(600),
            send_idle: Duration::from_millis(600),
        };
        tokio::spawn(serve(listener, lab, timeouts));
        (addr, dir)
    }

    /// A client that half-closes after a complete request (`shutdown(SHUT_WR)`, `nc -N`) gets
    /// its answer: RFC 9112 §9.6 lets a client close its sending side after the request. A GET
    /// answered at once, an EC2 form post, whose body the API reads before it answers (here
    /// `AuthFailure`: it is unsigned), and an answer that waits for the blocking pool.
    #[tokio::test]
    async fn a_half_closed_client_gets_its_answer() {
        let (addr, _dir) = start_api().await;
        let form = b"Action=DescribeVpcs&Version=2016-11-15";
        let post = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{}",
            form.len(),
            String::from_utf8_lossy(form)
        );
        for _ in 0..5 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /_vpcsim/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            s.shutdown().await.unwrap();
            let out = crate::services::http::read_until_closed(&mut s).await;
            assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&out));
            assert!(out.ends_with(b"\r\n\r\nok\n"), "{:?}", String::from_utf8_lossy(&out));

            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(post.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let out = crate::services::http::read_until_closed(&mut s).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 401"), "{text:?}");
            assert!(text.contains("<Code>AuthFailure</Code>"), "{text}");

            // An answer that takes a moment (the change runs on the blocking pool): the
            // client's end of stream must not cut it.
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(
                b"PUT /_vpcsim/prefix-lists/pl-00000000 HTTP/1.1\r\nHost: x\r\n\
                  Content-Length: 15\r\n\r\n54.123.160.0/19",
            )
            .await
            .unwrap();
            s.shutdown().await.unwrap();
            let out = crate::services::http::read_until_closed(&mut s).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
            assert!(text.ends_with("the prefix list ID 'pl-00000000' does not exist\n"), "{text}");
        }
    }

    /// Headers that stop arriving, and a keep-alive connection left idle after a response, do
    /// not hold the connection.
    #[tokio::test]
    async fn stalled_headers_and_idle_connections_are_closed() {
        let (addr, _dir) = start_api().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /_vpcsim/health HTTP/1.1\r\nHost: x\r\nX-A: 1").await.unwrap();
        assert!(crate::services::http::read_until_closed(&mut s).await.is_empty());
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /_vpcsim/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let out = crate::services::http::read_until_closed(&mut s).await;
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&out));
    }

    /// An EC2 form post whose body stops arriving is closed unanswered (EC2 documents no error
    /// for it); one whose body keeps coming, in pieces over more than the idle time, is read
    /// and answered (here `AuthFailure`: it is unsigned).
    #[tokio::test]
    async fn a_stalled_form_post_is_closed_and_a_slow_one_answered() {
        let (addr, _dir) = start_api().await;
        let form = b"Action=DescribeVpcs&Version=2016-11-15";
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n",
            form.len()
        );
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&form[..10]).await.unwrap();
        assert!(crate::services::http::read_until_closed(&mut s).await.is_empty());

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        for piece in form.chunks(8) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.write_all(piece).await.unwrap();
        }
        let out = crate::services::http::read_until_closed(&mut s).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
        assert!(text.contains("<Code>AuthFailure</Code>"), "{text}");
    }
}
