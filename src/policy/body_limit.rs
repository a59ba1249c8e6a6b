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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::ctx::Ctx;
use super::{Decide, Verdict};
use crate::body::{Body, BoxError};
use crate::error::{ProxyError, Reason};

/// The media type of a `Content-Type` value, lowercase, without parameters.
pub(crate) fn essence(v: &http::HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let e = s.split(';').next()?.trim().to_ascii_lowercase();
    (!e.is_empty()).then_some(e)
}

/// Whether the request carries a body (declared length > 0, chunked, or an h2 stream not ended).
pub(crate) fn has_body(req: &Request<Body>) -> bool {
    match req.headers().get(CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) != Some(0),
        None => req.headers().contains_key(TRANSFER_ENCODING) || !http_body::Body::is_end_stream(req.body()),
    }
}

/// A rejection sent before the body was read: on HTTP/1 the connection is
/// closed after it, since the unread body cannot be skipped safely.
pub(crate) fn refuse(reason: Reason, ctx: &Ctx, h1: bool) -> Verdict {
    let mut res = ctx.reject(reason);
    if h1 {
        crate::error::close_after(&mut res);
    }
    Verdict::Respond(res)
}

/// The policy.
pub(crate) struct BodyLimit;

impl Decide for BodyLimit {
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
        let guarded = LimitedBody::new(body, route.max_body, ctx.config.limits.body_read_timeout, ctx.clone())
            .with_total(route.body_timeout);
        *req.body_mut() = crate::body::boxed(guarded);
        Verdict::Pass
    }
}

pin_project_lite::pin_project! {
    /// Counts bytes, enforces a byte limit, a per-chunk read deadline and a
    /// deadline for the whole body on a request body. On a violation it
    /// records the reason in the request's context ([`Ctx::refuse_body`]) and
    /// yields [`ProxyError::BodyRefused`], so the upstream request is aborted
    /// and the upstream never receives a complete body. A failure of the
    /// client's own body stream (bad chunked framing, a reset) is recorded as
    /// [`Reason::BadRequest`]: it is the client's fault, not the upstream's.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        seen: u64,
        limit: u64,
        ctx: Arc<Ctx>,
        gap: Duration,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        total: Duration,
        #[pin]
        total_deadline: Option<tokio::time::Sleep>,
    }
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; the bytes read are added to `ctx.bytes_in` (for the access log).
    pub(crate) fn new(inner: B, limit: u64, gap: Duration, ctx: Arc<Ctx>) -> Self {
        Self { inner, seen: 0, limit, ctx, gap, deadline: None, total: Duration::MAX, total_deadline: None }
    }

    /// Also limits the time to receive the whole body, counted from the first read.
    pub(crate) fn with_total(mut self, total: Duration) -> Self {
        self.total = total;
        self
    }
}

/// Records why the body was cut and yields the error that aborts the stream.
fn cut(ctx: &Ctx, reason: Reason) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    ctx.refuse_body(reason);
    Poll::Ready(Some(Err(Box::new(ProxyError::BodyRefused(reason)))))
}

impl<B> HttpBody for LimitedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.total != Duration::MAX {
            if this.total_deadline.is_none() {
                this.total_deadline.set(Some(tokio::time::sleep(*this.total)));
            }
            if let Some(d) = this.total_deadline.as_mut().as_pin_mut() {
                if d.poll(cx).is_ready() {
                    return cut(this.ctx, Reason::RequestTimeout);
                }
            }
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Pending => {
                if this.deadline.is_none() {
                    this.deadline.set(Some(tokio::time::sleep(*this.gap)));
                }
                if let Some(d) = this.deadline.as_mut().as_pin_mut() {
                    if d.poll(cx).is_ready() {
                        return cut(this.ctx, Reason::RequestTimeout);
                    }
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline.set(None);
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    this.ctx.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if *this.seen > *this.limit {
                        return cut(this.ctx, Reason::BodyTooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.ctx.refuse_body(Reason::BadRequest);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.deadline.set(None);
                this.total_deadline.set(None);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use http_body_util::BodyExt;

    use super::*;
    use crate::config::Config;
    use crate::net::ConnInfo;

    fn ctx() -> Arc<Ctx> {
        let peer = ConnInfo { peer: "192.0.2.1:5000".parse().unwrap(), tls: true };
        Arc::new(Ctx::new("t".into(), Arc::new(Config::defaults().unwrap()), peer))
    }

    /// A body that sends `first` and then nothing, never ending.
    fn stalled(first: &'static [u8]) -> Body {
        let chunks = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from_static(first)))])
            .chain(futures_util::stream::pending());
        crate::body::boxed(http_body_util::StreamBody::new(chunks))
    }

    fn refusal(e: BoxError) -> Option<Reason> {
        e.downcast_ref::<ProxyError>().map(ProxyError::reason)
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_after_the_read_timeout() {
        let ctx = ctx();
        let mut body = Box::pin(LimitedBody::new(stalled(b"abc"), 1 << 20, Duration::from_secs(30), ctx.clone()));
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "abc");
        let started = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(refusal(err), Some(Reason::RequestTimeout));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(ctx.body_refused(), Some(Reason::RequestTimeout));
        assert_eq!(ctx.bytes_in.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_is_cut_at_its_total_deadline() {
        let ctx = ctx();
        // One byte every 10 s never trips the 30 s gap, but the whole body has 25 s.
        let trickle = futures_util::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Some((Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))), n + 1))
        });
        let inner = crate::body::boxed(http_body_util::StreamBody::new(trickle));
        let mut body = Box::pin(
            LimitedBody::new(inner, 1 << 20, Duration::from_secs(30), ctx.clone()).with_total(Duration::from_secs(25)),
        );
        let started = tokio::time::Instant::now();
        let mut got = 0;
        let err = loop {
            match body.frame().await.unwrap() {
                Ok(_) => got += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(got, 2);
        assert_eq!(refusal(err), Some(Reason::RequestTimeout));
        assert_eq!(started.elapsed(), Duration::from_secs(25));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_cut_at_the_byte_that_crosses_it() {
        let ctx = ctx();
        let chunks = futures_util::stream::iter(
            [&b"12345"[..], b"67890", b"x"].map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c)))),
        );
        let inner = crate::body::boxed(http_body_util::StreamBody::new(chunks));
        let mut body = Box::pin(LimitedBody::new(inner, 9, Duration::from_secs(30), ctx.clone()));
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(refusal(err), Some(Reason::BodyTooLarge));
        assert_eq!(ctx.body_refused(), Some(Reason::BodyTooLarge));
    }
}
