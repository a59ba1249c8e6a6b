//! The raw multipart framing around the parts, read beside `multer`: the
//! [`FramingScanner`] keeps the bytes from the end of one part's data (or
//! the body start) to the end of the next part's header block or the closing
//! delimiter, and checks them strictly (leading CR/LF only before the first
//! boundary, no transport padding, bounded header bytes); after the closing
//! delimiter, [`check_epilogue`] allows only a little whitespace.

use super::violation::{refuse, Violation};
use crate::upload::content::extend_bounded;

/// The most bytes between the end of one part's data and the start of the
/// next part's data: the delimiter line plus the part's header block (and,
/// before the first part, leading CR/LF).
pub const MAX_PART_HEADER_BYTES: usize = 16 * 1024;

/// The most bytes (all whitespace) accepted after the closing boundary.
pub const MAX_EPILOGUE_BYTES: usize = 1024;

/// What the framing bytes between two parts' data hold so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FramingStatus {
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

/// The scanner of the raw framing between two parts' data: it keeps the
/// bytes from the end of one part's data (or the body start) up to the end
/// of the next part's header block or the closing delimiter, and reads them
/// as they arrive.
pub(super) struct FramingScanner {
    pub(super) buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    pub(super) origin: u64,
    /// Before the first part: leading CR/LF are allowed.
    first: bool,
    pub(super) status: FramingStatus,
    /// Where the search for the header block end resumes.
    search_from: usize,
}

impl FramingScanner {
    pub(super) fn first() -> Self {
        Self { buf: Vec::new(), origin: 0, first: true, status: FramingStatus::Incomplete, search_from: 0 }
    }

    /// The framing after a part whose delimiter `--boundary` starts at `origin`.
    pub(super) fn after_part(dash: &[u8], origin: u64) -> Self {
        Self { buf: dash.to_vec(), origin, first: false, status: FramingStatus::Incomplete, search_from: 0 }
    }

    /// Appends this framing's bytes from `piece` (which starts at stream offset
    /// `piece_start`), up to the end of the header block or closing
    /// delimiter.
    pub(super) fn absorb(&mut self, piece: &[u8], piece_start: u64, dash: &[u8]) -> Result<(), Violation> {
        if self.status != FramingStatus::Incomplete {
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
        if self.status == FramingStatus::Incomplete && self.buf.len() > MAX_PART_HEADER_BYTES {
            return Err(refuse(Violation::Malformed, "part headers too large"));
        }
        Ok(())
    }

    /// Reads the framing bytes as `[CR/LF...] --boundary ( -- | CRLF headers
    /// CRLF CRLF )`, truncating anything after the end.
    fn scan(&mut self, dash: &[u8]) -> Result<FramingStatus, Violation> {
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
            return Ok(FramingStatus::Incomplete);
        }
        let j = i + dash.len();
        match &b[j..] {
            [] | [b'-'] | [b'\r'] => return Ok(FramingStatus::Incomplete),
            [b'-', b'-', ..] => {
                self.buf.truncate(j + 2);
                return Ok(FramingStatus::Close { end: j + 2 });
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
                Ok(FramingStatus::Headers { start, end })
            }
            None => {
                self.search_from = b.len();
                Ok(FramingStatus::Incomplete)
            }
        }
    }
}

pub(super) fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Accepts up to [`MAX_EPILOGUE_BYTES`] of whitespace after the closing
/// boundary.
pub(super) fn check_epilogue(seen: &mut usize, bytes: &[u8]) -> Result<(), Violation> {
    *seen = seen.saturating_add(bytes.len());
    if *seen > MAX_EPILOGUE_BYTES || !bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t')) {
        return Err(refuse(Violation::Malformed, "data after the closing boundary"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/framing.rs"]
mod tests;
