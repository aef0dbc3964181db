use std::sync::Arc;

use berth_daemon::container::{AttachOptions, CreateOptions, ListOptions, LogsOptions, WaitCondition};
use berth_daemon::{Daemon, Error};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::http::{self, Body, Query};

pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>, q: &Query) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let mut value: serde_json::Value = http::parse_json(&body)?;
    docker_py_spellings(&mut value);
    let mut kmem = None;
    if let Some(host) = value.get("HostConfig") {
        check_restart_policy(host)?;
        check_mount_types(host)?;
        kmem = kernel_memory(host)?;
    }
    let body = if value.is_null() {
        Default::default()
    } else {
        serde_json::from_value(value).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?
    };
    let (id, warnings) = d
        .create(CreateOptions {
            name: q.get("name").map(String::from),
            body,
        })
        .await?;
    let warnings: Vec<String> = kmem.into_iter().chain(warnings).collect();
    Ok(http::json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": id, "Warnings": warnings }),
    ))
}

/// A kernel memory limit (`KernelMemory`, which the API 1.41 schema has and the models do not):
/// dockerd 20.10 takes it with a warning and checks its minimum; berth does not write it: kernels
/// since 5.4 deprecate it, and 6.x accept the write and keep no limit.
fn kernel_memory(host: &serde_json::Value) -> Result<Option<String>, Error> {
    match host
        .get("KernelMemory")
        .and_then(|k| k.as_i64())
        .filter(|k| *k > 0)
    {
        None => Ok(None),
        Some(k) if k < 6 * 1024 * 1024 => Err(Error::invalid("Minimum kernel memory limit allowed is 6MB")),
        Some(_) => Ok(Some(
            "Specifying a kernel memory limit is deprecated and will be removed in a future release.".into(),
        )),
    }
}

/// dockerd's `validateRestartPolicy` on a create's `HostConfig` or an update's body, before the
/// policy's name is read into the schema's list of names (whose error would name the schema).
fn check_restart_policy(host: &serde_json::Value) -> Result<(), Error> {
    let Some(p) = host.get("RestartPolicy").filter(|p| !p.is_null()) else {
        return Ok(());
    };
    let name = p.get("Name").and_then(|n| n.as_str()).unwrap_or("");
    let count = p.get("MaximumRetryCount").and_then(|c| c.as_i64()).unwrap_or(0);
    match name {
        "always" | "unless-stopped" | "no" if count != 0 => Err(Error::invalid(format!(
            "maximum retry count cannot be used with restart policy '{name}'"
        ))),
        "on-failure" if count < 0 => Err(Error::invalid("maximum retry count cannot be negative")),
        "" | "always" | "unless-stopped" | "no" | "on-failure" => Ok(()),
        _ => Err(Error::invalid(format!("invalid restart policy '{name}'"))),
    }
}

/// `HostConfig.Mounts[].Type` as dockerd checks it, before the type is read into the schema's
/// list (whose error would name the schema).
fn check_mount_types(host: &serde_json::Value) -> Result<(), Error> {
    for m in host
        .get("Mounts")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
    {
        let t = m.get("Type").and_then(|t| t.as_str()).unwrap_or("");
        if !matches!(t, "bind" | "volume" | "tmpfs" | "npipe" | "image" | "cluster") {
            return Err(Error::invalid(format!(
                "invalid mount config for type {t:?}: mount type unknown"
            )));
        }
    }
    Ok(())
}

/// dockerd reads JSON keys case-insensitively (Go's decoder); docker-py spells two of
/// `HostConfig`'s keys in a case the API's schema does not (`CPURealtimePeriod`,
/// `CPURealtimeRuntime`). Those are renamed to the schema's spelling.
fn docker_py_spellings(body: &mut serde_json::Value) {
    let Some(host) = body.get_mut("HostConfig").and_then(|h| h.as_object_mut()) else {
        return;
    };
    for (py, api) in [
        ("CPURealtimePeriod", "CpuRealtimePeriod"),
        ("CPURealtimeRuntime", "CpuRealtimeRuntime"),
    ] {
        if let Some(v) = host.remove(py) {
            host.entry(api).or_insert(v);
        }
    }
}

pub fn list(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let opts = ListOptions {
        all: q.bool("all"),
        limit: q.int("limit")?.filter(|n| *n > 0).map(|n| n as usize),
        size: q.bool("size"),
        filters: q.filters()?,
    };
    Ok(http::json(StatusCode::OK, &d.list_containers(&opts)?))
}

pub fn inspect(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    Ok(http::json(
        StatusCode::OK,
        &d.inspect_container(id, q.bool("size"))?,
    ))
}

pub async fn start(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    d.start(id).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn stop(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    d.stop(id, q.int("t")?).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn restart(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    d.restart(id, q.int("t")?).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn kill(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    d.kill(id, q.get("signal")).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// Headers go out at once; the body when the condition is met (the CLI sends `start` only after
/// it has the headers). A client that leaves early just drops the body.
pub fn wait(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let cond = WaitCondition::parse(q.get("condition").unwrap_or(""))?;
    let fut = d.wait(id, cond)?;
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        tokio::select! {
            _ = tx.closed() => {}
            code = fut => {
                let body = match code {
                    Ok(c) => serde_json::json!({"Error": null, "StatusCode": c}),
                    Err(e) => serde_json::json!({"Error": {"Message": e.to_string()}, "StatusCode": -1}),
                };
                let mut b = serde_json::to_vec(&body).unwrap_or_default();
                b.push(b'\n');
                let _ = tx.send(Bytes::from(b)).await;
            }
        }
    });
    Ok(http::stream(rx, Some("application/json")))
}

/// Hijack: subscribe now, answer 101, then run the stream on the upgraded connection.
pub fn attach(
    d: &Arc<Daemon>,
    mut req: Request<Incoming>,
    id: &str,
    q: &Query,
) -> Result<Response<Body>, Error> {
    let opts = AttachOptions {
        stream: q.bool("stream"),
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        logs: q.bool("logs"),
        detach_keys: q.get("detachKeys").map(String::from),
    };
    let pending = d.attach(id, opts)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => pending.run(TokioIo::new(up)).await,
            Err(e) => eprintln!("berthd: attach upgrade failed: {e}"),
        }
    });
    Ok(http::upgraded())
}

pub fn rename(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let name = q.get("name").unwrap_or("");
    d.rename(id, name)?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn resize(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let h = q.int("h")?.unwrap_or(0);
    let w = q.int("w")?.unwrap_or(0);
    d.resize(id, h as u16, w as u16).await?;
    Ok(http::empty(StatusCode::OK))
}

pub fn logs(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr"));
    if !stdout && !stderr {
        return Err(Error::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    // dockerd's reading: a count that does not parse, or a negative one, means all lines.
    let tail = q
        .get("tail")
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|n| usize::try_from(n).ok());
    let secs = |k: &str| -> Result<i64, Error> {
        match q.get(k).filter(|s| !s.is_empty()) {
            None => Ok(0),
            Some(s) => {
                let (a, b) = s.split_once('.').unwrap_or((s, "0"));
                let a: i64 = a
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid {k}: {s}")))?;
                let mut f: String = b.chars().take(9).collect();
                while f.len() < 9 {
                    f.push('0');
                }
                // Saturating: the CLI sends a far date (`--since 2999-01-01`) as seconds whose
                // nanoseconds overflow; a wrapped value read as no bound (or the wrong one).
                Ok(a.saturating_mul(1_000_000_000)
                    .saturating_add(f.parse::<i64>().unwrap_or(0)))
            }
        }
    };
    let opts = LogsOptions {
        follow: q.bool("follow"),
        stdout,
        stderr,
        since: secs("since")?,
        until: secs("until")?,
        timestamps: q.bool("timestamps"),
        tail,
        details: q.bool("details"),
    };
    let rx = d.logs(id, opts)?;
    Ok(http::stream(rx, None))
}

pub async fn remove(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    if q.bool("link") {
        // A link name has a parent: `/web/db`; a bare name is the container's own.
        return Err(Error::internal("Conflict, cannot remove the default link name."));
    }
    d.remove(id, q.bool("force"), q.bool("v")).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{parent}/{alias}?link=1`.
pub async fn remove_link(d: &Arc<Daemon>, parent: &str, alias: &str) -> Result<Response<Body>, Error> {
    d.remove_link(parent, alias).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn pause(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    d.pause(id).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn unpause(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    d.unpause(id).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn top(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    Ok(http::json(
        StatusCode::OK,
        &d.top(id, q.get("ps_args").unwrap_or("")).await?,
    ))
}

pub fn stats(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let stream = q.get("stream").map(berth_api::bool_value).unwrap_or(true);
    let rx = d.stats(id, stream, q.bool("one-shot"))?;
    Ok(http::stream(rx, Some("application/json")))
}

pub async fn update(d: &Arc<Daemon>, req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let value: serde_json::Value = http::parse_json(&body)?;
    check_restart_policy(&value)?;
    let kmem = kernel_memory(&value)?;
    let body: berth_api::models::HostConfig = if value.is_null() {
        Default::default()
    } else {
        serde_json::from_value(value).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?
    };
    let warnings: Vec<String> = kmem.into_iter().chain(d.update(id, body).await?).collect();
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({ "Warnings": warnings }),
    ))
}

pub async fn changes(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    let changes = d.changes(id).await?;
    // dockerd answers `null` when nothing changed.
    if changes.is_empty() {
        return Ok(http::json(StatusCode::OK, &serde_json::Value::Null));
    }
    Ok(http::json(StatusCode::OK, &changes))
}

pub async fn export(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    Ok(http::stream(d.export(id).await?, Some("application/x-tar")))
}

const PATH_STAT: &str = "X-Docker-Container-Path-Stat";

fn archive_path(q: &Query) -> Result<String, Error> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(Error::invalid("path is required")),
    }
}

pub async fn archive_head(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let st = d.archive_stat(id, &archive_path(q)?).await?;
    let mut r = http::empty(StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&st.to_header_value()) {
        r.headers_mut().insert(PATH_STAT, v);
    }
    Ok(r)
}

pub async fn archive_get(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let (st, rx) = d.archive_get(id, &archive_path(q)?).await?;
    let mut r = http::stream(rx, Some("application/x-tar"));
    if let Ok(v) = hyper::header::HeaderValue::from_str(&st.to_header_value()) {
        r.headers_mut().insert(PATH_STAT, v);
    }
    Ok(r)
}

pub async fn archive_put(
    d: &Arc<Daemon>,
    req: Request<Incoming>,
    id: &str,
    q: &Query,
) -> Result<Response<Body>, Error> {
    let path = archive_path(q)?;
    let opts = berth_image::PutOptions {
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
        copy_uid_gid: q.bool("copyUIDGID"),
    };
    let reader = http::BodyReader::new(req.into_body());
    d.archive_put(id, &path, Box::new(reader), opts).await?;
    Ok(http::empty(StatusCode::OK))
}

pub async fn commit(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let container = q.get("container").unwrap_or("");
    if container.is_empty() {
        return Err(Error::invalid("a container name or ID is required"));
    }
    let repo = q.get("repo").unwrap_or("");
    let tag = q.get("tag").unwrap_or("");
    let repo_tag = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo.to_string()),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let pause = q.get("pause").map(berth_api::bool_value).unwrap_or(true);
    let id = d
        .commit(
            container,
            repo_tag,
            q.get("comment").unwrap_or("").to_string(),
            q.get("author").unwrap_or("").to_string(),
            q.all("changes"),
            pause,
        )
        .await?;
    Ok(http::json(StatusCode::CREATED, &serde_json::json!({ "Id": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_mount_types_are_dockerds_error() {
        let host = serde_json::json!({"Mounts": [{"Type": "bind"}, {"Type": "nope"}]});
        assert_eq!(
            check_mount_types(&host).unwrap_err().to_string(),
            "invalid mount config for type \"nope\": mount type unknown"
        );
        assert!(check_mount_types(&serde_json::json!({"Mounts": [{"Type": "tmpfs"}]})).is_ok());
    }

    #[test]
    fn restart_policies_are_checked_as_dockerd_does() {
        let check = |p: serde_json::Value| {
            check_restart_policy(&serde_json::json!({ "RestartPolicy": p })).map_err(|e| e.to_string())
        };
        assert!(check(serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3})).is_ok());
        assert!(check(serde_json::json!({"Name": ""})).is_ok());
        assert!(check(serde_json::Value::Null).is_ok());
        assert_eq!(
            check(serde_json::json!({"Name": "nope"})).unwrap_err(),
            "invalid restart policy 'nope'"
        );
        assert_eq!(
            check(serde_json::json!({"Name": "always", "MaximumRetryCount": 3})).unwrap_err(),
            "maximum retry count cannot be used with restart policy 'always'"
        );
        assert_eq!(
            check(serde_json::json!({"Name": "on-failure", "MaximumRetryCount": -1})).unwrap_err(),
            "maximum retry count cannot be negative"
        );
    }
}
