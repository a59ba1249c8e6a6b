//! Layer 7: CORS, owned by moat.
//!
//! Threat: an upstream that allows every origin (MinerU-API ships
//! `allow_origins=["*"]`) lets any web page read its answers with the
//! user's credentials, and a cross-site form post can change state. moat
//! replaces the upstream's policy: its `access-control-*` headers never
//! reach a browser, and only the origins of `[cors]` (or a route's own
//! `cors`) get access.
//!
//! - Origins: exact (`https://docs.example.com`; scheme, host and port,
//!   case-insensitive, default ports equivalent), wildcard subdomains
//!   (`https://*.example.org` matches `https://a.example.org` and
//!   `https://a.b.example.org`, never `https://example.org` or
//!   `https://evil-example.org`), `null` only if listed literally, `*`
//!   (never with credentials). The request's own origin (same-origin
//!   requests, which browsers also label with `Origin`) is always allowed.
//! - Preflights (`OPTIONS` + `Origin` + `Access-Control-Request-Method`) are
//!   answered here and never forwarded: 204 with the allow headers, or 403
//!   `cors_origin` with none.
//! - Actual requests from an allowed origin get `access-control-allow-origin`
//!   (the origin echoed), `-allow-credentials`, `-expose-headers` and
//!   `Vary: Origin` (merged with the upstream's). From other origins, safe
//!   methods are forwarded without CORS headers and state-changing methods
//!   are refused with 403 (`reject_disallowed_origin`), which also stops
//!   cross-site form posts.
//! - The response half ([`decorate`]) runs in layer 3 (`security_headers::ResponseHeaders`), so moat's
//!   own rejections (404, 403, 429, 401, 413, ...) sent to an allowed origin
//!   are readable by the browser app.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::{reject, Decide, Verdict};
use crate::body::Body;
use crate::error::Reason;
use crate::policy::ctx::Ctx;

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    /// Any origin (`*`).
    Any,
    /// The opaque origin `null`.
    Null,
    /// scheme://host:port
    Exact {
        /// `http` or `https`.
        scheme: String,
        /// Lowercase host.
        host: String,
        /// Port (default filled in).
        port: u16,
    },
    /// scheme://*.suffix:port
    Wildcard {
        /// `http` or `https`.
        scheme: String,
        /// Lowercase suffix without the leading `*.`.
        suffix: String,
        /// Port (default filled in).
        port: u16,
    },
}

/// A parsed origin: scheme, host, port, borrowed from the text (in the case
/// it was sent in; every comparison ignores ASCII case).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
}

impl Origin<'_> {
    /// Whether this is `scheme://host:port`.
    fn is(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.port == port && self.scheme.eq_ignore_ascii_case(scheme) && self.host.eq_ignore_ascii_case(host)
    }
}

/// The default port of `scheme` (any ASCII case), for the schemes an origin may have.
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

fn valid_host(h: &str, allow_wild: bool) -> bool {
    if h.starts_with('[') && h.ends_with(']') {
        return h[1..h.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.as_bytes().split(|b| *b == b'.').enumerate().all(|(i, label)| {
            (allow_wild && i == 0 && label == b"*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                    && !label.starts_with(b"-")
                    && !label.ends_with(b"-"))
        })
}

/// A port as browsers serialize it: ASCII digits without a leading zero
/// (`u16::from_str` would also take `+443` and `0443`).
fn port_number(p: &str) -> Option<u16> {
    if p.is_empty() || p.starts_with('0') || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// Parses `scheme://host[:port]` (what a browser sends in `Origin`), without
/// allocating: it runs for every request whose origin is not on the list.
pub fn parse_origin(s: &str) -> Option<Origin<'_>> {
    // The scheme has no `:`, so the first one starts `://`.
    let colon = memchr::memchr(b':', s.as_bytes())?;
    let (scheme, rest) = (&s[..colon], s[colon..].strip_prefix("://")?);
    let dport = default_port(scheme)?;
    let (host, port) = parse_authority(rest, dport)?;
    Some(Origin { scheme, host, port })
}

/// Parses `host[:port]` (an origin's, or a request's `Host`), the port
/// `dport` when none is given.
fn parse_authority(rest: &str, dport: u16) -> Option<(&str, u16)> {
    if rest.is_empty() || rest.bytes().any(|b| matches!(b, b'/' | b'?' | b'#' | b'@')) {
        return None;
    }
    let (host, port) = if let Some(end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
        let host = &rest[..end + 2];
        let after = &rest[end + 2..];
        let port = match after.strip_prefix(':') {
            Some(p) => port_number(p)?,
            None if after.is_empty() => dport,
            None => return None,
        };
        (host, port)
    } else {
        match memchr::memrchr(b':', rest.as_bytes()) {
            Some(i) => (&rest[..i], port_number(&rest[i + 1..])?),
            None => (rest, dport),
        }
    };
    valid_host(host, false).then_some((host, port))
}

impl OriginRule {
    /// Parses a configured origin.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(OriginRule::Any);
        }
        if s == "null" {
            return Ok(OriginRule::Null);
        }
        let bad = || {
            format!("\"{s}\" is not an origin: use scheme://host[:port] (e.g. https://docs.example.com, https://*.example.org), \"null\" or \"*\"")
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        if let Some(wild) = rest.strip_prefix("*.") {
            let text = format!("{scheme}://{wild}");
            let o = parse_origin(&text).ok_or_else(bad)?;
            if o.host.starts_with('[') || o.host.parse::<std::net::Ipv4Addr>().is_ok() || !o.host.contains('.') {
                return Err(format!("\"{s}\": a wildcard needs a domain with at least two labels after *."));
            }
            let (scheme, suffix) = (o.scheme.to_ascii_lowercase(), o.host.to_ascii_lowercase());
            return Ok(OriginRule::Wildcard { scheme, suffix, port: o.port });
        }
        let o = parse_origin(s).ok_or_else(bad)?;
        Ok(OriginRule::Exact { scheme: o.scheme.to_ascii_lowercase(), host: o.host.to_ascii_lowercase(), port: o.port })
    }

    /// Whether `raw` is this exact origin serialized the way browsers do it
    /// (lowercase, the port only when given), so it matches without parsing.
    /// Never true where [`OriginRule::matches`] on the parsed value is false.
    fn is_serialized(&self, raw: &str) -> bool {
        let OriginRule::Exact { scheme, host, port } = self else { return false };
        let Some(rest) = raw.strip_prefix(scheme.as_str()).and_then(|r| r.strip_prefix("://")) else {
            return false;
        };
        match rest.strip_prefix(host.as_str()) {
            Some("") => default_port(scheme) == Some(*port),
            Some(after) => after.strip_prefix(':').and_then(port_number) == Some(*port),
            None => false,
        }
    }

    /// Whether `origin` (the raw `Origin` header value) matches.
    pub fn matches(&self, raw: &str, parsed: Option<&Origin>) -> bool {
        match (self, parsed) {
            (OriginRule::Any, _) => true,
            (OriginRule::Null, _) => raw == "null",
            (OriginRule::Exact { scheme, host, port }, Some(o)) => o.is(scheme, host, *port),
            (OriginRule::Wildcard { scheme, suffix, port }, Some(o)) => {
                // A parsed host is ASCII (see `valid_host`): any byte index is a char boundary.
                o.port == *port
                    && o.scheme.eq_ignore_ascii_case(scheme)
                    && o.host.len() > suffix.len() + 1
                    && o.host.as_bytes()[o.host.len() - suffix.len() - 1] == b'.'
                    && o.host.as_bytes()[o.host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
            _ => false,
        }
    }
}

/// `[cors]` (or a route's `cors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Allowed origins.
    pub origins: Vec<OriginRule>,
    /// Methods a preflight may ask for.
    pub methods: Vec<Method>,
    /// Request headers a preflight may ask for (lowercase).
    pub headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub expose: Vec<String>,
    /// `expose` as the header's value (`None` when empty), made with the
    /// config: see [`CorsPolicy::with_expose`].
    pub expose_value: Option<HeaderValue>,
    /// Send `access-control-allow-credentials: true`.
    pub credentials: bool,
    /// Preflight cache lifetime.
    pub max_age: Duration,
    /// Answer Private Network Access preflights.
    pub private_network: bool,
    /// Refuse state-changing methods from disallowed origins.
    pub reject_disallowed: bool,
}

impl Default for CorsPolicy {
    fn default() -> Self {
        let expose: Vec<String> =
            ["x-request-id", "retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        Self {
            origins: Vec::new(),
            methods: vec![Method::GET, Method::HEAD, Method::POST],
            headers: [
                "accept",
                "accept-language",
                "content-language",
                "content-type",
                "authorization",
                "x-api-key",
                "x-request-id",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            expose_value: expose_value(&expose),
            expose,
            credentials: false,
            max_age: Duration::from_secs(600),
            private_network: false,
            reject_disallowed: true,
        }
    }
}

/// The `access-control-expose-headers` value listing `names`.
fn expose_value(names: &[String]) -> Option<HeaderValue> {
    if names.is_empty() {
        return None;
    }
    crate::headers::owned_value(names.join(", "))
}

impl CorsPolicy {
    /// The policy exposing `names` instead.
    pub fn with_expose(mut self, names: Vec<String>) -> Self {
        self.expose_value = expose_value(&names);
        self.expose = names;
        self
    }

    /// Whether the raw `Origin` value is allowed by the list.
    pub fn allows(&self, raw: &str) -> bool {
        // What browsers send: an allowed origin exactly as it serializes.
        if self.origins.iter().any(|r| r.is_serialized(raw)) {
            return true;
        }
        let parsed = parse_origin(raw);
        self.origins.iter().any(|r| r.matches(raw, parsed.as_ref()))
    }
}

/// Whether `origin` is the request's own origin (`https://` + its host).
pub fn same_origin(origin: &str, ctx: &Ctx) -> bool {
    let (Some(o), Some(host)) = (parse_origin(origin), ctx.host.as_deref()) else { return false };
    let (scheme, dport) = if ctx.conn.tls { ("https", 443) } else { ("http", 80) };
    parse_authority(host, dport).is_some_and(|(host, port)| o.is(scheme, host, port))
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The policy in force for a request.
pub fn policy_of(ctx: &Ctx) -> &CorsPolicy {
    ctx.route().cors.as_ref().unwrap_or(&ctx.config.cors)
}

/// The origin a response may be shared with, if any.
fn allowed_origin<'a>(ctx: &'a Ctx, policy: &CorsPolicy) -> Option<&'a str> {
    let origin = ctx.origin.as_deref()?;
    origin_allowed(ctx, policy, origin).then_some(origin)
}

/// Whether `origin` (the request's) is allowed, decided once per request.
fn origin_allowed(ctx: &Ctx, policy: &CorsPolicy, origin: &str) -> bool {
    *ctx.cors_allowed.get_or_init(|| policy.allows(origin) || same_origin(origin, ctx))
}

/// Merges `Origin` into the `Vary` header(s), never duplicating it.
pub fn merge_vary(h: &mut HeaderMap, add: &[&str]) {
    if add == ["Origin"] && !h.contains_key(header::VARY) {
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return;
    }
    let mut tokens: Vec<String> = Vec::new();
    for v in h.get_all(header::VARY).iter() {
        if let Ok(s) = v.to_str() {
            for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !tokens.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                    tokens.push(t.to_string());
                }
            }
        }
    }
    if tokens.iter().any(|t| t == "*") {
        return;
    }
    for a in add {
        if !tokens.iter().any(|x| x.eq_ignore_ascii_case(a)) {
            tokens.push((*a).to_string());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&tokens.join(", ")) {
        h.insert(header::VARY, v);
    }
}

/// Removes every `access-control-*` header (the upstream's policy).
pub fn strip_upstream(h: &mut HeaderMap) {
    if !h.keys().any(|k| k.as_str().starts_with("access-control-")) {
        return;
    }
    let names: Vec<HeaderName> = h.keys().filter(|k| k.as_str().starts_with("access-control-")).cloned().collect();
    for n in names {
        h.remove(n);
    }
}

/// Applies moat's CORS policy to any response (called by layer 3, `security_headers::ResponseHeaders`).
pub fn decorate(res: &mut Response<Body>, ctx: &Ctx) {
    if res.extensions().get::<PreflightAnswered>().is_some() {
        return;
    }
    let policy = policy_of(ctx);
    let h = res.headers_mut();
    strip_upstream(h);
    if ctx.origin.is_none() {
        return;
    }
    merge_vary(h, &["Origin"]);
    let Some(origin) = allowed_origin(ctx, policy) else { return };
    let value = match &ctx.origin_value {
        Some(v) if v.as_bytes() == origin.as_bytes() => Ok(v.clone()),
        _ => HeaderValue::from_str(origin),
    };
    if let Ok(v) = value {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if policy.credentials {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Some(v) = &policy.expose_value {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}

static REQUEST_PRIVATE_NETWORK: HeaderName = HeaderName::from_static("access-control-request-private-network");
static ALLOW_PRIVATE_NETWORK: HeaderName = HeaderName::from_static("access-control-allow-private-network");

/// The policy.
pub struct Cors;

impl Decide for Cors {
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let Some(origin) = ctx.origin.as_deref() else { return Verdict::Pass };
        let policy = policy_of(ctx);
        let allowed = origin_allowed(ctx, policy, origin);
        let acrm = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD).cloned();
        if req.method() == Method::OPTIONS {
            if let Some(acrm) = acrm {
                return preflight(req, ctx, policy, allowed, &acrm);
            }
        }
        if !allowed && policy.reject_disallowed && !is_safe(req.method()) {
            tracing::info!(request_id = %ctx.id, origin = %origin, method = %req.method(), "cross-origin request from a disallowed origin refused");
            return reject(Reason::CorsOrigin, ctx);
        }
        Verdict::Pass
    }
}

/// Answers a CORS preflight: 204 with the allow headers, or the refusal.
fn preflight(req: &Request<Body>, ctx: &Arc<Ctx>, policy: &CorsPolicy, allowed: bool, acrm: &HeaderValue) -> Verdict {
    // The preflight is answered here whatever the outcome: it never reaches the upstream.
    if !allowed {
        return refuse_preflight(ctx, "origin");
    }
    let method = Method::from_bytes(acrm.as_bytes()).ok();
    let method_ok = method
        .as_ref()
        .is_some_and(|m| policy.methods.contains(m) || (m == Method::HEAD && policy.methods.contains(&Method::GET)));
    if !method_ok {
        return refuse_preflight(ctx, "method");
    }
    let Some(asked) = asked_headers(req) else { return refuse_preflight(ctx, "headers") };
    if asked.iter().any(|h| !policy.headers.contains(h)) {
        return refuse_preflight(ctx, "headers");
    }
    let wants_pna =
        req.headers().get(&REQUEST_PRIVATE_NETWORK).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if wants_pna && !policy.private_network {
        return refuse_preflight(ctx, "private network");
    }
    mark_preflight(preflight_allowed(ctx, policy, &asked, wants_pna))
}

/// Marks a preflight answer so the outer decoration leaves it alone.
fn mark_preflight(mut res: Response<Body>) -> Verdict {
    res.extensions_mut().insert(PreflightAnswered);
    Verdict::Respond(res)
}

/// Logs a refused preflight and answers 403 `cors_origin` with `Vary: Origin`.
fn refuse_preflight(ctx: &Ctx, why: &str) -> Verdict {
    tracing::info!(request_id = %ctx.id, origin = ctx.origin.as_deref().unwrap_or(""), why, "CORS preflight refused");
    match reject(Reason::CorsOrigin, ctx) {
        Verdict::Respond(mut r) => {
            merge_vary(r.headers_mut(), &["Origin"]);
            mark_preflight(r)
        }
        v => v,
    }
}

/// The lowercased names in `Access-Control-Request-Headers`; `None` if a value is not text.
fn asked_headers(req: &Request<Body>) -> Option<Vec<String>> {
    let mut asked: Vec<String> = Vec::new();
    for v in req.headers().get_all(header::ACCESS_CONTROL_REQUEST_HEADERS).iter() {
        let s = v.to_str().ok()?;
        asked.extend(s.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
    }
    Some(asked)
}

/// The 204 answer to an allowed preflight, with the allow headers.
fn preflight_allowed(ctx: &Ctx, policy: &CorsPolicy, asked: &[String], wants_pna: bool) -> Response<Body> {
    let mut res = Response::new(crate::body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    if let Some(o) = ctx.origin.as_deref().and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    let methods = policy.methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    if let Ok(v) = HeaderValue::from_str(&methods) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !asked.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&asked.join(", ")) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(policy.max_age.as_secs()));
    if policy.credentials {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if wants_pna {
        h.insert(ALLOW_PRIVATE_NETWORK.clone(), HeaderValue::from_static("true"));
    }
    merge_vary(h, &["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"]);
    res
}

/// Marks a response as a preflight answer (the outer decoration leaves it alone).
#[derive(Debug, Clone, Copy)]
pub struct PreflightAnswered;

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(rules: &[&str], origin: &str) -> bool {
        let p =
            CorsPolicy { origins: rules.iter().map(|r| OriginRule::parse(r).unwrap()).collect(), ..Default::default() };
        p.allows(origin)
    }

    #[test]
    fn the_unparsed_fast_path_never_allows_what_parsing_refuses() {
        let rules: Vec<OriginRule> = ["https://docs.example.com", "http://[::1]:8080", "https://a.example.org:8443"]
            .iter()
            .map(|r| OriginRule::parse(r).unwrap())
            .collect();
        let raws = [
            "https://docs.example.com",
            "https://docs.example.com:443",
            "https://docs.example.com:",
            "https://docs.example.com:0443",
            "https://docs.example.com:+443",
            "https://docs.example.com.evil.com",
            "https://docs.example.com/",
            "https://docs.example.com@evil.com",
            "http://[::1]:8080",
            "http://[::1]",
            "http://[::1]:80800",
            "https://a.example.org:8443",
            "https://a.example.org",
            "https://a.example.org:8443:1",
        ];
        for rule in &rules {
            for raw in raws {
                if rule.is_serialized(raw) {
                    assert!(rule.matches(raw, parse_origin(raw).as_ref()), "{rule:?} {raw}");
                }
            }
        }
        assert!(rules[0].is_serialized("https://docs.example.com") && rules[1].is_serialized("http://[::1]:8080"));
    }

    #[test]
    fn exact_origins() {
        let r = ["https://docs.example.com"];
        assert!(allows(&r, "https://docs.example.com"));
        assert!(allows(&r, "HTTPS://DOCS.EXAMPLE.COM"));
        assert!(allows(&r, "https://docs.example.com:443"));
        assert!(!allows(&r, "http://docs.example.com"));
        // Found by fuzzing: a `+` before the port is no serialized origin.
        assert!(!allows(&r, "https://docs.example.com:+443"));
        assert!(!allows(&r, "https://docs.example.com:0443"));
        assert!(!allows(&r, "https://docs.example.com:"));
        assert!(!allows(&r, "https://docs.example.com:8443"));
        assert!(!allows(&r, "https://docs.example.com.evil.com"));
        assert!(!allows(&r, "https://xdocs.example.com"));
        assert!(!allows(&r, "null"));
        assert!(!allows(&r, "https://docs.example.com/path"));
        assert!(allows(&["http://localhost:8080"], "http://localhost:8080"));
        assert!(!allows(&["http://localhost:8080"], "http://localhost"));
        assert!(allows(&["http://example.com:80"], "http://example.com"));
    }

    #[test]
    fn wildcard_subdomains() {
        let r = ["https://*.example.org"];
        assert!(allows(&r, "https://a.example.org"));
        assert!(allows(&r, "https://a.b.example.org"));
        assert!(allows(&r, "https://A.Example.ORG:443"));
        assert!(!allows(&r, "https://example.org"));
        assert!(!allows(&r, "https://evil-example.org"));
        assert!(!allows(&r, "https://example.org.evil.com"));
        assert!(!allows(&r, "https://aexample.org"));
        assert!(!allows(&r, "http://a.example.org"));
        assert!(!allows(&r, "https://a.example.org:8443"));
    }

    #[test]
    fn null_and_any() {
        assert!(allows(&["null"], "null"));
        assert!(!allows(&["https://a.example"], "null"));
        assert!(allows(&["*"], "https://anything.example"));
    }

    #[test]
    fn malformed_rules_refused() {
        for bad in [
            "docs.example.com",
            "https://",
            "https://docs.example.com/",
            "ftp://x.example",
            "https://*.com",
            "https://a.*.example.org",
            "https://exa mple.org",
            "https://*.example.org/x",
            "https://user@example.org",
        ] {
            assert!(OriginRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vary_merge() {
        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.append(header::VARY, HeaderValue::from_static("origin, Cookie"));
        merge_vary(&mut h, &["Origin"]);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        assert_eq!(h[header::VARY], "Accept-Encoding, origin, Cookie");
        let mut h = HeaderMap::new();
        merge_vary(&mut h, &["Origin"]);
        assert_eq!(h[header::VARY], "Origin");
    }
}
