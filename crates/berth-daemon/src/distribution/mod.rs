//! Images to and from registries: pull and push orchestrated over berth-registry (the protocol)
//! and berth-image (the stores), with dockerd's progress messages; login checks and search.
//! The design, the pipeline and its crash consistency: docs/design/registry.md.

mod pull;
mod push;

use berth_registry::{AuthConfig, LoginOutcome, SearchResult};

pub(crate) use pull::Downloads;
pub use pull::{PullRequest, MAX_DOWNLOADS};
pub use push::MAX_UPLOADS;

use crate::config::RegistrySettings;
use crate::error::{Error, Result};
use crate::Daemon;

/// The registry client for a daemon's settings.
pub(crate) fn registry(settings: &RegistrySettings) -> Result<berth_registry::Registry> {
    let p = &settings.proxies;
    let proxies = berth_registry::Proxies {
        http_proxy: p.http_proxy.clone(),
        https_proxy: p.https_proxy.clone(),
        no_proxy: p.no_proxy.clone(),
    };
    Ok(berth_registry::Registry::new(berth_registry::RegistryConfig {
        certs_dir: settings.certs_dir.clone(),
        insecure_registries: settings.insecure.clone(),
        mirrors: settings.mirrors.clone(),
        proxies: if proxies.is_empty() {
            berth_registry::Proxies::from_env()
        } else {
            proxies
        },
        user_agent: format!("berth/{} (linux)", env!("CARGO_PKG_VERSION")),
        upload_chunk_size: None,
    })?)
}

impl Daemon {
    /// `POST /auth`: checks credentials against the registry (`serveraddress`, Docker Hub when
    /// empty).
    pub async fn login(&self, auth: AuthConfig) -> Result<LoginOutcome> {
        let server = if auth.serveraddress.is_empty() {
            "https://index.docker.io/v1/".to_string()
        } else {
            auth.serveraddress.clone()
        };
        Ok(self.registry.check_login(&server, &auth).await?)
    }

    /// `GET /images/search`: the registry of `term` (Docker Hub when it names none), its search
    /// API or catalog, filtered as dockerd filters (`stars`, `is-official`, `is-automated`).
    pub async fn search(
        &self,
        term: &str,
        limit: usize,
        filters: &std::collections::BTreeMap<String, Vec<String>>,
        auth: AuthConfig,
    ) -> Result<Vec<SearchResult>> {
        let (registry, rest) = match term.split_once('/') {
            Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
                (host.to_string(), rest)
            }
            _ => ("docker.io".to_string(), term),
        };
        let mut stars = 0u64;
        let (mut official, mut automated) = (None, None);
        for (k, vs) in filters {
            for v in vs {
                match k.as_str() {
                    "stars" => {
                        stars = v
                            .parse()
                            .map_err(|_| Error::invalid(format!("Invalid filter 'stars={v}'")))?
                    }
                    "is-official" => official = Some(parse_bool(k, v)?),
                    "is-automated" => automated = Some(parse_bool(k, v)?),
                    other => return Err(Error::invalid(format!("Invalid filter '{other}'"))),
                }
            }
        }
        let limit = if limit == 0 { 25 } else { limit };
        if !(1..=100).contains(&limit) {
            return Err(Error::invalid(format!(
                "limit {limit} is outside the range of [1, 100]"
            )));
        }
        let found = self.registry.search(&registry, rest, limit, &auth).await?;
        Ok(found
            .into_iter()
            .filter(|r| r.star_count >= stars)
            .filter(|r| official.is_none_or(|o| r.is_official == o))
            .filter(|r| automated.is_none_or(|a| r.is_automated == a))
            .collect())
    }
}

fn parse_bool(k: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::invalid(format!("Invalid filter '{k}={v}'"))),
    }
}
