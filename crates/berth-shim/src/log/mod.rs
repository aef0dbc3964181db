//! The container's log: output split into records (Docker's line splitting: a record per line,
//! a line longer than [`MAX_PARTIAL`] cut into partial records, an unterminated line written when
//! the container exits), encoded for the configured driver (json-file or local, see
//! `berth_shim_proto::logfile`) and appended to a rotating [`file::LogFile`]. With the `none`
//! driver nothing is kept.

mod file;

use std::path::Path;

use berth_shim_proto::logfile::{json, local, Entry, PartialMeta, Stream};
use berth_shim_proto::{LogConfig, LogDriver};
use berth_types::time::now_nanos;

use file::LogFile;

/// A partial line longer than this is written without waiting for its newline (Docker's 16 KiB).
pub const MAX_PARTIAL: usize = 16 * 1024;
/// `2026-11-22T19:59:07.701434457Z` for now (docker's fixed nine digits).
pub fn now_rfc3339() -> String {
    berth_types::time::rfc3339_nano_fixed(berth_types::time::now_nanos())
}

/// One stream's pending partial line, and the identity of the line being cut into pieces.
#[derive(Default)]
struct Partial {
    buf: Vec<u8>,
    id: Option<String>,
    ordinal: i32,
}

impl Partial {
    /// Metadata for a piece cut before the newline.
    fn cut(&mut self) -> PartialMeta {
        let id = self.id.get_or_insert_with(random_id).clone();
        self.ordinal += 1;
        PartialMeta {
            id,
            ordinal: self.ordinal,
            last: false,
        }
    }

    /// Metadata for the piece that ends the line (none if the line was never cut).
    fn end(&mut self) -> Option<PartialMeta> {
        let id = self.id.take()?;
        self.ordinal += 1;
        let m = PartialMeta {
            id,
            ordinal: self.ordinal,
            last: true,
        };
        self.ordinal = 0;
        Some(m)
    }
}

/// 64 hex digits, like Docker's partial-message IDs.
fn random_id() -> String {
    let mut b = [0u8; 32];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Appends container output to the container's log.
pub struct ContainerLog {
    file: Option<LogFile>,
    driver: LogDriver,
    out: Partial,
    err: Partial,
}

impl ContainerLog {
    /// Opens (appending, creating) `path` for `cfg`'s driver; an empty path, the `none` driver or
    /// an open failure disables the log.
    pub fn open(path: &str, cfg: &LogConfig) -> Self {
        let file = if path.is_empty() || cfg.driver == LogDriver::None {
            None
        } else {
            LogFile::open(Path::new(path), cfg)
                .map_err(|e| eprintln!("berth-shim: open log {path}: {e}"))
                .ok()
        };
        ContainerLog {
            file,
            driver: cfg.driver,
            out: Partial::default(),
            err: Partial::default(),
        }
    }

    /// Logs a chunk of `stream` (`stdout` or `stderr`) output.
    pub fn write(&mut self, stderr: bool, mut data: &[u8]) {
        let Some(file) = &mut self.file else { return };
        let time = now_nanos();
        let (stream, p) = if stderr {
            (Stream::Stderr, &mut self.err)
        } else {
            (Stream::Stdout, &mut self.out)
        };
        let mut enc = Vec::new();
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            p.buf.extend_from_slice(&data[..i]);
            let partial = p.end();
            record(
                self.driver,
                file,
                &mut enc,
                &Entry {
                    stream,
                    time,
                    line: &p.buf,
                    newline: true,
                    partial,
                },
            );
            p.buf.clear();
            data = &data[i + 1..];
        }
        p.buf.extend_from_slice(data);
        while p.buf.len() >= MAX_PARTIAL {
            let rest = p.buf.split_off(MAX_PARTIAL);
            let partial = Some(p.cut());
            record(
                self.driver,
                file,
                &mut enc,
                &Entry {
                    stream,
                    time,
                    line: &p.buf,
                    newline: false,
                    partial,
                },
            );
            p.buf = rest;
        }
        if p.buf.is_empty() && p.buf.capacity() > 4096 {
            p.buf = Vec::new();
        }
        file.flush();
    }

    /// Writes any partial lines and completes a compression under way (at exit): once this
    /// returns, the shim writes nothing more to the log set.
    pub fn flush(&mut self) {
        let Some(file) = &mut self.file else { return };
        let time = now_nanos();
        let mut enc = Vec::new();
        for (p, stream) in [(&mut self.out, Stream::Stdout), (&mut self.err, Stream::Stderr)] {
            if !p.buf.is_empty() {
                let partial = Some(p.cut());
                record(
                    self.driver,
                    file,
                    &mut enc,
                    &Entry {
                        stream,
                        time,
                        line: &p.buf,
                        newline: false,
                        partial,
                    },
                );
                *p = Partial::default();
            }
        }
        file.finish();
    }

    /// Frees the write buffer if nothing waits in it (when the shim goes idle).
    pub fn release_buffer(&mut self) {
        if let Some(f) = &mut self.file {
            f.release_buffer();
        }
    }

    /// A rotated file is being compressed: call [`ContainerLog::step`] when idle.
    pub fn busy(&self) -> bool {
        self.file.as_ref().is_some_and(LogFile::busy)
    }

    /// The next step of a compression under way.
    pub fn step(&mut self) {
        if let Some(f) = &mut self.file {
            f.step();
        }
    }
}

fn record(driver: LogDriver, file: &mut LogFile, enc: &mut Vec<u8>, e: &Entry<'_>) {
    enc.clear();
    match driver {
        LogDriver::Local => local::encode(enc, e),
        _ => json::encode(enc, e),
    }
    file.append(enc, e.time);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_flushes_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut l = ContainerLog::open(p.to_str().unwrap(), &LogConfig::default());
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
        let mut l = ContainerLog::open(p.to_str().unwrap(), &LogConfig::default());
        l.write(false, &vec![b'a'; MAX_PARTIAL + 10]);
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s.lines().count(), 1);
        l.flush();
        let s = std::fs::read_to_string(&p).unwrap();
        assert_eq!(s.lines().count(), 2);
    }

    fn lines_of(path: &std::path::Path) -> Vec<String> {
        let s = std::fs::read_to_string(path).unwrap();
        s.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["log"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn rotating(max_size: u64, max_file: u32, compress: bool) -> LogConfig {
        LogConfig {
            driver: LogDriver::JsonFile,
            max_size,
            max_file,
            compress,
        }
    }

    #[test]
    fn rotation_keeps_max_file_files_named_like_dockers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut l = ContainerLog::open(p.to_str().unwrap(), &rotating(200, 3, false));
        for i in 0..20 {
            l.write(false, format!("line {i:02}\n").as_bytes());
        }
        l.flush();
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["x-json.log", "x-json.log.1", "x-json.log.2"]);
        // Oldest to newest, the kept lines are the last ones, in order, with no gap.
        let mut all = Vec::new();
        for f in ["x-json.log.2", "x-json.log.1", "x-json.log"] {
            let ls = lines_of(&d.path().join(f));
            assert!(!ls.is_empty(), "{f} is empty");
            all.extend(ls);
        }
        let first: usize = all[0][5..7].parse().unwrap();
        let want: Vec<String> = (first..20).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(all, want);
        // Each rotated file reached max-size before the rotation, and exceeds it by < 1 entry.
        for f in ["x-json.log.2", "x-json.log.1"] {
            let n = std::fs::metadata(d.path().join(f)).unwrap().len();
            assert!((200..300).contains(&n), "{f}: {n} bytes");
        }
    }

    #[test]
    fn max_file_1_replaces_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut l = ContainerLog::open(p.to_str().unwrap(), &rotating(100, 1, false));
        for i in 0..10 {
            l.write(false, format!("line {i}\n").as_bytes());
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let ls = lines_of(&p);
        assert_eq!(ls.last().unwrap(), "line 9\n");
        assert!(ls.len() < 10);
    }

    #[test]
    fn compressed_rotations_are_gzip_with_dockers_header() {
        use std::io::Read;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut l = ContainerLog::open(p.to_str().unwrap(), &rotating(300, 3, true));
        for i in 0..30 {
            l.write(false, format!("line {i:02}\n").as_bytes());
            while l.busy() {
                l.step();
            }
        }
        l.flush();
        assert!(!d.path().join("x-json.log.1").exists());
        let gz = std::fs::File::open(d.path().join("x-json.log.1.gz")).unwrap();
        let mut dec = flate2::read::GzDecoder::new(gz);
        let mut text = String::new();
        dec.read_to_string(&mut text).unwrap();
        let extra = String::from_utf8(dec.header().unwrap().extra().unwrap().to_vec()).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let t = berth_types::time::parse_rfc3339(last["time"].as_str().unwrap()).unwrap();
        assert_eq!(
            extra,
            format!("{{\"lastTime\":\"{}\"}}", berth_types::time::rfc3339_nano(t))
        );
        assert!(d.path().join("x-json.log.2.gz").exists());
        assert!(!d.path().join("x-json.log.3.gz").exists());
    }

    #[test]
    fn local_driver_writes_framed_records_in_local_logs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("local-logs/container.log");
        let cfg = LogConfig {
            driver: LogDriver::Local,
            ..LogConfig::default()
        };
        let mut l = ContainerLog::open(p.to_str().unwrap(), &cfg);
        l.write(true, b"a\nb");
        l.flush();
        let b = std::fs::read(&p).unwrap();
        let mut recs = Vec::new();
        let mut rest = &b[..];
        while !rest.is_empty() {
            let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            assert_eq!(rest[4 + n..8 + n], rest[..4]);
            recs.push(berth_shim_proto::logfile::local::decode(&rest[4..4 + n]).unwrap());
            rest = &rest[8 + n..];
        }
        let lines: Vec<&[u8]> = recs.iter().map(|r| &r.line[..]).collect();
        assert_eq!(lines, [&b"a\n"[..], &b"b"[..]]);
        assert_eq!(recs[0].stream, Stream::Stderr);
    }

    #[test]
    fn none_driver_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let cfg = LogConfig {
            driver: LogDriver::None,
            ..LogConfig::default()
        };
        let mut l = ContainerLog::open(p.to_str().unwrap(), &cfg);
        l.write(false, b"hi\n");
        l.flush();
        assert!(!p.exists());
    }
}
