//! A token server for the distribution registry's `auth.token` mode: `GET /token?service=…&scope=…`
//! (HTTP basic credentials optional: anonymous users get the anonymous grants), and the OAuth2
//! `POST /token` forms (`grant_type=password` and `grant_type=refresh_token`). Tokens are JWTs
//! signed RS256 with a key whose self-signed certificate the registry trusts
//! (`rootcertbundle`), carried in the `x5c` header, which is how distribution 2.8 finds the key.
//!
//! Knobs for tests: per-user grants, the token's real lifetime apart from the `expires_in` it
//! advertises (so a client's cached token expires early and the registry answers 401), and a log
//! of every request (user and scopes).

use std::collections::HashMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use crate::http::{read_message, response};
use crate::pki::SigningKey;
use crate::server::Server;

/// What a token request asked for, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The authenticated user, `None` for anonymous.
    pub user: Option<String>,
    /// The `scope` values (`repository:x:pull,push`).
    pub scopes: Vec<String>,
    /// Whether the request carried any credentials (basic, or a refresh token).
    pub had_credentials: bool,
}

#[derive(Default)]
struct State {
    users: HashMap<String, String>,
    /// (user or None for anonymous, repository or "*", actions)
    grants: Vec<(Option<String>, String, Vec<String>)>,
    /// Seconds the JWT is really valid for, and the `expires_in` advertised.
    lifetime: (u64, u64),
    requests: Vec<TokenRequest>,
    issued: u64,
}

/// A running token server.
pub struct TokenServer {
    server: Server,
    state: Arc<Mutex<State>>,
    key: Arc<Mutex<Arc<SigningKey>>>,
    dir: std::path::PathBuf,
}

/// The service name tokens are issued for (the registry's `auth.token.service`).
pub const SERVICE: &str = "berth-test-registry";
/// The issuer (the registry's `auth.token.issuer`).
pub const ISSUER: &str = "berth-testkit";

impl TokenServer {
    /// Starts a token server; its signing key and certificate are made in `dir`.
    pub fn start(dir: &Path) -> TokenServer {
        let key = Arc::new(Mutex::new(Arc::new(SigningKey::new(&dir.join("key-0")))));
        let state = Arc::new(Mutex::new(State {
            lifetime: (300, 300),
            ..Default::default()
        }));
        let server = {
            let (state, key) = (state.clone(), key.clone());
            Server::start(move |conn| {
                let k = key.lock().unwrap().clone();
                serve(conn, &state, &k)
            })
        };
        TokenServer {
            server,
            state,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// Signs with a new key from now on (a registry must be restarted to trust its
    /// [`TokenServer::cert`]); tokens signed before are then refused by it.
    pub fn rotate_key(&self) {
        let n = self.state.lock().unwrap().issued;
        let k = SigningKey::new(&self.dir.join(format!("key-{}", n + 1)));
        *self.key.lock().unwrap() = Arc::new(k);
    }

    /// The realm URL (`http://127.0.0.1:PORT/token`).
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// The certificate the registry must trust (`auth.token.rootcertbundle`).
    pub fn cert(&self) -> std::path::PathBuf {
        self.key.lock().unwrap().cert.clone()
    }

    /// Adds a user with a password.
    pub fn add_user(&self, user: &str, password: &str) {
        self.state
            .lock()
            .unwrap()
            .users
            .insert(user.into(), password.into());
    }

    /// Grants `actions` (`pull`, `push`, `*`) on `repo` (`*` for every repository, which also
    /// grants the catalog) to `user` (`None`: anonymous requests).
    pub fn grant(&self, user: Option<&str>, repo: &str, actions: &[&str]) {
        self.state.lock().unwrap().grants.push((
            user.map(str::to_string),
            repo.to_string(),
            actions.iter().map(|a| a.to_string()).collect(),
        ));
    }

    /// Tokens are valid for `real_secs` but say `expires_in: advertised_secs`.
    pub fn set_lifetime(&self, real_secs: u64, advertised_secs: u64) {
        self.state.lock().unwrap().lifetime = (real_secs, advertised_secs);
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Mints a token directly (for pushing test images): `user` gets what is granted for `scope`.
    pub fn mint(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let mut st = self.state.lock().unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let key = self.key.lock().unwrap().clone();
        issue(&mut st, &key, user, &scopes)
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Decodes `%XX` and `+` in a query or form component.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn params(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn serve(conn: TcpStream, state: &Mutex<State>, key: &SigningKey) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let Ok(Some(req)) = read_message(&mut r, false) else {
        return;
    };
    let query = req.target().split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut p = params(query);
    if req.method() == "POST" {
        p.extend(params(&String::from_utf8_lossy(&req.body)));
    }
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = p
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut st = state.lock().unwrap();
    let basic = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())));
    let form_password = match (get("grant_type").as_deref(), get("username"), get("password")) {
        (Some("password"), Some(u), Some(p)) => Some((u, p)),
        _ => None,
    };
    let refresh = match get("grant_type").as_deref() {
        Some("refresh_token") => get("refresh_token"),
        _ => None,
    };
    let had_credentials = basic.is_some() || form_password.is_some() || refresh.is_some();
    let user = if let Some(rt) = refresh {
        match rt.strip_prefix("refresh-").filter(|u| st.users.contains_key(*u)) {
            Some(u) => Some(u.to_string()),
            None => {
                let _ = deny(&mut w);
                return;
            }
        }
    } else if let Some((u, pw)) = basic.or(form_password) {
        if st.users.get(&u) != Some(&pw) {
            st.requests.push(TokenRequest {
                method: req.method().into(),
                user: None,
                scopes,
                had_credentials,
            });
            let _ = deny(&mut w);
            return;
        }
        Some(u)
    } else {
        None
    };
    st.requests.push(TokenRequest {
        method: req.method().into(),
        user: user.clone(),
        scopes: scopes.clone(),
        had_credentials,
    });
    let token = issue(&mut st, key, user.as_deref(), &scopes);
    let advertised = st.lifetime.1;
    drop(st);
    let mut body = serde_json::json!({
        "token": token, "access_token": token, "expires_in": advertised,
    });
    if let Some(u) = &user {
        if get("offline_token").as_deref() == Some("true") || req.method() == "POST" {
            body["refresh_token"] = format!("refresh-{u}").into();
        }
    }
    let _ = response(
        200,
        "OK",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .write_to(&mut w, None);
}

fn deny(w: &mut TcpStream) -> std::io::Result<()> {
    response(
        401,
        "Unauthorized",
        &[("Content-Type", "application/json")],
        br#"{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}"#,
    )
    .write_to(w, None)
}

fn issue(st: &mut State, key: &SigningKey, user: Option<&str>, scopes: &[String]) -> String {
    let mut access = Vec::new();
    for scope in scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(typ), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| {
                st.grants.iter().any(|(u, repo, acts)| {
                    u.as_deref() == user
                        && (repo == "*" || (typ == "repository" && repo == name))
                        && (acts.iter().any(|g| g == a || g == "*"))
                })
            })
            .collect();
        if !granted.is_empty() {
            access.push(serde_json::json!({"type": typ, "name": name, "actions": granted}));
        }
    }
    st.issued += 1;
    let now = now();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(&key.cert_der)]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user.unwrap_or(""), "aud": SERVICE,
        "exp": now + st.lifetime.0, "nbf": now - 10, "iat": now,
        "jti": format!("berth-testkit-{}", st.issued), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}
