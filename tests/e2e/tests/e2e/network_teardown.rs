//! A container's veth, namespace and lease go in the background after its exit (stop, `--rm`,
//! rm return first): rapid re-runs never collide on an address, a MAC, a veth name or a
//! namespace path, and nothing is left once the teardowns finished.

use std::process::Command;

use berth_e2e::Daemon;

use super::network::{free_port, inspect, nft_table, test_subnet, wait_netns};

/// The leases the daemon's database holds: `network address container` lines.
pub(crate) fn leases(d: &Daemon) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3\nfor r in sqlite3.connect({:?}).execute('SELECT network, address, container FROM ip_leases'): print(*r)",
            d.data_root().join("berth.db")
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The links enslaved to the test's bridge.
fn bridge_ports(bridge: &str) -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_of(ip: &str) -> String {
    let o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// `run --rm` of `eth0`'s address and MAC; the address.
fn run_rm(d: &Daemon, i: usize, opts: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend(opts);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; cat /sys/class/net/eth0/address",
    ]);
    let out = d.berth(&args).ok().stdout;
    let ip = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("run {i}: no address: {out}"))
        .to_string();
    assert!(
        out.contains(&mac_of(&ip)),
        "run {i}: MAC not derived from {ip}: {out}"
    );
    ip
}

#[test]
fn back_to_back_run_rm_on_the_bridge_never_collides_and_leaks_nothing() {
    let d = daemon!();
    let port = free_port().to_string();
    let publish = format!("{port}:80");
    // The default bridge: each run's predecessor may still be tearing down; every fifth run
    // publishes the same host port again.
    for i in 0..30 {
        let opts: &[&str] = if i % 5 == 1 { &["-p", &publish] } else { &[] };
        run_rm(&d, i, opts);
    }
    // A user network (`--ip` is for those only): every other run asks for the address the
    // previous such run just held.
    let (subnet, gw) = test_subnet();
    let o: Vec<&str> = gw.split('.').collect();
    let fixed = format!("{}.{}.{}.50", o[0], o[1], o[2]);
    d.berth(&["network", "create", "--subnet", &subnet, "tdnet"]).ok();
    for i in 0..16 {
        let opts: &[&str] = if i % 2 == 0 {
            &["--network", "tdnet", "--ip", &fixed]
        } else {
            &["--network", "tdnet"]
        };
        let ip = run_rm(&d, i, opts);
        if i % 2 == 0 {
            assert_eq!(ip, fixed, "run {i}");
        }
    }
    // Once the background teardowns finished: no veth on the bridges, no namespace, no lease,
    // no published-port element.
    wait_netns(&d, 0);
    d.eventually("every lease released", || leases(&d).trim().is_empty());
    assert_eq!(bridge_ports(&d.net.bridge).trim(), "", "veths left on the bridge");
    let br = inspect_net(&d, "tdnet");
    assert_eq!(bridge_ports(&br).trim(), "", "veths left on {br}");
    let table = nft_table(&d);
    assert!(
        !table.contains(&format!(" {port} ")),
        "port element left: {table}"
    );
    d.berth(&["network", "rm", "tdnet"]).ok();
}

fn inspect_net(d: &Daemon, name: &str) -> String {
    let id = d
        .berth(&["network", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .out()
        .to_string();
    format!("br-{}", &id[..12])
}

#[test]
fn stop_then_immediate_start_reuses_the_endpoint_of_the_same_container() {
    let d = daemon!();
    let (subnet, gw) = test_subnet();
    let o: Vec<&str> = gw.split('.').collect();
    let fixed = format!("{}.{}.{}.60", o[0], o[1], o[2]);
    d.berth(&["network", "create", "--subnet", &subnet, "againnet"])
        .ok();
    let br = inspect_net(&d, "againnet");
    d.berth(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "againnet",
        "--ip",
        &fixed,
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let id = inspect(&d, "again", "{{.Id}}");
    for round in 0..5 {
        // The same veth name, namespace path and `--ip`: the start waits for the teardown the
        // stop left running, never fails on them.
        d.berth(&["stop", "-t", "0", "again"]).ok();
        d.berth(&["start", "again"]).ok();
        assert_eq!(
            inspect(&d, "again", "{{.NetworkSettings.Networks.againnet.IPAddress}}"),
            fixed,
            "round {round}"
        );
        let addr = d
            .berth(&["exec", "again", "ip", "-4", "addr", "show", "eth0"])
            .ok()
            .stdout;
        assert!(addr.contains(&format!("inet {fixed}/")), "round {round}: {addr}");
        d.berth(&["exec", "again", "ping", "-c", "1", "-W", "3", &gw])
            .ok();
    }
    let ports = bridge_ports(&br);
    assert_eq!(ports.lines().count(), 1, "{ports}");
    assert!(ports.contains(&format!("vb{}", &id[..12])), "{ports}");
    d.berth(&["rm", "-f", "again"]).ok();
    wait_netns(&d, 0);
    d.eventually("the lease released", || leases(&d).trim().is_empty());
    assert_eq!(bridge_ports(&br).trim(), "");
    d.berth(&["network", "rm", "againnet"]).ok();
}
