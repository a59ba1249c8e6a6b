//! `[auth.session]` (sign-in sessions: keys, paths, lifetimes, backend)
//! and `[auth.paperless]`, the backend that checks passwords against
//! paperless-ngx.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::dur;
use super::upstream::{service_section, upstream_section};
use crate::config::raw::{RawPaperless, RawSession};
use crate::config::{resolve_relative, Problems};
use crate::policy::session::{parse_keys, Backend, PaperlessConfig, SessionConfig};

/// `[auth.paperless]`: paperless-ngx as an upstream of its own.
pub(super) fn paperless(p: &mut Problems, raw: &RawPaperless, base: Option<&Path>) -> Option<PaperlessConfig> {
    let Some(url) = raw.url.as_deref() else {
        p.push("auth.paperless.url", "missing: paperless-ngx's base URL, e.g. http://paperless-ngx:8000");
        return None;
    };
    if url.starts_with("unix:") {
        p.push("auth.paperless.url", "use http://HOST:PORT or https://HOST:PORT");
        return None;
    }
    let as_upstream = service_section(
        url.to_string(),
        [&raw.ca, &raw.server_name, &raw.client_cert, &raw.client_key, &raw.min_version],
    );
    let service = Arc::new(upstream_section(p, "auth.paperless", "auth-paperless", &as_upstream, base, true));
    let timeout = dur(p, "auth.paperless.timeout", &raw.timeout, Duration::from_secs(10));
    if timeout.is_zero() {
        p.push("auth.paperless.timeout", "must be more than 0s");
    }
    let group = raw.group.as_deref().map(str::trim).filter(|g| !g.is_empty()).map(str::to_string);
    Some(PaperlessConfig { service, group, timeout })
}

/// `[auth.session]`: the keys are read now, so a missing or bad key file fails at start.
pub(super) fn session(
    p: &mut Problems,
    raw: &RawSession,
    base: Option<&Path>,
    paperless: Option<Arc<PaperlessConfig>>,
) -> Option<SessionConfig> {
    let backend = match raw.backend.as_deref() {
        None | Some("local") => Backend::Local,
        Some("paperless") => match paperless {
            Some(pc) => Backend::Paperless(pc),
            None => {
                p.push("auth.session.backend", "\"paperless\" needs [auth.paperless] url");
                Backend::Local
            }
        },
        Some(b) => {
            p.push("auth.session.backend", format!("\"{b}\": use \"local\" or \"paperless\""));
            Backend::Local
        }
    };
    let path_of = |p: &mut Problems, key: &str, v: &Option<String>, default: &str| -> String {
        let v = v.as_deref().unwrap_or(default);
        if !v.starts_with('/') || v.contains(['?', '#', ' ']) || v.parse::<http::uri::PathAndQuery>().is_err() {
            p.push(key, format!("\"{v}\" must be a path starting with / (no query)"));
        }
        v.to_string()
    };
    let login_path = path_of(p, "auth.session.login_path", &raw.login_path, "/.moat/login");
    let logout_path = path_of(p, "auth.session.logout_path", &raw.logout_path, "/.moat/logout");
    if login_path == logout_path {
        p.push("auth.session.logout_path", "must differ from login_path");
    }
    let idle_timeout = dur(p, "auth.session.idle_timeout", &raw.idle_timeout, Duration::from_secs(3600));
    let lifetime = dur(p, "auth.session.lifetime", &raw.lifetime, Duration::from_secs(12 * 3600));
    if idle_timeout < Duration::from_secs(1) {
        p.push("auth.session.idle_timeout", "must be at least 1s");
    }
    if lifetime < idle_timeout {
        p.push("auth.session.lifetime", "must be at least idle_timeout");
    }
    let Some(file) = raw.keys_file.as_deref() else {
        p.push("auth.session.keys_file", "missing: a file with one key per line (make one with `moat session-key`)");
        return None;
    };
    let keys_file = resolve_relative(base, file);
    let text = match std::fs::read_to_string(&keys_file) {
        Ok(t) => t,
        Err(e) => {
            p.push("auth.session.keys_file", format!("{}: cannot read: {e}", keys_file.display()));
            return None;
        }
    };
    let keys = match parse_keys(&text) {
        Ok(k) => k,
        Err((0, why)) => {
            p.push("auth.session.keys_file", format!("{}: {why}", keys_file.display()));
            return None;
        }
        Err((line, why)) => {
            p.push("auth.session.keys_file", format!("{}: line {line}: {why}", keys_file.display()));
            return None;
        }
    };
    Some(SessionConfig { keys, keys_file, idle_timeout, lifetime, login_path, logout_path, backend })
}
