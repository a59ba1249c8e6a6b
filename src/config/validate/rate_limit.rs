//! `[rate_limit]` (the limiter's backend and the default limit) and the
//! rate-limit rules routes set.

use super::{count, dur};
use crate::config::raw::{RawRateLimit, RawRule, RawRuleOrOff};
use crate::config::{units, Problems};
use crate::policy::rate_limit::{Backend, KeyKind, OnBackendError, RateLimitConfig, Rule};

/// `[rate_limit]`: the backend, its redis URL and the default rule.
pub(super) fn rate_limit(p: &mut Problems, raw: &RawRateLimit) -> RateLimitConfig {
    let rl_defaults = RateLimitConfig::default();
    let backend = match raw.backend.as_deref() {
        None | Some("memory") => Backend::Memory,
        Some("redis") => Backend::Redis,
        Some(b) => {
            p.push("rate_limit.backend", format!("\"{b}\": use \"memory\" or \"redis\""));
            Backend::Memory
        }
    };
    let redis_url = raw.redis_url.clone();
    if let Some(u) = &redis_url {
        match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {}
            Ok(parsed) => p.push("rate_limit.redis_url", format!("scheme \"{}\" is not a redis URL", parsed.scheme())),
            Err(e) => p.push("rate_limit.redis_url", e.to_string()),
        }
    } else if backend == Backend::Redis {
        p.push("rate_limit.redis_url", "missing: backend = \"redis\" needs redis_url (or redis_url_file)");
    }
    RateLimitConfig {
        backend,
        redis_url,
        redis_timeout: dur(p, "rate_limit.redis_timeout", &raw.redis_timeout, rl_defaults.redis_timeout),
        on_backend_error: match raw.on_backend_error.as_deref() {
            None | Some("allow") => OnBackendError::Allow,
            Some("deny") => OnBackendError::Deny,
            Some(v) => {
                p.push("rate_limit.on_backend_error", format!("\"{v}\": use \"allow\" or \"deny\""));
                OnBackendError::Allow
            }
        },
        ipv6_prefix: count(p, "rate_limit.ipv6_prefix", raw.ipv6_prefix, 64, 1, 128) as u8,
        max_keys: count(p, "rate_limit.max_keys", raw.max_keys, 100_000, 16, 10_000_000) as usize,
        default: match &raw.default {
            None => rl_defaults.default,
            Some(r) => rule_or_off(p, "rate_limit.default", r),
        },
    }
}

pub(super) fn rule_or_off(p: &mut Problems, key: &str, r: &RawRuleOrOff) -> Option<Rule> {
    match r {
        RawRuleOrOff::Off(s) if s == "off" => None,
        RawRuleOrOff::Off(s) => {
            p.push(key, format!("\"{s}\": use a table {{ key, rate, burst }} or \"off\""));
            None
        }
        RawRuleOrOff::Rule(r) => rule(p, key, r),
    }
}

fn rule(p: &mut Problems, key: &str, r: &RawRule) -> Option<Rule> {
    let kind = match r.key.as_deref() {
        None | Some("ip") => KeyKind::Ip,
        Some("api_key") => KeyKind::Identity,
        Some("route") => KeyKind::Route,
        Some(k) => {
            p.push(format!("{key}.key"), format!("\"{k}\": use \"ip\", \"api_key\" or \"route\""));
            return None;
        }
    };
    let Some(rate_s) = r.rate.as_deref() else {
        p.push(format!("{key}.rate"), "missing (e.g. \"20/s\")");
        return None;
    };
    let rate = match units::rate(rate_s) {
        Ok(r) => r,
        Err(e) => {
            p.push(format!("{key}.rate"), e);
            return None;
        }
    };
    let burst = match r.burst {
        None => rate.count,
        Some(b) if (1..=1_000_000).contains(&b) => b as u32,
        Some(b) => {
            p.push(format!("{key}.burst"), format!("{b} is out of range (1..=1000000)"));
            return None;
        }
    };
    Some(Rule { key: kind, rate, burst })
}
