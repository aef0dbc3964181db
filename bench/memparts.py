#!/usr/bin/env python3
"""What the kernel charges for each part of a container, without berth (issue 11, host memory).

Starts N of one part at a time and reports, per item, the sum of the meminfo counters a
container's kernel objects land in (AnonPages, PageTables, KernelStack, SUnreclaim, Percpu,
after `sync` and dropping reclaimable slab) and `free`'s used delta (MemTotal - MemFree -
Buffers - Cached - SReclaimable; it also moves with whatever else the machine frees meanwhile),
with the slab caches that moved most:
  - sleep:   a busybox `sleep` process (what the container's own process costs),
  - netns:   `unshare --net` around the same (a network namespace; `--network none` makes one),
  - ipc:     `unshare --ipc` (an IPC namespace and its mqueue superblock),
  - cgroups: one directory in each mounted v1 hierarchy and the unified one, as a container has,
  - memcg:   one memory cgroup alone.
A memory cgroup's size depends on the machine's history: each one holds a `shrinker_info` of
1 kB (kmalloc-1k) per 64 shrinker ids, sized by the most superblocks that ever existed at once
since boot (docs/design/performance.md, "Host memory per container").

Usage (as root): python3 bench/memparts.py [--n 200] [part ...]
"""
import argparse, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import meminfo, used_kb  # noqa: E402

HIERARCHIES = "/sys/fs/cgroup"


def snap():
    m = meminfo()
    s = {}
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            x = line.split()
            s[x[0]] = int(x[2]) * int(x[3]) // 1024
    return m, s


def settle():
    time.sleep(2)
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")


def cgroup_roots(memory_only):
    roots = []
    for name in sorted(os.listdir(HIERARCHIES)):
        p = os.path.join(HIERARCHIES, name)
        if os.path.isdir(p) and os.path.exists(os.path.join(p, "cgroup.procs")) and not os.path.islink(p):
            if not memory_only or name == "memory":
                roots.append(p)
    return roots


def one(part, n):
    procs, dirs = [], []
    settle()
    a = snap()
    try:
        if part in ("sleep", "netns", "ipc"):
            pre = {"sleep": [], "netns": ["unshare", "--net"], "ipc": ["unshare", "--ipc"]}[part]
            for _ in range(n):
                procs.append(subprocess.Popen(pre + ["busybox", "sleep", "3600"]))
        else:
            tag = f"berth-memparts-{os.getpid()}"
            parents = [os.path.join(root, tag) for root in cgroup_roots(part == "memcg")]
            for p in parents:
                os.mkdir(p)
                dirs.append(p)
            for i in range(n):
                for p in parents:
                    d = os.path.join(p, str(i))
                    os.mkdir(d)
                    dirs.append(d)
        settle()
        b = snap()
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for d in reversed(dirs):
            os.rmdir(d)
    (m0, s0), (m1, s1) = a, b
    per = lambda k, x0, x1: (x1.get(k, 0) - x0.get(k, 0)) / n
    parts = ("AnonPages", "PageTables", "KernelStack", "SUnreclaim", "Percpu")
    total = sum(per(k, m0, m1) for k in parts)
    print(f"{part}: {total:.1f} kB each in the parts below; `free` used {(used_kb(m1) - used_kb(m0)) / n:.1f} ("
          + ", ".join(f"{k} {per(k, m0, m1):.1f}" for k in
                      parts) + ")")
    top = sorted(s1, key=lambda k: -per(k, s0, s1))[:6]
    print("   slab: " + ", ".join(f"{k} {per(k, s0, s1):.1f}" for k in top))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("parts", nargs="*", default=["sleep", "netns", "ipc", "cgroups", "memcg"])
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("skipped: requires root")
        return
    for p in a.parts:
        if p not in ("sleep", "netns", "ipc", "cgroups", "memcg"):
            sys.exit(f"unknown part {p!r}")
        one(p, a.n)


if __name__ == "__main__":
    main()
