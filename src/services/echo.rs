//! The "internet host": answers every HTTP/1.1 request with the client's IP as it saw it,
//! like checkip.amazonaws.com.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

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
        tokio::spawn(async move {
            let svc = service_fn(move |req| async move { Ok::<_, Infallible>(answer(peer, req)) });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(error = %e, %peer, "echo connection error");
            }
        });
    }
}

fn answer(peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ip = peer.ip().to_canonical().to_string();
    debug!(%peer, method = %req.method(), path = %req.uri().path(), "echo");
    let body = format!("{ip}\n");
    let len = body.len();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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
