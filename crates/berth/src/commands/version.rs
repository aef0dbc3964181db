//! `berth version`: client and server versions, laid out like `docker version`.

use crate::format::tabwrite_with;
use crate::json::Val;
use crate::template::render;

use super::{print, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth version [OPTIONS]",
    after_help = "Examples:\n  berth version\n  berth version --format '{{.Server.Version}}'"
)]
pub struct Args {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    format: Option<String>,
}

/// Go's `time.ANSIC` (`Mon Jan _2 15:04:05 2006`) for an RFC 3339 build time.
fn ansic(s: &str) -> String {
    let Some((t, _)) = berth_types::time::parse_rfc3339_parts(s) else {
        return s.to_owned();
    };
    let days = t.div_euclid(86400);
    let (y, m, d) = berth_types::time::civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m as usize - 1];
    let s = t.rem_euclid(86400);
    format!(
        "{wd} {mon} {d:>2} {:02}:{:02}:{:02} {y}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let client = Val::obj(vec![
        ("Platform", Val::obj(vec![("Name", Val::str(""))])),
        ("Version", Val::str(env!("CARGO_PKG_VERSION"))),
        ("APIVersion", Val::str("1.41")),
        ("DefaultAPIVersion", Val::str("1.41")),
        ("Os", Val::str("linux")),
        (
            "Arch",
            Val::str(
                std::env::consts::ARCH
                    .replace("x86_64", "amd64")
                    .replace("aarch64", "arm64"),
            ),
        ),
        ("Context", Val::str("default")),
    ]);
    let server = ctx
        .client
        .call("GET", "/version", crate::client::Body::Empty)
        .and_then(|r| r.bytes());
    if let Some(f) = &a.format {
        let mut srv = match &server {
            Ok(b) => Val::parse(b).unwrap_or(Val::Null),
            Err(_) => Val::Null,
        };
        // docker's template sees its Go struct, whose field is `APIVersion` (JSON `ApiVersion`).
        if let Val::Obj(fields) = &mut srv {
            if let Some(v) = fields
                .iter()
                .find(|(k, _)| k == "ApiVersion")
                .map(|(_, v)| v.clone())
            {
                fields.push(("APIVersion".to_string(), v));
            }
        }
        let data = Val::obj(vec![("Client", client), ("Server", srv)]);
        let f = if f == "json" { "{{json .}}" } else { f.as_str() };
        print(&format!("{}\n", render(f, &data)?));
        return server.map(|_| 0);
    }
    let c = |k: &str| client.get(k).map(Val::go_string).unwrap_or_default();
    let mut out = format!(
        "Client:\n Version:\t{}\n API version:\t{}\n OS/Arch:\t{}/{}\n Context:\t{}\n",
        c("Version"),
        c("APIVersion"),
        c("Os"),
        c("Arch"),
        c("Context")
    );
    let body = match server {
        Ok(b) => b,
        Err(e) => {
            print(&tabwrite_with(&out, 20, 1));
            return Err(e);
        }
    };
    let v = Val::parse(&body).map_err(|e| anyhow::anyhow!("invalid version response: {e}"))?;
    let name = v
        .get("Platform")
        .and_then(|p| p.get("Name"))
        .map(Val::go_string)
        .unwrap_or_default();
    out.push_str(&format!(
        "\nServer:{}\n",
        if name.is_empty() {
            String::new()
        } else {
            format!(" {name}")
        }
    ));
    let empty = Vec::new();
    let comps = match v.get("Components") {
        Some(Val::Arr(c)) => c,
        _ => &empty,
    };
    for comp in comps {
        let g = |k: &str| comp.get(k).map(Val::go_string).unwrap_or_default();
        let det = |k: &str| {
            comp.get("Details")
                .and_then(|d| d.get(k))
                .map(Val::go_string)
                .unwrap_or_default()
        };
        out.push_str(&format!(" {}:\n", g("Name")));
        if g("Name") == "Engine" {
            out.push_str(&format!(
                "  Version:\t{}\n  API version:\t{} (minimum version {})\n  Go version:\t{}\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\t{}\n",
                g("Version"),
                det("ApiVersion"),
                det("MinAPIVersion"),
                det("GoVersion"),
                det("GitCommit"),
                ansic(&det("BuildTime")),
                det("Os"),
                det("Arch"),
                det("Experimental")
            ));
        } else {
            out.push_str(&format!("  Version:\t{}\n", g("Version")));
            if let Some(Val::Obj(d)) = comp.get("Details") {
                let mut keys: Vec<&(String, Val)> = d.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, val) in keys {
                    out.push_str(&format!("  {k}:\t{}\n", val.go_string()));
                }
            }
        }
    }
    print(&tabwrite_with(&out, 20, 1));
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_time_prints_as_ansic() {
        assert_eq!(
            super::ansic("2026-05-07T21:09:36.000000000+00:00"),
            "Thu May  7 21:09:36 2026"
        );
    }
}
