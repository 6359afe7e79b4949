#!/usr/bin/env bash
# ringload vs wrk: requests per second from ONE core against the same trivial server
# (nginx `return 200`, one worker, pinned to another core), same connections, alternating
# runs. Prints the medians and the ratio; writes bench/results/<date>-loadgen-vs-wrk.json.
#
#   bench/loadgen-vs-wrk.sh            # 3 rounds of 10 s each
#   ROUNDS=5 DURATION=20s CONNS=128 bench/loadgen-vs-wrk.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
cargo build --release -q -p loadgen

tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok\n"; }
  }
}
CONF
taskset -c "$SERVER_CPU" nginx -p "$tmp" -c "$tmp/nginx.conf" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
url="http://127.0.0.1:$port/"

wrk_rps=()
ringload_rps=()
for round in $(seq "$ROUNDS"); do
  w=$(taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" "$url" | awk '/Requests\/sec/ {print $2}')
  r=$(taskset -c "$GEN_CPU" target/release/ringload -t1 --cpus "$GEN_CPU" -c"$CONNS" -d"$DURATION" -q --json "$url" |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["rps"], 1))')
  echo "round $round: wrk $w req/s, ringload $r req/s"
  wrk_rps+=("$w")
  ringload_rps+=("$r")
done

python3 - "$CONNS" "$DURATION" "${wrk_rps[*]}" "${ringload_rps[*]}" <<'PY'
import json, statistics, sys, datetime, platform, subprocess
conns, duration, w, r = sys.argv[1], sys.argv[2], list(map(float, sys.argv[3].split())), list(map(float, sys.argv[4].split()))
mw, mr = statistics.median(w), statistics.median(r)
out = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "kernel": platform.release(),
    "connections": int(conns), "duration": duration,
    "wrk_rps": w, "ringload_rps": r,
    "wrk_median": mw, "ringload_median": mr, "ratio": mr / mw,
    "wrk_version": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
}
path = f"bench/results/{datetime.date.today()}-loadgen-vs-wrk.json"
with open(path, "w") as f:
    json.dump(out, f, indent=2)
print(f"\n| generator (1 core, {conns} conns) | median req/s |\n|---|---|\n| wrk | {mw:,.0f} |\n| ringload | {mr:,.0f} |\n\nringload / wrk = {mr/mw:.2f}  ({path})")
PY
