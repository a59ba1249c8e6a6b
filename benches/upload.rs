//! Upload inspection throughput on a large multipart body (one PDF part),
//! fed in 64 KiB chunks as hyper would deliver them.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::{BodyExt, StreamBody};
use moat::upload::{inspect, lookup, BodyKind, UploadRules};

const BOUNDARY: &str = "----benchBoundary";

fn chunks(total: usize) -> Vec<Bytes> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    )
    .into_bytes();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while body.len() < total {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.extend_from_slice(format!("\n%%EOF\r\n--{BOUNDARY}--\r\n").as_bytes());
    body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect()
}

fn bench(c: &mut Criterion) {
    const SIZE: usize = 64 << 20;
    let data = chunks(SIZE);
    let rules = Arc::new(UploadRules {
        types: vec![lookup("pdf").unwrap()],
        max_files: 1,
        max_file_size: u64::MAX,
        max_field_bytes: 1024,
        fields: Vec::new(),
        ..UploadRules::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut g = c.benchmark_group("upload_inspection");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.bench_function("multipart_pdf_64MiB", |b| {
        b.iter(|| {
            let owned: Vec<Bytes> = data.clone();
            let frames = futures_util::stream::iter(
                owned.into_iter().map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(c))),
            );
            let body = StreamBody::new(frames);
            let kind = BodyKind::Multipart { boundary: BOUNDARY.to_string() };
            let inspected = inspect(body, kind, rules.clone(), None);
            rt.block_on(async move {
                let mut n = 0usize;
                let mut b = inspected;
                while let Some(f) = b.frame().await {
                    n += f.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
                }
                assert!(n > SIZE);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
