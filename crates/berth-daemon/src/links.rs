//! Legacy links, `--link NAME[:ALIAS]` (`HostConfig.Links`), as dockerd keeps them.
//!
//! On the default bridge a link is resolved at create to the linked container's ID (so a rename
//! of either side keeps it) and, at each start of the linking container, turned into an
//! `/etc/hosts` line (`IP\talias hostname name`) and Docker's link environment variables
//! (`ALIAS_PORT_80_TCP=tcp://IP:80`, `ALIAS_NAME=/parent/alias`, `ALIAS_ENV_*`); the linked
//! container must be running then. On a user network a link is an alias of the linked
//! container's name that only the linking container's embedded DNS answers.
//! `rm --link /parent/alias` drops one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::container::Doc;
use crate::error::{Error, Result};
use crate::Daemon;

/// One link of a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    /// The linked container's ID (default bridge; empty on a user network, where the name is
    /// looked up when asked).
    #[serde(default)]
    pub id: String,
    /// The linked container's name as given.
    pub name: String,
    pub alias: String,
}

/// docker's `opts.ParseLink`: `name`, `name:alias`, or inspect's own form `/name:/parent/alias`.
pub fn parse_link(val: &str) -> Result<(String, String)> {
    if val.is_empty() {
        return Err(Error::invalid("empty string specified for links"));
    }
    let parts: Vec<&str> = val.split(':').collect();
    match parts.as_slice() {
        [one] => Ok((one.to_string(), one.to_string())),
        [name, alias] => {
            if let Some(n) = name.strip_prefix('/') {
                let alias = alias.rsplit('/').next().unwrap_or(alias);
                Ok((n.to_string(), alias.to_string()))
            } else {
                Ok((name.to_string(), alias.to_string()))
            }
        }
        _ => Err(Error::invalid(format!("bad format for links: {val}"))),
    }
}

/// A port key (`80/tcp`) as (number, protocol).
fn port_of(key: &str) -> Option<(u16, String)> {
    let (n, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((n.parse().ok()?, proto.to_ascii_lowercase()))
}

/// The environment a link gives the linking container, exactly as moby's `links.ToEnv`:
/// `name` is the link's full name (`/parent/alias`), `ports` the linked container's exposed
/// ports, `child_env` its environment.
pub fn link_env(name: &str, child_ip: &str, ports: &[String], child_env: &[String]) -> Vec<String> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let alias = last.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = ports.iter().filter_map(|p| port_of(p)).collect();
    // TCP first, then by number (moby's withTCPPriority).
    ports.sort_by(|(an, ap), (bn, bp)| {
        if ap == bp {
            an.cmp(bn)
        } else if ap == "tcp" {
            std::cmp::Ordering::Less
        } else if bp == "tcp" {
            std::cmp::Ordering::Greater
        } else {
            ap.cmp(bp)
        }
    });
    ports.dedup();
    let mut env = Vec::new();
    let (mut start, mut end) = (None::<(u16, String)>, None::<(u16, String)>);
    for (i, p) in ports.iter().enumerate() {
        if i == 0 {
            start = Some(p.clone());
            end = Some(p.clone());
            env.push(format!("{alias}_PORT={}://{child_ip}:{}", p.1, p.0));
        }
        let prefix = format!("{alias}_PORT_{}_{}", p.0, p.1.to_uppercase());
        env.push(format!("{prefix}={}://{child_ip}:{}", p.1, p.0));
        env.push(format!("{prefix}_ADDR={child_ip}"));
        env.push(format!("{prefix}_PORT={}", p.0));
        env.push(format!("{prefix}_PROTO={}", p.1));
        let (s, e) = (start.clone().unwrap(), end.clone().unwrap());
        if u32::from(p.0) == u32::from(e.0) + 1 && p.1 == e.1 {
            end = Some(p.clone());
            if i < ports.len() - 1 {
                continue;
            }
        }
        let e = end.clone().unwrap();
        if e != s {
            let prefix = format!("{alias}_PORT_{}_{}", s.0, s.1.to_uppercase());
            env.push(format!("{prefix}_START={}://{child_ip}:{}", s.1, s.0));
            env.push(format!("{prefix}_PORT_START={}", s.0));
            env.push(format!("{prefix}_END={}://{child_ip}:{}", e.1, e.0));
            env.push(format!("{prefix}_PORT_END={}", e.0));
        }
        start = Some(p.clone());
        end = Some(p.clone());
    }
    env.push(format!("{alias}_NAME={name}"));
    for v in child_env {
        let Some((k, val)) = v.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{alias}_ENV_{k}={val}"));
    }
    env
}

/// What a container's links give it at start: hosts lines and environment variables.
#[derive(Debug, Default)]
pub struct LinkContext {
    pub hosts: Vec<String>,
    pub env: Vec<String>,
}

impl Daemon {
    /// `HostConfig.Links` at create: on the default bridge every linked container must exist
    /// (and not be on the host network); the links are recorded by ID. On a user network they
    /// are aliases, recorded by name (with the endpoint's own `Links`).
    pub(crate) fn resolve_links(
        &self,
        host: &berth_api::models::HostConfig,
        extra: &[String],
    ) -> Result<Vec<Link>> {
        let mode = host.network_mode.clone().unwrap_or_default();
        let given: Vec<String> = host.links.clone().unwrap_or_default();
        if given.is_empty() && extra.is_empty() {
            return Ok(vec![]);
        }
        if mode == "host" {
            return Err(Error::invalid(
                "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
            ));
        }
        if mode.starts_with("container:") {
            return Err(Error::invalid(
                "conflicting options: container type network can't be used with links. This would result in undefined behavior",
            ));
        }
        let user_net = crate::network::has_endpoint(&mode) && !crate::network::on_default_bridge(&mode);
        let mut out: Vec<Link> = Vec::new();
        for l in given.iter().chain(extra.iter()) {
            let (name, alias) = parse_link(l)?;
            if out.iter().any(|x| x.alias == alias) {
                continue;
            }
            if user_net {
                out.push(Link {
                    id: String::new(),
                    name,
                    alias,
                });
                continue;
            }
            // 400, not 404: a client answers a 404 from create by pulling the image.
            let mut child = self
                .find(&name)
                .map_err(|e| Error::invalid(format!("could not get container for {name}: {e}")))?;
            // A container sharing another's network links to that one.
            loop {
                let m = child.with(|d| d.host_config.network_mode.clone().unwrap_or_default());
                let Some(other) = m.strip_prefix("container:") else {
                    break;
                };
                child = self
                    .find(other)
                    .map_err(|e| Error::invalid(format!("Could not get container for {other}: {e}")))?;
            }
            if child.with(|d| d.host_config.network_mode.as_deref() == Some("host")) {
                return Err(Error::invalid(
                    "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                ));
            }
            out.push(Link {
                id: child.id.clone(),
                name,
                alias,
            });
        }
        Ok(out)
    }

    /// The hosts lines and environment of a container's links on the default bridge, checked
    /// at start as dockerd does: every linked container must run, on the default bridge.
    pub(crate) fn link_context(&self, doc: &Doc) -> Result<LinkContext> {
        let mut ctx = LinkContext::default();
        let mode = doc.host_config.network_mode.clone().unwrap_or_default();
        if !crate::network::on_default_bridge(&mode) {
            return Ok(ctx);
        }
        for l in &doc.links {
            let full = format!("/{}/{}", doc.name, l.alias);
            let Ok(child) = self.find(&l.id) else {
                // Removed since: dockerd forgets the link with the container.
                continue;
            };
            let (cname, running, hostname, env, ports, ip) = child.with(|d| {
                let ip = d
                    .net
                    .iter()
                    .filter(|n| n.network == crate::network::DEFAULT)
                    .chain(
                        d.connected
                            .iter()
                            .filter_map(|c| c.state.as_ref())
                            .filter(|n| n.network == crate::network::DEFAULT),
                    )
                    .map(|n| n.ip.clone())
                    .find(|ip| !ip.is_empty());
                (
                    d.name.clone(),
                    d.state.status.is_running(),
                    d.config.hostname.clone().unwrap_or_default(),
                    d.config.env.clone().unwrap_or_default(),
                    d.config.exposed_ports.clone().unwrap_or_default(),
                    ip,
                )
            });
            if !running {
                return Err(Error::internal(format!(
                    "Cannot link to a non running container: /{cname} AS {full}"
                )));
            }
            let Some(ip) = ip else {
                return Err(Error::internal(format!(
                    "Cannot link to /{cname}, as it does not belong to the default network"
                )));
            };
            let mut names = format!("{} {hostname}", l.alias);
            if l.alias != cname {
                names.push(' ');
                names.push_str(&cname);
            }
            ctx.hosts.push(format!("{ip}\t{names}"));
            ctx.env.extend(link_env(&full, &ip, &ports, &env));
        }
        Ok(ctx)
    }

    /// Inspect's `HostConfig.Links`: `/child:/parent/alias`, with today's names.
    pub(crate) fn inspect_links(&self, doc: &Doc) -> Option<Vec<String>> {
        let v: Vec<String> = doc
            .links
            .iter()
            .filter(|l| !l.id.is_empty())
            .filter_map(|l| {
                let child = self.find(&l.id).ok()?.name();
                Some(format!("/{child}:/{}/{}", doc.name, l.alias))
            })
            .collect();
        (!v.is_empty()).then_some(v)
    }

    /// `DELETE /containers/{parent}/{alias}?link=1` (`rm --link /parent/alias`): drops the link.
    pub async fn remove_link(self: &Arc<Self>, parent: &str, alias: &str) -> Result<()> {
        let entry = self
            .find(parent)
            .map_err(|_| Error::not_found("container", format!("/{parent}/{alias}")))?;
        let _op = entry.op.lock().await;
        let had = entry.update(|d| {
            let before = d.links.len();
            d.links.retain(|l| l.alias != alias);
            let gone = d.links.len() != before;
            if gone {
                if let Some(h) = d.host_config.links.as_mut() {
                    h.retain(|s| parse_link(s).map(|(_, a)| a != alias).unwrap_or(true));
                }
            }
            gone
        });
        if !had {
            return Err(Error::not_found("container", format!("/{parent}/{alias}")));
        }
        self.persist(&entry)
    }
}

/// The name a user network link alias stands for, for the embedded DNS of `doc`'s container.
pub fn alias_target(doc: &Doc, name: &str) -> Option<String> {
    doc.links
        .iter()
        .find(|l| l.id.is_empty() && l.alias.eq_ignore_ascii_case(name))
        .map(|l| l.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_as_docker_reads_them() {
        assert_eq!(parse_link("db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(parse_link("db:data").unwrap(), ("db".into(), "data".into()));
        assert_eq!(parse_link("/db:/web/data").unwrap(), ("db".into(), "data".into()));
        assert!(parse_link("a:b:c").is_err());
        assert!(parse_link("").is_err());
    }

    #[test]
    fn link_env_matches_moby_to_env() {
        let env = link_env(
            "/web/my-db",
            "10.0.0.2",
            &["80/tcp".into(), "53/udp".into(), "81/tcp".into()],
            &["PATH=/bin".into(), "PASSWORD=x=y".into(), "HOME=/root".into()],
        );
        assert_eq!(
            env,
            vec![
                "MY_DB_PORT=tcp://10.0.0.2:80",
                "MY_DB_PORT_80_TCP=tcp://10.0.0.2:80",
                "MY_DB_PORT_80_TCP_ADDR=10.0.0.2",
                "MY_DB_PORT_80_TCP_PORT=80",
                "MY_DB_PORT_80_TCP_PROTO=tcp",
                "MY_DB_PORT_81_TCP=tcp://10.0.0.2:81",
                "MY_DB_PORT_81_TCP_ADDR=10.0.0.2",
                "MY_DB_PORT_81_TCP_PORT=81",
                "MY_DB_PORT_81_TCP_PROTO=tcp",
                "MY_DB_PORT_53_UDP=udp://10.0.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=10.0.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                // moby closes the 80-81 range when the next port breaks it.
                "MY_DB_PORT_80_TCP_START=tcp://10.0.0.2:80",
                "MY_DB_PORT_80_TCP_PORT_START=80",
                "MY_DB_PORT_80_TCP_END=tcp://10.0.0.2:81",
                "MY_DB_PORT_80_TCP_PORT_END=81",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_PASSWORD=x=y",
            ]
        );
        let env = link_env("/a/b", "1.2.3.4", &[], &[]);
        assert_eq!(env, vec!["B_NAME=/a/b"]);
    }
}
