//! Layer 6: the client's address, and the IP allow/deny lists.
//!
//! The client is the TCP peer, unless the peer is one of
//! `client_ip.trusted_proxies`: then it is the rightmost `x-forwarded-for`
//! entry that is not itself a trusted proxy (a client can prepend anything
//! to the header, so only the hops our proxies appended are believed). An
//! `x-forwarded-for` sent by an untrusted peer is ignored for every purpose:
//! rate keys, logs, allow/deny, and it is not passed on. IPv4-mapped IPv6
//! addresses are treated as IPv4.
//!
//! `client_ip.allow` (non-empty: only these) and `client_ip.deny` CIDR lists,
//! or a route's own `allow`/`deny`, refuse other clients with 403
//! `ip_denied`.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Request};
use ipnet::IpNet;

use super::{reject, Decide, Verdict};
use crate::body::Body;
use crate::config::Config;
use crate::error::Reason;
use crate::net::canonical;
use crate::policy::ctx::Ctx;

/// `[client_ip]` (and a route's `allow`/`deny`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    /// Only these networks (empty = everyone).
    pub allow: Vec<IpNet>,
    /// Never these networks.
    pub deny: Vec<IpNet>,
}

impl IpRules {
    /// Whether `ip` passes.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// Whether `ip` is in `nets`.
pub(crate) fn in_nets(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// Whether the TCP peer `ip` is one of `client_ip.trusted_proxies`, whose
/// forwarding headers (`X-Forwarded-For`, `X-Request-Id`) are believed. The
/// one place this is decided; the request-id layer asks once per request
/// and keeps the answer in `Ctx::trusted_peer`.
pub(crate) fn is_trusted_peer(cfg: &Config, ip: IpAddr) -> bool {
    in_nets(&cfg.client_ip.trusted_proxies, ip)
}

/// Resolves the client address from the peer and the forwarding chain.
#[cfg(test)]
pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !in_nets(trusted, peer) {
        return peer;
    }
    through_trusted(peer, headers, trusted)
}

/// The client address behind `peer`, a trusted proxy: the rightmost hop of
/// `X-Forwarded-For` that is not itself a trusted proxy.
fn through_trusted(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut client = peer;
    for v in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(s) = v.to_str() else { return client };
        for hop in s.rsplit(',') {
            let hop = hop.trim();
            let ip = hop
                .parse::<IpAddr>()
                .ok()
                .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
                .map(canonical);
            match ip {
                // A malformed hop: stop at the last address we could verify.
                None => return client,
                Some(ip) => {
                    client = ip;
                    if !in_nets(trusted, ip) {
                        return ip;
                    }
                }
            }
        }
    }
    client
}

/// The policy.
pub(crate) struct ClientIp;

impl Decide for ClientIp {
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let peer = canonical(ctx.conn.peer.ip());
        let ip = if ctx.trusted_peer {
            through_trusted(peer, req.headers(), &ctx.config.client_ip.trusted_proxies)
        } else {
            peer
        };
        let _ = ctx.client_ip.set(ip);
        let rules = ctx.route().ip_rules.as_ref().unwrap_or(&ctx.config.client_ip.rules);
        if !rules.permits(ip) {
            return reject(Reason::IpDenied, ctx);
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn h(xff: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", v.parse().unwrap());
        }
        m
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(resolve(peer, &h(&["1.2.3.4"]), &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn rightmost_untrusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        // The client forged 6.6.6.6; our proxy appended the real 198.51.100.7 and then an internal hop.
        let r = resolve(peer, &h(&["6.6.6.6, 198.51.100.7, 10.1.1.1"]), &t);
        assert_eq!(r, "198.51.100.7".parse::<IpAddr>().unwrap());
        let r = resolve(peer, &h(&["6.6.6.6", "198.51.100.7"]), &t);
        assert_eq!(r, "198.51.100.7".parse::<IpAddr>().unwrap());
        // No header: the peer.
        assert_eq!(resolve(peer, &h(&[]), &t), peer);
        // Garbage: the last verified hop.
        assert_eq!(resolve(peer, &h(&["nonsense"]), &t), peer);
    }

    #[test]
    fn mapped_v4_is_v4() {
        let peer: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let r = resolve(peer, &h(&["::ffff:198.51.100.7"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(r, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn allow_and_deny() {
        let r = IpRules { allow: nets(&["10.0.0.0/8", "2001:db8::/32"]), deny: nets(&["10.9.0.0/16"]) };
        assert!(r.permits("10.1.2.3".parse().unwrap()));
        assert!(!r.permits("10.9.2.3".parse().unwrap()));
        assert!(!r.permits("192.0.2.1".parse().unwrap()));
        assert!(r.permits("2001:db8::1".parse().unwrap()));
        assert!(IpRules::default().permits("192.0.2.1".parse().unwrap()));
    }
}
