//! The gateways' global allocator: mimalloc, asked through its plain API whenever every mimalloc block already
//! has the alignment a request needs.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`. mimalloc v3 serves an
//! aligned request from the size class's page only while that page's free list has a block; once it is empty
//! (blocks freed since sit on the page's local free list, which only the plain path collects), a request whose
//! size class is not a power of two takes the over-allocating path (`size + align - 1` from a larger class) —
//! slower, and a larger block. Every mimalloc block is word-aligned (block sizes are whole words, pages start
//! aligned), so a request for at most word alignment — almost every Rust allocation — needs no aligned API:
//! it goes to `mi_malloc` / `mi_zalloc` / `mi_realloc`, the path C programs take. Larger alignments keep the
//! aligned API. Measured with `bench/callgrind` (bench/notes.md).
//!
//! The one module with `unsafe` code (a `GlobalAlloc` cannot be written without it): the workspace denies
//! `unsafe_code`, and a test here checks that no other source file allows it and every crate keeps the
//! workspace's lints.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has: block sizes are whole words, and pages start 16-aligned.
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

/// The alignment a block has when its size is a multiple of it: mimalloc's size classes up to 64 bytes are
/// exact word counts and those above are multiples of two words, so a request for a multiple of 16 bytes
/// lands in a class whose block size is a multiple of 16, and its page starts 16-aligned
/// (`MI_PAGE_MIN_START_BLOCK_ALIGN`). Rust types aligned to 16 (`u128`, futures holding one) always have
/// such sizes.
const DOUBLE_WORD_ALIGN: usize = 16;

/// Whether a plain mimalloc block of `size` bytes is aligned to `align`.
#[inline]
fn natural(size: usize, align: usize) -> bool {
    align <= WORD_ALIGN || (align == DOUBLE_WORD_ALIGN && size.is_multiple_of(DOUBLE_WORD_ALIGN))
}

/// mimalloc as a `#[global_allocator]` (declared by [`crate::gateway_main!`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

impl Allocator {
    /// Returns the pages the calling thread's heap (and any abandoned one) no longer uses to the OS now,
    /// instead of on later allocator activity (`mi_collect(true)`, see [`crate::conn::release`]).
    pub fn collect() {
        unsafe extern "C" {
            /// mimalloc's `void mi_collect(bool force)` (its extended C API, linked in with the allocator).
            safe fn mi_collect(force: bool);
        }
        mi_collect(true);
    }
}

// SAFETY: every path returns memory from mimalloc with at least `layout.align()` alignment (plain blocks where
// `natural` says they have it, the aligned API otherwise) or null; `dealloc` frees with `mi_free`, which takes any
// pointer mimalloc handed out, aligned or not.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if natural(layout.size(), layout.align()) {
            // SAFETY: plain allocation of `layout.size()` bytes.
            let p: *mut u8 = unsafe { mi::mi_malloc(layout.size()) }.cast();
            debug_assert_eq!(p as usize % layout.align(), 0, "{layout:?}");
            p
        } else {
            // SAFETY: aligned allocation; `layout.align()` is a power of two.
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) }.cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if natural(layout.size(), layout.align()) {
            // SAFETY: as `alloc`, zeroed.
            unsafe { mi::mi_zalloc(layout.size()) }.cast()
        } else {
            // SAFETY: as `alloc`, zeroed.
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) }.cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if natural(new_size, layout.align()) {
            // SAFETY: `ptr` came from this allocator; the new block is aligned as `natural` says.
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size) }.cast()
        } else {
            // SAFETY: `ptr` came from this allocator with `layout.align()`, which the new block keeps.
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()) }.cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a program asks for comes back aligned, writable, and keeps its bytes across
    /// growing and shrinking reallocations; zeroed requests are zero. Sizes cover mimalloc's small, medium and
    /// large classes, alignments both paths.
    #[test]
    fn honours_size_and_alignment() {
        let a = Allocator;
        let sizes = [
            1,
            3,
            7,
            8,
            12,
            16,
            24,
            32,
            40,
            48,
            56,
            64,
            72,
            80,
            96,
            100,
            112,
            144,
            160,
            208,
            1000,
            1024,
            4096,
            70_000,
            1 << 20,
        ];
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                // Several at once, so blocks come from the middle of pages, not only their start.
                let mut blocks = Vec::new();
                for round in 0..16u8 {
                    // SAFETY: non-zero size; each block is freed below with its layout.
                    let p = unsafe { a.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    // SAFETY: `p` points to `size` writable bytes.
                    unsafe { p.write_bytes(round.wrapping_add(1), size) };
                    blocks.push((p, round.wrapping_add(1)));
                }
                for (p, byte) in blocks {
                    let grown = size * 3 + 5;
                    // SAFETY: `p` came from `alloc(layout)`.
                    let q = unsafe { a.realloc(p, layout, grown) };
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    // SAFETY: the first `size` bytes were kept by the reallocation.
                    let kept = unsafe { std::slice::from_raw_parts(q, size) };
                    assert!(kept.iter().all(|b| *b == byte), "size {size} align {align}");
                    let grown_layout = Layout::from_size_align(grown, align).unwrap();
                    // SAFETY: `q` came from `realloc` with that size and alignment.
                    let r = unsafe { a.realloc(q, grown_layout, size.div_ceil(2)) };
                    assert_eq!(r as usize % align, 0);
                    // SAFETY: the first half was kept.
                    let kept = unsafe { std::slice::from_raw_parts(r, size.div_ceil(2)) };
                    assert!(kept.iter().all(|b| *b == byte));
                    let shrunk = Layout::from_size_align(size.div_ceil(2), align).unwrap();
                    // SAFETY: `r` came from this allocator with `shrunk`.
                    unsafe { a.dealloc(r, shrunk) };
                }
                // SAFETY: non-zero size; freed right after.
                let z = unsafe { a.alloc_zeroed(layout) };
                assert_eq!(z as usize % align, 0);
                // SAFETY: `z` points to `size` initialised (zero) bytes.
                assert!(
                    unsafe { std::slice::from_raw_parts(z, size) }
                        .iter()
                        .all(|b| *b == 0)
                );
                // SAFETY: `z` came from `alloc_zeroed(layout)`.
                unsafe { a.dealloc(z, layout) };
            }
        }
    }

    /// `unsafe` stays confined to this module: the workspace denies `unsafe_code`, every crate takes the
    /// workspace's lints, and no other source file allows it.
    #[test]
    fn unsafe_code_is_confined_here() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("unsafe_code = \"deny\""));
        let mut allowed = Vec::new();
        let mut crates = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(crate_manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
                continue;
            };
            crates += 1;
            assert!(
                crate_manifest.contains("[lints]\nworkspace = true"),
                "{} does not take the workspace's lints",
                dir.display()
            );
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() && !path.ends_with("target") {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        let text = std::fs::read_to_string(&path).unwrap();
                        if text.contains(concat!("allow(", "unsafe_code)")) {
                            allowed.push(path.canonicalize().unwrap());
                        }
                    }
                }
            }
        }
        assert!(crates >= 8, "found {crates} crates");
        let this = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/alloc.rs");
        assert_eq!(allowed, vec![this.canonicalize().unwrap()]);
    }

    /// A forced collection runs (and returns) on any thread.
    #[test]
    fn collects() {
        Allocator::collect();
        std::thread::spawn(Allocator::collect).join().unwrap();
    }
}
