//! Memory helpers of the table-heavy fast path: cache prefetch hints and vectors backed by
//! transparent huge pages.

/// Hint the CPU to start loading the cache line at `p`; no effect on the program's meaning.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a cache hint: it does not access memory on the program's
    // behalf and never faults, whatever the address. SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A vector of `len` copies of `value` whose memory is backed by transparent huge pages where
/// the kernel allows it (`madvise(MADV_HUGEPAGE)` before the pages are first touched): a large
/// table probed at random then costs far fewer TLB misses. Falls back silently to normal pages.
pub fn huge_page_vec<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(v.as_mut_ptr().cast(), len * size_of::<T>());
    v.resize(len, value);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + bytes) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside an allocation we own and have not handed out; madvise
        // only changes how the kernel backs it (no data is touched); a failure is harmless.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _bytes: usize) {}
