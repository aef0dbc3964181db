//! Hijacked attach/exec sessions: stdcopy frame demultiplexing, raw terminal mode, stdin copying
//! with detach keys, terminal resize and the signal proxy.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use rustix::termios::{self, OptionalActions, Termios};

use crate::client::{path_escape, Client, Query};

/// Copies docker's multiplexed stream (`[stream u8][0 0 0][len u32 BE][payload]`) to stdout/stderr.
/// Frames may be split anywhere. Stream 3 (systemerr) ends the copy with its text as the error.
pub fn demux<R: Read, O: Write, E: Write>(mut r: R, out: &mut O, err: &mut E) -> io::Result<()> {
    let mut hdr = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // Read a full header; EOF before any byte is a clean end.
        let mut got = 0;
        while got < 8 {
            let n = match r.read(&mut hdr[got..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return if got == 0 {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
            got += n;
        }
        let mut len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        let stream = hdr[0];
        let mut sys = Vec::new();
        while len > 0 {
            let want = len.min(buf.len());
            let n = r.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match stream {
                0 | 1 => {
                    out.write_all(&buf[..n])?;
                }
                2 => {
                    err.write_all(&buf[..n])?;
                }
                3 => sys.extend_from_slice(&buf[..n]),
                s => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unrecognized input header: {s}"),
                    ))
                }
            }
            len -= n;
        }
        out.flush()?;
        err.flush()?;
        if stream == 3 {
            return Err(io::Error::other(String::from_utf8_lossy(&sys).into_owned()));
        }
    }
}

/// Copies a raw (TTY) stream to stdout, flushing as bytes arrive.
pub fn copy_raw<R: Read, O: Write>(mut r: R, out: &mut O) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

/// Puts stdin's terminal into raw mode; restores the saved mode when dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    pub fn enable() -> Option<RawTerminal> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

/// Turns off echo on stdin's terminal (a password prompt); restores it when dropped.
pub fn disable_echo() -> Option<RawTerminal> {
    let stdin = io::stdin();
    let saved = termios::tcgetattr(&stdin).ok()?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(termios::LocalModes::ECHO);
    termios::tcsetattr(&stdin, OptionalActions::Now, &quiet).ok()?;
    Some(RawTerminal { saved })
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
    }
}

pub fn stdin_is_tty() -> bool {
    termios::isatty(io::stdin())
}

pub fn stdout_is_tty() -> bool {
    termios::isatty(io::stdout())
}

pub fn stderr_is_tty() -> bool {
    termios::isatty(io::stderr())
}

/// (height, width) of the terminal on stdout.
pub fn term_size() -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(io::stdout()).ok()?;
    Some((ws.ws_row, ws.ws_col))
}

/// Parses docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a`, `ctrl-@`).
pub fn parse_detach_keys(s: &str) -> anyhow::Result<Vec<u8>> {
    berth_types::keys::parse(s).map_err(anyhow::Error::msg)
}

/// Copies stdin to the hijacked socket, watching for the detach sequence. At EOF the socket is
/// half-closed (shutdown write), which is not a detach. On detach it sets `detached` and shuts the
/// socket down both ways so the output copy ends.
pub fn spawn_stdin_copy(sock: UnixStream, keys: Vec<u8>, detached: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut sock = sock;
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
        let mut matched = 0usize;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if !keys.is_empty() && b == keys[matched] {
                    matched += 1;
                    if matched == keys.len() {
                        detached.store(true, Ordering::SeqCst);
                        let _ = sock.write_all(&out);
                        let _ = sock.shutdown(Shutdown::Both);
                        return;
                    }
                    continue;
                }
                if matched > 0 {
                    out.extend_from_slice(&keys[..matched]);
                    matched = 0;
                }
                out.push(b);
            }
            if sock.write_all(&out).is_err() {
                return;
            }
        }
        let _ = sock.shutdown(Shutdown::Write);
    });
}

/// What a resize or signal applies to.
#[derive(Clone)]
pub enum Target {
    Container(String),
    Exec(String),
}

pub fn resize(client: &Client, target: &Target) {
    let Some((h, w)) = term_size() else { return };
    let mut q = Query::new();
    q.add("h", h.to_string()).add("w", w.to_string());
    let path = match target {
        Target::Container(id) => format!("/containers/{}/resize{}", path_escape(id), q.encode()),
        Target::Exec(id) => format!("/exec/{}/resize{}", path_escape(id), q.encode()),
    };
    let _ = client.post(&path);
}

const PROXIED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Blocks the proxied signals in this thread (call before spawning other threads, which inherit
/// the mask) and handles them on a thread reading a signalfd: SIGWINCH resizes the TTY; with
/// `proxy`, every signal is sent to the container with `POST /containers/ID/kill?signal=`.
pub fn spawn_signal_handler(client: &Client, target: Target, tty_resize: bool, proxy: bool) {
    let mut mask = SigSet::empty();
    if proxy {
        for s in PROXIED {
            mask.add(s);
        }
    }
    if tty_resize {
        mask.add(Signal::SIGWINCH);
    }
    if mask == SigSet::empty() || mask.thread_block().is_err() {
        return;
    }
    let Ok(sfd) = SignalFd::new(&mask) else { return };
    let client = client.clone();
    std::thread::spawn(move || {
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if sig == Signal::SIGWINCH && tty_resize {
                resize(&client, &target);
            }
            if proxy {
                if let Target::Container(id) = &target {
                    let name = sig.as_str().trim_start_matches("SIG");
                    let _ = client.post(&format!("/containers/{}/kill?signal={name}", path_escape(id)));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per read, to split frames everywhere.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || b.is_empty() {
                return Ok(0);
            }
            b[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn frames_are_demultiplexed_even_when_split() {
        let raw = b"\x02\0\0\0\0\0\0\x04err\n\x01\0\0\0\0\0\0\x04out\n\x01\0\0\0\0\0\0\x00";
        let (mut o, mut e) = (Vec::new(), Vec::new());
        demux(Trickle(raw), &mut o, &mut e).unwrap();
        assert_eq!(o, b"out\n");
        assert_eq!(e, b"err\n");
    }

    #[test]
    fn truncated_frame_is_an_error_and_systemerr_surfaces() {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        assert!(demux(&b"\x01\0\0\0\0\0\0\x09abc"[..], &mut o, &mut e).is_err());
        let err = demux(&b"\x03\0\0\0\0\0\0\x04boom"[..], &mut o, &mut e).unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-@,a").unwrap(), vec![0, b'a']);
        assert!(parse_detach_keys("ctrl-pp").is_err());
    }
}
