//! Login sessions (`auth = "session"`): a sign-in page moat owns, and a
//! sealed cookie instead of a browser's basic-auth dialog.
//!
//! Threat: paperless-gpt has no login; basic auth in a browser has no
//! logout, no session lifetime and no place for a second factor. moat signs
//! the user in itself:
//!
//! - `login_path` (default `/.moat/login`) serves a small HTML form (no
//!   external assets, a CSP that allows only its own inline style, a
//!   double-submit CSRF token in a `__Host-` cookie and a hidden field, and
//!   the `Origin` checked on POST). A browser's unauthenticated `GET` on a
//!   session route is redirected there with `rd=` the path it wanted; API
//!   clients get 401. After sign-in the browser goes back to `rd` when it is
//!   a same-origin path (`/x`, never `//host`, `/\host` or a URL), else `/`.
//! - Backends: `local` checks the `[auth] basic` users (argon2id, verified
//!   for unknown users too, so a name cannot be probed by timing);
//!   `paperless` asks paperless-ngx's `POST /api/token/` (with the
//!   one-time code of an account that uses MFA), reads the account with that
//!   token (`/api/ui_settings/`) and, with `[auth.paperless] group`, checks
//!   that it belongs to that group. Roles: `paperless`, the group, and
//!   `admin` for a paperless superuser. The token is used for those checks
//!   and dropped: the browser never sees it.
//! - The cookie `__Host-moat_session` (`Secure; HttpOnly; SameSite=Lax;
//!   Path=/`) holds the user, roles and times, sealed with AES-256-GCM under
//!   a key from `keys_file`: the first key seals, every key opens, so keys
//!   rotate without signing anyone out; nothing is stored server-side, so
//!   every replica accepts it. Idle and absolute lifetimes are enforced; an
//!   active session is re-sealed about once a minute (moving its idle
//!   deadline, and onto the newest key). A local user's cookie also carries
//!   a fingerprint of the user's password hash: a changed password or a
//!   removed user ends the session. `logout_path` clears it.
//! - The cookie and the form's password never reach the upstream (moat's
//!   cookies are cut out of `Cookie`) and never reach a log line; failures
//!   go through the failed-login throttle of `[auth] max_failures`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::{client_key, AuthState, Identity};
use super::{reject, Verdict};
use crate::body::{self, Body};
use crate::config::Upstream;
use crate::error::{html_escape as esc, MoatPage, Reason};
use crate::policy::ctx::Ctx;

/// The session cookie.
pub const COOKIE: &str = "__Host-moat_session";
/// The sign-in form's CSRF cookie.
const CSRF_COOKIE: &str = "__Host-moat_csrf";
/// Authenticated data bound to every sealed cookie.
const AAD: &[u8] = b"__Host-moat_session v1";
/// An active session is re-sealed this often at most.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// The largest sign-in form accepted.
const MAX_FORM: usize = 16 * 1024;
/// The longest return path kept.
const MAX_RETURN: usize = 2048;

/// One key from `keys_file`.
pub struct SessionKey(LessSafeKey);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A key from secret bytes (at least 32), stretched to an AES-256 key.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err(format!("a key needs at least 32 bytes, this one has {}", secret.len()));
        }
        let mut h = Sha256::new();
        h.update(b"moat-session-key-v1\0");
        h.update(secret);
        let k = UnboundKey::new(&AES_256_GCM, &h.finalize()).map_err(|_| "not an AES-256 key".to_string())?;
        Ok(Self(LessSafeKey::new(k)))
    }
}

/// Parses a keys file: one key per line (base64, base64url or 64 hex
/// characters; `#` comments). `Err((line, reason))`.
pub fn parse_keys(text: &str) -> Result<Vec<SessionKey>, (usize, String)> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = if line.len() == 64 && line.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(line).ok()
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|e| e.decode(line).ok())
        };
        let Some(bytes) = bytes else {
            return Err((n + 1, "not a key: use `moat session-key` (base64 of 32 random bytes)".into()));
        };
        keys.push(SessionKey::new(&bytes).map_err(|e| (n + 1, e))?);
    }
    if keys.is_empty() {
        return Err((0, "no key in the file: add one made by `moat session-key`".into()));
    }
    Ok(keys)
}

/// A new random key, as `moat session-key` prints it.
pub fn new_key_text() -> Result<String, String> {
    let mut k = [0u8; 32];
    aws_lc_rs::rand::fill(&mut k).map_err(|_| "no randomness available".to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k))
}

/// Who checks a sign-in.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The `[auth] basic` users.
    Local,
    /// paperless-ngx's token endpoint.
    Paperless(Arc<PaperlessConfig>),
}

impl SessionConfig {
    /// Whether the `[auth] basic` users sign in.
    pub fn backend_is_local(&self) -> bool {
        matches!(self.backend, Backend::Local)
    }
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Paperless(_) => "paperless",
        }
    }
}

/// `[auth.paperless]`, validated.
#[derive(Debug, Clone)]
pub struct PaperlessConfig {
    /// paperless-ngx: its address, TLS settings and client.
    pub service: Arc<Upstream>,
    /// The group a user must belong to, if any.
    pub group: Option<String>,
    /// Time for paperless-ngx's answers.
    pub timeout: Duration,
}

/// `[auth.session]`, validated.
#[derive(Debug)]
pub struct SessionConfig {
    /// Sealing keys: the first seals, all open.
    pub keys: Vec<SessionKey>,
    /// Where they were read (watched for reloads).
    pub keys_file: PathBuf,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: Duration,
    /// The sign-in page.
    pub login_path: String,
    /// The sign-out page.
    pub logout_path: String,
    /// Who checks the password.
    pub backend: Backend,
}

/// What the cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    /// The user.
    u: String,
    /// Roles at sign-in.
    r: Vec<String>,
    /// Signed in (Unix seconds).
    i: u64,
    /// Last seen (Unix seconds).
    s: u64,
    /// The backend that signed the user in.
    b: String,
    /// Fingerprint of a local user's password hash.
    f: String,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn fingerprint(hash: &str) -> String {
    hex::encode(&Sha256::digest(hash.as_bytes())[..8])
}

fn seal(key: &SessionKey, claims: &Claims) -> Option<String> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    let mut data = serde_json::to_vec(claims).ok()?;
    key.0.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut data).ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
}

/// The claims of a cookie value and the index of the key that opened it.
fn open(keys: &[SessionKey], value: &str) -> Option<(Claims, usize)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).ok()?;
    if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() || raw.len() > 8192 {
        return None;
    }
    let (n, sealed) = raw.split_at(NONCE_LEN);
    for (i, k) in keys.iter().enumerate() {
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        let mut buf = sealed.to_vec();
        if let Ok(plain) = k.0.open_in_place(nonce, Aad::from(AAD), &mut buf) {
            return serde_json::from_slice(plain).ok().map(|c| (c, i));
        }
    }
    None
}

/// The values of cookie `name` in the request (every `Cookie` header).
fn cookie<'a>(req: &'a Request<Body>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// Cuts moat's own cookies out of `Cookie` before the request goes upstream.
pub fn strip_own_cookies(req: &mut Request<Body>) {
    let values: Vec<HeaderValue> = req.headers().get_all(header::COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    req.headers_mut().remove(header::COOKIE);
    let own = |pair: &str| {
        let name = pair.trim().split('=').next().unwrap_or("");
        name == COOKIE || name == CSRF_COOKIE
    };
    for v in values {
        let Ok(text) = v.to_str() else {
            req.headers_mut().append(header::COOKIE, v);
            continue;
        };
        let kept: Vec<&str> = text.split(';').map(str::trim).filter(|p| !p.is_empty() && !own(p)).collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(hv) = HeaderValue::from_str(&kept.join("; ")) {
            req.headers_mut().append(header::COOKIE, hv);
        }
    }
}

fn session_cookie(value: &str, max_age: Duration) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        max_age.as_secs()
    ))
    .ok()
}

fn cleared(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"))
        .unwrap_or_else(|_| HeaderValue::from_static("__Host-moat_session=; Path=/; Max-Age=0; Secure; HttpOnly"))
}

/// Whether `req` is for the sign-in or sign-out page.
pub fn is_own_page(cfg: &SessionConfig, path: &str) -> bool {
    path == cfg.login_path || path == cfg.logout_path
}

/// A return path that stays on this origin: `/` followed by no `/` or `\`,
/// no control characters, no scheme. Anything else becomes `/`.
pub fn safe_return(rd: &str) -> String {
    let ok = rd.len() <= MAX_RETURN
        && rd.starts_with('/')
        && !rd.starts_with("//")
        && !rd.contains('\\')
        && !rd.bytes().any(|b| b.is_ascii_control() || b == b' ')
        && !rd.starts_with("/%2f")
        && !rd.starts_with("/%2F")
        && !rd.starts_with("/%5c")
        && !rd.starts_with("/%5C")
        && rd.parse::<http::uri::PathAndQuery>().is_ok();
    if ok {
        rd.to_string()
    } else {
        "/".to_string()
    }
}

/// The session of a request on a session route: `Pass` (identity set,
/// moat's cookies cut out, maybe a re-sealed cookie for the response) or
/// the way to sign in.
pub fn check(
    cfg: &SessionConfig,
    auth: &super::auth::AuthConfig,
    req: &mut Request<Body>,
    ctx: &Arc<Ctx>,
    route: &crate::config::Route,
) -> Verdict {
    let presented = cookie(req, COOKIE).map(str::to_string);
    let valid = presented.as_deref().and_then(|v| valid_session(cfg, auth, v));
    let Some((claims, stale_key)) = valid else {
        if presented.is_some() {
            tracing::info!(request_id = %ctx.id, route = %route.name, "session cookie refused (expired, tampered or unknown key)");
        }
        let mut res = sign_in_needed(cfg, req, ctx);
        if presented.is_some() {
            res.headers_mut().append(header::SET_COOKIE, cleared(COOKIE));
        }
        return Verdict::Respond(res);
    };
    let _ = ctx.user.set(claims.u.clone());
    if let Some(needed) = &route.roles {
        if !needed.iter().any(|r| claims.r.contains(r)) {
            tracing::warn!(request_id = %ctx.id, client_ip = %ctx.client_ip(), route = %route.name, user = %claims.u, "authenticated identity lacks the route's role");
            return reject(Reason::Forbidden, ctx);
        }
    }
    let now = now_secs();
    if stale_key || now.saturating_sub(claims.s) >= REFRESH_EVERY.min(cfg.idle_timeout / 2).as_secs() {
        let fresh = Claims { s: now, ..claims.clone() };
        let left = Duration::from_secs((claims.i + cfg.lifetime.as_secs()).saturating_sub(now));
        if let Some(v) = cfg.keys.first().and_then(|k| seal(k, &fresh)).and_then(|v| session_cookie(&v, left)) {
            let _ = ctx.session_cookie.set(v);
        }
    }
    strip_own_cookies(req);
    Verdict::Pass
}

/// The claims of a cookie that is sealed by one of the keys, within both
/// lifetimes, from this backend, and (local) of a user that still exists
/// with the same password; and whether a newer key should re-seal it.
fn valid_session(cfg: &SessionConfig, auth: &super::auth::AuthConfig, value: &str) -> Option<(Claims, bool)> {
    let (mut claims, key) = open(&cfg.keys, value)?;
    let now = now_secs();
    if claims.b != cfg.backend.name()
        || now >= claims.i.saturating_add(cfg.lifetime.as_secs())
        || now >= claims.s.saturating_add(cfg.idle_timeout.as_secs())
        || claims.s < claims.i
        || claims.s > now + 60
    {
        return None;
    }
    if let Backend::Local = cfg.backend {
        let user = auth.basic.iter().find(|b| b.user == claims.u)?;
        if !bool::from(fingerprint(&user.hash).as_bytes().ct_eq(claims.f.as_bytes())) {
            return None;
        }
        claims.r = user.roles.clone();
    }
    Some((claims, key != 0))
}

/// A browser's GET goes to the sign-in page; anything else gets 401.
fn sign_in_needed(cfg: &SessionConfig, req: &Request<Body>, ctx: &Ctx) -> Response<Body> {
    let browser = matches!(*req.method(), Method::GET | Method::HEAD)
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(Ctx::accept_prefers_html);
    if !browser {
        return ctx.reject(Reason::AuthFailed);
    }
    let here = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let rd: String = url::form_urlencoded::byte_serialize(safe_return(here).as_bytes()).collect();
    let mut res = Response::new(body::empty());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&format!("{}?rd={rd}", cfg.login_path)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Serves the sign-in and sign-out pages.
pub async fn serve(state: &AuthState, cfg: &SessionConfig, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
    let login = req.uri().path() == cfg.login_path;
    let method = req.method().clone();
    match (login, method) {
        (true, Method::GET | Method::HEAD) => {
            let rd = query_param(req, "rd").map(|r| safe_return(&r)).unwrap_or_else(|| "/".into());
            let csrf = csrf_of(req);
            Verdict::Respond(page(cfg, StatusCode::OK, Form::SignIn { rd: &rd, message: None }, &csrf))
        }
        (true, Method::POST) => Verdict::Respond(sign_in(state, cfg, req, ctx).await),
        (false, Method::GET | Method::HEAD) => {
            let csrf = csrf_of(req);
            Verdict::Respond(page(cfg, StatusCode::OK, Form::SignOut, &csrf))
        }
        (false, Method::POST) => {
            let form = match read_form(req).await {
                Ok(f) => f,
                Err(reason) => return reject(reason, ctx),
            };
            if !csrf_ok(req, ctx, &form) {
                let csrf = csrf_of(req);
                return Verdict::Respond(page(
                    cfg,
                    StatusCode::FORBIDDEN,
                    Form::SignIn { rd: "/", message: Some("The form expired; please try again.") },
                    &csrf,
                ));
            }
            tracing::info!(request_id = %ctx.id, "signed out");
            let mut res = Response::new(body::empty());
            *res.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&cfg.login_path) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res.headers_mut().append(header::SET_COOKIE, cleared(COOKIE));
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Verdict::Respond(res)
        }
        _ => {
            let mut res = ctx.reject(Reason::MethodNotAllowed);
            res.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            Verdict::Respond(res)
        }
    }
}

fn query_param(req: &Request<Body>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The form's CSRF token: the browser's cookie when it has a well-formed one, else a new one.
fn csrf_of(req: &Request<Body>) -> String {
    match cookie(req, CSRF_COOKIE) {
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t.to_string(),
        _ => {
            let mut b = [0u8; 16];
            let _ = aws_lc_rs::rand::fill(&mut b);
            hex::encode(b)
        }
    }
}

/// The form's token matches the cookie, and the form was posted from this origin.
fn csrf_ok(req: &Request<Body>, ctx: &Ctx, form: &[(String, String)]) -> bool {
    let field = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    let Some(cookie) = cookie(req, CSRF_COOKIE) else { return false };
    if field.len() != 32 || !bool::from(field.as_bytes().ct_eq(cookie.as_bytes())) {
        return false;
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return false;
    }
    match header("origin") {
        None => true,
        Some(o) => {
            let proto = if ctx.conn.tls { "https" } else { "http" };
            ctx.host.as_deref().is_some_and(|h| o.eq_ignore_ascii_case(&format!("{proto}://{h}")))
        }
    }
}

/// The urlencoded form of a POST, bounded in size and time.
async fn read_form(req: &mut Request<Body>) -> Result<Vec<(String, String)>, Reason> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(Reason::UploadType);
    }
    let mut body = std::mem::replace(req.body_mut(), body::empty());
    let read = async move {
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Err(Reason::BadRequest) };
            if let Some(d) = frame.data_ref() {
                if buf.len() + d.len() > MAX_FORM {
                    return Err(Reason::BodyTooLarge);
                }
                buf.extend_from_slice(d);
            }
        }
        Ok(buf)
    };
    let bytes = match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(r) => r?,
        Err(_) => return Err(Reason::RequestTimeout),
    };
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// Why a sign-in did not succeed.
enum Refusal {
    /// Wrong user or password (or code).
    Wrong,
    /// Right password, but not a member of the required group.
    NotMember,
    /// The backend could not be asked; the cause is for the log.
    Unavailable(String),
}

/// Handles a posted sign-in form: CSRF, throttle, credentials, then the session cookie.
async fn sign_in(state: &AuthState, cfg: &SessionConfig, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Response<Body> {
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(reason) => return ctx.reject(reason),
    };
    let field = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()).unwrap_or("");
    let rd = safe_return(field("rd"));
    let csrf = csrf_of(req);
    if !csrf_ok(req, ctx, &form) {
        tracing::warn!(request_id = %ctx.id, client_ip = %ctx.client_ip(), "sign-in form refused: CSRF token or origin mismatch");
        let msg = Some("The form expired; please try again.");
        return page(cfg, StatusCode::FORBIDDEN, Form::SignIn { rd: &rd, message: msg }, &csrf);
    }
    let auth = &ctx.config.auth;
    let ip = ctx.client_ip();
    let key = client_key(ip, ctx.config.rate_limit.ipv6_prefix);
    if let Err(wait) = state.begin_attempt(key, auth) {
        tracing::warn!(request_id = %ctx.id, client_ip = %ip, "sign-in throttled after repeated failures");
        return throttled_page(cfg, &rd, &csrf, wait);
    }
    let (user, pass) = (field("username"), field("password"));
    let (identity, f) = match check_credentials(state, cfg, auth, user, pass, field("code")).await {
        Ok(v) => v,
        Err(refusal) => {
            let (status, msg) = refusal_answer(&refusal);
            log_refusal(state, cfg, ctx, key, ip, user, &refusal);
            return page(cfg, status, Form::SignIn { rd: &rd, message: Some(msg) }, &csrf);
        }
    };
    state.end_attempt_ok(key);
    let _ = ctx.user.set(identity.name.clone());
    let now = now_secs();
    let claims = Claims { u: identity.name, r: identity.roles, i: now, s: now, b: cfg.backend.name().into(), f };
    let Some(cookie) = cfg.keys.first().and_then(|k| seal(k, &claims)).and_then(|v| session_cookie(&v, cfg.lifetime))
    else {
        return ctx.reject(Reason::Internal);
    };
    tracing::info!(request_id = %ctx.id, client_ip = %ip, user = %claims.u, backend = cfg.backend.name(), "signed in");
    signed_in_redirect(&rd, cookie)
}

/// The sign-in form again with 429 and `Retry-After`, for a throttled client.
fn throttled_page(cfg: &SessionConfig, rd: &str, csrf: &str, wait: Duration) -> Response<Body> {
    let msg = Some("Too many failed sign-in attempts; try again later.");
    let mut res = page(cfg, StatusCode::TOO_MANY_REQUESTS, Form::SignIn { rd, message: msg }, csrf);
    let secs = crate::policy::rate_limit::ceil_secs(wait).max(1);
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// Checks the credentials with the configured backend: the identity and its password fingerprint.
async fn check_credentials(
    state: &AuthState,
    cfg: &SessionConfig,
    auth: &super::auth::AuthConfig,
    user: &str,
    pass: &str,
    code: &str,
) -> Result<(Identity, String), Refusal> {
    match &cfg.backend {
        Backend::Local => match state.verify_basic(auth, user, pass).await {
            Some(id) => {
                let hash = auth.basic.iter().find(|b| b.user == id.name).map(|b| b.hash.as_str()).unwrap_or("");
                Ok((id, fingerprint(hash)))
            }
            None => Err(Refusal::Wrong),
        },
        Backend::Paperless(p) => paperless_sign_in(p, user, pass, code).await.map(|id| (id, String::new())),
    }
}

/// The status and message the sign-in form shows for a refusal.
fn refusal_answer(refusal: &Refusal) -> (StatusCode, &'static str) {
    match refusal {
        Refusal::Wrong => (StatusCode::UNAUTHORIZED, "Wrong user name or password."),
        Refusal::NotMember => (StatusCode::FORBIDDEN, "This account may not use this service."),
        Refusal::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable; try again later."),
    }
}

/// Logs a refused sign-in; an unavailable backend does not count as a failed attempt.
fn log_refusal(
    state: &AuthState,
    cfg: &SessionConfig,
    ctx: &Ctx,
    key: IpAddr,
    ip: IpAddr,
    user: &str,
    refusal: &Refusal,
) {
    match refusal {
        Refusal::Unavailable(cause) => {
            state.end_attempt_ok(key);
            tracing::warn!(request_id = %ctx.id, client_ip = %ip, cause = %cause, "sign-in backend unavailable");
        }
        _ => tracing::warn!(
            request_id = %ctx.id,
            client_ip = %ip,
            user_hash = %state.user_tag(user),
            backend = cfg.backend.name(),
            "sign-in failed"
        ),
    }
}

/// The 303 back to `rd` that sets the session cookie and clears the CSRF one.
fn signed_in_redirect(rd: &str, cookie: HeaderValue) -> Response<Body> {
    let mut res = Response::new(body::empty());
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(rd) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res.headers_mut().append(header::SET_COOKIE, cleared(CSRF_COOKIE));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// paperless-ngx: `POST /api/token/` checks the password (and the one-time
/// code of a user with MFA); with a group configured, the user's own token
/// then reads its groups. The token is dropped here.
async fn paperless_sign_in(p: &PaperlessConfig, user: &str, pass: &str, code: &str) -> Result<Identity, Refusal> {
    match tokio::time::timeout(p.timeout, paperless_check(p, user, pass, code)).await {
        Ok(r) => r,
        Err(_) => Err(Refusal::Unavailable(format!("paperless did not answer within {:?}", p.timeout))),
    }
}

/// Gets a token, reads the account with it and checks the group (the caller bounds the time).
async fn paperless_check(p: &PaperlessConfig, user: &str, pass: &str, code: &str) -> Result<Identity, Refusal> {
    let svc = &p.service;
    let token = paperless_token(svc, user, pass, code).await?;
    let me = call(svc, Method::GET, "/api/ui_settings/", Some(&token), None).await?;
    if !me.0.is_success() {
        return Err(Refusal::Unavailable(format!("paperless /api/ui_settings/ answered {}", me.0)));
    }
    let account = &me.1["user"];
    let name = account["username"].as_str().filter(|n| !n.is_empty()).unwrap_or(user).to_string();
    let mut roles = vec!["paperless".to_string()];
    if account["is_superuser"] == true {
        roles.push("admin".to_string());
    }
    let Some(group) = &p.group else {
        return Ok(Identity { name, roles });
    };
    if !paperless_member(svc, &token, group, account).await? {
        return Err(Refusal::NotMember);
    }
    roles.push(group.clone());
    Ok(Identity { name, roles })
}

/// `POST /api/token/` with the user's password (and code): the user's token.
async fn paperless_token(svc: &Upstream, user: &str, pass: &str, code: &str) -> Result<String, Refusal> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("username", user).append_pair("password", pass);
        if !code.is_empty() {
            form.append_pair("code", code);
        }
        form.finish()
    };
    let res = call(svc, Method::POST, "/api/token/", None, Some(form)).await?;
    match res.0 {
        s if s.is_success() => {}
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(Refusal::Wrong),
        s => return Err(Refusal::Unavailable(format!("paperless token endpoint answered {s}"))),
    }
    let token = res.1.get("token").and_then(|t| t.as_str()).map(str::to_string);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Refusal::Unavailable("paperless token endpoint answered without a token".into()));
    };
    Ok(token)
}

/// Whether the account is in the group, looked up in `/api/groups/` with the user's token.
async fn paperless_member(
    svc: &Upstream,
    token: &str,
    group: &str,
    account: &serde_json::Value,
) -> Result<bool, Refusal> {
    let q: String = url::form_urlencoded::byte_serialize(group.as_bytes()).collect();
    let groups = call(svc, Method::GET, &format!("/api/groups/?name__iexact={q}"), Some(token), None).await?;
    if !groups.0.is_success() {
        return Err(Refusal::Unavailable(format!(
            "paperless /api/groups/ answered {} for the user (it needs permission to view groups)",
            groups.0
        )));
    }
    let wanted: Vec<i64> = groups.1["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|g| g["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(group)))
                .filter_map(|g| g["id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    Ok(account["groups"]
        .as_array()
        .is_some_and(|ids| ids.iter().filter_map(|i| i.as_i64()).any(|i| wanted.contains(&i))))
}

/// One JSON call to paperless-ngx: (status, body as JSON or null).
async fn call(
    svc: &Upstream,
    method: Method,
    path: &str,
    token: Option<&str>,
    form: Option<String>,
) -> Result<(StatusCode, serde_json::Value), Refusal> {
    let uri = format!("{}://{}{}{}", svc.scheme(), svc.origin, svc.base_path, path);
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, svc.origin.as_str())
        .header(header::ACCEPT, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Token {t}"));
    }
    let body = match form {
        Some(f) => {
            b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            body::full(f)
        }
        None => body::empty(),
    };
    let req = b.body(body).map_err(|e| Refusal::Unavailable(format!("paperless request: {e}")))?;
    let res = svc.client.request(req).await.map_err(|e| Refusal::Unavailable(format!("paperless unreachable: {e}")))?;
    let status = res.status();
    let bytes = http_body_util::Limited::new(res.into_body(), 1 << 20)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
}

/// Which form a page shows.
enum Form<'a> {
    SignIn { rd: &'a str, message: Option<&'a str> },
    SignOut,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}\
main{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);width:20rem}\
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-size:.9rem}\
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}\
button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;cursor:pointer}\
p.msg{color:#a00;margin:.5rem 0}";

/// moat's own HTML page: a CSP allowing only its inline style (by hash),
/// forms posting to itself, no framing; never cached.
fn page(cfg: &SessionConfig, status: StatusCode, form: Form<'_>, csrf: &str) -> Response<Body> {
    let style_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let (title, inner) = match form {
        Form::SignIn { rd, message } => {
            let msg = message.map(|m| format!("<p class=\"msg\" id=\"message\" role=\"alert\">{}</p>", esc(m))).unwrap_or_default();
            let code = match cfg.backend {
                Backend::Paperless(_) => "<label for=\"code\">One-time code (if your account uses one)</label><input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\">",
                Backend::Local => "",
            };
            (
                "Sign in",
                format!(
                    "<h1>Sign in</h1>{msg}<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
<label for=\"username\">User name</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
{code}<button id=\"sign-in\" type=\"submit\">Sign in</button></form>",
                    action = esc(&cfg.login_path),
                    csrf = esc(csrf),
                    rd = esc(rd),
                ),
            )
        }
        Form::SignOut => (
            "Sign out",
            format!(
                "<h1>Sign out</h1><form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button id=\"sign-out\" type=\"submit\">Sign out</button></form>",
                action = esc(&cfg.logout_path),
                csrf = esc(csrf),
            ),
        ),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body><main>{inner}</main></body></html>\n"
    );
    let mut res = Response::new(body::full(html));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&format!("{CSRF_COOKIE}={csrf}; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"))
    {
        h.append(header::SET_COOKIE, v);
    }
    res.extensions_mut().insert(MoatPage);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SessionKey {
        SessionKey::new(&[b; 32]).unwrap()
    }

    fn claims() -> Claims {
        Claims { u: "alice".into(), r: vec!["admin".into()], i: 1, s: 2, b: "local".into(), f: "ab".into() }
    }

    #[test]
    fn sealed_cookies_open_with_any_listed_key_and_nothing_else() {
        let v = seal(&key(1), &claims()).unwrap();
        assert_eq!(open(&[key(1)], &v).map(|(c, i)| (c.u, i)), Some(("alice".into(), 0)));
        assert_eq!(open(&[key(2), key(1)], &v).map(|(_, i)| i), Some(1));
        assert!(open(&[key(2)], &v).is_none());
        // One flipped bit anywhere is refused.
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&v).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
            assert!(open(&[key(1)], &t).is_none(), "bit {i}");
            raw[i] ^= 1;
        }
        assert!(open(&[key(1)], "").is_none());
        assert!(open(&[key(1)], "not base64!").is_none());
        // Two seals of the same claims differ (fresh nonce).
        assert_ne!(seal(&key(1), &claims()).unwrap(), v);
    }

    #[test]
    fn return_paths_stay_on_this_origin() {
        for ok in ["/", "/docs?x=1", "/a/b", "/%E2%9C%93"] {
            assert_eq!(safe_return(ok), ok, "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
            "/%2F%2Fevil.example",
            "/%5cevil.example",
            "/\tjavascript:alert(1)",
            "javascript:alert(1)",
            "/a b",
        ] {
            assert_eq!(safe_return(bad), "/", "{bad}");
        }
        assert_eq!(safe_return(&format!("/{}", "a".repeat(5000))), "/");
    }

    #[test]
    fn keys_files_parse_hex_and_base64_and_name_the_bad_line() {
        let hexkey = "00".repeat(32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let keys = parse_keys(&format!("# rotated 2026-12\n{}\n\n{hexkey}\n{b64}\n", new_key_text().unwrap())).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(parse_keys("# nothing\n").err().map(|e| e.0), Some(0));
        assert_eq!(parse_keys(&format!("{hexkey}\nshort\n")).err().map(|e| e.0), Some(2));
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(parse_keys(&short).err().is_some_and(|e| e.1.contains("32 bytes")));
    }
}
