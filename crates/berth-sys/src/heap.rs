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

/// The glibc tunable that turns the per-thread cache off.
const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";
/// Set while the tunable in the environment is the one [`without_thread_cache`] added.
const ADDED: &str = "BERTH_ADDED_TCACHE_TUNABLE";

/// Turns off glibc's per-thread cache (tcache) for this process. The cache keeps up to 7 freed
/// blocks of each small size per thread, out of `malloc_trim`'s reach; the blocks the daemon's
/// threads freed last, scattered over the heap, kept ~4 MB of it resident after 1000 containers
/// were removed (bench/RESULTS.md). glibc reads its tunables only when a process starts, so this
/// re-execs the process once (same pid, same arguments) with
/// `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` added, and in the re-exec'd process takes it back
/// out of the environment, so children (shims, containers) start with the caller's tunables.
/// Leaves a tcache setting of the caller's own alone. Call first thing in `main`, before any
/// thread exists; if the re-exec fails the process goes on with the cache.
pub fn without_thread_cache() {
    #[cfg(target_env = "gnu")]
    {
        use std::os::unix::process::CommandExt;
        let current = std::env::var("GLIBC_TUNABLES").ok();
        if std::env::var_os(ADDED).is_some() {
            // The re-exec'd process: the cache is off; restore the caller's environment.
            match tunables_without_ours(current.as_deref()) {
                Some(v) => std::env::set_var("GLIBC_TUNABLES", v),
                None => std::env::remove_var("GLIBC_TUNABLES"),
            }
            std::env::remove_var(ADDED);
            return;
        }
        let Some(with) = tunables_with_ours(current.as_deref()) else {
            return;
        };
        let args: Vec<_> = std::env::args_os().collect();
        let Some(arg0) = args.first() else {
            return;
        };
        // The binary's own path, so the process keeps its name (`comm`, which `pgrep`/`pidof`
        // match) rather than "exe"; /proc/self/exe if it was replaced or removed meanwhile.
        let exe = std::env::current_exe()
            .ok()
            .filter(|p| p.is_file())
            .unwrap_or_else(|| "/proc/self/exe".into());
        let err = std::process::Command::new(exe)
            .arg0(arg0)
            .args(&args[1..])
            .env("GLIBC_TUNABLES", with)
            .env(ADDED, "1")
            .exec();
        eprintln!("berth: re-exec without malloc's thread cache failed ({err}); going on with it");
    }
}

/// `GLIBC_TUNABLES` with the cache turned off; `None` if the caller already set a tcache count.
fn tunables_with_ours(current: Option<&str>) -> Option<String> {
    match current.filter(|v| !v.is_empty()) {
        None => Some(TCACHE_OFF.to_string()),
        Some(v) if v.split(':').any(|t| t.starts_with("glibc.malloc.tcache_count=")) => None,
        Some(v) => Some(format!("{v}:{TCACHE_OFF}")),
    }
}

/// The caller's `GLIBC_TUNABLES` again, from the one [`tunables_with_ours`] made.
fn tunables_without_ours(ours: Option<&str>) -> Option<String> {
    let v = ours?;
    let rest = v.strip_suffix(TCACHE_OFF).unwrap_or(v);
    let rest = rest.strip_suffix(':').unwrap_or(rest);
    (!rest.is_empty()).then(|| rest.to_string())
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
    use super::*;

    #[test]
    fn the_tcache_tunable_is_added_to_the_callers_and_taken_out_again() {
        for caller in [None, Some("glibc.malloc.arena_max=2")] {
            let ours = tunables_with_ours(caller).unwrap();
            assert!(ours.split(':').any(|t| t == TCACHE_OFF), "{ours}");
            assert_eq!(tunables_without_ours(Some(&ours)).as_deref(), caller);
        }
        assert_eq!(tunables_with_ours(Some("")).as_deref(), Some(TCACHE_OFF));
        // A caller's own tcache setting wins: no re-exec.
        assert_eq!(tunables_with_ours(Some("glibc.malloc.tcache_count=3")), None);
        assert_eq!(tunables_with_ours(Some("a=1:glibc.malloc.tcache_count=7")), None);
    }

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
