//! The JSON walker ([`redact_json`]): every string value goes through
//! [`redact_text`], and every string under a sensitive key (or the echoed
//! `input` of a FastAPI error about a sensitive field) is replaced whole.

use std::borrow::Cow;

use serde_json::Value;

use super::names::name_words;
use super::text::redact_text;
use super::REDACTED;

/// Redact every string value in a JSON document in place, recursively.
/// Object keys are kept; numbers, booleans and null are unchanged. Strings
/// under a sensitive key (`password`, `token`, `api_key`, `secret`,
/// `authorization`, ...) are replaced whole, as is the echoed `input` of a
/// FastAPI validation error whose `loc` names a sensitive field; all other
/// strings go through [`redact_text`]. Returns true if anything changed.
pub fn redact_json(value: &mut Value) -> bool {
    match value {
        Value::String(text) => redact_json_string(text),
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= redact_json(item);
            }
            changed
        }
        Value::Object(map) => {
            let input_is_sensitive = map
                .get("loc")
                .and_then(Value::as_array)
                .is_some_and(|loc| loc.iter().filter_map(Value::as_str).any(is_sensitive_json_key));
            let mut changed = false;
            for (key, child) in map.iter_mut() {
                if is_sensitive_json_key(key) || (input_is_sensitive && key == "input") {
                    changed |= replace_all_strings(child);
                } else {
                    changed |= redact_json(child);
                }
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn redact_json_string(text: &mut String) -> bool {
    match redact_text(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(redacted) => {
            *text = redacted;
            true
        }
    }
}

/// Replaces every non-empty string in `value` with [`REDACTED`].
fn replace_all_strings(value: &mut Value) -> bool {
    match value {
        Value::String(text) => {
            if text.is_empty() || text == REDACTED {
                false
            } else {
                REDACTED.clone_into(text);
                true
            }
        }
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= replace_all_strings(item);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for child in map.values_mut() {
                changed |= replace_all_strings(child);
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Words that make a JSON key sensitive.
const JSON_KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "credential",
    "credentials",
    "authorization",
    "cookie",
    "signature",
    "jwt",
    "apikey",
];

/// Joined word sequences that make a JSON key sensitive.
const JSON_KEY_JOINED: &[&str] = &[
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "clientsecret",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "sessionid",
    "sessiontoken",
];

fn is_sensitive_json_key(key: &str) -> bool {
    let words = name_words(key);
    if words.iter().any(|w| JSON_KEY_WORDS.contains(&w.as_str())) {
        return true;
    }
    let joined = words.concat();
    JSON_KEY_JOINED.iter().any(|j| joined.contains(j))
}

#[cfg(test)]
#[path = "tests/json.rs"]
mod tests;
