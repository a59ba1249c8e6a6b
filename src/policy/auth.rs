//! Layer 9: authentication, roles, and failed-attempt throttling.
//!
//! Threat: the apps moat fronts (paperless-gpt, MinerU-API) have no login of
//! their own: whoever reaches the port reads every document and spends the
//! LLM budget. moat puts a door in front of them.
//!
//! - API keys (`[auth] api_keys` / `api_keys_file`): the config holds a name
//!   and the SHA-256 of each key, never the key. Clients send `x-api-key: KEY`
//!   or `Authorization: Bearer KEY`; the digest is compared with every
//!   configured one in constant time.
//! - Basic auth (`[auth] basic` / `basic_file`): argon2id PHC hashes made by
//!   `moat hash-password`. A missing or wrong credential gets 401 with
//!   `WWW-Authenticate: Basic realm="..."` so browsers prompt. Verification
//!   runs on the blocking pool under a small concurrency cap, and verified
//!   credentials are cached (bounded, five minutes) under a keyed hash — never
//!   the password — so a logged-in browser does not pay argon2 per request.
//! - Per route `auth = "none" | "api_key" | "basic" | "any"` (default
//!   `auth.default`), `roles` (the identity needs one of them, else 403), and
//!   credentials are removed before forwarding unless `forward_credentials`.
//!   On routes with `auth = "none"` the same headers (`x-api-key`,
//!   `Authorization`) are removed too: a credential sent to an open route is
//!   not the app's business unless the route says `forward_credentials`.
//! - Every failure is logged at warn (client IP, route; a basic-auth user
//!   name only as a short keyed hash, since people type their password
//!   there; never the secret) and counted (`auth_failed`).
//! - Failed-attempt throttling: after `auth.max_failures.count` failures
//!   from one client within `per`, that client gets 429 `auth_throttled`
//!   until the window passes, even with good credentials. A client is keyed
//!   like the rate limiter: an IPv4 address, or an IPv6 address masked to
//!   `rate_limit.ipv6_prefix` (rotating addresses inside one /64 does not
//!   buy more guesses). An attempt is counted *before* it is verified and
//!   given back when it succeeds, so a concurrent burst of wrong passwords
//!   runs at most `count` argon2 verifications. The table is bounded by
//!   `auth.max_tracked_clients`: when it is full, expired windows are
//!   dropped and then the oldest eighth of the entries, so memory stays
//!   bounded and a new client is never refused for others' failures.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use http::header::{self, HeaderName, HeaderValue};
use http::Request;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::forward_auth::{self, Decision, ForwardAuthConfig, ForwardCache};
use super::session::{self, SessionConfig};
use super::{reject, Policy, Verdict};
use crate::body::Body;
use crate::error::Reason;
use crate::policy::ctx::Ctx;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Which credentials a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication.
    None,
    /// API keys only.
    ApiKey,
    /// Basic auth only.
    Basic,
    /// Either.
    Any,
    /// The `[auth.forward]` service decides.
    Forward,
    /// A `[auth.session]` sign-in session.
    Session,
}

impl AuthMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::ApiKey => "api_key",
            AuthMode::Basic => "basic",
            AuthMode::Any => "any",
            AuthMode::Forward => "forward",
            AuthMode::Session => "session",
        }
    }
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Identity name (logs, rate keys).
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// Roles.
    pub roles: Vec<String>,
}

/// One basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicUser {
    /// User name.
    pub user: String,
    /// argon2id PHC string.
    pub hash: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// `[auth]`
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// API keys.
    pub api_keys: Vec<ApiKey>,
    /// Basic users.
    pub basic: Vec<BasicUser>,
    /// The realm in `WWW-Authenticate`.
    pub realm: String,
    /// Auth of routes that set none.
    pub default: AuthMode,
    /// Failures allowed per client IP per window.
    pub max_failures: u32,
    /// The failure window.
    pub failure_window: Duration,
    /// Client IPs tracked for failures at most.
    pub max_tracked_clients: usize,
    /// `[auth.forward]`, when set.
    pub forward: Option<Arc<ForwardAuthConfig>>,
    /// `[auth.session]`, when set.
    pub session: Option<Arc<SessionConfig>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            basic: Vec::new(),
            realm: "moat".into(),
            default: AuthMode::None,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            max_tracked_clients: 100_000,
            forward: None,
            session: None,
        }
    }
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// Credentials found in a request.
enum Credentials {
    Key(String),
    Basic { user: String, pass: String },
    Malformed,
}

fn presented(req: &Request<Body>) -> Option<Credentials> {
    if let Some(v) = req.headers().get(&X_API_KEY) {
        return Some(v.to_str().map(|s| Credentials::Key(s.trim().to_string())).unwrap_or(Credentials::Malformed));
    }
    let v = req.headers().get(header::AUTHORIZATION)?;
    let Ok(s) = v.to_str() else { return Some(Credentials::Malformed) };
    let (scheme, rest) = s.trim().split_once(' ').unwrap_or((s, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Key(rest.trim().to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok();
        let text = decoded.and_then(|d| String::from_utf8(d).ok());
        return Some(match text.as_deref().and_then(|t| t.split_once(':')) {
            Some((u, p)) => Credentials::Basic { user: u.to_string(), pass: p.to_string() },
            None => Credentials::Malformed,
        });
    }
    Some(Credentials::Malformed)
}

/// The API key matching `key`, compared in constant time with every configured digest.
pub fn match_api_key<'a>(keys: &'a [ApiKey], key: &str) -> Option<&'a ApiKey> {
    match_api_key_index(keys, key).and_then(|i| keys.get(i))
}

fn match_api_key_index(keys: &[ApiKey], key: &str) -> Option<usize> {
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let mut found = None;
    for (i, k) in keys.iter().enumerate() {
        if bool::from(k.sha256.ct_eq(&digest)) {
            found = Some(i);
        }
    }
    found
}

/// The configured API key a request presents: hashed and compared once per
/// request, whichever layer asks first (the rate limiter for its key, or auth).
fn api_key_of<'a>(cfg: &'a AuthConfig, key: &str, ctx: &Ctx) -> Option<&'a ApiKey> {
    ctx.api_key.get_or_init(|| match_api_key_index(&cfg.api_keys, key)).and_then(|i| cfg.api_keys.get(i))
}

/// A real argon2id hash of a random password, verified for unknown users so
/// that they cost the same time as known ones.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default());

/// Verifies a password against a PHC string (blocking: argon2).
pub fn verify_password(hash: &str, pass: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(hash) {
        Ok(h) => argon2::Argon2::default().verify_password(pass.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Hashes a password for `[auth] basic` (argon2id, default parameters).
pub fn hash_password(pass: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    // 16 random bytes from the OS (uuid v4 draws them from getrandom).
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| e.to_string())?;
    argon2::Argon2::default().hash_password(pass.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Auth state shared across requests and reloads.
pub struct AuthState {
    secret: [u8; 32],
    verified: DashMap<[u8; 32], (Identity, Instant)>,
    verify_slots: Arc<Semaphore>,
    failures: DashMap<IpAddr, (u32, Instant)>,
    forward: ForwardCache,
}

/// Verified basic credentials are remembered this long.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Verified credentials remembered at most.
const CACHE_MAX: usize = 10_000;

impl Default for AuthState {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let slots = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4);
        Self {
            secret,
            verified: DashMap::new(),
            verify_slots: Arc::new(Semaphore::new(slots)),
            failures: DashMap::new(),
            forward: ForwardCache::new(Sha256::digest(secret).into()),
        }
    }
}

impl AuthState {
    fn cache_key(&self, user: &str, pass: &str, hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update((pass.len() as u64).to_le_bytes());
        h.update(pass.as_bytes());
        h.update(hash.as_bytes());
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Identity> {
        let hit = self.verified.get(key)?;
        (hit.1.elapsed() < CACHE_TTL).then(|| hit.0.clone())
    }

    /// Basic credentials: cache, else argon2 on the blocking pool.
    pub(crate) async fn verify_basic(&self, cfg: &AuthConfig, user: &str, pass: &str) -> Option<Identity> {
        let entry = cfg.basic.iter().find(|b| bool::from(b.user.as_bytes().ct_eq(user.as_bytes())));
        let hash = entry.map(|e| e.hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
        let key = self.cache_key(user, pass, &hash);
        if entry.is_some() {
            if let Some(id) = self.cached(&key) {
                return Some(id);
            }
        }
        let _permit = self.verify_slots.acquire().await.ok()?;
        let p = pass.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &p)).await.unwrap_or(false);
        let entry = entry?;
        if !ok {
            return None;
        }
        let id = Identity { name: entry.user.clone(), roles: entry.roles.clone() };
        if self.verified.len() >= CACHE_MAX {
            self.verified.retain(|_, v| v.1.elapsed() < CACHE_TTL);
            if self.verified.len() >= CACHE_MAX {
                self.verified.clear();
            }
        }
        self.verified.insert(key, (id.clone(), Instant::now()));
        Some(id)
    }

    /// The identity of a request if it can be known without argon2 work
    /// (an API key, or cached basic credentials). Used for rate-limit keys.
    pub fn cheap_identity(&self, req: &Request<Body>, cfg: &AuthConfig, ctx: &Ctx) -> Option<Identity> {
        match presented(req)? {
            Credentials::Key(k) => {
                api_key_of(cfg, &k, ctx).map(|k| Identity { name: k.name.clone(), roles: k.roles.clone() })
            }
            Credentials::Basic { user, pass } => {
                let entry = cfg.basic.iter().find(|b| b.user == user)?;
                self.cached(&self.cache_key(&user, &pass, &entry.hash))
            }
            Credentials::Malformed => None,
        }
    }

    /// A short keyed hash of a user name, for logs (the name itself may be a password).
    pub fn user_tag(&self, user: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(b"log-user");
        h.update(user.as_bytes());
        hex::encode(&h.finalize()[..6])
    }

    /// Time the client (a [`client_key`]) must wait, if it is throttled.
    fn throttled(&self, key: IpAddr, cfg: &AuthConfig) -> Option<Duration> {
        let e = self.failures.get(&key)?;
        let (count, since) = *e;
        let elapsed = since.elapsed();
        (count >= cfg.max_failures && elapsed < cfg.failure_window).then(|| cfg.failure_window - elapsed)
    }

    /// Counts an attempt before it is verified: `Err(wait)` when the client
    /// has no attempts left in its window.
    pub(crate) fn begin_attempt(&self, key: IpAddr, cfg: &AuthConfig) -> Result<(), Duration> {
        if !self.failures.contains_key(&key) && self.failures.len() >= cfg.max_tracked_clients {
            self.evict(cfg);
        }
        let mut e = self.failures.entry(key).or_insert_with(|| (0, Instant::now()));
        let elapsed = e.1.elapsed();
        if elapsed >= cfg.failure_window {
            *e = (0, Instant::now());
        } else if e.0 >= cfg.max_failures {
            return Err(cfg.failure_window - elapsed);
        }
        e.0 += 1;
        Ok(())
    }

    /// Gives back an attempt that succeeded.
    pub(crate) fn end_attempt_ok(&self, key: IpAddr) {
        if let Some(mut e) = self.failures.get_mut(&key) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    /// Makes room in a full failure table: expired windows first, then the
    /// oldest eighth (amortized: one scan per `max/8` new clients).
    fn evict(&self, cfg: &AuthConfig) {
        self.failures.retain(|_, v| v.1.elapsed() < cfg.failure_window);
        let len = self.failures.len();
        if len < cfg.max_tracked_clients {
            return;
        }
        let mut times: Vec<Instant> = self.failures.iter().map(|e| e.value().1).collect();
        let n = (len / 8).max(1).min(times.len().saturating_sub(1));
        let (_, cutoff, _) = times.select_nth_unstable(n);
        let cutoff = *cutoff;
        self.failures.retain(|_, v| v.1 > cutoff);
    }

    /// Drops expired failure windows and cache entries; returns the failure entries kept.
    pub fn sweep(&self, window: Duration, forward_ttl: Option<Duration>) -> usize {
        self.failures.retain(|_, v| v.1.elapsed() < window);
        self.failures.shrink_to_fit();
        self.verified.retain(|_, v| v.1.elapsed() < CACHE_TTL);
        if let Some(f) = forward_ttl {
            self.forward.sweep(f);
        }
        self.failures.len()
    }

    /// Failure entries tracked now.
    #[cfg(test)]
    pub(crate) fn tracked_failures(&self) -> usize {
        self.failures.len()
    }
}

/// The policy.
pub struct Auth {
    state: Arc<AuthState>,
}

impl Auth {
    /// The policy over the auth state kept across reloads.
    pub fn new(state: Arc<AuthState>) -> Self {
        Self { state }
    }
}

fn challenge(mode: AuthMode, realm: &str) -> Option<HeaderValue> {
    let realm = realm.replace(['"', '\\'], "");
    let v = match mode {
        AuthMode::Basic | AuthMode::Any => format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        AuthMode::ApiKey => format!("Bearer realm=\"{realm}\""),
        AuthMode::None | AuthMode::Forward | AuthMode::Session => return None,
    };
    HeaderValue::from_str(&v).ok()
}

/// The failed-login key of a client: its address, IPv6 masked like the rate limiter's.
pub fn client_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    crate::policy::rate_limit::mask(ip, ipv6_prefix)
}

fn strip_credentials(req: &mut Request<Body>) {
    let h = req.headers_mut();
    if h.keys().any(|k| *k == X_API_KEY || *k == header::AUTHORIZATION) {
        h.remove(&X_API_KEY);
        h.remove(header::AUTHORIZATION);
    }
}

fn throttled_response(ctx: &Ctx, wait: Duration, route: &str, ip: IpAddr) -> Verdict {
    tracing::warn!(request_id = %ctx.id, client_ip = %ip, route = %route, "authentication throttled after repeated failures");
    let secs = crate::policy::rate_limit::ceil_secs(wait).max(1);
    let Verdict::Respond(mut res) = reject(Reason::AuthThrottled, ctx) else { return Verdict::Pass };
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Verdict::Respond(res)
}

/// `auth = "session"`: the session cookie decides; a passing request loses its credentials unless the route forwards them.
fn session_checked(cfg: &AuthConfig, req: &mut Request<Body>, ctx: &Arc<Ctx>, route: &crate::config::Route) -> Verdict {
    let Some(s) = &cfg.session else { return reject(Reason::AuthFailed, ctx) };
    let verdict = session::check(s, cfg, req, ctx, route);
    if matches!(verdict, Verdict::Pass) && !route.forward_credentials {
        strip_credentials(req);
    }
    verdict
}

/// The identity the presented credentials prove under `mode` (if any), and a user tag for the log.
async fn identify(
    state: &AuthState,
    cfg: &AuthConfig,
    mode: AuthMode,
    creds: Option<&Credentials>,
    ctx: &Ctx,
) -> (Option<Identity>, Option<String>) {
    match creds {
        Some(Credentials::Key(k)) if matches!(mode, AuthMode::ApiKey | AuthMode::Any) => {
            (api_key_of(cfg, k, ctx).map(|k| Identity { name: k.name.clone(), roles: k.roles.clone() }), None)
        }
        Some(Credentials::Basic { user, pass }) if matches!(mode, AuthMode::Basic | AuthMode::Any) => {
            (state.verify_basic(cfg, user, pass).await, Some(state.user_tag(user)))
        }
        _ => (None, None),
    }
}

/// Logs a failed authentication and answers 401 with the mode's challenge.
fn auth_failed(
    ctx: &Ctx,
    ip: IpAddr,
    route: &str,
    mode: AuthMode,
    realm: &str,
    user_hint: Option<&str>,
    attempted: bool,
) -> Verdict {
    tracing::warn!(
        request_id = %ctx.id,
        client_ip = %ip,
        route = %route,
        user_hash = user_hint,
        credentials = if attempted { "wrong" } else { "missing" },
        "authentication failed"
    );
    let Verdict::Respond(mut res) = reject(Reason::AuthFailed, ctx) else { return Verdict::Pass };
    if let Some(c) = challenge(mode, realm) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, c);
    }
    Verdict::Respond(res)
}

/// `auth = "forward"`: the `[auth.forward]` service decides (see [`forward_auth`]).
async fn forwarded(
    state: &AuthState,
    req: &mut Request<Body>,
    ctx: &Arc<Ctx>,
    route: &crate::config::Route,
) -> Verdict {
    let Some(cfg) = ctx.config.auth.forward.clone() else {
        // Validation refuses a forward route without [auth.forward]; never allow by default.
        return reject(Reason::AuthUnavailable, ctx);
    };
    forward_auth::strip_claims(&cfg, req);
    let decision = match forward_auth::prepare(&cfg, &state.forward, req, ctx) {
        Ok(hit) => Decision::Allow(hit),
        Err(question) => forward_auth::decide(&cfg, &state.forward, question).await,
    };
    let allowed = match decision {
        Decision::Allow(a) => a,
        Decision::Refuse(res) => {
            tracing::warn!(
                request_id = %ctx.id,
                client_ip = %ctx.client_ip(),
                route = %route.name,
                status = res.status().as_u16(),
                "forward auth refused the request"
            );
            return Verdict::Respond(res);
        }
        Decision::Unavailable(cause) => {
            tracing::warn!(request_id = %ctx.id, route = %route.name, cause = %cause, "forward auth unavailable");
            return reject(Reason::AuthUnavailable, ctx);
        }
    };
    if let Some(user) = &allowed.user {
        let _ = ctx.user.set(user.clone());
    }
    if let Some(needed) = &route.roles {
        if !needed.iter().any(|r| allowed.roles.contains(r)) {
            tracing::warn!(request_id = %ctx.id, client_ip = %ctx.client_ip(), route = %route.name, user = allowed.user.as_deref(), "authenticated identity lacks the route's role");
            return reject(Reason::Forbidden, ctx);
        }
    }
    forward_auth::apply(&allowed, req);
    if !route.forward_credentials {
        strip_credentials(req);
    }
    Verdict::Pass
}

impl Policy for Auth {
    /// A request `check` lets through (a route without authentication)
    /// refreshes no session: its response is left alone.
    fn adjusts_checked(&self, ctx: &Ctx) -> bool {
        ctx.session_cookie.get().is_some()
    }

    fn response(&self, res: &mut http::Response<Body>, ctx: &Arc<Ctx>) {
        if let Some(v) = ctx.session_cookie.get() {
            res.headers_mut().append(header::SET_COOKIE, v.clone());
        }
    }

    fn check(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Option<Verdict> {
        // A route without authentication is decided at once; the others may
        // verify a password (argon2 off the runtime) in `request`.
        let route = ctx.route();
        if route.auth.unwrap_or(ctx.config.auth.default) != AuthMode::None {
            return None;
        }
        if ctx.config.auth.session.as_ref().is_some_and(|s| session::is_own_page(s, req.uri().path())) {
            return None;
        }
        if !route.forward_credentials {
            strip_credentials(req);
        }
        Some(Verdict::Pass)
    }

    async fn request(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let route = ctx.route().clone();
        let cfg = &ctx.config.auth;
        if let Some(s) = cfg.session.as_ref().filter(|s| session::is_own_page(s, req.uri().path())) {
            return session::serve(&self.state, s, req, ctx).await;
        }
        let mode = route.auth.unwrap_or(cfg.default);
        if mode == AuthMode::None {
            if !route.forward_credentials {
                strip_credentials(req);
            }
            return Verdict::Pass;
        }
        let state = &self.state;
        let ip = ctx.client_ip();
        if mode == AuthMode::Forward {
            return forwarded(state, req, ctx, &route).await;
        }
        if mode == AuthMode::Session {
            return session_checked(cfg, req, ctx, &route);
        }
        let key = client_key(ip, ctx.config.rate_limit.ipv6_prefix);
        let creds = presented(req);
        if creds.is_none() {
            if let Some(wait) = state.throttled(key, cfg) {
                return throttled_response(ctx, wait, &route.name, ip);
            }
        } else if let Err(wait) = state.begin_attempt(key, cfg) {
            return throttled_response(ctx, wait, &route.name, ip);
        }
        let (identity, user_hint) = identify(state, cfg, mode, creds.as_ref(), ctx).await;
        let Some(identity) = identity else {
            return auth_failed(ctx, ip, &route.name, mode, &cfg.realm, user_hint.as_deref(), creds.is_some());
        };
        state.end_attempt_ok(key);
        let _ = ctx.user.set(identity.name.clone());
        if let Some(needed) = &route.roles {
            if !needed.iter().any(|r| identity.roles.contains(r)) {
                tracing::warn!(request_id = %ctx.id, client_ip = %ip, route = %route.name, user = %identity.name, "authenticated identity lacks the route's role");
                return reject(Reason::Forbidden, ctx);
            }
        }
        if !route.forward_credentials {
            strip_credentials(req);
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_match_by_digest() {
        let keys = vec![ApiKey { name: "ingest".into(), sha256: Sha256::digest(b"s3cret-key").into(), roles: vec![] }];
        assert_eq!(match_api_key(&keys, "s3cret-key").map(|k| k.name.as_str()), Some("ingest"));
        assert!(match_api_key(&keys, "s3cret-kex").is_none());
        assert!(match_api_key(&keys, "").is_none());
    }

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsf"));
        assert!(!verify_password("not a hash", "x"));
        assert!(!verify_password(&DUMMY_HASH, "anything"));
        assert!(DUMMY_HASH.starts_with("$argon2id$"));
    }

    #[test]
    fn failure_map_is_bounded_without_a_global_lockout() {
        let s = AuthState::default();
        let cfg = AuthConfig { max_tracked_clients: 1000, ..Default::default() };
        for i in 0..20_000u32 {
            for _ in 0..cfg.max_failures {
                let _ = s.begin_attempt(IpAddr::V4(std::net::Ipv4Addr::from(i)), &cfg);
            }
        }
        assert!(s.tracked_failures() <= 1000, "{}", s.tracked_failures());
        // A new client still gets its attempts.
        let fresh: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(s.throttled(fresh, &cfg).is_none());
        assert!(s.begin_attempt(fresh, &cfg).is_ok());
    }

    #[test]
    fn attempts_are_counted_before_verification() {
        let s = AuthState::default();
        let cfg = AuthConfig::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let ok = (0..40).filter(|_| s.begin_attempt(ip, &cfg).is_ok()).count();
        assert_eq!(ok, cfg.max_failures as usize);
        s.end_attempt_ok(ip);
        assert!(s.begin_attempt(ip, &cfg).is_ok());
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let a = client_key("2001:db8:1:2::1".parse().unwrap(), 64);
        let b = client_key("2001:db8:1:2:ffff::9".parse().unwrap(), 64);
        assert_eq!(a, b);
        assert_ne!(a, client_key("2001:db8:1:3::1".parse().unwrap(), 64));
    }
}
