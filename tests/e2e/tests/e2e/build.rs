//! Dockerfile builds through `berth build`, the real docker CLI (classic builder,
//! DOCKER_BUILDKIT=0) and docker-py.

use std::path::{Path, PathBuf};

use berth_e2e::{Daemon, Run};

/// A context directory with these files.
pub(crate) fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.root.join(name);
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn docker_build(d: &Daemon, args: &[&str], dir: &Path) -> Run {
    let o = d
        .docker_command()
        .env("DOCKER_BUILDKIT", "0")
        .arg("build")
        .args(args)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub(crate) fn inspect(d: &Daemon, image: &str, format: &str) -> String {
    d.berth(&["image", "inspect", "-f", format, image])
        .ok()
        .out()
        .to_string()
}

const THIN: &str =
    "FROM busybox\nRUN echo hi > /f\nCOPY greeting.txt /g.txt\nCMD [\"cat\",\"/f\",\"/g.txt\"]\n";

#[test]
fn docker_build_runs_from_run_copy_cmd_with_the_classic_output() {
    let d = daemon!();
    let dir = context(&d, "ctx", &[("Dockerfile", THIN), ("greeting.txt", "hello\n")]);
    let r = docker_build(&d, &["-t", "thin:1"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    let out = &r.stdout;
    assert!(out.contains("Step 1/4 : FROM busybox\n ---> "), "{out}");
    assert!(
        out.contains("Step 2/4 : RUN echo hi > /f\n ---> Running in "),
        "{out}"
    );
    assert!(out.contains("Removing intermediate container "), "{out}");
    assert!(out.contains("Step 3/4 : COPY greeting.txt /g.txt\n"), "{out}");
    assert!(
        out.contains("Step 4/4 : CMD [\"cat\",\"/f\",\"/g.txt\"]\n"),
        "{out}"
    );
    let id = inspect(&d, "thin:1", "{{.Id}}");
    assert!(
        out.contains(&format!("Successfully built {}\n", &id[7..19])),
        "{out}"
    );
    assert!(out.contains("Successfully tagged thin:1\n"), "{out}");
    let run = d.berth(&["run", "--rm", "thin:1"]).ok();
    assert_eq!(run.stdout, "hi\nhello\n");
    // Cached the second time: every step after FROM says so, and the image is the same.
    let again = docker_build(&d, &["-t", "thin:1"], &dir);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.stdout.matches(" ---> Using cache\n").count(),
        3,
        "{}",
        again.stdout
    );
    assert!(again
        .stdout
        .contains(&format!("Successfully built {}\n", &id[7..19])));
    // Intermediate images are listed by images -a, and the history names each instruction.
    let all = d.berth(&["images", "-a", "-q"]).ok();
    assert!(all.stdout.lines().count() >= 4, "{}", all.stdout);
    let hist = d.berth(&["history", "--no-trunc", "thin:1"]).ok();
    assert!(hist.stdout.contains("/bin/sh -c echo hi > /f"), "{}", hist.stdout);
    assert!(
        hist.stdout.contains("CMD [\"cat\" \"/f\" \"/g.txt\"]"),
        "{}",
        hist.stdout
    );
}

#[test]
fn berth_build_sets_every_metadata_instruction_in_the_config() {
    let d = daemon!();
    let df = "ARG BASE=busybox\nFROM $BASE\nARG GREETING=hello\nENV APP_HOME=/opt/app MSG=\"${GREETING} world\"\nLABEL com.example.v=\"1\" who=$GREETING\nWORKDIR $APP_HOME\nWORKDIR sub\nUSER 1000:1000\nEXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\nSHELL [\"/bin/sh\", \"-c\"]\nONBUILD RUN echo triggered\nMAINTAINER someone\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo $MSG; pwd; id -u\"]\n";
    let dir = context(&d, "meta", &[("Dockerfile", df)]);
    let r = d.berth(&[
        "build",
        "-t=meta:1",
        "--build-arg",
        "GREETING=hi",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("Step 1/17 : ARG BASE=busybox\n"),
        "{}",
        r.stdout
    );
    let j = |f: &str| inspect(&d, "meta:1", f);
    assert_eq!(
        j("{{json .Config.Env}}"),
        r#"["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","APP_HOME=/opt/app","MSG=hi world"]"#
    );
    assert_eq!(
        j("{{json .Config.Labels}}"),
        r#"{"com.example.v":"1","who":"hi"}"#
    );
    assert_eq!(j("{{.Config.WorkingDir}}"), "/opt/app/sub");
    assert_eq!(j("{{.Config.User}}"), "1000:1000");
    assert_eq!(j("{{json .Config.ExposedPorts}}"), r#"{"53/udp":{},"80/tcp":{}}"#);
    assert_eq!(j("{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
    assert_eq!(j("{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(j("{{json .Config.Entrypoint}}"), r#"["/bin/sh","-c"]"#);
    assert_eq!(j("{{json .Config.Cmd}}"), r#"["echo $MSG; pwd; id -u"]"#);
    // Run it: the environment, the working directory (created by WORKDIR) and the user apply.
    let run = d.berth(&["run", "--rm", "meta:1"]).ok();
    assert_eq!(run.stdout, "hi world\n/opt/app/sub\n1000\n");
}

#[test]
fn a_failing_run_fails_the_build_with_dockers_message_and_code() {
    let d = daemon!();
    let dir = context(
        &d,
        "fail",
        &[("Dockerfile", "FROM busybox\nRUN echo bad >&2; exit 7\n")],
    );
    let r = d.berth(&["build", "-t", "fail:1", dir.to_str().unwrap()]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.stderr
            .contains("The command '/bin/sh -c echo bad >&2; exit 7' returned a non-zero code: 7"),
        "{r:?}"
    );
    assert!(r.stdout.contains("\u{1b}[91mbad\n\u{1b}[0m"), "{r:?}");
    assert_ne!(
        d.berth(&["image", "inspect", "fail:1"]).code,
        0,
        "no tagged half image"
    );
    let dk = docker_build(&d, &["-t", "fail:2"], &dir);
    assert_eq!(dk.code, 7, "{dk:?}");
    assert!(dk.stderr.contains("returned a non-zero code: 7"), "{dk:?}");
}

#[test]
fn multi_stage_copy_from_a_named_stage() {
    let d = daemon!();
    // The first stage fails, but nothing needs it: it is skipped.
    let df = "FROM busybox AS broken\nRUN false\nFROM busybox AS builder\nRUN mkdir -p /out && echo built > /out/artifact && echo a > /out/x.txt && echo b > /out/y.txt\nFROM busybox\nCOPY --from=builder /out/artifact /app/\nCOPY --from=builder /out/*.txt /txt/\nCMD [\"cat\", \"/app/artifact\"]\n";
    let dir = context(&d, "ms", &[("Dockerfile", df)]);
    d.berth(&["build", "-q", "-t", "ms:1", dir.to_str().unwrap()])
        .ok();
    assert_eq!(d.berth(&["run", "--rm", "ms:1"]).ok().stdout, "built\n");
    // A wildcard in --from's last component.
    let txt = d
        .berth(&["run", "--rm", "ms:1", "sh", "-c", "ls /txt; cat /txt/*"])
        .ok();
    assert_eq!(txt.stdout, "x.txt\ny.txt\na\nb\n");
    // --target stops at the named stage.
    d.berth(&[
        "build",
        "-q",
        "--target",
        "builder",
        "-t",
        "ms:builder",
        dir.to_str().unwrap(),
    ])
    .ok();
    let out = d
        .berth(&["run", "--rm", "ms:builder", "cat", "/out/artifact"])
        .ok();
    assert_eq!(out.stdout, "built\n");
}

#[test]
fn dockerignore_and_a_dockerfile_outside_the_context() {
    let d = daemon!();
    let dir = context(
        &d,
        "ign",
        &[
            (".dockerignore", "*.log\nsecret\n!keep.log\n"),
            ("a.txt", "a\n"),
            ("x.log", "x\n"),
            ("keep.log", "k\n"),
            ("secret/key", "s\n"),
        ],
    );
    let df = d.root.join("elsewhere.Dockerfile");
    std::fs::write(&df, "FROM busybox\nCOPY . /ctx/\nCMD [\"ls\", \"/ctx\"]\n").unwrap();
    let r = d.berth(&[
        "build",
        "-t",
        "ign:1",
        "-f",
        df.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let ls = d.berth(&["run", "--rm", "ign:1"]).ok();
    let names: Vec<&str> = ls
        .stdout
        .lines()
        .filter(|n| !n.starts_with(".dockerfile."))
        .collect();
    assert_eq!(names, ["a.txt", "keep.log"]);
    // The same through the real docker CLI.
    let dk = docker_build(&d, &["-t", "ign:2", "-f", df.to_str().unwrap()], &dir);
    assert_eq!(dk.code, 0, "{dk:?}");
    let ls2 = d.berth(&["run", "--rm", "ign:2", "ls", "/ctx"]).ok();
    assert!(
        !ls2.stdout.contains("x.log") && !ls2.stdout.contains("secret") && ls2.stdout.contains("keep.log"),
        "{}",
        ls2.stdout
    );
}

#[test]
fn dockerfile_and_tar_on_stdin() {
    let d = daemon!();
    let r = d.berth_stdin(
        &["build", "-t", "stdin:1", "-"],
        b"FROM busybox\nCMD [\"echo\", \"from stdin\"]\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(d.berth(&["run", "--rm", "stdin:1"]).ok().stdout, "from stdin\n");
    let dir = context(
        &d,
        "tarctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n"),
            ("f", "in a tar\n"),
        ],
    );
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let r = d.berth_stdin(&["build", "-t", "stdin:2", "-"], &tar);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(d.berth(&["run", "--rm", "stdin:2"]).ok().stdout, "in a tar\n");
}

#[test]
fn copy_outside_the_context_and_unknown_instructions_are_refused() {
    let d = daemon!();
    let dir = context(
        &d,
        "bad",
        &[("Dockerfile", "FROM busybox\nCOPY ../etc/passwd /x\n")],
    );
    let r = d.berth(&["build", dir.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("Forbidden path outside the build context: ../etc/passwd"),
        "{r:?}"
    );
    let dir = context(&d, "bad2", &[("Dockerfile", "FROM busybox\n\nFROBNICATE x\n")]);
    let r = d.berth(&["build", dir.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("dockerfile parse error line 3: unknown instruction: FROBNICATE"),
        "{r:?}"
    );
    let dir = context(
        &d,
        "bad3",
        &[("Dockerfile", "FROM busybox\nCOPY missing.txt /x\n")],
    );
    let r = d.berth(&["build", dir.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("file not found in build context"),
        "{r:?}"
    );
    // An instruction before any FROM: dockerd's words, with no parse-error prefix.
    let dir = context(&d, "bad4", &[("Dockerfile", "RUN true\n")]);
    let r = docker_build(&d, &[], &dir);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("Error response from daemon: no build stage in current context"),
        "{r:?}"
    );
}

#[test]
fn docker_py_builds_and_streams() {
    let d = daemon!();
    let dir = context(
        &d,
        "py",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo py > /p\nCMD [\"cat\", \"/p\"]\n",
        )],
    );
    let script = format!(
        r#"
import docker, json
c = docker.from_env()
img, logs = c.images.build(path={dir:?}, tag="pyb:1")
lines = [l.get("stream", "") for l in logs]
assert any(l.startswith("Successfully built") for l in lines), lines
print(img.id)
print(c.containers.run("pyb:1", remove=True).decode(), end="")
api = c.api
out = [json.loads(x) for x in api.build(path={dir:?}, tag="pyb:2", rm=True)]
print("cache" if any(" ---> Using cache" in m.get("stream", "") for m in out) else "nocache")
"#,
        dir = dir.to_str().unwrap()
    );
    let r = d.python(&script);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("sha256:"), "{r:?}");
    assert_eq!(lines[1], "py");
    assert_eq!(lines[2], "cache");
}

#[test]
fn from_pulls_a_missing_image_with_the_clients_registry_credentials() {
    let d = daemon!();
    let reg = berth_testkit::registry::Registry::start_with(berth_testkit::registry::Options {
        htpasswd: vec![("alice".into(), "s3cret".into())],
        ..Default::default()
    });
    let cfg = tempfile::tempdir().unwrap();
    let with_cfg = |mut c: std::process::Command, args: &[&str]| {
        let o = c
            .env("DOCKER_CONFIG", cfg.path())
            .env("DOCKER_BUILDKIT", "0")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    let name = format!("{}/private/base:1", reg.host());
    with_cfg(
        d.berth_command(),
        &["login", "-u", "alice", "-p", "s3cret", &reg.host()],
    )
    .ok();
    d.berth(&["tag", "busybox", &name]).ok();
    with_cfg(d.berth_command(), &["push", &name]).ok();
    d.berth(&["rmi", &name]).ok();
    let dir = context(
        &d,
        "pullfrom",
        &[(
            "Dockerfile",
            &format!("FROM {name}\nRUN echo on top > /t\nCMD [\"cat\", \"/t\"]\n"),
        )],
    );
    // Without credentials the pull is refused and the build fails.
    let anon = d.berth(&["build", "-t", "pulled:0", dir.to_str().unwrap()]);
    assert_ne!(anon.code, 0, "{anon:?}");
    // The berth CLI and the docker CLI send X-Registry-Config; FROM pulls with it.
    let r = with_cfg(
        d.berth_command(),
        &["build", "-t", "pulled:1", dir.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(d.berth(&["run", "--rm", "pulled:1"]).ok().stdout, "on top\n");
    d.berth(&["rmi", "pulled:1", &name]).ok();
    let mut dk = d.docker_command();
    dk.env("DOCKER_BUILDKIT", "0");
    let r = with_cfg(dk, &["build", "-t", "pulled:2", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(d.berth(&["run", "--rm", "pulled:2"]).ok().stdout, "on top\n");
}

#[test]
fn label_flags_become_a_last_label_step() {
    let d = daemon!();
    let dir = context(&d, "lbl", &[("Dockerfile", "FROM busybox\nLABEL own=1\n")]);
    let r = d
        .berth(&[
            "build",
            "--label",
            "extra=two words",
            "--label",
            "b=2",
            "-t",
            "lbl:1",
            dir.to_str().unwrap(),
        ])
        .ok();
    assert!(
        r.stdout
            .contains("Step 3/3 : LABEL \"b\"=\"2\" \"extra\"=\"two words\"\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        inspect(&d, "lbl:1", "{{json .Config.Labels}}"),
        r#"{"b":"2","extra":"two words","own":"1"}"#
    );
    let dk = docker_build(&d, &["--label", "via=docker", "-t", "lbl:2"], &dir);
    assert_eq!(dk.code, 0, "{dk:?}");
    assert_eq!(inspect(&d, "lbl:2", "{{index .Config.Labels \"via\"}}"), "docker");
}

#[test]
fn a_remote_url_context_is_downloaded_by_the_daemon() {
    let d = daemon!();
    let dir = context(
        &d,
        "remotectx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n"),
            ("f", "from a remote tar\n"),
        ],
    );
    let tgz = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["-czf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let server = berth_testkit::proxy::FileServer::start(vec![
        ("/ctx.tgz".into(), tgz, None),
        (
            "/Dockerfile".into(),
            b"FROM busybox\nCMD [\"echo\", \"a remote Dockerfile\"]\n".to_vec(),
            None,
        ),
    ]);
    let url = format!("{}/ctx.tgz", server.url());
    d.berth(&["build", "-t", "remote:1", &url]).ok();
    assert_eq!(
        d.berth(&["run", "--rm", "remote:1"]).ok().stdout,
        "from a remote tar\n"
    );
    // The real docker CLI sends the URL as `remote=` too.
    let o = d
        .docker_command()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "remote:2", &format!("{}/Dockerfile", server.url())])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        d.berth(&["run", "--rm", "remote:2"]).ok().stdout,
        "a remote Dockerfile\n"
    );
    // Unreachable, and git: clear errors, nothing tagged.
    let r = d.berth(&[
        "build",
        "-t",
        "remote:3",
        &format!("{}/missing.tgz", server.url()),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("unable to download remote context"),
        "{}",
        r.stderr
    );
    // A git URL nothing serves (a closed port on 127.0.0.1; build_git.rs has served ones).
    let r = d.berth(&["build", "-t", "remote:3", "git://127.0.0.1:1/repo.git"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("error fetching"), "{}", r.stderr);
    assert_eq!(d.berth(&["images", "-q", "remote:3"]).ok().out(), "");
}

#[test]
fn metadata_steps_commit_through_a_container_as_the_classic_builder() {
    let d = daemon!();
    let dir = context(
        &d,
        "meta",
        &[("Dockerfile", "FROM busybox\nENV A=1\nWORKDIR /tmp\nLABEL l=1\n")],
    );
    let r = d.berth(&["build", "-t", "meta:1", dir.to_str().unwrap()]).ok();
    for step in ["ENV A=1", "WORKDIR /tmp", "LABEL l=1"] {
        let at = r.stdout.find(step).unwrap_or_else(|| panic!("{r:?}"));
        let rest: Vec<&str> = r.stdout[at..].lines().skip(1).take(3).collect();
        assert!(rest[0].starts_with(" ---> Running in "), "{step}: {r:?}");
        let cid = rest[0].trim_start_matches(" ---> Running in ");
        assert_eq!(rest[1], format!("Removing intermediate container {cid}"), "{r:?}");
        assert!(rest[2].starts_with(" ---> "), "{r:?}");
    }
    // Still empty layers (WORKDIR of an existing directory too), and nothing left behind.
    let layers = inspect(&d, "meta:1", "{{len .RootFS.Layers}}");
    let base = inspect(&d, "busybox", "{{len .RootFS.Layers}}");
    assert_eq!(layers, base);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "");
    // With --rm=false (docker-py's default) the step's container stays, created, never run.
    let r = d
        .berth(&[
            "build",
            "--no-cache",
            "--rm=false",
            "-t",
            "meta:2",
            dir.to_str().unwrap(),
        ])
        .ok();
    assert!(!r.stdout.contains("Removing intermediate"), "{r:?}");
    let left = d
        .berth(&["ps", "-a", "--no-trunc", "--format", "{{.Status}}|{{.Command}}"])
        .ok();
    assert_eq!(left.out().lines().count(), 3, "{left:?}");
    assert!(
        // dockerd's two-argument comment (`#(nop) `, `ENV A=1`; WORKDIR, COPY and ADD keep one),
        // each argument with a space quoted, as dockerd's listing shows a command.
        left.out().contains("Created|\"/bin/sh -c '#(nop) ' 'ENV A=1'\"")
            && left
                .out()
                .contains("Created|\"/bin/sh -c '#(nop) WORKDIR /tmp'\""),
        "{left:?}"
    );
}
