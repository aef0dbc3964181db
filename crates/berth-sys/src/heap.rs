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

/// The `GLIBC_TUNABLES` to start a child (a shim) with so that its malloc has no per-thread
/// cache: the blocks it keeps are spread over a small heap and hold its pages resident after
/// `malloc_trim` (16 kB of an idle shim's ~95 kB, bench/RESULTS.md). `None` when this process's
/// environment already sets a tcache count (the child inherits that).
pub fn child_tunables_without_thread_cache() -> Option<String> {
    tunables_with_ours(std::env::var("GLIBC_TUNABLES").ok().as_deref())
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

/// Lets the kernel take back the whole pages inside `buf`, scratch space whose contents no
/// longer matter (`madvise(MADV_DONTNEED)`): they read as zeros afterwards and take no memory
/// until written again. For a buffer kept across idle spells (a shim's 16 kB read buffer).
pub fn discard(buf: &mut [u8]) {
    let page = page_size();
    let start = (buf.as_ptr() as usize).next_multiple_of(page);
    let end = (buf.as_ptr() as usize + buf.len()) / page * page;
    if end > start {
        // SAFETY: [start, end) lies inside `buf`, which we borrow exclusively; it is private
        // anonymous heap memory, which MADV_DONTNEED refills with zeros on the next touch, and
        // any byte value is a valid u8.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Drops this process's page-table entries for the read-only, file-backed parts of its program
/// and libraries (code, constants, unwind tables): `madvise(MADV_DONTNEED)` on every loaded
/// object's non-writable `PT_LOAD` segment. The pages stay in the page cache; what is used again
/// is mapped again by a minor fault, without disk I/O. RSS counts every page a process has mapped,
/// and the kernel maps file pages 64 kB around each fault (`fault_around_bytes`), so start-up code
/// and code run once (a bulk `rm -f`) kept ~8 MB of berthd's ~11 MB of mapped code resident that
/// no later request touched (docs/design/performance.md, "Code pages"). Writable segments, where
/// relocated data lives in private copies, are never touched: dropping those would lose the copies.
/// Call when idle; the next request pays a few hundred minor faults (~0.1 ms).
pub fn release_code_pages() -> usize {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        let mut dropped = 0usize;
        // SAFETY: dl_iterate_phdr calls back with valid pointers to each object's program headers,
        // which stay valid during the callback; `data` is the `usize` above, live for the call.
        unsafe {
            libc::dl_iterate_phdr(Some(each_object), (&mut dropped as *mut usize).cast());
        }
        dropped
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    0
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: see release_code_pages; the loader passes a valid info for the duration of the call.
    let info = unsafe { &*info };
    let name = if info.dlpi_name.is_null() {
        &[][..]
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    // The vDSO is the kernel's own mapping, not a file.
    if name.windows(4).any(|w| w == b"vdso") || info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: the loader gives dlpi_phnum headers at dlpi_phdr.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    // An object with text relocations has private, modified copies of code pages: leave it be.
    if has_text_relocations(info, headers) {
        return 0;
    }
    let page = page_size();
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 || h.p_memsz == 0 {
            continue;
        }
        // Whole pages inside the segment only: a page shared with a writable neighbour stays.
        let start = (info.dlpi_addr as usize + h.p_vaddr as usize).next_multiple_of(page);
        let end = (info.dlpi_addr as usize + (h.p_vaddr + h.p_memsz) as usize) / page * page;
        if end <= start {
            continue;
        }
        // SAFETY: the range is a read-only, file-backed part of a loaded object; dropping its
        // page-table entries only makes the next access fault the same file pages in again.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) } == 0 {
            // SAFETY: data is the &mut usize release_code_pages passed.
            unsafe { *data.cast::<usize>() += end - start };
        }
    }
    0
}

/// Whether the object's dynamic section asks for relocations in read-only segments.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn has_text_relocations(info: &libc::dl_phdr_info, headers: &[libc::Elf64_Phdr]) -> bool {
    const DT_NULL: i64 = 0;
    const DT_TEXTREL: i64 = 22;
    const DT_FLAGS: i64 = 30;
    const DF_TEXTREL: u64 = 0x4;
    let Some(d) = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC) else {
        return false;
    };
    /// `Elf64_Dyn`: a tag and its value.
    #[repr(C)]
    struct Dyn {
        d_tag: i64,
        d_val: u64,
    }
    let mut p = (info.dlpi_addr as usize + d.p_vaddr as usize) as *const Dyn;
    // SAFETY: PT_DYNAMIC of a loaded object is mapped and ends with DT_NULL.
    unsafe {
        loop {
            let e = &*p;
            match e.d_tag {
                DT_NULL => return false,
                DT_TEXTREL => return true,
                DT_FLAGS if e.d_val & DF_TEXTREL != 0 => return true,
                _ => {}
            }
            p = p.add(1);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discard_zeroes_the_whole_pages_inside_and_keeps_the_edges() {
        let page = page_size();
        // Not page-aligned on purpose: the partial pages at both ends must keep their bytes.
        let mut v = vec![7u8; 4 * page + 100];
        let buf = &mut v[50..];
        discard(buf);
        let start = (buf.as_ptr() as usize).next_multiple_of(page) - buf.as_ptr() as usize;
        let end = (buf.as_ptr() as usize + buf.len()) / page * page - buf.as_ptr() as usize;
        assert!(end > start);
        assert!(buf[..start].iter().all(|b| *b == 7));
        assert!(buf[start..end].iter().all(|b| *b == 0));
        assert!(buf[end..].iter().all(|b| *b == 7));
    }

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

    fn rss_file_kb() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let l = s.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn releasing_code_pages_unmaps_them_and_the_code_still_runs() {
        let before = rss_file_kb();
        let dropped = release_code_pages();
        let after = rss_file_kb();
        assert!(dropped > 0, "nothing released");
        assert!(after < before, "RssFile {before} kB → {after} kB");
        // Code and constants come back on use: formatting, unwinding tables, the allocator.
        let r = std::panic::catch_unwind(|| format!("{:?}", vec![1.5f64; 3]));
        assert_eq!(r.unwrap(), "[1.5, 1.5, 1.5]");
    }
}
