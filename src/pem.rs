//! Reading and checking certificate/key files: PEM chains and keys (RSA,
//! ECDSA or Ed25519) into a [`CertifiedKey`], CA bundles, a leaf's DNS
//! names. Shared by config validation (which loads every file at start, so
//! that a bad one is reported with its key) and the listener's certificate
//! store; depends on nothing else in the crate. Keys are loaded by aws-lc-rs,
//! the provider the TLS server configuration is built on.

use std::path::Path;

use rustls::crypto::aws_lc_rs;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

/// Loads and checks a PEM chain and key.
pub(crate) fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| CertError::Read { path: p.display().to_string(), reason: e.kind().to_string() })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    pair_from_pem(&cert_pem, &key_pem, &cert.display().to_string(), &key.display().to_string())
}

/// Builds a [`CertifiedKey`] from PEM bytes.
pub(crate) fn pair_from_pem(
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
    let signing = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| CertError::BadKey(key_name.to_string()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| CertError::Mismatch)?;
    Ok(ck)
}

/// Loads a PEM CA bundle for client-certificate verification.
pub(crate) fn load_roots(path: &Path) -> Result<rustls::RootCertStore, CertError> {
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

/// The DNS names (subject alternative names) of the leaf, lowercase.
pub(crate) fn dns_names(ck: &CertifiedKey) -> Vec<String> {
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
