#!/usr/bin/env bash
# Resident memory of one moat process through a sequence of loads, as the
# upload test of compare.sh sees it (its "RSS before" is what the earlier
# tests left): VmRSS at start, after 6 s of `wrk -c50` keep-alive, after
# `h2load -n 60000 -c 50 -m 10`, after 6 s of `wrk -c50` with a new
# connection per request, 3 s later, after $IDLE_WAIT s more without load
# (default 45: about what compare.sh runs between moat's h2 and upload
# tests), and VmHWM; with the idle upstream connections moat keeps after the
# h2 load and at the end (`ss`). Setup from benches/proxy-setup.sh.
# Each entry of VARIANTS is a comma-separated list of environment settings
# for one run ("-" for none), e.g. moat's own config variables or mimalloc's
# options. Needs root, nginx, openssl, wrk, nghttp2-client, curl, ss.
#   bash benches/rss.sh
#   VARIANTS="- MOAT_UPSTREAM__POOL_MAX_IDLE=32 MIMALLOC_PURGE_DELAY=0" bash benches/rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANTS=${VARIANTS:-"-"}
IDLE_WAIT=${IDLE_WAIT:-45}
NEEDS="wrk h2load curl ss"
# shellcheck source=benches/proxy-setup.sh
. benches/proxy-setup.sh
rss() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
url=https://127.0.0.1:8446/
for v in $VARIANTS; do
  settings=()
  [ "$v" = - ] || IFS=, read -r -a settings <<<"$v"
  ( moat_env; exec env "${settings[@]}" "$MOAT_BIN" run >"$W/logs/moat.out" 2>&1 ) &
  P=$!
  for _ in $(seq 100); do curl -sk -o /dev/null "$url" && break; sleep 0.1; done
  r0=$(rss "$P" VmRSS)
  timeout 60 wrk -t1 -c50 -d6s -H "Origin: $ORIGIN" "$url" >/dev/null
  r1=$(rss "$P" VmRSS)
  timeout 300 h2load --npn-list=h2 -n 60000 -c 50 -m 10 -H "Origin: $ORIGIN" "$url" >/dev/null
  r2=$(rss "$P" VmRSS)
  idle=$(ss -Htn state established '( dport = :9000 )' | wc -l)
  timeout 60 wrk -t1 -c50 -d6s -H "Origin: $ORIGIN" -H 'Connection: close' "$url" >/dev/null
  r3=$(rss "$P" VmRSS)
  sleep 3
  r4=$(rss "$P" VmRSS)
  sleep "$IDLE_WAIT"
  r5=$(rss "$P" VmRSS)
  idle2=$(ss -Htn state established '( dport = :9000 )' | wc -l)
  echo "$v: start ${r0} MiB, after ka ${r1}, after h2 ${r2} (${idle} upstream connections), after new-connection load ${r3}, 3 s later ${r4}, ${IDLE_WAIT} s later ${r5} (${idle2} upstream connections), VmHWM $(rss "$P" VmHWM)"
  kill "$P"; wait "$P" 2>/dev/null || true
done
