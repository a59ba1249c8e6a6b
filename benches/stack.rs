//! The whole request stack against an in-memory upstream, with the system
//! allocator wrapped in a counter: allocations per request, then timings.
//! See `benches/common/stack.rs`.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[path = "common/stack.rs"]
mod stack;

fn main() {
    stack::main(Some(|| {
        let s = GLOBAL.stats();
        (s.allocations, s.reallocations, s.bytes_allocated)
    }));
}
