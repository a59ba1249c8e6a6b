//! Helpers shared by the inspector's unit tests: multipart bodies built
//! ([`Form`]) and split into chunks, the inspector run over them under
//! several chunkings ([`check`], [`run_body`]), and sample files.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};

use super::{inspect, BodyKind, BoxError, HighWater, InspectError, UploadRules, Violation, MAX_PART_HEADER_BYTES};
use crate::upload::content::DEFAULT_INSPECT_WINDOW;
use crate::upload::types::{lookup, FileType, SNIFF_WINDOW};

pub(super) const BOUNDARY: &str = "----moatBoundary7MA4YWxkTrZu0gW";

pub(super) fn ty(n: &str) -> &'static FileType {
    lookup(n).expect("known type")
}

pub(super) fn rules(types: &[&str]) -> UploadRules {
    UploadRules {
        types: types.iter().map(|n| ty(n)).collect(),
        max_files: 4,
        max_file_size: 1 << 20,
        max_field_bytes: 1024,
        fields: Vec::new(),
        inspect_window: DEFAULT_INSPECT_WINDOW,
        scan: false,
    }
}

pub(super) fn all_rules() -> UploadRules {
    UploadRules { types: crate::upload::types::all().iter().collect(), ..rules(&[]) }
}

pub(super) fn multipart() -> BodyKind {
    BodyKind::Multipart { boundary: BOUNDARY.into() }
}

/// Builds multipart bodies.
pub(super) struct Form(pub(super) Vec<u8>);

impl Form {
    pub(super) fn new() -> Self {
        Self(Vec::new())
    }

    pub(super) fn part(mut self, headers: &str, data: &[u8]) -> Self {
        self.0.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
        self.0.extend_from_slice(data);
        self.0.extend_from_slice(b"\r\n");
        self
    }

    pub(super) fn file(self, filename: &str, ctype: Option<&str>, data: &[u8]) -> Self {
        let mut h = format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"");
        if let Some(c) = ctype {
            h.push_str(&format!("\r\nContent-Type: {c}"));
        }
        self.part(&h, data)
    }

    pub(super) fn text(self, name: &str, value: &str) -> Self {
        self.part(&format!("Content-Disposition: form-data; name=\"{name}\""), value.as_bytes())
    }

    pub(super) fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.0
    }
}

pub(super) fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Splits `data` into chunks of 1..=max bytes at pseudo-random points.
pub(super) fn split(data: &[u8], seed: u64, max: usize) -> Vec<Bytes> {
    let mut s = seed | 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let n = 1 + (xorshift(&mut s) as usize % max);
        let end = (i + n).min(data.len());
        out.push(Bytes::copy_from_slice(&data[i..end]));
        i = end;
    }
    out
}

pub(super) type Frames = std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>;

pub(super) fn body_of(chunks: Vec<Bytes>) -> StreamBody<futures_util::stream::Iter<Frames>> {
    let frames: Vec<_> = chunks.into_iter().map(|c| Ok(Frame::data(c))).collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

pub(super) struct Outcome {
    pub(super) out: Vec<u8>,
    pub(super) err: Option<Violation>,
    pub(super) hw: HighWater,
    pub(super) trailers: Option<HeaderMap>,
}

pub(super) async fn run_body<B>(body: B, kind: BodyKind, rules: UploadRules) -> Outcome
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + fmt::Debug,
{
    let mut ib = inspect(body, kind, Arc::new(rules), None);
    let mut out = Vec::new();
    let mut err = None;
    let mut trailers = None;
    while let Some(frame) = ib.frame().await {
        match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => out.extend_from_slice(&d),
                Err(f) => trailers = f.into_trailers().ok(),
            },
            Err(InspectError::Violation(v, _)) => {
                err = Some(v);
                break;
            }
            Err(e) => panic!("inner error: {e}"),
        }
    }
    if err.is_none() {
        assert!(ib.is_end_stream());
    } else {
        // A refused body keeps failing.
        assert!(matches!(ib.frame().await, Some(Err(InspectError::Violation(..)))));
    }
    Outcome { out, err, hw: ib.high_water(), trailers }
}

/// Runs `body` through the inspector under several chunkings; checks the
/// identity property on success and the abort property on refusal, and
/// that every chunking reaches the same result.
pub(super) async fn check_kind(body: &[u8], kind: BodyKind, rules: UploadRules) -> Result<(), Violation> {
    let mut result = None;
    let chunkings: Vec<Vec<Bytes>> =
        vec![vec![Bytes::copy_from_slice(body)], split(body, 1, 7), split(body, 2, 97), split(body, 3, 5000)];
    for chunks in chunkings {
        let o = run_body(body_of(chunks), kind.clone(), rules.clone()).await;
        match o.err {
            None => assert_eq!(o.out, body, "identity"),
            Some(_) => {
                assert!(o.out.len() < body.len() || body.is_empty(), "abort before the end");
                assert!(body.starts_with(&o.out), "prefix of the input");
            }
        }
        assert!(o.hw.sniff <= SNIFF_WINDOW);
        assert!(o.hw.headers <= MAX_PART_HEADER_BYTES + 1);
        let r = o.err.map_or(Ok(()), Err);
        if let Some(prev) = result {
            assert_eq!(prev, r, "same verdict for every chunking");
        }
        result = Some(r);
    }
    result.unwrap_or(Ok(()))
}

pub(super) async fn check(body: &[u8], rules: UploadRules) -> Result<(), Violation> {
    check_kind(body, multipart(), rules).await
}

pub(super) mod samples {
    pub(crate) fn pdf() -> Vec<u8> {
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
          2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
            .to_vec()
    }
    pub(crate) fn png() -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
        v.extend_from_slice(b"\x00\x00\x00\x00IEND\xaeB`\x82");
        v
    }
    pub(crate) fn jpeg() -> Vec<u8> {
        let mut v = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
        v.extend_from_slice(b"\xff\xd9");
        v
    }
    pub(crate) fn gif() -> Vec<u8> {
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()
    }
    pub(crate) fn webp() -> Vec<u8> {
        let mut v = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00".to_vec();
        v.extend_from_slice(&[0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0x00]);
        v
    }
    pub(crate) fn tiff_le() -> Vec<u8> {
        let mut v = b"II*\x00\x08\x00\x00\x00".to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        v
    }
    pub(crate) fn tiff_be() -> Vec<u8> {
        let mut v = b"MM\x00*\x00\x00\x00\x08".to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        v
    }
    pub(crate) fn bmp() -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend_from_slice(&58u32.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&54u32.to_le_bytes());
        v.extend_from_slice(&40u32.to_le_bytes());
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&24u16.to_le_bytes());
        v.extend_from_slice(&[0; 24]);
        v.extend_from_slice(&[0xff, 0, 0, 0]);
        v
    }
    pub(crate) fn ole2() -> Vec<u8> {
        crate::upload::ole2::tests::compound_of(&[0; 16], &["WordDocument", "Workbook", "PowerPoint Document"], 1, 2)
    }
    pub(crate) fn txt() -> Vec<u8> {
        "Quarterly notes\r\nUmsatz: 12 € — ok\n".as_bytes().to_vec()
    }
    pub(crate) fn csv() -> Vec<u8> {
        b"id,name,amount\n1,Alice,10.5\n2,Bob,7\n".to_vec()
    }
    pub(crate) fn md() -> Vec<u8> {
        b"# Title\n\nSome *markdown* text.\n".to_vec()
    }
    pub(crate) fn html() -> Vec<u8> {
        b"<!doctype html>\n<html><body><p>hi</p></body></html>\n".to_vec()
    }
    pub(crate) fn json() -> Vec<u8> {
        b"{\"a\":1}".to_vec()
    }
    pub(crate) fn exe() -> Vec<u8> {
        let mut v = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
        v.extend_from_slice(&[0xb8, 0, 0, 0, 0, 0, 0, 0, 0x40]);
        v.resize(512, 0);
        v[0x80..0x84].copy_from_slice(b"PE\x00\x00");
        v
    }
}

pub(super) fn raw_body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(super) trait ReplaceBoundary: Sized {
    fn replace_with(self, boundary: &str) -> Vec<u8>;
    fn replace_boundary(self) -> Vec<u8> {
        self.replace_with("other-boundary")
    }
}

impl ReplaceBoundary for Vec<u8> {
    fn replace_with(self, boundary: &str) -> Vec<u8> {
        String::from_utf8_lossy(&self).replace(BOUNDARY, boundary).into_bytes()
    }
}
