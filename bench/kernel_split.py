#!/usr/bin/env python3
"""Where each proxy's CPU per request goes, by stage: `perf record -g` on the proxy's
processes at saturation, every sample put in one bucket by its call chain, and the buckets
scaled to the proxy's CPU µs per request (`/proc/PID/stat`) measured over the same run.

The buckets separate what a proxy controls (its user space, and how it waits for events and
enters the kernel) from what every proxy pays for the same four TCP segments per request.
On loopback the sender's core also runs the receiver's TCP input (softirq) and its wake-up
callbacks, so a proxy's sends carry its peers' receive work; `peer receive (loopback)`
shows how much.

    bench/kernel_split.py [--systems ringproxy,nginx,haproxy] [--reps 2] [--duration 6]

Needs perf (apt-get install linux-perf) and the benchmark's peers; same placement as
bench/run.sh (proxy on core 0, ringload and the two nginx backends on core 1). Each system is
measured twice per repetition: unobserved for the total, then under perf for the shares.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (the benchmark's helpers: backends, peer configs, ringload)

# Ordered: the first bucket whose rule matches a sample's call chain takes it. Receive work
# done for a peer is checked before the send that triggered it, and the send before the
# io_uring or system-call frames that issued it.
PEER_RECEIVE = "peer receive (loopback)"
FREE_SENT = "freeing sent buffers"
SEND = "own send (TCP/IP transmit)"
RECEIVE = "own receive (copy out)"
EVENTS = "events, system calls, scheduling"
OTHER = "other kernel"
USER = "user space"
BUCKETS = [USER, SEND, PEER_RECEIVE, FREE_SENT, RECEIVE, EVENTS, OTHER]

# Freeing the socket buffers this core allocated for its sends, handed back by the core
# that received them (skb_attempt_defer_free); a NIC's transmit completion frees them too.
FREE_SENT_FRAMES = {"skb_defer_free_flush"}
PEER_RECEIVE_FRAMES = {"net_rx_action", "process_backlog", "__netif_receive_skb",
                       "__netif_receive_skb_core", "ip_rcv", "tcp_v4_rcv", "tcp_v6_rcv"}
SEND_FRAMES = {"tcp_sendmsg", "tcp_sendmsg_locked", "tcp_sendpage", "splice_to_socket",
               "tcp_push", "__tcp_push_pending_frames", "tcp_write_xmit"}
RECEIVE_FRAMES = {"tcp_recvmsg", "tcp_recvmsg_locked", "tcp_splice_read", "tcp_read_sock",
                  "inet_recvmsg", "inet6_recvmsg", "sock_recvmsg"}
EVENT_PREFIXES = ("io_", "__io_", "ep_", "do_epoll", "__x64_sys_epoll", "__schedule",
                  "schedule", "do_syscall_64", "entry_SYSCALL", "syscall_exit", "tctx_task_work",
                  "__x64_sys_io_uring", "futex", "do_futex")

# Kernel text on x86-64 sits in the top half of the address space.
KERNEL_START = 0x8000_0000_0000_0000


def bucket(leaf_ip, frames):
    """The bucket of one sample: `leaf_ip` where it was taken, `frames` its call chain's
    function names from the leaf outwards."""
    if leaf_ip < KERNEL_START:
        return USER
    names = set(frames)
    if names & FREE_SENT_FRAMES:
        return FREE_SENT
    if names & PEER_RECEIVE_FRAMES:
        return PEER_RECEIVE
    if names & SEND_FRAMES:
        return SEND
    if names & RECEIVE_FRAMES:
        return RECEIVE
    if any(f.startswith(EVENT_PREFIXES) for f in frames):
        return EVENTS
    return OTHER


def parse_script(text, pids):
    """Samples of processes `pids` from `perf script -F pid,ip,sym`: a list of
    (leaf ip, [function names])."""
    samples = []
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        try:
            pid = int(lines[0].strip())
        except ValueError:
            continue
        if pid not in pids:
            continue
        chain = [ln.split(None, 1) for ln in lines[1:] if ln.strip()]
        if not chain:
            continue
        try:
            ip = int(chain[0][0], 16)
        except ValueError:
            continue
        frames = [(ln[1] if len(ln) > 1 else "").split("+")[0].strip() for ln in chain]
        samples.append((ip, frames))
    return samples


def shares(samples):
    counts = collections.Counter(bucket(ip, frames) for ip, frames in samples)
    total = sum(counts.values()) or 1
    return {b: counts[b] / total for b in BUCKETS}


def profile(bench, system, duration, out):
    """Saturates `system` twice for `duration` s: once unobserved, for its CPU µs per
    request, then while perf samples its core, for the bucket shares. Returns both."""
    p, port = bench.start(system)
    try:
        # perf's sampling costs some proxies more than others (nginx about 5 %, ringproxy
        # about 1 % here), so the total comes from the unobserved run.
        r = bench.measured(p, port, ["-c", "64", "-d", f"{duration}s"])
        pids = set(run.tree(p.pid))
        # Sampling the proxy's core rather than its processes: per-process sampling costs
        # something at every context switch, which would charge a proxy that blocks often
        # (one epoll_wait per loop) more than one that rarely does.
        perf = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", out,
             "-C", run.cpu_list(bench.place.proxy)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            bench.ringload(port, ["-c", "64", "-d", f"{duration}s"])
        finally:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
    finally:
        bench.stop(p)
    text = subprocess.run(["perf", "script", "-i", out, "-F", "pid,ip,sym"],
                          capture_output=True, text=True, check=True).stdout
    return r["cpu_s"] * 1e6 / r["requests"], shares(parse_script(text, pids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", default="ringproxy,nginx,haproxy")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--out", help="where the JSON goes (default bench/results/DATE-kernel-split.json)")
    args = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is missing: apt-get install linux-perf")
    systems = args.systems.split(",")
    bench = run.Bench(None, run.Placement("0", "1"))
    per_req = {s: [] for s in systems}
    split = {s: collections.defaultdict(list) for s in systems}
    try:
        bench.start_backends()
        for rep in range(args.reps):
            for system in systems:
                us, sh = profile(bench, system, args.duration,
                                 os.path.join(bench.tmp, f"perf-{system}.data"))
                per_req[system].append(us)
                for b in BUCKETS:
                    split[system][b].append(sh[b] * us)
                print(f"rep {rep + 1}/{args.reps} {system}: {us:.2f} µs/request", flush=True)
    finally:
        bench.cleanup()

    print("\n| µs per request | " + " | ".join(systems) + " |")
    print("|---|" + "---|" * len(systems))
    print("| total (`/proc/PID/stat`) | "
          + " | ".join(f"{run.median(per_req[s]):.2f}" for s in systems) + " |")
    for b in BUCKETS:
        print(f"| {b} | " + " | ".join(f"{run.median(split[s][b]):.2f}" for s in systems) + " |")
    controlled = [USER, EVENTS]
    out = run.results_path(args.out, f"{datetime.date.today()}-kernel-split.json")
    with open(out, "w") as f:
        json.dump({
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "model": run.cpu_model()},
            "placement": bench.place.describe(), "reps": args.reps, "duration_s": args.duration,
            "us_per_request": per_req,
            "us_per_request_by_bucket": {s: dict(split[s]) for s in systems},
        }, f, indent=2)
    print("| what the proxy controls (user space + events) | "
          + " | ".join(f"{sum(run.median(split[s][b]) for b in controlled):.2f}" for s in systems)
          + " |")
    print(f"\nraw data: {os.path.relpath(out, run.ROOT)}")


if __name__ == "__main__":
    main()
