#!/usr/bin/env python3
"""Build bench: a Dockerfile of FROM busybox, ENV, WORKDIR, 3x RUN, COPY, CMD, built `--no-cache`
and fully cached, berth vs Docker (a private dockerd, classic builder: DOCKER_BUILDKIT=0) vs
Podman (private roots) in the same run. RUN steps use `--network none` everywhere.

Usage (as root, from the repository):  python3 bench/build.py [--runs 10]
"""
import argparse, os, statistics, subprocess, sys, tempfile, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from registry import Berth, Docker, Podman, run  # noqa: E402
from bench import busybox_tar  # noqa: E402

DOCKERFILE = """FROM busybox
ENV APP=/app
WORKDIR /app
RUN echo one > /app/one
RUN echo two > /app/two
RUN cat /app/one /app/two > /app/both
COPY file.txt /app/file.txt
CMD ["cat", "/app/both"]
"""


class BerthBins(Berth):
    """berth from release binaries of the three programs (built here)."""

    def __init__(self, work):
        root = os.path.dirname(HERE)
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "berthd", "-p", "berth", "-p", "berth-shim"],
                       cwd=root, check=True)
        self.bins = os.path.join(root, "target/release")
        self.work = os.path.join(work, "berth")
        self.proc = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    work = tempfile.mkdtemp(prefix="berth-build-bench-")
    ctx = os.path.join(work, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    with open(os.path.join(ctx, "file.txt"), "w") as f:
        f.write("payload\n")
    tar = busybox_tar(work)
    engines = [BerthBins(work)]
    if Docker.available():
        engines.append(Docker(work))
    if Podman.available():
        engines.append(Podman(work))
    rows = []
    try:
        for e in engines:
            e.start()
            env = dict(e.env, DOCKER_BUILDKIT="0")
            with open(tar, "rb") as f:
                subprocess.run(e.cli("import", "-", "busybox:latest"), stdin=f, env=env, check=True, capture_output=True)
            build = e.cli("build", "--network", "none", "-q", "-t", "bench:1", ctx)
            nocache = e.cli("build", "--network", "none", "--no-cache", "-q", "-t", "bench:1", ctx)
            run(build, env)  # warm
            unc = [run(nocache, env) for _ in range(a.runs)]
            run(build, env)
            cached = [run(build, env) for _ in range(a.runs)]
            rows.append((e.name, statistics.median(unc) * 1000, statistics.median(cached) * 1000))
            print(f"{e.name:7} uncached median {rows[-1][1]:7.0f} ms   cached median {rows[-1][2]:6.0f} ms  ({a.runs} runs each)")
            e.stop()
    finally:
        for e in engines:
            try:
                e.stop()
            except Exception:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
