//! The event bus behind `/events`: a broadcast channel for live subscribers plus a bounded history
//! for `--since`.

use berth_api::{Event, EventActor};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

const HISTORY: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
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
        {
            let mut h = self.history.lock().unwrap();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// Past events (oldest first) and a receiver for the ones that follow, with no gap between.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self.history.lock().unwrap();
        let rx = self.tx.subscribe();
        (h.iter().cloned().collect(), rx)
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
