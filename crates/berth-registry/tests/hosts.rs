//! Where requests go: registry-mirrors falling through, hosts.toml pointing docker.io (or any
//! registry) at a local registry, TLS off loopback (a registry in a network namespace of the
//! test's own) with certs.d CAs and client certificates.

mod common;

use std::path::Path;

use berth_registry::{AuthConfig, Platform};
use berth_testkit::image::skopeo;
use berth_testkit::netns::Netns;
use berth_testkit::pki::Ca;
use berth_testkit::registry::Tls;
use berth_testkit::token::TokenServer;
use berth_testkit::{require_root, Options, Registry as TestRegistry, TestImage};
use common::*;

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

/// A client whose traffic to anything but loopback (docker.io's origin included) goes to a
/// proxy nobody runs: a test that would reach registry-1.docker.io fails closed instead.
fn closed_client(
    certs: &Path,
    f: impl FnOnce(&mut berth_registry::RegistryConfig),
) -> berth_registry::Registry {
    client_with(certs, |cfg| {
        cfg.proxies = berth_registry::Proxies {
            http_proxy: Some("http://127.0.0.1:1".into()),
            https_proxy: Some("http://127.0.0.1:1".into()),
            no_proxy: None,
        };
        f(cfg);
    })
}

#[test]
fn registry_mirrors_serve_docker_io_in_order_and_a_stopped_one_is_skipped() {
    let mut stopped = TestRegistry::start();
    stopped.stop();
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.grant(None, "library/busybox", &["pull"]);
    ts.grant(Some("admin"), "*", &["*"]);
    let mirror = TestRegistry::start_with(Options {
        token: Some(&ts),
        ..Default::default()
    });
    let img = TestImage::busybox();
    let admin = ts.mint(Some("admin"), &["repository:library/busybox:pull,push"]);
    mirror.push(
        "library/busybox",
        "latest",
        &img.pushable(),
        Some(&format!("Bearer {admin}")),
    );
    let certs = tempfile::tempdir().unwrap();
    let c = closed_client(certs.path(), |cfg| {
        cfg.mirrors = vec![stopped.url(), mirror.url()]
    });
    rt().block_on(async {
        let hub_creds = AuthConfig {
            serveraddress: "https://index.docker.io/v1/".into(),
            ..creds("hubuser", "hubpassword")
        };
        let r = reference("busybox");
        let got = c.resolve(&r, &amd64(), &hub_creds).await.unwrap();
        assert_eq!(got.endpoint, format!("{}/v2", mirror.url()));
        assert_eq!(got.digest.as_str(), img.manifest.digest);
        let layer = read_all(
            c.fetch_blob(&r, &got.manifest.layers[0], None, &hub_creds)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(layer.unwrap(), img.layers[0].bytes);
        assert!(
            ts.requests().iter().all(|t| !t.had_credentials),
            "Docker Hub credentials went to a mirror: {:?}",
            ts.requests()
        );
    });
}

#[test]
fn a_pull_through_mirror_serves_until_stopped_and_then_the_origin_does() {
    let origin = TestRegistry::start();
    let img = TestImage::busybox();
    origin.push("library/busybox", "latest", &img.pushable(), None);
    let mut mirror = TestRegistry::start_with(Options {
        proxy_remote: Some((origin.url(), None)),
        ..Default::default()
    });
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path().join("docker.io");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("hosts.toml"),
        format!(
            "server = \"{}\"\n\n[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            origin.url(),
            mirror.url()
        ),
    )
    .unwrap();
    let c = closed_client(certs.path(), |_| {});
    rt().block_on(async {
        let r = reference("busybox:latest");
        let got = c.resolve(&r, &amd64(), &anon()).await.unwrap();
        assert_eq!(got.endpoint, format!("{}/v2", mirror.url()), "the mirror first");
        assert_eq!(got.digest.as_str(), img.manifest.digest);
        read_all(
            c.fetch_blob(&r, &got.manifest.layers[0], None, &anon())
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        mirror.stop();
        let got = c.resolve(&r, &amd64(), &anon()).await.unwrap();
        assert_eq!(
            got.endpoint,
            format!("{}/v2", origin.url()),
            "the origin once the mirror is gone"
        );
        let layer = read_all(
            c.fetch_blob(&r, &got.manifest.layers[0], None, &anon())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(layer.unwrap(), img.layers[0].bytes);
    });
}

#[test]
fn hosts_toml_points_docker_io_at_a_local_registry() {
    let reg = TestRegistry::start();
    let img = TestImage::busybox();
    reg.push("library/busybox", "1.36", &img.pushable(), None);
    reg.push("someone/tool", "latest", &img.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path().join("docker.io");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("hosts.toml"), format!("server = \"{}\"\n", reg.url())).unwrap();
    let c = closed_client(certs.path(), |cfg| {
        cfg.mirrors = vec!["http://127.0.0.1:1".into()]
    });
    rt().block_on(async {
        for name in ["busybox:1.36", "docker.io/library/busybox:1.36", "someone/tool"] {
            let got = c.resolve(&reference(name), &amd64(), &anon()).await.unwrap();
            assert_eq!(
                got.endpoint,
                format!("{}/v2", reg.url()),
                "{name}: hosts.toml wins over registry-mirrors"
            );
            assert_eq!(got.digest.as_str(), img.manifest.digest);
        }
        let tags = c.tags(&reference("busybox"), &anon()).await.unwrap();
        assert_eq!(tags, ["1.36"]);
    });
}

/// Pushes a small OCI image to a TLS registry with skopeo, trusting `ca`.
fn skopeo_push(img: &TestImage, host: &str, repo: &str, ca: &Path, client: Option<(&Path, &Path)>) {
    let layout = tempfile::tempdir().unwrap();
    img.pushable().write_oci_layout(layout.path(), "v1");
    let certdir = tempfile::tempdir().unwrap();
    std::fs::copy(ca, certdir.path().join("ca.crt")).unwrap();
    if let Some((cert, key)) = client {
        std::fs::copy(cert, certdir.path().join("client.cert")).unwrap();
        std::fs::copy(key, certdir.path().join("client.key")).unwrap();
    }
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-cert-dir",
        certdir.path().to_str().unwrap(),
        &format!("oci:{}:v1", layout.path().display()),
        &format!("docker://{host}/{repo}:v1"),
    ]);
}

#[test]
fn tls_off_loopback_needs_the_ca_in_certs_d_or_an_insecure_listing() {
    if !require_root("tls_off_loopback_needs_the_ca_in_certs_d_or_an_insecure_listing") {
        return;
    }
    let ns = Netns::create();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "berth-test-ca");
    let server = ca.server("registry", &ns.ns_ip.to_string());
    let reg = TestRegistry::start_with(Options {
        tls: Some(Tls {
            server,
            client_ca: None,
        }),
        netns: Some(&ns),
        ..Default::default()
    });
    let img = TestImage::small("amd64", None, true);
    skopeo_push(&img, &reg.host(), "tls/app", &ca.cert, None);
    let r = reference(&format!("{}/tls/app:v1", reg.host()));

    let certs = tempfile::tempdir().unwrap();
    // One client throughout: certs.d is read per operation, so adding the CA needs no restart.
    let c = client(certs.path());
    let err = rt().block_on(c.resolve(&r, &amd64(), &anon())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Get \"https://{}/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
            reg.host()
        )
    );

    let host_dir = certs.path().join(reg.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca.cert, host_dir.join("ca.crt")).unwrap();
    let got = rt().block_on(c.resolve(&r, &amd64(), &anon())).unwrap();
    assert_eq!(got.endpoint, format!("https://{}/v2", reg.host()));
    assert_eq!(got.digest.as_str(), img.manifest.digest);

    let empty = tempfile::tempdir().unwrap();
    let insecure = client_with(empty.path(), |cfg| {
        cfg.insecure_registries = vec![format!("{}/30", ns.host_ip)]
    });
    let got = rt().block_on(insecure.resolve(&r, &amd64(), &anon())).unwrap();
    assert_eq!(
        got.endpoint,
        format!("https://{}/v2", reg.host()),
        "insecure: https without verification"
    );
}

#[test]
fn a_registry_that_requires_client_certificates_gets_them_from_certs_d() {
    if !require_root("a_registry_that_requires_client_certificates_gets_them_from_certs_d") {
        return;
    }
    let ns = Netns::create();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "berth-test-ca");
    let clients = Ca::new(&pki.path().join("clients"), "berth-client-ca");
    let client_cert = clients.client("berth-client");
    let reg = TestRegistry::start_with(Options {
        tls: Some(Tls {
            server: ca.server("registry", &ns.ns_ip.to_string()),
            client_ca: Some(clients.cert.clone()),
        }),
        netns: Some(&ns),
        ..Default::default()
    });
    let img = TestImage::small("amd64", None, true);
    skopeo_push(
        &img,
        &reg.host(),
        "mtls/app",
        &ca.cert,
        Some((&client_cert.cert, &client_cert.key)),
    );
    let r = reference(&format!("{}/mtls/app:v1", reg.host()));
    let certs = tempfile::tempdir().unwrap();
    let host_dir = certs.path().join(reg.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca.cert, host_dir.join("ca.crt")).unwrap();
    let err = rt()
        .block_on(client(certs.path()).resolve(&r, &amd64(), &anon()))
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate required") || err.to_string().contains("bad certificate"),
        "{err}"
    );
    std::fs::copy(&client_cert.cert, host_dir.join("client.cert")).unwrap();
    std::fs::copy(&client_cert.key, host_dir.join("client.key")).unwrap();
    let got = rt()
        .block_on(client(certs.path()).resolve(&r, &amd64(), &anon()))
        .unwrap();
    assert_eq!(got.digest.as_str(), img.manifest.digest);
}
