#!/usr/bin/env bash
# One command, all peers, one run: ringproxy vs nginx, HAProxy and Apache (event MPM).
#   bench/run.sh --quick      # about 2 minutes
#   bench/run.sh              # full: 3 interleaved repetitions
# Options are passed to bench/run.py (--reps, --duration, --systems, --idle, and placement:
# --proxy-cpus 0-3 --gen-cpus 4-11 --backend-cpus 12-15 on bigger hosts). Installs nginx, haproxy, apache2 and wrk from Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for cmd in nginx haproxy apache2 wrk taskset python3; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy apache2 wrk util-linux python3 >/dev/null
  # The packages' own services are not wanted: every system here runs with its own config.
  for svc in nginx haproxy apache2; do service "$svc" stop >/dev/null 2>&1 || true; done
fi
cargo build --release -q -p ringproxy -p loadgen
python3 bench/run.py "$@"
