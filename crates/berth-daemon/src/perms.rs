//! Who may read what under the data root (the CVE-2021-41091 class: a container's files, env and
//! setuid binaries must not be reachable by other host users).
//!
//! ```text
//! <data-root>/                 0700  every private directory below is 0700 as well
//!   berth.db{,-wal,-shm}       0600  (berth-meta)
//!   engine-id                  0600
//!   content/                   0700  blobs/sha256/…, ingest/ (berth-content)
//!   snapshots/                 0700  <n>/ 0700; <n>/fs keeps the layer's root mode (berth-snapshot)
//!   seccomp/                   0700  compiled profiles
//!   bin/                       0700  berth-init 0755
//!   containers/                0700
//!     <id>/                    0700
//!       config.json shim.json  0600  the OCI spec holds the container's env (passwords)
//!       <id>-json.log*         0600  written by the shim
//!       exit.json runtime.log  0600  written by the shim
//!       exec-*.json            0600  an exec's process (env), written by the shim
//!       runtime-spec/          0700  config.json 0600
//!       hostname hosts resolv.conf 0644
//!       rootfs/                      the overlay mount point
//! <exec-root>/shims/           0700
//! ```
//!
//! # What a container still sees
//! The files bind-mounted into containers (`hostname`, `hosts`, `resolv.conf`, `bin/berth-init`)
//! stay world-readable (0644, 0755): the runtime resolves their host paths as root when it sets
//! the mounts up, and inside the container a non-root user reaches them through the container's
//! own tree, where only the file's mode is checked, not the modes of the host directories above
//! it. Overlay accesses its lower and upper directories with the credentials of the mounter (the
//! shim, root), so the 0700 snapshot directories do not hide a container's own files from it.
//!
//! # Existing data roots
//! [`prepare`] runs at every start and tightens what an older berthd created wider.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_sys::fs::create_private_dir;

use crate::config::Config;

/// Mode of files that may hold secrets.
pub(crate) const PRIVATE_FILE: u32 = 0o600;
/// Mode of the files bind-mounted into containers, which any user in the container must read.
pub(crate) const CONTAINER_VISIBLE_FILE: u32 = 0o644;

/// Creates the daemon's own directories with their modes and tightens existing ones (and the
/// secret files of existing containers).
pub(crate) fn prepare(config: &Config) -> io::Result<()> {
    let root = &config.data_root;
    create_private_dir(root)?;
    for dir in ["containers", "seccomp", "bin"] {
        create_private_dir(&root.join(dir))?;
    }
    create_private_dir(&config.exec_root.join("shims"))?;
    tighten(&root.join("engine-id"), PRIVATE_FILE)?;
    for entry in std::fs::read_dir(root.join("containers"))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            tighten_bundle(&entry.path())?;
        }
    }
    Ok(())
}

/// The bundle directory and the files in it that may hold secrets. Never enters `rootfs/`.
fn tighten_bundle(bundle: &Path) -> io::Result<()> {
    tighten(bundle, 0o700)?;
    tighten(&bundle.join("runtime-spec"), 0o700)?;
    tighten(&bundle.join("runtime-spec/config.json"), PRIVATE_FILE)?;
    tighten(&bundle.join("runtime"), 0o700)?;
    for entry in std::fs::read_dir(bundle)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if is_private_file(&name) {
            tighten(&bundle.join(&*name), PRIVATE_FILE)?;
        }
    }
    Ok(())
}

/// Files of a bundle that may carry the container's env or output.
fn is_private_file(name: &str) -> bool {
    matches!(name, "config.json" | "shim.json" | "exit.json" | "runtime.log")
        || name.contains("-json.log")
        || (name.starts_with("exec-") && name.ends_with(".json"))
}

/// Sets `path`'s permission bits to `mode` when it is wider; a missing path or a symlink is left
/// alone.
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn an_existing_world_readable_data_root_is_tightened() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("data");
        let bundle = root.join("containers/abc");
        std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
        std::fs::create_dir_all(bundle.join("runtime-spec")).unwrap();
        for f in [
            "config.json",
            "shim.json",
            "abc-json.log",
            "abc-json.log.1",
            "exit.json",
            "exec-1-2.json",
            "runtime-spec/config.json",
            "hosts",
            "rootfs/etc/passwd",
        ] {
            std::fs::write(bundle.join(f), "x").unwrap();
            std::fs::set_permissions(bundle.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::write(root.join("engine-id"), "id").unwrap();
        for p in [&root, &root.join("containers"), &bundle] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = Config {
            data_root: root.clone(),
            exec_root: d.path().join("exec"),
            cgroup_parent: "berth".into(),
            shim_path: "/nonexistent".into(),
            network: Default::default(),
            registry: Default::default(),
            debug: false,
        };
        prepare(&config).unwrap();
        for dir in [
            "",
            "containers",
            "containers/abc",
            "seccomp",
            "bin",
            "containers/abc/runtime-spec",
        ] {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
        assert_eq!(mode(&d.path().join("exec/shims")), 0o700);
        assert_eq!(mode(&root.join("engine-id")), 0o600);
        for f in [
            "config.json",
            "shim.json",
            "abc-json.log",
            "abc-json.log.1",
            "exit.json",
            "exec-1-2.json",
            "runtime-spec/config.json",
        ] {
            assert_eq!(mode(&bundle.join(f)), 0o600, "{f}");
        }
        // Bind-mounted into the container: stays readable; the rootfs is the container's own.
        assert_eq!(mode(&bundle.join("hosts")), 0o644);
        assert_eq!(mode(&bundle.join("rootfs/etc/passwd")), 0o644);
    }

    #[test]
    fn tighten_never_widens_and_skips_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        tighten(&f, 0o600).unwrap();
        assert_eq!(mode(&f), 0o400);
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten(&l, 0o600).unwrap();
        assert_eq!(mode(&f), 0o644);
        tighten(&d.path().join("missing"), 0o600).unwrap();
    }
}
