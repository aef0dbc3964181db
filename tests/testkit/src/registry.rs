//! The real distribution registry (Debian's `docker-registry`, distribution 2.8), started on a
//! port it picks on 127.0.0.1 (or inside a test network namespace) with filesystem storage in a
//! temp dir; optional htpasswd basic auth, token auth (a [`TokenServer`]), TLS with optional
//! client certificates, and pull-through proxy mode. Dropping it kills the process and removes
//! its files, also when the test failed.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::pki::CertKey;
use crate::token::{TokenServer, ISSUER, SERVICE};

/// The registry binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// TLS for the registry's listener.
#[derive(Debug, Clone)]
pub struct Tls {
    pub server: CertKey,
    /// Require client certificates signed by this CA (`http.tls.clientcas`).
    pub client_ca: Option<PathBuf>,
}

/// How to run the registry. `Options::default()` is plain http on 127.0.0.1, no auth.
#[derive(Default)]
pub struct Options<'a> {
    /// htpasswd basic auth with these users (bcrypt, made with `htpasswd -B`).
    pub htpasswd: Vec<(String, String)>,
    /// Token auth against this token server.
    pub token: Option<&'a TokenServer>,
    pub tls: Option<Tls>,
    /// Pull-through cache of this origin (`proxy.remoteurl`), with optional credentials.
    pub proxy_remote: Option<(String, Option<(String, String)>)>,
    /// Run inside this namespace, listening on its address.
    pub netns: Option<&'a Netns>,
    /// The port (default: one the kernel picks on 127.0.0.1; 5000 in a namespace).
    pub port: Option<u16>,
    /// Reuse this storage directory instead of a fresh one.
    pub storage: Option<PathBuf>,
}

/// A running registry.
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    tls: bool,
    dir: tempfile::TempDir,
    storage: PathBuf,
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap() // JSON strings are YAML strings
}

impl Registry {
    /// Plain http on 127.0.0.1, no auth.
    pub fn start() -> Registry {
        Registry::start_with(Options::default())
    }

    /// Starts the registry and waits until it answers.
    pub fn start_with(opts: Options<'_>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing: run scripts/deps.sh (Debian's docker-registry)"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-testkit-registry-")
            .tempdir()
            .unwrap();
        let storage = opts.storage.clone().unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&storage).unwrap();
        let mut last_err = String::new();
        for _ in 0..5 {
            let ip: IpAddr = match opts.netns {
                Some(ns) => ns.ns_ip.into(),
                None => "127.0.0.1".parse().unwrap(),
            };
            let port = opts
                .port
                .unwrap_or_else(|| if opts.netns.is_some() { 5000 } else { free_port() });
            let addr = SocketAddr::new(ip, port);
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, Registry::config(&opts, dir.path(), &storage, addr)).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = match opts.netns {
                Some(ns) => ns.command(REGISTRY_BIN),
                None => Command::new(REGISTRY_BIN),
            };
            cmd.arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            let mut child = cmd.spawn().expect("spawn docker-registry");
            match wait_ready(&mut child, addr, opts.tls.is_some() || opts.netns.is_some()) {
                Ok(()) => {
                    return Registry {
                        child: Some(child),
                        addr,
                        tls: opts.tls.is_some(),
                        dir,
                        storage,
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!("{e}\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
                    // A port race (someone took the port between free_port() and the bind) is
                    // the only failure worth another try.
                    if opts.port.is_some() || !last_err.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("registry did not start: {last_err}");
    }

    fn config(opts: &Options<'_>, dir: &Path, storage: &Path, addr: SocketAddr) -> String {
        let mut c = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             health:\n  storagedriver:\n    enabled: false\n\
             http:\n  addr: {}\n  secret: berth-testkit-secret\n",
            yaml_str(storage.to_str().unwrap()),
            yaml_str(&addr.to_string()),
        );
        if let Some(tls) = &opts.tls {
            c.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_str(tls.server.cert.to_str().unwrap()),
                yaml_str(tls.server.key.to_str().unwrap())
            ));
            if let Some(ca) = &tls.client_ca {
                c.push_str(&format!(
                    "    clientcas:\n      - {}\n",
                    yaml_str(ca.to_str().unwrap())
                ));
            }
        }
        if !opts.htpasswd.is_empty() {
            let path = dir.join("htpasswd");
            let mut lines = String::new();
            for (user, password) in &opts.htpasswd {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd missing: apt-get install apache2-utils");
                assert!(out.status.success(), "htpasswd failed");
                lines.push_str(String::from_utf8_lossy(&out.stdout).trim());
                lines.push('\n');
            }
            std::fs::write(&path, lines).unwrap();
            c.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test-realm\n    path: {}\n",
                yaml_str(path.to_str().unwrap())
            ));
        } else if let Some(ts) = opts.token {
            c.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                yaml_str(&ts.realm()),
                yaml_str(SERVICE),
                yaml_str(ISSUER),
                yaml_str(ts.cert().to_str().unwrap())
            ));
        }
        if let Some((url, creds)) = &opts.proxy_remote {
            c.push_str(&format!("proxy:\n  remoteurl: {}\n", yaml_str(url)));
            if let Some((u, p)) = creds {
                c.push_str(&format!(
                    "  username: {}\n  password: {}\n",
                    yaml_str(u),
                    yaml_str(p)
                ));
            }
        }
        c
    }

    /// `127.0.0.1:PORT` (or the namespace address): the registry's host for references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST` or `https://HOST`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// The storage directory (filesystem driver root).
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry now (its files stay until drop): for tests of a registry going away.
    pub fn stop(&mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Pushes a test image with raw HTTP (plain-http registries on loopback), authenticating with
    /// `authorization` (a full header value such as `Basic …` or `Bearer …`) when given.
    pub fn push(
        &self,
        repo: &str,
        reference: &str,
        image: &crate::image::Pushable,
        authorization: Option<&str>,
    ) {
        image.push(self.addr, repo, reference, authorization)
    }
}

fn wait_ready(child: &mut Child, addr: SocketAddr, connect_only: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("docker-registry exited: {st}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            if connect_only {
                return Ok(());
            }
            // plain http on loopback: wait for /v2/ to answer (200 or 401)
            if let Ok(m) = crate::http::request(addr, "GET", "/v2/", &[], b"") {
                if matches!(m.status(), 200 | 401) {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err("registry did not answer within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `GET path` from a plain-http registry (for assertions), with an optional Authorization.
pub fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> crate::http::Message {
    let mut h = vec![];
    if let Some(a) = authorization {
        h.push(("Authorization", a));
    }
    crate::http::request(addr, "GET", path, &h, b"").unwrap()
}
