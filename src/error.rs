//! The rescue vocabulary: why a request was refused or failed, the status it
//! gets, and the fixed public text it is answered with (RFC 9457
//! `application/problem+json`). This is the one place where causes become
//! responses; the `detail` never carries upstream text, an address, a path, a
//! Rust error string or a config value. The real cause goes to the log,
//! with the request id, so an operator can find it. A leaf below the
//! policies: it knows reasons and response shapes, not requests.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::body::{self, Body};

/// Why moat answered a request itself. The snake_case name is the `reason`
/// metric label and the access log's `reject_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Client IP refused by `[client_ip]`.
    IpDenied,
    /// Malformed request.
    BadRequest,
    /// Path refused by normalization (`..`, encoded separators, NUL).
    PathRejected,
    /// Request head too large.
    HeaderTooLarge,
    /// CORS: origin, method or header not allowed.
    CorsOrigin,
    /// Rate limit exceeded.
    RateLimited,
    /// Missing or wrong credentials.
    AuthFailed,
    /// Too many failed attempts from this client.
    AuthThrottled,
    /// The forward-auth service gave no usable answer.
    AuthUnavailable,
    /// Authenticated but lacking a role the route needs.
    Forbidden,
    /// Body over the route's limit.
    BodyTooLarge,
    /// Upload or request body of a type the route does not accept.
    UploadType,
    /// Upload filename refused.
    UploadName,
    /// Too many files in one upload.
    UploadCount,
    /// clamd found malware in an upload.
    UploadMalware,
    /// An upload could not be scanned (clamd down, too slow, or failing).
    ScanUnavailable,
    /// Path outside every route in allowlist mode.
    NotFound,
    /// Method not allowed on the route.
    MethodNotAllowed,
    /// The upstream sent no response headers in time.
    UpstreamTimeout,
    /// The upstream could not be reached or broke the exchange.
    UpstreamUnavailable,
    /// Shed: too many requests in flight, or a backend moat depends on is down.
    Overloaded,
    /// The client stopped sending its body in time.
    RequestTimeout,
    /// A fault inside moat.
    Internal,
}

impl Reason {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IpDenied => "ip_denied",
            Reason::BadRequest => "bad_request",
            Reason::PathRejected => "path_rejected",
            Reason::HeaderTooLarge => "header_too_large",
            Reason::CorsOrigin => "cors_origin",
            Reason::RateLimited => "rate_limited",
            Reason::AuthFailed => "auth_failed",
            Reason::AuthThrottled => "auth_throttled",
            Reason::AuthUnavailable => "auth_unavailable",
            Reason::Forbidden => "forbidden",
            Reason::BodyTooLarge => "body_too_large",
            Reason::UploadType => "upload_type",
            Reason::UploadName => "upload_name",
            Reason::UploadCount => "upload_count",
            Reason::UploadMalware => "upload_malware",
            Reason::ScanUnavailable => "scan_unavailable",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::Overloaded => "overloaded",
            Reason::RequestTimeout => "request_timeout",
            Reason::Internal => "internal_error",
        }
    }

    /// The status a client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Reason::IpDenied | Reason::CorsOrigin | Reason::Forbidden | Reason::UploadMalware => StatusCode::FORBIDDEN,
            Reason::BadRequest | Reason::PathRejected | Reason::UploadName | Reason::UploadCount => {
                StatusCode::BAD_REQUEST
            }
            Reason::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::RateLimited | Reason::AuthThrottled => StatusCode::TOO_MANY_REQUESTS,
            Reason::AuthFailed => StatusCode::UNAUTHORIZED,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::UploadType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::NotFound => StatusCode::NOT_FOUND,
            Reason::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reason::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Reason::Overloaded | Reason::ScanUnavailable | Reason::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reason::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether an error for this reason can leave the request body unread
    /// (moat cut it, or stopped reading it): an HTTP/1 connection is then
    /// closed after the response (see [`close_after`]).
    pub fn leaves_body_unread(self) -> bool {
        matches!(
            self,
            Reason::BodyTooLarge
                | Reason::RequestTimeout
                | Reason::BadRequest
                | Reason::UploadType
                | Reason::UploadName
                | Reason::UploadCount
                | Reason::UploadMalware
                | Reason::ScanUnavailable
        )
    }

    /// The fixed public explanation.
    pub fn detail(self) -> &'static str {
        match self {
            Reason::IpDenied => "Access from this address is not allowed.",
            Reason::BadRequest => "The request is malformed.",
            Reason::PathRejected => "The request path is not allowed.",
            Reason::HeaderTooLarge => "The request headers are too large.",
            Reason::CorsOrigin => "Cross-origin request not allowed.",
            Reason::RateLimited => "Rate limit exceeded.",
            Reason::AuthFailed => "Authentication required.",
            Reason::AuthThrottled => "Too many failed authentication attempts; try again later.",
            Reason::AuthUnavailable => "Sign-in is unavailable; try again later.",
            Reason::Forbidden => "You do not have access to this resource.",
            Reason::BodyTooLarge => "The request body is too large.",
            Reason::UploadType => "The uploaded content type is not allowed.",
            Reason::UploadName => "The uploaded file name is not allowed.",
            Reason::UploadCount => "Too many files in one request.",
            Reason::UploadMalware => "The upload was refused by the malware scan.",
            Reason::ScanUnavailable => "The upload could not be scanned; try again later.",
            Reason::NotFound => "Not found.",
            Reason::MethodNotAllowed => "Method not allowed.",
            Reason::UpstreamTimeout => "The service did not answer in time.",
            Reason::UpstreamUnavailable => "The service is unavailable.",
            Reason::Overloaded => "The service is busy; try again later.",
            Reason::RequestTimeout => "The request body was not received in time.",
            Reason::Internal => "An internal error occurred.",
        }
    }
}

/// Infrastructure failures: they travel as `Err` up the stack to the rescue
/// layer, which is the only code that turns them into responses.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Connecting to the upstream failed.
    #[error("upstream connect failed")]
    UpstreamConnect(#[source] BoxError),
    /// The upstream did not send response headers within the response timeout.
    #[error("upstream response timeout")]
    UpstreamTimeout,
    /// The exchange with the upstream broke (reset, protocol error).
    #[error("upstream exchange failed")]
    Upstream(#[source] BoxError),
    /// The request body was refused while it streamed (limit, upload inspection).
    #[error("request body refused: {}", .0.as_str())]
    BodyRefused(Reason),
    /// The client's body stream failed or stalled.
    #[error("client body failed")]
    ClientBody(#[source] BoxError),
    /// A panic inside moat, caught.
    #[error("internal panic")]
    Panic,
}

pub use crate::body::BoxError;

impl ProxyError {
    /// The reason a failure is answered with.
    pub fn reason(&self) -> Reason {
        match self {
            ProxyError::UpstreamConnect(_) | ProxyError::Upstream(_) => Reason::UpstreamUnavailable,
            ProxyError::UpstreamTimeout => Reason::UpstreamTimeout,
            ProxyError::BodyRefused(r) => *r,
            ProxyError::ClientBody(_) => Reason::BadRequest,
            ProxyError::Panic => Reason::Internal,
        }
    }

    /// The `moat_upstream_errors_total{kind}` label, for upstream failures.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            ProxyError::UpstreamConnect(_) => Some("connect"),
            ProxyError::UpstreamTimeout => Some("timeout"),
            ProxyError::Upstream(_) => Some("protocol"),
            _ => None,
        }
    }
}

/// Asks an HTTP/1 client's connection to close after `res`: the request body
/// was not read to its end, so the next request's bytes cannot be found.
/// Used for refusals before the body is read (the body limit's
/// `refuse`, which every such refusal goes through) and for errors whose
/// reason [leaves the body unread](Reason::leaves_body_unread) (rescue).
pub fn close_after(res: &mut Response<Body>) {
    res.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

/// Marks an HTML page moat serves itself (the sign-in page): it keeps its
/// own `Content-Security-Policy` and `Referrer-Policy` instead of the
/// route's (its form needs the browser to send its `Origin`, which
/// `no-referrer` turns into `null` on a POST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoatPage;

/// Marks a response moat wrote itself, with its reason (read by the access
/// log and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected(pub Reason);

/// JSON-escapes `s` into `out`.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds the problem+json body; `error_field` adds an `"error": detail`
/// member (`errors.error_field`, for clients that read that name).
pub fn problem_body(status: StatusCode, detail: &str, request_id: &str, error_field: bool) -> String {
    let mut s = String::with_capacity(200);
    s.push_str("{\"type\":\"about:blank\",\"title\":");
    json_str(&mut s, status.canonical_reason().unwrap_or("Error"));
    s.push_str(",\"status\":");
    s.push_str(&status.as_u16().to_string());
    s.push_str(",\"detail\":");
    json_str(&mut s, detail);
    s.push_str(",\"request_id\":");
    json_str(&mut s, request_id);
    if error_field {
        s.push_str(",\"error\":");
        json_str(&mut s, detail);
    }
    s.push('}');
    s
}

/// The facts of a problem response, kept as an extension so the outer
/// layers can render it as HTML for browsers.
#[derive(Debug, Clone)]
pub struct ProblemDoc {
    /// Status.
    pub status: StatusCode,
    /// Fixed public detail.
    pub detail: Cow<'static, str>,
}

/// The one builder of moat's own error responses: problem+json (RFC 9457)
/// with `cache-control: no-store`, a [`ProblemDoc`] for the HTML rendering,
/// and, when `reason` is given, a [`Rejected`] mark for the log and
/// metrics. `detail` is one of moat's fixed texts, never upstream or
/// request text. (Within the stack, [`Ctx::reject`](crate::policy::ctx::Ctx::reject)
/// and [`Ctx::problem`](crate::policy::ctx::Ctx::problem) call this with
/// the request's id and error settings.)
pub fn problem(
    status: StatusCode,
    detail: impl Into<Cow<'static, str>>,
    request_id: &str,
    error_field: bool,
    reason: Option<Reason>,
) -> Response<Body> {
    let detail = detail.into();
    let body = problem_body(status, &detail, request_id, error_field);
    let mut res = Response::new(body::full(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(ProblemDoc { status, detail });
    if let Some(r) = reason {
        res.extensions_mut().insert(Rejected(r));
    }
    res
}

/// `s` escaped for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A minimal HTML page with the same facts as the problem+json.
pub fn html_page(status: StatusCode, detail: &str, request_id: &str) -> String {
    let esc = html_escape;
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body><h1>{t}</h1>\n<p>{d}</p>\n<p>Request id: <code>{id}</code></p></body></html>\n",
        t = esc(&title),
        d = esc(detail),
        id = esc(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_valid_json() {
        let b = problem_body(StatusCode::TOO_MANY_REQUESTS, "a \"q\" \\ \n", "01J-x", false);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["status"], 429);
        assert_eq!(v["title"], "Too Many Requests");
        assert_eq!(v["detail"], "a \"q\" \\ \n");
        assert_eq!(v["request_id"], "01J-x");
        assert_eq!(v["type"], "about:blank");
    }

    #[test]
    fn statuses() {
        assert_eq!(Reason::UpstreamUnavailable.status(), 502);
        assert_eq!(Reason::UpstreamTimeout.status(), 504);
        assert_eq!(Reason::HeaderTooLarge.status(), 431);
        assert_eq!(Reason::UploadType.status(), 415);
        assert_eq!(Reason::BodyTooLarge.status(), 413);
    }
}
