//! `berth logs`: inspect first (for `.Id` and `.Config.Tty`), then `GET /containers/ID/logs`.

use crate::client::Query;
use crate::format::now_f64;
use crate::stream;

use super::create::{container_path, go_duration_ns};
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth logs [OPTIONS] CONTAINER",
    after_help = "Examples:\n  berth logs web\n  berth logs -f --tail 10 web\n  berth logs --since 10m -t web"
)]
pub struct Args {
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long)]
    until: Option<String>,
    container: String,
}

/// docker's `timetypes.GetTimestamp`: durations are relative to now, RFC 3339 becomes
/// `secs.nanos`, and unix timestamps pass through.
pub fn get_timestamp(value: &str, now: f64) -> anyhow::Result<String> {
    if value != "0" {
        if let Ok(d) = go_duration_ns(value) {
            return Ok(format!("{}", (now - d as f64 / 1e9).floor() as i64));
        }
    }
    if value.contains('-') {
        let mut v = value.to_owned();
        if v.len() == 10 {
            v.push_str("T00:00:00");
        } else if let Some(t) = v.find('T') {
            let colons = v[t..].matches(':').count();
            let has_zone = v[t..].contains(['Z', 'z', '+']) || v[t..].matches('-').count() > 0;
            if !has_zone {
                v.push_str([":00:00", ":00", ""][colons.min(2)]);
            }
        }
        let (s, n) = berth_types::time::parse_rfc3339_parts(&v)
            .ok_or_else(|| anyhow::anyhow!("parsing time {value:?}: cannot parse"))?;
        return Ok(format!("{s}.{n:09}"));
    }
    let ok = !value.is_empty()
        && value.split('.').count() <= 2
        && value.split('.').all(|p| p.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        anyhow::bail!("failed to parse value as time or duration: {value:?}");
    }
    Ok(value.to_owned())
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let c = ctx.client.get_json(&container_path(&a.container, "/json"))?;
    let id = c["Id"].as_str().unwrap_or(&a.container).to_owned();
    let tty = c["Config"]["Tty"].as_bool().unwrap_or(false);
    let now = now_f64();
    let mut q = Query::new();
    q.flag("follow", a.follow)
        .add("stdout", "1")
        .add("stderr", "1")
        .add("tail", a.tail.as_str());
    q.flag("timestamps", a.timestamps).flag("details", a.details);
    if let Some(s) = &a.since {
        q.add("since", get_timestamp(s, now)?);
    }
    if let Some(u) = &a.until {
        q.add("until", get_timestamp(u, now)?);
    }
    let mut resp = ctx.client.call(
        "GET",
        &container_path(&id, &format!("/logs{}", q.encode())),
        crate::client::Body::Empty,
    )?;
    let r = resp.reader();
    let res = if tty {
        stream::copy_raw(r, &mut std::io::stdout().lock())
    } else {
        stream::demux(r, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())
    };
    match res {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::get_timestamp;

    #[test]
    fn timestamps_convert_like_docker() {
        assert_eq!(get_timestamp("10m", 1000.5).unwrap(), "400");
        assert_eq!(
            get_timestamp("2026-11-22T19:54:07Z", 0.0).unwrap(),
            "1795377247.000000000"
        );
        assert_eq!(
            get_timestamp("2026-11-22T19:54:07.5+00:00", 0.0).unwrap(),
            "1795377247.500000000"
        );
        assert_eq!(get_timestamp("1795377247", 0.0).unwrap(), "1795377247");
        assert_eq!(get_timestamp("1795377247.25", 0.0).unwrap(), "1795377247.25");
        assert!(get_timestamp("yesterday", 0.0).is_err());
    }
}
