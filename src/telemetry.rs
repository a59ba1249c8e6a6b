//! Logging: one JSON object per line on stdout (or human-readable lines with
//! `MOAT_LOG_FORMAT=pretty`), filtered by `MOAT_LOG` (default `info`). Unless
//! `MOAT_LOG` names `rustls` itself or is `debug` or `trace` for every
//! target, rustls logs errors only: it reports odd but harmless client
//! hellos (an IP address as SNI, as wrk and curl send one) at warn, one
//! line per connection that any client can repeat. Lines from libraries
//! that use the `log` crate carry their own target, without the bridge's
//! `log.*` fields (source paths on the build machine).
//! Writes go through a non-blocking writer so a slow stdout never stalls a
//! request: when stdout falls behind by more than 64k lines, further lines
//! are dropped rather than waited for, and counted in
//! `moat_log_lines_dropped_total`. As a last line of defence, fields named like credentials
//! (`authorization`, `cookie`, `set_cookie`, `x_api_key`, `password`,
//! `secret`, `token`, `api_key`) are always written as `[redacted]`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

const SECRET_FIELDS: &[&str] = &[
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "x_api_key",
    "api_key",
    "password",
    "secret",
    "token",
];

/// Writes `s` as the contents of a JSON string (the escapes serde_json uses).
fn escape(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            w.write_str("\\u00")?;
            w.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            w.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
        } else {
            w.write_str(esc)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// A `fmt::Write` that escapes what passes through it into a JSON string.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s)
    }
}

/// Writes an event's fields as `,"name":value` pairs straight into the line
/// (no intermediate map or strings: one access-log line costs no allocation
/// here).
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    res: fmt::Result,
    /// A `log` record: its `log.*` fields are left out.
    bridged: bool,
}

impl Fields<'_, '_> {
    /// Starts a field; `false` when its value is written as `[redacted]`
    /// already, or left out.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.bridged && name.starts_with("log.") {
            return false;
        }
        let secret = SECRET_FIELDS.contains(&name);
        // Field names are identifiers: escaped only if one ever is not.
        let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        self.res = self.res.and_then(|()| {
            self.w.write_str(",\"")?;
            if plain {
                self.w.write_str(name)?;
            } else {
                escape(self.w, name)?;
            }
            self.w.write_str(if secret { "\":\"[redacted]\"" } else { "\":" })
        });
        !secret
    }

    fn string(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            self.res = self.res.and_then(|()| {
                self.w.write_char('"')?;
                fmt::write(&mut Escaping(self.w), format_args!("{value}"))?;
                self.w.write_char('"')
            });
        }
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            self.res = self.res.and_then(|()| write!(self.w, "{value}"));
        }
    }
}

/// `Debug` output as `Display`.
struct AsDebug<'a>(&'a dyn fmt::Debug);

impl fmt::Display for AsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.res = self.res.and_then(|()| {
                self.w.write_char('"')?;
                escape(self.w, value)?;
                self.w.write_char('"')
            });
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's number format (shortest round-trip); not finite → null.
        match serde_json::Number::from_f64(value) {
            Some(n) => self.raw(field, n),
            None => self.raw(field, "null"),
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, AsDebug(value));
    }
}

/// The JSON line format: `time`, `level`, `target`, then the event's fields
/// in order, one compact JSON object per line.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut ts = Timestamp::default();
        let ts = ts.now();
        let level = match *event.metadata().level() {
            tracing::Level::TRACE => "trace",
            tracing::Level::DEBUG => "debug",
            tracing::Level::INFO => "info",
            tracing::Level::WARN => "warn",
            tracing::Level::ERROR => "error",
        };
        writer.write_str("{\"time\":\"")?;
        escape(&mut writer, ts)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(level)?;
        // A `log` record's own target, not the bridge's `log`.
        let normalized = event.normalized_metadata();
        let target = normalized.as_ref().map_or(event.metadata().target(), |m| m.target());
        writer.write_str("\",\"target\":\"")?;
        escape(&mut writer, target)?;
        writer.write_char('"')?;
        let mut fields = Fields { w: &mut writer, res: Ok(()), bridged: normalized.is_some() };
        event.record(&mut fields);
        fields.res?;
        writer.write_str("}\n")
    }
}

/// An RFC 3339 UTC timestamp with nanoseconds, as `time` writes it
/// (`2026-12-06T21:49:24.840921714Z`, trailing zeros of the fraction
/// dropped), formatted on the stack. The date and time of day are formatted
/// once per second per thread.
struct Timestamp {
    buf: [u8; 40],
}

impl Default for Timestamp {
    fn default() -> Self {
        Self { buf: [0; 40] }
    }
}

thread_local! {
    /// The second last formatted on this thread and its text without the
    /// fraction (`2026-12-06T21:49:24`).
    static SECOND: std::cell::Cell<(i64, [u8; 32], u8)> = const { std::cell::Cell::new((i64::MIN, [0; 32], 0)) };
}

impl Timestamp {
    /// The time now.
    fn now(&mut self) -> &str {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.at(since.as_secs() as i64, since.subsec_nanos())
    }

    fn at(&mut self, secs: i64, nanos: u32) -> &str {
        let (cached, mut text, mut len) = SECOND.get();
        if cached != secs {
            len = 0;
            if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) {
                let mut rest = &mut text[..];
                if t.format_into(&mut rest, &time::format_description::well_known::Rfc3339).is_ok() {
                    // Without its `Z` (there is no fraction in a whole second).
                    len = (32 - rest.len()).saturating_sub(1) as u8;
                }
            }
            SECOND.set((secs, text, len));
        }
        let len = usize::from(len);
        if len == 0 {
            return "";
        }
        self.buf[..len].copy_from_slice(&text[..len]);
        let mut end = len;
        if nanos != 0 {
            let mut digits = [b'0'; 9];
            let mut n = nanos;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let mut keep = 9;
            while digits[keep - 1] == b'0' {
                keep -= 1;
            }
            self.buf[end] = b'.';
            self.buf[end + 1..end + 1 + keep].copy_from_slice(&digits[..keep]);
            end += 1 + keep;
        }
        self.buf[end] = b'Z';
        std::str::from_utf8(&self.buf[..end + 1]).unwrap_or_default()
    }
}

/// One access-log line (target `moat::access`, message `request`).
pub(crate) struct AccessLine<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) client_ip: std::net::IpAddr,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) route: &'a str,
    pub(crate) status: u16,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) duration_ms: f64,
    pub(crate) reject_reason: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) completed: bool,
}

/// The log writer, when lines are JSON: access lines are formatted by moat
/// straight into it (the same text `JsonLines` writes for the event).
static DIRECT: std::sync::OnceLock<tracing_appender::non_blocking::NonBlocking> = std::sync::OnceLock::new();

thread_local! {
    /// This thread's handle on [`DIRECT`] and its reused line buffer.
    static LINE: std::cell::RefCell<(Option<tracing_appender::non_blocking::NonBlocking>, String)> =
        const { std::cell::RefCell::new((None, String::new())) };
}

impl AccessLine<'_> {
    /// Whether access lines are written at all (`MOAT_LOG`).
    pub(crate) fn enabled() -> bool {
        tracing::enabled!(target: "moat::access", tracing::Level::INFO)
    }

    /// Writes the line (if [`enabled`](Self::enabled)): formatted here when
    /// the log is JSON, else as a `tracing` event.
    pub(crate) fn emit(&self) {
        if !Self::enabled() {
            return;
        }
        let Some(direct) = DIRECT.get() else {
            self.event();
            return;
        };
        LINE.with(|cell| {
            let Ok(mut cell) = cell.try_borrow_mut() else { return self.event() };
            let (writer, line) = &mut *cell;
            line.clear();
            if self.json(line).is_ok() {
                let w = writer.get_or_insert_with(|| direct.clone());
                let _ = std::io::Write::write(w, line.as_bytes());
            }
        })
    }

    /// The JSON line, as [`JsonLines`] formats the event.
    fn json(&self, w: &mut String) -> fmt::Result {
        use fmt::Write;
        let mut ts = Timestamp::default();
        w.push_str("{\"time\":\"");
        w.push_str(ts.now());
        w.push_str("\",\"level\":\"info\",\"target\":\"moat::access\",\"message\":\"request\",\"request_id\":\"");
        escape(w, self.request_id)?;
        w.push_str("\",\"client_ip\":\"");
        write!(w, "{}", self.client_ip)?;
        w.push_str("\",\"method\":\"");
        escape(w, self.method)?;
        w.push_str("\",\"path\":\"");
        escape(w, self.path)?;
        w.push_str("\",\"route\":\"");
        escape(w, self.route)?;
        w.push_str("\",\"status\":");
        w.push_str(itoa::Buffer::new().format(self.status));
        if let Some(u) = self.upstream_status {
            w.push_str(",\"upstream_status\":");
            w.push_str(itoa::Buffer::new().format(u));
        }
        w.push_str(",\"bytes_in\":");
        w.push_str(itoa::Buffer::new().format(self.bytes_in));
        w.push_str(",\"bytes_out\":");
        w.push_str(itoa::Buffer::new().format(self.bytes_out));
        w.push_str(",\"duration_ms\":");
        if self.duration_ms.is_finite() {
            w.push_str(ryu::Buffer::new().format_finite(self.duration_ms));
        } else {
            w.push_str("null");
        }
        if let Some(r) = self.reject_reason {
            w.push_str(",\"reject_reason\":\"");
            escape(w, r)?;
            w.push('"');
        }
        if let Some(u) = self.user {
            w.push_str(",\"user\":\"");
            escape(w, u)?;
            w.push('"');
        }
        w.push_str(",\"completed\":");
        w.push_str(if self.completed { "true" } else { "false" });
        w.push_str("}\n");
        Ok(())
    }

    /// The line as a `tracing` event (pretty format, or another subscriber).
    fn event(&self) {
        tracing::info!(
            target: "moat::access",
            // Strings as `&str` (no formatting machinery per field).
            request_id = self.request_id,
            client_ip = %self.client_ip,
            method = self.method,
            path = self.path,
            route = self.route,
            status = self.status,
            upstream_status = self.upstream_status,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = self.duration_ms,
            reject_reason = self.reject_reason,
            user = self.user,
            completed = self.completed,
            "request"
        );
    }
}

/// The filter when `MOAT_LOG` is not set.
const DEFAULT_FILTER: &str = "info,rustls=error";

/// The log filter for `MOAT_LOG`'s value (`None`: not set): its directives,
/// with `rustls=error` added unless they name rustls or set every target to
/// `debug` or `trace` (see the module's documentation).
pub fn filter(moat_log: Option<&str>) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let Some(given) = moat_log.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(EnvFilter::new(DEFAULT_FILTER));
    };
    let f = EnvFilter::builder().parse(given)?;
    // A filter that asks for everything at debug gets rustls's lines too.
    let verbose = given.split(',').any(|d| {
        let d = d.trim();
        d.eq_ignore_ascii_case("debug") || d.eq_ignore_ascii_case("trace")
    });
    if verbose || given.contains("rustls") {
        return Ok(f);
    }
    Ok(f.add_directive("rustls=error".parse()?))
}

/// Lines the non-blocking writer dropped because stdout fell behind.
static DROPPED: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> = std::sync::OnceLock::new();

/// Log lines dropped so far (stdout too slow), for `moat_log_lines_dropped_total`.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map(|c| c.dropped_lines() as u64).unwrap_or(0)
}

/// Installs the global subscriber. Keep the guard alive until exit: it flushes the log.
pub fn init() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = match filter(std::env::var("MOAT_LOG").ok().as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("moat: MOAT_LOG: {e}; logging at info");
            EnvFilter::new(DEFAULT_FILTER)
        }
    };
    // Lines are written to stdout in batches: as many as have queued up
    // while the last batch was written, in one write.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let _ = DROPPED.set(writer.error_counter());
    let pretty = std::env::var("MOAT_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer.clone());
    let res = if pretty { builder.try_init() } else { builder.event_format(JsonLines).try_init() };
    if res.is_ok() && !pretty {
        let _ = DIRECT.set(writer);
    }
    if res.is_err() {
        eprintln!("moat: logging was already initialised");
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the JSON line format writes for the events `f` logs.
    fn json_lines(f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(move || w.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn lines_are_json_with_escapes_numbers_and_redaction() {
        let text = json_lines(|| {
            let tricky = "a\"b\\c\nd\te\u{1}f\u{7f}é";
            tracing::info!(target: "moat::access", s = tricky, n = 42u64, i = -3i64, f = 1.0f64, g = 0.125f64,
                nan = f64::NAN, b = true, d = ?Some("x"), cookie = "session=abc", "hello {}", "world");
        });
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["target"], "moat::access");
        assert!(time::OffsetDateTime::parse(
            v["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
        assert_eq!(v["s"], "a\"b\\c\nd\te\u{1}f\u{7f}é");
        assert_eq!(v["n"], 42);
        assert_eq!(v["i"], -3);
        assert_eq!(v["f"], 1.0);
        assert_eq!(v["g"], 0.125);
        assert!(v["nan"].is_null());
        assert_eq!(v["b"], true);
        assert_eq!(v["d"], "Some(\"x\")");
        assert_eq!(v["cookie"], "[redacted]");
        assert_eq!(v["message"], "hello world");
        // The same text serde_json would write for these values.
        assert!(text.contains(r#""s":"a\"b\\c\nd\te\u0001f"#), "{text}");
        assert!(text.contains(r#""f":1.0,"#), "{text}");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(&keys[..5], ["time", "level", "target", "message", "s"]);
    }

    #[test]
    fn timestamps_as_time_formats_them() {
        for (secs, nanos) in [
            (0i64, 0u32),
            (1_796_600_000, 840_921_714),
            (1_796_600_000, 500_000_000),
            (1_796_600_001, 1),
            (951_782_400, 120),
        ] {
            let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::nanoseconds(i64::from(nanos));
            let want = t.format(&time::format_description::well_known::Rfc3339).unwrap();
            assert_eq!(Timestamp::default().at(secs, nanos), want);
        }
    }

    #[test]
    fn direct_access_lines_match_the_event_format() {
        let line = AccessLine {
            request_id: "id-1",
            client_ip: "2001:db8::1".parse().unwrap(),
            method: "GET",
            path: "/a?q=\"x\"&token=[redacted]",
            route: "api",
            status: 429,
            upstream_status: Some(200),
            bytes_in: 3,
            bytes_out: 1024,
            duration_ms: 0.123,
            reject_reason: Some("rate_limited"),
            user: Some("al\\ice"),
            completed: true,
        };
        // The line as the event format writes it, and as moat writes it,
        // from the level on (the timestamps differ).
        let both = |line: &AccessLine| {
            let via_event = json_lines(|| line.event());
            let mut direct = String::new();
            line.json(&mut direct).unwrap();
            let strip = |s: &str| s[s.find("\",\"level").unwrap()..].to_string();
            (strip(&direct), strip(&via_event), direct)
        };
        let (direct, via_event, _) = both(&line);
        assert_eq!(direct, via_event);
        let sparse = AccessLine {
            upstream_status: None,
            reject_reason: None,
            user: None,
            completed: false,
            duration_ms: 2.0,
            ..line
        };
        let (direct, via_event, whole) = both(&sparse);
        assert_eq!(direct, via_event);
        let v: serde_json::Value = serde_json::from_str(whole.trim_end()).unwrap();
        assert_eq!(v["path"], "/a?q=\"x\"&token=[redacted]");
        assert!(v.get("user").is_none());
    }

    /// What `filter` with `moat_log` writes of a warning from rustls (as
    /// the `log` crate hands it over) and of one from moat.
    fn filtered(moat_log: Option<&str>) -> String {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(filter(moat_log).unwrap())
            .with_writer(move || w.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(sub, || {
            let record = log::Record::builder()
                .target("rustls::msgs::handshake")
                .module_path_static(Some("rustls::msgs::handshake"))
                .file_static(Some("/home/build/.cargo/registry/src/rustls/src/msgs/handshake.rs"))
                .line(Some(348))
                .level(log::Level::Warn)
                .args(format_args!("Illegal SNI extension: ignoring IP address presented as hostname"))
                .build();
            tracing_log::format_trace(&record).unwrap();
            tracing::warn!(target: "moat::app", "from moat");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn rustls_warnings_stay_out_unless_asked_for() {
        for moat_log in [None, Some(""), Some("warn"), Some("info"), Some("info,moat=debug")] {
            let text = filtered(moat_log);
            assert!(!text.contains("Illegal SNI"), "{moat_log:?}: {text}");
            assert!(text.contains("from moat"), "{moat_log:?}: {text}");
        }
        for moat_log in ["debug", "trace,hyper=info"] {
            assert!(filtered(Some(moat_log)).contains("Illegal SNI"), "{moat_log}");
        }
        let text = filtered(Some("warn,rustls=warn"));
        assert_eq!(text.lines().count(), 2, "{text}");
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        // The record's own target; none of the bridge's fields (a build path).
        assert_eq!(first["target"], "rustls::msgs::handshake");
        assert_eq!(first["level"], "warn");
        assert!(first["message"].as_str().unwrap().starts_with("Illegal SNI"));
        let keys: Vec<&str> = first.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["time", "level", "target", "message"], "{text}");
        assert!(!text.contains("/home/build"), "{text}");
    }

    #[test]
    fn a_bad_filter_is_an_error() {
        let e = filter(Some("moat=notalevel")).unwrap_err();
        assert!(!e.to_string().is_empty());
        assert!(filter(Some("error")).is_ok());
    }
}
