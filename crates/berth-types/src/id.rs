//! Container and image identifiers.
//!
//! IDs are 64 lowercase hex characters. The first 12 form the short ID shown in listings. Lookups
//! accept a full ID, a unique prefix, or (for images) a `sha256:` prefixed form of either.

/// Length of the short form of an ID, as shown by `ps` and `images`.
pub const SHORT_LEN: usize = 12;

/// The 12-character short form of a 64-hex ID (`sha256:` prefix, if any, removed).
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(SHORT_LEN)]
}

/// True if `s` is a non-empty string of lowercase hex digits of at most 64 characters, i.e.
/// something that may be an ID or an ID prefix.
pub fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True if `s` is a full 64-hex ID.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && is_hex_prefix(s)
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// Validates a container name as docker does: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (a leading `/` is
/// allowed and ignored).
pub fn valid_container_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() >= 2 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strips_algorithm() {
        let id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(short(id), "0123456789ab");
        assert_eq!(short(&id[7..]), "0123456789ab");
    }

    #[test]
    fn container_names_follow_docker_rules() {
        assert!(valid_container_name("web-1"));
        assert!(valid_container_name("/web_1.a"));
        assert!(!valid_container_name("x"));
        assert!(!valid_container_name("-web"));
        assert!(!valid_container_name("we b"));
        assert!(!valid_container_name(""));
    }

    #[test]
    fn hex_prefix_rules() {
        assert!(is_hex_prefix("abc123"));
        assert!(!is_hex_prefix("ABC"));
        assert!(!is_hex_prefix("xyz"));
        assert!(is_full_id(&"a".repeat(64)));
        assert!(!is_full_id(&"a".repeat(63)));
    }
}
