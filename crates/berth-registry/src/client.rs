//! The transport under every operation: one reqwest client per TLS setting, the `/v2/` ping
//! (which also picks https or, for insecure hosts, http, and learns the auth challenge), tokens
//! cached per realm/service/scopes/credential, retries with backoff on transient failures, a
//! fresh token on 401, and redirects followed without credentials to other hosts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::auth::{parse_challenge, AuthConfig, Challenge, Credential, TokenResponse};
use crate::error::{go_method, is_refused, transport, RegistryErrors};
use crate::hosts::{Endpoint, HostsConfig, TlsSettings};
use crate::{Error, Proxies};

/// Attempts after the first for transient failures (connection errors, 5xx, 429).
const RETRIES: u32 = 3;
/// The client id docker sends to token endpoints.
const CLIENT_ID: &str = "docker";
/// The most of an error or JSON body read into memory.
pub(crate) const SMALL_BODY_MAX: usize = 4 << 20;

/// Shared state behind a [`crate::Registry`].
pub(crate) struct Inner {
    pub hosts: HostsConfig,
    pub proxies: Proxies,
    pub user_agent: String,
    pub chunk_size: Option<u64>,
    clients: Mutex<HashMap<TlsSettings, reqwest::Client>>,
    /// host + API path → (whether it answered on plain http, its challenge). The endpoint's TLS
    /// settings are not cached here: certs.d edits apply to the next request.
    live: Mutex<HashMap<String, (bool, Challenge)>>,
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
    /// (repository name, digest) → an upload session a mount answered 202 with.
    pub uploads: Mutex<HashMap<(String, String), String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: Option<String>,
    scopes: Vec<String>,
    cred: Credential,
}

/// Where and as whom one request goes.
pub(crate) struct Target {
    /// The live endpoint (its scheme settled by the ping).
    pub ep: Endpoint,
    pub challenge: Challenge,
    pub cred: Credential,
    pub scopes: Vec<String>,
}

impl Target {
    /// `base/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/{rest}", self.ep.base())
    }
}

/// Whether `a` and `b` are the same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn backoff(attempt: u32, resp: Option<&Response>) -> Duration {
    if let Some(secs) = resp
        .and_then(|r| r.headers().get(RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Duration::from_secs(secs.min(10));
    }
    Duration::from_millis(200 * 4u64.pow(attempt.saturating_sub(1)))
}

/// Reads at most `max` bytes of a body.
pub(crate) async fn read_limited(
    mut resp: Response,
    max: usize,
    method: &str,
    url: &str,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(method, url, &e))? {
        if out.len() + chunk.len() > max {
            return Err(Error::BadManifest(format!(
                "{url}: response larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The status and the registry's error body of a failed response.
pub(crate) async fn error_of(resp: Response) -> (u16, RegistryErrors) {
    let status = resp.status().as_u16();
    let body = read_limited(resp, 64 << 10, "GET", "").await.unwrap_or_default();
    (status, RegistryErrors::parse(status, &body))
}

fn status_line(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_string()
}

impl Inner {
    pub fn new(hosts: HostsConfig, proxies: Proxies, user_agent: String, chunk_size: Option<u64>) -> Inner {
        Inner {
            hosts,
            proxies,
            user_agent,
            chunk_size,
            clients: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client for a TLS setting (built once): no automatic redirects (they are followed
    /// here, so credentials never cross hosts), proxies chosen per URL by Go's rules.
    pub fn client(&self, tls: &TlsSettings) -> Result<reqwest::Client, Error> {
        if let Some(c) = self.clients.lock().unwrap().get(tls) {
            return Ok(c.clone());
        }
        let proxies = self.proxies.clone();
        let proxy = reqwest::Proxy::custom(move |url| {
            proxies.proxy_for(url.scheme(), url.host_str()?, url.port_or_known_default()?)
        });
        let c = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config(tls)?)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .proxy(proxy)
            .user_agent(self.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        self.clients.lock().unwrap().insert(tls.clone(), c.clone());
        Ok(c)
    }

    /// A client for a URL that is no registry endpoint (a redirect target, a token realm, an
    /// import URL): the host's certs.d CAs, verification on.
    pub fn client_for_url(&self, url: &Url) -> Result<reqwest::Client, Error> {
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        let tls = self.hosts.certs_d(&host)?;
        self.client(&tls)
    }

    /// Pings `GET <base>/` (cached): settles https vs http for insecure hosts and learns the
    /// challenge. Returns the live endpoint and its challenge.
    pub async fn ping(&self, ep: &Endpoint) -> Result<(Endpoint, Challenge), Error> {
        let key = format!("{}{}", ep.host, ep.path);
        let cached = self.live.lock().unwrap().get(&key).cloned();
        if let Some((http, ch)) = cached {
            return Ok((if http { ep.as_http() } else { ep.clone() }, ch));
        }
        let (http, ch) = match self.ping_once(ep, !ep.http_fallback).await {
            Ok(ch) => (false, ch),
            Err(e @ Error::Transport { .. }) if ep.http_fallback => {
                tracing::debug!("{e}; trying plain http for insecure registry {}", ep.host);
                let ch = self.ping_once(&ep.as_http(), true).await?;
                (true, ch)
            }
            Err(e) => return Err(e),
        };
        let live = if http || ep.scheme == "http" {
            ep.as_http()
        } else {
            ep.clone()
        };
        self.live
            .lock()
            .unwrap()
            .insert(key, (http || ep.scheme == "http", ch.clone()));
        Ok((live, ch))
    }

    /// Forgets what a ping learnt (after a connection failure on that endpoint).
    pub fn forget(&self, ep: &Endpoint) {
        self.live
            .lock()
            .unwrap()
            .remove(&format!("{}{}", ep.host, ep.path));
    }

    async fn ping_once(&self, ep: &Endpoint, retry: bool) -> Result<Challenge, Error> {
        let client = self.client(&ep.tls)?;
        let url = format!("{}/", ep.base());
        let mut attempt = 0;
        loop {
            let mut rb = client.get(&url);
            for (k, v) in &ep.headers {
                rb = rb.header(k, v);
            }
            match rb.send().await {
                Err(e) => {
                    let err = transport("GET", &url, &e);
                    if retry && attempt < RETRIES && !e.is_builder() && !is_refused(&e) {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(err);
                }
                Ok(resp) => {
                    let st = resp.status().as_u16();
                    if (st >= 500 || st == 429) && retry && attempt < RETRIES {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt, Some(&resp))).await;
                        continue;
                    }
                    if resp.status().is_success() {
                        return Ok(Challenge::None);
                    }
                    if st == 401 {
                        let challenges: Vec<Challenge> = resp
                            .headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok().and_then(parse_challenge))
                            .collect();
                        return Ok(challenges
                            .iter()
                            .find(|c| matches!(c, Challenge::Bearer { .. }))
                            .or(challenges.first())
                            .cloned()
                            .unwrap_or(Challenge::Basic));
                    }
                    let (status, cause) = error_of(resp).await;
                    return Err(Error::Registry { status, cause });
                }
            }
        }
    }

    /// The credential an endpoint of `domain` may see: only the origin (or a hosts.toml host
    /// that is the registry itself) gets them, and only when they are for that registry.
    pub fn credential(&self, ep: &Endpoint, domain: &str, auth: &AuthConfig) -> Credential {
        if !ep.origin && !ep.host.eq_ignore_ascii_case(domain) {
            return Credential::Anonymous;
        }
        if !auth.serveraddress.is_empty() && crate::auth::normalize_server(&auth.serveraddress) != domain {
            return Credential::Anonymous;
        }
        auth.credential()
    }

    /// The Authorization header for a target, fetching a token when the challenge is Bearer.
    async fn authorization(&self, t: &Target, fresh: bool) -> Result<Option<String>, Error> {
        match &t.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(match &t.cred {
                Credential::Basic { username, password } => Some(format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                )),
                Credential::Registry(tok) => Some(format!("Bearer {tok}")),
                Credential::Anonymous | Credential::Identity { .. } => None,
            }),
            Challenge::Bearer { realm, service } => match &t.cred {
                Credential::Registry(tok) => Ok(Some(format!("Bearer {tok}"))),
                cred => {
                    let tok = self
                        .token(&t.ep, realm, service.as_deref(), cred, &t.scopes, fresh)
                        .await?;
                    Ok(Some(format!("Bearer {tok}")))
                }
            },
        }
    }

    /// A token for `scopes` (cached until it expires, or fetched anew when `fresh`).
    pub async fn token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        cred: &Credential,
        scopes: &[String],
        fresh: bool,
    ) -> Result<String, Error> {
        let mut sorted = scopes.to_vec();
        sorted.sort();
        let key = TokenKey {
            realm: realm.to_string(),
            service: service.map(str::to_string),
            scopes: sorted,
            cred: cred.clone(),
        };
        if !fresh {
            if let Some((tok, until)) = self.tokens.lock().unwrap().get(&key) {
                if Instant::now() < *until {
                    return Ok(tok.clone());
                }
            }
        }
        let resp = self.fetch_token(ep, realm, service, cred, scopes, false).await?;
        let life = resp.expires_in.unwrap_or(60).max(60);
        let until = Instant::now() + Duration::from_secs(life.saturating_sub(10));
        let tok = resp.token().to_string();
        self.tokens.lock().unwrap().insert(key, (tok.clone(), until));
        Ok(tok)
    }

    /// Asks a token endpoint: the OAuth2 refresh-token grant (POST) for identity tokens, else
    /// GET with basic credentials or anonymously. `offline`: ask for a refresh token too (login).
    pub async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        cred: &Credential,
        scopes: &[String],
        offline: bool,
    ) -> Result<TokenResponse, Error> {
        let realm_url = Url::parse(realm)
            .map_err(|e| Error::InvalidArgument(format!("invalid token realm {realm:?}: {e}")))?;
        let same_host = realm_url.host_str() == Some(ep.host.split(':').next().unwrap_or(""));
        let client = if same_host {
            self.client(&ep.tls)?
        } else {
            self.client_for_url(&realm_url)?
        };
        let mut attempt = 0;
        loop {
            let rb = match cred {
                Credential::Identity { token, .. } => {
                    let mut form: Vec<(&str, String)> = vec![
                        ("grant_type", "refresh_token".into()),
                        ("refresh_token", token.clone()),
                        ("client_id", CLIENT_ID.into()),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s.into()));
                    }
                    if !scopes.is_empty() {
                        form.push(("scope", scopes.join(" ")));
                    }
                    if offline {
                        form.push(("access_type", "offline".into()));
                    }
                    client.post(realm_url.clone()).form(&form)
                }
                other => {
                    let mut q: Vec<(&str, String)> = vec![];
                    if let Some(s) = service {
                        q.push(("service", s.into()));
                    }
                    for s in scopes {
                        q.push(("scope", s.clone()));
                    }
                    if offline {
                        q.push(("offline_token", "true".into()));
                        q.push(("client_id", CLIENT_ID.into()));
                    }
                    let mut rb = client.get(realm_url.clone()).query(&q);
                    if let Credential::Basic { username, password } = other {
                        rb = rb
                            .query(&[("account", username)])
                            .basic_auth(username, Some(password));
                    }
                    rb
                }
            };
            let method = if matches!(cred, Credential::Identity { .. }) {
                "POST"
            } else {
                "GET"
            };
            match rb.send().await {
                Err(e) => {
                    if attempt < RETRIES && !is_refused(&e) {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(transport(method, realm, &e));
                }
                Ok(resp) => {
                    let st = resp.status();
                    if (st.is_server_error() || st.as_u16() == 429) && attempt < RETRIES {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt, Some(&resp))).await;
                        continue;
                    }
                    if st.is_success() {
                        let body = read_limited(resp, SMALL_BODY_MAX, method, realm).await?;
                        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                            Error::BadManifest(format!("invalid token response from {realm}: {e}"))
                        })?;
                        if tr.token().is_empty() {
                            return Err(Error::BadManifest(format!(
                                "token endpoint {realm} returned no token"
                            )));
                        }
                        return Ok(tr);
                    }
                    let (status, cause) = error_of(resp).await;
                    let context = format!("{} \"{realm}\": ", go_method(method));
                    return Err(match status {
                        401 | 403 => {
                            Error::Unauthorized {
                                context,
                                cause: if cause.0.iter().all(|e| {
                                    e.code == "UNAUTHORIZED" && e.message == "authentication required"
                                }) {
                                    "unauthorized: incorrect username or password".into()
                                } else {
                                    cause.to_string()
                                },
                            }
                        }
                        _ => Error::Status {
                            method: go_method(method),
                            url: realm.to_string(),
                            status: status_line(
                                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                            ),
                        },
                    });
                }
            }
        }
    }

    /// Sends one request to a target with its credentials. `rebuildable`: the request can be
    /// built again, so transient failures are retried with backoff and a 401 is retried once
    /// with a fresh token. Redirects come back as they are.
    pub async fn send(
        &self,
        t: &Target,
        method: Method,
        url: &str,
        rebuildable: bool,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response, Error> {
        let client = self.client(&t.ep.tls)?;
        let mut fresh = false;
        let mut attempt = 0;
        loop {
            let auth = self.authorization(t, fresh).await?;
            let mut rb = client.request(method.clone(), url);
            for (k, v) in &t.ep.headers {
                rb = rb.header(k, v);
            }
            if let Some(a) = auth {
                let mut v = HeaderValue::from_str(&a)
                    .map_err(|_| Error::InvalidArgument("invalid credentials".into()))?;
                v.set_sensitive(true);
                rb = rb.header(AUTHORIZATION, v);
            }
            match build(rb).send().await {
                Err(e) => {
                    if rebuildable && attempt < RETRIES && !is_refused(&e) {
                        attempt += 1;
                        tracing::debug!("{method} {url}: {e}; retrying");
                        tokio::time::sleep(backoff(attempt, None)).await;
                        continue;
                    }
                    if e.is_connect() {
                        self.forget(&t.ep);
                    }
                    return Err(transport(method.as_str(), url, &e));
                }
                Ok(resp) => {
                    let st = resp.status().as_u16();
                    if st == 401 && rebuildable && !fresh && matches!(t.challenge, Challenge::Bearer { .. }) {
                        fresh = true;
                        continue;
                    }
                    if rebuildable && (st >= 500 || st == 429) && attempt < RETRIES {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt, Some(&resp))).await;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// GET with redirects followed: with the target's credentials on the same origin, without
    /// any to another host (blob storage).
    pub async fn get_following(
        &self,
        t: &Target,
        url: &str,
        headers: &[(&'static str, String)],
    ) -> Result<(Response, String), Error> {
        let headers: Vec<(&'static str, String)> = headers.to_vec();
        let add = move |mut rb: RequestBuilder| {
            for (k, v) in &headers {
                rb = rb.header(*k, v);
            }
            rb
        };
        let mut url = url.to_string();
        let mut resp = self.send(t, Method::GET, &url, true, &add).await?;
        let origin = Url::parse(&url).map_err(|e| Error::InvalidArgument(format!("bad URL {url}: {e}")))?;
        for _ in 0..10 {
            if !resp.status().is_redirection() {
                return Ok((resp, url));
            }
            let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Ok((resp, url));
            };
            let next = Url::parse(&url)
                .and_then(|u| u.join(loc))
                .map_err(|e| Error::BadManifest(format!("bad redirect {loc:?} from {url}: {e}")))?;
            url = next.to_string();
            resp = if same_origin(&origin, &next) {
                self.send(t, Method::GET, &url, true, &add).await?
            } else {
                let client = self.client_for_url(&next)?;
                let mut attempt = 0;
                loop {
                    match add(client.get(next.clone())).send().await {
                        Ok(r) => break r,
                        Err(e) if attempt < RETRIES && !is_refused(&e) => {
                            attempt += 1;
                            tracing::debug!("GET {next}: {e}; retrying");
                            tokio::time::sleep(backoff(attempt, None)).await;
                        }
                        Err(e) => return Err(transport("GET", next.as_str(), &e)),
                    }
                }
            };
        }
        Err(Error::Transport {
            method: "Get".into(),
            url,
            reason: "stopped after 10 redirects".into(),
        })
    }
}
