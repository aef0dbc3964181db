//! A minimal `tracing` subscriber: libcontainer reports the cause of a failure (the errno of the
//! syscall that failed inside the container's init) only through `tracing` events, while the
//! error it returns carries just "failed syscall". This appends ERROR events, one line each, to
//! the bundle's `runtime.log` through a handle of its own: the container's init inherits the
//! subscriber after it has replaced fds 0–2 with the container's stdio, so writing to "stderr"
//! would put runtime diagnostics into the container's output.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

struct ToFile(std::fs::File);

impl Subscriber for ToFile {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= Level::ERROR
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut line = Line(format!("{} {}:", e.metadata().level(), e.metadata().target()));
        e.record(&mut line);
        line.0.push('\n');
        let _ = (&self.0).write_all(line.0.as_bytes());
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Installs the subscriber for this process (and the container init it forks), appending to
/// `path` (opened close-on-exec, so the user's process never inherits it).
pub fn init(path: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
    {
        let _ = tracing::subscriber::set_global_default(ToFile(f));
    }
}
