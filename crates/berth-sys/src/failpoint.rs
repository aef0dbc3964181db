//! Named kill points, for proving crash consistency.
//!
//! Every step of a state change that writes to disk is marked with [`hit`]`("area.op.step")`.
//! Built with the `failpoints` cargo feature (tests only: `scripts/test.sh` builds with
//! `--features berth-sys/failpoints`) and started with `BERTH_FAILPOINT=<name>` in its environment,
//! a process that reaches that point kills itself with SIGKILL, exactly as a power cut or an OOM
//! kill would stop it: no destructor, no flush, no rollback. Without the feature [`hit`] compiles
//! to nothing.
//!
//! [`DECLARED`] lists every point. The crash sweep (`tests/e2e` `crash::every_failpoint`) arms each
//! one in turn, drives berthd to it, restarts berthd and runs `berthd check`; it fails when a
//! declared point is never reached, and a unit test fails when the source names a point that is
//! not declared. `docs/design/crash-consistency.md` explains why each point is safe.

/// Every failpoint, in the order of the operations they belong to.
pub const DECLARED: &[&str] = &[
    // Images: one layer (import, load, commit, builtin).
    "image.layer.unpacked",
    "image.layer.committed",
    // Images: after the layers, the config blob, then the rows in one transaction.
    "image.create.config-written",
    "image.create.before-commit",
    "image.create.committed",
    // docker load: per image, after its rows; tags are in the same transaction.
    "image.load.extracted",
    "image.load.committed",
    // docker pull: after its layers (image.layer.*), the config blob, then one transaction.
    "image.pull.config-written",
    "image.pull.committed",
    // docker push: the registry has the image; what the push learned is recorded last.
    "image.push.uploaded",
    // docker commit: the layer tar written to ingest.
    "image.commit.layer-written",
    // docker tag / rmi.
    "image.tag.before-commit",
    "image.tag.committed",
    "image.rmi.before-commit",
    "image.rmi.committed",
    "image.rmi.layer-removed",
    // Containers.
    "container.create.snapshot-prepared",
    "container.create.bundle-written",
    "container.create.committed",
    "container.start.files-written",
    "container.start.marked-running",
    "container.start.shim-ready",
    "container.start.before-exec",
    "container.start.committed",
    // A shareable container's /dev/shm mounted on the host, before its start is recorded.
    "container.shm.mounted",
    "container.stop.marked-stopped",
    "container.stop.signalled",
    "container.exit.before-record",
    // An exited container's empty cgroups, queued for removal once exits pause.
    "container.reap.before-remove",
    "container.rm.marked-removing",
    "container.rm.layer-removed",
    "container.rm.bundle-removed",
    "container.rename.before-commit",
    "container.rename.committed",
    // Volumes: create makes the directories, then the record; rm marks the record, removes
    // the files, then drops the record.
    "volume.create.dirs-made",
    "volume.rm.marked-removing",
    "volume.rm.files-removed",
    // Networking at container start: the lease, the pinned namespace, the veth pair, the ports.
    "network.lease.before-commit",
    "network.setup.leased",
    "network.setup.netns-created",
    "network.setup.attached",
    "network.setup.ports-added",
    // Container exit: the ports removed, the veth, namespace and lease left to a background
    // thread.
    "network.teardown.deferred",
    // docker network disconnect from the network a container was created on: the record, then
    // ports, veth and lease.
    "network.disconnect.recorded",
    // docker network create: the record, then the bridge and the rules.
    "network.create.before-commit",
    "network.create.committed",
    // docker network rm: the rules and the bridge, then the record.
    "network.rm.bridge-removed",
    // docker build: the context unpacked, a RUN step's container created, a step's layer tar
    // written to ingest, a step's image committed.
    "build.context.unpacked",
    "build.run.created",
    "build.step.layer-written",
    "build.step.committed",
];

/// Kills the process with SIGKILL when it was started with `BERTH_FAILPOINT=name` and built with
/// the `failpoints` feature; does nothing otherwise.
#[inline(always)]
pub fn hit(name: &'static str) {
    #[cfg(feature = "failpoints")]
    armed::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Whether this build has failpoints compiled in.
pub const fn enabled() -> bool {
    cfg!(feature = "failpoints")
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::io::Write;
    use std::sync::OnceLock;

    static ARMED: OnceLock<Option<String>> = OnceLock::new();

    pub fn hit(name: &'static str) {
        debug_assert!(
            super::DECLARED.contains(&name),
            "failpoint {name} is not declared"
        );
        let armed = ARMED.get_or_init(|| std::env::var("BERTH_FAILPOINT").ok().filter(|s| !s.is_empty()));
        if armed.as_deref() == Some(name) {
            let _ = writeln!(
                std::io::stderr(),
                "berth: failpoint {name} reached: killing the process"
            );
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
            // SIGKILL cannot be caught; this is never reached.
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DECLARED;

    /// Every `failpoint::hit("…")` in the workspace's sources names a declared point, and every
    /// declared point is used somewhere.
    #[test]
    fn failpoints_in_the_source_are_declared_and_used() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut used = std::collections::BTreeSet::new();
        let mut stack = vec![crates];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    if p.file_name() != Some("target".as_ref()) {
                        stack.push(p);
                    }
                } else if p.extension() == Some("rs".as_ref()) && !p.ends_with("berth-sys/src/failpoint.rs") {
                    let src = std::fs::read_to_string(&p).unwrap();
                    for part in src.split("failpoint::hit(\"").skip(1) {
                        let name = part.split('"').next().unwrap();
                        assert!(
                            DECLARED.contains(&name),
                            "{}: failpoint {name} is not declared",
                            p.display()
                        );
                        used.insert(name.to_string());
                    }
                }
            }
        }
        for d in DECLARED {
            assert!(used.contains(*d), "failpoint {d} is declared but never placed");
        }
        let unique: std::collections::BTreeSet<_> = DECLARED.iter().collect();
        assert_eq!(unique.len(), DECLARED.len(), "a failpoint is declared twice");
    }
}
