//! `docker diff`, `docker commit` and `docker export` on real overlay mounts.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_meta::{ContainerRow, Db};
use berth_types::ErrorKind;

use super::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
    }) == Some(0)
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
    };
}

struct Env {
    dir: tempfile::TempDir,
    db: Db,
    svc: ImageService,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    let svc = ImageService::open(dir.path(), db.clone()).unwrap();
    Env { dir, db, svc }
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An overlay mount of a container's rootfs, unmounted when dropped (even on panic).
struct Mounted(PathBuf);

impl Mounted {
    fn new(svc: &ImageService, container: &str, at: PathBuf) -> Mounted {
        let m = svc.rootfs_mounts(container).unwrap();
        fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", &m[0].kind, &m[0].source, "-o", &m[0].options.join(",")])
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "mount failed");
        Mounted(at)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn new_container(e: &Env, id: &str, image: &str) {
    e.db.insert_container(&ContainerRow {
        id: id.into(),
        name: format!("/n{id}"),
        image_id: image.into(),
        doc: "{}".into(),
    })
    .unwrap();
    e.svc.prepare_rootfs(image, id, &[]).unwrap();
}

fn base_image(e: &Env) -> String {
    let tar = tar_of(&[
        ("a", b"A"),
        ("dir/x", b"x"),
        ("dir/y", b"y"),
        ("opq/o1", b"o1"),
        ("keep/k", b"k"),
    ]);
    e.svc.import(&mut &tar[..], &ImportOptions::default()).unwrap()
}

fn paths(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), c.path))
        .collect()
}

#[test]
fn commit_then_run_shows_the_containers_changes() {
    require_root!();
    let e = env();
    let base = base_image(&e);
    new_container(&e, "c1", &base);
    {
        let m = Mounted::new(&e.svc, "c1", e.dir.path().join("merged1"));
        let r = &m.0;
        fs::write(r.join("a"), b"A2").unwrap();
        fs::create_dir(r.join("new")).unwrap();
        fs::write(r.join("new/f"), b"f").unwrap();
        fs::remove_file(r.join("dir/x")).unwrap();
        fs::remove_dir_all(r.join("opq")).unwrap();
        fs::create_dir(r.join("opq")).unwrap(); // overlay makes it opaque
        fs::write(r.join("opq/n"), b"n").unwrap();
        symlink("/a", r.join("ln")).unwrap();

        assert_eq!(
            paths(&e.svc.changes("c1").unwrap()),
            vec![
                "C /a",
                "C /dir",
                "D /dir/x",
                "A /ln",
                "A /new",
                "A /new/f",
                "C /opq",
                "A /opq/n",
                "D /opq/o1"
            ]
        );

        // export sees the merged view.
        let mut out = Vec::new();
        export_tar(r, &mut out).unwrap();
        let mut names = Vec::new();
        for entry in tar::Archive::new(&out[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "a" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut entry, &mut s).unwrap();
                assert_eq!(s, "A2");
            }
            names.push(name);
        }
        for n in ["a", "dir/y", "keep/k", "ln", "new/f", "opq/n"] {
            assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
        }
        assert!(!names.iter().any(|x| x == "dir/x" || x == "opq/o1"), "{names:?}");

        // commit while mounted (the daemon guarantees the mount; the container is paused).
        let opts = CommitOptions {
            repo_tag: Some("committed:v1".into()),
            comment: "msg".into(),
            author: "me <me@x>".into(),
            changes: vec!["ENV FOO=bar".into()],
            config: ImageConfig {
                cmd: Some(vec!["sh".into(), "-c".into(), "true".into()]),
                env: vec!["PATH=/bin".into()],
                ..Default::default()
            },
            container_config: None,
        };
        let id = e.svc.commit("c1", &opts).unwrap();
        let img = e.svc.resolve("committed:v1").unwrap();
        assert_eq!(img.id, id);
        assert_eq!(img.config.env, vec!["PATH=/bin", "FOO=bar"]);
        assert_eq!(img.config.cmd, opts.config.cmd);
        let cfg = e.svc.config_file(&id).unwrap();
        let parent_cfg = e.svc.config_file(&base).unwrap();
        assert_eq!((cfg.author.as_str(), cfg.comment.as_str()), ("me <me@x>", "msg"));
        assert_eq!(cfg.rootfs.diff_ids.len(), 2);
        assert_eq!(cfg.rootfs.diff_ids[0], parent_cfg.rootfs.diff_ids[0]);
        assert_eq!(cfg.history.len(), parent_cfg.history.len() + 1);
        let h = cfg.history.last().unwrap();
        assert_eq!(
            (
                h.created_by.as_str(),
                h.author.as_str(),
                h.comment.as_str(),
                h.empty_layer
            ),
            ("sh -c true", "me <me@x>", "msg", false)
        );
        assert_eq!(e.db.image(&id).unwrap().unwrap().parent, base);
        // The layer blob is the diff ID.
        let diff = berth_types::Digest::parse(&cfg.rootfs.diff_ids[1]).unwrap();
        assert!(e.svc.content.exists(&diff));
    }
    // The container keeps its own rw layer.
    assert!(e.svc.rootfs_dir("c1").unwrap().join("fs/new/f").is_file());

    // Run the committed image: the changes are there, deletions included.
    let id = e.svc.resolve("committed:v1").unwrap().id;
    new_container(&e, "c2", &id);
    {
        let m = Mounted::new(&e.svc, "c2", e.dir.path().join("merged2"));
        let r = &m.0;
        assert_eq!(fs::read(r.join("a")).unwrap(), b"A2");
        assert_eq!(fs::read(r.join("new/f")).unwrap(), b"f");
        assert_eq!(fs::read(r.join("opq/n")).unwrap(), b"n");
        assert_eq!(fs::read(r.join("dir/y")).unwrap(), b"y");
        assert_eq!(fs::read(r.join("keep/k")).unwrap(), b"k");
        assert!(!r.join("dir/x").exists());
        assert!(!r.join("opq/o1").exists());
        assert_eq!(fs::read_link(r.join("ln")).unwrap(), Path::new("/a"));
        assert!(e.svc.changes("c2").unwrap().is_empty());
    }

    // Committing an unchanged container adds no layer, only an empty_layer history entry.
    let id2 = e.svc.commit("c2", &CommitOptions::default()).unwrap();
    let cfg2 = e.svc.config_file(&id2).unwrap();
    assert_eq!(
        cfg2.rootfs.diff_ids,
        e.svc.config_file(&id).unwrap().rootfs.diff_ids
    );
    assert!(cfg2.history.last().unwrap().empty_layer);

    assert_eq!(
        e.svc
            .commit("nope", &CommitOptions::default())
            .unwrap_err()
            .to_string(),
        "No such container: nope"
    );
    let bad = CommitOptions {
        changes: vec!["FROM x".into()],
        ..Default::default()
    };
    assert_eq!(
        e.svc.commit("c2", &bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn commit_respects_the_layer_limit() {
    require_root!();
    let e = env();
    let tars: Vec<Vec<u8>> = (0..MAX_LAYERS)
        .map(|i| tar_of(&[(&format!("f{i}"), b"x")]))
        .collect();
    let mut readers: Vec<&[u8]> = tars.iter().map(|t| &t[..]).collect();
    let mut layers: Vec<&mut dyn std::io::Read> =
        readers.iter_mut().map(|r| r as &mut dyn std::io::Read).collect();
    let id = e
        .svc
        .create_image(None, ConfigFile::for_host(now_rfc3339()), &mut layers, None)
        .unwrap();
    new_container(&e, "c", &id);
    // No changes: no new layer, allowed.
    e.svc.commit("c", &CommitOptions::default()).unwrap();
    fs::write(e.svc.rootfs_dir("c").unwrap().join("fs/new"), b"n").unwrap();
    let before = e.svc.content.list().unwrap().len();
    let err = e.svc.commit("c", &CommitOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "max depth exceeded");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // Nothing left behind: no blob, no temp file.
    assert_eq!(e.svc.content.list().unwrap().len(), before);
    let ingest = e.dir.path().join("content/ingest");
    assert_eq!(fs::read_dir(ingest).unwrap().count(), 0);
}
