//! An order-preserving JSON value for templates: keys stay in the daemon's order (as Go's typed
//! structs marshal them) and numbers keep their literal text (as `json.Decoder.UseNumber` does).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Val>),
    Obj(Vec<(String, Val)>),
}

impl Val {
    pub fn parse(b: &[u8]) -> Result<Val, String> {
        let mut p = Parser { b, i: 0 };
        p.ws();
        let v = p.value()?;
        p.ws();
        if p.i != b.len() {
            return Err(format!(
                "invalid character after top-level value at offset {}",
                p.i
            ));
        }
        Ok(v)
    }

    pub fn obj(fields: Vec<(&str, Val)>) -> Val {
        Val::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn str(s: impl Into<String>) -> Val {
        Val::Str(s.into())
    }

    pub fn get(&self, k: &str) -> Option<&Val> {
        match self {
            Val::Obj(m) => m.iter().find(|(kk, _)| kk == k).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Go's `%v` of the decoded value.
    pub fn go_string(&self) -> String {
        match self {
            Val::Null => "<no value>".into(),
            Val::Bool(b) => b.to_string(),
            Val::Num(n) => n.clone(),
            Val::Str(s) => s.clone(),
            Val::Arr(xs) => format!("[{}]", xs.iter().map(Val::go_inner).collect::<Vec<_>>().join(" ")),
            Val::Obj(m) => {
                let mut m: Vec<&(String, Val)> = m.iter().collect();
                m.sort_by(|a, b| a.0.cmp(&b.0));
                format!(
                    "map[{}]",
                    m.iter()
                        .map(|(k, v)| format!("{k}:{}", v.go_inner()))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        }
    }

    fn go_inner(&self) -> String {
        match self {
            Val::Null => "<nil>".into(),
            other => other.go_string(),
        }
    }

    pub fn go_type(&self) -> &'static str {
        match self {
            Val::Null => "interface {}",
            Val::Bool(_) => "bool",
            Val::Num(_) => "json.Number",
            Val::Str(_) => "string",
            Val::Arr(_) => "[]interface {}",
            Val::Obj(_) => "map[string]interface {}",
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => n.parse::<f64>().map(|f| f != 0.0).unwrap_or(true),
            Val::Str(s) => !s.is_empty(),
            Val::Arr(x) => !x.is_empty(),
            Val::Obj(x) => !x.is_empty(),
        }
    }

    pub fn loose_eq(&self, o: &Val) -> bool {
        match (self, o) {
            (Val::Num(a), Val::Num(b)) => a.parse::<f64>().ok() == b.parse::<f64>().ok(),
            (a, b) => a == b,
        }
    }

    pub fn compare(&self, o: &Val) -> Option<Ordering> {
        match (self, o) {
            (Val::Num(a), Val::Num(b)) => a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Compact JSON as docker's `json` template function writes it (no HTML escaping).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Val::Null => out.push_str("null"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Num(n) => out.push_str(n),
            Val::Str(s) => write_json_str(s, out),
            Val::Arr(xs) => {
                out.push('[');
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_json(out);
                }
                out.push(']');
            }
            Val::Obj(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_str(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<&serde_json::Value> for Val {
    fn from(v: &serde_json::Value) -> Val {
        match v {
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(b) => Val::Bool(*b),
            serde_json::Value::Number(n) => Val::Num(n.to_string()),
            serde_json::Value::String(s) => Val::Str(s.clone()),
            serde_json::Value::Array(a) => Val::Arr(a.iter().map(Val::from).collect()),
            serde_json::Value::Object(m) => {
                Val::Obj(m.iter().map(|(k, v)| (k.clone(), Val::from(v))).collect())
            }
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at offset {}", self.i))
    }

    fn value(&mut self) -> Result<Val, String> {
        match self.b.get(self.i) {
            None => self.err("unexpected end of JSON input"),
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Val::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value()?;
                    m.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Val::Obj(m));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut xs = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Val::Arr(xs));
                }
                loop {
                    self.ws();
                    xs.push(self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Val::Arr(xs));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(Val::Str(self.string()?)),
            Some(b't') if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Val::Bool(true))
            }
            Some(b'f') if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Val::Bool(false))
            }
            Some(b'n') if self.b[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Val::Null)
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let s = self.i;
                while self.i < self.b.len()
                    && matches!(self.b[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                Ok(Val::Num(String::from_utf8_lossy(&self.b[s..self.i]).into_owned()))
            }
            Some(_) => self.err("invalid character"),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("truncated \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        if self.b.get(self.i) != Some(&b'"') {
            return self.err("expected string");
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.b[self.i..].starts_with(b"\\u") {
                                self.i += 2;
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3ff);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_numbers_and_unescapes() {
        let v = Val::parse(br#" {"b":1.50,"a":[true,null,"x\u003cy\n"],"c":{}} "#).unwrap();
        assert_eq!(v.to_json(), r#"{"b":1.50,"a":[true,null,"x<y\n"],"c":{}}"#);
        assert_eq!(v.get("b"), Some(&Val::Num("1.50".into())));
        assert!(Val::parse(b"{").is_err());
    }
}
