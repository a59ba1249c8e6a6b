//! `[listen]` (the three listener addresses) and `[tls]` (the served
//! certificates, each pair loaded now so that a bad file fails at start,
//! protocol versions, client certificates).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{addr, dur, file};
use crate::config::raw::{RawListen, RawTls, RawTlsCert};
use crate::config::{HostRule, Listen, Problems, SniCert, Tls, TlsVersion};
use crate::pem;

/// `[listen]`: every address parses and no two are the same.
pub(super) fn listen(p: &mut Problems, raw: &RawListen) -> Listen {
    let listen = Listen {
        https: addr(p, "listen.https", &raw.https, "127.0.0.1:8443"),
        http_redirect: raw.http_redirect.as_ref().map(|_| addr(p, "listen.http_redirect", &raw.http_redirect, "")),
        admin: addr(p, "listen.admin", &raw.admin, "127.0.0.1:9901"),
    };
    let same = |a: SocketAddr, b: Option<SocketAddr>| b.is_some_and(|b| a == b && a.port() != 0);
    if same(listen.admin, Some(listen.https))
        || same(listen.admin, listen.http_redirect)
        || same(listen.https, listen.http_redirect)
    {
        p.push("listen", "https, http_redirect and admin must be different addresses");
    }
    listen
}

/// `[tls]`: the default pair, the protocol versions, the client CA and
/// `[[tls.certificates]]`.
pub(super) fn tls(p: &mut Problems, raw: &RawTls, base: Option<&Path>) -> Tls {
    let cert = match (&raw.cert, &raw.key) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let c = file(p, "tls.cert", base, c);
            let k = file(p, "tls.key", base, k);
            if c.exists() && k.exists() {
                if let Err(e) = pem::load_pair(&c, &k) {
                    p.push("tls.cert", e.to_string());
                }
            }
            Some((c, k))
        }
        (Some(_), None) => {
            p.push("tls.key", "missing: tls.cert is set, so tls.key must be too");
            None
        }
        (None, Some(_)) => {
            p.push("tls.cert", "missing: tls.key is set, so tls.cert must be too");
            None
        }
    };
    let min_version = match raw.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(v) => {
            p.push("tls.min_version", format!("\"{v}\" is not supported: use \"1.2\" or \"1.3\""));
            TlsVersion::V1_2
        }
    };
    let client_ca = raw.client_ca.as_deref().map(|c| {
        let path = file(p, "tls.client_ca", base, c);
        if path.exists() {
            if let Err(e) = pem::load_roots(&path) {
                p.push("tls.client_ca", e.to_string());
            }
        }
        path
    });
    let certificates = sni_certs(p, &raw.certificates, base);
    if !certificates.is_empty() && cert.is_none() {
        p.push(
            "tls.certificates",
            "needs tls.cert and tls.key: the default certificate is served to names no entry lists",
        );
    }
    Tls {
        cert,
        min_version,
        client_ca,
        handshake_timeout: dur(p, "tls.handshake_timeout", &raw.handshake_timeout, Duration::from_secs(10)),
        certificates,
    }
}

/// `[[tls.certificates]]`: every pair loads, every name is valid and
/// listed once.
fn sni_certs(p: &mut Problems, raw: &[RawTlsCert], base: Option<&Path>) -> Vec<SniCert> {
    let mut out: Vec<SniCert> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let key = |k: &str| format!("tls.certificates[{i}].{k}");
        let (Some(c), Some(k)) = (&e.cert, &e.key) else {
            p.push(key(if e.cert.is_none() { "cert" } else { "key" }), "missing: each entry needs cert and key");
            continue;
        };
        let (c, k) = (file(p, &key("cert"), base, c), file(p, &key("key"), base, k));
        let loaded = if c.exists() && k.exists() {
            match pem::load_pair(&c, &k) {
                Ok(ck) => Some(ck),
                Err(err) => {
                    p.push(key("cert"), err.to_string());
                    None
                }
            }
        } else {
            None
        };
        let names: Vec<String> = match &e.hosts {
            Some(h) => h.clone(),
            None => loaded.as_ref().map(pem::dns_names).unwrap_or_default(),
        };
        let mut hosts = Vec::new();
        for (j, h) in names.iter().enumerate() {
            match HostRule::parse(h) {
                Ok(r) => {
                    if out.iter().flat_map(|o| o.hosts.iter()).chain(hosts.iter()).any(|x| *x == r) {
                        p.push(key(&format!("hosts[{j}]")), format!("\"{h}\" is listed by another certificate too"));
                    }
                    hosts.push(r);
                }
                Err(m) => p.push(key(&format!("hosts[{j}]")), m),
            }
        }
        if hosts.is_empty() && (e.hosts.is_some() || loaded.is_some()) {
            p.push(key("hosts"), "no host name: list hosts, or use a certificate with DNS names");
        }
        out.push(SniCert { hosts, cert: c, key: k });
    }
    out
}
