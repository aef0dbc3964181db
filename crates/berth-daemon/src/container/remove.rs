//! `DELETE /containers/{id}`: stop (with force), unmount leftovers, delete the rw layer and the
//! bundle, drop the record. Teardown does all it can and reports what it could not.

use std::sync::Arc;

use crate::container::{Entry, Op, Status};
use crate::error::{blocking, Error, Result};
use crate::Daemon;

impl Daemon {
    /// `docker rm [-f] [-v]`.
    pub async fn remove(self: &Arc<Self>, key: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.find(key)?;
        self.remove_entry(&entry, force, volumes).await
    }

    pub(crate) async fn remove_entry(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let _op = entry.op.lock().await;
        berth_sys::times::mark("d-remove");
        if entry.life.borrow().removed {
            return Err(Error::not_found("container", &entry.id));
        }
        if entry.status().is_running() {
            if !force {
                return Err(entry.status().can(Op::Remove, &entry.id).unwrap_err());
            }
            if entry.status() == Status::Restarting {
                // Nothing runs between an exit and its policy restart: just cancel the restart.
                entry.update(|d| d.state.status = Status::Exited);
            } else {
                let mut life = entry.life.subscribe();
                let exits = life.borrow().exits;
                if self.signal(entry, 9).await.is_ok() {
                    // Bounded: a shim that cannot report must not wedge `rm -f`.
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        life.wait_for(|l| l.exits > exits),
                    )
                    .await;
                }
            }
        }
        // The record first: from here a crash leaves a `removing` record, which start-up
        // reconciliation finishes; the files go after it.
        entry.update(|d| d.state.status = Status::Removing);
        self.persist(entry)?;
        berth_sys::failpoint::hit("container.rm.marked-removing");

        let mut failures = Vec::new();
        let bundle = self.bundle(&entry.id);
        let unmounted = berth_sys::mount::unmount(&bundle.join("rootfs"));
        if let Err(e) = &unmounted {
            failures.push(format!("unmount rootfs: {e}"));
        }
        let images = self.images.clone();
        let id = entry.id.clone();
        let removed = blocking(move || match images.remove_rootfs(&id) {
            Err(e) if e.kind() != berth_types::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await;
        if let Err(e) = removed {
            failures.push(format!("remove rw layer: {e}"));
        }
        berth_sys::failpoint::hit("container.rm.layer-removed");
        // Into the trash (one rename; deleted in the background), but never while something may
        // still be mounted below it.
        if unmounted.is_ok() {
            if let Err(e) = self.trash.put(&bundle) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failures.push(format!("remove {}: {e}", bundle.display()));
                }
            }
        }
        berth_sys::failpoint::hit("container.rm.bundle-removed");
        berth_sys::times::mark("d-trashed");
        let _ = tokio::fs::remove_file(self.shim_socket(&entry.id)).await;
        if !failures.is_empty() {
            // What could not be removed stays, under a `dead` record that `rm` retries.
            let message = failures.join("; ");
            entry.update(|d| {
                d.state.status = Status::Dead;
                d.state.error = message.clone();
            });
            let _ = self.persist(entry);
            return Err(Error::internal(format!(
                "unable to remove container {} completely: {message}",
                entry.id
            )));
        }
        self.forget(entry)?;
        self.events
            .emit("container", "destroy", &entry.id, self.container_attrs(entry));
        if volumes {
            // After the record: a crash before leaves a dangling anonymous volume, as dockerd.
            self.remove_anonymous_volumes(&entry.with(|d| d.mounts.clone()))
                .await;
        }
        entry.life.send_modify(|l| l.removed = true);
        berth_sys::times::mark("d-removed");
        Ok(())
    }
}
