//! The `volume` commands and the `/volumes` API through berth, the docker CLI and docker-py;
//! inspect's `Mounts`; driver options; volume events; `system df`.

use std::time::Duration;

use super::volumes::{host_dir, volume_names};

#[test]
fn volume_commands_and_filters() {
    let d = daemon!();
    assert_eq!(
        d.berth(&["volume", "create", "--label", "env=test", "v1"])
            .ok()
            .out(),
        "v1"
    );
    d.berth(&["volume", "create", "v2"]).ok();
    let unnamed = d.berth(&["volume", "create"]).ok();
    assert_eq!(unnamed.out().len(), 64);
    let x = d.berth(&["create", "-v", "/x", "busybox", "true"]).ok();
    d.berth(&["rm", "-v", x.out()]).ok();
    let kept = d.berth(&["create", "-v", "/anon", "busybox", "true"]).ok();
    d.berth(&["rm", kept.out()]).ok();
    let anon = d.berth(&["volume", "ls", "-q"]).ok();
    let anon = anon
        .stdout
        .lines()
        .find(|n| *n != unnamed.out() && n.len() == 64)
        .unwrap()
        .to_string();
    d.berth(&[
        "run", "-d", "--name", "user", "-v", "v2:/d", "busybox", "sleep", "60",
    ])
    .ok();
    let ls = d.berth(&["volume", "ls"]).ok();
    assert!(ls.stdout.starts_with("DRIVER    VOLUME NAME\n"), "{}", ls.stdout);
    assert!(ls.stdout.contains("local     v1\n"), "{}", ls.stdout);
    assert_eq!(
        d.berth(&["volume", "ls", "-q", "-f", "label=env=test"])
            .ok()
            .out(),
        "v1"
    );
    assert_eq!(d.berth(&["volume", "ls", "-q", "-f", "name=v2"]).ok().out(), "v2");
    assert_eq!(
        d.berth(&["volume", "ls", "-q", "-f", "dangling=false"])
            .ok()
            .out(),
        "v2"
    );
    assert_eq!(
        d.berth(&["volume", "ls", "-q", "-f", "driver=local"])
            .ok()
            .stdout
            .lines()
            .count(),
        4
    );
    assert_eq!(
        d.berth(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}}:{{.Labels}}",
            "-f",
            "name=v1"
        ])
        .ok()
        .out(),
        "v1:env=test"
    );
    let insp = d.berth(&["volume", "inspect", "v1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&insp.stdout).unwrap();
    assert_eq!(v[0]["Labels"]["env"], "test");
    assert_eq!(v[0]["Scope"], "local");
    assert!(v[0]["Options"].is_null());
    let miss = d.berth(&["volume", "inspect", "nosuch"]);
    assert_eq!(miss.code, 1);
    assert!(miss.stderr.contains("get nosuch: no such volume"), "{miss:?}");
    // In use: refused with docker's message, data kept.
    let id = d.berth(&["inspect", "-f", "{{.Id}}", "user"]).ok();
    let r = d.berth(&["volume", "rm", "v2"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("remove v2: volume is in use - [{}]", id.out())),
        "{r:?}"
    );
    assert!(d.data_root().join("volumes/v2/_data").is_dir());
    // Prune without -a: anonymous only (a `volume create` without a name is not anonymous);
    // with a label filter and -a: just that one.
    let p = d.berth(&["volume", "prune", "-f"]).ok();
    assert!(p.stdout.contains(&anon), "{}", p.stdout);
    d.berth(&["volume", "rm", unnamed.out()]).ok();
    assert_eq!(volume_names(&d), vec!["v1".to_string(), "v2".into()]);
    d.berth(&["volume", "create", "v3"]).ok();
    let p = d
        .berth(&["volume", "prune", "-a", "-f", "--filter", "label=env=test"])
        .ok();
    assert!(p.stdout.starts_with("Deleted Volumes:\nv1\n"), "{}", p.stdout);
    let p = d.berth(&["volume", "prune", "-a", "-f"]).ok();
    assert!(
        p.stdout.contains("v3") && !p.stdout.contains("v2"),
        "{}",
        p.stdout
    );
    // ps finds the container by the volume's name or its mount point.
    assert_eq!(
        d.berth(&["ps", "-q", "--no-trunc", "-f", "volume=v2"]).ok().out(),
        id.out()
    );
    assert_eq!(
        d.berth(&["ps", "-q", "--no-trunc", "-f", "volume=/d"]).ok().out(),
        id.out()
    );
    assert_eq!(d.berth(&["ps", "-q", "-f", "volume=v1"]).ok().out(), "");
    d.berth(&["rm", "-f", "user"]).ok();
    assert_eq!(d.berth(&["volume", "rm", "v2"]).ok().out(), "v2");
    assert!(!d.data_root().join("volumes/v2").exists());
    assert_eq!(d.berth(&["volume", "rm", "-f", "v2"]).code, 0);
}

#[test]
fn local_driver_options_mount_tmpfs_and_bind_devices() {
    let d = daemon!();
    d.berth(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tv",
    ])
    .ok();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "-v",
            "tv:/t",
            "busybox",
            "sh",
            "-c",
            "grep ' /t ' /proc/mounts",
        ])
        .ok();
    assert!(
        r.stdout.starts_with("tmpfs /t tmpfs") && r.stdout.contains("size=1024k"),
        "{}",
        r.stdout
    );
    let opts = d
        .berth(&[
            "volume",
            "inspect",
            "-f",
            "{{.Options.type}} {{.Options.o}}",
            "tv",
        ])
        .ok();
    assert_eq!(opts.out(), "tmpfs size=1m");
    let h = host_dir(&d, "dev");
    std::fs::write(h.join("seen"), "via bind device\n").unwrap();
    let dev = format!("device={}", h.display());
    d.berth(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &dev,
        "bv",
    ])
    .ok();
    let r = d
        .berth(&[
            "run",
            "--rm",
            "-v",
            "bv:/b",
            "busybox",
            "sh",
            "-c",
            "cat /b/seen; echo back > /b/new",
        ])
        .ok();
    assert_eq!(r.stdout, "via bind device\n");
    assert_eq!(std::fs::read_to_string(h.join("new")).unwrap(), "back\n");
    // Unmounted once no container uses it; prune leaves driver-option volumes alone.
    let data = d.data_root().join("volumes/bv/_data");
    assert!(!data.join("seen").exists(), "the bind device stayed mounted");
    d.berth(&["volume", "prune", "-a", "-f"]).ok();
    assert_eq!(volume_names(&d), vec!["bv".to_string(), "tv".into()]);
    d.berth(&["volume", "rm", "bv", "tv"]).ok();
    assert!(
        h.join("seen").exists(),
        "removing a bind-device volume touched the device"
    );
}

#[test]
fn volume_events_follow_dockerd() {
    let d = daemon!();
    let since = berth_e2e::timestamp();
    d.berth(&["run", "--name", "ev", "-v", "evv:/d", "busybox", "true"])
        .ok();
    let created = d.wait_for_event(&since, &["type=volume", "event=create"], Duration::from_secs(10));
    assert!(
        created.contains("volume create evv") && created.contains("driver=local"),
        "{created}"
    );
    let mounted = d.wait_for_event(&since, &["type=volume", "event=mount"], Duration::from_secs(10));
    assert!(
        mounted.contains("destination=/d") && mounted.contains("read/write=true"),
        "{mounted}"
    );
    d.wait_for_event(&since, &["type=volume", "event=unmount"], Duration::from_secs(10));
    // dockerd's order at start: the network's connect, the volume's mount, the start.
    let until = berth_e2e::timestamp();
    let order = d
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Type}} {{.Action}}",
        ])
        .ok()
        .stdout;
    let at = |what: &str| {
        order
            .lines()
            .position(|l| l == what)
            .unwrap_or_else(|| panic!("no {what}: {order}"))
    };
    assert!(
        at("network connect") < at("volume mount") && at("volume mount") < at("container start"),
        "{order}"
    );
    d.berth(&["rm", "ev"]).ok();
    d.berth(&["volume", "rm", "evv"]).ok();
    let destroyed = d.wait_for_event(&since, &["type=volume", "event=destroy"], Duration::from_secs(10));
    assert!(destroyed.contains("volume destroy evv"), "{destroyed}");
}

#[test]
fn docker_py_volumes_api_and_mounts_in_create_and_inspect() {
    let d = daemon!();
    let h = host_dir(&d, "py");
    std::fs::write(h.join("seen"), "py bind\n").unwrap();
    let script = r#"
import docker, sys
from docker.types import Mount
c = docker.from_env()
host = sys.argv[1]
v = c.volumes.create(name="pyvol", labels={"wire": "1"})
assert v.name == "pyvol" and v.attrs["Driver"] == "local", v.attrs
assert v.attrs["Labels"] == {"wire": "1"}, v.attrs
assert v.attrs["Mountpoint"].endswith("/volumes/pyvol/_data"), v.attrs
again = c.volumes.create(name="pyvol", labels={"wire": "2"})
assert again.attrs["Labels"] == {"wire": "1"}, again.attrs
assert c.volumes.get("pyvol").attrs["CreatedAt"] == v.attrs["CreatedAt"]
assert [x.name for x in c.volumes.list(filters={"label": "wire=1"})] == ["pyvol"]
ct = c.containers.run("busybox", ["sh", "-c", "cat /b/seen > /data/copy; sleep 60"], detach=True, name="pyc",
                      volumes={"pyvol": {"bind": "/data", "mode": "rw"}, host: {"bind": "/b", "mode": "ro"}},
                      mounts=[Mount("/t", None, type="tmpfs", tmpfs_size=1048576)])
ct.reload()
ms = {m["Destination"]: m for m in ct.attrs["Mounts"]}
assert ms["/data"]["Type"] == "volume" and ms["/data"]["Name"] == "pyvol" and ms["/data"]["Mode"] == "rw" and ms["/data"]["RW"], ms
assert ms["/data"]["Driver"] == "local" and ms["/data"]["Propagation"] == "", ms
assert ms["/b"] == {"Type": "bind", "Source": host, "Destination": "/b", "Mode": "ro", "RW": False, "Propagation": "rprivate"}, ms["/b"]
assert ms["/t"]["Type"] == "tmpfs" and ms["/t"]["Source"] == "" and "Name" not in ms["/t"], ms["/t"]
assert ct.attrs["HostConfig"]["Binds"] == ["pyvol:/data:rw", host + ":/b:ro"], ct.attrs["HostConfig"]["Binds"]
assert len(ct.attrs["Mounts"]) == 3, ct.attrs["Mounts"]
assert [x.name for x in c.volumes.list(filters={"dangling": False})] == ["pyvol"]
try:
    c.volumes.get("pyvol").remove()
    raise SystemExit("removed a volume in use")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "volume is in use" in str(e), e
ct.remove(force=True, v=True)
assert c.volumes.get("pyvol").name == "pyvol"
r = c.api.prune_volumes(filters={"label": "wire=2"})
assert r == {"VolumesDeleted": [], "SpaceReclaimed": 0}, r
r = c.api.prune_volumes()
assert r["VolumesDeleted"] == ["pyvol"] and r["SpaceReclaimed"] == len(b"py bind\n"), r
try:
    c.volumes.get("pyvol")
    raise SystemExit("pruned volume still there")
except docker.errors.NotFound as e:
    assert "get pyvol: no such volume" in str(e), e
c.volumes.create(name="pyrm").remove(force=True)
# docker-py 7.1 drops `force` from the URL (its _url ignores params): a 404, as from dockerd.
try:
    c.api.remove_volume("pyrm", force=True)
    raise SystemExit("removed a missing volume")
except docker.errors.NotFound:
    pass
print("ok")
"#;
    let path = d.root.join("volumes_py.py");
    std::fs::write(&path, script).unwrap();
    let out = d.python(&format!(
        "import sys, runpy; sys.argv = ['x', {:?}]; runpy.run_path({:?})",
        h.display().to_string(),
        path.display().to_string()
    ));
    assert_eq!(out.code, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert_eq!(out.out(), "ok");
}

#[test]
fn docker_cli_volume_commands_and_run_v() {
    let d = daemon!();
    assert_eq!(
        d.docker(&["volume", "create", "--label", "x=y", "dv1"])
            .ok()
            .out(),
        "dv1"
    );
    d.docker(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "dv2",
    ])
    .ok();
    let ls = d.docker(&["volume", "ls"]).ok();
    assert_eq!(ls.stdout, "DRIVER    VOLUME NAME\nlocal     dv1\nlocal     dv2\n");
    assert_eq!(
        d.docker(&["volume", "ls", "-q", "--filter", "label=x=y"])
            .ok()
            .out(),
        "dv1"
    );
    let v: serde_json::Value =
        serde_json::from_str(&d.docker(&["volume", "inspect", "dv2"]).ok().stdout).unwrap();
    assert_eq!(v[0]["Options"]["o"], "size=1m");
    let h = host_dir(&d, "dk");
    let bind = format!("{}:/b", h.display());
    let r = d
        .docker(&[
            "run",
            "--rm",
            "-v",
            "dv1:/data",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "echo via docker > /data/f; cp /data/f /b/f",
        ])
        .ok();
    assert_eq!(r.code, 0);
    assert_eq!(std::fs::read_to_string(h.join("f")).unwrap(), "via docker\n");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "dk",
        "-v",
        "dv1:/data",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let m = d
        .docker(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.Mode}} {{.RW}}{{end}}",
            "dk",
        ])
        .ok();
    assert_eq!(m.out(), "volume dv1 /data z true");
    let r = d.docker(&["volume", "rm", "dv1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("remove dv1: volume is in use - ["), "{r:?}");
    d.docker(&["rm", "-f", "-v", "dk"]).ok();
    assert_eq!(
        d.docker(&["volume", "rm", "dv1", "dv2"]).ok().stdout,
        "dv1\ndv2\n"
    );
    let r = d.docker(&["volume", "inspect", "dv1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("get dv1: no such volume"), "{r:?}");
    let r = d.docker(&["run", "--rm", "-v", "bad/name:/x", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("includes invalid characters for a local volume name"),
        "{r:?}"
    );
    assert!(d.docker(&["volume", "ls", "-q"]).ok().out().is_empty());
}

#[test]
fn system_df_counts_volumes() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "dfc",
        "-v",
        "dfv:/d",
        "busybox",
        "sh",
        "-c",
        "head -c 1000 /dev/zero > /d/f",
    ])
    .ok();
    d.berth(&["volume", "create", "idle"]).ok();
    let per = "{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}};{{end}}";
    let v = d.berth(&["system", "df", "-v", "--format", per]).ok();
    assert_eq!(v.out(), "dfv 1 1kB;idle 0 0B;");
    assert_eq!(
        d.docker(&["system", "df", "-v", "--format", per]).ok().out(),
        v.out()
    );
}

#[test]
fn inspect_mounts_match_dockerd_for_volume_bind_and_tmpfs() {
    let d = daemon!();
    let h = host_dir(&d, "wire");
    let bind = format!("{}:/b:ro", h.display());
    d.docker(&[
        "run",
        "-d",
        "-v",
        "v1:/data",
        "-v",
        &bind,
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m",
        "--name",
        "vv",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let j: serde_json::Value = serde_json::from_str(&d.docker(&["inspect", "vv"]).ok().stdout).unwrap();
    let c = &j[0];
    let data = d.data_root().join("volumes/v1/_data").display().to_string();
    let mut mounts = c["Mounts"].as_array().unwrap().clone();
    mounts.sort_by_key(|m| m["Destination"].as_str().unwrap_or("").to_string());
    assert_eq!(
        serde_json::Value::Array(mounts),
        serde_json::json!([
            {"Type":"bind","Source":h.display().to_string(),"Destination":"/b","Mode":"ro","RW":false,"Propagation":"rprivate"},
            {"Type":"volume","Name":"v1","Source":data,"Destination":"/data","Driver":"local","Mode":"z","RW":true,"Propagation":""},
            {"Type":"tmpfs","Source":"","Destination":"/t","Mode":"","RW":true,"Propagation":""}
        ])
    );
    // The docker CLI gathers `-v` values in a Go map, so it sends Binds in a random order; dockerd
    // (and berth) keep the order they were sent in.
    let mut binds: Vec<String> = serde_json::from_value(c["HostConfig"]["Binds"].clone()).unwrap();
    binds.sort();
    let mut want = vec!["v1:/data".to_string(), bind.clone()];
    want.sort();
    assert_eq!(binds, want);
    assert_eq!(
        c["HostConfig"]["Mounts"],
        serde_json::json!([{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}}])
    );
    let ps: serde_json::Value = serde_json::from_str(
        &d.docker(&["ps", "--format", "{{json .Mounts}}", "-f", "name=vv"])
            .ok()
            .stdout,
    )
    .unwrap_or(serde_json::Value::Null);
    assert!(ps.as_str().is_some_and(|s| s.contains("v1")), "{ps}");
    // A file bound onto a directory fails the start, leaving no mount behind.
    let r = d.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/etc", d.root.join("berthd.log").display()),
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    d.berth(&["rm", "-f", "vv"]).ok();
    // The containers' network namespaces are unpinned by the background teardown.
    super::network::wait_netns(&d, 0);
    assert_eq!(d.mounts_left(), Vec::<String>::new());
}

#[test]
fn driver_option_volume_stays_mounted_across_a_daemon_restart_until_its_last_user_stops() {
    let mut d = daemon!();
    d.berth(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "tvr",
    ])
    .ok();
    d.berth(&[
        "run", "-d", "--name", "u1", "-v", "tvr:/t", "busybox", "sleep", "60",
    ])
    .ok();
    d.berth(&[
        "run", "-d", "--name", "u2", "-v", "tvr:/t", "busybox", "sleep", "60",
    ])
    .ok();
    d.berth(&["exec", "u1", "sh", "-c", "echo shared > /t/f"]).ok();
    assert_eq!(d.berth(&["exec", "u2", "cat", "/t/f"]).ok().stdout, "shared\n");
    let data = d.data_root().join("volumes/tvr/_data");
    let mounted = |p: &std::path::Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
    };
    assert!(mounted(&data));
    d.stop();
    d.spawn();
    d.berth(&["rm", "-f", "u1"]).ok();
    assert!(mounted(&data), "unmounted while u2 still uses it");
    assert_eq!(d.berth(&["exec", "u2", "cat", "/t/f"]).ok().stdout, "shared\n");
    d.berth(&["rm", "-f", "u2"]).ok();
    assert!(!mounted(&data), "still mounted with no user");
}
