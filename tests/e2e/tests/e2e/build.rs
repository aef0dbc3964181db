//! Dockerfile builds through `berth build`, the real docker CLI (classic builder,
//! DOCKER_BUILDKIT=0) and docker-py.

use std::path::{Path, PathBuf};

use berth_e2e::{Daemon, Run};

/// A context directory with these files.
fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.root.join(name);
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn docker_build(d: &Daemon, args: &[&str], dir: &Path) -> Run {
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

fn inspect(d: &Daemon, image: &str, format: &str) -> String {
    d.berth(&["image", "inspect", "-f", format, image])
        .ok()
        .out()
        .to_string()
}

const THIN: &str = "FROM busybox\nRUN echo hi > /f\nCOPY greeting.txt /g.txt\nCMD [\"cat\",\"/f\",\"/g.txt\"]\n";

#[test]
fn docker_build_runs_from_run_copy_cmd_with_the_classic_output() {
    let d = daemon!();
    let dir = context(&d, "ctx", &[("Dockerfile", THIN), ("greeting.txt", "hello\n")]);
    let r = docker_build(&d, &["-t", "thin:1"], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    let out = &r.stdout;
    assert!(out.contains("Step 1/4 : FROM busybox\n ---> "), "{out}");
    assert!(out.contains("Step 2/4 : RUN echo hi > /f\n ---> Running in "), "{out}");
    assert!(out.contains("Removing intermediate container "), "{out}");
    assert!(out.contains("Step 3/4 : COPY greeting.txt /g.txt\n"), "{out}");
    assert!(out.contains("Step 4/4 : CMD [\"cat\",\"/f\",\"/g.txt\"]\n"), "{out}");
    let id = inspect(&d, "thin:1", "{{.Id}}");
    assert!(out.contains(&format!("Successfully built {}\n", &id[7..19])), "{out}");
    assert!(out.contains("Successfully tagged thin:1\n"), "{out}");
    let run = d.berth(&["run", "--rm", "thin:1"]).ok();
    assert_eq!(run.stdout, "hi\nhello\n");
    // Cached the second time: every step after FROM says so, and the image is the same.
    let again = docker_build(&d, &["-t", "thin:1"], &dir);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.stdout.matches(" ---> Using cache\n").count(), 3, "{}", again.stdout);
    assert!(again.stdout.contains(&format!("Successfully built {}\n", &id[7..19])));
    // Intermediate images are listed by images -a, and the history names each instruction.
    let all = d.berth(&["images", "-a", "-q"]).ok();
    assert!(all.stdout.lines().count() >= 4, "{}", all.stdout);
    let hist = d.berth(&["history", "--no-trunc", "thin:1"]).ok();
    assert!(hist.stdout.contains("/bin/sh -c echo hi > /f"), "{}", hist.stdout);
    assert!(hist.stdout.contains("CMD [\"cat\" \"/f\" \"/g.txt\"]"), "{}", hist.stdout);
}
