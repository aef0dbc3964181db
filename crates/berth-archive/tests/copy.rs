//! The client's end of `docker cp CONTAINER:SRC DEST` ([`copy_to`]): docker's destination rules,
//! and confinement against hostile archives (the CLI used to extract with the `tar` crate's
//! `unpack`, which resolves a hard link's target against the CLI's working directory and follows
//! symlinks the archive planted).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_archive::{copy_to, CopyError, CopySource};
use berth_types::ErrorKind;

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

/// A scratch tree: `outside/passwd` (a host file nothing may touch) and `work/`, where the
/// destinations live.
struct Scratch {
    _t: tempfile::TempDir,
    outside: PathBuf,
    work: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let t = tempfile::tempdir().unwrap();
        let (outside, work) = (t.path().join("outside"), t.path().join("work"));
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(&work).unwrap();
        fs::write(outside.join("passwd"), "root:x:0:0\n").unwrap();
        Scratch { _t: t, outside, work }
    }

    fn path(&self, rel: &str) -> String {
        self.work.join(rel).to_str().unwrap().to_string()
    }

    /// Nothing was created, linked or changed outside `work/`.
    #[track_caller]
    fn assert_outside_untouched(&self) {
        let pw = self.outside.join("passwd");
        assert_eq!(
            fs::metadata(&pw).unwrap().nlink(),
            1,
            "a hard link to the host file was made"
        );
        assert_eq!(fs::read_to_string(&pw).unwrap(), "root:x:0:0\n");
        let mut names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["passwd"],
            "something was written outside the destination"
        );
        let parent = self.work.parent().unwrap();
        assert_eq!(
            fs::read_dir(parent).unwrap().count(),
            2,
            "something was written beside work/"
        );
    }
}

fn dir_src(path: &str) -> CopySource<'_> {
    CopySource {
        path,
        is_dir: true,
        rebase_name: None,
    }
}

fn file_src(path: &str) -> CopySource<'_> {
    CopySource {
        path,
        is_dir: false,
        rebase_name: None,
    }
}

#[track_caller]
fn assert_refused(r: Result<(), CopyError>) {
    let e = r.expect_err("a hostile archive was extracted");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn hard_links_to_host_files_are_refused() {
    let s = Scratch::new();
    fs::create_dir(s.work.join("dest")).unwrap();
    let abs = s.outside.join("passwd");
    for target in [
        "etc/../../outside/passwd",
        "../../outside/passwd",
        abs.to_str().unwrap(),
    ] {
        let tar = Tar::new().dir("etc/").hardlink("etc/pw", target).finish();
        let r = copy_to(&tar[..], &dir_src("/etc"), &s.path("dest"));
        assert!(r.is_err(), "hard link to {target} was made");
        assert!(!s.work.join("dest/etc/pw").exists());
    }
    // Into a new directory (renamed) too.
    let tar = Tar::new()
        .dir("etc/")
        .hardlink("etc/pw", abs.to_str().unwrap())
        .finish();
    assert_refused(copy_to(&tar[..], &dir_src("/etc"), &s.path("new")));
    s.assert_outside_untouched();
}

#[test]
fn symlinks_in_the_archive_are_not_followed_out_of_the_destination() {
    let s = Scratch::new();
    fs::create_dir(s.work.join("dest")).unwrap();
    let out = s.outside.to_str().unwrap().to_string();
    let tar = Tar::new()
        .dir("etc/")
        .symlink("etc/abs", &out)
        .symlink("etc/up", "../../..")
        .file("etc/abs/pwned", b"x")
        .file("etc/up/outside/pwned", b"x")
        .finish();
    let _ = copy_to(&tar[..], &dir_src("/etc"), &s.path("dest"));
    s.assert_outside_untouched();
    // The symlinks themselves are copied as symlinks (docker does too), inside the destination.
    assert!(fs::symlink_metadata(s.work.join("dest/etc/abs"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A symlink replacing the destination's top and a file through it: refused or inside.
    let tar = Tar::new().symlink("etc", &out).file("etc/pwned", b"x").finish();
    let _ = copy_to(&tar[..], &dir_src("/etc"), &s.path("new"));
    s.assert_outside_untouched();
}

#[test]
fn dot_dot_and_absolute_names_stay_inside() {
    let s = Scratch::new();
    fs::create_dir(s.work.join("dest")).unwrap();
    let tar = Tar::new().dir("etc/").file("etc/../../escape", b"x").finish();
    assert_refused(copy_to(&tar[..], &dir_src("/etc"), &s.path("dest")));
    // An absolute name is cleaned into the root: `/etc/abs` is `dest/etc/abs`.
    let tar = Tar::new().dir("/etc/").file("/etc/abs", b"x").finish();
    copy_to(&tar[..], &dir_src("/etc"), &s.path("dest")).unwrap();
    assert_eq!(fs::read(s.work.join("dest/etc/abs")).unwrap(), b"x");
    // Names outside the copied path are refused rather than written next to it.
    let abs = format!("{}/stray", s.outside.display());
    let tar = Tar::new().file("hostname", b"h\n").file(&abs, b"x").finish();
    assert_refused(copy_to(&tar[..], &file_src("/etc/hostname"), &s.path("h2")));
    let tar = Tar::new().file("hostname", b"h\n").file("evil", b"x").finish();
    assert_refused(copy_to(&tar[..], &file_src("/etc/hostname"), &s.path("h3")));
    assert!(!s.work.join("evil").exists());
    // A file source carries nothing below it.
    let tar = Tar::new()
        .file("hostname", b"h\n")
        .file("hostname/x", b"x")
        .finish();
    assert_refused(copy_to(&tar[..], &file_src("/etc/hostname"), &s.path("h4")));
    s.assert_outside_untouched();
}

#[test]
fn a_file_becomes_replaces_or_lands_in_the_destination() {
    let s = Scratch::new();
    let tar = || Tar::new().file("hostname", b"web\n").finish();
    // Missing: the file takes the destination's name.
    copy_to(&tar()[..], &file_src("/etc/hostname"), &s.path("h")).unwrap();
    assert_eq!(fs::read(s.work.join("h")).unwrap(), b"web\n");
    // Owned by whoever copies, not by the archive's uid 1000 (docker's NoLchown).
    assert_eq!(
        fs::metadata(s.work.join("h")).unwrap().uid(),
        rustix::process::geteuid().as_raw()
    );
    // Existing file: replaced.
    fs::write(s.work.join("old"), "old").unwrap();
    copy_to(&tar()[..], &file_src("/etc/hostname"), &s.path("old")).unwrap();
    assert_eq!(fs::read(s.work.join("old")).unwrap(), b"web\n");
    // Existing directory: the file goes in, under its own name.
    fs::create_dir(s.work.join("d")).unwrap();
    copy_to(&tar()[..], &file_src("/etc/hostname"), &s.path("d")).unwrap();
    assert_eq!(fs::read(s.work.join("d/hostname")).unwrap(), b"web\n");
    // A symlink to a directory is followed (the user's own path).
    std::os::unix::fs::symlink("d", s.work.join("dlink")).unwrap();
    let tar2 = Tar::new().file("hosts", b"127.0.0.1\n").finish();
    copy_to(&tar2[..], &file_src("/etc/hosts"), &s.path("dlink")).unwrap();
    assert_eq!(fs::read(s.work.join("d/hosts")).unwrap(), b"127.0.0.1\n");
    // A missing directory asserted by a trailing slash: docker's error.
    let e = copy_to(&tar()[..], &file_src("/etc/hostname"), &s.path("nodir/")).unwrap_err();
    assert_eq!(e.to_string(), "no such directory");
    // -L: the archive is named after the link's target, the copy after the link.
    let tar3 = Tar::new().file("real", b"r").finish();
    let src = CopySource {
        path: "/data/real",
        is_dir: false,
        rebase_name: Some("link"),
    };
    copy_to(&tar3[..], &src, &s.path("d")).unwrap();
    assert_eq!(fs::read(s.work.join("d/link")).unwrap(), b"r");
    s.assert_outside_untouched();
}

#[test]
fn a_directory_becomes_or_lands_in_the_destination() {
    let s = Scratch::new();
    let tar = || {
        Tar::new()
            .dir("etc/")
            .file("etc/a", b"a")
            .dir("etc/sub/")
            .file("etc/sub/b", b"b")
            .hardlink("etc/sub/a-again", "etc/a")
            .finish()
    };
    // Missing: the directory is created under the destination's name.
    copy_to(&tar()[..], &dir_src("/etc"), &s.path("new")).unwrap();
    assert_eq!(fs::read(s.work.join("new/sub/b")).unwrap(), b"b");
    let (a, again) = (s.work.join("new/a"), s.work.join("new/sub/a-again"));
    assert_eq!(
        fs::metadata(&a).unwrap().ino(),
        fs::metadata(&again).unwrap().ino()
    );
    assert_eq!(fs::metadata(s.work.join("new")).unwrap().mode() & 0o777, 0o755);
    // Existing directory: copied into it.
    fs::create_dir(s.work.join("d")).unwrap();
    copy_to(&tar()[..], &dir_src("/etc"), &s.path("d")).unwrap();
    assert_eq!(fs::read(s.work.join("d/etc/a")).unwrap(), b"a");
    // `dir/.`: its contents.
    let dot = Tar::new().dir("./").file("./a", b"a").finish();
    fs::create_dir(s.work.join("c")).unwrap();
    copy_to(&dot[..], &dir_src("/etc/."), &s.path("c")).unwrap();
    assert_eq!(fs::read(s.work.join("c/a")).unwrap(), b"a");
    // Onto an existing file: docker's error, and the file is left alone.
    fs::write(s.work.join("f"), "keep").unwrap();
    let e = copy_to(&tar()[..], &dir_src("/etc"), &s.path("f")).unwrap_err();
    assert_eq!(e.to_string(), "cannot copy directory");
    assert_eq!(fs::read(s.work.join("f")).unwrap(), b"keep");
    s.assert_outside_untouched();
}

#[test]
fn missing_parent_is_an_error_not_created() {
    let s = Scratch::new();
    let tar = Tar::new().file("hostname", b"h").finish();
    let dest = s.path("no/such/h");
    assert!(copy_to(&tar[..], &file_src("/etc/hostname"), &dest).is_err());
    assert!(!Path::new(&s.path("no")).exists());
}
