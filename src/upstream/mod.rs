//! The connection side of forwarding: the pools of keep-alive connections
//! that reach an upstream (`pool.rs`, moat's own on hyper's HTTP/1.1
//! connection client), the connectors they open connections with (plain
//! TCP, TLS, unix socket: `client.rs`) and the choice among its addresses
//! (`balance.rs`). Below the config (whose `[upstream]` sections hold a
//! pool and a client each) and the proxy service that uses them.

pub(crate) mod balance;
pub(crate) mod client;
pub(crate) mod pool;
