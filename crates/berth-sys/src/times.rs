//! Phase timestamps for tracing where a command's time goes (docs/design/performance.md): with
//! `BERTH_TIMES=<file>` in the environment of the CLI, berthd (and so its shims, their creators
//! and the containers' inits), each appends `<pid> <label> <CLOCK_MONOTONIC ns>` lines to that
//! file. Off otherwise: one environment lookup at start, then a load per mark.

use std::io::Write;
use std::sync::OnceLock;

static FILE: OnceLock<Option<std::fs::File>> = OnceLock::new();

/// Opens the file named by `BERTH_TIMES`, if any (call it before anything forks).
pub fn init() {
    FILE.get_or_init(|| {
        let path = std::env::var_os("BERTH_TIMES")?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
}

/// Appends one timestamp line when enabled.
pub fn mark(label: &str) {
    if let Some(Some(mut f)) = FILE.get().map(Option::as_ref) {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to fill in.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
        let ns = t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128;
        // One write per line: the processes of a start append to the same file.
        let _ = f.write_all(format!("{} {label} {ns}\n", std::process::id()).as_bytes());
    }
}
