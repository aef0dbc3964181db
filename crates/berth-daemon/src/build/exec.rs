//! The daemon as the builder's [`Executor`]. Runs on the build's blocking thread; async daemon
//! calls go through the runtime handle.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_api::JsonMessage;
use berth_build::builder::{BaseImage, Commit, Executor, ImageConfig, RunSpec};
use berth_build::Error as BuildError;
use tokio::sync::mpsc;

use crate::container::Output;
use crate::container::WaitCondition;
use crate::distribution::PullRequest;
use crate::Daemon;

pub(super) struct DaemonExecutor {
    pub daemon: Arc<Daemon>,
    pub rt: tokio::runtime::Handle,
    pub tx: mpsc::Sender<JsonMessage>,
    pub quiet: bool,
    pub auths: std::collections::BTreeMap<String, berth_registry::AuthConfig>,
    /// `SOURCE_DATE_EPOCH`: image times, and file times in new layers clamped to it.
    pub epoch: Option<i64>,
    /// The client went away: the build stops at its next step.
    pub gone: bool,
    /// `--cache-from`: the source images as named.
    pub cache_from: Vec<String>,
    /// The sources this stage may still use (all of them at a stage's start; the one that
    /// answered once a step was restored from it).
    pub sources: Vec<String>,
}

/// Sets every mtime (and atime) newer than `t` in the tree `dir` to `t`, never following
/// symlinks, so a step's layer is the same bytes whenever it is built.
fn clamp_times(dir: &Path, t: i64) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
    let mut stack = vec![dir.to_path_buf()];
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: t,
            tv_nsec: 0,
        },
        last_modification: Timespec {
            tv_sec: t,
            tv_nsec: 0,
        },
    };
    let mut all = Vec::new();
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            }
            all.push(e.path());
        }
    }
    // Children before their directories (setting a child's time does not touch the parent's,
    // but keep the order obvious).
    all.push(dir.to_path_buf());
    for p in all.iter().rev() {
        let md = std::fs::symlink_metadata(p)?;
        use std::os::unix::fs::MetadataExt;
        if md.mtime() > t || md.atime() > t {
            rustix::fs::utimensat(CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW)?;
        }
    }
    Ok(())
}

fn conv(e: crate::Error) -> BuildError {
    match e.kind() {
        berth_types::ErrorKind::NotFound => BuildError::NotFound(e.to_string()),
        berth_types::ErrorKind::InvalidArgument => BuildError::Invalid(e.to_string()),
        _ => BuildError::Executor(e.to_string()),
    }
}

fn conv_image(e: berth_image::Error) -> BuildError {
    conv(crate::Error::from(e))
}

/// Between berth-image's config and the builder's (same Go field names).
fn to_build(c: &berth_image::config::ContainerConfig) -> ImageConfig {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn to_image(c: &ImageConfig) -> berth_image::config::ContainerConfig {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Wraps a reader in the decompressor its magic bytes call for.
pub(super) fn decompress<'a>(r: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, BuildError> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BuildError::Io(format!("reading the build context: {e}"))),
        }
    }
    let head = std::io::Cursor::new(magic[..n].to_vec()).chain(r);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(head)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(head)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Box::new(xz2::read::XzDecoder::new_multi_decoder(head)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            zstd::stream::read::Decoder::new(head).map_err(|e| BuildError::Io(format!("zstd: {e}")))?,
        ),
        _ => Box::new(head),
    })
}

/// `Wed, 21 Oct 2015 07:28:00 GMT` → unix seconds.
fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

impl DaemonExecutor {
    fn send(&mut self, m: JsonMessage) {
        if self.tx.blocking_send(m).is_err() {
            self.gone = true;
        }
    }

    fn check_gone(&self) -> Result<(), BuildError> {
        if self.gone {
            return Err(BuildError::Executor(
                "build cancelled: the client went away".into(),
            ));
        }
        Ok(())
    }

    fn resolve(&self, name: &str) -> Result<BaseImage, BuildError> {
        let images = &self.daemon.images;
        let img = images.resolve(name).map_err(conv_image)?;
        let cfg = images.config_file(&img.id).map_err(conv_image)?;
        Ok(BaseImage {
            layers: images.layer_count(&img.id).map_err(conv_image)?,
            id: img.id,
            config: to_build(&cfg.config),
        })
    }
}

impl Executor for DaemonExecutor {
    fn stream(&mut self, text: &str) {
        if !self.quiet {
            self.send(JsonMessage::stream(text));
        }
    }

    fn image(&mut self, name: &str, pull: bool) -> Result<BaseImage, BuildError> {
        if !pull {
            match self.resolve(name) {
                Ok(b) => return Ok(b),
                Err(BuildError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            if let Ok(Some(_)) = self.daemon.images.install_builtin(name) {
                return self.resolve(name);
            }
        }
        let req = PullRequest {
            image: name.to_string(),
            tag: String::new(),
            all_tags: false,
            platform: String::new(),
            auth: berth_registry::auth_for_domain(
                &self.auths,
                berth_types::Reference::parse(name)
                    .map(|r| r.domain().to_string())
                    .unwrap_or_default()
                    .as_str(),
            ),
        };
        let daemon = self.daemon.clone();
        let mut rx = self.rt.block_on(daemon.pull(req)).map_err(conv)?;
        while let Some(m) = self.rt.block_on(rx.recv()) {
            if let Some(e) = m.error {
                return Err(BuildError::NotFound(e));
            }
        }
        self.resolve(name)
    }

    fn find_cache(
        &mut self,
        parent: Option<&str>,
        probe: &ImageConfig,
        config: &ImageConfig,
    ) -> Result<Option<String>, BuildError> {
        let images = &self.daemon.images;
        let mut local = None;
        for kid in images.children(parent.unwrap_or("")).map_err(conv_image)? {
            let Ok(cf) = images.config_file(&kid) else {
                continue;
            };
            let Some(cc) = &cf.container_config else { continue };
            if to_build(cc) == *probe && to_build(&cf.config) == *config {
                local = Some(kid);
                break;
            }
        }
        if self.cache_from.is_empty() {
            return Ok(local);
        }
        // With --cache-from, as moby's ImageCache: a local hit counts only when it is an
        // ancestor of a source; else the sources' histories answer.
        if let Some(hit) = local {
            for s in &self.sources {
                if images.is_ancestor(s, &hit).map_err(conv_image)? {
                    return Ok(Some(hit));
                }
            }
        }
        let created_by = probe.cmd.clone().unwrap_or_default().join(" ");
        let found = images
            .cache_from_lookup(parent, &self.sources, &created_by, &to_image(probe))
            .map_err(conv_image)?;
        Ok(found.map(|(source, hit)| match hit {
            berth_image::CacheFromHit::Source(id) => id,
            berth_image::CacheFromHit::Restored(id) => {
                // moby keeps to the source that answered, for safety.
                self.sources = vec![source];
                id
            }
        }))
    }

    fn reset_cache(&mut self) {
        self.sources.clear();
        for name in &self.cache_from {
            match self.daemon.images.resolve(name) {
                Ok(img) => self.sources.push(img.id),
                // dockerd logs and skips a source it cannot find.
                Err(e) => {
                    eprintln!("berthd: build: could not look up {name} for cache resolution, skipping: {e}")
                }
            }
        }
    }

    fn create(&mut self, image: &str, spec: &RunSpec) -> Result<String, BuildError> {
        self.check_gone()?;
        let labels = spec.config.labels.clone().map(|l| l.into_iter().collect());
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // COPY/WORKDIR containers are never started; they still need a command to exist.
            cmd: Some(if spec.cmd.is_empty() {
                vec!["/bin/sh".to_string(), "-c".to_string(), "#(nop) ".to_string()]
            } else {
                spec.cmd.clone()
            }),
            entrypoint: Some(Vec::new()),
            env: Some(spec.env.clone()),
            user: Some(spec.user.clone()),
            working_dir: Some(spec.working_dir.clone()),
            labels,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(match spec.network.as_str() {
                    "" => "default".to_string(),
                    n => n.to_string(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let daemon = self.daemon.clone();
        let (id, _) = self
            .rt
            .block_on(daemon.create(crate::container::CreateOptions { name: None, body }))
            .map_err(conv)?;
        Ok(id)
    }

    fn run(&mut self, container: &str) -> Result<i64, BuildError> {
        let entry = self.daemon.find(container).map_err(conv)?;
        let mut rx = entry.output.subscribe();
        let wait = self
            .daemon
            .wait(container, WaitCondition::NextExit)
            .map_err(conv)?;
        let daemon = self.daemon.clone();
        self.rt.block_on(daemon.start(container)).map_err(conv)?;
        while let Some(o) = self.rt.block_on(rx.recv()) {
            match o {
                Output::Stdout(b) => self.stream(&String::from_utf8_lossy(&b)),
                Output::Stderr(b) => {
                    let text = format!("\u{1b}[91m{}\u{1b}[0m", String::from_utf8_lossy(&b));
                    self.stream(&text);
                }
                Output::Exit => break,
            }
        }
        drop(rx);
        self.rt.block_on(wait).map_err(conv)
    }

    fn fetch(&mut self, url: &str) -> Result<(Vec<u8>, Option<i64>), BuildError> {
        let daemon = self.daemon.clone();
        let u = url.to_string();
        self.rt.block_on(async move {
            let (_, lm, mut body) = daemon
                .registry
                .fetch_url(&u)
                .await
                .map_err(|e| BuildError::Executor(e.to_string()))?;
            let mut out = Vec::new();
            while let Some(chunk) = body.next_chunk().await {
                let c = chunk.map_err(|e| BuildError::Executor(e.to_string()))?;
                out.extend_from_slice(&c);
            }
            Ok((out, lm.as_deref().and_then(parse_http_date)))
        })
    }

    fn with_rootfs(
        &mut self,
        container: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let entry = self.daemon.find(container).map_err(conv)?;
        let _op = self.rt.block_on(entry.op.lock());
        let merged = self.daemon.bundle(&entry.id).join("rootfs");
        let mounts = self.daemon.images.rootfs_mounts(&entry.id).map_err(conv_image)?;
        std::fs::create_dir_all(&merged)
            .map_err(|e| BuildError::Io(format!("cannot create {}: {e}", merged.display())))?;
        berth_sys::mount::mount_all(&mounts, &merged)
            .map_err(|e| BuildError::Executor(format!("mounting the step's root: {e}")))?;
        let r = f(&merged);
        if let Err(e) = berth_sys::mount::unmount(&merged) {
            eprintln!("berthd: build: unmount {}: {e}", merged.display());
        }
        r
    }

    fn commit(&mut self, step: Commit<'_>) -> Result<String, BuildError> {
        self.check_gone()?;
        if let (Some(t), Some(cid)) = (self.epoch, step.container) {
            let upper = self.daemon.images.rootfs_dir(cid).map_err(conv_image)?.join("fs");
            clamp_times(&upper, t).map_err(|e| BuildError::Io(format!("clamping file times: {e}")))?;
        }
        let created = self
            .epoch
            .map(|t| berth_types::time::rfc3339_nano(t.max(1) * 1_000_000_000))
            .unwrap_or_default();
        let id = self
            .daemon
            .images
            .build_commit(berth_image::BuildCommit {
                container: step.container,
                layer: step.layer,
                parent: step.parent,
                config: to_image(step.config),
                probe: to_image(step.probe),
                created_by: step.created_by,
                created,
            })
            .map_err(conv_image)?;
        berth_sys::failpoint::hit("build.step.committed");
        Ok(id)
    }

    fn remove(&mut self, container: &str) -> Result<(), BuildError> {
        let daemon = self.daemon.clone();
        self.rt
            .block_on(daemon.remove(container, true, true))
            .map_err(conv)
    }

    fn tag(&mut self, image: &str, tag: &str) -> Result<(), BuildError> {
        self.daemon.images.tag(image, tag).map_err(conv_image)?;
        let mut a = std::collections::BTreeMap::new();
        let name = berth_types::Reference::parse(tag)
            .map(|r| r.familiar())
            .unwrap_or_else(|_| tag.to_string());
        a.insert("name".to_string(), name);
        self.daemon.events.emit("image", "tag", image, a);
        Ok(())
    }

    fn failpoint(&mut self, name: &'static str) {
        // Placed by name, so the declared-and-placed check finds each point in the source.
        if name == "build.run.created" {
            berth_sys::failpoint::hit("build.run.created");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_to_unix_seconds() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(parse_http_date("garbage"), None);
    }
}
