//! The container's seccomp profile as a compiled BPF program, cached per container for exec.
//!
//! Compiling Docker's profile with libseccomp (≈ 370 rules, three architectures) takes ~7 ms —
//! more than the rest of an exec. The profile of a container never changes, so the first exec
//! compiles it (the same translation libcontainer applies: actions, architectures, argument
//! comparisons, one rule per comparison when an argument index repeats, unknown syscall names
//! skipped) and stores the program in `<bundle>/seccomp.bpf` (temp → rename); later execs read
//! it and install it with one `seccomp(2)` call.

use std::path::Path;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

const CACHE: &str = "seccomp.bpf";

/// The compiled program for `profile`, from the bundle's cache or freshly compiled (and cached).
/// `None` when the profile uses something this translation leaves to libcontainer (flags,
/// notify, an unusual architecture).
pub fn program(bundle: &Path, profile: &LinuxSeccomp) -> Option<Vec<u8>> {
    let path = bundle.join(CACHE);
    if let Ok(p) = std::fs::read(&path) {
        if !p.is_empty() {
            return Some(p);
        }
    }
    // libseccomp exports to a file descriptor: straight into the cache's temp file.
    let tmp = bundle.join(format!("{CACHE}.{}", std::process::id()));
    let res = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        if !compile(profile, &f).map_err(|e| e.to_string())? {
            return Ok(None);
        }
        let p = std::fs::read(&tmp).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        Ok::<_, String>(Some(p))
    })();
    let _ = std::fs::remove_file(&tmp);
    res.unwrap_or_else(|e| {
        eprintln!("berth-shim: compile seccomp profile: {e}");
        None
    })
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

fn op(o: LinuxSeccompOperator, b: Option<u64>) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(b.unwrap_or(0)),
    }
}

/// libcontainer's `initialize_seccomp`, exporting the program to `out` instead of loading it.
/// `false` when the profile is left to libcontainer.
fn compile(s: &LinuxSeccomp, out: &std::fs::File) -> Result<bool, libseccomp::error::SeccompError> {
    if s.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Ok(false);
    }
    let Some(default) = action(s.default_action(), s.default_errno_ret()) else { return Ok(false) };
    let mut ctx = ScmpFilterContext::new(default)?;
    for a in s.architectures().iter().flatten() {
        let Some(a) = arch(*a) else { return Ok(false) };
        ctx.add_arch(a)?;
    }
    ctx.set_ctl_nnp(false)?;
    for rule in s.syscalls().iter().flatten() {
        let Some(act) = action(rule.action(), rule.errno_ret()) else { return Ok(false) };
        if act == default {
            continue;
        }
        for name in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else { continue };
            match rule.args() {
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> =
                        args.iter().map(|a| ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value_two()), a.value())).collect();
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
