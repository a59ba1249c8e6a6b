//! Layers 11 and 13: the upstream timeout and the forwarding itself.
//!
//! The request goes to `upstream.url` with its body streaming (never
//! buffered), hop-by-hop headers removed and forwarding headers set; the
//! response streams back the same way. The time to the upstream's response
//! headers is bounded by the route's `response_timeout` (504). Connect
//! failures and broken exchanges become 502. When moat itself cut the
//! request body (limit, inspection), the recorded reason is answered
//! instead. Upgrades are forwarded only as `tunnel.rs` allows (WebSocket on
//! routes with `websocket = true`); after the upstream's `101` both sides
//! are joined byte for byte in the client connection's task.

pub mod tunnel;

use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use tower::Service;

use crate::body::Body;
use crate::config::Upstream;
use crate::error::{BoxError, ProxyError};
use crate::headers;
use crate::policy::ctx::Ctx;
use crate::policy::{ctx_of, BoxFuture};
use crate::upstream::client::UpstreamClient;
use crate::upstream::pool::PooledBody;

/// About how many headers the layers add to an upstream response.
const RESPONSE_HEADERS_ADDED: usize = 12;

static HTTP2_SETTINGS: header::HeaderName = header::HeaderName::from_static("http2-settings");

/// The innermost service.
#[derive(Clone)]
pub struct Proxy {
    /// The default upstream's client, for requests served off the workers.
    client: UpstreamClient,
}

impl Proxy {
    /// The proxy; `client` serves the default upstream outside the worker
    /// threads (each worker has its own).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

thread_local! {
    /// One pooled client per worker thread: its connections are driven by the
    /// worker's own runtime, so an exchange never hops threads. Kept with the
    /// config's client it was made for, and made again when a reload brings
    /// another.
    static CLIENT: std::cell::RefCell<Option<(UpstreamClient, UpstreamClient)>> = const { std::cell::RefCell::new(None) };
    /// Whether this thread is a worker (asked once per thread).
    static ON_WORKER: bool = std::thread::current().name().is_some_and(|n| n.starts_with("moat-worker-"));
}

/// The client for `up`: for a plain-HTTP default upstream on a worker
/// thread, that thread's own; else the upstream's pool.
fn client_for(fallback: &UpstreamClient, up: &Upstream) -> UpstreamClient {
    let plain_default = up.tls.is_none() && up.unix.is_none() && &*up.name == "default";
    if !plain_default {
        return up.client.clone();
    }
    if !ON_WORKER.with(|w| *w) {
        return fallback.clone();
    }
    CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        match &*c {
            Some((made_for, own)) if made_for.same_pool(&up.client) => own.clone(),
            _ => {
                let own = up.new_client();
                *c = Some((up.client.clone(), own.clone()));
                own
            }
        }
    })
}

/// The upstream URI for a request (origin form: path and query).
pub fn upstream_uri(ctx: &Ctx, uri: &Uri) -> Result<Uri, BoxError> {
    let route = ctx.route();
    let path = uri.path();
    let path = match (&route.path, route.strip_prefix) {
        (Some(p), true) => p.strip(path),
        _ => path,
    };
    let up = ctx.upstream();
    if up.base_path.is_empty() && std::ptr::eq(path, uri.path()) {
        if let Some(pq) = uri.path_and_query() {
            return Ok(Uri::from(pq.clone()));
        }
    }
    let mut pq = String::with_capacity(up.base_path.len() + path.len() + uri.query().map_or(0, |q| q.len() + 1));
    pq.push_str(&up.base_path);
    pq.push_str(path);
    if let Some(q) = uri.query() {
        pq.push('?');
        pq.push_str(q);
    }
    Ok(Uri::from(http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))?))
}

/// Rewrites a client request into the upstream request (in place), to the
/// upstream address `authority`.
pub fn prepare(
    req: &mut Request<Body>,
    ctx: &Ctx,
    trusted_peer: bool,
    upgrade: bool,
    authority: &http::uri::Authority,
) -> Result<(), BoxError> {
    // The host the client asked for, read once by the request-id layer (read
    // here only for a context made without it, as in the benches).
    let read;
    let host = match ctx.host.as_deref() {
        Some(h) => Some(h),
        None => {
            read = crate::net::requested_host(req).map(str::to_string);
            read.as_deref()
        }
    };
    *req.uri_mut() = upstream_uri(ctx, req.uri())?;
    *req.version_mut() = Version::HTTP_11;
    let h = req.headers_mut();
    headers::remove_hop_by_hop(h, upgrade);
    let host =
        headers::set_forwarding(h, crate::net::canonical(ctx.conn.peer.ip()), ctx.client_ip(), trusted_peer, host);
    match host {
        Some(v) => {
            h.insert(header::HOST, v);
        }
        None => {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                h.insert(header::HOST, v);
            }
        }
    }
    Ok(())
}

impl crate::policy::AlwaysReady for Proxy {}

impl Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        Box::pin(forward(self.client.clone(), req))
    }
}

/// What the upstream's response needs from the request to finish an upgrade.
struct Upgrading {
    client: hyper::upgrade::OnUpgrade,
    conn: Option<crate::server::ConnHandle>,
}

/// Forwards `req` and turns the upstream's answer into the client's response.
async fn forward(fallback: UpstreamClient, mut req: Request<Body>) -> Result<Response<Body>, BoxError> {
    let ctx = ctx_of(&req)?;
    let upgrade = match upgrade_of(&req, &ctx) {
        Ok(u) => u,
        Err(reason) => return Ok(ctx.reject(reason)),
    };
    if !upgrade {
        // Never offered to the upstream: h2c's settings travel with its upgrade.
        req.headers_mut().remove(&HTTP2_SETTINGS);
    }
    let upgrading = upgrade.then(|| Upgrading {
        client: hyper::upgrade::on(&mut req),
        conn: req.extensions().get::<crate::server::ConnHandle>().cloned(),
    });
    let mut res = exchange(&fallback, &ctx, req, upgrade).await?;
    ctx.upstream_status.store(res.status().as_u16(), Ordering::Relaxed);
    // A connection applies `limits.send_timeout` (as of its start) unless the
    // response names another: only a route's own is passed on.
    let send_timeout = ctx.route().send_timeout;
    if send_timeout != ctx.config.limits.send_timeout {
        res.extensions_mut().insert(crate::server::SendTimeout(send_timeout));
    }
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        return switch_protocols(res, upgrading, &ctx);
    }
    let (mut parts, body) = res.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, false);
    // Room for the headers the layers above add (CORS, rate limit,
    // security headers, request id) in one allocation.
    let _ = parts.headers.try_reserve(RESPONSE_HEADERS_ADDED);
    Ok(Response::from_parts(parts, crate::body::boxed(body)))
}

/// Whether the request's upgrade is forwarded (`Ok(false)`: none asked, or
/// its `Upgrade` is dropped), or the reason it is refused.
fn upgrade_of(req: &Request<Body>, ctx: &Ctx) -> Result<bool, crate::error::Reason> {
    if req.version() != Version::HTTP_11 || !headers::wants_upgrade(req.headers()) {
        return Ok(false);
    }
    match tunnel::decide(req.method(), req.headers(), ctx) {
        tunnel::Upgrade::Forward => Ok(true),
        tunnel::Upgrade::Strip => Ok(false),
        tunnel::Upgrade::Refuse(reason) => Err(reason),
    }
}

/// Sends the request to one of the upstream's addresses within the route's
/// response timeout. A request with no body goes to another address when
/// the first refuses the connection (nothing of it was sent). Failures come
/// back as [`ProxyError`]s, or as the reason moat cut the request body.
async fn exchange(
    fallback: &UpstreamClient,
    ctx: &Ctx,
    mut req: Request<Body>,
    upgrade: bool,
) -> Result<Response<PooledBody>, BoxError> {
    let target = ctx.upstream();
    let pool = &target.pool;
    let mut at = pool.pick(None);
    prepare(&mut req, ctx, ctx.trusted_peer, upgrade, &pool.addrs()[at].authority)?;
    let mut retry = (!upgrade && pool.addrs().len() > 1 && http_body::Body::is_end_stream(req.body()))
        .then(|| (req.method().clone(), req.uri().clone(), req.headers().clone()));
    let deadline = tokio::time::Instant::now() + ctx.route().response_timeout;
    let mut next = Some(req);
    loop {
        let Some(req) = next.take() else {
            return Err(ProxyError::Upstream("no request to send".into()).into());
        };
        let in_flight = pool.enter(at);
        let client = client_for(fallback, target);
        let sent = tokio::time::timeout_at(deadline, client.send(&pool.addrs()[at].authority, req)).await;
        drop(in_flight);
        let e = match sent {
            Ok(Ok(res)) => {
                pool.mark_up(at);
                return Ok(res);
            }
            Err(_) => {
                return Err(ctx.body_refused().map_or(ProxyError::UpstreamTimeout, ProxyError::BodyRefused).into())
            }
            Ok(Err(e)) => e,
        };
        if e.is_connect() {
            pool.mark_down(at);
            // One retry at most: `take` leaves none for a second failure.
            if let Some((method, uri, headers)) = retry.take() {
                let failed = at;
                at = pool.pick(Some(failed));
                if at != failed {
                    tracing::info!(
                        request_id = %ctx.id,
                        upstream = %target.name,
                        failed = %pool.addrs()[failed].authority,
                        next = %pool.addrs()[at].authority,
                        "upstream address refused the connection; trying another"
                    );
                    next = Some(resend(method, uri, headers));
                    continue;
                }
            }
        }
        return Err(match ctx.body_refused() {
            Some(r) => ProxyError::BodyRefused(r),
            None if e.is_connect() => ProxyError::UpstreamConnect(Box::new(e)),
            None => ProxyError::Upstream(Box::new(e)),
        }
        .into());
    }
}

/// The same bodiless request again.
fn resend(method: http::Method, uri: Uri, headers: http::HeaderMap) -> Request<Body> {
    let mut again = Request::new(crate::body::empty());
    *again.method_mut() = method;
    *again.uri_mut() = uri;
    *again.headers_mut() = headers;
    again
}

/// The upstream's `101`: joins the two upgraded connections when the client
/// asked for this WebSocket upgrade; any other `101` is never passed on.
fn switch_protocols(
    mut res: Response<PooledBody>,
    upgrading: Option<Upgrading>,
    ctx: &Ctx,
) -> Result<Response<Body>, BoxError> {
    let upstream_ws = res
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let Some(Upgrading { client, conn }) = upgrading.filter(|_| upstream_ws) else {
        return Err(ProxyError::Upstream("unexpected 101 from the upstream".into()).into());
    };
    let upstream = hyper::upgrade::on(&mut res);
    let splice =
        tunnel::splice(client, upstream, ctx.config.limits.idle_timeout, ctx.id.clone(), ctx.route().label.clone());
    match conn {
        Some(conn) => conn.run_after(Box::pin(splice)),
        None => {
            tokio::spawn(splice);
        }
    }
    let (mut parts, _) = res.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, true);
    parts.headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    Ok(Response::from_parts(parts, crate::body::empty()))
}
