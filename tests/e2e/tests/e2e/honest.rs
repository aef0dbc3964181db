//! Output that says only what is true: no invented pull digests or downloads, storage driver
//! facts measured on the data root, and the network a container really has.

#[track_caller]
fn py_ok(d: &berth_e2e::Daemon, script: &str) {
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out().lines().last(), Some("ok"), "stdout: {}", r.stdout);
}

#[test]
fn pulling_the_built_in_hello_world_invents_no_digest_or_download() {
    if !berth_e2e::require_root("honest") {
        return;
    }
    let d = berth_e2e::Daemon::start_bare();
    // No registry answers (docker.io fails closed in tests): the pull says so and keeps the
    // built-in hello-world, with no "Pulling from", no manifest digest and no "Downloaded".
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
def pull():
    return [m.get("status", "") for m in c.api.pull("hello-world", stream=True, decode=True)]
for said in (pull(), pull()):
    assert len(said) == 2, said
    assert said[0].startswith("hello-world:latest could not be pulled (") and "connection refused" in said[0], said
    assert "using berth's built-in image" in said[0], said
    assert said[1] == "Status: Image is up to date for hello-world:latest", said
img = c.images.pull("hello-world")
assert img.tags == ["hello-world:latest"] and img.attrs["RepoDigests"] == [], img.attrs["RepoDigests"]
print("ok")
"#,
    );
    d.berth(&["rmi", "hello-world"]).ok();
    let run = d.berth(&["run", "--rm", "hello-world"]).ok();
    assert!(run.stdout.contains("Hello from berth!"), "{}", run.stdout);
    for said in [
        run.stderr.as_str(),
        d.docker(&["pull", "hello-world"]).ok().stdout.as_str(),
    ] {
        assert!(!said.contains("Digest"), "{said}");
        assert!(!said.contains("Downloaded"), "{said}");
        assert!(!said.contains("Pulling from"), "{said}");
    }
}

#[test]
fn info_driver_status_is_measured_on_the_data_root() {
    if !berth_e2e::require_root("honest") {
        return;
    }
    // A daemon whose data root is on a tmpfs: the facts must be the tmpfs's, not constants.
    let mut d = berth_e2e::Daemon::start_bare();
    d.kill9();
    let data = d.root.join("data");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    d.spawn();
    let module =
        |p: &str| std::fs::read_to_string(format!("/sys/module/overlay/parameters/{p}")).unwrap_or_default();
    let plain = |v: String| matches!(v.trim(), "N" | "off" | "nofollow" | "follow" | "");
    let native = plain(module("redirect_dir")) && module("metacopy").trim() != "Y";
    let script = r#"
import docker
c = docker.from_env()
status = dict(c.info()["DriverStatus"])
assert status == {"Backing Filesystem": "tmpfs", "Supports d_type": "true", "Using metacopy": "false",
                  "Native Overlay Diff": "NATIVE", "userxattr": "false"}, status
print("ok")
"#
    .replace("NATIVE", if native { "true" } else { "false" });
    py_ok(&d, &script);
    let info = d.docker(&["info"]).ok();
    assert!(
        info.stdout.contains("Backing Filesystem: tmpfs"),
        "{}",
        info.stdout
    );
    // The probe cleaned up after itself.
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("check-overlayfs"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn inspect_reports_the_network_the_container_really_has() {
    let d = daemon!();
    // The default mode is the default bridge: the endpoint shown is the one eth0 really has.
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
def nets(**kw):
    ct = c.containers.run("busybox", ["sleep", "60"], detach=True, **kw)
    ns = c.api.inspect_container(ct.id)["NetworkSettings"]
    listed = c.api.containers(filters={"id": ct.id})[0]["NetworkSettings"]["Networks"]
    assert sorted(listed) == sorted(ns["Networks"]), (listed, ns["Networks"])
    return ct, ns
ct, ns = nets()
assert list(ns["Networks"]) == ["bridge"], ns["Networks"]
ip = ns["IPAddress"]
assert ip != "" and ns["Networks"]["bridge"]["IPAddress"] == ip and ns["Networks"]["bridge"]["Gateway"] == ns["Gateway"]
# What the container has is loopback and eth0 with that address.
ifaces = sorted(l.split(":")[0].strip() for l in ct.exec_run(["cat", "/proc/net/dev"]).output.decode().splitlines()[2:])
assert ifaces == ["eth0", "lo"], ifaces
assert ("inet " + ip + "/") in ct.exec_run(["ip", "-4", "addr", "show", "eth0"]).output.decode()
_, ns = nets(network_mode="none")
ifaces = sorted(l.split(":")[0].strip() for l in _.exec_run(["cat", "/proc/net/dev"]).output.decode().splitlines()[2:])
assert ifaces == ["lo"], ifaces
# docker-py's views still work.
ct.reload()
assert ct.ports == {} and ct.status == "running"
_, ns = nets(network_mode="none")
assert list(ns["Networks"]) == ["none"], ns["Networks"]
_, ns = nets(network_mode="host")
assert list(ns["Networks"]) == ["host"], ns["Networks"]
_, ns = nets(network_mode="container:" + ct.id)
assert ns["Networks"] == {}, ns["Networks"]
print("ok")
"#,
    );
    d.berth(&["run", "-d", "--name", "n1", "busybox", "sleep", "60"])
        .ok();
    assert_eq!(
        d.docker(&["ps", "--format", "{{.Networks}}", "-f", "name=n1"])
            .ok()
            .out(),
        "bridge"
    );
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
            "n1"
        ])
        .ok()
        .out(),
        "bridge"
    );
}
