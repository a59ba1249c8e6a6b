//! Logging: one JSON object per line on stdout (or human-readable lines with
//! `MOAT_LOG_FORMAT=pretty`), filtered by `MOAT_LOG` (default `info,rustls=error`:
//! rustls reports odd but harmless client hellos at warn, one line per connection).
//! Writes go through a non-blocking writer so a slow stdout never stalls a
//! request: when stdout falls behind by more than 64k lines, further lines
//! are dropped rather than waited for, and counted in
//! `moat_log_lines_dropped_total`. As a last line of defence, fields named like credentials
//! (`authorization`, `cookie`, `set_cookie`, `x_api_key`, `password`,
//! `secret`, `token`, `api_key`) are always written as `[redacted]`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
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
}

impl Fields<'_, '_> {
    /// Starts a field; `false` when its value is written as `[redacted]` already.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
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
        let now = time::OffsetDateTime::now_utc();
        // An RFC 3339 timestamp fits in TS_MAX bytes; formatted on the stack.
        const TS_MAX: usize = 40;
        let mut ts = [0u8; TS_MAX];
        let mut rest = &mut ts[..];
        let written = now.format_into(&mut rest, &time::format_description::well_known::Rfc3339).is_ok();
        let used = TS_MAX - rest.len();
        let ts = if written { std::str::from_utf8(&ts[..used]).unwrap_or_default() } else { "" };
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
        writer.write_str("\",\"target\":\"")?;
        escape(&mut writer, event.metadata().target())?;
        writer.write_char('"')?;
        let mut fields = Fields { w: &mut writer, res: Ok(()) };
        event.record(&mut fields);
        fields.res?;
        writer.write_str("}\n")
    }
}

/// Lines the non-blocking writer dropped because stdout fell behind.
static DROPPED: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> = std::sync::OnceLock::new();

/// Log lines dropped so far (stdout too slow), for `moat_log_lines_dropped_total`.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map(|c| c.dropped_lines() as u64).unwrap_or(0)
}

/// Installs the global subscriber. Keep the guard alive until exit: it flushes the log.
pub fn init() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_env("MOAT_LOG").unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let _ = DROPPED.set(writer.error_counter());
    let pretty = std::env::var("MOAT_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let res = if pretty { builder.try_init() } else { builder.event_format(JsonLines).try_init() };
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

    #[test]
    fn lines_are_json_with_escapes_numbers_and_redaction() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(move || w.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(sub, || {
            let tricky = "a\"b\\c\nd\te\u{1}f\u{7f}é";
            tracing::info!(target: "moat::access", s = tricky, n = 42u64, i = -3i64, f = 1.0f64, g = 0.125f64,
                nan = f64::NAN, b = true, d = ?Some("x"), cookie = "session=abc", "hello {}", "world");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
}
