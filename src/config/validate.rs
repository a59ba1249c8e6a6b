//! Raw → typed. Each check pushes a problem with its key path and goes on, so
//! that every mistake in a file is reported at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::raw::{
    RawApiKey, RawAuth, RawBasic, RawConfig, RawCors, RawCredentialFile, RawForwardAuth, RawPaperless, RawRoute,
    RawRule, RawRuleOrOff, RawScan, RawSecurityHeaders, RawUpload, RawUpstream,
};
use super::units::{self, Scalar};
use super::{Config, HostRule, Limits, Listen, PathPattern, Problems, Route, Tls, TlsVersion, Upstream};
use crate::policy::auth::{ApiKey, AuthConfig, AuthMode, BasicUser};
use crate::policy::client_ip::IpRules;
use crate::policy::cors::{CorsPolicy, OriginRule};
use crate::policy::rate_limit::{Backend, KeyKind, OnBackendError, RateLimitConfig, Rule};
use crate::policy::security_headers::SecurityHeaders;

fn dur(p: &mut Problems, key: &str, v: &Option<Scalar>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(v) => match units::duration(v) {
            Ok(d) if d.is_zero() => {
                p.push(key, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                p.push(key, e);
                default
            }
        },
    }
}

fn size(p: &mut Problems, key: &str, v: &Option<Scalar>, default: u64) -> u64 {
    match v {
        None => default,
        Some(v) => units::size(v).unwrap_or_else(|e| {
            p.push(key, e);
            default
        }),
    }
}

fn addr(p: &mut Problems, key: &str, v: &Option<String>, default: &str) -> SocketAddr {
    let s = v.as_deref().unwrap_or(default);
    s.parse().unwrap_or_else(|_| {
        p.push(key, format!("invalid socket address \"{s}\": expected IP:PORT such as 0.0.0.0:8443 or [::]:8443"));
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

fn count(p: &mut Problems, key: &str, v: Option<i64>, default: u64, min: u64, max: u64) -> u64 {
    match v {
        None => default,
        Some(n) if n >= min as i64 && (n as u64) <= max => n as u64,
        Some(n) => {
            p.push(key, format!("{n} is out of range ({min}..={max})"));
            default
        }
    }
}

fn file(p: &mut Problems, key: &str, base: Option<&Path>, v: &str) -> PathBuf {
    let path = super::resolve_relative(base, v);
    if let Err(e) = std::fs::metadata(&path) {
        p.push(key, format!("cannot read {}: {}", path.display(), super::io_reason(&e)));
    }
    path
}

/// `[[tls.certificates]]`: every pair loads, every name is valid and
/// listed once.
fn sni_certs(p: &mut Problems, raw: &[super::raw::RawTlsCert], base: Option<&Path>) -> Vec<super::SniCert> {
    let mut out: Vec<super::SniCert> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let key = |k: &str| format!("tls.certificates[{i}].{k}");
        let (Some(c), Some(k)) = (&e.cert, &e.key) else {
            p.push(key(if e.cert.is_none() { "cert" } else { "key" }), "missing: each entry needs cert and key");
            continue;
        };
        let (c, k) = (file(p, &key("cert"), base, c), file(p, &key("key"), base, k));
        let loaded = if c.exists() && k.exists() {
            match crate::listener::certs::load_pair(&c, &k) {
                Ok(ck) => Some(ck),
                Err(err) => {
                    p.push(key("cert"), err.to_string());
                    None
                }
            }
        } else {
            None
        };
        let names: Vec<String> = match &e.hosts {
            Some(h) => h.clone(),
            None => loaded.as_ref().map(crate::listener::certs::dns_names).unwrap_or_default(),
        };
        let mut hosts = Vec::new();
        for (j, h) in names.iter().enumerate() {
            match HostRule::parse(h) {
                Ok(r) => {
                    if out.iter().flat_map(|o| o.hosts.iter()).chain(hosts.iter()).any(|x| *x == r) {
                        p.push(key(&format!("hosts[{j}]")), format!("\"{h}\" is listed by another certificate too"));
                    }
                    hosts.push(r);
                }
                Err(m) => p.push(key(&format!("hosts[{j}]")), m),
            }
        }
        if hosts.is_empty() && (e.hosts.is_some() || loaded.is_some()) {
            p.push(key("hosts"), "no host name: list hosts, or use a certificate with DNS names");
        }
        out.push(super::SniCert { hosts, cert: c, key: k });
    }
    out
}

/// Turns a raw config into a typed one; problems go to `p`. Returns `None`
/// only when a value needed to build the rest is unusable.
pub(crate) fn validate(raw: RawConfig, source: String, path: Option<PathBuf>, p: &mut Problems) -> Option<Config> {
    let base = path.as_deref();

    let listen = Listen {
        https: addr(p, "listen.https", &raw.listen.https, "127.0.0.1:8443"),
        http_redirect: raw
            .listen
            .http_redirect
            .as_ref()
            .map(|_| addr(p, "listen.http_redirect", &raw.listen.http_redirect, "")),
        admin: addr(p, "listen.admin", &raw.listen.admin, "127.0.0.1:9901"),
    };
    let same = |a: SocketAddr, b: Option<SocketAddr>| b.is_some_and(|b| a == b && a.port() != 0);
    if same(listen.admin, Some(listen.https))
        || same(listen.admin, listen.http_redirect)
        || same(listen.https, listen.http_redirect)
    {
        p.push("listen", "https, http_redirect and admin must be different addresses");
    }

    let cert = match (&raw.tls.cert, &raw.tls.key) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let c = file(p, "tls.cert", base, c);
            let k = file(p, "tls.key", base, k);
            if c.exists() && k.exists() {
                if let Err(e) = crate::listener::certs::load_pair(&c, &k) {
                    p.push("tls.cert", e.to_string());
                }
            }
            Some((c, k))
        }
        (Some(_), None) => {
            p.push("tls.key", "missing: tls.cert is set, so tls.key must be too");
            None
        }
        (None, Some(_)) => {
            p.push("tls.cert", "missing: tls.key is set, so tls.cert must be too");
            None
        }
    };
    let min_version = match raw.tls.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(v) => {
            p.push("tls.min_version", format!("\"{v}\" is not supported: use \"1.2\" or \"1.3\""));
            TlsVersion::V1_2
        }
    };
    let client_ca = raw.tls.client_ca.as_deref().map(|c| {
        let path = file(p, "tls.client_ca", base, c);
        if path.exists() {
            if let Err(e) = crate::listener::certs::load_roots(&path) {
                p.push("tls.client_ca", e.to_string());
            }
        }
        path
    });
    let certificates = sni_certs(p, &raw.tls.certificates, base);
    if !certificates.is_empty() && cert.is_none() {
        p.push(
            "tls.certificates",
            "needs tls.cert and tls.key: the default certificate is served to names no entry lists",
        );
    }
    let tls = Tls {
        cert,
        min_version,
        client_ca,
        handshake_timeout: dur(p, "tls.handshake_timeout", &raw.tls.handshake_timeout, Duration::from_secs(10)),
        certificates,
    };

    let upstream = Arc::new(upstream_section(p, "upstream", "default", &raw.upstream, base, false));
    let mut upstreams = BTreeMap::new();
    for (name, ru) in &raw.upstreams {
        let key = format!("upstreams.{name}");
        if name == "default" {
            p.push(key, "\"default\" is the [upstream] section: give this upstream another name");
            continue;
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            p.push(key, "an upstream name is letters, digits, - and _ (it becomes a metric label)");
            continue;
        }
        upstreams.insert(name.clone(), Arc::new(upstream_section(p, &key, name, ru, base, true)));
    }

    let max_header_bytes = size(p, "limits.max_header_bytes", &raw.limits.max_header_bytes, 16 * 1024);
    if !(1024..=1 << 20).contains(&max_header_bytes) {
        p.push("limits.max_header_bytes", "must be between 1KiB and 1MiB");
    }
    let limits = Limits {
        max_connections: count(p, "limits.max_connections", raw.limits.max_connections, 10_000, 1, 1 << 24) as usize,
        header_read_timeout: dur(
            p,
            "limits.header_read_timeout",
            &raw.limits.header_read_timeout,
            Duration::from_secs(10),
        ),
        idle_timeout: dur(p, "limits.idle_timeout", &raw.limits.idle_timeout, Duration::from_secs(75)),
        max_header_bytes: max_header_bytes as usize,
        max_body: size(p, "limits.max_body", &raw.limits.max_body, 10 << 20),
        body_read_timeout: dur(p, "limits.body_read_timeout", &raw.limits.body_read_timeout, Duration::from_secs(60)),
        shutdown_grace: dur(p, "limits.shutdown_grace", &raw.limits.shutdown_grace, Duration::from_secs(30)),
        h2_max_concurrent_streams: count(
            p,
            "limits.h2_max_concurrent_streams",
            raw.limits.h2_max_concurrent_streams,
            128,
            1,
            10_000,
        ) as u32,
        max_in_flight: raw
            .limits
            .max_in_flight
            .map(|_| count(p, "limits.max_in_flight", raw.limits.max_in_flight, 1, 1, 1 << 24) as usize),
        send_timeout: dur(p, "limits.send_timeout", &raw.limits.send_timeout, Duration::from_secs(60)),
        body_timeout: dur(p, "limits.body_timeout", &raw.limits.body_timeout, Duration::from_secs(600)),
    };

    let client_ip = super::ClientIpConfig {
        trusted_proxies: nets(p, "client_ip.trusted_proxies", &raw.client_ip.trusted_proxies),
        rules: IpRules {
            allow: nets(p, "client_ip.allow", &raw.client_ip.allow),
            deny: nets(p, "client_ip.deny", &raw.client_ip.deny),
        },
    };

    let rl_defaults = RateLimitConfig::default();
    let backend = match raw.rate_limit.backend.as_deref() {
        None | Some("memory") => Backend::Memory,
        Some("redis") => Backend::Redis,
        Some(b) => {
            p.push("rate_limit.backend", format!("\"{b}\": use \"memory\" or \"redis\""));
            Backend::Memory
        }
    };
    let redis_url = raw.rate_limit.redis_url.clone();
    if let Some(u) = &redis_url {
        match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {}
            Ok(parsed) => p.push("rate_limit.redis_url", format!("scheme \"{}\" is not a redis URL", parsed.scheme())),
            Err(e) => p.push("rate_limit.redis_url", e.to_string()),
        }
    } else if backend == Backend::Redis {
        p.push("rate_limit.redis_url", "missing: backend = \"redis\" needs redis_url (or redis_url_file)");
    }
    let rate_limit = RateLimitConfig {
        backend,
        redis_url,
        redis_timeout: dur(p, "rate_limit.redis_timeout", &raw.rate_limit.redis_timeout, rl_defaults.redis_timeout),
        on_backend_error: match raw.rate_limit.on_backend_error.as_deref() {
            None | Some("allow") => OnBackendError::Allow,
            Some("deny") => OnBackendError::Deny,
            Some(v) => {
                p.push("rate_limit.on_backend_error", format!("\"{v}\": use \"allow\" or \"deny\""));
                OnBackendError::Allow
            }
        },
        ipv6_prefix: count(p, "rate_limit.ipv6_prefix", raw.rate_limit.ipv6_prefix, 64, 1, 128) as u8,
        max_keys: count(p, "rate_limit.max_keys", raw.rate_limit.max_keys, 100_000, 16, 10_000_000) as usize,
        default: match &raw.rate_limit.default {
            None => rl_defaults.default,
            Some(r) => rule_or_off(p, "rate_limit.default", r),
        },
    };

    let security_headers = sec_headers(p, "security_headers", &raw.security_headers, &SecurityHeaders::default());

    let default_route = Arc::new(Route {
        name: "unmatched".into(),
        label: Arc::from("unmatched"),
        path: None,
        methods: None,
        max_body: limits.max_body,
        response_timeout: upstream.response_timeout,
        strip_prefix: false,
        content_types: None,
        security_headers: None,
        upload: None,
        cors: None,
        auth: None,
        roles: None,
        forward_credentials: false,
        rate_limit: None,
        max_in_flight: None,
        ip_rules: None,
        send_timeout: limits.send_timeout,
        body_timeout: limits.body_timeout,
        websocket: false,
        redact_success: false,
        upstream: None,
        hosts: None,
    });

    let cors_policy = cors(p, "cors", &raw.cors, &CorsPolicy::default());
    let auth_config = auth(p, &raw.auth, base);

    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut names = std::collections::HashSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some(route) = route(p, i, r, &default_route, &security_headers, &cors_policy, &upstreams) {
            if !names.insert(route.name.clone()) {
                p.push(format!("routes[{i}].name"), format!("duplicate route name \"{}\"", route.name));
            }
            routes.push(Arc::new(route));
        }
    }
    unsafe_routes(p, &raw.routes, &routes, &auth_config);
    let scan = raw.scan.as_ref().and_then(|s| scan(p, s)).map(Arc::new);
    if raw.scan.is_none() {
        for (i, r) in raw.routes.iter().enumerate() {
            if r.upload.as_ref().and_then(|u| u.scan) == Some(true) {
                p.push(
                    format!("routes[{i}].upload.scan"),
                    "scan = true needs a [scan] section naming clamd (e.g. clamd = \"tcp://127.0.0.1:3310\")",
                );
            }
        }
    }

    Some(Config {
        source,
        path,
        includes: Vec::new(),
        deny_unmatched: raw.deny_unmatched.unwrap_or(false),
        allow_path_params: raw.allow_path_params.unwrap_or(false),
        listen,
        tls,
        upstream,
        upstreams,
        limits,
        cors: cors_policy.clone(),
        auth: auth_config,
        client_ip,
        rate_limit,
        errors: crate::policy::sanitize::ErrorPolicy {
            replace_upstream_5xx: raw.errors.replace_upstream_5xx.unwrap_or(true),
            redact_upstream_4xx: raw.errors.redact_upstream_4xx.unwrap_or(true),
            error_field: raw.errors.error_field.unwrap_or(false),
            html: raw.errors.html.unwrap_or(true),
        },
        security_headers,
        routes,
        default_route,
        scan,
    })
}

fn scan(p: &mut Problems, raw: &RawScan) -> Option<crate::scan::ScanConfig> {
    use crate::scan::{Endpoint, Fallback, ScanConfig};
    let endpoint = match raw.clamd.as_deref() {
        None => {
            p.push("scan.clamd", "missing: tcp://HOST:PORT or unix:/path/to/clamd.ctl");
            None
        }
        Some(c) => Endpoint::parse(c).map_err(|e| p.push("scan.clamd", e)).ok(),
    };
    let fallback = |p: &mut Problems, key: &str, v: &Option<String>| match v.as_deref() {
        None => Fallback::Deny,
        Some(s) => Fallback::parse(s).unwrap_or_else(|| {
            p.push(key, format!("\"{s}\": use \"deny\" or \"allow\""));
            Fallback::Deny
        }),
    };
    let on_too_large = fallback(p, "scan.on_too_large", &raw.on_too_large);
    let on_error = fallback(p, "scan.on_error", &raw.on_error);
    let timeout = dur(p, "scan.timeout", &raw.timeout, ScanConfig::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        p.push("scan.timeout", "must be more than 0s");
    }
    let max_file_size = size(p, "scan.max_file_size", &raw.max_file_size, ScanConfig::DEFAULT_MAX_FILE_SIZE);
    if max_file_size == 0 {
        p.push("scan.max_file_size", "must be more than 0");
    }
    let pool_size = count(p, "scan.pool_size", raw.pool_size, ScanConfig::DEFAULT_POOL_SIZE as u64, 1, 4096) as usize;
    let mut cfg = ScanConfig::new(endpoint?).with_pool_size(pool_size);
    cfg.timeout = timeout;
    cfg.max_file_size = max_file_size;
    cfg.on_too_large = on_too_large;
    cfg.on_error = on_error;
    cfg.required_for_ready = raw.required_for_ready.unwrap_or(false);
    Some(cfg)
}

/// `[upstream]` (`named = false`) or `[upstreams.NAME]`, under `key`.
fn upstream_section(
    p: &mut Problems,
    key: &str,
    name: &str,
    raw: &RawUpstream,
    base: Option<&Path>,
    named: bool,
) -> Upstream {
    let k = |s: &str| format!("{key}.{s}");
    let urls: Vec<(String, &str)> = match (&raw.url, &raw.urls) {
        (Some(_), Some(_)) => {
            p.push(k("urls"), "set url or urls, not both");
            Vec::new()
        }
        (Some(u), None) => vec![(k("url"), u.as_str())],
        (None, Some(us)) if us.is_empty() => {
            p.push(k("urls"), "must list at least one URL");
            Vec::new()
        }
        (None, Some(us)) => us.iter().enumerate().map(|(i, u)| (format!("{key}.urls[{i}]"), u.as_str())).collect(),
        (None, None) if !named => vec![(k("url"), "http://127.0.0.1:8000")],
        (None, None) => {
            p.push(k("url"), "missing: http://HOST:PORT, https://HOST:PORT or unix:/path/to.sock");
            Vec::new()
        }
    };
    let mut unix = None;
    let mut https_host = None;
    let mut addrs = Vec::new();
    let mut scheme_and_path: Option<(bool, String)> = None;
    for (ukey, url) in &urls {
        if let Some(rest) = url.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') {
                p.push(ukey, format!("\"{url}\": use unix:/absolute/path/to.sock"));
            }
            if urls.len() > 1 {
                p.push(ukey, "a unix socket is one address: use url, not urls");
            }
            unix = Some(PathBuf::from(path));
            addrs.push(http::uri::Authority::from_static("localhost"));
            scheme_and_path = Some((false, String::new()));
            continue;
        }
        let Some((https, authority, host, path)) = parse_upstream_url(p, ukey, url) else { continue };
        match &scheme_and_path {
            Some((s, bp)) if (*s, bp.as_str()) != (https, path.as_str()) => {
                p.push(ukey, "every address of one upstream needs the same scheme and path");
            }
            _ => scheme_and_path = Some((https, path)),
        }
        if https {
            match &https_host {
                None => https_host = Some(Some(host)),
                Some(Some(h)) if *h != host => https_host = Some(None),
                _ => {}
            }
        }
        addrs.push(authority);
    }
    if addrs.is_empty() {
        addrs.push(http::uri::Authority::from_static("127.0.0.1:8000"));
    }
    let base_path = scheme_and_path.map(|(_, bp)| bp).unwrap_or_default();
    let origin = addrs[0].clone();
    let balance = match raw.balance.as_deref() {
        None | Some("round_robin") => crate::proxy::balance::Balance::RoundRobin,
        Some("least_in_flight") => crate::proxy::balance::Balance::LeastInFlight,
        Some(b) => {
            p.push(k("balance"), format!("\"{b}\": use \"round_robin\" or \"least_in_flight\""));
            crate::proxy::balance::Balance::RoundRobin
        }
    };
    let fail_timeout = dur(p, &k("fail_timeout"), &raw.fail_timeout, Duration::from_secs(10));
    let pool = crate::proxy::balance::Pool::new(addrs, balance, fail_timeout);
    let tls = match &https_host {
        None => {
            for (set, what) in [
                (raw.ca.is_some(), "ca"),
                (raw.server_name.is_some(), "server_name"),
                (raw.client_cert.is_some(), "client_cert"),
                (raw.client_key.is_some(), "client_key"),
                (raw.min_version.is_some(), "min_version"),
            ] {
                if set {
                    p.push(k(what), "only for an https:// url");
                }
            }
            None
        }
        Some(host) => upstream_tls(p, key, raw, base, host.as_deref()),
    };
    let tls_files: Vec<PathBuf> = if https_host.is_some() {
        [&raw.ca, &raw.client_cert, &raw.client_key]
            .into_iter()
            .flatten()
            .map(|f| super::resolve_relative(base, f))
            .collect()
    } else {
        Vec::new()
    };
    let connect_timeout = dur(p, &k("connect_timeout"), &raw.connect_timeout, Duration::from_secs(5));
    let pool_idle_timeout = dur(p, &k("pool_idle_timeout"), &raw.pool_idle_timeout, Duration::from_secs(90));
    let pool_max_idle = count(p, &k("pool_max_idle"), raw.pool_max_idle, 256, 0, 1 << 20) as usize;
    let client =
        crate::proxy::client::build(tls.as_ref(), unix.as_deref(), connect_timeout, pool_idle_timeout, pool_max_idle);
    let up = Upstream {
        name: Arc::from(name),
        origin,
        pool,
        tls,
        unix,
        tls_files,
        client,
        base_path,
        connect_timeout,
        response_timeout: dur(p, &k("response_timeout"), &raw.response_timeout, Duration::from_secs(300)),
        pool_idle_timeout,
        pool_max_idle,
        health_path: match raw.health_path.as_deref() {
            None => None,
            Some(h) if h.starts_with('/') && h.parse::<http::uri::PathAndQuery>().is_ok() => Some(h.to_string()),
            Some(h) => {
                p.push(k("health_path"), format!("\"{h}\" must be a path starting with /"));
                None
            }
        },
        health_interval: raw.health_interval.as_ref().map(|_| {
            dur(p, &k("health_interval"), &raw.health_interval, Duration::from_secs(10)).max(Duration::from_secs(1))
        }),
        health_status: count(p, &k("health_status"), raw.health_status, 200, 100, 599) as u16,
        health_json: raw.health_json.as_ref().and_then(|t| match serde_json::to_value(t) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => {
                p.push(k("health_json"), "must be a table of JSON values");
                None
            }
        }),
    };
    if up.health_json.is_some() && up.health_path.is_none() {
        p.push(k("health_json"), format!("needs {key}.health_path"));
    }
    up
}

/// One `http://` or `https://` upstream URL: (https, authority, host, base path).
fn parse_upstream_url(p: &mut Problems, key: &str, url: &str) -> Option<(bool, http::uri::Authority, String, String)> {
    let u = match url::Url::parse(url) {
        Err(e) => {
            p.push(key, e.to_string());
            return None;
        }
        Ok(u) => u,
    };
    if u.scheme() != "http" && u.scheme() != "https" {
        p.push(key, format!("scheme \"{}\" is not supported: use http://, https:// or unix:/path.sock", u.scheme()));
        return None;
    }
    if !u.username().is_empty() || u.password().is_some() {
        p.push(key, "must not carry credentials");
        return None;
    }
    if u.query().is_some() || u.fragment().is_some() {
        p.push(key, "must not have a query or fragment");
        return None;
    }
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    let auth = format!("{host}:{}", u.port_or_known_default().unwrap_or(80));
    match auth.parse::<http::uri::Authority>() {
        Ok(a) => Some((u.scheme() == "https", a, host, u.path().trim_end_matches('/').to_string())),
        Err(_) => {
            p.push(key, "invalid host");
            None
        }
    }
}

/// The TLS settings of an `https://` upstream whose URLs name `host` (`None`: several hosts).
fn upstream_tls(
    p: &mut Problems,
    key: &str,
    raw: &RawUpstream,
    base: Option<&Path>,
    host: Option<&str>,
) -> Option<super::UpstreamTls> {
    let k = |s: &str| format!("{key}.{s}");
    let ca = raw.ca.as_deref().map(|c| file(p, &k("ca"), base, c));
    let client = match (&raw.client_cert, &raw.client_key) {
        (None, None) => None,
        (Some(c), Some(kf)) => Some((file(p, &k("client_cert"), base, c), file(p, &k("client_key"), base, kf))),
        (Some(_), None) => {
            p.push(k("client_key"), "missing: client_cert needs client_key");
            None
        }
        (None, Some(_)) => {
            p.push(k("client_cert"), "missing: client_key needs client_cert");
            None
        }
    };
    let tls13_only = match raw.min_version.as_deref() {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(v) => {
            p.push(k("min_version"), format!("\"{v}\" is not supported: use \"1.2\" or \"1.3\""));
            false
        }
    };
    // Several hosts without server_name: each address is verified for its own host.
    let name = match raw.server_name.as_deref().or(host) {
        None => None,
        Some(n) => match crate::proxy::client::server_name(n) {
            Ok(n) => Some(n),
            Err(e) => {
                p.push(k("server_name"), e);
                return None;
            }
        },
    };
    let readable =
        ca.as_ref().is_none_or(|c| c.exists()) && client.as_ref().is_none_or(|(c, kf)| c.exists() && kf.exists());
    if !readable {
        return None;
    }
    let client_paths = client.as_ref().map(|(c, kf)| (c.as_path(), kf.as_path()));
    match crate::proxy::client::tls_config(ca.as_deref(), client_paths, tls13_only) {
        Ok(cfg) => Some(super::UpstreamTls::new(cfg, name)),
        Err(e) => {
            let at = if client.is_some() && !ca.as_ref().is_some_and(|c| e.contains(&c.display().to_string())) {
                "client_cert"
            } else {
                "ca"
            };
            p.push(k(at), e);
            None
        }
    }
}

fn sec_headers(p: &mut Problems, key: &str, raw: &RawSecurityHeaders, base: &SecurityHeaders) -> SecurityHeaders {
    let mut one = |name: &str, v: &Option<String>, dflt: &Option<http::HeaderValue>| match v.as_deref() {
        None => dflt.clone(),
        Some("") => None,
        Some(s) => match http::HeaderValue::from_str(s) {
            Ok(h) => Some(h),
            Err(_) => {
                p.push(format!("{key}.{name}"), "not a valid header value");
                dflt.clone()
            }
        },
    };
    SecurityHeaders {
        hsts: one("hsts", &raw.hsts, &base.hsts),
        csp: one("content_security_policy", &raw.content_security_policy, &base.csp),
        frame_options: one("frame_options", &raw.frame_options, &base.frame_options),
        referrer_policy: one("referrer_policy", &raw.referrer_policy, &base.referrer_policy),
    }
}

fn route(
    p: &mut Problems,
    i: usize,
    r: &RawRoute,
    defaults: &Route,
    sh: &SecurityHeaders,
    global_cors: &CorsPolicy,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
) -> Option<Route> {
    let k = |f: &str| format!("routes[{i}].{f}");
    let upstream = match r.upstream.as_deref() {
        None | Some("default") => None,
        Some(n) => match upstreams.get(n) {
            Some(u) => Some(u.clone()),
            None => {
                let known: Vec<&str> = std::iter::once("default").chain(upstreams.keys().map(String::as_str)).collect();
                p.push(k("upstream"), format!("unknown upstream \"{n}\" (known: {})", known.join(", ")));
                None
            }
        },
    };
    let response_timeout_default = upstream.as_ref().map_or(defaults.response_timeout, |u| u.response_timeout);
    let name = match r.name.as_deref() {
        Some(n)
            if !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) =>
        {
            n.to_string()
        }
        Some(n) => {
            p.push(k("name"), format!("\"{n}\": use 1-64 characters of A-Z a-z 0-9 _ - ."));
            return None;
        }
        None => {
            p.push(k("name"), "missing: every route needs a name (used in logs and metrics)");
            return None;
        }
    };
    let path = match r.path.as_deref().map(|s| PathPattern::parse(s, r.exact.unwrap_or(false))) {
        Some(Ok(pp)) => pp.case_insensitive(r.case_insensitive.unwrap_or(false)),
        Some(Err(e)) => {
            p.push(k("path"), e);
            return None;
        }
        None => {
            p.push(k("path"), "missing");
            return None;
        }
    };
    let methods = r.methods.as_ref().map(|ms| {
        ms.iter()
            .filter_map(|m| match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => Some(m),
                Err(_) => {
                    p.push(k("methods"), format!("\"{m}\" is not an HTTP method"));
                    None
                }
            })
            .collect()
    });
    let content_types = r.content_types.as_ref().map(|cts| {
        cts.iter()
            .map(|c| {
                let c = c.trim().to_ascii_lowercase();
                if c.parse::<mime_like::Essence>().is_err() {
                    p.push(k("content_types"), format!("\"{c}\" is not a media type like application/json"));
                }
                c
            })
            .collect()
    });
    Some(Route {
        max_body: size(p, &k("max_body"), &r.max_body, defaults.max_body),
        response_timeout: dur(p, &k("response_timeout"), &r.response_timeout, response_timeout_default),
        strip_prefix: r.strip_prefix.unwrap_or(false),
        security_headers: r.security_headers.as_ref().map(|raw| sec_headers(p, &k("security_headers"), raw, sh)),
        cors: r.cors.as_ref().map(|c| cors(p, &k("cors"), c, global_cors)),
        auth: r.auth.as_deref().and_then(|m| auth_mode(p, &k("auth"), m)),
        roles: r.roles.clone(),
        forward_credentials: r.forward_credentials.unwrap_or(false),
        upload: r.upload.as_ref().and_then(|u| {
            let max_body = size(p, &k("max_body"), &r.max_body, defaults.max_body);
            upload(p, &k("upload"), u, max_body).map(Arc::new)
        }),
        rate_limit: r.rate_limit.as_ref().map(|rl| rule_or_off(p, &k("rate_limit"), rl)),
        max_in_flight: r.max_in_flight.map(|_| count(p, &k("max_in_flight"), r.max_in_flight, 1, 1, 1 << 24) as usize),
        ip_rules: if r.allow.is_some() || r.deny.is_some() {
            Some(IpRules { allow: nets(p, &k("allow"), &r.allow), deny: nets(p, &k("deny"), &r.deny) })
        } else {
            None
        },
        send_timeout: dur(p, &k("send_timeout"), &r.send_timeout, defaults.send_timeout),
        body_timeout: dur(p, &k("body_timeout"), &r.body_timeout, defaults.body_timeout),
        websocket: r.websocket.unwrap_or(false),
        redact_success: r.redact_success.unwrap_or(false),
        upstream,
        hosts: r.hosts.as_ref().map(|hs| {
            if hs.is_empty() {
                p.push(k("hosts"), "must list at least one host name (or leave hosts out for any host)");
            }
            hs.iter().filter_map(|h| super::HostRule::parse(h).map_err(|e| p.push(k("hosts"), e)).ok()).collect()
        }),
        label: Arc::from(name.as_str()),
        name,
        path: Some(path),
        methods,
        content_types,
    })
}

/// Route settings that are valid one by one but unsafe together: roles on a
/// route nobody authenticates on (the route is open while `moat check` shows
/// roles), and a route an earlier one shadows (its policy never applies).
fn unsafe_routes(p: &mut Problems, raw: &[RawRoute], routes: &[Arc<Route>], auth: &AuthConfig) {
    let index = |name: &str| raw.iter().position(|r| r.name.as_deref() == Some(name)).unwrap_or(0);
    for (n, r) in routes.iter().enumerate() {
        let i = index(&r.name);
        if r.auth == Some(AuthMode::Forward) && auth.forward.is_none() {
            p.push(
                format!("routes[{i}].auth"),
                format!("route \"{}\" uses forward auth but [auth.forward] has no url", r.name),
            );
        }
        if r.auth == Some(AuthMode::Session) && auth.session.is_none() {
            p.push(
                format!("routes[{i}].auth"),
                format!("route \"{}\" uses sign-in sessions but there is no [auth.session]", r.name),
            );
        }
        if r.roles.is_some() && r.auth.unwrap_or(auth.default) == AuthMode::None {
            p.push(
                format!("routes[{i}].roles"),
                format!(
                    "route \"{}\" requires roles but its auth is \"none\", so nobody is authenticated and the route is open: set auth = \"api_key\", \"basic\" or \"any\" (or auth.default), or remove roles",
                    r.name
                ),
            );
        }
        let Some(path) = &r.path else { continue };
        let shadow = routes[..n].iter().find(|earlier| {
            earlier.path.as_ref().is_some_and(|ep| ep.covers(path))
                && match (&earlier.hosts, &r.hosts) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(eh), Some(hs)) => hs.iter().all(|h| eh.contains(h)),
                }
                && match (&earlier.methods, &r.methods) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(em), Some(ms)) => {
                        ms.iter().all(|m| em.contains(m) || (*m == Method::HEAD && em.contains(&Method::GET)))
                    }
                }
        });
        if let Some(earlier) = shadow {
            p.push(
                format!("routes[{i}].path"),
                format!(
                    "route \"{}\" can never match: the earlier route \"{}\" ({}) already covers its paths and methods (first match wins; move the more specific route first)",
                    r.name,
                    earlier.name,
                    earlier.path.as_ref().map(|p| p.raw.as_str()).unwrap_or("")
                ),
            );
        }
    }
}

/// Minimal media-type syntax check (`type/subtype`, token characters).
mod mime_like {
    pub struct Essence;
    impl std::str::FromStr for Essence {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let tok =
                |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
            match s.split_once('/') {
                Some((a, b)) if tok(a) && tok(b) => Ok(Essence),
                _ => Err(()),
            }
        }
    }
}

fn nets(p: &mut Problems, key: &str, v: &Option<Vec<String>>) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for (i, s) in v.iter().flatten().enumerate() {
        let s = s.trim();
        let parsed = s.parse::<ipnet::IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => {
                // IPv4-mapped networks are matched as IPv4.
                let n = match n {
                    ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                        Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map(ipnet::IpNet::V4).unwrap_or(n),
                        None => n,
                    },
                    n => n,
                };
                out.push(n.trunc());
            }
            Err(_) => p.push(
                format!("{key}[{i}]"),
                format!("\"{s}\" is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)"),
            ),
        }
    }
    out
}

fn rule_or_off(p: &mut Problems, key: &str, r: &RawRuleOrOff) -> Option<Rule> {
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
        Some("api_key") => KeyKind::ApiKey,
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
    let rate = match super::units::rate(rate_s) {
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

fn upload(p: &mut Problems, key: &str, u: &RawUpload, max_body: u64) -> Option<crate::upload::UploadRules> {
    let mut types = Vec::new();
    match &u.types {
        None => p.push(format!("{key}.types"), "missing: list the accepted types, e.g. [\"pdf\", \"png\"]"),
        Some(ts) if ts.is_empty() => p.push(format!("{key}.types"), "must name at least one type"),
        Some(ts) => {
            for t in ts {
                match crate::upload::lookup(t) {
                    Some(ft) if !types.iter().any(|x: &&crate::upload::FileType| x.name == ft.name) => types.push(ft),
                    Some(_) => {}
                    None => {
                        let known: Vec<&str> = crate::upload::types::all().iter().map(|t| t.name).collect();
                        p.push(format!("{key}.types"), format!("unknown type \"{t}\" (known: {})", known.join(", ")));
                    }
                }
            }
        }
    }
    let mut fields = Vec::new();
    for (i, f) in u.fields.iter().flatten().enumerate() {
        let fk = format!("{key}.fields[{i}]");
        let Some(name) = f.name.clone() else {
            p.push(format!("{fk}.name"), "missing");
            continue;
        };
        let max_bytes = f.max_bytes.as_ref().map(|m| size(p, &format!("{fk}.max_bytes"), &Some(m.clone()), 0));
        match crate::upload::FieldRule::new(name, max_bytes, f.pattern.as_deref()) {
            Ok(rule) => fields.push(rule),
            Err(e) => p.push(format!("{fk}.pattern"), format!("invalid regular expression: {e}")),
        }
    }
    Some(crate::upload::UploadRules {
        types,
        max_files: count(p, &format!("{key}.max_files"), u.max_files, 10, 1, 10_000) as usize,
        max_file_size: size(p, &format!("{key}.max_file_size"), &u.max_file_size, max_body),
        max_field_bytes: size(p, &format!("{key}.max_field_bytes"), &u.max_field_bytes, 64 * 1024),
        fields,
        inspect_window: inspect_window(p, &format!("{key}.inspect_window"), &u.inspect_window),
        scan: u.scan.unwrap_or(false),
    })
}

fn inspect_window(p: &mut Problems, key: &str, raw: &Option<Scalar>) -> u64 {
    let w = size(p, key, raw, crate::upload::DEFAULT_INSPECT_WINDOW);
    if raw.is_some() && !(crate::upload::MIN_INSPECT_WINDOW..=(4 << 30)).contains(&w) {
        p.push(key, "must be between 8MiB and 4GiB");
    }
    w
}

fn cors(p: &mut Problems, key: &str, raw: &RawCors, base: &CorsPolicy) -> CorsPolicy {
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
    c.expose = header_list(p, "expose_headers", &raw.expose_headers, &c.expose);
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

fn auth_mode(p: &mut Problems, key: &str, m: &str) -> Option<AuthMode> {
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
    let path = super::resolve_relative(base, path);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            p.push(key, format!("cannot read {}: {}", path.display(), super::io_reason(&e)));
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

fn auth(p: &mut Problems, raw: &RawAuth, base: Option<&Path>) -> AuthConfig {
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

/// A service moat asks (the forward-auth service, paperless-ngx) as an
/// upstream section: its URL and the TLS keys it shares with `[upstream]`
/// (`ca`, `server_name`, `client_cert`, `client_key`, `min_version`).
fn service_section(url: String, tls: [&Option<String>; 5]) -> RawUpstream {
    let [ca, server_name, client_cert, client_key, min_version] = tls.map(Clone::clone);
    RawUpstream { url: Some(url), ca, server_name, client_cert, client_key, min_version, ..RawUpstream::default() }
}

/// `[auth.forward]`: the check URL becomes an upstream of its own (its
/// client, TLS settings and address), its path and query are kept aside.
fn forward_auth(
    p: &mut Problems,
    raw: &RawForwardAuth,
    base: Option<&Path>,
) -> Option<crate::policy::forward_auth::ForwardAuthConfig> {
    use crate::policy::forward_auth::{ForwardAuthConfig, DEFAULT_REQUEST_HEADERS, DEFAULT_RESPONSE_HEADERS};
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

/// `[auth.paperless]`: paperless-ngx as an upstream of its own.
fn paperless(
    p: &mut Problems,
    raw: &RawPaperless,
    base: Option<&Path>,
) -> Option<crate::policy::session::PaperlessConfig> {
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
    Some(crate::policy::session::PaperlessConfig { service, group, timeout })
}

/// `[auth.session]`: the keys are read now, so a missing or bad key file fails at start.
fn session(
    p: &mut Problems,
    raw: &super::raw::RawSession,
    base: Option<&Path>,
    paperless: Option<Arc<crate::policy::session::PaperlessConfig>>,
) -> Option<crate::policy::session::SessionConfig> {
    use crate::policy::session::{parse_keys, Backend, SessionConfig};
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
    let keys_file = super::resolve_relative(base, file);
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
