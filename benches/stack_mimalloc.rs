//! `benches/stack.rs` with mimalloc, the allocator of the moat binary
//! (timings and `--loop` for callgrind; no allocation counts). See
//! `benches/common/stack.rs`.

#[global_allocator]
static GLOBAL: moat_alloc::MiMalloc = moat_alloc::MiMalloc;

#[path = "common/stack.rs"]
mod stack;

fn main() {
    stack::main(None);
}
