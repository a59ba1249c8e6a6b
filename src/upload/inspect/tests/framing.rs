//! Tests of the raw multipart framing: bodies whose boundaries, preamble,
//! epilogue or header block size are refused.

use super::super::test_support::{all_rules, check, raw_body, samples, Form, ReplaceBoundary, BOUNDARY};
use super::super::Violation;
use super::MAX_PART_HEADER_BYTES;

#[tokio::test]
async fn malformed_bodies() {
    let b = BOUNDARY.as_bytes();
    let pdf = samples::pdf();
    let good = Form::new().file("a.pdf", None, &pdf).end();
    let cd = b"Content-Disposition: form-data; name=\"f\"";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", Vec::new()),
        ("truncated before closing boundary", good[..good.len() - 10].to_vec()),
        ("no closing boundary", Form::new().file("a.pdf", None, &pdf).0),
        ("truncated in headers", good[..60].to_vec()),
        ("only a preamble", b"hello".to_vec()),
        ("garbage headers", raw_body(&[b"--", b, b"\r\nthis is not a header\r\n\r\ndata\r\n--", b, b"--\r\n"])),
        (
            "header name with space",
            raw_body(&[b"--", b, b"\r\nContent Disposition: form-data; name=\"f\"\r\n\r\nx\r\n--", b, b"--\r\n"]),
        ),
        ("no content-disposition", raw_body(&[b"--", b, b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--", b, b"--\r\n"])),
        ("no name", raw_body(&[b"--", b, b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--", b, b"--\r\n"])),
        (
            "not form-data",
            raw_body(&[b"--", b, b"\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nx\r\n--", b, b"--\r\n"]),
        ),
        ("no header at all", raw_body(&[b"--", b, b"\r\n\r\nx\r\n--", b, b"--\r\n"])),
        ("obs-fold", raw_body(&[b"--", b, b"\r\n", cd, b"\r\n X-A: b\r\n\r\nx\r\n--", b, b"--\r\n"])),
        ("bare LF", raw_body(&[b"--", b, b"\r\n", cd, b"\nX-A: b\r\n\r\nx\r\n--", b, b"--\r\n"])),
        (
            "unterminated quote",
            raw_body(&[b"--", b, b"\r\nContent-Disposition: form-data; name=\"f\r\n\r\nx\r\n--", b, b"--\r\n"]),
        ),
        (
            "boundary prefix in data",
            raw_body(&[b"--", b, b"\r\n", cd, b"\r\n\r\nx\r\n--", b, b"xyz\r\n--", b, b"--\r\n"]),
        ),
        ("preamble text", raw_body(&[b"preamble\r\n--", b, b"\r\n", cd, b"\r\n\r\nx\r\n--", b, b"--\r\n"])),
        ("transport padding", raw_body(&[b"--", b, b"  \r\n", cd, b"\r\n\r\nx\r\n--", b, b"--\r\n"])),
        ("text after closing boundary", raw_body(&[b"--", b, b"\r\n", cd, b"\r\n\r\nx\r\n--", b, b"--\r\nepilogue"])),
        ("wrong boundary", Form::new().text("a", "b").end().replace_boundary()),
        (
            "headers too large",
            raw_body(&[
                b"--",
                b,
                b"\r\n",
                cd,
                b"\r\nX-Pad: ",
                &vec![b'a'; MAX_PART_HEADER_BYTES],
                b"\r\n\r\nx\r\n--",
                b,
                b"--\r\n",
            ]),
        ),
        ("header block never ends", raw_body(&[b"--", b, b"\r\n", cd, b"\r\nX-Pad: ", &vec![b'a'; 100_000]])),
        ("too many headers", {
            let mut h = cd.to_vec();
            for i in 0..20 {
                h.extend_from_slice(format!("\r\nX-H{i}: v").as_bytes());
            }
            raw_body(&[b"--", b, b"\r\n", &h, b"\r\n\r\nx\r\n--", b, b"--\r\n"])
        }),
    ];
    for (what, body) in cases {
        assert_eq!(check(&body, all_rules()).await, Err(Violation::Malformed), "{what}");
    }
    // Leading CR/LF and a trailing CRLF (or none) are fine.
    let mut lead = b"\r\n".to_vec();
    lead.extend_from_slice(&good);
    assert_eq!(check(&lead, all_rules()).await, Ok(()));
    assert_eq!(check(&good[..good.len() - 2], all_rules()).await, Ok(()));
    // An empty form.
    assert_eq!(check(&Form::new().end(), all_rules()).await, Ok(()));
}
