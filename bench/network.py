#!/usr/bin/env python3
"""Networking benchmark: `run --rm busybox true` on the default bridge (a veth, an address, NAT
rules: the whole network set-up and teardown), berth vs Docker vs Podman in the same run,
interleaved, whole CLI process, median and p95, both back to back and after 0.5 s idle, with
berth's `--network none` interleaved too (what the bridge adds under the same load); and
published-port TCP throughput: 1 GiB sent from 127.0.0.1 to a container's published port
(`busybox nc -ll -e sh -c 'echo ready; cat >/dev/null'` inside), berth (nftables DNAT with
route_localnet) vs Docker (docker-proxy, its userland proxy, for loopback clients) vs Podman.

Usage (as root, from the repository):
    python3 bench/network.py [--rounds 20] [--burst 5] [--transfers 3] [--gib 1]

Everything runs in a network namespace this script creates and deletes (`ip netns add`, then
setns(2) of this process, so the daemons, the CLIs and the sender are all inside): a private
berthd (release build, its own bridge, subnet, nftables table and roots), a private dockerd
(Debian's docker.io: own socket, data/exec roots and pidfile, `--iptables=true`, its docker0 with
its own `--bip`; started with `ip_forward` off so it sets the FORWARD policy to DROP as on a
fresh host; berthd puts its accept rules in DOCKER-USER) and Podman with private roots (its
netavark bridge and rules land in the namespace too). Docker's firewall, the bridges, veths and
rules go with the namespace; the machine's own firewall state is checked unchanged at the end.
Traffic stays in the namespace (127.0.0.1 and the containers).
"""
import argparse, ctypes, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import busybox_tar  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLONE_NEWNET = 0x40000000
RECEIVER = ["sh", "-c", "exec nc -ll -p 5001 -e sh -c 'echo ready; cat >/dev/null'"]


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def host_state():
    """What a dockerd or netavark changes on a machine: iptables (no counters), the forwarding
    and br_netfilter sysctls, links of Docker's and Podman's names."""
    ipt = [l.split(" [")[0] for l in sh("iptables-save").stdout.splitlines()
           if not l.startswith("#") and "berth:" not in l]
    sysctls = {}
    for k in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"):
        try:
            sysctls[k] = open("/proc/sys/" + k).read().strip()
        except OSError:
            sysctls[k] = "absent"
    links = sorted(l.split(": ")[1].split("@")[0] for l in sh("ip", "-o", "link").stdout.splitlines()
                   if l.split(": ")[1].startswith(("docker", "podman", "veth", "bbench")))
    return ipt, sysctls, links


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if ctypes.CDLL("libc.so.6", use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


def enter_netns(name):
    """Creates the namespace and moves this (single-threaded) process into it; returns an fd of
    the namespace it was in."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    sh("ip", "netns", "add", name)
    setns(f"/run/netns/{name}")
    sh("ip", "link", "set", "lo", "up")
    return home


def umount_under(prefix):
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        t = line.split()[4]
        if t.startswith(prefix):
            subprocess.run(["umount", "-l", t], capture_output=True)


class Berth:
    name = "berth"

    def __init__(self, work, bins):
        self.work = os.path.join(work, "berth")
        self.bins = bins
        self.proc = None

    def start(self):
        os.makedirs(self.work)
        sock = os.path.join(self.work, "exec/berth.sock")
        self.env = dict(os.environ, BERTH_HOST="unix://" + sock)
        r, w = os.pipe()
        os.set_inheritable(w, True)
        self.proc = subprocess.Popen(
            [os.path.join(self.bins, "berthd"), "-H", "unix://" + sock, "--data-root", self.work + "/data",
             "--exec-root", self.work + "/exec", "--config-file", self.work + "/daemon.json",
             "--pidfile", self.work + "/berthd.pid", "--cgroup-parent", "berth-bench-net",
             "--bridge", "bbench0", "--bip", "10.89.0.1/24", "--nft-table", "bbench0"],
            env=dict(os.environ, BERTH_READY_FD=str(w)), pass_fds=(w,), stdout=subprocess.DEVNULL,
            stderr=open(self.work + ".log", "w"))
        os.close(w)
        assert os.read(r, 6) == b"ready\n", "berthd did not start; see " + self.work + ".log"
        os.close(r)

    def stop(self):
        if self.proc:
            ids = subprocess.run(self.cli("ps", "-aq"), env=self.env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(self.cli("rm", "-f", *ids), env=self.env, capture_output=True)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
            self.proc = None
        umount_under(self.work)
        for base in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", base, "berth-bench-net")
            if os.path.isdir(p):
                try:
                    os.rmdir(p)
                except OSError:
                    pass

    def cli(self, *args):
        return [os.path.join(self.bins, "berth"), *args]

    def run_args(self):
        return []


class Docker:
    name = "docker"

    def __init__(self, work):
        self.work = os.path.join(work, "docker")
        self.proc = None

    @staticmethod
    def available():
        return shutil.which("dockerd") is not None and shutil.which("docker") is not None

    def start(self):
        os.makedirs(self.work)
        with open(self.work + "/daemon.json", "w") as f:
            f.write("{}")
        sock = os.path.join(self.work, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_CONFIG=self.work + "/cli")
        # As on a fresh host: dockerd turns forwarding on and sets the FORWARD policy to DROP.
        open("/proc/sys/net/ipv4/ip_forward", "w").write("0")
        self.proc = subprocess.Popen(
            ["dockerd", "-H", "unix://" + sock, "--data-root", self.work + "/data", "--exec-root", self.work + "/exec",
             "--pidfile", self.work + "/dockerd.pid", "--config-file", self.work + "/daemon.json",
             "--iptables=true", "--ip6tables=false", "--bip", "10.88.200.1/24"],
            stdout=subprocess.DEVNULL, stderr=open(self.work + ".log", "w"))
        deadline = time.time() + 60
        while subprocess.run(["docker", "info"], env=self.env, capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit("dockerd did not start; see " + self.work + ".log")
            time.sleep(0.2)
        policy = sh("iptables", "-S", "FORWARD").stdout
        assert "-P FORWARD DROP" in policy, policy

    def stop(self):
        if self.proc:
            ids = subprocess.run(["docker", "ps", "-aq"], env=self.env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], env=self.env, capture_output=True)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        umount_under(self.work)

    def cli(self, *args):
        return ["docker", *args]

    def run_args(self):
        return []


class Podman:
    name = "podman"

    def __init__(self, work):
        self.work = os.path.join(work, "podman")
        self.started = False

    @staticmethod
    def available():
        return shutil.which("podman") is not None

    def start(self):
        os.makedirs(self.work)
        self.env = dict(os.environ)
        self.base = ["podman", "--root", self.work + "/root", "--runroot", self.work + "/run",
                     "--storage-driver", "overlay"]
        self.started = True

    def stop(self):
        if self.started:
            subprocess.run(self.base + ["rm", "-af"], capture_output=True)
            subprocess.run(self.base + ["system", "reset", "-f"], capture_output=True)
            self.started = False
        umount_under(self.work)

    def cli(self, *args):
        return self.base + list(args)

    def run_args(self):
        # Podman's default rlimits exceed this sandboxed host's hard limits (bench.py).
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return ["--ulimit", f"nofile=1024:{hard}", "--ulimit", "nproc=4096:4096"]


def once(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - t) * 1000


def stats(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.95 * len(s))) - 1)]


def connect_ready(port, timeout=20):
    """A connection to the receiver that has said `ready` (a proxy that accepts before the
    container listens closes instead)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), 1)
            s.settimeout(5)
            if s.recv(6) == b"ready\n":
                s.settimeout(None)
                return s
            s.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the receiver on 127.0.0.1:{port} never said ready")


def transfer(port, size):
    """Sends `size` bytes and waits for the receiver to have read them all (its EOF); seconds."""
    s = connect_ready(port)
    buf = b"\0" * (1 << 20)
    t = time.perf_counter()
    left = size
    while left > 0:
        n = min(left, len(buf))
        s.sendall(buf[:n] if n < len(buf) else buf)
        left -= n
    s.shutdown(socket.SHUT_WR)
    s.settimeout(120)
    while s.recv(65536):
        pass
    dt = time.perf_counter() - t
    s.close()
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--burst", type=int, default=5, help="back-to-back runs per engine per round")
    ap.add_argument("--transfers", type=int, default=3)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--bins", help="use these berth binaries instead of building a release")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    if a.bins:
        bins = os.path.abspath(a.bins)
    else:
        sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
        bins = os.path.join(ROOT, "target/release")
    before = host_state()
    ns = f"berth-bench-net-{os.getpid()}"
    work = tempfile.mkdtemp(prefix="berth-bench-net-")
    home = enter_netns(ns)
    engines = [Berth(work, bins)]
    for cls in (Docker, Podman):
        if cls.available():
            engines.append(cls(work))
        else:
            print(f"{cls.name}: not installed, skipped")
    # Docker first: berthd then finds Docker's DOCKER-USER chain, as beside a running dockerd.
    engines.sort(key=lambda e: e.name != "docker")
    try:
        tar = busybox_tar(work)
        for e in engines:
            e.start()
            with open(tar, "rb") as f:
                subprocess.run(e.cli("import", "-", "benchbox:latest"), stdin=f, env=e.env, check=True,
                               capture_output=True)
            # Warm-up (and each engine's default bridge, created at its first container).
            for _ in range(3):
                subprocess.run(e.cli("run", "--rm", *e.run_args(), "benchbox", "true"), env=e.env, check=True,
                               capture_output=True)
        engines.sort(key=lambda e: ["berth", "docker", "podman"].index(e.name))
        rules = sh("iptables", "-S", "DOCKER-USER").stdout if any(e.name == "docker" for e in engines) else ""
        b2b = {e.name: [] for e in engines}
        idle = {e.name: [] for e in engines}
        # berth with `--network none` too, interleaved: what the bridge adds, same load.
        berth = next(e for e in engines if e.name == "berth")
        none_cmd = berth.cli("run", "--rm", "--network", "none", "benchbox", "true")
        b2b_none, idle_none = [], []
        for _ in range(a.rounds):
            for e in engines:
                cmd = e.cli("run", "--rm", *e.run_args(), "benchbox", "true")
                time.sleep(0.5)
                idle[e.name].append(once(cmd, e.env))
                for _ in range(a.burst):
                    b2b[e.name].append(once(cmd, e.env))
            time.sleep(0.5)
            idle_none.append(once(none_cmd, berth.env))
            for _ in range(a.burst):
                b2b_none.append(once(none_cmd, berth.env))
        print(f"run --rm busybox true on the default bridge ({a.rounds} rounds, interleaved: "
              f"1 run after 0.5 s idle + {a.burst} back to back per engine per round)")
        bm, _ = stats(b2b["berth"])
        im, _ = stats(idle["berth"])
        for e in engines:
            m, p = stats(b2b[e.name])
            m2, p2 = stats(idle[e.name])
            rel = "" if e.name == "berth" else f" (berth {m / bm:.1f}x / {m2 / im:.1f}x faster)"
            print(f"  {e.name:7} back to back: median {m:.1f} ms, p95 {p:.1f} ms; after 0.5 s idle: "
                  f"median {m2:.1f} ms, p95 {p2:.1f} ms{rel}")
        m, p = stats(b2b_none)
        m2, p2 = stats(idle_none)
        print(f"  berth --network none, same rounds: back to back median {m:.1f} ms, p95 {p:.1f} ms; "
              f"after 0.5 s idle: median {m2:.1f} ms, p95 {p2:.1f} ms (the bridge adds {bm - m:+.1f} / {im - m2:+.1f} ms)")

        size = int(a.gib * (1 << 30))
        ports = {}
        for e in engines:
            try:
                cid = sh(*e.cli("run", "-d", *e.run_args(), "-p", "127.0.0.1::5001", "benchbox", *RECEIVER),
                         env=e.env).stdout.strip()
                out = sh(*e.cli("port", cid, "5001/tcp"), env=e.env).stdout.split()[0]
                ports[e.name] = int(out.rsplit(":", 1)[1])
                transfer(ports[e.name], 64 << 20)  # warm-up
            except (RuntimeError, subprocess.CalledProcessError) as err:
                print(f"  {e.name}: published port not usable from 127.0.0.1: {err}")
                ports.pop(e.name, None)
        proxies = subprocess.run(["pgrep", "-c", "-x", "docker-proxy"], capture_output=True, text=True).stdout.strip()
        secs = {name: [] for name in ports}
        for _ in range(a.transfers):
            for e in engines:
                if e.name in ports:
                    secs[e.name].append(transfer(ports[e.name], size))
        print(f"published-port throughput, 127.0.0.1 -> container, {a.gib:g} GiB per transfer, "
              f"{a.transfers} transfers, interleaved")
        print(f"  (docker-proxy processes running: {proxies or 0})")
        base = statistics.median(secs["berth"])
        for e in engines:
            if e.name not in secs:
                continue
            m = statistics.median(secs[e.name])
            rel = "" if e.name == "berth" else f" (berth {m / base:.2f}x)"
            print(f"  {e.name:7} median {m:.2f} s = {size / m / 1e6:.0f} MB/s "
                  f"(all: {', '.join(f'{s:.2f}' for s in secs[e.name])}){rel}")
        if rules:
            print("DOCKER-USER during the runs:\n  " + "\n  ".join(rules.splitlines()))
    finally:
        for e in engines:
            try:
                e.stop()
            except Exception as err:  # keep cleaning up
                print(f"stopping {e.name}: {err}")
        # Back to the machine's namespace, then the bench's goes with everything in it.
        setns(f"/proc/self/fd/{home}")
        os.close(home)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    after = host_state()
    if after != before:
        sys.exit(f"the machine's firewall state changed:\nbefore {before}\nafter  {after}")
    print("the machine's firewall state (iptables, forwarding and bridge sysctls, links) is as it was")


if __name__ == "__main__":
    main()
