//! Where requests for a registry go: the endpoints of a registry domain, in the order they are
//! tried, each with its TLS settings and capabilities.
//!
//! ```text
//! <certs_dir>/                         (daemon: <config-dir>/certs.d)
//!   <host[:port]>/                     Docker's layout, for any endpoint host
//!     *.crt                            extra CA roots
//!     <name>.cert + <name>.key         a client certificate
//!   <registry domain>/hosts.toml       containerd's format (docker.io included):
//!     server = "https://registry-1.docker.io"      the origin (default: https://<domain>)
//!     [host."http://127.0.0.1:5000"]               mirrors, tried in file order before the origin
//!       capabilities = ["pull", "resolve"]         (default pull, resolve, push)
//!       ca = "ca.crt" | ["…"]                      relative to the hosts.toml directory
//!       client = "c.pem" | ["c.cert", "c.key"] | [["c.cert", "c.key"]]
//!       skip_verify = true
//!       override_path = true                       the URL's path is the API root (no /v2)
//!       [host."…".header] x-name = "v" | ["v1", "v2"]
//!   _default/hosts.toml                 for domains without their own
//! ```
//!
//! docker.io is served by `registry-mirrors` (daemon.json; pull and resolve only) first, then by
//! what its hosts.toml lists, else `https://registry-1.docker.io`; any other domain by its
//! hosts.toml, else `https://<domain>`. So a site that points docker.io somewhere with hosts.toml
//! keeps its daemon.json mirrors in front. Credentials go only to the origin (the domain itself,
//! or hosts.toml's `server`), never to a mirror.
//!
//! Insecure hosts (Docker's rule): `localhost`, 127.0.0.0/8 and ::1, and what
//! `insecure-registries` lists (host[:port] or a CIDR holding the host's IP literal; hostnames
//! are not resolved for the CIDR check, unlike Docker, so tests never touch the resolver). An
//! insecure https endpoint skips certificate verification and, when https fails to connect,
//! falls back to plain http.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::Error;

/// The origin API host of docker.io.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// What an endpoint may be used for (containerd's host capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub pull: bool,
    pub resolve: bool,
    pub push: bool,
}

impl Caps {
    pub const ALL: Caps = Caps {
        pull: true,
        resolve: true,
        push: true,
    };
    pub const PULL_RESOLVE: Caps = Caps {
        pull: true,
        resolve: true,
        push: false,
    };
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Tag → digest.
    Resolve,
    /// Content by digest.
    Pull,
    Push,
}

impl Caps {
    pub fn has(&self, need: Need) -> bool {
        match need {
            Need::Resolve => self.resolve,
            Need::Pull => self.pull,
            Need::Push => self.push,
        }
    }
}

/// TLS settings of one endpoint: also the key of its HTTP client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct TlsSettings {
    pub skip_verify: bool,
    pub cas: Vec<PathBuf>,
    /// (certificate, key) PEM files.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// One place requests for a registry can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The API root path, `/v2` unless hosts.toml overrides it.
    pub path: String,
    pub caps: Caps,
    /// The registry itself (credentials go here), not a mirror.
    pub origin: bool,
    pub tls: TlsSettings,
    /// An insecure https endpoint: fall back to http when https fails to connect.
    pub http_fallback: bool,
    pub headers: Vec<(String, String)>,
}

impl Endpoint {
    /// `scheme://host/v2`.
    pub fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }

    /// The same endpoint over plain http.
    pub fn as_http(&self) -> Endpoint {
        Endpoint {
            scheme: "http".into(),
            http_fallback: false,
            ..self.clone()
        }
    }
}

/// The registry-wide settings endpoints are computed from.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostsConfig {
    pub certs_dir: PathBuf,
    pub insecure: Vec<String>,
    pub mirrors: Vec<String>,
}

fn host_ip(host: &str) -> Option<IpAddr> {
    let h = host
        .strip_prefix('[')
        .map(|h| h.split(']').next().unwrap_or(h))
        .unwrap_or_else(|| {
            // host:port → host (an IPv6 literal without brackets has more than one ':')
            if host.matches(':').count() == 1 {
                host.split(':').next().unwrap_or(host)
            } else {
                host
            }
        });
    h.parse().ok()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    }
}

/// Whether `ip` lies in `cidr` (`10.0.0.0/8`, `fd00::/8`); false for anything malformed.
pub(crate) fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl HostsConfig {
    /// Docker's `isSecureIndex`, without DNS: see the module doc.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        if name == "localhost" {
            return true;
        }
        let ip = host_ip(host);
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            let e = entry
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if e.contains('/') {
                ip.is_some_and(|ip| in_cidr(ip, e))
            } else {
                e.eq_ignore_ascii_case(host)
            }
        })
    }

    /// Docker's certs.d files for `host`: `*.crt` CAs and `*.cert`/`*.key` client pairs.
    pub fn certs_d(&self, host: &str) -> Result<TlsSettings, Error> {
        let dir = self.certs_dir.join(host);
        let mut tls = TlsSettings::default();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(tls);
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in &names {
            if n.ends_with(".crt") {
                tls.cas.push(dir.join(n));
            } else if let Some(stem) = n.strip_suffix(".cert") {
                let key = format!("{stem}.key");
                if !names.contains(&key) {
                    return Err(Error::Config(format!(
                        "missing key {key} for client certificate {n} in {}",
                        dir.display()
                    )));
                }
                tls.client = Some((dir.join(n), dir.join(key)));
            } else if let Some(stem) = n.strip_suffix(".key") {
                if !names.contains(&format!("{stem}.cert")) {
                    return Err(Error::Config(format!(
                        "missing client certificate {stem}.cert for key {n} in {}",
                        dir.display()
                    )));
                }
            }
        }
        Ok(tls)
    }

    /// The endpoints of `domain` (a reference's domain: `docker.io`, `host:port`) that can
    /// serve `need`, in the order to try them; the origin is last.
    pub fn endpoints(&self, domain: &str, need: Need) -> Result<Vec<Endpoint>, Error> {
        let hosts_toml = [domain, "_default"]
            .iter()
            .map(|d| self.certs_dir.join(d).join("hosts.toml"))
            .find(|p| p.exists());
        let all = match hosts_toml {
            Some(p) => {
                let mut v = self.daemon_mirrors(domain)?;
                v.extend(self.read_hosts_toml(domain, &p)?);
                v
            }
            None => self.defaults(domain)?,
        };
        Ok(all.into_iter().filter(|e| e.caps.has(need)).collect())
    }

    fn origin_host(domain: &str) -> String {
        if domain == "docker.io" {
            DOCKER_HUB_HOST.to_string()
        } else {
            domain.to_string()
        }
    }

    /// An endpoint for a URL (`https://h:p/path`, or a bare host), with certs.d TLS settings.
    fn endpoint(&self, url: &str, caps: Caps, origin: bool, override_path: bool) -> Result<Endpoint, Error> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("https".to_string(), url),
        };
        if scheme != "http" && scheme != "https" {
            return Err(Error::Config(format!(
                "unsupported scheme in registry URL {url:?}"
            )));
        }
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(Error::Config(format!("no host in registry URL {url:?}")));
        }
        let path = if override_path {
            path.to_string()
        } else {
            format!("{path}/v2")
        };
        let insecure = self.is_insecure(host);
        let mut tls = self.certs_d(host)?;
        tls.skip_verify = insecure;
        Ok(Endpoint {
            http_fallback: scheme == "https" && insecure,
            scheme,
            host: host.to_string(),
            path,
            caps,
            origin,
            tls,
            headers: vec![],
        })
    }

    /// daemon.json's `registry-mirrors`: Docker Hub only, pull and resolve only.
    fn daemon_mirrors(&self, domain: &str) -> Result<Vec<Endpoint>, Error> {
        if domain != "docker.io" {
            return Ok(vec![]);
        }
        self.mirrors
            .iter()
            .map(|m| self.endpoint(m.trim(), Caps::PULL_RESOLVE, false, false))
            .collect()
    }

    fn defaults(&self, domain: &str) -> Result<Vec<Endpoint>, Error> {
        let mut v = self.daemon_mirrors(domain)?;
        v.push(self.endpoint(&Self::origin_host(domain), Caps::ALL, true, false)?);
        Ok(v)
    }

    fn read_hosts_toml(&self, domain: &str, path: &Path) -> Result<Vec<Endpoint>, Error> {
        let bad = |what: String| Error::Config(format!("{}: {what}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut v = vec![];
        if let Some(hosts) = doc.get("host") {
            let hosts = hosts
                .as_table()
                .ok_or_else(|| bad("[host] must be a table".into()))?;
            for (url, t) in hosts {
                let t = t
                    .as_table()
                    .ok_or_else(|| bad(format!("[host.{url:?}] must be a table")))?;
                v.push(
                    self.host_entry(url, t, dir, false)
                        .map_err(|e| bad(e.to_string()))?,
                );
            }
        }
        let server = match doc.get("server") {
            Some(s) => s
                .as_str()
                .ok_or_else(|| bad("server must be a string".into()))?
                .to_string(),
            None => format!("https://{}", Self::origin_host(domain)),
        };
        v.push(
            self.host_entry(&server, &doc, dir, true)
                .map_err(|e| bad(e.to_string()))?,
        );
        Ok(v)
    }

    fn host_entry(&self, url: &str, t: &toml::Table, dir: &Path, origin: bool) -> Result<Endpoint, Error> {
        let caps = match t.get("capabilities") {
            None => Caps::ALL,
            Some(c) => {
                let list = strings(c)
                    .ok_or_else(|| Error::Config("capabilities must be a list of strings".into()))?;
                let mut caps = Caps {
                    pull: false,
                    resolve: false,
                    push: false,
                };
                for c in list {
                    match c.as_str() {
                        "pull" => caps.pull = true,
                        "resolve" => caps.resolve = true,
                        "push" => caps.push = true,
                        other => return Err(Error::Config(format!("unknown capability {other:?}"))),
                    }
                }
                caps
            }
        };
        let override_path = t.get("override_path").and_then(|v| v.as_bool()).unwrap_or(false);
        let mut e = self.endpoint(url, caps, origin, override_path)?;
        let rel = |p: &str| {
            if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                dir.join(p)
            }
        };
        if let Some(ca) = t.get("ca") {
            let cas = strings(ca)
                .ok_or_else(|| Error::Config("ca must be a string or a list of strings".into()))?;
            e.tls.cas.extend(cas.iter().map(|c| rel(c)));
        }
        if let Some(c) = t.get("client") {
            let pair = match c {
                toml::Value::String(pem) => Some((rel(pem), rel(pem))),
                toml::Value::Array(a) => match a.first() {
                    Some(toml::Value::Array(p)) => strings(&toml::Value::Array(p.clone()))
                        .filter(|p| p.len() == 2)
                        .map(|p| (rel(&p[0]), rel(&p[1]))),
                    Some(toml::Value::String(_)) => strings(c).and_then(|p| match p.as_slice() {
                        [one] => Some((rel(one), rel(one))),
                        [cert, key] => Some((rel(cert), rel(key))),
                        _ => None,
                    }),
                    _ => None,
                },
                _ => None,
            };
            e.tls.client = Some(pair.ok_or_else(|| {
                Error::Config("client must be \"pem\", [\"cert\", \"key\"] or [[\"cert\", \"key\"]]".into())
            })?);
        }
        if let Some(skip) = t.get("skip_verify").and_then(|v| v.as_bool()) {
            e.tls.skip_verify = skip || self.is_insecure(&e.host);
        }
        if let Some(h) = t.get("header").and_then(|h| h.as_table()) {
            for (k, v) in h {
                for val in strings(v).unwrap_or_default() {
                    e.headers.push((k.clone(), val));
                }
            }
        }
        Ok(e)
    }
}

fn strings(v: &toml::Value) -> Option<Vec<String>> {
    match v {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> HostsConfig {
        HostsConfig {
            certs_dir: dir.to_path_buf(),
            insecure: vec!["reg.example:5000".into(), "10.9.0.0/16".into()],
            mirrors: vec!["https://mirror.example".into(), "http://127.0.0.1:5001".into()],
        }
    }

    #[test]
    fn loopback_localhost_and_listed_registries_are_insecure() {
        let c = cfg(Path::new("/nonexistent"));
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "127.8.9.10",
            "reg.example:5000",
            "10.9.3.4:443",
        ] {
            assert!(c.is_insecure(h), "{h}");
        }
        for h in [
            "reg.example",
            "10.10.0.1",
            "registry-1.docker.io",
            "example.com:5000",
        ] {
            assert!(!c.is_insecure(h), "{h}");
        }
    }

    #[test]
    fn docker_io_uses_the_mirrors_then_the_origin() {
        let c = cfg(Path::new("/nonexistent"));
        let e = c.endpoints("docker.io", Need::Resolve).unwrap();
        let bases: Vec<String> = e.iter().map(Endpoint::base).collect();
        assert_eq!(
            bases,
            [
                "https://mirror.example/v2",
                "http://127.0.0.1:5001/v2",
                "https://registry-1.docker.io/v2"
            ]
        );
        assert_eq!(
            e.iter().map(|e| e.origin).collect::<Vec<_>>(),
            [false, false, true]
        );
        let push = c.endpoints("docker.io", Need::Push).unwrap();
        assert_eq!(push.len(), 1, "mirrors do not take pushes");
        let other = c.endpoints("127.0.0.1:5000", Need::Resolve).unwrap();
        assert_eq!(other.len(), 1);
        assert!(other[0].http_fallback && other[0].tls.skip_verify);
    }

    #[test]
    fn hosts_toml_orders_hosts_before_the_server_and_reads_tls() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("docker.io");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hosts.toml"),
            r#"server = "http://127.0.0.1:5000"
[host."https://z-mirror.example:5443/prefix"]
  capabilities = ["pull", "resolve"]
  ca = "ca.crt"
  client = [["c.cert", "c.key"]]
  override_path = true
  [host."https://z-mirror.example:5443/prefix".header]
    x-test = "yes"
[host."https://a-mirror.example"]
  capabilities = ["pull"]
  skip_verify = true
"#,
        )
        .unwrap();
        let c = HostsConfig {
            certs_dir: d.path().to_path_buf(),
            ..Default::default()
        };
        let e = c.endpoints("docker.io", Need::Pull).unwrap();
        let bases: Vec<String> = e.iter().map(Endpoint::base).collect();
        assert_eq!(
            bases,
            [
                "https://z-mirror.example:5443/prefix",
                "https://a-mirror.example/v2",
                "http://127.0.0.1:5000/v2"
            ],
            "file order, then the server"
        );
        assert_eq!(e[0].tls.cas, [dir.join("ca.crt")]);
        assert_eq!(e[0].tls.client, Some((dir.join("c.cert"), dir.join("c.key"))));
        assert_eq!(e[0].headers, [("x-test".to_string(), "yes".to_string())]);
        assert!(e[1].tls.skip_verify && !e[0].tls.skip_verify);
        assert!(e[2].origin && !e[0].origin);
        let resolve = c.endpoints("docker.io", Need::Resolve).unwrap();
        assert_eq!(resolve.len(), 2, "a pull-only host does not resolve tags");

        // daemon.json's registry-mirrors stay in front of docker.io's hosts.toml, and only there.
        let with_mirrors = HostsConfig {
            mirrors: vec!["http://127.0.0.1:5001".into()],
            ..c
        };
        let e = with_mirrors.endpoints("docker.io", Need::Resolve).unwrap();
        let bases: Vec<String> = e.iter().map(Endpoint::base).collect();
        assert_eq!(
            bases,
            [
                "http://127.0.0.1:5001/v2",
                "https://z-mirror.example:5443/prefix",
                "http://127.0.0.1:5000/v2"
            ]
        );
        let other = d.path().join("reg.example");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("hosts.toml"), "server = \"https://reg.example\"\n").unwrap();
        let e = with_mirrors.endpoints("reg.example", Need::Resolve).unwrap();
        assert_eq!(e.len(), 1, "mirrors serve docker.io only");
    }

    #[test]
    fn certs_d_holds_cas_and_client_pairs() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("reg.example:5443");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["ca.crt", "client.cert", "client.key"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let c = HostsConfig {
            certs_dir: d.path().to_path_buf(),
            ..Default::default()
        };
        let t = c.certs_d("reg.example:5443").unwrap();
        assert_eq!(t.cas, [dir.join("ca.crt")]);
        assert_eq!(t.client, Some((dir.join("client.cert"), dir.join("client.key"))));
        std::fs::remove_file(dir.join("client.key")).unwrap();
        assert!(c
            .certs_d("reg.example:5443")
            .unwrap_err()
            .to_string()
            .contains("missing key client.key"));
    }
}
