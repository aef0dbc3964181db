//! Container output and logs: back-pressure to attached clients, `logs` (tail, follow, since)
//! across rotated files, and the json-file, local and none log drivers — through the berth CLI,
//! the docker CLI and docker-py.

/// A docker-py script that must print `ok`.
#[track_caller]
fn py_ok(d: &berth_e2e::Daemon, script: &str) {
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok", "stderr: {}", r.stderr);
}

/// Lines in the big-output test: each `%08d` + 991 spaces + newline, 1000 bytes: 100 MB, more
/// than 4096 of the shim's 16 KiB chunks (the old relay's broadcast buffer lost chunks past that).
const BIG_LINES: u32 = 100_000;

#[test]
fn slow_attached_client_gets_every_byte_in_order() {
    let d = daemon!();
    let script = format!(
        r#"
import docker, fcntl, hashlib, os, struct, termios, time
from docker.utils import socket as dsock
c = docker.from_env()
# No log kept: this is about the attach stream (and 100 MB of log would only slow the test).
ct = c.containers.create("busybox", log_config=docker.types.LogConfig(type="none"), command=["awk", 'BEGIN{{s=sprintf("%991s","");for(i=1;i<={BIG_LINES};i++)printf "%08d%s\\n", i, s}}'])
s = c.api.attach_socket(ct.id, params={{"stdout": 1, "stderr": 1, "stream": 1}})
ct.start()
# Read nothing until the container has to wait for us: blocked writing to a full pipe, as it
# is once every buffer on the way (pipe, shim, daemon, socket) is full. Output dropped for a
# slow client would let it run to its end instead. (There is no event for "blocked": this polls
# the kernel's wait channel and the pipe's fill.)
pid = c.api.inspect_container(ct.id)["State"]["Pid"]
seen = []
def stalled():
    with open("/proc/%d/wchan" % pid) as f:
        w = f.read()
    fd = os.open("/proc/%d/fd/1" % pid, os.O_RDONLY | os.O_NONBLOCK)
    try:
        unread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(fd)
    seen.append((w, unread, size))
    # Blocked: writing to the pipe and nobody draining it — the same fill at two looks in a row
    # (how full a pipe is when a writer blocks depends on its write sizes and page packing).
    return w.endswith("pipe_write") and len(seen) > 1 and seen[-2] == seen[-1]
deadline = time.monotonic() + 60
while not stalled():
    assert time.monotonic() < deadline, "the container never had to wait for its reader: %r" % seen[-5:]
    time.sleep(0.01)
want = hashlib.sha256("".join("%08d%s\n" % (i, " " * 991) for i in range(1, {BIG_LINES} + 1)).encode()).hexdigest()
h = hashlib.sha256()
buf = b""
total = 0
while True:
    # Slow at first: small reads with pauses (a slow reader is what is tested: the pause is
    # the point, not a wait for something).
    chunk = dsock.read(s, 4096 if total < 2_000_000 else 65536)
    if not chunk:
        break
    if total < 2_000_000:
        time.sleep(0.001)
    buf += chunk
    while len(buf) >= 8:
        stream, size = struct.unpack(">BxxxL", buf[:8])
        if len(buf) < 8 + size:
            break
        assert stream == 1, stream
        h.update(buf[8:8 + size])
        total += size
        buf = buf[8 + size:]
assert buf == b"", len(buf)
assert total == {BIG_LINES} * 1000, total
assert h.hexdigest() == want, "attach output differs from what the container wrote"
assert ct.wait()["StatusCode"] == 0
ct.remove()
print("ok")
"#
    );
    py_ok(&d, &script);
}

/// Runs `cmd` to its end, failing the test if it has not ended within `secs` (a `logs -f` that
/// hangs would otherwise hang the suite). Returns (exit code, stdout, stderr).
fn ends_within(secs: u64, mut cmd: std::process::Command) -> (i32, String, String) {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => {
            let o = out.unwrap();
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            );
            panic!("{cmd:?} did not end within {secs} s");
        }
    }
}

fn id_of(d: &berth_e2e::Daemon, name: &str) -> String {
    d.berth(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .out()
        .to_string()
}

fn bundle(d: &berth_e2e::Daemon, name: &str) -> std::path::PathBuf {
    d.root.join("data/containers").join(id_of(d, name))
}

fn numbers(s: &str) -> Vec<u32> {
    s.lines()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        .collect()
}

#[test]
fn json_file_max_size_rotates_and_logs_reads_across_files() {
    let d = daemon!();
    d.docker(&[
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "seq",
        "1",
        "5000",
    ])
    .ok();
    let b = bundle(&d, "rot");
    let id = id_of(&d, "rot");
    let log = b.join(format!("{id}-json.log"));
    let rotated = |n: u32| b.join(format!("{id}-json.log.{n}"));
    assert!(log.exists() && rotated(1).exists() && rotated(2).exists());
    assert!(
        !rotated(3).exists(),
        "max-file=3 keeps the current file and two rotated ones"
    );
    for f in [rotated(1), rotated(2)] {
        let n = std::fs::metadata(&f).unwrap().len();
        assert!((10_000..10_200).contains(&n), "{}: {n} bytes", f.display());
    }
    // logs reads the rotated files oldest first, then the current one: the newest lines, in order.
    let all = numbers(&d.docker(&["logs", "rot"]).ok().stdout);
    assert_eq!(all.last(), Some(&5000));
    assert!(all[0] > 1, "the oldest lines were rotated away");
    assert_eq!(all, (all[0]..=5000).collect::<Vec<_>>());
    // A tail that reaches into the rotated files.
    let tail = numbers(
        &d.berth(&["logs", "--tail", &(all.len() - 3).to_string(), "rot"])
            .ok()
            .stdout,
    );
    assert_eq!(tail, (all[0] + 3..=5000).collect::<Vec<_>>());
    assert_eq!(
        numbers(&d.docker(&["logs", "--tail", "2", "rot"]).ok().stdout),
        [4999, 5000]
    );
    // inspect shows the log config as given.
    assert_eq!(
        d.docker(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "rot"])
            .ok()
            .out(),
        r#"{"Type":"json-file","Config":{"max-file":"3","max-size":"10k"}}"#
    );
}

#[test]
fn json_file_compress_gzips_rotated_files_and_logs_reads_them() {
    let d = daemon!();
    d.docker(&[
        "run",
        "--name",
        "gz",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=4",
        "--log-opt",
        "compress=true",
        "busybox",
        "seq",
        "1",
        "3000",
    ])
    .ok();
    let b = bundle(&d, "gz");
    let id = id_of(&d, "gz");
    for n in 1..=3 {
        assert!(b.join(format!("{id}-json.log.{n}.gz")).exists(), "{n}.gz");
        assert!(!b.join(format!("{id}-json.log.{n}")).exists(), "{n} uncompressed");
    }
    let all = numbers(&d.docker(&["logs", "gz"]).ok().stdout);
    assert_eq!(all, (all[0]..=3000).collect::<Vec<_>>());
    // Three full rotated files (~134 lines of 10 kB each) and the current one.
    assert!(all.len() > 3 * 130, "{} lines", all.len());
}

#[test]
fn bad_log_opts_are_refused_with_dockers_messages() {
    let d = daemon!();
    for (opt, msg) in [
        (
            "max-sise=1m",
            "unknown log opt 'max-sise' for json-file log driver",
        ),
        // Values as dockerd reads them when it makes the logger (its start's prefix).
        (
            "max-size=ten",
            "failed to initialize logging driver: invalid size: 'ten'",
        ),
        (
            "max-file=0",
            "failed to initialize logging driver: max-file cannot be less than 1",
        ),
        (
            "compress=true",
            "failed to initialize logging driver: compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
    ] {
        let r = d.docker(&["create", "--log-opt", opt, "busybox", "true"]);
        assert_ne!(r.code, 0, "{opt} was accepted");
        assert!(
            r.stderr.contains(&format!("Error response from daemon: {msg}")),
            "{opt}: {}",
            r.stderr
        );
    }
    let r = d.docker(&["create", "--log-driver", "nosuch", "busybox", "true"]);
    assert!(
        r.stderr
            .contains("Error response from daemon: logger: no log driver named 'nosuch' is registered"),
        "{}",
        r.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "", "nothing was created");
}

#[test]
fn logs_tail_seeks_in_a_big_log() {
    let d = daemon!();
    // 20 000 lines of 1000 bytes: a 20 MB log.
    d.berth(&[
        "run",
        "--name",
        "big",
        "busybox",
        "awk",
        r#"BEGIN{s=sprintf("%991s","");for(i=1;i<=20000;i++)printf "%08d%s\n", i, s}"#,
    ])
    .ok();
    let id = id_of(&d, "big");
    let len = std::fs::metadata(bundle(&d, "big").join(format!("{id}-json.log")))
        .unwrap()
        .len();
    assert!(len > 20_000_000, "{len}");
    let r = d.berth(&["logs", "--tail", "3", "big"]).ok();
    let got: Vec<&str> = r.stdout.lines().map(|l| &l[..8]).collect();
    assert_eq!(got, ["00019998", "00019999", "00020000"]);
    assert!(r.stdout.lines().all(|l| l.len() == 999));
    let r = d.docker(&["logs", "--tail", "1", "-t", "big"]).ok();
    assert!(
        r.stdout.contains("Z 00020000"),
        "{}",
        &r.stdout[..40.min(r.stdout.len())]
    );
    assert_eq!(r.stdout.lines().count(), 1);
}

/// `--tail`, `--since` and `--details` as dockerd reads them (found side by side with dockerd
/// 20.10, scripts/sidebyside/lifecycle-logs.txt).
#[test]
fn logs_options_are_read_as_dockerd_reads_them() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "lo",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo a; echo b >&2; echo c",
    ])
    .ok();
    let logs = |args: &[&str]| {
        let mut a = vec!["logs"];
        a.extend_from_slice(args);
        a.push("lo");
        let r = d.docker(&a).ok();
        (r.stdout, r.stderr)
    };
    // A count that does not parse, or a negative one, is all of it (dockerd), not an error.
    for tail in ["abc", "-1", "all"] {
        assert_eq!(
            logs(&["--tail", tail]),
            ("a\nc\n".into(), "b\n".into()),
            "--tail {tail}"
        );
    }
    assert_eq!(logs(&["--tail", "0"]), (String::new(), String::new()));
    // A far date: the CLI sends its seconds, whose nanoseconds overflow 64 bits.
    assert_eq!(logs(&["--since", "2999-01-01"]), (String::new(), String::new()));
    assert_eq!(logs(&["--until", "2999-01-01"]).0, "a\nc\n");
    // --details: each line after its attributes (none here) and a space; after the timestamp.
    assert_eq!(logs(&["--details"]), (" a\n c\n".into(), " b\n".into()));
    let (out, _) = logs(&["--details", "-t"]);
    assert!(out.lines().all(|l| l.contains("Z  ")), "{out}");
}

#[test]
fn logs_follow_of_an_exited_container_ends() {
    let d = daemon!();
    d.berth(&["run", "--name", "done", "busybox", "seq", "1", "3"])
        .ok();
    let mut c = d.berth_command();
    c.args(["logs", "-f", "done"]);
    let (code, out, _) = ends_within(20, c);
    assert_eq!((code, out.as_str()), (0, "1\n2\n3\n"));
}

#[test]
fn logs_follow_ends_when_the_container_exits_while_it_catches_up() {
    let d = daemon!();
    // A burst (~14 MB of log) and an exit while the follower is still reading the history.
    d.berth(&["run", "-d", "--name", "burst", "busybox", "seq", "1", "200000"])
        .ok();
    let mut c = d.berth_command();
    c.args(["logs", "-f", "burst"]);
    let (code, out, err) = ends_within(60, c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(numbers(&out), (1..=200_000).collect::<Vec<_>>());
}

#[test]
fn logs_follow_reads_across_rotations_and_ends() {
    let d = daemon!();
    // ~5000 paced lines through 20 KiB files: many rotations while following.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "frot",
        "--log-opt",
        "max-size=20k",
        "--log-opt",
        "max-file=50",
        "busybox",
        "awk",
        "BEGIN{for(i=1;i<=5000;i++){print i; fflush(); for(j=0;j<1000;j++);}}",
    ])
    .ok();
    let mut c = d.berth_command();
    c.args(["logs", "-f", "frot"]);
    let (code, out, err) = ends_within(60, c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(numbers(&out), (1..=5000).collect::<Vec<_>>());
    let id = id_of(&d, "frot");
    assert!(
        bundle(&d, "frot").join(format!("{id}-json.log.10")).exists(),
        "the log rotated"
    );
    // With few files kept, following still ends (what rotated away unread is skipped, as Docker does).
    d.docker(&[
        "run",
        "-d",
        "--name",
        "frot2",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "seq",
        "1",
        "20000",
    ])
    .ok();
    let mut c = d.docker_command();
    c.args(["logs", "-f", "frot2"]);
    let (code, out, err) = ends_within(60, c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(numbers(&out).last(), Some(&20000));
}

#[test]
fn log_driver_none_keeps_no_log_and_logs_says_so() {
    let d = daemon!();
    d.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ])
    .ok();
    let r = d.docker(&["logs", "quiet"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("Error response from daemon: configured logging driver does not support reading"),
        "{}",
        r.stderr
    );
    let files: Vec<String> = std::fs::read_dir(bundle(&d, "quiet"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !files.iter().any(|f| f.contains("log") && f != "runtime.log"),
        "{files:?}"
    );
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}}|{{.LogPath}}",
            "quiet"
        ])
        .ok()
        .out(),
        "none|"
    );
    // Attached output is unaffected.
    assert_eq!(
        d.docker(&["run", "--rm", "--log-driver", "none", "busybox", "echo", "hi"])
            .ok()
            .out(),
        "hi"
    );
}

#[test]
fn log_driver_local_writes_dockers_format_and_logs_reads_it() {
    let d = daemon!();
    d.docker(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=10k",
        "busybox",
        "sh",
        "-c",
        "seq 1 3000; echo err >&2",
    ])
    .ok();
    let dir = bundle(&d, "loc").join("local-logs");
    let cur = dir.join("container.log");
    assert!(cur.exists());
    // Default max-file 5 with compression: four gzipped rotated files.
    for n in 1..=4 {
        assert!(dir.join(format!("container.log.{n}.gz")).exists(), "{n}.gz");
    }
    assert!(!dir.join("container.log.5.gz").exists());
    // Every record is framed by its length, before and after.
    let b = std::fs::read(&cur).unwrap();
    let mut rest = &b[..];
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert_eq!(rest[4 + n..8 + n], rest[..4]);
        rest = &rest[8 + n..];
    }
    let out = d.docker(&["logs", "loc"]).ok();
    assert_eq!(out.stderr, "err\n");
    let all = numbers(&out.stdout);
    assert_eq!(all, (all[0]..=3000).collect::<Vec<_>>());
    assert_eq!(
        numbers(&d.docker(&["logs", "--tail", "3", "loc"]).ok().stdout),
        [2999, 3000]
    );
    let t = d.docker(&["logs", "-t", "--tail", "1", "loc"]).ok();
    assert!(t.stderr.ends_with("Z err\n"), "{}", t.stderr);
    let mut c = d.docker_command();
    c.args(["logs", "-f", "--tail", "2", "loc"]);
    let (code, out, err) = ends_within(20, c);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "3000\n", "err\n"));
    assert_eq!(d.docker(&["inspect", "-f", "{{.LogPath}}", "loc"]).ok().out(), "");
}

#[test]
fn docker_py_log_drivers_and_options() {
    let d = daemon!();
    py_ok(
        &d,
        r#"
import docker, time
from docker.types import LogConfig
c = docker.from_env()
# json-file with rotation: logs(tail=...) reads across the rotated files.
lc = LogConfig(type="json-file", config={"max-size": "10k", "max-file": "3"})
ct = c.containers.run("busybox", ["seq", "1", "5000"], log_config=lc, detach=True)
assert ct.wait()["StatusCode"] == 0
assert ct.logs(tail=2) == b"4999\n5000\n", ct.logs(tail=2)
lines = ct.logs().split()
assert lines[-1] == b"5000" and int(lines[0]) > 1, (lines[0], lines[-1])
assert [int(x) for x in lines] == list(range(int(lines[0]), 5001))
ct.reload()
assert ct.attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}, ct.attrs["HostConfig"]["LogConfig"]
# none: nothing to read, Docker's 501.
ct = c.containers.run("busybox", ["echo", "hi"], log_config=LogConfig(type="none"), detach=True)
ct.wait()
try:
    ct.logs()
    raise SystemExit("logs of a none container succeeded")
except docker.errors.APIError as e:
    assert e.status_code == 501, e.status_code
    assert "configured logging driver does not support reading" in str(e), str(e)
# local: read back with tail, since and timestamps.
ct = c.containers.run("busybox", ["sh", "-c", "echo one; echo two"], log_config=LogConfig(type="local"), detach=True)
ct.wait()
assert ct.logs() == b"one\ntwo\n", ct.logs()
assert ct.logs(tail=1) == b"two\n"
ts = ct.logs(timestamps=True).split(b"\n")[0]
assert ts.endswith(b"Z one"), ts
assert ct.logs(since=int(time.time()) + 60) == b""
# An unknown driver: Docker's 400 at create.
try:
    c.containers.create("busybox", ["true"], log_config=LogConfig(type="nosuch"))
    raise SystemExit("created with an unknown log driver")
except docker.errors.APIError as e:
    assert e.status_code == 400, e.status_code
    assert "logger: no log driver named 'nosuch' is registered" in str(e), str(e)
print("ok")
"#,
    );
}
