//! moat: a hardened TLS-terminating reverse-proxy sidecar for self-hosted
//! document-AI services (paperless-gpt, MinerU-API and the like).
//!
//! A request's path, and the module that handles each step:
//!
//! ```text
//! TCP accept ── connection cap ── TLS handshake   listener/ (mod.rs, tls.rs, certs.rs; pem.rs reads the files)
//!   └─ hyper-util auto server, h1 + h2, hardened   server.rs
//!       └─ tower stack, outermost first            stack.rs (and the state it shares: stack::Shared)
//!           1. request id + per-request context    policy/request_id.rs, policy/ctx.rs
//!           2. access log + request metrics        policy/access_log.rs, metrics.rs, telemetry.rs
//!           3. every response's headers:           policy/security_headers.rs (the layer), which applies
//!              CORS headers, HTML error pages,       policy/cors.rs, policy/error_page.rs,
//!              security headers, leaky ones out      policy/security_headers.rs
//!           4. rescue: panics and errors → RFC 9457 policy/rescue.rs, error.rs
//!           5. request framing (smuggling)         policy/framing.rs
//!           5. path normalization + route match    policy/route.rs
//!           6. client IP + IP allow/deny           policy/client_ip.rs
//!           7. CORS allowlist, preflights          policy/cors.rs
//!           8. rate limits + in-flight caps        policy/rate_limit/ (memory.rs, redis.rs)
//!           9. authentication, roles               policy/auth.rs, policy/forward_auth.rs, policy/session.rs
//!          10. body limits on the streaming body   policy/body_limit.rs
//!              + upload inspection of the stream   policy/upload.rs → upload/ (inspect/, types, zip, ole2), scan.rs (clamd)
//!          12. error sanitizer (upstream responses) policy/sanitize.rs → redact/
//!       11+13. upstream timeout + forwarding       proxy/ (mod.rs, tunnel.rs for upgrades), headers.rs,
//!                                                  upstream/ (client.rs pools, balance.rs address choice)
//! ```
//!
//! Around the request path: `main.rs` and `cli.rs` (commands), `app.rs`
//! (start, reload, drain), `config/` (raw → validated config; `check.rs`
//! warns about unsafe settings), `admin.rs` (health, readiness, metrics),
//! `watch.rs` (file watching for reloads), `shutdown.rs`, `net.rs`,
//! `body.rs` (the body type).
//!
//! The public modules are what the binary, the tests and the benches use;
//! the rest is private to the crate, so the compiler reports dead code
//! (`unreachable_pub` is denied).
//!
//! Policies respond (a rejection is an ordinary response); only
//! infrastructure failures travel as errors, to the rescue layer. Every
//! service in the stack is always ready (see [`policy::AlwaysReady`]).

#![deny(unreachable_pub)]
// No panicking shortcuts outside tests: a request path answers errors, it does not unwind.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub(crate) mod admin;
pub mod app;
pub mod body;
pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod headers;
pub(crate) mod listener;
pub(crate) mod metrics;
pub mod net;
pub(crate) mod pem;
pub mod policy;
pub mod proxy;
pub mod redact;
pub(crate) mod scan;
pub(crate) mod server;
pub mod shutdown;
pub mod stack;
pub mod telemetry;
pub mod upload;
pub(crate) mod upstream;
pub(crate) mod watch;
