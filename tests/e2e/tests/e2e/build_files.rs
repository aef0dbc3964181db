//! Builds: what COPY, ADD, WORKDIR and heredocs put in the image, ONBUILD, scratch, ARG scope,
//! the cache's content key, and intermediate containers.

use super::build::{context, docker_build, inspect};

fn build(d: &berth_e2e::Daemon, tag: &str, dir: &std::path::Path) {
    let r = d.berth(&["build", "-q", "-t", tag, dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
}

fn sh(d: &berth_e2e::Daemon, image: &str, script: &str) -> String {
    d.berth(&["run", "--rm", image, "sh", "-c", script]).ok().stdout
}

#[test]
fn copy_globs_directories_trailing_slashes_chown_and_chmod() {
    let d = daemon!();
    let df = "FROM busybox\n\
COPY *.txt /globbed/\n\
COPY dir /contents\n\
COPY dir/ /contents2/\n\
COPY one.txt /renamed\n\
COPY one.txt /etc\n\
COPY --chown=1234:5678 --chmod=0640 one.txt /owned/\n\
COPY --chown=nobody one.txt /named/\n\
WORKDIR /rel\n\
COPY one.txt here/\n";
    let dir = context(
        &d,
        "cp",
        &[
            ("Dockerfile", df),
            ("one.txt", "1\n"),
            ("two.txt", "2\n"),
            ("other.md", "m\n"),
            ("dir/a", "a\n"),
            ("dir/sub/b", "b\n"),
        ],
    );
    build(&d, "cp:1", &dir);
    let out = sh(
        &d,
        "cp:1",
        "ls /globbed; ls /contents; ls /contents2; cat /contents/sub/b /renamed /etc/one.txt; \
        stat -c '%u:%g %a' /owned/one.txt; stat -c '%U' /named/one.txt; cat /rel/here/one.txt",
    );
    assert_eq!(
        out,
        "one.txt\ntwo.txt\na\nsub\na\nsub\nb\n1\n1\n1234:5678 640\nnobody\n1\n"
    );
}

#[test]
fn add_unpacks_local_archives_and_downloads_urls() {
    let d = daemon!();
    let src = d.root.join("arch");
    std::fs::create_dir_all(src.join("pkg")).unwrap();
    std::fs::write(src.join("pkg/file"), "packed\n").unwrap();
    let dir = context(&d, "add", &[]);
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-czf")
        .arg(dir.join("pkg.tgz"))
        .arg("pkg")
        .status()
        .unwrap();
    assert!(st.success());
    let server = berth_testkit::proxy::FileServer::start(vec![(
        "/remote.txt".into(),
        b"from the web\n".to_vec(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
    )]);
    let df = format!(
        "FROM busybox\nADD pkg.tgz /opt/\nADD {}/remote.txt /dl/\nCOPY pkg.tgz /copied/\n",
        server.url()
    );
    std::fs::write(dir.join("Dockerfile"), df).unwrap();
    build(&d, "add:1", &dir);
    let out = sh(
        &d,
        "add:1",
        "cat /opt/pkg/file /dl/remote.txt; stat -c '%Y %a' /dl/remote.txt; ls /copied",
    );
    assert_eq!(out, "packed\nfrom the web\n1445412480 600\npkg.tgz\n");
    // An unreachable URL fails the build.
    let bad = context(
        &d,
        "addbad",
        &[("Dockerfile", "FROM busybox\nADD http://127.0.0.1:9/nothing /x\n")],
    );
    let r = d.berth(&["build", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn heredocs_in_run_and_copy() {
    let d = daemon!();
    let df = "FROM busybox\nENV WHO=world\nRUN <<EOF\necho one > /h1\necho two >> /h1\nEOF\nRUN cat <<'END' > /h2\nliteral $WHO\nEND\nCOPY <<EOF /h3\nhello $WHO\nEOF\n";
    let dir = context(&d, "here", &[("Dockerfile", df)]);
    build(&d, "here:1", &dir);
    assert_eq!(
        sh(&d, "here:1", "cat /h1 /h2 /h3"),
        "one\ntwo\nliteral $WHO\nhello world\n"
    );
}

#[test]
fn onbuild_triggers_run_when_the_image_is_a_base() {
    let d = daemon!();
    let base = context(
        &d,
        "ob1",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo triggered | tee /t\nONBUILD ENV CHILD=1\n",
        )],
    );
    build(&d, "obbase:1", &base);
    assert_eq!(
        inspect(&d, "obbase:1", "{{json .Config.OnBuild}}"),
        r#"["RUN echo triggered | tee /t","ENV CHILD=1"]"#
    );
    let child = context(
        &d,
        "ob2",
        &[("Dockerfile", "FROM obbase:1\nCMD [\"cat\", \"/t\"]\n")],
    );
    let r = d
        .berth(&["build", "-t", "obchild:1", child.to_str().unwrap()])
        .ok();
    assert!(r.stdout.contains("# Executing 2 build triggers"), "{}", r.stdout);
    assert_eq!(d.berth(&["run", "--rm", "obchild:1"]).ok().stdout, "triggered\n");
    assert_eq!(inspect(&d, "obchild:1", "{{json .Config.OnBuild}}"), "null");
    assert!(inspect(&d, "obchild:1", "{{json .Config.Env}}").contains("CHILD=1"));
}

#[test]
fn scratch_images_get_their_files_and_config() {
    let d = daemon!();
    let dir = context(
        &d,
        "scr",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY hello.txt /data/\nLABEL kind=scratch\n",
            ),
            ("hello.txt", "hi\n"),
        ],
    );
    build(&d, "scr:1", &dir);
    assert_eq!(inspect(&d, "scr:1", "{{len .RootFS.Layers}}"), "1");
    assert_eq!(
        inspect(&d, "scr:1", "{{index .Config.Labels \"kind\"}}"),
        "scratch"
    );
    // Used as a stage source, its file reaches a runnable image.
    let user = context(
        &d,
        "scr2",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY --from=scr:1 /data/hello.txt /got\nCMD [\"cat\", \"/got\"]\n",
        )],
    );
    build(&d, "scr:2", &user);
    assert_eq!(d.berth(&["run", "--rm", "scr:2"]).ok().stdout, "hi\n");
}

#[test]
fn args_are_scoped_per_stage_and_meta_args_feed_from() {
    let d = daemon!();
    let df = "ARG TAG=latest\nARG V=meta\nFROM busybox:${TAG}\nARG V\nARG ONLY_HERE=x\nRUN echo \"$V-$ONLY_HERE\" > /a\nFROM busybox\nCOPY --from=0 /a /a\nRUN echo \"[$V][$ONLY_HERE]\" > /b\nCMD [\"cat\", \"/a\", \"/b\"]\n";
    let dir = context(&d, "args", &[("Dockerfile", df)]);
    let r = d
        .berth(&[
            "build",
            "-t",
            "args:1",
            "--build-arg",
            "UNUSED=1",
            dir.to_str().unwrap(),
        ])
        .ok();
    assert!(
        r.stdout
            .contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{}",
        r.stdout
    );
    assert_eq!(d.berth(&["run", "--rm", "args:1"]).ok().stdout, "meta-x\n[][]\n");
    // Build args do not persist in the image's environment, but the history records them.
    assert!(!inspect(&d, "args:1", "{{json .Config.Env}}").contains("ONLY_HERE"));
}

#[test]
fn entrypoint_resets_an_inherited_cmd_but_keeps_one_set_in_the_stage() {
    let d = daemon!();
    let a = context(
        &d,
        "ep1",
        &[("Dockerfile", "FROM busybox\nENTRYPOINT [\"echo\"]\n")],
    );
    build(&d, "ep:1", &a);
    assert_eq!(inspect(&d, "ep:1", "{{json .Config.Cmd}}"), "null");
    let b = context(
        &d,
        "ep2",
        &[(
            "Dockerfile",
            "FROM busybox\nCMD [\"kept\"]\nENTRYPOINT echo shell form\n",
        )],
    );
    build(&d, "ep:2", &b);
    assert_eq!(inspect(&d, "ep:2", "{{json .Config.Cmd}}"), r#"["kept"]"#);
    assert_eq!(
        inspect(&d, "ep:2", "{{json .Config.Entrypoint}}"),
        r#"["/bin/sh","-c","echo shell form"]"#
    );
    assert_eq!(d.berth(&["run", "--rm", "ep:2"]).ok().stdout, "shell form\n");
}

#[test]
fn healthcheck_and_shell_are_in_the_config() {
    let d = daemon!();
    let dir = context(&d, "hc", &[("Dockerfile", "FROM busybox\nHEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD true\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0 > /shell\n")]);
    build(&d, "hc:1", &dir);
    let hc: serde_json::Value =
        serde_json::from_str(&inspect(&d, "hc:1", "{{json .Config.Healthcheck}}")).unwrap();
    assert_eq!(
        hc,
        serde_json::json!({"Test":["CMD-SHELL","true"],"Interval":5000000000i64,"Timeout":2000000000i64,"Retries":3})
    );
    assert_eq!(
        inspect(&d, "hc:1", "{{json .Config.Shell}}"),
        r#"["/bin/sh","-ec"]"#
    );
    let none = context(&d, "hc2", &[("Dockerfile", "FROM hc:1\nHEALTHCHECK NONE\n")]);
    build(&d, "hc:2", &none);
    assert_eq!(
        inspect(&d, "hc:2", "{{json .Config.Healthcheck.Test}}"),
        r#"["NONE"]"#
    );
}

#[test]
fn the_cache_follows_content_not_mtime_and_no_cache_skips_it() {
    let d = daemon!();
    let dir = context(
        &d,
        "cache",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n"),
            ("f", "v1\n"),
        ],
    );
    let first = d.berth(&["build", "-t", "cache:1", dir.to_str().unwrap()]).ok();
    assert!(!first.stdout.contains("Using cache"), "{}", first.stdout);
    // Touching the file keeps the cache; changing it does not.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(100);
    std::fs::File::options()
        .write(true)
        .open(dir.join("f"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    let touched = d.berth(&["build", "-t", "cache:1", dir.to_str().unwrap()]).ok();
    assert_eq!(
        touched.stdout.matches("Using cache").count(),
        2,
        "{}",
        touched.stdout
    );
    std::fs::write(dir.join("f"), "v2\n").unwrap();
    let changed = d.berth(&["build", "-t", "cache:2", dir.to_str().unwrap()]).ok();
    assert_eq!(
        changed.stdout.matches("Using cache").count(),
        0,
        "{}",
        changed.stdout
    );
    assert_eq!(sh(&d, "cache:2", "cat /g"), "v2\n");
    let nocache = d
        .berth(&["build", "--no-cache", "-t", "cache:3", dir.to_str().unwrap()])
        .ok();
    assert_eq!(
        nocache.stdout.matches("Using cache").count(),
        0,
        "{}",
        nocache.stdout
    );
}

#[test]
fn intermediate_containers_go_after_success_and_stay_after_failure_unless_force_rm() {
    let d = daemon!();
    let ok = context(&d, "rm1", &[("Dockerfile", "FROM busybox\nRUN true\n")]);
    build(&d, "rm:1", &ok);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "");
    let bad = context(&d, "rm2", &[("Dockerfile", "FROM busybox\nRUN false\n")]);
    let r = d.berth(&["build", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("The command '/bin/sh -c false' returned a non-zero code: 1"),
        "{r:?}"
    );
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().stdout.lines().count(),
        1,
        "failed step's container kept"
    );
    for id in d.berth(&["ps", "-aq"]).ok().stdout.split_whitespace() {
        d.berth(&["rm", id]).ok();
    }
    let r = d.berth(&["build", "--force-rm", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "", "--force-rm removes it");
    // docker's CLI as well.
    let dk = docker_build(&d, &["--force-rm"], &bad);
    assert_eq!(dk.code, 1, "{dk:?}");
    assert!(
        dk.stderr
            .contains("The command '/bin/sh -c false' returned a non-zero code: 1"),
        "{dk:?}"
    );
}

#[test]
fn a_context_tar_climbing_out_is_refused() {
    let d = daemon!();
    let mut tar = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar);
        for (name, body) in [("Dockerfile", &b"FROM busybox\n"[..]), ("../escape", &b"x"[..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.finish().unwrap();
    }
    let r = d.berth_stdin(&["build", "-t", "esc:1", "-"], &tar);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("invalid build context"), "{r:?}");
    assert!(!d.root.join("escape").exists());
}

#[test]
fn source_date_epoch_makes_two_builds_in_two_data_roots_identical() {
    let d1 = daemon!();
    let d2 = berth_e2e::Daemon::start();
    // The same base image in both (each test daemon imports its own busybox).
    let saved = d1.root.join("busybox-saved.tar");
    d1.berth(&["save", "-o", saved.to_str().unwrap(), "busybox"]).ok();
    d2.berth(&["load", "-i", saved.to_str().unwrap()]).ok();
    let df = "FROM busybox\nCOPY f /f\nRUN touch -d @$((1800000000 + RANDOM)) /random-time && mkdir -p /made && echo x > /made/y\nCMD [\"cat\", \"/f\"]\n";
    let c1 = context(&d1, "repro", &[("Dockerfile", df), ("f", "same\n")]);
    let c2 = context(&d2, "repro", &[("Dockerfile", df), ("f", "same\n")]);
    // The sources' own times differ too.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(c2.join("f"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let id = |d: &berth_e2e::Daemon, c: &std::path::Path| {
        d.berth(&[
            "build",
            "-q",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            c.to_str().unwrap(),
        ])
        .ok()
        .out()
        .to_string()
    };
    let a = id(&d1, &c1);
    let b = id(&d2, &c2);
    assert!(a.starts_with("sha256:"), "{a}");
    assert_eq!(
        a,
        b,
        "same context, same epoch, different data roots and times:\n{}\n{}",
        d1.berth(&["image", "inspect", &a]).stdout,
        d2.berth(&["image", "inspect", &b]).stdout
    );
    assert_eq!(inspect(&d1, &a, "{{.Created}}"), "2023-11-14T22:13:20Z");
    let t = d1
        .berth(&["run", "--rm", &a, "stat", "-c", "%Y", "/random-time"])
        .ok();
    assert_eq!(t.out(), "1700000000");
}

#[test]
fn a_built_images_healthcheck_runs_in_its_containers() {
    let d = daemon!();
    let dir = context(
        &d,
        "hcrun",
        &[(
            "Dockerfile",
            "FROM busybox\nHEALTHCHECK --interval=1s --timeout=5s CMD true\nCMD [\"sleep\", \"60\"]\n",
        )],
    );
    build(&d, "hcrun:1", &dir);
    d.berth(&["run", "-d", "--name", "hc", "hcrun:1"]).ok();
    d.eventually("the container reports healthy", || {
        d.berth(&["inspect", "-f", "{{.State.Health.Status}}", "hc"])
            .out()
            == "healthy"
    });
    d.berth(&["rm", "-f", "hc"]).ok();
}

#[test]
fn the_127_layer_limit_fails_the_build_before_any_damage() {
    let d = daemon!();
    let mut df = String::from("FROM scratch\n");
    for i in 0..128 {
        df.push_str(&format!("COPY f /f{i}\n"));
    }
    let dir = context(&d, "deep", &[("Dockerfile", &df), ("f", "f\n")]);
    let r = d.berth(&["build", "-t", "deep:1", dir.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("max depth exceeded"), "{r:?}");
    assert!(r.stdout.contains("Step 129/129 : COPY f /f127"), "{}", r.stdout);
    assert_ne!(d.berth(&["image", "inspect", "deep:1"]).code, 0);
    // The steps before it are images (the cache); only the tag was not given.
    let top = d.berth(&["images", "-a", "-q", "--no-trunc"]).ok();
    assert!(top.stdout.lines().count() >= 128, "{}", top.stdout);
}

#[test]
fn copy_from_an_image_several_tags_platform_errors_and_prune_of_a_failed_builds_leftovers() {
    let d = daemon!();
    let dir = context(&d, "fromimg", &[("Dockerfile", "FROM scratch\nCOPY --from=busybox /bin/busybox /bin/busybox\nCMD [\"/bin/busybox\", \"echo\", \"static\"]\n")]);
    let r = docker_build(&d, &["-t", "multi:a", "-t", "multi:b"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("Successfully tagged multi:a\nSuccessfully tagged multi:b\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        inspect(&d, "multi:a", "{{.Id}}"),
        inspect(&d, "multi:b", "{{.Id}}")
    );
    assert_eq!(d.berth(&["run", "--rm", "multi:b"]).ok().stdout, "static\n");
    // A platform this machine cannot run is a clear error, on FROM or for the whole build.
    let arm = context(
        &d,
        "arm",
        &[("Dockerfile", "FROM --platform=linux/s390x busybox\n")],
    );
    let r = d.berth(&["build", arm.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("does not match this machine"),
        "{r:?}"
    );
    let r = d.berth(&["build", "--platform", "linux/s390x", dir.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("does not match this machine"),
        "{r:?}"
    );
    // A failed build leaves its finished steps as dangling intermediates that image prune removes.
    let before = d.berth(&["images", "-a", "-q"]).ok().stdout.lines().count();
    let bad = context(
        &d,
        "leftover",
        &[("Dockerfile", "FROM busybox\nENV A=1\nLABEL b=2\nRUN false\n")],
    );
    assert_eq!(d.berth(&["build", bad.to_str().unwrap()]).code, 1);
    assert_eq!(
        d.berth(&["images", "-a", "-q"]).ok().stdout.lines().count(),
        before + 2
    );
    for id in d.berth(&["ps", "-aq"]).ok().stdout.split_whitespace() {
        d.berth(&["rm", id]).ok();
    }
    d.berth(&["image", "prune", "-f"]).ok();
    assert_eq!(
        d.berth(&["images", "-a", "-q"]).ok().stdout.lines().count(),
        before
    );
}

#[test]
fn steps_after_volume_leave_no_anonymous_volumes_behind() {
    let d = daemon!();
    let dir = context(&d, "volsteps", &[("Dockerfile", "FROM busybox\nVOLUME /data\nRUN echo in-volume > /data/x; echo in-layer > /kept\nCMD [\"cat\", \"/kept\"]\n")]);
    build(&d, "volsteps:1", &dir);
    assert_eq!(d.berth(&["run", "--rm", "volsteps:1"]).ok().stdout, "in-layer\n");
    // As docker: what RUN writes under a VOLUME path is not in the image.
    assert_eq!(sh(&d, "volsteps:1", "ls /data"), "");
    assert_eq!(
        d.berth(&["volume", "ls", "-q"]).ok().out(),
        "",
        "the build's containers took their volumes with them"
    );
}
