#!/usr/bin/env bash
# Instructions per request through the whole stack (benches/stack.rs), under
# valgrind's callgrind: repeatable on a shared, noisy machine. For each case
# the bench binary builds N requests, warms up, then drives them through the
# stack inside `drive`, the only function callgrind collects in; the figure
# is its instruction count over N (building the requests excluded, dropping
# the responses included). The profiles stay in $OUT/callgrind.out.<case>
# for `callgrind_annotate --inclusive=yes`. Needs valgrind (apt-get install
# valgrind).
#   bash benches/callgrind.sh              # all cases
#   CASES="get 500" N=500 bash benches/callgrind.sh
#   BENCH=stack_mimalloc bash benches/callgrind.sh   # with the allocator of the binary
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
CASES=${CASES:-"get preflight 429 500 get+log"}
OUT=${OUT:-target/callgrind}
mkdir -p "$OUT"
BIN=$(cargo bench --bench "${BENCH:-stack}" --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep "/${BENCH:-stack}-" | tail -1)
[ -x "$BIN" ] || { echo "bench binary not found" >&2; exit 1; }
printf '%-10s %14s\n' case instr/request
for c in $CASES; do
  f="$OUT/callgrind.out.$c"
  valgrind --tool=callgrind --toggle-collect='*drive*' --callgrind-out-file="$f" "$BIN" --loop "$c" "$N" >/dev/null 2>&1
  total=$(sed -n 's/^summary: //p' "$f" | awk '{print $1}')
  printf '%-10s %14d\n' "$c" $(( total / N ))
done
