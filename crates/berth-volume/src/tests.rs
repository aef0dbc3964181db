use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn store() -> (tempfile::TempDir, VolumeStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_in_memory().unwrap();
    let s = VolumeStore::open(dir.path(), db).unwrap();
    (dir, s)
}

fn named(name: &str) -> CreateOptions {
    CreateOptions {
        name: Some(name.into()),
        ..Default::default()
    }
}

#[test]
fn create_is_idempotent_and_keeps_the_first_labels() {
    let (_d, s) = store();
    let mut o = named("v1");
    o.labels.insert("x".into(), "y".into());
    let (v, made) = s.create(o).unwrap();
    assert!(made);
    assert_eq!(v.labels.as_ref().unwrap()["x"], "y");
    assert!(v.created_at.ends_with('Z') && !v.created_at.contains('.'));
    let data = Path::new(&v.mountpoint);
    assert!(data.ends_with("volumes/v1/_data"));
    assert_eq!(
        std::fs::metadata(data).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let mut again = named("v1");
    again.labels.insert("x".into(), "z".into());
    let (v2, made) = s.create(again).unwrap();
    assert!(!made);
    assert_eq!(v2, v);
}

#[test]
fn anonymous_volume_gets_a_hex_name() {
    let (_d, s) = store();
    let (v, _) = s
        .create(CreateOptions {
            anonymous: true,
            ..Default::default()
        })
        .unwrap();
    assert!(berth_types::id::is_full_id(&v.name));
    assert!(v.anonymous);
    assert!(v.labels.is_none() && v.options.is_none());
}

#[test]
fn bad_names_and_options_are_refused_with_docker_messages() {
    let (_d, s) = store();
    let e = s.create(named("a/b")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e
        .to_string()
        .starts_with("create a/b: \"a/b\" includes invalid characters for a local volume name"));
    let mut o = named("v2");
    o.options.insert("bogus".into(), "1".into());
    assert_eq!(
        s.create(o).unwrap_err().to_string(),
        "create v2: invalid option key: \"bogus\""
    );
    let mut o = named("v3");
    o.driver = "foo".into();
    let e = s.create(o).unwrap_err();
    assert_eq!(
        e.to_string(),
        "create v3: error looking up volume plugin foo: plugin \"foo\" not found"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(s.list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(s.root()).unwrap().count(), 0);
}

#[test]
fn remove_takes_record_and_files() {
    let (_d, s) = store();
    let (v, _) = s.create(named("gone")).unwrap();
    std::fs::write(Path::new(&v.mountpoint).join("f"), "x").unwrap();
    assert_eq!(s.size("gone"), 1);
    s.remove("gone").unwrap();
    assert!(!s.root().join("gone").exists());
    assert_eq!(s.get("gone").unwrap_err().to_string(), "get gone: no such volume");
    assert!(matches!(s.remove("gone"), Err(VolumeError::NotFound { .. })));
}

#[test]
fn check_finishes_removals_and_reports_orphan_dirs() {
    let (_d, s) = store();
    s.create(named("half")).unwrap();
    s.db.mark_volume_removing("half").unwrap();
    std::fs::create_dir_all(s.root().join("orphan/_data")).unwrap();
    std::fs::create_dir_all(s.root().join("kept/_data")).unwrap();
    std::fs::write(s.root().join("kept/_data/x"), "data").unwrap();
    let found = s.check(true).unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(!s.root().join("half").exists());
    assert!(!s.root().join("orphan").exists());
    assert!(s.root().join("kept/_data/x").exists());
    assert!(s.db.volume("half").unwrap().is_none());
    assert_eq!(s.check(true).unwrap().len(), 1);
}

#[test]
fn copy_up_keeps_modes_and_owners_and_stays_confined() {
    let (d, s) = store();
    let root = d.path().join("rootfs");
    std::fs::create_dir_all(root.join("srv/data/sub")).unwrap();
    std::fs::write(root.join("srv/data/sub/f"), "hello").unwrap();
    std::fs::set_permissions(root.join("srv/data"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(
        root.join("srv/data/sub/f"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    // A symlink out of the root resolves inside it.
    std::os::unix::fs::symlink("/srv", root.join("link")).unwrap();
    let owner = rustix::process::geteuid().is_root();
    if owner {
        std::os::unix::fs::lchown(root.join("srv/data/sub/f"), Some(33), Some(50)).unwrap();
        std::os::unix::fs::lchown(root.join("srv/data"), Some(33), Some(33)).unwrap();
    }
    let (v, _) = s.create(named("cu")).unwrap();
    let data = Path::new(&v.mountpoint);
    assert!(copy_up(&root, "/link/data", data).unwrap());
    assert_eq!(std::fs::read_to_string(data.join("sub/f")).unwrap(), "hello");
    let f = std::fs::metadata(data.join("sub/f")).unwrap();
    assert_eq!(f.mode() & 0o7777, 0o640);
    assert_eq!(std::fs::metadata(data).unwrap().mode() & 0o7777, 0o750);
    if owner {
        assert_eq!((f.uid(), f.gid()), (33, 50));
        assert_eq!(std::fs::metadata(data).unwrap().uid(), 33);
    }
    // Not empty any more: a second copy-up does nothing.
    std::fs::write(root.join("srv/data/new"), "x").unwrap();
    assert!(!copy_up(&root, "/srv/data", data).unwrap());
    assert!(!data.join("new").exists());
    // Nothing in the image there: nothing to copy.
    let (v2, _) = s.create(named("cu2")).unwrap();
    assert!(!copy_up(&root, "/nope", Path::new(&v2.mountpoint)).unwrap());
}
