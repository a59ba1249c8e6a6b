//! The integration suite, built as one test binary: each module is one
//! area (proxying, uploads, connections, ...). Run one area with
//! `cargo test --release --test integration <module>::`.

mod common;

mod adversarial;
mod auth;
mod bypass;
mod config;
mod connections;
mod cors;
mod errors;
mod forward_auth;
mod operator_kit;
mod ops;
mod presets;
mod properties;
mod proxy;
mod rate_limit;
mod scan;
mod sessions;
mod upload;
mod upload_attacks;
mod upload_corpus;
mod upload_inspector;
mod upstreams;
