//! Layer 4: the one place where errors become responses.
//!
//! Catches panics from every layer below (a panic becomes a 500 problem+json,
//! never a dropped connection) and turns `Err` values into the problem+json
//! of their [`Reason`]. The cause chain is logged at warn with the request
//! id; the client sees only the fixed text of `error.rs`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{ctx_of, BoxFuture};
use crate::body::Body;
use crate::error::{BoxError, ProxyError, Reason};
use crate::metrics::Metrics;

/// See the module docs.
#[derive(Clone)]
pub(crate) struct RescueLayer {
    metrics: Arc<Metrics>,
}

impl RescueLayer {
    /// The layer.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Rescue { inner, metrics: self.metrics.clone() }
    }
}

/// See [`RescueLayer`].
#[derive(Clone)]
pub(crate) struct Rescue<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The reason for an error: a [`ProxyError`] anywhere in the chain, or internal.
pub(crate) fn reason_of(e: &BoxError) -> (Reason, Option<&'static str>) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
    while let Some(c) = cur {
        if let Some(p) = c.downcast_ref::<ProxyError>() {
            return (p.reason(), p.upstream_kind());
        }
        cur = c.source();
    }
    (Reason::Internal, None)
}

impl<S: super::AlwaysReady> super::AlwaysReady for Rescue<S> {}

impl<S> Service<Request<Body>> for Rescue<S>
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
        let ctx = match ctx_of(&req) {
            Ok(ctx) => ctx,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let h1 = req.version() < http::Version::HTTP_2;
        // The synchronous part of the layers below runs now, under its own
        // guard; their future runs under the other one.
        let fut = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let outcome = match fut {
                Ok(f) => AssertUnwindSafe(f).catch_unwind().await,
                Err(p) => Err(p),
            };
            let err: BoxError = match outcome {
                Ok(Ok(res)) => return Ok(res),
                Ok(Err(e)) => e,
                Err(_) => Box::new(ProxyError::Panic),
            };
            let (reason, kind) = reason_of(&err);
            if let Some(kind) = kind {
                let route = ctx.route();
                let upstream = route.upstream.as_ref().map_or(&ctx.config.upstream.name, |u| &u.name);
                metrics.upstream_error(kind, upstream);
            }
            let level_warn = matches!(reason, Reason::Internal | Reason::UpstreamUnavailable | Reason::UpstreamTimeout);
            if level_warn {
                tracing::warn!(request_id = %ctx.id, reason = reason.as_str(), error = %chain(err.as_ref()), "request failed");
            } else {
                tracing::info!(request_id = %ctx.id, reason = reason.as_str(), error = %chain(err.as_ref()), "request refused");
            }
            let mut res = ctx.reject(reason);
            if reason == Reason::ScanUnavailable {
                // clamd restarts (and reloads its signatures) within about this long.
                res.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("30"));
            }
            if h1 && reason.leaves_body_unread() {
                // The request body was not read to its end: the connection cannot be reused.
                crate::error::close_after(&mut res);
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::request_id::RequestIdLayer;
    use tower::{ServiceBuilder, ServiceExt};

    async fn run(
        inner: impl Fn() -> Result<Response<Body>, BoxError> + Clone + Send + Sync + 'static,
    ) -> Response<Body> {
        let config = Arc::new(arc_swap::ArcSwap::from_pointee(Config::defaults().unwrap()));
        let svc = ServiceBuilder::new()
            .layer(RequestIdLayer::new(config))
            .layer(RescueLayer::new(Arc::new(Metrics::new())))
            .service(tower::service_fn(move |_req: Request<Body>| -> BoxFuture {
                let inner = inner.clone();
                Box::pin(async move { inner() })
            }));
        svc.oneshot(Request::new(crate::body::empty())).await.unwrap()
    }

    async fn body_json(res: Response<Body>) -> serde_json::Value {
        use http_body_util::BodyExt;
        let b = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_problem() {
        let res = run(|| panic!("boom at /srv/secret/path.rs")).await;
        assert_eq!(res.status(), 500);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let v = body_json(res).await;
        assert_eq!(v["status"], 500);
        assert_eq!(v["request_id"], id.as_str());
        assert!(!v.to_string().contains("boom"));
    }

    #[tokio::test]
    async fn errors_map_to_their_status_with_fixed_text() {
        let res = run(|| Err(Box::new(ProxyError::UpstreamConnect("connect 10.0.0.5:8000 refused".into())))).await;
        assert_eq!(res.status(), 502);
        let v = body_json(res).await;
        assert!(!v.to_string().contains("10.0.0.5"));
        let res = run(|| Err(Box::new(ProxyError::UpstreamTimeout))).await;
        assert_eq!(res.status(), 504);
        let res = run(|| Err(Box::new(ProxyError::BodyRefused(Reason::BodyTooLarge)))).await;
        assert_eq!(res.status(), 413);
        let res = run(|| Err("something unforeseen".into())).await;
        assert_eq!(res.status(), 500);
        assert!(!body_json(res).await.to_string().contains("unforeseen"));
    }
}
