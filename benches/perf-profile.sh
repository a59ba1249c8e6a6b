#!/usr/bin/env bash
# A CPU profile of moat under load: `perf record -e cpu-clock -g` (the
# software clock; these machines have no hardware counters) on the moat
# process for a fixed load, with the setup of benches/callgrind-process.sh
# (nginx upstream answering 1 KiB on 127.0.0.1:9000, the policies of
# benches/compare.sh, access log off). Unlike callgrind it sees the kernel
# too: syscalls, epoll, TLS record writes.
#
# Writes, under a fresh /tmp/moat-bench.* directory (kept, path printed):
#   perf.MODE.data     the samples (perf report -i FILE)
#   report.MODE.txt    self time by symbol, callers folded away
#   dsos.MODE.txt      share by binary (moat, libc, the kernel)
#
# Needs root, perf (linux-perf), nginx, wrk, h2load, openssl and curl.
# Ports 9000, 8446 and 9911 must be free.
#   bash benches/perf-profile.sh                  # h2 and h1
#   MODES=h2 N=200000 bash benches/perf-profile.sh
#   MOAT_BIN=/path/to/moat MOAT_LOG=info MODES=h1 bash benches/perf-profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
NEEDS="perf wrk h2load curl"
# shellcheck source=benches/proxy-setup.sh
. benches/proxy-setup.sh

for mode in $MODES; do
  (moat_env; exec "$MOAT_BIN" run) >"$W/logs/moat.$mode.log" 2>&1 &
  pid=$!
  url=https://127.0.0.1:8446/
  for _ in $(seq 100); do curl -sk -o /dev/null "$url" && break; sleep 0.1; done
  # Warm-up: connections, pools and caches as under steady load.
  timeout 60 h2load -n 2000 -c 10 -m 10 -H "Origin: $ORIGIN" "$url" >/dev/null 2>&1
  perf record -e cpu-clock -g -o "$W/perf.$mode.data" -p "$pid" >"$W/logs/perf.$mode.log" 2>&1 &
  rec=$!
  sleep 0.5
  if [ "$mode" = h2 ]; then
    timeout 600 h2load -n "$N" -c 10 -m 10 -H "Origin: $ORIGIN" "$url" >"$W/out/load.$mode.txt" 2>&1
    served=$(grep -oP '\K[0-9]+(?= succeeded)' "$W/out/load.$mode.txt")
  else
    timeout 600 wrk -t1 -c10 -d"${H1_SECONDS}s" -H "Origin: $ORIGIN" "$url" >"$W/out/load.$mode.txt" 2>&1
    served=$(grep -oP '^\s+\K[0-9]+(?= requests in)' "$W/out/load.$mode.txt")
  fi
  kill -INT "$rec"
  wait "$rec" || true
  kill -TERM "$pid"
  wait "$pid" || true
  perf report -i "$W/perf.$mode.data" --stdio --no-children --sort symbol -g none --percent-limit 0.5 \
    >"$W/report.$mode.txt" 2>/dev/null
  perf report -i "$W/perf.$mode.data" --stdio --no-children --sort dso -g none >"$W/dsos.$mode.txt" 2>/dev/null
  samples=$(grep -oP '^# Samples: \K\S+' "$W/report.$mode.txt" || echo '?')
  echo "moat $mode: ${served:-?} requests, $samples samples; top symbols:"
  grep -E '^ +[0-9.]+%' "$W/report.$mode.txt" | sed -E 's/[ -]+$//' | head -12
  echo "moat $mode: by binary"
  grep -E '^ +[0-9.]+%' "$W/dsos.$mode.txt" | sed -E 's/[ -]+$//' | head -4
done
echo "profiles: $W (perf report -i $W/perf.MODE.data)"
trap - EXIT
kill "$(cat "$W/upstream.pid")" 2>/dev/null || true
