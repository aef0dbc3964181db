#!/usr/bin/env python3
"""Two builds of berth side by side: `run --rm`, `exec` and `ps -a`, interleaved (issue 11).

Each round starts a private berthd from one build's directory, imports busybox, starts one
`sleep` container (and with --running N, N more) and times, as whole CLI processes,
  - `run --rm --network none busybox true`, back to back and after 0.5 s idle,
  - `exec CONTAINER true`, back to back and after 0.5 s idle,
  - `ps -a`, and `berth --version` (the CLI's start alone),
then stops it and does the same with the other build. The order alternates each round, so a
phase of the machine (its speed moves by 2-3x over minutes here) touches both builds alike.
With --memory N, each build then also starts N `sleep` containers, and the report adds the host
memory they took (meminfo deltas per container) and the shims' anonymous memory and page tables.

Usage (as root, from the repository):
  python3 bench/ab.py --a DIR --b DIR [--rounds 6] [--running 1000] [--memory 200]
Each DIR holds berthd, berth and berth-shim: target/release, or a copy of another build.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import busybox_tar, meminfo, pids_of, remove_bench_net  # noqa: E402
import scale  # noqa: E402

RUN = ["run", "--rm", "--network", "none", "busybox", "true"]


def status(pid, keys):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in keys:
                out[k] = int(v.split()[0])
    return out


def one_round(bins, work, res, memory, running):
    b = scale.Berth(work, bins)
    b.start()
    try:
        with open(busybox_tar(work), "rb") as f:
            subprocess.run(b.cli("import", "-", "busybox:latest"), stdin=f, env=b.env, check=True,
                           capture_output=True)
        c = subprocess.run(b.cli(*scale.RUN_D, "busybox", "sleep", "3600"), env=b.env, check=True,
                           capture_output=True, text=True).stdout.strip()
        ids = [c]
        for _ in range(running):
            ids.append(subprocess.run(b.cli(*scale.RUN_D, "busybox", "sleep", "3600"), env=b.env,
                                      check=True, capture_output=True, text=True).stdout.strip())
        time.sleep(1.2)  # past the shim's quiet second, as a user meets it

        def timed(args, idle=0.0):
            if idle:
                time.sleep(idle)
            t = time.perf_counter()
            subprocess.run(b.cli(*args), env=b.env, check=True, capture_output=True)
            return (time.perf_counter() - t) * 1000

        for key, args, n, idle in (("run --rm", RUN, 10, 0), ("run --rm idle", RUN, 6, 0.5),
                                   ("exec", ["exec", c, "true"], 10, 0),
                                   ("exec idle", ["exec", c, "true"], 6, 0.5),
                                   ("ps -a", ["ps", "-a"], 10, 0), ("--version", ["--version"], 20, 0)):
            res.setdefault(key, []).extend(timed(args, idle) for _ in range(n))
        if memory:
            subprocess.run(["sync"])
            m0 = meminfo()
            for _ in range(memory):
                ids.append(subprocess.run(b.cli(*scale.RUN_D, "busybox", "sleep", "3600"), env=b.env,
                                          check=True, capture_output=True, text=True).stdout.strip())
            time.sleep(3)
            subprocess.run(["sync"])
            m1 = meminfo()
            for k in ("AnonPages", "PageTables", "SUnreclaim"):
                res.setdefault(f"{k} kB/container", []).append((m1[k] - m0[k]) / memory)
            shims = [status(p, ("RssAnon", "VmPTE")) for p in pids_of("berth-shim")]
            res.setdefault("shim RssAnon kB", []).append(statistics.mean(s["RssAnon"] for s in shims))
            res.setdefault("shim VmPTE kB", []).append(statistics.mean(s["VmPTE"] for s in shims))
        subprocess.run(b.cli("rm", "-f", *ids), env=b.env, check=True, capture_output=True)
    finally:
        b.stop()
        scale.cleanup(work)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="directory of build A's binaries")
    ap.add_argument("--b", required=True, help="directory of build B's binaries")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--memory", type=int, default=0, help="also start N containers per round")
    ap.add_argument("--running", type=int, default=0, help="N more containers running while timing")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("skipped: requires root")
        return
    builds = {"A": os.path.abspath(a.a), "B": os.path.abspath(a.b)}
    res = {k: {} for k in builds}
    base = tempfile.mkdtemp(prefix="berth-ab-")
    try:
        for r in range(a.rounds):
            for k in (("A", "B") if r % 2 == 0 else ("B", "A")):
                work = os.path.join(base, f"{k}{r}")
                os.makedirs(work)
                with open(os.path.join(work, "daemon.json"), "w") as f:
                    f.write("{}")
                one_round(builds[k], work, res[k], a.memory, a.running)
                subprocess.run(["rm", "-rf", work])
    finally:
        remove_bench_net(2)
        subprocess.run(["rm", "-rf", base])
    print(f"A = {builds['A']}\nB = {builds['B']}\n{a.rounds} rounds, {a.running + 1} containers running, "
          "medians (ms unless named)")
    print("| measure | A | B | B/A |\n|---|---|---|---|")
    for key in res["A"]:
        va, vb = statistics.median(res["A"][key]), statistics.median(res["B"][key])
        print(f"| {key} (n={len(res['A'][key])}) | {va:.2f} | {vb:.2f} | {vb / va:.2f} |")


if __name__ == "__main__":
    main()
