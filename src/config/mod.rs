//! Configuration: TOML file → environment overrides → `*_file` secrets →
//! raw serde structs (`raw.rs`) → validated typed values (`validate/`).
//!
//! Every problem is reported as `SOURCE: key: reason`, where SOURCE is the
//! file (or the environment variable that set the key), and all problems are
//! collected before failing, so one `moat check` shows them all.

pub mod raw;
mod schema;
pub mod units;
mod validate;

pub use schema::json_schema;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Method;

pub use crate::upstream::client::UpstreamTls;
use validate::validate;

/// Keys whose value may instead be read from a file named by `KEY_file`
/// (mounted secrets). The file's content, minus a trailing newline, becomes
/// the value.
const FILE_KEYS: &[&str] = &["upstream.url", "rate_limit.redis_url"];

/// A validated configuration, ready to build listeners and policies from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a file path, or `built-in defaults`.
    pub source: String,
    /// The file, if any (watched for reloads).
    pub path: Option<PathBuf>,
    /// The files it includes (`include = [...]`), watched like it.
    pub includes: Vec<PathBuf>,
    /// Allowlist mode: paths outside every route are 404.
    pub deny_unmatched: bool,
    /// Accept path parameters (`;` in a segment); refused (400) when false.
    pub allow_path_params: bool,
    /// `[listen]`
    pub listen: Listen,
    /// `[tls]`
    pub tls: Tls,
    /// `[upstream]`: the upstream named `default`.
    pub upstream: Arc<Upstream>,
    /// `[upstreams.NAME]`, by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// `[limits]`
    pub limits: Limits,
    /// `[client_ip]`
    pub client_ip: ClientIpConfig,
    /// `[rate_limit]`
    pub rate_limit: crate::policy::rate_limit::RateLimitConfig,
    /// `[cors]`
    pub cors: crate::policy::cors::CorsPolicy,
    /// `[auth]`
    pub auth: crate::policy::auth::AuthConfig,
    /// `[errors]`
    pub errors: crate::policy::sanitize::ErrorPolicy,
    /// `[security_headers]`
    pub security_headers: crate::policy::security_headers::SecurityHeaders,
    /// `[[routes]]`, in file order (first match wins).
    pub routes: Vec<Arc<Route>>,
    /// The policy for requests that match no route.
    pub default_route: Arc<Route>,
    /// `[scan]`, when present.
    pub scan: Option<Arc<crate::scan::ScanConfig>>,
}

/// `[listen]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// HTTPS listener.
    pub https: SocketAddr,
    /// Plain-HTTP redirect listener.
    pub http_redirect: Option<SocketAddr>,
    /// Admin listener.
    pub admin: SocketAddr,
}

/// Lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Certificate chain and key files; `None` → self-signed dev certificate.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Lowest accepted version.
    pub min_version: TlsVersion,
    /// CA bundle for client certificates.
    pub client_ca: Option<PathBuf>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
    /// `[[tls.certificates]]`: more certificates, chosen by the client's SNI name.
    pub certificates: Vec<SniCert>,
}

/// One of `[[tls.certificates]]`: a certificate served to clients asking
/// for one of `hosts` by SNI (exact names first, then the longest
/// `*.suffix`); other names get the default `tls.cert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// The names it is served for (from the config, or the certificate's DNS names).
    pub hosts: Vec<HostRule>,
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// `[client_ip]`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpConfig {
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Global allow/deny lists.
    pub rules: crate::policy::client_ip::IpRules,
}

/// `[upstream]` (named `default`) or one of `[upstreams.NAME]`.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `default` or the `[upstreams]` key.
    pub name: Arc<str>,
    /// Authority of the app, e.g. `127.0.0.1:8000` (`localhost` for a unix
    /// socket); the first of `urls`.
    pub origin: http::uri::Authority,
    /// Its addresses (one per `urls` entry) and their passive health.
    pub pool: Arc<crate::upstream::balance::Pool>,
    /// `https://`: how its certificate is verified.
    pub tls: Option<UpstreamTls>,
    /// `unix:/path`: the socket.
    pub unix: Option<PathBuf>,
    /// Files its TLS settings were read from (`ca`, `client_cert`,
    /// `client_key`): watched, so a rotation is a reload.
    pub tls_files: Vec<PathBuf>,
    /// The pooled client that reaches it.
    pub client: crate::upstream::client::UpstreamClient,
    /// Path prefix of the URL (no trailing slash; empty for `/`).
    pub base_path: String,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time to response headers.
    pub response_timeout: Duration,
    /// Pool idle timeout.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept.
    pub pool_max_idle: usize,
    /// Surplus idle connections are halved this often (zero: never).
    pub pool_purge_interval: Duration,
    /// Readiness probe path (`None`: TCP connect).
    pub health_path: Option<String>,
    /// Active health checks of every address, this often (`None`: off).
    pub health_interval: Option<Duration>,
    /// Expected status of the probe.
    pub health_status: u16,
    /// Expected top-level JSON members of the probe's body.
    pub health_json: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Config {
    /// `default` and every `[upstreams]` name.
    pub fn upstream_names(&self) -> impl Iterator<Item = &Arc<str>> {
        std::iter::once(&self.upstream.name).chain(self.upstreams.values().map(|u| &u.name))
    }

    /// Every file besides the config file whose change is a reload: the
    /// included files, the upstreams' CA bundles and client certificates.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::iter::once(&self.upstream)
            .chain(self.upstreams.values())
            .chain(self.auth.forward.iter().map(|f| &f.service))
            .chain(self.auth.session.iter().filter_map(|s| match &s.backend {
                crate::policy::session::Backend::Paperless(p) => Some(&p.service),
                crate::policy::session::Backend::Local => None,
            }))
            .flat_map(|u| u.tls_files.iter().cloned())
            .chain(self.includes.iter().cloned())
            .chain(self.auth.session.iter().map(|s| s.keys_file.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

impl Upstream {
    /// A new client of this upstream (its own pool), with its settings.
    pub fn new_client(&self) -> crate::upstream::client::UpstreamClient {
        crate::upstream::client::build(
            self.tls.as_ref(),
            self.unix.as_deref(),
            self.connect_timeout,
            self.pool_idle_timeout,
            self.pool_max_idle,
            self.pool_purge_interval,
        )
    }

    /// `http` or `https` (a unix socket speaks plain HTTP).
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The URL as configured, for logs and `moat check`.
    pub fn display_url(&self) -> String {
        match &self.unix {
            Some(p) => format!("unix:{}{}", p.display(), self.base_path),
            None => {
                let addrs: Vec<String> = self
                    .pool
                    .addrs()
                    .iter()
                    .map(|a| format!("{}://{}{}", self.scheme(), a.authority, self.base_path))
                    .collect();
                addrs.join(",")
            }
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Request-head deadline.
    pub header_read_timeout: Duration,
    /// Idle connection timeout.
    pub idle_timeout: Duration,
    /// Request-head size.
    pub max_header_bytes: usize,
    /// Default body limit.
    pub max_body: u64,
    /// Gap allowed between request body chunks.
    pub body_read_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_grace: Duration,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Requests in progress at once (global).
    pub max_in_flight: Option<usize>,
    /// No write progress on a response for this long cuts it.
    pub send_timeout: Duration,
    /// Total time to receive a request body.
    pub body_timeout: Duration,
}

/// A route's path pattern: literal segments and `{param}` segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written.
    pub raw: String,
    segments: Vec<Segment>,
    /// The whole path must match (`path_exact`), not only a segment-wise prefix.
    exact: bool,
    /// Literal segments match regardless of ASCII case.
    case_insensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Param,
}

impl PathPattern {
    /// Parses `/api/v1/tasks/{id}`.
    pub fn parse(raw: &str, exact: bool) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("\"{raw}\" must start with /"));
        }
        let mut segments = Vec::new();
        for seg in raw.split('/').skip(1) {
            if seg.is_empty() {
                continue;
            }
            if seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2 {
                segments.push(Segment::Param);
            } else if seg.contains(['{', '}', '?', '#', '%', '\\']) || seg == ".." || seg == "." {
                return Err(format!("\"{raw}\": segment \"{seg}\" is not a literal or a {{param}}"));
            } else {
                segments.push(Segment::Lit(seg.to_string()));
            }
        }
        Ok(Self { raw: raw.to_string(), segments, exact, case_insensitive: false })
    }

    /// The same pattern, matching literal segments regardless of ASCII case.
    pub fn case_insensitive(mut self, on: bool) -> Self {
        self.case_insensitive = on;
        self
    }

    /// Whether literal segments match regardless of ASCII case.
    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    fn lit_eq(&self, l: &str, p: &str) -> bool {
        if self.case_insensitive {
            l.eq_ignore_ascii_case(p)
        } else {
            l == p
        }
    }

    /// Whether every path `other` matches is also matched by `self`.
    pub fn covers(&self, other: &PathPattern) -> bool {
        if self.segments.len() > other.segments.len() {
            return false;
        }
        if self.exact && (!other.exact || self.segments.len() != other.segments.len()) {
            return false;
        }
        self.segments.iter().zip(&other.segments).all(|(a, b)| match (a, b) {
            (Segment::Param, _) => true,
            (Segment::Lit(_), Segment::Param) => false,
            (Segment::Lit(a), Segment::Lit(b)) => {
                // A case-insensitive `other` also matches other spellings of `b`.
                let b_has_case = b.bytes().any(|c| c.is_ascii_alphabetic());
                self.lit_eq(a, b) && (self.case_insensitive || !other.case_insensitive || !b_has_case)
            }
        })
    }

    /// Whether `path` (already normalized) matches; segment-wise prefix unless exact.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Segment::Lit(l), Some(p)) if self.lit_eq(l, p) => {}
                (Segment::Param, Some(_)) => {}
                _ => return false,
            }
        }
        !self.exact || parts.next().is_none()
    }

    /// Whether the whole path must match.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// `path` with the pattern's segments removed (for `strip_prefix`); always starts with `/`.
    pub fn strip<'a>(&self, path: &'a str) -> &'a str {
        let mut rest = path;
        for _ in &self.segments {
            let trimmed = rest.trim_start_matches('/');
            rest = match trimmed.find('/') {
                Some(i) => &trimmed[i..],
                None => "",
            };
        }
        if rest.is_empty() {
            "/"
        } else {
            rest
        }
    }
}

/// The effective policy of one route (or of the defaults).
#[derive(Debug, Clone)]
pub struct Route {
    /// Name for logs and metrics (`default` for unmatched requests).
    pub name: String,
    /// The name as a shared metric label.
    pub label: Arc<str>,
    /// Path pattern; `None` for the defaults.
    pub path: Option<PathPattern>,
    /// Allowed methods; `None` = any.
    pub methods: Option<Vec<Method>>,
    /// Body limit.
    pub max_body: u64,
    /// Time to the upstream's response headers.
    pub response_timeout: Duration,
    /// Remove the matched prefix before forwarding.
    pub strip_prefix: bool,
    /// Allowed request content types (lowercase essence), `None` = any.
    pub content_types: Option<Vec<String>>,
    /// Security headers for this route, if it overrides the global ones.
    pub security_headers: Option<crate::policy::security_headers::SecurityHeaders>,
    /// Upload inspection rules.
    pub upload: Option<Arc<crate::upload::UploadRules>>,
    /// The route's own CORS policy.
    pub cors: Option<crate::policy::cors::CorsPolicy>,
    /// Authentication (`None`: `auth.default`).
    pub auth: Option<crate::policy::auth::AuthMode>,
    /// Roles the identity needs (one of).
    pub roles: Option<Vec<String>>,
    /// Pass credentials on to the upstream.
    pub forward_credentials: bool,
    /// `None`: the default limit; `Some(None)`: off; `Some(Some(rule))`: this rule.
    pub rate_limit: Option<Option<crate::policy::rate_limit::Rule>>,
    /// Requests in progress at once on this route.
    pub max_in_flight: Option<usize>,
    /// IP rules overriding the global ones.
    pub ip_rules: Option<crate::policy::client_ip::IpRules>,
    /// No write progress on a response for this long cuts it.
    pub send_timeout: Duration,
    /// Total time to receive a request body.
    pub body_timeout: Duration,
    /// WebSocket upgrades allowed.
    pub websocket: bool,
    /// Redact successful (2xx) JSON and text bodies like 4xx ones.
    pub redact_success: bool,
    /// The upstream it forwards to (`None`: the default, `[upstream]`).
    pub upstream: Option<Arc<Upstream>>,
    /// Host names it matches (`None`: any).
    pub hosts: Option<Vec<HostRule>>,
}

/// A host name a route matches: exact, or `*.suffix` (one or more labels
/// before the suffix). Compared without the port, case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// `docs.example.com`
    Exact(String),
    /// `*.example.org`, kept as `.example.org`.
    Suffix(String),
}

impl HostRule {
    /// Parses `name` or `*.suffix`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let l = s.trim().to_ascii_lowercase();
        let valid = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|x| {
                    !x.is_empty() && x.len() <= 63 && x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        match l.strip_prefix("*.") {
            Some(rest) if valid(rest) && rest.contains('.') => Ok(Self::Suffix(format!(".{rest}"))),
            None if valid(&l) => Ok(Self::Exact(l)),
            _ => Err(format!("\"{s}\": use a host name (docs.example.com) or *.example.org")),
        }
    }

    /// Whether `host` (lowercase, no port) is matched.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h == host,
            Self::Suffix(sfx) => host.len() > sfx.len() && host.ends_with(sfx.as_str()),
        }
    }

    /// As written in the config.
    pub fn as_text(&self) -> String {
        match self {
            Self::Exact(h) => h.clone(),
            Self::Suffix(s) => format!("*{s}"),
        }
    }
}

/// The host name of a `Host` / `:authority` value: lowercase, without port
/// or IPv6 brackets.
pub fn host_name(authority: &str) -> std::borrow::Cow<'_, str> {
    let h = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { authority })
    };
    let h = h.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(h.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(h)
    }
}

/// One problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File (or environment variable) that holds the key.
    pub source: String,
    /// Dotted key path, e.g. `upstream.url` or `routes[2].max_body`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.source, self.key, self.reason)
        }
    }
}

/// Every problem found in a config; nothing was applied.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems with the source of each key.
pub(crate) struct Problems {
    source: String,
    env_keys: BTreeMap<String, String>,
    pub(crate) list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        let key = key.into();
        let source = self
            .env_keys
            .iter()
            .find(|(k, _)| key == **k || key.starts_with(&format!("{k}.")) || key.starts_with(&format!("{k}[")))
            .map(|(_, var)| format!("{var} (environment)"))
            .unwrap_or_else(|| self.source.clone());
        self.list.push(Problem { source, key, reason: reason.into() });
    }
}

/// Loads, overrides, and validates a config. `path = None` → built-in defaults
/// (still subject to `MOAT_*` overrides).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("MOAT_")).collect();
    load_with_env(path, &env)
}

/// [`load`] with an explicit environment (tests).
pub fn load_with_env(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let source = path.map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into());
    let text = match path {
        None => None,
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut problems = Problems { source, env_keys: BTreeMap::new(), list: Vec::new() };
                problems.push("", format!("cannot read the config file: {}", io_reason(&e)));
                return Err(ConfigError { problems: problems.list });
            }
        },
    };
    load_text(source, text.as_deref(), path, env)
}

/// Parses and validates config text that comes from no file (relative
/// paths in it are relative to the working directory): `source` names it
/// in errors. For tools and property tests; `moat` itself uses [`load`].
pub fn load_str(source: &str, text: &str) -> Result<Config, ConfigError> {
    load_text(source.to_string(), Some(text), None, &[])
}

fn load_text(
    source: String,
    text: Option<&str>,
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let mut problems = Problems { source: source.clone(), env_keys: BTreeMap::new(), list: Vec::new() };
    let fail = |problems: Problems| Err(ConfigError { problems: problems.list });

    let mut table = match text {
        None => toml::Table::new(),
        Some(text) => match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                let reason = match line {
                    Some(l) => format!("line {l}: {}", e.message()),
                    None => e.message().to_string(),
                };
                problems.push("", format!("invalid TOML: {reason}"));
                return fail(problems);
            }
        },
    };

    let mut includes = Vec::new();
    let mut chain: Vec<PathBuf> = path.iter().map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf())).collect();
    expand_includes(&mut table, path, &mut chain, &mut includes, &mut problems);
    apply_env(&mut table, env, &mut problems);
    resolve_files(&mut table, path, &mut problems);
    if !problems.list.is_empty() {
        return fail(problems);
    }

    // A type error stops serde at its key: record it, drop that key, and
    // deserialize again, so that every type error is reported in one run.
    let mut value = toml::Value::Table(table);
    let mut unknown: Vec<String> = Vec::new();
    let mut type_errors: Vec<(String, String)> = Vec::new();
    let raw = loop {
        let mut found = Vec::new();
        let res: Result<raw::RawConfig, _> = {
            let mut on_unknown = |p: serde_ignored::Path<'_>| found.push(p.to_string());
            let de = serde_ignored::Deserializer::new(value.clone(), &mut on_unknown);
            serde_path_to_error::deserialize(de)
        };
        for k in found {
            if !unknown.contains(&k) {
                unknown.push(k);
            }
        }
        match res {
            Ok(r) => break Some(r),
            Err(e) => {
                let key = e.path().to_string();
                let segments: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                let msg = e.into_inner().message().to_string();
                type_errors.push((if key == "." { String::new() } else { key }, msg));
                if type_errors.len() >= 100 || !remove_path(&mut value, &segments) {
                    break None;
                }
            }
        }
    };
    for key in unknown {
        problems.push(key, "unknown key (no such setting in this version of moat)");
    }
    for (key, msg) in type_errors {
        problems.push(key, msg);
    }
    let Some(raw) = raw else {
        return fail(problems);
    };
    let cfg = validate(raw, source, path.map(Path::to_path_buf), &mut problems);
    match cfg {
        Some(mut c) if problems.list.is_empty() => {
            c.includes = includes;
            Ok(c)
        }
        _ => fail(problems),
    }
}

/// Deepest `include` nesting.
const MAX_INCLUDE_DEPTH: usize = 8;

/// `include = ["preset.toml", ...]` (paths relative to the including file):
/// each file, its own includes expanded first, is a base the including
/// file is laid over. Tables merge key by key (the including file wins),
/// `[[routes]]` of the including file come first (so they match first),
/// any other value is replaced. `chain` holds the files being read, to
/// refuse a cycle; `files` collects every file read.
fn expand_includes(
    table: &mut toml::Table,
    path: Option<&Path>,
    chain: &mut Vec<PathBuf>,
    files: &mut Vec<PathBuf>,
    problems: &mut Problems,
) {
    let Some(list) = table.remove("include") else { return };
    let toml::Value::Array(list) = list else {
        problems.push("include", "must be a list of file paths");
        return;
    };
    let mut merged = toml::Table::new();
    for (i, v) in list.iter().enumerate() {
        let key = format!("include[{i}]");
        let Some(name) = v.as_str() else {
            problems.push(key, "must be a file path");
            continue;
        };
        let file = resolve_relative(path, name);
        let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
        if chain.contains(&canonical) {
            problems.push(key, format!("{} includes itself (directly or through another file)", file.display()));
            continue;
        }
        if chain.len() > MAX_INCLUDE_DEPTH {
            problems.push(key, format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"));
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(key, format!("cannot read {}: {}", file.display(), io_reason(&e)));
                continue;
            }
        };
        let mut t = match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                let line = e.span().map(|s| text[..s.start].lines().count().max(1)).unwrap_or(1);
                problems.push(key, format!("{}: invalid TOML: line {line}: {}", file.display(), e.message()));
                continue;
            }
        };
        chain.push(canonical);
        expand_includes(&mut t, Some(&file), chain, files, problems);
        chain.pop();
        files.push(file);
        merge_tables(&mut merged, t);
    }
    merge_tables(&mut merged, std::mem::take(table));
    *table = merged;
}

/// Lays `over` onto `base` (see [`expand_includes`]).
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (Some(toml::Value::Array(b)), toml::Value::Array(mut o)) if k == "routes" => {
                o.append(b);
                *b = o;
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Removes the value at a serde path from a TOML document; `false` when the
/// path does not lead to a removable value.
fn remove_path(value: &mut toml::Value, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = value;
    for seg in parents {
        let next = match (seg, cur) {
            (Segment::Map { key }, toml::Value::Table(t)) => t.get_mut(key.as_str()),
            (Segment::Seq { index }, toml::Value::Array(a)) => a.get_mut(*index),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Segment::Map { key }, toml::Value::Table(t)) => t.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, toml::Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `MOAT_SECTION__KEY=value` sets `section.key`. Digits become integers,
/// `true`/`false` booleans, `[...]`/`{...}` TOML arrays/tables; anything else a string.
fn apply_env(table: &mut toml::Table, env: &[(String, String)], problems: &mut Problems) {
    for (var, val) in env {
        let Some(rest) = var.strip_prefix("MOAT_") else {
            continue;
        };
        if !rest.contains("__") {
            continue; // MOAT_CONFIG, MOAT_LOG, MOAT_LOG_FORMAT
        }
        let parts: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let key = parts.join(".");
        problems.env_keys.insert(key.clone(), var.clone());
        if parts.iter().any(|p| p.is_empty()) {
            problems.push(key, "malformed environment override name");
            continue;
        }
        let value = env_value(val);
        if let Err(p) = set_path(table, &parts, value) {
            problems.push(key.clone(), format!("cannot override: `{p}` is not a table"));
        }
    }
}

fn set_path(table: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    match parts {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(first.clone()),
            }
        }
    }
}

fn env_value(v: &str) -> toml::Value {
    let t = v.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = t.parse::<i64>() {
            return toml::Value::Integer(n);
        }
    }
    match t {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    if t.starts_with('[') || t.starts_with('{') {
        if let Ok(tbl) = format!("v = {t}").parse::<toml::Table>() {
            if let Some(v) = tbl.get("v") {
                return v.clone();
            }
        }
    }
    toml::Value::String(v.to_string())
}

/// Replaces `KEY_file = "/path"` by `KEY = <file content>` for the keys in [`FILE_KEYS`].
fn resolve_files(table: &mut toml::Table, cfg_path: Option<&Path>, problems: &mut Problems) {
    for key in FILE_KEYS {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        let Some(toml::Value::Table(sec)) = table.get_mut(section) else {
            continue;
        };
        let file_key = format!("{name}_file");
        let Some(v) = sec.remove(&file_key) else {
            continue;
        };
        let dotted = format!("{section}.{file_key}");
        let Some(p) = v.as_str() else {
            problems.push(dotted, "must be a file path (string)");
            continue;
        };
        if sec.contains_key(&name.to_string()) {
            problems.push(dotted, format!("both `{key}` and `{section}.{file_key}` are set; keep one"));
            continue;
        }
        let p = resolve_relative(cfg_path, p);
        match std::fs::read_to_string(&p) {
            Ok(s) => {
                sec.insert(name.to_string(), toml::Value::String(s.trim_end_matches(['\r', '\n']).to_string()));
            }
            Err(e) => problems.push(dotted, format!("cannot read {}: {}", p.display(), io_reason(&e))),
        }
    }
}

/// Relative paths in a config file are relative to the file's directory.
pub(crate) fn resolve_relative(cfg_path: Option<&Path>, p: &str) -> PathBuf {
    let pb = PathBuf::from(p);
    match cfg_path.and_then(Path::parent) {
        Some(dir) if pb.is_relative() && !dir.as_os_str().is_empty() => dir.join(pb),
        _ => pb,
    }
}

impl Config {
    /// The built-in defaults (no file, no environment).
    pub fn defaults() -> Result<Self, ConfigError> {
        load_with_env(None, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn errors(text: &str, env: &[(&str, &str)]) -> Vec<String> {
        let f = write(text);
        let env: Vec<(String, String)> = env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        match load_with_env(Some(f.path()), &env) {
            Ok(_) => vec![],
            Err(e) => e.problems.iter().map(|p| format!("{}: {}", p.key, p.reason)).collect(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.listen.https.to_string(), "127.0.0.1:8443");
        assert_eq!(c.listen.admin.to_string(), "127.0.0.1:9901");
        assert_eq!(c.upstream.origin.as_str(), "127.0.0.1:8000");
        assert!(c.tls.cert.is_none());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = errors("[listen]\nhttps = \"127.0.0.1:1\"\nfoo = 1\n[bogus]\nx = 1\n", &[]);
        assert!(e.contains(&"listen.foo: unknown key (no such setting in this version of moat)".to_string()), "{e:?}");
        assert!(e.iter().any(|l| l.starts_with("bogus")), "{e:?}");
    }

    #[test]
    fn relative_url_error_names_the_key() {
        let e = errors("[upstream]\nurl = \"app:8000/x\"\n", &[]);
        assert!(e.iter().any(|l| l.starts_with("upstream.url: ")), "{e:?}");
        let e = errors("[upstream]\nurl = \"/x\"\n", &[]);
        assert_eq!(e, vec!["upstream.url: relative URL without a base".to_string()]);
    }

    #[test]
    fn every_problem_is_reported() {
        let e = errors(
            "[limits]\nidle_timeout = \"10 parsecs\"\nmax_body = \"lots\"\n[upstream]\nurl = \"ftp://x\"\n",
            &[],
        );
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn every_type_error_is_reported_with_its_key() {
        let e = errors(
            "[upstream]\nurl = 5\n[limits]\nmax_body = true\nmax_connections = \"many\"\n[[routes]]\nname = \"a\"\npath = \"/a\"\nmethods = \"GET\"\n",
            &[],
        );
        for key in ["upstream.url: ", "limits.max_body: ", "limits.max_connections: ", "routes[0].methods: "] {
            assert!(e.iter().any(|l| l.starts_with(key)), "{key} missing from {e:?}");
        }
    }

    #[test]
    fn env_overrides_and_sources() {
        let f = write("[upstream]\nurl = \"http://127.0.0.1:1\"\n");
        let env = vec![
            ("MOAT_UPSTREAM__URL".to_string(), "http://10.1.2.3:9000".to_string()),
            ("MOAT_LIMITS__MAX_CONNECTIONS".to_string(), "77".to_string()),
        ];
        let c = load_with_env(Some(f.path()), &env).unwrap();
        assert_eq!(c.upstream.origin.as_str(), "10.1.2.3:9000");
        assert_eq!(c.limits.max_connections, 77);

        let env = vec![("MOAT_LIMITS__IDLE_TIMEOUT".to_string(), "forever".to_string())];
        let e = load_with_env(Some(f.path()), &env).unwrap_err();
        assert_eq!(e.problems[0].source, "MOAT_LIMITS__IDLE_TIMEOUT (environment)");
        assert_eq!(e.problems[0].key, "limits.idle_timeout");
    }

    #[test]
    fn file_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), "http://127.0.0.1:4567\n").unwrap();
        let cfg = dir.path().join("moat.toml");
        std::fs::write(&cfg, "[upstream]\nurl_file = \"url\"\n").unwrap();
        let c = load_with_env(Some(&cfg), &[]).unwrap();
        assert_eq!(c.upstream.origin.as_str(), "127.0.0.1:4567");
    }

    #[test]
    fn path_patterns() {
        let p = PathPattern::parse("/api/v1/tasks/{id}", false).unwrap();
        assert!(p.matches("/api/v1/tasks/42"));
        assert!(p.matches("/api/v1/tasks/42/result"));
        assert!(!p.matches("/api/v1/tasks"));
        assert!(!p.matches("/api/v1/tasksx/1"));
        let e = PathPattern::parse("/", true).unwrap();
        assert!(e.matches("/"));
        assert!(!e.matches("/x"));
        let pre = PathPattern::parse("/app", false).unwrap();
        assert!(pre.matches("/app"));
        assert!(pre.matches("/app/x"));
        assert!(!pre.matches("/apple"));
        assert_eq!(pre.strip("/app/x/y"), "/x/y");
        assert_eq!(pre.strip("/app"), "/");
    }

    #[test]
    fn case_insensitive_patterns_and_coverage() {
        let ci = PathPattern::parse("/api/Admin", false).unwrap().case_insensitive(true);
        assert!(ci.matches("/API/admin/x"));
        let cs = PathPattern::parse("/api/admin", false).unwrap();
        assert!(!cs.matches("/API/admin"));
        let api = PathPattern::parse("/api", false).unwrap();
        assert!(api.covers(&cs));
        assert!(!cs.covers(&api));
        assert!(!api.covers(&ci), "a case-insensitive route matches /API, which /api does not");
        let param = PathPattern::parse("/api/{x}", false).unwrap();
        assert!(param.covers(&cs));
        assert!(!cs.covers(&param));
        let exact = PathPattern::parse("/api", true).unwrap();
        assert!(!exact.covers(&cs));
        assert!(exact.covers(&PathPattern::parse("/api", true).unwrap()));
        assert!(api.covers(&exact));
    }
}
