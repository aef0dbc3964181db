//! Docker's (Go's) text forms the classic builder records and checks: `%q` quoting, durations,
//! the HEALTHCHECK history entry, signals, platforms, short IDs.

use super::Healthcheck;
use crate::Error;

/// Go's `%q` of a string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub(super) fn go_quote_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ")
    )
}

/// Go's `%q` of docker's `*HealthConfig` (what the classic builder records in the history):
/// `&{["CMD" "true"] "30s" "3s" "0s" '\x02'}`.
pub(super) fn go_healthcheck(h: &Healthcheck) -> String {
    format!(
        "&{{{} {} {} {} {}}}",
        go_quote_list(&h.test),
        go_quote(&go_duration(h.interval)),
        go_quote(&go_duration(h.timeout)),
        go_quote(&go_duration(h.start_period)),
        go_quote_rune(h.retries)
    )
}

/// Go's `%q` of an integer: a quoted rune literal.
pub(super) fn go_quote_rune(n: i64) -> String {
    let c = u32::try_from(n).ok().and_then(char::from_u32);
    let body = match c {
        Some('\x07') => "\\a".to_string(),
        Some('\x08') => "\\b".to_string(),
        Some('\x0c') => "\\f".to_string(),
        Some('\n') => "\\n".to_string(),
        Some('\r') => "\\r".to_string(),
        Some('\t') => "\\t".to_string(),
        Some('\x0b') => "\\v".to_string(),
        Some('\\') => "\\\\".to_string(),
        Some('\'') => "\\'".to_string(),
        Some(c) if (' '..='~').contains(&c) => c.to_string(),
        Some(c) if (c as u32) < 0x80 => format!("\\x{:02x}", c as u32),
        Some(c) if !c.is_control() => c.to_string(),
        Some(c) if (c as u32) <= 0xffff => format!("\\u{:04x}", c as u32),
        Some(c) => format!("\\U{:08x}", c as u32),
        None => "\u{fffd}".to_string(),
    };
    format!("'{body}'")
}

/// Go's `time.Duration.String()` of nanoseconds: `0s`, `500ms`, `1.5s`, `1m30s`, `1h0m0s`.
pub(super) fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{neg}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{neg}{}µs", frac(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{neg}{}ms", frac(u, 1_000_000));
    }
    let secs = frac(u % 60_000_000_000, 1_000_000_000);
    let mins = u / 60_000_000_000;
    if mins == 0 {
        return format!("{neg}{secs}s");
    }
    if mins < 60 {
        return format!("{neg}{mins}m{secs}s");
    }
    format!("{neg}{}h{}m{secs}s", mins / 60, mins % 60)
}

/// Parses go-style durations for HEALTHCHECK flags (`30s`, `1m30s`, `500ms`) into nanoseconds.
pub(super) fn parse_duration(s: &str) -> Option<i64> {
    berth_types::time::parse_go_duration(s)
}

/// `--platform` on FROM: only this machine's platform can run.
pub(super) fn check_platform(p: &str) -> Result<(), Error> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut parts = p.split('/');
    let os = parts.next().unwrap_or("");
    let a = parts.next().unwrap_or(arch);
    if os != "linux" || a != arch {
        return Err(Error::Invalid(format!(
            "image platform {p} does not match this machine's linux/{arch}: berth runs no emulation"
        )));
    }
    Ok(())
}

pub(super) fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let n = s.to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    matches!(
        n,
        "HUP"
            | "INT"
            | "QUIT"
            | "ILL"
            | "TRAP"
            | "ABRT"
            | "BUS"
            | "FPE"
            | "KILL"
            | "USR1"
            | "SEGV"
            | "USR2"
            | "PIPE"
            | "ALRM"
            | "TERM"
            | "STKFLT"
            | "CHLD"
            | "CONT"
            | "STOP"
            | "TSTP"
            | "TTIN"
            | "TTOU"
            | "URG"
            | "XCPU"
            | "XFSZ"
            | "VTALRM"
            | "PROF"
            | "WINCH"
            | "IO"
            | "POLL"
            | "PWR"
            | "SYS"
    ) || n.starts_with("RTMIN")
        || n.starts_with("RTMAX")
}

/// The 12-character short ID.
pub fn short(id: &str) -> String {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    h.chars().take(12).collect()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting_and_durations() {
        assert_eq!(
            go_quote_list(&["cat".into(), "a \"b\"".into()]),
            r#"["cat" "a \"b\""]"#
        );
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("5"), None);
        for (ns, s) in [
            (0, "0s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500, "1.5µs"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
    }

    #[test]
    fn healthcheck_history_is_gos_quoted_struct_as_docker_records_it() {
        let h = Healthcheck {
            test: vec!["CMD-SHELL".into(), "wget -q -O- localhost || exit 1".into()],
            interval: 30_000_000_000,
            timeout: 3_000_000_000,
            retries: 2,
            ..Default::default()
        };
        assert_eq!(
            go_healthcheck(&h),
            r#"&{["CMD-SHELL" "wget -q -O- localhost || exit 1"] "30s" "3s" "0s" '\x02'}"#
        );
        assert_eq!(go_quote_rune(65), "'A'");
        assert_eq!(go_quote_rune(10), r"'\n'");
    }
}
