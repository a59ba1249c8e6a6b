//! The pooled keep-alive HTTP/1.1 client to the upstream (one per process,
//! shared by every request; the legacy client needs absolute-form URIs).

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;
use crate::config::Upstream;

/// The upstream client type.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// Builds the client from `[upstream]`.
pub fn build(up: &Upstream) -> UpstreamClient {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(up.connect_timeout));
    conn.set_nodelay(true);
    conn.enforce_http(true);
    conn.set_keepalive(Some(std::time::Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(up.pool_idle_timeout)
        .pool_max_idle_per_host(up.pool_max_idle)
        .retry_canceled_requests(true)
        .set_host(false)
        .build(conn)
}
