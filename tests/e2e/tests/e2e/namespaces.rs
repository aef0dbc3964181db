//! `--pid`, `--ipc` and `--uts`: the host's namespaces, another container's, or none of the
//! container's own, with dockerd's records and messages.

use crate::network::inspect;

fn ns_of(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn pid_host_and_container_modes() {
    let d = daemon!();
    let host = ns_of("self", "pid");
    let own = d
        .berth(&["run", "--rm", "busybox", "readlink", "/proc/self/ns/pid"])
        .ok();
    assert_ne!(
        own.out(),
        host,
        "a container has a PID namespace of its own by default"
    );
    let shared = d
        .berth(&[
            "run",
            "--rm",
            "--pid",
            "host",
            "busybox",
            "readlink",
            "/proc/self/ns/pid",
        ])
        .ok();
    assert_eq!(shared.out(), host);
    // The same through the docker CLI.
    let docker = d
        .docker(&[
            "run",
            "--rm",
            "--pid",
            "host",
            "busybox",
            "readlink",
            "/proc/self/ns/pid",
        ])
        .ok();
    assert_eq!(docker.out(), host);

    d.berth(&["run", "-d", "--name", "pdonor", "busybox", "sleep", "300"])
        .ok();
    let donor_id = inspect(&d, "pdonor", "{{.Id}}");
    let donor_pid = inspect(&d, "pdonor", "{{.State.Pid}}");
    d.berth(&[
        "create",
        "--name",
        "pjoin",
        "--pid",
        "container:pdonor",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; ps -o comm",
    ])
    .ok();
    // Recorded with the donor's ID, as dockerd does.
    assert_eq!(
        inspect(&d, "pjoin", "{{.HostConfig.PidMode}}"),
        format!("container:{donor_id}")
    );
    let out = d.berth(&["start", "-a", "pjoin"]).ok();
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(ns_of(&donor_pid, "pid").as_str()),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l.trim() == "sleep"),
        "the donor's sleep is visible: {}",
        out.stdout
    );

    // The donor must exist at create and run at start.
    let missing = d.berth(&["run", "--rm", "--pid", "container:nosuch", "busybox", "true"]);
    assert_eq!(missing.code, 125);
    assert!(
        missing.stderr.contains("No such container: nosuch"),
        "{}",
        missing.stderr
    );
    let bad = d.berth(&["run", "--rm", "--pid", "bogus", "busybox", "true"]);
    assert_eq!(bad.code, 125);
    assert!(bad.stderr.contains("invalid PID mode: bogus"), "{}", bad.stderr);
    d.berth(&["stop", "-t", "0", "pdonor"]).ok();
    let start = d.berth(&["start", "pjoin"]);
    assert_ne!(start.code, 0);
    assert!(
        start.stderr.contains(&format!(
            "failed to join PID namespace: container {donor_id} is not running"
        )),
        "{}",
        start.stderr
    );
    // A failed join is a failed start: `run --rm` returns (and removes its container), also
    // for `--network container:`.
    let before = d.berth(&["ps", "-aq"]).ok().stdout;
    let net = d.berth(&["run", "--rm", "--network", "container:pdonor", "busybox", "true"]);
    assert_ne!(net.code, 0);
    assert!(
        net.stderr
            .contains("cannot join network of a non running container"),
        "{}",
        net.stderr
    );
    d.eventually("the --rm container removed", || {
        d.berth(&["ps", "-aq"]).ok().stdout == before
    });
    d.berth(&["rm", "-f", "pjoin", "pdonor"]).ok();
}

#[test]
fn ipc_private_none_host_shareable_and_container_modes() {
    let mut d = daemon!();
    let shm_mount = "grep -c ' /dev/shm ' /proc/self/mountinfo || true";
    // private (the default, recorded as such): a /dev/shm of its own, a namespace of its own.
    d.berth(&["create", "--name", "priv", "busybox", "sh", "-c", shm_mount])
        .ok();
    assert_eq!(inspect(&d, "priv", "{{.HostConfig.IpcMode}}"), "private");
    assert_eq!(d.berth(&["start", "-a", "priv"]).ok().out(), "1");
    // none: no /dev/shm at all.
    let none = d
        .berth(&["run", "--rm", "--ipc", "none", "busybox", "sh", "-c", shm_mount])
        .ok();
    assert_eq!(none.out(), "0");
    // host: the host's namespace and /dev/shm.
    let marker = format!("berth-e2e-ipc-{}", std::process::id());
    std::fs::write(format!("/dev/shm/{marker}"), "from the host").unwrap();
    let host = d.berth(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "busybox",
        "sh",
        "-c",
        &format!("readlink /proc/self/ns/ipc; cat /dev/shm/{marker}"),
    ]);
    let _ = std::fs::remove_file(format!("/dev/shm/{marker}"));
    assert_eq!(host.code, 0, "{}", host.stderr);
    assert_eq!(host.stdout, format!("{}\nfrom the host", ns_of("self", "ipc")));

    // shareable: a /dev/shm the daemon mounts (8 MiB here), which a joiner shares.
    d.berth(&[
        "run",
        "-d",
        "--name",
        "idonor",
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let donor_id = inspect(&d, "idonor", "{{.Id}}");
    let donor_pid = inspect(&d, "idonor", "{{.State.Pid}}");
    let shm = d.root.join("exec/shm").join(&donor_id);
    assert!(
        d.mounts_left().contains(&shm.to_string_lossy().into_owned()),
        "{:?}",
        d.mounts_left()
    );
    let joined = d
        .berth(&[
            "run",
            "--rm",
            "--ipc",
            "container:idonor",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; echo shared > /dev/shm/x; df -k /dev/shm | tail -1",
        ])
        .ok();
    let mut lines = joined.stdout.lines();
    assert_eq!(lines.next(), Some(ns_of(&donor_pid, "ipc").as_str()));
    let size = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(size, "8192", "{}", joined.stdout);
    assert_eq!(
        d.berth(&["exec", "idonor", "cat", "/dev/shm/x"]).ok().out(),
        "shared"
    );
    // A daemon restart (live restore) keeps the donor's /dev/shm, and it can still be joined.
    d.kill9();
    d.spawn();
    let again = d
        .berth(&[
            "run",
            "--rm",
            "--ipc",
            "container:idonor",
            "busybox",
            "cat",
            "/dev/shm/x",
        ])
        .ok();
    assert_eq!(again.out(), "shared");

    // A private donor cannot be joined; bad modes are refused at create.
    d.berth(&["run", "-d", "--name", "lonely", "busybox", "sleep", "300"])
        .ok();
    let refused = d.berth(&["run", "--rm", "--ipc", "container:lonely", "busybox", "true"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("non-shareable IPC"), "{}", refused.stderr);
    let bad = d.berth(&["run", "--rm", "--ipc", "bogus", "busybox", "true"]);
    assert_eq!(bad.code, 125);
    assert!(bad.stderr.contains("invalid IPC mode: bogus"), "{}", bad.stderr);

    // The donor's /dev/shm goes when it stops, from the host and from every shim's copy of
    // the mount table (a shim started while it was mounted has one); a start mounts it again.
    let keeper = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "300"])
        .ok()
        .out()
        .to_string();
    let keeper_shim = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!(
                "berth-shim --bundle {}",
                d.data_root().join("containers").join(&keeper).display()
            ),
        ])
        .output()
        .unwrap();
    let keeper_shim = String::from_utf8_lossy(&keeper_shim.stdout).trim().to_string();
    let in_shim = || std::fs::read_to_string(format!("/proc/{keeper_shim}/mountinfo")).unwrap();
    let shm_str = shm.to_string_lossy().into_owned();
    assert!(
        in_shim().contains(&shm_str),
        "the keeper's shim has no copy to lose"
    );
    d.berth(&["stop", "-t", "0", "idonor"]).ok();
    assert!(!shm.exists(), "{} left after the stop", shm.display());
    assert!(
        !in_shim().contains(&shm_str),
        "a shim kept the stopped donor's /dev/shm"
    );
    d.berth(&["rm", "-f", &keeper]).ok();
    d.berth(&["start", "idonor"]).ok();
    assert!(shm.exists());
    d.berth(&["rm", "-f", "idonor", "lonely", "priv"]).ok();
    assert!(!shm.exists());
    // The network namespaces' pins go in the background.
    d.eventually("no mounts left", || d.mounts_left().is_empty());
}

/// `--uts host` shares the host's hostname; a private UTS namespace takes `-h` and
/// `--domainname` (on both create paths).
#[test]
fn uts_host_hostname_and_domainname() {
    let d = daemon!();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = d
        .berth(&["run", "--rm", "--uts", "host", "busybox", "hostname"])
        .ok();
    assert_eq!(out.out(), host.trim());
    let own = d
        .berth(&[
            "run",
            "--rm",
            "-h",
            "inside",
            "--domainname",
            "example.org",
            "busybox",
            "sh",
            "-c",
            "hostname; cat /proc/sys/kernel/domainname",
        ])
        .ok();
    assert_eq!(own.stdout, "inside\nexample.org\n");
    // The same from the libcontainer path (the host's PID namespace takes it).
    let lc = d
        .berth(&[
            "run",
            "--rm",
            "--pid",
            "host",
            "--domainname",
            "example.net",
            "busybox",
            "cat",
            "/proc/sys/kernel/domainname",
        ])
        .ok();
    assert_eq!(lc.out(), "example.net");
    // --cgroupns private: the container sees its own cgroups as the root, read-only.
    let cg = d
        .berth(&[
            "run", "--rm", "--cgroupns", "private", "-m", "64m", "busybox", "sh", "-c",
            "grep memory /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; mkdir /sys/fs/cgroup/memory/x 2>/dev/null || echo ro",
        ])
        .ok();
    let mut lines = cg.stdout.lines();
    assert!(
        lines.next().is_some_and(|l| l.ends_with(":memory:/")),
        "{}",
        cg.stdout
    );
    assert_eq!(lines.next(), Some("67108864"), "{}", cg.stdout);
    assert_eq!(lines.next(), Some("ro"), "{}", cg.stdout);
    let host = d
        .berth(&["run", "--rm", "busybox", "grep", "memory", "/proc/self/cgroup"])
        .ok();
    assert!(
        !host.out().ends_with(":memory:/"),
        "the host's cgroup namespace by default: {}",
        host.out()
    );
    // A namespaced sysctl through the CLI; what berth cannot give is refused, not dropped.
    let sysctl = d
        .berth(&[
            "run",
            "--rm",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "busybox",
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ])
        .ok();
    assert_eq!(sysctl.out(), "1");
    for (args, msg) in [
        (["--runtime", "runc"], "Unknown runtime specified runc"),
        (["--userns", "private"], "invalid USER mode: private"),
    ] {
        let r = d.berth(&["run", "--rm", args[0], args[1], "busybox", "true"]);
        assert_eq!(r.code, 125, "{args:?}");
        assert!(r.stderr.contains(msg), "{args:?}: {}", r.stderr);
    }
    let conflict = d.berth(&["run", "--rm", "--uts", "host", "-h", "x", "busybox", "true"]);
    assert_eq!(conflict.code, 125);
    assert!(
        conflict
            .stderr
            .contains("conflicting options: hostname and the UTS mode"),
        "{}",
        conflict.stderr
    );
}
