//! The checks of one part's data as it streams ([`Part`]): for a file part
//! its size cap, its content checks and its scan; for a field its byte cap
//! and, when its rule has one, its pattern.

use bytes::Bytes;

use super::rules::{FieldRule, UploadRules};
use super::scans::{scan_push, Scans};
use super::violation::{refuse, Violation};
use super::HighWater;
use crate::scan::FileScan;
use crate::upload::content::{extend_bounded, FileCheck};

/// The checks of one part.
pub(super) enum Part {
    File { check: Box<FileCheck>, size: u64, name: String, scan: Option<FileScan> },
    Field { name: String, cap: u64, size: u64, value: Option<Vec<u8>>, rule: Option<FieldRule> },
}

impl Part {
    /// A part's data arrives here, in order, chunk by chunk.
    pub(super) fn consume(
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
    pub(super) fn finish(
        &mut self,
        failed: &mut Option<&'static str>,
        scans: Option<&mut Scans>,
    ) -> Result<(), Violation> {
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

    pub(super) fn high_water(&self) -> HighWater {
        match self {
            Self::File { check, .. } => HighWater { sniff: check.head_high_water(), ..HighWater::default() },
            Self::Field { value, .. } => {
                HighWater { field: value.as_ref().map_or(0, Vec::capacity), ..HighWater::default() }
            }
        }
    }
}
