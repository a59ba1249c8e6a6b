//! Tests of the status and reason label each refusal maps to.

use super::Violation;

#[test]
fn violation_status_and_reason() {
    use Violation::*;
    let table = [
        (UnsupportedMediaType, 415, "upload_type"),
        (FileType, 415, "upload_type"),
        (FileName, 400, "upload_name"),
        (TooManyFiles, 400, "upload_count"),
        (FieldTooLarge, 413, "body_too_large"),
        (FileTooLarge, 413, "body_too_large"),
        (FieldRejected, 400, "bad_request"),
        (Malformed, 400, "bad_request"),
    ];
    for (v, status, reason) in table {
        assert_eq!(v.reason().status().as_u16(), status);
        assert_eq!(v.reason().as_str(), reason);
        assert!(!v.to_string().is_empty());
    }
}
