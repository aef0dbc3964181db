//! `--device HOST[:CONTAINER[:PERMS]]` and `--device-cgroup-rule`: host device nodes created in
//! the container (a directory brings every device below it, as docker does) and the matching
//! allow rules in the devices cgroup (v1's devices controller, v2's eBPF program: libcontainer
//! picks by the host's hierarchy).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use serde::{Deserialize, Serialize};

use crate::Error;

/// One `--device` (docker's `DeviceMapping`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    /// Empty: the host path.
    pub path_in_container: String,
    /// `rwm` when empty.
    pub cgroup_permissions: String,
}

fn device_of(path: &Path, in_container: PathBuf) -> Option<LinuxDevice> {
    let md = std::fs::metadata(path).ok()?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return None;
    };
    let rdev = md.rdev();
    let mut d = LinuxDevice::default();
    d.set_path(in_container);
    d.set_typ(typ);
    d.set_major(rustix::fs::major(rdev) as i64);
    d.set_minor(rustix::fs::minor(rdev) as i64);
    d.set_file_mode(Some(md.mode() & 0o7777));
    d.set_uid(Some(md.uid()));
    d.set_gid(Some(md.gid()));
    Some(d)
}

fn walk(host: &Path, ctr: &Path, out: &mut Vec<LinuxDevice>) {
    let Ok(rd) = std::fs::read_dir(host) else { return };
    for e in rd.flatten() {
        let (h, c) = (e.path(), ctr.join(e.file_name()));
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&h, &c, out),
            Ok(t) if t.is_symlink() => {}
            _ => out.extend(device_of(&h, c)),
        }
    }
}

/// The device nodes and cgroup rules of `--device` flags.
pub(crate) fn devices(maps: &[DeviceMapping]) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), Error> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for m in maps {
        let host = Path::new(&m.path_on_host);
        let ctr = if m.path_in_container.is_empty() {
            host.to_path_buf()
        } else {
            PathBuf::from(&m.path_in_container)
        };
        let perms = if m.cgroup_permissions.is_empty() {
            "rwm"
        } else {
            m.cgroup_permissions.as_str()
        };
        let md = std::fs::metadata(host).map_err(|err| {
            Error::InvalidArgument(format!(
                "error gathering device information while adding custom device \"{}\": {}",
                m.path_on_host,
                if err.kind() == std::io::ErrorKind::NotFound {
                    "no such file or directory".to_string()
                } else {
                    err.to_string()
                }
            ))
        })?;
        let mut found = Vec::new();
        if md.is_dir() {
            walk(host, &ctr, &mut found);
        } else {
            found.extend(device_of(host, ctr));
        }
        if found.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "error gathering device information while adding custom device \"{}\": not a device node",
                m.path_on_host
            )));
        }
        for d in found {
            rules.push(crate::dev_rule(
                true,
                Some(d.typ()),
                d.major().into(),
                d.minor().into(),
                perms,
            ));
            nodes.push(d);
        }
    }
    Ok((nodes, rules))
}

/// One `--device-cgroup-rule` (`c 1:3 mr`, `a *:* rwm`, `b 7:* rw`).
pub(crate) fn cgroup_rule(rule: &str) -> Result<LinuxDeviceCgroup, Error> {
    let bad = || Error::InvalidArgument(format!("invalid device cgroup format '{rule}'"));
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let [typ, nums, access] = parts.as_slice() else {
        return Err(bad());
    };
    let typ = match *typ {
        "a" => None,
        "c" => Some(LinuxDeviceType::C),
        "b" => Some(LinuxDeviceType::B),
        _ => return Err(bad()),
    };
    let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>, Error> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad());
    }
    Ok(crate::dev_rule(true, typ, num(major)?, num(minor)?, access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_device_maps_with_its_numbers() {
        let (nodes, rules) = devices(&[DeviceMapping {
            path_on_host: "/dev/null".into(),
            path_in_container: "/dev/mynull".into(),
            cgroup_permissions: "rw".into(),
        }])
        .unwrap();
        assert_eq!(nodes[0].path(), Path::new("/dev/mynull"));
        assert_eq!((nodes[0].major(), nodes[0].minor()), (1, 3));
        assert_eq!(rules[0].access().as_deref(), Some("rw"));
    }

    #[test]
    fn missing_device_is_docker_error() {
        let e = devices(&[DeviceMapping {
            path_on_host: "/dev/nope".into(),
            ..Default::default()
        }])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "error gathering device information while adding custom device \"/dev/nope\": no such file or directory"
        );
    }

    #[test]
    fn cgroup_rules_parse() {
        let r = cgroup_rule("c 10:* rwm").unwrap();
        assert_eq!((r.major(), r.minor()), (Some(10), None));
        assert!(cgroup_rule("a *:* rwm").unwrap().typ().is_none());
        assert!(cgroup_rule("x 1:1 r").is_err());
        assert!(cgroup_rule("c 1 r").is_err());
        assert!(cgroup_rule("c 1:1 q").is_err());
    }
}
