//! `network disconnect` from the network a container was created on (running or stopped), and
//! `network connect` back: the endpoint (veth, lease, names, published ports) goes and comes.

use super::network::{free_port, http_get, inspect, links, nft_table, test_subnet, wait_netns, TestResolver};

fn exec_out(d: &berth_e2e::Daemon, args: &[&str]) -> String {
    d.berth(args).ok().stdout
}

#[test]
fn disconnect_from_the_creation_network_tears_the_endpoint_down_and_connect_brings_it_back() {
    let mut d = daemon!();
    let resolver = TestResolver::start();
    d.net.dns = resolver.addr.clone();
    d.stop();
    d.spawn();
    let (s, gw) = test_subnet();
    d.berth(&["network", "create", "--subnet", &s, "dnet"]).ok();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    d.berth(&[
        "run",
        "-d",
        "--name",
        "ca",
        "--network",
        "dnet",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-a > /www/index.html && exec httpd -f -p 80 -h /www",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "cb",
        "--network",
        "dnet",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let id = inspect(&d, "ca", "{{.Id}}");
    let veth = format!("vb{}", &id[..12]);
    let ip = inspect(&d, "ca", "{{.NetworkSettings.Networks.dnet.IPAddress}}");
    let addr = format!("127.0.0.1:{port}");
    d.eventually("httpd answers on the published port", || {
        http_get(&addr).is_ok_and(|b| b.contains("hello-a"))
    });
    assert!(links().contains(&veth));
    assert!(nft_table(&d).contains(&ip), "{}", nft_table(&d));
    assert!(exec_out(&d, &["exec", "cb", "nslookup", "ca"]).contains(&ip));

    d.berth(&["network", "disconnect", "dnet", "ca"]).ok();
    assert_eq!(inspect(&d, "ca", "{{json .NetworkSettings.Networks}}"), "{}");
    assert_eq!(inspect(&d, "ca", "{{.State.Status}}"), "running");
    let members = exec_out(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{end}}",
            "dnet",
        ],
    );
    assert!(!members.contains("ca ") && members.contains("cb "), "{members}");
    assert!(!links().contains(&veth), "the veth is gone");
    assert!(
        !nft_table(&d).contains(&ip),
        "the port elements are gone: {}",
        nft_table(&d)
    );
    let inside = exec_out(&d, &["exec", "ca", "ip", "-o", "link"]);
    assert!(!inside.contains("eth0"), "{inside}");
    assert!(http_get(&addr).is_err(), "the published port is released");
    // Its names are gone from the network's DNS (the query is forwarded upstream instead).
    let r = d.berth(&["exec", "cb", "nslookup", "ca"]).stdout;
    assert!(!r.contains(&ip), "{r}");
    // The lease is released: another container can take the address.
    d.berth(&["run", "--rm", "--network", "dnet", "--ip", &ip, "busybox", "true"])
        .ok();

    // Back again: a new endpoint in the same namespace, names and published port included.
    d.berth(&["network", "connect", "dnet", "ca"]).ok();
    let ip2 = inspect(&d, "ca", "{{.NetworkSettings.Networks.dnet.IPAddress}}");
    assert!(!ip2.is_empty());
    let eth0 = exec_out(&d, &["exec", "ca", "ip", "-4", "addr", "show", "eth0"]);
    assert!(eth0.contains(&format!("inet {ip2}/24")), "{eth0}");
    assert!(exec_out(&d, &["exec", "cb", "nslookup", "ca"]).contains(&ip2));
    d.eventually("the published port answers again", || {
        http_get(&addr).is_ok_and(|b| b.contains("hello-a"))
    });

    // A stopped container: it starts with no endpoint on the network, and gets it back.
    d.berth(&["stop", "-t", "1", "ca"]).ok();
    d.berth(&["network", "disconnect", "dnet", "ca"]).ok();
    d.berth(&["start", "ca"]).ok();
    let inside = exec_out(&d, &["exec", "ca", "ip", "-o", "link"]);
    assert!(!inside.contains("eth0") && inside.contains("lo"), "{inside}");
    assert_eq!(inspect(&d, "ca", "{{json .NetworkSettings.Networks}}"), "{}");
    let r = d.berth(&["network", "disconnect", "dnet", "ca"]);
    assert!(
        r.stderr.contains("is not connected to network dnet"),
        "{}",
        r.stderr
    );
    // Its first connected network then carries the default route.
    let (s2, gw2) = test_subnet();
    d.berth(&["network", "create", "--subnet", &s2, "dnet2"]).ok();
    d.berth(&["network", "connect", "dnet2", "ca"]).ok();
    let routes = exec_out(&d, &["exec", "ca", "ip", "route"]);
    assert!(
        routes.contains(&format!("default via {gw2} dev eth1")),
        "{routes}"
    );
    // Connected back to its first network (running), eth0 takes the default route over.
    d.berth(&["network", "connect", "dnet", "ca"]).ok();
    let routes = exec_out(&d, &["exec", "ca", "ip", "route"]);
    assert!(routes.contains(&format!("default via {gw} dev eth0")), "{routes}");
    d.berth(&["network", "disconnect", "dnet2", "ca"]).ok();
    d.berth(&["network", "rm", "dnet2"]).ok();
    // Stopped: disconnect and connect back only change the record; the start follows it.
    d.berth(&["stop", "-t", "1", "ca"]).ok();
    d.berth(&["network", "disconnect", "dnet", "ca"]).ok();
    d.berth(&["network", "connect", "dnet", "ca"]).ok();
    d.berth(&["start", "ca"]).ok();
    let eth0 = exec_out(&d, &["exec", "ca", "ip", "-4", "addr", "show", "eth0"]);
    assert!(eth0.contains("inet "), "{eth0}");

    // The real docker CLI (default bridge too) and docker-py.
    d.berth(&["run", "-d", "--name", "onbridge", "busybox", "sleep", "600"])
        .ok();
    let bid = inspect(&d, "onbridge", "{{.Id}}");
    d.docker(&["network", "disconnect", "bridge", "onbridge"]).ok();
    assert_eq!(inspect(&d, "onbridge", "{{.NetworkSettings.IPAddress}}"), "");
    assert!(!links().contains(&format!("vb{}", &bid[..12])));
    d.docker(&["network", "connect", "bridge", "onbridge"]).ok();
    assert!(!inspect(&d, "onbridge", "{{.NetworkSettings.IPAddress}}").is_empty());
    let out = d.python(
        r#"
import docker
c = docker.from_env()
n = c.networks.get("dnet")
ct = c.containers.get("cb")
n.disconnect(ct)
ct.reload()
assert "dnet" not in ct.attrs["NetworkSettings"]["Networks"], ct.attrs["NetworkSettings"]
n.reload()
assert ct.id not in (n.attrs.get("Containers") or {}), n.attrs
n.connect(ct)
ct.reload()
assert ct.attrs["NetworkSettings"]["Networks"]["dnet"]["IPAddress"], ct.attrs["NetworkSettings"]
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);

    // Nothing left behind.
    d.berth(&["rm", "-f", "ca", "cb", "onbridge"]).ok();
    d.berth(&["network", "rm", "dnet"]).ok();
    wait_netns(&d, 0);
    let l = links();
    assert!(!l.contains(&veth), "{l}");
    let t = nft_table(&d);
    assert!(!t.contains(&ip) && !t.contains(&ip2), "{t}");
}
