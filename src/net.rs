//! Connection facts and address helpers.

use std::net::{IpAddr, SocketAddr};

/// Facts about the client connection, inserted by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The host a request asks for: the URI's authority (HTTP/2 `:authority`,
/// or an absolute-form HTTP/1 target), else the `Host` header. The one
/// reading of it: the request-id layer keeps it in `Ctx::host` for the
/// layers below; the redirect listener reads it here too.
pub fn requested_host<B>(req: &http::Request<B>) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) become IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}
