//! The e2e harness: each test starts its own `berthd` with a private data root, exec root, socket
//! and cgroup parent, imports a busybox image built from Debian's `busybox-static`, and drives the
//! daemon with the `berth` CLI, the real `docker` CLI, or docker-py. Dropping the harness removes
//! every container, stops the daemon, and deletes mounts, cgroups and files it made — also when
//! the test failed.
//!
//! The binaries under test are the workspace's `target/<profile>/{berthd,berth,berth-shim}`
//! (override with `BERTH_BIN_DIR`); build them first (`cargo build --workspace`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// True when running as root; otherwise prints `skipped: requires root` for the named test.
pub fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: requires root ({test})");
        false
    }
}

/// Directory holding the binaries under test.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERTH_BIN_DIR") {
        return PathBuf::from(d);
    }
    // tests/e2e → workspace root → target/<profile>
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let exe = std::env::current_exe().unwrap();
    // current_exe = target/<profile>/deps/<test>-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf);
    for d in profile_dir
        .into_iter()
        .chain([root.join("target/debug"), root.join("target/release")])
    {
        if d.join("berthd").exists() && d.join("berth").exists() && d.join("berth-shim").exists() {
            return d;
        }
    }
    panic!("berthd/berth/berth-shim not built: run `cargo build --workspace` first (or set BERTH_BIN_DIR)");
}

/// The result of one command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with the full output unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn out(&self) -> &str {
        self.stdout.trim_end()
    }
}

static BUSYBOX_TAR: OnceLock<Vec<u8>> = OnceLock::new();

/// A tar of a minimal busybox root filesystem, built once per test process and kept in memory
/// (its build directory is removed at once).
pub fn busybox_tar() -> &'static [u8] {
    BUSYBOX_TAR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-e2e-busybox-{}", std::process::id()));
        let root = dir.join("rootfs");
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox missing: apt-get install busybox-static");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww:x:33:33:www:/home:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\nwww:x:33:\nstaff:x:50:www\n").unwrap();
        let tar = dir.join("busybox.tar");
        let st = Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&root)
            .args(["-cf"])
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar failed");
        let bytes = std::fs::read(&tar).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    })
}

/// A private berthd.
pub struct Daemon {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub cgroup_parent: String,
    /// This daemon's own default bridge (also the name of its nftables table) and subnet.
    pub net: TestNet,
    child: Option<Child>,
    bins: PathBuf,
    /// The network namespace berthd runs in (`nsenter --net`); `None`: the test's own.
    netns: Option<PathBuf>,
    /// The umask berthd is started under (`sh -c 'umask …; exec berthd …'`); `None`: the test's.
    pub umask: Option<&'static str>,
}

impl Daemon {
    /// Starts a daemon with private roots (no images).
    pub fn start_bare() -> Self {
        Self::start_bare_in(None)
    }

    /// Starts a daemon with busybox imported whose berthd runs in the network namespace pinned
    /// at `netns` (its bridges, rules and published ports are there; the CLI still reaches it
    /// over the Unix socket). The caller removes the namespace after dropping the daemon.
    pub fn start_in_netns(netns: &Path) -> Self {
        let d = Self::start_bare_in(Some(netns.to_path_buf()));
        d.berth_stdin(&["import", "-", "busybox:latest"], busybox_tar())
            .ok();
        d
    }

    fn start_bare_in(netns: Option<PathBuf>) -> Self {
        let bins = bin_dir();
        let root = std::env::temp_dir().join(format!("berth-e2e-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&root).unwrap();
        let cgroup_parent = format!("berth-e2e-{}-{}", std::process::id(), unique());
        // No test ever reaches Docker Hub: docker.io points at a closed port (fails closed)
        // unless a test points it at its own registry.
        let hub = root.join("certs.d/docker.io");
        std::fs::create_dir_all(&hub).unwrap();
        std::fs::write(hub.join("hosts.toml"), "server = \"http://127.0.0.1:9\"\n").unwrap();
        let mut d = Daemon {
            socket: root.join("exec/berth.sock"),
            root,
            cgroup_parent,
            net: TestNet::new(),
            child: None,
            bins,
            netns,
            umask: None,
        };
        d.spawn();
        d
    }

    /// The daemon's certs.d (beside its daemon.json): CAs, client certificates, hosts.toml.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs.d")
    }

    /// Points `domain` (e.g. `docker.io`) at `server` through its hosts.toml.
    pub fn set_hosts_toml(&self, domain: &str, toml: &str) {
        let dir = self.certs_dir().join(domain);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts.toml"), toml).unwrap();
    }

    /// Restarts berthd (SIGTERM; containers keep running) with this daemon.json.
    pub fn restart_with_config(&mut self, daemon_json: &serde_json::Value) {
        self.stop();
        std::fs::write(
            self.root.join("daemon.json"),
            serde_json::to_vec_pretty(daemon_json).unwrap(),
        )
        .unwrap();
        self.spawn();
    }

    /// Starts a daemon and imports `busybox:latest`.
    pub fn start() -> Self {
        let d = Self::start_bare();
        d.berth_stdin(&["import", "-", "busybox:latest"], busybox_tar())
            .ok();
        d
    }

    /// (Re)starts the berthd process on the same roots.
    pub fn spawn(&mut self) {
        self.spawn_with_env(&[]);
    }

    /// Starts berthd with extra environment (e.g. `BERTH_FAILPOINT`).
    pub fn spawn_with_env(&mut self, env: &[(&str, &str)]) {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let wfd = {
            use std::os::fd::AsRawFd;
            w.as_raw_fd()
        };
        // The write end must survive exec: clear its close-on-exec flag.
        rustix::io::fcntl_setfd(&w, rustix::io::FdFlags::empty()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("berthd.log"))
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                // nsenter enters only the network namespace, then execs berthd (same pid).
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(self.bins.join("berthd"));
                c
            }
            None => match self.umask {
                Some(u) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(format!("umask {u}; exec \"$@\""))
                        .arg("sh")
                        .arg(self.bins.join("berthd"));
                    c
                }
                None => Command::new(self.bins.join("berthd")),
            },
        };
        let child = cmd
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("exec"))
            .arg("--config-file")
            .arg(self.root.join("daemon.json"))
            .arg("--pidfile")
            .arg(self.root.join("berthd.pid"))
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--bridge")
            .arg(&self.net.bridge)
            .arg("--bip")
            .arg(format!("{}/24", self.net.gateway))
            .arg("--nft-table")
            .arg(&self.net.bridge)
            // Containers' DNS points at their own loopback: no test query leaves the machine.
            .arg("--dns")
            .arg(&self.net.dns)
            .env("BERTH_READY_FD", wfd.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start berthd");
        drop(w);
        let mut line = String::new();
        let mut reader = BufReader::new(std::fs::File::from(r));
        reader.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            "ready\n",
            "berthd did not become ready; log:\n{}",
            self.log()
        );
        self.child = Some(child);
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("berthd.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL (containers keep running under their shims).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (bounded) for the daemon process to die on its own; its exit status, or `None` if
    /// it is still alive at the deadline (it is then left running).
    pub fn wait_for_death(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32)?;
        if wait_pid_exit(pid.as_raw_nonzero().get(), timeout) {
            let st = child.wait().ok();
            self.child = None;
            st
        } else {
            None
        }
    }

    /// Stops the daemon with SIGTERM and waits for it (containers keep running under shims).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(c.id() as i32).unwrap(),
                rustix::process::Signal::TERM,
            );
            let _ = c.wait();
        }
    }

    /// A machine reboot, simulated (the daemon is left down): the daemon, every shim and the
    /// given container processes killed, their mounts and cgroups gone, the exec root (a tmpfs
    /// on a real machine) emptied.
    pub fn simulate_reboot(&mut self, container_pids: &[i32]) {
        self.kill9();
        for pid in self.shim_pids().into_iter().chain(container_pids.iter().copied()) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            );
            assert!(
                wait_pid_exit(pid, Duration::from_secs(10)),
                "{pid} survived SIGKILL"
            );
        }
        unmount_under(&self.root);
        remove_cgroups(&self.cgroup_parent);
        let exec = self.root.join("exec");
        std::fs::remove_dir_all(&exec).unwrap();
        std::fs::create_dir_all(&exec).unwrap();
    }

    /// Whether a berthd process is running for this harness.
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Runs `berthd ARGS` (e.g. `check --data-root …`) and returns its output.
    pub fn berthd(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new(self.bins.join("berthd"))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    /// The data root.
    pub fn data_root(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Mount points under this daemon's root, but the daemon's own mounts of its network
    /// namespace pins' directory (`<exec-root>/netns`, there while the daemon runs) and of the
    /// shareable `/dev/shm`s' parent (`<exec-root>/shm`).
    pub fn mounts_left(&self) -> Vec<String> {
        let pins = self.root.join("exec/netns").to_string_lossy().into_owned();
        // The shared parent of shareable containers' /dev/shm (gone at a clean stop).
        let shm = self.root.join("exec/shm").to_string_lossy().into_owned();
        let root = self.root.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|t| t.starts_with(&root) && *t != pins && *t != shm)
            .map(str::to_string)
            .collect()
    }

    /// The content of `file` in container `id`'s cgroup of the v1 hierarchy `ctrl` (trimmed);
    /// panics, naming the path, when it cannot be read.
    pub fn cgroup_file(&self, id: &str, ctrl: &str, file: &str) -> String {
        let p = format!("/sys/fs/cgroup/{ctrl}/{}/{id}/{file}", self.cgroup_parent);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    }

    /// Pids of this daemon's shims.
    pub fn shim_pids(&self) -> Vec<i32> {
        let out = Command::new("pgrep")
            .arg("-f")
            .arg(format!("berth-shim --bundle {}", self.root.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("BERTH_HOST", self.host())
            .env("DOCKER_HOST", self.host())
            .env_remove("DOCKER_CONFIG");
        c
    }

    /// Runs `berth ARGS`.
    pub fn berth(&self, args: &[&str]) -> Run {
        Run::from(
            self.cmd(&self.bins.join("berth"))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    /// Runs `berth ARGS` with `input` on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        run_with_stdin(self.cmd(&self.bins.join("berth")).args(args), input)
    }

    /// Runs the real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Run {
        Run::from(
            self.cmd(docker_cli())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        run_with_stdin(self.cmd(docker_cli()).args(args), input)
    }

    /// Runs a python3 script with docker-py pointed at this daemon.
    pub fn python(&self, script: &str) -> Run {
        let mut c = self.cmd(Path::new("python3"));
        c.arg("-c").arg(script);
        Run::from(c.stdin(Stdio::null()).output().unwrap())
    }

    /// `berth` as a `Command`, for tests that need to hold the process.
    pub fn berth_command(&self) -> Command {
        self.cmd(&self.bins.join("berth"))
    }

    /// The docker CLI as a `Command`, for tests that need to hold the process.
    pub fn docker_command(&self) -> Command {
        self.cmd(docker_cli())
    }

    /// Waits (bounded) until `cond` holds, re-checking whenever the daemon reports an event (or
    /// after at most a second); for state that settles asynchronously, like `--rm` teardown.
    pub fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut events = self
                .cmd(&self.bins.join("berth"))
                .args([
                    "events",
                    "--since",
                    &now.to_string(),
                    "--until",
                    &(now + 1).to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("berth events");
            // The first event (or the end of the window) wakes us.
            let mut line = String::new();
            let _ = BufReader::new(events.stdout.take().unwrap()).read_line(&mut line);
            let _ = events.kill();
            let _ = events.wait();
        }
        panic!("timed out waiting for: {what}");
    }
}

impl Daemon {
    /// Waits (bounded) for the first event since `since` (a [`timestamp`]) that matches every
    /// `filters` entry (`key=value`, as `berth events --filter`) and returns its line; fails
    /// the test at the deadline.
    #[track_caller]
    pub fn wait_for_event(&self, since: &str, filters: &[&str], timeout: Duration) -> String {
        let mut cmd = self.cmd(&self.bins.join("berth"));
        cmd.args(["events", "--since", since]);
        for f in filters {
            cmd.args(["--filter", f]);
        }
        let mut events = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("berth events");
        let stdout = events.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let got = rx.recv_timeout(timeout);
        let _ = events.kill();
        let _ = events.wait();
        let _ = reader.join();
        match got {
            Ok(line) if !line.is_empty() => line,
            _ => panic!("no event {filters:?} since {since} within {timeout:?}"),
        }
    }
}

/// Now, as `berth events --since` takes it (seconds and nanoseconds since the epoch).
pub fn timestamp() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
            // User networks' bridges go with their networks.
            let _ = self.berth(&["network", "prune", "-f"]);
        }
        if let Some(mut c) = self.child.take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(c.id() as i32).unwrap(),
                rustix::process::Signal::TERM,
            );
            let _ = c.wait();
        }
        // Shims of containers that could not be removed.
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(format!("berth-shim --bundle {}", self.root.display()))
            .status();
        unmount_under(&self.root);
        remove_cgroups(&self.cgroup_parent);
        self.net.cleanup();
        if std::env::var_os("BERTH_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Detaches every mount under `root` in this mount namespace, deepest first.
pub fn unmount_under(root: &Path) {
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        let root = root.to_string_lossy().into_owned();
        let mut targets: Vec<&str> = mi
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|t| t.starts_with(&root))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = rustix::mount::unmount(t, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Debian's dockerd, when installed (scripts/deps.sh installs docker.io).
pub fn dockerd_exe() -> Option<&'static str> {
    ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// `cmd` (dockerd, or a wrapper that runs it) given a private dockerd's arguments: its socket
/// (`<dir>/docker.sock`), data and exec roots, pidfile, an empty daemon.json and no bridge;
/// Docker's firewall only with `iptables`. Its log goes to `<dir>/dockerd.log`.
pub fn private_dockerd(mut cmd: Command, dir: &Path, iptables: bool) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("daemon.json"), "{}").unwrap();
    cmd.arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("--config-file")
        .arg(dir.join("daemon.json"))
        .arg(format!("--iptables={iptables}"))
        .args(["--ip6tables=false", "--bridge=none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dockerd.log")).unwrap());
    cmd
}

/// Stops a private dockerd (SIGTERM, then SIGKILL after 30 s) and removes its mounts and roots.
pub fn stop_private_dockerd(child: &mut Child, dir: &Path) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    unmount_under(dir);
    let _ = std::fs::remove_dir_all(dir);
}

/// The member names of a tar archive (`tar -t`), one per line.
pub fn tar_names(tar: &[u8]) -> String {
    let mut c = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    c.stdin.take().unwrap().write_all(tar).unwrap();
    String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned()
}

/// Removes `<controller>/<parent>` cgroup directories (all levels below it, deepest first) on v1
/// and v2.
pub fn remove_cgroups(parent: &str) {
    let mut dirs = Vec::new();
    for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if let Ok(rd) = std::fs::read_dir(base) {
            for c in rd.flatten() {
                let p = c.path().join(parent);
                if p.is_dir() {
                    dirs.push(p);
                }
            }
            let p = Path::new(base).join(parent);
            if p.is_dir() {
                dirs.push(p);
            }
        }
    }
    fn remove_tree(d: &Path) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for c in rd.flatten() {
                if c.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&c.path());
                }
            }
        }
        let _ = std::fs::remove_dir(d);
    }
    for d in dirs {
        remove_tree(&d);
    }
}

/// The docker CLI the tests drive: `/usr/local/bin/docker` when there is one (docker's own
/// build), else the first `docker` on PATH (Debian's `docker.io` installs `/usr/bin/docker`).
/// A missing client fails the test that needs it — it is not a skip: `scripts/deps.sh`
/// installs one.
#[track_caller]
pub fn docker_cli() -> &'static Path {
    static CLI: OnceLock<Option<PathBuf>> = OnceLock::new();
    fn executable(p: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    CLI.get_or_init(|| {
        let preferred = Path::new("/usr/local/bin/docker");
        if executable(preferred) {
            return Some(preferred.to_path_buf());
        }
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("docker"))
            .find(|p| executable(p))
    })
    .as_deref()
    .unwrap_or_else(|| panic!("no docker CLI (not /usr/local/bin/docker, none on PATH): run scripts/deps.sh"))
}

/// Waits until process `pid` has exited (pidfd + poll, no busy loop); false at the deadline.
/// A pid that no longer exists counts as exited.
pub fn wait_pid_exit(pid: i32, timeout: Duration) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let fd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return true,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll pidfd: {e}"),
        }
    }
}

/// Runs `cmd` with `input` on its stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    Run::from(out)
}

/// A test daemon's network: a bridge name (≤ 15 characters, also its nftables table) and a /24
/// of 10.200.0.0/13 that no route on the machine overlaps. Dropping it deletes the bridge and the
/// table (the daemon's Drop does, after the daemon and its containers are gone).
#[derive(Debug)]
pub struct TestNet {
    pub bridge: String,
    /// The bridge's address (`.1` of the /24).
    pub gateway: std::net::Ipv4Addr,
    /// The daemon's `--dns` (default 127.0.0.1: inside a container, its own loopback; a test
    /// that runs a resolver points it there and respawns the daemon).
    pub dns: String,
}

impl TestNet {
    pub fn new() -> Self {
        let n = unique();
        let bridge = format!("bt{}x{}", std::process::id() % 100000, n);
        let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let used = |third: u32, second: u32| {
            let dest = u32::from_le_bytes([10, second as u8, third as u8, 0]);
            routes
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(&format!("{dest:08X}")))
        };
        let start = (std::process::id() as u64 * 7919 + n * 13) % 2048;
        let idx = (0..2048u64)
            .map(|i| ((start + i) % 2048) as u32)
            .find(|i| !used(i % 256, 200 + i / 256))
            .expect("a free test subnet in 10.200.0.0/13");
        TestNet {
            bridge,
            dns: "127.0.0.1".into(),
            gateway: std::net::Ipv4Addr::new(10, (200 + idx / 256) as u8, (idx % 256) as u8, 1),
        }
    }

    /// Deletes the bridge, the bridges of user networks the daemon left (its table names every
    /// bridge it has rules for) and the nftables table (missing ones are fine).
    pub fn cleanup(&self) {
        let table = Command::new("nft")
            .args(["list", "table", "ip", &self.bridge])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut bridges: Vec<String> = table
            .split("oifname \"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .filter(|b| b.starts_with("br-"))
            .map(str::to_string)
            .collect();
        bridges.sort();
        bridges.dedup();
        bridges.push(self.bridge.clone());
        for b in bridges {
            let _ = Command::new("ip")
                .args(["link", "del", &b])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

impl Default for TestNet {
    fn default() -> Self {
        Self::new()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
