//! Redaction of a whole body by its content type ([`redact_body`]): JSON
//! through the JSON walker (duplicate keys included), UTF-8 text through
//! the text redactor, and anything binary replaced whole.

use std::borrow::Cow;

use serde_json::Value;

use super::json::redact_json;
use super::text::redact_text;
use super::REDACTED;

/// Content-type prefixes that are binary whatever the bytes look like.
const BINARY_TYPES: &[&str] = &[
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-protobuf",
    "application/protobuf",
    "application/grpc",
    "application/wasm",
    "application/msgpack",
];

/// Redact a whole body. If the content type mentions json (or, when absent,
/// the body parses as JSON), parse → [`redact_json`] → serialize (compact),
/// so JSON stays valid with the same keys; FastAPI's `{"detail": ...}`
/// (string, or list of objects with loc/msg/type/input/ctx) keeps its shape.
/// A JSON body in which nothing changed is returned byte-identical. Else if
/// it is UTF-8 text (including HTML), [`redact_text`]. Else (binary, or a
/// binary content type) returns [`REDACTED`] as bytes. An empty body is
/// returned unchanged. Returns `(new_body, changed)`.
pub fn redact_body(content_type: Option<&str>, body: &[u8]) -> (Vec<u8>, bool) {
    if body.is_empty() {
        return (Vec::new(), false);
    }
    let content_type = content_type.map(|ct| ct.trim().to_ascii_lowercase());
    let declared_json = content_type.as_deref().is_some_and(|ct| ct.contains("json"));
    let sniff_json = content_type.is_none() && looks_like_json(body);
    if declared_json || sniff_json {
        if let Ok(DupAware(mut value, duplicates)) = serde_json::from_slice::<DupAware>(body) {
            // `|` (not `||`): the redactor runs even when duplicates were found.
            if !(redact_json(&mut value) | duplicates) {
                return (body.to_vec(), false);
            }
            return match serde_json::to_vec(&value) {
                Ok(bytes) => (bytes, true),
                Err(_) => (REDACTED.as_bytes().to_vec(), true),
            };
        }
    }
    let declared_binary = content_type.as_deref().is_some_and(|ct| BINARY_TYPES.iter().any(|b| ct.starts_with(b)));
    if declared_binary {
        return (REDACTED.as_bytes().to_vec(), true);
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => match redact_text(text) {
            Cow::Borrowed(_) => (body.to_vec(), false),
            Cow::Owned(redacted) => (redacted.into_bytes(), true),
        },
        _ => (REDACTED.as_bytes().to_vec(), true),
    }
}

/// A JSON value parsed so that duplicate object keys are seen: every value
/// of a key that occurs more than once in an object becomes [`REDACTED`]
/// (clients disagree on which duplicate wins, so a leak can hide in the one
/// a last-wins parser would drop). The flag says whether any was found.
struct DupAware(Value, bool);

impl<'de> serde::Deserialize<'de> for DupAware {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

struct DupVisitor;

impl<'de> serde::de::Visitor<'de> for DupVisitor {
    type Value = DupAware;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<DupAware, E> {
        Ok(DupAware(Value::Bool(v), false))
    }
    fn visit_i64<E>(self, v: i64) -> Result<DupAware, E> {
        Ok(DupAware(Value::from(v), false))
    }
    fn visit_u64<E>(self, v: u64) -> Result<DupAware, E> {
        Ok(DupAware(Value::from(v), false))
    }
    fn visit_f64<E>(self, v: f64) -> Result<DupAware, E> {
        Ok(DupAware(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number), false))
    }
    fn visit_str<E>(self, v: &str) -> Result<DupAware, E> {
        Ok(DupAware(Value::String(v.to_string()), false))
    }
    fn visit_string<E>(self, v: String) -> Result<DupAware, E> {
        Ok(DupAware(Value::String(v), false))
    }
    fn visit_unit<E>(self) -> Result<DupAware, E> {
        Ok(DupAware(Value::Null, false))
    }
    fn visit_none<E>(self) -> Result<DupAware, E> {
        Ok(DupAware(Value::Null, false))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<DupAware, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<DupAware, A::Error> {
        let mut items = Vec::new();
        let mut dups = false;
        while let Some(DupAware(v, d)) = seq.next_element()? {
            dups |= d;
            items.push(v);
        }
        Ok(DupAware(Value::Array(items), dups))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DupAware, A::Error> {
        let mut out = serde_json::Map::new();
        let mut dups = false;
        while let Some(key) = map.next_key::<String>()? {
            let DupAware(v, d) = map.next_value()?;
            dups |= d;
            if out.contains_key(&key) {
                dups = true;
                out.insert(key, Value::String(REDACTED.to_string()));
            } else {
                out.insert(key, v);
            }
        }
        Ok(DupAware(Value::Object(out), dups))
    }
}

fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{') | Some(b'['))
}

#[cfg(test)]
#[path = "tests/body.rs"]
mod tests;
