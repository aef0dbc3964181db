//! `berth events`: the daemon's event stream, printed as docker does.

use std::io::Write;

use crate::client::{filters_json, Body, Query};
use crate::format::now_f64;
use crate::json::Val;
use crate::template::Template;

use super::logs::get_timestamp;
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth events [OPTIONS]",
    after_help = "Examples:\n  berth events --since 10m --filter type=container\n  berth events --format '{{.Type}} {{.Action}}'"
)]
pub struct Args {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
}

/// `2026-11-22T20:00:42.345928712Z container create 31ff… (image=busybox, name=evx)`.
pub fn pretty(e: &serde_json::Value) -> String {
    let mut s = String::new();
    let nanos = e["timeNano"].as_i64().unwrap_or(0);
    let secs = e["time"].as_i64().unwrap_or(0);
    if nanos != 0 || secs != 0 {
        let t = if nanos != 0 {
            nanos
        } else {
            secs.saturating_mul(1_000_000_000)
        };
        s.push_str(&berth_types::time::rfc3339_nano_fixed(t));
        s.push(' ');
    }
    let actor = &e["Actor"];
    s.push_str(&format!(
        "{} {} {}",
        e["Type"].as_str().unwrap_or(""),
        e["Action"].as_str().unwrap_or(""),
        actor["ID"].as_str().unwrap_or("")
    ));
    if let Some(attrs) = actor["Attributes"].as_object().filter(|m| !m.is_empty()) {
        let mut kv: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        kv.sort();
        s.push_str(&format!(" ({})", kv.join(", ")));
    }
    s.push('\n');
    s
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let now = now_f64();
    let mut q = Query::new();
    if let Some(s) = &a.since {
        q.add("since", get_timestamp(s, now)?);
    }
    if let Some(u) = &a.until {
        q.add("until", get_timestamp(u, now)?);
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.add("filters", f);
    }
    let tmpl = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}").map_err(anyhow::Error::msg)?),
        Some(f) => Some(Template::parse(f).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?),
    };
    let mut resp = ctx
        .client
        .call("GET", &format!("/events{}", q.encode()), Body::Empty)?;
    let r = resp.reader();
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(0);
        }
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let text = match &tmpl {
            Some(t) => {
                let v = Val::parse(l.as_bytes()).map_err(anyhow::Error::msg)?;
                format!(
                    "{}\n",
                    t.render_lenient(&v)
                        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?
                )
            }
            None => pretty(&serde_json::from_str(l)?),
        };
        if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_print_like_docker() {
        let e = serde_json::json!({"status":"create","id":"31ff","Type":"container","Action":"create",
            "Actor":{"ID":"31ff","Attributes":{"name":"evx","image":"busybox"}},"time":1795377642,"timeNano":1795377642345928712i64});
        assert_eq!(
            super::pretty(&e),
            "2026-11-22T20:00:42.345928712Z container create 31ff (image=busybox, name=evx)\n"
        );
    }
}
