//! The redactor on arbitrary text and bodies: total and idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::sanitize::redact::{redact_body, redact_text};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let once = redact_text(text).into_owned();
        assert_eq!(redact_text(&once), once.as_str(), "not idempotent");
    }
    for ctype in [Some("application/json"), Some("text/html"), Some("text/plain"), None] {
        let _ = redact_body(ctype, data);
    }
});
