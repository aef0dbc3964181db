//! The cgroup parent of a container (`HostConfig.CgroupParent`, dockerd's `--cgroup-parent`) and
//! the container's cgroup path under it.
//!
//! A parent names a place *inside* the cgroup hierarchy: `"/mygroup"` and `"mygroup"` both mean
//! `<cgroup root>/mygroup` (docker accepts either with the cgroupfs driver), `"a/b"` nests. It may
//! not leave the hierarchy: a `..` component is refused outright (not cleaned away, which would
//! silently put the container somewhere else), and so is a NUL byte. Empty and `.` components are
//! dropped. cgroupfs has no symlinks, so a parent made of plain names stays below the root.

use crate::Error;

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
}
