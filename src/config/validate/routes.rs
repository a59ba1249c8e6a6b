//! `[[routes]]`: each route's match and policy, the route unmatched
//! requests get, and the checks across routes (duplicate names, roles
//! without auth, shadowed routes).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;

use super::auth::auth_mode;
use super::cors::cors;
use super::rate_limit::rule_or_off;
use super::security_headers::sec_headers;
use super::upload::upload;
use super::{count, dur, nets, size};
use crate::config::raw::RawRoute;
use crate::config::{HostRule, Limits, PathPattern, Problems, Route, Upstream};
use crate::policy::auth::{AuthConfig, AuthMode};
use crate::policy::client_ip::IpRules;
use crate::policy::cors::CorsPolicy;
use crate::policy::security_headers::SecurityHeaders;

/// The route of requests no `[[routes]]` entry matches.
pub(super) fn default_route(limits: &Limits, upstream: &Upstream) -> Route {
    Route {
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
    }
}

/// Every `[[routes]]` entry, its settings defaulting to the unmatched
/// route's, the global security headers and CORS policy; then the checks
/// across them.
pub(super) fn routes(
    p: &mut Problems,
    raw: &[RawRoute],
    default_route: &Route,
    security_headers: &SecurityHeaders,
    cors_policy: &CorsPolicy,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
    auth: &AuthConfig,
) -> Vec<Arc<Route>> {
    let mut routes = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        if let Some(route) = route(p, i, r, default_route, security_headers, cors_policy, upstreams) {
            if !names.insert(route.name.clone()) {
                p.push(format!("routes[{i}].name"), format!("duplicate route name \"{}\"", route.name));
            }
            routes.push(Arc::new(route));
        }
    }
    unsafe_routes(p, raw, &routes, auth);
    routes
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
            hs.iter().filter_map(|h| HostRule::parse(h).map_err(|e| p.push(k("hosts"), e)).ok()).collect()
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
    pub(super) struct Essence;
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
