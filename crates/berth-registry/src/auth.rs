//! Credentials and challenges: Docker's `AuthConfig` (the `X-Registry-Auth` header, base64url
//! JSON), `WWW-Authenticate` challenges (Basic, Bearer realm/service/scope), token responses, and
//! which registry a set of credentials belongs to.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Docker's `types.AuthConfig`: what `X-Registry-Auth` and `POST /auth` carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64(`user:password`), what config.json stores.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// An OAuth2 refresh token (from a previous login); exchanged at the token endpoint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token sent to the registry as it is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
    /// The registry the credentials are for (`https://index.docker.io/v1/`, `host:port`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
}

/// The credential a request can use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Credential {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// Exchanged for access tokens with `grant_type=refresh_token`.
    Identity {
        username: String,
        token: String,
    },
    /// Sent as `Authorization: Bearer …` directly.
    Registry(String),
}

impl AuthConfig {
    /// Parses an `X-Registry-Auth` header: base64url (padded or not; docker-py sends standard
    /// base64) JSON. An empty header or `{}` is anonymous.
    pub fn from_header(header: &str) -> Result<AuthConfig, Error> {
        let h = header.trim();
        if h.is_empty() {
            return Ok(AuthConfig::default());
        }
        let bytes = URL_SAFE
            .decode(h)
            .or_else(|_| STANDARD.decode(h))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')))
            .map_err(|_| Error::InvalidArgument("invalid X-Registry-Auth header: bad base64".into()))?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) || bytes == b"{}" || bytes == b"null" {
            return Ok(AuthConfig::default());
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid X-Registry-Auth header: {e}")))
    }

    /// The header form (base64url of the JSON), as the docker CLI sends it.
    pub fn to_header(&self) -> String {
        URL_SAFE.encode(serde_json::to_vec(self).expect("AuthConfig serializes"))
    }

    /// Whether it carries any credential.
    pub fn is_empty(&self) -> bool {
        matches!(self.credential(), Credential::Anonymous)
    }

    /// user/password from `username`/`password`, else from `auth`.
    pub(crate) fn credential(&self) -> Credential {
        if !self.registrytoken.is_empty() {
            return Credential::Registry(self.registrytoken.clone());
        }
        let (mut user, mut pass) = (self.username.clone(), self.password.clone());
        if (user.is_empty() || pass.is_empty()) && !self.auth.is_empty() {
            if let Some((u, p)) = STANDARD
                .decode(self.auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
            {
                (user, pass) = (u, p);
            }
        }
        if !self.identitytoken.is_empty() {
            return Credential::Identity {
                username: user,
                token: self.identitytoken.clone(),
            };
        }
        if user.is_empty() && pass.is_empty() {
            Credential::Anonymous
        } else {
            Credential::Basic {
                username: user,
                password: pass,
            }
        }
    }
}

/// A `WWW-Authenticate` challenge from `GET /v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// The registry answered 200: no auth.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub(crate) fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
            })
        }
        _ => None,
    }
}

/// `k="v", k2=v2` with quoted strings (backslash escapes).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            val = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.push((key.trim().to_string(), val));
    }
    out
}

/// A token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn token(&self) -> &str {
        if self.access_token.is_empty() {
            &self.token
        } else {
            &self.access_token
        }
    }
}

/// Parses an `X-Registry-Config` header (`build`): base64 JSON of credentials keyed by
/// registry (`https://index.docker.io/v1/`, `host:port`). Empty or `{}`: none.
pub fn auth_configs_from_header(
    header: &str,
) -> Result<std::collections::BTreeMap<String, AuthConfig>, Error> {
    let h = header.trim();
    if h.is_empty() {
        return Ok(Default::default());
    }
    let bytes = URL_SAFE
        .decode(h)
        .or_else(|_| STANDARD.decode(h))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')))
        .map_err(|_| Error::InvalidArgument("invalid X-Registry-Config header: bad base64".into()))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) || bytes == b"null" {
        return Ok(Default::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidArgument(format!("invalid X-Registry-Config header: {e}")))
}

/// The credentials in `auths` (an `X-Registry-Config`) for the registry `domain` (normalised,
/// `docker.io` for Docker Hub); anonymous when none.
pub fn auth_for_domain(auths: &std::collections::BTreeMap<String, AuthConfig>, domain: &str) -> AuthConfig {
    auths
        .iter()
        .find(|(k, _)| normalize_server(k) == normalize_server(domain))
        .map(|(k, a)| {
            let mut a = a.clone();
            if a.serveraddress.is_empty() {
                a.serveraddress = k.clone();
            }
            a
        })
        .unwrap_or_default()
}

/// The registry host credentials are for: `https://index.docker.io/v1/`, `docker.io`, ``
/// → `docker.io`; `http://host:5000/v2/` → `host:5000`.
pub fn normalize_server(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_lowercase();
    match host.as_str() {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_config_headers_pick_the_registry() {
        let h = URL_SAFE.encode(r#"{"https://index.docker.io/v1/":{"username":"hub"},"127.0.0.1:5000":{"username":"local","password":"p"}}"#);
        let m = auth_configs_from_header(&h).unwrap();
        assert_eq!(auth_for_domain(&m, "docker.io").username, "hub");
        let a = auth_for_domain(&m, "127.0.0.1:5000");
        assert_eq!(
            (a.username.as_str(), a.serveraddress.as_str()),
            ("local", "127.0.0.1:5000")
        );
        assert_eq!(auth_for_domain(&m, "other:1"), AuthConfig::default());
        assert!(auth_configs_from_header("e30=").unwrap().is_empty());
        assert!(auth_configs_from_header("").unwrap().is_empty());
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn x_registry_auth_headers_parse() {
        let a = AuthConfig {
            username: "u".into(),
            password: "p+/?".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        assert_eq!(AuthConfig::from_header(&a.to_header()).unwrap(), a);
        // docker-py: standard base64
        let std = STANDARD.encode(br#"{"username":"u","password":"p"}"#);
        assert_eq!(AuthConfig::from_header(&std).unwrap().username, "u");
        assert!(AuthConfig::from_header("").unwrap().is_empty());
        assert!(AuthConfig::from_header(&URL_SAFE.encode("{}"))
            .unwrap()
            .is_empty());
        assert!(AuthConfig::from_header("!!!").is_err());
        let from_auth = AuthConfig {
            auth: STANDARD.encode("alice:s3:cret"),
            ..Default::default()
        };
        assert_eq!(
            from_auth.credential(),
            Credential::Basic {
                username: "alice".into(),
                password: "s3:cret".into()
            }
        );
    }

    #[test]
    fn servers_normalize_to_registry_hosts() {
        assert_eq!(normalize_server("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_server(""), "docker.io");
        assert_eq!(normalize_server("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalize_server("Registry.Example:443"), "registry.example:443");
    }
}
