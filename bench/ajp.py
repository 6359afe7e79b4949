#!/usr/bin/env python3
"""AJP to Tomcat: ringproxy (ajp:// member) against Apache 2.4 (event MPM, mod_proxy_ajp),
and both over HTTP to the same Tomcat (so admins know whether AJP is worth keeping, and
Apache's HTTP figure can be set beside the one the target was derived from),
in one interleaved run with bench/run.py's placement: the proxy on --proxy-cpus, ringload
and one Tomcat 10 (Debian's tomcat10 and tomcat10-examples; an AJP connector and an HTTP
connector, the examples webapp's HelloWorldExample servlet) on --gen-cpus.

Tomcat is warmed up first (8 s through each connector). Measured per system, medians of
--reps: proxy CPU µs per request (utime+stime from
/proc/PID/stat, utime alone too) over 64 keep-alive client connections, and requests per
second. Only 127.0.0.1.

    bench/ajp.py [--reps 3] [--duration 5] [--systems ringproxy,ringproxy_http,apache,apache_http]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the side-by-side benchmark's placement and helpers)

SYSTEMS = ["ringproxy", "ringproxy_http", "apache", "apache_http"]
# The systems that reach Tomcat through its HTTP connector, and what each one runs.
HTTP = {"ringproxy_http": "ringproxy_b", "apache_http": "apache"}
TOMCAT_HOME = "/usr/share/tomcat10"
EXAMPLES = "/usr/share/tomcat10-examples/examples"
SECRET = "bench-secret"
PATH = "/examples/servlets/servlet/HelloWorldExample"
MEMBERS = re.compile(r"BalancerMember http://127\.0\.0\.1:\d+\n\s*BalancerMember http://127\.0\.0\.1:\d+")


class AjpBench(run.Bench):
    """bench/run.py's proxies in front of one Tomcat."""

    def __init__(self, args):
        super().__init__(args)
        self.scheme = "ajp"

    def start_backends(self):
        """One Tomcat with an AJP and an HTTP connector; backends = [ajp port, http port]."""
        if not os.path.exists(f"{TOMCAT_HOME}/bin/bootstrap.jar") or not os.path.isdir(EXAMPLES):
            sys.exit("bench/ajp.py needs the tomcat10 and tomcat10-examples packages")
        base = os.path.join(self.tmp, "tomcat")
        for d in ("conf", "logs", "temp", "work", "webapps"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        for f in ("web.xml", "catalina.properties", "logging.properties"):
            shutil.copy(os.path.join(TOMCAT_HOME, "etc", f), os.path.join(base, "conf", f))
        ajp, http = run.free_port(), run.free_port()
        with open(os.path.join(base, "conf", "server.xml"), "w") as f:
            f.write(f"""<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="AJP/1.3" address="127.0.0.1" port="{ajp}" secret="{SECRET}"
               redirectPort="8443" maxThreads="200"/>
    <Connector protocol="HTTP/1.1" address="127.0.0.1" port="{http}" maxThreads="200"
               maxKeepAliveRequests="-1"/>
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="node1">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false">
        <Context path="/examples" docBase="{EXAMPLES}"/>
      </Host>
    </Engine>
  </Service>
</Server>
""")
        self._spawn_logged(base, open(os.path.join(base, "logs", "out.log"), "w"))
        for port in (ajp, http):
            if not run.wait_port(port, timeout=90):
                sys.exit(f"Tomcat did not listen on {port}; see {base}/logs/out.log")
        self.backends = [ajp, http]

    def _spawn_logged(self, base, log):
        """The JVM on the backend cores, its output kept for when it does not start."""
        p = subprocess.Popen(
            ["taskset", "-c", run.cpu_list(self.place.backend), "java", "-cp",
             f"{TOMCAT_HOME}/bin/bootstrap.jar:{TOMCAT_HOME}/bin/tomcat-juli.jar",
             f"-Dcatalina.home={TOMCAT_HOME}", f"-Dcatalina.base={base}",
             f"-Djava.io.tmpdir={base}/temp", "org.apache.catalina.startup.Bootstrap", "start"],
            stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def _fill(self, template, **kw):
        text = self._orig_fill(template, **kw)
        ajp, http = self.backends
        member = (f"BalancerMember ajp://127.0.0.1:{ajp} secret={SECRET}" if self.scheme == "ajp"
                  else f"BalancerMember http://127.0.0.1:{http}")
        if template in ("ringproxy.conf", "apache.conf"):
            text = MEMBERS.sub(member, text)
        if template == "apache.conf":
            text = text.replace(
                "LoadModule proxy_http_module",
                "LoadModule proxy_ajp_module /usr/lib/apache2/modules/mod_proxy_ajp.so\n"
                "LoadModule proxy_http_module")
        return text

    def start(self, system):
        """`ringproxy_http`, `apache_http`: the Tomcat's HTTP connector as the member."""
        self.scheme = "http" if system in HTTP else "ajp"
        name = HTTP.get(system, system)
        if name == "ringproxy_b":
            os.environ["BENCH_RINGPROXY_B"] = run.RINGPROXY
        self._orig_fill = run.fill
        run.fill = self._fill
        try:
            return super().start(name)
        finally:
            run.fill = self._orig_fill

    def ringload(self, port, extra, path="/", strict=True):
        # Every request goes to the servlet (the start-up warm-up too).
        return super().ringload(port, extra, PATH if path == "/" else path, strict)


def main():
    ap = argparse.ArgumentParser()
    args, systems, b, results = run.comparison_setup(ap, SYSTEMS, AjpBench)
    c, d = b.place.scaled, f"{args.duration}s"
    add, cpu_us = results.add, run.cpu_us
    try:
        b.start_backends()
        # The JVM compiles the paths it runs: both connectors are driven first, so the
        # first system measured does not pay for Tomcat's warm-up.
        for system in ("ringproxy", "ringproxy_http"):
            p, port = b.start(system)
            try:
                b.ringload(port, ["-c", str(c(64)), "-d", "8s"])
            finally:
                b.stop(p)
        for rep in range(args.reps):
            for system in systems:
                p, port = b.start(system)
                try:
                    r = b.measured(p, port, ["-c", str(c(64)), "-d", d])
                    add(system, "cpu_us_per_req", cpu_us(r))
                    add(system, "user_us_per_req", r["cpu_user_s"] * 1e6 / r["requests"])
                    add(system, "rps", r["rps"])
                finally:
                    b.stop(p)
                print(f"rep {rep + 1}/{args.reps} {system}: "
                      f"{results[system]['cpu_us_per_req'][-1]:.1f} µs/request", flush=True)
    finally:
        b.cleanup()
    path = run.results_path(args.out, f"ajp-{time.strftime('%Y-%m-%d')}.json")
    meta = {"placement": b.place.describe(), "reps": args.reps, "duration_s": args.duration}
    summary = run.ratio_report(results, systems, lambda k: "us" in k, meta, path)
    mine = summary.get("ringproxy", {}).get("cpu_us_per_req")
    for other in ("apache", "apache_http", "ringproxy_http"):
        theirs = summary.get(other, {}).get("cpu_us_per_req")
        if mine and theirs:
            print(f"ringproxy (AJP) / {other}: {mine / theirs:.2f} of the CPU per request")


if __name__ == "__main__":
    main()
