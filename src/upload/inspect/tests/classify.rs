//! Tests of reading the request `Content-Type` into a [`BodyKind`].

use http::HeaderValue;

use super::super::test_support::{
    all_rules, check_kind, multipart, rules, samples, ty, Form, ReplaceBoundary, BOUNDARY,
};
use super::{classify, BodyKind, Violation};

#[test]
fn classify_content_types() {
    let r = rules(&["pdf", "csv", "xls"]);
    let hv = |s: &str| HeaderValue::from_str(s).expect("header value");
    let mp = |s: &str| classify(Some(&hv(s)), &r);
    assert_eq!(mp(&format!("multipart/form-data; boundary={BOUNDARY}")), Ok(multipart()));
    assert_eq!(
        mp("Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"a b'()+_,-./:=?\""),
        Ok(BodyKind::Multipart { boundary: "a b'()+_,-./:=?".into() })
    );
    assert_eq!(mp("multipart/form-data"), Err(Violation::Malformed));
    assert_eq!(mp("multipart/form-data; charset=utf-8"), Err(Violation::Malformed));
    assert_eq!(mp("multipart/form-data; boundary="), Err(Violation::Malformed));
    assert_eq!(mp("multipart/form-data; boundary=\"\""), Err(Violation::Malformed));
    assert_eq!(mp("multipart/form-data; boundary=a; boundary=b"), Err(Violation::Malformed));
    assert_eq!(mp("multipart/form-data; boundary=a\"b"), Err(Violation::Malformed));
    assert_eq!(mp("multipart/form-data; boundary=\"a{b\""), Err(Violation::Malformed));
    assert_eq!(mp(&format!("multipart/form-data; boundary={}", "a".repeat(71))), Err(Violation::Malformed));
    assert!(mp(&format!("multipart/form-data; boundary={}", "a".repeat(70))).is_ok());
    assert_eq!(mp("application/pdf"), Ok(BodyKind::Raw(ty("pdf"))));
    assert_eq!(mp("Application/PDF; version=1.7"), Ok(BodyKind::Raw(ty("pdf"))));
    // Listed first by xls, further down by csv.
    assert_eq!(mp("application/vnd.ms-excel"), Ok(BodyKind::Raw(ty("xls"))));
    assert_eq!(mp("text/csv"), Ok(BodyKind::Raw(ty("csv"))));
    assert_eq!(mp("application/x-msdownload"), Err(Violation::UnsupportedMediaType));
    assert_eq!(mp("application/octet-stream"), Err(Violation::UnsupportedMediaType));
    assert_eq!(mp("image/png"), Err(Violation::UnsupportedMediaType));
    assert_eq!(mp("multipart/mixed; boundary=x"), Err(Violation::UnsupportedMediaType));
    assert_eq!(mp("garbage"), Err(Violation::UnsupportedMediaType));
    assert_eq!(classify(None, &r), Err(Violation::UnsupportedMediaType));
}

#[tokio::test]
async fn unusual_boundary_characters() {
    let boundary = "x y'()+_,-./:=?z";
    let ct = HeaderValue::from_str(&format!("multipart/form-data; boundary=\"{boundary}\"")).expect("header value");
    let kind = classify(Some(&ct), &all_rules()).expect("multipart");
    let body = Form::new().file("a.pdf", None, &samples::pdf()).text("n", "v").end().replace_with(boundary);
    assert_eq!(check_kind(&body, kind, all_rules()).await, Ok(()));
}
