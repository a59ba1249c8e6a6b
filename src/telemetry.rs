//! Logging: one JSON object per line on stdout (or human-readable lines with
//! `MOAT_LOG_FORMAT=pretty`), filtered by `MOAT_LOG` (default `info,rustls=error`:
//! rustls reports odd but harmless client hellos at warn, one line per connection).
//! Writes go through a non-blocking writer so a slow stdout never stalls a
//! request. As a last line of defence, fields named like credentials
//! (`authorization`, `cookie`, `set_cookie`, `x_api_key`, `password`,
//! `secret`, `token`, `api_key`) are always written as `[redacted]`.

use std::fmt;

use serde_json::{Map, Value};
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

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, v: Value) {
        let name = field.name();
        let v = if SECRET_FIELDS.contains(&name) { Value::String("[redacted]".into()) } else { v };
        self.0.insert(name.to_string(), v);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// The JSON line format.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut map = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let ts = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        map.insert("time".into(), Value::String(ts));
        map.insert("level".into(), Value::String(event.metadata().level().as_str().to_ascii_lowercase()));
        map.insert("target".into(), Value::String(event.metadata().target().to_string()));
        event.record(&mut Fields(&mut map));
        writeln!(writer, "{}", Value::Object(map))
    }
}

/// Installs the global subscriber. Keep the guard alive until exit: it flushes the log.
pub fn init() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_env("MOAT_LOG").unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let pretty = std::env::var("MOAT_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let res = if pretty { builder.try_init() } else { builder.event_format(JsonLines).try_init() };
    if res.is_err() {
        eprintln!("moat: logging was already initialised");
    }
    guard
}
