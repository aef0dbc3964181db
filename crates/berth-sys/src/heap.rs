//! The C heap (glibc malloc) of a long-running daemon: fewer arenas, and free memory handed back
//! to the kernel after bulk removals, so that RSS follows the number of live containers.

/// Caps glibc's malloc arenas (default 8 per core): each blocking thread that allocates may get
/// its own arena, and freed memory in one arena is not reused by another thread's allocations.
/// Call once at start, before threads exist. A no-op where the C library is not glibc.
pub fn limit_arenas(max: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tunables; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, max);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = max;
}

/// Returns free heap memory to the kernel (glibc `malloc_trim(0)`: the top of each arena and the
/// free pages inside it). Costs a walk of the free lists; call after bulk frees, not per request.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only releases memory malloc owns and no one uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_after_a_bulk_free_lowers_rss() {
        fn rss_kb() -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            l.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        // Many small blocks (below the mmap threshold), all touched, then freed but for the last,
        // which pins the top of the heap: free() alone cannot shrink it.
        let mut v: Vec<Vec<u8>> = (0..20_000).map(|_| vec![1u8; 4000]).collect();
        let last = v.pop();
        drop(v);
        let before = rss_kb();
        super::release_free_memory();
        let after = rss_kb();
        drop(last);
        assert!(after + 40_000 < before, "RSS {before} kB → {after} kB");
    }
}
