//! `/info` and `/version`.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::{
    SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, SystemVersion,
    SystemVersionComponents, SystemVersionPlatform,
};

use crate::container::Status;
use crate::Daemon;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How cgroups are mounted on this host.
pub fn cgroup_version() -> &'static str {
    match rustix::fs::statfs(berth_runtime::CGROUP_ROOT) {
        Ok(s) if s.f_type == 0x6367_7270 => "2", // CGROUP2_SUPER_MAGIC
        _ => "1",
    }
}

fn kernel_version() -> String {
    rustix::system::uname().release().to_string_lossy().into_owned()
}

fn os_release() -> (String, String) {
    let s = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("PRETTY_NAME"), get("VERSION_ID"))
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl Daemon {
    pub fn version(&self) -> SystemVersion {
        let mut details = HashMap::new();
        details.insert("ApiVersion".to_string(), berth_api::API_VERSION.to_string());
        details.insert(
            "MinAPIVersion".to_string(),
            berth_api::MIN_API_VERSION.to_string(),
        );
        details.insert("Os".to_string(), "linux".to_string());
        details.insert("Arch".to_string(), arch().to_string());
        details.insert("KernelVersion".to_string(), kernel_version());
        details.insert("Experimental".to_string(), "false".to_string());
        details.insert("GitCommit".to_string(), git_commit().to_string());
        // dockerd's keys; berth has no Go toolchain and no recorded build time.
        details.insert("GoVersion".to_string(), String::new());
        details.insert("BuildTime".to_string(), String::new());
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: "berth".to_string(),
            }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".to_string(),
                version: VERSION.to_string(),
                details: Some(details),
            }]),
            version: Some(VERSION.to_string()),
            api_version: Some(berth_api::API_VERSION.to_string()),
            min_api_version: Some(berth_api::MIN_API_VERSION.to_string()),
            git_commit: Some(git_commit().to_string()),
            go_version: Some(String::new()),
            os: Some("linux".to_string()),
            arch: Some(arch().to_string()),
            kernel_version: Some(kernel_version()),
            // dockerd leaves the key out when false (omitempty).
            experimental: None,
            build_time: Some(String::new()),
        }
    }

    pub fn info(self: &Arc<Self>) -> SystemInfo {
        let all = self.all();
        let count = |f: &dyn Fn(Status) -> bool| all.iter().filter(|e| f(e.status())).count() as i64;
        let running = count(&|s| s == Status::Running || s == Status::Restarting);
        let paused = count(&|s| s == Status::Paused);
        let images = self
            .images
            .list(&berth_image::ListOptions::default())
            .map(|v| v.len() as i64)
            .unwrap_or(0);
        let (os, os_version) = os_release();
        let cgv = cgroup_version();
        SystemInfo {
            id: Some(self.engine_id.clone()),
            containers: Some(all.len() as i64),
            containers_running: Some(running),
            containers_paused: Some(paused),
            containers_stopped: Some(all.len() as i64 - running - paused),
            images: Some(images),
            driver: Some("overlay2".to_string()),
            driver_status: Some(crate::storage::driver_status(&self.config.data_root)),
            docker_root_dir: Some(self.config.data_root.to_string_lossy().into_owned()),
            memory_limit: Some(true),
            swap_limit: Some(true),
            cpu_cfs_period: Some(true),
            cpu_cfs_quota: Some(true),
            cpu_shares: Some(true),
            cpu_set: Some(true),
            pids_limit: Some(true),
            oom_kill_disable: Some(cgv == "1"),
            ipv4_forwarding: Some(true),
            debug: Some(self.config.debug),
            nfd: Some(
                std::fs::read_dir("/proc/self/fd")
                    .map(|d| d.count() as i64)
                    .unwrap_or(0),
            ),
            system_time: Some(berth_types::time::rfc3339_nano(berth_types::time::now_nanos())),
            logging_driver: Some("json-file".to_string()),
            cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
            cgroup_version: Some(if cgv == "2" {
                SystemInfoCgroupVersionEnum::_2
            } else {
                SystemInfoCgroupVersionEnum::_1
            }),
            kernel_version: Some(kernel_version()),
            operating_system: Some(os),
            os_version: Some(os_version),
            os_type: Some("linux".to_string()),
            architecture: Some(std::env::consts::ARCH.to_string()),
            ncpu: Some(
                std::thread::available_parallelism()
                    .map(|n| n.get() as i64)
                    .unwrap_or(1),
            ),
            mem_total: Some(mem_total()),
            index_server_address: Some("https://index.docker.io/v1/".to_string()),
            name: Some(rustix::system::uname().nodename().to_string_lossy().into_owned()),
            labels: Some(vec![]),
            experimental_build: Some(false),
            server_version: Some(VERSION.to_string()),
            default_runtime: Some(crate::RUNTIME.to_string()),
            live_restore_enabled: Some(true),
            security_options: Some(vec!["name=seccomp,profile=builtin".to_string()]),
            warnings: Some(vec![]),
            ..Default::default()
        }
    }
}

fn git_commit() -> &'static str {
    option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown")
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
