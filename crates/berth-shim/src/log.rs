//! The json-file log, in Docker's format: one JSON object per line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-22T19:59:07.701434457Z"}`.
//!
//! Output is split at newlines; a partial line is held per stream and written when it reaches
//! [`MAX_PARTIAL`] or when the container exits ([`JsonLog::flush`]).

use std::fs::File;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// A partial line longer than this is written without waiting for its newline (Docker's 16 KiB).
pub const MAX_PARTIAL: usize = 16 * 1024;

/// `2026-11-22T19:59:07.701434457Z` for now.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// RFC 3339 UTC with nanoseconds for a Unix time.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days → civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One stream's pending partial line.
#[derive(Default)]
struct Partial(Vec<u8>);

/// Appends container output to the json-file log.
pub struct JsonLog {
    file: Option<File>,
    out: Partial,
    err: Partial,
}

impl JsonLog {
    /// Opens (appending, creating) `path`; an empty path or an open failure disables the log.
    pub fn open(path: &str) -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        let file = if path.is_empty() {
            None
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600) // container output may hold secrets
                .open(path)
                .map_err(|e| eprintln!("berth-shim: open log {path}: {e}"))
                .ok()
        };
        JsonLog {
            file,
            out: Partial::default(),
            err: Partial::default(),
        }
    }

    /// Logs a chunk of `stream` (`stdout` or `stderr`) output.
    pub fn write(&mut self, stderr: bool, mut data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let time = now_rfc3339();
        let stream = if stderr { "stderr" } else { "stdout" };
        let mut buf = Vec::new();
        let partial = if stderr { &mut self.err } else { &mut self.out };
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            partial.0.extend_from_slice(&data[..=i]);
            entry(&mut buf, &partial.0, stream, &time);
            partial.0.clear();
            data = &data[i + 1..];
        }
        partial.0.extend_from_slice(data);
        while partial.0.len() >= MAX_PARTIAL {
            let rest = partial.0.split_off(MAX_PARTIAL);
            entry(&mut buf, &partial.0, stream, &time);
            partial.0 = rest;
        }
        if partial.0.is_empty() && partial.0.capacity() > 4096 {
            partial.0 = Vec::new();
        }
        self.append(&buf);
    }

    /// Writes any partial lines (at exit).
    pub fn flush(&mut self) {
        let time = now_rfc3339();
        let mut buf = Vec::new();
        for (p, stream) in [(&mut self.out, "stdout"), (&mut self.err, "stderr")] {
            if !p.0.is_empty() {
                entry(&mut buf, &p.0, stream, &time);
                p.0 = Vec::new();
            }
        }
        self.append(&buf);
    }

    fn append(&mut self, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(buf) {
                eprintln!("berth-shim: write log: {e}");
            }
        }
    }
}

fn entry(buf: &mut Vec<u8>, line: &[u8], stream: &str, time: &str) {
    let text = String::from_utf8_lossy(line);
    buf.extend_from_slice(b"{\"log\":");
    // Serialising a str cannot fail.
    let _ = serde_json::to_writer(&mut *buf, text.as_ref());
    buf.extend_from_slice(b",\"stream\":\"");
    buf.extend_from_slice(stream.as_bytes());
    buf.extend_from_slice(b"\",\"time\":\"");
    buf.extend_from_slice(time.as_bytes());
    buf.extend_from_slice(b"\"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time_like_docker() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_377_547, 701_434_457),
            "2026-11-22T19:59:07.701434457Z"
        );
        assert_eq!(rfc3339(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn splits_lines_and_flushes_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut l = JsonLog::open(p.to_str().unwrap());
        l.write(false, b"hi\nwor");
        l.write(false, b"ld\n\"q\"");
        l.write(true, b"oops\n");
        l.flush();
        let s = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = s.lines().map(|x| serde_json::from_str(x).unwrap()).collect();
        let got: Vec<(&str, &str)> = lines
            .iter()
            .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("hi\n", "stdout"),
                ("world\n", "stdout"),
                ("oops\n", "stderr"),
                ("\"q\"", "stdout")
            ]
        );
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn long_lines_are_cut_at_16k() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut l = JsonLog::open(p.to_str().unwrap());
        l.write(false, &vec![b'a'; MAX_PARTIAL + 10]);
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s.lines().count(), 1);
        l.flush();
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s.lines().count(), 2);
    }
}
