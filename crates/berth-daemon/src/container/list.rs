//! `GET /containers/json` (ps): filters, limits, sizes and the human `Status` column.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::models::{
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum,
};
use berth_types::time::human_duration_since;

use crate::container::inspect::endpoints;
use crate::container::{Doc, Status};
use crate::error::{Error, Result};
use crate::Daemon;

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    /// `-n`: the last N created (any state); `None` = no limit.
    pub limit: Option<usize>,
    pub size: bool,
    pub filters: BTreeMap<String, Vec<String>>,
}

impl Daemon {
    pub fn list_containers(self: &Arc<Self>, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        for key in opts.filters.keys() {
            if !matches!(
                key.as_str(),
                "status"
                    | "name"
                    | "id"
                    | "label"
                    | "ancestor"
                    | "exited"
                    | "before"
                    | "since"
                    | "network"
                    | "health"
                    | "volume"
                    | "publish"
                    | "expose"
                    | "is-task"
            ) {
                return Err(Error::invalid(format!("Invalid filter '{key}'")));
            }
        }
        let f = &opts.filters;
        // `before`/`since`: a container by ID, name or ID prefix (the last value given), as
        // dockerd's `idOrNameFilter`.
        let position = |key: &str| -> Result<Option<String>> {
            match f.get(key).and_then(|v| v.last()) {
                None => Ok(None),
                Some(v) => match self.find(v) {
                    Ok(e) => Ok(Some(e.id.clone())),
                    Err(_) => Err(Error::Missing(format!("no such container {v}"))),
                },
            }
        };
        let (mut before, since) = (position("before")?, position("since")?);
        let publish = port_filter(f, "publish")?;
        let expose = port_filter(f, "expose")?;
        if let Some(st) = opts.filters.get("status") {
            for s in st {
                if !matches!(
                    s.as_str(),
                    "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead"
                ) {
                    return Err(Error::invalid(format!("Invalid filter 'status={s}'")));
                }
            }
        }
        // Newest first, as docker lists. Each record is read in place under its own lock: a
        // listing of a thousand containers clones no record (issue 11: `ps -a` at scale).
        let mut entries: Vec<(i64, Arc<crate::container::Entry>)> = {
            let c = self.containers.read().unwrap();
            c.by_id
                .values()
                .map(|e| (e.with(|d| d.created), e.clone()))
                .collect()
        };
        entries.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
        let show_all = opts.all
            || opts.limit.is_some()
            || opts.filters.contains_key("status")
            || opts.filters.contains_key("exited");
        // An image and every image built on it (its children, theirs, …), as dockerd's
        // `populateImageFilterByParents`; a name that resolves to nothing matches nothing.
        let ancestors = match opts.filters.get("ancestor") {
            None => None,
            Some(names) => {
                let mut ids: Vec<String> = Vec::new();
                let mut queue: Vec<String> = names
                    .iter()
                    .filter_map(|n| self.images.resolve(n).ok().map(|i| i.id))
                    .collect();
                while let Some(id) = queue.pop() {
                    if ids.contains(&id) {
                        continue;
                    }
                    queue.extend(self.images.children(&id)?);
                    ids.push(id);
                }
                Some(ids)
            }
        };
        if let Some(v) = f
            .get("exited")
            .into_iter()
            .flatten()
            .find(|v| v.parse::<i64>().is_err())
        {
            return Err(Error::invalid(format!(
                "strconv.Atoi: parsing {v:?}: invalid syntax"
            )));
        }
        if let Some(v) = f
            .get("health")
            .into_iter()
            .flatten()
            .find(|v| !matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none"))
        {
            return Err(Error::invalid(format!(
                "Unrecognised filter value for health: {v}"
            )));
        }
        let mut out = Vec::new();
        for (_, e) in entries {
            // dockerd's order of checks, newest first: everything down to the `before`
            // container (itself included) is left out; the `since` container ends the list.
            if let Some(b) = &before {
                if *b == e.id {
                    before = None;
                }
                continue;
            }
            if since.as_ref().is_some_and(|s| *s == e.id) {
                break;
            }
            let summary = e.with(|d| {
                if !show_all && !d.state.status.is_running() {
                    return None;
                }
                if !self.filter_match(d, &opts.filters, ancestors.as_deref()) {
                    return None;
                }
                let ports = |m: Option<Vec<String>>| m.unwrap_or_default();
                if !publish.is_empty() {
                    let bound: Vec<String> = ports(
                        d.host_config
                            .port_bindings
                            .as_ref()
                            .map(|b| b.keys().cloned().collect()),
                    );
                    if !bound.iter().any(|p| publish.contains(&normalize_port(p))) {
                        return None;
                    }
                }
                if !expose.is_empty() {
                    let exposed = ports(d.config.exposed_ports.clone());
                    if !exposed.iter().any(|p| expose.contains(&normalize_port(p))) {
                        return None;
                    }
                }
                let summary = self.summary(d);
                // A network by name, or by a prefix of its ID.
                if let Some(nets) = f.get("network").filter(|v| !v.is_empty()) {
                    let joined = summary
                        .network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref());
                    let hit = joined.is_some_and(|m| {
                        nets.iter().any(|v| {
                            m.contains_key(v)
                                || m.values().any(|ep| {
                                    ep.network_id
                                        .as_deref()
                                        .is_some_and(|id| !id.is_empty() && id.starts_with(v.as_str()))
                                })
                        })
                    });
                    if !hit {
                        return None;
                    }
                }
                Some(summary)
            });
            let Some(mut summary) = summary else { continue };
            if opts.size {
                // Outside the record's lock: this walks the rw layer.
                let (rw, root) = self.sizes(&e);
                summary.size_rw = Some(rw);
                summary.size_root_fs = Some(root);
            }
            out.push(summary);
            if let Some(n) = opts.limit {
                if out.len() >= n {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn filter_match(&self, d: &Doc, f: &BTreeMap<String, Vec<String>>, ancestors: Option<&[String]>) -> bool {
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
            f.get(key)
                .is_none_or(|vs| vs.is_empty() || vs.iter().any(|v| pred(v)))
        };
        any("status", &|v| d.state.status.as_str() == v)
            && any("name", &|v| d.name.contains(v.trim_start_matches('/')))
            && any("id", &|v| d.id.starts_with(v))
            && any("exited", &|v| {
                d.state.status == Status::Exited && v.parse::<i64>().ok() == Some(d.state.exit_code)
            })
            && f.get("label").is_none_or(|vs| {
                let labels = d.config.labels.clone().unwrap_or_default();
                vs.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => labels.get(k).map(String::as_str) == Some(val),
                    None => labels.contains_key(v.as_str()),
                })
            })
            && ancestors.is_none_or(|ids| ids.contains(&d.image_id))
            // dockerd: a volume's name or any mount's destination.
            && any("volume", &|v| d.mounts.iter().any(|m| m.target == v || (!m.name.is_empty() && m.name == v)))
            // `none` for a container without a healthcheck.
            && any("health", &|v| match &d.health {
                Some(h) => h.status == v,
                None => v == "none",
            })
            // No container is a swarm task here.
            && any("is-task", &|v| matches!(v, "false" | "0"))
    }

    /// `SizeRw` and `SizeRootFs` (`ps --size`).
    fn sizes(&self, e: &crate::container::Entry) -> (i64, i64) {
        let rw = self.images.rw_size(&e.id).unwrap_or(0) as i64;
        let image_id = e.with(|d| d.image_id.clone());
        let image = self
            .images
            .inspect(&image_id)
            .ok()
            .and_then(|i| i.size)
            .unwrap_or(0);
        (rw, rw + image)
    }

    fn summary(&self, d: &Doc) -> ContainerSummary {
        let state = match d.state.status {
            Status::Created => ContainerSummaryStateEnum::CREATED,
            Status::Running => ContainerSummaryStateEnum::RUNNING,
            Status::Paused => ContainerSummaryStateEnum::PAUSED,
            Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
            Status::Removing => ContainerSummaryStateEnum::REMOVING,
            Status::Exited => ContainerSummaryStateEnum::EXITED,
            Status::Dead => ContainerSummaryStateEnum::DEAD,
        };
        ContainerSummary {
            id: Some(d.id.clone()),
            names: Some(vec![format!("/{}", d.name)]),
            image: d.config.image.clone(),
            image_id: Some(d.image_id.clone()),
            image_manifest_descriptor: None,
            command: Some(command_line(&d.path, &d.args)),
            created: Some(d.created / 1_000_000_000),
            ports: Some(summary_ports(d)),
            size_rw: None,
            size_root_fs: None,
            labels: Some(d.config.labels.clone().unwrap_or_default()),
            state: Some(state),
            status: Some(status_text(d)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: d.host_config.network_mode.clone(),
                annotations: None,
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(endpoints(d)),
            }),
            mounts: Some(crate::container::mounts::api_mounts(&d.mounts)),
        }
    }
}

/// `80` → `80/tcp` (a port key as dockerd's `nat.Port` spells it).
fn normalize_port(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else {
        format!("{p}/tcp")
    }
}

/// The ports of a `publish` or `expose` filter (`80`, `80/udp`, `8000-8010/tcp`), as dockerd's
/// `portOp` reads them.
fn port_filter(f: &BTreeMap<String, Vec<String>>, key: &str) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for v in f.get(key).into_iter().flatten() {
        if v.contains(':') {
            return Err(Error::invalid(format!(
                "filter for '{key}' should not contain ':': {v}"
            )));
        }
        let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
        let bad = || {
            Error::invalid(format!(
                "error while looking up for {key} {v}: invalid port {port:?}"
            ))
        };
        let (a, b) = match port.split_once('-') {
            Some((a, b)) => (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            ),
            None => {
                let p = port.parse::<u16>().map_err(|_| bad())?;
                (p, p)
            }
        };
        if b < a {
            return Err(bad());
        }
        for p in a..=b {
            out.insert(format!("{p}/{proto}"));
        }
    }
    Ok(out)
}

/// `Ports` of `/containers/json`: published ports with `IP`/`PublicPort`, exposed ones without.
fn summary_ports(d: &crate::container::Doc) -> Vec<berth_api::models::Port> {
    use berth_api::models::{Port, PortTypeEnum};
    let typ = |p: &str| match p {
        "udp" => PortTypeEnum::UDP,
        "sctp" => PortTypeEnum::SCTP,
        _ => PortTypeEnum::TCP,
    };
    let mut out = Vec::new();
    for (key, bindings) in crate::container::inspect::ports(d) {
        let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        let Ok(private_port) = port.parse::<u16>() else {
            continue;
        };
        match bindings {
            None => out.push(Port {
                ip: None,
                private_port,
                public_port: None,
                typ: Some(typ(proto)),
            }),
            Some(b) => out.extend(b.into_iter().map(|b| Port {
                ip: b.host_ip,
                private_port,
                public_port: b.host_port.and_then(|p| p.parse().ok()),
                typ: Some(typ(proto)),
            })),
        }
    }
    out.sort_by_key(|p| (p.private_port, p.public_port));
    out
}

/// `sh -c 'echo hi'`: the command as docker's `ps` shows it (shell-quoted where needed).
pub(crate) fn command_line(path: &str, args: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in std::iter::once(path)
        .chain(args.iter().map(String::as_str))
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        if !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
        {
            out.push_str(a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\"'\"'"));
            out.push('\'');
        }
    }
    out
}

/// `Up 3 seconds`, `Exited (3) About a minute ago`, `Created`.
pub(crate) fn status_text(d: &Doc) -> String {
    let since = human_duration_since;
    match d.state.status {
        Status::Running => {
            let health = match d.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            };
            format!("Up {}{health}", since(d.state.started_at))
        }
        Status::Paused => format!("Up {} (Paused)", since(d.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            d.state.exit_code,
            since(d.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".to_string(),
        Status::Dead => "Dead".to_string(),
        Status::Created => "Created".to_string(),
        Status::Exited if d.state.finished_at == 0 => "Created".to_string(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            d.state.exit_code,
            since(d.state.finished_at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_like_docker() {
        assert_eq!(command_line("echo", &["hi".into()]), "echo hi");
        assert_eq!(
            command_line("sh", &["-c".into(), "echo started; sleep 1".into()]),
            "sh -c 'echo started; sleep 1'"
        );
        assert_eq!(command_line("", &[]), "''");
        assert_eq!(command_line("true", &[]), "true");
        assert_eq!(
            command_line("echo", &["it's".into(), String::new(), "a=b".into()]),
            "echo 'it'\"'\"'s' '' a=b"
        );
    }
}
