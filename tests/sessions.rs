//! Sign-in sessions (`auth = "session"`): moat's own sign-in page, the
//! sealed `__Host-moat_session` cookie, key rotation, lifetimes, throttling,
//! open-redirect refusal, and both backends (the `[auth] basic` users and
//! paperless-ngx's DRF token endpoint, written here to its contract).

use crate::common;

use std::time::Duration;

use common::*;
use http::Response;

const SESSION: &str = "__Host-moat_session";
const CSRF: &str = "__Host-moat_csrf";

/// A urlencoded form body, as a browser posts it.
trait FormExt {
    fn form_fields(self, fields: &[(&str, &str)]) -> Self;
}

impl FormExt for reqwest::RequestBuilder {
    fn form_fields(self, fields: &[(&str, &str)]) -> Self {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            f.append_pair(k, v);
        }
        self.header("content-type", "application/x-www-form-urlencoded").body(f.finish())
    }
}

fn client(pki: &Pki) -> reqwest::Client {
    pki.builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn new_key() -> String {
    let (code, out, err) = moat_cmd(&["session-key"], &[]);
    assert_eq!(code, 0, "{err}");
    let k = out.trim().to_string();
    assert!(k.len() >= 43, "{k}");
    k
}

/// The value of cookie `name` set by a response, if any.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')).map(|rest| rest.to_string()))
}

/// The hidden `csrf` field of a page.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("no csrf field") + "name=\"csrf\" value=\"".len();
    html[at..at + 32].to_string()
}

/// Opens the sign-in page and posts `fields` with its CSRF token; the POST's response.
async fn sign_in(c: &reqwest::Client, m: &Moat, fields: &[(&str, &str)]) -> reqwest::Response {
    let page = c.get(m.url("/.moat/login?rd=%2Fdocs%3Fpage%3D2")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf_cookie = set_cookie(&page, CSRF).expect("csrf cookie");
    let csrf_cookie = csrf_cookie.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let token = csrf_field(&html);
    assert_eq!(token, csrf_cookie);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
    if !fields.iter().any(|(k, _)| *k == "rd") {
        form.push(("rd", "/docs?page=2"));
    }
    form.extend_from_slice(fields);
    c.post(m.url("/.moat/login"))
        .header("cookie", format!("{CSRF}={csrf_cookie}"))
        .form_fields(&form)
        .send()
        .await
        .unwrap()
}

/// The session cookie's value from a successful sign-in.
fn session_of(r: &reqwest::Response) -> String {
    let v = set_cookie(r, SESSION).expect("no session cookie");
    v.split(';').next().unwrap().to_string()
}

fn app() -> Handler {
    handler(|_, _| async {
        Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(full("<!doctype html><title>paperless-gpt</title><h1 id=\"app\">paperless-gpt</h1>"))
            .unwrap()
    })
}

fn local_config(pki: &Pki, up: &Upstream, keys: &std::path::Path, extra: &str) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\ndefault = \"session\"\nbasic = [{{ user = \"alice\", hash = \"{}\", roles = [\"editor\"] }}]\n\
         max_failures = {{ count = 3, per = \"1m\" }}\n[auth.session]\nkeys_file = \"{}\"\n{extra}\n\
         [[routes]]\nname = \"admin\"\npath = \"/admin\"\nroles = [\"admin\"]\n\
         [[routes]]\nname = \"health\"\npath = \"/healthz\"\nauth = \"none\"\n",
        up.url(),
        pki.tls_toml(),
        hash_password("correct horse battery"),
        keys.display()
    )
}

/// moat with local sessions (one fresh key) in front of the app page.
async fn start_local(extra: &str) -> (Pki, Upstream, Moat, tempfile::TempDir) {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(app()).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session.keys");
    std::fs::write(&keys, format!("{}\n", new_key())).unwrap();
    let m = Moat::start(&local_config(&pki, &up, &keys, extra));
    (pki, up, m, dir)
}

#[tokio::test]
async fn local_users_sign_in_with_a_sealed_cookie_and_sign_out() {
    let (pki, up, m, _dir) = start_local("").await;
    let c = client(&pki);

    // Not signed in: a browser is sent to the sign-in page with where it was going; an API client gets 401.
    let r = c.get(m.url("/docs?page=2")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/.moat/login?rd=%2Fdocs%3Fpage%3D2");
    let r = c.get(m.url("/docs")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = c.post(m.url("/docs")).header("accept", "text/html").body("x").send().await.unwrap();
    assert_eq!(r.status(), 401, "only a GET is redirected");

    // The sign-in page is moat's own: its CSP allows nothing but itself.
    let page = c.get(m.url("/.moat/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-") && csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"), "{html}");

    // Wrong password: the page again, no session.
    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "wrong horse")]).await;
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, SESSION).is_none());
    assert!(r.text().await.unwrap().contains("Wrong user name or password."));
    let r = sign_in(&c, &m, &[("username", "nobody"), ("password", "x")]).await;
    assert_eq!(r.status(), 401);

    // A form without its CSRF cookie, or posted from another origin, is refused.
    let r = c
        .post(m.url("/.moat/login"))
        .form_fields(&[
            ("csrf", "0123456789abcdef0123456789abcdef"),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let t = "0123456789abcdef0123456789abcdef";
    let r = c
        .post(m.url("/.moat/login"))
        .header("cookie", format!("{CSRF}={t}"))
        .header("origin", "https://evil.example")
        .form_fields(&[("csrf", t), ("username", "alice"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, SESSION).is_none());

    // Signed in: back to where the browser was going, with a cookie only moat can read.
    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/docs?page=2");
    let raw = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(SESSION))
        .unwrap();
    assert!(raw.ends_with("; Path=/; Max-Age=43200; Secure; HttpOnly; SameSite=Lax"), "{raw}");
    let session = session_of(&r);
    assert!(!session.contains("alice"), "the cookie is sealed, not readable");
    let r = c
        .get(m.url("/docs"))
        .header("cookie", format!("theme=dark; {SESSION}={session}; lang=en"))
        .header("authorization", "Basic YWxpY2U6eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(m.access_line(&id).await["user"], "alice");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "the sign-in itself never reached the app");
    assert_eq!(seen[0].headers["cookie"], "theme=dark; lang=en", "moat's cookie is cut out, the app's kept");
    assert!(seen[0].headers.get("authorization").is_none());

    // Roles still apply: alice is an editor, not an admin.
    let r = c.get(m.url("/admin")).header("cookie", format!("{SESSION}={session}")).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // A tampered cookie is refused and cleared.
    let mut bad = session.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let r = c
        .get(m.url("/docs"))
        .header("accept", "text/html")
        .header("cookie", format!("{SESSION}={bad}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(set_cookie(&r, SESSION).is_some_and(|v| v.contains("Max-Age=0")));

    // Open redirects: the return path stays on this origin.
    for rd in ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil.example"] {
        let r = sign_in(&c, &m, &[("username", "alice"), ("password", "correct horse battery"), ("rd", rd)]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/", "{rd}");
    }
    let page = c.get(m.url("/.moat/login?rd=https%3A%2F%2Fevil.example%2F")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("name=\"rd\" value=\"/\""));

    // Sign out: a form posting to the sign-out path; the cookie is cleared and the browser sent to sign in.
    let page = c.get(m.url("/.moat/logout")).header("cookie", format!("{SESSION}={session}")).send().await.unwrap();
    let csrf = set_cookie(&page, CSRF).unwrap().split(';').next().unwrap().to_string();
    let token = csrf_field(&page.text().await.unwrap());
    let r = c
        .post(m.url("/.moat/logout"))
        .header("cookie", format!("{SESSION}={session}; {CSRF}={csrf}"))
        .form_fields(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/.moat/login");
    assert!(set_cookie(&r, SESSION).is_some_and(|v| v.starts_with("; ") || v.contains("Max-Age=0")));

    // Neither the password nor the cookie is in any log line or anything the app received.
    let logs = m.log_lines().join("\n");
    for secret in ["correct horse battery", "wrong horse", session.as_str()] {
        assert!(!logs.contains(secret), "{secret} logged");
        for s in up.seen() {
            for v in s.headers.values() {
                assert!(!v.to_str().unwrap_or("").contains(secret));
            }
        }
    }
    assert!(logs.contains("signed in") && logs.contains("sign-in failed"));
}

#[tokio::test]
async fn wrong_passwords_are_throttled_even_before_the_right_one() {
    let (pki, _up, m, _dir) = start_local("").await;
    let c = client(&pki);
    for _ in 0..3 {
        assert_eq!(sign_in(&c, &m, &[("username", "alice"), ("password", "guess")]).await.status(), 401);
    }
    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(set_cookie(&r, SESSION).is_none());
    assert!(r.text().await.unwrap().contains("Too many failed sign-in attempts"));
}

/// Counts "config reloaded" lines.
fn reloads(m: &Moat) -> usize {
    m.log_lines().iter().filter(|l| l.contains("config reloaded")).count()
}

async fn wait_reloads(m: &Moat, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while reloads(m) < n {
        assert!(std::time::Instant::now() < deadline, "no reload after the keys file changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn session_keys_rotate_without_signing_anyone_out_and_sessions_expire() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(app()).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session.keys");
    let (old, new) = (new_key(), new_key());
    std::fs::write(&keys, format!("{old}\n")).unwrap();
    let m = Moat::start(&local_config(&pki, &up, &keys, ""));
    let c = client(&pki);
    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "correct horse battery")]).await;
    let under_old = session_of(&r);
    let get = |cookie: String| {
        c.get(m.url("/docs")).header("accept", "text/html").header("cookie", format!("{SESSION}={cookie}")).send()
    };
    assert_eq!(get(under_old.clone()).await.unwrap().status(), 200);

    // A new first key: cookies sealed with the old one still open, and come back re-sealed with the new one.
    std::fs::write(&keys, format!("# newest first\n{new}\n{old}\n")).unwrap();
    wait_reloads(&m, 1).await;
    let r = get(under_old.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let under_new = session_of(&r);
    assert_ne!(under_new, under_old);

    // The old key retired: its cookies are refused, the re-sealed one is not.
    std::fs::write(&keys, format!("{new}\n")).unwrap();
    wait_reloads(&m, 2).await;
    assert_eq!(get(under_old).await.unwrap().status(), 302);
    assert_eq!(get(under_new).await.unwrap().status(), 200);

    // A bad keys file is refused at reload; the running keys stay.
    std::fs::write(&keys, "not a key\n").unwrap();
    assert!(m.wait_log("auth.session.keys_file", Duration::from_secs(15)).await.is_some());
}

#[tokio::test]
async fn idle_sessions_and_old_sessions_end() {
    let (pki, _up, m, _dir) = start_local("idle_timeout = \"2s\"\nlifetime = \"2s\"\n").await;
    let c = client(&pki);
    let session = session_of(&sign_in(&c, &m, &[("username", "alice"), ("password", "correct horse battery")]).await);
    let get = || {
        c.get(m.url("/docs"))
            .header("accept", "application/json")
            .header("cookie", format!("{SESSION}={session}"))
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = get().await.unwrap();
    assert_eq!(r.status(), 401, "an expired session is refused");
    assert!(set_cookie(&r, SESSION).is_some_and(|v| v.contains("Max-Age=0")));
}

#[test]
fn session_config_mistakes_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("moat.toml");
    let check = |text: &str| {
        std::fs::write(&p, text).unwrap();
        moat_cmd(&["check", "--config", p.to_str().unwrap()], &[])
    };
    let (code, _, err) = check("[auth]\ndefault = \"session\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("auth.default") && err.contains("[auth.session]"), "{err}");
    let (code, _, err) = check("[[routes]]\nname = \"a\"\npath = \"/a\"\nauth = \"session\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("routes[0].auth") && err.contains("[auth.session]"), "{err}");
    let (code, _, err) = check("[auth.session]\nkeys_file = \"missing.keys\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("auth.session.keys_file") && err.contains("missing.keys"), "{err}");
    std::fs::write(dir.path().join("short.keys"), "c2hvcnQ=\n").unwrap();
    let (code, _, err) = check("[auth.session]\nkeys_file = \"short.keys\"\nbackend = \"paperless\"\nlifetime = \"1m\"\nidle_timeout = \"1h\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("line 1") && err.contains("32 bytes"), "{err}");
    assert!(err.contains("auth.session.backend") && err.contains("auth.session.lifetime"), "{err}");
    std::fs::write(dir.path().join("good.keys"), format!("{}\n", new_key())).unwrap();
    let (code, _, err) = check(
        "[auth]\ndefault = \"session\"\n[auth.session]\nkeys_file = \"good.keys\"\nbackend = \"paperless\"\n[auth.paperless]\nurl = \"http://127.0.0.1:8000\"\ngroup = \"gpt-users\"\n",
    );
    assert_eq!(code, 0, "{err}");
}

/// paperless-ngx's token endpoint (DRF `ObtainAuthToken` with paperless's
/// MFA `code`), `/api/groups/?name__iexact=` and `/api/ui_settings/`.
async fn paperless() -> Upstream {
    Upstream::start(handler(|parts, body| async move {
        let json = |status: u16, v: serde_json::Value| {
            Response::builder().status(status).header("content-type", "application/json").body(full(v.to_string())).unwrap()
        };
        let token = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let user_of = |t: &str| match t {
            "Token tok-alice-5f2a" => Some(("alice", vec![7, 9])),
            "Token tok-bob-77c1" => Some(("bob", vec![3])),
            "Token tok-carol-0d9e" => Some(("carol", vec![7])),
            _ => None,
        };
        match (parts.method.as_str(), parts.uri.path()) {
            ("POST", "/api/token/") => {
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
                let tok = match (get("username"), get("password"), get("code")) {
                    ("alice", "paperless-pass", _) => "tok-alice-5f2a",
                    ("bob", "paperless-pass", _) => "tok-bob-77c1",
                    ("carol", "paperless-pass", "") => {
                        return json(400, serde_json::json!({"non_field_errors": ["MFA code is required"]}));
                    }
                    ("carol", "paperless-pass", "123456") => "tok-carol-0d9e",
                    _ => {
                        return json(
                            400,
                            serde_json::json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
                        );
                    }
                };
                json(200, serde_json::json!({ "token": tok }))
            }
            ("GET", "/api/groups/") => match user_of(&token) {
                None => json(401, serde_json::json!({"detail": "Invalid token."})),
                Some(_) => {
                    let q = parts.uri.query().unwrap_or("");
                    let results = if q == "name__iexact=gpt-users" {
                        serde_json::json!([{ "id": 7, "name": "gpt-users", "permissions": [] }])
                    } else {
                        serde_json::json!([])
                    };
                    json(200, serde_json::json!({ "count": results.as_array().unwrap().len(), "next": null, "previous": null, "results": results }))
                }
            },
            ("GET", "/api/ui_settings/") => match user_of(&token) {
                None => json(401, serde_json::json!({"detail": "Invalid token."})),
                Some((name, groups)) => json(
                    200,
                    serde_json::json!({"user": {"id": 1, "username": name, "is_staff": false, "is_superuser": name == "alice", "groups": groups}, "settings": {}, "permissions": []}),
                ),
            },
            _ => json(404, serde_json::json!({"detail": "Not found."})),
        }
    }))
    .await
}

fn paperless_config(pki: &Pki, up: &Upstream, ngx: &Upstream, keys: &std::path::Path) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\ndefault = \"session\"\n[auth.session]\nkeys_file = \"{}\"\nbackend = \"paperless\"\n\
         [auth.paperless]\nurl = \"{}\"\ngroup = \"gpt-users\"\n\
         [[routes]]\nname = \"gpt-users\"\npath = \"/members\"\nroles = [\"gpt-users\"]\n\
         [[routes]]\nname = \"gpt-admin\"\npath = \"/admin\"\nroles = [\"admin\"]\n",
        up.url(),
        pki.tls_toml(),
        keys.display(),
        ngx.url()
    )
}

#[tokio::test]
async fn paperless_accounts_sign_in_through_the_token_endpoint() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(app()).await;
    let ngx = paperless().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session.keys");
    std::fs::write(&keys, format!("{}\n", new_key())).unwrap();
    let m = Moat::start(&paperless_config(&pki, &up, &ngx, &keys));
    let c = client(&pki);

    let page = c.get(m.url("/.moat/login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"code\""), "the paperless form has a field for the one-time code");

    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "wrong")]).await;
    assert_eq!(r.status(), 401);
    let r = sign_in(&c, &m, &[("username", "bob"), ("password", "paperless-pass")]).await;
    assert_eq!(r.status(), 403, "bob is not in gpt-users");
    assert!(r.text().await.unwrap().contains("may not use this service"));
    let r = sign_in(&c, &m, &[("username", "carol"), ("password", "paperless-pass")]).await;
    assert_eq!(r.status(), 401, "carol needs her one-time code");
    let r = sign_in(&c, &m, &[("username", "carol"), ("password", "paperless-pass"), ("code", "123456")]).await;
    assert_eq!(r.status(), 303);
    let carol = session_of(&r);
    let r = c.get(m.url("/members/x")).header("cookie", format!("{SESSION}={carol}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(m.url("/admin/x")).header("cookie", format!("{SESSION}={carol}")).send().await.unwrap();
    assert_eq!(r.status(), 403, "carol is no superuser");

    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "paperless-pass")]).await;
    assert_eq!(r.status(), 303);
    let all_headers: String =
        r.headers().iter().map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or(""))).collect::<String>();
    assert!(!all_headers.contains("tok-alice"), "the paperless token never goes to the browser");
    let session = session_of(&r);
    let body = r.text().await.unwrap();
    assert!(!body.contains("tok-alice"));
    let r = c.get(m.url("/members/x")).header("cookie", format!("{SESSION}={session}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the paperless group is a role");
    let r = c.get(m.url("/admin/x")).header("cookie", format!("{SESSION}={session}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a paperless superuser is an admin");
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(m.access_line(&id).await["user"], "alice");

    // What paperless-ngx was asked, and that the app never saw a token, a password or moat's cookie.
    let asked = ngx.seen();
    let token_calls: Vec<_> = asked.iter().filter(|s| s.uri.ends_with("/api/token/")).collect();
    assert_eq!(token_calls.len(), 5);
    assert_eq!(token_calls[0].method, "POST");
    assert_eq!(token_calls[0].headers["content-type"], "application/x-www-form-urlencoded");
    assert!(asked
        .iter()
        .any(|s| s.uri.ends_with("/api/ui_settings/") && s.headers["authorization"] == "Token tok-alice-5f2a"));
    for s in up.seen() {
        let text = format!("{:?}", s.headers);
        assert!(!text.contains("tok-") && !text.contains("paperless-pass") && !text.contains(&session), "{text}");
    }
    let logs = m.log_lines().join("\n");
    assert!(!logs.contains("paperless-pass") && !logs.contains("tok-alice") && !logs.contains(&session));

    // paperless-ngx down: 503 on the page, not a sign-in.
    ngx.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = sign_in(&c, &m, &[("username", "alice"), ("password", "paperless-pass")]).await;
    assert_eq!(r.status(), 503);
    assert!(set_cookie(&r, SESSION).is_none());
}

// ---------------------------------------------------------------- a real browser

/// A W3C WebDriver session on chromedriver (headless Chromium), spoken over
/// plain HTTP on 127.0.0.1.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// None when chromedriver is not installed (outside CI).
    async fn start() -> Option<Self> {
        let _ = chromium()?;
        let bin = ["chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
        let Some(bin) = bin else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("chromedriver is required under CI=true (apt-get install chromium-driver)");
            }
            eprintln!("SKIPPED: chromedriver is not installed (apt-get install chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = std::process::Command::new(bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let v: serde_json::Value =
                    serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--no-first-run", "--ignore-certificate-errors",
                format!("--user-data-dir={}", profile.path().display()),
            ]}
        }}});
        let r = http
            .post(format!("{base}/session"))
            .header("content-type", "application/json")
            .body(caps.to_string())
            .send()
            .await
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let session =
            r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_string();
        Some(Self { driver, base, session, http, _profile: profile })
    }

    async fn cmd(&self, method: http::Method, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method != http::Method::GET {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        let r = req.send().await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd(http::Method::POST, "/url", serde_json::json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.cmd(http::Method::GET, "/url", serde_json::Value::Null).await.as_str().unwrap().to_string()
    }

    async fn source(&self) -> String {
        self.cmd(http::Method::GET, "/source", serde_json::Value::Null).await.as_str().unwrap().to_string()
    }

    async fn refresh(&self) {
        self.cmd(http::Method::POST, "/refresh", serde_json::json!({})).await;
    }

    async fn element(&self, css: &str) -> String {
        let v =
            self.cmd(http::Method::POST, "/element", serde_json::json!({"using": "css selector", "value": css})).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.cmd(http::Method::POST, &format!("/element/{e}/value"), serde_json::json!({ "text": text })).await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.cmd(http::Method::POST, &format!("/element/{e}/click"), serde_json::json!({})).await;
    }

    /// Waits (bounded) until the page's URL contains `part`.
    async fn wait_url(&self, part: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let u = self.url().await;
            if u.contains(part) {
                return u;
            }
            assert!(std::time::Instant::now() < deadline, "the browser is at {u}, not at {part}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Signs in through the page as a person would, reaches the app, reloads,
/// signs out and is sent back to the sign-in page.
async fn browser_round_trip(b: &Browser, m: &Moat, user: &str, pass: &str) {
    b.go(&m.url("/documents?tag=inbox")).await;
    let at = b.wait_url("/.moat/login").await;
    assert!(at.contains("rd=%2Fdocuments%3Ftag%3Dinbox"), "{at}");
    b.type_into("#username", user).await;
    b.type_into("#password", pass).await;
    b.click("#sign-in").await;
    let at = b.wait_url("/documents").await;
    assert!(at.ends_with("/documents?tag=inbox"), "{at}");
    assert!(b.source().await.contains("id=\"app\""), "the app's page after sign-in");
    b.refresh().await;
    assert!(b.source().await.contains("id=\"app\""), "still signed in after a reload");
    assert!(!b.url().await.contains("/.moat/login"));
    b.go(&m.url("/.moat/logout")).await;
    b.click("#sign-out").await;
    b.wait_url("/.moat/login").await;
    b.go(&m.url("/documents")).await;
    b.wait_url("/.moat/login?rd=%2Fdocuments").await;
    assert!(b.source().await.contains("id=\"sign-in\""), "signed out: the sign-in page again");
}

#[tokio::test]
async fn a_real_browser_signs_in_reloads_and_signs_out_with_both_backends() {
    let Some(browser) = Browser::start().await else { return };
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(app()).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("session.keys");
    std::fs::write(&keys, format!("{}\n", new_key())).unwrap();

    let m = Moat::start(&local_config(&pki, &up, &keys, ""));
    browser_round_trip(&browser, &m, "alice", "correct horse battery").await;
    drop(m);

    let ngx = paperless().await;
    let m = Moat::start(&paperless_config(&pki, &up, &ngx, &keys));
    browser_round_trip(&browser, &m, "alice", "paperless-pass").await;
    assert!(ngx.seen().iter().any(|s| s.uri.ends_with("/api/token/")));
    for s in up.seen() {
        let text = format!("{:?}", s.headers);
        assert!(!text.contains(SESSION) && !text.contains("tok-alice"), "{text}");
    }
}
