//! The bridge that lets `multer` run inline, without a task of its own: a
//! one-slot [`Feed`] the multipart inspector fills with each chunk, and the
//! [`FeedStream`] `multer` pulls it from.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// The one-slot queue `multer` pulls chunks from.
#[derive(Default)]
pub(super) struct Feed {
    pub(super) piece: Option<Bytes>,
    pub(super) closed: bool,
}

pub(super) fn lock(feed: &Mutex<Feed>) -> std::sync::MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The stream handed to `multer`. It is polled only from inside the
/// `poll_frame` of [`InspectBody`](super::InspectBody), right after a chunk
/// was placed in the feed, so its `Pending` registers no waker: the task is
/// woken by the inner body.
pub(super) struct FeedStream(pub(super) Arc<Mutex<Feed>>);

impl Stream for FeedStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut feed = lock(&self.0);
        if let Some(piece) = feed.piece.take() {
            Poll::Ready(Some(Ok(piece)))
        } else if feed.closed {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
