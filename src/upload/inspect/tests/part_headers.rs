//! Tests of the strict part-header reading: header blocks two multipart
//! parsers could read differently are refused.

use super::super::test_support::{all_rules, check, raw_body, samples, Form, BOUNDARY};
use super::super::Violation;

/// Bodies two multipart parsers could read differently are refused.
#[tokio::test]
async fn parser_differentials_are_refused() {
    let b = BOUNDARY.as_bytes();
    let exe = samples::exe();
    let part = |headers: &[u8]| raw_body(&[b"--", b, b"\r\n", headers, b"\r\n\r\n", &exe, b"\r\n--", b, b"--\r\n"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "repeated content-disposition",
            part(b"Content-Disposition: form-data; name=\"file\"; filename=\"evil.exe\"\r\nContent-Disposition: form-data; name=\"note\""),
        ),
        (
            "repeated content-type",
            part(b"Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\ncontent-type: text/plain"),
        ),
        ("filename*", part(b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''evil.exe")),
        ("upper-case FILENAME", part(b"Content-Disposition: form-data; name=\"file\"; FILENAME=\"evil.exe\"")),
        ("filename inside a quoted value", part(b"Content-Disposition: form-data; name=\"a; filename=evil.exe\"")),
        ("backslash in a quoted name", part(b"Content-Disposition: form-data; name=\"a\\\"; filename=\"x.exe\"")),
        ("repeated name", part(b"Content-Disposition: form-data; name=\"a\"; name=\"b\"")),
        ("repeated filename", part(b"Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename=\"b.exe\"")),
        ("unquoted value with space", part(b"Content-Disposition: form-data; name=f x; filename=a.txt")),
        ("non-UTF-8 filename", part(b"Content-Disposition: form-data; name=\"f\"; filename=\"\xff.pdf\"")),
        ("base64 transfer encoding", part(b"Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Transfer-Encoding: base64")),
        (
            "part smuggled after an early close",
            raw_body(&[b"--", b, b"--\r\n--", b, b"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.exe\"\r\n\r\n", &exe, b"\r\n--", b, b"--\r\n"]),
        ),
    ];
    for (what, body) in cases {
        assert_eq!(check(&body, all_rules()).await, Err(Violation::Malformed), "{what}");
    }
    // Unquoted values that every parser reads the same are fine.
    let body = Form::new().part("Content-Disposition: form-data; name=f; filename=a.pdf", &samples::pdf()).end();
    assert_eq!(check(&body, all_rules()).await, Ok(()));
}
