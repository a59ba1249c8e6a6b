//! Redaction of secrets (interim: query strings only).

use std::borrow::Cow;

/// Replacement text for anything removed.
pub const REDACTED: &str = "[redacted]";

const SENSITIVE: &[&str] = &[
    "token", "key", "api_key", "apikey", "password", "passwd", "pwd", "secret", "signature", "sig",
    "access_token", "refresh_token", "id_token", "code", "auth", "session", "credential", "credentials",
];

fn sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE.iter().any(|s| n == *s || n.ends_with(&format!("_{s}")) || n.ends_with(&format!("-{s}")))
}

/// Redacts values of sensitive query parameters.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(|kv| kv.split_once('=').is_some_and(|(k, _)| sensitive(k))) {
        return Cow::Borrowed(query);
    }
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if sensitive(k) => format!("{k}={REDACTED}"),
            _ => kv.to_string(),
        })
        .collect();
    Cow::Owned(parts.join("&"))
}
