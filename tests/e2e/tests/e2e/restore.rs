//! Live restore: containers outlive a SIGKILLed daemon and a restarted daemon finds them.

#[test]
fn containers_survive_daemon_kill9() {
    let mut d = daemon!();
    let long = d
        .berth(&[
            "run",
            "-d",
            "--name",
            "long",
            "busybox",
            "sh",
            "-c",
            "echo before; sleep 60",
        ])
        .ok();
    let _ = long;
    let quick = d
        .berth(&[
            "run",
            "-d",
            "--name",
            "quick",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 4' TERM; echo q; sleep 60 & wait",
        ])
        .ok();
    let _ = quick;
    d.berth(&["run", "--name", "done", "busybox", "sh", "-c", "exit 5"]);
    let pid_before = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", "long"])
        .ok()
        .out()
        .to_string();
    d.eventually("quick logged", || {
        d.berth(&["logs", "quick"]).stdout.contains("q")
    });

    d.kill9();
    // The container's process is still alive with no daemon.
    assert!(
        std::path::Path::new(&format!("/proc/{pid_before}")).exists(),
        "container died with the daemon"
    );
    d.spawn();

    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "long"])
            .ok()
            .out(),
        format!("running {pid_before}")
    );
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "done"])
            .ok()
            .out(),
        "exited 5"
    );
    assert_eq!(d.berth(&["logs", "quick"]).ok().out(), "q");
    // stop works on a restored container and its exit code is recorded.
    d.berth(&["stop", "-t", "5", "quick"]).ok();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "quick"])
            .ok()
            .out(),
        "4"
    );
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().out().lines().count(),
        3,
        "a container was lost or duplicated"
    );
}

#[test]
fn exits_while_the_daemon_is_down_are_recorded() {
    let mut d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' TERM; echo trapped; sleep 60 & wait",
    ])
    .ok();
    // The TERM must find the trap installed (sh as PID 1 ignores a TERM it has no handler for).
    d.eventually("trap installed", || {
        d.berth(&["logs", "brief"]).stdout == "trapped\n"
    });
    let pid: i32 = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", "brief"])
        .ok()
        .out()
        .parse()
        .unwrap();
    let id = d
        .berth(&["inspect", "-f", "{{.Id}}", "brief"])
        .ok()
        .out()
        .to_string();
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    d.kill9();
    // End the container while no daemon watches; its shim records the exit and then exits.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let timeout = std::time::Duration::from_secs(30);
    assert!(
        berth_e2e::wait_pid_exit(pid, timeout),
        "the container ignored TERM"
    );
    assert!(
        berth_e2e::wait_pid_exit(shims[0], timeout),
        "the shim outlived its container"
    );
    let exit = std::fs::read_to_string(d.data_root().join("containers").join(&id).join("exit.json"))
        .expect("exit recorded while the daemon was down");
    assert!(exit.contains("\"exit_code\":9"), "{exit}");
    d.spawn();
    let state = d
        .berth(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "brief"])
        .ok();
    assert_eq!(state.out(), "exited 9");
    d.berth(&["rm", "brief"]).ok();
    // No mounts left behind for it.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.contains(d.root.join("data/containers").to_str().unwrap()),
        "rootfs mount leaked"
    );
}

#[test]
fn restored_containers_take_exec_logs_follow_and_attach() {
    let mut d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "-i",
        "--name",
        "rs",
        "busybox",
        "sh",
        "-c",
        "echo started; while read l; do echo got $l; done",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "pol",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    d.eventually("started logged", || {
        d.berth(&["logs", "rs"]).stdout.contains("started")
    });
    // An attached client loses its connection when the daemon dies; the container does not.
    let mut attached = d
        .berth_command()
        .args(["attach", "rs"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    d.kill9();
    let _ = attached.kill();
    let _ = attached.wait();
    d.spawn();
    assert_eq!(
        d.berth(&["exec", "rs", "echo", "exec-after-restore"]).ok().out(),
        "exec-after-restore"
    );
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "pol"])
            .ok()
            .out(),
        "running 0"
    );
    // stdin through a new attach reaches the restored container, and logs -f sees the output.
    let mut again = d
        .berth_command()
        .args(["attach", "--sig-proxy=false", "rs"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        again.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    }
    d.eventually("stdin after restore", || {
        d.berth(&["logs", "rs"]).stdout.contains("got hello")
    });
    let _ = again.kill();
    let _ = again.wait();
    let follow = d
        .berth_command()
        .args(["logs", "-f", "rs"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    d.berth(&["stop", "-t", "1", "rs"]).ok();
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("started") && text.contains("got hello"), "{text}");
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().out().lines().count(),
        2,
        "lost or duplicated containers"
    );
}
