//! How the lab's HTTP/1.1 servers (the S3 stub, the control API, the echo host) serve a
//! connection: how long a client may leave a request unfinished, and a client that half-closes
//! after its request still gets the answer.
//!
//! Invariant: every timeout here is on a lack of progress, never on a total, so a 5 GB upload,
//! a slow but steady one, or a long download to a slow reader, is never cut.
//! - Headers: hyper's `header_read_timeout` runs from when the server starts waiting for a
//!   request (a new connection, or the last response sent) to the end of its headers. So it
//!   also closes a keep-alive connection left idle between requests, as S3 does after about
//!   20 s. hyper closes the connection without an answer.
//! - Body: [`IdleBody`] fails a read of the request body that waits longer than `body_idle`
//!   for the client's next bytes; the time the handler spends elsewhere (writing to disk, or
//!   deciding before it reads) does not count. The handler answers S3's `400 RequestTimeout`
//!   where it can (see [`Stalled`]).
//! - Sending: `TCP_USER_TIMEOUT` ([`accepted`]) drops a connection whose client leaves what was
//!   sent unread (its TCP window closed) or unacknowledged for `send_idle`; a client that
//!   reads slowly opens its window now and then and is served at its pace.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::debug;

/// How long a client may keep a server waiting. S3 documents no figures; 20 s is the idle time
/// after which S3 is commonly reported to close a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From when the server waits for a request (the connection is new, or the previous
    /// response went out) to the end of the request's headers.
    pub header: Duration,
    /// The longest a read of a request body may wait for the client's next bytes.
    pub body_idle: Duration,
    /// The longest the client may leave what the server sent unread (its TCP window closed) or
    /// unacknowledged: `TCP_USER_TIMEOUT`, see [`accepted`].
    pub send_idle: Duration,
}

impl Timeouts {
    /// The lab's servers' timeouts.
    pub const DEFAULT: Timeouts = Timeouts {
        header: Duration::from_secs(20),
        body_idle: Duration::from_secs(20),
        send_idle: Duration::from_secs(20),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// Prepares an accepted connection: sets `TCP_USER_TIMEOUT` to `send_idle`. Without it a
/// client whose window stays closed is probed forever (RFC 1122 4.2.2.17) and holds the
/// connection; a failure only loses that limit, so it is logged, not fatal.
pub fn accepted(stream: &TcpStream, timeouts: &Timeouts) {
    if let Err(e) = crate::io::sockopt::set_tcp_user_timeout(stream, timeouts.send_idle) {
        debug!(error = %e, "setting TCP_USER_TIMEOUT");
    }
}

/// The HTTP/1.1 server settings of every lab server: keep-alive, half-close allowed (RFC 9112
/// §9.6: a client may close its sending side after the request and still read the answer) and
/// the header timeout (which needs hyper's timer to take effect).
pub fn http1(timeouts: &Timeouts) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true)
        .half_close(true);
    b
}

/// Why a read of an [`IdleBody`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No byte of the body came for this long while the handler waited for one.
    #[error("no request body bytes for {0:?}")]
    Idle(Duration),
    /// The underlying body failed (e.g. the connection closed mid-body).
    #[error(transparent)]
    Read(Box<dyn StdError + Send + Sync>),
}

/// Tells whether an [`IdleBody`] gave up waiting, after the body itself has been moved into
/// (and maybe dropped by) the handler.
#[derive(Clone, Debug, Default)]
pub struct Stalled(Arc<AtomicBool>);

impl Stalled {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request body whose reads fail with [`BodyError::Idle`] once one has waited `idle` for the
/// client's next bytes. The clock runs only while a read waits: it starts at the first poll
/// that finds nothing and stops at the next frame.
pub struct IdleBody<B> {
    inner: B,
    idle: Duration,
    /// Armed while a read waits; allocated at the first wait, then reset.
    deadline: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    stalled: Stalled,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, idle: Duration) -> (Self, Stalled) {
        let stalled = Stalled::default();
        let body =
            IdleBody { inner, idle, deadline: None, waiting: false, stalled: stalled.clone() };
        (body, stalled)
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.stalled.happened() {
            return Poll::Ready(Some(Err(BodyError::Idle(this.idle))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(|e| BodyError::Read(e.into()))))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                let sleep = match &mut this.deadline {
                    Some(sleep) => {
                        if !this.waiting {
                            sleep.as_mut().reset(deadline);
                        }
                        sleep
                    }
                    None => this.deadline.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.waiting = true;
                if sleep.as_mut().poll(cx).is_ready() {
                    this.stalled.0.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(BodyError::Idle(this.idle))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// For the servers' tests: reads until the server closes the connection (EOF or reset); fails
/// if it stays open. The bound only means "eventually": the timeouts under test are far shorter.
#[cfg(test)]
pub(crate) async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after: {:?}", String::from_utf8_lossy(&out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body fed by a channel, one frame per message; it ends when the sender is dropped.
    use crate::services::echo::ChannelBody as Fed;

    /// Chunks that keep coming, each well within the idle time, make a body that takes several
    /// idle times in all: it is read whole. The timeout is on a lack of progress, not a total.
    #[tokio::test]
    async fn a_slow_but_steady_body_is_read_whole() {
        let (tx, rx) = mpsc::channel(1);
        let (body, stalled) = IdleBody::new(Fed(rx), Duration::from_millis(600));
        tokio::spawn(async move {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                tx.send(Bytes::from_static(b"0123456789")).await.unwrap();
            }
        });
        let all = body.collect().await.expect("no timeout").to_bytes();
        assert_eq!(all.len(), 80);
        assert!(!stalled.happened());
    }

    /// A body whose client stops sending fails with `Idle`, and the handle says so after the
    /// body is gone.
    #[tokio::test]
    async fn a_stalled_body_fails_and_says_so() {
        let (tx, rx) = mpsc::channel(1);
        let (mut body, stalled) = IdleBody::new(Fed(rx), Duration::from_millis(100));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::Idle(_)), "{err}");
        drop(body);
        assert!(stalled.happened());
        drop(tx);
    }

    /// The time the reader spends away (e.g. writing the last chunk to disk) is not the
    /// client's: a read after a long pause finds what came meanwhile, or starts a fresh wait.
    #[tokio::test]
    async fn time_away_from_the_body_does_not_count() {
        let (tx, rx) = mpsc::channel(1);
        let (mut body, stalled) = IdleBody::new(Fed(rx), Duration::from_millis(300));
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        body.frame().await.unwrap().unwrap();
        // Not reading for longer than the idle time.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tx2 = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx2.send(Bytes::from_static(b"b")).await.unwrap();
        });
        let next = body.frame().await.unwrap().expect("a fresh wait, not a timeout");
        assert_eq!(next.into_data().unwrap(), "b");
        drop(tx);
        assert!(body.frame().await.is_none());
        assert!(!stalled.happened());
    }
}
