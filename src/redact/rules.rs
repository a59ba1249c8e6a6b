//! The rule table: every pattern the redactor knows, in application order,
//! each paired with the decision (see `decide`) applied to its matches, and
//! the long-token rule that is kept out of the precheck set. The building
//! blocks shared by several patterns are macros, so that each pattern stays
//! a single constant string.

use regex::Captures;

use super::decide::{
    decide_aws_secret, decide_bearer, decide_header, decide_internal_host, decide_ipv4, decide_ipv6, decide_key_value,
    decide_long_token, decide_posix_path, decide_unc_path, decide_url, decide_windows_path, whole,
};

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
pub(super) type Decide = fn(&str, &Captures<'_>) -> Option<String>;

/// A redaction rule: a pattern and the decision applied to each match.
pub(super) struct Rule {
    pub(super) pattern: &'static str,
    pub(super) decide: Decide,
}

/// Rules in application order. Whole stack traces go first so that each
/// becomes a single `[redacted]`; URLs go before paths, addresses and
/// host names so that a URL is judged as a unit; the generic long-token rule
/// goes last.
pub(super) const RULES: &[Rule] = &[
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
/// so it is gated by `has_long_token_run` (in `text`) instead and applied
/// last.
pub(super) const LONG_TOKEN_RULE: Rule = Rule { pattern: r"[A-Za-z0-9+/_-]{32,}=*", decide: decide_long_token };

/// Shortest run of token characters that [`LONG_TOKEN_RULE`] considers.
pub(super) const LONG_TOKEN_MIN: usize = 32;
