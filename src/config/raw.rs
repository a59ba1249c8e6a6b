//! The config file as written: serde structs, every value still in its
//! textual form. `validate/` turns these into typed values and reports
//! every problem with its key path. Keys that no struct here declares are
//! collected by the loader and refused: a security proxy never silently
//! ignores a setting.

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::{DurationText, RateText, Scalar, SizeText};

/// The whole file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawConfig {
    /// Files this one is laid over (paths relative to this file; e.g. a
    /// preset): their tables merge key by key with this file winning, and
    /// this file's `[[routes]]` come before theirs. Relative paths inside
    /// them are relative to this file.
    pub include: Option<Vec<String>>,
    /// Allowlist mode: a path outside every route is a 404.
    #[schemars(extend("default" = false))]
    pub deny_unmatched: Option<bool>,
    /// Accept path parameters (`;` in a path segment).
    #[schemars(extend("default" = false))]
    pub allow_path_params: Option<bool>,
    /// `[listen]`: the HTTPS, plain-HTTP redirect and admin listener addresses.
    pub listen: RawListen,
    /// `[tls]`: the served certificate, protocol versions, client certificates.
    pub tls: RawTls,
    /// `[upstream]`: the app behind moat, its timeouts and its readiness check
    /// (the upstream named `default`).
    pub upstream: RawUpstream,
    /// `[upstreams.NAME]`: more upstreams, chosen by routes with `upstream = "NAME"`.
    pub upstreams: std::collections::BTreeMap<String, RawUpstream>,
    /// `[limits]`: connection, header, body and time limits.
    pub limits: RawLimits,
    /// `[client_ip]`: trusted proxies and IP allow/deny lists.
    pub client_ip: RawClientIp,
    /// `[rate_limit]`: the limiter's backend and the default limit.
    pub rate_limit: RawRateLimit,
    /// `[cors]`: the default CORS policy of every route.
    pub cors: RawCors,
    /// `[auth]`: API keys, basic users, the default auth and failure throttling.
    pub auth: RawAuth,
    /// `[errors]`: how moat's own and upstream error responses look.
    pub errors: RawErrors,
    /// `[security_headers]`: headers added to every response.
    pub security_headers: RawSecurityHeaders,
    /// `[scan]`: malware scanning of uploads by clamd (routes opt in with
    /// `upload = { ..., scan = true }`).
    pub scan: Option<RawScan>,
    /// `[[routes]]`: the routes, matched by path; the first match wins.
    pub routes: Vec<RawRoute>,
}

/// `[scan]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawScan {
    /// clamd's address: `tcp://HOST:PORT` or `unix:/path/to/clamd.ctl`.
    pub clamd: Option<String>,
    /// Longest wait for a clamd connection, a write to clamd, or the verdict after a file's last byte.
    #[schemars(with = "Option<DurationText>", extend("default" = "30s"))]
    pub timeout: Option<Scalar>,
    /// Largest file that is scanned; clamd's StreamMaxLength must be at least this.
    #[schemars(with = "Option<SizeText>", extend("default" = "25MiB"))]
    pub max_file_size: Option<Scalar>,
    /// A file over max_file_size: "deny" (413) or "allow" (passes unscanned).
    #[schemars(extend("default" = "deny", "enum" = ["deny", "allow"]))]
    pub on_too_large: Option<String>,
    /// clamd down, too slow or answering an error: "deny" (503) or "allow" (passes unscanned).
    #[schemars(extend("default" = "deny", "enum" = ["deny", "allow"]))]
    pub on_error: Option<String>,
    /// Most clamd connections open at once.
    #[schemars(extend("default" = 16))]
    pub pool_size: Option<i64>,
    /// /readyz also needs clamd to answer PING.
    #[schemars(extend("default" = false))]
    pub required_for_ready: Option<bool>,
}

/// `[client_ip]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawClientIp {
    /// Peers whose `x-forwarded-for` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Only these networks may connect (empty = everyone).
    pub allow: Option<Vec<String>>,
    /// These networks may not.
    pub deny: Option<Vec<String>>,
}

/// A rate-limit rule, or `"off"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawRuleOrOff {
    /// `"off"`
    Off(String),
    /// `{ key, rate, burst }`
    Rule(RawRule),
}

impl JsonSchema for RawRuleOrOff {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RuleOrOff".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A rate-limit rule `{ key, rate, burst }`, or \"off\" for no limit.",
            "anyOf": [
                { "const": "off" },
                generator.subschema_for::<RawRule>()
            ]
        })
    }
}

/// `{ key = "ip", rate = "20/s", burst = 40 }`
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// `ip`, `api_key` or `route`.
    #[schemars(extend("enum" = ["ip", "api_key", "route"], "default" = "ip"))]
    pub key: Option<String>,
    /// `COUNT/UNIT`.
    #[schemars(with = "Option<RateText>")]
    pub rate: Option<String>,
    /// Requests allowed at once (default: the rate's count).
    pub burst: Option<i64>,
}

/// `[rate_limit]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawRateLimit {
    /// `memory` or `redis`.
    #[schemars(extend("enum" = ["memory", "redis"], "default" = "memory"))]
    pub backend: Option<String>,
    /// Redis URL.
    pub redis_url: Option<String>,
    /// Timeout of each Redis call.
    #[schemars(with = "Option<DurationText>")]
    pub redis_timeout: Option<Scalar>,
    /// `allow` or `deny`.
    #[schemars(extend("enum" = ["allow", "deny"], "default" = "allow"))]
    pub on_backend_error: Option<String>,
    /// IPv6 prefix length for IP keys.
    pub ipv6_prefix: Option<i64>,
    /// Keys tracked per route in memory.
    pub max_keys: Option<i64>,
    /// Limit for routes without their own.
    pub default: Option<RawRuleOrOff>,
}

/// `[cors]` (also a route's `cors`; unset keys inherit from `[cors]`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RawCors {
    /// Allowed origins.
    pub allowed_origins: Option<Vec<String>>,
    /// Methods a preflight may ask for.
    pub allowed_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for.
    pub allowed_headers: Option<Vec<String>>,
    /// Response headers exposed to scripts.
    pub expose_headers: Option<Vec<String>>,
    /// Allow credentials.
    pub allow_credentials: Option<bool>,
    /// Preflight cache lifetime.
    #[schemars(with = "Option<DurationText>")]
    pub max_age: Option<Scalar>,
    /// Answer Private Network Access preflights.
    pub allow_private_network: Option<bool>,
    /// Refuse state-changing methods from other origins.
    pub reject_disallowed_origin: Option<bool>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawAuth {
    /// API keys (name, SHA-256 of the key, roles).
    pub api_keys: Option<Vec<RawApiKey>>,
    /// A TOML file holding `api_keys = [...]`.
    pub api_keys_file: Option<String>,
    /// Basic users (user, argon2id hash, roles).
    pub basic: Option<Vec<RawBasic>>,
    /// A TOML file holding `basic = [...]`.
    pub basic_file: Option<String>,
    /// Realm in `WWW-Authenticate`.
    pub realm: Option<String>,
    /// Auth of routes that set none.
    #[schemars(extend("enum" = ["none", "api_key", "basic", "any", "forward", "session"]))]
    pub default: Option<String>,
    /// `{ count = 5, per = "1m" }`
    pub max_failures: Option<RawMaxFailures>,
    /// Client IPs tracked for failures at most.
    pub max_tracked_clients: Option<i64>,
    /// `[auth.forward]`: routes with `auth = "forward"` ask this service
    /// (Authelia, Authentik, oauth2-proxy) about every request.
    pub forward: Option<RawForwardAuth>,
    /// `[auth.session]`: routes with `auth = "session"` need a sign-in on moat's own page.
    pub session: Option<RawSession>,
    /// `[auth.paperless]`: paperless-ngx as the sign-in backend of `[auth.session]`.
    pub paperless: Option<RawPaperless>,
}

/// `[auth.session]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawSession {
    /// A file of session keys, one per line (`moat session-key`): the first seals, all open.
    pub keys_file: Option<String>,
    /// A session unused this long ends.
    #[schemars(with = "Option<DurationText>", extend("default" = "1h"))]
    pub idle_timeout: Option<Scalar>,
    /// A session ends this long after sign-in.
    #[schemars(with = "Option<DurationText>", extend("default" = "12h"))]
    pub lifetime: Option<Scalar>,
    /// The sign-in page.
    #[schemars(extend("default" = "/.moat/login"))]
    pub login_path: Option<String>,
    /// The sign-out page.
    #[schemars(extend("default" = "/.moat/logout"))]
    pub logout_path: Option<String>,
    /// Who checks the password: "local" (the [auth] basic users) or "paperless" ([auth.paperless]).
    #[schemars(extend("default" = "local", "enum" = ["local", "paperless"]))]
    pub backend: Option<String>,
}

/// `[auth.paperless]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawPaperless {
    /// paperless-ngx's base URL, e.g. `http://paperless-ngx:8000`.
    pub url: Option<String>,
    /// Only members of this paperless group may sign in (its name).
    pub group: Option<String>,
    /// Time for paperless-ngx's answers.
    #[schemars(with = "Option<DurationText>", extend("default" = "10s"))]
    pub timeout: Option<Scalar>,
    /// https: PEM bundle of the CAs paperless-ngx's certificate must chain to.
    pub ca: Option<String>,
    /// https: SNI and verification name (default: the URL's host).
    pub server_name: Option<String>,
    /// https: client certificate chain (PEM).
    pub client_cert: Option<String>,
    /// https: the client certificate's private key (PEM).
    pub client_key: Option<String>,
    /// https: lowest TLS version, "1.2" or "1.3".
    pub min_version: Option<String>,
}

/// `[auth.forward]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawForwardAuth {
    /// The auth service's check endpoint, e.g. `http://authelia:9091/api/authz/forward-auth`.
    pub url: Option<String>,
    /// Time for the auth service's answer (connect included); past it the request gets 503.
    #[schemars(with = "Option<DurationText>", extend("default" = "5s"))]
    pub timeout: Option<Scalar>,
    /// Client request headers sent to the auth service besides `Cookie` and `Authorization`.
    pub copy_request_headers: Option<Vec<String>>,
    /// Headers of the auth service's 2xx answer copied to the upstream request
    /// (a client-sent copy of each is removed first).
    pub copy_response_headers: Option<Vec<String>>,
    /// The answer's header naming the user (logs, rate-limit keys); "" for none.
    #[schemars(extend("default" = "Remote-User"))]
    pub user_header: Option<String>,
    /// The answer's header listing the user's groups (comma-separated): the identity's roles; "" for none.
    #[schemars(extend("default" = "Remote-Groups"))]
    pub roles_header: Option<String>,
    /// How long a positive answer is reused for the same credentials, host and route ("0s": ask every time).
    #[schemars(with = "Option<DurationText>", extend("default" = "0s"))]
    pub cache_ttl: Option<Scalar>,
    /// Positive answers cached at most.
    pub cache_max: Option<i64>,
    /// https: PEM bundle of the CAs the auth service's certificate must chain to.
    pub ca: Option<String>,
    /// https: SNI and verification name (default: the URL's host).
    pub server_name: Option<String>,
    /// https: client certificate chain (PEM) presented to the auth service.
    pub client_cert: Option<String>,
    /// https: the client certificate's private key (PEM).
    pub client_key: Option<String>,
    /// https: lowest TLS version, "1.2" or "1.3".
    pub min_version: Option<String>,
}

/// One API key.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// Identity name.
    pub name: Option<String>,
    /// SHA-256 of the key, hex.
    pub sha256: Option<String>,
    /// Roles.
    pub roles: Option<Vec<String>>,
}

/// One basic user.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    /// User name.
    pub user: Option<String>,
    /// argon2id PHC string.
    pub hash: Option<String>,
    /// Roles.
    pub roles: Option<Vec<String>>,
}

/// `max_failures = { count, per }`
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMaxFailures {
    /// Failures allowed.
    pub count: Option<i64>,
    /// Window.
    #[schemars(with = "Option<DurationText>")]
    pub per: Option<Scalar>,
}

/// A file of credentials (`api_keys_file` / `basic_file`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawCredentialFile {
    /// API keys.
    pub api_keys: Option<Vec<RawApiKey>>,
    /// Basic users.
    pub basic: Option<Vec<RawBasic>>,
}

/// A route's `upload = { ... }`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    /// Type names from moat's table (`pdf`, `png`, `docx`, ...).
    pub types: Option<Vec<String>>,
    /// File parts allowed in one request.
    pub max_files: Option<i64>,
    /// Size of one file part.
    #[schemars(with = "Option<SizeText>")]
    pub max_file_size: Option<Scalar>,
    /// Size of one non-file field.
    #[schemars(with = "Option<SizeText>")]
    pub max_field_bytes: Option<Scalar>,
    /// Allowed non-file fields (when set, others are refused).
    pub fields: Option<Vec<RawField>>,
    /// How far into a file moat looks for a structure it needs.
    #[schemars(with = "Option<SizeText>")]
    pub inspect_window: Option<Scalar>,
    /// Stream every file to clamd (`[scan]`) and refuse infected uploads.
    pub scan: Option<bool>,
}

/// One allowed form field.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// Field name.
    pub name: Option<String>,
    /// Size cap for this field.
    #[schemars(with = "Option<SizeText>")]
    pub max_bytes: Option<Scalar>,
    /// Regular expression the whole value must match.
    pub pattern: Option<String>,
}

/// `[errors]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawErrors {
    /// Replace upstream 5xx bodies with moat's problem+json.
    #[schemars(extend("default" = true))]
    pub replace_upstream_5xx: Option<bool>,
    /// Redact leaks from upstream 4xx bodies.
    #[schemars(extend("default" = true))]
    pub redact_upstream_4xx: Option<bool>,
    /// Add `"error": <detail>` to moat's problem+json.
    #[schemars(extend("default" = false))]
    pub error_field: Option<bool>,
    /// Answer browsers (Accept prefers text/html) with an HTML error page.
    #[schemars(extend("default" = true))]
    pub html: Option<bool>,
}

/// `[security_headers]` (also a route's `security_headers` override). An
/// empty string turns a header off.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    /// `strict-transport-security`
    pub hsts: Option<String>,
    /// `content-security-policy`
    pub content_security_policy: Option<String>,
    /// `x-frame-options`
    pub frame_options: Option<String>,
    /// `referrer-policy`
    pub referrer_policy: Option<String>,
}

/// `[listen]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawListen {
    /// HTTPS listener address.
    pub https: Option<String>,
    /// Optional plain-HTTP listener answering 308 to https.
    pub http_redirect: Option<String>,
    /// Admin listener address (plain HTTP).
    pub admin: Option<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
    /// `"1.2"` or `"1.3"`.
    #[schemars(extend("enum" = ["1.2", "1.3"], "default" = "1.2"))]
    pub min_version: Option<String>,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<String>,
    /// Time allowed for the TLS handshake.
    #[schemars(with = "Option<DurationText>")]
    pub handshake_timeout: Option<Scalar>,
    /// `[[tls.certificates]]`: a certificate per host name, chosen by SNI.
    pub certificates: Vec<RawTlsCert>,
}

/// `[[tls.certificates]]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawTlsCert {
    /// PEM certificate chain.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
    /// Names it is served for (`docs.example.com`, `*.example.org`); default: the certificate's DNS names.
    pub hosts: Option<Vec<String>>,
}

/// `[upstream]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawUpstream {
    /// Base URL of the app: `http://HOST:PORT/base`, `https://...`, or `unix:/path/to.sock`.
    pub url: Option<String>,
    /// Several addresses of the same app (instead of `url`; same scheme and path).
    pub urls: Option<Vec<String>>,
    /// How `urls` share the requests: "round_robin" or "least_in_flight".
    #[schemars(extend("default" = "round_robin", "enum" = ["round_robin", "least_in_flight"]))]
    pub balance: Option<String>,
    /// How long an address that failed to connect is skipped.
    #[schemars(with = "Option<DurationText>", extend("default" = "10s"))]
    pub fail_timeout: Option<Scalar>,
    /// https: PEM bundle of the CAs the app's certificate must chain to (default: the system roots).
    pub ca: Option<String>,
    /// https: the name sent as SNI and verified in the app's certificate (default: the URL's host).
    pub server_name: Option<String>,
    /// https: client certificate chain (PEM) presented to the app (mTLS).
    pub client_cert: Option<String>,
    /// https: the client certificate's private key (PEM).
    pub client_key: Option<String>,
    /// https: lowest TLS version, "1.2" or "1.3".
    #[schemars(extend("default" = "1.2", "enum" = ["1.2", "1.3"]))]
    pub min_version: Option<String>,
    /// TCP connect timeout.
    #[schemars(with = "Option<DurationText>")]
    pub connect_timeout: Option<Scalar>,
    /// Time to the upstream's response headers.
    #[schemars(with = "Option<DurationText>")]
    pub response_timeout: Option<Scalar>,
    /// How long an idle pooled connection is kept.
    #[schemars(with = "Option<DurationText>")]
    pub pool_idle_timeout: Option<Scalar>,
    /// Every this often, half of the idle pooled connections that went
    /// unused over the whole interval are closed (the oldest first; a last
    /// one is left to `pool_idle_timeout`), so the pool shrinks back after
    /// a burst, as HAProxy's `pool-purge-delay`. "0s": only the idle
    /// timeout and `pool_max_idle` bound the pool.
    #[schemars(with = "Option<DurationText>")]
    pub pool_purge_interval: Option<Scalar>,
    /// Idle pooled connections kept at most per upstream address. A plain
    /// `http://` default upstream has a pool per worker thread (one per
    /// core), each keeping this many, as nginx's `keepalive` counts them.
    pub pool_max_idle: Option<i64>,
    /// Readiness asks this path instead of a TCP connect.
    pub health_path: Option<String>,
    /// Active health checks: every address is probed this often (health_path,
    /// else a connect); one that fails takes no requests until it passes again.
    #[schemars(with = "Option<DurationText>")]
    pub health_interval: Option<Scalar>,
    /// Status the health path must answer.
    pub health_status: Option<i64>,
    /// Keys the health path's JSON body must hold with these values.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub health_json: Option<toml::Table>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawLimits {
    /// Concurrent client connections.
    pub max_connections: Option<i64>,
    /// Time allowed for a client to send a complete request head.
    #[schemars(with = "Option<DurationText>")]
    pub header_read_timeout: Option<Scalar>,
    /// A connection with no request in flight and no traffic for this long is closed.
    #[schemars(with = "Option<DurationText>")]
    pub idle_timeout: Option<Scalar>,
    /// Size of a request head (request line and headers).
    #[schemars(with = "Option<SizeText>")]
    pub max_header_bytes: Option<Scalar>,
    /// Default request body limit for every route.
    #[schemars(with = "Option<SizeText>")]
    pub max_body: Option<Scalar>,
    /// Time allowed between two chunks of a request body.
    #[schemars(with = "Option<DurationText>")]
    pub body_read_timeout: Option<Scalar>,
    /// Time in-flight requests get to finish after SIGTERM.
    #[schemars(with = "Option<DurationText>")]
    pub shutdown_grace: Option<Scalar>,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: Option<i64>,
    /// Requests in progress at once (global); more are shed with 503.
    pub max_in_flight: Option<i64>,
    /// A response that makes no write progress for this long is cut.
    #[schemars(with = "Option<DurationText>")]
    pub send_timeout: Option<Scalar>,
    /// Total time allowed to receive a request body.
    #[schemars(with = "Option<DurationText>")]
    pub body_timeout: Option<Scalar>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RawRoute {
    /// Name used in logs and metrics.
    pub name: Option<String>,
    /// Path prefix (segment-wise), `{param}` segments allowed.
    pub path: Option<String>,
    /// Match the whole path instead of a prefix.
    #[schemars(extend("default" = false))]
    pub exact: Option<bool>,
    /// Allowed methods; others get 405.
    pub methods: Option<Vec<String>>,
    /// Body limit for this route.
    #[schemars(with = "Option<SizeText>")]
    pub max_body: Option<Scalar>,
    /// Time to the upstream's response headers on this route.
    #[schemars(with = "Option<DurationText>")]
    pub response_timeout: Option<Scalar>,
    /// Remove the route's path prefix before forwarding.
    #[schemars(extend("default" = false))]
    pub strip_prefix: Option<bool>,
    /// Allowed request `Content-Type`s for requests with a body.
    pub content_types: Option<Vec<String>>,
    /// Per-route security header overrides.
    pub security_headers: Option<RawSecurityHeaders>,
    /// Upload inspection for this route.
    pub upload: Option<RawUpload>,
    /// This route's CORS policy.
    pub cors: Option<RawCors>,
    /// `none`, `api_key`, `basic` or `any`.
    #[schemars(extend("enum" = ["none", "api_key", "basic", "any", "forward", "session"]))]
    pub auth: Option<String>,
    /// Roles the identity needs (one of).
    pub roles: Option<Vec<String>>,
    /// Pass credentials on to the upstream.
    #[schemars(extend("default" = false))]
    pub forward_credentials: Option<bool>,
    /// This route's rate limit, or `"off"`.
    pub rate_limit: Option<RawRuleOrOff>,
    /// Requests in progress at once on this route.
    pub max_in_flight: Option<i64>,
    /// Only these networks (overrides `client_ip.allow`).
    pub allow: Option<Vec<String>>,
    /// Not these networks (overrides `client_ip.deny`).
    pub deny: Option<Vec<String>>,
    /// No write progress on a response for this long cuts it (overrides `limits.send_timeout`).
    #[schemars(with = "Option<DurationText>")]
    pub send_timeout: Option<Scalar>,
    /// Total time to receive a request body (overrides `limits.body_timeout`).
    #[schemars(with = "Option<DurationText>")]
    pub body_timeout: Option<Scalar>,
    /// Allow WebSocket upgrades (RFC 6455) on this route.
    #[schemars(extend("default" = false))]
    pub websocket: Option<bool>,
    /// Match literal path segments regardless of ASCII case.
    #[schemars(extend("default" = false))]
    pub case_insensitive: Option<bool>,
    /// Redact successful (2xx) JSON and text bodies.
    #[schemars(extend("default" = false))]
    pub redact_success: Option<bool>,
    /// The upstream this route forwards to: "default" ([upstream]) or a name of [upstreams].
    #[schemars(extend("default" = "default"))]
    pub upstream: Option<String>,
    /// Only requests for these host names match (`docs.example.com`, `*.example.org`); unset: any host.
    pub hosts: Option<Vec<String>>,
}
