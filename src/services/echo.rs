//! The "internet host": answers every HTTP/1.1 request with the client's IP as it saw it,
//! like checkip.amazonaws.com. `GET /stream?seconds=N` keeps the connection busy for N seconds
//! (one line every 100 ms), for tests that need a long-lived connection to watch through a
//! route change.

use std::convert::Infallible;
use std::net::SocketAddr;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use super::http::{self, Timeouts};

/// Accepts connections forever; every request (any method, any path) gets
/// `200 text/plain` with body `<client ip>\n` and header `x-vpcsim-source-ip`.
pub async fn serve_echo(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "echo accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        http::accepted(&stream, &Timeouts::DEFAULT);
        tokio::spawn(async move {
            let svc = service_fn(move |req| async move { Ok::<_, Infallible>(answer(peer, req)) });
            if let Err(e) =
                http::http1(&Timeouts::DEFAULT).serve_connection(TokioIo::new(stream), svc).await
            {
                debug!(error = %e, %peer, "echo connection error");
            }
        });
    }
}

/// Longest `/stream` the host agrees to, in seconds.
const MAX_STREAM_SECS: u64 = 3600;

/// A body fed by a channel: each message is one chunk; the body ends when the sender is gone.
pub(crate) struct ChannelBody(pub(crate) tokio::sync::mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn stream_seconds(req: &Request<Incoming>) -> Option<u64> {
    if req.uri().path() != "/stream" {
        return None;
    }
    let secs = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("seconds="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(10);
    Some(secs.min(MAX_STREAM_SECS))
}

fn answer(peer: SocketAddr, req: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    let ip = peer.ip().to_canonical().to_string();
    debug!(%peer, method = %req.method(), path = %req.uri().path(), "echo");
    let mut resp = match stream_seconds(&req) {
        Some(secs) => {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let line = ip.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                for i in 0..secs * 10 {
                    tick.tick().await;
                    if tx.send(Bytes::from(format!("{line} {i}\n"))).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(ChannelBody(rx).boxed())
        }
        None => {
            let body = format!("{ip}\n");
            let len = body.len();
            let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
    };
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Ok(v) = HeaderValue::from_str(&ip) {
        h.insert("x-vpcsim-source-ip", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn echoes_client_ip() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_echo(listener));
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Two requests on one connection (keep-alive), different methods and paths.
        s.write_all(b"GET / HTTP/1.1\r\nHost: checkip.amazonaws.com\r\n\r\n").await.unwrap();
        s.write_all(b"POST /any/path?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let responses: Vec<&str> = out.split("HTTP/1.1 ").filter(|r| !r.is_empty()).collect();
        assert_eq!(responses.len(), 2, "{out}");
        for r in responses {
            assert!(r.starts_with("200 OK\r\n"), "{r}");
            let lower = r.to_ascii_lowercase();
            assert!(lower.contains("content-type: text/plain\r\n"), "{r}");
            assert!(lower.contains("x-vpcsim-source-ip: 127.0.0.1\r\n"), "{r}");
            assert!(r.ends_with("\r\n\r\n127.0.0.1\n"), "{r:?}");
        }
    }
}
