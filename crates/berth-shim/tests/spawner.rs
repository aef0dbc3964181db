//! `berth-shim --spawner`: the daemon's helper that starts shims (berth_sys::spawn).

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_sys::spawn::{Client, Request};

fn children(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `program args…` through the spawner; returns what it wrote to stdout (up to EOF).
fn run(client: &Client, program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let (in_r, _in_w) = rustix::pipe::pipe().unwrap();
    let (out_r, out_w) = rustix::pipe::pipe().unwrap();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    client
        .spawn(&Request {
            program: Path::new(program),
            args: &args,
            env,
            stdin: in_r.as_fd(),
            stdout: out_w.as_fd(),
        })
        .unwrap();
    drop(out_w);
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_spawner_starts_programs_with_their_stdio_and_env_reaps_them_and_leaves_at_eof() {
    let (client, mut child) =
        Client::start(Path::new(env!("CARGO_BIN_EXE_berth-shim")), &["--spawner"]).unwrap();
    let out = run(
        &client,
        "/bin/sh",
        &["-c", "echo \"$BERTH_SPAWN_TEST $$\"; ps -o pgid= -p $$"],
        &[("BERTH_SPAWN_TEST", "hello")],
    );
    let mut words = out.split_whitespace();
    assert_eq!(words.next(), Some("hello"));
    // Its own process group.
    let pid = words.next().unwrap();
    if let Some(pgid) = words.next() {
        assert_eq!(pgid, pid, "{out}");
    }
    // What exited is reaped: no zombie stays among the spawner's children.
    eventually("no child left", || children(child.id()).trim().is_empty());
    // A program that cannot start: its stdout is closed with nothing written; the spawner goes on.
    assert_eq!(run(&client, "/nonexistent/program", &[], &[]), "");
    assert_eq!(run(&client, "/bin/sh", &["-c", "echo again"], &[]), "again\n");
    // The daemon's end closed: the spawner exits.
    drop(client);
    assert!(child.wait().unwrap().success());
}
