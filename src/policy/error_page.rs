//! moat's error responses as HTML pages, for browsers (part of layer 3).
//!
//! A request whose `Accept` prefers HTML over JSON (`errors.html`, decided
//! once into `Ctx::prefers_html`) gets moat's own problem responses as a
//! minimal HTML page with the same status, fixed text and request id,
//! instead of problem+json. Upstream responses are never rendered: only
//! responses carrying moat's [`ProblemDoc`](crate::error::ProblemDoc).

use http::header::{self, HeaderValue};
use http::Response;

use crate::body::Body;
use crate::policy::ctx::Ctx;

/// Renders `res` as an HTML page when it is one of moat's problem responses
/// and the client prefers HTML.
pub(crate) fn render(res: &mut Response<Body>, ctx: &Ctx) {
    if !ctx.prefers_html {
        return;
    }
    if let Some(doc) = res.extensions().get::<crate::error::ProblemDoc>() {
        let page = crate::error::html_page(doc.status, &doc.detail, &ctx.id);
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = crate::body::full(page);
    }
}
