//! The origin parser and matcher: an exact rule matches only its origin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::policy::cors::{parse_origin, OriginRule};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let parsed = parse_origin(raw);
    let exact = OriginRule::parse("https://app.example.com").unwrap();
    if exact.matches(raw, parsed.as_ref()) {
        let l = raw.to_ascii_lowercase();
        assert!(l == "https://app.example.com" || l == "https://app.example.com:443", "{raw:?}");
    }
    let wild = OriginRule::parse("https://*.example.org").unwrap();
    if wild.matches(raw, parsed.as_ref()) {
        let l = raw.to_ascii_lowercase();
        assert!(l.starts_with("https://") && (l.ends_with(".example.org") || l.ends_with(".example.org:443")), "{raw:?}");
    }
    // A configured origin parses or is refused; never a panic.
    let _ = OriginRule::parse(raw);
});
