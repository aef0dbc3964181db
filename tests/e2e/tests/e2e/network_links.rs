//! Legacy links (`--link NAME[:ALIAS]`): hosts lines and environment on the default bridge, an
//! alias only the linking container resolves on a user network, docker's errors, `rm --link`.

use super::network::{inspect, test_subnet, TestResolver};

fn ps_all(d: &berth_e2e::Daemon) -> usize {
    d.berth(&["ps", "-aq"]).ok().stdout.lines().count()
}

#[test]
fn link_on_the_default_bridge_gives_hosts_lines_and_dockers_link_environment() {
    let d = daemon!();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "db",
        "-e",
        "PASSWORD=secret",
        "--expose",
        "5432",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ip = inspect(&d, "db", "{{.NetworkSettings.IPAddress}}");
    let short = inspect(&d, "db", "{{.Id}}")[..12].to_string();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--link",
        "db:dbalias",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let hosts = d.berth(&["exec", "web", "cat", "/etc/hosts"]).ok().stdout;
    assert!(hosts.contains(&format!("{ip}\tdbalias {short} db\n")), "{hosts}");
    // The container's own line stays last, as docker writes it.
    let own = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    assert!(
        hosts
            .trim_end()
            .ends_with(&format!("{own}\t{}", &inspect(&d, "web", "{{.Id}}")[..12])),
        "{hosts}"
    );
    let env = d.berth(&["exec", "web", "env"]).ok().stdout;
    for want in [
        format!("DBALIAS_PORT=tcp://{ip}:5432"),
        format!("DBALIAS_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("DBALIAS_PORT_5432_TCP_ADDR={ip}"),
        "DBALIAS_PORT_5432_TCP_PORT=5432".to_string(),
        "DBALIAS_PORT_5432_TCP_PROTO=tcp".to_string(),
        "DBALIAS_NAME=/web/dbalias".to_string(),
        "DBALIAS_ENV_PASSWORD=secret".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing from:\n{env}");
    }
    assert!(!env.contains("DBALIAS_ENV_PATH="), "{env}");
    d.berth(&["exec", "web", "ping", "-c", "1", "-W", "3", "dbalias"])
        .ok();
    assert_eq!(
        inspect(&d, "web", "{{json .HostConfig.Links}}"),
        r#"["/db:/web/dbalias"]"#
    );
    // A rename of the linked container shows in inspect.
    d.berth(&["rename", "db", "db0"]).ok();
    assert_eq!(
        inspect(&d, "web", "{{json .HostConfig.Links}}"),
        r#"["/db0:/web/dbalias"]"#
    );
    d.berth(&["rename", "db0", "db"]).ok();

    // rm --link drops the link; a bare name is the container's own and is refused.
    d.berth(&["rm", "--link", "/web/dbalias"]).ok();
    assert_eq!(inspect(&d, "web", "{{json .HostConfig.Links}}"), "null");
    let r = d.berth(&["rm", "--link", "web"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("cannot remove the default link name"),
        "{}",
        r.stderr
    );
    assert_eq!(inspect(&d, "web", "{{.State.Status}}"), "running");

    // The real docker CLI and docker-py.
    let out = d
        .docker(&[
            "run",
            "--rm",
            "--link",
            "db:dk",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hosts; env",
        ])
        .ok()
        .stdout;
    assert!(out.contains(&format!("{ip}\tdk {short} db\n")), "{out}");
    assert!(out.contains(&format!("DK_PORT_5432_TCP_ADDR={ip}")), "{out}");
    d.docker(&["create", "--name", "web2", "--link", "db:x2", "busybox", "true"])
        .ok();
    assert_eq!(
        inspect(&d, "web2", "{{json .HostConfig.Links}}"),
        r#"["/db:/web2/x2"]"#
    );
    d.docker(&["rm", "--link", "/web2/x2"]).ok();
    assert_eq!(inspect(&d, "web2", "{{json .HostConfig.Links}}"), "null");
    let out = d.python(
        r#"
import docker
c = docker.from_env()
out = c.containers.run("busybox", ["env"], links={"db": "pyd"}, name="pyweb", remove=True).decode()
assert "PYD_NAME=/pyweb/pyd" in out, out
assert "PYD_ENV_PASSWORD=secret" in out, out
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
    d.berth(&["rm", "-f", "web", "web2", "db"]).ok();
}

#[test]
fn linking_to_a_missing_or_stopped_container_is_dockers_error() {
    let d = daemon!();
    let before = ps_all(&d);
    for cli in ["berth", "docker"] {
        let args = ["run", "--rm", "--link", "missing:m", "busybox", "true"];
        let r = if cli == "berth" {
            d.berth(&args)
        } else {
            d.docker(&args)
        };
        assert_eq!(r.code, 125, "{cli}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("could not get container for missing: No such container: missing"),
            "{cli}: {}",
            r.stderr
        );
        assert_eq!(ps_all(&d), before, "{cli}: nothing is created");
    }
    d.berth(&["create", "--name", "stopped", "busybox", "true"]).ok();
    let r = d.berth(&[
        "run",
        "--rm",
        "--name",
        "wb",
        "--link",
        "stopped:s",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Cannot link to a non running container: /stopped AS /wb/s"),
        "{}",
        r.stderr
    );
    // `--rm`: the failed container goes, as with docker.
    d.eventually("the failed --rm container is removed", || {
        ps_all(&d) == before + 1
    });
    // A host-network container cannot link, nor be linked to.
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--link",
        "stopped",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("host type networking can't be used with links"),
        "{}",
        r.stderr
    );
}

#[test]
fn link_on_a_user_network_is_an_alias_only_the_linking_container_resolves() {
    let mut d = daemon!();
    let resolver = TestResolver::start();
    d.net.dns = resolver.addr.clone();
    d.stop();
    d.spawn();
    let (s, _) = test_subnet();
    d.berth(&["network", "create", "--subnet", &s, "lnet"]).ok();
    for (name, extra) in [
        ("target", None),
        ("asker", Some("target:secretalias")),
        ("other", None),
    ] {
        let mut args = vec!["run", "-d", "--name", name, "--network", "lnet"];
        if let Some(l) = extra {
            args.extend(["--link", l]);
        }
        args.extend(["busybox", "sleep", "600"]);
        d.berth(&args).ok();
    }
    let ip = inspect(&d, "target", "{{.NetworkSettings.Networks.lnet.IPAddress}}");
    let r = d.berth(&["exec", "asker", "nslookup", "secretalias"]).ok().stdout;
    assert!(
        r.contains(&format!("Address: {ip}")) || r.contains(&format!("Address 1: {ip}")),
        "{r}"
    );
    assert_eq!(
        inspect(&d, "asker", "{{json .NetworkSettings.Networks.lnet.Links}}"),
        r#"["target:secretalias"]"#
    );
    // From another container the alias is no name of the network's: forwarded upstream.
    let r = d.berth(&["exec", "other", "nslookup", "secretalias"]).stdout;
    assert!(!r.contains(&ip), "{r}");
    assert!(
        resolver.seen.lock().unwrap().iter().any(|n| n == "secretalias"),
        "{:?}",
        resolver.seen
    );
    d.berth(&["rm", "-f", "target", "asker", "other"]).ok();
    d.berth(&["network", "rm", "lnet"]).ok();
}
