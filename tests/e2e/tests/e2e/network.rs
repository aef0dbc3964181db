//! Networking: the default bridge (address, gateway, cleanup) and published ports. Traffic goes
//! only to 127.0.0.1, to this test's containers and to a namespace the test creates.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_e2e::Daemon;

pub(crate) fn inspect(d: &Daemon, name: &str, fmt: &str) -> String {
    d.berth(&["inspect", "-f", fmt, name]).ok().out().to_string()
}

/// A port nothing listens on now (the kernel's pick, released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / over plain TCP, with a deadline; the body, or the error.
pub(crate) fn http_get(addr: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn start_httpd(d: &Daemon, name: &str, publish: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.extend([
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-berth > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    d.berth(&args).ok();
}

pub(crate) fn nft_table(d: &Daemon) -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", &d.net.bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn links() -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `n` namespaces are pinned: an exited container's veth, namespace and lease
/// go in the background, in that order (a namespace gone means its veth is too).
pub(crate) fn wait_netns(d: &Daemon, n: usize) {
    d.eventually(&format!("{n} pinned network namespaces"), || pinned_netns(d) == n);
}

pub(crate) fn pinned_netns(d: &Daemon) -> usize {
    std::fs::read_dir(d.root.join("exec/netns"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Mount points in `/proc/<pid>/mountinfo` (`self` for this process) at or below `dir`.
fn mounts_at(pid: &str, dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// Each shim's mount namespace is a copy of the host's, where every bridged container's
/// network namespace is pinned: a shim drops the others' pins (one detach of the pins' own
/// mount) and keeps its own, so its mount table does not grow with the number of containers.
/// The pins' mount outlives a daemon stop while containers run, and goes at the stop after the
/// last one.
#[test]
fn a_shim_keeps_only_its_own_network_namespace_pin_and_the_pins_mount_goes_after_the_last() {
    let mut d = daemon!();
    let names = ["p1", "p2", "p3"];
    for n in names {
        d.berth(&["run", "-d", "--name", n, "busybox", "sleep", "600"])
            .ok();
    }
    let dir = d.root.join("exec/netns");
    let ids: Vec<String> = names.iter().map(|n| inspect(&d, n, "{{.Id}}")).collect();
    let host = mounts_at("self", &dir);
    assert!(host.contains(&dir.to_string_lossy().into_owned()), "{host:?}");
    for id in &ids {
        assert!(
            host.contains(&dir.join(id).to_string_lossy().into_owned()),
            "{host:?}"
        );
    }
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 3);
    let mut kept = Vec::new();
    for pid in shims {
        let pins = mounts_at(&pid.to_string(), &dir);
        assert_eq!(pins.len(), 1, "shim {pid} holds {pins:?}");
        kept.push(pins[0].rsplit('/').next().unwrap().to_string());
    }
    kept.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(kept, want, "each shim keeps its own container's pin");
    // Each container is still in its own namespace: they reach each other over the bridge.
    let ip1 = inspect(&d, "p1", "{{.NetworkSettings.IPAddress}}");
    d.berth(&["exec", "p3", "ping", "-c", "1", "-W", "3", &ip1]).ok();
    // A stop with containers running keeps the pins and their mount for the next daemon.
    d.stop();
    assert_eq!(mounts_at("self", &dir).len(), 4);
    d.spawn();
    d.berth(&["exec", "p2", "ping", "-c", "1", "-W", "3", &ip1]).ok();
    d.berth(&["run", "-d", "--name", "p4", "busybox", "sleep", "600"])
        .ok();
    let p4 = inspect(&d, "p4", "{{.Id}}");
    let shim = d
        .shim_pids()
        .into_iter()
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains(&p4)))
        .expect("p4's shim");
    assert_eq!(
        mounts_at(&shim.to_string(), &dir),
        vec![dir.join(&p4).to_string_lossy().into_owned()]
    );
    // libcontainer's path opens the namespace by its pin's path, in the shim's namespace: the
    // pin kept there is what it finds.
    d.stop();
    d.spawn_with_env(&[("BERTH_RUNTIME", "libcontainer")]);
    d.berth(&["run", "--rm", "busybox", "ping", "-c", "1", "-W", "3", &ip1])
        .ok();
    d.berth(&["rm", "-f", "p1", "p2", "p3", "p4"]).ok();
    wait_netns(&d, 0);
    d.stop();
    assert_eq!(
        mounts_at("self", &dir),
        Vec::<String>::new(),
        "the pins' mount is left"
    );
}

#[test]
fn bridge_container_has_the_inspected_address_reaches_the_gateway_and_leaves_nothing_after_rm() {
    let d = daemon!();
    d.berth(&["run", "-d", "--name", "n1", "busybox", "sleep", "600"])
        .ok();
    let id = inspect(&d, "n1", "{{.Id}}");
    let ip = inspect(&d, "n1", "{{.NetworkSettings.IPAddress}}");
    let gw = inspect(&d, "n1", "{{.NetworkSettings.Gateway}}");
    let mac = inspect(&d, "n1", "{{.NetworkSettings.MacAddress}}");
    assert_eq!(gw, d.net.gateway.to_string());
    assert_eq!(inspect(&d, "n1", "{{.NetworkSettings.IPPrefixLen}}"), "24");
    assert_eq!(
        inspect(&d, "n1", "{{.NetworkSettings.Networks.bridge.IPAddress}}"),
        ip
    );
    assert_eq!(
        inspect(&d, "n1", "{{.NetworkSettings.Networks.bridge.NetworkID}}").len(),
        64
    );
    let o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        mac,
        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    );
    let eth0 = d.berth(&["exec", "n1", "ip", "addr", "show", "eth0"]).ok().stdout;
    assert!(eth0.contains(&format!("inet {ip}/24")), "{eth0}");
    assert!(eth0.contains(&mac), "{eth0}");
    let route = d.berth(&["exec", "n1", "ip", "route"]).ok().stdout;
    assert!(route.contains(&format!("default via {gw}")), "{route}");
    // The network has no IPv6: neither end of the veth pair gets an IPv6 address (address
    // generation off), so no interface floods the bridge with IPv6 multicast; `lo` keeps `::1`.
    assert!(!eth0.contains("inet6"), "{eth0}");
    let gen_mode = d
        .berth(&["exec", "n1", "cat", "/proc/sys/net/ipv6/conf/eth0/addr_gen_mode"])
        .ok()
        .out()
        .to_string();
    assert_eq!(gen_mode, "1", "eth0's IPv6 address generation is not off");
    let lo = d.berth(&["exec", "n1", "ip", "addr", "show", "lo"]).ok().stdout;
    assert!(lo.contains("inet6 ::1/128"), "{lo}");
    let host_end = format!("vb{}", &id[..12]);
    let mode = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{host_end}/addr_gen_mode"));
    assert_eq!(mode.unwrap().trim(), "1");
    let out = std::process::Command::new("ip")
        .args(["-6", "addr", "show", "dev", &host_end])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    d.berth(&["exec", "n1", "ping", "-c", "1", "-W", "3", &gw]).ok();
    // hosts carries the container's own address.
    let hosts = d.berth(&["exec", "n1", "cat", "/etc/hosts"]).ok().stdout;
    assert!(hosts.contains(&format!("{ip}\t{}", &id[..12])), "{hosts}");
    // A second container gets the next address.
    d.berth(&["run", "-d", "--name", "n2", "busybox", "sleep", "600"])
        .ok();
    let ip2 = inspect(&d, "n2", "{{.NetworkSettings.IPAddress}}");
    assert_ne!(ip, ip2);
    d.berth(&["exec", "n2", "ping", "-c", "1", "-W", "3", &ip]).ok();
    wait_netns(&d, 2);
    assert!(links().contains(&format!("vb{}", &id[..12])));

    d.berth(&["rm", "-f", "n1", "n2"]).ok();
    wait_netns(&d, 0);
    assert!(!links().contains(&format!("vb{}", &id[..12])), "{}", links());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("netns/{id}")), "netns mount left");
    // A stopped container shows no address, and its address is free again.
    d.berth(&["run", "--name", "n3", "busybox", "true"]).ok();
    assert_eq!(inspect(&d, "n3", "{{.NetworkSettings.IPAddress}}"), "");
    // n3's lease goes with its background teardown.
    let n3 = inspect(&d, "n3", "{{.Id}}");
    d.eventually("n3's lease released", || {
        !super::network_teardown::leases(&d).contains(&n3)
    });
    d.berth(&["run", "-d", "--name", "n4", "busybox", "sleep", "600"])
        .ok();
    assert_eq!(
        inspect(&d, "n4", "{{.NetworkSettings.IPAddress}}"),
        ip,
        "the first address is reused once released"
    );
}

#[test]
fn none_and_host_networks_get_no_bridge_endpoint() {
    let d = daemon!();
    let r = d
        .berth(&["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"])
        .ok();
    assert!(!r.stdout.contains("eth0"), "{}", r.stdout);
    assert!(r.stdout.contains("lo"), "{}", r.stdout);
    wait_netns(&d, 0);
}

#[test]
fn published_port_answers_from_loopback_and_from_a_test_namespace_and_after_a_daemon_restart() {
    let mut d = daemon!();
    let (p_lo, p_any) = (free_port(), free_port());
    start_httpd(
        &d,
        "web",
        &[&format!("127.0.0.1:{p_lo}:80"), &format!("{p_any}:80"), "80"],
    );
    let lo = format!("127.0.0.1:{p_lo}");
    d.eventually("httpd answers on the loopback-bound port", || {
        http_get(&lo).is_ok_and(|b| b.contains("hello-from-berth"))
    });
    assert!(http_get(&format!("127.0.0.1:{p_any}"))
        .unwrap()
        .contains("hello-from-berth"));
    // The random port: inspect, `port`, and ps show it.
    let ports = inspect(&d, "web", "{{json .NetworkSettings.Ports}}");
    let v: serde_json::Value = serde_json::from_str(&ports).unwrap();
    let bindings = v["80/tcp"].as_array().unwrap();
    assert_eq!(bindings.len(), 3, "{ports}");
    let random: u16 = bindings
        .iter()
        .map(|b| b["HostPort"].as_str().unwrap().parse::<u16>().unwrap())
        .find(|p| *p != p_lo && *p != p_any)
        .unwrap();
    assert!(random >= 1024, "{ports}");
    assert!(http_get(&format!("127.0.0.1:{random}"))
        .unwrap()
        .contains("hello-from-berth"));
    let port = d.berth(&["port", "web", "80"]).ok().stdout;
    assert!(port.contains(&format!("127.0.0.1:{p_lo}")), "{port}");
    assert!(port.contains(&format!("0.0.0.0:{p_any}")), "{port}");
    let ps = d.berth(&["ps", "--format", "{{.Ports}}"]).ok().stdout;
    assert!(ps.contains(&format!("127.0.0.1:{p_lo}->80/tcp")), "{ps}");
    assert_eq!(
        inspect(&d, "web", "{{json .HostConfig.PortBindings}}"),
        format!("{{\"80/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{p_lo}\"}},{{\"HostIp\":\"\",\"HostPort\":\"{p_any}\"}},{{\"HostIp\":\"\",\"HostPort\":\"\"}}]}}")
    );

    // From another network namespace, to the host's address on the link to it.
    let ns = berth_testkit::netns::Netns::create();
    // (python3: the host's static busybox wget crashes on this machine.)
    let url = format!("http://{}:{p_any}/", ns.host_ip);
    let out = ns
        .command("python3")
        .args(["-c", "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", &url])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello-from-berth"),
        "from a test namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A restarted daemon keeps the running container's port answering.
    d.stop();
    assert!(
        http_get(&lo).unwrap().contains("hello-from-berth"),
        "while berthd is down"
    );
    d.spawn();
    assert!(
        http_get(&lo).unwrap().contains("hello-from-berth"),
        "after berthd restarted"
    );

    // Released on stop.
    d.berth(&["stop", "-t", "1", "web"]).ok();
    assert!(http_get(&lo).is_err(), "the port still answers after stop");
    assert!(!nft_table(&d).contains(&format!("{p_any}")), "{}", nft_table(&d));
    d.berth(&["rm", "web"]).ok();
    wait_netns(&d, 0);
}

#[test]
fn a_host_port_already_in_use_is_dockers_error_and_leaves_nothing() {
    let d = daemon!();
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let r = d.berth(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "600",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("address already in use"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("driver failed programming external connectivity"),
        "{}",
        r.stderr
    );
    wait_netns(&d, 0);
    assert!(!nft_table(&d).contains(&port.to_string()));
    drop(held);
    // Another container holding the port: "port is already allocated".
    let p2 = free_port();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "first",
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let r = d.berth(&[
        "run",
        "-d",
        "--name",
        "second",
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sleep",
        "600",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&format!(
            "Bind for 0.0.0.0:{p2} failed: port is already allocated"
        )),
        "{}",
        r.stderr
    );
    wait_netns(&d, 1);
    // A bad spec is refused at create.
    let r = d.berth(&["create", "-p", "80/icmp", "busybox"]);
    assert_ne!(r.code, 0);
}

/// Ports a test put on a bridge: the host ends of veth pairs, down, whose peers live in a
/// network namespace of the test's own. Deleting that namespace deletes every pair, even when
/// the test fails (deleting the bridge would leave them).
struct Ports {
    netns: String,
    names: Vec<String>,
}

impl Ports {
    fn batch(lines: impl Iterator<Item = String>) {
        let mut child = std::process::Command::new("ip")
            .args(["-force", "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        for l in lines {
            writeln!(input, "{l}").unwrap();
        }
        drop(input);
        child.wait().unwrap();
    }

    /// `n` more ports on `bridge`.
    fn on(bridge: &str, n: usize) -> Ports {
        let tag = std::process::id() % 100_000;
        let ports = Ports {
            netns: format!("bfull{tag}"),
            names: (0..n).map(|i| format!("bf{tag:05}x{i:04}")).collect(),
        };
        let made = std::process::Command::new("ip")
            .args(["netns", "add", &ports.netns])
            .status()
            .unwrap();
        assert!(made.success(), "ip netns add {}", ports.netns);
        Ports::batch(ports.names.iter().enumerate().map(|(i, name)| {
            format!(
                "link add {name} master {bridge} type veth peer name p{i} netns {}",
                ports.netns
            )
        }));
        ports
    }

    fn remove_one(&mut self) {
        if let Some(n) = self.names.pop() {
            Ports::batch(std::iter::once(format!("link del {n}")));
        }
    }
}

impl Drop for Ports {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn bridge_ports(bridge: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// A Linux bridge takes at most 1023 ports. A container that would be one too many is refused
/// with a message that says so and what to do, and leaves nothing behind: once a port is free,
/// the next one starts (its address, namespace and veth were not leaked).
#[test]
fn a_full_bridge_is_refused_with_its_reason_and_leaves_nothing() {
    let d = daemon!();
    let bridge = d.net.bridge.clone();
    let mut ports = Ports::on(&bridge, 1023 - bridge_ports(&bridge));
    assert_eq!(bridge_ports(&bridge), 1023, "the bridge could not be filled");
    let r = d.berth(&["run", "--rm", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "the network's bridge {bridge} has no free port: a Linux bridge takes at most 1023 endpoints"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("another network"), "{}", r.stderr);
    let r = d.berth(&["run", "-d", "--name", "late", "busybox", "sleep", "600"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_eq!(inspect(&d, "late", "{{.State.Status}}"), "created");
    wait_netns(&d, 0);
    assert_eq!(
        bridge_ports(&bridge),
        1023,
        "a veth of the refused starts was left"
    );
    ports.remove_one();
    d.berth(&["start", "late"]).ok();
    assert_eq!(inspect(&d, "late", "{{.State.Status}}"), "running");
    let ip = inspect(&d, "late", "{{.NetworkSettings.IPAddress}}");
    let g = d.net.gateway.octets();
    assert_eq!(
        ip,
        format!("{}.{}.{}.2", g[0], g[1], g[2]),
        "the address of the refused starts was leaked"
    );
    d.berth(&["rm", "-f", "late"]).ok();
    wait_netns(&d, 0);
}

/// A /24 of the test range no route uses, as `--subnet`.
pub(crate) fn test_subnet() -> (String, String) {
    let t = berth_e2e::TestNet::new();
    let o = t.gateway.octets();
    (format!("{}.{}.{}.0/24", o[0], o[1], o[2]), t.gateway.to_string())
}

#[test]
fn network_create_ls_inspect_rm_and_bad_input_as_docker() {
    let d = daemon!();
    let (subnet, gw) = test_subnet();
    let id = d
        .berth(&[
            "network", "create", "--subnet", &subnet, "--label", "a=b", "front",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ls = d.berth(&["network", "ls"]).ok().stdout;
    for name in ["bridge", "host", "none", "front"] {
        assert!(
            ls.lines().any(|l| l.split_whitespace().nth(1) == Some(name)),
            "{ls}"
        );
    }
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    let q = d
        .berth(&["network", "ls", "-q", "--no-trunc", "-f", "label=a=b"])
        .ok()
        .out()
        .to_string();
    assert_eq!(q, id);
    let f = d
        .berth(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}}",
            "-f",
            "name=front",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(f, "front bridge");
    // dockerd's `none` network is its `null` driver's; a `type` other than builtin/custom is
    // refused in dockerd's words.
    assert_eq!(
        d.berth(&["network", "ls", "--format", "{{.Driver}}", "-f", "name=none"])
            .ok()
            .out(),
        "null"
    );
    let bad = d.berth(&["network", "ls", "-f", "type=nope"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalid filter: 'type'='nope'"),
        "{}",
        bad.stderr
    );
    assert_eq!(
        d.berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Labels.a}} {{.Driver}}",
            "front"
        ])
        .ok()
        .out(),
        format!("{subnet} b bridge")
    );
    // The bridge exists, with the gateway address.
    let bridge = format!("br-{}", &id[..12]);
    let addr = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", &bridge])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addr.stdout).contains(&format!("inet {gw}/24")));
    // The built-in bridge is inspectable with the daemon's subnet.
    let b = d
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            "bridge",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(
        b,
        format!("{}.0/24", d.net.gateway.to_string().rsplit_once('.').unwrap().0)
    );

    // Bad input: docker's errors, nothing created.
    let r = d.berth(&["network", "create", "--subnet", &subnet, "front"]);
    assert!(
        r.stderr.contains("network with name front already exists"),
        "{}",
        r.stderr
    );
    let r = d.berth(&["network", "create", "--subnet", &subnet, "other"]);
    assert!(
        r.stderr
            .contains("Pool overlaps with other one on this address space"),
        "{}",
        r.stderr
    );
    let (s2, _) = test_subnet();
    let r = d.berth(&[
        "network",
        "create",
        "--subnet",
        &s2,
        "--gateway",
        "10.255.255.1",
        "other",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("no matching subnet for gateway 10.255.255.1"),
        "{}",
        r.stderr
    );
    let r = d.berth(&["network", "create", "--subnet", "10.0.0.0/33", "other"]);
    assert!(
        // dockerd 20.10's words.
        r.stderr
            .contains("Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"),
        "{}",
        r.stderr
    );
    assert!(!d.berth(&["network", "ls"]).ok().stdout.contains("other"));
    let r = d.berth(&["network", "rm", "bridge"]);
    assert!(
        r.stderr
            .contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        r.stderr
    );

    // In use: 403 with docker's words; then removed, with its bridge.
    d.berth(&[
        "run",
        "-d",
        "--name",
        "u1",
        "--network",
        "front",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let r = d.berth(&["network", "rm", "front"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("network front id {id} has active endpoints")),
        "{}",
        r.stderr
    );
    d.berth(&["rm", "-f", "u1"]).ok();
    assert_eq!(d.berth(&["network", "rm", "front"]).ok().out(), "front");
    assert!(!links().contains(&bridge), "{}", links());
    let r = d.berth(&["network", "inspect", "front"]);
    assert!(r.stderr.contains("network front not found"), "{}", r.stderr);
    // prune removes unused networks only.
    let (s3, _) = test_subnet();
    d.berth(&["network", "create", "--subnet", &s3, "spare"]).ok();
    let p = d.berth(&["network", "prune", "-f"]).ok().stdout;
    assert!(p.contains("spare"), "{p}");
    assert!(!d.berth(&["network", "ls"]).ok().stdout.contains("spare"));
}

#[test]
fn containers_on_a_user_network_talk_and_other_networks_and_internal_ones_are_cut_off() {
    let d = daemon!();
    let (sa, gwa) = test_subnet();
    let (sb, _) = test_subnet();
    let (si, _) = test_subnet();
    d.berth(&["network", "create", "--subnet", &sa, "neta"]).ok();
    d.berth(&["network", "create", "--subnet", &sb, "netb"]).ok();
    d.berth(&["network", "create", "--internal", "--subnet", &si, "neti"])
        .ok();
    for (name, net) in [("a1", "neta"), ("a2", "neta"), ("b1", "netb"), ("i1", "neti")] {
        d.berth(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "busybox",
            "sleep",
            "600",
        ])
        .ok();
    }
    let ip = |name: &str, net: &str| {
        inspect(
            &d,
            name,
            &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
        )
    };
    let (a2, b1) = (ip("a2", "neta"), ip("b1", "netb"));
    assert!(a2.starts_with(&sa[..sa.len() - 4]), "{a2} in {sa}");
    // User networks leave the top-level fields empty, as docker does.
    assert_eq!(inspect(&d, "a2", "{{.NetworkSettings.IPAddress}}"), "");
    let aliases = inspect(&d, "a2", "{{json .NetworkSettings.Networks.neta.Aliases}}");
    let short = &inspect(&d, "a2", "{{.Id}}")[..12];
    assert!(aliases.contains(short), "{aliases}");
    // Same network: reachable; the gateway too.
    d.berth(&["exec", "a1", "ping", "-c", "1", "-W", "3", &a2]).ok();
    d.berth(&["exec", "a1", "ping", "-c", "1", "-W", "3", &gwa]).ok();
    // Another network: not.
    let r = d.berth(&["exec", "a1", "ping", "-c", "1", "-W", "2", &b1]);
    assert_ne!(r.code, 0, "a1 reached b1 on another network: {}", r.stdout);
    // Internal: no route out of its subnet.
    let route = d.berth(&["exec", "i1", "ip", "route"]).ok().stdout;
    assert!(!route.contains("default"), "{route}");
    let r = d.berth(&["exec", "i1", "ping", "-c", "1", "-W", "2", &a2]);
    assert_ne!(r.code, 0);
    // inspect lists the endpoints.
    let c = d
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range $k, $v := .Containers}}{{$v.Name}} {{end}}",
            "neta",
        ])
        .ok()
        .stdout;
    assert!(c.contains("a1") && c.contains("a2"), "{c}");
}

#[test]
fn docker_cli_and_docker_py_drive_networks() {
    let d = daemon!();
    let (s1, _) = test_subnet();
    let (s2, _) = test_subnet();
    d.docker(&["network", "create", "--subnet", &s1, "--label", "wire=1", "dnet"])
        .ok();
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}}"]).ok().stdout;
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        vec!["bridge", "dnet", "host", "none"],
        "{ls}"
    );
    assert_eq!(
        d.docker(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}}",
            "dnet"
        ])
        .ok()
        .out(),
        "dnet bridge local"
    );
    d.docker(&[
        "run",
        "-d",
        "--name",
        "dc",
        "--network",
        "dnet",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ip = d
        .docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.dnet.IPAddress}}",
            "dc",
        ])
        .ok()
        .out()
        .to_string();
    assert!(!ip.is_empty());
    let p = d.docker(&["run", "--rm", "-p", "127.0.0.1::80", "busybox", "true"]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let r = d.docker(&["network", "rm", "dnet"]);
    assert!(r.stderr.contains("has active endpoints"), "{}", r.stderr);
    d.docker(&["rm", "-f", "dc"]).ok();
    d.docker(&["network", "rm", "dnet"]).ok();
    let out = d.python(&format!(
        r#"
import docker
from docker.types import IPAMConfig, IPAMPool
c = docker.from_env()
n = c.networks.create("pynet", driver="bridge", labels={{"wire": "1"}},
                      ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="{s2}")]))
assert n.name == "pynet", n.attrs
assert n.attrs["IPAM"]["Config"][0]["Subnet"] == "{s2}", n.attrs
assert n.attrs["IPAM"]["Options"] is None, n.attrs
names = sorted(x.name for x in c.networks.list())
assert names == ["bridge", "host", "none", "pynet"], names
ct = c.containers.run("busybox", ["sleep", "60"], detach=True, network="pynet")
n.reload()
assert ct.id in n.attrs["Containers"], n.attrs
ct.remove(force=True)
n.remove()
try:
    c.networks.get("pynet")
    raise SystemExit("still there")
except docker.errors.NotFound:
    pass
# berth's networks are IPv4 only: asking for IPv6 is refused, not ignored.
try:
    c.networks.create("py6", enable_ipv6=True)
    raise SystemExit("an IPv6 network was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 501 and "IPv4 only" in str(e), e
assert "py6" not in [x.name for x in c.networks.list()]
print(c.networks.prune())
"#
    ));
    assert!(
        out.stdout.contains("NetworksDeleted"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}

/// A DNS resolver of the test's own on 127.0.0.x:53, UDP and TCP: answers every A query with
/// 192.0.2.7 and records the names asked (`seen`; over TCP also `seen_tcp`). `big.berth-test`
/// is "too big" for UDP: the UDP reply is truncated (TC, no answer), the TCP one says 192.0.2.8.
pub(crate) struct TestResolver {
    pub(crate) addr: String,
    pub(crate) seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub(crate) seen_tcp: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The resolver's reply to query `q`: the name asked and the response.
fn test_reply(q: &[u8], tcp: bool) -> Option<(String, Vec<u8>)> {
    // The question: labels from byte 12 to the zero, then type and class.
    let n = q.len();
    let mut i = 12;
    let mut labels = Vec::new();
    while i < n && q[i] != 0 {
        let l = q[i] as usize;
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + l)?).into_owned());
        i += 1 + l;
    }
    let end = i + 5;
    let name = labels.join(".");
    let mut r = q.get(..end)?.to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[6] = 0;
    r[7] = 1;
    r[8..12].copy_from_slice(&[0, 0, 0, 0]);
    let last = if name == "big.berth-test" {
        if !tcp {
            r[2] |= 0x02;
            r[7] = 0;
            return Some((name, r));
        }
        8
    } else {
        7
    };
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, last]);
    Some((name, r))
}

impl TestResolver {
    pub(crate) fn start() -> TestResolver {
        let (sock, tcp, addr) = (2..250u8)
            .map(|n| format!("127.0.{}.{n}", std::process::id() % 200 + 20))
            .find_map(|a| {
                let u = std::net::UdpSocket::bind((a.as_str(), 53)).ok()?;
                let t = std::net::TcpListener::bind((a.as_str(), 53)).ok()?;
                Some((u, t, a))
            })
            .expect("a free 127.0.x.y:53");
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_tcp = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !st2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((name, r)) = test_reply(&buf[..n], false) {
                    s2.lock().unwrap().push(name);
                    let _ = sock.send_to(&r, peer);
                }
            }
        });
        let (s3, t3, st3) = (seen.clone(), seen_tcp.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st3.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut c, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some((name, r)) = test_reply(&q, true) {
                    s3.lock().unwrap().push(name.clone());
                    t3.lock().unwrap().push(name);
                    let mut out = (r.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&r);
                    let _ = c.write_all(&out);
                }
            }
        });
        TestResolver {
            addr,
            seen,
            seen_tcp,
            stop,
        }
    }
}

impl Drop for TestResolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn containers_on_a_user_network_resolve_each_other_and_forward_other_names_to_the_daemons_dns() {
    let mut d = daemon!();
    let resolver = TestResolver::start();
    d.net.dns = resolver.addr.clone();
    d.stop();
    d.spawn();
    let (s, _) = test_subnet();
    d.berth(&["network", "create", "--subnet", &s, "dnsnet"]).ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "dnsnet",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "dnsnet",
        "--network-alias",
        "web",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ip2 = inspect(&d, "c2", "{{.NetworkSettings.Networks.dnsnet.IPAddress}}");
    let short2 = inspect(&d, "c2", "{{.Id}}")[..12].to_string();
    let resolv = d.berth(&["exec", "c1", "cat", "/etc/resolv.conf"]).ok().stdout;
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    for name in ["c2", "web", short2.as_str()] {
        let r = d.berth(&["exec", "c1", "nslookup", name]).ok().stdout;
        assert!(
            r.contains(&format!("Address: {ip2}")) || r.contains(&format!("Address 1: {ip2}")),
            "{name}: {r}"
        );
    }
    // Not a container name: forwarded (from the host's namespace) to the daemon's dns server.
    let r = d
        .berth(&["exec", "c1", "nslookup", "outside.berth-test"])
        .ok()
        .stdout;
    assert!(r.contains("192.0.2.7"), "{r}");
    assert!(
        resolver
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == "outside.berth-test"),
        "{:?}",
        resolver.seen
    );
    // A restarted daemon serves the running containers again.
    d.stop();
    d.spawn();
    let r = d.berth(&["exec", "c1", "nslookup", "web"]).ok().stdout;
    assert!(r.contains(&ip2), "after a daemon restart: {r}");
    // The default bridge has no embedded DNS: names of other containers do not resolve there.
    d.berth(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"])
        .ok();
    let resolv = d.berth(&["exec", "plain", "cat", "/etc/resolv.conf"]).ok().stdout;
    assert!(
        resolv.contains(&format!("nameserver {}", resolver.addr)),
        "{resolv}"
    );
}

#[test]
fn connect_and_disconnect_add_and_remove_an_interface_its_address_and_its_names() {
    let d = daemon!();
    let (sa, _) = test_subnet();
    let (sb, _) = test_subnet();
    let pre_b = sb.trim_end_matches("0/24").to_string();
    let pre_a = sa.trim_end_matches("0/24").to_string();
    d.berth(&["network", "create", "--subnet", &sa, "neta"]).ok();
    d.berth(&["network", "create", "--subnet", &sb, "netb"]).ok();
    // --ip on a user network; refused on the default bridge.
    d.berth(&[
        "run",
        "-d",
        "--name",
        "x1",
        "--network",
        "neta",
        "--ip",
        &format!("{pre_a}77"),
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(
        inspect(&d, "x1", "{{.NetworkSettings.Networks.neta.IPAddress}}"),
        format!("{pre_a}77")
    );
    let r = d.berth(&["run", "--rm", "--ip", "10.1.2.3", "busybox", "true"]);
    assert!(
        r.stderr
            .contains("user specified IP address is supported on user defined networks only"),
        "{}",
        r.stderr
    );
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "neta",
        "--ip",
        &format!("{pre_a}77"),
        "busybox",
        "true",
    ]);
    assert!(r.stderr.contains("Address already in use"), "{}", r.stderr);
    d.berth(&[
        "run",
        "-d",
        "--name",
        "y1",
        "--network",
        "netb",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let yb = inspect(&d, "y1", "{{.NetworkSettings.Networks.netb.IPAddress}}");
    assert_ne!(
        d.berth(&["exec", "x1", "ping", "-c", "1", "-W", "2", &yb]).code,
        0
    );

    d.berth(&[
        "network",
        "connect",
        "--alias",
        "xa",
        "--ip",
        &format!("{pre_b}50"),
        "netb",
        "x1",
    ])
    .ok();
    assert_eq!(
        inspect(&d, "x1", "{{.NetworkSettings.Networks.netb.IPAddress}}"),
        format!("{pre_b}50")
    );
    let eth1 = d
        .berth(&["exec", "x1", "ip", "-4", "addr", "show", "eth1"])
        .ok()
        .stdout;
    assert!(eth1.contains(&format!("inet {pre_b}50/24")), "{eth1}");
    d.berth(&["exec", "x1", "ping", "-c", "1", "-W", "3", &yb]).ok();
    let r = d.berth(&["exec", "y1", "nslookup", "xa"]).ok().stdout;
    assert!(r.contains(&format!("{pre_b}50")), "{r}");
    let c = d
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range $k, $v := .Containers}}{{$v.Name}} {{end}}",
            "netb",
        ])
        .ok()
        .stdout;
    assert!(c.contains("x1") && c.contains("y1"), "{c}");
    // Errors, in docker's words.
    let r = d.berth(&["network", "connect", "netb", "x1"]);
    assert!(
        r.stderr
            .contains("endpoint with name x1 already exists in network netb"),
        "{}",
        r.stderr
    );
    d.berth(&[
        "run",
        "-d",
        "--name",
        "h1",
        "--network",
        "host",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let r = d.berth(&["network", "connect", "neta", "h1"]);
    assert!(
        r.stderr
            .contains("container cannot be disconnected from host network or connected to host network"),
        "{}",
        r.stderr
    );

    d.berth(&["network", "disconnect", "netb", "x1"]).ok();
    let links = d.berth(&["exec", "x1", "ip", "-o", "link"]).ok().stdout;
    assert!(!links.contains("eth1"), "{links}");
    assert_ne!(
        d.berth(&["exec", "x1", "ping", "-c", "1", "-W", "2", &yb]).code,
        0
    );
    let r = d.berth(&["network", "disconnect", "netb", "x1"]);
    assert!(
        r.stderr.contains("is not connected to network netb"),
        "{}",
        r.stderr
    );

    // Connected while created: the endpoint comes with the start, and goes with the stop.
    d.berth(&[
        "create",
        "--name",
        "z1",
        "--network",
        "neta",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.berth(&["network", "connect", "netb", "z1"]).ok();
    d.berth(&["start", "z1"]).ok();
    let eth1 = d
        .berth(&["exec", "z1", "ip", "-4", "addr", "show", "eth1"])
        .ok()
        .stdout;
    assert!(eth1.contains(&format!("inet {pre_b}")), "{eth1}");
    d.berth(&["stop", "-t", "1", "z1"]).ok();
    assert_eq!(
        inspect(&d, "z1", "{{.NetworkSettings.Networks.netb.IPAddress}}"),
        ""
    );
    d.berth(&["rm", "-f", "x1", "y1", "z1", "h1"]).ok();
    d.berth(&["network", "rm", "neta", "netb"]).ok();
    wait_netns(&d, 0);

    // docker-py's connect/disconnect.
    let (sc, _) = test_subnet();
    let out = d.python(&format!(
        r#"
import docker
from docker.types import IPAMConfig, IPAMPool
c = docker.from_env()
n = c.networks.create("pyc", ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="{sc}")]))
ct = c.containers.run("busybox", ["sleep", "60"], detach=True)
n.connect(ct, aliases=["pyalias"])
ct.reload()
assert "pyc" in ct.attrs["NetworkSettings"]["Networks"], ct.attrs["NetworkSettings"]
assert "pyalias" in ct.attrs["NetworkSettings"]["Networks"]["pyc"]["Aliases"]
n.disconnect(ct)
ct.reload()
assert "pyc" not in ct.attrs["NetworkSettings"]["Networks"]
ct.remove(force=True)
n.remove()
print("ok")
"#
    ));
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
}

/// Deletes the scratch `table ip filter` this test made, even when it fails.
struct FilterTableGuard;

impl Drop for FilterTableGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", "filter"])
            .status();
    }
}

fn docker_user() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "chain", "ip", "filter", "DOCKER-USER"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where dockerd runs, its FORWARD policy drops berth's traffic; berth accepts its bridges in
/// Docker's DOCKER-USER chain (and only there), follows network create/rm, and takes its rules
/// away when it stops. Docker's chain is stood in for by an empty one (a real dockerd would
/// change the whole machine's forwarding); a machine with a real one is left alone.
#[test]
fn docker_user_gets_accept_rules_for_berths_bridges_and_loses_them_when_berth_stops() {
    if !berth_e2e::require_root(module_path!()) {
        return;
    }
    let exists = std::process::Command::new("nft")
        .args(["list", "table", "ip", "filter"])
        .output()
        .unwrap();
    if exists.status.success() {
        eprintln!("skipped: this machine has an ip filter table (a real Docker or iptables); not touched");
        return;
    }
    let st = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"add table ip filter\nadd chain ip filter DOCKER-USER\n")?;
            c.wait()
        })
        .unwrap();
    assert!(st.success());
    let _guard = FilterTableGuard;
    let mut d = berth_e2e::Daemon::start();
    let mark = format!("comment \"berth:{}\"", d.net.bridge);
    let rules = docker_user();
    assert!(
        rules.contains(&format!("iifname \"{}\"", d.net.bridge)) && rules.contains(&mark),
        "{rules}"
    );
    assert!(
        rules.contains(&format!("oifname \"{}\"", d.net.bridge)),
        "{rules}"
    );
    let (s, _) = test_subnet();
    let id = d
        .berth(&["network", "create", "--subnet", &s, "du"])
        .ok()
        .out()
        .to_string();
    let br = format!("br-{}", &id[..12]);
    assert!(
        docker_user().contains(&format!("iifname \"{br}\"")),
        "{}",
        docker_user()
    );
    d.berth(&["network", "rm", "du"]).ok();
    assert!(!docker_user().contains(&br), "{}", docker_user());
    d.stop();
    assert!(
        !docker_user().contains(&mark),
        "berth's rules outlived berthd: {}",
        docker_user()
    );
    d.spawn();
    assert!(docker_user().contains(&mark));
}

#[test]
fn mac_address_sets_eth0_and_inspect_and_a_bad_one_is_refused() {
    let d = daemon!();
    let r = d
        .berth(&[
            "run",
            "--name",
            "mac",
            "--mac-address",
            "92:d0:c6:0a:29:33",
            "busybox",
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .ok();
    assert_eq!(r.out(), "92:d0:c6:0a:29:33");
    let inspect = d.berth(&["inspect", "-f", "{{.Config.MacAddress}}", "mac"]).ok();
    assert_eq!(inspect.out(), "92:d0:c6:0a:29:33");
    d.berth(&["rm", "mac"]).ok();
    let bad = d.berth(&[
        "run",
        "--rm",
        "--mac-address",
        "01:00:5e:00:00:01",
        "busybox",
        "true",
    ]);
    assert_eq!(bad.code, 125);
    assert!(
        bad.stderr
            .contains("01:00:5e:00:00:01 is not a valid mac address"),
        "{}",
        bad.stderr
    );
    assert_eq!(d.berth(&["ps", "-aq"]).ok().out(), "");
}

/// `network create -o`: the bridge driver's MTU, `enable_icc`, `enable_ip_masquerade` and
/// `host_binding_ipv4` are applied (they were recorded and ignored); another
/// `com.docker.network.*` option is refused.
#[test]
fn bridge_options_mtu_icc_and_masquerade_are_applied() {
    let d = daemon!();
    let (subnet, _) = test_subnet();
    // enable_icc=false needs bridged frames to meet the rules (br_netfilter); without it the
    // option is refused rather than recorded and ineffective.
    let br_nf = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .is_ok_and(|v| v.trim() == "1");
    let mut args = vec![
        "network",
        "create",
        "--subnet",
        &subnet,
        "-o",
        "com.docker.network.driver.mtu=1400",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "closed",
    ];
    if !br_nf {
        let r = d.berth(&args);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("needs br_netfilter"), "{}", r.stderr);
        args.retain(|a| *a != "com.docker.network.bridge.enable_icc=false");
        args.remove(args.len() - 4);
    }
    d.berth(&args).ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "closed",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let ip1 = d
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.closed.IPAddress}}",
            "c1",
        ])
        .ok()
        .out()
        .to_string();
    let mtu = d
        .berth(&[
            "run",
            "--rm",
            "--network",
            "closed",
            "busybox",
            "cat",
            "/sys/class/net/eth0/mtu",
        ])
        .ok();
    assert_eq!(mtu.out(), "1400");
    let table = nft_table(&d);
    assert!(
        !table.contains(&format!("ip saddr {subnet} oifname != ")),
        "masquerade left in:\n{table}"
    );
    // Containers on it cannot reach each other (bridged traffic meets the rules through
    // br_netfilter, as Docker's do); on a network with the defaults they can.
    if br_nf {
        let ping = d.berth(&[
            "run",
            "--rm",
            "--network",
            "closed",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            &ip1,
        ]);
        assert_ne!(ping.code, 0, "icc=false let a ping through: {}", ping.stdout);
        let (open_subnet, _) = test_subnet();
        d.berth(&["network", "create", "--subnet", &open_subnet, "open"])
            .ok();
        d.berth(&[
            "run",
            "-d",
            "--name",
            "c2",
            "--network",
            "open",
            "busybox",
            "sleep",
            "300",
        ])
        .ok();
        let ip2 = d
            .berth(&[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.open.IPAddress}}",
                "c2",
            ])
            .ok()
            .out()
            .to_string();
        d.berth(&[
            "run",
            "--rm",
            "--network",
            "open",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            &ip2,
        ])
        .ok();
        d.berth(&["rm", "-f", "c2"]).ok();
        d.berth(&["network", "rm", "open"]).ok();
    } else {
        eprintln!("icc check skipped: bridge-nf-call-iptables is off on this host");
    }
    d.berth(&["rm", "-f", "c1"]).ok();
    d.berth(&["network", "rm", "closed"]).ok();
    for (opt, msg) in [
        ("com.docker.network.driver.mtu=12", "invalid MTU number: 12"),
        ("com.docker.network.bridge.enable_icc=maybe", "strconv.ParseBool"),
        (
            "com.docker.network.bridge.inhibit_ipv4=true",
            "is not supported by berth's bridge driver",
        ),
    ] {
        let r = d.berth(&["network", "create", "-o", opt, "refused"]);
        assert_ne!(r.code, 0, "{opt}");
        assert!(r.stderr.contains(msg), "{opt}: {}", r.stderr);
    }
    assert!(!d.berth(&["network", "ls"]).ok().stdout.contains("refused"));
    // host_binding_ipv4: a port published without an address binds to it.
    let (local_subnet, _) = test_subnet();
    d.berth(&[
        "network",
        "create",
        "--subnet",
        &local_subnet,
        "-o",
        "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "local",
    ])
    .ok();
    let port = free_port();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "local",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    assert_eq!(
        d.berth(&["port", "c3"]).ok().out(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let table = nft_table(&d);
    assert!(table.contains(&format!("127.0.0.1 . tcp . {port}")), "{table}");
    d.berth(&["rm", "-f", "c3"]).ok();
    d.berth(&["network", "rm", "local"]).ok();
}
