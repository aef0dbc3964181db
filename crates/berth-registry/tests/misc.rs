//! Proxies (CONNECT and absolute-form, Go's no-proxy rules), search through the catalog, tags,
//! and plain URLs for `import`.

mod common;

use berth_registry::{Error, Platform, Proxies};
use berth_testkit::netns::Netns;
use berth_testkit::pki::Ca;
use berth_testkit::proxy::{FileServer, ForwardProxy};
use berth_testkit::registry::Tls;
use berth_testkit::token::TokenServer;
use berth_testkit::{require_root, Options, Registry as TestRegistry, TestImage};
use common::*;

#[test]
fn registry_traffic_goes_through_the_configured_proxies_except_loopback_and_no_proxy() {
    if !require_root("registry_traffic_goes_through_the_configured_proxies_except_loopback_and_no_proxy") {
        return;
    }
    let ns = Netns::create();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "berth-test-ca");
    let plain = TestRegistry::start_with(Options {
        netns: Some(&ns),
        port: Some(5000),
        ..Default::default()
    });
    let tls = TestRegistry::start_with(Options {
        netns: Some(&ns),
        port: Some(5443),
        tls: Some(Tls {
            server: ca.server("registry", &ns.ns_ip.to_string()),
            client_ca: None,
        }),
        storage: Some(plain.storage().to_path_buf()),
        ..Default::default()
    });
    // Push through the plain one (raw HTTP from the host, straight over the veth); both serve
    // the same storage.
    let img = TestImage::small("amd64", None, false);
    plain.push("proxied/app", "v1", &img.pushable(), None);

    let certs = tempfile::tempdir().unwrap();
    let tls_dir = certs.path().join(tls.host());
    std::fs::create_dir_all(&tls_dir).unwrap();
    std::fs::copy(&ca.cert, tls_dir.join("ca.crt")).unwrap();
    let plain_dir = certs.path().join(plain.host());
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::write(
        plain_dir.join("hosts.toml"),
        format!("server = \"{}\"\n", plain.url()),
    )
    .unwrap();

    let proxy = ForwardProxy::start();
    let files = FileServer::start(vec![("/x.tar".into(), b"tar bytes".to_vec(), None)]);
    let via = |no_proxy: Option<&str>| {
        client_with(certs.path(), |cfg| {
            cfg.proxies = Proxies {
                http_proxy: Some(proxy.url()),
                https_proxy: Some(proxy.url()),
                no_proxy: no_proxy.map(str::to_string),
            }
        })
    };
    let amd64 = Platform::parse("linux/amd64").unwrap();
    rt().block_on(async {
        let c = via(None);
        let got = c
            .resolve(
                &reference(&format!("{}/proxied/app:v1", plain.host())),
                &amd64,
                &anon(),
            )
            .await
            .unwrap();
        assert_eq!(got.digest.as_str(), img.manifest.digest);
        let log = proxy.log();
        assert!(
            log.iter()
                .any(|l| l == &format!("GET {}/v2/proxied/app/manifests/v1", plain.url())),
            "http goes as absolute-form requests to the proxy: {log:?}"
        );
        let got = c
            .resolve(
                &reference(&format!("{}/proxied/app:v1", tls.host())),
                &amd64,
                &anon(),
            )
            .await
            .unwrap();
        assert_eq!(got.endpoint, format!("https://{}/v2", tls.host()));
        let log = proxy.log();
        assert!(
            log.contains(&format!("CONNECT {}", tls.host())),
            "https is tunnelled with CONNECT: {log:?}"
        );

        let before = proxy.log().len();
        let (_, _, s) = c.fetch_url(&format!("{}/x.tar", files.url())).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), b"tar bytes");
        assert_eq!(proxy.log().len(), before, "loopback is never proxied");

        let direct = via(Some(&format!("{}/30", ns.host_ip)));
        direct
            .resolve(
                &reference(&format!("{}/proxied/app:v1", plain.host())),
                &amd64,
                &anon(),
            )
            .await
            .unwrap();
        direct
            .resolve(
                &reference(&format!("{}/proxied/app:v1", tls.host())),
                &amd64,
                &anon(),
            )
            .await
            .unwrap();
        assert_eq!(proxy.log().len(), before, "no-proxy CIDR goes direct");
    });
}

#[test]
fn search_falls_back_to_the_catalog_filtered_by_the_term() {
    let reg = TestRegistry::start();
    let img = TestImage::small("amd64", None, false);
    for repo in ["search/alpha", "search/beta", "other/gamma"] {
        reg.push(repo, "latest", &img.pushable(), None);
    }
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let found = c.search(&reg.host(), "search", 25, &anon()).await.unwrap();
        let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["search/alpha", "search/beta"]);
        assert!(found
            .iter()
            .all(|r| !r.is_official && r.star_count == 0 && r.description.is_empty()));
        assert_eq!(
            c.search(&reg.host(), "GAMMA", 25, &anon()).await.unwrap().len(),
            1,
            "case-insensitive"
        );
        assert_eq!(
            c.search(&reg.host(), "search", 1, &anon()).await.unwrap().len(),
            1,
            "limit"
        );
        assert!(c
            .search(&reg.host(), "nothing-like-it", 25, &anon())
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
fn the_catalog_of_a_token_registry_needs_the_catalog_scope() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.add_user("admin", "pw");
    ts.grant(Some("admin"), "*", &["*"]);
    let reg = TestRegistry::start_with(Options {
        token: Some(&ts),
        ..Default::default()
    });
    let admin = ts.mint(Some("admin"), &["repository:team/searchable:pull,push"]);
    reg.push(
        "team/searchable",
        "latest",
        &TestImage::small("amd64", None, false).pushable(),
        Some(&format!("Bearer {admin}")),
    );
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let found = c
            .search(&reg.host(), "search", 25, &creds("admin", "pw"))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "team/searchable");
        assert!(ts.requests().iter().any(|r| r.scopes == ["registry:catalog:*"]));
        let err = c.search(&reg.host(), "search", 25, &anon()).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    });
}

#[test]
fn tags_are_listed() {
    let reg = TestRegistry::start();
    let img = TestImage::small("amd64", None, false);
    for tag in ["1.0", "1.1", "latest"] {
        reg.push("tagged/app", tag, &img.pushable(), None);
    }
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let mut tags = c
            .tags(&reference(&format!("{}/tagged/app", reg.host())), &anon())
            .await
            .unwrap();
        tags.sort();
        assert_eq!(tags, ["1.0", "1.1", "latest"]);
        let err = c
            .tags(&reference(&format!("{}/no/such", reg.host())), &anon())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), berth_types::ErrorKind::NotFound);
    });
}

#[test]
fn fetch_url_streams_a_url_with_its_length_and_last_modified() {
    let body = berth_testkit::image::noise(300_000, 7);
    let files = FileServer::start(vec![(
        "/rootfs.tar".into(),
        body.clone(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
    )]);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let (len, modified, s) = c.fetch_url(&format!("{}/rootfs.tar", files.url())).await.unwrap();
        assert_eq!(len, Some(body.len() as u64));
        assert_eq!(modified.as_deref(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(read_all(s).await.unwrap(), body);
        let err = c
            .fetch_url(&format!("{}/missing.tar", files.url()))
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "unexpected status from GET request to {}/missing.tar: 404 Not Found",
                files.url()
            )
        );
        let err = c.fetch_url("ftp://example/x").await.err().unwrap();
        assert_eq!(err.kind(), berth_types::ErrorKind::InvalidArgument);
    });
    assert_eq!(files.requests(), 2);
}
