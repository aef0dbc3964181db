//! One instruction's dispatch: the metadata instructions' config changes and RUN.

use super::format::{go_healthcheck, go_quote_list, parse_duration, valid_signal};
use super::{short, Builder, Commit, Empty, Healthcheck, RunSpec, Stage};
use crate::parser::Instruction;
use crate::shell::{lookup, process_word, process_words};
use crate::Error;

impl Builder<'_> {
    pub(super) fn dispatch(&mut self, st: &mut Stage, inst: &Instruction) -> Result<(), Error> {
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

    /// RUN: a container of the current image runs the command; its rw layer is the step's.
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
}
