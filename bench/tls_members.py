#!/usr/bin/env python3
"""TLS to members: ringproxy, nginx and HAProxy each re-encrypting to the same two nginx
members that speak HTTPS (keep-alive), in one interleaved run with bench/run.py's placement
(proxy on --proxy-cpus, ringload and the members on --gen-cpus; every peer one worker per
proxy core, placement checked). Clients speak plain HTTP to the proxy.

Every proxy verifies the members' certificate (a self-signed one made here, trusted as the
CA, naming 127.0.0.1 and bench.test), keeps member connections alive and resumes sessions:
  * ringproxy: https:// members, SSLProxyEngine On, SSLProxyCACertificateFile;
  * nginx: proxy_pass https://, upstream keepalive, proxy_ssl_verify on,
    proxy_ssl_session_reuse on;
  * HAProxy: server … ssl verify required ca-file, http-reuse always.

Measured, medians of --reps: proxy CPU µs per request over 64 keep-alive client connections
(small responses), and the same with a new member connection per request (ringproxy's
`disablereuse=On`, nginx without upstream keepalive, HAProxy's `http-server-close`: a TLS
handshake with the member per request, resuming its session), over 16 connections.
Proxy CPU is utime+stime from /proc/PID/stat (utime alone reported too: user space is
where proxies differ). Only 127.0.0.1.

    bench/tls_members.py [--reps 3] [--duration 5] [--systems ringproxy,nginx,haproxy]
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the side-by-side benchmark's placement and helpers)

SYSTEMS = ["ringproxy", "nginx", "haproxy"]


def make_cert(tmp):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 and bench.test."""
    key, crt = os.path.join(tmp, "member.key"), os.path.join(tmp, "member.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=bench.test",
         "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE", "-days", "30"],
        check=True, capture_output=True)
    for p in (key, crt):
        os.chmod(p, 0o644)
    return crt, key


class MembersBench(run.Bench):
    """bench/run.py's systems with HTTPS members."""

    def __init__(self, args):
        super().__init__(args)
        self.crt, self.key = make_cert(self.tmp)
        # A new member connection per request (a handshake each) instead of keep-alive.
        self.no_reuse = False

    def _fill(self, template, **kw):
        text = self._orig_fill(template, **kw)
        crt, key = self.crt, self.key
        port = kw.get("PORT")
        if template == "backend-nginx.conf":
            text = text.replace(
                f"listen 127.0.0.1:{port} backlog=4096;",
                f"listen 127.0.0.1:{port} ssl backlog=4096;\n"
                f"    ssl_certificate {crt};\n    ssl_certificate_key {key};\n"
                "    ssl_protocols TLSv1.2 TLSv1.3;\n"
                "    ssl_session_cache shared:SSL:10m;\n    ssl_session_tickets on;")
        elif template == "ringproxy.conf":
            text = text.replace("BalancerMember http://", "BalancerMember https://")
            if self.no_reuse:
                text = re.sub(r"(BalancerMember \S+)", r"\1 disablereuse=On", text)
            text += f"SSLProxyEngine On\nSSLProxyCACertificateFile {crt}\n"
        elif template == "nginx.conf":
            text = text.replace("proxy_pass http://bench;",
                                "proxy_pass https://bench;\n"
                                "      proxy_ssl_verify on;\n"
                                f"      proxy_ssl_trusted_certificate {crt};\n"
                                "      proxy_ssl_name bench.test;\n"
                                "      proxy_ssl_server_name on;\n"
                                "      proxy_ssl_session_reuse on;\n"
                                # nginx 1.22 speaks only up to TLS 1.2 to upstreams by
                                # default (TLS 1.3 from 1.23.4 on); the others use 1.3.
                                "      proxy_ssl_protocols TLSv1.2 TLSv1.3;")
            if self.no_reuse:
                text = text.replace("    keepalive 256;\n", "")
        elif template == "haproxy.cfg":
            for b in ("b1", "b2"):
                p = kw["B1"] if b == "b1" else kw["B2"]
                text = text.replace(
                    f"server {b} 127.0.0.1:{p}",
                    f"server {b} 127.0.0.1:{p} ssl verify required ca-file {crt} "
                    "verifyhost bench.test sni str(bench.test) alpn http/1.1")
            if self.no_reuse:
                text = text.replace("http-reuse always",
                                    "http-reuse never\n  option http-server-close")
        return text

    def with_tls(self, f, *a):
        self._orig_fill = run.fill
        run.fill = self._fill
        try:
            return f(*a)
        finally:
            run.fill = self._orig_fill

    def start_backends(self):
        return self.with_tls(super().start_backends)

    def start(self, system):
        return self.with_tls(super().start, system)


def main():
    ap = argparse.ArgumentParser()
    args, systems, b, results = run.comparison_setup(ap, SYSTEMS, MembersBench)
    c, d = b.place.scaled, f"{args.duration}s"
    add, cpu_us = results.add, run.cpu_us

    try:
        b.start_backends()
        for rep in range(args.reps):
            for no_reuse in (False, True):
                b.no_reuse = no_reuse
                key = "handshake_per_request" if no_reuse else "keepalive"
                for system in systems:
                    p, port = b.start(system)
                    try:
                        r = b.measured(p, port, ["-c", str(c(64 if not no_reuse else 16)), "-d", d])
                        add(system, f"{key}_cpu_us_per_req", cpu_us(r))
                        # The split: the kernel's share (TCP over loopback, waking the
                        # peer) is much the same for every proxy making the same sends.
                        add(system, f"{key}_user_us_per_req", r["cpu_user_s"] * 1e6 / r["requests"])
                        add(system, f"{key}_rps", r["rps"])
                    finally:
                        b.stop(p)
                    print(f"rep {rep + 1}/{args.reps} {key} {system}: "
                          f"{results[system][f'{key}_cpu_us_per_req'][-1]:.1f} µs/request", flush=True)
    finally:
        b.cleanup()
    path = run.results_path(args.out, f"tls-members-{time.strftime('%Y-%m-%d')}.json")
    meta = {"placement": b.place.describe(), "reps": args.reps, "duration_s": args.duration}
    run.ratio_report(results, systems, lambda k: "cpu" in k or "user" in k, meta, path)


if __name__ == "__main__":
    main()
