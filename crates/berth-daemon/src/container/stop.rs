//! `stop`, `kill`, `restart`, and waiting for exits.

use std::sync::Arc;
use std::time::Duration;

use berth_shim_proto::Request;

use crate::container::{Entry, Op};
use crate::error::{Error, Result};
use crate::{shim, Daemon};

/// How long `kill` with SIGKILL waits for the exit (dockerd waits 10 s, then 2 more after a
/// direct SIGKILL of the process).
const KILL_WAIT: Duration = Duration::from_secs(12);

const SIGKILL: i32 = 9;

/// `wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" | "not-running" => Ok(Self::NotRunning),
            "next-exit" => Ok(Self::NextExit),
            "removed" => Ok(Self::Removed),
            other => Err(Error::invalid(format!("invalid condition: \"{other}\""))),
        }
    }
}

/// Parses a signal given as a name (`TERM`, `SIGTERM`, `term`) or a number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::invalid(format!("Invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+').parse().unwrap_or(-1)
        };
        if (0..=30).contains(&off) {
            return Ok(34 + off);
        }
    }
    Err(Error::invalid(format!("Invalid signal: {s}")))
}

impl Daemon {
    /// `docker kill`.
    pub async fn kill(self: &Arc<Self>, key: &str, signal: Option<&str>) -> Result<()> {
        // dockerd names the container as the client did: `Cannot kill container: web: …`.
        let entry = self.find(key).map_err(|e| match e {
            e @ Error::NotFound { .. } => Error::Missing(format!("Cannot kill container: {key}: {e}")),
            e => e,
        })?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("KILL"))?;
        // Subscribed before the state check, so an exit that races the kill is not missed (the
        // state turns `exited` before the exit counter moves).
        let mut life = entry.life.subscribe();
        let exits = life.borrow().exits;
        if !entry.status().is_running() {
            return Err(Error::conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                entry.id
            )));
        }
        entry.update(|d| d.manually_stopped = true);
        self.persist(&entry)?;
        // A SIGKILL that finds the process gone fails only if no exit follows (below).
        let unsent = match self.signal(&entry, sig).await {
            Err(e) if sig == SIGKILL => Some(e),
            sent => {
                sent?;
                None
            }
        };
        if unsent.is_none() {
            let mut attrs = self.container_attrs(&entry);
            attrs.insert("signal".into(), sig.to_string());
            self.events.emit("container", "kill", &entry.id, attrs);
        }
        if sig == SIGKILL {
            // Docker's kill with SIGKILL returns once the container is dead (so an inspect right
            // after shows it exited with 137); other signals return once delivered. A SIGKILL
            // that found the process already gone (an exit racing the kill) waits for that exit.
            let exited = life.wait_for(|l| l.exits > exits || l.removed);
            if tokio::time::timeout(KILL_WAIT, exited).await.is_err() {
                if let Some(e) = unsent {
                    return Err(e);
                }
                return Err(Error::internal(format!(
                    "tried to kill container {}, but did not receive an exit event",
                    entry.id
                )));
            }
        }
        Ok(())
    }

    pub(crate) async fn signal(&self, entry: &Entry, sig: i32) -> Result<()> {
        let resp = shim::call(
            &self.shim_socket(&entry.id),
            &Request::Kill {
                signal: sig,
                all: false,
            },
        )
        .await?;
        match resp.error {
            Some(e) => Err(Error::internal(format!(
                "cannot kill container {}: {e}",
                entry.id
            ))),
            None => Ok(()),
        }
    }

    /// `docker stop`: the stop signal, then SIGKILL after `timeout` seconds. `NotModified` if the
    /// container is not running.
    pub async fn stop(self: &Arc<Self>, key: &str, timeout: Option<i64>) -> Result<()> {
        let entry = self.find(key)?;
        let _op = entry.op.lock().await;
        if entry.status() == crate::container::Status::Restarting {
            // Stopping a container waiting to be restarted just cancels the restart.
            entry.update(|d| {
                d.manually_stopped = true;
                d.state.status = crate::container::Status::Exited;
            });
            self.persist(&entry)?;
            return Ok(());
        }
        entry.status().can(Op::Stop, &entry.id)?;
        entry.update(|d| d.manually_stopped = true);
        self.persist(&entry)?;
        berth_sys::failpoint::hit("container.stop.marked-stopped");
        self.stop_locked(&entry, timeout).await?;
        self.events
            .emit("container", "stop", &entry.id, self.container_attrs(&entry));
        Ok(())
    }

    pub(crate) async fn stop_locked(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let (sig, default_timeout) = entry.with(|d| {
            (
                d.config.stop_signal.clone().unwrap_or_default(),
                d.config.stop_timeout.unwrap_or(10),
            )
        });
        let sig = parse_signal(if sig.is_empty() { "TERM" } else { &sig })?;
        let timeout = timeout.filter(|t| *t >= -1).unwrap_or(default_timeout);
        let mut life = entry.life.subscribe();
        let exits = life.borrow().exits;
        if !entry.status().is_running() {
            return Ok(());
        }
        let _ = self.signal(entry, sig).await;
        berth_sys::failpoint::hit("container.stop.signalled");
        let exited = |l: &crate::container::Life| l.exits > exits;
        if timeout >= 0 {
            let wait = life.wait_for(exited);
            if tokio::time::timeout(Duration::from_secs(timeout as u64), wait)
                .await
                .is_ok()
            {
                return Ok(());
            }
        } else {
            let _ = life.wait_for(exited).await;
            return Ok(());
        }
        if entry.status().is_running() {
            let _ = self.signal(entry, 9).await;
        }
        life.wait_for(exited)
            .await
            .map_err(|_| Error::internal("container vanished while stopping"))?;
        Ok(())
    }

    /// `docker restart`.
    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<i64>) -> Result<()> {
        let entry = self.find(key)?;
        let _op = entry.op.lock().await;
        if entry.status().is_running() {
            self.stop_locked(&entry, timeout).await?;
            self.events
                .emit("container", "stop", &entry.id, self.container_attrs(&entry));
        }
        self.start_locked(&entry).await?;
        self.events
            .emit("container", "restart", &entry.id, self.container_attrs(&entry));
        Ok(())
    }

    /// Resolves a container for `wait` and returns a future that completes with its exit code
    /// under `cond`. The lookup happens now (so a missing container is a 404 before any body).
    pub fn wait(
        self: &Arc<Self>,
        key: &str,
        cond: WaitCondition,
    ) -> Result<impl std::future::Future<Output = Result<i64>> + Send + 'static> {
        Ok(wait_entry(&self.find(key)?, cond))
    }
}

/// [`Daemon::wait`] on a container already found.
fn wait_entry(
    entry: &Arc<Entry>,
    cond: WaitCondition,
) -> impl std::future::Future<Output = Result<i64>> + Send + 'static {
    let mut life = entry.life.subscribe();
    let start = *life.borrow();
    // The record changes before `life` does (an exit is recorded, persisted and its mounts
    // released before waiters hear of it): whether it runs and its last exit code both come
    // from the record, so a wait that lands in between does not answer with the code of the
    // run before (docker-py's `run` of a quick `exit 3` once got 0 under load).
    let (running, last_code) = entry.with(|d| (d.state.status.is_running(), d.state.exit_code));
    async move {
        let done = match cond {
            WaitCondition::NotRunning if !running => return Ok(last_code),
            WaitCondition::NotRunning | WaitCondition::NextExit => {
                life.wait_for(|l| l.exits > start.exits || l.removed).await
            }
            WaitCondition::Removed => life.wait_for(|l| l.removed).await,
        };
        match done {
            Ok(l) => Ok(l.exit_code),
            Err(_) => Ok(start.exit_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Status;

    fn entry(status: Status) -> Arc<Entry> {
        let doc = crate::container::Doc {
            id: "c".into(),
            name: "c".into(),
            created: 0,
            image_id: String::new(),
            path: "sh".into(),
            args: vec![],
            config: Default::default(),
            host_config: Default::default(),
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            health: None,
            mounts: vec![],
            net: None,
            aliases: vec![],
            requested_ip: None,
            connected: vec![],
            links: vec![],
            detached: false,
        };
        let e = Entry::new(doc);
        e.update(|d| d.state.status = status);
        e
    }

    /// What `handle_exit` does first: the record says exited with its code; `life` (what
    /// waiters are woken by) follows later.
    fn record_exit(e: &Entry, code: i64) {
        e.update(|d| {
            d.state.status = Status::Exited;
            d.state.exit_code = code;
        });
    }

    #[tokio::test]
    async fn a_wait_between_the_exit_record_and_the_waiters_gets_the_recorded_code() {
        let e = entry(Status::Running);
        record_exit(&e, 3);
        assert_eq!(wait_entry(&e, WaitCondition::NotRunning).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_wait_on_a_running_container_gets_the_code_of_its_exit() {
        let e = entry(Status::Running);
        let w = tokio::spawn(wait_entry(&e, WaitCondition::NotRunning));
        record_exit(&e, 7);
        e.life.send_modify(|l| {
            l.exits += 1;
            l.exit_code = 7;
        });
        assert_eq!(w.await.unwrap().unwrap(), 7);
    }

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("WINCH").unwrap(), 28);
        assert_eq!(parse_signal("3").unwrap(), 3);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), 36);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn wait_conditions_parse() {
        assert_eq!(WaitCondition::parse("").unwrap(), WaitCondition::NotRunning);
        assert_eq!(WaitCondition::parse("removed").unwrap(), WaitCondition::Removed);
        assert!(WaitCondition::parse("soon").is_err());
    }
}
