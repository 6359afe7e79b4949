#!/usr/bin/env python3
"""Quick interleaved A/B of two ringproxy builds on the small-response load: proxy CPU µs
per request (all, and user space), and saturated req/s, REPS times each, A B A B ...

    BENCH_RINGPROXY_B=/path/to/old/ringproxy python3 bench/ab.py --reps 8 [--tls]

--tls: the same over keep-alive HTTPS (bench/tls.py's set-up: TLS at the proxy, an ECDSA
P-256 certificate, plain HTTP to the backends).

Uses bench/run.py's placement (proxy on core 0, ringload and backends on core 1 by default;
--proxy-cpus/--gen-cpus as there). Each line is one 5 s measurement; medians last. This
host flips between two speeds for minutes at a time (about 12.3 and 16.5 µs per request for
the same binary), so compare pairs taken in the same mode, and the medians of many pairs.
"""

import argparse
import statistics
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    run.add_placement_args(ap)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--systems", default="ringproxy,ringproxy_b")
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--tls", action="store_true")
    args = ap.parse_args()
    if args.tls:
        import tls  # noqa: E402  (its set-up: certificates and TLS at every listener)

        b = tls.TlsBench(args)
    else:
        b = run.Bench(args)
    results = {}
    try:
        b.start_backends()
        for _ in range(args.reps):
            for system in args.systems.split(","):
                p, port = b.start(system)
                try:
                    r = b.measured(p, port, ["-c", str(b.place.scaled(64)), "-d", args.duration])
                finally:
                    b.stop(p)
                row = (r["rps"], r["cpu_s"] * 1e6 / r["requests"], r["cpu_user_s"] * 1e6 / r["requests"])
                results.setdefault(system, []).append(row)
                print(f"{system}: {row[0]:,.0f} req/s, {row[1]:.2f} µs/request, user {row[2]:.2f}", flush=True)
    finally:
        b.cleanup()
    for system, rows in results.items():
        med = [statistics.median(x[i] for x in rows) for i in range(3)]
        print(f"{system} median: {med[0]:,.0f} req/s, {med[1]:.2f} µs/request, user {med[2]:.2f}")


if __name__ == "__main__":
    main()
