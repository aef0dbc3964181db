#!/usr/bin/env python3
"""Registry transfer benchmark: pull (into a cold store) and push (to another, empty registry)
of a multi-layer image of about 320 MB from a local distribution registry (Debian's
docker-registry on 127.0.0.1), berth
against Docker and Podman when they are installed (Docker: a private dockerd this script starts
with its own roots and socket, no iptables, no bridge). Runs are interleaved engine by engine.
Also reports berthd's peak RSS during the pull.

Usage (as root, from the repository):  python3 bench/registry.py [--runs 3] [--layers 4] [--layer-mb 80]
Traffic stays on 127.0.0.1. Everything it starts is stopped and removed at the end.
"""
import argparse, gzip, hashlib, http.client, io, json, os, shutil, signal, socket, statistics
import subprocess, sys, tarfile, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import bench_net_args, remove_bench_net  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def start_registry(work, name):
    port = free_port()
    cfg = os.path.join(work, f"{name}.yml")
    with open(cfg, "w") as f:
        f.write(f"""version: 0.1
storage:
  filesystem:
    rootdirectory: {work}/{name}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, f"{name}.log"), "w"))
    wait_port(port)
    return proc, f"127.0.0.1:{port}"


def layer_tar(n, size):
    """A tar with one file of `size` pseudo-random bytes (incompressible, like real binaries)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        data = hashlib.shake_256(b"berth-bench-%d" % n).digest(size)
        info = tarfile.TarInfo(f"layer{n}/data.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def push_image(host, repo, tag, layers):
    """Pushes the layers (uncompressed tars) gzip-compressed, a config and a schema 2 manifest."""
    conn = http.client.HTTPConnection(host, timeout=600)

    def upload(blob):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        conn.request("POST", f"/v2/{repo}/blobs/uploads/")
        r = conn.getresponse(); r.read()
        loc = r.getheader("Location")
        sep = "&" if "?" in loc else "?"
        conn.request("PUT", f"{loc}{sep}digest={digest}", body=blob,
                     headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(blob))})
        r = conn.getresponse(); r.read()
        assert r.status == 201, (r.status, digest)
        return digest

    descs, diffs = [], []
    for tar in layers:
        gz = gzip.compress(tar, compresslevel=1, mtime=0)
        descs.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(gz), "digest": upload(gz)})
        diffs.append("sha256:" + hashlib.sha256(tar).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/true"]}, "rootfs": {"type": "layers", "diff_ids": diffs},
                         "history": [{"created": "2026-01-01T00:00:00Z"} for _ in layers]}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": upload(config)},
                           "layers": descs}).encode()
    conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                 headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
    r = conn.getresponse(); r.read()
    assert r.status == 201, r.status
    return sum(d["size"] for d in descs)


class Berth:
    name = "berth"

    def __init__(self, work):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        self.bins = os.path.join(ROOT, "target/release")
        self.work = os.path.join(work, "berth")
        self.proc = None

    def start(self):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        sock = os.path.join(self.work, "exec/berth.sock")
        self.env = dict(os.environ, BERTH_HOST="unix://" + sock)
        r, w = os.pipe()
        os.set_inheritable(w, True)
        self.proc = subprocess.Popen(
            [os.path.join(self.bins, "berthd"), "-H", "unix://" + sock, "--data-root", self.work + "/data",
             "--exec-root", self.work + "/exec", "--config-file", self.work + "/daemon.json",
             "--pidfile", self.work + "/berthd.pid", "--cgroup-parent", "berth-bench", *bench_net_args(3)],
            env=dict(os.environ, BERTH_READY_FD=str(w)), pass_fds=(w,), stdout=subprocess.DEVNULL,
            stderr=open(self.work + ".log", "w"))
        os.close(w)
        assert os.read(r, 6) == b"ready\n", "berthd did not start"
        os.close(r)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
            self.proc = None
        remove_bench_net(3)
        shutil.rmtree(self.work, ignore_errors=True)

    def cli(self, *args):
        return [os.path.join(self.bins, "berth"), *args]


class Docker:
    name = "docker"

    def __init__(self, work):
        self.work = os.path.join(work, "docker")
        self.proc = None

    @staticmethod
    def available():
        return shutil.which("dockerd") is not None and shutil.which("docker") is not None

    def start(self):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        sock = os.path.join(self.work, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST="unix://" + sock)
        self.env.pop("DOCKER_CONFIG", None)
        with open(self.work + "/daemon.json", "w") as f:
            f.write("{}")
        self.proc = subprocess.Popen(
            ["dockerd", "-H", "unix://" + sock, "--data-root", self.work + "/data", "--exec-root", self.work + "/exec",
             "--pidfile", self.work + "/dockerd.pid", "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--config-file", self.work + "/daemon.json"],
            stdout=subprocess.DEVNULL, stderr=open(self.work + ".log", "w"))
        deadline = time.time() + 60
        while subprocess.run(["docker", "info"], env=self.env, capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit("dockerd did not start; see " + self.work + ".log")
            time.sleep(0.2)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
            self.proc = None
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            t = line.split()[4]
            if t.startswith(self.work):
                subprocess.run(["umount", "-l", t], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def cli(self, *args):
        return ["docker", *args]


class Podman:
    name = "podman"

    def __init__(self, work):
        self.work = os.path.join(work, "podman")

    @staticmethod
    def available():
        return shutil.which("podman") is not None

    # Podman remembers which registry already has which blob outside --root; a push would then
    # skip every upload after the first run.
    CACHE = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"

    def start(self):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        if os.path.exists(self.CACHE):
            os.remove(self.CACHE)
        self.env = dict(os.environ)
        self.base = ["podman", "--root", self.work + "/root", "--runroot", self.work + "/run", "--storage-driver", "overlay"]

    def stop(self):
        subprocess.run(self.base + ["system", "reset", "-f"], capture_output=True)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            t = line.split()[4]
            if t.startswith(self.work):
                subprocess.run(["umount", "-l", t], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def cli(self, *args):
        if args[0] in ("pull", "push"):
            return self.base + [args[0], "--tls-verify=false", *args[1:]]
        return self.base + list(args)


def peak_rss(pid, stop, out):
    peak = 0
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.02)
    out.append(peak)


def run(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr or r.stdout}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--layer-mb", type=int, default=80)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    work = tempfile.mkdtemp(prefix="berth-bench-registry-")
    reg, host = start_registry(work, "source")
    # Pushes go to a registry of their own, into a new repository each time: every layer is
    # compressed and uploaded (a push within the source registry would only mount its blobs).
    reg2, host2 = start_registry(work, "target")
    engines = []
    try:
        layers = [layer_tar(i, a.layer_mb << 20) for i in range(a.layers)]
        size = push_image(host, "bench/big", "1", layers)
        mb = size / 1e6
        print(f"image: {a.layers} layers, {mb:.0f} MB compressed, in {host}/bench/big:1")
        engines = [Berth(work)]
        for cls in (Docker, Podman):
            if cls.available():
                engines.append(cls(work))
            else:
                print(f"{cls.name}: not installed, skipped")
        pulls = {e.name: [] for e in engines}
        pushes = {e.name: [] for e in engines}
        rss = []
        for i in range(a.runs):
            for e in engines:
                e.start()
                try:
                    ref = f"{host}/bench/big:1"
                    stop, out = threading.Event(), []
                    watcher = None
                    if e.name == "berth":
                        watcher = threading.Thread(target=peak_rss, args=(e.proc.pid, stop, out))
                        watcher.start()
                    pulls[e.name].append(run(e.cli("pull", ref), e.env))
                    if watcher:
                        stop.set()
                        watcher.join()
                        rss.append(out[0])
                    target = f"{host2}/bench/{e.name}{i}:1"
                    subprocess.run(e.cli("tag", ref, target), env=e.env, check=True, capture_output=True)
                    pushes[e.name].append(run(e.cli("push", target), e.env))
                finally:
                    e.stop()
        base_pull = statistics.median(pulls["berth"])
        base_push = statistics.median(pushes["berth"])
        print(f"berth   pull: median {base_pull:.2f} s = {mb / base_pull:.0f} MB/s; push: median {base_push:.2f} s = {mb / base_push:.0f} MB/s ({a.runs} runs)")
        print(f"berthd peak RSS during the pull: {max(rss) / 1024:.1f} MB")
        for e in engines[1:]:
            p, q = statistics.median(pulls[e.name]), statistics.median(pushes[e.name])
            print(f"{e.name:7} pull: median {p:.2f} s = {mb / p:.0f} MB/s (berth {p / base_pull:.2f}x); "
                  f"push: median {q:.2f} s = {mb / q:.0f} MB/s (berth {q / base_push:.2f}x)")
    finally:
        for e in engines:
            try:
                e.stop()
            except Exception:
                pass
        for r in (reg, reg2):
            r.terminate()
            r.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
