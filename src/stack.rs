//! The request path as one tower stack, outermost first. Each layer says why
//! it sits where it does; the numbers are the layer numbers of the project's
//! design document (kept outside this repository), so the order can be
//! checked against it. `src/lib.rs` maps each layer to its file.

use std::sync::Arc;

use http::{Request, Response};
use tower::{Service, ServiceBuilder};

use crate::app::Shared;
use crate::body::Body;
use crate::error::BoxError;
use crate::policy::access_log::AccessLogLayer;
use crate::policy::auth::Auth;
use crate::policy::body_limit::BodyLimit;
use crate::policy::client_ip::ClientIp;
use crate::policy::cors::Cors;
use crate::policy::framing::Framing;
use crate::policy::rate_limit::RateLimit;
use crate::policy::request_id::RequestIdLayer;
use crate::policy::rescue::RescueLayer;
use crate::policy::route::Routing;
use crate::policy::sanitize::SanitizeLayer;
use crate::policy::security_headers::Hardening;
use crate::policy::upload::Upload;
use crate::policy::{BoxFuture, PolicyLayer};
use crate::proxy::Proxy;

/// Builds the public listener's service.
pub fn build(
    shared: &Arc<Shared>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + 'static
{
    build_with(shared, Proxy::new(shared.clone()))
}

/// The same stack around another innermost service in place of the proxy
/// (benches drive the whole stack against an in-memory upstream this way).
pub fn build_with<U>(
    shared: &Arc<Shared>,
    upstream: U,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + 'static
where
    U: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + 'static,
{
    ServiceBuilder::new()
        // 1. Everything below, rejections included, carries an id and runs under one config snapshot.
        .layer(RequestIdLayer::new(shared.clone()))
        // 2. Sees the final status of every request, including those made by rescue.
        .layer(AccessLogLayer::new(shared.clone()))
        // 3. Every response, moat's own too, gets the security headers and loses leaky ones.
        .layer(PolicyLayer::new(Hardening))
        // 4. The one place errors and panics become problem+json responses.
        .layer(RescueLayer::new(shared.clone()))
        // 5. Framing first: a request two parsers could read differently is refused before anything trusts it.
        .layer(PolicyLayer::new(Framing))
        // 5. Normalize the path and pick the route every later policy reads.
        .layer(PolicyLayer::new(Routing))
        // 6. Who the client is (trusted proxies only), then the IP allow/deny lists.
        .layer(PolicyLayer::new(ClientIp))
        // 7. CORS before rate limit and auth, so a browser can read a 429 or 401; preflights end here.
        .layer(PolicyLayer::new(Cors))
        // 8. Cheap refusals before expensive work: buckets, then in-flight caps.
        .layer(PolicyLayer::new(RateLimit::new(shared.clone())))
        // 9. Who is asking: headers only, so nothing has read the body yet.
        .layer(PolicyLayer::new(Auth::new(shared.clone())))
        // 10. Body limits wrap the stream before anything reads it.
        .layer(PolicyLayer::new(BodyLimit))
        // 10. Upload inspection wraps the already-limited stream: what the bytes are, as they pass.
        .layer(PolicyLayer::new(Upload::new(shared.metrics.scans.clone())))
        // 12. Only upstream responses pass here: 5xx bodies replaced, 4xx bodies redacted.
        .layer(SanitizeLayer)
        // 11 + 13. Upstream timeout and forwarding.
        .service(upstream)
}
