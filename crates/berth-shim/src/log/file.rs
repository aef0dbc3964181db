//! The current log file and its rotation, as Docker's `loggerutils.LogFile` does it (see
//! `berth_shim_proto::logfile` for the naming and the order of renames).
//!
//! Entries are appended to a buffer and written once per chunk of container output; the size
//! check that triggers a rotation happens before each entry, so a file exceeds `max_size` by at
//! most one entry, as under Docker. Compressing the rotated file runs in steps from the shim's
//! poll loop ([`LogFile::step`]), so a rotation never stalls the container's output for long.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use berth_shim_proto::logfile::rotated_path;
use berth_shim_proto::LogConfig;
use flate2::write::GzEncoder;

/// Log files are owner-only: they hold whatever the container prints, secrets included
/// (berth-daemon's perms.rs; Docker uses 0640 with root's group, which is no wider in practice).
const MODE: u32 = 0o600;
/// Bytes compressed per [`LogFile::step`].
const STEP: usize = 256 * 1024;

/// A rotated file being gzipped.
struct Gzip {
    src: File,
    src_path: PathBuf,
    enc: GzEncoder<File>,
}

pub struct LogFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file, the unwritten buffer included.
    size: u64,
    buf: Vec<u8>,
    max_size: u64,
    max_file: u32,
    compress: bool,
    /// Time of the last entry (for the gzip header of the file it ends up in).
    last_time: i64,
    gzip: Option<Gzip>,
}

fn open_new(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(MODE);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

impl LogFile {
    /// Opens (appending, creating; its directory too, 0700) the current file at `path`.
    pub fn open(path: &Path, cfg: &LogConfig) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = open_new(path, true)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            buf: Vec::new(),
            max_size: cfg.max_size,
            max_file: cfg.max_file.max(1),
            compress: cfg.compress && cfg.max_file > 1,
            last_time: 0,
            gzip: None,
        })
    }

    /// Adds one encoded entry (written at the next [`LogFile::flush`]), rotating first if the
    /// current file is full.
    pub fn append(&mut self, entry: &[u8], time: i64) {
        if self.max_size > 0 && self.size >= self.max_size {
            self.flush();
            if let Err(e) = self.rotate() {
                eprintln!("berth-shim: rotate log {}: {e}", self.path.display());
            }
        }
        self.buf.extend_from_slice(entry);
        self.size += entry.len() as u64;
        self.last_time = time;
    }

    /// Writes what [`LogFile::append`] buffered.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            eprintln!("berth-shim: write log {}: {e}", self.path.display());
        }
        self.buf.clear();
        if self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        // A rotation waits for the previous compression: `.1` must be `.1.gz` before it moves.
        self.finish();
        let gz_path = |n| rotated_path(&self.path, n, self.compress);
        if self.max_file < 2 {
            ignore_missing(std::fs::remove_file(&self.path))?;
        } else {
            ignore_missing(std::fs::remove_file(gz_path(self.max_file - 1)))?;
            for i in (2..self.max_file).rev() {
                ignore_missing(std::fs::rename(gz_path(i - 1), gz_path(i)))?;
            }
            std::fs::rename(&self.path, rotated_path(&self.path, 1, false))?;
        }
        self.file = open_new(&self.path, false)?;
        self.size = 0;
        if self.compress {
            let src_path = rotated_path(&self.path, 1, false);
            let src = File::open(&src_path)?;
            let dst = open_new(&rotated_path(&self.path, 1, true), false)?;
            // Docker's gzip header: the time of the file's last entry, for readers with `since`.
            let extra = format!(
                "{{\"lastTime\":\"{}\"}}",
                berth_types::time::rfc3339_nano(self.last_time)
            );
            let enc = flate2::GzBuilder::new()
                .extra(extra.into_bytes())
                .write(dst, flate2::Compression::default());
            self.gzip = Some(Gzip { src, src_path, enc });
        }
        Ok(())
    }

    /// Frees the buffer when it is empty.
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Whether a compression is under way ([`LogFile::step`] has work).
    pub fn busy(&self) -> bool {
        self.gzip.is_some()
    }

    /// Compresses the next part of the rotated file; at its end, removes the uncompressed copy.
    pub fn step(&mut self) {
        let Some(g) = &mut self.gzip else { return };
        let mut chunk = vec![0u8; STEP];
        let res = match g.src.read(&mut chunk) {
            Ok(0) => {
                let done = self.gzip.take().expect("gzip in progress");
                let res = done.enc.finish().and_then(|f| f.sync_all());
                match res {
                    Ok(()) => ignore_missing(std::fs::remove_file(&done.src_path)),
                    Err(e) => {
                        // Keep the uncompressed file; drop the broken .gz (readers prefer `.1`).
                        let _ = std::fs::remove_file(rotated_path(&self.path, 1, true));
                        Err(e)
                    }
                }
            }
            Ok(n) => g.enc.write_all(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            eprintln!("berth-shim: compress rotated log of {}: {e}", self.path.display());
            self.gzip = None;
        }
    }

    /// Writes the buffer and completes any compression (at exit).
    pub fn finish(&mut self) {
        self.flush();
        while self.busy() {
            self.step();
        }
    }
}

fn ignore_missing(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
