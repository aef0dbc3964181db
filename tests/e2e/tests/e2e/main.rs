//! berth end to end. Each test runs its own private berthd (see berth_e2e::Daemon). Tests that
//! need root print `skipped: requires root` when run without it; CI runs them as root.

/// Starts a daemon with busybox imported, or returns from the test when not root.
macro_rules! daemon {
    () => {{
        if !berth_e2e::require_root(module_path!()) {
            return;
        }
        berth_e2e::Daemon::start()
    }};
}

mod beside_dockerd;
mod build;
mod build_cache;
mod build_conformance;
mod build_files;
mod build_git;
mod cgroups;
mod compose;
mod crash;
mod docker_cli;
mod docker_py;
mod events;
mod exec;
mod fastinit;
mod fidelity;
mod filesystem;
mod honest;
mod hotpath;
mod images;
mod lifecycle;
mod logs;
mod manage;
mod namespaces;
mod network;
mod network_check;
mod network_disconnect;
mod network_dns_tcp;
mod network_links;
mod network_teardown;
mod permissions;
mod policies;
mod registry;
mod restore;
mod run;
mod scale;
mod security;
mod system;
mod tidy;
mod tty;
mod volume_api;
mod volumes;
