//! `[auth]`: the default auth, API keys and basic users (inline or from
//! credential files), failure throttling; `[auth.forward]`, `[auth.session]`
//! and `[auth.paperless]` are checked by their own files.

use std::path::Path;
use std::sync::Arc;

use super::forward_auth::forward_auth;
use super::session::{paperless, session};
use super::{count, dur};
use crate::config::raw::{RawApiKey, RawAuth, RawBasic, RawCredentialFile};
use crate::config::{io_reason, resolve_relative, Problems};
use crate::policy::auth::{ApiKey, AuthConfig, AuthMode, BasicUser};

pub(super) fn auth_mode(p: &mut Problems, key: &str, m: &str) -> Option<AuthMode> {
    match m {
        "none" => Some(AuthMode::None),
        "api_key" => Some(AuthMode::ApiKey),
        "basic" => Some(AuthMode::Basic),
        "any" => Some(AuthMode::Any),
        "forward" => Some(AuthMode::Forward),
        "session" => Some(AuthMode::Session),
        other => {
            p.push(
                key,
                format!("\"{other}\": use \"none\", \"api_key\", \"basic\", \"any\", \"forward\" or \"session\""),
            );
            None
        }
    }
}

fn api_keys(p: &mut Problems, key: &str, raw: &[RawApiKey], out: &mut Vec<ApiKey>) {
    for (i, k) in raw.iter().enumerate() {
        let kk = format!("{key}[{i}]");
        let Some(name) = k.name.clone().filter(|n| !n.is_empty()) else {
            p.push(format!("{kk}.name"), "missing");
            continue;
        };
        let digest = k.sha256.as_deref().map(|h| hex::decode(h.trim()));
        let sha256: [u8; 32] = match digest {
            Some(Ok(d)) if d.len() == 32 => d.try_into().unwrap_or([0; 32]),
            Some(_) => {
                p.push(
                    format!("{kk}.sha256"),
                    "must be 64 hex characters: the SHA-256 of the key (echo -n KEY | sha256sum)",
                );
                continue;
            }
            None => {
                p.push(format!("{kk}.sha256"), "missing");
                continue;
            }
        };
        if out.iter().any(|o| o.name == name) {
            p.push(format!("{kk}.name"), format!("duplicate key name \"{name}\""));
        }
        out.push(ApiKey { name, sha256, roles: k.roles.clone().unwrap_or_default() });
    }
}

fn basic_users(p: &mut Problems, key: &str, raw: &[RawBasic], out: &mut Vec<BasicUser>) {
    for (i, b) in raw.iter().enumerate() {
        let kk = format!("{key}[{i}]");
        let Some(user) = b.user.clone().filter(|u| !u.is_empty() && !u.contains(':')) else {
            p.push(format!("{kk}.user"), "missing, empty or containing ':'");
            continue;
        };
        let Some(hash) = b.hash.clone() else {
            p.push(format!("{kk}.hash"), "missing: make one with `moat hash-password`");
            continue;
        };
        match argon2::password_hash::PasswordHash::new(&hash) {
            Ok(h) if h.algorithm.as_str() == "argon2id" => {}
            _ => {
                p.push(format!("{kk}.hash"), "not an argon2id PHC string: make one with `moat hash-password`");
                continue;
            }
        }
        out.push(BasicUser { user, hash, roles: b.roles.clone().unwrap_or_default() });
    }
}

fn credential_file(p: &mut Problems, key: &str, base: Option<&Path>, path: &str) -> Option<RawCredentialFile> {
    let path = resolve_relative(base, path);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            p.push(key, format!("cannot read {}: {}", path.display(), io_reason(&e)));
            return None;
        }
    };
    match toml::from_str::<RawCredentialFile>(&text) {
        Ok(f) => Some(f),
        Err(e) => {
            p.push(key, format!("{}: {}", path.display(), e.message()));
            None
        }
    }
}

pub(super) fn auth(p: &mut Problems, raw: &RawAuth, base: Option<&Path>) -> AuthConfig {
    let d = AuthConfig::default();
    let mut keys = Vec::new();
    api_keys(p, "auth.api_keys", raw.api_keys.as_deref().unwrap_or_default(), &mut keys);
    if let Some(f) = &raw.api_keys_file {
        if let Some(cf) = credential_file(p, "auth.api_keys_file", base, f) {
            api_keys(p, "auth.api_keys_file", cf.api_keys.as_deref().unwrap_or_default(), &mut keys);
        }
    }
    let mut users = Vec::new();
    basic_users(p, "auth.basic", raw.basic.as_deref().unwrap_or_default(), &mut users);
    if let Some(f) = &raw.basic_file {
        if let Some(cf) = credential_file(p, "auth.basic_file", base, f) {
            basic_users(p, "auth.basic_file", cf.basic.as_deref().unwrap_or_default(), &mut users);
        }
    }
    let mf = raw.max_failures.clone().unwrap_or_default();
    let forward = raw.forward.as_ref().and_then(|f| forward_auth(p, f, base)).map(Arc::new);
    let paperless = raw.paperless.as_ref().and_then(|r| paperless(p, r, base)).map(Arc::new);
    let session = raw.session.as_ref().and_then(|s| session(p, s, base, paperless)).map(Arc::new);
    let default = raw.default.as_deref().and_then(|m| auth_mode(p, "auth.default", m)).unwrap_or(d.default);
    if default == AuthMode::Forward && forward.is_none() && raw.forward.is_none() {
        p.push("auth.default", "\"forward\" needs [auth.forward] with the auth service's url");
    }
    if default == AuthMode::Session && session.is_none() && raw.session.is_none() {
        p.push("auth.default", "\"session\" needs [auth.session] (keys_file, backend)");
    }
    AuthConfig {
        default,
        forward,
        session,
        api_keys: keys,
        basic: users,
        realm: raw.realm.clone().unwrap_or(d.realm),
        max_failures: count(p, "auth.max_failures.count", mf.count, d.max_failures as u64, 1, 1_000_000) as u32,
        failure_window: dur(p, "auth.max_failures.per", &mf.per, d.failure_window),
        max_tracked_clients: count(
            p,
            "auth.max_tracked_clients",
            raw.max_tracked_clients,
            d.max_tracked_clients as u64,
            16,
            10_000_000,
        ) as usize,
    }
}
