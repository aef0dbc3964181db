//! The commit layer tar, `docker export` and `docker cp` (archive stat/get/put), with hostile tars
//! and hostile symlinks planted in the container.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_archive::{apply_layer, export_tar, go_mode, write_layer_tar, ContainerFs, PutOptions};
use berth_types::ErrorKind;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: requires root");
            return;
        }
    };
}

/// A tar built from raw headers, so that names the `tar` crate would refuse can be written.
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Tar {
        Tar(Vec::new())
    }
    fn entry(&mut self, name: &str, kind: tar::EntryType, mode: u32, link: &str, data: &[u8]) -> &mut Tar {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0
            .extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        self.entry(name, tar::EntryType::Regular, 0o644, "", data)
    }
    fn dir(&mut self, name: &str) -> &mut Tar {
        self.entry(name, tar::EntryType::Directory, 0o755, "", b"")
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.entry(name, tar::EntryType::Symlink, 0o777, target, b"")
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.entry(name, tar::EntryType::Link, 0o644, target, b"")
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

/// (name, type byte, link, data) of every entry.
fn list(tar: &[u8]) -> Vec<(String, u8, String, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = e.header().entry_type().as_byte();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, kind, link, data)
        })
        .collect()
}

fn names(tar: &[u8]) -> Vec<String> {
    list(tar).into_iter().map(|e| e.0).collect()
}

fn whiteout(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
}

fn opaque(p: &Path) {
    rustix::fs::setxattr(p, "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Two lower layers and an upper dir written as overlay would have.
fn overlay_dirs() -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
    let t = tempfile::tempdir().unwrap();
    let (l1, l2, up) = (t.path().join("l1"), t.path().join("l2"), t.path().join("up"));
    for f in ["a", "dir/x", "dir/y", "keep/k", "opq/o1", "opq/sub/o2", "gone/g"] {
        write(&l1.join(f), b"lower");
    }
    write(&l2.join("dir/z"), b"l2");
    fs::create_dir_all(&l2).unwrap();
    whiteout(&l2.join("gone")); // deleted by layer 2: not in the lower view
                                // The container: modified /a, added /n and /newdir/f, removed /dir/x, added /keep/added,
                                // replaced /opq (rm -rf + mkdir: opaque) with /opq/new, re-created /gone.
    write(&up.join("a"), b"changed");
    write(&up.join("n"), b"new");
    write(&up.join("newdir/f"), b"new");
    fs::create_dir_all(up.join("dir")).unwrap();
    whiteout(&up.join("dir/x"));
    write(&up.join("keep/added"), b"new");
    write(&up.join("opq/new"), b"new");
    opaque(&up.join("opq"));
    write(&up.join("gone/g2"), b"new");
    (t, up, vec![l2, l1])
}

#[test]
fn layer_tar_converts_whiteouts_and_round_trips() {
    require_root!();
    let (t, up, _) = overlay_dirs();
    // Overlay's own xattrs never leave the upper dir.
    rustix::fs::setxattr(
        up.join("a"),
        "trusted.overlay.origin",
        b"zz",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(up.join("a"), "user.keep", b"1", rustix::fs::XattrFlags::empty()).unwrap();
    let mut tar = Vec::new();
    let n = write_layer_tar(&up, &mut tar).unwrap();
    let got = names(&tar);
    assert_eq!(n as usize, got.len());
    for want in [
        "a",
        "dir/",
        "dir/.wh.x",
        "opq/",
        "opq/.wh..wh..opq",
        "opq/new",
        "newdir/f",
    ] {
        assert!(got.contains(&want.to_string()), "{want} missing from {got:?}");
    }
    assert!(!got.iter().any(|n| n == "dir/x"));
    // Applying it reproduces the upper dir's markers.
    let out = t.path().join("applied");
    fs::create_dir(&out).unwrap();
    apply_layer(&out, &tar[..]).unwrap();
    let md = fs::symlink_metadata(out.join("dir/x")).unwrap();
    assert_eq!((md.mode() & 0o170000, md.rdev()), (0o020000, 0));
    let mut v = [0u8; 4];
    assert_eq!(
        rustix::fs::getxattr(out.join("opq"), "trusted.overlay.opaque", &mut v[..]).unwrap(),
        1
    );
    assert_eq!(fs::read(out.join("a")).unwrap(), b"changed");
    assert_eq!(
        rustix::fs::getxattr(out.join("a"), "user.keep", &mut v[..]).unwrap(),
        1
    );
    assert!(rustix::fs::getxattr(out.join("a"), "trusted.overlay.origin", &mut v[..]).is_err());
    // Nothing changed: an empty tar.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let mut tar = Vec::new();
    assert_eq!(write_layer_tar(&empty, &mut tar).unwrap(), 0);
    assert_eq!(tar.len(), 1024);
}

#[test]
fn export_keeps_links_devices_owners_and_skips_sockets() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("merged");
    write(&m.join("etc/passwd"), b"root:x:0:0");
    fs::set_permissions(m.join("etc/passwd"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(m.join("etc/passwd"), Some(4242), Some(77)).unwrap();
    symlink("/etc/passwd", m.join("pw")).unwrap();
    symlink("/", m.join("rootlink")).unwrap();
    fs::hard_link(m.join("etc/passwd"), m.join("etc/passwd.hl")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        m.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let long = "d".repeat(120);
    write(&m.join(&long).join("f"), b"deep");
    let _sock = std::os::unix::net::UnixListener::bind(m.join("sock")).unwrap();
    let mut tar = Vec::new();
    export_tar(&m, &mut tar).unwrap();
    let entries = list(&tar);
    let get = |n: &str| {
        entries
            .iter()
            .find(|e| e.0 == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    assert_eq!(get("etc/passwd").3, b"root:x:0:0");
    assert_eq!(get("etc/passwd.hl").1, b'1');
    assert_eq!(get("etc/passwd.hl").2, "etc/passwd");
    assert_eq!(get("pw").2, "/etc/passwd");
    assert_eq!(get("rootlink").1, b'2');
    assert_eq!(get("null").1, b'3');
    assert_eq!(get(&format!("{long}/f")).3, b"deep");
    assert!(!entries.iter().any(|e| e.0 == "sock"));
    // Numeric owners and modes.
    let mut a = tar::Archive::new(&tar[..]);
    let e = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path_bytes().as_ref() == b"etc/passwd")
        .unwrap();
    let h = e.header();
    assert_eq!(
        (h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap()),
        (4242, 77, 0o640)
    );
    // The root link was not followed: nothing of the host's / came along.
    assert!(!entries.iter().any(|e| e.0.starts_with("rootlink/")));
}

/// A container root at `<tmp>/merged` with hostile symlinks; `<tmp>/host` is "the host".
struct Ctr {
    t: tempfile::TempDir,
}

impl Ctr {
    fn new() -> Ctr {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("merged");
        write(&m.join("etc/passwd"), b"ctr");
        write(&m.join("dir/f"), b"f");
        write(&m.join("dir/sub/g"), b"g");
        fs::create_dir_all(m.join("host-etc")).unwrap();
        write(&t.path().join("host/secret"), b"host");
        // Hostile links planted by the container.
        symlink(t.path().join("host"), m.join("abs-out")).unwrap();
        symlink("../host", m.join("rel-out")).unwrap();
        symlink("/host-etc", m.join("etc2")).unwrap();
        symlink("/etc/passwd", m.join("pw")).unwrap();
        Ctr { t }
    }
    fn merged(&self) -> PathBuf {
        self.t.path().join("merged")
    }
    fn host(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.t.path().join("host")).unwrap() {
            let p = e.unwrap().path();
            out.push((p.clone(), fs::read(&p).unwrap_or_default()));
        }
        out.sort();
        out
    }
    fn fs(&self) -> ContainerFs<'_> {
        // The leaked path lives as long as the test: fine for tests.
        let m: &'static Path = Box::leak(self.merged().into_boxed_path());
        ContainerFs::new(m, "web")
    }
}

#[test]
fn archive_stat_describes_paths_like_docker() {
    require_root!();
    let c = Ctr::new();
    let fs_ = c.fs();
    let s = fs_.stat("/etc/passwd").unwrap();
    assert_eq!((s.name.as_str(), s.size, s.mode), ("passwd", 3, 0o644));
    assert!(s.link_target.is_empty());
    let s = fs_.stat("/dir").unwrap();
    assert!(s.is_dir());
    assert_eq!(s.mode & go_mode::DIR, go_mode::DIR);
    let s = fs_.stat("/pw").unwrap();
    assert_eq!(s.mode & go_mode::SYMLINK, go_mode::SYMLINK);
    assert_eq!(s.link_target, "/etc/passwd");
    // A link pointing out of the container resolves inside it.
    let s = fs_.stat("/etc2").unwrap();
    assert_eq!(s.link_target, "/host-etc");
    let s = fs_.stat("/etc2/").unwrap();
    assert!(s.is_dir());
    let json = fs_.stat("/pw").unwrap().to_header_json();
    assert!(
        json.starts_with(r#"{"name":"pw","size":11,"mode":134218239,"mtime":""#),
        "{json}"
    );
    assert!(json.ends_with(r#","linkTarget":"/etc/passwd"}"#), "{json}");
    let err = fs_.stat("/nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "Could not find the file /nope in container web");
    // Out through `..` and through links: clamped to the container's root.
    for p in [
        "/../host/secret",
        "/abs-out/secret",
        "/rel-out/secret",
        "../../host/secret",
    ] {
        assert_eq!(fs_.stat(p).unwrap_err().kind(), ErrorKind::NotFound, "{p}");
    }
}

#[test]
fn archive_get_names_entries_like_docker() {
    require_root!();
    let c = Ctr::new();
    let fs_ = c.fs();
    let mut tar = Vec::new();
    let s = fs_.get("/etc/passwd", &mut tar).unwrap();
    assert_eq!(s.name, "passwd");
    assert_eq!(names(&tar), vec!["passwd"]);

    let mut tar = Vec::new();
    fs_.get("/dir", &mut tar).unwrap();
    assert_eq!(names(&tar), vec!["dir/", "dir/f", "dir/sub/", "dir/sub/g"]);

    let mut tar = Vec::new();
    fs_.get("/dir/.", &mut tar).unwrap();
    assert_eq!(names(&tar), vec!["./", "./f", "./sub/", "./sub/g"]);

    let mut tar = Vec::new();
    fs_.get("/pw", &mut tar).unwrap();
    let e = list(&tar);
    assert_eq!(
        (e[0].0.as_str(), e[0].1, e[0].2.as_str()),
        ("pw", b'2', "/etc/passwd")
    );

    // A trailing slash follows the link, in the container.
    let mut tar = Vec::new();
    let s = fs_.get("/etc2/", &mut tar).unwrap();
    assert!(s.is_dir());
    assert_eq!(names(&tar), vec!["etc2/"]);

    for p in [
        "/abs-out/secret",
        "/rel-out/secret",
        "/../host/secret",
        "/abs-out/",
    ] {
        let mut tar = Vec::new();
        let err = fs_.get(p, &mut tar).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{p}");
        assert!(tar.is_empty());
    }
}

#[test]
fn archive_put_extracts_into_directories_confined() {
    require_root!();
    let c = Ctr::new();
    let fs_ = c.fs();
    let m = c.merged();
    let before = c.host();

    let tar = Tar::new()
        .file("hello.txt", b"hi")
        .dir("d/")
        .file("d/e", b"e")
        .finish();
    fs_.put("/dir", &mut &tar[..], PutOptions::default()).unwrap();
    assert_eq!(fs::read(m.join("dir/hello.txt")).unwrap(), b"hi");
    assert_eq!(fs::read(m.join("dir/d/e")).unwrap(), b"e");
    // Without copyUIDGID the files belong to the container's root.
    assert_eq!(fs::metadata(m.join("dir/hello.txt")).unwrap().uid(), 0);
    fs_.put(
        "/dir",
        &mut &Tar::new().file("owned", b"o").finish()[..],
        PutOptions {
            copy_uid_gid: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs::metadata(m.join("dir/owned")).unwrap().uid(), 1000);

    // Into a container symlink pointing "out": lands inside the container.
    let tar = Tar::new().file("passwd", b"pwned").finish();
    fs_.put("/etc2", &mut &tar[..], PutOptions::default()).unwrap();
    assert_eq!(fs::read(m.join("host-etc/passwd")).unwrap(), b"pwned");
    for p in ["/abs-out", "/rel-out"] {
        let err = fs_.put(p, &mut &tar[..], PutOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{p}");
        assert_eq!(
            err.to_string(),
            format!("Could not find the file {p} in container web")
        );
    }

    // Hostile tars.
    let hostile: Vec<Vec<u8>> = vec![
        Tar::new().file("../x", b"x").finish(),
        Tar::new().file("a/../../x", b"x").finish(),
        Tar::new().hardlink("hl", "../../host/secret").finish(),
        Tar::new()
            .symlink("s", "/")
            .file("s/etc/passwd", b"pwned")
            .finish(),
        Tar::new()
            .symlink("s", "../../../..")
            .file("s/host/secret", b"pwned")
            .finish(),
        Tar::new().hardlink("hl", "/abs-out/secret").finish(),
        Tar::new().file("abs-out/secret", b"pwned").finish(),
        Tar::new().file("rel-out/secret", b"pwned").finish(),
        Tar::new().file(".wh.passwd", b"").finish(),
    ];
    for (i, tar) in hostile.iter().enumerate() {
        let _ = fs_.put("/", &mut &tar[..], PutOptions::default());
        let _ = fs_.put("/etc", &mut &tar[..], PutOptions::default());
        assert_eq!(c.host(), before, "hostile tar {i} changed the host");
    }
    // The whiteout name was a plain file, the container's passwd is intact.
    assert!(m.join("etc/.wh.passwd").is_file());
    assert!(m.join("etc/passwd").is_file());
    assert_eq!(
        fs_.put("/", &mut &hostile[0][..], PutOptions::default())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );

    // Errors.
    let err = fs_
        .put("/etc/passwd", &mut &tar[..], PutOptions::default())
        .unwrap_err();
    assert_eq!(err.to_string(), "extraction point is not a directory");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = fs_
        .put("/missing", &mut &tar[..], PutOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Could not find the file /missing in container web"
    );
    let no = PutOptions {
        no_overwrite_dir_non_dir: true,
        ..Default::default()
    };
    let err = fs_
        .put("/", &mut &Tar::new().file("dir", b"x").finish()[..], no)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string().starts_with("cannot overwrite directory "),
        "{err}"
    );
    assert!(m.join("dir").is_dir());
    let err = fs_
        .put("/", &mut &Tar::new().dir("pw/").finish()[..], no)
        .unwrap_err();
    assert!(
        err.to_string().starts_with("cannot overwrite non-directory "),
        "{err}"
    );
    // Without the flag docker replaces.
    fs_.put(
        "/",
        &mut &Tar::new().file("dir", b"x").finish()[..],
        PutOptions::default(),
    )
    .unwrap();
    assert!(m.join("dir").is_file());
}
