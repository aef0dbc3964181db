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

/// A `GET /containers/json` entry as `ps` reads it: what [`row`] shows, parsed as JSON values,
/// and the rest skipped while parsing — `HostConfig`, and each network's endpoint settings under
/// `NetworkSettings.Networks`, of which [`row`] shows only the names (most of an entry's bytes;
/// with 1000 containers, parsing everything was most of `ps -a`'s time).
struct Listed(Value);

impl<'de> serde::Deserialize<'de> for Listed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Listed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a container list entry")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Listed, A::Error> {
                #[derive(serde::Deserialize)]
                struct Net {
                    #[serde(rename = "Networks", default)]
                    networks: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
                }
                let mut out = serde_json::Map::new();
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "HostConfig" => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                        "NetworkSettings" => {
                            let n: Option<Net> = m.next_value()?;
                            let names = n
                                .and_then(|n| n.networks)
                                .unwrap_or_default()
                                .into_keys()
                                .map(|k| (k, Value::Null))
                                .collect();
                            out.insert(k, serde_json::json!({ "Networks": Value::Object(names) }));
                        }
                        _ => {
                            let v: Value = m.next_value()?;
                            out.insert(k, v);
                        }
                    }
                }
                Ok(Listed(Value::Object(out)))
            }
        }
        d.deserialize_map(V)
    }
}

pub(crate) fn row(c: &Value, trunc: bool) -> Val {
    let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let id = s("Id");
    let image = s("Image");
    let image = if image.is_empty() {
        "<no image>".to_owned()
    } else if trunc && crate::format::truncate_id(&s("ImageID")) == crate::format::truncate_id(&image) {
        crate::format::truncate_id(&image)
    } else if trunc {
        image.split('@').next().unwrap_or("").to_owned()
    } else {
        image
    };
    let mut names: Vec<String> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str())
                .map(|n| n.get(1..).unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    if trunc {
        if let Some(n) = names.iter().find(|n| !n.contains('/')) {
            names = vec![n.clone()];
        }
    }
    let command = if trunc {
        ellipsis(&s("Command"), 20)
    } else {
        s("Command")
    };
    let created = c["Created"].as_i64().unwrap_or(0);
    let mut labels: Vec<String> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let mounts = c["Mounts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let n = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(m["Source"].as_str())
                .unwrap_or("");
            if trunc {
                ellipsis(n, 15)
            } else {
                n.to_owned()
            }
        })
        .collect();
    let local = mounts
        .iter()
        .filter(|m| m["Driver"].as_str() == Some("local"))
        .count();
    let mut nets: Vec<&str> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    nets.sort();
    let srw = c["SizeRw"].as_i64().unwrap_or(0);
    let sv = c["SizeRootFs"].as_i64().unwrap_or(0);
    let size = if sv > 0 {
        format!("{} (virtual {})", human_size(srw), human_size(sv))
    } else {
        human_size(srw)
    };
    Val::obj(vec![
        ("Command", Val::str(go_quote(&command))),
        ("CreatedAt", Val::str(go_time_string(created))),
        (
            "ID",
            Val::str(if trunc {
                crate::format::truncate_id(&id)
            } else {
                id
            }),
        ),
        ("Image", Val::str(image)),
        ("Labels", Val::str(labels.join(","))),
        ("LocalVolumes", Val::str(local.to_string())),
        ("Mounts", Val::str(mount_names.join(","))),
        ("Names", Val::str(names.join(","))),
        ("Networks", Val::str(nets.join(","))),
        ("Platform", Val::Null),
        (
            "Ports",
            Val::str(displayable_ports(
                c["Ports"].as_array().map(Vec::as_slice).unwrap_or_default(),
            )),
        ),
        ("RunningFor", Val::str(ago(created))),
        ("Size", Val::str(size)),
        ("State", Val::str(s("State"))),
        ("Status", Val::str(s("Status"))),
    ])
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
    let rows: Vec<Val> = list.iter().map(|c| row(&c.0, !a.no_trunc)).collect();
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
            "NetworkSettings":{"Networks":{"n2":{"IPAddress":"10.0.0.2"},"n1":{}}},"State":"running"}]"#;
        let l: Vec<Listed> = serde_json::from_str(raw).unwrap();
        assert_eq!(
            l[0].0,
            json!({"Id":"a1","Names":["/x"],"NetworkSettings":{"Networks":{"n1":null,"n2":null}},"State":"running"})
        );
        assert_eq!(row(&l[0].0, true).get("Networks").unwrap().go_string(), "n1,n2");
        let l: Vec<Listed> = serde_json::from_str(r#"[{"NetworkSettings":null}]"#).unwrap();
        assert_eq!(l[0].0["NetworkSettings"]["Networks"], json!({}));
    }

    #[test]
    fn rows_are_truncated_and_quoted() {
        let c = json!({"Id":"983fac15aabbccddeeff","Names":["/xx"],"Image":"busybox","ImageID":"sha256:6a85",
            "Command":"sh -c 'echo started; echo warn >&2; sleep 100'","Created":0,"Labels":{"b":"2","a":"1"},
            "State":"running","Status":"Up 3 seconds","NetworkSettings":{"Networks":{"bridge":{}}},"Mounts":[]});
        let r = row(&c, true);
        assert_eq!(r.get("ID").unwrap().go_string(), "983fac15aabb");
        assert_eq!(r.get("Command").unwrap().go_string(), "\"sh -c 'echo started…\"");
        assert_eq!(r.get("Names").unwrap().go_string(), "xx");
        assert_eq!(r.get("Labels").unwrap().go_string(), "a=1,b=2");
        assert_eq!(r.get("Networks").unwrap().go_string(), "bridge");
    }
}
