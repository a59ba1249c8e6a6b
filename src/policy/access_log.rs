//! Layer 2: one JSON access-log line per request (target `moat::access`),
//! written when the response body ends (or the client goes away), so that
//! `bytes_out`, `status` and `duration_ms` are final. It sees every request,
//! rejections included. Sensitive query values are redacted; credential
//! headers are never logged.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::{ctx_of, BoxFuture};
use crate::body::{Body, ObservedBody};
use crate::error::{BoxError, Rejected};
use crate::metrics::Metrics;
use crate::redact::redact_query;
use crate::telemetry::AccessLine;

/// Logs every request.
#[derive(Clone)]
pub(crate) struct AccessLogLayer {
    metrics: Arc<Metrics>,
}

impl AccessLogLayer {
    /// The layer.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner, metrics: self.metrics.clone() }
    }
}

/// See [`AccessLogLayer`].
#[derive(Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S: super::AlwaysReady> super::AlwaysReady for AccessLog<S> {}

impl<S> Service<Request<Body>> for AccessLog<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = req.method().clone();
        // The path is only rendered when the access log is on.
        let path = if AccessLine::enabled() {
            match req.uri().query() {
                Some(q) => format!("{}?{}", req.uri().path(), redact_query(q)),
                None => req.uri().path().to_string(),
            }
        } else {
            String::new()
        };
        let ctx = ctx_of(&req);
        let fut = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let ctx = ctx?;
            let res = fut.await?;
            let status = res.status().as_u16();
            let reject = res.extensions().get::<Rejected>().map(|r| r.0);
            let (parts, body) = res.into_parts();
            let body = ObservedBody::new(body, move |bytes_out, completed| {
                let route = ctx.route();
                let duration = ctx.start.elapsed();
                metrics.observe_request(&route.label, &method, status, duration, reject);
                let upstream_status = ctx.upstream_status.load(Ordering::Relaxed);
                AccessLine {
                    request_id: &ctx.id,
                    client_ip: ctx.client_ip(),
                    method: method.as_str(),
                    path: &path,
                    route: &route.name,
                    status,
                    upstream_status: (upstream_status != 0).then_some(upstream_status),
                    bytes_in: ctx.bytes_in.load(Ordering::Relaxed),
                    bytes_out,
                    duration_ms: (duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                    reject_reason: reject.map(|r| r.as_str()),
                    user: ctx.user.get().map(String::as_str),
                    completed,
                }
                .emit();
            });
            Ok(Response::from_parts(parts, crate::body::boxed(body)))
        })
    }
}
