//! Content-addressed blob store.
//!
//! # On-disk layout
//! ```text
//! <root>/                      (<data-root>/content)
//!   blobs/sha256/<hex>         one immutable file per blob, named by the sha256 of its bytes
//!   ingest/<unique>            partial writes; removed when the store is opened
//! ```
//! Every directory is 0700 (tightened when opened) and blobs are 0600: layers may hold an image's
//! secrets, and only the daemon reads them.
//!
//! # Crash consistency
//! A blob is written to a fresh file under `ingest/`, hashed as it is written, `fsync`ed, checked
//! against the expected digest (if one was given), then `rename`d into `blobs/sha256/` and the
//! directory is `fsync`ed. A blob therefore either exists complete and verified under its name or
//! not at all; a crash leaves at most a file in `ingest/`, which [`ContentStore::open`] deletes.
//! Deleting a blob is a single `unlink`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_sys::fs::create_private_dir;
use berth_types::{Digest, ErrorKind};
use sha2::{Digest as _, Sha256};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// A filesystem operation failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        err: io::Error,
    },
    /// The written bytes do not hash to the expected digest.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller announced.
        expected: Digest,
        /// The digest of the bytes actually written.
        actual: Digest,
    },
    /// No blob with this digest.
    #[error("blob {0} not found")]
    NotFound(Digest),
}

impl ContentError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContentError::Io { .. } => ErrorKind::Internal,
            ContentError::DigestMismatch { .. } => ErrorKind::InvalidArgument,
            ContentError::NotFound(_) => ErrorKind::NotFound,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |err| ContentError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// A content-addressed blob store rooted at a directory. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl ContentStore {
    /// Opens (creating if needed) the store at `root` and removes leftovers of interrupted writes.
    pub fn open(root: impl AsRef<Path>) -> Result<ContentStore, ContentError> {
        let root = root.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        for dir in [&root, &root.join("blobs"), &blobs] {
            create_private_dir(dir).map_err(io_err("create", dir))?;
        }
        let ingest = root.join("ingest");
        if ingest.exists() {
            fs::remove_dir_all(&ingest).map_err(io_err("clean", &ingest))?;
        }
        create_private_dir(&ingest).map_err(io_err("create", &ingest))?;
        Ok(ContentStore { root })
    }

    /// Creates the store's (private) directories if needed, leaving what is in them alone.
    pub fn open_dirs(root: impl AsRef<Path>) -> Result<ContentStore, ContentError> {
        let root = root.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        for dir in [&root, &root.join("blobs"), &blobs, &root.join("ingest")] {
            create_private_dir(dir).map_err(io_err("create", dir))?;
        }
        Ok(ContentStore { root })
    }

    /// Opens an existing store without changing anything in it (`berthd check`).
    pub fn open_readonly(root: impl AsRef<Path>) -> Result<ContentStore, ContentError> {
        let root = root.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        fs::metadata(&blobs).map_err(io_err("open", &blobs))?;
        Ok(ContentStore { root })
    }

    /// What interrupted writes left under `ingest/` (empty right after [`ContentStore::open`]).
    pub fn ingest_leftovers(&self) -> Result<Vec<PathBuf>, ContentError> {
        let ingest = self.root.join("ingest");
        let mut out = Vec::new();
        match fs::read_dir(&ingest) {
            Ok(rd) => {
                for e in rd {
                    out.push(e.map_err(io_err("read", &ingest))?.path());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(ContentError::Io {
                    op: "read",
                    path: ingest,
                    err,
                })
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes a blob: `Ok(None)` when its bytes match its name, `Ok(Some(actual))` when they
    /// do not (the blob is corrupt), `NotFound` when it is missing.
    pub fn verify(&self, digest: &Digest) -> Result<Option<Digest>, ContentError> {
        let mut f = self.open_blob(digest)?;
        let mut hasher = Sha256::new();
        io::copy(&mut f, &mut hasher).map_err(io_err("read", &self.blob_path(digest)))?;
        let sum: [u8; 32] = hasher.finalize().into();
        let actual = Digest::from_sha256_bytes(&sum);
        Ok((actual != *digest).then_some(actual))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Starts writing a new blob. Dropping the writer without [`Writer::commit`] discards it.
    pub fn writer(&self) -> Result<Writer, ContentError> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = self
            .root
            .join("ingest")
            .join(format!("{}-{seq}-{nanos}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("create", &path))?;
        Ok(Writer {
            store: self.clone(),
            file: Some(file),
            path,
            hasher: Some(Sha256::new()),
            size: 0,
        })
    }

    /// A writer that does not hash: for a caller that already hashes exactly the bytes it
    /// writes (layer unpacking computes the diff ID of the stream it tees here), so the blob is
    /// not hashed twice. [`Writer::commit`] then needs the digest and trusts it.
    pub fn writer_hashed_by_caller(&self) -> Result<Writer, ContentError> {
        let mut w = self.writer()?;
        w.hasher = None;
        Ok(w)
    }

    /// Writes `data` as a blob and returns its digest.
    pub fn write_blob(&self, data: &[u8]) -> Result<Digest, ContentError> {
        let mut w = self.writer()?;
        w.write_all(data).map_err(io_err("write", &w.path.clone()))?;
        Ok(w.commit(None)?.0)
    }

    /// True if the blob exists.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens the blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.clone()),
            _ => ContentError::Io {
                op: "open",
                path,
                err,
            },
        })
    }

    /// Reads a whole blob (meant for small blobs: configs, manifests).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut f = self.open_blob(digest)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(io_err("read", &self.blob_path(digest)))?;
        Ok(buf)
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(digest.clone())),
            Err(err) => Err(ContentError::Io {
                op: "stat",
                path,
                err,
            }),
        }
    }

    /// Deletes the blob. Deleting a missing blob is `NotFound`.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(digest.clone())),
            Err(err) => Err(ContentError::Io {
                op: "delete",
                path,
                err,
            }),
        }
    }

    /// Every blob in the store (for garbage collection and `system check`).
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let dir = self.root.join("blobs").join("sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("read", &dir))? {
            let entry = entry.map_err(io_err("read", &dir))?;
            if let Some(d) = entry.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// An in-progress blob write: bytes are hashed as they are written.
#[derive(Debug)]
pub struct Writer {
    store: ContentStore,
    file: Option<File>,
    path: PathBuf,
    /// `None` for [`ContentStore::writer_hashed_by_caller`].
    hasher: Option<Sha256>,
    size: u64,
}

impl Writer {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Finishes the blob: fsync, verify against `expected` (if given), rename into place, fsync the
    /// directory. Returns the digest and size. If the blob already exists the new copy is dropped.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64), ContentError> {
        let file = self.file.take().expect("writer used after commit");
        file.sync_all().map_err(io_err("fsync", &self.path))?;
        drop(file);
        let actual = match self.hasher.take() {
            Some(h) => {
                let sum: [u8; 32] = h.finalize().into();
                Digest::from_sha256_bytes(&sum)
            }
            None => expected.cloned().ok_or_else(|| ContentError::Io {
                op: "commit",
                path: self.path.clone(),
                err: io::Error::other("a writer hashed by its caller needs the digest"),
            })?,
        };
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(ContentError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let target = self.store.blob_path(&actual);
        if target.exists() {
            return Ok((actual, self.size)); // Drop removes the temp file.
        }
        fs::rename(&self.path, &target).map_err(io_err("rename", &self.path))?;
        let dir = target.parent().expect("blob path has a parent");
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", dir))?;
        self.path = PathBuf::new();
        Ok((actual, self.size))
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("writer used after commit").write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("writer used after commit").flush()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod conformance {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path().join("content")).unwrap();
        (dir, store)
    }

    /// Layers may hold an image's secrets: the store is owner-only, also when an older berth
    /// created it wider.
    #[test]
    fn store_is_owner_only() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (d, s) = store();
        let digest = s.write_blob(b"secret layer").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        for dir in ["", "blobs", "blobs/sha256", "ingest"] {
            assert_eq!(mode(&s.root().join(dir)), 0o700, "{dir}");
        }
        assert_eq!(mode(&s.blob_path(&digest)), 0o600);
        fs::set_permissions(s.root(), fs::Permissions::from_mode(0o755)).unwrap();
        let s = ContentStore::open(d.path().join("content")).unwrap();
        assert_eq!(mode(s.root()), 0o700);
    }

    fn sha(data: &[u8]) -> Digest {
        let sum: [u8; 32] = Sha256::digest(data).into();
        Digest::from_sha256_bytes(&sum)
    }

    #[test]
    fn write_then_read_back() {
        let (_d, s) = store();
        let dgst = s.write_blob(b"hello").unwrap();
        assert_eq!(dgst, sha(b"hello"));
        assert!(s.exists(&dgst));
        assert_eq!(s.read(&dgst).unwrap(), b"hello");
        assert_eq!(s.size(&dgst).unwrap(), 5);
        assert_eq!(s.blob_path(&dgst), s.root().join("blobs/sha256").join(dgst.hex()));
        assert_eq!(s.list().unwrap(), vec![dgst]);
    }

    #[test]
    fn streamed_write_with_expected_digest() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        for _ in 0..1000 {
            w.write_all(b"0123456789").unwrap();
        }
        assert_eq!(w.size(), 10_000);
        let expected = sha(&b"0123456789".repeat(1000));
        let (dgst, size) = w.commit(Some(&expected)).unwrap();
        assert_eq!((dgst, size), (expected, 10_000));
    }

    #[test]
    fn digest_mismatch_leaves_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"actual").unwrap();
        let wrong = sha(b"other");
        let err = w.commit(Some(&wrong)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().starts_with("content digest mismatch"), "{err}");
        assert!(!s.exists(&wrong));
        assert!(!s.exists(&sha(b"actual")));
        assert_eq!(fs::read_dir(s.root().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(s.root().join("ingest")).unwrap().count(), 0);
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn ingest_is_cleaned_at_open() {
        let (_d, s) = store();
        fs::write(s.root().join("ingest/leftover"), b"half a blob").unwrap();
        let s = ContentStore::open(s.root()).unwrap();
        assert_eq!(fs::read_dir(s.root().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn verify_names_a_corrupt_blob() {
        let (_d, s) = store();
        let dgst = s.write_blob(b"precious").unwrap();
        assert_eq!(s.verify(&dgst).unwrap(), None);
        fs::write(s.blob_path(&dgst), b"prexious").unwrap();
        assert_eq!(s.verify(&dgst).unwrap(), Some(sha(b"prexious")));
        s.delete(&dgst).unwrap();
        assert_eq!(s.verify(&dgst).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn readonly_open_leaves_leftovers_for_the_caller_to_report() {
        let (_d, s) = store();
        fs::write(s.root().join("ingest/leftover"), b"half a blob").unwrap();
        let ro = ContentStore::open_readonly(s.root()).unwrap();
        assert_eq!(
            ro.ingest_leftovers().unwrap(),
            vec![s.root().join("ingest/leftover")]
        );
        assert!(ContentStore::open_readonly(s.root().join("nope")).is_err());
    }

    #[test]
    fn duplicate_write_is_idempotent() {
        let (_d, s) = store();
        let a = s.write_blob(b"same").unwrap();
        let b = s.write_blob(b"same").unwrap();
        assert_eq!(a, b);
        assert_eq!(s.list().unwrap().len(), 1);
        assert_eq!(fs::read_dir(s.root().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn delete_and_missing_blobs() {
        let (_d, s) = store();
        let dgst = s.write_blob(b"x").unwrap();
        s.delete(&dgst).unwrap();
        assert!(!s.exists(&dgst));
        assert_eq!(s.delete(&dgst).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(s.open_blob(&dgst).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(s.size(&dgst).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(
            s.open_blob(&dgst).unwrap_err().to_string(),
            format!("blob {dgst} not found")
        );
    }

    #[test]
    fn concurrent_writers_of_the_same_blob() {
        let (_d, s) = store();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.write_blob(&[7u8; 4096]).unwrap())
            })
            .collect();
        let digests: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(digests.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(s.read(&digests[0]).unwrap(), vec![7u8; 4096]);
    }
}
