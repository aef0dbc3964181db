#!/usr/bin/env python3
"""The shim's two runtime paths side by side: `run --rm --network none busybox true` and
`exec C true` (whole CLI process), on a private release berthd using the fast path (default) and
on one forced through libcontainer (BERTH_RUNTIME=libcontainer), back to back and after 0.5 s
idle. Needs root and `cargo build --release -p berthd -p berth -p berth-shim` first.

    sudo python3 bench/runtime_paths.py [--runs 30]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import bench_net_args, busybox_tar, fs_note, remove_bench_net, timed  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = os.path.join(ROOT, "target/release")


def daemon(work, extra_env):
    sock = os.path.join(work, "exec/berth.sock")
    r, w = os.pipe()
    os.set_inheritable(w, True)
    env = dict(os.environ, BERTH_READY_FD=str(w), **extra_env)
    p = subprocess.Popen(
        [os.path.join(BINS, "berthd"), "-H", "unix://" + sock, "--data-root", work + "/data", "--exec-root",
         work + "/exec", "--config-file", work + "/daemon.json", "--pidfile", work + "/berthd.pid",
         "--cgroup-parent", "berth-bench-paths", *bench_net_args(4)],
        env=env, pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=open(work + "/berthd.log", "w"))
    os.close(w)
    assert os.read(r, 6) == b"ready\n", "berthd did not start"
    return p, dict(os.environ, BERTH_HOST="unix://" + sock)


def idle_timed(cmd, runs, env):
    samples = []
    for _ in range(runs):
        time.sleep(0.5)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    berth = os.path.join(BINS, "berth")
    print(fs_note(tempfile.gettempdir()))
    for name, extra in (("fast path", {}), ("libcontainer", {"BERTH_RUNTIME": "libcontainer"})):
        work = tempfile.mkdtemp(prefix="berth-paths-")
        p, env = daemon(work, extra)
        try:
            with open(busybox_tar(work), "rb") as f:
                subprocess.run([berth, "import", "-", "busybox:latest"], stdin=f, env=env, check=True,
                               capture_output=True)
            run = [berth, "run", "--rm", "--network", "none", "busybox", "true"]
            subprocess.run(run, env=env, check=True)
            med, p95 = timed(run, a.runs, env)
            idle = idle_timed(run, max(5, a.runs // 3), env)
            cid = subprocess.run([berth, "run", "-d", "--network", "none", "busybox", "sleep", "600"], env=env,
                                 check=True, capture_output=True, text=True).stdout.strip()
            ex = [berth, "exec", cid, "true"]
            subprocess.run(ex, env=env, check=True)
            emed, ep95 = timed(ex, a.runs, env)
            eidle = idle_timed(ex, max(5, a.runs // 3), env)
            subprocess.run([berth, "rm", "-f", cid], env=env, check=True, capture_output=True)
            print(f"{name:13} run --rm: median {med:.1f} ms (p95 {p95:.1f}), after 0.5 s idle {idle:.1f} ms; "
                  f"exec: median {emed:.1f} ms (p95 {ep95:.1f}), after 0.5 s idle {eidle:.1f} ms")
        finally:
            p.terminate()
            p.wait()
            subprocess.run(["umount", "-R", work + "/data"], stderr=subprocess.DEVNULL)
            shutil.rmtree(work, ignore_errors=True)
            remove_bench_net(4)


if __name__ == "__main__":
    main()
