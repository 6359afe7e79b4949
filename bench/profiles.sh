#!/usr/bin/env bash
# Capacity search (ringload --slo) against ringproxy under each tuning profile in tuning/:
# comparison table and SVG chart.   bench/profiles.sh [--quick] [--slo 'p99<5ms']
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 || ! command -v taskset >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light util-linux >/dev/null
  service nginx stop >/dev/null 2>&1 || true
fi
cargo build --release -q -p ringproxy -p loadgen
python3 bench/profiles.py "$@"
