//! Restart policies, --init, stop signals and health checks.

#[test]
fn on_failure_restarts_up_to_the_limit() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ])
    .ok();
    d.eventually("two restarts", || {
        d.berth(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "of"])
            .out()
            == "2 exited"
    });
    assert_eq!(d.berth(&["logs", "of"]).ok().stdout, "run\nrun\nrun\n");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "of"])
            .ok()
            .out(),
        "3"
    );
}

#[test]
fn always_restarts_until_stopped() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ])
    .ok();
    d.eventually("restarted", || {
        d.berth(&["inspect", "-f", "{{.RestartCount}}", "al"])
            .out()
            .parse::<i64>()
            .unwrap_or(0)
            >= 1
    });
    d.berth(&["stop", "-t", "1", "al"]).ok();
    let count = d
        .berth(&["inspect", "-f", "{{.RestartCount}}", "al"])
        .ok()
        .out()
        .to_string();
    // A restart after stop must not happen: nothing to wait for, so watch the daemon's events
    // for a second (the time is the point) and find no start among them.
    let since = berth_e2e::timestamp();
    let (secs, nanos) = since.split_once('.').unwrap();
    let until = format!("{}.{nanos}", secs.parse::<u64>().unwrap() + 1);
    let starts = d
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=al",
            "--filter",
            "event=start",
        ])
        .ok();
    assert_eq!(starts.out(), "", "restarted after stop");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "al"])
            .ok()
            .out(),
        format!("exited {count}")
    );
}

#[test]
fn restart_policies_survive_a_daemon_restart() {
    let mut d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "alw",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    d.berth(&["stop", "-t", "1", "us"]).ok();
    d.berth(&["stop", "-t", "1", "alw"]).ok();
    d.kill9();
    d.spawn();
    // always comes back after a daemon restart even when stopped by hand; unless-stopped does not.
    d.eventually("always restarted", || {
        d.berth(&["inspect", "-f", "{{.State.Status}}", "alw"]).out() == "running"
    });
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}}", "us"]).ok().out(),
        "exited"
    );
}

#[test]
fn init_reaps_and_forwards_signals() {
    let d = daemon!();
    d.berth(&["run", "-d", "--init", "--name", "ini", "busybox", "sleep", "60"])
        .ok();
    let ps = d.berth(&["exec", "ini", "ps", "-o", "pid,comm"]).ok();
    let pid1 = ps
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_default()
        .to_string();
    assert!(pid1.contains("init"), "PID 1 is not the init: {}", ps.stdout);
    d.berth(&["stop", "-t", "5", "ini"]).ok();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "ini"])
            .ok()
            .out(),
        "143"
    );
}

#[test]
fn stop_signal_and_timeout() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "sg",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 10' USR1; echo trapped; sleep 60 & wait",
    ])
    .ok();
    // The stop signal must find the trap installed (PID 1 ignores signals it has no handler for).
    d.eventually("trap installed", || {
        d.berth(&["logs", "sg"]).stdout == "trapped\n"
    });
    d.berth(&["stop", "sg"]).ok();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "sg"])
            .ok()
            .out(),
        "10"
    );
    d.berth(&[
        "run",
        "-d",
        "--name",
        "to",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; sleep 60",
    ])
    .ok();
    let t = std::time::Instant::now();
    d.berth(&["stop", "to"]).ok();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(6),
        "stop-timeout ignored"
    );
}

#[test]
fn health_checks_report_status() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    d.eventually("unhealthy", || {
        d.berth(&["inspect", "-f", "{{.State.Health.Status}}", "hc"])
            .out()
            == "unhealthy"
    });
    d.berth(&["exec", "hc", "touch", "/tmp/ok"]).ok();
    d.eventually("healthy", || {
        d.berth(&["inspect", "-f", "{{.State.Health.Status}}", "hc"])
            .out()
            == "healthy"
    });
    let ps = d.berth(&["ps", "--format", "{{.Status}}"]).ok();
    assert!(ps.out().ends_with("(healthy)"), "{}", ps.out());
}
