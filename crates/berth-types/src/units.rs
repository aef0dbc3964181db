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

/// Go's `fmt.Sprintf("%.*g", prec, v)`.
pub fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let prec = prec.max(1);
    let e = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = e.split_once('e').expect("exponent format");
    let exp: i32 = exp.parse().expect("exponent");
    if exp < -4 || exp >= prec as i32 {
        let mant = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{v:.decimals$}")).to_owned()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units `HumanSizeWithPrecision` (decimal units).
pub fn human_size_prec(size: f64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = size;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(size, prec), UNITS[i])
}

/// docker's `JSONProgress.String()` without the time left: a 50-column bar when the terminal is
/// wider than 110 columns (the daemon renders the `progress` field as if 200 wide), then
/// `current/total` in go-units sizes (`current` alone when it exceeds `total`).
pub fn progress_bar(current: i64, total: i64, width: usize) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{:>8}", human_size_prec(current as f64, 4));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50);
    let mut bar = String::new();
    if width > 110 {
        bar = format!(
            "[{}>{}] ",
            "=".repeat(pct as usize),
            " ".repeat((50 - pct) as usize)
        );
    }
    let cur = human_size_prec(current as f64, 4);
    if current > total {
        format!("{bar}{cur:>8}")
    } else {
        format!("{bar}{cur:>8}/{}", human_size_prec(total as f64, 4))
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn bars_and_sizes_are_dockers() {
        assert_eq!(human_size_prec(32768.0, 4), "32.77kB");
        assert_eq!(human_size_prec(3_001_129.0, 4), "3.001MB");
        assert_eq!(
            progress_bar(32768, 3_001_129, 200),
            "[>                                                  ]  32.77kB/3.001MB"
        );
        assert_eq!(
            progress_bar(3_001_129, 3_001_129, 200),
            "[==================================================>]  3.001MB/3.001MB"
        );
        assert_eq!(
            progress_bar(2_129_920, 1_984_197, 200),
            "[==================================================>]   2.13MB"
        );
        assert_eq!(progress_bar(0, 0, 200), "");
        assert_eq!(go_g(1.0, 4), "1");
    }
}
