//! Dockerfile builds (docs/design/build.md).
//!
//! * [`parser`]: the Dockerfile as instructions (comments, continuations, directives, shell and
//!   exec forms, heredocs), pure and line-numbered.
//! * [`shell`]: Docker's shell-lexer word expansion (`$V`, `${V:-w}`, quotes, the escape char).
//! * [`ignore`]: `.dockerignore` patterns with moby's patternmatcher rules (in berth-archive).
//! * [`builder`] (`types`, `dispatch`, `format`): runs the instructions over an [`Executor`] the daemon implements: each step an
//!   image (a layer or config only), intermediate images as the cache.

pub mod builder;
mod copy;
pub mod parser;

/// `.dockerignore` matching lives in berth-archive, shared with the CLI.
pub use berth_archive::dockerignore as ignore;
pub mod shell;

pub use builder::{build, BuildOptions, Executor, ImageConfig, RunSpec};

use berth_types::ErrorKind;

/// A build failure as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile does not parse (docker's `dockerfile parse error line N: …`).
    #[error("dockerfile parse error line {line}: {message}")]
    Parse { line: usize, message: String },
    /// A bad instruction or argument found while building.
    #[error("{0}")]
    Invalid(String),
    /// A RUN step exited non-zero: docker's exact words; `code` becomes the CLI's exit status.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    NonZero { command: String, code: i64 },
    /// A failure of the executor (the daemon's stores, a container).
    #[error("{0}")]
    Executor(String),
    /// A missing image or path.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Io(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse { .. } | Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::NonZero { .. } | Error::Executor(_) | Error::Io(_) => ErrorKind::Internal,
        }
    }

    /// The code the CLI exits with: the RUN step's, else 1.
    pub fn code(&self) -> i64 {
        match self {
            Error::NonZero { code, .. } => *code,
            _ => 1,
        }
    }
}
