//! Layer 3: the headers every response leaves with, moat's own included.
//!
//! [`ResponseHeaders`] is the layer; it applies, in this order, four
//! response policies that must cover every response (rescue's and the
//! early refusals of layers 4–6 too), each owned by its own module: the
//! `ratelimit-*` headers of the request's bucket, when layer 8 asked one
//! ([`super::rate_limit::response_headers`]),
//! moat's CORS headers in place of the upstream's ([`super::cors::decorate`];
//! the request half of CORS is layer 7), the HTML rendering of moat's
//! error responses for browsers ([`super::error_page::render`]), and the
//! security headers of this module ([`apply`]).
//!
//! Removes headers that advertise the upstream's software or internals
//! (`server`, `x-powered-by`, `x-aspnet-version`, `x-aspnetmvc-version`,
//! `x-runtime`, `x-debug-*`, `x-sourcefiles`) and sets
//! `strict-transport-security` (HTTPS only), `x-content-type-options:
//! nosniff`, `x-frame-options`, `referrer-policy` and
//! `content-security-policy` from `[security_headers]`. An upstream's own
//! CSP is kept when moat's is turned off (`content_security_policy = ""`).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response};

use super::{Policy, Verdict};
use crate::body::Body;
use crate::policy::ctx::Ctx;

/// The configured header values (`None` = do not set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeaders {
    /// `strict-transport-security`
    pub hsts: Option<HeaderValue>,
    /// `content-security-policy`
    pub csp: Option<HeaderValue>,
    /// `x-frame-options`
    pub frame_options: Option<HeaderValue>,
    /// `referrer-policy`
    pub referrer_policy: Option<HeaderValue>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            hsts: Some(HeaderValue::from_static("max-age=31536000; includeSubDomains")),
            csp: Some(HeaderValue::from_static("default-src 'self'")),
            frame_options: Some(HeaderValue::from_static("DENY")),
            referrer_policy: Some(HeaderValue::from_static("no-referrer")),
        }
    }
}

static LEAKY: [http::HeaderName; 6] = [
    header::SERVER,
    http::HeaderName::from_static("x-powered-by"),
    http::HeaderName::from_static("x-aspnet-version"),
    http::HeaderName::from_static("x-aspnetmvc-version"),
    http::HeaderName::from_static("x-runtime"),
    http::HeaderName::from_static("x-sourcefiles"),
];

/// Removes leaky headers from `h` (upstream responses).
pub(crate) fn strip_leaky(h: &mut http::HeaderMap) {
    let leaky = |k: &http::HeaderName| LEAKY.contains(k) || k.as_str().starts_with("x-debug-");
    // One pass over the names (no hashing) finds whether there is anything to remove.
    if !h.keys().any(leaky) {
        return;
    }
    let names: Vec<_> = h.keys().filter(|k| leaky(k)).cloned().collect();
    for n in names {
        h.remove(n);
    }
}

/// The layer's policy: see the module docs.
pub(crate) struct ResponseHeaders;

impl Policy for ResponseHeaders {
    fn check(&self, _req: &mut Request<Body>, _ctx: &Arc<Ctx>) -> Option<Verdict> {
        Some(Verdict::Pass)
    }

    fn response(&self, res: &mut Response<Body>, ctx: &Arc<Ctx>) {
        super::rate_limit::response_headers(res, ctx);
        super::cors::decorate(res, ctx);
        super::error_page::render(res, ctx);
        apply(res, ctx);
    }
}

/// Leaky headers out, the route's security headers in.
pub(crate) fn apply(res: &mut Response<Body>, ctx: &Ctx) {
    let sh = ctx.route().security_headers.as_ref().unwrap_or(&ctx.config.security_headers);
    let own_page = res.extensions().get::<crate::error::MoatPage>().is_some();
    let h = res.headers_mut();
    strip_leaky(h);
    if ctx.conn.tls {
        if let Some(v) = &sh.hsts {
            h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(v) = &sh.frame_options {
        h.insert(header::X_FRAME_OPTIONS, v.clone());
    }
    if let Some(v) = sh.referrer_policy.as_ref().filter(|_| !own_page) {
        h.insert(header::REFERRER_POLICY, v.clone());
    }
    if let Some(v) = sh.csp.as_ref().filter(|_| !own_page) {
        h.insert(header::CONTENT_SECURITY_POLICY, v.clone());
    }
}
