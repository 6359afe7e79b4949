#!/usr/bin/env python3
"""Heap allocations per proxied request in steady state, counted by heaptrack.

ringproxy runs under heaptrack with the benchmark's config (bench/peers/ringproxy.conf, two
nginx members), pinned to --proxy-cpu. ringload sends N small requests over 64 keep-alive
connections, then the proxy stops cleanly. Two runs (20,000 and 220,000 requests) are
subtracted, so start-up and warm-up allocations cancel out:

    bench/allocs.py            # needs heaptrack (apt-get install heaptrack) and nginx
"""
import os
import re
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (the benchmark's helpers: backends, config templates, ringload)


def count_allocations(bench, requests, out):
    port = run.free_port()
    conf = os.path.join(bench.tmp, "allocs.conf")
    with open(conf, "w") as f:
        f.write(run.fill("ringproxy.conf", TMP=bench.tmp, PORT=port,
                         B1=bench.backends[0], B2=bench.backends[1], **bench.place.proxy_vars()))
    for old in (out + ".zst", out + ".gz"):
        if os.path.exists(old):
            os.remove(old)
    tracer = subprocess.Popen(
        ["taskset", "-c", run.cpu_list(bench.place.proxy), "heaptrack", "-o", out, run.RINGPROXY,
         "-f", conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not run.wait_port(port, 30):
            sys.exit("ringproxy under heaptrack did not start")
        bench.ringload(port, ["-c", "64", "-n", str(requests)])
        # heaptrack's own process is the parent: stop only the traced proxy, cleanly.
        for pid in open(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read().split():
            if "ringproxy" in open(f"/proc/{pid}/comm").read():
                os.kill(int(pid), signal.SIGTERM)
        tracer.wait(timeout=60)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    text = subprocess.run(
        ["heaptrack_print", "-f", out + ".zst", "-p", "0", "-a", "0", "-T", "0", "-l", "0"],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"calls to allocation functions: (\d+)", text)
    if not m:
        sys.exit("heaptrack_print gave no allocation count")
    return int(m.group(1))


def main():
    if not shutil.which("heaptrack"):
        sys.exit("heaptrack is missing: apt-get install heaptrack")
    bench = run.Bench(None, run.Placement("0", "1"))
    small, large = 20_000, 220_000
    try:
        bench.start_backends()
        counts = {n: count_allocations(bench, n, os.path.join(bench.tmp, f"heaptrack-{n}"))
                  for n in (small, large)}
    finally:
        bench.cleanup()
    per_request = (counts[large] - counts[small]) / (large - small)
    print(f"allocations: {counts[small]:,} for {small:,} requests, "
          f"{counts[large]:,} for {large:,}")
    print(f"allocations per request (steady state): {per_request:.2f}")


if __name__ == "__main__":
    main()
