//! Tests of raw (non-multipart) upload bodies.

use super::super::test_support::{all_rules, body_of, check_kind, run_body, samples, ty};
use super::super::{BodyKind, Violation};
use crate::upload::types::SNIFF_WINDOW;

#[tokio::test]
async fn raw_bodies() {
    let pdf = samples::pdf();
    assert_eq!(check_kind(&pdf, BodyKind::Raw(ty("pdf")), all_rules()).await, Ok(()));
    assert_eq!(check_kind(&samples::png(), BodyKind::Raw(ty("pdf")), all_rules()).await, Err(Violation::FileType));
    // Nothing at all is not a PDF.
    let o = run_body(body_of(Vec::new()), BodyKind::Raw(ty("pdf")), all_rules()).await;
    assert_eq!(o.err, Some(Violation::FileType));
    // A large raw text body: decided at the window, then streamed.
    let text = "line of text\n".repeat(20_000);
    assert_eq!(check_kind(text.as_bytes(), BodyKind::Raw(ty("txt")), all_rules()).await, Ok(()));
    let mut bad = text.into_bytes();
    bad[SNIFF_WINDOW - 10] = 0;
    assert_eq!(check_kind(&bad, BodyKind::Raw(ty("txt")), all_rules()).await, Err(Violation::FileType));
}
