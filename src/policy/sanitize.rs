//! Layer 12: the upstream response sanitizer.
//!
//! Threat: apps leak internals through error bodies (Python tracebacks, Go
//! panics, file paths, internal hosts and addresses, object-store URLs,
//! tokens). This layer sees only upstream responses (moat's own are clean by
//! construction) and, by default:
//!
//! - status >= 500 (`errors.replace_upstream_5xx`): the body is replaced by
//!   moat's problem+json with the same status (`retry-after` kept on 503);
//!   the first 4 KiB of the original, redacted, are logged at warn with the
//!   request id so an operator can find it.
//! - 4xx (`errors.redact_upstream_4xx`): the body is passed through with its
//!   structure (JSON stays JSON with the same keys) but with every leak
//!   replaced by `[redacted]` (see `redact`). Bodies over 64 KiB,
//!   compressed bodies, and bodies that do not arrive within 10 s are
//!   replaced instead. 3xx bodies are treated like 4xx ones.
//! - 2xx on a route with `redact_success = true`: JSON and `text/*` bodies
//!   up to 64 KiB go through the same redactor (shape kept). Larger,
//!   compressed or slow ones (10 s) stream on untouched, and that is logged
//!   at info so the operator knows the route's redaction did not apply.
//!   Other media types (files, images) always stream untouched.
//! - A status outside 100–599 (`600`, `999`) is not HTTP: it is answered
//!   as an invalid upstream response (502), whatever `[errors]` says.
//! - Headers: `X-Error-Detail`, `X-Debug-*` and similar debugging headers
//!   are dropped from every upstream response. On 3xx and 4xx responses a
//!   `Location` (or `Content-Location`) pointing at the upstream's own
//!   origin is rewritten to the public origin the client used; one pointing
//!   at another internal host, or carrying credentials or a signature, is
//!   dropped. A `WWW-Authenticate` whose text names internals (an internal
//!   host or address, a path, a token) is redacted.
//!
//! Only the bodies above are buffered (at most 64 KiB); every other response
//! streams untouched.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use tower::{Layer, Service};

use super::{ctx_of, BoxFuture};
use crate::body::{self, Body};
use crate::error::BoxError;
use crate::policy::ctx::Ctx;
use crate::redact;

/// Largest 4xx body redacted in place.
pub(crate) const MAX_REDACT: usize = 64 * 1024;
/// Bytes of a replaced 5xx body kept for the log.
pub(crate) const MAX_LOGGED: usize = 4 * 1024;
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// `[errors]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPolicy {
    /// Replace upstream 5xx bodies.
    pub replace_upstream_5xx: bool,
    /// Redact upstream 4xx bodies.
    pub redact_upstream_4xx: bool,
    /// Add `"error": <detail>` to moat's problem+json (for UIs that read `error`).
    pub error_field: bool,
    /// Answer clients that prefer `text/html` with a minimal HTML page.
    pub html: bool,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        Self { replace_upstream_5xx: true, redact_upstream_4xx: true, error_field: false, html: true }
    }
}

/// The fixed public text for a replaced upstream 5xx.
pub(crate) fn upstream_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        502 => "The service received an invalid response.",
        503 => "The service is temporarily unavailable.",
        504 => "The service did not answer in time.",
        _ => "The service failed to process the request.",
    }
}

/// See the module docs.
#[derive(Clone, Default)]
pub(crate) struct SanitizeLayer;

impl<S> Layer<S> for SanitizeLayer {
    type Service = Sanitize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Sanitize { inner }
    }
}

/// See [`SanitizeLayer`].
#[derive(Clone)]
pub(crate) struct Sanitize<S> {
    inner: S,
}

/// Reads up to `max` bytes, dropping the rest.
async fn read_prefix(body: Body, max: usize) -> Bytes {
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(d) = frame.into_data() {
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&d[..d.len().min(room)]);
            if buf.len() >= max {
                break;
            }
        }
    }
    buf.freeze()
}

fn replaced(status: StatusCode, ctx: &Ctx, keep: &http::HeaderMap) -> Response<Body> {
    let mut res = ctx.problem(status, upstream_detail(status), None);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        if let Some(v) = keep.get(header::RETRY_AFTER) {
            res.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
    }
    res
}

/// What a bounded read of a body found.
enum Read {
    /// The whole body, at most the bound.
    Whole(Bytes),
    /// The body is larger (or slower) than allowed: what was read, and the rest.
    Partial(Bytes, Body),
    /// The body failed.
    Broken,
}

/// Reads a body up to `max` bytes within [`READ_DEADLINE`], keeping the rest
/// unread so that it can still be streamed on.
async fn read_bounded(mut body: Body, max: usize) -> Read {
    let deadline = tokio::time::Instant::now() + READ_DEADLINE;
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Read::Partial(buf.freeze(), body),
            Ok(None) => return Read::Whole(buf.freeze()),
            Ok(Some(Err(_))) => return Read::Broken,
            Ok(Some(Ok(frame))) => {
                if let Ok(d) = frame.into_data() {
                    buf.extend_from_slice(&d);
                    if buf.len() > max {
                        return Read::Partial(buf.freeze(), body);
                    }
                }
            }
        }
    }
}

/// `prefix` followed by the rest of `body`, streamed.
fn prefixed(prefix: Bytes, body: Body) -> Body {
    let first = futures_util::stream::once(async move { Ok::<_, BoxError>(Frame::data(prefix)) });
    body::boxed(StreamBody::new(first.chain(BodyStream::new(body))))
}

/// Debugging headers apps leave on in production.
fn is_debug_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-debug")
        || matches!(
            n,
            "x-error-detail" | "x-error-details" | "x-error-message" | "x-exception" | "x-stacktrace" | "x-stack-trace"
        )
}

/// The public form of a `Location` value, or `None` to drop it.
fn public_location(value: &HeaderValue, ctx: &Ctx) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let absolute = text.contains("://") || text.starts_with("//");
    if !absolute {
        return (redact::redact_text(text) == text).then(|| value.clone());
    }
    let parsed = if text.starts_with("//") { url::Url::parse(&format!("http:{text}")) } else { url::Url::parse(text) };
    let url = parsed.ok()?;
    let up = ctx.upstream();
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => return None,
    };
    let authority = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
    let own = up.pool.addrs().iter().any(|a| authority.eq_ignore_ascii_case(a.authority.as_str()))
        && url.username().is_empty()
        && url.password().is_none();
    if own {
        let mut path = url.path();
        if !up.base_path.is_empty() {
            if let Some(rest) = path.strip_prefix(up.base_path.as_str()) {
                path = if rest.is_empty() { "/" } else { rest };
            }
        }
        if redact::redact_text(path) != path {
            return None;
        }
        let mut out = match ctx.host.as_deref() {
            Some(h) => format!("https://{h}{path}"),
            None => path.to_string(),
        };
        let mut tail = String::new();
        if let Some(q) = url.query() {
            tail.push('?');
            tail.push_str(q);
        }
        if let Some(f) = url.fragment() {
            tail.push('#');
            tail.push_str(f);
        }
        // A query or fragment that leaks (a signed URL, an internal address)
        // is dropped; the path is kept.
        if redact::redact_text(&tail) == tail {
            out.push_str(&tail);
        }
        return HeaderValue::from_str(&out).ok();
    }
    (redact::redact_text(text) == text).then(|| value.clone())
}

/// Drops debugging headers; on 3xx/4xx, rewrites or drops leaky `Location`
/// and redacts `WWW-Authenticate`.
fn scrub_headers(h: &mut HeaderMap, status: StatusCode, ctx: &Ctx) {
    let debug: Vec<HeaderName> = h.keys().filter(|n| is_debug_header(n)).cloned().collect();
    for n in debug {
        tracing::debug!(request_id = %ctx.id, header = %n, "upstream debugging header dropped");
        h.remove(&n);
    }
    if !(status.is_redirection() || status.is_client_error()) {
        return;
    }
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = h.get(&name).cloned() else { continue };
        match public_location(&v, ctx) {
            Some(p) if p == v => {}
            Some(p) => {
                tracing::info!(request_id = %ctx.id, header = %name, "upstream location rewritten to the public origin");
                h.insert(name, p);
            }
            None => {
                tracing::info!(request_id = %ctx.id, header = %name, "upstream location to an internal target dropped");
                h.remove(&name);
            }
        }
    }
    let challenges: Vec<HeaderValue> = h.get_all(header::WWW_AUTHENTICATE).iter().cloned().collect();
    if challenges.iter().any(|v| v.to_str().map_or(true, |t| redact::redact_text(t) != t)) {
        h.remove(header::WWW_AUTHENTICATE);
        for v in challenges {
            let Ok(t) = v.to_str() else { continue };
            if let Ok(clean) = HeaderValue::from_str(&redact::redact_text(t)) {
                h.append(header::WWW_AUTHENTICATE, clean);
            }
        }
        tracing::info!(request_id = %ctx.id, "upstream www-authenticate redacted");
    }
}

/// Whether a content type is one [`redact_success`] rewrites.
fn redactable_success_type(ctype: Option<&str>) -> bool {
    let Some(c) = ctype.map(|c| c.trim().to_ascii_lowercase()) else { return false };
    let essence = c.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/") || essence.ends_with("/json") || essence.ends_with("+json")
}

fn is_encoded(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_ENCODING).is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

fn declared_len(h: &HeaderMap) -> Option<usize> {
    h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
}

/// `parts` with a new, redacted body.
fn with_body(mut parts: http::response::Parts, clean: Vec<u8>, changed: bool) -> Response<Body> {
    if changed {
        parts.headers.remove(header::ETAG);
        parts.headers.remove("content-md5");
        parts.headers.remove("digest");
    }
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(clean.len()));
    parts.headers.remove(header::TRANSFER_ENCODING);
    Response::from_parts(parts, body::full(clean))
}

/// A 2xx body on a `redact_success` route.
async fn redact_success(res: Response<Body>, ctx: &Ctx) -> Response<Body> {
    let (parts, b) = res.into_parts();
    let status = parts.status.as_u16();
    let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    if !redactable_success_type(ctype.as_deref()) {
        return Response::from_parts(parts, b);
    }
    if is_encoded(&parts.headers) || declared_len(&parts.headers).is_some_and(|n| n > MAX_REDACT) {
        tracing::info!(request_id = %ctx.id, upstream_status = status, encoded = is_encoded(&parts.headers), "upstream success body streamed unredacted (too large or compressed to inspect)");
        return Response::from_parts(parts, b);
    }
    match read_bounded(b, MAX_REDACT).await {
        Read::Whole(bytes) => {
            let (clean, changed) = redact::redact_body(ctype.as_deref(), &bytes);
            if changed {
                tracing::info!(request_id = %ctx.id, upstream_status = status, "upstream success body redacted");
            }
            with_body(parts, clean, changed)
        }
        Read::Partial(prefix, rest) => {
            tracing::info!(request_id = %ctx.id, upstream_status = status, "upstream success body streamed unredacted (too large or slow to inspect)");
            Response::from_parts(parts, prefixed(prefix, rest))
        }
        Read::Broken => {
            tracing::info!(request_id = %ctx.id, upstream_status = status, "upstream success body broken");
            replaced(StatusCode::BAD_GATEWAY, ctx, &parts.headers)
        }
    }
}

async fn sanitize(res: Response<Body>, ctx: Arc<Ctx>, head: bool) -> Response<Body> {
    let policy = ctx.config.errors;
    let status = res.status();
    if !(100..=599).contains(&status.as_u16()) {
        tracing::warn!(request_id = %ctx.id, upstream_status = status.as_u16(), "upstream answered a status outside 100-599: invalid response");
        return replaced(StatusCode::BAD_GATEWAY, &ctx, res.headers());
    }
    let mut res = res;
    scrub_headers(res.headers_mut(), status, &ctx);
    if head || status.is_informational() {
        return res;
    }
    if status.is_success() {
        if ctx.route().redact_success {
            return redact_success(res, &ctx).await;
        }
        return res;
    }
    if status.is_server_error() && policy.replace_upstream_5xx {
        let (parts, b) = res.into_parts();
        let original = tokio::time::timeout(READ_DEADLINE, read_prefix(b, MAX_LOGGED)).await.unwrap_or_default();
        let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let (clean, _) = redact::redact_body(ctype, &original);
        tracing::warn!(
            request_id = %ctx.id,
            upstream_status = status.as_u16(),
            upstream_body = %String::from_utf8_lossy(&clean),
            "upstream error response replaced"
        );
        return replaced(status, &ctx, &parts.headers);
    }
    if (status.is_client_error() || status.is_redirection()) && policy.redact_upstream_4xx {
        let (parts, b) = res.into_parts();
        let encoded = is_encoded(&parts.headers);
        if encoded || declared_len(&parts.headers).is_some_and(|n| n > MAX_REDACT) {
            tracing::info!(request_id = %ctx.id, upstream_status = status.as_u16(), encoded, "upstream error body replaced (too large or compressed to inspect)");
            return replaced_keeping_location(status, &ctx, &parts.headers);
        }
        let bytes = match read_bounded(b, MAX_REDACT).await {
            Read::Whole(b) => b,
            _ => {
                tracing::info!(request_id = %ctx.id, upstream_status = status.as_u16(), "upstream error body replaced (too large, slow or broken)");
                return replaced_keeping_location(status, &ctx, &parts.headers);
            }
        };
        let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (clean, changed) = redact::redact_body(ctype.as_deref(), &bytes);
        if changed {
            tracing::info!(request_id = %ctx.id, upstream_status = status.as_u16(), "upstream error body redacted");
        }
        return with_body(parts, clean, changed);
    }
    res
}

/// [`replaced`], keeping a (scrubbed) `Location` and `WWW-Authenticate` so
/// that a redirect or a challenge still works.
fn replaced_keeping_location(status: StatusCode, ctx: &Ctx, keep: &HeaderMap) -> Response<Body> {
    let mut res = replaced(status, ctx, keep);
    for name in [header::LOCATION, header::WWW_AUTHENTICATE] {
        for v in keep.get_all(&name) {
            res.headers_mut().append(name.clone(), v.clone());
        }
    }
    res
}

impl<S: super::AlwaysReady> super::AlwaysReady for Sanitize<S> {}

impl<S> Service<Request<Body>> for Sanitize<S>
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
        let ctx = ctx_of(&req);
        let head = req.method() == Method::HEAD;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let ctx = ctx?;
            let res = fut.await?;
            Ok(sanitize(res, ctx, head).await)
        })
    }
}
