//! Upload inspection for routes that front document-upload APIs: the
//! engine (what the bytes of an upload are). The stack's layer that applies
//! it to a route's requests is `policy/upload.rs`.
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
//! request) at the first [`Violation`]; the policy answers with
//! [`Violation::status`] and [`Violation::reason`] and logs the name of the
//! check that failed (never the content). The last chunk is held back until
//! the whole body is accepted, so an upstream never receives a complete
//! violating body.
//!
//! A file is accepted only when moat can confirm its type as the real reader
//! of that type would, within moat's bounds; when it cannot (a structure
//! past the inspection window, a central directory larger than the tail
//! bound, a parser differential), it is refused: inspection fails closed.
//!
//! * [`types`]: the file types moat knows and the checks of their first bytes.
//! * [`content`]: the checks of one file from its first byte to its last.
//! * [`zip`]: the central-directory reader for ZIP-based documents.
//! * [`ole2`]: the directory reader for OLE2 documents (doc, xls, ppt).
//! * [`tail`]: end checks of binary types, whole-content check of text.
//! * [`filename`]: the file name rules.
//! * [`inspect`](mod@inspect): the streaming multipart inspector.
//!
//! # Memory per upload
//!
//! Bounded whatever the file size, with `W` the route's `inspect_window`
//! (64 MiB by default) and `C` one body chunk: one held chunk, `multer`'s
//! buffer (one chunk plus at most 16 KiB of part headers), and for the one
//! file part being read:
//!
//! * every type: at most 64 KiB of head, dropped once its type is decided;
//! * PDF and images: a 66 KiB tail (plus one chunk);
//! * ZIP-based documents: a tail of `W / 64` plus one chunk, copied once at
//!   the end of the part; at most 8192 local-header records (48 bytes each,
//!   and as many central-directory entries); 256 KiB of captured
//!   `[Content_Types].xml`, inflated to at most 1 MiB; at the end, the
//!   directory's entries and their names (lowercased once for the duplicate
//!   check). About `4 × W / 64 + 3.5 MiB + 2 C` at the end of the part;
//! * OLE2 documents: FAT sectors up to `W / 64`, 1 MiB of directory
//!   sectors, the 512-byte header and one sector being assembled;
//! * text: 3 bytes.
//!
//! With the default window that is at most about 8 MiB per upload (most of
//! it only for the moment a ZIP-based part ends, a few hundred KiB while a
//! file streams); each MiB of window above the default adds about 64 KiB.

pub mod content;
pub mod filename;
pub mod inspect;
pub mod ole2;
pub mod tail;
pub mod types;
pub mod zip;

pub use content::{check_file, DEFAULT_INSPECT_WINDOW, MIN_INSPECT_WINDOW};
pub use filename::{check_filename, extension, NameProblem};
pub use inspect::{classify, inspect, BodyKind, FieldRule, InspectBody, InspectError, UploadRules, Violation};
pub use types::{lookup, FileType, Sniff, OCTET_STREAM, SNIFF_WINDOW};

/// The little-endian `u16` at `at`, if the bytes are there (zip and OLE2
/// structures are little-endian).
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// The little-endian `u32` at `at`, if the bytes are there.
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
