//! `POST /build`: the classic builder's API. The body is the context (a tar, maybe compressed,
//! or a bare Dockerfile); the answer is `200` with a JSON-message stream whose last message is
//! the error, if any (as dockerd: the HTTP status stays 200 once the build started).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_daemon::build::BuildRequest;
use berth_daemon::{Daemon, Error};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::http::{Body, BodyReader, Query};

fn json_map<T: serde::de::DeserializeOwned>(q: &Query, key: &str) -> Result<BTreeMap<String, T>, Error> {
    match q.get(key) {
        None | Some("") => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_str(s).map_err(|e| Error::invalid(format!("invalid {key} {s:?}: {e}"))),
    }
}

pub async fn build(d: &Arc<Daemon>, req: Request<Incoming>, q: &Query) -> Result<Response<Body>, Error> {
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let arch = berth_image::config::host_architecture();
        let mut parts = p.split('/');
        let (os, a) = (parts.next().unwrap_or(""), parts.next().unwrap_or(arch));
        if os != "linux" || a != arch {
            return Err(Error::invalid(format!(
                "platform {p} does not match this machine's linux/{arch}: berth runs no emulation"
            )));
        }
    }
    let network = q.get("networkmode").unwrap_or("").to_string();
    if !matches!(network.as_str(), "" | "default" | "none" | "host" | "bridge") {
        return Err(Error::invalid(format!(
            "network mode {network:?} is not supported for builds (default, none or host)"
        )));
    }
    let rm = match q.get("rm") {
        None => true,
        Some(_) => q.bool("rm"),
    };
    let target = q.get("target").filter(|t| !t.is_empty()).map(str::to_string);
    let auths = berth_registry::auth_configs_from_header(
        req.headers()
            .get("x-registry-config")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )?;
    // `remote=URL`: the context is downloaded by the daemon (the body is empty), as dockerd.
    let context: Box<dyn std::io::Read + Send> = match q.get("remote").filter(|r| !r.is_empty()) {
        Some(url) => d.remote_build_context(url).await?,
        None => Box::new(BodyReader::new(req.into_body())),
    };
    let request = BuildRequest {
        context,
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        build_args: json_map(q, "buildargs")?,
        no_cache: q.bool("nocache"),
        rm,
        force_rm: q.bool("forcerm"),
        pull: q.bool("pull"),
        quiet: q.bool("q"),
        labels: json_map(q, "labels")?,
        target,
        network,
        auths,
        cache_from: match q.get("cachefrom") {
            None | Some("") => Vec::new(),
            Some(s) => serde_json::from_str(s)
                .map_err(|e| Error::invalid(format!("invalid cachefrom {s:?}: {e}")))?,
        },
    };
    let rx = d.build(request).await?;
    Ok(crate::routes::images::message_stream(rx))
}
