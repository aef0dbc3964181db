//! Vocabulary shared by every berth crate. No I/O happens here.
//!
//! - [`Mount`]: the one currency between the snapshotter (which describes mounts) and the
//!   runtime/shim (which performs them).
//! - [`ErrorKind`]: what every crate error answers from `kind()`; the API edge maps it to an HTTP
//!   status in one `match`.
//! - [`id`]: container/image ID generation and short-ID rules.
//! - [`Digest`]: validated `sha256:<hex>` content digests.
//! - [`Reference`]: image references parsed and normalised like docker's `distribution/reference`.
//! - [`units`]: human sizes as go-units parses them.
//! - [`go_io_error`]: an io error in the words Go's syscall errors use, as dockerd's messages
//!   quote them.

pub mod digest;
pub mod id;
pub mod keys;
mod mount;
pub mod reference;
pub mod time;
pub mod units;

pub use digest::{Digest, DigestError};
pub use mount::{Mount, MountPoint, MountType};
pub use reference::{Reference, ReferenceError};

/// An io error worded like Go's syscall errors (`no such file or directory`,
/// `cannot assign requested address`): the C library's text, lower-case first, without Rust's
/// ` (os error N)`.
pub fn go_io_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The class of an error, independent of which crate raised it. The HTTP edge maps each kind to a
/// status code (NotFound → 404, Conflict → 409, InvalidArgument → 400, NotModified → 304, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object does not exist (404).
    NotFound,
    /// The request conflicts with current state: name in use, object in use, running container (409).
    Conflict,
    /// The request itself is malformed: bad reference, bad name, bad flag value (400).
    InvalidArgument,
    /// Nothing to do: start of a running container, stop of a stopped one (304).
    NotModified,
    /// The request is valid but the object's state forbids it now (409).
    InvalidState,
    /// The operation exists but this configuration cannot do it, e.g. reading the log of a
    /// container whose log driver keeps none (501).
    NotImplemented,
    /// The credentials were missing or refused, e.g. a failed registry login (401).
    Unauthorized,
    /// The operation is not allowed on this object: removing a network with endpoints, an
    /// overlapping pool (403).
    Forbidden,
    /// Anything else: I/O failures, runtime failures (500).
    Internal,
}
