//! Container output and logs: back-pressure to attached clients, `logs` (tail, follow, since)
//! across rotated files, and the json-file, local and none log drivers — through the berth CLI,
//! the docker CLI and docker-py.

/// A docker-py script that must print `ok`.
#[track_caller]
fn py_ok(d: &berth_e2e::Daemon, script: &str) {
    let r = d.python(script);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.out(), "ok", "stderr: {}", r.stderr);
}

/// Lines in the big-output test: each `%08d` + 991 spaces + newline, 1000 bytes: 100 MB, more
/// than 4096 of the shim's 16 KiB chunks (the old relay's broadcast buffer lost chunks past that).
const BIG_LINES: u32 = 100_000;

#[test]
fn slow_attached_client_gets_every_byte_in_order() {
    let d = daemon!();
    let script = format!(
        r#"
import docker, hashlib, struct, time
from docker.utils import socket as dsock
c = docker.from_env()
ct = c.containers.create("busybox", ["awk", 'BEGIN{{s=sprintf("%991s","");for(i=1;i<={BIG_LINES};i++)printf "%08d%s\\n", i, s}}'])
s = c.api.attach_socket(ct.id, params={{"stdout": 1, "stderr": 1, "stream": 1}})
ct.start()
# Read nothing for a while: the container must wait for us, not lose output.
time.sleep(6)
want = hashlib.sha256("".join("%08d%s\n" % (i, " " * 991) for i in range(1, {BIG_LINES} + 1)).encode()).hexdigest()
h = hashlib.sha256()
buf = b""
total = 0
while True:
    # Slow at first: small reads with pauses.
    chunk = dsock.read(s, 4096 if total < 2_000_000 else 65536)
    if not chunk:
        break
    if total < 2_000_000:
        time.sleep(0.001)
    buf += chunk
    while len(buf) >= 8:
        stream, size = struct.unpack(">BxxxL", buf[:8])
        if len(buf) < 8 + size:
            break
        assert stream == 1, stream
        h.update(buf[8:8 + size])
        total += size
        buf = buf[8 + size:]
assert buf == b"", len(buf)
assert total == {BIG_LINES} * 1000, total
assert h.hexdigest() == want, "attach output differs from what the container wrote"
assert ct.wait()["StatusCode"] == 0
ct.remove()
print("ok")
"#
    );
    py_ok(&d, &script);
}
