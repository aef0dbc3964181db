//! docker-compose (Debian's 1.29.2, on docker-py) against berthd, as a user runs a project: build,
//! a named volume, a user network with service names resolved, a published port, a health-gated
//! dependency, exec, run, scale, stop/start, an attached `up` that ends with a service's exit
//! code, and `down -v` leaving nothing behind.

use std::path::Path;
use std::process::Command;

use berth_e2e::{Daemon, Run};

use crate::network::{free_port, http_get, test_subnet};

/// `docker-compose` in `dir` against `d`, project `proj`. A missing docker-compose fails the
/// test (scripts/deps.sh installs it), as a missing docker CLI does.
fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Run {
    let exe = Path::new("/usr/bin/docker-compose");
    assert!(exe.exists(), "no /usr/bin/docker-compose: run scripts/deps.sh");
    let mut c = Command::new(exe);
    c.current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env_remove("DOCKER_CONFIG")
        .env("COMPOSE_PROJECT_NAME", "proj")
        // Debian's docker-py (5.0), which compose 1.29 is built for, ahead of a newer one pip
        // may have put in /usr/local (7.x breaks compose 1.29).
        .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
        // No colours in what the test reads. (`run` and `exec` go through the docker CLI, as
        // compose does by default; its own attach path, COMPOSE_INTERACTIVE_NO_CLI, attaches
        // only after the start and races the container's output, against dockerd too.)
        .args(["--ansi", "never"])
        .args(args);
    berth_e2e::run_with_stdin(&mut c, b"")
}

#[test]
fn a_compose_project_builds_runs_scales_and_comes_down_clean() {
    let d = daemon!();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (subnet, _) = test_subnet();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        "FROM busybox\nARG MSG=default\nRUN echo \"$MSG\" > /msg\nCMD [\"sh\", \"-c\", \"cat /msg; sleep 3600\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello-from-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    volumes: ["site:/www"]
    environment:
      GREETING: hi-there
    labels:
      tier: front
    ports: ["127.0.0.1:{port}:80"]
    healthcheck:
      test: ["CMD", "test", "-f", "/www/index.html"]
      interval: 1s
  client:
    image: busybox
    command: ["sh", "-c", "wget -qO- http://web/; sleep 3600"]
    depends_on:
      web:
        condition: service_healthy
  app:
    build:
      context: ./app
      args:
        MSG: built-by-compose
    image: proj-app:latest
    mem_limit: 64m
volumes:
  site:
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
"#
        ),
    )
    .unwrap();
    let up = compose(&d, dir.path(), &["up", "-d", "--build"]).ok();
    assert!(up.stderr.contains("Creating proj_web_1"), "{}", up.stderr);

    // The health gate held the client until the web server answered to its service name.
    let ps = compose(&d, dir.path(), &["ps"]).ok();
    assert!(ps.stdout.contains("Up (healthy)"), "{}", ps.stdout);
    d.eventually("the client's fetch through the service name", || {
        compose(&d, dir.path(), &["logs", "client"])
            .stdout
            .contains("hello-from-compose")
    });
    let body = http_get(&format!("127.0.0.1:{port}")).unwrap();
    assert!(body.contains("hello-from-compose"), "{body}");
    assert_eq!(
        compose(
            &d,
            dir.path(),
            &["exec", "-T", "web", "sh", "-c", "echo $GREETING"]
        )
        .ok()
        .out(),
        "hi-there"
    );
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{index .Config.Labels \"com.docker.compose.service\"}}",
            "proj_app_1"
        ])
        .ok()
        .out(),
        "67108864 app"
    );
    d.eventually("the built image's output", || {
        compose(&d, dir.path(), &["logs", "app"])
            .stdout
            .contains("built-by-compose")
    });
    let run = compose(
        &d,
        dir.path(),
        &["run", "--rm", "client", "wget", "-qO-", "http://web/"],
    )
    .ok();
    assert!(
        run.stdout.contains("hello-from-compose"),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );

    // Scale, stop, start.
    compose(&d, dir.path(), &["up", "-d", "--scale", "client=3"]).ok();
    let ids = compose(&d, dir.path(), &["ps", "-q", "client"]).ok();
    assert_eq!(ids.out().lines().count(), 3, "{}", ids.stdout);
    compose(&d, dir.path(), &["stop", "-t", "1", "web"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "proj_web_1"])
            .ok()
            .out(),
        "exited"
    );
    compose(&d, dir.path(), &["start", "web"]).ok();
    d.eventually("web healthy again", || {
        http_get(&format!("127.0.0.1:{port}")).is_ok_and(|b| b.contains("hello-from-compose"))
    });

    // Down with volumes: nothing of the project is left.
    compose(&d, dir.path(), &["down", "-t", "1", "-v", "--rmi", "all"]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().out(), "");
    let vols = d.docker(&["volume", "ls", "-q"]).ok();
    assert!(!vols.stdout.contains("proj_site"), "{}", vols.stdout);
    let nets = d.docker(&["network", "ls", "--format", "{{.Name}}"]).ok();
    assert!(!nets.stdout.contains("proj_default"), "{}", nets.stdout);
    let imgs = d.docker(&["images", "--format", "{{.Repository}}"]).ok();
    assert!(
        !imgs.stdout.contains("proj-app") && !imgs.stdout.contains("busybox"),
        "{}",
        imgs.stdout
    );
}

#[test]
fn an_attached_compose_up_streams_the_services_and_ends_with_the_exit_code_asked_for() {
    let d = daemon!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        r#"version: "3.8"
services:
  a:
    image: busybox
    network_mode: none
    command: ["sh", "-c", "echo a-says-hi; sleep 0.5; echo a-done; exit 3"]
  b:
    image: busybox
    network_mode: none
    command: ["sh", "-c", "echo b-runs; sleep 30"]
"#,
    )
    .unwrap();
    let up = compose(&d, dir.path(), &["up", "-t", "1", "--exit-code-from", "a"]);
    assert_eq!(up.code, 3, "stdout: {}\nstderr: {}", up.stdout, up.stderr);
    for line in ["a_1  | a-says-hi", "a_1  | a-done", "b_1  | b-runs"] {
        assert!(up.stdout.contains(line), "{line}: {}", up.stdout);
    }
    // The other service was stopped when `a` exited.
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "proj_b_1"])
            .ok()
            .out(),
        "false"
    );
    compose(&d, dir.path(), &["down"]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).ok().out(), "");
}
