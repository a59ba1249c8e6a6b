//! The JSON Schema of the config file, printed by `moat schema` and
//! committed as `config/moat.schema.json` for editors (Taplo / Even Better
//! TOML read it from a `#:schema` first line).
//!
//! It is generated from the serde structs of `raw.rs`, the ones that parse
//! the file, so it cannot drift from them; their doc comments become the
//! descriptions. What it checks is the file's shape (key names, types,
//! units, fixed choices); the rules across keys stay with `moat check`.

use serde_json::Value;

use super::raw::RawConfig;
use super::FILE_KEYS;

/// The schema as a JSON value (JSON Schema 2020-12).
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut generated = generator.into_root_schema_for::<RawConfig>().to_value();
    drop_null(&mut generated);
    add_file_keys(&mut generated);
    // `$schema`, title and description first: what a reader of the file looks for.
    let mut root = serde_json::Map::new();
    if let Value::Object(mut rest) = generated {
        if let Some(meta) = rest.remove("$schema") {
            root.insert("$schema".into(), meta);
        }
        root.insert("title".into(), Value::from("moat config file"));
        root.insert(
            "description".into(),
            Value::from(
                "The TOML config file of moat, the hardened TLS reverse-proxy sidecar. \
                 Unknown keys are errors; `moat check --config FILE` validates a file fully.",
            ),
        );
        for (k, v) in rest {
            root.entry(k).or_insert(v);
        }
    }
    Value::Object(root)
}

/// TOML has no null: an absent key is the only way to leave a value unset,
/// so the `null` alternatives and `null` defaults schemars gives every
/// `Option` go.
fn drop_null(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("default").is_some_and(Value::is_null) {
                o.remove("default");
            }
            if let Some(Value::Array(types)) = o.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    o.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = o.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null") || s.as_object().is_some_and(|m| m.len() > 1));
                if any.len() == 1 {
                    if let Some(Value::Object(inner)) = any.pop() {
                        o.remove("anyOf");
                        for (k, val) in inner {
                            o.entry(k).or_insert(val);
                        }
                    }
                }
            }
            o.values_mut().for_each(drop_null);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The loader also accepts `KEY_file = "/path"` for the keys of
/// [`FILE_KEYS`] (and removes it before serde sees the table), so the raw
/// structs do not declare them: add them to their sections here.
fn add_file_keys(schema: &mut Value) {
    for key in FILE_KEYS {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        let Some(def) = section_schema(schema, section) else {
            continue;
        };
        let Some(props) = def.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        props.insert(
            format!("{name}_file"),
            serde_json::json!({
                "description": format!(
                    "A file whose content (minus a trailing newline) is `{key}`, e.g. a mounted secret; \
                     relative to this file's directory. Set `{name}` or `{name}_file`, not both."
                ),
                "type": "string"
            }),
        );
    }
}

/// The object schema of a top-level section, following a `$ref` into `$defs`.
fn section_schema<'a>(schema: &'a mut Value, section: &str) -> Option<&'a mut Value> {
    let reference = schema.pointer(&format!("/properties/{section}/$ref"))?.as_str()?.to_string();
    let pointer = reference.strip_prefix('#')?;
    schema.pointer_mut(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_strings_with_patterns_and_file_keys_are_declared() {
        let s = json_schema();
        let timeout = s.pointer("/$defs/RawLimits/properties/idle_timeout").unwrap();
        assert_eq!(timeout["$ref"], "#/$defs/Duration", "{timeout}");
        assert!(s.pointer("/$defs/Duration/anyOf/0/pattern").is_some());
        assert!(s.pointer("/$defs/Size/anyOf/0/pattern").is_some());
        assert!(s.pointer("/$defs/RawUpstream/properties/url_file").is_some());
        assert!(s.pointer("/$defs/RawRateLimit/properties/redis_url_file").is_some());
        assert_eq!(s["additionalProperties"], false);
    }
}
