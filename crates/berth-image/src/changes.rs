//! `docker import --change` / `docker commit --change`: Dockerfile instructions applied to an
//! image's container config, parsed like docker's builder (exec or shell form, `key=value` pairs
//! with quotes, `$VAR` expansion from the config's environment).

use std::collections::BTreeMap;

use crate::config::{ContainerConfig, Empty, HealthConfig};

/// Applies every change line to `cfg`. Errors are docker's messages.
pub fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<(), String> {
    let mut cmd_set = false;
    for line in changes.iter().flat_map(|c| c.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = match line.find(char::is_whitespace) {
            Some(i) => (&line[..i], line[i..].trim()),
            None => (line, ""),
        };
        let instr = word.to_lowercase();
        match instr.as_str() {
            "cmd" => {
                cfg.cmd = Some(exec_or_shell(rest));
                cmd_set = true;
            }
            "entrypoint" => {
                let ep = exec_or_shell(rest);
                cfg.entrypoint = if rest.is_empty() { None } else { Some(ep) };
                if !cmd_set {
                    cfg.cmd = None;
                }
            }
            "env" => {
                for (k, v) in name_vals(&instr, rest, cfg)? {
                    let env = cfg.env.get_or_insert_with(Vec::new);
                    let prefix = format!("{k}=");
                    match env.iter_mut().find(|e| e.starts_with(&prefix) || **e == k) {
                        Some(e) => *e = format!("{k}={v}"),
                        None => env.push(format!("{k}={v}")),
                    }
                }
            }
            "label" => {
                for (k, v) in name_vals(&instr, rest, cfg)? {
                    cfg.labels.get_or_insert_with(BTreeMap::new).insert(k, v);
                }
            }
            "expose" => {
                if rest.is_empty() {
                    return Err("EXPOSE requires at least one argument".into());
                }
                for word in rest.split_whitespace() {
                    let word = expand(word, cfg);
                    for port in expand_ports(&word)? {
                        cfg.exposed_ports
                            .get_or_insert_with(BTreeMap::new)
                            .insert(port, Empty {});
                    }
                }
            }
            "volume" => {
                let vols = match json_array(rest) {
                    Some(v) => v,
                    None => rest.split_whitespace().map(str::to_string).collect(),
                };
                if vols.is_empty() {
                    return Err("VOLUME requires at least one argument".into());
                }
                for v in vols {
                    let v = expand(v.trim(), cfg);
                    if v.is_empty() {
                        return Err("VOLUME specified can not be an empty string".into());
                    }
                    cfg.volumes.get_or_insert_with(BTreeMap::new).insert(v, Empty {});
                }
            }
            "workdir" => {
                if rest.is_empty() {
                    return Err("WORKDIR requires exactly one argument".into());
                }
                let w = expand(rest, cfg);
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{w}", cfg.working_dir)
                };
                cfg.working_dir = clean_path(&joined);
            }
            "user" => {
                if rest.is_empty() {
                    return Err("USER requires exactly one argument".into());
                }
                cfg.user = expand(rest, cfg);
            }
            "healthcheck" => cfg.healthcheck = Some(healthcheck(rest)?),
            "onbuild" => {
                let trigger = rest.split_whitespace().next().unwrap_or("").to_lowercase();
                match trigger.as_str() {
                    "" => return Err("ONBUILD requires at least one argument".into()),
                    "onbuild" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                    "maintainer" | "from" => {
                        return Err(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            trigger.to_uppercase()
                        ))
                    }
                    _ => cfg.on_build.get_or_insert_with(Vec::new).push(rest.to_string()),
                }
            }
            _ => return Err(format!("{instr} is not a valid change command")),
        }
    }
    Ok(())
}

/// `["a","b"]` → exec form; anything else → `["/bin/sh", "-c", rest]`.
/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
/// [--start-interval=D] [--retries=N] CMD command` (shell or exec form), with the builder's
/// messages.
fn healthcheck(rest: &str) -> Result<HealthConfig, String> {
    let mut words = rest;
    let mut flags = Vec::new();
    while let Some(f) = words.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        flags.push(&f[..end]);
        words = f[end..].trim_start();
    }
    let (kind, cmd) = match words.find(char::is_whitespace) {
        Some(p) => (&words[..p], words[p..].trim_start()),
        None => (words, ""),
    };
    let mut hc = HealthConfig::default();
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !cmd.is_empty() {
                return Err("HEALTHCHECK NONE takes no arguments".into());
            }
            if !flags.is_empty() {
                return Err("HEALTHCHECK NONE takes no flags".into());
            }
            hc.test = vec!["NONE".into()];
            return Ok(hc);
        }
        "CMD" if cmd.is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
        "CMD" => {
            hc.test = match json_array(cmd) {
                Some(args) => std::iter::once("CMD".to_string()).chain(args).collect(),
                None => vec!["CMD-SHELL".into(), cmd.to_string()],
            };
        }
        "" => return Err("HEALTHCHECK requires at least one argument".into()),
        other => return Err(format!("Unknown type \"{other}\" in HEALTHCHECK (try CMD)")),
    }
    for f in flags {
        let (name, v) = f.split_once('=').unwrap_or((f, ""));
        if name == "retries" {
            hc.retries = v
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"))?;
            continue;
        }
        let slot = match name {
            "interval" => &mut hc.interval,
            "timeout" => &mut hc.timeout,
            "start-period" => &mut hc.start_period,
            "start-interval" => &mut hc.start_interval,
            _ => return Err(format!("Unknown flag: {name}")),
        };
        let d = berth_types::time::go_duration(v)?;
        if d != 0 && d < 1_000_000 {
            return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
        }
        *slot = d;
    }
    Ok(hc)
}

fn exec_or_shell(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

/// `ENV`/`LABEL` arguments: `k=v k2="v 2"` or the legacy `k value with spaces`.
fn name_vals(instr: &str, rest: &str, cfg: &ContainerConfig) -> Result<Vec<(String, String)>, String> {
    let up = instr.to_uppercase();
    let words = split_words(rest);
    if words.is_empty() {
        return Err(format!("{up} requires at least one argument"));
    }
    if !words[0].contains('=') {
        // Legacy form: the first word is the key, the rest of the line the value.
        let key = words[0].clone();
        let value = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..].trim();
        if value.is_empty() {
            return Err(format!("{up} must have two arguments"));
        }
        return Ok(vec![(unquote(&key, cfg), unquote(value, cfg))]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        let k = unquote(k, cfg);
        if k.is_empty() {
            return Err(format!("{up} names can not be blank"));
        }
        out.push((k, unquote(v, cfg)));
    }
    Ok(out)
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the words.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (q, '\\') if q != Some('\'') => {
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Shell-word processing: removes quotes, handles backslash escapes, expands `$VAR`/`${VAR}`
/// (not inside single quotes) from the config's environment.
fn unquote(s: &str, cfg: &ContainerConfig) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'') | (None, '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    if quote == Some('"') && !matches!(n, '"' | '\\' | '$') {
                        out.push('\\');
                    }
                    out.push(n);
                }
            }
            (_, '$') => out.push_str(&expand_var(&mut chars, cfg)),
            (_, c) => out.push(c),
        }
    }
    out
}

fn expand(s: &str, cfg: &ContainerConfig) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            out.push_str(&expand_var(&mut chars, cfg));
        } else {
            out.push(c);
        }
    }
    out
}

fn expand_var(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, cfg: &ContainerConfig) -> String {
    let mut name = String::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        for c in chars.by_ref() {
            if c == '}' {
                break;
            }
            name.push(c);
        }
        // ${VAR:-default} and friends: keep it simple, take the name part.
        if let Some(i) = name.find(':') {
            name.truncate(i);
        }
    } else {
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return "$".to_string();
        }
    }
    let prefix = format!("{name}=");
    cfg.env
        .iter()
        .flatten()
        .rev()
        .find_map(|e| e.strip_prefix(&prefix))
        .unwrap_or("")
        .to_string()
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`, …
fn expand_ports(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {p}"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(ports)?, parse(ports)?),
    };
    if hi < lo {
        return Err(format!("invalid range specified for container port: {ports}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Lexical `path.Clean` of an absolute path.
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(lines: &[&str]) -> Result<ContainerConfig, String> {
        let mut cfg = ContainerConfig::default();
        apply_changes(&mut cfg, &lines.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        Ok(cfg)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = apply(&["CMD [\"cat\",\"/hello.txt\"]"]).unwrap();
        assert_eq!(c.cmd, Some(vec!["cat".into(), "/hello.txt".into()]));
        let c = apply(&["cmd echo hi there"]).unwrap();
        assert_eq!(
            c.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi there".into()])
        );
        let c = apply(&["CMD [\"x\"]", "ENTRYPOINT [\"/ep\"]"]).unwrap();
        assert_eq!(
            c.cmd,
            Some(vec!["x".into()]),
            "CMD set by a change survives ENTRYPOINT"
        );
        assert_eq!(c.entrypoint, Some(vec!["/ep".into()]));
    }

    #[test]
    fn env_and_labels() {
        let c = apply(&[
            "ENV PATH=/bin",
            "ENV A=1 B=\"two words\" C='$A'",
            "ENV D ${A}x y",
            "ENV PATH=$PATH:/usr/bin",
        ])
        .unwrap();
        assert_eq!(
            c.env.unwrap(),
            vec!["PATH=/bin:/usr/bin", "A=1", "B=two words", "C=$A", "D=1x y"]
        );
        let c = apply(&["LABEL a=b \"c d\"=e"]).unwrap();
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e");
        assert!(apply(&["ENV"]).is_err());
        assert!(apply(&["ENV =x"]).is_err());
    }

    #[test]
    fn expose_volume_workdir_user_onbuild() {
        let c = apply(&[
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME [\"/data\", \"/logs\"]",
            "VOLUME /x /y",
            "WORKDIR /app",
            "WORKDIR sub/../src",
            "USER nobody:nogroup",
            "ONBUILD RUN echo hi",
        ])
        .unwrap();
        assert_eq!(
            c.exposed_ports.unwrap().keys().cloned().collect::<Vec<_>>(),
            ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]
        );
        assert_eq!(
            c.volumes.unwrap().keys().cloned().collect::<Vec<_>>(),
            ["/data", "/logs", "/x", "/y"]
        );
        assert_eq!(c.working_dir, "/app/src");
        assert_eq!(c.user, "nobody:nogroup");
        assert_eq!(c.on_build, Some(vec!["RUN echo hi".into()]));
    }

    #[test]
    fn invalid_commands() {
        assert_eq!(
            apply(&["RUN echo hi"]).unwrap_err(),
            "run is not a valid change command"
        );
        assert_eq!(
            apply(&["FROM busybox"]).unwrap_err(),
            "from is not a valid change command"
        );
        // dockerd's commit/import take no STOPSIGNAL (its validCommitCommands).
        assert_eq!(
            apply(&["STOPSIGNAL SIGINT"]).unwrap_err(),
            "stopsignal is not a valid change command"
        );
        assert!(apply(&["EXPOSE abc"]).is_err());
        assert!(apply(&["ONBUILD ONBUILD RUN x"]).is_err());
    }

    #[test]
    fn healthcheck_as_the_builder_reads_it() {
        let hc = |l: &str| apply(&[l]).map(|c| c.healthcheck.unwrap());
        let h = hc("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/ || exit 1").unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "curl -f http://x/ || exit 1"]);
        assert_eq!((h.interval, h.retries, h.timeout), (5_000_000_000, 3, 0));
        let h = hc("HEALTHCHECK --timeout=1m30s --start-period=100ms CMD [\"true\", \"x\"]").unwrap();
        assert_eq!(h.test, ["CMD", "true", "x"]);
        assert_eq!((h.timeout, h.start_period), (90_000_000_000, 100_000_000));
        assert_eq!(hc("HEALTHCHECK NONE").unwrap().test, ["NONE"]);
        assert_eq!(
            hc("HEALTHCHECK CMD").unwrap_err(),
            "Missing command after HEALTHCHECK CMD"
        );
        assert_eq!(
            hc("HEALTHCHECK --interval=1us CMD true").unwrap_err(),
            "Interval \"interval\" cannot be less than 1ms"
        );
        assert_eq!(
            hc("HEALTHCHECK --interval=5 CMD true").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert!(hc("HEALTHCHECK --nope=1 CMD true").is_err());
        assert!(hc("HEALTHCHECK RUN true").is_err());
    }
}
