//! Volumes and mounts with real containers: binds, named and anonymous volumes, copy-up,
//! `--volumes-from`, `--mount`, `--tmpfs`, `--read-only`, `cp`/`export`/`commit` around volumes,
//! devices, and bad input. The `volume` commands and the API's shapes are in `volume_api.rs`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

pub(crate) fn host_dir(d: &berth_e2e::Daemon, name: &str) -> PathBuf {
    let p = d.root.join("host").join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub(crate) fn volume_names(d: &berth_e2e::Daemon) -> Vec<String> {
    d.berth(&["volume", "ls", "-q"])
        .ok()
        .stdout
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bind_mounts_rw_and_ro() {
    let d = daemon!();
    let h = host_dir(&d, "b");
    std::fs::write(h.join("in.txt"), "from host\n").unwrap();
    let spec = format!("{}:/h", h.display());
    let r = d
        .berth(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "sh",
            "-c",
            "cat /h/in.txt; echo made > /h/out.txt",
        ])
        .ok();
    assert_eq!(r.stdout, "from host\n");
    assert_eq!(std::fs::read_to_string(h.join("out.txt")).unwrap(), "made\n");
    let ro = format!("{}:/h:ro", h.display());
    let r = d.berth(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "cat /h/in.txt && touch /h/x",
    ]);
    assert_ne!(r.code, 0, "a read-only bind accepted a write: {r:?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    assert!(!h.join("x").exists());
    // Propagation is accepted and shown.
    let p = format!("{}:/h:rslave", h.display());
    d.berth(&["create", "--name", "prop", "-v", &p, "busybox", "true"])
        .ok();
    let m = d
        .berth(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Propagation}} {{.RW}}{{end}}",
            "prop",
        ])
        .ok();
    assert_eq!(m.out(), "bind rslave true");
}

#[test]
fn missing_v_host_dir_is_created_but_mount_bind_source_must_exist() {
    let d = daemon!();
    let missing = d.root.join("host/not/yet");
    let spec = format!("{}:/m", missing.display());
    d.berth(&["run", "--rm", "-v", &spec, "busybox", "touch", "/m/f"])
        .ok();
    assert!(missing.join("f").is_file());
    let gone = d.root.join("host/never");
    let m = format!("type=bind,src={},dst=/m", gone.display());
    let r = d.berth(&["run", "--rm", "--mount", &m, "busybox", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            gone.display()
        )),
        "{r:?}"
    );
    assert!(!gone.exists());
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().out(),
        "",
        "a refused create left a container"
    );
}

#[test]
fn bind_file_onto_file() {
    let d = daemon!();
    let h = host_dir(&d, "f");
    std::fs::write(h.join("motd"), "hello file\n").unwrap();
    let spec = format!("{}:/etc/motd:ro", h.join("motd").display());
    let r = d
        .berth(&["run", "--rm", "-v", &spec, "busybox", "cat", "/etc/motd"])
        .ok();
    assert_eq!(r.stdout, "hello file\n");
}

#[test]
fn named_volume_is_shared_and_survives_rm_and_daemon_restart() {
    let mut d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "writer",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    assert_eq!(
        d.berth(&["run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/f"])
            .ok()
            .stdout,
        "kept\n"
    );
    d.berth(&["rm", "-v", "writer"]).ok();
    assert_eq!(
        volume_names(&d),
        vec!["keep".to_string()],
        "rm -v removed a named volume"
    );
    d.stop();
    d.spawn();
    assert_eq!(
        d.berth(&["run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/f"])
            .ok()
            .stdout,
        "kept\n"
    );
    let mp = d
        .berth(&["volume", "inspect", "-f", "{{.Mountpoint}}", "keep"])
        .ok();
    assert_eq!(PathBuf::from(mp.out()), d.data_root().join("volumes/keep/_data"));
    assert_eq!(
        std::fs::read_to_string(d.data_root().join("volumes/keep/_data/f")).unwrap(),
        "kept\n"
    );
}

#[test]
fn copy_up_keeps_owner_and_mode_and_nocopy_skips_it() {
    let d = daemon!();
    d.berth(&[
        "run", "--name", "src", "busybox", "sh", "-c",
        "mkdir -p /srv/data/sub && echo seed > /srv/data/sub/f && chown 33:50 /srv/data/sub/f && chmod 640 /srv/data/sub/f && chown 33:33 /srv/data && chmod 750 /srv/data",
    ])
    .ok();
    d.berth(&["commit", "src", "seeded:1"]).ok();
    d.berth(&["run", "--rm", "-v", "cu:/srv/data", "seeded:1", "true"])
        .ok();
    let data = d.data_root().join("volumes/cu/_data");
    let f = std::fs::metadata(data.join("sub/f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (33, 50, 0o640));
    let top = std::fs::metadata(&data).unwrap();
    assert_eq!((top.uid(), top.mode() & 0o7777), (33, 0o750));
    assert_eq!(std::fs::read_to_string(data.join("sub/f")).unwrap(), "seed\n");
    // Not empty any more: the image's content does not come back over the volume's.
    d.berth(&[
        "run",
        "--rm",
        "-v",
        "cu:/srv/data",
        "seeded:1",
        "sh",
        "-c",
        "echo mine > /srv/data/sub/f",
    ])
    .ok();
    assert_eq!(
        d.berth(&[
            "run",
            "--rm",
            "-v",
            "cu:/srv/data",
            "seeded:1",
            "cat",
            "/srv/data/sub/f"
        ])
        .ok()
        .stdout,
        "mine\n"
    );
    d.berth(&["run", "--rm", "-v", "nc:/srv/data:nocopy", "seeded:1", "true"])
        .ok();
    assert_eq!(
        std::fs::read_dir(d.data_root().join("volumes/nc/_data"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_rm_flag_and_stay_otherwise() {
    let d = daemon!();
    d.berth(&[
        "run", "--name", "a1", "-v", "/anon", "busybox", "touch", "/anon/x",
    ])
    .ok();
    let vols = volume_names(&d);
    assert_eq!(vols.len(), 1);
    assert!(
        vols[0].len() == 64 && vols[0].chars().all(|c| c.is_ascii_hexdigit()),
        "{vols:?}"
    );
    let name = d
        .berth(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "a1"])
        .ok();
    assert_eq!(name.out(), vols[0]);
    // rm without -v keeps it, dangling.
    d.berth(&["rm", "a1"]).ok();
    assert_eq!(
        d.berth(&["volume", "ls", "-q", "-f", "dangling=true"]).ok().out(),
        vols[0]
    );
    d.berth(&["volume", "rm", &vols[0]]).ok();
    d.berth(&["run", "--name", "a2", "-v", "/anon", "busybox", "true"])
        .ok();
    assert_eq!(volume_names(&d).len(), 1);
    d.berth(&["rm", "-v", "a2"]).ok();
    assert!(volume_names(&d).is_empty(), "rm -v left {:?}", volume_names(&d));
    // system prune --volumes takes dangling anonymous volumes, never named ones.
    d.berth(&[
        "run", "--name", "a3", "-v", "/anon", "-v", "named:/n", "busybox", "true",
    ])
    .ok();
    d.berth(&["rm", "a3"]).ok();
    let p = d.berth(&["system", "prune", "-f", "--volumes"]).ok();
    assert!(p.stdout.contains("Deleted Volumes:\n"), "{}", p.stdout);
    assert_eq!(volume_names(&d), vec!["named".to_string()]);
    d.berth(&["run", "--rm", "-v", "/anon", "-v", "named:/n", "busybox", "true"])
        .ok();
    d.eventually("--rm removed the container", || {
        d.berth(&["ps", "-aq"]).ok().out().is_empty()
    });
    assert_eq!(volume_names(&d), vec!["named".to_string()]);
}

#[test]
fn image_volume_gets_an_anonymous_volume_with_the_image_content() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "iv",
        "busybox",
        "sh",
        "-c",
        "mkdir /vol && echo img > /vol/f",
    ])
    .ok();
    d.berth(&["commit", "-c", "VOLUME /vol", "iv", "withvol:1"]).ok();
    let r = d
        .berth(&[
            "run",
            "--name",
            "user",
            "withvol:1",
            "sh",
            "-c",
            "cat /vol/f; echo new > /vol/g",
        ])
        .ok();
    assert_eq!(r.stdout, "img\n");
    let vols = volume_names(&d);
    assert_eq!(vols.len(), 1);
    let data = d.data_root().join("volumes").join(&vols[0]).join("_data");
    assert_eq!(std::fs::read_to_string(data.join("g")).unwrap(), "new\n");
    // The container layer does not hold what went to the volume.
    let diff = d.berth(&["diff", "user"]).ok();
    assert!(!diff.stdout.contains("/vol"), "{}", diff.stdout);
    d.berth(&["rm", "-v", "user"]).ok();
    assert!(volume_names(&d).is_empty());
}

#[test]
fn volumes_from_shares_volumes_and_binds_with_modes() {
    let d = daemon!();
    let h = host_dir(&d, "vf");
    let b = format!("{}:/b", h.display());
    d.berth(&[
        "create",
        "--name",
        "holder",
        "-v",
        "shared:/data",
        "-v",
        &b,
        "-v",
        "/anon",
        "busybox",
        "true",
    ])
    .ok();
    d.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /data/f; echo 2 > /b/f; echo 3 > /anon/f",
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(h.join("f")).unwrap(), "2\n");
    let r = d.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder:ro",
        "busybox",
        "sh",
        "-c",
        "cat /data/f /anon/f; touch /data/g",
    ]);
    assert_eq!(r.stdout, "1\n3\n");
    assert_ne!(r.code, 0, "volumes-from :ro allowed a write");
    // --rm of the borrower did not take the holder's anonymous volume.
    assert_eq!(volume_names(&d).len(), 2);
    let r = d.berth(&["create", "--volumes-from", "nosuch", "busybox", "true"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such container: nosuch"), "{r:?}");
}

#[test]
fn tmpfs_mounts_have_their_size_and_mode() {
    let d = daemon!();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--tmpfs",
            "/t1:size=1m,mode=700",
            "--mount",
            "type=tmpfs,dst=/t2,tmpfs-size=2097152,tmpfs-mode=1770",
            "busybox",
            "sh",
            "-c",
            "grep -E ' /t[12] ' /proc/mounts; stat -c '%a' /t1 /t2",
        ])
        .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    let t1 = lines.iter().find(|l| l.contains(" /t1 ")).expect("no /t1 mount");
    let t2 = lines.iter().find(|l| l.contains(" /t2 ")).expect("no /t2 mount");
    assert!(
        t1.starts_with("tmpfs /t1 tmpfs") && t1.contains("size=1024k") && t1.contains("noexec"),
        "{t1}"
    );
    assert!(t2.contains("size=2048k"), "{t2}");
    assert_eq!(&lines[lines.len() - 2..], &["700", "1770"]);
}

#[test]
fn read_only_root_with_writable_volume() {
    let d = daemon!();
    let r = d.berth(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        "rw:/data",
        "busybox",
        "sh",
        "-c",
        "echo ok > /data/f && cat /data/f && touch /etc/x",
    ]);
    assert_eq!(r.stdout, "ok\n");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
}

#[test]
fn bad_volume_input_is_refused_and_changes_nothing() {
    let d = daemon!();
    // (flags, message); exit 125, except that docker's CLI maps "no such file or directory" to 127.
    let cases: &[(&[&str], &str)] = &[
        (
            &["-v", "a/b:/x"],
            "\"a/b\" includes invalid characters for a local volume name",
        ),
        (&["-v", "v1:rel"], "mount path must be absolute"),
        (&["-v", "/tmp:/"], "destination can't be '/'"),
        (&["-v", "v1:/x", "-v", "w1:/x"], "Duplicate mount point: /x"),
        (&["-v", "/tmp:/x:bogus"], "invalid mode: bogus"),
        (
            &["--mount", "type=tmpfs,src=x,dst=/x"],
            "field Source must not be specified",
        ),
        (
            &["--device", "/dev/nope"],
            "error gathering device information while adding custom device \"/dev/nope\"",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        let r = d.berth(&a);
        let code = if want.contains("/dev/nope") { 127 } else { 125 };
        assert_eq!(r.code, code, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    assert!(volume_names(&d).is_empty(), "{:?}", volume_names(&d));
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "");
    let r = d.berth(&["volume", "create", "a/b"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("includes invalid characters"), "{r:?}");
    assert!(std::fs::read_dir(d.data_root().join("volumes"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn volume_data_survives_cleanup_without_leftover_mounts() {
    let d = daemon!();
    d.berth(&["run", "--rm", "-v", "m1:/a", "--tmpfs", "/t", "busybox", "true"])
        .ok();
    // The container's network namespace is unpinned by the background teardown.
    super::network::wait_netns(&d, 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = d.root.display().to_string();
    // (The daemon's own mount of its network namespace pins' directory stays while it runs.)
    let pins = d.root.join("exec/netns").display().to_string();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&root) && l.split(' ').nth(4) != Some(pins.as_str()))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    let _ = std::fs::set_permissions(d.root.join("host"), std::fs::Permissions::from_mode(0o755));
}

#[test]
fn cp_reaches_into_volumes_and_binds_running_or_not() {
    let d = daemon!();
    let h = host_dir(&d, "cpb");
    let b = format!("{}:/b", h.display());
    let src = d.root.join("cp-in.txt");
    std::fs::write(&src, "into the volume\n").unwrap();
    for (name, detach) in [("cpstopped", false), ("cprunning", true)] {
        let mut args = vec!["run", "--name", name, "-v", "cpv:/data", "-v", &b];
        if detach {
            args.extend_from_slice(&["-d", "busybox", "sleep", "60"]);
        } else {
            args.extend_from_slice(&["busybox", "true"]);
        }
        d.berth(&args).ok();
        d.berth(&["cp", src.to_str().unwrap(), &format!("{name}:/data/{name}.txt")])
            .ok();
        assert_eq!(
            std::fs::read_to_string(d.data_root().join(format!("volumes/cpv/_data/{name}.txt"))).unwrap(),
            "into the volume\n",
            "{name}"
        );
        d.berth(&["cp", src.to_str().unwrap(), &format!("{name}:/b/")])
            .ok();
        assert!(h.join("cp-in.txt").is_file(), "{name}");
        std::fs::write(h.join("from-host"), name).unwrap();
        let out = d.root.join(format!("{name}-out"));
        d.berth(&["cp", &format!("{name}:/b/from-host"), out.to_str().unwrap()])
            .ok();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), name);
        // The container's layer holds none of it.
        let diff = d.berth(&["diff", name]).ok();
        assert!(
            !diff.stdout.contains("/data/") && !diff.stdout.contains("/b/"),
            "{}",
            diff.stdout
        );
    }
    // Nothing stays mounted after a cp on a stopped container.
    d.berth(&["rm", "-f", "cprunning"]).ok();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&d.data_root().join("containers").display().to_string()),
        "{mounts}"
    );
}

#[test]
fn export_and_commit_leave_volume_contents_out() {
    let d = daemon!();
    let h = host_dir(&d, "ex");
    let b = format!("{}:/b", h.display());
    d.berth(&[
        "run",
        "--name",
        "ex",
        "-v",
        "exv:/data",
        "-v",
        &b,
        "busybox",
        "sh",
        "-c",
        "echo v > /data/in-volume; echo b > /b/in-bind; echo l > /in-layer",
    ])
    .ok();
    let tar = d.berth_command().args(["export", "ex"]).output().unwrap();
    assert!(tar.status.success());
    let list = berth_e2e::tar_names(&tar.stdout);
    let names = list;
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "in-layer"),
        "{names}"
    );
    assert!(
        !names.contains("in-volume") && !names.contains("in-bind"),
        "{names}"
    );
    d.berth(&["commit", "ex", "excommit:1"]).ok();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "excommit:1",
            "sh",
            "-c",
            "cat /in-layer; test -e /data/in-volume || test -e /b/in-bind || echo clean",
        ])
        .ok();
    assert_eq!(r.stdout, "l\nclean\n");
}

#[test]
fn devices_and_cgroup_rules() {
    let d = daemon!();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--device",
            "/dev/loop-control:/dev/lc",
            "busybox",
            "sh",
            "-c",
            "ls -l /dev/lc; : < /dev/lc && echo opened",
        ])
        .ok();
    assert!(
        r.stdout.starts_with("crw") && r.stdout.contains("10, 237") && r.stdout.contains("opened"),
        "{}",
        r.stdout
    );
    // Read-only permission: the node exists but cannot be opened for writing.
    let r = d.berth(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop-control:/dev/lc:r",
        "busybox",
        "sh",
        "-c",
        ": < /dev/lc && echo read; echo x > /dev/lc",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "read\n", "{r:?}");
    // A cgroup rule alone allows a node the container makes itself.
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--device-cgroup-rule",
            "c 10:237 rwm",
            "busybox",
            "sh",
            "-c",
            "mknod /tmp/lc c 10 237 && : < /tmp/lc && echo opened",
        ])
        .ok();
    assert_eq!(r.out(), "opened");
    let r = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/lc c 10 237 && : < /tmp/lc",
    ]);
    assert_ne!(r.code, 0, "the default rules allowed 10:237 to be opened");
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    // --privileged sees the host's devices.
    let r = d
        .berth(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "ls",
            "/dev/loop-control",
        ])
        .ok();
    assert_eq!(r.out(), "/dev/loop-control");
}

#[test]
fn a_symlink_in_a_volume_cannot_send_cp_outside_the_container() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "esc",
        "-v",
        "escv:/data",
        "busybox",
        "ln",
        "-s",
        "/",
        "/data/up",
    ])
    .ok();
    let src = d.root.join("pwned-berth-e2e");
    std::fs::write(&src, "x").unwrap();
    d.berth(&["cp", src.to_str().unwrap(), "esc:/data/up/"]).ok();
    assert!(
        !std::path::Path::new("/pwned-berth-e2e").exists(),
        "cp wrote to the host's /"
    );
    // It landed in the container's own root.
    d.berth(&[
        "cp",
        "esc:/pwned-berth-e2e",
        d.root.join("back").to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(d.root.join("back")).unwrap(), "x");
}
