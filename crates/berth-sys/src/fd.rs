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

/// Bytes written to the stream socket `fd` that its peer has not read yet (`SIOCOUTQ`; for a Unix
/// socket the data stays charged to the sender until the receiver consumes it).
pub fn unread_by_peer(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is a valid open descriptor for the duration of the borrow, and TIOCOUTQ (alias
    // SIOCOUTQ) writes exactly one c_int through the pointer, which points to a live local.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn unread_by_peer_counts_until_the_peer_reads() {
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(super::unread_by_peer(a.as_fd()).unwrap(), 0);
        a.write_all(b"hello").unwrap();
        assert!(super::unread_by_peer(a.as_fd()).unwrap() >= 5);
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(super::unread_by_peer(a.as_fd()).unwrap(), 0);
    }
}
