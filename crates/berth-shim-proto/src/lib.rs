//! The protocol between `berthd` and `berth-shim`, version [`VERSION`].
//!
//! ## Life of a shim
//! 1. The daemon spawns `berth-shim --bundle <dir>` (`<data-root>/containers/<id>/`) in its own
//!    process group, with [`WAIT_ENV`] set, stdin and stdout on pipes. The shim loads and waits.
//! 2. The daemon writes the bundle directory: `config.json` (the OCI spec, `root.path` =
//!    `<bundle>/rootfs`) and `shim.json` ([`ShimConfig`]), then writes one byte to the shim's
//!    stdin (EOF instead, if the start failed: the shim exits). The shim mounts the rootfs ([`ShimConfig::rootfs`]), creates the
//!    container (process created, not yet exec'd), listens on [`ShimConfig::socket`], writes one
//!    [`Ready`] JSON line to stdout and closes it. On failure it writes `Ready { error: Some(..) }`,
//!    unmounts, writes the exit file and exits.
//! 3. The daemon connects, sends [`Request::Attach`] (output is not replayed, so it attaches before
//!    starting), then [`Request::Start`] on a second connection. The shim execs the user's process.
//! 4. On exit the shim reaps the process, writes [`ExitStatus`] to [`ShimConfig::exit_file`]
//!    (temp → fsync → rename), sends a [`FrameKind::Exit`] frame on every attach stream, closes
//!    them, unmounts the rootfs, removes the cgroup and the socket, and exits.
//! 5. A restarted daemon finds live shims by their socket and dead ones by their exit file.
//!
//! ## Wire format
//! Every message in both directions is a frame: `[kind: u8][len: u32 big-endian][payload]`.
//! A connection starts with one [`FrameKind::Request`] frame (JSON [`Request`]) answered by one
//! [`FrameKind::Response`] frame (JSON [`Response`]). After an `Attach` response the connection stays
//! open: the shim sends `Stdout`/`Stderr` frames (raw bytes) and finally one `Exit` frame (JSON
//! [`ExitStatus`]); the daemon may send `Stdin` frames, and an empty `Stdin` frame means EOF (the
//! container's stdin is closed when the container was created with `stdin_once`).

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

pub mod logfile;

pub use logfile::{LogConfig, LogDriver};

/// Set (to anything) in a shim's environment by a daemon that starts it before its bundle is
/// written: the shim waits for one byte on its stdin before it reads `shim.json`, and exits
/// without doing anything on EOF (the start failed, or the daemon is gone).
pub const WAIT_ENV: &str = "BERTH_SHIM_WAIT";

/// Protocol version; bumped on any incompatible change.
pub const VERSION: u32 = 1;

/// Largest payload a frame may carry.
pub const MAX_FRAME: usize = 1 << 20;

/// What the daemon tells the shim about the container it is to run (`<bundle>/shim.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShimConfig {
    /// Protocol version the daemon speaks.
    pub version: u32,
    /// Full container ID.
    pub id: String,
    /// Mounts that, applied in order at `<bundle>/rootfs`, give the container's root filesystem.
    pub rootfs: Vec<berth_types::Mount>,
    /// Unix socket the shim listens on.
    pub socket: String,
    /// The current log file the shim appends container output to (see [`logfile`]); empty for
    /// none.
    pub log_path: String,
    /// Where the shim records the exit status.
    pub exit_file: String,
    /// File for the runtime's own diagnostics (never the container's stderr).
    pub runtime_log: String,
    /// Allocate a pty (docker `-t`); the shim holds the master.
    pub tty: bool,
    /// Keep the container's stdin open for attached writers (docker `-i`).
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached writer sends EOF.
    pub stdin_once: bool,
    /// `-u` as the user gave it (`name`, `uid`, `uid:gid`, `name:group`), resolved by the shim
    /// against the container's /etc/passwd and /etc/group; empty means root.
    pub user: String,
    /// `--group-add`: more groups for the container's processes (names from the container's
    /// /etc/group, or numeric gids), resolved by the shim like `user`; execs get them too.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// Initial console size (height, width) when `tty`.
    pub console_size: Option<(u16, u16)>,
    /// Bring up `lo` in the container's new network namespace before the process starts.
    pub loopback_up: bool,
    /// Directory of compiled seccomp programs shared by all containers (`<data-root>/seccomp`);
    /// empty means the bundle.
    #[serde(default)]
    pub seccomp_cache: String,
    /// Root of the runtime's state (`<exec-root>/runtime`, on tmpfs: gone after a reboot, like the
    /// processes it describes); the container's state is `<runtime_root>/<id>`. Empty means
    /// `<bundle>/runtime`.
    #[serde(default)]
    pub runtime_root: String,
    /// Log driver and rotation (`--log-driver`, `--log-opt`); absent means json-file, unrotated.
    #[serde(default)]
    pub log: LogConfig,
    /// Mount the rootfs in the host's mount namespace, as before berth gave each shim its own:
    /// needed when a bind asks for `shared`/`rshared` propagation, whose mounts made in the
    /// container must reach the host's peer group (a private namespace would make it a slave).
    #[serde(default)]
    pub host_mount_ns: bool,
    /// The container's files die with the host (`--rm`): the exit file is written atomically but
    /// without fsyncs (docs/design/crash-consistency.md, "Volatile state").
    #[serde(default)]
    pub volatile: bool,
    /// Directory of read-only directories every container binds instead of mounting a tmpfs of
    /// its own (`<exec-root>/shared`): `empty/` over masked directories, `cgroup/` (one empty
    /// directory per v1 hierarchy) under a read-only `/sys/fs/cgroup`. Each superblock a
    /// container adds costs kernel memory in every memory cgroup of the host
    /// (docs/design/performance.md, "Superblocks"); empty means a tmpfs per mount, as before.
    #[serde(default)]
    pub shared_dir: String,
    /// The daemon removes the container's cgroups itself once exits pause (its cgroup reaper):
    /// the shim leaves them in place when they are empty at exit, and removes them as before
    /// when anything is left in them. Removing a memory cgroup makes the kernel do work that
    /// grows with the number of file systems on the host (docs/design/performance.md, "Removing
    /// memory cgroups"). False (an older daemon): the shim removes them.
    #[serde(default)]
    pub keep_empty_cgroup: bool,
    /// The directory of the daemon's network namespace pins (`<exec-root>/netns`), a mount of
    /// its own: the shim detaches it from its mount namespace and keeps only the container's own
    /// pin (`berth_sys::netns::keep_only`), instead of a copy of every bridged container's.
    /// Empty: the pins are not on such a mount (an older daemon), left as they are.
    #[serde(default)]
    pub netns_dir: String,
}

/// The single line the shim writes to its stdout once the container is created (or failed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ready {
    /// Host pid of the container's init process.
    pub pid: Option<i32>,
    /// Docker-style message when creation failed, e.g. `exec: "x": executable file not found in $PATH`.
    pub error: Option<String>,
    /// Exit code the failure maps to (127 not found, 126 cannot execute), when it is one of those.
    pub exit_code: Option<i32>,
    /// The failure is one dockerd finds itself before the runtime is involved (`-u`'s user or
    /// `--group-add`'s groups missing from the image, a working directory that cannot be made),
    /// which it reports bare, not inside containerd's "failed to create task" wrapper.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bare: bool,
}

/// A request from the daemon.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Stream output (and accept stdin when `stdin`) on this connection.
    Attach { stdin: bool },
    /// Exec the container's process (it was created at shim start).
    Start,
    /// Send a signal to the container's init (or to every process in it when `all`).
    Kill { signal: i32, all: bool },
    /// Resize the pty.
    Resize { height: u16, width: u16 },
    /// Report the current state.
    State,
    /// Run an extra process in the running container (`docker exec`). The connection then streams
    /// it like `Attach`: the [`Response`] (sent before any output frame) carries the exec'd
    /// process's `pid`, or `error` + `exit_code` (127 not found / 126 not executable) when it could
    /// not start, and then no frames follow. Otherwise the shim sends `Stdout`/`Stderr` frames (raw
    /// pty bytes as `Stdout` when `tty`) and finally one `Exit` frame (JSON [`ExitStatus`]); the
    /// daemon may send `Stdin` frames, an empty one meaning EOF (the exec's stdin is closed).
    /// The exec's output goes only to its connection, never to the container's log; if the
    /// connection drops the process keeps running and its output is discarded.
    Exec { process: ExecProcess },
    /// Resize the pty of a running exec.
    ResizeExec {
        exec_id: String,
        height: u16,
        width: u16,
    },
    /// Freeze every process of the container (cgroup freezer); an error when it is not running.
    Pause,
    /// Thaw a paused container.
    Resume,
}

/// A process to run in a running container ([`Request::Exec`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExecProcess {
    /// The daemon's exec ID (64 hex).
    pub exec_id: String,
    pub args: Vec<String>,
    /// Full environment (the daemon merges the container's env and `exec -e`).
    pub env: Vec<String>,
    /// Working directory; empty means the container's.
    pub cwd: String,
    /// Like [`ShimConfig::user`]; empty means the container's user.
    pub user: String,
    /// Allocate a pty for the exec.
    pub tty: bool,
    /// Keep a stdin pipe (`exec -i`).
    pub stdin: bool,
    /// All (host-clamped) capabilities, no seccomp.
    pub privileged: bool,
    /// Initial console size (height, width) when `tty`.
    pub console_size: Option<(u16, u16)>,
}

/// The shim's answer to a [`Request`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// Set when the request failed.
    pub error: Option<String>,
    /// Exit code a failed `Start` maps to (127/126), when it is one of those.
    pub exit_code: Option<i32>,
    /// For `Start` and `State`: host pid of the container's init.
    pub pid: Option<i32>,
    /// For `State`: `created`, `running`, `paused` or `exited`.
    pub status: Option<String>,
    /// For `State` once exited.
    pub exit: Option<ExitStatus>,
}

/// How the container's process ended (`<bundle>/exit.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// RFC 3339 (nanoseconds, UTC) time the process was reaped.
    pub finished_at: String,
    /// The memory cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// Set when the process never ran (creation or exec failure).
    pub error: Option<String>,
}

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Request = 1,
    Response = 2,
    Stdin = 10,
    Stdout = 11,
    Stderr = 12,
    Exit = 13,
}

impl FrameKind {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Request,
            2 => Self::Response,
            10 => Self::Stdin,
            11 => Self::Stdout,
            12 => Self::Stderr,
            13 => Self::Exit,
            _ => return None,
        })
    }
}

/// Encodes a frame header for a payload of `len` bytes.
pub fn header(kind: FrameKind, len: usize) -> [u8; 5] {
    let l = (len as u32).to_be_bytes();
    [kind as u8, l[0], l[1], l[2], l[3]]
}

/// Decodes a frame header; errors on an unknown kind or an oversized length.
pub fn parse_header(h: [u8; 5]) -> io::Result<(FrameKind, usize)> {
    let kind = FrameKind::from_u8(h[0])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unknown frame kind {}", h[0])))?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is too large"),
        ));
    }
    Ok((kind, len))
}

/// Writes one frame (header and payload in a single write where possible).
pub fn write_frame(w: &mut impl Write, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(5 + payload.len());
    buf.extend_from_slice(&header(kind, payload.len()));
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Reads one frame; `Ok(None)` on a clean EOF before the header.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut h = [0u8; 5];
    let mut got = 0;
    while got < 5 {
        match r.read(&mut h[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let (kind, len) = parse_header(h)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

/// Writes a JSON message as one frame.
pub fn write_json<T: Serialize>(w: &mut impl Write, kind: FrameKind, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    write_frame(w, kind, &body)
}

/// Sends a request and reads its response on a fresh blocking connection.
pub fn call(stream: &mut (impl Read + Write), req: &Request) -> io::Result<Response> {
    write_json(stream, FrameKind::Request, req)?;
    match read_frame(stream)? {
        Some((FrameKind::Response, body)) => serde_json::from_slice(&body).map_err(io::Error::other),
        Some((k, _)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected response, got {k:?}"),
        )),
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_json(
            &mut buf,
            FrameKind::Request,
            &Request::Kill {
                signal: 15,
                all: false,
            },
        )
        .unwrap();
        write_frame(&mut buf, FrameKind::Stdout, b"hi\n").unwrap();
        let mut r = &buf[..];
        let (k, body) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(k, FrameKind::Request);
        let req: Request = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            req,
            Request::Kill {
                signal: 15,
                all: false
            }
        );
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FrameKind::Stdout, b"hi\n".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn oversized_and_unknown_frames_are_rejected() {
        assert!(parse_header([99, 0, 0, 0, 1]).is_err());
        assert!(parse_header(header(FrameKind::Stdout, MAX_FRAME + 1)).is_err());
    }

    #[test]
    fn request_json_is_tagged() {
        let s = serde_json::to_string(&Request::Resize {
            height: 30,
            width: 100,
        })
        .unwrap();
        assert_eq!(s, r#"{"op":"resize","height":30,"width":100}"#);
    }

    #[test]
    fn exec_request_round_trips() {
        let req = Request::Exec {
            process: ExecProcess {
                exec_id: "ab".into(),
                args: vec!["true".into()],
                tty: true,
                ..Default::default()
            },
        };
        let s = serde_json::to_string(&req).unwrap();
        assert!(s.starts_with(r#"{"op":"exec","process":{"exec_id":"ab""#), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), req);
        assert_eq!(
            serde_json::to_string(&Request::Pause).unwrap(),
            r#"{"op":"pause"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Resume).unwrap(),
            r#"{"op":"resume"}"#
        );
        let r = Request::ResizeExec {
            exec_id: "ab".into(),
            height: 1,
            width: 2,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"op":"resize_exec","exec_id":"ab","height":1,"width":2}"#
        );
    }
}
