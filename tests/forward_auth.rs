//! Forward auth (`auth = "forward"`) against an auth service written here
//! that follows the contract Authelia, Authentik and oauth2-proxy share: a
//! GET carrying the original request in `X-Forwarded-*` and the client's
//! cookies; 2xx with `Remote-*` headers allows, a redirect to the portal or
//! a 401 refuses.

use crate::common;

use std::time::Duration;

use common::*;
use http::Response;

const PORTAL: &str = "https://auth.example.test/";

/// An Authelia-style `/api/authz/forward-auth`: sessions by cookie, a
/// redirect to the portal for browsers, 401 for API clients, 403 for a
/// revoked session; `/slow` and `/broken` in the forwarded URI misbehave.
async fn auth_service() -> Upstream {
    Upstream::start(handler(|parts, _| async move {
        let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let uri = h("x-forwarded-uri");
        if uri.starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if uri.starts_with("/broken") {
            return Response::builder().status(500).body(full("panic: session store at 10.0.0.9:6379 down")).unwrap();
        }
        let cookie = h("cookie");
        let session = cookie.split(';').map(str::trim).find_map(|c| c.strip_prefix("authelia_session="));
        let user = match session {
            Some("alice-session") => Some(("alice", "admins,dev", "alice@example.test")),
            Some("bob-session") => Some(("bob", "dev", "bob@example.test")),
            Some("revoked-session") => {
                return Response::builder().status(403).body(full("session revoked")).unwrap();
            }
            _ => None,
        };
        match user {
            Some((name, groups, email)) => Response::builder()
                .status(200)
                .header("remote-user", name)
                .header("remote-groups", groups)
                .header("remote-email", email)
                .header("remote-name", name.to_uppercase())
                .header("x-internal-debug", "node-7")
                .body(full(""))
                .unwrap(),
            None if h("accept").contains("text/html") => {
                let target = format!("{}://{}{}", h("x-forwarded-proto"), h("x-forwarded-host"), uri);
                let rd: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
                Response::builder()
                    .status(302)
                    .header("location", format!("{PORTAL}?rd={rd}&rm={}", h("x-forwarded-method")))
                    .header("set-cookie", "authelia_flow=1; Secure; HttpOnly; SameSite=Lax")
                    .header("content-type", "text/html; charset=utf-8")
                    .body(full(format!("<a href=\"{PORTAL}\">302 Found</a>")))
                    .unwrap()
            }
            None => Response::builder()
                .status(401)
                .header("www-authenticate", "Basic realm=\"Authorization Required\"")
                .body(full("401 Unauthorized"))
                .unwrap(),
        }
    }))
    .await
}

fn config(app: &Upstream, auth: &Upstream, pki: &Pki, extra: &str) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\ndefault = \"forward\"\n[auth.forward]\nurl = \"{}/api/authz/forward-auth?authelia_url=https%3A%2F%2Fauth.example.test\"\n{extra}\n\
         [[routes]]\nname = \"admin\"\npath = \"/admin\"\nroles = [\"admins\"]\n\
         [[routes]]\nname = \"health\"\npath = \"/healthz\"\nauth = \"none\"\n",
        app.url(),
        pki.tls_toml(),
        auth.url()
    )
}

#[tokio::test]
async fn forward_auth_allows_copies_identity_and_passes_refusals_through() {
    init_crypto();
    let pki = Pki::new();
    let app = Upstream::ok().await;
    let auth = auth_service().await;
    let m = Moat::start(&config(&app, &auth, &pki, ""));
    // The redirect is asserted, not followed.
    let c = pki.builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Allowed: the identity headers come from the auth service, never from the client.
    let r = c
        .post(m.url("/docs?page=2"))
        .header("cookie", "authelia_session=alice-session; theme=dark")
        .header("remote-user", "mallory")
        .header("remote-groups", "admins")
        .header("authorization", "Bearer app-token")
        .body("the document body")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0].headers;
    assert_eq!(got.get_all("remote-user").iter().collect::<Vec<_>>(), vec!["alice"]);
    assert_eq!(got.get_all("remote-groups").iter().collect::<Vec<_>>(), vec!["admins,dev"]);
    assert_eq!(got["remote-email"], "alice@example.test");
    assert_eq!(got["remote-name"], "ALICE");
    assert!(got.get("x-internal-debug").is_none(), "only the configured headers are copied");
    assert!(got.get("authorization").is_none(), "credentials are not the app's unless forward_credentials");
    assert_eq!(seen[0].body_len, "the document body".len() as u64);
    assert_eq!(m.access_line(&id).await["user"], "alice");

    // What the auth service was asked: a GET describing the request, with its cookies, never its body.
    let asked = auth.seen();
    assert_eq!(asked.len(), 1);
    let q = &asked[0];
    assert_eq!(q.method, "GET");
    assert!(q.uri.ends_with("/api/authz/forward-auth?authelia_url=https%3A%2F%2Fauth.example.test"), "{}", q.uri);
    assert_eq!(q.body_len, 0);
    assert_eq!(q.headers["x-forwarded-method"], "POST");
    assert_eq!(q.headers["x-forwarded-proto"], "https");
    assert_eq!(q.headers["x-forwarded-host"], format!("localhost:{}", m.https.port()).as_str());
    assert_eq!(q.headers["x-forwarded-uri"], "/docs?page=2");
    assert_eq!(q.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(q.headers["x-original-url"], format!("https://localhost:{}/docs?page=2", m.https.port()).as_str());
    assert_eq!(q.headers["cookie"], "authelia_session=alice-session; theme=dark");
    assert_eq!(q.headers["authorization"], "Bearer app-token");
    assert_eq!(q.headers["x-request-id"], id.as_str());
    assert!(q.headers.get("remote-user").is_none(), "a client's claim never reaches the auth service either");

    // A browser without a session is sent to the portal, exactly as the auth service said.
    let r = c.get(m.url("/docs")).header("accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(PORTAL) && loc.contains("rd=https%3A%2F%2Flocalhost%3A") && loc.ends_with("rm=GET"),
        "{loc}"
    );
    assert_eq!(r.headers()["set-cookie"], "authelia_flow=1; Secure; HttpOnly; SameSite=Lax");
    assert!(r.headers().get("strict-transport-security").is_some(), "moat's security headers still apply");
    assert!(r.text().await.unwrap().contains("302 Found"));

    // An API client gets the 401; a revoked session the 403.
    let r = c.get(m.url("/docs")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"Authorization Required\"");
    assert_eq!(r.text().await.unwrap(), "401 Unauthorized");
    let r = c.get(m.url("/docs")).header("cookie", "authelia_session=revoked-session").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "session revoked");
    assert_eq!(app.seen().len(), 1, "no refused request reached the app");

    // Roles come from Remote-Groups.
    let r = c.get(m.url("/admin/users")).header("cookie", "authelia_session=bob-session").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(m.access_line(&id).await["reject_reason"], "forbidden");
    let r = c.get(m.url("/admin/users")).header("cookie", "authelia_session=alice-session").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.seen().len(), 2);

    // A route with auth = "none" never asks; client claims are still removed there.
    let before = auth.seen().len();
    let r = c.get(m.url("/healthz")).header("remote-user", "mallory").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(auth.seen().len(), before);
}

#[tokio::test]
async fn forward_auth_failures_are_503_and_never_allow() {
    init_crypto();
    let pki = Pki::new();
    let app = Upstream::ok().await;
    let auth = auth_service().await;
    let m = Moat::start(&config(&app, &auth, &pki, "timeout = \"400ms\"\n"));
    let c = pki.client();
    let cookie = "authelia_session=alice-session";
    for path in ["/broken", "/slow"] {
        let r = c.get(m.url(path)).header("cookie", cookie).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("10.0.0.9") && !body.contains("panic") && !body.contains(&auth.addr.to_string()),
            "{body}"
        );
        assert!(body.contains("Sign-in is unavailable"), "{body}");
        assert_eq!(m.access_line(&id).await["reject_reason"], "auth_unavailable");
    }
    // The auth service gone: still 503, never through.
    auth.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = c.get(m.url("/docs")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(app.seen().is_empty(), "the app saw a request the auth service never allowed");
    assert!(m.wait_log("forward auth unavailable", Duration::from_secs(5)).await.is_some());
}

#[tokio::test]
async fn forward_auth_cache_reuses_positive_answers_per_credentials() {
    init_crypto();
    let pki = Pki::new();
    let app = Upstream::ok().await;
    let auth = auth_service().await;
    let m = Moat::start(&config(&app, &auth, &pki, "cache_ttl = \"60s\"\n"));
    let c = pki.client();
    let alice = "authelia_session=alice-session";
    for _ in 0..3 {
        let r = c.get(m.url("/docs")).header("cookie", alice).header("remote-user", "mallory").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(auth.seen().len(), 1, "the cached answer skipped the auth call");
    for s in app.seen() {
        assert_eq!(s.headers.get_all("remote-user").iter().collect::<Vec<_>>(), vec!["alice"]);
    }
    // Other credentials are asked about; so is a request without any, every time.
    assert_eq!(
        c.get(m.url("/docs")).header("cookie", "authelia_session=bob-session").send().await.unwrap().status(),
        200
    );
    assert_eq!(auth.seen().len(), 2);
    for _ in 0..2 {
        assert_eq!(c.get(m.url("/docs")).send().await.unwrap().status(), 401);
    }
    assert_eq!(auth.seen().len(), 4);
    // A refusal is never cached: bob stays out of /admin, and is asked each time.
    for _ in 0..2 {
        let r = c.get(m.url("/admin")).header("cookie", "authelia_session=revoked-session").send().await.unwrap();
        assert_eq!(r.status(), 403);
    }
    assert_eq!(auth.seen().len(), 6);
}

#[test]
fn forward_auth_config_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("moat.toml");
    let check = |text: &str| {
        std::fs::write(&p, text).unwrap();
        moat_cmd(&["check", "--config", p.to_str().unwrap()], &[])
    };
    let (code, _, err) = check("[auth]\ndefault = \"forward\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("auth.default") && err.contains("[auth.forward]"), "{err}");
    let (code, _, err) = check("[[routes]]\nname = \"a\"\npath = \"/a\"\nauth = \"forward\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("routes[0].auth") && err.contains("[auth.forward]"), "{err}");
    let (code, _, err) =
        check("[auth.forward]\nurl = \"ftp://auth\"\n[[routes]]\nname = \"a\"\npath = \"/a\"\nauth = \"forward\"\n");
    assert_ne!(code, 0);
    assert!(err.contains("auth.forward.url"), "{err}");
    let (code, _, err) = check(
        "[auth.forward]\nurl = \"http://127.0.0.1:9091/api/verify\"\ncopy_response_headers = [\"Remote-User\", \"Host\"]\ntimeout = \"0s\"\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("auth.forward.copy_response_headers[1]") && err.contains("auth.forward.timeout"), "{err}");
    let (code, _, err) = check(
        "[auth]\ndefault = \"forward\"\n[auth.forward]\nurl = \"http://127.0.0.1:9091/api/authz/forward-auth\"\ncache_ttl = \"30s\"\n",
    );
    assert_eq!(code, 0, "{err}");
}
