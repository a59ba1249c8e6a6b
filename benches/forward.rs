//! The per-request forwarding work on the hot path: header hygiene,
//! forwarding headers, upstream request building, path normalization and
//! route matching, and the problem+json body of a rejection.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{Method, Request};
use moat::config::Config;
use moat::net::ConnInfo;
use moat::policy::ctx::Ctx;

fn request() -> Request<moat::body::Body> {
    Request::builder()
        .method(Method::POST)
        .uri("https://docs.example.com/api/v1/tasks/submit?priority=1")
        .header("host", "docs.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, deflate, br")
        .header("content-type", "multipart/form-data; boundary=----x")
        .header("content-length", "1048576")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "203.0.113.7")
        .header("cookie", "session=abc")
        .body(moat::body::empty())
        .unwrap()
}

fn config() -> Arc<Config> {
    let dir = std::env::temp_dir().join(format!("moat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("moat.toml");
    let mut text = String::from("[upstream]\nurl = \"http://127.0.0.1:8000\"\n");
    for i in 0..20 {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath = \"/api/v{i}/things/{{id}}\"\nmethods = [\"GET\"]\n"
        ));
    }
    text.push_str("[[routes]]\nname = \"submit\"\npath = \"/api/v1/tasks/submit\"\nmethods = [\"POST\"]\n");
    std::fs::write(&p, text).unwrap();
    Arc::new(moat::config::load_with_env(Some(&p), &[]).unwrap())
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let conn = ConnInfo { peer: "192.0.2.10:50000".parse().unwrap(), tls: true };

    c.bench_function("prepare_upstream_request", |b| {
        b.iter_batched(
            || (request(), Ctx::new("0192".into(), cfg.clone(), conn)),
            |(mut req, ctx)| {
                moat::proxy::prepare(&mut req, &ctx, false, false, &ctx.config.upstream.origin).unwrap();
                black_box(req)
            },
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("hop_by_hop_and_forwarding_headers", |b| {
        b.iter_batched(
            || request().into_parts().0.headers,
            |mut h| {
                moat::headers::remove_hop_by_hop(&mut h, false);
                let ip = "192.0.2.10".parse().unwrap();
                moat::headers::set_forwarding(&mut h, ip, ip, false, Some("docs.example.com"));
                black_box(h)
            },
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("normalize_and_match_route_of_21", |b| {
        b.iter(|| {
            let p = moat::policy::route::normalize(black_box("/api/v1/tasks/submit"), false).unwrap();
            black_box(matches!(
                moat::policy::route::find(&cfg, None, &p.matched, &Method::POST),
                moat::policy::route::Match::Route(_)
            ))
        })
    });

    c.bench_function("request_id", |b| b.iter(|| black_box(moat::policy::request_id::new_id())));

    c.bench_function("problem_json_body", |b| {
        let r = moat::error::Reason::RateLimited;
        b.iter(|| {
            black_box(moat::error::problem(r.status(), r.detail(), "0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6", false, Some(r)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
