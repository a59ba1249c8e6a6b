//! The TLS server configuration: one crypto provider (aws-lc-rs) chosen
//! here and passed explicitly, TLS 1.2 and 1.3 only, AEAD suites with
//! forward secrecy only, ALPN `h2` and `http/1.1`, optional client
//! certificates, session tickets for cheap resumption.

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::certs::CertStore;
use crate::config::{Tls, TlsVersion};
use crate::pem::{self, CertError};

/// The crypto provider: aws-lc-rs with only AEAD + ECDHE suites
/// (TLS 1.3: AES-GCM, ChaCha20-Poly1305; TLS 1.2: ECDHE-ECDSA/RSA with the same).
pub(crate) fn provider() -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| {
        use rustls::CipherSuite::*;
        matches!(
            s.suite(),
            TLS13_AES_128_GCM_SHA256
                | TLS13_AES_256_GCM_SHA384
                | TLS13_CHACHA20_POLY1305_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                | TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    });
    p
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA could not be loaded.
    #[error("tls.client_ca: {0}")]
    ClientCa(#[from] CertError),
    /// The client verifier could not be built.
    #[error("tls.client_ca: {0}")]
    Verifier(String),
}

/// Builds the server config serving certificates from `store`.
pub(crate) fn server_config(tls: &Tls, store: Arc<CertStore>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let roots = pem::load_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer = aws_lc_rs::Ticketer::new()?;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(cfg)
}
