//! The upload corpus: real documents written by real tools
//! (`tests/fixtures/uploads/`, see `make-corpus.sh`). Every file must pass
//! the inspector on a route allowing its type, fed whole, as a raw body, as a
//! multipart file part, and in random chunk sizes, with the same verdict.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use moat::upload::{check_file, classify, inspect, lookup, types, BodyKind, InspectError, UploadRules, Violation};

const BOUNDARY: &str = "moat-corpus-boundary-4711";

fn corpus() -> Vec<(String, &'static types::FileType, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/uploads");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { continue };
        if ext == "sh" {
            continue;
        }
        let ty = lookup(ext).unwrap_or_else(|| panic!("no type for {}", path.display()));
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        out.push((name, ty, std::fs::read(&path).expect("read")));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// `data` in chunks of 1..=max bytes at pseudo-random points.
fn split(data: &[u8], seed: u64, max: usize) -> Vec<Bytes> {
    let mut s = seed | 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let end = (i + 1 + (xorshift(&mut s) as usize % max.max(1))).min(data.len());
        out.push(Bytes::copy_from_slice(&data[i..end]));
        i = end;
    }
    out
}

fn rules(ty: &'static types::FileType) -> UploadRules {
    UploadRules { types: vec![ty], max_files: 4, max_file_size: 64 << 20, ..UploadRules::default() }
}

async fn run(body: &[u8], kind: BodyKind, rules: UploadRules, chunks: Vec<Bytes>) -> Result<(), (Violation, String)> {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks.into_iter().map(|b| Ok(Frame::data(b))).collect();
    let mut ib = inspect(StreamBody::new(futures_util::stream::iter(frames)), kind, Arc::new(rules), None);
    let mut out = Vec::new();
    while let Some(frame) = ib.frame().await {
        match frame {
            Ok(f) => out.extend_from_slice(&f.into_data().expect("data")),
            Err(InspectError::Violation(v, check)) => {
                assert!(out.len() < body.len(), "a refused body came out whole");
                return Err((v, check.to_owned()));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(out, body, "bytes changed on the way");
    Ok(())
}

fn form_file(filename: &str, ctype: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: {ctype}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[test]
fn corpus_holds_every_family() {
    let names: Vec<&str> = corpus().iter().map(|c| c.1.name).collect();
    for want in [
        "pdf", "png", "jpeg", "gif", "webp", "tiff", "bmp", "docx", "xlsx", "pptx", "doc", "xls", "ppt", "odt", "ods",
        "odp", "txt", "csv", "md", "html", "json",
    ] {
        assert!(names.contains(&want), "no {want} in the corpus");
    }
}

#[test]
fn every_corpus_file_passes_the_file_check() {
    for (name, ty, data) in corpus() {
        let whole = [Bytes::from(data.clone())];
        assert_eq!(check_file(ty, false, moat::upload::DEFAULT_INSPECT_WINDOW, &whole), Ok(()), "{name}");
    }
}

#[tokio::test]
async fn every_corpus_file_passes_as_part_and_raw_body() {
    for (name, ty, data) in corpus() {
        let media = ty.media_types[0];
        for declared in [media, "application/octet-stream"] {
            let body = form_file(&name, declared, &data);
            let kind = BodyKind::Multipart { boundary: BOUNDARY.into() };
            let one = vec![Bytes::from(body.clone())];
            assert_eq!(run(&body, kind, rules(ty), one).await, Ok(()), "{name} as {declared}");
        }
        let kind = classify(Some(&HeaderValue::from_static(media)), &rules(ty)).expect("raw kind");
        let one = vec![Bytes::from(data.clone())];
        assert_eq!(run(&data, kind, rules(ty), one).await, Ok(()), "raw {name}");
    }
}

/// Each file fed in random chunk sizes reaches the same verdict as whole.
#[tokio::test]
async fn random_splits_keep_the_verdict() {
    let mut seed = 0x5eed_0fc0_ffeeu64;
    for (name, ty, data) in corpus() {
        let body = form_file(&name, ty.media_types[0], &data);
        for round in 0..12 {
            let max = [1usize, 2, 3, 7, 64, 511, 513, 4096, 65_536, 200_000][round % 10];
            let s = xorshift(&mut seed);
            let kind = BodyKind::Multipart { boundary: BOUNDARY.into() };
            assert_eq!(run(&body, kind, rules(ty), split(&body, s, max)).await, Ok(()), "{name} max {max}");
            let chunks = split(&data, s, max);
            assert_eq!(check_file(ty, false, moat::upload::DEFAULT_INSPECT_WINDOW, &chunks), Ok(()), "{name}");
        }
    }
}
