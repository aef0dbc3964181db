//! berth beside a real dockerd (Debian's `docker.io`) with Docker's firewall on: `--iptables`,
//! FORWARD policy DROP, br_netfilter passing bridged frames through iptables. berth's user
//! network and published ports must keep working through berth's accept rules in Docker's
//! `DOCKER-USER` chain, whichever daemon starts first, and berthd must take its rules away
//! when it stops.
//!
//! Both daemons run in a network namespace of the test's own (`ip netns add`; berthd and dockerd
//! under `nsenter --net`): iptables, nftables, `ip_forward` and br_netfilter's
//! `bridge-nf-call-*` are per namespace, so Docker's DROP policy never reaches the machine's
//! forwarding, where the suite's other tests (and the kernel's built-in br_netfilter) would
//! feel it. Deleting the namespace undoes all of it; the test then asserts that the machine's
//! own firewall state (iptables chains and policies, `ip_forward`, the `bridge-nf-call-*`
//! sysctls, links, namespaces) is exactly as it was before.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::Daemon;

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The machine's (the test process's namespace's) firewall state that a dockerd changes when
/// it runs there: iptables rules and policies (counters dropped), the sysctls, the links. Lines naming berth test daemons' tables or rules are left out: the
/// suite's other tests make and remove those concurrently.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    iptables: Vec<String>,
    sysctls: Vec<(String, String)>,
    links: Vec<String>,
}

impl HostState {
    fn snapshot() -> HostState {
        let out = |prog: &str, args: &[&str]| {
            Command::new(prog)
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let iptables = out("iptables-save", &[])
            .lines()
            // A table's header and COMMIT, and the DOCKER-USER chain itself, come and go with
            // network::docker_user_gets_accept_rules_… (a stand-in chain in this namespace).
            .filter(|l| {
                !l.starts_with('#')
                    && !l.starts_with('*')
                    && *l != "COMMIT"
                    && !l.starts_with(":DOCKER-USER ")
                    && !l.contains("berth:")
            })
            // `:CHAIN POLICY [packets:bytes]`: the counters move with traffic.
            .map(|l| l.split(" [").next().unwrap_or(l).to_string())
            .collect();
        let sysctls = [
            "net/ipv4/ip_forward",
            "net/bridge/bridge-nf-call-iptables",
            "net/bridge/bridge-nf-call-ip6tables",
            "net/bridge/bridge-nf-call-arptables",
        ]
        .iter()
        .map(|k| {
            let v =
                std::fs::read_to_string(Path::new("/proc/sys").join(k)).unwrap_or_else(|_| "absent".into());
            (k.to_string(), v.trim().to_string())
        })
        .collect();
        // Links other tests come and go with (their bridges, veths, namespaces' links) are not
        // dockerd's: keep the ones a dockerd makes (docker0, br-*, veth*).
        let links = out("ip", &["-o", "link"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("docker") || n.starts_with("veth"))
            .collect();
        HostState {
            iptables,
            sysctls,
            links,
        }
    }

    /// This snapshot as comparable with `before`: the suite's other daemons run in the host's
    /// namespace and turn `ip_forward` on when they set up a bridge (as dockerd does; neither
    /// turns it off), so a change from off to on cannot be told apart from theirs and is
    /// forgiven. A change from on to off, or of any other entry, still counts.
    fn seen_from(mut self, before: &HostState) -> HostState {
        const FWD: &str = "net/ipv4/ip_forward";
        let was = before
            .sysctls
            .iter()
            .find(|(k, _)| k == FWD)
            .map(|(_, v)| v.as_str());
        if was == Some("0") {
            for (k, v) in &mut self.sysctls {
                if k == FWD && v == "1" {
                    *v = "0".to_string();
                }
            }
        }
        self
    }
}

/// A named network namespace (`ip netns add`, `lo` up); deleted on drop, after the daemons in
/// it are gone (declare it first).
struct Ns {
    name: String,
    path: PathBuf,
}

impl Ns {
    fn new() -> Ns {
        let name = format!("berth-dk-{}", unique());
        let ok = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {args:?}: {}", text(&o));
        };
        ok(&["netns", "add", &name]);
        let ns = Ns {
            path: PathBuf::from("/run/netns").join(&name),
            name,
        };
        ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// A command run inside the namespace (nsenter execs it: the child is the program).
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn sysctl(&self, key: &str) -> String {
        text(&self.run("cat", &[&format!("/proc/sys/{key}")]))
            .trim()
            .to_string()
    }

    fn iptables(&self, args: &[&str]) -> String {
        let o = self.run("iptables", args);
        assert!(o.status.success(), "iptables {args:?}: {}", text(&o));
        text(&o)
    }

    /// GET `url` from inside the namespace, 3 s at most (python3: the host's static busybox
    /// wget crashes on this machine).
    fn get(&self, url: &str) -> Result<String, String> {
        http_get_in(&self.path, url)
    }
}

/// GET `url` from the network namespace at `netns`, 3 s at most.
fn http_get_in(netns: &Path, url: &str) -> Result<String, String> {
    let o = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "--",
            "python3",
            "-c",
            "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())",
            url,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(text(&o))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Debian's dockerd with Docker's firewall (`--iptables`), in `ns`, on its own socket, data,
/// exec root and pidfile, with no bridge of its own (`--bridge=none`: the rules it installs for
/// others' traffic, DOCKER-USER and the FORWARD policy, are the same). Stopped and its roots
/// removed on drop.
struct Dockerd {
    dir: PathBuf,
    child: Child,
}

impl Dockerd {
    /// Starts it the way it starts on a fresh host: with `ip_forward` off, so dockerd turns it
    /// on and sets the FORWARD policy to DROP (it leaves the policy alone when forwarding is
    /// already on). Waits until it answers; asserts the DROP policy and its DOCKER-USER chain.
    fn start(ns: &Ns) -> Dockerd {
        let exe = berth_e2e::dockerd_exe().expect("dockerd");
        let dir = std::env::temp_dir().join(format!("berth-e2e-dockerd-{}", unique()));
        let o = ns.run("sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
        assert!(o.status.success(), "{}", text(&o));
        let sock = dir.join("docker.sock");
        let child = berth_e2e::private_dockerd(ns.command(exe), &dir, true)
            .spawn()
            .expect("start dockerd");
        let mut d = Dockerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = Command::new(berth_e2e::docker_cli())
                .env("DOCKER_HOST", format!("unix://{}", sock.display()))
                .env("DOCKER_CONFIG", d.dir.join("cli"))
                .args(["info", "--format", "{{.ServerVersion}}"])
                .output()
                .unwrap();
            if info.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline && d.child.try_wait().unwrap().is_none(),
                "dockerd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let forward = ns.iptables(&["-S", "FORWARD"]);
        assert!(
            forward.contains("-P FORWARD DROP") && forward.contains("-j DOCKER-USER"),
            "dockerd's FORWARD chain: {forward}"
        );
        assert_eq!(ns.sysctl("net/bridge/bridge-nf-call-iptables"), "1");
        assert_eq!(ns.sysctl("net/ipv4/ip_forward"), "1");
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        berth_e2e::stop_private_dockerd(&mut self.child, &self.dir);
    }
}

/// Whether this machine can run the test: root and Debian's dockerd installed (scripts/deps.sh).
fn can_run() -> bool {
    if !berth_e2e::require_root(module_path!()) {
        return false;
    }
    if berth_e2e::dockerd_exe().is_none() {
        eprintln!("skipped: dockerd (Debian's docker.io) is not installed; scripts/deps.sh installs it");
        return false;
    }
    true
}

/// berth's rules in Docker's chain, as `iptables -S DOCKER-USER` shows them, for this daemon.
fn berth_rules(ns: &Ns, d: &Daemon) -> Vec<String> {
    let mark = format!("berth:{}", d.net.bridge);
    ns.iptables(&["-S", "DOCKER-USER"])
        .lines()
        .filter(|l| l.contains(&mark))
        .map(str::to_string)
        .collect()
}

/// Asserts that berth's rules accept exactly these bridges (both directions) and come before
/// Docker's RETURN.
fn assert_rules_for(ns: &Ns, d: &Daemon, bridges: &[&str]) {
    let chain = ns.iptables(&["-S", "DOCKER-USER"]);
    let ours = berth_rules(ns, d);
    assert_eq!(ours.len(), 2 * bridges.len(), "{chain}");
    for b in bridges {
        for dir in ["-i", "-o"] {
            assert!(
                ours.iter().any(|l| l.contains(&format!("{dir} {b} "))),
                "no {dir} {b} rule: {chain}"
            );
        }
    }
    let ret = chain.find("-j RETURN").expect("Docker's RETURN");
    assert!(
        chain.rfind("berth:").unwrap() < ret,
        "berth's rules behind Docker's RETURN never match: {chain}"
    );
}

const WEB: &str =
    "mkdir -p /www && echo hello-beside-docker > /www/index.html && exec httpd -f -p 80 -h /www";

/// A user network, `web` on it (httpd, published on a kernel-chosen port), and `client` reaching
/// it by name; returns the published port.
fn web_on_user_network(d: &Daemon, net: &str) -> u16 {
    let (subnet, _) = berth_e2e_subnet(d);
    d.berth(&["network", "create", "--subnet", &subnet, net]).ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        net,
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        WEB,
    ])
    .ok();
    let port = d.berth(&["port", "web", "80/tcp"]).ok().out().to_string();
    port.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// A /24 for a user network next to the daemon's default bridge (in the test's namespace, so no
/// host route can overlap it).
fn berth_e2e_subnet(d: &Daemon) -> (String, String) {
    let o = d.net.gateway.octets();
    let third = o[2] ^ 0x80;
    (
        format!("{}.{}.{third}.0/24", o[0], o[1]),
        format!("{}.{}.{third}.1", o[0], o[1]),
    )
}

/// Container to container by name, through the embedded DNS and the bridge (bridged frames go
/// through Docker's FORWARD chain).
fn client_reaches_web(d: &Daemon, net: &str) -> Result<String, String> {
    let r = d.berth(&[
        // (`timeout`, not wget's -T: this busybox's wget crashes with -T)
        "run",
        "--rm",
        "--network",
        net,
        "busybox",
        "timeout",
        "5",
        "wget",
        "-O",
        "-",
        "http://web/",
    ]);
    if r.code == 0 {
        Ok(r.stdout)
    } else {
        Err(format!("exit {}: {}{}", r.code, r.stdout, r.stderr))
    }
}

/// Waits (bounded) for `cond`; a deadline fails the test.
fn within(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn beside_a_running_dockerd_a_user_network_and_a_published_port_work_and_berthd_takes_its_docker_user_rules_away(
) {
    if !can_run() {
        return;
    }
    let before = HostState::snapshot();
    let ns_path;
    {
        let ns = Ns::new();
        ns_path = ns.path.clone();
        let dockerd = Dockerd::start(&ns);
        let mut d = Daemon::start_in_netns(&ns.path);
        let net = "beside";
        let port = web_on_user_network(&d, net);
        let br = format!(
            "br-{}",
            &d.berth(&["network", "inspect", "-f", "{{.Id}}", net]).ok().out()[..12]
        );
        assert_rules_for(&ns, &d, &[&d.net.bridge, &br]);
        let page = client_reaches_web(&d, net).expect("client → web by name");
        assert!(page.contains("hello-beside-docker"), "{page}");
        let page = ns
            .get(&format!("http://127.0.0.1:{port}/"))
            .expect("the published port from 127.0.0.1");
        assert!(page.contains("hello-beside-docker"), "{page}");

        // Without berth's rules Docker's DROP policy stops the bridged traffic: from the
        // client's namespace to web's address, while berthd is down (the containers run on).
        let web_ip = d
            .berth(&[
                "inspect",
                "-f",
                &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
                "web",
            ])
            .ok()
            .out()
            .to_string();
        let probe = d
            .berth(&[
                "run",
                "-d",
                "--name",
                "probe",
                "--network",
                net,
                "busybox",
                "sleep",
                "600",
            ])
            .ok()
            .out()
            .to_string();
        let probe_ns = d.root.join("exec/netns").join(&probe);
        let from_probe = || http_get_in(&probe_ns, &format!("http://{web_ip}/"));
        let page = from_probe().expect("probe → web with berth's rules");
        assert!(page.contains("hello-beside-docker"), "{page}");
        d.stop();
        assert!(
            berth_rules(&ns, &d).is_empty(),
            "berth's rules outlived berthd: {}",
            ns.iptables(&["-S", "DOCKER-USER"])
        );
        assert!(
            ns.iptables(&["-S", "DOCKER-USER"])
                .contains("-A DOCKER-USER -j RETURN"),
            "Docker's own rule went too"
        );
        let o = from_probe();
        assert!(
            o.as_ref().is_err_and(|e| e.contains("timed out")),
            "bridged traffic and Docker's DROP policy without berth's rules: {o:?}"
        );
        // berthd back: its rules too, and the traffic.
        d.spawn();
        assert_rules_for(&ns, &d, &[&d.net.bridge, &br]);
        from_probe().expect("probe → web after berthd's restart");
        drop(d);
        drop(dockerd);
    }
    assert_eq!(
        HostState::snapshot().seen_from(&before),
        before,
        "the machine's firewall state changed"
    );
    assert!(!ns_path.exists(), "the test's namespace outlived it");
}

#[test]
fn a_dockerd_started_after_berthd_gets_berths_docker_user_rules_without_a_berth_restart() {
    if !can_run() {
        return;
    }
    let before = HostState::snapshot();
    let ns_path;
    {
        let ns = Ns::new();
        ns_path = ns.path.clone();
        let d = Daemon::start_in_netns(&ns.path);
        let net = "later";
        let port = web_on_user_network(&d, net);
        let br = format!(
            "br-{}",
            &d.berth(&["network", "inspect", "-f", "{{.Id}}", net]).ok().out()[..12]
        );
        client_reaches_web(&d, net).expect("client → web before dockerd");
        let o = ns.run("iptables", &["-S", "DOCKER-USER"]);
        assert!(
            !o.status.success(),
            "a DOCKER-USER chain before dockerd: {}",
            text(&o)
        );

        let dockerd = Dockerd::start(&ns);
        // No container is started meanwhile: berthd's periodic check puts the rules in.
        within("berth's rules in the new DOCKER-USER chain", 15, || {
            berth_rules(&ns, &d).len() == 4
        });
        assert_rules_for(&ns, &d, &[&d.net.bridge, &br]);
        let page = client_reaches_web(&d, net).expect("client → web beside dockerd");
        assert!(page.contains("hello-beside-docker"), "{page}");
        let page = ns
            .get(&format!("http://127.0.0.1:{port}/"))
            .expect("the published port from 127.0.0.1");
        assert!(page.contains("hello-beside-docker"), "{page}");

        // Flushed by hand (or by a firewall reload): back before the next container needs them.
        ns.iptables(&["-F", "DOCKER-USER"]);
        ns.iptables(&["-A", "DOCKER-USER", "-j", "RETURN"]);
        let page = client_reaches_web(&d, net).expect("client → web after a flush");
        assert!(page.contains("hello-beside-docker"), "{page}");
        assert_rules_for(&ns, &d, &[&d.net.bridge, &br]);
        drop(d);
        assert!(
            !ns.iptables(&["-S", "DOCKER-USER"]).contains("berth:"),
            "berth's rules outlived berthd"
        );
        drop(dockerd);
    }
    assert_eq!(
        HostState::snapshot().seen_from(&before),
        before,
        "the machine's firewall state changed"
    );
    assert!(!ns_path.exists(), "the test's namespace outlived it");
}
