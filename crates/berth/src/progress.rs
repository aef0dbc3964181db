//! The JSON-message stream (pull, push, load, import) shown as the docker CLI shows it
//! (docker/docker `pkg/jsonmessage`): on a terminal, one line per layer id, redrawn in place with
//! a progress bar computed from `progressDetail`; elsewhere, only the lines whose status changes
//! (progress updates are left out).

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde_json::Value;

use crate::commands::status;

/// Displays the stream; returns the stream's error (as an exit status) when it carries one.
/// `aux` receives each `aux` object (push's digest, build's image ID).
pub fn display(
    r: &mut dyn BufRead,
    out: &mut dyn Write,
    terminal: bool,
    aux: &mut dyn FnMut(&Value),
) -> anyhow::Result<()> {
    let width = if terminal {
        crate::stream::term_size().map(|(_, w)| w as usize).unwrap_or(80)
    } else {
        0
    };
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let Ok(m) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
        if let Some(ed) = m.get("errorDetail").filter(|v| !v.is_null()) {
            let msg = ed.get("message").and_then(Value::as_str).unwrap_or(s("error"));
            let code = ed.get("code").and_then(Value::as_i64).unwrap_or(0);
            return Err(status(if code == 0 { 1 } else { code as i32 }, msg.to_owned()));
        }
        if !s("error").is_empty() {
            return Err(status(1, s("error").to_owned()));
        }
        if let Some(a) = m.get("aux") {
            aux(a);
            continue;
        }
        let progress = m
            .get("progressDetail")
            .filter(|p| p.is_object())
            .map(|p| Progress {
                current: p.get("current").and_then(Value::as_i64).unwrap_or(0),
                total: p.get("total").and_then(Value::as_i64).unwrap_or(0),
                start: p.get("start").and_then(Value::as_i64).unwrap_or(0),
            });
        let id = s("id");
        let mut diff = 0;
        if !id.is_empty() && (progress.is_some() || !s("progress").is_empty()) {
            let n = ids.len();
            let at = *ids.entry(id.to_string()).or_insert_with(|| {
                if terminal {
                    let _ = out.write_all(b"\n");
                }
                n
            });
            diff = ids.len() - at;
            if terminal {
                write!(out, "\x1b[{diff}A")?;
            }
        } else {
            // Something that is not progress: earlier lines are no longer redrawn.
            ids.clear();
        }
        let mut endl = "";
        let bar = progress.as_ref().map(|p| p.render(width)).unwrap_or_default();
        if terminal && s("stream").is_empty() && progress.is_some() {
            out.write_all(b"\x1b[2K\r")?;
            endl = "\r";
        } else if progress.is_some() && !bar.is_empty() {
            // No progress bars off a terminal.
            continue;
        }
        let mut text = String::new();
        if !id.is_empty() {
            text.push_str(&format!("{id}: "));
        }
        if progress.is_some() && terminal {
            text.push_str(&format!("{} {bar}{endl}", s("status")));
        } else if !s("progress").is_empty() {
            text.push_str(&format!("{} {}{endl}", s("status"), s("progress")));
        } else if !s("stream").is_empty() {
            text.push_str(&format!("{}{endl}", s("stream")));
        } else {
            text.push_str(&format!("{}{endl}\n", s("status")));
        }
        out.write_all(text.as_bytes())?;
        if !id.is_empty() && terminal && diff > 0 {
            write!(out, "\x1b[{diff}B")?;
        }
        out.flush()?;
    }
}

/// `progressDetail`.
struct Progress {
    current: i64,
    total: i64,
    start: i64,
}

impl Progress {
    /// docker's `JSONProgress.String()` for a terminal `width` columns wide.
    fn render(&self, width: usize) -> String {
        let mut out = berth_types::units::progress_bar(self.current, self.total, width);
        let pct = if self.total > 0 {
            ((self.current as f64 / self.total as f64 * 100.0) as i64 / 2).min(50)
        } else {
            50
        };
        if self.current > 0 && self.start > 0 && pct < 50 && width > 50 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let per = (now - self.start as f64).max(0.0) / self.current as f64;
            let secs = ((self.total - self.current) as f64 * per) as u64;
            out.push_str(&format!(" {}", go_duration(secs)));
        }
        out
    }
}

/// Go's `time.Duration.String()` for whole seconds (`1m5s`, `2h0m1s`, `0s`).
fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(input: &str, terminal: bool) -> String {
        let mut out = Vec::new();
        display(&mut input.as_bytes(), &mut out, terminal, &mut |_| {}).unwrap();
        String::from_utf8(out).unwrap()
    }

    const PULL: &str = concat!(
        "{\"status\":\"Pulling from test/big\",\"id\":\"1\"}\r\n",
        "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"4dd854b13e7f\"}\r\n",
        "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"a3ed95caeb02\"}\r\n",
        "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1000,\"total\":3000},\"progress\":\"[=>  ]\",\"id\":\"a3ed95caeb02\"}\r\n",
        "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"a3ed95caeb02\"}\r\n",
        "{\"status\":\"Digest: sha256:abc\"}\r\n",
        "{\"status\":\"Status: Downloaded newer image for x:1\"}\r\n",
    );

    #[test]
    fn off_a_terminal_only_status_changes_are_printed() {
        assert_eq!(
            show(PULL, false),
            "1: Pulling from test/big\n4dd854b13e7f: Already exists\na3ed95caeb02: Pulling fs layer\na3ed95caeb02: Pull complete\nDigest: sha256:abc\nStatus: Downloaded newer image for x:1\n"
        );
    }

    #[test]
    fn on_a_terminal_layers_are_redrawn_in_place() {
        let t = show(PULL, true);
        assert!(
            t.contains("\n\x1b[1A\x1b[2K\r4dd854b13e7f: Already exists \r"),
            "{t:?}"
        );
        // The second layer: its own line, then redrawn with the numbers.
        assert!(
            t.contains("\x1b[2K\ra3ed95caeb02: Downloading      1kB/3kB\r"),
            "{t:?}"
        );
        assert!(t.ends_with("Status: Downloaded newer image for x:1\n"), "{t:?}");
    }

    #[test]
    fn the_bar_is_dockers() {
        let p = Progress {
            current: 1_515_008,
            total: 1_984_197,
            start: 0,
        };
        assert_eq!(
            p.render(120),
            "[======================================>            ]  1.515MB/1.984MB"
        );
        let over = Progress {
            current: 2_129_920,
            total: 1_984_197,
            start: 0,
        };
        assert_eq!(
            over.render(120),
            "[==================================================>]   2.13MB"
        );
        assert_eq!(go_duration(65), "1m5s");
    }

    #[test]
    fn errors_and_aux_reach_the_caller() {
        let mut seen = Vec::new();
        let input = "{\"progressDetail\":{},\"aux\":{\"Tag\":\"1\",\"Digest\":\"sha256:x\",\"Size\":527}}\r\n{\"errorDetail\":{\"message\":\"denied\"},\"error\":\"denied\"}\r\n";
        let e = display(&mut input.as_bytes(), &mut Vec::new(), false, &mut |a| {
            seen.push(a.clone())
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "denied");
        assert_eq!(seen[0]["Digest"], "sha256:x");
    }
}
