//! `docker diff` from an overlay upper dir against its lower layers.

use std::fs;
use std::path::{Path, PathBuf};

use berth_snapshot::{changes, Change, ChangeKind};

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

fn whiteout(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
}

fn opaque(p: &Path) {
    rustix::fs::setxattr(p, "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Two lower layers and an upper dir written as overlay would have.
fn overlay_dirs() -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
    let t = tempfile::tempdir().unwrap();
    let (l1, l2, up) = (t.path().join("l1"), t.path().join("l2"), t.path().join("up"));
    for f in ["a", "dir/x", "dir/y", "keep/k", "opq/o1", "opq/sub/o2", "gone/g"] {
        write(&l1.join(f), b"lower");
    }
    write(&l2.join("dir/z"), b"l2");
    fs::create_dir_all(&l2).unwrap();
    whiteout(&l2.join("gone")); // deleted by layer 2: not in the lower view
                                // The container: modified /a, added /n and /newdir/f, removed /dir/x, added /keep/added,
                                // replaced /opq (rm -rf + mkdir: opaque) with /opq/new, re-created /gone.
    write(&up.join("a"), b"changed");
    write(&up.join("n"), b"new");
    write(&up.join("newdir/f"), b"new");
    fs::create_dir_all(up.join("dir")).unwrap();
    whiteout(&up.join("dir/x"));
    write(&up.join("keep/added"), b"new");
    write(&up.join("opq/new"), b"new");
    opaque(&up.join("opq"));
    write(&up.join("gone/g2"), b"new");
    (t, up, vec![l2, l1])
}

#[test]
fn diff_reports_docker_changes() {
    require_root!();
    let (_t, up, lowers) = overlay_dirs();
    let got = changes(&up, &lowers).unwrap();
    let want: Vec<(&str, ChangeKind)> = vec![
        ("/a", ChangeKind::Modified),
        ("/dir", ChangeKind::Modified),
        ("/dir/x", ChangeKind::Deleted),
        ("/gone", ChangeKind::Added),
        ("/gone/g2", ChangeKind::Added),
        ("/keep", ChangeKind::Modified),
        ("/keep/added", ChangeKind::Added),
        ("/n", ChangeKind::Added),
        ("/newdir", ChangeKind::Added),
        ("/newdir/f", ChangeKind::Added),
        ("/opq", ChangeKind::Modified),
        ("/opq/new", ChangeKind::Added),
        ("/opq/o1", ChangeKind::Deleted),
        ("/opq/sub", ChangeKind::Deleted),
    ];
    let want: Vec<Change> = want
        .into_iter()
        .map(|(p, k)| Change {
            path: p.into(),
            kind: k,
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        serde_json::to_string(&got[0]).unwrap(),
        r#"{"Path":"/a","Kind":0}"#
    );
    assert_eq!(ChangeKind::Deleted.letter(), 'D');
}

#[test]
fn diff_sorts_component_wise() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let up = t.path().join("up");
    write(&up.join("a/b"), b"");
    write(&up.join("a.txt"), b"");
    let got: Vec<String> = changes(&up, &[]).unwrap().into_iter().map(|c| c.path).collect();
    assert_eq!(got, vec!["/a", "/a/b", "/a.txt"]);
}
