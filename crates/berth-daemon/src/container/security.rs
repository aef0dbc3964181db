//! `--security-opt`, read as dockerd reads it: `KEY=VALUE` (or the legacy `KEY:VALUE`), keys
//! `seccomp` (`unconfined`, `builtin`, or a profile in Docker's JSON format, which the client
//! sends in place of the file's name), `no-new-privileges[=BOOL]`, `systempaths=unconfined`,
//! and `apparmor`/`label` (accepted: this host has neither AppArmor nor SELinux, and dockerd
//! ignores them there too). Anything else is dockerd's `invalid --security-opt 2: "…"`.

use crate::error::{Error, Result};

/// The seccomp filter a container gets.
#[derive(Debug, Default, PartialEq)]
pub(crate) enum Seccomp {
    /// Docker's default profile.
    #[default]
    Default,
    /// None.
    Unconfined,
    /// A profile in Docker's JSON format.
    Profile(String),
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// `systempaths=unconfined`: no masked or read-only paths.
    pub unconfined_paths: bool,
}

/// Reads `opts`; a profile is checked for form (what a capability set selects is left to the
/// start).
pub(crate) fn parse(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        let invalid = |n: u8| Error::invalid(format!("invalid --security-opt {n}: {opt:?}"));
        let (key, value) = match opt.split_once('=').or_else(|| opt.split_once(':')) {
            Some(kv) => kv,
            None if opt == "no-new-privileges" => (opt.as_str(), "true"),
            None => return Err(invalid(1)),
        };
        match (key, value) {
            ("no-new-privileges", v) => {
                out.no_new_privileges = berth_api::parse_go_bool(v).map_err(|_| invalid(2))?;
            }
            ("seccomp", "unconfined") => out.seccomp = Seccomp::Unconfined,
            ("seccomp", "builtin") => out.seccomp = Seccomp::Default,
            ("seccomp", json) => {
                berth_runtime::seccomp::from_docker_profile(json, &[]).map_err(Error::invalid)?;
                out.seccomp = Seccomp::Profile(json.to_string());
            }
            ("systempaths", "unconfined") => out.unconfined_paths = true,
            ("apparmor" | "label", _) => {}
            _ => return Err(invalid(2)),
        }
    }
    Ok(out)
}

/// The options of a recorded container: each one that reads (a record older than the checks
/// at create may hold one that does not, which is left out).
pub(crate) fn parse_recorded(opts: &[String]) -> SecurityOpts {
    match parse(opts) {
        Ok(o) => o,
        Err(_) => {
            let mut out = SecurityOpts::default();
            for o in opts.iter().filter_map(|o| parse(std::slice::from_ref(o)).ok()) {
                if o.seccomp != Seccomp::Default {
                    out.seccomp = o.seccomp;
                }
                out.no_new_privileges |= o.no_new_privileges;
                out.unconfined_paths |= o.unconfined_paths;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opts_as_dockerd_reads_them() {
        let p = |v: &[&str]| parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&[]).unwrap(), SecurityOpts::default());
        let o = p(&[
            "seccomp=unconfined",
            "no-new-privileges",
            "systempaths=unconfined",
            "apparmor=x",
        ])
        .unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert!(o.no_new_privileges && o.unconfined_paths);
        assert!(!p(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(p(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert!(p(&["no-new-privileges=1"]).unwrap().no_new_privileges);
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#;
        assert_eq!(
            p(&[&format!("seccomp={json}")]).unwrap().seccomp,
            Seccomp::Profile(json.into())
        );
        let e = p(&["seccomp={oops"]).unwrap_err().to_string();
        assert!(e.starts_with("decoding seccomp profile failed"), "{e}");
        assert_eq!(
            p(&["bogus=1"]).unwrap_err().to_string(),
            r#"invalid --security-opt 2: "bogus=1""#
        );
        assert_eq!(
            p(&["bogus"]).unwrap_err().to_string(),
            r#"invalid --security-opt 1: "bogus""#
        );
        assert!(p(&["no-new-privileges=maybe"]).is_err());
        // A recorded option that no longer reads does not take the others with it.
        let r = parse_recorded(&["seccomp=/a/path".into(), "no-new-privileges".into()]);
        assert!(r.no_new_privileges);
        assert_eq!(r.seccomp, Seccomp::Default);
        assert!(p(&["systempaths=confined"]).is_err());
    }
}
