//! `berthd check --exec-root`: a network namespace pinned for no running container is a
//! finding, and `--repair` removes it.

/// Unpins and removes the test's namespace file, even when the test fails.
struct PinnedGuard(std::path::PathBuf);

impl Drop for PinnedGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mounted(p: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(p.to_str().unwrap()))
}

#[test]
fn berthd_check_finds_and_removes_a_network_namespace_no_running_container_holds() {
    let mut d = daemon!();
    d.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "600"])
        .ok();
    let live = d
        .berth(&["inspect", "-f", "{{.Id}}", "live"])
        .ok()
        .out()
        .to_string();
    d.stop();
    let exec_root = d.root.join("exec");
    let root = d.data_root().to_str().unwrap().to_string();
    let exec = exec_root.to_str().unwrap().to_string();
    // The running container's namespace is no finding.
    let r = d.berthd(&["check", "--data-root", &root, "--exec-root", &exec]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(exec_root.join("netns").join(&live).exists());
    // A namespace pinned for a container that is gone (a crash between teardown steps).
    let leaked = exec_root
        .join("netns")
        .join("0123456789ab0123456789ab0123456789ab0123456789ab0123456789abcdef");
    let _guard = PinnedGuard(leaked.clone());
    std::fs::write(&leaked, b"").unwrap();
    let st = std::process::Command::new("unshare")
        .arg(format!("--net={}", leaked.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(mounted(&leaked));
    let r = d.berthd(&["check", "--data-root", &root, "--exec-root", &exec]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "network namespace {} belongs to no running container",
            leaked.display()
        )),
        "{}",
        r.stdout
    );
    let r = d.berthd(&["check", "--repair", "--data-root", &root, "--exec-root", &exec]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!mounted(&leaked) && !leaked.exists());
    assert!(exec_root.join("netns").join(&live).exists(), "the live one stays");
    d.spawn();
    d.berth(&["rm", "-f", "live"]).ok();
}
