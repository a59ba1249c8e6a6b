//! Serving one client connection with hyper-util's auto builder (HTTP/1.1
//! and HTTP/2), hardened against clients that hold a connection without
//! using it:
//!
//! - a timer is set (without it the header-read timeout is silently off),
//!   request heads are bounded in time and size, HTTP/2 streams and resets
//!   are capped;
//! - a connection that has not delivered a complete first request head
//!   within `limits.header_read_timeout` is closed (HTTP/1 and HTTP/2 alike:
//!   a TLS handshake followed by silence, or by HTTP/2 SETTINGS and PINGs
//!   only);
//! - idle means no request: only an open request (a stream whose response
//!   has not ended) keeps a connection alive. HTTP/2 PING, SETTINGS and
//!   WINDOW_UPDATE frames (moat's own keep-alive pings and the client's
//!   acks included) never do, so `limits.idle_timeout` closes an HTTP/2
//!   connection that sends no requests, like nginx's `keepalive_timeout`;
//! - a response that makes no write progress for the route's `send_timeout`
//!   (the client stopped reading, or holds an HTTP/2 window at zero) is cut:
//!   the HTTP/2 stream is reset (RST_STREAM CANCEL), an HTTP/1 connection is
//!   closed. Either way the response body, and with it the upstream
//!   exchange, the upstream connection and every permit the request held,
//!   are dropped;
//! - an upgraded connection (a WebSocket tunnel the proxy opened) keeps the
//!   connection's slot in `max_connections` until the tunnel ends;
//! - an HTTP/2 request body that moat stops reading before its end (an early
//!   413/415/401/429, or an upload aborted mid-way) is not reset at once: it
//!   lingers (read and discarded, bounded in time and bytes, like nginx's
//!   lingering close) so that the client reads the response before the
//!   stream closes. A client still writing when RST_STREAM(NO_ERROR) arrives
//!   (curl 7.x with a large stream window) would otherwise report a stream
//!   error and never show the status.
//!
//! On shutdown each connection is drained gracefully (HTTP/1 closes after
//! the current response, HTTP/2 sends GOAWAY).

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::body::{Body, ObservedBody};
use crate::config::Limits;
use crate::error::BoxError;
use crate::policy::ctx::ConnInfo;
use crate::policy::BoxFuture;

/// During shutdown, a connection with nothing in flight is closed this long
/// after GOAWAY / close was signalled, even if the client keeps it open.
const DRAIN_IDLE_CUTOFF: Duration = Duration::from_millis(500);

/// The service every listener serves: a stack with its concrete type
/// erased. Unlike tower's boxed services it keeps the stack's own boxed
/// future instead of boxing it a second time.
pub(crate) struct HttpService(Box<dyn ErasedService>);

/// What a served stack is: a service of moat's request and response types
/// whose future is the stack's [`BoxFuture`].
pub(crate) trait StackService:
    Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + Sync + 'static
{
}

impl<S> StackService for S where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture>
        + Clone
        + Send
        + Sync
        + 'static
{
}

trait ErasedService: Send + Sync {
    fn call(&mut self, req: Request<Body>) -> BoxFuture;
    fn clone_box(&self) -> Box<dyn ErasedService>;
}

impl<S: StackService> ErasedService for S {
    fn call(&mut self, req: Request<Body>) -> BoxFuture {
        Service::call(self, req)
    }
    fn clone_box(&self) -> Box<dyn ErasedService> {
        Box::new(self.clone())
    }
}

impl HttpService {
    /// Erases `svc`'s type. Like every service of the stack it must always be
    /// ready: `poll_ready` is never called.
    pub(crate) fn new<S: StackService>(svc: S) -> Self {
        Self(Box::new(svc))
    }

    /// Handles `req`.
    pub(crate) fn call(&mut self, req: Request<Body>) -> BoxFuture {
        self.0.call(req)
    }
}

impl Clone for HttpService {
    fn clone(&self) -> Self {
        Self(self.0.clone_box())
    }
}

/// Milliseconds since a process-wide base instant (0 is never a real time).
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(|| Instant::now() - Duration::from_millis(1));
    base.elapsed().as_millis() as u64
}

/// The connection builder for the public listener.
pub(crate) fn builder(limits: &Limits) -> Builder<WatchExec> {
    let mut b = Builder::new(WatchExec);
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

/// The write progress of one response: when it must next be polled by the
/// connection (it handed out data and waits for room to send more), as
/// [`now_ms`] milliseconds; 0 when the response waits for nothing from the
/// client.
#[derive(Debug, Default)]
pub(crate) struct SendWatch {
    due_ms: AtomicU64,
}

impl SendWatch {
    fn waiting(&self, timeout: Duration) {
        let t = now_ms().saturating_add(timeout.as_millis().min(u64::MAX as u128 / 2) as u64).max(1);
        self.due_ms.store(t, Ordering::Relaxed);
    }
    fn progressed(&self) {
        self.due_ms.store(0, Ordering::Relaxed);
    }
    /// Whether the response is overdue.
    fn overdue(&self) -> bool {
        let due = self.due_ms.load(Ordering::Relaxed);
        due != 0 && now_ms() >= due
    }
    fn due(&self) -> Option<u64> {
        let due = self.due_ms.load(Ordering::Relaxed);
        (due != 0).then_some(due)
    }
}

thread_local! {
    /// The send watch of the HTTP/2 stream task being polled on this thread.
    static STREAM_WATCH: RefCell<Option<Arc<SendWatch>>> = const { RefCell::new(None) };
}

/// The executor of the HTTP/2 stream tasks: it wraps each one so that a
/// stream whose response makes no write progress for its send timeout is
/// dropped (h2 then resets it).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WatchExec;

impl<F> hyper::rt::Executor<F> for WatchExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Watched { inner: Some(Box::pin(fut)), watch: Arc::default(), sleep: None });
    }
}

struct Watched<F> {
    inner: Option<Pin<Box<F>>>,
    watch: Arc<SendWatch>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(()) };
        let prev = STREAM_WATCH.with(|w| w.replace(Some(this.watch.clone())));
        let r = inner.as_mut().poll(cx);
        STREAM_WATCH.with(|w| *w.borrow_mut() = prev);
        if r.is_ready() {
            return Poll::Ready(());
        }
        loop {
            let Some(due) = this.watch.due() else {
                this.sleep = None;
                return Poll::Pending;
            };
            if this.watch.overdue() {
                tracing::info!("response made no write progress for its send_timeout: stream reset");
                // Dropping the stream task drops the response body (and the
                // upstream exchange); h2 resets the stream.
                this.inner = None;
                this.sleep = None;
                return Poll::Ready(());
            }
            let at = tokio::time::Instant::now() + Duration::from_millis(due.saturating_sub(now_ms()));
            match this.sleep.as_mut() {
                Some(s) => s.as_mut().reset(at),
                None => this.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            if let Some(s) = this.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
    }
}

/// The send timeout of a response (set by the proxy from its route); moat's
/// own responses use `limits.send_timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// A response body that reports its write progress to a [`SendWatch`]:
    /// after it hands out data it is "waiting" until the connection asks for
    /// more. While it waits on its own source (the upstream), it is not.
    struct Progress<B> {
        #[pin]
        inner: B,
        watch: Arc<SendWatch>,
        timeout: Duration,
    }
    impl<B> PinnedDrop for Progress<B> {
        fn drop(this: Pin<&mut Self>) {
            this.project().watch.progressed();
        }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for Progress<B> {
    type Data = Bytes;
    type Error = B::Error;
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        this.watch.progressed();
        let r = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &r {
            this.watch.waiting(*this.timeout);
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How long an HTTP/2 request body left unread lingers before its stream is
/// reset, and how many of its bytes are read and discarded meanwhile.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 4 << 20;

/// An HTTP/2 request body that, dropped before its end, lingers: a task
/// reads and discards it for [`LINGER_TIME`] / [`LINGER_BYTES`] (the client
/// usually stops sending, or resets the stream, once it has the response),
/// then drops it, which resets the stream with NO_ERROR if it is still open.
struct Lingering {
    inner: Option<Incoming>,
    done: bool,
}

impl Lingering {
    fn new(inner: Incoming) -> Self {
        Self { inner: Some(inner), done: false }
    }
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let r = Pin::new(inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.done = true;
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else { return };
        if self.done || body.is_end_stream() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            let _ = tokio::time::timeout(LINGER_TIME, async {
                use http_body_util::BodyExt;
                let mut read = 0u64;
                while read < LINGER_BYTES {
                    match body.frame().await {
                        Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len() as u64),
                        _ => return,
                    }
                }
            })
            .await;
            drop(body);
        });
    }
}

/// Work to run on a connection after hyper hands it over (an upgrade
/// tunnel): it runs in the connection's task, so it keeps the connection's
/// slot.
pub(crate) type Tunnel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Activity of one connection, for the idle and first-request timeouts.
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the last response ended ([`now_ms`]).
    last_ms: AtomicU64,
    /// Requests whose response has not ended.
    in_flight: AtomicUsize,
    /// Request heads received.
    requests: AtomicU64,
    /// The HTTP/1 connection's current response.
    send: Arc<SendWatch>,
    /// Work to run after hyper releases the connection (an upgrade tunnel).
    tunnel: Mutex<Option<TunnelSlot>>,
}

struct TunnelSlot(Tunnel);

impl std::fmt::Debug for TunnelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tunnel")
    }
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            last_ms: AtomicU64::new(now_ms()),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            send: Arc::default(),
            tunnel: Mutex::new(None),
        })
    }
    fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
    /// Whether nothing is in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// A handle on the connection a request arrived on (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle(Arc<Activity>);

impl ConnHandle {
    /// Hands `tunnel` to the connection: it runs once hyper has released the
    /// connection, in the connection's task.
    pub(crate) fn run_after(&self, tunnel: Tunnel) {
        if let Ok(mut slot) = self.0.tunnel.lock() {
            *slot = Some(TunnelSlot(tunnel));
        }
    }
}

type HandleFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

fn handle(
    svc: &Mutex<HttpService>,
    act: Arc<Activity>,
    info: ConnInfo,
    send_timeout: Duration,
    req: Request<Incoming>,
) -> HandleFuture {
    act.in_flight.fetch_add(1, Ordering::Relaxed);
    act.requests.fetch_add(1, Ordering::Relaxed);
    let h1 = req.version() < http::Version::HTTP_2;
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(info);
    // Only an upgrade needs the connection (its tunnel runs there).
    if h1 && parts.headers.contains_key(http::header::UPGRADE) {
        parts.extensions.insert(ConnHandle(act.clone()));
    }
    let body = if h1 { crate::body::boxed(body) } else { crate::body::boxed(Lingering::new(body)) };
    let req = Request::from_parts(parts, body);
    // Every service of the stack is always ready; calling directly keeps the
    // generic service type out of the future. The stack is the connection's
    // own (no clone per request); the lock is only held while the request's
    // synchronous policies decide, never across an await, and only this
    // connection's task takes it.
    let fut = match svc.lock() {
        Ok(mut svc) => svc.call(req),
        Err(poisoned) => poisoned.into_inner().call(req),
    };
    Box::pin(async move {
        let watch = if h1 { act.send.clone() } else { STREAM_WATCH.with(|w| w.borrow().clone()).unwrap_or_default() };
        let res = match fut.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "unhandled error reached the connection");
                let r = crate::error::Reason::Internal;
                crate::error::problem(r.status(), r.detail(), "", false, Some(r))
            }
        };
        let (parts, body) = res.into_parts();
        let timeout = parts.extensions.get::<SendTimeout>().map_or(send_timeout, |t| t.0);
        let body = ObservedBody::new(Progress { inner: body, watch, timeout }, move |_, _| {
            act.last_ms.store(now_ms(), Ordering::Relaxed);
            act.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(Response::from_parts(parts, crate::body::boxed(body)))
    })
}

/// Timeouts of one listener's connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Time to the first complete request head.
    pub header_read_timeout: Duration,
    /// Time without requests before the connection is closed.
    pub idle_timeout: Duration,
    /// Default send timeout (responses without a route's own).
    pub send_timeout: Duration,
}

impl From<&Limits> for ConnLimits {
    fn from(l: &Limits) -> Self {
        Self { header_read_timeout: l.header_read_timeout, idle_timeout: l.idle_timeout, send_timeout: l.send_timeout }
    }
}

/// Serves `io` with `svc` until the client is done, the connection idles
/// out, or `shutdown` is cancelled (then drains gracefully). `evict` closes
/// the connection at once if it has nothing in flight (a listener at its cap
/// making room).
pub(crate) async fn serve<I>(
    io: I,
    info: ConnInfo,
    svc: HttpService,
    builder: &Builder<WatchExec>,
    limits: ConnLimits,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_evictable(io, info, svc, builder, limits, shutdown, None).await
}

/// [`serve`], reporting the connection's activity through `registered`.
pub(crate) async fn serve_evictable<I>(
    io: I,
    info: ConnInfo,
    svc: HttpService,
    builder: &Builder<WatchExec>,
    limits: ConnLimits,
    shutdown: CancellationToken,
    registered: Option<(Arc<Activity>, CancellationToken)>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (activity, evict) = registered.unwrap_or_else(|| (Activity::new(), CancellationToken::new()));
    let started = Instant::now();
    let act = activity.clone();
    let send_timeout = limits.send_timeout;
    let svc = Mutex::new(svc);
    let hyper_svc =
        hyper::service::service_fn(move |req: Request<Incoming>| handle(&svc, act.clone(), info, send_timeout, req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_svc);
    tokio::pin!(conn);
    let mut ticker = check_interval(&limits);
    let mut closing = false;
    let mut draining_since: Option<Instant> = None;
    // The connection's control events (shutdown, eviction, the periodic
    // check) wake the task through their own waker, so the task's many
    // wake-ups for I/O poll the connection only, not the three of them too.
    let control = Arc::new(ControlWake {
        woken: std::sync::atomic::AtomicBool::new(true),
        task: futures_util::task::AtomicWaker::new(),
    });
    let control_waker = std::task::Waker::from(control.clone());
    let mut on_shutdown = std::pin::pin!(shutdown.cancelled());
    let mut on_evict = std::pin::pin!(evict.cancelled());
    loop {
        let event = std::future::poll_fn(|cx| {
            control.task.register(cx.waker());
            if control.woken.swap(false, Ordering::AcqRel) {
                let mut ccx = Context::from_waker(&control_waker);
                let event = if !closing && on_shutdown.as_mut().poll(&mut ccx).is_ready() {
                    Some(Event::Shutdown)
                } else if draining_since.is_none() && on_evict.as_mut().poll(&mut ccx).is_ready() {
                    Some(Event::Evict)
                } else if ticker.poll_tick(&mut ccx).is_ready() {
                    Some(Event::Tick)
                } else {
                    None
                };
                if let Some(event) = event {
                    // The others were not all asked: ask again next time.
                    control.woken.store(true, Ordering::Release);
                    return Poll::Ready(event);
                }
            }
            conn.as_mut().poll(cx).map(Event::Ended)
        })
        .await;
        match event {
            Event::Ended(r) => {
                if let Err(e) = r {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                }
                break;
            }
            Event::Shutdown => {
                closing = true;
                draining_since = Some(Instant::now());
                conn.as_mut().graceful_shutdown();
                // Check often from now on: a client that ignores GOAWAY is cut once idle.
                ticker = tokio::time::interval(Duration::from_millis(100));
            }
            Event::Evict => {
                tracing::debug!(peer = %info.peer, "idle connection evicted to make room");
                break;
            }
            Event::Tick => match periodic_check(&activity, &info, &limits, started, draining_since) {
                Tick::Close => break,
                Tick::Wait => {}
                Tick::Drain(reason) => {
                    tracing::debug!(peer = %info.peer, reason, "closing connection");
                    closing = true;
                    draining_since = Some(Instant::now());
                    conn.as_mut().graceful_shutdown();
                    ticker = tokio::time::interval(Duration::from_millis(100));
                }
            },
        }
    }
    run_tunnel(&activity, &shutdown).await;
}

/// What woke a connection's serving loop.
enum Event<E> {
    /// The connection ended (the client closed it, or an error).
    Ended(Result<(), E>),
    /// Shutdown began: drain.
    Shutdown,
    /// The listener needs the slot of this idle connection.
    Evict,
    /// Time for the periodic check.
    Tick,
}

/// The waker of a connection's control events: marks that one of them woke
/// the task, then wakes it.
struct ControlWake {
    /// A control event woke the task since its futures were last polled
    /// (true at first, so that they are polled and registered).
    woken: std::sync::atomic::AtomicBool,
    /// The connection's task.
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for ControlWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The interval of a connection's periodic checks (a quarter of its shortest timeout, 50 ms to 1 s).
fn check_interval(limits: &ConnLimits) -> tokio::time::Interval {
    let tick = (limits.idle_timeout.min(limits.header_read_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// What a periodic check of a connection decided.
enum Tick {
    /// Close the connection now.
    Close,
    /// Nothing to do yet.
    Wait,
    /// Start draining the connection, for this reason.
    Drain(&'static str),
}

/// Checks a connection: a stalled send or a drained connection closes it; a timeout starts draining.
fn periodic_check(
    activity: &Activity,
    info: &ConnInfo,
    limits: &ConnLimits,
    started: Instant,
    draining_since: Option<Instant>,
) -> Tick {
    let idle = activity.is_idle();
    if activity.send.overdue() {
        tracing::info!(peer = %info.peer, "response made no write progress for its send_timeout: connection closed");
        return Tick::Close;
    }
    if let Some(since) = draining_since {
        if idle && since.elapsed() >= DRAIN_IDLE_CUTOFF {
            return Tick::Close;
        }
        return Tick::Wait;
    }
    let no_request = activity.requests.load(Ordering::Relaxed) == 0;
    if no_request && started.elapsed() >= limits.header_read_timeout {
        Tick::Drain("no request head within header_read_timeout")
    } else if idle && activity.idle_for() >= limits.idle_timeout {
        Tick::Drain("idle_timeout")
    } else {
        Tick::Wait
    }
}

/// Runs the tunnel handed to the connection (an upgrade), if any, until it ends or `shutdown` is cancelled.
async fn run_tunnel(activity: &Activity, shutdown: &CancellationToken) {
    let tunnel = activity.tunnel.lock().ok().and_then(|mut t| t.take());
    if let Some(TunnelSlot(tunnel)) = tunnel {
        tokio::select! {
            _ = tunnel => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Registers the connections of a listener so that, at its cap, one with
/// nothing in flight can be closed to make room (idle clients cannot exhaust
/// the cap). Bounded by the listener's cap.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    conns: Mutex<Vec<(u64, Arc<Activity>, CancellationToken)>>,
    next: AtomicU64,
}

impl Registry {
    /// Adds a connection; returns its id, activity and eviction token.
    pub(crate) fn add(&self) -> (u64, Arc<Activity>, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = (id, Activity::new(), CancellationToken::new());
        if let Ok(mut c) = self.conns.lock() {
            c.push(entry.clone());
        }
        entry
    }
    /// Removes a connection.
    pub(crate) fn remove(&self, id: u64) {
        if let Ok(mut c) = self.conns.lock() {
            c.retain(|e| e.0 != id);
        }
    }
    /// Closes the oldest connection with nothing in flight; false if all are busy.
    pub(crate) fn evict_one(&self) -> bool {
        let Ok(c) = self.conns.lock() else { return false };
        match c.iter().find(|e| e.1.is_idle() && !e.2.is_cancelled()) {
            Some(e) => {
                e.2.cancel();
                true
            }
            None => false,
        }
    }
}

pin_project_lite::pin_project! {
    /// An I/O stream that counts the bytes read from it and records when
    /// bytes last moved either way (for tunnels).
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        read: Arc<AtomicU64>,
        last_ms: Arc<AtomicU64>,
    }
}

impl<T> TrackedIo<T> {
    /// Wraps `inner`; `read` counts bytes read, `last_ms` the time of the last move ([`TrackedIo::idle_for`]).
    pub(crate) fn new(inner: T, read: Arc<AtomicU64>, last_ms: Arc<AtomicU64>) -> Self {
        last_ms.store(now_ms(), Ordering::Relaxed);
        Self { inner, read, last_ms }
    }
    /// How long no bytes moved, by a shared `last_ms`.
    pub(crate) fn idle_for(last_ms: &AtomicU64) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(last_ms.load(Ordering::Relaxed)))
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.read.fetch_add(n as u64, Ordering::Relaxed);
            this.last_ms.store(now_ms(), Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.last_ms.store(now_ms(), Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
