#[test]
fn ps_filters_and_columns() {
    let d = daemon!();
    d.berth(&["run", "--name", "ok0", "-l", "tier=web", "busybox", "true"])
        .ok();
    d.berth(&["run", "--name", "bad3", "busybox", "sh", "-c", "exit 3"]);
    let run = d
        .berth(&["run", "-d", "--name", "up1", "busybox", "sleep", "60"])
        .ok()
        .out()
        .to_string();
    let ps = d.berth(&["ps"]).ok();
    let header = ps.stdout.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(ps.stdout.lines().count(), 2, "{}", ps.stdout);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out().lines().count(), 3);
    assert_eq!(d.berth(&["ps", "-q", "--no-trunc"]).ok().out(), run);
    let exited = d
        .berth(&["ps", "-a", "--format", "{{.Names}}", "-f", "status=exited"])
        .ok();
    let mut names: Vec<&str> = exited.out().lines().collect();
    names.sort();
    assert_eq!(names, vec!["bad3", "ok0"]);
    assert_eq!(
        d.berth(&["ps", "-a", "--format", "{{.Names}}", "-f", "label=tier=web"])
            .ok()
            .out(),
        "ok0"
    );
    assert_eq!(
        d.berth(&["ps", "-a", "--format", "{{.Names}}", "-f", "name=bad"])
            .ok()
            .out(),
        "bad3"
    );
    assert_eq!(
        d.berth(&["ps", "-a", "--format", "{{.Names}}", "-n", "1"])
            .ok()
            .out(),
        "up1"
    );
    assert_eq!(
        d.berth(&["ps", "-a", "--format", "{{.Names}}", "-l"]).ok().out(),
        "up1"
    );
    assert_eq!(
        d.berth(&["ps", "-a", "-q", "-f", "ancestor=busybox"])
            .ok()
            .out()
            .lines()
            .count(),
        3
    );
    assert_eq!(
        d.berth(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "-f",
            &format!("id={}", &run[..8])
        ])
        .ok()
        .out(),
        "up1"
    );
    let sized = d.berth(&["ps", "-s"]).ok();
    assert!(sized.stdout.lines().next().unwrap().contains("SIZE"));
    assert!(sized.stdout.contains("virtual"), "{}", sized.stdout);
    // `before`/`since` by name or ID (the reference itself left out), newest first.
    let names = |filter: &str| {
        d.berth(&["ps", "-a", "--format", "{{.Names}}", "-f", filter])
            .ok()
            .out()
            .to_string()
    };
    assert_eq!(names("before=up1"), "bad3\nok0");
    assert_eq!(names(&format!("since={}", &run[..12])), "");
    assert_eq!(names("since=ok0"), "up1\nbad3");
    let missing = d.berth(&["ps", "-f", "before=nosuch"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no such container nosuch"),
        "{}",
        missing.stderr
    );
    // network, expose, publish, health, is-task.
    d.berth(&[
        "run",
        "-d",
        "--name",
        "nn",
        "--network",
        "none",
        "--expose",
        "80",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(names("network=none"), "nn");
    assert_eq!(names("expose=80"), "nn");
    assert_eq!(names("expose=79-81/tcp"), "nn");
    assert_eq!(names("expose=80/udp"), "");
    assert_eq!(names("publish=80"), "");
    let healthless = d
        .berth(&["ps", "--format", "{{.Names}}", "-f", "health=none"])
        .ok();
    assert_eq!(healthless.out(), "nn\nup1");
    assert_eq!(names("health=healthy"), "");
    assert_eq!(names("is-task=true"), "");
    let bad = d.berth(&["ps", "-f", "expose=80:80"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("filter for 'expose' should not contain ':'"),
        "{}",
        bad.stderr
    );
    // `ancestor` covers the images built on the image (a commit's parent is its container's).
    d.berth(&["commit", "nn", "kid:1"]).ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "kid",
        "--network",
        "none",
        "kid:1",
        "sleep",
        "60",
    ])
    .ok();
    let running = |filter: &str| {
        d.berth(&["ps", "--format", "{{.Names}}", "-f", filter])
            .ok()
            .out()
            .to_string()
    };
    assert_eq!(running("ancestor=busybox"), "kid\nnn\nup1");
    assert_eq!(running("ancestor=kid:1"), "kid");
    for (filter, msg) in [
        ("exited=abc", "strconv.Atoi: parsing \"abc\": invalid syntax"),
        ("health=bogus", "Unrecognised filter value for health: bogus"),
    ] {
        let r = d.berth(&["ps", "-f", filter]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains(msg), "{filter}: {}", r.stderr);
    }
    // Unknown keys, in dockerd's words.
    for cmd in [&["ps", "-f", "nosuch=1"][..], &["images", "-f", "nosuch=1"][..]] {
        let r = d.berth(cmd);
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains("Invalid filter 'nosuch'"),
            "{cmd:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn inspect_templates_and_nsenter() {
    let d = daemon!();
    d.berth(&[
        "run", "-d", "--name", "ns", "-h", "inside", "busybox", "sleep", "60",
    ])
    .ok();
    let pid = d
        .berth(&["inspect", "-f", "{{ .State.Pid }}", "ns"])
        .ok()
        .out()
        .to_string();
    let pid: i32 = pid.parse().expect("numeric pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let out = std::process::Command::new("nsenter")
        .args([
            "--target",
            &pid.to_string(),
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "inside", "{:?}", out);
    let cfg = d.berth(&["inspect", "-f", "{{json .Config.Cmd}}", "ns"]).ok();
    assert_eq!(cfg.out(), "[\"sleep\",\"60\"]");
    let json: serde_json::Value = serde_json::from_str(&d.berth(&["inspect", "ns"]).ok().stdout).unwrap();
    let c = &json[0];
    for key in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "Name",
        "RestartCount",
        "Driver",
        "Platform",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "Config",
        "NetworkSettings",
    ] {
        assert!(c.get(key).is_some(), "inspect lacks {key}");
    }
    assert_eq!(c["Name"], "/ns");
    assert_eq!(c["State"]["Running"], true);
    let missing = d.berth(&["inspect", "nothing-here"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("No such object: nothing-here"),
        "{}",
        missing.stderr
    );
}

#[test]
fn kill_stop_rm_and_wait() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "k1", "busybox", "sleep", "60"])
        .ok();
    d.berth(&["kill", "-s", "KILL", "k1"]).ok();
    assert_eq!(d.berth(&["wait", "k1"]).ok().out(), "137");
    let again = d.berth(&["kill", "k1"]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("is not running"), "{}", again.stderr);
    // Stopping a stopped container is not an error (304), as in docker.
    d.berth(&["stop", "k1"]).ok();
    // sh as PID 1 ignores TERM: stop falls back to KILL after the timeout.
    d.berth(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; sleep 60",
    ])
    .ok();
    let t = std::time::Instant::now();
    d.berth(&["stop", "-t", "1", "stubborn"]).ok();
    assert!(t.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "stubborn"])
            .ok()
            .out(),
        "137"
    );
    // rm of a running container needs -f.
    d.berth(&["run", "-d", "--name", "busy", "busybox", "sleep", "60"])
        .ok();
    let refused = d.berth(&["rm", "busy"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("You cannot remove a running container"),
        "{}",
        refused.stderr
    );
    d.berth(&["rm", "-f", "busy"]).ok();
    let gone = d.berth(&["rm", "busy"]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("No such container: busy"), "{}", gone.stderr);
}

#[test]
fn rename_and_ambiguous_ids() {
    let d = daemon!();
    d.berth(&["create", "--name", "old", "busybox", "true"]).ok();
    d.berth(&["create", "--name", "taken", "busybox", "true"]).ok();
    d.berth(&["rename", "old", "new"]).ok();
    assert_eq!(d.berth(&["inspect", "-f", "{{.Name}}", "new"]).ok().out(), "/new");
    let clash = d.berth(&["rename", "new", "taken"]);
    assert_ne!(clash.code, 0);
    assert!(clash.stderr.contains("is already in use"), "{}", clash.stderr);
    assert_eq!(d.berth(&["inspect", "-f", "{{.Name}}", "new"]).ok().out(), "/new");
    // An empty-prefix-ish lookup of a single hex char is ambiguous once enough containers exist.
    let ids = d.berth(&["ps", "-aq", "--no-trunc"]).ok().stdout;
    let first: Vec<char> = ids.lines().filter_map(|l| l.chars().next()).collect();
    if first.len() == 2 && first[0] == first[1] {
        let amb = d.berth(&["inspect", &first[0].to_string()]);
        assert_ne!(amb.code, 0);
    }
}

#[test]
fn start_attach_reruns_with_the_same_layer() {
    let d = daemon!();
    d.berth(&[
        "create",
        "--name",
        "again",
        "busybox",
        "sh",
        "-c",
        "echo run >> /count; wc -l < /count",
    ])
    .ok();
    assert_eq!(d.berth(&["start", "-a", "again"]).ok().out(), "1");
    assert_eq!(d.berth(&["start", "-a", "again"]).ok().out(), "2");
}
