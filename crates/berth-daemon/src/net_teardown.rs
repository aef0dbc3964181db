//! A container's endpoint teardown, off the critical path of stop, `--rm` and rm.
//!
//! Deleting a veth pair costs the kernel ~15–20 ms (RTNL held across `synchronize_net` and RCU
//! grace periods in `unregister_netdevice_many`), longer than the rest of a `run --rm` on the
//! bridge. The exit path does only what a new container could collide with at once — the
//! published ports leave the maps — and hands the rest to a background thread: the host veth
//! is deleted (its peer goes with it), the namespace unpinned, and only then the lease
//! released, so the address (and the MAC derived from it) is never handed out while the old
//! pair still exists. What could still collide waits for the teardown instead of failing: a
//! start of the same container (its `vb<id>` name and netns path), an `--ip` whose lease a
//! pending teardown holds, network removal, and daemon shutdown. A daemon killed in between
//! leaves a lease, a pinned namespace and a veth of a container that is not running, which
//! reconciliation at the next start removes (veth first, then the lease).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use berth_network::PortRule;

use crate::error::Error;
use crate::network::NetState;
use crate::Daemon;

/// How long a start, an `--ip` or a shutdown waits for a pending teardown.
const WAIT: Duration = Duration::from_secs(10);

/// Endpoint teardowns under way in the background, by container.
#[derive(Default)]
pub(crate) struct Pending {
    map: Mutex<HashMap<String, usize>>,
    done: Condvar,
}

impl Pending {
    fn begin(&self, id: &str) {
        *self.map.lock().unwrap().entry(id.to_string()).or_default() += 1;
    }

    fn end(&self, id: &str) {
        let mut m = self.map.lock().unwrap();
        if let Some(n) = m.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                m.remove(id);
            }
        }
        self.done.notify_all();
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.map.lock().unwrap().contains_key(id)
    }

    /// Waits until `id` (every container when `None`) has no teardown under way; false when
    /// the deadline passed first.
    pub(crate) fn wait(&self, id: Option<&str>, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut m = self.map.lock().unwrap();
        loop {
            let busy = match id {
                Some(id) => m.contains_key(id),
                None => !m.is_empty(),
            };
            if !busy {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            m = self.done.wait_timeout(m, deadline - now).unwrap().0;
        }
    }
}

impl Daemon {
    /// Undoes an endpoint in reverse order: ports, veth, namespace, lease. Every step runs;
    /// the errors come back. Blocking.
    pub(crate) fn net_teardown(&self, id: &str, st: &NetState) -> Vec<Error> {
        let mut errs = self.endpoint_ports_down(st);
        errs.extend(self.endpoint_link_down(id, st));
        errs
    }

    /// The published ports of an endpoint leave the maps. Blocking.
    pub(crate) fn endpoint_ports_down(&self, st: &NetState) -> Vec<Error> {
        let mut errs = Vec::new();
        if st.ports.is_empty() {
            return errs;
        }
        if let (Some(nets), Ok(ip)) = (self.networks.as_ref(), st.ip.parse()) {
            let rules: Vec<PortRule> = st.ports.iter().map(|p| p.rule(ip)).collect();
            if let Err(e) = berth_network::remove_ports(&nets.table, &rules) {
                errs.push(e.into());
            }
        }
        errs
    }

    /// The veth pair, the pinned namespace, then the leases. Blocking.
    fn endpoint_link_down(&self, id: &str, st: &NetState) -> Vec<Error> {
        let mut errs = Vec::new();
        if !st.host_veth.is_empty() {
            if let Err(e) = berth_network::detach(&st.host_veth) {
                errs.push(e.into());
            }
        }
        if let Err(e) = berth_sys::netns::remove(&st.netns) {
            errs.push(Error::io(
                format!("cannot remove the network namespace {}", st.netns.display()),
                e,
            ));
        }
        if let Err(e) = self.db.release_leases(id) {
            errs.push(e.into());
        }
        errs
    }

    /// [`Daemon::net_teardown`] off the event loop, errors logged; done when it returns.
    pub(crate) async fn net_undo(self: &Arc<Self>, id: &str, st: &NetState) {
        let daemon = self.clone();
        let (id, st) = (id.to_string(), st.clone());
        let _ = crate::error::blocking(move || {
            for e in daemon.net_teardown(&id, &st) {
                eprintln!("berthd: network teardown of {id}: {e}");
            }
            Ok(())
        })
        .await;
    }

    /// Removes the ports now and leaves the veth, the namespace and the lease to a background
    /// thread (module doc).
    async fn net_undo_deferred(self: &Arc<Self>, id: &str, st: &NetState) {
        let Some(nets) = self.networks.as_ref() else {
            return self.net_undo(id, st).await;
        };
        if !st.ports.is_empty() {
            let daemon = self.clone();
            let (id, st) = (id.to_string(), st.clone());
            let _ = crate::error::blocking(move || {
                for e in daemon.endpoint_ports_down(&st) {
                    eprintln!("berthd: network teardown of {id}: {e}");
                }
                Ok(())
            })
            .await;
        }
        nets.pending.begin(id);
        let daemon = self.clone();
        let (tid, tst) = (id.to_string(), st.clone());
        let spawned = std::thread::Builder::new()
            .name("net-teardown".into())
            .spawn(move || daemon.finish_teardown(&tid, &tst));
        if let Err(e) = spawned {
            // No thread: do it here rather than leak the endpoint.
            eprintln!("berthd: cannot start a network teardown thread: {e}");
            let (id, st) = (id.to_string(), st.clone());
            let daemon = self.clone();
            let _ = crate::error::blocking(move || {
                daemon.finish_teardown(&id, &st);
                Ok(())
            })
            .await;
        }
    }

    fn finish_teardown(&self, id: &str, st: &NetState) {
        berth_sys::failpoint::hit("network.teardown.deferred");
        for e in self.endpoint_link_down(id, st) {
            eprintln!("berthd: network teardown of {id}: {e}");
        }
        if let Some(nets) = self.networks.as_ref() {
            nets.pending.end(id);
        }
    }

    /// Waits for a background teardown of `id` (a start of the same container reuses its
    /// veth name and namespace path). Blocking.
    pub(crate) fn net_wait_teardown(&self, id: &str) {
        if let Some(nets) = self.networks.as_ref() {
            if !nets.pending.wait(Some(id), WAIT) {
                eprintln!("berthd: the network teardown of {id} is still under way");
            }
        }
    }

    /// Waits for every background teardown (daemon shutdown, network removal). Blocking.
    pub(crate) fn net_wait_all_teardowns(&self) {
        if let Some(nets) = self.networks.as_ref() {
            if !nets.pending.wait(None, WAIT) {
                eprintln!("berthd: network teardowns still under way; the next start reconciles them");
            }
        }
    }

    /// Takes a stopped container's endpoint out of its record and tears it down: the ports at
    /// once, the rest in the background (module doc). Returns the network the container leaves,
    /// `(id, name)`, for the `network disconnect` event its caller emits (after `die`, as
    /// dockerd orders them): its bridge network, or the built-in `none` or `host`.
    pub(crate) async fn net_release(
        self: &Arc<Self>,
        entry: &crate::container::Entry,
    ) -> Option<(String, String)> {
        self.extras_down(entry).await;
        let mut taken = None;
        entry.update(|d| taken = d.net.take());
        if let Some(st) = taken {
            self.dns_stop(&entry.id);
            self.net_undo_deferred(&entry.id, &st).await;
            // A namespace alone (disconnected from its first network) was on no network.
            return (!st.ip.is_empty()).then(|| (st.network_id.clone(), st.network.clone()));
        }
        let mode = entry.with(|d| d.host_config.network_mode.clone().unwrap_or_default());
        matches!(mode.as_str(), "none" | "host").then(|| (crate::networks::builtin_id(&mode), mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_returns_once_the_containers_teardown_ended_and_times_out_while_it_runs() {
        let p = Arc::new(Pending::default());
        p.begin("a");
        p.begin("a");
        assert!(p.contains("a") && !p.contains("b"));
        assert!(
            p.wait(Some("b"), Duration::ZERO),
            "another container is not waited for"
        );
        assert!(!p.wait(Some("a"), Duration::from_millis(20)), "still under way");
        p.end("a");
        assert!(p.contains("a"), "two teardowns, one ended");
        let q = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            q.end("a");
        });
        assert!(p.wait(Some("a"), Duration::from_secs(5)));
        assert!(p.wait(None, Duration::ZERO), "nothing pending");
        t.join().unwrap();
    }
}
