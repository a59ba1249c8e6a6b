//! Connections a hostile client can hold: idle HTTP/2 connections that only
//! answer PINGs, silent TLS clients, clients that stop reading, trickled
//! bodies, upgrade tunnels, the admin listener's slots, broken client bodies,
//! and curl's view of moat's early HTTP/2 rejections. Every test runs moat as
//! a process against an upstream on 127.0.0.1 with small timeouts; every
//! wait is bounded.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn base(up: &Upstream, pki: &Pki) -> String {
    format!("[upstream]\nurl = \"{}\"\n{}", up.url(), pki.tls_toml())
}

const WAIT: Duration = Duration::from_secs(15);

/// An HTTP/2 client over TLS with the h2 crate; `window` is its initial
/// stream window. The connection task ends when moat closes the connection.
async fn h2_client(
    pki: &Pki,
    addr: std::net::SocketAddr,
    window: u32,
) -> (h2::client::SendRequest<Bytes>, h2::PingPong, tokio::task::JoinHandle<()>) {
    let tls = tls_connect_h2(pki, addr).await;
    let (client, mut conn) =
        h2::client::Builder::new().initial_window_size(window).handshake::<_, Bytes>(tls).await.unwrap();
    let ping = conn.ping_pong().unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, ping, task)
}

async fn h2_get(client: &mut h2::client::SendRequest<Bytes>, port: u16, path: &str) -> Response<h2::RecvStream> {
    let req = Request::get(format!("https://localhost:{port}{path}")).body(()).unwrap();
    let (res, _) = client.clone().ready().await.unwrap().send_request(req, true).unwrap();
    tokio::time::timeout(WAIT, res).await.unwrap().unwrap()
}

/// Pings every 100 ms (moat must not count PINGs as activity) until the
/// connection task ends; false if it is still open after `within`.
async fn closed_while_pinging(ping: &mut h2::PingPong, task: &tokio::task::JoinHandle<()>, within: Duration) -> bool {
    let pinging = async {
        while !task.is_finished() {
            if tokio::time::timeout(Duration::from_secs(2), ping.ping(h2::Ping::opaque())).await.is_err() {
                continue;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(within, pinging).await.is_ok()
}

#[tokio::test]
async fn idle_h2_connection_answering_pings_is_closed_at_idle_timeout_and_frees_its_slot() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}[limits]\nmax_connections = 1\nidle_timeout = \"1s\"\nheader_read_timeout = \"5s\"\n",
        base(&up, &pki)
    ));
    let (mut client, mut ping, task) = h2_client(&pki, m.https, 65_535).await;
    let res = h2_get(&mut client, m.https.port(), "/").await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    while let Some(chunk) = tokio::time::timeout(WAIT, body.data()).await.unwrap() {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    // The client now only pings: the connection must still be closed.
    assert!(closed_while_pinging(&mut ping, &task, WAIT).await, "idle HTTP/2 connection kept open by PINGs");
    // And its slot is free for the next client.
    let c = pki.builder().http2_prior_knowledge().build().unwrap();
    let r = tokio::time::timeout(WAIT, c.get(m.url("/")).send()).await;
    assert!(matches!(&r, Ok(Ok(res)) if res.status() == 200), "next client not served: {r:?}");
}

#[tokio::test]
async fn h2_connection_without_a_request_is_closed_at_header_read_timeout() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}[limits]\nmax_connections = 1\nidle_timeout = \"60s\"\nheader_read_timeout = \"1s\"\n",
        base(&up, &pki)
    ));
    let (_client, mut ping, task) = h2_client(&pki, m.https, 65_535).await;
    assert!(closed_while_pinging(&mut ping, &task, WAIT).await, "HTTP/2 connection without requests kept open");
    let c = pki.builder().http2_prior_knowledge().build().unwrap();
    let r = tokio::time::timeout(WAIT, c.get(m.url("/")).send()).await;
    assert!(matches!(&r, Ok(Ok(res)) if res.status() == 200), "next client not served: {r:?}");
}

#[tokio::test]
async fn h1_connection_that_sends_nothing_is_closed_at_header_read_timeout() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m =
        Moat::start(&format!("{}[limits]\nidle_timeout = \"60s\"\nheader_read_timeout = \"1s\"\n", base(&up, &pki)));
    let mut tls = tls_connect(&pki, m.https).await;
    assert!(closed_within(&mut tls, WAIT).await, "silent HTTP/1 connection held past header_read_timeout");
    // A client that sends a request in time is served as before.
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    assert!(read_head(&mut tls, WAIT).await.starts_with("HTTP/1.1 200"));
}

fn streaming_upstream(dropped: Arc<AtomicUsize>) -> Handler {
    handler(move |parts, _| {
        let dropped = dropped.clone();
        async move {
            if parts.uri.path().starts_with("/stream") {
                Response::new(endless_body(dropped))
            } else {
                Response::new(full("ok from upstream"))
            }
        }
    })
}

#[tokio::test]
async fn zero_window_h2_client_is_cut_at_send_timeout_and_the_upstream_cancelled() {
    init_crypto();
    let pki = Pki::new();
    let dropped = Arc::new(AtomicUsize::new(0));
    let up = Upstream::start(streaming_upstream(dropped.clone())).await;
    let m = Moat::start(&format!(
        "{}[limits]\nsend_timeout = \"1s\"\n[[routes]]\nname = \"stream\"\npath = \"/stream\"\nmax_in_flight = 4\n",
        base(&up, &pki)
    ));
    // A client that never opens its stream windows, on four streams.
    let (mut client, _ping, _task) = h2_client(&pki, m.https, 0).await;
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let res = h2_get(&mut client, m.https.port(), "/stream").await;
        assert_eq!(res.status(), 200);
        bodies.push(res.into_body());
    }
    // Each upstream exchange is cancelled ...
    assert!(eventually(WAIT, || dropped.load(Ordering::SeqCst) >= 4).await, "upstream exchanges not cancelled");
    // ... each stream is reset ...
    for mut b in bodies {
        let r = tokio::time::timeout(WAIT, b.data()).await.unwrap();
        assert!(matches!(r, Some(Err(_))), "stream not reset: {r:?}");
    }
    // ... the connection itself still serves ...
    assert_eq!(h2_get(&mut client, m.https.port(), "/").await.status(), 200);
    // ... and the route's max_in_flight permits are free again.
    let c = pki.builder().http1_only().build().unwrap();
    let r = tokio::time::timeout(WAIT, c.get(m.url("/stream")).send()).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn h1_client_that_stops_reading_is_cut_at_send_timeout_and_the_upstream_cancelled() {
    init_crypto();
    let pki = Pki::new();
    let dropped = Arc::new(AtomicUsize::new(0));
    let up = Upstream::start(streaming_upstream(dropped.clone())).await;
    let m = Moat::start(&format!(
        "{}[limits]\nsend_timeout = \"1s\"\n[[routes]]\nname = \"stream\"\npath = \"/stream\"\nmax_in_flight = 1\n",
        base(&up, &pki)
    ));
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    assert!(read_head(&mut tls, WAIT).await.starts_with("HTTP/1.1 200"));
    // Stop reading: moat fills the socket, then no write progress for send_timeout.
    assert!(eventually(WAIT, || dropped.load(Ordering::SeqCst) >= 1).await, "upstream exchange not cancelled");
    assert!(closed_within(&mut tls, WAIT).await, "stalled HTTP/1 connection not closed");
    let c = pki.builder().http1_only().build().unwrap();
    let r = tokio::time::timeout(WAIT, c.get(m.url("/stream")).send()).await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "the route's max_in_flight slot was not released");
}

#[tokio::test]
async fn trickled_body_ends_at_body_timeout_and_frees_the_route() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}[limits]\nbody_read_timeout = \"10s\"\nbody_timeout = \"2s\"\n\
         [[routes]]\nname = \"upload\"\npath = \"/upload\"\nmax_in_flight = 1\n",
        base(&up, &pki)
    ));
    let tls = tls_connect(&pki, m.https).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    wr.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
    // One byte every 200 ms: always well inside the gap timeout.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b"1\r\nx\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let head = read_head(&mut rd, WAIT).await;
    trickle.abort();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        eventually(WAIT, || up.seen().first().is_some_and(|s| !s.complete)).await,
        "the upstream did not see its request aborted"
    );
    let c = pki.builder().http1_only().build().unwrap();
    let r = tokio::time::timeout(WAIT, c.post(m.url("/upload")).body("small").send()).await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "the route's max_in_flight slot was not released");
}

/// An upstream that answers upgrades with 101 and echoes the tunnel's bytes.
fn echo_upstream() -> Handler {
    handler(|parts, _| async move {
        if !parts.headers.contains_key("upgrade") {
            return Response::new(full("no upgrade"));
        }
        let proto = parts.headers["upgrade"].clone();
        let mut req = Request::from_parts(parts, ());
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        Response::builder()
            .status(101)
            .header("upgrade", proto)
            .header("connection", "upgrade")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(full(""))
            .unwrap()
    })
}

fn ws_handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn h2c_upgrade_never_reaches_the_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(echo_upstream()).await;
    let m = Moat::start(&format!(
        "{}[[routes]]\nname = \"ws\"\npath = \"/ws\"\nwebsocket = true\n[[routes]]\nname = \"public\"\npath = \"/\"\n",
        base(&up, &pki)
    ));
    for path in ["/public", "/ws"] {
        let mut tls = tls_connect(&pki, m.https).await;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).await.unwrap();
        let head = read_head(&mut tls, WAIT).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        let seen = up.seen().pop().unwrap();
        assert!(seen.headers.get("upgrade").is_none(), "{path}: Upgrade reached the upstream");
        assert!(seen.headers.get("http2-settings").is_none(), "{path}: HTTP2-Settings reached the upstream");
    }
}

#[tokio::test]
async fn websocket_tunnel_only_on_opted_in_routes_from_allowed_origins_and_it_idles_out() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(echo_upstream()).await;
    let m = Moat::start(&format!(
        "{}[limits]\nidle_timeout = \"1s\"\nmax_connections = 1\n[cors]\nallowed_origins = [\"https://ui.example.com\"]\n\
         [[routes]]\nname = \"ws\"\npath = \"/ws\"\nwebsocket = true\n[[routes]]\nname = \"plain\"\npath = \"/plain\"\n",
        base(&up, &pki)
    ));
    let connect = || async { tokio::time::timeout(WAIT, tls_connect(&pki, m.https)).await.unwrap() };

    // A route without `websocket = true`: the upgrade is stripped, no tunnel.
    let mut tls = connect().await;
    tls.write_all(ws_handshake("/plain", "Connection-Close: x\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut tls, WAIT).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(up.seen().pop().unwrap().headers.get("upgrade").is_none());
    drop(tls);

    // A disallowed Origin: 403 (cross-site WebSocket hijacking).
    let mut tls = connect().await;
    tls.write_all(ws_handshake("/ws", "Origin: https://evil.example.net\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut tls, WAIT).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    drop(tls);

    // Not a valid RFC 6455 handshake: 400.
    let mut tls = connect().await;
    let bad = ws_handshake("/ws", "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    tls.write_all(bad.as_bytes()).await.unwrap();
    let head = read_head(&mut tls, WAIT).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    drop(tls);
    let upgrades_seen = up.seen().iter().filter(|s| s.headers.contains_key("upgrade")).count();
    assert_eq!(upgrades_seen, 0, "a refused upgrade reached the upstream");

    // An allowed Origin on the opted-in route: 101 and an echo through the tunnel.
    let mut tls = connect().await;
    tls.write_all(ws_handshake("/ws", "Origin: https://ui.example.com\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut tls, WAIT).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    let mut echo = [0u8; 5];
    tls.write_all(b"hello").await.unwrap();
    tokio::time::timeout(WAIT, tls.read_exact(&mut echo)).await.unwrap().unwrap();
    assert_eq!(&echo, b"hello");

    // The tunnel keeps its connection slot (max_connections = 1) while it is used ...
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
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tls.write_all(b"ping!").await.unwrap();
        tokio::time::timeout(WAIT, tls.read_exact(&mut echo)).await.unwrap().unwrap();
    }
    assert!(!second.is_finished(), "a tunnel did not count toward max_connections");
    // ... and closes after idle_timeout without bytes either way, freeing it.
    assert!(closed_within(&mut tls, WAIT).await, "idle tunnel not closed");
    let done = tokio::time::timeout(WAIT, second).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "the waiting client was not served after the tunnel ended: {done:?}");
    let line = m.wait_log("websocket tunnel closed", WAIT).await.expect("tunnel end not logged");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = &v;
    assert_eq!(fields["end"], "idle_timeout", "{line}");
    assert_eq!(fields["bytes_from_client"], 25, "{line}");
    assert_eq!(fields["bytes_from_upstream"], 25, "{line}");
    assert!(fields["duration_ms"].as_u64().is_some(), "{line}");
}

#[tokio::test]
async fn admin_answers_health_while_idle_clients_hold_more_than_its_cap() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki));
    // More idle connections than the admin listener's 64 slots, some with a
    // request head started and never finished.
    let mut idle = Vec::new();
    for i in 0..80 {
        let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(m.admin)).await.unwrap().unwrap();
        if i % 8 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        }
        idle.push(s);
    }
    let c = reqwest::Client::builder().no_proxy().timeout(WAIT).build().unwrap();
    for path in ["/healthz", "/readyz"] {
        let r = c.get(m.admin_url(path)).send().await;
        assert!(matches!(&r, Ok(res) if res.status() == 200), "{path} not answered: {r:?}");
    }
    drop(idle);
}

#[tokio::test]
async fn malformed_chunked_client_body_is_400_and_not_an_upstream_error() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki));
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(
        b"POST /submit HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nnot a chunk\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tls, WAIT).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(metric(&m, "moat_upstream_errors_total{kind=\"protocol\",upstream=\"default\"}").await, 0.0);
    assert_eq!(metric(&m, "moat_rejections_total{route=\"unmatched\",reason=\"bad_request\"}").await, 1.0);
}

// ---------------------------------------------------------------- curl over HTTP/2

/// Runs curl (HTTP/2 over TLS, trusting the test CA) and returns
/// (exit code, "%{http_code}"). Bounded by curl's own --max-time.
fn curl_h2(pki: &Pki, m: &Moat, path: &str, file: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let port = m.https.port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--cacert")
        .arg(pki.ca_path())
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(extra)
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn curl_installed() -> bool {
    let ok = std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("curl is required under CI=true (apt-get install curl)");
        }
        eprintln!("curl not installed: skipping");
    }
    ok
}

/// Debian 12's curl (7.88) reports "Stream error in the HTTP/2 framing
/// layer" instead of the status when the stream is reset while it is still
/// writing the body; moat's early rejections must reach it as statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http2_reads_early_rejections() {
    if !curl_installed() {
        return;
    }
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}[rate_limit]\ndefault = \"off\"\n[auth]\ndefault = \"none\"\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"small\"\npath = \"/small\"\nmax_body = \"1MiB\"\n\
         [[routes]]\nname = \"keyed\"\npath = \"/keyed\"\nauth = \"api_key\"\nmax_body = \"200MiB\"\n\
         [[routes]]\nname = \"pdf\"\npath = \"/pdf\"\nmax_body = \"200MiB\"\nupload = {{ types = [\"pdf\"] }}\n",
        base(&up, &pki),
        sha256_hex(b"the-key")
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, size) in [("2mb", 2_000_000usize), ("100mb", 100_000_000)] {
        let path = dir.path().join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let chunk = vec![b'x'; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            std::io::Write::write_all(&mut f, &chunk[..n]).unwrap();
            left -= n;
        }
        std::io::Write::flush(&mut f).unwrap();
        files.push(path);
    }
    let cases: [(&str, &[&str], &str); 4] = [
        ("/small", &[], "413"),
        ("/small", &["-H", "Transfer-Encoding: chunked"], "413"),
        ("/keyed", &[], "401"),
        ("/pdf", &["-H", "Content-Type: application/zip"], "415"),
    ];
    for file in &files {
        for (path, extra, want) in cases {
            let (pki2, file2) = (&pki, file.clone());
            let (code, status) = tokio::task::block_in_place(|| curl_h2(pki2, &m, path, &file2, extra));
            assert_eq!((code, status.as_str()), (0, want), "curl {path} {extra:?} with {}", file.display());
        }
    }
    assert!(up.seen().iter().all(|s| !s.complete || s.body_len < 1_000_000), "a refused body reached the upstream");
}

/// Chromium reads the same early rejections over HTTP/2 (a page on another
/// origin, allowed by CORS, posts 2 MB bodies with fetch).
#[tokio::test]
async fn chromium_over_http2_reads_early_rejections() {
    let Some(chrome) = chromium() else { return };
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let page_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = page_l.local_addr().unwrap().port();
    let m = Moat::start(&format!(
        "{}[rate_limit]\ndefault = \"off\"\n[cors]\nallowed_origins = [\"http://127.0.0.1:{page_port}\"]\n\
         [auth]\ndefault = \"none\"\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n\
         [[routes]]\nname = \"small\"\npath = \"/small\"\nmax_body = \"1MiB\"\n\
         [[routes]]\nname = \"keyed\"\npath = \"/keyed\"\nauth = \"api_key\"\n",
        base(&up, &pki),
        sha256_hex(b"the-key")
    ));
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let moat_port = m.https.port();
    let r2 = reports.clone();
    let _page = Upstream::serve(
        page_l,
        handler(move |parts, _| {
            let reports = r2.clone();
            async move {
                if parts.uri.path() == "/report" {
                    let q = parts.uri.query().unwrap_or("").to_string();
                    let v = q.strip_prefix("r=").unwrap_or(&q);
                    reports
                        .lock()
                        .unwrap()
                        .push(percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned());
                    return Response::new(full("ok"));
                }
                let page = format!(
                    r#"<!doctype html><html><body><script>
const body = new Uint8Array(2000000);
const post = p => fetch('https://localhost:{moat_port}' + p, {{ method: 'POST', body }}).then(r => r.status + ':' + r.headers.get('content-type'));
Promise.all([post('/small'), post('/keyed')])
  .then(s => fetch('/report?r=' + encodeURIComponent(s.join(','))))
  .catch(e => fetch('/report?r=' + encodeURIComponent('failed:' + e)));
</script></body></html>"#
                );
                Response::builder().header("content-type", "text/html").body(full(page)).unwrap()
            }
        }),
    );
    let got = run_browser(&chrome, &format!("http://127.0.0.1:{page_port}/"), &reports).await;
    let statuses: Vec<&str> = got.split(',').map(|s| s.split(':').next().unwrap_or("")).collect();
    assert_eq!(statuses, vec!["413", "401"], "{got}");
}
