//! The admin listener (plain HTTP, bind it to loopback or the pod network
//! only): `/healthz` (200 while the process serves), `/readyz` (200 only
//! when the upstream accepts a TCP connection, and, with
//! `scan.required_for_ready`, clamd answers `PING`), `/metrics` (Prometheus
//! text). It never passes through the policy stack and never proxies.
//! Each scrape of `/metrics` runs the readiness check too, so that
//! `moat_upstream_ready` is current even where nothing probes `/readyz`
//! (Compose health checks ask `/healthz`).
//!
//! Also the plain-HTTP redirect service (`listen.http_redirect`): every
//! request gets a 308 to the same path on the HTTPS listener.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};

use crate::body::{self, Body};
use crate::config::Upstream;
use crate::error::BoxError;
use crate::stack::Shared;

fn text(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether `up` is ready now: one of its addresses accepts a connection, or,
/// with `health_path`, answers it with `health_status` and (with
/// `health_json`) a JSON body holding the expected members.
pub(crate) async fn upstream_ready(shared: &Shared, up: &Upstream) -> bool {
    for a in up.pool.addrs() {
        if address_ready(shared, up, &a.authority).await {
            return true;
        }
    }
    false
}

/// Whether one address of `up` passes its readiness / health check.
pub(crate) async fn address_ready(shared: &Shared, up: &Upstream, authority: &http::uri::Authority) -> bool {
    let timeout = up.connect_timeout.min(Duration::from_secs(2));
    let Some(path) = &up.health_path else {
        if let Some(sock) = &up.unix {
            return matches!(tokio::time::timeout(timeout, tokio::net::UnixStream::connect(sock)).await, Ok(Ok(_)));
        }
        let target = authority.as_str().to_string();
        return matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await, Ok(Ok(_)));
    };
    let uri = format!("{}://{}{}{}", up.scheme(), authority, up.base_path, path);
    let Ok(req) = Request::get(uri).header(http::header::HOST, authority.as_str()).body(body::empty()) else {
        return false;
    };
    let check = async {
        let plain_default = up.tls.is_none() && up.unix.is_none() && &*up.name == "default";
        let client = if plain_default { shared.client.clone() } else { up.client.clone() };
        let res = client.request(req).await.ok()?;
        if res.status().as_u16() != up.health_status {
            return Some(false);
        }
        let Some(want) = &up.health_json else { return Some(true) };
        let body = http_body_util::Limited::new(res.into_body(), 64 * 1024);
        let bytes = http_body_util::BodyExt::collect(body).await.ok()?.to_bytes();
        let got: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some(want.iter().all(|(k, v)| got.get(k) == Some(v)))
    };
    matches!(tokio::time::timeout(timeout.max(Duration::from_secs(1)), check).await, Ok(Some(true)))
}

/// Runs the readiness check of every upstream and records each result in
/// `moat_upstream_ready{upstream}`; the names of those not ready.
async fn ready_now(shared: &Shared) -> Vec<Arc<str>> {
    let cfg = shared.config.load_full();
    let mut down = Vec::new();
    for up in std::iter::once(&cfg.upstream).chain(cfg.upstreams.values()) {
        let ready = upstream_ready(shared, up).await;
        shared.metrics.set_upstream_ready(&up.name, ready);
        for (i, a) in up.pool.addrs().iter().enumerate() {
            shared.metrics.set_address_up(&up.name, a.authority.as_str(), up.pool.is_up_now(i));
        }
        if !ready {
            down.push(up.name.clone());
        }
    }
    down
}

/// With `scan.required_for_ready`, whether clamd answers `PING`; else true.
async fn scanner_ready(shared: &Shared) -> bool {
    let cfg = shared.config.load_full();
    match &cfg.scan {
        Some(scan) if scan.required_for_ready => {
            let mut quick = (**scan).clone();
            quick.timeout = quick.timeout.min(Duration::from_secs(2));
            crate::scan::ping(&quick).await
        }
        _ => true,
    }
}

/// Answers one admin request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Body>) -> Result<Response<Body>, BoxError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n"));
    }
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let down = ready_now(&shared).await;
            if !down.is_empty() {
                let names: Vec<&str> = down.iter().map(|n| &**n).collect();
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("upstream unreachable: {}\n", names.join(", ")),
                )
            } else if !scanner_ready(&shared).await {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "clamd unreachable\n")
            } else {
                text(StatusCode::OK, "text/plain", "ready\n")
            }
        }
        "/metrics" => {
            ready_now(&shared).await;
            text(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", shared.metrics.encode())
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}

/// The host part of a Host header if it is a plain hostname or IP literal.
fn clean_host(h: &str) -> Option<&str> {
    let host = if let Some(rest) = h.strip_prefix('[') {
        let end = rest.find(']')?;
        &h[..end + 2]
    } else {
        h.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    ok.then_some(host)
}

/// Answers a plain-HTTP request with a 308 to HTTPS.
pub(crate) fn redirect(req: &Request<Body>, https_port: u16) -> Response<Body> {
    let host = crate::net::requested_host(req).and_then(clean_host);
    let Some(host) = host else {
        return text(StatusCode::BAD_REQUEST, "text/plain", "missing or invalid Host header\n");
    };
    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let loc =
        if https_port == 443 { format!("https://{host}{pq}") } else { format!("https://{host}:{https_port}{pq}") };
    match HeaderValue::from_str(&loc) {
        Ok(v) => {
            let mut r = text(StatusCode::PERMANENT_REDIRECT, "text/plain", "");
            r.headers_mut().insert(LOCATION, v);
            r
        }
        Err(_) => text(StatusCode::BAD_REQUEST, "text/plain", "invalid request\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_location() {
        let req = Request::builder().uri("/a?b=1").header("host", "example.com:8080").body(body::empty()).unwrap();
        let r = redirect(&req, 8443);
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()[LOCATION], "https://example.com:8443/a?b=1");
        let req = Request::builder().uri("/").header("host", "evil.com/x").body(body::empty()).unwrap();
        assert_eq!(redirect(&req, 443).status(), 400);
        let req = Request::builder().uri("/").header("host", "[::1]:80").body(body::empty()).unwrap();
        assert_eq!(redirect(&req, 443).headers()[LOCATION], "https://[::1]/");
    }
}
