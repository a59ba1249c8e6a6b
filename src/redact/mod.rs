//! Redaction of internal details from upstream error bodies and from logs:
//! the engine. The layer that applies it to upstream responses is
//! `policy/sanitize.rs`; the access log uses [`redact_query`].
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
//!
//! # Layout
//!
//! * `rules`: the rule table, every pattern in application order with the
//!   decision applied to its matches.
//! * `decide`: those decisions (keep a match, or what replaces it).
//! * `text`: the engine behind [`redact_text`] (precheck, passes to a fixed
//!   point).
//! * `json`: the JSON walker behind [`redact_json`].
//! * `body`: [`redact_body`], dispatch of a whole body by content type.
//! * `query`: [`redact_query`], query strings for the access log.
//! * `names`: the word splitting of key and parameter names that `json`
//!   and `query` share.
//! * `tests/`: the unit tests, one file per concern.

mod body;
mod decide;
mod json;
mod names;
mod query;
mod rules;
mod text;

pub use body::redact_body;
pub use json::redact_json;
pub use query::redact_query;
pub use text::redact_text;

/// Replacement text for anything removed.
pub const REDACTED: &str = "[redacted]";
