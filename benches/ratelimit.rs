//! The in-memory rate-limit check on the hot path: one key, and many keys.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use moat::config::units::Rate;
use moat::policy::rate_limit::memory::MemoryLimiter;
use moat::policy::rate_limit::{mask, BucketKey, KeyKind, Rule};

fn bench(c: &mut Criterion) {
    let rule =
        Rule { key: KeyKind::Ip, rate: Rate { count: 1_000_000_000, per: Duration::from_secs(1) }, burst: 1_000_000 };
    let l = MemoryLimiter::new(rule, 100_000);
    let one = BucketKey::Ip("192.0.2.1".parse().unwrap());
    c.bench_function("ratelimit_check_one_key", |b| b.iter(|| black_box(l.check(black_box(&one)))));

    let keys: Vec<BucketKey> =
        (0..50_000u32).map(|i| BucketKey::Ip(std::net::Ipv4Addr::from(0x0a00_0000 + i).into())).collect();
    let mut i = 0;
    c.bench_function("ratelimit_check_50k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(l.check(&keys[i]))
        })
    });

    let v6: std::net::IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
    c.bench_function("ratelimit_key_ipv6_mask", |b| b.iter(|| black_box(mask(black_box(v6), 64))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
