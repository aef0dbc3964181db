//! `--cgroup-favordynmods` (daemon.json `cgroup-favordynmods`): an explicit, host-wide setting.
//!
//! Moving a process into a cgroup takes the kernel's `cgroup_threadgroup_rwsem` for writing, and
//! a writer after a quiet spell waits for an RCU grace period (several ms on this 2-core VM,
//! about 1 ms when migrations come back to back). Every container start migrates its first
//! process into each hierarchy, so a `run` that follows a pause pays that wait. The cgroup2
//! mount option `favordynmods` keeps the semaphore in its writer-friendly mode for every
//! hierarchy (at a small cost to fork and exit), which removes the wait. berth never changes the
//! host on its own: this option asks for it, berthd logs what it did, and the setting stays after
//! berthd stops (undo it with a remount without the option).

use std::path::PathBuf;

/// What [`favor_dynmods`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The cgroup2 mount at this path already had the option.
    AlreadySet(PathBuf),
    /// berthd remounted the cgroup2 mount at this path with the option.
    Set(PathBuf),
    /// No cgroup2 hierarchy is mounted (pure cgroup v1): nothing to set.
    NoCgroup2,
}

/// The cgroup2 mount point and its superblock options, from `/proc/self/mountinfo` text.
pub(crate) fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, Vec<String>)> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split(' ');
        if r.next()? != "cgroup2" {
            return None;
        }
        let _source = r.next()?;
        let opts = r.next().unwrap_or("").split(',').map(str::to_string).collect();
        let point = left.split(' ').nth(4)?;
        Some((PathBuf::from(point.replace("\\040", " ")), opts))
    })
}

/// The option string for the remount: the superblock's own options (not `rw`/`ro`, which belong
/// to the mount) plus `favordynmods`.
pub(crate) fn remount_data(opts: &[String]) -> String {
    let mut keep: Vec<&str> = opts
        .iter()
        .map(String::as_str)
        .filter(|o| !matches!(*o, "rw" | "ro" | "") && *o != "favordynmods")
        .collect();
    keep.push("favordynmods");
    keep.join(",")
}

/// Makes sure the cgroup2 hierarchy is mounted with `favordynmods`.
pub fn favor_dynmods() -> std::io::Result<Outcome> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let Some((point, opts)) = cgroup2_mount(&info) else {
        return Ok(Outcome::NoCgroup2);
    };
    if opts.iter().any(|o| o == "favordynmods") {
        return Ok(Outcome::AlreadySet(point));
    }
    rustix::mount::mount_remount(
        &point,
        rustix::mount::MountFlags::empty(),
        remount_data(&opts).as_str(),
    )?;
    Ok(Outcome::Set(point))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 26 0:30 / /sys/fs/cgroup/cpu rw,relatime shared:11 - cgroup cgroup rw,cpu
44 26 0:39 / /sys/fs/cgroup/unified rw,relatime shared:20 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn the_cgroup2_mount_is_found_with_its_superblock_options() {
        let (p, o) = cgroup2_mount(HYBRID).unwrap();
        assert_eq!(p, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(o, vec!["rw", "nsdelegate"]);
        assert_eq!(cgroup2_mount("35 26 0:30 / /x rw - cgroup cgroup rw,cpu\n"), None);
    }

    #[test]
    fn the_remount_keeps_the_superblock_options_and_adds_favordynmods_once() {
        let o = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            remount_data(&o("rw,nsdelegate,memory_recursiveprot")),
            "nsdelegate,memory_recursiveprot,favordynmods"
        );
        assert_eq!(remount_data(&o("rw")), "favordynmods");
        assert_eq!(remount_data(&o("rw,favordynmods")), "favordynmods");
    }
}
