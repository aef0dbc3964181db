//! `--cgroup-parent` (HostConfig.CgroupParent): nested parents hold the container's cgroup; a
//! parent that would leave the cgroup hierarchy is refused.

/// The container's cgroup in the memory hierarchy (v1) or the unified one (v2), from the host's
/// view of its init.
fn memory_cgroup_of(pid: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if v2 {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == "memory")
            };
            hit.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no memory cgroup in {text}"))
}

#[test]
fn nested_cgroup_parent_holds_the_container() {
    let d = daemon!();
    // Under the harness's parent, so the daemon's teardown removes the whole tree.
    let parent = format!("/{}/nested/deeper", d.cgroup_parent);
    let id = d
        .berth(&["run", "-d", "--cgroup-parent", &parent, "busybox", "sleep", "600"])
        .ok()
        .out()
        .to_string();
    let pid = d
        .berth(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .out()
        .to_string();
    assert_eq!(memory_cgroup_of(&pid), format!("{parent}/{id}"));
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.HostConfig.CgroupParent}}", &id])
            .ok()
            .out(),
        parent
    );
    // The daemon reads the same cgroup (top lists the container's process).
    let top = d.berth(&["top", &id]).ok();
    assert!(top.out().contains("sleep 600"), "{}", top.out());
    d.berth(&["rm", "-f", &id]).ok();
}

/// `HostConfig.CgroupParent` with `..` would put the container's cgroup outside the hierarchy
/// the daemon manages (or outside the cgroup root): refused with a 400 before anything is made.
#[test]
fn cgroup_parent_escaping_the_hierarchy_is_refused() {
    let d = daemon!();
    let r = d.berth(&["run", "--rm", "--cgroup-parent", "../../x", "busybox", "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("Error response from daemon: invalid cgroup parent \"../../x\": \"..\" is not allowed"),
        "{}",
        r.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "", "a container was created");
    let script = r#"
import docker
c = docker.from_env()
for parent in ["/a/../../b", "../x", ".."]:
    try:
        c.containers.create("busybox", "true", cgroup_parent=parent)
        raise SystemExit("created with cgroup parent " + parent)
    except docker.errors.APIError as e:
        assert e.status_code == 400, e
        assert "invalid cgroup parent" in str(e), e
ok = c.containers.create("busybox", "true", cgroup_parent="/plain")
assert ok.attrs["HostConfig"]["CgroupParent"] == "/plain"
ok.remove()
print("ok")
"#;
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}
