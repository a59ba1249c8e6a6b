//! The redaction engine for free text ([`redact_text`]): one `RegexSet`
//! precheck (plus a byte scan for long token runs) decides which rules can
//! apply, only those run, in order, and a changed text is redacted again
//! until nothing changes.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Regex, RegexSet, RegexSetBuilder};

use super::rules::{Decide, LONG_TOKEN_MIN, LONG_TOKEN_RULE, RULES};

/// Compiles one constant pattern; every pattern is exercised by the tests.
#[allow(clippy::expect_used)] // constant patterns, compiled by every test run
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant redaction pattern")
}

static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| RULES.iter().map(|rule| compile(rule.pattern)).collect());

static LONG_TOKEN: LazyLock<Regex> = LazyLock::new(|| compile(LONG_TOKEN_RULE.pattern));

/// Upper bound of the precheck set's lazy DFA cache. The cache grows only
/// as states are needed; at the default (2 MiB) the combined DFA thrashes on
/// some inputs and falls back to a much slower engine.
const PRECHECK_DFA_LIMIT: usize = 8 << 20;

#[allow(clippy::expect_used)] // constant patterns, compiled by every test run
static PRECHECK: LazyLock<RegexSet> = LazyLock::new(|| {
    let mut builder = RegexSetBuilder::new(RULES.iter().map(|rule| rule.pattern));
    builder.dfa_size_limit(PRECHECK_DFA_LIMIT);
    builder.build().expect("constant redaction patterns")
});

/// Redact every leak in free text. Returns `Cow::Borrowed` when nothing
/// matched: a single `RegexSet` pass (plus a byte scan for long token runs)
/// decides which rules can apply, and only those run. A replacement can
/// join its neighbours into something another rule matches (an IPv4
/// address followed by `::` reads as IPv6 once the address is gone), so a
/// changed text is redacted again until nothing changes (a few passes at
/// most; each pass only shortens or keeps the text's leaks): the output is
/// a fixed point, never something the redactor would still change.
pub fn redact_text(input: &str) -> Cow<'_, str> {
    const MAX_PASSES: usize = 4;
    let Cow::Owned(mut text) = redact_once(input) else { return Cow::Borrowed(input) };
    for _ in 1..MAX_PASSES {
        match redact_once(&text) {
            Cow::Borrowed(_) => break,
            Cow::Owned(next) => text = next,
        }
    }
    Cow::Owned(text)
}

/// One pass of every rule that the precheck says can apply.
fn redact_once(input: &str) -> Cow<'_, str> {
    let hits = PRECHECK.matches(input);
    let long_run = has_long_token_run(input);
    if !hits.matched_any() && !long_run {
        return Cow::Borrowed(input);
    }
    let mut current: Option<String> = None;
    for (index, (rule, regex)) in RULES.iter().zip(COMPILED.iter()).enumerate() {
        if !hits.matched(index) {
            continue;
        }
        let text = current.as_deref().unwrap_or(input);
        if let Some(next) = apply_rule(regex, rule.decide, text) {
            current = Some(next);
        }
    }
    if long_run {
        let text = current.as_deref().unwrap_or(input);
        if let Some(next) = apply_rule(&LONG_TOKEN, LONG_TOKEN_RULE.decide, text) {
            current = Some(next);
        }
    }
    match current {
        Some(text) if text != input => Cow::Owned(text),
        _ => Cow::Borrowed(input),
    }
}

/// Whether `text` holds a run of at least [`LONG_TOKEN_MIN`] characters
/// from the base64/base64url/hex alphabet.
fn has_long_token_run(text: &str) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-') {
            run += 1;
            if run >= LONG_TOKEN_MIN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Applies one rule to `text`. Returns `None` when no match was replaced.
fn apply_rule(regex: &Regex, decide: Decide, text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let mut last = 0;
    for caps in regex.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        if let Some(replacement) = decide(text, &caps) {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[last..m.start()]);
            buf.push_str(&replacement);
            last = m.end();
        }
    }
    let mut buf = out?;
    buf.push_str(&text[last..]);
    Some(buf)
}

#[cfg(test)]
#[path = "tests/text.rs"]
mod tests;
