//! The end of a file: a bounded tail kept while it streams, the end checks
//! of PDF and image types, and the whole-content check of text types.
//!
//! # Threat
//!
//! A file can be a valid instance of its type at the start and carry
//! something else further in: a ZIP or an executable appended to a PDF or an
//! image (zip readers look at the end of a file, and a PDF reader ignores
//! bytes after its last `%%EOF`), or a JSON body with an executable after its
//! first 64 KiB. A check of the first bytes cannot see those.
//!
//! # What is checked
//!
//! * PDF: the file ends with `%%EOF`, optionally followed by whitespace.
//! * PNG: the file ends with the `IEND` chunk. JPEG: with the EOI marker
//!   `FF D9`. GIF: with the trailer `3B`. WebP: the RIFF size covers the file
//!   exactly.
//! * For every binary type checked here (pdf, png, jpeg, gif, webp, tiff,
//!   bmp): the last [`TAIL_WINDOW`] bytes hold no ZIP end-of-central-directory
//!   or central directory record, no ZIP local header, and no executable header
//!   (PE, ELF, Mach-O, Java class). A zip reader finds an archive by its end
//!   record within the last 64 KiB + 22 bytes of a file, so the window covers
//!   every archive a reader would find.
//! * Text (txt, csv, md, json, html): every byte, not only the head, is
//!   valid UTF-8 (sequences cut by chunk boundaries are joined) and not NUL.
//!
//! # Bounds
//!
//! [`Tail`] keeps reference-counted chunks (no copy while streaming) and
//! drops them from the front once the rest covers its bound: it holds at most
//! its bound plus one chunk. [`Utf8Stream`] keeps at most 3 bytes.

use std::collections::VecDeque;

use bytes::Bytes;
use memchr::memmem;

/// How many trailing bytes the end checks of binary types look at.
pub const TAIL_WINDOW: usize = 66 * 1024;

/// Why a file was refused: the name of the failed check, for the log.
pub type Refusal = &'static str;

/// The last bytes of a file, kept as shared chunks.
#[derive(Debug)]
pub struct Tail {
    chunks: VecDeque<Bytes>,
    len: usize,
    bound: usize,
    total: u64,
}

impl Tail {
    /// A tail that covers at least the last `bound` bytes.
    pub fn new(bound: usize) -> Self {
        Self { chunks: VecDeque::new(), len: 0, bound, total: 0 }
    }

    /// Adds the next chunk of the file.
    pub fn push(&mut self, data: &Bytes) {
        if data.is_empty() {
            return;
        }
        self.total += data.len() as u64;
        self.len += data.len();
        self.chunks.push_back(data.clone());
        while let Some(front) = self.chunks.front() {
            if self.len - front.len() >= self.bound {
                self.len -= front.len();
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// The bytes of the whole file seen so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept bytes (at most the bound plus one chunk) as one buffer, and
    /// the file offset of its first byte.
    pub fn contiguous(&self) -> (Vec<u8>, u64) {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        (v, self.total - self.len as u64)
    }

    /// The last `n` kept bytes (fewer if fewer are kept) as one buffer.
    pub fn last(&self, n: usize) -> Vec<u8> {
        let (v, _) = self.contiguous();
        let from = v.len().saturating_sub(n);
        v[from..].to_vec()
    }
}

/// Which end a binary type must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `%%EOF` then whitespace.
    Pdf,
    /// The `IEND` chunk.
    Png,
    /// `FF D9`.
    Jpeg,
    /// `3B`.
    Gif,
    /// The RIFF size covers the file.
    Webp,
    /// No end marker; only the foreign-structure scan.
    Any,
}

const PNG_IEND: &[u8] = b"\x00\x00\x00\x00IEND\xae\x42\x60\x82";

/// Checks the end of a binary file: `tail` its last bytes, `head` its first
/// (at least 12) bytes, `total` its length.
pub fn check_end(end: End, tail: &[u8], head: &[u8], total: u64) -> Result<(), Refusal> {
    if let Some(what) = foreign_structure(tail) {
        return Err(what);
    }
    let ok = match end {
        End::Pdf => {
            let trimmed = tail.iter().rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | 0));
            trimmed.is_some_and(|last| tail[..=last].ends_with(b"%%EOF"))
        }
        End::Png => tail.ends_with(PNG_IEND),
        End::Jpeg => tail.ends_with(b"\xff\xd9"),
        End::Gif => tail.ends_with(b"\x3b"),
        End::Webp => head
            .get(4..8)
            .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
            .is_some_and(|riff| riff + 8 == total || (riff % 2 == 1 && riff + 9 == total)),
        End::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(match end {
            End::Pdf => "tail: pdf does not end with %%EOF",
            End::Png => "tail: png does not end with IEND",
            End::Jpeg => "tail: jpeg does not end with EOI",
            End::Gif => "tail: gif does not end with its trailer",
            End::Webp => "tail: webp size does not cover the file",
            End::Any => "tail",
        })
    }
}

/// The name of a ZIP record or executable header found in `b`, if any.
pub fn foreign_structure(b: &[u8]) -> Option<Refusal> {
    if memmem::find(b, b"PK\x05\x06").is_some() || memmem::find(b, b"PK\x06\x06").is_some() {
        return Some("tail: zip end record");
    }
    if memmem::find(b, b"PK\x01\x02").is_some() || memmem::find(b, b"PK\x03\x04").is_some() {
        return Some("tail: zip entry");
    }
    for i in memmem::find_iter(b, b"MZ") {
        let pe = b.get(i + 0x3c..i + 0x40).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
        if pe.and_then(|o| b.get(i.checked_add(o)?..i.checked_add(o)?.checked_add(4)?)) == Some(b"PE\0\0") {
            return Some("tail: windows executable");
        }
    }
    for i in memmem::find_iter(b, b"\x7fELF") {
        if let Some(h) = b.get(i + 4..i + 7) {
            if matches!(h[0], 1 | 2) && matches!(h[1], 1 | 2) && h[2] == 1 {
                return Some("tail: elf executable");
            }
        }
    }
    for magic in [&b"\xfe\xed\xfa\xce"[..], b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"] {
        for i in memmem::find_iter(b, magic) {
            // CPU type: x86, x86-64, arm, arm64, ppc (either byte order).
            if let Some(cpu) = b.get(i + 4..i + 8) {
                let le = u32::from_le_bytes([cpu[0], cpu[1], cpu[2], cpu[3]]);
                let be = u32::from_be_bytes([cpu[0], cpu[1], cpu[2], cpu[3]]);
                let known = |c: u32| matches!(c & 0x00ff_ffff, 7 | 12 | 18) && c >> 24 <= 1;
                if known(le) || known(be) {
                    return Some("tail: mach-o executable");
                }
            }
        }
    }
    for i in memmem::find_iter(b, b"\xca\xfe\xba\xbe") {
        // A Java class: minor version, then a major version 45..=80.
        let major = b.get(i + 6..i + 8).map(|s| u16::from_be_bytes([s[0], s[1]]));
        if major.is_some_and(|m| (45..=80).contains(&m)) {
            return Some("tail: java class");
        }
    }
    None
}

/// Checks that a stream of bytes is UTF-8 without NUL, across chunks.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    carry: [u8; 4],
    carry_len: usize,
}

/// The length of the UTF-8 sequence a lead byte starts.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

impl Utf8Stream {
    /// Feeds the next bytes.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), Refusal> {
        if memchr::memchr(0, data).is_some() {
            return Err("text: NUL byte");
        }
        if self.carry_len > 0 {
            let need = sequence_len(self.carry[0]);
            let take = (need - self.carry_len).min(data.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&data[..take]);
            self.carry_len += take;
            data = &data[take..];
            if self.carry_len < need {
                // A prefix of a sequence must still be one.
                return match std::str::from_utf8(&self.carry[..self.carry_len]) {
                    Err(e) if e.error_len().is_none() => Ok(()),
                    _ => Err("text: invalid UTF-8"),
                };
            }
            std::str::from_utf8(&self.carry[..need]).map_err(|_| "text: invalid UTF-8")?;
            self.carry_len = 0;
        }
        if let Err(e) = std::str::from_utf8(data) {
            if e.error_len().is_some() {
                return Err("text: invalid UTF-8");
            }
            let rest = &data[e.valid_up_to()..];
            self.carry[..rest.len()].copy_from_slice(rest);
            self.carry_len = rest.len();
        }
        Ok(())
    }

    /// The content ended.
    pub fn finish(&self) -> Result<(), Refusal> {
        if self.carry_len == 0 {
            Ok(())
        } else {
            Err("text: invalid UTF-8 at the end")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_its_bound_plus_one_chunk() {
        let mut t = Tail::new(10);
        for i in 0..100u8 {
            t.push(&Bytes::from(vec![i; 4]));
            let (v, start) = t.contiguous();
            assert!(v.len() <= 14 && v.len() >= 10.min(4 * (i as usize + 1)));
            assert_eq!(start + v.len() as u64, t.total());
        }
        assert_eq!(t.last(2), vec![99, 99]);
    }

    #[test]
    fn end_markers() {
        let pdf = b"%PDF-1.7\n...\n%%EOF\r\n";
        assert_eq!(check_end(End::Pdf, pdf, pdf, pdf.len() as u64), Ok(()));
        assert!(check_end(End::Pdf, b"%PDF-1.7\n%%EOF\njunk", b"", 0).is_err());
        let mut zip_after = pdf.to_vec();
        zip_after.extend_from_slice(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x06\0%%EOF\n");
        assert_eq!(check_end(End::Pdf, &zip_after, b"", 0), Err("tail: zip end record"));
        let mut exe = b"%PDF-1.7 stuff MZ".to_vec();
        exe.resize(15 + 0x3c, 0);
        exe.extend_from_slice(&0x40u32.to_le_bytes());
        exe.resize(15 + 0x40, 0);
        exe.extend_from_slice(b"PE\0\0");
        exe.extend_from_slice(b"\n%%EOF\n");
        assert_eq!(check_end(End::Pdf, &exe, b"", 0), Err("tail: windows executable"));
        assert_eq!(check_end(End::Png, b"\x89PNG....\x00\x00\x00\x00IEND\xae\x42\x60\x82", b"", 0), Ok(()));
        assert!(check_end(End::Png, b"\x89PNG....\x00\x00\x00\x00IEND\xae\x42\x60\x82x", b"", 0).is_err());
        assert_eq!(check_end(End::Jpeg, b"\xff\xd8...\xff\xd9", b"", 0), Ok(()));
        assert!(check_end(End::Jpeg, b"\xff\xd8...\xff\xd9\0", b"", 0).is_err());
        assert_eq!(check_end(End::Gif, b"GIF89a;", b"", 0), Ok(()));
        let webp = b"RIFF\x04\x00\x00\x00WEBP";
        assert_eq!(check_end(End::Webp, webp, webp, 12), Ok(()));
        assert!(check_end(End::Webp, webp, webp, 13).is_err());
        assert_eq!(check_end(End::Any, b"\x7fELF\x02\x01\x01", b"", 0), Err("tail: elf executable"));
        assert_eq!(check_end(End::Any, b"\xca\xfe\xba\xbe\x00\x00\x00\x34", b"", 0), Err("tail: java class"));
    }

    #[test]
    fn utf8_across_every_split() {
        let text = "aé€😀z\r\n".repeat(3);
        let b = text.as_bytes();
        for cut1 in 0..b.len() {
            for cut2 in cut1..b.len() {
                let mut s = Utf8Stream::default();
                s.push(&b[..cut1]).expect("part 1");
                s.push(&b[cut1..cut2]).expect("part 2");
                s.push(&b[cut2..]).expect("part 3");
                s.finish().expect("complete");
            }
        }
        let mut s = Utf8Stream::default();
        assert!(s.push(b"ab\xc3").is_ok());
        assert!(s.finish().is_err());
        assert!(s.push(b"(").is_err());
        assert!(Utf8Stream::default().push(b"a\0b").is_err());
        assert!(Utf8Stream::default().push(b"\xff").is_err());
        let mut s = Utf8Stream::default();
        assert!(s.push(b"\xe2").is_ok());
        assert!(s.push(b"\x28").is_err());
    }
}
