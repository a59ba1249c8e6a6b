//! The whole request stack of `src/stack.rs` (every policy of a realistic
//! config on: rate limit that never rejects, CORS allowlist, body limit,
//! security headers, error replacement) against an in-memory upstream, for
//! four requests: a browser GET, a CORS preflight, a 429 and an upstream 500
//! that is replaced. Reports criterion timings and, before them, the heap
//! allocations per request counted by the global allocator of this binary.
//! The in-memory upstream does the proxy's header work (`proxy::prepare`)
//! and answers like an app would, so only the TCP/HTTP exchange is missing.
//!
//! `cargo bench --bench stack`; allocation counts alone:
//! `cargo bench --bench stack -- --allocs`. `benches/stack_mimalloc.rs`
//! runs the same with mimalloc, the allocator of the moat binary (it counts
//! no allocations).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use moat::body::Body;
use moat::error::BoxError;
use moat::net::ConnInfo;
use moat::policy::BoxFuture;
use tower::{Service, ServiceExt};

/// Reads the allocation counters: (allocations, reallocations, bytes allocated).
pub type Counter = fn() -> (usize, usize, usize);

/// The config of the load comparison (`benches/compare.sh`), plus a route
/// whose limit refuses every request after the first, for the 429 case.
const CONFIG: &str = r#"
[upstream]
url = "http://127.0.0.1:8000"
[limits]
max_body = "200MiB"
[rate_limit]
default = { rate = "1000000/s", burst = 1000000 }
[cors]
allowed_origins = ["https://app.example.com"]
[[routes]]
name = "limited"
path = "/limited"
rate_limit = { key = "ip", rate = "1/h", burst = 1 }
"#;

fn shared() -> Arc<moat::stack::Shared> {
    let dir = std::env::temp_dir().join(format!("moat-bench-stack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("moat.toml");
    std::fs::write(&p, CONFIG).unwrap();
    let cfg = moat::config::load_with_env(Some(&p), &[]).unwrap();
    moat::stack::Shared::new(cfg)
}

/// An app behind moat: 200 with a small JSON body, or a 500 with a traceback on `/fail`.
fn upstream(req: Request<Body>) -> BoxFuture {
    Box::pin(async move {
        let mut req = req;
        let ctx = moat::policy::ctx_of(&req)?;
        moat::proxy::prepare(&mut req, &ctx, false, false, &ctx.config.upstream.origin)?;
        black_box(&req);
        let res = if req.uri().path() == "/fail" {
            Response::builder().status(500).header("content-type", "text/plain").header("server", "uvicorn").body(
                moat::body::full(Bytes::from_static(
                    b"Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 12\nKeyError: 'x'\n",
                )),
            )?
        } else {
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("content-length", "27")
                .header("server", "uvicorn")
                .header("access-control-allow-origin", "*")
                .body(moat::body::full(Bytes::from_static(b"{\"ok\":true,\"items\":[1,2,3]}")))?
        };
        Ok::<_, BoxError>(res)
    })
}

fn conn() -> ConnInfo {
    ConnInfo { peer: "192.0.2.10:50000".parse().unwrap(), tls: true }
}

fn get(path: &str) -> Request<Body> {
    let mut r = Request::builder()
        .method(Method::GET)
        .uri(format!("https://docs.example.com{path}"))
        .version(http::Version::HTTP_2)
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, deflate, br")
        .header("origin", "https://app.example.com")
        .header("cookie", "session=abc")
        .body(moat::body::empty())
        .unwrap();
    r.extensions_mut().insert(conn());
    r
}

fn preflight() -> Request<Body> {
    let mut r = Request::builder()
        .method(Method::OPTIONS)
        .uri("https://docs.example.com/api/v1/items")
        .version(http::Version::HTTP_2)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(moat::body::empty())
        .unwrap();
    r.extensions_mut().insert(conn());
    r
}

type Stack = Box<dyn Fn() -> tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, BoxError> + Send + Sync>;

fn stack() -> Stack {
    let sh = shared();
    let svc = moat::stack::build_with(&sh, tower::service_fn(upstream));
    let svc = tower::util::BoxCloneSyncService::new(svc);
    // Spend the one request the limited route allows, so every later one is a 429.
    assert_eq!(runtime().block_on(one(svc.clone(), get("/limited"))), 200);
    Box::new(move || svc.clone())
}

async fn one(
    mut svc: impl Service<Request<Body>, Response = Response<Body>, Error = BoxError>,
    req: Request<Body>,
) -> u16 {
    let res = match svc.ready().await {
        Ok(s) => s.call(req).await.unwrap(),
        Err(_) => unreachable!(),
    };
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    black_box(body);
    status
}

const CASES: &[(&str, u16)] = &[("get", 200), ("preflight", 204), ("429", 429), ("500", 500), ("get+log", 200)];

/// moat's JSON log format, with the `info` filter of the default, written
/// to a sink: the cost of formatting the access-log line without the I/O.
fn log_on() -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .event_format(moat::telemetry::JsonLines)
        .finish()
}

/// Runs `f` with the log on for the `+log` cases.
fn with_log<T>(case: &str, f: impl FnOnce() -> T) -> T {
    if case.ends_with("+log") {
        tracing::subscriber::with_default(log_on(), f)
    } else {
        f()
    }
}

fn request(case: &str) -> Request<Body> {
    match case {
        "get" | "get+log" => get("/api/v1/items?page=2"),
        "preflight" => preflight(),
        "429" => get("/limited"),
        _ => get("/fail"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Heap allocations and bytes per request, building the request excluded.
fn allocs(count: Counter) {
    let rt = runtime();
    let mk = stack();
    const N: usize = 1000;
    println!("allocations per request (mean of {N}, request construction excluded)");
    for (case, want) in CASES {
        let st = with_log(case, || {
            // Warm: first-request setup (limiter tables, metric series, thread-locals).
            for _ in 0..10 {
                assert_eq!(rt.block_on(one(mk(), request(case))), *want);
            }
            let reqs: Vec<_> = (0..N).map(|_| request(case)).collect();
            let before = count();
            for r in reqs {
                let s = rt.block_on(one(mk(), r));
                debug_assert_eq!(s, *want);
            }
            let after = count();
            (after.0 - before.0, after.1 - before.1, after.2 - before.2)
        });
        println!(
            "  {case:<10} allocs {:>6.1}  reallocs {:>5.1}  bytes {:>7.0}",
            st.0 as f64 / N as f64,
            st.1 as f64 / N as f64,
            st.2 as f64 / N as f64
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mk = stack();
    for (case, want) in CASES {
        with_log(case, || {
            assert_eq!(rt.block_on(one(mk(), request(case))), *want);
            c.bench_function(&format!("stack_{case}"), |b| {
                b.iter_batched(|| request(case), |r| rt.block_on(one(mk(), r)), criterion::BatchSize::SmallInput)
            });
        });
    }
}

criterion_group!(benches, bench);

/// `--loop CASE N`: N requests of one case, built beforehand, for
/// `benches/callgrind.sh`.
fn run_loop(case: &str, n: usize) {
    let rt = runtime();
    let mk = stack();
    with_log(case, || {
        for _ in 0..10 {
            black_box(rt.block_on(one(mk(), request(case))));
        }
        let reqs: Vec<_> = (0..n).map(|_| request(case)).collect();
        drive(&rt, &mk, reqs);
    });
}

/// The measured loop (callgrind collects inside it only, with `--toggle-collect=*drive*`).
#[inline(never)]
fn drive(rt: &tokio::runtime::Runtime, mk: &Stack, reqs: Vec<Request<Body>>) {
    for r in reqs {
        black_box(rt.block_on(one(mk(), r)));
    }
}

/// The bench's `main`; `count` reads the global allocator's counters, if it has any.
pub fn main(count: Option<Counter>) {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--loop") {
        let case = args.get(i + 1).map(String::as_str).unwrap_or("get");
        let n = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(1000);
        run_loop(case, n);
        return;
    }
    if let Some(count) = count {
        allocs(count);
    }
    if std::env::args().any(|a| a == "--allocs") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
