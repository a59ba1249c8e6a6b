//! Prometheus metrics (prometheus-client), served by the admin listener at
//! `/metrics`. Labels are bounded: `route` is a configured route name (or
//! `default`), `method` one of the standard methods (or `OTHER`), `status`
//! the numeric code, `reason` one of the fixed rejection reasons.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use http::Method;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::Reason;

/// A route name as a label value, shared (no allocation per request).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct RouteLabel(pub Arc<str>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: RouteLabel,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOnly {
    route: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    route: RouteLabel,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
    upstream: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabel {
    upstream: RouteLabel,
    address: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric family moat exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteOnly, Histogram>,
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
    /// Per upstream: 1 when it passed the readiness check (the one `/readyz`
    /// answers) at the last scrape or probe, 0 when it failed.
    upstream_ready: Family<UpstreamLabel, Gauge>,
    address_up: Family<AddressLabel, Gauge>,
    /// Upload scans (`[scan]`).
    pub scans: Arc<ScanMetrics>,
    /// Log lines dropped because stdout fell behind (brought up to date at each scrape).
    log_dropped: Counter,
    /// Tells this instance's series apart in the per-thread [`HANDLES`].
    id: u64,
}

/// Series handles of the request metrics a thread has looked up, so a
/// request's counter and histogram are found without taking the families'
/// locks or hashing their labels. Each entry holds its route name, so an
/// `Arc::ptr_eq` match is the same name; at most [`MAX_HANDLES`] entries
/// (cleared when full), for the [`Metrics`] whose `id` is `owner`.
struct Handles {
    owner: u64,
    requests: Vec<(Arc<str>, &'static str, u16, Counter)>,
    duration: Vec<(Arc<str>, Histogram)>,
}

const MAX_HANDLES: usize = 64;

thread_local! {
    static HANDLES: std::cell::RefCell<Handles> =
        const { std::cell::RefCell::new(Handles { owner: 0, requests: Vec::new(), duration: Vec::new() }) };
}

/// `moat_scans_total{result}` and `moat_scan_duration_seconds`.
#[derive(Debug)]
pub struct ScanMetrics {
    scans: Family<ResultLabel, Counter>,
    duration: Histogram,
}

impl ScanMetrics {
    fn register(registry: &mut Registry) -> Self {
        let scans = Family::<ResultLabel, Counter>::default();
        registry.register(
            "moat_scans",
            "Upload files scanned by clamd, by result (clean, infected, error, skipped)",
            scans.clone(),
        );
        for result in ["clean", "infected", "error", "skipped"] {
            drop(scans.get_or_create(&ResultLabel { result }));
        }
        // 1 ms .. 60 s
        let duration =
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        registry.register(
            "moat_scan_duration_seconds",
            "Time from an upload file's last byte to clamd's verdict",
            duration.clone(),
        );
        Self { scans, duration }
    }

    /// Records a scan's `result` (`clean`, `infected`, `error`); a verdict
    /// (`took` after the file's last byte) also goes into the duration histogram.
    pub fn observe(&self, result: &'static str, verdict: Option<Duration>) {
        self.scans.get_or_create(&ResultLabel { result }).inc();
        if let Some(took) = verdict {
            self.duration.observe(took.as_secs_f64());
        }
    }

    /// Counts a file passed unscanned because it was over `max_file_size`.
    pub fn skipped(&self) {
        self.scans.get_or_create(&ResultLabel { result: "skipped" }).inc();
    }
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
        let duration = Family::<RouteOnly, Histogram>::new_with_constructor(|| {
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
            "Upstream failures by upstream and kind (connect, timeout, protocol)",
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
        let upstream_ready = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "moat_upstream_ready",
            "Per upstream: 1 when it passes the readiness check of /readyz, 0 when it fails",
            upstream_ready.clone(),
        );
        let address_up = Family::<AddressLabel, Gauge>::default();
        registry.register(
            "moat_upstream_address_up",
            "Per upstream address: 1 while requests may be sent to it, 0 while it is skipped (failed to connect or failed its health check)",
            address_up.clone(),
        );
        let scans = Arc::new(ScanMetrics::register(&mut registry));
        let log_dropped = Counter::default();
        registry.register(
            "moat_log_lines_dropped",
            "Log lines dropped because stdout could not keep up (never waited for)",
            log_dropped.clone(),
        );
        // Series that alerts watch exist from the start, at zero.
        for result in ["ok", "error"] {
            drop(reloads.get_or_create(&ResultLabel { result }));
        }
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
            upstream_ready,
            address_up,
            scans,
            log_dropped,
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }
    }

    /// Records a finished request.
    pub fn observe_request(
        &self,
        route: &Arc<str>,
        method: &Method,
        status: u16,
        took: Duration,
        reject: Option<Reason>,
    ) {
        let method = method_label(method);
        if let Some(r) = reject {
            let route = RouteLabel(route.clone());
            self.rejections.get_or_create(&RejectLabels { route, reason: r.as_str() }).inc();
        }
        let cached = HANDLES.with(|h| {
            let Ok(mut h) = h.try_borrow_mut() else { return false };
            let h = &mut *h;
            if h.owner != self.id {
                h.requests.clear();
                h.duration.clear();
                h.owner = self.id;
            }
            match h.requests.iter().find(|(r, m, s, _)| Arc::ptr_eq(r, route) && *m == method && *s == status) {
                Some((.., c)) => {
                    c.inc();
                }
                None => {
                    let labels = RequestLabels { route: RouteLabel(route.clone()), method, status };
                    let c = self.requests.get_or_create_owned(&labels);
                    c.inc();
                    if h.requests.len() >= MAX_HANDLES {
                        h.requests.clear();
                    }
                    h.requests.push((route.clone(), method, status, c));
                }
            }
            match h.duration.iter().find(|(r, _)| Arc::ptr_eq(r, route)) {
                Some((_, d)) => d.observe(took.as_secs_f64()),
                None => {
                    let d = self.duration.get_or_create_owned(&RouteOnly { route: RouteLabel(route.clone()) });
                    d.observe(took.as_secs_f64());
                    if h.duration.len() >= MAX_HANDLES {
                        h.duration.clear();
                    }
                    h.duration.push((route.clone(), d));
                }
            }
            true
        });
        if !cached {
            let route = RouteLabel(route.clone());
            self.requests.get_or_create(&RequestLabels { route: route.clone(), method, status }).inc();
            self.duration.get_or_create(&RouteOnly { route }).observe(took.as_secs_f64());
        }
    }

    /// Counts a failure talking to the upstream `upstream` (a config name).
    pub fn upstream_error(&self, kind: &'static str, upstream: &Arc<str>) {
        self.upstream_errors.get_or_create(&KindLabel { kind, upstream: RouteLabel(upstream.clone()) }).inc();
    }

    /// Creates, at zero, the series alerts watch for each upstream `names`
    /// (config names only, so the label stays bounded).
    pub fn init_upstreams<'a>(&self, names: impl IntoIterator<Item = &'a Arc<str>>) {
        for name in names {
            for kind in ["connect", "timeout", "protocol"] {
                drop(self.upstream_errors.get_or_create(&KindLabel { kind, upstream: RouteLabel(name.clone()) }));
            }
        }
    }

    /// Records whether `address` of the upstream `name` takes requests.
    pub fn set_address_up(&self, name: &Arc<str>, address: &str, up: bool) {
        self.address_up
            .get_or_create(&AddressLabel { upstream: RouteLabel(name.clone()), address: address.to_string() })
            .set(i64::from(up));
    }

    /// Records the readiness of the upstream `name` (a config name).
    pub fn set_upstream_ready(&self, name: &Arc<str>, ready: bool) {
        self.upstream_ready.get_or_create(&UpstreamLabel { upstream: RouteLabel(name.clone()) }).set(i64::from(ready));
    }

    /// Counts a failed rate-limit backend call.
    pub fn ratelimit_backend_error(&self) {
        self.ratelimit_backend_errors.inc();
    }

    /// Counts a config reload (`ok` or `error`).
    pub fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// The text exposition, with process metrics read from /proc at scrape time.
    pub fn encode(&self) -> String {
        let dropped = crate::telemetry::dropped_lines();
        let counted = self.log_dropped.get();
        if dropped > counted {
            self.log_dropped.inc_by(dropped - counted);
        }
        let mut s = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        let process = process_metrics();
        match s.rfind("# EOF") {
            Some(i) => s.insert_str(i, &process),
            None => s.push_str(&process),
        }
        s
    }
}

/// `process_*` metrics (CPU, memory, file descriptors, start time) from /proc/self.
fn process_metrics() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    // The kernel's clock tick (USER_HZ) and page size, as the auxiliary vector gives them.
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let cpu = (num(11) + num(12)) / ticks;
            let _ = writeln!(out, "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total {cpu}");
            let page = rustix::param::page_size() as f64;
            let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}", num(21) * page);
            let _ = writeln!(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}", num(20));
            if let Ok(uptime) = std::fs::read_to_string("/proc/uptime") {
                let up: f64 = uptime.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                let start = now - up + num(19) / ticks;
                let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since the epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start:.0}");
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}", fds.count());
    }
    out
}

#[cfg(test)]
mod handle_tests {
    use super::*;

    fn count(m: &Metrics, route: &str, status: u16) -> u64 {
        let want = format!("moat_requests_total{{route=\"{route}\",method=\"GET\",status=\"{status}\"}} ");
        m.encode().lines().find_map(|l| l.strip_prefix(&want).and_then(|n| n.parse().ok())).unwrap_or(0)
    }

    #[test]
    fn cached_series_count_for_their_own_registry_and_labels() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let api: Arc<str> = Arc::from("api");
        // The same name in another allocation (a reload's config) is the same series.
        let api_again: Arc<str> = Arc::from("api");
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            a.observe_request(&api, &Method::GET, 200, ms, None);
            b.observe_request(&api, &Method::GET, 200, ms, None);
        }
        a.observe_request(&api_again, &Method::GET, 200, ms, None);
        a.observe_request(&api, &Method::GET, 404, ms, None);
        assert_eq!(count(&a, "api", 200), 4);
        assert_eq!(count(&a, "api", 404), 1);
        assert_eq!(count(&b, "api", 200), 3);
        // More series than the cache holds: every one still counted.
        let routes: Vec<Arc<str>> = (0..MAX_HANDLES + 8).map(|i| Arc::from(format!("r{i}"))).collect();
        for r in routes.iter().chain(routes.iter()) {
            a.observe_request(r, &Method::GET, 200, ms, None);
        }
        assert!(routes.iter().all(|r| count(&a, r, 200) == 2));
        let text = a.encode();
        assert!(text.contains("moat_request_duration_seconds_count{route=\"api\"} 5"), "{text}");
    }
}
