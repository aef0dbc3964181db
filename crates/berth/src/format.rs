//! Human units, times and table layout exactly as the docker CLI renders them
//! (go-units `HumanSize`/`HumanDuration`, Go's `text/tabwriter`, `strconv.Quote`, `time.Time.String`).

use std::time::{SystemTime, UNIX_EPOCH};

pub use berth_types::go_io_error;

pub use berth_types::units::{go_g, human_size_prec};

/// go-units `BytesSize` (binary units, four significant digits).
pub fn bytes_size(n: f64) -> String {
    const U: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let (mut n, mut i) = (n, 0);
    while n >= 1024.0 && i < U.len() - 1 {
        n /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(n, 4), U[i])
}

/// What `docker images` / `docker ps -s` show: three significant digits.
pub fn human_size(size: i64) -> String {
    human_size_prec(size as f64, 3)
}

pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `HumanDuration(now - t) + " ago"` for a unix-seconds timestamp.
pub fn ago(unix: i64) -> String {
    let since = berth_types::time::human_duration_since(unix.saturating_mul(1_000_000_000));
    format!("{since} ago")
}

fn ymdhms(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (y, mo, d) = berth_types::time::civil_from_days(unix.div_euclid(86400));
    let s = unix.rem_euclid(86400);
    (y, mo, d, s / 3600, s / 60 % 60, s % 60)
}

/// Go's `time.Unix(t, 0).String()` in UTC: `2026-11-22 19:59:07 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = ymdhms(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
}

/// Go's `strconv.Quote` (printable Unicode is kept as is).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker's `formatter.Ellipsis` for ASCII-width strings.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if max == 0 {
        return String::new();
    }
    if n <= max {
        return s.to_owned();
    }
    if max == 1 {
        return s.chars().take(1).collect();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// `stringid.TruncateID`: drop an algorithm prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, r)| r).unwrap_or(id);
    id.chars().take(12).collect()
}

/// Go's `text/tabwriter` with docker's settings (minwidth 10, tabwidth 1, padding 3, ' ').
pub fn tabwrite(text: &str) -> String {
    tabwrite_with(text, 10, 3)
}

pub fn tabwrite_with(text: &str, minwidth: usize, padding: usize) -> String {
    let ends_nl = text.ends_with('\n');
    let body = if ends_nl { &text[..text.len() - 1] } else { text };
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, minwidth, padding, &mut out);
    if !ends_nl && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn cell_width(s: &str) -> usize {
    s.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, c) in line.iter().enumerate() {
            out.push_str(c);
            if j < widths.len() && j + 1 < line.len() {
                for _ in cell_width(c)..widths[j] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
}

/// Go's `json.Indent(dst, src, "", "    ")` over raw JSON bytes: keeps key order, number text
/// and escapes exactly as the daemon sent them.
pub fn json_indent(src: &[u8]) -> String {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut need_indent = false; // just opened a container
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(b"    ");
        }
    };
    for &c in src {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        if need_indent && c != b']' && c != b'}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_str = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                need_indent = true;
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'}' | b']' => {
                if need_indent {
                    need_indent = false; // empty container stays compact
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size(1984132), "1.98MB");
        assert_eq!(human_size(4096), "4.1kB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(999_999), "1e+03kB");
        assert_eq!(human_size_prec(1984132.0, 4), "1.984MB");
        assert_eq!(bytes_size(25276510208.0), "23.54GiB");
    }

    #[test]
    fn go_time_strings_are_utc() {
        assert_eq!(go_time_string(1_795_377_247), "2026-11-22 19:54:07 +0000 UTC");
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn commands_are_quoted_and_truncated_like_ps() {
        let c = "sh -c 'echo started; echo warn >&2; sleep 100'";
        assert_eq!(go_quote(&ellipsis(c, 20)), "\"sh -c 'echo started…\"");
        assert_eq!(go_quote("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
        assert_eq!(truncate_id("sha256:6a85aabbccddeeff0011"), "6a85aabbccdd");
    }

    #[test]
    fn tabwriter_pads_like_go() {
        let t = tabwrite("A\tBB\tC\nxxxxxxxxxxxx\ty\tz\n");
        assert_eq!(t, "A              BB        C\nxxxxxxxxxxxx   y         z\n");
    }

    #[test]
    fn json_is_indented_like_go() {
        let s = json_indent(b"[{\"a\":1,\"b\":[],\"c\":{\"d\":\"x,y\"},\"e\":[1,2]}]\n");
        assert_eq!(
            s,
            "[\n    {\n        \"a\": 1,\n        \"b\": [],\n        \"c\": {\n            \"d\": \"x,y\"\n        },\n        \"e\": [\n            1,\n            2\n        ]\n    }\n]"
        );
    }
}
