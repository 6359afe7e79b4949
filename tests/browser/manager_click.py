#!/usr/bin/env python3
"""Browser test of balancer-manager: headless Chromium loads the page, an operator's click
disables a member, and traffic stops reaching it; over plain HTTP, then over HTTPS (a
self-signed certificate made with openssl, which Chromium is told to accept).

Run by .ci/run after the Rust tests (it uses target/debug/ringproxy). Needs Debian's
chromium and chromium-driver and the selenium package; .ci/run installs them.
"""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import ssl
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RINGPROXY = os.path.join(ROOT, "target", "debug", "ringproxy")


def backend(name, counts):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            counts[name] += 1
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"port {port} did not open")


# The test's own certificate is trusted by the test's own requests only.
UNVERIFIED = ssl._create_unverified_context()


def get(url):
    with urllib.request.urlopen(url, timeout=5, context=UNVERIFIED) as r:
        return r.read().decode()


def certificate(tmp):
    """A self-signed certificate for 127.0.0.1; returns the ringproxy lines that use it."""
    crt, key = os.path.join(tmp, "t.crt"), os.path.join(tmp, "t.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
         "-days", "2"], check=True, capture_output=True)
    return f"SSLEngine on\nSSLCertificateFile {crt}\nSSLCertificateKeyFile {key}\n"


def main():
    run(tls=False)
    run(tls=True)


def run(tls):
    counts = {"a": 0, "b": 0}
    a, b = backend("a", counts), backend("b", counts)
    port = free_port()
    a_url = f"http://127.0.0.1:{a.server_address[1]}"
    tmp = tempfile.mkdtemp()
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(f"""Listen 127.0.0.1:{port}
{certificate(tmp) if tls else ""}
<Location /balancer-manager>
  SetHandler balancer-manager
  Require local
</Location>
<Location /server-status>
  SetHandler server-status
  Require local
</Location>
ProxyStatus On
<Proxy balancer://c>
  BalancerMember {a_url}
  BalancerMember http://127.0.0.1:{b.server_address[1]}
</Proxy>
ProxyPass /balancer-manager !
ProxyPass /server-status !
ProxyPass / balancer://c/
""")
    conf.close()
    proxy = subprocess.Popen([RINGPROXY, "-f", conf.name, "--workers", "2"])
    driver = None
    try:
        wait_port(port)
        base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        before = [get(base + "/x") for _ in range(10)]
        assert before.count("a") > 0, before

        opts = webdriver.ChromeOptions()
        for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--ignore-certificate-errors",
                     f"--user-data-dir={tempfile.mkdtemp()}"]:
            opts.add_argument(flag)
        opts.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.set_page_load_timeout(15)
        driver.get(base + "/balancer-manager")
        form_id = "w-c-" + a_url.removeprefix("http://")
        form = driver.find_element(By.ID, form_id)
        box = form.find_element(By.CSS_SELECTOR, "input[type=checkbox][name=w_status_D]")
        assert not box.is_selected()
        box.click()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # The POST answers 303 back to the page: wait for the reloaded page to show D. While
        # the browser navigates, the row may be missing or stale for a moment (Chromium
        # also reports a node of the page being replaced as a generic WebDriverException:
        # "Node with given id does not belong to the document").
        deadline = time.time() + 10
        status = None
        while True:
            try:
                row = driver.find_element(By.ID, form_id).find_element(By.XPATH, "./ancestor::tr")
                status = row.find_element(By.CSS_SELECTOR, "td.status").text
            except (NoSuchElementException, StaleElementReferenceException, WebDriverException):
                status = None
            if status == "D":
                break
            assert time.time() < deadline, f"status is {status!r}"
            time.sleep(0.05)

        counts["a"] = counts["b"] = 0
        after = [get(base + "/x") for _ in range(20)]
        assert counts["a"] == 0 and after.count("b") == 20, (counts, after)
        assert driver.current_url.startswith(base), driver.current_url
        # The page as people see it: the change confirmed, the state in words, the legend;
        # then the status dashboard. Screenshots go to target/browser/ (CI artifacts).
        body = driver.find_element(By.TAG_NAME, "body").text
        for want in ["Recent changes", "flag D: false -> true", "Disabled", "Balancer settings",
                     "Draining: no new sessions"]:
            assert want in body, f"{want!r} not on the page"
        shots = os.path.join(os.path.dirname(RINGPROXY), "..", "browser")
        os.makedirs(shots, exist_ok=True)
        scheme = "https" if tls else "http"
        driver.set_window_size(1400, 1000)
        driver.save_screenshot(os.path.join(shots, f"balancer-manager-{scheme}.png"))
        driver.get(base + "/server-status")
        status = driver.find_element(By.TAG_NAME, "body").text
        assert "ringproxy status for" in status and "requests in progress" in status, status
        assert "Init Dis" in status, status  # Apache's words for a disabled member
        driver.save_screenshot(os.path.join(shots, f"server-status-{scheme}.png"))
        print(f"browser ({'https' if tls else 'http'}): clicked D on member a; 20 of 20 requests went to b")
    finally:
        if driver:
            driver.quit()
        proxy.terminate()
        proxy.wait(timeout=10)
        os.unlink(conf.name)
        shutil.rmtree(tmp, ignore_errors=True)
        a.shutdown()
        b.shutdown()


if __name__ == "__main__":
    main()
