//! What keeps `run --rm` and `rm` short (issue 11, docs/design/performance.md): removed
//! directories leave through the trash, `--rm` rootfs overlays are volatile, and the explicit
//! `cgroup-favordynmods` option; the CLI and the shim start without the dynamic loader.

use std::path::{Path, PathBuf};

/// The superblock options of the mount at `target` in this (the host's) mount namespace.
fn super_options(target: &Path) -> Option<String> {
    super_options_in("self", target)
}

/// The pid of the shim of container `id`.
fn shim_of(id: &str) -> String {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("berth-shim") && cmd.contains(id) {
            return e.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no shim for {id}");
}

/// The superblock options of the mount at `target` in process `pid`'s mount namespace.
fn super_options_in(pid: &str, target: &Path) -> Option<String> {
    let t = target.to_string_lossy().into_owned();
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(t.as_str()))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|r| r.split(' ').nth(2))
        .map(str::to_string)
}

fn trash_entries(d: &berth_e2e::Daemon) -> Vec<PathBuf> {
    match std::fs::read_dir(d.data_root().join("trash")) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `rm` takes the bundle and both snapshots out of their stores at once (one rename each) and
/// the daemon deletes them in the background; a stop empties the trash, and what a crash left
/// there is `berthd check`'s finding, repaired by `--repair` and by the next start.
#[test]
fn removed_containers_leave_through_the_trash_and_nothing_stays_there() {
    let mut d = daemon!();
    let id = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "60"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let upper = d
        .berth(&["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", &id])
        .ok()
        .stdout
        .trim()
        .to_string();
    let snapshot = PathBuf::from(&upper).parent().unwrap().to_path_buf();
    let bundle = d.data_root().join("containers").join(&id);
    assert!(snapshot.is_dir() && bundle.is_dir());
    d.berth(&["rm", "-f", &id]).ok();
    assert!(!bundle.exists(), "the bundle is still in place after rm");
    assert!(!snapshot.exists(), "the rw snapshot is still in place after rm");
    d.eventually("the trash to empty", || trash_entries(&d).is_empty());

    // A crash's leftovers: found offline, repaired, and deleted by a start.
    d.stop();
    let trash = d.data_root().join("trash");
    std::fs::create_dir_all(trash.join("1-0/fs/etc")).unwrap();
    std::fs::write(trash.join("1-0/fs/etc/hosts"), b"x").unwrap();
    let root = d.data_root().to_string_lossy().into_owned();
    let r = d.berthd(&["check", "--data-root", &root]);
    assert_eq!(
        r.code, 1,
        "check should report the trash: {} {}",
        r.stdout, r.stderr
    );
    assert!(r.stdout.contains("still in"), "{}", r.stdout);
    d.berthd(&["check", "--data-root", &root, "--repair"]).ok();
    assert!(trash_entries(&d).is_empty());
    std::fs::create_dir_all(trash.join("2-0/fs")).unwrap();
    d.spawn();
    d.eventually("the start to empty the trash", || trash_entries(&d).is_empty());
    d.stop();
    let r = d.berthd(&["check", "--data-root", &root]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
}

/// A `--rm` container's rw layer dies with it: its overlay is mounted `volatile` (no sync of
/// the data root's filesystem at unmount); any other container's is not, and a volatile layer
/// mounts again after a clean stop (`restart`).
#[test]
fn only_rm_containers_get_a_volatile_rootfs() {
    let d = daemon!();
    let keep = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "60"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let gone = d
        .berth(&["run", "-d", "--rm", "--network", "none", "busybox", "sleep", "60"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let rootfs = |id: &str| d.data_root().join("containers").join(id).join("rootfs");
    // Each rootfs is mounted in its shim's mount namespace, not in the host's.
    assert_eq!(
        super_options(&rootfs(&gone)),
        None,
        "a rootfs is mounted in the host's namespace"
    );
    let opts =
        super_options_in(&shim_of(&gone), &rootfs(&gone)).expect("the --rm container's rootfs is mounted");
    // The kernel shows the option as `fsync=volatile` (6.6+) or `volatile`.
    let volatile = |o: &str| o.split(',').any(|x| x == "volatile" || x == "fsync=volatile");
    assert!(volatile(&opts), "--rm rootfs: {opts}");
    let opts = super_options_in(&shim_of(&keep), &rootfs(&keep)).expect("the container's rootfs is mounted");
    assert!(!volatile(&opts), "plain rootfs: {opts}");
    // Written data is there while it runs, whatever the disk does.
    d.berth(&["exec", &gone, "sh", "-c", "echo hi > /f && sync"]).ok();
    assert_eq!(d.berth(&["exec", &gone, "cat", "/f"]).ok().stdout, "hi\n");
    d.berth(&["restart", "-t", "0", &gone]).ok();
    assert_eq!(d.berth(&["exec", &gone, "cat", "/f"]).ok().stdout, "hi\n");
    d.berth(&["rm", "-f", &keep, &gone]).ok();
}

/// A `--rm` container's files and layer records are written without fsyncs (it dies with the host
/// anyway), an ordinary container's layer records with them. What a power loss can leave of the
/// former (empty records and files, here after a simulated reboot) must not stop the next start:
/// the container is removed and the store checks clean. An ordinary container's bundle files are
/// not fsynced either; its next start writes again those a power loss emptied.
#[test]
fn a_power_loss_that_empties_a_rm_containers_files_leaves_a_clean_store() {
    let mut d = daemon!();
    let keep = out(&d, &["run", "-d", "--network", "none", "busybox", "sleep", "600"]);
    let gone = out(
        &d,
        &[
            "run",
            "-d",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let layers = |d: &berth_e2e::Daemon, id: &str| -> Vec<PathBuf> {
        let upper = out(d, &["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", id]);
        let lower = out(d, &["inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", id]);
        let init = lower.split(':').next().unwrap().to_string();
        [upper, init]
            .iter()
            .map(|p| Path::new(p).parent().unwrap().to_path_buf())
            .collect()
    };
    let keep_layers = layers(&d, &keep);
    for dir in &keep_layers {
        assert!(
            dir.join("info.json").is_file(),
            "{} has no durable record",
            dir.display()
        );
    }
    // The --rm container's rw layer is volatile; its init layer is the one all containers of
    // the image without mount points of their own share: durable, and the same as keep's.
    let gone_layers = layers(&d, &gone);
    let gone_rw = gone_layers[0].clone();
    assert!(
        gone_rw.join("info.volatile.json").is_file(),
        "{}",
        gone_rw.display()
    );
    assert!(!gone_rw.join("info.json").exists(), "{}", gone_rw.display());
    assert_eq!(gone_layers[1], keep_layers[1], "one init layer for both");
    let pids: Vec<i32> = [&keep, &gone]
        .iter()
        .map(|id| out(&d, &["inspect", "-f", "{{.State.Pid}}", id]).parse().unwrap())
        .collect();
    d.simulate_reboot(&pids);
    // What ext4 may leave of renamed, never-fsynced new files after a power loss.
    let bundle = d.data_root().join("containers").join(&gone);
    let torn = [gone_rw.join("info.volatile.json")]
        .into_iter()
        .chain(["config.json", "shim.json", "hosts", "hostname", "resolv.conf"].map(|f| bundle.join(f)));
    // An ordinary container's hostname, hosts and resolv.conf (and the files every start
    // rewrites) are not fsynced either: the next start writes again what was lost.
    let keep_bundle = d.data_root().join("containers").join(&keep);
    let torn = torn
        .chain(["config.json", "shim.json", "hosts", "hostname", "resolv.conf"].map(|f| keep_bundle.join(f)));
    for f in torn {
        std::fs::write(&f, b"").unwrap();
    }
    d.spawn();
    d.eventually("the --rm container removed", || {
        !d.berth(&["ps", "-aq", "--no-trunc"]).ok().stdout.contains(&gone)
    });
    assert_eq!(out(&d, &["inspect", "-f", "{{.State.Status}}", &keep]), "exited");
    d.berth(&["start", &keep]).ok();
    assert_eq!(out(&d, &["exec", &keep, "cat", "/etc/hostname"]), &keep[..12]);
    let hosts = out(&d, &["exec", &keep, "cat", "/etc/hosts"]);
    assert!(hosts.contains("localhost"), "{hosts}");
    assert!(std::fs::metadata(keep_bundle.join("resolv.conf")).unwrap().len() > 0);
    d.berth(&["rm", "-f", &keep]).ok();
    d.stop();
    let r = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
    assert_eq!(r.code, 0, "berthd check:\n{}{}", r.stdout, r.stderr);
    for dir in [&gone_rw, &bundle] {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(
        keep_layers[1].join("info.json").is_file(),
        "the shared init layer stays while its image does"
    );
    d.spawn();
}

fn out(d: &berth_e2e::Daemon, args: &[&str]) -> String {
    d.berth(args).ok().stdout.trim().to_string()
}

/// `cgroup-favordynmods` (daemon.json) remounts the host's cgroup2 hierarchy with the option and
/// says so in the log; it is never set without being asked for. The mount is put back as it was
/// found; on Linux 6.18 the kernel keeps its per-threadgroup cgroup locking (the option's side
/// effect) until reboot, which no remount undoes (docs/design/performance.md).
#[test]
fn cgroup_favordynmods_is_set_only_when_asked_for() {
    let mut d = daemon!();
    let Some(point) = cgroup2_point() else {
        eprintln!("skipped: no cgroup2 hierarchy on this machine");
        return;
    };
    let before = super_options(&point).unwrap();
    struct Restore(PathBuf, String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let data: Vec<&str> = self.1.split(',').filter(|o| !matches!(*o, "rw" | "ro")).collect();
            let _ = rustix::mount::mount_remount(
                &self.0,
                rustix::mount::MountFlags::empty(),
                data.join(",").as_str(),
            );
        }
    }
    let _restore = Restore(point.clone(), before.clone());
    let has = |o: &str| o.split(',').any(|x| x == "favordynmods");
    if has(&before) {
        // Someone set it already: the plain daemon above did not, and cannot be told apart.
        eprintln!("note: cgroup2 already has favordynmods; checking only the log");
    } else {
        assert!(
            !has(&super_options(&point).unwrap()),
            "a plain start set favordynmods"
        );
    }
    d.restart_with_config(&serde_json::json!({ "cgroup-favordynmods": true }));
    assert!(has(&super_options(&point).unwrap()));
    assert!(d.log().contains("favordynmods"), "{}", d.log());
    // Containers still start and stop.
    d.berth(&["run", "--rm", "--network", "none", "busybox", "true"])
        .ok();
}

fn cgroup2_point() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(" - ").nth(1).is_some_and(|r| r.starts_with("cgroup2 ")))
        .and_then(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
}

/// A running container's rootfs is mounted only in its shim's mount namespace: `export` (and
/// `cp` of a running container) still see it, with the layer's files and without the
/// container's volumes or the kernel filesystems mounted inside it.
#[test]
fn a_running_containers_rootfs_is_reached_in_its_shims_namespace() {
    let d = daemon!();
    let id = d
        .berth(&[
            "run",
            "-d",
            "--network",
            "none",
            "-v",
            "hotvol:/data",
            "busybox",
            "sh",
            "-c",
            "echo layer > /in-layer; echo vol > /data/in-volume; exec sleep 60",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    d.eventually("the marker written", || {
        d.berth(&["exec", &id, "cat", "/in-layer"]).stdout == "layer\n"
    });
    let tar = d.berth_command().args(["export", &id]).output().unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    let list = berth_e2e::tar_names(&tar.stdout);
    let names = list;
    let has = |p: &str| {
        names
            .lines()
            .any(|l| l.trim_start_matches("./").trim_end_matches('/') == p)
    };
    assert!(has("in-layer") && has("bin/busybox"), "{names}");
    assert!(!has("data/in-volume"), "volume content exported: {names}");
    assert!(
        !names
            .lines()
            .any(|l| l.trim_start_matches("./").starts_with("proc/") && l.trim_start_matches("./").len() > 5),
        "/proc's contents exported (the image's empty /proc is all there should be): {names}"
    );
    // cp out of the running container reads the same root (with its volumes, as docker's).
    let out = d.root.join("cp-out");
    d.berth(&["cp", &format!("{id}:/in-layer"), out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "layer\n");
    d.berth(&["rm", "-f", &id]).ok();
}

/// A bind with `rshared` propagation needs the host's peer group, so such a container's rootfs
/// stays in the host's mount namespace, and a mount made inside the container under the bind
/// reaches the host as under Docker.
#[test]
fn an_rshared_bind_still_propagates_mounts_to_the_host() {
    let d = daemon!();
    let src = d.root.join("shared-src");
    std::fs::create_dir_all(&src).unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-R")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "none"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let _guard = Unmount(src.clone());
    // On a private mount, a slave or shared bind cannot propagate: dockerd refuses the start.
    let private = format!("{}:/m:rslave", src.display());
    let refused = d.berth(&["run", "--rm", "-v", &private, "busybox", "true"]);
    assert_eq!(refused.code, 125, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!(
            "path {} is mounted on {} but it is not a shared or slave mount",
            src.display(),
            src.display()
        )),
        "{}",
        refused.stderr
    );
    assert!(std::process::Command::new("mount")
        .arg("--make-shared")
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let bind = format!("{}:/m:rshared", src.display());
    let id = d
        .berth(&[
            "run",
            "-d",
            "--privileged",
            "--network",
            "none",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "mkdir -p /m/sub && mount -t tmpfs none /m/sub && touch /m/sub/from-container && exec sleep 60",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let rootfs = d.data_root().join("containers").join(&id).join("rootfs");
    assert!(
        super_options(&rootfs).is_some(),
        "an rshared container's rootfs is in the host's namespace"
    );
    d.eventually("the container's mount to reach the host", || {
        src.join("sub/from-container").exists()
    });
    d.berth(&["rm", "-f", &id]).ok();
}

/// The CLI and the shim are linked statically (their build.rs, scripts/berth-cc): their ELF
/// program headers name no interpreter (`PT_INTERP`) and no dynamic section (`PT_DYNAMIC`), so
/// neither loads a shared library when it starts, at every command and every container start.
#[test]
fn the_cli_and_the_shim_are_static_executables() {
    // The wrapper is configured for this target only (.cargo/config.toml).
    if !cfg!(all(
        target_arch = "x86_64",
        target_os = "linux",
        target_env = "gnu"
    )) {
        eprintln!("skipped: the static link is set up for x86_64 Linux (glibc) only");
        return;
    }
    for bin in ["berth", "berth-shim"] {
        let elf = std::fs::read(berth_e2e::bin_dir().join(bin)).unwrap();
        assert_eq!(&elf[..5], b"\x7fELF\x02", "{bin}: not a 64-bit ELF");
        let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        let types: Vec<u32> = (0..phnum)
            .map(|i| {
                let o = phoff + i * phentsize;
                u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
            })
            .collect();
        assert!(types.contains(&1), "{bin}: no PT_LOAD in {types:?}");
        assert!(!types.contains(&2), "{bin} has a dynamic section: {types:?}");
        assert!(
            !types.contains(&3),
            "{bin} names a program interpreter: {types:?}"
        );
    }
}

/// The parent of process `pid`.
fn parent_of(pid: &str) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: state, then the parent's pid.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .unwrap_or_default()
        .to_string()
}

/// This daemon's spawners: `berth-shim --spawner` processes whose parent runs on this root.
fn spawners(d: &berth_e2e::Daemon) -> Vec<String> {
    let root = d.root.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !cmd.ends_with(b"berth-shim\0--spawner\0") {
            continue;
        }
        let parent = std::fs::read(format!("/proc/{}/cmdline", parent_of(&pid))).unwrap_or_default();
        if String::from_utf8_lossy(&parent).contains(&root) {
            out.push(pid);
        }
    }
    out
}

/// Shims are started by the daemon's spawner (`berth-shim --spawner`, berth_sys::spawn), a
/// child of the daemon holding its socket and hardly any other descriptor, so a start no longer
/// copies (and closes at `execve`) the daemon's descriptors of every running container. A
/// spawner that dies is replaced at the next start; it leaves with the daemon, and the shims it
/// started live on.
#[test]
fn shims_come_from_the_spawner_which_is_replaced_if_it_dies_and_leaves_with_the_daemon() {
    let mut d = daemon!();
    let c1 = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "600"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let first = spawners(&d);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        parent_of(&shim_of(&c1)),
        first[0],
        "c1's shim was not started by the spawner"
    );
    let fds = std::fs::read_dir(format!("/proc/{}/fd", first[0]))
        .unwrap()
        .count();
    assert!(fds <= 4, "the spawner holds {fds} descriptors");
    // Killed: the next start brings a new one.
    let pid = rustix::process::Pid::from_raw(first[0].parse().unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    d.eventually("the killed spawner gone", || !spawners(&d).contains(&first[0]));
    let c2 = d
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "600"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let second = spawners(&d);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    assert_eq!(parent_of(&shim_of(&c2)), second[0]);
    d.berth(&["exec", &c1, "true"]).ok();
    // A daemon stop takes the spawner along; the shims stay, and the next daemon has its own.
    let (s1, s2) = (shim_of(&c1), shim_of(&c2));
    d.stop();
    d.eventually("the spawner gone with the daemon", || spawners(&d).is_empty());
    assert!(Path::new(&format!("/proc/{s1}")).exists() && Path::new(&format!("/proc/{s2}")).exists());
    d.spawn();
    assert_eq!(spawners(&d).len(), 1);
    d.berth(&["exec", &c2, "true"]).ok();
    d.berth(&["rm", "-f", &c1, &c2]).ok();
}
