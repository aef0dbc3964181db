//! `--cache-from`: a built image moved to another data root (save | load) answers the cache
//! there through its history, as the classic builder's ImageCache.

use crate::build::{context, docker_build};

const DF: &str = "FROM busybox\nENV A=1\nWORKDIR /app\nRUN echo built > /app/out\nCOPY f /app/f\nCMD [\"cat\", \"/app/out\"]\n";

fn using_cache(out: &str) -> usize {
    out.matches(" ---> Using cache").count()
}

#[test]
fn cache_from_a_loaded_image_reuses_every_step_in_a_fresh_data_root() {
    let d1 = daemon!();
    let d2 = berth_e2e::Daemon::start();
    let c1 = context(&d1, "cf", &[("Dockerfile", DF), ("f", "same\n")]);
    let c2 = context(&d2, "cf", &[("Dockerfile", DF), ("f", "same\n")]);
    d1.berth(&["build", "-t", "app:1", c1.to_str().unwrap()]).ok();
    let id = d1
        .berth(&["image", "inspect", "-f", "{{.Id}}", "app:1"])
        .ok()
        .out()
        .to_string();
    let saved = d1.root.join("app-saved.tar");
    d1.berth(&["save", "-o", saved.to_str().unwrap(), "busybox", "app:1"])
        .ok();
    d2.berth(&["load", "-i", saved.to_str().unwrap()]).ok();

    // Without --cache-from: d2 has no build cache, every step runs.
    let r = d2.berth(&["build", "-t", "plain:1", c2.to_str().unwrap()]).ok();
    assert_eq!(using_cache(&r.stdout), 0, "{r:?}");
    assert!(r.stdout.contains(" ---> Running in "), "{r:?}");
    let plain = d2
        .berth(&["image", "inspect", "-f", "{{.Id}}", "plain:1"])
        .ok()
        .out()
        .to_string();
    assert_ne!(plain, id);

    // With it: every step after FROM is a cache hit, and the result is the loaded image. The
    // local images of the plain build are not ancestors of the source, so they do not count.
    let r = d2
        .berth(&[
            "build",
            "--cache-from",
            "app:1",
            "-t",
            "app:2",
            c2.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(using_cache(&r.stdout), 5, "{r:?}");
    assert!(!r.stdout.contains("Running in"), "{r:?}");
    let got = d2
        .berth(&["image", "inspect", "-f", "{{.Id}}", "app:2"])
        .ok()
        .out()
        .to_string();
    assert_eq!(got, id);
    let out = d2.berth(&["run", "--rm", "app:2"]).ok();
    assert_eq!(out.out(), "built");

    // The real docker CLI (classic builder) sends `cachefrom` the same way.
    let r = docker_build(&d2, &["--cache-from", "app:1", "-t", "app:3"], &c2);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(using_cache(&r.stdout), 5, "{r:?}");
    let got = d2
        .berth(&["image", "inspect", "-f", "{{.Id}}", "app:3"])
        .ok()
        .out()
        .to_string();
    assert_eq!(got, id);

    // docker-py's cache_from.
    let script = format!(
        r#"
import docker
c = docker.from_env()
img, logs = c.images.build(path={dir:?}, tag="app:4", cache_from=["app:1"])
print(sum(1 for l in logs if " ---> Using cache" in l.get("stream", "")))
print(img.id)
"#,
        dir = c2.to_str().unwrap()
    );
    let r = d2.python(&script);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, ["5", id.as_str()], "{r:?}");
}

#[test]
fn cache_from_restores_the_matching_prefix_then_builds_the_changed_steps() {
    let d1 = daemon!();
    let d2 = berth_e2e::Daemon::start();
    let c1 = context(&d1, "cfp", &[("Dockerfile", DF), ("f", "one\n")]);
    // Same Dockerfile, different COPY content: ENV, WORKDIR and RUN hit, COPY and CMD build.
    let c2 = context(&d2, "cfp", &[("Dockerfile", DF), ("f", "two\n")]);
    d1.berth(&["build", "-t", "app:1", c1.to_str().unwrap()]).ok();
    let saved = d1.root.join("app-saved.tar");
    d1.berth(&["save", "-o", saved.to_str().unwrap(), "busybox", "app:1"])
        .ok();
    d2.berth(&["load", "-i", saved.to_str().unwrap()]).ok();
    let r = d2
        .berth(&[
            "build",
            "--cache-from",
            "app:1",
            "-t",
            "app:2",
            c2.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(using_cache(&r.stdout), 3, "{r:?}");
    let out = d2
        .berth(&["run", "--rm", "app:2", "cat", "/app/out", "/app/f"])
        .ok();
    assert_eq!(out.out(), "built\ntwo");
    // The restored steps carry the source's history entries and layer.
    let h1 = d1
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Size}}",
            "app:1",
        ])
        .ok();
    let h2 = d2
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Size}}",
            "app:2",
        ])
        .ok();
    let below = |s: &str| s.lines().skip(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(below(h1.out()), below(h2.out()), "{h1:?} {h2:?}");
    // A source that is not found is skipped, as dockerd; with --cache-from the local images
    // (app:2's steps) count only as ancestors of a source, so nothing is cached.
    let r = d2
        .berth(&["build", "--cache-from", "nosuch:1", c2.to_str().unwrap()])
        .ok();
    assert_eq!(using_cache(&r.stdout), 0, "{r:?}");
}
