#!/usr/bin/env bash
# Scans ringproxy's default TLS setup with testssl.sh (Debian: apt-get install testssl.sh)
# and fails on any finding of severity MEDIUM or worse, except those about the self-signed
# test certificate itself (its trust chain, its lack of OCSP/CT/CAA: a real certificate
# has them). Usage: bench/tls_scan.sh [path/to/ringproxy]  (default: a release build)
# Talks only to 127.0.0.1; stops the ringproxy it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/ringproxy}
[ -x "$bin" ] || cargo build --release -p ringproxy
command -v testssl >/dev/null || { echo "testssl (Debian package testssl.sh) is not installed" >&2; exit 2; }

dir=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/scan.key" -out "$dir/scan.crt" \
  -subj /CN=scan.test -addext subjectAltName=DNS:scan.test \
  -addext basicConstraints=critical,CA:FALSE -days 30 2>/dev/null
cat >"$dir/scan.conf" <<CONF
Listen 127.0.0.1:$port
ErrorLog $dir/error.log
<VirtualHost *>
  ServerName scan.test
  SSLEngine on
  SSLCertificateFile $dir/scan.crt
  SSLCertificateKeyFile $dir/scan.key
  <Location /status>
    SetHandler server-status
  </Location>
</VirtualHost>
CONF
"$bin" -f "$dir/scan.conf" &
pid=$!
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done

testssl --quiet --color 0 --warnings off --ip one --sneaky \
  --severity MEDIUM --jsonfile "$dir/scan.json" "https://127.0.0.1:$port/status" >"$dir/scan.txt" || true

python3 - "$dir/scan.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
# The test certificate is self-signed and short-lived by design.
cert_only = ("cert_", "OCSP", "DNS_CAArecord", "certificate_transparency", "intermediate", "chain_of_trust")
bad = [f for f in findings
       if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")
       and not f["id"].startswith(cert_only)]
for f in findings:
    if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL"):
        mark = "  " if f in bad else "(certificate) "
        print(f'{mark}{f["severity"]:8} {f["id"]}: {f["finding"]}')
print(f"{len(findings)} findings at MEDIUM or worse, {len(bad)} about the TLS setup itself")
sys.exit(1 if bad else 0)
PY
