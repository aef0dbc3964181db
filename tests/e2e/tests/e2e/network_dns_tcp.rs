//! The embedded DNS server over TCP (127.0.0.11:53, length-prefixed messages): the same answers
//! as over UDP, forwarding over TCP when the client asked over TCP, and a truncated UDP reply
//! from upstream fetched again over TCP.

use super::network::{inspect, test_subnet, TestResolver};

/// Asks 127.0.0.11 over one TCP connection, from inside the container's network namespace,
/// for each name's A records; prints `name ip,ip` per name.
const TCP_CLIENT: &str = r#"
import socket, struct, sys
s = socket.create_connection(("127.0.0.11", 53), timeout=10)
def recv(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("connection closed")
        b += c
    return b
for i, name in enumerate(sys.argv[1:]):
    q = struct.pack(">HHHHHH", 0x4200 + i, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s.sendall(struct.pack(">H", len(q)) + q)
    r = recv(struct.unpack(">H", recv(2))[0])
    assert struct.unpack(">H", r[:2])[0] == 0x4200 + i, "id"
    an = struct.unpack(">H", r[6:8])[0]
    p = 12
    while r[p] != 0:
        p += 1 + r[p]
    p += 5
    ips = []
    for _ in range(an):
        p += 2 if r[p] & 0xC0 == 0xC0 else 0
        t, _, _, l = struct.unpack(">HHIH", r[p:p + 10])
        p += 10
        if t == 1:
            ips.append(".".join(str(x) for x in r[p:p + 4]))
        p += l
    print(name, ",".join(ips))
"#;

#[test]
fn embedded_dns_answers_over_tcp_and_forwards_over_tcp() {
    let mut d = daemon!();
    let resolver = TestResolver::start();
    d.net.dns = resolver.addr.clone();
    d.stop();
    d.spawn();
    let (s, _) = test_subnet();
    d.berth(&["network", "create", "--subnet", &s, "tnet"]).ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "t1",
        "--network",
        "tnet",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "t2",
        "--network",
        "tnet",
        "--network-alias",
        "web",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ip2 = inspect(&d, "t2", "{{.NetworkSettings.Networks.tnet.IPAddress}}");
    let pid = inspect(&d, "t1", "{{.State.Pid}}");
    let out = std::process::Command::new("timeout")
        .args([
            "30",
            "nsenter",
            &format!("--net=/proc/{pid}/ns/net"),
            "python3",
            "-c",
            TCP_CLIENT,
        ])
        .args(["t2", "web", "outside.berth-test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("t2 {ip2}").as_str(),
            format!("web {ip2}").as_str(),
            "outside.berth-test 192.0.2.7"
        ],
        "{stdout}"
    );
    // Asked over TCP: forwarded over TCP.
    assert!(
        resolver
            .seen_tcp
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == "outside.berth-test"),
        "{:?}",
        resolver.seen_tcp
    );
    // Asked over UDP, the upstream reply truncated: berth asks again over TCP.
    let r = d.berth(&["exec", "t1", "nslookup", "big.berth-test"]).ok().stdout;
    assert!(r.contains("192.0.2.8"), "{r}");
    assert!(
        resolver
            .seen_tcp
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == "big.berth-test"),
        "{:?}",
        resolver.seen_tcp
    );
    d.berth(&["rm", "-f", "t1", "t2"]).ok();
    d.berth(&["network", "rm", "tnet"]).ok();
}
