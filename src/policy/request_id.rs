//! Layer 1: the request id and the per-request context.
//!
//! Every request, rejections included, gets an id: a UUIDv7 written as 32
//! hex digits (a millisecond timestamp first, so ids sort by time),
//! sent to the upstream and back to the client in `x-request-id`. An incoming
//! `x-request-id` is kept only from a trusted proxy and only if it is 1–64
//! characters of `[A-Za-z0-9._-]`; otherwise it is replaced. This layer also
//! takes the config snapshot the request runs under from start to end, so a
//! reload never changes the policy of a request in flight.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderValue;
use http::{HeaderName, Request, Response};
use tower::{Layer, Service};

use super::BoxFuture;
use arc_swap::ArcSwap;

use crate::body::Body;
use crate::config::Config;
use crate::error::BoxError;
use crate::policy::ctx::{ConnInfo, Ctx};

/// `x-request-id`
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether an incoming id is acceptable.
pub fn valid_id(v: &[u8]) -> bool {
    (1..=64).contains(&v.len()) && v.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

/// A fresh id: a UUIDv7 (RFC 9562) as 32 lowercase hex digits without
/// dashes. Its millisecond timestamp comes first, so ids sort by time; each
/// worker thread keeps its own v7 counter context, so generating an id
/// takes no lock shared between cores.
pub fn new_id() -> String {
    thread_local! {
        static CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
    }
    let id = CONTEXT.with(|c| uuid::Uuid::new_v7(uuid::Timestamp::now(c)));
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    id.simple().encode_lower(&mut buf).to_owned()
}

/// Creates the [`Ctx`] and the request id.
#[derive(Clone)]
pub struct RequestIdLayer {
    config: Arc<ArcSwap<Config>>,
}

impl RequestIdLayer {
    /// The layer, taking each request's config snapshot from `config`.
    pub fn new(config: Arc<ArcSwap<Config>>) -> Self {
        Self { config }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner, config: self.config.clone() }
    }
}

/// See [`RequestIdLayer`].
#[derive(Clone)]
pub struct RequestId<S> {
    inner: S,
    config: Arc<ArcSwap<Config>>,
}

impl<S: super::AlwaysReady> super::AlwaysReady for RequestId<S> {}

impl<S> Service<Request<Body>> for RequestId<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let config = self.config.load_full();
        let conn = req
            .extensions()
            .get::<ConnInfo>()
            .copied()
            .unwrap_or(ConnInfo { peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)), tls: false });
        let trusted = super::client_ip::is_trusted_peer(&config, conn.peer.ip());
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(v) if trusted && valid_id(v.as_bytes()) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            _ => new_id(),
        };
        // Unique to the request: never indexed in HTTP/2's header table (see `never_indexed`).
        let hv = HeaderValue::from_str(&id).ok().map(crate::headers::never_indexed);
        // Room for this and the forwarding headers the proxy adds, in one allocation.
        let _ = req.headers_mut().try_reserve(8);
        if let Some(hv) = &hv {
            req.headers_mut().insert(X_REQUEST_ID.clone(), hv.clone());
        }
        let mut ctx = Ctx::new(id, config, conn);
        ctx.trusted_peer = trusted;
        ctx.prefers_html = ctx.config.errors.html
            && req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(Ctx::accept_prefers_html);
        if let Some(v) = req.headers().get(http::header::ORIGIN) {
            if let Ok(s) = v.to_str() {
                ctx.origin = Some(s.to_string());
                ctx.origin_value = Some(v.clone());
            }
        }
        ctx.host = crate::net::requested_host(&req).map(str::to_string);
        let ctx = Arc::new(ctx);
        req.extensions_mut().insert(ctx);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if let Some(hv) = hv {
                res.headers_mut().insert(X_REQUEST_ID.clone(), hv);
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        assert!(valid_id(b"abc-123_x.y"));
        assert!(!valid_id(b""));
        assert!(!valid_id(&[b'a'; 65]));
        assert!(!valid_id(b"a b"));
        assert!(!valid_id(b"a\"<script>"));
        assert_eq!(new_id().len(), 32);
        let id = new_id();
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        // Version 7 nibble and RFC 9562 variant: a UUIDv7 without dashes.
        assert_eq!(&id[12..13], "7");
        assert!(matches!(&id[16..17], "8" | "9" | "a" | "b"), "{id}");
    }
}
