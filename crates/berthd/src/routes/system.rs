use std::sync::Arc;

use berth_daemon::{cgroup_v1_file, events, Daemon, Error};
use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use hyper::{Method, Response, StatusCode};
use tokio::sync::{broadcast, mpsc};

use crate::http::{self, Body, Query};

/// `HEAD`/`GET /_ping`: `OK` with dockerd's cache headers.
pub fn ping(method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(b"OK")
    };
    let mut r = Response::new(http::full(body));
    let h = r.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if method == Method::HEAD {
        h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

pub fn version(d: &Arc<Daemon>) -> Response<Body> {
    http::json(StatusCode::OK, &d.version())
}

pub fn info(d: &Arc<Daemon>) -> Response<Body> {
    let info = d.info();
    let mut v = serde_json::to_value(&info).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        // Keys the CLI reads that the models leave out when empty.
        o.insert(
            "RegistryConfig".into(),
            serde_json::json!({
                "AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": insecure_cidrs(&d.config.registry.insecure),
                "IndexConfigs": index_configs(&d.config.registry),
                "Mirrors": d.config.registry.mirrors,
            }),
        );
        o.insert(
            "Swarm".into(),
            serde_json::json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
        );
        o.insert(
            "Plugins".into(),
            serde_json::json!({"Volume": ["local"], "Network": ["host", "null"], "Authorization": null, "Log": ["json-file"]}),
        );
        o.insert(
            "Runtimes".into(),
            serde_json::json!({ berth_daemon::RUNTIME: {"path": "berth-shim"} }),
        );
        o.insert("NEventsListener".into(), serde_json::json!(0));
        // Keys dockerd always has (`docker info -f '{{.HttpProxy}}'` fails on a missing one).
        let bridge_nf = |f: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/bridge/{f}")).is_ok_and(|v| v.trim() == "1")
        };
        let proxies = &d.config.registry.proxies;
        let or_empty = |p: &Option<String>| serde_json::json!(p.clone().unwrap_or_default());
        let threads = std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(0);
        let none = serde_json::json!({"ID": "", "Expected": ""});
        for (k, v) in [
            (
                "BridgeNfIptables",
                serde_json::json!(bridge_nf("bridge-nf-call-iptables")),
            ),
            (
                "BridgeNfIp6tables",
                serde_json::json!(bridge_nf("bridge-nf-call-ip6tables")),
            ),
            ("HttpProxy", or_empty(&proxies.http_proxy)),
            ("HttpsProxy", or_empty(&proxies.https_proxy)),
            ("NoProxy", or_empty(&proxies.no_proxy)),
            // berthd has no goroutines; its threads are the nearest count.
            ("NGoroutines", serde_json::json!(threads)),
            ("ContainerdCommit", none.clone()),
            ("RuncCommit", none.clone()),
            ("InitCommit", none),
            ("InitBinary", serde_json::json!("docker-init")),
            ("GenericResources", serde_json::Value::Null),
            ("Isolation", serde_json::json!("")),
            // Whether the v1 memory controller has kmem and kmem.tcp limits, as dockerd 20.10
            // (API 1.41) reads them: their files exist (false on cgroup v2).
            (
                "KernelMemory",
                serde_json::json!(cgroup_v1_file("memory", "memory.kmem.limit_in_bytes")),
            ),
            (
                "KernelMemoryTCP",
                serde_json::json!(cgroup_v1_file("memory", "memory.kmem.tcp.limit_in_bytes")),
            ),
        ] {
            o.entry(k).or_insert(v);
        }
    }
    http::json(StatusCode::OK, &v)
}

/// `GET /events`: history since `since`, then live events until `until` or the client leaves.
pub fn events(d: &Arc<Daemon>, q: &Query) -> Result<Response<Body>, Error> {
    let filters = q.filters()?;
    let since = parse_time(q.get("since"))?;
    let until = parse_time(q.get("until"))?;
    let (past, mut rx) = d.events.subscribe();
    let (tx, body) = mpsc::channel::<Bytes>(64);
    let now = berth_types::time::now_nanos();
    tokio::spawn(async move {
        let line = |e: &berth_api::Event| {
            let mut b = serde_json::to_vec(e).unwrap_or_default();
            b.push(b'\n');
            Bytes::from(b)
        };
        let in_window = |t: i64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u);
        if since.is_some() {
            for e in past
                .iter()
                .filter(|e| in_window(e.time_nano) && events::matches(e, &filters))
            {
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
        }
        if let Some(u) = until {
            if u <= now {
                return;
            }
        }
        let deadline = until
            .map(|u| tokio::time::Instant::now() + std::time::Duration::from_nanos((u - now).max(0) as u64));
        loop {
            let next = async {
                match deadline {
                    Some(dl) => tokio::time::timeout_at(dl, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                _ = tx.closed() => return,
                r = next => match r {
                    None => return,
                    Some(Ok(e)) => {
                        if events::matches(&e, &filters) && tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Some(Err(broadcast::error::RecvError::Closed)) => return,
                }
            }
        }
    });
    Ok(http::stream(body, Some("application/json")))
}

/// `since`/`until`: unix seconds, possibly fractional (`1795377641.123`).
fn parse_time(v: Option<&str>) -> Result<Option<i64>, Error> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
            let secs: i64 = secs
                .parse()
                .map_err(|_| Error::invalid(format!("invalid timestamp: {s}")))?;
            let mut f = frac.chars().take(9).collect::<String>();
            while f.len() < 9 {
                f.push('0');
            }
            let nanos: i64 = f.parse().unwrap_or(0);
            Ok(Some(secs * 1_000_000_000 + nanos))
        }
    }
}

/// `RegistryConfig.InsecureRegistryCIDRs`: loopback, as dockerd, and the CIDRs daemon.json gives.
fn insecure_cidrs(insecure: &[String]) -> Vec<String> {
    let mut out = vec!["127.0.0.0/8".to_string()];
    out.extend(insecure.iter().filter(|s| s.contains('/')).cloned());
    out
}

/// `RegistryConfig.IndexConfigs`: Docker Hub (with the mirrors) and each insecure registry named
/// by host, in dockerd's shape.
fn index_configs(r: &berth_daemon::config::RegistrySettings) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "docker.io".into(),
        serde_json::json!({"Name": "docker.io", "Mirrors": r.mirrors, "Secure": true, "Official": true}),
    );
    for host in r.insecure.iter().filter(|s| !s.contains('/')) {
        m.insert(
            host.clone(),
            serde_json::json!({"Name": host, "Mirrors": [], "Secure": false, "Official": false}),
        );
    }
    serde_json::Value::Object(m)
}
