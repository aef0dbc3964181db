#!/usr/bin/env python3
"""A thousand containers on one bridge (issue 11): what happens at the kernel's port limit.

Starts a private berthd whose default bridge (`bbench7`) has a /16 of its own, so addresses
never run out first, and runs `run -d busybox sleep 3600` (the default bridge network) until
the bridge refuses one or --max is reached. Reports the time per 100 starts (does each start
cost more as the bridge fills?), berthd's RSS, the refusal (exit code and message); then removes
one container, starts the refused one (nothing of its endpoint was leaked), and removes all with
`rm -f`, asserting that no veth, pinned namespace, mount, cgroup or shim is left and that
`berthd check` is clean.

Usage (as root, from the repository, after `cargo build --release`):
  python3 bench/bridge_scale.py [--max 1030] [--bins target/release]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import busybox_tar  # noqa: E402
import scale  # noqa: E402

BRIDGE = "bbench7"


def shim_mounts(work, cid):
    """Lines of the mount table of container `cid`'s shim (its mount namespace)."""
    pids = subprocess.run(["pgrep", "-f", f"berth-shim --bundle {work}/data/containers/{cid}"],
                          capture_output=True, text=True).stdout.split()
    try:
        return sum(1 for _ in open(f"/proc/{pids[0]}/mountinfo"))
    except (IndexError, OSError):
        return "?"


def mnt_cache_kb():
    """The kernel's `mnt_cache` slab (every mount of every namespace), kB."""
    for line in open("/proc/slabinfo"):
        x = line.split()
        if x[0] == "mnt_cache":
            return int(x[2]) * int(x[3]) // 1024
    return "?"


def free_16():
    """A 10.x.0.0/16 no route of the host's overlaps."""
    routes = [l.split() for l in open("/proc/net/route").read().splitlines()[1:]]
    for second in range(96, 128):
        net = int.from_bytes(bytes([10, second, 0, 0]), "big")
        clash = False
        for r in routes:
            dest = int.from_bytes(int(r[1], 16).to_bytes(4, "little"), "big")
            mask = int.from_bytes(int(r[7], 16).to_bytes(4, "little"), "big")
            if mask and ((dest & 0xFFFF0000) == net or (net & mask) == (dest & mask)):
                clash = True
        if not clash:
            return f"10.{second}.0.1/16"
    sys.exit("no free 10.x.0.0/16 for the bench's bridge")


def ports():
    try:
        return len(os.listdir(f"/sys/class/net/{BRIDGE}/brif"))
    except FileNotFoundError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=1030)
    ap.add_argument("--bins", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target/release"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("skipped: requires root")
        return
    work = tempfile.mkdtemp(prefix="berth-bridge-")
    b = scale.Berth(work, a.bins, ["--bridge", BRIDGE, "--bip", free_16(), "--nft-table", BRIDGE])
    ids, refused = [], None
    try:
        b.start()
        with open(busybox_tar(work), "rb") as f:
            subprocess.run(b.cli("import", "-", "busybox:latest"), stdin=f, env=b.env, check=True, capture_output=True)
        t0 = lap = time.perf_counter()
        for i in range(a.max):
            r = subprocess.run(b.cli("run", "-d", "--name", f"c{i}", "busybox", "sleep", "3600"), env=b.env,
                               capture_output=True, text=True)
            if r.returncode != 0:
                refused = (i + 1, r.returncode, r.stderr.strip().splitlines()[0])
                break
            ids.append(r.stdout.strip())
            if (i + 1) % 100 == 0:
                now = time.perf_counter()
                print(f"{i + 1}: {now - lap:.2f} s for the last 100, berthd RSS {b.rss_mb():.1f} MB, "
                      f"newest shim's mounts {shim_mounts(work, ids[-1])}, kernel mnt_cache {mnt_cache_kb()} kB",
                      flush=True)
                lap = now
        print(f"{len(ids)} started in {time.perf_counter() - t0:.1f} s; ports on the bridge: {ports()}", flush=True)
        if refused:
            n, code, msg = refused
            print(f"#{n} refused: exit {code}: {msg}", flush=True)
            status = subprocess.run(b.cli("inspect", "-f", "{{.State.Status}}", f"c{n - 1}"), env=b.env,
                                    capture_output=True, text=True).stdout.strip()
            subprocess.run(b.cli("rm", "-f", ids.pop()), env=b.env, check=True, capture_output=True)
            deadline = time.time() + 30
            while ports() >= 1023 and time.time() < deadline:
                time.sleep(0.1)
            t = time.perf_counter()
            r = subprocess.run(b.cli("start", f"c{n - 1}"), env=b.env, capture_output=True, text=True)
            print(f"the refused container was {status}; after one removal its start: exit {r.returncode} "
                  f"({(time.perf_counter() - t) * 1000:.0f} ms) {r.stderr.strip()}", flush=True)
            assert r.returncode == 0, "the refused container does not start once a port is free"
            ids.append(f"c{n - 1}")
        t = time.perf_counter()
        subprocess.run(b.cli("rm", "-f", *ids), env=b.env, check=True, capture_output=True)
        print(f"rm -f of {len(ids)}: {time.perf_counter() - t:.2f} s", flush=True)
        left = subprocess.run(b.cli("ps", "-aq"), env=b.env, capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(b.cli("rm", "-f", *left), env=b.env, capture_output=True)
        deadline = time.time() + 30
        netns = os.path.join(work, "exec/netns")
        while (ports() or (os.path.isdir(netns) and os.listdir(netns))) and time.time() < deadline:
            time.sleep(0.2)
        print(f"left: ports {ports()}, pinned namespaces {len(os.listdir(netns)) if os.path.isdir(netns) else 0}",
              flush=True)
        assert ports() == 0, "veths left on the bridge"
    finally:
        b.stop()
        deadline = time.time() + 30
        while scale.leftovers(work)[2] and time.time() < deadline:
            time.sleep(0.2)
        mounts, cg, shims = scale.leftovers(work)
        check = subprocess.run([os.path.join(a.bins, "berthd"), "check", "--data-root", work + "/data"],
                               capture_output=True, text=True)
        print(f"leftovers: mounts={len(mounts)} cgroups={len(cg)} shims={len(shims)}; berthd check rc={check.returncode}")
        scale.cleanup(work)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", BRIDGE], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    assert not (mounts or cg or shims) and check.returncode == 0, "not clean after rm -f of all"


if __name__ == "__main__":
    main()
