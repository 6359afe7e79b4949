#!/usr/bin/env python3
"""Latency and CPU with and without busy polling, same run, same placement: ringproxy
(default, `BusyPolling 100us`, `BusyPolling 5ms`, `BusyPolling On`), nginx, HAProxy and HAProxy with its
`busy-polling`. Open-loop fixed rates plus saturation; medians of interleaved repetitions.

    python3 bench/busypolling.py [--rates 2000,11603,0] [--reps 3]

A rate of 0 means closed loop (saturation). Build first (`bench/run.sh` does, or
`cargo build --release -p ringproxy -p loadgen`). Writes bench/results/DATE-busy-polling.json.
"""

import argparse
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: process placement, backends, measurements)

# (label, ringproxy directives, HAProxy busy-polling, system)
VARIANTS = [
    ("ringproxy", "", False, "ringproxy"),
    ("ringproxy BusyPolling 100us", "BusyPolling 100us", False, "ringproxy"),
    ("ringproxy BusyPolling 5ms", "BusyPolling 5ms", False, "ringproxy"),
    ("ringproxy BusyPolling On", "BusyPolling On", False, "ringproxy"),
    ("nginx", "", False, "nginx"),
    ("haproxy", "", False, "haproxy"),
    ("haproxy busy-polling", "", True, "haproxy"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="2000,11603,0")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6.0)
    run.add_placement_args(ap)
    ap.add_argument("--out", default=os.path.join(run.ROOT, "bench", "results", f"{datetime.date.today()}-busy-polling.json"))
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    plain_fill = run.fill

    def fill(template, **kw):
        text = plain_fill(template, **kw)
        if template == "haproxy.cfg" and os.environ.get("BENCH_HAPROXY_BUSY"):
            text = text.replace("global\n", "global\n  busy-polling\n", 1)
        return text

    run.fill = fill
    b = run.Bench(args)
    runs = {}
    try:
        b.start_backends()
        for _ in range(args.reps):
            for label, extra, haproxy_busy, system in VARIANTS:
                os.environ["BENCH_RINGPROXY_EXTRA"] = extra
                os.environ.pop("BENCH_HAPROXY_BUSY", None)
                if haproxy_busy:
                    os.environ["BENCH_HAPROXY_BUSY"] = "1"
                p, port = b.start(system)
                try:
                    for rate in rates:
                        c = b.place.scaled
                        load = ["-c", str(c(64)), "-d", f"{args.duration}s"]
                        if rate:
                            load += ["--max-connections", str(c(512)), "--rate", str(rate)]
                        r = b.measured(p, port, load)
                        lat = r["latency_us"]
                        row = {
                            "p50_us": lat["p50"],
                            "p99_us": lat["p99"],
                            "p999_us": lat["p999"],
                            "req_per_s": r["requests"] / args.duration,
                            "cpu_us_per_req": r["cpu_s"] * 1e6 / max(r["requests"], 1),
                            "cores_busy": r["cpu_s"] / args.duration,
                        }
                        key = f"{label} @ {rate or 'saturation'}"
                        runs.setdefault(key, []).append(row)
                        print(key, {k: round(v, 2) for k, v in row.items()}, flush=True)
                finally:
                    b.stop(p)
    finally:
        b.cleanup()
    median = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in runs.items()}
    with open(args.out, "w") as f:
        json.dump({"date": str(datetime.date.today()), "placement": b.place.describe(),
                   "median": median, "runs": runs}, f, indent=1)
    print("\n| system @ rate | p50 µs | p99 µs | p99.9 µs | req/s | CPU µs/req | cores busy |")
    print("|---|---|---|---|---|---|---|")
    for k, v in median.items():
        print(f"| {k} | {v['p50_us']:.0f} | {v['p99_us']:.0f} | {v['p999_us']:.0f} | {v['req_per_s']:,.0f} | {v['cpu_us_per_req']:.2f} | {v['cores_busy']:.2f} |")


if __name__ == "__main__":
    main()
