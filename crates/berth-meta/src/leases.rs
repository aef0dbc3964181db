//! IPAM leases: which address of which network a container holds. Allocation itself is
//! berth-network's (pure); this is its memory across restarts.

use rusqlite::{params, OptionalExtension};

use crate::{sq, Db, MetaError};

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub network: String,
    pub address: String,
    pub container: String,
}

impl Db {
    /// The addresses leased on `network`.
    pub fn leased_addresses(&self, network: &str) -> Result<Vec<String>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT address FROM ip_leases WHERE network = ?1")
            .map_err(sq("listing leases"))?;
        let rows = stmt
            .query_map([network], |r| r.get(0))
            .and_then(|r| r.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(sq("listing leases"))?;
        Ok(rows)
    }

    /// Records a lease; `false` when the address is already leased (to anyone).
    pub fn insert_lease(&self, network: &str, address: &str, container: &str) -> Result<bool, MetaError> {
        let conn = self.lock();
        let holder: Option<String> = conn
            .prepare_cached("SELECT container FROM ip_leases WHERE network = ?1 AND address = ?2")
            .and_then(|mut s| s.query_row(params![network, address], |r| r.get(0)).optional())
            .map_err(sq("reading lease"))?;
        if holder.is_some() {
            return Ok(false);
        }
        berth_sys::failpoint::hit("network.lease.before-commit");
        conn.prepare_cached("INSERT INTO ip_leases (network, address, container) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![network, address, container]))
            .map_err(sq(format!("leasing {address} on {network}")))?;
        Ok(true)
    }

    /// Releases every lease of a container; how many there were.
    pub fn release_leases(&self, container: &str) -> Result<usize, MetaError> {
        self.lock()
            .prepare_cached("DELETE FROM ip_leases WHERE container = ?1")
            .and_then(|mut s| s.execute([container]))
            .map_err(sq(format!("releasing the leases of {container}")))
    }

    /// Releases a container's lease on one network.
    pub fn release_lease(&self, network: &str, container: &str) -> Result<usize, MetaError> {
        self.lock()
            .prepare_cached("DELETE FROM ip_leases WHERE network = ?1 AND container = ?2")
            .and_then(|mut s| s.execute([network, container]))
            .map_err(sq(format!("releasing the lease of {container} on {network}")))
    }

    /// Every lease (reconciliation and `berthd check`).
    pub fn all_leases(&self) -> Result<Vec<Lease>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT network, address, container FROM ip_leases ORDER BY rowid")
            .map_err(sq("listing leases"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Lease {
                    network: r.get(0)?,
                    address: r.get(1)?,
                    container: r.get(2)?,
                })
            })
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sq("listing leases"))?;
        Ok(rows)
    }
}

/// A user-defined network's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub doc: String,
}

impl Db {
    /// Records a network; `false` when the name is taken.
    pub fn insert_network(&self, row: &NetworkRow) -> Result<bool, MetaError> {
        let conn = self.lock();
        let taken: Option<String> = conn
            .prepare_cached("SELECT id FROM networks WHERE name = ?1")
            .and_then(|mut s| s.query_row([&row.name], |r| r.get(0)).optional())
            .map_err(sq("reading network"))?;
        if taken.is_some() {
            return Ok(false);
        }
        berth_sys::failpoint::hit("network.create.before-commit");
        conn.prepare_cached("INSERT INTO networks (id, name, doc) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![row.id, row.name, row.doc]))
            .map_err(sq(format!("inserting network {}", row.name)))?;
        Ok(true)
    }

    /// Deletes a network record and any lease left on it.
    pub fn delete_network(&self, id: &str) -> Result<(), MetaError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(sq("starting network removal"))?;
        tx.execute("DELETE FROM ip_leases WHERE network = ?1", [id])
            .and_then(|_| tx.execute("DELETE FROM networks WHERE id = ?1", [id]))
            .map_err(sq(format!("deleting network {id}")))?;
        tx.commit().map_err(sq("committing network removal"))
    }

    /// Every user-defined network, oldest first.
    pub fn networks(&self) -> Result<Vec<NetworkRow>, MetaError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id, name, doc FROM networks ORDER BY rowid")
            .map_err(sq("listing networks"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(NetworkRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    doc: r.get(2)?,
                })
            })
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sq("listing networks"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use crate::Db;

    #[test]
    fn an_address_is_leased_once_and_released_with_its_container() {
        let db = Db::open_in_memory().unwrap();
        assert!(db.insert_lease("n1", "10.0.0.2", "c1").unwrap());
        assert!(!db.insert_lease("n1", "10.0.0.2", "c2").unwrap());
        assert!(db.insert_lease("n2", "10.0.0.2", "c2").unwrap());
        assert_eq!(db.leased_addresses("n1").unwrap(), vec!["10.0.0.2"]);
        assert_eq!(db.release_leases("c1").unwrap(), 1);
        assert!(db.leased_addresses("n1").unwrap().is_empty());
        assert_eq!(db.all_leases().unwrap().len(), 1);
    }

    #[test]
    fn network_names_are_unique_and_removal_drops_its_leases() {
        let db = Db::open_in_memory().unwrap();
        let row = super::NetworkRow {
            id: "a".into(),
            name: "n".into(),
            doc: "{}".into(),
        };
        assert!(db.insert_network(&row).unwrap());
        assert!(!db
            .insert_network(&super::NetworkRow {
                id: "b".into(),
                ..row.clone()
            })
            .unwrap());
        db.insert_lease("a", "10.0.0.2", "c").unwrap();
        db.delete_network("a").unwrap();
        assert!(db.networks().unwrap().is_empty());
        assert!(db.all_leases().unwrap().is_empty());
    }
}
