//! Managing running containers: pause/unpause, top, stats, update, detach keys.

#[test]
fn pause_and_unpause_freeze_the_container() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "pz", "busybox", "sleep", "60"])
        .ok();
    d.berth(&["pause", "pz"]).ok();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "pz"])
            .ok()
            .out(),
        "paused true"
    );
    let ps = d.berth(&["ps", "--format", "{{.Status}}"]).ok();
    assert!(ps.out().ends_with("(Paused)"), "{}", ps.out());
    let ex = d.berth(&["exec", "pz", "true"]);
    assert_ne!(ex.code, 0);
    assert!(ex.stderr.contains("is paused"), "{}", ex.stderr);
    let again = d.berth(&["pause", "pz"]);
    assert!(again.stderr.contains("is already paused"), "{}", again.stderr);
    d.berth(&["unpause", "pz"]).ok();
    assert_eq!(d.berth(&["exec", "pz", "echo", "thawed"]).ok().out(), "thawed");
    let not = d.berth(&["unpause", "pz"]);
    assert!(not.stderr.contains("is not paused"), "{}", not.stderr);
    // A paused container can still be killed.
    d.berth(&["pause", "pz"]).ok();
    d.berth(&["kill", "pz"]).ok();
    assert_eq!(d.berth(&["wait", "pz"]).ok().out(), "137");
    let stopped = d.berth(&["pause", "pz"]);
    assert!(stopped.stderr.contains("is not running"), "{}", stopped.stderr);
}

#[test]
fn top_lists_the_container_processes() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "tp",
        "busybox",
        "sh",
        "-c",
        "sleep 61 & sleep 62",
    ])
    .ok();
    // The shell forks `sleep 61` some time after start returns (long after, on a loaded machine),
    // and top shows the processes of that moment: wait until both are there.
    let mut top = d.berth(&["top", "tp"]).ok();
    d.eventually("top lists both sleeps", || {
        top = d.berth(&["top", "tp"]).ok();
        top.stdout.contains("sleep 61") && top.stdout.contains("sleep 62")
    });
    let header = top.stdout.lines().next().unwrap();
    assert!(header.contains("PID") && header.contains("CMD"), "{header}");
    assert!(
        !top.stdout.contains("berthd"),
        "host processes leaked into top: {}",
        top.stdout
    );
}

#[test]
fn stats_and_update() {
    let d = daemon!();
    d.berth(&[
        "run", "-d", "--name", "st", "--memory", "64m", "busybox", "sleep", "60",
    ])
    .ok();
    let s = d
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            "st",
        ])
        .ok();
    assert!(s.out().starts_with("st "), "{}", s.out());
    assert!(s.out().contains("/ 64MiB"), "{}", s.out());
    assert!(s.out().ends_with(" 1"), "{}", s.out());
    d.berth(&["update", "--memory", "128m", "--pids-limit", "50", "st"])
        .ok();
    let s = d
        .berth(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "st"])
        .ok();
    assert!(s.out().contains("/ 128MiB"), "{}", s.out());
    assert_eq!(
        d.berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            "st"
        ])
        .ok()
        .out(),
        "134217728 50"
    );
    // dockerd's checks and records (scripts/sidebyside/prune-update.txt): "unlimited" pids are
    // recorded as 0; `--cpus` within the machine's CPUs; a kernel memory limit warns, and under
    // 6MB is refused (create alike).
    let r = d.docker(&["update", "--pids-limit", "-1", "st"]).ok();
    assert_eq!(r.out(), "st");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", "st"])
            .ok()
            .out(),
        "0"
    );
    let r = d.docker(&["update", "--cpus", "999", "st"]);
    assert!(
        r.code == 1 && r.stderr.contains("Range of CPUs is from 0.01 to"),
        "{r:?}"
    );
    let r = d.docker(&["update", "--kernel-memory", "10m", "st"]).ok();
    assert!(
        r.stdout.contains(
            "Specifying a kernel memory limit is deprecated and will be removed in a future release."
        ),
        "{r:?}"
    );
    let r = d.docker(&["update", "--kernel-memory", "1m", "st"]);
    assert!(
        r.code == 1 && r.stderr.contains("Minimum kernel memory limit allowed is 6MB"),
        "{r:?}"
    );
    let r = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--kernel-memory",
            "10m",
            "busybox",
            "true",
        ])
        .ok();
    assert!(
        r.stderr
            .contains("WARNING: Specifying a kernel memory limit is deprecated"),
        "{r:?}"
    );
    // The rest of `docker update`'s settings reach the cgroups and the record (they were
    // dropped before); what it cannot change is refused.
    if std::path::Path::new("/sys/fs/cgroup/cpu/cpu.cfs_period_us").exists() {
        d.berth(&[
            "update",
            "--cpu-period",
            "40000",
            "--cpu-quota",
            "20000",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--memory-reservation",
            "16m",
            "st",
        ])
        .ok();
        let id = d
            .berth(&["inspect", "-f", "{{.Id}}", "st"])
            .ok()
            .out()
            .to_string();
        let cg = |ctrl: &str, file: &str| d.cgroup_file(&id, ctrl, file);
        assert_eq!(cg("cpu", "cpu.cfs_period_us"), "40000");
        assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(cg("cpuset", "cpuset.cpus"), "0");
        assert_eq!(cg("memory", "memory.soft_limit_in_bytes"), (16 << 20).to_string());
        assert_eq!(
            d.berth(&[
                "inspect",
                "-f",
                "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpusetCpus}} {{.HostConfig.CpusetMems}} {{.HostConfig.MemoryReservation}}",
                "st"
            ])
            .ok()
            .out(),
            "40000 20000 0 0 16777216"
        );
        let conflict = d.berth(&["update", "--cpus", "1", "st"]);
        assert_ne!(conflict.code, 0);
        assert!(
            conflict
                .stderr
                .contains("Nano CPUs cannot be updated as CPU Period has already been set"),
            "{}",
            conflict.stderr
        );
        let bad = d.berth(&["update", "--cpuset-mems", "63", "st"]);
        assert_ne!(bad.code, 0);
        assert!(
            bad.stderr.contains("Requested memory nodes are not available"),
            "{}",
            bad.stderr
        );
        let r = d.python(
            r#"
import docker
c = docker.from_env()
c.api.update_container("st", cpu_period=60000, mem_reservation="8m")
hc = c.api.inspect_container("st")["HostConfig"]
assert (hc["CpuPeriod"], hc["MemoryReservation"]) == (60000, 8 << 20), hc
r = c.api._post_json(c.api._url("/containers/{0}/update", "st"), data={"CpuRealtimeRuntime": 10})
assert r.status_code == 400 and "real-time" in r.text, (r.status_code, r.text)
print("ok")
"#,
        );
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
}

#[test]
fn detach_keys_leave_the_container_running() {
    let d = daemon!();
    // Raw API: attach with stdin and send ctrl-p ctrl-q.
    d.berth(&["run", "-d", "-i", "--name", "dk", "busybox", "cat"])
        .ok();
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"POST /v1.41/containers/dk/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    s.write_all(b"echo me\n").unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // Wait for cat's echo (after the rest of the 101 headers), then detach.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("echo me") {
        let n = s.read(&mut buf).expect("echo arrives");
        assert!(
            n > 0,
            "stream closed before the echo: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    s.write_all(&[16, 17]).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("the daemon closes the attach after the detach keys");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}}", "dk"]).ok().out(),
        "running"
    );
}

#[test]
fn attaching_to_a_stopped_container_is_refused() {
    let d = daemon!();
    d.berth(&["run", "--name", "stp", "busybox", "true"]).ok();
    let r = d.berth(&["attach", "stp"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("You cannot attach to a stopped container, start it first"),
        "{}",
        r.stderr
    );
    let r = d.docker(&["attach", "stp"]);
    assert!(
        r.stderr
            .contains("You cannot attach to a stopped container, start it first"),
        "{}",
        r.stderr
    );
}

#[test]
fn stats_without_no_stream_redraws() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "60"])
        .ok();
    let out = std::process::Command::new("timeout")
        .args([
            "3.5",
            berth_e2e::bin_dir().join("berth").to_str().unwrap(),
            "stats",
            "live",
        ])
        .env("BERTH_HOST", d.host())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("CONTAINER ID").count() >= 2,
        "expected several refreshes: {text}"
    );
    assert!(text.contains("\x1b[2J"), "no screen redraw: {text:?}");
}
