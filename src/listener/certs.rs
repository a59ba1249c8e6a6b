//! The server certificate: loaded from PEM files (RSA, ECDSA or Ed25519
//! keys), or a self-signed development certificate generated at start.
//! [`CertStore`] resolves it for every handshake from an `ArcSwap`, without
//! I/O; a watcher on the files' directories swaps in a new pair when the
//! files change (editors' renames and Kubernetes' `..data` symlink swap
//! included). A broken new pair is refused and logged and the last good one
//! keeps serving; open connections are never touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The reason.
        reason: String,
    },
    /// No PEM certificate in the chain file.
    #[error("{0}: no PEM certificate found")]
    NoCert(String),
    /// The key file holds no usable key.
    #[error("{0}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519)")]
    BadKey(String),
    /// Certificate and key are not a pair.
    #[error("the certificate and the key do not match")]
    Mismatch,
    /// Anything the certificate generator or parser refused.
    #[error("{0}")]
    Other(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crate::listener::tls::provider())
}

/// Loads and checks a PEM chain and key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| CertError::Read { path: p.display().to_string(), reason: e.kind().to_string() })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    pair_from_pem(&cert_pem, &key_pem, &cert.display().to_string(), &key.display().to_string())
}

/// Builds a [`CertifiedKey`] from PEM bytes.
pub fn pair_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<CertifiedKey, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| CertError::NoCert(cert_name.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::NoCert(cert_name.to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertError::BadKey(key_name.to_string()))?;
    let signing = provider().key_provider.load_private_key(key).map_err(|_| CertError::BadKey(key_name.to_string()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| CertError::Mismatch)?;
    Ok(ck)
}

/// Loads a PEM CA bundle for client-certificate verification.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, CertError> {
    let pem = std::fs::read(path)
        .map_err(|e| CertError::Read { path: path.display().to_string(), reason: e.kind().to_string() })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|_| CertError::NoCert(path.display().to_string()))?;
        roots.add(c).map_err(|e| CertError::Other(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(CertError::NoCert(path.display().to_string()));
    }
    Ok(roots)
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
pub fn self_signed() -> Result<CertifiedKey, CertError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| CertError::Other(e.to_string()))?;
    pair_from_pem(ck.cert.pem().as_bytes(), ck.signing_key.serialize_pem().as_bytes(), "self-signed", "self-signed")
}

/// SHA-256 fingerprint of the leaf certificate, `AB:CD:...`.
pub fn fingerprint(ck: &CertifiedKey) -> String {
    let Some(leaf) = ck.cert.first() else {
        return String::new();
    };
    let d = Sha256::digest(leaf.as_ref());
    d.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// `notAfter` of the leaf, in seconds since the epoch.
pub fn not_after(ck: &CertifiedKey) -> Option<i64> {
    let leaf = ck.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The current certificate, swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// A store serving `ck`.
    pub fn new(ck: CertifiedKey) -> Self {
        Self { current: ArcSwap::from_pointee(ck) }
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Replaces the certificate for new handshakes.
    pub fn replace(&self, ck: CertifiedKey) {
        self.current.store(Arc::new(ck));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Watches the cert and key files and reloads the store when they change.
/// Returns the watcher, which must be kept alive.
pub fn watch(
    store: Arc<CertStore>,
    cert: PathBuf,
    key: PathBuf,
    on_reload: impl Fn(&CertifiedKey) + Send + Sync + 'static,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.try_send(());
        }
    })?;
    let mut dirs: Vec<PathBuf> = [&cert, &key].iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
    dirs.dedup();
    for d in &dirs {
        let d = if d.as_os_str().is_empty() { Path::new(".") } else { d.as_path() };
        watcher.watch(d, notify::RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        let mut last = fingerprint(&store.current());
        while rx.recv().await.is_some() {
            // Debounce: writers touch the files in several steps.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let (c, k) = (cert.clone(), key.clone());
            let loaded = tokio::task::spawn_blocking(move || load_pair(&c, &k)).await;
            match loaded {
                Ok(Ok(ck)) => {
                    let fp = fingerprint(&ck);
                    if fp != last {
                        tracing::info!(fingerprint = %fp, cert = %cert.display(), "certificate reloaded");
                        on_reload(&ck);
                        store.replace(ck);
                        last = fp;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, cert = %cert.display(), "new certificate refused; the previous one keeps serving")
                }
                Err(_) => tracing::error!("certificate reload task failed"),
            }
        }
    });
    Ok(watcher)
}
