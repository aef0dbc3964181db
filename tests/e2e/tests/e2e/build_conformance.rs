//! Conformance with Docker's classic builder: where Debian's docker.io (dockerd) is installed, a
//! private dockerd builds the same contexts as berth, from the same busybox, and the results are
//! compared: the config fields a Dockerfile sets, the layer count, the whole filesystem (path,
//! type, mode, owner, size, content hash) and the default command's output.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, Run};
use serde_json::Value;

/// A private dockerd on its own socket and roots, stopped and cleaned up on drop.
struct Dockerd {
    dir: PathBuf,
    sock: PathBuf,
    child: Child,
}

impl Dockerd {
    fn start(dir: PathBuf) -> Option<Dockerd> {
        let exe = berth_e2e::dockerd_exe()?;
        let sock = dir.join("docker.sock");
        let child = berth_e2e::private_dockerd(Command::new(exe), &dir, false)
            .spawn()
            .ok()?;
        let d = Dockerd { dir, sock, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while d.docker(&["info"]).code != 0 {
            assert!(Instant::now() < deadline, "dockerd did not start: {}", d.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(d)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(berth_e2e::docker_cli());
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", self.dir.join("cli"));
        c
    }

    fn docker(&self, args: &[&str]) -> Run {
        let o = self.command().args(args).stdin(Stdio::null()).output().unwrap();
        run_of(o)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        berth_e2e::stop_private_dockerd(&mut self.child, &self.dir);
    }
}

fn run_of(o: std::process::Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The contexts: (name, Dockerfile, other files, build flags). Only what the classic builder
/// accepts (no heredocs, no --chmod).
type Case = (
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
);

fn cases() -> Vec<Case> {
    let c = |n, df: &str, files: Vec<(&'static str, &'static str)>, flags: Vec<&'static str>| {
        (n, df.to_string(), files, flags)
    };
    vec![
        c("run-cmd", "FROM busybox\nRUN echo hi > /f\nCMD [\"cat\", \"/f\"]\n", vec![], vec![]),
        c("env", "FROM busybox\nENV A=1 B=\"x y\" C=a\\ b\nENV OLD the old form\nENV D=${A}-$B\nCMD env | grep -E '^(A|B|C|D|OLD)=' | sort\n", vec![], vec![]),
        c("label", "FROM busybox\nLABEL a=1 \"b c\"=\"d e\"\nLABEL multi.line=\"one \\\n  two\"\n", vec![], vec![]),
        c("workdir", "FROM busybox\nWORKDIR /a\nWORKDIR b\nWORKDIR ../c\nRUN pwd > /pwd\nCMD cat /pwd\n", vec![], vec![]),
        c("user", "FROM busybox\nRUN mkdir -m 1777 /w\nUSER 1000:1000\nRUN id -u > /w/uid\nCMD cat /w/uid\n", vec![], vec![]),
        c("expose", "FROM busybox\nEXPOSE 80 443/udp 8000/tcp\n", vec![], vec![]),
        c("volume", "FROM busybox\nVOLUME [\"/a\", \"/b\"]\nVOLUME /c\n", vec![], vec![]),
        c("stopsignal", "FROM busybox\nSTOPSIGNAL SIGUSR1\n", vec![], vec![]),
        c("healthcheck", "FROM busybox\nHEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD wget -q -O- localhost || exit 1\n", vec![], vec![]),
        c("healthcheck-exec", "FROM busybox\nHEALTHCHECK CMD [\"true\"]\n", vec![], vec![]),
        c("shell", "FROM busybox\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0 > /shell\nCMD cat /shell\n", vec![], vec![]),
        c("onbuild", "FROM busybox\nONBUILD RUN echo child\nONBUILD ENV X=1\n", vec![], vec![]),
        c("entrypoint-exec", "FROM busybox\nENTRYPOINT [\"echo\", \"ep\"]\nCMD [\"arg\"]\n", vec![], vec![]),
        c("entrypoint-shell", "FROM busybox\nCMD [\"ignored\"]\nENTRYPOINT echo shell\n", vec![], vec![]),
        c("entrypoint-resets", "FROM busybox\nENTRYPOINT [\"echo\"]\n", vec![], vec![]),
        c("arg", "FROM busybox\nARG A=default\nARG B\nRUN echo \"$A/$B\" > /args\nCMD cat /args\n", vec![], vec!["--build-arg", "B=given"]),
        c("arg-before-from", "ARG BASE=busybox\nFROM $BASE\nARG BASE\nRUN echo $BASE > /base\nCMD cat /base\n", vec![], vec![]),
        c("multi-stage", "FROM busybox AS build\nRUN mkdir /out && echo made > /out/x\nFROM busybox\nCOPY --from=build /out/x /x\nCMD cat /x\n", vec![], vec![]),
        c("copy-dir", "FROM busybox\nCOPY dir /d1\nCOPY dir/ /d2/\nCOPY dir /d3/\n", vec![("dir/a", "a\n"), ("dir/sub/b", "b\n")], vec![]),
        c("copy-glob", "FROM busybox\nCOPY *.txt /g/\n", vec![("x.txt", "x\n"), ("y.txt", "y\n"), ("z.md", "z\n")], vec![]),
        c("copy-chown", "FROM busybox\nCOPY --chown=1:2 f /owned\nCOPY --chown=www f /named/\n", vec![("f", "f\n")], vec![]),
        c("copy-into-dir", "FROM busybox\nCOPY f /etc\nCOPY f /new/path/file\n", vec![("f", "f\n")], vec![]),
        c("dockerignore", "FROM busybox\nCOPY . /ctx/\n", vec![(".dockerignore", "*.log\n!keep.log\nsecret\n"), ("a", "a\n"), ("x.log", "x\n"), ("keep.log", "k\n"), ("secret/s", "s\n")], vec![]),
        c("maintainer", "FROM busybox\nMAINTAINER someone <s@example.com>\n", vec![], vec![]),
        c("scratch", "FROM scratch\nCOPY f /f\nCMD [\"/f\"]\n", vec![("f", "f\n")], vec![]),
        c("run-exec", "FROM busybox\nRUN [\"sh\", \"-c\", \"echo exec > /e\"]\nCMD cat /e\n", vec![], vec![]),
        c("escape", "# escape=`\nFROM busybox\nRUN echo a `\n  b > /esc\nCMD cat /esc\n", vec![], vec![]),
    ]
}

/// The cases whose dockerd image berth's `--cache-from` reuses whole (see the test's end):
/// every one without COPY/ADD, whose `file:`/`dir:` source hashes are berth's own.
const CACHE_FROM_CASES: &[&str] = &[
    "run-cmd",
    "env",
    "label",
    "workdir",
    "user",
    "expose",
    "volume",
    "stopsignal",
    "healthcheck",
    "healthcheck-exec",
    "shell",
    "onbuild",
    "entrypoint-exec",
    "entrypoint-shell",
    "entrypoint-resets",
    "arg",
    "arg-before-from",
    "maintainer",
    "run-exec",
    "escape",
];

const FIELDS: &[&str] = &[
    "Cmd",
    "Entrypoint",
    "Env",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
];

/// Null, missing, "" and empty lists/maps are the same absence.
fn norm(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(v) => v.clone(),
    }
}

const LIST: &str = "find / -xdev -path /proc -prune -o -path /sys -prune -o -path /dev -prune -o -print \
    | grep -v -e '^/etc/hosts$' -e '^/etc/hostname$' -e '^/etc/resolv.conf$' -e '^/.dockerenv$' -e '^/etc/mtab$' \
    | sort | while read f; do \
      if [ -L \"$f\" ]; then echo \"$f l $(readlink \"$f\")\"; \
      elif [ -d \"$f\" ]; then stat -c '%n d %a %u %g' \"$f\"; \
      else echo \"$(stat -c '%n f %a %u %g %s' \"$f\") $(md5sum < \"$f\" | cut -c1-32)\"; fi; done";

/// The builder's own lines of a build's output (not the steps' output), 12-hex IDs masked.
fn step_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            [
                "Step ",
                " ---> ",
                "Removing intermediate container ",
                "Successfully ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    if w.len() == 12 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                        "<id>"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn classic_builder_conformance() {
    if !berth_e2e::require_root("build_conformance::classic_builder_conformance") {
        return;
    }
    let d = Daemon::start();
    let Some(dk) = Dockerd::start(d.root.join("dockerd")) else {
        eprintln!("skipped: no dockerd installed");
        return;
    };
    let mut imp = dk.command();
    imp.args(["import", "-", "busybox:latest"]);
    let r = berth_e2e::run_with_stdin(&mut imp, berth_e2e::busybox_tar());
    assert_eq!(r.code, 0, "{r:?}");
    let mut failures = Vec::new();
    for (name, df, files, flags) in cases() {
        let dir = d.root.join("conf").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), &df).unwrap();
        for (p, body) in &files {
            let p = dir.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let tag = format!("conf-{name}:1");
        let mut args = vec!["build", "--network", "none", "-t", &tag];
        args.extend(flags.iter().copied());
        let dirs = dir.to_str().unwrap();
        args.push(dirs);
        let ours = d.berth(&args);
        let theirs = dk.docker(&args);
        if ours.code != theirs.code {
            failures.push(format!(
                "{name}: exit {} vs docker's {}: {} / {}",
                ours.code, theirs.code, ours.stderr, theirs.stderr
            ));
            continue;
        }
        if ours.code != 0 {
            failures.push(format!(
                "{name}: both failed: {} / {}",
                ours.stderr, theirs.stderr
            ));
            continue;
        }
        // The classic builder's step lines, IDs masked: the same lines in the same order
        // (` ---> Running in` and `Removing intermediate container` for metadata steps too).
        let (sa, sb) = (step_lines(&ours.stdout), step_lines(&theirs.stdout));
        if sa != sb {
            failures.push(format!("{name}: output: berth {sa:#?}\ndocker {sb:#?}"));
        }
        let cfg = |r: Run| -> Value { serde_json::from_str(r.out()).unwrap_or(Value::Null) };
        let a = cfg(d.berth(&["image", "inspect", "-f", "{{json .Config}}", &tag]));
        let b = cfg(dk.docker(&["image", "inspect", "-f", "{{json .Config}}", &tag]));
        for f in FIELDS {
            let (x, y) = (norm(a.get(f)), norm(b.get(f)));
            if x != y {
                failures.push(format!("{name}: Config.{f}: berth {x} docker {y}"));
            }
        }
        let layers = |r: Run| r.out().to_string();
        let la = layers(d.berth(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &tag]));
        let lb = layers(dk.docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &tag]));
        if la != lb {
            failures.push(format!("{name}: {la} layers, docker {lb}"));
        }
        if name == "scratch" {
            continue;
        }
        let fa = d.berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            &tag,
            "-c",
            LIST,
        ]);
        let fb = dk.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            &tag,
            "-c",
            LIST,
        ]);
        // `run` of an image with VOLUMEs: dockerd mounts anonymous volumes there (the volumes
        // issue gives VOLUME its meaning at run); the image itself holds no such directory.
        let vols: Vec<String> = match b.get("Volumes") {
            Some(Value::Object(o)) => o.keys().map(|k| format!("{k} ")).collect(),
            _ => Vec::new(),
        };
        let keep = |l: &&str| !vols.iter().any(|v| l.starts_with(v.as_str()));
        let sa: std::collections::BTreeSet<&str> = fa.stdout.lines().filter(keep).collect();
        let sb: std::collections::BTreeSet<&str> = fb.stdout.lines().filter(keep).collect();
        if sa != sb {
            let only_a: Vec<_> = sa.difference(&sb).collect();
            let only_b: Vec<_> = sb.difference(&sa).collect();
            failures.push(format!(
                "{name}: files differ: berth only {only_a:?}; docker only {only_b:?}"
            ));
        }
        if b.get("Cmd").is_some_and(|c| !c.is_null()) || b.get("Entrypoint").is_some_and(|c| !c.is_null()) {
            let ra = d.berth(&["run", "--rm", "--network", "none", &tag]);
            let rb = dk.docker(&["run", "--rm", "--network", "none", &tag]);
            if (ra.code, &ra.stdout) != (rb.code, &rb.stdout) {
                failures.push(format!(
                    "{name}: run: berth {:?} docker {:?}",
                    (ra.code, &ra.stdout),
                    (rb.code, &rb.stdout)
                ));
            }
        }
    }
    // --cache-from across engines: dockerd's images (and its busybox) loaded into berth answer
    // berth's cache through their history, step for step, giving dockerd's very image.
    let cross = CACHE_FROM_CASES;
    let saved = d.root.join("dockerd-images.tar");
    let mut save = vec!["save", "-o", saved.to_str().unwrap(), "busybox:latest"];
    let tags: Vec<String> = cross.iter().map(|n| format!("conf-{n}:1")).collect();
    save.extend(tags.iter().map(String::as_str));
    let r = dk.docker(&save);
    assert_eq!(r.code, 0, "{r:?}");
    d.berth(&["load", "-i", saved.to_str().unwrap()]).ok();
    for (name, tag) in cross.iter().zip(&tags) {
        let (_, _, _, flags) = cases().into_iter().find(|c| c.0 == *name).unwrap();
        let dir = d.root.join("conf").join(name);
        let mut args = vec!["build", "--network", "none", "--cache-from", tag];
        args.extend(flags.iter().copied());
        args.push(dir.to_str().unwrap());
        let r = d.berth(&args);
        // The steps after FROM (an ARG before FROM is a step too).
        let steps = r
            .stdout
            .split_once(" ---> ")
            .map_or(0, |(_, rest)| rest.matches("\nStep ").count());
        let hits = r.stdout.matches(" ---> Using cache").count();
        let theirs = dk.docker(&["image", "inspect", "-f", "{{.Id}}", tag]);
        let built = r
            .stdout
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("Successfully built ");
        if r.code != 0 || hits != steps || !theirs.stdout.contains(&format!("sha256:{built}")) {
            let hist = ["history", "--no-trunc", "--format", "{{.CreatedBy}}", tag];
            failures.push(format!(
                "{name}: --cache-from {tag}: {hits}/{steps} cached, built {built}, docker's {}: {}\nhistory: {}",
                theirs.stdout.trim(),
                r.stdout,
                dk.docker(&hist).stdout
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
