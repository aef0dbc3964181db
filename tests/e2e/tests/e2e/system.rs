use berth_e2e::Daemon;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn version_and_info_describe_the_daemon() {
    let d = daemon!();
    let v = d.berth(&["version", "--format", "{{.Server.APIVersion}}"]).ok();
    assert_eq!(v.out(), "1.41");
    let info = d
        .berth(&[
            "info",
            "--format",
            "{{.Driver}} {{.CgroupDriver}} {{.Images}} {{.DockerRootDir}}",
        ])
        .ok();
    assert_eq!(
        info.out(),
        format!("overlay2 cgroupfs 1 {}", d.root.join("data").display())
    );
    let kernel = d.berth(&["info", "--format", "{{.KernelVersion}}"]).ok();
    let uname = std::process::Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(kernel.out(), String::from_utf8_lossy(&uname.stdout).trim());
}

#[test]
fn socket_is_private_without_the_berth_group() {
    let d = daemon!();
    let meta = std::fs::metadata(&d.socket).unwrap();
    let has_group = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("berth:"));
    let mode = meta.permissions().mode() & 0o777;
    if has_group {
        assert_eq!(mode, 0o660);
    } else {
        assert_eq!(mode, 0o600);
        assert_eq!(meta.gid(), 0);
    }
}

/// Raw HTTP against the socket: version prefixes, too-new versions, ping headers, unknown routes.
fn http(d: &Daemon, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of the one header `name` in a raw response's head (names compare case-insensitively,
/// as HTTP defines them: dockerd writes `Api-Version`, hyper `api-version`); `None` if absent.
/// Panics if the header is repeated.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap();
    let mut values = head.lines().skip(1).filter_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    });
    let first = values.next();
    assert_eq!(values.next(), None, "{name} repeated in {head}");
    first
}

#[test]
fn api_versions_are_negotiated_like_dockerd() {
    let d = daemon!();
    let ping = http(&d, "HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    assert_eq!(header(&ping, "Api-Version"), Some("1.41"), "{ping}");
    let get = http(
        &d,
        "GET /v1.24/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(get.ends_with("OK"), "{get}");
    let new = http(
        &d,
        "GET /v1.50/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(new.starts_with("HTTP/1.1 400"), "{new}");
    assert!(
        new.contains("client version 1.50 is too new. Maximum supported API version is 1.41"),
        "{new}"
    );
    let unversioned = http(
        &d,
        "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(unversioned.contains("\"ApiVersion\":\"1.41\""), "{unversioned}");
    assert!(
        unversioned.contains("\"MinAPIVersion\":\"1.12\""),
        "{unversioned}"
    );
    let nope = http(
        &d,
        "GET /v1.41/nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(nope.starts_with("HTTP/1.1 404"), "{nope}");
    assert_eq!(header(&nope, "Content-Type"), Some("application/json"), "{nope}");
    assert!(nope.contains("{\"message\":\"page not found\"}"), "{nope}");
}

#[test]
fn two_daemons_run_side_by_side() {
    let a = daemon!();
    let b = Daemon::start_bare();
    assert_ne!(a.socket, b.socket);
    assert_eq!(a.berth(&["images", "-q"]).ok().out().lines().count(), 1);
    assert_eq!(b.berth(&["images", "-q"]).ok().out(), "");
    a.berth(&["run", "--name", "only-in-a", "busybox", "true"]).ok();
    assert!(b.berth(&["ps", "-aq"]).ok().out().is_empty());
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = daemon!();
    let out = std::process::Command::new(berth_e2e::bin_dir().join("berthd"))
        .arg("-H")
        .arg(d.host())
        .arg("--data-root")
        .arg(d.root.join("other-data"))
        .arg("--exec-root")
        .arg(d.root.join("other-exec"))
        .arg("--config-file")
        .arg("/nonexistent/daemon.json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already listening"),
        "{:?}",
        out
    );
    // The first daemon still answers.
    d.berth(&["version"]).ok();
}

/// The README's first command on a fresh machine: nothing listens on the default socket, so the
/// CLI (as root) starts berthd itself and waits for it. Run in a private mount namespace with
/// tmpfs over the default roots, so the machine's own /run/berth and /var/lib/berth are untouched.
#[test]
fn the_cli_starts_berthd_when_none_is_running() {
    if !berth_e2e::require_root("the_cli_starts_berthd_when_none_is_running") {
        return;
    }
    let bins = berth_e2e::bin_dir();
    let parent = format!("berth-autostart-{}", std::process::id());
    // The test's own bridge, subnet and nftables table, not the product defaults.
    let net = berth_e2e::TestNet::new();
    let script = format!(
        r#"set -e
mount --make-rprivate /
mkdir -p /run/berth /var/lib/berth /etc/berth
mount -t tmpfs tmpfs /run/berth
mount -t tmpfs tmpfs /var/lib/berth
mount -t tmpfs tmpfs /etc/berth
echo '{{"cgroup-parent": "{parent}", "bridge": "{bridge}", "bip": "{bip}/24", "nft-table": "{bridge}", "dns": ["127.0.0.1"]}}' > /etc/berth/daemon.json
unset BERTH_HOST DOCKER_HOST
rc=0
{bin}/berth run --rm hello-world || rc=$?
{bin}/berth info --format '{{{{.DockerRootDir}}}}'
pid=$(cat /run/berth/berthd.pid)
kill $pid
# Wait for berthd's exit on a pidfd (at most 20 s; already gone counts as exited).
python3 -c 'import os, select, sys
try:
    fd = os.pidfd_open(int(sys.argv[1]))
except ProcessLookupError:
    sys.exit(0)
sys.exit(0 if select.select([fd], [], [], 20)[0] else "berthd still running 20 s after TERM")' $pid
test ! -e /run/berth/berth.sock
exit $rc
"#,
        bin = bins.display(),
        parent = parent,
        bridge = net.bridge,
        bip = net.gateway,
    );
    // The mount points are made on the host's filesystem: remove the ones this test creates.
    let made: Vec<&str> = ["/run/berth", "/var/lib/berth", "/etc/berth"]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    berth_e2e::remove_cgroups(&parent);
    net.cleanup();
    for p in made {
        let _ = std::fs::remove_dir(p);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Hello from berth!"), "{stdout}");
    assert!(stdout.trim_end().ends_with("/var/lib/berth"), "{stdout}");
}
