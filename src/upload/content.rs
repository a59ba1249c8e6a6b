//! The content checks of one file (a file part or a raw body), from its
//! first byte to its last.
//!
//! A file is checked in two stages while it streams:
//!
//! 1. Its first bytes (`Sniffer`, at most [`SNIFF_WINDOW`]): the magic
//!    bytes and first structural fields of its type
//!    ([`FileType::check_content`]). A mismatch refuses the file at once.
//! 2. Its whole content, by the type's family, decided at the end of the
//!    file: binary types by their end (see `tail.rs`), ZIP-based documents by
//!    their central directory (`zip.rs`), OLE2 documents by their directory
//!    (`ole2.rs`), text by every byte (`tail.rs`).
//!
//! `FileCheck::push` and `FileCheck::finish` return the name of the
//! failed check (never the content) for the log.
//!
//! # Memory
//!
//! Per file: the head buffer (at most [`SNIFF_WINDOW`], dropped once the
//! head is decided) and, by family: binary types a tail of [`TAIL_WINDOW`]
//! plus one chunk; ZIP-based types a tail of [`zip_tail_bound`] plus one
//! chunk, at most [`zip::MAX_LOCAL_HEADERS`] local header records (48 bytes
//! each), the captured `[Content_Types].xml` (at most [`zip::MAX_CAPTURE`];
//! at the end the tail is copied once into one buffer and the captured entry
//! inflated to at most [`zip::MAX_INFLATED`]); OLE2 types FAT sectors up to
//! 1/64 of the inspection window and directory sectors up to
//! [`ole2::MAX_DIRECTORY_BYTES`]; text 3 bytes.

use bytes::Bytes;

use super::ole2::{self, Ole2Scan};
use super::tail::{self, Tail, Utf8Stream, TAIL_WINDOW};
use super::types::{Family, FileType, Ooxml, Sniff, SNIFF_WINDOW};
use super::zip::{self, CentralDirectory, LocalScan};

/// The name of the check that refused a file.
pub type Refusal = &'static str;

/// The default `upload.inspect_window`: how far into a file moat looks for a
/// structure it needs (the OLE2 directory). LibreOffice and Office write the
/// directory of a compound file near its end, so the window must cover whole
/// ordinary files.
pub const DEFAULT_INSPECT_WINDOW: u64 = 64 << 20;

/// The smallest `upload.inspect_window` accepted.
pub const MIN_INSPECT_WINDOW: u64 = 8 << 20;

/// The tail kept of a ZIP-based file: its central directory must fit.
/// 1/64 of the inspection window (1 MiB at the default).
pub fn zip_tail_bound(window: u64) -> usize {
    usize::try_from(window / 64).unwrap_or(usize::MAX).max(TAIL_WINDOW)
}

/// The sniff buffer is evaluated first at this many bytes, then each time its
/// length doubles (and at the window, and at the end of the part), so a
/// client sending tiny chunks cannot make the checks quadratic.
const FIRST_EVAL: usize = 32;

/// Collects the first bytes of a file until its type is decided.
pub(crate) struct Sniffer {
    /// Types the part may be, by declared type and extension.
    candidates: Vec<&'static FileType>,
    buf: Vec<u8>,
    next_eval: usize,
    decided: bool,
    pub(crate) high_water: usize,
}

/// Runs the candidates' checks: `Some(true)` on a match, `Some(false)` when
/// none can match, `None` when more bytes are needed.
fn decide(candidates: &[&'static FileType], prefix: &[u8], complete: bool) -> Option<bool> {
    let at_limit = complete || prefix.len() >= SNIFF_WINDOW;
    let mut pending = false;
    for t in candidates {
        match t.check_content(prefix, complete) {
            Sniff::Match => return Some(true),
            Sniff::NoMatch => {}
            Sniff::NeedMore => pending |= !at_limit,
        }
    }
    if pending {
        None
    } else {
        Some(false)
    }
}

impl Sniffer {
    pub(crate) fn new(candidates: Vec<&'static FileType>) -> Self {
        Self { candidates, buf: Vec::new(), next_eval: FIRST_EVAL, decided: false, high_water: 0 }
    }

    fn settle(&mut self, outcome: Option<bool>) -> Option<Result<(), ()>> {
        match outcome {
            None => None,
            Some(ok) => {
                self.decided = true;
                self.buf = Vec::new();
                Some(if ok { Ok(()) } else { Err(()) })
            }
        }
    }

    /// Feeds more content; `Err` when the content cannot be any candidate.
    ///
    /// Bytes are copied only up to the next evaluation point, so a type
    /// decided by its first bytes never buffers more than those.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> Result<(), ()> {
        if self.decided || data.is_empty() {
            return Ok(());
        }
        if self.buf.is_empty() && data.len() >= self.next_eval {
            // Decide on the caller's bytes without copying when possible.
            let prefix = &data[..data.len().min(SNIFF_WINDOW)];
            let outcome = decide(&self.candidates, prefix, false);
            if let Some(r) = self.settle(outcome) {
                return r;
            }
            self.next_eval = prefix.len().saturating_mul(2);
        }
        // Invariant: `buf.len() < next_eval` while undecided.
        while !data.is_empty() {
            let target = self.next_eval.min(SNIFF_WINDOW);
            let take = target.saturating_sub(self.buf.len()).min(data.len());
            extend_bounded(&mut self.buf, &data[..take], SNIFF_WINDOW);
            self.high_water = self.high_water.max(self.buf.capacity());
            data = &data[take..];
            if self.buf.len() < target {
                break;
            }
            self.next_eval = self.buf.len().saturating_mul(2);
            let outcome = decide(&self.candidates, &self.buf, false);
            if let Some(r) = self.settle(outcome) {
                return r;
            }
        }
        Ok(())
    }

    /// The content ended; `Err` unless it matched a candidate.
    pub(crate) fn finish(&mut self) -> Result<(), ()> {
        if self.decided {
            return Ok(());
        }
        let outcome = decide(&self.candidates, &self.buf, true);
        self.settle(Some(outcome == Some(true))).unwrap_or(Err(()))
    }
}

/// Appends `data` to `buf`, growing its capacity geometrically (so tiny
/// appends stay amortized) but never past `limit` unless the data needs it.
pub(crate) fn extend_bounded(buf: &mut Vec<u8>, data: &[u8], limit: usize) {
    let need = buf.len().saturating_add(data.len());
    if need > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).clamp(need, limit.max(need));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(data);
}

/// The whole-content state of one file, by family.
enum Deep {
    Tail(tail::End, Tail),
    Ooxml(&'static Ooxml, Box<LocalScan>, Tail),
    Odf(&'static [u8], Box<LocalScan>, Tail),
    Ole2(&'static ole2::Ole2Kind, Box<Ole2Scan>),
    Text(Utf8Stream),
}

/// Every check of one file, from its first byte to its last.
pub(crate) struct FileCheck {
    head: Sniffer,
    /// The first 16 bytes (size fields of some formats).
    first: Vec<u8>,
    deep: Deep,
    macros: bool,
}

impl FileCheck {
    /// The checks of a file of type `ty`. `macros` allows macro and active
    /// content (the route lists the macro-enabled type of the family);
    /// `window` is the route's `upload.inspect_window`.
    pub(crate) fn new(ty: &'static FileType, macros: bool, window: u64) -> Self {
        let deep = match ty.family() {
            Family::Tail(end) => Deep::Tail(end, Tail::new(TAIL_WINDOW)),
            Family::Ooxml(o) => Deep::Ooxml(
                o,
                Box::new(LocalScan::new(Some(b"[Content_Types].xml"))),
                Tail::new(zip_tail_bound(window)),
            ),
            Family::Odf(m) => Deep::Odf(m, Box::new(LocalScan::new(None)), Tail::new(zip_tail_bound(window))),
            Family::Ole2(k) => Deep::Ole2(k, Box::new(Ole2Scan::new(window))),
            Family::Text => Deep::Text(Utf8Stream::default()),
        };
        Self { head: Sniffer::new(vec![ty]), first: Vec::new(), deep, macros }
    }

    pub(crate) fn head_high_water(&self) -> usize {
        self.head.high_water
    }

    /// Feeds the next bytes of the file.
    pub(crate) fn push(&mut self, data: &Bytes) -> Result<(), Refusal> {
        self.head.push(data).map_err(|()| "head: magic bytes do not match the type")?;
        if self.first.len() < 16 {
            let take = (16 - self.first.len()).min(data.len());
            self.first.extend_from_slice(&data[..take]);
        }
        match &mut self.deep {
            Deep::Tail(_, t) => t.push(data),
            Deep::Ooxml(_, scan, t) | Deep::Odf(_, scan, t) => {
                scan.push(data)?;
                t.push(data);
            }
            Deep::Ole2(_, scan) => scan.push(data)?,
            Deep::Text(u) => u.push(data)?,
        }
        Ok(())
    }

    /// The file ended: the final verdict.
    pub(crate) fn finish(&mut self) -> Result<(), Refusal> {
        self.head.finish().map_err(|()| "head: magic bytes do not match the type")?;
        let macros = self.macros;
        match &self.deep {
            Deep::Tail(end, t) => tail::check_end(*end, &t.last(TAIL_WINDOW), &self.first, t.total()),
            Deep::Ooxml(o, scan, t) => {
                let cd = read_zip(scan, t)?;
                check_ooxml(o, &cd, scan, macros)
            }
            Deep::Odf(mime, scan, t) => {
                let cd = read_zip(scan, t)?;
                check_odf(mime, &cd, macros)
            }
            Deep::Ole2(kind, scan) => scan.finish(kind, macros),
            Deep::Text(u) => u.finish(),
        }
    }
}

fn read_zip(scan: &LocalScan, t: &Tail) -> Result<CentralDirectory, Refusal> {
    let (bytes, start) = t.contiguous();
    let cd = CentralDirectory::parse(&bytes, start)?;
    zip::check_entries(&cd)?;
    zip::verify_layout(&cd, scan)?;
    Ok(cd)
}

/// Content types (lowercase substrings) of macro and active content.
const ACTIVE_CONTENT_TYPES: [&str; 6] = ["macroenabled", "vbaproject", "vbadata", "macrosheet", "activex", "oleobject"];

/// Whether an entry name is a macro or active-content part.
fn active_part(name: &[u8]) -> bool {
    let n = name.to_ascii_lowercase();
    let has = |s: &[u8]| memchr::memmem::find(&n, s).is_some();
    n.ends_with(b"vbaproject.bin")
        || n.ends_with(b"vbadata.xml")
        || has(b"/activex/")
        || has(b"/macrosheets/")
        || (has(b"/embeddings/") && n.ends_with(b".bin"))
}

fn check_ooxml(o: &Ooxml, cd: &CentralDirectory, scan: &LocalScan, macros: bool) -> Result<(), Refusal> {
    let entry = cd.find(b"[Content_Types].xml").ok_or("ooxml: no [Content_Types].xml")?;
    let xml = zip::captured(scan, entry)?;
    let types = zip::content_types(&xml);
    let main = types.iter().find(|(_, ct, is_override)| *is_override && o.main.iter().any(|m| ct == m.as_bytes()));
    let Some((part, _, _)) = main else {
        let macro_main = types.iter().any(|(_, ct, _)| ct == o.macro_main.as_bytes());
        return Err(if macro_main {
            "ooxml: macro-enabled main part"
        } else {
            "ooxml: main part of the type not declared"
        });
    };
    if cd.find(part).is_none() {
        return Err("ooxml: declared main part missing");
    }
    if !macros {
        if types
            .iter()
            .any(|(_, ct, _)| ACTIVE_CONTENT_TYPES.iter().any(|a| memchr::memmem::find(ct, a.as_bytes()).is_some()))
        {
            return Err("ooxml: macro or active content type");
        }
        if cd.entries.iter().any(|e| active_part(&e.name)) {
            return Err("ooxml: macro or active content part");
        }
    }
    Ok(())
}

fn check_odf(mime: &[u8], cd: &CentralDirectory, macros: bool) -> Result<(), Refusal> {
    let first = cd.entries.iter().min_by_key(|e| e.offset).ok_or("odf: empty package")?;
    if first.offset != 0
        || first.name != b"mimetype"
        || first.method != 0
        || first.csize != mime.len() as u64
        || first.usize != mime.len() as u64
    {
        return Err("odf: first entry is not the stored mimetype");
    }
    if cd.find(b"META-INF/manifest.xml").is_none() {
        return Err("odf: no META-INF/manifest.xml");
    }
    if !macros
        && cd
            .entries
            .iter()
            .any(|e| zip::starts_with_ci(&e.name, b"Basic/") || zip::starts_with_ci(&e.name, b"Scripts/"))
    {
        return Err("odf: macro storage");
    }
    Ok(())
}

/// Checks a whole file in one call (for tests and tools): `Ok` or the
/// failed check.
pub fn check_file(ty: &'static FileType, macros: bool, window: u64, chunks: &[Bytes]) -> Result<(), Refusal> {
    let mut c = FileCheck::new(ty, macros, window);
    for chunk in chunks {
        c.push(chunk)?;
    }
    c.finish()
}
