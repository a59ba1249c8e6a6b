//! A route's upload policy: [`UploadRules`] (the `upload` table of its
//! configuration) and [`FieldRule`] (one allowed non-file field), with the
//! checks read directly off them (a field value's full pattern match,
//! whether a type may carry macros).

use crate::upload::content::DEFAULT_INSPECT_WINDOW;
use crate::upload::types::FileType;

/// A route's upload policy: the `upload` table of its configuration.
#[derive(Debug, Clone)]
pub struct UploadRules {
    /// Allowed file types (`types`).
    pub types: Vec<&'static FileType>,
    /// Most file parts in one request (`max_files`).
    pub max_files: usize,
    /// Most bytes in one file part (`max_file_size`).
    pub max_file_size: u64,
    /// Default cap in bytes of a non-file field (`max_field_bytes`).
    pub max_field_bytes: u64,
    /// Allowlist of non-file fields (`fields`); empty allows any field name.
    pub fields: Vec<FieldRule>,
    /// How far into a file moat looks for a structure it needs
    /// (`inspect_window`): an OLE2 directory past it is refused, and the tail
    /// kept of a ZIP-based file is 1/64 of it.
    pub inspect_window: u64,
    /// Stream every file to clamd (`scan`); needs `[scan]`.
    pub scan: bool,
}

impl Default for UploadRules {
    fn default() -> Self {
        Self {
            types: Vec::new(),
            max_files: 10,
            max_file_size: u64::MAX,
            max_field_bytes: 64 * 1024,
            fields: Vec::new(),
            inspect_window: DEFAULT_INSPECT_WINDOW,
            scan: false,
        }
    }
}

/// One allowed non-file form field.
///
/// When [`UploadRules::fields`] is not empty it lists every non-file field a
/// request may carry: a field with another name is refused with
/// [`Violation::FieldRejected`](super::Violation::FieldRejected), and so is
/// a value the pattern does not match in full.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The field name, compared exactly.
    pub name: String,
    /// Byte cap of the value; `None` uses [`UploadRules::max_field_bytes`].
    pub max_bytes: Option<u64>,
    /// A pattern the whole value must match. A value is accepted only when a
    /// match spans it from its first to its last byte; build rules with
    /// [`FieldRule::new`], which anchors the pattern, so that alternations
    /// are tried for a full match.
    pub pattern: Option<regex::Regex>,
}

impl FieldRule {
    /// Builds a rule, compiling `pattern` anchored at both ends
    /// (`\A(?:pattern)\z`).
    pub fn new(name: impl Into<String>, max_bytes: Option<u64>, pattern: Option<&str>) -> Result<Self, regex::Error> {
        let pattern = pattern.map(|p| regex::Regex::new(&format!(r"\A(?:{p})\z"))).transpose()?;
        Ok(Self { name: name.into(), max_bytes, pattern })
    }

    pub(super) fn full_match(&self, value: &[u8]) -> bool {
        let Some(pattern) = &self.pattern else {
            return true;
        };
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        pattern.find(text).is_some_and(|m| m.start() == 0 && m.end() == text.len())
    }
}

/// Whether a file of type `ty` may carry macros and active content: the route
/// lists the macro-enabled type of its Office family (docm for docx and doc,
/// xlsm for xlsx and xls, pptm for pptx and ppt).
pub(super) fn macros_allowed(ty: &FileType, rules: &UploadRules) -> bool {
    ty.is_macro() || ty.group().is_some_and(|g| rules.types.iter().any(|t| t.is_macro() && t.group() == Some(g)))
}

#[cfg(test)]
#[path = "tests/rules.rs"]
mod tests;
