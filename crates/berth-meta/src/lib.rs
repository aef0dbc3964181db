//! berth's metadata database (SQLite, WAL mode, `synchronous=NORMAL`).
//!
//! # Schema (version 6, `PRAGMA user_version = 6`)
//! ```text
//! images        id TEXT PK ("sha256:<hex>" of the config blob), created TEXT (RFC 3339 from the
//!               config), size INTEGER (sum of layer sizes), parent TEXT ("" or an image id),
//!               last_tag_time TEXT NULL, added INTEGER (unix nanos, insertion order)
//!   image_layers  image_id → images.id ON DELETE CASCADE, position INTEGER (0 = bottom),
//!                 chain_id → layers.chain_id; PK (image_id, position)
//!   tags          name TEXT PK (normalised: "docker.io/library/busybox:latest"),
//!                 image_id → images.id ON DELETE CASCADE
//! layers        chain_id TEXT PK, diff_id TEXT, parent_chain_id TEXT NULL, snapshot_key TEXT,
//!               size INTEGER — stored once however many images share them; a layer's users are
//!               counted by querying image_layers, never by a refcount column
//! containers    id TEXT PK, name TEXT UNIQUE, image_id TEXT (no FK: `rmi -f` may delete an
//!               image a stopped container still names), doc TEXT (JSON owned by the daemon)
//! repo_digests  name TEXT PK ("docker.io/library/busybox@sha256:…", the manifest digest a pull
//!               or push saw), image_id → images.id ON DELETE CASCADE            (version 2)
//! blob_sources  digest, repository (PK together), diff_id, media_type, size: a compressed blob
//!               in a registry and the layer it unpacks to; hints for pull and push   (version 2)
//! volumes       the local volume driver's records (berth-volume)                    (version 3)
//! indexes       every keyed lookup uses one (`no_keyed_query_scans_a_table`); layers by diff_id
//!               and by parent_chain_id                                                 (version 4)
//! ip_leases     network, address (PK together), container: IPAM leases (berth-network)  (version 5)
//! networks      id TEXT PK, name TEXT UNIQUE, doc TEXT (JSON): user-defined networks   (version 6)
//! ```
//!
//! # Migrations
//! [`MIGRATIONS`]`[i]` takes the schema from version `i` to `i + 1`; [`Db::open`] applies the
//! missing ones in one transaction and sets `user_version`. Never edit a released migration; add
//! one.
//!
//! # Consistency
//! Every state change is one transaction. Callers write files first (blobs, snapshots) and the
//! database last when creating, and the database first and files last when deleting, so the
//! database never names a file that is not there; orphan files are reconciled at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

mod leases;
pub use leases::{Lease, NetworkRow};

use berth_types::ErrorKind;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The schema migrations, in order. `MIGRATIONS.len()` is the current schema version.
pub const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE images (
        id            TEXT PRIMARY KEY,
        created       TEXT NOT NULL,
        size          INTEGER NOT NULL,
        parent        TEXT NOT NULL DEFAULT '',
        last_tag_time TEXT,
        added         INTEGER NOT NULL
     );
     CREATE INDEX images_parent ON images(parent);
     CREATE TABLE layers (
        chain_id        TEXT PRIMARY KEY,
        diff_id         TEXT NOT NULL,
        parent_chain_id TEXT REFERENCES layers(chain_id),
        snapshot_key    TEXT NOT NULL,
        size            INTEGER NOT NULL
     );
     CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (image_id, position)
     );
     CREATE INDEX image_layers_chain ON image_layers(chain_id);
     CREATE TABLE tags (
        name     TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
     );
     CREATE INDEX tags_image ON tags(image_id);
     CREATE TABLE containers (
        id       TEXT PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        doc      TEXT NOT NULL
     );
     CREATE INDEX containers_image ON containers(image_id);",
    // 1 → 2: what pulls and pushes learn.
    "CREATE TABLE repo_digests (
        name     TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
     );
     CREATE INDEX repo_digests_image ON repo_digests(image_id);
     CREATE TABLE blob_sources (
        digest     TEXT NOT NULL,
        repository TEXT NOT NULL,
        diff_id    TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size       INTEGER NOT NULL,
        PRIMARY KEY (digest, repository)
     );
     CREATE INDEX blob_sources_diff ON blob_sources(diff_id);",
    // 2 → 3: volumes (the local driver's records; their files are under <data-root>/volumes).
    "CREATE TABLE volumes (
        name      TEXT PRIMARY KEY,
        driver    TEXT NOT NULL,
        created   TEXT NOT NULL,
        labels    TEXT NOT NULL DEFAULT '{}',
        options   TEXT NOT NULL DEFAULT '{}',
        anonymous INTEGER NOT NULL DEFAULT 0,
        removing  INTEGER NOT NULL DEFAULT 0
     );",
    // 3 → 4: lookups that scanned `layers` (by diff ID, and the foreign-key check of a layer's
    // children when one is deleted).
    "CREATE INDEX IF NOT EXISTS layers_diff ON layers(diff_id);
     CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent_chain_id);",
    // 4 → 5: IPAM leases, one row per address handed out on a network.
    "CREATE TABLE ip_leases (
        network   TEXT NOT NULL,
        address   TEXT NOT NULL,
        container TEXT NOT NULL,
        PRIMARY KEY (network, address)
     );
     CREATE INDEX ip_leases_container ON ip_leases(container);",
    // 5 → 6: user-defined networks (the built-in bridge, host and none are not rows).
    "CREATE TABLE networks (
        id   TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        doc  TEXT NOT NULL
     );",
];

/// Errors of the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// SQLite failed.
    #[error("database error while {context}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        err: rusqlite::Error,
    },
    /// A container name is taken (docker's message).
    #[error("Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name, with its leading `/`.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// A row that must exist does not.
    #[error("no such {what}: {id}")]
    NotFound {
        /// `container`, `image`, …
        what: &'static str,
        /// The key looked up.
        id: String,
    },
    /// The database was written by a newer berth.
    #[error("database schema version {found} is newer than this berth supports ({supported})")]
    TooNew {
        /// `user_version` on disk.
        found: i64,
        /// What this build knows.
        supported: i64,
    },
    /// The database file's permissions could not be set.
    #[error("failed to {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        err: std::io::Error,
    },
}

impl MetaError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MetaError::NameInUse { .. } => ErrorKind::Conflict,
            MetaError::NotFound { .. } => ErrorKind::NotFound,
            MetaError::Sqlite { .. } | MetaError::TooNew { .. } | MetaError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Creates `db` as an empty 0600 file if missing (SQLite gives the `-wal` and `-shm` files the
/// database's mode) and sets an existing database and its `-wal`/`-shm` to 0600.
fn make_private(db: &Path) -> Result<(), MetaError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |op, p: &Path| {
        let path = p.display().to_string();
        move |err| MetaError::Io { op, path, err }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)
        .map_err(io("create", db))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = Path::new(&p);
        match std::fs::symlink_metadata(p) {
            Ok(m) if !m.file_type().is_symlink() && m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(io("set permissions of", p))?
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("stat", p)(e)),
        }
    }
    Ok(())
}

fn sq(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> MetaError {
    let context = context.into();
    move |err| MetaError::Sqlite { context, err }
}

/// A container record. `doc` is JSON owned by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRow {
    /// 64-hex container id.
    pub id: String,
    /// Unique name (as the daemon stores it).
    pub name: String,
    /// `sha256:<hex>` of the image it was created from.
    pub image_id: String,
    /// The daemon's JSON document.
    pub doc: String,
}

/// An image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    /// RFC 3339 creation time from the config.
    pub created: String,
    /// Sum of the layer sizes.
    pub size: i64,
    /// Parent image id or "".
    pub parent: String,
    /// When a tag last pointed at it.
    pub last_tag_time: Option<String>,
    /// Insertion time, unix nanoseconds.
    pub added: i64,
}

/// A layer record: one committed snapshot, shared by every image whose chain contains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// `sha256(parent_chain_id + " " + diff_id)`, or the diff id for the bottom layer.
    pub chain_id: String,
    /// sha256 of the uncompressed layer tar.
    pub diff_id: String,
    /// The layer below, if any.
    pub parent_chain_id: Option<String>,
    /// The committed snapshot holding the unpacked layer.
    pub snapshot_key: String,
    /// Unpacked size in bytes.
    pub size: i64,
}

/// References a pull or push records with an image ([`Db::insert_image_with`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageRefs<'a> {
    /// Normalised tags (`docker.io/library/busybox:latest`).
    pub tags: &'a [&'a str],
    /// Normalised repository digests (`docker.io/library/busybox@sha256:…`).
    pub repo_digests: &'a [&'a str],
    /// Where its layers are found in registries.
    pub sources: &'a [BlobSource],
}

/// A compressed layer blob in a registry repository and the layer it unpacks to (Docker's
/// "v2 metadata"): lets a pull say "Already exists" from the manifest alone and a push HEAD or
/// mount a blob instead of compressing and uploading it again. A hint: stale rows are harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSource {
    /// `sha256:…` of the compressed blob.
    pub digest: String,
    /// Normalised repository name (`docker.io/library/busybox`, `127.0.0.1:5000/x`).
    pub repository: String,
    /// The uncompressed layer's diff ID.
    pub diff_id: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size.
    pub size: i64,
}

/// The metadata database. Cheap to clone; `Send + Sync`; every method is blocking.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    /// The database holds every container's config (env included): it and its `-wal`/`-shm`
    /// files are owner-only (0600), created so and tightened if an older berth made them wider.
    pub fn open(path: impl AsRef<Path>) -> Result<Db, MetaError> {
        let path = path.as_ref();
        make_private(path)?;
        let conn = Connection::open(path).map_err(sq(format!("opening {}", path.display())))?;
        Db::init(conn)
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Db, MetaError> {
        Db::init(Connection::open_in_memory().map_err(sq("opening in-memory database"))?)
    }

    fn init(mut conn: Connection) -> Result<Db, MetaError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sq("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sq("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sq("enabling foreign keys"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sq("setting busy timeout"))?;
        conn.set_prepared_statement_cache_capacity(64);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sq("reading schema version"))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(MetaError::TooNew {
                found: version,
                supported,
            });
        }
        if version < supported {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)
                .map_err(sq("starting migration"))?;
            for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(m)
                    .map_err(sq(format!("migrating schema to version {}", i + 1)))?;
            }
            tx.pragma_update(None, "user_version", supported)
                .map_err(sq("setting schema version"))?;
            tx.commit().map_err(sq("committing migration"))?;
        }
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands SQLite's page cache back to the allocator (`PRAGMA shrink_memory`): after a
    /// thousand containers go, the cache still holds up to 2 MB of their pages. Call after bulk
    /// removals, before trimming the heap; the next queries refill the cache as they need.
    pub fn release_memory(&self) -> Result<(), MetaError> {
        self.lock()
            .execute_batch("PRAGMA shrink_memory")
            .map_err(sq("releasing the page cache"))
    }

    /// The schema version on disk.
    pub fn schema_version(&self) -> Result<i64, MetaError> {
        self.lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sq("reading schema version"))
    }

    // ---- containers -------------------------------------------------------------------------

    /// Inserts a container. A taken name is `Conflict` with docker's message.
    pub fn insert_container(&self, row: &ContainerRow) -> Result<(), MetaError> {
        let conn = self.lock();
        if let Some(id) = name_owner(&conn, &row.name)? {
            return Err(name_in_use(&row.name, id));
        }
        conn.prepare_cached("INSERT INTO containers (id, name, image_id, doc) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![row.id, row.name, row.image_id, row.doc]))
            .map_err(sq(format!("inserting container {}", row.id)))?;
        Ok(())
    }

    /// Replaces a container's JSON document.
    pub fn update_container_doc(&self, id: &str, doc: &str) -> Result<(), MetaError> {
        let n = self
            .lock()
            .prepare_cached("UPDATE containers SET doc = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, doc]))
            .map_err(sq(format!("updating container {id}")))?;
        if n == 0 {
            return Err(MetaError::NotFound {
                what: "container",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Renames a container and replaces its document (which carries the name) in one
    /// transaction; `Conflict` if the new name is taken by another container.
    pub fn rename_container(&self, id: &str, new_name: &str, doc: &str) -> Result<(), MetaError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("starting rename"))?;
        if let Some(owner) = name_owner(&tx, new_name)? {
            if owner != id {
                return Err(name_in_use(new_name, owner));
            }
        }
        let n = tx
            .prepare_cached("UPDATE containers SET name = ?2, doc = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, new_name, doc]))
            .map_err(sq(format!("renaming container {id}")))?;
        if n == 0 {
            return Err(MetaError::NotFound {
                what: "container",
                id: id.to_string(),
            });
        }
        berth_sys::failpoint::hit("container.rename.before-commit");
        tx.commit().map_err(sq("committing rename"))
    }

    /// One container record.
    pub fn container(&self, id: &str) -> Result<Option<ContainerRow>, MetaError> {
        self.lock()
            .prepare_cached("SELECT id, name, image_id, doc FROM containers WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], container_row).optional())
            .map_err(sq(format!("reading container {id}")))
    }

    /// Deletes a container record.
    pub fn delete_container(&self, id: &str) -> Result<(), MetaError> {
        let n = self
            .lock()
            .prepare_cached("DELETE FROM containers WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id]))
            .map_err(sq(format!("deleting container {id}")))?;
        if n == 0 {
            return Err(MetaError::NotFound {
                what: "container",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Every container, in insertion order.
    pub fn list_containers(&self) -> Result<Vec<ContainerRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id, name, image_id, doc FROM containers ORDER BY rowid")
            .map_err(sq("listing containers"))?;
        let rows = stmt
            .query_map([], container_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq("listing containers"));
        rows
    }

    /// Ids of the containers created from `image_id`, in insertion order.
    pub fn containers_using_image(&self, image_id: &str) -> Result<Vec<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM containers WHERE image_id = ?1 ORDER BY rowid")
            .map_err(sq("finding containers of an image"))?;
        let ids = stmt
            .query_map([image_id], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(sq("finding containers of an image"));
        ids
    }

    /// Number of containers per image id.
    pub fn container_counts(&self) -> Result<HashMap<String, i64>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT image_id, COUNT(*) FROM containers GROUP BY image_id")
            .map_err(sq("counting containers"))?;
        let counts = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<HashMap<String, i64>, _>>())
            .map_err(sq("counting containers"));
        counts
    }

    // ---- images, layers, tags ------------------------------------------------------------------

    /// Records a new image, its layers (those not yet known) and its tags, in one transaction.
    /// Idempotent for an image that already exists. Returns the images the tags pointed at
    /// before, where that was another image.
    pub fn insert_image(
        &self,
        img: &ImageRow,
        layers: &[LayerRow],
        tags: &[&str],
    ) -> Result<Vec<String>, MetaError> {
        self.insert_image_with(
            img,
            layers,
            &ImageRefs {
                tags,
                ..Default::default()
            },
        )
    }

    /// [`Db::insert_image`] with everything a pull learns: tags, repository digests and where
    /// the layers came from, in the same transaction.
    pub fn insert_image_with(
        &self,
        img: &ImageRow,
        layers: &[LayerRow],
        refs: &ImageRefs<'_>,
    ) -> Result<Vec<String>, MetaError> {
        let tags = refs.tags;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("starting image insert"))?;
        let ctx = || format!("inserting image {}", img.id);
        for l in layers {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent_chain_id, snapshot_key, size) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![l.chain_id, l.diff_id, l.parent_chain_id, l.snapshot_key, l.size]))
            .map_err(sq(ctx()))?;
        }
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO images (id, created, size, parent, last_tag_time, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| s.execute(params![img.id, img.created, img.size, img.parent, img.last_tag_time, img.added]))
            .map_err(sq(ctx()))?;
        if inserted == 1 {
            for (pos, l) in layers.iter().enumerate() {
                tx.prepare_cached(
                    "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![img.id, pos as i64, l.chain_id]))
                .map_err(sq(ctx()))?;
            }
        }
        let mut previous = Vec::new();
        for name in tags {
            let time = img.last_tag_time.as_deref();
            previous.extend(set_tag_tx(&tx, name, &img.id, time)?);
        }
        for name in refs.repo_digests {
            tx.prepare_cached("INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![name, img.id]))
                .map_err(sq(ctx()))?;
        }
        insert_sources_tx(&tx, refs.sources).map_err(sq(ctx()))?;
        berth_sys::failpoint::hit("image.create.before-commit");
        tx.commit().map_err(sq(ctx()))?;
        Ok(previous)
    }

    /// One image by full id.
    pub fn image(&self, id: &str) -> Result<Option<ImageRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, created, size, parent, last_tag_time, added FROM images WHERE id = ?1",
            )
            .map_err(sq("reading image"))?;
        let row = stmt
            .query_row([id], image_row)
            .optional()
            .map_err(sq(format!("reading image {id}")));
        row
    }

    /// Every image, newest first.
    pub fn images(&self) -> Result<Vec<ImageRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, created, size, parent, last_tag_time, added FROM images ORDER BY added DESC",
            )
            .map_err(sq("listing images"))?;
        let rows = stmt
            .query_map([], image_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq("listing images"));
        rows
    }

    /// Ids of images whose hex part starts with `hex_prefix` (at most `limit`).
    pub fn image_ids_with_prefix(&self, hex_prefix: &str, limit: usize) -> Result<Vec<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM images WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3")
            .map_err(sq("searching images"))?;
        let lo = format!("sha256:{hex_prefix}");
        let hi = format!("sha256:{hex_prefix}\u{10ffff}");
        let ids = stmt
            .query_map(params![lo, hi, limit as i64], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(sq("searching images"));
        ids
    }

    /// The image's layers, bottom first.
    pub fn image_layers(&self, image_id: &str) -> Result<Vec<LayerRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.chain_id, l.diff_id, l.parent_chain_id, l.snapshot_key, l.size
                 FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
                 WHERE il.image_id = ?1 ORDER BY il.position",
            )
            .map_err(sq("reading image layers"))?;
        let rows = stmt
            .query_map([image_id], layer_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq(format!("reading layers of {image_id}")));
        rows
    }

    /// One layer by chain id.
    pub fn layer(&self, chain_id: &str) -> Result<Option<LayerRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT chain_id, diff_id, parent_chain_id, snapshot_key, size FROM layers WHERE chain_id = ?1")
            .map_err(sq("reading layer"))?;
        let row = stmt
            .query_row([chain_id], layer_row)
            .optional()
            .map_err(sq(format!("reading layer {chain_id}")));
        row
    }

    /// Every layer.
    pub fn layers(&self) -> Result<Vec<LayerRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT chain_id, diff_id, parent_chain_id, snapshot_key, size FROM layers")
            .map_err(sq("listing layers"))?;
        let rows = stmt
            .query_map([], layer_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq("listing layers"));
        rows
    }

    /// How many images use the layer (counted, not stored).
    pub fn layer_users(&self, chain_id: &str) -> Result<i64, MetaError> {
        self.lock()
            .prepare_cached("SELECT COUNT(DISTINCT image_id) FROM image_layers WHERE chain_id = ?1")
            .and_then(|mut s| s.query_row([chain_id], |r| r.get(0)))
            .map_err(sq(format!("counting users of layer {chain_id}")))
    }

    /// How many layers (of any chain) have this diff ID, i.e. use the layer blob `diff_id`.
    pub fn diff_id_users(&self, diff_id: &str) -> Result<i64, MetaError> {
        self.lock()
            .prepare_cached("SELECT COUNT(*) FROM layers WHERE diff_id = ?1")
            .and_then(|mut s| s.query_row([diff_id], |r| r.get(0)))
            .map_err(sq(format!("counting users of blob {diff_id}")))
    }

    /// The image a repository digest (`docker.io/library/busybox@sha256:…`) points at.
    pub fn repo_digest_target(&self, name: &str) -> Result<Option<String>, MetaError> {
        self.lock()
            .prepare_cached("SELECT image_id FROM repo_digests WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(sq(format!("resolving {name}")))
    }

    /// The repository digests of an image, sorted.
    pub fn repo_digests_of(&self, image_id: &str) -> Result<Vec<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name")
            .map_err(sq("reading repository digests"))?;
        let names = stmt
            .query_map([image_id], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(sq(format!("reading repository digests of {image_id}")));
        names
    }

    /// Removes a repository digest; false if it did not exist.
    pub fn delete_repo_digest(&self, name: &str) -> Result<bool, MetaError> {
        let n = self
            .lock()
            .prepare_cached("DELETE FROM repo_digests WHERE name = ?1")
            .and_then(|mut s| s.execute([name]))
            .map_err(sq(format!("removing {name}")))?;
        Ok(n > 0)
    }

    /// Every (repository digest, image id).
    pub fn all_repo_digests(&self) -> Result<Vec<(String, String)>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT name, image_id FROM repo_digests ORDER BY name")
            .map_err(sq("listing repository digests"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq("listing repository digests"));
        rows
    }

    /// The layer a compressed registry blob unpacks to, if a pull or push has seen it.
    pub fn source_diff_id(&self, digest: &str) -> Result<Option<String>, MetaError> {
        self.lock()
            .prepare_cached("SELECT diff_id FROM blob_sources WHERE digest = ?1 LIMIT 1")
            .and_then(|mut s| s.query_row([digest], |r| r.get(0)).optional())
            .map_err(sq(format!("reading the source of {digest}")))
    }

    /// Where a layer is known to be in registries (its compressed blobs), newest first.
    pub fn sources_of(&self, diff_id: &str) -> Result<Vec<BlobSource>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT digest, repository, diff_id, media_type, size FROM blob_sources WHERE diff_id = ?1 ORDER BY rowid DESC",
            )
            .map_err(sq("reading blob sources"))?;
        let rows = stmt
            .query_map([diff_id], |r| {
                Ok(BlobSource {
                    digest: r.get(0)?,
                    repository: r.get(1)?,
                    diff_id: r.get(2)?,
                    media_type: r.get(3)?,
                    size: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq(format!("reading the sources of {diff_id}")));
        rows
    }

    /// What a push learns, in one transaction: the repository digest of the image it pushed and
    /// where each layer now is.
    pub fn record_push(
        &self,
        image_id: &str,
        repo_digest: &str,
        sources: &[BlobSource],
    ) -> Result<(), MetaError> {
        let mut conn = self.lock();
        let ctx = || format!("recording the push of {image_id}");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq(ctx()))?;
        tx.prepare_cached("INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![repo_digest, image_id]))
            .map_err(sq(ctx()))?;
        insert_sources_tx(&tx, sources).map_err(sq(ctx()))?;
        tx.commit().map_err(sq(ctx()))
    }

    /// The image a tag points at.
    pub fn tag_target(&self, name: &str) -> Result<Option<String>, MetaError> {
        self.lock()
            .prepare_cached("SELECT image_id FROM tags WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(sq(format!("resolving tag {name}")))
    }

    /// The tags of an image, sorted.
    pub fn tags_of(&self, image_id: &str) -> Result<Vec<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")
            .map_err(sq("reading tags"))?;
        let names = stmt
            .query_map([image_id], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(sq(format!("reading tags of {image_id}")));
        names
    }

    /// Every (tag, image id), sorted by tag.
    pub fn all_tags(&self) -> Result<Vec<(String, String)>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT name, image_id FROM tags ORDER BY name")
            .map_err(sq("listing tags"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq("listing tags"));
        rows
    }

    /// Points `name` at `image_id` (moving it if it pointed elsewhere) and records the tag time.
    /// Returns the image it pointed at before, if another.
    pub fn set_tag(&self, name: &str, image_id: &str, time: &str) -> Result<Option<String>, MetaError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("starting tag"))?;
        let prev = set_tag_tx(&tx, name, image_id, Some(time))?;
        berth_sys::failpoint::hit("image.tag.before-commit");
        tx.commit().map_err(sq(format!("tagging {image_id} as {name}")))?;
        Ok(prev)
    }

    /// Removes references (tags and repository digests) in one transaction.
    pub fn untag(&self, names: &[String]) -> Result<(), MetaError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("starting untag"))?;
        for name in names {
            for q in [
                "DELETE FROM tags WHERE name = ?1",
                "DELETE FROM repo_digests WHERE name = ?1",
            ] {
                tx.prepare_cached(q)
                    .and_then(|mut s| s.execute([name]))
                    .map_err(sq(format!("removing {name}")))?;
            }
        }
        tx.commit().map_err(sq("committing untag"))
    }

    /// Removes a tag; false if it did not exist.
    pub fn delete_tag(&self, name: &str) -> Result<bool, MetaError> {
        let n = self
            .lock()
            .prepare_cached("DELETE FROM tags WHERE name = ?1")
            .and_then(|mut s| s.execute([name]))
            .map_err(sq(format!("removing tag {name}")))?;
        Ok(n > 0)
    }

    /// Makes `parent` the parent of image `id` (the classic builder's `SetParent` when a
    /// `--cache-from` source image is reused as a step's result). One statement: atomic.
    pub fn set_image_parent(&self, id: &str, parent: &str) -> Result<(), MetaError> {
        let conn = self.lock();
        conn.prepare_cached("UPDATE images SET parent = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, parent]))
            .map_err(sq(format!("setting the parent of {id}")))?;
        Ok(())
    }

    /// Images whose parent is `image_id`.
    pub fn children(&self, image_id: &str) -> Result<Vec<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM images WHERE parent = ?1")
            .map_err(sq("finding children"))?;
        let ids = stmt
            .query_map([image_id], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(sq(format!("finding children of {image_id}")));
        ids
    }

    /// Every image's layers in one query: (image id, layer), each image's layers bottom first.
    /// What `system df` needs to count shared layers without a query per image.
    pub fn all_image_layers(&self) -> Result<Vec<(String, LayerRow)>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT il.image_id, l.chain_id, l.diff_id, l.parent_chain_id, l.snapshot_key, l.size
                 FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
                 ORDER BY il.image_id, il.position",
            )
            .map_err(sq("listing image layers"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    LayerRow {
                        chain_id: r.get(1)?,
                        diff_id: r.get(2)?,
                        parent_chain_id: r.get(3)?,
                        snapshot_key: r.get(4)?,
                        size: r.get(5)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sq("listing image layers"));
        rows
    }

    /// The images that are some image's parent (have children), in one query.
    pub fn parent_ids(&self) -> Result<std::collections::HashSet<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT DISTINCT parent FROM images WHERE parent != ''")
            .map_err(sq("finding parent images"))?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<std::collections::HashSet<String>, _>>())
            .map_err(sq("finding parent images"));
        ids
    }

    /// Deletes an image, its tags, and every layer no other image uses, in one transaction.
    /// Returns the deleted layers, top first, so the caller can remove their snapshots and blobs.
    /// Every query error aborts the transaction: nothing is ever deleted on the strength of a
    /// failed read.
    pub fn delete_image(&self, image_id: &str) -> Result<Vec<LayerRow>, MetaError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("starting image delete"))?;
        let ctx = || format!("deleting image {image_id}");
        let layers: Vec<LayerRow> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT l.chain_id, l.diff_id, l.parent_chain_id, l.snapshot_key, l.size
                     FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
                     WHERE il.image_id = ?1 ORDER BY il.position DESC",
                )
                .map_err(sq(ctx()))?;
            let rows = stmt
                .query_map([image_id], layer_row)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(sq(ctx()))?;
            rows
        };
        let n = tx
            .prepare_cached("DELETE FROM images WHERE id = ?1")
            .and_then(|mut s| s.execute([image_id]))
            .map_err(sq(ctx()))?;
        if n == 0 {
            return Err(MetaError::NotFound {
                what: "image",
                id: image_id.to_string(),
            });
        }
        let mut removed = Vec::new();
        for l in layers {
            let users: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM image_layers WHERE chain_id = ?1")
                .and_then(|mut s| s.query_row([&l.chain_id], |r| r.get(0)))
                .map_err(sq(ctx()))?;
            if users == 0 {
                tx.prepare_cached("DELETE FROM layers WHERE chain_id = ?1")
                    .and_then(|mut s| s.execute([&l.chain_id]))
                    .map_err(sq(ctx()))?;
                // Registry hints for a layer no image has any more.
                tx.prepare_cached(
                    "DELETE FROM blob_sources WHERE diff_id = ?1 AND NOT EXISTS (SELECT 1 FROM layers WHERE diff_id = ?1)",
                )
                .and_then(|mut s| s.execute([&l.diff_id]))
                .map_err(sq(ctx()))?;
                removed.push(l);
            }
        }
        berth_sys::failpoint::hit("image.rmi.before-commit");
        tx.commit().map_err(sq(ctx()))?;
        Ok(removed)
    }
}

fn insert_sources_tx(tx: &Connection, sources: &[BlobSource]) -> rusqlite::Result<()> {
    for s in sources {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO blob_sources (digest, repository, diff_id, media_type, size) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![s.digest, s.repository, s.diff_id, s.media_type, s.size])?;
    }
    Ok(())
}

fn container_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContainerRow> {
    Ok(ContainerRow {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        doc: r.get(3)?,
    })
}

fn image_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        created: r.get(1)?,
        size: r.get(2)?,
        parent: r.get(3)?,
        last_tag_time: r.get(4)?,
        added: r.get(5)?,
    })
}

fn layer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LayerRow> {
    Ok(LayerRow {
        chain_id: r.get(0)?,
        diff_id: r.get(1)?,
        parent_chain_id: r.get(2)?,
        snapshot_key: r.get(3)?,
        size: r.get(4)?,
    })
}

fn name_owner(conn: &Connection, name: &str) -> Result<Option<String>, MetaError> {
    conn.prepare_cached("SELECT id FROM containers WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(sq(format!("looking up container name {name}")))
}

fn name_in_use(name: &str, id: String) -> MetaError {
    let name = if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    };
    MetaError::NameInUse { name, id }
}

fn set_tag_tx(
    tx: &Connection,
    name: &str,
    image_id: &str,
    time: Option<&str>,
) -> Result<Option<String>, MetaError> {
    let ctx = || format!("tagging {image_id} as {name}");
    let prev: Option<String> = tx
        .prepare_cached("SELECT image_id FROM tags WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(sq(ctx()))?;
    tx.prepare_cached("INSERT INTO tags (name, image_id) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id")
        .and_then(|mut s| s.execute(params![name, image_id]))
        .map_err(sq(ctx()))?;
    if let Some(t) = time {
        tx.prepare_cached("UPDATE images SET last_tag_time = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![image_id, t]))
            .map_err(sq(ctx()))?;
    }
    Ok(prev.filter(|p| p != image_id))
}

#[cfg(test)]
mod tests;
mod volumes;
pub use volumes::VolumeRow;
