//! The body type that flows through the stack both ways, and the small body
//! wrappers the proxy needs: byte counting, a size limit that aborts the
//! stream, and a deadline between chunks.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::error::{BoxError, Reason};

/// A streaming body, boxed once.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(b: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// Why a request body stream was cut by moat; the proxy reads it to answer
/// the client with the right status when the upstream call fails.
#[derive(Debug, Clone, Default)]
pub struct BodyVerdict(Arc<OnceLock<Reason>>);

impl BodyVerdict {
    /// Records the first reason.
    pub fn set(&self, r: Reason) {
        let _ = self.0.set(r);
    }
    /// The recorded reason, if any.
    pub fn get(&self) -> Option<Reason> {
        self.0.get().copied()
    }
}

/// The error a guarded body yields when it cuts the stream.
#[derive(Debug, thiserror::Error)]
#[error("request body refused: {}", .0.as_str())]
pub struct BodyRefused(pub Reason);

pin_project_lite::pin_project! {
    /// Counts bytes, enforces a byte limit, a per-chunk read deadline and a
    /// deadline for the whole body on a request body. On a violation it
    /// records the reason in a [`BodyVerdict`] and yields an error, so the
    /// upstream request is aborted and the upstream never receives a complete
    /// body. A failure of the client's own body stream (bad chunked framing,
    /// a reset) is recorded as [`Reason::BadRequest`]: it is the client's
    /// fault, not the upstream's.
    pub struct Guarded<B> {
        #[pin]
        inner: B,
        seen: u64,
        limit: u64,
        counter: Arc<AtomicU64>,
        verdict: BodyVerdict,
        gap: Duration,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        total: Duration,
        #[pin]
        total_deadline: Option<tokio::time::Sleep>,
    }
}

impl<B> Guarded<B> {
    /// Wraps `inner`; `counter` receives the bytes read (for the access log).
    pub fn new(inner: B, limit: u64, gap: Duration, counter: Arc<AtomicU64>, verdict: BodyVerdict) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
            counter,
            verdict,
            gap,
            deadline: None,
            total: Duration::MAX,
            total_deadline: None,
        }
    }

    /// Also limits the time to receive the whole body, counted from the first read.
    pub fn with_total(mut self, total: Duration) -> Self {
        self.total = total;
        self
    }
}

impl<B> HttpBody for Guarded<B>
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
                    this.verdict.set(Reason::RequestTimeout);
                    return Poll::Ready(Some(Err(Box::new(BodyRefused(Reason::RequestTimeout)))));
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
                        this.verdict.set(Reason::RequestTimeout);
                        return Poll::Ready(Some(Err(Box::new(BodyRefused(Reason::RequestTimeout)))));
                    }
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline.set(None);
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if *this.seen > *this.limit {
                        this.verdict.set(Reason::BodyTooLarge);
                        return Poll::Ready(Some(Err(Box::new(BodyRefused(Reason::BodyTooLarge)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.verdict.set(Reason::BadRequest);
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

use std::future::Future;

pin_project_lite::pin_project! {
    /// Counts the bytes of a response body and runs `on_end` once, when the
    /// body ends, fails, or is dropped (client gone).
    pub struct Observed<B, F: FnOnce(u64, bool)> {
        #[pin]
        inner: B,
        bytes: u64,
        empty: bool,
        on_end: Option<F>,
    }
    impl<B, F: FnOnce(u64, bool)> PinnedDrop for Observed<B, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.on_end.take() {
                f(*this.bytes, *this.empty);
            }
        }
    }
}

impl<B: HttpBody, F: FnOnce(u64, bool)> Observed<B, F> {
    /// Wraps `inner`; `on_end(bytes, completed)`.
    pub fn new(inner: B, on_end: F) -> Self {
        let empty = inner.is_end_stream();
        Self { inner, bytes: 0, empty, on_end: Some(on_end) }
    }
}

impl<B, F> HttpBody for Observed<B, F>
where
    B: HttpBody<Data = Bytes>,
    F: FnOnce(u64, bool),
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    *this.bytes += d.len() as u64;
                }
                if this.inner.as_ref().get_ref().is_end_stream() {
                    if let Some(f) = this.on_end.take() {
                        f(*this.bytes, true);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = this.on_end.take() {
                    f(*this.bytes, true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.on_end.take() {
                    f(*this.bytes, false);
                }
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
