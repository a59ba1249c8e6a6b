//! Every type's content check on arbitrary bytes: an answer, never a panic;
//! on a complete file never "need more".
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::upload::types::all;
use moat::upload::Sniff;

fuzz_target!(|data: &[u8]| {
    for t in all() {
        let _ = t.check_content(data, false);
        assert_ne!(t.check_content(data, true), Sniff::NeedMore, "{} undecided on a complete file", t.name);
    }
});
