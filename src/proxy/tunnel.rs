//! Protocol upgrades (RFC 9110 §7.8), allowed only where a route says so.
//!
//! Threat: a tunnel opened through an upgrade carries bytes no policy sees.
//! With an upstream that honours `Upgrade: h2c`, requests sent through a
//! tunnel opened on a public route would reach protected paths without a
//! key; a WebSocket handshake from a foreign page would ride the victim's
//! cookies (cross-site WebSocket hijacking). So:
//!
//! - only `Upgrade: websocket` is ever forwarded, and only on a route with
//!   `websocket = true`; every other upgrade (h2c always) is stripped and
//!   the request goes on as a plain request;
//! - the handshake must be a valid RFC 6455 opening handshake (GET,
//!   `Connection: upgrade`, a 16-byte base64 `Sec-WebSocket-Key`,
//!   `Sec-WebSocket-Version: 13`), else 400;
//! - its `Origin`, when present, must pass the route's CORS allowlist or be
//!   the request's own origin, else 403 (`cors_origin`);
//! - the tunnel runs in the client connection's task (it keeps its slot in
//!   `max_connections`), closes after `limits.idle_timeout` without a byte
//!   either way, ends on shutdown, and is logged once at its end with the
//!   bytes each way and its duration.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use http::Method;
use hyper_util::rt::TokioIo;

use crate::error::Reason;
use crate::policy::ctx::Ctx;
use crate::server::TrackedIo;

/// What to do with a request that asks for an upgrade.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Forward it as an upgrade (a valid WebSocket handshake on an opted-in route).
    Forward,
    /// Strip the upgrade and forward a plain request.
    Strip,
    /// Refuse it.
    Refuse(Reason),
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether `key` is the base64 of 16 bytes (RFC 6455 §4.1).
fn valid_key(key: &str) -> bool {
    let b = key.trim().as_bytes();
    b.len() == 24 && b.ends_with(b"==") && b[..22].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Decides an upgrade request (one with `Connection: upgrade` and `Upgrade`).
pub fn decide(method: &Method, h: &HeaderMap, ctx: &Ctx) -> Upgrade {
    let websocket = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).all(|t| t.eq_ignore_ascii_case("websocket")));
    if !websocket || !ctx.route().websocket {
        return Upgrade::Strip;
    }
    let version_ok = h.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13");
    let key_ok = h.get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()).is_some_and(valid_key);
    if method != Method::GET || !has_token(h, header::CONNECTION, "upgrade") || !version_ok || !key_ok {
        return Upgrade::Refuse(Reason::BadRequest);
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return Upgrade::Refuse(Reason::CorsOrigin) };
        let policy = crate::policy::cors::policy_of(ctx);
        if !policy.allows(origin) && !crate::policy::cors::same_origin(origin, ctx) {
            return Upgrade::Refuse(Reason::CorsOrigin);
        }
    }
    Upgrade::Forward
}

/// Joins the client and upstream sides of an upgraded exchange, byte for
/// byte, until either side closes, nothing moved for `idle`, or the
/// connection is shut down; then logs the tunnel once.
pub async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    idle: Duration,
    request_id: String,
    route: Arc<str>,
) {
    let started = Instant::now();
    let (c, u) = match tokio::time::timeout(idle, async { tokio::try_join!(client, upstream) }).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            tracing::debug!(request_id = %request_id, error = %e, "upgrade failed");
            return;
        }
        Err(_) => {
            tracing::debug!(request_id = %request_id, "upgrade did not complete");
            return;
        }
    };
    let last = Arc::new(AtomicU64::new(0));
    let (from_client, from_upstream) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut c = TrackedIo::new(TokioIo::new(c), from_client.clone(), last.clone());
    let mut u = TrackedIo::new(TokioIo::new(u), from_upstream.clone(), last.clone());
    let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let idle_out = async {
        let mut t = tokio::time::interval(tick);
        loop {
            t.tick().await;
            if TrackedIo::<()>::idle_for(&last) >= idle {
                break;
            }
        }
    };
    let end = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut c, &mut u) => match r {
            Ok(_) => "closed",
            Err(_) => "error",
        },
        _ = idle_out => "idle_timeout",
    };
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        target: "moat::tunnel",
        request_id = %request_id,
        route = %route,
        bytes_from_client = from_client.load(Relaxed),
        bytes_from_upstream = from_upstream.load(Relaxed),
        duration_ms = started.elapsed().as_millis() as u64,
        end,
        "websocket tunnel closed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!valid_key("not a key at all, really"));
    }
}
