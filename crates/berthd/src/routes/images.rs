use std::sync::Arc;

use berth_api::JsonMessage;
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
    Ok(http::json(StatusCode::OK, &d.images.list(&opts)?))
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
        if src != "-" {
            return Err(Error::invalid(format!(
                "importing from a URL ({src}) needs network access, which this berth build does not have; download the file and import it with '-'"
            )));
        }
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
        let reader = BodyReader::new(req.into_body());
        let id = d.import_image(Box::new(reader), opts).await?;
        return Ok(messages(&[JsonMessage::status(id)]));
    }
    if let Some(image) = q.get("fromImage") {
        let tag = q.get("tag").unwrap_or("");
        let reference = if tag.is_empty() || image.contains('@') {
            image.to_string()
        } else {
            format!("{image}:{tag}")
        };
        let (_, new) = d.pull_builtin(&reference).await?;
        let (name, tag) = match reference.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
            _ => (reference.clone(), "latest".to_string()),
        };
        let short = name
            .trim_start_matches("docker.io/")
            .trim_start_matches("library/");
        // Only what happened: the image is built into berth, nothing was fetched from a
        // registry, so there is no "Pulling from", no manifest digest and no download.
        return Ok(messages(&[JsonMessage::status(if new {
            format!(
                "Status: Installed built-in image for {short}:{tag} (berth has no registry client yet; nothing was downloaded)"
            )
        } else {
            format!("Status: Image is up to date for {short}:{tag} (built in)")
        })]));
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
        (&Method::GET, "json") => Ok(http::json(StatusCode::OK, &d.images.inspect_json(name)?)),
        (&Method::GET, "get") => save(d, vec![name.to_string()]).await,
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
