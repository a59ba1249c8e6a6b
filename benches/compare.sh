#!/usr/bin/env bash
# Side-by-side load comparison of moat against nginx and HAProxy on this
# machine, all on 127.0.0.1: runs the anchors script with moat as its
# candidate and prints its markdown report (ratios against direct TLS in the
# "Ratios" table). The anchors script is not part of this repository: it is
# the benchmark harness kept beside the checkout (ANCHORS, by default
# ../shared/bench/anchors.sh); point ANCHORS at your copy. Needs root (it
# installs nginx, haproxy, wrk, h2load with apt-get). Shorter run: ROUNDS=3 TESTS="ka h2 up1" bash benches/compare.sh
#
# moat runs with the policies the hardened nginx/HAProxy configs also apply
# (rate limiting at a very high rate, CORS allowlist, body limit, error
# replacement, security headers) and, like them, without access logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHORS=${ANCHORS:-../shared/bench/anchors.sh}
[ -f "$ANCHORS" ] || { echo "anchors script not found at $ANCHORS (set ANCHORS=...)" >&2; exit 1; }
cargo build --release --locked >&2
BIN=$(pwd)/target/release/moat
export CANDIDATE_NAME=${CANDIDATE_NAME:-moat}
# Single-quoted variables are expanded by anchors.sh when it launches moat.
export CANDIDATE_CMD="MOAT_LISTEN__HTTPS=\$LISTEN MOAT_LISTEN__ADMIN=127.0.0.1:9911 MOAT_UPSTREAM__URL=\$UPSTREAM \
MOAT_TLS__CERT=\$CERT MOAT_TLS__KEY=\$KEY MOAT_TLS__MIN_VERSION=1.3 MOAT_LOG=warn \
MOAT_RATE_LIMIT__DEFAULT='{ rate = \"1000000/s\", burst = 1000000 }' \
MOAT_CORS__ALLOWED_ORIGINS='[\"https://app.example.com\"]' MOAT_LIMITS__MAX_BODY=200MiB exec $BIN run"
export ONLY=${ONLY:-"direct-http direct-tls nginx-plain nginx-hardened haproxy-hardened $CANDIDATE_NAME"}
export ROUNDS=${ROUNDS:-3}
exec bash "$ANCHORS"
