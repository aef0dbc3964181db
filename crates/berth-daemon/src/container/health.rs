//! Health checks (`--health-cmd …`): run the test in the container every interval, keep the
//! last five results, and flip the status between `starting`, `healthy` and `unhealthy` as docker
//! does (`retries` consecutive failures make it unhealthy; failures during `start_period` do not
//! count). The status shows in `ps` (`Up 3 minutes (healthy)`) and `inspect` (`State.Health`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::container::Entry;
use crate::Daemon;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
const KEEP: usize = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    pub start: i64,
    pub end: i64,
    pub exit_code: i64,
    pub output: String,
}

impl Health {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": self.log.iter().map(|p| serde_json::json!({
                "Start": berth_types::time::rfc3339_nano(p.start),
                "End": berth_types::time::rfc3339_nano(p.end),
                "ExitCode": p.exit_code,
                "Output": p.output,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The command a health config runs, or `None` when there is none (or it is `NONE`).
fn test_command(test: &[String]) -> Option<Vec<String>> {
    match test.first().map(String::as_str) {
        Some("CMD") => Some(test[1..].to_vec()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
        _ => None,
    }
}

impl Daemon {
    /// Starts the health monitor of a container that just started, if it has a check.
    pub(crate) fn start_health(self: &Arc<Self>, entry: &Arc<Entry>) {
        let Some(hc) = entry.with(|d| d.config.healthcheck.clone()) else {
            return;
        };
        let Some(cmd) = test_command(hc.test.as_deref().unwrap_or_default()) else {
            return;
        };
        let nanos = |v: Option<i64>, d: Duration| {
            v.filter(|n| *n > 0)
                .map(|n| Duration::from_nanos(n as u64))
                .unwrap_or(d)
        };
        let interval = nanos(hc.interval, DEFAULT_INTERVAL);
        let timeout = nanos(hc.timeout, DEFAULT_TIMEOUT);
        let start_period = nanos(hc.start_period, Duration::ZERO);
        let retries = hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
        let started_at = entry.with(|d| d.state.started_at);
        entry.update(|d| {
            d.health = Some(Health {
                status: "starting".into(),
                ..Default::default()
            })
        });
        let daemon = self.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                // This run ended (or a new run owns the monitor): stop.
                if !entry.status().is_running() || entry.with(|d| d.state.started_at) != started_at {
                    return;
                }
                if entry.status() == crate::container::Status::Paused {
                    continue;
                }
                let start = berth_types::time::now_nanos();
                let result = tokio::time::timeout(timeout, daemon.exec_capture(&entry.id, cmd.clone())).await;
                let end = berth_types::time::now_nanos();
                let (code, output) = match result {
                    Ok(Ok((code, out))) => (code, String::from_utf8_lossy(&out).into_owned()),
                    Ok(Err(e)) => (-1, e.to_string()),
                    Err(_) => (-1, format!("Health check exceeded timeout ({timeout:?})")),
                };
                let in_grace = (end - started_at) < start_period.as_nanos() as i64;
                let (old, new) = entry.update(|d| {
                    let h = d.health.get_or_insert_with(Health::default);
                    let old = h.status.clone();
                    h.log.push(Probe {
                        start,
                        end,
                        exit_code: code,
                        output,
                    });
                    if h.log.len() > KEEP {
                        h.log.remove(0);
                    }
                    if code == 0 {
                        h.failing_streak = 0;
                        h.status = "healthy".into();
                    } else if !in_grace {
                        h.failing_streak += 1;
                        if h.failing_streak >= retries {
                            h.status = "unhealthy".into();
                        }
                    }
                    (old, h.status.clone())
                });
                let _ = daemon.persist(&entry);
                if old != new {
                    daemon.events.emit(
                        "container",
                        &format!("health_status: {new}"),
                        &entry.id,
                        daemon.container_attrs(&entry),
                    );
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_forms_become_commands() {
        assert_eq!(
            test_command(&["CMD-SHELL".into(), "exit 0".into()]).unwrap(),
            vec!["/bin/sh", "-c", "exit 0"]
        );
        assert_eq!(
            test_command(&["CMD".into(), "true".into()]).unwrap(),
            vec!["true"]
        );
        assert!(test_command(&["NONE".into()]).is_none());
        assert!(test_command(&[]).is_none());
    }
}
