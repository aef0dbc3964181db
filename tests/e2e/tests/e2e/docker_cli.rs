//! The real docker CLI (28.x) against berthd: same output shape and exit codes as against dockerd.

/// A daemon, once the docker CLI is found (a missing one fails the test: scripts/deps.sh
/// installs it).
macro_rules! docker_daemon {
    () => {{
        let d = daemon!();
        berth_e2e::docker_cli();
        d
    }};
}

#[test]
fn docker_run_rm_echo() {
    let d = docker_daemon!();
    let r = d.docker(&["run", "--rm", "busybox", "echo", "hi"]).ok();
    assert_eq!(r.stdout, "hi\n");
    assert!(d.docker(&["ps", "-aq"]).ok().out().is_empty());
    assert_eq!(
        d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]).code,
        3
    );
    let missing = d.docker(&["run", "--rm", "busybox", "/nonexistent-binary"]);
    assert_eq!(missing.code, 127, "{}", missing.stderr);
}

#[test]
fn docker_run_i_pipes_stdin() {
    let d = docker_daemon!();
    let r = d
        .docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"a\nb\n")
        .ok();
    assert_eq!(r.stdout, "a\nb\n");
}

#[test]
fn docker_detached_lifecycle() {
    let d = docker_daemon!();
    let id = d
        .docker(&[
            "run",
            "-d",
            "--name",
            "xx",
            "busybox",
            "sh",
            "-c",
            "echo started; echo warn >&2; sleep 100",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = d.docker(&["ps", "-a"]).ok();
    assert!(ps.stdout.lines().next().unwrap().starts_with("CONTAINER ID"));
    assert!(ps.stdout.contains("xx"), "{}", ps.stdout);
    // The CLI cuts the command to 20 characters and quotes it.
    let row = ps.stdout.lines().find(|l| l.ends_with(" xx")).unwrap();
    assert!(row.contains("   \"sh -c 'echo started…\"   "), "{row}");
    let pid = d.docker(&["inspect", "-f", "{{.State.Pid}}", "xx"]).ok();
    assert!(pid.out().parse::<i32>().unwrap() > 0);
    d.eventually("logs", || d.docker(&["logs", "xx"]).stdout.contains("started"));
    let logs = d.docker(&["logs", "xx"]).ok();
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("started\n", "warn\n")
    );
    assert_eq!(d.docker(&["stop", "-t", "1", "xx"]).ok().out(), "xx");
    assert_eq!(d.docker(&["rm", "xx"]).ok().out(), "xx");
    let gone = d.docker(&["inspect", "xx"]);
    assert_eq!(gone.code, 1);
}

#[test]
fn docker_images_import_rmi_version_info() {
    let d = docker_daemon!();
    let tar = berth_e2e::busybox_tar().to_vec();
    let id = d
        .docker_stdin(&["import", "-", "imp1:v1"], &tar)
        .ok()
        .out()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let images = d.docker(&["images"]).ok();
    assert!(
        images.stdout.contains("imp1") && images.stdout.contains("v1"),
        "{}",
        images.stdout
    );
    d.docker(&["create", "--name", "user", "imp1:v1", "true"]).ok();
    let refused = d.docker(&["rmi", "imp1:v1"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains(
            "Error response from daemon: conflict: unable to remove repository reference \"imp1:v1\""
        ),
        "{}",
        refused.stderr
    );
    d.docker(&["rm", "user"]).ok();
    let rmi = d.docker(&["rmi", "imp1:v1"]).ok();
    assert!(rmi.stdout.contains("Untagged: imp1:v1"), "{}", rmi.stdout);
    let v = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]).ok();
    assert_eq!(v.out(), "1.41");
    let info = d
        .docker(&["info", "--format", "{{.Driver}} {{.CgroupVersion}}"])
        .ok();
    assert!(info.out().starts_with("overlay2 "), "{}", info.out());
}

#[test]
fn docker_errors_match_dockerd() {
    let d = docker_daemon!();
    let unknown = d.docker(&["run", "--rm", "nonexist-img:v9", "true"]);
    assert_eq!(unknown.code, 125);
    assert!(
        unknown
            .stderr
            .contains("Unable to find image 'nonexist-img:v9' locally"),
        "{}",
        unknown.stderr
    );
    let dup1 = d.docker(&["create", "--name", "norm2", "busybox", "true"]).ok();
    let _ = dup1;
    let dup = d.docker(&["create", "--name", "norm2", "busybox", "true"]);
    assert_eq!(dup.code, 1);
    assert!(
        dup.stderr.contains("is already in use by container"),
        "{}",
        dup.stderr
    );
    let missing = d.docker(&["rm", "nosuch"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("No such container: nosuch"),
        "{}",
        missing.stderr
    );
    // dockerd 20.10's words, captured side by side: kill names the container as given, rename
    // says where the conflict came from.
    let err = |args: &[&str]| {
        let r = d.docker(args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        r.stderr.trim().to_string()
    };
    assert_eq!(
        err(&["kill", "nosuch"]),
        "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch"
    );
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "norm2"])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        err(&["kill", "norm2"]),
        format!("Error response from daemon: Cannot kill container: norm2: Container {id} is not running")
    );
    // A stop signal that names none is refused at create; `--tmpfs` paths in its own words.
    assert_eq!(
        err(&["create", "--stop-signal", "NOPE", "busybox", "true"]),
        "Error response from daemon: Invalid signal: NOPE"
    );
    assert_eq!(
        err(&["create", "--tmpfs", "relative", "busybox", "true"]),
        "Error response from daemon: invalid mount path: 'relative' mount path must be absolute"
    );
    // Exec into a paused container names it as given.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "pz",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    d.docker(&["pause", "pz"]).ok();
    assert_eq!(
        err(&["exec", "pz", "true"]),
        "Error response from daemon: Container pz is paused, unpause the container before exec"
    );
    d.docker(&["rm", "-f", "pz"]).ok();
    d.docker(&["create", "--name", "norm3", "busybox", "true"]).ok();
    assert_eq!(
        err(&["rename", "norm3", "norm2"]),
        format!(
            "Error response from daemon: Error when allocating new name: Conflict. The container name \"/norm2\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.\nError: failed to rename container named norm3"
        )
    );
}

#[test]
fn a_missing_working_directory_is_made_and_a_file_in_the_way_is_an_error() {
    let d = daemon!();
    // As dockerd: `-w` names a directory the image may lack; it is made (root's, 0755, in the
    // container's layer), on both create paths (`--ipc host` goes through libcontainer).
    for extra in [&[][..], &["--ipc", "host"][..]] {
        let run = |more: &[&str]| {
            let mut args = vec!["run", "--rm", "--network", "none"];
            args.extend_from_slice(extra);
            args.extend_from_slice(more);
            d.docker(&args)
        };
        let made = run(&[
            "-w",
            "/new/dir",
            "-u",
            "1000",
            "busybox",
            "sh",
            "-c",
            "pwd; stat -c %a%U /new/dir",
        ]);
        assert_eq!(made.ok().out(), "/new/dir\n755root", "{extra:?}");
        // dockerd's own checks, reported bare (no runtime wrapper).
        for (more, msg) in [
            (
                &["-w", "/etc/passwd", "busybox", "true"][..],
                "Cannot mkdir: /etc/passwd is not a directory",
            ),
            (
                &["-u", "nosuchuser", "busybox", "true"][..],
                "unable to find user nosuchuser: no matching entries in passwd file\n",
            ),
        ] {
            let r = run(more);
            assert_eq!(r.code, 125, "{extra:?}: {r:?}");
            assert!(
                r.stderr
                    .starts_with(&format!("docker: Error response from daemon: {msg}")),
                "{r:?}"
            );
        }
    }
    d.docker(&[
        "run",
        "--name",
        "wd",
        "--network",
        "none",
        "-w",
        "/made/here",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(d.docker(&["diff", "wd"]).ok().out(), "A /made\nA /made/here");
}
