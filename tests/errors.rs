//! Error sanitization, security headers and redacted logs, end to end.

use crate::common;

use common::*;
use http::Response;

const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"/srv/mineru/app/api/tasks.py\", line 88, in submit\n    client = Minio(\"minio.mineru.svc.cluster.local:9000\", secret_key=\"Zp4fS9xQ2mVt7LkR8wYc3nHb6JdA1eUo0iGqTs5K\")\nConnectionError: cannot reach 10.42.0.17:9000\n";
const GO_PANIC: &str = "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6d1a2b]\n\ngoroutine 42 [running]:\nmain.(*App).generateSuggestions(0xc0001a2000)\n\t/go/src/github.com/icereed/paperless-gpt/app_llm.go:212 +0x1d\nmain.main()\n\t/go/src/github.com/icereed/paperless-gpt/main.go:99 +0x2a5\nerror calling http://paperless.internal:8000/api/documents/ with token=9f8e7d6c5b4a39281706f5e4d3c2b1a0\n";

fn fastapi_422() -> String {
    serde_json::json!({
        "detail": [{
            "loc": ["body", "file"],
            "msg": "cannot open /srv/app/uploads/2026/report.pdf on 10.0.3.7:9000 using key sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUv",
            "type": "value_error"
        }]
    })
    .to_string()
}

const HTML_404: &str = "<!doctype html><html><body><h1>404</h1><pre>Error: not found\n    at Router.handle (/app/node_modules/express/lib/router/index.js:284:7)\n    at next (/app/server/routes/docs.js:41:13)\n</pre><p>backend redis://default:hunter2pass@redis.mineru.svc:6379/0</p></body></html>";

/// Every secret, path, address and host the upstream bodies above carry.
const LEAKS: &[&str] = &[
    "/srv/mineru",
    "tasks.py",
    "minio.mineru.svc",
    "Zp4fS9xQ2mVt7LkR8wYc3nHb6JdA1eUo0iGqTs5K",
    "10.42.0.17",
    "goroutine",
    "/go/src",
    "app_llm.go",
    "paperless.internal",
    "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "/srv/app/uploads",
    "10.0.3.7",
    "sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUv",
    "node_modules",
    "/app/server",
    "hunter2pass",
    "redis.mineru.svc",
];

async fn leaky_upstream() -> Upstream {
    Upstream::start(handler(|parts, _| async move {
        let (status, ctype, body): (u16, &str, String) = match parts.uri.path() {
            "/py500" => (500, "text/plain", TRACEBACK.into()),
            "/gopanic" => (502, "text/plain", GO_PANIC.into()),
            "/unavailable" => (503, "text/plain", TRACEBACK.into()),
            "/fastapi422" => (422, "application/json", fastapi_422()),
            "/html404" => (404, "text/html", HTML_404.into()),
            _ => (200, "text/plain", format!("{TRACEBACK}{GO_PANIC}{}{HTML_404}", fastapi_422())),
        };
        let mut b = Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("server", "uvicorn")
            .header("x-powered-by", "Go-Gin")
            .header("x-runtime", "0.0123")
            .header("x-debug-token", "abc")
            .header("x-aspnet-version", "4.0")
            .header("x-internal-addr", "fine-to-keep");
        if status == 503 {
            b = b.header("retry-after", "7");
        }
        b.body(full(body)).unwrap()
    }))
    .await
}

fn assert_clean(what: &str, headers: &reqwest::header::HeaderMap, body: &str) {
    let mut all = String::new();
    for (k, v) in headers {
        all.push_str(k.as_str());
        all.push_str(": ");
        all.push_str(&String::from_utf8_lossy(v.as_bytes()));
        all.push('\n');
    }
    all.push_str(body);
    for leak in LEAKS {
        assert!(!all.contains(leak), "{what}: `{leak}` reached the client:\n{all}");
    }
}

#[tokio::test]
async fn upstream_errors_are_sanitized_and_logged_with_request_id() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        up.url(),
        c.display(),
        k.display()
    ));
    let client = pki.client();

    for (path, status) in
        [("/py500", 500u16), ("/gopanic", 502), ("/unavailable", 503), ("/fastapi422", 422), ("/html404", 404)]
    {
        let res = client.get(m.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        for h in ["server", "x-powered-by", "x-runtime", "x-debug-token", "x-aspnet-version"] {
            assert!(res.headers().get(h).is_none(), "{path}: {h} not removed");
        }
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        assert_eq!(res.headers()["content-security-policy"], "default-src 'self'");
        assert!(res.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let headers = res.headers().clone();
        if status == 503 {
            assert_eq!(headers["retry-after"], "7");
        }
        let body = res.text().await.unwrap();
        assert_clean(path, &headers, &body);

        if status >= 500 {
            assert_eq!(headers["content-type"], "application/problem+json");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], status);
            assert_eq!(v["request_id"], id.as_str());
            // The original is in the log under the same request id, redacted.
            let line = m
                .wait_log(&format!("\"request_id\":\"{id}\",\"upstream_status\""), std::time::Duration::from_secs(5))
                .await;
            let line = line.unwrap_or_else(|| panic!("no log of the replaced body for {id}"));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["level"], "warn");
            let logged = v["upstream_body"].as_str().unwrap();
            assert!(logged.contains("[redacted]"), "{logged}");
            for leak in LEAKS {
                assert!(!logged.contains(leak), "the log kept `{leak}`: {logged}");
            }
        }
        if path == "/fastapi422" {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let item = &v["detail"][0];
            assert_eq!(item["loc"], serde_json::json!(["body", "file"]));
            assert_eq!(item["type"], "value_error");
            assert!(item["msg"].as_str().unwrap().contains("[redacted]"));
            assert!(item["msg"].as_str().unwrap().starts_with("cannot open"));
        }
        if path == "/html404" {
            assert!(body.contains("<h1>404</h1>"), "{body}");
        }
    }

    // A 200 carrying the same strings passes unchanged.
    let res = client.get(m.url("/ok")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert_eq!(body, format!("{TRACEBACK}{GO_PANIC}{}{HTML_404}", fastapi_422()));
}

#[tokio::test]
async fn browsers_get_an_html_error_page() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        up.url(),
        c.display(),
        k.display()
    ));
    let res = pki
        .client()
        .get(m.url("/py500"))
        .header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = res.text().await.unwrap();
    assert!(body.contains("500 Internal Server Error"), "{body}");
    assert!(body.contains(&id), "{body}");
    assert!(!body.contains("Traceback"));
}

#[tokio::test]
async fn sanitizing_can_be_turned_off_and_csp_overridden_per_route() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_upstream().await;
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[errors]\nreplace_upstream_5xx = false\n[security_headers]\nframe_options = \"\"\n[[routes]]\nname = \"ui\"\npath = \"/ui\"\nsecurity_headers = {{ content_security_policy = \"default-src 'self'; img-src 'self' data:\" }}\n",
        up.url(),
        c.display(),
        k.display()
    ));
    let client = pki.client();
    let res = client.get(m.url("/py500")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.headers().get("x-frame-options").is_none());
    assert!(res.text().await.unwrap().contains("Traceback"));
    let res = client.get(m.url("/ui/index")).send().await.unwrap();
    assert_eq!(res.headers()["content-security-policy"], "default-src 'self'; img-src 'self' data:");
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    let m = Moat::start_env(
        &format!("[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n", up.url(), c.display(), k.display()),
        &[("MOAT_LOG", "debug")],
    );
    let client = pki.client();
    let secrets =
        ["BearerSecretAAA111", "CookieSecretBBB222", "ApiKeySecretCCC333", "QueryTokenDDD444", "PasswordEEE555"];
    let mut ids = Vec::new();
    for h2 in [false, true] {
        let c = if h2 { pki.builder().http2_prior_knowledge().build().unwrap() } else { client.clone() };
        let res = c
            .get(m.url(&format!("/search?q=report&token={}&password={}&page=2", secrets[3], secrets[4])))
            .header("authorization", format!("Bearer {}", secrets[0]))
            .header("cookie", format!("session={}", secrets[1]))
            .header("x-api-key", secrets[2])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        ids.push(res.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    for id in &ids {
        let line = m.access_line(id).await;
        let path = line["path"].as_str().unwrap();
        assert_eq!(path, "/search?q=report&token=[redacted]&password=[redacted]&page=2");
    }
    let mut m = m;
    m.signal("TERM");
    m.wait_exit(std::time::Duration::from_secs(10));
    let all = format!("{}\n{}", m.log_lines().join("\n"), m.stderr.lock().unwrap());
    for s in secrets {
        assert!(!all.contains(s), "secret {s} found in moat's output");
    }
}
