//! `[security_headers]` and a route's `security_headers`: each value a
//! valid header value, `""` to leave the header out.

use crate::config::raw::RawSecurityHeaders;
use crate::config::Problems;
use crate::policy::security_headers::SecurityHeaders;

/// The security headers under `key`, over `base` (the defaults, or the
/// global section for a route).
pub(super) fn sec_headers(
    p: &mut Problems,
    key: &str,
    raw: &RawSecurityHeaders,
    base: &SecurityHeaders,
) -> SecurityHeaders {
    let mut one = |name: &str, v: &Option<String>, dflt: &Option<http::HeaderValue>| match v.as_deref() {
        None => dflt.clone(),
        Some("") => None,
        Some(s) => match http::HeaderValue::from_str(s) {
            Ok(h) => Some(h),
            Err(_) => {
                p.push(format!("{key}.{name}"), "not a valid header value");
                dflt.clone()
            }
        },
    };
    SecurityHeaders {
        hsts: one("hsts", &raw.hsts, &base.hsts),
        csp: one("content_security_policy", &raw.content_security_policy, &base.csp),
        frame_options: one("frame_options", &raw.frame_options, &base.frame_options),
        referrer_policy: one("referrer_policy", &raw.referrer_policy, &base.referrer_policy),
    }
}
