//! The config loader on arbitrary text: a config or a list of problems,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = moat::config::load_str("fuzz.toml", text) {
            assert!(!e.problems.is_empty());
        }
    }
});
