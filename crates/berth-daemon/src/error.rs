//! The daemon's error: one variant per class of failure, with its context, answering [`Error::kind`]
//! (which the API edge maps to an HTTP status) and displaying the message a docker client prints
//! after `Error response from daemon: ` — docker's own words wherever docker has them (the e2e suite
//! and the docker-py tests compare them). Errors of the stores below (`berth-image`, `berth-meta`,
//! the archive code, the spec builder) are wrapped, not flattened into strings, so their source
//! chain survives.

use std::io;
use std::path::PathBuf;

use berth_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named object does not exist: `No such container: web`, `No such exec instance: 3f2a…`,
    /// `No such image: busybox:latest`.
    #[error("No such {what}: {id}")]
    NotFound { what: &'static str, id: String },
    /// `berthd check` pointed at a directory without a database.
    #[error("{} is not a berth data root (no berth.db)", path.display())]
    NotADataRoot { path: PathBuf },
    /// The container must be running for this: docker's `Container 3f2a… is not running`.
    #[error("Container {id} is not running")]
    NotRunning { id: String },
    /// The request conflicts with the object's state or another object (409), in docker's words:
    /// a name in use, a paused container, one marked for removal.
    #[error("{0}")]
    Conflict(String),
    /// A request that is valid in itself but that the object's configuration forbids now (409):
    /// a copy into a read-only root filesystem.
    #[error("{0}")]
    InvalidState(String),
    /// The request itself is malformed (400): a bad flag value, filter, signal, log option.
    #[error("{0}")]
    InvalidArgument(String),
    /// Nothing to do (304, which has no body): start of a running container, stop of a stopped one.
    #[error("")]
    NotModified,
    /// The operation exists but this configuration cannot do it (501): reading the log of a
    /// container whose log driver keeps none.
    #[error("{0}")]
    NotImplemented(String),
    /// The container's process could not be started, in containerd's words as dockerd passes them
    /// on: 400 when the executable could not be run (exit 126 or 127), 500 otherwise.
    #[error("failed to create task for container: {reason}: unknown")]
    Start { reason: String, code: Option<i32> },
    /// The container's configuration does not make a runtime spec (or names a cgroup parent
    /// outside the hierarchy): 400, with the spec builder's message.
    #[error(transparent)]
    Spec(berth_runtime::Error),
    /// Talking to a container's shim failed.
    #[error("{context}: {source}")]
    Shim {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Mounting a stopped container's filesystem (for cp, export, commit, diff) failed.
    #[error("cannot mount the container's filesystem: {0}")]
    Mount(#[source] berth_sys::mount::MountError),
    /// A filesystem or process operation of the daemon's own failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A registry said no, or could not be reached (berth-registry's words, Docker's).
    #[error(transparent)]
    Registry(#[from] berth_registry::Error),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error(transparent)]
    Archive(#[from] berth_image::ArchiveError),
    #[error(transparent)]
    Meta(#[from] berth_meta::MetaError),
    #[error(transparent)]
    Volume(#[from] berth_volume::VolumeError),
    /// A record or document that did not serialize.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Blocking store work that panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Network set-up or teardown.
    #[error(transparent)]
    Network(#[from] berth_network::NetError),
    /// Not allowed on this object (403), in docker's words.
    #[error("{0}")]
    Forbidden(String),
    /// A missing object with docker's own wording (`network x not found`; 404).
    #[error("{0}")]
    Missing(String),
    /// Anything else that is the daemon's fault (500).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What the API edge turns into an HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::NotADataRoot { .. } => ErrorKind::NotFound,
            Error::NotRunning { .. } | Error::Conflict(_) => ErrorKind::Conflict,
            Error::InvalidState(_) => ErrorKind::InvalidState,
            Error::InvalidArgument(_) | Error::Spec(_) => ErrorKind::InvalidArgument,
            Error::NotModified => ErrorKind::NotModified,
            Error::NotImplemented(_) => ErrorKind::NotImplemented,
            Error::Start {
                code: Some(126 | 127),
                ..
            } => ErrorKind::InvalidArgument,
            Error::Registry(e) => e.kind(),
            Error::Image(e) => e.kind(),
            Error::Archive(e) => e.kind(),
            Error::Meta(e) => e.kind(),
            Error::Volume(e) => e.kind(),
            Error::Network(e) => e.kind(),
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Missing(_) => ErrorKind::NotFound,
            Error::Start { .. }
            | Error::Shim { .. }
            | Error::Mount(_)
            | Error::Io { .. }
            | Error::Json(_)
            | Error::Task(_)
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { what, id: id.into() }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict(message.into())
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }
    /// An I/O failure with what the daemon was doing: `cannot open /x: Permission denied`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// A failure talking to a shim: `shim request failed: connection reset by peer`.
    pub fn shim(context: impl Into<String>, source: io::Error) -> Self {
        Error::Shim {
            context: context.into(),
            source,
        }
    }
}

/// Runs blocking store work off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages clients compare, and the status class each maps to.
    #[test]
    fn errors_say_what_docker_says_with_its_status_class() {
        let e = Error::not_found("container", "web");
        assert_eq!(
            (e.to_string().as_str(), e.kind()),
            ("No such container: web", ErrorKind::NotFound)
        );
        let e = Error::NotRunning { id: "3f2a".into() };
        assert_eq!(
            (e.to_string().as_str(), e.kind()),
            ("Container 3f2a is not running", ErrorKind::Conflict)
        );
        let e = Error::Start {
            reason: "exec: \"nope\": executable file not found in $PATH".into(),
            code: Some(127),
        };
        assert_eq!(
            e.to_string(),
            "failed to create task for container: exec: \"nope\": executable file not found in $PATH: unknown"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = Error::Start {
            reason: "boom".into(),
            code: Some(128),
        };
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(Error::NotModified.kind(), ErrorKind::NotModified);
    }

    /// A wrapped error keeps its source: the chain a log line or a debugger walks.
    #[test]
    fn io_errors_keep_their_source() {
        let e = Error::shim(
            "shim request failed",
            io::Error::from(io::ErrorKind::ConnectionReset),
        );
        assert!(e.to_string().starts_with("shim request failed: "), "{e}");
        let src = std::error::Error::source(&e).expect("source");
        assert_eq!(
            src.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::ConnectionReset)
        );
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
}
