//! history, prune, disk usage and the rmi rules they lean on.

use std::collections::BTreeMap;

use berth_types::ErrorKind;

use super::tests::{assert_nothing_left, ctr, env, import, never, rootfs_tar, Env};
use super::*;
use crate::config::History;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
    }) == Some(0)
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
    };
}

fn filters(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut f: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        f.entry(k.to_string()).or_default().push(v.to_string());
    }
    f
}

/// An image made on top of `parent` (recorded as its parent, as commit does) with one history
/// record per `(created_by, layer)`; a record without a layer is an `empty_layer` one.
fn child(e: &Env, parent: &str, records: &[(&str, Option<&[u8]>)], tag: Option<&str>) -> String {
    let mut cfg = e.svc.config_file(parent).unwrap();
    let mut tars: Vec<Vec<u8>> = Vec::new();
    for (by, layer) in records {
        cfg.history.push(History {
            created: "2024-05-06T07:08:09Z".into(),
            created_by: by.to_string(),
            empty_layer: layer.is_none(),
            ..Default::default()
        });
        if let Some(data) = layer {
            tars.push(rootfs_tar(&[(by, data)]));
        }
    }
    let mut readers: Vec<&[u8]> = tars.iter().map(Vec::as_slice).collect();
    let mut layers: Vec<&mut dyn std::io::Read> =
        readers.iter_mut().map(|r| r as &mut dyn std::io::Read).collect();
    e.svc.create_image(Some(parent), cfg, &mut layers, tag).unwrap()
}

fn top_layer_size(e: &Env, id: &str) -> i64 {
    e.db.image_layers(id).unwrap().last().unwrap().size
}

fn deleted(report: &[berth_api::models::ImageDeleteResponseItem]) -> Vec<String> {
    report.iter().filter_map(|d| d.deleted.clone()).collect()
}

#[test]
fn history_is_newest_first_with_layer_sizes_and_the_lineage_ids() {
    require_root!();
    let e = env();
    let base = import(&e.svc, &rootfs_tar(&[("f", b"base")]), Some("base:1"), &[]).unwrap();
    let mid = child(&e, &base, &[("sh -c echo hi", Some(b"hello"))], Some("mid:1"));
    let top = child(&e, &mid, &[("CMD [\"sh\"]", None)], None);

    let h = e.svc.history(&top).unwrap();
    let ids: Vec<&str> = h.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, vec![top.as_str(), mid.as_str(), base.as_str()]);
    assert_eq!(h[0].created_by, "CMD [\"sh\"]");
    assert_eq!((h[0].size, h[0].tags.clone()), (0, None), "empty_layer record");
    assert_eq!(h[0].created, 1_714_979_289);
    assert_eq!(h[1].size, top_layer_size(&e, &mid));
    assert_eq!(h[1].tags, Some(vec!["mid:1".to_string()]));
    assert_eq!(h[2].comment, "Imported from -");
    assert_eq!(h[2].size, top_layer_size(&e, &base));
    assert_eq!(h[2].tags, Some(vec!["base:1".to_string()]));
    let json = serde_json::to_string(&h[0]).unwrap();
    assert!(
        json.starts_with(r#"{"Comment":"","Created":1714979289,"CreatedBy":"CMD [\"sh\"]","Id":"sha256:"#)
            && json.ends_with(r#","Size":0,"Tags":null}"#),
        "{json}"
    );

    // Without a recorded parent (pulled, loaded), only the newest record has an image.
    let mut cfg = ConfigFile::for_host("2024-01-01T00:00:00Z".into());
    cfg.history = vec![
        History {
            created_by: "ADD rootfs".into(),
            ..Default::default()
        },
        History {
            created_by: "ENV A=b".into(),
            empty_layer: true,
            ..Default::default()
        },
    ];
    let tar = rootfs_tar(&[("g", b"loaded")]);
    let lone = e
        .svc
        .create_image(None, cfg, &mut [&mut &tar[..]], Some("lone:1"))
        .unwrap();
    let h = e.svc.history("lone:1").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].id, lone);
    assert_eq!(h[1].id, history::MISSING);
    assert_eq!((h[1].tags.clone(), h[1].created), (None, 0));
    assert_eq!(h[1].size, top_layer_size(&e, &lone));
    assert_eq!(
        e.svc.history("nope:1").unwrap_err().to_string(),
        "No such image: nope:1"
    );
}

#[test]
fn rmi_of_a_parents_last_tag_untags_it_quietly_and_rmi_of_the_child_prunes_it() {
    require_root!();
    let e = env();
    let base = import(&e.svc, &rootfs_tar(&[("f", b"base")]), Some("base:1"), &[]).unwrap();
    let kid = child(&e, &base, &[("x", Some(b"x"))], Some("kid:1"));
    // docker: "Untagged: base:1" and the image stays (it has a child), no error.
    let r = e.svc.remove("base:1", false, &never).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].untagged.as_deref(), Some("base:1"));
    assert!(e.db.image(&base).unwrap().is_some());
    // Deleting the child deletes the parent it leaves untagged and childless.
    let r = e.svc.remove("kid:1", false, &never).unwrap();
    let gone = deleted(&r);
    assert_eq!(gone[0], kid);
    assert!(gone.contains(&base), "{r:?}");
    assert_nothing_left(&e);

    // noprune keeps it.
    let base = import(&e.svc, &rootfs_tar(&[("f", b"base")]), None, &[]).unwrap();
    child(&e, &base, &[("x", Some(b"x"))], Some("kid:1"));
    let opts = RemoveOptions {
        force: false,
        noprune: true,
    };
    let r = e.svc.remove_with("kid:1", opts, &never).unwrap();
    assert!(!deleted(&r).contains(&base));
    assert!(e.db.image(&base).unwrap().is_some());
}

#[test]
fn dangling_prune_takes_untagged_images_and_chains_and_spares_tagged_and_used_ones() {
    require_root!();
    let e = env();
    let keep = import(&e.svc, &rootfs_tar(&[("k", b"keep")]), Some("keep:1"), &[]).unwrap();
    // A tag moved to a new image leaves the old one dangling.
    let old = import(&e.svc, &rootfs_tar(&[("d", b"old")]), Some("d:1"), &[]).unwrap();
    let new = import(&e.svc, &rootfs_tar(&[("d", b"new")]), Some("d:1"), &[]).unwrap();
    let dangling = ListOptions {
        all: false,
        filters: filters(&[("dangling", "true")]),
    };
    let listed: Vec<String> = e.svc.list(&dangling).unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(listed, vec![old.clone()]);
    assert_eq!(e.svc.list(&dangling).unwrap()[0].repo_tags, vec!["<none>:<none>"]);
    // An untagged chain: the head is dangling, its parent intermediate.
    let base = import(&e.svc, &rootfs_tar(&[("b", b"base")]), None, &[]).unwrap();
    let head = child(&e, &base, &[("x", Some(b"x"))], None);
    // Dangling but used by a container.
    let used = import(&e.svc, &rootfs_tar(&[("u", b"used")]), None, &[]).unwrap();
    ctr(&e.db, "c1", &used);

    let expected_space: i64 = [&old, &base, &head].iter().map(|id| top_layer_size(&e, id)).sum();
    let r = e.svc.prune(&BTreeMap::new(), &never).unwrap();
    let gone = deleted(&r.images_deleted);
    for id in [&old, &head, &base] {
        assert!(gone.contains(id), "{id} not pruned: {r:?}");
    }
    for id in [&keep, &new, &used] {
        assert!(e.db.image(id).unwrap().is_some(), "{id} pruned");
    }
    assert!(r.images_deleted.iter().all(|d| d.untagged.is_none()));
    assert_eq!(r.space_reclaimed, expected_space as u64);
    assert!(r.warnings.is_empty());
    // Nothing left to prune.
    let again = e.svc.prune(&filters(&[("dangling", "1")]), &never).unwrap();
    assert_eq!((again.images_deleted.len(), again.space_reclaimed), (0, 0));
}

#[test]
fn prune_all_honours_labels_until_and_containers() {
    require_root!();
    let e = env();
    let a = import(&e.svc, &rootfs_tar(&[("a", b"a")]), Some("a:1"), &["LABEL x=1"]).unwrap();
    e.svc.tag("a:1", "a:2").unwrap();
    let b = import(&e.svc, &rootfs_tar(&[("b", b"b")]), Some("b:1"), &[]).unwrap();
    let c = import(&e.svc, &rootfs_tar(&[("c", b"c")]), Some("c:1"), &["LABEL x=1"]).unwrap();
    ctr(&e.db, "c1", &c);

    let size_a = top_layer_size(&e, &a);
    // Created after `until` (an hour ago): spared.
    let r = e
        .svc
        .prune(&filters(&[("dangling", "false"), ("until", "1h")]), &never)
        .unwrap();
    assert!(r.images_deleted.is_empty(), "{r:?}");
    // label=x=1: a (both tags go, then the image) but not c, which a container uses.
    let r = e
        .svc
        .prune(&filters(&[("dangling", "false"), ("label", "x=1")]), &never)
        .unwrap();
    let untagged: Vec<_> = r
        .images_deleted
        .iter()
        .filter_map(|d| d.untagged.clone())
        .collect();
    assert_eq!(untagged, vec!["a:1", "a:2"]);
    assert_eq!(deleted(&r.images_deleted)[0], a);
    assert_eq!(r.space_reclaimed, size_a as u64);
    assert!(e.db.image(&c).unwrap().is_some());
    assert_eq!(e.db.tag_target("docker.io/library/c:1").unwrap(), Some(c.clone()));
    // label!=x=1 with everything else: b goes, c (labelled) stays.
    let r = e
        .svc
        .prune(&filters(&[("dangling", "false"), ("label!", "x=1")]), &never)
        .unwrap();
    assert_eq!(deleted(&r.images_deleted)[0], b);
    assert!(e.db.image(&c).unwrap().is_some());

    for (f, msg) in [
        (filters(&[("foo", "1")]), "Invalid filter 'foo'"),
        (
            filters(&[("dangling", "maybe")]),
            "Invalid filter 'dangling=[maybe]'",
        ),
        (
            filters(&[("until", "1h"), ("until", "2h")]),
            "more than one until filter specified",
        ),
        (
            filters(&[("until", "soon")]),
            "failed to parse value as time or duration: \"soon\"",
        ),
    ] {
        let err = e.svc.prune(&f, &never).unwrap_err();
        assert_eq!(
            (err.kind(), err.to_string()),
            (ErrorKind::InvalidArgument, msg.to_string())
        );
    }
}

#[test]
fn disk_usage_counts_shared_layers_once() {
    require_root!();
    let e = env();
    let shared = rootfs_tar(&[("s", b"shared bytes")]);
    let a = import(&e.svc, &shared, Some("a:1"), &[]).unwrap();
    let b = import(&e.svc, &shared, Some("b:1"), &["CMD [\"x\"]"]).unwrap();
    let c = import(&e.svc, &rootfs_tar(&[("c", b"own")]), Some("c:1"), &[]).unwrap();
    ctr(&e.db, "c1", &b);
    let (s, own) = (top_layer_size(&e, &a), top_layer_size(&e, &c));
    let du = e.svc.disk_usage().unwrap();
    assert_eq!(du.layers_size, s + own);
    let by_id = |id: &str| du.images.iter().find(|i| i.id == id).unwrap().clone();
    assert_eq!(
        (by_id(&a).shared_size, by_id(&a).size, by_id(&a).containers),
        (s, s, 0)
    );
    assert_eq!((by_id(&b).shared_size, by_id(&b).containers), (s, 1));
    assert_eq!((by_id(&c).shared_size, by_id(&c).size), (0, own));
}

#[test]
fn only_one_image_prune_runs_at_a_time() {
    let e = env();
    e.svc.pruning.store(true, std::sync::atomic::Ordering::Release);
    let err = e.svc.prune(&BTreeMap::new(), &never).unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (
            ErrorKind::Conflict,
            "a prune operation is already running".to_string()
        )
    );
}
