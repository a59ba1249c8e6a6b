//! Checks on the file names clients send with uploaded files.
//!
//! # Threat
//!
//! The `filename` of a multipart file part is chosen by the client. Upstreams
//! often reuse it to store the file (MinerU writes outputs next to a name
//! derived from it) or show it to people. A hostile name can escape the
//! target directory (`../../etc/cron.d/x`, `..\\..\\x`), hide control or
//! bidirectional-override characters (`invoice\u{202E}fdp.exe` shows as
//! `invoiceexe.pdf`), or make a file look like a document while the OS will
//! run it (`invoice.pdf.exe`, `invoice.exe.` which Windows saves as
//! `invoice.exe`).
//!
//! # Rules
//!
//! [`check_filename`] refuses a name that is empty, longer than 255 bytes,
//! holds `/` or `\`, holds `..`, consists only of dots, holds a control
//! character (NUL included) or a bidirectional/invisible formatting
//! character, holds a character Windows reserves (`: * ? " < > |`), holds a
//! look-alike of `/`, `\` or `.` that NFKC normalization folds into the real
//! one (`..／..／x` becomes `../../x` in an upstream that normalizes), ends in a
//! dot or a space, or whose last extension is an executable or script one
//! (see [`EXECUTABLE_EXTENSIONS`]); the last rule also covers double
//! extensions such as `invoice.pdf.exe`. It is used for the file parts of
//! routes with an `upload` table; a refusal becomes the `FileName` violation
//! (`400 upload_name`).

/// Extensions of files an OS or a common runtime will execute or install.
pub const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "com", "bat", "cmd", "scr", "pif", "msi", "msp", "vbs", "vbe", "js", "jse", "ws", "wsf", "wsh",
    "ps1", "psm1", "sh", "bash", "jar", "app", "apk", "elf", "bin", "run", "cpl", "hta", "lnk", "reg", "so", "dylib",
];

/// The longest accepted file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a file name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// The name is empty.
    #[error("file name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("file name is longer than 255 bytes")]
    TooLong,
    /// The name holds `/` or `\`.
    #[error("file name holds a path separator")]
    PathSeparator,
    /// The name holds `..`.
    #[error("file name holds `..`")]
    DotDot,
    /// The name is made only of dots.
    #[error("file name is only dots")]
    OnlyDots,
    /// The name holds a control, bidirectional or invisible format character.
    #[error("file name holds a control or formatting character")]
    ControlChar,
    /// The name holds a character Windows reserves in file names.
    #[error("file name holds a reserved character")]
    ReservedChar,
    /// The name holds a look-alike of a slash, backslash or dot that Unicode
    /// normalization (NFKC) or a careless display turns into the real one.
    #[error("file name holds a look-alike of a path separator or dot")]
    Confusable,
    /// The name ends in a dot or a space, which Windows strips.
    #[error("file name ends in a dot or a space")]
    TrailingDotOrSpace,
    /// The last extension is an executable one.
    #[error("file name has an executable extension")]
    ExecutableExtension,
}

/// Whether `c` is a formatting character that changes how a name displays
/// without being visible: bidirectional embeddings, overrides, isolates and
/// marks, zero-width characters and the byte order mark.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{061c}'
            | '\u{feff}'
    )
}

/// Whether `c` looks like, or normalizes to, `/`, `\\` or `.`: fullwidth
/// and small forms, division and fraction slashes, dot leaders.
fn is_confusable(c: char) -> bool {
    matches!(
        c,
        '\u{ff0f}'
            | '\u{ff3c}'
            | '\u{fe68}'
            | '\u{2215}'
            | '\u{2044}'
            | '\u{29f8}'
            | '\u{29f9}'
            | '\u{ff0e}'
            | '\u{fe52}'
            | '\u{2024}'
            | '\u{2025}'
            | '\u{2026}'
    )
}

/// Checks a client-supplied file name.
pub fn check_filename(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameProblem::TooLong);
    }
    if name.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err(NameProblem::ControlChar);
    }
    if name.contains(['/', '\\']) {
        return Err(NameProblem::PathSeparator);
    }
    if name.chars().all(|c| c == '.') {
        return Err(NameProblem::OnlyDots);
    }
    if name.contains("..") {
        return Err(NameProblem::DotDot);
    }
    if name.contains([':', '*', '?', '"', '<', '>', '|']) {
        return Err(NameProblem::ReservedChar);
    }
    if name.chars().any(is_confusable) {
        return Err(NameProblem::Confusable);
    }
    if name.ends_with(['.', ' ']) {
        return Err(NameProblem::TrailingDotOrSpace);
    }
    if let Some(ext) = extension(name) {
        if EXECUTABLE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(NameProblem::ExecutableExtension);
        }
    }
    Ok(())
}

/// The last extension of `name`, lowercased, without the dot.
///
/// A name without a dot, with a dot only at its start (`.bashrc`), or ending
/// in a dot has none.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    Some(ext.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "report.pdf",
            "Scan 2024-01-02 (1).PNG",
            "报告.docx",
            "a",
            "résumé.final.odt",
            ".hidden.txt",
            "data.tar.csv",
        ] {
            assert_eq!(check_filename(n), Ok(()), "{n}");
        }
        assert_eq!(check_filename(&"a".repeat(255)), Ok(()));
    }

    #[test]
    fn refuses_each_rule() {
        use NameProblem::*;
        let cases: &[(&str, NameProblem)] = &[
            ("", Empty),
            ("../../etc/passwd", PathSeparator),
            ("dir/report.pdf", PathSeparator),
            ("..\\..\\boot.ini", PathSeparator),
            ("C:\\fakepath\\x.pdf", PathSeparator),
            ("..", OnlyDots),
            (".", OnlyDots),
            ("...", OnlyDots),
            ("x..pdf", DotDot),
            ("..pdf", DotDot),
            ("a\0b.pdf", ControlChar),
            ("a\nb.pdf", ControlChar),
            ("a\u{7f}.pdf", ControlChar),
            ("a\u{85}.pdf", ControlChar),
            ("invoice\u{202e}fdp.exe", ControlChar),
            ("in\u{200b}voice.pdf", ControlChar),
            ("report.pdf:evil.exe", ReservedChar),
            ("what?.pdf", ReservedChar),
            ("x<script>.pdf", ReservedChar),
            ("etc\u{ff0f}passwd.txt", Confusable),
            ("a\u{ff3c}b.pdf", Confusable),
            ("x\u{2215}y.pdf", Confusable),
            ("report\u{ff0e}exe", Confusable),
            ("a\u{2025}pdf", Confusable),
            ("invoice.exe.", TrailingDotOrSpace),
            ("invoice.exe ", TrailingDotOrSpace),
            ("invoice.pdf.exe", ExecutableExtension),
            ("invoice.PDF.EXE", ExecutableExtension),
            ("setup.msi", ExecutableExtension),
            ("run.sh", ExecutableExtension),
            ("lib.so", ExecutableExtension),
            ("app.jar", ExecutableExtension),
            ("x.Ps1", ExecutableExtension),
        ];
        for (name, want) in cases {
            assert_eq!(check_filename(name), Err(*want), "{name:?}");
        }
        assert_eq!(check_filename(&"a".repeat(256)), Err(TooLong));
        assert_eq!(check_filename(&"é".repeat(128)), Err(TooLong));
        for ext in EXECUTABLE_EXTENSIONS {
            assert_eq!(check_filename(&format!("doc.pdf.{ext}")), Err(ExecutableExtension));
            assert_eq!(check_filename(&format!("x.{ext}")), Err(ExecutableExtension));
        }
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a.PDF").as_deref(), Some("pdf"));
        assert_eq!(extension("a.tar.GZ").as_deref(), Some("gz"));
        assert_eq!(extension("noext"), None);
        assert_eq!(extension(".bashrc"), None);
        assert_eq!(extension("trailing."), None);
        assert_eq!(extension("ÄRGER.ÖDT").as_deref(), Some("ödt"));
    }
}
