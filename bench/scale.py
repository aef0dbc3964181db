#!/usr/bin/env python3
"""berth at scale: N detached containers on one machine (issue 11's table).

For each N in --counts (cumulative: the same daemon grows from one count to the next) it measures
  - sequential `run -d --network none busybox sleep 3600` (unnamed: the name generator is on the
    path), time per 100 (first and last 100 of each step),
  - berthd's RSS, host memory per container (`free`'s used delta / N), monitors' mean Pss,
  - `run --rm --network none busybox true` back to back and after 0.5 s idle, against none running,
  - `ps -a`, `exec CONTAINER true` back to back and after 0.5 s idle,
each measured after a settle of SETTLE_S seconds and a `sync` past the last start: a machine whose
containers are running, as a user meets it, not one still finishing a burst of starts (the last
shims' first quiet second, the starts' writeback),
then, at the largest N: berthd restart to ready with all reattached, `rm -f` of all, berthd's RSS
after removal, `berthd check` clean, and nothing left behind (mounts, shims, cgroups).

Usage (as root, from the repository):
  python3 bench/scale.py [--counts 10,100,1000] [--docker 100] [--no-build] [--bins DIR]
--docker N also times N containers under a private dockerd (Debian's docker.io, started with its
own roots as bench/registry.py does); skipped when dockerd is not installed.
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import bench_net_args, busybox_tar, fs_note, settle_fs, pss_kb, rss_kb, pids_of, remove_bench_net, used_kb  # noqa: E402
import registry  # noqa: E402

RUN_D = ["run", "-d", "--network", "none"]


def ms(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def median_ms(cmd, env, runs, idle=0.0):
    s = []
    for _ in range(runs):
        if idle:
            time.sleep(idle)
        s.append(ms(lambda: subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    return statistics.median(s)


class Berth:
    name = "berth"

    def __init__(self, work, bins, net_args=None):
        self.work, self.bins = work, bins
        self.net_args = net_args or bench_net_args(2)
        self.sock = os.path.join(work, "exec/berth.sock")
        self.env = dict(os.environ, BERTH_HOST="unix://" + self.sock)
        self.proc = None

    def cli(self, *args):
        return [os.path.join(self.bins, "berth"), *args]

    def start(self):
        r, w = os.pipe()
        os.set_inheritable(w, True)
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [os.path.join(self.bins, "berthd"), "-H", "unix://" + self.sock, "--data-root", self.work + "/data",
             "--exec-root", self.work + "/exec", "--config-file", self.work + "/daemon.json",
             "--pidfile", self.work + "/berthd.pid", "--cgroup-parent", "berth-scale", *self.net_args],
            env=dict(os.environ, BERTH_READY_FD=str(w)), pass_fds=(w,), stdout=subprocess.DEVNULL,
            stderr=open(self.work + "/berthd.log", "a"))
        os.close(w)
        ok = os.read(r, 6) == b"ready\n"
        os.close(r)
        assert ok, "berthd did not start; see " + self.work + "/berthd.log"
        return (time.perf_counter() - t) * 1000

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
            self.proc = None

    def rss_mb(self):
        return rss_kb(self.proc.pid) / 1024

    def rss_anon_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        return 0

    def shim_pss(self):
        p = [pss_kb(p) for p in pids_of("berth-shim")]
        return statistics.mean(p) if p else 0


class Docker(registry.Docker):
    """A private dockerd (bench/registry.py's), driven through the docker CLI."""

    def cli(self, *args):
        return ["docker", *args]


def grow(eng, image, ids, target, rows):
    """Runs detached containers until there are `target`; returns ms per 100 (first, last)."""
    per = []
    while len(ids) < target:
        t = time.perf_counter()
        out = subprocess.run(eng.cli(*RUN_D, image, "sleep", "3600"), env=eng.env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{eng.name}: run -d #{len(ids) + 1} failed: {out.stderr.strip()}")
        per.append((time.perf_counter() - t) * 1000)
        ids.append(out.stdout.strip())
    n = len(per)
    first = sum(per[:100]) * 100 / min(n, 100) if n else 0
    last = sum(per[-100:]) * 100 / min(n, 100) if n else 0
    return first, last, sum(per) / 1000


def slab_1k_kb():
    """kB in the kmalloc-1k slab: where each memory cgroup's shrinker_info lives, sized by the
    most superblocks this boot has seen (docs/design/performance.md, "Superblocks")."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                p = line.split()
                if p and p[0] == "kmalloc-1k":
                    return int(p[2]) * int(p[3]) // 1024
    except OSError:
        pass
    return 0


def dying_memcgs():
    """Memory cgroups removed but still held by the kernel (pages charged to them, mostly page
    cache a removed container read first): /proc/cgroups counts them, the hierarchy does not.
    Each holds its `shrinker_info`; `run --rm`s of earlier steps leave them, and `free`'s used
    delta charges them to the running containers."""
    try:
        with open("/proc/cgroups") as f:
            total = next(int(l.split()[2]) for l in f if l.startswith("memory\t"))
        live = sum(1 for _ in os.walk("/sys/fs/cgroup/memory"))
        return total - live
    except (OSError, StopIteration):
        return 0


SETTLE_S = 3


def measure(eng, image, ids, base_used, runs, base_slab=0):
    n = len(ids)
    r = {"N": n}
    if n:
        time.sleep(SETTLE_S)
        subprocess.run(["sync"])
    r["used_per_container_mb"] = (used_kb() - base_used) / 1024 / n if n else 0
    if n:
        r["used_per_container_kb"] = (used_kb() - base_used) / n
    if n and base_slab:
        r["of_which_kmalloc_1k_kb"] = (slab_1k_kb() - base_slab) / n
    r["dying_memcgs"] = dying_memcgs()
    rm = eng.cli("run", "--rm", "--network", "none", image, "true")
    r["run_rm_ms"] = median_ms(rm, eng.env, runs)
    r["run_rm_idle_ms"] = median_ms(rm, eng.env, max(3, runs // 3), idle=0.5)
    r["ps_a_ms"] = median_ms(eng.cli("ps", "-a"), eng.env, 5)
    if ids:
        r["exec_ms"] = median_ms(eng.cli("exec", ids[-1], "true"), eng.env, runs)
        r["exec_idle_ms"] = median_ms(eng.cli("exec", ids[-1], "true"), eng.env, max(3, runs // 3), idle=0.5)
    return r


def leftovers(work):
    # (The daemon's own mount of its network namespace pins' directory is no leftover.)
    pins = os.path.join(work, "exec/netns")
    mounts = [l.split()[4] for l in open("/proc/self/mountinfo")
              if l.split()[4].startswith(work) and l.split()[4] != pins]
    cg = [os.path.join("/sys/fs/cgroup", b, "berth-scale") for b in os.listdir("/sys/fs/cgroup")]
    cg = [p for p in cg if os.path.isdir(p) and any(os.path.isdir(os.path.join(p, c)) for c in os.listdir(p))]
    shims = subprocess.run(["pgrep", "-f", f"berth-shim --bundle {work}"], capture_output=True, text=True).stdout.split()
    return mounts, cg, shims


def cleanup(work):
    subprocess.run(["pkill", "-9", "-f", f"berth-shim --bundle {work}"], capture_output=True)
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        t = line.split()[4]
        if t.startswith(work):
            subprocess.run(["umount", "-l", t], capture_output=True)
    for base in os.listdir("/sys/fs/cgroup"):
        p = os.path.join("/sys/fs/cgroup", base, "berth-scale")
        if os.path.isdir(p):
            for c in os.listdir(p):
                if os.path.isdir(os.path.join(p, c)):
                    try:
                        os.rmdir(os.path.join(p, c))
                    except OSError:
                        pass
            try:
                os.rmdir(p)
            except OSError:
                pass


def fmt(r):
    return "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


def bench_berth(a, work, tar):
    b = Berth(work, a.bins)
    b.start()
    results = {}
    try:
        with open(tar, "rb") as f:
            subprocess.run(b.cli("import", "-", "busybox:latest"), stdin=f, env=b.env, check=True, capture_output=True)
        subprocess.run(b.cli("run", "--rm", "--network", "none", "busybox", "true"), env=b.env, check=True)
        # The figures with none running are the baseline of every ratio: not in the slow phase
        # an earlier run's removals leave on a journal-less ext4.
        waited = settle_fs(work)
        if waited:
            print(f"(waited {waited} s for the file system's recently freed inodes to age)", flush=True)
        time.sleep(0.5)
        base_used = used_kb()
        base_slab = slab_1k_kb()
        idle_rss = b.rss_mb()
        base = measure(b, "busybox", [], base_used, a.runs)
        print(f"berth N=0: {fmt(base)}  berthd_rss_mb={idle_rss:.1f}", flush=True)
        ids = []
        for n in a.counts:
            start = len(ids)
            t = time.perf_counter()
            first, last, _ = grow(b, "busybox", ids, n, None)
            total = time.perf_counter() - t
            r = measure(b, "busybox", ids, base_used, a.runs, base_slab)
            r.update(step_s=total, first100_s=first / 1000, last100_s=last / 1000, from_n=start,
                     berthd_rss_mb=b.rss_mb(), shim_pss_kb=b.shim_pss())
            r["run_rm_vs_none"] = r["run_rm_ms"] / base["run_rm_ms"]
            print(f"berth N={n}: {fmt(r)}", flush=True)
            results[n] = r
        n = len(ids)
        b.stop()
        t = time.perf_counter()
        b.start()
        # Ready means every container was reattached (the daemon loads them before it answers).
        running = subprocess.run(b.cli("ps", "-q"), env=b.env, capture_output=True, text=True, check=True).stdout.split()
        restart_ms = (time.perf_counter() - t) * 1000
        print(f"berth restart to ready with {n} running: {restart_ms:.0f} ms, {len(running)} running after", flush=True)
        assert len(running) == n, f"{len(running)} of {n} running after a restart"
        rss_before = b.rss_mb()
        t = time.perf_counter()
        subprocess.run(b.cli("rm", "-f", *ids), env=b.env, check=True, capture_output=True)
        rm_s = time.perf_counter() - t
        # berthd trims its heap once removals pause for 1 s; its trash thread after each batch.
        time.sleep(3)
        rss_after = b.rss_mb()
        anon = b.rss_anon_mb()
        print(f"berth rm -f of {n}: {rm_s:.2f} s; berthd RSS {rss_before:.1f} MB before, {rss_after:.1f} MB after "
              f"({anon:.1f} MB of it anonymous, the rest its code and libraries)", flush=True)
        left = subprocess.run(b.cli("ps", "-aq"), env=b.env, capture_output=True, text=True, check=True).stdout.split()
        assert not left, f"{len(left)} containers left"
    finally:
        b.stop()
    # A removed container's shim finishes its cleanup (unmount, cgroup) after `rm` answered.
    deadline = time.time() + 30
    while leftovers(work)[2] and time.time() < deadline:
        time.sleep(0.2)
    mounts, cg, shims = leftovers(work)
    check = subprocess.run([os.path.join(a.bins, "berthd"), "check", "--data-root", work + "/data"], capture_output=True, text=True)
    print(f"berth leftovers: mounts={len(mounts)} cgroups={len(cg)} shims={len(shims)}; berthd check rc={check.returncode} {check.stdout.strip()} {check.stderr.strip()}")
    assert not (mounts or cg or shims) and check.returncode == 0, "not clean after rm -f of all"
    return results


def bench_docker(a, work, tar):
    d = Docker(work)
    d.start()
    try:
        with open(tar, "rb") as f:
            subprocess.run(["docker", "import", "-", "scalebench-busybox:latest"], stdin=f, env=d.env, check=True, capture_output=True)
        subprocess.run(d.cli("run", "--rm", "--network", "none", "scalebench-busybox", "true"), env=d.env, check=True, capture_output=True)
        time.sleep(0.5)
        base_used = used_kb()
        base = measure(d, "scalebench-busybox", [], base_used, max(3, a.runs // 3))
        print(f"docker N=0: {fmt(base)}", flush=True)
        ids = []
        t = time.perf_counter()
        first, last, _ = grow(d, "scalebench-busybox", ids, a.docker, None)
        total = time.perf_counter() - t
        r = measure(d, "scalebench-busybox", ids, base_used, max(3, a.runs // 3))
        r.update(step_s=total, first100_s=first / 1000, last100_s=last / 1000)
        print(f"docker N={len(ids)}: {fmt(r)}", flush=True)
        t = time.perf_counter()
        subprocess.run(d.cli("rm", "-f", *ids), env=d.env, check=True, capture_output=True)
        print(f"docker rm -f of {len(ids)}: {time.perf_counter() - t:.2f} s", flush=True)
        return r
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="10,100,1000", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--docker", type=int, default=0, help="also time N containers under a private dockerd")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bins", default=os.path.join(ROOT, "target/release"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="berth-scale-")
    print(fs_note(work))
    try:
        tar = busybox_tar(work)
        bench_berth(a, work, tar)
        if a.docker:
            if shutil.which("dockerd"):
                bench_docker(a, work, tar)
            else:
                print("docker: dockerd not installed, skipped")
    finally:
        cleanup(work)
        remove_bench_net(2)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
