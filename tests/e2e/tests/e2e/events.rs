//! `events`: docker's JSON shape with the legacy fields, filters, since/until, --format.

#[test]
fn lifecycle_events_stream_in_docker_shape() {
    let d = daemon!();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    d.berth(&["run", "--name", "ev1", "busybox", "sh", "-c", "exit 2"]);
    d.berth(&["run", "-d", "--name", "ev2", "busybox", "sleep", "60"])
        .ok();
    d.berth(&["pause", "ev2"]).ok();
    d.berth(&["unpause", "ev2"]).ok();
    d.berth(&["exec", "ev2", "true"]).ok();
    d.berth(&["rename", "ev2", "ev3"]).ok();
    d.berth(&["kill", "ev3"]).ok();
    d.berth(&["rm", "ev1"]).ok();
    d.berth(&["commit", "ev3", "evimg"]).ok();
    d.berth(&["tag", "evimg", "evimg:two"]).ok();
    d.berth(&["rmi", "evimg:two"]).ok();
    let none_id = d
        .berth(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "evn",
            "busybox",
            "true",
        ])
        .ok()
        .out()
        .to_string();
    d.berth(&["wait", "evn"]).ok();
    d.berth(&["rm", "evn"]).ok();
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let (s, u) = (start.to_string(), until.to_string());
    // `events` over the test's window, with more arguments.
    let window = |more: &[&str]| {
        let mut args = vec!["events", "--since", &s, "--until", &u];
        args.extend_from_slice(more);
        d.berth(&args).ok()
    };
    let all = window(&["--format", "{{.Type}} {{.Action}}"]);
    let lines: Vec<&str> = all.out().lines().collect();
    for want in [
        "container create",
        "container attach",
        "container start",
        "container die",
        "container pause",
        "container unpause",
        "container exec_start: true",
        "container rename",
        "container kill",
        "container destroy",
        "container commit",
        "image tag",
        "image untag",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "missing {want:?} in {lines:#?}"
        );
    }
    // dockerd's exact actions and names: an exec's command with a space after its first word,
    // a tag as written, an untag named by the image's ID.
    let exact = window(&["--format", "{{.Type}} {{.Action}}|{{.Actor.Attributes.name}}"]);
    for want in [
        "container exec_create: true |ev2",
        "container exec_start: true |ev2",
        "image tag|evimg:two",
    ] {
        assert!(
            exact.stdout.lines().any(|l| l == want),
            "missing {want:?} in {}",
            exact.stdout
        );
    }
    assert!(
        exact.stdout.lines().any(|l| l.starts_with("image untag|sha256:")),
        "{}",
        exact.stdout
    );
    // A `--network none` container joins and leaves dockerd's built-in `none` network (its
    // `null` driver), the disconnect after the die.
    let seq = window(&[
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.container}} {{.Actor.Attributes.type}}",
    ]);
    let mine: Vec<String> = seq
        .stdout
        .lines()
        .filter(|l| l.contains(&none_id))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f[0] {
                "network" => format!("network {} {}", f[1], f[4]),
                _ => format!("{} {}", f[0], f[1]),
            }
        })
        .collect();
    assert_eq!(
        mine,
        [
            "container create",
            "network connect null",
            "container start",
            "container die",
            "network disconnect null",
            "container destroy"
        ],
        "{}",
        seq.stdout
    );
    // Filters.
    let die = window(&[
        "-f",
        "event=die",
        "-f",
        "container=ev1",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(die.out(), "2");
    let images = window(&["-f", "type=image", "--format", "{{.Action}}"]);
    assert!(
        images.out().lines().all(|l| !l.starts_with("create")),
        "{}",
        images.out()
    );
    // The raw JSON keeps docker-py's legacy fields.
    let raw = window(&["-f", "event=create", "--format", "{{json .}}"]);
    let first: serde_json::Value = serde_json::from_str(raw.out().lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], "create");
    assert_eq!(first["from"], "busybox");
    assert_eq!(first["Type"], "container");
    assert!(first["timeNano"].as_i64().unwrap() > 0);
    assert_eq!(first["id"], first["Actor"]["ID"]);
}

#[test]
fn events_follow_live_until_the_deadline() {
    let d = daemon!();
    // --since now: what happens after the command starts is delivered whether it lands in the
    // history replay or in the live stream.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (since, until) = (now.to_string(), (now + 4).to_string());
    let follower = d
        .berth_command()
        .args([
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    d.berth(&["run", "--rm", "--name", "live1", "busybox", "true"])
        .ok();
    let out = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let actions: Vec<&str> = text.lines().collect();
    for want in ["create live1", "start live1", "die live1", "destroy live1"] {
        assert!(
            actions.contains(&want),
            "missing {want:?}: {text} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
