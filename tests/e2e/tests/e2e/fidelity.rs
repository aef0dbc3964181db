//! The Engine API as docker-py (the reference client) sees it: each test pins a place where berth
//! answered differently from Docker, with the CLI's view where it has one.

/// Runs a docker-py script that prints `ok` at its end, and fails with its output otherwise.
#[track_caller]
fn py_ok(d: &berth_e2e::Daemon, script: &str) {
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out().lines().last(), Some("ok"), "stdout: {}", r.stdout);
}

#[test]
fn kill_returns_only_once_the_container_is_dead() {
    let d = daemon!();
    // Docker's kill with SIGKILL (the default) returns once the container has died, so an
    // inspect right after it shows the exit; berth used to return on delivery of the signal.
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
for i in range(25):
    ct = c.containers.run("busybox", ["sleep", "60"], detach=True)
    ct.kill()
    s = c.api.inspect_container(ct.id)["State"]
    assert not s["Running"] and s["Status"] == "exited" and s["ExitCode"] == 137, (i, s)
    ct.remove()
# Other signals return once delivered; the exit follows (here from the container's trap).
ct = c.containers.run("busybox", ["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"], detach=True)
for line in ct.logs(stream=True, follow=True):
    if b"ready" in line:
        break
ct.kill(signal="SIGTERM")
assert ct.wait(timeout=10)["StatusCode"] == 7
ct.remove()
print("ok")
"#,
    );
    // The CLI: kill then inspect, no wait in between.
    for _ in 0..5 {
        let id = d.berth(&["run", "-d", "busybox", "sleep", "60"]).ok().stdout;
        let id = id.trim();
        d.berth(&["kill", id]).ok();
        let state = d
            .berth(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", id])
            .ok();
        assert_eq!(state.out(), "false 137");
        d.berth(&["rm", id]).ok();
    }
}

#[test]
fn engine_mount_points_stay_out_of_diff_commit_and_export() {
    let d = daemon!();
    // The engine's mount targets (/etc/hostname, /etc/hosts, /etc/resolv.conf, /proc, …, and
    // /sbin/docker-init with --init) live in the container's init layer, as dockerd's `<id>-init`:
    // a container that did nothing has an empty diff, and its commit adds no layer.
    py_ok(
        &d,
        r#"
import io, os, tarfile, docker
c = docker.from_env()
base = c.images.get("busybox")
for kw in ({}, {"init": True}, {"tty": True}, {"read_only": True}, {"hostname": "elsewhere"}):
    ct = c.containers.run("busybox", ["true"], detach=True, **kw)
    assert ct.wait()["StatusCode"] == 0
    assert ct.diff() is None, (kw, ct.diff())
    img = ct.commit()
    assert img.attrs["RootFS"]["Layers"] == base.attrs["RootFS"]["Layers"], (kw, img.attrs["RootFS"])
    ct.remove()
    c.images.remove(img.id)

def names(data):
    t = tarfile.open(fileobj=io.BytesIO(data))
    return {m.name.lstrip(".").strip("/"): m for m in t.getmembers()}, t

# export: the image's files plus the (empty) mount points, as docker's export; never the
# engine's content of /etc/hostname, even while the container runs and has it mounted.
saved, st = names(b"".join(base.save()))
manifest = __import__("json").load(st.extractfile(saved["manifest.json"]))
image_files, _ = names(st.extractfile(saved[manifest[0]["Layers"][0]]).read())
ct = c.containers.run("busybox", ["sleep", "60"], detach=True, hostname="exported")
got, t = names(b"".join(ct.export()))
mount_points = {"etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", "dev/pts", "dev/shm", "dev/console"}
assert set(got) - set(image_files) == mount_points, set(got) ^ set(image_files)
assert t.extractfile(got["etc/hostname"]).read() == b""
assert ct.diff() is None, ct.diff()
# inspect names the real directories: the rw layer, then the init layer above the image's.
g = c.api.inspect_container(ct.id)["GraphDriver"]["Data"]
lowers = g["LowerDir"].split(":")
assert len(lowers) == 2 and lowers[1] == c.api.inspect_image("busybox")["GraphDriver"]["Data"]["UpperDir"], g
assert os.path.isfile(os.path.join(lowers[0], "etc/hostname")) and os.listdir(g["UpperDir"]) == [], g
ct.remove(force=True)

# A real change shows, and only it; a committed image carries it but not the engine's files.
ct = c.containers.run("busybox", ["sh", "-c", "echo x > /tmp/new; rm /bin/vi"], detach=True, hostname="h1")
assert ct.wait()["StatusCode"] == 0
assert ct.diff() == [
    {"Path": "/bin", "Kind": 0}, {"Path": "/bin/vi", "Kind": 2},
    {"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/new", "Kind": 1},
], ct.diff()
img = ct.commit(repository="changed")
assert len(img.attrs["RootFS"]["Layers"]) == len(base.attrs["RootFS"]["Layers"]) + 1
out = c.containers.run("changed", ["sh", "-c", "cat /tmp/new /etc/hostname; test -e /bin/vi || echo no-vi"], remove=True, hostname="h2")
assert out == b"x\nh2\nno-vi\n", out
ct.remove()
print("ok")
"#,
    );
    // The CLI shows the same.
    d.berth(&["run", "--name", "quiet", "busybox", "true"]).ok();
    assert_eq!(d.berth(&["diff", "quiet"]).ok().out(), "");
    assert_eq!(d.docker(&["diff", "quiet"]).ok().out(), "");
    d.berth(&["run", "--name", "busy", "busybox", "touch", "/root/f"])
        .ok();
    assert_eq!(d.docker(&["diff", "busy"]).ok().out(), "C /root\nA /root/f");
}

#[test]
fn exec_output_is_whole_raw_with_a_tty_and_multiplexed_without() {
    let d = daemon!();
    // As dockerd: the start body's Tty decides the framing (raw, or stdcopy frames), the create
    // config's Tty whether the process gets a terminal; streams not attached are not sent.
    py_ok(
        &d,
        r#"
import socket, struct, docker
c = docker.from_env()
ct = c.containers.run("busybox", ["sleep", "600"], detach=True)
cmd = ["sh", "-c", "seq 1 200; echo err >&2"]
lines = b"".join(b"%d\n" % i for i in range(1, 201))
for i in range(15):
    for tty in (True, False):
        want = (lines + b"err\n").replace(b"\n", b"\r\n") if tty else lines + b"err\n"
        r = ct.exec_run(cmd, tty=tty)
        assert r.exit_code == 0 and (r.output == want if tty else sorted(r.output.split()) == sorted(want.split())), (i, tty, r.output[:80])
        r = ct.exec_run(cmd, tty=tty, stream=True)
        out = b"".join(r.output)
        assert out == want if tty else sorted(out.split()) == sorted(want.split()), (i, tty, out[:80])
        r = ct.exec_run(cmd, tty=tty, demux=True)
        if tty:
            assert r.output == (want, None), (i, r.output)
        else:
            assert r.output == (lines, b"err\n"), (i, r.output)
        r = ct.exec_run(["echo", "hello world"], tty=tty)
        assert r.output == (b"hello world\r\n" if tty else b"hello world\n"), (i, tty, r.output)

def raw(create_tty, start_tty, **kw):
    e = c.api.exec_create(ct.id, ["sh", "-c", "echo out; echo err >&2"], tty=create_tty, **kw)
    s = c.api.exec_start(e["Id"], socket=True, tty=start_tty)
    s = getattr(s, "_sock", s)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            return data
        data += b

def frames(data):
    out = []
    while data:
        stream, n = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8:8 + n]))
        data = data[8 + n:]
    return out

# A raw tty stream carries no headers; a non-tty stream is all frames.
assert raw(True, True) == b"out\r\nerr\r\n", raw(True, True)
got = frames(raw(False, False))
assert sorted(got) == [(1, b"out\n"), (2, b"err\n")], got
# Framing follows the start body, the terminal the create config.
# (A terminal merges stdout and stderr: all of it is stdout, in frames cut wherever reads fell.)
got = frames(raw(True, False))
assert [s for s, _ in got] == [1] * len(got) and b"".join(p for _, p in got) == b"out\r\nerr\r\n", got
assert sorted(raw(False, True).split()) == [b"err", b"out"]
# Only attached streams are sent.
assert frames(raw(False, False, stderr=False)) == [(1, b"out\n")]
assert frames(raw(False, False, stdout=False)) == [(2, b"err\n")]
# A client slow to read the 101 head still gets every byte: docker-py reads the head through a
# buffered reader, then reads the raw socket, so output sent along with the head was lost.
import http.client, time
begin = http.client.HTTPResponse.begin
def slow_begin(self):
    time.sleep(0.1)  # the slowness is what is tested, not a wait for something
    return begin(self)
http.client.HTTPResponse.begin = slow_begin
for tty in (True, False):
    for i in range(3):
        r = ct.exec_run(["echo", "hello world"], tty=tty)
        assert r.output == (b"hello world\r\n" if tty else b"hello world\n"), (tty, r.output)
http.client.HTTPResponse.begin = begin
ct.remove(force=True)
print("ok")
"#,
    );
    // The CLIs: a tty gives one raw stream, without one stdout and stderr stay apart.
    d.berth(&["run", "-d", "--name", "ex", "busybox", "sleep", "60"])
        .ok();
    for cli in ["berth", "docker"] {
        let run = |args: &[&str]| {
            if cli == "berth" {
                d.berth(args)
            } else {
                d.docker(args)
            }
        };
        let t = run(&["exec", "-t", "ex", "sh", "-c", "echo out; echo err >&2"]).ok();
        assert_eq!(t.stdout, "out\r\nerr\r\n", "{cli}");
        let n = run(&["exec", "ex", "sh", "-c", "echo out; echo err >&2"]).ok();
        assert_eq!(
            (n.stdout.as_str(), n.stderr.as_str()),
            ("out\n", "err\n"),
            "{cli}"
        );
    }
}

#[test]
fn commit_with_pause_never_fails_on_a_container_starting_or_exiting() {
    let d = daemon!();
    // A pause racing the container's exit found its shim closing (500 "shim request failed:
    // connection reset"); as dockerd, a pause that cannot be done does not fail the commit, and
    // the shim answers requests that arrive while it shuts down.
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
for cmd in (["sleep", "60"], ["true"], ["sleep", "0.01"]):
    for i in range(12):
        ct = c.containers.run("busybox", cmd, detach=True)
        img = ct.commit(pause=True)
        assert img.id.startswith("sha256:"), img.id
        assert ct.diff() is None, ct.diff()
        # A SIGKILL racing the exit: dead either way, never a 500.
        try:
            ct.kill()
        except docker.errors.APIError as e:
            assert e.status_code == 409 and "is not running" in str(e), e
        s = c.api.inspect_container(ct.id)["State"]
        assert not s["Running"] and not s["Paused"], s
        ct.remove()
        c.images.remove(img.id)
# A long-running container is paused for the commit and running again after it.
ct = c.containers.run("busybox", ["sleep", "60"], detach=True)
ct.commit(pause=True)
ct.reload()
assert ct.status == "running", ct.status
ct.remove(force=True)
print("ok")
"#,
    );
}

#[test]
fn group_add_joins_the_container_processes_to_more_groups() {
    let d = daemon!();
    // Names resolve in the container's /etc/group (staff is 50 in the test image), numbers are
    // taken as they are; execs get the groups too, and an unknown name is runc's error.
    let ids = d
        .berth(&[
            "run",
            "--rm",
            "--group-add",
            "staff",
            "--group-add",
            "1234",
            "busybox",
            "id",
            "-G",
        ])
        .ok();
    assert_eq!(ids.out(), "0 50 1234");
    let www = d
        .docker(&[
            "run",
            "--rm",
            "--group-add",
            "1234",
            "-u",
            "www",
            "busybox",
            "id",
            "-G",
        ])
        .ok();
    assert_eq!(www.out(), "33 50 1234", "www's own groups, then the added one");
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
ct = c.containers.run("busybox", ["sleep", "60"], detach=True, group_add=["staff", 1234])
assert c.api.inspect_container(ct.id)["HostConfig"]["GroupAdd"] == ["staff", "1234"]
r = ct.exec_run(["id", "-G"])
assert r.output == b"0 50 1234\n", r.output
r = ct.exec_run(["id", "-G"], user="nobody")
assert r.output == b"65534 50 1234\n", r.output
ct.remove(force=True)
try:
    c.containers.run("busybox", ["true"], group_add=["nosuch"], remove=True)
    raise SystemExit("expected an error")
except docker.errors.APIError as e:
    assert "Unable to find group nosuch: no matching entries in group file" in str(e), e
print("ok")
"#,
    );
}

#[test]
fn inspect_shows_the_runtime_and_info_names_it() {
    let d = daemon!();
    // berth's runtime is its own (berth-shim with libcontainer embedded), so it is called "berth"
    // rather than "runc"; the name is recorded at create as dockerd records its default.
    py_ok(
        &d,
        r#"
import docker
c = docker.from_env()
ct = c.containers.create("busybox", ["true"])
assert c.api.inspect_container(ct.id)["HostConfig"]["Runtime"] == "berth"
info = c.info()
assert info["DefaultRuntime"] == "berth" and "berth" in info["Runtimes"], info["Runtimes"]
ct.remove()
ct = c.containers.create("busybox", ["true"], runtime="berth")
assert c.api.inspect_container(ct.id)["HostConfig"]["Runtime"] == "berth"
ct.remove()
try:
    c.containers.create("busybox", ["true"], runtime="runc")
    raise SystemExit("expected an error")
except docker.errors.APIError as e:
    assert e.status_code == 400 and e.explanation == "Unknown runtime specified runc", e
print("ok")
"#,
    );
    d.berth(&["create", "--name", "rt", "busybox", "true"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "rt"])
            .ok()
            .out(),
        "berth"
    );
}

#[test]
fn load_of_a_corrupt_archive_says_what_docker_says() {
    let d = daemon!();
    // dockerd answers 200 and puts the error in the JSON stream (docker-py raises ImageLoadError,
    // the CLI prints the message and exits 1), with Go's archive/tar words.
    py_ok(
        &d,
        r#"
import io, tarfile, docker
c = docker.from_env()
def load_error(data):
    try:
        c.images.load(data)
    except docker.errors.ImageLoadError as e:
        return str(e)
    raise SystemExit("load did not fail")
saved = b"".join(c.images.get("busybox").save())
plain = io.BytesIO()
with tarfile.open(fileobj=plain, mode="w") as t:
    info = tarfile.TarInfo("hello.txt")
    info.size = 3
    t.addfile(info, io.BytesIO(b"hi\n"))
assert load_error(b"garbage" * 100) == "archive/tar: invalid tar header"
assert load_error(saved[:len(saved) // 2]) == "unexpected EOF"
assert load_error(plain.getvalue()) == "invalid archive: does not contain a manifest.json"
r = c.api._post(c.api._url("/images/load"), data=b"garbage" * 100)
assert r.status_code == 200, r.status_code
assert r.json() == {"errorDetail": {"message": "archive/tar: invalid tar header"}, "error": "archive/tar: invalid tar header"}, r.text
# A good archive still loads.
assert [i.tags for i in c.images.load(saved)] == [["busybox:latest"]]
print("ok")
"#,
    );
    for cli in ["berth", "docker"] {
        let garbage = b"garbage".repeat(100);
        let r = if cli == "berth" {
            d.berth_stdin(&["load"], &garbage)
        } else {
            d.docker_stdin(&["load"], &garbage)
        };
        assert_eq!(r.code, 1, "{cli}: {r:?}");
        assert_eq!(r.stderr.trim(), "archive/tar: invalid tar header", "{cli}");
    }
}

#[test]
fn inspect_info_stats_and_network_carry_every_key_dockerd_shows() {
    let d = daemon!();
    // The key sets of dockerd 20.10 (Debian's docker.io) for a plain container, captured side by
    // side with berth: berth used to leave out every HostConfig key a client had not set, so
    // `inspect -f '{{.HostConfig.CpuQuota}}'` failed with "map has no entry for key".
    py_ok(
        &d,
        r##"
import docker
c = docker.from_env()
HOST = """AutoRemove Binds BlkioDeviceReadBps BlkioDeviceReadIOps BlkioDeviceWriteBps BlkioDeviceWriteIOps
BlkioWeight BlkioWeightDevice CapAdd CapDrop Cgroup CgroupParent CgroupnsMode ConsoleSize ContainerIDFile CpuCount
CpuPercent CpuPeriod CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpuShares CpusetCpus CpusetMems
DeviceCgroupRules DeviceRequests Devices Dns DnsOptions DnsSearch ExtraHosts GroupAdd IOMaximumBandwidth
IOMaximumIOps IpcMode Isolation KernelMemory KernelMemoryTCP Links LogConfig MaskedPaths Memory
MemoryReservation MemorySwap MemorySwappiness NanoCpus NetworkMode OomKillDisable OomScoreAdj PidMode PidsLimit
PortBindings Privileged PublishAllPorts ReadonlyPaths ReadonlyRootfs RestartPolicy Runtime SecurityOpt ShmSize
UTSMode Ulimits UsernsMode VolumeDriver VolumesFrom""".split()
INFO = """Architecture BridgeNfIp6tables BridgeNfIptables CPUSet CPUShares CgroupDriver CgroupVersion
ContainerdCommit Containers ContainersPaused ContainersRunning ContainersStopped CpuCfsPeriod CpuCfsQuota Debug
DefaultRuntime DockerRootDir Driver DriverStatus ExperimentalBuild GenericResources HttpProxy HttpsProxy ID
IPv4Forwarding Images IndexServerAddress InitBinary InitCommit Isolation KernelMemory KernelMemoryTCP
KernelVersion Labels LiveRestoreEnabled LoggingDriver MemTotal MemoryLimit NCPU NEventsListener NFd NGoroutines
Name NoProxy OSType OSVersion OomKillDisable OperatingSystem PidsLimit Plugins RegistryConfig RuncCommit Runtimes
SecurityOptions ServerVersion SwapLimit Swarm SystemTime Warnings""".split()
created = c.containers.create("busybox", ["true"], network_mode="none")
run = c.containers.run("busybox", ["sleep", "60"], detach=True, network_mode="none", mem_limit="64m",
                       privileged=False)
priv = c.containers.create("busybox", ["true"], network_mode="none", privileged=True)
for ct in (created, run):
    i = c.api.inspect_container(ct.id)
    h = i["HostConfig"]
    missing = [k for k in HOST if k not in h]
    assert not missing, missing
    for k in ("Entrypoint", "OnBuild", "Volumes"):
        assert k in i["Config"], k
    assert "ExecIDs" in i and i["ExecIDs"] is None, i.get("ExecIDs")
    ns = i["NetworkSettings"]
    assert ns["SecondaryIPAddresses"] is None and ns["SecondaryIPv6Addresses"] is None
    ep = ns["Networks"]["none"]
    assert all(k in ep and ep[k] is None for k in ("IPAMConfig", "Links", "Aliases", "DriverOpts")), ep
    # What dockerd fills in at create, as berth's start applies it.
    assert h["ShmSize"] == 64 << 20 and h["CgroupnsMode"] == "host" and h["IpcMode"] == "private", h
    assert h["RestartPolicy"] == {"Name": "", "MaximumRetryCount": 0}, h["RestartPolicy"]
    assert "/proc/kcore" in h["MaskedPaths"] and "/proc/sys" in h["ReadonlyPaths"], h
    assert h["CpuQuota"] == 0 and h["Dns"] is None and h["OomKillDisable"] is False, h
# No variable in the image or the request: `Config.Env` is null, as dockerd records it; the
# processes still get the default PATH and HOSTNAME (run and exec alike).
assert c.api.inspect_container(created.id)["Config"]["Env"] is None
out = c.containers.run("busybox", ["sh", "-c", "echo $PATH $HOSTNAME"], network_mode="none", hostname="hh", remove=True)
assert out == b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin hh\n", out
r = run.exec_run(["sh", "-c", "echo $PATH $HOSTNAME"])
assert r.output == ("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin " + run.id[:12] + "\n").encode(), r.output
# A metadata step's container config as dockerd's classic builder records it: `#(nop) ` and the
# instruction as two arguments (WORKDIR keeps one).
import io
img, _ = c.images.build(fileobj=io.BytesIO(b"FROM busybox\nWORKDIR /w\nCMD [\"sh\"]\n"), tag="nopcmd:1", rm=True)
assert img.attrs["ContainerConfig"]["Cmd"] == ["/bin/sh", "-c", "#(nop) ", 'CMD ["sh"]'], img.attrs["ContainerConfig"]
assert img.history()[0]["CreatedBy"] == '/bin/sh -c #(nop)  CMD ["sh"]', img.history()[0]
assert img.history()[1]["CreatedBy"] == "/bin/sh -c #(nop) WORKDIR /w", img.history()[1]
h = c.api.inspect_container(run.id)["HostConfig"]
# A memory limit without a swap limit: memory and swap together twice the limit, as dockerd.
assert h["Memory"] == 64 << 20 and h["MemorySwap"] == 128 << 20, (h["Memory"], h["MemorySwap"])
# ... which a new memory limit keeps, and may not exceed without a new swap limit.
run.update(mem_limit="96m")
h = c.api.inspect_container(run.id)["HostConfig"]
assert h["Memory"] == 96 << 20 and h["MemorySwap"] == 128 << 20, (h["Memory"], h["MemorySwap"])
try:
    run.update(mem_limit="256m")
    raise SystemExit("expected a conflict")
except docker.errors.APIError as e:
    assert "Memory limit should be smaller than already set memoryswap limit" in str(e), e
run.update(mem_limit="256m", memswap_limit="512m")
assert c.api.inspect_container(run.id)["HostConfig"]["MemorySwap"] == 512 << 20
# A swap limit below the memory limit is refused at update too, before any cgroup write.
try:
    run.update(mem_limit="300m", memswap_limit="100m")
    raise SystemExit("expected a refusal")
except docker.errors.APIError as e:
    assert e.status_code == 400, e.status_code
    assert "Minimum memoryswap limit should be larger than memory limit, see usage" in str(e), e
# A container made without limits (swap 0): its first memory limit needs a swap limit too.
free = c.containers.create("busybox", ["true"], network_mode="none")
try:
    free.update(mem_limit="32m")
    raise SystemExit("expected a conflict")
except docker.errors.APIError as e:
    assert "Memory limit should be smaller than already set memoryswap limit" in str(e), e
free.update(mem_limit="32m", memswap_limit="-1")
assert c.api.inspect_container(free.id)["HostConfig"]["Memory"] == 32 << 20
free.remove()
h = c.api.inspect_container(priv.id)["HostConfig"]
assert h["MaskedPaths"] is None and h["ReadonlyPaths"] is None, h
info = c.info()
missing = [k for k in INFO if k not in info]
assert not missing, missing
assert info["RuncCommit"] == {"ID": "", "Expected": ""} and info["NGoroutines"] > 0, info
# dockerd 20.10's reading: the v1 memory controller's kmem files exist (false on cgroup v2).
import os
for k, f in (("KernelMemory", "memory.kmem.limit_in_bytes"), ("KernelMemoryTCP", "memory.kmem.tcp.limit_in_bytes")):
    assert info[k] == os.path.exists("/sys/fs/cgroup/memory/" + f), (k, info[k])
s = run.stats(stream=False)
for k in ("num_procs", "storage_stats"):
    assert k in s, k
for k in ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive", "io_service_time_recursive",
          "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive"):
    assert k in s["blkio_stats"], k
assert s["memory_stats"]["max_usage"] >= s["memory_stats"]["usage"] > 0, s["memory_stats"]
v = c.version()
assert all(k in v["Components"][0]["Details"] for k in ("GitCommit", "GoVersion", "BuildTime")), v
# dockerd lists the running containers of `none` (and `host`) on that network.
members = c.api.inspect_network("none")["Containers"]
assert list(members) == [run.id], members
assert members[run.id]["Name"] == run.name and members[run.id]["IPv4Address"] == "", members
for ct in (created, run, priv):
    ct.remove(force=True)
print("ok")
"##,
    );
    // The CLI's templates over keys a client never set.
    d.berth(&[
        "run",
        "-d",
        "--name",
        "tmpl",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpuQuota}} {{.HostConfig.PidsLimit}} {{.HostConfig.ShmSize}} {{.Config.Entrypoint}}",
            "tmpl",
        ])
        .ok()
        .out(),
        // as dockerd shows them: `PidsLimit` 0 from the CLI is recorded as no limit (null)
        "0 <no value> 67108864 <no value>"
    );
    assert_eq!(
        d.docker(&[
            "info",
            "-f",
            "{{.HTTPProxy}}|{{.InitBinary}}|{{.Isolation}}|{{.RuncCommit.ID}}"
        ])
        .ok()
        .out(),
        "|docker-init||"
    );
    d.berth(&["rm", "-f", "tmpl"]).ok();
}

#[test]
fn mount_points_the_image_lacks_are_made_in_the_rw_layer_as_dockerd_makes_them() {
    let d = daemon!();
    // A volume's, bind's or tmpfs's missing mount point is made at start in the container's rw
    // layer, as runc makes it under dockerd: `diff` shows it and `commit` keeps it (empty). The engine's own mount points
    // (/etc/hosts, /proc, …) stay out of both (engine_mount_points_stay_out_of_diff_commit_and_export).
    let host = d.root.join("mp-host");
    std::fs::create_dir_all(host.join("dir")).unwrap();
    std::fs::write(host.join("cfg.txt"), "cfg").unwrap();
    let bind_dir = format!("{}:/srv/b", host.join("dir").display());
    let bind_file = format!("{}:/etc/cfg.txt", host.join("cfg.txt").display());
    d.berth(&[
        "run",
        "--name",
        "mp",
        "-v",
        "named:/data",
        "-v",
        &bind_dir,
        "-v",
        &bind_file,
        "--tmpfs",
        "/scratch",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(
        d.docker(&["diff", "mp"]).ok().out(),
        "A /data\nC /etc\nA /etc/cfg.txt\nA /scratch\nA /srv\nA /srv/b"
    );
    d.berth(&["commit", "mp", "mp:1"]).ok();
    let r = d
        .berth(&[
            "run", "--rm", "--network", "none", "mp:1", "sh", "-c",
            "test -d /data && test -d /srv/b && test -d /scratch && test -f /etc/cfg.txt && ! test -s /etc/cfg.txt && echo kept",
        ])
        .ok();
    assert_eq!(r.out(), "kept");
    // A container never started has made none (runc makes them at start).
    d.berth(&[
        "create",
        "--name",
        "mp0",
        "-v",
        "named:/data",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(d.docker(&["diff", "mp0"]).ok().out(), "");
    // A target the image has makes nothing.
    d.berth(&[
        "run",
        "--name",
        "mp2",
        "-v",
        "named:/tmp",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(d.docker(&["diff", "mp2"]).ok().out(), "");
}
