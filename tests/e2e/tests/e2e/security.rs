//! Docker's default confinement: capabilities, seccomp, masked and read-only paths, and tar
//! confinement on import.

#[test]
fn default_capabilities_match_docker() {
    let d = daemon!();
    let r = d
        .berth(&["run", "--rm", "busybox", "grep", "CapBnd", "/proc/self/status"])
        .ok();
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert_eq!(r.out(), "CapBnd:\t00000000a80425fb");
    let added = d
        .berth(&[
            "run",
            "--rm",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "busybox",
            "grep",
            "CapBnd",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(added.out(), "CapBnd:\t00000000a00435fb");
    let net_admin = d.berth(&["run", "--rm", "busybox", "ip", "link", "set", "lo", "down"]);
    assert_ne!(net_admin.code, 0, "NET_ADMIN should not be granted by default");
    let privileged = d.berth(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "ip",
        "link",
        "set",
        "lo",
        "down",
    ]);
    assert_eq!(privileged.code, 0, "{}", privileged.stderr);
}

#[test]
fn seccomp_and_masked_paths() {
    let d = daemon!();
    let sec = d
        .berth(&["run", "--rm", "busybox", "grep", "Seccomp:", "/proc/self/status"])
        .ok();
    assert_eq!(sec.out(), "Seccomp:\t2");
    // /proc/keys is masked (a bind of /dev/null): empty inside, not empty on the host.
    let keys = d
        .berth(&["run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/keys"])
        .ok();
    assert_eq!(keys.out().trim(), "0");
    let masked = d
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "grep -c ' /proc/keys ' /proc/self/mountinfo",
        ])
        .ok();
    assert_eq!(masked.out().trim(), "1");
    let sys = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/ctrl-alt-del",
    ]);
    assert_ne!(sys.code, 0);
    let mount = d.berth(&["run", "--rm", "busybox", "mount", "-t", "tmpfs", "x", "/mnt"]);
    assert_ne!(mount.code, 0, "mount should be denied");
    let devs = d.berth(&["run", "--rm", "busybox", "ls", "/dev"]).ok();
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
    ] {
        assert!(
            devs.stdout.lines().any(|l| l == dev),
            "/dev lacks {dev}: {}",
            devs.stdout
        );
    }
    assert!(
        !devs
            .stdout
            .lines()
            .any(|l| l == "sda" || l == "vda" || l == "mem"),
        "{}",
        devs.stdout
    );
    let ro = d.berth(&["run", "--rm", "busybox", "touch", "/sys/x"]);
    assert_ne!(ro.code, 0);
}

/// Builds a tar with hostile entries using Python's tarfile (GNU tar refuses to write some).
fn hostile_tar(path: &std::path::Path, marker: &str) {
    let script = format!(
        r#"
import tarfile, io
t = tarfile.open({path:?}, 'w')
def add(name, data=b'x', **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data) if i.type in (tarfile.REGTYPE,) else None)
add('ok.txt', b'fine')
add('../../../../tmp/{marker}-dotdot')
add('/tmp/{marker}-abs')
l = tarfile.TarInfo('escape'); l.type = tarfile.SYMTYPE; l.linkname = '/tmp'; t.addfile(l)
add('escape/{marker}-via-symlink')
l = tarfile.TarInfo('up'); l.type = tarfile.SYMTYPE; l.linkname = '../../../../../../tmp'; t.addfile(l)
add('up/{marker}-via-relative')
h = tarfile.TarInfo('passwd-link'); h.type = tarfile.LNKTYPE; h.linkname = '../../../../etc/passwd'; t.addfile(h)
t.close()
"#,
        path = path.to_str().unwrap(),
        marker = marker
    );
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn hostile_tars_cannot_write_outside_the_root() {
    let d = daemon!();
    let marker = format!("berth-hostile-{}", std::process::id());
    let tar = d.root.join("hostile.tar");
    hostile_tar(&tar, &marker);
    let r = d.berth(&["import", tar.to_str().unwrap(), "hostile"]);
    for suffix in ["dotdot", "abs", "via-symlink", "via-relative"] {
        let p = format!("/tmp/{marker}-{suffix}");
        assert!(
            !std::path::Path::new(&p).exists(),
            "{p} was written outside the root"
        );
    }
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    if r.code == 0 {
        // The legitimate entry made it in, inside the image.
        let img = d
            .berth(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", "hostile"])
            .ok();
        assert_eq!(img.out(), "1");
    }
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
}
