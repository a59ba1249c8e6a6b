//! Layer 8: rate limiting and load shedding.
//!
//! Threat: abuse of expensive endpoints (LLM calls, document parsing) and
//! brute force. Each route has its own buckets (GCRA with `rate` and
//! `burst`), keyed by client IP (IPv6 grouped by `rate_limit.ipv6_prefix`,
//! default /64, so rotating addresses inside one prefix does not multiply
//! the limit), by authenticated identity (`api_key`; the IP when there is
//! none), or one bucket for the whole route (`route`). Backends: in memory
//! (governor, the default, bounded) or Redis (one limit shared by every
//! replica). Over the limit → 429 `rate_limited` with `retry-after` (whole
//! seconds, rounded up); every answer on a limited route carries
//! `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset`.
//!
//! Load shedding: `limits.max_in_flight` (global) and a route's
//! `max_in_flight` cap the requests in progress; beyond them requests are
//! refused at once with 503 `overloaded` and `retry-after: 1`, never queued.
//! A permit is held until the response body has been sent.

pub mod memory;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response};
use rustc_hash::FxBuildHasher;
use tokio::sync::Semaphore;

use super::{Policy, Verdict};
use crate::body::Body;
use crate::config::units::Rate;
use crate::error::Reason;
use crate::metrics::Metrics;
use crate::policy::auth::AuthState;
use crate::policy::ctx::{BucketState, Ctx};

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// What a bucket is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The client IP (IPv6 grouped by prefix).
    Ip,
    /// Who the client is when that is known without password work (an API
    /// key, or a basic-auth user whose login is cached), else the IP.
    /// Written `key = "api_key"` in the config.
    Identity,
    /// One bucket for the route.
    Route,
}

/// One limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Bucket key.
    pub key: KeyKind,
    /// Sustained rate.
    pub rate: Rate,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Rule {
    /// Time to earn one request back.
    pub fn interval(&self) -> Duration {
        self.rate.per / self.rate.count.max(1)
    }
}

/// Backend choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-process (per replica).
    Memory,
    /// Shared through Redis.
    Redis,
}

/// What to do when the Redis backend cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Let the request through (log and count it).
    Allow,
    /// Refuse with 503.
    Deny,
}

/// `[rate_limit]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Backend.
    pub backend: Backend,
    /// Redis URL (secret: may come from `redis_url_file`).
    pub redis_url: Option<String>,
    /// Timeout of each Redis call.
    pub redis_timeout: Duration,
    /// Behaviour when Redis fails.
    pub on_backend_error: OnBackendError,
    /// IPv6 prefix length used for IP keys.
    pub ipv6_prefix: u8,
    /// Keys tracked per route by the memory backend.
    pub max_keys: usize,
    /// The limit of routes that set none (`None` = unlimited).
    pub default: Option<Rule>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            redis_url: None,
            redis_timeout: Duration::from_millis(100),
            on_backend_error: OnBackendError::Allow,
            ipv6_prefix: 64,
            max_keys: 100_000,
            default: Some(Rule { key: KeyKind::Ip, rate: Rate { count: 20, per: Duration::from_secs(1) }, burst: 40 }),
        }
    }
}

/// A bucket key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    /// A client address (masked).
    Ip(IpAddr),
    /// An identity.
    Id(Arc<str>),
    /// The whole route.
    Route,
    /// Keys past the memory cap share this bucket.
    Overflow,
}

impl BucketKey {
    fn redis_suffix(&self) -> String {
        match self {
            BucketKey::Ip(ip) => format!("ip:{ip}"),
            BucketKey::Id(id) => format!("id:{id}"),
            BucketKey::Route => "route".into(),
            BucketKey::Overflow => "overflow".into(),
        }
    }
}

/// Masks an IPv6 address to `prefix` bits (IPv4 is kept whole).
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let p = u32::from(prefix.min(128));
            let masked = if p == 0 { 0 } else { bits & (u128::MAX << (128 - p)) };
            IpAddr::V6(masked.into())
        }
    }
}

/// Whole seconds, rounded up.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Rate-limit and concurrency state shared across requests and reloads.
#[derive(Default)]
pub struct RateLimitState {
    // Keyed by route names from the config, not by anything a client sends:
    // a fast hasher instead of SipHash (one lookup per request).
    memory: DashMap<String, Arc<memory::MemoryLimiter>, FxBuildHasher>,
    redis: arc_swap::ArcSwapOption<(String, redis::RedisLimiter)>,
    global_inflight: arc_swap::ArcSwapOption<(usize, Arc<Semaphore>)>,
    route_inflight: DashMap<String, (usize, Arc<Semaphore>), FxBuildHasher>,
}

impl RateLimitState {
    fn memory_for(&self, route: &str, rule: &Rule, max_keys: usize) -> Arc<memory::MemoryLimiter> {
        if let Some(l) = self.memory.get(route) {
            if l.rule == *rule {
                return l.clone();
            }
        }
        // New route, or its rule changed on reload: fresh buckets. The entry
        // lock makes concurrent first requests share one limiter.
        let mut e = self
            .memory
            .entry(route.to_string())
            .or_insert_with(|| Arc::new(memory::MemoryLimiter::new(*rule, max_keys)));
        if e.rule != *rule {
            *e = Arc::new(memory::MemoryLimiter::new(*rule, max_keys));
        }
        e.clone()
    }

    fn redis_for(&self, url: &str, timeout: Duration) -> Option<Arc<(String, redis::RedisLimiter)>> {
        let cur = self.redis.load_full();
        if let Some(c) = &cur {
            if c.0 == url {
                return cur;
            }
        }
        match redis::RedisLimiter::new(url, timeout) {
            Ok(l) => {
                let l = Arc::new((url.to_string(), l));
                self.redis.store(Some(l.clone()));
                Some(l)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the redis rate-limit backend");
                None
            }
        }
    }

    /// Drops full buckets everywhere; returns the keys still tracked.
    pub fn sweep(&self, live_routes: &[String]) -> usize {
        self.memory.retain(|name, _| live_routes.contains(name));
        self.memory.iter().map(|l| l.sweep()).sum()
    }

    /// Keys tracked now (memory backend).
    pub fn tracked_keys(&self) -> usize {
        self.memory.iter().map(|l| l.len()).sum()
    }

    fn permit(slot: &(usize, Arc<Semaphore>)) -> Option<tokio::sync::OwnedSemaphorePermit> {
        slot.1.clone().try_acquire_owned().ok()
    }

    /// Takes the global and route in-flight permits, or `None` when either is exhausted.
    fn inflight(
        &self,
        global: Option<usize>,
        route: &str,
        route_cap: Option<usize>,
    ) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
        let mut permits = Vec::new();
        if let Some(cap) = global {
            let cur = self.global_inflight.load_full();
            let slot = match cur {
                Some(s) if s.0 == cap => s,
                _ => {
                    let s = Arc::new((cap, Arc::new(Semaphore::new(cap))));
                    self.global_inflight.store(Some(s.clone()));
                    s
                }
            };
            permits.push(Self::permit(&slot)?);
        }
        if let Some(cap) = route_cap {
            let slot = {
                let e = self
                    .route_inflight
                    .entry(route.to_string())
                    .or_insert_with(|| (cap, Arc::new(Semaphore::new(cap))));
                if e.0 == cap {
                    e.clone()
                } else {
                    drop(e);
                    let s = (cap, Arc::new(Semaphore::new(cap)));
                    self.route_inflight.insert(route.to_string(), s.clone());
                    s
                }
            };
            permits.push(Self::permit(&slot)?);
        }
        Some(permits)
    }
}

/// `ratelimit-limit`'s value: the same bucket size on every response of a
/// route, so each worker keeps the last one it built.
fn limit_value(limit: u32) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u32, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((n, v)) if *n == limit => v.clone(),
            _ => {
                let v = crate::headers::number_value(u64::from(limit));
                *last = Some((limit, v.clone()));
                v
            }
        }
    })
}

fn set_headers(res: &mut Response<Body>, d: &BucketState) {
    let h = res.headers_mut();
    h.insert(RATELIMIT_LIMIT.clone(), limit_value(d.limit));
    // Changes every response: kept out of HTTP/2's header table.
    h.insert(
        RATELIMIT_REMAINING.clone(),
        crate::headers::never_indexed(crate::headers::number_value(d.remaining.into())),
    );
    h.insert(RATELIMIT_RESET.clone(), crate::headers::number_value(ceil_secs(d.reset)));
}

/// The policy.
pub struct RateLimit {
    limiters: Arc<RateLimitState>,
    auth: Arc<AuthState>,
    metrics: Arc<Metrics>,
}

impl RateLimit {
    /// The policy over the limiter state kept across reloads; `auth` tells
    /// who a request is when that is known without password work.
    pub fn new(limiters: Arc<RateLimitState>, auth: Arc<AuthState>, metrics: Arc<Metrics>) -> Self {
        Self { limiters, auth, metrics }
    }
}

impl RateLimit {
    /// The bucket key of a request under `rule`.
    fn key(&self, req: &Request<Body>, ctx: &Ctx, rule: &Rule) -> BucketKey {
        let cfg = &ctx.config.rate_limit;
        match rule.key {
            KeyKind::Route => BucketKey::Route,
            // The identity, when it is known without argon2 work (an API key or a
            // cached login); auth proper runs after this layer.
            KeyKind::Identity => match self.auth.cheap_identity(req, &ctx.config.auth, ctx) {
                Some(id) => BucketKey::Id(Arc::from(id.name.as_str())),
                None => BucketKey::Ip(mask(ctx.client_ip(), cfg.ipv6_prefix)),
            },
            KeyKind::Ip => BucketKey::Ip(mask(ctx.client_ip(), cfg.ipv6_prefix)),
        }
    }

    /// The verdict once the bucket has answered (`None`: no bucket, or no
    /// answer and the request is let through): 429, or the in-flight caps.
    fn finish(&self, decision: Option<BucketState>, route: &crate::config::Route, ctx: &Ctx) -> Verdict {
        if let Some(d) = decision {
            let _ = ctx.ratelimit.set(d);
            if !d.allowed {
                let secs = ceil_secs(d.retry_after).max(1);
                let detail =
                    format!("Rate limit exceeded; retry after {secs} second{}.", if secs == 1 { "" } else { "s" });
                let mut res = ctx.problem(Reason::RateLimited.status(), detail, Some(Reason::RateLimited));
                res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
                return Verdict::Respond(res);
            }
        }

        let global = ctx.config.limits.max_in_flight;
        if global.is_some() || route.max_in_flight.is_some() {
            match self.limiters.inflight(global, &route.name, route.max_in_flight) {
                Some(permits) => {
                    if let Ok(mut held) = ctx.permits.lock() {
                        held.extend(permits);
                    }
                }
                None => {
                    let mut res = ctx.reject(Reason::Overloaded);
                    res.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    return Verdict::Respond(res);
                }
            }
        }
        Verdict::Pass
    }
}

impl Policy for RateLimit {
    fn check(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Option<Verdict> {
        // The memory backend decides at once; Redis is asked in `request`.
        let route = ctx.route();
        let cfg = &ctx.config.rate_limit;
        let decision = match route.rate_limit.unwrap_or(cfg.default) {
            None => None,
            Some(_) if cfg.backend == Backend::Redis && cfg.redis_url.is_some() => return None,
            Some(rule) => {
                let key = self.key(req, ctx, &rule);
                Some(self.limiters.memory_for(&route.name, &rule, cfg.max_keys).check(&key))
            }
        };
        Some(self.finish(decision, route, ctx))
    }

    async fn request(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let route = ctx.route().clone();
        let cfg = &ctx.config.rate_limit;
        let lim = &self.limiters;

        let mut decision = None;
        if let Some(rule) = route.rate_limit.unwrap_or(cfg.default) {
            let key = self.key(req, ctx, &rule);
            decision = match (cfg.backend, cfg.redis_url.as_deref()) {
                (Backend::Redis, Some(url)) => {
                    let checked = match lim.redis_for(url, cfg.redis_timeout) {
                        Some(r) => {
                            r.1.check(&format!("moat:rl:{}:{}", route.name, key.redis_suffix()), &rule)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        None => Err("redis backend unavailable".to_string()),
                    };
                    match checked {
                        Ok(d) => Some(d),
                        Err(e) => {
                            self.metrics.ratelimit_backend_error();
                            match cfg.on_backend_error {
                                OnBackendError::Allow => {
                                    tracing::warn!(request_id = %ctx.id, error = %e, "rate-limit backend failed; request allowed (on_backend_error = allow)");
                                    None
                                }
                                OnBackendError::Deny => {
                                    tracing::warn!(request_id = %ctx.id, error = %e, "rate-limit backend failed; request refused (on_backend_error = deny)");
                                    let mut res = ctx.reject(Reason::Overloaded);
                                    res.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                                    return Verdict::Respond(res);
                                }
                            }
                        }
                    }
                }
                _ => Some(lim.memory_for(&route.name, &rule, cfg.max_keys).check(&key)),
            };
        }
        self.finish(decision, &route, ctx)
    }

    // The `ratelimit-*` headers are set by layer 3 (`ResponseHeaders`), from
    // the bucket's answer kept in the context: on every answer of a limited
    // route, moat's own included, without a future of this layer's own.
    const ADJUSTS_RESPONSE: bool = false;
}

/// The `ratelimit-*` headers of the request's bucket answer, if a bucket
/// answered (layer 3 calls this for every response).
pub(crate) fn response_headers(res: &mut Response<Body>, ctx: &Ctx) {
    if let Some(d) = ctx.ratelimit.get() {
        set_headers(res, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_prefix_grouping() {
        let a = mask("2001:db8:1:2:aaaa::1".parse().unwrap(), 64);
        let b = mask("2001:db8:1:2:bbbb::9".parse().unwrap(), 64);
        let c = mask("2001:db8:1:3::1".parse().unwrap(), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(mask("192.0.2.7".parse().unwrap(), 64), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(mask("2001:db8::1".parse().unwrap(), 128), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn rounding() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
        assert_eq!(ceil_secs(Duration::from_millis(3001)), 4);
    }
}
