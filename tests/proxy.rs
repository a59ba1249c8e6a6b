//! End-to-end tests of the spine: a real moat process between a real TLS
//! client and an in-process hyper upstream, all on 127.0.0.1.

use crate::common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use http::{Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn base(up: &Upstream) -> String {
    format!("[upstream]\nurl = \"{}\"\n", up.url())
}

fn with_cert(pki: &Pki, extra: &str) -> String {
    let (c, k) = pki.write_server("server", &rcgen::PKCS_ECDSA_P256_SHA256);
    format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}", c.display(), k.display())
}

#[tokio::test]
async fn h1_and_h2_round_trips_with_forwarding_headers() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "")));

    for (client, version) in [
        (pki.builder().http1_only().build().unwrap(), http::Version::HTTP_11),
        (pki.builder().http2_prior_knowledge().build().unwrap(), http::Version::HTTP_2),
    ] {
        let res = client
            .get(m.url("/hello?x=1"))
            .header("connection", "keep-alive")
            .header("x-forwarded-for", "6.6.6.6")
            .send()
            .await
            .unwrap();
        assert_eq!(res.version(), version);
        assert_eq!(res.status(), 200);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(res.headers().get("strict-transport-security").is_some());
        assert_eq!(res.text().await.unwrap(), "ok from upstream");
        let seen = up.seen().pop().unwrap();
        assert_eq!(seen.uri, "/hello?x=1");
        assert_eq!(seen.headers["x-request-id"], id.as_str());
        // An untrusted peer's chain is replaced, never passed on.
        assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
        assert_eq!(seen.headers["x-forwarded-host"], format!("localhost:{}", m.https.port()).as_str());
        assert!(seen.headers["forwarded"].to_str().unwrap().starts_with("for=127.0.0.1;proto=https"));
        assert!(seen.headers.get("connection").is_none_or(|v| v != "keep-alive"));
        let line = m.access_line(&id).await;
        assert_eq!(line["status"], 200);
        assert_eq!(line["upstream_status"], 200);
        assert_eq!(line["method"], "GET");
        assert_eq!(line["client_ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn hop_by_hop_headers_removed_both_ways() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(handler(|_, _| async {
        Response::builder()
            .header("connection", "x-internal-hop")
            .header("x-internal-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("server", "uvicorn")
            .header("x-powered-by", "Express")
            .body(full("ok"))
            .unwrap()
    }))
    .await;
    let m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "")));
    let res = pki
        .builder()
        .http1_only()
        .build()
        .unwrap()
        .get(m.url("/"))
        .header("connection", "x-client-hop")
        .header("x-client-hop", "1")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for h in ["x-internal-hop", "keep-alive", "server", "x-powered-by"] {
        assert!(res.headers().get(h).is_none(), "{h} leaked to the client");
    }
    let seen = up.seen().pop().unwrap();
    assert!(seen.headers.get("x-client-hop").is_none());
    assert!(seen.headers.get("proxy-authorization").is_none());
}

#[tokio::test]
async fn tls_1_1_client_is_refused_and_1_2_accepted() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "")));

    // A TLS 1.1 ClientHello (legacy_version 0x0302, no supported_versions extension).
    let mut hello = Vec::new();
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    let suites: [u16; 4] = [0xc013, 0xc014, 0x002f, 0x0035];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]); // groups: secp256r1
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]); // ec point formats
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    hello.extend_from_slice(&[0x16, 0x03, 0x01]);
    hello.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    hello.extend_from_slice(&hs);

    let mut tcp = tokio::net::TcpStream::connect(m.https).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await.unwrap().unwrap_or(0);
    // Either a fatal alert record, or a closed connection; never a ServerHello.
    if n > 0 {
        assert_eq!(buf[0], 0x15, "expected a TLS alert, got {:?}", &buf[..n]);
        assert_eq!(buf[5], 2, "expected a fatal alert, got {:?}", &buf[..n]);
        assert!([40, 70].contains(&buf[6]), "expected handshake_failure or protocol_version, got {:?}", &buf[..n]);
    }

    let tls12 = pki.builder().tls_version_max(reqwest::tls::Version::TLS_1_2).build().unwrap();
    assert_eq!(tls12.get(m.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn tls_1_3_only_refuses_1_2() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "min_version = \"1.3\"\n")));
    let tls12 = pki.builder().tls_version_max(reqwest::tls::Version::TLS_1_2).build().unwrap();
    assert!(tls12.get(m.url("/")).send().await.is_err());
    assert_eq!(pki.client().get(m.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn rsa_and_ed25519_certificates_serve() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    for alg in [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_ED25519] {
        let (c, k) = pki.write_server(if alg == &rcgen::PKCS_ED25519 { "ed" } else { "rsa" }, alg);
        let m = Moat::start(&format!("{}[tls]\ncert = \"{}\"\nkey = \"{}\"\n", base(&up), c.display(), k.display()));
        assert_eq!(pki.client().get(m.url("/")).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn large_upload_and_download_stream_byte_identical() {
    init_crypto();
    const SIZE: u64 = 100 << 20;
    let pki = Pki::new();
    let up = Upstream::start(handler(|parts, _| async move {
        if parts.uri.path() == "/download" {
            let (stream, _) = noise_stream(42, SIZE);
            let body = http_body_util::StreamBody::new(stream.map(|r| r.map(hyper::body::Frame::data)));
            return Response::new(http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, |e| {
                Box::new(e) as Box<dyn std::error::Error + Send + Sync>
            })));
        }
        Response::new(full("stored"))
    }))
    .await;
    let m = Moat::start(&format!("{}{}[limits]\nmax_body = \"200MiB\"\n", base(&up), with_cert(&pki, "")));
    for client in [pki.builder().http1_only().build().unwrap(), pki.builder().http2_prior_knowledge().build().unwrap()]
    {
        let (stream, digest) = noise_stream(7, SIZE);
        let res = client.post(m.url("/upload")).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let seen = up.seen().pop().unwrap();
        assert_eq!(seen.body_len, SIZE);
        assert_eq!(seen.sha256, digest);
        assert!(seen.complete);

        let (_, expected) = noise_stream(42, SIZE);
        let res = client.get(m.url("/download")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut s = res.bytes_stream();
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            n += c.len() as u64;
            h.update(&c);
        }
        assert_eq!(n, SIZE);
        assert_eq!(hex::encode(h.finalize()), expected);
    }
    eprintln!("moat peak RSS after 2x100 MiB up + down: {} KiB", m.peak_rss_kib());
}

#[tokio::test]
async fn upstream_down_is_502_problem_without_address() {
    init_crypto();
    let pki = Pki::new();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let m = Moat::start(&format!("[upstream]\nurl = \"http://127.0.0.1:{port}\"\n{}", with_cert(&pki, "")));
    let res = pki.client().get(m.url("/x")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = res.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 502);
    assert_eq!(v["title"], "Bad Gateway");
    assert_eq!(v["request_id"], id.as_str());
    assert!(!body.contains(&port.to_string()) && !body.contains("127.0.0.1"), "{body}");
    assert!(!body.to_lowercase().contains("error trying to connect"), "{body}");
    let line = m.access_line(&id).await;
    assert_eq!(line["reject_reason"], "upstream_unavailable");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(handler(|_, _| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(full("late"))
    }))
    .await;
    let m = Moat::start(&format!("{}response_timeout = \"1s\"\n{}", base(&up), with_cert(&pki, "")));
    let res = pki.client().get(m.url("/slow")).send().await.unwrap();
    assert_eq!(res.status(), 504);
    let v: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(v["status"], 504);
    assert_eq!(v["title"], "Gateway Timeout");
}

#[tokio::test]
async fn oversized_header_is_431() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "")));
    let big = "a".repeat(20 * 1024);
    for client in [pki.builder().http1_only().build().unwrap(), pki.builder().http2_prior_knowledge().build().unwrap()]
    {
        match client.get(m.url("/")).header("x-big", &big).send().await {
            Ok(res) => assert_eq!(res.status(), 431),
            Err(e) => {
                // HTTP/2 may refuse the stream outright; it must never reach the upstream.
                assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}");
            }
        }
    }
    assert!(up.seen().is_empty(), "an oversized request reached the upstream");
}

#[tokio::test]
async fn slowloris_client_is_disconnected() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}[limits]\nheader_read_timeout = \"1s\"\n", base(&up), with_cert(&pki, "")));
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaa").await.unwrap();
    tls.flush().await.unwrap();
    // The connection must be closed by moat (EOF, an error, or a 408), long before this bound.
    assert!(closed_within(&mut tls, Duration::from_secs(15)).await, "slowloris connection still open");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn mtls_requires_a_client_certificate() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}{}",
        base(&up),
        with_cert(&pki, &format!("client_ca = \"{}\"\n", pki.ca_path().display()))
    ));
    let anonymous = pki.client();
    assert!(anonymous.get(m.url("/")).send().await.is_err(), "a client without a certificate got through");
    let id = reqwest::Identity::from_pem(pki.client_identity_pem().as_bytes()).unwrap();
    let with_cert = pki.builder().identity(id).build().unwrap();
    assert_eq!(with_cert.get(m.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(up.seen().len(), 1);
}

async fn peer_cert(pki: &Pki, addr: std::net::SocketAddr) -> Vec<u8> {
    let tls = tls_connect(pki, addr).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec()
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref().to_vec()
}

#[tokio::test]
async fn certificate_hot_reload() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    // Kubernetes-style mount: tls.crt -> ..data/tls.crt, ..data -> ..v1
    let mount = tempfile::tempdir().unwrap();
    let (c1, k1) = pki.server_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "first");
    let v1 = mount.path().join("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("tls.crt"), &c1).unwrap();
    std::fs::write(v1.join("tls.key"), &k1).unwrap();
    std::os::unix::fs::symlink("..v1", mount.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.crt", mount.path().join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", mount.path().join("tls.key")).unwrap();
    let m = Moat::start(&format!(
        "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        base(&up),
        mount.path().join("tls.crt").display(),
        mount.path().join("tls.key").display()
    ));
    assert_eq!(peer_cert(&pki, m.https).await, pem_der(&c1));

    // An open keep-alive connection made before the swap.
    let mut old = tls_connect(&pki, m.https).await;
    old.write_all(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = old.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Atomic swap of the ..data symlink, as the kubelet does.
    let (c2, k2) = pki.server_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "second");
    let v2 = mount.path().join("..v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("tls.crt"), &c2).unwrap();
    std::fs::write(v2.join("tls.key"), &k2).unwrap();
    std::os::unix::fs::symlink("..v2", mount.path().join("..data_tmp")).unwrap();
    std::fs::rename(mount.path().join("..data_tmp"), mount.path().join("..data")).unwrap();

    let mut swapped = false;
    for _ in 0..100 {
        if peer_cert(&pki, m.https).await == pem_der(&c2) {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swapped, "new connections still get the old certificate");

    // The connection opened before the swap still works.
    old.write_all(b"GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let n = old.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A broken pair is refused; the last good one keeps serving.
    let v3 = mount.path().join("..v3");
    std::fs::create_dir(&v3).unwrap();
    std::fs::write(v3.join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(v3.join("tls.key"), &k1).unwrap();
    std::os::unix::fs::symlink("..v3", mount.path().join("..data_tmp")).unwrap();
    std::fs::rename(mount.path().join("..data_tmp"), mount.path().join("..data")).unwrap();
    assert!(m.wait_log("new certificate refused", Duration::from_secs(10)).await.is_some());
    assert_eq!(peer_cert(&pki, m.https).await, pem_der(&c2));
}

#[tokio::test]
async fn sigterm_lets_in_flight_request_finish_and_exits_zero() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(handler(|_, _| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Response::new(full("finished"))
    }))
    .await;
    let mut m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "")));
    let client = pki.client();
    let url = m.url("/long");
    let arrived = up.arrived.clone();
    let notified = arrived.notified();
    let req = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    tokio::time::timeout(Duration::from_secs(10), notified).await.unwrap();
    m.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), req).await.unwrap().unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    let exit = m.wait_exit(Duration::from_secs(15)).expect("moat did not exit");
    assert!(exit.success(), "exit status {exit:?}");
    // After shutdown, the port no longer accepts.
    assert!(tokio::net::TcpStream::connect(m.https).await.is_err());
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    init_crypto();
    let pki = Pki::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(text.contains("upgrade: websocket"));
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            let mut echo = b"echo:".to_vec();
            echo.extend_from_slice(&buf[..n]);
            s.write_all(&echo).await.unwrap();
        }
    });
    let m = Moat::start(&format!(
        "[upstream]\nurl = \"http://{addr}\"\n{}[[routes]]\nname = \"ws\"\npath = \"/ws\"\nwebsocket = true\n",
        with_cert(&pki, "")
    ));
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&got));
    tls.write_all(b"ping").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"echo:ping");
}

#[tokio::test]
async fn admin_health_and_readiness() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}", base(&up), with_cert(&pki, "")));
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(c.get(m.admin_url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(m.admin_url("/readyz")).send().await.unwrap().status(), 200);
    up.stop();
    drop(up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.get(m.admin_url("/readyz")).send().await.unwrap().status(), 503);
    // The public listener serves no admin endpoints: they are proxied like any path.
    let res = pki.client().get(m.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn http_redirect_listener_answers_308() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nhttp_redirect = \"127.0.0.1:0\"\n{}{}",
        base(&up),
        with_cert(&pki, "")
    ));
    let line = m.wait_log("moat is serving", Duration::from_secs(5)).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let redirect = v["http_redirect"].as_str().unwrap().to_string();
    let c = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = c.get(format!("http://{redirect}/docs?a=1")).header("host", "docs.example.com").send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], format!("https://docs.example.com:{}/docs?a=1", m.https.port()).as_str());
}

#[tokio::test]
async fn body_over_content_length_limit_is_413_before_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}[limits]\nmax_body = \"1KiB\"\n", base(&up), with_cert(&pki, "")));
    let res = pki.client().post(m.url("/u")).body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(res.status(), 413);
    assert!(up.seen().is_empty());
    // Chunked over the limit: cut mid-stream, the upstream never gets a complete body.
    let (stream, _) = noise_stream(1, 1 << 20);
    let res = pki.client().post(m.url("/u")).body(reqwest::Body::wrap_stream(stream)).send().await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
    for s in up.seen() {
        assert!(!s.complete || s.body_len <= 1024, "upstream got a complete oversized body: {s:?}");
    }
}

#[tokio::test]
async fn no_config_file_serves_on_defaults_with_self_signed_cert() {
    init_crypto();
    let up = Upstream::ok().await;
    let url = up.url();
    let m = Moat::start_no_config(&[
        ("MOAT_LISTEN__HTTPS", "127.0.0.1:0"),
        ("MOAT_LISTEN__ADMIN", "127.0.0.1:0"),
        ("MOAT_UPSTREAM__URL", url.as_str()),
    ]);
    let warn = m.wait_log("fingerprint_sha256", Duration::from_secs(5)).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&warn).unwrap();
    assert_eq!(v["level"], "warn");
    let fp = v["fingerprint_sha256"].as_str().unwrap().replace(':', "").to_ascii_lowercase();

    // The served certificate is the one whose fingerprint was logged.
    let tcp = tokio::net::TcpStream::connect(m.https).await.unwrap();
    let cfg =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny))
            .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(sha256_hex(leaf.as_ref()), fp);

    let c = reqwest::Client::builder().no_proxy().tls_danger_accept_invalid_certs(true).build().unwrap();
    let res = c.get(m.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok from upstream");
}

#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn handshake_and_idle_timeouts_close_connections() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}{}handshake_timeout = \"1s\"\n[limits]\nidle_timeout = \"1s\"\n",
        base(&up),
        with_cert(&pki, "")
    ));
    // A TCP client that never starts TLS is dropped after the handshake timeout.
    let mut raw = tokio::net::TcpStream::connect(m.https).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(15), raw.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "silent TCP client not dropped: {r:?}");

    // A keep-alive connection with nothing in flight is closed after the idle timeout.
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut got = vec![0u8; 4096];
    let n = tls.read(&mut got).await.unwrap();
    assert!(String::from_utf8_lossy(&got[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut tls, Duration::from_secs(15)).await, "idle connection still open");
}

#[tokio::test]
async fn max_connections_caps_concurrent_clients() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!("{}{}[limits]\nmax_connections = 1\n", base(&up), with_cert(&pki, "")));
    let first = tls_connect(&pki, m.https).await;
    // The second client is not served while the first holds the only slot.
    let second = tokio::spawn({
        let cfg = pki.rustls_client();
        let addr = m.https;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(cfg)
                .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .map(|_| ())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "a second connection was served past max_connections = 1");
    drop(first);
    let done = tokio::time::timeout(Duration::from_secs(10), second).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "the waiting client was not served after the slot freed: {done:?}");
}

#[tokio::test]
async fn routes_with_params_strip_prefix_and_methods() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let routes = "[[routes]]\nname = \"task\"\npath = \"/api/v1/tasks/{id}\"\nmethods = [\"GET\", \"DELETE\"]\n\
                  [[routes]]\nname = \"ui\"\npath = \"/paperless\"\nstrip_prefix = true\n\
                  [[routes]]\nname = \"root\"\npath = \"/\"\nexact = true\nmethods = [\"GET\"]\n";
    let m = Moat::start(&format!("{}{}{routes}", base(&up), with_cert(&pki, "")));
    let c = pki.client();
    assert_eq!(c.get(m.url("/api/v1/tasks/42")).send().await.unwrap().status(), 200);
    let r = c.post(m.url("/api/v1/tasks/42")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, DELETE");
    assert_eq!(c.get(m.url("/paperless/assets/app.js?v=1")).send().await.unwrap().status(), 200);
    assert_eq!(up.seen().last().unwrap().uri, "/assets/app.js?v=1");
    assert_eq!(c.get(m.url("/paperless")).send().await.unwrap().status(), 200);
    assert_eq!(up.seen().last().unwrap().uri, "/");
    // Encoded traversal is refused before any route applies (sent raw: HTTP
    // client libraries normalize dot segments themselves).
    for bad in ["/api/v1/tasks/..%2f..%2fetc", "/paperless/%2e%2e/admin", "/paperless/../admin", "/a/%00", "/a\\b"] {
        let mut tls = tls_connect(&pki, m.https).await;
        tls.write_all(format!("GET {bad} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.unwrap().unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 400"), "{bad}: {head}");
    }
    assert!(up.seen().iter().all(|s| !s.uri.contains("admin") && !s.uri.contains("etc")));
}
