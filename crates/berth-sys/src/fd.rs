//! Inherited file descriptors named by number (e.g. `BERTH_READY_FD`).

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};

/// Writes `msg` to the inherited descriptor `fd` and closes it, so that processes started later
/// (shims) do not hold it open. Does nothing if `fd` is not an open descriptor.
pub fn write_and_close_inherited(fd: i32, msg: &[u8]) {
    if fd < 3 {
        return;
    }
    // Only take ownership of a descriptor that is open in this process.
    if !std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists() {
        return;
    }
    // SAFETY: `fd` was handed to this process by its parent through the environment, is open (checked
    // above), is not one of the standard streams, and nothing else in this process owns it; it is
    // consumed exactly once here and closed when the File drops.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(owned);
    let _ = f.write_all(msg);
}
