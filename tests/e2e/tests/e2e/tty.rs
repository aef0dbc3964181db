//! Terminals: `run -it`, `exec -it` and `attach`, driven through a real pty (util-linux
//! `script` allocates it), with berth and with the real docker CLI.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `cmd` (a shell command line) on a fresh pty of `rows`×`cols`, typing `input`; returns
/// the exit code and everything the terminal showed.
fn on_pty(d: &berth_e2e::Daemon, cmd: &str, input: &[u8]) -> (i32, String) {
    let line = format!("stty rows 30 cols 100; {cmd}");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("BERTH_HOST", d.host())
        .env("DOCKER_HOST", d.host())
        .env(
            "PATH",
            format!(
                "{}:{}",
                berth_e2e::bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // Typed slowly enough for the shell to have started reading.
        for chunk in input.split_inclusive(|b| *b == b'\n') {
            let _ = stdin.write_all(chunk);
            let _ = stdin.flush();
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn run_it_gives_a_real_terminal() {
    let d = daemon!();
    let (code, out) = on_pty(&d, "berth run -it --rm busybox sh -c 'tty; stty size'", b"");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("30 100"), "window size not passed: {out}");
}

#[test]
fn interactive_shell_echoes_and_exits_with_its_code() {
    let d = daemon!();
    let (code, out) = on_pty(
        &d,
        "berth run -it --rm busybox sh",
        b"echo hello-from-pty\nexit 3\n",
    );
    assert!(out.contains("hello-from-pty"), "{out}");
    assert_eq!(code, 3, "{out}");
}

#[test]
fn ctrl_c_interrupts_the_foreground_job() {
    let d = daemon!();
    let (code, out) = on_pty(
        &d,
        "berth run -it --rm busybox sh",
        b"sleep 30\n\x03echo after-interrupt\nexit\n",
    );
    assert!(out.contains("after-interrupt"), "{out}");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn detach_keys_leave_a_tty_container_running() {
    let d = daemon!();
    let (_, out) = on_pty(
        &d,
        "berth run -it --name dt busybox sh",
        b"echo before-detach\n\x10\x11",
    );
    assert!(out.contains("before-detach"), "{out}");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}}", "dt"]).ok().out(),
        "running"
    );
    // And attach gets the shell back.
    let (_, out) = on_pty(&d, "berth attach dt", b"echo reattached\n\x10\x11");
    assert!(out.contains("reattached"), "{out}");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}}", "dt"]).ok().out(),
        "running"
    );
    // attach passes the container's exit code through.
    let (code, _) = on_pty(&d, "berth attach dt", b"exit 6\n");
    assert_eq!(code, 6);
}

#[test]
fn exec_it_runs_a_shell_in_the_container() {
    let d = daemon!();
    d.berth(&[
        "run", "-d", "--name", "xt", "-h", "xthost", "busybox", "sleep", "60",
    ])
    .ok();
    let (code, out) = on_pty(&d, "berth exec -it xt sh", b"hostname; tty\nexit 2\n");
    assert!(out.contains("xthost") && out.contains("/dev/pts/"), "{out}");
    assert_eq!(code, 2);
}

#[test]
fn docker_cli_it_attach_and_exec_it() {
    if !berth_e2e::have_docker_cli("docker_cli_it_attach_and_exec_it") {
        return;
    }
    let d = daemon!();
    let (code, out) = on_pty(
        &d,
        "/usr/local/bin/docker run -it --rm busybox sh -c 'tty; stty size; exit 4'",
        b"",
    );
    assert!(out.contains("/dev/pts/0") && out.contains("30 100"), "{out}");
    assert_eq!(code, 4, "{out}");
    d.docker(&["run", "-d", "-it", "--name", "dk2", "busybox", "sh"])
        .ok();
    let (_, out) = on_pty(
        &d,
        "/usr/local/bin/docker attach dk2",
        b"echo via-docker-attach\n\x10\x11",
    );
    assert!(out.contains("via-docker-attach"), "{out}");
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "dk2"])
            .ok()
            .out(),
        "true"
    );
    let (code, out) = on_pty(
        &d,
        "/usr/local/bin/docker exec -it dk2 sh",
        b"echo in-exec\nexit 5\n",
    );
    assert!(out.contains("in-exec"), "{out}");
    assert_eq!(code, 5, "{out}");
}
