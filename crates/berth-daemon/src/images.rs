//! Image operations as the API exposes them: berth-image does the work, this adds events and the
//! in-use checks that need container state.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use berth_api::models::ImageDeleteResponseItem;
use berth_image::{ImportOptions, RemoveOptions};

use crate::error::{blocking, Error, Result};
use crate::Daemon;

impl Daemon {
    /// `docker import`: `src` is a blocking reader over the request body.
    pub async fn import_image(
        self: &Arc<Self>,
        src: Box<dyn Read + Send>,
        opts: ImportOptions,
    ) -> Result<String> {
        let images = self.images.clone();
        let tag = opts.repo_tag.clone();
        let id = blocking(move || {
            let mut src = src;
            images.import(&mut src, &opts).map_err(Error::from)
        })
        .await?;
        // dockerd's order and names: the tag, then the import named by the image's ID.
        if let Some(t) = tag {
            self.emit_tag(&id, &t);
        }
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), id.clone());
        self.events.emit("image", "import", &id, a);
        Ok(id)
    }

    /// `docker tag`.
    pub async fn tag_image(self: &Arc<Self>, source: &str, target: &str) -> Result<()> {
        let images = self.images.clone();
        let (s, t) = (source.to_string(), target.to_string());
        let id = blocking(move || {
            images.tag(&s, &t)?;
            Ok(images.resolve(&s)?.id)
        })
        .await?;
        self.emit_tag(&id, target);
        Ok(())
    }

    /// An image's `tag` event, named by the reference as the user writes it (`bx:1`).
    pub(crate) fn emit_tag(&self, image_id: &str, reference: &str) {
        let name = berth_types::Reference::parse(reference)
            .map(|r| r.familiar())
            .unwrap_or_else(|_| reference.to_string());
        let mut a = BTreeMap::new();
        a.insert("name".to_string(), name);
        self.events.emit("image", "tag", image_id, a);
    }

    /// `docker rmi`.
    pub async fn remove_image(
        self: &Arc<Self>,
        name: &str,
        force: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        self.remove_image_with(
            name,
            RemoveOptions {
                force,
                noprune: false,
            },
        )
        .await
    }

    /// `DELETE /images/{name}?force=&noprune=`.
    pub async fn remove_image_with(
        self: &Arc<Self>,
        name: &str,
        opts: RemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let images = self.images.clone();
        let daemon = self.clone();
        let n = name.to_string();
        let (items, id) = blocking(move || {
            let id = images.resolve(&n).ok().map(|i| i.id);
            let items = images
                .remove_with(&n, opts, &|cid| daemon.is_running(cid))
                .map_err(Error::from)?;
            Ok((items, id))
        })
        .await?;
        self.emit_image_removals(&items, id.as_deref());
        Ok(items)
    }

    /// The `untag` and `delete` events of what an rmi or a prune removed. As dockerd, an `untag`
    /// names the image by its ID: the ID of the deletion that follows the untagged references,
    /// else `image_id` (the image an rmi resolved, which keeps other references).
    pub(crate) fn emit_image_removals(&self, items: &[ImageDeleteResponseItem], image_id: Option<&str>) {
        for (i, item) in items.iter().enumerate() {
            if item.untagged.is_some() {
                let id = items[i..]
                    .iter()
                    .find_map(|x| x.deleted.as_deref())
                    .or(image_id)
                    .unwrap_or_default()
                    .to_string();
                let mut a = BTreeMap::new();
                a.insert("name".to_string(), id.clone());
                self.events.emit("image", "untag", &id, a);
            }
            if let Some(d) = &item.deleted {
                self.events.emit("image", "delete", d, BTreeMap::new());
            }
        }
    }
}

/// A blocking reader over chunks an async task sends (a URL's body for `import`).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

impl Daemon {
    /// `docker import http://host/rootfs.tgz`: the URL's body, streamed into the import.
    pub async fn import_url(self: &Arc<Self>, url: &str, opts: ImportOptions) -> Result<String> {
        let body = self.url_reader(url).await?;
        self.import_image(body, opts).await
    }

    /// A URL's body as a blocking reader (for a blocking consumer on another thread), streamed
    /// as it arrives: the request is answered (or fails) before this returns.
    pub(crate) async fn url_reader(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        let (_, _, mut body) = self.registry.fetch_url(url).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(chunk) = body.next_chunk().await {
                let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            cur: bytes::Bytes::new(),
        }))
    }
}
