//! `/networks`: list, inspect, create, delete, prune.

use std::sync::Arc;

use berth_daemon::{Daemon, Error};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::http::{self, Body, Query};

pub fn list(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.list_networks(&q.filters()?)?))
}

pub fn inspect(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.inspect_network(id)?))
}

pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let body: berth_daemon::networks::CreateRequest = http::parse_json(&body)?;
    let d = d.clone();
    let id = tokio::task::spawn_blocking(move || d.create_network(body)).await??;
    Ok(http::json(StatusCode::CREATED, &json!({"Id": id, "Warning": ""})))
}

pub async fn remove(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    let d = d.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || d.remove_network(&id)).await??;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn prune(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let filters = q.filters()?;
    if let Some(k) = filters
        .keys()
        .find(|k| !["label", "label!", "until"].contains(&k.as_str()))
    {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    let d = d.clone();
    let removed = tokio::task::spawn_blocking(move || d.prune_networks(&filters)).await??;
    let list = if removed.is_empty() {
        json!(null)
    } else {
        json!(removed)
    };
    Ok(http::json(StatusCode::OK, &json!({"NetworksDeleted": list})))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<berth_api::models::EndpointSettings>,
    force: bool,
}

/// `POST /networks/{id}/connect` → 200 with an empty body, as dockerd.
pub async fn connect(d: &Arc<Daemon>, req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let b: ConnectBody = http::parse_json(&body)?;
    let ep = b.endpoint_config.unwrap_or_default();
    let aliases = ep.aliases.unwrap_or_default();
    let ip = ep
        .ipam_config
        .and_then(|i| i.ipv4_address)
        .filter(|s| !s.is_empty());
    d.connect(id, &b.container, aliases, ip).await?;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect` → 200 with an empty body.
pub async fn disconnect(d: &Arc<Daemon>, req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let b: ConnectBody = http::parse_json(&body)?;
    d.disconnect(id, &b.container, b.force).await?;
    Ok(http::empty(StatusCode::OK))
}
