//! Push primitives: HEAD a blob, cross-repository mount (201 mounted, 202 not: the session it
//! opens is kept for the upload), upload monolithically or in chunks (PATCH … PUT), put a
//! manifest.

use berth_types::{Digest, Reference};
use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::auth::AuthConfig;
use crate::client::{error_of, Target};
use crate::error::RegistryErrors;
use crate::hosts::Need;
use crate::{Error, Registry};

fn push_scope(r: &Reference) -> String {
    format!("repository:{}:pull,push", r.path())
}

/// A refusal on push, in Docker's words: without credentials, `unauthorized: authentication
/// required`; with credentials that lack the right, `denied: requested access to the resource
/// is denied`.
fn push_error(t: &Target, status: u16, cause: RegistryErrors) -> Error {
    let anonymous = matches!(t.cred, crate::auth::Credential::Anonymous);
    match status {
        401 if anonymous && !cause.has("DENIED") => Error::Unauthorized {
            context: String::new(),
            cause: cause.to_string(),
        },
        401 | 403 => Error::Denied {
            cause: RegistryErrors(vec![crate::error::RegistryError {
                code: "DENIED".into(),
                message: "requested access to the resource is denied".into(),
            }]),
        },
        _ => Error::Registry { status, cause },
    }
}

/// The absolute URL of a Location header (relative ones resolve against the request's URL).
fn location(resp: &Response, base: &str) -> Result<String, Error> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadManifest(format!("{base}: upload answered without a Location")))?;
    Url::parse(base)
        .and_then(|b| b.join(loc))
        .map(|u| u.to_string())
        .map_err(|e| Error::BadManifest(format!("bad upload location {loc:?}: {e}")))
}

fn with_digest(url: &str, d: &Digest) -> Result<String, Error> {
    let mut u = Url::parse(url).map_err(|e| Error::BadManifest(format!("bad upload URL {url}: {e}")))?;
    u.query_pairs_mut().append_pair("digest", d.as_str());
    Ok(u.to_string())
}

impl Registry {
    /// Whether the repository already has the blob (`HEAD`).
    pub async fn blob_exists(&self, r: &Reference, d: &Digest, auth: &AuthConfig) -> Result<bool, Error> {
        self.on_endpoints(r, Need::Push, auth, vec![push_scope(r)], |t| async move {
            let url = t.url(&format!("{}/blobs/{d}", r.path()));
            let resp = self.inner.send(&t, Method::HEAD, &url, true, &|rb| rb).await?;
            match resp.status().as_u16() {
                200..=299 => Ok(true),
                404 => Ok(false),
                s => {
                    let (_, cause) = error_of(resp).await;
                    Err(push_error(&t, s, cause))
                }
            }
        })
        .await
    }

    /// Tries a cross-repository mount of `d` from `from_repo` (a path on the same registry,
    /// e.g. `library/busybox`). `true`: mounted (201). `false`: not (the registry opened an
    /// upload instead, which [`Registry::upload_blob`] then uses; or the source is not
    /// readable): upload it.
    pub async fn mount_blob(
        &self,
        r: &Reference,
        d: &Digest,
        from_repo: &str,
        auth: &AuthConfig,
    ) -> Result<bool, Error> {
        let scopes = vec![push_scope(r), format!("repository:{from_repo}:pull")];
        self.on_endpoints(r, Need::Push, auth, scopes, |t| async move {
            let mut url = Url::parse(&t.url(&format!("{}/blobs/uploads/", r.path())))
                .map_err(|e| Error::BadManifest(e.to_string()))?;
            url.query_pairs_mut()
                .append_pair("mount", d.as_str())
                .append_pair("from", from_repo);
            let url = url.to_string();
            let resp = self
                .inner
                .send(&t, Method::POST, &url, true, &|rb| rb.header(CONTENT_LENGTH, 0))
                .await?;
            match resp.status().as_u16() {
                201 => Ok(true),
                202 => {
                    let session = location(&resp, &url)?;
                    self.inner
                        .uploads
                        .lock()
                        .unwrap()
                        .insert((r.name(), d.to_string()), session);
                    Ok(false)
                }
                401 | 403 => Ok(false),
                s => {
                    let (_, cause) = error_of(resp).await;
                    Err(push_error(&t, s, cause))
                }
            }
        })
        .await
    }

    /// Uploads a blob of `size` bytes read from `body`: one PUT, or — when the registry was
    /// configured with an upload chunk size and the blob is larger — PATCH chunks then a PUT.
    /// `progress` gets the bytes sent so far. The registry checks the digest; this checks the
    /// registry said so. Reuses the session a refused mount opened.
    pub async fn upload_blob<R>(
        &self,
        r: &Reference,
        d: &Digest,
        size: u64,
        body: R,
        mut progress: impl FnMut(u64) + Send,
        auth: &AuthConfig,
    ) -> Result<(), Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let eps = self.inner.hosts.endpoints(r.domain(), Need::Push)?;
        let ep = eps
            .first()
            .ok_or_else(|| Error::Config(format!("no endpoint of {} takes pushes", r.domain())))?;
        let t = self.target(ep, r, auth, vec![push_scope(r)]).await?;
        let mut body = body;
        let session = self
            .inner
            .uploads
            .lock()
            .unwrap()
            .remove(&(r.name(), d.to_string()));
        let mut url = match session {
            Some(s) => s,
            None => self.start_upload(&t, r).await?,
        };
        let chunk = self.inner.chunk_size.filter(|c| *c > 0 && size > *c);
        let mut sent = 0u64;
        if let Some(chunk) = chunk {
            while sent < size {
                let n = chunk.min(size - sent);
                let range = format!("{}-{}", sent, sent + n - 1);
                let resp = self
                    .stream_request(
                        &t,
                        Method::PATCH,
                        &url,
                        &mut body,
                        n,
                        sent,
                        &mut progress,
                        &[(CONTENT_RANGE.as_str(), range)],
                    )
                    .await?;
                if resp.status().as_u16() != 202 {
                    let (s, cause) = error_of(resp).await;
                    return Err(push_error(&t, s, cause));
                }
                url = location(&resp, &url)?;
                sent += n;
            }
            let put = with_digest(&url, d)?;
            let resp = self
                .inner
                .send(&t, Method::PUT, &put, false, &|rb| rb.header(CONTENT_LENGTH, 0))
                .await?;
            return check_created(&t, resp, d).await;
        }
        let put = with_digest(&url, d)?;
        let resp = self
            .stream_request(&t, Method::PUT, &put, &mut body, size, 0, &mut progress, &[])
            .await?;
        check_created(&t, resp, d).await
    }

    async fn start_upload(&self, t: &Target, r: &Reference) -> Result<String, Error> {
        let url = t.url(&format!("{}/blobs/uploads/", r.path()));
        let resp = self
            .inner
            .send(t, Method::POST, &url, true, &|rb| rb.header(CONTENT_LENGTH, 0))
            .await?;
        if resp.status().as_u16() != 202 {
            let (s, cause) = error_of(resp).await;
            return Err(push_error(t, s, cause));
        }
        location(&resp, &url)
    }

    /// Sends `len` bytes of `body` as a request's body, reading and sending concurrently
    /// (bounded memory) and reporting progress as bytes are handed over.
    #[allow(clippy::too_many_arguments)]
    async fn stream_request<R: AsyncRead + Unpin + Send>(
        &self,
        t: &Target,
        method: Method,
        url: &str,
        body: &mut R,
        len: u64,
        sent_before: u64,
        progress: &mut (impl FnMut(u64) + Send),
        headers: &[(&str, String)],
    ) -> Result<Response, Error> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let req_body = std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(stream)));
        let headers: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let build = move |mut rb: reqwest::RequestBuilder| {
            rb = rb
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len);
            for (k, v) in &headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            match req_body.lock().unwrap().take() {
                Some(b) => rb.body(b),
                None => rb,
            }
        };
        let request = self.inner.send(t, method, url, false, &build);
        let feed = async move {
            let mut left = len;
            let mut buf = vec![0u8; 256 << 10];
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = body.read(&mut buf[..want]).await.map_err(|e| Error::Io {
                    context: "reading the blob to upload".into(),
                    source: e,
                })?;
                if n == 0 {
                    let e =
                        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob shorter than its size");
                    let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string()))).await;
                    return Err(Error::Io {
                        context: format!("reading the blob to upload ({} of {len} bytes)", len - left),
                        source: e,
                    });
                }
                left -= n as u64;
                if tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    return Ok(()); // the request ended early; its result tells why
                }
                progress(sent_before + len - left);
            }
            Ok(())
        };
        let (resp, fed) = tokio::join!(request, feed);
        fed?;
        resp
    }

    /// Puts a manifest (or index) under `reference` (a tag or its digest) with its media type;
    /// returns its digest.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        reference: &str,
        media_type: &str,
        body: &[u8],
        auth: &AuthConfig,
    ) -> Result<Digest, Error> {
        let digest = Digest::from_sha256_bytes(&Sha256::digest(body).into());
        let body = Bytes::copy_from_slice(body);
        let media_type = media_type.to_string();
        let eps = self.inner.hosts.endpoints(r.domain(), Need::Push)?;
        let ep = eps
            .first()
            .ok_or_else(|| Error::Config(format!("no endpoint of {} takes pushes", r.domain())))?;
        let t = self.target(ep, r, auth, vec![push_scope(r)]).await?;
        let url = t.url(&format!("{}/manifests/{reference}", r.path()));
        let resp = self
            .inner
            .send(&t, Method::PUT, &url, true, &|rb| {
                rb.header(CONTENT_TYPE, media_type.as_str()).body(body.clone())
            })
            .await?;
        if resp.status().as_u16() != 201 {
            let (s, cause) = error_of(resp).await;
            return Err(push_error(&t, s, cause));
        }
        if let Some(h) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if h != digest.as_str() {
                return Err(Error::DigestMismatch {
                    digest: h.to_string(),
                });
            }
        }
        Ok(digest)
    }
}

async fn check_created(t: &Target, resp: Response, d: &Digest) -> Result<(), Error> {
    if resp.status().as_u16() != 201 {
        let (s, cause) = error_of(resp).await;
        return Err(push_error(t, s, cause));
    }
    if let Some(h) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if h != d.as_str() {
            return Err(Error::DigestMismatch {
                digest: d.to_string(),
            });
        }
    }
    Ok(())
}
