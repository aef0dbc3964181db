//! Many containers and many clients at once (issue 11), at a CI-friendly size: the big-N
//! measurements live in bench/scale.py.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Cgroup directories below this daemon's parent, in every hierarchy.
fn cgroups_left(parent: &str) -> Vec<String> {
    let mut out = Vec::new();
    for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let Ok(rd) = std::fs::read_dir(base) else { continue };
        for c in rd.flatten() {
            for p in [c.path().join(parent), std::path::Path::new(base).join(parent)] {
                if let Ok(children) = std::fs::read_dir(&p) {
                    for ch in children.flatten() {
                        if ch.file_type().is_ok_and(|t| t.is_dir()) {
                            out.push(ch.path().display().to_string());
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// 20 clients at once, each creating, starting, killing, waiting for and removing 5 containers
/// while it lists, inspects, reads logs and execs; one more client attaches to a chatty container
/// and never reads. Every command succeeds, within a deadline, and afterwards no container record,
/// shim, mount or cgroup is left, and `berthd check` finds nothing. (The containers sleep long
/// enough to be killed under load: an earlier `sleep 1` finished on its own and read as early
/// exits with status 0.)
#[test]
fn twenty_concurrent_clients_finish_without_errors_or_leaks() {
    let mut d = daemon!();
    // The slow reader: its output fills the pipe nobody drains; the daemon must not wait on it
    // for anything but that container's output.
    let mut slow = d
        .berth_command()
        .args(["run", "--name", "chatty", "--network", "none", "busybox", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    d.eventually("chatty running", || {
        d.berth(&["inspect", "-f", "{{.State.Running}}", "chatty"])
            .stdout
            .trim()
            == "true"
    });

    let started = Instant::now();
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|c| {
                let d = &d;
                s.spawn(move || {
                    let errors = std::cell::RefCell::new(Vec::new());
                    let check = |what: &str, r: berth_e2e::Run| {
                        if r.code != 0 {
                            errors
                                .borrow_mut()
                                .push(format!("client {c}: {what}: exit {}: {} {}", r.code, r.stdout.trim(), r.stderr.trim()));
                        }
                        r
                    };
                    for i in 0..5 {
                        let id = check(
                            "run -d",
                            d.berth(&[
                                "run",
                                "-d",
                                "--network",
                                "none",
                                "busybox",
                                "sh",
                                "-c",
                                "echo out-$HOSTNAME; exec sleep 60",
                            ]),
                        )
                        .stdout
                        .trim()
                        .to_string();
                        if id.is_empty() {
                            continue;
                        }
                        match i % 3 {
                            0 => drop(check("ps -a", d.berth(&["ps", "-a"]))),
                            1 => drop(check("inspect", d.berth(&["inspect", &id]))),
                            _ => drop(check("exec", d.berth(&["exec", &id, "true"]))),
                        }
                        let st = d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.StartedAt}} {{.State.FinishedAt}} {{.State.ExitCode}}", &id]).stdout;
                        if !st.starts_with("running") {
                            errors.borrow_mut().push(format!("client {c}: not running: {st}"));
                        }
                        // The echo may not have run yet under load: await its line (logs -f) before
                        // the kill, which would otherwise race it.
                        let mut follow = d
                            .berth_command()
                            .args(["logs", "-f", &id])
                            .stdin(Stdio::null())
                            .stdout(Stdio::piped())
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap();
                        let mut first = String::new();
                        let _ = std::io::BufRead::read_line(
                            &mut std::io::BufReader::new(follow.stdout.take().unwrap()),
                            &mut first,
                        );
                        let _ = follow.kill();
                        let _ = follow.wait();
                        if !first.starts_with("out-") {
                            errors.borrow_mut().push(format!("client {c}: logs -f {first:?}"));
                        }
                        check("kill", d.berth(&["kill", &id]));
                        let code = check("wait", d.berth(&["wait", &id])).stdout.trim().to_string();
                        if code != "137" {
                            errors.borrow_mut().push(format!("client {c}: exit code {code:?}"));
                        }
                        let logs = check("logs", d.berth(&["logs", &id])).stdout;
                        if !logs.starts_with("out-") {
                            errors.borrow_mut().push(format!("client {c}: logs {logs:?}"));
                        }
                        check("rm", d.berth(&["rm", &id]));
                    }
                    errors.into_inner()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    assert!(
        errors.is_empty(),
        "{} errors:\n{}",
        errors.len(),
        errors.join("\n")
    );
    // 100 containers, 20 at a time; generous for a loaded 2-core CI machine.
    assert!(took < Duration::from_secs(120), "100 containers took {took:?}");

    // The slow reader held only its own container.
    let _ = slow.kill();
    let _ = slow.wait();
    d.berth(&["rm", "-f", "chatty"]).ok();
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "", "records left");
    d.eventually("shims gone", || d.shim_pids().is_empty());
    assert_eq!(d.mounts_left(), Vec::<String>::new(), "mounts left");
    // Exited containers' empty cgroups go once exits pause (berth_daemon::cgroups::Reaper).
    d.eventually("cgroups removed", || cgroups_left(&d.cgroup_parent).is_empty());
    let bundles = std::fs::read_dir(d.data_root().join("containers"))
        .unwrap()
        .count();
    assert_eq!(bundles, 0, "container directories left");
    d.stop();
    let check = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
    assert_eq!(check.code, 0, "berthd check: {}{}", check.stdout, check.stderr);
    d.spawn();
}

/// The defect: generated names came from 840 pairs and the 840th unnamed create spun forever
/// under the container table's lock. Names now come from tens of thousands of pairs with a
/// numeric suffix after collisions (the exhaustion itself is unit-tested on a tiny word list);
/// here: unnamed creates at once get distinct, docker-style names, and a named create is not held up.
#[test]
fn unnamed_creates_get_distinct_generated_names_without_hanging() {
    let d = daemon!();
    let started = Instant::now();
    let names: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..10)
                        .map(|_| {
                            let id = d
                                .berth(&["create", "--network", "none", "busybox", "true"])
                                .ok()
                                .out()
                                .to_string();
                            d.berth(&["inspect", "-f", "{{.Name}}", &id])
                                .ok()
                                .out()
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    d.berth(&["create", "--name", "named", "busybox", "true"]).ok();
    assert!(started.elapsed() < Duration::from_secs(60));
    let mut uniq = names.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), names.len(), "duplicate names: {names:?}");
    for n in &names {
        let n = n.strip_prefix('/').expect("leading slash");
        let (a, b) = n.split_once('_').unwrap_or_else(|| panic!("{n}"));
        assert!(a.bytes().all(|c| c.is_ascii_lowercase()), "{n}");
        assert!(
            b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{n}"
        );
    }
    // The docker CLI sees the same names.
    let listed = Command::new(berth_e2e::docker_cli())
        .env("DOCKER_HOST", d.host())
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 41);
}

fn environ(pid: &str) -> Vec<String> {
    std::fs::read(format!("/proc/{}/environ", pid.trim()))
        .unwrap()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// berthd runs without glibc's per-thread malloc cache, whose blocks kept freed pages resident
/// after containers went (berth_sys::heap::without_thread_cache): it re-exec'd itself with the
/// tunable, under its own name. Its shims get the tunable from it (not berthd's re-exec marker),
/// as an idle shim's heap trims down only without the cache; containers and execs do not.
#[test]
fn berthd_and_shims_run_without_mallocs_thread_cache_and_containers_do_not_inherit_it() {
    let d = daemon!();
    let pid = std::fs::read_to_string(d.root.join("berthd.pid")).unwrap();
    let env = environ(&pid);
    assert!(
        env.iter()
            .any(|v| v == "GLIBC_TUNABLES=glibc.malloc.tcache_count=0"),
        "berthd was not exec'd with the tunable: {env:?}"
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.trim())).unwrap();
    assert_eq!(comm.trim(), "berthd");
    let id = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "600"])
        .ok()
        .out()
        .to_string();
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let shim_env = environ(&shims[0].to_string());
    let tunables: Vec<_> = shim_env
        .iter()
        .filter(|v| v.starts_with("GLIBC_TUNABLES=") || v.starts_with("BERTH_ADDED_"))
        .collect();
    assert_eq!(
        tunables,
        ["GLIBC_TUNABLES=glibc.malloc.tcache_count=0"],
        "{shim_env:?}"
    );
    let pid = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .out()
        .to_string();
    let inside = environ(&pid);
    assert!(
        !inside.iter().any(|v| v.starts_with("GLIBC_TUNABLES=")),
        "{inside:?}"
    );
    let inside = d.berth(&["exec", &id, "env"]).ok();
    assert!(!inside.stdout.contains("GLIBC_TUNABLES"), "{}", inside.stdout);
    d.berth(&["rm", "-f", &id]).ok();
}

/// kB of a process's own program file mapped in its page tables (its code and constants), and
/// the size of those mappings.
fn program_pages_kb(pid: &str) -> (u64, u64) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let exe = exe.to_string_lossy().into_owned();
    let mut ours = false;
    let (mut rss, mut size) = (0, 0);
    for line in std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap()
        .lines()
    {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        let mut kb = || f.next().unwrap().parse::<u64>().unwrap();
        if !first.ends_with(':') {
            ours = line.ends_with(exe.as_str());
        } else if first == "Rss:" && ours {
            rss += kb();
        } else if first == "Size:" && ours {
            size += kb();
        }
    }
    (rss, size)
}

/// Reads `read` every 100 ms until `done` holds or 20 s have passed; the last reading. Polled
/// from /proc alone: a request to the daemon (as `eventually` makes) maps code again.
fn poll<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut v = read();
    while !done(&v) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        v = read();
    }
    v
}

/// Once removals pause, berthd stops mapping the code only they ran
/// (berth_sys::heap::release_code_pages): RSS after a burst falls back, rather than keeping every
/// page that start-up or the burst touched, and the daemon goes on serving.
#[test]
fn berthd_unmaps_code_it_ran_once_removals_pause() {
    let d = daemon!();
    let pid = std::fs::read_to_string(d.root.join("berthd.pid")).unwrap();
    let pid = pid.trim();
    let ids: Vec<String> = (0..10)
        .map(|_| {
            d.berth(&["run", "-d", "--network", "none", "busybox", "sleep", "600"])
                .ok()
                .out()
                .to_string()
        })
        .collect();
    d.berth(&["ps", "-a"]).ok();
    d.berth(&["exec", &ids[0], "true"]).ok();
    let busy = program_pages_kb(pid).0;
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    d.berth(&args).ok();
    let idle = poll(|| program_pages_kb(pid).0, |idle| idle * 2 < busy);
    assert!(
        idle * 2 < busy,
        "berthd's program pages: {busy} kB after the burst, still {idle} kB 20 s after it"
    );
    // Still serving: the next request maps what it needs again.
    d.berth(&["run", "--rm", "--network", "none", "busybox", "true"])
        .ok();
    assert!(d.berth(&["ps", "-aq"]).ok().out().is_empty());
    eprintln!("berthd program pages: {busy} kB busy, {idle} kB once idle");
}

/// A shim waiting on its container unmaps the code its start ran after a quiet second
/// (berth_sys::heap::release_code_pages in its poll loop), and still answers afterwards.
#[test]
fn an_idle_shim_unmaps_the_code_its_start_ran() {
    let d = daemon!();
    let id = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "600"])
        .ok()
        .out()
        .to_string();
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let pid = shims[0].to_string();
    let (rss, size) = poll(|| program_pages_kb(&pid), |(rss, size)| rss * 4 < *size);
    assert!(
        rss * 4 < size,
        "the shim still maps {rss} kB of its {size} kB program 20 s after the start"
    );
    let out = d.berth(&["exec", &id, "echo", "still here"]).ok();
    assert_eq!(out.out(), "still here");
    d.berth(&["rm", "-f", &id]).ok();
    eprintln!("shim program pages once idle: {rss} of {size} kB");
}
