//! `--cgroup-parent` (HostConfig.CgroupParent): nested parents hold the container's cgroup; a
//! parent that would leave the cgroup hierarchy is refused.

/// The container's cgroup in the memory hierarchy (v1) or the unified one (v2), from the host's
/// view of its init.
fn memory_cgroup_of(pid: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if v2 {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == "memory")
            };
            hit.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no memory cgroup in {text}"))
}

#[test]
fn nested_cgroup_parent_holds_the_container() {
    let d = daemon!();
    // Under the harness's parent, so the daemon's teardown removes the whole tree.
    let parent = format!("/{}/nested/deeper", d.cgroup_parent);
    let id = d
        .berth(&["run", "-d", "--cgroup-parent", &parent, "busybox", "sleep", "600"])
        .ok()
        .out()
        .to_string();
    let pid = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .out()
        .to_string();
    assert_eq!(memory_cgroup_of(&pid), format!("{parent}/{id}"));
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.HostConfig.CgroupParent}}", &id])
            .ok()
            .out(),
        parent
    );
    // The daemon reads the same cgroup (top lists the container's process).
    let top = d.berth(&["top", &id]).ok();
    assert!(top.out().contains("sleep 600"), "{}", top.out());
    d.berth(&["rm", "-f", &id]).ok();
}

/// `HostConfig.CgroupParent` with `..` would put the container's cgroup outside the hierarchy
/// the daemon manages (or outside the cgroup root): refused with a 400 before anything is made.
#[test]
fn cgroup_parent_escaping_the_hierarchy_is_refused() {
    let d = daemon!();
    let r = d.berth(&["run", "--rm", "--cgroup-parent", "../../x", "busybox", "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("Error response from daemon: invalid cgroup parent \"../../x\": \"..\" is not allowed"),
        "{}",
        r.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "", "a container was created");
    let script = r#"
import docker
c = docker.from_env()
for parent in ["/a/../../b", "../x", ".."]:
    try:
        c.containers.create("busybox", "true", cgroup_parent=parent)
        raise SystemExit("created with cgroup parent " + parent)
    except docker.errors.APIError as e:
        assert e.status_code == 400, e
        assert "invalid cgroup parent" in str(e), e
ok = c.containers.create("busybox", "true", cgroup_parent="/plain")
assert ok.attrs["HostConfig"]["CgroupParent"] == "/plain"
ok.remove()
print("ok")
"#;
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}

/// Whether the host has v1 hierarchies (hybrid or legacy), where the container sees its own
/// cgroup directories bound under `/sys/fs/cgroup/<hierarchy>`.
fn v1_host() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists()
}

/// Unprivileged, a container sees its cgroups read-only, as under Docker: it can neither raise
/// its own limits nor make cgroups, and `/sys/fs/cgroup` itself takes no writes. It and the
/// masked directories are binds of the daemon's shared read-only directories, the same in every
/// container (a tmpfs each would be a superblock per container: docs/design/performance.md).
#[test]
fn a_container_cannot_change_its_own_cgroups() {
    let d = daemon!();
    if !v1_host() {
        eprintln!("skipped: needs v1 cgroup hierarchies");
        return;
    }
    let script = "echo 134217728 > /sys/fs/cgroup/memory/memory.limit_in_bytes || echo no-limit; \
                  echo max > /sys/fs/cgroup/pids/pids.max || echo no-pids; \
                  mkdir /sys/fs/cgroup/memory/sub || echo no-mkdir; \
                  touch /sys/fs/cgroup/x || echo no-touch; \
                  touch /proc/acpi/x || echo no-acpi; \
                  cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
                  ls -A /sys/firmware /proc/acpi | grep -v : | grep -c . ; \
                  stat -c %d /sys/fs/cgroup";
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "-m",
            "64m",
            "--pids-limit",
            "50",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        d.berth(&args).ok().stdout
    };
    let first = run(&[]);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines[..8],
        ["no-limit", "no-pids", "no-mkdir", "no-touch", "no-acpi", "67108864", "50", "0"],
        "{first}"
    );
    // A second container binds the same directory: same device, where a tmpfs each would not be.
    let second = run(&["--name", "second"]);
    assert_eq!(second.lines().last(), lines.last().copied(), "{first}\n{second}");
    // Any user reads its cgroup files through the shared directory (0755 whatever the umask).
    let nobody = d
        .berth(&[
            "run",
            "--rm",
            "-u",
            "nobody",
            "-m",
            "64m",
            "busybox",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .ok();
    assert_eq!(nobody.out(), "67108864");
}

/// Privileged, the cgroups are writable (as under Docker) and the container may make its own
/// below them; they go with the container's when it exits.
#[test]
fn cgroups_a_privileged_container_makes_go_with_it() {
    let d = daemon!();
    if !v1_host() {
        eprintln!("skipped: needs v1 cgroup hierarchies");
        return;
    }
    let r = d
        .berth(&[
            "run",
            "--name",
            "nester",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "mkdir /sys/fs/cgroup/memory/sub/ /sys/fs/cgroup/pids/sub && echo made",
        ])
        .ok();
    assert_eq!(r.out(), "made");
    let id = d
        .berth(&["inspect", "-f", "{{.Id}}", "nester"])
        .ok()
        .out()
        .to_string();
    // They go with the container's own, once exits pause (berth_daemon::cgroups::Reaper).
    for h in ["memory", "pids"] {
        let dir = format!("/sys/fs/cgroup/{h}/{}/{id}", d.cgroup_parent);
        d.eventually(&format!("{dir} removed after the exit"), || {
            !std::path::Path::new(&dir).exists()
        });
    }
}

fn memory_limit(d: &berth_e2e::Daemon, id: &str) -> Option<String> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let file = if v2 {
        format!("/sys/fs/cgroup/{}/{id}/memory.max", d.cgroup_parent)
    } else {
        format!(
            "/sys/fs/cgroup/memory/{}/{id}/memory.limit_in_bytes",
            d.cgroup_parent
        )
    };
    std::fs::read_to_string(file).ok().map(|s| s.trim().to_string())
}

/// An exited container's empty cgroups wait for a pause in exits before they are removed
/// (berth_daemon::cgroups::Reaper). A container started again at once gets fresh cgroups with
/// its limits, and the removal of the old ones never reaches them: after another container's
/// cgroups were reaped, the restarted one's are still there.
#[test]
fn a_container_started_again_right_after_its_exit_keeps_its_new_cgroups() {
    let d = daemon!();
    let id = d
        .berth(&["run", "-d", "-m", "64m", "busybox", "sleep", "600"])
        .ok()
        .out()
        .to_string();
    d.berth(&["stop", "-t", "0", &id]).ok();
    d.berth(&["start", &id]).ok();
    assert_eq!(memory_limit(&d, &id).as_deref(), Some("67108864"));
    // Another exit, and the reaper's pass after it.
    let other = d.berth(&["run", "-d", "busybox", "true"]).ok().out().to_string();
    d.berth(&["wait", &other]).ok();
    d.eventually("the other container's cgroups reaped", || {
        memory_limit(&d, &other).is_none()
    });
    assert_eq!(
        memory_limit(&d, &id).as_deref(),
        Some("67108864"),
        "the running container's cgroups were removed"
    );
    d.berth(&["exec", &id, "true"]).ok();
    d.berth(&["rm", "-f", &id, &other]).ok();
}

/// The host's first whole disk (`/dev/vda`, `/dev/sda`, …), for block I/O throttles.
fn a_disk() -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .filter(|n| std::path::Path::new("/dev").join(n).exists())
        .collect();
    names.sort();
    names.first().map(|n| format!("/dev/{n}"))
}

/// `--cpuset-mems`, `--memory-swappiness`, `--oom-kill-disable`, `--memory-reservation`,
/// `--cpu-period/--cpu-quota`, `--cpuset-cpus` and `--device-{read,write}-{bps,iops}` reach the
/// container's cgroups (they were accepted and dropped before); what this kernel cannot apply
/// is dockerd's warning, and the rest of the resource settings berth cannot give are refused.
#[test]
fn resource_settings_reach_the_cgroups() {
    let d = daemon!();
    if !v1_host() {
        eprintln!("skipped: the file checks below are for cgroup v1 hierarchies");
        return;
    }
    let disk = a_disk().expect("a block device under /sys/block");
    let rdev = {
        use std::os::unix::fs::MetadataExt;
        let r = std::fs::metadata(&disk).unwrap().rdev();
        format!("{}:{}", (r >> 8) & 0xfff, (r & 0xff) | ((r >> 12) & 0xfff00))
    };
    let run = d.berth(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--memory-swappiness",
        "7",
        "--oom-kill-disable",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--device-read-bps",
        &format!("{disk}:1mb"),
        "--device-write-iops",
        &format!("{disk}:77"),
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.out().to_string();
    let cg = |ctrl: &str, file: &str| d.cgroup_file(&id, ctrl, file);
    assert_eq!(cg("memory", "memory.swappiness"), "7");
    assert!(cg("memory", "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(cg("memory", "memory.soft_limit_in_bytes"), (32 << 20).to_string());
    assert_eq!(cg("cpuset", "cpuset.cpus"), "0");
    assert_eq!(cg("cpuset", "cpuset.mems"), "0");
    assert_eq!(cg("cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "25000");
    assert_eq!(
        cg("blkio", "blkio.throttle.read_bps_device"),
        format!("{rdev} 1048576")
    );
    assert_eq!(
        cg("blkio", "blkio.throttle.write_iops_device"),
        format!("{rdev} 77")
    );
    let hc = d
        .berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.MemorySwappiness}} {{.HostConfig.OomKillDisable}} {{.HostConfig.CpusetMems}}",
            &id,
        ])
        .ok();
    assert_eq!(hc.out(), "7 true 0");
    d.berth(&["rm", "-f", &id]).ok();
    // Without block I/O settings the container takes berth's own create path: the same files.
    let id = d
        .berth(&[
            "run",
            "-d",
            "-m",
            "32m",
            "--memory-swappiness",
            "3",
            "--oom-kill-disable",
            "busybox",
            "sleep",
            "300",
        ])
        .ok()
        .out()
        .to_string();
    let cg = |ctrl: &str, file: &str| d.cgroup_file(&id, ctrl, file);
    assert_eq!(cg("memory", "memory.swappiness"), "3");
    assert!(cg("memory", "memory.oom_control").contains("oom_kill_disable 1"));
    d.berth(&["rm", "-f", &id]).ok();

    // A weight this kernel has no file for is dockerd's warning, and discarded.
    if !std::path::Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists() {
        let r = d.berth(&["create", "--blkio-weight", "300", "busybox", "true"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("WARNING: Your kernel does not support Block I/O weight"),
            "{}",
            r.stderr
        );
        d.berth(&["rm", r.out()]).ok();
    }
    // Refused, with dockerd's messages, and nothing created.
    let before = d.berth(&["ps", "-aq"]).ok().stdout;
    for (args, msg) in [
        (
            vec!["--memory-swappiness", "101"],
            "valid memory swappiness range is 0-100",
        ),
        (
            vec!["--cpuset-mems", "63"],
            "Requested memory nodes are not available",
        ),
        (
            vec!["--cpuset-cpus", "999"],
            "Requested CPUs are not available - requested 999, available: ",
        ),
        (
            vec!["-w", "relative"],
            "the working directory 'relative' is invalid, it needs to be an absolute path",
        ),
        (
            vec!["--device-read-bps", "/dev/null:1mb"],
            "/dev/null is not a block device",
        ),
        (
            vec!["--blkio-weight-device", "/dev/vda:5"],
            "invalid weight for device",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.extend(["busybox", "true"]);
        let r = d.berth(&a);
        assert_ne!(r.code, 0, "{a:?}");
        assert!(r.stderr.contains(msg), "{a:?}: {}", r.stderr);
    }
    let r = d.python(
        r#"
import docker
c = docker.from_env()
for kw, msg in [(dict(storage_opt={"size": "1G"}), "--storage-opt is supported only"),
                (dict(cpu_rt_runtime=1000), "real-time"),
                (dict(device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]), "could not select device driver")]:
    try:
        c.containers.create("busybox", ["true"], **kw)
        raise SystemExit("accepted: %r" % kw)
    except docker.errors.APIError as e:
        assert e.status_code == 400 and msg in str(e), (kw, e)
print("ok")
"#,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout, before, "nothing created");
}
