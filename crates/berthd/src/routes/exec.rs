use std::sync::Arc;

use berth_daemon::container::ExecStartOptions;
use berth_daemon::{Daemon, Error};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::http::{self, Body, Query};

pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let body = http::read_body(req.into_body()).await?;
    let config: berth_api::models::ExecConfig = http::parse_json(&body)?;
    let exec_id = d.exec_create(id, config)?;
    Ok(http::json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": exec_id }),
    ))
}

#[derive(serde::Deserialize, Default)]
struct StartBody {
    #[serde(rename = "Detach", default)]
    detach: bool,
    #[serde(rename = "Tty", default)]
    tty: bool,
    #[serde(rename = "ConsoleSize", default)]
    console_size: Option<Vec<u16>>,
}

/// Reads the body first, then answers `101` (or `200` when detached) and runs the exec.
pub async fn start(d: &Arc<Daemon>, mut req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = http::read_body(req.into_body()).await?;
    let body: StartBody = http::parse_json(&body)?;
    let console_size = match body.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => Some((*h, *w)),
        _ => None,
    };
    let pending = d.exec_start(
        id,
        ExecStartOptions {
            detach: body.detach,
            tty: body.tty,
            console_size,
        },
    )?;
    if body.detach {
        // Output goes nowhere; the exec runs to completion in the background.
        let (sink, mut drain) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut drain, &mut tokio::io::sink()).await;
        });
        tokio::spawn(pending.run(sink));
        return Ok(http::empty(StatusCode::OK));
    }
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => pending.run(TokioIo::new(up)).await,
            Err(e) => eprintln!("berthd: exec upgrade failed: {e}"),
        }
    });
    Ok(http::upgraded())
}

pub fn inspect(d: &Arc<Daemon>, id: &str) -> Result<Response<Body>, Error> {
    Ok(http::json(StatusCode::OK, &d.exec_inspect(id)?))
}

pub async fn resize(d: &Arc<Daemon>, id: &str, q: &Query) -> Result<Response<Body>, Error> {
    let h = q.int("h")?.unwrap_or(0);
    let w = q.int("w")?.unwrap_or(0);
    d.exec_resize(id, h as u16, w as u16).await?;
    Ok(http::empty(StatusCode::OK))
}
