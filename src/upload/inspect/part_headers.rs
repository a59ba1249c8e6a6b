//! The inspector's own strict reading of a part's header block
//! ([`parse_part_headers`]), which must agree with `multer`'s, and the
//! header syntax it shares with [`classify`](fn@super::classify): media types
//! and `;`-separated parameter lists.

use super::framing::find;
use super::violation::{refuse, Violation};

/// The most header lines in one part.
const MAX_PART_HEADERS: usize = 16;

/// What the inspector reads from a part's header block.
#[derive(Debug)]
pub(super) struct PartHeaders {
    pub(super) name: String,
    pub(super) filename: Option<String>,
    /// Lowercase `type/subtype` of `Content-Type`; empty when unparsable.
    pub(super) content_type: Option<String>,
    /// Every header: lowercase name and value without surrounding blanks.
    raw: Vec<(String, Vec<u8>)>,
}

impl PartHeaders {
    /// Requires `multer`'s reading of the part to equal this one.
    pub(super) fn agree_with(&self, field: &multer::Field<'_>) -> Result<(), Violation> {
        let same_names = field.name() == Some(self.name.as_str()) && field.file_name() == self.filename.as_deref();
        let map = field.headers();
        let same_headers = map.len() == self.raw.len()
            && self
                .raw
                .iter()
                .all(|(k, v)| map.get(k.as_str()).is_some_and(|got| trim_blanks(got.as_bytes()) == v.as_slice()));
        if same_names && same_headers {
            Ok(())
        } else {
            Err(refuse(Violation::Malformed, "parser disagreement on part headers"))
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a part header block (header lines, then an empty line).
pub(super) fn parse_part_headers(block: &[u8]) -> Result<PartHeaders, Violation> {
    let bad = |what: &str| refuse(Violation::Malformed, format_args!("part headers: {what}"));
    let body = block.strip_suffix(b"\r\n\r\n").ok_or_else(|| bad("unterminated"))?;
    let raw = parse_header_lines(body)?;
    let get = |k: &str| raw.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_slice());
    let disposition = get("content-disposition").ok_or_else(|| bad("no content-disposition"))?;
    let (kind, params) = match disposition.iter().position(|&b| b == b';') {
        Some(p) => disposition.split_at(p),
        None => (disposition, &b""[..]),
    };
    if !trim_blanks(kind).eq_ignore_ascii_case(b"form-data") {
        return Err(bad("disposition is not form-data"));
    }
    let params = parse_params(params).map_err(|e| match e {
        ParamError::Backslash(name) if name == "filename" => refuse(Violation::FileName, "backslash in a file name"),
        _ => bad("bad disposition parameters"),
    })?;
    let mut name = None;
    let mut filename = None;
    for (k, v) in params {
        if k.ends_with('*') {
            return Err(bad("extended disposition parameter"));
        }
        match k.as_str() {
            "name" => name = Some(v),
            "filename" => filename = Some(v),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| bad("no field name"))?;
    if let Some(cte) = get("content-transfer-encoding") {
        let cte = String::from_utf8_lossy(cte).to_ascii_lowercase();
        if !matches!(cte.as_str(), "7bit" | "8bit" | "binary") {
            return Err(bad("content-transfer-encoding"));
        }
    }
    let content_type = get("content-type").map(|v| split_media_type(v).map(|(essence, _)| essence).unwrap_or_default());
    Ok(PartHeaders { name, filename, content_type, raw })
}

/// Reads the header lines of a block (without its final empty line): each
/// `name: value` with a token name and a value with no control character
/// but tab, no name twice, at most [`MAX_PART_HEADERS`] lines. Names are
/// lowercased, values kept without surrounding blanks.
fn parse_header_lines(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Violation> {
    let bad = |what: &str| refuse(Violation::Malformed, format_args!("part headers: {what}"));
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = body;
    loop {
        let (line, more) = match find(rest, b"\r\n", 0) {
            Some(p) => (&rest[..p], Some(&rest[p + 2..])),
            None => (rest, None),
        };
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| bad("line without a colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("bad header name"));
        }
        let value = trim_blanks(&line[colon + 1..]);
        if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80) {
            return Err(bad("control character in a header value"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if raw.iter().any(|(k, _)| *k == name) {
            return Err(bad("repeated header"));
        }
        if raw.len() == MAX_PART_HEADERS {
            return Err(bad("too many headers"));
        }
        raw.push((name, value.to_vec()));
        match more {
            Some(m) => rest = m,
            None => break,
        }
    }
    Ok(raw)
}

/// Splits a media type into its lowercase `type/subtype` and the bytes from
/// the first `;` on.
pub(super) fn split_media_type(value: &[u8]) -> Option<(String, &[u8])> {
    let (essence, params) = match value.iter().position(|&b| b == b';') {
        Some(p) => value.split_at(p),
        None => (value, &b""[..]),
    };
    let essence = trim_blanks(essence);
    let slash = essence.iter().position(|&b| b == b'/')?;
    let (ty, sub) = (&essence[..slash], &essence[slash + 1..]);
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| is_tchar(b));
    if !token(ty) || !token(sub) {
        return None;
    }
    Some((String::from_utf8_lossy(essence).to_ascii_lowercase(), params))
}

/// Why a parameter list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ParamError {
    /// Not `; name=value` syntax, a repeated name, or a value not UTF-8.
    Syntax,
    /// A backslash in the value of the named parameter. Parsers disagree on
    /// backslash escapes (and on Windows paths sent as file names), so no
    /// backslash is accepted.
    Backslash(String),
}

/// Parses `*( OWS ";" OWS name OWS "=" OWS value )` where a value is a token
/// or a quoted string without backslashes. Names are lowercased; a repeated
/// name is an error. Values must be UTF-8.
pub(super) fn parse_params(s: &[u8]) -> Result<Vec<(String, String)>, ParamError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    loop {
        skip_ows(s, &mut i);
        if i == s.len() {
            return Ok(out);
        }
        if s[i] != b';' {
            return Err(ParamError::Syntax);
        }
        i += 1;
        skip_ows(s, &mut i);
        if i == s.len() {
            return Ok(out);
        }
        if s[i] == b';' {
            continue;
        }
        let start = i;
        while i < s.len() && is_tchar(s[i]) {
            i += 1;
        }
        if i == start {
            return Err(ParamError::Syntax);
        }
        let name = String::from_utf8_lossy(&s[start..i]).to_ascii_lowercase();
        skip_ows(s, &mut i);
        if s.get(i) != Some(&b'=') {
            return Err(ParamError::Syntax);
        }
        i += 1;
        skip_ows(s, &mut i);
        let value = match param_value(s, &mut i) {
            Ok(v) => v,
            Err(BadValue::Syntax) => return Err(ParamError::Syntax),
            Err(BadValue::Backslash) => return Err(ParamError::Backslash(name)),
        };
        let value = String::from_utf8(value.to_vec()).map_err(|_| ParamError::Syntax)?;
        if out.iter().any(|(k, _)| *k == name) {
            return Err(ParamError::Syntax);
        }
        out.push((name, value));
    }
}

/// Moves `*i` past optional whitespace (spaces and tabs).
fn skip_ows(s: &[u8], i: &mut usize) {
    while *i < s.len() && matches!(s[*i], b' ' | b'\t') {
        *i += 1;
    }
}

/// Why a parameter value was refused ([`parse_params`] names the parameter).
enum BadValue {
    /// Not a token or a quoted string.
    Syntax,
    /// A backslash in the value.
    Backslash,
}

/// Reads the value at `*i` (a quoted string or a token) and moves `*i` past it.
fn param_value<'a>(s: &'a [u8], i: &mut usize) -> Result<&'a [u8], BadValue> {
    let mut p = *i;
    let value = if s.get(p) == Some(&b'"') {
        p += 1;
        let start = p;
        loop {
            match s.get(p) {
                None => return Err(BadValue::Syntax),
                Some(b'"') => break,
                Some(b'\\') => return Err(BadValue::Backslash),
                Some(&b) if b != b'\t' && (b < 0x20 || b == 0x7f) => return Err(BadValue::Syntax),
                Some(_) => p += 1,
            }
        }
        let v = &s[start..p];
        p += 1;
        v
    } else {
        let start = p;
        while p < s.len() && !matches!(s[p], b' ' | b'\t' | b';') {
            let b = s[p];
            if b == b'\\' {
                return Err(BadValue::Backslash);
            }
            if b == b'"' || b < 0x20 || b == 0x7f {
                return Err(BadValue::Syntax);
            }
            p += 1;
        }
        if p == start {
            return Err(BadValue::Syntax);
        }
        &s[start..p]
    };
    *i = p;
    Ok(value)
}

#[cfg(test)]
#[path = "tests/part_headers.rs"]
mod tests;
