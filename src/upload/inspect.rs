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
//! [`FileType`]s, `max_files` the number of file parts, `max_file_size` the
//! bytes of one file part, `max_field_bytes` the default byte cap of a
//! non-file field, and `fields` (when not empty) the allowlist of non-file
//! field names, each with an optional byte cap and an optional pattern the
//! whole value must match ([`FieldRule`]). The total body size is limited
//! elsewhere.
//!
//! # How it streams
//!
//! [`classify`] reads the request `Content-Type`: `multipart/form-data` with
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
//!   [`check_filename`], and its declared
//!   `Content-Type` (missing means `application/octet-stream`), its extension
//!   and its first bytes must agree on one allowed type: the declared type is
//!   one of the type's media types or `application/octet-stream`, the
//!   extension is one of the type's extensions, and
//!   [`FileType::check_content`] matches. Its bytes are counted against
//!   `max_file_size`. A part without a `filename` is a field: its bytes are
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

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::content::{extend_bounded, FileCheck, DEFAULT_INSPECT_WINDOW};
use super::filename::{check_filename, extension};
use super::types::{FileType, OCTET_STREAM};
use crate::scan::{Fallback, FileScan, Outcome, Scanning, Verdict};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The most bytes between the end of one part's data and the start of the
/// next part's data: the delimiter line plus the part's header block (and,
/// before the first part, leading CR/LF).
pub const MAX_PART_HEADER_BYTES: usize = 16 * 1024;

/// The most bytes (all whitespace) accepted after the closing boundary.
pub const MAX_EPILOGUE_BYTES: usize = 1024;

/// The longest multipart boundary accepted (RFC 2046).
pub const MAX_BOUNDARY_LEN: usize = 70;

/// The most header lines in one part.
const MAX_PART_HEADERS: usize = 16;

/// A route's upload policy: the `upload` table of its configuration.
#[derive(Debug, Clone)]
pub struct UploadRules {
    /// Allowed file types (`types`).
    pub types: Vec<&'static FileType>,
    /// Most file parts in one request (`max_files`).
    pub max_files: usize,
    /// Most bytes in one file part (`max_file_size`).
    pub max_file_size: u64,
    /// Default cap in bytes of a non-file field (`max_field_bytes`).
    pub max_field_bytes: u64,
    /// Allowlist of non-file fields (`fields`); empty allows any field name.
    pub fields: Vec<FieldRule>,
    /// How far into a file moat looks for a structure it needs
    /// (`inspect_window`): an OLE2 directory past it is refused, and the tail
    /// kept of a ZIP-based file is 1/64 of it.
    pub inspect_window: u64,
    /// Stream every file to clamd (`scan`); needs `[scan]`.
    pub scan: bool,
}

impl Default for UploadRules {
    fn default() -> Self {
        Self {
            types: Vec::new(),
            max_files: 10,
            max_file_size: u64::MAX,
            max_field_bytes: 64 * 1024,
            fields: Vec::new(),
            inspect_window: DEFAULT_INSPECT_WINDOW,
            scan: false,
        }
    }
}

/// One allowed non-file form field.
///
/// When [`UploadRules::fields`] is not empty it lists every non-file field a
/// request may carry: a field with another name is refused with
/// [`Violation::FieldRejected`], and so is a value the pattern does not
/// match in full.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The field name, compared exactly.
    pub name: String,
    /// Byte cap of the value; `None` uses [`UploadRules::max_field_bytes`].
    pub max_bytes: Option<u64>,
    /// A pattern the whole value must match. A value is accepted only when a
    /// match spans it from its first to its last byte; build rules with
    /// [`FieldRule::new`], which anchors the pattern, so that alternations
    /// are tried for a full match.
    pub pattern: Option<regex::Regex>,
}

impl FieldRule {
    /// Builds a rule, compiling `pattern` anchored at both ends
    /// (`\A(?:pattern)\z`).
    pub fn new(name: impl Into<String>, max_bytes: Option<u64>, pattern: Option<&str>) -> Result<Self, regex::Error> {
        let pattern = pattern.map(|p| regex::Regex::new(&format!(r"\A(?:{p})\z"))).transpose()?;
        Ok(Self { name: name.into(), max_bytes, pattern })
    }

    fn full_match(&self, value: &[u8]) -> bool {
        let Some(pattern) = &self.pattern else {
            return true;
        };
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        pattern.find(text).is_some_and(|m| m.start() == 0 && m.end() == text.len())
    }
}

/// Why an upload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The request `Content-Type` is neither `multipart/form-data` nor a
    /// media type of an allowed type.
    #[error("request content type is not accepted for uploads")]
    UnsupportedMediaType,
    /// A file part (or raw body) whose declared type, extension and content
    /// do not agree on one allowed type.
    #[error("file type not allowed or not matching its content")]
    FileType,
    /// A file part whose name is refused.
    #[error("file name refused")]
    FileName,
    /// More file parts than `max_files`.
    #[error("too many files")]
    TooManyFiles,
    /// A non-file field over its byte cap.
    #[error("form field too large")]
    FieldTooLarge,
    /// A file part over `max_file_size`.
    #[error("file too large")]
    FileTooLarge,
    /// A non-file field not on the allowlist, or not matching its pattern.
    #[error("form field not allowed")]
    FieldRejected,
    /// The body is not well-formed multipart (no or invalid boundary,
    /// truncated body, bad part headers, text outside the parts).
    #[error("malformed multipart body")]
    Malformed,
    /// clamd found malware in a file.
    #[error("malware found")]
    Malware,
    /// A file could not be scanned and `scan.on_error` is `deny`.
    #[error("upload could not be scanned")]
    ScanFailed,
}

impl Violation {
    /// The HTTP status moat answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType | Self::FileType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::FieldTooLarge | Self::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::FileName | Self::TooManyFiles | Self::FieldRejected | Self::Malformed => StatusCode::BAD_REQUEST,
            Self::Malware => StatusCode::FORBIDDEN,
            Self::ScanFailed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The reason label moat reports (logs, metrics, error body).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType | Self::FileType => "upload_type",
            Self::FileName => "upload_name",
            Self::TooManyFiles => "upload_count",
            Self::FieldTooLarge | Self::FileTooLarge => "body_too_large",
            Self::FieldRejected | Self::Malformed => "bad_request",
            Self::Malware => "upload_malware",
            Self::ScanFailed => "scan_unavailable",
        }
    }
}

/// How a request body must be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// A `multipart/form-data` body with this boundary.
    Multipart {
        /// The boundary parameter of the request `Content-Type`.
        boundary: String,
    },
    /// A raw body that must be this type.
    Raw(&'static FileType),
}

/// Decides from the request `Content-Type` how the body must be inspected.
///
/// `multipart/form-data` needs exactly one `boundary` parameter of 1 to 70
/// RFC 2046 boundary characters, else [`Violation::Malformed`]. Any other
/// media type (parameters ignored, case ignored) must be one of an allowed
/// type's media types, giving [`BodyKind::Raw`]; a type whose first listed
/// media type it is wins over one that lists it further down.
/// `application/octet-stream` is not accepted for raw bodies. Anything else,
/// or no `Content-Type`, is [`Violation::UnsupportedMediaType`].
pub fn classify(content_type: Option<&HeaderValue>, rules: &UploadRules) -> Result<BodyKind, Violation> {
    let Some(value) = content_type else {
        return Err(refuse(Violation::UnsupportedMediaType, "no content type"));
    };
    let Some((essence, params)) = split_media_type(value.as_bytes()) else {
        return Err(refuse(Violation::UnsupportedMediaType, "unparsable content type"));
    };
    if essence == "multipart/form-data" {
        let params = parse_params(params).map_err(|_| refuse(Violation::Malformed, "bad content type parameters"))?;
        let boundary = params
            .into_iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v)
            .ok_or_else(|| refuse(Violation::Malformed, "no boundary"))?;
        if !valid_boundary(&boundary) {
            return Err(refuse(Violation::Malformed, "invalid boundary"));
        }
        return Ok(BodyKind::Multipart { boundary });
    }
    rules
        .types
        .iter()
        .find(|t| t.media_types.first() == Some(&essence.as_str()))
        .or_else(|| rules.types.iter().find(|t| t.has_media_type(&essence)))
        .map(|t| BodyKind::Raw(t))
        .ok_or_else(|| refuse(Violation::UnsupportedMediaType, "raw type not allowed"))
}

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

/// The files of one request being scanned, and the verdicts of those whose
/// last byte has passed.
struct Scans {
    scanning: Scanning,
    verdicts: Vec<Verdict>,
}

impl Scans {
    /// The refusal a verdict already in calls for, if any.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Option<Violation> {
        let deny_errors = self.scanning.config().on_error == Fallback::Deny;
        self.verdicts.iter_mut().find_map(|v| match v.poll_outcome(cx) {
            Poll::Ready(Outcome::Infected) => Some(Violation::Malware),
            Poll::Ready(Outcome::Failed) if deny_errors => Some(Violation::ScanFailed),
            _ => None,
        })
    }

    /// Ready once every verdict is in: `Err` with the refusal they call for.
    fn poll_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Violation>> {
        if let Some(v) = self.poll_refusal(cx) {
            return Poll::Ready(Err(v));
        }
        if self.verdicts.iter_mut().all(|v| v.poll_outcome(cx).is_ready()) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

/// Hands a file's next bytes to its scan; a file over `scan.max_file_size`
/// is refused or passes unscanned, as `scan.on_too_large` says.
fn scan_push(
    scan: &mut Option<FileScan>,
    data: &Bytes,
    name: &str,
    failed: &mut Option<&'static str>,
) -> Result<(), Violation> {
    let Some(s) = scan else { return Ok(()) };
    if s.push(data).is_ok() {
        return Ok(());
    }
    match s.config().on_too_large {
        Fallback::Deny => {
            *failed = Some("larger than scan.max_file_size");
            Err(refuse(Violation::FileTooLarge, format_args!("file {name:?} over scan.max_file_size")))
        }
        Fallback::Allow => {
            if let Some(s) = scan.take() {
                s.skip();
            }
            Ok(())
        }
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
        self.check = self.inspector.failed_check().unwrap_or(v.reason());
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
                    let Some(scans) = this.scans.as_mut() else {
                        this.state = State::Draining;
                        continue;
                    };
                    match scans.poll_all(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(v)) => this.refuse(v),
                        Poll::Ready(Ok(())) => {
                            this.scans = None;
                            this.state = State::Draining;
                        }
                    }
                    continue;
                }
                State::Refused(v) => return Poll::Ready(Some(Err(InspectError::Violation(v, this.check)))),
                State::InnerFailed => {
                    return Poll::Ready(Some(Err(InspectError::Inner("request body failed earlier".into()))))
                }
                State::Done => return Poll::Ready(None),
                State::Draining => {
                    // The whole body has been accepted (and scanned clean);
                    // the held last chunk is released to the upstream here.
                    if let Some(data) = this.held.take() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    this.state = State::Done;
                    return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
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
            match frame.into_data() {
                Ok(data) if data.is_empty() => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(data) => {
                    if let Err(v) = this.inspector.push(&data, cx) {
                        this.refuse(v);
                        continue;
                    }
                    if let Some(prev) = this.held.replace(data) {
                        return Poll::Ready(Some(Ok(Frame::data(prev))));
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        this.trailers = Some(trailers);
                        this.end(cx);
                    }
                }
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

/// Logs a refusal at debug level and returns it.
fn refuse(v: Violation, detail: impl fmt::Display) -> Violation {
    tracing::debug!(violation = %v, reason = v.reason(), %detail, "upload refused");
    v
}

/// Whether a file of type `ty` may carry macros and active content: the route
/// lists the macro-enabled type of its Office family (docm for docx and doc,
/// xlsm for xlsx and xls, pptm for pptx and ppt).
fn macros_allowed(ty: &FileType, rules: &UploadRules) -> bool {
    ty.is_macro() || ty.group().is_some_and(|g| rules.types.iter().any(|t| t.is_macro() && t.group() == Some(g)))
}

enum Inspector {
    Raw(Box<RawInspector>),
    Multipart(Box<MultipartInspector>),
    Closed,
}

/// A raw body: its checks, the check that refused it, and its scan.
struct RawInspector {
    check: FileCheck,
    failed: &'static str,
    scan: Option<FileScan>,
    scans: Option<Scans>,
}

impl RawInspector {
    fn push(&mut self, chunk: &Bytes) -> Result<(), Violation> {
        self.check.push(chunk).map_err(|check| {
            self.failed = check;
            refuse(Violation::FileType, format_args!("raw body: {check}"))
        })?;
        let mut failed = None;
        scan_push(&mut self.scan, chunk, "(raw body)", &mut failed).inspect_err(|_| {
            self.failed = failed.unwrap_or("");
        })
    }

    fn finish(&mut self) -> Result<(), Violation> {
        self.check.finish().map_err(|check| {
            self.failed = check;
            refuse(Violation::FileType, format_args!("raw body: {check}"))
        })?;
        if let (Some(scan), Some(scans)) = (self.scan.take(), self.scans.as_mut()) {
            scans.verdicts.push(scan.finish());
        }
        Ok(())
    }
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

/// The one-slot queue `multer` pulls chunks from.
#[derive(Default)]
struct Feed {
    piece: Option<Bytes>,
    closed: bool,
}

fn lock(feed: &Mutex<Feed>) -> std::sync::MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The stream handed to `multer`. It is polled only from inside
/// [`InspectBody::poll_frame`], right after a chunk was placed in the feed,
/// so its `Pending` registers no waker: the task is woken by the inner body.
struct FeedStream(Arc<Mutex<Feed>>);

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

/// What the bytes of a gap (between two parts' data) hold so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GapStatus {
    Incomplete,
    /// A part header block at `buf[start..end]` (ending in CRLF CRLF).
    Headers {
        start: usize,
        end: usize,
    },
    /// The closing delimiter, ending at `buf[..end]`.
    Close {
        end: usize,
    },
}

/// The raw bytes from the end of one part's data (or the body start) up to
/// the end of the next part's header block or the closing delimiter.
struct Gap {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    origin: u64,
    /// Before the first part: leading CR/LF are allowed.
    first: bool,
    status: GapStatus,
    /// Where the search for the header block end resumes.
    search_from: usize,
}

impl Gap {
    fn first() -> Self {
        Self { buf: Vec::new(), origin: 0, first: true, status: GapStatus::Incomplete, search_from: 0 }
    }

    /// The gap after a part whose delimiter `--boundary` starts at `origin`.
    fn after_part(dash: &[u8], origin: u64) -> Self {
        Self { buf: dash.to_vec(), origin, first: false, status: GapStatus::Incomplete, search_from: 0 }
    }

    /// Appends this gap's bytes from `piece` (which starts at stream offset
    /// `piece_start`), up to the end of the header block or closing
    /// delimiter.
    fn absorb(&mut self, piece: &[u8], piece_start: u64, dash: &[u8]) -> Result<(), Violation> {
        if self.status != GapStatus::Incomplete {
            return Ok(());
        }
        let next = self.origin + self.buf.len() as u64;
        let piece_end = piece_start + piece.len() as u64;
        if next >= piece_end {
            return Ok(());
        }
        let Some(from) = next.checked_sub(piece_start).and_then(|f| usize::try_from(f).ok()) else {
            return Err(refuse(Violation::Malformed, "boundary position out of step"));
        };
        let avail = &piece[from..];
        let room = (MAX_PART_HEADER_BYTES + 1).saturating_sub(self.buf.len());
        extend_bounded(&mut self.buf, &avail[..avail.len().min(room)], MAX_PART_HEADER_BYTES + 1);
        self.status = self.scan(dash)?;
        if self.status == GapStatus::Incomplete && self.buf.len() > MAX_PART_HEADER_BYTES {
            return Err(refuse(Violation::Malformed, "part headers too large"));
        }
        Ok(())
    }

    /// Reads the gap bytes as `[CR/LF...] --boundary ( -- | CRLF headers
    /// CRLF CRLF )`, truncating anything after the end.
    fn scan(&mut self, dash: &[u8]) -> Result<GapStatus, Violation> {
        let b = &self.buf;
        let mut i = 0;
        if self.first {
            while i < b.len() && matches!(b[i], b'\r' | b'\n') {
                i += 1;
            }
        }
        let rest = &b[i..];
        let n = rest.len().min(dash.len());
        if rest[..n] != dash[..n] {
            return Err(refuse(Violation::Malformed, "expected a boundary"));
        }
        if rest.len() < dash.len() {
            return Ok(GapStatus::Incomplete);
        }
        let j = i + dash.len();
        match &b[j..] {
            [] | [b'-'] | [b'\r'] => return Ok(GapStatus::Incomplete),
            [b'-', b'-', ..] => {
                self.buf.truncate(j + 2);
                return Ok(GapStatus::Close { end: j + 2 });
            }
            [b'\r', b'\n', ..] => {}
            _ => return Err(refuse(Violation::Malformed, "bad boundary line")),
        }
        let start = j + 2;
        let from = self.search_from.saturating_sub(3).max(start);
        match find(b, b"\r\n\r\n", from) {
            Some(pos) => {
                let end = pos + 4;
                self.buf.truncate(end);
                Ok(GapStatus::Headers { start, end })
            }
            None => {
                self.search_from = b.len();
                Ok(GapStatus::Incomplete)
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The checks of one part.
enum Part {
    File { check: Box<FileCheck>, size: u64, name: String, scan: Option<FileScan> },
    Field { name: String, cap: u64, size: u64, value: Option<Vec<u8>>, rule: Option<FieldRule> },
}

impl Part {
    /// A part's data arrives here, in order, chunk by chunk.
    fn consume(
        &mut self,
        data: &Bytes,
        rules: &UploadRules,
        failed: &mut Option<&'static str>,
    ) -> Result<(), Violation> {
        match self {
            Self::File { check, size, name, scan } => {
                *size = size.saturating_add(data.len() as u64);
                if *size > rules.max_file_size {
                    return Err(refuse(
                        Violation::FileTooLarge,
                        format_args!("file {name:?} over {} bytes", rules.max_file_size),
                    ));
                }
                check.push(data).map_err(|c| {
                    *failed = Some(c);
                    refuse(Violation::FileType, format_args!("file {name:?}: {c}"))
                })?;
                scan_push(scan, data, name, failed)
            }
            Self::Field { name, cap, size, value, .. } => {
                *size = size.saturating_add(data.len() as u64);
                if *size > *cap {
                    return Err(refuse(Violation::FieldTooLarge, format_args!("field {name:?} over {cap} bytes")));
                }
                if let Some(v) = value {
                    extend_bounded(v, data, usize::try_from(*cap).unwrap_or(usize::MAX));
                }
                Ok(())
            }
        }
    }

    /// A part's data has ended (its closing delimiter was seen, the body's
    /// last chunk is still held).
    fn finish(&mut self, failed: &mut Option<&'static str>, scans: Option<&mut Scans>) -> Result<(), Violation> {
        match self {
            Self::File { check, name, scan, .. } => {
                check.finish().map_err(|c| {
                    *failed = Some(c);
                    refuse(Violation::FileType, format_args!("file {name:?}: {c}"))
                })?;
                if let (Some(scan), Some(scans)) = (scan.take(), scans) {
                    scans.verdicts.push(scan.finish());
                }
                Ok(())
            }
            Self::Field { name, value, rule, .. } => match (rule, value) {
                (Some(rule), Some(v)) if !rule.full_match(v) => {
                    Err(refuse(Violation::FieldRejected, format_args!("field {name:?} does not match its pattern")))
                }
                _ => Ok(()),
            },
        }
    }

    fn high_water(&self) -> HighWater {
        match self {
            Self::File { check, .. } => HighWater { sniff: check.head_high_water(), ..HighWater::default() },
            Self::Field { value, .. } => {
                HighWater { field: value.as_ref().map_or(0, Vec::capacity), ..HighWater::default() }
            }
        }
    }
}

/// A part being read.
struct Current {
    field: multer::Field<'static>,
    part: Part,
    /// Stream offset of the part's first data byte.
    data_start: u64,
    /// Data bytes `multer` has returned for the part.
    data_len: u64,
}

enum Stage {
    Gap(Gap),
    Part(Box<Current>),
    /// After the closing delimiter; counts the epilogue bytes.
    End {
        epilogue: usize,
    },
    /// A check failed; the body is refused.
    Failed,
}

struct MultipartInspector {
    rules: Arc<UploadRules>,
    feed: Arc<Mutex<Feed>>,
    parser: multer::Multipart<'static>,
    /// `--` followed by the boundary.
    dash: Vec<u8>,
    stage: Stage,
    files: usize,
    /// The latest chunk and its stream offset.
    piece: Bytes,
    piece_start: u64,
    high_water: HighWater,
    /// The content check that refused a file part.
    failed: Option<&'static str>,
    /// Malware scanning, when the route asks for it.
    scans: Option<Scans>,
}

impl MultipartInspector {
    fn new(boundary: &str, rules: Arc<UploadRules>, scans: Option<Scans>) -> Self {
        let feed = Arc::new(Mutex::new(Feed::default()));
        let parser = multer::Multipart::new(FeedStream(feed.clone()), boundary);
        let mut dash = b"--".to_vec();
        dash.extend_from_slice(boundary.as_bytes());
        Self {
            rules,
            feed,
            parser,
            dash,
            stage: Stage::Gap(Gap::first()),
            files: 0,
            piece: Bytes::new(),
            piece_start: 0,
            high_water: HighWater::default(),
            failed: None,
            scans,
        }
    }

    fn high_water(&self) -> HighWater {
        let mut hw = self.high_water;
        match &self.stage {
            Stage::Gap(g) => hw.headers = hw.headers.max(g.buf.capacity()),
            Stage::Part(c) => hw.merge(c.part.high_water()),
            Stage::End { .. } | Stage::Failed => {}
        }
        hw
    }

    fn push(&mut self, chunk: &Bytes, cx: &mut Context<'_>) -> Result<(), Violation> {
        self.piece_start += self.piece.len() as u64;
        self.piece = chunk.clone();
        if let Stage::End { epilogue } = &mut self.stage {
            return check_epilogue(epilogue, chunk);
        }
        if lock(&self.feed).piece.replace(chunk.clone()).is_some() {
            return Err(refuse(Violation::Malformed, "parser did not take the previous chunk"));
        }
        self.drive(cx)
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), Violation> {
        if matches!(self.stage, Stage::End { .. }) {
            return Ok(());
        }
        lock(&self.feed).closed = true;
        self.drive(cx)?;
        match self.stage {
            Stage::End { .. } => Ok(()),
            _ => Err(refuse(Violation::Malformed, "body ended before the closing boundary")),
        }
    }

    /// Whether the bytes of the current piece that fall in
    /// `[at, at + expected.len())` equal the matching bytes of `expected`.
    fn piece_agrees(&self, at: u64, expected: &[u8]) -> bool {
        expected.iter().enumerate().all(|(k, want)| {
            let abs = at + k as u64;
            match abs.checked_sub(self.piece_start) {
                Some(off) => usize::try_from(off).ok().and_then(|o| self.piece.get(o)).is_none_or(|got| got == want),
                None => true,
            }
        })
    }

    /// Polls `multer` until it needs more input, checking every part it
    /// reports.
    fn drive(&mut self, cx: &mut Context<'_>) -> Result<(), Violation> {
        loop {
            let stage = std::mem::replace(&mut self.stage, Stage::Failed);
            let (next, more) = match stage {
                Stage::End { epilogue } => (Stage::End { epilogue }, false),
                Stage::Failed => return Err(Violation::Malformed),
                // On an error the stage stays `Failed`.
                Stage::Gap(gap) => self.step_gap(gap, cx)?,
                Stage::Part(current) => self.step_part(current, cx)?,
            };
            self.stage = next;
            if !more {
                return Ok(());
            }
        }
    }

    fn step_gap(&mut self, mut gap: Gap, cx: &mut Context<'_>) -> Result<(Stage, bool), Violation> {
        gap.absorb(&self.piece, self.piece_start, &self.dash)?;
        self.high_water.headers = self.high_water.headers.max(gap.buf.capacity());
        let disagree = |what| refuse(Violation::Malformed, format_args!("parser disagreement: {what}"));
        match self.parser.poll_next_field(cx) {
            Poll::Pending => {
                if gap.status != GapStatus::Incomplete {
                    return Err(disagree("multer wants more after a complete header block"));
                }
                Ok((Stage::Gap(gap), false))
            }
            Poll::Ready(Err(e)) => Err(refuse(Violation::Malformed, format_args!("{e:?}"))),
            Poll::Ready(Ok(None)) => {
                let GapStatus::Close { end } = gap.status else {
                    return Err(disagree("multer ended without a closing boundary"));
                };
                let close_end = gap.origin + end as u64;
                let mut epilogue = 0;
                let piece_end = self.piece_start + self.piece.len() as u64;
                if close_end < piece_end {
                    let from = usize::try_from(close_end.saturating_sub(self.piece_start)).unwrap_or(usize::MAX);
                    let tail = self.piece.slice(from.min(self.piece.len())..);
                    check_epilogue(&mut epilogue, &tail)?;
                }
                Ok((Stage::End { epilogue }, false))
            }
            Poll::Ready(Ok(Some(field))) => {
                let GapStatus::Headers { start, end } = gap.status else {
                    return Err(disagree("multer found headers the inspector did not"));
                };
                let headers = parse_part_headers(&gap.buf[start..end])?;
                headers.agree_with(&field)?;
                let part = self.start_part(headers)?;
                let current = Current { field, part, data_start: gap.origin + end as u64, data_len: 0 };
                Ok((Stage::Part(Box::new(current)), true))
            }
        }
    }

    fn step_part(&mut self, mut current: Box<Current>, cx: &mut Context<'_>) -> Result<(Stage, bool), Violation> {
        loop {
            match current.field.poll_next_unpin(cx) {
                Poll::Pending => {
                    self.high_water.merge(current.part.high_water());
                    return Ok((Stage::Part(current), false));
                }
                Poll::Ready(Some(Ok(data))) => {
                    current.data_len += data.len() as u64;
                    current.part.consume(&data, &self.rules, &mut self.failed)?;
                }
                Poll::Ready(Some(Err(e))) => return Err(refuse(Violation::Malformed, format_args!("{e:?}"))),
                Poll::Ready(None) => {
                    self.high_water.merge(current.part.high_water());
                    current.part.finish(&mut self.failed, self.scans.as_mut())?;
                    let delimiter_at = current.data_start + current.data_len;
                    let origin = delimiter_at + 2;
                    if !self.piece_agrees(delimiter_at, b"\r\n") || !self.piece_agrees(origin, &self.dash) {
                        return Err(refuse(Violation::Malformed, "parser disagreement: delimiter not where expected"));
                    }
                    return Ok((Stage::Gap(Gap::after_part(&self.dash, origin)), true));
                }
            }
        }
    }

    fn start_part(&mut self, headers: PartHeaders) -> Result<Part, Violation> {
        let rules = &self.rules;
        let Some(filename) = headers.filename else {
            let rule = if rules.fields.is_empty() {
                None
            } else {
                match rules.fields.iter().find(|r| r.name == headers.name) {
                    Some(rule) => Some(rule.clone()),
                    None => {
                        return Err(refuse(
                            Violation::FieldRejected,
                            format_args!("field {:?} not allowed", headers.name),
                        ))
                    }
                }
            };
            let cap = rule.as_ref().and_then(|r| r.max_bytes).unwrap_or(rules.max_field_bytes);
            let value = rule.as_ref().is_some_and(|r| r.pattern.is_some()).then(Vec::new);
            return Ok(Part::Field { name: headers.name, cap, size: 0, value, rule });
        };
        self.files += 1;
        if self.files > rules.max_files {
            return Err(refuse(Violation::TooManyFiles, format_args!("more than {} files", rules.max_files)));
        }
        if let Err(problem) = check_filename(&filename) {
            return Err(refuse(Violation::FileName, format_args!("file {filename:?}: {problem}")));
        }
        let declared = headers.content_type.unwrap_or_else(|| OCTET_STREAM.to_owned());
        let ext = extension(&filename);
        // Extensions are unique across the table, so at most one type fits.
        let fits = rules.types.iter().copied().find(|t| {
            ext.as_deref().is_some_and(|e| t.has_extension(e))
                && (declared == OCTET_STREAM || t.has_media_type(&declared))
        });
        let Some(ty) = fits else {
            return Err(refuse(
                Violation::FileType,
                format_args!("file {filename:?} declared {declared:?}: no allowed type fits"),
            ));
        };
        let macros = macros_allowed(ty, rules);
        let scan = self.scans.as_ref().map(|s| s.scanning.start(&filename));
        Ok(Part::File {
            check: Box::new(FileCheck::new(ty, macros, rules.inspect_window)),
            size: 0,
            name: filename,
            scan,
        })
    }
}

/// Accepts up to [`MAX_EPILOGUE_BYTES`] of whitespace after the closing
/// boundary.
fn check_epilogue(seen: &mut usize, bytes: &[u8]) -> Result<(), Violation> {
    *seen = seen.saturating_add(bytes.len());
    if *seen > MAX_EPILOGUE_BYTES || !bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t')) {
        return Err(refuse(Violation::Malformed, "data after the closing boundary"));
    }
    Ok(())
}

/// What the inspector reads from a part's header block.
#[derive(Debug)]
struct PartHeaders {
    name: String,
    filename: Option<String>,
    /// Lowercase `type/subtype` of `Content-Type`; empty when unparsable.
    content_type: Option<String>,
    /// Every header: lowercase name and value without surrounding blanks.
    raw: Vec<(String, Vec<u8>)>,
}

impl PartHeaders {
    /// Requires `multer`'s reading of the part to equal this one.
    fn agree_with(&self, field: &multer::Field<'_>) -> Result<(), Violation> {
        let same_names = field.name() == Some(self.name.as_str()) && field.file_name() == self.filename.as_deref();
        let map = field.headers();
        let same_headers = map.len() == self.raw.len()
            && self
                .raw
                .iter()
                .all(|(k, v)| map.get(k.as_str()).is_some_and(|got| trim_blanks(got.as_bytes()) == v.as_slice()));
        if same_names && same_headers {
            Ok(())
        } else {
            Err(refuse(Violation::Malformed, "parser disagreement on part headers"))
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a part header block (header lines, then an empty line).
fn parse_part_headers(block: &[u8]) -> Result<PartHeaders, Violation> {
    let bad = |what: &str| refuse(Violation::Malformed, format_args!("part headers: {what}"));
    let body = block.strip_suffix(b"\r\n\r\n").ok_or_else(|| bad("unterminated"))?;
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = body;
    loop {
        let (line, more) = match find(rest, b"\r\n", 0) {
            Some(p) => (&rest[..p], Some(&rest[p + 2..])),
            None => (rest, None),
        };
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| bad("line without a colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("bad header name"));
        }
        let value = trim_blanks(&line[colon + 1..]);
        if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80) {
            return Err(bad("control character in a header value"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if raw.iter().any(|(k, _)| *k == name) {
            return Err(bad("repeated header"));
        }
        if raw.len() == MAX_PART_HEADERS {
            return Err(bad("too many headers"));
        }
        raw.push((name, value.to_vec()));
        match more {
            Some(m) => rest = m,
            None => break,
        }
    }
    let get = |k: &str| raw.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_slice());
    let disposition = get("content-disposition").ok_or_else(|| bad("no content-disposition"))?;
    let (kind, params) = match disposition.iter().position(|&b| b == b';') {
        Some(p) => disposition.split_at(p),
        None => (disposition, &b""[..]),
    };
    if !trim_blanks(kind).eq_ignore_ascii_case(b"form-data") {
        return Err(bad("disposition is not form-data"));
    }
    let params = parse_params(params).map_err(|e| match e {
        ParamError::Backslash(name) if name == "filename" => refuse(Violation::FileName, "backslash in a file name"),
        _ => bad("bad disposition parameters"),
    })?;
    let mut name = None;
    let mut filename = None;
    for (k, v) in params {
        if k.ends_with('*') {
            return Err(bad("extended disposition parameter"));
        }
        match k.as_str() {
            "name" => name = Some(v),
            "filename" => filename = Some(v),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| bad("no field name"))?;
    if let Some(cte) = get("content-transfer-encoding") {
        let cte = String::from_utf8_lossy(cte).to_ascii_lowercase();
        if !matches!(cte.as_str(), "7bit" | "8bit" | "binary") {
            return Err(bad("content-transfer-encoding"));
        }
    }
    let content_type = get("content-type").map(|v| split_media_type(v).map(|(essence, _)| essence).unwrap_or_default());
    Ok(PartHeaders { name, filename, content_type, raw })
}

/// Splits a media type into its lowercase `type/subtype` and the bytes from
/// the first `;` on.
fn split_media_type(value: &[u8]) -> Option<(String, &[u8])> {
    let (essence, params) = match value.iter().position(|&b| b == b';') {
        Some(p) => value.split_at(p),
        None => (value, &b""[..]),
    };
    let essence = trim_blanks(essence);
    let slash = essence.iter().position(|&b| b == b'/')?;
    let (ty, sub) = (&essence[..slash], &essence[slash + 1..]);
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| is_tchar(b));
    if !token(ty) || !token(sub) {
        return None;
    }
    Some((String::from_utf8_lossy(essence).to_ascii_lowercase(), params))
}

/// Why a parameter list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParamError {
    /// Not `; name=value` syntax, a repeated name, or a value not UTF-8.
    Syntax,
    /// A backslash in the value of the named parameter. Parsers disagree on
    /// backslash escapes (and on Windows paths sent as file names), so no
    /// backslash is accepted.
    Backslash(String),
}

/// Parses `*( OWS ";" OWS name OWS "=" OWS value )` where a value is a token
/// or a quoted string without backslashes. Names are lowercased; a repeated
/// name is an error. Values must be UTF-8.
fn parse_params(s: &[u8]) -> Result<Vec<(String, String)>, ParamError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while *i < s.len() && matches!(s[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        if i == s.len() {
            return Ok(out);
        }
        if s[i] != b';' {
            return Err(ParamError::Syntax);
        }
        i += 1;
        skip_ows(&mut i);
        if i == s.len() {
            return Ok(out);
        }
        if s[i] == b';' {
            continue;
        }
        let start = i;
        while i < s.len() && is_tchar(s[i]) {
            i += 1;
        }
        if i == start {
            return Err(ParamError::Syntax);
        }
        let name = String::from_utf8_lossy(&s[start..i]).to_ascii_lowercase();
        skip_ows(&mut i);
        if s.get(i) != Some(&b'=') {
            return Err(ParamError::Syntax);
        }
        i += 1;
        skip_ows(&mut i);
        let value = if s.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            loop {
                match s.get(i) {
                    None => return Err(ParamError::Syntax),
                    Some(b'"') => break,
                    Some(b'\\') => return Err(ParamError::Backslash(name)),
                    Some(&b) if b != b'\t' && (b < 0x20 || b == 0x7f) => return Err(ParamError::Syntax),
                    Some(_) => i += 1,
                }
            }
            let v = &s[start..i];
            i += 1;
            v
        } else {
            let start = i;
            while i < s.len() && !matches!(s[i], b' ' | b'\t' | b';') {
                let b = s[i];
                if b == b'\\' {
                    return Err(ParamError::Backslash(name));
                }
                if b == b'"' || b < 0x20 || b == 0x7f {
                    return Err(ParamError::Syntax);
                }
                i += 1;
            }
            if i == start {
                return Err(ParamError::Syntax);
            }
            &s[start..i]
        };
        let value = String::from_utf8(value.to_vec()).map_err(|_| ParamError::Syntax)?;
        if out.iter().any(|(k, _)| *k == name) {
            return Err(ParamError::Syntax);
        }
        out.push((name, value));
    }
}

/// RFC 2046: 1 to 70 characters from `bchars`, not ending in a space.
fn valid_boundary(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= MAX_BOUNDARY_LEN
        && !b.ends_with(' ')
        && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::types::{lookup, SNIFF_WINDOW};
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use std::time::Instant;

    const BOUNDARY: &str = "----moatBoundary7MA4YWxkTrZu0gW";

    fn ty(n: &str) -> &'static FileType {
        lookup(n).expect("known type")
    }

    fn rules(types: &[&str]) -> UploadRules {
        UploadRules {
            types: types.iter().map(|n| ty(n)).collect(),
            max_files: 4,
            max_file_size: 1 << 20,
            max_field_bytes: 1024,
            fields: Vec::new(),
            inspect_window: DEFAULT_INSPECT_WINDOW,
            scan: false,
        }
    }

    fn all_rules() -> UploadRules {
        UploadRules { types: crate::upload::types::all().iter().collect(), ..rules(&[]) }
    }

    fn multipart() -> BodyKind {
        BodyKind::Multipart { boundary: BOUNDARY.into() }
    }

    /// Builds multipart bodies.
    struct Form(Vec<u8>);

    impl Form {
        fn new() -> Self {
            Self(Vec::new())
        }

        fn part(mut self, headers: &str, data: &[u8]) -> Self {
            self.0.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
            self.0.extend_from_slice(data);
            self.0.extend_from_slice(b"\r\n");
            self
        }

        fn file(self, filename: &str, ctype: Option<&str>, data: &[u8]) -> Self {
            let mut h = format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"");
            if let Some(c) = ctype {
                h.push_str(&format!("\r\nContent-Type: {c}"));
            }
            self.part(&h, data)
        }

        fn text(self, name: &str, value: &str) -> Self {
            self.part(&format!("Content-Disposition: form-data; name=\"{name}\""), value.as_bytes())
        }

        fn end(mut self) -> Vec<u8> {
            self.0.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
            self.0
        }
    }

    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Splits `data` into chunks of 1..=max bytes at pseudo-random points.
    fn split(data: &[u8], seed: u64, max: usize) -> Vec<Bytes> {
        let mut s = seed | 1;
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let n = 1 + (xorshift(&mut s) as usize % max);
            let end = (i + n).min(data.len());
            out.push(Bytes::copy_from_slice(&data[i..end]));
            i = end;
        }
        out
    }

    type Frames = std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>;

    fn body_of(chunks: Vec<Bytes>) -> StreamBody<futures_util::stream::Iter<Frames>> {
        let frames: Vec<_> = chunks.into_iter().map(|c| Ok(Frame::data(c))).collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    struct Outcome {
        out: Vec<u8>,
        err: Option<Violation>,
        hw: HighWater,
        trailers: Option<HeaderMap>,
    }

    async fn run_body<B>(body: B, kind: BodyKind, rules: UploadRules) -> Outcome
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError> + fmt::Debug,
    {
        let mut ib = inspect(body, kind, Arc::new(rules), None);
        let mut out = Vec::new();
        let mut err = None;
        let mut trailers = None;
        while let Some(frame) = ib.frame().await {
            match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => out.extend_from_slice(&d),
                    Err(f) => trailers = f.into_trailers().ok(),
                },
                Err(InspectError::Violation(v, _)) => {
                    err = Some(v);
                    break;
                }
                Err(e) => panic!("inner error: {e}"),
            }
        }
        if err.is_none() {
            assert!(ib.is_end_stream());
        } else {
            // A refused body keeps failing.
            assert!(matches!(ib.frame().await, Some(Err(InspectError::Violation(..)))));
        }
        Outcome { out, err, hw: ib.high_water(), trailers }
    }

    /// Runs `body` through the inspector under several chunkings; checks the
    /// identity property on success and the abort property on refusal, and
    /// that every chunking reaches the same result.
    async fn check_kind(body: &[u8], kind: BodyKind, rules: UploadRules) -> Result<(), Violation> {
        let mut result = None;
        let chunkings: Vec<Vec<Bytes>> =
            vec![vec![Bytes::copy_from_slice(body)], split(body, 1, 7), split(body, 2, 97), split(body, 3, 5000)];
        for chunks in chunkings {
            let o = run_body(body_of(chunks), kind.clone(), rules.clone()).await;
            match o.err {
                None => assert_eq!(o.out, body, "identity"),
                Some(_) => {
                    assert!(o.out.len() < body.len() || body.is_empty(), "abort before the end");
                    assert!(body.starts_with(&o.out), "prefix of the input");
                }
            }
            assert!(o.hw.sniff <= SNIFF_WINDOW);
            assert!(o.hw.headers <= MAX_PART_HEADER_BYTES + 1);
            let r = o.err.map_or(Ok(()), Err);
            if let Some(prev) = result {
                assert_eq!(prev, r, "same verdict for every chunking");
            }
            result = Some(r);
        }
        result.unwrap_or(Ok(()))
    }

    async fn check(body: &[u8], rules: UploadRules) -> Result<(), Violation> {
        check_kind(body, multipart(), rules).await
    }

    mod samples {
        pub fn pdf() -> Vec<u8> {
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
              2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
                .to_vec()
        }
        pub fn png() -> Vec<u8> {
            let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
            v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
            v.extend_from_slice(b"\x00\x00\x00\x00IEND\xaeB`\x82");
            v
        }
        pub fn jpeg() -> Vec<u8> {
            let mut v = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
            v.extend_from_slice(b"\xff\xd9");
            v
        }
        pub fn gif() -> Vec<u8> {
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()
        }
        pub fn webp() -> Vec<u8> {
            let mut v = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00".to_vec();
            v.extend_from_slice(&[0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0x00]);
            v
        }
        pub fn tiff_le() -> Vec<u8> {
            let mut v = b"II*\x00\x08\x00\x00\x00".to_vec();
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            v
        }
        pub fn tiff_be() -> Vec<u8> {
            let mut v = b"MM\x00*\x00\x00\x00\x08".to_vec();
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            v
        }
        pub fn bmp() -> Vec<u8> {
            let mut v = b"BM".to_vec();
            v.extend_from_slice(&58u32.to_le_bytes());
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(&54u32.to_le_bytes());
            v.extend_from_slice(&40u32.to_le_bytes());
            v.extend_from_slice(&1i32.to_le_bytes());
            v.extend_from_slice(&1i32.to_le_bytes());
            v.extend_from_slice(&1u16.to_le_bytes());
            v.extend_from_slice(&24u16.to_le_bytes());
            v.extend_from_slice(&[0; 24]);
            v.extend_from_slice(&[0xff, 0, 0, 0]);
            v
        }
        pub fn ole2() -> Vec<u8> {
            crate::upload::ole2::tests::compound_of(
                &[0; 16],
                &["WordDocument", "Workbook", "PowerPoint Document"],
                1,
                2,
            )
        }
        pub fn txt() -> Vec<u8> {
            "Quarterly notes\r\nUmsatz: 12 € — ok\n".as_bytes().to_vec()
        }
        pub fn csv() -> Vec<u8> {
            b"id,name,amount\n1,Alice,10.5\n2,Bob,7\n".to_vec()
        }
        pub fn md() -> Vec<u8> {
            b"# Title\n\nSome *markdown* text.\n".to_vec()
        }
        pub fn html() -> Vec<u8> {
            b"<!doctype html>\n<html><body><p>hi</p></body></html>\n".to_vec()
        }
        pub fn json() -> Vec<u8> {
            b"{\"a\":1}".to_vec()
        }
        pub fn exe() -> Vec<u8> {
            let mut v = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
            v.extend_from_slice(&[0xb8, 0, 0, 0, 0, 0, 0, 0, 0x40]);
            v.resize(512, 0);
            v[0x80..0x84].copy_from_slice(b"PE\x00\x00");
            v
        }
    }

    /// (type, file name, declared media type, content)
    fn cases() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
        vec![
            ("pdf", "paper.pdf", "application/pdf", samples::pdf()),
            ("png", "scan.png", "image/png", samples::png()),
            ("jpeg", "photo.JPG", "image/jpeg", samples::jpeg()),
            ("gif", "anim.gif", "image/gif", samples::gif()),
            ("webp", "pic.webp", "image/webp", samples::webp()),
            ("tiff", "fax.tif", "image/tiff", samples::tiff_le()),
            ("tiff", "fax.tiff", "image/tiff", samples::tiff_be()),
            ("bmp", "old.bmp", "image/bmp", samples::bmp()),
            ("doc", "letter.doc", "application/msword", samples::ole2()),
            ("xls", "sheet.xls", "application/vnd.ms-excel", samples::ole2()),
            ("ppt", "deck.ppt", "application/vnd.ms-powerpoint", samples::ole2()),
            ("txt", "notes.txt", "text/plain; charset=utf-8", samples::txt()),
            ("csv", "data.csv", "text/csv", samples::csv()),
            ("md", "README.md", "text/markdown", samples::md()),
            ("html", "page.html", "text/html", samples::html()),
            ("json", "data.json", "application/json", samples::json()),
        ]
    }

    #[test]
    fn classify_content_types() {
        let r = rules(&["pdf", "csv", "xls"]);
        let hv = |s: &str| HeaderValue::from_str(s).expect("header value");
        let mp = |s: &str| classify(Some(&hv(s)), &r);
        assert_eq!(mp(&format!("multipart/form-data; boundary={BOUNDARY}")), Ok(multipart()));
        assert_eq!(
            mp("Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"a b'()+_,-./:=?\""),
            Ok(BodyKind::Multipart { boundary: "a b'()+_,-./:=?".into() })
        );
        assert_eq!(mp("multipart/form-data"), Err(Violation::Malformed));
        assert_eq!(mp("multipart/form-data; charset=utf-8"), Err(Violation::Malformed));
        assert_eq!(mp("multipart/form-data; boundary="), Err(Violation::Malformed));
        assert_eq!(mp("multipart/form-data; boundary=\"\""), Err(Violation::Malformed));
        assert_eq!(mp("multipart/form-data; boundary=a; boundary=b"), Err(Violation::Malformed));
        assert_eq!(mp("multipart/form-data; boundary=a\"b"), Err(Violation::Malformed));
        assert_eq!(mp("multipart/form-data; boundary=\"a{b\""), Err(Violation::Malformed));
        assert_eq!(mp(&format!("multipart/form-data; boundary={}", "a".repeat(71))), Err(Violation::Malformed));
        assert!(mp(&format!("multipart/form-data; boundary={}", "a".repeat(70))).is_ok());
        assert_eq!(mp("application/pdf"), Ok(BodyKind::Raw(ty("pdf"))));
        assert_eq!(mp("Application/PDF; version=1.7"), Ok(BodyKind::Raw(ty("pdf"))));
        // Listed first by xls, further down by csv.
        assert_eq!(mp("application/vnd.ms-excel"), Ok(BodyKind::Raw(ty("xls"))));
        assert_eq!(mp("text/csv"), Ok(BodyKind::Raw(ty("csv"))));
        assert_eq!(mp("application/x-msdownload"), Err(Violation::UnsupportedMediaType));
        assert_eq!(mp("application/octet-stream"), Err(Violation::UnsupportedMediaType));
        assert_eq!(mp("image/png"), Err(Violation::UnsupportedMediaType));
        assert_eq!(mp("multipart/mixed; boundary=x"), Err(Violation::UnsupportedMediaType));
        assert_eq!(mp("garbage"), Err(Violation::UnsupportedMediaType));
        assert_eq!(classify(None, &r), Err(Violation::UnsupportedMediaType));
    }

    #[test]
    fn violation_status_and_reason() {
        use Violation::*;
        let table = [
            (UnsupportedMediaType, 415, "upload_type"),
            (FileType, 415, "upload_type"),
            (FileName, 400, "upload_name"),
            (TooManyFiles, 400, "upload_count"),
            (FieldTooLarge, 413, "body_too_large"),
            (FileTooLarge, 413, "body_too_large"),
            (FieldRejected, 400, "bad_request"),
            (Malformed, 400, "bad_request"),
        ];
        for (v, status, reason) in table {
            assert_eq!(v.status().as_u16(), status);
            assert_eq!(v.reason(), reason);
            assert!(!v.to_string().is_empty());
        }
    }

    #[tokio::test]
    async fn accepts_each_type_and_refuses_it_as_another() {
        for (name, filename, media, data) in cases() {
            for declared in [Some(media), Some("application/octet-stream"), None] {
                let body = Form::new().file(filename, declared, &data).end();
                assert_eq!(check(&body, all_rules()).await, Ok(()), "{name} as {declared:?}");
            }
            // Allowed only when its type is on the route's list.
            let body = Form::new().file(filename, Some(media), &data).end();
            let others: Vec<&str> = crate::upload::types::all().iter().map(|t| t.name).filter(|n| *n != name).collect();
            assert_eq!(check(&body, rules(&others)).await, Err(Violation::FileType), "{name} not allowed");
            // The same bytes named and declared as another type.
            let (other_name, other_media) =
                if name == "pdf" { ("x.png", "image/png") } else { ("x.pdf", "application/pdf") };
            for declared in [other_media, "application/octet-stream"] {
                let body = Form::new().file(other_name, Some(declared), &data).end();
                assert_eq!(
                    check(&body, all_rules()).await,
                    Err(Violation::FileType),
                    "{name} bytes as {other_name} {declared}"
                );
            }
            // A raw body of the type.
            let kind = classify(Some(&HeaderValue::from_static(media)), &all_rules());
            assert_eq!(kind, Ok(BodyKind::Raw(ty(name))));
            if let Ok(kind) = kind {
                assert_eq!(check_kind(&data, kind, all_rules()).await, Ok(()), "raw {name}");
            }
        }
    }

    #[tokio::test]
    async fn declared_type_extension_and_content_must_agree() {
        let pdf = samples::pdf();
        let cases: &[(&str, Option<&str>)] = &[
            ("paper.pdf", Some("image/png")),
            ("paper.png", Some("application/pdf")),
            ("paper", Some("application/pdf")),
            ("paper.pdf", Some("not a media type")),
            ("paper.pdf", Some("application/x-msdownload")),
        ];
        for (filename, declared) in cases {
            let body = Form::new().file(filename, *declared, &pdf).end();
            assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType), "{filename} {declared:?}");
        }
        // An OLE2 file can be any of doc/xls/ppt, picked by name and type.
        let body = Form::new().file("a.xls", Some("application/msword"), &samples::ole2()).end();
        assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType));
    }

    #[tokio::test]
    async fn refuses_disguised_executable_before_the_end() {
        let exe = samples::exe();
        let body = Form::new().text("note", "hello").file("report.pdf", Some("application/pdf"), &exe).end();
        assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType));
        for seed in 1..6 {
            let o = run_body(body_of(split(&body, seed, 64)), multipart(), all_rules()).await;
            assert_eq!(o.err, Some(Violation::FileType));
            assert!(o.out.len() < body.len());
        }
        for (name, media) in [("notes.txt", "text/plain"), ("a.docx", "application/octet-stream")] {
            let body = Form::new().file(name, Some(media), &exe).end();
            assert_eq!(check(&body, all_rules()).await, Err(Violation::FileType), "{name}");
        }
        let raw = check_kind(&exe, BodyKind::Raw(ty("pdf")), all_rules()).await;
        assert_eq!(raw, Err(Violation::FileType));
    }

    #[tokio::test]
    async fn abort_property_for_violating_bodies() {
        let pdf = samples::pdf();
        let mut big = pdf.clone();
        big.resize(3000, b'x');
        let mut r = all_rules();
        r.max_file_size = 2000;
        r.max_files = 1;
        let bodies: Vec<(Vec<u8>, Violation)> = vec![
            (Form::new().file("a.pdf", None, &samples::exe()).end(), Violation::FileType),
            (Form::new().file("a.pdf.exe", None, &pdf).end(), Violation::FileName),
            (Form::new().file("a.pdf", None, &big).end(), Violation::FileTooLarge),
            (Form::new().file("a.pdf", None, &pdf).file("b.pdf", None, &pdf).end(), Violation::TooManyFiles),
            (Form::new().text("f", &"v".repeat(2000)).end(), Violation::FieldTooLarge),
            (Form::new().file("a.pdf", None, &pdf).0, Violation::Malformed),
            // The violation is only visible at the very end of the body.
            (Form::new().file("a.json", None, b"{\"a\":\x00}").end(), Violation::FileType),
        ];
        for (body, want) in bodies {
            for seed in 1..8 {
                let chunks = split(&body, seed, 1 + seed as usize * 50);
                let o = run_body(body_of(chunks), multipart(), r.clone()).await;
                assert_eq!(o.err, Some(want));
                assert!(o.out.len() < body.len(), "{want:?} yielded the whole body");
            }
        }
    }

    #[tokio::test]
    async fn filename_rules_apply_to_file_parts() {
        let pdf = samples::pdf();
        for bad in [
            "../../etc/passwd.pdf",
            "..\\x.pdf",
            "invoice.pdf.exe",
            "x.exe",
            "",
            "...",
            "a\u{202e}fdp.pdf",
            "x.pdf:stream",
        ] {
            let body = Form::new().file(bad, Some("application/pdf"), &pdf).end();
            assert_eq!(check(&body, all_rules()).await, Err(Violation::FileName), "{bad:?}");
        }
        let long = format!("{}.pdf", "a".repeat(252));
        let body = Form::new().file(&long, None, &pdf).end();
        assert_eq!(check(&body, all_rules()).await, Err(Violation::FileName));
        let body = Form::new().file("报告 (final).pdf", None, &pdf).end();
        assert_eq!(check(&body, all_rules()).await, Ok(()));
    }

    #[tokio::test]
    async fn max_files_limit() {
        let pdf = samples::pdf();
        let mut r = all_rules();
        r.max_files = 2;
        let two = Form::new().file("a.pdf", None, &pdf).text("x", "y").file("b.pdf", None, &pdf).end();
        assert_eq!(check(&two, r.clone()).await, Ok(()));
        let three = Form::new().file("a.pdf", None, &pdf).file("b.pdf", None, &pdf).file("c.pdf", None, &pdf).end();
        assert_eq!(check(&three, r.clone()).await, Err(Violation::TooManyFiles));
        r.max_files = 0;
        let one = Form::new().file("a.pdf", None, &pdf).end();
        assert_eq!(check(&one, r.clone()).await, Err(Violation::TooManyFiles));
        // Fields do not count.
        let fields = Form::new().text("a", "1").text("b", "2").end();
        assert_eq!(check(&fields, r).await, Ok(()));
    }

    #[tokio::test]
    async fn max_file_size_limit() {
        let mut r = all_rules();
        r.max_file_size = 4096;
        let mut data = samples::pdf();
        data.resize(4096, b' ');
        let body = Form::new().file("a.pdf", None, &data).end();
        assert_eq!(check(&body, r.clone()).await, Ok(()));
        data.push(b' ');
        let body = Form::new().file("a.pdf", None, &data).end();
        assert_eq!(check(&body, r.clone()).await, Err(Violation::FileTooLarge));
        // The limit is per file, not per request.
        data.pop();
        let body = Form::new().file("a.pdf", None, &data).file("b.pdf", None, &data).end();
        assert_eq!(check(&body, r).await, Ok(()));
    }

    #[tokio::test]
    async fn field_caps_allowlist_and_patterns() {
        let mut r = all_rules();
        r.max_field_bytes = 8;
        assert_eq!(check(&Form::new().text("a", "12345678").end(), r.clone()).await, Ok(()));
        assert_eq!(check(&Form::new().text("a", "123456789").end(), r.clone()).await, Err(Violation::FieldTooLarge));
        r.max_field_bytes = 64 * 1024;
        r.fields = vec![
            FieldRule::new("output_dir", None, Some("^[A-Za-z0-9_-]{1,64}$")).expect("pattern"),
            FieldRule::new("lang", Some(4), None).expect("rule"),
            FieldRule::new("mode", None, Some("a|ab")).expect("pattern"),
        ];
        let pdf = samples::pdf();
        let ok = Form::new()
            .text("output_dir", "run1")
            .text("lang", "en")
            .text("mode", "ab")
            .file("a.pdf", None, &pdf)
            .end();
        assert_eq!(check(&ok, r.clone()).await, Ok(()));
        let refused: Vec<(Vec<u8>, Violation)> = vec![
            (Form::new().text("output_dir", "../../etc").end(), Violation::FieldRejected),
            (Form::new().text("output_dir", "").end(), Violation::FieldRejected),
            (Form::new().text("output_dir", "run1\n").end(), Violation::FieldRejected),
            (Form::new().text("output_dir", &"a".repeat(65)).end(), Violation::FieldRejected),
            (Form::new().text("other", "x").end(), Violation::FieldRejected),
            (Form::new().text("lang", "en-GB").end(), Violation::FieldTooLarge),
            (Form::new().text("mode", "abc").end(), Violation::FieldRejected),
            (
                Form::new().part("Content-Disposition: form-data; name=\"output_dir\"", b"run\xff").end(),
                Violation::FieldRejected,
            ),
        ];
        for (body, want) in refused {
            assert_eq!(check(&body, r.clone()).await, Err(want));
        }
        // The allowlist is for non-file fields: a file part's name is free.
        let body =
            Form::new().part("Content-Disposition: form-data; name=\"whatever\"; filename=\"a.pdf\"", &pdf).end();
        assert_eq!(check(&body, r.clone()).await, Ok(()));
        // A pattern value is collected only up to the cap.
        let mut capped = r.clone();
        capped.max_field_bytes = 100;
        let body = Form::new().text("output_dir", &"a".repeat(5000)).end();
        let o = run_body(body_of(split(&body, 9, 10)), multipart(), capped).await;
        assert_eq!(o.err, Some(Violation::FieldTooLarge));
        assert!(o.hw.field <= 200, "field buffer {}", o.hw.field);
    }

    fn raw_body(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[tokio::test]
    async fn malformed_bodies() {
        let b = BOUNDARY.as_bytes();
        let pdf = samples::pdf();
        let good = Form::new().file("a.pdf", None, &pdf).end();
        let cd = b"Content-Disposition: form-data; name=\"f\"";
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty body", Vec::new()),
            ("truncated before closing boundary", good[..good.len() - 10].to_vec()),
            ("no closing boundary", Form::new().file("a.pdf", None, &pdf).0),
            ("truncated in headers", good[..60].to_vec()),
            ("only a preamble", b"hello".to_vec()),
            ("garbage headers", raw_body(&[b"--", b, b"\r\nthis is not a header\r\n\r\ndata\r\n--", b, b"--\r\n"])),
            (
                "header name with space",
                raw_body(&[b"--", b, b"\r\nContent Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--", b, b"--\r\n"]),
            ),
            (
                "no content-disposition",
                raw_body(&[b"--", b, b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--", b, b"--\r\n"]),
            ),
            ("no name", raw_body(&[b"--", b, b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--", b, b"--\r\n"])),
            (
                "not form-data",
                raw_body(&[b"--", b, b"\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nx\r\n--", b, b"--\r\n"]),
            ),
            ("no header at all", raw_body(&[b"--", b, b"\r\n\r\nx\r\n--", b, b"--\r\n"])),
            ("obs-fold", raw_body(&[b"--", b, b"\r\n", cd, b"\r\n X-A: b\r\n\r\nx\r\n--", b, b"--\r\n"])),
            ("bare LF", raw_body(&[b"--", b, b"\r\n", cd, b"\nX-A: b\r\n\r\nx\r\n--", b, b"--\r\n"])),
            (
                "unterminated quote",
                raw_body(&[b"--", b, b"\r\nContent-Disposition: form-data; name=\"f\r\n\r\nx\r\n--", b, b"--\r\n"]),
            ),
            (
                "boundary prefix in data",
                raw_body(&[b"--", b, b"\r\n", cd, b"\r\n\r\nx\r\n--", b, b"xyz\r\n--", b, b"--\r\n"]),
            ),
            ("preamble text", raw_body(&[b"preamble\r\n--", b, b"\r\n", cd, b"\r\n\r\nx\r\n--", b, b"--\r\n"])),
            ("transport padding", raw_body(&[b"--", b, b"  \r\n", cd, b"\r\n\r\nx\r\n--", b, b"--\r\n"])),
            (
                "text after closing boundary",
                raw_body(&[b"--", b, b"\r\n", cd, b"\r\n\r\nx\r\n--", b, b"--\r\nepilogue"]),
            ),
            ("wrong boundary", Form::new().text("a", "b").end().replace_boundary()),
            (
                "headers too large",
                raw_body(&[
                    b"--",
                    b,
                    b"\r\n",
                    cd,
                    b"\r\nX-Pad: ",
                    &vec![b'a'; MAX_PART_HEADER_BYTES],
                    b"\r\n\r\nx\r\n--",
                    b,
                    b"--\r\n",
                ]),
            ),
            ("header block never ends", raw_body(&[b"--", b, b"\r\n", cd, b"\r\nX-Pad: ", &vec![b'a'; 100_000]])),
            ("too many headers", {
                let mut h = cd.to_vec();
                for i in 0..20 {
                    h.extend_from_slice(format!("\r\nX-H{i}: v").as_bytes());
                }
                raw_body(&[b"--", b, b"\r\n", &h, b"\r\n\r\nx\r\n--", b, b"--\r\n"])
            }),
        ];
        for (what, body) in cases {
            assert_eq!(check(&body, all_rules()).await, Err(Violation::Malformed), "{what}");
        }
        // Leading CR/LF and a trailing CRLF (or none) are fine.
        let mut lead = b"\r\n".to_vec();
        lead.extend_from_slice(&good);
        assert_eq!(check(&lead, all_rules()).await, Ok(()));
        assert_eq!(check(&good[..good.len() - 2], all_rules()).await, Ok(()));
        // An empty form.
        assert_eq!(check(&Form::new().end(), all_rules()).await, Ok(()));
    }

    trait ReplaceBoundary: Sized {
        fn replace_with(self, boundary: &str) -> Vec<u8>;
        fn replace_boundary(self) -> Vec<u8> {
            self.replace_with("other-boundary")
        }
    }

    impl ReplaceBoundary for Vec<u8> {
        fn replace_with(self, boundary: &str) -> Vec<u8> {
            String::from_utf8_lossy(&self).replace(BOUNDARY, boundary).into_bytes()
        }
    }

    /// Bodies two multipart parsers could read differently are refused.
    #[tokio::test]
    async fn parser_differentials_are_refused() {
        let b = BOUNDARY.as_bytes();
        let exe = samples::exe();
        let part = |headers: &[u8]| raw_body(&[b"--", b, b"\r\n", headers, b"\r\n\r\n", &exe, b"\r\n--", b, b"--\r\n"]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "repeated content-disposition",
                part(b"Content-Disposition: form-data; name=\"file\"; filename=\"evil.exe\"\r\nContent-Disposition: form-data; name=\"note\""),
            ),
            (
                "repeated content-type",
                part(b"Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\ncontent-type: text/plain"),
            ),
            ("filename*", part(b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''evil.exe")),
            ("upper-case FILENAME", part(b"Content-Disposition: form-data; name=\"file\"; FILENAME=\"evil.exe\"")),
            ("filename inside a quoted value", part(b"Content-Disposition: form-data; name=\"a; filename=evil.exe\"")),
            ("backslash in a quoted name", part(b"Content-Disposition: form-data; name=\"a\\\"; filename=\"x.exe\"")),
            ("repeated name", part(b"Content-Disposition: form-data; name=\"a\"; name=\"b\"")),
            ("repeated filename", part(b"Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename=\"b.exe\"")),
            ("unquoted value with space", part(b"Content-Disposition: form-data; name=f x; filename=a.txt")),
            ("non-UTF-8 filename", part(b"Content-Disposition: form-data; name=\"f\"; filename=\"\xff.pdf\"")),
            ("base64 transfer encoding", part(b"Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Transfer-Encoding: base64")),
            (
                "part smuggled after an early close",
                raw_body(&[b"--", b, b"--\r\n--", b, b"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.exe\"\r\n\r\n", &exe, b"\r\n--", b, b"--\r\n"]),
            ),
        ];
        for (what, body) in cases {
            assert_eq!(check(&body, all_rules()).await, Err(Violation::Malformed), "{what}");
        }
        // Unquoted values that every parser reads the same are fine.
        let body = Form::new().part("Content-Disposition: form-data; name=f; filename=a.pdf", &samples::pdf()).end();
        assert_eq!(check(&body, all_rules()).await, Ok(()));
    }

    #[tokio::test]
    async fn raw_bodies() {
        let pdf = samples::pdf();
        assert_eq!(check_kind(&pdf, BodyKind::Raw(ty("pdf")), all_rules()).await, Ok(()));
        assert_eq!(check_kind(&samples::png(), BodyKind::Raw(ty("pdf")), all_rules()).await, Err(Violation::FileType));
        // Nothing at all is not a PDF.
        let o = run_body(body_of(Vec::new()), BodyKind::Raw(ty("pdf")), all_rules()).await;
        assert_eq!(o.err, Some(Violation::FileType));
        // A large raw text body: decided at the window, then streamed.
        let text = "line of text\n".repeat(20_000);
        assert_eq!(check_kind(text.as_bytes(), BodyKind::Raw(ty("txt")), all_rules()).await, Ok(()));
        let mut bad = text.into_bytes();
        bad[SNIFF_WINDOW - 10] = 0;
        assert_eq!(check_kind(&bad, BodyKind::Raw(ty("txt")), all_rules()).await, Err(Violation::FileType));
    }

    #[tokio::test]
    async fn identity_over_random_splits() {
        let mut long_text = String::new();
        while long_text.len() < SNIFF_WINDOW + 5000 {
            long_text.push_str("Ünïcode text — with multi-byte characters ✓ and CR LF\r\n");
        }
        let mut pdf = samples::pdf();
        pdf.extend(std::iter::repeat_n(b'\r', 300));
        pdf.extend_from_slice(b"\r\n-\r\n--\r\n---");
        pdf.extend_from_slice(&BOUNDARY.as_bytes()[..BOUNDARY.len() - 1]);
        pdf.extend_from_slice(b"\n%%EOF\n");
        let body = Form::new()
            .text("output_dir", "run1")
            .file("a.pdf", Some("application/pdf"), &pdf)
            .file("b.png", Some("image/png"), &samples::png())
            .text("empty", "")
            .file("notes.txt", Some("text/plain"), long_text.as_bytes())
            .file("c.docx.json", None, &samples::json())
            .end();
        for seed in 1..=12u64 {
            for max in [1usize, 3, 16, 200, 70_000] {
                let chunks = split(&body, seed * 7919, max);
                let o = run_body(body_of(chunks), multipart(), all_rules()).await;
                assert_eq!(o.err, None, "seed {seed} max {max}");
                assert_eq!(o.out, body, "seed {seed} max {max}");
                assert!(o.hw.sniff <= SNIFF_WINDOW);
            }
        }
    }

    #[tokio::test]
    async fn unusual_boundary_characters() {
        let boundary = "x y'()+_,-./:=?z";
        let ct = HeaderValue::from_str(&format!("multipart/form-data; boundary=\"{boundary}\"")).expect("header value");
        let kind = classify(Some(&ct), &all_rules()).expect("multipart");
        let body = Form::new().file("a.pdf", None, &samples::pdf()).text("n", "v").end().replace_with(boundary);
        assert_eq!(check_kind(&body, kind, all_rules()).await, Ok(()));
    }

    #[tokio::test]
    async fn trailers_pass_through() {
        let body = Form::new().file("a.pdf", None, &samples::pdf()).end();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> =
            split(&body, 5, 40).into_iter().map(|c| Ok(Frame::data(c))).collect();
        frames.push(Ok(Frame::trailers(trailers.clone())));
        let inner = StreamBody::new(futures_util::stream::iter(frames));
        let o = run_body(inner, multipart(), all_rules()).await;
        assert_eq!(o.err, None);
        assert_eq!(o.out, body);
        assert_eq!(o.trailers, Some(trailers));
    }

    /// A body that is pending once before every frame, waking its task.
    struct Yielding<B> {
        inner: B,
        ready: bool,
    }

    impl<B: Body + Unpin> Body for Yielding<B> {
        type Data = B::Data;
        type Error = B::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
            if !self.ready {
                self.ready = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.ready = false;
            Pin::new(&mut self.inner).poll_frame(cx)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_inner_body() {
        let body = Form::new().text("a", "b").file("a.pdf", None, &samples::pdf()).end();
        let inner = Yielding { inner: body_of(split(&body, 11, 13)), ready: false };
        let o = tokio::spawn(run_body(inner, multipart(), all_rules())).await.expect("task");
        assert_eq!(o.err, None);
        assert_eq!(o.out, body);
        let bad = Form::new().file("a.pdf", None, &samples::exe()).end();
        let inner = Yielding { inner: body_of(split(&bad, 11, 13)), ready: false };
        let o = run_body(inner, multipart(), all_rules()).await;
        assert_eq!(o.err, Some(Violation::FileType));
    }

    #[tokio::test]
    async fn inner_errors_pass_through() {
        let body = Form::new().file("a.pdf", None, &samples::pdf()).end();
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::copy_from_slice(&body[..50]))),
            Ok(Frame::data(Bytes::copy_from_slice(&body[50..100]))),
            Err(std::io::Error::other("client went away")),
        ];
        let mut ib =
            inspect(StreamBody::new(futures_util::stream::iter(frames)), multipart(), Arc::new(all_rules()), None);
        let first = ib.frame().await;
        assert!(matches!(first, Some(Ok(_))));
        let err = ib.frame().await;
        assert!(matches!(err, Some(Err(InspectError::Inner(_)))));
        assert!(matches!(ib.frame().await, Some(Err(InspectError::Inner(_)))));
    }

    #[test]
    fn size_hint_passes_through() {
        let body = Form::new().file("a.pdf", None, &samples::pdf()).end();
        let len = body.len() as u64;
        let inner = http_body_util::Full::new(Bytes::from(body));
        let ib = inspect(inner, multipart(), Arc::new(all_rules()), None);
        assert_eq!(ib.size_hint().exact(), Some(len));
        assert!(!ib.is_end_stream());
    }

    #[test]
    fn inspect_body_is_send_and_sync() {
        fn check<T: Send + Sync + Unpin + 'static>() {}
        check::<InspectBody<http_body_util::Full<Bytes>>>();
    }

    /// A multipart body generated on the fly: a field, then one file part
    /// made of `chunks` chunks taken in turn from `ring` (the head frame ends
    /// with the first bytes of the file, `magic` included).
    struct Generated {
        head: Option<Bytes>,
        ring: Arc<Vec<Bytes>>,
        next: usize,
        chunks: usize,
        tail: Option<Bytes>,
    }

    const CHUNK: usize = 64 * 1024;

    /// `n` distinct chunks of `len` bytes of lowercase text lines.
    fn text_ring(n: usize, len: usize) -> Arc<Vec<Bytes>> {
        let chunks = (0..n)
            .map(|k| {
                let v: Vec<u8> =
                    (0..len).map(|i| if i % 64 == 63 { b'\n' } else { b'a' + ((i + k) % 26) as u8 }).collect();
                Bytes::from(v)
            })
            .collect();
        Arc::new(chunks)
    }

    impl Generated {
        fn new(filename: &str, magic: &[u8], ring: Arc<Vec<Bytes>>, chunks: usize) -> Self {
            let mut head = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"output_dir\"\r\n\r\nrun1\r\n\
                 --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .into_bytes();
            // The head frame ends inside the file, so the sniff buffer
            // has to collect the start of the file across chunks.
            head.extend_from_slice(magic);
            head.extend_from_slice(b"first line\n");
            Self {
                head: Some(Bytes::from(head)),
                ring,
                next: 0,
                chunks,
                tail: Some(Bytes::from(format!("\n%%EOF\r\n--{BOUNDARY}--\r\n"))),
            }
        }

        fn next_bytes(&mut self) -> Option<Bytes> {
            if let Some(h) = self.head.take() {
                return Some(h);
            }
            if self.next < self.chunks && !self.ring.is_empty() {
                let b = self.ring[self.next % self.ring.len()].clone();
                self.next += 1;
                return Some(b);
            }
            self.tail.take()
        }
    }

    impl Body for Generated {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.get_mut().next_bytes().map(|b| Ok(Frame::data(b))))
        }
    }

    fn big_rules() -> UploadRules {
        let mut r = all_rules();
        r.max_file_size = 1 << 30;
        r.fields = vec![FieldRule::new("output_dir", None, Some("[A-Za-z0-9_-]{1,64}")).expect("pattern")];
        r
    }

    /// Streams a generated body through the inspector, comparing every
    /// yielded chunk with the generator's; returns (bytes, high water).
    async fn stream_generated(filename: &str, magic: &[u8], total: usize) -> (u64, HighWater) {
        let ring = text_ring(1, CHUNK);
        let mut expected = Generated::new(filename, magic, ring.clone(), total / CHUNK);
        let inner = Generated::new(filename, magic, ring, total / CHUNK);
        let mut ib = inspect(inner, multipart(), Arc::new(big_rules()), None);
        let mut bytes = 0u64;
        let mut hw = HighWater::default();
        while let Some(frame) = ib.frame().await {
            let data = match frame {
                Ok(f) => f.into_data().expect("data frame"),
                Err(e) => panic!("refused: {e}"),
            };
            assert_eq!(Some(&data), expected.next_bytes().as_ref());
            bytes += data.len() as u64;
            hw.merge(ib.high_water());
        }
        assert_eq!(expected.next_bytes(), None);
        (bytes, hw)
    }

    #[tokio::test]
    async fn large_body_streams_with_bounded_buffers() {
        // A text file: its sniff buffer fills the whole window.
        let (bytes, hw) = stream_generated("big.txt", b"", 64 << 20).await;
        assert!(bytes > 64 << 20);
        assert!(hw.sniff <= SNIFF_WINDOW, "sniff high water {}", hw.sniff);
        assert!(hw.sniff > 0);
        assert!(hw.headers <= MAX_PART_HEADER_BYTES + 1);
        // A PDF: decided within the first bytes.
        let (_, hw) = stream_generated("big.pdf", b"%PDF-1.7\n", 8 << 20).await;
        assert!(hw.sniff <= 1024, "sniff high water {}", hw.sniff);
    }

    #[tokio::test]
    async fn tiny_chunks_keep_sniffing_bounded() {
        let text = "x".repeat(SNIFF_WINDOW + 3000);
        let body = Form::new().file("t.txt", None, text.as_bytes()).end();
        let start = Instant::now();
        let o = run_body(body_of(split(&body, 3, 1)), multipart(), all_rules()).await;
        assert_eq!(o.err, None);
        assert_eq!(o.out, body);
        assert!(o.hw.sniff <= SNIFF_WINDOW);
        assert!(start.elapsed().as_secs() < 60);
    }

    /// Prints the inspector's throughput on a 64 MiB multipart upload: one
    /// PDF part, in 64 KiB and in 16 KiB chunks drawn from 48 MiB of distinct
    /// chunks (more than the L3 cache), best of three runs.
    #[tokio::test]
    async fn throughput_64mib_multipart() {
        const TOTAL: usize = 64 << 20;
        for chunk in [64 * 1024, 16 * 1024] {
            let ring = text_ring((48 << 20) / chunk, chunk);
            let mut best = f64::MAX;
            let mut bytes = 0u64;
            for _ in 0..3 {
                let start = Instant::now();
                let inner = Generated::new("big.pdf", b"%PDF-1.7\n", ring.clone(), TOTAL / chunk);
                let mut ib = inspect(inner, multipart(), Arc::new(big_rules()), None);
                bytes = 0;
                while let Some(frame) = ib.frame().await {
                    bytes += frame.expect("accepted").into_data().map_or(0, |d| d.len() as u64);
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            assert!(bytes >= TOTAL as u64);
            let mib = bytes as f64 / (1024.0 * 1024.0);
            println!(
                "upload inspection, {} KiB chunks: {mib:.0} MiB in {best:.4} s = {:.0} MiB/s",
                chunk / 1024,
                mib / best.max(1e-9),
            );
        }
    }

    #[tokio::test]
    async fn hostile_bytes_never_panic() {
        let pdf = samples::pdf();
        let base = Form::new()
            .text("output_dir", "run1")
            .file("a.pdf", Some("application/pdf"), &pdf)
            .file("b.json", None, &samples::json())
            .end();
        let rounds: u64 = std::env::var("UPLOAD_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..rounds {
            let mut body = base.clone();
            let edits = 1 + xorshift(&mut seed) % 4;
            for _ in 0..edits {
                let at = xorshift(&mut seed) as usize % body.len().max(1);
                match xorshift(&mut seed) % 5 {
                    0 => body[at] = xorshift(&mut seed) as u8,
                    1 => {
                        body.truncate(at);
                    }
                    2 => {
                        let insert: &[u8] = match xorshift(&mut seed) % 4 {
                            0 => b"\r\n",
                            1 => b"\r\n\r\n",
                            2 => b"--",
                            _ => BOUNDARY.as_bytes(),
                        };
                        body.splice(at..at, insert.iter().copied());
                    }
                    3 => {
                        body.remove(at.min(body.len().saturating_sub(1)));
                    }
                    _ => body[at] = b"\r\n-\";=\\"[xorshift(&mut seed) as usize % 7],
                }
                if body.is_empty() {
                    break;
                }
            }
            let mut r = all_rules();
            r.fields = vec![FieldRule::new("output_dir", Some(16), Some("[a-z0-9]+")).expect("pattern")];
            let chunks = split(&body, round + 1, 1 + round as usize % 50);
            let o = run_body(body_of(chunks), multipart(), r).await;
            match o.err {
                None => assert_eq!(o.out, body),
                Some(_) => assert!(o.out.len() < body.len() || body.is_empty()),
            }
        }
    }
}
