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
print("ok")
"#;
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}
