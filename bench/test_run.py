#!/usr/bin/env python3
"""Unit tests for the benchmark's placement and peer configs (bench/run.py).

    python3 -m unittest discover -s bench -p 'test_*.py'

The peer configs are also checked by the peers themselves (`nginx -t`, `haproxy -c`,
`apache2 -t`) for one proxy core and for four. A peer that is not installed is skipped, unless
BENCH_PEERS_REQUIRED=1 (CI sets it), where that is a failure.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

TEMPLATES = ["ringproxy.conf", "nginx.conf", "haproxy.cfg", "apache.conf"]


class ParseCpus(unittest.TestCase):
    def test_lists(self):
        cases = [
            ("1", [1]),
            ("0-3", [0, 1, 2, 3]),
            ("0,2,4-5", [0, 2, 4, 5]),
            (" 3 , 1", [1, 3]),
            ("2,2,1-2", [1, 2]),
            ("7-7", [7]),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                self.assertEqual(run.parse_cpus(text), want)

    def test_errors(self):
        for text in ["", "a", "1,,2", "3-1", "-1", "1-", "0x1", "1 2"]:
            with self.subTest(text=text):
                with self.assertRaises(ValueError):
                    run.parse_cpus(text)


class PlacementRules(unittest.TestCase):
    def test_default_backends_share_the_generator_cores(self):
        p = run.Placement("0", "1", allowed={0, 1})
        self.assertEqual((p.proxy, p.gen, p.backend, p.shared), ([0], [1], [1], []))
        self.assertEqual(p.workers, 1)
        self.assertEqual(p.scaled(64), 64)

    def test_bigger_host(self):
        p = run.Placement("0-3", "4-11", "12-15", allowed=range(16))
        self.assertEqual(p.workers, 4)
        self.assertEqual(p.scaled(64), 256)
        self.assertEqual(p.backend, list(range(12, 16)))
        self.assertEqual(p.shared, [])
        d = p.describe()
        self.assertEqual(d["proxy_workers"], 4)
        self.assertEqual(d["generator_cpus"], list(range(4, 12)))

    def test_shared_cores_are_reported(self):
        p = run.Placement("0,1", "1", "0", allowed={0, 1})
        self.assertEqual(p.shared, [0, 1])

    def test_cores_outside_the_affinity_mask_are_refused(self):
        with self.assertRaisesRegex(ValueError, "proxy cores 2"):
            run.Placement("0-2", "1", allowed={0, 1})
        with self.assertRaisesRegex(ValueError, "backend cores 5"):
            run.Placement("0", "1", "5", allowed={0, 1})

    def test_nginx_affinity_masks(self):
        cases = [
            ([0], "worker_cpu_affinity 1;"),
            ([1], "worker_cpu_affinity 10;"),
            ([0, 1], "worker_cpu_affinity 01 10;"),
            ([2, 3], "worker_cpu_affinity 0100 1000;"),
        ]
        for cpus, want in cases:
            with self.subTest(cpus=cpus):
                self.assertEqual(run.nginx_affinity(cpus), want)

    def test_proxy_vars(self):
        one = run.Placement("3", "1", allowed=range(4)).proxy_vars()
        self.assertEqual(one["WORKERS"], 1)
        self.assertEqual(one["HAPROXY_CPU_MAP"], "cpu-map 1/1 3")
        four = run.Placement("0-3", "4", allowed=range(8)).proxy_vars()
        self.assertEqual(four["WORKERS"], 4)
        self.assertEqual(four["HAPROXY_CPU_MAP"], "cpu-map auto:1/1-4 0 1 2 3")
        self.assertEqual(four["APACHE_THREADS"], 512)


class PlacementCheck(unittest.TestCase):
    def test_problems(self):
        cases = [
            # (system, threads by allowed CPUs, proxy cores, problems expected)
            ("ringproxy", {"0": 3}, [0], 0),
            ("ringproxy", {"0,1": 1, "0": 1, "1": 1}, [0, 1], 0),
            ("nginx", {"0,1": 1, "0": 1, "1": 1}, [0, 1], 0),
            # A CPU map HAProxy read only in part: one thread left to float.
            ("haproxy", {"0": 1, "0,1": 1}, [0, 1], 1),
            ("haproxy", {"0": 1, "1": 1}, [0, 1], 0),
            # Apache does not bind its threads; within the proxy's cores is enough.
            ("apache", {"0,1": 261}, [0, 1], 0),
            ("apache", {"0,1,2": 10}, [0, 1], 1),
            ("ringproxy", {"0": 2, "1": 1}, [0], 1),
        ]
        for system, placed, cpus, want in cases:
            with self.subTest(system=system, placed=placed):
                self.assertEqual(len(run.placement_problems(system, placed, cpus)), want,
                                 run.placement_problems(system, placed, cpus))


class ResultsPath(unittest.TestCase):
    def test_a_later_run_the_same_day_gets_the_next_letter(self):
        root = tempfile.mkdtemp()
        saved = run.ROOT
        try:
            run.ROOT = root
            os.makedirs(os.path.join(root, "bench", "results"))
            self.assertEqual(run.results_path("/x/given.json", "tls-d.json"), "/x/given.json")
            first = run.results_path(None, "tls-d.json")
            self.assertEqual(first, os.path.join(root, "bench", "results", "tls-d.json"))
            open(first, "w").close()
            second = run.results_path(None, "tls-d.json")
            self.assertEqual(os.path.basename(second), "tls-d-b.json")
            open(second, "w").close()
            self.assertEqual(os.path.basename(run.results_path(None, "tls-d.json")), "tls-d-c.json")
        finally:
            run.ROOT = saved
            shutil.rmtree(root)


class Templates(unittest.TestCase):
    def test_a_missing_value_is_an_error_naming_the_template(self):
        with self.assertRaisesRegex(ValueError, "nginx.conf: no value for .*WORKERS"):
            run.fill("nginx.conf", TMP="/tmp", PORT=1, B1=2, B2=3)

    def test_every_template_renders_completely(self):
        for cpus in ("0", "0-3"):
            pv = run.Placement(cpus, "4", allowed=range(8)).proxy_vars()
            for t in TEMPLATES:
                with self.subTest(template=t, cpus=cpus):
                    text = run.fill(t, TMP="/tmp/x", PORT=1, B1=2, B2=3, **pv)
                    self.assertNotIn("{WORKERS}", text)
        bv = run.Placement("0", "1-2", allowed=range(4)).backend_vars()
        text = run.fill("backend-nginx.conf", TMP="/tmp/x", NAME="b", PORT=1, **bv)
        self.assertIn("worker_processes 2;", text)
        self.assertIn("worker_cpu_affinity 010 100;", text)


def peer(binary):
    """The peer's path, or skips (fails under BENCH_PEERS_REQUIRED=1) when it is missing."""
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path:
        return path
    if os.environ.get("BENCH_PEERS_REQUIRED") == "1":
        raise AssertionError(f"{binary} is required (BENCH_PEERS_REQUIRED=1) but not installed")
    raise unittest.SkipTest(f"{binary} is not installed")


class PeersAcceptTheirConfigs(unittest.TestCase):
    """Each peer parses the config it would run with, for one proxy core and for four."""

    def render(self, template, tmp, cpus):
        pv = run.Placement(cpus, "4", allowed=range(8)).proxy_vars()
        path = os.path.join(tmp, template)
        with open(path, "w") as f:
            f.write(run.fill(template, TMP=tmp, PORT=18080, B1=18081, B2=18082, **pv))
        return path

    def check(self, argv_for, template):
        for cpus in ("0", "0-3"):
            with self.subTest(template=template, cpus=cpus), tempfile.TemporaryDirectory() as tmp:
                os.makedirs(os.path.join(tmp, "apache", "logs"))
                argv = argv_for(self.render(template, tmp, cpus), tmp)
                out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertEqual(out.returncode, 0, f"{argv}: {out.stdout}{out.stderr}")

    def test_nginx(self):
        nginx = peer("nginx")
        self.check(lambda conf, tmp: [nginx, "-t", "-q", "-p", tmp, "-c", conf], "nginx.conf")

    def test_nginx_backend(self):
        nginx = peer("nginx")
        for cpus in ("1", "1-3"):
            with self.subTest(cpus=cpus), tempfile.TemporaryDirectory() as tmp:
                bv = run.Placement("0", cpus, allowed=range(8)).backend_vars()
                conf = os.path.join(tmp, "b.conf")
                with open(conf, "w") as f:
                    f.write(run.fill("backend-nginx.conf", TMP=tmp, NAME="b", PORT=18083, **bv))
                out = subprocess.run([nginx, "-t", "-q", "-p", tmp, "-c", conf], capture_output=True, text=True, timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr)

    def test_haproxy(self):
        haproxy = peer("haproxy")
        self.check(lambda conf, tmp: [haproxy, "-c", "-q", "-f", conf], "haproxy.cfg")

    def test_apache(self):
        apache = peer("apache2")
        self.check(lambda conf, tmp: [apache, "-t", "-f", conf], "apache.conf")

    def test_ringproxy(self):
        # `cargo test` leaves a debug build; the benchmark's release build does as well.
        builds = [os.path.join(run.ROOT, "target", kind, "ringproxy") for kind in ("release", "debug")]
        binary = next((b for b in builds if os.path.exists(b)), None)
        if binary is None:
            if os.environ.get("BENCH_PEERS_REQUIRED") == "1":
                raise AssertionError("ringproxy is required: cargo build -p ringproxy")
            raise unittest.SkipTest("ringproxy is not built (cargo build -p ringproxy)")
        self.check(lambda conf, tmp: [binary, "-t", "-f", conf], "ringproxy.conf")

if __name__ == "__main__":
    unittest.main()
