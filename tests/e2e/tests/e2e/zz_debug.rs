#[test]
fn zz_debug_caps() {
    let d = daemon!();
    for i in 0..4 {
        let a = d.berth(&["run", "--rm", "busybox", "grep", "CapBnd", "/proc/self/status"]);
        let name = format!("capdbg{i}");
        let r = d.berth(&["run", "--name", &name, "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "busybox", "grep", "CapBnd", "/proc/self/status"]);
        eprintln!("RUN{i}: {} / {} {}", a.code, r.code, r.stderr.lines().next().unwrap_or(""));
        let id = d.berth(&["inspect", "-f", "{{.Id}}", &name]).stdout;
        eprintln!("RUNTIME LOG{i}: {}", std::fs::read_to_string(d.root.join("data/containers").join(id.trim()).join("runtime.log")).unwrap_or_default());
    }
    panic!("debug");
}
