//! What `info` says about the storage driver (`DriverStatus`), measured on the data root the way
//! dockerd's overlay2 driver measures it — never constants.
//!
//! - **Backing Filesystem**: `statfs` of the data root, named as dockerd names filesystem magics
//!   (`extfs`, `xfs`, `btrfs`, …; `<unknown>` otherwise).
//! - **Supports d_type**: a file made in a scratch directory is listed with `getdents`, and its
//!   entry must carry a type (overlay needs it).
//! - **Using metacopy** / **Native Overlay Diff**: a scratch overlay mounted with the options berth
//!   mounts containers with (`lowerdir,upperdir,workdir`, kernel defaults otherwise); a lower
//!   file's mode is changed and a lower directory renamed through it. A metacopy xattr on the
//!   copied-up file means metacopy is on; a redirect xattr on the renamed directory means the upper
//!   dir no longer tells the changes by itself, so berth's diff and commit (which read the upper dir,
//!   the "native" way) would miss them.
//! - **userxattr**: berth never mounts with `userxattr` (it runs as root, with `trusted.*`).
//!
//! The probe runs once per daemon, in `<data-root>/check-overlayfs-support-<pid>`, which it removes
//! (leftovers of a crashed probe are removed first).

use std::path::Path;
use std::sync::OnceLock;

use berth_types::Mount;

static STATUS: OnceLock<Vec<Vec<String>>> = OnceLock::new();

const PROBE_PREFIX: &str = "check-overlayfs-support-";

/// `DriverStatus` for `info`, measured once.
pub(crate) fn driver_status(data_root: &Path) -> Vec<Vec<String>> {
    STATUS.get_or_init(|| measure(data_root)).clone()
}

fn measure(data_root: &Path) -> Vec<Vec<String>> {
    let row = |k: &str, v: String| vec![k.to_string(), v];
    let mut rows = vec![row("Backing Filesystem", backing_fs(data_root).to_string())];
    remove_leftovers(data_root);
    let dir = data_root.join(format!("{PROBE_PREFIX}{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() {
        if let Some(d_type) = supports_d_type(&dir) {
            rows.push(row("Supports d_type", d_type.to_string()));
        }
        // Omitted, rather than guessed, when the probe cannot run.
        if let Some((metacopy, native)) = overlay_probe(&dir) {
            rows.push(row("Using metacopy", metacopy.to_string()));
            rows.push(row("Native Overlay Diff", native.to_string()));
        }
        remove_probe(&dir);
    }
    rows.push(row("userxattr", "false".to_string()));
    rows
}

/// dockerd's names for filesystem magics (`graphdriver.FsNames`), the common ones.
fn backing_fs(path: &Path) -> &'static str {
    let Ok(st) = rustix::fs::statfs(path) else {
        return "<unknown>";
    };
    match st.f_type as u64 {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x6969 => "nfs",
        0x5265_4973 => "reiserfs",
        0x7372_7279 => "ramfs",
        0x7371_7368 => "squashfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "v9fs",
        _ => "<unknown>",
    }
}

/// Whether `getdents` reports the type of a fresh file in `dir` (dockerd's `fs.SupportsDType`).
fn supports_d_type(dir: &Path) -> Option<bool> {
    let sub = dir.join("d_type");
    std::fs::create_dir(&sub).ok()?;
    std::fs::write(sub.join("file"), b"").ok()?;
    let fd = rustix::fs::open(
        &sub,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let mut d = rustix::fs::Dir::read_from(&fd).ok()?;
    let found = d
        .by_ref()
        .flatten()
        .find(|e| e.file_name().to_bytes() == b"file")?;
    Some(found.file_type() != rustix::fs::FileType::Unknown)
}

/// Mounts a scratch overlay as berth mounts containers (two lowers) and reports (metacopy in
/// use, the upper dir alone tells the changes) — dockerd's `doesSupportNativeDiff` and
/// `usingMetacopy`.
fn overlay_probe(dir: &Path) -> Option<(bool, bool)> {
    let p = |s: &str| dir.join(s);
    for d in ["l1/d", "l1/d1", "l2/d", "upper", "work", "merged"] {
        std::fs::create_dir_all(p(d)).ok()?;
    }
    std::fs::write(p("l1/file"), b"x").ok()?;
    rustix::fs::setxattr(
        p("l2/d"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .ok()?;
    let mount = Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={}:{}", p("l2").display(), p("l1").display()),
            format!("upperdir={}", p("upper").display()),
            format!("workdir={}", p("work").display()),
        ],
    };
    berth_sys::mount::mount_all(&[mount], &p("merged")).ok()?;
    let probed = (|| {
        use std::os::unix::fs::PermissionsExt;
        // Copying up an opaque directory must not copy its opaque flag (kernels before 4.8 did).
        std::fs::write(p("merged/d/f"), b"").ok()?;
        let opaque_copied = xattr(&p("upper/d"), "trusted.overlay.opaque").as_deref() == Some(b"y");
        // A renamed lower directory: EXDEV without redirect_dir; with it, a redirect xattr that
        // the upper dir alone does not explain.
        let redirect = match std::fs::rename(p("merged/d1"), p("merged/d2")) {
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => false,
            Err(_) => return None,
            Ok(()) => xattr(&p("upper/d2"), "trusted.overlay.redirect").is_some(),
        };
        // A mode change copies up only the metadata under metacopy.
        std::fs::set_permissions(p("merged/file"), std::fs::Permissions::from_mode(0o600)).ok()?;
        let metacopy = xattr(&p("upper/file"), "trusted.overlay.metacopy").is_some();
        Some((metacopy, !opaque_copied && !redirect && !metacopy))
    })();
    let _ = berth_sys::mount::unmount(&p("merged"));
    probed
}

fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    Some(buf[..n].to_vec())
}

fn remove_probe(dir: &Path) {
    let _ = berth_sys::mount::unmount(&dir.join("merged"));
    let _ = std::fs::remove_dir_all(dir);
}

fn remove_leftovers(data_root: &Path) {
    let Ok(rd) = std::fs::read_dir(data_root) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(PROBE_PREFIX) {
            remove_probe(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_status_is_measured_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let rows = measure(d.path());
        let get = |k: &str| rows.iter().find(|r| r[0] == k).map(|r| r[1].clone());
        assert_eq!(get("Backing Filesystem").as_deref(), Some(backing_fs(d.path())));
        assert_eq!(get("userxattr").as_deref(), Some("false"));
        if rustix::process::geteuid().is_root() {
            assert!(get("Supports d_type").is_some());
            assert!(get("Native Overlay Diff").is_some(), "{rows:?}");
        }
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "the probe left files"
        );
    }
}
