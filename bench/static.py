#!/usr/bin/env python3
"""Static files: a 1 MiB file served from disk by ringproxy (DocumentRoot/Alias beside its
ProxyPass, sendfile), nginx (`alias`, sendfile on) and Apache 2.4 (event MPM, mod_alias,
EnableSendfile On), in one interleaved run with bench/run.py's placement: the server on
--proxy-cpus, ringload on --gen-cpus. The file is in the page cache (read once before).

Measured per system, medians of --reps: MB/s, and the server's CPU µs per MB
(utime+stime from /proc/PID/stat) over --conns keep-alive connections. Only 127.0.0.1.

    bench/static.py [--reps 3] [--duration 5] [--conns 16] [--systems ringproxy,nginx,apache]
"""

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the side-by-side benchmark's placement and helpers)

SYSTEMS = ["ringproxy", "nginx", "apache"]
PATH = "/static/1m.bin"
MB = 1 << 20


class StaticBench(run.Bench):
    """bench/run.py's servers, each also serving {TMP}/static under /static."""

    def __init__(self, args):
        super().__init__(args)
        static = os.path.join(self.tmp, "static")
        os.makedirs(static)
        os.chmod(static, 0o755)
        shutil.copy(os.path.join(self.tmp, "1m.bin"), os.path.join(static, "1m.bin"))
        os.chmod(os.path.join(static, "1m.bin"), 0o644)
        with open(os.path.join(static, "1m.bin"), "rb") as f:
            f.read()

    def _fill(self, template, **kw):
        text = self._orig_fill(template, **kw)
        static = os.path.join(self.tmp, "static")
        if template == "ringproxy.conf":
            text = text.replace(
                "ProxyPass / balancer://bench/",
                f"Alias /static {static}\n<Directory {static}>\n  Require all granted\n</Directory>\n"
                "ProxyPass /static !\nProxyPass / balancer://bench/")
        elif template == "nginx.conf":
            text = text.replace(
                "    location / {",
                f"    location /static/ {{ alias {static}/; sendfile on; tcp_nopush on; }}\n    location / {{", 1)
        elif template == "apache.conf":
            text = text.replace(
                "LoadModule proxy_module",
                "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
                "LoadModule proxy_module")
            text = text.replace(
                "ProxyPass / balancer://bench/",
                f"EnableSendfile On\nAlias /static {static}\n<Directory {static}>\n  Require all granted\n</Directory>\n"
                "ProxyPass /static !\nProxyPass / balancer://bench/")
        return text

    def start(self, system):
        self._orig_fill = run.fill
        run.fill = self._fill
        try:
            return super().start(system)
        finally:
            run.fill = self._orig_fill


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=16)
    args, systems, b, results = run.comparison_setup(ap, SYSTEMS, StaticBench)
    d = f"{args.duration}s"
    try:
        b.start_backends()
        for rep in range(args.reps):
            for system in systems:
                p, port = b.start(system)
                try:
                    r = b.measured(p, port, ["-c", str(args.conns), "-d", d], path=PATH)
                    mb = r["requests"]  # one MiB each
                    results.add(system, "MB_per_s", r["rps"])
                    results.add(system, "cpu_us_per_MB", r["cpu_s"] * 1e6 / mb)
                    results.add(system, "user_us_per_MB", r["cpu_user_s"] * 1e6 / mb)
                finally:
                    b.stop(p)
                print(f"rep {rep + 1}/{args.reps} {system}: {results[system]['MB_per_s'][-1]:.0f} MB/s, "
                      f"{results[system]['cpu_us_per_MB'][-1]:.0f} µs CPU per MB", flush=True)
    finally:
        b.cleanup()
    path = run.results_path(args.out, f"static-{time.strftime('%Y-%m-%d')}.json")
    meta = {"placement": b.place.describe(), "reps": args.reps, "duration_s": args.duration,
            "conns": args.conns, "file": "1 MiB, in the page cache"}
    run.ratio_report(results, systems, lambda k: "us" in k, meta, path)


if __name__ == "__main__":
    main()
