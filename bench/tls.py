#!/usr/bin/env python3
"""HTTPS at the front door: ringproxy, nginx, HAProxy and Apache (event MPM, mod_ssl)
terminating TLS with the same
certificate in front of the same two nginx backends (plain HTTP, keep-alive), in one
interleaved run with bench/run.py's placement (proxy on --proxy-cpus, ringload and the
backends on --gen-cpus; every peer one worker per proxy core, placement checked).

Measured per system and key type (RSA-2048, ECDSA P-256), medians of --reps:
  * full handshakes: ringload --new-connection (a new connection, full TLS 1.3 handshake
    and one small request each; no resumption): proxy CPU µs per handshake;
  * keep-alive HTTPS: 64 connections per proxy core, small responses: CPU µs per request;
  * 1 MiB downloads over keep-alive HTTPS: MB/s and CPU ms per MB;
  * idle TLS keep-alive connections: resident KiB per connection, 3 s after each of
    --idle connections made one request (python's ssl client, TLS 1.3).
Proxy CPU is utime+stime of the proxy's processes from /proc/PID/stat. Only 127.0.0.1.

    bench/tls.py [--reps 3] [--duration 5] [--systems ringproxy,nginx,haproxy,apache] [--idle 2000]
"""

import argparse
import os
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the side-by-side benchmark's placement and helpers)

SYSTEMS = ["ringproxy", "nginx", "haproxy", "apache"]
MODULES = "/usr/lib/apache2/modules"
KEYS = ["ecdsa", "rsa"]


def make_cert(tmp, kind):
    """A self-signed certificate for bench.test; returns (cert, key, combined PEM)."""
    key, crt, pem = (os.path.join(tmp, f"{kind}.{e}") for e in ("key", "crt", "pem"))
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", crt,
         "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test",
         "-addext", "basicConstraints=critical,CA:FALSE", "-days", "30"],
        check=True, capture_output=True)
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    for p in (key, crt, pem):
        os.chmod(p, 0o644)
    return crt, key, pem


class TlsBench(run.Bench):
    """bench/run.py's systems with TLS at their listener."""

    SCHEME = "https"
    LOAD_ARGS = ["--insecure", "--sni", "bench.test"]

    def __init__(self, args):
        super().__init__(args)
        self.certs = {k: make_cert(self.tmp, k) for k in KEYS}
        self.key = KEYS[0]

    def start(self, system):
        crt, key, pem = self.certs[self.key]
        orig = run.fill

        def tls_fill(template, **kw):
            text = orig(template, **kw)
            port = kw.get("PORT")
            if template == "ringproxy.conf":
                # Main-server TLS; the same tuning otherwise.
                text += f"SSLEngine on\nSSLCertificateFile {crt}\nSSLCertificateKeyFile {key}\n"
            elif template == "nginx.conf":
                text = text.replace(
                    f"listen 127.0.0.1:{port} backlog=4096;",
                    f"listen 127.0.0.1:{port} ssl backlog=4096;\n"
                    f"    ssl_certificate {crt};\n    ssl_certificate_key {key};\n"
                    "    ssl_protocols TLSv1.2 TLSv1.3;\n"
                    "    ssl_session_cache shared:SSL:10m;\n    ssl_session_tickets on;")
            elif template == "apache.conf":
                text += (
                    f"LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so\n"
                    f"LoadModule ssl_module {MODULES}/mod_ssl.so\n"
                    f"SSLEngine on\nSSLCertificateFile {crt}\nSSLCertificateKeyFile {key}\n"
                    "SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1\n"
                    f"SSLSessionCache shmcb:{kw['TMP']}/ssl_scache(512000)\n")
            elif template == "haproxy.cfg":
                text = text.replace(
                    f"bind 127.0.0.1:{port} backlog 4096",
                    f"bind 127.0.0.1:{port} backlog 4096 ssl crt {pem} alpn http/1.1")
            return text

        run.fill = tls_fill
        try:
            return super().start(system)
        finally:
            run.fill = orig

    def idle_tls_memory(self, p, port, n):
        """KiB per idle TLS keep-alive connection, 3 s after the last answer."""
        time.sleep(run.IDLE_SETTLE_S)
        base = run.rss_kib(run.tree(p.pid))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        socks = []
        try:
            run.open_answered(socks, port, n, "bench.test",
                              lambda s: ctx.wrap_socket(s, server_hostname="bench.test"))
            time.sleep(run.IDLE_SETTLE_S)
            return (run.rss_kib(run.tree(p.pid)) - base) / n
        finally:
            for s in socks:
                s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=2000)
    args, systems, b, results = run.comparison_setup(ap, SYSTEMS, TlsBench)
    c, d = b.place.scaled, f"{args.duration}s"
    add, cpu_us = results.add, run.cpu_us

    try:
        b.start_backends()
        for rep in range(args.reps):
            for kind in KEYS:
                b.key = kind
                for system in systems:
                    p, port = b.start(system)
                    try:
                        r = b.measured(p, port, ["--new-connection", "-c", str(c(16)), "-d", d])
                        add(system, f"handshake_{kind}_cpu_us", cpu_us(r))
                        add(system, f"handshake_{kind}_per_s", r["rps"])
                        if kind == KEYS[0]:
                            r = b.measured(p, port, ["-c", str(c(64)), "-d", d])
                            add(system, "keepalive_cpu_us_per_req", cpu_us(r))
                            add(system, "keepalive_rps", r["rps"])
                            r = b.measured(p, port, ["-c", str(c(8)), "-d", d], "/1m")
                            mb = r["requests"] * 1.048576
                            add(system, "down_MBps", mb / r["duration_s"])
                            add(system, "down_cpu_ms_per_MB", r["cpu_s"] * 1e3 / mb)
                            add(system, "idle_tls_KiB_per_conn", b.idle_tls_memory(p, port, args.idle))
                    finally:
                        b.stop(p)
                    print(f"rep {rep + 1}/{args.reps} {kind} {system}: "
                          f"{results[system][f'handshake_{kind}_cpu_us'][-1]:.0f} µs/handshake", flush=True)
    finally:
        b.cleanup()
    path = run.results_path(args.out, f"tls-{time.strftime('%Y-%m-%d')}.json")
    meta = {"placement": b.place.describe(), "reps": args.reps, "duration_s": args.duration,
            "idle_connections": args.idle}
    run.ratio_report(results, systems, lambda k: "cpu" in k or "KiB" in k, meta, path)


if __name__ == "__main__":
    main()
