//! berth's accept rules in Docker's `DOCKER-USER` chain, kept true for as long as berthd runs.
//! Where dockerd runs too, its FORWARD policy is DROP and br_netfilter sends bridged frames
//! through it, so berth's bridges need an accept there (the one rule outside berth's own table,
//! docs/design/network.md). The chain can appear after berthd started (a dockerd started
//! later) or lose the rules (a flush): the rules are checked again every
//! [`RECHECK`] and before each bridge endpoint is set up; a check that finds them in place
//! only lists the chain.

use std::sync::Arc;
use std::time::Duration;

use crate::network::Networks;
use crate::Daemon;

/// How often the rules are checked again while berthd runs.
pub const RECHECK: Duration = Duration::from_secs(2);

impl Networks {
    /// Every bridge berth has: the default one and each user network's.
    pub(crate) fn bridges(&self, user: &[crate::networks::NetDoc]) -> Vec<String> {
        std::iter::once(self.default.bridge.clone())
            .chain(user.iter().map(|n| n.bridge.clone()))
            .collect()
    }

    /// Makes berth's rules accept exactly `bridges` (a network created or removed); nothing
    /// once [`Networks::release_docker_user`] ran. Returns whether Docker's chain exists.
    pub(crate) fn sync_docker_user(&self, bridges: &[String]) -> berth_network::Result<bool> {
        let released = self.docker_user.lock().unwrap();
        if *released {
            return Ok(false);
        }
        berth_network::sync_docker_user(&self.table, bridges)
    }

    /// Checks the rules against the networks as recorded (the timer, an endpoint's set-up).
    /// The user networks' read lock keeps a concurrent create/rm from interleaving.
    pub(crate) fn recheck_docker_user(&self) {
        let user = self.user.read().unwrap();
        if let Err(e) = self.sync_docker_user(&self.bridges(&user)) {
            eprintln!("berthd: berth's DOCKER-USER rules: {e}");
        }
    }

    /// berthd stops: its rules go, and no later check puts them back.
    pub(crate) fn release_docker_user(&self) -> berth_network::Result<bool> {
        let mut released = self.docker_user.lock().unwrap();
        *released = true;
        berth_network::sync_docker_user(&self.table, &[])
    }
}

/// Starts the periodic check; it ends with the daemon.
pub(crate) fn keep(daemon: &Arc<Daemon>) {
    if daemon.networks.is_none() {
        return;
    }
    let weak = Arc::downgrade(daemon);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RECHECK).await;
            let Some(d) = weak.upgrade() else { break };
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(n) = &d.networks {
                    n.recheck_docker_user();
                }
            })
            .await;
        }
    });
}
