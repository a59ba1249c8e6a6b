//! The whole-file checks (zip central directory and local headers, OLE2
//! directory, end markers, text) of every type on arbitrary bytes: a
//! verdict, never a panic, and the same verdict however the file is split.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use moat::upload::types::all;
use moat::upload::{check_file, MIN_INSPECT_WINDOW};

fuzz_target!(|data: &[u8]| {
    let Some((&split, file)) = data.split_first() else { return };
    let whole = [Bytes::copy_from_slice(file)];
    let step = (split as usize % 97) + 1;
    let pieces: Vec<Bytes> = file.chunks(step).map(Bytes::copy_from_slice).collect();
    for t in all() {
        for macros in [false, true] {
            let a = check_file(t, macros, MIN_INSPECT_WINDOW, &whole).is_ok();
            let b = check_file(t, macros, MIN_INSPECT_WINDOW, &pieces).is_ok();
            assert_eq!(a, b, "{}: the verdict depends on chunk boundaries", t.name);
        }
    }
});
