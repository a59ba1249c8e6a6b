//! `[scan]`: clamd's address, the fallbacks, timeouts and pool; and the
//! routes that ask for a scan without one.

use std::sync::Arc;

use super::{count, dur, size};
use crate::config::raw::{RawRoute, RawScan};
use crate::config::Problems;
use crate::scan::{Endpoint, Fallback, ScanConfig};

/// `[scan]`, if present; a route with `upload.scan = true` needs it.
pub(super) fn scan(p: &mut Problems, raw: Option<&RawScan>, routes: &[RawRoute]) -> Option<Arc<ScanConfig>> {
    let scan = raw.and_then(|s| section(p, s)).map(Arc::new);
    if raw.is_none() {
        for (i, r) in routes.iter().enumerate() {
            if r.upload.as_ref().and_then(|u| u.scan) == Some(true) {
                p.push(
                    format!("routes[{i}].upload.scan"),
                    "scan = true needs a [scan] section naming clamd (e.g. clamd = \"tcp://127.0.0.1:3310\")",
                );
            }
        }
    }
    scan
}

/// The `[scan]` section itself.
fn section(p: &mut Problems, raw: &RawScan) -> Option<ScanConfig> {
    let endpoint = match raw.clamd.as_deref() {
        None => {
            p.push("scan.clamd", "missing: tcp://HOST:PORT or unix:/path/to/clamd.ctl");
            None
        }
        Some(c) => Endpoint::parse(c).map_err(|e| p.push("scan.clamd", e)).ok(),
    };
    let fallback = |p: &mut Problems, key: &str, v: &Option<String>| match v.as_deref() {
        None => Fallback::Deny,
        Some(s) => Fallback::parse(s).unwrap_or_else(|| {
            p.push(key, format!("\"{s}\": use \"deny\" or \"allow\""));
            Fallback::Deny
        }),
    };
    let on_too_large = fallback(p, "scan.on_too_large", &raw.on_too_large);
    let on_error = fallback(p, "scan.on_error", &raw.on_error);
    let timeout = dur(p, "scan.timeout", &raw.timeout, ScanConfig::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        p.push("scan.timeout", "must be more than 0s");
    }
    let max_file_size = size(p, "scan.max_file_size", &raw.max_file_size, ScanConfig::DEFAULT_MAX_FILE_SIZE);
    if max_file_size == 0 {
        p.push("scan.max_file_size", "must be more than 0");
    }
    let pool_size = count(p, "scan.pool_size", raw.pool_size, ScanConfig::DEFAULT_POOL_SIZE as u64, 1, 4096) as usize;
    let mut cfg = ScanConfig::new(endpoint?).with_pool_size(pool_size);
    cfg.timeout = timeout;
    cfg.max_file_size = max_file_size;
    cfg.on_too_large = on_too_large;
    cfg.on_error = on_error;
    cfg.required_for_ready = raw.required_for_ready.unwrap_or(false);
    Some(cfg)
}
