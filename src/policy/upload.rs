//! Layer 10 (second half): upload inspection on the streaming body.
//!
//! On a route with `upload = { ... }`, the request must be
//! `multipart/form-data` or a raw body whose `Content-Type` is one of the
//! route's types (415 `upload_type` otherwise). The (already size-limited)
//! body is wrapped by the inspector of `crate::upload`, which checks every
//! file part's declared type, extension and content (first bytes, then the
//! whole file: end markers, zip central directory, OLE2 directory, text
//! encoding), the file names, the file count and the form fields while the
//! body streams. A violation
//! cuts the stream: the upstream request is aborted before the body is
//! complete, and the client gets the violation's status (415 / 400 / 413)
//! if no response has begun, and the log line names the check that failed.
//! The bytes forwarded are exactly the client's. With `scan = true` (and a
//! `[scan]` section) every file is also streamed to clamd, and the body's
//! last chunk waits for the verdicts: 403 `upload_malware` when one is
//! infected, 503 `scan_unavailable` when one could not be scanned and
//! `scan.on_error` is `deny` (see `crate::scan`).

use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::Request;
use http_body_util::BodyExt;

use super::body_limit::refuse;
use super::{Decide, Verdict};
use crate::body::Body;
use crate::error::{BoxError, ProxyError};
use crate::metrics::ScanMetrics;
use crate::policy::ctx::Ctx;
use crate::scan::Scanning;
use crate::upload::{classify, inspect, InspectError};

/// The policy.
pub(crate) struct Upload {
    scan_metrics: Arc<ScanMetrics>,
}

impl Upload {
    /// The policy, counting scans in `scan_metrics`.
    pub(crate) fn new(scan_metrics: Arc<ScanMetrics>) -> Self {
        Self { scan_metrics }
    }
}

impl Decide for Upload {
    // Decided at once: the inspection itself runs as the body streams.
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
        let Some(rules) = ctx.route().upload.clone() else { return Verdict::Pass };
        let h1 = req.version() < http::Version::HTTP_2;
        if !super::body_limit::has_body(req) {
            // Nothing to inspect (e.g. a GET on an upload route).
            return Verdict::Pass;
        }
        let kind = match classify(req.headers().get(CONTENT_TYPE), &rules) {
            Ok(k) => k,
            Err(v) => return refuse(v.reason(), ctx, h1),
        };
        let body = std::mem::replace(req.body_mut(), crate::body::empty());
        let record = ctx.clone();
        let scanning = match (&ctx.config.scan, rules.scan) {
            (Some(cfg), true) => Some(Scanning::new(cfg.clone(), self.scan_metrics.clone(), &ctx.id)),
            _ => None,
        };
        let inspected = inspect(body, kind, rules, scanning).map_err(move |e| -> BoxError {
            match e {
                InspectError::Violation(v, check) => {
                    let r = v.reason();
                    tracing::info!(
                        request_id = %record.id,
                        violation = ?v,
                        check,
                        reason = r.as_str(),
                        "upload refused while streaming"
                    );
                    record.refuse_body(r);
                    Box::new(ProxyError::BodyRefused(r))
                }
                InspectError::Inner(e) => e,
            }
        });
        *req.body_mut() = inspected.boxed_unsync();
        Verdict::Pass
    }
}
