//! The binary's allocator: the system allocator for everything small; blocks of `BIG` bytes and
//! more (parameters, Adam moments, gradients, the [batch, d_sae] pre-activations, activation
//! batches) are mapped on their own, aligned to 2 MiB and advised for transparent huge pages.
//!
//! Why: the training step gathers decoder rows, error rows and input rows at random from buffers
//! of tens of MiB, and Adam walks W_enc column block by column block; with 4 KiB pages nearly every
//! such access misses the TLB. Linux hands out huge pages for anonymous memory only where asked
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is usually `madvise`). PyTorch's CPU allocator
//! does the same for its large tensors. Where the kernel refuses the advice the block is still an
//! ordinary mapping, so nothing depends on it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Blocks at least this large get their own huge-page mapping.
const BIG: usize = 4 << 20;
/// The huge page size on x86-64 and aarch64 Linux.
const HUGE_PAGE: usize = 2 << 20;

/// System allocator with huge-page mappings for big blocks (see the module doc).
pub struct HugePageAlloc;

fn is_big(layout: &Layout) -> bool {
    layout.size() >= BIG && layout.align() <= HUGE_PAGE
}

fn mapped_len(size: usize) -> usize {
    size.div_ceil(HUGE_PAGE) * HUGE_PAGE
}

/// A fresh zeroed mapping of `mapped_len(size)` bytes starting on a huge-page boundary, or null.
///
/// # Safety
/// The caller frees it with [`unmap`] and the same `size`.
unsafe fn map(size: usize) -> *mut u8 {
    let len = mapped_len(size);
    // Over-map by one huge page, then trim the head and tail so the block starts aligned.
    let total = len + HUGE_PAGE;
    // SAFETY: an anonymous private mapping with no fixed address has no preconditions.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    let base = raw as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (start - base, base + total - (start + len));
    // SAFETY: both ranges lie inside the mapping made above and are page-aligned (mmap returns
    // page-aligned addresses and every length here is a multiple of the page size); the block
    // [start, start + len) is not touched. madvise only gives advice about the block.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    start as *mut u8
}

/// # Safety
/// `p` came from [`map`] with the same `size` and is not used after.
unsafe fn unmap(p: *mut u8, size: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        libc::munmap(p as *mut libc::c_void, mapped_len(size));
    }
}

// SAFETY: small blocks go to the system allocator unchanged; big blocks are whole mappings of at
// least their size, aligned to 2 MiB (which satisfies every alignment `is_big` admits), zeroed by
// the kernel, and freed by the path that made them (the layout decides both).
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_big(&layout) {
            // SAFETY: freed in `dealloc` with the same layout.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_big(&layout) {
            // SAFETY: as in `alloc`; fresh anonymous mappings read as zero.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_big(&layout) {
            // SAFETY: a big layout's block came from `map` with this size.
            unsafe { unmap(p, layout.size()) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc`'s contract makes this layout valid.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_big(&layout), is_big(&new)) {
            // SAFETY: forwarded contract (small stays small: the system allocator owns it).
            (false, false) => unsafe { System.realloc(p, layout, new_size) },
            (true, true) if mapped_len(new_size) == mapped_len(layout.size()) => p,
            _ => {
                // SAFETY: a new block of the new layout, the common prefix copied, the old block
                // freed by its own path.
                unsafe {
                    let q = self.alloc(new);
                    if !q.is_null() {
                        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                    q
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BIG;

    #[test]
    fn big_blocks_are_aligned_zeroed_and_keep_their_contents_when_grown() {
        let n = BIG / 4 + 3;
        let mut v = vec![0f32; n];
        assert_eq!(v.as_ptr() as usize % (2 << 20), 0);
        assert!(v.iter().all(|&x| x == 0.0));
        v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
        // Growth across the small/big boundary and within big blocks copies the prefix.
        let mut small: Vec<u32> = (0..1000).collect();
        small.reserve(BIG);
        v.reserve(3 * n);
        v.push(-1.0);
        assert!(small.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert!(v[..n].iter().enumerate().all(|(i, &x)| x == i as f32));
        assert_eq!(v[n], -1.0);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, (0..10).map(|i| i as f32).collect::<Vec<_>>());
    }
}
