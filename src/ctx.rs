//! Per-request context, created by the request-id layer and shared (one
//! `Arc`) by every layer below it and by the access log that runs when the
//! response body ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::body::BodyVerdict;
use crate::config::{Config, Route};

/// Facts about the client connection, inserted by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
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
    /// Request body bytes read.
    pub bytes_in: Arc<AtomicU64>,
    /// The upstream's status, 0 if none.
    pub upstream_status: AtomicU16,
    /// Why the request body stream was cut, if it was.
    pub body_verdict: BodyVerdict,
    /// The rate-limit decision, for the response headers.
    pub ratelimit: OnceLock<crate::policy::rate_limit::Decision>,
    /// In-flight permits, released when the request ends (the context is dropped
    /// after the response body has been sent).
    pub permits: std::sync::Mutex<Vec<tokio::sync::OwnedSemaphorePermit>>,
    /// The request's `Origin` header, if any.
    pub origin: Option<String>,
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
            bytes_in: Arc::new(AtomicU64::new(0)),
            upstream_status: AtomicU16::new(0),
            body_verdict: BodyVerdict::default(),
            prefers_html: false,
            trusted_peer: false,
            cors_allowed: OnceLock::new(),
            session_cookie: OnceLock::new(),
            api_key: OnceLock::new(),
            origin: None,
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
}
