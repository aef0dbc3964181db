//! `berth ps`: `GET /containers/json`, rendered with docker's columns and field formatting.

use serde_json::Value;

use crate::client::{filters_json, Body, Query};
use crate::format::{ago, ellipsis, go_quote, go_time_string, human_size};
use crate::json::Val;

use super::{print, render_list, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth ps [OPTIONS]",
    after_help = "Examples:\n  berth ps -a\n  berth ps -q --filter status=exited\n  berth ps --format 'table {{.ID}}\\t{{.Names}}\\t{{.Status}}'"
)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)
    #[arg(long)]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    size: bool,
}

pub(crate) fn header() -> Val {
    let h = |k: &str, v: &str| (k.to_owned(), Val::str(v));
    Val::Obj(vec![
        h("Command", "COMMAND"),
        h("CreatedAt", "CREATED AT"),
        h("ID", "CONTAINER ID"),
        h("Image", "IMAGE"),
        h("Labels", "LABELS"),
        h("LocalVolumes", "LOCAL VOLUMES"),
        h("Mounts", "MOUNTS"),
        h("Names", "NAMES"),
        h("Networks", "NETWORKS"),
        h("Platform", "PLATFORM"),
        h("Ports", "PORTS"),
        h("RunningFor", "CREATED"),
        h("Size", "SIZE"),
        h("State", "STATE"),
        h("Status", "STATUS"),
    ])
}

/// docker's `DisplayablePorts`: consecutive ports grouped into ranges, host mappings last.
pub fn displayable_ports(ports: &[Value]) -> String {
    let mut ps: Vec<(u16, String, u16, String)> = ports
        .iter()
        .map(|p| {
            (
                p["PrivatePort"].as_u64().unwrap_or(0) as u16,
                p["IP"].as_str().unwrap_or("").to_owned(),
                p["PublicPort"].as_u64().unwrap_or(0) as u16,
                p["Type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    ps.sort();
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut host = Vec::new();
    let form = |key: &str, first: u16, last: u16| {
        let (ip, ty) = match key.split_once('/') {
            Some((ip, ty)) => (ip, ty),
            None => ("", key),
        };
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{ip}:{g}->{g}");
        }
        format!("{g}/{ty}")
    };
    for (private, ip, public, ty) in ps {
        let mut key = ty.clone();
        if !ip.is_empty() {
            if public != private {
                let addr = if ip.contains(':') {
                    format!("[{ip}]:{public}")
                } else {
                    format!("{ip}:{public}")
                };
                host.push(format!("{addr}->{private}/{ty}"));
                continue;
            }
            key = format!("{ip}/{ty}");
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, private, private)),
            Some(g) if private == g.2.wrapping_add(1) => g.2 = private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                *g = (key, private, private);
            }
        }
    }
    for (k, f, l) in &groups {
        result.push(form(k, *f, *l));
    }
    result.extend(host);
    result.join(", ")
}

/// A `GET /containers/json` entry as `ps` reads it: the fields [`row`] shows, typed, and the rest
/// skipped while parsing (`HostConfig`, each network's endpoint settings of which only the names
/// show). With 1000 containers, parsing entries into JSON maps was most of `ps -a`'s time.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Listed {
    #[serde(deserialize_with = "nullable")]
    id: String,
    #[serde(deserialize_with = "nullable")]
    names: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    image: String,
    #[serde(rename = "ImageID", deserialize_with = "nullable")]
    image_id: String,
    #[serde(deserialize_with = "nullable")]
    command: String,
    #[serde(deserialize_with = "nullable")]
    created: i64,
    #[serde(deserialize_with = "nullable")]
    ports: Vec<Value>,
    #[serde(deserialize_with = "nullable")]
    labels: std::collections::BTreeMap<String, Option<String>>,
    #[serde(deserialize_with = "nullable")]
    size_rw: i64,
    #[serde(deserialize_with = "nullable")]
    size_root_fs: i64,
    #[serde(deserialize_with = "nullable")]
    state: String,
    #[serde(deserialize_with = "nullable")]
    status: String,
    #[serde(deserialize_with = "nullable")]
    mounts: Vec<ListedMount>,
    #[serde(deserialize_with = "nullable")]
    network_settings: ListedNet,
}

#[derive(serde::Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct ListedMount {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    source: String,
    #[serde(deserialize_with = "nullable")]
    driver: String,
}

#[derive(serde::Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct ListedNet {
    #[serde(deserialize_with = "nullable")]
    networks: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// A JSON `null` as the type's default (daemons write `null` for empty lists and maps).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

impl Listed {
    /// An entry of another listing that has the same shape (`system df -v`'s containers).
    pub(crate) fn from_value(v: &Value) -> Listed {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }
}

pub(crate) fn row(c: &Listed, trunc: bool) -> Val {
    row_of(c, trunc, &|_| true)
}

/// Whether a `--format` template can reach every field (`{{json .}}`, `{{.}}`, or a `.` not
/// followed by a field name anywhere); otherwise [`referenced`] says which fields it shows.
fn needs_all(format: &str) -> bool {
    let b = format.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, c)| *c == b'.' && !b.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic()))
}

/// Whether `format` names `.Field`.
fn referenced(format: &str, field: &str) -> bool {
    format.match_indices(field).any(|(i, _)| {
        i > 0
            && format.as_bytes()[i - 1] == b'.'
            && !format
                .as_bytes()
                .get(i + field.len())
                .is_some_and(|n| n.is_ascii_alphanumeric())
    })
}

/// Every field of a row, as [`row_of`] names them.
const FIELDS: [&str; 15] = [
    "Command",
    "CreatedAt",
    "ID",
    "Image",
    "Labels",
    "LocalVolumes",
    "Mounts",
    "Names",
    "Networks",
    "Platform",
    "Ports",
    "RunningFor",
    "Size",
    "State",
    "Status",
];

/// The row's fields that `need` asks for (a template naming few fields of 1000 rows computes no
/// dates, ports or labels it does not print).
fn row_of(c: &Listed, trunc: bool, need: &dyn Fn(&str) -> bool) -> Val {
    let created = c.created;
    let mut fields: Vec<(&str, Val)> = Vec::with_capacity(15);
    let mut add = |name: &'static str, f: &dyn Fn() -> Val| {
        if need(name) {
            fields.push((name, f()));
        }
    };
    add("Command", &|| {
        let command = if trunc {
            ellipsis(&c.command, 20)
        } else {
            c.command.clone()
        };
        Val::str(go_quote(&command))
    });
    add("CreatedAt", &|| Val::str(go_time_string(created)));
    add("ID", &|| {
        Val::str(if trunc {
            crate::format::truncate_id(&c.id)
        } else {
            c.id.clone()
        })
    });
    add("Image", &|| {
        Val::str(if c.image.is_empty() {
            "<no image>".to_owned()
        } else if trunc && crate::format::truncate_id(&c.image_id) == crate::format::truncate_id(&c.image) {
            crate::format::truncate_id(&c.image)
        } else if trunc {
            c.image.split('@').next().unwrap_or("").to_owned()
        } else {
            c.image.clone()
        })
    });
    // Sorted by key already (a BTreeMap), as docker prints them.
    add("Labels", &|| {
        let labels: Vec<String> = c
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
            .collect();
        Val::str(labels.join(","))
    });
    add("LocalVolumes", &|| {
        Val::str(
            c.mounts
                .iter()
                .filter(|m| m.driver == "local")
                .count()
                .to_string(),
        )
    });
    add("Mounts", &|| {
        let names: Vec<String> = c
            .mounts
            .iter()
            .map(|m| {
                let n = if m.name.is_empty() { &m.source } else { &m.name };
                if trunc {
                    ellipsis(n, 15)
                } else {
                    n.to_owned()
                }
            })
            .collect();
        Val::str(names.join(","))
    });
    add("Names", &|| {
        let mut names: Vec<&str> = c.names.iter().map(|n| n.get(1..).unwrap_or("")).collect();
        if trunc {
            if let Some(n) = names.iter().find(|n| !n.contains('/')) {
                names = vec![*n];
            }
        }
        Val::str(names.join(","))
    });
    add("Networks", &|| {
        let nets: Vec<&str> = c.network_settings.networks.keys().map(String::as_str).collect();
        Val::str(nets.join(","))
    });
    add("Platform", &|| Val::Null);
    add("Ports", &|| Val::str(displayable_ports(&c.ports)));
    add("RunningFor", &|| Val::str(ago(created)));
    add("Size", &|| {
        Val::str(if c.size_root_fs > 0 {
            format!(
                "{} (virtual {})",
                human_size(c.size_rw),
                human_size(c.size_root_fs)
            )
        } else {
            human_size(c.size_rw)
        })
    });
    add("State", &|| Val::str(c.state.clone()));
    add("Status", &|| Val::str(c.status.clone()));
    Val::obj(fields)
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut format = match (&a.format, a.quiet) {
        (Some(f), true) if !f.is_empty() => {
            eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
            "{{.ID}}".to_owned()
        }
        (Some(f), false) if !f.is_empty() && f != "table" => f.clone(),
        (_, true) => "{{.ID}}".to_owned(),
        _ => "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
            .to_owned(),
    };
    let want_size = a.size || format.contains(".Size");
    if a.size && a.format.as_deref().is_none_or(|f| f.is_empty() || f == "table") && !a.quiet {
        format.push_str("\t{{.Size}}");
    }
    let mut q = Query::new();
    q.flag("all", a.all);
    let limit = if a.latest && a.last == -1 { 1 } else { a.last };
    if limit > 0 {
        q.add("limit", limit.to_string());
    }
    q.flag("size", want_size);
    if let Some(f) = filters_json(&a.filter)? {
        q.add("filters", f);
    }
    let list: Vec<Listed> = ctx
        .client
        .call("GET", &format!("/containers/json{}", q.encode()), Body::Empty)?
        .json_as()?;
    let all = needs_all(&format);
    // Which fields the template shows, worked out once rather than for each of 1000 rows.
    let wanted: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| all || referenced(&format, f))
        .collect();
    let need = |f: &str| wanted.contains(&f);
    let rows: Vec<Val> = list.iter().map(|c| row_of(c, !a.no_trunc, &need)).collect();
    print(&render_list(&format, &rows, &header())?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_group_like_docker() {
        let p = json!([
            {"PrivatePort":443,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":444,"Type":"tcp"},
            {"PrivatePort":53,"Type":"udp"}
        ]);
        assert_eq!(
            displayable_ports(p.as_array().unwrap()),
            "53/udp, 443-444/tcp, 0.0.0.0:8080->80/tcp"
        );
    }

    #[test]
    fn a_listed_entry_keeps_what_ps_shows_and_only_the_network_names() {
        let raw = r#"[{"Id":"a1","Names":["/x"],"HostConfig":{"NetworkMode":"n1"},
            "NetworkSettings":{"Networks":{"n2":{"IPAddress":"10.0.0.2"},"n1":{}}},"State":"running",
            "Labels":null,"Ports":null,"Mounts":null,"SizeRw":null}]"#;
        let l: Vec<Listed> = serde_json::from_str(raw).unwrap();
        assert_eq!(l[0].id, "a1");
        assert_eq!(l[0].names, vec!["/x".to_string()]);
        assert_eq!(l[0].state, "running");
        assert_eq!(row(&l[0], true).get("Networks").unwrap().go_string(), "n1,n2");
        let l: Vec<Listed> = serde_json::from_str(r#"[{"NetworkSettings":null}]"#).unwrap();
        assert!(l[0].network_settings.networks.is_empty());
    }

    #[test]
    fn a_template_computes_only_the_fields_it_names() {
        let f = "table {{.ID}}\t{{.Image}}\t{{.Names}}";
        assert!(!needs_all(f));
        assert!(referenced(f, "ID") && referenced(f, "Names"));
        assert!(!referenced(f, "Name") && !referenced(f, "Ports") && !referenced("{{.IDs}}", "ID"));
        assert!(needs_all("{{json .}}") && needs_all("{{.}}") && needs_all("{{ . }}"));
        let c = Listed {
            id: "983fac15aabbccddeeff".into(),
            names: vec!["/xx".into()],
            ..Default::default()
        };
        let need = |x: &str| referenced(f, x);
        let r = row_of(&c, true, &need);
        assert_eq!(r.get("ID").unwrap().go_string(), "983fac15aabb");
        assert_eq!(r.get("Names").unwrap().go_string(), "xx");
        assert!(r.get("Ports").is_none() && r.get("CreatedAt").is_none());
        // Everything, for a template that can reach everything.
        assert!(row(&c, true).get("CreatedAt").is_some());
        // FIELDS names every field a row can have, and nothing else.
        let Val::Obj(full) = row(&c, true) else {
            panic!("a row is an object")
        };
        let keys: Vec<&str> = full.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, FIELDS);
    }

    #[test]
    fn rows_are_truncated_and_quoted() {
        let c = json!({"Id":"983fac15aabbccddeeff","Names":["/xx"],"Image":"busybox","ImageID":"sha256:6a85",
            "Command":"sh -c 'echo started; echo warn >&2; sleep 100'","Created":0,"Labels":{"b":"2","a":"1"},
            "State":"running","Status":"Up 3 seconds","NetworkSettings":{"Networks":{"bridge":{}}},"Mounts":[]});
        let r = row(&Listed::from_value(&c), true);
        assert_eq!(r.get("ID").unwrap().go_string(), "983fac15aabb");
        assert_eq!(r.get("Command").unwrap().go_string(), "\"sh -c 'echo started…\"");
        assert_eq!(r.get("Names").unwrap().go_string(), "xx");
        assert_eq!(r.get("Labels").unwrap().go_string(), "a=1,b=2");
        assert_eq!(r.get("Networks").unwrap().go_string(), "bridge");
    }
}
