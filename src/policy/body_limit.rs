//! Layer 10: request body limits, before anything reads the body.
//!
//! A `Content-Length` over the route's `max_body` is refused with 413 at
//! once, before a body byte is read and before the upstream is contacted
//! (with `Expect: 100-continue` the client gets the 413 instead of a 100,
//! since hyper only sends 100 when the body is first read). Bodies without a
//! length (chunked, HTTP/2) are counted as they stream: past the limit the
//! stream is cut, the upstream request is aborted (the upstream never gets a
//! complete body) and the client gets 413 if no response has begun. A client
//! that stops sending for `limits.body_read_timeout`, or that has not sent
//! the whole body within the route's `body_timeout` (a trickled upload), is
//! cut the same way (408). A broken client body (bad chunked framing) is the
//! client's fault: 400, never counted as an upstream error. `content_types` on a route refuses other request media types (415).

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::Request;

use super::{reject, Policy, Verdict};
use crate::body::{Body, Guarded};
use crate::ctx::Ctx;
use crate::error::Reason;

/// The media type of a `Content-Type` value, lowercase, without parameters.
pub fn essence(v: &http::HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let e = s.split(';').next()?.trim().to_ascii_lowercase();
    (!e.is_empty()).then_some(e)
}

/// Whether the request carries a body (declared length > 0, chunked, or an h2 stream not ended).
pub fn has_body(req: &Request<Body>) -> bool {
    match req.headers().get(CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) != Some(0),
        None => req.headers().contains_key(TRANSFER_ENCODING) || !http_body::Body::is_end_stream(req.body()),
    }
}

/// A rejection sent before the body was read: on HTTP/1 the connection is
/// closed after it, since the unread body cannot be skipped safely.
pub fn refuse(reason: Reason, ctx: &Ctx, h1: bool) -> Verdict {
    let Verdict::Respond(mut res) = reject(reason, ctx) else {
        return Verdict::Pass;
    };
    if h1 {
        crate::error::close_after(&mut res);
    }
    Verdict::Respond(res)
}

/// The policy.
pub struct BodyLimit;

impl BodyLimit {
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let route = ctx.route().clone();
        let h1 = req.version() < http::Version::HTTP_2;
        if let Some(cl) = req.headers().get(CONTENT_LENGTH) {
            match cl.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) if n > route.max_body => return refuse(Reason::BodyTooLarge, ctx, h1),
                Some(_) => {}
                None => return refuse(Reason::BadRequest, ctx, h1),
            }
        }
        if let Some(allowed) = &route.content_types {
            if has_body(req) {
                let ok = req.headers().get(CONTENT_TYPE).and_then(essence).is_some_and(|e| allowed.contains(&e));
                if !ok {
                    return refuse(Reason::UploadType, ctx, h1);
                }
            }
        }
        let body = std::mem::replace(req.body_mut(), crate::body::empty());
        let guarded = Guarded::new(
            body,
            route.max_body,
            ctx.config.limits.body_read_timeout,
            ctx.bytes_in.clone(),
            ctx.body_verdict.clone(),
        )
        .with_total(route.body_timeout);
        *req.body_mut() = crate::body::boxed(guarded);
        Verdict::Pass
    }
}

impl Policy for BodyLimit {
    fn check(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Option<Verdict> {
        Some(self.decide(req, ctx))
    }

    const ADJUSTS_RESPONSE: bool = false;
}
