//! Tests of the route's limits: file count, file size, and the field
//! allowlist with its caps and patterns.

use super::super::test_support::{all_rules, body_of, check, multipart, run_body, samples, split, Form};
use super::super::Violation;
use super::FieldRule;

#[tokio::test]
async fn max_files_limit() {
    let pdf = samples::pdf();
    let mut r = all_rules();
    r.max_files = 2;
    let two = Form::new().file("a.pdf", None, &pdf).text("x", "y").file("b.pdf", None, &pdf).end();
    assert_eq!(check(&two, r.clone()).await, Ok(()));
    let three = Form::new().file("a.pdf", None, &pdf).file("b.pdf", None, &pdf).file("c.pdf", None, &pdf).end();
    assert_eq!(check(&three, r.clone()).await, Err(Violation::TooManyFiles));
    r.max_files = 0;
    let one = Form::new().file("a.pdf", None, &pdf).end();
    assert_eq!(check(&one, r.clone()).await, Err(Violation::TooManyFiles));
    // Fields do not count.
    let fields = Form::new().text("a", "1").text("b", "2").end();
    assert_eq!(check(&fields, r).await, Ok(()));
}

#[tokio::test]
async fn max_file_size_limit() {
    let mut r = all_rules();
    r.max_file_size = 4096;
    let mut data = samples::pdf();
    data.resize(4096, b' ');
    let body = Form::new().file("a.pdf", None, &data).end();
    assert_eq!(check(&body, r.clone()).await, Ok(()));
    data.push(b' ');
    let body = Form::new().file("a.pdf", None, &data).end();
    assert_eq!(check(&body, r.clone()).await, Err(Violation::FileTooLarge));
    // The limit is per file, not per request.
    data.pop();
    let body = Form::new().file("a.pdf", None, &data).file("b.pdf", None, &data).end();
    assert_eq!(check(&body, r).await, Ok(()));
}

#[tokio::test]
async fn field_caps_allowlist_and_patterns() {
    let mut r = all_rules();
    r.max_field_bytes = 8;
    assert_eq!(check(&Form::new().text("a", "12345678").end(), r.clone()).await, Ok(()));
    assert_eq!(check(&Form::new().text("a", "123456789").end(), r.clone()).await, Err(Violation::FieldTooLarge));
    r.max_field_bytes = 64 * 1024;
    r.fields = vec![
        FieldRule::new("output_dir", None, Some("^[A-Za-z0-9_-]{1,64}$")).expect("pattern"),
        FieldRule::new("lang", Some(4), None).expect("rule"),
        FieldRule::new("mode", None, Some("a|ab")).expect("pattern"),
    ];
    let pdf = samples::pdf();
    let ok =
        Form::new().text("output_dir", "run1").text("lang", "en").text("mode", "ab").file("a.pdf", None, &pdf).end();
    assert_eq!(check(&ok, r.clone()).await, Ok(()));
    let refused: Vec<(Vec<u8>, Violation)> = vec![
        (Form::new().text("output_dir", "../../etc").end(), Violation::FieldRejected),
        (Form::new().text("output_dir", "").end(), Violation::FieldRejected),
        (Form::new().text("output_dir", "run1\n").end(), Violation::FieldRejected),
        (Form::new().text("output_dir", &"a".repeat(65)).end(), Violation::FieldRejected),
        (Form::new().text("other", "x").end(), Violation::FieldRejected),
        (Form::new().text("lang", "en-GB").end(), Violation::FieldTooLarge),
        (Form::new().text("mode", "abc").end(), Violation::FieldRejected),
        (
            Form::new().part("Content-Disposition: form-data; name=\"output_dir\"", b"run\xff").end(),
            Violation::FieldRejected,
        ),
    ];
    for (body, want) in refused {
        assert_eq!(check(&body, r.clone()).await, Err(want));
    }
    // The allowlist is for non-file fields: a file part's name is free.
    let body = Form::new().part("Content-Disposition: form-data; name=\"whatever\"; filename=\"a.pdf\"", &pdf).end();
    assert_eq!(check(&body, r.clone()).await, Ok(()));
    // A pattern value is collected only up to the cap.
    let mut capped = r.clone();
    capped.max_field_bytes = 100;
    let body = Form::new().text("output_dir", &"a".repeat(5000)).end();
    let o = run_body(body_of(split(&body, 9, 10)), multipart(), capped).await;
    assert_eq!(o.err, Some(Violation::FieldTooLarge));
    assert!(o.hw.field <= 200, "field buffer {}", o.hw.field);
}
