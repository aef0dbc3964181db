//! Push against the real registry: HEAD, cross-repository mounts (201, and the 202 fallback
//! whose session the upload reuses), monolithic and chunked uploads, manifests; what was pushed
//! pulls back, and skopeo agrees on the digests.

mod common;

use berth_registry::{Error, Platform};
use berth_testkit::image::{skopeo, Spec};
use berth_testkit::proxy::FaultProxy;
use berth_testkit::token::TokenServer;
use berth_testkit::{Options, Registry as TestRegistry, TestImage};
use berth_types::{Digest, ErrorKind};
use common::*;

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

/// Pushes every blob of `img` with upload_blob (after a HEAD) and the manifest as `tag`.
async fn push_image(
    c: &berth_registry::Registry,
    r: &berth_types::Reference,
    img: &TestImage,
    auth: &berth_registry::AuthConfig,
) -> Vec<Vec<u64>> {
    let mut progress_per_blob = vec![];
    for b in img.layers.iter().chain([&img.config]) {
        let d = digest(&b.digest);
        assert!(
            !c.blob_exists(r, &d, auth).await.unwrap(),
            "{} not there yet",
            b.digest
        );
        let mut progress = vec![];
        c.upload_blob(
            r,
            &d,
            b.bytes.len() as u64,
            &b.bytes[..],
            |n| progress.push(n),
            auth,
        )
        .await
        .unwrap();
        assert!(c.blob_exists(r, &d, auth).await.unwrap());
        progress_per_blob.push(progress);
    }
    let got = c
        .put_manifest(
            r,
            r.tag().unwrap(),
            &img.manifest.media_type,
            &img.manifest.bytes,
            auth,
        )
        .await
        .unwrap();
    assert_eq!(got.as_str(), img.manifest.digest);
    progress_per_blob
}

#[test]
fn a_monolithic_push_pulls_back_and_skopeo_agrees_on_the_digests() {
    let reg = TestRegistry::start();
    let img = TestImage::busybox();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let r = reference(&format!("{}/pushed/busybox:v1", reg.host()));
    rt().block_on(async {
        let progress = push_image(&c, &r, &img, &anon()).await;
        for (p, b) in progress.iter().zip(img.layers.iter().chain([&img.config])) {
            assert_eq!(
                p.last().copied(),
                Some(b.bytes.len() as u64),
                "progress ends at the size"
            );
            assert!(p.windows(2).all(|w| w[0] < w[1]), "progress only grows");
        }
        let got = c
            .resolve(&r, &Platform::parse("linux/amd64").unwrap(), &anon())
            .await
            .unwrap();
        assert_eq!(got.digest.as_str(), img.manifest.digest);
        let layer = read_all(
            c.fetch_blob(&r, &got.manifest.layers[0], None, &anon())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(layer.unwrap(), img.layers[0].bytes);
    });
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/pushed/busybox:v1", reg.host()),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], img.manifest.digest.as_str());
    let layers: Vec<&str> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let want: Vec<&str> = img.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, want);
}

#[test]
fn a_chunked_upload_sends_patches_then_a_put() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::passthrough(reg.addr());
    let img = TestImage::build(Spec {
        without_busybox: true,
        big_layer: Some(1_000_000),
        ..Spec::default()
    });
    let big = img.layers.last().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let c = client_with(certs.path(), |cfg| cfg.upload_chunk_size = Some(256 << 10));
    let r = reference(&format!("{}/chunked/app:v1", proxy.addr()));
    rt().block_on(async {
        let progress = push_image(&c, &r, &img, &anon()).await;
        let big_progress = &progress[img.layers.len() - 1];
        assert_eq!(big_progress.last().copied(), Some(big.bytes.len() as u64));
        let got = c
            .resolve(&r, &Platform::parse("linux/amd64").unwrap(), &anon())
            .await
            .unwrap();
        let back = read_all(
            c.fetch_blob(&r, got.manifest.layers.last().unwrap(), None, &anon())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(back.unwrap(), big.bytes);
    });
    let log = proxy.log();
    let patches = log.iter().filter(|l| l.starts_with("PATCH ")).count();
    let chunks = big.bytes.len().div_ceil(256 << 10);
    assert_eq!(
        patches, chunks,
        "one PATCH per 256 KiB chunk of the big layer only: {log:#?}"
    );
    // the small blobs went up in one PUT each
    let puts = log
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/"))
        .count();
    assert_eq!(puts, img.layers.len() + 1);
}

#[test]
fn a_blob_mounts_across_repositories_and_a_refused_mount_falls_back_to_its_upload_session() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::passthrough(reg.addr());
    let img = TestImage::small("amd64", None, false);
    reg.push("source/app", "latest", &img.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let layer = &img.layers[0];
    let d = digest(&layer.digest);
    rt().block_on(async {
        let target = reference(&format!("{}/target/app:latest", proxy.addr()));
        assert!(!c.blob_exists(&target, &d, &anon()).await.unwrap());
        assert!(
            c.mount_blob(&target, &d, "source/app", &anon()).await.unwrap(),
            "201: mounted"
        );
        assert!(c.blob_exists(&target, &d, &anon()).await.unwrap());

        // A source that does not have the blob: 202 and an upload session, which the upload uses.
        let other = reference(&format!("{}/other/app:latest", proxy.addr()));
        assert!(
            !c.mount_blob(&other, &d, "empty/repo", &anon()).await.unwrap(),
            "202: not mounted"
        );
        let posts_before = proxy.log().iter().filter(|l| l.starts_with("POST ")).count();
        c.upload_blob(
            &other,
            &d,
            layer.bytes.len() as u64,
            &layer.bytes[..],
            |_| {},
            &anon(),
        )
        .await
        .unwrap();
        let posts_after = proxy.log().iter().filter(|l| l.starts_with("POST ")).count();
        assert_eq!(
            posts_before, posts_after,
            "the mount's session was reused, no new POST"
        );
        assert!(c.blob_exists(&other, &d, &anon()).await.unwrap());
    });
}

#[test]
fn a_mount_from_an_unreadable_repository_falls_back_and_pushes_without_rights_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.add_user("alice", "pw");
    ts.grant(Some("alice"), "alice/app", &["pull", "push"]);
    ts.grant(Some("admin"), "*", &["*"]);
    let reg = TestRegistry::start_with(Options {
        token: Some(&ts),
        ..Default::default()
    });
    let img = TestImage::small("amd64", None, false);
    let admin = ts.mint(Some("admin"), &["repository:secret/app:pull,push"]);
    reg.push(
        "secret/app",
        "latest",
        &img.pushable(),
        Some(&format!("Bearer {admin}")),
    );
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let alice = creds("alice", "pw");
    rt().block_on(async {
        let mine = reference(&format!("{}/alice/app:latest", reg.host()));
        let layer = &img.layers[0];
        let d = digest(&layer.digest);
        assert!(
            !c.mount_blob(&mine, &d, "secret/app", &alice).await.unwrap(),
            "alice cannot read secret/app"
        );
        c.upload_blob(
            &mine,
            &d,
            layer.bytes.len() as u64,
            &layer.bytes[..],
            |_| {},
            &alice,
        )
        .await
        .unwrap();
        assert!(c.blob_exists(&mine, &d, &alice).await.unwrap());

        let theirs = reference(&format!("{}/secret/app:latest", reg.host()));
        let err = c
            .upload_blob(
                &theirs,
                &d,
                layer.bytes.len() as u64,
                &layer.bytes[..],
                |_| {},
                &alice,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "denied: requested access to the resource is denied"
        );
        let err = c
            .put_manifest(
                &theirs,
                "latest",
                &img.manifest.media_type,
                &img.manifest.bytes,
                &anon(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert_eq!(err.to_string(), "unauthorized: authentication required");
    });
}
