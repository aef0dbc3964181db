#!/usr/bin/env python3
"""Volume overhead benchmark: `run --rm --network none busybox true` with and without a named
volume (`-v NAME:/data`), berth against Docker (a private dockerd this script starts with its own
roots and socket, no iptables, no bridge; see registry.py). Runs are interleaved: each round runs
every engine without and with the volume.

Usage (as root, from the repository):  python3 bench/volumes.py [--runs 30]
Everything it starts is stopped and removed at the end.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time, shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import busybox_tar  # noqa: E402
from registry import Berth, Docker  # noqa: E402


def once(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    work = tempfile.mkdtemp(prefix="berth-bench-vol-")
    engines = [Berth(work)]
    if Docker.available():
        engines.append(Docker(work))
    else:
        print("docker: dockerd not installed, skipped")
    try:
        tar = busybox_tar(work)
        for e in engines:
            e.start()
            with open(tar, "rb") as f:
                subprocess.run(e.cli("import", "-", "benchbox:latest"), stdin=f, env=e.env, check=True,
                               capture_output=True)
            for vol in ([], ["-v", "benchvol:/data"]):
                # Warm-up (and the volume's creation, outside the timed runs).
                subprocess.run(e.cli("run", "--rm", "--network", "none", *vol, "benchbox", "true"), env=e.env,
                               check=True, capture_output=True)
        samples = {(e.name, v): [] for e in engines for v in (False, True)}
        for _ in range(a.runs):
            for e in engines:
                for v in (False, True):
                    vol = ["-v", "benchvol:/data"] if v else []
                    samples[(e.name, v)].append(
                        once(e.cli("run", "--rm", "--network", "none", *vol, "benchbox", "true"), e.env))
        for e in engines:
            plain = statistics.median(samples[(e.name, False)])
            withv = statistics.median(samples[(e.name, True)])
            print(f"{e.name:6} run --rm busybox true: median {plain:.1f} ms; with -v NAME:/data: "
                  f"median {withv:.1f} ms (volume overhead {withv - plain:+.1f} ms, {a.runs} runs each)")
    finally:
        for e in engines:
            e.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
