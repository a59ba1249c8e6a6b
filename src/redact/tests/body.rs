//! Tests of whole-body redaction by content type: JSON, text, HTML and
//! binary bodies.

use serde_json::Value;

use super::super::REDACTED;
use super::redact_body;

#[test]
fn body_json_with_content_type() {
    let body = br#"{"detail":"db postgres://app:pw@10.0.0.2/app unreachable","code":503}"#;
    let (out, changed) = redact_body(Some("application/json; charset=utf-8"), body);
    assert!(changed);
    let value: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value, serde_json::json!({"detail": "db [redacted] unreachable", "code": 503}));
    let (out, changed) = redact_body(Some("application/problem+json"), br#"{"title":"Not Found"}"#);
    assert!(!changed);
    assert_eq!(out, br#"{"title":"Not Found"}"#);
}

#[test]
fn body_json_without_content_type() {
    let body = br#" [{"msg":"open /etc/app/key.pem"}]"#;
    let (out, changed) = redact_body(None, body);
    assert!(changed);
    assert_eq!(out, br#"[{"msg":"open [redacted]"}]"#);
    let (out, changed) = redact_body(None, b"plain 10.1.1.1 text");
    assert!(changed);
    assert_eq!(out, b"plain [redacted] text");
}

#[test]
fn body_declared_json_but_invalid_is_text() {
    let (out, changed) = redact_body(Some("application/json"), b"{broken /home/app/x.py");
    assert!(changed);
    assert_eq!(out, b"{broken [redacted]");
}

#[test]
fn body_html_with_trace() {
    let html = "<html><body><h1>404 Not Found</h1><pre>Traceback (most recent call last):\n  File \"/app/main.py\", line 12, in handler\n    raise LookupError(key)\nLookupError: 'x'</pre></body></html>";
    let (out, changed) = redact_body(Some("text/html; charset=utf-8"), html.as_bytes());
    assert!(changed);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<html><body><h1>404 Not Found</h1><pre>[redacted]</pre></body></html>"
    );
    let clean = b"<html><body>Not Found</body></html>";
    let (out, changed) = redact_body(Some("text/html"), clean);
    assert!(!changed);
    assert_eq!(out, clean);
}

#[test]
fn body_binary() {
    let binary = [0x89u8, 0x50, 0x4e, 0x47, 0xff, 0x00, 0xfe];
    assert_eq!(redact_body(None, &binary), (REDACTED.as_bytes().to_vec(), true));
    assert_eq!(redact_body(Some("image/png"), b"PNGish"), (REDACTED.as_bytes().to_vec(), true));
    assert_eq!(redact_body(Some("application/octet-stream"), &binary), (REDACTED.as_bytes().to_vec(), true));
    assert_eq!(redact_body(Some("text/plain"), b""), (Vec::new(), false));
}
