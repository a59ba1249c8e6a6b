//! The multipart inspector: drives `multer` inline over each chunk, checks
//! the raw framing and every part's header block beside it (any
//! disagreement with `multer` is a refusal), and starts the checks of each
//! part it reports: the file rules (count, name, declared type, extension)
//! or the field rules (allowlist, cap, pattern).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;

use super::feed::{lock, Feed, FeedStream};
use super::framing::{check_epilogue, FramingScanner, FramingStatus};
use super::part::Part;
use super::part_headers::{parse_part_headers, PartHeaders};
use super::rules::{macros_allowed, UploadRules};
use super::scans::Scans;
use super::violation::{refuse, Violation};
use super::HighWater;
use crate::upload::content::FileCheck;
use crate::upload::filename::{check_filename, extension};
use crate::upload::types::OCTET_STREAM;

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
    Framing(FramingScanner),
    Part(Box<Current>),
    /// After the closing delimiter; counts the epilogue bytes.
    End {
        epilogue: usize,
    },
    /// A check failed; the body is refused.
    Failed,
}

pub(super) struct MultipartInspector {
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
    pub(super) failed: Option<&'static str>,
    /// Malware scanning, when the route asks for it.
    pub(super) scans: Option<Scans>,
}

impl MultipartInspector {
    pub(super) fn new(boundary: &str, rules: Arc<UploadRules>, scans: Option<Scans>) -> Self {
        let feed = Arc::new(Mutex::new(Feed::default()));
        let parser = multer::Multipart::new(FeedStream(feed.clone()), boundary);
        let mut dash = b"--".to_vec();
        dash.extend_from_slice(boundary.as_bytes());
        Self {
            rules,
            feed,
            parser,
            dash,
            stage: Stage::Framing(FramingScanner::first()),
            files: 0,
            piece: Bytes::new(),
            piece_start: 0,
            high_water: HighWater::default(),
            failed: None,
            scans,
        }
    }

    pub(super) fn high_water(&self) -> HighWater {
        let mut hw = self.high_water;
        match &self.stage {
            Stage::Framing(f) => hw.headers = hw.headers.max(f.buf.capacity()),
            Stage::Part(c) => hw.merge(c.part.high_water()),
            Stage::End { .. } | Stage::Failed => {}
        }
        hw
    }

    pub(super) fn push(&mut self, chunk: &Bytes, cx: &mut Context<'_>) -> Result<(), Violation> {
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

    pub(super) fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), Violation> {
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
                Stage::Framing(framing) => self.step_framing(framing, cx)?,
                Stage::Part(current) => self.step_part(current, cx)?,
            };
            self.stage = next;
            if !more {
                return Ok(());
            }
        }
    }

    fn step_framing(&mut self, mut framing: FramingScanner, cx: &mut Context<'_>) -> Result<(Stage, bool), Violation> {
        framing.absorb(&self.piece, self.piece_start, &self.dash)?;
        self.high_water.headers = self.high_water.headers.max(framing.buf.capacity());
        let disagree = |what| refuse(Violation::Malformed, format_args!("parser disagreement: {what}"));
        match self.parser.poll_next_field(cx) {
            Poll::Pending => {
                if framing.status != FramingStatus::Incomplete {
                    return Err(disagree("multer wants more after a complete header block"));
                }
                Ok((Stage::Framing(framing), false))
            }
            Poll::Ready(Err(e)) => Err(refuse(Violation::Malformed, format_args!("{e:?}"))),
            Poll::Ready(Ok(None)) => {
                let FramingStatus::Close { end } = framing.status else {
                    return Err(disagree("multer ended without a closing boundary"));
                };
                let close_end = framing.origin + end as u64;
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
                let FramingStatus::Headers { start, end } = framing.status else {
                    return Err(disagree("multer found headers the inspector did not"));
                };
                let headers = parse_part_headers(&framing.buf[start..end])?;
                headers.agree_with(&field)?;
                let part = self.start_part(headers)?;
                let current = Current { field, part, data_start: framing.origin + end as u64, data_len: 0 };
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
                    return Ok((Stage::Framing(FramingScanner::after_part(&self.dash, origin)), true));
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

#[cfg(test)]
#[path = "tests/multipart.rs"]
mod tests;
