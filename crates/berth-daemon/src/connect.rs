//! `network connect` / `disconnect`: endpoints on further networks. A container keeps the
//! network it was created on as its first endpoint (`eth0`, the default route); each connected
//! network adds `ethN` in the same namespace, set up now if the container runs and at every
//! start, torn down at exit and on disconnect.

use std::net::Ipv4Addr;
use std::sync::Arc;

use berth_network::{ipam, Endpoint};
use serde::{Deserialize, Serialize};

use crate::container::Entry;
use crate::error::{blocking, Error, Result};
use crate::network::{has_endpoint, on_default_bridge, NetState};
use crate::Daemon;

/// A network joined with `connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connected {
    /// The network's name.
    pub network: String,
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub ipv4: Option<String>,
    /// The endpoint while the container runs.
    #[serde(default)]
    pub state: Option<NetState>,
}

fn sha_hex(s: &str) -> String {
    use sha2::Digest;
    berth_types::id::to_hex(&sha2::Sha256::digest(s.as_bytes()))
}

impl Daemon {
    /// Sets up the endpoint of connected network `c` as `ifname` in the namespace of a running
    /// container whose first endpoint is `primary`. Blocking.
    pub(crate) fn extra_setup(
        &self,
        id: &str,
        primary: &NetState,
        c: &Connected,
        index: usize,
    ) -> Result<NetState> {
        let (net, name, net_id, range) = self.resolve_net(&c.network)?;
        let requested = match c.ipv4.as_deref() {
            Some(s) => Some(
                s.parse::<Ipv4Addr>()
                    .map_err(|_| Error::invalid(format!("invalid IPv4 address: {s}")))?,
            ),
            None => None,
        };
        let ip = self.lease_address(&net_id, &net, range.as_ref(), id, requested)?;
        let st = NetState {
            netns: primary.netns.clone(),
            network: name,
            network_id: net_id.clone(),
            endpoint_id: sha_hex(&format!("{id}:{ip}")),
            host_veth: format!("vb{}x{index}", &id[..11]),
            ip: ip.to_string(),
            prefix: net.subnet.prefix,
            gateway: net.gateway.to_string(),
            mac: ipam::mac_string(&ipam::mac_for(ip)),
            ports: vec![],
        };
        let ifname = format!("eth{index}");
        let r = berth_network::setup_bridge(&net)
            .map_err(Error::from)
            .and_then(|_| {
                berth_network::attach(
                    &net,
                    &Endpoint {
                        netns: &st.netns,
                        host_veth: &st.host_veth,
                        ifname: &ifname,
                        ip,
                        mac: ipam::mac_for(ip),
                        // Disconnected from its first network: the first connected one routes.
                        default_route: primary.ip.is_empty() && index == 1,
                    },
                )
                .map_err(Error::from)
            });
        if let Err(e) = r {
            let _ = self.db.release_lease(&net_id, id);
            return Err(e);
        }
        Ok(st)
    }

    /// Undoes an extra endpoint: its veth, its lease. Blocking.
    pub(crate) fn extra_teardown(&self, id: &str, st: &NetState) -> Vec<Error> {
        let mut errs = Vec::new();
        if let Err(e) = berth_network::detach(&st.host_veth) {
            errs.push(e.into());
        }
        if let Err(e) = self.db.release_lease(&st.network_id, id) {
            errs.push(e.into());
        }
        errs
    }

    /// Sets up every connected network of a container that has just got its first endpoint;
    /// failures are logged (the container runs on the networks that work).
    pub(crate) async fn extras_up(self: &Arc<Self>, entry: &Arc<Entry>, primary: &NetState) {
        let connected = entry.with(|d| d.connected.clone());
        for (i, c) in connected.into_iter().enumerate() {
            let (daemon, id, p, c2) = (self.clone(), entry.id.clone(), primary.clone(), c.clone());
            match blocking(move || daemon.extra_setup(&id, &p, &c2, i + 1)).await {
                Ok(st) => {
                    entry.update(|d| {
                        if let Some(x) = d.connected.iter_mut().find(|x| x.network_id == c.network_id) {
                            x.state = Some(st.clone());
                        }
                    });
                    self.emit_network("connect", &st.network_id, &st.network, Some(&entry.id));
                }
                Err(e) => eprintln!("berthd: connecting {} to {}: {e}", entry.id, c.network),
            }
        }
    }

    /// Tears down every connected network's endpoint (exit).
    pub(crate) async fn extras_down(self: &Arc<Self>, entry: &Entry) {
        let mut states = Vec::new();
        entry.update(|d| {
            for c in d.connected.iter_mut() {
                if let Some(st) = c.state.take() {
                    states.push(st);
                }
            }
        });
        for st in states {
            let (daemon, id, s2) = (self.clone(), entry.id.clone(), st.clone());
            let _ = blocking(move || {
                for e in daemon.extra_teardown(&id, &s2) {
                    eprintln!("berthd: network teardown of {id}: {e}");
                }
                Ok(())
            })
            .await;
            self.emit_network("disconnect", &st.network_id, &st.network, Some(&entry.id));
        }
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect(
        self: &Arc<Self>,
        network: &str,
        container: &str,
        aliases: Vec<String>,
        ipv4: Option<String>,
    ) -> Result<()> {
        let entry = self.find(container)?;
        let _op = entry.op.lock().await;
        let (_, name, net_id, _) = match self.resolve_net(network) {
            Ok(r) => r,
            Err(_) if matches!(network, "host" | "none") => {
                return Err(Error::Forbidden(
                    "container cannot be disconnected from host network or connected to host network".into(),
                ))
            }
            Err(e) => return Err(e),
        };
        let mode = entry.with(|d| d.host_config.network_mode.clone().unwrap_or_default());
        if !has_endpoint(&mode) {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network".into(),
            ));
        }
        let primary_name = if on_default_bridge(&mode) {
            crate::network::DEFAULT.to_string()
        } else {
            self.resolve_net(&mode).map(|r| r.1).unwrap_or(mode.clone())
        };
        if primary_name == name && entry.with(|d| d.detached) {
            if ipv4.is_some() && on_default_bridge(&name) {
                return Err(Error::invalid(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            return self.reconnect_primary(&entry, aliases, ipv4).await;
        }
        if primary_name == name || entry.with(|d| d.connected.iter().any(|c| c.network_id == net_id)) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {name}",
                entry.with(|d| d.name.clone())
            )));
        }
        if ipv4.is_some() && on_default_bridge(&name) {
            return Err(Error::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let c = Connected {
            network: name.clone(),
            network_id: net_id.clone(),
            aliases,
            ipv4,
            state: None,
        };
        let primary = entry.with(|d| d.net.clone());
        let index = entry.with(|d| d.connected.len()) + 1;
        let state = match primary {
            Some(p) if entry.status().is_running() => {
                let (daemon, id, c2) = (self.clone(), entry.id.clone(), c.clone());
                Some(blocking(move || daemon.extra_setup(&id, &p, &c2, index)).await?)
            }
            _ => None,
        };
        entry.update(|d| {
            d.connected.push(Connected {
                state: state.clone(),
                ..c
            })
        });
        if let Err(e) = self.persist(&entry) {
            if let Some(st) = &state {
                let (daemon, id, s2) = (self.clone(), entry.id.clone(), st.clone());
                let _ = blocking(move || {
                    daemon.extra_teardown(&id, &s2);
                    Ok(())
                })
                .await;
            }
            entry.update(|d| d.connected.retain(|x| x.network_id != net_id));
            return Err(e);
        }
        if state.is_some() {
            self.emit_network("connect", &net_id, &name, Some(&entry.id));
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect(self: &Arc<Self>, network: &str, container: &str, _force: bool) -> Result<()> {
        let (_, name, net_id, _) = self.resolve_net(network)?;
        let entry = self.find(container)?;
        let _op = entry.op.lock().await;
        let Some(c) = entry.with(|d| d.connected.iter().find(|c| c.network_id == net_id).cloned()) else {
            let mode = entry.with(|d| d.host_config.network_mode.clone().unwrap_or_default());
            let on_it = has_endpoint(&mode)
                && !entry.with(|d| d.detached)
                && self.resolve_net(&mode).map(|r| r.2 == net_id).unwrap_or(false);
            if on_it {
                return self.disconnect_primary(&entry, &net_id, &name).await;
            }
            return Err(Error::internal(format!(
                "container {} is not connected to network {name}",
                entry.id
            )));
        };
        // The record first: a crash after it leaves an endpoint reconciliation removes.
        entry.update(|d| d.connected.retain(|x| x.network_id != net_id));
        self.persist(&entry)?;
        if let Some(st) = c.state {
            let (daemon, id, s2) = (self.clone(), entry.id.clone(), st.clone());
            blocking(move || match daemon.extra_teardown(&id, &s2).into_iter().next() {
                Some(e) => Err(e),
                None => Ok(()),
            })
            .await?;
        }
        self.emit_network("disconnect", &net_id, &name, Some(&entry.id));
        Ok(())
    }

    /// Disconnects a container from the network it was created on: recorded first (a crash
    /// after it leaves what reconciliation removes), then ports, veth and lease go; a running
    /// container keeps its namespace (and its other networks).
    async fn disconnect_primary(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        net_id: &str,
        name: &str,
    ) -> Result<()> {
        let st = entry.with(|d| d.net.clone()).filter(|st| !st.ip.is_empty());
        entry.update(|d| {
            d.detached = true;
            if let Some(st) = &d.net {
                d.net = Some(NetState {
                    netns: st.netns.clone(),
                    network: st.network.clone(),
                    ..Default::default()
                });
            }
        });
        self.persist(entry)?;
        berth_sys::failpoint::hit("network.disconnect.recorded");
        if let Some(st) = st {
            let (daemon, id) = (self.clone(), entry.id.clone());
            blocking(
                move || match daemon.endpoint_teardown(&id, &st).into_iter().next() {
                    Some(e) => Err(e),
                    None => Ok(()),
                },
            )
            .await?;
        }
        self.emit_network("disconnect", net_id, name, Some(&entry.id));
        Ok(())
    }

    /// `network connect` back to the network a container was created on (the caller holds the
    /// container's operation lock): a running one gets its endpoint again (lease, `eth0` with
    /// the default route, published ports) in the namespace it runs in.
    async fn reconnect_primary(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        aliases: Vec<String>,
        ipv4: Option<String>,
    ) -> Result<()> {
        let mut doc = entry.doc();
        doc.detached = false;
        if !aliases.is_empty() {
            doc.aliases = aliases;
        }
        if ipv4.is_some() {
            doc.requested_ip = ipv4;
        }
        let running = entry.status().is_running() && doc.net.is_some();
        let state = if running {
            let (daemon, d2) = (self.clone(), doc.clone());
            Some(blocking(move || daemon.net_setup_in(&d2, false)).await?)
        } else {
            None
        };
        entry.update(|d| {
            d.detached = false;
            d.aliases = doc.aliases.clone();
            d.requested_ip = doc.requested_ip.clone();
            if let Some(st) = &state {
                d.net = Some(st.clone());
            }
        });
        if let Err(e) = self.persist(entry) {
            entry.update(|d| d.detached = true);
            if let Some(st) = &state {
                let (daemon, id, s2) = (self.clone(), entry.id.clone(), st.clone());
                let _ = blocking(move || {
                    for err in daemon.endpoint_teardown(&id, &s2) {
                        eprintln!("berthd: undoing the reconnect of {id}: {err}");
                    }
                    Ok(())
                })
                .await;
                let bare = NetState {
                    netns: st.netns.clone(),
                    network: st.network.clone(),
                    ..Default::default()
                };
                entry.update(|d| {
                    d.detached = true;
                    d.net = Some(bare);
                });
            }
            return Err(e);
        }
        let mode = doc.host_config.network_mode.clone().unwrap_or_default();
        if let Ok((_, name, net_id, _)) = self.resolve_net(&mode) {
            self.emit_network("connect", &net_id, &name, Some(&entry.id));
        }
        Ok(())
    }
}
