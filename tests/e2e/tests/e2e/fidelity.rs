//! The Engine API as docker-py (the reference client) sees it: each test pins a place where berth
//! answered differently from Docker, with the CLI's view where it has one.

/// Runs a docker-py script that prints `ok` at its end, and fails with its output otherwise.
#[track_caller]
fn py_ok(d: &berth_e2e::Daemon, script: &str) {
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out().lines().last(), Some("ok"), "stdout: {}", r.stdout);
}

#[test]
fn kill_returns_only_once_the_container_is_dead() {
    let d = daemon!();
    // Docker's kill with SIGKILL (the default) returns once the container has died, so an
    // inspect right after it shows the exit; berth used to return on delivery of the signal.
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
for i in range(25):
    ct = c.containers.run("busybox", ["sleep", "60"], detach=True)
    ct.kill()
    s = c.api.inspect_container(ct.id)["State"]
    assert not s["Running"] and s["Status"] == "exited" and s["ExitCode"] == 137, (i, s)
    ct.remove()
# Other signals return once delivered; the exit follows (here from the container's trap).
ct = c.containers.run("busybox", ["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"], detach=True)
for line in ct.logs(stream=True, follow=True):
    if b"ready" in line:
        break
ct.kill(signal="SIGTERM")
assert ct.wait(timeout=10)["StatusCode"] == 7
ct.remove()
print("ok")
"#,
    );
    // The CLI: kill then inspect, no wait in between.
    for _ in 0..5 {
        let id = d.berth(&["run", "-d", "busybox", "sleep", "60"]).ok().stdout;
        let id = id.trim();
        d.berth(&["kill", id]).ok();
        let state = d
            .berth(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", id])
            .ok();
        assert_eq!(state.out(), "false 137");
        d.berth(&["rm", id]).ok();
    }
}
