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
//!   replaced by `[redacted]` (see `sanitize::redact`). Bodies over 64 KiB,
//!   compressed bodies, and bodies that do not arrive within 10 s are
//!   replaced instead. Only these bodies are buffered (at most 64 KiB);
//!   every other response streams untouched.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use super::{ctx_of, BoxFuture};
use crate::body::{self, Body};
use crate::ctx::Ctx;
use crate::error::BoxError;
use crate::sanitize::redact;

/// Largest 4xx body redacted in place.
pub const MAX_REDACT: usize = 64 * 1024;
/// Bytes of a replaced 5xx body kept for the log.
pub const MAX_LOGGED: usize = 4 * 1024;
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
pub fn upstream_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        502 => "The service received an invalid response.",
        503 => "The service is temporarily unavailable.",
        504 => "The service did not answer in time.",
        _ => "The service failed to process the request.",
    }
}

/// See the module docs.
#[derive(Clone, Default)]
pub struct SanitizeLayer;

impl<S> Layer<S> for SanitizeLayer {
    type Service = Sanitize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Sanitize { inner }
    }
}

/// See [`SanitizeLayer`].
#[derive(Clone)]
pub struct Sanitize<S> {
    inner: S,
}

/// Reads at most `max` bytes; `Ok(None)` when the body is larger.
async fn read_capped(body: Body, max: usize) -> Result<Option<Bytes>, BoxError> {
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            if buf.len() + d.len() > max {
                return Ok(None);
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(Some(buf.freeze()))
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
    let mut res = crate::error::problem_response(status, upstream_detail(status), ctx, None);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        if let Some(v) = keep.get(header::RETRY_AFTER) {
            res.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
    }
    res
}

async fn sanitize(res: Response<Body>, ctx: Arc<Ctx>, head: bool) -> Response<Body> {
    let policy = ctx.config.errors;
    let status = res.status();
    if head || status.is_informational() || status.is_success() || status.is_redirection() {
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
    if status.is_client_error() && policy.redact_upstream_4xx {
        let (mut parts, b) = res.into_parts();
        let encoded = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let declared_large = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|n| n > MAX_REDACT);
        if encoded || declared_large {
            tracing::info!(request_id = %ctx.id, upstream_status = status.as_u16(), encoded, "upstream 4xx body replaced (too large or compressed to inspect)");
            return replaced(status, &ctx, &parts.headers);
        }
        let read = tokio::time::timeout(READ_DEADLINE, read_capped(b, MAX_REDACT)).await;
        let bytes = match read {
            Ok(Ok(Some(b))) => b,
            _ => {
                tracing::info!(request_id = %ctx.id, upstream_status = status.as_u16(), "upstream 4xx body replaced (too large, slow or broken)");
                return replaced(status, &ctx, &parts.headers);
            }
        };
        let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (clean, changed) = redact::redact_body(ctype.as_deref(), &bytes);
        if changed {
            tracing::info!(request_id = %ctx.id, upstream_status = status.as_u16(), "upstream 4xx body redacted");
            parts.headers.remove(header::ETAG);
            parts.headers.remove("content-md5");
            parts.headers.remove("digest");
        }
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(clean.len()));
        parts.headers.remove(header::TRANSFER_ENCODING);
        return Response::from_parts(parts, body::full(clean));
    }
    res
}

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
