//! A container's filesystem: diff, cp, export, commit, and image save/load.

use std::process::Command;

#[test]
fn diff_lists_added_changed_deleted() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "df",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/new; echo x >> /etc/passwd; rm /bin/vi",
    ])
    .ok();
    let diff = d.berth(&["diff", "df"]).ok();
    let lines: Vec<&str> = diff.out().lines().collect();
    for want in [
        "C /tmp",
        "A /tmp/new",
        "C /etc",
        "C /etc/passwd",
        "C /bin",
        "D /bin/vi",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in {lines:?}");
    }
}

#[test]
fn cp_both_ways_and_through_stdin_stdout() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "cpc", "busybox", "sleep", "60"])
        .ok();
    let host = d.root.join("cpwork");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("file.txt"), "from host\n").unwrap();
    std::fs::write(host.join("dir/sub/deep.txt"), "deep\n").unwrap();
    d.berth(&["cp", host.join("file.txt").to_str().unwrap(), "cpc:/tmp/"])
        .ok();
    d.berth(&["cp", host.join("dir").to_str().unwrap(), "cpc:/tmp/dir"])
        .ok();
    assert_eq!(
        d.berth(&["exec", "cpc", "cat", "/tmp/file.txt", "/tmp/dir/sub/deep.txt"])
            .ok()
            .stdout,
        "from host\ndeep\n"
    );
    d.berth(&["exec", "cpc", "sh", "-c", "echo made inside > /tmp/inside.txt"])
        .ok();
    let out = host.join("out.txt");
    d.berth(&["cp", "cpc:/tmp/inside.txt", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "made inside\n");
    // `-` streams a tar on stdout.
    let tar = d
        .berth_command()
        .args(["cp", "cpc:/tmp/dir", "-"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let list = berth_e2e::tar_names(&tar.stdout);
    assert!(list.contains("dir/sub/deep.txt"), "{list}");
    // A stopped container works too.
    d.berth(&["stop", "-t", "1", "cpc"]).ok();
    let out2 = host.join("out2.txt");
    d.berth(&["cp", "cpc:/tmp/file.txt", out2.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), "from host\n");
    let missing = d.berth(&["cp", "cpc:/nope", out2.to_str().unwrap()]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("Could not find the file /nope"),
        "{}",
        missing.stderr
    );
    // A stream on stdin that is not a whole tar: dockerd's words from its untar process.
    let torn = d.berth_stdin(&["cp", "-", "cpc:/tmp"], b"hi\n");
    assert_ne!(torn.code, 0);
    assert!(
        torn.stderr
            .contains("Error processing tar file(exit status 1): unexpected EOF"),
        "{}",
        torn.stderr
    );
}

#[test]
fn cp_cannot_escape_through_container_symlinks() {
    let d = daemon!();
    let marker = format!("berth-cp-escape-{}", std::process::id());
    d.berth(&[
        "run",
        "--name",
        "esc",
        "busybox",
        "sh",
        "-c",
        "ln -s /tmp /escape; ln -s ../../../../../tmp /rel",
    ])
    .ok();
    let src = d.root.join(&marker);
    std::fs::write(&src, "x").unwrap();
    let _ = d.berth(&["cp", src.to_str().unwrap(), "esc:/escape/"]);
    let _ = d.berth(&["cp", src.to_str().unwrap(), "esc:/rel/"]);
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "cp wrote through a container symlink onto the host"
    );
    // Reading through a symlink stays inside the container too.
    d.berth(&[
        "run",
        "--name",
        "esc2",
        "busybox",
        "ln",
        "-s",
        "/etc/shadow-not-there",
        "/link",
    ])
    .ok();
    let out = d.root.join("read.txt");
    let r = d.berth(&["cp", "esc2:/link", out.to_str().unwrap()]);
    if r.code == 0 {
        let meta = std::fs::symlink_metadata(&out).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "the symlink was followed on the host"
        );
    }
}

#[test]
fn export_is_the_flattened_rootfs() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "ex1",
        "busybox",
        "sh",
        "-c",
        "echo exported > /marker; rm /bin/vi",
    ])
    .ok();
    let tar = d.root.join("export.tar");
    d.berth(&["export", "-o", tar.to_str().unwrap(), "ex1"]).ok();
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "marker"),
        "{names}"
    );
    assert!(names.lines().any(|l| l.trim_start_matches("./") == "bin/busybox"));
    assert!(
        !names.lines().any(|l| l.trim_start_matches("./") == "bin/vi"),
        "a deleted file was exported"
    );
    // And it imports back as a working image.
    d.berth(&["import", tar.to_str().unwrap(), "reimported"]).ok();
    assert_eq!(
        d.berth(&["run", "--rm", "reimported", "cat", "/marker"])
            .ok()
            .out(),
        "exported"
    );
}

#[test]
fn commit_makes_an_image_of_the_changes() {
    let d = daemon!();
    d.berth(&[
        "run",
        "--name",
        "cm",
        "busybox",
        "sh",
        "-c",
        "echo committed > /data; rm /bin/vi",
    ])
    .ok();
    let id = d
        .berth(&[
            "commit",
            "-m",
            "my change",
            "-a",
            "Ada <ada@example.com>",
            "-c",
            "CMD [\"cat\", \"/data\"]",
            "cm",
            "snap:v1",
        ])
        .ok()
        .out()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.berth(&["run", "--rm", "snap:v1"]).ok().out(), "committed");
    assert_ne!(
        d.berth(&["run", "--rm", "snap:v1", "ls", "/bin/vi"]).code,
        0,
        "deletion lost"
    );
    let meta = d
        .berth(&[
            "image",
            "inspect",
            "-f",
            "{{.Comment}}|{{.Author}}|{{len .RootFS.Layers}}",
            "snap:v1",
        ])
        .ok();
    assert_eq!(meta.out(), "my change|Ada <ada@example.com>|2");
    // ContainerConfig is the container's own config, before the changes (dockerd's).
    let host = d
        .berth(&["inspect", "-f", "{{.Config.Hostname}}", "cm"])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        d.berth(&[
            "image",
            "inspect",
            "-f",
            "{{.ContainerConfig.Hostname}} {{json .ContainerConfig.Cmd}} {{json .Config.Cmd}}",
            "snap:v1"
        ])
        .ok()
        .out(),
        format!("{host} [\"sh\",\"-c\",\"echo committed > /data; rm /bin/vi\"] [\"cat\",\"/data\"]")
    );
    // --change takes dockerd's commands: HEALTHCHECK (run by the committed image), not
    // STOPSIGNAL; import's --change alike.
    d.docker(&[
        "commit",
        "-c",
        "HEALTHCHECK --interval=2s --retries=2 CMD test -e /data",
        "cm",
        "snap:hc",
    ])
    .ok();
    assert_eq!(
        d.docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Healthcheck}}",
            "snap:hc"
        ])
        .ok()
        .out(),
        r#"{"Test":["CMD-SHELL","test -e /data"],"Interval":2000000000,"Retries":2}"#
    );
    let r = d.docker(&["commit", "-c", "STOPSIGNAL SIGKILL", "cm", "snap:ss"]);
    assert!(
        r.code == 1 && r.stderr.contains("stopsignal is not a valid change command"),
        "{r:?}"
    );
    let tar = d.root.join("cm.tar");
    d.berth(&["export", "-o", tar.to_str().unwrap(), "cm"]).ok();
    d.docker(&[
        "import",
        "-c",
        "HEALTHCHECK NONE",
        tar.to_str().unwrap(),
        "imp:hc",
    ])
    .ok();
    assert_eq!(
        d.docker(&["image", "inspect", "-f", "{{json .Config.Healthcheck}}", "imp:hc"])
            .ok()
            .out(),
        r#"{"Test":["NONE"]}"#
    );
    // A change refused before the archive is read: the client still gets the error, not a
    // broken pipe (the daemon takes the rest of the upload first).
    assert!(std::fs::metadata(&tar).unwrap().len() > 1 << 20);
    for _ in 0..3 {
        let r = d.docker(&["import", "-c", "RUN true", tar.to_str().unwrap(), "imp:bad"]);
        assert!(
            r.code == 1 && r.stderr.contains("run is not a valid change command"),
            "{r:?}"
        );
    }
    d.berth(&["rmi", "snap:hc", "imp:hc"]).ok();
    d.berth(&["rm", "cm"]).ok();
    let gone = d.berth(&["commit", "cm", "snap:v2"]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("No such container"), "{}", gone.stderr);
}

#[test]
fn save_and_load_round_trip() {
    let d = daemon!();
    let id = d
        .berth(&["images", "-q", "--no-trunc", "busybox"])
        .ok()
        .out()
        .to_string();
    let tar = d.root.join("saved.tar");
    d.berth(&["save", "-o", tar.to_str().unwrap(), "busybox"]).ok();
    d.berth(&["rmi", "busybox"]).ok();
    let load = d.berth(&["load", "-i", tar.to_str().unwrap()]).ok();
    assert!(
        load.out().contains("Loaded image: busybox:latest"),
        "{}",
        load.out()
    );
    assert_eq!(d.berth(&["images", "-q", "--no-trunc", "busybox"]).ok().out(), id);
}

#[test]
fn docker_cli_cp_and_commit() {
    let d = daemon!();
    d.docker(&["run", "-d", "--name", "dcp", "busybox", "sleep", "60"])
        .ok();
    let f = d.root.join("in.txt");
    std::fs::write(&f, "via docker\n").unwrap();
    d.docker(&["cp", f.to_str().unwrap(), "dcp:/in.txt"]).ok();
    assert_eq!(
        d.docker(&["exec", "dcp", "cat", "/in.txt"]).ok().out(),
        "via docker"
    );
    let back = d.root.join("back.txt");
    d.docker(&["cp", "dcp:/in.txt", back.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "via docker\n");
    let id = d
        .docker(&["commit", "-m", "msg", "dcp", "dsnap"])
        .ok()
        .out()
        .to_string();
    assert!(id.starts_with("sha256:"));
    assert_eq!(
        d.docker(&["run", "--rm", "dsnap", "cat", "/in.txt"]).ok().out(),
        "via docker"
    );
    let diff = d.docker(&["diff", "dcp"]).ok();
    assert!(diff.out().lines().any(|l| l == "A /in.txt"), "{}", diff.out());
}

#[test]
fn cp_archive_mode_keeps_ownership() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "own", "busybox", "sleep", "60"])
        .ok();
    let f = d.root.join("owned.txt");
    std::fs::write(&f, "x").unwrap();
    rustix::fs::chown(
        &f,
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
    )
    .unwrap();
    d.berth(&["cp", f.to_str().unwrap(), "own:/plain.txt"]).ok();
    d.berth(&["cp", "-a", f.to_str().unwrap(), "own:/kept.txt"]).ok();
    assert_eq!(
        d.berth(&["exec", "own", "stat", "-c", "%u:%g", "/plain.txt"])
            .ok()
            .out(),
        "0:0"
    );
    assert_eq!(
        d.berth(&["exec", "own", "stat", "-c", "%u:%g", "/kept.txt"])
            .ok()
            .out(),
        "1234:5678"
    );
}

/// `cp` out of a container: docker's destination rules (new name, into a directory, a
/// directory's contents, `-L`), extracted confined to the destination.
#[test]
fn cp_out_of_a_container_follows_docker_destination_rules() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b && ln /data/a /data/sub/a2 && ln -s /data/a /link && exec sleep 600",
    ])
    .ok();
    d.eventually("the files exist", || {
        d.berth(&["exec", "src", "test", "-L", "/link"]).code == 0
    });
    let host = d.root.join("cpout");
    std::fs::create_dir_all(host.join("existing")).unwrap();
    let p = |rel: &str| host.join(rel).to_str().unwrap().to_string();
    let read = |rel: &str| std::fs::read_to_string(host.join(rel)).unwrap();
    // A directory to a new name, hard links kept.
    d.berth(&["cp", "src:/data", &p("copy")]).ok();
    assert_eq!(read("copy/a"), "a\n");
    assert_eq!(read("copy/sub/b"), "b\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(host.join("copy/a")).unwrap().ino(),
        std::fs::metadata(host.join("copy/sub/a2")).unwrap().ino()
    );
    // Into an existing directory, and a directory's contents.
    d.berth(&["cp", "src:/data", &p("existing")]).ok();
    assert_eq!(read("existing/data/sub/b"), "b\n");
    d.berth(&["cp", "src:/data/.", &p("existing")]).ok();
    assert_eq!(read("existing/a"), "a\n");
    // A symlink is copied as one; -L copies its target under the link's name.
    d.berth(&["cp", "src:/link", &p("existing")]).ok();
    assert!(std::fs::symlink_metadata(host.join("existing/link"))
        .unwrap()
        .file_type()
        .is_symlink());
    d.berth(&["cp", "-L", "src:/link", &p("followed")]).ok();
    assert_eq!(read("followed"), "a\n");
    // A directory onto a file is refused, as docker does; the file is kept.
    std::fs::write(host.join("file"), "keep").unwrap();
    let r = d.berth(&["cp", "src:/data", &p("file")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot copy directory"), "{}", r.stderr);
    assert_eq!(read("file"), "keep");
    // Nothing landed beside the destinations.
    let mut names: Vec<String> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["copy", "existing", "file", "followed"]);
}

/// An error answered before an upload was read reaches the docker CLI, which is still sending
/// it: the daemon closes such a connection as dockerd does (shuts its side, takes the rest)
/// instead of dropping it under the client, whose write then failed with a broken pipe.
#[test]
fn errors_answered_before_an_upload_is_read_reach_the_client() {
    let d = daemon!();
    let dir = d.root.join("upload");
    std::fs::create_dir_all(&dir).unwrap();
    // 3 MB that compress to nothing less: more than any socket buffer holds.
    let junk: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("junk"), &junk).unwrap();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "up",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    for _ in 0..3 {
        let r = d.docker(&["cp", dir.to_str().unwrap(), "up:/nonexist/deeper/x"]);
        assert!(
            r.code == 1
                && r.stderr
                    .contains("Could not find the file /nonexist/deeper in container up"),
            "{r:?}"
        );
        let r = d.docker(&["load", "-i", dir.join("junk").to_str().unwrap()]);
        assert!(r.code == 1 && !r.stderr.contains("broken pipe"), "{r:?}");
    }
    d.berth(&["rm", "-f", "up"]).ok();
}
