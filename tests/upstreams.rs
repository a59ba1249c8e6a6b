//! Upstreams over TLS (verified against a test CA, with SNI and mTLS), over
//! a unix socket, several named upstreams chosen by route and host, a
//! certificate per host by SNI, balancing with passive and active health:
//! moat as a process in front of real servers on 127.0.0.1 and a unix socket.

use crate::common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What a test upstream saw: (its name, Host header, client certificate presented).
type Log = Arc<Mutex<Vec<(String, String, bool)>>>;

async fn serve_conn<S>(io: S, name: &'static str, log: Log, client_cert: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let host = req.headers().get("host").map(|h| h.to_str().unwrap_or("").to_string()).unwrap_or_default();
            log.lock().unwrap().push((name.to_string(), host, client_cert));
            Ok::<_, std::convert::Infallible>(Response::new(full(format!("from {name} {}", req.uri().path()))))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc).await;
}

/// An HTTPS upstream with a certificate from `pki`; with `require_client`,
/// only clients presenting a certificate of `pki`'s CA get through.
async fn tls_upstream(pki: &Pki, name: &'static str, require_client: bool, log: &Log) -> std::net::SocketAddr {
    let (cert, key) = pki.server_cert(&rcgen::PKCS_ECDSA_P256_SHA256, name);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = if require_client {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = Arc::new(builder.with_single_cert(chain, key).unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let presented = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                    serve_conn(tls, name, log, presented).await;
                }
            });
        }
    });
    addr
}

async fn unix_upstream(path: &Path, name: &'static str, log: &Log) {
    let l = tokio::net::UnixListener::bind(path).unwrap();
    let log = log.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_conn(s, name, log.clone(), false));
        }
    });
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A 502 in moat's format that names nothing of the failure.
fn assert_opaque_502(status: u16, body: &str) {
    assert_eq!(status, 502, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], 502);
    for leak in ["certificate", "Certificate", "tls", "TLS", "127.0.0.1", "issuer", "handshake", "alert"] {
        assert!(!body.contains(leak), "the 502 leaks {leak:?}: {body}");
    }
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_its_ca_and_name() {
    init_crypto();
    let pki = Pki::new();
    let app_ca = Pki::new();
    let other_ca = Pki::new();
    let log: Log = Arc::default();
    let addr = tls_upstream(&app_ca, "tls-app", false, &log).await;
    let dir = tempfile::tempdir().unwrap();
    let good_ca = write(dir.path(), "app-ca.pem", &app_ca.ca_pem);
    let wrong_ca = write(dir.path(), "other-ca.pem", &other_ca.ca_pem);
    let c = pki.client();

    // Verified: the right CA, the URL's host as the name.
    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"https://localhost:{}\"\nca = \"{good_ca}\"\n",
        pki.tls_toml(),
        addr.port()
    ));
    let (status, body) = get(&c, &m.url("/hello")).await;
    assert_eq!((status, body.as_str()), (200, "from tls-app /hello"));
    assert_eq!(log.lock().unwrap().len(), 1);
    let public = format!(":{}", m.https.port());
    assert!(log.lock().unwrap()[0].1.ends_with(&public), "Host is the client's: {:?}", log.lock().unwrap());

    // By IP with server_name naming the certificate's DNS name; TLS 1.3 only.
    let m2 = Moat::start(&format!(
        "{}[upstream]\nurl = \"https://127.0.0.1:{}\"\nca = \"{good_ca}\"\nserver_name = \"localhost\"\nmin_version = \"1.3\"\n",
        pki.tls_toml(),
        addr.port()
    ));
    assert_eq!(get(&c, &m2.url("/x")).await.0, 200);

    // A CA that did not sign it, and a name it does not carry: 502, nothing said.
    for extra in [format!("ca = \"{wrong_ca}\"\n"), format!("ca = \"{good_ca}\"\nserver_name = \"app.internal\"\n")] {
        let before = log.lock().unwrap().len();
        let m =
            Moat::start(&format!("{}[upstream]\nurl = \"https://localhost:{}\"\n{extra}", pki.tls_toml(), addr.port()));
        let (status, body) = get(&c, &m.url("/x")).await;
        assert_opaque_502(status, &body);
        assert_eq!(log.lock().unwrap().len(), before, "the request reached an unverified upstream");
        assert!(
            m.wait_log("request failed", std::time::Duration::from_secs(5)).await.is_some(),
            "the failure is logged for the operator"
        );
    }
}

#[tokio::test]
async fn an_upstream_that_requires_a_client_certificate_gets_one() {
    init_crypto();
    let pki = Pki::new();
    let app_ca = Pki::new();
    let log: Log = Arc::default();
    let addr = tls_upstream(&app_ca, "mtls-app", true, &log).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "app-ca.pem", &app_ca.ca_pem);
    let identity = app_ca.client_identity_pem();
    let split = identity.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let cert = write(dir.path(), "moat-client.crt", &identity[..split]);
    let key = write(dir.path(), "moat-client.key", &identity[split..]);
    let c = pki.client();

    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"https://localhost:{}\"\nca = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\n",
        pki.tls_toml(),
        addr.port()
    ));
    let (status, body) = get(&c, &m.url("/secure")).await;
    assert_eq!((status, body.as_str()), (200, "from mtls-app /secure"));
    assert!(log.lock().unwrap().iter().all(|e| e.2), "the client certificate was presented");

    let without = Moat::start(&format!(
        "{}[upstream]\nurl = \"https://localhost:{}\"\nca = \"{ca}\"\n",
        pki.tls_toml(),
        addr.port()
    ));
    let (status, body) = get(&c, &without.url("/secure")).await;
    assert_opaque_502(status, &body);
}

#[tokio::test]
async fn a_unix_socket_upstream_and_named_upstreams_chosen_by_route() {
    init_crypto();
    let pki = Pki::new();
    let app_ca = Pki::new();
    let log: Log = Arc::default();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    unix_upstream(&sock, "unix-app", &log).await;
    let tls_addr = tls_upstream(&app_ca, "tls-app", false, &log).await;
    let ca = write(dir.path(), "app-ca.pem", &app_ca.ca_pem);
    let plain = Upstream::ok().await;
    let c = pki.client();

    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"unix:{}\"\n\
         [upstreams.docs]\nurl = \"https://localhost:{}\"\nca = \"{ca}\"\n\
         [upstreams.plain]\nurl = \"{}\"\n\
         [[routes]]\nname = \"docs\"\npath = \"/docs\"\nupstream = \"docs\"\n\
         [[routes]]\nname = \"plain\"\npath = \"/plain\"\nupstream = \"plain\"\n",
        pki.tls_toml(),
        sock.display(),
        tls_addr.port(),
        plain.url()
    ));
    assert_eq!(get(&c, &m.url("/anything")).await, (200, "from unix-app /anything".to_string()));
    assert_eq!(get(&c, &m.url("/docs/a")).await, (200, "from tls-app /docs/a".to_string()));
    assert_eq!(get(&c, &m.url("/plain/b")).await, (200, "ok from upstream".to_string()));
    assert_eq!(plain.seen().len(), 1);
    assert_eq!(plain.seen()[0].uri, "/plain/b");
    let names: Vec<String> = log.lock().unwrap().iter().map(|e| e.0.clone()).collect();
    assert_eq!(names, ["unix-app", "tls-app"]);
    // The unix upstream gets the client's Host, not a made-up one.
    assert!(log.lock().unwrap()[0].1.ends_with(&format!(":{}", m.https.port())));

    // Readiness of the default upstream: the socket accepts.
    assert_eq!(reqwest::get(m.admin_url("/readyz")).await.unwrap().status(), 200);
    let (code, out, err) =
        moat_cmd(&["check", "--config", moat_config_dir(&m).join("moat.toml").to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("upstream docs https://localhost:") && out.contains("upstream unix:"), "{out}");
}

#[test]
fn upstream_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write(dir.path(), "empty.pem", "");
    for (toml, key) in [
        ("[upstream]\nurl = \"ftp://x:1\"\n", "upstream.url"),
        ("[upstream]\nurl = \"unix:relative.sock\"\n", "upstream.url"),
        ("[upstream]\nurl = \"http://x:1\"\nca = \"/etc/ssl/certs/ca-certificates.crt\"\n", "upstream.ca"),
        (&format!("[upstream]\nurl = \"https://x:1\"\nca = \"{pem}\"\n"), "upstream.ca"),
        ("[upstream]\nurl = \"https://x:1\"\nca = \"/nonexistent/ca.pem\"\n", "upstream.ca"),
        ("[upstream]\nurl = \"https://x:1\"\nclient_cert = \"/etc/hostname\"\n", "upstream.client_key"),
        ("[upstream]\nurl = \"https://x:1\"\nmin_version = \"1.1\"\n", "upstream.min_version"),
        ("[upstream]\nurl = \"http://x:1\"\npool_purge_interval = \"soon\"\n", "upstream.pool_purge_interval"),
        ("[upstream]\nurl = \"http://x:1\"\npool_purge_interval = \"-1s\"\n", "upstream.pool_purge_interval"),
        ("[upstreams.b]\nconnect_timeout = \"1s\"\n", "upstreams.b.url"),
        ("[upstreams.default]\nurl = \"http://x:1\"\n", "upstreams.default"),
        ("[upstreams.\"a b\"]\nurl = \"http://x:1\"\n", "upstreams.a b"),
        ("[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"nope\"\n", "routes[0].upstream"),
    ] {
        let p = dir.path().join("moat.toml");
        std::fs::write(&p, toml).unwrap();
        let (code, out, err) = moat_cmd(&["check", "--config", p.to_str().unwrap()], &[]);
        assert_ne!(code, 0, "{toml}");
        let all = out + &err;
        assert!(all.contains("moat.toml") && all.contains(key), "{toml}: {all}");
    }
}

/// A port on 127.0.0.1 with nothing listening.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn balancing_skips_an_address_that_is_down_without_failing_a_request() {
    init_crypto();
    let pki = Pki::new();
    let live = Upstream::ok().await;
    let live2 = Upstream::ok().await;
    let dead = dead_port();
    let c = pki.client();
    for balance in ["round_robin", "least_in_flight"] {
        let before = live.seen().len();
        let m = Moat::start(&format!(
            "{}[upstream]\nurls = [\"http://127.0.0.1:{dead}\", \"{}\"]\nbalance = \"{balance}\"\nfail_timeout = \"30s\"\n",
            pki.tls_toml(),
            live.url()
        ));
        for i in 0..10 {
            let (status, body) = get(&c, &m.url(&format!("/r{i}"))).await;
            assert_eq!((status, body.as_str()), (200, "ok from upstream"), "{balance}: request {i}");
        }
        assert_eq!(live.seen().len() - before, 10, "{balance}: every request reached the live address once");
        assert_eq!(reqwest::get(m.admin_url("/readyz")).await.unwrap().status(), 200, "one address up is ready");
    }

    // Both up: requests are shared.
    let m = Moat::start(&format!("{}[upstream]\nurls = [\"{}\", \"{}\"]\n", pki.tls_toml(), live.url(), live2.url()));
    let (a, b) = (live.seen().len(), live2.seen().len());
    for i in 0..10 {
        assert_eq!(get(&c, &m.url(&format!("/s{i}"))).await.0, 200);
    }
    assert_eq!((live.seen().len() - a, live2.seen().len() - b), (5, 5), "round robin over two live addresses");

    // No address up: 502, and /readyz names the upstream.
    let m = Moat::start(&format!(
        "{}[upstream]\nurls = [\"http://127.0.0.1:{dead}\", \"http://127.0.0.1:{}\"]\n",
        pki.tls_toml(),
        dead_port()
    ));
    let (status, body) = get(&c, &m.url("/x")).await;
    assert_opaque_502(status, &body);
    let r = reqwest::get(m.admin_url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("default"));
}

/// An upstream address that reads each request and then closes the
/// connection without answering; counts the requests it read.
async fn black_hole() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let n = n2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..k]);
                    if seen.ends_with(b"the-end") {
                        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                }
            });
        }
    });
    (port, n)
}

#[tokio::test]
async fn a_request_whose_body_was_sent_is_never_repeated_on_another_address() {
    init_crypto();
    let pki = Pki::new();
    let live = Upstream::ok().await;
    let (hole, swallowed) = black_hole().await;
    let m = Moat::start(&format!(
        "{}[upstream]\nurls = [\"http://127.0.0.1:{hole}\", \"{}\"]\n",
        pki.tls_toml(),
        live.url()
    ));
    let c = pki.client();
    let mut ok = 0;
    for i in 0..6 {
        let r = c.post(m.url(&format!("/p{i}"))).body(format!("payload {i} the-end")).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(status == 200 || status == 502, "{status}");
        ok += usize::from(status == 200);
    }
    assert_eq!(ok, 3, "round robin: half of the posts went to the address that breaks");
    assert_eq!(swallowed.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(live.seen().len(), 3, "a post the first address had read was sent again");
}

/// GETs `url` every 200 ms (for at most 15 s) until it answers `want`; the last status.
async fn status_becomes(c: &reqwest::Client, url: &str, want: u16) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = get(c, url).await.0;
        if status == want || std::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_rotated_upstream_ca_file_is_picked_up_without_a_restart() {
    init_crypto();
    let pki = Pki::new();
    let app_ca = Pki::new();
    let other_ca = Pki::new();
    let log: Log = Arc::default();
    let addr = tls_upstream(&app_ca, "tls-app", false, &log).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "upstream-ca.pem", &app_ca.ca_pem);
    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"https://localhost:{}\"\nca = \"{ca}\"\n",
        pki.tls_toml(),
        addr.port()
    ));
    let c = pki.client();
    assert_eq!(get(&c, &m.url("/a")).await.0, 200);

    // The bundle is replaced by one the app's certificate does not chain to:
    // new connections are refused from then on.
    let tmp = dir.path().join("upstream-ca.pem.new");
    std::fs::write(&tmp, &other_ca.ca_pem).unwrap();
    std::fs::rename(&tmp, dir.path().join("upstream-ca.pem")).unwrap();
    assert_eq!(status_becomes(&c, &m.url("/b"), 502).await, 502, "the rotated CA file was not picked up");

    // And back.
    std::fs::write(&tmp, &app_ca.ca_pem).unwrap();
    std::fs::rename(&tmp, dir.path().join("upstream-ca.pem")).unwrap();
    assert_eq!(status_becomes(&c, &m.url("/c"), 200).await, 200);
    assert!(m.log_lines().iter().any(|l| l.contains("reload")), "the reload is logged");
}

#[tokio::test]
async fn routes_match_on_host_names_and_choose_their_upstream() {
    init_crypto();
    let pki = Pki::new();
    let docs = Upstream::start(handler(|_, _| async { Response::new(full("docs app")) })).await;
    let ngx = Upstream::start(handler(|_, _| async { Response::new(full("ngx app")) })).await;
    let fallback = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"{}\"\n[upstreams.docs]\nurl = \"{}\"\n[upstreams.ngx]\nurl = \"{}\"\n\
         [[routes]]\nname = \"docs\"\npath = \"/\"\nhosts = [\"docs.example.com\"]\nupstream = \"docs\"\n\
         [[routes]]\nname = \"ngx\"\npath = \"/\"\nhosts = [\"*.example.org\"]\nupstream = \"ngx\"\n",
        pki.tls_toml(),
        fallback.url(),
        docs.url(),
        ngx.url()
    ));
    let port = m.https.port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let c = pki
        .builder()
        .resolve("docs.example.com", addr)
        .resolve("paperless.example.org", addr)
        .resolve("example.org", addr)
        .tls_danger_accept_invalid_hostnames(true)
        .build()
        .unwrap();
    for (host, want) in [
        ("docs.example.com", "docs app"),
        ("DOCS.Example.com", "docs app"),
        ("paperless.example.org", "ngx app"),
        ("example.org", "ok from upstream"),
        ("localhost", "ok from upstream"),
    ] {
        let url = format!("https://{host}:{port}/x");
        let (status, body) = get(&c, &url).await;
        assert_eq!((status, body.as_str()), (200, want), "{host}");
    }
    assert_eq!(docs.seen().len(), 2);
    assert_eq!(ngx.seen().len(), 1);
    // The earlier route covers a later one only for the same hosts.
    let (code, out, err) =
        moat_cmd(&["check", "--config", moat_config_dir(&m).join("moat.toml").to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hosts *.example.org"), "{out}");
}

/// The DER of the first certificate in a PEM file.
fn leaf_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    CertificateDer::pem_slice_iter(&pem).next().unwrap().unwrap().as_ref().to_vec()
}

/// The leaf certificate moat served for `url`, and the status.
async fn served_leaf(c: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = c.get(url).send().await.unwrap();
    let leaf = r.extensions().get::<reqwest::tls::TlsInfo>().and_then(|t| t.peer_certificate()).unwrap().to_vec();
    (r.status().as_u16(), leaf)
}

#[tokio::test]
async fn each_host_gets_its_own_certificate_by_sni_and_other_names_the_default() {
    init_crypto();
    let pki = Pki::new();
    let (dc, dk) = pki.write_named("docs", &["docs.example.com"]);
    let (wc, wk) = pki.write_named("wild", &["*.example.org"]);
    let (fc, _) = pki.write_server("server", &rcgen::PKCS_ECDSA_P256_SHA256);
    let docs = Upstream::start(handler(|_, _| async { Response::new(full("docs app")) })).await;
    let ngx = Upstream::start(handler(|_, _| async { Response::new(full("ngx app")) })).await;
    let fallback = Upstream::ok().await;
    // docs: names from the certificate; wild: names listed.
    let toml = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\
         [[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\nhosts = [\"*.example.org\"]\n\
         [upstream]\nurl = \"{}\"\n[upstreams.docs]\nurl = \"{}\"\n[upstreams.ngx]\nurl = \"{}\"\n\
         [[routes]]\nname = \"docs\"\npath = \"/\"\nhosts = [\"docs.example.com\"]\nupstream = \"docs\"\n\
         [[routes]]\nname = \"ngx\"\npath = \"/\"\nhosts = [\"*.example.org\"]\nupstream = \"ngx\"\n",
        fc.display(),
        pki.dir.path().join("server.key").display(),
        dc.display(),
        dk.display(),
        wc.display(),
        wk.display(),
        fallback.url(),
        docs.url(),
        ngx.url()
    );
    let m = Moat::start(&toml);
    let port = m.https.port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let names = ["docs.example.com", "paperless.example.org", "example.org", "other.example.com"];
    // Verifying client: the name is checked against the certificate served.
    let strict = names.iter().fold(pki.builder().tls_info(true), |b, n| b.resolve(n, addr)).build().unwrap();
    let (status, leaf) = served_leaf(&strict, &format!("https://docs.example.com:{port}/a")).await;
    assert_eq!((status, leaf == leaf_der(&dc)), (200, true), "docs.example.com gets its certificate");
    let (status, leaf) = served_leaf(&strict, &format!("https://paperless.example.org:{port}/a")).await;
    assert_eq!((status, leaf == leaf_der(&wc)), (200, true), "a name under *.example.org gets the wildcard one");
    assert_eq!(get(&strict, &format!("https://docs.example.com:{port}/b")).await.1, "docs app");
    assert_eq!(get(&strict, &format!("https://paperless.example.org:{port}/b")).await.1, "ngx app");
    // Names no entry lists get the default certificate (so a verifying client refuses them).
    assert!(strict.get(format!("https://other.example.com:{port}/")).send().await.is_err());
    let lax = names
        .iter()
        .fold(pki.builder().tls_info(true).tls_danger_accept_invalid_hostnames(true), |b, n| b.resolve(n, addr))
        .build()
        .unwrap();
    for n in ["example.org", "other.example.com"] {
        let (status, leaf) = served_leaf(&lax, &format!("https://{n}:{port}/")).await;
        assert_eq!((status, leaf == leaf_der(&fc)), (200, true), "{n} gets the default certificate");
    }
    let (status, leaf) = served_leaf(&pki.builder().tls_info(true).build().unwrap(), &m.url("/")).await;
    assert_eq!((status, leaf == leaf_der(&fc)), (200, true), "no SNI (an IP address): the default");

    // A rotated per-host certificate is served to new connections without a restart.
    let (nc, nk) = pki.write_named("docs-next", &["docs.example.com"]);
    std::fs::rename(&nk, &dk).unwrap();
    std::fs::rename(&nc, &dc).unwrap();
    let want = leaf_der(&dc);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let fresh = pki.builder().tls_info(true).resolve("docs.example.com", addr).build().unwrap();
        let (_, leaf) = served_leaf(&fresh, &format!("https://docs.example.com:{port}/r")).await;
        if leaf == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rotated docs certificate was not picked up");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, out, err) =
        moat_cmd(&["check", "--config", moat_config_dir(&m).join("moat.toml").to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("for docs.example.com") && out.contains("for *.example.org"), "{out}");
}

#[tokio::test]
async fn bad_per_host_certificates_fail_at_start_naming_the_key() {
    init_crypto();
    let pki = Pki::new();
    let (dc, dk) = pki.write_named("docs", &["docs.example.com"]);
    let (oc, ok) = pki.write_named("other", &["docs.example.com"]);
    let tls = pki.tls_toml();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!(
                "{tls}[[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n[[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n",
                dc.display(),
                dk.display(),
                oc.display(),
                ok.display()
            ),
            "tls.certificates[1].hosts[0]",
        ),
        (format!("{tls}[[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n", dc.display(), ok.display()), "tls.certificates[0].cert"),
        (format!("{tls}[[tls.certificates]]\ncert = \"{}\"\n", dc.display()), "tls.certificates[0].key"),
        (
            format!("{tls}[[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\nhosts = [\"bad name\"]\n", dc.display(), dk.display()),
            "tls.certificates[0].hosts[0]",
        ),
        (
            format!("[[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n", dc.display(), dk.display()),
            "tls.certificates: needs tls.cert",
        ),
    ];
    for (toml, key) in cases {
        let path = dir.path().join("moat.toml");
        std::fs::write(&path, toml).unwrap();
        let (code, out, err) = moat_cmd(&["check", "--config", path.to_str().unwrap()], &[]);
        assert_ne!(code, 0, "{key}: {out}");
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[tokio::test]
async fn active_health_checks_take_a_failing_address_out_and_bring_it_back() {
    init_crypto();
    let pki = Pki::new();
    let a = Upstream::start(handler(|_, _| async { Response::new(full("from a")) })).await;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    let b = Upstream::start(handler(move |parts, _| {
        let ok = h.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            let mut r = Response::new(full("from b"));
            if parts.uri.path() == "/healthz" && !ok {
                *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            r
        }
    }))
    .await;
    let m = Moat::start(&format!(
        "{}[upstream]\nurls = [\"{}\", \"{}\"]\nhealth_path = \"/healthz\"\nhealth_interval = \"1s\"\n",
        pki.tls_toml(),
        a.url(),
        b.url()
    ));
    // b accepts connections but fails its health check: a passive check
    // would keep sending it requests; the active one takes it out.
    let failed = m.wait_log("failed its health check", std::time::Duration::from_secs(15)).await;
    assert!(failed.as_deref().is_some_and(|l| l.contains(&b.addr.to_string())), "{failed:?}");
    let c = pki.client();
    let app_requests = |u: &Upstream| u.seen().iter().filter(|s| s.uri != "/healthz").count();
    for i in 0..8 {
        assert_eq!(get(&c, &m.url(&format!("/x{i}"))).await, (200, "from a".to_string()), "request {i}");
    }
    assert_eq!(app_requests(&b), 0, "the failing address got requests");
    let series = format!("moat_upstream_address_up{{upstream=\"default\",address=\"{}\"}}", b.addr);
    assert_eq!(metric(&m, &series).await, 0.0);
    assert_eq!(reqwest::get(m.admin_url("/readyz")).await.unwrap().status(), 200, "a is up: ready");

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(m.wait_log("passed its health check again", std::time::Duration::from_secs(15)).await.is_some());
    for i in 0..8 {
        assert_eq!(get(&c, &m.url(&format!("/y{i}"))).await.0, 200);
    }
    assert_eq!(app_requests(&b), 4, "round robin over both again");
    assert_eq!(metric(&m, &series).await, 1.0);
}

#[tokio::test]
async fn upstream_errors_are_counted_per_upstream() {
    init_crypto();
    let pki = Pki::new();
    let live = Upstream::ok().await;
    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"{}\"\n[upstreams.files]\nurl = \"http://127.0.0.1:{}\"\n\
         [[routes]]\nname = \"files\"\npath = \"/files/\"\nupstream = \"files\"\n",
        pki.tls_toml(),
        live.url(),
        dead_port()
    ));
    let c = pki.client();
    assert_eq!(get(&c, &m.url("/files/a")).await.0, 502);
    assert_eq!(get(&c, &m.url("/other")).await.0, 200);
    assert_eq!(metric(&m, "moat_upstream_errors_total{kind=\"connect\",upstream=\"files\"}").await, 1.0);
    let text = scrape(&m).await;
    assert!(
        text.contains("moat_upstream_errors_total{kind=\"connect\",upstream=\"default\"} 0"),
        "every upstream's series exists at zero: {text}"
    );
}

/// A raw HTTP/1.1 upstream on 127.0.0.1 that counts the connections it
/// accepted and those still open. Each connection answers its requests in
/// turn (`GET /big` streams 4 MiB, `GET /slow` answers `ok <n>` with the
/// connection's number after 300 ms, anything else at once); with `close_idle_after`, it closes a connection that
/// has been idle that long after a response, without a word (as an upstream
/// with a short keep-alive timeout does).
struct CountingUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingUpstream {
    async fn start(close_idle_after: Option<std::time::Duration>) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (acc, op) = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let n = acc.fetch_add(1, Ordering::SeqCst) + 1;
                op.fetch_add(1, Ordering::SeqCst);
                let op = op.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    'conn: loop {
                        // One request head (the tests send no bodies).
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            let read = match close_idle_after {
                                Some(t) if buf.is_empty() => match tokio::time::timeout(t, s.read(&mut chunk)).await {
                                    Ok(r) => r,
                                    Err(_) => break 'conn,
                                },
                                _ => s.read(&mut chunk).await,
                            };
                            match read {
                                Ok(0) | Err(_) => break 'conn,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end);
                        if head.starts_with("GET /slow ") {
                            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        }
                        let sent = if head.starts_with("GET /big ") {
                            let size = 4 << 20;
                            let h = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                            let mut ok = s.write_all(h.as_bytes()).await.is_ok();
                            let block = vec![b'b'; 64 << 10];
                            let mut left = size;
                            while ok && left > 0 {
                                ok = s.write_all(&block[..left.min(block.len())]).await.is_ok();
                                left -= left.min(block.len());
                            }
                            ok
                        } else {
                            let body = format!("ok {n}");
                            let r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                            s.write_all(r.as_bytes()).await.is_ok()
                        };
                        if !sent {
                            break;
                        }
                    }
                    op.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { addr, accepted, open }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn upstream_connections_are_reused_then_closed_after_the_idle_timeout() {
    init_crypto();
    let pki = Pki::new();
    let up = CountingUpstream::start(None).await;
    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"http://{}\"\npool_idle_timeout = \"1s\"\n",
        pki.tls_toml(),
        up.addr
    ));
    // One client connection, requests one after another: one upstream connection.
    let c = pki.builder().pool_max_idle_per_host(1).build().unwrap();
    for _ in 0..5 {
        assert_eq!(get(&c, &m.url("/x")).await, (200, "ok 1".to_string()));
    }
    assert_eq!(up.accepted(), 1, "the upstream connection is reused");
    assert_eq!(up.open(), 1);
    // Idle for longer than pool_idle_timeout: moat closes it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while up.open() > 0 {
        assert!(std::time::Instant::now() < deadline, "the idle upstream connection was never closed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The next request opens a new one.
    assert_eq!(get(&c, &m.url("/x")).await, (200, "ok 2".to_string()));
}

/// moat with `pool_purge_interval = purge` (and an idle timeout of 60 s)
/// after a burst: twelve requests at once over one HTTP/2 connection (one
/// moat worker, one pool), each held 300 ms by the upstream, so twelve
/// upstream connections.
async fn after_burst(purge: &str) -> (Pki, CountingUpstream, Moat, reqwest::Client) {
    init_crypto();
    let pki = Pki::new();
    let up = CountingUpstream::start(None).await;
    let m = Moat::start(&format!(
        "{}[upstream]\nurl = \"http://{}\"\npool_idle_timeout = \"60s\"\npool_purge_interval = \"{purge}\"\n",
        pki.tls_toml(),
        up.addr
    ));
    let c = pki.builder().http2_prior_knowledge().build().unwrap();
    burst(&m, &c).await;
    assert_eq!(up.accepted(), 12, "one upstream connection per request in flight");
    (pki, up, m, c)
}

async fn burst(m: &Moat, c: &reqwest::Client) {
    // The client's connection first, so that all twelve share it.
    assert_eq!(get(c, &m.url("/x")).await.0, 200);
    let url = m.url("/slow");
    let all = (0..12).map(|_| get(c, &url));
    for (status, body) in futures_util::future::join_all(all).await {
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn idle_upstream_connections_left_by_a_burst_are_purged_down_to_one() {
    let (_pki, up, m, c) = after_burst("200ms").await;
    // Unused through whole intervals, half of them are closed each time,
    // long before the idle timeout, down to one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while up.open() > 1 {
        assert!(std::time::Instant::now() < deadline, "{} idle upstream connections were never purged", up.open());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The last one is kept (for the idle timeout) and serves the next request.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(up.open(), 1, "the last idle connection is kept");
    let (status, body) = get(&c, &m.url("/x")).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("ok "), "{body}");
    assert_eq!(up.accepted(), 12, "no new upstream connection for it");
}

#[tokio::test]
async fn with_the_purge_off_idle_upstream_connections_wait_for_the_idle_timeout() {
    let (_pki, up, m, c) = after_burst("0s").await;
    // Longer than the purge of the test above takes to close eleven (four
    // halvings, 200 ms apart).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(up.open(), 12, "no purge: the idle connections are kept");
    // ...and reused: a second burst opens none.
    burst(&m, &c).await;
    assert_eq!(up.accepted(), 12);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_costs_no_request() {
    init_crypto();
    let pki = Pki::new();
    let up = CountingUpstream::start(Some(std::time::Duration::from_millis(100))).await;
    let m = Moat::start(&format!("{}[upstream]\nurl = \"http://{}\"\n", pki.tls_toml(), up.addr));
    let c = pki.builder().pool_max_idle_per_host(1).build().unwrap();
    for i in 1..=4 {
        // Each request finds its pooled connection closed by the upstream.
        assert_eq!(get(&c, &m.url("/x")).await, (200, format!("ok {i}")));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(up.accepted(), 4);
}

#[tokio::test]
async fn a_response_the_client_abandoned_never_returns_its_connection_to_the_pool() {
    init_crypto();
    let pki = Pki::new();
    let up = CountingUpstream::start(None).await;
    let m = Moat::start(&format!("{}[upstream]\nurl = \"http://{}\"\n", pki.tls_toml(), up.addr));
    let c = pki.builder().pool_max_idle_per_host(1).build().unwrap();
    // The client reads a little of a large response, then goes away.
    let mut res = c.get(m.url("/big")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.chunk().await.unwrap().is_some());
    drop(res);
    // moat closes that upstream connection (the rest of its body is never read)...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while up.open() > 0 {
        assert!(std::time::Instant::now() < deadline, "the abandoned upstream connection stayed open");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // ...and later requests get whole, right answers on a new one.
    for _ in 0..3 {
        assert_eq!(get(&c, &m.url("/x")).await, (200, "ok 2".to_string()));
    }
    assert_eq!(up.accepted(), 2);
}
