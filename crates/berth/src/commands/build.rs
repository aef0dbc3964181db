//! `berth build` / `berth image build`: sends the context as a tar to `POST /build` (with
//! `.dockerignore` applied here, as docker's CLI does) and prints the classic builder's stream.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_archive::dockerignore::Matcher;

use crate::client::{Body, Query};

use super::{status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth build [OPTIONS] PATH | URL | -",
    after_help = "Examples:\n  berth build -t app:1 .\n  berth build -f ci/Dockerfile -t app:ci .\n  berth build - < Dockerfile"
)]
pub struct Args {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    force_rm: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    network: String,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Build context: a directory, or "-" for a tar or a Dockerfile on stdin
    context: String,
}

/// Appends a file or tree to the context tar.
fn add_tree(
    tb: &mut tar::Builder<&mut Vec<u8>>,
    root: &Path,
    rel: &str,
    ignore: &Matcher,
) -> anyhow::Result<()> {
    let full = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let md = std::fs::symlink_metadata(&full)?;
    if !rel.is_empty() {
        let excluded = ignore.excluded(rel);
        if excluded && !(md.is_dir() && ignore.may_reinclude_below(rel)) {
            return Ok(());
        }
        if !excluded {
            tb.append_path_with_name(&full, rel)
                .map_err(|e| anyhow::anyhow!("error checking context: {rel}: {e}"))?;
        }
    }
    if md.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&full)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() { n } else { format!("{rel}/{n}") };
            add_tree(tb, root, &r, ignore)?;
        }
    }
    Ok(())
}

fn random_suffix() -> String {
    let mut b = [0u8; 10];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn append_bytes(tb: &mut tar::Builder<&mut Vec<u8>>, name: &str, data: &[u8]) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    tb.append_data(&mut h, name, data)?;
    Ok(())
}

/// The context tar and the `dockerfile` parameter.
fn make_context(a: &Args) -> anyhow::Result<(Vec<u8>, String)> {
    let mut out = Vec::new();
    if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            anyhow::bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let mut data = Vec::new();
        std::io::stdin().lock().read_to_end(&mut data)?;
        let compressed = matches!(
            data.as_slice(),
            [0x1f, 0x8b, ..]
                | [b'B', b'Z', b'h', ..]
                | [0xfd, b'7', b'z', b'X', b'Z', ..]
                | [0x28, 0xb5, 0x2f, 0xfd, ..]
        );
        let is_tar = compressed || (data.len() > 262 && &data[257..262] == b"ustar");
        if is_tar {
            return Ok((data, a.file.clone().unwrap_or_default()));
        }
        // A Dockerfile on stdin, with an empty context.
        {
            let mut tb = tar::Builder::new(&mut out);
            append_bytes(&mut tb, "Dockerfile", &data)?;
            tb.finish()?;
        }
        return Ok((out, "Dockerfile".into()));
    }
    let root = PathBuf::from(&a.context);
    if !root.is_dir() {
        anyhow::bail!("unable to prepare context: path {:?} not found", a.context);
    }
    let ignore_text = std::fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
    let mut ignore = Matcher::parse(&ignore_text);
    // The Dockerfile: inside the context (sent by its relative path), outside or stdin (added
    // under a random name, as docker's CLI does).
    let mut extra: Option<(String, Vec<u8>)> = None;
    let dockerfile = match a.file.as_deref() {
        None => "Dockerfile".to_string(),
        Some("-") => {
            let mut data = Vec::new();
            std::io::stdin().lock().read_to_end(&mut data)?;
            let name = format!(".dockerfile.{}", random_suffix());
            extra = Some((name.clone(), data));
            name
        }
        Some(f) => {
            let p = Path::new(f);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir()?.join(p)
            };
            let abs = abs
                .canonicalize()
                .map_err(|_| anyhow::anyhow!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {f}: no such file or directory"))?;
            let croot = root.canonicalize()?;
            match abs.strip_prefix(&croot) {
                Ok(rel) => rel.to_string_lossy().into_owned(),
                Err(_) => {
                    let name = format!(".dockerfile.{}", random_suffix());
                    extra = Some((name.clone(), std::fs::read(&abs)?));
                    name
                }
            }
        }
    };
    ignore.keep(&dockerfile);
    ignore.keep(".dockerignore");
    {
        let mut tb = tar::Builder::new(&mut out);
        tb.follow_symlinks(false);
        add_tree(&mut tb, &root, "", &ignore)?;
        if let Some((name, data)) = &extra {
            append_bytes(&mut tb, name, data)?;
        }
        tb.finish()?;
    }
    Ok((out, dockerfile))
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut build_args: BTreeMap<String, Option<String>> = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                build_args.insert(k.to_string(), Some(v.to_string()));
            }
            Some(_) => {
                return Err(status(
                    125,
                    format!("invalid argument \"{b}\" for \"--build-arg\" flag: invalid key-value pair: {b}"),
                ))
            }
            None => {
                build_args.insert(b.clone(), std::env::var(b).ok());
            }
        }
    }
    // As buildx does: SOURCE_DATE_EPOCH from the environment is a build arg.
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        build_args.entry("SOURCE_DATE_EPOCH".into()).or_insert(Some(v));
    }
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    // A URL (a tar, a Dockerfile or a git repository) is the daemon's to fetch, as docker's
    // CLI sends it: `remote=URL` and an empty body.
    let remote = ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| a.context.starts_with(p));
    let (tar, dockerfile) = if remote {
        (Vec::new(), a.file.clone().unwrap_or_default())
    } else {
        make_context(&a)?
    };
    let mut q = Query::new();
    if remote {
        q.add("remote", a.context.clone());
    }
    for t in &a.tags {
        q.add("t", t.clone());
    }
    if !dockerfile.is_empty() {
        q.add("dockerfile", dockerfile);
    }
    if !build_args.is_empty() {
        q.add("buildargs", serde_json::to_string(&build_args)?);
    }
    if !labels.is_empty() {
        q.add("labels", serde_json::to_string(&labels)?);
    }
    q.flag("nocache", a.no_cache)
        .flag("q", a.quiet)
        .flag("forcerm", a.force_rm)
        .flag("pull", a.pull);
    q.add("rm", if a.rm { "1" } else { "0" });
    if let Some(t) = &a.target {
        q.add("target", t.clone());
    }
    if a.network != "default" {
        q.add("networkmode", a.network.clone());
    }
    if let Some(p) = &a.platform {
        q.add("platform", p.clone());
    }
    if !a.cache_from.is_empty() {
        q.add("cachefrom", serde_json::to_string(&a.cache_from)?);
    }
    let path = format!("/build{}", q.encode());
    let mut body = &tar[..];
    let registry_config = crate::auth::registry_config_header()?;
    let mut resp = ctx.client.call_with(
        "POST",
        &path,
        Body::Stream(&mut body, "application/x-tar"),
        &[("X-Registry-Config", &registry_config)],
    )?;
    let mut stdout = std::io::stdout().lock();
    let mut image_id = String::new();
    let rd = resp.reader();
    let mut line = Vec::new();
    loop {
        line.clear();
        if rd.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(text)?;
        if let Some(e) = v.get("errorDetail") {
            let msg = e
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            let code = e
                .get("code")
                .and_then(|c| c.as_i64())
                .filter(|c| *c != 0)
                .unwrap_or(1);
            stdout.flush()?;
            return Err(status(code as i32, msg));
        }
        if let Some(id) = v.pointer("/aux/ID").and_then(|s| s.as_str()) {
            image_id = id.to_string();
        }
        if let Some(s) = v.get("stream").and_then(|s| s.as_str()) {
            if a.quiet && s.trim().starts_with("sha256:") {
                image_id = s.trim().to_string();
            }
            stdout.write_all(s.as_bytes())?;
            stdout.flush()?;
        }
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &image_id).map_err(|e| anyhow::anyhow!("failed to write image ID to file: {e}"))?;
    }
    Ok(0)
}
