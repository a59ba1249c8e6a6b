//! The multipart inspector on arbitrary bodies split at arbitrary points:
//! the verdict does not depend on the split, nothing panics, and a refused
//! body never comes out whole.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use moat::upload::{inspect, lookup, BodyKind, UploadRules};

const BOUNDARY: &str = "fuzzb";

fn run(rt: &tokio::runtime::Runtime, chunks: Vec<Bytes>) -> (bool, usize) {
    let rules = Arc::new(UploadRules {
        types: ["pdf", "png", "docx", "txt", "json"].iter().filter_map(|n| lookup(n)).collect(),
        max_files: 3,
        max_file_size: 1 << 20,
        max_field_bytes: 256,
        fields: Vec::new(),
        ..UploadRules::default()
    });
    let frames = futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(c))),
    );
    let kind = BodyKind::Multipart { boundary: BOUNDARY.to_string() };
    let mut body = inspect(StreamBody::new(frames), kind, rules, None);
    rt.block_on(async move {
        let mut n = 0;
        while let Some(f) = body.frame().await {
            match f {
                Ok(f) => n += f.into_data().map(|d| d.len()).unwrap_or(0),
                Err(_) => return (false, n),
            }
        }
        (true, n)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let whole = run(&rt, vec![Bytes::copy_from_slice(body)]);
    let step = (split as usize % 61) + 1;
    let pieces: Vec<Bytes> = body.chunks(step).map(Bytes::copy_from_slice).collect();
    let split_verdict = run(&rt, pieces);
    assert_eq!(whole.0, split_verdict.0, "the verdict depends on chunk boundaries");
    if !whole.0 {
        assert!(whole.1 < body.len() || body.is_empty(), "a refused body came out whole");
    }
    if whole.0 {
        assert_eq!(whole.1, body.len());
    }
});
