//! moat's own pool of keep-alive HTTP/1.1 connections to an upstream, on
//! hyper's connection-level client (`hyper::client::conn::http1`).
//!
//! A request takes the most recently used idle connection to its address
//! (or opens one with the connector: plain TCP, TLS or a unix socket), and
//! its response body puts the connection back when it has been read to the
//! end. A body dropped before its end, an error, an upgrade or an upstream's
//! `Connection: close` closes the connection instead. A request that a
//! pooled connection could not even start sending (the upstream closed it
//! while it was idle) goes again on another connection, as nothing of it
//! left moat. Idle connections are closed after the idle timeout, at most
//! `max_idle` are kept per address, and, every purge interval, half of those
//! that sat unused through the whole interval are closed, so that the pool
//! shrinks back to what the traffic needs after a burst (as HAProxy's
//! `pool-purge-delay`): each one keeps about 26 KiB of buffers and task in
//! moat, and a socket and its state in the upstream. A reaper task does
//! both, and runs only while some connections are idle.
//!
//! Each worker thread has its own pool of the default upstream (see
//! `proxy::send`), so its connections are driven by the worker that uses
//! them; the lock around the idle list is then never contended.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::body::{Body, BoxError};

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (nothing of the request was sent).
    #[error("connect: {0}")]
    Connect(#[source] BoxError),
    /// The exchange failed on an open connection.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl SendError {
    /// Whether the connection could not be opened.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// What opens connections: hyper-util's connectors (TCP, TLS) and moat's
/// unix-socket one all are services from a URI to an IO.
pub trait Connect: Clone + Send + Sync + 'static {
    /// The connection.
    type Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static;
    /// Opens a connection to `uri`'s authority.
    fn connect(&self, uri: Uri) -> impl std::future::Future<Output = Result<Self::Io, BoxError>> + Send;
}

impl<C> Connect for C
where
    C: tower::Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send,
{
    type Io = C::Response;
    fn connect(&self, uri: Uri) -> impl std::future::Future<Output = Result<Self::Io, BoxError>> + Send {
        let c = self.clone();
        async move { c.oneshot(uri).await.map_err(Into::into) }
    }
}

/// A pool of connections opened by `C`, shared by its clones.
pub struct Pool<C> {
    connector: C,
    scheme: &'static str,
    idle: Arc<Idle>,
}

impl<C: Clone> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self { connector: self.connector.clone(), scheme: self.scheme, idle: self.idle.clone() }
    }
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("scheme", &self.scheme).field("idle", &self.idle.count()).finish()
    }
}

/// How long and how many idle connections a pool keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Idle longer than this: closed.
    pub timeout: Duration,
    /// Kept at most, per address.
    pub max: usize,
    /// Every this often, half of the connections unused through the whole
    /// interval are closed (zero: never).
    pub purge: Duration,
}

/// The idle connections, per address.
struct Idle {
    slots: Mutex<Slots>,
    keep: Retention,
}

#[derive(Default)]
struct Slots {
    /// Oldest first (in the order they were parked): taken from the back,
    /// dropped from the front when full or purged.
    by_addr: Vec<(Authority, VecDeque<Parked>)>,
    /// Whether a reaper task is running.
    reaping: bool,
}

struct Parked {
    tx: SendRequest<Body>,
    since: Instant,
}

impl<C: Connect> Pool<C> {
    /// A pool opening connections with `connector` (`scheme` is what its URIs
    /// carry), keeping idle connections as `keep` says.
    pub fn new(connector: C, scheme: &'static str, keep: Retention) -> Self {
        let idle = Arc::new(Idle { slots: Mutex::new(Slots::default()), keep });
        Self { connector, scheme, idle }
    }

    /// Sends `req` (origin-form URI) to `authority`.
    pub async fn send(&self, authority: &Authority, mut req: Request<Body>) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut tx, reused) = match self.idle.take(authority) {
                Some(tx) => (tx, true),
                // Boxed: the rare path keeps its state out of every request's future.
                None => (Box::pin(self.connect(authority)).await?, false),
            };
            // A parked connection finishes its previous exchange just after
            // its body ended; it is ready within a turn of its task, or closed.
            if reused && tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(res) => return Ok(self.idle.watch(res, tx, authority)),
                Err(mut e) => match e.take_message() {
                    // Not sent at all: the idle connection had been closed.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// Whether `self` and `other` share their idle connections.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.idle, &other.idle)
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<Body>, SendError> {
        let uri = Uri::builder()
            .scheme(self.scheme)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = self.connector.connect(uri).await.map_err(SendError::Connect)?;
        let (tx, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| SendError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }
}

impl Idle {
    /// For `Debug`: never waits for the lock (`None` while it is held).
    fn count(&self) -> Option<usize> {
        self.slots.try_lock().ok().map(|s| s.by_addr.iter().map(|(_, v)| v.len()).sum())
    }

    /// The most recently parked open connection to `authority`.
    fn take(&self, authority: &Authority) -> Option<SendRequest<Body>> {
        let mut slots = self.slots.lock().ok()?;
        let (_, parked) = slots.by_addr.iter_mut().find(|(a, _)| same_addr(a, authority))?;
        while let Some(p) = parked.pop_back() {
            if !p.tx.is_closed() {
                return Some(p.tx);
            }
        }
        None
    }

    /// The response, with a body that parks `tx` once read to its end.
    fn watch(
        self: &Arc<Self>,
        res: Response<Incoming>,
        tx: SendRequest<Body>,
        authority: &Authority,
    ) -> Response<PooledBody> {
        let keep = self.keep.max > 0 && res.status() != StatusCode::SWITCHING_PROTOCOLS;
        let (parts, inner) = res.into_parts();
        let mut park = keep.then(|| Park { tx, authority: authority.clone(), idle: Arc::downgrade(self) });
        if inner.is_end_stream() {
            if let Some(p) = park.take() {
                p.park();
            }
        }
        Response::from_parts(parts, PooledBody { inner, park })
    }

    fn put(self: &Arc<Self>, authority: Authority, tx: SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        let Ok(mut slots) = self.slots.lock() else { return };
        let parked = Parked { tx, since: Instant::now() };
        match slots.by_addr.iter_mut().find(|(a, _)| same_addr(a, &authority)) {
            Some((_, v)) => {
                if v.len() >= self.keep.max {
                    v.pop_front();
                }
                v.push_back(parked);
            }
            None => slots.by_addr.push((authority, VecDeque::from([parked]))),
        }
        if !slots.reaping {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                slots.reaping = true;
                rt.spawn(reap(Arc::downgrade(self)));
            }
        }
    }
}

/// Whether two pool keys are the same address. The keys come from the
/// config (upstream addresses, forward-auth and sign-in service URLs), so
/// the exact text is compared: `Authority`'s own `==` ignores case byte by
/// byte, several times the cost, on every request.
fn same_addr(a: &Authority, b: &Authority) -> bool {
    a.as_str() == b.as_str()
}

/// Closes connections idle for longer than the timeout, and halves the
/// purge's surplus, until none is idle.
async fn reap(idle: Weak<Idle>) {
    let every = match idle.upgrade() {
        Some(i) if !i.keep.purge.is_zero() => i.keep.purge.min(i.keep.timeout / 2),
        Some(i) => i.keep.timeout / 2,
        None => return,
    }
    .max(Duration::from_millis(100));
    let mut purged = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let Some(idle) = idle.upgrade() else { return };
        let Ok(mut slots) = idle.slots.lock() else { return };
        let now = Instant::now();
        let purge = !idle.keep.purge.is_zero() && now.duration_since(purged) >= idle.keep.purge;
        if purge {
            purged = now;
        }
        for (_, v) in &mut slots.by_addr {
            v.retain(|p| !p.tx.is_closed() && now.duration_since(p.since) < idle.keep.timeout);
            if purge {
                halve_unused(v, now, idle.keep.purge);
            }
        }
        slots.by_addr.retain(|(_, v)| !v.is_empty());
        if slots.by_addr.is_empty() {
            slots.reaping = false;
            return;
        }
    }
}

/// Closes half of the connections of `parked` that have been idle for at
/// least `interval`: as connections are taken from the back, these were not
/// needed at any time in it. A single one is kept (for the next request of a
/// slow trickle); the idle timeout closes it.
fn halve_unused(parked: &mut VecDeque<Parked>, now: Instant, interval: Duration) {
    let unused = parked.iter().take_while(|p| now.duration_since(p.since) >= interval).count();
    parked.drain(..unused / 2);
}

/// A connection to put back once its response has been read.
struct Park {
    tx: SendRequest<Body>,
    authority: Authority,
    idle: Weak<Idle>,
}

impl Park {
    fn park(self) {
        if let Some(idle) = self.idle.upgrade() {
            idle.put(self.authority, self.tx);
        }
    }
}

pin_project_lite::pin_project! {
    /// An upstream response body; read to its end, it returns its connection
    /// to the pool.
    pub struct PooledBody {
        #[pin]
        inner: Incoming,
        park: Option<Park>,
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                this.park.take();
                false
            }
            Poll::Pending => false,
        };
        if ended {
            if let Some(p) = this.park.take() {
                p.park();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
