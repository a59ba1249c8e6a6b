//! The pooled keep-alive HTTP/1.1 clients to the upstreams (each a
//! [`Pool`] of moat's own over one connector). An upstream is reached over plain TCP
//! (`http://`), TLS (`https://`: verified against `ca` or the system roots,
//! with `server_name` as SNI and verification name, optionally presenting a
//! client certificate), or a unix socket (`unix:/path.sock`).
//!
//! Each configured upstream has its own client (`Upstream::client`, built
//! with the config). The default plain-HTTP upstream also gets one client
//! per worker thread (`proxy::send`), so its pooled connections are driven
//! by the worker that uses them.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response, Uri};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::pool::{Pool, PooledBody, Retention, SendError};
use crate::body::Body;

/// A client for one upstream: a pool of connections opened over plain TCP,
/// TLS or a unix socket. Clones share the pool.
#[derive(Clone, Debug)]
pub enum UpstreamClient {
    /// `http://`
    Http(Pool<HttpConnector>),
    /// `https://`
    Https(Pool<HttpsConnector<HttpConnector>>),
    /// `unix:/path`
    Unix(Pool<UnixConnector>),
}

impl UpstreamClient {
    /// Sends `req` (origin-form URI) to the address `authority`.
    pub async fn send(&self, authority: &Authority, req: Request<Body>) -> Result<Response<PooledBody>, SendError> {
        match self {
            Self::Http(p) => p.send(authority, req).await,
            Self::Https(p) => p.send(authority, req).await,
            Self::Unix(p) => p.send(authority, req).await,
        }
    }

    /// Sends `req`, whose absolute-form URI names the address, with the
    /// URI in origin form.
    pub fn request(
        &self,
        mut req: Request<Body>,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + Send + 'static {
        let this = self.clone();
        let authority = req.uri().authority().cloned();
        let origin_form = req.uri().path_and_query().cloned().map_or_else(|| Uri::from_static("/"), Uri::from);
        *req.uri_mut() = origin_form;
        async move {
            let Some(authority) = authority else {
                return Err(SendError::Connect("request URI without an authority".into()));
            };
            this.send(&authority, req).await
        }
    }

    /// Whether `self` and `other` share their pool.
    pub fn same_pool(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Http(a), Self::Http(b)) => a.same(b),
            (Self::Https(a), Self::Https(b)) => a.same(b),
            (Self::Unix(a), Self::Unix(b)) => a.same(b),
            _ => false,
        }
    }
}

fn tcp(connect_timeout: Duration, tls: bool) -> HttpConnector {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(connect_timeout));
    conn.set_nodelay(true);
    conn.enforce_http(!tls);
    conn.set_keepalive(Some(Duration::from_secs(60)));
    conn
}

/// Builds a client: over TLS with `tls`, to the socket `unix`, else plain TCP.
pub(crate) fn build(
    tls: Option<&UpstreamTls>,
    unix: Option<&Path>,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle: usize,
    pool_purge_interval: Duration,
) -> UpstreamClient {
    let idle = Retention { timeout: pool_idle_timeout, max: pool_max_idle, purge: pool_purge_interval };
    if let Some(path) = unix {
        let unix = UnixConnector { path: Arc::new(path.to_path_buf()), timeout: connect_timeout };
        return UpstreamClient::Unix(Pool::new(unix, "http", idle));
    }
    match tls {
        None => UpstreamClient::Http(Pool::new(tcp(connect_timeout, false), "http", idle)),
        Some(tls) => {
            let builder = HttpsConnectorBuilder::new().with_tls_config((*tls.config).clone()).https_only();
            let builder = match &tls.server_name {
                Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone())),
                None => builder,
            };
            let https = builder.enable_http1().wrap_connector(tcp(connect_timeout, true));
            UpstreamClient::Https(Pool::new(https, "https", idle))
        }
    }
}

/// The TLS client settings of an `https://` upstream: roots from `ca` (a
/// PEM bundle) or the system's, TLS 1.2+ (1.3 only with `tls13_only`), and
/// the client certificate chain and key for mTLS when given.
pub(crate) fn tls_config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
    tls13_only: bool,
) -> Result<rustls::ClientConfig, String> {
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls13_only { &[&rustls::version::TLS13] } else { &[&rustls::version::TLS13, &rustls::version::TLS12] };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("{}: {e}", ca.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{}: no CA certificate in the file", ca.display()));
            }
        }
        None => {
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err("no system root certificates found: set ca to the upstream's CA bundle".into());
            }
        }
    }
    let builder = builder.with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("{}: no certificate in the file", cert.display()));
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate and key: {e}"))
        }
    }
}

/// The SNI and verification name for `name` (a DNS name or an IP literal).
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|e| format!("\"{name}\": {e}"))
}

/// TLS settings of an `https://` upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Roots, protocol versions, client certificate.
    pub config: Arc<rustls::ClientConfig>,
    /// SNI and the name its certificate must carry (`None`: each address's host).
    pub server_name: Option<ServerName<'static>>,
}

impl UpstreamTls {
    /// Settings for an upstream whose certificate is checked by `config` for `server_name`.
    pub fn new(config: rustls::ClientConfig, server_name: Option<ServerName<'static>>) -> Self {
        Self { config: Arc::new(config), server_name }
    }
}

/// Connects to a unix socket, whatever the URI says.
#[derive(Clone, Debug)]
pub struct UnixConnector {
    path: Arc<PathBuf>,
    timeout: Duration,
}

impl tower::Service<Uri> for UnixConnector {
    type Response = UnixIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<UnixIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let path = self.path.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let s = tokio::time::timeout(timeout, tokio::net::UnixStream::connect(&*path))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "unix socket connect timed out"))??;
            Ok(UnixIo(TokioIo::new(s)))
        })
    }
}

/// A unix-socket connection to the upstream.
#[derive(Debug)]
pub struct UnixIo(TokioIo<tokio::net::UnixStream>);

impl hyper::rt::Read for UnixIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UnixIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
