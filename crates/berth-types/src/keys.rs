//! docker's detach-key syntax (`ctrl-p,ctrl-q`, `a`, `ctrl-@` … `ctrl-_`), parsed the same way
//! by the daemon (which watches attached stdin for it) and the CLI (which detaches client-side).

/// The default sequence, ctrl-p ctrl-q.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// Parses a detach-key list into the bytes it stands for; the error names the bad key.
pub fn parse(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let key = key.trim();
        if let Some(c) = key.to_ascii_lowercase().strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [c @ b'a'..=b'z'] => c - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(format!("Unknown character: '{key}'")),
            };
            out.push(b);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(format!("Unknown character: '{key}'"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse(DEFAULT).unwrap(), vec![16, 17]);
        assert_eq!(parse("a,ctrl-@,CTRL-Z").unwrap(), vec![b'a', 0, 26]);
        assert!(parse("ctrl-pp").is_err());
        assert!(parse("abc").is_err());
    }
}
