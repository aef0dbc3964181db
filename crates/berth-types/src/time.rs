//! Time as berth shows it, in one place for the daemon, the shim and the CLI: RFC 3339 timestamps
//! as the Engine API writes them (`2026-11-22T19:59:07.701434457Z`), go-units' human durations
//! ("About a minute") and the civil-date arithmetic under both, without a date-time dependency.
//! UTC only, which is all the API uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    to_nanos(SystemTime::now())
}

/// Nanoseconds since the Unix epoch for `t` (negative before 1970).
pub fn to_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

/// Formats nanoseconds since the epoch as RFC 3339 with nanoseconds: `2026-11-22T19:59:07.701434457Z`.
/// Zero formats as Go's zero time `0001-01-01T00:00:00Z`, which the API uses for "never".
pub fn rfc3339_nano(nanos: i64) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Like [`rfc3339_nano`] but always with nine fractional digits (docker's log timestamps).
pub fn rfc3339_nano_fixed(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses an RFC 3339 timestamp into nanoseconds since the epoch; `None` if it is not one, or is
/// outside what an `i64` of nanoseconds holds (years 1678–2262).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (secs, nanos) = parse_rfc3339_parts(s)?;
    secs.checked_mul(1_000_000_000)?.checked_add(i64::from(nanos))
}

/// Parses an RFC 3339 timestamp (`2026-11-22T19:54:07.07Z`, `…+01:00`) into (seconds since the
/// epoch, nanoseconds), for any year. Lenient where the CLI's `--since`/`--until` need it: the
/// separator may be `T`, `t` or a space, and a missing zone means UTC.
pub fn parse_rfc3339_parts(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        let mut digits: String = r[..n].chars().take(9).collect();
        while digits.len() < 9 {
            digits.push('0');
        }
        nanos = digits.parse().ok()?;
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + se - offset, nanos))
}

/// go-units `HumanDuration`: "Less than a second", "About a minute", "3 hours", …
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let seconds = secs as i64;
    let minutes = (secs / 60.0) as i64;
    let hours = (secs / 3600.0).round() as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
    }
}

/// [`human_duration`] of the time since `nanos` (since the epoch); a time in the future (clock
/// skew) is "Less than a second".
pub fn human_duration_since(nanos: i64) -> String {
    human_duration(Duration::from_nanos(
        now_nanos().saturating_sub(nanos).max(0) as u64
    ))
}

/// Go's `time.ParseDuration` (`1h30m`, `90s`, `1.5h`, `-2m`), in nanoseconds; `None` if it is not
/// a duration.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 || rest[..n_end] == *"." {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

/// [`parse_go_duration`] with Go's error for what is not a duration: `time: missing unit in
/// duration "5"` for a bare number, else `time: invalid duration "x"`.
pub fn go_duration(s: &str) -> Result<i64, String> {
    parse_go_duration(s).ok_or_else(|| {
        let bare = !s.is_empty()
            && s.trim_start_matches(['-', '+'])
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.');
        let what = if bare {
            "missing unit in duration"
        } else {
            "invalid duration"
        };
        format!("time: {what} \"{s}\"")
    })
}

/// The instant a prune `until` filter names, in nanoseconds since the epoch, as dockerd reads it
/// (`timetypes.GetTimestamp` then `ParseTimestamps`): a Go duration is that long before `now`
/// (whole seconds, as Go's `Time.Unix`), an RFC 3339 time or a date (`2026-11-22`, without a zone
/// meaning UTC) is that instant, and anything else must be unix seconds with an optional fraction.
pub fn parse_until(value: &str, now: i64) -> Result<i64, String> {
    if value != "0" {
        if let Some(d) = parse_go_duration(value) {
            return Ok(now.saturating_sub(d).div_euclid(1_000_000_000) * 1_000_000_000);
        }
    }
    if value.contains('-') {
        let mut v = value.to_string();
        if v.len() == 10 {
            v.push_str("T00:00:00");
        } else if let Some(t) = v.find(['T', 't']) {
            let zoned = v[t..].contains(['Z', 'z', '+', '-']);
            if !zoned {
                v.push_str([":00:00", ":00", ""][v[t..].matches(':').count().min(2)]);
            }
        }
        let (s, n) = parse_rfc3339_parts(&v)
            .ok_or_else(|| format!("parsing time {value:?}: cannot parse {value:?} as a time"))?;
        return Ok(s.saturating_mul(1_000_000_000).saturating_add(i64::from(n)));
    }
    let bad = || format!("failed to parse value as time or duration: {value:?}");
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut f: String = frac.chars().take(9).collect();
    while f.len() < 9 {
        f.push('0');
    }
    let nanos: i64 = f.parse().map_err(|_| bad())?;
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let n = 1_795_377_547_701_434_457;
        let s = rfc3339_nano(n);
        assert_eq!(s, "2026-11-22T19:59:07.701434457Z");
        assert_eq!(parse_rfc3339(&s), Some(n));
        assert_eq!(rfc3339_nano(1_795_377_547_000_000_000), "2026-11-22T19:59:07Z");
        assert_eq!(
            rfc3339_nano_fixed(1_795_377_547_100_000_000),
            "2026-11-22T19:59:07.100000000Z"
        );
        assert_eq!(rfc3339_nano(0), "0001-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-22T21:59:07+02:00"),
            Some(1_795_377_547_000_000_000)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2026-11-22T19:59:07Zjunk"), None);
        assert_eq!(parse_rfc3339("2026-11-22T19:59:07*01:00"), None);
    }

    #[test]
    fn parses_what_the_cli_accepts_and_any_year() {
        assert_eq!(
            parse_rfc3339_parts("2026-11-22T19:54:07.070461023Z"),
            Some((1_795_377_247, 70_461_023))
        );
        // A space separator and no zone (UTC): `logs --since 2026-11-22T19:54`.
        assert_eq!(
            parse_rfc3339_parts("2026-11-22 19:54:07"),
            Some((1_795_377_247, 0))
        );
        assert_eq!(
            parse_rfc3339_parts("2026-11-22T19:54:07.5"),
            Some((1_795_377_247, 500_000_000))
        );
        // Go's zero time is a time, but not one an i64 of nanoseconds holds.
        assert_eq!(
            parse_rfc3339_parts("0001-01-01T00:00:00Z"),
            Some((-62_135_596_800, 0))
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn prune_until_reads_durations_times_and_unix_seconds_like_dockerd() {
        let now = 1_795_377_547_701_434_457;
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("-2m"), Some(-120_000_000_000));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("h"), None);
        assert_eq!(parse_until("10m", now), Ok(1_795_376_947_000_000_000));
        assert_eq!(
            parse_until("2026-11-22T19:54:07Z", now),
            Ok(1_795_377_247_000_000_000)
        );
        assert_eq!(
            parse_until("2026-11-22T19:54", now),
            Ok(1_795_377_240_000_000_000)
        );
        assert_eq!(parse_until("2026-11-22", now), Ok(1_795_305_600_000_000_000));
        assert_eq!(parse_until("1795377247.5", now), Ok(1_795_377_247_500_000_000));
        assert_eq!(parse_until("0", now), Ok(0));
        assert_eq!(
            parse_until("yesterday", now),
            Err("failed to parse value as time or duration: \"yesterday\"".to_string())
        );
        assert!(parse_until("2026-13-45Tx", now).is_err());
    }

    #[test]
    fn fixed_nanoseconds_keep_nine_digits_from_the_epoch_on() {
        assert_eq!(rfc3339_nano_fixed(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nano_fixed(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn human_durations_match_go_units() {
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(3)), "3 seconds");
        assert_eq!(human_duration(Duration::from_secs(70)), "About a minute");
        assert_eq!(human_duration(Duration::from_millis(59_900)), "59 seconds");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
        assert_eq!(human_duration(Duration::from_secs(20 * 86400)), "2 weeks");
        assert_eq!(human_duration(Duration::from_secs(90 * 86400)), "3 months");
        assert_eq!(
            human_duration(Duration::from_secs_f64(56.0 * 365.25 * 86400.0)),
            "56 years"
        );
        assert_eq!(
            human_duration_since(now_nanos() + 5_000_000_000),
            "Less than a second"
        );
    }
}
