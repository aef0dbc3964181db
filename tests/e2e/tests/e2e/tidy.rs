//! Keeping the store tidy: `history`, dangling images, image/container/system prune and
//! `system df`, through berth, the real docker CLI and docker-py.

use std::time::Duration;

use berth_e2e::Daemon;

/// A root filesystem tar with one file, so an import makes a layer no other image has.
fn one_file_tar(name: &str, content: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("berth-e2e-tidy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), content).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&dir)
        .args(["-c", name])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    out.stdout
}

fn import(d: &Daemon, tag: &str, tar: &[u8], changes: &[&str]) -> String {
    let mut args = vec!["import"];
    for c in changes {
        args.extend(["-c", c]);
    }
    args.extend(["-", tag]);
    d.berth_stdin(&args, tar).ok().out().to_string()
}

fn id_of(d: &Daemon, name: &str) -> String {
    d.berth(&["image", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .out()
        .to_string()
}

fn exists(d: &Daemon, name: &str) -> bool {
    d.berth(&["image", "inspect", name]).code == 0
}

/// The image's (only) layer's chain ID, which is its diff ID.
fn layer_of(d: &Daemon, name: &str) -> String {
    d.berth(&["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", name])
        .ok()
        .out()
        .to_string()
}

fn cid(d: &Daemon, name: &str) -> String {
    d.berth(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .out()
        .to_string()
}

/// Two commits on busybox: one that adds a file, one that only changes CMD (an empty layer).
fn commit_chain(d: &Daemon) -> (String, String, String) {
    d.berth(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo hello > /hello",
    ])
    .ok();
    d.berth(&["commit", "-m", "note", "c1", "snap:1"]).ok();
    d.berth(&["run", "--name", "c2", "snap:1", "true"]).ok();
    d.berth(&["commit", "-c", "CMD [\"sh\"]", "c2", "snap:2"]).ok();
    (id_of(d, "busybox"), id_of(d, "snap:1"), id_of(d, "snap:2"))
}

#[test]
fn history_shows_each_record_its_layer_size_and_the_commit_lineage() {
    let d = daemon!();
    let (bb, s1, s2) = commit_chain(&d);
    let bb_size = d
        .berth(&["image", "inspect", "-f", "{{.Size}}", "busybox"])
        .ok()
        .out()
        .to_string();
    let rows = d
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
            "-H=false",
            "snap:2",
        ])
        .ok();
    assert_eq!(
        rows.stdout,
        format!("{s2}|true|0|\n{s1}|sh -c echo hello > /hello|6|note\n{bb}||{bb_size}|Imported from -\n")
    );
    let quiet = d.berth(&["image", "history", "-q", "snap:2"]).ok();
    let short = |id: &str| id[7..19].to_string();
    assert_eq!(
        quiet.stdout,
        format!("{}\n{}\n{}\n", short(&s2), short(&s1), short(&bb))
    );
    let table = d.berth(&["history", "snap:1"]).ok();
    let mut lines = table.stdout.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    );
    let top = lines.next().unwrap();
    assert!(top.starts_with(&short(&s1)) && top.contains("   6B   "), "{top}");
    assert!(top.trim_end().ends_with("note"), "{top}");
    // An image without a recorded parent (saved and loaded) has no image for older records.
    for c in ["c1", "c2"] {
        d.berth(&["rm", c]).ok();
    }
    let archive = d.root.join("snap1.tar");
    d.berth(&["save", "-o", archive.to_str().unwrap(), "snap:1"]).ok();
    d.berth(&["rmi", "snap:2", "snap:1"]).ok();
    d.berth(&["load", "-i", archive.to_str().unwrap()]).ok();
    let ids = d.berth(&["history", "--format", "{{.ID}}", "snap:1"]).ok();
    assert_eq!(ids.stdout, format!("{}\n<missing>\n", short(&s1)));
    let r = d.berth(&["history", "nope:1"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: No such image: nope:1"
    );
}

#[test]
fn a_tag_moved_to_a_new_image_leaves_the_old_one_dangling() {
    let d = daemon!();
    let old = import(&d, "moved:1", &one_file_tar("a", "old"), &[]);
    let new = import(&d, "moved:1", &one_file_tar("a", "new"), &[]);
    assert_ne!(old, new);
    let dangling = d
        .berth(&["images", "-q", "--no-trunc", "-f", "dangling=true"])
        .ok();
    assert_eq!(dangling.out(), old);
    let listed = d
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok();
    assert!(
        listed.stdout.contains(&format!("<none>:<none> {}", &old[7..19])),
        "{}",
        listed.stdout
    );
    assert_eq!(
        d.berth(&["image", "inspect", "-f", "{{.RepoTags}}", &old])
            .ok()
            .out(),
        "[]"
    );
    assert_eq!(
        d.docker(&["images", "-q", "-f", "dangling=true"]).ok().out(),
        &old[7..19]
    );
}

#[test]
fn image_prune_takes_dangling_images_and_with_all_every_unused_one() {
    let d = daemon!();
    d.berth(&["create", "--name", "user", "busybox", "true"]).ok();
    let gone = import(&d, "dang:1", &one_file_tar("d", "first"), &[]);
    let gone_layer = layer_of(&d, &gone);
    let kept = import(&d, "dang:1", &one_file_tar("d", "second"), &[]);
    import(&d, "labelled:1", &one_file_tar("l", "x"), &["LABEL tier=test"]);

    // Answering no changes nothing and exits 0, as docker does.
    let r = d.berth_stdin(&["image", "prune"], b"n\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    );
    assert!(exists(&d, &gone));

    let since = berth_e2e::timestamp();
    let r = d.berth_stdin(&["image", "prune"], b"y\n").ok();
    assert_eq!(
        r.stdout,
        format!(
            "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] \
             Deleted Images:\ndeleted: {gone}\ndeleted: {gone_layer}\n\nTotal reclaimed space: 5B\n"
        )
    );
    assert!(!exists(&d, &gone));
    let ev = d.wait_for_event(&since, &["type=image", "event=prune"], Duration::from_secs(10));
    assert!(ev.contains("reclaimed=5"), "{ev}");

    let r = d
        .berth(&["image", "prune", "-a", "-f", "--filter", "label=tier=test"])
        .ok();
    assert!(
        r.stdout
            .starts_with("Deleted Images:\nuntagged: labelled:1\ndeleted: sha256:"),
        "{}",
        r.stdout
    );
    assert!(!exists(&d, "labelled:1"));
    assert!(exists(&d, &kept));

    // Nothing dangling left: only the total.
    assert_eq!(
        d.berth(&["image", "prune", "-f"]).ok().stdout,
        "Total reclaimed space: 0B\n"
    );
    let r = d.berth(&["image", "prune", "-af"]).ok();
    assert!(
        r.stdout.contains(&format!("untagged: dang:1\ndeleted: {kept}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with("\n\nTotal reclaimed space: 6B\n"),
        "{}",
        r.stdout
    );
    // busybox stays: a container uses it.
    assert_eq!(
        d.berth(&["images", "--format", "{{.Repository}}"]).ok().out(),
        "busybox"
    );
    let r = d.berth(&["image", "prune", "-f", "--filter", "foo=bar"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: Invalid filter 'foo'"
    );
}

#[test]
fn container_prune_removes_stopped_containers_only() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "up", "busybox", "sleep", "300"])
        .ok();
    d.berth(&["create", "--name", "fresh", "busybox", "true"]).ok();
    d.berth(&["run", "--name", "done", "busybox", "sh", "-c", "echo x > /f"])
        .ok();
    d.berth(&["run", "--name", "kept", "-l", "keep=1", "busybox", "true"])
        .ok();
    let (fresh, done) = (cid(&d, "fresh"), cid(&d, "done"));

    // Created after `until` (an hour ago): nothing goes.
    assert_eq!(
        d.berth(&["container", "prune", "-f", "--filter", "until=1h"])
            .ok()
            .stdout,
        "Total reclaimed space: 0B\n"
    );
    let since = berth_e2e::timestamp();
    let r = d
        .berth(&["container", "prune", "-f", "--filter", "label!=keep=1"])
        .ok();
    assert_eq!(
        r.stdout,
        format!("Deleted Containers:\n{done}\n{fresh}\n\nTotal reclaimed space: 2B\n")
    );
    let ev = d.wait_for_event(
        &since,
        &["type=container", "event=prune"],
        Duration::from_secs(10),
    );
    assert!(ev.contains("reclaimed=2"), "{ev}");
    d.wait_for_event(
        &since,
        &["type=container", "event=destroy", &format!("container={done}")],
        Duration::from_secs(10),
    );
    let mut left: Vec<String> = d
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    left.sort();
    assert_eq!(left, ["kept", "up"]);
    let r = d.berth_stdin(&["container", "prune"], b"\n");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        )
    );
    let kept = cid(&d, "kept");
    assert_eq!(
        d.berth(&["container", "prune", "-f"]).ok().stdout,
        format!("Deleted Containers:\n{kept}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(d.berth(&["ps", "-a", "--format", "{{.Names}}"]).ok().out(), "up");
}

#[test]
fn system_prune_runs_every_prune() {
    let d = daemon!();
    let r = d.berth_stdin(&["system", "prune"], b"n\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue? [y/N] "
    );
    d.berth(&["run", "--name", "done", "busybox", "sh", "-c", "echo x > /f"])
        .ok();
    let done = cid(&d, "done");
    import(&d, "old:1", &one_file_tar("o", "old"), &[]);
    let since = berth_e2e::timestamp();
    let r = d.berth(&["system", "prune", "-af", "--volumes"]).ok();
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(
        r.stdout.starts_with(&format!(
            "Deleted Containers:\n{done}\n\nDeleted Images:\nuntagged: old:1\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("untagged: busybox:latest\n"), "{}", r.stdout);
    assert!(
        // dockerd's sizes: the busybox layer with its applets' symlinks counted (lstat sizes).
        r.stdout.ends_with("\n\nTotal reclaimed space: 1.984MB\n"),
        "{}",
        r.stdout
    );
    assert!(d.berth(&["images", "-q"]).ok().out().is_empty());
    for kind in ["container", "network", "volume", "image"] {
        d.wait_for_event(
            &since,
            &[&format!("type={kind}"), "event=prune"],
            Duration::from_secs(10),
        );
    }
    let r = d.berth(&["system", "prune", "-f", "--volumes", "--filter", "until=1h"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "ERROR: The \"until\" filter is not supported with \"--volumes\""
    );
}

/// busybox and a second image on the same layer (one layer, two images), a running container
/// and a stopped one that wrote two bytes.
fn df_setup(d: &Daemon) -> i64 {
    import(d, "twin:1", berth_e2e::busybox_tar(), &["CMD [\"sh\"]"]);
    d.berth(&["run", "-d", "--name", "up", "busybox", "sleep", "300"])
        .ok();
    d.berth(&["run", "--name", "done", "busybox", "sh", "-c", "echo x > /f"])
        .ok();
    d.berth(&["image", "inspect", "-f", "{{.Size}}", "busybox"])
        .ok()
        .out()
        .parse()
        .unwrap()
}

#[test]
fn system_df_counts_shared_layers_once_and_matches_the_docker_cli() {
    let d = daemon!();
    let layer = df_setup(&d);
    let human = d
        .berth(&["history", "--format", "{{.Size}}", "busybox"])
        .ok()
        .out()
        .to_string();
    let df = d.berth(&["system", "df"]).ok();
    let rows: Vec<Vec<&str>> = df
        .stdout
        .lines()
        .map(|l| l.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    // One layer, counted once; busybox is in use but all of its bytes are shared with twin.
    assert_eq!(rows[1][..3], ["Images", "2", "1"]);
    assert!(rows[1][3].starts_with(&human[..3]), "{rows:?} {human}");
    assert!(rows[1][4].ends_with("(100%)"), "{rows:?}");
    assert_eq!(rows[2], ["Containers", "2", "1", "2B", "2B (100%)"]);
    assert_eq!(rows[3], ["Local Volumes", "0", "0", "0B", "0B"]);
    assert_eq!(rows[4], ["Build Cache", "0", "0", "0B", "0B"]);
    assert_eq!(d.docker(&["system", "df"]).ok().stdout, df.stdout);
    let json = d.berth(&["system", "df", "--format", "{{json .}}"]).ok();
    assert!(
        json.stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("{\"Active\":\"1\","),
        "{}",
        json.stdout
    );

    let per_object = "{{range .Images}}{{.Repository}}:{{.Tag}} {{.SharedSize}} {{.UniqueSize}} {{.Containers}};{{end}}{{range .Containers}}{{.Names}} {{.Size}};{{end}}";
    let v = d.berth(&["system", "df", "-v", "--format", per_object]).ok();
    assert!(v.stdout.contains("busybox:latest "), "{}", v.stdout);
    assert!(v.stdout.contains(" 0B 2;"), "{}", v.stdout);
    assert!(v.stdout.contains("twin:1 "), "{}", v.stdout);
    assert!(v.stdout.ends_with("done 2B;up 0B;"), "{}", v.stdout);
    assert_eq!(
        d.docker(&["system", "df", "-v", "--format", per_object])
            .ok()
            .stdout,
        v.stdout
    );
    let tables = d.berth(&["system", "df", "-v"]).ok().stdout;
    for section in [
        "Images space usage:\n\nREPOSITORY   TAG       IMAGE ID       CREATED",
        "\n\nContainers space usage:\n\nCONTAINER ID   IMAGE     COMMAND",
        "\n\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n",
        "\nBuild cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n",
    ] {
        assert!(tables.contains(section), "{section:?} not in:\n{tables}");
    }
    // The document itself.
    let raw = d.python(
        r#"
import docker, json
print(json.dumps(docker.from_env().df()))
"#,
    );
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    let doc: serde_json::Value = serde_json::from_str(raw.out()).unwrap();
    assert_eq!(doc["LayersSize"], layer);
    assert_eq!(doc["BuildCache"], serde_json::Value::Null);
    assert_eq!(doc["Volumes"], serde_json::json!([]));
    for img in doc["Images"].as_array().unwrap() {
        assert_eq!(img["SharedSize"], layer, "{img}");
    }
    let containers = doc["Containers"].as_array().unwrap();
    let by_name = |n: &str| {
        containers
            .iter()
            .find(|c| c["Names"][0] == format!("/{n}"))
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("done")["SizeRw"], 2);
    assert_eq!(by_name("done")["SizeRootFs"], layer + 2);
    assert!(by_name("up").get("SizeRw").is_none(), "SizeRw is left out when 0");
    assert_eq!(by_name("up")["SizeRootFs"], layer);
}

#[test]
fn docker_cli_history_prune_and_df_work_against_berthd() {
    let d = daemon!();
    berth_e2e::docker_cli();
    let (_, s1, s2) = commit_chain(&d);
    // -H=false shows absolute times, so both CLIs print the same bytes.
    for args in [
        &["history", "-H=false", "snap:2"][..],
        &["history", "--no-trunc", "-H=false", "snap:2"],
        &["history", "-q", "snap:2"],
        &["image", "history", "--format", "{{json .}}", "-H=false", "snap:1"],
    ] {
        assert_eq!(d.docker(args).ok().stdout, d.berth(args).ok().stdout, "{args:?}");
    }
    let r = d.docker(&["container", "prune", "-f"]).ok();
    let (c1, c2) = ("Deleted Containers:\n", "\nTotal reclaimed space: 6B\n");
    assert!(r.stdout.starts_with(c1) && r.stdout.ends_with(c2), "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 5, "{}", r.stdout);
    let r = d.docker(&["image", "prune", "-af"]).ok();
    assert!(
        r.stdout.starts_with(&format!(
            "Deleted Images:\nuntagged: snap:2\ndeleted: {s2}\nuntagged: snap:1\ndeleted: {s1}\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("untagged: busybox:latest\n"), "{}", r.stdout);
    assert!(d.berth(&["images", "-q"]).ok().out().is_empty());
    d.berth_stdin(&["import", "-", "busybox:latest"], berth_e2e::busybox_tar())
        .ok();
    df_setup(&d);
    let v = d.docker(&["system", "df", "-v"]).ok();
    assert!(v.stdout.starts_with("Images space usage:\n\n"), "{}", v.stdout);
    assert!(v.stdout.contains("twin         1 "), "{}", v.stdout);
    let r = d.docker(&["system", "prune", "-af"]).ok();
    assert!(r.stdout.starts_with("Deleted Containers:\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("\nDeleted Images:\nuntagged: twin:1\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with("\nTotal reclaimed space: 2B\n"),
        "{}",
        r.stdout
    );
    // Only the running container and its image are left.
    assert_eq!(d.berth(&["ps", "-a", "--format", "{{.Names}}"]).ok().out(), "up");
    assert_eq!(
        d.berth(&["images", "--format", "{{.Repository}}"]).ok().out(),
        "busybox"
    );
}

#[test]
fn docker_py_history_prune_and_df() {
    let d = daemon!();
    let (_, s1, s2) = commit_chain(&d);
    let old = import(&d, "dang:1", &one_file_tar("d", "first"), &[]);
    import(&d, "dang:1", &one_file_tar("d", "second"), &[]);
    let script = format!(
        r#"
import docker
c = docker.from_env()
api = c.api
h = api.history("snap:2")
assert [e["Id"] for e in h][:2] == ["{s2}", "{s1}"], h
assert h[0]["Size"] == 0 and h[0]["Tags"] == ["snap:2"] and h[0]["CreatedBy"] == "true", h[0]
assert h[1]["Size"] == 6 and h[1]["Comment"] == "note", h[1]
r = c.images.prune()
assert r["ImagesDeleted"][0] == {{"Deleted": "{old}"}}, r
assert r["SpaceReclaimed"] == 5, r
r = c.containers.prune()
assert len(r["ContainersDeleted"]) == 2 and r["SpaceReclaimed"] == 6, r
assert c.containers.prune() == {{"ContainersDeleted": None, "SpaceReclaimed": 0}}
r = c.images.prune(filters={{"dangling": False}})
untagged = [e["Untagged"] for e in r["ImagesDeleted"] if "Untagged" in e]
assert "snap:2" in untagged and "dang:1" in untagged and "busybox:latest" in untagged, r
assert c.images.prune() == {{"ImagesDeleted": None, "SpaceReclaimed": 0}}
df = c.df()
assert df["Images"] == [] and df["Containers"] == [] and df["LayersSize"] == 0, df
print("ok")
"#
    );
    let r = d.python(&script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok");
}
