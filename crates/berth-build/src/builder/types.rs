//! The builder's interface types: the image config it builds, the executor the daemon
//! provides, a step's commit and the build options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// `struct{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The image's container defaults (docker's `container.Config`, the fields a Dockerfile sets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub volumes: Option<BTreeMap<String, Empty>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// `HEALTHCHECK` (durations in nanoseconds, as docker stores them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Healthcheck {
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub id: String,
    pub config: ImageConfig,
    /// Layers it has (for the 127-layer limit).
    pub layers: usize,
}

/// What a RUN container runs.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    /// `--network`: `default`, `none`, `host`.
    pub network: String,
    /// The image config the container is created with (labels, volumes … for inspect).
    pub config: ImageConfig,
}

/// What the builder needs from the daemon. Called from one blocking thread.
pub trait Executor {
    /// Streams text to the client (a `stream` message).
    fn stream(&mut self, text: &str);
    /// Resolves an image (pulling it when missing, or always with `pull`).
    fn image(&mut self, name: &str, pull: bool) -> Result<BaseImage, Error>;
    /// A child image of `parent` whose probe config and config equal these.
    fn find_cache(
        &mut self,
        parent: Option<&str>,
        probe: &ImageConfig,
        config: &ImageConfig,
    ) -> Result<Option<String>, Error>;
    /// Creates (not starts) a container from `image`.
    fn create(&mut self, image: &str, spec: &RunSpec) -> Result<String, Error>;
    /// Starts the container and waits for its exit code, streaming its output as it comes
    /// (stderr wrapped in `\x1b[91m…\x1b[0m`, as docker does).
    fn run(&mut self, container: &str) -> Result<i64, Error>;
    /// Downloads a URL (ADD): its bytes and `Last-Modified` (unix seconds).
    fn fetch(&mut self, url: &str) -> Result<(Vec<u8>, Option<i64>), Error>;
    /// Calls `f` with the container's root filesystem mounted.
    fn with_rootfs(
        &mut self,
        container: &str,
        f: &mut dyn FnMut(&Path) -> Result<(), Error>,
    ) -> Result<(), Error>;
    /// Commits a step: the container's rw layer (none: config only) or `layer` (a tar) on top
    /// of `parent`, with this config, probe config and history entry.
    fn commit(&mut self, step: Commit<'_>) -> Result<String, Error>;
    /// Removes a container (and its rw layer).
    fn remove(&mut self, container: &str) -> Result<(), Error>;
    /// Tags an image.
    fn tag(&mut self, image: &str, tag: &str) -> Result<(), Error>;
    /// A failpoint between steps (crash tests).
    fn failpoint(&mut self, _name: &'static str) {}
    /// A stage starts: the cache forgets what the previous stage narrowed it to (moby's
    /// `imageProber.Reset`, which remakes the `--cache-from` cache).
    fn reset_cache(&mut self) {}
}

/// One step's commit.
pub struct Commit<'a> {
    pub container: Option<&'a str>,
    pub layer: Option<&'a mut dyn std::io::Read>,
    pub parent: Option<&'a str>,
    pub config: &'a ImageConfig,
    pub probe: &'a ImageConfig,
    pub created_by: String,
}

/// Build options (the API's query parameters, resolved).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The extracted context.
    pub context: PathBuf,
    pub tags: Vec<String>,
    /// `--build-arg` (a `None` value: unset, as docker's `buildargs` JSON `null`).
    pub build_args: BTreeMap<String, Option<String>>,
    pub no_cache: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub pull: bool,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub network: String,
    /// `SOURCE_DATE_EPOCH` (a build arg): file times in new layers are clamped to it.
    pub source_date_epoch: Option<i64>,
}
