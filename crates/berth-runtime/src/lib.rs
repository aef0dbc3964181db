//! Container configuration → OCI runtime spec, with Docker's defaults.
//!
//! The daemon fills a [`ContainerSpec`] (what `docker create` was asked for, already resolved
//! against the image) and calls [`build_spec`]; the result is written to `<bundle>/config.json`
//! and run by the shim. Defaults follow Docker's behaviour:
//! - capabilities: Docker's 14 default capabilities in the bounding, effective and permitted
//!   sets (no inheritable, no ambient); `--cap-add`/`--cap-drop` (with `ALL`) adjust them,
//!   `--privileged` grants all;
//! - [`seccomp`]: Docker's default profile (skipped with `--privileged` or `seccomp=unconfined`);
//! - masked and read-only `/proc` and `/sys` paths, a minimal `/dev` with a devices-cgroup
//!   allow-list, a private `/dev/pts`, `/dev/shm` of `shm_size` (64 MiB by default);
//! - rlimits clamped to the host's hard limits (raising one above it fails with EPERM);
//! - resources: `--memory`, `--memory-swap` (twice the memory when unset), `--cpus`
//!   (NanoCpus → quota over a 100 ms period), `--cpu-shares`, `--pids-limit`, `--cpuset-cpus`.
//!
//! [`resolve_user`] and [`check_executable`] look into the container's root filesystem,
//! confined to it; the shim calls them once the rootfs is mounted.

mod cgroup;
mod devices;
mod mounts;
pub mod seccomp;
mod user;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec,
};
use serde::{Deserialize, Serialize};

pub use cgroup::{cgroup_parent, cgroup_path, CgroupDirs, CGROUP_ROOT};
pub use devices::DeviceMapping;
pub use user::{check_executable, default_home, make_workdir, resolve_user, ExecError, ExecUser};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    /// `-u` did not resolve (docker's message).
    #[error("{0}")]
    User(String),
    #[error("failed to {op} {path}")]
    Io {
        #[source]
        err: std::io::Error,
        path: PathBuf,
        op: &'static str,
    },
    #[error("failed to build the runtime spec")]
    Spec(#[from] oci_spec::OciSpecError),
}

impl Error {
    pub fn kind(&self) -> berth_types::ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::User(_) => berth_types::ErrorKind::InvalidArgument,
            Error::Io { .. } | Error::Spec(_) => berth_types::ErrorKind::Internal,
        }
    }
}

/// Which network namespace the container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only `lo` (the shim brings it up).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// Join an existing namespace (a bind-mounted `/run/berth/netns/<id>`).
    Path(PathBuf),
}

/// How the container gets a namespace of one kind (`--pid`, `--ipc`, `--uts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Namespace {
    /// A new one of its own.
    #[default]
    Private,
    /// The host's.
    Host,
    /// Another process's (`/proc/<pid>/ns/<kind>` of a running container's init).
    Join(PathBuf),
}

/// What the container's `/dev/shm` is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shm {
    /// A tmpfs of its own, `shm_size` bytes.
    #[default]
    Private,
    /// Nothing mounted there (`--ipc none`).
    Absent,
    /// A bind of a host directory: the host's `/dev/shm` (`--ipc host`), or the tmpfs the
    /// daemon mounted for a `shareable` container (its own, or the one it joins).
    Bind(PathBuf),
}

pub use berth_types::{MountPoint, MountType};

/// One `--ulimit name=soft:hard` (`nofile`, `nproc`, `core`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One host block device and a value for it (a weight, or a rate per second).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioDevice {
    /// The host's device node (`/dev/sda`).
    pub path: String,
    pub value: u64,
}

/// Block I/O weights and throttles (the v1 `blkio` controller).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Blkio {
    /// 10–1000; 0 leaves the kernel's.
    pub weight: u16,
    pub weight_device: Vec<BlkioDevice>,
    pub read_bps: Vec<BlkioDevice>,
    pub write_bps: Vec<BlkioDevice>,
    pub read_iops: Vec<BlkioDevice>,
    pub write_iops: Vec<BlkioDevice>,
}

impl Blkio {
    fn is_empty(&self) -> bool {
        *self == Blkio::default()
    }

    /// Every per-device entry (each names a host block device).
    pub fn devices(&self) -> impl Iterator<Item = &BlkioDevice> {
        self.weight_device
            .iter()
            .chain(&self.read_bps)
            .chain(&self.write_bps)
            .chain(&self.read_iops)
            .chain(&self.write_iops)
    }
}

/// The major and minor numbers of the block device at `path`.
pub fn block_device(path: &str) -> Result<(i64, i64), Error> {
    let st = rustix::fs::stat(path).map_err(|e| Error::InvalidArgument(format!("{path}: {e}")))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::BlockDevice {
        return Err(Error::InvalidArgument(format!("{path} is not a block device")));
    }
    let rdev = st.st_rdev;
    Ok((rustix::fs::major(rdev) as i64, rustix::fs::minor(rdev) as i64))
}

fn blkio(b: &Blkio) -> Result<oci_spec::runtime::LinuxBlockIo, Error> {
    use oci_spec::runtime::{LinuxThrottleDevice, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder};
    let mut io = oci_spec::runtime::LinuxBlockIo::default();
    if b.weight > 0 {
        io.set_weight(Some(b.weight));
    }
    let mut weights = Vec::new();
    for d in &b.weight_device {
        let (major, minor) = block_device(&d.path)?;
        let w = LinuxWeightDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .weight(d.value as u16)
            .build()?;
        weights.push(w);
    }
    if !weights.is_empty() {
        io.set_weight_device(Some(weights));
    }
    let throttle = |list: &[BlkioDevice]| -> Result<Option<Vec<LinuxThrottleDevice>>, Error> {
        let mut v = Vec::new();
        for d in list {
            let (major, minor) = block_device(&d.path)?;
            let t: LinuxThrottleDevice = LinuxThrottleDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .rate(d.value)
                .build()?;
            v.push(t);
        }
        Ok((!v.is_empty()).then_some(v))
    };
    io.set_throttle_read_bps_device(throttle(&b.read_bps)?);
    io.set_throttle_write_bps_device(throttle(&b.write_bps)?);
    io.set_throttle_read_iops_device(throttle(&b.read_iops)?);
    io.set_throttle_write_iops_device(throttle(&b.write_iops)?);
    Ok(io)
}

/// What the container is to be; the daemon resolves image config and flags into this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    pub id: String,
    /// `<bundle>/rootfs`; the shim mounts the root filesystem there.
    pub rootfs: PathBuf,
    /// Entrypoint + cmd.
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Working directory; `/` when empty.
    pub cwd: String,
    pub tty: bool,
    pub hostname: String,
    /// `--domainname`: the NIS domain name set in the container's UTS namespace.
    pub domainname: String,
    pub network: NetworkMode,
    /// `--pid`: a private PID namespace, the host's, or a running container's.
    pub pid: Namespace,
    /// `--ipc`: a private IPC namespace, the host's, or a running container's.
    pub ipc: Namespace,
    /// `--uts`: a private UTS namespace (the hostname is set in it) or the host's.
    pub uts: Namespace,
    /// `/dev/shm`, which goes with the IPC mode.
    pub shm: Shm,
    /// `--cgroupns private`: a cgroup namespace of its own (the host's otherwise, dockerd's
    /// default on cgroup v1).
    pub cgroupns: bool,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Bytes; 0 = unlimited.
    pub memory: i64,
    /// Memory + swap in bytes; 0 = twice `memory`, -1 = unlimited swap.
    pub memory_swap: i64,
    pub memory_reservation: i64,
    /// `--cpus` × 10⁹.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    /// `--cpuset-mems`: memory nodes, as `cpuset.mems` takes them.
    pub cpuset_mems: String,
    /// `--memory-swappiness` (0–100); `None` leaves the kernel's.
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--blkio-weight`, `--blkio-weight-device`, `--device-{read,write}-{bps,iops}`.
    pub blkio: Blkio,
    /// `--pids-limit`; 0 or negative = unlimited.
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    /// Cgroup parent; the cgroup path is `/<cgroup_parent>/<id>` (`berth` when empty). A parent
    /// that could leave the cgroup hierarchy (`..`) is refused ([`cgroup_parent`]).
    pub cgroup_parent: String,
    /// The container's binds, volumes and tmpfs mounts (after the defaults and the bundle's files).
    pub mounts: Vec<MountPoint>,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Vec<String>,
    /// Size of /dev/shm in bytes; 64 MiB when 0.
    pub shm_size: i64,
    pub seccomp_unconfined: bool,
    /// A seccomp profile in Docker's JSON format (`--security-opt seccomp=FILE`) in place of
    /// the default one.
    pub seccomp_profile: Option<String>,
    pub no_new_privileges: bool,
    /// Overrides the default masked paths (`--security-opt systempaths=unconfined` gives `Some(vec![])`).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub oom_score_adj: Option<i32>,
    pub sysctls: BTreeMap<String, String>,
    /// `--init`: run [`INIT_BINARY`] (bind-mounted read-only from `init_path` at
    /// `/sbin/docker-init`) as pid 1, with `args` as its child.
    pub init: bool,
    /// Where the daemon wrote [`INIT_BINARY`] on the host (mode 0755); used when `init`.
    pub init_path: PathBuf,
}

/// Where `--init`'s binary appears in the container.
pub const INIT_PATH_IN_CONTAINER: &str = "/sbin/docker-init";

/// The built-in init for `--init` (a static binary): it reaps zombies, forwards signals to its
/// child and exits with the child's status, like tini/docker-init. The daemon writes it to a host
/// file (0755) and passes that path as [`ContainerSpec::init_path`].
pub const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/docker-init"));

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, in number order (0 … 40).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths Docker hides from containers (a /dev/null bind or an empty read-only tmpfs).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `/dev/shm`'s size when none is asked for (docker's 64 MiB).
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;
const CPU_PERIOD: u64 = 100_000;

/// `net_admin`, `CAP_NET_ADMIN`, `all` → `CAP_NET_ADMIN` / `ALL`.
fn normalize_cap(c: &str) -> String {
    let u = c.trim().to_ascii_uppercase();
    if u == "ALL" || u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// Checks `--cap-add`/`--cap-drop` names as dockerd does at create: `ALL` or a capability this
/// kernel interface knows, with or without `CAP_`, any case; the error is dockerd's
/// (`invalid CapAdd: unknown capability: "CAP_NOPE"`).
pub fn check_capabilities(cap_add: &[String], cap_drop: &[String]) -> Result<(), String> {
    for (field, list) in [("CapAdd", cap_add), ("CapDrop", cap_drop)] {
        for c in list.iter().map(|c| normalize_cap(c)) {
            if c != "ALL" && !ALL_CAPS.contains(&c.as_str()) {
                return Err(format!("invalid {field}: unknown capability: \"{c}\""));
            }
        }
    }
    Ok(())
}

/// Docker's capability arithmetic: `ALL` in add grants all but the dropped; `ALL` in drop keeps
/// only the added; otherwise defaults minus drop plus add.
pub fn capabilities(privileged: bool, cap_add: &[String], cap_drop: &[String]) -> Result<Vec<String>, Error> {
    // "All" means all this host grants: a capability missing from our own bounding set (a
    // sandboxed host) cannot be given to a container, and asking for it fails the whole start.
    let bounding = host_bounding_set();
    let all: Vec<String> = ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect();
    if privileged {
        return Ok(all);
    }
    let add: Vec<String> = cap_add.iter().map(|c| normalize_cap(c)).collect();
    let drop: Vec<String> = cap_drop.iter().map(|c| normalize_cap(c)).collect();
    for c in add.iter().chain(drop.iter()) {
        if c != "ALL" && !ALL_CAPS.contains(&c.as_str()) {
            return Err(Error::InvalidArgument(format!("unknown capability: \"{c}\"")));
        }
    }
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all.into_iter().filter(|c| !drop.contains(c)).collect()
    } else if drop.iter().any(|c| c == "ALL") {
        add.clone()
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect();
        v.extend(add.iter().cloned());
        v
    };
    let mut seen = HashSet::new();
    caps.retain(|c| c != "ALL" && seen.insert(c.clone()));
    Ok(caps)
}

/// This process's capability bounding set (`CapBnd` in /proc/self/status); all bits when unreadable.
fn host_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

fn oci_caps(names: &[String]) -> HashSet<Capability> {
    names
        .iter()
        .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
        .collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

fn default_mounts(c: &ContainerSpec) -> Vec<Mount> {
    let shm = if c.shm_size > 0 {
        c.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    let shm_opt = format!("size={shm}");
    let sys_mode = if c.privileged { "rw" } else { "ro" };
    let mut v = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", sys_mode]),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
    ];
    match &c.shm {
        Shm::Private => v.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", shm_opt.as_str()],
        )),
        Shm::Absent => {}
        Shm::Bind(dir) => v.push(mount(
            "/dev/shm",
            "bind",
            &dir.to_string_lossy(),
            &["rbind", "rprivate", "nosuid", "noexec", "nodev"],
        )),
    }
    mounts::add_user_mounts(&mut v, &c.mounts);
    if c.init {
        v.push(mount(
            INIT_PATH_IN_CONTAINER,
            "bind",
            &c.init_path.to_string_lossy(),
            &["bind", "ro"],
        ));
    }
    v
}

pub(crate) fn dev_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(allow);
    d.set_typ(typ);
    d.set_major(major);
    d.set_minor(minor);
    d.set_access(Some(access.to_string()));
    d
}

/// Docker's device-cgroup allow-list: deny everything, then allow mknod and the standard nodes.
fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    if privileged {
        return vec![dev_rule(true, None, None, None, "rwm")];
    }
    vec![
        dev_rule(false, None, None, None, "rwm"),
        dev_rule(true, Some(C), None, None, "m"),
        dev_rule(true, Some(B), None, None, "m"),
        dev_rule(true, Some(C), Some(1), Some(3), "rwm"), // null
        dev_rule(true, Some(C), Some(1), Some(5), "rwm"), // zero
        dev_rule(true, Some(C), Some(1), Some(7), "rwm"), // full
        dev_rule(true, Some(C), Some(1), Some(8), "rwm"), // random
        dev_rule(true, Some(C), Some(1), Some(9), "rwm"), // urandom
        dev_rule(true, Some(C), Some(5), Some(0), "rwm"), // tty
        dev_rule(true, Some(C), Some(5), Some(1), "rwm"), // console
        dev_rule(true, Some(C), Some(5), Some(2), "rwm"), // ptmx
        dev_rule(true, Some(C), Some(136), None, "rwm"),  // pts/*
        dev_rule(false, Some(C), Some(10), Some(229), "rwm"), // fuse
    ]
}

/// All character and block devices of the host (`--privileged`).
fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn walk(dir: &Path, out: &mut Vec<LinuxDevice>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                if !matches!(
                    p.to_str(),
                    Some("/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev/fd")
                ) {
                    walk(&p, out);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if matches!(p.to_str(), Some("/dev/console" | "/dev/ptmx" | "/dev/tty")) {
                continue;
            }
            let rdev = md.rdev();
            let mut d = LinuxDevice::default();
            d.set_path(p);
            d.set_typ(typ);
            d.set_major(rustix::fs::major(rdev) as i64);
            d.set_minor(rustix::fs::minor(rdev) as i64);
            d.set_file_mode(Some(md.mode() & 0o7777));
            d.set_uid(Some(md.uid()));
            d.set_gid(Some(md.gid()));
            out.push(d);
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

fn rlimit_type(name: &str) -> Option<(PosixRlimitType, rustix::process::Resource)> {
    use rustix::process::Resource as R;
    use PosixRlimitType as T;
    Some(match name.to_ascii_lowercase().trim_start_matches("rlimit_") {
        "core" => (T::RlimitCore, R::Core),
        "cpu" => (T::RlimitCpu, R::Cpu),
        "data" => (T::RlimitData, R::Data),
        "fsize" => (T::RlimitFsize, R::Fsize),
        "locks" => (T::RlimitLocks, R::Locks),
        "memlock" => (T::RlimitMemlock, R::Memlock),
        "msgqueue" => (T::RlimitMsgqueue, R::Msgqueue),
        "nice" => (T::RlimitNice, R::Nice),
        "nofile" => (T::RlimitNofile, R::Nofile),
        "nproc" => (T::RlimitNproc, R::Nproc),
        "rss" => (T::RlimitRss, R::Rss),
        "rtprio" => (T::RlimitRtprio, R::Rtprio),
        "rttime" => (T::RlimitRttime, R::Rttime),
        "sigpending" => (T::RlimitSigpending, R::Sigpending),
        "stack" => (T::RlimitStack, R::Stack),
        "as" => (T::RlimitAs, R::As),
        _ => return None,
    })
}

/// The container's rlimits: the requested ones plus Docker's `nofile` default (1024 soft, 524288
/// hard), each clamped to the host's hard limit.
fn rlimits(ulimits: &[Ulimit]) -> Result<Vec<PosixRlimit>, Error> {
    let mut v: Vec<PosixRlimit> = Vec::new();
    let mut want: Vec<(String, i64, i64)> =
        ulimits.iter().map(|u| (u.name.clone(), u.soft, u.hard)).collect();
    if !want.iter().any(|(n, _, _)| n.eq_ignore_ascii_case("nofile")) {
        want.push(("nofile".into(), 1024, 524_288));
    }
    for (name, soft, hard) in want {
        let (typ, res) = rlimit_type(&name)
            .ok_or_else(|| Error::InvalidArgument(format!("invalid ulimit type: {name}")))?;
        let host_hard = rustix::process::getrlimit(res).maximum.unwrap_or(u64::MAX);
        let conv = |x: i64| if x < 0 { u64::MAX } else { x as u64 };
        let hard = conv(hard).min(host_hard);
        let soft = conv(soft).min(hard);
        let r = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()?;
        v.retain(|x| x.typ() != typ);
        v.push(r);
    }
    Ok(v)
}

fn resources(c: &ContainerSpec, extra_rules: Vec<LinuxDeviceCgroup>) -> Result<LinuxResources, Error> {
    let mut r = LinuxResources::default();
    let mut rules = device_rules(c.privileged);
    if !c.privileged {
        rules.extend(extra_rules);
    }
    r.set_devices(Some(rules));
    if c.memory > 0
        || c.memory_reservation > 0
        || c.memory_swap != 0
        || c.memory_swappiness.is_some()
        || c.oom_kill_disable
    {
        let mut m = LinuxMemory::default();
        if c.memory > 0 {
            m.set_limit(Some(c.memory));
            let swap = match c.memory_swap {
                0 => c.memory * 2,
                s => s,
            };
            m.set_swap(Some(swap));
        }
        if c.memory_reservation > 0 {
            m.set_reservation(Some(c.memory_reservation));
        }
        m.set_swappiness(c.memory_swappiness);
        if c.oom_kill_disable {
            m.set_disable_oom_killer(Some(true));
        }
        r.set_memory(Some(m));
    }
    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    if c.nano_cpus > 0 {
        cpu.set_period(Some(CPU_PERIOD));
        cpu.set_quota(Some(c.nano_cpus * CPU_PERIOD as i64 / 1_000_000_000));
        any_cpu = true;
    }
    if c.cpu_period > 0 {
        cpu.set_period(Some(c.cpu_period as u64));
        any_cpu = true;
    }
    if c.cpu_quota != 0 {
        cpu.set_quota(Some(c.cpu_quota));
        any_cpu = true;
    }
    if c.cpu_shares > 0 {
        cpu.set_shares(Some(c.cpu_shares as u64));
        any_cpu = true;
    }
    if !c.cpuset_cpus.is_empty() {
        cpu.set_cpus(Some(c.cpuset_cpus.clone()));
        any_cpu = true;
    }
    if !c.cpuset_mems.is_empty() {
        cpu.set_mems(Some(c.cpuset_mems.clone()));
        any_cpu = true;
    }
    if any_cpu {
        r.set_cpu(Some(cpu));
    }
    if let Some(p) = c.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(if p > 0 { p } else { -1 });
        r.set_pids(Some(pids));
    }
    if !c.blkio.is_empty() {
        r.set_block_io(Some(blkio(&c.blkio)?));
    }
    Ok(r)
}

fn namespaces(c: &ContainerSpec) -> Vec<LinuxNamespace> {
    let ns = |typ: LinuxNamespaceType, path: Option<PathBuf>| {
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n.set_path(path);
        n
    };
    let mut v = Vec::new();
    for (typ, mode) in [
        (LinuxNamespaceType::Pid, &c.pid),
        (LinuxNamespaceType::Ipc, &c.ipc),
        (LinuxNamespaceType::Uts, &c.uts),
    ] {
        match mode {
            Namespace::Private => v.push(ns(typ, None)),
            Namespace::Host => {}
            Namespace::Join(p) => v.push(ns(typ, Some(p.clone()))),
        }
    }
    v.push(ns(LinuxNamespaceType::Mount, None));
    if c.cgroupns {
        v.push(ns(LinuxNamespaceType::Cgroup, None));
    }
    match &c.network {
        NetworkMode::None => v.push(ns(LinuxNamespaceType::Network, None)),
        NetworkMode::Host => {}
        NetworkMode::Path(p) => v.push(ns(LinuxNamespaceType::Network, Some(p.clone()))),
    }
    v
}

/// Checks `--device` and `--device-cgroup-rule` values (the host devices exist, the rules parse),
/// as [`build_spec`] would, so that the daemon can refuse them at create.
pub fn check_devices(devices: &[DeviceMapping], rules: &[String]) -> Result<(), Error> {
    devices::devices(devices)?;
    for r in rules {
        devices::cgroup_rule(r)?;
    }
    Ok(())
}

/// Builds the OCI spec for `c` with Docker's defaults. The process runs as root (0:0); the shim
/// patches `process.user` from `-u` once the rootfs is mounted ([`resolve_user`]).
pub fn build_spec(c: &ContainerSpec) -> Result<Spec, Error> {
    if c.id.is_empty() {
        return Err(Error::InvalidArgument("container id is empty".into()));
    }
    if c.args.is_empty() {
        return Err(Error::InvalidArgument("no command specified".into()));
    }
    let caps = capabilities(c.privileged, &c.cap_add, &c.cap_drop)?;
    let set = oci_caps(&caps);
    let mut lc = LinuxCapabilities::default();
    lc.set_bounding(Some(set.clone()));
    lc.set_effective(Some(set.clone()));
    lc.set_permitted(Some(set));
    lc.set_inheritable(None);
    lc.set_ambient(None);

    let mut args = c.args.clone();
    if c.init {
        if c.init_path.as_os_str().is_empty() {
            return Err(Error::InvalidArgument(
                "--init needs the host path of the init binary (init_path)".into(),
            ));
        }
        args.splice(0..0, [INIT_PATH_IN_CONTAINER.to_string(), "--".to_string()]);
    }
    let mut process = Process::default();
    process.set_terminal(Some(c.tty));
    process.set_args(Some(args));
    process.set_env(Some(c.env.clone()));
    process.set_cwd(PathBuf::from(if c.cwd.is_empty() { "/" } else { c.cwd.as_str() }));
    process.set_capabilities(Some(lc));
    process.set_rlimits(Some(rlimits(&c.ulimits)?));
    // `None`, not `Some(false)`: libcontainer 0.7 loads seccomp *after* dropping capabilities
    // whenever the field is present, which fails without no_new_privs (EACCES).
    process.set_no_new_privileges(if c.no_new_privileges { Some(true) } else { None });
    process.set_oom_score_adj(c.oom_score_adj);

    let mut root = Root::default();
    root.set_path(c.rootfs.clone());
    root.set_readonly(Some(c.readonly_rootfs));

    let (masked, readonly) = if c.privileged {
        (vec![], vec![])
    } else {
        (
            c.masked_paths
                .clone()
                .unwrap_or_else(|| DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect()),
            c.readonly_paths
                .clone()
                .unwrap_or_else(|| DEFAULT_READONLY_PATHS.iter().map(|s| s.to_string()).collect()),
        )
    };
    let (device_nodes, mut extra_rules) = devices::devices(&c.devices)?;
    for rule in &c.device_cgroup_rules {
        extra_rules.push(devices::cgroup_rule(rule)?);
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(c))
        .resources(resources(c, extra_rules)?)
        .cgroups_path(PathBuf::from(cgroup_path(&c.cgroup_parent, "berth", &c.id)?))
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()?;
    if !c.sysctls.is_empty() {
        linux.set_sysctl(Some(
            c.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ));
    }
    // A bind that shares or receives mounts needs a root that propagates (moby's rule: `shared`
    // for a shared bind, else `rslave` for a slave one); otherwise the runtime's default.
    let binds = c.mounts.iter().filter(|m| m.kind == berth_types::MountType::Bind);
    let props: Vec<&str> = binds.map(|m| m.propagation()).collect();
    if props.iter().any(|p| matches!(*p, "shared" | "rshared")) {
        linux.set_rootfs_propagation(Some("shared".into()));
    } else if props.iter().any(|p| matches!(*p, "slave" | "rslave")) {
        linux.set_rootfs_propagation(Some("rslave".into()));
    }
    if c.privileged {
        linux.set_devices(Some(host_devices()));
    } else {
        if !device_nodes.is_empty() {
            linux.set_devices(Some(device_nodes));
        }
        if !c.seccomp_unconfined {
            linux.set_seccomp(Some(match &c.seccomp_profile {
                Some(json) => seccomp::from_docker_profile(json, &caps).map_err(Error::InvalidArgument)?,
                None => seccomp::default_profile(&caps),
            }));
        }
    }

    let mut spec = Spec::default();
    spec.set_version("1.2.0".into());
    spec.set_root(Some(root));
    spec.set_process(Some(process));
    // Only a UTS namespace of its own takes a hostname (the host's or another's is left alone).
    spec.set_hostname(if c.hostname.is_empty() || c.uts != Namespace::Private {
        None
    } else {
        Some(c.hostname.clone())
    });
    spec.set_domainname(if c.domainname.is_empty() || c.uts != Namespace::Private {
        None
    } else {
        Some(c.domainname.clone())
    });
    spec.set_mounts(Some(default_mounts(c)));
    spec.set_linux(Some(linux));
    spec.set_annotations(None);
    spec.set_hooks(None);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> ContainerSpec {
        ContainerSpec {
            id: "abc123".into(),
            rootfs: "/b/rootfs".into(),
            args: vec!["echo".into(), "hi".into()],
            env: vec!["PATH=/bin".into()],
            hostname: "abc123".into(),
            cgroup_parent: "berth".into(),
            ..Default::default()
        }
    }

    #[test]
    fn init_wraps_the_command_and_binds_the_binary() {
        let s = build_spec(&ContainerSpec {
            init: true,
            init_path: "/run/berth/docker-init".into(),
            ..plain()
        })
        .unwrap();
        let args = s.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(args, vec!["/sbin/docker-init", "--", "echo", "hi"]);
        let m = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sbin/docker-init"))
            .unwrap();
        assert_eq!(m.source().as_deref(), Some(Path::new("/run/berth/docker-init")));
        assert_eq!(
            m.options().as_ref().unwrap(),
            &vec!["bind".to_string(), "ro".into()]
        );
        assert!(build_spec(&ContainerSpec {
            init: true,
            ..plain()
        })
        .is_err());
        // The embedded init is a static ELF executable.
        assert_eq!(&INIT_BINARY[..4], b"\x7fELF");
        let plain = build_spec(&plain()).unwrap();
        assert_eq!(
            plain.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "echo"
        );
    }

    fn names(set: &Option<HashSet<Capability>>) -> Vec<String> {
        let mut v: Vec<String> = set.as_ref().unwrap().iter().map(|c| format!("CAP_{c}")).collect();
        v.sort();
        v
    }

    fn sorted(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// A record written before the parent was validated cannot place a container outside the
    /// cgroup root either: the spec is refused, not built with the `..` cleaned away.
    #[test]
    fn spec_with_an_escaping_cgroup_parent_is_refused() {
        let mut c = plain();
        c.cgroup_parent = "../../escape".into();
        assert_eq!(
            build_spec(&c).unwrap_err().kind(),
            berth_types::ErrorKind::InvalidArgument
        );
        c.cgroup_parent = "/nested/deeper".into();
        let s = build_spec(&c).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert_eq!(
            l.cgroups_path().as_deref(),
            Some(Path::new("/nested/deeper/abc123"))
        );
    }

    #[test]
    fn plain_container_gets_docker_defaults() {
        let s = build_spec(&plain()).unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.cwd(), Path::new("/"));
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.user().uid(), 0);
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(names(caps.bounding()), sorted(DEFAULT_CAPS));
        assert_eq!(names(caps.effective()), sorted(DEFAULT_CAPS));
        assert!(caps.ambient().is_none() && caps.inheritable().is_none());
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.cgroups_path().as_deref(), Some(Path::new("/berth/abc123")));
        assert!(l
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(l
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        assert!(l.seccomp().is_some());
        let ns: Vec<_> = l.namespaces().as_ref().unwrap().iter().map(|n| n.typ()).collect();
        assert!(ns.contains(&LinuxNamespaceType::Network) && ns.contains(&LinuxNamespaceType::Pid));
        let mounts = s.mounts().as_ref().unwrap();
        let shm = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        assert!(shm
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=67108864".to_string()));
        let sys = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
        let nofile = p
            .rlimits()
            .as_ref()
            .unwrap()
            .iter()
            .find(|r| r.typ() == PosixRlimitType::RlimitNofile)
            .unwrap();
        assert!(nofile.soft() <= 1024 && nofile.hard() <= 524_288);
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
        assert_eq!(s.hostname().as_deref(), Some("abc123"));
        // The JSON is what libcontainer reads.
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"CAP_CHOWN\"") && json.contains("SCMP_ACT_ERRNO"));
    }

    #[test]
    fn privileged_gets_everything() {
        let s = build_spec(&ContainerSpec {
            privileged: true,
            cap_drop: vec!["ALL".into()],
            ..plain()
        })
        .unwrap();
        let caps = s.process().as_ref().unwrap().capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), host_caps());
        let l = s.linux().as_ref().unwrap();
        assert!(l.seccomp().is_none());
        assert!(l.masked_paths().as_ref().unwrap().is_empty());
        assert!(l.readonly_paths().as_ref().unwrap().is_empty());
        let dev = &l.resources().as_ref().unwrap().devices().as_ref().unwrap()[0];
        assert!(dev.allow() && dev.access().as_deref() == Some("rwm") && dev.typ().is_none());
        let sys = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
    }

    /// How many of the known capabilities this host's bounding set holds.
    fn host_caps() -> usize {
        (0..ALL_CAPS.len())
            .filter(|i| host_bounding_set() & (1u64 << i) != 0)
            .count()
    }

    #[test]
    fn cap_add_and_drop() {
        let c = capabilities(false, &["net_admin".into()], &["CAP_CHOWN".into(), "kill".into()]).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()) && !c.contains(&"CAP_KILL".to_string()));
        assert_eq!(c.len(), DEFAULT_CAPS.len() - 1);
        let c = capabilities(false, &["ALL".into()], &["sys_admin".into()]).unwrap();
        assert_eq!(
            c.len(),
            host_caps() - usize::from(host_bounding_set() & (1 << 21) != 0)
        );
        let c = capabilities(false, &["NET_RAW".into()], &["all".into()]).unwrap();
        assert_eq!(c, vec!["CAP_NET_RAW".to_string()]);
        let err = capabilities(false, &["FOO".into()], &[]).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability: \"CAP_FOO\"");
        // seccomp follows the capability set
        let s = build_spec(&ContainerSpec {
            cap_add: vec!["SYS_ADMIN".into()],
            ..plain()
        })
        .unwrap();
        let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert!(sc
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .any(|r| r.names().contains(&"mount".to_string())));
    }

    #[test]
    fn resource_limits() {
        let c = ContainerSpec {
            memory: 64 << 20,
            nano_cpus: 1_500_000_000,
            cpu_shares: 512,
            pids_limit: Some(10),
            cpuset_cpus: "0".into(),
            ulimits: vec![Ulimit {
                name: "nproc".into(),
                soft: 100,
                hard: 200,
            }],
            ..plain()
        };
        let s = build_spec(&c).unwrap();
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap().clone();
        let m = r.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(64 << 20), Some(128 << 20)));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.quota(), cpu.period(), cpu.shares()),
            (Some(150_000), Some(100_000), Some(512))
        );
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        let rl = s.process().as_ref().unwrap().rlimits().as_ref().unwrap().clone();
        let nproc = rl
            .iter()
            .find(|r| r.typ() == PosixRlimitType::RlimitNproc)
            .unwrap();
        assert!(nproc.soft() <= 100 && nproc.hard() <= 200);
        // unlimited swap and unlimited pids
        let s = build_spec(&ContainerSpec {
            memory: 1 << 30,
            memory_swap: -1,
            pids_limit: Some(0),
            ..plain()
        })
        .unwrap();
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap().clone();
        assert_eq!(r.memory().as_ref().unwrap().swap(), Some(-1));
        assert_eq!(r.pids().as_ref().unwrap().limit(), -1);
    }

    #[test]
    fn rlimits_are_clamped_to_the_host() {
        let host = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(u64::MAX);
        let r = rlimits(&[Ulimit {
            name: "nofile".into(),
            soft: i64::MAX,
            hard: i64::MAX,
        }])
        .unwrap();
        assert_eq!(r[0].hard(), host);
        assert!(r[0].soft() <= host);
        assert!(rlimits(&[Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1
        }])
        .is_err());
    }

    /// `--pid`, `--ipc` and `--uts` modes: a namespace of its own, none (the host's), or a
    /// path to join; `/dev/shm` a tmpfs, nothing, or a bind; no hostname outside a private UTS.
    #[test]
    fn namespace_modes_and_shm() {
        let kinds = |s: &Spec| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
            let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
            ns.iter().map(|n| (n.typ(), n.path().clone())).collect()
        };
        let shm = |s: &Spec| {
            s.mounts()
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.destination() == Path::new("/dev/shm"))
                .map(|m| (m.typ().clone().unwrap(), m.source().clone().unwrap()))
        };
        let s = build_spec(&plain()).unwrap();
        let all = kinds(&s);
        for t in [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
        ] {
            assert!(all.contains(&(t, None)), "{t:?} missing from {all:?}");
        }
        assert_eq!(shm(&s), Some(("tmpfs".into(), PathBuf::from("shm"))));
        assert_eq!(s.hostname().as_deref(), Some("abc123"));

        let s = build_spec(&ContainerSpec {
            pid: Namespace::Host,
            ipc: Namespace::Join("/proc/42/ns/ipc".into()),
            uts: Namespace::Host,
            shm: Shm::Bind("/run/x/shm".into()),
            ..plain()
        })
        .unwrap();
        let all = kinds(&s);
        assert!(!all
            .iter()
            .any(|(t, _)| matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Uts)));
        assert!(all.contains(&(LinuxNamespaceType::Ipc, Some("/proc/42/ns/ipc".into()))));
        assert_eq!(shm(&s), Some(("bind".into(), PathBuf::from("/run/x/shm"))));
        assert_eq!(s.hostname(), &None);

        let s = build_spec(&ContainerSpec {
            pid: Namespace::Join("/proc/7/ns/pid".into()),
            shm: Shm::Absent,
            cgroupns: true,
            ..plain()
        })
        .unwrap();
        assert!(kinds(&s).contains(&(LinuxNamespaceType::Cgroup, None)));
        assert!(!kinds(&build_spec(&plain()).unwrap())
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Cgroup));
        assert!(kinds(&s).contains(&(LinuxNamespaceType::Pid, Some("/proc/7/ns/pid".into()))));
        assert_eq!(shm(&s), None);
    }

    #[test]
    fn readonly_rootfs_and_host_network() {
        let s = build_spec(&ContainerSpec {
            readonly_rootfs: true,
            network: NetworkMode::Host,
            ..plain()
        })
        .unwrap();
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        let s = build_spec(&ContainerSpec {
            network: NetworkMode::Path("/run/berth/netns/x".into()),
            ..plain()
        })
        .unwrap();
        let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        let net = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(net.path().as_deref(), Some(Path::new("/run/berth/netns/x")));
    }

    #[test]
    fn binds_follow_defaults() {
        let c = ContainerSpec {
            mounts: vec![MountPoint::bind("/h/hosts", "/etc/hosts", true)],
            ..plain()
        };
        let s = build_spec(&c).unwrap();
        let m = s.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.destination(), Path::new("/etc/hosts"));
        assert_eq!(
            m.options().as_ref().unwrap(),
            &vec!["rbind".to_string(), "rprivate".into(), "ro".into()]
        );
    }
}
