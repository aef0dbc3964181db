//! Deferred deletion: a directory leaves its store by one `rename` into `<data-root>/trash` and
//! is deleted there by a background thread, so the request that removed it (`rm`, the end of a
//! `run --rm`, `rmi`) does not wait for the filesystem to free its blocks. On this machine's ext4
//! (mounted `discard`) freeing is synchronous device I/O: a container's bundle and its two
//! snapshots cost ~40 discards, most of a `run --rm`'s removal.
//!
//! Crash safety: the rename is atomic, and it happens after the store's record is gone, so a
//! crash leaves either the directory in its store (which the store's reconciliation already
//! sweeps as an orphan) or an entry in the trash, which [`Trash::open`] queues for deletion at
//! the next start. Nothing in the trash is ever read again.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The trash of one data root. `Send + Sync`.
#[derive(Debug)]
pub struct Trash {
    dir: PathBuf,
    queue: Mutex<Option<mpsc::Sender<PathBuf>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    seq: AtomicU64,
}

impl Trash {
    /// Opens (creating, 0700) the trash at `dir`, starts its deleting thread and queues what a
    /// previous run left in it.
    pub fn open(dir: &Path) -> io::Result<Trash> {
        Trash::open_with(dir, QUIET, MAX_HOLD)
    }

    /// [`Trash::open`] with the deleting thread's pacing: it starts deleting once no put came for
    /// `quiet`, or once it has held its oldest entry for `max_hold`.
    pub fn open_with(dir: &Path, quiet: Duration, max_hold: Duration) -> io::Result<Trash> {
        crate::fs::create_private_dir(dir)?;
        let (tx, rx) = mpsc::channel::<PathBuf>();
        for entry in std::fs::read_dir(dir)? {
            let _ = tx.send(entry?.path());
        }
        let worker = std::thread::Builder::new()
            .name("berth-trash".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let (batch, open) = hold(&rx, first, quiet, max_hold);
                    batch.iter().for_each(|p| delete(p));
                    // The last frees of a bulk removal happen here, after the daemon's own trim.
                    drop(batch);
                    crate::heap::release_free_memory();
                    if !open {
                        break;
                    }
                }
            })?;
        Ok(Trash {
            dir: dir.to_path_buf(),
            queue: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            seq: AtomicU64::new(0),
        })
    }

    /// Moves `path` (a directory or file on the trash's filesystem) out of its store and queues
    /// it for deletion. A missing `path` is `NotFound`; on another filesystem, or once the trash
    /// is closed, it is deleted here and now.
    pub fn put(&self, path: &Path) -> io::Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("{nanos}-{}", self.seq.fetch_add(1, Ordering::Relaxed));
        let dest = self.dir.join(name);
        match std::fs::rename(path, &dest) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                return remove_all(path)
            }
            Err(e) => return Err(e),
        }
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        match queue.as_ref().map(|q| q.send(dest.clone())) {
            Some(Ok(())) => Ok(()),
            _ => remove_all(&dest),
        }
    }

    /// Deletes everything queued so far and stops the thread (a clean daemon stop): what is put
    /// afterwards is deleted in place.
    pub fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }

    /// The entries waiting for deletion (for `berthd check`).
    pub fn pending(dir: &Path) -> io::Result<Vec<PathBuf>> {
        match std::fs::read_dir(dir) {
            Ok(rd) => rd.map(|e| e.map(|e| e.path())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// Deletes everything in the trash at `dir` here and now (`berthd check --repair`).
pub fn purge(dir: &Path) -> io::Result<()> {
    Trash::pending(dir)?.iter().try_for_each(|p| remove_all(p))
}

impl Drop for Trash {
    fn drop(&mut self) {
        self.close();
    }
}

fn remove_all(path: &Path) -> io::Result<()> {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// How long the deleting thread waits for removals to pause before it deletes, and how long at
/// most it holds an entry. Deleting frees blocks (synchronous discards on this machine's ext4)
/// and fills the journal: during a bulk `rm -f` every fsync of the removals themselves waited
/// behind it, and each removal got slower the more had gone before (issue 11).
const QUIET: Duration = Duration::from_millis(100);
const MAX_HOLD: Duration = Duration::from_secs(2);

/// Collects what is put after `first` until a `quiet` spell or `max_hold` after `first`; false
/// when the trash was closed (the batch is then the last).
fn hold(
    rx: &mpsc::Receiver<PathBuf>,
    first: PathBuf,
    quiet: Duration,
    max_hold: Duration,
) -> (Vec<PathBuf>, bool) {
    let deadline = Instant::now() + max_hold;
    let mut batch = vec![first];
    loop {
        let wait = quiet.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            return (batch, true);
        }
        match rx.recv_timeout(wait) {
            Ok(p) => batch.push(p),
            Err(mpsc::RecvTimeoutError::Timeout) => return (batch, true),
            Err(mpsc::RecvTimeoutError::Disconnected) => return (batch, false),
        }
    }
}

fn delete(path: &Path) {
    if let Err(e) = remove_all(path) {
        eprintln!("berthd: trash: cannot delete {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_directory_leaves_its_place_at_once_and_is_deleted_by_close() {
        let d = tempfile::tempdir().unwrap();
        let t = Trash::open(&d.path().join("trash")).unwrap();
        let victim = d.path().join("store/1");
        std::fs::create_dir_all(victim.join("fs/a/b")).unwrap();
        std::fs::write(victim.join("fs/a/b/f"), b"x").unwrap();
        t.put(&victim).unwrap();
        assert!(!victim.exists());
        t.close();
        assert!(Trash::pending(&d.path().join("trash")).unwrap().is_empty());
        // Closed: a later put deletes in place.
        std::fs::create_dir_all(&victim).unwrap();
        t.put(&victim).unwrap();
        assert!(!victim.exists());
        assert!(Trash::pending(&d.path().join("trash")).unwrap().is_empty());
    }

    #[test]
    fn leftovers_of_a_crash_are_deleted_when_the_trash_opens() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("trash");
        std::fs::create_dir_all(dir.join("123-0/fs")).unwrap();
        std::fs::write(dir.join("123-1"), b"x").unwrap();
        let t = Trash::open(&dir).unwrap();
        t.close();
        assert!(Trash::pending(&dir).unwrap().is_empty());
    }

    #[test]
    fn deletion_waits_while_removals_keep_coming_and_runs_after_a_quiet_spell() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("trash");
        let t = Trash::open_with(&dir, Duration::from_millis(300), Duration::from_secs(30)).unwrap();
        let started = Instant::now();
        for i in 0..5 {
            let victim = d.path().join(format!("store/{i}"));
            std::fs::create_dir_all(victim.join("fs")).unwrap();
            t.put(&victim).unwrap();
        }
        let pending = Trash::pending(&dir).unwrap().len();
        if started.elapsed() < Duration::from_millis(300) {
            // Still within the quiet window: nothing deleted yet.
            assert_eq!(pending, 5);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Trash::pending(&dir).unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the trash was not emptied after a quiet spell"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t.close();
    }

    #[test]
    fn putting_a_missing_path_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let t = Trash::open(&d.path().join("trash")).unwrap();
        let e = t.put(&d.path().join("nope")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
