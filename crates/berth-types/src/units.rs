//! Human-readable sizes as docker's go-units parses them (`10m`, `1.5 GB`, `20MiB`).

/// Parses a size with an optional decimal unit (`k`, `m`, `g`, `t`, `p`, each 1000 times the
/// last, optionally followed by `b`, `ib`; case-insensitive; one space allowed before the unit),
/// as go-units' `FromHumanSize` does: `10m` is 10 000 000 bytes, `10MiB` too. The error is
/// go-units' message, `invalid size: '<s>'`.
pub fn from_human_size(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(digits_end);
    // `\d+(\.\d+)*`: digits, then groups of a dot and digits.
    if num.is_empty()
        || num
            .split('.')
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let mul: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1e3,
        Some('m') => 1e6,
        Some('g') => 1e9,
        Some('t') => 1e12,
        Some('p') => 1e15,
        _ => 1.0,
    };
    if mul != 1.0 {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(bad());
    }
    // go parses "1.2.3" with ParseFloat after the regex matched; that fails the same way.
    let n: f64 = num.parse().map_err(|_| bad())?;
    Ok((n * mul) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_go_units_does() {
        assert_eq!(from_human_size("10"), Ok(10));
        assert_eq!(from_human_size("10k"), Ok(10_000));
        assert_eq!(from_human_size("10m"), Ok(10_000_000));
        assert_eq!(from_human_size("10MiB"), Ok(10_000_000));
        assert_eq!(from_human_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(from_human_size("3b"), Ok(3));
        assert_eq!(from_human_size("foo"), Err("invalid size: 'foo'".to_string()));
        assert_eq!(from_human_size("10x"), Err("invalid size: '10x'".to_string()));
        assert_eq!(from_human_size("-1m"), Err("invalid size: '-1m'".to_string()));
        assert_eq!(from_human_size(""), Err("invalid size: ''".to_string()));
        assert_eq!(
            from_human_size("1.2.3m"),
            Err("invalid size: '1.2.3m'".to_string())
        );
    }
}
