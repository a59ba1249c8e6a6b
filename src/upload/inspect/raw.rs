//! The raw-body inspector: a body that is one file of one allowed type,
//! checked from its first byte to its last and, when the route asks for it,
//! streamed to clamd.

use bytes::Bytes;

use super::scans::{scan_push, Scans};
use super::violation::{refuse, Violation};
use crate::scan::FileScan;
use crate::upload::content::FileCheck;

/// A raw body: its checks, the check that refused it, and its scan.
pub(super) struct RawInspector {
    pub(super) check: FileCheck,
    pub(super) failed: &'static str,
    pub(super) scan: Option<FileScan>,
    pub(super) scans: Option<Scans>,
}

impl RawInspector {
    pub(super) fn push(&mut self, chunk: &Bytes) -> Result<(), Violation> {
        self.check.push(chunk).map_err(|check| {
            self.failed = check;
            refuse(Violation::FileType, format_args!("raw body: {check}"))
        })?;
        let mut failed = None;
        scan_push(&mut self.scan, chunk, "(raw body)", &mut failed).inspect_err(|_| {
            self.failed = failed.unwrap_or("");
        })
    }

    pub(super) fn finish(&mut self) -> Result<(), Violation> {
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

#[cfg(test)]
#[path = "tests/raw.rs"]
mod tests;
