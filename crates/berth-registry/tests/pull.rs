//! Pull against the real distribution registry: resolve by tag and digest, indexes and the
//! platform choice, missing things, and blobs that lie (through a fault-injecting proxy).

mod common;

use berth_registry::{Error, Platform, Resume};
use berth_testkit::proxy::{Fault, FaultProxy};
use berth_testkit::{Registry as TestRegistry, TestImage, TestIndex};
use common::*;
use sha2::Digest as _;

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn resolve_and_fetch_by_tag_and_by_digest() {
    let reg = TestRegistry::start();
    let img = TestImage::busybox();
    reg.push("lib/busybox", "1.0", &img.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let r = reference(&format!("{}/lib/busybox:1.0", reg.host()));
        let got = c.resolve(&r, &amd64(), &anon()).await.unwrap();
        assert_eq!(got.digest.as_str(), img.manifest.digest);
        assert_eq!(got.media_type, berth_testkit::image::DOCKER_MANIFEST);
        assert_eq!(got.bytes, img.manifest.bytes);
        assert_eq!(got.manifest_descriptor.digest.as_str(), img.manifest.digest);
        assert_eq!(got.config, img.config.bytes);
        assert_eq!(got.manifest.layers.len(), img.layers.len());
        assert_eq!(
            got.endpoint,
            format!("http://{}/v2", reg.host()),
            "loopback falls back to http"
        );
        for (d, want) in got.manifest.layers.iter().zip(&img.layers) {
            assert_eq!(d.media_type, want.media_type);
            let bytes = read_all(c.fetch_blob(&r, d, None, &anon()).await.unwrap())
                .await
                .unwrap();
            assert_eq!(bytes, want.bytes);
        }
        let by_digest = reference(&format!("{}/lib/busybox@{}", reg.host(), img.manifest.digest));
        let again = c.resolve(&by_digest, &amd64(), &anon()).await.unwrap();
        assert_eq!(again.digest, got.digest);
        assert_eq!(again.config, got.config);
    });
}

#[test]
fn an_index_yields_the_platforms_manifest_variant_included() {
    let reg = TestRegistry::start();
    let images = vec![
        TestImage::small("amd64", None, true),
        TestImage::small("arm64", Some("v8"), true),
        TestImage::small("arm", Some("v6"), true),
        TestImage::small("arm", Some("v7"), true),
    ];
    let idx = TestIndex::new(images.clone(), true);
    reg.push("multi/app", "latest", &idx.pushable(), None);
    let docker_list = TestIndex::new(images.clone(), false);
    reg.push("multi/app", "docker-list", &docker_list.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        for tag in ["latest", "docker-list"] {
            let r = reference(&format!("{}/multi/app:{tag}", reg.host()));
            let top = if tag == "latest" {
                &idx.index
            } else {
                &docker_list.index
            };
            for (want, img) in [
                ("linux/amd64", &images[0]),
                ("linux/arm64", &images[1]),
                ("linux/arm/v7", &images[3]),
                ("linux/arm/v6", &images[2]),
                ("linux/arm", &images[3]),
            ] {
                let got = c
                    .resolve(&r, &Platform::parse(want).unwrap(), &anon())
                    .await
                    .unwrap();
                assert_eq!(got.digest.as_str(), top.digest, "the RepoDigest is the index's");
                assert_eq!(got.media_type, top.media_type);
                assert_eq!(
                    got.manifest_descriptor.digest.as_str(),
                    img.manifest.digest,
                    "{tag} {want}"
                );
                assert_eq!(got.manifest_bytes, img.manifest.bytes);
                assert_eq!(got.config, img.config.bytes);
                assert_eq!(
                    got.manifest_descriptor.platform.as_ref().unwrap().architecture,
                    img.spec.arch
                );
            }
            let err = c
                .resolve(&r, &Platform::parse("linux/s390x").unwrap(), &anon())
                .await
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "no matching manifest for linux/s390x in the manifest list entries"
            );
            assert_eq!(err.kind(), berth_types::ErrorKind::NotFound);
        }
    });
}

#[test]
fn a_manifest_for_another_platform_only_is_an_error() {
    let reg = TestRegistry::start();
    let arm = TestImage::small("arm64", None, false);
    reg.push("only/arm", "latest", &arm.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let r = reference(&format!("{}/only/arm", reg.host()));
        let err = c.resolve(&r, &amd64(), &anon()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "image with reference {}/only/arm:latest was found but does not match the specified platform: wanted linux/amd64, actual: linux/arm64/v8",
                reg.host()
            )
        );
        assert!(c.resolve(&r, &Platform::parse("linux/arm64").unwrap(), &anon()).await.is_ok());
    });
}

#[test]
fn missing_tags_and_repositories_say_so_in_dockers_words() {
    let reg = TestRegistry::start();
    reg.push(
        "there/app",
        "v1",
        &TestImage::small("amd64", None, false).pushable(),
        None,
    );
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let err = c
            .resolve(
                &reference(&format!("{}/there/app:nope", reg.host())),
                &amd64(),
                &anon(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "manifest for {}/there/app:nope not found: manifest unknown: manifest unknown",
                reg.host()
            )
        );
        assert_eq!(err.kind(), berth_types::ErrorKind::NotFound);
        let err = c
            .resolve(
                &reference(&format!("{}/not/there", reg.host())),
                &amd64(),
                &anon(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NameUnknown { .. } | Error::ManifestUnknown { .. }),
            "{err}"
        );
        assert_eq!(err.kind(), berth_types::ErrorKind::NotFound);
    });
}

#[test]
fn an_unreachable_registry_names_the_host_and_the_refusal() {
    let port = berth_testkit::registry::free_port();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let err = c
            .resolve(&reference(&format!("127.0.0.1:{port}/x")), &amd64(), &anon())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Get \"http://127.0.0.1:{port}/v2/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    });
}

fn faulty(fault: Fault) -> (TestRegistry, FaultProxy, TestImage) {
    let reg = TestRegistry::start();
    let img = TestImage::small("amd64", None, false);
    reg.push("fault/app", "latest", &img.pushable(), None);
    let proxy = FaultProxy::start(reg.addr(), &img.layers[0].digest, fault);
    (reg, proxy, img)
}

#[test]
fn a_blob_that_does_not_match_its_digest_ends_the_stream_with_an_error() {
    let (_reg, proxy, img) = faulty(Fault::Corrupt);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    rt().block_on(async {
        let r = reference(&format!("{}/fault/app", proxy.addr()));
        let got = c.resolve(&r, &amd64(), &anon()).await.unwrap();
        let err = read_all(
            c.fetch_blob(&r, &got.manifest.layers[0], None, &anon())
                .await
                .unwrap(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "filesystem layer verification failed for digest {}",
                img.layers[0].digest
            )
        );
        assert_eq!(proxy.hits(), 1);
    });
}

#[test]
fn a_truncated_or_overlong_blob_ends_the_stream_with_an_error() {
    for fault in [Fault::Truncate, Fault::Extend] {
        let (_reg, proxy, img) = faulty(fault);
        let certs = tempfile::tempdir().unwrap();
        let c = client(certs.path());
        rt().block_on(async {
            let r = reference(&format!("{}/fault/app", proxy.addr()));
            let d = descriptor(&img.layers[0]);
            let err = read_all(c.fetch_blob(&r, &d, None, &anon()).await.unwrap())
                .await
                .unwrap_err();
            let want = img.layers[0].bytes.len() as u64;
            match fault {
                Fault::Truncate => assert!(
                    matches!(err, Error::Short { got, want: w, .. } if got == want / 2 && w == want),
                    "{err}"
                ),
                _ => assert!(matches!(err, Error::Long { .. }), "{err}"),
            }
        });
    }
}

#[test]
fn a_download_resumes_from_an_offset_and_still_verifies_the_whole_blob() {
    let reg = TestRegistry::start();
    let img = TestImage::busybox();
    reg.push("resume/app", "latest", &img.pushable(), None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let layer = &img.layers[0];
    rt().block_on(async {
        let r = reference(&format!("{}/resume/app", reg.host()));
        let d = descriptor(layer);
        let cut = layer.bytes.len() / 3;
        let mut hasher = sha2::Sha256::new();
        hasher.update(&layer.bytes[..cut]);
        let s = c
            .fetch_blob(
                &r,
                &d,
                Some(Resume {
                    offset: cut as u64,
                    hasher,
                }),
                &anon(),
            )
            .await
            .unwrap();
        assert_eq!(s.offset(), cut as u64, "the registry honours Range");
        assert_eq!(read_all(s).await.unwrap(), &layer.bytes[cut..]);
        // a wrong prefix state is caught at the end
        let mut wrong = sha2::Sha256::new();
        wrong.update(b"not the prefix");
        let s = c
            .fetch_blob(
                &r,
                &d,
                Some(Resume {
                    offset: cut as u64,
                    hasher: wrong,
                }),
                &anon(),
            )
            .await
            .unwrap();
        assert!(matches!(read_all(s).await, Err(Error::DigestMismatch { .. })));
    });
}
