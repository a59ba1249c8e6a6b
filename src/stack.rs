//! The request path as one tower stack, outermost first. Each layer says why
//! it sits where it does; the numbers are the layer numbers of the design
//! document's layer order, so the order can be checked against it.
//! `src/lib.rs` maps each layer to its file.
//!
//! [`Shared`] is the state that outlives a config reload (the live config,
//! limiter tables, the credential cache, metrics, the default upstream's
//! client); each layer is given only the parts it uses.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Request, Response};
use tower::{Service, ServiceBuilder};

use crate::body::Body;
use crate::config::Config;
use crate::error::BoxError;
use crate::metrics::Metrics;
use crate::policy::access_log::AccessLogLayer;
use crate::policy::auth::Auth;
use crate::policy::auth::AuthState;
use crate::policy::body_limit::BodyLimit;
use crate::policy::client_ip::ClientIp;
use crate::policy::cors::Cors;
use crate::policy::framing::Framing;
use crate::policy::rate_limit::RateLimit;
use crate::policy::rate_limit::RateLimitState;
use crate::policy::request_id::RequestIdLayer;
use crate::policy::rescue::RescueLayer;
use crate::policy::route::Routing;
use crate::policy::sanitize::SanitizeLayer;
use crate::policy::security_headers::ResponseHeaders;
use crate::policy::upload::Upload;
use crate::policy::{AlwaysReady, BoxFuture, PolicyLayer};
use crate::proxy::Proxy;
use crate::upstream::client::UpstreamClient;

/// State kept across reloads, built once by `App::build`.
pub struct Shared {
    /// The current config; each request takes a snapshot (request-id layer).
    pub config: Arc<ArcSwap<Config>>,
    /// The default upstream's client, for requests handled off the workers.
    pub client: UpstreamClient,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Rate-limit buckets and in-flight semaphores.
    pub limiters: Arc<RateLimitState>,
    /// Verified-credential cache and failed-attempt counters.
    pub auth: Arc<AuthState>,
}

impl Shared {
    /// The state for serving `config`.
    pub fn new(config: Config) -> Arc<Self> {
        let metrics = Metrics::new();
        metrics.init_upstreams(config.upstream_names());
        Arc::new(Shared {
            client: config.upstream.new_client(),
            config: Arc::new(ArcSwap::from_pointee(config)),
            metrics: Arc::new(metrics),
            limiters: Default::default(),
            auth: Default::default(),
        })
    }
}

/// Builds the public listener's service.
pub fn build(
    shared: &Arc<Shared>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture>
       + AlwaysReady
       + Clone
       + Send
       + 'static {
    build_with(shared, Proxy::new(shared.client.clone()))
}

/// The same stack around another innermost service in place of the proxy
/// (benches drive the whole stack against an in-memory upstream this way).
pub fn build_with<U>(
    shared: &Arc<Shared>,
    upstream: U,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture>
       + AlwaysReady
       + Clone
       + Send
       + 'static
where
    U: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture>
        + AlwaysReady
        + Clone
        + Send
        + 'static,
{
    ServiceBuilder::new()
        // 1. Everything below, rejections included, carries an id and runs under one config snapshot.
        .layer(RequestIdLayer::new(shared.config.clone()))
        // 2. Sees the final status of every request, including those made by rescue.
        .layer(AccessLogLayer::new(shared.metrics.clone()))
        // 3. Every response, moat's own too: CORS headers (cors.rs), HTML error pages for
        //    browsers (error_page.rs), security headers in and leaky ones out (security_headers.rs).
        .layer(PolicyLayer::new(ResponseHeaders))
        // 4. The one place errors and panics become problem+json responses.
        .layer(RescueLayer::new(shared.metrics.clone()))
        // 5 to 7 decide at once and leave responses alone: one layer, run in the order listed.
        // 5. Framing first: a request two parsers could read differently is refused before anything trusts it.
        // 5. Routing: normalize the path and pick the route every later policy reads.
        // 6. ClientIp: who the client is (trusted proxies only), then the IP allow/deny lists.
        // 7. Cors before rate limit and auth, so a browser can read a 429 or 401; preflights end here.
        .layer(PolicyLayer::new((Framing, Routing, ClientIp, Cors)))
        // 8. Cheap refusals before expensive work: buckets, then in-flight caps.
        .layer(PolicyLayer::new(RateLimit::new(shared.limiters.clone(), shared.auth.clone(), shared.metrics.clone())))
        // 9. Who is asking: headers only, so nothing has read the body yet.
        .layer(PolicyLayer::new(Auth::new(shared.auth.clone())))
        // 10 decides at once too: one layer, run in the order listed.
        // 10. BodyLimit wraps the stream before anything reads it.
        // 10. Upload inspection then wraps the already-limited stream: what the bytes are, as they pass.
        .layer(PolicyLayer::new((BodyLimit, Upload::new(shared.metrics.scans.clone()))))
        // 12. Only upstream responses pass here: 5xx bodies replaced, 4xx bodies redacted.
        .layer(SanitizeLayer)
        // 11 + 13. Upstream timeout and forwarding.
        .service(upstream)
}
