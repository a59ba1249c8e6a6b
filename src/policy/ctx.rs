//! Per-request context, created by the request-id layer and shared (one
//! `Arc`) by every layer below it and by the access log that runs when the
//! response body ends. Each fact is computed once, by the layer named on
//! its field, and read by the others. The context also writes moat's own
//! responses for a request ([`Ctx::reject`], [`Ctx::problem`]): they carry
//! its id and follow its config's `[errors]` settings.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Response, StatusCode};

use crate::body::Body;
use crate::config::{Config, Route, Upstream};
use crate::error::Reason;
pub use crate::net::ConnInfo;

/// A rate-limit bucket's answer, kept for the `ratelimit-*` response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The bucket size.
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset: Duration,
    /// When refused: time until one request is allowed.
    pub retry_after: Duration,
}

/// Everything layers learn about a request, for later layers and the log.
#[derive(Debug)]
pub struct Ctx {
    /// The request id (also in `x-request-id`).
    pub id: String,
    /// The config snapshot this request runs under, start to end.
    pub config: Arc<Config>,
    /// The client connection.
    pub conn: ConnInfo,
    /// When the request arrived.
    pub start: Instant,
    /// The matched route.
    pub route: OnceLock<Arc<Route>>,
    /// The resolved client address (trusted-proxy aware).
    pub client_ip: OnceLock<IpAddr>,
    /// The authenticated identity.
    pub user: OnceLock<String>,
    /// Request body bytes read (counted by the body limit's stream wrapper).
    pub bytes_in: AtomicU64,
    /// The upstream's status, 0 if none.
    pub upstream_status: AtomicU16,
    /// Why moat cut the request body stream, if it did (set by the body
    /// wrapper that cut it, read by the proxy when the upstream call fails
    /// because of the cut).
    body_refused: OnceLock<Reason>,
    /// The rate-limit bucket's answer, for the response headers.
    pub ratelimit: OnceLock<BucketState>,
    /// In-flight permits, released when the request ends (the context is dropped
    /// after the response body has been sent).
    pub permits: std::sync::Mutex<Vec<tokio::sync::OwnedSemaphorePermit>>,
    /// The request's `Origin` header, if any.
    pub origin: Option<String>,
    /// The same `Origin` header value (shared, not copied), for an
    /// `access-control-allow-origin` that repeats it.
    pub origin_value: Option<http::HeaderValue>,
    /// The host the client asked for (`:authority` or `Host`).
    pub host: Option<String>,
    /// The client's `Accept` prefers `text/html` over JSON (a browser navigating).
    pub prefers_html: bool,
    /// The TCP peer is one of `client_ip.trusted_proxies` (decided once, by the request-id layer).
    pub trusted_peer: bool,
    /// The `Origin` is allowed by the route's CORS policy (decided once, by the CORS layer).
    pub cors_allowed: OnceLock<bool>,
    /// Which configured API key the request presents (index into
    /// `auth.api_keys`), hashed and matched once for rate limit and auth.
    pub api_key: OnceLock<Option<usize>>,
    /// A re-sealed session cookie for the response (`auth = "session"`).
    pub session_cookie: OnceLock<http::HeaderValue>,
}

impl Ctx {
    /// A new context.
    pub fn new(id: String, config: Arc<Config>, conn: ConnInfo) -> Self {
        Self {
            id,
            config,
            conn,
            start: Instant::now(),
            route: OnceLock::new(),
            client_ip: OnceLock::new(),
            user: OnceLock::new(),
            bytes_in: AtomicU64::new(0),
            upstream_status: AtomicU16::new(0),
            body_refused: OnceLock::new(),
            prefers_html: false,
            trusted_peer: false,
            cors_allowed: OnceLock::new(),
            session_cookie: OnceLock::new(),
            api_key: OnceLock::new(),
            origin: None,
            origin_value: None,
            host: None,
            ratelimit: OnceLock::new(),
            permits: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Whether an `Accept` value prefers HTML: `text/html` is listed with a
    /// weight higher than any JSON type's.
    pub fn accept_prefers_html(accept: &str) -> bool {
        let mut html = 0.0f32;
        let mut json = 0.0f32;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let ty = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0);
            if ty == "text/html" || ty == "application/xhtml+xml" {
                html = html.max(q);
            } else if ty.ends_with("/json") || ty.ends_with("+json") {
                json = json.max(q);
            }
        }
        html > 0.0 && html > json
    }

    /// The client address: resolved, or the peer's.
    pub fn client_ip(&self) -> IpAddr {
        self.client_ip.get().copied().unwrap_or_else(|| crate::net::canonical(self.conn.peer.ip()))
    }

    /// The matched route, or the defaults.
    pub fn route(&self) -> &Arc<Route> {
        self.route.get().unwrap_or(&self.config.default_route)
    }

    /// The upstream the request's route forwards to.
    pub fn upstream(&self) -> &Upstream {
        self.route().upstream.as_deref().unwrap_or(&self.config.upstream)
    }

    /// Records that moat cut the request body for `reason` (the first reason wins).
    pub fn refuse_body(&self, reason: Reason) {
        let _ = self.body_refused.set(reason);
    }

    /// Why moat cut the request body, if it did.
    pub fn body_refused(&self) -> Option<Reason> {
        self.body_refused.get().copied()
    }

    /// moat's refusal of this request for `reason`: its status and fixed text.
    pub fn reject(&self, reason: Reason) -> Response<Body> {
        crate::error::problem(reason.status(), reason.detail(), &self.id, self.config.errors.error_field, Some(reason))
    }

    /// A problem response to this request with one of moat's own fixed texts;
    /// `reason`, when given, marks it as a refusal for the log and metrics.
    pub fn problem(
        &self,
        status: StatusCode,
        detail: impl Into<Cow<'static, str>>,
        reason: Option<Reason>,
    ) -> Response<Body> {
        crate::error::problem(status, detail, &self.id, self.config.errors.error_field, reason)
    }
}
