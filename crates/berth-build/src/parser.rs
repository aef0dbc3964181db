//! The Dockerfile parser: text in, instructions out. Pure; no expansion (that happens per
//! instruction at build time, in the scope of that stage's ENV and ARGs).
//!
//! Docker's rules, as its parser applies them:
//! * Parser directives (`# escape=`, `# syntax=`, `# check=`) only at the very top, before any
//!   instruction, blank line or other comment; `escape` is `\` or `` ` ``; `syntax` is accepted
//!   and ignored.
//! * A line whose first non-blank character is `#` is a comment, also between continued lines.
//! * A line ending in the escape character (trailing blanks allowed) continues on the next one;
//!   the escape character is dropped and the lines are joined as they are. Empty lines inside a
//!   continuation are skipped.
//! * The instruction word is case-insensitive; `--name=value` flags follow it.
//! * RUN/CMD/ENTRYPOINT/SHELL take a JSON array (exec form) or a string (shell form);
//!   COPY/ADD/VOLUME a JSON array or whitespace-separated words; ENV/LABEL `k=v` pairs (or the
//!   old `ENV k v`); ARG `name[=default]`.
//! * Heredocs (BuildKit's syntax): on RUN, COPY and ADD, `<<WORD`, `<<-WORD` (leading tabs
//!   stripped) and `<<"WORD"`/`<<'WORD'` (no expansion) read the following lines up to `WORD`.

use crate::Error;

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word (`EOF`).
    pub name: String,
    /// The lines between the instruction and the terminator, each ending in `\n`.
    pub content: String,
    /// Unquoted terminator: variables in `content` are expanded (COPY) or left to the shell (RUN).
    pub expand: bool,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the instruction word.
    pub line: usize,
    /// Lower-case instruction word (`run`).
    pub cmd: String,
    /// `--name=value` (or `--name`) flags, as written, without the leading `--`.
    pub flags: Vec<(String, Option<String>)>,
    /// The arguments: one string for shell forms and single-string instructions; the list for
    /// exec forms and word lists; `k=v` strings for ENV/LABEL/ARG (quotes kept, for expansion).
    pub args: Vec<String>,
    /// Exec (JSON) form.
    pub json: bool,
    /// The instruction as written (continuations joined), what `Step N/M : …` prints.
    pub original: String,
    /// Heredocs in order of their markers.
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    /// The value of a flag, if given (`--from=x` → `Some("x")`, `--link` → `Some("")`).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The text after the instruction word and flags, for shell forms.
    pub fn rest(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

fn perr(line: usize, message: impl Into<String>) -> Error {
    Error::Parse {
        line,
        message: message.into(),
    }
}

/// Known instructions and the flags each accepts.
fn allowed_flags(cmd: &str) -> Option<&'static [&'static str]> {
    Some(match cmd {
        "from" => &["platform"],
        "copy" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "add" => &["chown", "chmod", "link", "checksum", "keep-git-dir"],
        "run" => &["mount", "network", "security"],
        "healthcheck" => &["interval", "timeout", "start-period", "start-interval", "retries"],
        "cmd" | "entrypoint" | "env" | "arg" | "label" | "workdir" | "user" | "expose" | "volume"
        | "stopsignal" | "shell" | "onbuild" | "maintainer" => &[],
        _ => return None,
    })
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, Error> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut i = 0;
    // Directives.
    let mut seen = std::collections::HashSet::new();
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(body) = l.strip_prefix('#') else { break };
        let body = body.trim();
        let Some((k, v)) = body.split_once('=') else { break };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            break;
        }
        let v = v.trim();
        match k.as_str() {
            "escape" | "syntax" | "check" => {
                if !seen.insert(k.clone()) {
                    return Err(perr(i + 1, format!("only one {k} parser directive can be used")));
                }
                if k == "escape" {
                    escape = match v {
                        "\\" => '\\',
                        "`" => '`',
                        _ => {
                            return Err(perr(
                                i + 1,
                                format!("invalid escape token '{v}' does not match ` or \\"),
                            ))
                        }
                    };
                }
            }
            _ => break,
        }
        i += 1;
    }

    let mut out = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim_start();
        let start = i;
        i += 1;
        if first.trim().is_empty() || first.starts_with('#') {
            continue;
        }
        let (mut line, mut more) = trim_continuation(first, escape);
        while more && i < lines.len() {
            let next = lines[i];
            i += 1;
            let t = next.trim();
            if t.starts_with('#') {
                continue;
            }
            if t.is_empty() {
                continue;
            }
            let (l, m) = trim_continuation(next, escape);
            line.push_str(&l);
            more = m;
        }
        let mut inst = parse_line(&line, start + 1, escape)?;
        if matches!(inst.cmd.as_str(), "run" | "copy" | "add") {
            for (name, expand, strip_tabs) in heredoc_markers(&line) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l = if strip_tabs { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        closed = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                if !closed {
                    return Err(perr(start + 1, format!("unterminated heredoc {name}")));
                }
                inst.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        out.push(inst);
    }
    Ok(Dockerfile {
        escape,
        instructions: out,
    })
}

/// Drops a trailing escape character (and the blanks after it): `(line, continues)`.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s.to_string(), true),
        None => (line.to_string(), false),
    }
}

/// Heredoc markers in an instruction line: `(word, expand, strip leading tabs)`.
pub fn heredoc_markers(line: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut k = 0;
    let mut quote: Option<u8> = None;
    while k + 1 < b.len() {
        let c = b[k];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            k += 1;
            continue;
        }
        if c == b'\'' || c == b'"' {
            quote = Some(c);
            k += 1;
            continue;
        }
        if c == b'<' && b[k + 1] == b'<' && (k + 2 >= b.len() || b[k + 2] != b'<') {
            let mut j = k + 2;
            let strip = j < b.len() && b[j] == b'-';
            if strip {
                j += 1;
            }
            let q = (j < b.len() && (b[j] == b'"' || b[j] == b'\'')).then(|| b[j]);
            if q.is_some() {
                j += 1;
            }
            let s = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > s {
                let word = line[s..j].to_string();
                if let Some(q) = q {
                    if j < b.len() && b[j] == q {
                        j += 1;
                    }
                }
                out.push((word, q.is_none(), strip));
                k = j;
                continue;
            }
        }
        k += 1;
    }
    out
}

/// Splits one logical line into an instruction.
fn parse_line(line: &str, lineno: usize, escape: char) -> Result<Instruction, Error> {
    let trimmed = line.trim();
    let (word, rest) = match trimmed.find(char::is_whitespace) {
        Some(p) => (&trimmed[..p], trimmed[p..].trim_start()),
        None => (trimmed, ""),
    };
    let cmd = word.to_ascii_lowercase();
    let Some(allowed) = allowed_flags(&cmd) else {
        return Err(perr(lineno, format!("unknown instruction: {word}")));
    };
    let (flags, rest) = extract_flags(rest);
    for (name, _) in &flags {
        if !allowed.contains(&name.as_str()) {
            return Err(perr(lineno, format!("Unknown flag: {name}")));
        }
    }
    let mut inst = Instruction {
        line: lineno,
        cmd: cmd.clone(),
        flags,
        args: Vec::new(),
        json: false,
        original: trimmed.to_string(),
        heredocs: Vec::new(),
    };
    let upper = cmd.to_ascii_uppercase();
    match cmd.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => {
            if let Some(list) = json_array(rest) {
                inst.args = list;
                inst.json = true;
            } else {
                if cmd == "shell" {
                    return Err(perr(lineno, "SHELL requires the arguments to be in JSON form"));
                }
                if rest.is_empty() && cmd == "run" {
                    return Err(perr(lineno, "RUN requires at least one argument"));
                }
                inst.args = vec![rest.to_string()];
            }
        }
        "copy" | "add" | "volume" => {
            if let Some(list) = json_array(rest) {
                inst.args = list;
                inst.json = true;
            } else {
                inst.args = rest.split_whitespace().map(str::to_string).collect();
            }
            if inst.args.is_empty() && cmd == "volume" {
                return Err(perr(lineno, "VOLUME requires at least one argument"));
            }
            if cmd != "volume" && inst.args.len() < 2 {
                return Err(perr(lineno, format!("{upper} requires at least two arguments, but only one was provided. Destination could not be determined.")));
            }
        }
        "env" | "label" => {
            inst.args = parse_name_val(rest, &upper, escape).map_err(|m| perr(lineno, m))?;
        }
        "arg" => {
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(perr(lineno, "ARG requires exactly one argument"));
            }
            inst.args = words;
        }
        "from" | "expose" => {
            inst.args = rest.split_whitespace().map(str::to_string).collect();
            if inst.args.is_empty() {
                return Err(perr(lineno, format!("{upper} requires at least one argument")));
            }
            if cmd == "from"
                && !(inst.args.len() == 1
                    || (inst.args.len() == 3 && inst.args[1].eq_ignore_ascii_case("as")))
            {
                return Err(perr(lineno, "FROM requires either one or three arguments"));
            }
        }
        "healthcheck" => {
            let (kind, r) = match rest.find(char::is_whitespace) {
                Some(p) => (&rest[..p], rest[p..].trim_start()),
                None => (rest, ""),
            };
            match kind.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !r.is_empty() {
                        return Err(perr(lineno, "HEALTHCHECK NONE takes no arguments"));
                    }
                    inst.args = vec!["NONE".into()];
                }
                "CMD" => {
                    if r.is_empty() {
                        return Err(perr(lineno, "Missing command after HEALTHCHECK CMD"));
                    }
                    inst.args = vec!["CMD".into()];
                    match json_array(r) {
                        Some(l) => {
                            inst.json = true;
                            inst.args.extend(l);
                        }
                        None => inst.args.push(r.to_string()),
                    }
                }
                other => {
                    return Err(perr(
                        lineno,
                        format!("Unknown type {other:?} in HEALTHCHECK (try CMD)"),
                    ));
                }
            }
        }
        "onbuild" => {
            let sub = parse_line(rest, lineno, escape)?;
            match sub.cmd.as_str() {
                "onbuild" => {
                    return Err(perr(
                        lineno,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "from" | "maintainer" => {
                    return Err(perr(
                        lineno,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            sub.cmd.to_ascii_uppercase()
                        ),
                    ))
                }
                _ => {}
            }
            inst.args = vec![rest.to_string()];
        }
        _ => {
            // workdir, user, stopsignal, maintainer: one string.
            if rest.is_empty() {
                return Err(perr(lineno, format!("{upper} requires exactly one argument")));
            }
            inst.args = vec![rest.to_string()];
        }
    }
    Ok(inst)
}

/// `--name=value` words at the start of `rest`; `--` alone ends them.
fn extract_flags(rest: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut r = rest;
    loop {
        let t = r.trim_start();
        if !t.starts_with("--") {
            return (flags, t);
        }
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let word = &t[2..end];
        r = &t[end..];
        if word.is_empty() {
            return (flags, r.trim_start());
        }
        match word.split_once('=') {
            Some((n, v)) => flags.push((n.to_string(), Some(v.to_string()))),
            None => flags.push((word.to_string(), None)),
        }
    }
}

/// A JSON array of strings, or `None` (then the instruction is in shell form).
fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

/// Words separated by blanks; quotes and escapes are kept in the word (expansion removes
/// them) but protect blanks.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
                word.push(c);
                continue;
            }
            if c == escape && q != '\'' {
                match chars.next() {
                    Some(n) => {
                        word.push(c);
                        word.push(n);
                    }
                    None => quote = None,
                }
                continue;
            }
            word.push(c);
            continue;
        }
        if c.is_whitespace() {
            if in_word && (blank_ok || !word.is_empty()) {
                words.push(std::mem::take(&mut word));
            }
            in_word = false;
            blank_ok = false;
            continue;
        }
        in_word = true;
        if c == '\'' || c == '"' {
            quote = Some(c);
            blank_ok = true;
            word.push(c);
            continue;
        }
        if c == escape {
            if let Some(n) = chars.next() {
                word.push(c);
                word.push(n);
            }
            continue;
        }
        word.push(c);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV/LABEL arguments as `key=value` strings (values still quoted, for expansion).
fn parse_name_val(rest: &str, upper: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(format!("{upper} requires at least one argument"));
    }
    if !words[0].contains('=') {
        // The old form: `ENV key the value`.
        let t = rest.trim();
        let p = t
            .find(char::is_whitespace)
            .ok_or_else(|| format!("{upper} must have two arguments"))?;
        let (k, v) = (&t[..p], t[p..].trim_start());
        return Ok(vec![format!("{k}={}", quote_literal(v))]);
    }
    let mut out = Vec::new();
    for w in words {
        if !w.contains('=') {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        }
        if w.starts_with('=') {
            return Err(format!("{upper} names can not be blank"));
        }
        out.push(w);
    }
    Ok(out)
}

/// The old `ENV k v` form takes the rest of the line as the value; expansion still applies to
/// it as one word. Kept as written (expansion removes the quotes it holds).
fn quote_literal(v: &str) -> String {
    v.to_string()
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
