//! The embedded DNS server's message handling, pure: parse a query, build an answer of A
//! records, or a failure. Names it does not know are forwarded as they came (the daemon relays
//! the bytes), so only the question needs parsing.

use std::net::Ipv4Addr;

/// The one question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Lower case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question ends in the message.
    pub end: usize,
    /// The recursion-desired bit, echoed.
    pub rd: bool,
}

pub const TYPE_A: u16 = 1;
pub const CLASS_IN: u16 = 1;

/// Parses a standard query with one question; `None` for anything else.
pub fn parse_query(b: &[u8]) -> Option<Question> {
    if b.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([b[0], b[1]]);
    let flags = u16::from_be_bytes([b[2], b[3]]);
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16::from_be_bytes([b[4], b[5]]);
    if qr || opcode != 0 || qdcount != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *b.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = b.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]);
    Some(Question {
        id,
        name: labels.join("."),
        qtype,
        qclass,
        end: i + 4,
        rd: flags & 0x0100 != 0,
    })
}

/// A response to `q` (asked in `req`) with `ips` as A records (none: an empty NOERROR answer,
/// what a known name gets for other types), `rcode` 0.
pub fn answer(req: &[u8], q: &Question, ips: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    response(req, q, 0, ips, ttl)
}

/// A failure response (`rcode` 2 SERVFAIL, 3 NXDOMAIN).
pub fn failure(req: &[u8], q: &Question, rcode: u8) -> Vec<u8> {
    response(req, q, rcode, &[], 0)
}

fn response(req: &[u8], q: &Question, rcode: u8, ips: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.end + ips.len() * 16);
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, AA (we own these names), RD echoed, RA.
    let flags: u16 = 0x8000 | 0x0400 | if q.rd { 0x0100 } else { 0 } | 0x0080 | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&req[12..q.end]);
    for ip in ips {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// Whether a response has the TC (truncated) bit: the client should ask again over TCP.
pub fn is_truncated(resp: &[u8]) -> bool {
    resp.len() > 2 && resp[2] & 0x02 != 0
}

/// The largest answer a UDP client takes without EDNS (RFC 1035).
pub const UDP_MAX: usize = 512;

/// A query for `name` (tests and probes).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.trim_end_matches('.').split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The A records of a response (tests).
pub fn answers(resp: &[u8]) -> Vec<Ipv4Addr> {
    let Some(q) = parse_question_of_response(resp) else {
        return vec![];
    };
    let an = u16::from_be_bytes([resp[6], resp[7]]) as usize;
    let mut i = q;
    let mut out = Vec::new();
    for _ in 0..an {
        // Name: a pointer or labels.
        loop {
            let Some(&l) = resp.get(i) else { return out };
            if l & 0xc0 == 0xc0 {
                i += 2;
                break;
            }
            i += 1 + l as usize;
            if l == 0 {
                break;
            }
        }
        let Some(h) = resp.get(i..i + 10) else { return out };
        let (t, len) = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[8], h[9]]) as usize,
        );
        i += 10;
        if t == TYPE_A && len == 4 {
            if let Some(a) = resp.get(i..i + 4) {
                out.push(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            }
        }
        i += len;
    }
    out
}

fn parse_question_of_response(b: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = *b.get(i)? as usize;
        i += 1;
        if len == 0 {
            return Some(i + 4);
        }
        i += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_parses_and_its_answer_carries_the_addresses() {
        let q = query(0x1234, "Web.Example", TYPE_A);
        let p = parse_query(&q).unwrap();
        assert_eq!(
            (p.id, p.name.as_str(), p.qtype, p.rd),
            (0x1234, "web.example", TYPE_A, true)
        );
        let ip: Ipv4Addr = "10.1.0.2".parse().unwrap();
        let a = answer(&q, &p, &[ip], 600);
        assert_eq!(u16::from_be_bytes([a[0], a[1]]), 0x1234);
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(answers(&a), vec![ip]);
        let f = failure(&q, &p, 2);
        assert_eq!(f[3] & 0x0f, 2);
        assert!(answers(&f).is_empty());
        assert!(!is_truncated(&a));
        let mut t = a.clone();
        t[2] |= 0x02;
        assert!(is_truncated(&t));
    }

    #[test]
    fn responses_and_truncated_messages_are_not_queries() {
        let q = query(1, "x", TYPE_A);
        let p = parse_query(&q).unwrap();
        assert!(parse_query(&answer(&q, &p, &[], 0)).is_none());
        assert!(parse_query(&q[..q.len() - 2]).is_none());
        assert!(parse_query(&[0; 5]).is_none());
    }
}
