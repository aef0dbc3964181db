//! Go's `path.Match`: `*` (any run of non-`/`), `?` (one non-`/`), `[...]` classes with ranges and
//! `^` negation, `\` escapes. Used by the `reference` filter like docker's `FamiliarMatch`.

/// True if `name` matches the shell pattern `pattern` (a malformed pattern matches nothing).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n).unwrap_or(false)
}

fn match_at(p: &[char], n: &[char]) -> Option<bool> {
    if p.is_empty() {
        return Some(n.is_empty());
    }
    match p[0] {
        '*' => {
            // Try every split that does not cross a '/'.
            for i in 0..=n.len() {
                if i > 0 && n[i - 1] == '/' {
                    break;
                }
                if match_at(&p[1..], &n[i..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => Some(!n.is_empty() && n[0] != '/' && match_at(&p[1..], &n[1..])?),
        '[' => {
            let (ok, rest) = class(&p[1..], n.first().copied())?;
            Some(ok && match_at(rest, &n[1..])?)
        }
        '\\' => {
            let c = *p.get(1)?;
            Some(!n.is_empty() && n[0] == c && match_at(&p[2..], &n[1..])?)
        }
        c => Some(!n.is_empty() && n[0] == c && match_at(&p[1..], &n[1..])?),
    }
}

/// Matches one character class (after `[`); returns whether `c` is in it and the pattern after
/// `]`. `None` for a malformed class.
fn class(p: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let mut i = 0;
    let negate = p.first() == Some(&'^');
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            lo
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            hi = if p[i + 1] == '\\' {
                i += 1;
                *p.get(i + 1)?
            } else {
                p[i + 1]
            };
            i += 2;
        }
        if let Some(c) = c {
            if lo <= c && c <= hi {
                found = true;
            }
        }
    }
    let c = c?;
    if c == '/' {
        return Some((false, &p[i..]));
    }
    Some((found != negate, &p[i..]))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn go_path_match() {
        assert!(matches("busy*", "busybox"));
        assert!(matches("busybox:lat*", "busybox:latest"));
        assert!(!matches("busy*", "user/busybox"));
        assert!(matches("*/app", "user/app"));
        assert!(!matches("*", "user/app"));
        assert!(matches("b?sybox", "busybox"));
        assert!(matches("[a-c]usybox", "busybox"));
        assert!(!matches("[^a-c]usybox", "busybox"));
        assert!(matches("imp\\1", "imp1"));
        assert!(matches("imp1", "imp1"));
        assert!(!matches("imp", "imp1"));
        assert!(!matches("[", "a"));
    }
}
