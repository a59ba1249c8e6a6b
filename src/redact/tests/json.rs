//! Tests of the JSON walker: FastAPI error shapes, sensitive keys, nested
//! values.

use serde_json::Value;

use super::super::REDACTED;
use super::redact_json;

#[test]
fn fastapi_422_keeps_shape() {
    let mut body: Value = serde_json::from_str(
        r#"{"detail":[{"loc":["body","file"],"msg":"cannot open /srv/app/uploads/x.pdf at 10.0.3.7:9000 with sk-abc123def456ghi789jkl0","type":"value_error"}]}"#,
    )
    .unwrap();
    assert!(redact_json(&mut body));
    let detail = body["detail"].as_array().unwrap();
    assert_eq!(detail.len(), 1);
    let item = detail[0].as_object().unwrap();
    let keys: Vec<&str> = item.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3);
    for key in ["loc", "msg", "type"] {
        assert!(item.contains_key(key));
    }
    assert_eq!(item["loc"], serde_json::json!(["body", "file"]));
    assert_eq!(item["type"], "value_error");
    assert_eq!(item["msg"], "cannot open [redacted] at [redacted] with [redacted]");
    let text = serde_json::to_string(&body).unwrap();
    let _: Value = serde_json::from_str(&text).unwrap();
    for secret in ["/srv/app", "x.pdf", "10.0.3.7", "9000", "sk-abc123"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn fastapi_sensitive_input_is_redacted() {
    let mut body = serde_json::json!({"detail": [{
        "loc": ["body", "password"],
        "msg": "String should have at least 12 characters",
        "type": "string_too_short",
        "input": "hunter2",
        "ctx": {"min_length": 12}
    }]});
    assert!(redact_json(&mut body));
    assert_eq!(body["detail"][0]["input"], REDACTED);
    assert_eq!(body["detail"][0]["msg"], "String should have at least 12 characters");
    assert_eq!(body["detail"][0]["ctx"]["min_length"], 12);
}

#[test]
fn detail_string_body() {
    let mut body = serde_json::json!({"detail": "Upload to /srv/app/uploads/a.pdf failed on minio.default.svc:9000"});
    assert!(redact_json(&mut body));
    assert_eq!(body, serde_json::json!({"detail": "Upload to [redacted] failed on [redacted]"}));
    let mut clean = serde_json::json!({"detail": "Not Found"});
    assert!(!redact_json(&mut clean));
    assert_eq!(clean, serde_json::json!({"detail": "Not Found"}));
}

#[test]
fn nested_arrays_and_sensitive_keys() {
    let mut body = serde_json::json!({
        "errors": [[{"where": "/app/main.py", "count": 3, "ok": false, "none": null}], ["fine", "127.0.0.1"]],
        "config": {"api_key": "plainvalue", "db": {"password": "x", "port": 5432}, "tokens": 10},
        "headers": {"Authorization": "Basic abc"}
    });
    assert!(redact_json(&mut body));
    assert_eq!(
        body,
        serde_json::json!({
            "errors": [[{"where": REDACTED, "count": 3, "ok": false, "none": null}], ["fine", REDACTED]],
            "config": {"api_key": REDACTED, "db": {"password": REDACTED, "port": 5432}, "tokens": 10},
            "headers": {"Authorization": REDACTED}
        })
    );
    let mut numbers = serde_json::json!([1, 2.5, true, null, {"a": [3]}]);
    assert!(!redact_json(&mut numbers));
}
