//! Pull: a reference → the platform's manifest and config (every digest verified), and blobs as
//! verified streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use berth_types::{Digest, Reference};
use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE};
use sha2::{Digest as _, Sha256};

use crate::auth::{AuthConfig, Challenge, Credential};
use crate::client::{error_of, read_limited, Target, SMALL_BODY_MAX};
use crate::error::{transport, RegistryErrors};
use crate::hosts::Need;
use crate::manifest::{self, Descriptor, Manifest, Parsed, Platform, MANIFEST_ACCEPT};
use crate::{Error, Registry};

/// The most a config blob may weigh in memory.
const CONFIG_MAX: usize = 64 << 20;

/// What [`Registry::resolve`] found.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The reference as asked.
    pub reference: Reference,
    /// The digest of the top-level manifest or index: what Docker records as the RepoDigest.
    pub digest: Digest,
    /// The top-level media type (an index's, or the manifest's own).
    pub media_type: String,
    /// The top-level bytes as served (for a single-platform image, the manifest's).
    pub bytes: Vec<u8>,
    /// The platform's image manifest.
    pub manifest: Manifest,
    /// Its descriptor (digest, media type, size; the index entry's platform when from an index).
    pub manifest_descriptor: Descriptor,
    /// Its bytes.
    pub manifest_bytes: Vec<u8>,
    /// The config blob (verified against `manifest.config`).
    pub config: Vec<u8>,
    /// The API root that served it (`https://registry-1.docker.io/v2`, a mirror's, …).
    pub endpoint: String,
}

/// Where an interrupted download picks up: how many bytes the caller has, and the SHA-256 state
/// of exactly those bytes (so the stream still verifies the whole blob).
#[derive(Debug, Clone)]
pub struct Resume {
    pub offset: u64,
    pub hasher: Sha256,
}

fn pull_scope(r: &Reference) -> String {
    format!("repository:{}:pull", r.path())
}

/// The Go `Head "URL": ` prefix Docker puts before a manifest error.
fn manifest_error(r: &Reference, t: &Target, url: &str, status: u16, cause: RegistryErrors) -> Error {
    if cause.has("MANIFEST_UNKNOWN") || (status == 404 && !cause.has("NAME_UNKNOWN")) {
        return Error::ManifestUnknown {
            reference: r.familiar(),
            cause,
        };
    }
    if cause.has("NAME_UNKNOWN") {
        return Error::NameUnknown {
            name: r.familiar_name(),
            cause,
        };
    }
    if cause.has("DENIED") {
        return Error::PullDenied {
            name: r.familiar_name(),
            cause,
        };
    }
    if status == 401 {
        let no_creds = matches!(t.cred, Credential::Anonymous);
        return match (&t.challenge, no_creds) {
            (Challenge::Basic, true) => Error::Unauthorized {
                context: format!("Head \"{url}\": "),
                cause: "no basic auth credentials".into(),
            },
            (Challenge::Bearer { .. }, _) => Error::PullDenied {
                name: r.familiar_name(),
                cause: RegistryErrors(vec![crate::error::RegistryError {
                    code: "DENIED".into(),
                    message: "requested access to the resource is denied".into(),
                }]),
            },
            _ => Error::Unauthorized {
                context: format!("Head \"{url}\": "),
                cause: cause.to_string(),
            },
        };
    }
    Error::Registry { status, cause }
}

fn sha256_digest(b: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&Sha256::digest(b).into())
}

impl Registry {
    /// A live target on an endpoint for repository `r` with `scopes`.
    pub(crate) async fn target(
        &self,
        ep: &crate::hosts::Endpoint,
        r: &Reference,
        auth: &AuthConfig,
        scopes: Vec<String>,
    ) -> Result<Target, Error> {
        let (live, challenge) = self.inner.ping(ep).await?;
        let cred = self.inner.credential(ep, r.domain(), auth);
        Ok(Target {
            ep: live,
            challenge,
            cred,
            scopes,
        })
    }

    /// Tries `op` on each endpoint of `r`'s registry that can serve `need`, in order; an
    /// endpoint's failure falls through to the next (mirrors first, the origin last), and the
    /// last one's error is the answer.
    pub(crate) async fn on_endpoints<T, F, Fut>(
        &self,
        r: &Reference,
        need: Need,
        auth: &AuthConfig,
        scopes: Vec<String>,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let eps = self.inner.hosts.endpoints(r.domain(), need)?;
        if eps.is_empty() {
            return Err(Error::Config(format!(
                "no endpoint of {} can {need:?}",
                r.domain()
            )));
        }
        let n = eps.len();
        for (i, ep) in eps.iter().enumerate() {
            let res = match self.target(ep, r, auth, scopes.clone()).await {
                Ok(t) => op(t).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(v) => return Ok(v),
                Err(e) if i + 1 < n => {
                    tracing::warn!("{}: {e}; trying the next endpoint", ep.base());
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns on the last endpoint")
    }

    /// Resolves a reference to the platform's image manifest and config. See the crate doc.
    pub async fn resolve(
        &self,
        r: &Reference,
        platform: &Platform,
        auth: &AuthConfig,
    ) -> Result<Resolved, Error> {
        let need = if r.digest().is_some() {
            Need::Pull
        } else {
            Need::Resolve
        };
        self.on_endpoints(r, need, auth, vec![pull_scope(r)], |t| {
            self.resolve_on(t, r, platform)
        })
        .await
    }

    async fn get_manifest(
        &self,
        t: &Target,
        r: &Reference,
        reference: &str,
    ) -> Result<(String, Vec<u8>, Option<String>), Error> {
        let url = t.url(&format!("{}/manifests/{reference}", r.path()));
        let (resp, url) = self
            .inner
            .get_following(t, &url, &[("Accept", MANIFEST_ACCEPT.to_string())])
            .await?;
        if !resp.status().is_success() {
            let (status, cause) = error_of(resp).await;
            return Err(manifest_error(r, t, &url, status, cause));
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_limited(resp, SMALL_BODY_MAX, "GET", &url).await?;
        Ok((ct, body, header_digest))
    }

    async fn resolve_on(&self, t: Target, r: &Reference, platform: &Platform) -> Result<Resolved, Error> {
        let reference = r.digest().or(r.tag()).unwrap_or("latest").to_string();
        let (ct, bytes, header_digest) = self.get_manifest(&t, r, &reference).await?;
        let digest = sha256_digest(&bytes);
        let expected = r
            .digest()
            .map(str::to_string)
            .or(header_digest.filter(|h| h.starts_with("sha256:")));
        if let Some(want) = expected {
            if want != digest.as_str() {
                return Err(Error::DigestMismatch { digest: want });
            }
        }
        let (media_type, parsed) = manifest::parse(&ct, &bytes)?;
        let (manifest, desc, manifest_bytes, from_index) = match parsed {
            Parsed::Manifest(m) => {
                let d = Descriptor::new(&media_type, digest.clone(), bytes.len() as u64);
                (*m, d, bytes.clone(), false)
            }
            Parsed::Index(idx) => {
                let d = idx
                    .choose(platform)
                    .cloned()
                    .ok_or_else(|| Error::NoMatchingManifest {
                        platform: platform.normalized().to_string(),
                    })?;
                let (cct, cbytes, _) = self.get_manifest(&t, r, d.digest.as_str()).await?;
                if sha256_digest(&cbytes) != d.digest || cbytes.len() as u64 != d.size {
                    return Err(Error::DigestMismatch {
                        digest: d.digest.to_string(),
                    });
                }
                let child_ct = if d.media_type.is_empty() {
                    cct
                } else {
                    d.media_type.clone()
                };
                match manifest::parse(&child_ct, &cbytes)? {
                    (_, Parsed::Manifest(m)) => (*m, d, cbytes, true),
                    (_, Parsed::Index(_)) => {
                        return Err(Error::BadManifest(format!(
                            "index {digest} points at another index for {platform}"
                        )))
                    }
                }
            }
        };
        let config = self.blob_bytes(&t, r, &manifest.config, CONFIG_MAX).await?;
        if !from_index {
            #[derive(serde::Deserialize)]
            struct Cfg {
                #[serde(default)]
                os: String,
                #[serde(default)]
                architecture: String,
                #[serde(default)]
                variant: Option<String>,
            }
            if let Ok(c) = serde_json::from_slice::<Cfg>(&config) {
                if !c.os.is_empty() && !c.architecture.is_empty() {
                    let actual = Platform::new(&c.os, &c.architecture, c.variant.as_deref());
                    if platform.rank(&actual).is_none() {
                        return Err(Error::PlatformMismatch {
                            reference: r.familiar(),
                            wanted: platform.normalized().to_string(),
                            actual: actual.normalized().to_string(),
                        });
                    }
                }
            }
        }
        Ok(Resolved {
            reference: r.clone(),
            digest,
            media_type,
            bytes,
            manifest,
            manifest_descriptor: desc,
            manifest_bytes,
            config,
            endpoint: t.ep.base(),
        })
    }

    /// A small blob (a config) read whole and verified.
    async fn blob_bytes(
        &self,
        t: &Target,
        r: &Reference,
        d: &Descriptor,
        max: usize,
    ) -> Result<Vec<u8>, Error> {
        if d.size as usize > max {
            return Err(Error::BadManifest(format!(
                "config {} is {} bytes, more than {max}",
                d.digest, d.size
            )));
        }
        let mut s = self.blob_on(t, r, d, None).await?;
        let mut out = Vec::with_capacity(d.size as usize);
        while let Some(chunk) = s.next_chunk().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// A blob as a verified stream of chunks (see [`BlobStream`]). With `resume`, asks for the
    /// bytes after `resume.offset` (`Range`); a registry that ignores it sends everything, which
    /// [`BlobStream::offset`] then says (0), and the caller starts over.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        d: &Descriptor,
        resume: Option<Resume>,
        auth: &AuthConfig,
    ) -> Result<BlobStream, Error> {
        self.on_endpoints(r, Need::Pull, auth, vec![pull_scope(r)], |t| {
            let resume = resume.clone();
            async move { self.blob_on(&t, r, d, resume).await }
        })
        .await
    }

    async fn blob_on(
        &self,
        t: &Target,
        r: &Reference,
        d: &Descriptor,
        resume: Option<Resume>,
    ) -> Result<BlobStream, Error> {
        let url = t.url(&format!("{}/blobs/{}", r.path(), d.digest));
        let mut headers = vec![];
        if let Some(res) = resume.as_ref().filter(|res| res.offset > 0) {
            headers.push(("Range", format!("bytes={}-", res.offset)));
        }
        let (resp, url) = self.inner.get_following(t, &url, &headers).await?;
        let status = resp.status().as_u16();
        let (offset, hasher) = match (status, resume) {
            (206, Some(res)) => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(res.offset) {
                    return Err(Error::BadManifest(format!(
                        "{url}: range answered from {start:?}, asked {}",
                        res.offset
                    )));
                }
                (res.offset, res.hasher)
            }
            (200, _) => (0, Sha256::new()),
            _ => {
                let (status, cause) = error_of(resp).await;
                return Err(match status {
                    401 => Error::Unauthorized {
                        context: format!("Get \"{url}\": "),
                        cause: cause.to_string(),
                    },
                    _ => Error::Registry { status, cause },
                });
            }
        };
        Ok(BlobStream::new(
            resp,
            url,
            Some(d.digest.clone()),
            Some(d.size),
            offset,
            hasher,
        ))
    }
}

/// A blob's bytes as they arrive. It ends with an error — never silently — if the bytes do not
/// hash to the digest (checked at the end), or are fewer or more than the descriptor's size.
/// A [`futures_util::Stream`] of `Result<Bytes, Error>`; [`BlobStream::next_chunk`] is the same
/// without a trait import.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    url: String,
    digest: Option<Digest>,
    size: Option<u64>,
    offset: u64,
    received: u64,
    hasher: Option<Sha256>,
    done: bool,
}

impl BlobStream {
    pub(crate) fn new(
        resp: reqwest::Response,
        url: String,
        digest: Option<Digest>,
        size: Option<u64>,
        offset: u64,
        hasher: Sha256,
    ) -> BlobStream {
        BlobStream {
            inner: Box::pin(resp.bytes_stream()),
            url,
            digest,
            size,
            offset,
            received: offset,
            hasher: Some(hasher),
            done: false,
        }
    }

    /// Where the stream starts in the blob (0 unless a resume was honoured).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The whole blob's size when known (the descriptor's, or a URL's Content-Length).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Bytes of the blob seen so far, the offset included.
    pub fn position(&self) -> u64 {
        self.received
    }

    /// The next chunk; `None` at a verified end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, Error>> {
        futures_util::StreamExt::next(self).await
    }

    fn name(&self) -> String {
        self.digest
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| self.url.clone())
    }

    fn finish(&mut self) -> Option<Result<Bytes, Error>> {
        self.done = true;
        if let Some(want) = self.size {
            if self.received < want {
                return Some(Err(Error::Short {
                    digest: self.name(),
                    got: self.received,
                    want,
                }));
            }
        }
        if let (Some(d), Some(h)) = (&self.digest, self.hasher.take()) {
            if Digest::from_sha256_bytes(&h.finalize().into()) != *d {
                return Some(Err(Error::DigestMismatch {
                    digest: d.to_string(),
                }));
            }
        }
        None
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                if let Some(want) = self.size.filter(|w| self.received > *w) {
                    self.done = true;
                    return Poll::Ready(Some(Err(Error::Long {
                        digest: self.name(),
                        want,
                    })));
                }
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                if self.size.is_some_and(|w| self.received < w) {
                    return Poll::Ready(self.finish());
                }
                self.done = true;
                Poll::Ready(Some(Err(transport("GET", &self.url, &e))))
            }
            Poll::Ready(None) => Poll::Ready(self.finish()),
        }
    }
}
