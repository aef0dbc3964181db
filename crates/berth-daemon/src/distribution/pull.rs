//! `docker pull`, orchestrated: berth-registry resolves the reference and streams blobs,
//! berth-image unpacks them into the stores, and this module decides the order of work and
//! speaks dockerd's progress messages.
//!
//! 1. Resolve (before the response starts: a missing tag is a plain 404, an unreachable registry
//!    a 500, as dockerd answers).
//! 2. Plan: which layers are here (`Already exists`), leased until the image is recorded.
//! 3. Download the missing layers, at most [`MAX_DOWNLOADS`] at once, each into a spool (a file
//!    in the content store's ingest directory that the unpacker reads as it grows), retrying a
//!    transient failure from where it stopped. A blob another pull is downloading is not fetched
//!    twice: the second pull reads the first one's spool.
//! 4. Unpack in order, streaming from the spools, on a blocking thread.
//! 5. Record the image, its tag, its repository digest and where its layers came from, in one
//!    transaction.
//!
//! Whatever fails, the store is left as it was (the plan undoes itself); a crash leaves orphans
//! that start-up reconciliation removes.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_api::JsonMessage;
use berth_image::spool::Spool;
use berth_meta::BlobSource;
use berth_registry::{AuthConfig, Descriptor, Platform, Resolved};
use berth_types::Reference;
use tokio::sync::{mpsc, Semaphore};

use crate::error::{blocking, Error, Result};
use crate::Daemon;

/// Docker's `max-concurrent-downloads` default.
pub const MAX_DOWNLOADS: usize = 3;
const RETRIES: u32 = 5;

/// Blobs being downloaded, by digest: a second pull of the same blob reads the same spool.
#[derive(Default)]
pub(crate) struct Downloads(Mutex<HashMap<String, Weak<Spool>>>);

/// What a pull request asks for.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// `fromImage` (a name, maybe with a tag or digest).
    pub image: String,
    /// `tag`: a tag, a digest, or empty (with `all_tags`, every tag).
    pub tag: String,
    pub all_tags: bool,
    /// `platform` (`linux/arm64/v8`); empty means this host's.
    pub platform: String,
    /// `X-Registry-Auth`, decoded.
    pub auth: AuthConfig,
}

fn short(d: &str) -> String {
    d.trim_start_matches("sha256:").chars().take(12).collect()
}

impl Daemon {
    /// Starts a pull: resolves now (errors here are the HTTP answer), then streams dockerd's
    /// progress messages while the rest happens.
    pub async fn pull(self: &Arc<Self>, req: PullRequest) -> Result<mpsc::Receiver<JsonMessage>> {
        let named = Reference::parse_named(&req.image).map_err(|e| Error::invalid(e.to_string()))?;
        let platform = if req.platform.is_empty() {
            Platform::host()
        } else {
            Platform::parse(&req.platform)?
        };
        let (tx, rx) = mpsc::channel(64);
        if req.all_tags {
            let tags = self.registry.tags(&named, &req.auth).await?;
            let daemon = self.clone();
            tokio::spawn(async move {
                let mut changed = false;
                for t in tags {
                    let r = match named.with_tag(&t) {
                        Ok(r) => r,
                        Err(_) => continue,
                    };
                    let resolved = match daemon.registry.resolve(&r, &platform, &req.auth).await {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = tx.send(JsonMessage::error(e.to_string(), None)).await;
                            return;
                        }
                    };
                    match daemon.pull_resolved(&r, resolved, &req.auth, &tx, false).await {
                        Ok(c) => changed |= c,
                        Err(e) => {
                            let _ = tx.send(JsonMessage::error(e.to_string(), None)).await;
                            return;
                        }
                    }
                }
                let what = if changed {
                    "Downloaded newer image for"
                } else {
                    "Image is up to date for"
                };
                let _ = tx
                    .send(JsonMessage::status(format!(
                        "Status: {what} {}",
                        named.familiar_name()
                    )))
                    .await;
            });
            return Ok(rx);
        }
        let r = if req.tag.is_empty() {
            Reference::parse(&req.image)
        } else if req.tag.starts_with("sha256:") {
            Reference::parse(&format!("{}@{}", named.name(), req.tag))
        } else {
            named.with_tag(&req.tag)
        }
        .map_err(|e| Error::invalid(e.to_string()))?;
        let resolved = match self.registry.resolve(&r, &platform, &req.auth).await {
            Ok(x) => x,
            Err(e) => return self.pull_builtin_instead(&r, e, tx, rx).await,
        };
        let daemon = self.clone();
        tokio::spawn(async move {
            if let Err(e) = daemon.pull_resolved(&r, resolved, &req.auth, &tx, true).await {
                let _ = tx.send(JsonMessage::error(e.to_string(), None)).await;
            }
        });
        Ok(rx)
    }

    /// `pull hello-world` with no registry answering: say so and keep the built-in image.
    async fn pull_builtin_instead(
        self: &Arc<Self>,
        r: &Reference,
        err: berth_registry::Error,
        tx: mpsc::Sender<JsonMessage>,
        rx: mpsc::Receiver<JsonMessage>,
    ) -> Result<mpsc::Receiver<JsonMessage>> {
        let images = self.images.clone();
        let name = r.to_string();
        let builtin = blocking(move || Ok(images.install_builtin(&name).ok().flatten())).await?;
        let Some((id, _)) = builtin else {
            return Err(err.into());
        };
        let _ = tx
            .send(JsonMessage::status(format!(
                "{} could not be pulled ({err}); using berth's built-in image {}",
                r.familiar(),
                short(&id)
            )))
            .await;
        let _ = tx
            .send(JsonMessage::status(format!(
                "Status: Image is up to date for {}",
                r.familiar()
            )))
            .await;
        Ok(rx)
    }

    /// Steps 2–5 for one resolved image; `true` if the image or its tag is new. With `last`,
    /// ends with the `Status:` line.
    async fn pull_resolved(
        self: &Arc<Self>,
        r: &Reference,
        resolved: Resolved,
        auth: &AuthConfig,
        tx: &mpsc::Sender<JsonMessage>,
        last: bool,
    ) -> Result<bool> {
        let say = |m: JsonMessage| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(m).await;
            }
        };
        let first_id = match r.digest() {
            Some(_) => r.familiar(),
            None => r.tag().unwrap_or("latest").to_string(),
        };
        say(JsonMessage::status_id(
            format!("Pulling from {}", r.path()),
            first_id,
        ))
        .await;
        let layers = resolved.manifest.layers.clone();
        let images = self.images.clone();
        let config = resolved.config.clone();
        let plan = blocking(move || Ok(images.pull_plan(&config)?)).await?;
        if plan.layers.len() != layers.len() {
            return Err(Error::invalid(format!(
                "invalid manifest for {}: {} layers but its config has {} diff IDs",
                r.familiar(),
                layers.len(),
                plan.layers.len()
            )));
        }
        let existed = self.images.resolve(&plan.id).is_ok();
        // What the reference (a tag, or a repository digest) named before: the pull "downloaded
        // a newer image" unless it named this one already, as dockerd decides.
        let named = r.tag().is_some() || r.digest().is_some();
        let ref_target = named
            .then(|| self.images.resolve(&r.to_string()).ok())
            .flatten()
            .map(|i| i.id);
        let present: Vec<bool> = plan.layers.iter().map(|l| l.present).collect();
        for (l, here) in layers.iter().zip(&present) {
            // An image that is here already pulls nothing, and dockerd says nothing per layer.
            if *here && !existed {
                say(JsonMessage::layer("Already exists", short(l.digest.as_ref()))).await;
            }
        }
        for (l, here) in layers.iter().zip(&present) {
            if !*here {
                say(JsonMessage::layer("Pulling fs layer", short(l.digest.as_ref()))).await;
            }
        }
        // Downloads, in parallel, into spools.
        let limit = Arc::new(Semaphore::new(MAX_DOWNLOADS));
        let mut spools: Vec<Option<Arc<Spool>>> = Vec::new();
        for (l, here) in layers.iter().zip(&present) {
            if *here {
                spools.push(None);
                continue;
            }
            spools.push(Some(self.download(r, l, auth, limit.clone(), tx.clone()).await?));
        }
        // Unpacking, in order, on a blocking thread.
        let images = self.images.clone();
        let out = tx.clone();
        let sizes: Vec<(String, u64)> = layers
            .iter()
            .map(|l| (short(l.digest.as_ref()), l.size))
            .collect();
        let mut plan = plan;
        let tags: Vec<String> = r.tag().map(|_| vec![r.to_string()]).unwrap_or_default();
        let repo_digest = format!("{}@{}", r.name(), resolved.digest);
        let sources: Vec<BlobSource> = layers
            .iter()
            .zip(&plan.layers)
            .map(|(l, p)| BlobSource {
                digest: l.digest.to_string(),
                repository: r.name(),
                diff_id: p.diff_id.clone(),
                media_type: l.media_type.clone(),
                size: l.size as i64,
            })
            .collect();
        let id = blocking(move || {
            for (i, spool) in spools.iter().enumerate() {
                let Some(spool) = spool else { continue };
                let (id, total) = &sizes[i];
                let mut reader = spool
                    .reader()
                    .map_err(|e| Error::io("cannot read a download spool", e))?;
                let mut last = 0u64;
                let unpacked = images.pull_layer(&mut plan, i, &mut reader as &mut dyn Read, &mut |n| {
                    if n != last {
                        last = n;
                        let _ = out.blocking_send(JsonMessage::progress(
                            "Extracting",
                            id.clone(),
                            n as i64,
                            *total as i64,
                        ));
                    }
                });
                if let Err(e) = unpacked {
                    // Bad bytes may trip the decompressor before the digest check at the end of
                    // the download: the download's verdict names the cause better.
                    drop(reader);
                    return Err(match spool.wait() {
                        Err(why) => Error::internal(why),
                        Ok(()) => e.into(),
                    });
                }
                let _ = out.blocking_send(JsonMessage::layer("Pull complete", id.clone()));
            }
            Ok(images.pull_commit(plan, &tags, &[repo_digest], &sources)?)
        })
        .await?;
        say(JsonMessage::status(format!("Digest: {}", resolved.digest))).await;
        let changed = !existed || (named && ref_target.as_deref() != Some(id.as_str()));
        if last {
            let what = if changed {
                "Downloaded newer image for"
            } else {
                "Image is up to date for"
            };
            say(JsonMessage::status(format!("Status: {what} {}", r.familiar()))).await;
        }
        let mut a = std::collections::BTreeMap::new();
        a.insert("name".to_string(), r.familiar());
        self.events.emit("image", "pull", &r.familiar(), a);
        Ok(changed)
    }

    /// Starts (or joins) the download of one blob; its spool.
    async fn download(
        self: &Arc<Self>,
        r: &Reference,
        l: &Descriptor,
        auth: &AuthConfig,
        limit: Arc<Semaphore>,
        tx: mpsc::Sender<JsonMessage>,
    ) -> Result<Arc<Spool>> {
        let key = l.digest.to_string();
        let id = short(&key);
        // Looked up and claimed under one lock: two pulls that both find no download in flight
        // must not both start one (the second joins the first's spool).
        let spool = self.images.spool()?;
        let joined = {
            let mut map = self.downloads.0.lock().unwrap();
            let found = map.get(&key).and_then(Weak::upgrade);
            if found.is_none() {
                map.insert(key.clone(), Arc::downgrade(&spool));
            }
            found
        };
        if let Some(s) = joined {
            // Another pull is fetching it: wait for its bytes.
            let waiting = s.clone();
            tokio::spawn(async move {
                let _ = tx.send(JsonMessage::layer("Waiting", id.clone())).await;
                let w = waiting.clone();
                if tokio::task::spawn_blocking(move || w.wait())
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .is_some()
                {
                    let _ = tx.send(JsonMessage::layer("Download complete", id)).await;
                }
            });
            return Ok(s);
        }
        let (daemon, r, l, auth, s) = (self.clone(), r.clone(), l.clone(), auth.clone(), spool.clone());
        tokio::spawn(async move {
            if limit.available_permits() == 0 {
                let _ = tx.send(JsonMessage::layer("Waiting", id.clone())).await;
            }
            let _permit = limit.acquire_owned().await;
            let outcome = daemon.fetch_into(&r, &l, &auth, &s, &tx, &id).await;
            if outcome.is_ok() {
                let _ = tx
                    .send(JsonMessage::layer("Verifying Checksum", id.clone()))
                    .await;
                let _ = tx.send(JsonMessage::layer("Download complete", id.clone())).await;
            }
            s.finish(outcome);
            daemon.downloads.0.lock().unwrap().remove(&l.digest.to_string());
        });
        Ok(spool)
    }

    /// Fetches a blob into its spool, retrying transient failures with backoff (resuming with a
    /// Range request where the registry allows it).
    async fn fetch_into(
        &self,
        r: &Reference,
        l: &Descriptor,
        auth: &AuthConfig,
        spool: &Spool,
        tx: &mpsc::Sender<JsonMessage>,
        id: &str,
    ) -> std::result::Result<(), String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.fetch_once(r, l, auth, spool, tx, id).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !err.is_transient() || attempt >= RETRIES {
                return Err(err.to_string());
            }
            let _ = tx
                .send(JsonMessage::layer(
                    format!("Retrying in {} seconds", 1 << (attempt - 1)),
                    id.to_string(),
                ))
                .await;
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
    }

    async fn fetch_once(
        &self,
        r: &Reference,
        l: &Descriptor,
        auth: &AuthConfig,
        spool: &Spool,
        tx: &mpsc::Sender<JsonMessage>,
        id: &str,
    ) -> std::result::Result<(), berth_registry::Error> {
        let (offset, hasher) = spool.resume_point().map_err(|e| io_err("spool", e))?;
        let resume = (offset > 0).then_some(berth_registry::Resume { offset, hasher });
        let mut s = self.registry.fetch_blob(r, l, resume, auth).await?;
        if s.offset() == 0 && spool.written() > 0 {
            spool.restart().map_err(|e| io_err("spool", e))?;
        }
        let total = l.size as i64;
        let mut shown = 0u64;
        let _ = tx
            .send(JsonMessage::progress(
                "Downloading",
                id.to_string(),
                s.position() as i64,
                total,
            ))
            .await;
        while let Some(chunk) = s.next_chunk().await {
            let chunk = chunk?;
            spool.write(&chunk).map_err(|e| io_err("spool", e))?;
            let at = s.position();
            if at - shown >= 512 * 1024 || at == l.size {
                shown = at;
                let _ = tx
                    .send(JsonMessage::progress(
                        "Downloading",
                        id.to_string(),
                        at as i64,
                        total,
                    ))
                    .await;
            }
        }
        Ok(())
    }
}

fn io_err(context: &str, source: std::io::Error) -> berth_registry::Error {
    berth_registry::Error::Io {
        context: context.to_string(),
        source,
    }
}
