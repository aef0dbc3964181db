//! Git build contexts, served by a local `git daemon` on 127.0.0.1 from a repository the test
//! makes: `git://…`, `#branch:subdir`, a ref that does not exist.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::Daemon;

/// `git daemon` serving `base` on 127.0.0.1:`port`, killed on drop with its process group:
/// `git daemon` runs `git-daemon` as a child, which killing `git` alone would leave running.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn serve(base: &Path) -> GitDaemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("git")
        .arg("daemon")
        .arg("--export-all")
        .arg("--reuseaddr")
        .arg(format!("--base-path={}", base.display()))
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("git daemon (scripts/deps.sh installs git)");
    let g = GitDaemon { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    g
}

/// A repository: `master` with a Dockerfile at the top; `dev` adding `sub/` with its own, and
/// a symlink climbing out of the checkout.
fn repo(d: &Daemon) -> std::path::PathBuf {
    let base = d.root.join("git");
    let r = base.join("repo");
    std::fs::create_dir_all(r.join("sub")).unwrap();
    git(&r, &["init", "-q", "-b", "master"]);
    std::fs::write(
        r.join("Dockerfile"),
        "FROM busybox\nCOPY hello /hello\nCMD [\"cat\", \"/hello\"]\n",
    )
    .unwrap();
    std::fs::write(r.join("hello"), "from master\n").unwrap();
    git(&r, &["add", "Dockerfile", "hello"]);
    git(&r, &["commit", "-q", "-m", "master"]);
    git(&r, &["checkout", "-q", "-b", "dev"]);
    std::fs::write(
        r.join("sub/Dockerfile"),
        "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n",
    )
    .unwrap();
    std::fs::write(r.join("sub/f"), "from dev:sub\n").unwrap();
    std::os::unix::fs::symlink("../../../..", r.join("up")).unwrap();
    git(&r, &["add", "sub", "up"]);
    git(&r, &["commit", "-q", "-m", "dev"]);
    git(&r, &["checkout", "-q", "master"]);
    base
}

fn leftovers(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.data_root().join("build"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn git_contexts_build_a_branch_and_subdir_and_refuse_a_bad_ref() {
    let d = daemon!();
    let base = repo(&d);
    let g = serve(&base);
    let url = format!("git://127.0.0.1:{}/repo", g.port);

    d.berth(&["build", "-t", "g:1", &url]).ok();
    assert_eq!(d.berth(&["run", "--rm", "g:1"]).ok().out(), "from master");

    let sub = format!("{url}#dev:sub");
    d.berth(&["build", "-t", "g:2", &sub]).ok();
    assert_eq!(d.berth(&["run", "--rm", "g:2"]).ok().out(), "from dev:sub");

    // A symlink climbing out resolves inside the checkout: `up/sub` is the repository's sub.
    d.berth(&["build", "-t", "g:3", &format!("{url}#dev:up/sub")])
        .ok();
    assert_eq!(d.berth(&["run", "--rm", "g:3"]).ok().out(), "from dev:sub");

    let r = d.berth(&["build", &format!("{url}#nosuch")]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("error fetching"), "{r:?}");
    let r = d.berth(&["build", &format!("{url}#dev:nosuch")]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("not within git root"), "{r:?}");
    // Every clone is gone, after success and failure.
    assert_eq!(leftovers(&d), Vec::<String>::new());

    // docker-py sends the URL as `remote=`, the daemon fetches it.
    let script = format!(
        r#"
import docker
c = docker.from_env()
img, logs = c.images.build(path={sub:?}, tag="g:4")
print(c.containers.run("g:4", remove=True).decode(), end="")
"#
    );
    let r = d.python(&script);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "from dev:sub\n");

    // The real docker CLI (classic builder) clones with git itself and sends the tar. It leaves
    // its clone (`$TMPDIR/docker-build-git*`) behind: a private TMPDIR keeps it in the test's root.
    let tmp = d.root.join("docker-cli-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let o = d
        .docker_command()
        .env("DOCKER_BUILDKIT", "0")
        .env("TMPDIR", &tmp)
        .args(["build", "-t", "g:5", &sub])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(d.berth(&["run", "--rm", "g:5"]).ok().out(), "from dev:sub");
    assert_eq!(leftovers(&d), Vec::<String>::new());
}
