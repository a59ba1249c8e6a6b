//! The decisions the rules apply to their matches: whether a match is a
//! leak (looking at its context in the text where needed) and what replaces
//! it, keeping names, schemes and trailing punctuation. Also the judgments
//! they share: which hosts and addresses are internal, which paths are
//! file-system locations, which tokens look like key material.

use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Captures;

use super::REDACTED;

pub(super) fn whole(_text: &str, _caps: &Captures<'_>) -> Option<String> {
    Some(REDACTED.to_owned())
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text.get(..at)?.chars().next_back()
}

fn next_char(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().next()
}

fn char_after_next(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().nth(1)
}

/// Splits trailing sentence punctuation off a match so it stays in the text.
fn split_trailing_punct(s: &str) -> (&str, &str) {
    let core = s.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '}']);
    let core =
        if core.contains('[') { core } else { core.trim_end_matches([']', '.', ',', ';', ':', '!', '?', ')', '}']) };
    (core, &s[core.len()..])
}

fn redacted_with_suffix(suffix: &str) -> String {
    let mut out = String::with_capacity(REDACTED.len() + suffix.len());
    out.push_str(REDACTED);
    out.push_str(suffix);
    out
}

pub(super) fn decide_url(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let (url, suffix) = split_trailing_punct(caps.get(0)?.as_str());
    let (scheme, after) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        return Some(redacted_with_suffix(suffix));
    }
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..authority_end];
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            if userinfo.contains(':') {
                return Some(redacted_with_suffix(suffix));
            }
            host_port
        }
        None => authority,
    };
    // Object-storage URLs name a bucket, not a host.
    let bucket_scheme = BUCKET_SCHEMES.contains(&scheme.as_str());
    if host_is_internal(host_port, !bucket_scheme) {
        return Some(redacted_with_suffix(suffix));
    }
    None
}

/// URL schemes whose authority is a bucket or container name.
const BUCKET_SCHEMES: &[&str] =
    &["s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs", "r2", "oss", "cos"];

/// Whether the host of a URL authority (`host`, `host:port`, `[v6]:port`)
/// is internal: a private address, a cluster-internal name, or (when
/// `single_label_internal`) a single-label name.
fn host_is_internal(host_port: &str, single_label_internal: bool) -> bool {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let inner = bracketed.split(']').next().unwrap_or("");
        let addr = inner.split('%').next().unwrap_or("");
        return addr.parse::<Ipv6Addr>().is_ok_and(is_private_v6);
    }
    let host = host_port.split(':').next().unwrap_or("");
    if host.is_empty() {
        return false;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return is_private_v4(v4);
    }
    is_internal_hostname(host) || (single_label_internal && !host.contains('.'))
}

const INTERNAL_SUFFIXES: &[&str] =
    &[".svc", ".cluster.local", ".internal", ".local", ".lan", ".localdomain", ".home.arpa", ".localhost"];

fn is_internal_hostname(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || INTERNAL_SUFFIXES.iter().any(|s| host.ends_with(s))
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    a == 10
        || a == 127
        || a == 0
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 169 && b == 254)
        || (a == 100 && (64..=127).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    let segments = ip.segments();
    if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfe80 {
        return true;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    if segments[..6] == [0; 6] {
        let [.., a, b, c, d] = ip.octets();
        return is_private_v4(Ipv4Addr::new(a, b, c, d));
    }
    false
}

pub(super) fn decide_header(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let name = caps.get(1)?.as_str();
    let value = caps.get(2)?.as_str().trim();
    if value.is_empty() || value == "*" || value.starts_with(REDACTED) {
        return None;
    }
    Some(format!("{name}{REDACTED}"))
}

pub(super) fn decide_bearer(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    let token_match = caps.get(1)?;
    let token = token_match.as_str().trim_end_matches('.');
    let suffix = &token_match.as_str()[token.len()..];
    let has_digit = token.bytes().any(|b| b.is_ascii_digit());
    let mixed_case = token.bytes().any(|b| b.is_ascii_uppercase()) && token.bytes().any(|b| b.is_ascii_lowercase());
    let has_symbol = token.bytes().any(|b| b"._~+/-=".contains(&b));
    let is_basic = m.as_str()[..5].eq_ignore_ascii_case("basic");
    let secret_like = if is_basic {
        token.len() >= 8 && (has_digit || token.ends_with('=') || (mixed_case && token.len() >= 12))
    } else {
        token.len() >= 8 && (has_digit || mixed_case || has_symbol)
    };
    if !secret_like {
        return None;
    }
    let scheme = text.get(m.start()..token_match.start())?;
    Some(format!("{scheme}{REDACTED}{suffix}"))
}

pub(super) fn decide_aws_secret(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let name = caps.get(1)?.as_str();
    let separator = caps.get(2)?.as_str();
    Some(format!("{name}{separator}{REDACTED}"))
}

pub(super) fn decide_key_value(text: &str, caps: &Captures<'_>) -> Option<String> {
    let name = caps.get(1)?.as_str();
    let separator = caps.get(2)?.as_str();
    let value_match = caps.get(3)?;
    let value = value_match.as_str();
    let (quote, inner) = if let Some(inner) = value.strip_prefix("\\\"") {
        ("\\\"", inner)
    } else if let Some(inner) = value.strip_prefix('"') {
        ("\"", inner)
    } else if let Some(inner) = value.strip_prefix('\'') {
        ("'", inner)
    } else {
        ("", value)
    };
    let already_redacted =
        text.get(value_match.start() + quote.len()..).is_some_and(|after| after.starts_with(REDACTED));
    if inner.is_empty() || already_redacted {
        return None;
    }
    if quote.is_empty() && !separator.contains('=') {
        // Unquoted `name: value`: keep plain words such as `Field`.
        let plain_word = inner.bytes().all(|b| b.is_ascii_alphabetic());
        if plain_word && inner.len() < 12 {
            return None;
        }
    }
    Some(format!("{name}{separator}{quote}{REDACTED}"))
}

pub(super) fn decide_windows_path(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let full = caps.get(0)?.as_str();
    if full.get(2..)?.starts_with("//") {
        return None;
    }
    let (_, suffix) = split_trailing_punct(full);
    Some(redacted_with_suffix(suffix))
}

pub(super) fn decide_unc_path(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    if prev_char(text, m.start()).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let (_, suffix) = split_trailing_punct(m.as_str());
    Some(redacted_with_suffix(suffix))
}

/// First path segments that mark a file-system location.
const FS_ROOTS: &[&str] = &[
    "home",
    "usr",
    "app",
    "var",
    "etc",
    "tmp",
    "opt",
    "srv",
    "root",
    "go",
    "proc",
    "sys",
    "dev",
    "mnt",
    "lib",
    "lib64",
    "bin",
    "sbin",
    "run",
    "Users",
    "private",
    "nix",
    "snap",
    "workspace",
    "builds",
    "rustc",
    "code",
];

/// Segments anywhere in a path that mark a file-system location.
const FS_MARKERS: &[&str] = &["site-packages", "dist-packages", "node_modules", ".git", ".cargo"];

/// File extensions (lower case) that mark source, config or key files.
const FS_EXTENSIONS: &[&str] = &[
    "py",
    "pyc",
    "pyi",
    "go",
    "rs",
    "java",
    "class",
    "jar",
    "war",
    "kt",
    "scala",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "rb",
    "php",
    "so",
    "dll",
    "dylib",
    "exe",
    "toml",
    "yaml",
    "yml",
    "env",
    "pem",
    "key",
    "crt",
    "p12",
    "pfx",
    "conf",
    "cfg",
    "ini",
    "properties",
    "sh",
    "sql",
    "sqlite",
    "db",
    "log",
    "lock",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "swift",
    "pid",
    "sock",
];

/// File names that mark sensitive files regardless of extension.
const FS_NAMES: &[&str] = &[
    "passwd",
    "shadow",
    "credentials",
    "id_rsa",
    "id_ed25519",
    "authorized_keys",
    "known_hosts",
    ".htpasswd",
    "Dockerfile",
];

pub(super) fn decide_posix_path(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    let path = caps.get(1)?.as_str();
    let line_suffix = caps.get(2).map_or("", |g| g.as_str());
    if let Some(prev) = prev_char(text, m.start()) {
        if prev.is_ascii_alphanumeric() || "_./-~%+@\\$".contains(prev) {
            return None;
        }
    }
    let (core, trailing) = if line_suffix.is_empty() { split_trailing_punct(path) } else { (path, "") };
    let tilde = core.starts_with('~');
    let segments: Vec<&str> = core.trim_start_matches('~').split('/').filter(|s| !s.is_empty()).collect();
    let sensitive = if tilde {
        !segments.is_empty()
    } else if segments.len() >= 2 {
        let first = segments[0];
        let last = segments[segments.len() - 1];
        FS_ROOTS.contains(&first)
            || segments.iter().any(|s| FS_MARKERS.contains(s))
            || FS_NAMES.contains(&last)
            || has_sensitive_extension(last)
    } else {
        false
    };
    sensitive.then(|| redacted_with_suffix(trailing))
}

fn has_sensitive_extension(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => {
            let ext = ext.to_ascii_lowercase();
            FS_EXTENSIONS.contains(&ext.as_str())
        }
        _ => false,
    }
}

pub(super) fn decide_ipv6(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    let candidate = if let Some(bracketed) = caps.get(1) {
        bracketed.as_str()
    } else {
        let bare = caps.get(2)?;
        let bad_prev = prev_char(text, bare.start()).is_some_and(|c| c.is_ascii_alphanumeric() || "_:.".contains(c));
        let bad_next = next_char(text, bare.end()).is_some_and(|c| c.is_ascii_alphanumeric() || "_:".contains(c));
        if bad_prev || bad_next {
            return None;
        }
        bare.as_str()
    };
    let addr = candidate.split('%').next().unwrap_or("");
    if !addr.bytes().any(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ip: Ipv6Addr = addr.parse().ok()?;
    if !is_private_v6(ip) {
        return None;
    }
    let (_, suffix) = split_trailing_punct(m.as_str());
    let suffix = if m.as_str().ends_with(']') { "" } else { suffix };
    Some(redacted_with_suffix(suffix))
}

pub(super) fn decide_ipv4(text: &str, caps: &Captures<'_>) -> Option<String> {
    let ip_match = caps.get(1)?;
    if prev_char(text, ip_match.start()) == Some('.') {
        return None;
    }
    if next_char(text, ip_match.end()) == Some('.')
        && char_after_next(text, ip_match.end()).is_some_and(|c| c.is_ascii_digit())
    {
        return None;
    }
    let ip: Ipv4Addr = ip_match.as_str().parse().ok()?;
    is_private_v4(ip).then(|| REDACTED.to_owned())
}

pub(super) fn decide_internal_host(text: &str, caps: &Captures<'_>) -> Option<String> {
    let host = caps.get(1)?;
    if prev_char(text, host.start()) == Some('/') {
        return None;
    }
    let next = next_char(text, host.end());
    let continues = matches!(next, Some('.') | Some('-'))
        && char_after_next(text, host.end()).is_some_and(|c| c.is_ascii_alphanumeric());
    if continues {
        return None;
    }
    Some(REDACTED.to_owned())
}

pub(super) fn decide_long_token(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let token = caps.get(0)?.as_str();
    looks_like_secret_token(token).then(|| REDACTED.to_owned())
}

/// A run of base64/base64url/hex characters (at least 32 long) that looks
/// like key material rather than words: a 32+ hex run with letters and
/// digits, or a 32+ run with upper case, lower case, at least two digits and
/// a long unbroken piece.
fn looks_like_secret_token(token: &str) -> bool {
    let core = token.trim_end_matches('=');
    let pieces = || core.split(['/', '_', '-', '+']);
    let hex_piece = pieces().any(|piece| {
        let piece = piece.strip_prefix("0x").or_else(|| piece.strip_prefix("0X")).unwrap_or(piece);
        piece.len() >= 32
            && piece.bytes().all(|b| b.is_ascii_hexdigit())
            && piece.bytes().any(|b| b.is_ascii_digit())
            && piece.bytes().any(|b| b.is_ascii_alphabetic())
    });
    if hex_piece {
        return true;
    }
    if core.len() < 32 {
        return false;
    }
    let upper = core.bytes().any(|b| b.is_ascii_uppercase());
    let lower = core.bytes().any(|b| b.is_ascii_lowercase());
    let digits = core.bytes().filter(u8::is_ascii_digit).count();
    let longest = pieces().map(str::len).max().unwrap_or(0);
    upper && lower && digits >= 2 && longest >= 12
}
