//! A Go `text/template` subset for `--format`, evaluated over JSON values.
//!
//! Supported: `{{.A.B}}`, `{{.}}`, `$`, `$x := …`, pipelines `|`, parentheses, `if/else if/else`,
//! `range` (with `$i, $v :=`), `with`, `{{- -}}` trimming, comments, and docker's functions
//! (`json join split lower upper title pad truncate println`) plus Go's builtins (`index len
//! printf print eq ne lt le gt ge and or not`). Values print as Go's `%v` prints the decoded JSON
//! (`map[k:v]`, `[a b]`, numbers as sent). Unknown map keys are an error, as with docker's
//! `missingkey=error` raw-inspect fallback.

mod lex;

use lex::{lex_action, Tok};

use std::borrow::Cow;

use crate::json::Val;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
    src: String,
    pos: usize,
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Box<Arg>, Vec<String>),
    Dot,
    Var(String),
    Str(String),
    Num(String),
    Bool(bool),
    Nil,
    Ident(String),
    Sub(Pipe),
}

#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

fn parse_pipe(toks: &[Tok], src: &str, pos: usize) -> Result<Pipe, String> {
    let mut toks = toks;
    let mut decl = Vec::new();
    // `$x :=` or `$i, $v :=`
    if let Some(dpos) = toks.iter().position(|t| *t == Tok::Decl || *t == Tok::Assign) {
        if toks[..dpos]
            .iter()
            .all(|t| matches!(t, Tok::Var(_, p) if p.is_empty()) || *t == Tok::Comma)
        {
            for t in &toks[..dpos] {
                if let Tok::Var(n, _) = t {
                    decl.push(n.clone());
                }
            }
            toks = &toks[dpos + 1..];
        }
    }
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err("missing command".into());
                }
                cmds.push(std::mem::take(&mut cur));
            }
            Tok::LParen => {
                let mut depth = 1;
                let start = i + 1;
                let mut j = start;
                while j < toks.len() {
                    match toks[j] {
                        Tok::LParen => depth += 1,
                        Tok::RParen(_) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if j >= toks.len() {
                    return Err("unclosed left paren".into());
                }
                let sub = Arg::Sub(parse_pipe(&toks[start..j], src, pos)?);
                let path = match &toks[j] {
                    Tok::RParen(p) => p.clone(),
                    _ => unreachable!(),
                };
                cur.push(if path.is_empty() {
                    sub
                } else {
                    Arg::Field(Box::new(sub), path)
                });
                i = j;
            }
            Tok::RParen(_) => return Err("unexpected right paren".into()),
            Tok::Field(p) if p.is_empty() => cur.push(Arg::Dot),
            Tok::Field(p) => cur.push(Arg::Field(Box::new(Arg::Dot), p.clone())),
            Tok::Var(n, p) if p.is_empty() => cur.push(Arg::Var(n.clone())),
            Tok::Var(n, p) => cur.push(Arg::Field(Box::new(Arg::Var(n.clone())), p.clone())),
            Tok::Str(s) => cur.push(Arg::Str(s.clone())),
            Tok::Num(n) => cur.push(Arg::Num(n.clone())),
            Tok::Ident(n) => cur.push(match n.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => {
                    if !is_func(n) {
                        return Err(format!("function {n:?} not defined"));
                    }
                    Arg::Ident(n.clone())
                }
            }),
            Tok::Decl | Tok::Assign | Tok::Comma => return Err("unexpected token in pipeline".into()),
        }
        i += 1;
    }
    if cur.is_empty() {
        return Err("missing value for command".into());
    }
    cmds.push(cur);
    Ok(Pipe {
        decl,
        cmds,
        src: src.to_owned(),
        pos,
    })
}

fn is_func(n: &str) -> bool {
    matches!(
        n,
        "json"
            | "join"
            | "split"
            | "lower"
            | "upper"
            | "title"
            | "pad"
            | "truncate"
            | "println"
            | "print"
            | "printf"
            | "index"
            | "len"
            | "eq"
            | "ne"
            | "lt"
            | "le"
            | "gt"
            | "ge"
            | "and"
            | "or"
            | "not"
            | "slice"
    )
}

enum Item {
    Text(String),
    Act(String, usize),
}

fn split_items(src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_left = after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        let end = after.find("}}").ok_or("unclosed action")?;
        let mut inner = &after[..end];
        if trim_left {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let inner_trim = inner.trim();
        if !(inner_trim.starts_with("/*") && inner_trim.ends_with("*/")) {
            let pos = offset + start + 2 + (inner.len() - inner.trim_start().len()) + usize::from(trim_left);
            items.push(Item::Act(inner_trim.to_owned(), pos));
        }
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        items.push(Item::Text(text.to_owned()));
    }
    Ok(items)
}

enum Stop {
    End,
    Else(Option<String>, usize),
    Eof,
}

fn parse_list(items: &[Item], i: &mut usize) -> Result<(Vec<Node>, Stop), String> {
    let mut nodes = Vec::new();
    while *i < items.len() {
        let idx = *i;
        *i += 1;
        match &items[idx] {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Act(a, pos) => {
                let (kw, rest) = match a.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a.as_str(), ""),
                };
                match kw {
                    "end" => return Ok((nodes, Stop::End)),
                    "else" => {
                        let cond = rest.strip_prefix("if").map(|r| r.trim().to_owned());
                        return Ok((nodes, Stop::Else(cond, *pos)));
                    }
                    "if" | "range" | "with" => {
                        let pipe = parse_pipe(&lex_action(rest)?, a, *pos)?;
                        let node = parse_control(kw, pipe, items, i)?;
                        nodes.push(node);
                    }
                    "define" | "template" | "block" => return Err(format!("{kw} is not supported")),
                    _ => nodes.push(Node::Action(parse_pipe(&lex_action(a)?, a, *pos)?)),
                }
            }
        }
    }
    Ok((nodes, Stop::Eof))
}

fn parse_control(kw: &str, pipe: Pipe, items: &[Item], i: &mut usize) -> Result<Node, String> {
    let (body, stop) = parse_list(items, i)?;
    let else_body = match stop {
        Stop::End => Vec::new(),
        Stop::Eof => return Err(format!("unexpected EOF in {kw}")),
        Stop::Else(None, _) => {
            let (e, stop) = parse_list(items, i)?;
            if !matches!(stop, Stop::End) {
                return Err("expected end after else".into());
            }
            e
        }
        Stop::Else(Some(cond), pos) => {
            let p = parse_pipe(&lex_action(&cond)?, &cond, pos)?;
            vec![parse_control("if", p, items, i)?]
        }
    };
    Ok(match kw {
        "if" => Node::If(pipe, body, else_body),
        "range" => Node::Range(pipe, body, else_body),
        _ => Node::With(pipe, body, else_body),
    })
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let items = split_items(src).map_err(|e| format!("template: :1: {e}"))?;
        let mut i = 0;
        let (nodes, stop) = parse_list(&items, &mut i).map_err(|e| format!("template: :1: {e}"))?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => Err("template: :1: unexpected {{end}}".into()),
            Stop::Else(..) => Err("template: :1: unexpected {{else}}".into()),
        }
    }

    /// Renders with `data` as dot; a missing map key is an error (inspect's `missingkey=error`).
    pub fn render(&self, data: &Val) -> Result<String, String> {
        self.run(data, false)
    }

    /// Renders with Go's default `missingkey`: a missing map key prints `<no value>` (events).
    pub fn render_lenient(&self, data: &Val) -> Result<String, String> {
        let mut st = State {
            vars: vec![("".into(), Cow::Borrowed(data))],
            header: false,
            rows: false,
            lenient: true,
            out: String::new(),
        };
        st.exec(&self.nodes, data)?;
        Ok(st.out)
    }

    /// Renders a table header: docker's header functions return their argument unchanged.
    pub fn render_header(&self, header: &Val) -> Result<String, String> {
        self.run(header, true)
    }

    /// Renders a list row: like docker's formatter contexts, `json` of a whole row escapes HTML.
    pub fn render_row(&self, data: &Val) -> Result<String, String> {
        let mut st = State {
            vars: vec![("".into(), Cow::Borrowed(data))],
            header: false,
            rows: true,
            lenient: false,
            out: String::new(),
        };
        st.exec(&self.nodes, data)?;
        Ok(st.out)
    }

    fn run(&self, data: &Val, header: bool) -> Result<String, String> {
        let mut st = State {
            vars: vec![("".into(), Cow::Borrowed(data))],
            header,
            rows: false,
            lenient: false,
            out: String::new(),
        };
        st.exec(&self.nodes, data)?;
        Ok(st.out)
    }
}

/// One rendering: `$` is the data rendered, borrowed (a `ps` row is not copied for it); the
/// variables a template declares are owned.
struct State<'a> {
    vars: Vec<(String, Cow<'a, Val>)>,
    header: bool,
    rows: bool,
    lenient: bool,
    out: String,
}

/// The value a plain `{{.A.B}}` or `{{$x.A}}` action reaches, by reference. `None` for any other
/// action, and where the walk stops short (a missing key, a non-object): the interpreter then
/// answers as Go would.
fn plain_field<'v>(vars: &'v [(String, Cow<'_, Val>)], p: &Pipe, dot: &'v Val) -> Option<&'v Val> {
    let [cmd] = p.cmds.as_slice() else { return None };
    let ([Arg::Field(base, path)], true) = (cmd.as_slice(), p.decl.is_empty()) else {
        return None;
    };
    let mut v: &Val = match &**base {
        Arg::Dot => dot,
        Arg::Var(n) => var(vars, n)?,
        _ => return None,
    };
    for k in path {
        let Val::Obj(m) = v else { return None };
        v = m.iter().find(|(kk, _)| kk == k).map(|(_, x)| x)?;
    }
    Some(v)
}

/// The variable `$n` (`$` itself is named ""), innermost first.
fn var<'v>(vars: &'v [(String, Cow<'_, Val>)], n: &str) -> Option<&'v Val> {
    vars.iter().rev().find(|(k, _)| k == n).map(|(_, v)| &**v)
}

/// Prints what an action yields: Go's `<no value>` (or its per-field stand-in) for nil.
fn print_val(out: &mut String, p: &Pipe, v: &Val) {
    match v {
        Val::Null => out.push_str(null_repr(p)),
        Val::Str(s) => out.push_str(s),
        v => out.push_str(&v.go_string()),
    }
}

fn err_at(p: &Pipe, msg: impl std::fmt::Display) -> String {
    format!("template: :1:{}: executing \"\" at <{}>: {}", p.pos, p.src, msg)
}

impl State<'_> {
    fn exec(&mut self, nodes: &[Node], dot: &Val) -> Result<(), String> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    // A plain `{{.Field}}` (every column of the list commands' default tables)
                    // is printed from where it is, without copying the value first.
                    if let Some(v) = plain_field(&self.vars, p, dot) {
                        print_val(&mut self.out, p, v);
                        continue;
                    }
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        print_val(&mut self.out, p, &v);
                    }
                }
                Node::If(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if v.truthy() {
                        self.exec(a, dot)
                    } else {
                        self.exec(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?
                }
                Node::With(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if v.truthy() {
                        self.exec(a, &v)
                    } else {
                        self.exec(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?
                }
                Node::Range(p, a, b) => {
                    let mark = self.vars.len();
                    let mut p2 = p.clone();
                    let decl = std::mem::take(&mut p2.decl);
                    let v = self.pipe(&p2, dot)?;
                    let items: Vec<(Val, Val)> = match &v {
                        Val::Arr(xs) => xs
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Val::Num(i.to_string()), x.clone()))
                            .collect(),
                        Val::Obj(m) => {
                            let mut m = m.clone();
                            m.sort_by(|x, y| x.0.cmp(&y.0));
                            m.into_iter().map(|(k, x)| (Val::Str(k), x)).collect()
                        }
                        Val::Null => Vec::new(),
                        other => {
                            return Err(err_at(
                                p,
                                format!("range can't iterate over {}", other.go_string()),
                            ))
                        }
                    };
                    if items.is_empty() {
                        self.exec(b, dot)?;
                    }
                    for (k, x) in items {
                        match decl.len() {
                            1 => self.vars.push((decl[0].clone(), Cow::Owned(x.clone()))),
                            2 => {
                                self.vars.push((decl[0].clone(), Cow::Owned(k)));
                                self.vars.push((decl[1].clone(), Cow::Owned(x.clone())));
                            }
                            _ => {}
                        }
                        self.exec(a, &x)?;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Val) -> Result<Val, String> {
        let mut last: Option<Val> = None;
        for cmd in &p.cmds {
            last = Some(self.cmd(p, cmd, dot, last)?);
        }
        let v = last.unwrap_or(Val::Null);
        for d in &p.decl {
            self.vars.push((d.clone(), Cow::Owned(v.clone())));
        }
        Ok(v)
    }

    fn cmd(&mut self, p: &Pipe, cmd: &[Arg], dot: &Val, piped: Option<Val>) -> Result<Val, String> {
        if let Arg::Ident(f) = &cmd[0] {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(self.arg(p, a, dot)?);
            }
            if let Some(v) = piped {
                args.push(v);
            }
            return self.call(p, f, args);
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(err_at(p, "can't give argument to non-function"));
        }
        self.arg(p, &cmd[0], dot)
    }

    fn arg(&mut self, p: &Pipe, a: &Arg, dot: &Val) -> Result<Val, String> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Var(n) => {
                let n = n.as_str();
                var(&self.vars, n)
                    .cloned()
                    .ok_or_else(|| err_at(p, format!("undefined variable: ${n}")))?
            }
            Arg::Str(s) => Val::Str(s.clone()),
            Arg::Num(n) => Val::Num(n.clone()),
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Nil => Val::Null,
            Arg::Ident(f) => self.call(p, f, Vec::new())?,
            Arg::Sub(sub) => self.pipe(sub, dot)?,
            Arg::Field(base, path) => {
                // Walked by reference: only the value reached is cloned, not the whole of dot
                // (a `ps` row) once per field of every row.
                let owned;
                let mut v: &Val = match &**base {
                    Arg::Dot => dot,
                    Arg::Var(n) => {
                        var(&self.vars, n).ok_or_else(|| err_at(p, format!("undefined variable: ${n}")))?
                    }
                    other => {
                        owned = self.arg(p, other, dot)?;
                        &owned
                    }
                };
                for k in path {
                    v = match v {
                        Val::Obj(m) => match m.iter().find(|(kk, _)| kk == k) {
                            Some((_, x)) => x,
                            // Go's default `missingkey` prints "<no value>"; inspect uses error.
                            None if self.lenient => return Ok(Val::Str("<no value>".into())),
                            None => return Err(err_at(p, format!("map has no entry for key {k:?}"))),
                        },
                        Val::Null => {
                            return Err(err_at(p, format!("nil pointer evaluating interface {{}}.{k}")))
                        }
                        other => {
                            return Err(err_at(
                                p,
                                format!("can't evaluate field {k} in type {}", other.go_type()),
                            ))
                        }
                    };
                }
                v.clone()
            }
        })
    }

    fn call(&mut self, p: &Pipe, f: &str, args: Vec<Val>) -> Result<Val, String> {
        let need = |n: usize| -> Result<(), String> {
            if args.len() < n {
                Err(err_at(
                    p,
                    format!("wrong number of args for {f}: want {n} got {}", args.len()),
                ))
            } else {
                Ok(())
            }
        };
        if self.header
            && matches!(
                f,
                "json" | "join" | "split" | "lower" | "upper" | "title" | "pad" | "truncate"
            )
        {
            need(1)?;
            return Ok(args[0].clone());
        }
        let s = |i: usize| args[i].go_string();
        Ok(match f {
            "json" => {
                need(1)?;
                let j = args[0].to_json();
                if self.rows && matches!(args[0], Val::Obj(_)) {
                    Val::Str(
                        j.replace('<', "\\u003c")
                            .replace('>', "\\u003e")
                            .replace('&', "\\u0026"),
                    )
                } else {
                    Val::Str(j)
                }
            }
            "join" => {
                need(2)?;
                match &args[0] {
                    Val::Arr(xs) => Val::Str(xs.iter().map(Val::go_string).collect::<Vec<_>>().join(&s(1))),
                    Val::Null => Val::Str(String::new()),
                    other => Val::Str(other.go_string()),
                }
            }
            "split" => {
                need(2)?;
                Val::Arr(s(0).split(&s(1)).map(|x| Val::Str(x.to_owned())).collect())
            }
            "lower" => {
                need(1)?;
                Val::Str(s(0).to_lowercase())
            }
            "upper" => {
                need(1)?;
                Val::Str(s(0).to_uppercase())
            }
            "title" => {
                need(1)?;
                let mut out = String::new();
                let mut prev_letter = false;
                for c in s(0).chars() {
                    out.extend(if prev_letter {
                        c.to_lowercase().collect::<Vec<_>>()
                    } else {
                        c.to_uppercase().collect()
                    });
                    prev_letter = c.is_alphanumeric();
                }
                Val::Str(out)
            }
            "pad" => {
                need(3)?;
                let l: usize = s(1).parse().unwrap_or(0);
                let r: usize = s(2).parse().unwrap_or(0);
                Val::Str(format!("{}{}{}", " ".repeat(l), s(0), " ".repeat(r)))
            }
            "truncate" => {
                need(2)?;
                let n: usize = s(1).parse().unwrap_or(0);
                Val::Str(s(0).chars().take(n).collect())
            }
            "print" => Val::Str(args.iter().map(Val::go_string).collect::<Vec<_>>().concat()),
            "println" => Val::Str(format!(
                "{}\n",
                args.iter().map(Val::go_string).collect::<Vec<_>>().join(" ")
            )),
            "printf" => {
                need(1)?;
                Val::Str(printf(&s(0), &args[1..]))
            }
            "len" => {
                need(1)?;
                Val::Num(
                    match &args[0] {
                        Val::Arr(x) => x.len(),
                        Val::Obj(x) => x.len(),
                        Val::Str(x) => x.len(),
                        Val::Null => 0,
                        other => return Err(err_at(p, format!("len of type {}", other.go_type()))),
                    }
                    .to_string(),
                )
            }
            "index" => {
                need(1)?;
                let mut v = args[0].clone();
                for k in &args[1..] {
                    v = match (&v, k) {
                        (Val::Arr(xs), Val::Num(n)) => {
                            let i: usize = n.parse().map_err(|_| err_at(p, "bad index"))?;
                            xs.get(i)
                                .cloned()
                                .ok_or_else(|| err_at(p, format!("index out of range: {i}")))?
                        }
                        (Val::Obj(m), key) => {
                            let key = key.go_string();
                            m.iter()
                                .find(|(kk, _)| *kk == key)
                                .map(|(_, x)| x.clone())
                                .unwrap_or(Val::Null)
                        }
                        (Val::Null, _) => Val::Null,
                        (other, _) => {
                            return Err(err_at(p, format!("can't index item of type {}", other.go_type())))
                        }
                    }
                }
                v
            }
            "slice" => {
                need(1)?;
                let from: usize = args
                    .get(1)
                    .map(|x| x.go_string().parse().unwrap_or(0))
                    .unwrap_or(0);
                match &args[0] {
                    Val::Str(x) => {
                        let to = args
                            .get(2)
                            .map(|v| v.go_string().parse().unwrap_or(x.len()))
                            .unwrap_or(x.len());
                        Val::Str(x.get(from..to).unwrap_or("").to_owned())
                    }
                    Val::Arr(x) => {
                        let to = args
                            .get(2)
                            .map(|v| v.go_string().parse().unwrap_or(x.len()))
                            .unwrap_or(x.len());
                        Val::Arr(x.get(from..to).map(|s| s.to_vec()).unwrap_or_default())
                    }
                    other => return Err(err_at(p, format!("can't slice item of type {}", other.go_type()))),
                }
            }
            "not" => {
                need(1)?;
                Val::Bool(!args[0].truthy())
            }
            "and" => {
                need(1)?;
                args.iter()
                    .find(|a| !a.truthy())
                    .unwrap_or(args.last().expect("need(1)"))
                    .clone()
            }
            "or" => {
                need(1)?;
                args.iter()
                    .find(|a| a.truthy())
                    .unwrap_or(args.last().expect("need(1)"))
                    .clone()
            }
            "eq" => {
                need(2)?;
                Val::Bool(args[1..].iter().any(|b| args[0].loose_eq(b)))
            }
            "ne" => {
                need(2)?;
                Val::Bool(!args[0].loose_eq(&args[1]))
            }
            "lt" | "le" | "gt" | "ge" => {
                need(2)?;
                let ord = args[0]
                    .compare(&args[1])
                    .ok_or_else(|| err_at(p, "incompatible types for comparison"))?;
                Val::Bool(match f {
                    "lt" => ord.is_lt(),
                    "le" => ord.is_le(),
                    "gt" => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            _ => return Err(err_at(p, format!("function {f:?} not defined"))),
        })
    }
}

/// How docker prints a JSON `null` field: inspect templates run first over the typed Go structs,
/// where a nil slice prints `[]`, a nil map `map[]` and a nil pointer `<nil>`.
fn null_repr(p: &Pipe) -> &'static str {
    let last = match p.cmds.as_slice() {
        [cmd] => match cmd.as_slice() {
            [Arg::Field(_, path)] => path.last().map(String::as_str),
            _ => None,
        },
        _ => None,
    };
    match last {
        Some(
            "Labels" | "Volumes" | "ExposedPorts" | "Options" | "DriverOpts" | "Tmpfs" | "Sysctls"
            | "StorageOpt" | "PortBindings" | "Ports" | "Networks" | "Data" | "Attributes" | "Config",
        ) => "map[]",
        Some(
            "Cmd" | "Entrypoint" | "Env" | "Binds" | "Links" | "CapAdd" | "CapDrop" | "Dns" | "DnsOptions"
            | "DnsSearch" | "ExtraHosts" | "GroupAdd" | "SecurityOpt" | "VolumesFrom" | "Mounts" | "OnBuild"
            | "Shell" | "Ulimits" | "Devices" | "DeviceRequests" | "DeviceCgroupRules" | "MaskedPaths"
            | "ReadonlyPaths" | "Aliases" | "Layers" | "RepoTags" | "RepoDigests" | "Args" | "ExecIDs"
            | "Warnings" | "ConsoleSize" | "BlkioWeightDevice",
        ) => "[]",
        Some(_) => "<nil>",
        None => "<no value>",
    }
}

fn printf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('%') => out.push('%'),
            Some(v) => {
                let a = args.get(ai);
                ai += 1;
                match (v, a) {
                    (_, None) => out.push_str(&format!("%!{v}(MISSING)")),
                    ('q', Some(a)) => out.push_str(&crate::format::go_quote(&a.go_string())),
                    (_, Some(a)) => out.push_str(&a.go_string()),
                }
            }
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

/// Parses and renders in one go; errors carry docker's "template parsing error: " prefix.
pub fn render(src: &str, data: &Val) -> anyhow::Result<String> {
    let t = Template::parse(src).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    t.render(data)
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str, json: &str) -> String {
        let v = Val::parse(json.as_bytes()).unwrap();
        Template::parse(t)
            .unwrap()
            .render(&v)
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn fields_and_json() {
        let d = r#"{"Id":"abc","State":{"Pid":17517,"Running":true},"Config":{"Env":["PATH=/bin","A=1"],"Cmd":null,"Labels":{"b":"2","a":"1"}},"Size":1984132}"#;
        assert_eq!(r("{{.State.Pid}}", d), "17517");
        assert_eq!(r("{{.Size}}", d), "1984132");
        assert_eq!(
            r("{{json .Config}}", d),
            r#"{"Env":["PATH=/bin","A=1"],"Cmd":null,"Labels":{"b":"2","a":"1"}}"#
        );
        assert_eq!(r("{{.Config.Env}}", d), "[PATH=/bin A=1]");
        assert_eq!(r("{{.Config.Labels}}", d), "map[a:1 b:2]");
        assert_eq!(r("{{.Config.Cmd}}", d), "[]");
        assert_eq!(
            r(
                "{{.Config.Labels}} {{.Config.Health}}",
                r#"{"Config":{"Labels":null,"Health":null}}"#
            ),
            "map[] <nil>"
        );
        assert_eq!(r("{{join .Config.Env \",\"}}", d), "PATH=/bin,A=1");
        assert_eq!(r("{{index .Config.Env 1}}", d), "A=1");
        assert_eq!(r("{{index .Config.Labels \"a\"}}", d), "1");
        assert_eq!(r("{{.Id | upper}} {{lower \"AB\"}}", d), "ABC ab");
        assert!(r("{{.Nope.Pid}}", d).contains("map has no entry for key \"Nope\""));
        let v = Val::parse(d.as_bytes()).unwrap();
        assert_eq!(
            Template::parse("{{.Nope.Pid}}")
                .unwrap()
                .render_lenient(&v)
                .unwrap(),
            "<no value>"
        );
    }

    #[test]
    fn control_flow() {
        let d = r#"{"Mounts":[{"Source":"/a"},{"Source":"/b"}],"On":true,"N":"x"}"#;
        assert_eq!(r("{{range .Mounts}}{{.Source}};{{end}}", d), "/a;/b;");
        assert_eq!(
            r("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}", d),
            "0=/a 1=/b "
        );
        assert_eq!(r("{{if .On}}yes{{else}}no{{end}}", d), "yes");
        assert_eq!(r("{{if eq .N \"y\"}}1{{else if eq .N \"x\"}}2{{end}}", d), "2");
        assert_eq!(r("{{with .N}}[{{.}}]{{end}}", d), "[x]");
        assert_eq!(r("a {{- \" b \" -}} c", d), "a b c");
        assert_eq!(
            r("{{range .Nope}}x{{else}}empty{{end}}", r#"{"Nope":[]}"#),
            "empty"
        );
        assert_eq!(r("{{$x := .N}}{{$x}}{{$}}", r#"{"N":"v"}"#), "vmap[N:v]");
        assert_eq!(r("{{(index .Mounts 1).Source}}", d), "/b");
        assert_eq!(r("{{len .Mounts}} {{printf \"%s-%q\" .N .N}}", d), "2 x-\"x\"");
    }

    #[test]
    fn header_functions_pass_through() {
        let h = Val::parse(br#"{"ID":"CONTAINER ID","Names":"NAMES"}"#).unwrap();
        let t = Template::parse("{{.ID}}\t{{json .Names}}\t{{upper .ID}}").unwrap();
        assert_eq!(t.render_header(&h).unwrap(), "CONTAINER ID\tNAMES\tCONTAINER ID");
    }
}
