//! `berth diff CONTAINER`: filesystem changes as `C /path`, `A /path`, `D /path`.

use super::create::container_path;
use super::{print, Ctx};

#[derive(clap::Args)]
#[command(
    override_usage = "berth diff CONTAINER",
    after_help = "Examples:\n  berth diff web"
)]
pub struct Args {
    container: String,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    let v = ctx.client.get_json(&container_path(&a.container, "/changes"))?;
    let mut out = String::new();
    for c in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let kind = match c["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        out.push_str(&format!("{kind} {}\n", c["Path"].as_str().unwrap_or("")));
    }
    print(&out);
    Ok(0)
}
