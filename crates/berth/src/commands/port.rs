//! `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports, from inspect
//! (`NetworkSettings.Ports`), as docker prints them.

use super::create::container_path;
use super::Ctx;

#[derive(clap::Args)]
#[command(
    override_usage = "berth port CONTAINER [PRIVATE_PORT[/PROTO]]",
    after_help = "Examples:\n  berth port web\n  berth port web 80/tcp"
)]
pub struct Args {
    container: String,
    private_port: Option<String>,
}

/// The lines to print: `80/tcp -> 0.0.0.0:8080` for every binding, or just `0.0.0.0:8080` for
/// the one port asked for.
fn lines(ports: &serde_json::Value, want: Option<&str>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let map = ports.as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        (p.parse::<u32>().unwrap_or(0), proto.to_string())
    });
    let want = want.map(|w| {
        if w.contains('/') {
            w.to_string()
        } else {
            format!("{w}/tcp")
        }
    });
    for k in keys {
        if want.as_deref().is_some_and(|w| w != k) {
            continue;
        }
        for b in map[k].as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or("");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let host = format!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""));
            out.push(if want.is_some() {
                host
            } else {
                format!("{k} -> {host}")
            });
        }
    }
    if out.is_empty() {
        if let Some(w) = want {
            return Err(format!("Error: No public port '{w}' published for"));
        }
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let v = ctx.client.get_json(&container_path(&a.container, "/json"))?;
    match lines(&v["NetworkSettings"]["Ports"], a.private_port.as_deref()) {
        Ok(l) => {
            for line in l {
                println!("{line}");
            }
            Ok(0)
        }
        Err(e) => anyhow::bail!("{e} {}", a.container),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn port_prints_every_binding_or_the_one_asked_for() {
        let p = json!({"81/udp": [{"HostIp":"0.0.0.0","HostPort":"9"}], "80/tcp": [{"HostIp":"127.0.0.1","HostPort":"8080"}], "82/tcp": null});
        assert_eq!(
            super::lines(&p, None).unwrap(),
            vec!["80/tcp -> 127.0.0.1:8080", "81/udp -> 0.0.0.0:9"]
        );
        assert_eq!(super::lines(&p, Some("80")).unwrap(), vec!["127.0.0.1:8080"]);
        assert!(super::lines(&p, Some("82")).is_err());
    }
}
