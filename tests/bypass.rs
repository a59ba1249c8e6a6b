//! Policy bypasses, one test per way a policy could give way: the path moat
//! matches is the path it forwards, credentials on open routes, failed-login
//! throttling, responses that leak in 2xx/3xx/4xx, and configs that are
//! unsafe. Each runs moat as a real process in front of a recording upstream
//! (or one that answers exactly the leaky response) and asserts what the
//! client and the upstream saw.

use crate::common;

use std::time::Duration;

use common::*;
use http::{Response, StatusCode};

fn key_sha(k: &str) -> String {
    sha256_hex(k.as_bytes())
}

/// One raw HTTP/1.1 request over TLS (the path exactly as written, which a
/// URL-parsing client would normalise); returns (status, whole response).
async fn raw_get(pki: &Pki, m: &Moat, method: &str, path: &str, extra: &str) -> (u16, String) {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    let text = raw_h1(pki, m, req.as_bytes(), Duration::from_secs(10)).await;
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Listen addresses, written out because top-level keys must come first.
const LISTEN: &str = "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n";

fn uris(up: &Upstream) -> Vec<String> {
    up.seen().into_iter().map(|s| s.uri).collect()
}

/// A config with a public `/items/{id}` route and a keyed route under it.
fn items_config(up: &Upstream, pki: &Pki, top: &str) -> String {
    format!(
        "deny_unmatched = true\n{top}{LISTEN}[upstream]\nurl = \"{}\"\n{}[rate_limit]\ndefault = \"off\"\n[auth]\ndefault = \"api_key\"\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"delete\"\npath = \"/items/{{id}}/delete\"\nexact = true\nmethods = [\"POST\"]\n\
         [[routes]]\nname = \"item\"\npath = \"/items/{{id}}\"\nexact = true\nmethods = [\"GET\"]\nauth = \"none\"\n\
         [[routes]]\nname = \"public\"\npath = \"/public\"\nmethods = [\"GET\"]\nauth = \"none\"\n\
         [[routes]]\nname = \"admin\"\npath = \"/api/admin\"\nmethods = [\"GET\"]\n",
        up.url(),
        pki.tls_toml(),
        key_sha("the-key")
    )
}

// ---------------------------------------------------------------- 1. paths

#[tokio::test]
async fn empty_segments_are_collapsed_in_the_forwarded_path() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&items_config(&up, &pki, ""));
    // `/items//delete` matches the public `/items/{id}` with id = "delete":
    // the upstream must receive that path, not `//` (a Gin `:id` matches an
    // empty segment and would serve `/items/:id/delete`).
    let (status, _) = raw_get(&pki, &m, "GET", "/items//delete", "").await;
    assert_eq!(status, 200);
    let (status, _) = raw_get(&pki, &m, "GET", "//items///7", "").await;
    assert_eq!(status, 200);
    assert_eq!(uris(&up), vec!["/items/delete".to_string(), "/items/7".to_string()]);
}

#[tokio::test]
async fn path_parameters_are_refused_unless_allowed() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&items_config(&up, &pki, ""));
    for path in ["/public/..;/api/admin", "/api/admin;x", "/public;jsessionid=1/x", "/items/7;/delete"] {
        let (status, text) = raw_get(&pki, &m, "GET", path, "").await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("application/problem+json"), "{path}: {text}");
    }
    assert!(uris(&up).is_empty(), "a path with parameters reached the upstream: {:?}", uris(&up));
    let id = {
        let (_, text) = raw_get(&pki, &m, "GET", "/api/admin;x", "").await;
        text.lines().find_map(|l| l.strip_prefix("x-request-id: ")).map(|s| s.trim().to_string()).unwrap_or_default()
    };
    assert_eq!(m.access_line(&id).await["reject_reason"], "path_rejected");
    drop(m);

    // Switched on: parameters are kept and the route policy still applies
    // to the path they are in.
    let m = Moat::start(&items_config(&up, &pki, "allow_path_params = true\n"));
    let (status, _) = raw_get(&pki, &m, "GET", "/public/doc;v=2", "").await;
    assert_eq!(status, 200);
    let (status, _) = raw_get(&pki, &m, "GET", "/api/admin;x", "").await;
    assert_eq!(status, 401, "a parameter must not move a request out of its route's policy");
    assert_eq!(uris(&up), vec!["/public/doc;v=2".to_string()]);
}

#[tokio::test]
async fn double_encoded_separators_and_dots_are_refused() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&items_config(&up, &pki, ""));
    for path in [
        "/public/%252e%252e/api/admin",
        "/public/%252e%252E/x",
        "/public/a%252fb",
        "/public/a%255cb",
        "/public/a%2500",
        "/public/%25252e",
    ] {
        let (status, text) = raw_get(&pki, &m, "GET", path, "").await;
        assert_eq!(status, 400, "{path}: {text}");
    }
    assert!(uris(&up).is_empty(), "{:?}", uris(&up));
    // A literal percent sign that is not double encoding still passes.
    let (status, _) = raw_get(&pki, &m, "GET", "/public/100%25", "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn method_override_headers_never_reach_the_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&items_config(&up, &pki, ""));
    let c = pki.client();
    let r = c
        .get(m.url("/items/7"))
        .header("x-http-method-override", "DELETE")
        .header("x-http-method", "DELETE")
        .header("x-method-override", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    for h in ["x-http-method-override", "x-http-method", "x-method-override"] {
        assert!(seen[0].headers.get(h).is_none(), "{h} reached the upstream");
    }
}

#[tokio::test]
async fn non_cors_options_on_a_route_without_options_is_405() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&items_config(&up, &pki, ""));
    let c = pki.client();
    // Announces GET (which the route allows) but sends no Origin: not a
    // preflight, so it is an OPTIONS request, which the route does not list.
    let r = c
        .request(http::Method::OPTIONS, m.url("/items/7"))
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = c.request(http::Method::OPTIONS, m.url("/items/7")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(up.seen().is_empty(), "an OPTIONS reached the upstream past a GET-only route");
}

#[tokio::test]
async fn case_insensitive_routes_match_any_case() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "deny_unmatched = true\n{LISTEN}[upstream]\nurl = \"{}\"\n{}[rate_limit]\ndefault = \"off\"\n[auth]\ndefault = \"api_key\"\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"admin\"\npath = \"/Admin\"\ncase_insensitive = true\n\
         [[routes]]\nname = \"strict\"\npath = \"/strict\"\nauth = \"none\"\n",
        up.url(),
        pki.tls_toml(),
        key_sha("the-key")
    ));
    let c = pki.client();
    // An Express-style upstream serves /ADMIN as /admin: the policy follows.
    for p in ["/admin", "/ADMIN", "/aDmIn/users"] {
        assert_eq!(c.get(m.url(p)).send().await.unwrap().status(), 401, "{p}");
    }
    let r = c.get(m.url("/ADMIN/users")).header("x-api-key", "the-key").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Forwarded as sent; other routes stay case-sensitive.
    assert_eq!(uris(&up), vec!["/ADMIN/users".to_string()]);
    assert_eq!(c.get(m.url("/STRICT")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(m.url("/strict")).send().await.unwrap().status(), 200);
}

// ---------------------------------------------------------------- 2. credentials

#[tokio::test]
async fn open_routes_strip_credentials_unless_forwarded() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[rate_limit]\ndefault = \"off\"\n[auth]\ndefault = \"api_key\"\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"open\"\npath = \"/open\"\nauth = \"none\"\n\
         [[routes]]\nname = \"passthrough\"\npath = \"/passthrough\"\nauth = \"none\"\nforward_credentials = true\n",
        up.url(),
        pki.tls_toml(),
        key_sha("the-key")
    ));
    let c = pki.client();
    for p in ["/open", "/passthrough"] {
        let r = c
            .get(m.url(p))
            .header("x-api-key", "the-key")
            .header("authorization", "Bearer upstream-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].headers.get("x-api-key").is_none() && seen[0].headers.get("authorization").is_none());
    assert_eq!(seen[1].headers["x-api-key"], "the-key");
    assert_eq!(seen[1].headers["authorization"], "Bearer upstream-token");
}

// ---------------------------------------------------------------- 3. login throttling

/// Basic auth behind a trusted proxy (127.0.0.1), so X-Forwarded-For picks
/// the client address; `count` failures per 60 s.
fn throttle_config(up: &Upstream, pki: &Pki, hash: &str, count: u32, tracked: u32) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\n{}[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[rate_limit]\ndefault = \"off\"\n\
         [auth]\ndefault = \"basic\"\nbasic = [{{ user = \"alice\", hash = \"{hash}\" }}]\n\
         max_failures = {{ count = {count}, per = \"60s\" }}\nmax_tracked_clients = {tracked}\n",
        up.url(),
        pki.tls_toml()
    )
}

#[tokio::test]
async fn rotating_ipv6_addresses_in_one_prefix_share_a_throttle() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&throttle_config(&up, &pki, &hash_password("right one"), 3, 1000));
    let c = pki.client();
    let mut statuses = Vec::new();
    for i in 1..=6 {
        let r = c
            .get(m.url("/"))
            .header("x-forwarded-for", format!("2001:db8:0:1::{i:x}"))
            .basic_auth("alice", Some("wrong"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429, 429], "addresses inside one /64 are one client");
    // Another /64 is another client.
    let r = c
        .get(m.url("/"))
        .header("x-forwarded-for", "2001:db8:0:2::1")
        .basic_auth("alice", Some("right one"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_concurrent_burst_of_wrong_passwords_verifies_at_most_the_limit() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&throttle_config(&up, &pki, &hash_password("right one"), 5, 1000));
    let c = pki.client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (c, url) = (c.clone(), m.url("/"));
        tasks.spawn(async move {
            c.get(url)
                .header("x-forwarded-for", "198.51.100.7")
                .basic_auth("alice", Some("wrong"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(s) = tasks.join_next().await {
        *counts.entry(s.unwrap()).or_insert(0) += 1;
    }
    let failed = counts.get(&401).copied().unwrap_or(0);
    let throttled = counts.get(&429).copied().unwrap_or(0);
    assert!((1..=5).contains(&failed), "{counts:?}: more wrong passwords were verified than the limit");
    assert_eq!(failed + throttled, 40, "{counts:?}");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn a_full_failure_table_never_refuses_valid_credentials() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&throttle_config(&up, &pki, &hash_password("right one"), 1, 16));
    let c = pki.client();
    // 40 attackers, each over the limit: far more than the table tracks.
    for i in 0..40 {
        let xff = format!("203.0.113.{i}");
        for _ in 0..2 {
            let r = c
                .get(m.url("/"))
                .header("x-forwarded-for", &xff)
                .header("authorization", "Basic YWxpY2U6d3Jvbmc=")
                .send()
                .await
                .unwrap();
            assert!(matches!(r.status().as_u16(), 401 | 429));
        }
    }
    // New clients with the right password still get in.
    for i in 0..5 {
        let r = c
            .get(m.url("/"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .basic_auth("alice", Some("right one"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a client with valid credentials was locked out by a full table");
    }
}

#[tokio::test]
async fn a_failed_user_name_is_logged_as_a_hash() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&throttle_config(&up, &pki, &hash_password("right one"), 5, 1000));
    let c = pki.client();
    // People type their password in the user field.
    let r = c.get(m.url("/")).basic_auth("MyS3cretPassw0rd", Some("x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let line = m.access_line(&id).await;
    assert_eq!(line["reject_reason"], "auth_failed");
    let logs = m.log_lines().join("\n");
    assert!(!logs.contains("MyS3cretPassw0rd"), "a failed user name reached the log");
    assert!(logs.contains("\"user_hash\":"), "{logs}");
}

// ---------------------------------------------------------------- 4. leaky responses

const LEAK_ADDR: &str = "10.0.3.7";

/// An upstream whose answer depends on the path.
async fn leaky_upstream() -> Upstream {
    Upstream::start(handler(|parts, _| async move {
        let json = |status: u16, body: &str| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(full(body.to_string()))
                .unwrap()
        };
        match parts.uri.path() {
            "/health" => json(
                200,
                "{\"success\":false,\"status\":\"unhealthy\",\"error\":\"Error 111 connecting to 127.0.0.1:6390. Connection refused.\"}",
            ),
            "/dup" => json(
                422,
                "{\"detail\":\"invalid\",\"detail\":\"dial tcp 10.0.3.7:8000: connect: connection refused\"}",
            ),
            "/status600" => Response::builder()
                .status(StatusCode::from_u16(600).unwrap())
                .body(full("odd status from 10.0.3.7"))
                .unwrap(),
            "/status999" => Response::builder()
                .status(StatusCode::from_u16(999).unwrap())
                .body(full("odd"))
                .unwrap(),
            "/redirect-internal" => Response::builder()
                .status(302)
                .header("location", "http://paperless-ngx.internal.svc.cluster.local:8000/login?next=/")
                .header("x-error-detail", "redirecting to 10.0.3.7")
                .header("x-debug-trace", "/srv/app/handlers.py:12")
                .header("content-type", "text/html")
                .body(full("<a href=\"http://10.0.3.7:8000/login\">moved</a> Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 4"))
                .unwrap(),
            "/redirect-own" => Response::builder()
                .status(301)
                .header("location", format!("http://{}/next/page?x=1", parts.headers["x-own-authority"].to_str().unwrap()))
                .body(full(""))
                .unwrap(),
            "/redirect-relative" => Response::builder().status(303).header("location", "/done").body(full("")).unwrap(),
            "/challenge" => Response::builder()
                .status(401)
                .header("www-authenticate", "Basic realm=\"docs at 10.0.3.7:8000\"")
                .header("content-type", "application/json")
                .body(full("{\"detail\":\"auth\"}"))
                .unwrap(),
            _ => json(200, "{\"ok\":true}"),
        }
    }))
    .await
}

fn leak_config(up: &Upstream, pki: &Pki, redact_success: bool) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\n{}[rate_limit]\ndefault = \"off\"\n[auth]\ndefault = \"none\"\n\
         [[routes]]\nname = \"health\"\npath = \"/health\"\nredact_success = {redact_success}\n",
        up.url(),
        pki.tls_toml()
    )
}

fn assert_no_internal(what: &str, text: &str) {
    for leak in [LEAK_ADDR, "127.0.0.1:6390", "cluster.local", "/srv/app", "Traceback", "paperless-ngx"] {
        assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
    }
}

/// Everything the client received: status line, headers and body.
async fn everything(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let mut text = String::new();
    for (k, v) in r.headers() {
        text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    text.push_str(&r.text().await.unwrap());
    (status, text)
}

#[tokio::test]
async fn success_bodies_are_redacted_where_configured() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let m = Moat::start(&leak_config(&up, &pki, true));
    let c = pki.client();
    let r = c.get(m.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["success"], false, "the JSON shape is kept: {body}");
    assert_eq!(body["status"], "unhealthy");
    assert!(body["error"].is_string());
    assert_no_internal("a redacted 200", &body.to_string());
    drop(m);

    // Off (the default): the 200 passes byte for byte.
    let m = Moat::start(&leak_config(&up, &pki, false));
    let text = c.get(m.url("/health")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("127.0.0.1:6390"), "{text}");
}

#[tokio::test]
async fn a_duplicated_json_key_is_redacted_in_every_value() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let m = Moat::start(&leak_config(&up, &pki, false));
    let (status, text) = everything(pki.client().get(m.url("/dup")).send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert_no_internal("a 422 with a duplicated key", &text);
}

#[tokio::test]
async fn a_status_outside_100_to_599_is_a_bad_gateway() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let m = Moat::start(&leak_config(&up, &pki, false));
    for p in ["/status600", "/status999"] {
        let (status, text) = everything(pki.client().get(m.url(p)).send().await.unwrap()).await;
        assert_eq!(status, 502, "{p}: {text}");
        assert!(text.contains("application/problem+json"), "{text}");
        assert_no_internal(p, &text);
    }
}

#[tokio::test]
async fn redirect_and_challenge_headers_and_bodies_do_not_leak() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let m = Moat::start(&leak_config(&up, &pki, false));
    let c = pki.builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // A Location to an internal host is dropped; debugging headers go; the
    // 3xx body is sanitized like a 4xx one.
    let r = c.get(m.url("/redirect-internal")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers().get("location").is_none());
    assert!(r.headers().get("x-error-detail").is_none() && r.headers().get("x-debug-trace").is_none());
    let (_, text) = everything(r).await;
    assert_no_internal("a 302 to an internal host", &text);

    // A Location to the upstream's own (internal) origin becomes the public one.
    let own = up.addr.to_string();
    let r = c.get(m.url("/redirect-own")).header("x-own-authority", &own).send().await.unwrap();
    assert_eq!(r.status(), 301);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(!loc.contains(&own), "{loc}");
    assert!(loc.starts_with("https://") && loc.ends_with("/next/page?x=1"), "{loc}");
    // A relative Location passes as it is.
    let r = c.get(m.url("/redirect-relative")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/done");

    // A WWW-Authenticate realm naming an internal address is redacted.
    let r = c.get(m.url("/challenge")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let (_, text) = everything(r).await;
    assert_no_internal("a 401 challenge", &text);
}

// ---------------------------------------------------------------- 5. unsafe configs

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.toml");
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = moat_cmd(&["check", "--config", path.to_str().unwrap()], &[]);
    (code, format!("{out}{err}"))
}

#[test]
fn roles_on_an_open_route_are_an_error() {
    let (code, out) = check("[[routes]]\nname = \"ops\"\npath = \"/ops\"\nauth = \"none\"\nroles = [\"admin\"]\n");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("routes[0]") || out.contains("\"ops\""), "{out}");
    assert!(out.contains("requires roles but its auth is \"none\""), "{out}");
}

#[test]
fn a_shadowed_route_is_an_error_naming_both() {
    let (code, out) = check(
        "[[routes]]\nname = \"api\"\npath = \"/api\"\nauth = \"none\"\n\
         [[routes]]\nname = \"api-admin\"\npath = \"/api/admin\"\nauth = \"api_key\"\n",
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("route \"api-admin\" can never match"), "{out}");
    assert!(out.contains("\"api\""), "{out}");
    // The right order is accepted; so are disjoint methods.
    let (code, out) = check(
        "[[routes]]\nname = \"api-admin\"\npath = \"/api/admin\"\nauth = \"none\"\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nauth = \"none\"\n\
         [[routes]]\nname = \"reads\"\npath = \"/docs\"\nmethods = [\"GET\"]\nauth = \"none\"\n\
         [[routes]]\nname = \"writes\"\npath = \"/docs\"\nmethods = [\"POST\"]\nauth = \"none\"\n",
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn unsafe_but_valid_settings_are_warned_about() {
    let (code, out) = check(
        "[listen]\nadmin = \"0.0.0.0:9901\"\n[client_ip]\ntrusted_proxies = [\"0.0.0.0/0\", \"::/0\"]\n\
         [cors]\nallowed_origins = [\"null\", \"http://ui.example.com\"]\nallow_credentials = true\n",
    );
    assert_eq!(code, 0, "warnings do not fail the check: {out}");
    assert!(out.contains("trusted_proxies contains 0.0.0.0/0"), "{out}");
    assert!(out.contains("trusted_proxies contains ::/0"), "{out}");
    assert!(out.contains("origin \"null\" with allow_credentials = true"), "{out}");
    assert!(out.contains("origin http://ui.example.com with allow_credentials = true"), "{out}");
    assert!(out.contains("listen.admin is 0.0.0.0:9901, not a loopback address"), "{out}");
}

#[tokio::test]
async fn start_up_logs_the_same_warnings() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[client_ip]\ntrusted_proxies = [\"::/0\"]\n",
        up.url(),
        pki.tls_toml()
    ));
    assert!(
        m.wait_log("trusted_proxies contains ::/0", Duration::from_secs(10)).await.is_some(),
        "{:?}",
        m.log_lines()
    );
}

#[test]
fn every_type_error_is_reported_in_one_run() {
    let (code, out) = check(
        "deny_unmatched = \"yes\"\n[upstream]\nurl = 5\n[limits]\nmax_body = [10]\nmax_connections = \"many\"\n[[routes]]\nname = 7\npath = \"/x\"\nexact = 1\n",
    );
    assert_ne!(code, 0);
    for key in [
        "deny_unmatched",
        "upstream.url",
        "limits.max_body",
        "limits.max_connections",
        "routes[0].name",
        "routes[0].exact",
    ] {
        assert!(out.contains(key), "{key} missing from: {out}");
    }
}
