//! Errors, in Docker's words where Docker has them (moby `distribution/errors.go`, distribution's
//! `errcode`): one line naming the image and the cause.

use berth_types::ErrorKind;

/// The `errors` array of a registry's error body, shown as distribution's `errcode.Errors` does:
/// `manifest unknown: manifest unknown` (the code lower-cased with spaces, then the message).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryErrors(pub Vec<RegistryError>);

/// One entry of a registry's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `UNAUTHORIZED`, `DENIED`, `BLOB_UNKNOWN`, …
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.code.to_lowercase().replace('_', " "),
            self.message
        )
    }
}

impl std::fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("<nil>"),
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("errors:\n")?;
                for e in many {
                    writeln!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl RegistryErrors {
    /// Parses a registry error body; falls back to what distribution's client makes of an
    /// HTTP status without a JSON body.
    pub fn parse(status: u16, body: &[u8]) -> RegistryErrors {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        if let Ok(b) = serde_json::from_slice::<Body>(body) {
            if !b.errors.is_empty() {
                return RegistryErrors(
                    b.errors
                        .into_iter()
                        .map(|e| RegistryError {
                            code: e.code,
                            message: e.message,
                        })
                        .collect(),
                );
            }
        }
        let (code, message) = match status {
            401 => ("UNAUTHORIZED", "authentication required"),
            403 => ("DENIED", "requested access to the resource is denied"),
            404 => ("NOT_FOUND", "not found"),
            429 => ("TOOMANYREQUESTS", "too many requests"),
            _ => ("UNKNOWN", "unknown error"),
        };
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() || text.len() > 200 || status == 401 || status == 403 {
            message.to_string()
        } else {
            text.to_string()
        };
        RegistryErrors(vec![RegistryError {
            code: code.to_string(),
            message,
        }])
    }

    /// Whether any entry has this code.
    pub fn has(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tag or digest the registry does not have.
    #[error("manifest for {reference} not found: {cause}")]
    ManifestUnknown {
        reference: String,
        cause: RegistryErrors,
    },
    /// A repository the registry does not have.
    #[error("repository {name} not found: {cause}")]
    NameUnknown { name: String, cause: RegistryErrors },
    /// Access denied on pull: Docker cannot tell a missing repository from a private one.
    #[error(
        "pull access denied for {name}, repository does not exist or may require 'docker login': {cause}"
    )]
    PullDenied { name: String, cause: RegistryErrors },
    /// An index without an entry for the platform.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingManifest { platform: String },
    /// A single-platform image for another platform.
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    /// Credentials missing or refused (after a fresh token). `context` is Go's `Head "URL": `
    /// prefix where Docker shows one, else empty.
    #[error("{context}{cause}")]
    Unauthorized { context: String, cause: String },
    /// The registry refused the operation (push without rights, …).
    #[error("{cause}")]
    Denied { cause: RegistryErrors },
    /// `docker login` against a registry that refused the credentials.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed { url: String, status: String },
    /// Any other error status, with the registry's error body.
    #[error("{cause}")]
    Registry { status: u16, cause: RegistryErrors },
    /// Unexpected status from a server that is not a registry (a token server, a URL).
    #[error("unexpected status from {method} request to {url}: {status}")]
    Status {
        method: String,
        url: String,
        status: String,
    },
    /// The connection failed: refused, reset, TLS, proxy, DNS (Go's words: `Get "URL": dial tcp
    /// HOST: connect: connection refused`).
    #[error("{method} \"{url}\": {reason}")]
    Transport {
        method: String,
        url: String,
        reason: String,
    },
    /// Content that does not hash to its digest.
    #[error("filesystem layer verification failed for digest {digest}")]
    DigestMismatch { digest: String },
    /// A blob that ended early.
    #[error("error pulling {digest}: unexpected EOF: got {got} of {want} bytes")]
    Short { digest: String, got: u64, want: u64 },
    /// A blob longer than its descriptor says.
    #[error("error pulling {digest}: more than the {want} bytes its descriptor gives")]
    Long { digest: String, want: u64 },
    /// A manifest berth cannot read.
    #[error("{0}")]
    BadManifest(String),
    /// Bad input from the caller (reference, platform, auth header, server address).
    #[error("{0}")]
    InvalidArgument(String),
    /// certs.d, hosts.toml or a proxy setting that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A local read failed (the body of an upload).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The class of the error, for the API edge.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ManifestUnknown { .. }
            | Error::NameUnknown { .. }
            | Error::PullDenied { .. }
            | Error::NoMatchingManifest { .. }
            | Error::PlatformMismatch { .. } => ErrorKind::NotFound,
            Error::Unauthorized { .. } | Error::LoginFailed { .. } => ErrorKind::Unauthorized,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Registry { status: 404, .. } => ErrorKind::NotFound,
            Error::Denied { .. }
            | Error::Registry { .. }
            | Error::Status { .. }
            | Error::Transport { .. }
            | Error::DigestMismatch { .. }
            | Error::Short { .. }
            | Error::Long { .. }
            | Error::BadManifest(_)
            | Error::Config(_)
            | Error::Io { .. } => ErrorKind::Internal,
        }
    }

    /// Worth another try: the connection failed, or the server said 5xx/429.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Go-like words for a reqwest failure: `dial tcp 127.0.0.1:1: connect: connection refused`.
pub(crate) fn transport(method: &str, url: &str, e: &reqwest::Error) -> Error {
    use std::error::Error as _;
    let mut reason = String::new();
    let mut src: Option<&dyn std::error::Error> = e.source();
    let mut io_kind = None;
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        reason = s.to_string();
        src = s.source();
    }
    let host = e
        .url()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_default();
    let tls = tls_words(&reason);
    let reason = if let Some(words) = tls {
        words
    } else if e.is_connect() {
        match io_kind {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                format!("dial tcp {host}: connect: connection refused")
            }
            Some(std::io::ErrorKind::TimedOut) => format!("dial tcp {host}: i/o timeout"),
            _ if reason.is_empty() => format!("dial tcp {host}: {e}"),
            _ => format!("dial tcp {host}: {reason}"),
        }
    } else if e.is_timeout() {
        "net/http: request canceled (Client.Timeout exceeded while awaiting headers)".into()
    } else if reason.is_empty() {
        e.to_string()
    } else {
        reason
    };
    Error::Transport {
        method: go_method(method),
        url: url.to_string(),
        reason,
    }
}

/// Go's words for the TLS failures users meet, so the message reads as Docker's.
fn tls_words(reason: &str) -> Option<String> {
    let r = reason;
    Some(if r.contains("UnknownIssuer") {
        "tls: failed to verify certificate: x509: certificate signed by unknown authority".into()
    } else if r.contains("NotValidForName") {
        format!("tls: failed to verify certificate: x509: certificate is not valid for this name ({r})")
    } else if r.contains("Expired") && r.contains("certificate") {
        "tls: failed to verify certificate: x509: certificate has expired or is not yet valid".into()
    } else if r.contains("CertificateRequired")
        || r.contains("HandshakeFailure")
        || r.contains("BadCertificate")
    {
        format!(
            "remote error: tls: {}",
            if r.contains("CertificateRequired") {
                "certificate required"
            } else {
                "bad certificate"
            }
        )
    } else {
        return None;
    })
}

/// Whether a reqwest failure is a refused connection (nobody listens: not worth a retry, and a
/// stopped mirror falls through to the next endpoint at once).
pub(crate) fn is_refused(e: &reqwest::Error) -> bool {
    use std::error::Error as _;
    let mut src: Option<&dyn std::error::Error> = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        src = s.source();
    }
    false
}

/// `GET` → `Get`, as Go's url.Error prints methods.
pub(crate) fn go_method(m: &str) -> String {
    let mut s = m.to_lowercase();
    if let Some(f) = s.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_like_distribution() {
        let e = RegistryErrors::parse(
            404,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#,
        );
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        let err = Error::ManifestUnknown {
            reference: "127.0.0.1:5000/x:nope".into(),
            cause: e,
        };
        assert_eq!(
            err.to_string(),
            "manifest for 127.0.0.1:5000/x:nope not found: manifest unknown: manifest unknown"
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            RegistryErrors::parse(401, b"").to_string(),
            "unauthorized: authentication required"
        );
        let denied = Error::PullDenied {
            name: "x".into(),
            cause: RegistryErrors::parse(
                401,
                br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
            ),
        };
        assert_eq!(
            denied.to_string(),
            "pull access denied for x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        );
    }

    #[test]
    fn only_connection_failures_5xx_and_429_are_transient() {
        let reg = |status| Error::Registry {
            status,
            cause: RegistryErrors::default(),
        };
        assert!(reg(503).is_transient() && reg(429).is_transient());
        assert!(!reg(404).is_transient() && !reg(401).is_transient() && !reg(400).is_transient());
    }
}
