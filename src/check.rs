//! `moat check`: the effective policy of every route, as a table.

use std::fmt::Write;

use crate::config::{Config, Route};

fn size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, m) in UNITS {
        if n >= m && n % m == 0 {
            return format!("{}{u}", n / m);
        }
    }
    format!("{n}B")
}

fn dur(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn rate(r: &Route, cfg: &Config) -> String {
    match r.rate_limit.unwrap_or(cfg.rate_limit.default) {
        None => "off".into(),
        Some(rule) => {
            let per = match rule.rate.per.as_secs() {
                1 => "s".to_string(),
                60 => "min".to_string(),
                3600 => "h".to_string(),
                86_400 => "d".to_string(),
                n => format!("{n}s"),
            };
            let key = match rule.key {
                crate::policy::rate_limit::KeyKind::Ip => "ip",
                crate::policy::rate_limit::KeyKind::Identity => "api_key",
                crate::policy::rate_limit::KeyKind::Route => "route",
            };
            format!("{}/{per} burst {} per {key}", rule.rate.count, rule.burst)
        }
    }
}

fn cors(r: &Route, cfg: &Config) -> String {
    let c = r.cors.as_ref().unwrap_or(&cfg.cors);
    if c.origins.is_empty() {
        return "same-origin".into();
    }
    c.origins
        .iter()
        .map(|o| match o {
            crate::policy::cors::OriginRule::Any => "*".to_string(),
            crate::policy::cors::OriginRule::Null => "null".to_string(),
            crate::policy::cors::OriginRule::Exact { scheme, host, port } => format!("{scheme}://{host}:{port}"),
            crate::policy::cors::OriginRule::Wildcard { scheme, suffix, port } => {
                format!("{scheme}://*.{suffix}:{port}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Settings that are valid but probably not what the operator wants.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut w = Vec::new();
    let mut all = cfg.routes.clone();
    if !cfg.deny_unmatched {
        all.push(cfg.default_route.clone());
    }
    let no_keys = cfg.auth.api_keys.is_empty();
    let no_users = cfg.auth.basic.is_empty();
    let starved: Vec<&str> = all
        .iter()
        .filter(|r| match r.auth.unwrap_or(cfg.auth.default) {
            crate::policy::auth::AuthMode::None => false,
            crate::policy::auth::AuthMode::ApiKey => no_keys,
            crate::policy::auth::AuthMode::Basic => no_users,
            crate::policy::auth::AuthMode::Any => no_keys && no_users,
            crate::policy::auth::AuthMode::Forward => false,
            crate::policy::auth::AuthMode::Session => {
                no_users && cfg.auth.session.as_ref().is_some_and(|s| s.backend_is_local())
            }
        })
        .map(|r| r.name.as_str())
        .collect();
    if !starved.is_empty() {
        w.push(format!(
            "no credentials are configured for routes that need them ({}): those requests will get 401 until you set auth.api_keys_file / auth.basic_file (e.g. MOAT_AUTH__API_KEYS_FILE)",
            starved.join(", ")
        ));
    }
    if cfg.tls.cert.is_none() {
        w.push("no tls.cert: a self-signed development certificate will be generated at start".into());
    }
    for net in cfg.client_ip.trusted_proxies.iter().filter(|n| n.prefix_len() == 0) {
        w.push(format!(
            "client_ip.trusted_proxies contains {net}: every peer is trusted, so any client can set X-Forwarded-For and pick its own address (defeating IP allow/deny lists, rate limits and login throttling): list only your proxies' addresses"
        ));
    }
    let mut cors_policies = vec![("cors".to_string(), &cfg.cors)];
    for r in &cfg.routes {
        if let Some(c) = &r.cors {
            cors_policies.push((format!("route \"{}\" cors", r.name), c));
        }
    }
    for (name, c) in cors_policies.into_iter().filter(|(_, c)| c.credentials) {
        for o in &c.origins {
            match o {
                crate::policy::cors::OriginRule::Null => w.push(format!(
                    "{name}: origin \"null\" with allow_credentials = true: sandboxed iframes, data: URLs and local files all send Origin: null, so any page can make credentialed requests"
                )),
                crate::policy::cors::OriginRule::Exact { scheme, host, .. } if scheme == "http" => w.push(format!(
                    "{name}: origin http://{host} with allow_credentials = true: a plain-http origin can be impersonated by anyone on the network path, who then makes credentialed requests: use https origins"
                )),
                crate::policy::cors::OriginRule::Wildcard { scheme, suffix, .. } if scheme == "http" => w.push(format!(
                    "{name}: origin http://*.{suffix} with allow_credentials = true: a plain-http origin can be impersonated by anyone on the network path, who then makes credentialed requests: use https origins"
                )),
                _ => {}
            }
        }
    }
    let scanned: Vec<&Route> =
        cfg.routes.iter().filter(|r| r.upload.as_ref().is_some_and(|u| u.scan)).map(|r| &**r).collect();
    if let Some(scan) = &cfg.scan {
        for r in &scanned {
            let Some(u) = &r.upload else { continue };
            if u.max_file_size > scan.max_file_size {
                w.push(format!(
                    "route \"{}\": upload.max_file_size ({} bytes) is larger than scan.max_file_size ({} bytes): files in between are {} (scan.on_too_large = \"{}\"); raise scan.max_file_size (and clamd's StreamMaxLength) or lower the route's max_file_size",
                    r.name,
                    u.max_file_size,
                    scan.max_file_size,
                    if scan.on_too_large == crate::scan::Fallback::Deny { "refused with 413" } else { "passed unscanned" },
                    scan.on_too_large.as_str()
                ));
            }
        }
        if scan.on_error == crate::scan::Fallback::Allow && !scanned.is_empty() {
            w.push("scan.on_error = \"allow\": while clamd is down or failing, uploads pass unscanned".into());
        }
        if scanned.is_empty() {
            w.push("[scan] is configured but no route has upload = { ..., scan = true }: nothing is scanned".into());
        }
    }
    if !cfg.listen.admin.ip().is_loopback() {
        w.push(format!(
            "listen.admin is {}, not a loopback address: the admin listener is plain HTTP without authentication (metrics reveal routes, traffic and errors): bind it to 127.0.0.1 or firewall it",
            cfg.listen.admin
        ));
    }
    w
}

fn row(r: &Route, cfg: &Config) -> Vec<String> {
    vec![
        r.name.clone(),
        r.path
            .as_ref()
            .map(|p| p.raw.clone() + if p.is_exact() { " (exact)" } else { "" })
            .unwrap_or_else(|| "*".into()),
        r.methods
            .as_ref()
            .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "any".into()),
        size(r.max_body),
        dur(r.response_timeout),
        r.content_types.as_ref().map(|c| c.join(",")).unwrap_or_else(|| "any".into()),
        r.auth.unwrap_or(cfg.auth.default).as_str().to_string()
            + &r.roles.as_ref().map(|rs| format!(" ({})", rs.join(","))).unwrap_or_default(),
        rate(r, cfg),
        cors(r, cfg),
        r.upload
            .as_ref()
            .map(|u| {
                format!(
                    "{} (max {} files{})",
                    u.types.iter().map(|t| t.name).collect::<Vec<_>>().join(","),
                    u.max_files,
                    if u.scan { ", scanned" } else { "" }
                )
            })
            .unwrap_or_else(|| "-".into()),
        other(r, cfg),
    ]
}

/// Per-route settings that differ from the defaults: send/body timeouts,
/// WebSocket, case-insensitive matching, forwarded credentials, 2xx
/// redaction, in-flight cap.
fn other(r: &Route, cfg: &Config) -> String {
    let mut o = Vec::new();
    if r.send_timeout != cfg.limits.send_timeout {
        o.push(format!("send {}", dur(r.send_timeout)));
    }
    if r.body_timeout != cfg.limits.body_timeout {
        o.push(format!("body {}", dur(r.body_timeout)));
    }
    if let Some(n) = r.max_in_flight {
        o.push(format!("in-flight {n}"));
    }
    if r.websocket {
        o.push("websocket".into());
    }
    if r.path.as_ref().is_some_and(|p| p.is_case_insensitive()) {
        o.push("case-insensitive".into());
    }
    if r.forward_credentials {
        o.push("forward-credentials".into());
    }
    if r.redact_success {
        o.push("redact-2xx".into());
    }
    if let Some(up) = &r.upstream {
        o.push(format!("upstream {}", up.name));
    }
    if let Some(hs) = &r.hosts {
        o.push(format!("hosts {}", hs.iter().map(|h| h.as_text()).collect::<Vec<_>>().join(" ")));
    }
    if o.is_empty() {
        "-".into()
    } else {
        o.join(",")
    }
}

/// Renders the route table.
pub fn table(cfg: &Config) -> String {
    let header: Vec<String> = [
        "ROUTE",
        "PATH",
        "METHODS",
        "MAX BODY",
        "TIMEOUT",
        "CONTENT TYPES",
        "AUTH (ROLES)",
        "RATE LIMIT",
        "CORS ORIGINS",
        "UPLOAD",
        "OTHER",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rows = vec![header];
    for r in &cfg.routes {
        rows.push(row(r, cfg));
    }
    let mut d = row(&cfg.default_route, cfg);
    if cfg.deny_unmatched {
        d[1] = "* (deny_unmatched: 404)".into();
    }
    rows.push(d);
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", cfg.source);
    let _ = writeln!(
        out,
        "listen https={} admin={}{}",
        cfg.listen.https,
        cfg.listen.admin,
        cfg.listen.http_redirect.map(|a| format!(" http_redirect={a}")).unwrap_or_default()
    );
    for e in &cfg.tls.certificates {
        let hosts: Vec<String> = e.hosts.iter().map(|h| h.as_text()).collect();
        let _ = writeln!(out, "certificate {} for {}", e.cert.display(), hosts.join(","));
    }
    let _ = writeln!(out, "upstream {}", cfg.upstream.display_url());
    for (name, up) in &cfg.upstreams {
        let _ = writeln!(out, "upstream {name} {}", up.display_url());
    }
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
