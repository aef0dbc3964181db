//! The event bus behind `/events`: a broadcast channel for live subscribers plus a bounded history
//! for `--since`.

use berth_api::{Event, EventActor};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// At most this many past events are kept (Docker keeps 256)...
const HISTORY: usize = 1024;
/// ...in at most this many bytes of their JSON.
const HISTORY_BYTES: usize = 512 * 1024;

pub struct Events {
    tx: broadcast::Sender<Event>,
    history: Mutex<History>,
}

/// The past events, serialized one after another in a buffer allocated once. Kept as `Event`s
/// they were ~a dozen small allocations each, made while containers come and go: the last
/// thousand of them, scattered over the heap, kept ~6 MB of freed pages from going back to the
/// system after 1000 containers were removed (docs/design/daemon.md, "Memory").
struct History {
    bytes: VecDeque<u8>,
    lens: VecDeque<usize>,
}

impl History {
    fn new() -> History {
        History {
            bytes: VecDeque::with_capacity(HISTORY_BYTES),
            lens: VecDeque::with_capacity(HISTORY),
        }
    }

    fn push(&mut self, ev: &Event) {
        let Ok(json) = serde_json::to_vec(ev) else {
            return;
        };
        if json.len() > HISTORY_BYTES {
            return;
        }
        while self.lens.len() >= HISTORY || self.bytes.len() + json.len() > HISTORY_BYTES {
            let Some(n) = self.lens.pop_front() else {
                break;
            };
            self.bytes.drain(..n);
        }
        self.lens.push_back(json.len());
        self.bytes.extend(json);
    }

    /// The events, oldest first.
    fn events(&mut self) -> Vec<Event> {
        let all = self.bytes.make_contiguous();
        let mut out = Vec::with_capacity(self.lens.len());
        let mut at = 0;
        for &n in &self.lens {
            if let Ok(ev) = serde_json::from_slice(&all[at..at + n]) {
                out.push(ev);
            }
            at += n;
        }
        out
    }
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
            history: Mutex::new(History::new()),
        }
    }
}

impl Events {
    /// Records and broadcasts one event. `from` is the image for container events (legacy field).
    pub fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let nanos = berth_types::time::now_nanos();
        let legacy = kind == "container" || kind == "image";
        let from = if kind == "container" {
            attributes.get("image").cloned()
        } else {
            None
        };
        let ev = Event {
            status: legacy.then(|| action.to_string()),
            // Go's `omitempty`: a prune event (no actor) has `status` but no `id`.
            id: (legacy && !id.is_empty()).then(|| id.to_string()),
            from,
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".to_string(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        };
        self.history.lock().unwrap().push(&ev);
        let _ = self.tx.send(ev);
    }

    /// Past events (oldest first) and a receiver for the ones that follow, with no gap between.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let mut h = self.history.lock().unwrap();
        let rx = self.tx.subscribe();
        (h.events(), rx)
    }
}

/// Filters `/events` applies, as dockerd's `events.Filter`: all must match. `type` and `scope`
/// exactly; `event` exactly, or as a prefix for `exec_create`/`exec_start`/`health_status`
/// (whose actions carry the command); `container`, `volume`, `network`, `daemon` and the other
/// object kinds as a prefix of the actor's ID or `name` attribute — of every event, as dockerd
/// applies them; `image` exactly against the actor's ID or image name (`name` of an image event,
/// `image` of a container's), with or without its tag; every `label` (`key` or `key=value`) on
/// the actor's attributes. Keys dockerd does not know are ignored, as dockerd does.
pub fn matches(ev: &Event, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let exact = |key: &str, source: &str| {
        filters
            .get(key)
            .is_none_or(|vs| vs.is_empty() || vs.iter().any(|v| v == source))
    };
    let fuzzy = |key: &str, source: &str| {
        filters
            .get(key)
            .is_none_or(|vs| vs.is_empty() || vs.iter().any(|v| source.starts_with(v.as_str())))
    };
    let name = ev.actor.attributes.get("name").map(String::as_str).unwrap_or("");
    let by_name = |key: &str| fuzzy(key, &ev.actor.id) || fuzzy(key, name);
    let event_ok = {
        let prefixed = filters.get("event").is_some_and(|vs| {
            vs.iter()
                .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"))
        });
        if prefixed {
            fuzzy("event", &ev.action)
        } else {
            exact("event", &ev.action)
        }
    };
    let image_ok = {
        let image_name = if ev.kind == "image" {
            name
        } else {
            ev.actor.attributes.get("image").map(String::as_str).unwrap_or("")
        };
        exact("image", &ev.actor.id)
            || exact("image", image_name)
            || exact("image", strip_tag(&ev.actor.id))
            || exact("image", strip_tag(image_name))
    };
    let labels_ok = filters.get("label").is_none_or(|vs| {
        vs.iter().all(|v| match v.split_once('=') {
            Some((k, val)) => ev.actor.attributes.get(k).map(String::as_str) == Some(val),
            None => ev.actor.attributes.contains_key(v.as_str()),
        })
    });
    event_ok
        && exact("type", &ev.kind)
        && exact("scope", "local")
        && [
            "daemon",
            "container",
            "plugin",
            "volume",
            "network",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| by_name(k))
        && image_ok
        && labels_ok
}

/// An image reference without its tag (`busybox:latest` → `busybox`; a registry port stays).
fn strip_tag(r: &str) -> &str {
    let last = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[last..].rfind(':') {
        Some(i) => &r[..last + i],
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("name".to_string(), name.to_string())])
    }

    #[test]
    fn filters_follow_dockerds() {
        let e = Events::default();
        let mut c = attrs("web");
        c.insert("image".into(), "busybox".into());
        c.insert("tier".into(), "front".into());
        e.emit("container", "start", "c0ffee", c);
        e.emit("container", "exec_create: true ", "c0ffee", attrs("web"));
        e.emit("network", "connect", "n1", attrs("fnet"));
        e.emit("volume", "mount", "fvol", BTreeMap::new());
        e.emit("image", "tag", "sha256:abc", attrs("busybox:latest"));
        let (all, _rx) = e.subscribe();
        let pick = |f: &[(&str, &[&str])]| {
            let filters: BTreeMap<String, Vec<String>> = f
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect();
            all.iter()
                .filter(|ev| matches(ev, &filters))
                .map(|ev| format!("{} {}", ev.kind, ev.action))
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&[("network", &["fnet"])]), ["network connect"]);
        assert_eq!(pick(&[("volume", &["fv"])]), ["volume mount"]);
        // `container` is a prefix of any event's actor ID or name, as dockerd applies it.
        assert_eq!(
            pick(&[("container", &["c0f"])]),
            ["container start", "container exec_create: true "]
        );
        // An image by name without its tag: the image's events and its containers'.
        assert_eq!(pick(&[("image", &["busybox"])]), ["container start", "image tag"]);
        assert_eq!(
            pick(&[("event", &["exec_create"])]),
            ["container exec_create: true "]
        );
        assert_eq!(pick(&[("event", &["exec"])]), Vec::<String>::new());
        assert_eq!(pick(&[("scope", &["swarm"])]), Vec::<String>::new());
        assert_eq!(
            pick(&[("scope", &["local"]), ("type", &["volume", "network"])]),
            ["network connect", "volume mount"]
        );
        assert_eq!(pick(&[("daemon", &["nosuch"])]), Vec::<String>::new());
        // Every label must be there.
        assert_eq!(
            pick(&[("label", &["tier=front", "name=web"])]),
            ["container start"]
        );
        assert_eq!(pick(&[("label", &["tier=front", "nope"])]), Vec::<String>::new());
        assert_eq!(strip_tag("localhost:5000/a/b:1"), "localhost:5000/a/b");
        assert_eq!(strip_tag("localhost:5000/a"), "localhost:5000/a");
    }

    #[test]
    fn history_gives_back_the_events_in_order_and_keeps_only_the_last() {
        let e = Events::default();
        for i in 0..HISTORY + 10 {
            e.emit("container", "start", &format!("id{i}"), attrs(&format!("c{i}")));
        }
        let (past, _rx) = e.subscribe();
        assert_eq!(past.len(), HISTORY);
        assert_eq!(past[0].actor.id, "id10");
        assert_eq!(past[HISTORY - 1].actor.id, format!("id{}", HISTORY + 9));
        let last = &past[HISTORY - 1];
        assert_eq!(last.status.as_deref(), Some("start"));
        assert_eq!(last.actor.attributes, attrs(&format!("c{}", HISTORY + 9)));
    }

    #[test]
    fn history_stays_within_its_bytes_and_its_one_buffer() {
        let e = Events::default();
        let big = "x".repeat(HISTORY_BYTES / 8);
        for i in 0..20 {
            e.emit("container", "die", &format!("id{i}"), attrs(&big));
        }
        let h = e.history.lock().unwrap();
        assert!(h.bytes.len() <= HISTORY_BYTES);
        assert!(h.bytes.capacity() < 2 * HISTORY_BYTES, "the buffer grew");
        assert_eq!(h.lens.iter().sum::<usize>(), h.bytes.len());
        drop(h);
        let (past, _rx) = e.subscribe();
        assert!(past.len() >= 7 && past.len() < 20, "{}", past.len());
        assert_eq!(past.last().unwrap().actor.id, "id19");
        // An event larger than the whole history is not kept, and evicts nothing.
        e.emit("container", "die", "huge", attrs(&"y".repeat(HISTORY_BYTES)));
        let (again, _rx) = e.subscribe();
        assert_eq!(again.len(), past.len());
    }
}
