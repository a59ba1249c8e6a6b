//! Layer 5: head size, path normalization and route matching.
//!
//! A request head (request line and headers) over `limits.max_header_bytes`
//! is refused with 431 `header_too_large`; hyper's own read buffer is a
//! coarser second bound.
//!
//! The path is percent-decoded before matching, so `/api/%61dmin` is matched
//! as `/api/admin` (the upstream will decode it the same way): a policy on a
//! route cannot be bypassed by encoding. Paths that could mean something else
//! to the upstream are refused with 400 `path_rejected`: `.` or `..`
//! segments (plain or encoded), encoded `/` or `\`, a raw `\`, NUL or other
//! control bytes, invalid UTF-8, and anything that is not origin-form. The
//! bytes forwarded are the bytes the client sent.
//!
//! The first route whose path matches and whose `methods` (if set) include
//! the request's method wins (`HEAD` counts as `GET`; a CORS preflight
//! matches on the method it announces). A path that matches only routes
//! with other methods is 405 with `allow`; a path that matches no route gets
//! the defaults, or 404 `not_found` when `deny_unmatched = true`.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response};

use super::{reject, Policy, Verdict};
use crate::body::Body;
use crate::config::{Config, Route};
use crate::ctx::Ctx;
use crate::error::Reason;

/// The normalized (decoded) path, or why it is refused.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, Reason> {
    if !path.starts_with('/') {
        return Err(Reason::PathRejected);
    }
    let lower = path.as_bytes();
    let mut i = 0;
    while i < lower.len() {
        let b = lower[i];
        if b == b'\\' || b < 0x20 || b == 0x7f {
            return Err(Reason::PathRejected);
        }
        if b == b'%' {
            let hex = lower.get(i + 1..i + 3).ok_or(Reason::PathRejected)?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Reason::PathRejected)?;
            if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f {
                return Err(Reason::PathRejected);
            }
            i += 3;
            continue;
        }
        i += 1;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().map_err(|_| Reason::PathRejected)?;
    if decoded.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(Reason::PathRejected);
    }
    Ok(decoded)
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

fn method_ok(route: &Route, m: &Method) -> bool {
    match &route.methods {
        None => true,
        Some(ms) => ms.contains(m) || (m == Method::HEAD && ms.contains(&Method::GET)),
    }
}

/// Finds the route for a normalized path and method.
pub fn find(config: &Config, path: &str, method: &Method) -> Match {
    let mut allowed: Vec<Method> = Vec::new();
    for r in &config.routes {
        if r.path.as_ref().is_some_and(|p| p.matches(path)) {
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

/// The policy.
pub struct Routing;

impl Policy for Routing {
    async fn request(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        if head_size(req) > ctx.config.limits.max_header_bytes {
            return reject(Reason::HeaderTooLarge, ctx);
        }
        let path = match normalize(req.uri().path()) {
            Ok(p) => p,
            Err(r) => return reject(r, ctx),
        };
        let mut method = req.method().clone();
        if method == Method::OPTIONS {
            if let Some(m) = req
                .headers()
                .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
            {
                method = m;
            }
        }
        match find(&ctx.config, &path, &method) {
            Match::Route(r) => {
                let _ = ctx.route.set(r);
                Verdict::Pass
            }
            Match::Default => Verdict::Pass,
            Match::NotFound => reject(Reason::NotFound, ctx),
            Match::WrongMethod(ms) => {
                let mut res: Response<Body> = crate::error::reject_response(Reason::MethodNotAllowed, ctx);
                let allow = ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    res.headers_mut().insert(http::header::ALLOW, v);
                }
                Verdict::Respond(res)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize("/a/b").unwrap(), "/a/b");
        assert_eq!(normalize("/api/%61dmin").unwrap(), "/api/admin");
        for bad in
            ["/a/../b", "/a/%2e%2e/b", "/a/%2E./b", "/a%2fb", "/a%5Cb", "/a\\b", "/a%00", "/a/./b", "/%zz", "/%ff", "x"]
        {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize("/a/..b/c").unwrap(), "/a/..b/c");
    }
}
