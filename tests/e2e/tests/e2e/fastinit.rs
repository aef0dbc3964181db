//! The shim's own create/exec path (the fast path) against libcontainer: the same containers,
//! once on a daemon using the fast path (the default) and once on one forced through
//! libcontainer (`BERTH_RUNTIME=libcontainer`), must see the same confinement: capabilities,
//! no_new_privs, seccomp, mounts (points, types, options), rlimits, cgroup limits, user,
//! hostname, masked paths, /dev and the devices cgroup.

use berth_e2e::Daemon;

/// What the probe prints inside a container, section by section.
const PROBE: &str = r#"
echo '## status'; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status
echo '## mountinfo'; cat /proc/self/mountinfo
echo '## ulimit'; ulimit -a
echo '## id'; id
echo '## hostname'; hostname
echo '## membership'; sed -E 's#:/.*[0-9a-f]{64}$#:<container>#' /proc/self/cgroup
echo '## cgroup'
for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.soft_limit_in_bytes \
         cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus pids/pids.max devices/devices.list; do
  echo "$f: $(cat /sys/fs/cgroup/$f 2>&1 | tr '\n' ' ')"
done
echo '## masked'
for p in /proc/kcore /proc/keys /proc/timer_list /sys/firmware /proc/acpi /proc/scsi; do
  if cat $p >/dev/null 2>&1 || ls $p/* >/dev/null 2>&1; then echo "$p readable"; else echo "$p masked"; fi
done
echo '## readonly'
for p in /proc/sys /proc/sysrq-trigger /proc/bus /; do
  if touch $p/.probe 2>/dev/null; then echo "$p writable"; rm -f $p/.probe; else echo "$p read-only"; fi
done
echo '## dev'; ls -ln /dev | grep -v '^total' | while read mode links uid gid a b c d e f; do echo "$mode $uid $gid $a $b ${f:-$e}"; done
echo '## devices'
if mknod /dev/probe-sda b 8 0 2>/dev/null; then
  echo mknod-ok; if head -c1 /dev/probe-sda >/dev/null 2>&1; then echo open-ok; else echo open-denied; fi
else echo mknod-denied; fi
echo '## sysctl'; cat /proc/sys/net/ipv4/ip_forward
echo '## pid'; echo $$
echo '## cwd'; pwd
"#;

/// Keeps what must match between the two paths: mountinfo without ids, roots and sources (they
/// name each daemon's own directories), sorted; overlay's super options (its layer paths) out.
/// Docker's masked paths that are directories (on this kind of host).
const MASKED_DIRS: [&str; 5] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

fn normalise(out: &str) -> String {
    let mut sections = Vec::new();
    let out = out.replace('\r', "");
    for sec in out.split("## ").filter(|s| !s.trim().is_empty()) {
        let (name, body) = sec.split_once('\n').unwrap_or((sec, ""));
        let body = if name.trim() == "mountinfo" {
            let mut lines: Vec<String> = body
                .lines()
                .filter_map(|l| {
                    let (left, right) = l.split_once(" - ")?;
                    let f: Vec<&str> = left.split(' ').collect();
                    let optional: Vec<&str> =
                        f[6..].iter().map(|o| o.split(':').next().unwrap_or("")).collect();
                    let r: Vec<&str> = right.split(' ').collect();
                    let superopts = if r[0] == "overlay" {
                        ""
                    } else {
                        r.get(2).copied().unwrap_or("")
                    };
                    // Deliberate difference: read-only, the fast path binds the daemon's shared
                    // empty directory over masked directories and its shared skeleton on
                    // `/sys/fs/cgroup`, where libcontainer mounts a tmpfs each (one superblock
                    // fewer per mount per container). The mount's flags must still match.
                    let fs = if f[5].split(',').next() == Some("ro")
                        && (MASKED_DIRS.contains(&f[4]) || f[4] == "/sys/fs/cgroup")
                    {
                        "(empty, read-only)".to_string()
                    } else {
                        format!("{} {}", r[0], superopts)
                    };
                    Some(format!("{} {} [{}] {}", f[4], f[5], optional.join(","), fs))
                })
                .collect();
            lines.sort();
            lines.join("\n")
        } else if name.trim() == "membership" {
            // The controllers' hierarchies must match; the fast path also puts the process in
            // the named systemd and the unified hierarchy, which libcontainer leaves alone
            // (`in_every_hierarchy` checks the fast path's side).
            body.lines()
                .filter(|l| !l.starts_with("0::") && !l.contains(":name="))
                .collect::<Vec<_>>()
                .join("\n")
        } else if name.trim() == "dev" {
            // Deliberate difference: directories the fast path makes for `--device` nodes
            // (`/dev/net`) are 0755 as runc makes them; libcontainer 0.7 leaves them 0777.
            body.lines()
                .map(|l| match l.strip_prefix('d') {
                    Some(rest) => format!("d {}", rest.split_once(' ').map_or("", |x| x.1)),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            body.trim_end().to_string()
        };
        sections.push(format!("## {}\n{body}", name.trim()));
    }
    sections.join("\n")
}

/// Whether the probe's process was in the container's own cgroup in every hierarchy, the
/// unified and the named ones included (the fast path joins v1 through `tasks` and is born in
/// the unified one by `CLONE_INTO_CGROUP`).
fn in_every_hierarchy(out: &str) -> bool {
    let out = out.replace('\r', "");
    let Some(sec) = out.split("## membership\n").nth(1) else {
        return false;
    };
    let lines: Vec<&str> = sec.lines().take_while(|l| !l.starts_with("## ")).collect();
    lines.iter().any(|l| l.starts_with("0::"))
        && lines.len() > 2
        && lines.iter().all(|l| l.ends_with(":<container>"))
}

/// The lines only one side has (`-` fast path, `+` libcontainer), and the whole of both.
fn diff(a: &str, b: &str) -> String {
    let only = |x: &str, y: &str, tag: char| {
        x.lines()
            .filter(|l| !y.lines().any(|m| m == *l))
            .map(|l| format!("{tag} {l}\n"))
            .collect::<String>()
    };
    format!(
        "{}{}\n--- fast path:\n{a}\n--- libcontainer:\n{b}",
        only(a, b, '-'),
        only(b, a, '+')
    )
}

fn libcontainer_daemon() -> Daemon {
    let mut d = Daemon::start_bare();
    d.stop();
    d.spawn_with_env(&[("BERTH_RUNTIME", "libcontainer")]);
    d.berth_stdin(&["import", "-", "busybox:latest"], berth_e2e::busybox_tar())
        .ok();
    d
}

/// Which path created container `id` (its runtime.log names a fallback to libcontainer).
fn created_by_libcontainer(d: &Daemon, id: &str) -> bool {
    let log = d.data_root().join("containers").join(id).join("runtime.log");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("with libcontainer")
}

fn probe(d: &Daemon, flags: &[&str], expect_libcontainer: bool) -> String {
    let mut args = vec!["run", "-d", "--network", "none", "--hostname", "probe"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", PROBE]);
    let id = d.docker(&args).ok().out().to_string();
    let code = d.docker(&["wait", &id]).ok().out().to_string();
    let logs = d.docker(&["logs", &id]).ok();
    assert_eq!(
        code, "0",
        "probe failed with {flags:?}: {}{}",
        logs.stdout, logs.stderr
    );
    assert_eq!(
        created_by_libcontainer(d, &id),
        expect_libcontainer,
        "container with {flags:?} not created by the expected path"
    );
    if !expect_libcontainer {
        assert!(
            in_every_hierarchy(&logs.stdout),
            "fast-path container with {flags:?} not in all its cgroups:\n{}",
            logs.stdout
        );
    }
    d.docker(&["rm", &id]).ok();
    normalise(&logs.stdout)
}

#[test]
fn fast_path_containers_see_what_libcontainer_ones_see() {
    if !berth_e2e::require_root(module_path!()) {
        return;
    }
    let fast = Daemon::start();
    let lc = libcontainer_daemon();
    let host_dir = tempfile::tempdir().unwrap();
    let bind = format!("{}:/data:ro", host_dir.path().display());
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec![
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "--cap-drop",
            "CHOWN",
        ],
        vec!["--privileged"],
        vec!["-u", "nobody"],
        vec!["-u", "1234:5678", "--group-add", "42"],
        vec!["--read-only"],
        vec!["--security-opt", "no-new-privileges"],
        vec!["--security-opt", "seccomp=unconfined"],
        vec!["--ulimit", "nofile=1000:2000", "--ulimit", "nproc=500:600"],
        vec![
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--cpu-shares",
            "512",
        ],
        vec![
            "--device",
            "/dev/zero:/dev/myzero",
            "--device",
            "/dev/null:/dev/sub/mynull:r",
        ],
        vec!["--memory", "32m", "--memory-swap", "-1"],
        vec!["--device-cgroup-rule", "c 42:* rmw"],
        vec!["--tmpfs", "/scratch:size=1m,mode=1777"],
        vec!["-v", bind.as_str(), "-v", "fastinit-vol:/vol"],
        vec!["--sysctl", "net.ipv4.ip_forward=1"],
        vec!["--init"],
        vec!["-t"],
        vec!["-w", "/tmp", "--oom-score-adj", "100"],
    ];
    for flags in &cases {
        let a = probe(&fast, flags, false);
        let b = probe(&lc, flags, true);
        assert!(!a.is_empty());
        assert!(
            a == b,
            "fast path and libcontainer differ for {flags:?}:\n{}",
            diff(&a, &b)
        );
    }
}

/// Exec on a fast-path container against exec on a libcontainer one.
#[test]
fn fast_path_execs_see_what_libcontainer_execs_see() {
    if !berth_e2e::require_root(module_path!()) {
        return;
    }
    let fast = Daemon::start();
    let lc = libcontainer_daemon();
    let run = |d: &Daemon, flags: &[&str]| {
        let mut args = vec!["run", "-d", "--network", "none", "--hostname", "probe"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sleep", "600"]);
        d.docker(&args).ok().out().to_string()
    };
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![], vec![]),
        (vec![], vec!["-u", "nobody"]),
        (vec![], vec!["--privileged"]),
        (vec!["-u", "nobody"], vec![]),
        (
            vec!["--security-opt", "no-new-privileges", "--cap-drop", "ALL"],
            vec![],
        ),
        (
            vec!["--ulimit", "nofile=1000:2000", "--memory", "64m"],
            vec!["-w", "/tmp"],
        ),
        (vec![], vec!["-t"]),
    ];
    for (run_flags, exec_flags) in &cases {
        let mut outs = Vec::new();
        for (d, lcpath) in [(&fast, false), (&lc, true)] {
            let id = run(d, run_flags);
            assert_eq!(created_by_libcontainer(d, &id), lcpath);
            let mut args = vec!["exec"];
            args.extend_from_slice(exec_flags);
            args.extend_from_slice(&[id.as_str(), "sh", "-c", PROBE]);
            let r = d.docker(&args);
            assert_eq!(
                r.code, 0,
                "exec {exec_flags:?} in {run_flags:?}: {}{}",
                r.stdout, r.stderr
            );
            if !lcpath {
                assert!(
                    in_every_hierarchy(&r.stdout),
                    "fast-path exec {exec_flags:?} not in all its cgroups:\n{}",
                    r.stdout
                );
            }
            d.docker(&["rm", "-f", &id]).ok();
            outs.push(normalise(&r.stdout));
        }
        assert!(
            outs[0] == outs[1],
            "fast path and libcontainer execs differ for run {run_flags:?} exec {exec_flags:?}:\n{}",
            diff(&outs[0], &outs[1])
        );
    }
}

/// What the fast path leaves behind: nothing in the exec root, no cgroup.
#[test]
fn fast_path_run_rm_leaves_no_runtime_state_or_cgroup() {
    let d = daemon!();
    d.berth(&["run", "--rm", "--network", "none", "busybox", "true"])
        .ok();
    let id = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "600"])
        .ok()
        .out()
        .to_string();
    assert!(!created_by_libcontainer(&d, &id));
    let e = d.berth(&["exec", &id, "true"]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    d.berth(&["rm", "-f", &id]).ok();
    let runtime = d.data_root().join("..").join("exec");
    let leftovers: Vec<_> = walk(&runtime)
        .into_iter()
        .filter(|p| !p.ends_with("berth.sock") && !p.to_string_lossy().contains("/netns"))
        .collect();
    assert!(
        leftovers.iter().all(|p| p.is_dir()),
        "files left in the exec root: {leftovers:?}"
    );
    d.eventually("the container's cgroups are removed", || {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .all(|h| !walk_names(&h.path()).iter().any(|n| n.contains(&id)))
    });
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                v.extend(walk(&path));
            }
            v.push(path);
        }
    }
    v
}

fn walk_names(p: &std::path::Path) -> Vec<String> {
    // Two levels: <hierarchy>/<parent>/<id>.
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten().filter(|e| e.path().is_dir()) {
            if let Ok(rd2) = std::fs::read_dir(e.path()) {
                v.extend(
                    rd2.flatten()
                        .map(|x| x.file_name().to_string_lossy().into_owned()),
                );
            }
        }
    }
    v
}
