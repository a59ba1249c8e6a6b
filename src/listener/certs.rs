//! The server certificates: loaded from PEM files (RSA, ECDSA or Ed25519
//! keys), or a self-signed development certificate generated at start.
//! [`CertStore`] resolves one for every handshake from `ArcSwap`s, without
//! I/O: the certificate of `[[tls.certificates]]` whose hosts name the
//! client's SNI (exact names first, then the longest `*.suffix`), else the
//! default. A watcher on the files' directories swaps in a new pair when
//! the files change (editors' renames and Kubernetes' `..data` symlink swap
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

use crate::config::HostRule;

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

/// The DNS names (subject alternative names) of the leaf, lowercase.
pub fn dns_names(ck: &CertifiedKey) -> Vec<String> {
    let Some(leaf) = ck.cert.first() else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Which certificate of a [`CertStore`]: the default, or the i-th of
/// `[[tls.certificates]]`.
pub type Slot = Option<usize>;

#[derive(Debug)]
struct SniEntry {
    hosts: Vec<HostRule>,
    ck: ArcSwap<CertifiedKey>,
}

/// The served certificates, each swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    sni: Vec<SniEntry>,
}

impl CertStore {
    /// A store serving `ck` to everyone.
    pub fn new(ck: CertifiedKey) -> Self {
        Self { current: ArcSwap::from_pointee(ck), sni: Vec::new() }
    }

    /// A store serving each of `sni` to the names it lists, `default` to the rest.
    pub fn with_sni(default: CertifiedKey, sni: Vec<(Vec<HostRule>, CertifiedKey)>) -> Self {
        let sni = sni.into_iter().map(|(hosts, ck)| SniEntry { hosts, ck: ArcSwap::from_pointee(ck) }).collect();
        Self { current: ArcSwap::from_pointee(default), sni }
    }

    /// The default certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// The certificate in `slot` (the default for an unknown index).
    pub fn get(&self, slot: Slot) -> Arc<CertifiedKey> {
        match slot.and_then(|i| self.sni.get(i)) {
            Some(e) => e.ck.load_full(),
            None => self.current.load_full(),
        }
    }

    /// Replaces the default certificate for new handshakes.
    pub fn replace(&self, ck: CertifiedKey) {
        self.current.store(Arc::new(ck));
    }

    /// Replaces the certificate in `slot` for new handshakes.
    pub fn replace_at(&self, slot: Slot, ck: CertifiedKey) {
        match slot.and_then(|i| self.sni.get(i)) {
            Some(e) => e.ck.store(Arc::new(ck)),
            None => self.current.store(Arc::new(ck)),
        }
    }

    /// The earliest `notAfter` of every served certificate.
    pub fn earliest_not_after(&self) -> Option<i64> {
        std::iter::once(self.current.load_full())
            .chain(self.sni.iter().map(|e| e.ck.load_full()))
            .filter_map(|ck| not_after(&ck))
            .min()
    }

    /// The certificate for SNI `name`: an exact host first, then the
    /// longest matching `*.suffix`, then the default.
    pub fn for_name(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name.filter(|_| !self.sni.is_empty()) else {
            return self.current.load_full();
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let mut best: Option<(usize, &SniEntry)> = None;
        for e in &self.sni {
            for h in &e.hosts {
                match h {
                    HostRule::Exact(x) if x.eq_ignore_ascii_case(name) => return e.ck.load_full(),
                    HostRule::Suffix(sfx)
                        if name.len() > sfx.len()
                            && name.is_char_boundary(name.len() - sfx.len())
                            && name[name.len() - sfx.len()..].eq_ignore_ascii_case(sfx)
                            && best.is_none_or(|(l, _)| sfx.len() > l) =>
                    {
                        best = Some((sfx.len(), e));
                    }
                    _ => {}
                }
            }
        }
        match best {
            Some((_, e)) => e.ck.load_full(),
            None => self.current.load_full(),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_name(hello.server_name()))
    }
}

/// Watches the cert and key files of `slot` and reloads it when they
/// change; `on_reload` runs after a new pair is in place. Returns the
/// watcher, which must be kept alive.
pub fn watch(
    store: Arc<CertStore>,
    slot: Slot,
    cert: PathBuf,
    key: PathBuf,
    on_reload: impl Fn() + Send + Sync + 'static,
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
        let mut last = fingerprint(&store.get(slot));
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
                        store.replace_at(slot, ck);
                        on_reload();
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
