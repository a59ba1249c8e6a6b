//! Parsing of the human-readable units used in the config file: durations
//! (`"10s"`), sizes (`"16KiB"`) and rates (`"20/s"`).
//!
//! Every parser returns a message fit for the `FILE: key: reason` error line.

use std::time::Duration;

/// A duration, size or count given either as a TOML integer or as a string.
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// A bare integer (seconds for durations, bytes for sizes).
    Int(i64),
    /// A string with a unit.
    Str(String),
}

/// Parses `"500ms"`, `"10s"`, `"5m"`, `"2h"`, `"1d"` (or an integer number of seconds).
pub fn duration(v: &Scalar) -> Result<Duration, String> {
    let s = match v {
        Scalar::Int(n) if *n >= 0 => return Ok(Duration::from_secs(*n as u64)),
        Scalar::Int(n) => return Err(format!("invalid duration {n}: must not be negative")),
        Scalar::Str(s) => s.trim(),
    };
    let err = || format!("invalid duration \"{s}\": expected a number followed by ms, s, m, h or d (e.g. \"10s\")");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let per = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(per).map(Duration::from_secs).ok_or_else(err)
}

/// Parses `"512B"`, `"16KiB"`, `"10MiB"`, `"1GiB"`, `"10MB"` (or an integer number of bytes).
pub fn size(v: &Scalar) -> Result<u64, String> {
    let s = match v {
        Scalar::Int(n) if *n >= 0 => return Ok(*n as u64),
        Scalar::Int(n) => return Err(format!("invalid size {n}: must not be negative")),
        Scalar::Str(s) => s.trim(),
    };
    let err = || {
        format!("invalid size \"{s}\": expected a number followed by B, KiB, MiB, GiB, KB, MB or GB (e.g. \"10MiB\")")
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// A rate: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

/// Parses `"20/s"`, `"10/min"`, `"100/h"`, `"1000/d"`.
pub fn rate(s: &str) -> Result<Rate, String> {
    let err = || format!("invalid rate \"{s}\": expected COUNT/UNIT with UNIT s, min, h or d (e.g. \"20/s\")");
    let (count, unit) = s.trim().split_once('/').ok_or_else(err)?;
    let count: u32 = count.trim().parse().map_err(|_| err())?;
    if count == 0 {
        return Err(format!("invalid rate \"{s}\": the count must be at least 1"));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        _ => return Err(err()),
    };
    Ok(Rate { count, per: Duration::from_secs(per) })
}

/// The JSON Schema pattern of a duration string: what [`duration`] accepts.
pub const DURATION_PATTERN: &str = r"^\s*[0-9]+\s*(ms|s|sec|secs|m|min|mins|h|hour|hours|d|day|days)\s*$";

/// The JSON Schema pattern of a size string: what [`size`] accepts (units
/// in any letter case).
pub const SIZE_PATTERN: &str = r"^\s*[0-9]+\s*([bB]|[kKmMgG]|[kKmMgG][iI][bB]|[kKmMgG][bB])?\s*$";

/// The schema of a duration key (`"10s"`, or an integer number of seconds).
/// Only describes the value for `moat schema`; parsing is [`duration`].
pub struct DurationText;

impl schemars::JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number followed by ms, s, m, h or d (\"500ms\", \"10s\", \"5m\", \"2h\", \"1d\"), or an integer number of seconds.",
            "anyOf": [
                { "type": "string", "pattern": DURATION_PATTERN },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

/// The schema of a size key (`"16KiB"`, or an integer number of bytes).
/// Only describes the value for `moat schema`; parsing is [`size`].
pub struct SizeText;

impl schemars::JsonSchema for SizeText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a number followed by B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000), e.g. \"16KiB\", \"10MiB\"; or an integer number of bytes.",
            "anyOf": [
                { "type": "string", "pattern": SIZE_PATTERN },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

/// The JSON Schema pattern of a rate string: what [`rate`] accepts.
pub const RATE_PATTERN: &str = r"^\s*0*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$";

/// The schema of a rate key (`"20/s"`). Only describes the value for
/// `moat schema`; parsing is [`rate`].
pub struct RateText;

impl schemars::JsonSchema for RateText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A rate: COUNT/UNIT with UNIT s, min, h or d (\"20/s\", \"10/min\", \"100/h\").",
            "type": "string",
            "pattern": RATE_PATTERN
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Scalar {
        Scalar::Str(v.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(duration(&s("10s")), Ok(Duration::from_secs(10)));
        assert_eq!(duration(&s("500ms")), Ok(Duration::from_millis(500)));
        assert_eq!(duration(&s("5m")), Ok(Duration::from_secs(300)));
        assert_eq!(duration(&s("2h")), Ok(Duration::from_secs(7200)));
        assert_eq!(duration(&Scalar::Int(3)), Ok(Duration::from_secs(3)));
        assert!(duration(&s("10 parsecs")).is_err());
        assert!(duration(&s("s")).is_err());
        assert!(duration(&s("-1s")).is_err());
        assert!(duration(&Scalar::Int(-1)).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size(&s("16KiB")), Ok(16 * 1024));
        assert_eq!(size(&s("10MiB")), Ok(10 << 20));
        assert_eq!(size(&s("1GiB")), Ok(1 << 30));
        assert_eq!(size(&s("10MB")), Ok(10_000_000));
        assert_eq!(size(&s("512")), Ok(512));
        assert_eq!(size(&Scalar::Int(7)), Ok(7));
        assert!(size(&s("10 furlongs")).is_err());
        assert!(size(&s("99999999999999999999GiB")).is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(rate("20/s"), Ok(Rate { count: 20, per: Duration::from_secs(1) }));
        assert_eq!(rate("10/min"), Ok(Rate { count: 10, per: Duration::from_secs(60) }));
        assert!(rate("0/s").is_err());
        assert!(rate("10").is_err());
        assert!(rate("10/fortnight").is_err());
    }

    /// The schema's patterns accept exactly what the parsers accept.
    #[test]
    fn schema_patterns_follow_the_parsers() {
        let d = regex::Regex::new(DURATION_PATTERN).unwrap();
        for v in ["10s", "500ms", "5m", "2h", "1d", " 3 secs ", "7days", "10", "s", "10 parsecs", "-1s", "1.5s", "10S"]
        {
            assert_eq!(d.is_match(v), duration(&s(v)).is_ok(), "duration {v:?}");
        }
        let z = regex::Regex::new(SIZE_PATTERN).unwrap();
        for v in
            ["16KiB", "10MiB", "1GiB", "10MB", "512", "512B", "4k", "2 mib", "10 furlongs", "1.5MiB", "MiB", "10TiB"]
        {
            assert_eq!(z.is_match(v), size(&s(v)).is_ok(), "size {v:?}");
        }
        let r = regex::Regex::new(RATE_PATTERN).unwrap();
        for v in ["20/s", "10/min", "100/h", "1000/d", " 5 / minute ", "0/s", "007/s", "10", "10/fortnight", "x/s"] {
            assert_eq!(r.is_match(v), rate(v).is_ok(), "rate {v:?}");
        }
    }
}
