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

/// What the host looks like where a hostile tar would write: the names in /tmp that start with
/// the test's marker, and /etc/passwd's identity, link count, times and bytes (a hard link to it
/// changes its link count and ctime, not its bytes).
#[derive(Debug, PartialEq)]
struct HostState {
    escaped: Vec<String>,
    passwd: (u64, u64, u64, i64, i64, i64, u64),
}

fn host_state(marker: &str) -> HostState {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut escaped: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(marker))
        .collect();
    escaped.sort();
    let md = std::fs::symlink_metadata("/etc/passwd").unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read("/etc/passwd").unwrap().hash(&mut h);
    HostState {
        escaped,
        passwd: (
            md.dev(),
            md.ino(),
            md.nlink(),
            md.mtime(),
            md.ctime(),
            md.ctime_nsec(),
            h.finish(),
        ),
    }
}

/// Removes what an escaping entry wrote to /tmp, also when the test fails.
struct RemoveEscaped(String);

impl Drop for RemoveEscaped {
    fn drop(&mut self) {
        for n in host_state(&self.0).escaped {
            let _ = std::fs::remove_file(std::path::Path::new("/tmp").join(n));
        }
    }
}

/// Writes a tar at `path` with `ok.txt`, a `tmp/` directory, then the entries `body` adds (Python
/// tarfile, as GNU tar refuses to write some of them; `t` is the archive, `add(name, data)` adds
/// a file, `link(name, target, type)` a link, `up` climbs 20 directories: beyond any data root).
fn hostile_tar(path: &std::path::Path, body: &str) {
    let script = format!(
        r#"
import tarfile, io
t = tarfile.open({path:?}, 'w')
def add(name, data=b'x'):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
def link(name, target, type):
    i = tarfile.TarInfo(name); i.type = type; i.linkname = target; t.addfile(i)
up = '../' * 20
add('ok.txt', b'fine')
d = tarfile.TarInfo('tmp'); d.type = tarfile.DIRTYPE; d.mode = 0o1777; t.addfile(d)
{body}
t.close()
"#,
        path = path.to_str().unwrap(),
    );
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(st.success());
}

/// What must become of a hostile tar on import.
enum Expect {
    /// The import fails with this message and makes no image.
    Refused(String),
    /// The import succeeds and the escaping entry lands at this path inside the image.
    Inside(String),
}

/// Each way out of the root, in its own tar (the first refused entry ends an import, so one tar
/// holding them all would only ever test the first): the host is read before and after each
/// import and must not have changed, and each entry is refused or lands inside the image, as
/// dockerd's chrooted unpack does.
#[test]
fn hostile_tars_cannot_write_outside_the_root() {
    let d = daemon!();
    let marker = format!("berth-hostile-{}", std::process::id());
    let _cleanup = RemoveEscaped(marker.clone());
    let m = &marker;
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "dotdot",
            format!("add(up + 'tmp/{m}-dotdot')"),
            Expect::Refused(format!(
                "invalid tar entry \"{}tmp/{m}-dotdot\": path escapes the root",
                "../".repeat(20)
            )),
        ),
        (
            "abs",
            format!("add('/tmp/{m}-abs')"),
            Expect::Inside(format!("tmp/{m}-abs")),
        ),
        (
            "via-symlink",
            format!("link('escape', '/tmp', tarfile.SYMTYPE)\nadd('escape/{m}-via-symlink')"),
            Expect::Inside(format!("tmp/{m}-via-symlink")),
        ),
        (
            "via-relative",
            format!("link('up', up + 'tmp', tarfile.SYMTYPE)\nadd('up/{m}-via-relative')"),
            Expect::Inside(format!("tmp/{m}-via-relative")),
        ),
        (
            "hardlink",
            "link('passwd-link', up + 'etc/passwd', tarfile.LNKTYPE)".to_string(),
            Expect::Refused("invalid tar entry \"passwd-link\": hard link target escapes the root".into()),
        ),
        (
            "hardlink-via-symlink",
            "link('hostetc', '/etc', tarfile.SYMTYPE)\nlink('pw', 'hostetc/passwd', tarfile.LNKTYPE)"
                .to_string(),
            // /etc resolves inside the root, where the layer has no etc/.
            Expect::Refused("failed to open parent directory of \"pw\" while applying layer".into()),
        ),
    ];
    for (case, body, expect) in cases {
        let tar = d.root.join(format!("hostile-{case}.tar"));
        hostile_tar(&tar, &body);
        let image = format!("hostile-{case}");
        let before = host_state(&marker);
        assert_eq!(before.escaped, Vec::<String>::new(), "{case}: stale files");
        let r = d.berth(&["import", tar.to_str().unwrap(), &image]);
        assert_eq!(host_state(&marker), before, "{case}: the host changed");
        match expect {
            Expect::Refused(msg) => {
                assert_eq!(r.code, 1, "{case}: {r:?}");
                assert_eq!(
                    r.stderr.trim_end(),
                    format!("Error response from daemon: {msg}"),
                    "{case}"
                );
                assert_ne!(
                    d.berth(&["image", "inspect", &image]).code,
                    0,
                    "{case}: image made"
                );
            }
            Expect::Inside(path) => {
                let r = r.ok();
                assert!(r.out().starts_with("sha256:"), "{case}: {r:?}");
                d.berth(&["create", "--name", case, &image, "/x"]).ok();
                let export = d.root.join(format!("hostile-{case}-export.tar"));
                d.berth(&["export", "-o", export.to_str().unwrap(), case]).ok();
                let list = std::process::Command::new("tar")
                    .arg("-tf")
                    .arg(&export)
                    .output()
                    .unwrap();
                let list = String::from_utf8_lossy(&list.stdout);
                let names: Vec<&str> = list.lines().map(|l| l.trim_start_matches("./")).collect();
                assert!(names.contains(&path.as_str()), "{case}: {path} not in {names:?}");
                assert!(names.contains(&"ok.txt"), "{case}: {names:?}");
            }
        }
    }
}

/// `--security-opt seccomp=FILE` (Docker's profile format, sent by the client as the file's
/// content) replaces the default filter; `systempaths=unconfined` unmasks; unknown options are
/// dockerd's error, and nothing is created.
#[test]
fn custom_seccomp_profile_systempaths_and_bad_options() {
    let d = daemon!();
    let profile = d.root.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
  ]
}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "grep Seccomp: /proc/self/status; mkdir /tmp/x && echo made";
    for cli in ["berth", "docker"] {
        let args = [
            "run",
            "--rm",
            "--security-opt",
            opt.as_str(),
            "busybox",
            "sh",
            "-c",
            script,
        ];
        let r = if cli == "berth" {
            d.berth(&args)
        } else {
            d.docker(&args)
        };
        assert_ne!(r.code, 0, "{cli}: mkdir was allowed: {}", r.stdout);
        assert!(r.stdout.contains("Seccomp:\t2"), "{cli}: {}", r.stdout);
        assert!(
            r.stderr.contains("Operation not permitted"),
            "{cli}: {}",
            r.stderr
        );
    }
    // The default profile allows mkdir.
    d.berth(&["run", "--rm", "busybox", "mkdir", "/tmp/x"]).ok();

    let masked = "grep -c ' /proc/keys ' /proc/self/mountinfo || true";
    let default = d.berth(&["run", "--rm", "busybox", "sh", "-c", masked]).ok();
    assert_eq!(default.out(), "1");
    let unmasked = d
        .berth(&[
            "run",
            "--rm",
            "--security-opt",
            "systempaths=unconfined",
            "busybox",
            "sh",
            "-c",
            masked,
        ])
        .ok();
    assert_eq!(unmasked.out(), "0");

    let before = d.berth(&["ps", "-aq"]).ok().stdout;
    let bad = d.berth(&["run", "--rm", "--security-opt", "bogus=1", "busybox", "true"]);
    assert_eq!(bad.code, 125);
    assert!(
        bad.stderr.contains(r#"invalid --security-opt 2: "bogus=1""#),
        "{}",
        bad.stderr
    );
    let broken = d.root.join("broken.json");
    std::fs::write(&broken, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
    let bad = d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", broken.display()),
        "busybox",
        "true",
    ]);
    assert_eq!(bad.code, 125);
    assert!(
        bad.stderr.contains("decoding seccomp profile failed"),
        "{}",
        bad.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout, before, "nothing created");
}
