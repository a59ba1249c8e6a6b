//! Access control end to end: CIDR allow/deny, API keys, basic auth, roles,
//! credential stripping, and failed-attempt throttling.

use crate::common;

use std::time::Duration;

use common::*;

fn key_sha(k: &str) -> String {
    sha256_hex(k.as_bytes())
}

#[tokio::test]
async fn cidr_allow_and_deny() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\nallow = [\"192.0.2.0/24\", \"2001:db8::/32\", \"127.0.0.1/32\"]\ndeny = [\"192.0.2.66/32\", \"2001:db8:bad::/48\"]\n\
         [[routes]]\nname = \"metrics\"\npath = \"/internal\"\nallow = [\"10.0.0.0/8\"]\n",
        up.url(),
        pki.tls_toml()
    ));
    let c = pki.client();
    let get = |path: &str, xff: &str| c.get(m.url(path)).header("x-forwarded-for", xff).send();
    assert_eq!(get("/", "192.0.2.10").await.unwrap().status(), 200);
    assert_eq!(get("/", "::ffff:192.0.2.10").await.unwrap().status(), 200);
    assert_eq!(get("/", "2001:db8:1::1").await.unwrap().status(), 200);
    let r = get("/", "192.0.2.66").await.unwrap();
    assert_eq!(r.status(), 403);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(m.access_line(&id).await["reject_reason"], "ip_denied");
    assert_eq!(get("/", "::ffff:192.0.2.66").await.unwrap().status(), 403);
    assert_eq!(get("/", "2001:db8:bad::5").await.unwrap().status(), 403);
    assert_eq!(get("/", "198.51.100.1").await.unwrap().status(), 403);
    // Route override: only 10/8 may reach /internal.
    assert_eq!(get("/internal", "192.0.2.10").await.unwrap().status(), 403);
    assert_eq!(get("/internal", "10.1.2.3").await.unwrap().status(), 200);
}

#[tokio::test]
async fn untrusted_forwarded_for_cannot_bypass_a_deny() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[client_ip]\ndeny = [\"127.0.0.0/8\", \"::1/128\"]\n",
        up.url(),
        pki.tls_toml()
    ));
    let r = pki.client().get(m.url("/")).header("x-forwarded-for", "8.8.8.8").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn api_keys_by_header_and_bearer_removed_before_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!("api_keys = [{{ name = \"filekey\", sha256 = \"{}\" }}]\n", key_sha("from-file-key-2")),
    )
    .unwrap();
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\ndefault = \"api_key\"\napi_keys = [{{ name = \"ingest\", sha256 = \"{}\", roles = [\"upload\"] }}]\napi_keys_file = \"{}\"\n\
         [[routes]]\nname = \"admin\"\npath = \"/admin\"\nroles = [\"admin\"]\n[[routes]]\nname = \"fwd\"\npath = \"/fwd\"\nforward_credentials = true\n[[routes]]\nname = \"open\"\npath = \"/open\"\nauth = \"none\"\n",
        up.url(),
        pki.tls_toml(),
        key_sha("k3y-for-ingest-1"),
        keys.display()
    ));
    let c = pki.client();
    let r = c.get(m.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer realm="));
    assert_eq!(c.get(m.url("/docs")).header("x-api-key", "wrong").send().await.unwrap().status(), 401);

    let r = c.get(m.url("/docs")).header("x-api-key", "k3y-for-ingest-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(m.access_line(&id).await["user"], "ingest");
    let seen = up.seen().pop().unwrap();
    assert!(seen.headers.get("x-api-key").is_none(), "the key reached the upstream");

    let r = c.get(m.url("/docs")).bearer_auth("from-file-key-2").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(up.seen().pop().unwrap().headers.get("authorization").is_none());

    // Roles.
    assert_eq!(c.get(m.url("/admin")).header("x-api-key", "k3y-for-ingest-1").send().await.unwrap().status(), 403);
    // forward_credentials keeps the header.
    assert_eq!(c.get(m.url("/fwd")).header("x-api-key", "k3y-for-ingest-1").send().await.unwrap().status(), 200);
    assert_eq!(up.seen().pop().unwrap().headers["x-api-key"], "k3y-for-ingest-1");
    assert_eq!(c.get(m.url("/open")).send().await.unwrap().status(), 200);

    // The key never appears in moat's output.
    assert!(!m.log_lines().join("\n").contains("k3y-for-ingest-1"));
}

#[tokio::test]
async fn basic_auth_challenge_success_and_wrong_password() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let hash = hash_password("Tr0ub4dor&3 horse");
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\ndefault = \"basic\"\nrealm = \"paperless\"\nbasic = [{{ user = \"alice\", hash = \"{hash}\", roles = [\"admin\"] }}]\n",
        up.url(),
        pki.tls_toml()
    ));
    let c = pki.client();
    let r = c.get(m.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"paperless\", charset=\"UTF-8\"");
    let r = c.get(m.url("/")).basic_auth("alice", Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(m.url("/")).basic_auth("mallory", Some("Tr0ub4dor&3 horse")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for _ in 0..3 {
        let r = c.get(m.url("/")).basic_auth("alice", Some("Tr0ub4dor&3 horse")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(up.seen().iter().all(|s| s.headers.get("authorization").is_none()));
    let logs = m.log_lines().join("\n");
    assert!(!logs.contains("Tr0ub4dor"), "a password reached the log");
    assert!(logs.contains("\"user_hash\":"), "failed attempts are logged with a hash of the user name");
    assert!(!logs.contains("mallory"), "a failed user name reached the log verbatim");
}

#[tokio::test]
async fn throttled_after_failures_then_recovers() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[rate_limit]\ndefault = \"off\"\n[auth]\ndefault = \"api_key\"\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\nmax_failures = {{ count = 3, per = \"2s\" }}\n",
        up.url(),
        pki.tls_toml(),
        key_sha("right-key")
    ));
    let c = pki.client();
    for _ in 0..3 {
        assert_eq!(c.get(m.url("/")).header("x-api-key", "bad").send().await.unwrap().status(), 401);
    }
    // Even the right key is refused while the window lasts.
    let r = c.get(m.url("/")).header("x-api-key", "right-key").send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(m.access_line(&id).await["reject_reason"], "auth_throttled");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(c.get(m.url("/")).header("x-api-key", "right-key").send().await.unwrap().status(), 200);
    let metrics =
        reqwest::Client::builder().no_proxy().build().unwrap().get(m.admin_url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("moat_rejections_total{route=\"unmatched\",reason=\"auth_failed\"} 3"), "{text}");
}

#[test]
fn hash_password_output_is_a_valid_config_hash() {
    let h = hash_password("s3cret");
    assert!(h.starts_with("$argon2id$v=19$"), "{h}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("moat.toml");
    std::fs::write(&p, format!("[auth]\nbasic = [{{ user = \"a\", hash = \"{h}\" }}]\n")).unwrap();
    let (code, _, err) = moat_cmd(&["check", "--config", p.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(
        &p,
        "[auth]\nbasic = [{ user = \"a\", hash = \"plaintext\" }]\napi_keys = [{ name = \"x\", sha256 = \"abc\" }]\n",
    )
    .unwrap();
    let (code, _, err) = moat_cmd(&["check", "--config", p.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("auth.basic[0].hash") && err.contains("auth.api_keys[0].sha256"), "{err}");
}
