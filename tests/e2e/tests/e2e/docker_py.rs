//! docker-py (PyPI `docker`) against berthd.

#[test]
fn docker_py_runs_containers() {
    let d = daemon!();
    let have = d.python("import docker");
    if have.code != 0 {
        panic!(
            "docker-py missing (pip install docker); the CI script installs it: {}",
            have.stderr
        );
    }
    let script = r#"
import docker
c = docker.from_env()
assert c.ping()
assert c.version()["ApiVersion"] == "1.41"
out = c.containers.run("busybox", ["echo", "hello from py"], remove=True)
assert out == b"hello from py\n", out
ct = c.containers.run("busybox", ["sh", "-c", "echo detached; sleep 60"], detach=True, name="pyd")
ct.reload()
assert ct.status == "running", ct.status
assert ct.name == "pyd"
ct.stop(timeout=1)
ct.reload()
assert ct.status == "exited", ct.status
assert b"detached" in ct.logs()
ct.remove()
try:
    c.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    raise SystemExit("expected ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3
names = [t for i in c.images.list() for t in i.tags]
assert "busybox:latest" in names, names
# Restart policies are checked as dockerd checks them, at create and at update.
for policy, msg in [({"Name": "nope"}, "invalid restart policy 'nope'"),
                    ({"Name": "always", "MaximumRetryCount": 3},
                     "maximum retry count cannot be used with restart policy 'always'")]:
    try:
        c.containers.create("busybox", ["true"], restart_policy=policy)
        raise SystemExit("expected APIError for %r" % policy)
    except docker.errors.APIError as e:
        assert e.status_code == 400 and msg in str(e), (e.status_code, str(e))
ct = c.containers.create("busybox", ["true"], restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
try:
    ct.update(restart_policy={"Name": "nope"})
    raise SystemExit("expected APIError from update")
except docker.errors.APIError as e:
    assert e.status_code == 400 and "invalid restart policy 'nope'" in str(e), str(e)
ct.update(restart_policy={"Name": "always"})
ct.reload()
assert ct.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always", ct.attrs["HostConfig"]["RestartPolicy"]
ct.remove()
# A Dockerfile that does not parse is the request's error (400), not a stream's last message.
import io
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nFOO bar\n"), tag="pybad")
    raise SystemExit("expected an error for a bad Dockerfile")
except docker.errors.APIError as e:
    assert e.status_code == 400, e.status_code
    assert "dockerfile parse error line 2: unknown instruction: FOO" in str(e), str(e)
print("ok")
"#;
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}

/// `pid_mode`, `ipc_mode` and `uts_mode` as docker-py sends them: the host's namespaces, a
/// shareable container's IPC namespace and `/dev/shm`, and dockerd's records in `HostConfig`;
/// a seccomp profile in `security_opt`.
#[test]
fn docker_py_namespace_modes() {
    let d = daemon!();
    let script = r#"
import os, docker
c = docker.from_env()
host_pid = os.readlink("/proc/self/ns/pid")
out = c.containers.run("busybox", ["readlink", "/proc/self/ns/pid"], pid_mode="host", remove=True)
assert out.decode().strip() == host_pid, out
donor = c.containers.run("busybox", ["sleep", "300"], detach=True, ipc_mode="shareable", name="pydonor")
donor.reload()
assert donor.attrs["HostConfig"]["IpcMode"] == "shareable", donor.attrs["HostConfig"]["IpcMode"]
joiner = c.containers.create("busybox", ["sh", "-c", "echo hi > /dev/shm/py; readlink /proc/self/ns/ipc"],
                             ipc_mode="container:pydonor", pid_mode="container:pydonor", uts_mode="host")
hc = joiner.attrs["HostConfig"]
assert hc["IpcMode"] == "container:" + donor.id, hc["IpcMode"]
assert hc["PidMode"] == "container:" + donor.id, hc["PidMode"]
assert hc["UTSMode"] == "host", hc["UTSMode"]
joiner.start()
assert joiner.wait()["StatusCode"] == 0
ipc = joiner.logs().decode().strip()
assert ipc == os.readlink("/proc/%d/ns/ipc" % donor.attrs["State"]["Pid"]), ipc
assert donor.exec_run(["cat", "/dev/shm/py"]).output == b"hi\n"
out = c.containers.run("busybox", ["grep", "memory", "/proc/self/cgroup"], cgroupns="private", remove=True)
assert out.decode().strip().endswith(":memory:/"), out
plain = c.containers.create("busybox", ["true"])
assert plain.attrs["HostConfig"]["IpcMode"] == "private", plain.attrs["HostConfig"]["IpcMode"]
try:
    c.containers.create("busybox", ["true"], ipc_mode="bogus")
    raise SystemExit("expected APIError")
except docker.errors.APIError as e:
    assert e.status_code == 400 and "invalid IPC mode: bogus" in str(e), e
for ct in (joiner, plain, donor):
    ct.remove(force=True)
# A seccomp profile goes as its JSON content, as docker-py users pass it.
profile = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}'
try:
    c.containers.run("busybox", ["mkdir", "/x"], security_opt=["seccomp=" + profile], remove=True)
    raise SystemExit("expected ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 1, e.exit_status
print("ok")
"#;
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}

/// Small answers docker-py reads whose shapes differed from dockerd's: `null` for no changes,
/// an exec's `ProcessConfig` without an empty `user`, resizing a container or exec without a
/// terminal (no error) and an exec that has exited (404), `version` without a false
/// `Experimental`, `RepoDigests` null in the image list for an image without digests.
#[test]
fn docker_py_small_answers_have_dockerds_shapes() {
    let d = daemon!();
    let script = r#"
import docker
c = docker.from_env(); a = c.api
a.create_container("busybox", ["sleep", "60"], name="shapes", host_config=a.create_host_config(network_mode="none"))
a.start("shapes")
assert a.diff("shapes") is None, a.diff("shapes")
a.resize("shapes", 10, 10)
ex = a.exec_create("shapes", ["true"])
a.exec_start(ex["Id"])
pc = a.exec_inspect(ex["Id"])["ProcessConfig"]
assert sorted(pc) == ["arguments", "entrypoint", "privileged", "tty"], pc
try:
    a.exec_resize(ex["Id"], height=10, width=10)
    raise SystemExit("expected NotFound")
except docker.errors.NotFound:
    pass
ex = a.exec_create("shapes", ["sleep", "30"], user="nobody")
a.exec_start(ex["Id"], detach=True)
assert a.exec_inspect(ex["Id"])["ProcessConfig"]["user"] == "nobody"
a.exec_resize(ex["Id"], height=10, width=10)
assert "Experimental" not in a.version(), a.version()
imgs = [i for i in a.images() if "busybox:latest" in (i["RepoTags"] or [])]
assert imgs and imgs[0]["RepoDigests"] is None, imgs
a.remove_container("shapes", force=True)
print("ok")
"#;
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}
