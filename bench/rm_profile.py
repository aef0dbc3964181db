#!/usr/bin/env python3
# usage (root, from the repository, after `cargo build --release`): python3 bench/rm_profile.py N [perf|strace]
# grows N containers (sequential `run -d --network none`) on a private berthd, times `ps -a` and
# `rm -f` of all (perf record -g / strace -c -f on berthd during the rm), RSS after.
import os, sys, subprocess, time, tempfile, shutil, concurrent.futures as cf
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale
N = int(sys.argv[1]); mode = sys.argv[2] if len(sys.argv) > 2 else ""
bins = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target/release")
out = "/tmp"
work = tempfile.mkdtemp(prefix="berth-scale-")
try:
    tar = scale.busybox_tar(work)
    b = scale.Berth(work, bins); b.start()
    with open(tar, "rb") as f:
        subprocess.run(b.cli("import", "-", "busybox:latest"), stdin=f, env=b.env, check=True, capture_output=True)
    def one(i):
        t = time.perf_counter()
        r = subprocess.run(b.cli(*scale.RUN_D, "busybox", "sleep", "3600"), env=b.env, capture_output=True, text=True, check=True)
        return r.stdout.strip(), time.perf_counter() - t
    ids = []; per = []
    t0 = time.perf_counter()
    for i in range(N):
        x, d = one(i); ids.append(x); per.append(d)
    print("per100:", " ".join(f"{sum(per[i:i+100]):.2f}" for i in range(0, N, 100)))
    print(f"run -d x{N}: {time.perf_counter()-t0:.2f}s first100 {sum(per[:100]):.2f}s last100 {sum(per[-100:]):.2f}s rss {b.rss_mb():.1f}MB", flush=True)
    for _ in range(3):
        t = time.perf_counter(); subprocess.run(b.cli("ps", "-a"), env=b.env, capture_output=True, check=True); print(f"ps -a {1000*(time.perf_counter()-t):.1f} ms")
    pid = b.proc.pid
    perf = None
    if mode == "perf":
        perf = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-p", str(pid), "-o", out + "/berth-rm-perf.data"], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    if mode == "strace":
        perf = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out + "/berth-rm-strace.txt"])
        time.sleep(0.5)
    t = time.perf_counter()
    subprocess.run(b.cli("rm", "-f", *ids), env=b.env, check=True, capture_output=True)
    rm = time.perf_counter() - t
    if perf:
        perf.send_signal(2); perf.wait()
    time.sleep(1.5)
    print(f"rm -f of {N}: {rm:.2f}s = {1000*rm/N:.2f} ms each; rss after {b.rss_mb():.1f} MB", flush=True)
finally:
    try: b.stop()
    except Exception: pass
    time.sleep(1)
    scale.cleanup(work)
    shutil.rmtree(work, ignore_errors=True)
