//! The `volumes` table: one row per volume of the local driver. Labels and driver options are
//! JSON objects (text). A row with `removing = 1` is a volume whose removal began: its files may
//! be partly gone, and start-up reconciliation finishes the removal.

use rusqlite::{params, OptionalExtension};

use crate::{sq, Db, MetaError};

/// One volume record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeRow {
    pub name: String,
    /// `local`.
    pub driver: String,
    /// RFC 3339, whole seconds, `Z`.
    pub created: String,
    /// JSON object.
    pub labels: String,
    /// JSON object (`type`, `device`, `o`).
    pub options: String,
    /// Made for a container (`-v /path`, image `VOLUME`): `rm -v` and `--rm` remove it.
    pub anonymous: bool,
    /// Removal began.
    pub removing: bool,
}

fn volume_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VolumeRow> {
    Ok(VolumeRow {
        name: r.get(0)?,
        driver: r.get(1)?,
        created: r.get(2)?,
        labels: r.get(3)?,
        options: r.get(4)?,
        anonymous: r.get(5)?,
        removing: r.get(6)?,
    })
}

const COLUMNS: &str = "name, driver, created, labels, options, anonymous, removing";

impl Db {
    /// Records a volume; `false` (and nothing changes) when one of that name exists.
    pub fn insert_volume(&self, row: &VolumeRow) -> Result<bool, MetaError> {
        let n = self
            .lock()
            .prepare_cached(
                "INSERT OR IGNORE INTO volumes (name, driver, created, labels, options, anonymous, removing)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row.name,
                    row.driver,
                    row.created,
                    row.labels,
                    row.options,
                    row.anonymous
                ])
            })
            .map_err(sq(format!("inserting volume {}", row.name)))?;
        Ok(n == 1)
    }

    /// One volume record.
    pub fn volume(&self, name: &str) -> Result<Option<VolumeRow>, MetaError> {
        self.lock()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM volumes WHERE name = ?1"))
            .and_then(|mut s| s.query_row([name], volume_row).optional())
            .map_err(sq(format!("reading volume {name}")))
    }

    /// Every volume record, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM volumes ORDER BY name"))
            .map_err(sq("listing volumes"))?;
        let rows = stmt
            .query_map([], volume_row)
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sq("listing volumes"))?;
        Ok(rows)
    }

    /// Marks a volume as being removed (the first step of its removal).
    pub fn mark_volume_removing(&self, name: &str) -> Result<(), MetaError> {
        let n = self
            .lock()
            .prepare_cached("UPDATE volumes SET removing = 1 WHERE name = ?1")
            .and_then(|mut s| s.execute([name]))
            .map_err(sq(format!("marking volume {name} removed")))?;
        if n == 0 {
            return Err(MetaError::NotFound {
                what: "volume",
                id: name.to_string(),
            });
        }
        Ok(())
    }

    /// Deletes a volume record.
    pub fn delete_volume(&self, name: &str) -> Result<(), MetaError> {
        self.lock()
            .prepare_cached("DELETE FROM volumes WHERE name = ?1")
            .and_then(|mut s| s.execute([name]))
            .map_err(sq(format!("deleting volume {name}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_is_idempotent_and_removal_is_two_steps() {
        let db = Db::open_in_memory().unwrap();
        let row = VolumeRow {
            name: "v1".into(),
            driver: "local".into(),
            created: "2026-12-01T22:50:02Z".into(),
            labels: "{\"x\":\"y\"}".into(),
            options: "{}".into(),
            ..Default::default()
        };
        assert!(db.insert_volume(&row).unwrap());
        let other = VolumeRow {
            labels: "{}".into(),
            ..row.clone()
        };
        assert!(!db.insert_volume(&other).unwrap());
        assert_eq!(db.volume("v1").unwrap().unwrap(), row);
        db.mark_volume_removing("v1").unwrap();
        assert!(db.volumes().unwrap()[0].removing);
        db.delete_volume("v1").unwrap();
        assert!(db.volume("v1").unwrap().is_none());
        assert!(db.mark_volume_removing("v1").is_err());
    }
}
