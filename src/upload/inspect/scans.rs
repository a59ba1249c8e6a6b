//! Malware-scan bookkeeping shared by the raw and multipart inspectors and
//! the body wrapper: the files of one request being streamed to clamd and
//! the verdicts awaited ([`Scans`]), and [`scan_push`], which hands a file's
//! bytes to its scan.

use std::task::{Context, Poll};

use bytes::Bytes;

use super::violation::{refuse, Violation};
use crate::scan::{Fallback, FileScan, Outcome, PendingOutcome, Scanning};

/// The files of one request being scanned, and the verdicts of those whose
/// last byte has passed.
pub(super) struct Scans {
    pub(super) scanning: Scanning,
    pub(super) verdicts: Vec<PendingOutcome>,
}

impl Scans {
    /// The refusal a verdict already in calls for, if any.
    pub(super) fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Option<Violation> {
        let deny_errors = self.scanning.config().on_error == Fallback::Deny;
        self.verdicts.iter_mut().find_map(|v| match v.poll_outcome(cx) {
            Poll::Ready(Outcome::Infected) => Some(Violation::Malware),
            Poll::Ready(Outcome::Failed) if deny_errors => Some(Violation::ScanFailed),
            _ => None,
        })
    }

    /// Ready once every verdict is in: `Err` with the refusal they call for.
    pub(super) fn poll_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Violation>> {
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
pub(super) fn scan_push(
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
