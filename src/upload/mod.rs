//! Upload inspection for routes that front document-upload APIs.
//!
//! # Threat
//!
//! Document-AI upstreams (MinerU-API, FastAPI services) accept files from
//! clients and parse or store them. A client can disguise an executable or
//! archive as a document (`report.pdf` holding a Windows executable, a Java
//! archive named `.docx`), send a polyglot, pick a file name that escapes the
//! upstream's storage directory, send more or larger parts than the upstream
//! expects, or send form fields the upstream turns into paths. It can also
//! shape the multipart framing so that the proxy and the upstream read it
//! differently.
//!
//! # What this module does
//!
//! For a route configured with
//! `upload = { types = [...], max_files, max_file_size, max_field_bytes,
//! fields = [...] }`, the proxy calls [`classify`] on the request
//! `Content-Type` and wraps the request body with [`inspect()`]. The wrapper
//! checks the body while it streams to the upstream, without buffering whole
//! uploads, and fails the body (so the HTTP client aborts the upstream
//! request) at the first [`Violation`], which it records in a
//! [`VerdictSlot`] for the proxy to answer with [`Violation::status`] and
//! [`Violation::reason`]. The last chunk is held back until the whole body is
//! accepted, so an upstream never receives a complete violating body.
//!
//! * [`types`]: the file types moat knows and their content checks.
//! * [`filename`]: the file name rules.
//! * [`inspect`](mod@inspect): the streaming inspector.

pub mod filename;
pub mod inspect;
pub mod types;

pub use filename::{check_filename, extension, NameProblem};
pub use inspect::{
    classify, inspect, BodyKind, FieldRule, InspectBody, InspectError, UploadRules, VerdictSlot, Violation,
};
pub use types::{lookup, FileType, Sniff, OCTET_STREAM, SNIFF_WINDOW};
