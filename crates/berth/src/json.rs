//! The JSON value templates run over: Go's `%v`, truthiness and comparisons of a decoded
//! `interface{}`, on a value that keeps the daemon's key order (as Go's typed structs marshal
//! them, so `{{json .Config}}` prints what docker prints). Parsing is serde_json's; only the value
//! type is ours, because `serde_json::Value` sorts keys unless its `preserve_order` feature is on,
//! and that feature would be unified into the daemon's build too (docs/design/cli.md).

use std::cmp::Ordering;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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
    /// Parses a JSON document, keeping its key order. Integers stay exact (`u64`/`i64`); other
    /// numbers go through `f64` and print as serde_json writes them, which is how the daemon wrote
    /// them in the first place.
    pub fn parse(b: &[u8]) -> Result<Val, String> {
        serde_json::from_slice(b).map_err(|e| e.to_string())
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

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Val, E> {
        Ok(Val::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Val, E> {
        Ok(Val::Num(n.to_string()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Val, E> {
        Ok(Val::Num(n.to_string()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Val, E> {
        // JSON has no NaN or infinity, so a parsed f64 is always a Number.
        Ok(serde_json::Number::from_f64(n).map_or(Val::Null, |n| Val::Num(n.to_string())))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val, E> {
        Ok(Val::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Val, E> {
        Ok(Val::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut xs = Vec::new();
        while let Some(x) = seq.next_element()? {
            xs.push(x);
        }
        Ok(Val::Arr(xs))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut m = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Val>()? {
            m.push((k, v));
        }
        Ok(Val::Obj(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_keeps_key_order_and_exact_integers_and_unescapes() {
        let v = Val::parse(br#" {"b":1.50,"a":[true,null,"x\u003cy\n"],"c":{},"n":18446744073709551615,"m":-9007199254740993} "#)
            .unwrap();
        assert_eq!(
            v.to_json(),
            r#"{"b":1.5,"a":[true,null,"x<y\n"],"c":{},"n":18446744073709551615,"m":-9007199254740993}"#
        );
        assert_eq!(v.get("b"), Some(&Val::Num("1.5".into())));
        assert_eq!(
            v.go_string(),
            "map[a:[true <nil> x<y\n] b:1.5 c:map[] m:-9007199254740993 n:18446744073709551615]"
        );
        assert!(Val::parse(b"{").is_err());
        assert!(Val::parse(b"{} x").is_err());
    }
}
