//! The body type that flows through the stack both ways, its error type,
//! and [`ObservedBody`], which counts a response body and reports when it ends.
//! A leaf: it depends on nothing else in the crate.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// The boxed error type of bodies and of the stack's services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

pin_project_lite::pin_project! {
    /// Counts the bytes of a response body and runs `on_end` once, when the
    /// body ends, fails, or is dropped (client gone).
    pub struct ObservedBody<B, F: FnOnce(u64, bool)> {
        #[pin]
        inner: B,
        bytes: u64,
        empty: bool,
        on_end: Option<F>,
    }
    impl<B, F: FnOnce(u64, bool)> PinnedDrop for ObservedBody<B, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.on_end.take() {
                f(*this.bytes, *this.empty);
            }
        }
    }
}

impl<B: HttpBody, F: FnOnce(u64, bool)> ObservedBody<B, F> {
    /// Wraps `inner`; `on_end(bytes, completed)`.
    pub fn new(inner: B, on_end: F) -> Self {
        let empty = inner.is_end_stream();
        Self { inner, bytes: 0, empty, on_end: Some(on_end) }
    }
}

impl<B, F> HttpBody for ObservedBody<B, F>
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
