//! Word expansion as Docker's shell lexer does it for FROM, COPY, ADD, ENV, ARG, LABEL, WORKDIR,
//! USER, EXPOSE, VOLUME, STOPSIGNAL and ONBUILD (never RUN/CMD/ENTRYPOINT: the shell does those):
//!
//! * `'…'` is literal (no escapes inside); `"…"` expands `$` and lets the escape character
//!   protect `"`, `$` and itself (any other escaped character keeps its escape).
//! * Outside quotes the escape character makes the next character literal.
//! * `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`,
//!   `${NAME:?msg}`, `${NAME?msg}`, and the pattern removals `${NAME#p}`, `${NAME##p}`,
//!   `${NAME%p}`, `${NAME%%p}`. An unset variable is empty; `$` not followed by a name is a
//!   literal `$`. The first definition of a name in the environment list wins.
//!
//! Quotes are removed. [`process_words`] also splits on unquoted blanks (after expansion, as
//! word splitting does).

use crate::Error;

/// Expands one word.
pub fn process_word(word: &str, env: &[String], escape: char) -> Result<String, Error> {
    let mut lx = Lexer::new(word, env, escape);
    let (s, _) = lx.process(None)?;
    Ok(s)
}

/// Expands and splits into words on unquoted whitespace.
pub fn process_words(word: &str, env: &[String], escape: char) -> Result<Vec<String>, Error> {
    let mut lx = Lexer::new(word, env, escape);
    lx.split = true;
    let (_, words) = lx.process(None)?;
    Ok(words)
}

/// Looks a name up in a `K=V` list: the first definition wins.
pub fn lookup<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        None if kv == name => Some(""),
        _ => None,
    })
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a [String],
    escape: char,
    split: bool,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

impl<'a> Lexer<'a> {
    fn new(word: &str, env: &'a [String], escape: char) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape,
            split: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (not consumed... consumed by the caller) or the end. Returns the
    /// whole text and, when splitting, the words.
    fn process(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), Error> {
        let mut out = String::new();
        let mut words: Vec<String> = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut found_stop = stop.is_none();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                found_stop = true;
                break;
            }
            self.pos += 1;
            match c {
                '\'' => {
                    let s = self.single_quoted()?;
                    out.push_str(&s);
                    word.push_str(&s);
                    in_word = true;
                }
                '"' => {
                    let s = self.double_quoted()?;
                    out.push_str(&s);
                    word.push_str(&s);
                    in_word = true;
                }
                '$' => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                    if self.split {
                        // Unquoted expansions are split on blanks.
                        for (k, part) in v.split(|ch: char| ch.is_whitespace()).enumerate() {
                            if k > 0 && (in_word || !word.is_empty()) {
                                words.push(std::mem::take(&mut word));
                                in_word = false;
                            }
                            if !part.is_empty() {
                                word.push_str(part);
                                in_word = true;
                            }
                        }
                    } else {
                        word.push_str(&v);
                    }
                }
                c if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                        word.push(n);
                        in_word = true;
                    }
                }
                c if self.split && c.is_whitespace() => {
                    out.push(c);
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    out.push(c);
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if !found_stop {
            return Err(bad(format!("missing '{}'", stop.unwrap_or('}'))));
        }
        if in_word {
            words.push(word);
        }
        Ok((out, words))
    }

    fn single_quoted(&mut self) -> Result<String, Error> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(bad(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, Error> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(bad(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => return Ok(s),
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        s.push(n);
                    }
                    _ => s.push(c),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    name.push(c);
                    self.pos += 1;
                }
            }
            Some(c) if "@*#?-$!".contains(c) => {
                name.push(c);
                self.pos += 1;
            }
            _ => {
                while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
                    name.push(c);
                    self.pos += 1;
                }
            }
        }
        name
    }

    fn dollar(&mut self) -> Result<String, Error> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(lookup(self.env, &name).unwrap_or("").to_string());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(bad("bad substitution"));
        }
        let value = lookup(self.env, &name);
        let c = self.next().ok_or_else(|| bad("missing '}'"))?;
        match c {
            '}' => Ok(value.unwrap_or("").to_string()),
            ':' | '-' | '+' | '?' => {
                let (colon, op) = if c == ':' {
                    (true, self.next().ok_or_else(|| bad("missing '}'"))?)
                } else {
                    (false, c)
                };
                let (word, _) = self.process(Some('}'))?;
                // With the colon an empty value counts as unset.
                let set = match value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match op {
                    '-' => Ok(if set {
                        value.unwrap_or("").to_string()
                    } else {
                        word
                    }),
                    '+' => Ok(if set { word } else { String::new() }),
                    '?' => {
                        if set {
                            Ok(value.unwrap_or("").to_string())
                        } else if word.is_empty() {
                            Err(bad(format!("{name}: is not allowed to be unset")))
                        } else {
                            Err(bad(format!("{name}: {word}")))
                        }
                    }
                    other => Err(bad(format!("unsupported modifier ({other}) in substitution"))),
                }
            }
            '#' | '%' => {
                let longest = self.peek() == Some(c);
                if longest {
                    self.pos += 1;
                }
                let (pattern, _) = self.process(Some('}'))?;
                let v = value.unwrap_or("");
                Ok(trim_pattern(v, &pattern, c == '#', longest))
            }
            other => Err(bad(format!("unsupported modifier ({other}) in substitution"))),
        }
    }
}

/// `${v#p}` and friends: removes the shortest/longest prefix/suffix matching the glob `p`.
fn trim_pattern(v: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let idx: Vec<usize> = v.char_indices().map(|(i, _)| i).chain([v.len()]).collect();
    let mut cands: Vec<usize> = idx.clone();
    if prefix == longest {
        // Prefix-longest and suffix-shortest try cut points from the end of the string.
        cands.reverse();
    }
    for &i in &cands {
        let (m, rest) = if prefix {
            (&v[..i], &v[i..])
        } else {
            (&v[i..], &v[..i])
        };
        if glob_match(pattern, m) {
            return rest.to_string();
        }
    }
    v.to_string()
}

/// Shell glob: `*`, `?`, `[…]` (no path semantics).
pub(crate) fn glob_match(p: &str, s: &str) -> bool {
    let p: Vec<char> = p.chars().collect();
    let s: Vec<char> = s.chars().collect();
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|k| go(&p[1..], &s[k..])),
            Some('?') => !s.is_empty() && go(&p[1..], &s[1..]),
            Some('[') => match (
                berth_archive::dockerignore::class_match(&p[1..], s.first().copied()),
                s.is_empty(),
            ) {
                (Some((ok, used)), false) => ok && go(&p[1 + used..], &s[1..]),
                (None, false) => s[0] == '[' && go(&p[1..], &s[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && go(&p[2..], &s[1..]),
            Some(c) => !s.is_empty() && s[0] == *c && go(&p[1..], &s[1..]),
        }
    }
    go(&p, &s)
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
