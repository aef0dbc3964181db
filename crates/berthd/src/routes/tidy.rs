//! history, the prune endpoints and `system df`. Prune answers carry dockerd's keys with `null`
//! for an empty list (`{"ImagesDeleted":null,"SpaceReclaimed":0}`).

use std::sync::Arc;

use berth_daemon::{Daemon, Error};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::http::{self, Body, Query};

/// `null` for an empty list, as Go encodes a nil slice.
fn list_or_null<T: serde::Serialize>(v: &[T]) -> serde_json::Value {
    if v.is_empty() {
        serde_json::Value::Null
    } else {
        json!(v)
    }
}

/// `GET /images/{name}/history`.
pub async fn history(d: &Arc<Daemon>, name: &str) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.image_history(name).await?))
}

/// `POST /images/prune?filters=`.
pub async fn images_prune(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let r = d.prune_images(q.filters()?).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"ImagesDeleted": list_or_null(&r.images_deleted), "SpaceReclaimed": r.space_reclaimed}),
    ))
}

/// `POST /containers/prune?filters=`.
pub async fn containers_prune(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let r = d.prune_containers(q.filters()?).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"ContainersDeleted": list_or_null(&r.deleted), "SpaceReclaimed": r.space_reclaimed}),
    ))
}

/// `POST /networks/prune` and `/build/prune` while berth has no user networks and no build
/// cache: dockerd's answer for an empty set (and its `prune` event for networks), so that the
/// docker CLI's `system prune` — which calls all of them — works. The filters are still
/// validated as dockerd validates them. Whoever adds networks or builds replaces the matching arm.
pub fn nothing_to_prune(d: &Arc<Daemon>, what: &str, q: &Query) -> Result<Response<Body>, Error> {
    let filters = q.filters()?;
    let accepted: &[&str] = match what {
        "networks" => &["label", "label!", "until"],
        _ => &[
            "until",
            "unused-for",
            "label",
            "label!",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ],
    };
    if let Some(k) = filters.keys().find(|k| !accepted.contains(&k.as_str())) {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    let body = match what {
        "networks" => {
            d.emit_prune("network", 0);
            json!({"NetworksDeleted": null})
        }
        _ => json!({"CachesDeleted": null, "SpaceReclaimed": 0}),
    };
    Ok(http::json(StatusCode::OK, &body))
}

/// `GET /system/df`.
pub async fn system_df(d: &Arc<Daemon>) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.disk_usage().await?))
}
