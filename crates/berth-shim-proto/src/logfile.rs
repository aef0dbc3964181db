//! The container's log files: their configuration ([`LogConfig`], part of [`crate::ShimConfig`]),
//! their names, and their two record formats. The shim writes them; the daemon reads them.
//!
//! ## Drivers and files
//! ```text
//! json-file  <bundle>/<id>-json.log           one JSON object per line (Docker's json-file)
//! local      <bundle>/local-logs/container.log protobuf LogEntry records (Docker's local)
//! none       nothing is written
//! ```
//! Rotated files sit beside the current one as `<name>.1` (the newest) … `<name>.<max_file-1>`,
//! each `.gz` once compressed.
//!
//! ## Rotation (Docker's `loggerutils.LogFile`)
//! Before an entry is written, if the current file has reached `max_size` bytes: the oldest
//! rotated file is deleted, `<name>.i` becomes `<name>.i+1`, the current file becomes `<name>.1`
//! (with `max_file` 1 it is unlinked instead) and a new, empty current file is created. A file is
//! never truncated in place, so a reader that holds one open reads it to its end. With `compress`,
//! `<name>.1` is then gzipped to `<name>.1.gz` (the gzip header's extra field holds
//! `{"lastTime":"<RFC 3339>"}`, the time of the file's last entry, so a reader with `since` can skip
//! it unopened) and `<name>.1` is removed once the `.gz` is complete; a reader looks for `<name>.i`
//! first and `<name>.i.gz` second.
//!
//! ## Record formats
//! - json-file: `{"log":"hi\n","stream":"stdout","time":"2026-11-22T19:59:07.701434457Z"}\n`; a
//!   line cut at 16 KiB (or left unterminated when the container exits) has no `\n` in `log`.
//! - local: `[len: u32 BE][LogEntry][len: u32 BE]`, where `LogEntry` is Docker's protobuf message
//!   (`source` = 1, `time_nano` = 2, `line` = 3 without its newline, `partial` = 4,
//!   `partial_log_metadata` = 5 {`last` = 1, `id` = 2, `ordinal` = 3}). The trailing length lets
//!   a reader walk records backwards from the end of the file (`logs --tail`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the container's output is logged (`HostConfig.LogConfig.Type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogDriver {
    #[default]
    #[serde(rename = "json-file")]
    JsonFile,
    #[serde(rename = "local")]
    Local,
    #[serde(rename = "none")]
    None,
}

impl LogDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::Local => "local",
            LogDriver::None => "none",
        }
    }
}

/// How the shim writes and rotates the log ([`crate::ShimConfig::log`]). The current file is
/// [`crate::ShimConfig::log_path`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub driver: LogDriver,
    /// Rotate once the current file holds this many bytes; 0 = never.
    pub max_size: u64,
    /// Files kept, the current one included; 0 and 1 both mean only the current one.
    pub max_file: u32,
    /// Gzip rotated files.
    pub compress: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: LogDriver::JsonFile,
            max_size: 0,
            max_file: 1,
            compress: false,
        }
    }
}

/// `<current>.<n>`, or `<current>.<n>.gz` when `gz`.
pub fn rotated_path(current: &Path, n: u32, gz: bool) -> PathBuf {
    let mut s = current.as_os_str().to_owned();
    s.push(format!(".{n}"));
    if gz {
        s.push(".gz");
    }
    PathBuf::from(s)
}

/// The container stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// Marks one piece of a line that was cut (Docker's `PartialLogMetaData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialMeta {
    /// Shared by every piece of the line.
    pub id: String,
    /// 1 for the first piece.
    pub ordinal: i32,
    /// The piece that ends the line.
    pub last: bool,
}

/// A record as the shim writes it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub stream: Stream,
    /// Nanoseconds since the epoch.
    pub time: i64,
    /// Without the line's newline.
    pub line: &'a [u8],
    /// The line ended (with a newline) in this record.
    pub newline: bool,
    pub partial: Option<PartialMeta>,
}

/// A record as the daemon reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: Stream,
    /// Nanoseconds since the epoch.
    pub time: i64,
    /// The bytes to show, with the newline when the line ended here.
    pub line: Vec<u8>,
}

/// Docker's json-file lines.
pub mod json {
    use super::*;

    /// Appends `e` as one line.
    pub fn encode(buf: &mut Vec<u8>, e: &Entry<'_>) {
        let mut text = String::from_utf8_lossy(e.line).into_owned();
        if e.newline {
            text.push('\n');
        }
        buf.extend_from_slice(b"{\"log\":");
        // Serialising a str cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &text);
        buf.extend_from_slice(b",\"stream\":\"");
        buf.extend_from_slice(e.stream.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"time\":\"");
        buf.extend_from_slice(berth_types::time::rfc3339_nano_fixed(e.time).as_bytes());
        buf.extend_from_slice(b"\"}\n");
    }

    #[derive(Deserialize)]
    struct Line<'a> {
        log: String,
        #[serde(borrow)]
        stream: &'a str,
        #[serde(borrow)]
        time: &'a str,
    }

    /// One line (without its `\n`); `None` when it is not a json-file record.
    pub fn decode(line: &[u8]) -> Option<Record> {
        let l: Line<'_> = serde_json::from_slice(line).ok()?;
        Some(Record {
            stream: Stream::parse(l.stream.as_bytes())?,
            time: berth_types::time::parse_rfc3339(l.time).unwrap_or(0),
            line: l.log.into_bytes(),
        })
    }
}

/// Docker's local-driver records.
pub mod local {
    use super::*;

    /// Bytes of each length field around a record.
    pub const LEN: usize = 4;
    /// The largest record a reader accepts (Docker's `maxMsgLen`).
    pub const MAX_RECORD: usize = 1_000_000;

    fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    fn bytes_field(buf: &mut Vec<u8>, field: u64, b: &[u8]) {
        if !b.is_empty() {
            varint(buf, field << 3 | 2);
            varint(buf, b.len() as u64);
            buf.extend_from_slice(b);
        }
    }

    fn varint_field(buf: &mut Vec<u8>, field: u64, v: u64) {
        if v != 0 {
            varint(buf, field << 3);
            varint(buf, v);
        }
    }

    /// Appends `e` framed: length, LogEntry, length.
    pub fn encode(buf: &mut Vec<u8>, e: &Entry<'_>) {
        let mut msg = Vec::with_capacity(e.line.len() + 32);
        bytes_field(&mut msg, 1, e.stream.as_str().as_bytes());
        varint_field(&mut msg, 2, e.time as u64);
        bytes_field(&mut msg, 3, e.line);
        if let Some(p) = &e.partial {
            varint_field(&mut msg, 4, 1);
            let mut meta = Vec::new();
            varint_field(&mut meta, 1, u64::from(p.last));
            bytes_field(&mut meta, 2, p.id.as_bytes());
            // int32 is encoded sign-extended to 64 bits.
            varint_field(&mut meta, 3, i64::from(p.ordinal) as u64);
            varint(&mut msg, 5 << 3 | 2);
            varint(&mut msg, meta.len() as u64);
            msg.extend_from_slice(&meta);
        }
        let len = (msg.len() as u32).to_be_bytes();
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&msg);
        buf.extend_from_slice(&len);
    }

    struct Fields<'a>(&'a [u8]);

    enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Other,
    }

    impl<'a> Fields<'a> {
        fn varint(&mut self) -> Option<u64> {
            let mut v = 0u64;
            for i in 0..10 {
                let (&b, rest) = self.0.split_first()?;
                self.0 = rest;
                v |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    return Some(v);
                }
            }
            None
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }

        /// The next (field number, value); `Some(None)` at the end, `None` when malformed.
        fn next_field(&mut self) -> Option<Option<(u64, Value<'a>)>> {
            if self.0.is_empty() {
                return Some(None);
            }
            let key = self.varint()?;
            let v = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Other
                }
                2 => {
                    let n = usize::try_from(self.varint()?).ok()?;
                    Value::Bytes(self.take(n)?)
                }
                5 => {
                    self.take(4)?;
                    Value::Other
                }
                _ => return None,
            };
            Some(Some((key >> 3, v)))
        }
    }

    /// One LogEntry message (without its length fields); `None` when malformed. Unknown fields
    /// (newer Docker's attributes) are skipped.
    pub fn decode(msg: &[u8]) -> Option<Record> {
        let mut f = Fields(msg);
        let (mut source, mut time, mut line, mut partial, mut last) =
            (&b""[..], 0i64, &b""[..], false, false);
        while let Some((field, v)) = f.next_field()? {
            match (field, v) {
                (1, Value::Bytes(b)) => source = b,
                (2, Value::Varint(t)) => time = t as i64,
                (3, Value::Bytes(b)) => line = b,
                (4, Value::Varint(p)) => partial = p != 0,
                (5, Value::Bytes(b)) => {
                    let mut m = Fields(b);
                    while let Some((field, v)) = m.next_field()? {
                        if let (1, Value::Varint(l)) = (field, v) {
                            last = l != 0;
                        }
                    }
                }
                _ => {}
            }
        }
        let mut line = line.to_vec();
        if !partial || last {
            line.push(b'\n');
        }
        Some(Record {
            stream: Stream::parse(source)?,
            time,
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &[u8], newline: bool, partial: Option<PartialMeta>) -> Entry<'_> {
        Entry {
            stream: Stream::Stderr,
            time: 1_795_377_547_701_434_457,
            line,
            newline,
            partial,
        }
    }

    #[test]
    fn json_records_round_trip() {
        let mut buf = Vec::new();
        json::encode(&mut buf, &entry(b"say \"hi\"", true, None));
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "{\"log\":\"say \\\"hi\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-22T19:59:07.701434457Z\"}\n"
        );
        let r = json::decode(buf.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(r.line, b"say \"hi\"\n");
        assert_eq!(r.stream, Stream::Stderr);
        assert_eq!(r.time, 1_795_377_547_701_434_457);
        assert!(json::decode(b"{\"nope\":1}").is_none());
    }

    #[test]
    fn local_records_are_framed_protobuf_like_dockers() {
        let mut buf = Vec::new();
        local::encode(&mut buf, &entry(b"hi", true, None));
        // source "stderr", time_nano, line "hi": exactly protobuf's encoding.
        let mut want = vec![0x0a, 6];
        want.extend_from_slice(b"stderr");
        want.push(0x10);
        let mut t = 1_795_377_547_701_434_457u64;
        while t >= 0x80 {
            want.push(t as u8 | 0x80);
            t >>= 7;
        }
        want.push(t as u8);
        want.extend_from_slice(&[0x1a, 2, b'h', b'i']);
        let n = (want.len() as u32).to_be_bytes();
        assert_eq!(&buf[..4], &n);
        assert_eq!(&buf[4..buf.len() - 4], &want[..]);
        assert_eq!(&buf[buf.len() - 4..], &n);
        let r = local::decode(&buf[4..buf.len() - 4]).unwrap();
        assert_eq!(r.line, b"hi\n");
        assert_eq!(r.time, 1_795_377_547_701_434_457);
    }

    #[test]
    fn local_partial_pieces_get_no_newline_until_the_last() {
        for (last, want) in [(false, &b"abc"[..]), (true, &b"abc\n"[..])] {
            let mut buf = Vec::new();
            let meta = PartialMeta {
                id: "x1".into(),
                ordinal: 2,
                last,
            };
            local::encode(&mut buf, &entry(b"abc", last, Some(meta)));
            let r = local::decode(&buf[4..buf.len() - 4]).unwrap();
            assert_eq!(r.line, want);
        }
        // An unknown field (newer Docker's attrs, field 6) is skipped.
        let mut buf = Vec::new();
        local::encode(&mut buf, &entry(b"x", true, None));
        let mut msg = buf[4..buf.len() - 4].to_vec();
        msg.extend_from_slice(&[0x32, 2, 0x0a, 0]);
        assert_eq!(local::decode(&msg).unwrap().line, b"x\n");
        assert!(local::decode(&[0x0a, 50]).is_none());
    }

    #[test]
    fn rotated_files_are_named_as_dockers() {
        let p = Path::new("/b/abc-json.log");
        assert_eq!(rotated_path(p, 1, false), Path::new("/b/abc-json.log.1"));
        assert_eq!(rotated_path(p, 3, true), Path::new("/b/abc-json.log.3.gz"));
    }
}
