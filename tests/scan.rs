//! Malware scanning of uploads by a real clamd, end to end: moat as a
//! process, a recording upstream, a TLS client, and clamd started by the
//! test with a signature database the test writes (the EICAR test string and
//! one custom byte pattern; the official database is not needed).

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::clamd::{eicar, pattern, Clamd};
use common::samples::{form, form_content_type, part};
use common::*;

/// A PDF of about `size` bytes of noise, with `inject` at `at` if given.
fn pdf(size: usize, inject: Option<(&[u8], usize)>) -> Vec<u8> {
    let mut body = vec![0u8; size];
    Noise::new(size as u64).fill(&mut body);
    if let Some((bytes, at)) = inject {
        body[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend_from_slice(&body);
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

fn config(up: &Upstream, pki: &Pki, scan: &str) -> String {
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[rate_limit]\ndefault = \"off\"\n\
         [scan]\n{scan}\n\
         [[routes]]\nname = \"upload\"\npath = \"/upload\"\nmethods = [\"POST\"]\nmax_body = \"400MiB\"\n\
         upload = {{ types = [\"pdf\", \"txt\"], max_files = 3, scan = true }}\n\
         [[routes]]\nname = \"unscanned\"\npath = \"/unscanned\"\nmethods = [\"POST\"]\nmax_body = \"400MiB\"\n\
         upload = {{ types = [\"pdf\", \"txt\"], max_files = 3 }}\n",
        up.url(),
        c.display(),
        k.display()
    )
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    id: String,
    text: String,
}

async fn post(c: &reqwest::Client, url: &str, ctype: &str, body: Vec<u8>) -> Answer {
    let res = c.post(url).header("content-type", ctype).body(body).send().await.unwrap();
    let status = res.status().as_u16();
    let header = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let retry_after = header("retry-after");
    let id = header("x-request-id").unwrap_or_default();
    let text = res.text().await.unwrap();
    Answer { status, retry_after, id, text }
}

/// No body the upstream received was a complete copy of `sent`.
fn never_complete(up: &Upstream, sent: &[u8]) {
    let digest = sha256_hex(sent);
    for s in up.seen() {
        assert!(!(s.complete && s.sha256 == digest), "the upstream received the complete refused body");
    }
}

/// The problem+json of a refusal, checked for leaks of the scan's findings.
fn assert_refusal(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{}", a.text);
    let v: serde_json::Value = serde_json::from_str(&a.text).unwrap();
    assert_eq!(v["status"], status);
    for leak in ["Moat.Test", "FOUND", "UNOFFICIAL", "clamd", "127.0.0.1", "stream:"] {
        assert!(!a.text.contains(leak), "the answer leaks {leak:?}: {}", a.text);
    }
}

async fn scans(m: &Moat, result: &str) -> f64 {
    metric(m, &format!("moat_scans_total{{result=\"{result}\"}}")).await
}

#[tokio::test]
async fn clean_files_pass_byte_identical_and_infected_ones_never_reach_the_upstream() {
    init_crypto();
    let Some(clamd) = Clamd::start() else { return };
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki, &format!("clamd = \"{}\"\nmax_file_size = \"300MiB\"", clamd.tcp())));
    for c in [pki.builder().http1_only().build().unwrap(), pki.builder().http2_prior_knowledge().build().unwrap()] {
        // A clean multi-MiB PDF passes, byte for byte.
        let body = form(&[part("file", Some("report.pdf"), Some("application/pdf"), &pdf(6 << 20, None))]);
        let a = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let seen = up.seen().pop().unwrap();
        assert!(seen.complete);
        assert_eq!(seen.sha256, sha256_hex(&body), "the upstream did not receive the exact bytes sent");

        // EICAR as report.txt in multipart: 403, the upstream never got it whole.
        let body = form(&[part("file", Some("report.txt"), Some("text/plain"), &eicar())]);
        let a = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
        assert_refusal(&a, 403);
        never_complete(&up, &body);
        let line = m.access_line(&a.id).await;
        assert_eq!(line["reject_reason"], "upload_malware", "{line}");
        let logged = |m: &Moat| m.log_lines().iter().any(|l| l.contains("Moat.Test.EICAR") && l.contains(&a.id));
        assert!(eventually(Duration::from_secs(5), || logged(&m)).await, "the signature is logged with the request id");

        // The same bytes as a raw text/plain body.
        let a = post(&c, &m.url("/upload"), "text/plain", eicar()).await;
        assert_refusal(&a, 403);
        never_complete(&up, &eicar());

        // The custom pattern 10 MiB into a 20 MiB PDF.
        let body = form(&[part(
            "file",
            Some("big.pdf"),
            Some("application/pdf"),
            &pdf(20 << 20, Some((&pattern(), 10 << 20))),
        )]);
        let a = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
        assert_refusal(&a, 403);
        never_complete(&up, &body);

        // Two files, only the second infected; then only the first.
        let clean = pdf(256 << 10, None);
        for (first, second) in
            [(&clean, &pdf(1 << 20, Some((&pattern(), 4096)))), (&pdf(1 << 20, Some((&pattern(), 4096))), &clean)]
        {
            let body = form(&[
                part("file", Some("a.pdf"), Some("application/pdf"), first),
                part("file", Some("b.pdf"), Some("application/pdf"), second),
            ]);
            let a = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
            assert_refusal(&a, 403);
            never_complete(&up, &body);
        }
    }
    // The same infected bytes on a route without scanning are delivered:
    // the refusals above came from the scan, not from another check.
    let body = form(&[part("file", Some("report.txt"), Some("text/plain"), &eicar())]);
    let a = post(&pki.client(), &m.url("/unscanned"), &form_content_type(), body.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(up.seen().pop().unwrap().sha256, sha256_hex(&body));
    // Two clean PDFs at least; a clean file beside an infected one may be
    // cut before its verdict, when the request is refused first.
    assert!(scans(&m, "clean").await >= 2.0);
    assert!(scans(&m, "infected").await >= 10.0);
    assert_eq!(scans(&m, "error").await, 0.0);
    let sum = metric(&m, "moat_scan_duration_seconds_count").await;
    assert!(sum >= 12.0, "scan durations recorded: {sum}");
}

#[tokio::test]
async fn a_large_clean_upload_streams_through_the_scan_with_flat_memory() {
    init_crypto();
    let Some(clamd) = Clamd::start() else { return };
    let pki = Pki::new();
    let up = Upstream::ok().await;
    // Over the unix socket this time.
    let m = Moat::start(&config(&up, &pki, &format!("clamd = \"{}\"\nmax_file_size = \"300MiB\"", clamd.unix())));
    let (_, _, body) = common::samples::streamed_pdf_form("big.pdf", 5, 160 << 20);
    let before = m.rss_kib();
    let res = pki
        .client()
        .post(m.url("/upload"))
        .header("content-type", form_content_type())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.seen().pop().unwrap();
    assert!(seen.complete);
    assert!(seen.body_len > 160 << 20);
    let peak = m.peak_rss_kib();
    eprintln!("160 MiB scanned upload: moat RSS before {before} KiB, peak {peak} KiB");
    assert!(peak < before + 64 * 1024, "moat's memory grew with the upload: {before} KiB -> {peak} KiB");
    assert_eq!(scans(&m, "clean").await, 1.0);
}

#[tokio::test]
async fn clamd_down_follows_on_error_and_readiness_reports_it() {
    init_crypto();
    let Some(mut clamd) = Clamd::start() else { return };
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let deny = Moat::start(&config(
        &up,
        &pki,
        &format!("clamd = \"{}\"\ntimeout = \"3s\"\nrequired_for_ready = true", clamd.tcp()),
    ));
    let allow = Moat::start(&config(
        &up,
        &pki,
        &format!("clamd = \"{}\"\ntimeout = \"3s\"\non_error = \"allow\"", clamd.tcp()),
    ));
    let c = pki.client();
    let body = form(&[part("file", Some("report.pdf"), Some("application/pdf"), &pdf(64 << 10, None))]);
    for m in [&deny, &allow] {
        assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await.status, 200);
    }
    let ready = |m: &Moat| {
        let url = m.admin_url("/readyz");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&deny).await, 200);

    clamd.stop();
    let a = post(&c, &deny.url("/upload"), &form_content_type(), body.clone()).await;
    assert_refusal(&a, 503);
    assert!(a.retry_after.is_some(), "503 without retry-after");
    assert_eq!(deny.access_line(&a.id).await["reject_reason"], "scan_unavailable");
    assert_eq!(ready(&deny).await, 503, "readiness must include clamd");

    let n = up.seen().len();
    let a = post(&c, &allow.url("/upload"), &form_content_type(), body.clone()).await;
    assert_eq!(a.status, 200, "on_error = allow lets the file through: {}", a.text);
    assert_eq!(up.seen().len(), n + 1);
    assert_eq!(up.seen().pop().unwrap().sha256, sha256_hex(&body));
    assert_eq!(scans(&deny, "error").await, 1.0);
    assert_eq!(scans(&allow, "error").await, 1.0);
    assert_eq!(ready(&allow).await, 200, "readiness ignores clamd without required_for_ready");
}

#[tokio::test]
async fn a_file_over_the_scan_limit_follows_on_too_large() {
    init_crypto();
    let Some(clamd) = Clamd::start() else { return };
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let deny = Moat::start(&config(&up, &pki, &format!("clamd = \"{}\"\nmax_file_size = \"1MiB\"", clamd.tcp())));
    let allow = Moat::start(&config(
        &up,
        &pki,
        &format!("clamd = \"{}\"\nmax_file_size = \"1MiB\"\non_too_large = \"allow\"", clamd.tcp()),
    ));
    let c = pki.client();
    let big =
        form(&[part("file", Some("big.pdf"), Some("application/pdf"), &pdf(3 << 20, Some((&pattern(), 2 << 20))))]);
    let small = form(&[part("file", Some("small.pdf"), Some("application/pdf"), &pdf(512 << 10, None))]);

    let a = post(&c, &deny.url("/upload"), &form_content_type(), big.clone()).await;
    assert_refusal(&a, 413);
    never_complete(&up, &big);
    assert_eq!(post(&c, &deny.url("/upload"), &form_content_type(), small.clone()).await.status, 200);

    // Passed unscanned (the pattern past the limit is not seen), and counted.
    let a = post(&c, &allow.url("/upload"), &form_content_type(), big.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(up.seen().pop().unwrap().sha256, sha256_hex(&big));
    assert_eq!(scans(&allow, "skipped").await, 1.0);
    assert_eq!(scans(&deny, "clean").await, 1.0);
}

fn check(dir: &Path, toml: &str) -> (i32, String) {
    let p = dir.join("moat.toml");
    std::fs::write(&p, toml).unwrap();
    let (code, out, err) = moat_cmd(&["check", "--config", p.to_str().unwrap()], &[]);
    (code, out + &err)
}

#[test]
fn scan_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let route = "[[routes]]\nname = \"u\"\npath = \"/u\"\nupload = { types = [\"pdf\"], max_file_size = \"100MiB\", scan = true }\n";

    let (code, out) = check(dir.path(), route);
    assert_ne!(code, 0);
    assert!(out.contains("routes[0].upload.scan") && out.contains("[scan]"), "{out}");

    for (scan, key) in [
        ("clamd = \"127.0.0.1:3310\"", "scan.clamd"),
        ("clamd = \"tcp://127.0.0.1:3310\"\non_error = \"maybe\"", "scan.on_error"),
        ("clamd = \"tcp://127.0.0.1:3310\"\non_too_large = \"skip\"", "scan.on_too_large"),
        ("clamd = \"tcp://127.0.0.1:3310\"\ntimeout = \"0s\"", "scan.timeout"),
        ("clamd = \"tcp://127.0.0.1:3310\"\npool_size = 0", "scan.pool_size"),
        ("timeout = \"5s\"", "scan.clamd"),
        ("clamd = \"tcp://127.0.0.1:3310\"\nstream_max = 1", "stream_max"),
    ] {
        let (code, out) = check(dir.path(), &format!("[scan]\n{scan}\n{route}"));
        assert_ne!(code, 0, "{scan}");
        assert!(out.contains("moat.toml") && out.contains(key), "{scan}: {out}");
    }

    // Valid, with a warning: the route takes files larger than are scanned.
    let (code, out) = check(dir.path(), &format!("[scan]\nclamd = \"unix:/run/clamav/clamd.ctl\"\n{route}"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("scan.max_file_size") && out.contains("refused with 413"), "{out}");
    assert!(out.contains("scanned"), "the route table shows scanning: {out}");
}

/// A clamd stand-in on 127.0.0.1 that reads `INSTREAM` chunks at `rate`
/// bytes per second (or never, with `rate = 0`) and then answers `OK`.
async fn slow_clamd(rate: u64) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("tcp://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut cmd = [0u8; 10];
                if s.read_exact(&mut cmd).await.is_err() {
                    return;
                }
                if rate == 0 {
                    // Accepts and never reads again.
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    return;
                }
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut left = u32::from_be_bytes(len) as usize;
                    if left == 0 {
                        let _ = s.write_all(b"stream: OK\0").await;
                        return;
                    }
                    while left > 0 {
                        let n = left.min(buf.len());
                        if s.read_exact(&mut buf[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                        tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_slow_scanner_slows_the_client_instead_of_growing_memory() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    // 32 MiB/s: a 96 MiB upload takes about 3 s to pass the scanner.
    let (addr, _clamd) = slow_clamd(32 << 20).await;
    let m = Moat::start(&config(&up, &pki, &format!("clamd = \"{addr}\"\nmax_file_size = \"300MiB\"")));
    let body = form(&[part("file", Some("big.pdf"), Some("application/pdf"), &pdf(96 << 20, None))]);
    let before = m.rss_kib();
    let a = post(&pki.client(), &m.url("/upload"), &form_content_type(), body.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(up.seen().pop().unwrap().sha256, sha256_hex(&body));
    let peak = m.peak_rss_kib();
    eprintln!("96 MiB upload through a 32 MiB/s scanner: moat RSS before {before} KiB, peak {peak} KiB");
    assert!(peak < before + 48 * 1024, "moat buffered what the scanner had not taken: {before} KiB -> {peak} KiB");
}

#[tokio::test]
async fn a_scanner_that_stops_reading_is_a_scan_error_after_the_timeout() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let (addr, _clamd) = slow_clamd(0).await;
    let m =
        Moat::start(&config(&up, &pki, &format!("clamd = \"{addr}\"\ntimeout = \"2s\"\nmax_file_size = \"300MiB\"")));
    // Larger than the socket buffers and moat's queue: the writes stall.
    let body = form(&[part("file", Some("big.pdf"), Some("application/pdf"), &pdf(24 << 20, None))]);
    let a = post(&pki.client(), &m.url("/upload"), &form_content_type(), body.clone()).await;
    assert_refusal(&a, 503);
    never_complete(&up, &body);
    assert_eq!(scans(&m, "error").await, 1.0);
}
