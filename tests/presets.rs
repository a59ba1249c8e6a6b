//! The shipped presets, config/mineru-api.toml and config/paperless-gpt.toml
//! (and config/paperless-stack.toml, which includes the latter), end to end: each file is loaded as it is (include_str!), with only what a
//! deployment sets by environment overridden (listen addresses, upstream,
//! certificate, credential file), in front of a recording upstream.

use crate::common;

use common::samples::{self, form, form_content_type, part};
use common::*;
use http::Response;

const MINERU: &str = include_str!("../config/mineru-api.toml");
const PAPERLESS: &str = include_str!("../config/paperless-gpt.toml");

const USER_KEY: &str = "mineru-user-key-7f3a9c1e5b2d4068";
const ADMIN_KEY: &str = "mineru-admin-key-c4e81b0a6f93d275";

const ALICE_PW: &str = "alice correct horse";
const ROOT_PW: &str = "root battery staple";

/// A Go error of the kind paperless-gpt puts in its 500 bodies
/// (app_http_handlers.go:175): an internal URL and address.
const GO_ERROR: &str = "{\"error\":\"Error fetching documents: Get \\\"http://paperless-ngx:8000/api/documents/?tags__name__iexact=paperless-gpt&page_size=25\\\": dial tcp 10.0.3.7:8000: connect: connection refused\"}";

fn pdf() -> Vec<u8> {
    samples::all().into_iter().find(|t| t.0 == "pdf").unwrap().3
}

/// Requests the upstream received whose path starts with `path` (readiness
/// probes of the health path arrive too, so never count all of them).
fn seen_at(up: &Upstream, path: &str) -> Vec<Seen> {
    up.seen().into_iter().filter(|s| s.uri.starts_with(path)).collect()
}

async fn status_and_json(res: reqwest::Response) -> (u16, serde_json::Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// An upstream answering every request like MinerU-API's health route.
async fn mineru_upstream() -> Upstream {
    Upstream::start(handler(|_, _| async {
        Response::builder()
            .header("content-type", "application/json")
            .body(full(
                "{\"success\":true,\"status\":\"healthy\",\"task_id\":\"0b7c3e52-6a1d-4c8e-9f0a-2d5e8b1c4a73\"}",
            ))
            .unwrap()
    }))
    .await
}

/// What a MinerU preset moat needs beside it: the key file's temp dir and
/// the clamd its upload routes scan with.
struct MineruSide {
    _keys: tempfile::TempDir,
    clamd: Option<common::clamd::Clamd>,
}

/// moat on the MinerU preset, with a user key and an admin key, scanning
/// uploads with a real clamd (the preset's `[scan]`, pointed at the test's
/// clamd as the Compose stack points it at its `clamav` service). Where
/// clamd is not installed (never in CI) uploads pass unscanned
/// (`on_error = "allow"`). What the returned value holds lives as long as it.
fn start_mineru(pki: &Pki, up: &Upstream) -> (Moat, MineruSide) {
    let (cert, key) = pki.write_server("mineru", &rcgen::PKCS_ECDSA_P256_SHA256);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("api-keys.toml");
    std::fs::write(
        &keys,
        format!(
            "api_keys = [\n  {{ name = \"tester\", sha256 = \"{}\", roles = [] }},\n  {{ name = \"ops\", sha256 = \"{}\", roles = [\"admin\"] }},\n]\n",
            sha256_hex(USER_KEY.as_bytes()),
            sha256_hex(ADMIN_KEY.as_bytes())
        ),
    )
    .unwrap();
    let url = up.url();
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let keys = keys.display().to_string();
    let clamd = common::clamd::Clamd::start();
    let clamd_url = clamd.as_ref().map(|c| c.tcp());
    let mut env = vec![
        ("MOAT_LISTEN__HTTPS", "127.0.0.1:0"),
        ("MOAT_LISTEN__ADMIN", "127.0.0.1:0"),
        ("MOAT_UPSTREAM__URL", url.as_str()),
        ("MOAT_TLS__CERT", cert.as_str()),
        ("MOAT_TLS__KEY", key.as_str()),
        ("MOAT_AUTH__API_KEYS_FILE", keys.as_str()),
    ];
    match &clamd_url {
        Some(u) => env.push(("MOAT_SCAN__CLAMD", u.as_str())),
        None => {
            env.push(("MOAT_SCAN__ON_ERROR", "allow"));
            env.push(("MOAT_SCAN__REQUIRED_FOR_READY", "false"));
        }
    }
    let m = Moat::start_env(MINERU, &env);
    (m, MineruSide { _keys: dir, clamd })
}

#[tokio::test]
async fn mineru_uploads_are_scanned_and_an_infected_one_never_reaches_the_app() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, side) = start_mineru(&pki, &up);
    if side.clamd.is_none() {
        return;
    }
    let c = pki.client();
    for (route, field) in [("/api/v1/tasks/submit", "file"), ("/file_parse", "files")] {
        let infected = form(&[part(field, Some("notes.txt"), Some("text/plain"), &common::clamd::eicar())]);
        let clean = form(&[part(field, Some("report.pdf"), Some("application/pdf"), &pdf())]);
        for (body, want) in [(infected, 403), (clean, 200)] {
            let r = c
                .post(m.url(route))
                .header("x-api-key", USER_KEY)
                .header("content-type", form_content_type())
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let (status, v) = status_and_json(r).await;
            assert_eq!(status, want, "{route}: {v}");
            let delivered = seen_at(&up, route).iter().any(|s| s.complete && s.sha256 == sha256_hex(&body));
            assert_eq!(delivered, want == 200, "{route}: delivered = {delivered}");
        }
    }
    let ready = reqwest::get(m.admin_url("/readyz")).await.unwrap().status();
    assert_eq!(ready, 200, "readiness with clamd up");
}

/// An argon2id PHC string. The string carries its own parameters; small ones
/// keep the (debug-build) test and moat's verification fast.
fn phc(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    let params = Params::new(4096, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// moat on the paperless-gpt preset with basic users alice (no role) and
/// root (admin).
fn start_paperless(pki: &Pki, up: &Upstream) -> (Moat, tempfile::TempDir) {
    let (cert, key) = pki.write_server("paperless", &rcgen::PKCS_ECDSA_P256_SHA256);
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("basic-users.toml");
    std::fs::write(
        &users,
        format!(
            "basic = [\n  {{ user = \"alice\", hash = \"{}\", roles = [] }},\n  {{ user = \"root\", hash = \"{}\", roles = [\"admin\"] }},\n]\n",
            phc(ALICE_PW),
            phc(ROOT_PW)
        ),
    )
    .unwrap();
    let url = up.url();
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let users = users.display().to_string();
    let m = Moat::start_env(
        PAPERLESS,
        &[
            ("MOAT_LISTEN__HTTPS", "127.0.0.1:0"),
            ("MOAT_LISTEN__ADMIN", "127.0.0.1:0"),
            ("MOAT_UPSTREAM__URL", url.as_str()),
            ("MOAT_TLS__CERT", cert.as_str()),
            ("MOAT_TLS__KEY", key.as_str()),
            ("MOAT_AUTH__BASIC_FILE", users.as_str()),
        ],
    );
    (m, dir)
}

// ---------------------------------------------------------------- moat check

#[test]
fn presets_pass_check_and_print_their_route_tables() {
    let root = env!("CARGO_MANIFEST_DIR");
    let expect: [(&str, &[&str]); 2] = [
        (
            "mineru-api.toml",
            &[
                "health",
                "/api/v1/health",
                "submit",
                "/api/v1/tasks/submit",
                "file-parse",
                "/file_parse",
                "task-status",
                "task-cancel",
                "/api/v1/tasks/{task_id}",
                "queue-stats",
                "/api/v1/queue/stats",
                "queue-tasks",
                "/api/v1/queue/tasks",
                "101MiB",
                "deny_unmatched",
            ],
        ),
        (
            "paperless-gpt.toml",
            &[
                "ui-index",
                "ui-assets",
                "/assets",
                "generate-suggestions",
                "analyze-documents",
                "/api/documents/{id}/ocr_pages/{page}/reocr",
                "settings-save",
                "prompts-save",
                "update-documents",
                "undo-modification",
                "ocr-defaults",
                "config-view",
                "paperless-url",
                "application/json",
                "deny_unmatched",
            ],
        ),
    ];
    for (file, needles) in expect {
        let p = format!("{root}/config/{file}");
        let (code, out, err) = moat_cmd(&["check", "--config", &p], &[]);
        assert_eq!(code, 0, "{p}:\n{err}{out}");
        for n in needles {
            assert!(out.contains(n), "{file}: `{n}` missing from the route table:\n{out}");
        }
        // No credentials ship with a preset: check passes and warns.
        assert!(err.to_ascii_lowercase().contains("warning"), "{file}: no warning about missing credentials:\n{err}");
        // Nor a certificate path (check must not depend on a deployment's files)
        // nor a key digest or password hash outside the comments.
        let text = std::fs::read_to_string(&p).unwrap();
        for line in text.lines().map(str::trim_start).filter(|l| !l.starts_with('#')) {
            assert!(!line.starts_with("cert =") && !line.starts_with("key ="), "{file} sets a TLS path: {line}");
            assert!(!line.contains("sha256 =") && !line.contains("$argon2"), "{file} ships a credential: {line}");
        }
    }
}

// ---------------------------------------------------------------- MinerU-API

#[tokio::test]
async fn mineru_docs_and_unlisted_paths_are_404() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();
    for path in ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/api/v1/unknown", "/output"] {
        // Even with the admin key: the generated docs are not routed at all.
        let r = c.get(m.url(path)).header("x-api-key", ADMIN_KEY).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let r = c.get(m.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path} without a key");
        assert!(seen_at(&up, path).is_empty(), "{path} reached the upstream");
    }
}

#[tokio::test]
async fn mineru_health_needs_no_key_and_the_rest_does() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();

    let r = c.get(m.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("healthy"));

    // GET / and task status: 401 with a Bearer challenge, never forwarded.
    for path in ["/", "/api/v1/tasks/0b7c3e52-6a1d-4c8e-9f0a-2d5e8b1c4a73"] {
        let r = c.get(m.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(challenge.starts_with("Bearer realm=\"mineru-api\""), "{challenge}");
    }
    assert!(seen_at(&up, "/api/v1/tasks").is_empty());
    let r = c
        .get(m.url("/api/v1/tasks/0b7c3e52-6a1d-4c8e-9f0a-2d5e8b1c4a73"))
        .header("x-api-key", USER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(seen_at(&up, "/api/v1/tasks/").len(), 1);
}

#[tokio::test]
async fn mineru_submit_needs_a_key_and_a_pdf_reaches_the_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();
    let body = form(&[
        part("backend", None, None, b"pipeline"),
        part("lang", None, None, b"en"),
        part("method", None, None, b"auto"),
        part("priority", None, None, b"3"),
        part("file", Some("report.pdf"), Some("application/pdf"), &pdf()),
    ]);
    let submit = |key: Option<&str>, bearer: bool| {
        let mut rb =
            c.post(m.url("/api/v1/tasks/submit")).header("content-type", form_content_type()).body(body.clone());
        match (key, bearer) {
            (Some(k), false) => rb = rb.header("x-api-key", k),
            (Some(k), true) => rb = rb.bearer_auth(k),
            (None, _) => {}
        }
        rb.send()
    };

    let (status, v) = status_and_json(submit(None, false).await.unwrap()).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["status"], 401);
    let (status, _) = status_and_json(submit(Some("not-a-key"), false).await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(seen_at(&up, "/api/v1/tasks/submit").is_empty(), "an unauthenticated upload reached the upstream");

    let (status, v) = status_and_json(submit(Some(USER_KEY), false).await.unwrap()).await;
    assert_eq!(status, 200, "{v}");
    let seen = seen_at(&up, "/api/v1/tasks/submit");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].complete);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].sha256, sha256_hex(&body), "the upload changed on the way");
    assert!(seen[0].headers.get("x-api-key").is_none(), "the key reached the upstream");

    let (status, _) = status_and_json(submit(Some(USER_KEY), true).await.unwrap()).await;
    assert_eq!(status, 200);
    let seen = seen_at(&up, "/api/v1/tasks/submit");
    assert_eq!(seen.len(), 2);
    assert!(seen[1].headers.get("authorization").is_none(), "the bearer key reached the upstream");
}

#[tokio::test]
async fn mineru_submit_refuses_priority_out_of_range_server_url_and_a_second_file() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();
    let pdf = pdf();
    let file = || part("file", Some("report.pdf"), Some("application/pdf"), &pdf);
    let refused = [
        ("priority 42", form(&[part("priority", None, None, b"42"), file()])),
        ("priority -1", form(&[part("priority", None, None, b"-1"), file()])),
        ("server_url", form(&[part("server_url", None, None, b"http://169.254.169.254/latest/meta-data/"), file()])),
        ("two files", form(&[file(), part("file", Some("second.pdf"), Some("application/pdf"), &pdf)])),
        ("an executable", form(&[part("file", Some("tool.exe"), Some("application/octet-stream"), &samples::exe())])),
    ];
    for (what, body) in refused {
        let r = c
            .post(m.url("/api/v1/tasks/submit"))
            .header("x-api-key", USER_KEY)
            .header("content-type", form_content_type())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!((400..500).contains(&status) && status != 401 && status != 429, "{what}: {status}");
        let digest = sha256_hex(&body);
        for s in seen_at(&up, "/api/v1/tasks/submit") {
            assert!(!(s.complete && s.sha256 == digest), "{what}: the upstream received the refused upload");
        }
    }
}

#[tokio::test]
async fn mineru_file_parse_output_dir_traversal_never_reaches_the_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();
    let pdf = pdf();
    // The route allows two requests at once per key (burst 2): one refused, one accepted.
    let traversal = form(&[
        part("output_dir", None, None, b"../../etc"),
        part("backend", None, None, b"pipeline"),
        part("files", Some("a.pdf"), Some("application/pdf"), &pdf),
    ]);
    let (status, v) = status_and_json(
        c.post(m.url("/file_parse"))
            .header("x-api-key", USER_KEY)
            .header("content-type", form_content_type())
            .body(traversal.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    let plain = form(&[
        part("output_dir", None, None, b"run_1"),
        part("lang_list", None, None, b"en"),
        part("lang_list", None, None, b"ch"),
        part("files", Some("a.pdf"), Some("application/pdf"), &pdf),
        part("files", Some("b.pdf"), Some("application/pdf"), &pdf),
    ]);
    let (status, v) = status_and_json(
        c.post(m.url("/file_parse"))
            .header("x-api-key", USER_KEY)
            .header("content-type", form_content_type())
            .body(plain.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    let seen = seen_at(&up, "/file_parse");
    let complete: Vec<&Seen> = seen.iter().filter(|s| s.complete).collect();
    assert_eq!(complete.len(), 1, "{seen:?}");
    assert_eq!(complete[0].sha256, sha256_hex(&plain));
    let bad = sha256_hex(&traversal);
    assert!(!seen.iter().any(|s| s.complete && s.sha256 == bad), "output_dir=../../etc reached the upstream");
}

#[tokio::test]
async fn mineru_cancel_and_queue_views_need_the_admin_role() {
    init_crypto();
    let pki = Pki::new();
    let up = mineru_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();
    let task = "/api/v1/tasks/0b7c3e52-6a1d-4c8e-9f0a-2d5e8b1c4a73";

    assert_eq!(c.delete(m.url(task)).header("x-api-key", USER_KEY).send().await.unwrap().status(), 403);
    assert_eq!(c.get(m.url("/api/v1/queue/stats")).header("x-api-key", USER_KEY).send().await.unwrap().status(), 403);
    assert_eq!(
        c.get(m.url("/api/v1/queue/tasks?limit=5")).header("x-api-key", USER_KEY).send().await.unwrap().status(),
        403
    );
    assert!(seen_at(&up, "/api/v1/queue").is_empty());
    assert!(!seen_at(&up, task).iter().any(|s| s.method == "DELETE"));

    assert_eq!(c.delete(m.url(task)).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 200);
    assert_eq!(c.get(m.url("/api/v1/queue/stats")).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(m.url("/api/v1/queue/tasks?limit=5")).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(),
        200
    );
    assert!(seen_at(&up, task).iter().any(|s| s.method == "DELETE"));
    assert_eq!(seen_at(&up, "/api/v1/queue").len(), 2);

    // A method the app does not serve on a routed path.
    assert_eq!(c.post(m.url(task)).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 405);
}

// ---------------------------------------------------------------- paperless-gpt

async fn paperless_upstream() -> Upstream {
    Upstream::start(handler(|_, _| async {
        Response::builder().header("content-type", "application/json").body(full("{\"ok\":true}")).unwrap()
    }))
    .await
}

#[tokio::test]
async fn paperless_settings_without_credentials_is_401_with_a_basic_challenge() {
    init_crypto();
    let pki = Pki::new();
    let up = paperless_upstream().await;
    let (m, _users) = start_paperless(&pki, &up);
    let c = pki.client();

    let r = c.get(m.url("/api/settings")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Basic realm=\"paperless-gpt\""), "{challenge}");
    let (_, v) = status_and_json(r).await;
    assert!(v["error"].is_string(), "no `error` key: {v}");

    let r = c.get(m.url("/api/settings")).basic_auth("alice", Some("wrong password")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The UI shell is behind the same door.
    assert_eq!(c.get(m.url("/")).send().await.unwrap().status(), 401);
    assert!(seen_at(&up, "/api/settings").is_empty());
    assert!(!up.seen().iter().any(|s| s.uri == "/"));
}

#[tokio::test]
async fn paperless_non_admin_user_reads_but_cannot_change_settings() {
    init_crypto();
    let pki = Pki::new();
    let up = paperless_upstream().await;
    let (m, _users) = start_paperless(&pki, &up);
    let c = pki.client();
    let json = |path: &str, user: &str, pw: &str| {
        c.post(m.url(path))
            .basic_auth(user, Some(pw))
            .header("content-type", "application/json")
            .body("{\"custom_fields_enable\":false,\"custom_fields_selected_ids\":[],\"custom_fields_write_mode\":\"append\"}")
            .send()
    };

    let (status, v) = status_and_json(json("/api/settings", "alice", ALICE_PW).await.unwrap()).await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].is_string(), "no `error` key: {v}");
    assert!(!seen_at(&up, "/api/settings").iter().any(|s| s.method == "POST"));

    let r = c.get(m.url("/api/documents")).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = seen_at(&up, "/api/documents");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("authorization").is_none(), "the password reached the upstream");

    // The UI shell, with a CSP that allows its bundle and its inline theme script only.
    let r = c.get(m.url("/")).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self' 'sha256-"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    // The admin may.
    let (status, v) = status_and_json(json("/api/settings", "root", ROOT_PW).await.unwrap()).await;
    assert_eq!(status, 200, "{v}");
    assert!(seen_at(&up, "/api/settings").iter().any(|s| s.method == "POST" && s.complete));

    // Unlisted paths are 404 even for a logged-in user.
    for path in ["/api/unknown", "/debug/pprof/", "/web-app/dist/index.html"] {
        let r = c.get(m.url(path)).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn paperless_json_routes_refuse_other_media_types_and_cross_site_posts() {
    init_crypto();
    let pki = Pki::new();
    let up = paperless_upstream().await;
    let (m, _users) = start_paperless(&pki, &up);
    let c = pki.client();
    let prompt = "{\"filename\":\"title_prompt.tmpl\",\"content\":\"{{ .Content }}\"}";

    // As admin, so that the media type is what decides.
    let r = c
        .post(m.url("/api/prompts"))
        .basic_auth("root", Some(ROOT_PW))
        .header("content-type", "text/plain")
        .body(prompt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(!seen_at(&up, "/api/prompts").iter().any(|s| s.method == "POST"));

    let r = c
        .post(m.url("/api/jobs/suggestions"))
        .basic_auth("alice", Some(ALICE_PW))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("documents=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // A cross-site request carrying (browser-cached) credentials.
    let r = c
        .post(m.url("/api/prompts"))
        .basic_auth("root", Some(ROOT_PW))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(prompt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!seen_at(&up, "/api/prompts").iter().any(|s| s.method == "POST"));

    let r = c
        .post(m.url("/api/prompts"))
        .basic_auth("root", Some(ROOT_PW))
        .header("content-type", "application/json")
        .body(prompt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(seen_at(&up, "/api/prompts").iter().any(|s| s.method == "POST" && s.complete));

    // A body-less POST (the UI's stop and re-OCR buttons) passes the media-type rule.
    let r = c.post(m.url("/api/jobs/suggestions/3f1c/stop")).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn paperless_upstream_500_becomes_problem_json_with_an_error_key() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(handler(|_, _| async {
        Response::builder()
            .status(500)
            .header("content-type", "application/json; charset=utf-8")
            .body(full(GO_ERROR))
            .unwrap()
    }))
    .await;
    let (m, _users) = start_paperless(&pki, &up);
    let r = pki.client().get(m.url("/api/documents")).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = r.text().await.unwrap();
    for leak in ["paperless-ngx", "10.0.3.7", "http://", "dial tcp", "tags__name__iexact"] {
        assert!(!body.contains(leak), "`{leak}` leaked: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 500);
    assert!(v["error"].is_string(), "no `error` key: {v}");
    assert_eq!(v["error"], v["detail"]);
    assert!(!seen_at(&up, "/api/documents").is_empty(), "the request never reached the upstream");
}

// ---------------------------------------------------------------- leaks in 2xx bodies

/// An upstream answering like the real apps do when something inside them
/// fails: MinerU-API's health with its Redis down and a failed task's
/// exception text (200s both), paperless-gpt's config view and URL with
/// internal addresses.
async fn leaky_app_upstream() -> Upstream {
    Upstream::start(handler(|parts, _| async move {
        let body = match parts.uri.path() {
            "/api/v1/health" => "{\"success\":false,\"status\":\"unhealthy\",\"error\":\"Error 111 connecting to 127.0.0.1:6390. Connection refused.\"}".to_string(),
            p if p.starts_with("/api/v1/tasks/") => "{\"success\":true,\"task_id\":\"0b7c3e52-6a1d-4c8e-9f0a-2d5e8b1c4a73\",\"status\":\"failed\",\"file_name\":\"a.pdf\",\"error_message\":\"Traceback (most recent call last):\\n  File \\\"/app/mineru/worker/tasks.py\\\", line 100, in parse_document\\n    client.connect()\\nredis.exceptions.ConnectionError: Error 111 connecting to 10.42.1.17:6379. Connection refused.\"}".to_string(),
            "/api/config" => "{\"PAPERLESS_BASE_URL\":\"http://paperless-ngx.docs.svc.cluster.local:8000\",\"OLLAMA_HOST\":\"http://10.0.3.7:11434\",\"LLM_MODEL\":\"qwen3:8b\"}".to_string(),
            "/api/paperless-url" => "{\"url\":\"http://192.168.1.20:8000\"}".to_string(),
            _ => "{\"ok\":true}".to_string(),
        };
        Response::builder().header("content-type", "application/json").body(full(body)).unwrap()
    }))
    .await
}

fn assert_no_internals(what: &str, text: &str) {
    for leak in
        ["127.0.0.1:6390", "10.42.1.17", "/app/mineru", "Traceback", "cluster.local", "10.0.3.7", "192.168.1.20"]
    {
        assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
    }
}

#[tokio::test]
async fn mineru_health_and_task_status_leak_no_address_or_exception_text() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_app_upstream().await;
    let (m, _keys) = start_mineru(&pki, &up);
    let c = pki.client();

    let r = c.get(m.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let headers = format!("{:?}", r.headers());
    let (_, health) = status_and_json(r).await;
    assert_eq!(health["success"], false, "the JSON shape is kept: {health}");
    assert_eq!(health["status"], "unhealthy");
    assert_no_internals("GET /api/v1/health", &format!("{headers}{health}"));

    let r = c
        .get(m.url("/api/v1/tasks/0b7c3e52-6a1d-4c8e-9f0a-2d5e8b1c4a73"))
        .header("x-api-key", USER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = format!("{:?}", r.headers());
    let (_, task) = status_and_json(r).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["file_name"], "a.pdf");
    assert!(task["error_message"].is_string());
    assert_no_internals("GET /api/v1/tasks/{id}", &format!("{headers}{task}"));
    // The upstream did answer the leak: moat removed it.
    assert_eq!(seen_at(&up, "/api/v1/tasks/").len(), 1);
}

#[tokio::test]
async fn paperless_config_view_and_url_leak_no_internal_address() {
    init_crypto();
    let pki = Pki::new();
    let up = leaky_app_upstream().await;
    let (m, _users) = start_paperless(&pki, &up);
    let c = pki.client();
    for path in ["/api/config", "/api/paperless-url"] {
        let r = c.get(m.url(path)).basic_auth("root", Some(ROOT_PW)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let (_, body) = status_and_json(r).await;
        assert!(body.is_object(), "{path}: {body}");
        assert_no_internals(path, &body.to_string());
    }
    let (_, body) =
        status_and_json(c.get(m.url("/api/config")).basic_auth("root", Some(ROOT_PW)).send().await.unwrap()).await;
    assert_eq!(body["LLM_MODEL"], "qwen3:8b", "harmless values pass: {body}");
}

// ---------------------------------------------------------------- paperless stack (two hosts)

/// An upstream that answers `name` and records what it received.
async fn named_upstream(name: &'static str) -> Upstream {
    Upstream::start(handler(move |_, _| async move {
        Response::builder()
            .header("content-type", "application/json")
            .body(full(format!("{{\"app\":\"{name}\"}}")))
            .unwrap()
    }))
    .await
}

#[tokio::test]
async fn paperless_stack_serves_paperless_ngx_and_paperless_gpt_on_two_host_names() {
    init_crypto();
    let pki = Pki::new();
    let gpt = named_upstream("gpt").await;
    let ngx = named_upstream("ngx").await;
    let (cert, key) = pki.write_named("stack", &["localhost", "paperless.localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("basic-users.toml");
    std::fs::write(&users, format!("basic = [{{ user = \"alice\", hash = \"{}\", roles = [] }}]\n", phc(ALICE_PW)))
        .unwrap();
    // The stack file as shipped, laid under a file that only sets listen
    // addresses (and includes it, as it includes the paperless-gpt preset).
    let stack = format!("{}/config/paperless-stack.toml", env!("CARGO_MANIFEST_DIR"));
    let (gpt_url, ngx_url) = (gpt.url(), ngx.url());
    let (cert, key, users) = (cert.display().to_string(), key.display().to_string(), users.display().to_string());
    let m = Moat::start_env(
        &format!("include = [\"{stack}\"]\n[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n"),
        &[
            ("MOAT_UPSTREAM__URL", gpt_url.as_str()),
            ("MOAT_UPSTREAMS__PAPERLESS_NGX__URL", ngx_url.as_str()),
            ("MOAT_TLS__CERT", cert.as_str()),
            ("MOAT_TLS__KEY", key.as_str()),
            ("MOAT_AUTH__BASIC_FILE", users.as_str()),
        ],
    );
    let port = m.https.port();
    let c = pki.builder().resolve("paperless.localhost", ([127, 0, 0, 1], port).into()).build().unwrap();
    let ngx_at = |p: &str| format!("https://paperless.localhost:{port}{p}");
    let gpt_at = |p: &str| format!("https://localhost:{port}{p}");

    // paperless-ngx: its own login, so no moat credentials; its API token
    // reaches it; moat's forwarding headers name the public host.
    let r =
        c.get(ngx_at("/api/documents/?page=1")).header("authorization", "Token ngx-api-token").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"app\":\"ngx\"}");
    let seen = seen_at(&ngx, "/api/documents/");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["authorization"], "Token ngx-api-token");
    assert_eq!(seen[0].headers["x-forwarded-host"], format!("paperless.localhost:{port}").as_str());
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
    // A paperless-gpt path on the paperless-ngx host goes to paperless-ngx, never to paperless-gpt.
    assert_eq!(c.get(ngx_at("/api/settings")).send().await.unwrap().text().await.unwrap(), "{\"app\":\"ngx\"}");
    assert!(seen_at(&gpt, "/api/settings").is_empty());

    // paperless-gpt on the other name: the preset's basic auth and allowlist.
    let r = c.get(gpt_at("/api/settings")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let r = c.get(gpt_at("/api/settings")).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"app\":\"gpt\"}");
    assert_eq!(c.get(gpt_at("/admin/")).basic_auth("alice", Some(ALICE_PW)).send().await.unwrap().status(), 404);
    assert!(ngx.seen().iter().all(|s| s.uri != "/api/settings" || s.headers.get("authorization").is_none()));

    // Uploads to paperless-ngx are inspected: a jar named .pdf never arrives, a PDF does.
    let upload = |file: &[u8], name: &str| {
        let body =
            form(&[part("title", None, None, b"t"), part("document", Some(name), Some("application/pdf"), file)]);
        c.post(ngx_at("/api/documents/post_document/"))
            .header("content-type", form_content_type())
            .header("authorization", "Token ngx-api-token")
            .body(body)
            .send()
    };
    assert_eq!(upload(&samples::jar(), "invoice.pdf").await.unwrap().status(), 415);
    assert!(seen_at(&ngx, "/api/documents/post_document/").iter().all(|s| !s.complete));
    assert_eq!(upload(&pdf(), "invoice.pdf").await.unwrap().status(), 200);
    assert!(seen_at(&ngx, "/api/documents/post_document/").iter().any(|s| s.complete));

    // Its login form is throttled per client well below a guessing script.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = c
            .post(ngx_at("/accounts/login/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("login=admin&password=guess")
            .send()
            .await;
        statuses.push(r.unwrap().status().as_u16());
    }
    assert!(statuses[..5].iter().all(|&s| s == 200), "{statuses:?}");
    assert!(statuses[5..].iter().all(|&s| s == 429), "{statuses:?}");
    // The password typed into paperless-ngx's form is not in moat's log.
    assert!(!m.log_lines().iter().any(|l| l.contains("guess") || l.contains("ngx-api-token")));
}

#[tokio::test]
async fn paperless_gpt_session_variant_signs_its_users_in_on_a_page() {
    init_crypto();
    let pki = Pki::new();
    let gpt = named_upstream("gpt").await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("basic-users.toml");
    std::fs::write(&users, format!("basic = [{{ user = \"alice\", hash = \"{}\", roles = [] }}]\n", phc(ALICE_PW)))
        .unwrap();
    let keys = dir.path().join("session.keys");
    let (code, key, err) = moat_cmd(&["session-key"], &[]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&keys, key).unwrap();
    // The variant as the preset's comment and the README show it.
    let preset = format!("{}/config/paperless-gpt.toml", env!("CARGO_MANIFEST_DIR"));
    let (users, url) = (users.display().to_string(), gpt.url());
    let m = Moat::start_env(
        &format!(
            "include = [\"{preset}\"]\n[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{}[auth]\ndefault = \"session\"\n\
             [auth.session]\nkeys_file = \"{}\"\nbackend = \"local\"\n",
            pki.tls_toml(),
            keys.display()
        ),
        &[("MOAT_UPSTREAM__URL", url.as_str()), ("MOAT_AUTH__BASIC_FILE", users.as_str())],
    );
    let c = pki.builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c.get(m.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/.moat/login?rd=%2F");
    // The preset is in allowlist mode; the sign-in page is moat's own and still served.
    let page = c.get(m.url("/.moat/login?rd=%2F")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-moat_csrf="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();
    let body = format!("csrf={csrf}&rd=%2F&username=alice&password={}", ALICE_PW.replace(' ', "+"));
    let r = c
        .post(m.url("/.moat/login"))
        .header("cookie", format!("__Host-moat_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-moat_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();
    let r = c.get(m.url("/")).header("cookie", format!("__Host-moat_session={session}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(gpt.seen().iter().all(|s| !format!("{:?}", s.headers).contains("moat_session")));
    // The admin-only routes keep needing the admin role.
    let r = c
        .post(m.url("/api/analyze-documents"))
        .header("cookie", format!("__Host-moat_session={session}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
