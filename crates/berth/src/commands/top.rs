//! `berth top CONTAINER [ps OPTIONS]`.

use crate::client::Query;
use crate::format::tabwrite_with;

use super::create::container_path;
use super::{print, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth top CONTAINER [ps OPTIONS]",
    after_help = "Examples:\n  berth top web\n  berth top web aux"
)]
pub struct Args {
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let mut q = Query::new();
    if !a.ps_args.is_empty() {
        q.add("ps_args", a.ps_args.join(" "));
    }
    let v = ctx
        .client
        .get_json(&container_path(&a.container, &format!("/top{}", q.encode())))?;
    let strs = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    };
    let mut out = strs(&v["Titles"]).join("\t");
    out.push('\n');
    for p in v["Processes"].as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push_str(&strs(p).join("\t"));
        out.push('\n');
    }
    print(&tabwrite_with(&out, 20, 3));
    Ok(0)
}
