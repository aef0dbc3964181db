//! The fixtures themselves work: a registry accepts a pushed test image and serves it back;
//! token auth turns anonymous requests away and accepts minted tokens; htpasswd checks
//! passwords; everything is gone after drop.

use berth_testkit::registry::get;
use berth_testkit::token::TokenServer;
use berth_testkit::{basic, Options, Registry, TestImage};

#[test]
fn a_pushed_image_is_served_back_and_the_registry_is_gone_after_drop() {
    let img = TestImage::busybox();
    let (storage, addr) = {
        let reg = Registry::start();
        reg.push("fixture/busybox", "v1", &img.pushable(), None);
        // Without an Accept for schema 2, distribution 2.8 converts to schema 1.
        let m = berth_testkit::http::request(
            reg.addr(),
            "GET",
            "/v2/fixture/busybox/manifests/v1",
            &[("Accept", berth_testkit::image::DOCKER_MANIFEST)],
            b"",
        )
        .unwrap();
        assert_eq!(m.status(), 200);
        assert_eq!(
            m.header("docker-content-digest"),
            Some(img.manifest.digest.as_str())
        );
        let b = get(
            reg.addr(),
            &format!("/v2/fixture/busybox/blobs/{}", img.layers[0].digest),
            None,
        );
        assert_eq!(b.body, img.layers[0].bytes);
        (reg.storage().to_path_buf(), reg.addr())
    };
    assert!(!storage.exists(), "storage {} left behind", storage.display());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "registry still listening on {addr}"
    );
}

#[test]
fn images_are_deterministic() {
    let a = TestImage::small("arm", Some("v7"), true);
    let b = TestImage::small("arm", Some("v7"), true);
    assert_eq!(a.manifest.digest, b.manifest.digest);
    assert_ne!(
        a.manifest.digest,
        TestImage::small("arm", Some("v6"), true).manifest.digest
    );
}

#[test]
fn htpasswd_checks_passwords() {
    let reg = Registry::start_with(Options {
        htpasswd: vec![("alice".into(), "s3cret".into())],
        ..Default::default()
    });
    assert_eq!(get(reg.addr(), "/v2/", None).status(), 401);
    assert_eq!(
        get(reg.addr(), "/v2/", Some(&basic("alice", "wrong"))).status(),
        401
    );
    assert_eq!(
        get(reg.addr(), "/v2/", Some(&basic("alice", "s3cret"))).status(),
        200
    );
}

#[test]
fn token_auth_accepts_minted_tokens_only() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.add_user("bob", "pw");
    ts.grant(Some("bob"), "team/app", &["pull", "push"]);
    let reg = Registry::start_with(Options {
        token: Some(&ts),
        ..Default::default()
    });
    let challenge = get(reg.addr(), "/v2/", None);
    assert_eq!(challenge.status(), 401);
    let h = challenge.header("www-authenticate").unwrap().to_string();
    assert!(h.starts_with("Bearer realm=") && h.contains(&ts.realm()), "{h}");
    let token = ts.mint(Some("bob"), &["repository:team/app:pull,push"]);
    let img = TestImage::small("amd64", None, false);
    reg.push(
        "team/app",
        "latest",
        &img.pushable(),
        Some(&format!("Bearer {token}")),
    );
    let other = ts.mint(None, &["repository:team/app:pull"]);
    let m = get(
        reg.addr(),
        "/v2/team/app/manifests/latest",
        Some(&format!("Bearer {other}")),
    );
    assert_eq!(
        m.status(),
        401,
        "anonymous token with no grant must be refused: {}",
        reg.log()
    );
}
