//! The table of upload file types moat knows, and their content checks.
//!
//! # Threat
//!
//! An upload API that accepts "documents" is an easy way to get arbitrary
//! bytes onto a server: a Windows executable renamed `report.pdf`, a Java
//! archive renamed `invoice.docx`, an installer renamed `sheet.xls`, or a
//! polyglot whose first bytes pretend to be one thing while a parser that
//! searches further finds another. The route's `upload.types` list names the
//! types an operator allows; this module says, for each name, which declared
//! media types and file extensions belong to it, and how its first bytes must
//! look.
//!
//! # How the content check works
//!
//! [`FileType::check_content`] looks at a prefix of the content and answers
//! [`Sniff::Match`], [`Sniff::NoMatch`] or [`Sniff::NeedMore`]. It never needs
//! more than [`SNIFF_WINDOW`] bytes: once the prefix reaches the window, or the
//! caller says the prefix is the whole content, the answer is always a
//! decision. Magic numbers are checked at fixed offsets (offset 0 in every
//! case), never searched for, so "anything, then `%PDF-`" is not a PDF.
//!
//! * Binary formats (pdf, png, jpeg, gif, webp, tiff, bmp) use their magic
//!   bytes plus the first structural fields (PDF version, PNG `IHDR`, WebP
//!   `VP8` chunk, TIFF first-IFD offset, BMP DIB header size). `infer` is used
//!   as the first gate where its matcher is a plain signature compare; the
//!   extra fields are checked here because `infer` alone accepts e.g. any
//!   buffer starting with `BM` as a bitmap and finds `%PDF` anywhere in the
//!   first KiB.
//! * OOXML (docx, pptx, xlsx, docm, xlsm, pptm): a zip whose first local
//!   header is well-formed. Which entries the package holds (its
//!   `[Content_Types].xml` and main part, no Java archive, macro or active
//!   content) is decided at the end of the file from its central directory
//!   (see `zip.rs` and `content.rs`), as Office and Java decide.
//! * ODF (odt, ods, odp): a zip whose first entry is `mimetype`, stored,
//!   without an extra field, holding exactly the type's media type; the rest
//!   is decided from the central directory.
//! * doc, xls, ppt: the OLE2 compound-file header (magic `D0 CF 11 E0 A1 B1
//!   1A E1`, byte-order mark `FE FF`, sector shift 9 or 12). The three cannot
//!   be told apart by their header, so an OLE2 file passes the first-bytes
//!   check of all three; the extension and declared media type pick the
//!   type, and its directory (read while the file streams, see `ole2.rs`)
//!   must hold that type's main stream and no installer class id.
//! * Text (txt, csv, md, json, html): valid UTF-8 (an optional UTF-8 BOM is
//!   allowed; a multi-byte sequence cut by the end of an incomplete prefix is
//!   fine) without NUL bytes and without a binary magic at the start (`MZ`,
//!   `\x7fELF`, zip, `%PDF-`, Mach-O, Java class). JSON must start with `{` or
//!   `[` and HTML with `<` after whitespace. Text in UTF-16 is refused.
//!
//! # Beyond the first bytes
//!
//! This module checks the head of the content only. A file can be a valid
//! instance of its type at the start and carry another format further in (a
//! zip appended to a PDF, an executable after the first 64 KiB of a JSON
//! body); the checks of the whole file, up to its last byte, are in
//! `content.rs`.
//!
//! # Media types
//!
//! Browsers often label a file part `application/octet-stream` when the OS
//! has no mapping for the extension. The inspector therefore accepts
//! [`OCTET_STREAM`] as the declared type of any file part; the extension and
//! the content check must still agree on one allowed type. Raw (non-multipart)
//! request bodies must carry one of the type's own media types.
//! `application/vnd.ms-excel` is listed for csv as well as xls because
//! Windows browsers with Excel installed send it for `.csv` files, and
//! `text/plain` is listed for csv and md (after their own types) because many
//! clients label any text file that way. A raw body whose media type several
//! allowed types list goes to the type that lists it first (`text/plain` is
//! txt, `application/vnd.ms-excel` is xls).

use super::ole2::{self, Ole2Kind};
use super::tail::End;

/// How many leading bytes of a file the content checks may need, at most.
///
/// At this many bytes (or at the end of the content) every check decides.
pub const SNIFF_WINDOW: usize = 64 * 1024;

/// The generic binary media type; accepted as the declared type of a file
/// part (the extension and content must still agree on one allowed type).
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The answer of a content check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// The prefix is consistent with the type.
    Match,
    /// The prefix is not this type.
    NoMatch,
    /// The prefix is too short to decide and the content goes on.
    NeedMore,
}

/// Which text flavour a text type wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Plain,
    Json,
    Html,
}

/// The content check behind a [`FileType`].
#[derive(Debug, Clone, Copy)]
enum Check {
    Pdf,
    Png,
    Jpeg,
    Gif,
    Webp,
    Tiff,
    Bmp,
    Ooxml(&'static Ooxml),
    /// OpenDocument package with this `mimetype`.
    Odf(&'static [u8]),
    Ole2(&'static Ole2Kind, Group),
    Text(TextKind),
}

/// The application family of an Office type, which ties a macro-enabled type
/// (docm, xlsm, pptm) to the types whose macros it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Word,
    Excel,
    PowerPoint,
}

/// What an OOXML package of one type must declare.
#[derive(Debug)]
pub(crate) struct Ooxml {
    /// Content types (lowercase) of the main part accepted for the type.
    pub(crate) main: &'static [&'static str],
    /// Content types of the main part of the macro-enabled sibling type.
    pub(crate) macro_main: &'static str,
    pub(crate) group: Group,
    /// The macro-enabled type itself.
    pub(crate) is_macro: bool,
}

const DOCX_MAIN: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
const DOCM_MAIN: &str = "application/vnd.ms-word.document.macroenabled.main+xml";
const XLSX_MAIN: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml";
const XLSM_MAIN: &str = "application/vnd.ms-excel.sheet.macroenabled.main+xml";
const PPTX_MAIN: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml";
const PPTM_MAIN: &str = "application/vnd.ms-powerpoint.presentation.macroenabled.main+xml";

static DOCX: Ooxml = Ooxml { main: &[DOCX_MAIN], macro_main: DOCM_MAIN, group: Group::Word, is_macro: false };
static DOCM: Ooxml = Ooxml { main: &[DOCM_MAIN, DOCX_MAIN], macro_main: DOCM_MAIN, group: Group::Word, is_macro: true };
static XLSX: Ooxml = Ooxml { main: &[XLSX_MAIN], macro_main: XLSM_MAIN, group: Group::Excel, is_macro: false };
static XLSM: Ooxml =
    Ooxml { main: &[XLSM_MAIN, XLSX_MAIN], macro_main: XLSM_MAIN, group: Group::Excel, is_macro: true };
static PPTX: Ooxml = Ooxml { main: &[PPTX_MAIN], macro_main: PPTM_MAIN, group: Group::PowerPoint, is_macro: false };
static PPTM: Ooxml =
    Ooxml { main: &[PPTM_MAIN, PPTX_MAIN], macro_main: PPTM_MAIN, group: Group::PowerPoint, is_macro: true };

const ODT_MIME: &[u8] = b"application/vnd.oasis.opendocument.text";
const ODS_MIME: &[u8] = b"application/vnd.oasis.opendocument.spreadsheet";
const ODP_MIME: &[u8] = b"application/vnd.oasis.opendocument.presentation";

/// How a type's whole content is verified after its first bytes matched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Family {
    /// Binary type with end checks.
    Tail(End),
    /// OOXML package.
    Ooxml(&'static Ooxml),
    /// OpenDocument package with this `mimetype`.
    Odf(&'static [u8]),
    /// OLE2 compound file.
    Ole2(&'static Ole2Kind),
    /// UTF-8 text.
    Text,
}

/// One file type moat can allow for uploads.
#[derive(Debug)]
pub struct FileType {
    /// The name used in the `upload.types` configuration list.
    pub name: &'static str,
    /// The media types a client may declare for this type (lowercase).
    pub media_types: &'static [&'static str],
    /// The file name extensions of this type (lowercase, without the dot).
    pub extensions: &'static [&'static str],
    check: Check,
}

impl PartialEq for FileType {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for FileType {}

impl FileType {
    /// How the whole content of this type is verified.
    pub(crate) fn family(&self) -> Family {
        match self.check {
            Check::Pdf => Family::Tail(End::Pdf),
            Check::Png => Family::Tail(End::Png),
            Check::Jpeg => Family::Tail(End::Jpeg),
            Check::Gif => Family::Tail(End::Gif),
            Check::Webp => Family::Tail(End::Webp),
            Check::Tiff | Check::Bmp => Family::Tail(End::Any),
            Check::Ooxml(o) => Family::Ooxml(o),
            Check::Odf(m) => Family::Odf(m),
            Check::Ole2(k, _) => Family::Ole2(k),
            Check::Text(_) => Family::Text,
        }
    }

    /// The Office family of this type, if any.
    pub(crate) fn group(&self) -> Option<Group> {
        match self.check {
            Check::Ooxml(o) => Some(o.group),
            Check::Ole2(_, g) => Some(g),
            _ => None,
        }
    }

    /// Whether this is a macro-enabled type (docm, xlsm, pptm).
    pub fn is_macro(&self) -> bool {
        matches!(self.check, Check::Ooxml(o) if o.is_macro)
    }

    /// Checks whether `prefix`, the first bytes of some content, is this type.
    ///
    /// `complete` says that `prefix` is the whole content. Returns
    /// [`Sniff::NeedMore`] only when `complete` is false and `prefix` is
    /// shorter than [`SNIFF_WINDOW`]; bytes past the window are ignored.
    pub fn check_content(&self, prefix: &[u8], complete: bool) -> Sniff {
        let window = &prefix[..prefix.len().min(SNIFF_WINDOW)];
        let ctx = Ctx { at_limit: complete || prefix.len() >= SNIFF_WINDOW, complete };
        let answer = match self.check {
            Check::Pdf => check_pdf(window, ctx),
            Check::Png => check_png(window, ctx),
            Check::Jpeg => check_jpeg(window, ctx),
            Check::Gif => check_gif(window, ctx),
            Check::Webp => check_webp(window, ctx),
            Check::Tiff => check_tiff(window, ctx),
            Check::Bmp => check_bmp(window, ctx),
            Check::Ooxml(_) => check_ooxml(window, ctx),
            Check::Odf(mime) => check_odf(window, ctx, mime),
            Check::Ole2(..) => check_ole2(window, ctx),
            Check::Text(kind) => check_text(window, ctx, kind),
        };
        match answer {
            Sniff::NeedMore if ctx.at_limit => Sniff::NoMatch,
            other => other,
        }
    }

    /// Whether `essence` (a media type without parameters, any case) is one
    /// of this type's media types. [`OCTET_STREAM`] is not, unless listed.
    pub fn has_media_type(&self, essence: &str) -> bool {
        self.media_types.iter().any(|m| m.eq_ignore_ascii_case(essence.trim()))
    }

    /// Whether `ext` (without the dot, any case) is one of this type's
    /// extensions.
    pub fn has_extension(&self, ext: &str) -> bool {
        self.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }
}

static TYPES: [FileType; 24] = [
    FileType {
        name: "pdf",
        media_types: &["application/pdf", "application/x-pdf"],
        extensions: &["pdf"],
        check: Check::Pdf,
    },
    FileType { name: "png", media_types: &["image/png"], extensions: &["png"], check: Check::Png },
    FileType {
        name: "jpeg",
        media_types: &["image/jpeg", "image/pjpeg"],
        extensions: &["jpg", "jpeg", "jpe", "jfif"],
        check: Check::Jpeg,
    },
    FileType { name: "gif", media_types: &["image/gif"], extensions: &["gif"], check: Check::Gif },
    FileType { name: "webp", media_types: &["image/webp"], extensions: &["webp"], check: Check::Webp },
    FileType { name: "tiff", media_types: &["image/tiff"], extensions: &["tif", "tiff"], check: Check::Tiff },
    FileType {
        name: "bmp",
        media_types: &["image/bmp", "image/x-bmp", "image/x-ms-bmp"],
        extensions: &["bmp", "dib"],
        check: Check::Bmp,
    },
    FileType {
        name: "docx",
        media_types: &["application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
        extensions: &["docx"],
        check: Check::Ooxml(&DOCX),
    },
    FileType {
        name: "pptx",
        media_types: &["application/vnd.openxmlformats-officedocument.presentationml.presentation"],
        extensions: &["pptx"],
        check: Check::Ooxml(&PPTX),
    },
    FileType {
        name: "xlsx",
        media_types: &["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
        extensions: &["xlsx"],
        check: Check::Ooxml(&XLSX),
    },
    FileType {
        name: "doc",
        media_types: &["application/msword"],
        extensions: &["doc", "dot"],
        check: Check::Ole2(&ole2::WORD, Group::Word),
    },
    FileType {
        name: "ppt",
        media_types: &["application/vnd.ms-powerpoint"],
        extensions: &["ppt", "pps", "pot"],
        check: Check::Ole2(&ole2::POWERPOINT, Group::PowerPoint),
    },
    FileType {
        name: "xls",
        media_types: &["application/vnd.ms-excel"],
        extensions: &["xls", "xlt"],
        check: Check::Ole2(&ole2::EXCEL, Group::Excel),
    },
    FileType {
        name: "odt",
        media_types: &["application/vnd.oasis.opendocument.text"],
        extensions: &["odt"],
        check: Check::Odf(ODT_MIME),
    },
    FileType {
        name: "txt",
        media_types: &["text/plain"],
        extensions: &["txt", "text"],
        check: Check::Text(TextKind::Plain),
    },
    FileType {
        name: "csv",
        media_types: &["text/csv", "application/csv", "text/x-csv", "application/vnd.ms-excel", "text/plain"],
        extensions: &["csv"],
        check: Check::Text(TextKind::Plain),
    },
    FileType {
        name: "md",
        media_types: &["text/markdown", "text/x-markdown", "text/plain"],
        extensions: &["md", "markdown"],
        check: Check::Text(TextKind::Plain),
    },
    FileType {
        name: "html",
        media_types: &["text/html"],
        extensions: &["html", "htm"],
        check: Check::Text(TextKind::Html),
    },
    FileType {
        name: "json",
        media_types: &["application/json"],
        extensions: &["json"],
        check: Check::Text(TextKind::Json),
    },
    FileType {
        name: "ods",
        media_types: &["application/vnd.oasis.opendocument.spreadsheet"],
        extensions: &["ods"],
        check: Check::Odf(ODS_MIME),
    },
    FileType {
        name: "odp",
        media_types: &["application/vnd.oasis.opendocument.presentation"],
        extensions: &["odp"],
        check: Check::Odf(ODP_MIME),
    },
    FileType {
        name: "docm",
        media_types: &["application/vnd.ms-word.document.macroenabled.12"],
        extensions: &["docm"],
        check: Check::Ooxml(&DOCM),
    },
    FileType {
        name: "xlsm",
        media_types: &["application/vnd.ms-excel.sheet.macroenabled.12"],
        extensions: &["xlsm"],
        check: Check::Ooxml(&XLSM),
    },
    FileType {
        name: "pptm",
        media_types: &["application/vnd.ms-powerpoint.presentation.macroenabled.12"],
        extensions: &["pptm"],
        check: Check::Ooxml(&PPTM),
    },
];

/// Every type moat knows, in table order.
pub fn all() -> &'static [FileType] {
    &TYPES
}

/// Finds a type by its configuration name (`"pdf"`, `"docx"`, ...).
///
/// The match ignores ASCII case, and any extension of a type also names it,
/// so `"jpg"`, `"htm"`, `"tif"` and `"markdown"` resolve to jpeg, html, tiff
/// and md.
pub fn lookup(name: &str) -> Option<&'static FileType> {
    let name = name.trim();
    TYPES.iter().find(|t| t.name.eq_ignore_ascii_case(name)).or_else(|| TYPES.iter().find(|t| t.has_extension(name)))
}

/// State shared by the checks for one call.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// The prefix is the whole content or fills the window: decide now.
    at_limit: bool,
    /// The prefix is the whole content.
    complete: bool,
}

impl Ctx {
    /// The answer when fewer bytes than a check needs are present.
    fn short(self) -> Sniff {
        if self.at_limit {
            Sniff::NoMatch
        } else {
            Sniff::NeedMore
        }
    }
}

fn verdict(ok: bool) -> Sniff {
    if ok {
        Sniff::Match
    } else {
        Sniff::NoMatch
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Runs `f` once `need` bytes are present.
fn with_len(p: &[u8], ctx: Ctx, need: usize, f: impl FnOnce(&[u8]) -> bool) -> Sniff {
    if p.len() < need {
        ctx.short()
    } else {
        verdict(f(p))
    }
}

/// `%PDF-d.d` at offset 0.
fn check_pdf(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 8, |p| {
        infer::archive::is_pdf(p)
            && p.starts_with(b"%PDF-")
            && p[5].is_ascii_digit()
            && p[6] == b'.'
            && p[7].is_ascii_digit()
    })
}

/// PNG signature followed by the `IHDR` chunk header.
fn check_png(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 16, |p| {
        infer::image::is_png(p) && p.starts_with(b"\x89PNG\r\n\x1a\n") && &p[8..16] == b"\x00\x00\x00\x0dIHDR"
    })
}

/// SOI marker followed by a marker byte.
fn check_jpeg(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 4, |p| infer::image::is_jpeg(p) && p.starts_with(b"\xff\xd8\xff") && (0xc0..=0xfe).contains(&p[3]))
}

/// `GIF87a` or `GIF89a`.
fn check_gif(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 6, |p| infer::image::is_gif(p) && (p.starts_with(b"GIF87a") || p.starts_with(b"GIF89a")))
}

/// `RIFF` container of form `WEBP` whose first chunk is `VP8 `, `VP8L` or
/// `VP8X`.
fn check_webp(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 16, |p| {
        infer::image::is_webp(p)
            && p.starts_with(b"RIFF")
            && &p[8..15] == b"WEBPVP8"
            && matches!(p[15], b' ' | b'L' | b'X')
    })
}

/// Classic TIFF (`II*\0`, `MM\0*`) with a first-IFD offset of at least 8, or
/// BigTIFF (`II+\0`, `MM\0+`) with 8-byte offsets.
fn check_tiff(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 8, |p| match &p[..4] {
        b"II*\0" => u32_le(p, 4).is_some_and(|o| o >= 8),
        b"MM\0*" => u32_be(p, 4).is_some_and(|o| o >= 8),
        b"II+\0" => &p[4..8] == b"\x08\x00\x00\x00",
        b"MM\0+" => &p[4..8] == b"\x00\x08\x00\x00",
        _ => false,
    })
}

/// `BM` file header followed by a known DIB header size.
fn check_bmp(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 18, |p| {
        infer::image::is_bmp(p)
            && p.starts_with(b"BM")
            && u32_le(p, 10).is_some_and(|off| off >= 26)
            && u32_le(p, 14).is_some_and(|dib| matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124))
    })
}

const ZIP_LOCAL: &[u8; 4] = b"PK\x03\x04";

/// A zip whose first local header is well-formed. Which entries it holds is
/// decided at the end of the file from its central directory (see
/// `zip.rs`), as real readers decide.
fn check_ooxml(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 30, |p| {
        infer::archive::is_zip(p)
            && p.starts_with(ZIP_LOCAL)
            && u16_le(p, 26).is_some_and(|n| n > 0)
            && u16_le(p, 8).is_some_and(|m| m == 0 || m == 8)
    })
}

/// An OpenDocument package: the first entry is `mimetype`, stored, without
/// an extra field, holding exactly the type's media type.
fn check_odf(p: &[u8], ctx: Ctx, mime: &[u8]) -> Sniff {
    let need = 38 + mime.len();
    if p.len() < 4 {
        return ctx.short();
    }
    if !p.starts_with(ZIP_LOCAL) {
        return Sniff::NoMatch;
    }
    if p.len() < need {
        // Refuse as soon as the name length present is not `mimetype`'s.
        if p.get(26..28).is_some_and(|n| n != b"\x08\x00") {
            return Sniff::NoMatch;
        }
        return ctx.short();
    }
    let flags = u16_le(p, 6).unwrap_or(u16::MAX);
    let sized = flags & 0x0008 != 0 || u32_le(p, 18).is_some_and(|c| c as usize == mime.len());
    verdict(
        flags & 0x0001 == 0
            && u16_le(p, 8) == Some(0)
            && sized
            && u16_le(p, 26) == Some(8)
            && u16_le(p, 28) == Some(0)
            && &p[30..38] == b"mimetype"
            && &p[38..need] == mime,
    )
}

const OLE2_MAGIC: &[u8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";

/// An OLE2 compound-file header. What the file holds (installer or
/// document, which document) is decided from its directory (see
/// `ole2.rs`).
fn check_ole2(p: &[u8], ctx: Ctx) -> Sniff {
    with_len(p, ctx, 0x34, |p| {
        let shift = u16_le(p, 0x1e).unwrap_or(0);
        let major = u16_le(p, 0x1a).unwrap_or(0);
        p.starts_with(OLE2_MAGIC) && &p[0x1c..0x1e] == b"\xfe\xff" && matches!((major, shift), (3, 9) | (4, 12))
    })
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Whether a text prefix starts like an executable, an archive or a PDF.
fn has_binary_magic(b: &[u8]) -> bool {
    infer::app::is_exe(b)
        || infer::app::is_elf(b)
        || infer::app::is_mach(b)
        || infer::app::is_java(b)
        || infer::app::is_wasm(b)
        || infer::archive::is_zip(b)
        || b.starts_with(b"\x7fELF")
        || b.starts_with(b"%PDF-")
        || b.starts_with(OLE2_MAGIC)
}

fn check_text(p: &[u8], ctx: Ctx, kind: TextKind) -> Sniff {
    let body = p.strip_prefix(UTF8_BOM).unwrap_or(p);
    if has_binary_magic(body) || body.contains(&0) {
        return Sniff::NoMatch;
    }
    if let Err(e) = std::str::from_utf8(body) {
        // A sequence cut by the end of an incomplete prefix is not an error.
        if e.error_len().is_some() || ctx.complete {
            return Sniff::NoMatch;
        }
    }
    let want: &[u8] = match kind {
        TextKind::Plain => b"",
        TextKind::Json => b"{[",
        TextKind::Html => b"<",
    };
    if !want.is_empty() {
        match body.iter().find(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c')) {
            Some(c) if want.contains(c) => {}
            Some(_) => return Sniff::NoMatch,
            None => return ctx.short(),
        }
    }
    if ctx.at_limit {
        Sniff::Match
    } else {
        Sniff::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> &'static FileType {
        lookup(name).expect("known type")
    }

    pub(crate) fn pdf() -> Vec<u8> {
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec()
    }

    fn png() -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
        v
    }

    fn ole2() -> Vec<u8> {
        crate::upload::ole2::tests::compound(&[0; 16], "WordDocument", 1, 2)
    }

    #[test]
    fn table_is_consistent() {
        assert!(all().len() >= 24);
        for (i, a) in all().iter().enumerate() {
            assert_eq!(lookup(a.name), Some(a));
            assert!(!a.media_types.is_empty() && !a.extensions.is_empty());
            for m in a.media_types {
                assert_eq!(*m, m.to_ascii_lowercase());
                assert_ne!(*m, OCTET_STREAM);
            }
            for b in &all()[i + 1..] {
                for e in a.extensions {
                    assert!(!b.has_extension(e), "{e} in {} and {}", a.name, b.name);
                }
            }
        }
        assert_eq!(lookup("JPG").map(|t| t.name), Some("jpeg"));
        assert_eq!(lookup("htm").map(|t| t.name), Some("html"));
        assert_eq!(lookup("exe"), None);
    }

    #[test]
    fn binary_magics() {
        assert_eq!(t("pdf").check_content(&pdf(), true), Sniff::Match);
        assert_eq!(t("pdf").check_content(b"%PDF", false), Sniff::NeedMore);
        assert_eq!(t("pdf").check_content(b"%PDF", true), Sniff::NoMatch);
        assert_eq!(t("pdf").check_content(b"MZ\x90\x00%PDF-1.7", false), Sniff::NoMatch);
        assert_eq!(t("png").check_content(&png(), true), Sniff::Match);
        assert_eq!(t("png").check_content(&png()[..8], false), Sniff::NeedMore);
        assert_eq!(t("jpeg").check_content(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", true), Sniff::Match);
        assert_eq!(t("gif").check_content(b"GIF89a\x01\x00\x01\x00", true), Sniff::Match);
        assert_eq!(t("gif").check_content(b"GIF90a\x01\x00", true), Sniff::NoMatch);
        assert_eq!(t("webp").check_content(b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00", true), Sniff::Match);
        assert_eq!(t("webp").check_content(b"RIFF\x24\x00\x00\x00WAVEfmt \x18\x00", true), Sniff::NoMatch);
        assert_eq!(t("tiff").check_content(b"II*\x00\x08\x00\x00\x00", true), Sniff::Match);
        assert_eq!(t("tiff").check_content(b"MM\x00*\x00\x00\x00\x08", true), Sniff::Match);
        assert_eq!(t("tiff").check_content(b"II*\x00\x00\x00\x00\x00", true), Sniff::NoMatch);
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&70u32.to_le_bytes());
        bmp.extend_from_slice(&[0; 4]);
        bmp.extend_from_slice(&54u32.to_le_bytes());
        bmp.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(t("bmp").check_content(&bmp, true), Sniff::Match);
        assert_eq!(t("bmp").check_content(b"BMW quarterly report", true), Sniff::NoMatch);
    }

    #[test]
    fn ole2_header() {
        let doc = ole2();
        for name in ["doc", "xls", "ppt"] {
            assert_eq!(t(name).check_content(&doc, true), Sniff::Match, "{name}");
            assert_eq!(t(name).check_content(&doc[..40], false), Sniff::NeedMore);
        }
        let mut bad = doc.clone();
        bad[0x1c] = 0;
        assert_eq!(t("doc").check_content(&bad, true), Sniff::NoMatch);
        let mut v4 = doc.clone();
        v4[0x1a] = 4;
        assert_eq!(t("doc").check_content(&v4, true), Sniff::NoMatch);
    }

    #[test]
    fn text_rules() {
        let txt = t("txt");
        assert_eq!(txt.check_content("héllo wörld\n".as_bytes(), true), Sniff::Match);
        assert_eq!(txt.check_content(b"hello", false), Sniff::NeedMore);
        assert_eq!(txt.check_content(b"", true), Sniff::Match);
        assert_eq!(txt.check_content(b"a\x00b", true), Sniff::NoMatch);
        assert_eq!(txt.check_content(b"\xff\xfeh\x00i\x00", true), Sniff::NoMatch);
        assert_eq!(txt.check_content(b"MZ this is not text", true), Sniff::NoMatch);
        assert_eq!(txt.check_content(b"%PDF-1.4 text", true), Sniff::NoMatch);
        assert_eq!(txt.check_content(b"\xef\xbb\xbfbom text", true), Sniff::Match);
        // A multi-byte character cut by the window edge is fine ...
        let mut long = vec![b'a'; SNIFF_WINDOW - 1];
        long.extend_from_slice("é".as_bytes());
        assert_eq!(txt.check_content(&long, false), Sniff::Match);
        // ... but not at the real end of the content.
        assert_eq!(txt.check_content(b"abc\xc3", true), Sniff::NoMatch);
        assert_eq!(txt.check_content(b"abc\xc3", false), Sniff::NeedMore);
        let json = t("json");
        assert_eq!(json.check_content(b"{\"a\":1}", true), Sniff::Match);
        assert_eq!(json.check_content(b"\xef\xbb\xbf \n[1,2]", true), Sniff::Match);
        assert_eq!(json.check_content(b"\"str\"", true), Sniff::NoMatch);
        assert_eq!(json.check_content(b"   ", false), Sniff::NeedMore);
        let html = t("html");
        assert_eq!(html.check_content(b"<!doctype html><p>x", true), Sniff::Match);
        assert_eq!(html.check_content(b"hello <p>", true), Sniff::NoMatch);
    }

    #[test]
    fn zip_heads() {
        let mut odt = b"PK\x03\x04\x14\x00\x00\x00\x00\x00".to_vec();
        odt.extend_from_slice(&[0; 8]);
        odt.extend_from_slice(&(ODT_MIME.len() as u32).to_le_bytes());
        odt.extend_from_slice(&(ODT_MIME.len() as u32).to_le_bytes());
        odt.extend_from_slice(&8u16.to_le_bytes());
        odt.extend_from_slice(&0u16.to_le_bytes());
        odt.extend_from_slice(b"mimetype");
        odt.extend_from_slice(ODT_MIME);
        assert_eq!(t("odt").check_content(&odt, true), Sniff::Match);
        assert_eq!(t("ods").check_content(&odt, true), Sniff::NoMatch);
        assert_eq!(t("odt").check_content(&odt[..40], false), Sniff::NeedMore);
        assert_eq!(t("docx").check_content(&odt, true), Sniff::Match);
        let mut deflated = odt.clone();
        deflated[8] = 8;
        assert_eq!(t("odt").check_content(&deflated, true), Sniff::NoMatch);
        let mut other = odt.clone();
        other[30..38].copy_from_slice(b"mimetypx");
        assert_eq!(t("odt").check_content(&other, true), Sniff::NoMatch);
        // Name length, method and sizes that make no sense.
        let mut z = ZIP_LOCAL.to_vec();
        z.extend_from_slice(&[0; 14]);
        z.extend_from_slice(&u32::MAX.to_le_bytes());
        z.extend_from_slice(&u32::MAX.to_le_bytes());
        z.extend_from_slice(&u16::MAX.to_le_bytes());
        z.extend_from_slice(&u16::MAX.to_le_bytes());
        for ty in ["odt", "ods", "odp"] {
            assert_eq!(t(ty).check_content(&z, true), Sniff::NoMatch);
        }
        z[8] = 14;
        assert_eq!(t("docx").check_content(&z, true), Sniff::NoMatch);
    }

    #[test]
    fn never_needs_more_at_the_window() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..64 {
            let mut buf = vec![0u8; SNIFF_WINDOW + round];
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            // Give some rounds a real magic to reach the deeper checks.
            match round % 4 {
                1 => buf[..4].copy_from_slice(ZIP_LOCAL),
                2 => buf[..8].copy_from_slice(OLE2_MAGIC),
                3 => buf.iter_mut().for_each(|b| *b = b'a' + (*b % 26)),
                _ => {}
            }
            for ty in all() {
                assert_ne!(ty.check_content(&buf, false), Sniff::NeedMore, "{}", ty.name);
                for cut in [0, 1, 3, 17, 31, 64, 600] {
                    assert_ne!(ty.check_content(&buf[..cut], true), Sniff::NeedMore);
                    let _ = ty.check_content(&buf[..cut], false);
                }
            }
        }
    }
}
