//! The embedded DNS server of user networks: for each container on one, a UDP socket and a TCP
//! listener bound to 127.0.0.11:53 inside its network namespace, served by the daemon. Container names, short IDs
//! and `--network-alias`es of the running containers on the same network are answered; other
//! names are forwarded from the host's namespace to the upstream servers (`--dns`, daemon.json
//! `dns`, else the host's resolv.conf) and the reply relayed (over TCP for a TCP client or a
//! truncated UDP reply). Tasks end with the endpoint; a
//! restarted daemon serves running containers again.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use berth_network::dns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::error::{Error, Result};
use crate::network::NetState;
use crate::Daemon;

/// The address the embedded server answers on inside a container.
pub const ADDRESS: &str = "127.0.0.11";

/// How long an upstream server has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a TCP client may stay silent between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Reads one length-prefixed DNS message (RFC 1035 4.2.2).
async fn read_framed(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).await?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut msg).await?;
    Ok(msg)
}

/// Writes one length-prefixed DNS message.
async fn write_framed(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("DNS message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    conn.write_all(&out).await
}

/// Forwards a query to `server` over UDP; the reply (matching ID) or `None`.
async fn forward_udp(server: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(req).await.ok()?;
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf)).await {
        Ok(Ok(n)) if n >= 2 && buf[..2] == req[..2] => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Forwards a query to `server` over TCP; the reply (matching ID) or `None`.
async fn forward_tcp(server: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    let exchange = async {
        let mut conn = TcpStream::connect(server).await?;
        write_framed(&mut conn, req).await?;
        read_framed(&mut conn).await
    };
    match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
        Ok(Ok(resp)) if resp.len() >= 2 && resp[..2] == req[..2] => Some(resp),
        _ => None,
    }
}

impl Daemon {
    /// Starts the embedded DNS server of a container's endpoint on a user network: UDP and TCP
    /// on 127.0.0.11:53 inside its namespace, one task (aborted by [`Daemon::dns_stop`]).
    pub(crate) fn dns_start(self: &Arc<Self>, id: &str, st: &NetState) -> Result<()> {
        let Some(nets) = self.networks.as_ref() else {
            return Ok(());
        };
        let cannot = |e| Error::io("cannot start the embedded DNS server", e);
        let (std_udp, std_tcp) = berth_sys::netns::run_in(&st.netns, || {
            let udp = std::net::UdpSocket::bind((ADDRESS, 53))?;
            let tcp = std::net::TcpListener::bind((ADDRESS, 53))?;
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            Ok::<_, std::io::Error>((udp, tcp))
        })
        .and_then(|r| r)
        .map_err(cannot)?;
        let sock = UdpSocket::from_std(std_udp).map_err(cannot)?;
        let listener = TcpListener::from_std(std_tcp).map_err(cannot)?;
        let daemon = self.clone();
        let (cid, network_id) = (id.to_string(), st.network_id.clone());
        let udp = {
            let (daemon, cid, network_id) = (daemon.clone(), cid.clone(), network_id.clone());
            async move {
                let sock = Arc::new(sock);
                let mut buf = vec![0u8; 1500];
                loop {
                    let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                        break;
                    };
                    let req = buf[..n].to_vec();
                    let (daemon, sock, cid, network_id) =
                        (daemon.clone(), sock.clone(), cid.clone(), network_id.clone());
                    tokio::spawn(async move {
                        if let Some(resp) = daemon.dns_answer(&cid, &network_id, &req, false).await {
                            let _ = sock.send_to(&resp, peer).await;
                        }
                    });
                }
            }
        };
        let tcp = async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    break;
                };
                let (daemon, cid, network_id) = (daemon.clone(), cid.clone(), network_id.clone());
                tokio::spawn(async move { daemon.dns_serve_tcp(conn, &cid, &network_id).await });
            }
        };
        let task = tokio::spawn(async move {
            tokio::join!(udp, tcp);
        });
        if let Some(old) = nets
            .dns
            .lock()
            .unwrap()
            .insert(id.to_string(), task.abort_handle())
        {
            old.abort();
        }
        Ok(())
    }

    /// One TCP client: length-prefixed queries answered in turn until it closes or idles.
    async fn dns_serve_tcp(&self, mut conn: TcpStream, cid: &str, network_id: &str) {
        loop {
            let req = match tokio::time::timeout(TCP_IDLE, read_framed(&mut conn)).await {
                Ok(Ok(r)) => r,
                _ => return,
            };
            let Some(resp) = self.dns_answer(cid, network_id, &req, true).await else {
                return;
            };
            if write_framed(&mut conn, &resp).await.is_err() {
                return;
            }
        }
    }

    /// Stops a container's DNS server (its socket closes with the task).
    pub(crate) fn dns_stop(&self, id: &str) {
        if let Some(nets) = self.networks.as_ref() {
            if let Some(h) = nets.dns.lock().unwrap().remove(id) {
                h.abort();
            }
        }
    }

    /// The addresses `name` has on network `network_id`: running containers by name, short or
    /// full ID, or alias.
    fn dns_lookup(&self, asker: &str, name: &str) -> Vec<Ipv4Addr> {
        let c = self.containers.read().unwrap();
        let endpoints = |d: &crate::container::Doc| -> Vec<(NetState, Vec<String>)> {
            let mut v: Vec<(NetState, Vec<String>)> = d
                .net
                .iter()
                .filter(|n| !n.ip.is_empty())
                .map(|n| (n.clone(), d.aliases.clone()))
                .collect();
            v.extend(
                d.connected
                    .iter()
                    .filter_map(|c| c.state.clone().map(|s| (s, c.aliases.clone()))),
            );
            v
        };
        // The user networks the asking container is on.
        let mine: Vec<String> = c
            .by_id
            .get(asker)
            .map(|e| {
                e.with(|d| {
                    endpoints(d)
                        .into_iter()
                        .filter(|(n, _)| n.network != crate::network::DEFAULT)
                        .map(|(n, _)| n.network_id)
                        .collect()
                })
            })
            .unwrap_or_default();
        // A link on a user network: an alias only this container resolves.
        let target = c
            .by_id
            .get(asker)
            .and_then(|e| e.with(|d| crate::links::alias_target(d, name)));
        let name = target.as_deref().unwrap_or(name);
        c.by_id
            .values()
            .filter_map(|e| {
                e.with(|d| {
                    endpoints(d).into_iter().find_map(|(n, aliases)| {
                        if !mine.contains(&n.network_id) {
                            return None;
                        }
                        let hit = d.name.eq_ignore_ascii_case(name)
                            || (name.len() >= 12
                                && d.id.starts_with(name)
                                && (name.len() == 12 || name.len() == 64))
                            || aliases.iter().any(|a| a.eq_ignore_ascii_case(name));
                        hit.then(|| n.ip.parse().ok()).flatten()
                    })
                })
            })
            .collect()
    }

    /// The upstream servers for a container: its `--dns`, the daemon's `dns`, the host's.
    fn dns_upstreams(&self, cid: &str) -> Vec<SocketAddr> {
        let own = self
            .find(cid)
            .ok()
            .and_then(|e| e.with(|d| d.host_config.dns.clone()))
            .unwrap_or_default();
        let list = if !own.is_empty() {
            own
        } else if !self.config.network.dns.is_empty() {
            self.config.network.dns.clone()
        } else {
            std::fs::read_to_string("/etc/resolv.conf")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver").map(|s| s.trim().to_string()))
                .collect()
        };
        list.iter()
            .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect()
    }

    /// The answer to one query: a name of the container's networks, else the upstream
    /// servers' reply (over TCP when the client asked over TCP, or when a UDP reply came back
    /// truncated and the whole one fits a UDP client), else SERVFAIL.
    async fn dns_answer(&self, cid: &str, network_id: &str, req: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let q = dns::parse_query(req)?;
        if q.qclass == dns::CLASS_IN {
            let _ = network_id;
            let ips = self.dns_lookup(cid, &q.name);
            if !ips.is_empty() {
                let ips = if q.qtype == dns::TYPE_A { ips } else { vec![] };
                return Some(dns::answer(req, &q, &ips, 600));
            }
        }
        for server in self.dns_upstreams(cid) {
            if tcp {
                match forward_tcp(server, req).await {
                    Some(resp) => return Some(resp),
                    None => continue,
                }
            }
            let Some(resp) = forward_udp(server, req).await else {
                continue;
            };
            if dns::is_truncated(&resp) {
                if let Some(full) = forward_tcp(server, req).await.filter(|r| r.len() <= dns::UDP_MAX) {
                    return Some(full);
                }
            }
            // Truncated still: the client asks again over TCP.
            return Some(resp);
        }
        Some(dns::failure(req, &q, 2))
    }
}

/// resolv.conf of a container on a user network: the embedded server, the host's search
/// domains (or `--dns-search`) and options.
pub fn resolv_conf(search: &[String], options: &[String]) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    if search.is_empty() {
        for l in host.lines().filter(|l| l.starts_with("search ")) {
            out.push_str(l);
            out.push('\n');
        }
    } else {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    out.push_str(&format!("nameserver {ADDRESS}\n"));
    let mut opts = vec!["ndots:0".to_string()];
    opts.extend(options.iter().cloned());
    out.push_str(&format!("options {}\n", opts.join(" ")));
    out
}
