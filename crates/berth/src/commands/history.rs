//! `berth history IMAGE`: `GET /images/{name}/history`, rendered as docker's `history` renders it
//! (IMAGE CREATED CREATED BY SIZE COMMENT; `-H=false` for RFC 3339 times and byte counts).

use crate::client::path_escape;
use crate::format::{ago, ellipsis, human_size, truncate_id};
use crate::json::Val;

use super::{print, render_list, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth history [OPTIONS] IMAGE",
    after_help = "Examples:\n  berth history busybox\n  berth history --no-trunc -H=false busybox\n  berth history --format '{{.ID}} {{.Size}}' busybox"
)]
pub struct Args {
    /// Print sizes and dates in human readable format
    #[arg(
        short = 'H',
        long = "human",
        default_value = "true",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    human: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    image: String,
}

fn header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Comment", "COMMENT"),
        h("CreatedAt", "CREATED AT"),
        h("CreatedBy", "CREATED BY"),
        h("CreatedSince", "CREATED"),
        h("ID", "IMAGE"),
        h("Size", "SIZE"),
    ])
}

/// docker's `time.Unix(t, 0).Format(time.RFC3339)` (berth's CLI shows times in UTC).
fn rfc3339(unix: i64) -> String {
    let (y, mo, d) = berth_types::time::civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Created times before 2000 are shown as N/A (docker's `epoch`).
const EPOCH_2000: i64 = 946_684_800;

/// One row, with docker's `historyContext` fields.
fn row(h: &serde_json::Value, trunc: bool, human: bool) -> Val {
    let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let n = |k: &str| h.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let id = s("Id");
    let created = n("Created");
    let created_at = rfc3339(created);
    let created_since = if !human {
        created_at.clone()
    } else if created <= EPOCH_2000 {
        "N/A".to_owned()
    } else {
        ago(created)
    };
    let created_by = s("CreatedBy").replace('\t', " ");
    let size = if human {
        human_size(n("Size"))
    } else {
        n("Size").to_string()
    };
    Val::obj(vec![
        ("Comment", Val::str(s("Comment"))),
        ("CreatedAt", Val::str(created_at)),
        (
            "CreatedBy",
            Val::str(if trunc {
                ellipsis(&created_by, 45)
            } else {
                created_by
            }),
        ),
        ("CreatedSince", Val::str(created_since)),
        ("ID", Val::str(if trunc { truncate_id(&id) } else { id })),
        ("Size", Val::str(size)),
    ])
}

/// docker's `NewHistoryFormat`.
fn format(custom: Option<&str>, quiet: bool, human: bool) -> String {
    match custom {
        Some(f) if !f.is_empty() && f != "table" => f.to_owned(),
        _ if quiet => "{{.ID}}".to_owned(),
        _ if !human => "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".to_owned(),
        _ => "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".to_owned(),
    }
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let list = ctx
        .client
        .get_json(&format!("/images/{}/history", path_escape(&a.image)))?;
    let rows: Vec<Val> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|h| row(h, !a.no_trunc, a.human))
        .collect();
    let f = format(a.format.as_deref(), a.quiet, a.human);
    print(&render_list(&f, &rows, &header())?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_render_like_docker_history() {
        let items = serde_json::json!([
            {"Comment":"","Created":1796165225,"CreatedBy":"sh -c head -c 3000000 /dev/urandom > /blob1\tand a much longer tail","Id":"sha256:d51b7c0f6e1f0123456789abcdef0123456789abcdef0123456789abcdef0123","Size":3000000,"Tags":["t:1"]},
            {"Comment":"Imported from -","Created":1796160534,"CreatedBy":"","Id":"<missing>","Size":1984197,"Tags":null}
        ]);
        let rows: Vec<Val> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|h| row(h, true, false))
            .collect();
        let out = render_list(&format(None, false, false), &rows, &header()).unwrap();
        assert_eq!(
            out,
            "IMAGE          CREATED AT             CREATED BY                                      SIZE      COMMENT\n\
             d51b7c0f6e1f   2026-12-01T22:47:05Z   sh -c head -c 3000000 /dev/urandom > /blob1 …   3000000   \n\
             <missing>      2026-12-01T21:28:54Z                                                   1984197   Imported from -\n"
        );
        let human: Vec<Val> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|h| row(h, true, true))
            .collect();
        let quiet = render_list(&format(None, true, true), &human, &header()).unwrap();
        assert_eq!(quiet, "d51b7c0f6e1f\n<missing>\n");
        let sizes = render_list("{{.Size}}", &human, &header()).unwrap();
        assert_eq!(sizes, "3MB\n1.98MB\n");
        let old = row(
            &serde_json::json!({"Created": 100, "Id": "<missing>"}),
            true,
            true,
        );
        assert_eq!(old.get("CreatedSince").unwrap().go_string(), "N/A");
    }
}
