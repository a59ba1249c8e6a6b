#!/usr/bin/env bash
# System calls and context switches per request, moat beside nginx-hardened,
# both as deployed (moat with its default worker per core, nginx with
# `worker_processes 2` as in benches/compare.sh), counted by the kernel's
# tracepoints (`perf stat -e raw_syscalls:sys_enter,sched:sched_switch`, no
# hardware counters needed) during a fixed load on 127.0.0.1. callgrind sees
# user space only; this is the other half of a request's CPU: each system call
# and each sleep/wake of a worker costs kernel time.
#
# Setup from benches/proxy-setup.sh (nginx upstream answering 1 KiB, moat
# with the policies of compare.sh, access logs off). Needs root, perf
# (linux-perf), nginx, wrk, nghttp2-client, openssl, curl, bc.
#   bash benches/syscalls.sh
#   SECONDS_PER_RUN=8 MOAT_BIN=/path/to/moat bash benches/syscalls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-4}
NEEDS="perf wrk h2load curl bc"
# shellcheck source=benches/proxy-setup.sh
. benches/proxy-setup.sh
hardened_conf "worker_processes 2;"
( moat_env; exec "$MOAT_BIN" run >"$W/logs/moat.out" 2>&1 ) &
MOAT_PID=$!
nginx -c "$W/hardened.conf"
for i in $(seq 100); do
  curl -sk -o /dev/null https://127.0.0.1:8446/ && curl -sk -o /dev/null https://127.0.0.1:8443/ && break
  sleep 0.2
done
NGINX_WORKERS=$(pgrep -d, -P "$(cat "$W/hardened.pid")")
stop() {
  kill "$MOAT_PID" 2>/dev/null || true
  kill "$(cat "$W/hardened.pid")" 2>/dev/null || true
  cleanup
}
trap stop EXIT
# load MODE PORT SECONDS OUT: a fixed-time load; prints the requests served.
load() {
  if [ "$1" = h2 ]; then
    timeout 120 h2load -D "$3" -c 10 -m 10 -H "Origin: $ORIGIN" "https://127.0.0.1:$2/" >"$4" 2>&1
    grep -oP '\K[0-9]+(?= succeeded)' "$4"
  else
    timeout 120 wrk -t1 -c10 -d"$3"s -H "Origin: $ORIGIN" "https://127.0.0.1:$2/" >"$4" 2>&1
    grep -oP '^\s+\K[0-9]+(?= requests in)' "$4"
  fi
}
printf '%-16s %-3s %9s %13s %13s %13s\n' proxy mode requests syscalls/req ctxsw/req epoll_wait/req
for spec in "moat 8446 $MOAT_PID" "nginx-hardened 8443 $NGINX_WORKERS"; do
  read -r name port pids <<<"$spec"
  for mode in $MODES; do
    load "$mode" "$port" 1 /dev/null >/dev/null || true
    stat="$W/out/stat.$name.$mode"
    perf stat -e raw_syscalls:sys_enter,sched:sched_switch,syscalls:sys_enter_epoll_wait \
      -p "$pids" -o "$stat" -- sleep $((RUN + 1)) &
    perf_pid=$!
    sleep 0.3
    n=$(load "$mode" "$port" "$RUN" "$W/out/load.$name.$mode")
    wait "$perf_pid"
    count() { awk -v ev="$1" '$2 == ev { gsub(",", "", $1); print $1 }' "$stat"; }
    per() { echo "scale=2; $1 / $n" | bc; }
    printf '%-16s %-3s %9d %13s %13s %13s\n' "$name" "$mode" "$n" \
      "$(per "$(count raw_syscalls:sys_enter)")" "$(per "$(count sched:sched_switch)")" \
      "$(per "$(count syscalls:sys_enter_epoll_wait)")"
  done
done
