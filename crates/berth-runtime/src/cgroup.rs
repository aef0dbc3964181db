//! The cgroup parent of a container (`HostConfig.CgroupParent`, dockerd's `--cgroup-parent`), the
//! container's cgroup path under it, and that path's directories on the host ([`CgroupDirs`]): the
//! one place berth turns a cgroup into a path under `/sys/fs/cgroup`, for the daemon (top, stats,
//! update, removing a parent) and the shim (freezer, OOM counter, kill, removal) alike.
//!
//! A parent names a place *inside* the cgroup hierarchy: `"/mygroup"` and `"mygroup"` both mean
//! `<cgroup root>/mygroup` (docker accepts either with the cgroupfs driver), `"a/b"` nests. It may
//! not leave the hierarchy: a `..` component is refused outright (not cleaned away, which would
//! silently put the container somewhere else), and so is a NUL byte. Empty and `.` components are
//! dropped. cgroupfs has no symlinks, so a parent made of plain names stays below the root.

use std::path::{Path, PathBuf};

use crate::Error;

/// Where the host's cgroup filesystems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cleaned parent, relative to the cgroup root (`"a/b"`, or `""` for an empty parent: the
/// caller's default applies). Refuses a parent that could leave the cgroup hierarchy.
pub fn cgroup_parent(parent: &str) -> Result<String, Error> {
    let invalid = |why: &str| {
        Error::InvalidArgument(format!(
            "invalid cgroup parent {parent:?}: {why}; the container's cgroup must stay under the cgroup root"
        ))
    };
    if parent.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut comps = Vec::new();
    for c in parent.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid("\"..\" is not allowed")),
            c => comps.push(c),
        }
    }
    Ok(comps.join("/"))
}

/// The container's cgroup path, `/<parent>/<id>` (parent `default` when `parent` is empty), as the
/// OCI spec's `cgroupsPath` has it.
pub fn cgroup_path(parent: &str, default: &str, id: &str) -> Result<String, Error> {
    let p = match cgroup_parent(parent)? {
        p if p.is_empty() => cgroup_parent(default)?,
        p => p,
    };
    Ok(if p.is_empty() {
        format!("/{id}")
    } else {
        format!("/{p}/{id}")
    })
}

/// One cgroup's directories on the host. The runtime creates a container's cgroup at the same
/// relative path in every hierarchy: `<root>/<controller>/<rel>` for each cgroup v1 controller,
/// `<root>/unified/<rel>` for the cgroup2 hierarchy of a hybrid host, `<root>/<rel>` on a pure v2
/// host (where `<root>/cgroup.controllers` exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDirs {
    root: PathBuf,
    rel: String,
    unified: bool,
}

impl CgroupDirs {
    /// The directories of `path` (`/berth/<id>` as the spec's `cgroupsPath` has it, or a parent)
    /// under [`CGROUP_ROOT`]. Refuses what [`cgroup_parent`] refuses, and the root itself.
    pub fn new(path: &str) -> Result<Self, Error> {
        Self::under(CGROUP_ROOT, path)
    }

    /// The container `id`'s cgroup under `parent` (or `default`), as [`cgroup_path`] places it.
    pub fn for_container(parent: &str, default: &str, id: &str) -> Result<Self, Error> {
        Self::new(&cgroup_path(parent, default, id)?)
    }

    /// Like [`CgroupDirs::new`] with the cgroup filesystems mounted at `root` (tests).
    pub fn under(root: impl Into<PathBuf>, path: &str) -> Result<Self, Error> {
        let rel = cgroup_parent(path)?;
        if rel.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "invalid cgroup path {path:?}: it names the cgroup root"
            )));
        }
        let root = root.into();
        let unified = root.join("cgroup.controllers").exists();
        Ok(CgroupDirs { root, rel, unified })
    }

    /// The path relative to the hierarchies' roots (`berth/<id>`).
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Whether the host has only the unified (v2) hierarchy.
    pub fn is_unified(&self) -> bool {
        self.unified
    }

    /// The directory holding `controller`'s files: [`v1`](Self::v1) on a v1 or hybrid host,
    /// [`v2`](Self::v2) on a pure v2 host.
    pub fn dir(&self, controller: &str) -> PathBuf {
        if self.unified {
            self.v2()
        } else {
            self.v1(controller)
        }
    }

    /// `<root>/<controller>/<rel>`: the directory in a v1 controller's hierarchy.
    pub fn v1(&self, controller: &str) -> PathBuf {
        self.root.join(controller).join(&self.rel)
    }

    /// `<root>/<rel>`: the directory on a pure v2 host.
    pub fn v2(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    /// The directory in every mounted hierarchy that has it: `<root>/<rel>` and `<root>/*/<rel>`.
    pub fn existing(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.v2()];
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            dirs.extend(rd.flatten().map(|e| e.path().join(&self.rel)));
        }
        dirs.retain(|d| d.is_dir());
        dirs
    }

    /// The parent directory of [`existing`](Self::existing)'s in every mounted hierarchy that
    /// has it (where a container's siblings live).
    pub fn existing_parents(&self) -> Vec<PathBuf> {
        let parent = Path::new(&self.rel).parent().unwrap_or(Path::new(""));
        // Never the hierarchies' roots, where other software's cgroups live.
        if parent.as_os_str().is_empty() {
            return Vec::new();
        }
        let mut dirs = vec![self.root.join(parent)];
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            dirs.extend(rd.flatten().map(|e| e.path().join(parent)));
        }
        dirs.retain(|d| d.is_dir() && d != &self.root);
        dirs
    }

    /// The directory in every hierarchy and the cgroups below it (a privileged container may
    /// make some), children before their parents.
    pub fn tree(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out);
                    }
                }
            }
            out.push(d.to_path_buf());
        }
        let mut out = Vec::new();
        for d in self.existing() {
            walk(&d, &mut out);
        }
        out
    }

    /// Removes the (empty) directory from every hierarchy. True when none is left; a directory
    /// still busy (tasks in it) or with children stays and makes it false.
    pub fn remove(&self) -> bool {
        Self::rmdir_all(self.existing())
    }

    /// Whether no process is left in the directory or below it, in any hierarchy (a missing
    /// directory is empty).
    pub fn is_empty(&self) -> bool {
        self.tree()
            .iter()
            .all(|d| match std::fs::read_to_string(d.join("cgroup.procs")) {
                Ok(s) => s.trim().is_empty(),
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            })
    }

    /// A container's cgroups: removes the directory and the cgroups the container made below it
    /// from every hierarchy. True when none is left; a cgroup still busy stays and makes it false.
    pub fn remove_tree(&self) -> bool {
        Self::rmdir_all(self.tree())
    }

    fn rmdir_all(dirs: Vec<PathBuf>) -> bool {
        let mut ok = true;
        for d in dirs {
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => ok = false,
            }
        }
        ok
    }

    /// Reads `file` of `controller`'s directory, trimmed; `None` if it cannot be read.
    pub fn read(&self, controller: &str, file: &str) -> Option<String> {
        read_trimmed(&self.dir(controller).join(file))
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative_parents_name_the_same_place() {
        assert_eq!(cgroup_parent("/mygroup").unwrap(), "mygroup");
        assert_eq!(cgroup_parent("mygroup").unwrap(), "mygroup");
        assert_eq!(cgroup_parent("/a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(cgroup_parent("").unwrap(), "");
        assert_eq!(cgroup_parent("/").unwrap(), "");
        assert_eq!(cgroup_parent("system.slice").unwrap(), "system.slice");
        // Names that merely contain dots are names.
        assert_eq!(cgroup_parent("a..b/...").unwrap(), "a..b/...");
    }

    #[test]
    fn parents_that_climb_out_of_the_hierarchy_are_refused() {
        for p in [
            "..",
            "../../x",
            "/../x",
            "a/../../b",
            "a/..",
            "/sys/fs/cgroup/../../etc",
            "a\0b",
        ] {
            let e = cgroup_parent(p).unwrap_err();
            assert_eq!(e.kind(), berth_types::ErrorKind::InvalidArgument, "{p:?}");
            assert!(e.to_string().starts_with("invalid cgroup parent"), "{e}");
        }
        // Even `a/..`, which cleans to the root: refused, not reinterpreted.
        assert!(cgroup_path("a/..", "berth", "id").is_err());
    }

    #[test]
    fn the_container_path_is_under_the_parent_or_the_default() {
        assert_eq!(cgroup_path("/x/y", "berth", "abc").unwrap(), "/x/y/abc");
        assert_eq!(cgroup_path("", "berth", "abc").unwrap(), "/berth/abc");
        assert_eq!(cgroup_path("/", "/berth/", "abc").unwrap(), "/berth/abc");
        assert!(cgroup_path("", "../x", "abc").is_err());
    }

    fn fake_root(unified: bool) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        if unified {
            std::fs::write(d.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        } else {
            for c in ["memory", "pids", "freezer", "unified"] {
                std::fs::create_dir(d.path().join(c)).unwrap();
            }
        }
        d
    }

    #[test]
    fn dirs_follow_the_host_layout() {
        let v1 = fake_root(false);
        let c = CgroupDirs::under(v1.path(), "/berth/abc").unwrap();
        assert!(!c.is_unified());
        assert_eq!(c.rel(), "berth/abc");
        assert_eq!(c.dir("memory"), v1.path().join("memory/berth/abc"));
        assert_eq!(c.v2(), v1.path().join("berth/abc"));
        let v2 = fake_root(true);
        let c = CgroupDirs::under(v2.path(), "berth/abc").unwrap();
        assert!(c.is_unified());
        assert_eq!(c.dir("memory"), v2.path().join("berth/abc"));
        assert_eq!(c.v1("freezer"), v2.path().join("freezer/berth/abc"));
        assert_eq!(
            CgroupDirs::for_container("/x/", "berth", "abc").unwrap().rel(),
            "x/abc"
        );
    }

    #[test]
    fn dirs_refuse_the_root_and_escaping_paths() {
        for p in ["", "/", "/./", "../x", "a/../.."] {
            assert!(CgroupDirs::new(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn remove_takes_the_dir_out_of_every_hierarchy_and_reports_busy_ones() {
        let root = fake_root(false);
        let c = CgroupDirs::under(root.path(), "p/abc").unwrap();
        for h in ["memory", "pids", "unified"] {
            std::fs::create_dir_all(root.path().join(h).join("p/abc")).unwrap();
        }
        assert_eq!(c.existing().len(), 3);
        assert!(c.remove());
        assert!(c.existing().is_empty());
        assert!(root.path().join("memory/p").is_dir(), "the parent stays");
        // A directory that cannot be removed (here: not empty) makes remove report false.
        std::fs::create_dir_all(root.path().join("pids/p/abc/child")).unwrap();
        assert!(!c.remove());
        assert_eq!(c.existing(), vec![root.path().join("pids/p/abc")]);
        // A container's own cgroups go with their children, which come first.
        std::fs::create_dir_all(root.path().join("pids/p/abc/child/grandchild")).unwrap();
        assert_eq!(
            c.tree(),
            vec![
                root.path().join("pids/p/abc/child/grandchild"),
                root.path().join("pids/p/abc/child"),
                root.path().join("pids/p/abc"),
            ]
        );
        assert!(c.remove_tree());
        assert!(c.existing().is_empty());
        assert!(root.path().join("pids/p").is_dir(), "the parent stays");
    }
}
