//! The builder: walks the stages of a parsed Dockerfile and turns each instruction into an image
//! through an [`Executor`] (the daemon), as Docker's classic builder does:
//!
//! * FROM resolves the base (pulling through the executor when missing) and runs its ONBUILD
//!   triggers; `scratch` is no image.
//! * RUN creates a container from the current image with the step's command, streams its
//!   output, and commits its rw layer; a non-zero exit fails the build.
//! * COPY/ADD write files into a container's rw layer (or, on scratch, a layer tar) and commit.
//! * Every other instruction is a config-only image (an empty layer in the history).
//!
//! Each step's image is a child of the previous one; its `container_config` holds the probe
//! config (the step's command, or `#(nop) …` for metadata), which is what the cache compares: a
//! step hits the cache when a child of the current image has the same probe config and config.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::parser::{self, Instruction};
use crate::shell::{lookup, process_word, process_words};
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

/// Proxy arguments every build accepts without an ARG (and keeps out of the history).
const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "SOURCE_DATE_EPOCH",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub(crate) const MAX_LAYERS: usize = 127;

/// One stage's state.
pub(crate) struct Stage {
    name: Option<String>,
    /// Current image; `None` while on scratch with nothing committed.
    image: Option<String>,
    config: ImageConfig,
    layers: usize,
    /// ARGs declared in this stage, with their values in scope.
    args: Vec<(String, Option<String>)>,
    /// CMD was set in this stage (so ENTRYPOINT keeps it).
    cmd_set: bool,
}

pub(crate) struct Builder<'a> {
    ex: &'a mut dyn Executor,
    opts: &'a BuildOptions,
    escape: char,
    /// Finished stages: name or index → image id.
    stages: HashMap<String, String>,
    meta_args: Vec<(String, Option<String>)>,
    used_args: std::collections::HashSet<String>,
    step: usize,
    total: usize,
    /// A step of this stage missed the cache: the rest of the stage is built (moby's
    /// `cacheBusted`).
    cache_busted: bool,
}

/// Runs a build; returns the final image ID. Streams the classic builder's messages through
/// `ex.stream`; the caller sends `aux` IDs via `on_stage` and the final lines.
pub fn build(
    ex: &mut dyn Executor,
    opts: &BuildOptions,
    on_stage: &mut dyn FnMut(&str),
) -> Result<String, Error> {
    let df = parser::parse(&opts.dockerfile)?;
    let mut meta = Vec::new();
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for inst in df.instructions {
        if inst.cmd == "from" {
            stages.push(vec![inst]);
        } else if let Some(s) = stages.last_mut() {
            s.push(inst);
        } else if inst.cmd == "arg" {
            meta.push(inst);
        } else {
            return Err(Error::Parse {
                line: inst.line,
                message: "no build stage in current context".into(),
            });
        }
    }
    if stages.is_empty() {
        return Err(Error::Invalid(
            "dockerfile contains no FROM instruction: a build needs at least one stage".into(),
        ));
    }
    if let Some(t) = &opts.target {
        let ix = stages
            .iter()
            .position(|s| stage_name(&s[0]).is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| Error::Invalid(format!("failed to reach build target {t} in Dockerfile")))?;
        stages.truncate(ix + 1);
    }
    if !opts.labels.is_empty() {
        // `--label`: a LABEL step at the end of the last stage, as the classic builder adds it.
        let line = format!(
            "LABEL {}",
            opts.labels
                .iter()
                .map(|(k, v)| format!("{}={}", go_quote(k), go_quote(v)))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut parsed = parser::parse(&line)?;
        if let (Some(last), Some(inst)) = (stages.last_mut(), parsed.instructions.pop()) {
            let line = last.last().map(|i| i.line).unwrap_or(0);
            last.push(Instruction { line, ..inst });
        }
    }
    let needed = needed_stages(&stages);
    let total = meta.len()
        + stages
            .iter()
            .enumerate()
            .filter(|(i, _)| needed[*i])
            .map(|(_, s)| s.len())
            .sum::<usize>();
    let mut b = Builder {
        ex,
        opts,
        escape: df.escape,
        stages: HashMap::new(),
        meta_args: Vec::new(),
        used_args: Default::default(),
        step: 0,
        total,
        cache_busted: false,
    };
    for inst in &meta {
        b.print_step(inst);
        for w in &inst.args {
            let (k, v) = b.arg_value(w, &[])?;
            b.meta_args.push((k, v));
        }
    }
    let mut last = String::new();
    for (ix, insts) in stages.iter().enumerate() {
        if !needed[ix] {
            continue;
        }
        let id = b.stage(ix, insts)?;
        on_stage(&id);
        last = id;
    }
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k) && !BUILTIN_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.ex.stream(&format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            names.join(" ")
        ));
    }
    Ok(last)
}

/// The stages the last one (the target) needs: itself, the stages it is built FROM and those
/// it COPYs `--from`, transitively. A reference that is not a plain name (it holds `$`) keeps
/// every earlier stage, since it is only known once expanded.
fn needed_stages(stages: &[Vec<Instruction>]) -> Vec<bool> {
    let mut needed = vec![false; stages.len()];
    let find = |r: &str, before: usize| -> Vec<usize> {
        if r.contains('$') {
            return (0..before).collect();
        }
        if let Ok(n) = r.parse::<usize>() {
            return if n < before { vec![n] } else { vec![] };
        }
        (0..before)
            .filter(|&i| stage_name(&stages[i][0]).is_some_and(|n| n.eq_ignore_ascii_case(r)))
            .collect()
    };
    let mut todo = vec![stages.len() - 1];
    while let Some(i) = todo.pop() {
        if needed[i] {
            continue;
        }
        needed[i] = true;
        let mut refs = vec![stages[i][0].args[0].clone()];
        for inst in &stages[i][1..] {
            if let Some(f) = inst.flag("from") {
                refs.push(f.to_string());
            }
        }
        for r in refs {
            todo.extend(find(&r, i));
        }
    }
    needed
}

fn stage_name(from: &Instruction) -> Option<&str> {
    (from.args.len() == 3).then(|| from.args[2].as_str())
}

/// Go's `%q` of a string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ")
    )
}

/// Go's `%q` of docker's `*HealthConfig` (what the classic builder records in the history):
/// `&{["CMD" "true"] "30s" "3s" "0s" '\x02'}`.
fn go_healthcheck(h: &Healthcheck) -> String {
    format!(
        "&{{{} {} {} {} {}}}",
        go_quote_list(&h.test),
        go_quote(&go_duration(h.interval)),
        go_quote(&go_duration(h.timeout)),
        go_quote(&go_duration(h.start_period)),
        go_quote_rune(h.retries)
    )
}

/// Go's `%q` of an integer: a quoted rune literal.
fn go_quote_rune(n: i64) -> String {
    let c = u32::try_from(n).ok().and_then(char::from_u32);
    let body = match c {
        Some('\x07') => "\\a".to_string(),
        Some('\x08') => "\\b".to_string(),
        Some('\x0c') => "\\f".to_string(),
        Some('\n') => "\\n".to_string(),
        Some('\r') => "\\r".to_string(),
        Some('\t') => "\\t".to_string(),
        Some('\x0b') => "\\v".to_string(),
        Some('\\') => "\\\\".to_string(),
        Some('\'') => "\\'".to_string(),
        Some(c) if (' '..='~').contains(&c) => c.to_string(),
        Some(c) if (c as u32) < 0x80 => format!("\\x{:02x}", c as u32),
        Some(c) if !c.is_control() => c.to_string(),
        Some(c) if (c as u32) <= 0xffff => format!("\\u{:04x}", c as u32),
        Some(c) => format!("\\U{:08x}", c as u32),
        None => "\u{fffd}".to_string(),
    };
    format!("'{body}'")
}

/// Go's `time.Duration.String()` of nanoseconds: `0s`, `500ms`, `1.5s`, `1m30s`, `1h0m0s`.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{neg}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{neg}{}µs", frac(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{neg}{}ms", frac(u, 1_000_000));
    }
    let secs = frac(u % 60_000_000_000, 1_000_000_000);
    let mins = u / 60_000_000_000;
    if mins == 0 {
        return format!("{neg}{secs}s");
    }
    if mins < 60 {
        return format!("{neg}{mins}m{secs}s");
    }
    format!("{neg}{}h{}m{secs}s", mins / 60, mins % 60)
}

/// Parses go-style durations for HEALTHCHECK flags (`30s`, `1m30s`, `500ms`) into nanoseconds.
fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Some(total as i64)
}

impl Builder<'_> {
    fn print_step(&mut self, inst: &Instruction) {
        self.step += 1;
        self.ex
            .stream(&format!("Step {}/{} : {}", self.step, self.total, inst.original));
        self.ex.stream("\n");
    }

    /// Values for expansion: the stage's ENV first, then ARGs in scope.
    fn expand_env(&self, st: &Stage) -> Vec<String> {
        let mut env = st.config.env.clone().unwrap_or_default();
        for (k, v) in st.args.iter().rev() {
            if let Some(v) = v {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    /// `ARG name[=default]`: its value, with `--build-arg` winning.
    fn arg_value(&mut self, word: &str, env: &[String]) -> Result<(String, Option<String>), Error> {
        let (name, default) = match word.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(process_word(v, env, self.escape)?)),
            None => (word.to_string(), None),
        };
        let name = process_word(&name, env, self.escape)?;
        self.used_args.insert(name.clone());
        let value = match self.opts.build_args.get(&name) {
            Some(Some(v)) => Some(v.clone()),
            Some(None) | None => default,
        };
        Ok((name, value))
    }

    fn stage(&mut self, ix: usize, insts: &[Instruction]) -> Result<String, Error> {
        let from = &insts[0];
        self.print_step(from);
        self.cache_busted = false;
        self.ex.reset_cache();
        let meta_env: Vec<String> = self
            .meta_args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        let base = process_word(&from.args[0], &meta_env, self.escape)?;
        if let Some(p) = from.flag("platform") {
            let p = process_word(p, &meta_env, self.escape)?;
            check_platform(&p)?;
        }
        let name = stage_name(from).map(|n| n.to_ascii_lowercase());
        if let Some(n) = &name {
            if self.stages.contains_key(n) {
                return Err(Error::Invalid(format!("duplicate name {n}")));
            }
        }
        let mut st = Stage {
            name: name.clone(),
            image: None,
            config: ImageConfig::default(),
            layers: 0,
            args: Vec::new(),
            cmd_set: false,
        };
        let mut triggers = Vec::new();
        if base.eq_ignore_ascii_case("scratch") {
            self.ex.stream(" ---> \n");
        } else {
            let id = match self.stages.get(&base.to_ascii_lowercase()) {
                Some(id) => id.clone(),
                None => {
                    if base.is_empty() {
                        return Err(Error::Invalid("base name (${…}) should not be blank".into()));
                    }
                    let img = self.ex.image(&base, self.opts.pull)?;
                    img.id
                }
            };
            let img = self.ex.image(&id, false)?;
            st.image = Some(img.id.clone());
            st.config = img.config;
            st.layers = img.layers;
            triggers = st.config.on_build.take().unwrap_or_default();
            self.ex.stream(&format!(" ---> {}\n", short(&img.id)));
        }
        if st.config.env.as_ref().is_none_or(|e| e.is_empty()) {
            st.config.env = Some(vec![DEFAULT_PATH.to_string()]);
        }
        if !triggers.is_empty() {
            self.ex.stream(&format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            for t in &triggers {
                let parsed = parser::parse(t)?;
                for inst in &parsed.instructions {
                    self.dispatch(&mut st, inst)?;
                }
            }
        }
        for inst in &insts[1..] {
            self.print_step(inst);
            self.dispatch(&mut st, inst)?;
            let id = st.image.clone().unwrap_or_default();
            self.ex.stream(&format!(" ---> {}\n", short(&id)));
        }
        // The last stage gets the --label labels (a config-only step of its own, as docker).
        let id = match st.image.clone() {
            Some(id) => id,
            None => self.commit_config(&mut st, "#(nop) ".into())?,
        };
        self.stages.insert(ix.to_string(), id.clone());
        if let Some(n) = name {
            self.stages.insert(n, id.clone());
        }
        Ok(id)
    }

    fn dispatch(&mut self, st: &mut Stage, inst: &Instruction) -> Result<(), Error> {
        let env = self.expand_env(st);
        let esc = self.escape;
        let word = |w: &str| process_word(w, &env, esc);
        let line_err = |e: Error| match e {
            Error::Invalid(m) => Error::Parse {
                line: inst.line,
                message: m,
            },
            e => e,
        };
        match inst.cmd.as_str() {
            "run" if !inst.flags.is_empty() => {
                let names: Vec<String> = inst.flags.iter().map(|(n, _)| format!("--{n}")).collect();
                return Err(Error::Parse {
                    line: inst.line,
                    message: format!(
                        "RUN {}: BuildKit's RUN options (mounts, network, security) are not supported by berth's builder",
                        names.join(" ")
                    ),
                });
            }
            "run" => return self.run(st, inst),
            "copy" | "add" => return crate::copy::copy(self, st, inst),
            "cmd" => {
                let cmd = self.command_of(st, inst);
                st.config.cmd = Some(cmd.clone());
                st.cmd_set = true;
                self.commit_config(st, format!("#(nop)  CMD {}", go_quote_list(&cmd)))?;
            }
            "entrypoint" => {
                let ep = self.command_of(st, inst);
                st.config.entrypoint = Some(ep.clone());
                // An ENTRYPOINT resets a CMD inherited from the base (not one set in this stage).
                if !st.cmd_set {
                    st.config.cmd = None;
                }
                self.commit_config(st, format!("#(nop)  ENTRYPOINT {}", go_quote_list(&ep)))?;
            }
            "env" => {
                let mut shown = Vec::new();
                let mut envs = st.config.env.clone().unwrap_or_default();
                for kv in &inst.args {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    let k = word(k).map_err(line_err)?;
                    let v = word(v).map_err(line_err)?;
                    envs.retain(|e| e.split_once('=').map(|(a, _)| a) != Some(k.as_str()) && e != &k);
                    envs.push(format!("{k}={v}"));
                    shown.push(format!("{k}={v}"));
                }
                st.config.env = Some(envs);
                self.commit_config(st, format!("#(nop)  ENV {}", shown.join(" ")))?;
            }
            "label" => {
                let mut shown = Vec::new();
                let mut labels = st.config.labels.clone().unwrap_or_default();
                for kv in &inst.args {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    let k = word(k).map_err(line_err)?;
                    let v = word(v).map_err(line_err)?;
                    shown.push(format!("{k}={v}"));
                    labels.insert(k, v);
                }
                st.config.labels = Some(labels);
                self.commit_config(st, format!("#(nop)  LABEL {}", shown.join(" ")))?;
            }
            "maintainer" => {
                self.commit_config(st, format!("#(nop)  MAINTAINER {}", inst.rest()))?;
            }
            "arg" => {
                let mut shown = Vec::new();
                for w in &inst.args {
                    let (k, mut v) = self.arg_value(w, &env).map_err(line_err)?;
                    if v.is_none() && !w.contains('=') {
                        // A meta ARG of the same name gives its value.
                        if let Some((_, mv)) = self.meta_args.iter().find(|(mk, _)| *mk == k) {
                            if !self.opts.build_args.contains_key(&k) {
                                v = mv.clone();
                            }
                        }
                    }
                    shown.push(match w.split_once('=') {
                        Some(_) => format!("{k}={}", v.clone().unwrap_or_default()),
                        None => k.clone(),
                    });
                    st.args.retain(|(a, _)| *a != k);
                    st.args.push((k, v));
                }
                self.commit_config(st, format!("#(nop)  ARG {}", shown.join(" ")))?;
            }
            "workdir" => {
                let w = word(inst.rest()).map_err(line_err)?;
                let dir = if w.starts_with('/') {
                    crate::ignore::clean(&w)
                } else {
                    crate::ignore::clean(&format!("{}/{w}", st.config.working_dir))
                };
                let dir = if dir == "." {
                    "/".to_string()
                } else {
                    format!("/{}", dir.trim_start_matches('/'))
                };
                st.config.working_dir = dir.clone();
                crate::copy::workdir(self, st, &dir)?;
            }
            "user" => {
                let u = word(inst.rest()).map_err(line_err)?;
                st.config.user = u.clone();
                self.commit_config(st, format!("#(nop)  USER {u}"))?;
            }
            "expose" => {
                let mut ports = st.config.exposed_ports.clone().unwrap_or_default();
                let mut shown = Vec::new();
                for p in &inst.args {
                    for p in process_words(p, &env, esc).map_err(line_err)? {
                        // History shows the ports as written (sorted), as docker.
                        shown.push(p.clone());
                        let p = if p.contains('/') {
                            p.to_ascii_lowercase()
                        } else {
                            format!("{p}/tcp")
                        };
                        let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                        let ok = !num.is_empty()
                            && num.split('-').all(|n| n.parse::<u16>().is_ok())
                            && matches!(proto, "tcp" | "udp" | "sctp");
                        if !ok {
                            return Err(Error::Invalid(format!("invalid containerPort: {num}")));
                        }
                        ports.insert(p, Empty {});
                    }
                }
                st.config.exposed_ports = Some(ports);
                shown.sort();
                self.commit_config(st, format!("#(nop)  EXPOSE {}", shown.join(" ")))?;
            }
            "volume" => {
                let mut vols = st.config.volumes.clone().unwrap_or_default();
                let mut shown = Vec::new();
                for v in &inst.args {
                    let v = word(v).map_err(line_err)?;
                    if v.trim().is_empty() {
                        return Err(Error::Invalid(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    shown.push(v.clone());
                    vols.insert(v, Empty {});
                }
                st.config.volumes = Some(vols);
                self.commit_config(st, format!("#(nop)  VOLUME [{}]", shown.join(" ")))?;
            }
            "stopsignal" => {
                let s = word(inst.rest()).map_err(line_err)?;
                if !valid_signal(&s) {
                    return Err(Error::Invalid(format!("Invalid signal: {s}")));
                }
                st.config.stop_signal = Some(s.clone());
                self.commit_config(st, format!("#(nop)  STOPSIGNAL {s}"))?;
            }
            "healthcheck" => {
                if inst.args[0] == "NONE" {
                    st.config.healthcheck = Some(Healthcheck {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    });
                } else {
                    let test = if inst.json {
                        let mut t = vec!["CMD".to_string()];
                        t.extend(inst.args[1..].iter().cloned());
                        t
                    } else {
                        vec!["CMD-SHELL".to_string(), inst.args[1].clone()]
                    };
                    let mut hc = Healthcheck {
                        test,
                        ..Default::default()
                    };
                    for (name, v) in &inst.flags {
                        let v = v.as_deref().unwrap_or("");
                        if name == "retries" {
                            hc.retries = v
                                .parse()
                                .map_err(|_| Error::Invalid(format!("invalid --retries: {v}")))?;
                            continue;
                        }
                        let d = parse_duration(v)
                            .ok_or_else(|| Error::Invalid(format!("time: invalid duration \"{v}\"")))?;
                        if d != 0 && d < 1_000_000 {
                            return Err(Error::Invalid(format!(
                                "Interval \"{name}\" cannot be less than 1ms"
                            )));
                        }
                        match name.as_str() {
                            "interval" => hc.interval = d,
                            "timeout" => hc.timeout = d,
                            "start-period" => hc.start_period = d,
                            _ => hc.start_interval = d,
                        }
                    }
                    st.config.healthcheck = Some(hc);
                }
                let shown = st
                    .config
                    .healthcheck
                    .as_ref()
                    .map(go_healthcheck)
                    .unwrap_or_default();
                self.commit_config(st, format!("#(nop)  HEALTHCHECK {shown}"))?;
            }
            "shell" => {
                st.config.shell = Some(inst.args.clone());
                self.commit_config(st, format!("#(nop)  SHELL [{}]", inst.args.join(" ")))?;
            }
            "onbuild" => {
                let t = inst.rest().trim().to_string();
                let mut ob = st.config.on_build.clone().unwrap_or_default();
                ob.push(t.clone());
                st.config.on_build = Some(ob);
                self.commit_config(st, format!("#(nop)  ONBUILD {t}"))?;
            }
            "from" => unreachable!("FROM starts a stage"),
            other => return Err(Error::Invalid(format!("unknown instruction: {other}"))),
        }
        Ok(())
    }

    /// The shell (SHELL or `/bin/sh -c`).
    fn shell(&self, st: &Stage) -> Vec<String> {
        st.config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// CMD/ENTRYPOINT/RUN's argv: exec form as is, shell form through the shell.
    fn command_of(&self, st: &Stage, inst: &Instruction) -> Vec<String> {
        if inst.json {
            return inst.args.clone();
        }
        let mut v = self.shell(st);
        v.push(inst.rest().to_string());
        v
    }

    /// A config-only step: reuses a cached one or commits a new image. As the classic builder,
    /// the commit goes through a container of the current image (created, never started:
    /// ` ---> Running in …`, then removed with `--rm` / `--force-rm`); on a stage with no image
    /// yet (`FROM scratch`, nothing committed) berth has no rootfs to make one from, and
    /// commits the config alone.
    pub(crate) fn commit_config(&mut self, st: &mut Stage, comment: String) -> Result<String, Error> {
        let mut probe = st.config.clone();
        let mut cmd = self.shell(st);
        cmd.push(comment.clone());
        probe.cmd = Some(cmd.clone());
        let created_by = cmd.join(" ");
        if let Some(id) = self.probe_cache(st, &probe)? {
            return Ok(id);
        }
        let cid = match st.image.clone() {
            Some(image) => Some(self.step_container(&image, st, cmd)?),
            None => None,
        };
        let id = self.ex.commit(Commit {
            container: cid.as_deref(),
            layer: None,
            parent: st.image.as_deref(),
            config: &st.config,
            probe: &probe,
            created_by,
        });
        if let Some(cid) = &cid {
            self.finish_container(cid, id.is_ok());
        }
        let id = id?;
        st.image = Some(id.clone());
        Ok(id)
    }

    /// Creates (never starts) the container a step commits through, with `cmd` as its command,
    /// and says so as docker does.
    pub(crate) fn step_container(
        &mut self,
        image: &str,
        st: &Stage,
        cmd: Vec<String>,
    ) -> Result<String, Error> {
        let spec = RunSpec {
            cmd,
            env: st.config.env.clone().unwrap_or_default(),
            user: st.config.user.clone(),
            working_dir: st.config.working_dir.clone(),
            network: self.opts.network.clone(),
            config: st.config.clone(),
        };
        let cid = self.ex.create(image, &spec)?;
        self.ex.stream(&format!(" ---> Running in {}\n", short(&cid)));
        Ok(cid)
    }

    /// After a step: its container goes with `--force-rm`, or with `--rm` when the step
    /// succeeded (docker's per-instruction `RemoveAll`).
    pub(crate) fn finish_container(&mut self, cid: &str, ok: bool) {
        if self.opts.force_rm || (self.opts.rm && ok) {
            self.remove_container(cid);
        }
    }

    /// Looks the step up in the cache; on a hit the stage moves to the cached image.
    pub(crate) fn probe_cache(
        &mut self,
        st: &mut Stage,
        probe: &ImageConfig,
    ) -> Result<Option<String>, Error> {
        if self.opts.no_cache || self.cache_busted {
            return Ok(None);
        }
        let hit = self.ex.find_cache(st.image.as_deref(), probe, &st.config)?;
        match &hit {
            Some(id) => {
                self.ex.stream(" ---> Using cache\n");
                st.image = Some(id.clone());
            }
            None => self.cache_busted = true,
        }
        Ok(hit)
    }

    fn check_layers(&self, st: &Stage) -> Result<(), Error> {
        if st.layers + 1 > MAX_LAYERS {
            return Err(Error::Invalid(format!(
                "max depth exceeded: the image would have more than {MAX_LAYERS} layers"
            )));
        }
        Ok(())
    }

    /// The ARGs in scope with values, as `K=V` (sorted as docker prints them).
    fn arg_env(&self, st: &Stage) -> Vec<String> {
        let mut v: Vec<String> = st
            .args
            .iter()
            .filter_map(|(k, val)| val.as_ref().map(|val| format!("{k}={val}")))
            .collect();
        for b in BUILTIN_ARGS {
            if let Some(Some(val)) = self.opts.build_args.get(*b) {
                if !st.args.iter().any(|(k, _)| k == b) {
                    v.push(format!("{b}={val}"));
                }
            }
        }
        v.sort();
        v
    }

    fn run(&mut self, st: &mut Stage, inst: &Instruction) -> Result<(), Error> {
        let Some(image) = st.image.clone() else {
            return Err(Error::Invalid(
                "RUN on an empty image (FROM scratch) has no shell to run: add files first".into(),
            ));
        };
        self.check_layers(st)?;
        let mut cmd = if !inst.heredocs.is_empty()
            && inst.rest().trim_start().starts_with("<<")
            && inst.heredocs.len() == 1
            && !inst.json
        {
            // `RUN <<EOF` alone: the heredoc is the script.
            let mut v = self.shell(st);
            v.push(inst.heredocs[0].content.clone());
            v
        } else if !inst.heredocs.is_empty() && !inst.json {
            // The shell reads the heredocs itself: pass them on as written.
            let mut script = inst.rest().to_string();
            for h in &inst.heredocs {
                script.push('\n');
                script.push_str(&h.content);
                script.push_str(&h.name);
            }
            let mut v = self.shell(st);
            v.push(script);
            v
        } else {
            self.command_of(st, inst)
        };
        let args = self.arg_env(st);
        // The probe (and history) carries the build args in use, as docker's `|N K=V …` prefix.
        let mut probe_cmd = Vec::new();
        if !args.is_empty() {
            probe_cmd.push(format!("|{}", args.len()));
            probe_cmd.extend(args.iter().cloned());
        }
        probe_cmd.extend(cmd.iter().cloned());
        let mut probe = st.config.clone();
        probe.cmd = Some(probe_cmd.clone());
        if self.probe_cache(st, &probe)?.is_some() {
            return Ok(());
        }
        let mut env = st.config.env.clone().unwrap_or_default();
        for a in &args {
            let k = a.split_once('=').map(|(k, _)| k).unwrap_or(a);
            if lookup(&env, k).is_none() {
                env.push(a.clone());
            }
        }
        let spec = RunSpec {
            cmd: std::mem::take(&mut cmd),
            env,
            user: st.config.user.clone(),
            working_dir: st.config.working_dir.clone(),
            network: self.opts.network.clone(),
            config: st.config.clone(),
        };
        let cid = self.ex.create(&image, &spec)?;
        self.ex.stream(&format!(" ---> Running in {}\n", short(&cid)));
        self.ex.failpoint("build.run.created");
        let code = match self.ex.run(&cid) {
            Ok(c) => c,
            Err(e) => {
                if self.opts.force_rm {
                    self.remove_container(&cid);
                }
                return Err(e);
            }
        };
        if code != 0 {
            if self.opts.force_rm {
                self.remove_container(&cid);
            }
            return Err(Error::NonZero {
                command: spec.cmd.join(" "),
                code,
            });
        }
        let created_by = probe_cmd.join(" ");
        let id = self.ex.commit(Commit {
            container: Some(&cid),
            layer: None,
            parent: Some(&image),
            config: &st.config,
            probe: &probe,
            created_by,
        });
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                if self.opts.force_rm || self.opts.rm {
                    self.remove_container(&cid);
                }
                return Err(e);
            }
        };
        st.layers += 1;
        st.image = Some(id);
        if self.opts.rm || self.opts.force_rm {
            self.remove_container(&cid);
        }
        Ok(())
    }

    pub(crate) fn remove_container(&mut self, cid: &str) {
        if self.ex.remove(cid).is_ok() {
            self.ex
                .stream(&format!("Removing intermediate container {}\n", short(cid)));
        }
    }
}

/// `--platform` on FROM: only this machine's platform can run.
fn check_platform(p: &str) -> Result<(), Error> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut parts = p.split('/');
    let os = parts.next().unwrap_or("");
    let a = parts.next().unwrap_or(arch);
    if os != "linux" || a != arch {
        return Err(Error::Invalid(format!(
            "image platform {p} does not match this machine's linux/{arch}: berth runs no emulation"
        )));
    }
    Ok(())
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let n = s.to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    matches!(
        n,
        "HUP"
            | "INT"
            | "QUIT"
            | "ILL"
            | "TRAP"
            | "ABRT"
            | "BUS"
            | "FPE"
            | "KILL"
            | "USR1"
            | "SEGV"
            | "USR2"
            | "PIPE"
            | "ALRM"
            | "TERM"
            | "STKFLT"
            | "CHLD"
            | "CONT"
            | "STOP"
            | "TSTP"
            | "TTIN"
            | "TTOU"
            | "URG"
            | "XCPU"
            | "XFSZ"
            | "VTALRM"
            | "PROF"
            | "WINCH"
            | "IO"
            | "POLL"
            | "PWR"
            | "SYS"
    ) || n.starts_with("RTMIN")
        || n.starts_with("RTMAX")
}

/// The 12-character short ID.
pub fn short(id: &str) -> String {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    h.chars().take(12).collect()
}

// Items the copy module uses.
pub(crate) type BuilderState<'a> = Builder<'a>;
pub(crate) type StageState = Stage;

impl Builder<'_> {
    pub(crate) fn executor(&mut self) -> &mut dyn Executor {
        self.ex
    }
    pub(crate) fn options(&self) -> &BuildOptions {
        self.opts
    }
    pub(crate) fn escape(&self) -> char {
        self.escape
    }
    pub(crate) fn env_of(&self, st: &Stage) -> Vec<String> {
        self.expand_env(st)
    }
    pub(crate) fn stage_image(&self, name: &str) -> Option<String> {
        self.stages.get(&name.to_ascii_lowercase()).cloned()
    }
    pub(crate) fn layers_ok(&self, st: &Stage) -> Result<(), Error> {
        self.check_layers(st)
    }
    pub(crate) fn shell_of(&self, st: &Stage) -> Vec<String> {
        self.shell(st)
    }
}

impl Stage {
    pub(crate) fn image(&self) -> Option<&str> {
        self.image.as_deref()
    }
    pub(crate) fn set_image(&mut self, id: String, layer: bool) {
        self.image = Some(id);
        if layer {
            self.layers += 1;
        }
    }
    pub(crate) fn config(&self) -> &ImageConfig {
        &self.config
    }
    pub(crate) fn is_named(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(text: &str) -> Vec<Vec<Instruction>> {
        let mut out: Vec<Vec<Instruction>> = Vec::new();
        for i in parser::parse(text).unwrap().instructions {
            if i.cmd == "from" {
                out.push(vec![i]);
            } else {
                out.last_mut().unwrap().push(i);
            }
        }
        out
    }

    #[test]
    fn only_the_stages_the_target_needs_are_built() {
        let s = stages("FROM busybox AS a\nFROM busybox AS b\nFROM a AS c\nFROM busybox\nCOPY --from=c /x /x\nCOPY --from=1 /y /y\n");
        assert_eq!(needed_stages(&s), [true, true, true, true]);
        let s = stages(
            "FROM busybox AS unused\nRUN false\nFROM busybox AS dep\nFROM busybox\nCOPY --from=dep /x /x\n",
        );
        assert_eq!(needed_stages(&s), [false, true, true]);
        let s = stages("FROM busybox AS a\nFROM busybox\nCOPY --from=$X /x /x\n");
        assert_eq!(needed_stages(&s), [true, true]);
    }

    #[test]
    fn go_quoting_and_durations() {
        assert_eq!(
            go_quote_list(&["cat".into(), "a \"b\"".into()]),
            r#"["cat" "a \"b\""]"#
        );
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("5"), None);
        for (ns, s) in [
            (0, "0s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500, "1.5µs"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
    }

    #[test]
    fn healthcheck_history_is_gos_quoted_struct_as_docker_records_it() {
        let h = Healthcheck {
            test: vec!["CMD-SHELL".into(), "wget -q -O- localhost || exit 1".into()],
            interval: 30_000_000_000,
            timeout: 3_000_000_000,
            retries: 2,
            ..Default::default()
        };
        assert_eq!(
            go_healthcheck(&h),
            r#"&{["CMD-SHELL" "wget -q -O- localhost || exit 1"] "30s" "3s" "0s" '\x02'}"#
        );
        assert_eq!(go_quote_rune(65), "'A'");
        assert_eq!(go_quote_rune(10), r"'\n'");
    }
}
