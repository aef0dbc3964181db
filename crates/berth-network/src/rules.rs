//! berth's nftables table: one table (`table ip berth` by default) holding every rule berth
//! needs, rebuilt as one atomic batch when the set of networks changes; published ports are
//! elements of two maps, so a container's ports come and go without touching any rule.
//!
//! Layout (after netavark's): `prerouting` and `output` (nat) jump to `ports` for packets to a
//! local address; `ports` DNATs through `ports_ip` (a binding to one host address) and then
//! `ports_any` (0.0.0.0); `postrouting` masquerades each subnet's outbound traffic, hairpin
//! traffic and loopback clients; `forward` accepts replies and DNATed flows into a bridge,
//! traffic within a bridge and, unless the network is internal, out of it, and drops the rest
//! (between networks, unsolicited inbound).

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::ipam::Subnet;

/// What the rules need of a bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleNet {
    pub bridge: String,
    pub subnet: Subnet,
    pub internal: bool,
    /// Traffic between the network's containers (`com.docker.network.bridge.enable_icc`).
    pub icc: bool,
    /// Outbound traffic masqueraded (`com.docker.network.bridge.enable_ip_masquerade`).
    pub masquerade: bool,
}

/// One published port, as the maps hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// `None` for 0.0.0.0 (every local address).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The whole table, for the given networks (idempotent: `add` of what exists is a no-op, and
/// every chain is flushed and refilled in the same transaction; the port maps are kept).
pub fn table_batch(table: &str, nets: &[RuleNet]) -> String {
    let mut b = String::new();
    let t = table;
    let _ = writeln!(b, "add table ip {t}");
    for (chain, kind, hook, prio) in [
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
    ] {
        let _ = writeln!(
            b,
            "add chain ip {t} {chain} {{ type {kind} hook {hook} priority {prio}; policy accept; }}"
        );
    }
    let _ = writeln!(b, "add chain ip {t} ports");
    let _ = writeln!(
        b,
        "add map ip {t} ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}"
    );
    let _ = writeln!(b, "add map ip {t} ports_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}");
    for c in ["prerouting", "output", "postrouting", "forward", "ports"] {
        let _ = writeln!(b, "flush chain ip {t} {c}");
    }
    let _ = writeln!(
        b,
        "add rule ip {t} ports dnat ip to ip daddr . meta l4proto . th dport map @ports_ip"
    );
    let _ = writeln!(
        b,
        "add rule ip {t} ports dnat ip to meta l4proto . th dport map @ports_any"
    );
    let _ = writeln!(b, "add rule ip {t} prerouting fib daddr type local jump ports");
    let _ = writeln!(b, "add rule ip {t} output fib daddr type local jump ports");
    let all: Vec<String> = nets.iter().map(|n| format!("\"{}\"", n.bridge)).collect();
    for n in nets {
        let (br, sn) = (&n.bridge, n.subnet);
        let _ = writeln!(
            b,
            "add rule ip {t} postrouting oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade"
        );
        let _ = writeln!(
            b,
            "add rule ip {t} postrouting oifname \"{br}\" ip saddr {sn} ct status dnat masquerade"
        );
        if !n.internal && n.masquerade {
            let _ = writeln!(
                b,
                "add rule ip {t} postrouting ip saddr {sn} oifname != \"{br}\" masquerade"
            );
        }
        let _ = writeln!(
            b,
            "add rule ip {t} forward oifname \"{br}\" ct state established,related accept"
        );
        let _ = writeln!(
            b,
            "add rule ip {t} forward oifname \"{br}\" ct status dnat accept"
        );
        // (Bridged traffic reaches this chain through br_netfilter, as Docker's rules do.)
        let icc = if n.icc { "accept" } else { "drop" };
        let _ = writeln!(
            b,
            "add rule ip {t} forward iifname \"{br}\" oifname \"{br}\" {icc}"
        );
    }
    if !all.is_empty() {
        let set = all.join(", ");
        let _ = writeln!(
            b,
            "add rule ip {t} forward iifname {{ {set} }} oifname {{ {set} }} drop"
        );
        for n in nets {
            let verdict = if n.internal { "drop" } else { "accept" };
            let _ = writeln!(b, "add rule ip {t} forward iifname \"{}\" {verdict}", n.bridge);
        }
        let _ = writeln!(b, "add rule ip {t} forward oifname {{ {set} }} drop");
    }
    b
}

fn key(p: &PortRule) -> String {
    match p.host_ip {
        Some(ip) => format!("ports_ip {{ {ip} . {} . {}", p.proto, p.host_port),
        None => format!("ports_any {{ {} . {}", p.proto, p.host_port),
    }
}

/// Adds the ports' map elements.
pub fn add_ports_batch(table: &str, ports: &[PortRule]) -> String {
    let mut b = String::new();
    for p in ports {
        let _ = writeln!(
            b,
            "add element ip {table} {} : {} . {} }}",
            key(p),
            p.container_ip,
            p.container_port
        );
    }
    b
}

/// Removes the ports' map elements (one command each: the caller runs them one by one so a
/// missing element does not keep the others in).
pub fn remove_port_cmds(table: &str, ports: &[PortRule]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("delete element ip {table} {} }}\n", key(p)))
        .collect()
}

/// The handles of the rules carrying `comment "MARK"` in an nft listing made with handles.
pub fn marked_handles(listing: &str, mark: &str) -> Vec<u64> {
    let needle = format!("comment \"{mark}\"");
    listing
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.rsplit_once("# handle ")?.1.trim().parse().ok())
        .collect()
}

/// Whether the marked rules of a `DOCKER-USER` listing (with handles) are exactly `want`
/// (`(iifname|oifname, bridge)` pairs, any order, no duplicates) and all come before every
/// rule that is not a berth daemon's (Docker's `return`, a user's rules): rules behind a
/// `return` never match.
pub fn docker_user_in_sync(listing: &str, mark: &str, want: &[(&str, &str)]) -> bool {
    let needle = format!("comment \"{mark}\"");
    let mut have = Vec::new();
    let mut foreign_seen = false;
    for l in listing.lines().map(str::trim) {
        if !l.contains("# handle ") || l.starts_with("table ") || l.starts_with("chain ") {
            continue;
        }
        if !l.contains(&needle) {
            // Another berth daemon's accepts may come first (else two daemons would keep
            // moving ahead of each other); anything else may not.
            foreign_seen |= !l.contains("comment \"berth:");
            continue;
        }
        if foreign_seen {
            return false;
        }
        let mut words = l.split_whitespace();
        let (Some(dir), Some(bridge)) = (words.next(), words.next()) else {
            return false;
        };
        have.push((dir.to_string(), bridge.trim_matches('"').to_string()));
    }
    let mut want: Vec<(String, String)> = want.iter().map(|(d, b)| (d.to_string(), b.to_string())).collect();
    have.sort();
    want.sort();
    have == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_batch_isolates_networks_and_masquerades_only_outbound_of_non_internal_ones() {
        let nets = vec![
            RuleNet {
                bridge: "b0".into(),
                subnet: "10.1.0.0/16".parse().unwrap(),
                internal: false,
                icc: true,
                masquerade: true,
            },
            RuleNet {
                bridge: "b1".into(),
                subnet: "10.2.0.0/24".parse().unwrap(),
                internal: true,
                icc: true,
                masquerade: true,
            },
        ];
        let b = table_batch("berth", &nets);
        assert!(b.contains("ip saddr 10.1.0.0/16 oifname != \"b0\" masquerade"));
        assert!(!b.contains("ip saddr 10.2.0.0/24 oifname != \"b1\" masquerade"));
        assert!(b.contains("forward iifname { \"b0\", \"b1\" } oifname { \"b0\", \"b1\" } drop"));
        assert!(b.contains("forward iifname \"b1\" drop"));
        let drop_between = b.find("oifname { \"b0\", \"b1\" } drop").unwrap();
        let within = b.find("iifname \"b0\" oifname \"b0\" accept").unwrap();
        assert!(
            within < drop_between,
            "traffic within a bridge is accepted before the isolation drop"
        );
    }

    #[test]
    fn only_rules_marked_as_berths_are_picked_from_docker_user() {
        let l = "table ip filter {\n\tchain DOCKER-USER { # handle 5\n\t\tiifname \"b0\" counter packets 0 bytes 0 accept comment \"berth\" # handle 12\n\t\tcounter packets 3 bytes 9 return # handle 7\n\t\tiifname \"x\" accept comment \"berthx\" # handle 13\n\t}\n}\n";
        assert_eq!(marked_handles(l, "berth"), vec![12]);
    }

    #[test]
    fn docker_user_is_in_sync_only_with_exactly_the_wanted_rules_ahead_of_dockers_return() {
        let rule = |dir: &str, b: &str, h: u32| {
            format!("\t\t{dir} \"{b}\" counter packets 1 bytes 2 accept comment \"berth:t\" # handle {h}\n")
        };
        let ret = "\t\tcounter packets 3 bytes 9 return # handle 7\n";
        let chain =
            |body: String| format!("table ip filter {{\n\tchain DOCKER-USER {{ # handle 5\n{body}\t}}\n}}\n");
        let want = [("iifname", "b0"), ("oifname", "b0")];
        let good = chain(rule("oifname", "b0", 9) + &rule("iifname", "b0", 8) + ret);
        assert!(docker_user_in_sync(&good, "berth:t", &want));
        // Docker's chain without berth's rules (a dockerd started after berthd).
        assert!(!docker_user_in_sync(&chain(ret.into()), "berth:t", &want));
        // Behind Docker's return, the rules never match.
        let late = chain(rule("iifname", "b0", 8) + ret + &rule("oifname", "b0", 9));
        assert!(!docker_user_in_sync(&late, "berth:t", &want));
        // A bridge too many (a removed network), or a duplicate.
        let extra = chain(rule("iifname", "b0", 8) + &rule("oifname", "b0", 9) + &rule("iifname", "b1", 10));
        assert!(!docker_user_in_sync(&extra, "berth:t", &want));
        let dup = chain(rule("iifname", "b0", 8) + &rule("oifname", "b0", 9) + &rule("oifname", "b0", 10));
        assert!(!docker_user_in_sync(&dup, "berth:t", &want));
        // Another daemon's rules are not ours: none of ours, none wanted.
        assert!(docker_user_in_sync(&good, "berth:u", &[]));
        assert!(!docker_user_in_sync(&good, "berth:u", &want));
        // ... and they may come first: two daemons never keep reordering each other.
        let other = "\t\tiifname \"c0\" counter packets 0 bytes 0 accept comment \"berth:u\" # handle 11\n";
        let behind_other =
            chain(other.to_string() + &rule("iifname", "b0", 8) + &rule("oifname", "b0", 9) + ret);
        assert!(docker_user_in_sync(&behind_other, "berth:t", &want));
        assert!(docker_user_in_sync(&chain(ret.into()), "berth:t", &[]));
    }

    #[test]
    fn ports_bound_to_an_address_go_to_the_address_map() {
        let p = PortRule {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            proto: "tcp".into(),
            container_ip: "10.1.0.2".parse().unwrap(),
            container_port: 80,
        };
        assert_eq!(
            add_ports_batch("berth", std::slice::from_ref(&p)),
            "add element ip berth ports_ip { 127.0.0.1 . tcp . 8080 : 10.1.0.2 . 80 }\n"
        );
        assert_eq!(
            remove_port_cmds("berth", &[PortRule { host_ip: None, ..p }]),
            vec!["delete element ip berth ports_any { tcp . 8080 }\n"]
        );
    }

    /// `enable_icc=false` drops traffic between the network's containers; `enable_ip_masquerade=
    /// false` leaves its outbound traffic unmasqueraded (hairpin and loopback clients still are).
    #[test]
    fn icc_and_masquerade_options_change_their_rules() {
        let n = RuleNet {
            bridge: "b2".into(),
            subnet: "10.3.0.0/24".parse().unwrap(),
            internal: false,
            icc: false,
            masquerade: false,
        };
        let b = table_batch("berth", &[n]);
        assert!(b.contains("forward iifname \"b2\" oifname \"b2\" drop"), "{b}");
        assert!(!b.contains("forward iifname \"b2\" oifname \"b2\" accept"), "{b}");
        assert!(
            !b.contains("ip saddr 10.3.0.0/24 oifname != \"b2\" masquerade"),
            "{b}"
        );
        assert!(
            b.contains("oifname \"b2\" ip saddr 10.3.0.0/24 ct status dnat masquerade"),
            "{b}"
        );
    }
}
