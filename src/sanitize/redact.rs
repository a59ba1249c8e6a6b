//! Redaction of internal details from upstream error bodies and from logs.
//!
//! # What this protects against
//!
//! Information leakage: upstream applications (a FastAPI/Python service and a
//! Go/Gin service) put stack traces, file-system paths, internal addresses,
//! connection strings and credentials into their error bodies. Passed through
//! verbatim, these tell a client how the backend is built and sometimes hand
//! over a working secret. This module replaces each such leak with the literal
//! [`REDACTED`] text and leaves everything else byte-identical.
//!
//! # Where it is used
//!
//! * Upstream 4xx bodies are returned to clients after [`redact_body`], so the
//!   body keeps its structure (JSON stays valid JSON with the same keys,
//!   FastAPI's `{"detail": ...}` keeps its shape) but loses its leaks.
//! * Upstream 5xx bodies are logged for operators after [`redact_body`].
//! * The access log writes query strings through [`redact_query`].
//!
//! # Classes covered by [`redact_text`]
//!
//! * Stack traces, each multi-line trace collapsed into a single `[redacted]`:
//!   Python tracebacks (including chained ones) and lone `File "...", line N`
//!   frames; Go panics and goroutine dumps, Gin recovery frames, lone Go
//!   frames (`main.handler(0x...)`, `file.go:42 +0x1d`, `created by ...`,
//!   `runtime/debug.Stack`); Java frames, `Caused by:`, `... N more`; Node.js
//!   frames; Rust panics and backtraces.
//! * Absolute file paths. POSIX: a path of two or more segments that starts
//!   with a well-known file-system root (`/home`, `/usr`, `/app`, `/var`,
//!   `/etc`, `/tmp`, `/opt`, `/srv`, `/root`, `/go`, ...), contains a
//!   package-directory marker (`site-packages`, `node_modules`), or ends in a
//!   source/config/key file extension (`.py`, `.go`, `.rs`, `.java`, `.js`,
//!   `.ts`, `.rb`, `.php`, `.so`, `.toml`, `.yaml`, `.env`, `.pem`, `.key`,
//!   `.conf`, ...); `~/...` paths. Windows drive paths (`C:\...`, `C:/...`)
//!   and UNC paths (`\\server\share\...`). Route-like paths such as
//!   `/api/v1/tasks/{id}` and paths inside URLs are kept.
//! * Internal addresses: private, loopback, link-local, CGNAT and unspecified
//!   IPv4 (with or without port); IPv6 loopback, unique-local (`fc00::/7`),
//!   link-local (`fe80::/10`) and IPv4-mapped/compatible forms of private
//!   IPv4, bracketed with a port or bare; cluster-internal host names
//!   (`localhost`, `*.svc`, `*.svc.cluster.local`, `*.cluster.local`,
//!   `*.internal`, `*.local`, `*.lan`, `*.localdomain`, `*.home.arpa`) with or
//!   without port; `host:port` pairs on well-known database/broker ports.
//! * URLs: a URL with `user:password@` credentials, a URL whose host is
//!   internal (including single-label hosts such as `http://minio:9000`), and
//!   `file://` URLs are replaced whole. Public URLs are kept.
//! * Secrets: `Bearer`/`Basic` credentials (the scheme word is kept), JWTs,
//!   AWS access key ids and secret keys, OpenAI/Anthropic-style `sk-` keys,
//!   Stripe, GitHub, GitLab, Slack, Google and npm tokens, PEM private-key
//!   blocks, sensitive headers on their own line (`Authorization:`,
//!   `Cookie:`, ...), `name=value` / `name: value` / `"name": "value"` pairs
//!   whose name mentions password, passwd, pwd, secret, token, api key,
//!   access key, private key, credential(s), session id or signature (the
//!   name is kept), hex strings of 32 or more characters, and base64 or
//!   base64url strings of 32 or more characters with upper case, lower case
//!   and digits.
//!
//! # Cost
//!
//! [`redact_text`] first runs one `RegexSet` over the input (plus a byte scan
//! for long token runs); when nothing can match it returns the input
//! borrowed without allocating. Only the rules the set reports are then
//! applied, in order. All patterns use the `regex` crate (linear time in the
//! input); a 64 KiB body takes on the order of a few milliseconds in a
//! release build.
//!
//! # Judgment calls
//!
//! * A 64-hex-digit string is redacted even when it is a SHA-256 digest: it
//!   cannot be told apart from a hex-encoded secret. Git commit ids (40 hex)
//!   are redacted for the same reason. UUIDs are kept (their hex runs are at
//!   most 12 characters long).
//! * API routes (`/api/v1/tasks`) are kept; a route that starts with a
//!   file-system root name (`/app/settings`) or ends in a listed extension
//!   (`/static/app.js`) outside a URL is redacted.
//! * An unquoted `name: value` pair (as opposed to `name=value` or a quoted
//!   value) is only redacted when the value contains a non-letter or is at
//!   least 12 characters long, so validation text such as
//!   `password: Field required` survives.
//!
//! # Known limits
//!
//! * Detection is pattern based: a secret with no recognizable shape and no
//!   telling name next to it (for example `hunter2` on its own) is not found.
//!   [`redact_json`] closes part of this gap by replacing every string under
//!   a sensitive key, and the echoed `input` of a FastAPI error whose `loc`
//!   names a sensitive field.
//! * Stack-trace frames are recognized at the start of a line; a frame glued
//!   into the middle of a sentence only loses its path.
//! * Relative paths (`src/app/main.py`) are kept unless they are part of a
//!   recognized frame. Paths containing spaces are redacted up to the first
//!   space (Windows directory names with spaces are handled).
//! * Text bodies that are not UTF-8 (for example Latin-1) are treated as
//!   binary and replaced whole.
//! * JSON bodies are re-serialized compactly by `serde_json` only when
//!   something changed: object key order follows `serde_json::Map` (sorted
//!   unless the `preserve_order` feature is enabled) and integers beyond
//!   64 bits become floating point.
//! * Encoded or split secrets (percent-encoded, HTML-entity encoded other
//!   than `&quot;` in Python frames, wrapped over lines) are not reassembled.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet, RegexSetBuilder};
use serde_json::Value;

/// Replacement text for anything removed.
pub const REDACTED: &str = "[redacted]";

/// The rest of a line. Stops before `</` so that a trace inside an HTML
/// `<pre>` element does not swallow the closing tags.
macro_rules! rest {
    () => {
        r"(?:[^\n<]|<[^/\n])*"
    };
}

/// One Python traceback: header, indented frames and source lines, and the
/// final `SomeError: message` line.
macro_rules! py_traceback {
    () => {
        concat!(
            r"Traceback \(most recent call last\):",
            rest!(),
            r"(?:\r?\n[ \t]+",
            rest!(),
            r")*(?:\r?\n(?:[A-Za-z_][A-Za-z0-9_.]*:",
            rest!(),
            r"|[A-Za-z_][A-Za-z0-9_.]*(?:Error|Exception|Interrupt|Exit|Iteration|Warning|Group)\r?$))?",
        )
    };
}

/// A Go function line in a goroutine dump: `pkg.(*T).f(0x...)`.
macro_rules! go_func_line {
    () => {
        r"[A-Za-z_][A-Za-z0-9_./*()\[\]{}-]*\("
    };
}

/// A Java or Node.js `at ...` frame (without leading indentation).
macro_rules! at_frame {
    () => {
        concat!(
            r"at (?:async |new )?(?:",
            // Java: at com.example.Foo.bar(Foo.java:42), Node: at Object.<anonymous>(...)
            r"[^\s(]*[./<$][^\s(]*\(",
            // Node: at fn (/app/x.js:10:5), at async Promise.all (index 0)
            r"|[^\s(]+ \((?:[^()\n]*:[0-9]+|index [0-9]+|native|<anonymous>)",
            // Node: at /app/x.js:10:5, at file:///app/x.js:1:1
            r"|[^\s(]*[/\\][^\s(]*:[0-9]+:[0-9]+",
            r")",
            rest!(),
        )
    };
}

/// A line of a Rust panic report or backtrace (without the panic header).
macro_rules! rust_line {
    () => {
        concat!(
            r"[ \t]*(?:[0-9]+: (?:0x[0-9a-fA-F]+|[A-Za-z_<][^\n]*::)",
            rest!(),
            r"|at [^\s]*:[0-9]+(?::[0-9]+)?",
            rest!(),
            r"|stack backtrace:",
            rest!(),
            r"|note: (?:run with .RUST_BACKTRACE|Some details are omitted)",
            rest!(),
            r")",
        )
    };
}

/// A Gin recovery frame: `/go/src/app/x.go:55 (0x8f1e2a)`.
macro_rules! gin_frame {
    () => {
        r"[^\s]*\.go:[0-9]+ \(0x[0-9a-fA-F]+\)"
    };
}

/// An IPv6 address candidate, optionally with an embedded IPv4 tail and a
/// zone id. Validated by parsing.
macro_rules! ipv6 {
    () => {
        r"(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}(?:%[0-9A-Za-z_.-]+)?"
    };
}

/// Decides the replacement for one match: `Some(text)` replaces the whole
/// match, `None` keeps it. Receives the whole text for context checks.
type Decide = fn(&str, &Captures<'_>) -> Option<String>;

/// A redaction rule: a pattern and the decision applied to each match.
struct Rule {
    pattern: &'static str,
    decide: Decide,
}

/// Rules in application order. Whole stack traces go first so that each
/// becomes a single `[redacted]`; URLs go before paths, addresses and
/// host names so that a URL is judged as a unit; the generic long-token rule
/// goes last.
const RULES: &[Rule] = &[
    // PEM private key blocks (or a truncated block without its END line).
    Rule {
        pattern: r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s:,-]*)",
        decide: whole,
    },
    // Python tracebacks, chained ones merged into one match.
    Rule {
        pattern: concat!(
            r"(?m)",
            py_traceback!(),
            r"(?:(?:\r?\n)+(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)\r?(?:\n\r?)+",
            py_traceback!(),
            r")*",
        ),
        decide: whole,
    },
    // Go panics and goroutine dumps.
    Rule {
        pattern: concat!(
            r"(?m)^[ \t]*(?:panic: |goroutine [0-9]+ \[[^\]\n]*\]:)",
            rest!(),
            r"(?:(?:\r?\n)+(?:[ \t]*(?:panic: |goroutine [0-9]+ \[|\[signal |created by |exit status [0-9]|runtime/debug\.Stack|\.\.\.additional frames elided|\[recovered\])",
            rest!(),
            r"|\t",
            rest!(),
            r"|",
            go_func_line!(),
            rest!(),
            r"))*",
        ),
        decide: whole,
    },
    // Gin recovery frames with their source lines.
    Rule {
        pattern: concat!(r"(?m)^", gin_frame!(), r"(?:\r?\n(?:\t", rest!(), r"|", gin_frame!(), r"))*",),
        decide: whole,
    },
    // Rust panics and backtraces.
    Rule {
        pattern: concat!(
            r"(?m)(?:thread '[^'\n]*' panicked at (?:[^\n]*:\r?\n",
            rest!(),
            r"|",
            rest!(),
            r")|^[ \t]*(?:stack backtrace:|[0-9]+: (?:[A-Za-z_<][^\n]*::|0x[0-9a-fA-F]+))",
            rest!(),
            r")(?:\r?\n",
            rust_line!(),
            r")*",
        ),
        decide: whole,
    },
    // Java and Node.js stack traces, with an optional exception header line.
    Rule {
        pattern: concat!(
            r#"(?m)^(?:[ \t]*(?:Exception in thread "[^"\n]*""#,
            rest!(),
            r"|(?:(?:[A-Za-z_$][A-Za-z0-9_$]*\.)+[A-Z][A-Za-z0-9_$]*|[A-Z][A-Za-z]*)?(?:Exception|Error|Throwable)(?::",
            rest!(),
            r")?)\r?\n)?[ \t]*(?:",
            at_frame!(),
            r"|Caused by: ",
            rest!(),
            r")(?:\r?\n[ \t]*(?:",
            at_frame!(),
            r"|Caused by: ",
            rest!(),
            r"|Suppressed: ",
            rest!(),
            r"|\.\.\. [0-9]+ (?:more|common frames omitted)",
            rest!(),
            r"))*",
        ),
        decide: whole,
    },
    // Lone Python frames, also HTML-escaped.
    Rule {
        pattern: r#"File (?:"|&quot;|&#34;|&#x22;)[^"&\n]+(?:"|&quot;|&#34;|&#x22;), line [0-9]+(?:, in (?:<[A-Za-z_]+>|&lt;[A-Za-z_]+&gt;|[A-Za-z0-9_.]+))?"#,
        decide: whole,
    },
    // Lone Go frame pieces.
    Rule {
        pattern: concat!(
            r"(?m)[^\s]*\.go:[0-9]+ \+0x[0-9a-fA-F]+",
            r"|(?-u:\b)runtime/debug\.Stack(?:\(\))?",
            r"|^[ \t]*created by [A-Za-z_][A-Za-z0-9_./*()\[\]-]*[./][A-Za-z0-9_./*()\[\]-]*",
            rest!(),
            r"|(?-u:\b)[A-Za-z_][A-Za-z0-9_./*()\[\]-]*\.[A-Za-z0-9_]+\((?:0x[0-9a-fA-F]+|\{0x|\.\.\.)[^\n)]*\)",
        ),
        decide: whole,
    },
    // URLs: judged whole (credentials, internal host, file scheme).
    Rule { pattern: r#"(?i)(?-u:\b)[a-z][a-z0-9+.-]*://[^\s'"<>\x60]*"#, decide: decide_url },
    // Sensitive headers on their own line: keep the name.
    Rule {
        pattern: r"(?im)^([ \t]*(?:cookie|set-cookie|authorization|proxy-authorization|x-api-key|x-auth-token|x-csrf-token|x-amz-security-token)[ \t]*:[ \t]*)([^\r\n]+)",
        decide: decide_header,
    },
    // Bearer / Basic credentials: keep the scheme word.
    Rule { pattern: r"(?i)(?-u:\b)(?:bearer|basic)[ \t]+([A-Za-z0-9._~+/-]+=*)", decide: decide_bearer },
    // JSON Web Tokens.
    Rule { pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", decide: whole },
    // Vendor-specific key formats.
    Rule {
        pattern: concat!(
            r"(?-u:\b)(?:",
            r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?-u:\b)",
            r"|sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}",
            r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
            r"|gh[pousr]_[A-Za-z0-9]{30,}",
            r"|github_pat_[A-Za-z0-9_]{22,}",
            r"|xox[abprse]-[A-Za-z0-9-]{10,}",
            r"|glpat-[A-Za-z0-9_-]{20,}",
            r"|AIza[0-9A-Za-z_-]{35}",
            r"|npm_[A-Za-z0-9]{36}",
            r")",
        ),
        decide: whole,
    },
    // AWS secret access keys after their name, any separator.
    Rule {
        pattern: r#"(?i)(aws_secret_access_key|aws_secret_key|secret_access_key)([\s"':=]+)([A-Za-z0-9/+=]{40})"#,
        decide: decide_aws_secret,
    },
    // name=value, name: value, "name": "value" with a sensitive name.
    Rule {
        pattern: r#"(?i)(?-u:\b)([a-z0-9_.-]*?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|session[_-]?id|signature)(?:[_-][a-z0-9]+)*)((?:\\?["'])?[ \t]*[:=][ \t]*)(\\?"[^"\\\n]*|'[^'\n]*|[^\s&,;"'<>)\]}]+)"#,
        decide: decide_key_value,
    },
    // Windows drive paths.
    Rule {
        pattern: r#"(?-u:\b)[A-Za-z]:[\\/]+(?:[^\\/:*?"<>|\r\n]+[\\/]+)*[^\\/:*?"<>|\s]*"#,
        decide: decide_windows_path,
    },
    // Windows UNC paths.
    Rule { pattern: r#"\\{2,}[A-Za-z0-9_.$-]+\\+[^\s"'<>|]*"#, decide: decide_unc_path },
    // POSIX paths, with an optional `:line:column` suffix.
    Rule { pattern: r"(~?/[A-Za-z0-9_.~@+%-]+(?:/[A-Za-z0-9_.~@+%-]*)*)((?::[0-9]+){0,2})", decide: decide_posix_path },
    // IPv6 addresses, bracketed with optional port, or bare.
    Rule { pattern: concat!(r"\[(", ipv6!(), r")\](?::[0-9]{1,5})?|(", ipv6!(), r")"), decide: decide_ipv6 },
    // IPv4 addresses with optional port.
    Rule { pattern: r"(?-u:\b)((?:[0-9]{1,3}\.){3}[0-9]{1,3})(?-u:\b)(?::[0-9]{1,5})?", decide: decide_ipv4 },
    // Cluster-internal host names with optional port.
    Rule {
        pattern: r"(?i)(?-u:\b)(localhost|(?:[a-z0-9][a-z0-9_-]*\.)+(?:svc\.cluster\.local|cluster\.local|svc|internal|localdomain|local|lan|home\.arpa))(?-u:\b)(?::[0-9]{1,5})?",
        decide: decide_internal_host,
    },
    // host:port on well-known database and broker ports.
    Rule {
        pattern: r"(?-u:\b)[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*:(?:5432|6379|3306|27017|5672|9092|11211|2379|9200|8500|5984|1433|1521|4222|9042|15672|2181|26257)(?-u:\b)",
        decide: whole,
    },
];

/// Long hex and base64/base64url tokens. Kept out of [`RULES`] and the
/// precheck set: its counted repetition multiplies the combined DFA's states,
/// so it is gated by [`has_long_token_run`] instead and applied last.
const LONG_TOKEN_RULE: Rule = Rule { pattern: r"[A-Za-z0-9+/_-]{32,}=*", decide: decide_long_token };

/// Shortest run of token characters that [`LONG_TOKEN_RULE`] considers.
const LONG_TOKEN_MIN: usize = 32;

/// Compiles one constant pattern; every pattern is exercised by the tests.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant redaction pattern") // ok: constant pattern
}

static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| RULES.iter().map(|rule| compile(rule.pattern)).collect());

static LONG_TOKEN: LazyLock<Regex> = LazyLock::new(|| compile(LONG_TOKEN_RULE.pattern));

/// Upper bound of the precheck set's lazy DFA cache. The cache grows only
/// as states are needed; at the default (2 MiB) the combined DFA thrashes on
/// some inputs and falls back to a much slower engine.
const PRECHECK_DFA_LIMIT: usize = 8 << 20;

static PRECHECK: LazyLock<RegexSet> = LazyLock::new(|| {
    let mut builder = RegexSetBuilder::new(RULES.iter().map(|rule| rule.pattern));
    builder.dfa_size_limit(PRECHECK_DFA_LIMIT);
    builder.build().expect("constant redaction patterns") // ok: constant pattern
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

// ---------------------------------------------------------------------------
// Match decisions
// ---------------------------------------------------------------------------

fn whole(_text: &str, _caps: &Captures<'_>) -> Option<String> {
    Some(REDACTED.to_owned())
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text.get(..at)?.chars().next_back()
}

fn next_char(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().next()
}

fn char_after_next(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().nth(1)
}

/// Splits trailing sentence punctuation off a match so it stays in the text.
fn split_trailing_punct(s: &str) -> (&str, &str) {
    let core = s.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '}']);
    let core =
        if core.contains('[') { core } else { core.trim_end_matches([']', '.', ',', ';', ':', '!', '?', ')', '}']) };
    (core, &s[core.len()..])
}

fn redacted_with_suffix(suffix: &str) -> String {
    let mut out = String::with_capacity(REDACTED.len() + suffix.len());
    out.push_str(REDACTED);
    out.push_str(suffix);
    out
}

fn decide_url(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let (url, suffix) = split_trailing_punct(caps.get(0)?.as_str());
    let (scheme, after) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        return Some(redacted_with_suffix(suffix));
    }
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..authority_end];
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            if userinfo.contains(':') {
                return Some(redacted_with_suffix(suffix));
            }
            host_port
        }
        None => authority,
    };
    // Object-storage URLs name a bucket, not a host.
    let bucket_scheme = BUCKET_SCHEMES.contains(&scheme.as_str());
    if host_is_internal(host_port, !bucket_scheme) {
        return Some(redacted_with_suffix(suffix));
    }
    None
}

/// URL schemes whose authority is a bucket or container name.
const BUCKET_SCHEMES: &[&str] =
    &["s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs", "r2", "oss", "cos"];

/// Whether the host of a URL authority (`host`, `host:port`, `[v6]:port`)
/// is internal: a private address, a cluster-internal name, or (when
/// `single_label_internal`) a single-label name.
fn host_is_internal(host_port: &str, single_label_internal: bool) -> bool {
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let inner = bracketed.split(']').next().unwrap_or("");
        let addr = inner.split('%').next().unwrap_or("");
        return addr.parse::<Ipv6Addr>().is_ok_and(is_private_v6);
    }
    let host = host_port.split(':').next().unwrap_or("");
    if host.is_empty() {
        return false;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return is_private_v4(v4);
    }
    is_internal_hostname(host) || (single_label_internal && !host.contains('.'))
}

const INTERNAL_SUFFIXES: &[&str] =
    &[".svc", ".cluster.local", ".internal", ".local", ".lan", ".localdomain", ".home.arpa", ".localhost"];

fn is_internal_hostname(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || INTERNAL_SUFFIXES.iter().any(|s| host.ends_with(s))
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    a == 10
        || a == 127
        || a == 0
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 169 && b == 254)
        || (a == 100 && (64..=127).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    let segments = ip.segments();
    if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfe80 {
        return true;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    if segments[..6] == [0; 6] {
        let [.., a, b, c, d] = ip.octets();
        return is_private_v4(Ipv4Addr::new(a, b, c, d));
    }
    false
}

fn decide_header(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let name = caps.get(1)?.as_str();
    let value = caps.get(2)?.as_str().trim();
    if value.is_empty() || value == "*" || value.starts_with(REDACTED) {
        return None;
    }
    Some(format!("{name}{REDACTED}"))
}

fn decide_bearer(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    let token_match = caps.get(1)?;
    let token = token_match.as_str().trim_end_matches('.');
    let suffix = &token_match.as_str()[token.len()..];
    let has_digit = token.bytes().any(|b| b.is_ascii_digit());
    let mixed_case = token.bytes().any(|b| b.is_ascii_uppercase()) && token.bytes().any(|b| b.is_ascii_lowercase());
    let has_symbol = token.bytes().any(|b| b"._~+/-=".contains(&b));
    let is_basic = m.as_str()[..5].eq_ignore_ascii_case("basic");
    let secret_like = if is_basic {
        token.len() >= 8 && (has_digit || token.ends_with('=') || (mixed_case && token.len() >= 12))
    } else {
        token.len() >= 8 && (has_digit || mixed_case || has_symbol)
    };
    if !secret_like {
        return None;
    }
    let scheme = text.get(m.start()..token_match.start())?;
    Some(format!("{scheme}{REDACTED}{suffix}"))
}

fn decide_aws_secret(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let name = caps.get(1)?.as_str();
    let separator = caps.get(2)?.as_str();
    Some(format!("{name}{separator}{REDACTED}"))
}

fn decide_key_value(text: &str, caps: &Captures<'_>) -> Option<String> {
    let name = caps.get(1)?.as_str();
    let separator = caps.get(2)?.as_str();
    let value_match = caps.get(3)?;
    let value = value_match.as_str();
    let (quote, inner) = if let Some(inner) = value.strip_prefix("\\\"") {
        ("\\\"", inner)
    } else if let Some(inner) = value.strip_prefix('"') {
        ("\"", inner)
    } else if let Some(inner) = value.strip_prefix('\'') {
        ("'", inner)
    } else {
        ("", value)
    };
    let already_redacted =
        text.get(value_match.start() + quote.len()..).is_some_and(|after| after.starts_with(REDACTED));
    if inner.is_empty() || already_redacted {
        return None;
    }
    if quote.is_empty() && !separator.contains('=') {
        // Unquoted `name: value`: keep plain words such as `Field`.
        let plain_word = inner.bytes().all(|b| b.is_ascii_alphabetic());
        if plain_word && inner.len() < 12 {
            return None;
        }
    }
    Some(format!("{name}{separator}{quote}{REDACTED}"))
}

fn decide_windows_path(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let full = caps.get(0)?.as_str();
    if full.get(2..)?.starts_with("//") {
        return None;
    }
    let (_, suffix) = split_trailing_punct(full);
    Some(redacted_with_suffix(suffix))
}

fn decide_unc_path(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    if prev_char(text, m.start()).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let (_, suffix) = split_trailing_punct(m.as_str());
    Some(redacted_with_suffix(suffix))
}

/// First path segments that mark a file-system location.
const FS_ROOTS: &[&str] = &[
    "home",
    "usr",
    "app",
    "var",
    "etc",
    "tmp",
    "opt",
    "srv",
    "root",
    "go",
    "proc",
    "sys",
    "dev",
    "mnt",
    "lib",
    "lib64",
    "bin",
    "sbin",
    "run",
    "Users",
    "private",
    "nix",
    "snap",
    "workspace",
    "builds",
    "rustc",
    "code",
];

/// Segments anywhere in a path that mark a file-system location.
const FS_MARKERS: &[&str] = &["site-packages", "dist-packages", "node_modules", ".git", ".cargo"];

/// File extensions (lower case) that mark source, config or key files.
const FS_EXTENSIONS: &[&str] = &[
    "py",
    "pyc",
    "pyi",
    "go",
    "rs",
    "java",
    "class",
    "jar",
    "war",
    "kt",
    "scala",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "rb",
    "php",
    "so",
    "dll",
    "dylib",
    "exe",
    "toml",
    "yaml",
    "yml",
    "env",
    "pem",
    "key",
    "crt",
    "p12",
    "pfx",
    "conf",
    "cfg",
    "ini",
    "properties",
    "sh",
    "sql",
    "sqlite",
    "db",
    "log",
    "lock",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "swift",
    "pid",
    "sock",
];

/// File names that mark sensitive files regardless of extension.
const FS_NAMES: &[&str] = &[
    "passwd",
    "shadow",
    "credentials",
    "id_rsa",
    "id_ed25519",
    "authorized_keys",
    "known_hosts",
    ".htpasswd",
    "Dockerfile",
];

fn decide_posix_path(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    let path = caps.get(1)?.as_str();
    let line_suffix = caps.get(2).map_or("", |g| g.as_str());
    if let Some(prev) = prev_char(text, m.start()) {
        if prev.is_ascii_alphanumeric() || "_./-~%+@\\$".contains(prev) {
            return None;
        }
    }
    let (core, trailing) = if line_suffix.is_empty() { split_trailing_punct(path) } else { (path, "") };
    let tilde = core.starts_with('~');
    let segments: Vec<&str> = core.trim_start_matches('~').split('/').filter(|s| !s.is_empty()).collect();
    let sensitive = if tilde {
        !segments.is_empty()
    } else if segments.len() >= 2 {
        let first = segments[0];
        let last = segments[segments.len() - 1];
        FS_ROOTS.contains(&first)
            || segments.iter().any(|s| FS_MARKERS.contains(s))
            || FS_NAMES.contains(&last)
            || has_sensitive_extension(last)
    } else {
        false
    };
    sensitive.then(|| redacted_with_suffix(trailing))
}

fn has_sensitive_extension(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => {
            let ext = ext.to_ascii_lowercase();
            FS_EXTENSIONS.contains(&ext.as_str())
        }
        _ => false,
    }
}

fn decide_ipv6(text: &str, caps: &Captures<'_>) -> Option<String> {
    let m = caps.get(0)?;
    let candidate = if let Some(bracketed) = caps.get(1) {
        bracketed.as_str()
    } else {
        let bare = caps.get(2)?;
        let bad_prev = prev_char(text, bare.start()).is_some_and(|c| c.is_ascii_alphanumeric() || "_:.".contains(c));
        let bad_next = next_char(text, bare.end()).is_some_and(|c| c.is_ascii_alphanumeric() || "_:".contains(c));
        if bad_prev || bad_next {
            return None;
        }
        bare.as_str()
    };
    let addr = candidate.split('%').next().unwrap_or("");
    if !addr.bytes().any(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ip: Ipv6Addr = addr.parse().ok()?;
    if !is_private_v6(ip) {
        return None;
    }
    let (_, suffix) = split_trailing_punct(m.as_str());
    let suffix = if m.as_str().ends_with(']') { "" } else { suffix };
    Some(redacted_with_suffix(suffix))
}

fn decide_ipv4(text: &str, caps: &Captures<'_>) -> Option<String> {
    let ip_match = caps.get(1)?;
    if prev_char(text, ip_match.start()) == Some('.') {
        return None;
    }
    if next_char(text, ip_match.end()) == Some('.')
        && char_after_next(text, ip_match.end()).is_some_and(|c| c.is_ascii_digit())
    {
        return None;
    }
    let ip: Ipv4Addr = ip_match.as_str().parse().ok()?;
    is_private_v4(ip).then(|| REDACTED.to_owned())
}

fn decide_internal_host(text: &str, caps: &Captures<'_>) -> Option<String> {
    let host = caps.get(1)?;
    if prev_char(text, host.start()) == Some('/') {
        return None;
    }
    let next = next_char(text, host.end());
    let continues = matches!(next, Some('.') | Some('-'))
        && char_after_next(text, host.end()).is_some_and(|c| c.is_ascii_alphanumeric());
    if continues {
        return None;
    }
    Some(REDACTED.to_owned())
}

fn decide_long_token(_text: &str, caps: &Captures<'_>) -> Option<String> {
    let token = caps.get(0)?.as_str();
    looks_like_secret_token(token).then(|| REDACTED.to_owned())
}

/// A run of base64/base64url/hex characters (at least 32 long) that looks
/// like key material rather than words: a 32+ hex run with letters and
/// digits, or a 32+ run with upper case, lower case, at least two digits and
/// a long unbroken piece.
fn looks_like_secret_token(token: &str) -> bool {
    let core = token.trim_end_matches('=');
    let pieces = || core.split(['/', '_', '-', '+']);
    let hex_piece = pieces().any(|piece| {
        let piece = piece.strip_prefix("0x").or_else(|| piece.strip_prefix("0X")).unwrap_or(piece);
        piece.len() >= 32
            && piece.bytes().all(|b| b.is_ascii_hexdigit())
            && piece.bytes().any(|b| b.is_ascii_digit())
            && piece.bytes().any(|b| b.is_ascii_alphabetic())
    });
    if hex_piece {
        return true;
    }
    if core.len() < 32 {
        return false;
    }
    let upper = core.bytes().any(|b| b.is_ascii_uppercase());
    let lower = core.bytes().any(|b| b.is_ascii_lowercase());
    let digits = core.bytes().filter(u8::is_ascii_digit).count();
    let longest = pieces().map(str::len).max().unwrap_or(0);
    upper && lower && digits >= 2 && longest >= 12
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

/// Redact every string value in a JSON document in place, recursively.
/// Object keys are kept; numbers, booleans and null are unchanged. Strings
/// under a sensitive key (`password`, `token`, `api_key`, `secret`,
/// `authorization`, ...) are replaced whole, as is the echoed `input` of a
/// FastAPI validation error whose `loc` names a sensitive field; all other
/// strings go through [`redact_text`]. Returns true if anything changed.
pub fn redact_json(value: &mut Value) -> bool {
    match value {
        Value::String(text) => redact_json_string(text),
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= redact_json(item);
            }
            changed
        }
        Value::Object(map) => {
            let input_is_sensitive = map
                .get("loc")
                .and_then(Value::as_array)
                .is_some_and(|loc| loc.iter().filter_map(Value::as_str).any(is_sensitive_json_key));
            let mut changed = false;
            for (key, child) in map.iter_mut() {
                if is_sensitive_json_key(key) || (input_is_sensitive && key == "input") {
                    changed |= replace_all_strings(child);
                } else {
                    changed |= redact_json(child);
                }
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn redact_json_string(text: &mut String) -> bool {
    match redact_text(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(redacted) => {
            *text = redacted;
            true
        }
    }
}

/// Replaces every non-empty string in `value` with [`REDACTED`].
fn replace_all_strings(value: &mut Value) -> bool {
    match value {
        Value::String(text) => {
            if text.is_empty() || text == REDACTED {
                false
            } else {
                REDACTED.clone_into(text);
                true
            }
        }
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= replace_all_strings(item);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for child in map.values_mut() {
                changed |= replace_all_strings(child);
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Splits a parameter or key name into lower-case words: on every
/// non-alphanumeric character and on lower-to-upper case changes
/// (`xApiKey` → `x`, `api`, `key`).
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Words that make a JSON key sensitive.
const JSON_KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "credential",
    "credentials",
    "authorization",
    "cookie",
    "signature",
    "jwt",
    "apikey",
];

/// Joined word sequences that make a JSON key sensitive.
const JSON_KEY_JOINED: &[&str] = &[
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "clientsecret",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "sessionid",
    "sessiontoken",
];

fn is_sensitive_json_key(key: &str) -> bool {
    let words = name_words(key);
    if words.iter().any(|w| JSON_KEY_WORDS.contains(&w.as_str())) {
        return true;
    }
    let joined = words.concat();
    JSON_KEY_JOINED.iter().any(|j| joined.contains(j))
}

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/// Content-type prefixes that are binary whatever the bytes look like.
const BINARY_TYPES: &[&str] = &[
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-protobuf",
    "application/protobuf",
    "application/grpc",
    "application/wasm",
    "application/msgpack",
];

/// Redact a whole body. If the content type mentions json (or, when absent,
/// the body parses as JSON), parse → [`redact_json`] → serialize (compact),
/// so JSON stays valid with the same keys; FastAPI's `{"detail": ...}`
/// (string, or list of objects with loc/msg/type/input/ctx) keeps its shape.
/// A JSON body in which nothing changed is returned byte-identical. Else if
/// it is UTF-8 text (including HTML), [`redact_text`]. Else (binary, or a
/// binary content type) returns [`REDACTED`] as bytes. An empty body is
/// returned unchanged. Returns `(new_body, changed)`.
pub fn redact_body(content_type: Option<&str>, body: &[u8]) -> (Vec<u8>, bool) {
    if body.is_empty() {
        return (Vec::new(), false);
    }
    let content_type = content_type.map(|ct| ct.trim().to_ascii_lowercase());
    let declared_json = content_type.as_deref().is_some_and(|ct| ct.contains("json"));
    let sniff_json = content_type.is_none() && looks_like_json(body);
    if declared_json || sniff_json {
        if let Ok(DupAware(mut value, duplicates)) = serde_json::from_slice::<DupAware>(body) {
            // `|` (not `||`): the redactor runs even when duplicates were found.
            if !(redact_json(&mut value) | duplicates) {
                return (body.to_vec(), false);
            }
            return match serde_json::to_vec(&value) {
                Ok(bytes) => (bytes, true),
                Err(_) => (REDACTED.as_bytes().to_vec(), true),
            };
        }
    }
    let declared_binary = content_type.as_deref().is_some_and(|ct| BINARY_TYPES.iter().any(|b| ct.starts_with(b)));
    if declared_binary {
        return (REDACTED.as_bytes().to_vec(), true);
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => match redact_text(text) {
            Cow::Borrowed(_) => (body.to_vec(), false),
            Cow::Owned(redacted) => (redacted.into_bytes(), true),
        },
        _ => (REDACTED.as_bytes().to_vec(), true),
    }
}

/// A JSON value parsed so that duplicate object keys are seen: every value
/// of a key that occurs more than once in an object becomes [`REDACTED`]
/// (clients disagree on which duplicate wins, so a leak can hide in the one
/// a last-wins parser would drop). The flag says whether any was found.
struct DupAware(Value, bool);

impl<'de> serde::Deserialize<'de> for DupAware {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

struct DupVisitor;

impl<'de> serde::de::Visitor<'de> for DupVisitor {
    type Value = DupAware;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<DupAware, E> {
        Ok(DupAware(Value::Bool(v), false))
    }
    fn visit_i64<E>(self, v: i64) -> Result<DupAware, E> {
        Ok(DupAware(Value::from(v), false))
    }
    fn visit_u64<E>(self, v: u64) -> Result<DupAware, E> {
        Ok(DupAware(Value::from(v), false))
    }
    fn visit_f64<E>(self, v: f64) -> Result<DupAware, E> {
        Ok(DupAware(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number), false))
    }
    fn visit_str<E>(self, v: &str) -> Result<DupAware, E> {
        Ok(DupAware(Value::String(v.to_string()), false))
    }
    fn visit_string<E>(self, v: String) -> Result<DupAware, E> {
        Ok(DupAware(Value::String(v), false))
    }
    fn visit_unit<E>(self) -> Result<DupAware, E> {
        Ok(DupAware(Value::Null, false))
    }
    fn visit_none<E>(self) -> Result<DupAware, E> {
        Ok(DupAware(Value::Null, false))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<DupAware, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<DupAware, A::Error> {
        let mut items = Vec::new();
        let mut dups = false;
        while let Some(DupAware(v, d)) = seq.next_element()? {
            dups |= d;
            items.push(v);
        }
        Ok(DupAware(Value::Array(items), dups))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DupAware, A::Error> {
        let mut out = serde_json::Map::new();
        let mut dups = false;
        while let Some(key) = map.next_key::<String>()? {
            let DupAware(v, d) = map.next_value()?;
            dups |= d;
            if out.contains_key(&key) {
                dups = true;
                out.insert(key, Value::String(REDACTED.to_string()));
            } else {
                out.insert(key, v);
            }
        }
        Ok(DupAware(Value::Object(out), dups))
    }
}

fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{') | Some(b'['))
}

// ---------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------

/// Words that make a query parameter name sensitive.
const QUERY_WORDS: &[&str] = &[
    "token",
    "key",
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "signature",
    "sig",
    "code",
    "auth",
    "authorization",
    "session",
    "credential",
    "credentials",
    "jwt",
];

/// Words that make a query parameter name sensitive when the whole name
/// (words joined) starts or ends with them: `sessionid`, `xapikey`.
const QUERY_AFFIX_WORDS: &[&str] = &[
    "token",
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "signature",
    "session",
    "credential",
    "credentials",
];

fn is_sensitive_query_name(raw_name: &str) -> bool {
    let name = percent_decode(raw_name);
    let words = name_words(&name);
    if words.iter().any(|w| QUERY_WORDS.contains(&w.as_str())) {
        return true;
    }
    let joined = words.concat();
    QUERY_AFFIX_WORDS.iter().any(|w| joined.starts_with(w) || joined.ends_with(w))
}

/// Decodes `%XX` escapes and `+` (as space); invalid escapes stay literal.
fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let spaced = raw.replace('+', " ");
    Cow::Owned(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// Redact values of sensitive query parameters: names (case-insensitive,
/// percent-decoded, also with a prefix or suffix like `x_api_key`,
/// `access_token`, `client_secret`, `X-Amz-Signature`, `sessionId`) built on
/// token, key, api_key, apikey, password, passwd, pwd, secret, signature,
/// sig, access_token, refresh_token, id_token, code, auth, session,
/// credential(s) become `name=[redacted]`. Parameters without `=` or with an
/// empty value, and all other parameters, are unchanged; order is kept.
/// Input is the raw query string without `?`. Returns `Cow::Borrowed` when
/// unchanged.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    let needs_redaction = |param: &str| match param.split_once('=') {
        Some((name, value)) => !value.is_empty() && is_sensitive_query_name(name),
        None => false,
    };
    if !query.split('&').any(needs_redaction) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for (index, param) in query.split('&').enumerate() {
        if index > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if needs_redaction(param) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(param),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, substrings that must be gone after redaction)
    const LEAKS: &[(&str, &[&str])] = &[
        // 0: full Python traceback
        (
            "Traceback (most recent call last):\n  File \"/usr/lib/python3.11/site-packages/starlette/routing.py\", line 677, in __call__\n    await route.handle(scope, receive, send)\n  File \"/app/src/tasks/service.py\", line 42, in get_task\n    row = await db.fetch_one(query)\nasyncpg.exceptions.UndefinedTableError: relation \"tasks\" does not exist",
            &["Traceback", "/usr/lib/python3.11", "service.py", "fetch_one", "UndefinedTableError", "relation"],
        ),
        // 1: chained Python traceback
        (
            "Traceback (most recent call last):\n  File \"/app/db.py\", line 9, in connect\n    sock.connect(addr)\nConnectionRefusedError: [Errno 111] Connection refused\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"/app/main.py\", line 20, in startup\n    await connect()\nRuntimeError: database unavailable",
            &["Traceback", "/app/db.py", "sock.connect", "During handling", "/app/main.py", "RuntimeError"],
        ),
        // 2: lone Python frame
        (
            "error near File \"/opt/service/handlers/upload.py\", line 88, in store_file",
            &["upload.py", "line 88", "store_file"],
        ),
        // 3: HTML-escaped Python frame
        (
            "<p>File &quot;/srv/www/app/views.py&quot;, line 12, in index</p>",
            &["views.py", "line 12"],
        ),
        // 4: Go panic with goroutine dump
        (
            "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6f2a1c]\n\ngoroutine 34 [running]:\nmain.(*TaskHandler).Get(0xc0001b4000, 0xc0003a6000)\n\t/go/src/app/handlers/tasks.go:42 +0x1dc\ngithub.com/gin-gonic/gin.(*Context).Next(...)\n\t/go/pkg/mod/github.com/gin-gonic/gin@v1.9.1/context.go:174\ncreated by net/http.(*Server).Serve in goroutine 1\n\t/usr/local/go/src/net/http/server.go:3086 +0x5cb\nexit status 2",
            &["panic", "goroutine", "TaskHandler", "tasks.go", "gin-gonic", "net/http", "exit status"],
        ),
        // 5: goroutine dump alone
        (
            "goroutine 17 [IO wait]:\nnet/http.(*conn).serve(0xc0001a2000, {0x8b4f10, 0xc00019e000})\n\t/usr/local/go/src/net/http/server.go:2009 +0x5f4",
            &["goroutine 17", "conn", "server.go", "+0x5f4"],
        ),
        // 6: lone Go frame
        (
            "failed in main.handler(0xc000010000, 0x0) while serving",
            &["main.handler", "0xc000010000"],
        ),
        // 7: Go file:line +offset
        (
            "at\t/go/src/app/main.go:42 +0x1d in worker",
            &["/go/src/app", "main.go", "+0x1d"],
        ),
        // 8: runtime/debug.Stack
        (
            "stack from runtime/debug.Stack() attached",
            &["runtime/debug"],
        ),
        // 9: created by
        (
            "created by net/http.(*Server).Serve in goroutine 1",
            &["net/http", "Serve"],
        ),
        // 10: Gin recovery frames
        (
            "runtime error: index out of range [3] with length 3\n/go/src/app/handlers.go:55 (0x8f1e2a)\n\thandler: return items[3]\n/usr/local/go/src/runtime/panic.go:114 (0x43b5d4)\n\tgoPanicIndex: panic(boundsError{x: int64(x)})",
            &["handlers.go", "return items", "panic.go", "goPanicIndex"],
        ),
        // 11: Java trace with Caused by and ... more
        (
            "java.lang.IllegalStateException: upstream failed\n\tat com.example.tasks.TaskService.load(TaskService.java:42)\n\tat com.example.tasks.TaskController.get(TaskController.java:17)\nCaused by: java.sql.SQLException: Access denied\n\tat org.postgresql.Driver.connect(Driver.java:285)\n\t... 12 more",
            &["IllegalStateException", "TaskService", "Caused by", "SQLException", "Driver.java", "12 more"],
        ),
        // 12: single Java frame
        (
            "\tat com.example.Foo.bar(Foo.java:42)",
            &["com.example", "Foo.java"],
        ),
        // 13: Caused by alone
        (
            "Caused by: java.net.ConnectException: Connection refused",
            &["Caused by", "ConnectException"],
        ),
        // 14: Node.js trace
        (
            "TypeError: Cannot read properties of undefined (reading 'id')\n    at getTask (/app/src/routes/tasks.js:10:5)\n    at async Promise.all (index 0)\n    at /app/node_modules/express/lib/router/layer.js:95:5",
            &["TypeError", "getTask", "tasks.js", "Promise.all", "node_modules"],
        ),
        // 15: Rust panic with backtrace
        (
            "thread 'main' panicked at src/main.rs:10:5:\ncalled `Option::unwrap()` on a `None` value\nstack backtrace:\n   0: std::panicking::begin_panic_handler\n             at /rustc/129f3b9964af4d4a709d1383930ade12dfe7c081/library/std/src/panicking.rs:645:5\n   1: myapp::main\n             at ./src/main.rs:10:5\nnote: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.",
            &["panicked", "src/main.rs", "Option::unwrap", "begin_panic_handler", "/rustc/", "myapp::main", "RUST_BACKTRACE"],
        ),
        // 16: Rust old-format panic line
        (
            "thread 'tokio-runtime-worker' panicked at 'index out of bounds', src/handlers.rs:42:18\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            &["tokio-runtime-worker", "handlers.rs", "RUST_BACKTRACE"],
        ),
        // 17: lone Rust backtrace frames
        (
            "  12: tokio::runtime::task::harness::poll_future\n             at /usr/local/cargo/registry/src/tokio-1.38.0/src/runtime/task/harness.rs:473:19",
            &["tokio::runtime", "harness.rs"],
        ),
        // 18: Windows path
        (
            "cannot read C:\\Users\\alice\\AppData\\Local\\app\\config.yaml: access denied",
            &["alice", "AppData", "config.yaml"],
        ),
        // 19: Windows path with spaces and forward slashes
        (
            "loaded C:/Program Files/Acme App/bin/acme.exe ok",
            &["Program Files", "Acme App", "acme.exe"],
        ),
        // 20: UNC path
        (
            "share \\\\fileserver\\finance\\reports\\q3.xlsx is offline",
            &["fileserver", "finance", "q3.xlsx"],
        ),
        // 21: /home path
        (
            "open /home/deploy/.config/app/settings.json: permission denied",
            &["/home/deploy", "settings.json"],
        ),
        // 22: /etc path
        (
            "could not parse /etc/nginx/nginx.conf",
            &["/etc/nginx", "nginx.conf"],
        ),
        // 23: /var path with line number
        (
            "error at /var/lib/app/worker.py:120",
            &["/var/lib", "worker.py", ":120"],
        ),
        // 24: unknown root, sensitive extension
        (
            "missing /data/app/secrets.env",
            &["/data/app", "secrets.env"],
        ),
        // 25: tilde path
        (
            "read ~/.aws/credentials failed",
            &[".aws", "credentials"],
        ),
        // 26: 10/8 with port
        (
            "upstream 10.0.3.7:9000 timed out",
            &["10.0.3.7", "9000"],
        ),
        // 27: 172.16/12
        (
            "peer 172.20.14.3 reset the connection",
            &["172.20.14.3"],
        ),
        // 28: 192.168/16
        (
            "gateway 192.168.1.254 unreachable",
            &["192.168.1.254"],
        ),
        // 29: loopback
        (
            "listening on 127.0.0.1:8080",
            &["127.0.0.1", "8080"],
        ),
        // 30: link-local metadata address
        (
            "GET http-metadata 169.254.169.254 failed",
            &["169.254.169.254"],
        ),
        // 31: CGNAT
        (
            "tailnet peer 100.101.7.9 offline",
            &["100.101.7.9"],
        ),
        // 32: unspecified
        (
            "bound to 0.0.0.0:8000",
            &["0.0.0.0", "8000"],
        ),
        // 33: IPv6 loopback bracketed with port
        (
            "dial tcp [::1]:5432: connect: connection refused",
            &["::1", "5432"],
        ),
        // 34: IPv6 unique-local
        (
            "route via fd12:3456:789a::1 failed",
            &["fd12:3456:789a::1"],
        ),
        // 35: IPv6 link-local with zone
        (
            "neighbor fe80::1ff:fe23:4567:890a%eth0 lost",
            &["fe80::1ff", "eth0"],
        ),
        // 36: IPv4-mapped IPv6
        (
            "client ::ffff:10.1.2.3 rejected",
            &["ffff", "10.1.2.3"],
        ),
        // 37: svc.cluster.local host:port
        (
            "connect to postgres.db.svc.cluster.local:5432 failed",
            &["postgres.db", "cluster.local", "5432"],
        ),
        // 38: *.svc host
        (
            "resolve minio.storage.svc failed",
            &["minio.storage"],
        ),
        // 39: *.internal
        (
            "host ip-10-0-1-17.ec2.internal refused",
            &["ip-10-0-1-17", "ec2.internal"],
        ),
        // 40: *.local
        (
            "printer at printer.office.local:631 is busy",
            &["printer.office", ":631"],
        ),
        // 41: *.lan
        (
            "backup on nas.lan:5000 failed",
            &["nas.lan", "5000"],
        ),
        // 42: localhost with port
        (
            "connection refused: localhost:6379",
            &["localhost", "6379"],
        ),
        // 43: internal host inside a URL
        (
            "PUT http://minio.default.svc:9000/bucket/key.bin failed",
            &["minio", "default.svc", "9000", "bucket"],
        ),
        // 44: private IP inside a URL
        (
            "GET http://10.0.3.7:8080/healthz returned 503",
            &["10.0.3.7", "healthz"],
        ),
        // 45: single-label host URL
        (
            "cannot reach http://inventory:8000/api/items.",
            &["inventory", "8000"],
        ),
        // 46: redis URL with password only
        (
            "redis error: redis://:s3cr3tpass@cache:6379/0 down",
            &["s3cr3tpass", "cache:6379"],
        ),
        // 47: postgres URL with credentials on a public-looking host
        (
            "DATABASE_URL=postgres://app:hunter2@db.prod.example.com:5432/app",
            &["hunter2", "db.prod.example.com"],
        ),
        // 48: amqp URL
        (
            "amqp://guest:guestpw@rabbitmq.example.net/vhost unreachable",
            &["guestpw", "rabbitmq"],
        ),
        // 49: https URL with credentials
        (
            "fetch https://user:pa55word@api.example.com/v1/items failed",
            &["pa55word", "user:"],
        ),
        // 50: mongodb+srv URL
        (
            "mongodb+srv://admin:Pw123xyz@cluster0.example.net/db?retryWrites=true",
            &["Pw123xyz", "cluster0"],
        ),
        // 51: s3 URL with credentials
        (
            "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/backups",
            &["wJalrXUtnFEMI", "bucket/backups"],
        ),
        // 52: file URL
        (
            "loaded file:///etc/app/config.toml",
            &["/etc/app", "config.toml"],
        ),
        // 53: Bearer token
        (
            "rejected header Bearer 9f8e7d6c5b4a.token-value_123",
            &["9f8e7d6c5b4a", "token-value_123"],
        ),
        // 54: Basic credentials
        (
            "sent Basic dXNlcjpwYXNzd29yZA== to upstream",
            &["dXNlcjpwYXNzd29yZA"],
        ),
        // 55: JWT
        (
            "invalid jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U given",
            &["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "dozjgNryP4J3jVmNHl0w5N"],
        ),
        // 56: AWS access key id
        (
            "credentials for AKIAIOSFODNN7EXAMPLE expired",
            &["AKIAIOSFODNN7EXAMPLE"],
        ),
        // 57: AWS secret access key
        (
            "aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            &["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        ),
        // 58: OpenAI project key
        (
            "openai error with sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv",
            &["sk-proj-", "Ab3dEf6hIj9kLm2nOp5qRs8tUv"],
        ),
        // 59: classic sk- key
        (
            "key sk-abc123def456ghi789jkl0 rejected",
            &["sk-abc123def456ghi789jkl0"],
        ),
        // 60: GitHub classic token
        (
            "push failed with ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            &["ghp_16C7e42F292c6912E7710c838347Ae178B4a"],
        ),
        // 61: GitHub fine-grained token
        (
            "token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv revoked",
            &["github_pat_11ABCDEFG0123456789"],
        ),
        // 62: Slack bot token
        (
            "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp denied",
            &["xoxb-123456789012"],
        ),
        // 63: GitLab token
        (
            "gitlab glpat-xY9zAbCdEfGhIjKlMnOp invalid",
            &["glpat-xY9zAbCdEfGhIjKlMnOp"],
        ),
        // 64: password=
        (
            "login failed for user=bob password=hunter2 at gate",
            &["hunter2"],
        ),
        // 65: JSON-ish password inside text
        (
            "payload {\"username\": \"bob\", \"password\": \"hunter2\"} rejected",
            &["hunter2"],
        ),
        // 66: Python dict repr api_key
        (
            "settings {'api_key': 'abcd1234efgh', 'debug': True}",
            &["abcd1234efgh"],
        ),
        // 67: env-style with prefix
        (
            "DB_PASSWORD=Sup3rS3cret! loaded",
            &["Sup3rS3cret"],
        ),
        // 68: colon form with digits
        (
            "secret: s3cr3t-value",
            &["s3cr3t-value"],
        ),
        // 69: access_key=
        (
            "minio access_key=minioadmin99 rejected",
            &["minioadmin99"],
        ),
        // 70: token in a public URL query
        (
            "callback https://api.example.com/cb?token=abc123xyz&state=1 failed",
            &["abc123xyz"],
        ),
        // 71: 40-hex token
        (
            "session id 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b not found",
            &["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"],
        ),
        // 72: sha256-length hex (redacted by choice)
        (
            "digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 mismatch",
            &["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        ),
        // 73: long base64 token
        (
            "cookie value dGhpcyBpcyBhIHNlY3JldCB2YWx1ZTEyMw9X2kQ leaked",
            &["dGhpcyBpcyBhIHNlY3JldCB2YWx1ZTEyMw9X2kQ"],
        ),
        // 74: PEM private key
        (
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq98Ux3tG1Zp+3kL\nQ2hvY29sYXRl\n-----END RSA PRIVATE KEY-----\nend",
            &["BEGIN RSA", "MIIEowIBAAKCAQEA7bq98Ux3tG1Zp", "END RSA"],
        ),
        // 75: Authorization header line
        (
            "GET /api/v1/tasks HTTP/1.1\nAuthorization: Token 0a1b2c3d\nAccept: */*",
            &["0a1b2c3d"],
        ),
        // 76: Cookie header line
        (
            "Host: api\nCookie: sid=s%3Aabc.def; theme=dark",
            &["s%3Aabc", "theme=dark"],
        ),
        // 77: well-known DB port on a bare host
        (
            "dial tcp db:5432: connect: connection refused",
            &["db:5432"],
        ),
        // 78: Exception in thread header
        (
            "Exception in thread \"main\" java.lang.NullPointerException: boom\n\tat com.example.Main.main(Main.java:5)",
            &["NullPointerException", "Main.java"],
        ),
    ];

    /// Inputs that must come back byte-identical.
    const HARMLESS: &[&str] = &[
        "File not found",
        "Invalid page number",
        "Rate limit exceeded",
        "The field 'file' is required",
        "See https://docs.example.com/guide/install for details",
        "Reported at https://github.com/owner/repo/issues/12",
        "Read https://example.com/docs/api first.",
        "Upgrade to v1.2.3",
        "Python 3.11.7",
        "built with go1.22.4",
        "Created at 2026-11-23T12:41:20Z",
        "task 123e4567-e89b-12d3-a456-426614174000 not found",
        "TASK 123E4567-E89B-12D3-A456-426614174000 NOT FOUND",
        "upstream 8.8.8.8 is unreachable",
        "Page 3 of 12",
        "{\"detail\":\"Not Found\"}",
        "field required",
        "value is not a valid integer",
        "GET /api/v1/tasks/{id} returned 404",
        "Unsupported media type: application/pdf",
        "Method Not Allowed",
        "Invalid token",
        "token: expired",
        "password: Field required",
        "Use Bearer authentication",
        "Basic authentication required",
        "Timeout after 30 seconds at 12:41:20",
        "The value must be at least 8 characters (a-z)",
        "Retry-After: 120",
        "Internal Server Error",
        "This is a local file",
        "Slovak locale sk-SK is supported",
        "Valid on 11/23/2026 and/or later",
        "std::io::Error is returned",
        "com.example.internal.Foo is deprecated",
        "Processed 1234567 rows in 2.5s",
        "Expected one of: pending, running, done",
        "<html><body><h1>404 Not Found</h1><p>The requested URL was not found on this server.</p></body></html>",
        "{\"detail\":[{\"loc\":[\"query\",\"page\"],\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"}]}",
        "Task created by alice",
        "Don't panic, retry later",
        "id 0123456789012345678901234567890123456789 is numeric",
        "slug getting-started-with-the-new-dashboard-v2 moved",
    ];

    #[test]
    fn leak_table_is_large_enough() {
        assert!(LEAKS.len() >= 45, "{} leak samples", LEAKS.len());
        assert!(HARMLESS.len() >= 25, "{} harmless samples", HARMLESS.len());
    }

    #[test]
    fn leaks_are_redacted() {
        for (index, (input, secrets)) in LEAKS.iter().enumerate() {
            let out = redact_text(input);
            assert!(matches!(out, Cow::Owned(_)), "sample {index} unchanged: {input:?}");
            assert!(out.contains(REDACTED), "sample {index} has no marker: {out:?}");
            for secret in secrets.iter() {
                assert!(!out.contains(secret), "sample {index}: {secret:?} survived in {out:?}");
            }
        }
    }

    #[test]
    fn harmless_text_is_borrowed() {
        for input in HARMLESS {
            let out = redact_text(input);
            assert!(matches!(out, Cow::Borrowed(_)), "changed harmless input {input:?} into {out:?}");
            assert_eq!(out, *input);
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        for (input, _) in LEAKS {
            let once = redact_text(input).into_owned();
            let twice = redact_text(&once);
            assert!(matches!(twice, Cow::Borrowed(_)), "second pass changed {once:?} into {twice:?}");
        }
    }

    #[test]
    fn every_rule_fires_on_some_sample() {
        assert_eq!(RULES.len(), COMPILED.len());
        assert_eq!(RULES.len(), PRECHECK.len());
        let all = RULES.iter().zip(COMPILED.iter()).chain(std::iter::once((&LONG_TOKEN_RULE, &*LONG_TOKEN)));
        for (index, (rule, regex)) in all.enumerate() {
            let fired = LEAKS.iter().any(|(input, _)| apply_rule(regex, rule.decide, input).is_some());
            assert!(fired, "rule {index} ({}) never fires", rule.pattern);
        }
    }

    #[test]
    fn traces_collapse_to_one_marker() {
        for index in [0, 1, 4, 5, 11, 14, 15] {
            let out = redact_text(LEAKS[index].0);
            assert_eq!(out, REDACTED, "sample {index}");
        }
    }

    #[test]
    fn trace_inside_text_keeps_surroundings() {
        let input = "Request failed.\nTraceback (most recent call last):\n  File \"/app/x.py\", line 1, in <module>\n    boom()\nValueError: bad\nPlease retry.";
        assert_eq!(redact_text(input), "Request failed.\n[redacted]\nPlease retry.");
    }

    #[test]
    fn names_and_punctuation_are_kept() {
        assert_eq!(redact_text("password=hunter2&user=bob"), "password=[redacted]&user=bob");
        assert_eq!(redact_text("{\"password\": \"hunter2\"}"), "{\"password\": \"[redacted]\"}");
        assert_eq!(redact_text("Authorization: Bearer abc123def456"), "Authorization: [redacted]");
        assert_eq!(redact_text("header was Bearer abc123def456."), "header was Bearer [redacted].");
        assert_eq!(redact_text("see /etc/passwd."), "see [redacted].");
        assert_eq!(redact_text("reach http://localhost:8000)."), "reach [redacted]).");
        assert_eq!(redact_text("<p>File &quot;/srv/app/views.py&quot;, line 12, in index</p>"), "<p>[redacted]</p>");
        assert_eq!(redact_text("at 10.0.0.1, then 8.8.8.8"), "at [redacted], then 8.8.8.8");
    }

    #[test]
    fn url_paths_and_routes_survive() {
        for input in [
            "https://example.com/static/app.js",
            "https://example.com/home/user/profile",
            "see /api/v1/tasks and /api/v1/users/{id}/files",
            "s3://public-bucket/reports/2026/q3.csv",
        ] {
            assert_eq!(redact_text(input), input);
        }
    }

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
        let mut body =
            serde_json::json!({"detail": "Upload to /srv/app/uploads/a.pdf failed on minio.default.svc:9000"});
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

    #[test]
    fn body_json_with_content_type() {
        let body = br#"{"detail":"db postgres://app:pw@10.0.0.2/app unreachable","code":503}"#;
        let (out, changed) = redact_body(Some("application/json; charset=utf-8"), body);
        assert!(changed);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value, serde_json::json!({"detail": "db [redacted] unreachable", "code": 503}));
        let (out, changed) = redact_body(Some("application/problem+json"), br#"{"title":"Not Found"}"#);
        assert!(!changed);
        assert_eq!(out, br#"{"title":"Not Found"}"#);
    }

    #[test]
    fn body_json_without_content_type() {
        let body = br#" [{"msg":"open /etc/app/key.pem"}]"#;
        let (out, changed) = redact_body(None, body);
        assert!(changed);
        assert_eq!(out, br#"[{"msg":"open [redacted]"}]"#);
        let (out, changed) = redact_body(None, b"plain 10.1.1.1 text");
        assert!(changed);
        assert_eq!(out, b"plain [redacted] text");
    }

    #[test]
    fn body_declared_json_but_invalid_is_text() {
        let (out, changed) = redact_body(Some("application/json"), b"{broken /home/app/x.py");
        assert!(changed);
        assert_eq!(out, b"{broken [redacted]");
    }

    #[test]
    fn body_html_with_trace() {
        let html = "<html><body><h1>404 Not Found</h1><pre>Traceback (most recent call last):\n  File \"/app/main.py\", line 12, in handler\n    raise LookupError(key)\nLookupError: 'x'</pre></body></html>";
        let (out, changed) = redact_body(Some("text/html; charset=utf-8"), html.as_bytes());
        assert!(changed);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<html><body><h1>404 Not Found</h1><pre>[redacted]</pre></body></html>"
        );
        let clean = b"<html><body>Not Found</body></html>";
        let (out, changed) = redact_body(Some("text/html"), clean);
        assert!(!changed);
        assert_eq!(out, clean);
    }

    #[test]
    fn body_binary() {
        let binary = [0x89u8, 0x50, 0x4e, 0x47, 0xff, 0x00, 0xfe];
        assert_eq!(redact_body(None, &binary), (REDACTED.as_bytes().to_vec(), true));
        assert_eq!(redact_body(Some("image/png"), b"PNGish"), (REDACTED.as_bytes().to_vec(), true));
        assert_eq!(redact_body(Some("application/octet-stream"), &binary), (REDACTED.as_bytes().to_vec(), true));
        assert_eq!(redact_body(Some("text/plain"), b""), (Vec::new(), false));
    }

    #[test]
    fn query_redaction() {
        assert_eq!(
            redact_query("a=1&token=abc&x_api_key=zz&page=2"),
            "a=1&token=[redacted]&x_api_key=[redacted]&page=2"
        );
        assert_eq!(
            redact_query("TOKEN=abc&Access_Token=t&Client-Secret=s&X-Amz-Signature=f00&sessionId=9"),
            "TOKEN=[redacted]&Access_Token=[redacted]&Client-Secret=[redacted]&X-Amz-Signature=[redacted]&sessionId=[redacted]"
        );
        assert_eq!(
            redact_query("code=xyz&state=ok&refresh_token=r&id_token=i&pwd=p&auth=a&credentials=c"),
            "code=[redacted]&state=ok&refresh_token=[redacted]&id_token=[redacted]&pwd=[redacted]&auth=[redacted]&credentials=[redacted]"
        );
        // Parameters without '=' or with an empty value stay as they are.
        let bare = "token&debug&password=&page=1";
        assert!(matches!(redact_query(bare), Cow::Borrowed(_)));
        assert_eq!(redact_query("flag&key=v"), "flag&key=[redacted]");
        // Percent-encoded names.
        assert_eq!(
            redact_query("%74oken=abc&x%5Fapi%5Fkey=zz&api%20key=k&q=a%20b"),
            "%74oken=[redacted]&x%5Fapi%5Fkey=[redacted]&api%20key=[redacted]&q=a%20b"
        );
        // Names that only contain a keyword inside a word are kept.
        for clean in ["keyword=rust&monkey=1&design=x&author=me", "", "a=1&b=2", "sort=asc&postcode=1"] {
            let out = redact_query(clean);
            assert!(matches!(out, Cow::Borrowed(_)), "{clean} -> {out}");
        }
    }

    #[test]
    fn clean_4k_text_is_borrowed() {
        let sentence = "The service returned page 3 of 12 for the requested list; see https://docs.example.com/guide/install for v1.2.3 notes. ";
        let mut text = String::new();
        while text.len() < 4096 {
            text.push_str(sentence);
        }
        let out = redact_text(&text);
        assert!(matches!(out, Cow::Borrowed(_)));
        assert!(std::ptr::eq(out.as_ptr(), text.as_ptr()));
    }

    #[test]
    fn large_mixed_input() {
        let mut text = String::new();
        let mut index = 0;
        while text.len() < 64 * 1024 {
            text.push_str(LEAKS[index % LEAKS.len()].0);
            text.push('\n');
            text.push_str(HARMLESS[index % HARMLESS.len()]);
            text.push('\n');
            index += 1;
        }
        let out = redact_text(&text);
        assert!(matches!(out, Cow::Owned(_)));
        for secret in ["hunter2", "10.0.3.7", "AKIAIOSFODNN7EXAMPLE", "/etc/nginx", "goroutine 34"] {
            assert!(!out.contains(secret), "{secret} survived");
        }
        // Adversarial shapes: long runs of near-matches.
        for unit in ["a:", "/a", "at ", "0.", "x=", "-----BEGIN RSA PRIVATE KEY-----", "a.", "\tat a.b(", "Aa1"] {
            let big = unit.repeat(64 * 1024 / unit.len());
            let _ = redact_text(&big);
        }
    }
}
