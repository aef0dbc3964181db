//! Who may read what on the host: the data root is owner-only (the CVE-2021-41091 class), while
//! containers running as a non-root user still read what is bind-mounted into them.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// Runs `argv` as user `nobody` (uid/gid 65534, no supplementary groups).
fn as_nobody(argv: &[&str]) -> berth_e2e::Run {
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(argv)
        .output()
        .expect("setpriv (util-linux)");
    berth_e2e::Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

#[track_caller]
fn assert_mode(p: &Path, want: u32) {
    assert_eq!(
        mode(p),
        want,
        "mode of {} is {:o}, want {want:o}",
        p.display(),
        mode(p)
    );
}

/// CVE-2021-41091 class: another host user could read a container's env (passwords) from its
/// config.json, and walk into its root filesystem to run a setuid binary the container made.
#[test]
fn other_users_cannot_read_container_env_or_reach_its_setuid_binaries() {
    let d = daemon!();
    let secret = "hunter2-berth-secret";
    let id = d
        .berth(&[
            "run",
            "-d",
            "--name",
            "vault",
            "-e",
            &format!("DB_PASSWORD={secret}"),
            "busybox",
            "sh",
            "-c",
            "echo $DB_PASSWORD; exec sleep 600",
        ])
        .ok()
        .out()
        .to_string();
    d.berth(&[
        "exec",
        "vault",
        "sh",
        "-c",
        "cp /bin/busybox /suid && chmod 4755 /suid",
    ])
    .ok();
    let data = d.root.join("data");
    let bundle = data.join("containers").join(&id);
    // The container's upper dir: the snapshot whose fs/ holds the copy.
    let upper = std::fs::read_dir(data.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path().join("fs"))
        .find(|fs| fs.join("suid").exists())
        .expect("no snapshot holds /suid");
    // The test means something: the root's parent is open to nobody, the secret and the setuid
    // binary are there for root to see.
    assert_eq!(
        mode(&d.root) & 0o005,
        0o005,
        "test root must be traversable by others"
    );
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(config.contains(secret));
    // The merged root is mounted only in the shim's mount namespace: from the host's, the bundle's
    // `rootfs` is an empty directory, and the upper dir is the one path to the copy.
    assert!(
        !bundle.join("rootfs/suid").exists(),
        "the rootfs is mounted in the host's namespace"
    );
    let suid_paths = [upper.join("suid")];
    for p in &suid_paths {
        assert_eq!(mode(p) & 0o4000, 0o4000, "{} is not the setuid copy", p.display());
    }

    for f in ["config.json", "shim.json", &format!("{id}-json.log")] {
        let p = bundle.join(f);
        let r = as_nobody(&["cat", p.to_str().unwrap()]);
        assert_ne!(r.code, 0, "nobody read {}: {}", p.display(), r.stdout);
        assert!(!r.stdout.contains(secret));
    }
    let db = data.join("berth.db");
    let r = as_nobody(&["cat", db.to_str().unwrap()]);
    assert_ne!(r.code, 0, "nobody read the database");
    for p in &suid_paths {
        let stat = as_nobody(&["stat", p.to_str().unwrap()]);
        assert_ne!(stat.code, 0, "nobody reached {}", p.display());
        assert!(stat.stderr.contains("Permission denied"), "{}", stat.stderr);
        let exec = as_nobody(&[p.to_str().unwrap(), "id", "-u"]);
        assert_ne!(exec.code, 0, "nobody ran {}: {}", p.display(), exec.stdout);
    }

    // The modes themselves.
    for dir in [
        data.clone(),
        data.join("containers"),
        bundle.clone(),
        data.join("snapshots"),
        data.join("content"),
        data.join("bin"),
        d.root.join("exec/shims"),
    ] {
        assert_mode(&dir, 0o700);
    }
    for f in ["config.json", "shim.json", &format!("{id}-json.log")] {
        assert_mode(&bundle.join(f), 0o600);
    }
    assert_mode(&data.join("berth.db"), 0o600);
    for suffix in ["-wal", "-shm"] {
        let p = data.join(format!("berth.db{suffix}"));
        if p.exists() {
            assert_mode(&p, 0o600);
        }
    }
    assert_mode(&data.join("engine-id"), 0o600);
    // Bind-mounted into the container: readable by any user there.
    for f in ["hostname", "hosts", "resolv.conf"] {
        assert_mode(&bundle.join(f), 0o644);
    }
    assert_mode(&data.join("bin/berth-init"), 0o755);
    d.berth(&["stop", "-t", "0", "vault"]).ok();
    assert_mode(&bundle.join("exit.json"), 0o600);
}

/// A data root an older berthd left world-readable is tightened when the daemon starts.
#[test]
fn existing_world_readable_data_root_is_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = daemon!();
    let id = d
        .berth(&["create", "-e", "TOKEN=t0p", "busybox", "true"])
        .ok()
        .out()
        .to_string();
    d.berth(&["start", "-a", &id]).ok();
    let data = d.root.join("data");
    let bundle = data.join("containers").join(&id);
    d.kill9();
    let widen = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    for dir in [
        &data,
        &data.join("containers"),
        &bundle,
        &data.join("snapshots"),
        &data.join("content"),
    ] {
        widen(dir, 0o755);
    }
    for f in ["config.json", "shim.json", "exit.json"] {
        widen(&bundle.join(f), 0o644);
    }
    widen(&data.join("berth.db"), 0o644);
    d.spawn();
    for dir in [
        &data,
        &data.join("containers"),
        &bundle,
        &data.join("snapshots"),
        &data.join("content"),
    ] {
        assert_mode(dir, 0o700);
    }
    for f in ["config.json", "shim.json", "exit.json"] {
        assert_mode(&bundle.join(f), 0o600);
    }
    assert_mode(&data.join("berth.db"), 0o600);
    // And the container still starts.
    d.berth(&["start", "-a", &id]).ok();
}

/// The private data root must not break containers that run as a non-root user: the
/// bind-mounted /etc files and the built-in init stay readable (and runnable) for them.
#[test]
fn non_root_containers_still_read_their_bind_mounted_files() {
    let d = daemon!();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--user",
            "nobody",
            "--hostname",
            "nb",
            "busybox",
            "sh",
            "-c",
            "id -u; cat /etc/hostname; grep -c localhost /etc/hosts; test -r /etc/resolv.conf && echo resolv-ok",
        ])
        .ok();
    assert_eq!(r.out(), "65534\nnb\n2\nresolv-ok", "{}", r.stderr);
    let init = d
        .berth(&[
            "run",
            "--rm",
            "--init",
            "--user",
            "nobody",
            "busybox",
            "sh",
            "-c",
            "id -u; ps -o pid,comm | sed -n 2p",
        ])
        .ok();
    let lines: Vec<&str> = init.out().lines().collect();
    assert_eq!(lines.first(), Some(&"65534"), "{}", init.out());
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.trim_start().starts_with("1 ") && !l.contains("sh")),
        "pid 1 is not the init: {}",
        init.out()
    );
    d.berth(&[
        "run", "-d", "--name", "nb", "--user", "nobody", "busybox", "sleep", "600",
    ])
    .ok();
    assert_eq!(
        d.berth(&[
            "exec",
            "nb",
            "sh",
            "-c",
            "id -u; cat /etc/hostname >/dev/null && cat /etc/hosts | head -1"
        ])
        .ok()
        .out(),
        "65534\n127.0.0.1\tlocalhost"
    );
}

/// berthd sets its umask to 022 at start, as dockerd does: started under a strict one (077, as
/// some service managers and root shells have), it would otherwise make every container's root
/// directory 0700, and a non-root process in the container could run nothing.
#[test]
fn a_daemon_started_under_a_strict_umask_gives_containers_usable_files() {
    let mut d = daemon!();
    d.stop();
    d.umask = Some("077");
    d.spawn();
    let pid = std::fs::read_to_string(d.root.join("berthd.pid")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    assert!(status.lines().any(|l| l == "Umask:\t0022"), "{status}");
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--user",
            "nobody",
            "-m",
            "64m",
            "--hostname",
            "nb",
            "busybox",
            "sh",
            "-c",
            "id -u; cat /etc/hostname; ls -d /tmp; cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .ok();
    assert_eq!(r.out(), "65534\nnb\n/tmp\n67108864", "{}", r.stderr);
}
