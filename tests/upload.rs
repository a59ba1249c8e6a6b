//! Upload size and type limits, enforced on the streaming body, end to end
//! against a recording upstream.

use crate::common;

use std::time::Duration;

use common::samples::{self, form, form_content_type, part};
use common::*;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALL_TYPES: &str = "[\"pdf\", \"png\", \"jpeg\", \"gif\", \"webp\", \"tiff\", \"bmp\", \"docx\", \"pptx\", \"xlsx\", \"doc\", \"ppt\", \"xls\", \"odt\", \"txt\", \"csv\", \"md\", \"html\", \"json\"]";

fn config(up: &Upstream, pki: &Pki) -> String {
    let (c, k) = pki.write_server("s", &rcgen::PKCS_ECDSA_P256_SHA256);
    format!(
        "[upstream]\nurl = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n[rate_limit]\ndefault = \"off\"\n\
         [[routes]]\nname = \"small\"\npath = \"/small\"\nmax_body = \"1KiB\"\n\
         [[routes]]\nname = \"upload\"\npath = \"/upload\"\nmethods = [\"POST\"]\nmax_body = \"400MiB\"\n\
         upload = {{ types = {ALL_TYPES}, max_files = 3, max_field_bytes = \"1KiB\", fields = [{{ name = \"output_dir\", pattern = \"[A-Za-z0-9_-]{{1,64}}\" }}, {{ name = \"lang\" }}] }}\n\
         [[routes]]\nname = \"pdf-only\"\npath = \"/pdf\"\nupload = {{ types = [\"pdf\"] }}\n",
        up.url(),
        c.display(),
        k.display()
    )
}

async fn post(c: &reqwest::Client, url: &str, ctype: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let res = c.post(url).header("content-type", ctype).body(body).send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// No body the upstream received was a complete copy of `sent`.
fn never_complete(up: &Upstream, sent: &[u8]) {
    let digest = sha256_hex(sent);
    for s in up.seen() {
        assert!(!(s.complete && s.sha256 == digest), "the upstream received the complete refused body");
    }
}

#[tokio::test]
async fn content_length_over_limit_is_413_before_the_upstream() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let (status, v) = post(&c, &m.url("/small"), "application/octet-stream", vec![b'x'; 4096]).await;
    assert_eq!(status, 413);
    assert_eq!(v["status"], 413);
    assert_eq!(up.heads.load(std::sync::atomic::Ordering::SeqCst), 0, "the upstream was contacted");

    // Expect: 100-continue: the client gets the 413 instead of a 100.
    let mut tls = tls_connect(&pki, m.https).await;
    tls.write_all(
        b"POST /small HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.unwrap().unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert_eq!(up.heads.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn chunked_over_limit_is_413_and_the_upstream_never_gets_it_whole() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    for c in [pki.builder().http1_only().build().unwrap(), pki.builder().http2_prior_knowledge().build().unwrap()] {
        let (stream, _) = noise_stream(3, 64 * 1024);
        let res = c.post(m.url("/small")).body(reqwest::Body::wrap_stream(stream)).send().await;
        if let Ok(res) = res {
            assert_eq!(res.status(), 413);
        }
        for s in up.seen() {
            assert!(!s.complete, "upstream got a complete body of {} bytes", s.body_len);
            assert!(s.body_len <= 1024 + 64 * 1024);
        }
    }
}

#[tokio::test]
async fn large_multipart_pdf_streams_byte_identical() {
    init_crypto();
    const SIZE: u64 = 300 << 20;
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    // multipart head + a PDF of SIZE bytes + tail, generated as a stream; the sha256 is computed on the way.
    let (head, tail, body) = samples::streamed_pdf_form("big report.pdf", 11, SIZE);
    let mut h = Sha256::new();
    h.update(head.as_bytes());
    let (noise2, _) = noise_stream(11, SIZE);
    let mut n2 = Box::pin(noise2);
    while let Some(c) = n2.next().await {
        h.update(c.unwrap());
    }
    h.update(tail.as_bytes());
    let digest = hex::encode(h.finalize());
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
    assert_eq!(seen.sha256, digest, "the upstream did not receive the exact bytes sent");
    eprintln!("300 MiB multipart upload: moat RSS before {before} KiB, peak {} KiB", m.peak_rss_kib());
}

#[tokio::test]
async fn every_type_accepted_and_refused_as_another() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let all = samples::all();
    for (name, ext, mt, data) in &all {
        let body = form(&[part("file", Some(&format!("sample.{ext}")), Some(mt), data)]);
        let (status, v) = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
        assert_eq!(status, 200, "{name}: {v}");
        let seen = up.seen().pop().unwrap();
        assert_eq!(seen.sha256, sha256_hex(&body), "{name}: bytes changed on the way");
    }
    // Each sample's bytes declared and named as an unrelated type are refused.
    let pick = |n: &str| all.iter().find(|t| t.0 == n).unwrap().clone();
    for (bytes_of, claimed) in [
        ("png", "pdf"),
        ("pdf", "png"),
        ("jpeg", "gif"),
        ("docx", "odt"),
        ("odt", "docx"),
        ("pdf", "json"),
        ("zip", "docx"),
        ("jar", "docx"),
    ] {
        let data = match bytes_of {
            "zip" => samples::plain_zip(),
            "jar" => samples::jar(),
            n => pick(n).3,
        };
        let (_, ext, mt, _) = pick(claimed);
        let body = form(&[part("file", Some(&format!("x.{ext}")), Some(mt), &data)]);
        let (status, v) = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
        assert_eq!(status, 415, "{bytes_of} as {claimed}");
        assert_eq!(v["status"], 415);
        never_complete(&up, &body);
    }
}

#[tokio::test]
async fn executable_disguised_as_pdf_is_refused_and_never_delivered() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let mut exe = samples::exe();
    exe.resize(256 * 1024, 0x90);
    let body = form(&[part("file", Some("report.pdf"), Some("application/pdf"), &exe)]);
    let res =
        c.post(m.url("/upload")).header("content-type", form_content_type()).body(body.clone()).send().await.unwrap();
    assert_eq!(res.status(), 415);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    never_complete(&up, &body);
    assert_eq!(m.access_line(&id).await["reject_reason"], "upload_type");
}

#[tokio::test]
async fn filename_count_field_and_framing_rules() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let pdf = samples::all()[0].3.clone();
    let long = format!("{}.pdf", "a".repeat(300));
    for bad in
        ["../../etc/passwd.pdf", "dir/x.pdf", "dir\\\\x.pdf", "invoice.pdf.exe", "a\u{1}b.pdf", long.as_str(), ".."]
    {
        let body = form(&[part("file", Some(bad), Some("application/pdf"), &pdf)]);
        let (status, v) = post(&c, &m.url("/upload"), &form_content_type(), body.clone()).await;
        assert_eq!(status, 400, "{bad:?}: {v}");
        never_complete(&up, &body);
    }
    // More than max_files (3).
    let four: Vec<Vec<u8>> =
        (0..4).map(|i| part("file", Some(&format!("f{i}.pdf")), Some("application/pdf"), &pdf)).collect();
    let (status, _) = post(&c, &m.url("/upload"), &form_content_type(), form(&four)).await;
    assert_eq!(status, 400);
    let three = form(&four[..3]);
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), three).await.0, 200);
    // A non-file field over max_field_bytes.
    let big =
        form(&[part("lang", None, None, &[b'x'; 4096]), part("file", Some("a.pdf"), Some("application/pdf"), &pdf)]);
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), big).await.0, 413);
    // Field rules: output_dir must be a plain name; unknown fields are refused.
    let traversal = form(&[
        part("output_dir", None, None, b"../../etc"),
        part("file", Some("a.pdf"), Some("application/pdf"), &pdf),
    ]);
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), traversal.clone()).await.0, 400);
    never_complete(&up, &traversal);
    let ok =
        form(&[part("output_dir", None, None, b"run_1"), part("file", Some("a.pdf"), Some("application/pdf"), &pdf)]);
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), ok).await.0, 200);
    let unknown = form(&[
        part("server_url", None, None, b"http://evil"),
        part("file", Some("a.pdf"), Some("application/pdf"), &pdf),
    ]);
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), unknown).await.0, 400);
    // Malformed: no boundary parameter, truncated body, broken part headers.
    let good = form(&[part("file", Some("a.pdf"), Some("application/pdf"), &pdf)]);
    assert_eq!(post(&c, &m.url("/upload"), "multipart/form-data", good.clone()).await.0, 400);
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), good[..good.len() - 20].to_vec()).await.0, 400);
    let broken = format!(
        "--{}\r\nContent-Disposition form-data name=file\r\n\r\nx\r\n--{}--\r\n",
        samples::BOUNDARY,
        samples::BOUNDARY
    );
    assert_eq!(post(&c, &m.url("/upload"), &form_content_type(), broken.into_bytes()).await.0, 400);
}

#[tokio::test]
async fn raw_bodies_by_content_type() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&config(&up, &pki));
    let c = pki.client();
    let pdf = samples::all()[0].3.clone();
    assert_eq!(post(&c, &m.url("/pdf"), "application/pdf", pdf.clone()).await.0, 200);
    assert_eq!(up.seen().pop().unwrap().sha256, sha256_hex(&pdf));
    let (status, v) = post(&c, &m.url("/pdf"), "application/x-msdownload", samples::exe()).await;
    assert_eq!(status, 415);
    assert_eq!(v["title"], "Unsupported Media Type");
    // The declared type is right but the bytes are not a PDF.
    assert_eq!(post(&c, &m.url("/pdf"), "application/pdf", samples::exe()).await.0, 415);
    assert_eq!(post(&c, &m.url("/pdf"), "text/plain", b"hello".to_vec()).await.0, 415);
}
