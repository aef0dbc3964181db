//! Links, addresses and routes over rtnetlink, synchronously: one request, one acknowledgement.
//! A [`Netlink`] socket talks to the namespace it was opened in ([`Netlink::open_in`] opens one
//! inside a container's namespace).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

/// A netlink request the kernel refused; `errno` tells EEXIST/ENODEV apart.
#[derive(Debug, thiserror::Error)]
#[error("netlink {op}: {source}")]
pub struct LinkError {
    pub op: String,
    #[source]
    pub source: io::Error,
}

impl LinkError {
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

type Result<T> = std::result::Result<T, LinkError>;

fn err(op: impl Into<String>) -> impl FnOnce(io::Error) -> LinkError {
    let op = op.into();
    move |source| LinkError { op, source }
}

pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn open() -> Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err("open socket"))?;
        sock.bind_auto().map_err(err("bind socket"))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// A socket in the network namespace pinned at `path`.
    pub fn open_in(path: &Path) -> Result<Self> {
        berth_sys::netns::run_in(path, Self::open).map_err(err(format!("enter {}", path.display())))?
    }

    /// Sends one request and collects the replies up to the ACK (or DONE for dumps).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | flags;
        req.header.sequence_number = self.seq;
        req.finalize();
        let mut buf = vec![0u8; req.header.length as usize];
        req.serialize(&mut buf[..]);
        self.sock.send(&buf, 0).map_err(err(op))?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 65536];
        loop {
            let n = self.sock.recv(&mut &mut rbuf[..], 0).map_err(err(op))?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n]).map_err(|e| {
                    LinkError {
                        op: op.into(),
                        source: io::Error::other(e.to_string()),
                    }
                })?;
                let len = m.header.length as usize;
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(c) => Err(LinkError {
                                op: op.into(),
                                source: io::Error::from_raw_os_error(-c.get()),
                            }),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
            if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 {
                return Ok(out);
            }
        }
    }

    /// The index of link `name`, or `None` if there is no such link.
    pub fn index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::GetLink(m),
            NLM_F_ACK,
            &format!("find link {name}"),
        ) {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc_enodev()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates bridge `name` with `mtu` unless it exists; returns its index.
    pub fn ensure_bridge(&mut self, name: &str, mtu: u32) -> Result<u32> {
        if let Some(i) = self.index(name)? {
            return Ok(i);
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        )?;
        self.index(name)?.ok_or_else(|| LinkError {
            op: format!("create bridge {name}"),
            source: io::Error::other("bridge vanished"),
        })
    }

    /// Creates a veth pair: `host` here, enslaved to `master` (down: the caller brings it up);
    /// `peer` (named `peer_name`, with `mac`) inside the namespace open at `netns_fd`.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        mtu: u32,
        peer_name: &str,
        mac: [u8; 6],
        netns_fd: RawFd,
    ) -> Result<()> {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(peer_name.to_string()));
        peer.attributes.push(LinkAttribute::Mtu(mtu));
        peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        peer.attributes.push(LinkAttribute::NetNsFd(netns_fd));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m.attributes.push(LinkAttribute::Controller(master));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {host}"),
        )?;
        Ok(())
    }

    /// Gives link `index` (still down) no IPv6 address when it comes up (`addrgenmode none`):
    /// it then sends no IPv6 at all (no duplicate address detection, MLD reports or router
    /// solicitations). A kernel without IPv6 has nothing to turn off.
    pub fn no_ipv6_addresses(&mut self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![
                AfSpecInet6::AddrGenMode(In6AddrGenMode::None),
            ])]));
        match self.request(
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
            "turn off IPv6 addresses",
        ) {
            // EAFNOSUPPORT: no IPv6 in this kernel.
            Err(e) if e.errno() == Some(97) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK, "set link up")?;
        Ok(())
    }

    /// Deletes link `name`; a missing link is not an error.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let Some(index) = self.index(name)? else {
            return Ok(());
        };
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            &format!("delete link {name}"),
        ) {
            Err(e) if e.errno() == Some(libc_enodev()) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Adds `ip/prefix` to link `index` (EEXIST is fine: the bridge keeps its address).
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        if prefix < 31 {
            let b = super::ipam::Subnet::new(ip, prefix).broadcast();
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {ip}/{prefix}"),
        ) {
            Err(e) if e.errno() == Some(17) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// `default via gateway dev index` (replacing one there is).
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            // Replacing: a container connected back to its first network takes the default
            // route over from the network that carried it meanwhile.
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add default route via {gateway}"),
        )?;
        Ok(())
    }

    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

fn libc_enodev() -> i32 {
    19
}

/// The IPv4 destinations of the host's routes (not the default route), from /proc/net/route:
/// what a new network's subnet must not overlap.
pub fn host_route_subnets() -> Vec<super::ipam::Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // Little-endian hex in /proc/net/route.
            let dest = Ipv4Addr::from(dest.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| super::ipam::Subnet::new(dest, prefix))
        })
        .collect()
}
