//! A route's `upload`: accepted file types, multipart field rules and
//! the inspection window.

use super::{count, size};
use crate::config::raw::RawUpload;
use crate::config::units::Scalar;
use crate::config::Problems;

/// The upload rules under `key`; `max_body` is the route's body limit (the
/// default largest file).
pub(super) fn upload(p: &mut Problems, key: &str, u: &RawUpload, max_body: u64) -> Option<crate::upload::UploadRules> {
    let mut types = Vec::new();
    match &u.types {
        None => p.push(format!("{key}.types"), "missing: list the accepted types, e.g. [\"pdf\", \"png\"]"),
        Some(ts) if ts.is_empty() => p.push(format!("{key}.types"), "must name at least one type"),
        Some(ts) => {
            for t in ts {
                match crate::upload::lookup(t) {
                    Some(ft) if !types.iter().any(|x: &&crate::upload::FileType| x.name == ft.name) => types.push(ft),
                    Some(_) => {}
                    None => {
                        let known: Vec<&str> = crate::upload::types::all().iter().map(|t| t.name).collect();
                        p.push(format!("{key}.types"), format!("unknown type \"{t}\" (known: {})", known.join(", ")));
                    }
                }
            }
        }
    }
    let mut fields = Vec::new();
    for (i, f) in u.fields.iter().flatten().enumerate() {
        let fk = format!("{key}.fields[{i}]");
        let Some(name) = f.name.clone() else {
            p.push(format!("{fk}.name"), "missing");
            continue;
        };
        let max_bytes = f.max_bytes.as_ref().map(|m| size(p, &format!("{fk}.max_bytes"), &Some(m.clone()), 0));
        match crate::upload::FieldRule::new(name, max_bytes, f.pattern.as_deref()) {
            Ok(rule) => fields.push(rule),
            Err(e) => p.push(format!("{fk}.pattern"), format!("invalid regular expression: {e}")),
        }
    }
    Some(crate::upload::UploadRules {
        types,
        max_files: count(p, &format!("{key}.max_files"), u.max_files, 10, 1, 10_000) as usize,
        max_file_size: size(p, &format!("{key}.max_file_size"), &u.max_file_size, max_body),
        max_field_bytes: size(p, &format!("{key}.max_field_bytes"), &u.max_field_bytes, 64 * 1024),
        fields,
        inspect_window: inspect_window(p, &format!("{key}.inspect_window"), &u.inspect_window),
        scan: u.scan.unwrap_or(false),
    })
}

fn inspect_window(p: &mut Problems, key: &str, raw: &Option<Scalar>) -> u64 {
    let w = size(p, key, raw, crate::upload::DEFAULT_INSPECT_WINDOW);
    if raw.is_some() && !(crate::upload::MIN_INSPECT_WINDOW..=(4 << 30)).contains(&w) {
        p.push(key, "must be between 8MiB and 4GiB");
    }
    w
}
