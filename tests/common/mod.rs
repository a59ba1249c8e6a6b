//! Test harness: a test PKI made with rcgen at test time, in-process hyper
//! upstreams on 127.0.0.1:0 that record what they receive, moat started as a
//! real process from a TOML string, and TLS clients that trust the test CA.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

// ---------------------------------------------------------------- PKI

/// A CA and the certificates it signs.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "moat test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        std::fs::write(dir.path().join("ca.crt"), &ca_pem).unwrap();
        let ca = rcgen::Issuer::new(params, key);
        Self { dir, ca, ca_pem }
    }

    /// A server certificate for localhost/127.0.0.1/::1 with the given key algorithm: (cert_pem, key_pem).
    pub fn server_cert(&self, alg: &'static rcgen::SignatureAlgorithm, cn: &str) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a server pair as `name.crt` / `name.key`; returns their paths.
    pub fn write_server(&self, name: &str, alg: &'static rcgen::SignatureAlgorithm) -> (PathBuf, PathBuf) {
        let (c, k) = self.server_cert(alg, name);
        let cp = self.dir.path().join(format!("{name}.crt"));
        let kp = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cp, c).unwrap();
        std::fs::write(&kp, k).unwrap();
        (cp, kp)
    }

    /// Writes a server pair for the DNS `names` as `file.crt` / `file.key`; returns their paths.
    pub fn write_named(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or(file));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cp = self.dir.path().join(format!("{file}.crt"));
        let kp = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cp, cert.pem()).unwrap();
        std::fs::write(&kp, key.serialize_pem()).unwrap();
        (cp, kp)
    }

    /// A client certificate: PEM of cert + key (reqwest identity format).
    pub fn client_identity_pem(&self) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "test client");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    /// A `[tls]` table serving a fresh ECDSA certificate signed by this CA.
    pub fn tls_toml(&self) -> String {
        let (c, k) = self.write_server("server", &rcgen::PKCS_ECDSA_P256_SHA256);
        format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", c.display(), k.display())
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A reqwest client trusting only the test CA.
    pub fn client(&self) -> reqwest::Client {
        self.builder().build().unwrap()
    }

    pub fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()])
            .no_proxy()
            .timeout(Duration::from_secs(120))
    }

    /// A rustls client config trusting the test CA (ALPN http/1.1).
    pub fn rustls_client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

use rustls_pki_types::pem::PemObject;

// ---------------------------------------------------------------- upstream

/// What a test upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body_len: u64,
    pub sha256: String,
    /// The body ended cleanly (not cut by a reset).
    pub complete: bool,
}

pub type Handler = Arc<
    dyn Fn(
            http::request::Parts,
            Bytes,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<TestBody>> + Send>>
        + Send
        + Sync,
>;

/// A hyper HTTP/1.1 upstream on 127.0.0.1:0. The body is hashed as it
/// streams (never kept whole, unless `keep_body`), then `handler` answers.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Notified when a request's head arrives.
    pub arrived: Arc<tokio::sync::Notify>,
    /// Request heads received so far.
    pub heads: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// An upstream that answers every request with `handler(parts, first 64 KiB of the body)`.
    pub async fn start(handler: Handler) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, handler)
    }

    pub fn serve(listener: tokio::net::TcpListener, handler: Handler) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let heads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s2, a2, h2) = (seen.clone(), arrived.clone(), heads.clone());
        let task = tokio::spawn(async move {
            // Connection tasks live in this set: stopping the upstream drops them all.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                while conns.try_join_next().is_some() {}
                let (seen, arrived, handler, heads) = (s2.clone(), a2.clone(), handler.clone(), h2.clone());
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (seen, arrived, handler, heads) =
                            (seen.clone(), arrived.clone(), handler.clone(), heads.clone());
                        async move {
                            heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            arrived.notify_waiters();
                            let (parts, mut body) = req.into_parts();
                            let mut h = Sha256::new();
                            let mut n = 0u64;
                            let mut head = Vec::new();
                            let mut complete = true;
                            while let Some(f) = body.frame().await {
                                match f {
                                    Ok(f) => {
                                        if let Some(d) = f.data_ref() {
                                            h.update(d);
                                            n += d.len() as u64;
                                            if head.len() < 65536 {
                                                head.extend_from_slice(&d[..d.len().min(65536 - head.len())]);
                                            }
                                        }
                                    }
                                    Err(_) => {
                                        complete = false;
                                        break;
                                    }
                                }
                            }
                            seen.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers.clone(),
                                body_len: n,
                                sha256: hex::encode(h.finalize()),
                                complete,
                            });
                            Ok::<_, Infallible>(handler(parts, Bytes::from(head)).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, seen, arrived, heads, task }
    }

    /// An upstream answering 200 "ok from upstream".
    pub async fn ok() -> Self {
        Self::start(handler(|_, _| async { Response::new(full("ok from upstream")) })).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (bounded) until `n` request heads have arrived.
    pub async fn wait_heads(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.heads.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "upstream got fewer than {n} requests");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(http::request::Parts, Bytes) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<TestBody>> + Send + 'static,
{
    Arc::new(move |p, b| Box::pin(f(p, b)))
}

// ---------------------------------------------------------------- moat process

/// A running moat process.
pub struct Moat {
    pub child: Child,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<VecDeque<String>>>,
    pub stderr: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

pub fn moat_bin() -> &'static str {
    env!("CARGO_BIN_EXE_moat")
}

impl Moat {
    /// Starts moat with `toml` (listen addresses default to 127.0.0.1:0 when absent).
    pub fn start(toml: &str) -> Self {
        Self::start_env(toml, &[])
    }

    pub fn start_env(toml: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut text = toml.to_string();
        if !text.contains("[listen]") {
            text = format!("[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{text}");
        }
        let config_path = dir.path().join("moat.toml");
        std::fs::write(&config_path, text).unwrap();
        let mut cmd = Command::new(moat_bin());
        cmd.arg("run").arg("--config").arg(&config_path);
        Self::spawn(cmd, env, dir, config_path)
    }

    /// Starts `moat run` with no config file at all (built-in defaults + `env`).
    pub fn start_no_config(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(moat_bin());
        cmd.arg("run");
        let p = dir.path().join("none");
        Self::spawn(cmd, env, dir, p)
    }

    fn spawn(mut cmd: Command, env: &[(&str, &str)], dir: tempfile::TempDir, config_path: PathBuf) -> Self {
        cmd.env("MOAT_LOG", "info,moat=debug").env_remove("MOAT_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr)>();
        let out = child.stdout.take().unwrap();
        let l2 = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.contains("moat is serving") {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        let https = v["https"].as_str().and_then(|s| s.parse().ok());
                        let admin = v["admin"].as_str().and_then(|s| s.parse().ok());
                        if let (Some(h), Some(a)) = (https, admin) {
                            let _ = tx.send((h, a));
                        }
                    }
                }
                l2.lock().unwrap().push_back(line);
            }
        });
        let err = child.stderr.take().unwrap();
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = e2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (https, admin) = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("moat did not start.\nstderr:\n{}\nstdout:\n{:?}", stderr.lock().unwrap(), logs.lock().unwrap());
            }
        };
        Moat { child, https, admin, logs, stderr, dir, config_path }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.https.port(), path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// All log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().iter().cloned().collect()
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub async fn wait_log(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(l) = self.logs.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// The access-log line of a request id (bounded wait).
    pub async fn access_line(&self, request_id: &str) -> serde_json::Value {
        let needle = format!("\"request_id\":\"{request_id}\"");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(&needle) && l.contains("\"moat::access\""))
                .cloned();
            if let Some(l) = found {
                return serde_json::from_str(&l).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no access log line for {request_id}: {:?}", self.log_lines());
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(st.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        rss_field(self.child.id(), "VmHWM:")
    }

    pub fn rss_kib(&self) -> u64 {
        rss_field(self.child.id(), "VmRSS:")
    }
}

pub fn rss_field(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Drop for Moat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `moat` with arguments; returns (exit code, stdout, stderr).
pub fn moat_cmd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(moat_bin());
    cmd.args(args).env_remove("MOAT_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------- data

/// Deterministic pseudo-random bytes (xorshift), generated in chunks.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// A stream of `total` deterministic bytes in 64 KiB chunks, and its sha256.
pub fn noise_stream(
    seed: u64,
    total: u64,
) -> (impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, String) {
    let mut n = Noise::new(seed);
    let mut h = Sha256::new();
    let mut left = total;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let k = (left as usize).min(buf.len());
        n.fill(&mut buf[..k]);
        h.update(&buf[..k]);
        left -= k as u64;
    }
    let digest = hex::encode(h.finalize());
    let mut n = Noise::new(seed);
    let mut left = total;
    let stream = futures_util::stream::poll_fn(move |_| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        let k = (left as usize).min(64 * 1024);
        let mut b = vec![0u8; k];
        n.fill(&mut b);
        left -= k as u64;
        std::task::Poll::Ready(Some(Ok(Bytes::from(b))))
    });
    (stream, digest)
}

/// Reads until the peer closes the connection (EOF or error); `false` if it
/// is still open after `within`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A raw TLS connection to moat (for protocol-level tests).
pub async fn tls_connect(pki: &Pki, addr: SocketAddr) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(pki.rustls_client());
    conn.connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

pub fn moat_config_dir(m: &Moat) -> &Path {
    m.dir.path()
}

/// Installs the process-wide rustls provider once (reqwest and the raw clients share it).
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub use http_body_util;
pub type Executor = TokioExecutor;
pub mod clamd;
pub mod samples;

// ---------------------------------------------------------------- connection-level helpers

/// A raw TLS connection offering only `h2` in ALPN (for raw HTTP/2 clients).
pub async fn tls_connect_h2(pki: &Pki, addr: SocketAddr) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut cfg = (*pki.rustls_client()).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads an HTTP/1 response head (up to the blank line, bounded in size and
/// time); empty if the connection closed or nothing came within `within`.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut b = [0u8; 1];
        while head.len() < 16 * 1024 && !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut b).await {
                Ok(1) => head.push(b[0]),
                _ => break,
            }
        }
    })
    .await;
    String::from_utf8_lossy(&head).into_owned()
}

/// moat's `/metrics` exposition text, from the admin listener.
pub async fn scrape(m: &Moat) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(m.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sends `bytes` on a fresh HTTP/1.1 TLS connection and reads until the
/// server closes it or `within` passes. Returns what was read.
pub async fn raw_h1(pki: &Pki, m: &Moat, bytes: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(pki, m.https).await;
    tls.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `moat hash-password` for `pass`: an argon2id PHC string.
pub fn hash_password(pass: &str) -> String {
    use std::io::Write;
    let mut child =
        Command::new(moat_bin()).arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{pass}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The value of one series in moat's `/metrics` (e.g.
/// `moat_upstream_errors_total{kind="protocol"}`), 0 if absent.
pub async fn metric(m: &Moat, series: &str) -> f64 {
    let text = scrape(m).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Increments its counter when dropped.
pub struct DropCount(pub Arc<std::sync::atomic::AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An endless response body (64 KiB chunks); `dropped` counts how many such
/// bodies were dropped (the exchange was cancelled).
pub fn endless_body(dropped: Arc<std::sync::atomic::AtomicUsize>) -> TestBody {
    static CHUNK: [u8; 65536] = [b'x'; 65536];
    let s = futures_util::stream::unfold(DropCount(dropped), |g| async move {
        Some((
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(Bytes::from_static(&CHUNK))),
            g,
        ))
    });
    http_body_util::StreamBody::new(s).boxed()
}

/// Waits (bounded) until `f` holds; false if it did not within `within`.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

// ---------------------------------------------------------------- a real browser

/// The Chromium binary, or None (then the caller skips; under CI=true it
/// panics instead).
pub fn chromium() -> Option<String> {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(c.to_string());
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("chromium is required under CI=true (apt-get install chromium)");
    }
    eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
    None
}

/// Opens `url` in headless Chromium and waits (bounded) for the page to
/// report a result to `reports`.
pub async fn run_browser(chrome: &str, url: &str, reports: &Arc<Mutex<Vec<String>>>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let result = loop {
        if let Some(r) = reports.lock().unwrap().pop() {
            break r;
        }
        if std::time::Instant::now() > deadline {
            break "timeout: the page reported nothing".to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}
