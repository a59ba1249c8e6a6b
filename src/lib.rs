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
//!           3. security headers                      policy/security_headers.rs
//!           4. rescue: panics and errors → RFC 9457  policy/rescue.rs, error.rs
//!           5. path normalization + route match      policy/route.rs
//!          10. body limits on the streaming body     policy/body_limit.rs, body.rs
//!              + upload inspection of the stream     policy/upload.rs, upload/
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
pub mod ctx;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod sanitize;
pub mod scan;
pub mod server;
pub mod shutdown;
pub mod stack;
pub mod telemetry;
pub mod upload;
