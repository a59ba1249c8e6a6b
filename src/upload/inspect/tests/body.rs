//! Tests of the body wrapper: the bytes pass through unchanged and in
//! order, a refused body never reaches its end, trailers, inner errors,
//! pending inner bodies and size hints pass through, and buffers stay
//! bounded on large bodies (with a throughput measurement).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};

use super::test_support::{all_rules, body_of, multipart, run_body, samples, split, xorshift, Form, BOUNDARY};
use super::{inspect, FieldRule, HighWater, InspectBody, InspectError, UploadRules, Violation, MAX_PART_HEADER_BYTES};
use crate::upload::types::SNIFF_WINDOW;

#[tokio::test]
async fn abort_property_for_violating_bodies() {
    let pdf = samples::pdf();
    let mut big = pdf.clone();
    big.resize(3000, b'x');
    let mut r = all_rules();
    r.max_file_size = 2000;
    r.max_files = 1;
    let bodies: Vec<(Vec<u8>, Violation)> = vec![
        (Form::new().file("a.pdf", None, &samples::exe()).end(), Violation::FileType),
        (Form::new().file("a.pdf.exe", None, &pdf).end(), Violation::FileName),
        (Form::new().file("a.pdf", None, &big).end(), Violation::FileTooLarge),
        (Form::new().file("a.pdf", None, &pdf).file("b.pdf", None, &pdf).end(), Violation::TooManyFiles),
        (Form::new().text("f", &"v".repeat(2000)).end(), Violation::FieldTooLarge),
        (Form::new().file("a.pdf", None, &pdf).0, Violation::Malformed),
        // The violation is only visible at the very end of the body.
        (Form::new().file("a.json", None, b"{\"a\":\x00}").end(), Violation::FileType),
    ];
    for (body, want) in bodies {
        for seed in 1..8 {
            let chunks = split(&body, seed, 1 + seed as usize * 50);
            let o = run_body(body_of(chunks), multipart(), r.clone()).await;
            assert_eq!(o.err, Some(want));
            assert!(o.out.len() < body.len(), "{want:?} yielded the whole body");
        }
    }
}

#[tokio::test]
async fn identity_over_random_splits() {
    let mut long_text = String::new();
    while long_text.len() < SNIFF_WINDOW + 5000 {
        long_text.push_str("Ünïcode text — with multi-byte characters ✓ and CR LF\r\n");
    }
    let mut pdf = samples::pdf();
    pdf.extend(std::iter::repeat_n(b'\r', 300));
    pdf.extend_from_slice(b"\r\n-\r\n--\r\n---");
    pdf.extend_from_slice(&BOUNDARY.as_bytes()[..BOUNDARY.len() - 1]);
    pdf.extend_from_slice(b"\n%%EOF\n");
    let body = Form::new()
        .text("output_dir", "run1")
        .file("a.pdf", Some("application/pdf"), &pdf)
        .file("b.png", Some("image/png"), &samples::png())
        .text("empty", "")
        .file("notes.txt", Some("text/plain"), long_text.as_bytes())
        .file("c.docx.json", None, &samples::json())
        .end();
    for seed in 1..=12u64 {
        for max in [1usize, 3, 16, 200, 70_000] {
            let chunks = split(&body, seed * 7919, max);
            let o = run_body(body_of(chunks), multipart(), all_rules()).await;
            assert_eq!(o.err, None, "seed {seed} max {max}");
            assert_eq!(o.out, body, "seed {seed} max {max}");
            assert!(o.hw.sniff <= SNIFF_WINDOW);
        }
    }
}

#[tokio::test]
async fn trailers_pass_through() {
    let body = Form::new().file("a.pdf", None, &samples::pdf()).end();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> =
        split(&body, 5, 40).into_iter().map(|c| Ok(Frame::data(c))).collect();
    frames.push(Ok(Frame::trailers(trailers.clone())));
    let inner = StreamBody::new(futures_util::stream::iter(frames));
    let o = run_body(inner, multipart(), all_rules()).await;
    assert_eq!(o.err, None);
    assert_eq!(o.out, body);
    assert_eq!(o.trailers, Some(trailers));
}

/// A body that is pending once before every frame, waking its task.
struct Yielding<B> {
    inner: B,
    ready: bool,
}

impl<B: Body + Unpin> Body for Yielding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_inner_body() {
    let body = Form::new().text("a", "b").file("a.pdf", None, &samples::pdf()).end();
    let inner = Yielding { inner: body_of(split(&body, 11, 13)), ready: false };
    let o = tokio::spawn(run_body(inner, multipart(), all_rules())).await.expect("task");
    assert_eq!(o.err, None);
    assert_eq!(o.out, body);
    let bad = Form::new().file("a.pdf", None, &samples::exe()).end();
    let inner = Yielding { inner: body_of(split(&bad, 11, 13)), ready: false };
    let o = run_body(inner, multipart(), all_rules()).await;
    assert_eq!(o.err, Some(Violation::FileType));
}

#[tokio::test]
async fn inner_errors_pass_through() {
    let body = Form::new().file("a.pdf", None, &samples::pdf()).end();
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::copy_from_slice(&body[..50]))),
        Ok(Frame::data(Bytes::copy_from_slice(&body[50..100]))),
        Err(std::io::Error::other("client went away")),
    ];
    let mut ib = inspect(StreamBody::new(futures_util::stream::iter(frames)), multipart(), Arc::new(all_rules()), None);
    let first = ib.frame().await;
    assert!(matches!(first, Some(Ok(_))));
    let err = ib.frame().await;
    assert!(matches!(err, Some(Err(InspectError::Inner(_)))));
    assert!(matches!(ib.frame().await, Some(Err(InspectError::Inner(_)))));
}

#[test]
fn size_hint_passes_through() {
    let body = Form::new().file("a.pdf", None, &samples::pdf()).end();
    let len = body.len() as u64;
    let inner = http_body_util::Full::new(Bytes::from(body));
    let ib = inspect(inner, multipart(), Arc::new(all_rules()), None);
    assert_eq!(ib.size_hint().exact(), Some(len));
    assert!(!ib.is_end_stream());
}

#[test]
fn inspect_body_is_send_and_sync() {
    fn check<T: Send + Sync + Unpin + 'static>() {}
    check::<InspectBody<http_body_util::Full<Bytes>>>();
}

/// A multipart body generated on the fly: a field, then one file part
/// made of `chunks` chunks taken in turn from `ring` (the head frame ends
/// with the first bytes of the file, `magic` included).
struct Generated {
    head: Option<Bytes>,
    ring: Arc<Vec<Bytes>>,
    next: usize,
    chunks: usize,
    tail: Option<Bytes>,
}

const CHUNK: usize = 64 * 1024;

/// `n` distinct chunks of `len` bytes of lowercase text lines.
fn text_ring(n: usize, len: usize) -> Arc<Vec<Bytes>> {
    let chunks = (0..n)
        .map(|k| {
            let v: Vec<u8> = (0..len).map(|i| if i % 64 == 63 { b'\n' } else { b'a' + ((i + k) % 26) as u8 }).collect();
            Bytes::from(v)
        })
        .collect();
    Arc::new(chunks)
}

impl Generated {
    fn new(filename: &str, magic: &[u8], ring: Arc<Vec<Bytes>>, chunks: usize) -> Self {
        let mut head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"output_dir\"\r\n\r\nrun1\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        // The head frame ends inside the file, so the sniff buffer
        // has to collect the start of the file across chunks.
        head.extend_from_slice(magic);
        head.extend_from_slice(b"first line\n");
        Self {
            head: Some(Bytes::from(head)),
            ring,
            next: 0,
            chunks,
            tail: Some(Bytes::from(format!("\n%%EOF\r\n--{BOUNDARY}--\r\n"))),
        }
    }

    fn next_bytes(&mut self) -> Option<Bytes> {
        if let Some(h) = self.head.take() {
            return Some(h);
        }
        if self.next < self.chunks && !self.ring.is_empty() {
            let b = self.ring[self.next % self.ring.len()].clone();
            self.next += 1;
            return Some(b);
        }
        self.tail.take()
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().next_bytes().map(|b| Ok(Frame::data(b))))
    }
}

fn big_rules() -> UploadRules {
    let mut r = all_rules();
    r.max_file_size = 1 << 30;
    r.fields = vec![FieldRule::new("output_dir", None, Some("[A-Za-z0-9_-]{1,64}")).expect("pattern")];
    r
}

/// Streams a generated body through the inspector, comparing every
/// yielded chunk with the generator's; returns (bytes, high water).
async fn stream_generated(filename: &str, magic: &[u8], total: usize) -> (u64, HighWater) {
    let ring = text_ring(1, CHUNK);
    let mut expected = Generated::new(filename, magic, ring.clone(), total / CHUNK);
    let inner = Generated::new(filename, magic, ring, total / CHUNK);
    let mut ib = inspect(inner, multipart(), Arc::new(big_rules()), None);
    let mut bytes = 0u64;
    let mut hw = HighWater::default();
    while let Some(frame) = ib.frame().await {
        let data = match frame {
            Ok(f) => f.into_data().expect("data frame"),
            Err(e) => panic!("refused: {e}"),
        };
        assert_eq!(Some(&data), expected.next_bytes().as_ref());
        bytes += data.len() as u64;
        hw.merge(ib.high_water());
    }
    assert_eq!(expected.next_bytes(), None);
    (bytes, hw)
}

#[tokio::test]
async fn large_body_streams_with_bounded_buffers() {
    // A text file: its sniff buffer fills the whole window.
    let (bytes, hw) = stream_generated("big.txt", b"", 64 << 20).await;
    assert!(bytes > 64 << 20);
    assert!(hw.sniff <= SNIFF_WINDOW, "sniff high water {}", hw.sniff);
    assert!(hw.sniff > 0);
    assert!(hw.headers <= MAX_PART_HEADER_BYTES + 1);
    // A PDF: decided within the first bytes.
    let (_, hw) = stream_generated("big.pdf", b"%PDF-1.7\n", 8 << 20).await;
    assert!(hw.sniff <= 1024, "sniff high water {}", hw.sniff);
}

#[tokio::test]
async fn tiny_chunks_keep_sniffing_bounded() {
    let text = "x".repeat(SNIFF_WINDOW + 3000);
    let body = Form::new().file("t.txt", None, text.as_bytes()).end();
    let start = Instant::now();
    let o = run_body(body_of(split(&body, 3, 1)), multipart(), all_rules()).await;
    assert_eq!(o.err, None);
    assert_eq!(o.out, body);
    assert!(o.hw.sniff <= SNIFF_WINDOW);
    assert!(start.elapsed().as_secs() < 60);
}

/// Prints the inspector's throughput on a 64 MiB multipart upload: one
/// PDF part, in 64 KiB and in 16 KiB chunks drawn from 48 MiB of distinct
/// chunks (more than the L3 cache), best of three runs.
#[tokio::test]
async fn throughput_64mib_multipart() {
    const TOTAL: usize = 64 << 20;
    for chunk in [64 * 1024, 16 * 1024] {
        let ring = text_ring((48 << 20) / chunk, chunk);
        let mut best = f64::MAX;
        let mut bytes = 0u64;
        for _ in 0..3 {
            let start = Instant::now();
            let inner = Generated::new("big.pdf", b"%PDF-1.7\n", ring.clone(), TOTAL / chunk);
            let mut ib = inspect(inner, multipart(), Arc::new(big_rules()), None);
            bytes = 0;
            while let Some(frame) = ib.frame().await {
                bytes += frame.expect("accepted").into_data().map_or(0, |d| d.len() as u64);
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        assert!(bytes >= TOTAL as u64);
        let mib = bytes as f64 / (1024.0 * 1024.0);
        println!(
            "upload inspection, {} KiB chunks: {mib:.0} MiB in {best:.4} s = {:.0} MiB/s",
            chunk / 1024,
            mib / best.max(1e-9),
        );
    }
}

#[tokio::test]
async fn hostile_bytes_never_panic() {
    let pdf = samples::pdf();
    let base = Form::new()
        .text("output_dir", "run1")
        .file("a.pdf", Some("application/pdf"), &pdf)
        .file("b.json", None, &samples::json())
        .end();
    let rounds: u64 = std::env::var("UPLOAD_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..rounds {
        let mut body = base.clone();
        let edits = 1 + xorshift(&mut seed) % 4;
        for _ in 0..edits {
            let at = xorshift(&mut seed) as usize % body.len().max(1);
            match xorshift(&mut seed) % 5 {
                0 => body[at] = xorshift(&mut seed) as u8,
                1 => {
                    body.truncate(at);
                }
                2 => {
                    let insert: &[u8] = match xorshift(&mut seed) % 4 {
                        0 => b"\r\n",
                        1 => b"\r\n\r\n",
                        2 => b"--",
                        _ => BOUNDARY.as_bytes(),
                    };
                    body.splice(at..at, insert.iter().copied());
                }
                3 => {
                    body.remove(at.min(body.len().saturating_sub(1)));
                }
                _ => body[at] = b"\r\n-\";=\\"[xorshift(&mut seed) as usize % 7],
            }
            if body.is_empty() {
                break;
            }
        }
        let mut r = all_rules();
        r.fields = vec![FieldRule::new("output_dir", Some(16), Some("[a-z0-9]+")).expect("pattern")];
        let chunks = split(&body, round + 1, 1 + round as usize % 50);
        let o = run_body(body_of(chunks), multipart(), r).await;
        match o.err {
            None => assert_eq!(o.out, body),
            Some(_) => assert!(o.out.len() < body.len() || body.is_empty()),
        }
    }
}
