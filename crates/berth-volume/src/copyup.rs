//! Copy-up: the first mount of an empty volume gets the image's content at the mount's target
//! (docker's `CopyImagePathContent`), owners, modes, times and xattrs kept, and the directory's
//! own owner and mode given to `_data`.
//!
//! The source path is resolved inside the container's root (`RESOLVE_IN_ROOT`), the tree is read
//! with no-follow fds and unpacked with the confined writer of layer apply, so a symlink in the
//! image can neither make the copy read from the host nor write outside the volume.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::VolumeError;

/// Copies the directory `path` of the container root mounted at `rootfs` into the volume
/// directory `data` when `data` is empty. Returns whether anything was copied (nothing when the
/// image has no directory there or the volume already has content).
pub fn copy_up(rootfs: &Path, path: &str, data: &Path) -> Result<bool, VolumeError> {
    let has_content = std::fs::read_dir(data)
        .map_err(|err| VolumeError::Io {
            op: "read",
            path: data.display().to_string(),
            err,
        })?
        .next()
        .is_some();
    if has_content {
        return Ok(false);
    }
    let src = match berth_archive::open_in_root(rootfs, path) {
        Ok(f) => f,
        Err(_) => return Ok(false),
    };
    let md = src.metadata().map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    if !md.is_dir() {
        return Ok(false);
    }
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&src));
    let (reader, mut writer) = std::io::pipe().map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    let export = std::thread::spawn(move || {
        let r = berth_archive::export_tar(Path::new(&fd_path), &mut writer);
        drop(writer);
        drop(src);
        r
    });
    let extracted = berth_archive::extract_tar(data, reader);
    let exported = export
        .join()
        .map_err(|_| VolumeError::CopyUp("the reader panicked".into()))?;
    exported.map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    extracted.map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    let dir = std::fs::File::open(data).map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    rustix::fs::fchown(
        dir.as_fd(),
        Some(rustix::fs::Uid::from_raw(md.uid())),
        Some(rustix::fs::Gid::from_raw(md.gid())),
    )
    .map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    rustix::fs::fchmod(dir.as_fd(), rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777))
        .map_err(|e| VolumeError::CopyUp(e.to_string()))?;
    Ok(true)
}
