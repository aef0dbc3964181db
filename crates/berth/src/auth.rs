//! Registry credentials, kept as the docker CLI keeps them: `$DOCKER_CONFIG/config.json`
//! (default `~/.docker/config.json`), `auths` entries of base64 `user:password` keyed by server
//! (`https://index.docker.io/v1/` for Docker Hub, `host[:port]` otherwise), or a credential
//! helper (`credsStore`, `credHelpers`: `docker-credential-<name> get|store|erase`). The CLI
//! sends them to the daemon in `X-Registry-Auth` (base64url JSON), only for the registry of the
//! image at hand.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The key of Docker Hub in config.json.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// Credentials for one registry (Docker's `AuthConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    pub serveraddress: String,
    pub identitytoken: String,
}

impl AuthConfig {
    /// The `X-Registry-Auth` value: base64url of the JSON, empty fields left out (`e30=` for none).
    pub fn header(&self) -> String {
        let mut m = Map::new();
        for (k, v) in [
            ("username", &self.username),
            ("password", &self.password),
            ("serveraddress", &self.serveraddress),
            ("identitytoken", &self.identitytoken),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        base64::engine::general_purpose::URL_SAFE.encode(Value::Object(m).to_string())
    }
}

/// The config.json key of the registry behind a normalised domain.
pub fn server_key(domain: &str) -> String {
    if domain == "docker.io" || domain == "index.docker.io" || domain == "registry-1.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        domain.to_string()
    }
}

/// Normalises what the user typed after `login`/`logout` to a config.json key.
pub fn server_from_arg(arg: Option<&str>) -> String {
    match arg {
        None => DOCKER_HUB.to_string(),
        Some(s) => {
            let host = s.trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or(host);
            server_key(host)
        }
    }
}

/// The client configuration directory (`$DOCKER_CONFIG`, else `~/.docker`).
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".docker")
}

fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

fn load() -> anyhow::Result<Map<String, Value>> {
    let p = config_path();
    match std::fs::read(&p) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(Value::Object(m)) => Ok(m),
            _ => anyhow::bail!("loading config file: {}: invalid JSON", p.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("loading config file {}", p.display())),
    }
}

/// Writes config.json crash-safely and owner-only (it holds passwords).
fn save(cfg: &Map<String, Value>) -> anyhow::Result<()> {
    let p = config_path();
    let dir = p.parent().expect("config path has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut body = serde_json::to_vec_pretty(&Value::Object(cfg.clone()))?;
    body.push(b'\n');
    let tmp = dir.join(format!(".config.json.tmp-{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// The helper that holds `server`'s credentials, if config.json names one.
fn helper_for(cfg: &Map<String, Value>, server: &str) -> Option<String> {
    cfg.get("credHelpers")
        .and_then(|h| h.get(server))
        .or_else(|| cfg.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(helper: &str, verb: &str, input: &str) -> anyhow::Result<String> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("error getting credentials - err: exec: \"{prog}\": executable file not found in $PATH")
        })?;
    child.stdin.take().expect("piped").write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        anyhow::bail!(
            "{prog} {verb}: {text}{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}

/// The stored credentials for `server` (a config.json key); empty when there are none.
pub fn get(server: &str) -> anyhow::Result<AuthConfig> {
    let cfg = load()?;
    let mut a = AuthConfig {
        serveraddress: server.to_string(),
        ..Default::default()
    };
    if let Some(helper) = helper_for(&cfg, server) {
        let out = match run_helper(&helper, "get", server) {
            Ok(o) => o,
            // "credentials not found in native keychain": anonymous.
            Err(e) if e.to_string().contains("not found") => return Ok(a),
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(&out).context("credential helper answered no JSON")?;
        let user = v["Username"].as_str().unwrap_or_default();
        let secret = v["Secret"].as_str().unwrap_or_default();
        if user == "<token>" {
            a.identitytoken = secret.to_string();
        } else {
            a.username = user.to_string();
            a.password = secret.to_string();
        }
        return Ok(a);
    }
    if let Some(entry) = cfg.get("auths").and_then(|x| x.get(server)) {
        if let Some(b) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b)
                .with_context(|| format!("invalid auth configuration for {server}"))?;
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let (u, p) = raw
                .split_once(':')
                .with_context(|| format!("invalid auth configuration for {server}"))?;
            a.username = u.to_string();
            a.password = p.to_string();
        }
        if let Some(t) = entry.get("identitytoken").and_then(Value::as_str) {
            a.identitytoken = t.to_string();
        }
    }
    Ok(a)
}

/// The `X-Registry-Config` value `build` sends: base64url JSON of every stored credential,
/// keyed by config.json server key (the daemon picks the one a FROM's registry needs).
pub fn registry_config_header() -> anyhow::Result<String> {
    let cfg = load()?;
    let mut servers: Vec<String> = Vec::new();
    for key in ["auths", "credHelpers"] {
        if let Some(m) = cfg.get(key).and_then(Value::as_object) {
            servers.extend(m.keys().cloned());
        }
    }
    servers.sort();
    servers.dedup();
    let mut out = Map::new();
    for s in servers {
        let a = get(&s)?;
        let mut m = Map::new();
        for (k, v) in [
            ("username", &a.username),
            ("password", &a.password),
            ("serveraddress", &a.serveraddress),
            ("identitytoken", &a.identitytoken),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        out.insert(s, Value::Object(m));
    }
    Ok(base64::engine::general_purpose::URL_SAFE.encode(Value::Object(out).to_string()))
}

/// The `X-Registry-Auth` header value for an image's registry (its normalised domain).
pub fn header_for_domain(domain: &str) -> anyhow::Result<String> {
    Ok(get(&server_key(domain))?.header())
}

/// Stores credentials for `a.serveraddress` (in its helper, else base64 in `auths`).
pub fn store(a: &AuthConfig) -> anyhow::Result<()> {
    let mut cfg = load()?;
    if let Some(helper) = helper_for(&cfg, &a.serveraddress) {
        let (user, secret) = if a.identitytoken.is_empty() {
            (a.username.as_str(), a.password.as_str())
        } else {
            ("<token>", a.identitytoken.as_str())
        };
        let body = json!({"ServerURL": a.serveraddress, "Username": user, "Secret": secret});
        run_helper(&helper, "store", &body.to_string())?;
        // An empty entry marks the server as logged in, as docker writes it.
        let auths = cfg.entry("auths").or_insert_with(|| json!({}));
        if let Some(m) = auths.as_object_mut() {
            m.insert(a.serveraddress.clone(), json!({}));
        }
        return save(&cfg);
    }
    let mut entry = Map::new();
    if a.identitytoken.is_empty() {
        let raw = format!("{}:{}", a.username, a.password);
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        );
    } else {
        entry.insert("identitytoken".into(), Value::String(a.identitytoken.clone()));
    }
    let auths = cfg.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    auths
        .as_object_mut()
        .expect("object")
        .insert(a.serveraddress.clone(), Value::Object(entry));
    save(&cfg)
}

/// Removes `server`'s credentials; false if there were none.
pub fn erase(server: &str) -> anyhow::Result<bool> {
    let mut cfg = load()?;
    let had = cfg.get("auths").and_then(|x| x.get(server)).is_some();
    if let Some(helper) = helper_for(&cfg, server) {
        let _ = run_helper(&helper, "erase", server);
    }
    if let Some(m) = cfg.get_mut("auths").and_then(Value::as_object_mut) {
        m.remove(server);
    }
    if had {
        save(&cfg)?;
    }
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_base64url_json_without_empty_fields() {
        assert_eq!(AuthConfig::default().header(), "e30=");
        let a = AuthConfig {
            username: "u".into(),
            password: "p?>".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(a.header())
            .unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            v,
            json!({"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"})
        );
    }

    #[test]
    fn servers_are_keyed_like_docker() {
        assert_eq!(server_key("docker.io"), DOCKER_HUB);
        assert_eq!(server_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_from_arg(None), DOCKER_HUB);
        assert_eq!(
            server_from_arg(Some("https://reg.example:5000/v2/")),
            "reg.example:5000"
        );
        assert_eq!(server_from_arg(Some("docker.io")), DOCKER_HUB);
    }

    #[test]
    fn credentials_round_trip_through_config_json() {
        let d = tempfile::tempdir().unwrap();
        // SAFETY of the test: this test alone sets DOCKER_CONFIG in this process.
        std::env::set_var("DOCKER_CONFIG", d.path());
        std::fs::write(d.path().join("config.json"), br#"{"psFormat":"table {{.ID}}"}"#).unwrap();
        let a = AuthConfig {
            username: "alice".into(),
            password: "s3cret".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        store(&a).unwrap();
        assert_eq!(get("127.0.0.1:5000").unwrap(), a);
        let text = std::fs::read_to_string(d.path().join("config.json")).unwrap();
        assert!(text.contains("\"psFormat\""), "other settings are kept: {text}");
        assert!(text.contains("YWxpY2U6czNjcmV0"), "{text}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(d.path().join("config.json")).unwrap().mode() & 0o777,
            0o600
        );
        assert!(erase("127.0.0.1:5000").unwrap());
        assert!(!erase("127.0.0.1:5000").unwrap());
        assert_eq!(get("127.0.0.1:5000").unwrap().username, "");
        std::env::remove_var("DOCKER_CONFIG");
    }
}
