#!/usr/bin/env bash
# Instructions per request of the whole proxy process (user space: TLS,
# HTTP/2 or HTTP/1.1 server, policies, upstream client, runtime), moat beside
# a hardened nginx, each under valgrind's callgrind on 127.0.0.1. Unlike
# wall-clock figures these repeat on a shared, noisy machine (to about 0.1 %),
# so a change to the request path can be judged by them.
#
# Setup as in benches/compare.sh: an nginx upstream answering 1 KiB on
# 127.0.0.1:9000; moat with the policies of compare.sh (rate limit that never
# rejects, CORS allowlist, body limit, security headers, error replacement),
# access log off; nginx-hardened with the directives of the shared anchors
# script (limit_req, content-type allowlist, CORS map, intercepted errors),
# one process (`master_process off`). Each proxy is warmed up, then
# instrumentation is switched on for a fixed load (h2: `h2load -n $N -c 10
# -m 10`; h1: `wrk -t1 -c10 -d${H1_SECONDS}s`, requests counted by wrk) and
# off again; the count is divided by the requests served. Kernel time is not
# counted (callgrind sees user space only).
#
# Needs root for nginx's `user root` and: valgrind nginx wrk nghttp2-client
# openssl curl (apt-get install). Ports 9000, 8443 and 8446 must be free.
#   bash benches/callgrind-process.sh            # h2 and h1, moat and nginx
#   MODES=h2 N=2000 bash benches/callgrind-process.sh
#   MOAT_BIN=/path/to/other/moat bash benches/callgrind-process.sh   # compare builds
#   MOAT_LOG=info MODES=h1 bash benches/callgrind-process.sh          # moat with its access log on
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4000}
NEEDS="valgrind callgrind_control wrk h2load curl"
# shellcheck source=benches/proxy-setup.sh
. benches/proxy-setup.sh
hardened_conf "worker_processes 1; master_process off; daemon off;"
# measure NAME PORT MODE CMD... : instructions per request of CMD under callgrind.
measure() {
  local name=$1 port=$2 mode=$3; shift 3
  local out="$W/out/callgrind.$name.$mode" url="https://127.0.0.1:$port/" n i
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" "$@" >"$W/logs/$name.$mode.log" 2>&1 &
  VG_PID=$!
  for i in $(seq 300); do curl -sk -o /dev/null "$url" && break; sleep 0.2; done
  load() {
    if [ "$mode" = h2 ]; then
      timeout 600 h2load -n "$1" -c 10 -m 10 -H "Origin: $ORIGIN" "$url" >"$W/out/load.txt" 2>&1
    else
      timeout 600 wrk -t1 -c10 -d"$2"s -H "Origin: $ORIGIN" "$url" >"$W/out/load.txt" 2>&1
    fi
  }
  load 1000 2
  callgrind_control -i on "$VG_PID" >/dev/null
  load "$N" "$H1_SECONDS"
  callgrind_control -i off "$VG_PID" >/dev/null
  callgrind_control -d "$VG_PID" >/dev/null
  if [ "$mode" = h2 ]; then
    n=$(grep -oP '\K[0-9]+(?= succeeded)' "$W/out/load.txt")
  else
    n=$(grep -oP '^\s+\K[0-9]+(?= requests in)' "$W/out/load.txt")
  fi
  kill -TERM "$VG_PID" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$VG_PID" 2>/dev/null || break; sleep 0.3; done
  local total
  total=$(cat "$out".* | sed -n 's/^totals: //p' | awk '{s += $1} END {print s}')
  if [ -z "$n" ] || [ "$n" = 0 ] || [ -z "$total" ] || [ "$total" = 0 ]; then
    printf '%-16s %-3s measurement failed (see %s)\n' "$name" "$mode" "$W/logs/$name.$mode.log"
    return 0
  fi
  printf '%-16s %-3s %8d requests %10d instr/request\n' "$name" "$mode" "$n" $(( total / n ))
}

for mode in $MODES; do
  # The environment is set before valgrind starts: it does not follow an exec.
  ( moat_env; measure moat 8446 "$mode" "$MOAT_BIN" run )
  measure nginx-hardened 8443 "$mode" nginx -c "$W/hardened.conf"
done
echo "profiles: $W/out (kept; callgrind_annotate --inclusive=yes FILE)"
trap - EXIT
kill "$(cat "$W/upstream.pid")" 2>/dev/null || true
