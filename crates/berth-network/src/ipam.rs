//! IPv4 address management, pure: subnets, the gateway, the next free address, Docker's default
//! pools, and the MAC an address gets. Leases are persisted by the caller (berth-meta).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet in CIDR form, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// A subnet or address that does not parse, or does not fit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    InvalidCidr(String),
    #[error("invalid IP address: {0}")]
    InvalidIp(String),
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    Exhausted(String),
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
}

impl Subnet {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        }
    }

    /// `10.1.2.3/16` → 10.1.0.0/16 (docker accepts a host address with a prefix for `bip`).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask(prefix)),
            prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.addr) & Self::mask(p) == u32::from(other.addr) & Self::mask(p)
    }

    /// The last address (broadcast), never handed out.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !Self::mask(self.prefix))
    }

    /// The first host address: docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `a.b.c.d/n`; returns the subnet and the address as written (for `bip`, the gateway).
pub fn parse_cidr(s: &str) -> Result<(Subnet, Ipv4Addr), IpamError> {
    let bad = || IpamError::InvalidCidr(s.to_string());
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let addr = Ipv4Addr::from_str(a).map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    if prefix > 32 {
        return Err(bad());
    }
    Ok((Subnet::new(addr, prefix), addr))
}

impl FromStr for Subnet {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, IpamError> {
        parse_cidr(s).map(|(n, _)| n)
    }
}

/// The lowest free host address of `range` (default: the whole subnet) that is not the network
/// address, the broadcast, the gateway, or in `used`.
pub fn next_free(
    subnet: &Subnet,
    range: Option<&Subnet>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    let r = range.unwrap_or(subnet);
    let first = u32::from(r.addr).max(u32::from(subnet.addr) + 1);
    let last = u32::from(r.broadcast()).min(u32::from(subnet.broadcast()).saturating_sub(1));
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(|| IpamError::Exhausted(subnet.to_string()))
}

/// Docker's default address pools: 172.17–31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn docker_default_pools() -> Vec<Subnet> {
    let mut v: Vec<Subnet> = (17..=31)
        .map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16))
        .collect();
    v.extend((0..16).map(|i| Subnet::new(Ipv4Addr::new(192, 168, i * 16, 0), 20)));
    v
}

/// The first pool subnet that overlaps none of `taken` (the host's routes and other networks).
pub fn first_free_pool(pools: &[Subnet], taken: &[Subnet]) -> Result<Subnet, IpamError> {
    pools
        .iter()
        .find(|p| !taken.iter().any(|t| t.overlaps(p)))
        .copied()
        .ok_or(IpamError::NoPool)
}

/// Docker's MAC for an address: `02:42:` and the four octets.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A MAC address as `--mac-address` takes it (`92:d0:c6:0a:29:33`, or with `-`): a unicast
/// address, or None.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    // Multicast (the low bit of the first octet) cannot be an interface's own address.
    (mac[0] & 1 == 0).then_some(mac)
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn bip_with_a_host_address_gives_its_network_and_keeps_the_gateway() {
        let (n, gw) = parse_cidr("10.200.3.1/24").unwrap();
        assert_eq!(n.to_string(), "10.200.3.0/24");
        assert_eq!(gw, ip("10.200.3.1"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0/8").is_err());
        assert!(parse_cidr("10.0.0.1").is_err());
    }

    #[test]
    fn addresses_skip_network_gateway_broadcast_and_leases() {
        let n: Subnet = "10.9.0.0/30".parse().unwrap();
        let gw = n.first_host();
        let mut used = BTreeSet::new();
        assert_eq!(next_free(&n, None, gw, &used).unwrap(), ip("10.9.0.2"));
        used.insert(ip("10.9.0.2"));
        // .3 is the broadcast: the /30 is full.
        assert!(matches!(
            next_free(&n, None, gw, &used),
            Err(IpamError::Exhausted(_))
        ));
    }

    #[test]
    fn ip_range_narrows_the_addresses_handed_out() {
        let n: Subnet = "10.9.0.0/16".parse().unwrap();
        let r: Subnet = "10.9.5.0/24".parse().unwrap();
        let got = next_free(&n, Some(&r), n.first_host(), &BTreeSet::new()).unwrap();
        assert_eq!(got, ip("10.9.5.0"));
    }

    #[test]
    fn the_first_pool_that_overlaps_no_route_is_chosen() {
        let pools = docker_default_pools();
        let taken = vec!["172.17.0.0/16".parse().unwrap(), "172.16.0.0/12".parse().unwrap()];
        assert_eq!(
            first_free_pool(&pools, &taken).unwrap().to_string(),
            "192.168.0.0/20"
        );
        let taken = vec!["172.17.5.0/24".parse().unwrap()];
        assert_eq!(
            first_free_pool(&pools, &taken).unwrap().to_string(),
            "172.18.0.0/16"
        );
        assert!(first_free_pool(&pools, &["0.0.0.0/0".parse().unwrap()]).is_err());
    }

    #[test]
    fn mac_is_docker_s_02_42_and_the_octets() {
        assert_eq!(mac_string(&mac_for(ip("172.17.0.2"))), "02:42:ac:11:00:02");
        assert_eq!(
            parse_mac("92:d0:c6:0A:29:33"),
            Some([0x92, 0xd0, 0xc6, 0x0a, 0x29, 0x33])
        );
        assert_eq!(parse_mac("92-d0-c6-0a-29-33"), parse_mac("92:d0:c6:0a:29:33"));
        for bad in [
            "92:d0:c6:0a:29",
            "92:d0:c6:0a:29:3g",
            "01:00:5e:00:00:01",
            "9:d0:c6:0a:29:33",
            "",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
