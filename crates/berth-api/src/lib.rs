//! Docker Engine API wire types as berthd speaks them (API [`API_VERSION`]).
//!
//! Request and response bodies reuse the `bollard-stubs` 1.49 models (see
//! docs/design/dependencies.md for why that version); only the JSON-message stream objects and the
//! event message with its legacy `status/id/from` fields are written here.

use serde::{Deserialize, Serialize};

pub use bollard_stubs::models;

/// The API version berthd advertises.
pub const API_VERSION: &str = "1.41";
/// The oldest API version berthd accepts in a `/vX.Y/` path prefix.
pub const MIN_API_VERSION: &str = "1.12";

/// Splits an optional `/vX.Y` prefix off a request path.
///
/// Returns the version (if any) and the rest of the path. `/v1.41/containers/json` gives
/// `(Some((1, 41)), "/containers/json")`; `/version` gives `(None, "/version")`.
pub fn split_version(path: &str) -> (Option<(u32, u32)>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        if let Some((maj, min)) = rest[..end].split_once('.') {
            if let (Ok(a), Ok(b)) = (maj.parse::<u32>(), min.parse::<u32>()) {
                let tail = &rest[end..];
                return (Some((a, b)), if tail.is_empty() { "/" } else { tail });
            }
        }
    }
    (None, path)
}

/// True if a client API version is above what berthd supports.
pub fn too_new(v: (u32, u32)) -> bool {
    let (maj, min) = parse_version(API_VERSION);
    v > (maj, min)
}

fn parse_version(s: &str) -> (u32, u32) {
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// HTTP status for an error kind (the one place this mapping lives).
pub fn status_for(kind: berth_types::ErrorKind) -> u16 {
    use berth_types::ErrorKind::*;
    match kind {
        NotFound => 404,
        Conflict | InvalidState => 409,
        InvalidArgument => 400,
        NotModified => 304,
        NotImplemented => 501,
        Unauthorized => 401,
        Forbidden => 403,
        Internal => 500,
    }
}

/// The error body docker clients parse: `{"message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// One object of a JSON-message stream (`/images/create`, `/images/load`, `/build`), each sent as
/// JSON followed by `\r\n`. docker's CLI reads `errorDetail`, docker-py reads `error`: send both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JsonMessage {
    // Field order is dockerd's (moby `jsonmessage.JSONMessage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

impl JsonMessage {
    pub fn status(s: impl Into<String>) -> Self {
        JsonMessage {
            status: Some(s.into()),
            ..Default::default()
        }
    }
    /// A status for one object (`{"status":"Pulling from x","id":"1"}`), no progress.
    pub fn status_id(s: impl Into<String>, id: impl Into<String>) -> Self {
        JsonMessage {
            status: Some(s.into()),
            id: Some(id.into()),
            ..Default::default()
        }
    }

    /// A layer's status with an empty `progressDetail` (`Pulling fs layer`, `Pull complete`, …).
    pub fn layer(s: impl Into<String>, id: impl Into<String>) -> Self {
        JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            ..Self::status_id(s, id)
        }
    }

    /// A layer's progress (`Downloading`, `Extracting`, `Pushing`) with dockerd's `progress`
    /// string (a bar as a 200-column terminal shows it).
    pub fn progress(s: impl Into<String>, id: impl Into<String>, current: i64, total: i64) -> Self {
        JsonMessage {
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            progress: Some(berth_types::units::progress_bar(current, total, 200)),
            ..Self::status_id(s, id)
        }
    }

    /// An `aux` message (push's `{"Tag","Digest","Size"}`), with dockerd's empty `progressDetail`.
    pub fn aux(v: serde_json::Value) -> Self {
        JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(v),
            ..Default::default()
        }
    }

    pub fn stream(s: impl Into<String>) -> Self {
        JsonMessage {
            stream: Some(s.into()),
            ..Default::default()
        }
    }
    pub fn error(msg: impl Into<String>, code: Option<i64>) -> Self {
        let message = msg.into();
        JsonMessage {
            error: Some(message.clone()),
            error_detail: Some(ErrorDetail { code, message }),
            ..Default::default()
        }
    }
}

/// An event as `/events` streams it: the modern `Type/Action/Actor` shape plus the legacy
/// `status/id/from` fields docker-py users still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Go's `strconv.ParseBool`, which dockerd uses for option values (`true`, `1`, `T`, …);
/// the error is Go's message.
pub fn parse_go_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {v:?}: invalid syntax")),
    }
}

/// Parses a boolean query parameter as dockerd's `BoolValue` does: after trimming and lowercasing,
/// `""`, `0`, `no`, `false` and `none` are false and anything else is true.
pub fn bool_value(s: &str) -> bool {
    !matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

/// Parses a `filters` query parameter in either the legacy `{"k":{"v":true}}` form or the
/// `{"k":["v"]}` form into key → values.
pub fn parse_filters(s: &str) -> Result<std::collections::BTreeMap<String, Vec<String>>, String> {
    let mut out = std::collections::BTreeMap::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("invalid filter: {e}"))?;
    let obj = v.as_object().ok_or("invalid filter: expected a JSON object")?;
    for (k, vals) in obj {
        let list: Vec<String> = match vals {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(true))
                .map(|(v, _)| v.clone())
                .collect(),
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => return Err(format!("invalid filter value for '{k}'")),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_split() {
        assert_eq!(
            split_version("/v1.41/containers/json"),
            (Some((1, 41)), "/containers/json")
        );
        assert_eq!(split_version("/version"), (None, "/version"));
        assert_eq!(split_version("/v1.12/_ping"), (Some((1, 12)), "/_ping"));
        assert_eq!(split_version("/volumes"), (None, "/volumes"));
        assert!(too_new((1, 50)));
        assert!(!too_new((1, 41)));
        assert!(!too_new((1, 24)));
    }

    #[test]
    fn bools_parse_like_dockerd() {
        for f in ["", "0", "no", "False", " false ", "none"] {
            assert!(!bool_value(f), "{f:?}");
        }
        for t in ["1", "True", "yes", "x"] {
            assert!(bool_value(t), "{t:?}");
        }
    }

    #[test]
    fn both_filter_forms_parse() {
        let a = parse_filters(r#"{"status":{"exited":true}}"#).unwrap();
        let b = parse_filters(r#"{"status":["exited"]}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["status"], vec!["exited".to_string()]);
        assert!(parse_filters("{").is_err());
    }

    #[test]
    fn error_messages_carry_both_fields() {
        let s = serde_json::to_string(&JsonMessage::error("boom", Some(7))).unwrap();
        // dockerd's order: errorDetail first (engine-api-wire-contract-2.md §9.2).
        assert_eq!(s, r#"{"errorDetail":{"code":7,"message":"boom"},"error":"boom"}"#);
    }
}
