//! `[upstream]` and `[upstreams.NAME]`: addresses, balancing, TLS to the
//! upstream, pools and readiness checks. Also the upstream section of a
//! service moat itself asks (forward auth, paperless-ngx).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{count, dur, file};
use crate::config::raw::RawUpstream;
use crate::config::{resolve_relative, Problems, Upstream, UpstreamTls};

/// `[upstream]` (the upstream named `default`) and every `[upstreams.NAME]`.
pub(super) fn upstreams(
    p: &mut Problems,
    default: &RawUpstream,
    named: &BTreeMap<String, RawUpstream>,
    base: Option<&Path>,
) -> (Arc<Upstream>, BTreeMap<String, Arc<Upstream>>) {
    let upstream = Arc::new(upstream_section(p, "upstream", "default", default, base, false));
    let mut upstreams = BTreeMap::new();
    for (name, ru) in named {
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
    (upstream, upstreams)
}

/// `[upstream]` (`named = false`) or `[upstreams.NAME]`, under `key`.
pub(super) fn upstream_section(
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
        None | Some("round_robin") => crate::upstream::balance::Balance::RoundRobin,
        Some("least_in_flight") => crate::upstream::balance::Balance::LeastInFlight,
        Some(b) => {
            p.push(k("balance"), format!("\"{b}\": use \"round_robin\" or \"least_in_flight\""));
            crate::upstream::balance::Balance::RoundRobin
        }
    };
    let fail_timeout = dur(p, &k("fail_timeout"), &raw.fail_timeout, Duration::from_secs(10));
    let pool = crate::upstream::balance::Pool::new(addrs, balance, fail_timeout);
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
        [&raw.ca, &raw.client_cert, &raw.client_key].into_iter().flatten().map(|f| resolve_relative(base, f)).collect()
    } else {
        Vec::new()
    };
    let connect_timeout = dur(p, &k("connect_timeout"), &raw.connect_timeout, Duration::from_secs(5));
    let pool_idle_timeout = dur(p, &k("pool_idle_timeout"), &raw.pool_idle_timeout, Duration::from_secs(90));
    let pool_max_idle = count(p, &k("pool_max_idle"), raw.pool_max_idle, 512, 0, 1 << 20) as usize;
    // Zero is allowed here: it turns the purge off.
    let pool_purge_interval = match &raw.pool_purge_interval {
        None => Duration::from_secs(5),
        Some(v) => crate::config::units::duration(v).unwrap_or_else(|e| {
            p.push(k("pool_purge_interval"), e);
            Duration::from_secs(5)
        }),
    };
    let client = crate::upstream::client::build(
        tls.as_ref(),
        unix.as_deref(),
        connect_timeout,
        pool_idle_timeout,
        pool_max_idle,
        pool_purge_interval,
    );
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
        pool_purge_interval,
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
) -> Option<UpstreamTls> {
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
        Some(n) => match crate::upstream::client::server_name(n) {
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
    match crate::upstream::client::tls_config(ca.as_deref(), client_paths, tls13_only) {
        Ok(cfg) => Some(UpstreamTls::new(cfg, name)),
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

/// A service moat asks (the forward-auth service, paperless-ngx) as an
/// upstream section: its URL and the TLS keys it shares with `[upstream]`
/// (`ca`, `server_name`, `client_cert`, `client_key`, `min_version`).
pub(super) fn service_section(url: String, tls: [&Option<String>; 5]) -> RawUpstream {
    let [ca, server_name, client_cert, client_key, min_version] = tls.map(Clone::clone);
    RawUpstream { url: Some(url), ca, server_name, client_cert, client_key, min_version, ..RawUpstream::default() }
}
