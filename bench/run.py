#!/usr/bin/env python3
"""Side-by-side benchmark: ringproxy, nginx, HAProxy and Apache (event MPM) as equivalent
two-member round-robin balancers with backend keep-alive, plus "direct to backend".

Placement: the proxy under test on its own cores (--proxy-cpus, default core 0), the load
generator (ringload) on others (--gen-cpus, default core 1), and the two nginx backends on
--backend-cpus (default: the generator's cores). Every proxy runs one worker per proxy core
(ringproxy WorkerThreads, nginx worker_processes, HAProxy nbthread, Apache one child per
core), each backend one worker per backend core, ringload one thread per generator core, and
the load (connections) scales with the proxy's cores. Systems are interleaved
(A B C D A B C D ...), each measured REPS times; medians and ratios to the best peer are
reported.

Called by bench/run.sh, which installs what is missing and builds the release binaries.
BENCH_RINGPROXY_EXTRA (environment) appends directives to ringproxy's config, for A/B runs
such as BENCH_RINGPROXY_EXTRA='SpliceThreshold 0'. BENCH_RINGPROXY_B names a second ringproxy
binary (say, a build of the previous commit), measured as the system `ringproxy_b` in the
same interleaved run: `--systems ringproxy,ringproxy_b,nginx`.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RINGPROXY = os.path.join(ROOT, "target", "release", "ringproxy")
RINGLOAD = os.path.join(ROOT, "target", "release", "ringload")
PEERS = os.path.join(ROOT, "bench", "peers")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SYSTEMS = ["ringproxy", "nginx", "haproxy", "apache", "direct"]
PEER_NAMES = ["nginx", "haproxy", "apache"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def fill(template, **kw):
    with open(os.path.join(PEERS, template)) as f:
        text = f.read()
    for k, v in kw.items():
        text = text.replace("{" + k + "}", str(v))
    left = re.findall(r"\{[A-Z_0-9]+\}", text)
    if left:
        # A placeholder left in a config would reach the server as text and fail there with
        # a message that does not name the template.
        raise ValueError(f"{template}: no value for {', '.join(sorted(set(left)))}")
    return text


def parse_cpus(text):
    """A CPU list as taskset writes it ("1", "0-3", "0,2,4-5") -> sorted, distinct ints."""
    cpus = set()
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad CPU list {text!r}: {part!r} is not N or N-M")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad CPU list {text!r}: {part!r} runs backwards")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def cpu_list(cpus):
    return ",".join(map(str, cpus))


class Placement:
    """Which cores the proxy under test, the load generator and the backends run on, and
    what that means for each system's configuration."""

    def __init__(self, proxy, gen, backend=None, allowed=None):
        self.proxy = parse_cpus(proxy) if isinstance(proxy, str) else sorted(set(proxy))
        self.gen = parse_cpus(gen) if isinstance(gen, str) else sorted(set(gen))
        if backend is None:
            self.backend = list(self.gen)
        else:
            self.backend = parse_cpus(backend) if isinstance(backend, str) else sorted(set(backend))
        allowed = set(os.sched_getaffinity(0) if allowed is None else allowed)
        for role, cpus in (("proxy", self.proxy), ("generator", self.gen), ("backend", self.backend)):
            if not cpus:
                raise ValueError(f"no {role} cores")
            outside = [c for c in cpus if c not in allowed]
            if outside:
                raise ValueError(f"{role} cores {cpu_list(outside)} are not usable here (usable: {cpu_list(sorted(allowed))})")
        # Shared cores make CPU per request include time the proxy waits for the core, and
        # the load generator's cost depend on the proxy: worth a warning, not a refusal
        # (on a one- or two-core host it is the only layout that loads several workers).
        self.shared = sorted(set(self.proxy) & (set(self.gen) | set(self.backend)))

    @property
    def workers(self):
        return len(self.proxy)

    def scaled(self, n):
        """A per-proxy-core load figure (connections) for this placement."""
        return n * self.workers

    def describe(self):
        return {
            "proxy_cpus": self.proxy,
            "generator_cpus": self.gen,
            "backend_cpus": self.backend,
            "proxy_workers": self.workers,
            "shared_cpus": self.shared,
        }

    def proxy_vars(self):
        """Template values for the proxy under test (bench/peers/*.conf)."""
        n = self.workers
        if n == 1:
            haproxy_map = f"cpu-map 1/1 {self.proxy[0]}"
        else:
            # One thread per core, in order, as the other systems are placed. HAProxy reads a
            # CPU set as words ("0 2 3"); after a comma it would silently stop.
            haproxy_map = f"cpu-map auto:1/1-{n} {' '.join(map(str, self.proxy))}"
        return {
            "WORKERS": n,
            "NGINX_AFFINITY": nginx_affinity(self.proxy),
            "HAPROXY_CPU_MAP": haproxy_map,
            "APACHE_THREADS": 128 * n,
        }

    def backend_vars(self):
        return {"WORKERS": len(self.backend), "NGINX_AFFINITY": nginx_affinity(self.backend)}


def nginx_affinity(cpus):
    """worker_cpu_affinity with one worker per listed core (nginx's bit masks, CPU 0 on the
    right)."""
    width = max(cpus) + 1
    masks = ["".join("1" if width - 1 - i == c else "0" for i in range(width)) for c in cpus]
    return "worker_cpu_affinity " + " ".join(masks) + ";"


def add_placement_args(ap):
    ap.add_argument("--proxy-cpus", "--proxy-cpu", default="0",
                    help="cores for the proxy under test, one worker each (e.g. 0 or 0-3)")
    ap.add_argument("--gen-cpus", "--gen-cpu", default="1",
                    help="cores for ringload, one thread each (e.g. 1 or 4-7)")
    ap.add_argument("--backend-cpus", default=None,
                    help="cores for the two nginx backends (default: the generator's)")


def placement_from(args):
    try:
        place = Placement(args.proxy_cpus, args.gen_cpus, args.backend_cpus)
    except ValueError as e:
        sys.exit(f"placement: {e}")
    if place.shared:
        print(f"placement: cores {cpu_list(place.shared)} are shared by the proxy and the load; "
              "CPU per request includes contention", file=sys.stderr)
    return place


def threads_by_cpus(pids):
    """How many threads of these processes may run on each CPU set
    ({"0": 3, "0,1": 1}), read from /proc: what actually ran where, not what was asked."""
    out = {}
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith("Cpus_allowed_list:"):
                            key = cpu_list(parse_cpus(line.split(":", 1)[1].strip()))
                            out[key] = out.get(key, 0) + 1
            except (OSError, ValueError):
                continue
    return out


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d))
        except OSError:
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks_split(pids):
    """(utime, stime) of the processes, in clock ticks."""
    user = system = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user, system


def cpu_ticks(pids):
    return sum(cpu_ticks_split(pids))


IDLE_SETTLE_S = 3.0


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except OSError:
            pass
    return total


# Systems that bind each worker to one core themselves (Apache leaves its threads to the
# scheduler within the cores taskset gives it).
PINS_WORKERS = {"ringproxy", "ringproxy_b", "nginx", "haproxy"}


def placement_problems(system, placed, proxy_cpus):
    """What is wrong with where a system's threads may run ({"0": 3, "0,1": 1}, from
    threads_by_cpus) for these proxy cores; empty when the placement is as asked."""
    problems = []
    allowed = set(proxy_cpus)
    for cpus in placed:
        outside = set(parse_cpus(cpus)) - allowed
        if outside:
            problems.append(f"threads may run on {cpu_list(sorted(outside))}, outside the proxy's cores")
    if system in PINS_WORKERS and len(proxy_cpus) > 1:
        missing = [c for c in proxy_cpus if placed.get(str(c), 0) == 0]
        if missing:
            problems.append(f"no worker bound to core {cpu_list(missing)}")
    return problems


class Bench:
    def __init__(self, args, place=None):
        self.args = args
        self.place = place or placement_from(args)
        self.placed = {}
        self.tmp = tempfile.mkdtemp(prefix="ringproxy-bench-")
        # nginx and Apache workers drop to an unprivileged user: they must be able to read
        # the body file and write their temp files here.
        os.chmod(self.tmp, 0o777)
        self.procs = []
        with open(os.path.join(self.tmp, "1m.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        os.chmod(os.path.join(self.tmp, "1m.bin"), 0o644)

    def spawn(self, cpus, argv, **kw):
        p = subprocess.Popen(
            ["taskset", "-c", cpu_list(cpus)] + argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **kw,
        )
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cleanup(self):
        for p in self.procs:
            self.stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_backends(self):
        self.backends = []
        for name in ["backend1", "backend2"]:
            port = free_port()
            conf = os.path.join(self.tmp, f"{name}.conf")
            with open(conf, "w") as f:
                f.write(fill("backend-nginx.conf", TMP=self.tmp, NAME=name, PORT=port,
                             **self.place.backend_vars()))
            self.spawn(self.place.backend, ["nginx", "-p", self.tmp, "-c", conf])
            if not wait_port(port):
                sys.exit(f"backend {name} did not start")
            self.backends.append(port)

    def start(self, system):
        """Starts a system; returns (process or None, port)."""
        b1, b2 = self.backends
        if system == "direct":
            return None, b1
        port = free_port()
        cpu = self.place.proxy
        pv = self.place.proxy_vars()
        if system in ("ringproxy", "ringproxy_b"):
            binary = RINGPROXY
            if system == "ringproxy_b":
                binary = os.environ.get("BENCH_RINGPROXY_B")
                if not binary:
                    raise RuntimeError("ringproxy_b needs BENCH_RINGPROXY_B=/path/to/ringproxy")
            conf = os.path.join(self.tmp, f"{system}.conf")
            with open(conf, "w") as f:
                f.write(fill("ringproxy.conf", TMP=self.tmp, PORT=port, B1=b1, B2=b2, **pv))
                f.write(os.environ.get("BENCH_RINGPROXY_EXTRA", "").replace(";", "\n") + "\n")
            p = self.spawn(cpu, [binary, "-f", conf])
        elif system == "nginx":
            conf = os.path.join(self.tmp, "nginx-proxy.conf")
            with open(conf, "w") as f:
                f.write(fill("nginx.conf", TMP=self.tmp, PORT=port, B1=b1, B2=b2, **pv))
            p = self.spawn(cpu, ["nginx", "-p", self.tmp, "-c", conf])
        elif system == "haproxy":
            conf = os.path.join(self.tmp, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write(fill("haproxy.cfg", TMP=self.tmp, PORT=port, B1=b1, B2=b2, **pv))
            p = self.spawn(cpu, ["haproxy", "-db", "-f", conf])
        elif system == "apache":
            os.makedirs(os.path.join(self.tmp, "apache", "logs"), exist_ok=True)
            conf = os.path.join(self.tmp, "apache.conf")
            with open(conf, "w") as f:
                f.write(fill("apache.conf", TMP=self.tmp, PORT=port, B1=b1, B2=b2, **pv))
            p = self.spawn(cpu, ["apache2", "-f", conf, "-DFOREGROUND"])
        else:
            raise ValueError(system)
        if not wait_port(port):
            self.stop(p)
            raise RuntimeError(f"{system} did not start")
        # Requests through every worker, so pools and lazy set-up are warm before measuring.
        self.ringload(port, ["-n", str(200 * self.place.workers), "-c", str(4 * self.place.workers)])
        self.placed[system] = threads_by_cpus(tree(p.pid))
        # Checked, not assumed: a peer that ignored its CPU map would make every ratio wrong.
        problems = placement_problems(system, self.placed[system], self.place.proxy)
        if problems:
            self.stop(p)
            raise RuntimeError(f"{system} is not placed as asked ({self.placed[system]}): {'; '.join(problems)}")
        return p, port

    # What the load generator speaks to the system under test (bench/tls.py: https).
    SCHEME = "http"
    LOAD_ARGS = []

    def ringload(self, port, extra, path="/", strict=True):
        gen = cpu_list(self.place.gen)
        cmd = [
            "taskset", "-c", gen, RINGLOAD, "-t", str(len(self.place.gen)), "--cpus", gen, "-q", "--json",
        ] + self.LOAD_ARGS + extra + [f"{self.SCHEME}://127.0.0.1:{port}{path}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"ringload failed: {out.stderr.strip()}")
        r = json.loads(out.stdout)
        # A measurement only counts when every answer was a success (strict), or reports
        # its failures next to its numbers (not strict).
        bad = r["requests"] - r["status"]["2xx"]
        if strict and (bad or r["errors"]):
            raise RuntimeError(f"{path}: {bad} non-2xx answers, errors {r['errors_by_kind']}, status {r['status']}")
        return r

    def measured(self, p, port, extra, path="/"):
        """Runs ringload; returns its JSON plus the proxy's CPU seconds during the run."""
        pids = tree(p.pid) if p else []
        before = cpu_ticks_split(pids)
        r = self.ringload(port, extra, path)
        after = cpu_ticks_split(pids)
        user, system = ((a - b) / CLK_TCK for a, b in zip(after, before))
        r["cpu_s"] = user + system if p else None
        # The split shows what a proxy can change: the kernel's share (TCP over loopback)
        # is much the same for every proxy doing the same sends and receives.
        r["cpu_user_s"] = user if p else None
        r["cpu_sys_s"] = system if p else None
        return r

    def idle_memory(self, p, port, n):
        """Resident memory per idle keep-alive client connection (KiB), read twice: 1 s and
        IDLE_SETTLE_S after the last response. Returns ({"1s": kib, "3s": kib}, n) or
        (None, why)."""
        pids = tree(p.pid) if p else []
        # The baseline is taken after the same settling time, so memory a proxy releases
        # on its own after load (ringproxy returns unused pooled buffers within about a
        # second) counts neither for nor against the connections.
        time.sleep(IDLE_SETTLE_S)
        base = rss_kib(pids)
        socks = []
        try:
            open_answered(socks, port, n, "bench")
            answered = time.monotonic()
            readings = {}
            # Shortly after the burst (what a proxy holds while connections have just gone
            # quiet), then once they have been idle a few seconds, by when ringproxy has
            # parked them (IdleParkAfter, 250 ms by default) and given memory back.
            for label, at in (("1s", 1.0), ("3s", IDLE_SETTLE_S)):
                time.sleep(max(0.0, answered + at - time.monotonic()))
                pids = tree(p.pid) if p else []
                readings[label] = (rss_kib(pids) - base) / n
            return readings, len(socks)
        except (OSError, RuntimeError) as e:
            return None, f"{len(socks)} connections, then {e}"
        finally:
            for s in socks:
                s.close()


def open_answered(socks, port, n, host, wrap=None):
    """Opens `n` keep-alive connections to `port` (each through `wrap`, e.g. TLS), sends
    one request on each and reads each response head; appends them to `socks` as it goes
    (the caller closes them, also after a failure)."""
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if wrap:
            s = wrap(s)
        socks.append(s)
        s.sendall(req)
    for s in socks:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("closed by the proxy")
            data += chunk


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def comparison_args(ap, systems):
    """The arguments every side-by-side comparison takes (on top of its own in `ap`),
    parsed; the descriptor limit raised to the hard one for the many connections."""
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--systems", default=",".join(systems))
    ap.add_argument("--out", default=None)
    add_placement_args(ap)
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return args


def comparison_setup(ap, systems, make_bench):
    """Parses the arguments (see `comparison_args`) and makes the benchmark: returns
    (arguments, systems to run, the benchmark, empty samples)."""
    args = comparison_args(ap, systems)
    chosen = args.systems.split(",")
    return args, chosen, make_bench(args), Samples(chosen)


class Samples(dict):
    """{system: {metric: [values, one per repetition]}}."""

    def __init__(self, systems):
        super().__init__({s: {} for s in systems})

    def add(self, system, key, value):
        self[system].setdefault(key, []).append(value)


def cpu_us(r):
    """Proxy CPU µs per request of a `Bench.measured` run."""
    return r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else None


def results_path(out, name):
    """Where a run's raw data goes: `out` (--out) when given, else bench/results/NAME, or
    NAME with -b, -c, … before its extension when that file exists already: RESULTS.md
    cites each run's file by name, so a later run the same day must not overwrite it."""
    if out:
        return out
    stem, ext = os.path.splitext(os.path.join(ROOT, "bench", "results", name))
    path, n = stem + ext, 0
    while os.path.exists(path):
        n += 1
        path = f"{stem}-{chr(ord('a') + n)}{ext}"
    return path


def ratio_report(results, systems, lower_better, meta, path):
    """Medians of each system's samples ({system: {metric: [values]}}), printed as a table
    with ringproxy against the best peer, and written as JSON with `meta` to `path`."""
    summary = {s: {k: median(v) for k, v in m.items()} for s, m in results.items()}
    keys = sorted({k for m in summary.values() for k in m})
    width = max([len(k) for k in keys] + [6]) + 2
    # Each system's column is as wide as its name (and at least 12).
    cols = [max(12, len(s) + 2) for s in systems]
    print(f"\n{'metric':<{width}}" + "".join(f"{s:>{w}}" for s, w in zip(systems, cols)) + "   ringproxy / best peer")
    for k in keys:
        vals = [summary[s].get(k) for s in systems]
        peers = [summary[s][k] for s in systems if s != "ringproxy" and summary[s].get(k) is not None]
        best = (min if lower_better(k) else max)(peers) if peers else None
        mine = summary.get("ringproxy", {}).get(k)
        ratio = f"{mine / best:.2f}" if best and mine is not None else ""
        print(f"{k:<{width}}" + "".join(f"{v:>{w}.1f}" if v is not None else f"{'-':>{w}}"
                                        for v, w in zip(vals, cols)) + f"   {ratio}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({**meta, "raw": results, "median": summary}, f, indent=2)
    print(f"raw data: {os.path.relpath(path, ROOT)}")
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="about 2 minutes")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    add_placement_args(ap)
    # 10,000 where the descriptor limit allows; HAProxy needs two per accepted connection,
    # so under a 20,000 hard limit 9,000 are measured (for every system alike).
    ap.add_argument("--idle", type=int)
    ap.add_argument("--out", help="where the JSON goes (default bench/results/DATE.json)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    dur = args.duration or (3.0 if args.quick else 6.0)
    systems = args.systems.split(",")
    # As many descriptors as allowed (10,000 idle connections need that many on each side).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.idle is None:
        args.idle = 10000 if hard >= 2 * 10000 + 1000 else 9000

    b = Bench(args)
    results = {s: {} for s in systems}
    # The load shape per proxy core stays what the issue names (64 keep-alive clients for
    # the small-response measurements): with more proxy cores, more connections.
    c = b.place.scaled

    def add(system, key, value):
        results[system].setdefault(key, []).append(value)

    try:
        b.start_backends()
        d = f"{dur}s"
        for rep in range(reps):
            for system in systems:
                p, port = b.start(system)
                try:
                    r = b.measured(p, port, ["-c", str(c(64)), "-d", d])
                    add(system, "rps", r["rps"])
                    add(system, "p50_us", r["latency_us"]["p50"])
                    add(system, "p99_us", r["latency_us"]["p99"])
                    if r["cpu_s"] is not None and r["requests"]:
                        add(system, "cpu_us_per_req", r["cpu_s"] * 1e6 / r["requests"])
                        add(system, "cpu_user_us_per_req", r["cpu_user_s"] * 1e6 / r["requests"])
                        add(system, "cpu_sys_us_per_req", r["cpu_sys_s"] * 1e6 / r["requests"])
                    for kind, extra, path in [
                        ("down", ["-c", str(c(8)), "-d", d], "/1m"),
                        ("up", ["-c", str(c(8)), "-d", d, "-m", "POST", "-b", "@" + os.path.join(b.tmp, "1m.bin")], "/upload"),
                    ]:
                        r = b.measured(p, port, extra, path)
                        mb = r["requests"] * 1.048576
                        add(system, f"{kind}_MBps", mb / r["duration_s"])
                        if r["cpu_s"] is not None and mb:
                            add(system, f"{kind}_cpu_ms_per_MB", r["cpu_s"] * 1e3 / mb)
                    r = b.measured(p, port, ["-c", str(c(16)), "-d", d, "-H", "Connection: close"])
                    add(system, "conn_per_s", r["rps"])
                    if system != "direct":
                        kib, n = b.idle_memory(p, port, args.idle)
                        if kib is None:
                            results[system]["idle_note"] = n
                        add(system, "idle_KiB_per_conn_1s", kib and kib["1s"])
                        add(system, "idle_KiB_per_conn", kib and kib["3s"])
                finally:
                    if p:
                        b.stop(p)
                print(f"rep {rep + 1}/{reps} {system}: {results[system]['rps'][-1]:,.0f} req/s", flush=True)
        # Latency at one fixed open-loop rate for everyone: half the slowest peer's capacity.
        proxies = [s for s in systems if s != "direct"]
        rate = 0.5 * min(median(results[s]["rps"]) for s in proxies)
        for rep in range(reps):
            for system in systems:
                p, port = b.start(system)
                try:
                    r = b.ringload(
                        port,
                        ["-c", str(c(64)), "--max-connections", str(c(512)), "-d", d, "--rate", str(round(rate))],
                        strict=False,
                    )
                    add(system, "fixed_p50_us", r["latency_us"]["p50"])
                    add(system, "fixed_p99_us", r["latency_us"]["p99"])
                    add(system, "fixed_p999_us", r["latency_us"]["p999"])
                    add(system, "fixed_errors", r["errors"] + r["requests"] - r["status"]["2xx"])
                finally:
                    if p:
                        b.stop(p)
    finally:
        b.cleanup()

    summary = {s: {k: median(v) for k, v in m.items() if isinstance(v, list)} for s, m in results.items()}
    for s in systems:
        if "idle_note" in results[s]:
            summary[s]["idle_note"] = results[s]["idle_note"]
    versions = {
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
        "apache": subprocess.run(["apache2", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
        "ringproxy": subprocess.run([RINGPROXY, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    out = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "model": cpu_model()},
        "versions": versions,
        "placement": dict(b.place.describe(), threads_by_allowed_cpus=b.placed),
        "reps": reps, "duration_s": dur, "fixed_rate": rate, "idle_connections": args.idle,
        "raw": results, "median": summary,
    }
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = results_path(args.out, f"{datetime.date.today()}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    pl = b.place
    print(f"Placement: proxy on cores {cpu_list(pl.proxy)} ({pl.workers} worker(s)), "
          f"ringload on {cpu_list(pl.gen)}, backends on {cpu_list(pl.backend)}")
    print(table(summary, systems, rate))
    print(f"\nraw data: {os.path.relpath(path, ROOT)}")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


METRICS = [
    ("cpu_us_per_req", "proxy CPU µs/request (64 conns)", "low"),
    ("cpu_user_us_per_req", "of which user space", "low"),
    ("cpu_sys_us_per_req", "of which kernel", "low"),
    ("rps", "saturated req/s (64 conns)", "high"),
    ("p99_us", "p99 µs at saturation", "low"),
    ("fixed_p50_us", "p50 µs at the fixed rate", "low"),
    ("fixed_p99_us", "p99 µs at the fixed rate", "low"),
    ("fixed_p999_us", "p99.9 µs at the fixed rate", "low"),
    ("down_MBps", "1 MiB download MB/s", "high"),
    ("down_cpu_ms_per_MB", "download CPU ms/MB", "low"),
    ("up_MBps", "1 MiB upload MB/s", "high"),
    ("up_cpu_ms_per_MB", "upload CPU ms/MB", "low"),
    ("fixed_errors", "errors at the fixed rate", "low"),
    ("idle_KiB_per_conn_1s", "KiB per idle connection, 1 s after", "low"),
    ("idle_KiB_per_conn", "KiB per idle connection, 3 s after", "low"),
    ("conn_per_s", "new connections/s", "high"),
]


def table(summary, systems, rate):
    def fmt(v):
        if v is None:
            return "—"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.2f}"

    head = "| metric | " + " | ".join(systems) + " | ringproxy vs best peer |"
    lines = [f"Fixed open-loop rate: {rate:,.0f} req/s\n", head, "|" + "---|" * (len(systems) + 2)]
    for key, label, better in METRICS:
        row = [fmt(summary[s].get(key)) for s in systems]
        peers = [summary[s].get(key) for s in PEER_NAMES if s in summary and summary[s].get(key) is not None]
        mine = summary.get("ringproxy", {}).get(key)
        ratio = "—"
        if peers and mine:
            best = min(peers) if better == "low" else max(peers)
            ratio = f"{mine / best:.2f}x"
        lines.append(f"| {label} | " + " | ".join(row) + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
