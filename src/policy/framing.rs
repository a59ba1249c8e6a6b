//! Layer 5 (first half): request framing and target form, before routing.
//!
//! Threat: request smuggling and host confusion. A request that two HTTP
//! parsers can read differently (moat's and the upstream's, or a front
//! proxy's and moat's) lets a client hide a second request inside the first
//! or aim the request at another virtual host. hyper already refuses the
//! malformed cases it can see on its own (duplicate differing
//! `Content-Length`, a `Transfer-Encoding` whose last coding is not
//! `chunked`, obs-folded lines, bytes that are not allowed in a header);
//! this policy refuses the ones it lets through, with 400 `bad_request`
//! and, on HTTP/1, `Connection: close` (the rest of the connection's bytes
//! cannot be trusted to be framed as the client meant):
//!
//! - `Transfer-Encoding` together with `Content-Length` (RFC 9112 §6.3
//!   allows a server to reject it; forwarding it would leave the upstream to
//!   pick one of the two lengths);
//! - an HTTP/1.1 request without `Host`, or any request with more than one
//!   `Host` (RFC 9112 §3.2: a server MUST answer 400);
//! - over HTTP/2, a `host` header that names another authority than
//!   `:authority` (RFC 9113 §8.3.1);
//! - a request target that is not origin-form or absolute-form with an
//!   `http`/`https` scheme (`CONNECT host:port`, `OPTIONS *`): moat proxies
//!   to one application and tunnels nothing.
//!
//! An absolute-form target is accepted as RFC 9112 §3.2.2 says: its
//! authority is the request's host, and the upstream gets origin-form.

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{Method, Request, Version};

use super::{Decide, Verdict};
use crate::body::Body;
use crate::error::Reason;
use crate::policy::ctx::Ctx;

/// Why a request's framing or target is refused, if it is.
pub(crate) fn problem<B>(req: &Request<B>) -> Option<&'static str> {
    let h = req.headers();
    let hosts = h.get_all(HOST).iter().count();
    if hosts > 1 {
        return Some("more than one Host header");
    }
    if req.method() == Method::CONNECT {
        return Some("CONNECT is not proxied");
    }
    let uri = req.uri();
    if !uri.path().starts_with('/') {
        return Some("request target is not origin-form or absolute-form");
    }
    if let Some(scheme) = uri.scheme_str() {
        if scheme != "http" && scheme != "https" {
            return Some("absolute-form target with a scheme other than http or https");
        }
    }
    if req.version() >= Version::HTTP_2 {
        if let (Some(auth), Some(host)) = (uri.authority(), h.get(HOST)) {
            if !host.as_bytes().eq_ignore_ascii_case(auth.as_str().as_bytes()) {
                return Some("host header differs from :authority");
            }
        }
        return None;
    }
    if h.contains_key(TRANSFER_ENCODING) && h.contains_key(CONTENT_LENGTH) {
        return Some("both Transfer-Encoding and Content-Length");
    }
    if req.version() == Version::HTTP_11 && hosts == 0 && uri.authority().is_none() {
        return Some("HTTP/1.1 request without Host");
    }
    None
}

/// The policy.
pub(crate) struct Framing;

impl Decide for Framing {
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let Some(why) = problem(req) else { return Verdict::Pass };
        tracing::info!(request_id = %ctx.id, problem = why, "request framing refused");
        super::body_limit::refuse(Reason::BadRequest, ctx, req.version() < Version::HTTP_2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().version(version).method(method).uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn refusals() {
        let h11 = Version::HTTP_11;
        assert!(problem(&req(h11, "GET", "/a", &[("host", "x")])).is_none());
        assert!(problem(&req(h11, "GET", "/a", &[])).is_some(), "no host");
        assert!(problem(&req(Version::HTTP_10, "GET", "/a", &[])).is_none(), "HTTP/1.0 may omit Host");
        assert!(problem(&req(h11, "GET", "/a", &[("host", "x"), ("host", "y")])).is_some());
        assert!(problem(&req(
            h11,
            "POST",
            "/a",
            &[("host", "x"), ("content-length", "3"), ("transfer-encoding", "chunked")]
        ))
        .is_some());
        assert!(problem(&req(h11, "CONNECT", "x:443", &[("host", "x:443")])).is_some());
        assert!(problem(&req(h11, "OPTIONS", "*", &[("host", "x")])).is_some());
        assert!(problem(&req(h11, "GET", "http://x/a", &[])).is_none(), "absolute-form names its host");
        assert!(problem(&req(h11, "GET", "ftp://x/a", &[("host", "x")])).is_some());
        let h2 = Version::HTTP_2;
        assert!(problem(&req(h2, "GET", "https://x/a", &[("host", "x")])).is_none());
        assert!(problem(&req(h2, "GET", "https://x/a", &[("host", "y")])).is_some());
        assert!(problem(&req(h2, "GET", "https://x/a", &[])).is_none());
    }
}
