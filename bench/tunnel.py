#!/usr/bin/env python3
"""CPU per MB of a WebSocket tunnel through ringproxy: spliced (the default) against copied
through user space (`SpliceThreshold 0`), interleaved, in the same run.

The proxy runs one worker pinned to --proxy-cpu; this script (client and a sink member that
answers the upgrade and discards what follows) runs on --gen-cpu. Reported: MB/s and the
proxy's utime+stime per MB from /proc/PID/stat. Only 127.0.0.1 is used.

    bench/tunnel.py [--bin target/release/ringproxy] [--mib 2048] [--reps 3]
"""
import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time


def sink_member():
    """Answers an upgrade with 101, then reads and discards until EOF."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def one(s):
        head = b""
        while b"\r\n\r\n" not in head:
            data = s.recv(4096)
            if not data:
                return
            head += data
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\n\r\n")
        view = memoryview(bytearray(1 << 20))
        while s.recv_into(view):
            pass
        s.close()

    def accept():
        while True:
            s, _ = listener.accept()
            threading.Thread(target=one, args=(s,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def measure(args, member_port, extra, workdir):
    port = free_port()
    cfg = os.path.join(workdir, "tunnel.conf")
    with open(cfg, "w") as f:
        f.write(f"Listen 127.0.0.1:{port}\nLogLevel warn\n{extra}"
                f"ProxyPass /ws http://127.0.0.1:{member_port}/ws upgrade=websocket\n")
    proxy = subprocess.Popen(["taskset", "-c", str(args.proxy_cpu), args.bin, "-f", cfg,
                              "--workers", "1"], stderr=subprocess.DEVNULL)
    try:
        s = connect(port, time.monotonic() + 10)
        s.settimeout(30)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        total = args.mib << 20
        chunk = memoryview(bytes(1 << 20))
        cpu0, t0 = proc_cpu(proxy.pid), time.monotonic()
        for _ in range(args.mib):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # EOF once the member has read everything and closed
        took, cpu = time.monotonic() - t0, proc_cpu(proxy.pid) - cpu0
        s.close()
        mb = total / 1e6
        return mb / took, cpu * 1000 / mb
    finally:
        proxy.terminate()
        proxy.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/ringproxy")
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.gen_cpu})
    member = sink_member()
    modes = [("spliced", ""), ("copied", "SpliceThreshold 0\n")]
    runs = {name: [] for name, _ in modes}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.reps):
            for name, extra in modes:
                runs[name].append(measure(args, member, extra, workdir))
    print("| tunnel | MB/s (median) | proxy CPU ms/MB (median) |")
    print("|---|---|---|")
    for name, values in runs.items():
        rates = sorted(v[0] for v in values)
        cpus = sorted(v[1] for v in values)
        print(f"| {name} | {rates[len(rates) // 2]:,.0f} | {cpus[len(cpus) // 2]:.3f} |")


if __name__ == "__main__":
    main()
