#!/usr/bin/env bash
# Soak: a mix of allowed and rejected traffic through moat for SECS seconds
# (default 600), with moat's RSS and open file descriptors sampled every 10 s.
#
#   bash tests/security/soak.sh                 # target/release/moat, 10 minutes
#   SECS=60 MOAT_BIN=path/to/moat bash tests/security/soak.sh
#
# Traffic (all on 127.0.0.1): wrk over HTTP/1.1 cycling through allowed GETs,
# upstream 500s that moat sanitizes, leaky 4xx bodies, 404s of allowlist
# mode, a rate-limited route, CORS-refused cross-site POSTs, valid PDF
# uploads and refused executable uploads; h2load over HTTP/2 on allowed,
# rate-limited and refused paths at the same time. The upstream is nginx
# (Debian) answering each path. Prints the series and fails when RSS or fds
# grow after the warm-up (last sample above the first after one minute by
# more than 20 % + 8 MiB RSS, or 32 fds). Needs nginx, wrk and h2load
# (apt-get install nginx wrk nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-600}
BIN=${MOAT_BIN:-target/release/moat}
[ -x "$BIN" ] || { echo "soak: $BIN not built (cargo build --release)" >&2; exit 1; }
for t in nginx wrk h2load openssl; do
  command -v "$t" >/dev/null || { echo "soak: $t is not installed" >&2; exit 1; }
done

W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port) HTTPS=$(port) ADMIN=$(port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$W/tls.key" -out "$W/tls.crt" >/dev/null 2>&1

cat >"$W/nginx.conf" <<EOF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/body;
  proxy_temp_path $W/proxy;
  fastcgi_temp_path $W/fcgi;
  uwsgi_temp_path $W/uwsgi;
  scgi_temp_path $W/scgi;
  client_max_body_size 8m;
  server {
    listen 127.0.0.1:$UP;
    location /fail { default_type text/plain; return 500 'Traceback (most recent call last):\n  File "/srv/app/main.py", line 9\nConnectionError: 10.0.3.7:5432 refused'; }
    location /bad { default_type application/json; return 422 '{"detail":"dial tcp 10.0.3.7:8000: refused","path":"/srv/app/x.py"}'; }
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
}
EOF
nginx -c "$W/nginx.conf"

cat >"$W/moat.toml" <<EOF
deny_unmatched = true
[listen]
https = "127.0.0.1:$HTTPS"
admin = "127.0.0.1:$ADMIN"
[tls]
cert = "$W/tls.crt"
key = "$W/tls.key"
[upstream]
url = "http://127.0.0.1:$UP"
[rate_limit]
default = { key = "ip", rate = "1000000/s", burst = 1000000 }
[cors]
allowed_origins = ["https://app.example.com"]
[[routes]]
name = "api"
path = "/api"
[[routes]]
name = "fail"
path = "/fail"
[[routes]]
name = "bad"
path = "/bad"
[[routes]]
name = "limited"
path = "/limited"
rate_limit = { key = "route", rate = "5/s", burst = 5 }
[[routes]]
name = "upload"
path = "/upload"
methods = ["POST"]
max_body = "1MiB"
upload = { types = ["pdf"], max_files = 1 }
EOF
MOAT_LOG=warn "$BIN" run --config "$W/moat.toml" >"$W/moat.log" 2>&1 &
MOAT=$!
PIDS+=("$MOAT")
for _ in $(seq 100); do
  curl -sk "https://127.0.0.1:$HTTPS/api" >/dev/null 2>&1 && break
  sleep 0.1
done

# wrk's request mix (one request per call, cycling).
cat >"$W/mix.lua" <<'EOF'
local B = "soakboundary"
local pdf = "--" .. B .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n" .. string.rep("x", 20000) .. "\n%%EOF\r\n--" .. B .. "--\r\n"
local exe = "--" .. B .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\nMZ\144\0" .. string.rep("x", 20000) .. "\r\n--" .. B .. "--\r\n"
local reqs
init = function(args)
  -- Built here, not at load time: wrk sets Host only once a thread starts.
  local function h(t)
    t = t or {}
    t["Host"] = "localhost"
    return t
  end
  local mp = "multipart/form-data; boundary=" .. B
  reqs = {
    wrk.format("GET", "/api/items", h()),
    wrk.format("GET", "/fail", h()),
    wrk.format("GET", "/bad", h()),
    wrk.format("GET", "/nowhere", h()),
    wrk.format("GET", "/limited", h()),
    wrk.format("POST", "/api/x", h({ ["Origin"] = "https://evil.example", ["Content-Type"] = "text/plain" }), "x"),
    wrk.format("GET", "/api/items", h({ ["Origin"] = "https://app.example.com" })),
    wrk.format("POST", "/upload", h({ ["Content-Type"] = mp }), pdf),
    wrk.format("POST", "/upload", h({ ["Content-Type"] = mp }), exe),
    wrk.format("GET", "/api/%252e%252e/x", h()),
  }
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
counts = {}
response = function(status)
  counts[status] = (counts[status] or 0) + 1
end
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
done = function()
  local all = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do all[k] = (all[k] or 0) + v end
  end
  local line = "status codes:"
  for k, v in pairs(all) do line = line .. " " .. k .. "=" .. v end
  print(line)
end
EOF
printf 'https://127.0.0.1:%s/api/h2\nhttps://127.0.0.1:%s/limited\nhttps://127.0.0.1:%s/fail\nhttps://127.0.0.1:%s/nowhere\n' \
  "$HTTPS" "$HTTPS" "$HTTPS" "$HTTPS" >"$W/uris"

sample() {
  local rss fds
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$MOAT/status")
  fds=$(find "/proc/$MOAT/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  printf '%s %s %s\n' "$1" "$rss" "$fds"
}

wrk -t1 -c32 -d"${SECS}s" -s "$W/mix.lua" "https://127.0.0.1:$HTTPS" >"$W/wrk.out" 2>&1 &
PIDS+=("$!")
h2load -D "$SECS" -c8 -m8 -t1 -i "$W/uris" >"$W/h2load.out" 2>&1 &
PIDS+=("$!")

echo "t_s rss_kib fds"
: >"$W/series"
t=0
while [ "$t" -le "$SECS" ]; do
  kill -0 "$MOAT" 2>/dev/null || { echo "soak: moat exited" >&2; cat "$W/moat.log" >&2; exit 1; }
  sample "$t" | tee -a "$W/series"
  sleep 10
  t=$((t + 10))
done
wait "${PIDS[1]}" "${PIDS[2]}" 2>/dev/null || true
sample "end" | tee -a "$W/series"

echo "--- wrk (HTTP/1.1 mix)"
grep -E "requests in|Requests/sec|Socket errors|status codes" "$W/wrk.out" || cat "$W/wrk.out"
echo "--- h2load (HTTP/2)"
grep -E "^requests:|^status codes:|finished in" "$W/h2load.out" || cat "$W/h2load.out"
echo "--- moat errors in the log (first 5)"
grep -c '"level":"ERROR"' "$W/moat.log" || true
grep '"level":"ERROR"' "$W/moat.log" | head -5 || true

python3 - "$W/series" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
rows = [(r[0], int(r[1]), int(r[2])) for r in rows]
warm = [r for r in rows if r[0] != "end" and int(r[0]) >= 60] or rows
first, last = warm[0], rows[-1]
peak = max(r[1] for r in rows)
print(f"RSS after warm-up {first[1]} KiB, last {last[1]} KiB, peak {peak} KiB; fds {first[2]} -> {last[2]}")
ok = last[1] <= first[1] * 1.2 + 8192 and last[2] <= first[2] + 32
print("soak: flat" if ok else "soak: GROWING")
sys.exit(0 if ok else 1)
EOF
