//! The global allocator of the binary: mimalloc, asked the way its fast
//! paths expect.
//!
//! `mimalloc::MiMalloc` passes every request to `mi_malloc_aligned`, even
//! for the word alignment of nearly every Rust type. mimalloc 3 serves an
//! aligned request above 1 KiB (boxed futures, buffers), or one whose size
//! class has no free block at hand, by over-allocating by the alignment and
//! marking the page as holding interior pointers, which then also slows its
//! `free`. That was about 10 allocations per proxied request and 2k
//! instructions (moat's `benches/RESULTS.md`).
//!
//! Every mimalloc block is aligned to 8 bytes, and a block of 16 bytes or
//! more to 16 (mimalloc's `MI_MAX_ALIGN_SIZE`), so a layout within that goes
//! to the plain `mi_malloc` family; only a larger alignment (tokio's
//! cache-padded cells, for one) takes the aligned calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every mimalloc block.
const WORD: usize = 8;
/// The alignment of every mimalloc block of at least this many bytes.
const MAX_ALIGN: usize = 16;

/// Whether a plain allocation of `size` bytes is aligned to `align`.
#[inline]
const fn natural(size: usize, align: usize) -> bool {
    align <= WORD || (align <= MAX_ALIGN && size >= MAX_ALIGN)
}

/// mimalloc as the global allocator (see the module's documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct MiMalloc;

// SAFETY: every call forwards to mimalloc, which returns null or a block of
// at least the size asked for, aligned as `natural` states or as asked; each
// block is freed by `mi_free` and resized by `mi_realloc*`, whatever call
// made it.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if natural(layout.size(), layout.align()) {
            // SAFETY: an FFI call with a size; the block is aligned enough (`natural`).
            unsafe { mi::mi_malloc(layout.size()) }.cast()
        } else {
            // SAFETY: an FFI call with a size and a power-of-two alignment.
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) }.cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if natural(layout.size(), layout.align()) {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc(layout.size()) }.cast()
        } else {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) }.cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (the caller's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if natural(new_size, layout.align()) {
            // SAFETY: `ptr` was allocated by this allocator (the caller's
            // contract); the new block is aligned enough (`natural`).
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size) }.cast()
        } else {
            // SAFETY: as above, with the alignment asked for.
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()) }.cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (size, alignment) the plain calls serve comes back aligned,
    /// fresh, zeroed and resized, across many blocks of each size class.
    #[test]
    fn blocks_are_aligned_as_asked() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in (1..=64).chain([100, 500, 1023, 1024, 1025, 2000, 4096, 5000, 70_000, 3 << 20]) {
                let Ok(layout) = Layout::from_size_align(size, align) else { continue };
                let mut blocks = Vec::new();
                for _ in 0..64 {
                    // SAFETY: non-zero size; each block is freed below.
                    let p = unsafe { a.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    // SAFETY: `p` holds `size` bytes.
                    unsafe { p.write_bytes(0xa5, size) };
                    blocks.push(p);
                }
                // SAFETY: non-zero size.
                let z = unsafe { a.alloc_zeroed(layout) };
                assert_eq!(z as usize % align, 0);
                // SAFETY: `z` holds `size` zeroed bytes.
                assert!(unsafe { std::slice::from_raw_parts(z, size) }.iter().all(|b| *b == 0));
                // SAFETY: `z` was allocated with `layout`.
                let r = unsafe { a.realloc(z, layout, size * 3) };
                assert_eq!(r as usize % align, 0, "realloc to {} align {align}", size * 3);
                // SAFETY: the old contents are kept.
                assert!(unsafe { std::slice::from_raw_parts(r, size) }.iter().all(|b| *b == 0));
                blocks.push(r);
                for (i, p) in blocks.into_iter().enumerate() {
                    let l = if i == 64 { Layout::from_size_align(size * 3, align).unwrap_or(layout) } else { layout };
                    // SAFETY: each was allocated by `a` with `l`.
                    unsafe { a.dealloc(p, l) };
                }
            }
        }
    }
}
