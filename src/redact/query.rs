//! Query-string redaction for the access log ([`redact_query`]): the value
//! of every parameter whose (decoded) name is sensitive is replaced.

use std::borrow::Cow;

use super::names::name_words;
use super::REDACTED;

/// Words that make a query parameter name sensitive.
const QUERY_WORDS: &[&str] = &[
    "token",
    "key",
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "signature",
    "sig",
    "code",
    "auth",
    "authorization",
    "session",
    "credential",
    "credentials",
    "jwt",
];

/// Words that make a query parameter name sensitive when the whole name
/// (words joined) starts or ends with them: `sessionid`, `xapikey`.
const QUERY_AFFIX_WORDS: &[&str] = &[
    "token",
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "signature",
    "session",
    "credential",
    "credentials",
];

fn is_sensitive_query_name(raw_name: &str) -> bool {
    let name = percent_decode(raw_name);
    let words = name_words(&name);
    if words.iter().any(|w| QUERY_WORDS.contains(&w.as_str())) {
        return true;
    }
    let joined = words.concat();
    QUERY_AFFIX_WORDS.iter().any(|w| joined.starts_with(w) || joined.ends_with(w))
}

/// Decodes `%XX` escapes and `+` (as space); invalid escapes stay literal.
///
/// This is the decoding of `application/x-www-form-urlencoded`, which query
/// strings use: a space is sent as `+`, so `api+key` must read as the two
/// words `api key`, as `api%20key` does. The `percent-encoding` crate
/// decodes `%XX` only (RFC 3986) and leaves `+` alone, and `url`'s
/// `form_urlencoded` decodes only whole `name=value&...` strings, hence this
/// wrapper: `+` is replaced first, so an encoded `%2B` stays a literal `+`.
/// It borrows when there is nothing to decode.
fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let spaced = raw.replace('+', " ");
    Cow::Owned(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// Redact values of sensitive query parameters: names (case-insensitive,
/// percent-decoded, also with a prefix or suffix like `x_api_key`,
/// `access_token`, `client_secret`, `X-Amz-Signature`, `sessionId`) built on
/// token, key, api_key, apikey, password, passwd, pwd, secret, signature,
/// sig, access_token, refresh_token, id_token, code, auth, session,
/// credential(s) become `name=[redacted]`. Parameters without `=` or with an
/// empty value, and all other parameters, are unchanged; order is kept.
/// Input is the raw query string without `?`. Returns `Cow::Borrowed` when
/// unchanged.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    let needs_redaction = |param: &str| match param.split_once('=') {
        Some((name, value)) => !value.is_empty() && is_sensitive_query_name(name),
        None => false,
    };
    if !query.split('&').any(needs_redaction) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for (index, param) in query.split('&').enumerate() {
        if index > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if needs_redaction(param) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(param),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
#[path = "tests/query.rs"]
mod tests;
