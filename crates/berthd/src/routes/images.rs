use std::sync::Arc;

use berth_api::JsonMessage;
use berth_daemon::distribution::PullRequest;
use berth_daemon::{Daemon, Error};
use berth_image::{ImportOptions, ListOptions};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::http::{self, Body, BodyReader, Query};

pub fn list(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let opts = ListOptions {
        all: q.bool("all"),
        filters: q.filters()?,
    };
    let mut list = serde_json::to_value(d.images.list(&opts)?).map_err(|e| Error::Internal(e.to_string()))?;
    // dockerd's summaries: `RepoDigests` is null for an image without any (a Go nil slice).
    for img in list.as_array_mut().into_iter().flatten() {
        if img["RepoDigests"].as_array().is_some_and(|a| a.is_empty()) {
            img["RepoDigests"] = serde_json::Value::Null;
        }
    }
    Ok(http::json(StatusCode::OK, &list))
}

/// JSON-message stream lines, each followed by `\r\n`.
fn messages(msgs: &[JsonMessage]) -> Response<Body> {
    let mut b = Vec::new();
    for m in msgs {
        b.extend_from_slice(&serde_json::to_vec(m).unwrap_or_default());
        b.extend_from_slice(b"\r\n");
    }
    let mut r = Response::new(http::full(Bytes::from(b)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `POST /images/create`: import (`fromSrc=-`) or pull (`fromImage=`).
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>, q: &Query) -> Result<Response<Body>, Error> {
    if let Some(src) = q.get("fromSrc") {
        let repo = q.get("repo").unwrap_or("").to_string();
        let tag = q.get("tag").unwrap_or("");
        let repo_tag = match (repo.is_empty(), tag.is_empty()) {
            (true, _) => None,
            (false, true) => Some(repo),
            (false, false) => Some(format!("{repo}:{tag}")),
        };
        let opts = ImportOptions {
            repo_tag,
            changes: q.all("changes"),
            message: q.get("message").unwrap_or("").to_string(),
        };
        let id = if src == "-" {
            let reader = BodyReader::new(req.into_body());
            d.import_image(Box::new(reader), opts).await?
        } else {
            // `docker import http://host/rootfs.tgz`: streamed from the URL.
            d.import_url(src, opts).await?
        };
        return Ok(messages(&[JsonMessage::status(id)]));
    }
    if let Some(image) = q.get("fromImage") {
        let auth = registry_auth(&req)?;
        let image = image.to_string();
        let tag = q.get("tag").unwrap_or("").to_string();
        // moby: a bare name and no tag pulls every tag (`pull -a`).
        let name_only = berth_types::Reference::parse_named(&image)
            .map(|r| r.tag().is_none() && r.digest().is_none())
            .unwrap_or(false);
        let rx = d
            .pull(PullRequest {
                all_tags: tag.is_empty() && name_only,
                image,
                tag,
                platform: q.get("platform").unwrap_or("").to_string(),
                auth,
            })
            .await?;
        return Ok(message_stream(rx));
    }
    Err(Error::invalid("one of fromImage or fromSrc is required"))
}

/// Routes whose path carries an image name (which may contain `/`).
pub async fn by_name(
    d: &Arc<Daemon>,
    _req: Request<Incoming>,
    method: &Method,
    rest: &str,
    q: &Query,
) -> Result<Response<Body>, Error> {
    if method == Method::DELETE {
        let opts = berth_image::RemoveOptions {
            force: q.bool("force"),
            noprune: q.bool("noprune"),
        };
        let items = d.remove_image_with(rest, opts).await?;
        return Ok(http::json(StatusCode::OK, &items));
    }
    let (name, action) = rest.rsplit_once('/').unwrap_or((rest, ""));
    match (method, action) {
        // dockerd 20.10 wraps a missing image's error with the name as given.
        (&Method::GET, "json") => match d.images.inspect_json(name) {
            Ok(v) => Ok(http::json(StatusCode::OK, &v)),
            Err(e) if e.kind() == berth_types::ErrorKind::NotFound => {
                Err(Error::Missing(format!("no such image: {name}: {e}")))
            }
            Err(e) => Err(e.into()),
        },
        (&Method::GET, "get") => save(d, vec![name.to_string()]).await,
        (&Method::POST, "push") => {
            let auth = registry_auth(&_req)?;
            let rx = d.push(name, q.get("tag").unwrap_or(""), auth).await?;
            Ok(message_stream(rx))
        }
        (&Method::GET, "history") => super::tidy::history(d, name).await,
        (&Method::POST, "tag") => {
            let repo = q.get("repo").unwrap_or("");
            let tag = q.get("tag").unwrap_or("");
            if repo.is_empty() {
                return Err(Error::invalid("repository name must have at least one component"));
            }
            let target = if tag.is_empty() {
                repo.to_string()
            } else {
                format!("{repo}:{tag}")
            };
            d.tag_image(name, &target).await?;
            Ok(http::empty(StatusCode::CREATED))
        }
        _ => Ok(http::message(StatusCode::NOT_FOUND, "page not found")),
    }
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`.
pub async fn save(d: &Arc<Daemon>, names: Vec<String>) -> Result<Response<Body>, Error> {
    if names.is_empty() {
        return Err(Error::invalid("no images named"));
    }
    Ok(http::stream(
        d.save_images(names).await?,
        Some("application/x-tar"),
    ))
}

/// `POST /images/load`: JSON messages, one `stream` line per loaded image.
///
/// As dockerd, the answer is `200` with the JSON stream even when the load fails: the error is its
/// last message (`errorDetail`), which the CLI prints and docker-py raises as `ImageLoadError`.
pub async fn load(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let reader = BodyReader::new(req.into_body());
    let msgs: Vec<JsonMessage> = match d.load_images(Box::new(reader)).await {
        Ok(lines) => lines
            .into_iter()
            .map(|l| JsonMessage::stream(format!("{l}\n")))
            .collect(),
        Err(e) => vec![JsonMessage::error(e.to_string(), None)],
    };
    Ok(messages(&msgs))
}

/// `X-Registry-Auth` (base64url JSON; absent or `{}`: anonymous).
pub fn registry_auth(req: &Request<Incoming>) -> Result<berth_registry::AuthConfig, Error> {
    let h = req
        .headers()
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(berth_registry::AuthConfig::from_header(h)?)
}

/// A JSON-message stream as dockerd sends it: one message per chunk, each ending in `\r\n`.
pub fn message_stream(mut rx: tokio::sync::mpsc::Receiver<JsonMessage>) -> Response<Body> {
    let (tx, out) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let mut b = serde_json::to_vec(&m).unwrap_or_default();
            b.extend_from_slice(b"\r\n");
            if tx.send(Bytes::from(b)).await.is_err() {
                return;
            }
        }
    });
    http::stream(out, Some("application/json"))
}

/// `POST /auth`.
pub async fn auth(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let auth: berth_registry::AuthConfig =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid auth body: {e}")))?;
    let out = d.login(auth).await?;
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({"IdentityToken": out.identity_token.unwrap_or_default(), "Status": out.status}),
    ))
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(d: &Arc<Daemon>, req: Request<Incoming>, q: &Query) -> Result<Response<Body>, Error> {
    let auth = registry_auth(&req)?;
    let term = q.get("term").unwrap_or("").to_string();
    let limit = match q.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse()
            .map_err(|_| Error::invalid(format!("invalid limit {l:?}")))?,
        _ => 0,
    };
    let found = d.search(&term, limit, &q.filters()?, auth).await?;
    Ok(http::json(StatusCode::OK, &found))
}
