//! berth's own create and exec path ("fast path"), used in place of libcontainer for the specs
//! berth-runtime generates on a cgroup v1/hybrid host; anything else goes to libcontainer
//! ([`accepts`] says why), and `BERTH_RUNTIME=libcontainer` in the shim's environment (berthd's)
//! forces libcontainer for every container. docs/design/performance.md explains the choice.
//!
//! Create (in the shim's forked creator, after the rootfs is mounted and the user resolved):
//! the creator makes the container's cgroups, applies the resources and joins them; unshares
//! the namespaces (or joins the network namespace the spec names) and forks the init, which is
//! pid 1 of the new pid namespace. The init sets up the mounts, `/dev`, `pivot_root`, masked
//! and read-only paths, hostname, sysctls, stdio (the pty master goes to the shim over the
//! console socket), reports `ok` on a pipe, and blocks reading the **start pipe**, whose write
//! end only the shim holds: one byte starts the container; EOF (the shim died) makes the init
//! exit without running anything. After start it applies rlimits, no_new_privs, the seccomp
//! filter (cached BPF, `seccomp.rs`), user and groups, the five capability sets, cwd, and execs.
//! Nothing is written to disk: no second spec, no runtime state.
//!
//! Exec ([`exec`]): a spawner joins the init's cgroups and namespaces and forks the process,
//! which applies the same confinement as the init and execs.

pub(crate) mod cgroup;
pub(crate) mod exec;
mod init;
pub(crate) mod rootfs;

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub(crate) use init::{create, Cgroups};

/// The environment variable that selects the runtime path: `libcontainer` forces libcontainer.
pub const RUNTIME_ENV: &str = "BERTH_RUNTIME";

/// Whether the fast path is allowed at all (not forced off by [`RUNTIME_ENV`]).
pub(crate) fn enabled() -> bool {
    std::env::var(RUNTIME_ENV).map_or(true, |v| v != "libcontainer")
}

/// Whether the fast path implements everything `spec` asks for; `Err` names the first thing it
/// does not (the container then goes to libcontainer).
pub(crate) fn accepts(spec: &Spec) -> Result<(), String> {
    if !enabled() {
        return Err(format!("{RUNTIME_ENV}=libcontainer"));
    }
    let root = Path::new(berth_runtime::CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() || cgroup::hierarchies().is_empty() {
        return Err("not a cgroup v1/hybrid host".into());
    }
    if spec.hooks().is_some() {
        return Err("hooks".into());
    }
    let linux = spec.linux().as_ref().ok_or("no linux section")?;
    let process = spec.process().as_ref().ok_or("no process")?;
    let mut has = (false, false);
    for ns in linux.namespaces().iter().flatten() {
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Network, _) => {}
            (LinuxNamespaceType::Pid, None) => has.0 = true,
            (LinuxNamespaceType::Mount, None) => has.1 = true,
            (LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts, None) => {}
            (t, _) => return Err(format!("namespace {t:?}")),
        }
    }
    if has != (true, true) {
        return Err("no new pid and mount namespaces".into());
    }
    if linux.uid_mappings().is_some()
        || linux.gid_mappings().is_some()
        || linux.intel_rdt().is_some()
        || linux.personality().is_some()
        || linux.mount_label().is_some()
        || linux.time_offsets().is_some()
    {
        return Err("user mappings, intel rdt, personality, mount label or time offsets".into());
    }
    if !matches!(
        linux.rootfs_propagation().as_deref(),
        None | Some("slave" | "rslave" | "private" | "rprivate")
    ) {
        // `shared` (a bind with shared propagation): mounts made in the container must reach
        // the host, which only libcontainer's path is tested for.
        return Err("shared rootfs propagation".into());
    }
    if let Some(r) = linux.resources() {
        cgroup::supported(r)?;
    }
    for m in spec.mounts().iter().flatten() {
        let t = m.typ().as_deref().unwrap_or("");
        if !rootfs::supported_type(t) {
            return Err(format!("mount type {t}"));
        }
        if t == "cgroup" && m.destination() != Path::new("/sys/fs/cgroup") {
            return Err("a cgroup mount elsewhere than /sys/fs/cgroup".into());
        }
        if let Some(o) = m.options().iter().flatten().find(|o| rootfs::option(o).is_none()) {
            return Err(format!("mount option {o}"));
        }
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err("idmapped mount".into());
        }
    }
    if process.apparmor_profile().is_some()
        || process.selinux_label().is_some()
        || process.io_priority().is_some()
        || process.scheduler().is_some()
        || process.exec_cpu_affinity().is_some()
        || process.console_size().is_some()
    {
        return Err("apparmor, selinux, io priority, scheduler or cpu affinity".into());
    }
    Ok(())
}

/// Starts the container: one byte on the start pipe.
pub(crate) fn start(fd: OwnedFd) -> std::io::Result<()> {
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, b"s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Hooks, LinuxBlockIo, LinuxNamespace, LinuxNamespaceType, Mount};

    fn spec() -> Spec {
        berth_runtime::build_spec(&berth_runtime::ContainerSpec {
            id: "abc123".into(),
            rootfs: "/b/rootfs".into(),
            args: vec!["true".into()],
            env: vec!["PATH=/bin".into()],
            hostname: "abc123".into(),
            cgroup_parent: "berth".into(),
            ..Default::default()
        })
        .unwrap()
    }

    fn hybrid_host() -> bool {
        !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() && !cgroup::hierarchies().is_empty()
    }

    #[test]
    fn berths_default_spec_takes_the_fast_path_on_a_hybrid_host() {
        if !hybrid_host() {
            return;
        }
        assert_eq!(accepts(&spec()), Ok(()));
    }

    #[test]
    fn what_the_fast_path_does_not_implement_goes_to_libcontainer() {
        if !hybrid_host() {
            return;
        }
        let mut s = spec();
        s.set_hooks(Some(Hooks::default()));
        assert_eq!(accepts(&s), Err("hooks".into()));

        let mut s = spec();
        let l = s.linux_mut().as_mut().unwrap();
        let mut ns = l.namespaces().clone().unwrap();
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        ns.push(user);
        l.set_namespaces(Some(ns));
        assert!(accepts(&s).unwrap_err().contains("User"));

        let mut s = spec();
        s.linux_mut()
            .as_mut()
            .unwrap()
            .set_rootfs_propagation(Some("shared".into()));
        assert_eq!(accepts(&s), Err("shared rootfs propagation".into()));

        let mut s = spec();
        let l = s.linux_mut().as_mut().unwrap();
        let mut r = l.resources().clone().unwrap();
        r.set_block_io(Some(LinuxBlockIo::default()));
        l.set_resources(Some(r));
        assert!(accepts(&s).is_err());

        let mut s = spec();
        let mut m = Mount::default();
        m.set_destination("/x".into());
        m.set_typ(Some("overlay".into()));
        s.mounts_mut().as_mut().unwrap().push(m);
        assert_eq!(accepts(&s), Err("mount type overlay".into()));

        let mut s = spec();
        let mut m = Mount::default();
        m.set_destination("/x".into());
        m.set_typ(Some("bind".into()));
        m.set_options(Some(vec!["rbind".into(), "idmap".into()]));
        s.mounts_mut().as_mut().unwrap().push(m);
        assert_eq!(accepts(&s), Err("mount option idmap".into()));
    }

    #[test]
    fn device_rules_are_written_as_the_devices_cgroup_takes_them() {
        let s = spec();
        let rules = s
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        let written: Vec<String> = rules.iter().map(cgroup::device_rule).collect();
        assert_eq!(written[0], "a *:* rwm");
        assert!(!rules[0].allow());
        assert!(written.contains(&"c 1:3 rwm".to_string()), "{written:?}");
        assert!(written.contains(&"c *:* m".to_string()), "{written:?}");
    }
}
