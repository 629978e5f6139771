//! The control API on the loopback listener: for now a health check and the lab's status (the
//! EC2 Query API and S3 on this port come with the control-plane issue).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::dataplane::DropReason;
use crate::lab::daemon::Lab;

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
        rx_errors: c.io.rx_errors.load(Ordering::Relaxed),
        tx_errors: c.io.tx_errors.load(Ordering::Relaxed),
        drops: DropReason::ALL
            .iter()
            .map(|r| (r.label().to_string(), p.counters.drops(*r)))
            .collect(),
    }
}

pub async fn serve(listener: tokio::net::TcpListener, lab: Arc<Lab>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "accept");
                continue;
            }
        };
        let lab = lab.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, lab.clone()));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await
            {
                tracing::debug!(error = %e, "api connection");
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    lab: Arc<Lab>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/_vpcsim/health") => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        (&Method::GET, "/_vpcsim/status") => match serde_json::to_string_pretty(&status(&lab)) {
            Ok(json) => text(StatusCode::OK, json + "\n", "application/json"),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), "text/plain"),
        },
        _ => text(
            StatusCode::NOT_IMPLEMENTED,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>NotImplemented\
             </Code><Message>this control API answers only /_vpcsim/health and /_vpcsim/status so \
             far</Message></Error></Errors><RequestID>0</RequestID></Response>\n"
                .into(),
            "text/xml",
        ),
    };
    Ok(resp)
}

fn text(status: StatusCode, body: String, content_type: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}
