use super::*;

fn ctr(id: &str, name: &str, image: &str) -> ContainerRow {
    ContainerRow {
        id: id.into(),
        name: name.into(),
        image_id: image.into(),
        doc: "{}".into(),
    }
}

fn img(id: &str, added: i64) -> ImageRow {
    ImageRow {
        id: id.into(),
        created: "2024-01-01T00:00:00Z".into(),
        size: 10,
        parent: String::new(),
        last_tag_time: None,
        added,
    }
}

fn layer(chain: &str, parent: Option<&str>) -> LayerRow {
    LayerRow {
        chain_id: chain.into(),
        diff_id: format!("diff-{chain}"),
        parent_chain_id: parent.map(str::to_string),
        snapshot_key: chain.into(),
        size: 5,
    }
}

#[test]
fn opens_in_wal_mode_at_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let mode: String = db
        .lock()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(db);
    // Reopening does not re-run migrations.
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
}

/// A version-1 database (before pulls) is migrated in place, keeping what it holds.
#[test]
fn a_version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO images (id, created, size, added) VALUES ('sha256:a', 't', 1, 1)",
            [],
        )
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert!(db.image("sha256:a").unwrap().is_some());
    assert!(db.repo_digests_of("sha256:a").unwrap().is_empty());
}

#[test]
fn repo_digests_and_blob_sources_live_and_die_with_the_image() {
    let db = Db::open_in_memory().unwrap();
    let l = layer("c1", None);
    let src = BlobSource {
        digest: "sha256:gz".into(),
        repository: "docker.io/library/a".into(),
        diff_id: l.diff_id.clone(),
        media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
        size: 10,
    };
    db.insert_image_with(
        &img("sha256:a", 1),
        std::slice::from_ref(&l),
        &ImageRefs {
            tags: &["docker.io/library/a:latest"],
            repo_digests: &["docker.io/library/a@sha256:m"],
            sources: std::slice::from_ref(&src),
        },
    )
    .unwrap();
    assert_eq!(
        db.repo_digest_target("docker.io/library/a@sha256:m")
            .unwrap()
            .as_deref(),
        Some("sha256:a")
    );
    assert_eq!(db.source_diff_id("sha256:gz").unwrap(), Some(l.diff_id.clone()));
    assert_eq!(db.sources_of(&l.diff_id).unwrap(), vec![src]);
    db.record_push("sha256:a", "127.0.0.1:5000/a@sha256:p", &[])
        .unwrap();
    assert_eq!(db.repo_digests_of("sha256:a").unwrap().len(), 2);
    db.delete_image("sha256:a").unwrap();
    assert!(db.all_repo_digests().unwrap().is_empty(), "repo digests cascade");
    assert_eq!(
        db.source_diff_id("sha256:gz").unwrap(),
        None,
        "hints go with the last layer"
    );
}

/// The database holds every container's env: never world-readable, nor its WAL and shm files.
#[test]
fn database_and_wal_files_are_owner_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let mode = |suffix: &str| {
        std::fs::metadata(dir.path().join(format!("berth.db{suffix}")))
            .unwrap()
            .mode()
            & 0o777
    };
    let db = Db::open(&path).unwrap();
    db.insert_container(&ctr("c1", "/web", "sha256:i")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "berth.db{suffix}");
    }
    drop(db);
    // A database an older berth left world-readable is tightened when opened.
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.path().join(format!("berth.db{suffix}"));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let db = Db::open(&path).unwrap();
    db.insert_container(&ctr("c2", "/db", "sha256:i")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "berth.db{suffix} after reopening");
    }
}

#[test]
fn refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Db::open(&path).unwrap_err();
    assert!(matches!(err, MetaError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn containers_crud_and_name_conflicts() {
    let db = Db::open_in_memory().unwrap();
    db.insert_container(&ctr("c1", "/web", "sha256:i")).unwrap();
    db.insert_container(&ctr("c2", "/db", "sha256:i")).unwrap();
    let err = db.insert_container(&ctr("c3", "/web", "sha256:i")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        "Conflict. The container name \"/web\" is already in use by container \"c1\". You have to remove (or rename) that container to be able to reuse that name."
    );
    assert_eq!(
        db.rename_container("c2", "/web", "{}").unwrap_err().kind(),
        ErrorKind::Conflict
    );
    db.rename_container("c2", "/db2", "{\"n\":2}").unwrap();
    db.rename_container("c2", "/db2", "{\"n\":2}").unwrap();
    db.update_container_doc("c1", "{\"x\":1}").unwrap();
    assert_eq!(
        db.update_container_doc("nope", "{}").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let all = db.list_containers().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        db.container("c2").unwrap().unwrap().doc,
        "{\"n\":2}",
        "rename replaced the doc"
    );
    assert!(db.container("nope").unwrap().is_none());
    assert_eq!(all[0].doc, "{\"x\":1}");
    assert_eq!(all[1].name, "/db2");
    assert_eq!(db.containers_using_image("sha256:i").unwrap(), vec!["c1", "c2"]);
    assert_eq!(db.container_counts().unwrap()["sha256:i"], 2);
    db.delete_container("c1").unwrap();
    assert_eq!(db.delete_container("c1").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(db.list_containers().unwrap().len(), 1);
}

#[test]
fn shared_layers_are_stored_once_and_freed_with_the_last_user() {
    let db = Db::open_in_memory().unwrap();
    let (l1, l2, l3) = (
        layer("c1", None),
        layer("c2", Some("c1")),
        layer("c3", Some("c1")),
    );
    assert_eq!(
        db.insert_image(
            &img("sha256:a", 1),
            &[l1.clone(), l2.clone()],
            &["docker.io/library/a:latest"]
        )
        .unwrap(),
        Vec::<String>::new()
    );
    db.insert_image(&img("sha256:b", 2), &[l1.clone(), l3.clone()], &[])
        .unwrap();
    assert_eq!(db.layers().unwrap().len(), 3);
    assert_eq!(db.layer_users("c1").unwrap(), 2);
    assert_eq!(db.image_layers("sha256:b").unwrap(), vec![l1.clone(), l3.clone()]);
    assert_eq!(
        db.images()
            .unwrap()
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["sha256:b", "sha256:a"]
    );

    // Moving a tag reports the previous image.
    assert_eq!(
        db.set_tag("docker.io/library/a:latest", "sha256:b", "t").unwrap(),
        Some("sha256:a".into())
    );
    assert_eq!(
        db.tag_target("docker.io/library/a:latest").unwrap(),
        Some("sha256:b".into())
    );
    assert_eq!(
        db.image("sha256:b").unwrap().unwrap().last_tag_time.as_deref(),
        Some("t")
    );

    let removed = db.delete_image("sha256:a").unwrap();
    assert_eq!(removed, vec![l2]);
    assert_eq!(db.layer_users("c1").unwrap(), 1);
    let removed = db.delete_image("sha256:b").unwrap();
    assert_eq!(removed, vec![l3, l1]);
    assert!(db.layers().unwrap().is_empty());
    assert!(db.all_tags().unwrap().is_empty(), "tags cascade");
    assert_eq!(
        db.delete_image("sha256:b").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn insert_image_is_idempotent_and_prefix_search() {
    let db = Db::open_in_memory().unwrap();
    let a = format!("sha256:ab{}", "0".repeat(62));
    let b = format!("sha256:ac{}", "0".repeat(62));
    db.insert_image(&img(&a, 1), &[layer("c1", None)], &[]).unwrap();
    db.insert_image(&img(&a, 1), &[layer("c1", None)], &["x"])
        .unwrap();
    db.insert_image(&img(&b, 2), &[], &[]).unwrap();
    assert_eq!(db.image_layers(&a).unwrap().len(), 1);
    assert_eq!(db.tags_of(&a).unwrap(), vec!["x"]);
    assert_eq!(
        db.image_ids_with_prefix("a", 5).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(db.image_ids_with_prefix("ab", 5).unwrap(), vec![a.clone()]);
    assert!(db.image_ids_with_prefix("b", 5).unwrap().is_empty());
    assert!(db.delete_tag("x").unwrap());
    assert!(!db.delete_tag("x").unwrap());
}

#[test]
fn db_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Db>();
}

#[test]
fn all_image_layers_and_parents_come_from_one_query_each() {
    let db = Db::open_in_memory().unwrap();
    let (a, b) = (layer("sha256:a", None), layer("sha256:b", Some("sha256:a")));
    db.insert_image(&img("sha256:1", 1), std::slice::from_ref(&a), &[])
        .unwrap();
    let mut child = img("sha256:2", 2);
    child.parent = "sha256:1".into();
    db.insert_image(&child, &[a.clone(), b.clone()], &[]).unwrap();
    let rows = db.all_image_layers().unwrap();
    assert_eq!(
        rows,
        vec![
            ("sha256:1".to_string(), a.clone()),
            ("sha256:2".to_string(), a),
            ("sha256:2".to_string(), b)
        ]
    );
    let parents = db.parent_ids().unwrap();
    assert_eq!(
        parents.into_iter().collect::<Vec<_>>(),
        vec!["sha256:1".to_string()]
    );
}

/// Every statement of this crate that looks up by key uses an index: no per-container (or
/// per-image) operation scans a table. Only listings (no `WHERE`) may scan. The statements are
/// read from the source, so a new query without an index fails here.
#[test]
fn no_keyed_query_scans_a_table() {
    let db = Db::open_in_memory().unwrap();
    let src = include_str!("lib.rs");
    let mut checked = 0;
    let mut scans = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("prepare_cached(") {
        rest = &rest[i + "prepare_cached(".len()..];
        let Some(body) = rest.trim_start().strip_prefix('"') else {
            continue;
        };
        let sql = &body[..body.find('"').unwrap()];
        let conn = db.lock();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut plan = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            plan.push(r.get::<_, String>(3).unwrap());
        }
        checked += 1;
        let keyed = sql.contains("WHERE");
        for step in plan {
            // "SCAN t" walks every row; "SCAN t USING COVERING INDEX" of a GROUP BY is a listing.
            if keyed && step.starts_with("SCAN") && !step.contains("USING") {
                scans.push(format!("{sql}\n    -> {step}"));
            }
        }
    }
    assert!(checked > 40, "only {checked} statements found");
    assert!(
        scans.is_empty(),
        "keyed queries scanning a table:\n{}",
        scans.join("\n")
    );
}

/// After a bulk removal the daemon hands SQLite's page cache back (issue 11: memory returned
/// after containers go); the database answers as before from disk afterwards.
#[test]
fn releasing_the_page_cache_keeps_every_record_readable() {
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path().join("meta.db")).unwrap();
    for i in 0..200 {
        let mut row = ctr(&format!("{i:064}"), &format!("c{i}"), "sha256:1");
        row.doc = "x".repeat(4000);
        db.insert_container(&row).unwrap();
    }
    assert_eq!(db.list_containers().unwrap().len(), 200);
    for i in 0..150 {
        db.delete_container(&format!("{i:064}")).unwrap();
    }
    db.release_memory().unwrap();
    let left = db.list_containers().unwrap();
    assert_eq!(left.len(), 50);
    assert_eq!(
        db.container(&format!("{:064}", 199)).unwrap().unwrap().doc.len(),
        4000
    );
}
