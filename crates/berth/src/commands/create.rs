//! `berth create`, and the container flags shared with `run`: flags → the create body the docker
//! CLI sends, plus the create-with-pull flow.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use crate::client::{path_escape, Body, Query};

use super::{is_not_found, split_ref, status, Ctx};

#[derive(clap::Args, Default, Debug, Clone)]
pub struct ContainerOpts {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Write the container ID to the file
    #[arg(long)]
    pub cidfile: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long = "memory-swappiness", allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Block IO weight (relative device weight)
    #[arg(long = "blkio-weight-device")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long = "device-read-bps")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long = "device-write-bps")]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long = "device-read-iops")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long = "device-write-iops")]
    pub device_write_iops: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Add additional groups to join (names from the container's /etc/group, or numeric gids)
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Logging driver for the container (json-file, local, none)
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (e.g. max-size=10m)
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    pub mount: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Connect a container to a network (bridge, host, none, container:NAME, or a user network)
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Add link to another container
    #[arg(long)]
    pub link: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long)]
    pub volume: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(clap::Args)]
#[command(
    disable_help_flag = true,
    override_usage = "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]",
    after_help = "Examples:\n  berth create --name web -p 8080:80 busybox httpd -f\n  berth start web"
)]
pub struct Args {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE"
    )]
    pub argv: Vec<String>,
}

/// units.RAMInBytes: `64m`, `1g`, `512k`, `1024` (binary multiples).
pub fn ram_in_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| anyhow::anyhow!("invalid size: '{s}'"))?;
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => bail!("invalid size: '{s}'"),
    };
    Ok((n * mult) as i64)
}

/// Go's `time.ParseDuration` → nanoseconds.
pub fn go_duration_ns(s: &str) -> anyhow::Result<i64> {
    berth_types::time::go_duration(s.trim()).map_err(|e| anyhow::anyhow!(e))
}

fn read_kv_file(path: &str, from_env: bool) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(if from_env { env_value(l) } else { l.to_owned() });
    }
    Ok(out)
}

/// `-e NAME` takes NAME's value from the local environment when set.
fn env_value(e: &str) -> String {
    if e.contains('=') {
        return e.to_owned();
    }
    match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_owned(),
    }
}

/// `[ip:][hostPort:]containerPort[/proto]` → (port key, host ip, host port).
fn parse_publish(s: &str) -> anyhow::Result<(String, String, String)> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (s, "tcp"),
    };
    let parts: Vec<&str> = if spec.starts_with('[') {
        // [::1]:8080:80
        let end = spec.find(']').context("invalid IPv6 address")?;
        let ip = &spec[1..end];
        let rest: Vec<&str> = spec[end + 1..].trim_start_matches(':').split(':').collect();
        let mut v = vec![ip];
        v.extend(rest);
        v
    } else {
        spec.split(':').collect()
    };
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [i, h, c] => (*i, *h, *c),
        _ => bail!("invalid publish opts format (should be name=value but got '{s}')"),
    };
    if ctr.is_empty() || ctr.parse::<u16>().is_err() && !ctr.contains('-') {
        bail!("invalid containerPort: {ctr}");
    }
    Ok((format!("{ctr}/{proto}"), ip.to_owned(), host.to_owned()))
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`, as docker's CLI splits it.
fn parse_device(s: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let valid_perms =
        |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if valid_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if valid_perms(p) => (*h, *c, *p),
        _ => bail!("invalid argument \"{s}\" for \"--device\" flag: bad format for path: {s}"),
    };
    if !ctr.starts_with('/') {
        bail!("invalid argument \"{s}\" for \"--device\" flag: {ctr} is not an absolute path");
    }
    Ok(json!({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms}))
}

fn parse_mount(s: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut kind = "volume".to_owned();
    let mut tmpfs = Map::new();
    let mut bind = Map::new();
    let mut volume = Map::new();
    let mut driver = Map::new();
    let mut driver_opts = Map::new();
    let mut vlabels = Map::new();
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "type" => kind = v.to_owned(),
            "source" | "src" => {
                m.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(v.is_empty() || v == "1" || v == "true"));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(v));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(ram_in_bytes(v)?));
            }
            "tmpfs-mode" => {
                tmpfs.insert("Mode".into(), json!(u32::from_str_radix(v, 8)?));
            }
            "volume-nocopy" => {
                volume.insert("NoCopy".into(), json!(v.is_empty() || v == "1" || v == "true"));
            }
            "volume-driver" => {
                driver.insert("Name".into(), json!(v));
            }
            "volume-opt" => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                driver_opts.insert(k.into(), json!(val));
            }
            "volume-label" => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                vlabels.insert(k.into(), json!(val));
            }
            "consistency" | "bind-nonrecursive" => {}
            other => bail!("invalid field '{other}' must be a key=value pair"),
        }
    }
    if !m.contains_key("Target") {
        bail!("target is required");
    }
    m.insert("Type".into(), json!(kind));
    if !bind.is_empty() {
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !tmpfs.is_empty() {
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    if !driver_opts.is_empty() {
        driver.insert("Options".into(), Value::Object(driver_opts));
    }
    if !driver.is_empty() {
        volume.insert("DriverConfig".into(), Value::Object(driver));
    }
    if !vlabels.is_empty() {
        volume.insert("Labels".into(), Value::Object(vlabels));
    }
    if !volume.is_empty() {
        m.insert("VolumeOptions".into(), Value::Object(volume));
    }
    Ok(Value::Object(m))
}

/// `--blkio-weight-device PATH:WEIGHT`, checked as the docker CLI checks it.
fn weight_device(d: &str) -> anyhow::Result<Value> {
    let (path, weight) = d
        .split_once(':')
        .filter(|(p, _)| !p.contains(':'))
        .ok_or_else(|| anyhow::anyhow!("bad format: {d}"))?;
    if !path.starts_with("/dev/") {
        anyhow::bail!("bad format for device path: {d}");
    }
    match weight.parse::<u16>() {
        Ok(w) if w == 0 || (10..=1000).contains(&w) => Ok(json!({"Path": path, "Weight": w})),
        _ => anyhow::bail!("invalid weight for device: {d}"),
    }
}

/// `--device-{read,write}-bps PATH:RATE[UNIT]` (`bytes`) or `--device-{read,write}-iops
/// PATH:N`, checked as the docker CLI checks them.
fn throttle_device(d: &str, bytes: bool) -> anyhow::Result<Value> {
    let (path, rate) = d
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("bad format: {d}"))?;
    if !path.starts_with("/dev/") {
        anyhow::bail!("bad format for device path: {d}");
    }
    let rate = if bytes {
        ram_in_bytes(rate).ok().filter(|r| *r >= 0).ok_or_else(|| {
            anyhow::anyhow!("invalid rate for device: {d}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb")
        })?
    } else {
        rate.parse::<u64>().ok().map(|r| r as i64).ok_or_else(|| {
            anyhow::anyhow!("invalid rate for device: {d}. The correct format is <device-path>:<number>. Number must be a positive integer")
        })?
    };
    Ok(json!({"Path": path, "Rate": rate}))
}

/// `--security-opt`s as the API takes them: a `seccomp=FILE` profile is sent as its content
/// (compact JSON), as the docker CLI does; `unconfined` and `builtin` are left as they are.
fn security_opts(opts: &[String]) -> anyhow::Result<Vec<String>> {
    opts.iter()
        .map(|o| match o.split_once('=') {
            Some(("seccomp", v)) if v != "unconfined" && v != "builtin" => {
                let text = std::fs::read_to_string(v)
                    .map_err(|e| anyhow::anyhow!("opening seccomp profile ({v}) failed: {e}"))?;
                let json: Value = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("compacting json for seccomp profile ({v}) failed: {e}"))?;
                Ok(format!("seccomp={json}"))
            }
            _ => Ok(o.clone()),
        })
        .collect()
}

/// `console` is (height, width) when a TTY is attached to a terminal.
/// Builds the `POST /containers/create` body as the docker CLI fills it.
pub fn build_body(
    o: &ContainerOpts,
    argv: &[String],
    run_detached: bool,
    console: (u16, u16),
) -> anyhow::Result<Value> {
    let image = argv
        .first()
        .context("\"create\" requires at least 1 argument")?
        .clone();
    let cmd: Value = if argv.len() > 1 {
        json!(argv[1..])
    } else {
        Value::Null
    };

    let mut env: Vec<String> = Vec::new();
    for f in &o.env_file {
        env.extend(read_kv_file(f, true)?);
    }
    env.extend(o.env.iter().map(|e| env_value(e)));
    let mut labels = BTreeMap::new();
    for f in &o.label_file {
        for l in read_kv_file(f, false)? {
            let (k, v) = l.split_once('=').unwrap_or((&l, ""));
            labels.insert(k.to_owned(), v.to_owned());
        }
    }
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_owned(), v.to_owned());
    }

    let mut attach_stdin = o.attach.iter().any(|a| a.eq_ignore_ascii_case("stdin"));
    let mut attach_stdout = o.attach.iter().any(|a| a.eq_ignore_ascii_case("stdout"));
    let mut attach_stderr = o.attach.iter().any(|a| a.eq_ignore_ascii_case("stderr"));
    if o.interactive {
        attach_stdin = true;
    }
    if o.attach.is_empty() {
        attach_stdout = true;
        attach_stderr = true;
    }
    let mut stdin_once = false;
    if run_detached {
        if !o.attach.is_empty() {
            bail!("Conflicting options: -a and -d");
        }
        attach_stdin = false;
        attach_stdout = false;
        attach_stderr = false;
    } else if attach_stdin {
        stdin_once = true;
    }

    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in &o.expose {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        exposed.insert(format!("{p}/{proto}"), json!({}));
    }
    for p in &o.publish {
        let (key, ip, host) = parse_publish(p)?;
        exposed.insert(key.clone(), json!({}));
        bindings
            .entry(key)
            .or_default()
            .push(json!({"HostIp": ip, "HostPort": host}));
    }

    let mut volumes = BTreeMap::new();
    let mut binds = Vec::new();
    for v in &o.volume {
        if v.contains(':') {
            binds.push(v.clone());
        } else {
            volumes.insert(v.clone(), json!({}));
        }
    }
    let mounts: Vec<Value> = o
        .mount
        .iter()
        .map(|m| parse_mount(m))
        .collect::<anyhow::Result<_>>()?;
    let mut tmpfs = BTreeMap::new();
    for t in &o.tmpfs {
        let (p, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(p.to_owned(), opts.to_owned());
    }
    let devices = o
        .device
        .iter()
        .map(|d| parse_device(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ulimits = Vec::new();
    for u in &o.ulimit {
        let (name, lim) = u
            .split_once('=')
            .with_context(|| format!("invalid ulimit argument: {u}"))?;
        let (soft, hard) = lim.split_once(':').unwrap_or((lim, lim));
        let soft: i64 = soft
            .parse()
            .with_context(|| format!("invalid ulimit soft value {soft}"))?;
        let hard: i64 = hard
            .parse()
            .with_context(|| format!("invalid ulimit hard value {hard}"))?;
        if soft > hard {
            bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
        }
        ulimits.push(json!({"Name": name, "Hard": hard, "Soft": soft}));
    }
    if o.rm && o.restart.as_deref().is_some_and(|r| !r.is_empty() && r != "no") {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let restart = match o.restart.as_deref() {
        None | Some("") | Some("no") => json!({"Name": "no", "MaximumRetryCount": 0}),
        Some(r) => {
            let (name, count) = r.split_once(':').unwrap_or((r, "0"));
            if !matches!(name, "always" | "unless-stopped" | "on-failure") {
                bail!("invalid restart policy '{name}'");
            }
            if name != "on-failure" && count != "0" {
                bail!(
                    "invalid restart policy format: maximum retry count can only be used with 'on-failure'"
                );
            }
            json!({"Name": name, "MaximumRetryCount": count.parse::<i64>().with_context(|| format!("invalid restart policy format: {r}"))?})
        }
    };
    let nano_cpus = match &o.cpus {
        Some(c) => {
            let f: f64 = c
                .parse()
                .map_err(|_| anyhow::anyhow!("failed to parse {c} as a rational number"))?;
            (f * 1e9).round() as i64
        }
        None => 0,
    };
    let memory = o.memory.as_deref().map(ram_in_bytes).transpose()?.unwrap_or(0);
    let memory_swap = match o.memory_swap.as_deref() {
        Some("-1") => -1,
        Some(s) => ram_in_bytes(s)?,
        None => 0,
    };
    let shm = o.shm_size.as_deref().map(ram_in_bytes).transpose()?.unwrap_or(0);
    let security_opt = security_opts(&o.security_opt)?;
    let memory_reservation = o
        .memory_reservation
        .as_deref()
        .map(ram_in_bytes)
        .transpose()?
        .unwrap_or(0);
    let weight_devices = o
        .blkio_weight_device
        .iter()
        .map(|d| weight_device(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bps = |v: &[String]| {
        v.iter()
            .map(|d| throttle_device(d, true))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let iops = |v: &[String]| {
        v.iter()
            .map(|d| throttle_device(d, false))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let network = o.network.clone().unwrap_or_else(|| "default".into());
    let entrypoint = match &o.entrypoint {
        None => Value::Null,
        Some(e) => json!([e]),
    };
    let healthcheck = if o.no_healthcheck {
        if o.health_cmd.is_some() {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        Some(json!({"Test": ["NONE"]}))
    } else if o.health_cmd.is_some()
        || o.health_interval.is_some()
        || o.health_retries.is_some()
        || o.health_timeout.is_some()
        || o.health_start_period.is_some()
    {
        let test = o
            .health_cmd
            .as_ref()
            .map(|c| json!(["CMD-SHELL", c]))
            .unwrap_or(Value::Null);
        let d = |x: &Option<String>| {
            x.as_deref()
                .map(go_duration_ns)
                .transpose()
                .map(|v| v.unwrap_or(0))
        };
        Some(json!({
            "Test": test,
            "Interval": d(&o.health_interval)?,
            "Timeout": d(&o.health_timeout)?,
            "StartPeriod": d(&o.health_start_period)?,
            "Retries": o.health_retries.unwrap_or(0),
        }))
    } else {
        None
    };
    let opt_list = |v: &Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };

    let mut host = json!({
        "Binds": opt_list(&binds),
        "ContainerIDFile": o.cidfile.clone().unwrap_or_default(),
        "LogConfig": log_config(o)?,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": restart,
        "AutoRemove": o.rm,
        "VolumeDriver": "",
        "VolumesFrom": opt_list(&o.volumes_from),
        "ConsoleSize": [console.0, console.1],
        "CapAdd": opt_list(&o.cap_add),
        "CapDrop": opt_list(&o.cap_drop),
        "CgroupnsMode": o.cgroupns.clone().unwrap_or_default(),
        "Dns": o.dns,
        "DnsOptions": o.dns_option,
        "DnsSearch": o.dns_search,
        "ExtraHosts": opt_list(&o.add_host),
        "GroupAdd": opt_list(&o.group_add),
        "IpcMode": o.ipc.clone().unwrap_or_default(),
        "Cgroup": "",
        "Links": opt_list(&o.link),
        "OomScoreAdj": o.oom_score_adj.unwrap_or(0),
        "PidMode": o.pid.clone().unwrap_or_default(),
        "Privileged": o.privileged,
        "PublishAllPorts": o.publish_all,
        "ReadonlyRootfs": o.read_only,
        "SecurityOpt": opt_list(&security_opt),
        "UTSMode": o.uts.clone().unwrap_or_default(),
        "UsernsMode": o.userns.clone().unwrap_or_default(),
        "ShmSize": shm,
        "Isolation": "",
        "CpuShares": o.cpu_shares.unwrap_or(0),
        "Memory": memory,
        "NanoCpus": nano_cpus,
        "CgroupParent": o.cgroup_parent.clone().unwrap_or_default(),
        "BlkioWeight": o.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": weight_devices,
        "BlkioDeviceReadBps": bps(&o.device_read_bps)?,
        "BlkioDeviceWriteBps": bps(&o.device_write_bps)?,
        "BlkioDeviceReadIOps": iops(&o.device_read_iops)?,
        "BlkioDeviceWriteIOps": iops(&o.device_write_iops)?,
        "CpuPeriod": o.cpu_period.unwrap_or(0),
        "CpuQuota": o.cpu_quota.unwrap_or(0),
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": o.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": o.cpuset_mems.clone().unwrap_or_default(),
        "Devices": devices,
        "DeviceCgroupRules": opt_list(&o.device_cgroup_rule),
        "DeviceRequests": null,
        "MemoryReservation": memory_reservation,
        "MemorySwap": memory_swap,
        "MemorySwappiness": o.memory_swappiness.unwrap_or(-1),
        "OomKillDisable": o.oom_kill_disable,
        "PidsLimit": o.pids_limit.unwrap_or(0),
        "Ulimits": ulimits,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": null,
        "ReadonlyPaths": null,
    });
    if !mounts.is_empty() {
        host["Mounts"] = json!(mounts);
    }
    if !tmpfs.is_empty() {
        host["Tmpfs"] = json!(tmpfs);
    }
    if o.init {
        host["Init"] = json!(true);
    }
    if !o.sysctl.is_empty() {
        let mut m = serde_json::Map::new();
        for s in &o.sysctl {
            let (k, v) = s.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not allowed")
            })?;
            m.insert(k.to_string(), json!(v));
        }
        host["Sysctls"] = Value::Object(m);
    }
    if let Some(r) = &o.runtime {
        host["Runtime"] = json!(r);
    }

    let mut body = json!({
        "Hostname": o.hostname.clone().unwrap_or_default(),
        "MacAddress": o.mac_address.clone().unwrap_or_default(),
        "Domainname": o.domainname.clone().unwrap_or_default(),
        "User": o.user.clone().unwrap_or_default(),
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": stdin_once,
        "Env": opt_list(&env),
        "Cmd": cmd,
        "Image": image,
        "Volumes": volumes,
        "WorkingDir": o.workdir.clone().unwrap_or_default(),
        "Entrypoint": entrypoint,
        "OnBuild": null,
        "Labels": labels,
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {network.clone(): {
            "IPAMConfig": match &o.ip { Some(ip) => json!({"IPv4Address": ip}), None => json!(null) },
            "Links": opt_list(&o.link),
            "Aliases": if o.network_alias.is_empty() { json!(null) } else { json!(o.network_alias) },
            "MacAddress": "", "DriverOpts": null,
            "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null
        }}},
    });
    if !exposed.is_empty() {
        body["ExposedPorts"] = json!(exposed);
    }
    if let Some(h) = healthcheck {
        body["Healthcheck"] = h;
    }
    if let Some(s) = &o.stop_signal {
        body["StopSignal"] = json!(s);
    }
    if let Some(t) = o.stop_timeout {
        body["StopTimeout"] = json!(t);
    }
    Ok(body)
}

/// `POST /images/create?fromImage=…&tag=…`, progress to stderr as docker does.
pub fn pull(ctx: &Ctx, image: &str, quiet: bool, platform: Option<&str>) -> anyhow::Result<()> {
    super::pull::pull_image(ctx, image, false, platform, quiet, true).map(|_| ())
}

/// Creates the container, pulling the image once if the daemon says it is missing.
/// Returns the container ID. Errors are daemon errors, left for the caller to map.
pub fn create_container(ctx: &Ctx, o: &ContainerOpts, body: &Value) -> anyhow::Result<String> {
    let image = body["Image"].as_str().unwrap_or_default().to_owned();
    if let Some(f) = &o.cidfile {
        if std::path::Path::new(f).exists() {
            bail!("Container ID file found, make sure the other container isn't running or delete {f}");
        }
    }
    if let Some(p) = &o.platform {
        if p != "linux/amd64" && p != "linux" && p != "amd64" {
            bail!("platform {p} is not supported");
        }
    }
    let mut q = Query::new();
    if let Some(n) = &o.name {
        q.add("name", n.as_str());
    }
    let path = format!("/containers/create{}", q.encode());
    if o.pull == "always" {
        pull(ctx, &image, o.quiet, o.platform.as_deref())?;
    }
    let resp = match ctx.client.call("POST", &path, Body::json(body)) {
        Err(e) if is_not_found(&e) && o.pull != "never" => {
            let (name, tag) = split_ref(&image);
            let shown = if image.contains('@') {
                format!("{name}@{tag}")
            } else {
                format!("{name}:{tag}")
            };
            eprintln!("Unable to find image '{shown}' locally");
            pull(ctx, &image, o.quiet, o.platform.as_deref())?;
            ctx.client.call("POST", &path, Body::json(body))?
        }
        r => r?,
    };
    let v = resp.json()?;
    for w in v
        .get("Warnings")
        .and_then(|w| w.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = v
        .get("Id")
        .and_then(|i| i.as_str())
        .context("create response has no Id")?
        .to_owned();
    if let Some(f) = &o.cidfile {
        std::fs::write(f, &id)
            .with_context(|| format!("failed to write the container ID to the file {f}"))?;
    }
    Ok(id)
}

/// docker's `toStatusError` for run/create: `berth: <err>` + help hint, exit 125/126/127.
pub fn to_status_error(e: anyhow::Error, cmd: &str) -> anyhow::Error {
    if e.downcast_ref::<super::StatusError>()
        .is_some_and(|s| s.msg.is_empty())
    {
        return e;
    }
    let msg = format!("{e:#}");
    let code = if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    };
    status(
        code,
        format!("berth: {msg}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

/// docker's `reportError` for flag values it cannot parse: `berth: <msg>.` + help hint, exit 125.
pub fn report_error(e: anyhow::Error, cmd: &str) -> anyhow::Error {
    status(
        125,
        format!("berth: {e:#}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<i32> {
    super::reject_flag_as_positional(&a.argv[0], "create")?;
    let body = build_body(&a.opts, &a.argv, false, (0, 0)).map_err(|e| report_error(e, "create"))?;
    let id = create_container(ctx, &a.opts, &body)?;
    println!("{id}");
    Ok(0)
}

pub fn container_path(id: &str, rest: &str) -> String {
    format!("/containers/{}{rest}", path_escape(id))
}

/// `--log-driver` and `--log-opt k=v` as `HostConfig.LogConfig`.
fn log_config(o: &ContainerOpts) -> anyhow::Result<Value> {
    let mut config = Map::new();
    for kv in &o.log_opt {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid log opt: {kv}: log opts must be key=value");
        };
        config.insert(k.to_string(), json!(v));
    }
    Ok(json!({"Type": o.log_driver.clone().unwrap_or_default(), "Config": config}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        o: ContainerOpts,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
    }

    fn body(args: &[&str], detached: bool) -> Value {
        let t = T::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap();
        build_body(&t.o, &t.argv, detached, (0, 0)).unwrap()
    }

    #[test]
    fn plain_run_matches_the_captured_body() {
        let b = body(&["--rm", "busybox", "echo", "hi"], false);
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Env"], Value::Null);
        assert_eq!(b["AttachStdout"], json!(true));
        assert_eq!(b["AttachStdin"], json!(false));
        assert_eq!(b["HostConfig"]["AutoRemove"], json!(true));
        assert_eq!(b["HostConfig"]["NetworkMode"], json!("default"));
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name":"no","MaximumRetryCount":0})
        );
        assert_eq!(b["Labels"], json!({}));
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());
    }

    #[test]
    fn resource_flags_convert_like_docker() {
        let b = body(
            &[
                "-i",
                "-m",
                "64m",
                "--cpus",
                "1.5",
                "--pids-limit",
                "100",
                "--ulimit",
                "nofile=1024:2048",
                "-e",
                "A=1",
                "-p",
                "127.0.0.1:8080:80",
                "--restart",
                "on-failure:3",
                "--entrypoint",
                "",
                "--health-cmd",
                "true",
                "--health-interval",
                "1m30s",
                "--init",
                "-l",
                "k=v",
                "busybox",
            ],
            false,
        );
        let h = &b["HostConfig"];
        assert_eq!(h["Memory"], json!(67108864));
        assert_eq!(h["NanoCpus"], json!(1_500_000_000i64));
        assert_eq!(h["PidsLimit"], json!(100));
        assert_eq!(h["Ulimits"], json!([{"Name":"nofile","Hard":2048,"Soft":1024}]));
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]})
        );
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name":"on-failure","MaximumRetryCount":3})
        );
        assert_eq!(h["Init"], json!(true));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp":{}}));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Cmd"], Value::Null);
        assert_eq!(b["Labels"], json!({"k":"v"}));
        assert_eq!(b["Healthcheck"]["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(b["Healthcheck"]["Interval"], json!(90_000_000_000i64));
        assert_eq!(
            (
                b["AttachStdin"].clone(),
                b["OpenStdin"].clone(),
                b["StdinOnce"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
    }

    #[test]
    fn detached_run_attaches_nothing() {
        let b = body(&["-d", "busybox"].as_slice()[1..], true);
        assert_eq!(b["AttachStdout"], json!(false));
        assert_eq!(b["AttachStderr"], json!(false));
    }

    #[test]
    fn units_parse() {
        assert_eq!(ram_in_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("512k").unwrap(), 512 * 1024);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert!(ram_in_bytes("12x").is_err());
        assert_eq!(go_duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(go_duration_ns("1h2m").unwrap(), 3_720_000_000_000);
    }
}
