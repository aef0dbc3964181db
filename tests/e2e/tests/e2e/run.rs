#[test]
fn run_echo_prints_and_removes() {
    let d = daemon!();
    let r = d.berth(&["run", "--rm", "busybox", "echo", "hi"]).ok();
    assert_eq!(r.stdout, "hi\n");
    assert!(
        d.berth(&["ps", "-aq"]).ok().out().is_empty(),
        "--rm left the container"
    );
    // The rw layer and bundle are gone too.
    let left = std::fs::read_dir(d.root.join("data/containers")).unwrap().count();
    assert_eq!(left, 0);
}

#[test]
fn exit_codes_pass_through_and_map_like_docker() {
    let d = daemon!();
    assert_eq!(
        d.berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3"
        ])
        .code,
        3
    );
    let missing = d.berth(&["run", "--rm", "busybox", "nonexistent-binary"]);
    assert_eq!(missing.code, 127, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("executable file not found"),
        "{}",
        missing.stderr
    );
    let abs = d.berth(&["run", "--rm", "busybox", "/nonexistent"]);
    assert_eq!(abs.code, 127, "{}", abs.stderr);
    let noexec = d.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(noexec.code, 126, "{}", noexec.stderr);
    // A directory cannot be executed either: execve's EACCES, in runc's words.
    let dir = d.berth(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(dir.code, 126, "{}", dir.stderr);
    assert!(
        dir.stderr.contains("exec: \"/etc\": permission denied"),
        "{}",
        dir.stderr
    );
    assert!(
        d.berth(&["ps", "-aq"]).ok().out().is_empty(),
        "failed --rm runs left containers"
    );
}

#[test]
fn stdout_and_stderr_stay_separate() {
    let d = daemon!();
    let r = d
        .berth(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"])
        .ok();
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
}

#[test]
fn stdin_streams_and_closes_on_eof() {
    let d = daemon!();
    let r = d
        .berth_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"hello\nworld\n")
        .ok();
    assert_eq!(r.stdout, "hello\nworld\n");
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let r = d
        .berth_stdin(&["run", "-i", "--rm", "busybox", "wc", "-l"], &big)
        .ok();
    assert_eq!(r.out().trim(), "200000");
}

#[test]
fn config_flags_reach_the_process() {
    let d = daemon!();
    let envfile = d.root.join("env.list");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\n").unwrap();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "-e",
            "A=1",
            "--env-file",
            envfile.to_str().unwrap(),
            "-w",
            "/tmp",
            "-h",
            "box1",
            "busybox",
            "sh",
            "-c",
            "echo $A $FROM_FILE $(pwd) $(hostname) $(cat /etc/hostname)",
        ])
        .ok();
    assert_eq!(r.out(), "1 yes /tmp box1 box1");
    let user = d.berth(&["run", "--rm", "-u", "www", "busybox", "id"]).ok();
    assert!(
        user.out().starts_with("uid=33(www) gid=33(www) groups="),
        "{}",
        user.out()
    );
    assert!(
        user.out().contains("50(staff)"),
        "supplementary group missing: {}",
        user.out()
    );
    let numeric = d
        .berth(&["run", "--rm", "-u", "1234:5678", "busybox", "id", "-u"])
        .ok();
    assert_eq!(numeric.out(), "1234");
    let ep = d
        .berth(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "busybox",
            "via",
            "entrypoint",
        ])
        .ok();
    assert_eq!(ep.out(), "via entrypoint");
    let unknown = d.berth(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("nosuchuser"), "{}", unknown.stderr);
}

#[test]
fn hostname_defaults_to_the_short_id() {
    let d = daemon!();
    let out = d
        .berth(&[
            "run",
            "--name",
            "hn",
            "busybox",
            "sh",
            "-c",
            "hostname; cat /etc/hostname",
        ])
        .ok();
    let id = d
        .berth(&["inspect", "-f", "{{.Id}}", "hn"])
        .ok()
        .out()
        .to_string();
    assert_eq!(out.stdout, format!("{0}\n{0}\n", &id[..12]));
}

#[test]
fn detached_runs_log_and_stop() {
    let d = daemon!();
    let id = d
        .berth(&[
            "run",
            "-d",
            "--name",
            "det",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo started; echo warn >&2; sleep 100 & wait",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = d.berth(&["ps"]).ok();
    let row = ps
        .stdout
        .lines()
        .find(|l| l.ends_with("det"))
        .expect("det listed");
    assert!(row.contains("Up "), "{row}");
    assert!(row.starts_with(&id[..12]), "{row}");
    d.eventually("output logged", || {
        let l = d.berth(&["logs", "det"]);
        !l.stdout.is_empty() && !l.stderr.is_empty()
    });
    let logs = d.berth(&["logs", "det"]).ok();
    assert_eq!(logs.stdout, "started\n");
    assert_eq!(logs.stderr, "warn\n");
    // --tail 1 is the log's last record, whichever stream the shim read last, on its own stream,
    // with its time in the fixed nanosecond form.
    let log_path = d.berth(&["inspect", "-f", "{{.LogPath}}", "det"]).ok();
    let log = std::fs::read_to_string(log_path.out()).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let time = last["time"].as_str().unwrap().trim_end_matches('Z');
    let (secs, frac) = time.split_once('.').unwrap_or((time, ""));
    let line = format!("{secs}.{frac:0<9}Z {}", last["log"].as_str().unwrap());
    let tail = d.berth(&["logs", "--tail", "1", "-t", "det"]).ok();
    let expected = match last["stream"].as_str().unwrap() {
        "stdout" => (line.as_str(), ""),
        _ => ("", line.as_str()),
    };
    assert_eq!((tail.stdout.as_str(), tail.stderr.as_str()), expected);
    d.berth(&["stop", "-t", "5", "det"]).ok();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "det"])
            .ok()
            .out(),
        "exited 0"
    );
    assert_eq!(d.berth(&["wait", "det"]).ok().out(), "0");
    let ps = d.berth(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]).ok();
    assert!(ps.out().starts_with("det Exited (0)"), "{}", ps.out());
}

#[test]
fn logs_follow_streams_until_exit() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "fol",
        "busybox",
        "sh",
        "-c",
        // Output spread over time, so logs -f follows a running container to its end.
        "for i in 1 2 3; do echo line$i; sleep 0.2; done",
    ])
    .ok();
    let r = d.berth(&["logs", "-f", "fol"]).ok();
    assert_eq!(r.stdout, "line1\nline2\nline3\n");
}

#[test]
fn limits_are_enforced_in_cgroups() {
    let d = daemon!();
    let id = d
        .berth(&[
            "run",
            "-d",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "20",
            "busybox",
            "sleep",
            "60",
        ])
        .ok()
        .out()
        .to_string();
    let find = |ctrl: &str, file: &str| -> String {
        for base in [
            format!("/sys/fs/cgroup/{ctrl}/{}/{id}", d.cgroup_parent),
            format!("/sys/fs/cgroup/{}/{id}", d.cgroup_parent),
        ] {
            if let Ok(s) = std::fs::read_to_string(format!("{base}/{file}")) {
                return s.trim().to_string();
            }
        }
        panic!("no {ctrl}/{file} for {id}");
    };
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        assert_eq!(find("", "memory.max"), (64 * 1024 * 1024).to_string());
        assert_eq!(find("", "pids.max"), "20");
        assert_eq!(find("", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            find("memory", "memory.limit_in_bytes"),
            (64 * 1024 * 1024).to_string()
        );
        assert_eq!(find("pids", "pids.max"), "20");
        assert_eq!(find("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(find("cpu", "cpu.shares"), "512");
    }
    // The pids limit bites: forking past it fails inside the container.
    let forks = d.berth(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait",
    ]);
    // sh and four sleeps fill the limit; the fifth fork fails and ends the non-interactive sh
    // with status 2.
    assert_eq!(
        (forks.code, forks.stderr.as_str()),
        (2, "sh: can't fork: Resource temporarily unavailable\n"),
        "{forks:?}"
    );
    d.berth(&["rm", "-f", &id]).ok();
}

#[test]
fn ulimits_are_applied_and_clamped() {
    let d = daemon!();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:2048",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ])
        .ok();
    assert_eq!(r.out(), "1024\n2048");
    let huge = d.berth(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=999999999:999999999",
        "busybox",
        "true",
    ]);
    assert_eq!(huge.code, 0, "{}", huge.stderr);
}

#[test]
fn networks_none_and_host() {
    let d = daemon!();
    let none = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "ip -o link | cut -d: -f2",
        ])
        .ok();
    assert_eq!(none.out().trim(), "lo");
    let lo = d
        .berth(&["run", "--rm", "busybox", "sh", "-c", "ip -o link show lo"])
        .ok();
    assert!(lo.out().contains("UP"), "{}", lo.out());
    // The host's own network namespace (its identity, not a count of links, which other
    // tests running at the same time change).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "readlink",
            "/proc/self/ns/net",
        ])
        .ok();
    assert_eq!(host.out().trim(), host_ns.to_str().unwrap());
    let bad = d.berth(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(bad.code, 125);
    assert!(
        bad.stderr.contains("network nosuchnet not found"),
        "{}",
        bad.stderr
    );
}

#[test]
fn names_are_validated_and_unique() {
    let d = daemon!();
    d.berth(&["create", "--name", "norm2", "busybox", "true"]).ok();
    let dup = d.berth(&["create", "--name", "norm2", "busybox", "true"]);
    assert_eq!(dup.code, 1, "docker create exits 1 on daemon errors");
    assert!(
        dup.stderr
            .contains("Conflict. The container name \"/norm2\" is already in use by container"),
        "{}",
        dup.stderr
    );
    let bad = d.berth(&["create", "--name", "x", "busybox", "true"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("Invalid container name (x)"),
        "{}",
        bad.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out().lines().count(), 1);
}

#[test]
fn read_only_rootfs() {
    let d = daemon!();
    let r = d.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    d.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/dev/shm/x"])
        .ok();
}

#[test]
fn the_rw_layer_lives_and_dies_with_the_container() {
    let d = daemon!();
    d.berth(&["run", "--name", "w1", "busybox", "sh", "-c", "echo data > /file"])
        .ok();
    d.berth(&["start", "-a", "w1"]).ok();
    // Restarting keeps the same rw layer.
    d.berth(&["rm", "w1"]).ok();
    let r = d.berth(&["run", "--rm", "busybox", "cat", "/file"]);
    assert_ne!(r.code, 0, "a new container saw another's rw layer");
}

#[test]
fn add_host_and_dns_shape_the_container_files() {
    let d = daemon!();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--add-host",
            "db.local:192.0.2.10",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "corp.example",
            "busybox",
            "cat",
            "/etc/hosts",
            "/etc/resolv.conf",
        ])
        .ok();
    assert!(r.stdout.contains("192.0.2.10\tdb.local"), "{}", r.stdout);
    // libnetwork's order: search, then the nameservers, then options.
    assert!(
        r.stdout.contains("search corp.example\nnameserver 192.0.2.53\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn add_host_host_gateway_is_the_bridge_gateway_and_bad_addresses_are_refused() {
    let d = daemon!();
    let gw = d
        .berth(&[
            "network",
            "inspect",
            "bridge",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}}",
        ])
        .ok()
        .out()
        .to_string();
    assert!(gw.parse::<std::net::Ipv4Addr>().is_ok(), "{gw:?}");
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--add-host",
            "host.docker.internal:host-gateway",
            "busybox",
            "cat",
            "/etc/hosts",
        ])
        .ok();
    assert!(
        r.stdout.contains(&format!("{gw}\thost.docker.internal")),
        "{}",
        r.stdout
    );
    let bad = d.berth(&["create", "--add-host", "x:not-an-ip", "busybox"]);
    assert_eq!(bad.code, 1, "docker create exits 1 on daemon errors");
    assert!(
        bad.stderr
            .contains("invalid IP address in add-host: \"not-an-ip\""),
        "{}",
        bad.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "");
}

#[test]
fn a_rm_container_whose_start_fails_is_removed_and_bad_capabilities_fail_at_create() {
    let d = daemon!();
    // `docker run --rm` waits for the removal after a failed start; berth used to leave the
    // container `Created` when the start failed before its shim ran (a device that does not
    // exist), and the CLI waited forever.
    let mut child = d
        .docker_command()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--device",
            "/dev/nosuch-device",
            "busybox",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = berth_e2e::wait_pid_exit(child.id() as i32, std::time::Duration::from_secs(30));
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done, "docker run --rm hung after a failed start");
    // dockerd's message for it ends in "no such file or directory", which the CLI maps to 127.
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error gathering device information while adding custom device \"/dev/nosuch-device\""),
        "{out:?}"
    );
    d.eventually("the failed --rm container removed", || {
        d.berth(&["ps", "-aq"]).ok().out().is_empty()
    });
    // As dockerd: an unknown capability is refused at create, in its words.
    for (flag, field) in [("--cap-add", "CapAdd"), ("--cap-drop", "CapDrop")] {
        let r = d.docker(&["create", flag, "nope", "busybox", "true"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr
                .contains(&format!("invalid {field}: unknown capability: \"CAP_NOPE\"")),
            "{r:?}"
        );
    }
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "");
    d.berth(&[
        "create",
        "--cap-add",
        "all",
        "--cap-drop",
        "net_raw",
        "busybox",
        "true",
    ])
    .ok();
}

/// What dockerd and runc give a process beyond its command: the environment (the default `PATH`
/// and `HOSTNAME` first, the container's variables over them, a bare `NAME` dropped, `HOME` from
/// the user's passwd entry when unset), the user's groups (the primary one first, as dockerd since
/// 20.10.18), and `--entrypoint ''` meaning no entrypoint at all.
#[test]
fn environment_groups_and_an_empty_entrypoint_are_dockerds() {
    let d = daemon!();
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let env = d
        .berth(&[
            "run",
            "--rm",
            "-h",
            "envbox",
            "-e",
            "A=1",
            "-e",
            "BERTH_E2E_UNSET_VAR",
            "busybox",
            "env",
        ])
        .ok();
    assert_eq!(
        env.stdout.lines().collect::<Vec<_>>(),
        [path, "HOSTNAME=envbox", "A=1", "HOME=/root"],
        "{}",
        env.stdout
    );
    // An explicit PATH replaces the default in place; HOME set by the user stays.
    let env = d
        .berth(&[
            "run",
            "--rm",
            "-h",
            "envbox",
            "-e",
            "HOME=/x",
            "-e",
            "PATH=/bin",
            "busybox",
            "env",
        ])
        .ok();
    assert_eq!(
        env.stdout.lines().collect::<Vec<_>>(),
        ["PATH=/bin", "HOSTNAME=envbox", "HOME=/x"],
        "{}",
        env.stdout
    );
    let www = d
        .berth(&[
            "run",
            "--rm",
            "-u",
            "www",
            "busybox",
            "sh",
            "-c",
            "echo $HOME; id -G",
        ])
        .ok();
    assert_eq!(www.stdout, "/home\n33 50\n");
    let numeric = d
        .berth(&[
            "run",
            "--rm",
            "-u",
            "1234:5678",
            "busybox",
            "sh",
            "-c",
            "echo $HOME; id -G",
        ])
        .ok();
    assert_eq!(numeric.stdout, "/\n5678\n");
    assert_eq!(d.berth(&["run", "--rm", "busybox", "id", "-G"]).ok().out(), "0");
    // An exec: the container's environment under the exec's, its own user's HOME.
    d.berth(&[
        "run", "-d", "--name", "envx", "-h", "envx", "-e", "Z=1", "busybox", "sleep", "300",
    ])
    .ok();
    let ex = d
        .berth(&["exec", "-e", "Z", "-e", "Y=2", "-u", "www", "envx", "env"])
        .ok();
    assert_eq!(
        ex.stdout.lines().collect::<Vec<_>>(),
        [path, "HOSTNAME=envx", "Y=2", "HOME=/home"],
        "{}",
        ex.stdout
    );
    assert_eq!(
        d.berth(&["exec", "-u", "www", "envx", "id", "-G"]).ok().out(),
        "33 50"
    );
    d.berth(&["rm", "-f", "envx"]).ok();
    // `--entrypoint ''`: the command alone, neither the image's entrypoint nor its Cmd.
    assert_eq!(
        d.docker(&["run", "--rm", "--entrypoint", "", "busybox", "echo", "hi"])
            .ok()
            .out(),
        "hi"
    );
    let id = d
        .docker(&["create", "--entrypoint", "", "busybox", "echo", "hi"])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{json .Config.Entrypoint}} {{.Path}} {{json .Args}}",
            &id
        ])
        .ok()
        .out(),
        "null echo [\"hi\"]"
    );
    d.docker(&["rm", &id]).ok();
    let none = d.docker(&["create", "--entrypoint", "", "busybox"]);
    assert_ne!(none.code, 0);
    assert!(none.stderr.contains("No command specified"), "{}", none.stderr);
}
