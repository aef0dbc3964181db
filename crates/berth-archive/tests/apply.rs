//! Layer apply: fidelity, whiteouts, and confinement against malicious tars.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_archive::apply_layer;
use berth_types::ErrorKind;
use sha2::{Digest as _, Sha256};

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
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
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

/// A sandbox: `<tmp>/root` is the target; everything else in `<tmp>` is "outside".
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("root")).unwrap();
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(tmp.path().join("etc/passwd"), b"outside").unwrap();
        fs::write(tmp.path().join("x"), b"outside").unwrap();
        Sandbox { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    /// Everything outside the root, with contents.
    fn outside(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(p: &Path, skip: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                let path = e.path();
                if path == skip {
                    continue;
                }
                let md = fs::symlink_metadata(&path).unwrap();
                if md.is_dir() {
                    walk(&path, skip, out);
                }
                let data = if md.is_file() {
                    fs::read(&path).unwrap()
                } else {
                    Vec::new()
                };
                out.push((path, data));
            }
        }
        let mut out = Vec::new();
        walk(self.tmp.path(), &self.root(), &mut out);
        out.sort();
        out
    }
}

/// Applies `tar` and asserts nothing outside the root changed. Returns the apply result.
fn apply_confined(
    tar: &[u8],
) -> (
    Sandbox,
    Result<(berth_types::Digest, u64), berth_archive::ApplyError>,
) {
    let sb = Sandbox::new();
    let before = sb.outside();
    let res = apply_layer(&sb.root(), tar);
    assert_eq!(sb.outside(), before, "something outside the root changed");
    (sb, res)
}

#[test]
fn unpacks_with_fidelity_and_diff_id() {
    require_root!();
    let mut t = Tar::new();
    t.dir("bin/")
        .entry("bin/tool", tar::EntryType::Regular, 0o4755, "", b"#!/bin/sh\n")
        .symlink("bin/sh", "tool")
        .hardlink("bin/tool2", "bin/tool")
        .entry("dev/null", tar::EntryType::Char, 0o666, "", b"")
        .entry("run/fifo", tar::EntryType::Fifo, 0o600, "", b"");
    let tar = t.finish();
    let sb = Sandbox::new();
    let (diff_id, size) = apply_layer(&sb.root(), &tar[..]).unwrap();
    let want: [u8; 32] = Sha256::digest(&tar).into();
    assert_eq!(diff_id, berth_types::Digest::from_sha256_bytes(&want));
    // dockerd's layer size: the file's 10 bytes and the symlink's 4 ("tool"); the hard link,
    // the device and the fifo add nothing.
    assert_eq!(size, 14);

    let r = sb.root();
    let md = fs::symlink_metadata(r.join("bin/tool")).unwrap();
    assert_eq!(
        md.permissions().mode() & 0o7777,
        0o4755,
        "set-uid bit kept after chown"
    );
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
    assert_eq!(md.mtime(), 1_600_000_000);
    assert_eq!(md.nlink(), 2);
    assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("tool"));
    assert_eq!(fs::symlink_metadata(r.join("bin/sh")).unwrap().uid(), 1000);
    assert_eq!(
        fs::metadata(r.join("bin")).unwrap().mtime(),
        1_600_000_000,
        "dir times set last"
    );
    let null = fs::symlink_metadata(r.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::symlink_metadata(r.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::metadata(r.join("run")).unwrap().permissions().mode() & 0o777,
        0o755,
        "implicit parents are 0755"
    );
}

#[test]
fn keeps_pax_xattrs() {
    require_root!();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", b"hi".as_slice()),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_size(1);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let sb = Sandbox::new();
    apply_layer(&sb.root(), &tar[..]).unwrap();
    let f = fs::File::open(sb.root().join("f")).unwrap();
    let mut buf = [0u8; 16];
    let n = rustix::fs::fgetxattr(&f, "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert!(
        rustix::fs::fgetxattr(&f, "trusted.overlay.opaque", &mut buf).is_err(),
        "forged overlay xattr dropped"
    );
}

#[test]
fn whiteouts_become_overlay_markers() {
    require_root!();
    let mut t = Tar::new();
    t.dir("etc/")
        .file("etc/.wh.gone", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/keep", b"k");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    let r = sb.root();
    let md = fs::symlink_metadata(r.join("etc/gone")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    assert!(!r.join("etc/.wh.gone").exists());
    let var = fs::File::open(r.join("var")).unwrap();
    let mut buf = [0u8; 4];
    let n = rustix::fs::fgetxattr(&var, "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!r.join("var/.wh..wh..opq").exists());
    assert_eq!(fs::read(r.join("var/keep")).unwrap(), b"k");
}

#[test]
fn dot_dot_is_refused() {
    let mut t = Tar::new();
    t.file("../x", b"evil");
    let (_sb, res) = apply_confined(&t.finish());
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("escapes the root"), "{err}");

    let mut t = Tar::new();
    t.file("a/../../x", b"evil");
    let (_sb, res) = apply_confined(&t.finish());
    assert!(res.is_err());
}

#[test]
fn absolute_paths_land_inside() {
    require_root!();
    let mut t = Tar::new();
    t.file("/etc/x", b"inside");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    assert_eq!(fs::read(sb.root().join("etc/x")).unwrap(), b"inside");
}

#[test]
fn absolute_symlink_then_write_through_it() {
    require_root!();
    let mut t = Tar::new();
    t.symlink("a", "/")
        .file("a/etc/x", b"inside")
        .file("a/x", b"inside");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    assert_eq!(fs::read(sb.root().join("etc/x")).unwrap(), b"inside");
    assert_eq!(fs::read(sb.root().join("x")).unwrap(), b"inside");
}

#[test]
fn symlink_to_absolute_host_path() {
    require_root!();
    let sb_probe = Sandbox::new();
    let host_dir = sb_probe.tmp.path().to_string_lossy().into_owned();
    let mut t = Tar::new();
    t.symlink("h", &host_dir).file("h/x", b"evil");
    // The link resolves to <root>/<host_dir>, which does not exist: refused, nothing outside.
    let (_sb, res) = apply_confined(&t.finish());
    assert!(res.is_err());
}

#[test]
fn relative_symlink_chains() {
    require_root!();
    let mut t = Tar::new();
    t.symlink("a", "../..")
        .dir("d/")
        .symlink("d/b", "../a/../..")
        .file("a/x", b"inside")
        .file("d/b/etc/passwd", b"inside");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    assert_eq!(fs::read(sb.root().join("x")).unwrap(), b"inside");
    assert_eq!(fs::read(sb.root().join("etc/passwd")).unwrap(), b"inside");
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    require_root!();
    let mut t = Tar::new();
    t.hardlink("p", "/etc/passwd");
    let (sb, res) = apply_confined(&t.finish());
    assert!(res.is_err(), "no /etc/passwd inside the root to link to");
    assert!(!sb.root().join("p").exists());

    let mut t = Tar::new();
    t.hardlink("p", "../etc/passwd");
    let (_sb, res) = apply_confined(&t.finish());
    assert_eq!(res.unwrap_err().kind(), ErrorKind::InvalidArgument);

    // Through a symlink created by the same tar: still resolved inside the root.
    let mut t = Tar::new();
    t.symlink("up", "../../..").hardlink("p", "up/etc/passwd");
    let (_sb, res) = apply_confined(&t.finish());
    assert!(res.is_err());

    // A hard link to a symlink links the symlink itself, which stays a symlink.
    let mut t = Tar::new();
    t.symlink("s", "/etc/passwd").hardlink("p", "s").file("p2", b"");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    assert!(fs::symlink_metadata(sb.root().join("p"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn whiteouts_cannot_escape() {
    require_root!();
    let mut t = Tar::new();
    t.file("../.wh.x", b"");
    let (_sb, res) = apply_confined(&t.finish());
    assert!(res.is_err());

    let mut t = Tar::new();
    t.file(".wh..", b"");
    let (_sb, res) = apply_confined(&t.finish());
    assert!(res.is_err());

    let mut t = Tar::new();
    t.symlink("a", "..")
        .file("a/.wh.x", b"")
        .symlink("b", "/")
        .file("b/.wh.etc", b"");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    assert!(fs::symlink_metadata(sb.root().join("x"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(fs::symlink_metadata(sb.root().join("etc"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn replacing_a_symlink_does_not_follow_it() {
    require_root!();
    let mut t = Tar::new();
    // "x" first points outside; the file entry "x" must replace the link, not write through it.
    t.symlink("x", "../x")
        .file("x", b"replaced")
        .symlink("d", "/etc")
        .dir("d/");
    let (sb, res) = apply_confined(&t.finish());
    res.unwrap();
    assert_eq!(fs::read(sb.root().join("x")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(sb.root().join("d")).unwrap().is_dir());
}

#[test]
fn truncated_tar_fails() {
    let mut t = Tar::new();
    t.file("big", &[1u8; 4096]);
    let tar = t.finish();
    let sb = Sandbox::new();
    let err = apply_layer(&sb.root(), &tar[..700]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let _ = std::io::stderr().flush();
}
