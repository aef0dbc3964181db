//! `.dockerignore`, with moby's patternmatcher rules (here so the CLI, which sends the build
//! context, and the builder share them):
//! * one pattern a line; `#` starts a comment line; blanks around a pattern are trimmed; a
//!   leading `!` makes it an exception; the pattern is cleaned as a path (`./a/../b` → `b`) and
//!   a leading `/` dropped;
//! * `*` matches any run of non-`/` characters, `?` one non-`/` character, `[…]` a class, `\`
//!   escapes; `**` matches any number of path components (`**/` also none);
//! * a path is excluded when the last pattern matching it or one of its parent directories is
//!   not an exception.

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    pub exclusion: bool,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    pub patterns: Vec<Pattern>,
}

/// Lexically cleans a slash path as Go's `path.Clean`, without a leading `/`.
pub fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let s = out.join("/");
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

impl Matcher {
    /// Reads `.dockerignore` text.
    pub fn parse(text: &str) -> Matcher {
        let mut patterns = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    continue;
                }
            }
            let mut text = clean(p);
            if text.len() > 1 {
                text = text.trim_start_matches('/').to_string();
            }
            patterns.push(Pattern { text, exclusion });
        }
        Matcher { patterns }
    }

    /// Adds exceptions (the CLI always sends the Dockerfile and `.dockerignore`).
    pub fn keep(&mut self, path: &str) {
        self.patterns.push(Pattern {
            text: clean(path),
            exclusion: true,
        });
    }

    /// Whether `path` (slash-separated, relative to the context) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let comps: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            let mut hit = pattern_match(&pat.text, &path);
            if !hit {
                for i in 1..comps.len() {
                    if pattern_match(&pat.text, &comps[..i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// Whether an exception could re-include something below the excluded directory `dir`
    /// (so a walk must still descend into it).
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.text.contains("**") || p.text.starts_with(&format!("{dir}/")) || {
                    let depth = dir.split('/').count();
                    let pre: Vec<&str> = p.text.split('/').take(depth).collect();
                    p.text.split('/').count() > depth && pattern_match(&pre.join("/"), dir)
                })
        })
    }
}

/// Matches a whole slash path against one pattern.
pub fn pattern_match(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    go(&p, &s)
}

fn go(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            let mut rest = &p[2..];
            if rest.first() == Some(&'/') {
                rest = &rest[1..];
            }
            if rest.is_empty() {
                return true;
            }
            // `(.*/)?` then the rest: zero components, or any prefix ending in `/`.
            if go(rest, s) {
                return true;
            }
            (0..s.len()).any(|k| s[k] == '/' && go(rest, &s[k + 1..]))
        }
        Some('*') => {
            let mut k = 0;
            loop {
                if go(&p[1..], &s[k..]) {
                    return true;
                }
                if k >= s.len() || s[k] == '/' {
                    return false;
                }
                k += 1;
            }
        }
        Some('?') => !s.is_empty() && s[0] != '/' && go(&p[1..], &s[1..]),
        Some('[') => match class_match(&p[1..], s.first().copied()) {
            Some((ok, used)) => ok && s[0] != '/' && go(&p[1 + used..], &s[1..]),
            None => !s.is_empty() && s[0] == '[' && go(&p[1..], &s[1..]),
        },
        Some('\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && go(&p[2..], &s[1..]),
        Some(c) => !s.is_empty() && s[0] == *c && go(&p[1..], &s[1..]),
    }
}

/// Matches a character class body (after `[`): `(matched, chars used incl. ']')`, or `None`
/// when the class is not closed. Go's `filepath.Match` class rules, which Docker's shell
/// globs (the builder's COPY sources) share.
pub fn class_match(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let c = c?;
    let mut k = 0;
    let neg = matches!(p.first(), Some('!') | Some('^'));
    if neg {
        k += 1;
    }
    let mut matched = false;
    let mut first = true;
    while k < p.len() {
        if p[k] == ']' && !first {
            return Some((matched != neg, k + 1));
        }
        first = false;
        let lo = if p[k] == '\\' && k + 1 < p.len() {
            k += 1;
            p[k]
        } else {
            p[k]
        };
        if k + 2 < p.len() && p[k + 1] == '-' && p[k + 2] != ']' {
            if lo <= c && c <= p[k + 2] {
                matched = true;
            }
            k += 3;
        } else {
            if lo == c {
                matched = true;
            }
            k += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text)
    }

    #[test]
    fn star_does_not_cross_directories() {
        let x = m("*.log");
        assert!(x.excluded("a.log"));
        assert!(!x.excluded("dir/a.log"));
        let x = m("*/*.log");
        assert!(x.excluded("dir/a.log"));
        assert!(!x.excluded("a/b/c.log"));
    }

    #[test]
    fn double_star_matches_any_number_of_components() {
        let x = m("**/*.log");
        assert!(x.excluded("a.log"));
        assert!(x.excluded("a/b/c.log"));
        assert!(!x.excluded("a/b/c.txt"));
        let x = m("a/**");
        assert!(x.excluded("a/b/c"));
        assert!(x.excluded("a/b"));
        let x = m("a/**/z");
        assert!(x.excluded("a/z"));
        assert!(x.excluded("a/b/c/z"));
        assert!(!x.excluded("a/b/c/y"));
    }

    #[test]
    fn a_directory_pattern_excludes_everything_below() {
        let x = m("build");
        assert!(x.excluded("build"));
        assert!(x.excluded("build/out/x.o"));
        assert!(!x.excluded("builds"));
    }

    #[test]
    fn last_match_wins_and_exceptions_reinclude() {
        let x = m("*.md\n!README.md");
        assert!(x.excluded("CHANGES.md"));
        assert!(!x.excluded("README.md"));
        let x = m("!README.md\n*.md");
        assert!(x.excluded("README.md"));
        let x = m("docs\n!docs/keep.txt");
        assert!(x.excluded("docs/other.txt"));
        assert!(!x.excluded("docs/keep.txt"));
        assert!(x.may_reinclude_below("docs"));
        assert!(!m("docs").may_reinclude_below("docs"));
    }

    #[test]
    fn comments_blanks_leading_slash_and_cleaning() {
        let x = m("# a comment\n\n  /secret  \n./tmp/../cache/\n");
        assert_eq!(
            x.patterns.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
            ["secret", "cache"]
        );
        assert!(x.excluded("secret"));
        assert!(x.excluded("cache/x"));
        assert!(!x.excluded("# a comment"));
    }

    #[test]
    fn question_mark_classes_and_escapes() {
        let x = m("file?.txt\n[ab]*.c\nlit\\*");
        assert!(x.excluded("file1.txt"));
        assert!(!x.excluded("file10.txt"));
        assert!(x.excluded("a.c"));
        assert!(x.excluded("bz.c"));
        assert!(!x.excluded("c.c"));
        assert!(x.excluded("lit*"));
        assert!(!x.excluded("litx"));
    }

    #[test]
    fn kept_build_files_survive_a_catch_all() {
        let mut x = m("*");
        x.keep("Dockerfile");
        x.keep(".dockerignore");
        assert!(x.excluded("src"));
        assert!(!x.excluded("Dockerfile"));
        assert!(!x.excluded(".dockerignore"));
    }
}
