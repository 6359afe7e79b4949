#!/usr/bin/env python3
"""Slow clients against the proxy while normal clients are served: 2,000 connections that
send a request head one byte every 10 s and 500 that send a body that way, for 30 s, with
ringload driving normal traffic at the same time. Same placement as bench/run.py (proxy on
its cores, generator, attackers and backends on the others).

    python3 bench/slowclients.py [--systems ringproxy,apache] [--duration 30]

Reports per system:
- the normal clients' rate under attack as a fraction of their rate without it (goal for
  ringproxy: >= 0.97);
- how many slow connections the proxy closed (by its timeouts) before the attack ended;
- the most member (backend) connections open at once during the attack, beside the same
  number without it (a slow client must never hold one).

Build first (`cargo build --release -p ringproxy -p loadgen`). Writes
bench/results/DATE-slow-clients.json.
"""

import argparse
import asyncio
import datetime
import json
import os
import resource
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: process placement, backends, measurements)

HEAD = b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: "
BODY = b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: 100000\r\n\r\n"


async def slow_client(port, first, interval, stop_at, stats):
    """One slow client: `first`, then a byte every `interval` s until the proxy answers or
    closes, or the attack ends."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats["connect_failed"] += 1
        return
    stats["opened"] += 1
    try:
        writer.write(first)
        await writer.drain()
        while time.monotonic() < stop_at:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=interval)
            except asyncio.TimeoutError:
                writer.write(b"a")
                await writer.drain()
                continue
            # An answer (a 408) or the end of the connection: the proxy let go of it.
            stats["closed_by_proxy"] += 1
            if data.startswith(b"HTTP/1.1 408"):
                stats["answered_408"] += 1
            return
        stats["still_open"] += 1
    except (ConnectionError, OSError):
        stats["closed_by_proxy"] += 1
    finally:
        writer.close()


def attack(port, heads, bodies, seconds, interval, stats):
    async def main():
        stop_at = time.monotonic() + seconds
        tasks = [slow_client(port, HEAD, interval, stop_at, stats) for _ in range(heads)]
        tasks += [slow_client(port, BODY, interval, stop_at, stats) for _ in range(bodies)]
        await asyncio.gather(*tasks)

    started = time.thread_time()
    asyncio.run(main())
    # The attackers run on the generator's core: their own CPU is reported beside the
    # result, since it takes from what ringload and the backends have there.
    stats["attacker_cpu_s"] = time.thread_time() - started


def member_connections(ports):
    """Established TCP connections to the backends (the proxy's member connections)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established"], capture_output=True, text=True
    ).stdout
    wanted = {f"127.0.0.1:{p}" for p in ports}
    return sum(1 for line in out.splitlines() if line.split()[3:4] and line.split()[3] in wanted)


class Sampler:
    """Samples the member connections every second; keeps the largest count."""

    def __init__(self, ports):
        self.ports = ports
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            self.most = max(self.most, member_connections(self.ports))
            self.stop.wait(1.0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", default="ringproxy")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--heads", type=int, default=2000)
    ap.add_argument("--bodies", type=int, default=500)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    run.add_placement_args(ap)
    ap.add_argument(
        "--out",
        default=os.path.join(run.ROOT, "bench", "results", f"{datetime.date.today()}-slow-clients.json"),
    )
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    b = run.Bench(args)
    # The attackers share the generator's cores, as ringload does.
    os.sched_setaffinity(0, b.place.gen)
    results = {}
    try:
        b.start_backends()
        for system in args.systems.split(","):
            p, port = b.start(system)
            try:
                rate = lambda r: r["requests"] / args.duration  # noqa: E731

                def phase(load, attacked):
                    """One measurement, with or without the slow clients."""
                    stats = dict.fromkeys(
                        ["opened", "connect_failed", "closed_by_proxy", "answered_408", "still_open"], 0
                    )
                    t = None
                    if attacked:
                        t = threading.Thread(
                            target=attack,
                            args=(port, args.heads, args.bodies, args.duration + 2, args.interval, stats),
                        )
                        t.start()
                        time.sleep(1.0)  # the slow connections are open before measuring
                    with Sampler(b.backends) as members:
                        try:
                            r = b.measured(p, port, load)
                        except RuntimeError as e:
                            # No request (or none well) answered: a proxy the attack took
                            # down entirely. Recorded as such, not as a failed benchmark.
                            print(f"{system}: {e}", flush=True)
                            r = {"requests": 0, "latency_us": {"p99": None}, "cpu_s": 0.0, "error": str(e)}
                    if t:
                        t.join()
                    return r, stats, members.most

                closed = ["-c", str(args.connections), "-d", f"{args.duration}s"]
                base, _, quiet_most = phase(closed, False)
                under, stats, busy_most = phase(closed, True)
                # A site under attack is rarely at capacity: the same at half of it, open
                # loop, shows what the slow clients take from normal ones there.
                fixed = int(rate(base) / 2)
                open_loop = closed + ["--rate", str(fixed), "--max-connections", "512"]
                base_o, _, _ = phase(open_loop, False)
                under_o, stats_o, busy_o = phase(open_loop, True)
                # The attack alone: member connections it makes the proxy open (normal
                # traffic above opens its own, which says nothing about slow clients).
                before_alone = member_connections(b.backends)
                stats_a = dict.fromkeys(
                    ["opened", "connect_failed", "closed_by_proxy", "answered_408", "still_open"], 0
                )
                with Sampler(b.backends) as alone:
                    attack(port, args.heads, args.bodies, args.duration, args.interval, stats_a)
                row = {
                    "member_connections_before_attack_alone": before_alone,
                    "member_connections_most_attack_alone": alone.most,
                    "slow_alone": stats_a,
                    "normal_req_per_s": rate(base),
                    "under_attack_req_per_s": rate(under),
                    "ratio": rate(under) / max(rate(base), 1e-9),
                    "fixed_rate": fixed,
                    "fixed_rate_achieved_without": rate(base_o),
                    "fixed_rate_achieved_with": rate(under_o),
                    "fixed_rate_ratio": rate(under_o) / max(rate(base_o), 1e-9),
                    "fixed_rate_p99_us_without": base_o["latency_us"]["p99"],
                    "fixed_rate_p99_us_with": under_o["latency_us"]["p99"],
                    "slow_connections": args.heads + args.bodies,
                    "slow": stats,
                    "slow_at_fixed_rate": stats_o,
                    "member_connections_most_without": quiet_most,
                    "member_connections_most_with": max(busy_most, busy_o),
                    "p99_us_without": base["latency_us"]["p99"],
                    "p99_us_with": under["latency_us"]["p99"],
                    "proxy_cpu_us_per_req_without": base["cpu_s"] * 1e6 / max(base["requests"], 1),
                    "proxy_cpu_us_per_req_with": under["cpu_s"] * 1e6 / max(under["requests"], 1),
                }
                results[system] = row
                print(
                    f"{system:10} saturated: {row['ratio']:.3f} of normal "
                    f"({row['under_attack_req_per_s']:.0f} vs {row['normal_req_per_s']:.0f} req/s, "
                    f"proxy {row['proxy_cpu_us_per_req_with']:.2f} vs {row['proxy_cpu_us_per_req_without']:.2f} µs/req); "
                    f"at {fixed} req/s: {row['fixed_rate_ratio']:.3f} of normal, p99 "
                    f"{row['fixed_rate_p99_us_with']} vs {row['fixed_rate_p99_us_without']} µs; "
                    f"slow closed by the proxy {stats['closed_by_proxy'] + stats_o['closed_by_proxy']}"
                    f"/{stats['opened'] + stats_o['opened']} "
                    f"(408: {stats['answered_408'] + stats_o['answered_408']}, "
                    f"still open at the end: {stats['still_open'] + stats_o['still_open']}); "
                    f"member connections: attack alone at most {alone.most} (before it {before_alone}), "
                    f"with normal load at most {row['member_connections_most_with']} "
                    f"(without attack {quiet_most}); attackers' CPU {stats.get('attacker_cpu_s', 0):.1f} s",
                    flush=True,
                )
            finally:
                b.stop(p)
    finally:
        b.cleanup()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "date": str(datetime.date.today()),
                "placement": b.place.describe(),
                "duration_s": args.duration,
                "interval_s": args.interval,
                "results": results,
            },
            f,
            indent=2,
        )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
