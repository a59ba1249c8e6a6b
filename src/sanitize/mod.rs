//! Keeping internals out of what clients see and what logs hold.

pub mod redact;
