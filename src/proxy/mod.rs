//! Layers 11 and 13: the upstream timeout and the forwarding itself.
//!
//! The request goes to `upstream.url` with its body streaming (never
//! buffered), hop-by-hop headers removed and forwarding headers set; the
//! response streams back the same way. The time to the upstream's response
//! headers is bounded by the route's `response_timeout` (504). Connect
//! failures and broken exchanges become 502. When moat itself cut the
//! request body (limit, inspection), the recorded reason is answered
//! instead. HTTP/1.1 upgrades (WebSocket) are passed through: after a `101`
//! both sides are joined byte for byte.

pub mod client;
pub mod headers;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tower::Service;

use crate::app::Shared;
use crate::body::Body;
use crate::ctx::Ctx;
use crate::error::{BoxError, ProxyError};
use crate::policy::{ctx_of, BoxFuture};

/// The innermost service.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// The proxy.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

thread_local! {
    /// One pooled client per worker thread: its connections are driven by the
    /// worker's own runtime, so an exchange never hops threads.
    static CLIENT: std::cell::OnceCell<client::UpstreamClient> = const { std::cell::OnceCell::new() };
}

/// This thread's upstream client (the shared one outside worker threads).
fn client(shared: &Shared) -> client::UpstreamClient {
    let on_worker = std::thread::current().name().is_some_and(|n| n.starts_with("moat-worker-"));
    if !on_worker {
        return shared.client.clone();
    }
    CLIENT.with(|c| c.get_or_init(|| client::build(&shared.config.load().upstream)).clone())
}

/// The upstream URI for a request.
pub fn upstream_uri(ctx: &Ctx, uri: &Uri) -> Result<Uri, BoxError> {
    let route = ctx.route();
    let path = uri.path();
    let path = match (&route.path, route.strip_prefix) {
        (Some(p), true) => p.strip(path),
        _ => path,
    };
    let up = &ctx.config.upstream;
    let mut pq = String::with_capacity(up.base_path.len() + path.len() + 64);
    pq.push_str(&up.base_path);
    pq.push_str(path);
    if let Some(q) = uri.query() {
        pq.push('?');
        pq.push_str(q);
    }
    Ok(Uri::builder().scheme("http").authority(up.origin.clone()).path_and_query(pq).build()?)
}

/// Rewrites a client request into the upstream request (in place).
pub fn prepare(req: &mut Request<Body>, ctx: &Ctx, trusted_peer: bool, upgrade: bool) -> Result<(), BoxError> {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    *req.uri_mut() = upstream_uri(ctx, req.uri())?;
    *req.version_mut() = Version::HTTP_11;
    let h = req.headers_mut();
    headers::remove_hop_by_hop(h, upgrade);
    headers::set_forwarding(
        h,
        crate::net::canonical(ctx.conn.peer.ip()),
        ctx.client_ip(),
        trusted_peer,
        host.as_deref(),
    );
    match host.as_deref().map(HeaderValue::from_str) {
        Some(Ok(v)) => {
            h.insert(header::HOST, v);
        }
        _ => {
            if let Ok(v) = HeaderValue::from_str(ctx.config.upstream.origin.as_str()) {
                h.insert(header::HOST, v);
            }
        }
    }
    Ok(())
}

impl Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let ctx = ctx_of(&req)?;
            let upgrade = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
            let client_upgrade = if upgrade { Some(hyper::upgrade::on(&mut req)) } else { None };
            let trusted = shared.is_trusted_peer(&ctx.config, ctx.conn.peer.ip());
            prepare(&mut req, &ctx, trusted, upgrade)?;
            let timeout = ctx.route().response_timeout;
            let sent = tokio::time::timeout(timeout, client(&shared).request(req)).await;
            let mut res = match sent {
                Err(_) => {
                    if let Some(r) = ctx.body_verdict.get() {
                        return Err(ProxyError::BodyRefused(r).into());
                    }
                    return Err(ProxyError::UpstreamTimeout.into());
                }
                Ok(Err(e)) => {
                    if let Some(r) = ctx.body_verdict.get() {
                        return Err(ProxyError::BodyRefused(r).into());
                    }
                    if e.is_connect() {
                        return Err(ProxyError::UpstreamConnect(Box::new(e)).into());
                    }
                    return Err(ProxyError::Upstream(Box::new(e)).into());
                }
                Ok(Ok(res)) => res,
            };
            ctx.upstream_status.store(res.status().as_u16(), Ordering::Relaxed);
            if res.status() == StatusCode::SWITCHING_PROTOCOLS {
                if let Some(client_up) = client_upgrade {
                    let upstream_up = hyper::upgrade::on(&mut res);
                    let id = ctx.id.clone();
                    tokio::spawn(async move {
                        match tokio::try_join!(client_up, upstream_up) {
                            Ok((c, u)) => {
                                let mut c = TokioIo::new(c);
                                let mut u = TokioIo::new(u);
                                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                                    tracing::debug!(request_id = %id, error = %e, "upgraded connection ended");
                                }
                            }
                            Err(e) => {
                                tracing::debug!(request_id = %id, error = %e, "upgrade failed")
                            }
                        }
                    });
                    let (mut parts, _) = res.into_parts();
                    headers::remove_hop_by_hop(&mut parts.headers, true);
                    return Ok(Response::from_parts(parts, crate::body::empty()));
                }
            }
            let (mut parts, body) = res.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers, false);
            Ok(Response::from_parts(parts, crate::body::boxed(body)))
        })
    }
}
