//! Operations end to end: Prometheus metrics, live reload (file change,
//! SIGHUP, invalid config), readiness, and `moat health`.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::Response;

fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find_map(|s| {
        let ok = s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
        match (&s.value, ok) {
            (
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v),
                true,
            ) => Some(*v),
            _ => None,
        }
    })
}

#[tokio::test]
async fn metrics_count_requests_and_rejections_with_bounded_labels() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nrate_limit = {{ rate = \"2/min\", burst = 2 }}\n\
         [[routes]]\nname = \"upload\"\npath = \"/upload\"\nmax_body = \"1KiB\"\n\
         [[routes]]\nname = \"private\"\npath = \"/private\"\nauth = \"api_key\"\n",
        up.url(),
        pki.tls_toml(),
        sha256_hex(b"good-key")
    ));
    let c = pki.client();
    for _ in 0..3 {
        c.get(m.url("/api/items/12345?x=1")).send().await.unwrap();
    }
    c.post(m.url("/other")).header("origin", "https://evil.example").body("x").send().await.unwrap();
    c.post(m.url("/upload")).body(vec![0u8; 4096]).send().await.unwrap();
    c.get(m.url("/private")).header("x-api-key", "bad").send().await.unwrap();
    c.get(m.url("/private")).header("x-api-key", "good-key").send().await.unwrap();

    let text = scrape(&m).await;
    let lines: Vec<std::io::Result<String>> = text.lines().map(|l| Ok(l.to_string())).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("the exposition parses");
    let req = |route: &str, method: &str, status: &str| {
        sample(&scrape, "moat_requests_total", &[("route", route), ("method", method), ("status", status)])
    };
    let rej =
        |route: &str, reason: &str| sample(&scrape, "moat_rejections_total", &[("route", route), ("reason", reason)]);
    assert_eq!(req("api", "GET", "200"), Some(2.0));
    assert_eq!(req("api", "GET", "429"), Some(1.0));
    assert_eq!(rej("api", "rate_limited"), Some(1.0));
    assert_eq!(rej("unmatched", "cors_origin"), Some(1.0));
    assert_eq!(rej("upload", "body_too_large"), Some(1.0));
    assert_eq!(rej("private", "auth_failed"), Some(1.0));
    assert_eq!(req("private", "GET", "200"), Some(1.0));
    // Labels are route names, never raw paths.
    assert!(!text.contains("12345"), "a raw path became a label");
    assert!(
        text.contains("moat_request_duration_seconds_bucket{le=\"0.0005\",route=\"api\"}")
            || text.contains("moat_request_duration_seconds_bucket{route=\"api\",le=\"0.0005\"}"),
        "{text}"
    );
    for family in [
        "moat_upstream_errors",
        "moat_active_connections",
        "moat_tls_handshake_errors_total",
        "moat_tls_cert_not_after_seconds",
        "moat_config_reloads",
        "moat_ratelimit_tracked_keys",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(family), "{family} missing");
    }
    assert!(sample(&scrape, "moat_tls_cert_not_after_seconds", &[]).unwrap() > 1.7e9);
    // A test reads stdout as fast as moat writes: no line was dropped, and the counter says so.
    assert_eq!(sample(&scrape, "moat_log_lines_dropped_total", &[]), Some(0.0));

    // The public listener does not serve moat's metrics: /metrics is just another upstream path.
    let r = c.get(m.url("/metrics")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok from upstream");
    assert_eq!(up.seen().last().unwrap().uri, "/metrics");
}

fn write_atomic(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn config_change_on_disk_applies_under_load_without_failures() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let base = format!("[upstream]\nurl = \"{}\"\n{}[rate_limit]\ndefault = \"off\"\n", up.url(), pki.tls_toml());
    let v1 = format!("{base}[security_headers]\ncontent_security_policy = \"default-src 'none'\"\n[[routes]]\nname = \"limited\"\npath = \"/limited\"\nrate_limit = {{ rate = \"2/min\", burst = 2 }}\n");
    let m = Moat::start(&v1);
    let c = pki.builder().http2_prior_knowledge().build().unwrap();
    // Use the limited route's bucket up.
    for _ in 0..2 {
        assert_eq!(c.get(m.url("/limited")).send().await.unwrap().status(), 200);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (c, url, stop) = (c.clone(), m.url("/load"), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut csp = std::collections::BTreeSet::new();
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok += 1;
                        csp.insert(r.headers()["content-security-policy"].to_str().unwrap().to_string());
                    }
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed, csp)
        }));
    }
    up.wait_heads(50).await;
    let v2 = v1.replace("default-src 'none'", "default-src 'self'");
    write_atomic(&m.config_path, &v2);
    let applied = async {
        for _ in 0..200 {
            let r = c.get(m.url("/probe")).send().await.unwrap();
            if r.headers()["content-security-policy"] == "default-src 'self'" {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(applied.await, "the changed config was not applied");
    let before = up.heads.load(Ordering::SeqCst);
    up.wait_heads(before + 50).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    let mut seen_csp = std::collections::BTreeSet::new();
    for w in workers {
        let (ok, failed, csp) = w.await.unwrap();
        assert!(failed.is_empty(), "requests failed during the reload: {failed:?}");
        total += ok;
        seen_csp.extend(csp);
    }
    assert!(total > 100);
    assert!(seen_csp.contains("default-src 'none'") && seen_csp.contains("default-src 'self'"), "{seen_csp:?}");
    // The limited route's rule did not change: its bucket survived the swap.
    assert_eq!(c.get(m.url("/limited")).send().await.unwrap().status(), 429);

    // An invalid change is refused; the previous config keeps serving.
    write_atomic(&m.config_path, &format!("{v2}[limits]\nidle_timeout = \"soonish\"\n"));
    let line = m.wait_log("config reload refused", Duration::from_secs(10)).await.expect("no refusal logged");
    assert!(line.contains("limits.idle_timeout"), "{line}");
    let r = c.get(m.url("/probe")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-security-policy"], "default-src 'self'");
    let text = scrape(&m).await;
    assert!(text.contains("moat_config_reloads_total{result=\"error\"} 1"), "{text}");
    assert!(text.contains("moat_config_reloads_total{result=\"ok\"}"), "{text}");
}

#[tokio::test]
async fn sighup_reloads_secrets_files() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let secrets = tempfile::tempdir().unwrap();
    let keys = secrets.path().join("keys.toml");
    std::fs::write(&keys, format!("api_keys = [{{ name = \"old\", sha256 = \"{}\" }}]\n", sha256_hex(b"old-key")))
        .unwrap();
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\n{}[auth]\ndefault = \"api_key\"\napi_keys_file = \"{}\"\n",
        up.url(),
        pki.tls_toml(),
        keys.display()
    ));
    let c = pki.client();
    assert_eq!(c.get(m.url("/")).header("x-api-key", "new-key").send().await.unwrap().status(), 401);
    std::fs::write(&keys, format!("api_keys = [{{ name = \"new\", sha256 = \"{}\" }}]\n", sha256_hex(b"new-key")))
        .unwrap();
    m.signal("HUP");
    assert!(m.wait_log("config reloaded", Duration::from_secs(10)).await.is_some(), "SIGHUP did not reload");
    assert_eq!(c.get(m.url("/")).header("x-api-key", "new-key").send().await.unwrap().status(), 200);
    assert_eq!(c.get(m.url("/")).header("x-api-key", "old-key").send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn readiness_reads_the_health_json_and_moat_health_probes() {
    init_crypto();
    let pki = Pki::new();
    let healthy = Arc::new(AtomicBool::new(true));
    let h = healthy.clone();
    let up = Upstream::start(handler(move |parts, _| {
        let h = h.clone();
        async move {
            if parts.uri.path() == "/api/v1/health" {
                // Like MinerU-API: 200 either way, the body says whether it is healthy.
                let body = if h.load(Ordering::SeqCst) {
                    "{\"status\":\"healthy\",\"queue\":0}"
                } else {
                    "{\"status\":\"unhealthy\"}"
                };
                return Response::builder().header("content-type", "application/json").body(full(body)).unwrap();
            }
            Response::new(full("ok"))
        }
    }))
    .await;
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"{}\"\nhealth_path = \"/api/v1/health\"\nhealth_json = {{ status = \"healthy\" }}\n{}",
        up.url(),
        pki.tls_toml()
    ));
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(c.get(m.admin_url("/readyz")).send().await.unwrap().status(), 200);
    healthy.store(false, Ordering::SeqCst);
    assert_eq!(c.get(m.admin_url("/readyz")).send().await.unwrap().status(), 503);
    healthy.store(true, Ordering::SeqCst);
    assert_eq!(c.get(m.admin_url("/readyz")).send().await.unwrap().status(), 200);
    up.stop();
    drop(up);
    assert_eq!(c.get(m.admin_url("/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(c.get(m.admin_url("/healthz")).send().await.unwrap().status(), 200);

    let (code, _, _) = moat_cmd(&["health", "--admin", &m.admin.to_string()], &[]);
    assert_eq!(code, 0);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, err) = moat_cmd(&["health", "--admin", &closed.to_string()], &[]);
    assert_eq!(code, 1, "{err}");
}
