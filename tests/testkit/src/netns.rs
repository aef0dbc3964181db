//! A network namespace with a veth pair of its own, for servers that must not be on loopback
//! (berth, like Docker, treats 127.0.0.0/8 as an insecure registry, so TLS is proven off it).
//! The pair gets a /30 from 10.213.0.0/16 that no interface on the machine uses; the host end is
//! `.1`, the namespace end `.2`. Dropping it deletes the link and the namespace.

use std::net::Ipv4Addr;
use std::process::Command;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A namespace and its link to the host.
pub struct Netns {
    pub name: String,
    host_if: String,
    /// The host end's address.
    pub host_ip: Ipv4Addr,
    /// The namespace end's address: servers in the namespace listen here.
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    /// Creates the namespace and its link. Needs root (`ip netns add`).
    pub fn create() -> Netns {
        // One allocation at a time on the machine: an flock on a file in /run.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/berth-testkit-netns.lock")
            .expect("open /run/berth-testkit-netns.lock");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        let used = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pid = std::process::id();
        for n in 0..16384u32 {
            let k = (pid.wrapping_mul(7919).wrapping_add(n)) % 16384;
            let (third, fourth) = ((k / 64) as u8, ((k % 64) * 4) as u8);
            let host_ip = Ipv4Addr::new(10, 213, third, fourth + 1);
            let ns_ip = Ipv4Addr::new(10, 213, third, fourth + 2);
            if used.contains(&format!("inet {host_ip}/")) || used.contains(&format!("inet {ns_ip}/")) {
                continue;
            }
            let name = format!("berth-tk-{pid}-{k}");
            let host_if = format!("btk{k}h");
            let ns_if = format!("btk{k}n");
            let ns = Netns {
                name: name.clone(),
                host_if: host_if.clone(),
                host_ip,
                ns_ip,
            };
            if ip(&["netns", "add", &name]).is_err() {
                continue;
            }
            let setup = (|| {
                ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if])?;
                ip(&["link", "set", &ns_if, "netns", &name])?;
                ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
                ip(&["link", "set", &host_if, "up"])?;
                ip(&["-n", &name, "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
                ip(&["-n", &name, "link", "set", &ns_if, "up"])?;
                ip(&["-n", &name, "link", "set", "lo", "up"])
            })();
            match setup {
                Ok(()) => return ns,
                Err(e) => {
                    drop(ns);
                    panic!("setting up a test network namespace: {e}");
                }
            }
        }
        panic!("no free /30 in 10.213.0.0/16 for a test network namespace");
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`, which execs it, so
    /// the child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
