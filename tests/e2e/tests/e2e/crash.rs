//! Crash consistency: every kill point, nothing lost, nothing leaked.
//!
//! `every_failpoint_leaves_a_consistent_store` arms each failpoint berthd declares
//! (`berth_sys::failpoint::DECLARED`, printed by `berthd --list-failpoints`), drives berthd to it
//! (it kills itself there with SIGKILL), restarts it, and checks that what existed before is
//! intact, that the interrupted operation either happened completely or not at all, that the
//! daemon works, and that `berthd check` finds nothing. It fails if a declared point is never
//! reached. The other tests pin the start-up reconciliation and the simulated reboot.

use std::time::Duration;

use berth_e2e::Daemon;

/// A one-file root filesystem tar, so an import makes a layer nobody else has.
fn tiny_tar(name: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("berth-e2e-tiny-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), name.as_bytes()).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&dir)
        .args(["-c", "."])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    out.stdout
}

fn state(d: &Daemon, name: &str) -> String {
    d.berth(&["inspect", "-f", "{{.State.Status}}", name])
        .ok()
        .out()
        .to_string()
}

fn image_id(d: &Daemon, name: &str) -> Option<String> {
    let r = d.berth(&["image", "inspect", "-f", "{{.Id}}", name]);
    (r.code == 0).then(|| r.out().to_string())
}

/// The state every failpoint run starts from.
struct Base {
    keeper_pid: String,
    busybox: String,
    archive: std::path::PathBuf,
    /// A registry holding `test/pullme:1`, for the pull and push points.
    registry: String,
}

fn setup(d: &Daemon, registry: &str) -> Base {
    d.berth_stdin(&["import", "-", "victim:1"], &tiny_tar("victim"))
        .ok();
    d.berth_stdin(&["import", "-", "cargo:1"], &tiny_tar("cargo"))
        .ok();
    let archive = d.root.join("cargo.tar");
    d.berth(&["save", "-o", archive.to_str().unwrap(), "cargo:1"])
        .ok();
    d.berth(&["rmi", "cargo:1"]).ok();
    d.berth(&["run", "-d", "--name", "keeper", "busybox", "sleep", "600"])
        .ok();
    d.berth(&["run", "-d", "--name", "stopme", "busybox", "sleep", "600"])
        .ok();
    d.berth(&[
        "run",
        "--name",
        "idle",
        "busybox",
        "sh",
        "-c",
        "echo changed > /data",
    ])
    .ok();
    d.berth(&["create", "--name", "sleeper", "busybox", "sleep", "600"])
        .ok();
    Base {
        registry: registry.to_string(),
        keeper_pid: d
            .berth(&["inspect", "-f", "{{.State.Pid}}", "keeper"])
            .ok()
            .out()
            .to_string(),
        busybox: image_id(d, "busybox").unwrap(),
        archive,
    }
}

/// The operation that reaches `point`.
fn scenario(d: &Daemon, base: &Base, point: &str) {
    let area = point.rsplit_once('.').map(|(a, _)| a).unwrap_or(point);
    match area {
        "image.layer" | "image.create" => {
            let _ = d.berth_stdin(&["import", "-", "fresh:1"], &tiny_tar("fresh"));
        }
        "image.load" => {
            let _ = d.berth(&["load", "-i", base.archive.to_str().unwrap()]);
        }
        "image.commit" => {
            let _ = d.berth(&["commit", "idle", "snap:1"]);
        }
        "image.tag" => {
            let _ = d.berth(&["tag", "busybox", "alias:1"]);
        }
        "image.pull" => {
            let _ = d.berth(&["pull", &format!("{}/test/pullme:1", base.registry)]);
        }
        "image.push" => {
            let name = format!("{}/test/pushme:1", base.registry);
            d.berth(&["tag", "busybox", &name]).ok();
            let _ = d.berth(&["push", &name]);
        }
        "image.rmi" => {
            let _ = d.berth(&["rmi", "victim:1"]);
        }
        "container.create" => {
            let _ = d.berth(&["create", "--name", "fresh", "busybox", "sleep", "600"]);
        }
        "container.start" => {
            let _ = d.berth(&["start", "sleeper"]);
        }
        "container.shm" => {
            let _ = d.berth(&[
                "run",
                "-d",
                "--name",
                "shared",
                "--ipc",
                "shareable",
                "busybox",
                "sleep",
                "600",
            ]);
        }
        "container.stop" => {
            let _ = d.berth(&["stop", "-t", "1", "stopme"]);
        }
        "container.exit" => {
            let _ = d.berth(&["run", "-d", "--name", "brief", "busybox", "true"]);
        }
        "container.reap" => {
            // Two exits at once, one under a cgroup parent of its own: both wait for the reaper.
            let own = format!("/{}/own", d.cgroup_parent);
            d.berth(&["run", "-d", "--name", "reaped", "busybox", "sleep", "600"])
                .ok();
            d.berth(&[
                "run",
                "-d",
                "--name",
                "reaped-own",
                "--cgroup-parent",
                &own,
                "busybox",
                "sleep",
                "600",
            ])
            .ok();
            let _ = d.berth(&["kill", "reaped", "reaped-own"]);
        }
        "container.rm" => {
            let _ = d.berth(&["rm", "idle"]);
        }
        "container.rename" => {
            let _ = d.berth(&["rename", "idle", "renamed"]);
        }
        "volume.create" => {
            let _ = d.berth(&["volume", "create", "crashvol"]);
        }
        "volume.rm" => {
            d.berth(&["volume", "create", "doomed"]).ok();
            let _ = d.berth(&["volume", "rm", "doomed"]);
        }
        "network.lease" | "network.setup" => {
            let _ = d.berth(&[
                "run", "-d", "--name", "netted", "-p", "80", "busybox", "sleep", "600",
            ]);
        }
        "network.teardown" => {
            // The exit's veth, namespace and lease are left to a background thread.
            let _ = d.berth(&["run", "-d", "--name", "brief-net", "busybox", "true"]);
        }
        "network.disconnect" => {
            d.berth(&[
                "run", "-d", "--name", "discon", "-p", "80", "busybox", "sleep", "600",
            ])
            .ok();
            let _ = d.berth(&["network", "disconnect", "bridge", "discon"]);
        }
        "network.create" => {
            let _ = d.berth(&["network", "create", "--subnet", &crash_subnet(), "crashnet"]);
        }
        "network.rm" => {
            d.berth(&["network", "create", "--subnet", &crash_subnet(), "doomed"])
                .ok();
            let _ = d.berth(&["network", "rm", "doomed"]);
        }
        "build.context" | "build.run" | "build.step" => {
            let dir = d.root.join("crash-build");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("Dockerfile"),
                "FROM busybox\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n",
            )
            .unwrap();
            let _ = d.berth(&["build", "-t", "built:1", dir.to_str().unwrap()]);
        }
        other => panic!("failpoint {point}: no scenario for {other}; add one to crash::scenario"),
    }
}

/// After the restart: the interrupted operation happened completely or not at all.
fn settled(d: &Daemon, point: &str, registry: &str) {
    let area = point.rsplit_once('.').map(|(a, _)| a).unwrap_or(point);
    match area {
        "image.layer" | "image.create" => {
            if image_id(d, "fresh:1").is_some() {
                d.berth(&["create", "--name", "from-fresh", "fresh:1", "x"]).ok();
            }
        }
        "image.load" => {
            if image_id(d, "cargo:1").is_some() {
                d.berth(&["create", "--name", "from-cargo", "cargo:1", "x"]).ok();
            }
        }
        "image.commit" => {
            if image_id(d, "snap:1").is_some() {
                let out = d.berth(&["run", "--rm", "snap:1", "cat", "/data"]).ok();
                assert_eq!(out.out(), "changed");
            }
        }
        "image.tag" => {
            if let Some(id) = image_id(d, "alias:1") {
                assert_eq!(Some(id), image_id(d, "busybox"));
            }
        }
        "image.pull" => {
            let name = format!("{registry}/test/pullme:1");
            if image_id(d, &name).is_some() {
                d.berth(&["run", "--rm", &name, "true"]).ok();
            }
            // And the pull works now, whatever the crash left.
            d.berth(&["pull", &name]).ok();
        }
        "image.push" => {
            let name = format!("{registry}/test/pushme:1");
            d.berth(&["push", &name]).ok();
        }
        "image.rmi" => {
            if image_id(d, "victim:1").is_some() {
                d.berth(&["create", "--name", "from-victim", "victim:1", "x"])
                    .ok();
            }
        }
        "container.create" => {
            if d.berth(&["inspect", "fresh"]).code == 0 {
                d.berth(&["start", "fresh"]).ok();
                assert_eq!(state(d, "fresh"), "running");
            }
        }
        "container.start" => {
            let s = state(d, "sleeper");
            if s != "running" {
                assert!(s == "created" || s == "exited", "sleeper is {s}");
                d.berth(&["start", "sleeper"]).ok();
            }
            assert_eq!(state(d, "sleeper"), "running");
            d.berth(&["exec", "sleeper", "true"]).ok();
        }
        "container.shm" => {
            // Its /dev/shm mount went with the start that never finished; a start mounts it
            // again, and another container can join it.
            let id = d
                .berth(&["inspect", "-f", "{{.Id}}", "shared"])
                .ok()
                .out()
                .to_string();
            let shm = d.root.join("exec/shm").join(&id);
            if state(d, "shared") != "running" {
                assert!(!shm.exists(), "{point}: {} left", shm.display());
                d.berth(&["start", "shared"]).ok();
            }
            d.berth(&[
                "run",
                "--rm",
                "--ipc",
                "container:shared",
                "busybox",
                "touch",
                "/dev/shm/joined",
            ])
            .ok();
            d.berth(&["exec", "shared", "test", "-e", "/dev/shm/joined"]).ok();
        }
        "container.stop" => {
            let s = state(d, "stopme");
            assert!(s == "running" || s == "exited", "stopme is {s}");
        }
        "container.exit" => {
            d.eventually("brief's exit recorded", || state(d, "brief") == "exited");
        }
        "container.reap" => {
            // Their empty cgroups, which the reaper was about to remove, went at the restart.
            for (name, parent) in [
                ("reaped", d.cgroup_parent.clone()),
                ("reaped-own", format!("{}/own", d.cgroup_parent)),
            ] {
                assert_eq!(state(d, name), "exited");
                let id = d
                    .berth(&["inspect", "-f", "{{.Id}}", name])
                    .ok()
                    .out()
                    .to_string();
                let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
                    .unwrap()
                    .flatten()
                    .map(|h| h.path().join(&parent).join(&id))
                    .filter(|p| p.exists())
                    .collect();
                assert!(left.is_empty(), "cgroups of exited {name} left: {left:?}");
            }
        }
        "container.rm" => {
            let r = d.berth(&["inspect", "idle"]);
            if r.code == 0 {
                assert_eq!(state(d, "idle"), "exited");
            }
        }
        "container.rename" => {
            let names = d.berth(&["ps", "-a", "--format", "{{.Names}}"]).ok().stdout;
            let (old, new) = (
                names.lines().any(|n| n == "idle"),
                names.lines().any(|n| n == "renamed"),
            );
            assert!(old != new, "exactly one of idle/renamed: {names}");
            let name = if new { "renamed" } else { "idle" };
            assert_eq!(
                d.berth(&["inspect", "-f", "{{.Name}}", name]).ok().out(),
                format!("/{name}")
            );
        }
        "volume.create" | "volume.rm" => {
            // Whole (record and directory, usable) or gone (neither), and a new create works.
            let name = if area == "volume.create" {
                "crashvol"
            } else {
                "doomed"
            };
            let data = d.data_root().join("volumes").join(name);
            if d.berth(&["volume", "inspect", name]).code == 0 {
                assert!(
                    data.join("_data").is_dir(),
                    "{point}: record without its directory"
                );
                d.berth(&[
                    "run",
                    "--rm",
                    "-v",
                    &format!("{name}:/v"),
                    "busybox",
                    "touch",
                    "/v/ok",
                ])
                .ok();
                d.berth(&["volume", "rm", name]).ok();
            } else {
                assert!(!data.exists(), "{point}: directory without its record");
            }
            d.berth(&["volume", "create", name]).ok();
            d.berth(&["volume", "rm", name]).ok();
        }
        "network.lease" | "network.setup" => {
            // Whatever the crash left (a lease, a pinned namespace, a veth, port elements) was
            // swept at start: the container starts and its eth0 has the address inspect shows.
            if state(d, "netted") != "running" {
                d.berth(&["start", "netted"]).ok();
            }
            assert_eq!(state(d, "netted"), "running");
            let ip = d
                .berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "netted"])
                .ok()
                .out()
                .to_string();
            let addr = d
                .berth(&["exec", "netted", "ip", "-4", "addr", "show", "eth0"])
                .ok()
                .stdout;
            assert!(
                !ip.is_empty() && addr.contains(&format!("inet {ip}/")),
                "{ip}: {addr}"
            );
            // Every pinned namespace belongs to a running container.
            let running = d.berth(&["ps", "-q", "--no-trunc"]).ok().stdout;
            for e in std::fs::read_dir(d.root.join("exec/netns")).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    running.lines().any(|l| l == name),
                    "leaked namespace {name}; running: {running}"
                );
            }
        }
        "network.teardown" => {
            // Killed after the exit, before the veth was deleted: the restart removed the
            // veth, the namespace and the lease, so the same address runs again at once.
            let id = d
                .berth(&["inspect", "-f", "{{.Id}}", "brief-net"])
                .ok()
                .out()
                .to_string();
            d.eventually("brief-net recorded exited", || state(d, "brief-net") == "exited");
            // Removed at start by reconciliation, or (a crash before the exit was recorded) by
            // the exit handled again at restore, in the background.
            let veth = format!("vb{}", &id[..12]);
            let netns = d.root.join("exec/netns").join(&id);
            d.eventually("the veth and namespace of brief-net gone", || {
                let links = std::process::Command::new("ip")
                    .args(["-o", "link"])
                    .output()
                    .unwrap();
                !String::from_utf8_lossy(&links.stdout).contains(&veth) && !netns.exists()
            });
            // Its lease is gone too (veth first, then the lease).
            let leases = std::process::Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import sqlite3; print([r[0] for r in sqlite3.connect({:?}).execute('SELECT container FROM ip_leases')])",
                    d.data_root().join("berth.db")
                ))
                .output()
                .unwrap();
            let leases = String::from_utf8_lossy(&leases.stdout).into_owned();
            assert!(!leases.contains(&id), "{point}: leaked lease: {leases}");
            d.berth(&["rm", "brief-net"]).ok();
        }
        "network.disconnect" => {
            // Recorded as disconnected: the veth, lease and ports the crash left were swept at
            // start; the container runs on, and connects back.
            assert_eq!(state(d, "discon"), "running");
            let id = d
                .berth(&["inspect", "-f", "{{.Id}}", "discon"])
                .ok()
                .out()
                .to_string();
            let links = std::process::Command::new("ip")
                .args(["-o", "link"])
                .output()
                .unwrap();
            let links = String::from_utf8_lossy(&links.stdout).into_owned();
            assert!(
                !links.contains(&format!("vb{}", &id[..12])),
                "{point}: leaked veth"
            );
            let inside = d.berth(&["exec", "discon", "ip", "-o", "link"]).ok().stdout;
            assert!(!inside.contains("eth0"), "{point}: {inside}");
            d.berth(&["network", "connect", "bridge", "discon"]).ok();
            let ip = d
                .berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "discon"])
                .ok()
                .out()
                .to_string();
            let addr = d
                .berth(&["exec", "discon", "ip", "-4", "addr", "show", "eth0"])
                .ok()
                .stdout;
            assert!(
                !ip.is_empty() && addr.contains(&format!("inet {ip}/")),
                "{point}: {addr}"
            );
            d.berth(&["rm", "-f", "discon"]).ok();
        }
        "network.create" | "network.rm" => {
            // The network is whole (its bridge up, usable) or gone; either way the name works.
            let name = if point.starts_with("network.create") {
                "crashnet"
            } else {
                "doomed"
            };
            if d.berth(&["network", "inspect", name]).code == 0 {
                d.berth(&[
                    "run",
                    "--rm",
                    "--network",
                    name,
                    "busybox",
                    "ip",
                    "-4",
                    "addr",
                    "show",
                    "eth0",
                ])
                .ok();
                d.berth(&["network", "rm", name]).ok();
            }
            d.berth(&["network", "create", "--subnet", &crash_subnet(), name])
                .ok();
            d.berth(&["network", "rm", name]).ok();
        }
        "build.context" | "build.run" | "build.step" => {
            // A killed build tags nothing half made; building again completes.
            assert!(
                image_id(d, "built:1").is_none(),
                "{point}: tagged before the build ended"
            );
            let dir = d.root.join("crash-build");
            d.berth(&["build", "-q", "-t", "built:1", dir.to_str().unwrap()])
                .ok();
            let out = d.berth(&["run", "--rm", "built:1"]).ok();
            assert_eq!(out.out(), "built");
        }
        _ => unreachable!(),
    }
}

/// A /24 of the test range no route uses.
fn crash_subnet() -> String {
    let o = berth_e2e::TestNet::new().gateway.octets();
    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
}

fn assert_clean_check(d: &Daemon, when: &str) {
    let root = d.data_root();
    let r = d.berthd(&["check", "--data-root", root.to_str().unwrap()]);
    assert_eq!(r.code, 0, "berthd check {when}:\n{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("no problems found"), "{}", r.stdout);
}

#[test]
fn every_failpoint_leaves_a_consistent_store() {
    if !berth_e2e::require_root("crash::every_failpoint_leaves_a_consistent_store") {
        return;
    }
    let probe = Daemon::start_bare();
    let list = probe.berthd(&["--list-failpoints"]);
    assert_eq!(
        list.code, 0,
        "berthd has no failpoints compiled in: build with `cargo build --workspace --features berth-sys/failpoints` (scripts/test.sh does): {}",
        list.stderr
    );
    drop(probe);
    let mut points: Vec<String> = list.stdout.lines().map(str::to_string).collect();
    assert!(points.len() >= 20, "{points:?}");
    // BERTH_E2E_FAILPOINTS=a,b runs only those (while working on one operation).
    if let Ok(only) = std::env::var("BERTH_E2E_FAILPOINTS") {
        points.retain(|p| only.split(',').any(|o| o == p));
    }
    let reg = berth_testkit::registry::Registry::start();
    berth_testkit::image::TestImage::busybox()
        .pushable()
        .push(reg.addr(), "test/pullme", "1", None);
    let mut never_hit = Vec::new();
    for point in &points {
        let mut d = Daemon::start();
        let base = setup(&d, &reg.host());
        d.kill9();
        d.spawn_with_env(&[("BERTH_FAILPOINT", point)]);
        scenario(&d, &base, point);
        match d.wait_for_death(Duration::from_secs(20)) {
            Some(st) => {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    st.signal(),
                    Some(9),
                    "{point}: berthd ended with {st:?}, not at the failpoint"
                );
            }
            None => {
                never_hit.push(point.clone());
                continue;
            }
        }
        assert!(
            d.log().contains(&format!("failpoint {point} reached")),
            "{point}: {}",
            d.log()
        );
        // Offline, before any repair, check may list orphans but must not fail to read the store.
        let r = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
        assert!(
            r.code == 0 || r.code == 1,
            "{point}: check could not run: {}{}",
            r.stdout,
            r.stderr
        );
        assert!(
            !r.stdout.contains("needs attention"),
            "{point}: damage, not orphans:\n{}",
            r.stdout
        );

        d.spawn();
        // Nothing that existed before is lost.
        assert_eq!(
            image_id(&d, "busybox").as_deref(),
            Some(base.busybox.as_str()),
            "{point}"
        );
        assert_eq!(
            d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "keeper"])
                .ok()
                .out(),
            format!("running {}", base.keeper_pid),
            "{point}: keeper"
        );
        assert!(!state(&d, "sleeper").is_empty());
        if !point.starts_with("image.rmi") {
            assert!(image_id(&d, "victim:1").is_some(), "{point}: victim:1 lost");
        }
        settled(&d, point, &base.registry);
        d.berth(&["run", "--rm", "busybox", "true"]).ok();
        assert_clean_check_while_running(&mut d, point);
        // Everything can still be removed, leaving nothing behind.
        for id in d.berth(&["ps", "-aq"]).ok().stdout.split_whitespace() {
            d.berth(&["rm", "-f", id]).ok();
        }
        d.stop();
        assert_clean_check(&d, &format!("after removing everything ({point})"));
        // A shim exits on its own shortly after its container (it hands out the last output).
        for pid in d.shim_pids() {
            assert!(
                berth_e2e::wait_pid_exit(pid, Duration::from_secs(10)),
                "{point}: shim {pid} left running"
            );
        }
        let mounts = d.mounts_left();
        assert!(mounts.is_empty(), "{point}: mounts left: {mounts:?}");
    }
    assert!(
        never_hit.is_empty(),
        "failpoints never reached by their scenario: {never_hit:?}"
    );
}

/// `berthd check` while containers run under their shims and no daemon holds the data root.
fn assert_clean_check_while_running(d: &mut Daemon, point: &str) {
    d.stop();
    assert_clean_check(d, &format!("after the restart ({point})"));
    d.spawn();
}

#[test]
fn check_refuses_while_a_daemon_holds_the_data_root() {
    let d = daemon!();
    let r = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("in use by a running berthd"), "{}", r.stderr);
}

#[test]
fn check_names_a_corrupt_blob() {
    let mut d = daemon!();
    let layer = d
        .berth(&["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", "busybox"])
        .ok()
        .out()
        .to_string();
    d.stop();
    assert_clean_check(&d, "before the corruption");
    let blob = d
        .data_root()
        .join("content/blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[4096] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let r = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&layer) && r.stdout.contains("corrupt"),
        "{}",
        r.stdout
    );
    // --repair never deletes a damaged blob a record needs.
    let r = d.berthd(&[
        "check",
        "--repair",
        "--data-root",
        d.data_root().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(blob.exists());
    d.spawn();
}

/// What a crash can leave — a container directory without a record, a record without its
/// directory, a mount berthd made for cp/export/commit of a stopped container, a half-written
/// file — is found at start, repaired where safe and reported in the log.
#[test]
fn start_up_reconciliation_repairs_and_reports() {
    let mut d = daemon!();
    d.berth(&["create", "--name", "lost", "busybox", "true"]).ok();
    d.berth(&["create", "--name", "kept", "busybox", "true"]).ok();
    let lost = d
        .berth(&["inspect", "-f", "{{.Id}}", "lost"])
        .ok()
        .out()
        .to_string();
    let kept = d
        .berth(&["inspect", "-f", "{{.Id}}", "kept"])
        .ok()
        .out()
        .to_string();
    d.kill9();
    let containers = d.data_root().join("containers");
    // A directory no record names (a crash after create wrote files, before the record).
    let stray = containers.join("f".repeat(64));
    std::fs::create_dir_all(stray.join("rootfs")).unwrap();
    std::fs::write(stray.join("config.json"), b"{}").unwrap();
    // A record whose directory is gone.
    std::fs::remove_dir_all(containers.join(&lost)).unwrap();
    // A mount left by an interrupted `cp` from a stopped container, and a half-written file.
    let rootfs = containers.join(&kept).join("rootfs");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "leak"])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(containers.join(&kept).join(".config.json.tmp-1-1"), b"half").unwrap();
    d.spawn();
    let log = d.log();
    for what in [
        format!("{} belongs to no container", stray.display()),
        format!(
            "the directory {} of container {lost} is missing",
            containers.join(&lost).display()
        ),
        format!("{} is mounted but no running container uses it", rootfs.display()),
        "interrupted write".to_string(),
    ] {
        assert!(log.contains(&what), "log lacks {what:?}:\n{log}");
    }
    assert!(!stray.exists());
    assert!(d.mounts_left().is_empty(), "leaked mount not swept");
    assert_eq!(state(&d, "lost"), "dead");
    d.berth(&["rm", "lost"]).ok();
    d.berth(&["start", "-a", "kept"]).ok();
    d.stop();
    assert_clean_check(&d, "after reconciliation");
    d.spawn();
}

/// A machine reboot, simulated: every shim and container process killed, their mounts and
/// cgroups gone, the exec root (a tmpfs) emptied. The runtime's state lived there too, so
/// nothing stale blocks a start: policy containers come back, others start on demand.
#[test]
fn simulated_reboot_brings_policy_containers_back() {
    let mut d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "unless",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.berth(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"])
        .ok();
    let pids: Vec<i32> = ["always", "unless", "plain"]
        .iter()
        .map(|n| {
            d.berth(&["inspect", "-f", "{{.State.Pid}}", n])
                .ok()
                .out()
                .parse()
                .unwrap()
        })
        .collect();
    d.simulate_reboot(&pids);
    d.spawn();
    d.eventually("policy containers back", || {
        state(&d, "always") == "running" && state(&d, "unless") == "running"
    });
    assert_eq!(state(&d, "plain"), "exited");
    d.berth(&["start", "plain"]).ok();
    assert_eq!(state(&d, "plain"), "running");
    assert_eq!(d.berth(&["exec", "always", "echo", "up"]).ok().out(), "up");
}

/// A shim killed on its own: the daemon records the container's end, no stray process keeps
/// running, and `start` works again (the runtime's stale state is cleared).
#[test]
fn a_killed_shim_does_not_block_the_next_start() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "victim", "busybox", "sleep", "600"])
        .ok();
    let pid: i32 = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", "victim"])
        .ok()
        .out()
        .parse()
        .unwrap();
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1);
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(shims[0]).unwrap(),
        rustix::process::Signal::KILL,
    );
    d.eventually("exit recorded", || state(&d, "victim") == "exited");
    d.berth(&["start", "victim"]).ok();
    assert_eq!(state(&d, "victim"), "running");
    let new_pid: i32 = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", "victim"])
        .ok()
        .out()
        .parse()
        .unwrap();
    assert_ne!(pid, new_pid);
    assert!(
        berth_e2e::wait_pid_exit(pid, Duration::from_secs(1)),
        "the old process still runs"
    );
}

/// `image prune` deletes image after image through rmi's path (one transaction each, then the
/// files; an untagged parent after its child): killed at any of those steps, every image is
/// afterwards whole or gone, the next prune finishes the job, and `berthd check` finds nothing.
#[test]
fn image_prune_killed_midway_leaves_every_image_whole_or_gone() {
    if !berth_e2e::require_root("crash::image_prune_killed_midway_leaves_every_image_whole_or_gone") {
        return;
    }
    for point in ["image.rmi.committed", "image.rmi.layer-removed"] {
        let mut d = Daemon::start();
        // Three dangling images (a tag moved on), each with its own layer…
        for name in ["p1", "p2", "p3", "p4"] {
            d.berth_stdin(&["import", "-", "moving:1"], &tiny_tar(name)).ok();
        }
        // …and an untagged chain: a commit of a container of an untagged image.
        let base = d
            .berth_stdin(&["import", "-"], berth_e2e::busybox_tar())
            .ok()
            .out()
            .to_string();
        d.berth(&["run", "--name", "cc", &base, "sh", "-c", "echo x > /x"])
            .ok();
        d.berth(&["commit", "cc"]).ok();
        d.berth(&["rm", "cc"]).ok();
        let before: Vec<String> = d
            .berth(&["images", "-a", "-q", "--no-trunc"])
            .ok()
            .stdout
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(before.len(), 7, "{before:?}");
        let busybox = image_id(&d, "busybox").unwrap();

        d.kill9();
        d.spawn_with_env(&[("BERTH_FAILPOINT", point)]);
        let _ = d.berth(&["image", "prune", "-f"]);
        match d.wait_for_death(Duration::from_secs(20)) {
            Some(st) => {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(st.signal(), Some(9), "{point}: {st:?}");
            }
            None => panic!("{point}: prune never reached the failpoint"),
        }
        let r = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
        assert!(r.code == 0 || r.code == 1, "{point}: {}{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("needs attention"), "{point}:\n{}", r.stdout);

        d.spawn();
        let mut whole = 0;
        for (i, id) in before.iter().enumerate() {
            if image_id(&d, id).is_some() {
                // Whole: a container's root filesystem can still be made from it.
                let name = format!("probe{i}");
                d.berth(&["create", "--name", &name, id, "true"]).ok();
                d.berth(&["rm", &name]).ok();
                whole += 1;
            }
        }
        assert!(
            whole < before.len(),
            "{point}: nothing was pruned before the kill"
        );
        assert_eq!(image_id(&d, "busybox").as_deref(), Some(busybox.as_str()));
        d.berth(&["image", "prune", "-f"]).ok();
        assert!(
            d.berth(&["images", "-q", "-f", "dangling=true"])
                .ok()
                .out()
                .is_empty(),
            "{point}"
        );
        assert_eq!(
            d.berth(&["images", "-a", "-q"]).ok().out().lines().count(),
            2,
            "{point}: busybox and moving:1 are left"
        );
        d.stop();
        assert_clean_check(&d, &format!("after the prune ({point})"));
    }
}

#[test]
fn berthd_check_finds_and_releases_a_lease_no_running_container_holds() {
    let mut d = daemon!();
    d.berth(&["run", "--rm", "busybox", "true"]).ok();
    d.stop();
    assert_clean_check(&d, "after a bridge container came and went");
    // A lease left behind (as a crash between teardown steps could leave one).
    let db = d.data_root().join("berth.db");
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute(\"INSERT INTO ip_leases (network, address, container) VALUES ('bridge', '10.255.0.77', 'deadbeef')\"); c.commit()",
        db.to_str().unwrap()
    );
    let st = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    let root = d.data_root().to_str().unwrap().to_string();
    let r = d.berthd(&["check", "--data-root", &root]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("address 10.255.0.77 on network bridge is leased to deadbeef, which is not running"),
        "{}",
        r.stdout
    );
    let r = d.berthd(&["check", "--repair", "--data-root", &root]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_clean_check(&d, "after the repair");
    d.spawn();
}
