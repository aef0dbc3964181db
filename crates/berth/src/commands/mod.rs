//! One file per command. Each exposes `Args` (clap) and `run(ctx, args) -> exit code`.

pub mod attach;
pub mod build;
pub mod commit;
pub mod cp;
pub mod create;
pub mod df;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod login;
pub mod logs;
pub mod network;
pub mod pause;
pub mod port;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod search;
pub mod start;
pub mod stats;
pub mod stop;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod update;
pub mod version;
pub mod volume;
pub mod wait;

use std::fmt;
use std::io::{BufRead, Write};

use crate::client::{ApiError, Client};
use crate::format::tabwrite;
use crate::json::Val;
use crate::template::Template;

pub struct Ctx {
    pub client: Client,
}

/// Ends the program with `code`, printing `msg` (if any) to stderr, like docker's `cli.StatusError`.
#[derive(Debug)]
pub struct StatusError {
    pub code: i32,
    pub msg: String,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}
impl std::error::Error for StatusError {}

pub fn status(code: i32, msg: impl Into<String>) -> anyhow::Error {
    StatusError {
        code,
        msg: msg.into(),
    }
    .into()
}

pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 404)
}

/// Renders a list the way docker's formatter does: `table …` gets a header and tabwriter
/// alignment, `json` means `{{json .}}`, `\t`/`\n` escapes are expanded, and every row ends in `\n`.
pub fn render_list(format: &str, rows: &[Val], header: &Val) -> anyhow::Result<String> {
    let (is_table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest),
        None if format == "json" => (false, "{{json .}}"),
        None => (false, format),
    };
    let body = body.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n");
    let t = Template::parse(&body).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    let mut out = String::new();
    for r in rows {
        out.push_str(
            &t.render_row(r)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?,
        );
        out.push('\n');
    }
    if is_table {
        let mut h = t.render_header(header).unwrap_or_default();
        h.push('\n');
        h.push_str(&out);
        return Ok(tabwrite(&h));
    }
    Ok(out)
}

pub fn print(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Prints a JSON-message stream (pull, import, load) as docker's non-terminal display does.
/// Returns the first error message found in the stream.
pub fn display_json_messages(r: &mut dyn BufRead, out: &mut dyn Write) -> anyhow::Result<()> {
    crate::progress::display(r, out, false, &mut |_| {})
}

/// Splits `name[:tag][@digest]` the way docker's reference parser does, defaulting the tag to `latest`.
pub fn split_ref(r: &str) -> (String, String) {
    if let Some((name, dig)) = r.split_once('@') {
        return (name.to_owned(), dig.to_owned());
    }
    let slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[slash..].rfind(':') {
        Some(i) => (r[..slash + i].to_owned(), r[slash + i + 1..].to_owned()),
        None => (r.to_owned(), "latest".to_owned()),
    }
}

/// Trailing positionals accept hyphen values (for the container command); a leading one is an
/// unknown flag, as docker's interspersed=false parsing reports it.
pub fn reject_flag_as_positional(first: &str, cmd: &str) -> anyhow::Result<()> {
    if first.starts_with('-') && first.len() > 1 {
        let name = first.split('=').next().unwrap_or(first);
        let kind = if name.starts_with("--") {
            "flag"
        } else {
            "shorthand flag"
        };
        let shown = if name.starts_with("--") {
            name.to_owned()
        } else {
            format!("'{}' in {name}", &name[1..2])
        };
        return Err(status(
            125,
            format!("unknown {kind}: {shown}\n\nUsage:  berth {cmd} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth {cmd} --help' for more information"),
        ));
    }
    Ok(())
}

/// Runs `f` for each argument, printing the argument on success and collecting errors (printed
/// one per line at the end, exit 1), as docker's stop/kill/pause do.
pub fn for_each(args: &[String], f: impl Fn(&str) -> anyhow::Result<()>) -> anyhow::Result<i32> {
    let mut errs = Vec::new();
    for a in args {
        match f(a) {
            Ok(()) => print(&format!("{a}\n")),
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(status(1, errs.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_and_normalize() {
        assert_eq!(split_ref("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split_ref("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            split_ref("localhost:5000/a"),
            ("localhost:5000/a".into(), "latest".into())
        );
    }

    #[test]
    fn lists_render_as_tables() {
        let rows = vec![Val::obj(vec![
            ("ID", Val::str("abc")),
            ("Names", Val::str("web")),
        ])];
        let header = Val::obj(vec![
            ("ID", Val::str("CONTAINER ID")),
            ("Names", Val::str("NAMES")),
        ]);
        assert_eq!(
            render_list("table {{.ID}}\\t{{.Names}}", &rows, &header).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\n"
        );
        assert_eq!(render_list("{{.ID}}", &rows, &header).unwrap(), "abc\n");
        assert_eq!(
            render_list("json", &rows, &header).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
    }

    #[test]
    fn json_messages_display_and_fail() {
        let mut out = Vec::new();
        let input = b"{\"status\":\"sha256:abc\"}\r\n{\"stream\":\"Loaded image: a:b\\n\"}\r\n";
        display_json_messages(&mut &input[..], &mut out).unwrap();
        assert_eq!(out, b"sha256:abc\nLoaded image: a:b\n");
        let bad = b"{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n";
        let e = display_json_messages(&mut &bad[..], &mut out).unwrap_err();
        assert_eq!(e.to_string(), "boom");
    }
}
