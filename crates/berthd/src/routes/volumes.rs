//! `/volumes`: list, create, inspect, remove, prune, with dockerd's shapes
//! (`{"Volumes":[…],"Warnings":null}`, `{"VolumesDeleted":[],"SpaceReclaimed":0}`).

use std::sync::Arc;

use berth_daemon::{Daemon, Error, VolumeCreate};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::http::{self, Body, Query};

/// `GET /volumes?filters=`.
pub fn list(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let volumes = d.volume_list(&q.filters()?)?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"Volumes": volumes, "Warnings": null}),
    ))
}

/// `POST /volumes/create`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let body: VolumeCreate = http::parse_json(&body)?;
    let v = d.volume_create(body).await?;
    Ok(http::json(StatusCode::CREATED, &v))
}

/// `GET /volumes/{name}`.
pub fn inspect(d: &Arc<Daemon>, name: &str) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.volume_inspect(name)?))
}

/// `DELETE /volumes/{name}[?force=1]`.
pub async fn remove(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Response<Body>, Error> {
    d.volume_remove(name, q.bool("force")).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters=`.
pub async fn prune(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let r = d.volume_prune(q.filters()?).await?;
    Ok(http::json(StatusCode::OK, &r))
}
