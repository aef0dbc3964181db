//! Helpers shared by the registry tests.
#![allow(dead_code)]

use std::path::Path;

use berth_registry::{AuthConfig, BlobStream, Error, Registry, RegistryConfig};
use berth_types::Reference;

/// A client whose certs.d is `certs_dir`.
pub fn client(certs_dir: &Path) -> Registry {
    client_with(certs_dir, |_| {})
}

pub fn client_with(certs_dir: &Path, f: impl FnOnce(&mut RegistryConfig)) -> Registry {
    let mut cfg = RegistryConfig {
        certs_dir: certs_dir.to_path_buf(),
        ..RegistryConfig::default()
    };
    // No test may reach a proxy from the environment.
    cfg.proxies.no_proxy = Some("*".into());
    f(&mut cfg);
    Registry::new(cfg).unwrap()
}

pub fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

pub fn anon() -> AuthConfig {
    AuthConfig::default()
}

pub fn creds(user: &str, password: &str) -> AuthConfig {
    AuthConfig {
        username: user.into(),
        password: password.into(),
        ..Default::default()
    }
}

/// Reads a blob stream to its end: all bytes, or the error it ended with.
pub async fn read_all(mut s: BlobStream) -> Result<Vec<u8>, Error> {
    let mut out = vec![];
    while let Some(c) = s.next_chunk().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

pub fn descriptor(b: &berth_testkit::image::Blob) -> berth_registry::Descriptor {
    berth_registry::Descriptor::new(&b.media_type, b.digest.parse().unwrap(), b.bytes.len() as u64)
}

/// A runtime for tests that mix blocking fixtures and async calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
