//! Crash-consistency regressions of the image service: store errors abort, failures leave
//! nothing, and `check` finds what is wrong.

use berth_meta::Db;
use berth_snapshot::Snapshotter;

use super::tests::{ctr, env, import, never, rootfs_tar};
use super::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
    };
}

fn check(svc: &ImageService, verify_blobs: bool, repair: bool) -> Vec<Finding> {
    svc.check(CheckOptions { verify_blobs, repair }).unwrap()
}

/// The rmi path used to read a failed layer query as "no layers" and delete blobs other images
/// share. A store error must abort the removal and delete nothing.
#[test]
fn rmi_aborts_on_a_store_error_and_deletes_nothing() {
    require_root!();
    let e = env();
    let base = rootfs_tar(&[("shared", b"base layer")]);
    let a = import(&e.svc, &base, Some("a"), &[]).unwrap();
    let b = import(&e.svc, &base, Some("b"), &["ENV X=1"]).unwrap();
    assert_ne!(a, b);
    let blobs = e.svc.content.list().unwrap();
    let snaps = e.svc.snapshots.list().unwrap();
    // Break the store under the service: the layer query fails.
    let raw = rusqlite::Connection::open(e.dir.path().join("berth.db")).unwrap();
    raw.execute_batch("ALTER TABLE image_layers RENAME TO broken")
        .unwrap();
    let err = e.svc.remove(&a, true, &never).unwrap_err();
    assert!(err.to_string().contains("database error"), "{err}");
    raw.execute_batch("ALTER TABLE broken RENAME TO image_layers")
        .unwrap();
    assert_eq!(e.svc.content.list().unwrap(), blobs, "no blob deleted");
    assert_eq!(
        e.svc.snapshots.list().unwrap().len(),
        snaps.len(),
        "no snapshot deleted"
    );
    assert_eq!(e.svc.resolve("a").unwrap().id, a);
    assert_eq!(e.svc.resolve("b").unwrap().id, b);
    assert!(check(&e.svc, true, false).is_empty());
    // And once the store answers again, rmi works and keeps what b shares.
    e.svc.remove("a", false, &never).unwrap();
    assert_eq!(e.svc.resolve("b").unwrap().id, b);
    assert!(check(&e.svc, true, false).is_empty());
}

/// A multi-layer image whose second layer fails used to leave the first layer's snapshot and
/// blob behind.
#[test]
fn multi_layer_image_whose_later_layer_fails_leaves_nothing() {
    require_root!();
    let e = env();
    let good = rootfs_tar(&[("one", b"1")]);
    let mut bad = rootfs_tar(&[("two", &[2u8; 4096])]);
    bad.truncate(700);
    let (mut g, mut b) = (&good[..], &bad[..]);
    let mut layers: Vec<&mut dyn std::io::Read> = vec![&mut g, &mut b];
    let cfg = ConfigFile::for_host(now_rfc3339());
    assert!(e.svc.create_image(None, cfg, &mut layers, Some("multi")).is_err());
    assert!(
        e.svc.snapshots.list().unwrap().is_empty(),
        "first layer's snapshot removed"
    );
    assert!(
        e.svc.content.list().unwrap().is_empty(),
        "first layer's blob removed"
    );
    assert!(e.db.layers().unwrap().is_empty());
    assert!(check(&e.svc, true, false).is_empty());
}

#[test]
fn check_names_a_corrupt_or_missing_blob_and_never_repairs_by_deleting() {
    require_root!();
    let e = env();
    let id = import(&e.svc, &rootfs_tar(&[("f", b"data")]), Some("x"), &[]).unwrap();
    assert!(check(&e.svc, true, false).is_empty());
    let layer = e.db.image_layers(&id).unwrap().remove(0);
    let d = Digest::parse(&layer.diff_id).unwrap();
    let path = e.svc.content.blob_path(&d);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let f = check(&e.svc, true, true);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].message.contains(&layer.diff_id) && f[0].message.contains("corrupt"),
        "{}",
        f[0]
    );
    assert!(!f[0].repairable && !f[0].repaired);
    assert!(path.exists(), "a corrupt blob is reported, not deleted");
    assert!(
        check(&e.svc, false, false).is_empty(),
        "start-up does not re-hash"
    );
    std::fs::remove_file(&path).unwrap();
    let f = check(&e.svc, false, true);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].message.contains("missing"), "{}", f[0]);
}

#[test]
fn check_reports_orphans_and_repair_removes_them() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    let svc = ImageService::open(dir.path(), db.clone()).unwrap();
    let id = import(&svc, &rootfs_tar(&[("f", b"x")]), Some("keep"), &[]).unwrap();
    svc.prepare_rootfs(&id, "gone-container", &[]).unwrap();
    svc.snapshots.prepare("extract-1-1", None).unwrap();
    svc.content.write_blob(b"stray").unwrap();
    std::fs::write(dir.path().join("content/ingest/half"), b"half").unwrap();
    std::fs::create_dir_all(dir.path().join("snapshots/999/fs")).unwrap();
    drop(svc);
    let ro = ImageService::open_readonly(dir.path(), db.clone()).unwrap();
    let found = check(&ro, true, false);
    // The container's rw layer, an extract snapshot, a blob, an ingest file and a snapshot
    // directory; not the init layer the image's containers share.
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found.iter().any(|f| f.message.contains("gone-container")),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|f| f.message.contains("shared-init")),
        "{found:#?}"
    );
    assert!(found.iter().all(|f| f.repairable && !f.repaired));
    assert!(
        dir.path().join("snapshots/999").exists(),
        "check without repair changes nothing"
    );
    let svc = ImageService::open_unchecked(dir.path(), db).unwrap();
    let fixed = check(&svc, true, true);
    assert_eq!(fixed.len(), 5);
    assert!(fixed.iter().all(|f| f.repaired), "{fixed:#?}");
    assert!(check(&svc, true, false).is_empty());
    assert_eq!(svc.resolve("keep").unwrap().id, id);
}

#[test]
fn containers_without_mount_points_of_their_own_share_one_init_layer_which_goes_with_the_image() {
    require_root!();
    let e = env();
    let id = import(&e.svc, &rootfs_tar(&[("f", b"x")]), Some("shared"), &[]).unwrap();
    let layer = e.db.image_layers(&id).unwrap().pop().unwrap().snapshot_key;
    let shared = shared_init_key(Some(&layer));
    let lower_of = |c: &str| e.svc.rootfs_lower_dirs(c).unwrap()[0].clone();
    e.svc.prepare_rootfs(&id, "a", &[]).unwrap();
    e.svc.prepare_volatile_rootfs(&id, "b", &[]).unwrap();
    let vol = [InitEntry::new("/data", InitKind::Dir)];
    e.svc.prepare_rootfs(&id, "c", &vol).unwrap();
    assert_eq!(lower_of("a"), lower_of("b"), "a and b share the init layer");
    assert_ne!(lower_of("a"), lower_of("c"), "c has mount points of its own");
    assert!(lower_of("a").join("etc/hosts").is_file());
    assert!(lower_of("c").join("data").is_dir() && !lower_of("a").join("data").exists());
    let keys = || -> Vec<String> {
        e.svc
            .snapshots
            .list()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert!(
        keys().contains(&shared) && keys().contains(&init_key("c")),
        "{:?}",
        keys()
    );
    for c in ["a", "b", "c"] {
        ctr(&e.db, c, &id);
    }
    assert!(check(&e.svc, false, false).is_empty());
    // Removing the containers keeps the shared layer (and a check finds nothing to remove).
    for c in ["a", "b", "c"] {
        e.svc.remove_rootfs(c).unwrap();
        e.db.delete_container(c).unwrap();
    }
    assert!(
        keys().contains(&shared) && !keys().contains(&init_key("c")),
        "{:?}",
        keys()
    );
    assert!(check(&e.svc, false, false).is_empty());
    // Removing the image takes it with the layer.
    e.svc.remove("shared", false, &never).unwrap();
    assert!(keys().is_empty(), "{:?}", keys());
}

#[test]
fn a_shared_init_layer_a_container_still_uses_outlives_rmi_f_and_goes_after_the_container() {
    require_root!();
    let e = env();
    let id = import(&e.svc, &rootfs_tar(&[("f", b"x")]), Some("used"), &[]).unwrap();
    e.svc.prepare_rootfs(&id, "u", &[]).unwrap();
    ctr(&e.db, "u", &id);
    e.svc.remove("used", true, &never).unwrap();
    assert!(e.svc.rootfs_lower_dirs("u").unwrap()[0]
        .join("etc/hosts")
        .is_file());
    e.svc.remove_rootfs("u").unwrap();
    e.db.delete_container("u").unwrap();
    // The layer and its shared init layer are orphans now; reconciliation removes both.
    let found = check(&e.svc, false, true);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(e.svc.snapshots.list().unwrap().is_empty());
}
