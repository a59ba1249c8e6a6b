//! The connection side of forwarding: the pooled clients that reach an
//! upstream (plain TCP, TLS, unix socket) and the choice among its
//! addresses. Below the config (whose `[upstream]` sections hold a pool and
//! a client each) and the proxy service that uses them.

pub(crate) mod balance;
pub(crate) mod client;
pub(crate) mod pool;
