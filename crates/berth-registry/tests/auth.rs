//! Auth against the real registry: htpasswd basic auth, the bearer flow with a token server
//! (anonymous, with credentials, cached per scope, refreshed on 401, identity and registry
//! tokens), logins, credentials kept to their registry, and retries that stop at 4xx.

mod common;

use berth_registry::{AuthConfig, Error, Platform};
use berth_testkit::proxy::{Fault, FaultProxy};
use berth_testkit::token::TokenServer;
use berth_testkit::{basic, Options, Registry as TestRegistry, TestImage};
use berth_types::ErrorKind;
use common::*;

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn basic_auth_takes_good_credentials_and_refuses_bad_ones() {
    let reg = TestRegistry::start_with(Options {
        htpasswd: vec![("alice".into(), "s3cret".into())],
        ..Default::default()
    });
    let img = TestImage::small("amd64", None, false);
    reg.push(
        "priv/app",
        "latest",
        &img.pushable(),
        Some(&basic("alice", "s3cret")),
    );
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let r = reference(&format!("{}/priv/app", reg.host()));
    rt().block_on(async {
        let got = c.resolve(&r, &amd64(), &creds("alice", "s3cret")).await.unwrap();
        assert_eq!(got.digest.as_str(), img.manifest.digest);
        let blob = read_all(
            c.fetch_blob(&r, &got.manifest.layers[0], None, &creds("alice", "s3cret"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(blob.unwrap(), img.layers[0].bytes);

        let err = c
            .resolve(&r, &amd64(), &creds("alice", "wrong"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(
            err.to_string().ends_with("unauthorized: authentication required"),
            "{err}"
        );
        let err = c.resolve(&r, &amd64(), &anon()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Head \"http://{}/v2/priv/app/manifests/latest\": no basic auth credentials",
                reg.host()
            )
        );

        let ok = c
            .check_login(&reg.host(), &creds("alice", "s3cret"))
            .await
            .unwrap();
        assert_eq!(ok.status, "Login Succeeded");
        let err = c
            .check_login(&reg.host(), &creds("alice", "wrong"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
                reg.host()
            )
        );
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
    });
}

struct TokenSetup {
    _dir: tempfile::TempDir,
    ts: TokenServer,
    reg: TestRegistry,
    img: TestImage,
}

/// A token-auth registry: alice may pull and push `team/*`'s `team/app`; anonymous users may
/// pull `public/app`; `team/app` and `public/app` hold the same small image.
fn token_registry() -> TokenSetup {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.add_user("alice", "pw");
    ts.grant(Some("alice"), "team/app", &["pull", "push"]);
    ts.grant(None, "public/app", &["pull"]);
    let reg = TestRegistry::start_with(Options {
        token: Some(&ts),
        ..Default::default()
    });
    let img = TestImage::small("amd64", None, false);
    let admin = ts.mint(Some("alice"), &["repository:team/app:pull,push"]);
    reg.push(
        "team/app",
        "latest",
        &img.pushable(),
        Some(&format!("Bearer {admin}")),
    );
    ts.grant(Some("pusher"), "*", &["*"]);
    let any = ts.mint(Some("pusher"), &["repository:public/app:pull,push"]);
    reg.push(
        "public/app",
        "latest",
        &img.pushable(),
        Some(&format!("Bearer {any}")),
    );
    TokenSetup {
        _dir: dir,
        ts,
        reg,
        img,
    }
}

#[test]
fn the_bearer_flow_pulls_anonymously_and_with_credentials_and_caches_tokens_per_scope() {
    let s = token_registry();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let public = reference(&format!("{}/public/app", s.reg.host()));
        let got = c.resolve(&public, &amd64(), &anon()).await.unwrap();
        read_all(c.fetch_blob(&public, &got.manifest.layers[0], None, &anon()).await.unwrap()).await.unwrap();
        let log = s.ts.requests();
        assert_eq!(log.len(), 1, "one anonymous token served the manifest, config and blob: {log:?}");
        assert_eq!(log[0].user, None);
        assert!(!log[0].had_credentials);
        assert_eq!(log[0].scopes, ["repository:public/app:pull"]);

        let team = reference(&format!("{}/team/app", s.reg.host()));
        let got = c.resolve(&team, &amd64(), &creds("alice", "pw")).await.unwrap();
        assert_eq!(got.digest.as_str(), s.img.manifest.digest);
        let log = s.ts.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].user.as_deref(), Some("alice"));
        assert_eq!(log[1].scopes, ["repository:team/app:pull"]);

        let err = c.resolve(&team, &amd64(), &anon()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "pull access denied for {}/team/app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
                s.reg.host()
            )
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = c.resolve(&team, &amd64(), &creds("alice", "nope")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.to_string().ends_with("unauthorized: incorrect username or password"), "{err}");
    });
}

#[test]
fn a_cached_token_the_registry_refuses_is_replaced_on_401() {
    let dir = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.add_user("alice", "pw");
    ts.grant(Some("alice"), "team/app", &["pull", "push"]);
    let opts = |port| Options {
        token: Some(&ts),
        storage: Some(storage.path().to_path_buf()),
        port,
        ..Default::default()
    };
    let reg = TestRegistry::start_with(opts(None));
    let img = TestImage::small("amd64", None, false);
    let admin = ts.mint(Some("alice"), &["repository:team/app:pull,push"]);
    reg.push(
        "team/app",
        "latest",
        &img.pushable(),
        Some(&format!("Bearer {admin}")),
    );
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let team = reference(&format!("{}/team/app", reg.host()));
    let runtime = rt();
    let got = runtime
        .block_on(c.resolve(&team, &amd64(), &creds("alice", "pw")))
        .unwrap();
    assert_eq!(ts.requests().len(), 1);
    // The token server changes its key and the registry, restarted on the same port and
    // storage, trusts only the new one: the client's cached token (valid for 300 s as far as
    // it knows) is now refused with 401.
    let port = reg.addr().port();
    drop(reg);
    ts.rotate_key();
    let _reg = TestRegistry::start_with(opts(Some(port)));
    let blob = runtime.block_on(async {
        read_all(
            c.fetch_blob(&team, &got.manifest.layers[0], None, &creds("alice", "pw"))
                .await
                .unwrap(),
        )
        .await
    });
    assert_eq!(blob.unwrap(), img.layers[0].bytes);
    let log = ts.requests();
    assert_eq!(log.len(), 2, "one fresh token after the 401: {log:?}");
    assert_eq!(log[1].user.as_deref(), Some("alice"));
}

#[test]
fn identity_and_registry_tokens_stand_in_for_passwords() {
    let s = token_registry();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let login = c.check_login(&s.reg.host(), &creds("alice", "pw")).await.unwrap();
        assert_eq!(login.status, "Login Succeeded");
        let identity = login
            .identity_token
            .expect("the token server hands out a refresh token");
        let err = c
            .check_login(&s.reg.host(), &creds("alice", "bad"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

        let team = reference(&format!("{}/team/app", s.reg.host()));
        let by_identity = AuthConfig {
            username: "alice".into(),
            identitytoken: identity,
            ..Default::default()
        };
        c.resolve(&team, &amd64(), &by_identity).await.unwrap();
        let last = s.ts.requests().pop().unwrap();
        assert_eq!(
            (last.method.as_str(), last.user.as_deref()),
            ("POST", Some("alice")),
            "refresh-token grant"
        );

        let before = s.ts.requests().len();
        let by_token = AuthConfig {
            registrytoken: s.ts.mint(Some("alice"), &["repository:team/app:pull"]),
            ..Default::default()
        };
        c.resolve(&team, &amd64(), &by_token).await.unwrap();
        assert_eq!(s.ts.requests().len(), before, "a registry token is sent as it is");
    });
}

#[test]
fn credentials_for_another_registry_are_not_sent() {
    let s = token_registry();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let public = reference(&format!("{}/public/app", s.reg.host()));
        let elsewhere = AuthConfig {
            serveraddress: "other.example:5000".into(),
            ..creds("alice", "pw")
        };
        c.resolve(&public, &amd64(), &elsewhere).await.unwrap();
        let log = s.ts.requests();
        assert_eq!(log.len(), 1);
        assert!(
            !log[0].had_credentials,
            "alice's password for other.example went to {}",
            s.reg.host()
        );
        let mine = AuthConfig {
            serveraddress: format!("http://{}/v2/", s.reg.host()),
            ..creds("alice", "pw")
        };
        c.resolve(&reference(&format!("{}/team/app", s.reg.host())), &amd64(), &mine)
            .await
            .unwrap();
        assert_eq!(s.ts.requests().last().unwrap().user.as_deref(), Some("alice"));
    });
}

#[test]
fn transient_failures_are_retried_and_4xx_are_not() {
    let reg = TestRegistry::start();
    let img = TestImage::small("amd64", None, false);
    reg.push("retry/app", "latest", &img.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        for status in [503u16, 429, 502] {
            let proxy = FaultProxy::start(reg.addr(), "/manifests/", Fault::FailFirst(2, status));
            let r = reference(&format!("{}/retry/app", proxy.addr()));
            let got = c.resolve(&r, &amd64(), &anon()).await;
            assert!(got.is_ok(), "{status} twice then fine: {got:?}");
            assert_eq!(proxy.hits(), 2, "{status}");
        }
        let proxy = FaultProxy::start(reg.addr(), "/manifests/", Fault::FailFirst(1, 400));
        let r = reference(&format!("{}/retry/app", proxy.addr()));
        let err = c.resolve(&r, &amd64(), &anon()).await.unwrap_err();
        assert!(matches!(err, Error::Registry { status: 400, .. }), "{err}");
        assert_eq!(proxy.hits(), 1, "a 4xx is not retried");
    });
}
