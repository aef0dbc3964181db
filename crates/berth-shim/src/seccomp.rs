//! Seccomp profiles as compiled BPF programs, cached, and installed by the shim itself.
//!
//! Compiling Docker's profile with libseccomp (≈ 370 rules, three architectures) takes 7–10 ms:
//! the largest single cost of starting a container or an exec. A profile is a pure function of
//! the container's configuration (its capabilities pick the conditional rules), so the program
//! is compiled once per distinct profile (the same translation libcontainer applies: actions,
//! architectures, argument comparisons, one rule per comparison when an argument index repeats,
//! unknown syscall names skipped), shortened (`crate::bpf`: the kernel's cost of installing a
//! filter grows with its length) and cached as `<cache>/<sha256 of the profile>.s2.bpf` (temp →
//! rename), where `<cache>` is `ShimConfig::seccomp_cache` (`<data-root>/seccomp`) or the bundle.
//!
//! The program is installed by [`ConfinedExecutor`], the last code libcontainer runs in the
//! container's process before `execve`: libcontainer is handed the spec without seccomp and with
//! `CAP_SYS_ADMIN` (to load a filter without `no_new_privs`) and `CAP_SETPCAP` (to shrink the
//! bounding set afterwards) added; the executor installs the filter, then drops to exactly the
//! container's capabilities.

use std::path::Path;

use berth_shim_proto::ShimConfig;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Spec};
use sha2::{Digest, Sha256};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

/// The filter for `profile`: the cached or freshly compiled program, or the profile itself for
/// libcontainer to compile when this translation cannot.
pub(crate) fn filter(cfg: &ShimConfig, bundle: &Path, profile: LinuxSeccomp) -> Filter {
    match program(cache_dir(cfg, bundle), &profile) {
        Some(p) => Filter::Program(p),
        None => Filter::Profile(for_libcontainer(profile)),
    }
}

/// The compiled program for `profile`, from the cache in `dir` or freshly compiled (and cached).
/// `None` when the profile uses something this translation leaves to libcontainer (flags,
/// notify, an unusual architecture).
pub fn program(dir: &Path, profile: &LinuxSeccomp) -> Option<Vec<u8>> {
    let name = program_name(profile)?;
    let path = dir.join(&name);
    if let Ok(p) = std::fs::read(&path) {
        if !p.is_empty() {
            return Some(p);
        }
    }
    // libseccomp exports to a file descriptor: straight into the cache's temp file.
    let _ = std::fs::create_dir_all(dir);
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    let res = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        if !compile(profile, &f).map_err(|e| e.to_string())? {
            return Ok(None);
        }
        let p = crate::bpf::shortened(std::fs::read(&tmp).map_err(|e| e.to_string())?);
        std::fs::write(&tmp, &p).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        Ok::<_, String>(Some(p))
    })();
    let _ = std::fs::remove_file(&tmp);
    res.unwrap_or_else(|e| {
        eprintln!("berth-shim: compile seccomp profile: {e}");
        None
    })
}

/// The cache's file name for `profile`'s program.
pub(crate) fn program_name(profile: &LinuxSeccomp) -> Option<String> {
    let key = Sha256::digest(serde_json::to_vec(profile).ok()?);
    // `s2`: programs shortened by `bpf::shortened` (older caches hold libseccomp's own); `s3`:
    // masked comparisons the OCI way round (`s2` programs let every `clone` through).
    Some(format!("{}.s3.bpf", berth_types::id::to_hex(&key)))
}

/// The cached program named `name` (as [`program_name`] gave it), if it is there.
pub(crate) fn cached_program(cfg: &ShimConfig, bundle: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(cache_dir(cfg, bundle).join(name))
        .ok()
        .filter(|p| !p.is_empty())
}

/// `ShimConfig::seccomp_cache`, or the bundle where none is set.
fn cache_dir<'a>(cfg: &'a ShimConfig, bundle: &'a Path) -> &'a Path {
    if cfg.seccomp_cache.is_empty() {
        bundle
    } else {
        Path::new(&cfg.seccomp_cache)
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Option<ScmpAction> {
    Some(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        _ => return None,
    })
}

fn arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        _ => return None,
    })
}

/// One argument comparison, as the OCI runtime spec (and runc) reads it: for
/// `SCMP_CMP_MASKED_EQ`, `value` is the mask and `valueTwo` the datum, `(arg & value) ==
/// valueTwo` — Docker's `clone` rule (`value` the namespace flags, `valueTwo` 0) allows a clone
/// that asks for no new namespace. (libcontainer 0.7 reads them the other way round, which
/// libseccomp then turns into "always": see [`for_libcontainer`].)
fn arg_compare(a: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let index = a.index() as u32;
    let op = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(a.value()),
                a.value_two().unwrap_or(0),
            )
        }
    };
    ScmpArgCompare::new(index, op, a.value())
}

/// `profile` as libcontainer 0.7 must be handed it to compile what the OCI spec means: it takes
/// a masked comparison's `valueTwo` as the mask and `value` as the datum, so the two are swapped.
fn for_libcontainer(mut profile: LinuxSeccomp) -> LinuxSeccomp {
    let mut rules = profile.syscalls().clone();
    for rule in rules.iter_mut().flatten() {
        let Some(args) = rule.args() else { continue };
        let swapped = args
            .iter()
            .map(|a| {
                if a.op() != LinuxSeccompOperator::ScmpCmpMaskedEq {
                    return *a;
                }
                oci_spec::runtime::LinuxSeccompArgBuilder::default()
                    .index(a.index())
                    .value(a.value_two().unwrap_or(0))
                    .value_two(a.value())
                    .op(a.op())
                    .build()
                    .unwrap_or(*a)
            })
            .collect();
        rule.set_args(Some(swapped));
    }
    profile.set_syscalls(rules);
    profile
}

/// libcontainer's `initialize_seccomp`, exporting the program to `out` instead of loading it.
/// `false` when the profile is left to libcontainer.
pub(crate) fn compile(
    s: &LinuxSeccomp,
    out: &std::fs::File,
) -> Result<bool, libseccomp::error::SeccompError> {
    if s.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Ok(false);
    }
    let Some(default) = action(s.default_action(), s.default_errno_ret()) else {
        return Ok(false);
    };
    let mut ctx = ScmpFilterContext::new(default)?;
    for a in s.architectures().iter().flatten() {
        let Some(a) = arch(*a) else { return Ok(false) };
        ctx.add_arch(a)?;
    }
    ctx.set_ctl_nnp(false)?;
    for rule in s.syscalls().iter().flatten() {
        let Some(act) = action(rule.action(), rule.errno_ret()) else {
            return Ok(false);
        };
        if act == default {
            continue;
        }
        for name in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            match rule.args() {
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args.iter().map(arg_compare).collect();
                    let mut seen = std::collections::HashSet::new();
                    if args.iter().all(|a| seen.insert(a.index())) {
                        ctx.add_rule_conditional(act, nr, &cmps)?;
                    } else {
                        for c in &cmps {
                            ctx.add_rule_conditional(act, nr, std::slice::from_ref(c))?;
                        }
                    }
                }
                None => {
                    ctx.add_rule(act, nr)?;
                }
            }
        }
    }
    ctx.export_bpf(out)?;
    Ok(true)
}

/// The capabilities libcontainer is to leave when the executor installs seccomp late.
pub(crate) fn late_seccomp_caps(caps: &LinuxCapabilities) -> LinuxCapabilities {
    with_caps(caps, &[Capability::SysAdmin, Capability::Setpcap])
}

/// `caps` with `extra` added to the bounding, effective and permitted sets.
fn with_caps(caps: &LinuxCapabilities, extra: &[Capability]) -> LinuxCapabilities {
    let add = |s: &Option<Capabilities>| -> Option<Capabilities> {
        let mut s = s.clone().unwrap_or_default();
        s.extend(extra.iter().copied());
        Some(s)
    };
    let mut c = caps.clone();
    c.set_bounding(add(caps.bounding()))
        .set_effective(add(caps.effective()))
        .set_permitted(add(caps.permitted()));
    c
}

/// The sets [`libcontainer::capabilities::drop_privileges`] is to leave; absent sets become empty
/// (an absent set is an empty one in the spec).
pub(crate) fn full_sets(caps: &LinuxCapabilities) -> LinuxCapabilities {
    let or_empty = |s: &Option<Capabilities>| Some(s.clone().unwrap_or_default());
    let mut c = caps.clone();
    c.set_bounding(or_empty(caps.bounding()))
        .set_effective(or_empty(caps.effective()))
        .set_permitted(or_empty(caps.permitted()))
        .set_inheritable(or_empty(caps.inheritable()))
        .set_ambient(or_empty(caps.ambient()));
    c
}

/// Runs in the exec'd process right before `execve`: installs the container's seccomp filter,
/// drops the capabilities libcontainer had to leave for that, then execs as libcontainer would.
#[derive(Clone)]
pub(crate) struct ConfinedExecutor {
    filter: Option<Filter>,
    caps: LinuxCapabilities,
    /// The initial window size of the process's pty (rows, columns), set before `execve` so the
    /// program never sees 0×0.
    winsize: Option<(u16, u16)>,
}

/// The seccomp filter to install: compiled (cached), or a profile for libcontainer to compile.
#[derive(Clone)]
pub(crate) enum Filter {
    Program(Vec<u8>),
    Profile(LinuxSeccomp),
}

impl ConfinedExecutor {
    /// An executor that installs `filter` (if any) and leaves exactly `caps`.
    pub(crate) fn new(filter: Option<Filter>, caps: &LinuxCapabilities) -> Self {
        ConfinedExecutor {
            filter,
            caps: full_sets(caps),
            winsize: None,
        }
    }

    /// Also sets the window size of the process's terminal (its stdin) before it runs.
    pub(crate) fn with_winsize(mut self, size: Option<(u16, u16)>) -> Self {
        self.winsize = size;
        self
    }
}

impl Executor for ConfinedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some((rows, cols)) = self.winsize {
            use std::os::fd::AsFd;
            let ws = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(std::io::stdin().as_fd(), ws);
        }
        if let Some(filter) = &self.filter {
            match filter {
                Filter::Program(p) => berth_sys::process::seccomp_set_mode_filter(p)
                    .map_err(|e| ExecutorError::Other(format!("seccomp: {e}")))?,
                Filter::Profile(s) => {
                    libcontainer::seccomp::initialize_seccomp(s)
                        .map_err(|e| ExecutorError::Other(format!("seccomp: {e}")))?;
                }
            }
            let syscall = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(&self.caps, syscall.as_ref())
                .map_err(|e| ExecutorError::Other(format!("drop capabilities: {e}")))?;
        }
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict of `program` for syscall `nr` with first argument `arg0` on x86_64.
    fn verdict(program: &[u8], nr: u32, arg0: u64) -> u32 {
        const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
        let mut data = [0u32; 16];
        data[0] = nr;
        data[1] = AUDIT_ARCH_X86_64;
        data[4] = arg0 as u32;
        data[5] = (arg0 >> 32) as u32;
        let insns = crate::bpf::decode(program).expect("a program");
        crate::bpf::run(&insns, &data).expect("runs").0
    }

    /// Docker's default profile lets a `clone` through only without namespace flags (unless the
    /// container holds CAP_SYS_ADMIN), as runc compiles it: the masked comparison's `value` is
    /// the mask. (Read the other way round, libseccomp made the rule match every clone.)
    #[test]
    fn clone_with_namespace_flags_is_refused_without_cap_sys_admin() {
        if !cfg!(target_arch = "x86_64") {
            eprintln!("skipped: the syscall numbers here are x86_64's");
            return;
        }
        const SYS_CLONE: u32 = 56;
        const ALLOW: u32 = 0x7fff_0000;
        const FORK_FLAGS: u64 = 0x0120_0011; // CHILD_SETTID | CHILD_CLEARTID | SIGCHLD
        const CLONE_NEWUSER: u64 = 0x1000_0000;
        let dir = tempfile::tempdir().unwrap();
        let compiled = |caps: &[&str]| {
            let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            program(dir.path(), &berth_runtime::seccomp::default_profile(&caps)).expect("compiled")
        };
        let plain = compiled(&["CAP_CHOWN", "CAP_KILL"]);
        assert_eq!(verdict(&plain, SYS_CLONE, FORK_FLAGS), ALLOW);
        let refused = verdict(&plain, SYS_CLONE, FORK_FLAGS | CLONE_NEWUSER);
        assert_ne!(refused, ALLOW, "clone(CLONE_NEWUSER) allowed");
        assert_eq!(refused & 0xffff_0000, 0x0005_0000, "an errno, not {refused:#x}");
        let admin = compiled(&["CAP_SYS_ADMIN"]);
        assert_eq!(verdict(&admin, SYS_CLONE, FORK_FLAGS | CLONE_NEWUSER), ALLOW);
    }

    /// What libcontainer is handed has the masked comparison's operands swapped (its reading).
    #[test]
    fn libcontainer_gets_masked_operands_swapped() {
        let p = berth_runtime::seccomp::default_profile(&[]);
        let swapped = for_libcontainer(p.clone());
        let masked = |p: &LinuxSeccomp| {
            p.syscalls()
                .iter()
                .flatten()
                .flat_map(|s| s.args().clone().unwrap_or_default())
                .filter(|a| a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq)
                .map(|a| (a.value(), a.value_two().unwrap_or(0)))
                .collect::<Vec<_>>()
        };
        let (a, b) = (masked(&p), masked(&swapped));
        assert!(!a.is_empty());
        assert_eq!(a.iter().map(|(v, w)| (*w, *v)).collect::<Vec<_>>(), b);
    }
}
