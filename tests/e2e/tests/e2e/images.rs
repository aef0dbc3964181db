use std::process::Command;

fn compress(tool: &[&str], input: &std::path::Path) -> Vec<u8> {
    let out = Command::new(tool[0])
        .args(&tool[1..])
        .arg("-c")
        .arg(input)
        .output()
        .expect(tool[0]);
    assert!(out.status.success(), "{} failed", tool[0]);
    out.stdout
}

#[test]
fn import_prints_the_id_and_lists_the_image() {
    let d = daemon!();
    let tar = berth_e2e::busybox_tar().to_vec();
    let out = d.berth_stdin(&["import", "-", "imp1:v1"], &tar).ok();
    let id = out.out().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let images = d.berth(&["images"]).ok();
    let header = images.stdout.lines().next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = images
        .stdout
        .lines()
        .find(|l| l.starts_with("imp1"))
        .expect("imp1 listed");
    assert!(row.contains("v1") && row.contains(&id[7..19]), "{row}");
    // Importing the same content again gives the same layer, stored once.
    let again = d.berth_stdin(&["import", "-", "imp1:v2"], &tar).ok();
    let snapshots = std::fs::read_dir(d.root.join("data/snapshots")).unwrap().count();
    assert!(again.out().starts_with("sha256:"));
    assert_eq!(d.berth(&["images", "-q", "imp1"]).ok().out().lines().count(), 2);
    let snapshots_after = std::fs::read_dir(d.root.join("data/snapshots")).unwrap().count();
    assert_eq!(snapshots, snapshots_after, "shared layer stored twice");
}

#[test]
fn import_sniffs_compression_and_reads_files() {
    let d = daemon!();
    let tar = d.root.join("busybox.tar");
    std::fs::write(&tar, berth_e2e::busybox_tar()).unwrap();
    for (tool, tag) in [
        (&["gzip"][..], "gz"),
        (&["xz", "-T1"][..], "xz"),
        (&["bzip2"][..], "bz2"),
        (&["zstd", "-q"][..], "zst"),
    ] {
        if Command::new(tool[0]).arg("--version").output().is_err() {
            panic!("{} not installed (the CI script installs it)", tool[0]);
        }
        let data = compress(tool, &tar);
        d.berth_stdin(&["import", "-", &format!("comp:{tag}")], &data)
            .ok();
        assert_eq!(
            d.berth(&["run", "--rm", &format!("comp:{tag}"), "echo", tag])
                .ok()
                .out(),
            tag
        );
    }
    d.berth(&["import", tar.to_str().unwrap(), "fromfile"]).ok();
    assert_eq!(d.berth(&["images", "-q", "fromfile:latest"]).ok().out().len(), 12);
}

#[test]
fn import_changes_and_message_shape_the_config() {
    let d = daemon!();
    let tar = berth_e2e::busybox_tar().to_vec();
    d.berth_stdin(
        &[
            "import",
            "-c",
            "ENV GREETING=hello",
            "-c",
            "CMD [\"sh\", \"-c\", \"echo $GREETING from $(pwd)\"]",
            "-c",
            "WORKDIR /tmp",
            "-c",
            "LABEL team=core",
            "-c",
            "EXPOSE 8080",
            "-m",
            "my message",
            "-",
            "changed",
        ],
        &tar,
    )
    .ok();
    assert_eq!(d.berth(&["run", "--rm", "changed"]).ok().out(), "hello from /tmp");
    let cfg = d
        .berth(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Labels}} {{.Comment}}",
            "changed",
        ])
        .ok();
    assert_eq!(cfg.out(), "{\"team\":\"core\"} my message");
    let bad = d.berth_stdin(&["import", "-c", "FROB x", "-", "bad"], &tar);
    assert_ne!(bad.code, 0);
    assert!(d.berth(&["images", "-q", "bad"]).ok().out().is_empty());
}

#[test]
fn tag_rmi_and_short_ids() {
    let d = daemon!();
    let id = d
        .berth(&["images", "-q", "--no-trunc", "busybox"])
        .ok()
        .out()
        .to_string();
    d.berth(&["tag", "busybox", "mine/app:1"]).ok();
    assert!(d.berth(&["images"]).ok().stdout.contains("mine/app"));
    // Two tags: removing one only untags.
    let rm = d.berth(&["rmi", "mine/app:1"]).ok();
    assert!(rm.out().contains("Untagged: mine/app:1"), "{}", rm.out());
    assert!(!rm.out().contains("Deleted"), "{}", rm.out());
    // In use by a container: refused with docker's message.
    d.berth(&["create", "--name", "user1", "busybox", "true"]).ok();
    let refused = d.berth(&["rmi", "busybox"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("conflict: unable to remove repository reference \"busybox\" (must force) - container"),
        "{}",
        refused.stderr
    );
    d.berth(&["rm", "user1"]).ok();
    // By unique short-ID prefix.
    let short = &id[7..17];
    let del = d.berth(&["rmi", short]).ok();
    assert!(del.out().contains(&format!("Deleted: {id}")), "{}", del.out());
    assert!(d.berth(&["images", "-q"]).ok().out().is_empty());
    let missing = d.berth(&["rmi", "nonexist:tag"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("No such image: nonexist:tag"),
        "{}",
        missing.stderr
    );
}

#[test]
fn invalid_references_are_refused() {
    let d = daemon!();
    let r = d.berth(&["tag", "busybox", "UPPER:x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid reference format"), "{}", r.stderr);
    let r = d.berth(&["run", "--rm", "a:b:c"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("invalid reference format"), "{}", r.stderr);
}

#[test]
fn image_filters_and_inspect() {
    let d = daemon!();
    let id = d
        .berth(&["images", "-q", "--no-trunc", "busybox"])
        .ok()
        .out()
        .to_string();
    let inspect = d
        .berth(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{.Os}} {{.RootFS.Type}} {{len .RootFS.Layers}}",
            "busybox",
        ])
        .ok();
    assert_eq!(inspect.out(), format!("{id} linux layers 1"));
    d.berth(&["tag", "busybox", "other:v1"]).ok();
    let filtered = d
        .berth(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "-f",
            "reference=other*",
        ])
        .ok();
    assert_eq!(filtered.out(), "other:v1");
    assert!(d
        .berth(&["images", "-q", "-f", "dangling=true"])
        .ok()
        .out()
        .is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&d.berth(&["image", "inspect", "busybox"]).ok().stdout).unwrap();
    assert_eq!(json[0]["Id"], id);
}

#[test]
fn hello_world_is_built_in_and_works_offline() {
    if !berth_e2e::require_root("hello_world") {
        return;
    }
    let d = berth_e2e::Daemon::start_bare();
    let out = d.berth(&["run", "--rm", "hello-world"]).ok();
    assert!(out.stdout.contains("Hello from berth!"), "{}", out.stdout);
    // Built in: installed at the first create, nothing to find or pull.
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(d.berth(&["images"]).ok().stdout.contains("hello-world"));
    assert!(
        d.berth(&["ps", "-aq"]).ok().out().is_empty(),
        "--rm left a container"
    );
    let again = d.berth(&["run", "--rm", "hello-world"]).ok();
    assert!(!again.stderr.contains("Unable to find image"));
}

#[test]
fn unknown_image_is_a_clear_125() {
    let d = daemon!();
    let r = d.berth(&["run", "--rm", "nonexist-img:v9", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("Unable to find image 'nonexist-img:v9' locally"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.lines().count() >= 2, "{}", r.stderr);
    assert!(d.berth(&["ps", "-aq"]).ok().out().is_empty());
}
