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

/// Filters `/events` applies: type, container, image, event (action), label.
pub fn matches(ev: &Event, filters: &BTreeMap<String, Vec<String>>) -> bool {
    for (key, vals) in filters {
        if vals.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "type" => vals.contains(&ev.kind),
            "event" => vals
                .iter()
                .any(|v| *v == ev.action || ev.action.starts_with(&format!("{v}:"))),
            "container" => {
                ev.kind == "container"
                    && vals.iter().any(|v| {
                        ev.actor.id.starts_with(v.as_str()) || ev.actor.attributes.get("name") == Some(v)
                    })
            }
            "image" => vals.iter().any(|v| {
                ev.actor.attributes.get("image") == Some(v)
                    || (ev.kind == "image"
                        && (ev.actor.id == *v || ev.actor.attributes.get("name") == Some(v)))
            }),
            "label" => vals.iter().any(|v| match v.split_once('=') {
                Some((k, val)) => ev.actor.attributes.get(k).map(String::as_str) == Some(val),
                None => ev.actor.attributes.contains_key(v),
            }),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("name".to_string(), name.to_string())])
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
