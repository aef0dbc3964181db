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

mod dispatch;
mod format;
mod types;

use std::collections::HashMap;

use crate::parser::{self, Instruction};
use crate::shell::process_word;
use crate::Error;

use format::check_platform;
pub(crate) use format::go_quote;
pub use format::short;
pub use types::*;

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
            // dockerd's words, without the parse error's line prefix.
            return Err(Error::Invalid("no build stage in current context".into()));
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
        // As dockerd's classic builder: `#(nop) ` and the instruction as two arguments (its
        // history line joins them with a space: `/bin/sh -c #(nop)  CMD ["sh"]`).
        match comment.strip_prefix("#(nop)  ") {
            Some(rest) => cmd.extend(["#(nop) ".to_string(), rest.to_string()]),
            None => cmd.push(comment.clone()),
        }
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

    pub(crate) fn remove_container(&mut self, cid: &str) {
        if self.ex.remove(cid).is_ok() {
            self.ex
                .stream(&format!("Removing intermediate container {}\n", short(cid)));
        }
    }
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
}
