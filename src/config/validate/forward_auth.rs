//! `[auth.forward]`: the auth service asked about each request, as an
//! upstream of its own, and the headers copied to and from it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::upstream::{service_section, upstream_section};
use super::{count, dur};
use crate::config::raw::RawForwardAuth;
use crate::config::Problems;
use crate::policy::forward_auth::{ForwardAuthConfig, DEFAULT_REQUEST_HEADERS, DEFAULT_RESPONSE_HEADERS};

/// `[auth.forward]`: the check URL becomes an upstream of its own (its
/// client, TLS settings and address), its path and query are kept aside.
pub(super) fn forward_auth(p: &mut Problems, raw: &RawForwardAuth, base: Option<&Path>) -> Option<ForwardAuthConfig> {
    let Some(url) = raw.url.as_deref() else {
        p.push(
            "auth.forward.url",
            "missing: the auth service's check endpoint, e.g. http://authelia:9091/api/authz/forward-auth",
        );
        return None;
    };
    let parsed = match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            p.push("auth.forward.url", format!("\"{url}\": use http://HOST:PORT/path or https://HOST:PORT/path"));
            return None;
        }
    };
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        p.push("auth.forward.url", "no user, password or #fragment in the URL");
        return None;
    }
    let mut path_and_query = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let as_upstream = service_section(
        parsed.origin().ascii_serialization(),
        [&raw.ca, &raw.server_name, &raw.client_cert, &raw.client_key, &raw.min_version],
    );
    let timeout = dur(p, "auth.forward.timeout", &raw.timeout, Duration::from_secs(5));
    if timeout.is_zero() {
        p.push("auth.forward.timeout", "must be more than 0s");
    }
    let service = upstream_section(p, "auth.forward", "auth-forward", &as_upstream, base, true);
    let service = Arc::new(service);
    let names = |p: &mut Problems, key: &str, v: &Option<Vec<String>>, default: &[&str]| -> Vec<http::HeaderName> {
        let list: Vec<String> = match v {
            Some(v) => v.clone(),
            None => default.iter().map(|s| s.to_string()).collect(),
        };
        list.iter()
            .enumerate()
            .filter_map(|(i, h)| match http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    p.push(format!("{key}[{i}]"), format!("\"{h}\" is not a header name"));
                    None
                }
            })
            .collect()
    };
    let copy_request_headers =
        names(p, "auth.forward.copy_request_headers", &raw.copy_request_headers, DEFAULT_REQUEST_HEADERS);
    let copy_response_headers =
        names(p, "auth.forward.copy_response_headers", &raw.copy_response_headers, DEFAULT_RESPONSE_HEADERS);
    for (i, h) in copy_response_headers.iter().enumerate() {
        if matches!(
            h.as_str(),
            "host"
                | "content-length"
                | "transfer-encoding"
                | "connection"
                | "te"
                | "upgrade"
                | "cookie"
                | "authorization"
        ) {
            p.push(
                format!("auth.forward.copy_response_headers[{i}]"),
                format!("\"{h}\" cannot be set from the auth service's answer"),
            );
        }
    }
    let one = |p: &mut Problems, key: &str, v: &Option<String>, default: &str| -> Option<http::HeaderName> {
        let v = v.as_deref().unwrap_or(default).trim();
        if v.is_empty() {
            return None;
        }
        match http::HeaderName::from_bytes(v.to_ascii_lowercase().as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                p.push(key, format!("\"{v}\" is not a header name"));
                None
            }
        }
    };
    let user_header = one(p, "auth.forward.user_header", &raw.user_header, "remote-user");
    let roles_header = one(p, "auth.forward.roles_header", &raw.roles_header, "remote-groups");
    Some(ForwardAuthConfig {
        url: url.to_string(),
        service,
        path_and_query,
        timeout,
        copy_request_headers,
        copy_response_headers,
        user_header,
        roles_header,
        cache_ttl: dur(p, "auth.forward.cache_ttl", &raw.cache_ttl, Duration::ZERO),
        cache_max: count(p, "auth.forward.cache_max", raw.cache_max, 10_000, 1, 10_000_000) as usize,
    })
}
