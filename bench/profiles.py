#!/usr/bin/env python3
"""Runs the same capacity search against ringproxy under each tuning profile and prints a
comparison: max rate within the SLO, p99 at a fixed rate, CPU per request, resident memory.
Draws the max rates as an SVG chart with `ringload chart`. Called by bench/profiles.sh."""

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: process placement, backends, measurements)

PROFILES = ["apache-event-defaults", "low-latency", "high-throughput", "many-idle-connections", "memory-lean"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--slo", default="p99<5ms")
    ap.add_argument("--rate", type=float, default=20000, help="fixed rate for the p99 column")
    ap.add_argument("--searches", type=int, default=2, help="capacity searches per profile; the best counts")
    run.add_placement_args(ap)
    ap.add_argument("--out", default=os.path.join(run.ROOT, "bench", "results", f"{datetime.date.today()}-profiles.svg"))
    args = ap.parse_args()
    args.idle = 0
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    step = "1s" if args.quick else "4s"
    d = "2s" if args.quick else "5s"
    b = run.Bench(args)
    place, c = b.place, b.place.scaled
    gen = run.cpu_list(place.gen)
    rows = []
    try:
        b.start_backends()
        b1, b2 = b.backends
        for prof in PROFILES:
            port = run.free_port()
            conf = os.path.join(b.tmp, f"{prof}.conf")
            base = run.fill("ringproxy.conf", TMP=b.tmp, PORT=port, B1=b1, B2=b2, **place.proxy_vars())
            # The profile comes after the bench settings, so its knobs win.
            with open(conf, "w") as f:
                f.write(base + f"Include {os.path.join(run.ROOT, 'tuning', prof + '.conf')}\n")
            # --workers: a profile may set WorkerThreads; the placement decides here.
            p = b.spawn(place.proxy, [run.RINGPROXY, "-f", conf, "--workers", str(place.workers)])
            if not run.wait_port(port):
                sys.exit(f"ringproxy with {prof} did not start")
            try:
                r = b.measured(p, port, ["-c", str(c(64)), "-d", d])
                cpu = r["cpu_s"] * 1e6 / r["requests"]
                fixed = b.ringload(port, ["-c", str(c(64)), "--max-connections", str(c(512)), "-d", d,
                                          "--rate", str(args.rate)])
                # Best of several searches: a host stall can only add latency, so it can fail
                # a step the proxy would pass but never pass one it would fail. One search
                # that meets a stall stops low; the best of them is the capacity.
                found = []
                for _ in range(args.searches):
                    search = subprocess.run(
                        ["taskset", "-c", gen, run.RINGLOAD, "-t", str(len(place.gen)), "--cpus", gen,
                         "--json", "--slo", args.slo, "-c", str(c(64)), "--max-connections", str(c(512)),
                         "--step-duration", step, "--step-warmup", "500ms", "--start-rate", "10000",
                         "--precision", "0.05", "--max-steps", "10" if args.quick else "14",
                         f"http://127.0.0.1:{port}/"],
                        capture_output=True, text=True, timeout=900,
                    )
                    if search.stdout.strip():
                        rate = json.loads(search.stdout)["max_rate_within_slo"]
                        if rate is not None:
                            found.append(rate)
                best = max(found) if found else None
                rss = run.rss_kib(run.tree(p.pid))
                rows.append((prof, best, fixed["latency_us"]["p50"], fixed["latency_us"]["p99"], cpu, rss))
                print(f"{prof}: max {best} req/s within {args.slo} (searches: {found})", flush=True)
            finally:
                b.stop(p)
    finally:
        b.cleanup()
    print(f"\n| profile | max req/s within {args.slo} | p50 / p99 at {args.rate:,.0f} req/s (µs) | CPU µs/request at saturation | RSS KiB |")
    print("|---|---|---|---|---|")
    for prof, best, p50, p99, cpu, rss in rows:
        best_s = f"{best:,.0f}" if best else "none"
        print(f"| {prof} | {best_s} | {p50:,.0f} / {p99:,.0f} | {cpu:.2f} | {rss:,} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    bars = [f"{prof}={best or 0}" for prof, best, *_ in rows]
    subprocess.run([run.RINGLOAD, "chart", "--out", args.out, "--title",
                    f"max rate within {args.slo} by tuning profile", "--unit", "req/s"] + bars, check=True)
    print(f"\nchart: {os.path.relpath(args.out, run.ROOT)}")


if __name__ == "__main__":
    main()
