//! A blob on its way in: written by a download as it arrives, read by the unpacker as it grows.
//!
//! Pulls download several layers at once and unpack them in order. Each download appends to
//! its spool, a file under `content/ingest/` (never memory, whatever the layer's size); the
//! unpacker reads the spool through [`SpoolReader`], which waits at the end of what has arrived
//! until more comes or the download ends. So the layer being unpacked streams from the network
//! while the next ones download. A download that fails mid-way can resume from
//! [`Spool::written`]; two pulls that need the same blob read the same spool. The file is
//! deleted with the last handle; a crash leaves it in `ingest/`, which start-up reconciliation
//! clears.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::{Error, ImageService};

static SPOOL_SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
struct State {
    written: u64,
    /// `Some` once the download ended: `Ok` complete (and verified by the writer), or why not.
    done: Option<Result<(), String>>,
}

/// See the module doc.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    out: Mutex<File>,
    state: Mutex<State>,
    grew: Condvar,
}

impl ImageService {
    /// A new, empty spool under `content/ingest/`.
    pub fn spool(&self) -> Result<Arc<Spool>, Error> {
        let path = self.content.root().join("ingest").join(format!(
            "spool-{}-{}",
            std::process::id(),
            SPOOL_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let out = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|err| Error::Read {
                what: "download spool",
                err,
            })?;
        Ok(Arc::new(Spool {
            path,
            out: Mutex::new(out),
            state: Mutex::default(),
            grew: Condvar::new(),
        }))
    }
}

impl Spool {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends bytes that arrived.
    pub fn write(&self, buf: &[u8]) -> io::Result<()> {
        self.out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(buf)?;
        self.state().written += buf.len() as u64;
        self.grew.notify_all();
        Ok(())
    }

    /// Where a resumed download starts: the bytes written and the hash state over them (read
    /// back from the file: resuming is rare, hashing every byte twice on the way in is not).
    pub fn resume_point(&self) -> io::Result<(u64, sha2::Sha256)> {
        let written = self.written();
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        if written > 0 {
            let mut f = File::open(&self.path)?;
            io::copy(&mut (&mut f).take(written), &mut hasher)?;
        }
        Ok((written, hasher))
    }

    /// Bytes written so far (where a resumed download starts).
    pub fn written(&self) -> u64 {
        self.state().written
    }

    /// Starts the blob over (a registry that ignored the resume sends it all again). Readers
    /// further along just wait until the file is back where they are: the bytes are the same,
    /// the blob being content-addressed (and a wrong byte fails the digest check at the end).
    pub fn restart(&self) -> io::Result<()> {
        let mut f = self.out.lock().unwrap_or_else(|p| p.into_inner());
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        self.state().written = 0;
        Ok(())
    }

    /// Ends the download: readers see the end of the blob, or `Err(why)` once they reach it.
    pub fn finish(&self, result: Result<(), String>) {
        self.state().done = Some(result);
        self.grew.notify_all();
    }

    /// Waits for the download to end; its outcome.
    pub fn wait(&self) -> Result<(), String> {
        let mut s = self.state();
        loop {
            if let Some(r) = &s.done {
                return r.clone();
            }
            s = self.grew.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A reader from the start of the blob.
    pub fn reader(self: &Arc<Self>) -> io::Result<SpoolReader> {
        Ok(SpoolReader {
            file: File::open(&self.path)?,
            spool: self.clone(),
            pos: 0,
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads a [`Spool`] as it grows (blocking at its end until more arrives or it ends).
#[derive(Debug)]
pub struct SpoolReader {
    spool: Arc<Spool>,
    file: File,
    pos: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = {
            let mut s = self.spool.state();
            loop {
                if s.written > self.pos {
                    break s.written - self.pos;
                }
                match &s.done {
                    Some(Ok(())) => return Ok(0),
                    Some(Err(why)) => return Err(io::Error::other(why.clone())),
                    None => s = self.spool.grew.wait(s).unwrap_or_else(|p| p.into_inner()),
                }
            }
        };
        let want = buf.len().min(available as usize);
        self.file.seek(SeekFrom::Start(self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_follows_the_writer_and_sees_its_end_or_its_failure() {
        let e = crate::tests::env();
        let s = e.svc.spool().unwrap();
        let mut r = s.reader().unwrap();
        let w = s.clone();
        let t = std::thread::spawn(move || {
            for i in 0..100u8 {
                w.write(&[i; 1000]).unwrap();
            }
            w.finish(Ok(()));
        });
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        t.join().unwrap();
        assert_eq!(all.len(), 100_000);
        assert!(all
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8)));
        assert_eq!(s.wait(), Ok(()));

        let bad = e.svc.spool().unwrap();
        bad.write(b"partial").unwrap();
        bad.finish(Err("digest mismatch".into()));
        let mut got = Vec::new();
        let err = bad.reader().unwrap().read_to_end(&mut got).unwrap_err();
        assert_eq!(err.to_string(), "digest mismatch");
        assert_eq!(got, b"partial");
        let path = bad.path.clone();
        drop(bad);
        assert!(!path.exists(), "the spool goes with its last handle");
    }
}
