//! Who may drive this shim: only processes of the uid it runs as — its daemon's, since the daemon
//! spawns the shim as itself. The socket's file mode already keeps others out, but a mode is one
//! `chmod` (or umask) away from open; the peer's credentials (`SO_PEERCRED`, taken by the kernel
//! at `connect`) are not. A connection from another uid is closed unanswered.

use std::os::fd::AsFd;

/// Whether the peer of the connected Unix socket `conn` runs as our effective uid. A socket whose
/// credentials cannot be read is refused.
pub fn is_own_uid(conn: impl AsFd) -> bool {
    match rustix::net::sockopt::socket_peercred(conn) {
        Ok(cred) => cred.uid == rustix::process::geteuid(),
        Err(e) => {
            eprintln!("berth-shim: peer credentials: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_of_our_own_uid_is_accepted() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(is_own_uid(&a));
        assert!(is_own_uid(&b));
    }

    #[test]
    fn a_socket_without_credentials_is_refused() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!is_own_uid(&s));
    }
}
