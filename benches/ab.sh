#!/usr/bin/env bash
# Two (or more) moat builds under the same load, alternating round by round,
# so that a change can be judged against the host's drift (a shared machine
# can lose a fifth of its speed within minutes; compare.sh's rounds see
# that too). Each round starts each binary afresh on the setup of
# benches/proxy-setup.sh (nginx upstream answering 1 KiB, the policies of
# compare.sh, access log off), warms it up for 2 s, then measures HTTP/1.1
# keep-alive (`wrk -t1 -c50`) and HTTP/2 (`h2load -n $H2_REQUESTS -c 50
# -m 10`): req/s and the process's CPU (utime + stime from /proc) per request.
# A binary may be a wrapper script that `exec`s moat with other settings.
# Needs root, nginx, openssl, wrk, nghttp2-client, curl, bc.
#   BINS="/tmp/moat-before /tmp/moat-after" bash benches/ab.sh
#   ROUNDS=5 SECONDS_PER_RUN=8 NO_H2=1 BINS="a b" bash benches/ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BINS:?BINS names the moat binaries to compare}"
ROUNDS=${ROUNDS:-3}
RUN=${SECONDS_PER_RUN:-8}
H2_REQUESTS=${H2_REQUESTS:-100000}
NEEDS="wrk h2load curl bc"
read -r MOAT_BIN _ <<<"$BINS"
# shellcheck source=benches/proxy-setup.sh
. benches/proxy-setup.sh
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_req() { echo "scale=1; ($2 - $1) * 1000000 / $(getconf CLK_TCK) / $3" | bc; }
for r in $(seq "$ROUNDS"); do
  for b in $BINS; do
    ( moat_env; exec "$b" run >"$W/logs/moat.out" 2>&1 ) &
    P=$!
    for _ in $(seq 100); do curl -sk -o /dev/null https://127.0.0.1:8446/ && break; sleep 0.1; done
    timeout 60 wrk -t1 -c50 -d2s -H "Origin: $ORIGIN" https://127.0.0.1:8446/ >/dev/null
    c0=$(ticks "$P")
    out=$(timeout 120 wrk -t1 -c50 -d"${RUN}s" -H "Origin: $ORIGIN" https://127.0.0.1:8446/)
    c1=$(ticks "$P")
    n=$(grep -oP '^\s+\K[0-9]+(?= requests in)' <<<"$out")
    line="ka $(grep -oP 'Requests/sec:\s+\K[0-9.]+' <<<"$out") req/s $(per_req "$c0" "$c1" "$n") us/req"
    if [ -z "${NO_H2:-}" ]; then
      c0=$(ticks "$P")
      out=$(timeout 300 h2load --npn-list=h2 -n "$H2_REQUESTS" -c 50 -m 10 -H "Origin: $ORIGIN" https://127.0.0.1:8446/)
      c1=$(ticks "$P")
      n=$(grep -oP '\K[0-9]+(?= succeeded)' <<<"$out")
      line="$line | h2 $(grep -oP 'finished in [0-9.]+s, \K[0-9.]+' <<<"$out") req/s $(per_req "$c0" "$c1" "$n") us/req"
    fi
    echo "round $r  $b  $line"
    kill "$P"; wait "$P" 2>/dev/null || true
  done
done
