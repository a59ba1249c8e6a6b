//! Why an upload is refused: [`Violation`], the HTTP status and reason label
//! each refusal maps to, and [`refuse`], which logs a refusal (never the
//! content) where a check decides it.

use std::fmt;

use crate::error::Reason;

/// Why an upload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The request `Content-Type` is neither `multipart/form-data` nor a
    /// media type of an allowed type.
    #[error("request content type is not accepted for uploads")]
    UnsupportedMediaType,
    /// A file part (or raw body) whose declared type, extension and content
    /// do not agree on one allowed type.
    #[error("file type not allowed or not matching its content")]
    FileType,
    /// A file part whose name is refused.
    #[error("file name refused")]
    FileName,
    /// More file parts than `max_files`.
    #[error("too many files")]
    TooManyFiles,
    /// A non-file field over its byte cap.
    #[error("form field too large")]
    FieldTooLarge,
    /// A file part over `max_file_size`.
    #[error("file too large")]
    FileTooLarge,
    /// A non-file field not on the allowlist, or not matching its pattern.
    #[error("form field not allowed")]
    FieldRejected,
    /// The body is not well-formed multipart (no or invalid boundary,
    /// truncated body, bad part headers, text outside the parts).
    #[error("malformed multipart body")]
    Malformed,
    /// clamd found malware in a file.
    #[error("malware found")]
    Malware,
    /// A file could not be scanned and `scan.on_error` is `deny`.
    #[error("upload could not be scanned")]
    ScanFailed,
}

impl Violation {
    /// The reason moat answers with (its status, its fixed text, its
    /// `reason` label in logs and metrics).
    pub fn reason(&self) -> Reason {
        match self {
            Self::UnsupportedMediaType | Self::FileType => Reason::UploadType,
            Self::FileName => Reason::UploadName,
            Self::TooManyFiles => Reason::UploadCount,
            Self::FieldTooLarge | Self::FileTooLarge => Reason::BodyTooLarge,
            Self::FieldRejected | Self::Malformed => Reason::BadRequest,
            Self::Malware => Reason::UploadMalware,
            Self::ScanFailed => Reason::ScanUnavailable,
        }
    }
}

/// Logs a refusal at debug level and returns it.
pub(super) fn refuse(v: Violation, detail: impl fmt::Display) -> Violation {
    tracing::debug!(violation = %v, reason = v.reason().as_str(), %detail, "upload refused");
    v
}

#[cfg(test)]
#[path = "tests/violation.rs"]
mod tests;
