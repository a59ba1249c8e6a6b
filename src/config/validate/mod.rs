//! Raw → typed. Each check pushes a problem with its key path and goes on, so
//! that every mistake in a file is reported at once. This module holds the
//! scalar checks every section uses (durations, sizes, addresses, counts,
//! files, IP networks) and [`validate`], which runs one section after
//! another; each section's checks live in the file named for it.

mod auth;
mod client_ip;
mod cors;
mod forward_auth;
mod limits;
mod listen_tls;
mod rate_limit;
mod routes;
mod scan;
mod security_headers;
mod session;
mod upload;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawErrors};
use super::units::{self, Scalar};
use super::{Config, Problems};
use crate::policy::cors::CorsPolicy;
use crate::policy::sanitize::ErrorPolicy;
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

/// Turns a raw config into a typed one; problems go to `p`. Returns `None`
/// only when a value needed to build the rest is unusable.
pub(crate) fn validate(raw: RawConfig, source: String, path: Option<PathBuf>, p: &mut Problems) -> Option<Config> {
    let base = path.as_deref();
    let listen = listen_tls::listen(p, &raw.listen);
    let tls = listen_tls::tls(p, &raw.tls, base);
    let (upstream, upstreams) = upstream::upstreams(p, &raw.upstream, &raw.upstreams, base);
    let limits = limits::limits(p, &raw.limits);
    let client_ip = client_ip::client_ip(p, &raw.client_ip);
    let rate_limit = rate_limit::rate_limit(p, &raw.rate_limit);
    let security_headers =
        security_headers::sec_headers(p, "security_headers", &raw.security_headers, &SecurityHeaders::default());
    let default_route = Arc::new(routes::default_route(&limits, &upstream));
    let cors_policy = cors::cors(p, "cors", &raw.cors, &CorsPolicy::default());
    let auth_config = auth::auth(p, &raw.auth, base);
    let routes =
        routes::routes(p, &raw.routes, &default_route, &security_headers, &cors_policy, &upstreams, &auth_config);
    let scan = scan::scan(p, raw.scan.as_ref(), &raw.routes);

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
        errors: errors(&raw.errors),
        security_headers,
        routes,
        default_route,
        scan,
    })
}

/// `[errors]`: nothing to check, only defaults to fill in.
fn errors(raw: &RawErrors) -> ErrorPolicy {
    ErrorPolicy {
        replace_upstream_5xx: raw.replace_upstream_5xx.unwrap_or(true),
        redact_upstream_4xx: raw.redact_upstream_4xx.unwrap_or(true),
        error_field: raw.error_field.unwrap_or(false),
        html: raw.html.unwrap_or(true),
    }
}
