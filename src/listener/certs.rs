//! The server certificates: loaded from PEM files (RSA, ECDSA or Ed25519
//! keys, read by [`crate::pem`]), or a self-signed development certificate
//! generated at start.
//! [`CertStore`] resolves one for every handshake from `ArcSwap`s, without
//! I/O: the certificate of `[[tls.certificates]]` whose hosts name the
//! client's SNI (exact names first, then the longest `*.suffix`), else the
//! default. A watcher on the files' directories swaps in a new pair when
//! the files change (editors' renames and Kubernetes' `..data` symlink swap
//! included). A broken new pair is refused and logged and the last good one
//! keeps serving; open connections are never touched.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::HostRule;
use crate::pem::pair_from_pem;
// Kept here for the listener's callers; the parsing lives in `crate::pem`.
pub(crate) use crate::pem::{load_pair, CertError};

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
pub(crate) fn self_signed() -> Result<CertifiedKey, CertError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| CertError::Other(e.to_string()))?;
    pair_from_pem(ck.cert.pem().as_bytes(), ck.signing_key.serialize_pem().as_bytes(), "self-signed", "self-signed")
}

/// SHA-256 fingerprint of the leaf certificate, `AB:CD:...`.
pub(crate) fn fingerprint(ck: &CertifiedKey) -> String {
    let Some(leaf) = ck.cert.first() else {
        return String::new();
    };
    let d = Sha256::digest(leaf.as_ref());
    d.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// `notAfter` of the leaf, in seconds since the epoch.
pub(crate) fn not_after(ck: &CertifiedKey) -> Option<i64> {
    let leaf = ck.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Which certificate of a [`CertStore`]: the default, or the i-th of
/// `[[tls.certificates]]`.
pub(crate) type Slot = Option<usize>;

#[derive(Debug)]
struct SniEntry {
    hosts: Vec<HostRule>,
    ck: ArcSwap<CertifiedKey>,
}

/// The served certificates, each swapped atomically on reload.
#[derive(Debug)]
pub(crate) struct CertStore {
    current: ArcSwap<CertifiedKey>,
    sni: Vec<SniEntry>,
}

impl CertStore {
    /// A store serving each of `sni` to the names it lists, `default` to the rest.
    pub(crate) fn with_sni(default: CertifiedKey, sni: Vec<(Vec<HostRule>, CertifiedKey)>) -> Self {
        let sni = sni.into_iter().map(|(hosts, ck)| SniEntry { hosts, ck: ArcSwap::from_pointee(ck) }).collect();
        Self { current: ArcSwap::from_pointee(default), sni }
    }

    /// The certificate in `slot` (the default for an unknown index).
    pub(crate) fn get(&self, slot: Slot) -> Arc<CertifiedKey> {
        match slot.and_then(|i| self.sni.get(i)) {
            Some(e) => e.ck.load_full(),
            None => self.current.load_full(),
        }
    }

    /// Replaces the certificate in `slot` for new handshakes.
    pub(crate) fn replace_at(&self, slot: Slot, ck: CertifiedKey) {
        match slot.and_then(|i| self.sni.get(i)) {
            Some(e) => e.ck.store(Arc::new(ck)),
            None => self.current.store(Arc::new(ck)),
        }
    }

    /// The earliest `notAfter` of every served certificate.
    pub(crate) fn earliest_not_after(&self) -> Option<i64> {
        std::iter::once(self.current.load_full())
            .chain(self.sni.iter().map(|e| e.ck.load_full()))
            .filter_map(|ck| not_after(&ck))
            .min()
    }

    /// The certificate for SNI `name`: an exact host first, then the
    /// longest matching `*.suffix`, then the default.
    pub(crate) fn for_name(&self, name: Option<&str>) -> Arc<CertifiedKey> {
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

/// Watches the cert and key files of `slot` (see [`crate::watch`]) and
/// reloads it when they change; `on_reload` runs after a new pair is in
/// place. Returns the watch, which must be kept alive.
pub(crate) fn watch(
    store: Arc<CertStore>,
    slot: Slot,
    cert: PathBuf,
    key: PathBuf,
    on_reload: impl Fn() + Send + Sync + 'static,
) -> Result<crate::watch::Watch, String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let (watch, failed) = crate::watch::watch(&[cert.clone(), key.clone()], tx).map_err(|e| e.to_string())?;
    if let Some((dir, e)) = failed.into_iter().next() {
        return Err(format!("{}: {e}", dir.display()));
    }
    tokio::spawn(async move {
        let mut last = fingerprint(&store.get(slot));
        while rx.recv().await.is_some() {
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
    Ok(watch)
}
