#!/usr/bin/env python3
"""How long a process takes to join a container's cgroups, the two ways (issue 11's idle penalty).

For each round, after an idle pause, a forked child moves itself into a fresh cgroup directory in
every v1 hierarchy, either by writing 0 to `cgroup.procs` (what libcontainer and runc do; takes the
kernel's global threadgroup lock for writing, whose first writer after a quiet spell waits for an
RCU grace period) or by writing 0 to `tasks` (what berth's fast path does: a thread moving
itself takes no such lock). Reports the median per way. The directories are the bench's own
(`berth-bench-cgjoin-N`) and removed.

On Linux 6.18, once any cgroup hierarchy has been mounted with `favordynmods` (berth's e2e suite
does so), `cgroup.procs` writes use a per-threadgroup lock until reboot and both ways are fast.

Usage (root): python3 bench/cgroup_join.py [--rounds 8] [--idle 0.5]
"""
import argparse, os, statistics, time

ROOT = "/sys/fs/cgroup"


def hierarchies():
    out = []
    for line in open("/proc/self/mountinfo"):
        left, right = line.split(" - ", 1)
        if right.startswith("cgroup ") and left.split()[4].startswith(ROOT + "/"):
            point = left.split()[4]
            if "cpuset" not in point:  # a new cpuset directory has no cpus until they are written
                out.append(point)
    return out


def one(hs, name, file):
    dirs = [os.path.join(h, name) for h in hs]
    for d in dirs:
        os.mkdir(d)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        t = time.perf_counter()
        for d in dirs:
            with open(os.path.join(d, file), "w") as f:
                f.write("0")
        os.write(w, str((time.perf_counter() - t) * 1000).encode())
        os._exit(0)
    os.close(w)
    ms = float(os.read(r, 64) or b"nan")
    os.close(r)
    os.waitpid(pid, 0)
    for d in dirs:
        os.rmdir(d)
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--idle", type=float, default=0.5)
    a = ap.parse_args()
    hs = hierarchies()
    if os.geteuid() != 0 or not hs:
        print("skipped: requires root and cgroup v1 hierarchies")
        return
    res = {"cgroup.procs": [], "tasks": []}
    for i in range(a.rounds):
        for file in ("cgroup.procs", "tasks"):
            time.sleep(a.idle)
            res[file].append(one(hs, f"berth-bench-cgjoin-{os.getpid()}-{i}", file))
    print(f"{len(hs)} v1 hierarchies, {a.rounds} rounds, {a.idle}s idle before each:")
    for file, v in res.items():
        print(f"  join by {file:13}: median {statistics.median(v):6.2f} ms, max {max(v):6.2f} ms")


if __name__ == "__main__":
    main()
