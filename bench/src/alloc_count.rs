//! A global allocator that counts calls and forwards them to the system
//! allocator, so a process can report how many allocations a stretch of
//! work cost. The binary installs it; the library's tests do not.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts allocations, reallocations and allocated bytes, and keeps the
/// bytes live (allocated and not yet freed); forwards every call to
/// [`System`] unchanged.
#[derive(Debug)]
pub struct CountingAlloc {
    allocations: AtomicU64,
    reallocations: AtomicU64,
    bytes: AtomicU64,
    live: AtomicU64,
}

/// The counts at one moment; subtract two to get the cost of what ran in
/// between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocCounts {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocations: u64,
    /// `realloc` calls.
    pub reallocations: u64,
    /// Bytes requested by all of them.
    pub bytes: u64,
}

impl AllocCounts {
    /// What was counted between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: AllocCounts) -> AllocCounts {
        AllocCounts {
            allocations: self.allocations.wrapping_sub(earlier.allocations),
            reallocations: self.reallocations.wrapping_sub(earlier.reallocations),
            bytes: self.bytes.wrapping_sub(earlier.bytes),
        }
    }
}

impl CountingAlloc {
    /// A counter at zero.
    #[must_use]
    pub const fn new() -> Self {
        CountingAlloc {
            allocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            live: AtomicU64::new(0),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> AllocCounts {
        AllocCounts {
            allocations: self.allocations.load(Ordering::Relaxed),
            reallocations: self.reallocations.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Bytes allocated and not yet freed (the heap the process holds, as
    /// its allocations asked for it; the allocator's own overhead and
    /// fragmentation show in RSS instead).
    pub fn live_bytes(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    fn count(&self, counter: &AtomicU64, size: usize) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only
// atomics and never allocates, so it cannot re-enter the allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count(&self.allocations, layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract
        // (non-zero size), which is `System.alloc`'s.
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() {
            self.live.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count(&self.allocations, layout.size());
        // SAFETY: as for `alloc`; the same contract.
        let block = unsafe { System.alloc_zeroed(layout) };
        if !block.is_null() {
            self.live.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, which
        // `System` allocated, with the layout it was allocated with.
        unsafe { System.dealloc(ptr, layout) };
        self.live.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count(&self.reallocations, new_size);
        // SAFETY: `ptr` and `layout` describe a block `System` allocated
        // (see `dealloc`), and the caller guarantees `new_size` is valid.
        let block = unsafe { System.realloc(ptr, layout, new_size) };
        // On failure the old block stays allocated, unchanged.
        if !block.is_null() {
            self.live.fetch_add(new_size as u64, Ordering::Relaxed);
            self.live.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        }
        block
    }
}
