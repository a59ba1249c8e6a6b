//! Layer 5: head size, path normalization and route matching.
//!
//! A request head (request line and headers) over `limits.max_header_bytes`
//! is refused with 431 `header_too_large`; hyper's own read buffer is a
//! coarser second bound.
//!
//! # The path matched is the path forwarded
//!
//! Threat: a proxy that matches one path and forwards another lets a crafted
//! request run under the policy of a route it does not belong to
//! (`/items//delete` matched as the public `/items/{id}` while a Gin router
//! serves `/items/:id/delete`; `/public/..;/admin` served as `/admin` by
//! Tomcat/Spring; `%252e%252e` decoded twice by the app).
//!
//! The path is percent-decoded once before matching, so `/api/%61dmin` is
//! matched as `/api/admin`: a policy on a route cannot be bypassed by
//! encoding. Refused with 400 `path_rejected`:
//!
//! - anything that is not origin-form, invalid percent-encoding, invalid
//!   UTF-8 after decoding, a raw `\`, NUL or other control bytes;
//! - `.` or `..` segments (plain or encoded);
//! - encoded `/` (`%2f`) or `\` (`%5c`), encoded control bytes;
//! - double encoding: `%25` followed by two hex digits (`%252e`, `%252f`,
//!   `%255c`, `%2500`, also `%2561`), as ModSecurity's core rules do: an app
//!   or framework that decodes twice would otherwise see another path;
//! - path parameters (`;` in a segment, raw or as `%3b`), unless the
//!   top-level `allow_path_params = true`. When allowed, each segment is
//!   matched without its `;...` tail (as Tomcat and Spring strip it), so
//!   `/public/..;/admin` is still refused and `/admin;x` is matched as
//!   `/admin`.
//!
//! What is forwarded: the client's bytes with empty segments removed (`//`
//! collapsed to `/`; a trailing `/` is kept) and nothing else changed. This
//! is provably the path that was matched: the segment boundaries of the raw
//! path are those of the decoded one (no encoded `/` passes), each segment
//! decodes once to exactly the text that was matched, and no sequence passes
//! whose second decoding would differ (no `%25XX`), so an upstream decoding
//! once or twice sees the same segments moat matched. Keeping the client's
//! encoding (instead of re-encoding the decoded text) keeps reserved
//! characters the app distinguishes (`%3F`, `%23`, `%20` vs `+`) exactly as
//! sent. The request's URI is rewritten here, so every later layer and the
//! upstream see the same path.
//!
//! # Methods
//!
//! The first route whose path matches and whose `methods` (if set) include
//! the request's method wins (`HEAD` counts as `GET`). A CORS preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) matches on
//! the method it announces; any other `OPTIONS` is an ordinary method, 405
//! on a route that does not list it. Method-override headers
//! (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`) are
//! removed: a method-override middleware in the app would otherwise run a
//! `DELETE` under a GET-only route's policy. A path that matches only routes
//! with other methods is 405 with `allow`; a path that matches no route gets
//! the defaults, or 404 `not_found` when `deny_unmatched = true`.
//!
//! # Case
//!
//! Matching is case-sensitive, like the routers of Gin (paperless-gpt),
//! FastAPI/Starlette (MinerU-API), Go's `net/http` and Django. A route with
//! `case_insensitive = true` matches its literal segments regardless of
//! ASCII case: set it on routes of apps whose router ignores case
//! (Express by default, ASP.NET, Spring with a case-insensitive matcher), or
//! `/API/admin` reaches the app under the policy of whatever route (or the
//! defaults) matches it instead.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderValue, Method, Request, Response, Uri};

use super::{reject, Decide, Verdict};
use crate::body::Body;
use crate::config::{Config, Route};
use crate::error::Reason;
use crate::policy::ctx::Ctx;

/// Method-override headers removed from every request.
pub static METHOD_OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// A normalized path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The decoded path routes are matched against (no empty segments; with
    /// path parameters allowed, each segment without its `;...` tail).
    pub matched: Cow<'a, str>,
    /// The path forwarded: the client's bytes with empty segments removed.
    pub forward: Cow<'a, str>,
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The normalized path, or why it is refused (see the module docs).
pub fn normalize(path: &str, allow_params: bool) -> Result<Normalized<'_>, Reason> {
    if !path.starts_with('/') {
        return Err(Reason::PathRejected);
    }
    let raw = path.as_bytes();
    let mut escaped = false;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\\' || b < 0x20 || b == 0x7f || (b == b';' && !allow_params) {
            return Err(Reason::PathRejected);
        }
        if b == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_val).ok_or(Reason::PathRejected)?;
            let lo = raw.get(i + 2).copied().and_then(hex_val).ok_or(Reason::PathRejected)?;
            let v = hi << 4 | lo;
            if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f || (v == b';' && !allow_params) {
                return Err(Reason::PathRejected);
            }
            if v == b'%'
                && raw.get(i + 3).copied().and_then(hex_val).is_some()
                && raw.get(i + 4).copied().and_then(hex_val).is_some()
            {
                return Err(Reason::PathRejected);
            }
            escaped = true;
            i += 3;
            continue;
        }
        i += 1;
    }
    // Already normal (what clients send almost always): nothing to decode,
    // drop or strip, so both forms are the path itself.
    let params = allow_params && raw.contains(&b';');
    let dots = path.split('/').any(|s| s == "." || s == "..");
    if !(escaped || params || dots || path.contains("//")) {
        return Ok(Normalized { matched: Cow::Borrowed(path), forward: Cow::Borrowed(path) });
    }
    let mut forward = String::with_capacity(path.len());
    let mut matched = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        forward.push('/');
        forward.push_str(seg);
        let bare = if allow_params { seg.split(';').next().unwrap_or("") } else { seg };
        let decoded = percent_encoding::percent_decode_str(bare).decode_utf8().map_err(|_| Reason::PathRejected)?;
        if decoded == "." || decoded == ".." {
            return Err(Reason::PathRejected);
        }
        if !decoded.is_empty() {
            matched.push('/');
            matched.push_str(&decoded);
        }
    }
    if forward.is_empty() || path.ends_with('/') {
        forward.push('/');
    }
    if matched.is_empty() || (path.ends_with('/') && !matched.ends_with('/')) {
        matched.push('/');
    }
    Ok(Normalized { matched: Cow::Owned(matched), forward: Cow::Owned(forward) })
}

/// The size of a request head as HTTP/1.1 would carry it.
pub fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().path_and_query().map_or(1, |p| p.as_str().len()) + 12;
    req.headers().iter().fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// What routing decided.
pub enum Match {
    /// This route applies.
    Route(Arc<Route>),
    /// No route: the defaults apply.
    Default,
    /// The path matched only routes with other methods.
    WrongMethod(Vec<Method>),
    /// Allowlist mode and no route matched.
    NotFound,
}

/// Whether `route` accepts method `m` (`HEAD` counts as `GET`).
pub fn method_ok(route: &Route, m: &Method) -> bool {
    match &route.methods {
        None => true,
        Some(ms) => ms.contains(m) || (m == Method::HEAD && ms.contains(&Method::GET)),
    }
}

/// Whether a route's `hosts` (if any) match `host` (lowercase, no port).
fn host_ok(route: &Route, host: Option<&str>) -> bool {
    match (&route.hosts, host) {
        (None, _) => true,
        (Some(hs), Some(h)) => hs.iter().any(|r| r.matches(h)),
        (Some(_), None) => false,
    }
}

/// Finds the route for a host (lowercase, no port), normalized path and method.
pub fn find(config: &Config, host: Option<&str>, path: &str, method: &Method) -> Match {
    let mut allowed: Vec<Method> = Vec::new();
    for r in &config.routes {
        if host_ok(r, host) && r.path.as_ref().is_some_and(|p| p.matches(path)) {
            if method_ok(r, method) {
                return Match::Route(r.clone());
            }
            if let Some(ms) = &r.methods {
                for m in ms {
                    if !allowed.contains(m) {
                        allowed.push(m.clone());
                    }
                }
            }
        }
    }
    if !allowed.is_empty() {
        return Match::WrongMethod(allowed);
    }
    if config.deny_unmatched {
        Match::NotFound
    } else {
        Match::Default
    }
}

/// `uri` with its path replaced by `path` (query, scheme and authority kept).
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The policy.
pub struct Routing;

impl Decide for Routing {
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        if head_size(req) > ctx.config.limits.max_header_bytes {
            return reject(Reason::HeaderTooLarge, ctx);
        }
        // A handle on the URI (shared, not copied): the path it holds is read
        // while the request's own URI is rewritten.
        let uri = req.uri().clone();
        let path = match normalize(uri.path(), ctx.config.allow_path_params) {
            Ok(p) => p,
            Err(r) => return reject(r, ctx),
        };
        if path.forward != req.uri().path() {
            match with_path(req.uri(), &path.forward) {
                Some(u) => *req.uri_mut() = u,
                None => return reject(Reason::PathRejected, ctx),
            }
        }
        strip_method_overrides(req, ctx);
        let method = method_to_match(req);
        if let Some(s) = &ctx.config.auth.session {
            // The sign-in pages are moat's own: the default route's policy, on any host.
            if crate::policy::session::is_own_page(s, &path.matched) {
                if path.matched != req.uri().path() {
                    match with_path(req.uri(), &path.matched) {
                        Some(u) => *req.uri_mut() = u,
                        None => return reject(Reason::PathRejected, ctx),
                    }
                }
                return Verdict::Pass;
            }
        }
        let host = ctx.host.as_deref().map(crate::config::host_name);
        match find(&ctx.config, host.as_deref(), &path.matched, &method) {
            Match::Route(r) => {
                let _ = ctx.route.set(r);
                Verdict::Pass
            }
            Match::Default => Verdict::Pass,
            Match::NotFound => reject(Reason::NotFound, ctx),
            Match::WrongMethod(ms) => wrong_method(ctx, &ms),
        }
    }
}

/// Removes the method-override headers, logging each one removed.
fn strip_method_overrides(req: &mut Request<Body>, ctx: &Ctx) {
    // A pass over the names (no hashing) first: almost no request has one.
    if req.headers().keys().any(|k| METHOD_OVERRIDE_HEADERS.contains(k)) {
        for h in &METHOD_OVERRIDE_HEADERS {
            if req.headers_mut().remove(h).is_some() {
                tracing::info!(request_id = %ctx.id, header = %h, "method-override header removed");
            }
        }
    }
}

/// The method routes are matched on: a CORS preflight's requested method, else the request's.
fn method_to_match(req: &Request<Body>) -> Method {
    let mut method = req.method().clone();
    if method == Method::OPTIONS && req.headers().contains_key(http::header::ORIGIN) {
        if let Some(m) = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
        {
            method = m;
        }
    }
    method
}

/// 405 with `Allow` listing the methods the matching routes accept.
fn wrong_method(ctx: &Ctx, ms: &[Method]) -> Verdict {
    let mut res: Response<Body> = ctx.reject(Reason::MethodNotAllowed);
    let allow = ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    if let Ok(v) = HeaderValue::from_str(&allow) {
        res.headers_mut().insert(http::header::ALLOW, v);
    }
    Verdict::Respond(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<(String, String), Reason> {
        normalize(p, false).map(|n| (n.matched.into_owned(), n.forward.into_owned()))
    }

    #[test]
    fn normalization() {
        assert_eq!(n("/a/b").unwrap().0, "/a/b");
        assert_eq!(n("/api/%61dmin").unwrap(), ("/api/admin".into(), "/api/%61dmin".into()));
        for bad in [
            "/a/../b",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/a%00",
            "/a/./b",
            "/%zz",
            "/%ff",
            "x",
            "/a/%252e%252e/b",
            "/a%252fb",
            "/a%255cb",
            "/a%2500",
            "/api/%2561dmin",
            "/public/..;/api/admin",
            "/api/admin;x",
            "/api/admin%3bx",
        ] {
            assert!(n(bad).is_err(), "{bad}");
        }
        assert_eq!(n("/a/..b/c").unwrap().0, "/a/..b/c");
        assert_eq!(n("/a/100%25/c").unwrap().0, "/a/100%/c");
    }

    #[test]
    fn empty_segments_are_collapsed_in_what_is_forwarded() {
        assert_eq!(n("/items//delete").unwrap(), ("/items/delete".into(), "/items/delete".into()));
        assert_eq!(n("//").unwrap(), ("/".into(), "/".into()));
        assert_eq!(n("/").unwrap(), ("/".into(), "/".into()));
        assert_eq!(n("/a//b/").unwrap(), ("/a/b/".into(), "/a/b/".into()));
    }

    #[test]
    fn path_params_when_allowed_are_matched_without_their_tail() {
        let p = normalize("/api/admin;x=1/y", true).unwrap();
        assert_eq!(p.matched, "/api/admin/y");
        assert_eq!(p.forward, "/api/admin;x=1/y");
        assert!(normalize("/public/..;/api/admin", true).is_err());
        assert!(normalize("/public/%2e%2e;x/api", true).is_err());
    }
}
