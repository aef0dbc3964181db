//! `POST /build`: the daemon's side of Dockerfile builds. The context tar is unpacked (confined)
//! into a private directory under `<data-root>/build/`, the builder (`berth-build`) runs on a
//! blocking thread, and this module is its [`Executor`]: containers for RUN/COPY steps are
//! ordinary containers (created, started, waited for, removed through the same paths as the
//! API's), layers are committed through `berth-image`, and the classic builder's messages go
//! out as a JSON-message stream.

mod exec;
pub mod git;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::JsonMessage;
use berth_build::BuildOptions;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::Daemon;

/// A build request: `POST /build`'s query parameters and body.
pub struct BuildRequest {
    /// The context: a tar (maybe compressed), or a plain Dockerfile.
    pub context: Box<dyn Read + Send>,
    /// `dockerfile`: path of the Dockerfile in the context (default `Dockerfile`).
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub no_cache: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub pull: bool,
    pub quiet: bool,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub network: String,
    /// `X-Registry-Config`: credentials by registry, for FROM's pulls.
    pub auths: BTreeMap<String, berth_registry::AuthConfig>,
    /// `cachefrom`: images whose history may answer the cache (moby's ImageCache).
    pub cache_from: Vec<String>,
}

pub use git::is_git_url;

impl Daemon {
    /// `remote=URL`: the build context downloaded from an http(s) URL (a tar, plain or
    /// compressed, or a bare Dockerfile, streamed into the build as it arrives), or a git
    /// repository fetched and checked out ([`git`]).
    pub async fn remote_build_context(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        if is_git_url(url) {
            let base = self.config.data_root.join("build");
            berth_sys::fs::create_private_dir(&base)
                .map_err(|e| Error::invalid(format!("unable to prepare context: {e}")))?;
            let url = url.to_string();
            let tar = tokio::task::spawn_blocking(move || git::context_tar(&base, &url))
                .await
                .map_err(|e| Error::invalid(format!("unable to prepare context: {e}")))?
                .map_err(|e| {
                    Error::invalid(format!(
                        "unable to prepare context: unable to 'git clone' to temporary context directory: {e}"
                    ))
                })?;
            return Ok(Box::new(tar));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::invalid(format!(
                "unable to prepare context: remote context {url:?} is neither an http(s) URL nor a git repository"
            )));
        }
        self.url_reader(url).await.map_err(|e| {
            Error::invalid(format!(
                "unable to prepare context: unable to download remote context {url}: {e}"
            ))
        })
    }
}

/// Removes the unpacked context when the build ends.
struct ContextDir(PathBuf);

impl Drop for ContextDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// At start: the unpacked contexts of builds a crash interrupted (nothing refers to them).
pub(crate) fn sweep(data_root: &std::path::Path) {
    let dir = data_root.join("build");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            eprintln!(
                "berthd: reconcile: removing the context of an interrupted build {}",
                e.path().display()
            );
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Daemon {
    /// Starts a build; its messages (and the final result or error) come through the receiver.
    pub async fn build(self: &Arc<Self>, req: BuildRequest) -> Result<mpsc::Receiver<JsonMessage>> {
        for t in &req.tags {
            berth_types::Reference::parse(t)
                .map_err(|e| Error::invalid(format!("invalid tag {t:?}: {e}")))?;
        }
        let (tx, mut rx) = mpsc::channel(64);
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        let daemon = self.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let quiet = req.quiet;
            let out = tx.clone();
            match daemon.run_build(req, tx, rt) {
                Ok(id) => {
                    if quiet {
                        let _ = out.blocking_send(JsonMessage::stream(format!("{id}\n")));
                    }
                }
                Err(e) => {
                    let msg = JsonMessage::error(e.to_string(), Some(e.code()));
                    let _ = failed_tx.send(e);
                    let _ = out.blocking_send(msg);
                }
            }
        });
        // As dockerd's build route: an error before anything was written (a Dockerfile that
        // does not parse, a context without one) is the request's error, with its status;
        // after the first message it ends the stream.
        let first = rx.recv().await;
        if first.as_ref().is_some_and(|m| m.error.is_some()) {
            if let Ok(e) = failed_rx.await {
                return Err(match e.kind() {
                    berth_types::ErrorKind::InvalidArgument => Error::invalid(e.to_string()),
                    berth_types::ErrorKind::NotFound => Error::Missing(e.to_string()),
                    _ => Error::Internal(e.to_string()),
                });
            }
        }
        let (relay, out) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut next = first;
            while let Some(m) = next {
                if relay.send(m).await.is_err() {
                    return;
                }
                next = rx.recv().await;
            }
        });
        Ok(out)
    }

    fn run_build(
        self: &Arc<Self>,
        req: BuildRequest,
        tx: mpsc::Sender<JsonMessage>,
        rt: tokio::runtime::Handle,
    ) -> std::result::Result<String, berth_build::Error> {
        let io = |what: &str, e: std::io::Error| berth_build::Error::Io(format!("{what}: {e}"));
        let base = self.config.data_root.join("build");
        berth_sys::fs::create_private_dir(&base).map_err(|e| io("build dir", e))?;
        let dir = base.join(crate::daemon::random_id());
        berth_sys::fs::create_private_dir(&dir).map_err(|e| io("build dir", e))?;
        let ctx = ContextDir(dir);
        let context = ctx.0.join("context");
        std::fs::create_dir(&context).map_err(|e| io("build context", e))?;

        // A tar (plain or compressed) or a bare Dockerfile.
        let mut src = req.context;
        let mut head = Vec::new();
        (&mut src)
            .take(512)
            .read_to_end(&mut head)
            .map_err(|e| io("reading the build context", e))?;
        let compressed = matches!(
            head.as_slice(),
            [0x1f, 0x8b, ..]
                | [b'B', b'Z', b'h', ..]
                | [0xfd, b'7', b'z', b'X', b'Z', ..]
                | [0x28, 0xb5, 0x2f, 0xfd, ..]
        );
        let is_tar = compressed || (head.len() >= 262 && &head[257..262] == b"ustar") || head.is_empty();
        let mut whole = std::io::Cursor::new(head).chain(src);
        let dockerfile_text = if is_tar {
            let tar = exec::decompress(&mut whole)?;
            // docker's CLI sends a context without the end-of-archive blocks when it adds a
            // Dockerfile from outside the context: supply them (extra zero blocks are ignored).
            let tar = tar.chain(std::io::repeat(0).take(1024));
            berth_archive::extract_tar(&context, tar)
                .map_err(|e| berth_build::Error::Invalid(format!("invalid build context: {e}")))?;
            berth_sys::failpoint::hit("build.context.unpacked");
            let name = if req.dockerfile.is_empty() {
                "Dockerfile".to_string()
            } else {
                req.dockerfile.clone()
            };
            let path = berth_archive::open_in_root(&context, &name).or_else(|e| {
                if req.dockerfile.is_empty() {
                    berth_archive::open_in_root(&context, "dockerfile")
                } else {
                    Err(e)
                }
            });
            let mut f = path.map_err(|_| {
                berth_build::Error::NotFound(format!("Cannot locate specified Dockerfile: {name}"))
            })?;
            let mut s = String::new();
            f.read_to_string(&mut s)
                .map_err(|e| io("reading the Dockerfile", e))?;
            s
        } else {
            let mut s = String::new();
            whole
                .read_to_string(&mut s)
                .map_err(|e| io("reading the Dockerfile", e))?;
            s
        };

        let epoch = match req.build_args.get("SOURCE_DATE_EPOCH") {
            Some(Some(v)) => Some(
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| berth_build::Error::Invalid(format!("invalid SOURCE_DATE_EPOCH: {v}")))?,
            ),
            _ => None,
        };
        let opts = BuildOptions {
            dockerfile: dockerfile_text,
            context,
            tags: req.tags.clone(),
            build_args: req.build_args.clone(),
            no_cache: req.no_cache,
            rm: req.rm,
            force_rm: req.force_rm,
            pull: req.pull,
            labels: req.labels.clone(),
            target: req.target.clone(),
            network: req.network.clone(),
            source_date_epoch: epoch,
        };
        let mut ex = exec::DaemonExecutor {
            daemon: self.clone(),
            rt,
            tx: tx.clone(),
            quiet: req.quiet,
            auths: req.auths,
            epoch,
            gone: false,
            cache_from: req.cache_from,
            sources: Vec::new(),
        };
        let mut aux = Vec::new();
        let id = berth_build::build(&mut ex, &opts, &mut |id| aux.push(id.to_string()))?;
        for a in &aux {
            if !req.quiet {
                let _ = tx.blocking_send(JsonMessage {
                    aux: Some(serde_json::json!({ "ID": a })),
                    ..Default::default()
                });
            }
        }
        use berth_build::Executor as _;
        ex.stream(&format!(
            "Successfully built {}\n",
            berth_build::builder::short(&id)
        ));
        for t in &req.tags {
            ex.tag(&id, t)?;
            let r = berth_types::Reference::parse(t)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| t.clone());
            ex.stream(&format!("Successfully tagged {r}\n"));
        }
        Ok(id)
    }
}
