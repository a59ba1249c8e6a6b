//! `[cors]` and a route's `cors`: origins, methods and header lists.

use super::dur;
use crate::config::raw::RawCors;
use crate::config::Problems;
use crate::policy::cors::{CorsPolicy, OriginRule};

/// The CORS policy under `key`, over `base` (the defaults, or the global
/// section for a route).
pub(super) fn cors(p: &mut Problems, key: &str, raw: &RawCors, base: &CorsPolicy) -> CorsPolicy {
    let mut c = base.clone();
    if let Some(os) = &raw.allowed_origins {
        c.origins.clear();
        for (i, o) in os.iter().enumerate() {
            match OriginRule::parse(o) {
                Ok(r) => c.origins.push(r),
                Err(e) => p.push(format!("{key}.allowed_origins[{i}]"), e),
            }
        }
    }
    if let Some(ms) = &raw.allowed_methods {
        c.methods.clear();
        for m in ms {
            match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => c.methods.push(m),
                Err(_) => p.push(format!("{key}.allowed_methods"), format!("\"{m}\" is not an HTTP method")),
            }
        }
    }
    let header_list = |p: &mut Problems, name: &str, v: &Option<Vec<String>>, cur: &Vec<String>| -> Vec<String> {
        match v {
            None => cur.clone(),
            Some(hs) => hs
                .iter()
                .filter_map(|h| {
                    let h = h.trim().to_ascii_lowercase();
                    if http::HeaderName::from_bytes(h.as_bytes()).is_ok() {
                        Some(h)
                    } else {
                        p.push(format!("{key}.{name}"), format!("\"{h}\" is not a header name"));
                        None
                    }
                })
                .collect(),
        }
    };
    c.headers = header_list(p, "allowed_headers", &raw.allowed_headers, &c.headers);
    let expose = header_list(p, "expose_headers", &raw.expose_headers, &c.expose);
    let mut c = c.with_expose(expose);
    if let Some(b) = raw.allow_credentials {
        c.credentials = b;
    }
    if let Some(b) = raw.allow_private_network {
        c.private_network = b;
    }
    if let Some(b) = raw.reject_disallowed_origin {
        c.reject_disallowed = b;
    }
    if raw.max_age.is_some() {
        c.max_age = dur(p, &format!("{key}.max_age"), &raw.max_age, c.max_age);
    }
    if c.credentials && c.origins.contains(&OriginRule::Any) {
        p.push(
            format!("{key}.allowed_origins"),
            "\"*\" cannot be combined with allow_credentials = true: list the origins that may send credentials",
        );
    }
    c
}
