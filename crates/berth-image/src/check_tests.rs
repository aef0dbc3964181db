//! Crash-consistency regressions of the image service: store errors abort, failures leave
//! nothing, and `check` finds what is wrong.

use berth_meta::Db;
use berth_snapshot::Snapshotter;

use super::tests::{env, import, never, rootfs_tar};
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
    // The container's rw layer and its init layer, an extract snapshot, a blob, an ingest file
    // and a snapshot directory.
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(
        found.iter().any(|f| f.message.contains("gone-container-init")),
        "{found:#?}"
    );
    assert!(found.iter().all(|f| f.repairable && !f.repaired));
    assert!(
        dir.path().join("snapshots/999").exists(),
        "check without repair changes nothing"
    );
    let svc = ImageService::open_unchecked(dir.path(), db).unwrap();
    let fixed = check(&svc, true, true);
    assert_eq!(fixed.len(), 6);
    assert!(fixed.iter().all(|f| f.repaired), "{fixed:#?}");
    assert!(check(&svc, true, false).is_empty());
    assert_eq!(svc.resolve("keep").unwrap().id, id);
}
