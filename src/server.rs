//! Serving one client connection with hyper-util's auto builder (HTTP/1.1
//! and HTTP/2), hardened: a timer is set (without it the header-read timeout
//! is silently off), request heads are bounded in time and size, HTTP/2
//! streams and resets are capped, and a connection with nothing in flight
//! and no traffic for `limits.idle_timeout` is closed. On shutdown each
//! connection is drained gracefully (HTTP/1 closes after the current
//! response, HTTP/2 sends GOAWAY).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::body::{Body, Observed};
use crate::config::Limits;
use crate::ctx::ConnInfo;
use crate::error::BoxError;

/// During shutdown, a connection with nothing in flight is closed this long
/// after GOAWAY / close was signalled, even if the client keeps it open.
const DRAIN_IDLE_CUTOFF: Duration = Duration::from_millis(500);

/// The service type every listener serves.
pub type HttpService = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// The connection builder for the public listener.
pub fn builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192) + 64 * 1024)
        .max_headers(200)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(2 << 20)
        .max_send_buf_size(1 << 20);
    b
}

/// Activity of one connection, for the idle timeout.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self { base: Instant::now(), last_ms: AtomicU64::new(0), in_flight: AtomicUsize::new(0) })
    }
    fn touch(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

pin_project_lite::pin_project! {
    /// An I/O stream that records when bytes last moved.
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

type HandleFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

fn handle(mut svc: HttpService, act: Arc<Activity>, info: ConnInfo, req: Request<Incoming>) -> HandleFuture {
    act.in_flight.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(info);
    let req = Request::from_parts(parts, crate::body::boxed(body));
    // Every service of the stack is always ready; calling directly keeps the
    // generic service type out of the future.
    let fut = svc.call(req);
    Box::pin(async move {
        let res = match fut.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "unhandled error reached the connection");
                crate::error::problem(crate::error::Reason::Internal, "")
            }
        };
        let (parts, body) = res.into_parts();
        let body = Observed::new(body, move |_, _| {
            act.in_flight.fetch_sub(1, Ordering::Relaxed);
            act.touch();
        });
        Ok(Response::from_parts(parts, crate::body::boxed(body)))
    })
}

/// Serves `io` with `svc` until the client is done, the connection idles
/// out, or `shutdown` is cancelled (then drains gracefully).
pub async fn serve<I>(
    io: I,
    info: ConnInfo,
    svc: HttpService,
    builder: &Builder<TokioExecutor>,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = TrackedIo { inner: io, activity: activity.clone() };
    let act = activity.clone();
    let hyper_svc =
        hyper::service::service_fn(move |req: Request<Incoming>| handle(svc.clone(), act.clone(), info, req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_svc);
    tokio::pin!(conn);
    let tick = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    let mut draining_since: Option<Instant> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                draining_since = Some(Instant::now());
                conn.as_mut().graceful_shutdown();
                // Check often from now on: a client that ignores GOAWAY is cut once idle.
                ticker = tokio::time::interval(Duration::from_millis(100));
            }
            _ = ticker.tick() => {
                let idle = activity.in_flight.load(Ordering::Relaxed) == 0;
                if let Some(since) = draining_since {
                    if idle && since.elapsed() >= DRAIN_IDLE_CUTOFF {
                        break;
                    }
                } else if !closing && idle && activity.idle_for() >= idle_timeout {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
