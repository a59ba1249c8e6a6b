//! Header hygiene between client and upstream.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1: `connection`, `keep-alive`,
//! `proxy-connection`, `te`, `trailer`, `transfer-encoding`, `upgrade`,
//! `proxy-authenticate`, `proxy-authorization`, and every header named in
//! `connection`) are removed in both directions. The upstream gets
//! `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`, `x-real-ip`
//! and `forwarded` (RFC 7239). A forwarding chain sent by an untrusted peer
//! is not passed on: it is replaced by the peer's address, so the upstream
//! only ever sees a chain moat vouches for.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// The hop-by-hop headers removed by name (the names `connection` lists aside).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Whether `n` is hop-by-hop by name (the names `connection` lists aside).
fn is_hop_by_hop(n: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|h| h == n)
}

/// Whether a `connection` token names no header beyond those removed by
/// name: `close`, or one of [`HOP_BY_HOP`] (no parsing needed).
fn removed_anyway(token: &str) -> bool {
    token.eq_ignore_ascii_case("close") || HOP_BY_HOP.iter().any(|h| token.eq_ignore_ascii_case(h.as_str()))
}

/// Whether every token of every `connection` header is [`removed_anyway`].
fn names_nothing_else(h: &HeaderMap) -> bool {
    h.get_all(header::CONNECTION)
        .iter()
        .all(|v| v.to_str().is_ok_and(|s| s.split(',').map(str::trim).all(|t| t.is_empty() || removed_anyway(t))))
}

/// Removes hop-by-hop headers. When `keep_upgrade` is set (an upgrade
/// handshake being forwarded), `connection: upgrade` and `upgrade` are kept.
pub fn remove_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    if !keep_upgrade {
        // Most messages carry none, or only a `connection: keep-alive` or
        // `close` (as most upstreams answer): one pass over the names (no
        // hashing) tells. Without `connection` no other header can be named
        // hop-by-hop.
        let mut present = h.keys().filter(|n| is_hop_by_hop(n));
        match (present.next(), present.next()) {
            (None, _) => return,
            (Some(n), None) if *n == header::CONNECTION && names_nothing_else(h) => {
                h.remove(header::CONNECTION);
                return;
            }
            _ => {}
        }
    }
    let kept = |n: &HeaderName| keep_upgrade && (*n == header::CONNECTION || *n == header::UPGRADE);
    // Only the names present are removed (each removal hashes its name).
    let mut doomed: Vec<HeaderName> = h.keys().filter(|n| is_hop_by_hop(n) && !kept(n)).cloned().collect();
    // Every `connection` header counts: a second one must not hide a name.
    for v in h.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            // The usual tokens need no parsing (nor the allocation of a
            // custom name): `close`, or a name removed by name anyway.
            if removed_anyway(name) {
                continue;
            }
            // `from_bytes` lowercases.
            let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else { continue };
            if !is_hop_by_hop(&n) && !doomed.contains(&n) {
                doomed.push(n);
            }
        }
    }
    for n in doomed {
        h.remove(n);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether a request asks for a protocol upgrade (HTTP/1.1 `Connection: upgrade` + `Upgrade`).
pub fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// `v`, marked so that HPACK never adds it to HTTP/2's header table: for
/// values that change from response to response, which would only evict the
/// stable headers every response repeats.
pub fn never_indexed(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

/// Numbers below this have a prebuilt header value (see [`number_value`]).
const SMALL_NUMBERS: u64 = 1024;

/// The header value of a number, as `HeaderValue::from(n)` writes it, but
/// without formatting or allocating for numbers below [`SMALL_NUMBERS`]:
/// those come from a table built once (cloning a static value copies no
/// bytes). For the `ratelimit-*` and `retry-after` values sent with every
/// rate-limited response.
pub fn number_value(n: u64) -> HeaderValue {
    static TABLE: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        // One string holds every number's digits; each value borrows its slice.
        let mut digits = String::new();
        let mut ends = Vec::with_capacity(SMALL_NUMBERS as usize);
        for i in 0..SMALL_NUMBERS {
            digits.push_str(&i.to_string());
            ends.push(digits.len());
        }
        let digits: &'static str = Box::leak(digits.into_boxed_str());
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let v = HeaderValue::from_static(&digits[start..end]);
                start = end;
                v
            })
            .collect()
    });
    usize::try_from(n).ok().and_then(|i| TABLE.get(i)).cloned().unwrap_or_else(|| HeaderValue::from(n))
}

/// A header value that owns `s` (no copy; invalid bytes → `None`).
pub fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// Appends an IPv4 address in dotted decimal (what `Display` writes, without
/// the formatting machinery: this runs for every forwarded request).
fn push_v4(out: &mut String, a: std::net::Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

/// An address as text.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let mut s = String::with_capacity(15);
            push_v4(&mut s, a);
            s
        }
        IpAddr::V6(a) => a.to_string(),
    }
}

/// The values [`set_forwarding`] gives the requests of one peer, client and
/// host. A worker's requests mostly come from the same peer for the same
/// host (every request of a connection does), so the last ones are kept per
/// thread and shared by the next request instead of being formatted,
/// checked and allocated again.
#[derive(Clone)]
struct Values {
    /// The peer's address (the `x-forwarded-for` moat starts).
    peer: Option<HeaderValue>,
    /// The client's address (`x-real-ip`).
    client: Option<HeaderValue>,
    /// moat's own `forwarded` element.
    forwarded: Option<HeaderValue>,
    /// The host, if it is a valid header value.
    host: Option<HeaderValue>,
}

impl Values {
    fn new(peer: IpAddr, client: IpAddr, host: Option<&str>) -> Values {
        use std::fmt::Write;
        let peer_value = owned_value(ip_text(peer));
        let client_value = if client == peer { peer_value.clone() } else { owned_value(ip_text(client)) };
        let mut fwd = String::with_capacity(64 + host.map_or(0, str::len));
        let _ = match peer {
            IpAddr::V4(a) => {
                fwd.push_str("for=");
                push_v4(&mut fwd, a);
                fwd.push_str(";proto=https");
                Ok(())
            }
            IpAddr::V6(a) => write!(fwd, "for=\"[{a}]\";proto=https"),
        };
        if let Some(host) = host {
            if host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
                fwd.push_str(";host=\"");
                fwd.push_str(host);
                fwd.push('"');
            }
        }
        Values {
            peer: peer_value,
            client: client_value,
            forwarded: owned_value(fwd),
            host: host.and_then(|h| HeaderValue::from_str(h).ok()),
        }
    }

    /// The values for `peer`, `client` and `host`: this thread's last ones
    /// when they are for the same three.
    fn of(peer: IpAddr, client: IpAddr, host: Option<&str>) -> Values {
        type Key = (IpAddr, IpAddr, Option<String>);
        thread_local! {
            static LAST: std::cell::RefCell<Option<(Key, Values)>> = const { std::cell::RefCell::new(None) };
        }
        LAST.with_borrow_mut(|last| match last {
            Some(((p, c, h), v)) if *p == peer && *c == client && h.as_deref() == host => v.clone(),
            _ => {
                let v = Values::new(peer, client, host);
                *last = Some(((peer, client, host.map(str::to_string)), v.clone()));
                v
            }
        })
    }
}

/// The chain in `name` extended with `ours`, when it is to be extended:
/// only from a trusted peer, and only when it says something.
fn extended(h: &HeaderMap, name: &HeaderName, trusted: bool, ours: Option<&HeaderValue>) -> Option<HeaderValue> {
    let prev = h.get(name).filter(|_| trusted)?.to_str().ok().filter(|p| !p.trim().is_empty())?;
    owned_value(format!("{prev}, {}", ours?.to_str().ok()?))
}

/// Sets the forwarding headers for the upstream.
///
/// `peer` is the TCP peer, `client` the resolved client address, `trusted`
/// whether the peer is a trusted proxy (its chain is extended, else replaced),
/// `host` the host the client asked for. Returns `host` as a header value,
/// when it is a valid one (the value of the upstream request's `Host`).
pub fn set_forwarding(
    h: &mut HeaderMap,
    peer: IpAddr,
    client: IpAddr,
    trusted: bool,
    host: Option<&str>,
) -> Option<HeaderValue> {
    let v = Values::of(peer, client, host);
    if let Some(xff) = extended(h, &X_FORWARDED_FOR, trusted, v.peer.as_ref()).or(v.peer) {
        h.insert(X_FORWARDED_FOR.clone(), xff);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    // Inserting replaces the client's own; without a host there is none.
    match &v.host {
        Some(host) => {
            h.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        None => {
            h.remove(&X_FORWARDED_HOST);
        }
    }
    if let Some(f) = extended(h, &header::FORWARDED, trusted, v.forwarded.as_ref()).or(v.forwarded) {
        h.insert(header::FORWARDED, f);
    }
    if let Some(c) = v.client {
        h.insert(X_REAL_IP.clone(), c);
    }
    v.host
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header map of `pairs`, in order (a name may repeat).
    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn numbers_read_as_http_writes_them() {
        for n in (0..2048u64).chain([4095, 65_536, 999_999, 1_000_000, u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(number_value(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn hop_by_hop_named_in_any_connection_header_any_case_removed() {
        let mut h = HeaderMap::new();
        h.append("connection", "keep-alive".parse().unwrap());
        h.append("connection", "X-Secret-Hop, Upgrade".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("proxy-authorization", "Basic eA==".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        let mut upgrading = h.clone();
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-keep"]);
        remove_hop_by_hop(&mut upgrading, true);
        assert_eq!(upgrading["connection"], "upgrade");
        assert_eq!(upgrading["upgrade"], "websocket");
        assert!(!upgrading.contains_key("x-secret-hop") && !upgrading.contains_key("proxy-authorization"));
        let mut none = HeaderMap::new();
        none.insert("x-keep", "1".parse().unwrap());
        remove_hop_by_hop(&mut none, false);
        assert_eq!(none.len(), 1);
    }

    #[test]
    fn connection_alone_removed_with_every_header_it_names() {
        let names = |h: &HeaderMap| h.keys().map(|k| k.as_str().to_string()).collect::<Vec<_>>();
        for (pairs, left) in [
            (&[("connection", &b"keep-alive"[..]), ("x-keep", b"1")][..], &["x-keep"][..]),
            (&[("connection", b"Close"), ("x-keep", b"1")], &["x-keep"]),
            (&[("connection", b"close, X-Secret"), ("x-secret", b"1"), ("x-keep", b"1")], &["x-keep"]),
            (
                &[("connection", b"keep-alive"), ("connection", b"x-secret"), ("x-secret", b"1"), ("x-keep", b"1")],
                &["x-keep"],
            ),
            (&[("connection", b"\xffclose"), ("x-keep", b"1")], &["x-keep"]),
            (&[("connection", b" , ,"), ("x-keep", b"1")], &["x-keep"]),
        ] {
            let mut h = map(pairs);
            remove_hop_by_hop(&mut h, false);
            assert_eq!(names(&h), left, "{pairs:?}");
        }
    }

    #[test]
    fn forwarding_untrusted_replaces_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("forwarded", "for=6.6.6.6".parse().unwrap());
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        set_forwarding(&mut h, peer, peer, false, Some("app.example.com"));
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=https;host=\"app.example.com\"");
        assert_eq!(h["x-real-ip"], "192.0.2.1");
    }

    #[test]
    fn forwarding_values_follow_peer_client_and_host() {
        // The same thread, one request after another: the values kept from
        // the last request are only reused for the same peer, client and host.
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "198.51.100.7".parse().unwrap();
        let c: IpAddr = "2001:db8::5".parse().unwrap();
        for (peer, client, host, xff, real, fwd, xfh) in [
            (
                a,
                a,
                Some("one.example"),
                "192.0.2.1",
                "192.0.2.1",
                "for=192.0.2.1;proto=https;host=\"one.example\"",
                Some("one.example"),
            ),
            (
                a,
                a,
                Some("one.example"),
                "192.0.2.1",
                "192.0.2.1",
                "for=192.0.2.1;proto=https;host=\"one.example\"",
                Some("one.example"),
            ),
            (
                b,
                b,
                Some("one.example"),
                "198.51.100.7",
                "198.51.100.7",
                "for=198.51.100.7;proto=https;host=\"one.example\"",
                Some("one.example"),
            ),
            (
                b,
                b,
                Some("two.example"),
                "198.51.100.7",
                "198.51.100.7",
                "for=198.51.100.7;proto=https;host=\"two.example\"",
                Some("two.example"),
            ),
            (
                b,
                a,
                Some("two.example"),
                "198.51.100.7",
                "192.0.2.1",
                "for=198.51.100.7;proto=https;host=\"two.example\"",
                Some("two.example"),
            ),
            (b, a, None, "198.51.100.7", "192.0.2.1", "for=198.51.100.7;proto=https", None),
            (
                c,
                c,
                Some("bad host"),
                "2001:db8::5",
                "2001:db8::5",
                "for=\"[2001:db8::5]\";proto=https",
                Some("bad host"),
            ),
            (
                c,
                c,
                Some("one.example"),
                "2001:db8::5",
                "2001:db8::5",
                "for=\"[2001:db8::5]\";proto=https;host=\"one.example\"",
                Some("one.example"),
            ),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-host", "client.example".parse().unwrap());
            let host_value = set_forwarding(&mut h, peer, client, false, host);
            assert_eq!(h["x-forwarded-for"], xff, "{peer} {client} {host:?}");
            assert_eq!(h["x-real-ip"], real, "{peer} {client} {host:?}");
            assert_eq!(h["forwarded"], fwd, "{peer} {client} {host:?}");
            assert_eq!(h.get("x-forwarded-host").map(|v| v.to_str().unwrap()), xfh, "{peer} {client} {host:?}");
            assert_eq!(host_value.as_ref().map(|v| v.to_str().unwrap()), xfh);
        }
        // A host that is no header value: no `x-forwarded-host`, no `Host` value.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", "client.example".parse().unwrap());
        assert!(set_forwarding(&mut h, a, a, false, Some("bad\nhost")).is_none());
        assert!(!h.contains_key("x-forwarded-host"));
        // A trusted peer's chains are extended, then the next request's replaced again.
        for (trusted, xff, fwd) in [
            (true, "203.0.113.9, 192.0.2.1", "for=203.0.113.9, for=192.0.2.1;proto=https;host=\"one.example\""),
            (false, "192.0.2.1", "for=192.0.2.1;proto=https;host=\"one.example\""),
        ] {
            let mut h = map(&[("x-forwarded-for", b"203.0.113.9"), ("forwarded", b"for=203.0.113.9")]);
            set_forwarding(&mut h, a, b, trusted, Some("one.example"));
            assert_eq!(h["x-forwarded-for"], xff, "trusted: {trusted}");
            assert_eq!(h["forwarded"], fwd, "trusted: {trusted}");
            assert_eq!(h["x-real-ip"], "198.51.100.7");
        }
    }

    #[test]
    fn ipv4_text_is_display() {
        for a in ["0.0.0.0", "1.2.3.4", "10.0.0.255", "192.168.100.9", "255.255.255.255", "99.100.101.10"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn forwarding_trusted_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let peer: IpAddr = "::1".parse().unwrap();
        set_forwarding(&mut h, peer, "203.0.113.9".parse().unwrap(), true, None);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, ::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
    }
}
