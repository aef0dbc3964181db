//! Registries: push and pull against the real distribution registry (Debian's docker-registry on
//! 127.0.0.1), with berth, the real docker CLI, docker-py and skopeo; credentials; faults that
//! must leave the store as it was.

use std::time::Duration;

use berth_e2e::Daemon;
use berth_testkit::image::{skopeo, TestImage};
use berth_testkit::registry::{Options, Registry};

fn image_id(d: &Daemon, name: &str) -> Option<String> {
    let r = d.berth(&["image", "inspect", "-f", "{{.Id}}", name]);
    (r.code == 0).then(|| r.out().to_string())
}

/// `berthd check` finds nothing (the daemon is stopped for it and started again).
fn check_clean(d: &mut Daemon, when: &str) {
    d.stop();
    let r = d.berthd(&["check", "--data-root", d.data_root().to_str().unwrap()]);
    assert_eq!(r.code, 0, "berthd check {when}:\n{}{}", r.stdout, r.stderr);
    d.spawn();
}

/// The images and blobs in the store, to compare before and after a failed operation.
fn store(d: &Daemon) -> (String, Vec<String>) {
    let images = d
        .berth(&[
            "images",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ])
        .ok();
    let mut blobs: Vec<String> = std::fs::read_dir(d.data_root().join("content/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    (images.stdout, blobs)
}

#[test]
fn push_then_pull_round_trips_with_dockers_output() {
    let mut d = daemon!();
    let reg = Registry::start();
    let name = format!("{}/test/bb:1", reg.host());
    let id = image_id(&d, "busybox").unwrap();
    d.berth(&["tag", "busybox", &name]).ok();
    let push = d.berth(&["push", &name]).ok();
    assert!(
        push.stdout
            .contains(&format!("The push refers to repository [{}/test/bb]", reg.host())),
        "{}",
        push.stdout
    );
    assert!(
        push.stdout.contains(": Preparing") && push.stdout.contains(": Pushed"),
        "{}",
        push.stdout
    );
    let digest_line = push
        .stdout
        .lines()
        .find(|l| l.starts_with("1: digest: sha256:"))
        .unwrap_or_else(|| panic!("{}", push.stdout))
        .to_string();
    let digest = digest_line.split_whitespace().nth(2).unwrap().to_string();
    // skopeo sees what berth pushed.
    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"].as_str(), Some(digest.as_str()), "{inspect}");
    // Pushing again: every layer is there already.
    let again = d.berth(&["push", &name]).ok();
    assert!(again.stdout.contains("Layer already exists"), "{}", again.stdout);
    assert!(
        again.stdout.contains(&digest_line),
        "same manifest, same digest: {}",
        again.stdout
    );
    // Pull it back into an empty store: the same image ID.
    d.berth(&["rmi", &name, "busybox"]).ok();
    assert!(image_id(&d, &id).is_none());
    let pull = d.berth(&["pull", &name]).ok();
    assert!(pull.stdout.contains("1: Pulling from test/bb"), "{}", pull.stdout);
    assert!(pull.stdout.contains(": Pull complete"), "{}", pull.stdout);
    assert!(
        pull.stdout.contains(&format!("Digest: {digest}")),
        "{}",
        pull.stdout
    );
    assert!(
        pull.stdout
            .contains(&format!("Status: Downloaded newer image for {name}")),
        "{}",
        pull.stdout
    );
    assert_eq!(pull.stdout.lines().last(), Some(name.as_str()));
    assert_eq!(
        image_id(&d, &name).as_deref(),
        Some(id.as_str()),
        "same image ID after the round trip"
    );
    let digests = d
        .berth(&["image", "inspect", "-f", "{{json .RepoDigests}}", &name])
        .ok();
    assert!(
        digests
            .stdout
            .contains(&format!("{}/test/bb@{digest}", reg.host())),
        "{}",
        digests.stdout
    );
    // By digest, and again: up to date.
    let by_digest = format!("{}/test/bb@{digest}", reg.host());
    let up = d.berth(&["pull", &name]).ok();
    assert!(
        up.stdout
            .contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        up.stdout
    );
    assert_eq!(
        d.berth(&["run", "--rm", &by_digest, "echo", "by-digest"])
            .ok()
            .out(),
        "by-digest"
    );
    let listed = d.berth(&["images", "--digests"]).ok();
    assert!(listed.stdout.contains(&digest), "{}", listed.stdout);
    // As dockerd (scripts/sidebyside/registry.txt): an image that is here already is pulled
    // with no line per layer; removing the repository's last tag drops its digest reference,
    // so pulling by digest then names it anew ("Downloaded newer image").
    assert!(!up.stdout.contains("Already exists"), "{}", up.stdout);
    let tagged = format!("{}/test/bb:1", reg.host());
    d.berth(&["tag", &tagged, "keep:1"]).ok();
    d.berth(&["rmi", &tagged]).ok();
    let again = d.docker(&["pull", &by_digest]).ok();
    assert!(
        again
            .stdout
            .contains(&format!("Status: Downloaded newer image for {by_digest}"))
            && !again.stdout.contains("Already exists"),
        "{}",
        again.stdout
    );
    // Push errors in dockerd's words: a tag missing from a repository that is here, and a
    // repository with nothing here at all (named without its tag).
    let r = d.docker(&["push", &format!("{}/test/bb:nosuch", reg.host())]);
    assert!(
        r.code == 1
            && r.stderr
                .contains(&format!("tag does not exist: {}/test/bb:nosuch", reg.host())),
        "{r:?}"
    );
    let r = d.docker(&["push", &format!("{}/test/nosuch", reg.host())]);
    assert!(
        r.code == 1
            && r.stderr.trim_end().ends_with(&format!(
                "An image does not exist locally with the tag: {}/test/nosuch",
                reg.host()
            )),
        "{r:?}"
    );
    d.berth(&["rmi", &by_digest, "keep:1"]).ok();
    check_clean(&mut d, "after the round trip");
}

#[test]
fn run_pulls_a_missing_image_and_docker_cli_and_docker_py_pull_and_push() {
    let d = daemon!();
    let reg = Registry::start();
    let img = TestImage::busybox();
    img.pushable().push(reg.addr(), "test/src", "v1", None);
    let name = format!("{}/test/src:v1", reg.host());
    let run = d
        .berth(&["run", "--rm", &name, "cat", "/etc/berth-test-platform"])
        .ok();
    assert!(
        run.stderr
            .contains(&format!("Unable to find image '{name}' locally")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.starts_with("linux/amd64"), "{}", run.stdout);
    // The real docker CLI through berthd.
    let other = format!("{}/test/viadocker:1", reg.host());
    d.docker(&["tag", &name, &other]).ok();
    let push = d.docker(&["push", &other]).ok();
    assert!(
        push.stdout.contains("Pushed")
            || push.stdout.contains("Layer already exists")
            || push.stdout.contains("Mounted from"),
        "{}",
        push.stdout
    );
    d.docker(&["rmi", &other]).ok();
    let pull = d.docker(&["pull", &other]).ok();
    assert!(
        pull.stdout
            .contains(&format!("Status: Downloaded newer image for {other}")),
        "{}",
        pull.stdout
    );
    // docker-py.
    let script = format!(
        r#"
import docker
c = docker.from_env()
img = c.images.pull("{host}/test/src", tag="v1")
assert "{host}/test/src:v1" in img.tags, img.tags
assert any(d.startswith("{host}/test/src@sha256:") for d in img.attrs["RepoDigests"]), img.attrs["RepoDigests"]
img.tag("{host}/test/py", "2")
out = c.images.push("{host}/test/py", tag="2", stream=True, decode=True)
msgs = list(out)
assert any(m.get("aux", {{}}).get("Tag") == "2" for m in msgs), msgs
assert not any("error" in m for m in msgs), msgs
print("ok")
"#,
        host = reg.host()
    );
    let r = d.python(&script);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Name}}",
            &format!("docker://{}/test/py:2", reg.host())
        ])
        .trim(),
        format!("{}/test/py", reg.host())
    );
}

#[test]
fn an_image_skopeo_put_in_the_registry_pulls_with_every_layer_verified() {
    let d = daemon!();
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    // OCI media types (skopeo's oci: transport reads only those).
    let img = TestImage::build(berth_testkit::image::Spec {
        oci: true,
        ..Default::default()
    });
    img.pushable().write_oci_layout(dir.path(), "v1");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", dir.path().display()),
        &format!("docker://{}/skopeo/bb:v1", reg.host()),
    ]);
    let name = format!("{}/skopeo/bb:v1", reg.host());
    d.berth(&["pull", &name]).ok();
    assert_eq!(
        d.berth(&["run", "--rm", &name, "echo", "pulled"]).ok().out(),
        "pulled"
    );
}

#[test]
fn login_then_push_and_pull_with_credentials() {
    let d = daemon!();
    let reg = Registry::start_with(Options {
        htpasswd: vec![("alice".into(), "s3cret".into())],
        ..Default::default()
    });
    let cfg = tempfile::tempdir().unwrap();
    let berth = |args: &[&str]| {
        let mut c = d.berth_command();
        c.env("DOCKER_CONFIG", cfg.path())
            .args(args)
            .stdin(std::process::Stdio::null());
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let name = format!("{}/private/bb:1", reg.host());
    d.berth(&["tag", "busybox", &name]).ok();
    // Without a login the push fails in-stream, as dockerd's does.
    let (code, out, err) = berth(&["push", &name]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("no basic auth credentials") || err.contains("authentication required"),
        "{err}"
    );
    let (code, _, err) = berth(&["login", "-u", "alice", "-p", "wrong", &reg.host()]);
    assert_eq!(code, 1);
    assert!(err.contains("401 Unauthorized"), "{err}");
    let (code, out, err) = berth(&["login", "-u", "alice", "-p", "s3cret", &reg.host()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "Login Succeeded");
    let cfg_json = std::fs::read_to_string(cfg.path().join("config.json")).unwrap();
    assert!(cfg_json.contains("YWxpY2U6czNjcmV0"), "{cfg_json}");
    let (code, out, err) = berth(&["push", &name]);
    assert_eq!(code, 0, "{out}{err}");
    d.berth(&["rmi", &name]).ok();
    let (code, out, err) = berth(&["pull", &name]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = berth(&["logout", &reg.host()]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("Removing login credentials for {}", reg.host())
    );
}

#[test]
fn pulls_that_fail_leave_the_store_as_it_was() {
    let mut d = daemon!();
    let reg = Registry::start();
    let before = store(&d);
    // A tag that does not exist: 404 before any progress.
    let r = d.berth(&["pull", &format!("{}/nothere/x:1", reg.host())]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("manifest unknown") || r.stderr.contains("not found"),
        "{}",
        r.stderr
    );
    // A registry nobody listens on.
    let r = d.berth(&["pull", "127.0.0.1:9/x:1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("connection refused"), "{}", r.stderr);
    // docker.io in tests fails closed.
    let r = d.berth(&["pull", "alpine"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    // A blob whose bytes are corrupted on the way.
    let img = TestImage::busybox();
    img.pushable().push(reg.addr(), "test/corrupt", "1", None);
    let layer = img.layers[0].digest.clone();
    let proxy =
        berth_testkit::proxy::FaultProxy::start(reg.addr(), &layer, berth_testkit::proxy::Fault::Corrupt);
    let via = format!("{}/test/corrupt:1", proxy.addr());
    let r = d.berth(&["pull", &via]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("verification failed") || r.stderr.contains("digest"),
        "{}",
        r.stderr
    );
    assert!(proxy.hits() > 0);
    let proxy =
        berth_testkit::proxy::FaultProxy::start(reg.addr(), &layer, berth_testkit::proxy::Fault::Truncate);
    let r = d.berth(&["pull", &format!("{}/test/corrupt:1", proxy.addr())]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(store(&d), before, "nothing left behind");
    check_clean(&mut d, "after failed pulls");
}

#[test]
fn pulling_the_built_in_hello_world_with_no_registry_keeps_it() {
    let d = daemon!();
    let r = d.berth(&["pull", "hello-world"]).ok();
    assert!(r.stdout.contains("could not be pulled"), "{}", r.stdout);
    assert!(r.stdout.contains("built-in image"), "{}", r.stdout);
    assert!(d
        .berth(&["run", "--rm", "hello-world"])
        .ok()
        .stdout
        .contains("Hello from berth!"));
}

#[test]
fn docker_io_names_resolve_through_hosts_toml_to_a_local_registry() {
    let d = daemon!();
    let reg = Registry::start();
    TestImage::busybox()
        .pushable()
        .push(reg.addr(), "library/alpine", "3", None);
    d.set_hosts_toml("docker.io", &format!("server = \"http://{}\"\n", reg.host()));
    let r = d.berth(&["pull", "alpine:3"]).ok();
    assert!(
        r.stdout.contains("3: Pulling from library/alpine"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.lines().last(), Some("docker.io/library/alpine:3"));
    assert!(d.berth(&["images"]).ok().stdout.contains("alpine"));
}

#[test]
fn a_berthd_killed_mid_pull_pulls_cleanly_after_a_restart() {
    let mut d = daemon!();
    let reg = Registry::start();
    let img = TestImage::build(berth_testkit::image::Spec {
        big_layer: Some(64 << 20),
        ..Default::default()
    });
    img.pushable().push(reg.addr(), "test/big", "1", None);
    let name = format!("{}/test/big:1", reg.host());
    let mut pull = d
        .berth_command()
        .args(["pull", &name])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill berthd once the download is under way.
    {
        use std::io::BufRead;
        let out = std::io::BufReader::new(pull.stdout.take().unwrap());
        for line in out.lines() {
            if line.unwrap().contains("Pulling fs layer") {
                break;
            }
        }
    }
    d.kill9();
    let _ = pull.wait();
    d.spawn();
    assert!(image_id(&d, &name).is_none(), "no half image");
    check_clean(&mut d, "after the killed pull");
    d.berth(&["pull", &name]).ok();
    assert_eq!(
        d.berth(&["run", "--rm", &name, "cat", "/etc/berth-test-platform"])
            .ok()
            .out()
            .lines()
            .next(),
        Some("linux/amd64")
    );
    let _ = Duration::from_secs(0);
}

#[test]
fn concurrent_pulls_of_images_sharing_a_layer_fetch_it_once() {
    let d = daemon!();
    let reg = Registry::start();
    // Two images on the same big busybox base, differing in their top layer.
    for (repo, salt) in [("test/one", "one"), ("test/two", "two")] {
        let img = TestImage::build(berth_testkit::image::Spec {
            salt: salt.into(),
            ..Default::default()
        });
        img.pushable().push(reg.addr(), repo, "1", None);
    }
    let base = TestImage::busybox().layers[0].digest.clone();
    let proxy = berth_testkit::proxy::FaultProxy::passthrough(reg.addr());
    let pulls: Vec<_> = ["test/one", "test/two"]
        .iter()
        .map(|repo| {
            d.berth_command()
                .args(["pull", &format!("{}/{repo}:1", proxy.addr())])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pulls {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let base_gets = proxy
        .log()
        .iter()
        .filter(|l| l.starts_with("GET ") && l.contains(&base))
        .count();
    assert_eq!(
        base_gets,
        1,
        "the shared layer was fetched {base_gets} times: {:?}",
        proxy.log()
    );
    for repo in ["test/one", "test/two"] {
        let name = format!("{}/{repo}:1", proxy.addr());
        assert_eq!(d.berth(&["run", "--rm", &name, "true"]).code, 0);
    }
}

#[test]
fn pull_all_tags_platforms_and_search() {
    let d = daemon!();
    let reg = Registry::start();
    for tag in ["1", "2"] {
        TestImage::build(berth_testkit::image::Spec {
            salt: tag.into(),
            without_busybox: true,
            ..Default::default()
        })
        .pushable()
        .push(reg.addr(), "test/many", tag, None);
    }
    let r = d
        .berth(&["pull", "-a", &format!("{}/test/many", reg.host())])
        .ok();
    assert!(
        r.stdout.contains("1: Pulling from test/many") && r.stdout.contains("2: Pulling from test/many"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.lines().last(),
        Some(format!("{}/test/many", reg.host()).as_str())
    );
    let images = d
        .berth(&[
            "images",
            "--format",
            "{{.Tag}}",
            &format!("{}/test/many", reg.host()),
        ])
        .ok();
    assert_eq!(
        images.stdout.lines().collect::<Vec<_>>().len(),
        2,
        "{}",
        images.stdout
    );
    // An index: the host's platform by default, another one when asked.
    let index = berth_testkit::image::TestIndex::new(
        vec![
            TestImage::small("amd64", None, true),
            TestImage::small("arm64", Some("v8"), true),
            TestImage::small("arm", Some("v7"), true),
        ],
        true,
    );
    index.pushable().push(reg.addr(), "test/multi", "1", None);
    let name = format!("{}/test/multi:1", reg.host());
    d.berth(&["pull", "--platform", "linux/arm/v7", &name]).ok();
    let arch = d
        .berth(&["image", "inspect", "-f", "{{.Architecture}}/{{.Variant}}", &name])
        .ok();
    assert_eq!(arch.out(), "arm/v7");
    d.berth(&["pull", &name]).ok();
    let arch = d
        .berth(&["image", "inspect", "-f", "{{.Architecture}}", &name])
        .ok();
    assert_eq!(arch.out(), "amd64");
    let r = d.berth(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no matching manifest for linux/s390x"),
        "{}",
        r.stderr
    );
    // search through the catalog, with the CLI's columns.
    let s = d.berth(&["search", &format!("{}/test/m", reg.host())]).ok();
    assert!(s.stdout.starts_with("NAME"), "{}", s.stdout);
    assert!(
        s.stdout.contains("test/many") && s.stdout.contains("test/multi"),
        "{}",
        s.stdout
    );
    let docker = d.docker(&["search", &format!("{}/test/many", reg.host())]).ok();
    assert!(docker.stdout.contains("test/many"), "{}", docker.stdout);
}

#[test]
fn import_from_a_url_streams_the_file() {
    let d = daemon!();
    let tar = berth_e2e::busybox_tar().to_vec();
    let server = berth_testkit::proxy::FileServer::start(vec![("/rootfs.tar".into(), tar, None)]);
    let r = d
        .berth(&["import", &format!("{}/rootfs.tar", server.url()), "fromurl:1"])
        .ok();
    assert!(r.out().starts_with("sha256:"), "{}", r.stdout);
    assert_eq!(
        d.berth(&["run", "--rm", "fromurl:1", "echo", "imported"])
            .ok()
            .out(),
        "imported"
    );
    let missing = d.berth(&["import", &format!("{}/nothere.tar", server.url())]);
    assert_eq!(missing.code, 1, "{}", missing.stdout);
}

#[test]
fn a_tls_registry_is_trusted_through_the_ca_in_certs_d() {
    use berth_testkit::netns::Netns;
    use berth_testkit::pki::Ca;
    use berth_testkit::registry::Tls;

    let d = daemon!();
    // Off loopback (in a network namespace of its own): loopback registries are insecure by
    // default, as in Docker, so only a TLS registry elsewhere makes the CA matter.
    let ns = Netns::create();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "berth-e2e-ca");
    let reg = Registry::start_with(Options {
        tls: Some(Tls {
            server: ca.server("registry", &ns.ns_ip.to_string()),
            client_ca: None,
        }),
        netns: Some(&ns),
        ..Default::default()
    });
    let name = format!("{}/tls/bb:1", reg.host());
    let id = image_id(&d, "busybox").unwrap();
    d.berth(&["tag", "busybox", &name]).ok();

    let refused = d.berth(&["push", &name]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("x509: certificate signed by unknown authority"),
        "{}",
        refused.stderr
    );

    let host_dir = d.certs_dir().join(reg.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca.cert, host_dir.join("ca.crt")).unwrap();
    let push = d.berth(&["push", &name]).ok();
    assert!(push.stdout.contains("1: digest: sha256:"), "{}", push.stdout);

    d.berth(&["rmi", &name]).ok();
    let pull = d.berth(&["pull", &name]).ok();
    assert!(
        pull.stdout
            .contains(&format!("Status: Downloaded newer image for {name}"))
            || pull
                .stdout
                .contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        pull.stdout
    );
    assert_eq!(image_id(&d, &name).as_deref(), Some(id.as_str()));

    // The real docker CLI pulls through berthd over the same TLS (a fresh repository).
    d.berth(&["tag", "busybox", &format!("{}/tls/other:2", reg.host())])
        .ok();
    d.berth(&["push", &format!("{}/tls/other:2", reg.host())]).ok();
    d.berth(&["rmi", &format!("{}/tls/other:2", reg.host())]).ok();
    let r = d.docker(&["pull", &format!("{}/tls/other:2", reg.host())]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        image_id(&d, &format!("{}/tls/other:2", reg.host())).as_deref(),
        Some(id.as_str())
    );
}

#[test]
fn registry_mirrors_serve_docker_hub_pulls_and_fall_through_to_the_origin() {
    let mut d = daemon!();
    // The "origin" stands in for Docker Hub through docker.io's hosts.toml (so nothing here can
    // reach the real one); daemon.json's registry-mirrors stay in front of it, as in Docker.
    let origin = Registry::start();
    TestImage::busybox()
        .pushable()
        .push(origin.addr(), "library/mirrored", "1", None);
    let mut mirror = Registry::start_with(Options {
        proxy_remote: Some((origin.url(), None)),
        ..Default::default()
    });
    d.set_hosts_toml("docker.io", &format!("server = \"{}\"\n", origin.url()));
    // (A dockerd option berthd does not apply is named at start, not dropped without a word.)
    d.restart_with_config(&serde_json::json!({ "registry-mirrors": [mirror.url()], "live-restore": true }));
    assert!(
        d.log().contains("berthd does not apply live-restore"),
        "{}",
        d.log()
    );
    let info = d.berth(&["info", "-f", "{{json .RegistryConfig.Mirrors}}"]).ok();
    assert!(info.stdout.contains(&mirror.url()), "{}", info.stdout);

    let r = d.berth(&["pull", "mirrored:1"]).ok();
    assert_eq!(r.stdout.lines().last(), Some("docker.io/library/mirrored:1"));
    assert!(
        mirror.log().contains("/v2/library/mirrored/manifests/1"),
        "the mirror served the pull:\n{}",
        mirror.log()
    );
    let id = image_id(&d, "mirrored:1").unwrap();

    // The mirror goes away: the next pull falls through to the origin.
    mirror.stop();
    d.berth(&["rmi", "mirrored:1"]).ok();
    let before = origin.log().matches("/v2/library/mirrored/manifests/1").count();
    let r = d.berth(&["pull", "mirrored:1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(image_id(&d, "mirrored:1").as_deref(), Some(id.as_str()));
    assert!(
        origin.log().matches("/v2/library/mirrored/manifests/1").count() > before,
        "the origin answered once the mirror was gone"
    );
}

#[test]
fn the_bearer_token_flow_logs_in_pushes_and_pulls_with_scoped_tokens() {
    use berth_testkit::token::TokenServer;

    let d = daemon!();
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path());
    ts.add_user("alice", "pw");
    ts.grant(Some("alice"), "team/bb", &["pull", "push"]);
    let reg = Registry::start_with(Options {
        token: Some(&ts),
        ..Default::default()
    });
    let cfg = tempfile::tempdir().unwrap();
    let berth = |args: &[&str]| {
        let mut c = d.berth_command();
        c.env("DOCKER_CONFIG", cfg.path())
            .args(args)
            .stdin(std::process::Stdio::null());
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let name = format!("{}/team/bb:1", reg.host());
    let id = image_id(&d, "busybox").unwrap();
    d.berth(&["tag", "busybox", &name]).ok();

    let (code, _, err) = berth(&["login", "-u", "alice", "-p", "nope", &reg.host()]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = berth(&["login", "-u", "alice", "-p", "pw", &reg.host()]);
    assert_eq!((code, out.trim()), (0, "Login Succeeded"), "{err}");
    let (code, out, err) = berth(&["push", &name]);
    assert_eq!(code, 0, "{out}{err}");
    let pushes: Vec<_> = ts
        .requests()
        .into_iter()
        .filter(|r| r.scopes.iter().any(|s| s == "repository:team/bb:pull,push"))
        .collect();
    assert!(
        !pushes.is_empty() && pushes.iter().all(|r| r.user.as_deref() == Some("alice")),
        "push tokens were asked for alice with push scope: {:?}",
        ts.requests()
    );

    d.berth(&["rmi", &name]).ok();
    // Anonymous: docker's denial, nothing stored.
    let anon = d.berth(&["pull", &name]);
    assert_eq!(anon.code, 1);
    assert!(
        anon.stderr.contains(&format!(
            "pull access denied for {}/team/bb, repository does not exist or may require 'docker login'",
            reg.host()
        )),
        "{}",
        anon.stderr
    );
    assert_eq!(image_id(&d, &name), None);
    let (code, out, err) = berth(&["pull", &name]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(image_id(&d, &name).as_deref(), Some(id.as_str()));
}
