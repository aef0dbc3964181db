//! Reading a container's log files (written by the shim; formats and names in
//! `berth_shim_proto::logfile`): the history across rotated files, `--tail` by seeking from the
//! end, and a [`Cursor`] that follows the current file across rotations. Blocking code: the
//! caller runs it on tokio's blocking pool.
//!
//! Tail never reads a file from its start: json-file lines are counted backwards in
//! [`BLOCK`]-sized reads from the end, local records are walked backwards through the length
//! that ends each record ([`tail_start`]). Only a compressed rotated file, which cannot be read
//! backwards, is decompressed as a stream when the tail reaches into it.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_shim_proto::logfile::{json, local, rotated_path, Record};
use berth_shim_proto::LogDriver;

/// Bytes read per step, forwards or backwards.
pub(crate) const BLOCK: usize = 64 * 1024;

/// Where a record goes; `false` means the reader is gone (stop).
pub(crate) type Emit<'a> = dyn FnMut(Record) -> bool + 'a;

/// Splits a byte stream into records, keeping an incomplete last record for the next bytes.
pub(crate) struct Decoder {
    driver: LogDriver,
    pending: Vec<u8>,
}

impl Decoder {
    pub(crate) fn new(driver: LogDriver) -> Self {
        Decoder {
            driver,
            pending: Vec::new(),
        }
    }

    /// Decodes what `data` completes; `false` when `emit` said stop.
    pub(crate) fn feed(&mut self, data: &[u8], emit: &mut Emit<'_>) -> bool {
        self.pending.extend_from_slice(data);
        let mut used = 0;
        let mut go = true;
        match self.driver {
            LogDriver::Local => {
                while go && self.pending.len() - used >= 2 * local::LEN {
                    let p = &self.pending[used..];
                    let n = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
                    if n > local::MAX_RECORD {
                        // Not a record boundary: the rest of this file cannot be trusted.
                        used = self.pending.len();
                        break;
                    }
                    if p.len() < n + 2 * local::LEN {
                        break;
                    }
                    if let Some(r) = local::decode(&p[local::LEN..local::LEN + n]) {
                        go = emit(r);
                    }
                    used += n + 2 * local::LEN;
                }
            }
            _ => {
                while go {
                    let Some(i) = self.pending[used..].iter().position(|&b| b == b'\n') else {
                        break;
                    };
                    if let Some(r) = json::decode(&self.pending[used..used + i]) {
                        go = emit(r);
                    }
                    used += i + 1;
                }
            }
        }
        self.pending.drain(..used);
        if self.pending.is_empty() && self.pending.capacity() > BLOCK {
            self.pending = Vec::new();
        }
        go
    }

    fn reset(&mut self) {
        self.pending = Vec::new();
    }
}

/// Where the last `n` records of a file of `len` bytes start, and how many of them there are
/// (fewer than `n` when the file holds fewer): found by reading backwards from the end.
pub(crate) fn tail_start<R: Read + Seek>(
    f: &mut R,
    len: u64,
    driver: LogDriver,
    n: usize,
) -> std::io::Result<(u64, usize)> {
    if n == 0 || len == 0 {
        return Ok((len, 0));
    }
    if driver == LogDriver::Local {
        let mut pos = len;
        let mut found = 0;
        let mut b = [0u8; local::LEN];
        while found < n && pos >= 2 * local::LEN as u64 {
            f.seek(SeekFrom::Start(pos - local::LEN as u64))?;
            f.read_exact(&mut b)?;
            let size = u32::from_be_bytes(b) as u64;
            let Some(start) = pos.checked_sub(size + 2 * local::LEN as u64) else {
                break;
            };
            f.seek(SeekFrom::Start(start))?;
            f.read_exact(&mut b)?;
            if u32::from_be_bytes(b) as u64 != size {
                break;
            }
            pos = start;
            found += 1;
        }
        return Ok((pos, found));
    }
    // json-file: the n-th newline from the end, not counting the one that ends the file.
    let mut buf = vec![0u8; BLOCK];
    let mut end = len;
    let mut found = 0;
    while end > 0 {
        let start = end.saturating_sub(BLOCK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        for i in (0..chunk.len()).rev() {
            let at = start + i as u64;
            if chunk[i] == b'\n' && at != len - 1 {
                found += 1;
                if found == n {
                    return Ok((at + 1, n));
                }
            }
        }
        end = start;
    }
    // The first line has no newline before it.
    Ok((0, found + 1))
}

/// A rotated file, opened.
enum Rotated {
    Plain(File),
    /// Decompressed when read.
    Gz(PathBuf),
}

/// The rotated files of `current`, oldest first. Files whose gzip header says they end before
/// `since` are skipped (and everything older with them). A file met twice (a rotation racing
/// the listing renamed it) is kept once.
fn rotated_files(current: &Path, max_file: u32, since: i64, seen: &mut Vec<(u64, u64)>) -> Vec<Rotated> {
    let mut out = Vec::new();
    for i in 1..max_file.max(1) {
        match File::open(rotated_path(current, i, false)) {
            Ok(f) => {
                let id = f.metadata().map(|m| (m.dev(), m.ino())).unwrap_or_default();
                if !seen.contains(&id) {
                    seen.push(id);
                    out.push(Rotated::Plain(f));
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(_) => continue,
        }
        let gz = rotated_path(current, i, true);
        let Ok(f) = File::open(&gz) else { continue };
        if since != 0 && gz_last_time(f).is_some_and(|t| t < since) {
            break;
        }
        out.push(Rotated::Gz(gz));
    }
    out.reverse();
    out
}

/// The `lastTime` Docker's rotation writes into the gzip header's extra field.
fn gz_last_time(f: File) -> Option<i64> {
    let d = flate2::read::GzDecoder::new(f);
    let extra = d.header()?.extra()?;
    let v: serde_json::Value = serde_json::from_slice(extra).ok()?;
    berth_types::time::parse_rfc3339(v.get("lastTime")?.as_str()?)
}

/// Feeds a whole reader to a fresh decoder; `false` when `emit` said stop.
fn read_all(r: &mut impl Read, driver: LogDriver, emit: &mut Emit<'_>) -> std::io::Result<bool> {
    let mut dec = Decoder::new(driver);
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !dec.feed(&buf[..n], emit) {
            return Ok(false);
        }
    }
}

/// Emits a rotated file's records after skipping the first `skip`.
fn read_rotated(f: Rotated, driver: LogDriver, skip: usize, emit: &mut Emit<'_>) -> std::io::Result<bool> {
    let mut seen = 0usize;
    let mut emit_after = |r: Record| {
        seen += 1;
        seen <= skip || emit(r)
    };
    match f {
        Rotated::Plain(mut f) => read_all(&mut f, driver, &mut emit_after),
        Rotated::Gz(p) => read_all(
            &mut flate2::read::GzDecoder::new(File::open(p)?),
            driver,
            &mut emit_after,
        ),
    }
}

/// Records in a rotated file, and the offset where its last `n` start when it is a plain file.
fn count_tail(f: &mut Rotated, driver: LogDriver, n: usize) -> std::io::Result<(usize, usize)> {
    match f {
        Rotated::Plain(f) => {
            let len = f.metadata()?.len();
            let (at, found) = tail_start(f, len, driver, n)?;
            f.seek(SeekFrom::Start(at))?;
            Ok((found, 0))
        }
        Rotated::Gz(p) => {
            let mut total = 0usize;
            read_all(
                &mut flate2::read::GzDecoder::new(File::open(&*p)?),
                driver,
                &mut |_| {
                    total += 1;
                    true
                },
            )?;
            let take = total.min(n);
            Ok((take, total - take))
        }
    }
}

/// Follows one log set's current file: reads what was appended since the last call, and moves
/// on to the new current file when the one it holds was rotated away (after reading it to its
/// end: the shim never writes to a file again once it is rotated).
pub(crate) struct Cursor {
    path: PathBuf,
    file: Option<(File, (u64, u64))>,
    offset: u64,
    dec: Decoder,
}

impl Cursor {
    fn open(&mut self) -> bool {
        match File::open(&self.path) {
            Ok(f) => {
                let id = f.metadata().map(|m| (m.dev(), m.ino())).unwrap_or_default();
                self.file = Some((f, id));
                self.offset = 0;
                self.dec.reset();
                true
            }
            Err(_) => false,
        }
    }

    /// Reads from the offset to `limit` (or the end); `false` when `emit` said stop.
    fn read_to(&mut self, limit: Option<u64>, emit: &mut Emit<'_>) -> bool {
        let Some((f, _)) = &self.file else { return true };
        let mut buf = vec![0u8; BLOCK];
        loop {
            let want = match limit {
                Some(l) if l <= self.offset => return true,
                Some(l) => ((l - self.offset) as usize).min(BLOCK),
                None => BLOCK,
            };
            let n = match f.read_at(&mut buf[..want], self.offset) {
                Ok(0) => return true,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return true,
            };
            self.offset += n as u64;
            if !self.dec.feed(&buf[..n], emit) {
                return false;
            }
        }
    }

    /// Emits every record written since the last call; `false` when `emit` said stop.
    pub(crate) fn follow(&mut self, emit: &mut Emit<'_>) -> bool {
        loop {
            if self.file.is_none() && !self.open() {
                return true;
            }
            if !self.read_to(None, emit) {
                return false;
            }
            let held = self.file.as_ref().map(|(_, id)| *id);
            match std::fs::metadata(&self.path) {
                Ok(m) if Some((m.dev(), m.ino())) == held => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => return true,
            }
            // Rotated: the file held is complete; finish it and take the new one.
            if !self.read_to(None, emit) {
                return false;
            }
            self.file = None;
        }
    }
}

/// What to read from a container's log.
pub(crate) struct LogSet {
    /// The current file.
    pub path: PathBuf,
    pub driver: LogDriver,
    pub max_file: u32,
}

/// Emits the log's history — the last `tail` records, or all — and returns the cursor positioned
/// at its end, for following. `since` only lets whole compressed files be skipped; the caller
/// filters records.
pub(crate) fn history(
    set: &LogSet,
    tail: Option<usize>,
    since: i64,
    emit: &mut Emit<'_>,
) -> std::io::Result<Option<Cursor>> {
    let mut cur = Cursor {
        path: set.path.clone(),
        file: None,
        offset: 0,
        dec: Decoder::new(set.driver),
    };
    cur.open();
    let mut seen = Vec::new();
    let len = match &cur.file {
        Some((f, id)) => {
            seen.push(*id);
            f.metadata()?.len()
        }
        None => 0,
    };
    let rotated = rotated_files(&set.path, set.max_file, since, &mut seen);
    let mut plan: Vec<(Rotated, usize)> = Vec::new();
    match tail {
        None => {
            plan = rotated.into_iter().map(|r| (r, 0)).collect();
        }
        Some(n) => {
            let mut need = n;
            if let Some((f, _)) = &mut cur.file {
                let (at, found) = tail_start(f, len, set.driver, n)?;
                cur.offset = at;
                need -= found;
            }
            for mut r in rotated.into_iter().rev() {
                if need == 0 {
                    break;
                }
                let (found, skip) = count_tail(&mut r, set.driver, need)?;
                need -= found;
                plan.push((r, skip));
            }
            plan.reverse();
        }
    }
    for (r, skip) in plan {
        if !read_rotated(r, set.driver, skip, emit)? {
            return Ok(None);
        }
    }
    if !cur.read_to(Some(len), emit) {
        return Ok(None);
    }
    Ok(Some(cur))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_shim_proto::logfile::{Entry, Stream};
    use std::io::Cursor as Mem;

    fn encode(driver: LogDriver, lines: impl IntoIterator<Item = String>) -> Vec<u8> {
        let mut buf = Vec::new();
        for (i, l) in lines.into_iter().enumerate() {
            let e = Entry {
                stream: Stream::Stdout,
                time: 1_000 + i as i64,
                line: l.as_bytes(),
                newline: true,
                partial: None,
            };
            match driver {
                LogDriver::Local => local::encode(&mut buf, &e),
                _ => json::encode(&mut buf, &e),
            }
        }
        buf
    }

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(b)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, p: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(p)
        }
    }

    fn decode_from(data: &[u8], driver: LogDriver, at: u64) -> Vec<String> {
        let mut got = Vec::new();
        Decoder::new(driver).feed(&data[at as usize..], &mut |r| {
            got.push(String::from_utf8(r.line).unwrap());
            true
        });
        got
    }

    #[test]
    fn tail_of_a_50_mb_log_reads_only_its_end() {
        for driver in [LogDriver::JsonFile, LogDriver::Local] {
            let data = encode(
                driver,
                (0..400_000).map(|i| format!("line {i:07} {}", "x".repeat(80))),
            );
            assert!(data.len() > 35_000_000, "{}", data.len());
            let mut f = Counting {
                inner: Mem::new(&data[..]),
                read: 0,
            };
            let (at, found) = tail_start(&mut f, data.len() as u64, driver, 3).unwrap();
            assert_eq!(found, 3);
            assert!(
                f.read <= BLOCK as u64,
                "{driver:?}: read {} bytes for 3 lines",
                f.read
            );
            let got = decode_from(&data, driver, at);
            let want: Vec<String> = (399_997..400_000)
                .map(|i| format!("line {i:07} {}\n", "x".repeat(80)))
                .collect();
            assert_eq!(got, want, "{driver:?}");
        }
    }

    #[test]
    fn tail_longer_than_the_file_gives_everything() {
        for driver in [LogDriver::JsonFile, LogDriver::Local] {
            let data = encode(driver, (0..5).map(|i| format!("l{i}")));
            let (at, found) = tail_start(&mut Mem::new(&data[..]), data.len() as u64, driver, 10).unwrap();
            assert_eq!((at, found), (0, 5), "{driver:?}");
            let (at, found) = tail_start(&mut Mem::new(&data[..]), data.len() as u64, driver, 5).unwrap();
            assert_eq!((at, found), (0, 5), "{driver:?}");
            let (_, found) = tail_start(&mut Mem::new(&data[..]), data.len() as u64, driver, 0).unwrap();
            assert_eq!(found, 0);
        }
    }

    #[test]
    fn decoder_keeps_a_split_record_for_the_next_bytes() {
        for driver in [LogDriver::JsonFile, LogDriver::Local] {
            let data = encode(driver, ["a".to_string(), "b".to_string()]);
            let mut dec = Decoder::new(driver);
            let mut got = Vec::new();
            for b in data.chunks(3) {
                dec.feed(b, &mut |r| {
                    got.push(r.line);
                    true
                });
            }
            assert_eq!(got, [b"a\n".to_vec(), b"b\n".to_vec()], "{driver:?}");
        }
    }

    fn write_set(dir: &Path, driver: LogDriver, files: &[(&str, std::ops::Range<u32>)]) -> PathBuf {
        let cur = dir.join("c.log");
        for (name, range) in files {
            let data = encode(driver, range.clone().map(|i| format!("{i}")));
            let p = dir.join(name);
            if name.ends_with(".gz") {
                let mut e =
                    flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::default());
                std::io::Write::write_all(&mut e, &data).unwrap();
                e.finish().unwrap();
            } else {
                std::fs::write(&p, data).unwrap();
            }
        }
        cur
    }

    fn collect(set: &LogSet, tail: Option<usize>) -> Vec<u32> {
        let mut got = Vec::new();
        history(set, tail, 0, &mut |r| {
            got.push(String::from_utf8(r.line).unwrap().trim().parse().unwrap());
            true
        })
        .unwrap();
        got
    }

    #[test]
    fn history_reads_rotated_files_oldest_first_with_tail_across_them() {
        for driver in [LogDriver::JsonFile, LogDriver::Local] {
            let d = tempfile::tempdir().unwrap();
            let path = write_set(
                d.path(),
                driver,
                &[
                    ("c.log.3.gz", 0..10),
                    ("c.log.2.gz", 10..20),
                    ("c.log.1", 20..30),
                    ("c.log", 30..35),
                ],
            );
            let set = LogSet {
                path,
                driver,
                max_file: 4,
            };
            assert_eq!(collect(&set, None), (0..35).collect::<Vec<_>>());
            assert_eq!(collect(&set, Some(3)), (32..35).collect::<Vec<_>>());
            assert_eq!(collect(&set, Some(12)), (23..35).collect::<Vec<_>>());
            assert_eq!(collect(&set, Some(22)), (13..35).collect::<Vec<_>>());
            assert_eq!(collect(&set, Some(100)), (0..35).collect::<Vec<_>>());
            assert_eq!(collect(&set, Some(0)), Vec::<u32>::new());
            // max-file bounds what is looked at.
            let set = LogSet { max_file: 2, ..set };
            assert_eq!(collect(&set, None), (20..35).collect::<Vec<_>>());
        }
    }

    #[test]
    fn cursor_follows_the_current_file_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let driver = LogDriver::JsonFile;
        let path = write_set(d.path(), driver, &[("c.log", 0..2)]);
        let set = LogSet {
            path: path.clone(),
            driver,
            max_file: 2,
        };
        let mut cur = history(&set, None, 0, &mut |_| true).unwrap().unwrap();
        let mut got = Vec::new();
        let mut take = |r: Record| {
            got.push(String::from_utf8(r.line).unwrap());
            true
        };
        // Appended to the held file, then rotated away, then a new current file.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &encode(driver, ["2".to_string()])).unwrap();
        std::fs::rename(&path, d.path().join("c.log.1")).unwrap();
        std::io::Write::write_all(&mut f, &encode(driver, ["3".to_string()])).unwrap();
        std::fs::write(&path, encode(driver, ["4".to_string()])).unwrap();
        assert!(cur.follow(&mut take));
        assert!(cur.follow(&mut take));
        assert_eq!(got, ["2\n", "3\n", "4\n"]);
    }
}
