//! `[limits]`: connection, header, body and time limits.

use std::time::Duration;

use super::{count, dur, size};
use crate::config::raw::RawLimits;
use crate::config::{Limits, Problems};

/// `[limits]`, each value within its range.
pub(super) fn limits(p: &mut Problems, raw: &RawLimits) -> Limits {
    let max_header_bytes = size(p, "limits.max_header_bytes", &raw.max_header_bytes, 16 * 1024);
    if !(1024..=1 << 20).contains(&max_header_bytes) {
        p.push("limits.max_header_bytes", "must be between 1KiB and 1MiB");
    }
    Limits {
        max_connections: count(p, "limits.max_connections", raw.max_connections, 10_000, 1, 1 << 24) as usize,
        header_read_timeout: dur(p, "limits.header_read_timeout", &raw.header_read_timeout, Duration::from_secs(10)),
        idle_timeout: dur(p, "limits.idle_timeout", &raw.idle_timeout, Duration::from_secs(75)),
        max_header_bytes: max_header_bytes as usize,
        max_body: size(p, "limits.max_body", &raw.max_body, 10 << 20),
        body_read_timeout: dur(p, "limits.body_read_timeout", &raw.body_read_timeout, Duration::from_secs(60)),
        shutdown_grace: dur(p, "limits.shutdown_grace", &raw.shutdown_grace, Duration::from_secs(30)),
        h2_max_concurrent_streams: count(
            p,
            "limits.h2_max_concurrent_streams",
            raw.h2_max_concurrent_streams,
            128,
            1,
            10_000,
        ) as u32,
        max_in_flight: raw
            .max_in_flight
            .map(|_| count(p, "limits.max_in_flight", raw.max_in_flight, 1, 1, 1 << 24) as usize),
        send_timeout: dur(p, "limits.send_timeout", &raw.send_timeout, Duration::from_secs(60)),
        body_timeout: dur(p, "limits.body_timeout", &raw.body_timeout, Duration::from_secs(600)),
    }
}
