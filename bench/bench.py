#!/usr/bin/env python3
"""berth benchmarks: `run --rm busybox true` latency (median, p95), the overhead of a named
volume (`run --rm -v NAME:/data busybox true`), exec latency, the memory of
50 detached containers' monitors (Pss), and the idle daemon's RSS. Compares with Docker and
Podman on the same image in the same run when they are installed and running.

Usage (as root, from the repository):  python3 bench/bench.py [--runs 30] [--containers 50]
It builds release binaries, starts a private berthd (temporary roots, its own socket), and
cleans up after itself. Traffic stays on this machine: containers run with --network none.
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def bench_net_args(n):
    """berthd flags giving a bench daemon a bridge, subnet and nftables table of its own
    (`bbenchN`, 10.89.N.0/24), so no bench creates or leaves the default `berth0` and `ip berth`;
    `remove_bench_net(n)` removes them once the daemon has stopped."""
    name = f"bbench{n}"
    return ["--bridge", name, "--bip", f"10.89.{n}.1/24", "--nft-table", name]


def remove_bench_net(n):
    name = f"bbench{n}"
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", name], capture_output=True)


def busybox_tar(work):
    root = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    for d in ("etc", "tmp", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, d))
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    for applet in sh("/bin/busybox", "--list").stdout.split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    tar = os.path.join(work, "busybox.tar")
    sh("tar", "--numeric-owner", "-C", root, "-cf", tar, ".")
    return tar


def settle_fs(path, seconds=35):
    """On a journal-less ext4, waits until the inodes freed by whatever ran before (an earlier
    bench's removals) are past ext4's ~30 s window, so the first figures are not taken in the
    slow phase they cause. Returns the seconds waited."""
    if "WITHOUT a journal" not in fs_note(path):
        return 0
    time.sleep(seconds)
    return seconds


def fs_note(path):
    """One line on the file system under `path`: whether ext4 there has a journal. Without one,
    ext4 skips inodes freed in the last ~30 s when it allocates, checking them one by one, so file
    creation slows while containers come and go and the figures move from run to run
    (docs/design/performance.md)."""
    try:
        src, fstype = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", path],
                                     capture_output=True, text=True, check=True).stdout.split()[:2]
    except (OSError, subprocess.CalledProcessError, ValueError):
        return "data root file system: unknown"
    note = f"data root file system: {fstype} on {src}"
    jt = f"/sys/fs/ext4/{os.path.basename(src)}/journal_task"
    if fstype == "ext4" and os.path.exists(jt):
        with open(jt) as f:
            if f.read().strip() == "<none>":
                note += " WITHOUT a journal: inode allocation slows under churn, expect run-to-run spread"
    return note


def timed(cmd, runs, env=None):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]
    return statistics.median(samples), p95


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def meminfo():
    """/proc/meminfo as {field: kB}."""
    with open("/proc/meminfo") as f:
        return {line.split(":")[0]: int(line.split()[1]) for line in f}


def used_kb(m=None):
    """`free`'s "used" (kB): what is neither free nor cache, from `m` or a fresh meminfo()."""
    m = m or meminfo()
    return m["MemTotal"] - m["MemFree"] - m["Buffers"] - m["Cached"] - m["SReclaimable"]


def pids_of(name):
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def other_engine(name, tar):
    """A docker/podman CLI that answers, with busybox imported; None if unavailable."""
    exe = shutil.which(name)
    if not exe:
        return None
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    if subprocess.run([exe, "info"], capture_output=True, env=env).returncode != 0:
        return None
    with open(tar, "rb") as f:
        subprocess.run([exe, "import", "-", "berthbench-busybox:latest"], stdin=f, capture_output=True, check=True, env=env)
    return exe, env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--containers", type=int, default=50)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    bins = os.path.join(ROOT, "target/release")
    work = tempfile.mkdtemp(prefix="berth-bench-")
    sock = os.path.join(work, "exec/berth.sock")
    env = dict(os.environ, BERTH_HOST="unix://" + sock)
    berth = os.path.join(bins, "berth")
    r, w = os.pipe()
    os.set_inheritable(w, True)
    daemon = subprocess.Popen(
        [os.path.join(bins, "berthd"), "-H", "unix://" + sock, "--data-root", work + "/data", "--exec-root", work + "/exec",
         "--config-file", work + "/daemon.json", "--pidfile", work + "/berthd.pid", "--cgroup-parent", "berth-bench",
         *bench_net_args(1)],
        env=dict(os.environ, BERTH_READY_FD=str(w)), pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=open(work + "/berthd.log", "w"))
    os.close(w)
    results = []
    try:
        assert os.read(r, 6) == b"ready\n", "berthd did not start"
        tar = busybox_tar(work)
        with open(tar, "rb") as f:
            subprocess.run([berth, "import", "-", "busybox:latest"], stdin=f, env=env, check=True, capture_output=True)
        time.sleep(0.5)  # let the daemon settle before reading its idle memory
        idle = rss_kb(daemon.pid)
        subprocess.run([berth, "run", "--rm", "--network", "none", "busybox", "true"], env=env, check=True)
        med, p95 = timed([berth, "run", "--rm", "--network", "none", "busybox", "true"], a.runs, env)
        results.append(("berth", med, p95))
        print(f"berth   run --rm busybox true: median {med:.1f} ms, p95 {p95:.1f} ms ({a.runs} runs)")
        vol = ["-v", "berthbench-vol:/data"]
        subprocess.run([berth, "run", "--rm", "--network", "none", *vol, "busybox", "true"], env=env, check=True)
        vmed, vp95 = timed([berth, "run", "--rm", "--network", "none", *vol, "busybox", "true"], a.runs, env)
        print(f"berth   run --rm -v NAME:/data busybox true: median {vmed:.1f} ms, p95 {vp95:.1f} ms "
              f"(volume overhead {vmed - med:+.1f} ms)")
        others = []
        for name in ("docker", "podman"):
            eng = other_engine(name, tar)
            if eng is None:
                print(f"{name:7} not installed or not running: skipped")
                continue
            exe, oenv = eng
            # Podman's default rlimits (nofile, nproc) exceed a sandboxed host's hard limits and
            # runc then fails with EPERM (berth clamps instead): give it limits the host allows.
            extra = []
            if name == "podman":
                import resource
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                extra = ["--ulimit", f"nofile=1024:{hard}", "--ulimit", "nproc=4096:4096"]
            cmd = [exe, "run", "--rm", "--network", "none", *extra, "berthbench-busybox", "true"]
            subprocess.run(cmd, env=oenv, check=True, capture_output=True)
            m, p = timed(cmd, a.runs, oenv)
            results.append((name, m, p))
            print(f"{name:7} run --rm busybox true: median {m:.1f} ms, p95 {p:.1f} ms -> berth is {m / med:.1f}x faster")
            vcmd = [exe, "run", "--rm", "--network", "none", *extra, *vol, "berthbench-busybox", "true"]
            subprocess.run(vcmd, env=oenv, check=True, capture_output=True)
            vm, vp = timed(vcmd, a.runs, oenv)
            print(f"{name:7} run --rm -v NAME:/data busybox true: median {vm:.1f} ms, p95 {vp:.1f} ms "
                  f"(volume overhead {vm - m:+.1f} ms)")
            subprocess.run([exe, "volume", "rm", "-f", "berthbench-vol"], env=oenv, capture_output=True)
            others.append((name, exe, oenv, extra))
        # exec latency on a running container.
        cid = sh(berth, "run", "-d", "--network", "none", "busybox", "sleep", "600", env=env).stdout.strip()
        em, ep = timed([berth, "exec", cid, "true"], a.runs, env)
        print(f"berth   exec CONTAINER true: median {em:.1f} ms, p95 {ep:.1f} ms")
        for name, exe, oenv, extra in others:
            ocid = sh(exe, "run", "-d", "--network", "none", *extra, "berthbench-busybox", "sleep", "600", env=oenv).stdout.strip()
            try:
                m, p = timed([exe, "exec", ocid, "true"], a.runs, oenv)
                print(f"{name:7} exec CONTAINER true: median {m:.1f} ms, p95 {p:.1f} ms -> berth is {m / em:.1f}x faster")
            finally:
                subprocess.run([exe, "rm", "-f", ocid], env=oenv, capture_output=True)
        # Monitors' memory.
        ids = [cid]
        for _ in range(a.containers - 1):
            ids.append(sh(berth, "run", "-d", "--network", "none", "busybox", "sleep", "600", env=env).stdout.strip())
        shims = [p for p in pids_of("berth-shim")]
        pss = [pss_kb(p) for p in shims]
        if pss:
            print(f"berth-shim Pss: mean {statistics.mean(pss):.0f} kB, max {max(pss)} kB over {len(pss)} monitors")
        print(f"berthd idle RSS: {idle / 1024:.1f} MB; with {len(ids)} containers: {rss_kb(daemon.pid) / 1024:.1f} MB")
        for c in ids:
            subprocess.run([berth, "rm", "-f", c], env=env, capture_output=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
        remove_bench_net(1)
        subprocess.run(["pkill", "-9", "-f", f"berth-shim --bundle {work}"], capture_output=True)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            t = line.split()[4]
            if t.startswith(work):
                subprocess.run(["umount", "-l", t], capture_output=True)
        for base in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", base, "berth-bench")
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
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
