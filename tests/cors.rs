//! CORS end to end: moat's allowlist replaces an upstream that answers
//! `Access-Control-Allow-Origin: *`, checked with a raw client and with a
//! real headless Chromium.

use crate::common;

use std::sync::{Arc, Mutex};

use common::*;
use http::Response;

async fn star_upstream() -> Upstream {
    Upstream::start(handler(|_, _| async {
        Response::builder()
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-credentials", "true")
            .header("access-control-allow-methods", "*")
            .header("vary", "Accept-Encoding")
            .body(full("{\"data\":1}"))
            .unwrap()
    }))
    .await
}

fn config(up: &Upstream, pki: &Pki, extra: &str) -> String {
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [cors]\nallowed_origins = [\"https://app.example.com\", \"https://*.example.org\"]\n\
         allowed_methods = [\"GET\", \"POST\", \"PUT\", \"DELETE\"]\nallowed_headers = [\"content-type\", \"x-custom\"]\n\
         allow_credentials = true\nmax_age = \"10m\"\n{extra}",
        up.url(),
        c.display(),
        k.display()
    )
}

fn acao(r: &reqwest::Response) -> Option<String> {
    r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
}

fn no_cors_headers(r: &reqwest::Response) {
    for (k, _) in r.headers() {
        assert!(!k.as_str().starts_with("access-control-"), "{k} present");
    }
}

#[tokio::test]
async fn preflights_are_answered_by_moat_and_never_forwarded() {
    init_crypto();
    let pki = Pki::new();
    let up = star_upstream().await;
    let m = Moat::start(&config(&up, &pki, ""));
    let c = pki.client();
    let pre = |origin: &str, method: &str, headers: &str| {
        c.request(reqwest::Method::OPTIONS, m.url("/api/items"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
    };
    let r = pre("https://app.example.com", "PUT", "Content-Type, X-Custom").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(acao(&r).as_deref(), Some("https://app.example.com"));
    assert_eq!(r.headers()["access-control-allow-methods"], "GET, POST, PUT, DELETE");
    assert_eq!(r.headers()["access-control-allow-headers"], "content-type, x-custom");
    assert_eq!(r.headers()["access-control-max-age"], "600");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers()["vary"].to_str().unwrap().contains("Origin"));
    let r = pre("https://a.b.example.org", "GET", "x-custom").await.unwrap();
    assert_eq!(r.status(), 204);

    for (origin, method, headers) in [
        ("https://evil.example.com", "GET", "x-custom"),
        ("https://example.org", "GET", ""),
        ("https://app.example.com", "PATCH", ""),
        ("https://app.example.com", "GET", "x-secret-header"),
    ] {
        let r = pre(origin, method, headers).await.unwrap();
        assert_eq!(r.status(), 403, "{origin} {method} {headers}");
        no_cors_headers(&r);
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["status"], 403);
    }
    assert!(up.seen().is_empty(), "a preflight reached the upstream");

    // Private network preflights only when allowed.
    let r = c
        .request(reqwest::Method::OPTIONS, m.url("/api/items"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-private-network", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn private_network_preflight_when_enabled() {
    init_crypto();
    let pki = Pki::new();
    let up = star_upstream().await;
    let m = Moat::start(&config(&up, &pki, "allow_private_network = true\n"));
    let r = pki
        .client()
        .request(reqwest::Method::OPTIONS, m.url("/x"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-private-network", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-private-network"], "true");
}

#[tokio::test]
async fn actual_requests_get_moats_headers_only() {
    init_crypto();
    let pki = Pki::new();
    let up = star_upstream().await;
    let m = Moat::start(&config(
        &up,
        &pki,
        "[[routes]]\nname = \"limited\"\npath = \"/limited\"\nrate_limit = { rate = \"1/min\", burst = 1 }\n",
    ));
    let c = pki.client();

    // Allowed origin: our headers, the upstream's "*" gone, Vary merged.
    let r = c.get(m.url("/api")).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some("https://app.example.com"));
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
    assert!(r.headers().get("access-control-allow-methods").is_none());
    assert_eq!(r.headers().get_all("vary").iter().count(), 1);
    assert_eq!(r.headers()["vary"], "Accept-Encoding, Origin");

    // Disallowed origin, safe method: forwarded, but no CORS headers at all.
    let before = up.seen().len();
    let r = c.get(m.url("/api")).header("origin", "https://evil.example.com").send().await.unwrap();
    assert_eq!(r.status(), 200);
    no_cors_headers(&r);
    assert_eq!(up.seen().len(), before + 1);

    // Disallowed origin, state-changing methods: refused before the upstream.
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::PATCH, reqwest::Method::DELETE] {
        let r = c
            .request(method.clone(), m.url("/api"))
            .header("origin", "https://evil.example.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method}");
        no_cors_headers(&r);
    }
    assert_eq!(up.seen().len(), before + 1);

    // No Origin (not a browser) and same-origin posts pass.
    assert_eq!(c.post(m.url("/api")).body("x").send().await.unwrap().status(), 200);
    let own = format!("https://localhost:{}", m.https.port());
    assert_eq!(c.post(m.url("/api")).header("origin", own).body("x").send().await.unwrap().status(), 200);
    assert_eq!(
        c.post(m.url("/api")).header("origin", "https://app.example.com").body("x").send().await.unwrap().status(),
        200
    );

    // A rejection sent to an allowed origin is readable by the browser app.
    let _ = c.get(m.url("/limited")).header("origin", "https://app.example.com").send().await.unwrap();
    let r = c.get(m.url("/limited")).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(acao(&r).as_deref(), Some("https://app.example.com"));
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap().contains("retry-after"));
}

#[test]
fn star_with_credentials_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("moat.toml");
    std::fs::write(&p, "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n").unwrap();
    let (code, _, err) = moat_cmd(&["check", "--config", p.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("cors.allowed_origins: \"*\" cannot be combined with allow_credentials"), "{err}");
    std::fs::write(&p, "[cors]\nallowed_origins = [\"docs.example.com\", \"https://*.com\"]\n").unwrap();
    let (code, _, err) = moat_cmd(&["check", "--config", p.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("cors.allowed_origins[0]") && err.contains("cors.allowed_origins[1]"), "{err}");
}

// ---------------------------------------------------------------- a real browser

/// Serves the test page on `listener` and records what it reports.
fn page_server(listener: tokio::net::TcpListener, moat_port: u16, reports: Arc<Mutex<Vec<String>>>) -> Upstream {
    Upstream::serve(
        listener,
        handler(move |parts, _| {
            let reports = reports.clone();
            async move {
                if parts.uri.path() == "/report" {
                    let q = parts.uri.query().unwrap_or("").to_string();
                    let v = q.strip_prefix("r=").unwrap_or(&q);
                    let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
                    reports.lock().unwrap().push(v);
                    return Response::new(full("ok"));
                }
                let page = format!(
                    r#"<!doctype html><html><body><div id="result">pending</div><script>
function report(s) {{ document.getElementById('result').textContent = s; fetch('/report?r=' + encodeURIComponent(s)); }}
fetch('https://localhost:{moat_port}/api/data', {{
  method: 'POST', credentials: 'include',
  headers: {{ 'X-Custom': 'yes', 'Content-Type': 'application/json' }},
  body: JSON.stringify({{ hello: 'world' }})
}}).then(r => r.text().then(t => report('ok:' + r.status + ':' + t)))
  .catch(e => report('failed:' + e));
</script></body></html>"#
                );
                Response::builder().header("content-type", "text/html").body(full(page)).unwrap()
            }
        }),
    )
}

#[tokio::test]
async fn real_browser_allowed_and_disallowed_origins() {
    let Some(chrome) = chromium() else { return };
    init_crypto();
    let pki = Pki::new();
    let up = star_upstream().await;
    let allowed_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let denied_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_port = allowed_l.local_addr().unwrap().port();
    let denied_port = denied_l.local_addr().unwrap().port();
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[cors]\nallowed_origins = [\"http://127.0.0.1:{allowed_port}\"]\n\
         allowed_methods = [\"GET\", \"POST\"]\nallowed_headers = [\"content-type\", \"x-custom\"]\nallow_credentials = true\n",
        up.url(),
        c.display(),
        k.display()
    ));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let _allowed = page_server(allowed_l, m.https.port(), reports.clone());
    let _denied = page_server(denied_l, m.https.port(), reports.clone());

    let ok = run_browser(&chrome, &format!("http://127.0.0.1:{allowed_port}/"), &reports).await;
    assert_eq!(ok, "ok:200:{\"data\":1}", "the allowed origin's fetch did not succeed");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].headers["x-custom"], "yes");

    let failed = run_browser(&chrome, &format!("http://127.0.0.1:{denied_port}/"), &reports).await;
    assert!(failed.starts_with("failed:"), "the disallowed origin's fetch was not blocked: {failed}");
    assert_eq!(up.seen().len(), 1, "the disallowed origin's request reached the upstream");
}
