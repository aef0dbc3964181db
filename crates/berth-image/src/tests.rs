use std::io::{Read, Write};

use berth_meta::{ContainerRow, Db};
use berth_snapshot::Snapshotter;
use berth_types::ErrorKind;

use super::*;

/// Layer apply chowns and creates whiteout devices: root only.
fn is_root() -> bool {
    euid() == 0
}

fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
    };
}

pub(crate) struct Env {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub svc: std::sync::Arc<ImageService>,
}

pub(crate) fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    let svc = std::sync::Arc::new(ImageService::open(dir.path(), db.clone()).unwrap());
    Env { dir, db, svc }
}

pub(crate) fn rootfs_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
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

pub(crate) fn import(
    svc: &ImageService,
    tar: &[u8],
    tag: Option<&str>,
    changes: &[&str],
) -> Result<String, Error> {
    let opts = ImportOptions {
        repo_tag: tag.map(str::to_string),
        changes: changes.iter().map(|s| s.to_string()).collect(),
        message: String::new(),
    };
    svc.import(&mut &tar[..], &opts)
}

pub(crate) fn never(_: &str) -> bool {
    false
}

pub(crate) fn ctr(db: &Db, id: &str, image: &str) {
    db.insert_container(&ContainerRow {
        id: id.into(),
        name: format!("/n{id}"),
        image_id: image.into(),
        doc: "{}".into(),
    })
    .unwrap();
}

#[test]
fn service_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<ImageService>();
}

#[test]
fn import_resolve_prepare_rootfs() {
    require_root!();
    let e = env();
    let tar = rootfs_tar(&[("hello.txt", b"hi\n"), ("bin/sh", b"#!")]);
    let id = import(
        &e.svc,
        &tar,
        Some("imp1:v1"),
        &["CMD [\"cat\",\"/hello.txt\"]", "ENV PATH=/bin"],
    )
    .unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let hex = &id[7..];
    for name in [
        "imp1:v1",
        "docker.io/library/imp1:v1",
        id.as_str(),
        hex,
        &hex[..12],
        &id[..19],
    ] {
        let img = e.svc.resolve(name).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(img.id, id);
        assert_eq!(img.repo_tags, vec!["imp1:v1"]);
        assert_eq!(
            img.config.cmd,
            Some(vec!["cat".to_string(), "/hello.txt".to_string()])
        );
        assert_eq!(img.config.env, vec!["PATH=/bin"]);
    }
    let err = e.svc.resolve("imp1").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "No such image: imp1:latest");
    assert_eq!(
        e.svc.resolve("UPPER").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    // The config blob hashes to the ID.
    let cfg = e.svc.config_file(&id).unwrap();
    assert_eq!(cfg.comment, "Imported from -");
    assert_eq!(cfg.rootfs.diff_ids.len(), 1);

    let mounts = e.svc.prepare_rootfs(&id, "c1", &[]).unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].kind, "overlay");
    // The container's init layer (the engine's mount points), then the image's layer.
    let lower = mounts[0].options[0].strip_prefix("lowerdir=").unwrap();
    let (init, lower) = lower.split_once(':').unwrap();
    assert!(Path::new(init).join("etc/hostname").is_file());
    assert!(Path::new(init).join("proc").is_dir());
    assert!(!Path::new(lower).join("etc").exists());
    assert_eq!(
        std::fs::read(Path::new(lower).join("hello.txt")).unwrap(),
        b"hi\n"
    );
    assert_eq!(e.svc.rootfs_mounts("c1").unwrap(), mounts);
    let upper = mounts[0].options[1].strip_prefix("upperdir=").unwrap();
    std::fs::write(Path::new(upper).join("new"), [0u8; 300]).unwrap();
    assert_eq!(e.svc.rw_size("c1").unwrap(), 300);
    assert_eq!(
        e.svc.prepare_rootfs(&id, "c1", &[]).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    e.svc.remove_rootfs("c1").unwrap();
    assert_eq!(e.svc.rootfs_mounts("c1").unwrap_err().kind(), ErrorKind::NotFound);
    assert!(
        Path::new(init).join("etc/hostname").is_file(),
        "the init layer the image's containers share stays with the image"
    );
    drop(e.dir);
}

#[test]
fn compressed_imports_share_one_layer() {
    require_root!();
    let e = env();
    let tar = rootfs_tar(&[("a", b"same content")]);
    let gz = {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(&tar).unwrap();
        w.finish().unwrap()
    };
    let bz = {
        let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        w.write_all(&tar).unwrap();
        w.finish().unwrap()
    };
    let xz = {
        let mut w = xz2::write::XzEncoder::new(Vec::new(), 1);
        w.write_all(&tar).unwrap();
        w.finish().unwrap()
    };
    let zst = zstd::stream::encode_all(&tar[..], 1).unwrap();
    let mut diff_ids = Vec::new();
    for (i, data) in [&tar, &gz, &bz, &xz, &zst].iter().enumerate() {
        let id = import(&e.svc, data, Some(&format!("c{i}")), &[]).unwrap();
        diff_ids.push(e.svc.config_file(&id).unwrap().rootfs.diff_ids[0].clone());
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]), "{diff_ids:?}");
    assert_eq!(
        e.db.layers().unwrap().len(),
        1,
        "one layer row shared by five images"
    );
    assert_eq!(e.db.layer_users(&diff_ids[0]).unwrap(), 5);
    let committed = e.svc.snapshots.list().unwrap();
    assert_eq!(committed.len(), 1, "{committed:?}");
}

struct PanicReader;
impl Read for PanicReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("read before validating the reference")
    }
}

#[test]
fn bad_arguments_fail_before_reading() {
    let e = env();
    for (tag, msg) in [
        (
            "UPPER",
            "invalid reference format: repository name (library/UPPER) must be lowercase",
        ),
        ("a:b:c", "invalid reference format"),
    ] {
        let opts = ImportOptions {
            repo_tag: Some(tag.into()),
            ..Default::default()
        };
        let err = e.svc.import(&mut PanicReader, &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_string(), msg);
    }
    let opts = ImportOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    let err = e.svc.import(&mut PanicReader, &opts).unwrap_err();
    assert_eq!(err.to_string(), "run is not a valid change command");
}

pub(crate) fn assert_nothing_left(e: &Env) {
    assert!(e.svc.snapshots.list().unwrap().is_empty(), "no snapshot left");
    assert!(e.svc.content.list().unwrap().is_empty(), "no blob left");
    assert!(e.db.images().unwrap().is_empty(), "no image row");
    assert!(e.db.layers().unwrap().is_empty(), "no layer row");
    assert!(e.db.all_tags().unwrap().is_empty(), "no tag");
    let snap_dirs: Vec<_> = std::fs::read_dir(e.dir.path().join("snapshots"))
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.parse::<u64>().is_ok())
        .collect();
    assert!(snap_dirs.is_empty(), "{snap_dirs:?}");
    assert_eq!(
        std::fs::read_dir(e.dir.path().join("content/ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn truncated_or_corrupt_import_leaves_nothing() {
    require_root!();
    let e = env();
    let tar = rootfs_tar(&[("big", &[7u8; 10_000]), ("small", b"x")]);
    let err = import(&e.svc, &tar[..3000], Some("t:v1"), &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_nothing_left(&e);

    let mut gz = {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(&tar).unwrap();
        w.finish().unwrap()
    };
    let n = gz.len();
    gz[n / 2] ^= 0xff;
    gz[n / 2 + 1] ^= 0xff;
    assert!(import(&e.svc, &gz, Some("t:v1"), &[]).is_err());
    assert_nothing_left(&e);

    let mut evil = rootfs_tar(&[("ok", b"1")]);
    evil.truncate(evil.len() - 1024);
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..4].copy_from_slice(b"../x");
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    evil.extend_from_slice(h.as_bytes());
    evil.extend_from_slice(&[0u8; 1024]);
    let err = import(&e.svc, &evil, None, &[]).unwrap_err();
    assert!(err.to_string().contains("escapes the root"), "{err}");
    assert_nothing_left(&e);
    assert!(!e.dir.path().join("snapshots/x").exists());
}

#[test]
fn list_filters_and_dangling() {
    require_root!();
    let e = env();
    let a = import(
        &e.svc,
        &rootfs_tar(&[("a", b"1")]),
        Some("busybox:latest"),
        &["LABEL tier=web"],
    )
    .unwrap();
    let b = import(&e.svc, &rootfs_tar(&[("b", b"2")]), Some("user/app:v1"), &[]).unwrap();
    // Moving the tag leaves `a2` dangling.
    let a2 = import(&e.svc, &rootfs_tar(&[("c", b"3")]), Some("other:1"), &[]).unwrap();
    e.svc.tag(&b, "other:1").unwrap();
    ctr(&e.db, "c1", &a);

    let all = e.svc.list(&ListOptions::default()).unwrap();
    assert_eq!(all.len(), 3);
    // Newest first to the nanosecond, as made (all three within a second or two).
    assert_eq!(
        all.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![a2.clone(), b.clone(), a.clone()]
    );
    let by_id = |id: &str| all.iter().find(|s| s.id == id).unwrap().clone();
    assert_eq!(by_id(&a).repo_tags, vec!["busybox:latest"]);
    assert_eq!(by_id(&a).containers, 1);
    assert_eq!(by_id(&a).labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(by_id(&b).repo_tags, vec!["other:1", "user/app:v1"]);
    assert_eq!(by_id(&a2).repo_tags, vec!["<none>:<none>"]);
    assert_eq!(by_id(&a2).repo_digests, vec!["<none>@<none>"]);
    assert_eq!(by_id(&a2).created, by_id(&a2).created);

    let filter = |k: &str, v: &str| {
        let mut o = ListOptions::default();
        o.filters.insert(k.into(), vec![v.into()]);
        e.svc
            .list(&o)
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.repo_tags))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        filter("dangling", "true"),
        vec![(a2.clone(), vec!["<none>:<none>".to_string()])]
    );
    assert_eq!(filter("dangling", "false").len(), 2);
    assert_eq!(
        filter("reference", "busy*"),
        vec![(a.clone(), vec!["busybox:latest".to_string()])]
    );
    assert_eq!(filter("reference", "busybox:lat*").len(), 1);
    assert_eq!(filter("reference", "busybox:v*").len(), 0);
    assert_eq!(
        filter("reference", "user/*"),
        vec![(b.clone(), vec!["user/app:v1".to_string()])]
    );
    assert_eq!(filter("label", "tier=web").len(), 1);
    assert_eq!(filter("label", "tier").len(), 1);
    assert_eq!(filter("label", "tier=db").len(), 0);
}

#[test]
fn inspect_has_docker_keys() {
    require_root!();
    let e = env();
    let id = import(
        &e.svc,
        &rootfs_tar(&[("f", b"12345")]),
        Some("imp1:v1"),
        &["ENV PATH=/bin"],
    )
    .unwrap();
    let v = e.svc.inspect_json("imp1:v1").unwrap();
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Container",
        "ContainerConfig",
        "DockerVersion",
        "Author",
        "Config",
        "Architecture",
        "Os",
        "Size",
        "VirtualSize",
        "GraphDriver",
        "RootFS",
        "Metadata",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["Id"], id);
    assert_eq!(v["RepoTags"], serde_json::json!(["imp1:v1"]));
    assert_eq!(v["Comment"], "Imported from -");
    assert_eq!(v["Config"]["Env"], serde_json::json!(["PATH=/bin"]));
    assert!(v["Config"]["Cmd"].is_null());
    assert!(v["Config"]["Labels"].is_null());
    assert_eq!(v["Size"], 5);
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    assert!(v["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .ends_with("/fs"));
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(berth_types::time::parse_rfc3339(v["Created"].as_str().unwrap()).is_some());
    assert_ne!(v["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z");
    let typed = e.svc.inspect(&id).unwrap();
    assert_eq!(typed.architecture.as_deref(), Some(config::host_architecture()));
    assert_eq!(typed.os.as_deref(), Some("linux"));
}

#[test]
fn rmi_semantics_and_messages() {
    require_root!();
    let e = env();
    let id = import(&e.svc, &rootfs_tar(&[("f", b"x")]), Some("imp1:v1"), &[]).unwrap();
    let short_id = &id[7..19];
    let cid = "457ade9fa52b0000000000000000000000000000000000000000000000000000";
    ctr(&e.db, cid, &id);

    let err = e.svc.remove("imp1:v1", false, &never).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to remove repository reference \"imp1:v1\" (must force) - container 457ade9fa52b is using its referenced image {short_id}")
    );
    let err = e.svc.remove(short_id, false, &never).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to delete {short_id} (must be forced) - image is being used by stopped container 457ade9fa52b")
    );
    let running = |_: &str| true;
    let err = e.svc.remove(short_id, true, &running).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("conflict: unable to delete {short_id} (cannot be forced) - image is being used by running container 457ade9fa52b")
    );

    // A second tag: removing one by name only untags.
    e.svc.tag("imp1:v1", "imp1").unwrap();
    let r = e.svc.remove("imp1", false, &never).unwrap();
    assert_eq!(
        r,
        vec![ImageDeleteResponseItem {
            untagged: Some("imp1:latest".into()),
            deleted: None
        }]
    );
    e.svc.tag("imp1:v1", "imp2").unwrap();
    e.db.delete_container(cid).unwrap();
    let err = e.svc.remove(&id, false, &never).unwrap_err();
    assert_eq!(err.to_string(), format!("conflict: unable to delete {short_id} (must be forced) - image is referenced in multiple repositories"));
    let r = e.svc.remove("imp2", false, &never).unwrap();
    assert_eq!(r.len(), 1);
    // Last tag by name: untag + delete image + its layer.
    let r = e.svc.remove("imp1:v1", false, &never).unwrap();
    assert_eq!(r[0].untagged.as_deref(), Some("imp1:v1"));
    assert_eq!(r[1].deleted.as_deref(), Some(id.as_str()));
    assert_eq!(r.len(), 3, "{r:?}");
    assert_nothing_left(&e);
    assert_eq!(
        e.svc.remove("imp1:v1", false, &never).unwrap_err().to_string(),
        "No such image: imp1:v1"
    );
}

use berth_api::models::ImageDeleteResponseItem;

#[test]
fn rmi_force_by_name_with_stopped_container_deletes() {
    require_root!();
    let e = env();
    let id = import(&e.svc, &rootfs_tar(&[("f", b"x")]), Some("imp1:v1"), &[]).unwrap();
    ctr(&e.db, "c1", &id);
    let r = e.svc.remove("imp1:v1", true, &never).unwrap();
    assert_eq!(r[1].deleted.as_deref(), Some(id.as_str()));
    // …but with a running container the image stays, untagged (docker's quiet conflict).
    let id = import(&e.svc, &rootfs_tar(&[("g", b"y")]), Some("imp2:v1"), &[]).unwrap();
    ctr(&e.db, "c2", &id);
    let r = e.svc.remove("imp2:v1", true, &|_| true).unwrap();
    assert_eq!(r.len(), 1);
    assert!(e.db.image(&id).unwrap().is_some());
}

#[test]
fn shared_layer_survives_removal_of_one_image() {
    require_root!();
    let e = env();
    let tar = rootfs_tar(&[("f", b"shared")]);
    let a = import(&e.svc, &tar, Some("a"), &[]).unwrap();
    let b = import(&e.svc, &tar, Some("b"), &["CMD [\"x\"]"]).unwrap();
    assert_ne!(a, b);
    let r = e.svc.remove("a", false, &never).unwrap();
    assert_eq!(r.len(), 2, "untag + delete image, layer kept: {r:?}");
    let m = e.svc.prepare_rootfs(&b, "c", &[]).unwrap();
    let lower = m[0].options[0].rsplit(':').next().unwrap().to_string();
    assert_eq!(std::fs::read(Path::new(&lower).join("f")).unwrap(), b"shared");
}

#[test]
fn hello_world_is_built_in_and_stable() {
    require_root!();
    let e = env();
    assert_eq!(e.svc.install_builtin("busybox").unwrap(), None);
    let (id, new) = e.svc.install_builtin("hello-world").unwrap().unwrap();
    assert!(new, "the first call installs it");
    assert_eq!(
        e.svc
            .install_builtin("docker.io/library/hello-world:latest")
            .unwrap(),
        Some((id.clone(), false))
    );
    assert_eq!(
        e.svc.install_builtin("library/hello-world").unwrap(),
        Some((id.clone(), false))
    );
    let img = e.svc.resolve("hello-world").unwrap();
    assert_eq!(img.id, id);
    assert_eq!(img.config.cmd, Some(vec!["/hello".to_string()]));
    assert_eq!(img.repo_tags, vec!["hello-world:latest"]);

    // Same ID in a fresh store.
    let e2 = env();
    assert_eq!(
        e2.svc.install_builtin("hello-world").unwrap(),
        Some((id.clone(), true))
    );

    // The one file runs and explains itself.
    let m = e.svc.prepare_rootfs(&id, "hw", &[]).unwrap();
    let lower = m[0].options[0].rsplit(':').next().unwrap().to_string();
    let files: Vec<_> = std::fs::read_dir(&lower)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("hello")]);
    let out = std::process::Command::new(Path::new(&lower).join("hello"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Hello from berth!"), "{text}");
    assert!(text.contains("To try something more ambitious"), "{text}");
}

#[test]
fn max_depth_exceeded() {
    let e = env();
    let mut readers: Vec<&[u8]> = vec![&[][..]; MAX_LAYERS + 1];
    let mut refs: Vec<&mut dyn Read> = readers.iter_mut().map(|r| r as &mut dyn Read).collect();
    let err = e
        .svc
        .create_image(None, ConfigFile::for_host(now_rfc3339()), &mut refs, None)
        .unwrap_err();
    assert_eq!(err.to_string(), "max depth exceeded");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn multi_layer_image_with_whiteout() {
    require_root!();
    let e = env();
    let l1 = rootfs_tar(&[("keep", b"1"), ("gone", b"2")]);
    let l2 = rootfs_tar(&[(".wh.gone", b""), ("added", b"3")]);
    let mut r1: &[u8] = &l1;
    let mut r2: &[u8] = &l2;
    let id = e
        .svc
        .create_image(
            None,
            ConfigFile::for_host(now_rfc3339()),
            &mut [&mut r1, &mut r2],
            Some("multi"),
        )
        .unwrap();
    let layers = e.db.image_layers(&id).unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[1].parent_chain_id.as_deref(),
        Some(layers[0].chain_id.as_str())
    );
    let m = e.svc.prepare_rootfs("multi", "c", &[]).unwrap();
    let lower = m[0].options[0].strip_prefix("lowerdir=").unwrap();
    // Below the container's init layer, the image's layers, top first.
    let dirs: Vec<&str> = lower.split(':').skip(1).collect();
    assert_eq!(dirs.len(), 2);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(Path::new(dirs[0]).join("gone"))
        .unwrap()
        .file_type()
        .is_char_device());
    let v = e.svc.inspect_json("multi").unwrap();
    assert_eq!(v["GraphDriver"]["Data"]["LowerDir"], dirs[1]);
}

#[test]
fn reopen_cleans_orphans() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    let svc = ImageService::open(dir.path(), db.clone()).unwrap();
    let id = import(&svc, &rootfs_tar(&[("f", b"x")]), Some("keep"), &[]).unwrap();
    svc.prepare_rootfs(&id, "known", &[]).unwrap();
    svc.prepare_rootfs(&id, "unknown", &[]).unwrap();
    // A crash while making a container's init layer.
    svc.snapshots.prepare("half-init-prepare", None).unwrap();
    ctr(&db, "known", &id);
    // A crash mid-import: an extract snapshot and a stray committed one, a stray blob.
    svc.snapshots.prepare("extract-1-1", None).unwrap();
    svc.snapshots.prepare("x", None).unwrap();
    svc.snapshots.commit("sha256:stray", "x").unwrap();
    svc.content.write_blob(b"stray").unwrap();
    drop(svc);
    let svc = ImageService::open(dir.path(), db).unwrap();
    let keys: Vec<String> = svc
        .snapshots
        .list()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&"known".to_string()));
    let layer = svc.db.image_layers(&id).unwrap().pop().unwrap().snapshot_key;
    assert!(keys.contains(&shared_init_key(Some(&layer))), "{keys:?}");
    assert_eq!(svc.content.list().unwrap().len(), 2, "config + layer");
    assert_eq!(svc.resolve("keep").unwrap().id, id);
}
