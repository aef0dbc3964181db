//! The lexer for one `{{ … }}` action.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(String),
    Ident(String),
    LParen,
    RParen(Vec<String>),
    Pipe,
    Decl,
    Assign,
    Comma,
}

pub(super) fn lex_action(src: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    let read_path = |i: &mut usize| -> Vec<String> {
        let mut path = Vec::new();
        while *i < b.len() && b[*i] == '.' && *i + 1 < b.len() && ident_char(b[*i + 1]) {
            *i += 1;
            let s = *i;
            while *i < b.len() && ident_char(b[*i]) {
                *i += 1;
            }
            path.push(b[s..*i].iter().collect());
        }
        path
    };
    while i < b.len() {
        let c = b[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                i += 1;
                out.push(Tok::RParen(read_path(&mut i)));
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' if b.get(i + 1) == Some(&'=') => {
                out.push(Tok::Decl);
                i += 2
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1
            }
            '.' => {
                let path = read_path(&mut i);
                if path.is_empty() {
                    i += 1;
                }
                out.push(Tok::Field(path));
            }
            '$' => {
                i += 1;
                let s = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                let name: String = b[s..i].iter().collect();
                out.push(Tok::Var(name, read_path(&mut i)));
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let c = *b.get(i).ok_or("unterminated quoted string")?;
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = *b.get(i).ok_or("unterminated quoted string")?;
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            '`' => {
                i += 1;
                let s = i;
                while i < b.len() && b[i] != '`' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated raw quoted string".into());
                }
                out.push(Tok::Str(b[s..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+') && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let s = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(b[s..i].iter().collect()));
            }
            c if ident_char(c) => {
                let s = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(b[s..i].iter().collect()));
            }
            c => return Err(format!("unexpected {c:?} in command")),
        }
    }
    Ok(out)
}
