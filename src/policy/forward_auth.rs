//! Forward auth (`auth = "forward"`): the auth service decides.
//!
//! Threat: self-hosters who already run Authelia, Authentik or oauth2-proxy
//! want one sign-in for every app; an app without a login (paperless-gpt)
//! must not be reachable around it. nginx does this with `auth_request`,
//! Traefik with ForwardAuth; moat follows the same contract, so those
//! services work unchanged:
//!
//! - For each request moat sends the auth service a `GET` to `url` with the
//!   original request described in `X-Forwarded-Method`, `-Proto`, `-Host`,
//!   `-Uri`, `-For` (and `X-Original-URL` / `X-Original-Method`, which the
//!   nginx-style endpoints read), the client's `Cookie` and `Authorization`
//!   and the `copy_request_headers`. Never the body.
//! - 2xx: allowed. The `copy_response_headers` of the answer (by default
//!   `Remote-User`, `Remote-Groups`, `Remote-Email`, `Remote-Name`) are set on
//!   the upstream request, after every client-sent copy of them was removed
//!   (a client cannot claim to be `Remote-User: admin`); `roles_header`
//!   feeds the route's `roles`, `user_header` names the identity.
//! - 401, 403 or 3xx: the auth service's answer goes to the client as it is
//!   (status, `Location`, `Set-Cookie`, `WWW-Authenticate`, a body of at most
//!   64 KiB), so its login redirect works.
//! - Any other status, a connect failure or no answer within `timeout`: 503
//!   `auth_unavailable`. Never "allow".
//! - `cache_ttl` (off by default): a positive answer is reused for the same
//!   credentials, host and route. The key is a SHA-256 keyed with a secret
//!   drawn at start, so the table never holds a cookie or a token; it is
//!   bounded by `cache_max`. Requests without credentials are never cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::request_id::X_REQUEST_ID;
use crate::body::{self, Body};
use crate::config::Upstream;
use crate::headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use crate::policy::ctx::Ctx;

/// `[auth.forward]`, validated.
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// The check endpoint as configured (logs, `moat check`).
    pub url: String,
    /// The auth service: its address, TLS settings and pooled client.
    pub service: Arc<Upstream>,
    /// Path and query of `url`.
    pub path_and_query: String,
    /// Time for the whole answer.
    pub timeout: Duration,
    /// Client headers sent along besides `Cookie` and `Authorization`.
    pub copy_request_headers: Vec<HeaderName>,
    /// Answer headers copied to the upstream request.
    pub copy_response_headers: Vec<HeaderName>,
    /// The answer's header naming the user.
    pub user_header: Option<HeaderName>,
    /// The answer's header listing the user's groups.
    pub roles_header: Option<HeaderName>,
    /// Reuse of positive answers (`ZERO`: off).
    pub cache_ttl: Duration,
    /// Positive answers cached at most.
    pub cache_max: usize,
}

/// Client headers sent to the auth service unless `copy_request_headers` says otherwise.
pub(crate) const DEFAULT_REQUEST_HEADERS: &[&str] = &["accept", "accept-language", "user-agent", "x-requested-with"];
/// Answer headers copied to the upstream unless `copy_response_headers` says otherwise.
pub(crate) const DEFAULT_RESPONSE_HEADERS: &[&str] = &["remote-user", "remote-groups", "remote-email", "remote-name"];

/// Headers of a refusal (401, 403, 3xx) passed to the client.
const PASSED_BACK: [HeaderName; 5] =
    [header::LOCATION, header::SET_COOKIE, header::WWW_AUTHENTICATE, header::CONTENT_TYPE, header::CACHE_CONTROL];
/// The largest refusal body passed to the client.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// What an allowing answer grants.
#[derive(Debug, Clone)]
pub(crate) struct Allowed {
    /// Headers set on the upstream request.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The user, from `user_header`.
    pub user: Option<String>,
    /// The roles, from `roles_header`.
    pub roles: Vec<String>,
}

/// The auth service's decision.
pub(crate) enum Decision {
    /// 2xx.
    Allow(Arc<Allowed>),
    /// 401, 403 or 3xx: this goes to the client.
    Refuse(Response<Body>),
    /// No usable answer; the cause is for the log only.
    Unavailable(String),
}

/// Positive answers remembered across requests (and reloads: the key covers the URL).
pub(crate) struct ForwardCache {
    secret: [u8; 32],
    entries: DashMap<[u8; 32], (Arc<Allowed>, Instant)>,
}

impl ForwardCache {
    /// An empty cache keyed by `secret`.
    pub(crate) fn new(secret: [u8; 32]) -> Self {
        Self { secret, entries: DashMap::new() }
    }

    fn key(&self, cfg: &ForwardAuthConfig, req: &Request<Body>, ctx: &Ctx) -> Option<[u8; 32]> {
        let creds: Vec<&HeaderValue> =
            req.headers().get_all(header::COOKIE).iter().chain(req.headers().get_all(header::AUTHORIZATION)).collect();
        if creds.is_empty() {
            return None;
        }
        let mut h = Sha256::new();
        h.update(self.secret);
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(cfg.url.as_bytes());
        part(ctx.host.as_deref().unwrap_or("").as_bytes());
        part(ctx.route().name.as_bytes());
        for v in creds {
            part(v.as_bytes());
        }
        Some(h.finalize().into())
    }

    fn get(&self, key: &[u8; 32], ttl: Duration) -> Option<Arc<Allowed>> {
        let hit = self.entries.get(key)?;
        (hit.1.elapsed() < ttl).then(|| hit.0.clone())
    }

    fn put(&self, key: [u8; 32], allowed: Arc<Allowed>, cfg: &ForwardAuthConfig) {
        if self.entries.len() >= cfg.cache_max {
            self.entries.retain(|_, v| v.1.elapsed() < cfg.cache_ttl);
            if self.entries.len() >= cfg.cache_max {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (allowed, Instant::now()));
    }

    /// Drops expired answers.
    pub(crate) fn sweep(&self, ttl: Duration) {
        self.entries.retain(|_, v| v.1.elapsed() < ttl);
    }
}

/// Removes every client-sent copy of the headers the auth service's answer sets.
pub(crate) fn strip_claims(cfg: &ForwardAuthConfig, req: &mut Request<Body>) {
    for name in &cfg.copy_response_headers {
        req.headers_mut().remove(name);
    }
}

/// Sets what an allowing answer grants on the upstream request.
pub(crate) fn apply(allowed: &Allowed, req: &mut Request<Body>) {
    for (name, value) in &allowed.headers {
        req.headers_mut().append(name.clone(), value.clone());
    }
}

/// What is known about a request before the auth service is asked (built
/// while the request is at hand; the asking needs nothing of it).
pub(crate) struct Question {
    key: Option<[u8; 32]>,
    check: Result<Request<Body>, String>,
}

/// The cached answer for `req`, else the question to ask.
pub(crate) fn prepare(
    cfg: &ForwardAuthConfig,
    cache: &ForwardCache,
    req: &Request<Body>,
    ctx: &Ctx,
) -> Result<Arc<Allowed>, Box<Question>> {
    let key = (!cfg.cache_ttl.is_zero()).then(|| cache.key(cfg, req, ctx)).flatten();
    if let Some(hit) = key.as_ref().and_then(|k| cache.get(k, cfg.cache_ttl)) {
        return Ok(hit);
    }
    Err(Box::new(Question { key, check: check_request(cfg, req, ctx) }))
}

/// Asks the auth service; a positive answer is cached.
pub(crate) async fn decide(cfg: &ForwardAuthConfig, cache: &ForwardCache, q: Box<Question>) -> Decision {
    let Question { key, check } = *q;
    let check = match check {
        Ok(c) => c,
        Err(e) => return Decision::Unavailable(e),
    };
    let decision = match tokio::time::timeout(cfg.timeout, ask(cfg, check)).await {
        Ok(d) => d,
        Err(_) => Decision::Unavailable(format!("no answer within {:?}", cfg.timeout)),
    };
    if let (Decision::Allow(a), Some(k)) = (&decision, key) {
        cache.put(k, a.clone(), cfg);
    }
    decision
}

fn check_request(cfg: &ForwardAuthConfig, req: &Request<Body>, ctx: &Ctx) -> Result<Request<Body>, String> {
    let svc = &cfg.service;
    let uri = format!("{}://{}{}", svc.scheme(), svc.origin, cfg.path_and_query);
    let proto = if ctx.conn.tls { "https" } else { "http" };
    let host = ctx.host.as_deref().unwrap_or("");
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut b = Request::get(uri)
        .header(header::HOST, svc.origin.as_str())
        .header(&X_FORWARDED_METHOD, req.method().as_str())
        .header(&X_ORIGINAL_METHOD, req.method().as_str())
        .header(&X_FORWARDED_PROTO, proto)
        .header(&X_FORWARDED_HOST, host)
        .header(&X_FORWARDED_URI, path)
        .header(&X_ORIGINAL_URL, format!("{proto}://{host}{path}"))
        .header(&X_FORWARDED_FOR, ctx.client_ip().to_string())
        .header(&X_REQUEST_ID, ctx.id.as_str());
    let sent = [header::COOKIE, header::AUTHORIZATION];
    for name in sent.iter().chain(&cfg.copy_request_headers) {
        for v in req.headers().get_all(name) {
            b = b.header(name, v);
        }
    }
    b.body(body::empty()).map_err(|e| format!("auth request: {e}"))
}

async fn ask(cfg: &ForwardAuthConfig, check: Request<Body>) -> Decision {
    let res = match cfg.service.client.request(check).await {
        Ok(r) => r,
        Err(e) => return Decision::Unavailable(format!("auth service unreachable: {e}")),
    };
    let status = res.status();
    let (parts, incoming) = res.into_parts();
    if status.is_success() {
        // Read the (small) body so the connection goes back to the pool.
        let _ = http_body_util::Limited::new(incoming, MAX_REFUSAL_BODY).collect().await;
        return Decision::Allow(Arc::new(allowed(cfg, &parts.headers)));
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN || status.is_redirection() {
        let bytes = match http_body_util::Limited::new(incoming, MAX_REFUSAL_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let mut out = Response::new(body::full(bytes));
        *out.status_mut() = status;
        for name in &PASSED_BACK {
            for v in parts.headers.get_all(name) {
                out.headers_mut().append(name.clone(), v.clone());
            }
        }
        if !out.headers().contains_key(header::CACHE_CONTROL) {
            out.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        return Decision::Refuse(out);
    }
    Decision::Unavailable(format!("auth service answered {status}"))
}

fn allowed(cfg: &ForwardAuthConfig, h: &HeaderMap) -> Allowed {
    let mut headers = Vec::new();
    for name in &cfg.copy_response_headers {
        for v in h.get_all(name) {
            headers.push((name.clone(), v.clone()));
        }
    }
    let text = |name: &Option<HeaderName>| {
        name.as_ref().and_then(|n| h.get(n)).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
    };
    let user = text(&cfg.user_header).map(str::to_string);
    let roles = text(&cfg.roles_header)
        .map(|g| g.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Allowed { headers, user, roles }
}
