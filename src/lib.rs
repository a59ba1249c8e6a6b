//! moat: a hardened TLS-terminating reverse-proxy sidecar for self-hosted
//! document-AI services (paperless-gpt, MinerU-API and the like).
//!
//! A request's path, and the module that handles each step:
//!
//! ```text
//! TCP accept ── connection cap ── TLS handshake (listener/, listener/tls.rs, listener/certs.rs)
//!   └─ hyper-util auto server, h1 + h2, hardened (server.rs)
//!       └─ tower stack (stack.rs), outermost first:
//!           1. request id + per-request context      policy/request_id.rs, ctx.rs
//!           2. access log + request metrics          policy/access_log.rs, metrics.rs
//!           3. security headers, leaky headers out   policy/security_headers.rs
//!           4. rescue: panics and errors → RFC 9457  policy/rescue.rs, error.rs
//!           5. request framing (smuggling)           policy/framing.rs
//!           5. path normalization + route match      policy/route.rs
//!           6. client IP + IP allow/deny             policy/client_ip.rs
//!           7. CORS allowlist, preflights            policy/cors.rs
//!           8. rate limits + in-flight caps          policy/rate_limit/
//!           9. authentication, roles, forward auth   policy/auth.rs, policy/forward_auth.rs
//!          10. body limits on the streaming body     policy/body_limit.rs, body.rs
//!              + upload inspection of the stream     policy/upload.rs, upload/, scan.rs
//!          12. error sanitizer (upstream responses)  policy/sanitize.rs, sanitize/
//!       11+13. upstream timeout + forwarding         proxy/
//! ```
//!
//! Policies respond (a rejection is an ordinary response); only
//! infrastructure failures travel as errors, to the rescue layer.

pub mod admin;
pub mod app;
pub mod body;
pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod headers;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod pem;
pub mod policy;
pub mod proxy;
pub mod sanitize;
pub mod scan;
pub mod server;
pub mod shutdown;
pub mod stack;
pub mod telemetry;
pub mod upload;
pub mod upstream;
