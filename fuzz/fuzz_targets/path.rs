//! Path normalisation: idempotent, no dot or empty segments, and (without
//! path parameters) the forwarded path decodes to the matched one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat::policy::route::normalize;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else { return };
    let Ok(path) = std::str::from_utf8(rest) else { return };
    let params = flag & 1 == 1;
    let Ok(n) = normalize(path, params) else { return };
    let segs: Vec<&str> = n.matched.split('/').collect();
    for (i, seg) in segs.iter().enumerate().skip(1) {
        assert!(*seg != "." && *seg != "..", "{path:?} -> {n:?}");
        assert!(!seg.is_empty() || i == segs.len() - 1, "{path:?} -> {n:?}");
    }
    assert!(!n.forward.contains("//"));
    assert_eq!(normalize(&n.forward, params).as_ref(), Ok(&n), "not idempotent: {path:?}");
    if !params {
        let decoded = percent_decode(&n.forward);
        assert_eq!(decoded, n.matched, "{path:?}");
    }
});

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
