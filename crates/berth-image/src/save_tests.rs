//! `docker save` / `docker load`: round trips in both layouts, and hostile archives.

use std::io::Read;

use berth_meta::Db;
use berth_types::ErrorKind;

use super::*;

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

fn env() -> (tempfile::TempDir, ImageService) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("berth.db")).unwrap();
    let svc = ImageService::open(dir.path(), db).unwrap();
    (dir, svc)
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A two-layer image tagged `tag`.
fn two_layers(svc: &ImageService, tag: &str) -> String {
    let l1 = tar_of(&[("a", b"1")]);
    let l2 = tar_of(&[("b", b"2")]);
    let mut cfg = ConfigFile::for_host("2025-01-01T00:00:00Z".into());
    cfg.config.cmd = Some(vec!["sh".into()]);
    svc.create_image(None, cfg, &mut [&mut &l1[..], &mut &l2[..]], Some(tag))
        .unwrap()
}

fn entries(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn never(_: &str) -> bool {
    false
}

#[test]
fn save_rmi_load_gives_the_same_id() {
    require_root!();
    let (_d, svc) = env();
    let id = two_layers(&svc, "app:v1");
    svc.tag("app:v1", "other:latest").unwrap();
    let mut out = Vec::new();
    svc.save(&["app:v1".into(), "other".into()], &mut out).unwrap();
    let names = entries(&out);
    for n in ["manifest.json", "repositories", "index.json", "oci-layout"] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }
    assert!(names.iter().any(|x| x == &format!("{}.json", &id[7..])));
    assert_eq!(names.iter().filter(|x| x.ends_with("/layer.tar")).count(), 2);
    assert_eq!(names.iter().filter(|x| x.ends_with("/VERSION")).count(), 2);
    let manifest: serde_json::Value = {
        let mut a = tar::Archive::new(&out[..]);
        let mut e = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
            .unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        serde_json::from_str(&s).unwrap()
    };
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["app:v1", "other:latest"])
    );

    svc.remove(&id, true, &never).unwrap();
    assert_eq!(svc.resolve("app:v1").unwrap_err().kind(), ErrorKind::NotFound);
    let mut progress = Vec::new();
    let lines = svc.load(&mut &out[..], &mut |s| progress.push(s)).unwrap();
    assert_eq!(lines, vec!["Loaded image: app:v1", "Loaded image: other:latest"]);
    assert_eq!(progress.len(), 2, "{progress:?}");
    assert_eq!(svc.resolve("app:v1").unwrap().id, id);
    assert_eq!(svc.resolve("other").unwrap().id, id);
    // Loading again: nothing unpacked, same answer.
    let mut progress = Vec::new();
    svc.load(&mut &out[..], &mut |s| progress.push(s)).unwrap();
    assert!(progress.is_empty());

    // By ID: untagged, "Loaded image ID".
    let mut out = Vec::new();
    svc.save(std::slice::from_ref(&id), &mut out).unwrap();
    svc.remove(&id, true, &never).unwrap();
    let lines = svc.load(&mut &out[..], &mut |_| {}).unwrap();
    assert_eq!(lines, vec![format!("Loaded image ID: {id}")]);
    // gzip-compressed archives load too.
    let gz = {
        use std::io::Write;
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(&out).unwrap();
        w.finish().unwrap()
    };
    svc.remove(&id, true, &never).unwrap();
    svc.load(&mut &gz[..], &mut |_| {}).unwrap();
    assert!(svc.resolve(&id).is_ok());
}

/// Keeps only the entries `keep` accepts.
fn filter_tar(tar: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if !keep(&name) {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn loads_the_oci_layout_alone() {
    require_root!();
    let (_d, svc) = env();
    let id = two_layers(&svc, "oci:v2");
    let mut out = Vec::new();
    svc.save(&["oci:v2".into()], &mut out).unwrap();
    svc.remove(&id, true, &never).unwrap();
    let oci = filter_tar(&out, |n| {
        n.starts_with("blobs/") || n == "index.json" || n == "oci-layout"
    });
    let lines = svc.load(&mut &oci[..], &mut |_| {}).unwrap();
    assert_eq!(lines, vec!["Loaded image: oci:v2"]);
    assert_eq!(svc.resolve("oci:v2").unwrap().id, id);
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    require_root!();
    let (d, svc) = env();
    let host_secret = d.path().join("secret");
    std::fs::write(&host_secret, b"{}").unwrap();
    let manifest = |config: &str, layers: &[&str]| {
        serde_json::json!([{"Config": config, "RepoTags": ["evil:1"], "Layers": layers}]).to_string()
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], kind: tar::EntryType, link: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        if kind == tar::EntryType::Symlink {
            h.set_link_name(link).unwrap();
        }
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add(
        "cfg.json",
        b"",
        tar::EntryType::Symlink,
        host_secret.to_str().unwrap(),
    );
    add(
        "manifest.json",
        manifest("cfg.json", &[]).as_bytes(),
        tar::EntryType::Regular,
        "",
    );
    let tar1 = b.into_inner().unwrap();
    let err = svc.load(&mut &tar1[..], &mut |_| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    let tar2 = {
        let mut b = tar::Builder::new(Vec::new());
        let m = manifest("../../../../../../..".to_string().as_str(), &["../secret"]);
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", m.as_bytes()).unwrap();
        b.into_inner().unwrap()
    };
    assert!(svc.load(&mut &tar2[..], &mut |_| {}).is_err());
    // A layer whose content does not match the config's diff ID.
    let id = two_layers(&svc, "x:1");
    let mut out = Vec::new();
    svc.save(&["x:1".into()], &mut out).unwrap();
    let config = svc
        .content
        .read(&berth_types::Digest::parse(&id).unwrap())
        .unwrap();
    svc.remove(&id, true, &never).unwrap();
    let cfg = svc_config_swap(&out, &config);
    let err = svc.load(&mut &cfg[..], &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("invalid diffID"), "{err}");
    assert!(svc.db.images().unwrap().is_empty());
    assert!(svc.db.layers().unwrap().is_empty());
    assert_eq!(std::fs::read(&host_secret).unwrap(), b"{}");
    assert_eq!(
        std::fs::read_dir(d.path().join("content/ingest"))
            .unwrap()
            .count(),
        0,
        "load left its temp dir"
    );
}

/// The archive with every legacy layer.tar replaced by the same (wrong) content.
fn svc_config_swap(tar: &[u8], config: &[u8]) -> Vec<u8> {
    let wrong = tar_of(&[("zzz", b"not the layer")]);
    let mut b = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(tar).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.starts_with("blobs/") || name == "index.json" {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        if name.ends_with("/layer.tar") {
            h.set_size(wrong.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, &name, &wrong[..]).unwrap();
            continue;
        }
        if name.ends_with(".json") && !name.contains('/') && name != "manifest.json" {
            // the config: a hard link to its blob in the original; write the bytes.
            h.set_size(config.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, &name, config).unwrap();
            continue;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mut h2 = e.header().clone();
        b.append_data(&mut h2, &name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn load_errors_say_what_docker_says() {
    let (_d, svc) = env();
    let err = |input: &[u8]| svc.load(&mut &input[..], &mut |_| {}).unwrap_err();
    // Not a tar at all.
    let e = err(&b"garbage".repeat(100));
    assert_eq!(e.to_string(), "archive/tar: invalid tar header");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // A tar, but not an image archive (and an empty stream, which is an empty tar to docker).
    let plain = tar_of(&[("hello.txt", b"hi\n")]);
    assert_eq!(
        err(&plain).to_string(),
        "invalid archive: does not contain a manifest.json"
    );
    assert_eq!(
        err(b"").to_string(),
        "invalid archive: does not contain a manifest.json"
    );
    // A save archive cut short: in a file's data, and in a header.
    let (_d2, svc2) = env();
    two_layers(&svc2, "cut:1");
    let mut full = Vec::new();
    svc2.save(&["cut:1".into()], &mut full).unwrap();
    for at in [700, 512 + 100, full.len() / 2] {
        assert_eq!(err(&full[..at]).to_string(), "unexpected EOF", "cut at {at}");
    }
}
