//! `exec`: exit codes, environment, namespaces, stdin, users, and refusals.

#[test]
fn exec_runs_in_the_container() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "ex",
        "-e",
        "FROM_RUN=1",
        "-h",
        "exhost",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(d.berth(&["exec", "ex", "echo", "hi"]).ok().stdout, "hi\n");
    assert_eq!(d.berth(&["exec", "ex", "sh", "-c", "exit 4"]).code, 4);
    let env = d
        .berth(&[
            "exec",
            "-e",
            "X=2",
            "-w",
            "/tmp",
            "ex",
            "sh",
            "-c",
            "echo $FROM_RUN $X $(pwd) $(hostname)",
        ])
        .ok();
    assert_eq!(env.out(), "1 2 /tmp exhost");
    // Same namespaces and cgroup as the container's init.
    let pid = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", "ex"])
        .ok()
        .out()
        .to_string();
    for ns in ["mnt", "pid", "net", "uts", "ipc"] {
        let host = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let inside = d
            .berth(&["exec", "ex", "readlink", &format!("/proc/self/ns/{ns}")])
            .ok();
        assert_eq!(inside.out(), host.to_str().unwrap(), "{ns} namespace differs");
    }
    let cg_init = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cg_exec = d.berth(&["exec", "ex", "cat", "/proc/self/cgroup"]).ok();
    assert_eq!(cg_exec.stdout, cg_init);
    // Users.
    assert_eq!(
        d.berth(&["exec", "-u", "nobody", "ex", "id", "-u"]).ok().out(),
        "65534"
    );
    // Stdin round trip.
    assert_eq!(
        d.berth_stdin(&["exec", "-i", "ex", "cat"], b"piped\n")
            .ok()
            .stdout,
        "piped\n"
    );
    // Exec output stays out of the container's log.
    assert!(!d.berth(&["logs", "ex"]).ok().stdout.contains("hi"));
}

#[test]
fn exec_failures_are_clear() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "exf", "busybox", "sleep", "60"])
        .ok();
    // dockerd writes an exec start error into the exec's stdout stream (docker/cli#2025), so the
    // CLIs print it on stdout, and docker-py finds it in the output's stdout half.
    let msg = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nonexistent-binary\": executable file not found in $PATH: unknown";
    let missing = d.berth(&["exec", "exf", "nonexistent-binary"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert_eq!(
        (missing.stdout.as_str(), missing.stderr.as_str()),
        (format!("{msg}\r\n").as_str(), ""),
    );
    let py = d.python(
        r#"
import docker
c = docker.from_env().containers.get("exf")
code, (out, err) = c.exec_run(["nonexistent-binary"], demux=True)
print(code, repr(out), repr(err))
"#,
    );
    assert_eq!(py.out(), format!("127 b'{msg}\\r\\n' None"), "{py:?}");
    let noexec = d.berth(&["exec", "exf", "/etc/passwd"]);
    assert_eq!(noexec.code, 126, "{noexec:?}");
    // A working directory the container lacks, in runc's words as dockerd passes them on.
    let nodir = d.docker(&["exec", "-w", "/nosuchdir", "exf", "pwd"]);
    assert_eq!(
        (nodir.code, nodir.stdout.as_str()),
        (
            126,
            "OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd (\"/nosuchdir\") set in config.json failed: no such file or directory: unknown\r\n"
        ),
        "{nodir:?}"
    );
    // A relative one is runc's spec error.
    let relative = d.docker(&["exec", "-w", "relative", "exf", "pwd"]);
    assert_eq!(
        (relative.code, relative.stdout.as_str()),
        (
            126,
            "OCI runtime exec failed: exec failed: Cwd must be an absolute path: unknown\r\n"
        ),
        "{relative:?}"
    );
    d.berth(&["stop", "-t", "1", "exf"]).ok();
    let stopped = d.berth(&["exec", "exf", "true"]);
    assert_ne!(stopped.code, 0);
    assert!(stopped.stderr.contains("is not running"), "{}", stopped.stderr);
    // The CLI creates the exec without inspecting first: the daemon's answer is docker's.
    let nope = d.berth(&["exec", "exf-none", "true"]);
    assert_eq!(
        (nope.code, nope.stderr.as_str()),
        (1, "Error response from daemon: No such container: exf-none\n"),
        "{nope:?}"
    );
}

#[test]
fn exec_with_the_docker_cli() {
    let d = daemon!();
    d.docker(&["run", "-d", "--name", "dex", "busybox", "sleep", "60"])
        .ok();
    assert_eq!(d.docker(&["exec", "dex", "echo", "hi"]).ok().stdout, "hi\n");
    assert_eq!(d.docker(&["exec", "dex", "sh", "-c", "exit 5"]).code, 5);
    let missing = d.docker(&["exec", "dex", "nope"]);
    assert_eq!(
        (missing.code, missing.stdout.as_str(), missing.stderr.as_str()),
        (
            127,
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown\r\n",
            ""
        )
    );
    d.docker(&["exec", "-d", "dex", "touch", "/tmp/detached"]).ok();
    d.eventually("detached exec ran", || {
        d.docker(&["exec", "dex", "ls", "/tmp/detached"]).code == 0
    });
    let py = d.python(
        "import docker\nc = docker.from_env().containers.get('dex')\nr = c.exec_run(['sh', '-c', 'echo py; exit 3'])\nprint(r.exit_code, r.output.decode().strip())",
    );
    assert_eq!(py.out(), "3 py", "{py:?}");
}

/// The first exec of a container tells its shim which seccomp program (or none) it installed, and
/// later execs install that one without parsing the profile again: every exec stays confined as
/// the first was, a privileged exec in between runs unconfined without changing the next one's
/// filter, and a container without a profile gets none in any exec.
#[test]
fn every_exec_gets_the_containers_seccomp_filter() {
    let d = daemon!();
    let seccomp = |name: &str, flags: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[name, "grep", "^Seccomp", "/proc/self/status"]);
        d.berth(&args).ok().stdout
    };
    let confined = "Seccomp:\t2\nSeccomp_filters:\t1\n";
    let unconfined = "Seccomp:\t0\nSeccomp_filters:\t0\n";
    d.berth(&["run", "-d", "--name", "sc", "busybox", "sleep", "60"])
        .ok();
    for _ in 0..3 {
        assert_eq!(seccomp("sc", &[]), confined);
    }
    assert_eq!(seccomp("sc", &["--privileged"]), unconfined);
    assert_eq!(seccomp("sc", &[]), confined);
    assert_eq!(seccomp("sc", &["-u", "nobody"]), confined);
    d.berth(&[
        "run",
        "-d",
        "--name",
        "scu",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    for _ in 0..2 {
        assert_eq!(seccomp("scu", &[]), unconfined);
    }
    d.berth(&["rm", "-f", "sc", "scu"]).ok();
}
