//! Prometheus metrics (prometheus-client), served by the admin listener at
//! `/metrics`. Labels are bounded: `route` is a configured route name (or
//! `default`), `method` one of the standard methods (or `OTHER`), `status`
//! the numeric code, `reason` one of the fixed rejection reasons.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::Reason;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    route: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric family moat exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram>,
    rejections: Family<RejectLabels, Counter>,
    upstream_errors: Family<KindLabel, Counter>,
    /// Open client connections.
    pub active_connections: Gauge,
    /// Failed TLS handshakes.
    pub tls_handshake_errors: Counter,
    /// `notAfter` of the served certificate.
    pub cert_not_after: Gauge<i64, AtomicI64>,
    reloads: Family<ResultLabel, Counter>,
    /// Keys tracked by the rate limiter.
    pub ratelimit_keys: Gauge,
    ratelimit_backend_errors: Counter,
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("moat_requests", "Requests answered, by route, method and status", requests.clone());
        // 0.5 ms .. 60 s
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
        });
        registry.register(
            "moat_request_duration_seconds",
            "Time from request to end of response body",
            duration.clone(),
        );
        let rejections = Family::<RejectLabels, Counter>::default();
        registry.register("moat_rejections", "Requests moat answered itself, by route and reason", rejections.clone());
        let upstream_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "moat_upstream_errors",
            "Upstream failures by kind (connect, timeout, protocol)",
            upstream_errors.clone(),
        );
        let active_connections = Gauge::default();
        registry.register("moat_active_connections", "Open client connections", active_connections.clone());
        let tls_handshake_errors = Counter::default();
        registry.register(
            "moat_tls_handshake_errors",
            "Failed or timed-out TLS handshakes",
            tls_handshake_errors.clone(),
        );
        let cert_not_after = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "moat_tls_cert_not_after_seconds",
            "Expiry of the served certificate (unix time)",
            cert_not_after.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("moat_config_reloads", "Config reloads by result", reloads.clone());
        let ratelimit_keys = Gauge::default();
        registry.register(
            "moat_ratelimit_tracked_keys",
            "Keys held by the in-memory rate limiter",
            ratelimit_keys.clone(),
        );
        let ratelimit_backend_errors = Counter::default();
        registry.register(
            "moat_ratelimit_backend_errors",
            "Rate-limit decisions the backend (Redis) could not make",
            ratelimit_backend_errors.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            rejections,
            upstream_errors,
            active_connections,
            tls_handshake_errors,
            cert_not_after,
            reloads,
            ratelimit_keys,
            ratelimit_backend_errors,
        }
    }

    /// Records a finished request.
    pub fn observe_request(&self, route: &str, method: &Method, status: u16, took: Duration, reject: Option<Reason>) {
        self.requests
            .get_or_create(&RequestLabels { route: route.to_string(), method: method_label(method), status })
            .inc();
        self.duration.get_or_create(&RouteLabel { route: route.to_string() }).observe(took.as_secs_f64());
        if let Some(r) = reject {
            self.rejections.get_or_create(&RejectLabels { route: route.to_string(), reason: r.as_str() }).inc();
        }
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts a failed rate-limit backend call.
    pub fn ratelimit_backend_error(&self) {
        self.ratelimit_backend_errors.inc();
    }

    /// Counts a config reload (`ok` or `error`).
    pub fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
