//! Routing: strip the optional `/vX.Y` prefix, refuse versions above ours, dispatch by method and
//! path. Each handler parses its request into typed options and calls the daemon.

mod build;
mod containers;
mod exec;
mod images;
mod networks;
mod system;
mod tidy;
mod volumes;

use std::sync::Arc;

use berth_daemon::{Daemon, Error};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::http::{self, Body, Query};

pub async fn handle(d: Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (version, rest) = berth_api::split_version(&path);
    if let Some(v) = version {
        if berth_api::too_new(v) {
            return http::with_headers(http::message(
                StatusCode::BAD_REQUEST,
                format!(
                    "client version {}.{} is too new. Maximum supported API version is {}",
                    v.0,
                    v.1,
                    berth_api::API_VERSION
                ),
            ));
        }
    }
    let rest = rest.to_string();
    let q = Query::parse(req.uri().query());
    let resp = match route(d, req, &rest, q).await {
        Ok(r) => r,
        Err(e) => http::error(&e),
    };
    http::with_headers(resp)
}

async fn route(
    d: Arc<Daemon>,
    req: Request<Incoming>,
    path: &str,
    q: Query,
) -> Result<Response<Body>, Error> {
    let method = req.method().clone();
    let trimmed = path.trim_end_matches('/');
    // Image names contain slashes, so image routes are matched on prefix and suffix.
    if let Some(r) = trimmed.strip_prefix("/images/") {
        if !matches!(r, "json" | "create" | "load" | "get" | "search" | "prune") {
            return images::by_name(&d, req, &method, r, &q).await;
        }
    }
    let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    match (&method, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(system::ping(&method)),
        (&Method::GET, ["version"]) => Ok(system::version(&d)),
        (&Method::GET, ["info"]) => Ok(system::info(&d)),
        (&Method::GET, ["events"]) => system::events(&d, &q),

        (&Method::GET, ["containers", "json"]) => containers::list(&d, &q),
        (&Method::POST, ["containers", "create"]) => containers::create(&d, req, &q).await,
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(&d, id, &q),
        (&Method::POST, ["containers", id, "start"]) => containers::start(&d, id).await,
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(&d, id, &q).await,
        (&Method::POST, ["containers", id, "restart"]) => containers::restart(&d, id, &q).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(&d, id, &q).await,
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(&d, id, &q),
        (&Method::POST, ["containers", id, "attach"]) => containers::attach(&d, req, id, &q),
        (&Method::POST, ["containers", id, "rename"]) => containers::rename(&d, id, &q),
        (&Method::POST, ["containers", id, "resize"]) => containers::resize(&d, id, &q).await,
        (&Method::GET, ["containers", id, "logs"]) => containers::logs(&d, id, &q),
        (&Method::DELETE, ["containers", id]) => containers::remove(&d, id, &q).await,
        // `rm --link /parent/alias` (docker's CLI sends `containers//parent/alias`).
        (&Method::DELETE, ["containers", "", parent, alias] | ["containers", parent, alias])
            if q.bool("link") =>
        {
            containers::remove_link(&d, parent, alias).await
        }
        (&Method::POST, ["containers", id, "pause"]) => containers::pause(&d, id).await,
        (&Method::POST, ["containers", id, "unpause"]) => containers::unpause(&d, id).await,
        (&Method::GET, ["containers", id, "top"]) => containers::top(&d, id, &q).await,
        (&Method::GET, ["containers", id, "stats"]) => containers::stats(&d, id, &q),
        (&Method::POST, ["containers", id, "update"]) => containers::update(&d, req, id).await,
        (&Method::POST, ["containers", id, "exec"]) => exec::create(&d, req, id).await,
        (&Method::GET, ["containers", id, "changes"]) => containers::changes(&d, id).await,
        (&Method::GET, ["containers", id, "export"]) => containers::export(&d, id).await,
        (&Method::HEAD, ["containers", id, "archive"]) => containers::archive_head(&d, id, &q).await,
        (&Method::GET, ["containers", id, "archive"]) => containers::archive_get(&d, id, &q).await,
        (&Method::PUT, ["containers", id, "archive"]) => containers::archive_put(&d, req, id, &q).await,
        (&Method::POST, ["commit"]) => containers::commit(&d, &q).await,
        (&Method::GET, ["images", "get"]) => images::save(&d, q.all("names")).await,
        (&Method::POST, ["images", "load"]) => images::load(&d, req).await,
        (&Method::POST, ["exec", id, "start"]) => exec::start(&d, req, id).await,
        (&Method::GET, ["exec", id, "json"]) => exec::inspect(&d, id),
        (&Method::POST, ["exec", id, "resize"]) => exec::resize(&d, id, &q).await,

        (&Method::GET, ["images", "json"]) => images::list(&d, &q),
        (&Method::POST, ["images", "prune"]) => tidy::images_prune(&d, &q).await,
        (&Method::POST, ["containers", "prune"]) => tidy::containers_prune(&d, &q).await,
        (&Method::GET, ["volumes"]) => volumes::list(&d, &q),
        (&Method::POST, ["volumes", "create"]) => volumes::create(&d, req).await,
        (&Method::POST, ["volumes", "prune"]) => volumes::prune(&d, &q).await,
        (&Method::GET, ["volumes", name]) => volumes::inspect(&d, name),
        (&Method::DELETE, ["volumes", name]) => volumes::remove(&d, name, &q).await,
        (&Method::POST, ["build", "prune"]) => tidy::nothing_to_prune(&d, segs[0], &q),
        (&Method::GET, ["networks"]) => networks::list(&d, &q),
        (&Method::POST, ["networks", "create"]) => networks::create(&d, req).await,
        (&Method::POST, ["networks", "prune"]) => networks::prune(&d, &q).await,
        (&Method::GET, ["networks", id]) => networks::inspect(&d, id),
        (&Method::POST, ["networks", id, "connect"]) => networks::connect(&d, req, id).await,
        (&Method::POST, ["networks", id, "disconnect"]) => networks::disconnect(&d, req, id).await,
        (&Method::DELETE, ["networks", id]) => networks::remove(&d, id).await,
        (&Method::GET, ["system", "df"]) => tidy::system_df(&d).await,
        (&Method::POST, ["build"]) => build::build(&d, req, &q).await,
        (&Method::POST, ["images", "create"]) => images::create(&d, req, &q).await,
        (&Method::POST, ["auth"]) => images::auth(&d, req).await,
        (&Method::GET, ["images", "search"]) => images::search(&d, req, &q).await,

        _ => Ok(http::message(StatusCode::NOT_FOUND, "page not found")),
    }
}
