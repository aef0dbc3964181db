//! The distribution protocol, and only that: berth's registry client. It resolves a reference to
//! the platform's image manifest, streams blobs with digest checks, pushes (HEAD, cross-repository
//! mount, monolithic or chunked upload, manifests), lists tags, searches, checks logins, and
//! fetches plain URLs. It knows nothing of berth's stores: the pull/push pipeline in berth-image
//! drives it.
//!
//! A [`Registry`] is cheap to clone and share (an `Arc` inside): it keeps one HTTP client per TLS
//! setting, which endpoint (https, or http for insecure hosts) each registry answered on with its
//! auth challenge, and bearer tokens per scope.
//!
//! ```no_run
//! # async fn f() -> Result<(), berth_registry::Error> {
//! use berth_registry::{AuthConfig, Platform, Registry, RegistryConfig};
//! let reg = Registry::new(RegistryConfig {
//!     certs_dir: "/etc/berth/certs.d".into(),
//!     ..RegistryConfig::default()
//! })?;
//! let r = berth_types::Reference::parse("busybox").unwrap();
//! let auth = AuthConfig::default(); // anonymous
//! // 1. tag → the platform's manifest and config (index entries chosen by platform)
//! let img = reg.resolve(&r, &Platform::host(), &auth).await?;
//! println!("RepoDigest {}@{}", r.familiar_name(), img.digest);
//! // 2. each layer as a verified stream
//! for layer in &img.manifest.layers {
//!     let mut s = reg.fetch_blob(&r, layer, None, &auth).await?;
//!     while let Some(chunk) = s.next_chunk().await {
//!         let _bytes = chunk?; // the last item is an error if the digest or size is wrong
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Where requests go (certs.d, hosts.toml, mirrors, insecure registries) is in [`hosts`]'s doc;
//! the design and the reasons are in docs/design/registry.md.

mod auth;
mod client;
mod error;
pub mod hosts;
pub mod manifest;
mod misc;
mod proxy;
mod pull;
mod push;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;

pub use auth::{auth_configs_from_header, auth_for_domain, normalize_server, AuthConfig};
pub use error::{Error, RegistryError, RegistryErrors};
pub use manifest::{Descriptor, Index, Manifest, Platform};
pub use misc::{LoginOutcome, SearchResult};
pub use proxy::Proxies;
pub use pull::{BlobStream, Resolved, Resume};

/// How to reach registries: daemon.json's settings and the certs.d directory.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `<config-dir>/certs.d`: `<host[:port]>/{*.crt, *.cert + *.key}` (Docker's layout) and
    /// `<registry>/hosts.toml` (containerd's format).
    pub certs_dir: PathBuf,
    /// daemon.json `insecure-registries`: `host[:port]` or CIDRs. Loopback and `localhost` are
    /// insecure anyway.
    pub insecure_registries: Vec<String>,
    /// daemon.json `registry-mirrors` (docker.io only), tried in order before the origin.
    pub mirrors: Vec<String>,
    /// daemon.json `proxies`; when empty, the environment's `HTTP(S)_PROXY`/`NO_PROXY`.
    pub proxies: Proxies,
    pub user_agent: String,
    /// Blobs larger than this are uploaded in chunks of this size (PATCH … PUT); `None`: one PUT.
    pub upload_chunk_size: Option<u64>,
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        RegistryConfig {
            certs_dir: PathBuf::from("/etc/berth/certs.d"),
            insecure_registries: vec![],
            mirrors: vec![],
            proxies: Proxies::default(),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
            upload_chunk_size: None,
        }
    }
}

/// A registry client for every registry (see the crate doc). `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<client::Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// A client with these settings. Reads nothing yet: certs.d and hosts.toml are read per
    /// operation, so edits apply without a restart.
    pub fn new(cfg: RegistryConfig) -> Result<Registry, Error> {
        let proxies = if cfg.proxies.is_empty() {
            Proxies {
                no_proxy: cfg
                    .proxies
                    .no_proxy
                    .clone()
                    .or_else(|| Proxies::from_env().no_proxy),
                ..Proxies::from_env()
            }
        } else {
            cfg.proxies.clone()
        };
        let hosts = hosts::HostsConfig {
            certs_dir: cfg.certs_dir,
            insecure: cfg.insecure_registries,
            mirrors: cfg.mirrors,
        };
        Ok(Registry {
            inner: Arc::new(client::Inner::new(
                hosts,
                proxies,
                cfg.user_agent,
                cfg.upload_chunk_size,
            )),
        })
    }
}
