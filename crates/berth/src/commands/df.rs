//! `berth system df`: `GET /system/df`, summarised as docker's CLI does (`formatter/disk_usage.go`):
//! TYPE TOTAL ACTIVE SIZE RECLAIMABLE, and with `-v` one table per kind. Every figure is computed
//! here from the one response, with docker's formulas.

use serde_json::Value;

use crate::format::{ago, go_time_string, human_size, human_size_prec, truncate_id};
use crate::json::Val;
use crate::template::Template;

use super::{print, render_list, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth system df [OPTIONS]",
    after_help = "Examples:\n  berth system df\n  berth system df -v\n  berth system df --format '{{.Type}}: {{.Size}}'"
)]
pub struct Args {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
}

/// go-units `HumanSize`: four significant digits.
fn size4(n: i64) -> String {
    human_size_prec(n as f64, 4)
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn int(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// `used` of `total` as docker prints RECLAIMABLE: `1.2MB (50%)`, or just the size when `total`
/// is 0.
fn reclaimable(reclaim: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", size4(reclaim), reclaim * 100 / total)
    } else {
        size4(reclaim)
    }
}

fn summary_row(kind: &str, total: usize, active: usize, size: String, reclaim: String) -> Val {
    Val::obj(vec![
        ("Active", Val::str(active.to_string())),
        ("Reclaimable", Val::str(reclaim)),
        ("Size", Val::str(size)),
        ("TotalCount", Val::str(total.to_string())),
        ("Type", Val::str(kind)),
    ])
}

fn container_active(c: &Value) -> bool {
    matches!(c["State"].as_str(), Some("running" | "paused" | "restarting"))
}

/// The four summary rows: images, containers, local volumes, build cache.
fn summary(du: &Value) -> Vec<Val> {
    let images = arr(&du["Images"]);
    let layers = int(du, "LayersSize");
    let used: i64 = images
        .iter()
        .filter(|i| int(i, "Containers") != 0)
        .filter(|i| int(i, "Size") != -1 && int(i, "SharedSize") != -1)
        .map(|i| int(i, "Size") - int(i, "SharedSize"))
        .sum();
    let containers = arr(&du["Containers"]);
    let rw_total: i64 = containers.iter().map(|c| int(c, "SizeRw")).sum();
    let rw_idle: i64 = containers
        .iter()
        .filter(|c| !container_active(c))
        .map(|c| int(c, "SizeRw"))
        .sum();
    let volumes = arr(&du["Volumes"]);
    let vsize = |v: &Value| int(&v["UsageData"], "Size");
    let sized = || volumes.iter().filter(|v| vsize(v) != -1);
    let v_total: i64 = sized().map(vsize).sum();
    let v_idle: i64 = sized()
        .filter(|v| int(&v["UsageData"], "RefCount") == 0)
        .map(vsize)
        .sum();
    let cache = arr(&du["BuildCache"]);
    let flag = |c: &Value, k: &str| c[k].as_bool().unwrap_or(false);
    let builder: i64 = cache
        .iter()
        .filter(|c| !flag(c, "Shared"))
        .map(|c| int(c, "Size"))
        .sum();
    let in_use: i64 = cache
        .iter()
        .filter(|c| flag(c, "InUse") && !flag(c, "Shared"))
        .map(|c| int(c, "Size"))
        .sum();
    vec![
        summary_row(
            "Images",
            images.len(),
            images.iter().filter(|i| int(i, "Containers") > 0).count(),
            size4(layers),
            reclaimable(layers - used, layers),
        ),
        summary_row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| container_active(c)).count(),
            size4(rw_total),
            reclaimable(rw_idle, rw_total),
        ),
        summary_row(
            "Local Volumes",
            volumes.len(),
            volumes
                .iter()
                .filter(|v| int(&v["UsageData"], "RefCount") > 0)
                .count(),
            size4(v_total),
            reclaimable(v_idle, v_total),
        ),
        summary_row(
            "Build Cache",
            cache.len(),
            cache.iter().filter(|c| flag(c, "InUse")).count(),
            size4(builder),
            size4(builder - in_use),
        ),
    ]
}

fn summary_header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Active", "ACTIVE"),
        h("Reclaimable", "RECLAIMABLE"),
        h("Size", "SIZE"),
        h("TotalCount", "TOTAL"),
        h("Type", "TYPE"),
    ])
}

/// `-v` image rows: the first tag only, `<none>` for a dangling image.
fn image_rows(du: &Value, trunc: bool) -> Vec<Val> {
    let mut rows = Vec::new();
    for i in arr(&du["Images"]) {
        let tags: Vec<&str> = arr(&i["RepoTags"]).iter().filter_map(Value::as_str).collect();
        let digests: Vec<&str> = arr(&i["RepoDigests"]).iter().filter_map(Value::as_str).collect();
        let dangling = tags == ["<none>:<none>"] && digests == ["<none>@<none>"];
        let (mut repo, mut tag) = ("<none>".to_owned(), "<none>".to_owned());
        if let (Some(first), false) = (tags.first(), dangling) {
            let (r, t) = super::split_ref(first);
            if first.contains('@') {
                continue; // not a tagged reference: docker skips the image
            }
            (repo, tag) = (r, t);
        }
        let id = i["Id"].as_str().unwrap_or("");
        let (size, shared) = (int(i, "Size"), int(i, "SharedSize"));
        let containers = int(i, "Containers");
        let na_or = |n: i64, s: String| if n == -1 { "N/A".to_owned() } else { s };
        rows.push(Val::obj(vec![
            ("Containers", Val::str(na_or(containers, containers.to_string()))),
            ("CreatedAt", Val::str(go_time_string(int(i, "Created")))),
            ("CreatedSince", Val::str(ago(int(i, "Created")))),
            ("Digest", Val::str("")),
            (
                "ID",
                Val::str(if trunc { truncate_id(id) } else { id.to_owned() }),
            ),
            ("Repository", Val::str(repo)),
            // docker: Size with three significant digits, the shared and unique sizes with four.
            ("SharedSize", Val::str(na_or(shared, size4(shared)))),
            ("Size", Val::str(human_size(size))),
            ("Tag", Val::str(tag)),
            (
                "UniqueSize",
                Val::str(na_or(shared.min(size), size4(size - shared))),
            ),
            ("VirtualSize", Val::str(size4(size))),
        ]));
    }
    rows
}

fn image_header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Containers", "CONTAINERS"),
        h("CreatedSince", "CREATED"),
        h("ID", "IMAGE ID"),
        h("Repository", "REPOSITORY"),
        h("SharedSize", "SHARED SIZE"),
        h("Size", "SIZE"),
        h("Tag", "TAG"),
        h("UniqueSize", "UNIQUE SIZE"),
    ])
}

/// `-v` container rows: `ps` rows without the virtual size.
fn container_rows(du: &Value, trunc: bool) -> Vec<Val> {
    arr(&du["Containers"])
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["SizeRootFs"] = Value::from(0);
            super::ps::row(&super::ps::Listed::from_value(&c), trunc)
        })
        .collect()
}

fn volume_rows(du: &Value) -> Vec<Val> {
    arr(&du["Volumes"])
        .iter()
        .map(|v| {
            let usage = &v["UsageData"];
            let na = usage.is_null();
            Val::obj(vec![
                (
                    "Links",
                    Val::str(if na {
                        "N/A".into()
                    } else {
                        int(usage, "RefCount").to_string()
                    }),
                ),
                ("Name", Val::str(v["Name"].as_str().unwrap_or(""))),
                (
                    "Size",
                    Val::str(if na {
                        "N/A".into()
                    } else {
                        size4(int(usage, "Size"))
                    }),
                ),
            ])
        })
        .collect()
}

fn volume_header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Links", "LINKS"),
        h("Name", "VOLUME NAME"),
        h("Size", "SIZE"),
    ])
}

fn cache_rows(du: &Value, trunc: bool) -> Vec<Val> {
    let since = |v: &Value| {
        v.as_str()
            .and_then(berth_types::time::parse_rfc3339)
            .map(|n| ago(n.div_euclid(1_000_000_000)))
            .unwrap_or_default()
    };
    arr(&du["BuildCache"])
        .iter()
        .map(|c| {
            let id = c["ID"].as_str().unwrap_or("");
            let mut id = if trunc { truncate_id(id) } else { id.to_owned() };
            if c["InUse"].as_bool().unwrap_or(false) {
                id.push('*');
            }
            Val::obj(vec![
                ("CacheType", Val::str(c["Type"].as_str().unwrap_or(""))),
                ("CreatedSince", Val::str(since(&c["CreatedAt"]))),
                ("ID", Val::str(id)),
                ("LastUsedSince", Val::str(since(&c["LastUsedAt"]))),
                (
                    "Shared",
                    Val::str(c["Shared"].as_bool().unwrap_or(false).to_string()),
                ),
                ("Size", Val::str(human_size(int(c, "Size")))),
                ("UsageCount", Val::str(int(c, "UsageCount").to_string())),
            ])
        })
        .collect()
}

fn cache_header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("CacheType", "CACHE TYPE"),
        h("CreatedSince", "CREATED"),
        h("ID", "CACHE ID"),
        h("LastUsedSince", "LAST USED"),
        h("Shared", "SHARED"),
        h("Size", "SIZE"),
        h("UsageCount", "USAGE"),
    ])
}

/// docker's `verboseWriteTable`: four titled tables.
fn verbose_tables(du: &Value) -> anyhow::Result<String> {
    let builder: i64 = arr(&du["BuildCache"])
        .iter()
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| int(c, "Size"))
        .sum();
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&render_list(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &image_rows(du, true),
        &image_header(),
    )?);
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&render_list(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &container_rows(du, true),
        &super::ps::header(),
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&render_list(
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &volume_rows(du),
        &volume_header(),
    )?);
    out.push_str(&format!("\nBuild cache usage: {}\n\n", size4(builder)));
    out.push_str(&render_list(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &cache_rows(du, true),
        &cache_header(),
    )?);
    Ok(out)
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let du = ctx.client.get_json("/system/df")?;
    let format = a.format.unwrap_or_default();
    let out = match (a.verbose, format.as_str()) {
        (false, "" | "table") => render_list(
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            &summary(&du),
            &summary_header(),
        )?,
        (false, f) => render_list(f, &summary(&du), &summary_header())?,
        (true, "" | "table") => verbose_tables(&du)?,
        // A custom template runs once over the whole document, as docker's does.
        (true, f) => {
            let f = if f == "json" { "{{json .}}" } else { f };
            let doc = Val::Obj(vec![
                ("Images".into(), Val::Arr(image_rows(&du, false))),
                ("Containers".into(), Val::Arr(container_rows(&du, false))),
                ("Volumes".into(), Val::Arr(volume_rows(&du))),
                ("BuildCache".into(), Val::Arr(cache_rows(&du, false))),
            ]);
            let src = f.replace("\\t", "\t").replace("\\n", "\n");
            let t = Template::parse(&src).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
            t.render_row(&doc)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?
        }
    };
    print(&out);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body the wire capture shows (`engine-api-wire-contract-2.md` §4), trimmed.
    fn sample() -> Value {
        serde_json::json!({
            "LayersSize": 4984197,
            "Images": [
                {"Containers":0,"Created":1796165225,"Id":"sha256:d51b7c0f6e1f00","RepoDigests":[],"RepoTags":["127.0.0.1:15020/test/big:1"],"SharedSize":1984197,"Size":4984197},
                {"Containers":2,"Created":1796160534,"Id":"sha256:8d2a6ab5f73000","RepoDigests":[],"RepoTags":["busybox:latest"],"SharedSize":1984197,"Size":1984197},
                {"Containers":0,"Created":1796160534,"Id":"sha256:0eef00000000aa","RepoDigests":["<none>@<none>"],"RepoTags":["<none>:<none>"],"SharedSize":0,"Size":0}
            ],
            "Containers": [
                {"Id":"337f00000000aa","Names":["/wirec3"],"Image":"busybox","ImageID":"sha256:8d2a6ab5f73000","Command":"true","Created":1796165311,"SizeRootFs":1984197,"State":"created","Status":"Created","Mounts":[]},
                {"Id":"9cde00000000aa","Names":["/up"],"Image":"busybox","ImageID":"sha256:8d2a6ab5f73000","Command":"sleep 9","Created":1796165311,"SizeRw":2,"SizeRootFs":1984199,"State":"running","Status":"Up 2 seconds","Mounts":[]}
            ],
            "Volumes": [],
            "BuildCache": null,
            "BuilderSize": 0
        })
    }

    #[test]
    fn summary_uses_dockers_formulas() {
        let out = render_list(
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            &summary(&sample()),
            &summary_header(),
        )
        .unwrap();
        assert_eq!(
            out,
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          3         1         4.984MB   4.984MB (100%)\n\
             Containers      2         1         2B        0B (0%)\n\
             Local Volumes   0         0         0B        0B\n\
             Build Cache     0         0         0B        0B\n"
        );
        let json = render_list("json", &summary(&sample())[..1], &summary_header()).unwrap();
        assert_eq!(
            json,
            "{\"Active\":\"1\",\"Reclaimable\":\"4.984MB (100%)\",\"Size\":\"4.984MB\",\"TotalCount\":\"3\",\"Type\":\"Images\"}\n"
        );
    }

    #[test]
    fn verbose_images_show_first_tag_and_unique_size() {
        let rows = image_rows(&sample(), true);
        let get = |r: &Val, k: &str| r.get(k).unwrap().go_string();
        assert_eq!(get(&rows[0], "Repository"), "127.0.0.1:15020/test/big");
        assert_eq!(get(&rows[0], "Tag"), "1");
        assert_eq!(get(&rows[0], "UniqueSize"), "3MB");
        assert_eq!(get(&rows[0], "SharedSize"), "1.984MB");
        assert_eq!(get(&rows[2], "Repository"), "<none>");
        assert_eq!(get(&rows[2], "ID"), "0eef00000000");
        let c = container_rows(&sample(), true);
        assert_eq!(get(&c[1], "Size"), "2B");
    }
}
