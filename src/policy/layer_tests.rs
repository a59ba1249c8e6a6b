//! Each request policy driven as a tower layer around an in-memory upstream
//! (`tower::service_fn`), one request at a time with `oneshot`: no process,
//! no socket, no certificate. Every test checks what the client gets back
//! (status, headers, the problem+json fields) and what the upstream was
//! handed (or that it was handed nothing).
//!
//! The stacks mirror `stack.rs`: the request-id layer outermost (it makes the
//! per-request `Ctx` from a config snapshot), rescue below it (it turns the
//! errors that travel up as `Err` into problem responses), then the layer
//! under test, preceded by routing for the policies that read the matched
//! route.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use sha2::{Digest, Sha256};
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use super::auth::{Auth, AuthState};
use super::body_limit::BodyLimit;
use super::client_ip::ClientIp;
use super::cors::Cors;
use super::framing::Framing;
use super::rate_limit::{RateLimit, RateLimitState};
use super::request_id::{RequestIdLayer, X_REQUEST_ID};
use super::rescue::RescueLayer;
use super::route::Routing;
use super::sanitize::SanitizeLayer;
use super::security_headers::ResponseHeaders;
use super::{ctx_of, BoxFuture, Policy, PolicyLayer};
use crate::body::{self, Body};
use crate::error::{BoxError, ProxyError, Reason};
use crate::metrics::Metrics;
use crate::net::ConnInfo;

// ---------------------------------------------------------------- harness

/// What the upstream was handed, one entry per call.
#[derive(Debug)]
struct Received {
    method: Method,
    /// Path and query.
    uri: String,
    headers: HeaderMap,
    /// The route the request ran under (`Ctx::route`).
    route: String,
    /// The client address the policies settled on (`Ctx::client_ip`).
    client_ip: IpAddr,
    /// The authenticated identity, if any.
    user: Option<String>,
    /// The whole body, or the error its stream ended with.
    body: Result<Bytes, String>,
    /// Why moat cut the body, if it did.
    body_refused: Option<Reason>,
}

type Seen = Arc<Mutex<Vec<Received>>>;

/// The upstream's answer.
type Respond = fn() -> Response<Body>;

/// The innermost service, boxed so that layers can name its type.
type Upstream = BoxCloneService<Request<Body>, Response<Body>, BoxError>;

/// A `service_fn` upstream that reads the whole request body, records what it
/// got, and answers with `respond` (or fails with the body's error, as the
/// proxy does when the body stream it forwards is cut).
fn upstream(seen: Seen, respond: Respond) -> Upstream {
    BoxCloneService::new(tower::service_fn(move |req: Request<Body>| {
        let seen = seen.clone();
        async move {
            let ctx = ctx_of(&req)?;
            let (parts, body) = req.into_parts();
            let (body, failure) = match body.collect().await {
                Ok(c) => (Ok(c.to_bytes()), None),
                Err(e) => (Err(e.to_string()), Some(e)),
            };
            seen.lock().unwrap().push(Received {
                method: parts.method,
                uri: parts.uri.path_and_query().map_or_else(String::new, |p| p.as_str().to_string()),
                headers: parts.headers,
                route: ctx.route().name.clone(),
                client_ip: ctx.client_ip(),
                user: ctx.user.get().cloned(),
                body,
                body_refused: ctx.body_refused(),
            });
            match failure {
                Some(e) => Err(e),
                None => Ok(respond()),
            }
        }
    }))
}

fn ok() -> Response<Body> {
    let mut res = Response::new(body::full("upstream ok"));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

/// A 200 that advertises the upstream's software and its own CORS policy.
fn leaky_headers() -> Response<Body> {
    let mut res = ok();
    let h = res.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("uvicorn"));
    h.insert("x-powered-by", HeaderValue::from_static("Express"));
    h.insert("x-aspnet-version", HeaderValue::from_static("4.0.30319"));
    h.insert("x-runtime", HeaderValue::from_static("0.012"));
    h.insert("x-debug-token", HeaderValue::from_static("a1b2c3"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("script-src *"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    res
}

const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 42, in handler\n    \
                         conn = connect(\"postgres://app:hunter2@10.0.3.7:5432/docs\")\n\
                         OperationalError: could not connect to server at 10.0.3.7:5432\n";

/// A 500 whose body is a Python traceback naming a file, a password and an internal address.
fn leaky_500() -> Response<Body> {
    let mut res = Response::new(body::full(TRACEBACK));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert("x-error-detail", HeaderValue::from_static("psycopg2 at 10.0.3.7"));
    h.insert(header::SERVER, HeaderValue::from_static("gunicorn/21.2"));
    res
}

fn leaky_503() -> Response<Body> {
    let mut res = Response::new(body::full("upstream redis at redis.svc.cluster.local:6379 is down"));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
    res
}

fn leaky_422() -> Response<Body> {
    let text = r#"{"detail":"cannot open /srv/app/uploads/tmp.pdf via 10.0.3.7:9000","code":"upload_failed"}"#;
    let mut res = Response::new(body::full(text));
    *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    h.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
    res
}

fn not_http() -> Response<Body> {
    let mut res = Response::new(body::full("??"));
    *res.status_mut() = StatusCode::from_u16(600).unwrap();
    res
}

/// A stack around an upstream, and what that upstream received.
struct Harness {
    svc: BoxCloneService<Request<Body>, Response<Body>, BoxError>,
    seen: Seen,
}

impl Harness {
    /// Request id, rescue, then `layer`, around the upstream, under the config `toml`.
    fn new<L>(toml: &str, layer: L, respond: Respond) -> Self
    where
        L: Layer<Upstream>,
        L::Service: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture>
            + Clone
            + Send
            + 'static,
    {
        let config = crate::config::load_str("test.toml", toml).unwrap_or_else(|e| panic!("test config: {e}"));
        let seen: Seen = Arc::default();
        let svc = ServiceBuilder::new()
            .layer(RequestIdLayer::new(Arc::new(ArcSwap::from_pointee(config))))
            .layer(RescueLayer::new(Arc::new(Metrics::new())))
            .layer(layer)
            .service(upstream(seen.clone(), respond));
        Self { svc: BoxCloneService::new(svc), seen }
    }

    /// `policy` alone between rescue and the upstream.
    fn policy<P: Policy>(toml: &str, policy: P, respond: Respond) -> Self {
        Self::new(toml, PolicyLayer::new(policy), respond)
    }

    /// Routing first (it sets the route later policies read), then `policy`.
    fn routed<P: Policy>(toml: &str, policy: P, respond: Respond) -> Self {
        Self::new(toml, ServiceBuilder::new().layer(PolicyLayer::new(Routing)).layer(PolicyLayer::new(policy)), respond)
    }

    async fn send(&self, req: Req) -> Response<Body> {
        self.svc.clone().oneshot(req.build()).await.expect("the stack answers every request")
    }

    /// How many requests reached the upstream.
    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The only request the upstream received.
    fn only<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        let seen = self.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the upstream was called {} times", seen.len());
        f(&seen[0])
    }

    /// The last request the upstream received.
    fn last<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        let seen = self.seen.lock().unwrap();
        f(seen.last().expect("the upstream was called"))
    }
}

/// A request as the listener hands it to the stack: HTTP/1.1, a `Host`,
/// and the connection facts (`ConnInfo`) of a plain-TCP client.
struct Req {
    builder: http::request::Builder,
    host: bool,
    peer: SocketAddr,
    tls: bool,
    body: Option<Body>,
}

fn req(method: &str, uri: &str) -> Req {
    Req {
        builder: Request::builder().method(method).uri(uri).version(Version::HTTP_11),
        host: true,
        peer: "198.51.100.20:40000".parse().unwrap(),
        tls: false,
        body: None,
    }
}

fn get(uri: &str) -> Req {
    req("GET", uri)
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    fn version(mut self, v: Version) -> Self {
        self.builder = self.builder.version(v);
        self
    }

    fn no_host(mut self) -> Self {
        self.host = false;
        self
    }

    fn peer(mut self, ip: &str) -> Self {
        self.peer = SocketAddr::new(ip.parse().unwrap(), 40000);
        self
    }

    fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    fn body(mut self, b: Body) -> Self {
        self.body = Some(b);
        self
    }

    /// A body with a matching `Content-Length`.
    fn sized(self, bytes: &'static [u8]) -> Self {
        self.header("content-length", &bytes.len().to_string()).body(body::full(bytes))
    }

    fn build(self) -> Request<Body> {
        let mut b = self.builder;
        if self.host {
            b = b.header(header::HOST, "moat.test");
        }
        let mut r = b.body(self.body.unwrap_or_else(body::empty)).unwrap();
        r.extensions_mut().insert(ConnInfo { peer: self.peer, tls: self.tls });
        r
    }
}

/// A body streamed in `chunks` of `size` bytes, without a declared length.
fn streamed(chunks: usize, size: usize) -> Body {
    let frames = (0..chunks).map(move |_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; size]))));
    body::boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

fn hv<'a>(res: &'a Response<Body>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn text(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Checks that `res` is moat's problem+json for `status` with `detail` and
/// the request's id, and returns the document.
async fn problem(res: Response<Body>, status: u16, detail: &str) -> serde_json::Value {
    assert_eq!(res.status(), status);
    assert_eq!(hv(&res, "content-type"), Some("application/problem+json"));
    assert_eq!(hv(&res, "cache-control"), Some("no-store"));
    let id = hv(&res, "x-request-id").expect("x-request-id").to_string();
    assert_eq!(id.len(), 32, "{id}");
    let v: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(v["status"], status);
    assert_eq!(v["detail"], detail);
    assert_eq!(v["request_id"], id.as_str());
    v
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

// ---------------------------------------------------------------- framing

#[tokio::test]
async fn framing_passes_a_well_formed_request_with_its_id() {
    let h = Harness::policy("", Framing, ok);
    let res = h.send(get("/a?x=1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "connection"), None);
    let id = hv(&res, "x-request-id").unwrap().to_string();
    assert_eq!(text(res).await, "upstream ok");
    h.only(|r| {
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.uri, "/a?x=1");
        assert_eq!(r.headers[&X_REQUEST_ID], id.as_str(), "the upstream gets the id the client gets");
    });
}

#[tokio::test]
async fn framing_refuses_content_length_with_transfer_encoding() {
    let h = Harness::policy("", Framing, ok);
    let r = req("POST", "/upload")
        .header("content-length", "5")
        .header("transfer-encoding", "chunked")
        .body(body::full("hello"));
    let res = h.send(r).await;
    assert_eq!(hv(&res, "connection"), Some("close"), "the rest of an HTTP/1 connection cannot be trusted");
    problem(res, 400, "The request is malformed.").await;
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn framing_refuses_missing_or_repeated_host_and_non_origin_targets() {
    let h = Harness::policy("", Framing, ok);
    problem(h.send(get("/a").no_host()).await, 400, "The request is malformed.").await;
    problem(h.send(get("/a").header("host", "other.test")).await, 400, "The request is malformed.").await;
    problem(h.send(req("OPTIONS", "*")).await, 400, "The request is malformed.").await;
    problem(h.send(get("ftp://moat.test/a")).await, 400, "The request is malformed.").await;
    assert_eq!(h.calls(), 0);
    // HTTP/1.0 may omit Host; an absolute-form target names its own.
    assert_eq!(h.send(get("/a").no_host().version(Version::HTTP_10)).await.status(), 200);
    assert_eq!(h.send(get("http://moat.test/b").no_host()).await.status(), 200);
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn framing_refuses_an_h2_host_that_differs_from_the_authority_without_closing() {
    let h = Harness::policy("", Framing, ok);
    let r = get("https://moat.test/a").no_host().version(Version::HTTP_2).header("host", "evil.test");
    let res = h.send(r).await;
    assert_eq!(hv(&res, "connection"), None, "no connection-specific header on HTTP/2");
    problem(res, 400, "The request is malformed.").await;
    assert_eq!(h.calls(), 0);
    let ok_res = h.send(get("https://moat.test/a").no_host().version(Version::HTTP_2)).await;
    assert_eq!(ok_res.status(), 200);
    assert_eq!(h.calls(), 1);
}

// ---------------------------------------------------------------- routing

const ROUTES: &str = r#"
[[routes]]
name = "docs"
path = "/api/docs"
methods = ["GET", "POST"]

[[routes]]
name = "admin"
path = "/api/admin"
methods = ["DELETE"]
"#;

/// A policy that passes everything, so that a routed harness tests routing alone.
struct Nothing;
impl Policy for Nothing {
    fn check(&self, _: &mut Request<Body>, _: &Arc<super::ctx::Ctx>) -> Option<super::Verdict> {
        Some(super::Verdict::Pass)
    }
    const ADJUSTS_RESPONSE: bool = false;
}

#[tokio::test]
async fn routing_matches_the_decoded_path_and_forwards_the_collapsed_one() {
    let h = Harness::routed(ROUTES, Nothing, ok);
    let res = h.send(get("//api//docs/?q=%2F").header("x-http-method-override", "DELETE")).await;
    assert_eq!(res.status(), 200);
    h.only(|r| {
        assert_eq!(r.route, "docs");
        assert_eq!(r.uri, "/api/docs/?q=%2F", "empty segments collapsed, query untouched");
        assert!(!r.headers.contains_key("x-http-method-override"), "method-override headers are removed");
    });
    // Encoded letters are matched decoded and forwarded as the client sent them.
    assert_eq!(h.send(get("/api/%64ocs/1")).await.status(), 200);
    h.last(|r| {
        assert_eq!(r.route, "docs");
        assert_eq!(r.uri, "/api/%64ocs/1");
    });
    // A path outside every route runs under the defaults (no allowlist mode).
    assert_eq!(h.send(get("/elsewhere")).await.status(), 200);
    h.last(|r| assert_eq!(r.route, "unmatched"));
}

#[tokio::test]
async fn routing_refuses_dot_segments_and_encoded_separators() {
    let h = Harness::routed(ROUTES, Nothing, ok);
    for bad in
        ["/a/%2e%2e/b", "/api/docs/../admin", "/a%2fb", "/a%5Cb", "/a/%252e%252e/b", "/a/./b", "/api/admin;x", "/a%00"]
    {
        let res = h.send(get(bad)).await;
        assert_eq!(res.status(), 400, "{bad}");
        problem(res, 400, "The request path is not allowed.").await;
    }
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn routing_answers_405_with_the_methods_of_the_matching_routes() {
    let h = Harness::routed(ROUTES, Nothing, ok);
    let res = h.send(req("PUT", "/api/docs/1")).await;
    assert_eq!(hv(&res, "allow"), Some("GET, POST"));
    problem(res, 405, "Method not allowed.").await;
    let res = h.send(get("/api/admin")).await;
    assert_eq!(hv(&res, "allow"), Some("DELETE"));
    problem(res, 405, "Method not allowed.").await;
    assert_eq!(h.calls(), 0);
    // HEAD counts as GET.
    assert_eq!(h.send(req("HEAD", "/api/docs")).await.status(), 200);
    h.only(|r| assert_eq!((r.method.clone(), r.route.as_str()), (Method::HEAD, "docs")));
}

#[tokio::test]
async fn routing_in_allowlist_mode_refuses_unknown_paths_with_404() {
    let h = Harness::routed(&format!("deny_unmatched = true\n{ROUTES}"), Nothing, ok);
    problem(h.send(get("/elsewhere")).await, 404, "Not found.").await;
    // Route matching is segment-wise: /api/docsx is not under /api/docs.
    problem(h.send(get("/api/docsx")).await, 404, "Not found.").await;
    assert_eq!(h.calls(), 0);
    assert_eq!(h.send(get("/api/docs/x")).await.status(), 200);
    h.only(|r| assert_eq!(r.route, "docs"));
}

#[tokio::test]
async fn routing_refuses_a_head_over_max_header_bytes() {
    let h = Harness::routed("[limits]\nmax_header_bytes = \"1KiB\"\n", Nothing, ok);
    let big = "v".repeat(1100);
    problem(h.send(get("/a").header("x-big", &big)).await, 431, "The request headers are too large.").await;
    assert_eq!(h.calls(), 0);
    assert_eq!(h.send(get("/a").header("x-small", "v")).await.status(), 200);
    assert_eq!(h.calls(), 1);
}

// ---------------------------------------------------------------- client_ip

const CLIENT_IP: &str = r#"
[client_ip]
trusted_proxies = ["10.0.0.0/8"]
deny = ["192.0.2.66/32"]
"#;

#[tokio::test]
async fn client_ip_refuses_a_denied_peer() {
    let h = Harness::policy(CLIENT_IP, ClientIp, ok);
    problem(h.send(get("/a").peer("192.0.2.66")).await, 403, "Access from this address is not allowed.").await;
    // The IPv4-mapped IPv6 form of the same address is the same client.
    problem(h.send(get("/a").peer("::ffff:192.0.2.66")).await, 403, "Access from this address is not allowed.").await;
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn client_ip_ignores_forwarding_headers_from_an_untrusted_peer() {
    let h = Harness::policy(CLIENT_IP, ClientIp, ok);
    // A client cannot dodge the deny list (or pick its rate key) by claiming another address...
    let res = h.send(get("/a").peer("203.0.113.5").header("x-forwarded-for", "198.51.100.99")).await;
    assert_eq!(res.status(), 200);
    h.only(|r| assert_eq!(r.client_ip, "203.0.113.5".parse::<IpAddr>().unwrap()));
    // ...nor get a denied address blamed on it.
    let res = h.send(get("/a").peer("203.0.113.5").header("x-forwarded-for", "192.0.2.66")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn client_ip_behind_a_trusted_proxy_is_the_rightmost_untrusted_hop() {
    let h = Harness::policy(CLIENT_IP, ClientIp, ok);
    // The client forged 6.6.6.6; our proxy appended the real address, then an internal hop.
    let res = h.send(get("/a").peer("10.0.0.2").header("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")).await;
    assert_eq!(res.status(), 200);
    h.only(|r| assert_eq!(r.client_ip, "198.51.100.7".parse::<IpAddr>().unwrap()));
    // The resolved address is the one the deny list judges.
    let r = get("/a").peer("10.0.0.2").header("x-forwarded-for", "198.51.100.7, 192.0.2.66");
    problem(h.send(r).await, 403, "Access from this address is not allowed.").await;
    // A forged denied address on the left does not get a real client refused.
    let r = get("/a").peer("10.0.0.2").header("x-forwarded-for", "192.0.2.66, 198.51.100.8");
    assert_eq!(h.send(r).await.status(), 200);
    h.last(|r| assert_eq!(r.client_ip, "198.51.100.8".parse::<IpAddr>().unwrap()));
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn client_ip_allow_list_and_route_override() {
    let toml = r#"
[client_ip]
allow = ["198.51.100.0/24"]

[[routes]]
name = "ops"
path = "/ops"
allow = ["10.9.0.0/16"]
"#;
    let h = Harness::routed(toml, ClientIp, ok);
    assert_eq!(h.send(get("/a").peer("198.51.100.3")).await.status(), 200);
    problem(h.send(get("/a").peer("203.0.113.3")).await, 403, "Access from this address is not allowed.").await;
    // The route's own list replaces the global one.
    problem(h.send(get("/ops").peer("198.51.100.3")).await, 403, "Access from this address is not allowed.").await;
    assert_eq!(h.send(get("/ops/x").peer("10.9.1.1")).await.status(), 200);
    let seen = h.seen.lock().unwrap();
    let routes: Vec<_> = seen.iter().map(|r| (r.route.as_str(), r.client_ip.to_string())).collect();
    assert_eq!(routes, [("unmatched", "198.51.100.3".to_string()), ("ops", "10.9.1.1".to_string())]);
}

// ---------------------------------------------------------------- cors

const CORS: &str = r#"
[cors]
allowed_origins = ["https://app.example.com"]
"#;

/// The response half of CORS runs in layer 3 (`ResponseHeaders`): both are in the stack, as in `stack.rs`.
fn cors(respond: Respond) -> Harness {
    Harness::new(
        CORS,
        ServiceBuilder::new().layer(PolicyLayer::new(ResponseHeaders)).layer(PolicyLayer::new(Cors)),
        respond,
    )
}

fn vary(res: &Response<Body>) -> Vec<String> {
    res.headers()
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>())
        .collect()
}

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin_is_answered_here() {
    let h = cors(ok);
    let r = req("OPTIONS", "/api/x")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "Content-Type, X-Request-Id");
    let res = h.send(r).await;
    assert_eq!(res.status(), 204);
    assert_eq!(hv(&res, "access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(hv(&res, "access-control-allow-methods"), Some("GET, HEAD, POST"));
    assert_eq!(hv(&res, "access-control-allow-headers"), Some("content-type, x-request-id"));
    assert_eq!(hv(&res, "access-control-max-age"), Some("600"));
    assert_eq!(hv(&res, "access-control-allow-credentials"), None);
    assert_eq!(vary(&res), ["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"]);
    assert!(text(res).await.is_empty());
    assert_eq!(h.calls(), 0, "a preflight never reaches the upstream");
}

#[tokio::test]
async fn cors_preflight_refusals_carry_no_allow_headers() {
    let h = cors(ok);
    let preflight = |origin: &str, method: &str| {
        req("OPTIONS", "/api/x").header("origin", origin).header("access-control-request-method", method)
    };
    for r in [
        preflight("https://evil.example.com", "GET"),
        preflight("https://app.example.com.evil.com", "GET"),
        preflight("https://app.example.com", "DELETE"),
        preflight("https://app.example.com", "POST").header("access-control-request-headers", "x-admin"),
    ] {
        let res = h.send(r).await;
        assert_eq!(hv(&res, "access-control-allow-origin"), None);
        assert_eq!(hv(&res, "access-control-allow-methods"), None);
        assert_eq!(vary(&res), ["Origin"]);
        problem(res, 403, "Cross-origin request not allowed.").await;
    }
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn cors_refuses_state_changing_requests_from_other_origins_and_forwards_safe_ones_bare() {
    let h = cors(leaky_headers);
    let r = req("POST", "/api/x").header("origin", "https://evil.example.com").sized(b"{}");
    let res = h.send(r).await;
    assert_eq!(hv(&res, "access-control-allow-origin"), None);
    problem(res, 403, "Cross-origin request not allowed.").await;
    assert_eq!(h.calls(), 0);
    // A GET is forwarded, and the upstream's `*` does not reach the browser.
    let res = h.send(get("/api/x").header("origin", "https://evil.example.com")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "access-control-allow-origin"), None);
    assert_eq!(hv(&res, "access-control-allow-credentials"), None);
    assert_eq!(vary(&res), ["Accept-Encoding", "Origin"]);
    h.only(|r| assert_eq!(r.headers["origin"], "https://evil.example.com"));
}

#[tokio::test]
async fn cors_replaces_the_upstream_policy_on_responses_to_an_allowed_origin() {
    let h = cors(leaky_headers);
    let res = h.send(req("POST", "/api/x").header("origin", "https://app.example.com").sized(b"{}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "access-control-allow-origin"), Some("https://app.example.com"), "not the upstream's *");
    assert_eq!(hv(&res, "access-control-allow-credentials"), None, "[cors] does not allow credentials");
    assert_eq!(
        hv(&res, "access-control-expose-headers"),
        Some("x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset")
    );
    assert_eq!(vary(&res), ["Accept-Encoding", "Origin"]);
    h.only(|r| assert_eq!((r.method.clone(), r.body.as_deref().ok()), (Method::POST, Some(&b"{}"[..]))));
    // A same-origin request (browsers label some with Origin too) is always allowed.
    let res = h.send(req("POST", "/api/x").header("origin", "http://moat.test").sized(b"{}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "access-control-allow-origin"), Some("http://moat.test"));
}

// ---------------------------------------------------------------- rate_limit

const RATE: &str = r#"
[[routes]]
name = "llm"
path = "/llm"
rate_limit = { key = "ip", rate = "1/h", burst = 1 }

[[routes]]
name = "free"
path = "/free"
rate_limit = "off"
"#;

fn rate_limited() -> Harness {
    let policy =
        RateLimit::new(Arc::new(RateLimitState::default()), Arc::new(AuthState::default()), Arc::new(Metrics::new()));
    // Layer 3 sets the `ratelimit-*` headers from the bucket's answer, as in `stack.rs`.
    Harness::new(
        RATE,
        ServiceBuilder::new()
            .layer(PolicyLayer::new(ResponseHeaders))
            .layer(PolicyLayer::new(Routing))
            .layer(PolicyLayer::new(policy)),
        ok,
    )
}

#[tokio::test]
async fn rate_limit_burst_of_one_then_429_with_retry_after() {
    let h = rate_limited();
    let res = h.send(get("/llm")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "ratelimit-limit"), Some("1"));
    assert_eq!(hv(&res, "ratelimit-remaining"), Some("0"));
    assert_eq!(hv(&res, "ratelimit-reset"), Some("3600"));
    assert_eq!(h.calls(), 1);

    let res = h.send(get("/llm/again")).await;
    assert_eq!(hv(&res, "ratelimit-limit"), Some("1"));
    assert_eq!(hv(&res, "ratelimit-remaining"), Some("0"));
    assert_eq!(hv(&res, "ratelimit-reset"), Some("3600"));
    let retry: u64 = hv(&res, "retry-after").unwrap().parse().unwrap();
    // Whole seconds rounded up: the hour, less the time since the first request.
    assert!((3599..=3600).contains(&retry), "{retry}");
    problem(res, 429, &format!("Rate limit exceeded; retry after {retry} seconds.")).await;
    assert_eq!(h.calls(), 1, "the refused request never reached the upstream");
}

#[tokio::test]
async fn rate_limit_buckets_are_per_client_and_per_route() {
    let h = rate_limited();
    assert_eq!(h.send(get("/llm").peer("198.51.100.1")).await.status(), 200);
    assert_eq!(h.send(get("/llm").peer("198.51.100.1")).await.status(), 429);
    // Another client has its own bucket; an IPv6 client in the same /64 shares one.
    assert_eq!(h.send(get("/llm").peer("198.51.100.2")).await.status(), 200);
    assert_eq!(h.send(get("/llm").peer("2001:db8:1:2::1")).await.status(), 200);
    assert_eq!(h.send(get("/llm").peer("2001:db8:1:2:ffff::9")).await.status(), 429);
    // A route with the limit off is never limited and carries no ratelimit headers.
    for _ in 0..3 {
        let res = h.send(get("/free").peer("198.51.100.1")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(hv(&res, "ratelimit-limit"), None);
    }
    let seen = h.seen.lock().unwrap();
    let got: Vec<_> = seen.iter().map(|r| (r.route.as_str(), r.client_ip.to_string())).collect();
    assert_eq!(
        got,
        [
            ("llm", "198.51.100.1".to_string()),
            ("llm", "198.51.100.2".to_string()),
            ("llm", "2001:db8:1:2::1".to_string()),
            ("free", "198.51.100.1".to_string()),
            ("free", "198.51.100.1".to_string()),
            ("free", "198.51.100.1".to_string()),
        ]
    );
}

// ---------------------------------------------------------------- auth

const KEY: &str = "k-0123456789abcdef";

fn auth_toml(extra: &str) -> String {
    format!(
        r#"
[rate_limit]
default = "off"

[auth]
default = "api_key"
api_keys = [{{ name = "ingest", sha256 = "{}", roles = ["upload"] }}]
{extra}

[[routes]]
name = "open"
path = "/open"
auth = "none"

[[routes]]
name = "passthrough"
path = "/passthrough"
forward_credentials = true

[[routes]]
name = "admin"
path = "/admin"
roles = ["admin"]
"#,
        sha256_hex(KEY)
    )
}

fn authed(extra: &str) -> Harness {
    Harness::routed(&auth_toml(extra), Auth::new(Arc::new(AuthState::default())), ok)
}

#[tokio::test]
async fn auth_missing_or_wrong_key_is_401_with_a_challenge() {
    let h = authed("");
    let res = h.send(get("/docs")).await;
    assert_eq!(hv(&res, "www-authenticate"), Some("Bearer realm=\"moat\""));
    problem(res, 401, "Authentication required.").await;
    let res = h.send(get("/docs").header("x-api-key", "k-wrong")).await;
    assert_eq!(hv(&res, "www-authenticate"), Some("Bearer realm=\"moat\""));
    problem(res, 401, "Authentication required.").await;
    let res = h.send(get("/docs").header("authorization", "Basic Zm9vOmJhcg==")).await;
    problem(res, 401, "Authentication required.").await;
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn auth_right_key_passes_without_the_credential() {
    let h = authed("");
    let res = h.send(get("/docs").header("x-api-key", KEY).header("authorization", "Basic Zm9vOmJhcg==")).await;
    assert_eq!(res.status(), 200);
    h.only(|r| {
        assert_eq!(r.user.as_deref(), Some("ingest"));
        assert!(!r.headers.contains_key("x-api-key"));
        assert!(!r.headers.contains_key("authorization"));
    });
    let res = h.send(get("/docs").header("authorization", &format!("Bearer {KEY}"))).await;
    assert_eq!(res.status(), 200);
    h.last(|r| {
        assert_eq!(r.user.as_deref(), Some("ingest"));
        assert!(!r.headers.contains_key("authorization"));
    });
}

#[tokio::test]
async fn auth_credentials_are_forwarded_only_where_the_route_says_so() {
    let h = authed("");
    assert_eq!(h.send(get("/passthrough").header("x-api-key", KEY)).await.status(), 200);
    h.only(|r| {
        assert_eq!(r.route, "passthrough");
        assert_eq!(r.headers["x-api-key"], KEY);
    });
    // An open route needs nothing, and a credential sent to it is removed too.
    assert_eq!(
        h.send(get("/open").header("x-api-key", "anything").header("authorization", "Bearer x")).await.status(),
        200
    );
    h.last(|r| {
        assert_eq!((r.route.as_str(), r.user.as_deref()), ("open", None));
        assert!(!r.headers.contains_key("x-api-key"));
        assert!(!r.headers.contains_key("authorization"));
    });
}

#[tokio::test]
async fn auth_identity_without_the_route_role_is_403() {
    let h = authed("");
    let res = h.send(get("/admin").header("x-api-key", KEY)).await;
    assert_eq!(hv(&res, "www-authenticate"), None);
    problem(res, 403, "You do not have access to this resource.").await;
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn auth_throttles_a_client_after_repeated_failures_even_with_the_right_key() {
    let h = authed("max_failures = { count = 2, per = \"1h\" }");
    for _ in 0..2 {
        problem(h.send(get("/docs").header("x-api-key", "k-guess")).await, 401, "Authentication required.").await;
    }
    let res = h.send(get("/docs").header("x-api-key", KEY)).await;
    let retry: u64 = hv(&res, "retry-after").unwrap().parse().unwrap();
    assert!((3599..=3600).contains(&retry), "the rest of the hour-long window: {retry}");
    problem(res, 429, "Too many failed authentication attempts; try again later.").await;
    assert_eq!(h.calls(), 0);
    // Another client is not affected.
    assert_eq!(h.send(get("/docs").peer("198.51.100.77").header("x-api-key", KEY)).await.status(), 200);
    h.only(|r| assert_eq!(r.client_ip, "198.51.100.77".parse::<IpAddr>().unwrap()));
}

// ---------------------------------------------------------------- body_limit

const BODIES: &str = r#"
[[routes]]
name = "small"
path = "/small"
max_body = "16B"

[[routes]]
name = "json"
path = "/json"
content_types = ["application/json"]
"#;

fn limited() -> Harness {
    Harness::routed(BODIES, BodyLimit, ok)
}

#[tokio::test]
async fn body_limit_passes_a_body_within_the_limit() {
    let h = limited();
    assert_eq!(h.send(req("POST", "/small").sized(b"0123456789abcdef")).await.status(), 200);
    h.only(|r| {
        assert_eq!(r.body.as_deref().unwrap(), b"0123456789abcdef");
        assert_eq!(r.body_refused, None);
    });
    // Streamed without a length, up to the limit exactly.
    assert_eq!(h.send(req("POST", "/small").body(streamed(2, 8))).await.status(), 200);
    h.last(|r| assert_eq!(r.body.as_ref().map(Bytes::len), Ok(16)));
}

#[tokio::test]
async fn body_limit_refuses_a_declared_length_over_the_limit_before_the_upstream() {
    let h = limited();
    let res = h.send(req("POST", "/small").sized(b"0123456789abcdefg")).await;
    assert_eq!(hv(&res, "connection"), Some("close"), "the unread body cannot be skipped");
    problem(res, 413, "The request body is too large.").await;
    let res = h.send(req("POST", "/small").header("content-length", "nope").body(body::full("x"))).await;
    problem(res, 400, "The request is malformed.").await;
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn body_limit_cuts_a_streamed_body_past_the_limit() {
    let h = limited();
    let res = h.send(req("POST", "/small").body(streamed(3, 8))).await;
    // The upstream saw its body stream fail (the proxy then aborts the upstream
    // request); rescue answers with the reason the body was cut.
    h.only(|r| {
        assert_eq!(r.body.as_ref().unwrap_err(), &ProxyError::BodyRefused(Reason::BodyTooLarge).to_string());
        assert_eq!(r.body_refused, Some(Reason::BodyTooLarge));
    });
    assert_eq!(hv(&res, "connection"), Some("close"));
    problem(res, 413, "The request body is too large.").await;
}

#[tokio::test]
async fn body_limit_refuses_other_content_types_with_415() {
    let h = limited();
    let res = h.send(req("POST", "/json").header("content-type", "text/plain").sized(b"{}")).await;
    problem(res, 415, "The uploaded content type is not allowed.").await;
    let res = h.send(req("POST", "/json").sized(b"{}")).await;
    problem(res, 415, "The uploaded content type is not allowed.").await;
    assert_eq!(h.calls(), 0);
    let ok_res =
        h.send(req("POST", "/json").header("content-type", "Application/JSON; charset=utf-8").sized(b"{}")).await;
    assert_eq!(ok_res.status(), 200);
    // A request without a body needs no content type.
    assert_eq!(h.send(get("/json")).await.status(), 200);
    assert_eq!(h.calls(), 2);
    h.last(|r| assert_eq!(r.method, Method::GET));
}

// ---------------------------------------------------------------- security_headers

#[tokio::test]
async fn security_headers_are_set_and_leaky_ones_removed() {
    let h = Harness::policy("", ResponseHeaders, leaky_headers);
    let res = h.send(get("/a")).await;
    assert_eq!(res.status(), 200);
    for gone in ["server", "x-powered-by", "x-aspnet-version", "x-runtime", "x-debug-token"] {
        assert_eq!(hv(&res, gone), None, "{gone}");
    }
    assert_eq!(hv(&res, "x-content-type-options"), Some("nosniff"));
    assert_eq!(hv(&res, "x-frame-options"), Some("DENY"));
    assert_eq!(hv(&res, "referrer-policy"), Some("no-referrer"));
    assert_eq!(hv(&res, "content-security-policy"), Some("default-src 'self'"), "moat's CSP replaces the upstream's");
    assert_eq!(hv(&res, "strict-transport-security"), None, "HSTS only over HTTPS");
    assert_eq!(text(res).await, "upstream ok");
    let res = h.send(get("/a").tls()).await;
    assert_eq!(hv(&res, "strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn security_headers_follow_the_config() {
    let toml = "[security_headers]\ncontent_security_policy = \"\"\nframe_options = \"SAMEORIGIN\"\n";
    let h = Harness::policy(toml, ResponseHeaders, leaky_headers);
    let res = h.send(get("/a")).await;
    assert_eq!(
        hv(&res, "content-security-policy"),
        Some("script-src *"),
        "the upstream's CSP is kept when moat's is off"
    );
    assert_eq!(hv(&res, "x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(hv(&res, "x-content-type-options"), Some("nosniff"));
    assert_eq!(hv(&res, "server"), None);
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn security_headers_cover_moat_refusals_and_render_them_for_browsers() {
    let h = Harness::new(
        "",
        ServiceBuilder::new().layer(PolicyLayer::new(ResponseHeaders)).layer(PolicyLayer::new(Framing)),
        ok,
    );
    let res = h.send(get("/a").no_host()).await;
    assert_eq!(hv(&res, "x-content-type-options"), Some("nosniff"));
    assert_eq!(hv(&res, "x-frame-options"), Some("DENY"));
    assert_eq!(hv(&res, "content-security-policy"), Some("default-src 'self'"));
    problem(res, 400, "The request is malformed.").await;
    // A browser navigating gets the same refusal as a page.
    let res = h.send(get("/a").no_host().header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")).await;
    assert_eq!(res.status(), 400);
    assert_eq!(hv(&res, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(hv(&res, "x-content-type-options"), Some("nosniff"));
    let id = hv(&res, "x-request-id").unwrap().to_string();
    let page = text(res).await;
    assert!(page.contains("<title>400 Bad Request</title>"), "{page}");
    assert!(page.contains("The request is malformed.") && page.contains(&id), "{page}");
    assert_eq!(h.calls(), 0);
}

// ---------------------------------------------------------------- sanitize

fn sanitized(respond: Respond) -> Harness {
    Harness::new("", SanitizeLayer, respond)
}

#[tokio::test]
async fn sanitize_replaces_a_leaky_upstream_500() {
    let h = sanitized(leaky_500);
    let res = h.send(get("/a")).await;
    for gone in ["x-error-detail", "server"] {
        assert_eq!(hv(&res, gone), None, "{gone}");
    }
    let v = problem(res, 500, "The service failed to process the request.").await;
    let body = v.to_string();
    for leak in ["Traceback", "main.py", "/srv/app", "10.0.3.7", "hunter2", "OperationalError"] {
        assert!(!body.contains(leak), "{leak} leaked: {body}");
    }
    h.only(|r| assert_eq!(r.uri, "/a"));
}

#[tokio::test]
async fn sanitize_keeps_retry_after_on_a_replaced_503() {
    let h = sanitized(leaky_503);
    let res = h.send(get("/a")).await;
    assert_eq!(hv(&res, "retry-after"), Some("7"));
    let v = problem(res, 503, "The service is temporarily unavailable.").await;
    assert!(!v.to_string().contains("redis"), "{v}");
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn sanitize_redacts_a_4xx_body_keeping_its_shape() {
    let h = sanitized(leaky_422);
    let res = h.send(get("/a")).await;
    assert_eq!(res.status(), 422);
    assert_eq!(hv(&res, "content-type"), Some("application/json"));
    assert_eq!(hv(&res, "etag"), None, "the body changed");
    let len: usize = hv(&res, "content-length").unwrap().parse().unwrap();
    let body = text(res).await;
    assert_eq!(body.len(), len);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "upload_failed");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("[redacted]"), "{detail}");
    assert!(!detail.contains("/srv/app") && !detail.contains("10.0.3.7"), "{detail}");
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn sanitize_passes_a_success_untouched_and_refuses_a_status_that_is_not_http() {
    let h = sanitized(ok);
    let res = h.send(get("/a")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(text(res).await, "upstream ok");
    let h = sanitized(not_http);
    problem(h.send(get("/a")).await, 502, "The service received an invalid response.").await;
    assert_eq!(h.calls(), 1);
}

// ---------------------------------------------------------------- request id

#[tokio::test]
async fn request_id_is_kept_only_from_a_trusted_proxy_and_only_when_well_formed() {
    let toml = "[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
    let h = Harness::policy(toml, Framing, ok);

    let res = h.send(get("/a").peer("10.1.2.3").header("x-request-id", "edge-7f3a.1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(hv(&res, "x-request-id"), Some("edge-7f3a.1"));
    assert_eq!(h.last(|r| r.headers["x-request-id"].clone()), "edge-7f3a.1");

    for (peer, incoming) in [("198.51.100.20", "edge-7f3a.1"), ("10.1.2.3", "bad\"<id>")] {
        let res = h.send(get("/a").peer(peer).header("x-request-id", incoming)).await;
        let id = hv(&res, "x-request-id").unwrap().to_string();
        assert_ne!(id, incoming);
        // A fresh UUIDv7, written as 32 lowercase hex digits.
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        assert_eq!(&id[12..13], "7", "{id}");
        // The upstream saw the same id the client got back.
        assert_eq!(h.last(|r| r.headers["x-request-id"].to_str().unwrap().to_string()), id);
    }
    assert_eq!(h.calls(), 3);
}

// ---------------------------------------------------------------- access log + metrics

#[tokio::test]
async fn the_access_log_layer_counts_each_request_with_its_status_and_refusal_reason() {
    let metrics = Arc::new(Metrics::new());
    let layer = ServiceBuilder::new()
        .layer(super::access_log::AccessLogLayer::new(metrics.clone()))
        .layer(PolicyLayer::new(Framing));
    let h = Harness::new("", layer, ok);

    let res = h.send(get("/a")).await;
    assert_eq!(text(res).await, "upstream ok");
    let res = h.send(get("/a").header("content-length", "3").header("transfer-encoding", "chunked")).await;
    problem(res, 400, Reason::BadRequest.detail()).await;
    assert_eq!(h.calls(), 1);

    // Counted when the response body has ended (read above).
    let exposed = metrics.encode();
    let line = |name: &str, needles: &[&str]| {
        exposed
            .lines()
            .find(|l| l.starts_with(name) && needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no {name} with {needles:?} in\n{exposed}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(line("moat_requests_total", &["status=\"200\"", "method=\"GET\""]), "1");
    assert_eq!(line("moat_requests_total", &["status=\"400\""]), "1");
    assert_eq!(line("moat_rejections_total", &["reason=\"bad_request\""]), "1");
}

// ---------------------------------------------------------------- upload inspection

const UPLOAD_ROUTE: &str = "[[routes]]\nname = \"pdf\"\npath = \"/pdf\"\nupload = { types = [\"pdf\"] }\n";

fn upload_policy() -> super::upload::Upload {
    super::upload::Upload::new(Metrics::new().scans.clone())
}

#[tokio::test]
async fn upload_passes_a_real_pdf_to_the_upstream_whole() {
    let h = Harness::routed(UPLOAD_ROUTE, upload_policy(), ok);
    let pdf: &[u8] = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
    let res = h.send(req("POST", "/pdf").header("content-type", "application/pdf").sized(pdf)).await;
    assert_eq!(res.status(), 200);
    h.only(|r| {
        assert_eq!(r.route, "pdf");
        assert_eq!(r.body.as_deref().unwrap(), pdf);
        assert_eq!(r.body_refused, None);
    });
}

#[tokio::test]
async fn upload_refuses_a_declared_type_the_route_does_not_take_before_the_upstream() {
    let h = Harness::routed(UPLOAD_ROUTE, upload_policy(), ok);
    let res = h.send(req("POST", "/pdf").header("content-type", "text/html").sized(b"<html></html>")).await;
    problem(res, 415, Reason::UploadType.detail()).await;
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn upload_cuts_a_zip_declared_as_pdf_while_it_streams() {
    let h = Harness::routed(UPLOAD_ROUTE, upload_policy(), ok);
    let zip: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00META-INF/MANIFEST.MF";
    let res = h.send(req("POST", "/pdf").header("content-type", "application/pdf").sized(zip)).await;
    problem(res, 415, Reason::UploadType.detail()).await;
    // The upstream's read of the body ended with moat's refusal, not the bytes.
    h.only(|r| {
        assert!(r.body.is_err(), "{:?}", r.body);
        assert_eq!(r.body_refused, Some(Reason::UploadType));
    });
}
