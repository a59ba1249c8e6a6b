#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints its exec count.
#
#   bash fuzz/run.sh            # 600 s per target
#   SECS=60 bash fuzz/run.sh    # shorter
#   bash fuzz/run.sh path redact   # only these targets
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
# Seeds are in fuzz/corpus/<target>/ (committed); new corpus entries found
# during a run go to fuzz/corpus-new/<target>/ (not committed). A crash is
# written to fuzz/artifacts/<target>/ and the script exits non-zero: turn it
# into a regression test, fix it, rerun. Not run by CI (unbounded CPU).
set -euo pipefail
cd "$(dirname "$0")"
SECS=${SECS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus-new/$t" "artifacts/$t"
  log=$(mktemp)
  if cargo +nightly fuzz run "$t" "corpus-new/$t" "corpus/$t" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '#[0-9]+.*cov:' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
    printf '%-10s ok     %12s execs in %ss, coverage %s\n' "$t" "${runs:-?}" "$SECS" "${cov:-?}"
  else
    printf '%-10s CRASH  see fuzz/artifacts/%s/ and the log below\n' "$t" "$t"
    tail -40 "$log"
    status=1
  fi
  rm -f "$log"
done
exit $status
