#!/usr/bin/env bash
# What malware scanning adds to an upload: the same multipart PDF upload
# (default 100 MiB) through moat to a local upstream, on a route with
# `scan = true` and on one without, ROUNDS times each, interleaved; prints the
# median wall time of each and the difference. Everything runs on 127.0.0.1:
# a clamd started here with a one-signature database written here (the
# official database is not needed: the scan reads every byte either way), an
# upstream that reads the body and answers 200, and moat from MOAT_BIN.
#
#   bash benches/scan-latency.sh                 # 100 MiB, 5 rounds
#   SIZE_MIB=20 ROUNDS=9 bash benches/scan-latency.sh
#
# Needs clamd (apt-get install clamav-daemon), curl, python3, openssl and a
# release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-100}
ROUNDS=${ROUNDS:-5}
MOAT_BIN=${MOAT_BIN:-target/release/moat}
CLAMD=$(command -v clamd || echo /usr/sbin/clamd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLAMD_PORT=$(free_port) UP_PORT=$(free_port) HTTPS_PORT=$(free_port) ADMIN_PORT=$(free_port)

mkdir -p "$work/db" "$work/tmp"
echo "Moat.Bench.Pattern:0:*:$(printf 'moat-bench-pattern-never-present' | od -An -tx1 | tr -d ' \n')" >"$work/db/bench.ndb"
cat >"$work/clamd.conf" <<CONF
Foreground yes
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
DatabaseDirectory $work/db
TemporaryDirectory $work/tmp
StreamMaxLength $((SIZE_MIB + 8))M
MaxFileSize $((SIZE_MIB + 8))M
MaxScanSize $((SIZE_MIB * 4 + 32))M
CONF
"$CLAMD" -c "$work/clamd.conf" >"$work/clamd.log" 2>&1 &
pids+=($!)

cat >"$work/upstream.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        while n > 0:
            n -= len(self.rfile.read(min(n, 1 << 20)))
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/upstream.py" "$UP_PORT" &
pids+=($!)

cat >"$work/moat.toml" <<CONF
[listen]
https = "127.0.0.1:$HTTPS_PORT"
admin = "127.0.0.1:$ADMIN_PORT"
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[rate_limit]
default = "off"
[scan]
clamd = "tcp://127.0.0.1:$CLAMD_PORT"
max_file_size = "$((SIZE_MIB + 4))MiB"
[[routes]]
name = "scanned"
path = "/scanned"
max_body = "$((SIZE_MIB + 8))MiB"
upload = { types = ["pdf"], max_files = 1, scan = true }
[[routes]]
name = "unscanned"
path = "/unscanned"
max_body = "$((SIZE_MIB + 8))MiB"
upload = { types = ["pdf"], max_files = 1 }
CONF
MOAT_LOG=warn "$MOAT_BIN" run --config "$work/moat.toml" >"$work/moat.log" 2>&1 &
pids+=($!)

{ printf '%%PDF-1.7\n'; head -c "$((SIZE_MIB << 20))" /dev/urandom; printf '\n%%%%EOF\n'; } >"$work/file.pdf"

for _ in $(seq 1 300); do
  if printf 'zPING\0' | timeout 2 python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read()); print(s.recv(16))' "$CLAMD_PORT" 2>/dev/null | grep -q PONG \
    && curl -sk -o /dev/null "https://127.0.0.1:$HTTPS_PORT/"; then
    break
  fi
  sleep 0.2
done

run() {
  curl -sk --http1.1 -o /dev/null -w '%{http_code} %{time_total}\n' -F "file=@$work/file.pdf;type=application/pdf" \
    "https://127.0.0.1:$HTTPS_PORT/$1"
}
declare -A times
for r in $(seq 1 "$ROUNDS"); do
  for route in scanned unscanned; do
    read -r code t < <(run "$route")
    [ "$code" = 200 ] || { echo "round $r $route: HTTP $code" >&2; cat "$work/moat.log" >&2; exit 1; }
    times[$route]+="$t "
  done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
on=$(median "${times[scanned]}") off=$(median "${times[unscanned]}")
printf '%s MiB multipart PDF upload over HTTPS/1.1, median of %s rounds\n' "$SIZE_MIB" "$ROUNDS"
printf '  scan off: %.3f s\n  scan on:  %.3f s\n  added:    %.3f s (%.2fx)\n' "$off" "$on" "$(echo "$on - $off" | bc -l)" "$(echo "$on / $off" | bc -l)"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^moat_scans_total|^moat_scan_duration_seconds_(sum|count)'
