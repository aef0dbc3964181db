//! `berth images`: `GET /images/json`, one row per repository:tag like `docker images`.

use crate::client::{filters_json, Query};
use crate::format::{ago, go_time_string, human_size, human_size_prec, truncate_id};
use crate::json::Val;

use super::{print, render_list, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth images [OPTIONS] [REPOSITORY[:TAG]]",
    after_help = "Examples:\n  berth images\n  berth images -q busybox\n  berth images --format '{{.Repository}}:{{.Tag}} {{.Size}}'"
)]
pub struct Args {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    reference: Option<String>,
}

fn header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Containers", "CONTAINERS"),
        h("CreatedAt", "CREATED AT"),
        h("CreatedSince", "CREATED"),
        h("Digest", "DIGEST"),
        h("ID", "IMAGE ID"),
        h("Repository", "REPOSITORY"),
        h("SharedSize", "SHARED SIZE"),
        h("Size", "SIZE"),
        h("Tag", "TAG"),
        h("UniqueSize", "UNIQUE SIZE"),
        h("VirtualSize", "VIRTUAL SIZE"),
    ])
}

/// The (repository, tag, digest) rows docker shows for one image summary.
pub fn image_rows(img: &serde_json::Value, with_digests: bool) -> Vec<(String, String, String)> {
    let strs = |k: &str| -> Vec<String> {
        img.get(k)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let tags = strs("RepoTags");
    let digests = strs("RepoDigests");
    let dangling = (tags.is_empty() && digests.is_empty())
        || (tags == ["<none>:<none>"] && digests == ["<none>@<none>"]);
    if dangling {
        return vec![("<none>".into(), "<none>".into(), "<none>".into())];
    }
    let mut repo_tags: Vec<(String, Vec<String>)> = Vec::new();
    for t in &tags {
        let slash = t.rfind('/').map(|i| i + 1).unwrap_or(0);
        let Some(i) = t[slash..].rfind(':') else { continue };
        let (repo, tag) = (&t[..slash + i], &t[slash + i + 1..]);
        match repo_tags.iter_mut().find(|(r, _)| r == repo) {
            Some((_, ts)) => ts.push(tag.to_owned()),
            None => repo_tags.push((repo.to_owned(), vec![tag.to_owned()])),
        }
    }
    let mut repo_digests: Vec<(String, Vec<String>)> = Vec::new();
    for d in &digests {
        let Some((repo, dg)) = d.split_once('@') else {
            continue;
        };
        if repo == "<none>" {
            continue;
        }
        match repo_digests.iter_mut().find(|(r, _)| r == repo) {
            Some((_, ds)) => ds.push(dg.to_owned()),
            None => repo_digests.push((repo.to_owned(), vec![dg.to_owned()])),
        }
    }
    let mut rows = Vec::new();
    for (repo, ts) in &repo_tags {
        let ds = repo_digests
            .iter()
            .position(|(r, _)| r == repo)
            .map(|i| repo_digests.remove(i).1)
            .unwrap_or_default();
        for t in ts {
            if ds.is_empty() || !with_digests {
                rows.push((repo.clone(), t.clone(), "<none>".into()));
            } else {
                for d in &ds {
                    rows.push((repo.clone(), t.clone(), d.clone()));
                }
            }
        }
    }
    for (repo, ds) in repo_digests {
        if with_digests {
            for d in ds {
                rows.push((repo.clone(), "<none>".into(), d));
            }
        } else {
            rows.push((repo, "<none>".into(), String::new()));
        }
    }
    rows
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q = Query::new();
    q.flag("all", a.all);
    if let Some(f) = filters_json(&filters)? {
        q.add("filters", f);
    }
    let list = ctx.client.get_json(&format!("/images/json{}", q.encode()))?;
    let mut rows = Vec::new();
    for img in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        let i64f = |k: &str| img.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
        let id = img.get("Id").and_then(|v| v.as_str()).unwrap_or("");
        let id = if a.no_trunc {
            id.to_owned()
        } else {
            truncate_id(id)
        };
        let created = i64f("Created");
        let size = i64f("Size");
        let shared = img.get("SharedSize").and_then(|v| v.as_i64()).unwrap_or(-1);
        let containers = img.get("Containers").and_then(|v| v.as_i64()).unwrap_or(-1);
        let virt = img.get("VirtualSize").and_then(|v| v.as_i64()).unwrap_or(size);
        for (repo, tag, digest) in image_rows(img, a.digests) {
            rows.push(Val::obj(vec![
                (
                    "Containers",
                    Val::str(if containers < 0 {
                        "N/A".to_owned()
                    } else {
                        containers.to_string()
                    }),
                ),
                ("CreatedAt", Val::str(go_time_string(created))),
                ("CreatedSince", Val::str(ago(created))),
                ("Digest", Val::str(digest)),
                ("ID", Val::str(id.clone())),
                ("Repository", Val::str(repo)),
                (
                    "SharedSize",
                    Val::str(if shared < 0 {
                        "N/A".to_owned()
                    } else {
                        human_size_prec(shared as f64, 4)
                    }),
                ),
                ("Size", Val::str(human_size(size))),
                ("Tag", Val::str(tag)),
                (
                    "UniqueSize",
                    Val::str(if shared < 0 || size < 0 {
                        "N/A".to_owned()
                    } else {
                        human_size_prec((size - shared) as f64, 4)
                    }),
                ),
                ("VirtualSize", Val::str(human_size_prec(virt as f64, 4))),
            ]));
        }
    }
    let format = match (&a.format, a.quiet, a.digests) {
        (Some(f), _, _) if !f.is_empty() && f != "table" => f.clone(),
        (_, true, _) => "{{.ID}}".to_owned(),
        (_, false, true) => {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_owned()
        }
        _ => "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_owned(),
    };
    print(&render_list(&format, &rows, &header())?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_docker_rules() {
        let img =
            serde_json::json!({"RepoTags":["a:1","b:2","a:2"],"RepoDigests":["a@sha256:x","c@sha256:y"]});
        assert_eq!(
            image_rows(&img, false),
            vec![
                ("a".into(), "1".into(), "<none>".into()),
                ("a".into(), "2".into(), "<none>".into()),
                ("b".into(), "2".into(), "<none>".into()),
                ("c".into(), "<none>".into(), "".into())
            ]
        );
        let dangling = serde_json::json!({"RepoTags":["<none>:<none>"],"RepoDigests":["<none>@<none>"]});
        assert_eq!(
            image_rows(&dangling, false),
            vec![("<none>".into(), "<none>".into(), "<none>".into())]
        );
        assert_eq!(
            image_rows(&img, true)[0],
            ("a".into(), "1".into(), "sha256:x".into())
        );
    }
}
