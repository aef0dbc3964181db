//! Crash-safe file writes and private directories, the two habits every store of berth shares.
//!
//! - [`write_atomic`]: temp file in the same directory → write → fsync → rename over the target →
//!   fsync the directory. A reader (or a crash) sees the old file or the new one, never a torn one.
//!   The temp file is created with its final mode, so there is no window at a wider mode.
//! - [`write_atomic_as`] with `durable: false`: the same without the two fsyncs, for state that dies with the
//!   host anyway (the files of a `--rm` container): a killed process still leaves the old file or
//!   the new one, but after a power loss the file may be missing or empty, so readers of such
//!   files must treat unreadable as absent (docs/design/crash-consistency.md, "Volatile state").
//! - [`create_private_dir`]: `mkdir -p` whose new directories are 0700 and an existing leaf is
//!   tightened to 0700 (dockerd's habit for its data root's private directories).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` crash-safely with permission bits `mode` (e.g. `0o600` for a file that
/// may hold secrets). The directory must exist.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_replacing(path, data, mode, true)
}

/// [`write_atomic`] when `durable`; otherwise the same without its fsyncs: atomic against a
/// crash of the process, not of the host.
pub fn write_atomic_as(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    write_replacing(path, data, mode, durable)
}

/// [`write_atomic_as`] for several files of one directory, which is fsynced once after all the
/// renames instead of once per file (when `durable`): each file is whole or absent after a
/// crash, and all are durable when this returns.
pub fn write_atomic_all(dir: &Path, files: &[(&str, &[u8], u32)], durable: bool) -> io::Result<()> {
    for (name, data, mode) in files {
        write_replacing_no_dir_sync(&dir.join(name), data, *mode, durable)?;
    }
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn write_replacing_no_dir_sync(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    write_replacing_with(path, data, mode, durable, false)
}

fn write_replacing(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    write_replacing_with(path, data, mode, durable, durable)
}

fn write_replacing_with(
    path: &Path,
    data: &[u8],
    mode: u32,
    durable: bool,
    sync_dir: bool,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; callers ask for exact bits.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, path)?;
        if sync_dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is a temp file left by an interrupted [`write_atomic`] (for start-up sweeps).
pub fn is_atomic_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Creates `path` and any missing parents with mode 0700, and sets an existing `path` to 0700.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let meta = fs::metadata(path)?;
    if meta.permissions().mode() & 0o7777 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn several_files_are_written_whole_with_their_modes_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("hosts"), b"old").unwrap();
        for durable in [true, false] {
            write_atomic_all(
                d.path(),
                &[("hostname", b"h\n", 0o644), ("hosts", b"new", 0o600)],
                durable,
            )
            .unwrap();
            assert_eq!(fs::read(d.path().join("hostname")).unwrap(), b"h\n");
            assert_eq!(fs::read(d.path().join("hosts")).unwrap(), b"new");
            assert_eq!(
                fs::metadata(d.path().join("hosts")).unwrap().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(d.path().join("hostname")).unwrap().mode() & 0o777,
                0o644
            );
            let names: Vec<_> = fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 2, "{names:?}");
        }
    }

    #[test]
    fn atomic_write_replaces_with_exact_mode_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
    }

    #[test]
    fn volatile_write_replaces_with_exact_mode_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        write_atomic_as(&p, b"new", 0o640, false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_into_a_missing_directory_fails_cleanly() {
        let d = tempfile::tempdir().unwrap();
        assert!(write_atomic(&d.path().join("no/such/file"), b"x", 0o600).is_err());
    }

    #[test]
    fn temp_names_are_recognised() {
        assert!(is_atomic_temp(".config.json.tmp-12-0"));
        assert!(!is_atomic_temp("config.json"));
    }

    #[test]
    fn private_dirs_are_0700_even_when_they_existed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        create_private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
    }
}
