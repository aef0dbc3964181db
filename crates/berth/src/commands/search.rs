//! `berth search [--limit N] [--filter …] [--format …] [--no-trunc] TERM`: `GET /images/search`.

use serde_json::Value;

use crate::client::{filters_json, Body, Query};
use crate::json::Val;

use super::{render_list, status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth search [OPTIONS] TERM",
    after_help = "Examples:\n  berth search 127.0.0.1:5000/busy\n  berth search --filter stars=3 --limit 10 nginx"
)]
pub struct Args {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results
    #[arg(long)]
    limit: Option<u32>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    term: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = Query::new();
    if let Some(f) = filters_json(&a.filter)? {
        q.add("filters", f);
    }
    if let Some(l) = a.limit {
        q.add("limit", l.to_string());
    }
    q.add("term", a.term.as_str());
    let domain = berth_types::Reference::parse_named(&a.term)
        .map(|r| r.domain().to_string())
        .unwrap_or_else(|_| "docker.io".into());
    let auth = crate::auth::header_for_domain(&domain)?;
    let v = ctx
        .client
        .call_with(
            "GET",
            &format!("/images/search{}", q.encode()),
            Body::Empty,
            &[("X-Registry-Auth", &auth)],
        )?
        .json()?;
    let rows: Vec<Val> = v
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| row(r, !a.no_trunc))
        .collect();
    let format = a
        .format
        .as_deref()
        .unwrap_or("table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}");
    let header = Val::obj(vec![
        ("Name", Val::str("NAME")),
        ("Description", Val::str("DESCRIPTION")),
        ("StarCount", Val::str("STARS")),
        ("IsOfficial", Val::str("OFFICIAL")),
        ("IsAutomated", Val::str("AUTOMATED")),
    ]);
    super::print(&render_list(format, &rows, &header).map_err(|e| status(1, e.to_string()))?);
    Ok(0)
}

/// One result as the docker CLI's search formatter shows it: `[OK]` for official/automated, the
/// description cut to 45 characters unless `--no-trunc`, newlines folded.
fn row(r: &Value, trunc: bool) -> Val {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let ok = |k: &str| {
        if r.get(k).and_then(Value::as_bool).unwrap_or(false) {
            "[OK]"
        } else {
            ""
        }
    };
    let mut desc = s("description").replace(['\n', '\r'], " ");
    if trunc {
        desc = crate::format::ellipsis(&desc, 45);
    }
    Val::obj(vec![
        ("Name", Val::str(s("name"))),
        ("Description", Val::str(desc)),
        (
            "StarCount",
            Val::str(
                r.get("star_count")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string(),
            ),
        ),
        ("IsOfficial", Val::str(ok("is_official"))),
        ("IsAutomated", Val::str(ok("is_automated"))),
    ])
}
