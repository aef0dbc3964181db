//! Tags, search, login and plain URLs.

use berth_types::Reference;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use crate::auth::{normalize_server, AuthConfig, Challenge, Credential};
use crate::client::{error_of, read_limited, Target, SMALL_BODY_MAX};
use crate::error::transport;
use crate::hosts::Need;
use crate::pull::BlobStream;
use crate::{Error, Registry};

/// One search hit, in the v1 search API's shape (what `GET /images/search` returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// `Login Succeeded`.
    pub status: String,
    /// A refresh token the token server handed out (`IdentityToken` of `POST /auth`), to store
    /// instead of the password.
    pub identity_token: Option<String>,
}

/// The `<url>; rel="next"` of a Link header.
fn next_link(resp: &reqwest::Response, current: &str) -> Option<String> {
    let link = resp.headers().get("link")?.to_str().ok()?;
    let target = link
        .split(';')
        .next()?
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if !link.contains("rel=\"next\"") && !link.contains("rel=next") {
        return None;
    }
    Url::parse(current).ok()?.join(target).ok().map(|u| u.to_string())
}

impl Registry {
    /// Every tag of the repository (following `Link` pages).
    pub async fn tags(&self, r: &Reference, auth: &AuthConfig) -> Result<Vec<String>, Error> {
        let scope = format!("repository:{}:pull", r.path());
        self.on_endpoints(r, Need::Resolve, auth, vec![scope], |t| async move {
            #[derive(Deserialize)]
            struct Tags {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let mut url = t.url(&format!("{}/tags/list?n=1000", r.path()));
            let mut all = vec![];
            for _ in 0..1000 {
                let resp = self.inner.send(&t, Method::GET, &url, true, &|rb| rb).await?;
                if !resp.status().is_success() {
                    let (status, cause) = error_of(resp).await;
                    return Err(if cause.has("NAME_UNKNOWN") || status == 404 {
                        Error::NameUnknown {
                            name: r.familiar_name(),
                            cause,
                        }
                    } else if status == 401 || cause.has("DENIED") {
                        Error::PullDenied {
                            name: r.familiar_name(),
                            cause,
                        }
                    } else {
                        Error::Registry { status, cause }
                    });
                }
                let next = next_link(&resp, &url);
                let body = read_limited(resp, SMALL_BODY_MAX, "GET", &url).await?;
                let page: Tags = serde_json::from_slice(&body)
                    .map_err(|e| Error::BadManifest(format!("invalid tag list from {url}: {e}")))?;
                all.extend(page.tags.unwrap_or_default());
                match next {
                    Some(n) => url = n,
                    None => break,
                }
            }
            Ok(all)
        })
        .await
    }

    /// Searches `registry` (`docker.io`, `host:port`) for `term`: its v1 search API when it
    /// answers, else its `/v2/_catalog` (scope `registry:catalog:*`) filtered by the term.
    pub async fn search(
        &self,
        registry: &str,
        term: &str,
        limit: usize,
        auth: &AuthConfig,
    ) -> Result<Vec<SearchResult>, Error> {
        let domain = normalize_server(registry);
        let r = Reference::parse_named(&format!("{domain}/x"))
            .map_err(|e| Error::InvalidArgument(format!("invalid registry {registry:?}: {e}")))?;
        let limit = if limit == 0 { 25 } else { limit };
        let domain = &domain;
        self.on_endpoints(
            &r,
            Need::Resolve,
            auth,
            vec!["registry:catalog:*".into()],
            |t| async move {
                if let Some(found) = self.search_v1(&t, domain, term, limit).await? {
                    return Ok(found);
                }
                self.search_catalog(&t, term, limit).await
            },
        )
        .await
    }

    async fn search_v1(
        &self,
        t: &Target,
        domain: &str,
        term: &str,
        limit: usize,
    ) -> Result<Option<Vec<SearchResult>>, Error> {
        #[derive(Deserialize)]
        struct V1 {
            results: Vec<SearchResult>,
        }
        let host = if domain == "docker.io" && t.ep.origin && t.ep.host == crate::hosts::DOCKER_HUB_HOST {
            "index.docker.io".to_string()
        } else {
            t.ep.host.clone()
        };
        let mut url = Url::parse(&format!("{}://{host}/v1/search", t.ep.scheme))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("q", term)
            .append_pair("n", &limit.to_string());
        let url = url.to_string();
        let resp = self.inner.send(t, Method::GET, &url, true, &|rb| rb).await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let body = read_limited(resp, SMALL_BODY_MAX, "GET", &url).await?;
        Ok(serde_json::from_slice::<V1>(&body)
            .ok()
            .map(|v| v.results.into_iter().take(limit).collect()))
    }

    async fn search_catalog(&self, t: &Target, term: &str, limit: usize) -> Result<Vec<SearchResult>, Error> {
        #[derive(Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let mut url = t.url("_catalog?n=1000");
        let mut found = vec![];
        for _ in 0..1000 {
            let resp = self.inner.send(t, Method::GET, &url, true, &|rb| rb).await?;
            if !resp.status().is_success() {
                let (status, cause) = error_of(resp).await;
                return Err(match status {
                    401 | 403 => Error::Unauthorized {
                        context: String::new(),
                        cause: cause.to_string(),
                    },
                    _ => Error::Registry { status, cause },
                });
            }
            let next = next_link(&resp, &url);
            let body = read_limited(resp, SMALL_BODY_MAX, "GET", &url).await?;
            let page: Catalog = serde_json::from_slice(&body)
                .map_err(|e| Error::BadManifest(format!("invalid catalog from {url}: {e}")))?;
            let term = term.to_lowercase();
            for name in page.repositories {
                if name.to_lowercase().contains(&term) && found.len() < limit {
                    found.push(SearchResult {
                        name,
                        description: String::new(),
                        star_count: 0,
                        is_official: false,
                        is_automated: false,
                    });
                }
            }
            match next {
                Some(n) if found.len() < limit => url = n,
                _ => break,
            }
        }
        Ok(found)
    }

    /// `docker login`: checks the credentials against `server` (`""`/`docker.io`/
    /// `https://index.docker.io/v1/`, `host:port`). Basic: `GET /v2/` with them; bearer: a token
    /// asked with `offline_token=true` (its refresh token, if any, becomes the identity token)
    /// and `GET /v2/` with it.
    pub async fn check_login(&self, server: &str, auth: &AuthConfig) -> Result<LoginOutcome, Error> {
        let domain = normalize_server(server);
        let mut auth = auth.clone();
        auth.serveraddress = domain.clone();
        let cred = auth.credential();
        if cred == Credential::Anonymous {
            return Err(Error::InvalidArgument("username and password required".into()));
        }
        let eps = self.inner.hosts.endpoints(&domain, Need::Resolve)?;
        let ep = eps
            .iter()
            .find(|e| e.origin)
            .ok_or_else(|| Error::Config(format!("no origin endpoint for {domain}")))?;
        let (live, challenge) = self.inner.ping(ep).await?;
        let mut identity_token = None;
        let t = Target {
            ep: live.clone(),
            challenge: challenge.clone(),
            cred: cred.clone(),
            scopes: vec![],
        };
        let url = format!("{}/", live.base());
        let resp = match &challenge {
            Challenge::Bearer { realm, service } if !matches!(cred, Credential::Registry(_)) => {
                let tr = self
                    .inner
                    .fetch_token(&live, realm, service.as_deref(), &cred, &[], true)
                    .await?;
                identity_token = tr.refresh_token.clone().filter(|s| !s.is_empty());
                let tok = tr.token().to_string();
                let client = self.inner.client(&live.tls)?;
                client
                    .get(&url)
                    .bearer_auth(tok)
                    .send()
                    .await
                    .map_err(|e| transport("GET", &url, &e))?
            }
            _ => self.inner.send(&t, Method::GET, &url, true, &|rb| rb).await?,
        };
        if !resp.status().is_success() {
            return Err(Error::LoginFailed {
                url,
                status: format!(
                    "{} {}",
                    resp.status().as_u16(),
                    resp.status().canonical_reason().unwrap_or("")
                ),
            });
        }
        Ok(LoginOutcome {
            status: "Login Succeeded".into(),
            identity_token,
        })
    }

    /// GETs a URL (`import http://…`, `ADD <url>`): its length and Last-Modified when given, and
    /// the body as a stream (length-checked when the length is known; no digest). Proxies apply;
    /// redirects are followed.
    pub async fn fetch_url(&self, url: &str) -> Result<(Option<u64>, Option<String>, BlobStream), Error> {
        let mut u =
            Url::parse(url).map_err(|e| Error::InvalidArgument(format!("invalid URL {url:?}: {e}")))?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err(Error::InvalidArgument(format!(
                "unsupported URL scheme in {url:?}"
            )));
        }
        for _ in 0..10 {
            let client = self.inner.client_for_url(&u)?;
            let resp = client
                .get(u.clone())
                .send()
                .await
                .map_err(|e| transport("GET", u.as_str(), &e))?;
            if resp.status().is_redirection() {
                if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                    u = u
                        .join(loc)
                        .map_err(|e| Error::InvalidArgument(format!("bad redirect {loc:?}: {e}")))?;
                    continue;
                }
            }
            if !resp.status().is_success() {
                return Err(Error::Status {
                    method: "GET".into(),
                    url: u.to_string(),
                    status: format!(
                        "{} {}",
                        resp.status().as_u16(),
                        resp.status().canonical_reason().unwrap_or("")
                    ),
                });
            }
            let len = resp.content_length();
            let last_modified = resp
                .headers()
                .get("last-modified")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let s = BlobStream::new(resp, u.to_string(), None, len, 0, sha2::Sha256::default());
            return Ok((len, last_modified, s));
        }
        Err(Error::Transport {
            method: "Get".into(),
            url: url.to_string(),
            reason: "stopped after 10 redirects".into(),
        })
    }
}
