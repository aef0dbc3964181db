//! Fixtures shared by crate tests (berth-registry) and the e2e suite, so that no test ever needs
//! Docker Hub or the machine's resolver:
//!
//! - [`registry::Registry`]: the real distribution registry (`/usr/bin/docker-registry`, from
//!   Debian's docker-registry) on a port it picks: plain, htpasswd, token auth, TLS (client
//!   certificates optional), pull-through proxy; killed and its files removed on drop.
//! - [`token::TokenServer`]: the registry's token server (JWT, RS256, `x5c`).
//! - [`image`]: deterministic test images (busybox-static layer, platform layer, configs,
//!   manifests, indexes), pushed with raw HTTP or written as an OCI layout for skopeo.
//! - [`pki`]: CAs, server and client certificates made with openssl.
//! - [`netns::Netns`]: a network namespace with a veth pair and a /30 of its own, for servers
//!   that must be off loopback.
//! - [`proxy`]: a fault-injecting reverse proxy, a counting forward proxy, a static file server.
//!
//! It links no berth crate: it is a test-side tool, usable from any layer's tests.

pub mod http;
pub mod image;
pub mod netns;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod token;

pub use image::{Pushable, Spec, TestImage, TestIndex};
pub use registry::{Options, Registry};

/// True when running as root; otherwise prints `skipped: requires root` for the named test.
pub fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: requires root ({test})");
        false
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
