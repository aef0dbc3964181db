#!/usr/bin/env python3
"""Side by side with dockerd: the same shell commands, run with the real docker CLI against a
private dockerd and then against a private berthd, outputs compared.

    python3 scripts/sidebyside.py scripts/sidebyside/events.txt            # both daemons
    python3 scripts/sidebyside.py scripts/sidebyside/events.txt berth      # berth again only

Each non-empty line of the command file (`#` starts a comment) is one `bash -c` command, run in
order with `docker` pointed at the daemon under test (a busybox image, imported as
`busybox:latest`, is there first). For every command whose exit code, stdout or stderr differ
(IDs, short IDs and the engines' names normalised), both sides are printed. Results are kept in
/tmp/sbs-docker.json and /tmp/sbs-berth.json, so a second run can redo one side only.

A developer tool, not a test: run as root, with Debian's docker.io installed (its dockerd is
started by bench/registry.Docker with no bridge and no iptables, and stopped after) and a release
build of berth (target/release). The berthd uses bench/scale.Berth's bridge `bbench2`: run one
at a time. Fixtures some command files use (/tmp/cpsrc, /tmp/vctx, /tmp/exenv, /tmp/bctx/*) are made here.
Found differences are either fixed or listed in docs/compat.md.
"""
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench import busybox_tar  # noqa: E402
from registry import Docker  # noqa: E402
from scale import Berth  # noqa: E402


def fixtures():
    os.makedirs("/tmp/cpsrc/sub", exist_ok=True)
    with open("/tmp/cpsrc/f1", "w") as f:
        f.write("f1\n")
    with open("/tmp/cpsrc/sub/s", "w") as f:
        f.write("s\n")
    if not os.path.lexists("/tmp/cpsrc/lnk"):
        os.symlink("f1", "/tmp/cpsrc/lnk")
    os.makedirs("/tmp/vctx", exist_ok=True)
    with open("/tmp/vctx/Dockerfile", "w") as f:
        f.write("FROM busybox\nRUN mkdir -p /data && echo seeded > /data/f && chown 33:33 /data\nVOLUME /data\n")
    with open("/tmp/exenv", "w") as f:
        f.write("EX1=a\n# c\nEX2\n")
    for name, dockerfile in (
        ("ok", "FROM busybox\nARG A=1\nENV E=$A\nRUN echo built $E > /b\nCOPY f /f\nWORKDIR /w\nCMD [\"cat\", \"/b\"]\n"),
        ("fail", "FROM busybox\nRUN echo before\nRUN exit 3\n"),
        ("unknown", "FROM busybox\nNOSUCH x\n"),
        ("nocopy", "FROM busybox\nCOPY missing /m\n"),
        ("nofrom", "RUN true\n"),
        ("stages", "FROM busybox AS one\nRUN echo 1 > /1\nFROM busybox AS two\nCOPY --from=one /1 /1\n"),
    ):
        os.makedirs(f"/tmp/bctx/{name}", exist_ok=True)
        with open(f"/tmp/bctx/{name}/Dockerfile", "w") as f:
            f.write(dockerfile)
        with open(f"/tmp/bctx/{name}/f", "w") as f:
            f.write("file\n")


def norm(s):
    s = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "<TS>", s)
    s = re.sub(r"line (\d+): +\d+ (Killed|Terminated)", r"line \1: <PID> \2", s)
    s = re.sub(r"[0-9a-f]{64}", "<ID>", s)
    s = re.sub(r"[0-9a-f]{12}", "<SID>", s)
    return s.replace("berth", "<E>").replace("docker", "<E>").strip()


def run_all(cmds, env):
    out = []
    for c in cmds:
        try:
            r = subprocess.run(["bash", "-c", c], env=env, capture_output=True, text=True, timeout=60)
            out.append((c, r.returncode, norm(r.stdout), norm(r.stderr)))
        except subprocess.TimeoutExpired:
            out.append((c, "TIMEOUT", "", ""))
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmds = [line for line in open(sys.argv[1]).read().split("\n") if line.strip() and not line.startswith("#")]
    which = sys.argv[2:] or ["docker", "berth"]
    fixtures()
    work = "/tmp/sbs"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    tar = busybox_tar(work)
    if "docker" in which:
        dk = Docker(work)
        dk.start()
        env = dict(dk.env, SBS_BUSYBOX_TAR=tar)
        try:
            subprocess.run(["docker", "import", tar, "busybox:latest"], env=env, capture_output=True, check=True)
            json.dump(run_all(cmds, env), open("/tmp/sbs-docker.json", "w"))
        finally:
            subprocess.run("docker rm -f $(docker ps -aq) >/dev/null 2>&1", shell=True, env=env)
            dk.stop()
    if "berth" in which:
        b = Berth(work, os.path.join(ROOT, "target/release"))
        b.start()
        env = dict(b.env, DOCKER_HOST=b.env["BERTH_HOST"], SBS_BUSYBOX_TAR=tar)
        try:
            subprocess.run(["docker", "import", tar, "busybox:latest"], env=env, capture_output=True, check=True)
            json.dump(run_all(cmds, env), open("/tmp/sbs-berth.json", "w"))
        finally:
            subprocess.run("docker rm -f $(docker ps -aq) >/dev/null 2>&1; docker network prune -f >/dev/null",
                           shell=True, env=env)
            b.stop()
            subprocess.run("ip link del bbench2 2>/dev/null; nft delete table ip bbench2 2>/dev/null", shell=True)
    shutil.rmtree(work, ignore_errors=True)
    d = json.load(open("/tmp/sbs-docker.json"))
    bb = json.load(open("/tmp/sbs-berth.json"))
    differ = 0
    for (c, rc1, o1, e1), (_, rc2, o2, e2) in zip(d, bb):
        if (rc1, o1, e1) != (rc2, o2, e2):
            differ += 1
            print(f"## {c}\n  dockerd: rc={rc1} out={o1[:600]!r} err={e1[:400]!r}\n"
                  f"  berthd : rc={rc2} out={o2[:600]!r} err={e2[:400]!r}")
    print(f"{len(d) - differ} of {len(d)} commands alike")


if __name__ == "__main__":
    main()
