//! Property tests (proptest) of the pieces an attacker feeds directly: path
//! normalisation, the redactor, the origin matcher and the config loader.
//! Each property holds for every generated input; failures shrink to a
//! minimal case that becomes a regression test.

use moat::policy::cors::{parse_origin, OriginRule};
use moat::policy::route::normalize;
use moat::redact::redact_text;
use proptest::prelude::*;

/// Paths built from the pieces that encoding tricks are made of.
fn path_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "//",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "%00",
        "%25",
        "%252e",
        "%252f",
        ";",
        ";x=1",
        "a",
        "B",
        "%41",
        "%c0%ae",
        "%e2%80%ae",
        "%ff",
        "~",
        "-",
        "_",
        "%20",
        "é",
        "%",
        "%2",
        "items",
        "{id}",
    ])
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(path_piece(), 0..12).prop_map(|v| format!("/{}", v.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// A normalized path has no dot segments and no empty segments; the
    /// forwarded path normalizes to itself; without path parameters, what
    /// the upstream decodes from the forwarded path is exactly what moat
    /// matched its routes against.
    #[test]
    fn normalization_is_idempotent_and_never_yields_dot_segments(p in path(), params in any::<bool>()) {
        if let Ok(n) = normalize(&p, params) {
            let segs: Vec<&str> = n.matched.split('/').collect();
            for (i, seg) in segs.iter().enumerate().skip(1) {
                prop_assert!(*seg != "." && *seg != "..", "{p:?} -> {n:?}");
                prop_assert!(!seg.is_empty() || i == segs.len() - 1, "empty segment: {p:?} -> {n:?}");
            }
            prop_assert!(!n.forward.contains("//"), "{p:?} -> {n:?}");
            prop_assert!(!n.matched.contains(['\\', '\0']), "{p:?} -> {n:?}");
            let again = normalize(&n.forward, params);
            prop_assert_eq!(again.as_ref(), Ok(&n), "not idempotent: {:?}", p);
            if !params {
                let decoded = percent_encoding::percent_decode_str(&n.forward).decode_utf8_lossy().into_owned();
                prop_assert_eq!(decoded, n.matched.clone(), "forwarded {:?} decodes to another path", n.forward);
            }
        }
    }

    /// Any string at all: normalize answers, never panics.
    #[test]
    fn normalization_never_panics(p in any::<String>(), params in any::<bool>()) {
        let _ = normalize(&p, params);
    }
}

/// Secrets and internal details of the kinds upstream errors carry.
const SECRETS: &[&str] = &[
    "10.0.3.7:8000",
    "192.168.1.20",
    "172.16.0.5:5432",
    "127.0.0.1:6390",
    "paperless-ngx.docs.svc.cluster.local",
    "/srv/app/handlers/upload.py",
    "C:\\inetpub\\wwwroot\\app.dll",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "postgres://admin:hunter2@db:5432/app",
    "password=Sup3rS3cret!",
];

fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.:()\\[\\]{}\"'=_-]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// A secret anywhere in a message, between any words, never survives
    /// the redactor.
    #[test]
    fn the_redactor_never_returns_a_sample_secret(
        before in filler(),
        after in filler(),
        secret in prop::sample::select(SECRETS.to_vec()),
        sep in prop::sample::select(vec![" ", ": ", "\n", " (", " \"", "="]),
    ) {
        let text = format!("{before}{sep}{secret} {after}");
        let out = redact_text(&text);
        prop_assert!(!out.contains(secret), "{text:?} -> {out:?}");
    }

    /// Any input: the redactor answers, never panics, and is idempotent.
    #[test]
    fn the_redactor_is_total_and_idempotent(text in any::<String>()) {
        let once = redact_text(&text).into_owned();
        let twice = redact_text(&once).into_owned();
        prop_assert_eq!(once, twice);
    }
}

/// Found by `fuzz/run.sh` (target `redact`): redacting `10.0.3.7` out of
/// `10.0.3.7::00ed` left `::00ed`, which a second pass read as an IPv6
/// address: the output was not a fixed point.
#[test]
fn a_replacement_that_forms_a_new_match_is_redacted_too() {
    let bytes: &[u8] = &[
        123, 58, 32, 99, 111, 0, 48, 115, 101, 100, 34, 101, 114, 114, 111, 114, 34, 58, 34, 100, 34, 126, 114, 114,
        111, 114, 34, 58, 49, 48, 118, 105, 100, 101, 111, 47, 58, 56, 48, 48, 48, 58, 7, 0, 0, 0, 0, 0, 0, 0, 32, 116,
        99, 112, 32, 49, 48, 46, 48, 46, 51, 46, 55, 58, 58, 48, 48, 101, 100, 34, 101, 114, 16, 114, 107, 114, 111,
        114, 111, 63, 116, 99, 32, 57, 112, 108, 96, 116, 32, 49, 48, 46, 48,
    ];
    let input = std::str::from_utf8(bytes).unwrap();
    let once = redact_text(input).into_owned();
    assert_eq!(redact_text(&once), once.as_str());
    assert!(!once.contains("10.0.3.7"), "{once}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// An exact rule matches only its own origin (scheme and host in any
    /// case, the default port written or not), whatever else is sent.
    #[test]
    fn an_exact_origin_rule_matches_only_its_origin(
        raw in prop_oneof![
            any::<String>(),
            "(https?|HTTPS|ftp)://[a-zA-Z0-9.:@\\[\\]%-]{0,30}(:[0-9]{0,6})?[/?#]?",
            Just("https://app.example.com".to_string()),
            Just("https://APP.example.com:443".to_string()),
        ]
    ) {
        let rule = OriginRule::parse("https://app.example.com").unwrap();
        if rule.matches(&raw, parse_origin(&raw).as_ref()) {
            let lower = raw.to_ascii_lowercase();
            prop_assert!(lower == "https://app.example.com" || lower == "https://app.example.com:443", "{raw:?}");
        }
    }

    /// A wildcard rule never matches its bare suffix or a look-alike domain.
    #[test]
    fn a_wildcard_rule_matches_subdomains_only(label in "[a-z0-9-]{0,12}", tail in "[a-z.]{0,12}") {
        let rule = OriginRule::parse("https://*.example.org").unwrap();
        let raw = format!("https://{label}{tail}");
        if rule.matches(&raw, parse_origin(&raw).as_ref()) {
            prop_assert!(raw.ends_with(".example.org") && raw.len() > "https://.example.org".len(), "{raw:?}");
        }
    }
}

/// Config text from the config's own vocabulary, in any combination.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "deny_unmatched",
        "allow_path_params",
        "[limits]",
        "max_body",
        "idle_timeout",
        "max_connections",
        "[upstream]",
        "url",
        "[[routes]]",
        "name",
        "path",
        "methods",
        "auth",
        "roles",
        "[cors]",
        "allowed_origins",
        "allow_credentials",
        "[rate_limit]",
        "default",
        "[auth]",
        "max_failures",
        "[tls]",
        "min_version",
        "upload",
    ]);
    let value = prop::sample::select(vec![
        "true",
        "1",
        "-1",
        "\"10s\"",
        "\"10MiB\"",
        "\"x\"",
        "[]",
        "[\"GET\"]",
        "[\"*\"]",
        "{ count = 0 }",
        "\"http://127.0.0.1:1\"",
        "\"/a/{id}\"",
        "\"none\"",
        "\"1.1\"",
        "{ types = [\"exe\"] }",
        "\"\"",
        "99999999999999999999",
        "\"1/0s\"",
    ]);
    prop::collection::vec((key, value), 0..16).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v)| if k.starts_with('[') { format!("{k}\n") } else { format!("{k} = {v}\n") })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// The loader answers every input with a config or a list of problems
    /// that each name a key or say why the text is not TOML; it never panics.
    #[test]
    fn the_config_loader_never_panics_and_names_every_problem(text in prop_oneof![config_text(), any::<String>()]) {
        if let Err(e) = moat::config::load_str("fuzz.toml", &text) {
            prop_assert!(!e.problems.is_empty());
        }
    }
}
