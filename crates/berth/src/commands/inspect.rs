//! `berth inspect`, `container inspect`, `image inspect`: raw JSON re-indented like docker, or a
//! `-f` template per object.

use crate::client::{path_escape, ApiError, Body};
use crate::format::json_indent;
use crate::json::Val;
use crate::template::Template;

use super::{is_not_found, print, status, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth inspect [OPTIONS] NAME|ID [NAME|ID...]",
    after_help = "Examples:\n  berth inspect web\n  berth inspect -f '{{.State.Pid}}' web\n  berth inspect --type image busybox"
)]
pub struct Args {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    size: bool,
    /// Return JSON for specified type (container, image)
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    names: Vec<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth container inspect [OPTIONS] CONTAINER [CONTAINER...]",
    after_help = "Examples:\n  berth container inspect -f '{{.State.Status}}' web"
)]
pub struct ContainerArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long)]
    size: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    names: Vec<String>,
}

#[derive(clap::Args)]
#[command(
    override_usage = "berth image inspect [OPTIONS] IMAGE [IMAGE...]",
    after_help = "Examples:\n  berth image inspect -f '{{.Id}}' busybox"
)]
pub struct ImageArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long)]
    format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    names: Vec<String>,
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Any,
    Container,
    Image,
    Volume,
    Network,
}

fn fetch(ctx: &Ctx, kind: Kind, name: &str, size: bool) -> anyhow::Result<Vec<u8>> {
    let get = |path: String| ctx.client.call("GET", &path, Body::Empty).and_then(|r| r.bytes());
    let q = if size { "?size=1" } else { "" };
    match kind {
        Kind::Container => get(format!("/containers/{}/json{q}", path_escape(name))),
        Kind::Image => get(format!("/images/{}/json", path_escape(name))),
        Kind::Volume => get(format!("/volumes/{}", path_escape(name))),
        Kind::Network => get(format!("/networks/{}", path_escape(name))),
        Kind::Any => match get(format!("/containers/{}/json{q}", path_escape(name))) {
            Err(e) if is_not_found(&e) => match get(format!("/images/{}/json", path_escape(name))) {
                Err(e) if is_not_found(&e) => Err(anyhow::anyhow!("Error: No such object: {name}")),
                r => r,
            },
            r => r,
        },
    }
}

fn inspect(ctx: &Ctx, kind: Kind, names: &[String], format: Option<&str>, size: bool) -> anyhow::Result<i32> {
    let tmpl = match format {
        Some(f) if !f.is_empty() => {
            let f = if f == "json" { "{{json .}}" } else { f };
            Some(Template::parse(f).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?)
        }
        _ => None,
    };
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let mut errs = Vec::new();
    let mut out = String::new();
    for n in names {
        match fetch(ctx, kind, n, size) {
            Ok(raw) => match &tmpl {
                Some(t) => {
                    let v =
                        Val::parse(&raw).map_err(|e| anyhow::anyhow!("unable to read inspect data: {e}"))?;
                    match t.render(&v) {
                        Ok(s) => {
                            out.push_str(&s);
                            out.push('\n');
                        }
                        Err(e) => {
                            print(&out);
                            return Err(status(1, format!("template parsing error: {e}")));
                        }
                    }
                }
                None => raws.push(raw),
            },
            Err(e) => errs.push(if e.downcast_ref::<ApiError>().is_some() {
                format!("{e:#}")
            } else {
                e.to_string()
            }),
        }
    }
    if tmpl.is_none() {
        if raws.is_empty() {
            out.push_str("[]\n");
        } else {
            let mut all = b"[".to_vec();
            for (i, r) in raws.iter().enumerate() {
                if i > 0 {
                    all.push(b',');
                }
                all.extend_from_slice(r);
            }
            all.push(b']');
            out.push_str(&json_indent(&all));
            out.push('\n');
        }
    }
    print(&out);
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(status(1, errs.join("\n")))
    }
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let kind = match a.kind.as_deref() {
        None | Some("") => Kind::Any,
        Some("container") => Kind::Container,
        Some("image") => Kind::Image,
        Some(t) => anyhow::bail!("\"{t}\" is not a valid value for --type"),
    };
    inspect(ctx, kind, &a.names, a.format.as_deref(), a.size)
}

pub fn run_container(ctx: &Ctx, a: ContainerArgs) -> anyhow::Result<i32> {
    inspect(ctx, Kind::Container, &a.names, a.format.as_deref(), a.size)
}

/// `network inspect`.
pub fn run_network(ctx: &Ctx, names: &[String], format: Option<&str>) -> anyhow::Result<i32> {
    inspect(ctx, Kind::Network, names, format, false)
}

pub fn run_image(ctx: &Ctx, a: ImageArgs) -> anyhow::Result<i32> {
    inspect(ctx, Kind::Image, &a.names, a.format.as_deref(), false)
}

pub fn run_volume(ctx: &Ctx, names: Vec<String>, format: Option<String>) -> anyhow::Result<i32> {
    inspect(ctx, Kind::Volume, &names, format.as_deref(), false)
}
