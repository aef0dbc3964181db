//! The container's own mounts (binds, volumes, tmpfs) → OCI spec mounts.
//!
//! A bind or volume becomes `rbind` with its propagation (`rprivate` by default) and `ro` when
//! read-only (the runtime remounts it read-only); a tmpfs gets docker's `noexec,nosuid,nodev`
//! followed by its own options (`size=…`, `mode=…`, a later `exec` wins). A mount on the target
//! of one of the defaults (`/dev/shm`, …) replaces that default, as in docker. Mounts are ordered
//! by the depth of their target so a parent is mounted before what is mounted inside it.

use std::path::{Path, PathBuf};

use berth_types::{MountPoint, MountType};
use oci_spec::runtime::Mount;

/// Docker's options for every tmpfs mount, before the user's.
const TMPFS_DEFAULTS: &[&str] = &["noexec", "nosuid", "nodev"];

fn depth(target: &str) -> usize {
    Path::new(target).components().count()
}

/// The OCI mount for one of the container's mounts.
pub(crate) fn oci_mount(m: &MountPoint) -> Mount {
    let mut out = Mount::default();
    out.set_destination(PathBuf::from(&m.target));
    match m.kind {
        MountType::Bind | MountType::Volume => {
            let mut opts = vec!["rbind".to_string(), m.propagation().to_string()];
            if m.read_only {
                opts.push("ro".into());
            }
            opts.extend(m.options.iter().cloned());
            out.set_typ(Some("bind".into()));
            out.set_source(Some(PathBuf::from(&m.source)));
            out.set_options(Some(opts));
        }
        MountType::Tmpfs => {
            let mut opts: Vec<String> = TMPFS_DEFAULTS.iter().map(|s| s.to_string()).collect();
            opts.extend(m.options.iter().cloned());
            if m.read_only {
                opts.push("ro".into());
            }
            out.set_typ(Some("tmpfs".into()));
            out.set_source(Some(PathBuf::from("tmpfs")));
            out.set_options(Some(opts));
        }
    }
    out
}

/// Appends `mounts` to the defaults in `v`, dropping a default whose target a user mount takes.
pub(crate) fn add_user_mounts(v: &mut Vec<Mount>, mounts: &[MountPoint]) {
    v.retain(|d| {
        !mounts
            .iter()
            .any(|m| Path::new(&m.target) == d.destination().as_path())
    });
    let mut sorted: Vec<&MountPoint> = mounts.iter().collect();
    // Stable: equal depths keep the daemon's order.
    sorted.sort_by_key(|m| depth(&m.target));
    v.extend(sorted.into_iter().map(oci_mount));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_gets_propagation_and_ro() {
        let m = MountPoint {
            propagation: "rslave".into(),
            ..MountPoint::bind("/h", "/c", true)
        };
        let o = oci_mount(&m);
        assert_eq!(o.typ().as_deref(), Some("bind"));
        assert_eq!(
            o.options().as_ref().unwrap(),
            &vec!["rbind".to_string(), "rslave".into(), "ro".into()]
        );
    }

    #[test]
    fn tmpfs_gets_docker_defaults_then_its_options() {
        let m = MountPoint {
            kind: MountType::Tmpfs,
            target: "/t".into(),
            options: vec!["size=1m".into(), "mode=700".into()],
            ..Default::default()
        };
        let o = oci_mount(&m);
        assert_eq!(o.typ().as_deref(), Some("tmpfs"));
        assert_eq!(
            o.options().as_ref().unwrap(),
            &vec![
                "noexec".to_string(),
                "nosuid".into(),
                "nodev".into(),
                "size=1m".into(),
                "mode=700".into()
            ]
        );
    }

    #[test]
    fn user_mount_replaces_default_and_parents_come_first() {
        let mut v = vec![Mount::default()];
        v[0].set_destination("/dev/shm".into());
        add_user_mounts(
            &mut v,
            &[
                MountPoint::bind("/a", "/data/sub", false),
                MountPoint::bind("/b", "/data", false),
                MountPoint {
                    kind: MountType::Tmpfs,
                    target: "/dev/shm".into(),
                    ..Default::default()
                },
            ],
        );
        let dests: Vec<_> = v.iter().map(|m| m.destination().clone()).collect();
        assert_eq!(
            dests,
            vec![PathBuf::from("/data"), "/data/sub".into(), "/dev/shm".into()]
        );
    }
}
