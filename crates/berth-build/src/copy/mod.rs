//! COPY, ADD and WORKDIR: files into the image.
//!
//! Sources are resolved in the context (every path cleaned and kept inside it: `..` cannot
//! climb out, and symlinks are followed only while they stay inside), in another stage or image
//! (`--from`, through a container's root), inline (heredocs), or downloaded (ADD URLs). They
//! become a list of entries with their destination, mode and owner; the entries' content hash
//! (mtime excluded) is the step's cache key. They are then written as a tar into the step
//! container's root (confined to it, symlinks resolved inside the container) and committed, or
//! on scratch the tar is the layer.

mod entries;

use std::io::Read;
use std::path::PathBuf;

use crate::builder::{go_quote, BuilderState, Commit, RunSpec, StageState};
use crate::ignore::clean;
use crate::parser::Instruction;
use crate::shell::process_word;
use crate::Error;

pub(crate) use entries::read_in_root;
use entries::*;

/// COPY and ADD.
pub(crate) fn copy(b: &mut BuilderState<'_>, st: &mut StageState, inst: &Instruction) -> Result<(), Error> {
    let cmd = inst.cmd.to_ascii_uppercase();
    let is_add = inst.cmd == "add";
    let env = b.env_of(st);
    let esc = b.escape();
    let word = |w: &str| process_word(w, &env, esc);
    let mut args = Vec::new();
    for a in &inst.args {
        if inst.heredocs.iter().any(|h| {
            a.trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(['"', '\''])
                == h.name
                && a.starts_with("<<")
        }) {
            args.push(a.clone());
        } else {
            args.push(word(a)?);
        }
    }
    let dest_raw = args.pop().unwrap_or_default();
    let srcs = args;
    let workdir = st.config().working_dir.clone();
    let mut dest = if dest_raw.starts_with('/') {
        dest_raw.clone()
    } else {
        format!("{}/{dest_raw}", if workdir.is_empty() { "/" } else { &workdir })
    };
    let ends_slash = dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == ".";
    dest = format!(
        "/{}",
        clean(&dest).trim_start_matches('.').trim_start_matches('/')
    );
    let from = inst.flag("from").map(&word).transpose()?;
    let chown = inst.flag("chown").map(&word).transpose()?;
    let chmod = inst.flag("chmod").map(parse_chmod).transpose()?;
    if is_add && from.is_some() {
        return Err(Error::Invalid("ADD does not take --from: use COPY --from".into()));
    }

    // Sources → entries.
    let ctx = b.options().context.clone();
    let mut entries: Vec<Entry> = Vec::new();
    let mut archives: Vec<Archive> = Vec::new();
    let mut count = 0usize;
    let mut any_dir = false;
    let mut plan: Vec<(String, PathBuf)> = Vec::new();
    let mut inline: Vec<(String, Vec<u8>)> = Vec::new();
    let mut urls: Vec<String> = Vec::new();
    let mut from_paths: Vec<String> = Vec::new();
    for s in &srcs {
        if let Some(h) = inst.heredocs.iter().find(|h| {
            s.starts_with("<<")
                && s.trim_start_matches("<<")
                    .trim_start_matches('-')
                    .trim_matches(['"', '\''])
                    == h.name
        }) {
            let content = if h.expand {
                process_word(&h.content.replace('"', "\\\""), &env, esc).unwrap_or_else(|_| h.content.clone())
            } else {
                h.content.clone()
            };
            inline.push((h.name.clone(), content.into_bytes()));
            count += 1;
            continue;
        }
        if is_add && is_url(s) {
            urls.push(s.clone());
            count += 1;
            continue;
        }
        if from.is_some() {
            from_paths.push(s.clone());
            count += 1;
            continue;
        }
        let rel = clean(s);
        if rel == ".." || rel.starts_with("../") {
            return Err(Error::Invalid(format!(
                "Forbidden path outside the build context: {s} ()"
            )));
        }
        if has_glob(s) {
            let found = glob_context(&ctx, &rel);
            if found.is_empty() {
                return Err(Error::NotFound(format!(
                    "{cmd} failed: no source files were specified"
                )));
            }
            for f in found {
                let p = resolve_in(&ctx, &f, &cmd, &f)?;
                any_dir |= p.is_dir();
                plan.push((f, p));
                count += 1;
            }
        } else {
            let p = resolve_in(&ctx, &rel, &cmd, s)?;
            any_dir |= p.is_dir();
            plan.push((rel, p));
            count += 1;
        }
    }
    if count > 1 && !ends_slash {
        return Err(Error::Invalid(format!(
            "When using {cmd} with more than one source file, the destination must be a directory and end with a /"
        )));
    }

    // Does the destination exist as a directory in the image? Decided in the rootfs below for
    // a single file; a trailing slash, several sources or a directory source make it one.
    let dest_dir_known = ends_slash || count > 1;
    let _ = any_dir;

    // --from sources are read from a container of the stage or image.
    let mut from_tars: Vec<(String, Vec<u8>)> = Vec::new();
    let mut from_globs: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(f) = &from {
        let image = match b.stage_image(f) {
            Some(id) => id,
            None => {
                if f.eq_ignore_ascii_case(st.is_named().unwrap_or("\u{0}")) {
                    return Err(Error::Invalid(format!(
                        "{cmd} --from={f}: a stage cannot copy from itself"
                    )));
                }
                b.executor().image(f, false).map(|i| i.id).map_err(|e| match e {
                    Error::NotFound(_) => Error::NotFound(format!(
                        "invalid from flag value {f}: no stage or image named {f}"
                    )),
                    e => e,
                })?
            }
        };
        let cid = b.executor().create(&image, &RunSpec::default())?;
        let mut got = Ok(());
        for p in &from_paths {
            let mut path = if p.starts_with('/') {
                p.clone()
            } else {
                format!("/{p}")
            };
            // A wildcard in the last component: read its directory and match there.
            let mut pattern = None;
            if has_glob(&path) {
                let dir = parent(&path);
                if has_glob(&dir) {
                    got = Err(Error::Invalid(format!(
                        "{cmd} --from: wildcards are supported in the last path component only: {p}"
                    )));
                    break;
                }
                pattern = Some(base_name(&path));
                path = format!("{}/.", dir.trim_end_matches('/'));
            }
            let mut buf = Vec::new();
            let r = b.executor().with_rootfs(&cid, &mut |root| {
                let fs = berth_archive_shim::ContainerFs::new(root);
                fs.get(&path, &mut buf)
            });
            if let Err(e) = r {
                got = Err(match e {
                    Error::NotFound(_) => not_found(&cmd, p),
                    e => e,
                });
                break;
            }
            if let Some(pat) = pattern {
                from_globs.push((pat, buf));
            } else {
                from_tars.push((p.clone(), buf));
            }
        }
        let _ = b.executor().remove(&cid);
        got?;
    }
    let mut url_bodies: Vec<(String, Vec<u8>, Option<i64>)> = Vec::new();
    for u in &urls {
        let (bytes, lm) = b.executor().fetch(u)?;
        url_bodies.push((u.clone(), bytes, lm));
    }

    // The entries, given whether dest is a directory.
    let build_entries =
        |dest_is_dir: bool, entries: &mut Vec<Entry>, archives: &mut Vec<Archive>| -> Result<(), Error> {
            for (rel, p) in &plan {
                if p.is_dir() {
                    add_tree(p, &dest, entries, true)?;
                    continue;
                }
                let target = if dest_is_dir {
                    join(&dest, &base_name(rel))
                } else {
                    dest.clone()
                };
                if is_add {
                    let mut head = [0u8; 300];
                    let n = std::fs::File::open(p)
                        .and_then(|mut f| f.read(&mut head))
                        .map_err(|e| Error::Io(e.to_string()))?;
                    if archive_kind(&head[..n]) {
                        let bytes = std::fs::read(p).map_err(|e| Error::Io(e.to_string()))?;
                        archives.push(Archive {
                            dest: dest.clone(),
                            bytes,
                        });
                        continue;
                    }
                }
                add_tree(p, &target, entries, true)?;
            }
            for (name, bytes) in &inline {
                let target = if dest_is_dir {
                    join(&dest, name)
                } else {
                    dest.clone()
                };
                entries.push(Entry {
                    path: target,
                    body: Body::Bytes(bytes.clone()),
                    mode: 0o644,
                    mtime: 0,
                });
            }
            for (u, bytes, lm) in &url_bodies {
                let name = u
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let target = if dest_is_dir || name.is_empty() {
                    join(&dest, if name.is_empty() { "__unnamed__" } else { &name })
                } else {
                    dest.clone()
                };
                entries.push(Entry {
                    path: target,
                    body: Body::Bytes(bytes.clone()),
                    mode: 0o600,
                    mtime: lm.unwrap_or(0).max(0) as u64,
                });
            }
            for (_, tarb) in &from_tars {
                entries_from_tar(tarb, &dest, dest_is_dir, entries)?;
            }
            for (pat, tarb) in &from_globs {
                entries_from_glob_tar(tarb, pat, &dest, dest_is_dir, entries)?;
            }
            if let Some(m) = chmod {
                for e in entries.iter_mut() {
                    if !matches!(e.body, Body::Symlink(_)) {
                        e.mode = m;
                    }
                }
            }
            Ok(())
        };

    let epoch = b.options().source_date_epoch;
    let clamp = |entries: &mut Vec<Entry>| {
        if let Some(t) = epoch {
            for e in entries.iter_mut() {
                e.mtime = e.mtime.min(t.max(0) as u64);
            }
        }
    };
    // Cache probe: computed on the entries as if dest were what the Dockerfile says.
    build_entries(
        dest_dir_known || plan.iter().any(|(_, p)| p.is_dir()),
        &mut entries,
        &mut archives,
    )?;
    let kind = if count > 1 {
        "multi"
    } else if plan.iter().any(|(_, p)| p.is_dir()) {
        "dir"
    } else {
        "file"
    };
    let extra = format!(
        "{}|{}|{}",
        chown.clone().unwrap_or_default(),
        inst.flag("chmod").unwrap_or(""),
        from.clone().unwrap_or_default()
    );
    clamp(&mut entries);
    let sum = checksum(&entries, &archives, &extra)?;
    let comment = format!("#(nop) {cmd} {kind}:{sum} in {dest_raw} ");
    let mut probe = st.config().clone();
    let mut pc = b.shell_of(st);
    pc.push(comment);
    probe.cmd = Some(pc.clone());
    if b.probe_cache(st, &probe)?.is_some() {
        return Ok(());
    }
    b.layers_ok(st)?;

    let config = st.config().clone();
    let created_by = pc.join(" ");
    match st.image().map(|s| s.to_string()) {
        None => {
            // Scratch: the tar is the layer; every parent directory is new.
            let owner = chown
                .as_deref()
                .map(|c| resolve_chown(c, None))
                .transpose()?
                .unwrap_or((0, 0));
            let mut dirs = Vec::new();
            let parent_of =
                if dest_dir_known || plan.iter().any(|(_, p)| p.is_dir()) || archives.iter().any(|_| true) {
                    dest.clone()
                } else {
                    parent(&dest)
                };
            let mut acc = String::new();
            for c in parent_of.split('/').filter(|c| !c.is_empty()) {
                acc = format!("{acc}/{c}");
                dirs.push(acc.clone());
            }
            let mut buf = Vec::new();
            write_tar(&mut buf, &dirs, &entries, "/", owner, owner)?;
            if !archives.is_empty() {
                return Err(Error::Invalid(format!(
                    "{cmd}: unpacking an archive on FROM scratch needs a base directory: add it after a COPY"
                )));
            }
            let mut r = &buf[..];
            let id = b.executor().commit(Commit {
                container: None,
                layer: Some(&mut r),
                parent: None,
                config: &config,
                probe: &probe,
                created_by,
            })?;
            st.set_image(id, true);
        }
        Some(image) => {
            let cid = b.executor().create(
                &image,
                &RunSpec {
                    config: config.clone(),
                    ..Default::default()
                },
            )?;
            let res = (|| -> Result<String, Error> {
                let entries_ref = &mut entries;
                let archives_ref = &archives;
                let chown = chown.clone();
                b.executor().with_rootfs(&cid, &mut |root| {
                    let fs = berth_archive_shim::ContainerFs::new(root);
                    // A single non-directory source onto an existing directory goes inside it.
                    let single_file =
                        !dest_dir_known && !plan.iter().any(|(_, p)| p.is_dir()) && archives_ref.is_empty();
                    let dest_is_dir = !single_file || fs.is_dir(&dest);
                    if single_file && dest_is_dir {
                        entries_ref.clear();
                        let mut arch = Vec::new();
                        build_entries(true, entries_ref, &mut arch)?;
                        clamp(entries_ref);
                    }
                    let owner = chown
                        .as_deref()
                        .map(|c| resolve_chown(c, Some(root)))
                        .transpose()?
                        .unwrap_or((0, 0));
                    let target_dir = if dest_is_dir { dest.clone() } else { parent(&dest) };
                    // Missing directories down to the target, created 0755 with the owner.
                    let mut existing = target_dir.clone();
                    let mut missing = Vec::new();
                    while existing != "/" && !fs.is_dir(&existing) {
                        missing.push(existing.clone());
                        existing = parent(&existing);
                    }
                    missing.reverse();
                    let mut buf = Vec::new();
                    write_tar(&mut buf, &missing, entries_ref, &existing, owner, owner)?;
                    fs.put(&existing, &mut &buf[..])?;
                    for a in archives_ref {
                        let raw = decompress(&a.bytes)?;
                        fs.put(&a.dest, &mut &raw[..])?;
                    }
                    Ok(())
                })?;
                b.executor().commit(Commit {
                    container: Some(&cid),
                    layer: None,
                    parent: Some(&image),
                    config: &config,
                    probe: &probe,
                    created_by: created_by.clone(),
                })
            })();
            let _ = b.executor().remove(&cid);
            st.set_image(res?, true);
        }
    }
    Ok(())
}

/// WORKDIR: the directory is created when missing (a layer), else a config-only step.
pub(crate) fn workdir(b: &mut BuilderState<'_>, st: &mut StageState, dir: &str) -> Result<(), Error> {
    let comment = format!("#(nop) WORKDIR {dir}");
    let mut probe = st.config().clone();
    let mut pc = b.shell_of(st);
    pc.push(comment);
    probe.cmd = Some(pc.clone());
    if b.probe_cache(st, &probe)?.is_some() {
        return Ok(());
    }
    let config = st.config().clone();
    let created_by = pc.join(" ");
    let Some(image) = st.image().map(|s| s.to_string()) else {
        let mut dirs = Vec::new();
        let mut acc = String::new();
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            acc = format!("{acc}/{c}");
            dirs.push(acc.clone());
        }
        let mut buf = Vec::new();
        write_tar(&mut buf, &dirs, &[], "/", (0, 0), (0, 0))?;
        let mut r = &buf[..];
        let id = b.executor().commit(Commit {
            container: None,
            layer: (!dirs.is_empty()).then_some(&mut r as &mut dyn Read),
            parent: None,
            config: &config,
            probe: &probe,
            created_by,
        })?;
        st.set_image(id, !dirs.is_empty());
        return Ok(());
    };
    // As docker's WORKDIR: through a container of the image (` ---> Running in …`).
    let cid = b.step_container(&image, st, pc.clone())?;
    let mut made = false;
    let res = (|| -> Result<String, Error> {
        b.executor().with_rootfs(&cid, &mut |root| {
            let fs = berth_archive_shim::ContainerFs::new(root);
            let mut existing = dir.to_string();
            let mut missing = Vec::new();
            while existing != "/" && !fs.is_dir(&existing) {
                missing.push(existing.clone());
                existing = parent(&existing);
            }
            if missing.is_empty() {
                return Ok(());
            }
            missing.reverse();
            let mut buf = Vec::new();
            write_tar(&mut buf, &missing, &[], &existing, (0, 0), (0, 0))?;
            fs.put(&existing, &mut &buf[..])?;
            made = true;
            Ok(())
        })?;
        b.executor().commit(Commit {
            container: Some(&cid),
            layer: None,
            parent: Some(&image),
            config: &config,
            probe: &probe,
            created_by,
        })
    })();
    b.finish_container(&cid, res.is_ok());
    st.set_image(res?, made);
    let _ = go_quote;
    Ok(())
}

/// The container-root operations COPY needs, over `berth_archive` (confined to the root).
mod berth_archive_shim {
    use std::path::Path;

    use crate::Error;

    pub struct ContainerFs<'a> {
        root: &'a Path,
    }

    fn conv(e: berth_archive::ArchiveError) -> Error {
        match e.kind() {
            berth_types::ErrorKind::NotFound => Error::NotFound(e.to_string()),
            berth_types::ErrorKind::InvalidArgument => Error::Invalid(e.to_string()),
            _ => Error::Io(e.to_string()),
        }
    }

    impl<'a> ContainerFs<'a> {
        pub fn new(root: &'a Path) -> Self {
            ContainerFs { root }
        }

        fn fs(&self) -> berth_archive::ContainerFs<'a> {
            berth_archive::ContainerFs::new(self.root, "build")
        }

        /// Whether `path` (symlinks resolved in the root) is a directory.
        pub fn is_dir(&self, path: &str) -> bool {
            self.fs().stat(path).map(|s| s.is_dir()).unwrap_or(false)
        }

        pub fn get(&self, path: &str, w: &mut Vec<u8>) -> Result<(), Error> {
            self.fs().get(path, w).map(|_| ()).map_err(conv)
        }

        pub fn put(&self, dir: &str, r: &mut dyn std::io::Read) -> Result<(), Error> {
            self.fs()
                .put(
                    dir,
                    r,
                    berth_archive::PutOptions {
                        no_overwrite_dir_non_dir: false,
                        copy_uid_gid: true,
                    },
                )
                .map_err(conv)
        }
    }
}
