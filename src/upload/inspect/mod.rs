//! Streaming inspection of upload request bodies.
//!
//! # Threat
//!
//! A route with an `upload` table fronts an API that stores or parses what
//! clients send. Without inspection a client can send an executable, script
//! or archive under a document's name and media type (`report.pdf` holding an
//! `MZ` Windows executable), a polyglot that starts like an allowed type and
//! is something else, a file name that walks out of the upstream's storage
//! directory, more or larger parts than the upstream expects, or form fields
//! the upstream turns into paths (MinerU's `output_dir=../../etc`). A
//! multipart body can also be crafted so that two parsers read it
//! differently (a second `Content-Disposition` header, `filename*=`, a
//! quoted `; filename=` inside another parameter, text before the first or
//! after the last boundary), so that the inspector sees a harmless field
//! while the upstream sees a file.
//!
//! # Configuration
//!
//! [`UploadRules`] carries a route's `upload = { types, max_files,
//! max_file_size, max_field_bytes, fields }` table: `types` the allowed
//! [`FileType`](super::FileType)s, `max_files` the number of file parts,
//! `max_file_size` the bytes of one file part, `max_field_bytes` the default
//! byte cap of a non-file field, and `fields` (when not empty) the allowlist
//! of non-file field names, each with an optional byte cap and an optional
//! pattern the whole value must match ([`FieldRule`]). The total body size
//! is limited elsewhere.
//!
//! # How it streams
//!
//! [`classify`](fn@classify) reads the request `Content-Type`: `multipart/form-data` with
//! a valid boundary, or one of an allowed type's own media types for a raw
//! body. [`inspect`] wraps the request body in an [`InspectBody`] that yields
//! exactly the inner bytes, unchanged and in order, while feeding them to the
//! checks:
//!
//! * Each data chunk is checked before the previous one is released, so at
//!   any time the most recent chunk is held back. When the inner body ends,
//!   the held chunk is released only after the whole body has been accepted
//!   (closing boundary parsed, every part accepted, every file's whole-content
//!   checks passed). On a violation the wrapper returns
//!   [`InspectError::Violation`] instead of the next data, so the HTTP client
//!   forwarding the body aborts the upstream request: the upstream never
//!   receives the complete body of a refused upload. Trailers pass through
//!   after the last data.
//! * Multipart framing is parsed by `multer`, driven inline from
//!   `poll_frame` (no task is spawned): each chunk is placed in a one-slot
//!   feed that `multer` pulls from, and `multer` is polled with the caller's
//!   `Context` until it asks for more input. The feed's `Pending` needs no
//!   wake-up of its own: the feed is refilled and `multer` polled again in the
//!   same call, and the task waits only on the inner body.
//! * Alongside `multer`, the inspector tracks stream offsets from the field
//!   data `multer` returns, and keeps the raw bytes between the end of one
//!   part's data and the start of the next (delimiter line and part header
//!   block, at most [`MAX_PART_HEADER_BYTES`]). It parses that header block
//!   itself, strictly, and requires its reading of the field name and file
//!   name to equal `multer`'s; any disagreement is a [`Violation::Malformed`].
//!   It refuses text before the first boundary (other than CR/LF), transport
//!   padding after a boundary, anything but up to [`MAX_EPILOGUE_BYTES`] of
//!   whitespace after the closing boundary, a repeated part header, more
//!   than 16 header lines, a line folded or ended by a bare CR or LF, a
//!   disposition other than `form-data` or without `name`, a repeated or
//!   `*`-extended disposition parameter (`filename*=`), a backslash in a
//!   parameter value (a backslash in `filename` is a
//!   [`Violation::FileName`]), and a `Content-Transfer-Encoding` other than
//!   `7bit`, `8bit` or `binary`.
//! * A part with a `filename` parameter is a file part: it is counted
//!   against `max_files`, its name goes through
//!   [`check_filename`](super::check_filename), and its declared
//!   `Content-Type` (missing means `application/octet-stream`), its extension
//!   and its first bytes must agree on one allowed type: the declared type is
//!   one of the type's media types or `application/octet-stream`, the
//!   extension is one of the type's extensions, and
//!   [`FileType::check_content`](super::FileType::check_content) matches.
//!   Its bytes are counted against `max_file_size`. A part without a `filename` is a field: its bytes are
//!   counted against its cap and, when its rule has a pattern, collected (up
//!   to the cap) and matched at the end of the part.
//! * A raw body's first bytes must match its type's content check.
//!
//! # Memory and overhead
//!
//! Per request the wrapper keeps: one held-back chunk (a `Bytes` handle, no
//! copy); `multer`'s internal buffer, which holds at most the unparsed part of
//! the latest chunk plus up to [`MAX_PART_HEADER_BYTES`] of boundary and
//! header bytes; per file part a sniff buffer of at most [`SNIFF_WINDOW`](super::SNIFF_WINDOW)
//! bytes, dropped once the type is decided, and the whole-file state of its
//! type (a bounded tail, the zip or OLE2 records; see the crate's `upload`
//! module docs for the bound); the raw header block of the part being
//! started (at most [`MAX_PART_HEADER_BYTES`]); and for a field with a
//! pattern its value up to the field's cap. Nothing grows with the size of a
//! file. Per byte of body, `multer` copies the chunk into its buffer and
//! scans it for the delimiter; the inspector itself copies file bytes only
//! into the sniff buffer and the few records it keeps, and hands out the
//! inner `Bytes` (reference-counted, not copied; tails keep such handles).
//!
//! # Violations
//!
//! Every refusal is a [`Violation`], which maps to the HTTP status and reason
//! label moat answers with: see [`Violation::status`] and
//! [`Violation::reason`].
//!
//! # Layout
//!
//! This file holds the entry point [`inspect`] and the body wrapper
//! [`InspectBody`], which holds chunks back and feeds them to one of two
//! inspectors. The rest is one concern per file:
//!
//! * `rules`: [`UploadRules`] and [`FieldRule`].
//! * `violation`: [`Violation`] and the debug log of each refusal.
//! * `classify`: [`classify`](fn@classify) and [`BodyKind`].
//! * `raw`: the inspector of a raw (single-file) body.
//! * `multipart`: the inspector of a multipart body, driving `multer`.
//! * `feed`: the one-slot queue `multer` pulls chunks from.
//! * `framing`: the scanner of the raw framing between and around parts.
//! * `part_headers`: the strict part-header parser, and the media-type and
//!   parameter syntax `classify` shares with it.
//! * `part`: the checks of one part's data.
//! * `scans`: the malware scans of one request.
//! * `tests/`: the unit tests, one file per concern, and their helpers.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::content::FileCheck;
use crate::scan::Scanning;

mod classify;
mod feed;
mod framing;
mod multipart;
mod part;
mod part_headers;
mod raw;
mod rules;
mod scans;
mod violation;

pub use classify::{classify, BodyKind, MAX_BOUNDARY_LEN};
pub use framing::{MAX_EPILOGUE_BYTES, MAX_PART_HEADER_BYTES};
pub use rules::{FieldRule, UploadRules};
pub use violation::Violation;

use multipart::MultipartInspector;
use raw::RawInspector;
use rules::macros_allowed;
use scans::Scans;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The error an [`InspectBody`] yields.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The body was refused, by the named check (for the log; never
    /// content).
    #[error("upload refused: {0} ({1})")]
    Violation(Violation, &'static str),
    /// The inner body failed.
    #[error("request body error")]
    Inner(#[source] BoxError),
}

/// Wraps a request body so that it is inspected as it streams.
///
/// The wrapper yields exactly the bytes of `inner`, unchanged and in order,
/// holding back the most recent chunk until it has been inspected, and the
/// last one until the whole body has been accepted. See the module docs.
///
/// With `scanning`, every file (each file part, or the raw body) is also
/// streamed to clamd, and the last chunk is released only once every file
/// has been scanned clean (see `crate::scan`).
pub fn inspect<B>(inner: B, kind: BodyKind, rules: Arc<UploadRules>, scanning: Option<Scanning>) -> InspectBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let scans = scanning.map(|scanning| Scans { scanning, verdicts: Vec::new() });
    let inspector = match kind {
        BodyKind::Raw(t) => {
            let macros = macros_allowed(t, &rules);
            Inspector::Raw(Box::new(RawInspector {
                check: FileCheck::new(t, macros, rules.inspect_window),
                failed: "",
                scan: scans.as_ref().map(|s| s.scanning.start("(raw body)")),
                scans,
            }))
        }
        BodyKind::Multipart { boundary } => {
            Inspector::Multipart(Box::new(MultipartInspector::new(&boundary, rules, scans)))
        }
    };
    InspectBody {
        inner,
        inspector,
        held: None,
        trailers: None,
        state: State::Streaming,
        check: "",
        high_water: HighWater::default(),
        scans: None,
    }
}

/// A request body under inspection; see [`inspect`].
pub struct InspectBody<B> {
    inner: B,
    inspector: Inspector,
    held: Option<Bytes>,
    trailers: Option<HeaderMap>,
    state: State,
    /// The check that refused the body.
    check: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    high_water: HighWater,
    /// After the inner body ended: the verdicts still awaited.
    scans: Option<Scans>,
}

impl<B> fmt::Debug for InspectBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InspectBody")
            .field("state", &self.state)
            .field("held", &self.held.as_ref().map(Bytes::len))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the inner body.
    Streaming,
    /// The inner body ended and was accepted but for scan verdicts still
    /// awaited: hold the last chunk until they are in.
    Verdicts,
    /// The inner body ended and was accepted: release the held chunk, then
    /// the trailers, then end.
    Draining,
    Done,
    Refused(Violation),
    InnerFailed,
}

/// Largest buffer sizes seen during one inspection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HighWater {
    /// Sniff buffer capacity.
    pub(crate) sniff: usize,
    /// Raw header block buffer capacity.
    pub(crate) headers: usize,
    /// Collected field value capacity.
    pub(crate) field: usize,
}

impl HighWater {
    fn merge(&mut self, other: HighWater) {
        self.sniff = self.sniff.max(other.sniff);
        self.headers = self.headers.max(other.headers);
        self.field = self.field.max(other.field);
    }
}

impl<B> InspectBody<B> {
    /// The largest buffers this inspection has used so far.
    #[cfg(test)]
    pub(crate) fn high_water(&self) -> HighWater {
        let mut hw = self.high_water;
        hw.merge(self.inspector.high_water());
        hw
    }

    fn refuse(&mut self, v: Violation) {
        self.check = self.inspector.failed_check().unwrap_or(v.reason().as_str());
        self.state = State::Refused(v);
        self.held = None;
        self.trailers = None;
        self.scans = None;
        self.close_inspector();
    }

    fn close_inspector(&mut self) {
        self.high_water.merge(self.inspector.high_water());
        self.inspector = Inspector::Closed;
    }

    /// The inner body ended: finish the inspection.
    fn end(&mut self, cx: &mut Context<'_>) {
        match self.inspector.finish(cx) {
            Ok(()) => {
                self.scans = self.inspector.take_scans().filter(|s| !s.verdicts.is_empty());
                self.close_inspector();
                self.state = if self.scans.is_some() { State::Verdicts } else { State::Draining };
            }
            Err(v) => self.refuse(v),
        }
    }

    /// The inner body ended and was accepted: waits for the scan verdicts
    /// still awaited, then drains (or refuses, when a verdict calls for it).
    fn poll_verdicts(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(scans) = self.scans.as_mut() else {
            self.state = State::Draining;
            return Poll::Ready(());
        };
        match scans.poll_all(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(v)) => self.refuse(v),
            Poll::Ready(Ok(())) => {
                self.scans = None;
                self.state = State::Draining;
            }
        }
        Poll::Ready(())
    }

    /// The next frame once the whole body has been accepted: the held last
    /// chunk, then the trailers, then the end.
    fn drain(&mut self) -> Option<Result<Frame<Bytes>, InspectError>> {
        // The whole body has been accepted (and scanned clean);
        // the held last chunk is released to the upstream here.
        if let Some(data) = self.held.take() {
            return Some(Ok(Frame::data(data)));
        }
        self.state = State::Done;
        self.trailers.take().map(|t| Ok(Frame::trailers(t)))
    }

    /// Takes one frame of the inner body: a data chunk is inspected and held
    /// back, releasing the chunk held before it; trailers are kept for after
    /// the last data and end the body. Returns the frame to yield now, if
    /// any.
    fn take_frame(&mut self, frame: Frame<Bytes>, cx: &mut Context<'_>) -> Option<Frame<Bytes>> {
        match frame.into_data() {
            Ok(data) if data.is_empty() => return Some(Frame::data(data)),
            Ok(data) => {
                if let Err(v) = self.inspector.push(&data, cx) {
                    self.refuse(v);
                    return None;
                }
                if let Some(prev) = self.held.replace(data) {
                    return Some(Frame::data(prev));
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    self.trailers = Some(trailers);
                    self.end(cx);
                }
            }
        }
        None
    }
}

impl<B> Body for InspectBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = InspectError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, InspectError>>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Streaming => {
                    if let Some(scans) = this.inspector.scans_mut() {
                        if let Some(v) = scans.poll_refusal(cx) {
                            this.refuse(v);
                            continue;
                        }
                        // clamd has not taken what it was given: read no further.
                        if scans.scanning.gate().poll_room(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                }
                State::Verdicts => {
                    if this.poll_verdicts(cx).is_pending() {
                        return Poll::Pending;
                    }
                    continue;
                }
                State::Refused(v) => return Poll::Ready(Some(Err(InspectError::Violation(v, this.check)))),
                State::InnerFailed => {
                    return Poll::Ready(Some(Err(InspectError::Inner("request body failed earlier".into()))))
                }
                State::Done => return Poll::Ready(None),
                State::Draining => return Poll::Ready(this.drain()),
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.end(cx);
                    continue;
                }
                Poll::Ready(Some(Err(e))) => {
                    this.held = None;
                    this.close_inspector();
                    this.state = State::InnerFailed;
                    return Poll::Ready(Some(Err(InspectError::Inner(e.into()))));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            if let Some(out) = this.take_frame(frame, cx) {
                return Poll::Ready(Some(Ok(out)));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        if self.state == State::Done {
            return SizeHint::with_exact(0);
        }
        let held = self.held.as_ref().map_or(0, |b| b.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held));
        }
        hint
    }
}

/// What the body's bytes are fed to: the raw-body or the multipart
/// inspector, or nothing once the inspection is over.
enum Inspector {
    Raw(Box<RawInspector>),
    Multipart(Box<MultipartInspector>),
    Closed,
}

impl Inspector {
    fn push(&mut self, chunk: &Bytes, cx: &mut Context<'_>) -> Result<(), Violation> {
        match self {
            Self::Raw(r) => r.push(chunk),
            Self::Multipart(m) => m.push(chunk, cx),
            Self::Closed => Ok(()),
        }
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), Violation> {
        match self {
            Self::Raw(r) => r.finish(),
            Self::Multipart(m) => m.finish(cx),
            Self::Closed => Ok(()),
        }
    }

    fn high_water(&self) -> HighWater {
        match self {
            Self::Raw(r) => HighWater { sniff: r.check.head_high_water(), ..HighWater::default() },
            Self::Multipart(m) => m.high_water(),
            Self::Closed => HighWater::default(),
        }
    }

    /// The content check that refused the body, when one did.
    fn failed_check(&self) -> Option<&'static str> {
        match self {
            Self::Raw(r) => Some(r.failed).filter(|c| !c.is_empty()),
            Self::Multipart(m) => m.failed.filter(|c| !c.is_empty()),
            Self::Closed => None,
        }
    }

    fn scans_mut(&mut self) -> Option<&mut Scans> {
        match self {
            Self::Raw(r) => r.scans.as_mut(),
            Self::Multipart(m) => m.scans.as_mut(),
            Self::Closed => None,
        }
    }

    fn take_scans(&mut self) -> Option<Scans> {
        match self {
            Self::Raw(r) => r.scans.take(),
            Self::Multipart(m) => m.scans.take(),
            Self::Closed => None,
        }
    }
}

#[cfg(test)]
#[path = "tests/support.rs"]
mod test_support;

#[cfg(test)]
#[path = "tests/body.rs"]
mod tests;
